//! The error envelope (spec/errors.md): how a failure crosses every boundary.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::DecodeError;
use crate::fields::{self, Fields};
use crate::mp::{self, Value, Writer};

/// Longest `message`, in bytes.
pub const MAX_MESSAGE: usize = 4096;
/// Most `details` entries.
pub const MAX_DETAILS: usize = 32;

/// The closed set of error codes shared by every runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The event or its payload is invalid.
    InvalidArgument,
    /// Something the event refers to does not exist.
    NotFound,
    /// The system is not in a state where the event can be handled.
    FailedPrecondition,
    /// The handler is not allowed to do this.
    PermissionDenied,
    /// The handler refused the event on purpose.
    Rejected,
    /// No handler for this event type in the receiving runtime.
    Unimplemented,
    /// The attempt's deadline passed before the handler finished.
    Timeout,
    /// A dependency is down; try again later.
    Unavailable,
    /// Rate limited or out of capacity; honour `retry_after`.
    ResourceExhausted,
    /// The attempt was abandoned (drain, shutdown) before finishing.
    Cancelled,
    /// The worker process died or went silent mid-attempt.
    WorkerLost,
    /// The handler raised/returned an unclassified error.
    HandlerError,
    /// A crosswire bug or invariant broken.
    Internal,
}

impl ErrorCode {
    /// Every code, in the spec's order.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::FailedPrecondition,
        ErrorCode::PermissionDenied,
        ErrorCode::Rejected,
        ErrorCode::Unimplemented,
        ErrorCode::Timeout,
        ErrorCode::Unavailable,
        ErrorCode::ResourceExhausted,
        ErrorCode::Cancelled,
        ErrorCode::WorkerLost,
        ErrorCode::HandlerError,
        ErrorCode::Internal,
    ];

    /// The wire name, e.g. `"invalid_argument"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::FailedPrecondition => "failed_precondition",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Rejected => "rejected",
            ErrorCode::Unimplemented => "unimplemented",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::WorkerLost => "worker_lost",
            ErrorCode::HandlerError => "handler_error",
            ErrorCode::Internal => "internal",
        }
    }

    /// The code named `name`, if it is in the closed set.
    pub fn parse(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether an error with this code is retryable when the sender did not say.
    pub fn default_retryable(self) -> bool {
        !matches!(
            self,
            ErrorCode::InvalidArgument
                | ErrorCode::NotFound
                | ErrorCode::FailedPrecondition
                | ErrorCode::PermissionDenied
                | ErrorCode::Rejected
                | ErrorCode::Unimplemented
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an attempt failed, as data.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorInfo {
    /// One of the closed set.
    pub code: ErrorCode,
    /// For humans; at most 4096 bytes.
    pub message: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// Seconds the sender asks to wait before the next attempt (>= 0).
    pub retry_after: Option<f64>,
    /// Extra context; sorted by key (the canonical order).
    pub details: BTreeMap<String, String>,
    /// `python`, `go`, `rust` or `node`.
    pub runtime: String,
}

impl ErrorInfo {
    /// An error envelope from this runtime (`rust`) with the code's default
    /// retryability. `message` is cut to 4096 bytes at a character boundary.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo {
            code,
            message: truncate(message.into(), MAX_MESSAGE),
            retryable: code.default_retryable(),
            retry_after: None,
            details: BTreeMap::new(),
            runtime: "rust".to_owned(),
        }
    }

    /// The canonical MessagePack bytes.
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_vec()
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        let count = 4 + u32::from(self.retry_after.is_some()) + u32::from(!self.details.is_empty());
        w.map(count);
        w.kv_str("code", self.code.as_str());
        w.kv_str("message", &self.message);
        w.str("retryable");
        w.bool(self.retryable);
        if let Some(after) = self.retry_after {
            w.str("retry_after");
            w.f64(after);
        }
        if !self.details.is_empty() {
            w.str("details");
            w.map(self.details.len() as u32);
            for (k, v) in &self.details {
                w.kv_str(k, v);
            }
        }
        w.kv_str("runtime", &self.runtime);
    }

    /// Decode and validate an error envelope.
    ///
    /// # Errors
    /// [`DecodeError`] with the spec's code.
    pub fn from_msgpack(bytes: &[u8]) -> Result<ErrorInfo, DecodeError> {
        ErrorInfo::from_value(&mp::parse(bytes)?)
    }

    pub(crate) fn from_value(value: &Value<'_>) -> Result<ErrorInfo, DecodeError> {
        let Value::Map(pairs) = value else {
            return Err(DecodeError::Malformed(format!(
                "the error envelope must be a map, got {}",
                value.kind()
            )));
        };
        let f = Fields::new(pairs)?;
        let need = |key: &'static str| f.get(key).ok_or(DecodeError::MissingField(key));
        let code_name = fields::string("code", need("code")?)?;
        let code = ErrorCode::parse(&code_name).ok_or_else(|| {
            DecodeError::InvalidValue(format!("code {code_name:?} is not in the closed set"))
        })?;
        let message = fields::string("message", need("message")?)?;
        if message.len() > MAX_MESSAGE {
            return Err(DecodeError::TooLarge(format!(
                "message is {} bytes > {MAX_MESSAGE}",
                message.len()
            )));
        }
        let retryable = match need("retryable")? {
            Value::Bool(b) => *b,
            other => return Err(fields::wrong_type("retryable", "bool", other)),
        };
        let retry_after = match f.get("retry_after") {
            None => None,
            Some(Value::Float(x)) => Some(*x),
            Some(Value::Int(n)) => Some(*n as f64),
            Some(other) => return Err(fields::wrong_type("retry_after", "float", other)),
        };
        let details = match f.get("details") {
            None => BTreeMap::new(),
            Some(Value::Map(pairs)) => {
                if pairs.len() > MAX_DETAILS {
                    return Err(DecodeError::TooLarge(format!(
                        "{} details > {MAX_DETAILS}",
                        pairs.len()
                    )));
                }
                let mut out = BTreeMap::new();
                for (k, v) in pairs {
                    out.insert(
                        fields::string("details key", k)?,
                        fields::string("details value", v)?,
                    );
                }
                out
            }
            Some(other) => return Err(fields::wrong_type("details", "map", other)),
        };
        let runtime = fields::string("runtime", need("runtime")?)?;
        let info = ErrorInfo {
            code,
            message,
            retryable,
            retry_after,
            details,
            runtime,
        };
        info.validate()?;
        Ok(info)
    }

    /// Check the spec's limits.
    ///
    /// # Errors
    /// The first broken rule.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.message.len() > MAX_MESSAGE {
            return Err(DecodeError::TooLarge(format!(
                "message is {} bytes > {MAX_MESSAGE}",
                self.message.len()
            )));
        }
        if let Some(after) = self.retry_after {
            if after.is_nan() || after < 0.0 {
                return Err(DecodeError::InvalidValue(format!(
                    "retry_after must be >= 0, got {after}"
                )));
            }
        }
        if self.details.len() > MAX_DETAILS {
            return Err(DecodeError::TooLarge(format!(
                "{} details > {MAX_DETAILS}",
                self.details.len()
            )));
        }
        if self.runtime.is_empty() {
            return Err(DecodeError::MissingField("runtime"));
        }
        if self.runtime.len() > 32 {
            return Err(DecodeError::TooLarge(format!(
                "runtime is {} bytes > 32",
                self.runtime.len()
            )));
        }
        Ok(())
    }

    /// The JSON object of the fields (spec/errors.md).
    pub fn to_json_value(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("code".into(), self.code.as_str().into());
        m.insert("message".into(), self.message.clone().into());
        m.insert("retryable".into(), self.retryable.into());
        if let Some(after) = self.retry_after {
            m.insert("retry_after".into(), after.into());
        }
        if !self.details.is_empty() {
            let details = self
                .details
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            m.insert("details".into(), serde_json::Value::Object(details));
        }
        m.insert("runtime".into(), self.runtime.clone().into());
        serde_json::Value::Object(m)
    }
}

impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_roundtrip_and_defaults() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert!(!ErrorCode::Rejected.default_retryable());
        assert!(ErrorCode::Timeout.default_retryable());
        assert_eq!(ErrorCode::parse("teapot"), None);
    }

    #[test]
    fn long_message_is_cut_at_a_char_boundary() {
        let info = ErrorInfo::new(ErrorCode::Internal, "é".repeat(3000));
        assert!(info.message.len() <= MAX_MESSAGE);
        assert!(info.validate().is_ok());
    }
}
