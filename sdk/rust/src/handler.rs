//! Handlers and their errors.
//!
//! A handler is an async function `(Context, Event) -> Result<(), HandlerError>`: a
//! closure or `async fn`, [`typed`] around one that takes the decoded payload instead of
//! the event, or a type implementing [`Handler`]; all are given to
//! [`crate::Worker::handle`]. Its failure becomes an error envelope ([`ErrorInfo`]) in
//! the `result` frame; the node's retry policy decides from that alone.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::envelope::Event;
use crate::error::{DecodeError, PayloadError};
use crate::errorinfo::{ErrorCode, ErrorInfo};

/// A handler's failure: code, message, retryability and an optional `retry_after`.
///
/// `?` converts any other error: a [`PayloadError`] (from [`Event::decode`]) or a
/// [`DecodeError`] becomes a permanent `invalid_argument`; anything else a retryable
/// `handler_error`. `HandlerError` deliberately does not implement
/// `std::error::Error`, which is what lets that blanket conversion exist.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerError {
    code: ErrorCode,
    message: String,
    retryable: bool,
    retry_after: Option<Duration>,
    details: BTreeMap<String, String>,
}

impl HandlerError {
    /// An error with the code's default retryability (spec/errors.md).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        HandlerError {
            code,
            message: message.into(),
            retryable: code.default_retryable(),
            retry_after: None,
            details: BTreeMap::new(),
        }
    }

    /// An error another attempt may fix.
    pub fn retryable(code: ErrorCode, message: impl Into<String>) -> Self {
        HandlerError {
            retryable: true,
            ..HandlerError::new(code, message)
        }
    }

    /// An error no retry can fix: the node never retries it.
    pub fn permanent(code: ErrorCode, message: impl Into<String>) -> Self {
        HandlerError {
            retryable: false,
            ..HandlerError::new(code, message)
        }
    }

    /// The handler refuses the event on purpose (`rejected`, permanent).
    pub fn reject(reason: impl Into<String>) -> Self {
        HandlerError::permanent(ErrorCode::Rejected, reason)
    }

    /// Ask the node to wait at least `after` before the next attempt.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Add a `details` entry.
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The error envelope sent to the node (runtime `rust`).
    pub fn to_error_info(&self) -> ErrorInfo {
        let mut info = ErrorInfo::new(self.code, self.message.clone());
        info.retryable = self.retryable;
        info.retry_after = self.retry_after.map(|d| d.as_secs_f64());
        info.details = self.details.clone();
        info
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(err: E) -> Self {
        let any: &dyn std::any::Any = &err;
        if any.is::<PayloadError>() || any.is::<DecodeError>() {
            HandlerError::permanent(ErrorCode::InvalidArgument, err.to_string())
        } else {
            HandlerError::retryable(ErrorCode::HandlerError, err.to_string())
        }
    }
}

/// An event handler. Implement it for a struct holding clients or configuration;
/// closures are handlers too.
///
/// ```
/// use crosswire::{Context, Event, Handler, HandlerError};
/// struct Audit { prefix: String }
/// impl Handler for Audit {
///     async fn handle(&self, _ctx: Context, ev: Event) -> Result<(), HandlerError> {
///         eprintln!("{} {}", self.prefix, ev.id);
///         Ok(())
///     }
/// }
/// let worker = crosswire::Worker::new("audit").handle("order.*", Audit { prefix: "seen".into() });
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Handle one delivery. Runs on the tokio runtime, concurrently with other
    /// deliveries (up to `max_in_flight`), and is cancelled at the delivery deadline.
    fn handle(
        &self,
        ctx: Context,
        event: Event,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(Context, Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn handle(
        &self,
        ctx: Context,
        event: Event,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self(ctx, event)
    }
}

/// A handler that receives the payload decoded into `T` (spec/payloads.md; JSON or
/// MessagePack by `datacontenttype`) instead of the raw event, which stays available as
/// [`Context::event`]. A payload that does not decode — no data, a missing required
/// field, a wrong type, an integer out of range — fails the delivery with a permanent
/// `invalid_argument` before `f` runs.
///
/// ```
/// use crosswire::{typed, Context, Event, HandlerError, Worker};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// struct Order { order_id: i64, qty: u32 }
/// #[derive(Serialize)]
/// struct Score { order_id: i64, score: u64 }
///
/// async fn score(ctx: Context, order: Order) -> Result<(), HandlerError> {
///     let score = Score { order_id: order.order_id, score: u64::from(order.qty) * 10 };
///     ctx.emit(Event::new("order.scored", &score)?);
///     Ok(())
/// }
///
/// let worker = Worker::new("fraud").handle("order.validated", typed(score));
/// ```
pub fn typed<T, F, Fut>(f: F) -> Typed<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Context, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Typed {
        f,
        payload: PhantomData,
    }
}

/// The [`Handler`] made by [`typed`].
pub struct Typed<T, F> {
    f: F,
    payload: PhantomData<fn() -> T>,
}

impl<T, F> fmt::Debug for Typed<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Typed")
            .field("payload", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T, F, Fut> Handler for Typed<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Context, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn handle(
        &self,
        ctx: Context,
        event: Event,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let call = event.decode::<T>().map(|payload| (self.f)(ctx, payload));
        async move {
            match call {
                Ok(running) => running.await,
                Err(bad) => Err(bad.into()),
            }
        }
    }
}

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// Object-safe form of [`Handler`], so handlers of different types share a table.
pub(crate) trait ErasedHandler: Send + Sync {
    fn call(self: Arc<Self>, ctx: Context, event: Event) -> BoxFuture;
}

impl<H: Handler> ErasedHandler for H {
    fn call(self: Arc<Self>, ctx: Context, event: Event) -> BoxFuture {
        Box::pin(async move { self.handle(ctx, event).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_pick_the_spec_codes() {
        let bad_payload: HandlerError = PayloadError::NoData.into();
        assert_eq!(bad_payload.code(), ErrorCode::InvalidArgument);
        assert!(!bad_payload.is_retryable());
        let io: HandlerError = std::io::Error::other("disk").into();
        assert_eq!(io.code(), ErrorCode::HandlerError);
        assert!(io.is_retryable());
        let info = HandlerError::retryable(ErrorCode::Unavailable, "down")
            .retry_after(Duration::from_millis(50))
            .to_error_info();
        assert_eq!(info.retry_after, Some(0.05));
        assert_eq!(info.runtime, "rust");
        assert!(!HandlerError::permanent(ErrorCode::Timeout, "x").is_retryable());
    }
}
