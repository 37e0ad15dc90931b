//! The conformance worker (spec/conformance-worker.md), built only on the public API.
//!
//! ```text
//! cargo build --release --example testworker
//! CROSSWIRE_SOCKET=/path/to/node.sock target/release/examples/testworker \
//!     [--name NAME] [--max-in-flight N] [--protocol-version V]... [--max-frame BYTES]
//! ```
//!
//! Handles the `test.*` types of spec/conformance-worker.md, `test.payload.*` included
//! (not `test.hang`: the SDK drops a handler at its deadline, so it cannot hold credit).
//!
//! Exits 0 after a clean drain/goodbye; otherwise prints `crosswire: <reason>` on stderr
//! and exits 1 (2 for a bad command line).

use std::collections::HashMap;
use std::time::Duration;

use crosswire::payload::Timestamp;
use crosswire::{typed, Context, ErrorCode, Event, HandlerError, Worker};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

struct Args {
    name: String,
    max_in_flight: usize,
    versions: Vec<u64>,
    max_frame: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        name: format!("testworker-{}", crosswire::RUNTIME),
        max_in_flight: 64,
        versions: Vec::new(),
        max_frame: crosswire::frame::DEFAULT_MAX_FRAME,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--name" => args.name = value()?,
            "--max-in-flight" => args.max_in_flight = number(&flag, &value()?)?,
            "--protocol-version" => args.versions.push(number(&flag, &value()?)?),
            "--max-frame" => args.max_frame = number(&flag, &value()?)?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.versions.is_empty() {
        args.versions = crosswire::frame::PROTOCOL_VERSIONS.to_vec();
    }
    Ok(args)
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag} expects a non-negative integer, got {text:?}"))
}

/// A payload map; absent keys (or absent data) take the spec's defaults.
fn payload<T: for<'de> Deserialize<'de> + Default>(ev: &Event) -> Result<T, HandlerError> {
    match ev.data {
        None => Ok(T::default()),
        Some(_) => Ok(ev.decode()?),
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct FailTransient {
    fail_until: u64,
}

impl Default for FailTransient {
    fn default() -> Self {
        FailTransient { fail_until: 3 }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct Sleep {
    ms: u64,
}

impl Default for Sleep {
    fn default() -> Self {
        Sleep { ms: 500 }
    }
}

// The test schemas of spec/payloads.md, for test.payload.order / test.payload.numbers.

#[derive(Serialize, Deserialize)]
struct Customer {
    id: i64,
    name: String,
    email: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Item {
    sku: String,
    qty: u32,
    price: f64,
}

#[derive(Serialize, Deserialize)]
struct Order {
    order_id: i64,
    customer: Customer,
    items: Vec<Item>,
    note: Option<String>,
    #[serde(default)]
    tags: HashMap<String, String>,
    paid_at: Option<Timestamp>,
    #[serde(default, with = "crosswire::payload::bytes")]
    blob: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
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

/// Emit `<type>.decoded` carrying what the SDK decoded, as MessagePack; a payload that
/// does not decode never gets here (`typed` reports `invalid_argument`).
async fn decoded<T: Serialize + DeserializeOwned>(
    ctx: Context,
    value: T,
) -> Result<(), HandlerError> {
    let ty = format!("{}.decoded", ctx.event().ty);
    ctx.emit(Event::new(ty, &value)?);
    Ok(())
}

fn worker(args: Args) -> Worker {
    Worker::new(args.name)
        .max_in_flight(args.max_in_flight)
        .protocol_versions(args.versions)
        .max_frame(args.max_frame)
        .handle("test.echo", |_ctx: Context, _ev: Event| async { Ok(()) })
        .handle(
            "test.fail_transient",
            |_ctx: Context, ev: Event| async move {
                let p: FailTransient = payload(&ev)?;
                if ev.attempt < p.fail_until {
                    return Err(HandlerError::retryable(
                        ErrorCode::Unavailable,
                        format!("transient failure on attempt {}", ev.attempt),
                    )
                    .retry_after(Duration::from_millis(10)));
                }
                Ok(())
            },
        )
        .handle("test.fail_permanent", |_ctx: Context, _ev: Event| async {
            Err(HandlerError::permanent(
                ErrorCode::InvalidArgument,
                "permanent failure requested",
            ))
        })
        .handle("test.sleep", |_ctx: Context, ev: Event| async move {
            // the SDK cancels this at the delivery deadline and reports `timeout`
            let p: Sleep = payload(&ev)?;
            tokio::time::sleep(Duration::from_millis(p.ms)).await;
            Ok(())
        })
        .handle("test.emit", |ctx: Context, ev: Event| async move {
            let mut out = Event::with_data("test.emitted", ev.data.clone());
            out.datacontenttype = ev.datacontenttype.clone();
            ctx.emit(out);
            Ok(())
        })
        .handle("test.panic", |_ctx: Context, ev: Event| async move {
            panic!("test.panic requested by event {}", ev.id)
        })
        .handle("test.payload.order", typed(decoded::<Order>))
        .handle("test.payload.numbers", typed(decoded::<Numbers>))
        // built against version 1 of the test order schema only (hello schemas)
        .handle("test.versioned", |_ctx: Context, _ev: Event| async move {
            Ok(())
        })
        .accepts("test.versioned", &[TEST_ORDER_DATASCHEMA])
}

/// The one version of the test order schema `test.versioned` reads, as codegen
/// writes such a constant.
const TEST_ORDER_DATASCHEMA: &str = "urn:crosswire:schema:crosswire.test.Order:1";

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("crosswire: {msg}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crosswire: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(err) = runtime.block_on(worker(args).run()) {
        eprintln!("crosswire: {err}");
        std::process::exit(1);
    }
}
