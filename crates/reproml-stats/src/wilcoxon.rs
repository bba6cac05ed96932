//! The Wilcoxon signed-rank test for paired samples, as
//! `scipy.stats.wilcoxon` (SciPy 1.17) computes it, including its exact
//! permutation path for small samples with ties or zeros.

use serde::{Deserialize, Serialize};

use crate::rank::{average_ranks, tie_term};
use crate::special::{ndtr, pairwise_sum};
use crate::{Alternative, Method, MethodUsed, StatsError, TestResult, check_sample};

/// What to do with pairs whose difference is zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZeroMethod {
    /// Drop them (Wilcoxon's original treatment; SciPy's default).
    #[default]
    Wilcox,
    /// Rank them, then drop them (Pratt 1959), adjusting the normal approximation.
    Pratt,
    /// Rank them and split their ranks between the positive and negative sums.
    Zsplit,
}

impl std::str::FromStr for ZeroMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "wilcox" => Ok(Self::Wilcox),
            "pratt" => Ok(Self::Pratt),
            "zsplit" => Ok(Self::Zsplit),
            _ => Err(format!(
                "unknown zero method {s:?}; use wilcox, pratt or zsplit"
            )),
        }
    }
}

/// Options of [`wilcoxon`]; the defaults are SciPy's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WilcoxonOptions {
    /// Treatment of zero differences (default `wilcox`).
    pub zero_method: ZeroMethod,
    /// Continuity correction of the normal approximation (default off).
    pub correction: bool,
    /// The alternative hypothesis (default two-sided).
    pub alternative: Alternative,
    /// `Auto` (default): above 50 pairs, asymptotic; otherwise exact when
    /// there are no ties and no zeros, an exact permutation test (all 2ⁿ sign
    /// patterns) when there are and n ≤ 13, asymptotic beyond.
    pub method: Method,
}

/// Largest number of pairs for the exact distribution: `O(n³)` work.
pub const MAX_EXACT_PAIRS: usize = 2_000;

/// Most pairs above which `Auto` never uses the exact distribution (SciPy's rule).
const AUTO_EXACT_PAIRS: usize = 50;

/// Most pairs for which `Auto` enumerates every sign pattern (SciPy: 2¹³
/// patterns fit its default 9,999 resamples, so the permutation test is exact).
const AUTO_PERMUTATION_PAIRS: usize = 13;

/// Tests whether the differences `x − y` are symmetric about zero.
///
/// The statistic is SciPy's: `min(R+, R−)` for a two-sided test, `R+`
/// (the rank sum of positive differences) otherwise.
pub fn wilcoxon(x: &[f64], y: &[f64], opts: &WilcoxonOptions) -> Result<TestResult, StatsError> {
    check_sample("x", x)?;
    check_sample("y", y)?;
    if x.len() != y.len() {
        return Err(StatsError::LengthMismatch {
            x: x.len(),
            y: y.len(),
        });
    }
    let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
    if let Some((index, &value)) = d.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(StatsError::NonFinite {
            sample: "x − y",
            index,
            value,
        });
    }
    let n = d.len();
    let ranked = SignedRanks::new(&d, opts.zero_method);
    let n_zero = d.iter().filter(|&&v| v == 0.0).count();
    let method = match opts.method {
        Method::Auto if n > AUTO_EXACT_PAIRS => MethodUsed::Asymptotic,
        Method::Auto if !ranked.has_ties && n_zero == 0 => MethodUsed::Exact,
        Method::Auto if n <= AUTO_PERMUTATION_PAIRS => MethodUsed::Permutation,
        Method::Auto | Method::Asymptotic => MethodUsed::Asymptotic,
        Method::Exact => MethodUsed::Exact,
    };
    let observed = ranked.r_plus(&d);
    let pvalue = match method {
        MethodUsed::Asymptotic => ranked.asymptotic_p(observed, opts)?,
        MethodUsed::Exact => {
            if ranked.count > MAX_EXACT_PAIRS {
                return Err(StatsError::TooLargeForExact {
                    n1: ranked.count,
                    n2: ranked.count,
                    limit: MAX_EXACT_PAIRS * MAX_EXACT_PAIRS,
                });
            }
            exact_p(ranked.count, observed, opts.alternative)
        }
        MethodUsed::Permutation => permutation_p(&ranked, &d, observed, opts.alternative),
    };
    let statistic = match opts.alternative {
        Alternative::TwoSided => observed.min(ranked.r_minus(&d)),
        _ => observed,
    };
    Ok(TestResult {
        statistic,
        pvalue,
        method,
    })
}

