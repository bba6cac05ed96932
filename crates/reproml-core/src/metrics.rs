//! Classification metrics from a confusion matrix, with scikit-learn's
//! definitions (`sklearn.metrics.precision_recall_fscore_support`,
//! `average="macro"`, `zero_division=0`):
//!
//! - precision of class k = TP / (TP + FP), 0 when the class was never predicted;
//! - recall of class k = TP / (TP + FN), 0 when the class never occurs;
//! - F1 of class k = 2·P·R / (P + R), 0 when P + R = 0;
//! - macro = unweighted mean over the classes that occur in the true *or*
//!   the predicted labels (scikit-learn's default `labels`): a class absent
//!   from both does not dilute the mean;
//! - accuracy = trace / total.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the metrics every run reports on its test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Share of examples predicted correctly.
    Accuracy,
    /// Macro-averaged precision.
    Precision,
    /// Macro-averaged recall.
    Recall,
    /// Macro-averaged F1.
    F1,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 4] = [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::F1,
    ];

    /// The metric's name in results, reports and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A metric name that is not one of [`Metric::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {0:?}; use accuracy, precision, recall or f1")]
pub struct UnknownMetric(String);

impl FromStr for Metric {
    type Err = UnknownMetric;

    /// ```
    /// use reproml_core::metrics::Metric;
    /// assert_eq!("f1".parse::<Metric>(), Ok(Metric::F1));
    /// assert!("auc".parse::<Metric>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMetric(s.to_owned()))
    }
}

/// Why metrics cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// A label is not below the class count.
    #[error("label {label} is out of range for {classes} classes (labels are 0..{classes})")]
    LabelOutOfRange {
        /// The offending label.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
    /// True and predicted labels differ in number.
    #[error("{truths} true labels but {predictions} predictions; they must pair up one to one")]
    LengthMismatch {
        /// Number of true labels.
        truths: usize,
        /// Number of predictions.
        predictions: usize,
    },
    /// There is nothing to measure.
    #[error("the confusion matrix is empty: metrics need at least one example")]
    Empty,
    /// Rows that do not make a square matrix of 1 to 256 classes.
    #[error("a confusion matrix must be square with 1 to {MAX_CLASSES} rows: {0}")]
    NotSquare(String),
    /// The counts add up to more than [`MAX_TOTAL`].
    #[error(
        "a confusion matrix may count at most 2^53 examples, so that every count is an exact double"
    )]
    TooManyExamples,
    /// Matrices of different shapes cannot be added.
    #[error("cannot add a {right}-class confusion matrix to a {left}-class one")]
    ShapeMismatch {
        /// Classes of the receiving matrix.
        left: usize,
        /// Classes of the added matrix.
        right: usize,
    },
}

/// Counts of (true class, predicted class) pairs. On the wire, a list of
/// rows, one per true class: `[[5, 1], [0, 4]]`.
///
/// ```
/// use reproml_core::metrics::ConfusionMatrix;
/// let m = ConfusionMatrix::from_labels(3, &[0, 1, 2, 2], &[0, 2, 2, 2]).unwrap();
/// let r = m.metrics().unwrap();
/// assert_eq!(r.accuracy, 0.75);
/// let rows: Vec<Vec<u64>> = m.clone().into();
/// assert_eq!(rows, [[1, 0, 0], [0, 0, 1], [0, 0, 2]]);
/// assert_eq!(ConfusionMatrix::try_from(rows), Ok(m));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Vec<u64>>", into = "Vec<Vec<u64>>")]
pub struct ConfusionMatrix {
    classes: usize,
    /// Row-major: `counts[truth * classes + prediction]`.
    counts: Vec<u64>,
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// TP / (TP + FP), or 0.
    pub precision: f64,
    /// TP / (TP + FN), or 0.
    pub recall: f64,
    /// Harmonic mean of precision and recall, or 0.
    pub f1: f64,
    /// Number of true examples of the class.
    pub support: u64,
}

