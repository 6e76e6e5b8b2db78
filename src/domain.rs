//! Validated identifiers that arrive from outside (Flagger payloads, API paths).
//!
//! Parse, don't validate: each newtype's only constructor checks its input, so a
//! value of the type is safe to use in a PromQL label matcher or a store key.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// A value refused with the key it came from: a configuration key (`jwt.key`) or a
/// webhook metadata key (`alpha`). Each caller wraps it in its own error, which says
/// where keys of that kind live.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {why}")]
pub struct InvalidValue {
    /// The key, as the user wrote it.
    pub key: Cow<'static, str>,
    /// What is wrong with its value, in one sentence.
    pub why: String,
}

/// Refuses the value of `key`, saying why.
pub fn invalid(key: impl Into<Cow<'static, str>>, why: impl Into<String>) -> InvalidValue {
    InvalidValue {
        key: key.into(),
        why: why.into(),
    }
}

/// Why an identifier was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field} {value:?} is not a valid Kubernetes name: {why}")]
pub struct InvalidName {
    pub field: &'static str,
    pub value: String,
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
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses a value, refusing anything that is not a DNS-1123 label.
            pub fn parse(value: &str) -> Result<Self, InvalidName> {
                check_dns1123_label($field, value)?;
                Ok(Self(value.to_owned()))
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Checksum(String);

impl Checksum {
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

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one analysis: one canary revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AnalysisKey {
    pub namespace: Namespace,
    pub name: CanaryName,
    pub checksum: Checksum,
}

impl fmt::Display for AnalysisKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.namespace, self.name, self.checksum)
    }
}

/// Milliseconds since the Unix epoch; the one time representation in the store.
pub type Millis = i64;

/// The current wall-clock time in [`Millis`].
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
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
    fn checksum_is_bounded() {
        assert!(Checksum::parse("85d557f47b").is_ok());
        assert!(Checksum::parse("a b").is_err());
        assert!(Checksum::parse("").is_err());
        assert!(Checksum::parse(&"a".repeat(129)).is_err());
    }
}