/// Ranks of `|d|` under a zero method, and what the tests need of them.
struct SignedRanks {
    zero_method: ZeroMethod,
    /// Rank of each `|d_i|`; unused (0) for dropped zeros.
    ranks: Vec<f64>,
    /// Number of differences the statistic counts.
    count: usize,
    /// Zeros that were ranked (pratt, zsplit).
    ranked_zeros: usize,
    /// Tie groups among the ranked values.
    ties: Vec<usize>,
    has_ties: bool,
}

impl SignedRanks {
    fn new(d: &[f64], zero_method: ZeroMethod) -> Self {
        let keep: Vec<usize> = (0..d.len())
            .filter(|&i| zero_method != ZeroMethod::Wilcox || d[i] != 0.0)
            .collect();
        let magnitudes: Vec<f64> = keep.iter().map(|&i| d[i].abs()).collect();
        let (kept_ranks, mut ties) = average_ranks(&magnitudes);
        let mut ranks = vec![0.0; d.len()];
        for (&i, &r) in keep.iter().zip(&kept_ranks) {
            ranks[i] = r;
        }
        let has_ties = ties.iter().any(|&t| t > 1);
        let ranked_zeros = keep.iter().filter(|&&i| d[i] == 0.0).count();
        if zero_method == ZeroMethod::Pratt && ranked_zeros > 0 {
            // Zeros have the smallest magnitude, so they are the first group;
            // Pratt leaves them out of the tie correction.
            ties[0] = 0;
        }
        Self {
            zero_method,
            ranks,
            count: keep.len(),
            ranked_zeros,
            ties,
            has_ties,
        }
    }

    /// `R+` of `d` (whose magnitudes must be those ranked), with zsplit's
    /// half of the zeros' ranks.
    fn r_plus(&self, d: &[f64]) -> f64 {
        self.signed_sum(d, |v| v > 0.0)
    }

    fn r_minus(&self, d: &[f64]) -> f64 {
        self.signed_sum(d, |v| v < 0.0)
    }

    fn signed_sum(&self, d: &[f64], side: impl Fn(f64) -> bool) -> f64 {
        let mut sum: f64 = d
            .iter()
            .zip(&self.ranks)
            .filter(|(v, _)| side(**v))
            .map(|(_, r)| r)
            .sum();
        if self.zero_method == ZeroMethod::Zsplit {
            let zeros: f64 = d
                .iter()
                .zip(&self.ranks)
                .filter(|(v, _)| **v == 0.0)
                .map(|(_, r)| r)
                .sum();
            sum += zeros / 2.0;
        }
        sum
    }

    /// Normal approximation with tie correction, Pratt's adjustment
    /// (Cureton 1967) and optional continuity correction.
    fn asymptotic_p(&self, r_plus: f64, opts: &WilcoxonOptions) -> Result<f64, StatsError> {
        let count = self.count as f64;
        let mut mn = count * (count + 1.0) * 0.25;
        let mut se = count * (count + 1.0) * (2.0 * count + 1.0);
        if self.zero_method == ZeroMethod::Pratt {
            let nz = self.ranked_zeros as f64;
            mn -= nz * (nz + 1.0) * 0.25;
            se -= nz * (nz + 1.0) * (2.0 * nz + 1.0);
        }
        let se = ((se - tie_term(&self.ties) / 2.0) / 24.0).sqrt();
        let mut z = (r_plus - mn) / se;
        if z.is_nan() {
            return Err(StatsError::Undefined {
                reason: "every difference is zero, so there is nothing to rank",
            });
        }
        if opts.correction {
            let sign = match opts.alternative {
                Alternative::Greater => 1.0,
                Alternative::Less => -1.0,
                Alternative::TwoSided if z > 0.0 => 1.0,
                Alternative::TwoSided if z < 0.0 => -1.0,
                Alternative::TwoSided => 0.0,
            };
            z -= sign * 0.5 / se;
        }
        Ok(match opts.alternative {
            Alternative::Less => ndtr(z),
            Alternative::Greater => ndtr(-z),
            Alternative::TwoSided => 2.0 * ndtr(-z.abs()),
        })
    }
}

/// Exact p-value from the null distribution of `R+` over `count` nonzero
/// differences; a fractional statistic (ties) is rounded conservatively:
/// up for the lower tail, down for the upper, as SciPy does.
fn exact_p(count: usize, r_plus: f64, alternative: Alternative) -> f64 {
    let dist = SignedRankNull::new(count);
    match alternative {
        Alternative::Less => dist.cdf(r_plus.ceil() as i64),
        Alternative::Greater => dist.sf(r_plus.floor() as i64),
        Alternative::TwoSided => (2.0
            * dist
                .sf(r_plus.floor() as i64)
                .min(dist.cdf(r_plus.ceil() as i64)))
        .clamp(0.0, 1.0),
    }
}

