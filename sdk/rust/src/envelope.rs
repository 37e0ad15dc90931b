//! The event envelope (spec/envelope.md): CloudEvents 1.0 attributes plus typed
//! crosswire extensions, and its canonical MessagePack encoding.
//!
//! [`Event::to_msgpack`] writes the canonical bytes (fixed key order, defaults omitted,
//! a map16 top-level header, smallest integers, extension keys sorted by bytes), so
//! the Python, Go and Rust bindings produce identical bytes for the same event.
//! [`Event::from_msgpack`] enforces every rule and limit of the spec and reports the
//! spec's error codes through [`DecodeError`].

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::attrs::{check_extension_name, is_rfc3339, is_traceparent, new_event_id, now_rfc3339};
use crate::error::{DecodeError, PayloadError};
use crate::fields::{self, Fields};
use crate::mp::{self, Value, Writer};
use crate::payload;

/// The only CloudEvents version this binding reads and writes.
pub const SPECVERSION: &str = "1.0";
/// The envelope schema major version this binding implements.
pub const CWVERSION: u64 = 1;
/// Largest `data`, in bytes.
pub const MAX_DATA: usize = 16 * 1024 * 1024;
/// Most user extensions per event.
pub const MAX_EXTENSIONS: usize = 32;
/// Largest `deadline` (unix milliseconds): 2^63-1, so that every binding holds it in a
/// signed 64-bit integer.
pub(crate) const MAX_DEADLINE: u64 = (1 << 63) - 1;
/// Largest str/bin extension value, in bytes.
pub const MAX_EXTENSION_VALUE: usize = 4096;
/// The content type of payloads written by [`Event::new`].
pub const MSGPACK: &str = "application/msgpack";

/// Attribute keys of the envelope; user extensions may not reuse them.
pub const RESERVED_NAMES: [&str; 20] = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
    "cwversion",
    "correlationid",
    "causationid",
    "traceparent",
    "tracestate",
    "partitionkey",
    "idempotencykey",
    "deadline",
    "attempt",
    "extensions",
];

/// The value of a user extension attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionValue {
    /// A string, at most 4096 characters.
    Str(String),
    /// A 64-bit signed integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// Bytes, at most 4096 (base64 in the JSON form).
    Bin(Vec<u8>),
}

impl From<&str> for ExtensionValue {
    fn from(s: &str) -> Self {
        ExtensionValue::Str(s.to_owned())
    }
}
impl From<String> for ExtensionValue {
    fn from(s: String) -> Self {
        ExtensionValue::Str(s)
    }
}
impl From<i64> for ExtensionValue {
    fn from(n: i64) -> Self {
        ExtensionValue::Int(n)
    }
}
impl From<bool> for ExtensionValue {
    fn from(b: bool) -> Self {
        ExtensionValue::Bool(b)
    }
}
impl From<Vec<u8>> for ExtensionValue {
    fn from(b: Vec<u8>) -> Self {
        ExtensionValue::Bin(b)
    }
}

/// One event. `specversion` is always `"1.0"` and `cwversion` always 1, so neither is
/// stored. Optional attributes are `None` when absent; `attempt` defaults to 1.
///
/// Build one with [`Event::new`] (typed payload) or [`Event::with_data`] (raw bytes)
/// and adjust the public fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique per `source` (1..256 characters).
    pub id: String,
    /// URI-reference of the producer (1..1024 characters).
    pub source: String,
    /// The CloudEvents `type`: the routing key (1..256 characters).
    pub ty: String,
    /// Subject of the event within the source.
    pub subject: Option<String>,
    /// RFC 3339 time of the occurrence.
    pub time: Option<String>,
    /// Media type of `data`.
    pub datacontenttype: Option<String>,
    /// URI of the schema of `data`.
    pub dataschema: Option<String>,
    /// The payload, opaque bytes.
    pub data: Option<Vec<u8>>,
    /// Id shared by every event of one business flow.
    pub correlationid: Option<String>,
    /// Id of the event that caused this one.
    pub causationid: Option<String>,
    /// W3C trace context, `00-<32 hex>-<16 hex>-<2 hex>`.
    pub traceparent: Option<String>,
    /// W3C tracestate.
    pub tracestate: Option<String>,
    /// Order key: same key, handled in submission order.
    pub partitionkey: Option<String>,
    /// Dedup key; [`Event::dedup_key`] falls back to `id`.
    pub idempotencykey: Option<String>,
    /// Unix epoch milliseconds after which the attempt is a timeout; at most 2^63-1.
    pub deadline: Option<u64>,
    /// Delivery attempt number, 1-based.
    pub attempt: u64,
    /// User extension attributes, kept sorted by name (the canonical order).
    pub extensions: BTreeMap<String, ExtensionValue>,
}

