//! Effect sizes: how large a difference is, not only whether it exists.

use serde::{Deserialize, Serialize};

use crate::mann_whitney::{MAX_EXACT_CELLS, UNull};
use crate::special::normal_quantile;
use crate::{StatsError, check_sample};

/// Counts of pairs `(x_i, y_j)` with `x_i > y_j` and with `x_i == y_j`.
fn dominance(x: &[f64], y: &[f64]) -> (u64, u64) {
    let mut sorted_y = y.to_vec();
    sorted_y.sort_by(f64::total_cmp);
    let (mut greater, mut equal) = (0u64, 0u64);
    for &v in x {
        let below = sorted_y.partition_point(|&w| w < v);
        let not_above = sorted_y.partition_point(|&w| w <= v);
        greater += below as u64;
        equal += (not_above - below) as u64;
    }
    (greater, equal)
}

/// Vargha and Delaney's A12: the probability that a value of `x` exceeds
/// one of `y`, ties counting half (A. Vargha, H. D. Delaney, J. Educ. Behav.
/// Stat. 25(2), 2000). 0.5 means no effect.
///
/// ```
/// assert_eq!(reproml_stats::vargha_delaney_a12(&[3.0, 4.0], &[1.0, 2.0]).unwrap(), 1.0);
/// ```
pub fn vargha_delaney_a12(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    check_sample("x", x)?;
    check_sample("y", y)?;
    let (greater, equal) = dominance(x, y);
    Ok((greater as f64 + 0.5 * equal as f64) / (x.len() as f64 * y.len() as f64))
}

/// Cliff's δ: `P(x > y) − P(x < y)`, in [−1, 1]; equals `2·A12 − 1`.
pub fn cliffs_delta(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    check_sample("x", x)?;
    check_sample("y", y)?;
    let (greater, equal) = dominance(x, y);
    let pairs = x.len() as u64 * y.len() as u64;
    let less = pairs - greater - equal;
    Ok((greater as f64 - less as f64) / pairs as f64)
}

/// The conventional reading of |δ| (J. Romano et al., 2006: thresholds
/// 0.147, 0.33 and 0.474).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CliffMagnitude {
    /// |δ| < 0.147
    Negligible,
    /// |δ| < 0.33
    Small,
    /// |δ| < 0.474
    Medium,
    /// |δ| ≥ 0.474
    Large,
}

impl CliffMagnitude {
    /// The label as a word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Negligible => "negligible",
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
        }
    }
}

/// The magnitude label of a Cliff's δ.
pub fn cliffs_magnitude(delta: f64) -> CliffMagnitude {
    match delta.abs() {
        d if d < 0.147 => CliffMagnitude::Negligible,
        d if d < 0.33 => CliffMagnitude::Small,
        d if d < 0.474 => CliffMagnitude::Medium,
        _ => CliffMagnitude::Large,
    }
}

/// The Hodges-Lehmann shift between two samples with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HodgesLehmann {
    /// Median of all differences `x_i − y_j`.
    pub estimate: f64,
    /// Lower end of the interval.
    pub lower: f64,
    /// Upper end of the interval.
    pub upper: f64,
    /// Confidence the interval actually achieves (the U distribution is
    /// discrete, so it is at least the level asked for, when that is possible).
    pub achieved_confidence: f64,
}