/// Null distribution of `R+` for `n` pairs, built by halving (each rank is
/// positive with probability ½) exactly as SciPy's `_get_wilcoxon_distr`.
struct SignedRankNull {
    pmf: Vec<f64>,
    mean: f64,
}

impl SignedRankNull {
    fn new(n: usize) -> Self {
        let mut c = vec![1.0];
        for k in 1..=n {
            let mut next = vec![0.0; k * (k + 1) / 2 + 1];
            let m = c.len();
            let len = next.len();
            for i in 0..m {
                next[i] = c[i] * 0.5;
            }
            for i in 0..m {
                next[len - m + i] += c[i] * 0.5;
            }
            c = next;
        }
        Self {
            pmf: c,
            mean: (n * (n + 1)) as f64 / 4.0,
        }
    }

    fn lower_sum(&self, k: i64) -> f64 {
        let end = usize::try_from(k + 1).unwrap_or(0).min(self.pmf.len());
        pairwise_sum(&self.pmf[..end])
    }

    fn upper_sum(&self, k: i64) -> f64 {
        let start = usize::try_from(k.max(0)).unwrap_or(0).min(self.pmf.len());
        pairwise_sum(&self.pmf[start..])
    }

    /// `P(R+ ≤ k)`, from the lower tail below the mean and as `1 − P(R+ ≥ k+1)` above.
    fn cdf(&self, k: i64) -> f64 {
        if k as f64 <= self.mean {
            self.lower_sum(k)
        } else {
            1.0 - self.upper_sum(k + 1)
        }
    }

    /// `P(R+ ≥ k)`, from the upper tail up to the mean and as `1 − P(R+ ≤ k−1)` above.
    fn sf(&self, k: i64) -> f64 {
        if k as f64 <= self.mean {
            self.upper_sum(k)
        } else {
            1.0 - self.lower_sum(k - 1)
        }
    }
}

/// Exact permutation p-value: `R+` under all 2ⁿ sign patterns of `d`
/// (zeros included, as SciPy flips them too), compared with a relative
/// tolerance of 100 ε as `scipy.stats.permutation_test` does.
fn permutation_p(ranked: &SignedRanks, d: &[f64], observed: f64, alternative: Alternative) -> f64 {
    let n = d.len();
    let patterns = 1usize << n;
    let gamma = (100.0 * f64::EPSILON * observed).abs();
    let (mut at_most, mut at_least) = (0usize, 0usize);
    let mut flipped = d.to_vec();
    for pattern in 0..patterns {
        for (i, value) in flipped.iter_mut().enumerate() {
            *value = if pattern >> i & 1 == 1 { -d[i] } else { d[i] };
        }
        let r = ranked.r_plus(&flipped);
        at_most += usize::from(r <= observed + gamma);
        at_least += usize::from(r >= observed - gamma);
    }
    let less = at_most as f64 / patterns as f64;
    let greater = at_least as f64 / patterns as f64;
    let p = match alternative {
        Alternative::Less => less,
        Alternative::Greater => greater,
        Alternative::TwoSided => less.min(greater) * 2.0,
    };
    p.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_distribution_of_three_pairs() {
        // R+ ∈ 0..=6 over 8 sign patterns: counts 1 1 1 2 1 1 1.
        let d = SignedRankNull::new(3);
        let expected = [1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0].map(|c| c / 8.0);
        assert_eq!(d.pmf, expected);
        assert_eq!(d.cdf(2), 3.0 / 8.0);
        assert_eq!(d.sf(5), 2.0 / 8.0);
    }

    #[test]
    fn all_zero_differences_are_undefined_asymptotically() {
        let o = WilcoxonOptions {
            method: Method::Asymptotic,
            ..WilcoxonOptions::default()
        };
        assert!(matches!(
            wilcoxon(&[1.0; 60], &[1.0; 60], &o),
            Err(StatsError::Undefined { .. })
        ));
    }

    #[test]
    fn lengths_must_match() {
        assert_eq!(
            wilcoxon(&[1.0, 2.0], &[1.0], &WilcoxonOptions::default()),
            Err(StatsError::LengthMismatch { x: 2, y: 1 })
        );
    }

    #[test]
    fn overflowing_difference_is_refused() {
        assert!(matches!(
            wilcoxon(&[f64::MAX], &[-f64::MAX], &WilcoxonOptions::default()),
            Err(StatsError::NonFinite { .. })
        ));
    }
}
