//! `hello.token` comes from `CROSSWIRE_TOKEN` when set and non-empty (spec/protocol.md,
//! "Authentication"). One test in its own binary: it changes the process environment.

use crosswire::frame::Frame;
use crosswire::testing::FakeNode;
use crosswire::{Context, Event, Worker};

async fn hello_token(node: &FakeNode) -> Option<String> {
    let worker = Worker::new("tok")
        .socket(node.path())
        .handle("a.b", |_ctx: Context, _ev: Event| async { Ok(()) });
    let run = tokio::spawn(worker.run());
    let mut conn = node.accept().await;
    let token = match conn.handshake().await {
        Frame::Hello { token, .. } => token,
        other => panic!("expected hello, got {other:?}"),
    };
    conn.drain().await;
    run.await.unwrap().unwrap();
    token
}

#[tokio::test]
async fn token_from_the_environment() {
    let node = FakeNode::new();
    std::env::set_var("CROSSWIRE_TOKEN", "tok-from-env_-AZ09");
    assert_eq!(
        hello_token(&node).await.as_deref(),
        Some("tok-from-env_-AZ09"),
        "sent unchanged"
    );
    std::env::set_var("CROSSWIRE_TOKEN", "");
    assert_eq!(hello_token(&node).await, None, "empty: omitted");
    std::env::remove_var("CROSSWIRE_TOKEN");
    assert_eq!(hello_token(&node).await, None, "unset: omitted");

    std::env::set_var("CROSSWIRE_TOKEN", "x".repeat(257));
    let err = Worker::new("tok")
        .socket(node.path())
        .handle("a.b", |_ctx: Context, _ev: Event| async { Ok(()) })
        .run()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("token is 257 characters > 256"),
        "{err}"
    );
    std::env::remove_var("CROSSWIRE_TOKEN");
}
