//! Runs every shared vector in spec/vectors (envelope, errors, frames) against this
//! binding: decode, JSON form, canonical re-encoding, and exact error codes/outcomes.

mod common;
use common::{hex, load, unhex};

use crosswire::frame::{decode_frame, Frame};
use crosswire::{ErrorInfo, Event};
use serde_json::{json, Value};

/// The hex a canonical encoder must produce for a valid vector.
fn expected_hex(v: &Value) -> &str {
    if v.get("reencode") == Some(&Value::Bool(false)) {
        v["canonical_hex"].as_str().expect("canonical_hex")
    } else {
        v["hex"].as_str().unwrap()
    }
}

#[test]
fn envelope_valid() {
    let vectors = load("envelope/valid");
    for (name, v) in &vectors {
        let bytes = unhex(v["hex"].as_str().unwrap());
        let event = Event::from_msgpack(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(event.to_json_value(), v["event"], "{name}: JSON form");
        assert_eq!(
            hex(&event.to_msgpack()),
            expected_hex(v),
            "{name}: re-encoding"
        );
        // the JSON form reads back to the same event, except bin extensions (base64 in
        // JSON is indistinguishable from a string)
        let has_bin_ext = event
            .extensions
            .values()
            .any(|x| matches!(x, crosswire::ExtensionValue::Bin(_)));
        if !has_bin_ext {
            let back = Event::from_json_value(&v["event"])
                .unwrap_or_else(|e| panic!("{name}: from JSON: {e}"));
            assert_eq!(back.to_json_value(), v["event"], "{name}: JSON roundtrip");
        }
    }
    assert!(
        vectors.len() >= 40,
        "expected the full valid set, got {}",
        vectors.len()
    );
}

#[test]
fn envelope_invalid() {
    for (name, v) in load("envelope/invalid") {
        let bytes = unhex(v["hex"].as_str().unwrap());
        match Event::from_msgpack(&bytes) {
            Ok(ev) => panic!(
                "{name}: decoded but should fail with {}: {ev:?}",
                v["error"]
            ),
            Err(e) => {
                assert_eq!(e.code(), v["error"].as_str().unwrap(), "{name}: {e}");
                if let Some(part) = v.get("message_contains").and_then(Value::as_str) {
                    assert!(e.to_string().contains(part), "{name}: {e} lacks {part:?}");
                }
            }
        }
    }
}

#[test]
fn errors_valid() {
    for (name, v) in load("errors/valid") {
        let bytes = unhex(v["hex"].as_str().unwrap());
        let info = ErrorInfo::from_msgpack(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.to_json_value(), v["error_info"], "{name}: JSON form");
        assert_eq!(
            hex(&info.to_msgpack()),
            expected_hex(&v),
            "{name}: re-encoding"
        );
    }
}

#[test]
fn errors_invalid() {
    for (name, v) in load("errors/invalid") {
        let bytes = unhex(v["hex"].as_str().unwrap());
        match ErrorInfo::from_msgpack(&bytes) {
            Ok(info) => panic!(
                "{name}: decoded but should fail with {}: {info:?}",
                v["error"]
            ),
            Err(e) => assert_eq!(e.code(), v["error"].as_str().unwrap(), "{name}: {e}"),
        }
    }
}

fn bin(b: &[u8]) -> Value {
    json!({ "$bin": hex(b) })
}

/// The vectors' JSON view of a frame body (bin fields as `{"$bin": hex}`).
fn frame_json(frame: &Frame) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("t".into(), frame.kind().into());
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    match frame {
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
            put("versions", json!(versions));
            put("name", json!(name));
            put("runtime", json!(runtime));
            put("types", json!(types));
            put("max_in_flight", json!(max_in_flight));
            put("max_frame", json!(max_frame));
            if let Some(pid) = pid {
                put("pid", json!(pid));
            }
            if let Some(sdk) = sdk {
                put("sdk", json!(sdk));
            }
            if let Some(schemas) = schemas {
                let map: serde_json::Map<String, Value> =
                    schemas.iter().map(|(t, u)| (t.clone(), json!(u))).collect();
                put("schemas", Value::Object(map));
            }
            if let Some(token) = token {
                put("token", json!(token));
            }
        }
        Frame::Welcome {
            version,
            max_frame,
            heartbeat_ms,
            node,
        } => {
            put("version", json!(version));
            put("max_frame", json!(max_frame));
            put("heartbeat_ms", json!(heartbeat_ms));
            put("node", json!(node));
        }
        Frame::Reject { reason } => put("reason", json!(reason)),
        Frame::Deliver {
            id,
            envelope,
            deadline,
        } => {
            put("id", json!(id));
            put("envelope", bin(envelope));
            put("deadline", json!(deadline));
        }
        Frame::Result {
            id,
            ok,
            error,
            start_ns,
            duration_ns,
            emitted,
        } => {
            put("id", json!(id));
            put("ok", json!(ok));
            if let Some(error) = error {
                put("error", error.to_json_value());
            }
            put("start_ns", json!(start_ns));
            put("duration_ns", json!(duration_ns));
            if !emitted.is_empty() {
                put(
                    "emitted",
                    Value::Array(emitted.iter().map(|e| bin(e)).collect()),
                );
            }
        }
        Frame::Goodbye {
            reason: Some(reason),
        } => put("reason", json!(reason)),
        Frame::Error { message } => put("message", json!(message)),
        _ => {}
    }
    Value::Object(m)
}

