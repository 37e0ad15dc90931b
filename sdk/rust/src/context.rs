//! The per-delivery context handed to handlers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::attrs::now_rfc3339;
use crate::envelope::Event;

/// What a handler knows about its delivery: the incoming event, its deadline and trace
/// context, and a place to [`emit`](Context::emit) follow-up events. Cheap to clone;
/// clones share the emitted list.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    event: Event,
    deadline: Option<SystemTime>,
    worker: String,
    delivery: u64,
    emitted: Mutex<Vec<Event>>,
}

impl Context {
    pub(crate) fn new(
        event: Event,
        deadline: Option<SystemTime>,
        worker: String,
        delivery: u64,
    ) -> Self {
        Context {
            inner: Arc::new(Inner {
                event,
                deadline,
                worker,
                delivery,
                emitted: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A context outside any delivery, to call a handler directly in a unit test;
    /// inspect what it emitted with [`Context::emitted`].
    pub fn detached(event: Event, worker: impl Into<String>, deadline: Option<SystemTime>) -> Self {
        Context::new(event, deadline, worker.into(), 0)
    }

    /// The incoming event.
    pub fn event(&self) -> &Event {
        &self.inner.event
    }

    /// When this attempt times out, if the node set a deadline. The SDK cancels the
    /// handler then and reports `timeout`.
    pub fn deadline(&self) -> Option<SystemTime> {
        self.inner.deadline
    }

    /// Time left before the deadline (zero once passed), if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.inner.deadline.map(|d| {
            d.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        })
    }

    /// The delivery attempt, 1-based (the event's `attempt`).
    pub fn attempt(&self) -> u64 {
        self.inner.event.attempt
    }

    /// The incoming W3C `traceparent`.
    pub fn traceparent(&self) -> Option<&str> {
        self.inner.event.traceparent.as_deref()
    }

    /// The incoming W3C `tracestate`.
    pub fn tracestate(&self) -> Option<&str> {
        self.inner.event.tracestate.as_deref()
    }

    /// The worker's name (the default `source` of emitted events).
    pub fn worker_name(&self) -> &str {
        &self.inner.worker
    }

    /// The delivery id (unique per connection).
    pub fn delivery_id(&self) -> u64 {
        self.inner.delivery
    }

    /// Queue a follow-up event, sent in this delivery's `result` if the handler
    /// succeeds (and dropped if it fails). Unless already set on `event`:
    /// `source` = the worker name (replacing [`Event::new`]'s placeholder
    /// `crosswire`), `correlationid` = the incoming `correlationid` or else its `id`,
    /// `causationid` = the incoming `id`, the incoming `traceparent`, `tracestate`
    /// and `partitionkey`, and `time` = now.
    pub fn emit(&self, mut event: Event) {
        let incoming = &self.inner.event;
        if event.source.is_empty() || event.source == "crosswire" {
            event.source.clone_from(&self.inner.worker);
        }
        if event.correlationid.is_none() {
            event.correlationid = Some(
                incoming
                    .correlationid
                    .clone()
                    .unwrap_or_else(|| incoming.id.clone()),
            );
        }
        if event.causationid.is_none() {
            event.causationid = Some(incoming.id.clone());
        }
        if event.traceparent.is_none() {
            event.traceparent.clone_from(&incoming.traceparent);
        }
        if event.tracestate.is_none() {
            event.tracestate.clone_from(&incoming.tracestate);
        }
        if event.partitionkey.is_none() {
            event.partitionkey.clone_from(&incoming.partitionkey);
        }
        if event.time.is_none() {
            event.time = Some(now_rfc3339());
        }
        self.lock().push(event);
    }

    /// The events emitted so far.
    pub fn emitted(&self) -> Vec<Event> {
        self.lock().clone()
    }

    pub(crate) fn take_emitted(&self) -> Vec<Event> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Event>> {
        // a handler that panicked while holding the lock left a valid Vec behind
        self.inner
            .emitted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("event", &self.inner.event.id)
            .field("type", &self.inner.event.ty)
            .field("delivery", &self.inner.delivery)
            .field("deadline", &self.inner.deadline)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_fills_only_what_the_handler_left_unset() {
        let mut incoming = Event::with_data("a", None);
        incoming.correlationid = Some("flow".into());
        incoming.partitionkey = Some("k".into());
        let ctx = Context::detached(incoming.clone(), "w", None);
        ctx.emit(Event::with_data("b", None));
        let mut own = Event::with_data("c", None);
        own.source = "/mine".into();
        own.partitionkey = Some("other".into());
        ctx.emit(own);
        let out = ctx.emitted();
        assert_eq!(out[0].source, "w");
        assert_eq!(out[0].correlationid.as_deref(), Some("flow"));
        assert_eq!(out[0].causationid.as_deref(), Some(incoming.id.as_str()));
        assert_eq!(out[0].partitionkey.as_deref(), Some("k"));
        assert_eq!(out[1].source, "/mine");
        assert_eq!(out[1].partitionkey.as_deref(), Some("other"));
    }
}
