//! The worker: configuration ([`Worker`]) and one protocol session over the socket.
//!
//! Session order (spec/protocol.md): `hello` → `welcome` | `reject`; `init` → warm-up
//! hook → `ready`; then `deliver` → `result` with at most `max_in_flight` handlers
//! running; `drain` (or SIGTERM) → finish in-flight work → `drained` (→ `goodbye`).
//! Heartbeats flow both ways; three silent intervals from the node end the session.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UnixStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::connection::{write_frames, FrameReader};
use crate::delivery::{deliver, panic_message, result_frame, unix_ns, Shared};
use crate::error::Error;
use crate::errorinfo::{ErrorCode, ErrorInfo};
use crate::frame::{Frame, Schemas, DEFAULT_MAX_FRAME, MIN_MAX_FRAME, PROTOCOL_VERSIONS};
use crate::handler::{ErasedHandler, Handler, HandlerError};
use crate::routes::Routes;

type WarmupHook =
    Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>> + Send>;
type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Heartbeat interval assumed before `welcome` says otherwise.
const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(1000);
/// Longest `hello.token` (spec/protocol.md).
const MAX_TOKEN: usize = 256;
/// Frames queued for the writer before senders wait.
const WRITE_QUEUE: usize = 1024;

/// A worker's configuration; [`Worker::run`] connects and serves until drained.
///
/// Defaults: `max_in_flight` 64, `max_frame` 1 MiB + 64 KiB, protocol versions `[1]`,
/// socket from `$CROSSWIRE_SOCKET`, token from `$CROSSWIRE_TOKEN`, SIGTERM drains.
pub struct Worker {
    name: String,
    max_in_flight: usize,
    max_frame: u32,
    versions: Vec<u64>,
    socket: Option<PathBuf>,
    token: Option<String>,
    handlers: Vec<(String, Arc<dyn ErasedHandler>)>,
    accepts: Schemas,
    warmup: Option<WarmupHook>,
    shutdown: Option<Shutdown>,
}

impl Worker {
    /// A worker named `name` (the `source` of events it emits).
    pub fn new(name: impl Into<String>) -> Worker {
        Worker {
            name: name.into(),
            max_in_flight: 64,
            max_frame: DEFAULT_MAX_FRAME,
            versions: PROTOCOL_VERSIONS.to_vec(),
            socket: None,
            token: None,
            handlers: Vec::new(),
            accepts: Vec::new(),
            warmup: None,
            shutdown: None,
        }
    }

    /// How many deliveries may run at once: the credit announced to the node.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// The largest frame this worker accepts (at least 4096).
    pub fn max_frame(mut self, bytes: u32) -> Self {
        self.max_frame = bytes;
        self
    }

    /// The protocol versions announced in `hello` (default `[1]`; for tests).
    pub fn protocol_versions(mut self, versions: Vec<u64>) -> Self {
        self.versions = versions;
        self
    }

