//! Adjusted p-values for many tests at once (the paper tested 18 bugs ×
//! 4 metrics at α = 0.05 without correction).

/// Holm's step-down adjusted p-values (S. Holm, Scand. J. Stat. 6, 1979),
/// in the order of `pvalues`: `min(1, max_{j ≤ i} (m − j + 1) p_(j))`.
/// Controls the family-wise error rate. Same as statsmodels' `multipletests(method="holm")`.
///
/// ```
/// let adj = reproml_stats::holm(&[0.01, 0.04, 0.03]);
/// assert_eq!(adj, [0.03, 0.06, 0.06]);
/// ```
pub fn holm(pvalues: &[f64]) -> Vec<f64> {
    let m = pvalues.len();
    let order = ascending(pvalues);
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0_f64;
    for (j, &i) in order.iter().enumerate() {
        running = running.max(((m - j) as f64 * pvalues[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Benjamini and Hochberg's step-up adjusted p-values (J. R. Stat. Soc. B
/// 57, 1995), in the order of `pvalues`: `min(1, min_{j ≥ i} m p_(j) / j)`.
/// Controls the false discovery rate. Same as statsmodels' `fdr_bh`.
///
/// ```
/// let adj = reproml_stats::benjamini_hochberg(&[0.01, 0.04, 0.03]);
/// assert_eq!(adj, [0.03, 0.04, 0.04]);
/// ```
pub fn benjamini_hochberg(pvalues: &[f64]) -> Vec<f64> {
    let m = pvalues.len();
    let order = ascending(pvalues);
    let mut adjusted = vec![0.0; m];
    let mut running = 1.0_f64;
    for (j, &i) in order.iter().enumerate().rev() {
        running = running.min(m as f64 * pvalues[i] / (j + 1) as f64);
        adjusted[i] = running;
    }
    adjusted
}

fn ascending(pvalues: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pvalues.len()).collect();
    order.sort_by(|&a, &b| pvalues[a].total_cmp(&pvalues[b]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn holm_dominates_bh_which_dominates_raw(p in proptest::collection::vec(0.0..=1.0f64, 1..40)) {
            let h = holm(&p);
            let b = benjamini_hochberg(&p);
            for i in 0..p.len() {
                prop_assert!(h[i] >= b[i] - 1e-15, "holm {} < bh {}", h[i], b[i]);
                prop_assert!(b[i] >= p[i] - 1e-15);
                prop_assert!(h[i] <= 1.0 && b[i] <= 1.0);
            }
        }

        #[test]
        fn adjustment_preserves_the_order_of_p_values(p in proptest::collection::vec(0.0..=1.0f64, 1..40)) {
            let h = holm(&p);
            let b = benjamini_hochberg(&p);
            for i in 0..p.len() {
                for j in 0..p.len() {
                    if p[i] < p[j] {
                        prop_assert!(h[i] <= h[j] && b[i] <= b[j]);
                    }
                }
            }
        }
    }

    #[test]
    fn one_test_is_not_adjusted() {
        assert_eq!(holm(&[0.2]), [0.2]);
        assert_eq!(benjamini_hochberg(&[0.2]), [0.2]);
        assert!(holm(&[]).is_empty());
    }
}
