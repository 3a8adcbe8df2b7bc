//! Response bodies that carry payloads as they are stored: a tree of JSON
//! values in which an input, output, custom status, event or entity state
//! is spliced in as its stored text (`serde_json::value::RawValue`), never
//! parsed and written again, so key order, number spelling and whitespace
//! come back as the client sent them. Object keys keep the order they were
//! inserted in.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// A JSON response body.
#[derive(Debug)]
pub enum Body {
    Value(Value),
    /// Stored JSON text, written as it is.
    Raw(Box<RawValue>),
    Object(Vec<(String, Body)>),
    Array(Vec<Body>),
}

impl Body {
    /// A payload: its stored text when it is JSON, a JSON string when it
    /// is not (a plain-text reason), `null` when there is none.
    pub fn payload(p: Option<&str>) -> Body {
        match p {
            None => Body::Value(Value::Null),
            Some(text) => match RawValue::from_string(text.to_string()) {
                Ok(raw) => Body::Raw(raw),
                Err(_) => Body::Value(Value::String(text.to_string())),
            },
        }
    }

    /// An empty object.
    pub fn object() -> Body {
        Body::Object(Vec::new())
    }

    /// Sets `key` of an object (replacing an earlier value); does nothing
    /// to a body that is not an object.
    pub fn insert(&mut self, key: &str, value: impl Into<Body>) {
        if let Body::Object(fields) = self {
            let value = value.into();
            match fields.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value,
                None => fields.push((key.to_string(), value)),
            }
        }
    }

    /// The value of `key`, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Body> {
        match self {
            Body::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl Body {
    /// The body as a JSON value, for code that reads its fields (payloads
    /// are parsed here, so numbers beyond `f64` lose digits: what goes back
    /// to a client is the body itself, not this).
    pub fn into_value(self) -> Value {
        serde_json::to_value(&self).unwrap_or(Value::Null)
    }
}

impl From<Value> for Body {
    fn from(v: Value) -> Self {
        Body::Value(v)
    }
}

impl From<Vec<Body>> for Body {
    fn from(v: Vec<Body>) -> Self {
        Body::Array(v)
    }
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Body::Value(v) => v.serialize(s),
            Body::Raw(r) => r.serialize(s),
            Body::Object(fields) => {
                let mut m = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Body::Array(items) => {
                let mut q = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    q.serialize_element(v)?;
                }
                q.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Body;

    fn text(b: &Body) -> String {
        serde_json::to_string(b).unwrap_or_default()
    }

    #[test]
    fn a_payload_is_written_as_stored() {
        let stored = r#"{"z": 1.0, "a": [12345678901234567890123, 1e2]}"#;
        let mut o = Body::object();
        o.insert("input", Body::payload(Some(stored)));
        assert_eq!(text(&o), format!(r#"{{"input":{stored}}}"#));
    }

    #[test]
    fn text_that_is_not_json_is_a_string_and_none_is_null() {
        let mut o = Body::object();
        o.insert("reason", Body::payload(Some("plain words")));
        o.insert("output", Body::payload(None));
        assert_eq!(text(&o), r#"{"reason":"plain words","output":null}"#);
    }

    #[test]
    fn keys_keep_their_order_and_insert_replaces() {
        let mut o = Body::object();
        o.insert("b", serde_json::json!(1));
        o.insert("a", serde_json::json!(2));
        o.insert("b", serde_json::json!(3));
        assert_eq!(text(&o), r#"{"b":3,"a":2}"#);
    }
}
