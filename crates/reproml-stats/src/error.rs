use thiserror::Error;

/// Why a statistic cannot be computed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StatsError {
    /// A sample has no values.
    #[error("sample {sample} is empty; a test needs at least one value in each sample")]
    EmptySample {
        /// Which sample (`x`, `y`, …).
        sample: &'static str,
    },
    /// A value is NaN or infinite.
    #[error(
        "sample {sample} has a non-finite value ({value}) at position {index}; remove or fix it"
    )]
    NonFinite {
        /// Which sample.
        sample: &'static str,
        /// Position of the value, from 0.
        index: usize,
        /// The value.
        value: f64,
    },
    /// Paired samples of different lengths.
    #[error("paired samples must have the same length, got {x} and {y}")]
    LengthMismatch {
        /// Length of `x`.
        x: usize,
        /// Length of `y`.
        y: usize,
    },
    /// The exact distribution would take too long to compute.
    #[error(
        "the exact distribution for samples of {n1} and {n2} values is too large (n1·n2 above {limit}); use the asymptotic method"
    )]
    TooLargeForExact {
        /// Size of the first sample.
        n1: usize,
        /// Size of the second sample.
        n2: usize,
        /// Largest n1·n2 accepted.
        limit: usize,
    },
    /// The test is undefined for this data (e.g. no variance at all).
    #[error("the test is undefined for these data: {reason}")]
    Undefined {
        /// Why.
        reason: &'static str,
    },
    /// A parameter is outside its range.
    #[error("{name} must be {allowed}, got {value}")]
    BadParameter {
        /// The parameter.
        name: &'static str,
        /// What is allowed.
        allowed: &'static str,
        /// The value given.
        value: f64,
    },
}
