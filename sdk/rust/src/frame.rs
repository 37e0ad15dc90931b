//! Worker-protocol frames (spec/protocol.md): the codec, and no I/O.
//!
//! A frame is a 4-byte big-endian body length and one MessagePack map whose first key
//! `t` names the type. [`decode_frame`] tells "need more bytes" (`Ok(None)`) from the
//! failures of spec/protocol.md and refuses an oversized length from the header alone,
//! before anything of that size is allocated.

use crate::error::FrameError;
use crate::errorinfo::ErrorInfo;
use crate::fields::{self, Fields};
use crate::mp::{self, Value, Writer};

/// Protocol versions this SDK speaks.
pub const PROTOCOL_VERSIONS: [u64; 1] = [1];
/// Default largest frame accepted: a 1 MiB payload plus envelope headroom.
pub const DEFAULT_MAX_FRAME: u32 = 1024 * 1024 + 64 * 1024;
/// Smallest `max_frame` a node accepts in `hello`.
pub const MIN_MAX_FRAME: u32 = 4096;
/// Size of the length header.
pub const HEADER_LEN: usize = 4;
/// Deepest MessagePack container nesting a frame body or envelope may have (the body's
/// map is level 1). Deeper input is `malformed`, with a message naming this limit.
pub const MAX_NESTING: usize = mp::MAX_DEPTH;

/// hello `schemas`: (type, the `dataschema` URIs accepted for it), in wire order.
pub type Schemas = Vec<(String, Vec<String>)>;

/// One protocol frame. Field order is the wire order.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // the fields are documented in spec/protocol.md's table
pub enum Frame {
    /// Worker → node: the opening of the handshake.
    Hello {
        versions: Vec<u64>,
        name: String,
        runtime: String,
        types: Vec<String>,
        max_in_flight: u64,
        max_frame: u64,
        pid: Option<u64>,
        sdk: Option<String>,
        /// Per entry of `types`, the `dataschema` URIs the worker accepts (absent, or a
        /// type without an entry: any). In wire order, which follows `types`.
        schemas: Option<Schemas>,
        /// `CROSSWIRE_TOKEN`, proving a spawned worker is the process the node started.
        token: Option<String>,
    },
    /// Node → worker: handshake accepted.
    Welcome {
        version: u64,
        max_frame: u64,
        heartbeat_ms: u64,
        node: String,
    },
    /// Node → worker: handshake refused; the node closes.
    Reject { reason: String },
    /// Node → worker: start warm-up.
    Init,
    /// Worker → node: warm-up finished.
    Ready,
    /// Node → worker: one delivery (`deadline` unix ms, 0 = none).
    Deliver {
        id: u64,
        envelope: Vec<u8>,
        deadline: u64,
    },
    /// Worker → node: the outcome of one delivery.
    Result {
        id: u64,
        ok: bool,
        error: Option<ErrorInfo>,
        start_ns: u64,
        duration_ns: u64,
        emitted: Vec<Vec<u8>>,
    },
    /// Both ways: liveness when nothing else was sent.
    Heartbeat,
    /// Node → worker: stop taking deliveries, finish in-flight ones.
    Drain,
    /// Worker → node: every delivered id has its result.
    Drained,
    /// Both ways: then close.
    Goodbye { reason: Option<String> },
    /// Both ways: a protocol error; the sender closes.
    Error { message: String },
    /// A type this version does not know (ignored after the handshake).
    Unknown { t: String },
}

