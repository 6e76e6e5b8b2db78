//! Names that arrive from outside (Flagger payloads, API paths, stored rows).
//!
//! Parse, don't validate: each newtype's only constructor checks its input, so a
//! value of the type is safe to use in a PromQL label matcher or a store key. They
//! deserialize through the same check.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{field} {value:?} is not a valid Kubernetes name: {why}")]
pub struct InvalidName {
    /// What was being parsed: `namespace`, `name`, `checksum` or `canary`.
    pub field: &'static str,
    /// The refused value (at most 80 characters of it).
    pub value: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Checks a Kubernetes DNS-1123 label: lower-case alphanumerics and '-', starting
/// and ending with an alphanumeric, at most 63 characters.
fn check_dns1123_label(field: &'static str, value: &str) -> Result<(), InvalidName> {
    let fail = |why| {
        Err(InvalidName {
            field,
            value: value.chars().take(80).collect(),
            why,
        })
    };
    if value.is_empty() {
        return fail("it is empty");
    }
    if value.len() > 63 {
        return fail("it is longer than 63 characters");
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !value.chars().all(ok_char) {
        return fail("only lower-case letters, digits and '-' are allowed");
    }
    let first = value.chars().next().unwrap_or('-');
    let last = value.chars().last().unwrap_or('-');
    if first == '-' || last == '-' {
        return fail("it must start and end with a letter or digit");
    }
    Ok(())
}

macro_rules! dns_label_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses a value, refusing anything that is not a DNS-1123 label.
            pub fn parse(value: &str) -> Result<Self, InvalidName> {
                check_dns1123_label($field, value)?;
                Ok(Self(value.to_owned()))
            }

            /// The name itself.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;

            fn try_from(value: String) -> Result<Self, InvalidName> {
                check_dns1123_label($field, &value)?;
                Ok(Self(value))
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

dns_label_type!(
    /// A Kubernetes namespace.
    Namespace,
    "namespace"
);
dns_label_type!(
    /// A canary's (or workload's) name.
    CanaryName,
    "name"
);

/// The revision checksum Flagger sends; hex-ish, bounded, no whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Checksum(String);

impl Checksum {
    /// What a hook that may come before any revision (confirm-rollout, event,
    /// load-test) records when Flagger sent no checksum.
    pub const NONE: &'static str = "none";

    /// Parses a checksum: 1-128 characters of `[A-Za-z0-9._-]`.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        let ok = !value.is_empty()
            && value.len() <= 128
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidName {
                field: "checksum",
                value: value.chars().take(80).collect(),
                why: "expected 1-128 characters of [A-Za-z0-9._-]",
            })
        }
    }

    /// The checksum itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Checksum {
    type Error = InvalidName;

    fn try_from(value: String) -> Result<Self, InvalidName> {
        Self::parse(&value)
    }
}

impl From<Checksum> for String {
    fn from(value: Checksum) -> String {
        value.0
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One canary: its namespace and name, written `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CanaryRef {
    /// The canary's namespace.
    pub namespace: Namespace,
    /// The canary's name.
    pub name: CanaryName,
}

impl CanaryRef {
    /// Parses `namespace/name`, both valid Kubernetes names.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        let (namespace, name) = value.split_once('/').ok_or_else(|| InvalidName {
            field: "canary",
            value: value.chars().take(80).collect(),
            why: "expected NAMESPACE/NAME, e.g. test/podinfo",
        })?;
        Ok(Self {
            namespace: Namespace::parse(namespace)?,
            name: CanaryName::parse(name)?,
        })
    }
}

impl fmt::Display for CanaryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Identifies one analysis: one canary revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AnalysisKey {
    /// The canary's namespace.
    pub namespace: Namespace,
    /// The canary's name.
    pub name: CanaryName,
    /// The revision.
    pub checksum: Checksum,
}

impl AnalysisKey {
    /// The canary this revision belongs to.
    pub fn canary(&self) -> CanaryRef {
        CanaryRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

impl fmt::Display for AnalysisKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.namespace, self.name, self.checksum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        assert!(CanaryName::parse("podinfo").is_ok());
        assert!(CanaryName::parse("a-1").is_ok());
        assert!(Namespace::parse("test").is_ok());
    }

    #[test]
    fn refuses_promql_and_bad_labels() {
        for bad in [
            "",
            "x\"} or vector(1) #",
            "Podinfo",
            "-a",
            "a-",
            "a.b",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(CanaryName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn canary_refs_parse_and_print_as_namespace_slash_name() {
        let canary = CanaryRef::parse("test/podinfo").expect("valid");
        assert_eq!(canary.to_string(), "test/podinfo");
        for bad in ["test", "test/", "/podinfo", "Test/podinfo", "a/b/c"] {
            assert!(CanaryRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_deserialize_through_their_check() {
        let ok: Result<Namespace, _> = serde_json::from_str("\"test\"");
        assert!(ok.is_ok());
        let bad: Result<CanaryName, _> = serde_json::from_str("\"x\\\"} or vector(1)\"");
        assert!(bad.is_err());
    }

    #[test]
    fn checksum_is_bounded() {
        assert!(Checksum::parse("85d557f47b").is_ok());
        assert!(Checksum::parse("a b").is_err());
        assert!(Checksum::parse("").is_err());
        assert!(Checksum::parse(&"a".repeat(129)).is_err());
    }
}