/// The metrics a run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    /// Share of examples predicted correctly.
    pub accuracy: f64,
    /// Macro-averaged precision.
    pub precision: f64,
    /// Macro-averaged recall.
    pub recall: f64,
    /// Macro-averaged F1.
    pub f1: f64,
    /// Scores of every class `0..classes`, including absent ones (all 0).
    pub per_class: Vec<ClassScores>,
}

/// Most classes a matrix may have: labels are bytes on the wire.
pub const MAX_CLASSES: usize = 256;
/// Most examples a matrix may count: every count is then an exact double.
pub const MAX_TOTAL: u64 = 1 << 53;

impl TryFrom<Vec<Vec<u64>>> for ConfusionMatrix {
    type Error = MetricsError;

    fn try_from(rows: Vec<Vec<u64>>) -> Result<Self, MetricsError> {
        let classes = rows.len();
        if !(1..=MAX_CLASSES).contains(&classes) {
            return Err(MetricsError::NotSquare(format!("{classes} rows")));
        }
        if let Some((t, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != classes) {
            return Err(MetricsError::NotSquare(format!(
                "row {t} has {} counts, not {classes}",
                row.len()
            )));
        }
        let counts: Vec<u64> = rows.into_iter().flatten().collect();
        // Counts are turned into doubles: beyond 2^53 they would no longer
        // be exact, and every engine must derive the same metrics.
        if counts
            .iter()
            .try_fold(0u64, |sum, &c| sum.checked_add(c))
            .is_none_or(|total| total > MAX_TOTAL)
        {
            return Err(MetricsError::TooManyExamples);
        }
        Ok(Self { classes, counts })
    }
}

impl From<ConfusionMatrix> for Vec<Vec<u64>> {
    fn from(m: ConfusionMatrix) -> Self {
        m.counts
            .chunks(m.classes.max(1))
            .map(<[u64]>::to_vec)
            .collect()
    }
}

impl ConfusionMatrix {
    /// An all-zero matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Counts the pairs of `truths` and `predictions`.
    pub fn from_labels(
        classes: usize,
        truths: &[usize],
        predictions: &[usize],
    ) -> Result<Self, MetricsError> {
        if truths.len() != predictions.len() {
            return Err(MetricsError::LengthMismatch {
                truths: truths.len(),
                predictions: predictions.len(),
            });
        }
        let mut m = Self::new(classes);
        for (&t, &p) in truths.iter().zip(predictions) {
            m.record(t, p)?;
        }
        Ok(m)
    }

    /// Counts one example.
    pub fn record(&mut self, truth: usize, prediction: usize) -> Result<(), MetricsError> {
        for label in [truth, prediction] {
            if label >= self.classes {
                return Err(MetricsError::LabelOutOfRange {
                    label,
                    classes: self.classes,
                });
            }
        }
        self.counts[truth * self.classes + prediction] += 1;
        Ok(())
    }

