//! One delivery: decode the envelope, route, run the handler under its deadline in a
//! task of its own (so a panic is caught), and send the `result`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, Semaphore};

use crate::context::Context;
use crate::envelope::Event;
use crate::errorinfo::{ErrorCode, ErrorInfo};
use crate::frame::Frame;
use crate::routes::Routes;

/// What every delivery task shares.
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) routes: Routes,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) tx: mpsc::Sender<Vec<u8>>,
    /// The node's `max_frame` from `welcome`.
    pub(crate) peer_max_frame: AtomicU64,
}

/// Tells one worker's attempts from another's in the same process (spans.rs).
fn shared_key(shared: &Shared) -> usize {
    shared as *const Shared as usize
}

pub(crate) fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub(crate) fn panic_message(err: tokio::task::JoinError) -> String {
    if !err.is_panic() {
        return "cancelled".into();
    }
    let payload = err.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

pub(crate) fn result_frame(
    id: u64,
    outcome: Result<Vec<Vec<u8>>, ErrorInfo>,
    start_ns: u64,
    duration_ns: u64,
) -> Frame {
    let (ok, error, emitted) = match outcome {
        Ok(emitted) => (true, None, emitted),
        Err(info) => (false, Some(info), Vec::new()),
    };
    Frame::Result {
        id,
        ok,
        error,
        start_ns,
        duration_ns,
        emitted,
    }
}

/// Run one delivery and send its `result`.
pub(crate) async fn deliver(shared: Arc<Shared>, id: u64, envelope: Vec<u8>, deadline_ms: u64) {
    // The semaphore is never closed, so acquire only fails if it were; then run anyway.
    let _slot = shared.slots.clone().acquire_owned().await.ok();
    let started = SystemTime::now();
    let clock = Instant::now();
    let outcome = run_handler(&shared, id, &envelope, deadline_ms).await;
    let duration_ns = clock.elapsed().as_nanos() as u64;
    let start_ns = unix_ns(started);
    let failed = outcome
        .as_ref()
        .err()
        .map(|e| (e.code.as_str(), e.message.clone()));
    let spans = crate::spans::finish(
        shared_key(&shared),
        id,
        failed.as_ref().map(|(c, m)| (*c, m.as_str())),
    );
    let mut bytes = result_frame(id, outcome, start_ns, duration_ns).encode();
    if let Some(spans) = spans {
        crate::spans::append_spans(&mut bytes, &spans); // spans.rs: the attempt's spans
    }
    let max = shared.peer_max_frame.load(Ordering::Relaxed);
    if (bytes.len() - 4) as u64 > max {
        let info = ErrorInfo::new(
            ErrorCode::InvalidArgument,
            format!(
                "result with emitted events is {} bytes > node max_frame {max}",
                bytes.len() - 4
            ),
        );
        bytes = result_frame(id, Err(info), start_ns, duration_ns).encode();
    }
    let _ = shared.tx.send(bytes).await;
}

async fn run_handler(
    shared: &Shared,
    id: u64,
    envelope: &[u8],
    deadline_ms: u64,
) -> Result<Vec<Vec<u8>>, ErrorInfo> {
    let event = Event::from_msgpack(envelope).map_err(|e| {
        ErrorInfo::new(
            ErrorCode::InvalidArgument,
            format!("envelope did not decode ({}): {e}", e.code()),
        )
    })?;
    let handler = shared.routes.lookup(&event.ty).ok_or_else(|| {
        ErrorInfo::new(
            ErrorCode::Unimplemented,
            format!(
                "worker {:?} has no handler for event type {:?}",
                shared.name, event.ty
            ),
        )
    })?;
    let deadline = (deadline_ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(deadline_ms));
    let ctx = Context::new(event.clone(), deadline, shared.name.clone(), id);
    let span = crate::spans::attempt_span(&event, &shared.name, shared_key(shared), id, &shared.tx);
    // A task of its own, so a panic is caught as a JoinError and the worker lives on.
    let mut task = tokio::spawn(tracing::Instrument::instrument(
        handler.call(ctx.clone(), event),
        span,
    ));
    let joined = match deadline {
        None => Ok((&mut task).await),
        Some(at) => {
            let left = at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            tokio::time::timeout(left, &mut task).await
        }
    };
    match joined {
        Err(_elapsed) => {
            task.abort();
            Err(ErrorInfo::new(
                ErrorCode::Timeout,
                format!("handler did not finish before the deadline ({deadline_ms} unix ms)"),
            ))
        }
        Ok(Err(join)) => Err(ErrorInfo::new(
            ErrorCode::HandlerError,
            format!("handler panicked: {}", panic_message(join)),
        )),
        Ok(Ok(Err(e))) => Err(e.to_error_info()),
        Ok(Ok(Ok(()))) => {
            let mut out = Vec::new();
            for (i, ev) in ctx.take_emitted().into_iter().enumerate() {
                ev.validate().map_err(|e| {
                    ErrorInfo::new(
                        ErrorCode::InvalidArgument,
                        format!("emitted event {i} ({:?}) is invalid: {e}", ev.ty),
                    )
                })?;
                out.push(ev.to_msgpack());
            }
            Ok(out)
        }
    }
}
