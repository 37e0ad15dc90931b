//! The worker against the shipped fake node (`crosswire::testing`) over a real Unix
//! socket: handshake, reject, deliveries and their results, deadlines, panics, emitted
//! events, flow control, heartbeats, drain, shutdown, oversized and too deeply nested frames.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crosswire::frame::{Frame, DEFAULT_MAX_FRAME};
use crosswire::testing::{FakeNode, Reply};
use crosswire::{Context, Error, ErrorCode, Event, HandlerError, Worker};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(5);

#[derive(Serialize, Deserialize)]
struct Sleep {
    ms: u64,
}

fn echo_worker(node: &FakeNode) -> Worker {
    Worker::new("tw").socket(node.path()).handle(
        "test.echo",
        |_ctx: Context, _ev: Event| async move { Ok(()) },
    )
}

fn spawn(worker: Worker) -> JoinHandle<Result<(), Error>> {
    tokio::spawn(worker.run())
}

async fn finish(run: JoinHandle<Result<(), Error>>) -> Result<(), Error> {
    tokio::time::timeout(WAIT, run)
        .await
        .expect("run returns")
        .expect("run does not panic")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn handshake_warmup_then_drain_and_goodbye() {
    let node = FakeNode::new();
    let warmed = Arc::new(AtomicBool::new(false));
    let flag = warmed.clone();
    let run = spawn(
        echo_worker(&node)
            .max_in_flight(7)
            .token("secret-1")
            .on_warmup(move || async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                flag.store(true, Ordering::SeqCst);
                Ok(())
            }),
    );
    let mut conn = node.accept().await;
    let hello = conn
        .handshake_with(Frame::Welcome {
            version: 1,
            max_frame: 65536,
            heartbeat_ms: 1000,
            node: "fake".into(),
        })
        .await;
    assert!(
        warmed.load(Ordering::SeqCst),
        "ready only after the warm-up hook finished"
    );
    match &hello {
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
            assert_eq!(schemas, &None, "no accepts: no schemas");
            assert_eq!(versions, &vec![1]);
            assert_eq!(token.as_deref(), Some("secret-1"), "configured token");
            assert_eq!(name, "tw");
            assert_eq!(runtime, "rust");
            assert_eq!(types, &vec!["test.echo".to_owned()]);
            assert_eq!(*max_in_flight, 7);
            assert_eq!(*max_frame, u64::from(DEFAULT_MAX_FRAME));
            assert_eq!(*pid, Some(u64::from(std::process::id())));
            assert!(sdk.as_deref().unwrap().starts_with("crosswire-rust/"));
        }
        other => panic!("expected hello, got {other:?}"),
    }
    conn.drain().await;
    finish(run).await.expect("clean drain returns Ok");
}

#[tokio::test]
async fn reject_ends_run_with_the_reason() {
    let node = FakeNode::new();
    let run = spawn(echo_worker(&node).protocol_versions(vec![2]));
    let mut conn = node.accept().await;
    match conn.recv().await {
        Frame::Hello { versions, .. } => assert_eq!(versions, vec![2]),
        other => panic!("{other:?}"),
    }
    let reason = "unsupported protocol versions: worker speaks [2], node speaks [1]";
    conn.send(&Frame::Reject {
        reason: reason.into(),
    })
    .await;
    drop(conn);
    let err = finish(run).await.unwrap_err();
    assert_eq!(err.to_string(), format!("rejected by node: {reason}"));
}

