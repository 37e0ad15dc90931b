//! Runs every vector in spec/vectors/headers against this binding: the NATS form of an
//! event (CloudEvents binary content mode) both ways, byte for byte, and the exact
//! error codes; plus a round trip of every envelope vector through that form.

mod common;
use common::{hex, load, unhex};
use std::collections::BTreeMap;

use crosswire::binary::{from_binary, to_binary, EXT_TYPES};
use crosswire::Event;
use serde_json::Value;

fn headers(v: &Value) -> BTreeMap<String, String> {
    v["headers"]
        .as_object()
        .expect("headers")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().expect("header values are strings").to_owned(),
            )
        })
        .collect()
}

#[test]
fn header_vectors_valid() {
    let vectors = load("headers/valid");
    let mut directions = BTreeMap::new();
    for (name, v) in &vectors {
        let direction = v["direction"].as_str().unwrap_or_default();
        *directions.entry(direction.to_owned()).or_insert(0) += 1;
        let want = Event::from_msgpack(&unhex(v["envelope_hex"].as_str().unwrap()))
            .unwrap_or_else(|e| panic!("{name}: envelope_hex: {e}"));
        assert_eq!(want.to_json_value(), v["event"], "{name}: event");

        let body = unhex(v["body_hex"].as_str().unwrap());
        let got = from_binary(&headers(v), &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}: from_binary");

        match direction {
            "both" => {
                let (written, body) = to_binary(&want);
                let as_map: BTreeMap<String, String> = written.iter().cloned().collect();
                assert_eq!(
                    as_map.len(),
                    written.len(),
                    "{name}: a header written twice"
                );
                assert_eq!(as_map, headers(v), "{name}: to_binary headers");
                assert_eq!(hex(&body), v["body_hex"], "{name}: to_binary body");
            }
            "decode" => {}
            other => panic!("{name}: direction {other:?} is neither both nor decode"),
        }
    }
    assert!(
        directions.get("both").is_some_and(|n| *n > 0)
            && directions.get("decode").is_some_and(|n| *n > 0),
        "directions {directions:?}: want vectors of both kinds"
    );
}

#[test]
fn header_vectors_invalid() {
    for (name, v) in load("headers/invalid") {
        let body = unhex(v["body_hex"].as_str().unwrap());
        match from_binary(&headers(&v), &body) {
            Ok(event) => panic!("{name}: decoded {event:?}, want {}", v["error"]),
            Err(e) => assert_eq!(e.code(), v["error"], "{name}: {e}"),
        }
    }
}

/// The `ce-*` headers come in the order of the spec's table, user extensions after the
/// attributes and sorted by name, `Crosswire-Ext-Types` last.
#[test]
fn headers_are_written_in_the_spec_order() {
    let table = [
        "ce-specversion",
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-subject",
        "ce-time",
        "ce-dataschema",
        "ce-correlationid",
        "ce-causationid",
        "ce-traceparent",
        "ce-tracestate",
        "ce-partitionkey",
        "ce-idempotencykey",
        "ce-deadline",
        "ce-datacontenttype",
        "content-type",
    ];
    for (name, v) in load("headers/valid") {
        if v["direction"] != "both" {
            continue;
        }
        let event = Event::from_msgpack(&unhex(v["envelope_hex"].as_str().unwrap())).unwrap();
        let (written, _) = to_binary(&event);
        let names: Vec<&str> = written.iter().map(|(k, _)| k.as_str()).collect();
        let attrs: Vec<&str> = names
            .iter()
            .copied()
            .take_while(|n| table.contains(n))
            .collect();
        let mut expected = attrs.clone();
        expected.sort_by_key(|n| table.iter().position(|t| t == n));
        assert_eq!(attrs, expected, "{name}");
        let mut rest = &names[attrs.len()..];
        if rest.last() == Some(&EXT_TYPES) {
            rest = &rest[..rest.len() - 1];
        }
        assert!(
            rest.windows(2).all(|w| w[0] < w[1]) && rest.iter().all(|n| n.starts_with("ce-")),
            "{name}: extensions {rest:?}"
        );
    }
}