impl Frame {
    /// The `t` of this frame.
    pub fn kind(&self) -> &str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::Welcome { .. } => "welcome",
            Frame::Reject { .. } => "reject",
            Frame::Init => "init",
            Frame::Ready => "ready",
            Frame::Deliver { .. } => "deliver",
            Frame::Result { .. } => "result",
            Frame::Heartbeat => "heartbeat",
            Frame::Drain => "drain",
            Frame::Drained => "drained",
            Frame::Goodbye { .. } => "goodbye",
            Frame::Error { .. } => "error",
            Frame::Unknown { t } => t,
        }
    }

    /// The whole frame, header included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Append the whole frame, header included, to `out` (for coalesced writes).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        let mut w = Writer::new();
        std::mem::swap(w.as_vec_mut(), out);
        self.write_body(&mut w);
        *out = w.into_vec();
        let len = (out.len() - start - HEADER_LEN) as u32;
        out[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    }

    fn write_body(&self, w: &mut Writer) {
        let head = |w: &mut Writer, n: u32, t: &str| {
            w.map(n);
            w.kv_str("t", t);
        };
        match self {
            Frame::Hello {
                versions,
                name,
                runtime,
                types,
                max_in_flight,
                max_frame,
                pid,
                sdk,
                schemas,
                token,
            } => {
                head(
                    w,
                    7 + u32::from(pid.is_some())
                        + u32::from(sdk.is_some())
                        + u32::from(schemas.is_some())
                        + u32::from(token.is_some()),
                    "hello",
                );
                w.str("versions");
                w.array(versions.len() as u32);
                versions.iter().for_each(|v| w.uint(*v));
                w.kv_str("name", name);
                w.kv_str("runtime", runtime);
                w.str("types");
                w.array(types.len() as u32);
                types.iter().for_each(|t| w.str(t));
                w.kv_uint("max_in_flight", *max_in_flight);
                w.kv_uint("max_frame", *max_frame);
                if let Some(pid) = pid {
                    w.kv_uint("pid", *pid);
                }
                if let Some(sdk) = sdk {
                    w.kv_str("sdk", sdk);
                }
                if let Some(schemas) = schemas {
                    w.str("schemas");
                    w.map(schemas.len() as u32);
                    for (ty, uris) in schemas {
                        w.str(ty);
                        w.array(uris.len() as u32);
                        uris.iter().for_each(|u| w.str(u));
                    }
                }
                if let Some(token) = token {
                    w.kv_str("token", token);
                }
            }
            Frame::Welcome {
                version,
                max_frame,
                heartbeat_ms,
                node,
            } => {
                head(w, 5, "welcome");
                w.kv_uint("version", *version);
                w.kv_uint("max_frame", *max_frame);
                w.kv_uint("heartbeat_ms", *heartbeat_ms);
                w.kv_str("node", node);
            }
            Frame::Reject { reason } => {
                head(w, 2, "reject");
                w.kv_str("reason", reason);
            }
            Frame::Deliver {
                id,
                envelope,
                deadline,
            } => {
                head(w, 4, "deliver");
                w.kv_uint("id", *id);
                w.str("envelope");
                w.bin(envelope);
                w.kv_uint("deadline", *deadline);
            }
            Frame::Result {
                id,
                ok,
                error,
                start_ns,
                duration_ns,
                emitted,
            } => {
                head(
                    w,
                    5 + u32::from(error.is_some()) + u32::from(!emitted.is_empty()),
                    "result",
                );
                w.kv_uint("id", *id);
                w.str("ok");
                w.bool(*ok);
                if let Some(error) = error {
                    w.str("error");
                    error.write(w);
                }
                w.kv_uint("start_ns", *start_ns);
                w.kv_uint("duration_ns", *duration_ns);
                if !emitted.is_empty() {
                    w.str("emitted");
                    w.array(emitted.len() as u32);
                    emitted.iter().for_each(|e| w.bin(e));
                }
            }
            Frame::Goodbye { reason } => {
                head(w, 1 + u32::from(reason.is_some()), "goodbye");
                if let Some(reason) = reason {
                    w.kv_str("reason", reason);
                }
            }
            Frame::Error { message } => {
                head(w, 2, "error");
                w.kv_str("message", message);
            }
            Frame::Init
            | Frame::Ready
            | Frame::Heartbeat
            | Frame::Drain
            | Frame::Drained
            | Frame::Unknown { .. } => {
                head(w, 1, self.kind());
            }
        }
    }
}

/// Check a frame header: the body length, or `empty` / `too_large`.
///
/// # Errors
/// [`FrameError::Empty`] for 0, [`FrameError::TooLarge`] above `max_frame`.
pub fn check_header(header: [u8; HEADER_LEN], max_frame: u32) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max_frame {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame,
        });
    }
    Ok(len as usize)
}

