//! What a box plot draws, computed here rather than by the plotting crate:
//! plotters' `Quartiles` puts the whiskers *at* the 1.5×IQR fences, which
//! draws them beyond the data; Tukey's box plot puts each whisker at the
//! most extreme observation inside its fence, and marks every observation
//! outside as an outlier.

/// Quartiles, Tukey whiskers and outliers of a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxStats {
    /// First quartile.
    pub q1: f64,
    /// Median.
    pub median: f64,
    /// Third quartile.
    pub q3: f64,
    /// The smallest observation at or above `q1 − 1.5·IQR` (`q1` when
    /// that observation lies inside the box).
    pub whisker_low: f64,
    /// The largest observation at or below `q3 + 1.5·IQR` (`q3` when
    /// that observation lies inside the box).
    pub whisker_high: f64,
    /// Observations beyond the fences, ascending.
    pub outliers: Vec<f64>,
}

/// The `p`-quantile of sorted `x` by linear interpolation between order
/// statistics (Hyndman & Fan's type 7: R's and NumPy's default).
fn quantile(x: &[f64], p: f64) -> f64 {
    let h = (x.len() - 1) as f64 * p;
    let below = h.floor() as usize;
    let above = (below + 1).min(x.len() - 1);
    x[below] + (h - below as f64) * (x[above] - x[below])
}

/// The box of `values` (NaNs ignored); `None` when nothing is left.
///
/// ```
/// use reproml_report::box_stats;
/// let b = box_stats(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
/// assert_eq!((b.q1, b.median, b.q3), (2.0, 3.0, 4.0));
/// assert_eq!((b.whisker_low, b.whisker_high), (1.0, 4.0));
/// assert_eq!(b.outliers, [100.0]);
/// ```
pub fn box_stats(values: &[f64]) -> Option<BoxStats> {
    let mut x: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if x.is_empty() {
        return None;
    }
    x.sort_by(f64::total_cmp);
    let (q1, median, q3) = (quantile(&x, 0.25), quantile(&x, 0.5), quantile(&x, 0.75));
    let reach = 1.5 * (q3 - q1);
    let (low_fence, high_fence) = (q1 - reach, q3 + reach);
    let inside = x
        .iter()
        .copied()
        .filter(|v| (low_fence..=high_fence).contains(v));
    // With interpolated quartiles the box can reach past every observation
    // inside a fence (e.g. one run far above three close ones); the whisker
    // is then not drawn, i.e. it stays at the box (as matplotlib does).
    let whisker_low = inside.clone().fold(f64::INFINITY, f64::min).min(q1);
    let whisker_high = inside.fold(f64::NEG_INFINITY, f64::max).max(q3);
    let outliers = x
        .iter()
        .copied()
        .filter(|v| !(low_fence..=high_fence).contains(v))
        .collect();
    Some(BoxStats {
        q1,
        median,
        q3,
        whisker_low,
        whisker_high,
        outliers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn whiskers_stop_at_the_data_not_at_the_fences() {
        // Like the demo's case, where whiskers at the 1.5×IQR fences were
        // drawn at 0.275 and 0.665 although no run lay there.
        // Sorted: 0.326 0.40 0.45 0.47 0.50 0.52 0.55 0.627 (n = 8).
        // Type 7: q1 at h = 1.75 → 0.40 + 0.75·0.05 = 0.4375;
        // q3 at h = 5.25 → 0.52 + 0.25·0.03 = 0.5275; IQR 0.09;
        // fences 0.3025 and 0.6625, so every point is inside.
        let v = [0.45, 0.326, 0.50, 0.627, 0.40, 0.55, 0.47, 0.52];
        let b = box_stats(&v).unwrap();
        assert!((b.q1 - 0.4375).abs() < 1e-12, "{b:?}");
        assert!((b.q3 - 0.5275).abs() < 1e-12, "{b:?}");
        assert!((b.median - 0.485).abs() < 1e-12, "{b:?}");
        assert_eq!((b.whisker_low, b.whisker_high), (0.326, 0.627));
        assert!(b.outliers.is_empty());
    }

    #[test]
    fn points_beyond_the_fences_are_outliers_on_both_sides() {
        // 1..=9 and two far points, n = 11: q1 at h = 2.5 → 2.5, median 5,
        // q3 at h = 7.5 → 7.5; IQR 5, fences −5 and 15.
        let mut v: Vec<f64> = (1..=9).map(f64::from).collect();
        v.extend([-20.0, 40.0]);
        let b = box_stats(&v).unwrap();
        assert_eq!((b.q1, b.median, b.q3), (2.5, 5.0, 7.5));
        assert_eq!((b.whisker_low, b.whisker_high), (1.0, 9.0));
        assert_eq!(b.outliers, [-20.0, 40.0]);
    }

    #[test]
    fn a_whisker_never_reaches_into_the_box() {
        // −566.2 −408.9 −283.0 964.5: q3 = −283.0 + 0.25·1247.5 = 28.85
        // lies above every observation inside the upper fence.
        let b = box_stats(&[-408.9, -283.0, -566.2, 964.5]).unwrap();
        assert!((b.q3 - 28.875).abs() < 1e-9, "{b:?}");
        assert_eq!(b.whisker_high, b.q3);
        assert_eq!(b.outliers, [964.5]);
    }

    #[test]
    fn one_value_is_its_own_box() {
        let b = box_stats(&[0.9]).unwrap();
        assert_eq!(
            (b.q1, b.median, b.q3, b.whisker_low, b.whisker_high),
            (0.9, 0.9, 0.9, 0.9, 0.9)
        );
        assert!(box_stats(&[]).is_none() && box_stats(&[f64::NAN]).is_none());
    }

    proptest! {
        #[test]
        fn whiskers_are_observations_inside_the_box_s_reach(
            v in proptest::collection::vec(-1e3f64..1e3, 1..60)
        ) {
            let b = box_stats(&v).unwrap();
            prop_assert!(v.contains(&b.whisker_low) || b.whisker_low == b.q1);
            prop_assert!(v.contains(&b.whisker_high) || b.whisker_high == b.q3);
            prop_assert!(b.whisker_low <= b.q1 && b.q1 <= b.median);
            prop_assert!(b.median <= b.q3 && b.q3 <= b.whisker_high);
            let reach = 1.5 * (b.q3 - b.q1);
            for &x in &v {
                let inside = x >= b.q1 - reach && x <= b.q3 + reach;
                prop_assert_eq!(inside, !b.outliers.contains(&x));
                if inside {
                    prop_assert!(b.whisker_low <= x && x <= b.whisker_high);
                }
            }
        }
    }
}