#[tokio::test]
async fn results_carry_outcomes_and_error_envelopes() {
    let node = FakeNode::new();
    let run = spawn(
        echo_worker(&node)
            .handle("test.transient", |_ctx: Context, ev: Event| async move {
                Err(HandlerError::retryable(
                    ErrorCode::Unavailable,
                    format!("attempt {}", ev.attempt),
                )
                .retry_after(Duration::from_millis(10)))
            })
            .handle("test.typed", |_ctx: Context, ev: Event| async move {
                let s: Sleep = ev.decode()?;
                if s.ms > 0 {
                    return Err(std::io::Error::other("not zero").into());
                }
                Ok(())
            }),
    );
    let mut conn = node.accept().await;
    conn.handshake().await;

    conn.deliver(1, &Event::with_data("test.echo", None), 0)
        .await;
    let Reply {
        id,
        error,
        start_ns,
        ..
    } = conn.result().await;
    assert_eq!((id, error), (1, None));
    assert!(
        start_ns > 1_700_000_000_000_000_000,
        "start_ns is unix ns: {start_ns}"
    );

    let mut ev = Event::with_data("test.transient", None);
    ev.attempt = 2;
    conn.deliver(2, &ev, 0).await;
    let Reply { id, error, .. } = conn.result().await;
    let error = error.expect("failed");
    assert_eq!(id, 2);
    assert_eq!(
        (error.code, error.retryable, error.retry_after),
        (ErrorCode::Unavailable, true, Some(0.01))
    );
    assert_eq!(error.message, "attempt 2");
    assert_eq!(error.runtime, "rust");

    // a payload that does not decode: `?` gives a permanent invalid_argument
    conn.deliver(3, &Event::with_data("test.typed", Some(vec![0xc1])), 0)
        .await;
    let error = conn.result().await.error.expect("failed");
    assert_eq!(
        (error.code, error.retryable),
        (ErrorCode::InvalidArgument, false)
    );

    // any other error type: retryable handler_error
    conn.deliver(4, &Event::new("test.typed", &Sleep { ms: 3 }).unwrap(), 0)
        .await;
    let error = conn.result().await.error.expect("failed");
    assert_eq!(
        (error.code, error.retryable, error.message.as_str()),
        (ErrorCode::HandlerError, true, "not zero")
    );

    conn.deliver(5, &Event::with_data("test.nobody", None), 0)
        .await;
    let error = conn.result().await.error.expect("failed");
    assert_eq!(
        (error.code, error.retryable),
        (ErrorCode::Unimplemented, false)
    );

    conn.send(&Frame::Deliver {
        id: 6,
        envelope: vec![0x90],
        deadline: 0,
    })
    .await;
    let Reply { id, error, .. } = conn.result().await;
    assert_eq!(
        (id, error.expect("failed").code),
        (6, ErrorCode::InvalidArgument)
    );

    conn.drain().await;
    finish(run).await.unwrap();
}

#[tokio::test]
async fn deadline_gives_timeout_and_panic_gives_handler_error() {
    let node = FakeNode::new();
    let run = spawn(
        echo_worker(&node)
            .handle("test.sleep", |_ctx: Context, ev: Event| async move {
                let s: Sleep = ev.decode()?;
                tokio::time::sleep(Duration::from_millis(s.ms)).await;
                Ok(())
            })
            .handle("test.panic", |_ctx: Context, _ev: Event| async move {
                if now_ms() > 0 {
                    panic!("boom");
                }
                Ok(())
            }),
    );
    let mut conn = node.accept().await;
    conn.handshake().await;

    let started = std::time::Instant::now();
    conn.deliver(
        1,
        &Event::new("test.sleep", &Sleep { ms: 10_000 }).unwrap(),
        now_ms() + 150,
    )
    .await;
    let Reply { id, error, .. } = conn.result().await;
    let error = error.expect("timed out");
    assert_eq!(
        (id, error.code, error.retryable),
        (1, ErrorCode::Timeout, true)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut at the deadline, not after the sleep"
    );

    conn.deliver(2, &Event::with_data("test.panic", None), 0)
        .await;
    let Reply { id, error, .. } = conn.result().await;
    let error = error.expect("panicked");
    assert_eq!(
        (id, error.code, error.retryable),
        (2, ErrorCode::HandlerError, true)
    );
    assert!(error.message.contains("boom"), "{}", error.message);

    // the worker keeps running after a panic
    conn.deliver(3, &Event::with_data("test.echo", None), 0)
        .await;
    assert_eq!(conn.result().await.id, 3);
    conn.drain().await;
    finish(run).await.unwrap();
}