/// Decode the first frame in `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame (`incomplete`), else the
/// frame and the number of bytes it took.
///
/// # Errors
/// [`FrameError`]: `too_large` (from the header alone), `empty`, `malformed`, `invalid`.
pub fn decode_frame(buf: &[u8], max_frame: u32) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = check_header([header[0], header[1], header[2], header[3]], max_frame)?;
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, HEADER_LEN + len)))
}

/// Decode one frame body (no header).
///
/// # Errors
/// [`FrameError::Malformed`] or [`FrameError::Invalid`].
pub fn decode_body(body: &[u8]) -> Result<Frame, FrameError> {
    let value = mp::parse(body).map_err(|e| {
        FrameError::Malformed(match e {
            mp::ParseError::Truncated => "body ends before the MessagePack value does".to_owned(),
            mp::ParseError::Malformed(m) => m,
        })
    })?;
    let Value::Map(pairs) = &value else {
        return Err(FrameError::Malformed(format!(
            "frame body must be a map, got {}",
            value.kind()
        )));
    };
    let f = Fields::new(pairs).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let t = match f.get("t") {
        Some(Value::Str(raw)) => std::str::from_utf8(raw)
            .map_err(|_| FrameError::Malformed("frame type `t` is not valid UTF-8".into()))?,
        Some(other) => {
            return Err(FrameError::Malformed(format!(
                "frame type `t` must be str, got {}",
                other.kind()
            )))
        }
        None => return Err(FrameError::Malformed("frame has no type `t`".into())),
    };
    let r = FrameFields { f: &f, t };
    let frame = match t {
        "hello" => Frame::Hello {
            versions: r.list("versions", |v| r.uint_of("versions[]", v))?,
            name: r.str("name")?,
            runtime: r.str("runtime")?,
            types: r.list("types", |v| r.str_of("types[]", v))?,
            max_in_flight: r.uint("max_in_flight")?,
            max_frame: r.uint("max_frame")?,
            pid: r.opt(|| r.uint("pid"), "pid")?,
            sdk: r.opt(|| r.str("sdk"), "sdk")?,
            schemas: r.opt(|| r.schemas("schemas"), "schemas")?,
            token: r.opt(|| r.str("token"), "token")?,
        },
        "welcome" => Frame::Welcome {
            version: r.uint("version")?,
            max_frame: r.uint("max_frame")?,
            heartbeat_ms: r.uint("heartbeat_ms")?,
            node: r.str("node")?,
        },
        "reject" => Frame::Reject {
            reason: r.str("reason")?,
        },
        "init" => Frame::Init,
        "ready" => Frame::Ready,
        "deliver" => Frame::Deliver {
            id: r.uint("id")?,
            envelope: r.bin_of("envelope", r.need("envelope")?)?,
            deadline: r.uint("deadline")?,
        },
        "result" => Frame::Result {
            id: r.uint("id")?,
            ok: match r.need("ok")? {
                Value::Bool(b) => *b,
                other => return Err(r.wrong("ok", "bool", other)),
            },
            error: r.opt(
                || {
                    ErrorInfo::from_value(r.need("error")?)
                        .map_err(|e| FrameError::Invalid(format!("result error: {e}")))
                },
                "error",
            )?,
            start_ns: r.uint("start_ns")?,
            duration_ns: r.uint("duration_ns")?,
            emitted: r
                .opt(
                    || r.list("emitted", |v| r.bin_of("emitted[]", v)),
                    "emitted",
                )?
                .unwrap_or_default(),
        },
        "heartbeat" => Frame::Heartbeat,
        "drain" => Frame::Drain,
        "drained" => Frame::Drained,
        "goodbye" => Frame::Goodbye {
            reason: r.opt(|| r.str("reason"), "reason")?,
        },
        "error" => Frame::Error {
            message: r.str("message")?,
        },
        other => Frame::Unknown {
            t: other.to_owned(),
        },
    };
    if let Frame::Result { ok, error, .. } = &frame {
        if *ok == error.is_some() {
            return Err(FrameError::Invalid(
                "result: `error` must be present iff `ok` is false".into(),
            ));
        }
    }
    Ok(frame)
}

