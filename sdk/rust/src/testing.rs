//! A scripted stand-in for a crosswire node, to test a [`Worker`](crate::Worker) and its
//! handlers end to end without one: [`FakeNode`] listens on a Unix socket in a private
//! directory, and the test drives the protocol frame by frame through a [`NodeConn`].
//!
//! ```
//! use crosswire::testing::FakeNode;
//! use crosswire::{Context, Event, Worker};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = FakeNode::new();
//! let worker = Worker::new("echo")
//!     .socket(node.path())
//!     .handle("ping", |ctx: Context, ev: Event| async move {
//!         ctx.emit(Event::with_data("pong", ev.data.clone()));
//!         Ok(())
//!     });
//! let run = tokio::spawn(worker.run());
//!
//! let mut conn = node.accept().await;
//! conn.handshake().await;
//! let reply = conn.call(&Event::with_data("ping", None)).await;
//! assert!(reply.is_ok(), "{:?}", reply.error);
//! assert_eq!(reply.emitted[0].ty, "pong");
//! conn.drain().await;
//! run.await??;
//! # Ok(())
//! # }
//! ```
//!
//! Every wait is bounded by [`TIMEOUT`]. The helpers panic with a message starting
//! `crosswire::testing:` when the worker does not behave (no connection, a frame that
//! does not decode, a different frame than expected): in a test, that is the failure.
//! Must be used inside a tokio runtime (`#[tokio::test]`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::envelope::Event;
use crate::errorinfo::ErrorInfo;
use crate::frame::{decode_frame, Frame, DEFAULT_MAX_FRAME};

/// How long each helper waits for the worker before panicking.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A listening socket in a private directory (mode 0700), removed on drop.
#[derive(Debug)]
pub struct FakeNode {
    dir: PathBuf,
    path: PathBuf,
    listener: UnixListener,
}