/// Every envelope vector survives the NATS form, except what binary mode does not carry:
/// `attempt` (the broker's delivery count) and data that is present but empty.
#[test]
fn envelope_vectors_round_trip_through_binary_mode() {
    for (name, v) in load("envelope/valid") {
        let mut want = Event::from_msgpack(&unhex(v["hex"].as_str().unwrap())).unwrap();
        want.attempt = 1;
        if want.data.as_ref().is_some_and(Vec::is_empty) {
            want.data = None;
        }
        let (written, body) = to_binary(&want);
        for (k, value) in &written {
            assert!(
                value
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && b != b'"'),
                "{name}: header {k} = {value:?}"
            );
        }
        let got = from_binary(written, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn decode_codes() {
    let base = [
        ("ce-specversion", "1.0"),
        ("ce-id", "e"),
        ("ce-source", "/s"),
        ("ce-type", "t"),
    ];
    let code = |extra: &[(&str, &str)]| {
        let mut h: Vec<(&str, &str)> = base.to_vec();
        for (k, v) in extra {
            h.retain(|(name, _)| name != k);
            h.push((k, v));
        }
        from_binary(h, b"").map(|_| ()).map_err(|e| e.code())
    };
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("ce-specversion", "")], "missing_field"),
        (&[("ce-deadline", "-5")], "invalid_value"),
        (
            &[("ce-deadline", "99999999999999999999999")],
            "invalid_value",
        ),
        (&[("ce-deadline", "1_000")], "wrong_type"),
        (&[("ce-deadline", "+7")], "wrong_type"),
        (&[("ce-deadline", " 7 ")], "wrong_type"),
        (&[("ce-deadline", "\"7\"")], "wrong_type"),
        (&[("ce-deadline", "9223372036854775808")], "invalid_value"),
        (&[("ce-deadline", "18446744073709551615")], "invalid_value"),
        (&[("ce-cwversion", "2")], "unsupported_version"),
        (&[("ce-cwversion", "x")], "wrong_type"),
        (
            &[("ce-flag", "yes"), (EXT_TYPES, "flag=bool")],
            "wrong_type",
        ),
        (
            &[("ce-n", "9223372036854775808"), (EXT_TYPES, "n=int")],
            "too_large",
        ),
        (
            &[("ce-n", "-9223372036854775809"), (EXT_TYPES, "n=int")],
            "too_large",
        ),
        (&[("ce-n", "+1"), (EXT_TYPES, "n=int")], "wrong_type"),
        (&[("ce-b", "AP8"), (EXT_TYPES, "b=bytes")], "wrong_type"),
        (&[("ce-data", "x")], "invalid_extension_name"),
        (&[("ce-extensions", "x")], "invalid_extension_name"),
        (&[("ce-attempt", "2")], "invalid_extension_name"),
        (&[("ce-datacontenttype", "%FF")], "invalid_value"),
        (&[("ce-\u{212a}ey", "v")], "invalid_extension_name"),
        (&[("ce-time", "yesterday")], "invalid_value"),
        (&[("ce-subject", "%FF")], "invalid_value"),
        (&[("CE-ID", "other")], "malformed"),
    ];
    for (extra, want) in cases {
        assert_eq!(code(extra), Err(*want), "{extra:?}");
    }
    assert_eq!(
        from_binary([("Nats-Msg-Id", "e")], b"").unwrap_err().code(),
        "truncated"
    );
    for content_type in [
        "application/cloudevents+avro",
        "Application/CloudEvents+Protobuf; x=y",
        "application/cloudevents-batch+json",
    ] {
        assert_eq!(
            from_binary([("Content-Type", content_type)], b"\0")
                .unwrap_err()
                .code(),
            "malformed",
            "{content_type}"
        );
    }
}

