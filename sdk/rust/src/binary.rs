//! The NATS form of an event: CloudEvents binary content mode (spec/envelope.md, "On
//! NATS: CloudEvents binary content mode").
//!
//! Every attribute but `data`, `attempt` and `datacontenttype` is a `ce-<name>` header;
//! `datacontenttype` is `Content-Type`, as it is (a value that is not printable ASCII
//! travels percent-encoded as `ce-datacontenttype` instead; on reading that one wins)
//! and the body is `data`. User extensions are `ce-<name>`
//! headers holding their canonical string; those that are not strings are listed in
//! `Crosswire-Ext-Types` (`n=int,flag=bool,blob=bytes`) so crosswire reads them back
//! typed. String values are percent-encoded as the CloudEvents bindings say: space,
//! `"`, `%`, control characters, DEL and every non-ASCII character, as UTF-8 octets
//! with upper-case hex. A reader first undoes RFC 7230 quoting (`"…"` with `\`
//! escapes), then percent-decodes.
//!
//! [`from_binary`] also reads structured mode (a `Content-Type` of
//! `application/cloudevents+json` or `application/cloudevents`, the JSON form as the
//! body) and the previous crosswire format (the whole MessagePack envelope as the body).
//!
//! ```
//! use crosswire::binary::{from_binary, to_binary};
//! use crosswire::Event;
//!
//! let mut event = Event::with_data("order.created", Some(b"{}".to_vec()));
//! event.datacontenttype = Some("application/json".into());
//! event.subject = Some("café".into());
//! let (headers, body) = to_binary(&event);
//! assert!(headers.contains(&("ce-subject".into(), "caf%C3%A9".into())));
//! assert_eq!(from_binary(headers, &body).unwrap(), event);
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::attrs::is_extension_name;
use crate::envelope::{Event, ExtensionValue, CWVERSION, MAX_DATA, RESERVED_NAMES, SPECVERSION};
use crate::error::DecodeError;

/// The header that carries `datacontenttype` in binary mode, as it is, and tells
/// structured mode apart.
pub const CONTENT_TYPE: &str = "content-type";
/// `datacontenttype` as the CloudEvents NATS binding carries it; on reading it wins over
/// [`CONTENT_TYPE`].
const CE_DATACONTENTTYPE: &str = "ce-datacontenttype";
/// The bare structured-mode media type, and the prefix of every CloudEvents structured
/// and batch format.
const CLOUDEVENTS: &str = "application/cloudevents";
/// The header listing the user extensions that are not strings, with their type.
pub const EXT_TYPES: &str = "Crosswire-Ext-Types";
/// The content type of CloudEvents structured mode (the JSON form as the body).
pub const STRUCTURED: &str = "application/cloudevents+json";
/// The content type of CloudEvents batch mode, which crosswire does not accept.
pub const STRUCTURED_BATCH: &str = "application/cloudevents-batch+json";

/// The event's headers, in the spec's order, and its body (`data`, empty when absent).
///
/// `attempt` is not written: on NATS the broker's delivery count says which attempt a
/// delivery is. Does not validate; see [`Event::validate`].
pub fn to_binary(event: &Event) -> (Vec<(String, String)>, Vec<u8>) {
    let mut headers = Vec::with_capacity(8 + event.extensions.len());
    headers.push(("ce-specversion".to_owned(), SPECVERSION.to_owned()));
    for (name, value) in string_attrs(event) {
        if let Some(value) = value {
            headers.push((format!("ce-{name}"), escape(value)));
        }
    }
    if let Some(deadline) = event.deadline {
        headers.push(("ce-deadline".to_owned(), deadline.to_string()));
    }
    if let Some(content_type) = &event.datacontenttype {
        if content_type.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            headers.push((CONTENT_TYPE.to_owned(), content_type.clone()));
        } else {
            headers.push((CE_DATACONTENTTYPE.to_owned(), escape(content_type)));
        }
    }
    let mut types = Vec::new();
    // BTreeMap<String, _> iterates sorted by name
    for (name, value) in &event.extensions {
        let (text, kind) = match value {
            ExtensionValue::Str(s) => (escape(s), None),
            ExtensionValue::Int(n) => (n.to_string(), Some("int")),
            ExtensionValue::Bool(b) => (b.to_string(), Some("bool")),
            ExtensionValue::Bin(b) => (B64.encode(b), Some("bytes")),
        };
        headers.push((format!("ce-{name}"), text));
        if let Some(kind) = kind {
            types.push(format!("{name}={kind}"));
        }
    }
    if !types.is_empty() {
        headers.push((EXT_TYPES.to_owned(), types.join(",")));
    }
    (headers, event.data.clone().unwrap_or_default())
}

