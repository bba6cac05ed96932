//! Identifiers that come from users and travel in URLs, file names and
//! database keys: experiment identifiers and variant labels.
//!
//! One rule for all of them keeps them safe in every one of those places:
//! 1 to [`MAX_IDENTIFIER_LEN`] ASCII characters, letters, digits, `.`, `_`
//! and `-`, starting with a letter or a digit (so no `..`, no leading `-`
//! that a shell would read as a flag, no `/`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest identifier accepted, in bytes.
pub const MAX_IDENTIFIER_LEN: usize = 128;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// The string is empty.
    #[error("{kind} is empty; use 1 to {MAX_IDENTIFIER_LEN} characters from [A-Za-z0-9._-]")]
    Empty {
        /// What the identifier names (e.g. "experiment identifier").
        kind: &'static str,
    },
    /// The string is longer than [`MAX_IDENTIFIER_LEN`].
    #[error("{kind} is {len} characters long; at most {MAX_IDENTIFIER_LEN} are allowed")]
    TooLong {
        /// What the identifier names.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The string holds a character outside the allowed set, or starts badly.
    #[error(
        "{kind} {value:?} has {problem}; use letters, digits, '.', '_' and '-', starting with a letter or digit"
    )]
    BadCharacter {
        /// What the identifier names.
        kind: &'static str,
        /// The rejected value (only ever shown escaped).
        value: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn validate(kind: &'static str, value: &str) -> Result<(), IdentifierError> {
    if value.is_empty() {
        return Err(IdentifierError::Empty { kind });
    }
    if value.len() > MAX_IDENTIFIER_LEN {
        return Err(IdentifierError::TooLong {
            kind,
            len: value.len(),
        });
    }
    let bad = |problem: String| IdentifierError::BadCharacter {
        kind,
        value: value.to_owned(),
        problem,
    };
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(bad(format!("the character {c:?}")));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad("a first character that is not a letter or digit".into()));
    }
    Ok(())
}

/// The identifier rule, after an optional `custom:` (a model only an
/// external client knows).
fn validate_model(kind: &'static str, value: &str) -> Result<(), IdentifierError> {
    validate(kind, value.strip_prefix(CUSTOM_PREFIX).unwrap_or(value))
}

/// What marks a model that only an external client (not this tool's
/// engines) knows how to train: `custom:my-resnet`.
pub const CUSTOM_PREFIX: &str = "custom:";

macro_rules! identifier {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        identifier!($(#[$meta])* $name, $kind, validate);
    };
    ($(#[$meta:meta])* $name:ident, $kind:literal, $check:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// What this identifier names, for error messages.
            pub const KIND: &'static str = $kind;

            /// Checks `value` against the identifier rule and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, IdentifierError> {
                let value = value.into();
                $check($kind, &value)?;
                Ok(Self(value))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdentifierError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdentifierError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
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

identifier!(
    /// The user-given name of an experiment (the paper's "bug identifier").
    ///
    /// ```
    /// use reproml_core::ExperimentId;
    /// assert!(ExperimentId::new("conv2d-grad-36832").is_ok());
    /// assert!(ExperimentId::new("../etc/passwd").is_err());
    /// ```
    ExperimentId,
    "experiment identifier"
);

identifier!(
    /// The label of a variant inside an experiment: its evaluation type,
    /// `buggy`, `corrected` or any other label.
    VariantLabel,
    "variant label"
);

identifier!(
    /// The name of a challenge (`digits`, `fashion-mnist`, …) or of
    /// anything else a user names in a file (a recipe, a study).
    Name,
    "name"
);

identifier!(
    /// The name of a model as written in a spec: one the engines know
    /// (`lenet5`, `vgg-x`, see [`crate::spec::BUILTIN_MODELS`]) or
    /// `custom:NAME` for one only an external client knows.
    ///
    /// ```
    /// use reproml_core::id::ModelName;
    /// assert!(ModelName::new("custom:resnet50").unwrap().is_custom());
    /// assert!(ModelName::new("custom:../x").is_err());
    /// ```
    ModelName,
    "model name",
    validate_model
);

impl ModelName {
    /// True for `custom:NAME`.
    pub fn is_custom(&self) -> bool {
        self.0.starts_with(CUSTOM_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["a", "Z9", "conv2d-grad_36832.v2", "0"] {
            assert!(ExperimentId::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_what_would_be_unsafe_in_a_path_or_shell() {
        for bad in ["", "-rf", ".hidden", "a/b", "a b", "é", "a\0b", "..", "_x"] {
            assert!(ExperimentId::new(bad).is_err(), "{bad:?}");
        }
        let long = "a".repeat(MAX_IDENTIFIER_LEN + 1);
        assert!(matches!(
            ExperimentId::new(long),
            Err(IdentifierError::TooLong { len: 129, .. })
        ));
    }

    #[test]
    fn deserialising_applies_the_rule() {
        let err = serde_json::from_str::<VariantLabel>("\"a/b\"").unwrap_err();
        assert!(err.to_string().contains("variant label"), "{err}");
    }

    proptest! {
        #[test]
        fn valid_identifiers_round_trip(s in "[A-Za-z0-9][A-Za-z0-9._-]{0,127}") {
            let id = ExperimentId::new(s.clone()).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<ExperimentId>(&json).unwrap(), id);
        }
    }
}