#[tokio::test]
async fn emitted_events_inherit_correlation_trace_and_key() {
    let node = FakeNode::new();
    let run = spawn(
        echo_worker(&node).handle("test.emit", |ctx: Context, ev: Event| async move {
            assert_eq!(ctx.traceparent(), ev.traceparent.as_deref());
            assert_eq!(ctx.tracestate(), Some("k=v"));
            assert_eq!(ctx.event().id, ev.id);
            let mut out = Event::with_data("test.emitted", ev.data.clone());
            out.datacontenttype = ev.datacontenttype.clone();
            ctx.emit(out);
            Ok(())
        }),
    );
    let mut conn = node.accept().await;
    conn.handshake().await;
    let mut incoming = Event::new("test.emit", &Sleep { ms: 1 }).unwrap();
    incoming.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    incoming.tracestate = Some("k=v".into());
    incoming.partitionkey = Some("order-1".into());
    conn.deliver(1, &incoming, 0).await;
    let Reply { error, emitted, .. } = conn.result().await;
    assert_eq!(error, None);
    assert_eq!(emitted.len(), 1);
    let out = emitted[0].clone();
    assert_eq!(out.ty, "test.emitted");
    assert_eq!(out.source, "tw");
    assert_ne!(out.id, incoming.id);
    assert_eq!(
        out.correlationid.as_deref(),
        Some(incoming.id.as_str()),
        "no correlationid: the incoming id"
    );
    assert_eq!(out.causationid.as_deref(), Some(incoming.id.as_str()));
    assert_eq!(out.traceparent, incoming.traceparent);
    assert_eq!(out.tracestate, incoming.tracestate);
    assert_eq!(out.partitionkey, incoming.partitionkey);
    assert_eq!(out.data, incoming.data);
    assert_eq!(out.datacontenttype.as_deref(), Some("application/msgpack"));
    assert!(out.time.is_some());

    // an existing correlation id is propagated as is
    incoming.id = "evt-2".into();
    incoming.correlationid = Some("flow-9".into());
    conn.deliver(2, &incoming, 0).await;
    let out = conn.result().await.emitted[0].clone();
    assert_eq!(
        (out.correlationid.as_deref(), out.causationid.as_deref()),
        (Some("flow-9"), Some("evt-2"))
    );
    conn.drain().await;
    finish(run).await.unwrap();
}

#[tokio::test]
async fn never_more_than_max_in_flight_handlers_run() {
    let node = FakeNode::new();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let run = spawn(echo_worker(&node).max_in_flight(2).handle(
        "test.sleep",
        move |_ctx: Context, _ev: Event| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(40)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        },
    ));
    let mut conn = node.accept().await;
    match conn.handshake().await {
        Frame::Hello { max_in_flight, .. } => assert_eq!(max_in_flight, 2),
        other => panic!("{other:?}"),
    }
    // a misbehaving node sends more than its credit: the worker still runs at most 2
    for id in 1..=6 {
        conn.deliver(id, &Event::with_data("test.sleep", None), 0)
            .await;
    }
    let mut ids: Vec<u64> = Vec::new();
    for _ in 0..6 {
        let Reply { id, error, .. } = conn.result().await;
        assert_eq!(error, None);
        ids.push(id);
    }
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "two ran at once, never more"
    );
    conn.drain().await;
    finish(run).await.unwrap();
}

#[tokio::test]
async fn drain_finishes_in_flight_work_first() {
    let node = FakeNode::new();
    let run = spawn(echo_worker(&node).handle(
        "test.sleep",
        |_ctx: Context, ev: Event| async move {
            let s: Sleep = ev.decode()?;
            tokio::time::sleep(Duration::from_millis(s.ms)).await;
            Ok(())
        },
    ));
    let mut conn = node.accept().await;
    conn.handshake().await;
    conn.deliver(1, &Event::new("test.sleep", &Sleep { ms: 150 }).unwrap(), 0)
        .await;
    conn.deliver(2, &Event::new("test.sleep", &Sleep { ms: 50 }).unwrap(), 0)
        .await;
    conn.send(&Frame::Drain).await;
    let mut done = vec![conn.result().await.id, conn.result().await.id];
    done.sort_unstable();
    assert_eq!(done, vec![1, 2]);
    assert_eq!(
        conn.recv().await,
        Frame::Drained,
        "drained only after every result"
    );
    // a delivery after drain is refused as cancelled, not run
    conn.deliver(3, &Event::with_data("test.echo", None), 0)
        .await;
    let Reply { id, error, .. } = conn.result().await;
    assert_eq!((id, error.unwrap().code), (3, ErrorCode::Cancelled));
    conn.send(&Frame::Goodbye { reason: None }).await;
    finish(run).await.unwrap();
}