impl Event {
    /// A new event whose `data` is `payload` as MessagePack (a map for structs),
    /// `datacontenttype` `application/msgpack`, a fresh id, the current time and
    /// source `crosswire` (a worker's [`crate::Context::emit`] sets it to the worker name).
    ///
    /// # Errors
    /// [`PayloadError::MsgpackEncode`] when `payload` cannot be serialised.
    pub fn new<T: Serialize + ?Sized>(
        ty: impl Into<String>,
        payload: &T,
    ) -> Result<Event, PayloadError> {
        let data = payload::to_msgpack(payload)?;
        let mut event = Event::with_data(ty, Some(data));
        event.datacontenttype = Some(MSGPACK.to_owned());
        Ok(event)
    }

    /// A new event with raw `data` (no content type), a fresh id and the current time.
    pub fn with_data(ty: impl Into<String>, data: Option<Vec<u8>>) -> Event {
        Event {
            id: new_event_id(),
            source: "crosswire".to_owned(),
            ty: ty.into(),
            subject: None,
            time: Some(now_rfc3339()),
            datacontenttype: None,
            dataschema: None,
            data,
            correlationid: None,
            causationid: None,
            traceparent: None,
            tracestate: None,
            partitionkey: None,
            idempotencykey: None,
            deadline: None,
            attempt: 1,
            extensions: BTreeMap::new(),
        }
    }

