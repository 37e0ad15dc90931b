//! Runs every payload vector in spec/vectors/payloads against this SDK's typed decoding
//! (spec/payloads.md): each form (MessagePack, JSON) decodes through `Event::decode`
//! into the test schemas, declared here as plain serde structs, and is checked field by
//! field; every invalid form fails and reaches the node as `invalid_argument`.

mod common;
use common::{load, unhex};
use std::collections::{BTreeMap, HashMap};

use crosswire::payload::{self, Timestamp};
use crosswire::{ErrorCode, Event, HandlerError, PayloadError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Customer {
    id: i64,
    name: String,
    #[serde(default)] // spec/payloads.md's Rust column
    email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    sku: String,
    qty: u32,
    price: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    order_id: i64,
    customer: Customer,
    items: Vec<Item>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    tags: HashMap<String, String>,
    #[serde(default)]
    paid_at: Option<Timestamp>,
    #[serde(default, with = "crosswire::payload::bytes")]
    blob: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Numbers {
    i8: i8,
    u8: u8,
    i16: i16,
    u16: u16,
    i32: i32,
    u32: u32,
    i64: i64,
    u64: u64,
    f64: f64,
}

/// The forms a vector gives, as events with the matching content type.
fn events(v: &Value) -> Vec<(&'static str, Event)> {
    let mut out = Vec::new();
    if let Some(hex) = v.get("msgpack").and_then(Value::as_str) {
        let mut ev = Event::with_data("test.payload", Some(unhex(hex)));
        ev.datacontenttype = Some(crosswire::MSGPACK.into());
        out.push(("msgpack", ev));
    }
    if let Some(text) = v.get("json").and_then(Value::as_str) {
        let mut ev = Event::with_data("test.payload", Some(text.as_bytes().to_vec()));
        ev.datacontenttype = Some("application/json".into());
        out.push(("json", ev));
    }
    assert!(!out.is_empty(), "vector without a form");
    out
}

/// Every field the schema declares is in `expected`, and nothing else.
fn same_keys(what: &str, expected: &Value, declared: &[&str]) {
    let mut keys: Vec<&str> = expected
        .as_object()
        .unwrap_or_else(|| panic!("{what}: expected is not an object"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut declared = declared.to_vec();
    declared.sort_unstable();
    assert_eq!(
        keys, declared,
        "{what}: expected names every declared field"
    );
}

fn opt_str(v: &Value) -> Option<&str> {
    if v.is_null() {
        None
    } else {
        Some(v.as_str().expect("a string or null"))
    }
}

fn int(v: &Value) -> i128 {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
        .unwrap_or_else(|| panic!("{v} is not an exact integer"))
}

fn check_numbers(what: &str, n: &Numbers, e: &Value) {
    same_keys(
        what,
        e,
        &["i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "f64"],
    );
    assert_eq!(i128::from(n.i8), int(&e["i8"]), "{what}: i8");
    assert_eq!(i128::from(n.u8), int(&e["u8"]), "{what}: u8");
    assert_eq!(i128::from(n.i16), int(&e["i16"]), "{what}: i16");
    assert_eq!(i128::from(n.u16), int(&e["u16"]), "{what}: u16");
    assert_eq!(i128::from(n.i32), int(&e["i32"]), "{what}: i32");
    assert_eq!(i128::from(n.u32), int(&e["u32"]), "{what}: u32");
    assert_eq!(i128::from(n.i64), int(&e["i64"]), "{what}: i64");
    assert_eq!(i128::from(n.u64), int(&e["u64"]), "{what}: u64");
    assert_eq!(Some(n.f64), e["f64"].as_f64(), "{what}: f64");
}

fn check_order(what: &str, o: &Order, e: &Value) {
    same_keys(
        what,
        e,
        &[
            "order_id", "customer", "items", "note", "tags", "paid_at", "blob",
        ],
    );
    assert_eq!(
        i128::from(o.order_id),
        int(&e["order_id"]),
        "{what}: order_id"
    );
    let c = &e["customer"];
    same_keys(&format!("{what}: customer"), c, &["id", "name", "email"]);
    assert_eq!(
        i128::from(o.customer.id),
        int(&c["id"]),
        "{what}: customer.id"
    );
    assert_eq!(
        Some(o.customer.name.as_str()),
        c["name"].as_str(),
        "{what}: customer.name"
    );
    assert_eq!(
        o.customer.email.as_deref(),
        opt_str(&c["email"]),
        "{what}: customer.email"
    );
    let items = e["items"].as_array().expect("items");
    assert_eq!(o.items.len(), items.len(), "{what}: items");
    for (i, (item, ei)) in o.items.iter().zip(items).enumerate() {
        same_keys(&format!("{what}: items[{i}]"), ei, &["sku", "qty", "price"]);
        assert_eq!(
            Some(item.sku.as_str()),
            ei["sku"].as_str(),
            "{what}: items[{i}].sku"
        );
        assert_eq!(
            i128::from(item.qty),
            int(&ei["qty"]),
            "{what}: items[{i}].qty"
        );
        assert_eq!(
            Some(item.price),
            ei["price"].as_f64(),
            "{what}: items[{i}].price"
        );
    }
    assert_eq!(o.note.as_deref(), opt_str(&e["note"]), "{what}: note");
    let tags: BTreeMap<&str, &str> = e["tags"]
        .as_object()
        .expect("tags")
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    let got: BTreeMap<&str, &str> = o
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, tags, "{what}: tags");
    let paid_at = match &e["paid_at"] {
        Value::Null => None,
        t => Some(
            t["$time"]
                .as_str()
                .expect("{\"$time\": ...}")
                .parse::<Timestamp>()
                .unwrap(),
        ),
    };
    assert_eq!(o.paid_at, paid_at, "{what}: paid_at (as instants)");
    assert_eq!(
        o.blob,
        unhex(e["blob"]["$bin"].as_str().expect("$bin")),
        "{what}: blob"
    );
}

fn decode_as<T: DeserializeOwned>(what: &str, ev: &Event) -> T {
    ev.decode()
        .unwrap_or_else(|e| panic!("{what}: does not decode: {e}"))
}

#[test]
fn valid_payloads_decode_to_the_expected_values_in_both_forms() {
    let vectors = load("payloads/valid");
    let mut checked = 0;
    for (name, v) in &vectors {
        for (form, ev) in events(v) {
            let what = format!("{name} ({form})");
            match v["schema"].as_str().unwrap() {
                "Order" => {
                    let order: Order = decode_as(&what, &ev);
                    check_order(&what, &order, &v["expected"]);
                    // what this SDK writes reads back to the same values, in both forms
                    let mp: Order = payload::from_msgpack(&payload::to_msgpack(&order).unwrap())
                        .unwrap_or_else(|e| panic!("{what}: msgpack round trip: {e}"));
                    assert_eq!(mp, order, "{what}: msgpack round trip");
                    let js: Order = payload::from_json(&payload::to_json(&order).unwrap())
                        .unwrap_or_else(|e| panic!("{what}: json round trip: {e}"));
                    assert_eq!(js, order, "{what}: json round trip");
                }
                "Numbers" => {
                    let n: Numbers = decode_as(&what, &ev);
                    check_numbers(&what, &n, &v["expected"]);
                }
                other => panic!("{name}: unknown schema {other}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} forms checked");
}

#[test]
fn invalid_payloads_fail_with_invalid_argument_in_every_form() {
    for (name, v) in load("payloads/invalid") {
        assert_eq!(v["error"], "invalid_argument", "{name}");
        for (form, ev) in events(&v) {
            let what = format!("{name} ({form})");
            let err: PayloadError = match v["schema"].as_str().unwrap() {
                "Order" => match ev.decode::<Order>() {
                    Ok(o) => panic!("{what}: decoded as {o:?}"),
                    Err(e) => e,
                },
                "Numbers" => match ev.decode::<Numbers>() {
                    Ok(n) => panic!("{what}: decoded as {n:?}"),
                    Err(e) => e,
                },
                other => panic!("{name}: unknown schema {other}"),
            };
            // what a handler's `?` sends to the node
            let sent = HandlerError::from(err);
            assert_eq!(sent.code(), ErrorCode::InvalidArgument, "{what}: {sent}");
            assert!(!sent.is_retryable(), "{what}");
        }
    }
}

mod same_values_both_ways {
    use super::*;
    use proptest::prelude::*;

    fn numbers() -> impl Strategy<Value = Numbers> {
        (
            (any::<i8>(), any::<u8>(), any::<i16>(), any::<u16>()),
            (any::<i32>(), any::<u32>(), any::<i64>(), any::<u64>()),
            any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()),
        )
            .prop_map(|((i8, u8, i16, u16), (i32, u32, i64, u64), f64)| Numbers {
                i8,
                u8,
                i16,
                u16,
                i32,
                u32,
                i64,
                u64,
                f64,
            })
    }

    fn timestamp() -> impl Strategy<Value = Timestamp> {
        // years 1..=9999, every nanosecond
        (-62_135_596_800i64..253_402_300_800, 0u32..1_000_000_000)
            .prop_map(|(secs, nanos)| Timestamp::new(secs, nanos).unwrap())
    }

    proptest! {
        #[test]
        fn numbers_read_back_the_same_from_json_and_msgpack(n in numbers()) {
            let mp: Numbers = payload::from_msgpack(&payload::to_msgpack(&n).unwrap()).unwrap();
            let js: Numbers = payload::from_json(&payload::to_json(&n).unwrap()).unwrap();
            prop_assert_eq!(&mp, &n);
            prop_assert_eq!(&js, &n);
        }

        #[test]
        fn timestamps_read_back_the_same_from_json_and_msgpack(t in timestamp(), bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let order = Order {
                order_id: 1,
                customer: Customer { id: 2, name: "n".into(), email: None },
                items: vec![],
                note: None,
                tags: HashMap::new(),
                paid_at: Some(t),
                blob: bytes,
            };
            let mp: Order = payload::from_msgpack(&payload::to_msgpack(&order).unwrap()).unwrap();
            let js: Order = payload::from_json(&payload::to_json(&order).unwrap()).unwrap();
            prop_assert_eq!(&mp, &order);
            prop_assert_eq!(&js, &order);
            let text = t.to_string();
            prop_assert_eq!(text.parse::<Timestamp>().unwrap(), t);
        }
    }
}
