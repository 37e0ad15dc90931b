//! The socket side of a session: a frame reader and a coalescing writer task.
//!
//! The reader checks each header against the worker's `max_frame` before allocating
//! the body. The writer is the only task that touches the write half: senders hand it
//! encoded frames over a channel, it writes everything queued into a `BufWriter` and
//! flushes once the channel is empty, so a burst of results becomes one `write`. It
//! also sends `heartbeat` when nothing else was sent for one interval.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, watch};

use crate::error::Error;
use crate::frame::{check_header, decode_body, Frame, HEADER_LEN};

/// Reads whole frames from the read half.
pub(crate) struct FrameReader<R> {
    inner: R,
    max_frame: u32,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(inner: R, max_frame: u32) -> Self {
        FrameReader { inner, max_frame }
    }

    /// The next frame, or `None` when the peer closed cleanly between frames.
    pub(crate) async fn read_frame(&mut self) -> Result<Option<Frame>, Error> {
        let mut header = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            let n = self.inner.read(&mut header[got..]).await?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(Error::ConnectionClosed)
                };
            }
            got += n;
        }
        // length checked against max_frame before the body buffer exists
        let len = check_header(header, self.max_frame)?;
        let mut body = vec![0u8; len];
        self.inner
            .read_exact(&mut body)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::ConnectionClosed,
                _ => Error::Io(e),
            })?;
        Ok(Some(decode_body(&body)?))
    }
}

/// Heartbeat interval for the writer, in ms; 0 = none yet (before `welcome`).
pub(crate) type HeartbeatMs = watch::Receiver<u64>;

/// Write encoded frames from `rx` until every sender is gone, then flush and shut the
/// write half down.
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(
    inner: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    mut heartbeat_ms: HeartbeatMs,
) -> Result<(), std::io::Error> {
    let mut out = BufWriter::with_capacity(64 * 1024, inner);
    let heartbeat = Frame::Heartbeat.encode();
    let mut interval_known = false;
    loop {
        let ms = *heartbeat_ms.borrow_and_update();
        let next = if ms == 0 {
            tokio::select! {
                next = rx.recv() => next,
                changed = heartbeat_ms.changed(), if !interval_known => {
                    // Err: the session is gone; keep draining the queue without heartbeats
                    interval_known = changed.is_err();
                    continue;
                }
            }
        } else {
            match tokio::time::timeout(Duration::from_millis(ms), rx.recv()).await {
                Ok(next) => next,
                Err(_) => Some(heartbeat.clone()),
            }
        };
        let Some(bytes) = next else { break };
        out.write_all(&bytes).await?;
        // coalesce whatever else is already queued into the same flush
        while let Ok(bytes) = rx.try_recv() {
            out.write_all(&bytes).await?;
        }
        out.flush().await?;
    }
    out.flush().await?;
    out.shutdown().await
}
