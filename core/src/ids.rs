//! Prefixed, time-ordered identifiers (UUIDv7 underneath).

use std::fmt;

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal) => {
        #[doc = concat!("Identifier with the `", $prefix, "` prefix.")]
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }
            /// Accepts only ids of this kind (prefix + 32 hex digits).
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                (rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| Self(s.to_owned()))
            }
            /// Wraps a value read back from our own database.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(MessageId, "msg_");
prefixed_id!(TenantId, "ten_");
prefixed_id!(AttemptId, "att_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_foreign_prefixes() {
        let id = MessageId::generate();
        assert_eq!(MessageId::parse(id.as_str()), Some(id.clone()));
        assert!(MessageId::parse(&id.as_str().replace("msg_", "ten_")).is_none());
        assert!(MessageId::parse("msg_123").is_none());
        let a = MessageId::generate();
        let b = MessageId::generate();
        assert!(a < b, "ids are time ordered");
    }
}
prefixed_id!(EndpointId, "whe_");