impl FakeNode {
    /// Listen on `<tmp>/crosswire-test-<unique>/node.sock`.
    ///
    /// # Panics
    /// If the directory or the socket cannot be created, or outside a tokio runtime.
    pub fn new() -> FakeNode {
        use std::os::unix::fs::PermissionsExt;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // short: a socket path is limited to about 100 bytes
        let dir = std::env::temp_dir().join(format!(
            "cw-{}-{}-{nanos:x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
            .unwrap_or_else(|e| panic!("crosswire::testing: cannot create {}: {e}", dir.display()));
        let path = dir.join("node.sock");
        let listener = UnixListener::bind(&path).unwrap_or_else(|e| {
            panic!(
                "crosswire::testing: cannot listen on {}: {e}",
                path.display()
            )
        });
        FakeNode {
            dir,
            path,
            listener,
        }
    }

    /// The socket path: give it to [`Worker::socket`](crate::Worker::socket) (or as
    /// `CROSSWIRE_SOCKET` to a worker process).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wait for the next worker to connect.
    ///
    /// # Panics
    /// If none connects within [`TIMEOUT`].
    pub async fn accept(&self) -> NodeConn {
        let (stream, _) = tokio::time::timeout(TIMEOUT, self.listener.accept())
            .await
            .unwrap_or_else(|_| panic!("crosswire::testing: no worker connected in {TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("crosswire::testing: accept failed: {e}"));
        NodeConn {
            stream,
            buf: Vec::new(),
            heartbeats: 0,
            next_id: 1,
        }
    }
}

impl Default for FakeNode {
    fn default() -> Self {
        FakeNode::new()
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `welcome` a real node sends by default: version 1, the default `max_frame`,
/// heartbeats every second.
pub fn welcome() -> Frame {
    Frame::Welcome {
        version: 1,
        max_frame: DEFAULT_MAX_FRAME.into(),
        heartbeat_ms: 1000,
        node: "test-node".into(),
    }
}

/// The outcome of one delivery, from the worker's `result` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The delivery id.
    pub id: u64,
    /// The error envelope, if the handler failed.
    pub error: Option<ErrorInfo>,
    /// The follow-up events the handler emitted (only on success).
    pub emitted: Vec<Event>,
    /// Unix ns when the handler started.
    pub start_ns: u64,
    /// How long the handler ran, in ns.
    pub duration_ns: u64,
}

impl Reply {
    /// Whether the handler succeeded.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The node's side of one worker session.
#[derive(Debug)]
pub struct NodeConn {
    stream: UnixStream,
    buf: Vec<u8>,
    heartbeats: usize,
    next_id: u64,
}

impl NodeConn {
    /// The next frame from the worker, heartbeats included; `None` once it closed.
    ///
    /// # Panics
    /// If nothing arrives within [`TIMEOUT`], or the bytes are not a valid frame.
    pub async fn recv_any(&mut self) -> Option<Frame> {
        loop {
            match decode_frame(&self.buf, DEFAULT_MAX_FRAME) {
                Ok(Some((frame, used))) => {
                    self.buf.drain(..used);
                    return Some(frame);
                }
                Ok(None) => {}
                Err(e) => panic!("crosswire::testing: the worker sent an invalid frame: {e}"),
            }
            let mut chunk = [0u8; 8192];
            let n = match tokio::time::timeout(TIMEOUT, self.stream.read(&mut chunk)).await {
                Err(_) => panic!("crosswire::testing: the worker sent nothing in {TIMEOUT:?}"),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Ok(Err(e)) => panic!("crosswire::testing: read failed: {e}"),
                Ok(Ok(n)) => n,
            };
            if n == 0 {
                assert!(
                    self.buf.is_empty(),
                    "crosswire::testing: the worker closed in the middle of a frame"
                );
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next frame that is not a heartbeat (those are counted, see
    /// [`NodeConn::heartbeats`]) or a `log` frame.
    ///
    /// # Panics
    /// As [`NodeConn::recv_any`], and if the worker closed the connection.
    pub async fn recv(&mut self) -> Frame {
        loop {
            match self.recv_any().await {
                Some(Frame::Heartbeat) => self.heartbeats += 1,
                Some(Frame::Unknown { t }) if t == "log" => {} // a handler's log line (spans.rs)
                Some(frame) => return frame,
                None => panic!("crosswire::testing: the worker closed the connection"),
            }
        }
    }

    /// How many heartbeats [`NodeConn::recv`] skipped so far.
    pub fn heartbeats(&self) -> usize {
        self.heartbeats
    }

    /// Send one frame.
    pub async fn send(&mut self, frame: &Frame) {
        self.send_raw(&frame.encode()).await;
    }

    /// Send bytes as they are (a malformed or oversized frame, say).
    ///
    /// # Panics
    /// If the write fails.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .unwrap_or_else(|e| panic!("crosswire::testing: write failed: {e}"));
    }

    /// `hello` → [`welcome()`] → `init` → `ready`; returns the worker's `hello`.
    pub async fn handshake(&mut self) -> Frame {
        self.handshake_with(welcome()).await
    }

    /// The handshake with your own `welcome` (another heartbeat interval, say).
    ///
    /// # Panics
    /// If the worker does not send `hello`, then `ready`.
    pub async fn handshake_with(&mut self, welcome: Frame) -> Frame {
        let hello = self.recv().await;
        assert_eq!(
            hello.kind(),
            "hello",
            "crosswire::testing: expected hello, got {hello:?}"
        );
        self.send(&welcome).await;
        self.send(&Frame::Init).await;
        let ready = self.recv().await;
        assert_eq!(
            ready,
            Frame::Ready,
            "crosswire::testing: expected ready after init"
        );
        hello
    }

    /// Send `event` as delivery `id`; `deadline` is unix ms (0 = none).
    pub async fn deliver(&mut self, id: u64, event: &Event, deadline: u64) {
        self.next_id = self.next_id.max(id + 1);
        self.send(&Frame::Deliver {
            id,
            envelope: event.to_msgpack(),
            deadline,
        })
        .await;
    }

    /// The next `result` frame.
    ///
    /// # Panics
    /// If the next frame is something else, or an emitted envelope does not decode.
    pub async fn result(&mut self) -> Reply {
        match self.recv().await {
            Frame::Result {
                id,
                ok,
                error,
                start_ns,
                duration_ns,
                emitted,
            } => {
                assert_eq!(ok, error.is_none(), "crosswire::testing: ok vs error");
                let emitted = emitted
                    .iter()
                    .enumerate()
                    .map(|(i, bytes)| {
                        Event::from_msgpack(bytes).unwrap_or_else(|e| {
                            panic!("crosswire::testing: emitted event {i} does not decode: {e}")
                        })
                    })
                    .collect();
                Reply {
                    id,
                    error,
                    emitted,
                    start_ns,
                    duration_ns,
                }
            }
            other => panic!("crosswire::testing: expected a result, got {other:?}"),
        }
    }

    /// Deliver `event` (the next unused id, no deadline) and wait for its result.
    pub async fn call(&mut self, event: &Event) -> Reply {
        let id = self.next_id;
        self.deliver(id, event, 0).await;
        let reply = self.result().await;
        assert_eq!(
            reply.id, id,
            "crosswire::testing: result for another delivery"
        );
        reply
    }

    /// `drain` → wait for `drained` → `goodbye`: the worker's `run()` then returns.
    ///
    /// # Panics
    /// If a frame other than `drained` arrives first (call [`NodeConn::result`] for
    /// deliveries still in flight before draining).
    pub async fn drain(&mut self) {
        self.send(&Frame::Drain).await;
        let drained = self.recv().await;
        assert_eq!(
            drained,
            Frame::Drained,
            "crosswire::testing: expected drained"
        );
        self.send(&Frame::Goodbye {
            reason: Some("drained".into()),
        })
        .await;
    }

    /// Wait until the worker closes the connection; the frames it sent before,
    /// heartbeats excluded.
    pub async fn closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.recv_any().await {
            match frame {
                Frame::Heartbeat => self.heartbeats += 1,
                other => frames.push(other),
            }
        }
        frames
    }
}
