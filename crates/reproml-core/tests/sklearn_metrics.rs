//! Metrics checked against scikit-learn's values
//! (`fixtures/make_sklearn_metrics.py` says how they were made).
#![allow(clippy::unwrap_used)] // fixture access: a malformed fixture should panic loudly

use reproml_core::metrics::ConfusionMatrix;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    classes: usize,
    y_true: Vec<usize>,
    y_pred: Vec<usize>,
    accuracy: f64,
    precision: f64,
    recall: f64,
    f1: f64,
    per_class: Vec<PerClass>,
}

#[derive(Deserialize)]
struct PerClass {
    precision: f64,
    recall: f64,
    f1: f64,
    support: u64,
}

/// NumPy sums pairwise and we sum left to right: allow a few ulps.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12
}

#[test]
fn metrics_agree_with_scikit_learn() {
    let fixture: Fixture =
        serde_json::from_str(include_str!("fixtures/sklearn-metrics.json")).unwrap();
    assert!(fixture.cases.len() >= 30);
    for c in fixture.cases {
        let m = ConfusionMatrix::from_labels(c.classes, &c.y_true, &c.y_pred).unwrap();
        let r = m.metrics().unwrap();
        let name = &c.name;
        assert!(
            close(r.accuracy, c.accuracy),
            "{name}: accuracy {} vs {}",
            r.accuracy,
            c.accuracy
        );
        assert!(
            close(r.precision, c.precision),
            "{name}: precision {} vs {}",
            r.precision,
            c.precision
        );
        assert!(
            close(r.recall, c.recall),
            "{name}: recall {} vs {}",
            r.recall,
            c.recall
        );
        assert!(close(r.f1, c.f1), "{name}: f1 {} vs {}", r.f1, c.f1);
        assert_eq!(r.per_class.len(), c.per_class.len());
        for (k, (ours, theirs)) in r.per_class.iter().zip(&c.per_class).enumerate() {
            assert!(
                close(ours.precision, theirs.precision),
                "{name}: class {k} precision"
            );
            assert!(
                close(ours.recall, theirs.recall),
                "{name}: class {k} recall"
            );
            assert!(close(ours.f1, theirs.f1), "{name}: class {k} f1");
            assert_eq!(ours.support, theirs.support, "{name}: class {k} support");
        }
    }
}
