//! Name rules: orchestration, activity, entity and event names are 1 to
//! 256 characters with no control characters, whichever door they come
//! through (Rust, HTTP, gRPC), with one typed error.

use std::fmt;

/// The longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// What a name names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    Orchestration,
    Activity,
    Entity,
    Event,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Orchestration => "orchestration",
            NameKind::Activity => "activity",
            NameKind::Entity => "entity",
            NameKind::Event => "event",
        })
    }
}

/// Why a name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{0} name must not be empty")]
    Empty(NameKind),
    #[error("{kind} name is {len} characters long; the limit is 256")]
    TooLong { kind: NameKind, len: usize },
    #[error("{kind} name contains a control character at position {position}")]
    ControlChar { kind: NameKind, position: usize },
}

/// Checks `name` against the name rules.
pub fn validate_name(kind: NameKind, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty(kind));
    }
    let mut len = 0;
    for (position, ch) in name.chars().enumerate() {
        if ch.is_control() {
            return Err(NameError::ControlChar { kind, position });
        }
        len += 1;
    }
    if len > MAX_NAME_CHARS {
        return Err(NameError::TooLong { kind, len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        use NameKind::*;
        for (kind, name, expected) in [
            (Activity, "SayHello", Ok(())),
            (Event, "Approval Event", Ok(())),
            (Orchestration, "名前", Ok(())),
            (Orchestration, &"x".repeat(256) as &str, Ok(())),
            (Orchestration, "", Err(NameError::Empty(Orchestration))),
            (
                Activity,
                &"x".repeat(257),
                Err(NameError::TooLong {
                    kind: Activity,
                    len: 257,
                }),
            ),
            (
                Event,
                "ab\ncd",
                Err(NameError::ControlChar {
                    kind: Event,
                    position: 2,
                }),
            ),
            (
                Entity,
                "\u{7f}",
                Err(NameError::ControlChar {
                    kind: Entity,
                    position: 0,
                }),
            ),
        ] {
            assert_eq!(validate_name(kind, name), expected, "{kind} `{name}`");
        }
    }
}
