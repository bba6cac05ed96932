//! Statistics for comparing groups of runs, written to agree with SciPy
//! (`scipy.stats.mannwhitneyu` and `scipy.stats.wilcoxon`, SciPy 1.17) to
//! 1e-12 — checked against SciPy's own values in `tests/golden.rs`.
//!
//! Pure functions, no I/O. Inputs with no values, NaN or infinities are
//! errors, never a silent NaN.
//!
//! ```
//! use reproml_stats::{mann_whitney_u, MannWhitneyOptions};
//! let r = mann_whitney_u(&[19.0, 22.0, 16.0, 29.0, 24.0], &[20.0, 11.0, 17.0, 12.0],
//!                        &MannWhitneyOptions::default()).unwrap();
//! assert_eq!(r.statistic, 17.0);
//! assert!((r.pvalue - 0.1111111111111111).abs() < 1e-15);
//! ```

mod correction;
mod describe;
mod effect;
mod error;
mod mann_whitney;
pub mod power;
mod rank;
pub mod special;
mod wilcoxon;

pub use correction::{benjamini_hochberg, holm};
pub use describe::{Descriptives, describe};
pub use effect::{
    CliffMagnitude, HodgesLehmann, cliffs_delta, cliffs_magnitude, hodges_lehmann,
    vargha_delaney_a12,
};
pub use error::StatsError;
pub use mann_whitney::{MannWhitneyOptions, mann_whitney_u};
pub use wilcoxon::{WilcoxonOptions, ZeroMethod, wilcoxon};

use serde::{Deserialize, Serialize};

/// The alternative hypothesis of a test, as SciPy names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alternative {
    /// The distributions differ.
    #[default]
    TwoSided,
    /// The first sample is stochastically less than the second.
    Less,
    /// The first sample is stochastically greater than the second.
    Greater,
}

/// How a p-value is computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// SciPy's choice for the data (see each test).
    #[default]
    Auto,
    /// The exact null distribution.
    Exact,
    /// The normal approximation.
    Asymptotic,
}

/// Which computation produced a p-value (what `Method::Auto` chose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodUsed {
    /// Exact null distribution.
    Exact,
    /// Normal approximation.
    Asymptotic,
    /// Exact permutation (every sign pattern enumerated).
    Permutation,
}

/// The outcome of a test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// The test statistic, as SciPy reports it.
    pub statistic: f64,
    /// The p-value, in [0, 1].
    pub pvalue: f64,
    /// How the p-value was computed.
    pub method: MethodUsed,
}

impl std::str::FromStr for Alternative {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "two-sided" => Ok(Self::TwoSided),
            "less" => Ok(Self::Less),
            "greater" => Ok(Self::Greater),
            _ => Err(format!(
                "unknown alternative {s:?}; use two-sided, less or greater"
            )),
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "exact" => Ok(Self::Exact),
            "asymptotic" => Ok(Self::Asymptotic),
            _ => Err(format!(
                "unknown method {s:?}; use auto, exact or asymptotic"
            )),
        }
    }
}

/// Checks that a sample is non-empty and finite.
fn check_sample(name: &'static str, values: &[f64]) -> Result<(), StatsError> {
    if values.is_empty() {
        return Err(StatsError::EmptySample { sample: name });
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(StatsError::NonFinite {
            sample: name,
            index,
            value,
        });
    }
    Ok(())
}