struct FrameFields<'f, 'v, 'a> {
    f: &'f Fields<'v, 'a>,
    t: &'f str,
}

impl<'v, 'a> FrameFields<'_, 'v, 'a> {
    fn wrong(&self, key: &str, expected: &str, got: &Value<'_>) -> FrameError {
        FrameError::Invalid(format!(
            "{}: `{key}` must be {expected}, got {}",
            self.t,
            got.kind()
        ))
    }

    fn need(&self, key: &str) -> Result<&'v Value<'a>, FrameError> {
        self.f.get(key).ok_or_else(|| {
            FrameError::Invalid(format!("{}: missing required field `{key}`", self.t))
        })
    }

    fn opt<T>(
        &self,
        read: impl FnOnce() -> Result<T, FrameError>,
        key: &str,
    ) -> Result<Option<T>, FrameError> {
        match self.f.get(key) {
            None => Ok(None),
            Some(_) => read().map(Some),
        }
    }

    fn uint_of(&self, key: &str, v: &Value<'_>) -> Result<u64, FrameError> {
        match v {
            Value::Int(n) => u64::try_from(*n).map_err(|_| {
                FrameError::Invalid(format!("{}: `{key}` must be >= 0, got {n}", self.t))
            }),
            other => Err(self.wrong(key, "uint", other)),
        }
    }

    fn uint(&self, key: &str) -> Result<u64, FrameError> {
        self.uint_of(key, self.need(key)?)
    }

    fn str_of(&self, key: &str, v: &Value<'_>) -> Result<String, FrameError> {
        fields::string(key, v).map_err(|e| FrameError::Invalid(format!("{}: {e}", self.t)))
    }

    fn str(&self, key: &str) -> Result<String, FrameError> {
        self.str_of(key, self.need(key)?)
    }

    fn bin_of(&self, key: &str, v: &Value<'_>) -> Result<Vec<u8>, FrameError> {
        match v {
            Value::Bin(b) => Ok(b.to_vec()),
            other => Err(self.wrong(key, "bin", other)),
        }
    }

    /// hello `schemas`: a map of str to arrays of str.
    fn schemas(&self, key: &str) -> Result<Schemas, FrameError> {
        match self.need(key)? {
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| {
                    let ty = self.str_of(key, k)?;
                    let uris = match v {
                        Value::Array(items) => items
                            .iter()
                            .map(|u| self.str_of(key, u))
                            .collect::<Result<Vec<_>, _>>()?,
                        other => return Err(self.wrong(key, "a map of arrays", other)),
                    };
                    Ok((ty, uris))
                })
                .collect(),
            other => Err(self.wrong(key, "map", other)),
        }
    }

    fn list<T>(
        &self,
        key: &str,
        item: impl Fn(&Value<'_>) -> Result<T, FrameError>,
    ) -> Result<Vec<T>, FrameError> {
        match self.need(key)? {
            Value::Array(items) => items.iter().map(item).collect(),
            other => Err(self.wrong(key, "array", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_header_and_body() {
        let frame = Frame::Heartbeat.encode();
        for cut in 0..frame.len() {
            assert_eq!(
                decode_frame(&frame[..cut], DEFAULT_MAX_FRAME),
                Ok(None),
                "cut at {cut}"
            );
        }
        assert_eq!(
            decode_frame(&frame, DEFAULT_MAX_FRAME),
            Ok(Some((Frame::Heartbeat, frame.len())))
        );
    }

    #[test]
    fn result_ok_with_error_is_invalid() {
        let frame = Frame::Result {
            id: 1,
            ok: true,
            error: Some(ErrorInfo::new(crate::ErrorCode::Internal, "x")),
            start_ns: 0,
            duration_ns: 0,
            emitted: vec![],
        };
        assert_eq!(
            decode_frame(&frame.encode(), DEFAULT_MAX_FRAME)
                .unwrap_err()
                .outcome(),
            "invalid"
        );
    }
}
