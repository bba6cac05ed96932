//! The Mann-Whitney U test (Wilcoxon rank-sum) for two independent samples,
//! as `scipy.stats.mannwhitneyu` (SciPy 1.17) computes it.

use serde::{Deserialize, Serialize};

use crate::rank::{average_ranks, tie_term};
use crate::special::{binomial, normal_sf};
use crate::{Alternative, Method, MethodUsed, StatsError, TestResult, check_sample};

/// Options of [`mann_whitney_u`]; the defaults are SciPy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MannWhitneyOptions {
    /// The alternative hypothesis (default two-sided).
    pub alternative: Alternative,
    /// `Auto` (default) is exact when either sample has at most 8 values
    /// and there are no ties, asymptotic otherwise.
    pub method: Method,
    /// Continuity correction of the asymptotic method (default on).
    pub continuity: bool,
}

impl Default for MannWhitneyOptions {
    fn default() -> Self {
        Self {
            alternative: Alternative::TwoSided,
            method: Method::Auto,
            continuity: true,
        }
    }
}

/// Largest `n1·n2` for which the exact distribution is computed: its cost
/// grows as `(n1·n2)²`, and beyond this the normal approximation is
/// excellent anyway.
pub const MAX_EXACT_CELLS: usize = 40_000;

/// Tests whether `x` and `y` come from the same distribution. The statistic
/// is `U` of the first sample, `U1 = R1 − n1(n1+1)/2`.
///
/// Exact p-values use the null distribution of `U` built by Löffler's
/// recurrence (A. Löffler, Wiss. Z. Univ. Halle XXXII'83, pp. 87–89), not
/// by enumerating subsets. Asymptotic ones use the normal approximation
/// with tie correction and, optionally, continuity correction.
pub fn mann_whitney_u(
    x: &[f64],
    y: &[f64],
    opts: &MannWhitneyOptions,
) -> Result<TestResult, StatsError> {
    check_sample("x", x)?;
    check_sample("y", y)?;
    let (n1, n2) = (x.len(), y.len());
    let pooled: Vec<f64> = x.iter().chain(y).copied().collect();
    let (ranks, ties) = average_ranks(&pooled);
    let r1: f64 = ranks[..n1].iter().sum();
    let u1 = r1 - (n1 * (n1 + 1)) as f64 / 2.0;
    let u2 = (n1 * n2) as f64 - u1;
    let (u, factor) = match opts.alternative {
        Alternative::Greater => (u1, 1.0),
        // By symmetry, the survival function of U2 rather than the CDF of U1.
        Alternative::Less => (u2, 1.0),
        Alternative::TwoSided => (u1.max(u2), 2.0),
    };
    let has_ties = ties.iter().any(|&t| t > 1);
    let method = match opts.method {
        Method::Auto if (n1 > 8 && n2 > 8) || has_ties => MethodUsed::Asymptotic,
        Method::Auto | Method::Exact => MethodUsed::Exact,
        Method::Asymptotic => MethodUsed::Asymptotic,
    };
    let p = match method {
        MethodUsed::Exact => {
            if n1 * n2 > MAX_EXACT_CELLS {
                return Err(StatsError::TooLargeForExact {
                    n1,
                    n2,
                    limit: MAX_EXACT_CELLS,
                });
            }
            // SciPy truncates a fractional U (possible only with ties).
            UNull::new(n1, n2).sf(u as usize)
        }
        _ => {
            let z = standardised_u(u, n1, n2, tie_term(&ties), opts.continuity);
            if z.is_nan() {
                return Err(StatsError::Undefined {
                    reason: "every value is the same, so U has no variance (with continuity correction the p-value is 1)",
                });
            }
            normal_sf(z)
        }
    };
    Ok(TestResult {
        statistic: u1,
        pvalue: (p * factor).clamp(0.0, 1.0),
        method,
    })
}

