//! Properties every correct implementation has, on random data.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use reproml_stats::{
    Alternative, MannWhitneyOptions, Method, WilcoxonOptions, ZeroMethod, mann_whitney_u, wilcoxon,
};

fn sample(max: usize) -> impl Strategy<Value = Vec<f64>> {
    // A coarse grid makes ties common, as with accuracies on a test set.
    proptest::collection::vec((-20i32..20).prop_map(|v| f64::from(v) / 4.0), 1..max)
}

fn alternative() -> impl Strategy<Value = Alternative> {
    prop_oneof![
        Just(Alternative::TwoSided),
        Just(Alternative::Less),
        Just(Alternative::Greater)
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Auto),
        Just(Method::Exact),
        Just(Method::Asymptotic)
    ]
}

fn zero_method() -> impl Strategy<Value = ZeroMethod> {
    prop_oneof![
        Just(ZeroMethod::Wilcox),
        Just(ZeroMethod::Pratt),
        Just(ZeroMethod::Zsplit)
    ]
}

fn mwu(alternative: Alternative, method: Method, continuity: bool) -> MannWhitneyOptions {
    MannWhitneyOptions {
        alternative,
        method,
        continuity,
    }
}

proptest! {
    #[test]
    fn mann_whitney_p_is_a_probability(x in sample(30), y in sample(30), a in alternative(), m in method(), c in any::<bool>()) {
        if let Ok(r) = mann_whitney_u(&x, &y, &mwu(a, m, c)) {
            prop_assert!((0.0..=1.0).contains(&r.pvalue), "{}", r.pvalue);
            prop_assert!(r.statistic >= 0.0 && r.statistic <= (x.len() * y.len()) as f64);
        }
    }

    #[test]
    fn swapping_samples_swaps_less_and_greater(x in sample(25), y in sample(25), m in method(), c in any::<bool>()) {
        let less = mann_whitney_u(&x, &y, &mwu(Alternative::Less, m, c));
        let greater = mann_whitney_u(&y, &x, &mwu(Alternative::Greater, m, c));
        if let (Ok(l), Ok(g)) = (less, greater) {
            prop_assert!((l.pvalue - g.pvalue).abs() < 1e-12, "{} vs {}", l.pvalue, g.pvalue);
            prop_assert_eq!(l.statistic, (x.len() * y.len()) as f64 - g.statistic);
        }
        let a = mann_whitney_u(&x, &y, &mwu(Alternative::TwoSided, m, c));
        let b = mann_whitney_u(&y, &x, &mwu(Alternative::TwoSided, m, c));
        if let (Ok(a), Ok(b)) = (a, b) {
            prop_assert!((a.pvalue - b.pvalue).abs() < 1e-12);
        }
    }

    #[test]
    fn exact_and_asymptotic_agree_for_moderate_samples(
        x in proptest::collection::vec(-1000.0..1000.0f64, 15..25),
        y in proptest::collection::vec(-1000.0..1000.0f64, 15..25),
    ) {
        let exact = mann_whitney_u(&x, &y, &mwu(Alternative::TwoSided, Method::Exact, true)).unwrap();
        let approx = mann_whitney_u(&x, &y, &mwu(Alternative::TwoSided, Method::Asymptotic, true)).unwrap();
        prop_assert!((exact.pvalue - approx.pvalue).abs() < 0.01, "{} vs {}", exact.pvalue, approx.pvalue);
    }

    #[test]
    fn wilcoxon_p_is_a_probability(
        pairs in proptest::collection::vec(((-8i32..8), (-8i32..8)), 1..40),
        a in alternative(), m in method(), z in zero_method(), c in any::<bool>(),
    ) {
        let x: Vec<f64> = pairs.iter().map(|p| f64::from(p.0)).collect();
        let y: Vec<f64> = pairs.iter().map(|p| f64::from(p.1)).collect();
        let opts = WilcoxonOptions { zero_method: z, correction: c, alternative: a, method: m };
        if let Ok(r) = wilcoxon(&x, &y, &opts) {
            prop_assert!((0.0..=1.0).contains(&r.pvalue), "{}", r.pvalue);
        }
    }

    /// Without zero differences. (With them SciPy is not antisymmetric
    /// either: Pratt's exact p-value counts zeros in the distribution but
    /// not in R+; `wilcoxon([0], [0], zero_method="pratt", method="exact")`
    /// is 0.5 for `less` and 1.0 for `greater`, and so is ours.)
    #[test]
    fn wilcoxon_is_antisymmetric_in_its_samples(
        pairs in proptest::collection::vec(((-8i32..8), (-8i32..8)).prop_filter("no zero difference", |p| p.0 != p.1), 1..30),
        m in method(), z in zero_method(),
    ) {
        let x: Vec<f64> = pairs.iter().map(|p| f64::from(p.0)).collect();
        let y: Vec<f64> = pairs.iter().map(|p| f64::from(p.1)).collect();
        let opts = |alternative| WilcoxonOptions { zero_method: z, correction: false, alternative, method: m };
        if let (Ok(l), Ok(g)) = (wilcoxon(&x, &y, &opts(Alternative::Less)), wilcoxon(&y, &x, &opts(Alternative::Greater))) {
            prop_assert!((l.pvalue - g.pvalue).abs() < 1e-12, "{} vs {}", l.pvalue, g.pvalue);
        }
    }
}
