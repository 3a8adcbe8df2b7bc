//! Payload text: the JSON of an input, output, event or status, carried as
//! it is and shared rather than copied. The event that records an
//! activity's input, the task that carries it to the activity and the
//! replay state that hands a result to the orchestrator hold one buffer;
//! cloning a [`PayloadText`] counts a reference.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A payload is JSON text carried as it is; `None` means no value.
pub type Payload = Option<PayloadText>;

/// The JSON text of a payload, shared. Made from a `String` without a
/// copy; reads as a `str`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PayloadText(Arc<String>);

impl PayloadText {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text as an owned `String`: moved out when this is its only
    /// holder, copied otherwise.
    pub fn into_string(self) -> String {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone())
    }

    /// Whether two payloads share one buffer (tests of the no-copy path).
    pub fn shares_buffer_with(&self, other: &PayloadText) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for PayloadText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for PayloadText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for PayloadText {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<String> for PayloadText {
    fn from(text: String) -> Self {
        PayloadText(Arc::new(text))
    }
}

impl From<&str> for PayloadText {
    fn from(text: &str) -> Self {
        PayloadText(Arc::new(text.to_string()))
    }
}

impl From<&String> for PayloadText {
    fn from(text: &String) -> Self {
        PayloadText(Arc::new(text.clone()))
    }
}

impl From<PayloadText> for String {
    fn from(text: PayloadText) -> Self {
        text.into_string()
    }
}

impl PartialEq<str> for PayloadText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for PayloadText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for PayloadText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for PayloadText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for PayloadText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PayloadText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PayloadText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(PayloadText::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_becomes_payload_text_without_a_copy() {
        let text = "x".repeat(1000);
        let at = text.as_ptr();
        let p = PayloadText::from(text);
        assert_eq!(p.as_ptr(), at);
        assert_eq!(p.clone().as_ptr(), at, "a clone shares the buffer");
    }

    #[test]
    fn the_only_holder_moves_its_string_out() {
        let p = PayloadText::from("[1,2]".to_string());
        let at = p.as_ptr();
        let back = p.into_string();
        assert_eq!(back.as_ptr(), at);
    }

    #[test]
    fn a_shared_payload_is_copied_out() {
        let p = PayloadText::from("{}");
        let q = p.clone();
        assert!(p.shares_buffer_with(&q));
        assert_eq!(p.into_string(), "{}");
        assert_eq!(q, "{}");
    }

    #[test]
    fn it_serializes_as_its_text() {
        let p = PayloadText::from("\"a\"");
        assert_eq!(serde_json::to_string(&p).unwrap_or_default(), r#""\"a\"""#);
        let back: PayloadText = serde_json::from_str(r#""\"a\"""#).unwrap_or_default();
        assert_eq!(back, p);
    }
}