/// The string attributes carried as `ce-<name>` headers, in the order they are written.
fn string_attrs(event: &Event) -> [(&'static str, Option<&str>); 12] {
    [
        ("id", Some(event.id.as_str())),
        ("source", Some(event.source.as_str())),
        ("type", Some(event.ty.as_str())),
        ("subject", event.subject.as_deref()),
        ("time", event.time.as_deref()),
        ("dataschema", event.dataschema.as_deref()),
        ("correlationid", event.correlationid.as_deref()),
        ("causationid", event.causationid.as_deref()),
        ("traceparent", event.traceparent.as_deref()),
        ("tracestate", event.tracestate.as_deref()),
        ("partitionkey", event.partitionkey.as_deref()),
        ("idempotencykey", event.idempotencykey.as_deref()),
    ]
}

/// The event a NATS message carries: binary mode, structured mode, or the previous
/// crosswire format (the body is the MessagePack envelope and there are no `ce-*`
/// headers, or its `id` equals the `ce-id` header).
///
/// Header names are case-insensitive (ASCII). `datacontenttype` is `ce-datacontenttype`,
/// else `Content-Type`. A string value may be RFC 7230 quoted (`"…"` with `\` escapes):
/// it is unquoted, then percent-decoded. An empty body is no data; `attempt` is 1
/// (the caller knows the delivery count). `headers` is anything that yields name/value
/// pairs: a `BTreeMap` or `HashMap` of strings (owned or borrowed), the `Vec` that
/// [`to_binary`] returns, an array of `(&str, &str)`.
///
/// # Errors
/// [`DecodeError`] with the codes of spec/envelope.md: a `ce-*` header naming an
/// attribute no header carries (`ce-attempt`, `ce-data`, `ce-extensions`) is
/// `invalid_extension_name`; an integer that is not ASCII decimal digits with an
/// optional `-`, a bool that is not `true`/`false`, bytes that are not base64 are
/// `wrong_type`; an int extension beyond 64-bit signed is `too_large`; batch mode,
/// structured mode in a format other than JSON, and two spellings of one header name
/// with different values, are `malformed`.
pub fn from_binary<I, K, V>(headers: I, body: &[u8]) -> Result<Event, DecodeError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let headers = fold(headers)?;
    let media = headers
        .get("content-type")
        .map(|c| media_type(c))
        .unwrap_or_default();
    if media.starts_with(CLOUDEVENTS) {
        return match media.as_str() {
            STRUCTURED | CLOUDEVENTS => {
                let text = std::str::from_utf8(body).map_err(|e| {
                    DecodeError::Malformed(format!("structured mode body is not UTF-8: {e}"))
                })?;
                Event::from_json(text)
            }
            STRUCTURED_BATCH => Err(DecodeError::Malformed(
                "CloudEvents batch mode is not accepted; send one event per message".into(),
            )),
            other => Err(DecodeError::Malformed(format!(
                "structured mode in {other:?}: only the JSON event format is read"
            ))),
        };
    }
    match headers.get("ce-specversion") {
        Some(specversion) if !is_previous_format(&headers, body) => {
            from_headers(specversion, &headers, body)
        }
        _ => Event::from_msgpack(body),
    }
}

