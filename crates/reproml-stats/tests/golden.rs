//! Every reference result computed with SciPy 1.17, reproduced to 1e-12.
#![allow(clippy::unwrap_used)] // fixture access: a malformed fixture should panic loudly

use reproml_stats::{
    Alternative, MannWhitneyOptions, Method, WilcoxonOptions, ZeroMethod, mann_whitney_u, wilcoxon,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    test: String,
    x: Vec<f64>,
    y: Vec<f64>,
    alternative: String,
    method: String,
    use_continuity: Option<bool>,
    zero_method: Option<String>,
    correction: Option<bool>,
    statistic: f64,
    pvalue: f64,
}

fn close(ours: f64, scipy: f64) -> bool {
    if scipy.abs() < 1e-300 {
        (ours - scipy).abs() < 1e-300
    } else {
        ((ours - scipy) / scipy).abs() <= 1e-12
    }
}

#[test]
fn every_shared_scipy_case_agrees() {
    check_all(include_str!("data/scipy-golden.jsonl"), 69);
}

/// More SciPy results aimed at the rarer paths (`data/make_extra_golden.py`).
#[test]
fn every_extra_scipy_case_agrees() {
    check_all(include_str!("data/scipy-extra.jsonl"), 280);
}

fn check_all(jsonl: &str, expected_cases: usize) {
    let cases: Vec<Case> = jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cases.len(), expected_cases);
    let mut failures = Vec::new();
    for (line, c) in cases.iter().enumerate() {
        let alternative: Alternative = c.alternative.parse().unwrap();
        let method: Method = c.method.parse().unwrap();
        let result = match c.test.as_str() {
            "mannwhitneyu" => mann_whitney_u(
                &c.x,
                &c.y,
                &MannWhitneyOptions {
                    alternative,
                    method,
                    continuity: c.use_continuity.unwrap(),
                },
            ),
            "wilcoxon" => wilcoxon(
                &c.x,
                &c.y,
                &WilcoxonOptions {
                    zero_method: c
                        .zero_method
                        .as_deref()
                        .unwrap()
                        .parse::<ZeroMethod>()
                        .unwrap(),
                    correction: c.correction.unwrap(),
                    alternative,
                    method,
                },
            ),
            other => panic!("unknown test {other}"),
        }
        .unwrap();
        if !close(result.statistic, c.statistic) || !close(result.pvalue, c.pvalue) {
            failures.push(format!(
                "line {}: {} {} {} ({:?}): statistic {} vs {}, p {:e} vs {:e}",
                line + 1,
                c.test,
                c.alternative,
                c.method,
                result.method,
                result.statistic,
                c.statistic,
                result.pvalue,
                c.pvalue
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
