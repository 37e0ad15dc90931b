//! The CloudEvents structured JSON form of an [`Event`] (spec/envelope.md), for humans,
//! logs and interop.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{Map, Value as Json};

use crate::envelope::{is_json_type, Event, ExtensionValue, RESERVED_NAMES};
use crate::error::DecodeError;

impl Event {
    /// The JSON form: every present attribute at the top level, extensions flattened,
    /// `data` embedded when it is JSON, else `data_base64`.
    pub fn to_json_value(&self) -> Json {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<&String>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), Json::String(v.clone()));
            }
        };
        put(
            "specversion",
            Some(&crate::envelope::SPECVERSION.to_owned()),
        );
        put("id", Some(&self.id));
        put("source", Some(&self.source));
        put("type", Some(&self.ty));
        put("subject", self.subject.as_ref());
        put("time", self.time.as_ref());
        put("datacontenttype", self.datacontenttype.as_ref());
        put("dataschema", self.dataschema.as_ref());
        put("correlationid", self.correlationid.as_ref());
        put("causationid", self.causationid.as_ref());
        put("traceparent", self.traceparent.as_ref());
        put("tracestate", self.tracestate.as_ref());
        put("partitionkey", self.partitionkey.as_ref());
        put("idempotencykey", self.idempotencykey.as_ref());
        if let Some(deadline) = self.deadline {
            m.insert("deadline".into(), deadline.into());
        }
        if self.attempt != 1 {
            m.insert("attempt".into(), self.attempt.into());
        }
        for (name, value) in &self.extensions {
            let v = match value {
                ExtensionValue::Str(s) => Json::String(s.clone()),
                ExtensionValue::Int(n) => (*n).into(),
                ExtensionValue::Bool(b) => (*b).into(),
                ExtensionValue::Bin(b) => Json::String(B64.encode(b)),
            };
            m.insert(name.clone(), v);
        }
        if let Some(data) = &self.data {
            let embedded = match self.datacontenttype.as_deref() {
                Some(ct) if is_json_type(ct) => serde_json::from_slice::<Json>(data).ok(),
                _ => None,
            };
            match embedded {
                Some(v) => m.insert("data".into(), v),
                None => m.insert("data_base64".into(), Json::String(B64.encode(data))),
            };
        }
        Json::Object(m)
    }

    /// The JSON form as compact text (`application/cloudevents+json`).
    pub fn to_json(&self) -> String {
        self.to_json_value().to_string()
    }

    /// Read the JSON form.
    ///
    /// # Errors
    /// [`DecodeError`] with the code the binary decoder would give for the same problem;
    /// text that is not a JSON object is `malformed`.
    pub fn from_json(text: &str) -> Result<Event, DecodeError> {
        let value: Json = serde_json::from_str(text)
            .map_err(|e| DecodeError::Malformed(format!("invalid JSON: {e}")))?;
        Event::from_json_value(&value)
    }

    /// Read the JSON form from a parsed value.
    ///
    /// # Errors
    /// As [`Event::from_json`].
    pub fn from_json_value(value: &Json) -> Result<Event, DecodeError> {
        let Json::Object(obj) = value else {
            return Err(DecodeError::Malformed(
                "a CloudEvent in JSON must be an object".into(),
            ));
        };
        let string = |key: &'static str| -> Result<Option<String>, DecodeError> {
            match obj.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(wrong_type(key, "string", other)),
            }
        };
        let uint = |key: &'static str| -> Result<Option<u64>, DecodeError> {
            match obj.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::Number(n)) => match (n.as_u64(), n.as_i64()) {
                    (Some(u), _) => Ok(Some(u)),
                    (None, Some(i)) => Err(DecodeError::InvalidValue(format!(
                        "{key} must be >= 0, got {i}"
                    ))),
                    _ => Err(wrong_type(key, "integer", &Json::Number(n.clone()))),
                },
                Some(other) => Err(wrong_type(key, "integer", other)),
            }
        };
        match string("specversion")? {
            None => return Err(DecodeError::MissingField("specversion")),
            Some(s) if s.is_empty() => return Err(DecodeError::MissingField("specversion")),
            Some(s) if s != crate::envelope::SPECVERSION => {
                return Err(DecodeError::InvalidValue(format!(
                    "specversion must be \"1.0\", got {s:?}"
                )))
            }
            Some(_) => {}
        }
        if let Some(v) = uint("cwversion")? {
            if v != crate::envelope::CWVERSION {
                return Err(DecodeError::UnsupportedVersion(i128::from(v)));
            }
        }
        let required = |key: &'static str| string(key)?.ok_or(DecodeError::MissingField(key));
        let content_type = string("datacontenttype")?;
        let mut data = match obj.get("data") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) if !content_type.as_deref().is_some_and(is_json_type) => {
                Some(s.as_bytes().to_vec())
            }
            Some(v) => Some(v.to_string().into_bytes()),
        };
        match obj.get("data_base64") {
            None | Some(Json::Null) => {}
            Some(Json::String(s)) => {
                data = Some(
                    B64.decode(s)
                        .map_err(|e| DecodeError::InvalidValue(format!("data_base64: {e}")))?,
                );
            }
            Some(other) => return Err(wrong_type("data_base64", "string", other)),
        }
        let mut event = Event {
            id: required("id")?,
            source: required("source")?,
            ty: required("type")?,
            subject: string("subject")?,
            time: string("time")?,
            datacontenttype: content_type,
            dataschema: string("dataschema")?,
            data,
            correlationid: string("correlationid")?,
            causationid: string("causationid")?,
            traceparent: string("traceparent")?,
            tracestate: string("tracestate")?,
            partitionkey: string("partitionkey")?,
            idempotencykey: string("idempotencykey")?,
            deadline: uint("deadline")?,
            attempt: uint("attempt")?.unwrap_or(1),
            extensions: Default::default(),
        };
        for (name, value) in obj {
            if RESERVED_NAMES.contains(&name.as_str()) {
                continue;
            }
            let ext = match value {
                Json::Null => continue,
                Json::String(s) => ExtensionValue::Str(s.clone()),
                Json::Bool(b) => ExtensionValue::Bool(*b),
                Json::Number(n) => match n.as_i64() {
                    Some(i) => ExtensionValue::Int(i),
                    None => return Err(wrong_type(name, "string, integer or boolean", value)),
                },
                other => return Err(wrong_type(name, "string, integer or boolean", other)),
            };
            event.extensions.insert(name.clone(), ext);
        }
        event.validate()?;
        Ok(event)
    }
}