const MAX: u32 = crosswire::frame::DEFAULT_MAX_FRAME;

#[test]
fn frames_valid() {
    for (name, v) in load("frames/valid") {
        let bytes = unhex(v["hex"].as_str().unwrap());
        let (frame, used) = decode_frame(&bytes, MAX)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: incomplete"));
        assert_eq!(used, bytes.len(), "{name}: consumed");
        assert_eq!(frame_json(&frame), v["frame"], "{name}: JSON view");
        assert_eq!(
            hex(&frame.encode()),
            v["hex"].as_str().unwrap(),
            "{name}: re-encoding"
        );
        // an envelope inside a frame is itself a valid envelope
        if let Frame::Deliver { envelope, .. } = &frame {
            Event::from_msgpack(envelope).unwrap_or_else(|e| panic!("{name}: inner envelope: {e}"));
        }
    }
}

#[test]
fn frames_invalid() {
    for (name, v) in load("frames/invalid") {
        let bytes = unhex(v["hex"].as_str().unwrap());
        let max = u32::try_from(v["max_frame"].as_u64().unwrap()).unwrap();
        let (outcome, message) = match decode_frame(&bytes, max) {
            Ok(None) => ("incomplete".to_owned(), String::new()),
            Ok(Some((frame, _))) => (format!("decoded {frame:?}"), String::new()),
            Err(e) => (e.outcome().to_owned(), e.to_string()),
        };
        assert_eq!(outcome, v["outcome"].as_str().unwrap(), "{name}");
        if let Some(part) = v.get("message_contains").and_then(Value::as_str) {
            assert!(message.contains(part), "{name}: {message:?} lacks {part:?}");
        }
    }
}

#[test]
fn frames_unknown_type_is_skipped() {
    for (name, v) in load("frames/unknown") {
        let bytes = unhex(v["hex"].as_str().unwrap());
        let (frame, used) = decode_frame(&bytes, MAX).unwrap().expect("complete");
        assert_eq!(used, bytes.len(), "{name}");
        assert_eq!(
            frame,
            Frame::Unknown {
                t: v["t"].as_str().unwrap().to_owned()
            },
            "{name}"
        );
    }
}

#[test]
fn too_large_is_decided_from_the_header_alone() {
    // only the 4-byte header is present: the decision needs nothing else
    let err = decode_frame(&[0xff, 0xff, 0xff, 0xff], MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        "frame too large: 4294967295 bytes > max 1114112"
    );
}
