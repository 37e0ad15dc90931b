//! Property tests for the frame codec: hostile bytes never panic, every frame
//! round-trips, and any split of a stream into reads yields the same frames.

use crosswire::frame::{decode_frame, Frame, DEFAULT_MAX_FRAME};
use crosswire::{ErrorCode, ErrorInfo};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z0-9._ é]{0,24}").unwrap()
}

fn error_info() -> impl Strategy<Value = ErrorInfo> {
    (
        0..ErrorCode::ALL.len(),
        text(),
        any::<bool>(),
        proptest::option::of(0.0f64..1e6),
        text(),
    )
        .prop_map(|(code, message, retryable, retry_after, detail)| {
            let mut info = ErrorInfo::new(ErrorCode::ALL[code], message);
            info.retryable = retryable;
            info.retry_after = retry_after;
            if !detail.is_empty() {
                info.details.insert(detail.clone(), detail);
            }
            info
        })
}

fn frame() -> impl Strategy<Value = Frame> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        (
            proptest::collection::vec(any::<u64>(), 0..4),
            text(),
            text(),
            proptest::collection::vec(text(), 0..4),
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(text()),
            proptest::option::of(proptest::collection::vec(
                (text(), proptest::collection::vec(text(), 0..3)),
                0..3
            )),
            proptest::option::of(text())
        )
            .prop_map(
                |(
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
                )| {
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
                    }
                }
            ),
        (any::<u64>(), any::<u64>(), any::<u64>(), text()).prop_map(
            |(version, max_frame, heartbeat_ms, node)| Frame::Welcome {
                version,
                max_frame,
                heartbeat_ms,
                node
            }
        ),
        text().prop_map(|reason| Frame::Reject { reason }),
        Just(Frame::Init),
        Just(Frame::Ready),
        Just(Frame::Heartbeat),
        Just(Frame::Drain),
        Just(Frame::Drained),
        (any::<u64>(), bytes.clone(), any::<u64>()).prop_map(|(id, envelope, deadline)| {
            Frame::Deliver {
                id,
                envelope,
                deadline,
            }
        }),
        (
            any::<u64>(),
            proptest::option::of(error_info()),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(bytes, 0..3)
        )
            .prop_map(
                |(id, error, start_ns, duration_ns, emitted)| Frame::Result {
                    id,
                    ok: error.is_none(),
                    emitted: if error.is_none() { emitted } else { Vec::new() },
                    error,
                    start_ns,
                    duration_ns,
                }
            ),
        proptest::option::of(text()).prop_map(|reason| Frame::Goodbye { reason }),
        text().prop_map(|message| Frame::Error { message }),
    ]
}

/// Feed `stream` to the decoder in pieces cut at `cuts`, like reads from a socket.
fn decode_in_pieces(stream: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(stream.len());
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts {
        buf.extend_from_slice(&stream[from..cut]);
        from = cut;
        while let Some((frame, used)) = decode_frame(&buf, DEFAULT_MAX_FRAME).expect("valid stream")
        {
            out.push(frame);
            buf.drain(..used);
        }
    }
    assert!(buf.is_empty(), "bytes left over");
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), max in 0u32..2048) {
        if let Ok(Some((_, used))) = decode_frame(&bytes, max) {
            prop_assert!(used <= bytes.len());
        }
    }

    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 1..256)) {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        if let Ok(Some((_, used))) = decode_frame(&bytes, DEFAULT_MAX_FRAME) {
            prop_assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn encode_then_decode_roundtrips(f in frame()) {
        let bytes = f.encode();
        let (back, used) = decode_frame(&bytes, u32::MAX).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, f);
    }

    #[test]
    fn any_split_gives_the_same_frames(frames in proptest::collection::vec(frame(), 1..6),
                                       cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let mut stream = Vec::new();
        for f in &frames {
            f.encode_into(&mut stream);
        }
        prop_assert_eq!(decode_in_pieces(&stream, &cuts), frames);
    }
}