#[tokio::test]
async fn shutdown_signal_drains_on_its_own() {
    let node = FakeNode::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = spawn(
        echo_worker(&node)
            .shutdown_signal(async move {
                let _ = stopped.await;
            })
            .handle("test.sleep", |_ctx: Context, _ev: Event| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(())
            }),
    );
    let mut conn = node.accept().await;
    conn.handshake().await;
    conn.deliver(1, &Event::with_data("test.sleep", None), 0)
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    stop.send(()).unwrap();
    let reply = conn.result().await;
    assert_eq!((reply.id, reply.error, reply.emitted), (1, None, vec![]));
    assert_eq!(conn.recv().await, Frame::Drained);
    assert_eq!(
        conn.recv().await,
        Frame::Goodbye {
            reason: Some("sigterm".into())
        }
    );
    assert_eq!(conn.recv_any().await, None, "closed after goodbye");
    finish(run).await.unwrap();
}

#[tokio::test]
async fn oversized_frame_from_node_closes_with_a_clear_error() {
    let node = FakeNode::new();
    let run = spawn(echo_worker(&node));
    let mut conn = node.accept().await;
    conn.handshake().await;
    conn.send_raw(&[0xff, 0xff, 0xff, 0xff]).await;
    assert_eq!(
        conn.recv().await,
        Frame::Error {
            message: "frame too large: 4294967295 bytes > max 1114112".into()
        }
    );
    assert_eq!(conn.recv_any().await, None, "worker closes");
    let err = finish(run).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::FrameTooLarge {
                len: u32::MAX,
                max: 1_114_112
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "frame too large: 4294967295 bytes > max 1114112"
    );
}

#[tokio::test]
async fn deeply_nested_frame_from_node_is_an_error_frame_naming_the_limit() {
    let node = FakeNode::new();
    let run = spawn(echo_worker(&node));
    let mut conn = node.accept().await;
    conn.handshake().await;
    // a 100k-deep array as a whole frame body
    let mut body = vec![0x91; 100_000];
    body.push(0xc0);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(body);
    conn.send_raw(&frame).await;
    match conn.recv().await {
        Frame::Error { message } => assert!(
            message.starts_with("malformed frame: MessagePack nested deeper than 64 levels"),
            "{message}"
        ),
        other => panic!("expected an error frame, got {other:?}"),
    }
    assert_eq!(conn.recv_any().await, None, "worker closes");
    let err = finish(run).await.unwrap_err();
    assert!(
        matches!(&err, Error::Frame(e) if e.outcome() == "malformed"),
        "{err:?}"
    );
}