/// `(U − n1·n2/2 − ½) / σ` with the tie-corrected σ, in SciPy's order of
/// operations.
fn standardised_u(u: f64, n1: usize, n2: usize, tie_term: f64, continuity: bool) -> f64 {
    let mu = (n1 * n2) as f64 / 2.0;
    let n = n1 + n2;
    let s = ((n1 * n2) as f64 / 12.0 * ((n + 1) as f64 - tie_term / (n * (n - 1)) as f64)).sqrt();
    let mut numerator = u - mu;
    // The survival function is always used, so the correction always subtracts.
    if continuity {
        numerator -= 0.5;
    }
    numerator / s
}

/// The null distribution of U for sample sizes `n1 ≤ n2`.
pub(crate) struct UNull {
    n1: usize,
    n2: usize,
    total: f64,
}

impl UNull {
    pub(crate) fn new(a: usize, b: usize) -> Self {
        let (n1, n2) = (a.min(b), a.max(b));
        Self {
            n1,
            n2,
            total: binomial((n1 + n2) as u64, n1 as u64),
        }
    }

    /// Number of arrangements giving `U = u` for `u` in `0..=max_u`, by
    /// Löffler's recurrence `f(u) = (1/u) Σ_{i<u} f(i) σ(u − i)` with
    /// `σ(a) = Σ_{d|a, d≤n1} d − Σ_{d|a, n2<d≤n1+n2} d`. Exact integers while
    /// they fit, doubles beyond (as SciPy).
    fn frequencies(&self, max_u: usize) -> Vec<f64> {
        let mut sigma = vec![0i64; max_u + 1];
        let divisors = (1..=self.n1)
            .map(|d| (d, 1i64))
            .chain((self.n2 + 1..=self.n1 + self.n2).map(|d| (d, -1)));
        for (d, sign) in divisors {
            for multiple in (d..=max_u).step_by(d) {
                sigma[multiple] += sign * d as i64;
            }
        }
        let mut exact: Vec<i128> = vec![1];
        let mut approx: Vec<f64> = Vec::new();
        for u in 1..=max_u {
            if approx.is_empty() {
                let dot = exact.iter().enumerate().try_fold(0i128, |acc, (i, &f)| {
                    acc.checked_add(f.checked_mul(i128::from(sigma[u - i]))?)
                });
                match dot {
                    Some(dot) if dot / (u as i128) <= i128::from(u64::MAX) => {
                        exact.push(dot / u as i128);
                        continue;
                    }
                    _ => approx = exact.iter().map(|&f| f as f64).collect(),
                }
            }
            let dot: f64 = approx
                .iter()
                .enumerate()
                .map(|(i, &f)| f * sigma[u - i] as f64)
                .sum();
            approx.push(dot / u as f64);
        }
        if approx.is_empty() {
            exact.into_iter().map(|f| f as f64).collect()
        } else {
            approx
        }
    }

    /// `P(U ≤ k)` for every `k` in `0..=max_k`, summed left to right as
    /// `np.cumsum` does: one pass where a loop over [`UNull::cdf`] would
    /// rebuild the distribution for every `k`.
    pub(crate) fn lower_cdfs(&self, max_k: usize) -> Vec<f64> {
        let mut acc = 0.0;
        self.frequencies(max_k)
            .into_iter()
            .map(|f| {
                acc += f / self.total;
                acc
            })
            .collect()
    }

    fn pmf_and_cdf(&self, k: usize) -> (f64, f64) {
        let pmfs: Vec<f64> = self
            .frequencies(k)
            .into_iter()
            .map(|f| f / self.total)
            .collect();
        // np.cumsum: sequential.
        let cdf = pmfs.iter().fold(0.0, |acc, &p| acc + p);
        (pmfs[k], cdf)
    }