    /// `data` deserialised into `T` under spec/payloads.md: JSON when
    /// `datacontenttype` is `application/json` or a `+json` type, else MessagePack
    /// (also when it is absent). The same payload gives the same `T` either way.
    ///
    /// # Errors
    /// [`PayloadError`]; a handler's `?` turns it into a permanent `invalid_argument`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        let data = self.data.as_deref().ok_or(PayloadError::NoData)?;
        if self.is_json() {
            payload::from_json(data)
        } else {
            payload::from_msgpack(data)
        }
    }

    /// Whether `data` is JSON by its `datacontenttype`.
    pub fn is_json(&self) -> bool {
        self.datacontenttype.as_deref().is_some_and(is_json_type)
    }

    /// What deduplication keys on: the idempotency key, else the id.
    pub fn dedup_key(&self) -> &str {
        self.idempotencykey.as_deref().unwrap_or(&self.id)
    }

    /// The canonical MessagePack bytes. Does not validate; see [`Event::validate`].
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128 + self.data.as_ref().map_or(0, Vec::len));
        let opt_str = [
            &self.subject,
            &self.time,
            &self.datacontenttype,
            &self.dataschema,
        ];
        let ext_str = [
            &self.correlationid,
            &self.causationid,
            &self.traceparent,
            &self.tracestate,
            &self.partitionkey,
            &self.idempotencykey,
        ];
        let count = 4
            + opt_str.iter().filter(|s| s.is_some()).count()
            + usize::from(self.data.is_some())
            + ext_str.iter().filter(|s| s.is_some()).count()
            + usize::from(self.deadline.is_some())
            + usize::from(self.attempt != 1)
            + usize::from(!self.extensions.is_empty());
        // at most 19 keys, so the u16 cannot overflow
        w.map16(count as u16);
        w.kv_str("specversion", SPECVERSION);
        w.kv_str("id", &self.id);
        w.kv_str("source", &self.source);
        w.kv_str("type", &self.ty);
        for (key, value) in ["subject", "time", "datacontenttype", "dataschema"]
            .iter()
            .zip(opt_str)
        {
            if let Some(v) = value {
                w.kv_str(key, v);
            }
        }
        if let Some(data) = &self.data {
            w.str("data");
            w.bin(data);
        }
        let ext_keys = [
            "correlationid",
            "causationid",
            "traceparent",
            "tracestate",
            "partitionkey",
            "idempotencykey",
        ];
        for (key, value) in ext_keys.iter().zip(ext_str) {
            if let Some(v) = value {
                w.kv_str(key, v);
            }
        }
        if let Some(deadline) = self.deadline {
            w.kv_uint("deadline", deadline);
        }
        if self.attempt != 1 {
            w.kv_uint("attempt", self.attempt);
        }
        if !self.extensions.is_empty() {
            w.str("extensions");
            w.map(self.extensions.len() as u32);
            // BTreeMap<String, _> iterates in byte order: the canonical order
            for (name, value) in &self.extensions {
                w.str(name);
                match value {
                    ExtensionValue::Str(s) => w.str(s),
                    ExtensionValue::Int(n) => w.sint(*n),
                    ExtensionValue::Bool(b) => w.bool(*b),
                    ExtensionValue::Bin(b) => w.bin(b),
                }
            }
        }
        w.into_vec()
    }

    /// Decode and validate an envelope. Unknown keys are ignored.
    ///
    /// # Errors
    /// [`DecodeError`], whose [`DecodeError::code`] is the spec's code.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Event, DecodeError> {
        let value = mp::parse(bytes)?;
        let Value::Map(pairs) = value else {
            return Err(DecodeError::Malformed(format!(
                "the envelope must be a map, got {}",
                value.kind()
            )));
        };
        let f = Fields::new(&pairs)?;
        match f.get("specversion") {
            None => return Err(DecodeError::MissingField("specversion")),
            Some(v) => {
                let s = fields::string("specversion", v)?;
                if s.is_empty() {
                    return Err(DecodeError::MissingField("specversion"));
                }
                if s != SPECVERSION {
                    return Err(DecodeError::InvalidValue(format!(
                        "specversion must be \"1.0\", got {s:?}"
                    )));
                }
            }
        }
        if let Some(v) = f.get("cwversion") {
            let n = fields::int("cwversion", v)?;
            if n != i128::from(CWVERSION) {
                return Err(DecodeError::UnsupportedVersion(n));
            }
        }
        let required = |key: &'static str| -> Result<String, DecodeError> {
            match f.get(key) {
                None => Err(DecodeError::MissingField(key)),
                Some(v) => fields::string(key, v),
            }
        };
        let optional = |key: &'static str| -> Result<Option<String>, DecodeError> {
            f.get(key).map(|v| fields::string(key, v)).transpose()
        };
        let attempt = match f.get("attempt") {
            None => 1,
            Some(v) => fields::uint("attempt", v)?,
        };
        let data = match f.get("data") {
            None => None,
            Some(Value::Bin(b)) => {
                if b.len() > MAX_DATA {
                    return Err(DecodeError::TooLarge(format!(
                        "data is {} bytes > {MAX_DATA}",
                        b.len()
                    )));
                }
                Some(b.to_vec())
            }
            Some(v) => return Err(fields::wrong_type("data", "bin", v)),
        };
        let extensions = match f.get("extensions") {
            None => BTreeMap::new(),
            Some(Value::Map(pairs)) => decode_extensions(pairs)?,
            Some(v) => return Err(fields::wrong_type("extensions", "map", v)),
        };
        let event = Event {
            id: required("id")?,
            source: required("source")?,
            ty: required("type")?,
            subject: optional("subject")?,
            time: optional("time")?,
            datacontenttype: optional("datacontenttype")?,
            dataschema: optional("dataschema")?,
            data,
            correlationid: optional("correlationid")?,
            causationid: optional("causationid")?,
            traceparent: optional("traceparent")?,
            tracestate: optional("tracestate")?,
            partitionkey: optional("partitionkey")?,
            idempotencykey: optional("idempotencykey")?,
            deadline: f
                .get("deadline")
                .map(|v| fields::uint("deadline", v))
                .transpose()?,
            attempt,
            extensions,
        };
        event.validate()?;
        Ok(event)
    }

    /// Check every rule and limit of spec/envelope.md.
    ///
    /// # Errors
    /// The first broken rule, with the code a decoder would report for it.
    pub fn validate(&self) -> Result<(), DecodeError> {
        required_len("id", &self.id, 256)?;
        required_len("source", &self.source, 1024)?;
        required_len("type", &self.ty, 256)?;
        optional_len("subject", &self.subject, 1024)?;
        optional_len("time", &self.time, 64)?;
        optional_len("datacontenttype", &self.datacontenttype, 256)?;
        optional_len("dataschema", &self.dataschema, 1024)?;
        optional_len("correlationid", &self.correlationid, 256)?;
        optional_len("causationid", &self.causationid, 256)?;
        optional_len("tracestate", &self.tracestate, 512)?;
        optional_len("partitionkey", &self.partitionkey, 256)?;
        optional_len("idempotencykey", &self.idempotencykey, 256)?;
        if let Some(data) = &self.data {
            if data.len() > MAX_DATA {
                return Err(DecodeError::TooLarge(format!(
                    "data is {} bytes > {MAX_DATA}",
                    data.len()
                )));
            }
        }
        if let Some(t) = &self.time {
            if !is_rfc3339(t) {
                return Err(DecodeError::InvalidValue(format!(
                    "time {t:?} is not RFC 3339"
                )));
            }
        }
        if let Some(tp) = &self.traceparent {
            if !is_traceparent(tp) {
                return Err(DecodeError::InvalidValue(format!(
                    "traceparent {tp:?} must be 00-<32 hex>-<16 hex>-<2 hex>, lower case"
                )));
            }
        }
        if self.attempt == 0 {
            return Err(DecodeError::InvalidValue(
                "attempt must be >= 1, got 0".into(),
            ));
        }
        if let Some(deadline) = self.deadline.filter(|d| *d > MAX_DEADLINE) {
            return Err(DecodeError::InvalidValue(format!(
                "deadline must be <= 2^63-1, got {deadline}"
            )));
        }
        if self.extensions.len() > MAX_EXTENSIONS {
            return Err(DecodeError::TooLarge(format!(
                "{} extensions > {MAX_EXTENSIONS}",
                self.extensions.len()
            )));
        }
        for (name, value) in &self.extensions {
            check_extension_name(name)?;
            let size = match value {
                ExtensionValue::Str(s) => char_len(s),
                ExtensionValue::Bin(b) => b.len(),
                _ => 0,
            };
            if size > MAX_EXTENSION_VALUE {
                return Err(DecodeError::TooLarge(format!(
                    "extension {name:?} is {size} bytes > {MAX_EXTENSION_VALUE}"
                )));
            }
        }
        Ok(())
    }
}