fn wrong_type(field: &str, expected: &'static str, got: &Json) -> DecodeError {
    let got = match got {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    };
    DecodeError::WrongType {
        field: field.to_owned(),
        expected,
        got,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_roundtrip_keeps_every_attribute() {
        let mut ev = Event::with_data("order.created", Some(br#"{"a":[1,2]}"#.to_vec()));
        ev.datacontenttype = Some("application/json".into());
        ev.partitionkey = Some("order-1".into());
        ev.deadline = Some(5);
        ev.attempt = 3;
        ev.extensions
            .insert("blob".into(), ExtensionValue::Bin(vec![0, 255]));
        ev.extensions.insert("n".into(), ExtensionValue::Int(-4));
        let json = ev.to_json_value();
        assert_eq!(json["data"], serde_json::json!({"a": [1, 2]}));
        assert_eq!(json["blob"], "AP8=");
        let back = Event::from_json(&ev.to_json()).unwrap();
        // bin extensions come back as base64 strings: JSON cannot tell them apart
        assert_eq!(back.extensions["blob"], ExtensionValue::Str("AP8=".into()));
        assert_eq!(back.data, ev.data);
        assert_eq!(back.attempt, 3);
        assert_eq!(back.partitionkey, ev.partitionkey);
    }

    #[test]
    fn json_errors_use_spec_codes() {
        let base = r#""specversion":"1.0","id":"e","source":"s","type":"t""#;
        let code = |extra: &str| {
            Event::from_json(&format!("{{{base}{extra}}}"))
                .unwrap_err()
                .code()
        };
        assert_eq!(code(r#","x":[1]"#), "wrong_type");
        assert_eq!(code(r#","Bad":"1""#), "invalid_extension_name");
        assert_eq!(code(r#","attempt":0"#), "invalid_value");
        assert_eq!(code(r#","cwversion":2"#), "unsupported_version");
        assert_eq!(Event::from_json("[]").unwrap_err().code(), "malformed");
        assert_eq!(
            Event::from_json(r#"{"specversion":"1.0"}"#)
                .unwrap_err()
                .code(),
            "missing_field"
        );
    }
}
