//! The order pipeline's fraud worker (examples/orders/README.md).
//!
//! Handles `order.validated`: scores each order, logs suspicious ones on stderr, and
//! fails transiently (`unavailable`, retry after 50 ms) on the first attempt of every
//! order whose `order_id % 7 == 3`, so the demo shows the node retrying it.
//!
//! Build: `cd examples/orders/rust-fraud && CARGO_TARGET_DIR=../../../sdk/rust/target cargo build --release`
//! Run: the node spawns it with `CROSSWIRE_SOCKET` set.
//!
//! `Order` is generated from the app's schema (`src/payloads.rs`: `make codegen`).
#![forbid(unsafe_code)]

mod payloads;
use payloads::Order;

use std::time::Duration;

use crosswire::{typed, Context, ErrorCode, HandlerError, Worker};

/// Scores above this are logged as suspicious (and still succeed).
const SUSPICIOUS: i64 = 900;

/// `(qty * unit_price_cents) / 1000`, plus 50 outside DE, FR and US.
fn score(order: &Order) -> i64 {
    let base = order.qty.saturating_mul(order.unit_price_cents) / 1000;
    let foreign = if matches!(order.country.as_str(), "DE" | "FR" | "US") {
        0
    } else {
        50
    };
    base.saturating_add(foreign)
}

/// Whether this attempt fails on purpose: the first attempt when `order_id % 7 == 3`.
fn warming_up(order: &Order, attempt: u64) -> bool {
    attempt == 1 && order.order_id.rem_euclid(7) == 3
}

/// The handler: the payload arrives decoded (a bad one never gets here: the SDK
/// reports it as a permanent `invalid_argument`).
async fn check(ctx: Context, order: Order) -> Result<(), HandlerError> {
    if warming_up(&order, ctx.attempt()) {
        tracing::warn!(order_id = order.order_id, "fraud service warming up");
        return Err(
            HandlerError::retryable(ErrorCode::Unavailable, "fraud service warming up")
                .retry_after(Duration::from_millis(50)),
        );
    }
    // A span of the handler's own, and a log line: both reach the node (no exporter here).
    let span =
        tracing::info_span!("score order", order_id = order.order_id, country = %order.country);
    let score = span.in_scope(|| {
        let score = score(&order);
        tracing::info!(score, "scored order");
        score
    });
    if score > SUSPICIOUS {
        eprintln!(
            "fraud: suspicious order {} from {} ({}): score {score}",
            order.order_id, order.customer, order.country
        );
    }
    Ok(())
}

/// The worker, as `main` runs it (and the tests drive it).
fn worker() -> Worker {
    Worker::new("fraud")
        .max_in_flight(64)
        .handle("order.validated", typed(check))
        // built against orders.Order v1: the node refuses it events of any other version
        .accepts("order.validated", &[Order::DATASCHEMA])
}

#[tokio::main]
async fn main() {
    let result = worker().run().await;
    if let Err(err) = result {
        eprintln!("crosswire: {err}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(order_id: i64, qty: i64, unit_price_cents: i64, country: &str) -> Order {
        Order {
            order_id,
            customer: "c".into(),
            sku: "s".into(),
            qty,
            unit_price_cents,
            country: country.into(),
        }
    }

    #[test]
    fn scores_follow_the_pipeline_contract() {
        assert_eq!(score(&order(1, 3, 1999, "DE")), 5);
        assert_eq!(score(&order(1, 3, 1999, "JP")), 55);
        assert_eq!(score(&order(1, 100, 10_000, "US")), 1000);
        assert!(score(&order(1, 100, 10_000, "US")) > SUSPICIOUS);
    }

    /// The worker end to end against the SDK's fake node: the retry on the first
    /// attempt, success on the next, and a JSON payload decoding like MessagePack.
    #[tokio::test]
    async fn the_worker_retries_then_scores() {
        use crosswire::testing::FakeNode;
        use crosswire::Event;

        let node = FakeNode::new();
        let run = tokio::spawn(worker().socket(node.path()).run());
        let mut conn = node.accept().await;
        conn.handshake().await;

        let mut ev = Event::new("order.validated", &order(10, 2, 500, "DE")).unwrap();
        let error = conn.call(&ev).await.error.expect("first attempt fails");
        assert_eq!(
            (error.code, error.retry_after),
            (ErrorCode::Unavailable, Some(0.05))
        );
        ev.attempt = 2;
        assert!(conn.call(&ev).await.is_ok());

        let mut json = Event::with_data(
            "order.validated",
            Some(br#"{"order_id":4,"customer":"c","sku":"s","qty":1,"unit_price_cents":9,"country":"FR"}"#.to_vec()),
        );
        json.datacontenttype = Some("application/json".into());
        assert!(conn.call(&json).await.is_ok());
        json.data = Some(br#"{"order_id":4}"#.to_vec());
        let error = conn.call(&json).await.error.expect("missing fields");
        assert_eq!(error.code, ErrorCode::InvalidArgument);

        conn.drain().await;
        run.await.unwrap().unwrap();
    }

    #[test]
    fn only_the_first_attempt_of_every_seventh_order_fails() {
        assert!(warming_up(&order(3, 1, 1, "DE"), 1));
        assert!(warming_up(&order(10, 1, 1, "DE"), 1));
        assert!(!warming_up(&order(10, 1, 1, "DE"), 2));
        assert!(!warming_up(&order(4, 1, 1, "DE"), 1));
    }
}