/// The headers keyed by their lower-case names; two spellings of one name must agree.
fn fold<I, K, V>(headers: I) -> Result<BTreeMap<String, String>, DecodeError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        let lower = name.as_ref().to_ascii_lowercase();
        let value = value.as_ref();
        match out.get(&lower) {
            Some(previous) if previous != value => {
                return Err(DecodeError::Malformed(format!(
                    "header {lower} sent twice (names are case-insensitive) with different values"
                )))
            }
            Some(_) => {}
            None => {
                out.insert(lower, value.to_owned());
            }
        }
    }
    Ok(out)
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Before binary mode the body was the whole MessagePack envelope (a map16, `0xde`).
fn is_previous_format(headers: &BTreeMap<String, String>, body: &[u8]) -> bool {
    body.first() == Some(&0xde)
        && Event::from_msgpack(body).is_ok_and(|event| Some(&event.id) == headers.get("ce-id"))
}

fn from_headers(
    specversion: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Result<Event, DecodeError> {
    if specversion.is_empty() {
        return Err(DecodeError::MissingField("specversion"));
    }
    if specversion != SPECVERSION {
        return Err(DecodeError::InvalidValue(format!(
            "specversion must be \"1.0\", got {specversion:?}"
        )));
    }
    let mut types = BTreeMap::new();
    if let Some(declared) = headers.get(&EXT_TYPES.to_ascii_lowercase()) {
        for item in declared.split(',') {
            let (name, kind) = item.trim().split_once('=').unwrap_or((item.trim(), ""));
            types.insert(name, kind);
        }
    }
    let mut event = Event {
        id: String::new(),
        source: String::new(),
        ty: String::new(),
        subject: None,
        time: None,
        datacontenttype: None,
        dataschema: None,
        data: None,
        correlationid: None,
        causationid: None,
        traceparent: None,
        tracestate: None,
        partitionkey: None,
        idempotencykey: None,
        deadline: None,
        attempt: 1,
        extensions: BTreeMap::new(),
    };
    // BTreeMap: the headers come sorted, so several problems always report the same one
    for (key, raw) in headers {
        let Some(name) = key.strip_prefix("ce-") else {
            continue;
        };
        match name {
            "specversion" | "datacontenttype" => {}
            "id" => event.id = unescape(name, raw)?,
            "source" => event.source = unescape(name, raw)?,
            "type" => event.ty = unescape(name, raw)?,
            "deadline" => event.deadline = Some(header_uint(key, raw)?),
            "cwversion" => {
                let s = decimal(raw).ok_or_else(|| not_decimal(key))?;
                let version = s.parse::<i128>().unwrap_or(i128::MAX);
                if version != i128::from(CWVERSION) {
                    return Err(DecodeError::UnsupportedVersion(version));
                }
            }
            _ => {
                if let Some(slot) = optional_string(&mut event, name) {
                    *slot = Some(unescape(name, raw)?);
                } else if RESERVED_NAMES.contains(&name) || !is_extension_name(name) {
                    return Err(DecodeError::InvalidExtensionName(name.to_owned()));
                } else {
                    let kind = types.get(name).copied().unwrap_or("");
                    let value = typed_extension(key, raw, kind)?;
                    event.extensions.insert(name.to_owned(), value);
                }
            }
        }
    }
    // `ce-datacontenttype` (percent-encoded) wins; `Content-Type` is taken as it is.
    if let Some(escaped) = headers.get(CE_DATACONTENTTYPE) {
        event.datacontenttype = Some(unescape("datacontenttype", escaped)?);
    } else if let Some(content_type) = headers.get("content-type") {
        event.datacontenttype = Some(content_type.to_string());
    }
    if body.len() > MAX_DATA {
        return Err(DecodeError::TooLarge(format!(
            "data is {} bytes > {MAX_DATA}",
            body.len()
        )));
    }
    // An empty body is no data, unless a content type is given: then it is empty data.
    if !body.is_empty() || event.datacontenttype.is_some() {
        event.data = Some(body.to_vec());
    }
    event.validate()?;
    Ok(event)
}

/// Where an optional string attribute carried by a header lives.
fn optional_string<'a>(event: &'a mut Event, name: &str) -> Option<&'a mut Option<String>> {
    Some(match name {
        "subject" => &mut event.subject,
        "time" => &mut event.time,
        "dataschema" => &mut event.dataschema,
        "correlationid" => &mut event.correlationid,
        "causationid" => &mut event.causationid,
        "traceparent" => &mut event.traceparent,
        "tracestate" => &mut event.tracestate,
        "partitionkey" => &mut event.partitionkey,
        "idempotencykey" => &mut event.idempotencykey,
        _ => return None,
    })
}