fn decode_extensions(
    pairs: &[(Value<'_>, Value<'_>)],
) -> Result<BTreeMap<String, ExtensionValue>, DecodeError> {
    if pairs.len() > MAX_EXTENSIONS {
        return Err(DecodeError::TooLarge(format!(
            "{} extensions > {MAX_EXTENSIONS}",
            pairs.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (key, value) in pairs {
        let name = match key {
            Value::Str(raw) => std::str::from_utf8(raw).map_err(|_| {
                DecodeError::InvalidExtensionName(String::from_utf8_lossy(raw).into_owned())
            })?,
            other => {
                return Err(DecodeError::InvalidExtensionName(format!(
                    "<{}>",
                    other.kind()
                )))
            }
        };
        check_extension_name(name)?;
        let field = format!("extensions.{name}");
        let value = match value {
            Value::Str(_) => ExtensionValue::Str(fields::string(&field, value)?),
            Value::Bin(b) => ExtensionValue::Bin(b.to_vec()),
            Value::Bool(b) => ExtensionValue::Bool(*b),
            Value::Int(n) => ExtensionValue::Int(i64::try_from(*n).map_err(|_| {
                DecodeError::InvalidValue(format!(
                    "extension {name:?} = {n} does not fit a signed 64-bit integer"
                ))
            })?),
            other => return Err(fields::wrong_type(&field, "str, int, bool or bin", other)),
        };
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

fn required_len(key: &'static str, value: &str, max: usize) -> Result<(), DecodeError> {
    if value.is_empty() {
        return Err(DecodeError::MissingField(key));
    }
    optional_len(key, &Some(value), max)
}

fn optional_len<S: AsRef<str>>(
    key: &str,
    value: &Option<S>,
    max: usize,
) -> Result<(), DecodeError> {
    match value {
        Some(v) if char_len(v.as_ref()) > max => Err(DecodeError::TooLarge(format!(
            "{key} is {} characters > {max}",
            char_len(v.as_ref())
        ))),
        _ => Ok(()),
    }
}

/// Limits count characters (code points); the byte length bounds it from above.
fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether `content_type` means JSON (`application/json` or any `+json` type).
pub fn is_json_type(content_type: &str) -> bool {
    let media = media_type(content_type);
    media == "application/json" || media.ends_with("+json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_payload_roundtrip() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Order {
            order_id: i64,
            sku: String,
        }
        let order = Order {
            order_id: 7,
            sku: "A-1".into(),
        };
        let ev = Event::new("order.created", &order).unwrap();
        assert_eq!(
            ev.data.as_deref().unwrap()[0],
            0x82,
            "structs are written as maps"
        );
        let back = Event::from_msgpack(&ev.to_msgpack()).unwrap();
        assert_eq!(back.decode::<Order>().unwrap(), order);
        let mut json = back.clone();
        json.datacontenttype = Some("application/cloudevents+json".into());
        json.data = Some(br#"{"order_id":7,"sku":"A-1"}"#.to_vec());
        assert_eq!(json.decode::<Order>().unwrap(), order);
        // spec/payloads.md: any other content type is MessagePack
        json.datacontenttype = Some("text/plain".into());
        assert!(matches!(
            json.decode::<Order>(),
            Err(PayloadError::Msgpack(_))
        ));
        json.data = back.data.clone();
        assert_eq!(json.decode::<Order>().unwrap(), order);
    }
}
