//! Spans and logs from handler code (spec/protocol.md, "Spans and logs"), with the
//! [`tracing`] crate.
//!
//! Each attempt runs inside a span `handle <type>` whose parent is the delivered
//! `traceparent` (the node's CONSUMER span). Handler code uses `tracing` as usual:
//!
//! ```no_run
//! # async fn f() {
//! let span = tracing::info_span!("score order", order_id = 7);
//! let _guard = span.enter();
//! tracing::info!(score = 42, "scored");
//! # }
//! ```
//!
//! Spans opened under the attempt span are collected (with their fields as
//! attributes and the events inside them as span events) and shipped in the
//! result's `spans`; the node exports them. Events (`tracing::info!` and friends)
//! inside an attempt also go to the node as `log` frames, with the delivery id and
//! the current span's ids, and come out of the node's logger. A span field
//! `otel.name` renames the span; `otel.kind` (`client`, `server`, `producer`,
//! `consumer`) sets its kind.
//!
//! [`Worker::run`](crate::Worker::run) installs [`tracing_layer`] as the global
//! subscriber when none is set; a program with its own subscriber adds the layer to
//! it (`tracing_subscriber::registry().with(crosswire::spans::tracing_layer())`).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event as TracingEvent, Level, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::envelope::Event;

/// Spans one result carries at most.
pub const MAX_SPANS: usize = 256;
/// Events one span carries at most.
pub const MAX_SPAN_EVENTS: usize = 64;
/// Attributes one log frame carries at most.
pub const MAX_LOG_ATTRS: usize = 32;
const MAX_MESSAGE: usize = 16 * 1024;

/// A span attribute value.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
}

/// A span event: name, unix ns, attributes.
type SpanEvent = (String, u64, Vec<(String, Value)>);

/// One finished span, as shipped in `result.spans`.
#[derive(Debug, Clone)]
struct SpanRecord {
    span_id: u64,
    parent_id: Option<u64>,
    name: String,
    kind: u8,
    start_ns: u64,
    end_ns: u64,
    attrs: Vec<(String, Value)>,
    events: Vec<SpanEvent>,
    status: u8,
    status_message: Option<String>,
}

/// What one attempt's spans share.
struct AttemptState {
    /// Empty when the delivery carried no sampled traceparent: logs only, no spans.
    trace_id: String,
    /// The node's span the attempt span is a child of.
    remote_parent: u64,
    span_id: u64,
    delivery: u64,
    start_ns: u64,
    name: String,
    attrs: Vec<(String, Value)>,
    tx: mpsc::Sender<Vec<u8>>,
    spans: Mutex<Vec<SpanRecord>>,
}

/// What the layer keeps in each span's extensions.
struct SpanData {
    state: Arc<AttemptState>,
    span_id: u64,
    parent_id: u64,
    name: String,
    kind: u8,
    start_ns: u64,
    attrs: Vec<(String, Value)>,
    events: Vec<SpanEvent>,
    attempt: bool,
}

fn attempts() -> &'static Mutex<HashMap<u64, Arc<AttemptState>>> {
    static ATTEMPTS: OnceLock<Mutex<HashMap<u64, Arc<AttemptState>>>> = OnceLock::new();
    ATTEMPTS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn now_ns() -> u64 {
    crate::delivery::unix_ns(SystemTime::now())
}

/// A random, non-zero 64-bit span id.
fn new_span_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    static SEED: OnceLock<RandomState> = OnceLock::new();
    let mut h = SEED.get_or_init(RandomState::new).build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(now_ns() as u128);
    h.finish().max(1)
}

fn hex16(v: u64) -> String {
    format!("{v:016x}")
}

/// `00-<trace>-<span>-<flags>` → (trace id, parent span id) when sampled.
fn parse_traceparent(tp: &str) -> Option<(String, u64)> {
    let parts: Vec<&str> = tp.split('-').collect();
    if parts.len() != 4 || parts[1].len() != 32 || parts[2].len() != 16 || parts[3].len() != 2 {
        return None;
    }
    let flags = u8::from_str_radix(parts[3], 16).ok()?;
    let parent = u64::from_str_radix(parts[2], 16).ok()?;
    let valid = parts[1].bytes().all(|b| b.is_ascii_hexdigit()) && parts[1] != "0".repeat(32);
    (valid && parent != 0 && flags & 1 == 1).then(|| (parts[1].to_ascii_lowercase(), parent))
}

fn attempt_key(worker: usize, delivery: u64) -> u64 {
    (worker as u64).rotate_left(20) ^ delivery
}