fn not_decimal(header: &str) -> DecodeError {
    DecodeError::WrongType {
        field: header.to_owned(),
        expected: "a decimal integer",
        got: "other text",
    }
}

/// `raw`, when it is a decimal integer as the spec writes one: an optional `-` and one
/// or more ASCII digits, nothing else (no `+`, no whitespace, no `_`, no other digits).
fn decimal(raw: &str) -> Option<&str> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(raw)
}

/// An unsigned integer header (`deadline`, `cwversion`): not a decimal integer is
/// `wrong_type`, a negative or too large one `invalid_value` (the bound of `deadline`,
/// 2^63-1, is [`Event::validate`]'s).
fn header_uint(header: &str, raw: &str) -> Result<u64, DecodeError> {
    let s = decimal(raw).ok_or_else(|| not_decimal(header))?;
    let magnitude = s.strip_prefix('-').unwrap_or(s);
    if s.starts_with('-') && magnitude.bytes().any(|b| b != b'0') {
        return Err(DecodeError::InvalidValue(format!(
            "{header} must be >= 0, got {s}"
        )));
    }
    magnitude.parse().map_err(|_| {
        DecodeError::InvalidValue(format!(
            "{header} = {s} does not fit an unsigned 64-bit integer"
        ))
    })
}

/// A user extension header read as the type `Crosswire-Ext-Types` declares; undeclared
/// ones are strings.
fn typed_extension(header: &str, raw: &str, kind: &str) -> Result<ExtensionValue, DecodeError> {
    match kind {
        "int" => {
            let s = decimal(raw).ok_or_else(|| not_decimal(header))?;
            s.parse().map(ExtensionValue::Int).map_err(|_| {
                DecodeError::TooLarge(format!(
                    "{header} = {s} does not fit a 64-bit signed integer"
                ))
            })
        }
        "bool" => match raw {
            "true" => Ok(ExtensionValue::Bool(true)),
            "false" => Ok(ExtensionValue::Bool(false)),
            _ => Err(DecodeError::WrongType {
                field: header.to_owned(),
                expected: "true or false",
                got: "other text",
            }),
        },
        "bytes" => B64
            .decode(raw)
            .map(ExtensionValue::Bin)
            .map_err(|_| DecodeError::WrongType {
                field: header.to_owned(),
                expected: "standard base64",
                got: "other text",
            }),
        _ => unescape(header, raw).map(ExtensionValue::Str),
    }
}

fn needs_escape(b: u8) -> bool {
    !(0x21..=0x7e).contains(&b) || b == b'%' || b == b'"'
}

