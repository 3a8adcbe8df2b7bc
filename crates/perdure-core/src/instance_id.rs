//! Instance-id rules (Durable Functions'): 1 to 256 characters, not starting
//! with `@`, none of `/ \ # ?`, no control characters. Generated ids are 32
//! lowercase hex characters.

/// Why an instance id was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstanceIdError {
    #[error("instance id must not be empty")]
    Empty,
    #[error("instance id is {0} characters long; the limit is 256")]
    TooLong(usize),
    #[error("instance id `{0}` must not start with `@` (reserved for entities)")]
    StartsWithAt(String),
    #[error(
        "instance id `{id}` contains the forbidden character `{ch}` (none of / \\ # ? are allowed)"
    )]
    ForbiddenChar { id: String, ch: char },
    #[error("instance id contains a control character at position {0}")]
    ControlChar(usize),
}

/// The longest instance id accepted, in characters.
pub const MAX_INSTANCE_ID_CHARS: usize = 256;

/// Checks `id` against the instance-id rules.
pub fn validate_instance_id(id: &str) -> Result<(), InstanceIdError> {
    if id.is_empty() {
        return Err(InstanceIdError::Empty);
    }
    let len = id.chars().count();
    if len > MAX_INSTANCE_ID_CHARS {
        return Err(InstanceIdError::TooLong(len));
    }
    if id.starts_with('@') {
        return Err(InstanceIdError::StartsWithAt(id.to_string()));
    }
    for (i, ch) in id.chars().enumerate() {
        if ch.is_control() {
            return Err(InstanceIdError::ControlChar(i));
        }
        if matches!(ch, '/' | '\\' | '#' | '?') {
            return Err(InstanceIdError::ForbiddenChar {
                id: id.to_string(),
                ch,
            });
        }
    }
    Ok(())
}

/// Formats 16 random bytes (drawn by the caller) as a 32-hex-character id.
pub fn generated_instance_id(random: [u8; 16]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(32);
    for b in random {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(validate_instance_id("order-42").is_ok());
        assert!(validate_instance_id(&"x".repeat(256)).is_ok());
        assert_eq!(validate_instance_id(""), Err(InstanceIdError::Empty));
        assert_eq!(
            validate_instance_id(&"x".repeat(257)),
            Err(InstanceIdError::TooLong(257))
        );
        assert!(matches!(
            validate_instance_id("@counter@1"),
            Err(InstanceIdError::StartsWithAt(_))
        ));
        for bad in ["a/b", "a\\b", "a#b", "a?b"] {
            assert!(matches!(
                validate_instance_id(bad),
                Err(InstanceIdError::ForbiddenChar { .. })
            ));
        }
        assert_eq!(
            validate_instance_id("ab\ncd"),
            Err(InstanceIdError::ControlChar(2))
        );
        assert_eq!(generated_instance_id([0xab; 16]), "ab".repeat(16));
    }
}
