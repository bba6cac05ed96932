//! Silent defects injected on purpose, so that one binary can play the
//! *buggy* artifact of a study with a bug of known effect — or of known
//! absence of effect — and the methodology can be calibrated on it.
//!
//! The names and parameters live here, in the vocabulary, so that a run or
//! a study validates every artifact before any training starts; the
//! training engine implements what each fault does.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A defect in how the engine is used; written as text
/// (`grad-scale=0.01@fc1.weight`) in flags, study files and fingerprints.
///
/// ```
/// use reproml_core::fault::Fault;
/// let f: Fault = "grad-scale=0.5@fc1.weight".parse().unwrap();
/// assert_eq!(f.to_string(), "grad-scale=0.5@fc1.weight");
/// assert!("gremlins".parse::<Fault>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Fault {
    /// No defect.
    #[default]
    None,
    /// SGD drops its momentum buffer and steps with the raw gradient (a
    /// real, large effect).
    MomentumIgnored,
    /// One parameter's gradient is multiplied by `1 + epsilon` (a small,
    /// real effect that grows with epsilon).
    GradScale {
        /// Relative error of the gradient.
        epsilon: f64,
        /// The parameter; the first one when absent.
        param: Option<String>,
    },
    /// Dropout keeps units unscaled (`scale` instead of `1/(1−p)`); no
    /// effect on models without dropout.
    DropoutScale {
        /// The wrong scale.
        scale: f32,
    },
    /// `tanh` returns `tanh(x) + offset`. No built-in model calls tanh, so
    /// this defect is never triggered: trajectories stay bit-identical.
    TanhOffset {
        /// The error added.
        offset: f64,
    },
}

/// A fault specification that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown fault {0:?}; use momentum-ignored, grad-scale[=EPS[@PARAM]], dropout-scale[=SCALE] or tanh-offset[=OFFSET]"
)]
pub struct FaultParseError(String);

impl std::str::FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || FaultParseError(s.to_owned());
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        let number = |v: Option<&str>, default: f64| -> Result<f64, FaultParseError> {
            match v {
                None => Ok(default),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(bad),
            }
        };
        match name {
            "none" if value.is_none() => Ok(Fault::None),
            "momentum-ignored" if value.is_none() => Ok(Fault::MomentumIgnored),
            "grad-scale" => {
                let (eps, param) = match value.and_then(|v| v.split_once('@')) {
                    Some((e, p)) => (Some(e), Some(p.to_owned())),
                    None => (value, None),
                };
                Ok(Fault::GradScale {
                    epsilon: number(eps, 0.01)?,
                    param,
                })
            }
            "dropout-scale" => Ok(Fault::DropoutScale {
                scale: number(value, 1.0)? as f32,
            }),
            "tanh-offset" => Ok(Fault::TanhOffset {
                offset: number(value, 1e-3)?,
            }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::None => write!(f, "none"),
            Fault::MomentumIgnored => write!(f, "momentum-ignored"),
            Fault::GradScale {
                epsilon,
                param: None,
            } => write!(f, "grad-scale={epsilon}"),
            Fault::GradScale {
                epsilon,
                param: Some(p),
            } => write!(f, "grad-scale={epsilon}@{p}"),
            Fault::DropoutScale { scale } => write!(f, "dropout-scale={scale}"),
            Fault::TanhOffset { offset } => write!(f, "tanh-offset={offset}"),
        }
    }
}

impl TryFrom<String> for Fault {
    type Error = FaultParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Fault> for String {
    fn from(f: Fault) -> String {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_print_back() {
        for text in [
            "none",
            "momentum-ignored",
            "grad-scale=0.01",
            "grad-scale=0.5@fc1.weight",
            "dropout-scale=1",
            "tanh-offset=0.001",
        ] {
            let fault: Fault = text.parse().unwrap();
            assert_eq!(fault.to_string(), text);
        }
        assert_eq!(
            "grad-scale".parse::<Fault>().unwrap().to_string(),
            "grad-scale=0.01"
        );
        assert!("grad-scale=lots".parse::<Fault>().is_err());
        assert!("momentum-ignored=1".parse::<Fault>().is_err());
        assert!(
            "gremlins"
                .parse::<Fault>()
                .unwrap_err()
                .to_string()
                .contains("momentum-ignored")
        );
    }
}