    /// Connect to `path` instead of `$CROSSWIRE_SOCKET`.
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = Some(path.into());
        self
    }

    /// Send `token` in `hello` instead of `$CROSSWIRE_TOKEN` (spec/protocol.md,
    /// "Authentication"). The node sets that variable for every worker it spawns and
    /// refuses a spawned worker's name without it; give an external worker the token
    /// its node was configured with.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Run `hook` on `init`, before `ready` (open connections, prime caches). An error
    /// is reported to the node and ends [`Worker::run`] with [`Error::Warmup`].
    pub fn on_warmup<F, Fut>(mut self, hook: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.warmup = Some(Box::new(move || Box::pin(hook())));
        self
    }

    /// Drain when `signal` completes instead of on SIGTERM.
    pub fn shutdown_signal(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown = Some(Box::pin(signal));
        self
    }

    /// Handle events of type `ty` (NATS-style wildcards: `*` one token, `>` the rest)
    /// with `handler`: an async function or closure `(Context, Event)`, a
    /// [`typed`](crate::typed) one that takes the decoded payload, or a type implementing
    /// [`Handler`]. Registering a type twice, or an invalid pattern, fails [`Worker::run`]
    /// with [`Error::Config`].
    pub fn handle(mut self, ty: impl Into<String>, handler: impl Handler) -> Self {
        self.handlers.push((ty.into(), Arc::new(handler)));
        self
    }

    /// Declare the payload schema versions the handler of `ty` reads: `dataschema` URIs
    /// (`urn:crosswire:schema:<id>:<version>`), usually generated constants:
    /// `.accepts("order.validated", &[Order::DATASCHEMA])`. They are sent in hello
    /// `schemas`; the node then dead-letters events of `ty` carrying another
    /// `dataschema` (`invalid_argument`, naming both versions) instead of delivering
    /// them. Without it any version is delivered. Repeated calls add up. A type without
    /// a handler, an empty or over-long URI (> 1024 bytes), or more than 16 of them
    /// fail [`Worker::run`] with [`Error::Config`].
    pub fn accepts<S: AsRef<str>>(mut self, ty: impl Into<String>, dataschemas: &[S]) -> Self {
        let ty = ty.into();
        let uris = dataschemas.iter().map(|d| d.as_ref().to_owned());
        match self.accepts.iter_mut().find(|(t, _)| *t == ty) {
            Some((_, known)) => known.extend(uris),
            None => self.accepts.push((ty, uris.collect())),
        }
        self
    }

    /// hello `schemas` in the order of `types`, checked.
    fn hello_schemas(&self, types: &[String]) -> Result<Option<Schemas>, Error> {
        for (ty, uris) in &self.accepts {
            if !types.contains(ty) {
                return Err(Error::Config(format!(
                    "accepts for {ty:?}: no handler is registered for that type"
                )));
            }
            if let Some(bad) = uris.iter().find(|u| u.is_empty() || u.len() > 1024) {
                return Err(Error::Config(format!(
                    "accepts for {ty:?}: a dataschema URI must be 1-1024 bytes, got {bad:?}"
                )));
            }
        }
        let schemas: Schemas = types
            .iter()
            .filter_map(|t| self.accepts.iter().find(|(a, _)| a == t))
            .map(|(t, uris)| {
                let mut unique: Vec<String> = Vec::with_capacity(uris.len());
                for u in uris {
                    if !unique.contains(u) {
                        unique.push(u.clone());
                    }
                }
                (t.clone(), unique)
            })
            .collect();
        if let Some((ty, uris)) = schemas.iter().find(|(_, u)| u.len() > 16) {
            return Err(Error::Config(format!(
                "accepts for {ty:?}: {} schema versions, at most 16",
                uris.len()
            )));
        }
        Ok((!schemas.is_empty()).then_some(schemas))
    }

    /// Connect, handshake, serve deliveries until drained, and say goodbye.
    ///
    /// Returns `Ok(())` after a clean drain (node `drain`, or SIGTERM / the shutdown
    /// signal) or a node `goodbye`.
    ///
    /// # Errors
    /// [`Error`]: configuration, connection, `reject`, protocol violations by the node,
    /// an oversized frame, a silent node, or a failed warm-up.
    pub async fn run(mut self) -> Result<(), Error> {
        let routes = Routes::new(std::mem::take(&mut self.handlers))?;
        let schemas = self.hello_schemas(&routes.types)?;
        self.accepts = schemas.unwrap_or_default();
        if self.max_in_flight == 0 {
            return Err(Error::Config("max_in_flight must be at least 1".into()));
        }
        if self.max_frame < MIN_MAX_FRAME {
            return Err(Error::Config(format!(
                "max_frame must be at least {MIN_MAX_FRAME}"
            )));
        }
        if self.token.is_none() {
            self.token = std::env::var("CROSSWIRE_TOKEN")
                .ok()
                .filter(|t| !t.is_empty());
        }
        if let Some(token) = &self.token {
            if token.chars().count() > MAX_TOKEN {
                return Err(Error::Config(format!(
                    "token is {} characters > {MAX_TOKEN}",
                    token.chars().count()
                )));
            }
        }
        let path = match self.socket.take() {
            Some(p) => p,
            None => std::env::var_os("CROSSWIRE_SOCKET")
                .map(PathBuf::from)
                .ok_or(Error::NoSocket)?,
        };
        let stream = UnixStream::connect(&path)
            .await
            .map_err(|source| Error::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let shutdown = self.shutdown.take().unwrap_or_else(|| Box::pin(sigterm()));
        Session::start(self, routes, stream, shutdown).await
    }
}

async fn sigterm() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    AwaitWelcome,
    AwaitInit,
    WarmingUp,
    Running,
}

