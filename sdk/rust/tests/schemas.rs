//! `Worker::accepts`: the payload schema versions a handler reads, sent in hello `schemas`.

use std::time::Duration;

use crosswire::frame::Frame;
use crosswire::testing::FakeNode;
use crosswire::{Context, Error, Event, Worker};

const V1: &str = "urn:crosswire:schema:orders.Order:1";
const V2: &str = "urn:crosswire:schema:orders.Order:2";

fn ok_worker(node: &FakeNode) -> Worker {
    let ok = |_ctx: Context, _ev: Event| async move { Ok(()) };
    Worker::new("tw")
        .socket(node.path())
        .handle("order.validated", ok)
        .handle("order.*", ok)
        .handle("payment.settled", ok)
}

#[tokio::test]
async fn hello_carries_the_accepted_schemas_in_type_order() {
    let node = FakeNode::new();
    let worker = ok_worker(&node)
        .accepts("payment.settled", &[] as &[&str])
        .accepts("order.validated", &[V1])
        .accepts("order.validated", &[V2, V1]);
    let run = tokio::spawn(worker.run());
    let mut conn = node.accept().await;
    match conn.handshake().await {
        Frame::Hello { schemas, .. } => assert_eq!(
            schemas,
            Some(vec![
                (
                    "order.validated".to_owned(),
                    vec![V1.to_owned(), V2.to_owned()]
                ),
                ("payment.settled".to_owned(), vec![]),
            ])
        ),
        other => panic!("{other:?}"),
    }
    run.abort();
}

async fn config_error(worker: Worker) -> String {
    match tokio::time::timeout(Duration::from_secs(5), worker.run()).await {
        Ok(Err(Error::Config(msg))) => msg,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn accepts_for_a_type_without_handler_or_with_bad_uris_fails_run() {
    let node = FakeNode::new();
    let msg = config_error(ok_worker(&node).accepts("order.paid", &[V1])).await;
    assert!(msg.contains("no handler"), "{msg}");
    let msg = config_error(ok_worker(&node).accepts("order.validated", &[""])).await;
    assert!(msg.contains("1-1024 bytes"), "{msg}");
    let many: Vec<String> = (0..17).map(|i| format!("{V1}{i}")).collect();
    let msg = config_error(ok_worker(&node).accepts("order.validated", &many)).await;
    assert!(msg.contains("at most 16"), "{msg}");
}