/// Percent-encode as the CloudEvents bindings say: space, `"`, `%`, control characters,
/// DEL and every non-ASCII character (as its UTF-8 octets), with upper-case hex.
fn escape(value: &str) -> String {
    if !value.bytes().any(needs_escape) {
        return value.to_owned();
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len() + 8);
    for b in value.bytes() {
        if needs_escape(b) {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Undo RFC 7230 quoting: a value that starts and ends with `"` is what lies between,
/// each `\` escape replaced by the character it escapes (a `\` before a line feed or
/// at the end stays). Any other value is returned as it is.
fn unquote(value: &str) -> Cow<'_, str> {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return Cow::Borrowed(value);
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek() {
                if next != '\n' {
                    chars.next();
                    out.push(next);
                    continue;
                }
            }
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Undo RFC 7230 quoting (see [`unquote`]), then decode `%XY` (either case of hex); a
/// `%` not followed by two hex digits is kept as it is. The result must be UTF-8
/// (`invalid_value`).
fn unescape(field: &str, value: &str) -> Result<String, DecodeError> {
    let value = unquote(value);
    let value = value.as_ref();
    if !value.contains('%') {
        return Ok(value.to_owned());
    }
    let raw = value.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let pair = raw.get(i + 1..i + 3).and_then(|h| {
            let hi = char::from(h[0]).to_digit(16)?;
            let lo = char::from(h[1]).to_digit(16)?;
            u8::try_from(hi << 4 | lo).ok()
        });
        match (raw[i], pair) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| {
        DecodeError::InvalidValue(format!(
            "{field}: header value {value:?} is not UTF-8 once decoded"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_the_spec() {
        for (plain, escaped) in [
            ("plain/a=b;c", "plain/a=b;c"),
            ("café \"50%\"", "caf%C3%A9%20%2250%25%22"),
            ("text/plain; charset=utf-8", "text/plain;%20charset=utf-8"),
            ("tab\tdel\u{7f}", "tab%09del%7F"),
            ("😀", "%F0%9F%98%80"),
            ("", ""),
        ] {
            assert_eq!(escape(plain), escaped);
            assert_eq!(unescape("x", escaped).unwrap(), plain);
        }
        assert_eq!(unescape("x", "caf%c3%a9").unwrap(), "café");
        assert_eq!(unescape("x", "100%").unwrap(), "100%");
        assert_eq!(unescape("x", "%zz%4").unwrap(), "%zz%4");
        assert_eq!(unescape("x", "a b").unwrap(), "a b");
        assert_eq!(unescape("x", "%C0%A0").unwrap_err().code(), "invalid_value");
    }

    #[test]
    fn quoting_is_undone_before_percent_decoding() {
        for (raw, plain) in [
            (r#""say \"hi\" 100%25""#, r#"say "hi" 100%"#),
            (r#""a\\b""#, r"a\b"),
            (r#""""#, ""),
            (r#""%22""#, "\""),
            (r#""caf\é""#, "café"),
            (r#""a\""#, r"a\"),
            ("\"a\\\nb\"", "a\\\nb"),
            (r#""x\"#, r#""x\"#),
            ("\"", "\""),
            (r#"a"b""#, r#"a"b""#),
        ] {
            assert_eq!(unescape("x", raw).unwrap(), plain, "{raw}");
        }
    }

    #[test]
    fn integers_are_decimal() {
        assert_eq!(header_uint("d", "7").unwrap(), 7);
        assert_eq!(header_uint("d", "-0").unwrap(), 0);
        assert_eq!(header_uint("d", "-5").unwrap_err().code(), "invalid_value");
        assert_eq!(
            header_uint("d", "99999999999999999999999")
                .unwrap_err()
                .code(),
            "invalid_value"
        );
        for bad in [
            "", "+", "-", "+7", " 7", "7 ", "--5", "1_000", "٥", "+-5", "0x10", "soon", "\"7\"",
        ] {
            assert_eq!(
                header_uint("d", bad).unwrap_err().code(),
                "wrong_type",
                "{bad}"
            );
        }
        assert_eq!(
            typed_extension("n", "9223372036854775807", "int").unwrap(),
            ExtensionValue::Int(i64::MAX)
        );
        for (raw, code) in [
            ("9223372036854775808", "too_large"),
            ("-9223372036854775809", "too_large"),
            ("+1", "wrong_type"),
            ("1_000", "wrong_type"),
        ] {
            assert_eq!(
                typed_extension("n", raw, "int").unwrap_err().code(),
                code,
                "{raw}"
            );
        }
    }
}