/// Start one attempt: the span to run the handler in. Without a sampled
/// traceparent its events still go to the node as logs, but no spans are shipped.
pub(crate) fn attempt_span(
    event: &Event,
    worker: &str,
    key: usize,
    delivery: u64,
    tx: &mpsc::Sender<Vec<u8>>,
) -> tracing::Span {
    let (trace_id, remote_parent) = event
        .traceparent
        .as_deref()
        .and_then(parse_traceparent)
        .unwrap_or_default();
    install();
    let state = Arc::new(AttemptState {
        trace_id,
        remote_parent,
        span_id: new_span_id(),
        delivery,
        start_ns: now_ns(),
        name: format!("handle {}", event.ty),
        attrs: vec![
            ("crosswire.worker.name".into(), Value::Str(worker.into())),
            ("crosswire.worker.runtime".into(), Value::Str("rust".into())),
            (
                "process.pid".into(),
                Value::Uint(u64::from(std::process::id())),
            ),
            ("crosswire.attempt".into(), Value::Uint(event.attempt)),
            ("messaging.message.id".into(), Value::Str(event.id.clone())),
        ],
        tx: tx.clone(),
        spans: Mutex::new(Vec::new()),
    });
    let k = attempt_key(key, delivery);
    attempts()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(k, state);
    tracing::info_span!(parent: None, "handle", crosswire_attempt = k)
}

/// End one attempt: its spans encoded as the value of `result.spans` (the attempt
/// span first), or `None` when it was not traced.
pub(crate) fn finish(key: usize, delivery: u64, error: Option<(&str, &str)>) -> Option<Vec<u8>> {
    let state = attempts()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&attempt_key(key, delivery))?;
    if state.trace_id.is_empty() {
        return None;
    }
    let mut attrs = state.attrs.clone();
    if let Some((code, _)) = error {
        attrs.push(("error.type".into(), Value::Str(code.into())));
    }
    let own = SpanRecord {
        span_id: state.span_id,
        parent_id: Some(state.remote_parent),
        name: state.name.clone(),
        kind: 0,
        start_ns: state.start_ns,
        end_ns: now_ns(),
        attrs,
        events: Vec::new(),
        status: if error.is_some() { 2 } else { 0 },
        status_message: error.map(|(_, message)| message.to_owned()),
    };
    let mut spans = vec![own];
    spans.extend(std::mem::take(
        &mut *state.spans.lock().unwrap_or_else(|e| e.into_inner()),
    ));
    spans.truncate(MAX_SPANS);
    let mut out = Vec::new();
    let _ = rmp::encode::write_array_len(&mut out, spans.len() as u32);
    for span in &spans {
        write_span(&mut out, &state.trace_id, span);
    }
    Some(out)
}

/// Add `spans` (the value from [`finish`]) to an encoded result frame.
pub(crate) fn append_spans(frame: &mut Vec<u8>, spans: &[u8]) {
    // a result body is a fixmap of 5-7 entries: one more, then the key and value
    if frame.len() < 5 || frame[4] & 0xf0 != 0x80 || frame[4] & 0x0f >= 15 {
        return;
    }
    frame[4] += 1;
    let _ = rmp::encode::write_str(frame, "spans");
    frame.extend_from_slice(spans);
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => {
            let _ = rmp::encode::write_str(out, s);
        }
        Value::Int(i) => {
            let _ = rmp::encode::write_sint(out, *i);
        }
        Value::Uint(u) => {
            let _ = rmp::encode::write_uint(out, *u);
        }
        Value::Float(f) => {
            let _ = rmp::encode::write_f64(out, *f);
        }
        Value::Bool(b) => {
            let _ = rmp::encode::write_bool(out, *b);
        }
    }
}

fn write_attrs(out: &mut Vec<u8>, attrs: &[(String, Value)]) {
    let _ = rmp::encode::write_map_len(out, attrs.len() as u32);
    for (k, v) in attrs {
        let _ = rmp::encode::write_str(out, k);
        write_value(out, v);
    }
}