    /// Adds another matrix of the same shape (e.g. from another batch).
    pub fn merge(&mut self, other: &ConfusionMatrix) -> Result<(), MetricsError> {
        if other.classes != self.classes {
            return Err(MetricsError::ShapeMismatch {
                left: self.classes,
                right: other.classes,
            });
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        Ok(())
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Examples of class `truth` predicted as `prediction`.
    pub fn count(&self, truth: usize, prediction: usize) -> u64 {
        self.counts[truth * self.classes + prediction]
    }

    /// Total number of examples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Accuracy and per-class and macro precision, recall and F1.
    pub fn metrics(&self) -> Result<ClassificationMetrics, MetricsError> {
        let total = self.total();
        if total == 0 {
            return Err(MetricsError::Empty);
        }
        let ratio = |num: u64, den: u64| {
            if den == 0 {
                0.0
            } else {
                num as f64 / den as f64
            }
        };
        let mut per_class = Vec::with_capacity(self.classes);
        let mut present = Vec::new();
        let mut correct = 0;
        for k in 0..self.classes {
            let tp = self.count(k, k);
            let predicted: u64 = (0..self.classes).map(|t| self.count(t, k)).sum();
            let support: u64 = (0..self.classes).map(|p| self.count(k, p)).sum();
            correct += tp;
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support);
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            let scores = ClassScores {
                precision,
                recall,
                f1,
                support,
            };
            if predicted > 0 || support > 0 {
                present.push(scores);
            }
            per_class.push(scores);
        }
        let mean =
            |f: fn(&ClassScores) -> f64| present.iter().map(f).sum::<f64>() / present.len() as f64;
        Ok(ClassificationMetrics {
            accuracy: ratio(correct, total),
            precision: mean(|s| s.precision),
            recall: mean(|s| s.recall),
            f1: mean(|s| s.f1),
            per_class,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hand_computed_three_class_example() {
        // truth 0 0 1 1 2 2 ; pred 0 1 1 1 0 2
        let m = ConfusionMatrix::from_labels(3, &[0, 0, 1, 1, 2, 2], &[0, 1, 1, 1, 0, 2]).unwrap();
        let r = m.metrics().unwrap();
        assert_eq!(r.accuracy, 4.0 / 6.0);
        // precision: 1/2, 2/3, 1/1 ; recall: 1/2, 1, 1/2
        let p = (0.5 + 2.0 / 3.0 + 1.0) / 3.0;
        let rec = (0.5 + 1.0 + 0.5) / 3.0;
        let f1s = [0.5, 2.0 * (2.0 / 3.0) / (2.0 / 3.0 + 1.0), 2.0 * 0.5 / 1.5];
        assert!((r.precision - p).abs() < 1e-15);
        assert!((r.recall - rec).abs() < 1e-15);
        assert!((r.f1 - f1s.iter().sum::<f64>() / 3.0).abs() < 1e-15);
    }

    #[test]
    fn a_class_never_predicted_scores_zero_and_an_absent_class_is_skipped() {
        // Class 2 occurs but is never predicted; class 3 occurs nowhere.
        let m = ConfusionMatrix::from_labels(4, &[0, 1, 2], &[0, 1, 1]).unwrap();
        let r = m.metrics().unwrap();
        assert_eq!(r.per_class[2].precision, 0.0);
        assert_eq!(r.per_class[2].f1, 0.0);
        // Mean over classes 0, 1, 2 only.
        assert!((r.precision - (1.0 + 0.5 + 0.0) / 3.0).abs() < 1e-15);
        assert_eq!(r.per_class.len(), 4);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(
            ConfusionMatrix::from_labels(2, &[0, 2], &[0, 1]),
            Err(MetricsError::LabelOutOfRange {
                label: 2,
                classes: 2
            })
        );
        assert!(matches!(
            ConfusionMatrix::from_labels(2, &[0], &[]),
            Err(MetricsError::LengthMismatch { .. })
        ));
        assert_eq!(ConfusionMatrix::new(3).metrics(), Err(MetricsError::Empty));
        assert!(
            ConfusionMatrix::new(3)
                .merge(&ConfusionMatrix::new(2))
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn metrics_are_probabilities_and_perfect_predictions_score_one(
            labels in proptest::collection::vec(0usize..5, 1..200)
        ) {
            let m = ConfusionMatrix::from_labels(5, &labels, &labels).unwrap();
            let r = m.metrics().unwrap();
            prop_assert_eq!((r.accuracy, r.precision, r.recall, r.f1), (1.0, 1.0, 1.0, 1.0));
        }

        #[test]
        fn merging_equals_counting_everything_at_once(
            pairs in proptest::collection::vec((0usize..4, 0usize..4), 1..100), cut in 0usize..100
        ) {
            let (t, p): (Vec<_>, Vec<_>) = pairs.iter().copied().unzip();
            let cut = cut.min(t.len());
            let mut left = ConfusionMatrix::from_labels(4, &t[..cut], &p[..cut]).unwrap();
            left.merge(&ConfusionMatrix::from_labels(4, &t[cut..], &p[cut..]).unwrap()).unwrap();
            prop_assert_eq!(&left, &ConfusionMatrix::from_labels(4, &t, &p).unwrap());
            let r = left.metrics().unwrap();
            for x in [r.accuracy, r.precision, r.recall, r.f1] {
                prop_assert!((0.0..=1.0).contains(&x));
            }
        }
    }
}
