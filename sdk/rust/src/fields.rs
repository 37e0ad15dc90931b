//! Typed access to the fields of a decoded MessagePack map, with the spec's error codes.

use crate::error::DecodeError;
use crate::mp::Value;

/// The string-keyed entries of a map. Keys that are not valid UTF-8 can never name a
/// known field, so they are kept out (unknown keys are ignored by the spec).
pub(crate) struct Fields<'v, 'a> {
    pairs: Vec<(&'v str, &'v Value<'a>)>,
}

impl<'v, 'a> Fields<'v, 'a> {
    /// # Errors
    /// `malformed` when a key is not a str (maps here have string keys).
    pub(crate) fn new(pairs: &'v [(Value<'a>, Value<'a>)]) -> Result<Self, DecodeError> {
        let mut out = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            match key {
                Value::Str(raw) => {
                    if let Ok(k) = std::str::from_utf8(raw) {
                        out.push((k, value));
                    }
                }
                other => {
                    return Err(DecodeError::Malformed(format!(
                        "map keys must be str, got {}",
                        other.kind()
                    )))
                }
            }
        }
        Ok(Fields { pairs: out })
    }

    /// The value of `key` (the last one if a writer repeated it).
    pub(crate) fn get(&self, key: &str) -> Option<&'v Value<'a>> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

pub(crate) fn wrong_type(field: &str, expected: &'static str, got: &Value<'_>) -> DecodeError {
    DecodeError::WrongType {
        field: field.to_owned(),
        expected,
        got: got.kind(),
    }
}

/// A str field; invalid UTF-8 is `invalid_value`.
pub(crate) fn string(field: &str, value: &Value<'_>) -> Result<String, DecodeError> {
    match value {
        Value::Str(raw) => std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|e| DecodeError::InvalidValue(format!("{field} is not valid UTF-8: {e}"))),
        other => Err(wrong_type(field, "str", other)),
    }
}

/// An integer field of any width.
pub(crate) fn int(field: &str, value: &Value<'_>) -> Result<i128, DecodeError> {
    match value {
        Value::Int(n) => Ok(*n),
        other => Err(wrong_type(field, "int", other)),
    }
}

/// A non-negative integer field that fits a u64; negative is `invalid_value`.
pub(crate) fn uint(field: &str, value: &Value<'_>) -> Result<u64, DecodeError> {
    let n = int(field, value)?;
    u64::try_from(n)
        .map_err(|_| DecodeError::InvalidValue(format!("{field} must be >= 0, got {n}")))
}
