//! Identifiers used in topics and messages: households, devices, slots and consumables.

use core::fmt;
use core::ops::Deref;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest identifier accepted, in bytes.
pub const MAX_ID_LEN: usize = 32;

/// A short identifier: 1 to 32 characters from `a-z`, `0-9`, `_` and `-`.
///
/// The alphabet keeps identifiers safe as MQTT topic segments (no `/`, `+` or `#`), as URL path
/// segments and as storage keys, so nothing downstream needs escaping.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(heapless::String<MAX_ID_LEN>);

/// Why a string is not a valid [`Id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("identifier is empty")]
    Empty,
    /// The string is longer than [`MAX_ID_LEN`] bytes.
    #[error("identifier is longer than {MAX_ID_LEN} characters")]
    TooLong,
    /// The string holds a character outside `a-z0-9_-`.
    #[error("identifier holds {0:?}; only a-z, 0-9, '_' and '-' are allowed")]
    BadChar(char),
}

impl Id {
    /// Checks and wraps `s`.
    pub fn new(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
        {
            return Err(IdError::BadChar(c));
        }
        let mut inner = heapless::String::new();
        inner.push_str(s).map_err(|_| IdError::TooLong)?;
        Ok(Self(inner))
    }

    /// The identifier as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl TryFrom<&str> for Id {
    type Error = IdError;
    fn try_from(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl core::str::FromStr for Id {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for Id {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Id {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl serde::de::Visitor<'_> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an identifier of 1-32 characters from a-z, 0-9, '_' and '-'")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Id, E> {
                Id::new(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(IdVisitor)
    }
}

/// An [`Id`] that names one kind of thing, so one kind cannot be passed where another is
/// meant; it reads, prints, compares with text and is stored exactly as its [`Id`].
macro_rules! kind_of_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Id);

        impl $name {
            /// Checks and wraps `s`, as [`Id::new`] does.
            pub fn new(s: &str) -> Result<Self, IdError> {
                Id::new(s).map(Self)
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// The identifier without its kind.
            pub fn as_id(&self) -> &Id {
                &self.0
            }
        }

        impl From<Id> for $name {
            fn from(id: Id) -> Self {
                Self(id)
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl core::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

kind_of_id!(
    /// A household: the second segment of every topic (`replenish/v1/{household}/…`).
    HouseholdId
);

kind_of_id!(
    /// A device (an appliance) within its household: the third segment of its topics.
    DeviceId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_id_check_print_and_store_as_their_id() {
        let device = DeviceId::new("coffee-maker").unwrap();
        assert_eq!(device, "coffee-maker");
        assert_eq!(device.as_id(), &Id::new("coffee-maker").unwrap());
        assert!(matches!(
            DeviceId::new("Coffee"),
            Err(IdError::BadChar('C'))
        ));
        assert!(matches!(HouseholdId::new(""), Err(IdError::Empty)));
        assert_eq!(
            serde_json::to_string(&device).unwrap(),
            serde_json::to_string(device.as_id()).unwrap()
        );
        assert!(serde_json::from_str::<HouseholdId>(r#""a/b""#).is_err());
    }

    #[test]
    fn accepts_the_documented_alphabet() {
        assert_eq!(Id::new("coffee-maker_2").unwrap(), "coffee-maker_2");
    }

    #[test]
    fn rejects_topic_wildcards_separators_and_case() {
        for bad in ["a/b", "a+", "#", "Beans", "a b", "é"] {
            assert!(matches!(Id::new(bad), Err(IdError::BadChar(_))), "{bad}");
        }
        assert_eq!(Id::new(""), Err(IdError::Empty));
        assert_eq!(Id::new(&"a".repeat(33)), Err(IdError::TooLong));
        assert!(Id::new(&"a".repeat(32)).is_ok());
    }
}