fn write_span(out: &mut Vec<u8>, trace_id: &str, s: &SpanRecord) {
    let optional = [
        s.parent_id.is_some(),
        s.kind != 0,
        !s.attrs.is_empty(),
        !s.events.is_empty(),
        s.status != 0,
        s.status_message.is_some(),
    ];
    let n = 5 + optional.iter().filter(|p| **p).count() as u32;
    let _ = rmp::encode::write_map_len(out, n);
    let kv_str = |out: &mut Vec<u8>, k: &str, v: &str| {
        let _ = rmp::encode::write_str(out, k);
        let _ = rmp::encode::write_str(out, v);
    };
    let kv_uint = |out: &mut Vec<u8>, k: &str, v: u64| {
        let _ = rmp::encode::write_str(out, k);
        let _ = rmp::encode::write_uint(out, v);
    };
    kv_str(out, "trace_id", trace_id);
    kv_str(out, "span_id", &hex16(s.span_id));
    if let Some(p) = s.parent_id {
        kv_str(out, "parent_id", &hex16(p));
    }
    kv_str(out, "name", &s.name);
    if s.kind != 0 {
        kv_uint(out, "kind", u64::from(s.kind));
    }
    kv_uint(out, "start_ns", s.start_ns);
    kv_uint(out, "end_ns", s.end_ns.max(s.start_ns));
    if !s.attrs.is_empty() {
        let _ = rmp::encode::write_str(out, "attrs");
        write_attrs(out, &s.attrs);
    }
    if !s.events.is_empty() {
        let _ = rmp::encode::write_str(out, "events");
        let _ = rmp::encode::write_array_len(out, s.events.len() as u32);
        for (name, time_ns, attrs) in &s.events {
            let _ = rmp::encode::write_map_len(out, 2 + u32::from(!attrs.is_empty()));
            kv_str(out, "name", name);
            kv_uint(out, "time_ns", *time_ns);
            if !attrs.is_empty() {
                let _ = rmp::encode::write_str(out, "attrs");
                write_attrs(out, attrs);
            }
        }
    }
    if s.status != 0 {
        kv_uint(out, "status", u64::from(s.status));
    }
    if let Some(m) = &s.status_message {
        kv_str(out, "status_message", m);
    }
}

/// Collects fields as attributes (`message` apart).
#[derive(Default)]
struct Fields {
    message: Option<String>,
    attempt: Option<u64>,
    attrs: Vec<(String, Value)>,
}

impl Fields {
    fn push(&mut self, field: &Field, v: Value) {
        if self.attrs.len() < MAX_LOG_ATTRS {
            self.attrs.push((field.name().to_owned(), v));
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        if field.name() == "message" {
            self.message = Some(s);
        } else {
            s.truncate(1024);
            self.push(field, Value::Str(s));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.push(field, Value::Str(value.chars().take(1024).collect()));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "crosswire_attempt" {
            self.attempt = Some(value);
        } else {
            self.push(field, Value::Uint(value));
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::Float(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }
}

/// The `tracing` layer that collects an attempt's spans and forwards its events.
pub struct CrosswireLayer {
    _private: (),
}

/// The layer to add to a program's own subscriber (see the module docs).
pub fn tracing_layer() -> CrosswireLayer {
    CrosswireLayer { _private: () }
}

/// Make the layer the global subscriber, unless the program set one.
fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(tracing_layer()),
        );
    });
}

fn kind_code(name: &str) -> u8 {
    match name {
        "server" => 1,
        "client" => 2,
        "producer" => 3,
        "consumer" => 4,
        _ => 0,
    }
}

impl<S> Layer<S> for CrosswireLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let data = if let Some(k) = fields.attempt {
            let Some(state) = attempts()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&k)
                .cloned()
            else {
                return;
            };
            SpanData {
                span_id: state.span_id,
                parent_id: state.remote_parent,
                name: state.name.clone(),
                kind: 0,
                start_ns: state.start_ns,
                attrs: Vec::new(),
                events: Vec::new(),
                attempt: true,
                state,
            }
        } else {
            let Some(parent) = span.parent() else { return };
            let ext = parent.extensions();
            let Some(p) = ext.get::<SpanData>() else {
                return;
            };
            let mut name = span.name().to_owned();
            let mut kind = 0;
            fields.attrs.retain(|(k, v)| match (k.as_str(), v) {
                ("otel.name", Value::Str(s)) => {
                    name = s.trim_matches('"').to_owned();
                    false
                }
                ("otel.kind", Value::Str(s)) => {
                    kind = kind_code(&s.trim_matches('"').to_ascii_lowercase());
                    false
                }
                _ => true,
            });
            SpanData {
                state: p.state.clone(),
                span_id: new_span_id(),
                parent_id: p.span_id,
                name,
                kind,
                start_ns: now_ns(),
                attrs: fields.attrs,
                events: Vec::new(),
                attempt: false,
            }
        };
        span.extensions_mut().insert(data);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        let mut ext = span.extensions_mut();
        if let Some(data) = ext.get_mut::<SpanData>() {
            data.attrs.extend(fields.attrs);
        }
    }

    fn on_event(&self, event: &TracingEvent<'_>, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        let time_ns = now_ns();
        let message = fields.message.clone().unwrap_or_default();
        if !data.attempt && data.events.len() < MAX_SPAN_EVENTS {
            data.events.push((
                message.chars().take(256).collect(),
                time_ns,
                fields.attrs.clone(),
            ));
        }
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            _ => "debug",
        };
        let frame = log_frame(level, &message, time_ns, data, &fields.attrs);
        let _ = data.state.tx.try_send(frame); // a full queue drops the line, never blocks
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        if data.attempt {
            return; // the attempt span is recorded by `finish`
        }
        let mut spans = data.state.spans.lock().unwrap_or_else(|e| e.into_inner());
        if spans.len() < MAX_SPANS {
            spans.push(SpanRecord {
                span_id: data.span_id,
                parent_id: Some(data.parent_id),
                name: data.name,
                kind: data.kind,
                start_ns: data.start_ns,
                end_ns: now_ns(),
                attrs: data.attrs,
                events: data.events,
                status: 0,
                status_message: None,
            });
        }
    }
}

