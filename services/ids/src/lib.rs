//! Typed identifiers shared by the services.
//!
//! Ids of different things are different types, so that a saga's id cannot be passed
//! where a server's is wanted, or a project's where a user's is. Each is a newtype over
//! the plain string it is on the wire and in the database. A service declares its own
//! with [`id_type!`]; the ones several services share are declared here.

#[doc(hidden)]
pub use serde;

/// Ids of different things are different types, so a host name cannot be passed where
/// a server id is wanted. On the wire each is the plain string (serialised as a string);
/// each reads as a `&str` (`Deref`) and compares with strings.
#[macro_export]
macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub String);

        impl $crate::serde::Serialize for $name {
            fn serialize<S: $crate::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> $crate::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <String as $crate::serde::Deserialize>::deserialize(d).map(Self)
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                Self(s.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == &other.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    )*};
}

id_type! {
    /// A saga's id (a row of a service's saga table).
    SagaId;
    /// A project's id (Keystone's project, the owner of every resource).
    ProjectId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_string_on_the_wire_and_compares_with_strings() {
        let id = SagaId::from("s-1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"s-1\"");
        assert_eq!(serde_json::from_str::<SagaId>("\"s-2\"").unwrap(), "s-2");
        assert_eq!(id, "s-1");
        assert_eq!(id.as_str(), "s-1");
        assert_eq!(String::from(id.clone()), "s-1");
        assert_eq!(format!("{id}"), "s-1");
    }
}
