//! Payloads as the client sent them. An input, event, reason or output is
//! JSON text, stored and returned byte for byte: Rust values are
//! serialized once, and text that arrives as JSON from another door (the
//! HTTP API, a gRPC client) is checked once and kept as it is, so key
//! order, number spelling (`1.0`, `12345678901234567890123`) and
//! whitespace survive. [`RawJson`] carries such text, or no payload at all.

use crate::error::ClientError;
use perdure_core::{Payload, PayloadText};
use serde::Serialize;

/// The largest input, event or reason a client accepts, in bytes of JSON.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// JSON text kept exactly as given, or no payload at all (which is not
/// `null`: an orchestration started without input has none).
///
/// ```
/// use perdure::{IntoPayload, RawJson};
/// let big = RawJson::parse(r#"{"b": 1.0, "a": 12345678901234567890123}"#).unwrap();
/// assert_eq!(
///     big.into_payload().unwrap().as_deref(),
///     Some(r#"{"b": 1.0, "a": 12345678901234567890123}"#)
/// );
/// assert_eq!(RawJson::none().into_payload().unwrap(), None);
/// assert!(RawJson::parse("{not json").is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawJson(Payload);

impl RawJson {
    /// `text` if it is one valid JSON value (checked, not rewritten).
    pub fn parse(text: impl Into<String>) -> Result<Self, ClientError> {
        let text = text.into();
        check_size(text.len())?;
        serde_json::from_str::<serde::de::IgnoredAny>(&text)
            .map_err(|e| ClientError::Serialization(e.to_string()))?;
        Ok(RawJson(Some(text.into())))
    }

    /// No payload.
    pub fn none() -> Self {
        RawJson(None)
    }

    /// A payload as the protocols carry it: absent, empty or only
    /// whitespace means none (the JavaScript SDK sends an empty
    /// `StringValue` for "no input"); anything else must be JSON.
    /// Text given as a `String` is kept, not copied.
    pub fn from_wire<S: AsRef<str> + Into<String>>(text: Option<S>) -> Result<Self, ClientError> {
        match text {
            Some(t) if !t.as_ref().trim().is_empty() => Self::parse(t),
            _ => Ok(Self::none()),
        }
    }

    /// A payload as a store holds it (JSON text written by a door or a
    /// serializer earlier), handed on without another check.
    pub(crate) fn stored(payload: Payload) -> Self {
        RawJson(payload)
    }

    /// The text, if there is a payload.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// Text stored as it is, not as JSON: a reason a protocol carries as plain
/// words (Durable Task's rewind reason), shown back as the same words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlainText(pub Option<String>);

impl IntoPayload for PlainText {
    fn into_payload(self) -> Result<Payload, ClientError> {
        if let Some(t) = &self.0 {
            check_size(t.len())?;
        }
        Ok(self.0.map(PayloadText::from))
    }
}

/// What client calls accept as a payload: any serializable Rust value
/// (serialized once, as JSON), or [`RawJson`] (kept as it is).
pub trait IntoPayload {
    fn into_payload(self) -> Result<Payload, ClientError>;
}

impl<T: Serialize> IntoPayload for T {
    fn into_payload(self) -> Result<Payload, ClientError> {
        let text =
            serde_json::to_string(&self).map_err(|e| ClientError::Serialization(e.to_string()))?;
        check_size(text.len())?;
        Ok(Some(text.into()))
    }
}

impl IntoPayload for RawJson {
    fn into_payload(self) -> Result<Payload, ClientError> {
        Ok(self.0)
    }
}

fn check_size(size: usize) -> Result<(), ClientError> {
    if size > MAX_PAYLOAD_BYTES {
        return Err(ClientError::PayloadTooLarge {
            size,
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}