/// One `log` frame, header included.
fn log_frame(
    level: &str,
    message: &str,
    time_ns: u64,
    span: &SpanData,
    attrs: &[(String, Value)],
) -> Vec<u8> {
    let mut out = vec![0; 4];
    let traced = !span.state.trace_id.is_empty();
    let n = 5 + 2 * u32::from(traced) + u32::from(!attrs.is_empty());
    let _ = rmp::encode::write_map_len(&mut out, n);
    let kv_str = |out: &mut Vec<u8>, k: &str, v: &str| {
        let _ = rmp::encode::write_str(out, k);
        let _ = rmp::encode::write_str(out, v);
    };
    kv_str(&mut out, "t", "log");
    kv_str(&mut out, "level", level);
    let cut: String = message.chars().take(MAX_MESSAGE).collect();
    kv_str(&mut out, "msg", &cut);
    let _ = rmp::encode::write_str(&mut out, "time_ns");
    let _ = rmp::encode::write_uint(&mut out, time_ns);
    let _ = rmp::encode::write_str(&mut out, "id");
    let _ = rmp::encode::write_uint(&mut out, span.state.delivery);
    if traced {
        kv_str(&mut out, "trace_id", &span.state.trace_id);
        kv_str(&mut out, "span_id", &hex16(span.span_id));
    }
    if !attrs.is_empty() {
        let _ = rmp::encode::write_str(&mut out, "attrs");
        write_attrs(&mut out, attrs);
    }
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(tp),
            Some((
                "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                0x00f0_67aa_0ba9_02b7
            ))
        );
        assert_eq!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            None
        );
        assert_eq!(parse_traceparent("garbage"), None);
    }

    #[test]
    fn handler_spans_and_events_are_collected_under_the_attempt_span() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut event = Event::with_data("order.validated", None);
        event.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        let attempt = attempt_span(&event, "fraud", 1, 9, &tx);
        attempt.in_scope(|| {
            let child = tracing::info_span!("score order", order_id = 7_u64);
            child.in_scope(|| tracing::warn!(score = 42_i64, "suspicious"));
        });
        drop(attempt);
        let encoded = finish(1, 9, Some(("unavailable", "busy"))).expect("traced");
        let spans: serde_json::Value = rmp_serde::from_slice(&encoded).expect("decodes");
        let (own, child) = (&spans[0], &spans[1]);
        assert_eq!(own["name"], "handle order.validated");
        assert_eq!(own["parent_id"], "00f067aa0ba902b7");
        assert_eq!(own["status"], 2);
        assert_eq!(own["attrs"]["crosswire.worker.runtime"], "rust");
        assert_eq!(own["attrs"]["error.type"], "unavailable");
        assert_eq!(child["name"], "score order");
        assert_eq!(child["parent_id"], own["span_id"]);
        assert_eq!(child["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(child["attrs"]["order_id"], 7);
        assert_eq!(child["events"][0]["name"], "suspicious");
        let frame = rx.try_recv().expect("a log frame");
        let log: serde_json::Value = rmp_serde::from_slice(&frame[4..]).expect("decodes");
        assert_eq!(log["t"], "log");
        assert_eq!(log["level"], "warn");
        assert_eq!(log["msg"], "suspicious");
        assert_eq!(log["id"], 9);
        assert_eq!(log["span_id"], child["span_id"]);
        assert_eq!(log["attrs"]["score"], 42);
    }

    fn vector_hex(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../spec/vectors/frames/observability")
            .join(format!("{name}.json"));
        let vector: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("vector")).expect("json");
        let hex = vector["hex"].as_str().expect("hex");
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn attrs(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    /// spec/vectors/frames/observability/result-spans.json, encoded by this SDK.
    #[test]
    fn result_spans_vector() {
        let mut error = crate::ErrorInfo::new(crate::ErrorCode::Unavailable, "busy");
        error.runtime = "go".into();
        error.retryable = true;
        let frame = crate::frame::Frame::Result {
            id: 3,
            ok: false,
            error: Some(error),
            start_ns: 1000,
            duration_ns: 4000,
            emitted: Vec::new(),
        };
        let s = |span_id: u64, parent_id: Option<u64>, name: &str, start_ns: u64, end_ns: u64| {
            SpanRecord {
                span_id,
                parent_id,
                name: name.into(),
                kind: 0,
                start_ns,
                end_ns,
                attrs: Vec::new(),
                events: Vec::new(),
                status: 0,
                status_message: None,
            }
        };
        let mut handle = s(
            0x1111_1111_1111_1111,
            Some(0x00f0_67aa_0ba9_02b7),
            "handle order.validated",
            1000,
            5000,
        );
        handle.attrs = attrs(&[
            ("crosswire.worker.name", Value::Str("pricing".into())),
            ("crosswire.worker.runtime", Value::Str("go".into())),
            ("process.pid", Value::Uint(4242)),
            ("crosswire.attempt", Value::Uint(1)),
            ("error.type", Value::Str("unavailable".into())),
        ]);
        handle.status = 2;
        handle.status_message = Some("busy".into());
        let mut compute = s(
            0x2222_2222_2222_2222,
            Some(0x1111_1111_1111_1111),
            "compute price",
            2000,
            3000,
        );
        compute.kind = 2;
        compute.attrs = attrs(&[
            ("country", Value::Str("DE".into())),
            ("total_cents", Value::Int(2975)),
            ("ratio", Value::Float(0.5)),
            ("cached", Value::Bool(true)),
        ]);
        compute.events = vec![
            (
                "looked up rate".into(),
                2500,
                attrs(&[("rate", Value::Uint(19))]),
            ),
            ("done".into(), 2900, Vec::new()),
        ];
        compute.status = 1;
        let minimal = s(0x3333_3333_3333_3333, None, "minimal", 1, 2);
        let mut spans = Vec::new();
        let _ = rmp::encode::write_array_len(&mut spans, 3);
        for span in [&handle, &compute, &minimal] {
            write_span(&mut spans, "4bf92f3577b34da6a3ce929d0e0e4736", span);
        }
        let mut bytes = frame.encode();
        append_spans(&mut bytes, &spans);
        assert_eq!(bytes, vector_hex("result-spans"));
    }

    /// spec/vectors/frames/observability/log.json, encoded by this SDK.
    #[test]
    fn log_vector() {
        let (tx, _rx) = mpsc::channel(1);
        let state = Arc::new(AttemptState {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            remote_parent: 1,
            span_id: 2,
            delivery: 3,
            start_ns: 0,
            name: "handle t".into(),
            attrs: Vec::new(),
            tx,
            spans: Mutex::new(Vec::new()),
        });
        let span = SpanData {
            state,
            span_id: 0x2222_2222_2222_2222,
            parent_id: 1,
            name: "compute price".into(),
            kind: 0,
            start_ns: 0,
            attrs: Vec::new(),
            events: Vec::new(),
            attempt: false,
        };
        let fields = attrs(&[
            ("order_id", Value::Uint(3)),
            ("total_cents", Value::Int(2975)),
            ("country", Value::Str("DE".into())),
            ("ratio", Value::Float(0.5)),
            ("cached", Value::Bool(false)),
        ]);
        let frame = log_frame(
            "warn",
            "priced order",
            1_733_040_000_000_000_000,
            &span,
            &fields,
        );
        assert_eq!(frame, vector_hex("log"));
    }

    #[test]
    fn append_spans_adds_one_map_entry() {
        let frame = crate::frame::Frame::Result {
            id: 1,
            ok: true,
            error: None,
            start_ns: 5,
            duration_ns: 6,
            emitted: Vec::new(),
        };
        let mut bytes = frame.encode();
        let mut spans = Vec::new();
        let _ = rmp::encode::write_array_len(&mut spans, 0);
        append_spans(&mut bytes, &spans);
        let body: serde_json::Value = rmp_serde::from_slice(&bytes[4..]).expect("decodes");
        assert_eq!(body["spans"], serde_json::json!([]));
        assert_eq!(body["id"], 1);
        assert_eq!(
            u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize,
            bytes.len() - 4
        );
    }
}
