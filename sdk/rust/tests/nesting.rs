//! The nesting limit (spec/protocol.md): deeply nested MessagePack is malformed input
//! with a message naming the limit, never a stack overflow, in every decoder of the crate.

use crosswire::frame::{decode_body, decode_frame, MAX_NESTING};
use crosswire::{ErrorInfo, Event};

/// A frame: header, then a map `{"t": "heartbeat", "x": <levels nested arrays>}`.
fn frame_with_nested_value(levels: usize) -> Vec<u8> {
    let mut body = vec![0x82, 0xa1, b't', 0xa9];
    body.extend_from_slice(b"heartbeat");
    body.extend_from_slice(&[0xa1, b'x']);
    body.extend(vec![0x91; levels]);
    body.push(0xc0);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

/// Run `f` on a thread with a small stack, so recursion per level would overflow it.
fn small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .expect("decoder did not overflow the stack")
}

#[test]
fn the_limit_is_64() {
    assert_eq!(MAX_NESTING, 64);
}

#[test]
fn frame_at_the_limit_decodes_one_past_is_malformed() {
    // the body map is level 1, so 63 nested arrays under it reach the limit exactly
    let ok = frame_with_nested_value(MAX_NESTING - 1);
    let (frame, used) = decode_frame(&ok, 1 << 20).unwrap().unwrap();
    assert_eq!((frame.kind(), used), ("heartbeat", ok.len()));

    let deep = frame_with_nested_value(MAX_NESTING);
    let err = decode_frame(&deep, 1 << 20).unwrap_err();
    assert_eq!(err.outcome(), "malformed");
    assert!(
        err.to_string().contains("nested deeper than 64 levels"),
        "{err}"
    );
}

#[test]
fn hundred_thousand_deep_array_frame_is_malformed() {
    let err = small_stack(|| {
        // the whole body is the nested array (not even a map)
        let mut body = vec![0x91; 100_000];
        body.push(0xc0);
        decode_body(&body).unwrap_err()
    });
    assert_eq!(err.outcome(), "malformed");
    assert!(err.to_string().contains("nesting limit"), "{err}");

    let err = small_stack(|| {
        let frame = frame_with_nested_value(100_000);
        decode_frame(&frame, 1 << 20).unwrap_err()
    });
    assert_eq!(err.outcome(), "malformed");
}

#[test]
fn hundred_thousand_deep_envelope_and_error_envelope_are_malformed() {
    let (ev, info) = small_stack(|| {
        let mut bytes = [0xdd, 0, 0, 0, 1].repeat(100_000);
        bytes.push(0xc0);
        (
            Event::from_msgpack(&bytes).unwrap_err(),
            ErrorInfo::from_msgpack(&bytes).unwrap_err(),
        )
    });
    assert_eq!(ev.code(), "malformed");
    assert!(
        ev.to_string().contains("nested deeper than 64 levels"),
        "{ev}"
    );
    assert_eq!(info.code(), "malformed");
}

#[test]
fn deep_extension_value_is_malformed_not_wrong_type() {
    // an envelope whose `extensions` map holds a 100-deep array: the parse fails
    // first, as malformed input, before any attribute is read
    let mut ev = Event::with_data("a.b", None);
    ev.extensions.insert("k".into(), 1i64.into());
    let mut bytes = ev.to_msgpack();
    // replace the extension value (the last byte, fixint 1) by a deep array
    bytes.pop();
    bytes.extend([0x91; 100]);
    bytes.push(0xc0);
    let err = Event::from_msgpack(&bytes).unwrap_err();
    assert_eq!(err.code(), "malformed", "{err}");
}
