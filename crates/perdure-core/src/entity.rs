//! Entity identity (Durable Functions'): an entity is named by its entity
//! name (case-insensitive, kept lowercase) and a key, and lives as the
//! instance `@name@key`. Orchestration instance ids may not start with `@`,
//! so the two never collide.

use std::fmt;

/// Why an entity id was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntityIdError {
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error("entity name must not be empty")]
    EmptyName,
    #[error("entity name `{0}` must not contain `@`")]
    AtInName(String),
    #[error("entity name `{name}` contains the forbidden character `{ch}` (none of / \\ # ?)")]
    ForbiddenNameChar { name: String, ch: char },
    #[error("entity key must not be empty")]
    EmptyKey,
    #[error("`{0}` is not an entity instance id (expected `@name@key`)")]
    NotAnEntityId(String),
    #[error("entity key `{key}` contains the forbidden character `{ch:?}` (none of / \\ # ? or control characters)")]
    ForbiddenChar { key: String, ch: char },
    #[error("entity id is {0} characters long; the limit is 256")]
    TooLong(usize),
}

/// An entity's identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId {
    /// Lowercase entity name.
    pub name: String,
    pub key: String,
}

impl EntityId {
    /// An entity id; the name is lowercased.
    pub fn new(name: &str, key: &str) -> Result<Self, EntityIdError> {
        if name.is_empty() {
            return Err(EntityIdError::EmptyName);
        }
        crate::names::validate_name(crate::names::NameKind::Entity, name)?;
        if name.contains('@') {
            return Err(EntityIdError::AtInName(name.to_string()));
        }
        if let Some(ch) = name.chars().find(|c| matches!(c, '/' | '\\' | '#' | '?')) {
            return Err(EntityIdError::ForbiddenNameChar {
                name: name.to_string(),
                ch,
            });
        }
        if key.is_empty() {
            return Err(EntityIdError::EmptyKey);
        }
        if let Some(ch) = key
            .chars()
            .find(|c| c.is_control() || matches!(c, '/' | '\\' | '#' | '?'))
        {
            return Err(EntityIdError::ForbiddenChar {
                key: key.to_string(),
                ch,
            });
        }
        let id = EntityId {
            name: name.to_lowercase(),
            key: key.to_string(),
        };
        let len = id.to_string().chars().count();
        if len > crate::instance_id::MAX_INSTANCE_ID_CHARS {
            return Err(EntityIdError::TooLong(len));
        }
        Ok(id)
    }

    /// Parses an entity instance id, `@name@key`.
    pub fn parse(instance_id: &str) -> Result<Self, EntityIdError> {
        let not = || EntityIdError::NotAnEntityId(instance_id.to_string());
        let rest = instance_id.strip_prefix('@').ok_or_else(not)?;
        let (name, key) = rest.split_once('@').ok_or_else(not)?;
        EntityId::new(name, key)
    }

    /// The instance name under which stores keep this entity: `@name`.
    pub fn instance_name(&self) -> String {
        format!("@{}", self.name)
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}@{}", self.name, self.key)
    }
}

/// True if `instance_id` names an entity (starts with `@`).
pub fn is_entity_instance(instance_id: &str) -> bool {
    instance_id.starts_with('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_names_fold_case() {
        let id = EntityId::new("Counter", "a@b").unwrap();
        assert_eq!(id.to_string(), "@counter@a@b");
        assert_eq!(EntityId::parse("@counter@a@b").unwrap(), id);
        assert_eq!(id.instance_name(), "@counter");
        assert!(is_entity_instance(&id.to_string()));
        assert_eq!(EntityId::new("", "k"), Err(EntityIdError::EmptyName));
        assert_eq!(EntityId::new("c", ""), Err(EntityIdError::EmptyKey));
        assert!(matches!(
            EntityId::new("c", "a/b"),
            Err(EntityIdError::ForbiddenChar { ch: '/', .. })
        ));
        assert!(matches!(
            EntityId::parse("counter@k"),
            Err(EntityIdError::NotAnEntityId(_))
        ));
    }

    #[test]
    fn names_follow_the_name_rules() {
        for (name, refused) in [
            ("a/b", true),
            ("a\\b", true),
            ("a#b", true),
            ("a?b", true),
            ("tab\tname", true),
            ("Counter.v2", false),
        ] {
            assert_eq!(EntityId::new(name, "k").is_err(), refused, "{name:?}");
        }
        assert!(matches!(
            EntityId::new(&"n".repeat(257), "k"),
            Err(EntityIdError::Name(crate::NameError::TooLong { .. }))
        ));
    }
}
