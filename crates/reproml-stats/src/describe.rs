//! Descriptive statistics of one sample.

use serde::{Deserialize, Serialize};

use crate::special::pairwise_sum;
use crate::{StatsError, check_sample};

/// Summary of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Descriptives {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); `None` for one value.
    pub sd: Option<f64>,
    /// Median.
    pub median: f64,
    /// First quartile (linear interpolation, NumPy's default).
    pub q1: f64,
    /// Third quartile.
    pub q3: f64,
    /// Interquartile range `q3 − q1`.
    pub iqr: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// Describes a non-empty, finite sample.
///
/// ```
/// let d = reproml_stats::describe(&[1.0, 2.0, 3.0, 4.0]).unwrap();
/// assert_eq!((d.mean, d.median, d.q1, d.q3), (2.5, 2.5, 1.75, 3.25));
/// ```
pub fn describe(values: &[f64]) -> Result<Descriptives, StatsError> {
    check_sample("values", values)?;
    let n = values.len();
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = pairwise_sum(values) / n as f64;
    let sd = (n > 1).then(|| {
        let squares: Vec<f64> = values.iter().map(|v| (v - mean) * (v - mean)).collect();
        (pairwise_sum(&squares) / (n - 1) as f64).sqrt()
    });
    let q1 = quantile(&sorted, 0.25);
    let q3 = quantile(&sorted, 0.75);
    Ok(Descriptives {
        n,
        mean,
        sd,
        median: quantile(&sorted, 0.5),
        q1,
        q3,
        iqr: q3 - q1,
        min: sorted[0],
        max: sorted[n - 1],
    })
}

/// Quantile `q` of sorted values by linear interpolation between order
/// statistics at position `(n − 1) q` (NumPy's `method="linear"`).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_agrees() {
        // np.mean, np.std(ddof=1), np.percentile([...], [25, 50, 75])
        let d = describe(&[7.0, 1.0, 3.0, 10.0, 4.0]).unwrap();
        assert_eq!(d.mean, 5.0);
        assert!((d.sd.unwrap() - 3.5355339059327378).abs() < 1e-15);
        assert_eq!((d.q1, d.median, d.q3), (3.0, 4.0, 7.0));
        assert_eq!((d.min, d.max, d.iqr), (1.0, 10.0, 4.0));
    }

    #[test]
    fn one_value_has_no_spread() {
        let d = describe(&[2.0]).unwrap();
        assert_eq!((d.sd, d.iqr, d.median), (None, 0.0, 2.0));
    }

    #[test]
    fn refuses_empty_and_nan() {
        assert!(describe(&[]).is_err());
        assert!(describe(&[1.0, f64::NAN]).is_err());
    }
}
