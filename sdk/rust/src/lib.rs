//! crosswire worker SDK for Rust.
//!
//! A *worker* handles some event types for a crosswire node over the worker protocol
//! (spec/protocol.md): the node does every retry, timeout, dedup and dead-letter
//! decision; this crate implements the envelope codec, the handshake, lifecycle,
//! heartbeats and flow control, and runs your handlers on tokio.
//!
//! ```no_run
//! use crosswire::{typed, Context, Event, HandlerError, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Order { order_id: i64, qty: i64 }
//! #[derive(Serialize)]
//! struct Score { order_id: i64, score: i64 }
//!
//! // the payload arrives decoded; a bad one is a permanent invalid_argument
//! async fn score(ctx: Context, order: Order) -> Result<(), HandlerError> {
//!     let score = Score { order_id: order.order_id, score: order.qty * 10 };
//!     ctx.emit(Event::new("order.scored", &score)?);
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), crosswire::Error> {
//!     Worker::new("fraud")
//!         .max_in_flight(64)
//!         .handle("order.validated", typed(score))
//!         .run() // connects to $CROSSWIRE_SOCKET
//!         .await
//! }
//! ```
//!
//! - [`Worker`]: configuration and the session; [`Worker::handle`] takes closures,
//!   `async fn`s, [`typed`] handlers and [`Handler`] types.
//! - [`payload`]: how payload bytes become typed values (spec/payloads.md), the same for
//!   JSON and MessagePack.
//! - [`testing`]: a scripted fake node to test a worker end to end.
//! - The codecs ([`Event`], [`ErrorInfo`], [`frame`]) do no I/O and can be used alone.
//!
//! The guide is docs/rust-sdk.md in the repository.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod attrs;
pub mod binary;
mod connection;
mod context;
mod delivery;
mod envelope;
mod error;
mod errorinfo;
mod fields;
pub mod frame;
mod handler;
mod json;
mod mp;
pub mod payload;
mod routes;
pub mod spans;
pub mod testing;
mod worker;

pub use attrs::{is_extension_name, new_event_id, now_rfc3339};
pub use context::Context;
pub use envelope::{
    Event, ExtensionValue, CWVERSION, MAX_DATA, MAX_EXTENSIONS, MAX_EXTENSION_VALUE, MSGPACK,
    RESERVED_NAMES, SPECVERSION,
};
pub use error::{DecodeError, Error, FrameError, PayloadError};
pub use errorinfo::{ErrorCode, ErrorInfo};
pub use handler::{typed, Handler, HandlerError, Typed};
pub use worker::Worker;

/// The value of `runtime` in `hello` and in error envelopes from this SDK.
pub const RUNTIME: &str = "rust";
/// SDK name and version, sent in `hello`.
pub const SDK: &str = concat!("crosswire-rust/", env!("CARGO_PKG_VERSION"));

/// docs/rust-sdk.md, so `cargo test` compiles and runs every `rust` block of the guide.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/rust-sdk.md")]
pub struct RustSdkGuide;