/// `ce-datacontenttype` is read when present (as the CloudEvents NATS binding writes
/// it), `Content-Type` otherwise (as HTTP-style writers do).
#[test]
fn datacontenttype_from_either_header() {
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Headers, Option<&str>)] = &[
        (
            &[("ce-datacontenttype", "a/b"), ("Content-Type", "c/d")],
            Some("a/b"),
        ),
        (&[("CE-DataContentType", "a/b")], Some("a/b")),
        (&[("content-type", "c/d")], Some("c/d")),
        (
            &[("ce-datacontenttype", r#""text/plain;%20charset=\"utf-8\"""#)],
            Some(r#"text/plain; charset="utf-8""#),
        ),
        (&[], None),
    ];
    for (extra, want) in cases {
        let mut h = vec![
            ("ce-specversion", "1.0"),
            ("ce-id", "e"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ];
        h.extend_from_slice(extra);
        let event = from_binary(h, b"").unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        assert_eq!(event.datacontenttype.as_deref(), *want, "{extra:?}");
    }
    let mut event = Event::with_data("t", None);
    event.datacontenttype = Some("text/plain; charset=utf-8".into());
    let (written, _) = to_binary(&event);
    assert!(
        written.contains(&("content-type".into(), "text/plain; charset=utf-8".into())),
        "{written:?}"
    );
    assert!(
        !written.iter().any(|(k, _)| k == "ce-datacontenttype"),
        "{written:?}"
    );
    event.datacontenttype = Some("text/plain; name=café".into());
    let (written, _) = to_binary(&event);
    assert!(
        written.contains(&(
            "ce-datacontenttype".into(),
            "text/plain;%20name=caf%C3%A9".into()
        )),
        "{written:?}"
    );
    assert!(
        !written.iter().any(|(k, _)| k == "content-type"),
        "{written:?}"
    );
}

/// Structured mode is any spelling of `application/cloudevents+json` or
/// `application/cloudevents`, parameters aside.
#[test]
fn structured_media_types() {
    let event = Event::with_data("t", None);
    let body = event.to_json();
    for content_type in [
        "application/cloudevents+json",
        "application/cloudevents",
        "Application/CloudEvents; charset=utf-8",
        " APPLICATION/CLOUDEVENTS+JSON ;charset=utf-8",
    ] {
        let got = from_binary([("Content-Type", content_type)], body.as_bytes())
            .unwrap_or_else(|e| panic!("{content_type}: {e}"));
        assert_eq!(got, event, "{content_type}");
    }
}

/// `deadline` is at most 2^63-1 in every form an event is read from.
#[test]
fn deadline_bound_in_binary_and_envelope_decoders() {
    let mut event = Event::with_data("t", None);
    event.deadline = Some((1 << 63) - 1);
    let mp = event.to_msgpack();
    let js = event.to_json();
    let (headers, body) = to_binary(&event);
    assert_eq!(Event::from_msgpack(&mp).unwrap(), event);
    assert_eq!(Event::from_json(&js).unwrap(), event);
    assert_eq!(from_binary(headers.clone(), &body).unwrap(), event);

    let max = [0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    let at = mp
        .windows(max.len())
        .position(|w| w == max)
        .expect("a uint64 deadline");
    let mut mp_over = mp.clone();
    mp_over[at + 1..at + 9].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0]);
    let js_over = js.replacen("9223372036854775807", "9223372036854775808", 1);
    let headers_over: Vec<(String, String)> = headers
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "ce-deadline" {
                "9223372036854775808".to_owned()
            } else {
                v
            };
            (k, v)
        })
        .collect();
    assert_eq!(
        Event::from_msgpack(&mp_over).unwrap_err().code(),
        "invalid_value"
    );
    assert_eq!(
        Event::from_json(&js_over).unwrap_err().code(),
        "invalid_value"
    );
    assert_eq!(
        from_binary(headers_over, &body).unwrap_err().code(),
        "invalid_value"
    );
}

#[test]
fn accepted_spellings() {
    let h = [
        ("ce-specversion", "1.0"),
        ("ce-id", "e"),
        ("CE-ID", "e"),
        ("ce-source", "/s"),
        ("ce-type", "t"),
        ("ce-deadline", "7"),
        ("ce-cwversion", "1"),
        ("ce-n", "-9223372036854775808"),
        ("ce-b", ""),
        ("ce-note", "%e2%82%ac"),
        (EXT_TYPES, " n=int, b=bytes "),
        ("content-type", "application/json; charset=utf-8"), // taken as it is
    ];
    let event = from_binary(h, b"{}").unwrap();
    assert_eq!(event.deadline, Some(7));
    assert_eq!(event.attempt, 1);
    assert_eq!(
        event.datacontenttype.as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(event.data.as_deref(), Some(&b"{}"[..]));
    use crosswire::ExtensionValue::{Bin, Int, Str};
    let want = BTreeMap::from([
        ("b".to_owned(), Bin(vec![])),
        ("n".to_owned(), Int(i64::MIN)),
        ("note".to_owned(), Str("€".into())),
    ]);
    assert_eq!(event.extensions, want);
}