#[tokio::test]
async fn heartbeats_flow_and_a_silent_node_ends_the_session() {
    let node = FakeNode::new();
    let run = spawn(echo_worker(&node));
    let mut conn = node.accept().await;
    conn.recv().await; // hello
    conn.send(&Frame::Welcome {
        version: 1,
        max_frame: 65536,
        heartbeat_ms: 50,
        node: "fake".into(),
    })
    .await;
    // the worker heartbeats while idle
    assert_eq!(conn.recv_any().await, Some(Frame::Heartbeat));
    // and gives up after 3 silent intervals
    let started = std::time::Instant::now();
    let err = finish(run).await.unwrap_err();
    assert!(
        matches!(err, Error::PeerSilent(d) if d == Duration::from_millis(150)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn failed_warmup_is_reported_and_ends_run() {
    let node = FakeNode::new();
    let run = spawn(
        echo_worker(&node)
            .on_warmup(|| async { Err(HandlerError::new(ErrorCode::Unavailable, "db down")) }),
    );
    let mut conn = node.accept().await;
    conn.recv().await;
    conn.send(&Frame::Welcome {
        version: 1,
        max_frame: 65536,
        heartbeat_ms: 1000,
        node: "fake".into(),
    })
    .await;
    conn.send(&Frame::Init).await;
    assert_eq!(
        conn.recv().await,
        Frame::Error {
            message: "warm-up failed: unavailable: db down".into()
        }
    );
    let err = finish(run).await.unwrap_err();
    assert!(matches!(err, Error::Warmup(_)), "{err:?}");
}

#[tokio::test]
async fn unknown_frames_are_ignored_after_handshake_but_not_before() {
    let node = FakeNode::new();
    let run = spawn(echo_worker(&node));
    let mut conn = node.accept().await;
    conn.handshake().await;
    conn.send(&Frame::Unknown { t: "future".into() }).await;
    conn.deliver(1, &Event::with_data("test.echo", None), 0)
        .await;
    assert_eq!(conn.result().await.id, 1);
    conn.drain().await;
    finish(run).await.unwrap();

    let run = spawn(echo_worker(&node));
    let mut conn = node.accept().await;
    conn.recv().await;
    conn.send(&Frame::Unknown { t: "future".into() }).await;
    assert!(matches!(conn.recv().await, Frame::Error { .. }));
    assert!(matches!(finish(run).await.unwrap_err(), Error::Protocol(_)));
}

#[tokio::test]
async fn an_invalid_pattern_fails_run_before_connecting() {
    // no socket configured: the pattern is checked first
    let err = Worker::new("w")
        .handle("order.>.eu", |_ctx: Context, _ev: Event| async { Ok(()) })
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("`>` must be the last token")),
        "{err:?}"
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    order_id: i64,
    qty: u32,
}

#[tokio::test]
async fn typed_handlers_get_the_same_payload_from_json_and_msgpack() {
    let node = FakeNode::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let run = spawn(echo_worker(&node).handle(
        "order.validated",
        crosswire::typed(move |ctx: Context, order: Order| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                ctx.emit(Event::new("order.seen", &order)?);
                Ok(())
            }
        }),
    ));
    let mut conn = node.accept().await;
    conn.handshake().await;
    let order = Order {
        order_id: 9_007_199_254_740_993, // beyond 2^53: exact in JSON too
        qty: 2,
    };
    let as_msgpack = Event::new("order.validated", &order).unwrap();
    let mut as_json = Event::with_data(
        "order.validated",
        Some(br#"{"qty": 2, "order_id": 9007199254740993, "extra": [1]}"#.to_vec()),
    );
    as_json.datacontenttype = Some("application/json; charset=utf-8".into());
    for ev in [&as_msgpack, &as_json] {
        let reply = conn.call(ev).await;
        assert!(reply.is_ok(), "{:?}", reply.error);
        assert_eq!(reply.emitted[0].decode::<Order>().unwrap(), order);
    }

    // a JSON payload whose field does not fit: invalid_argument, the handler never runs
    let mut too_big = as_json.clone();
    too_big.data = Some(br#"{"order_id": 1, "qty": 4294967296}"#.to_vec());
    let error = conn.call(&too_big).await.error.expect("failed");
    assert_eq!(
        (error.code, error.retryable),
        (ErrorCode::InvalidArgument, false)
    );
    assert!(error.message.contains("JSON"), "{}", error.message);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    conn.drain().await;
    finish(run).await.unwrap();
}

#[tokio::test]
async fn a_type_registered_twice_fails_run() {
    let err = Worker::new("w")
        .handle("a.b", |_ctx: Context, _ev: Event| async { Ok(()) })
        .handle("a.b", |_ctx: Context, _ev: Event| async { Ok(()) })
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("registered twice")),
        "{err:?}"
    );
}
