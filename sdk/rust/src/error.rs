//! The crate's errors.
//!
//! ```text
//! Error                      what Worker::run returns
//! ├── Connect / Io           the socket could not be reached or failed
//! ├── Rejected               the node refused the handshake (REJECT reason)
//! ├── FrameTooLarge          the node announced a frame above our max_frame
//! ├── Frame(FrameError)      the node sent bytes that are not a valid frame
//! ├── Protocol / NodeError   a frame out of order, or an `error` frame from the node
//! ├── PeerSilent             no frame from the node for 3 heartbeat intervals
//! ├── Warmup                 the on_warmup hook failed
//! └── ConnectionClosed       the node closed before goodbye
//! DecodeError                an envelope or error envelope failed to decode (spec codes)
//! FrameError                 a frame failed to decode (spec outcomes)
//! PayloadError               Event::decode / Event::new could not (de)serialise `data`
//! HandlerError               a handler's failure, sent to the node as an error envelope
//! ```

use std::time::Duration;

use crate::mp::ParseError;

/// Why an envelope or error envelope could not be decoded. Each variant is one code of
/// spec/envelope.md's "Decode errors" table; [`DecodeError::code`] gives the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before the MessagePack value does.
    #[error("truncated: the input ends before the MessagePack value does")]
    Truncated,
    /// Not MessagePack, trailing bytes, or the top level is not a map.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A known key holds a value of the wrong MessagePack type.
    #[error("wrong type: `{field}` must be {expected}, got {got}")]
    WrongType {
        /// The attribute.
        field: String,
        /// The type the spec requires.
        expected: &'static str,
        /// The type found.
        got: &'static str,
    },
    /// A required attribute is absent or empty.
    #[error("missing field: `{0}` is required and must not be empty")]
    MissingField(&'static str),
    /// A value is out of its domain.
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// A `cwversion` major this reader does not implement.
    #[error("unsupported version: cwversion {0}, this reader implements 1")]
    UnsupportedVersion(i128),
    /// A user extension name breaks the naming rule or shadows an attribute.
    #[error(
        "invalid extension name {0:?}: must be 1-20 characters of a-z0-9 and not an attribute name"
    )]
    InvalidExtensionName(String),
    /// A value or the extension map exceeds its limit.
    #[error("too large: {0}")]
    TooLarge(String),
}

impl DecodeError {
    /// The spec's code for this error, e.g. `"missing_field"`.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Truncated => "truncated",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::InvalidValue(_) => "invalid_value",
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
            DecodeError::InvalidExtensionName(_) => "invalid_extension_name",
            DecodeError::TooLarge(_) => "too_large",
        }
    }
}

impl From<ParseError> for DecodeError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Truncated => DecodeError::Truncated,
            ParseError::Malformed(m) => DecodeError::Malformed(m),
        }
    }
}

/// Why a frame could not be decoded (spec/protocol.md "Decode outcomes"; `incomplete`
/// is not an error but `Ok(None)` from [`crate::frame::decode_frame`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header announces more than the receiver's maximum.
    #[error("frame too large: {len} bytes > max {max}")]
    TooLarge {
        /// The announced body length.
        len: u32,
        /// The receiver's maximum.
        max: u32,
    },
    /// The header announces a zero-length body.
    #[error("empty frame: length 0")]
    Empty,
    /// The body is not exactly one MessagePack map with a str `t`.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A known frame type with a missing required field or a field of the wrong type.
    #[error("invalid frame: {0}")]
    Invalid(String),
}

impl FrameError {
    /// The spec's outcome name, e.g. `"too_large"`.
    pub fn outcome(&self) -> &'static str {
        match self {
            FrameError::TooLarge { .. } => "too_large",
            FrameError::Empty => "empty",
            FrameError::Malformed(_) => "malformed",
            FrameError::Invalid(_) => "invalid",
        }
    }
}

/// `data` could not be converted to or from a Rust value (spec/payloads.md). A
/// handler's `?` reports any of these as a permanent `invalid_argument`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The event has no `data`.
    #[error("event has no data")]
    NoData,
    /// MessagePack `data` did not match the target type.
    #[error("payload is not the expected MessagePack: {0}")]
    Msgpack(#[from] rmp_serde::decode::Error),
    /// Bytes follow the MessagePack value.
    #[error("payload is not the expected MessagePack: {0} bytes after the value")]
    TrailingBytes(usize),
    /// The value could not be serialised to MessagePack.
    #[error("payload could not be encoded as MessagePack: {0}")]
    MsgpackEncode(#[from] rmp_serde::encode::Error),
    /// JSON `data` did not match the target type.
    #[error("payload is not the expected JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The value could not be serialised to JSON.
    #[error("payload could not be encoded as JSON: {0}")]
    JsonEncode(serde_json::Error),
}

/// Everything that ends a worker session abnormally.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `CROSSWIRE_SOCKET` is not set and no socket path was configured.
    #[error("CROSSWIRE_SOCKET is not set: the node passes the socket path in it")]
    NoSocket,
    /// The socket could not be connected.
    #[error("cannot connect to {path}: {source}")]
    Connect {
        /// The socket path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The node answered `hello` with `reject`.
    #[error("rejected by node: {0}")]
    Rejected(String),
    /// The node announced a frame above this worker's `max_frame`.
    #[error("frame too large: {len} bytes > max {max}")]
    FrameTooLarge {
        /// The announced length.
        len: u32,
        /// This worker's maximum.
        max: u32,
    },
    /// The node sent bytes that are not a valid frame.
    #[error("{0}")]
    Frame(FrameError),
    /// The node broke the protocol (a frame out of order, an unknown frame during the
    /// handshake, ...).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The node sent an `error` frame.
    #[error("node reported a protocol error: {0}")]
    NodeError(String),
    /// Nothing was heard from the node for three heartbeat intervals.
    #[error("node silent for {0:?} (3 heartbeat intervals)")]
    PeerSilent(Duration),
    /// The warm-up hook failed.
    #[error("warm-up failed: {0}")]
    Warmup(String),
    /// The node closed the connection before saying goodbye.
    #[error("connection closed by node")]
    ConnectionClosed,
    /// The worker was configured inconsistently.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { len, max } => Error::FrameTooLarge { len, max },
            other => Error::Frame(other),
        }
    }
}
