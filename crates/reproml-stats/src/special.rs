//! Numerical building blocks shared by the tests, chosen to reproduce
//! SciPy's and NumPy's floating-point results.

/// Standard normal CDF, computed as SciPy's `special.ndtr` (Cephes/xsf):
/// `x = a/√2`; for `|x| < 1`, `0.5 + 0.5·erf(x)`; otherwise `0.5·erfc(|x|)`,
/// reflected for positive `x`. The branch structure is SciPy's so that the
/// rounding matches; `erf`/`erfc` are `libm`'s (accurate to about 1 ulp).
pub fn ndtr(a: f64) -> f64 {
    let x = a * std::f64::consts::FRAC_1_SQRT_2;
    let z = x.abs();
    if z < 1.0 {
        0.5 + 0.5 * libm::erf(x)
    } else {
        let y = 0.5 * libm::erfc(z);
        if x > 0.0 { 1.0 - y } else { y }
    }
}

/// Standard normal survival function `1 − Φ(z)`, as SciPy: `ndtr(−z)`.
pub fn normal_sf(z: f64) -> f64 {
    ndtr(-z)
}

/// Standard normal quantile by bisection on [`ndtr`] (used only for
/// confidence intervals, where 1e-12 on the quantile is ample).
pub fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0_f64, 40.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if ndtr(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Sum in NumPy's order (`np.sum` on a contiguous float64 array): plain
/// below 8 items, eight interleaved accumulators up to 128, halves (cut at
/// a multiple of 8) above. Matching the order matters where SciPy subtracts
/// such a sum from 1.
pub fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |acc, &x| acc + x)
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (acc, &x) in r.iter_mut().zip(chunk) {
                *acc += x;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[whole..] {
            res += x;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

/// `C(n, k)` as a double: exact while it fits 128 bits, which covers every
/// case where SciPy's own `special.binom` is exact.
pub fn binomial(n: u64, k: u64) -> f64 {
    let k = k.min(n - k.min(n));
    let mut exact: Option<u128> = Some(1);
    let mut approx = 1.0_f64;
    for i in 1..=k {
        let factor = n - k + i;
        exact = exact
            .and_then(|e| e.checked_mul(u128::from(factor)))
            .map(|e| e / u128::from(i));
        approx = approx * factor as f64 / i as f64;
    }
    exact.map_or(approx, |e| e as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndtr_matches_known_values() {
        // Φ(0) = 0.5; Φ(1.959963984540054) = 0.975; scipy.special.ndtr(-8) = 6.22096057427174e-16.
        assert_eq!(ndtr(0.0), 0.5);
        assert!((ndtr(1.959963984540054) - 0.975).abs() < 1e-15);
        assert!((ndtr(-8.0) / 6.22096057427174e-16 - 1.0).abs() < 1e-13);
        assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-12);
    }

    #[test]
    fn pairwise_sum_is_exact_on_integers_and_orders_like_numpy() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(pairwise_sum(&v), 500_500.0);
        assert_eq!(pairwise_sum(&[]), 0.0);
        // np.sum([1e16] + [1.0] * 15) - 1e16 == 14.0: the accumulator that
        // holds 1e16 loses its ones, the other seven keep theirs.
        let mut a = vec![1e16];
        a.extend(std::iter::repeat_n(1.0, 15));
        assert_eq!(pairwise_sum(&a) - 1e16, 14.0);
    }

    #[test]
    fn binomial_is_exact() {
        assert_eq!(binomial(16, 8), 12870.0);
        assert_eq!(binomial(58, 8), 1_916_797_311.0);
        assert_eq!(binomial(5, 0), 1.0);
        // math.comb(100, 50) rounded to a double.
        assert_eq!(binomial(100, 50), 1.008913445455642e29);
    }
}