    /// `P(U ≥ k)`, summing from the nearer tail as SciPy does.
    pub(crate) fn sf(&self, k: usize) -> f64 {
        let cells = self.n1 * self.n2;
        let k = k.min(cells);
        let kc = cells - k;
        if k < kc {
            let (pmf, cdf) = self.pmf_and_cdf(k);
            1.0 - cdf + pmf
        } else {
            self.pmf_and_cdf(kc).1
        }
    }

    /// `P(U ≤ k)` (the reference [`UNull::lower_cdfs`] is tested against).
    #[cfg(test)]
    fn cdf(&self, k: usize) -> f64 {
        let cells = self.n1 * self.n2;
        if k >= cells {
            return 1.0;
        }
        // P(U ≤ k) = P(U ≥ cells − k) by symmetry.
        self.sf(cells - k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(alternative: Alternative, method: Method) -> MannWhitneyOptions {
        MannWhitneyOptions {
            alternative,
            method,
            continuity: true,
        }
    }

    #[test]
    fn scipy_documentation_example() {
        // scipy.stats.mannwhitneyu docs: males vs females.
        let males = [19.0, 22.0, 16.0, 29.0, 24.0];
        let females = [20.0, 11.0, 17.0, 12.0];
        let r = mann_whitney_u(
            &males,
            &females,
            &opts(Alternative::TwoSided, Method::Exact),
        )
        .unwrap();
        assert_eq!((r.statistic, r.method), (17.0, MethodUsed::Exact));
        assert!((r.pvalue - 0.1111111111111111).abs() < 1e-16);
        let r = mann_whitney_u(
            &males,
            &females,
            &opts(Alternative::TwoSided, Method::Asymptotic),
        )
        .unwrap();
        assert!((r.pvalue - 0.11134688653314041).abs() < 1e-15);
        let r = mann_whitney_u(&females, &males, &opts(Alternative::Less, Method::Exact)).unwrap();
        assert_eq!(r.statistic, 3.0);
        assert!((r.pvalue - 0.05555555555555555).abs() < 1e-16);
    }

    #[test]
    fn exact_distribution_sums_to_one_and_is_symmetric() {
        let null = UNull::new(5, 7);
        let f = null.frequencies(35);
        assert_eq!(f.iter().sum::<f64>(), 792.0); // C(12, 5)
        for u in 0..=35 {
            assert_eq!(f[u], f[35 - u]);
        }
    }

    #[test]
    fn the_cumulative_table_equals_cdf_on_the_lower_half() {
        let null = UNull::new(6, 9);
        let table = null.lower_cdfs(27);
        for (k, &p) in table.iter().enumerate() {
            assert_eq!(p.to_bits(), null.cdf(k).to_bits(), "k = {k}");
        }
    }

    #[test]
    fn constant_data_is_undefined_without_continuity() {
        let o = MannWhitneyOptions {
            continuity: false,
            ..MannWhitneyOptions::default()
        };
        assert!(matches!(
            mann_whitney_u(&[1.0; 10], &[1.0; 10], &o),
            Err(StatsError::Undefined { .. })
        ));
        // With it, SciPy answers 1 and so do we.
        let r = mann_whitney_u(&[1.0; 10], &[1.0; 10], &MannWhitneyOptions::default()).unwrap();
        assert_eq!(r.pvalue, 1.0);
    }

    #[test]
    fn bad_input_is_refused() {
        let o = MannWhitneyOptions::default();
        assert_eq!(
            mann_whitney_u(&[], &[1.0], &o),
            Err(StatsError::EmptySample { sample: "x" })
        );
        assert!(matches!(
            mann_whitney_u(&[1.0], &[f64::NAN], &o),
            Err(StatsError::NonFinite {
                sample: "y",
                index: 0,
                ..
            })
        ));
        assert!(matches!(
            mann_whitney_u(
                &[1.0; 300],
                &[2.0; 300],
                &opts(Alternative::TwoSided, Method::Exact)
            ),
            Err(StatsError::TooLargeForExact { .. })
        ));
    }
}