/// What the session loop does after a frame.
enum Step {
    Continue,
    /// `welcome` arrived with this heartbeat interval.
    Welcomed(Duration),
    /// The node said goodbye: the session ends cleanly.
    Goodbye,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DrainCause {
    Node,
    Signal,
}

struct Session {
    shared: Arc<Shared>,
    config: Worker,
    heartbeat_ms: tokio::sync::watch::Sender<u64>,
    phase: Phase,
    tasks: JoinSet<()>,
    warmup: Option<JoinHandle<Result<(), HandlerError>>>,
    drain: Option<DrainCause>,
    drained_sent: bool,
}

impl Session {
    async fn start(
        config: Worker,
        routes: Routes,
        stream: UnixStream,
        shutdown: Shutdown,
    ) -> Result<(), Error> {
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let (heartbeat_ms, heartbeat_rx) = tokio::sync::watch::channel(0);
        let writer = tokio::spawn(write_frames(wr, rx, heartbeat_rx));
        let (in_tx, in_rx) = mpsc::channel(64);
        let max_frame = config.max_frame;
        let reader = tokio::spawn(async move {
            let mut frames = FrameReader::new(rd, max_frame);
            loop {
                let next = frames.read_frame().await.transpose();
                let stop = !matches!(next, Some(Ok(_)));
                if let Some(item) = next {
                    if in_tx.send(item).await.is_err() {
                        break;
                    }
                }
                if stop {
                    break;
                }
            }
        });
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            routes,
            slots: Arc::new(Semaphore::new(config.max_in_flight)),
            tx: tx.clone(),
            peer_max_frame: AtomicU64::new(u64::from(MIN_MAX_FRAME)),
        });
        let mut session = Session {
            shared,
            config,
            heartbeat_ms,
            phase: Phase::AwaitWelcome,
            tasks: JoinSet::new(),
            warmup: None,
            drain: None,
            drained_sent: false,
        };
        let result = session.serve(in_rx, shutdown).await;
        if let Err(err) = &result {
            if let Some(message) = report_to_node(err) {
                send(&tx, &Frame::Error { message }).await;
            }
        }
        // Abandon whatever is still running, then let the writer flush and close.
        session.tasks.abort_all();
        while session.tasks.join_next().await.is_some() {}
        if let Some(w) = session.warmup.take() {
            w.abort();
        }
        drop(session);
        drop(tx);
        reader.abort();
        match tokio::time::timeout(Duration::from_secs(2), writer).await {
            Ok(Ok(Err(io))) if result.is_ok() => Err(Error::Io(io)),
            _ => result,
        }
    }

    async fn serve(
        &mut self,
        mut inbox: mpsc::Receiver<Result<Frame, Error>>,
        mut shutdown: Shutdown,
    ) -> Result<(), Error> {
        let tx = self.shared.tx.clone();
        send(
            &tx,
            &Frame::Hello {
                versions: self.config.versions.clone(),
                name: self.config.name.clone(),
                runtime: crate::RUNTIME.to_owned(),
                types: self.shared.routes.types.clone(),
                max_in_flight: self.config.max_in_flight as u64,
                max_frame: u64::from(self.config.max_frame),
                pid: Some(u64::from(std::process::id())),
                sdk: Some(crate::SDK.to_owned()),
                schemas: (!self.config.accepts.is_empty()).then(|| self.config.accepts.clone()),
                token: self.config.token.clone(),
            },
        )
        .await;
        let mut silence = 3 * DEFAULT_HEARTBEAT;
        let mut last_heard = Instant::now();
        let mut shutdown_fired = false;
        // One timer for the whole session, re-armed only when it fires: frames merely
        // move `last_heard`, so a busy connection costs no timer work per frame.
        let silence_timer = tokio::time::sleep(silence);
        tokio::pin!(silence_timer);
        loop {
            if self.drain.is_some()
                && !self.drained_sent
                && self.tasks.is_empty()
                && self.warmup.is_none()
            {
                send(&tx, &Frame::Drained).await;
                self.drained_sent = true;
                if self.drain == Some(DrainCause::Signal) {
                    send(
                        &tx,
                        &Frame::Goodbye {
                            reason: Some("sigterm".into()),
                        },
                    )
                    .await;
                    return Ok(());
                }
            }
            tokio::select! {
                biased;
                next = inbox.recv() => {
                    last_heard = Instant::now();
                    match next {
                        None if self.drained_sent => return Ok(()),
                        None => return Err(Error::ConnectionClosed),
                        Some(Err(e)) => return Err(e),
                        Some(Ok(frame)) => match self.on_frame(frame).await? {
                            Step::Continue => {}
                            Step::Welcomed(hb) => {
                                silence = 3 * hb;
                                silence_timer.as_mut().reset((last_heard + silence).into());
                            }
                            Step::Goodbye => return Ok(()),
                        },
                    }
                }
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
                done = async { self.warmup.as_mut().expect("guarded by is_some").await }, if self.warmup.is_some() => {
                    self.warmup = None;
                    match done {
                        Ok(Ok(())) => {
                            send(&tx, &Frame::Ready).await;
                            self.phase = Phase::Running;
                        }
                        Ok(Err(e)) => return Err(Error::Warmup(e.to_string())),
                        Err(e) => return Err(Error::Warmup(format!("hook panicked: {}", panic_message(e)))),
                    }
                }
                () = &mut shutdown, if !shutdown_fired => {
                    shutdown_fired = true;
                    if self.phase == Phase::AwaitWelcome {
                        send(&tx, &Frame::Goodbye { reason: Some("sigterm".into()) }).await;
                        return Ok(());
                    }
                    self.drain = Some(DrainCause::Signal);
                }
                () = &mut silence_timer => {
                    let due = last_heard + silence;
                    if Instant::now() >= due {
                        return Err(Error::PeerSilent(silence));
                    }
                    silence_timer.as_mut().reset(due.into());
                }
            }
        }
    }

    /// Act on one frame from the node; `Err` ends the session.
    async fn on_frame(&mut self, frame: Frame) -> Result<Step, Error> {
        let tx = &self.shared.tx;
        match (self.phase, frame) {
            (_, Frame::Error { message }) => Err(Error::NodeError(message)),
            (Phase::AwaitWelcome, Frame::Reject { reason }) => Err(Error::Rejected(reason)),
            (
                Phase::AwaitWelcome,
                Frame::Welcome {
                    version,
                    max_frame,
                    heartbeat_ms,
                    ..
                },
            ) => {
                if !self.config.versions.contains(&version) {
                    return Err(Error::Protocol(format!(
                        "node chose protocol version {version}, worker speaks {:?}",
                        self.config.versions
                    )));
                }
                self.shared
                    .peer_max_frame
                    .store(max_frame, Ordering::Relaxed);
                let hb = if heartbeat_ms == 0 {
                    DEFAULT_HEARTBEAT
                } else {
                    Duration::from_millis(heartbeat_ms)
                };
                self.heartbeat_ms.send_replace(hb.as_millis() as u64);
                self.phase = Phase::AwaitInit;
                Ok(Step::Welcomed(hb))
            }
            (Phase::AwaitWelcome, other) => Err(Error::Protocol(format!(
                "expected welcome or reject, got {:?}",
                other.kind()
            ))),
            (_, Frame::Heartbeat | Frame::Unknown { .. }) => Ok(Step::Continue),
            (_, Frame::Goodbye { .. }) => Ok(Step::Goodbye),
            (Phase::AwaitInit, Frame::Init) => {
                let hook = self.config.warmup.take();
                self.warmup = Some(tokio::spawn(async move {
                    match hook {
                        Some(hook) => hook().await,
                        None => Ok(()),
                    }
                }));
                self.phase = Phase::WarmingUp;
                Ok(Step::Continue)
            }
            (_, Frame::Drain) => {
                if self.drain.is_none() {
                    self.drain = Some(DrainCause::Node);
                }
                Ok(Step::Continue)
            }
            (
                Phase::Running,
                Frame::Deliver {
                    id,
                    envelope,
                    deadline,
                },
            ) => {
                if self.drain.is_some() {
                    let info = ErrorInfo::new(ErrorCode::Cancelled, "worker is draining");
                    let now = unix_ns(SystemTime::now());
                    send(tx, &result_frame(id, Err(info), now, 0)).await;
                } else {
                    self.tasks
                        .spawn(deliver(self.shared.clone(), id, envelope, deadline));
                }
                Ok(Step::Continue)
            }
            (phase, other) => Err(Error::Protocol(format!(
                "unexpected {:?} frame in phase {phase:?}",
                other.kind()
            ))),
        }
    }
}

/// The message of the `error` frame sent before closing, for errors that are the
/// node's fault (not for reject, node errors, or a dead connection).
fn report_to_node(err: &Error) -> Option<String> {
    match err {
        Error::FrameTooLarge { .. } | Error::Frame(_) | Error::Protocol(_) | Error::Warmup(_) => {
            Some(err.to_string())
        }
        _ => None,
    }
}

async fn send(tx: &mpsc::Sender<Vec<u8>>, frame: &Frame) {
    // a closed writer means the connection is gone; the reader reports that
    let _ = tx.send(frame.encode()).await;
}