/// The Hodges-Lehmann estimate of the shift of `x` relative to `y` and its
/// distribution-free confidence interval at `confidence` (e.g. 0.95),
/// inverted from the Mann-Whitney U distribution (Hollander & Wolfe,
/// *Nonparametric Statistical Methods*, §4.3; the same construction as R's
/// `wilcox.test(conf.int = TRUE)`): with `D_(1) ≤ … ≤ D_(mn)` the sorted
/// differences and `c` the smallest integer with `P(U ≤ c) ≥ α/2`, the
/// interval is `[D_(c), D_(mn+1−c)]` (`c ≥ 1`). Uses the exact distribution
/// up to `n1·n2` = 40,000 and the normal approximation beyond.
pub fn hodges_lehmann(x: &[f64], y: &[f64], confidence: f64) -> Result<HodgesLehmann, StatsError> {
    check_sample("x", x)?;
    check_sample("y", y)?;
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(StatsError::BadParameter {
            name: "confidence",
            allowed: "strictly between 0 and 1",
            value: confidence,
        });
    }
    let mut diffs: Vec<f64> = x
        .iter()
        .flat_map(|a| y.iter().map(move |b| a - b))
        .collect();
    diffs.sort_by(f64::total_cmp);
    let cells = diffs.len();
    let estimate = if cells % 2 == 1 {
        diffs[cells / 2]
    } else {
        0.5 * (diffs[cells / 2 - 1] + diffs[cells / 2])
    };
    let half_alpha = (1.0 - confidence) / 2.0;
    let (c, tail) = if cells <= MAX_EXACT_CELLS {
        let null = UNull::new(x.len(), y.len());
        // Smallest c with P(U ≤ c) ≥ α/2, at least 1. P(U ≤ cells/2) ≥ ½ >
        // α/2, so the lower half of the distribution, built once, holds it.
        let cdfs = null.lower_cdfs(cells / 2);
        let c = cdfs
            .iter()
            .position(|&p| p >= half_alpha)
            .unwrap_or(cdfs.len() - 1)
            .max(1);
        (c, cdfs[c - 1])
    } else {
        let mean = cells as f64 / 2.0;
        let sd = (cells as f64 * (x.len() + y.len() + 1) as f64 / 12.0).sqrt();
        let c = ((mean + normal_quantile(half_alpha) * sd).floor() as usize).clamp(1, cells / 2);
        (c, crate::special::ndtr((c as f64 - 0.5 - mean) / sd))
    };
    let c = c.min(cells.div_ceil(2));
    Ok(HodgesLehmann {
        estimate,
        lower: diffs[c - 1],
        upper: diffs[cells - c],
        achieved_confidence: (1.0 - 2.0 * tail).max(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn effect_sizes_of_separated_and_identical_samples() {
        let low = [1.0, 2.0, 3.0];
        let high = [4.0, 5.0, 6.0];
        assert_eq!(vargha_delaney_a12(&high, &low).unwrap(), 1.0);
        assert_eq!(cliffs_delta(&low, &high).unwrap(), -1.0);
        assert_eq!(vargha_delaney_a12(&low, &low).unwrap(), 0.5);
        assert_eq!(cliffs_delta(&low, &low).unwrap(), 0.0);
        assert_eq!(cliffs_magnitude(-1.0), CliffMagnitude::Large);
        assert_eq!(cliffs_magnitude(0.1), CliffMagnitude::Negligible);
        assert_eq!(cliffs_magnitude(0.2), CliffMagnitude::Small);
        assert_eq!(cliffs_magnitude(0.4), CliffMagnitude::Medium);
    }

    #[test]
    fn hodges_lehmann_of_a_pure_shift() {
        let y: Vec<f64> = (0..10).map(f64::from).collect();
        let x: Vec<f64> = y.iter().map(|v| v + 3.0).collect();
        let hl = hodges_lehmann(&x, &y, 0.95).unwrap();
        assert_eq!(hl.estimate, 3.0);
        assert!(hl.lower < 3.0 && 3.0 < hl.upper);
        assert!(hl.achieved_confidence >= 0.95);
        // P(U ≤ 23) = 0.0216 < 0.025 ≤ P(U ≤ 24) for 10 and 10 values, so c = 24:
        // the 24th and 77th of the 100 sorted differences 3 + (i − j), by hand.
        assert_eq!((hl.lower, hl.upper), (0.0, 6.0));
    }

    proptest! {
        #[test]
        fn a12_and_delta_agree(x in proptest::collection::vec(-5i32..5, 1..20), y in proptest::collection::vec(-5i32..5, 1..20)) {
            let x: Vec<f64> = x.into_iter().map(f64::from).collect();
            let y: Vec<f64> = y.into_iter().map(f64::from).collect();
            let a = vargha_delaney_a12(&x, &y).unwrap();
            let d = cliffs_delta(&x, &y).unwrap();
            prop_assert!((d - (2.0 * a - 1.0)).abs() < 1e-12);
            prop_assert!((vargha_delaney_a12(&y, &x).unwrap() - (1.0 - a)).abs() < 1e-12);
        }

        #[test]
        fn interval_contains_the_estimate(x in proptest::collection::vec(-100.0..100.0f64, 2..30), y in proptest::collection::vec(-100.0..100.0f64, 2..30)) {
            let hl = hodges_lehmann(&x, &y, 0.9).unwrap();
            prop_assert!(hl.lower <= hl.estimate && hl.estimate <= hl.upper);
        }
    }
}
