//! What a run reports: its final metrics, its per-epoch trajectory, the
//! runtime it ran on and the artifact that trained it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::{ConfusionMatrix, Metric, MetricsError};
use crate::seed::Seed;

/// Longest text value accepted in a result (fingerprint values, artifact fields).
pub const MAX_TEXT_LEN: usize = 4096;
/// Most fingerprint entries accepted.
pub const MAX_FINGERPRINT_ENTRIES: usize = 256;

/// Accuracy and macro precision, recall and F1 on the test split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scores {
    /// Share of test examples predicted correctly.
    pub accuracy: f64,
    /// Macro-averaged precision.
    pub precision: f64,
    /// Macro-averaged recall.
    pub recall: f64,
    /// Macro-averaged F1.
    pub f1: f64,
}

/// The figures of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: u32,
    /// Mean training loss over the epoch's batches.
    pub loss: f64,
    /// Metrics on the test split after the epoch.
    pub test: Scores,
    /// The confusion matrix on the test split the metrics come from. A
    /// server requires it of every new result and derives `test` from it;
    /// results recorded before it existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confusion: Option<ConfusionMatrix>,
    /// Trajectory digest: SHA-256 of every parameter after the epoch, hex.
    pub digest: String,
}

/// The artifact (build, release, backend) that trained a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Kind: `builtin` (reproml's engine) or `command` (any client).
    pub kind: String,
    /// A name for people, e.g. `burn-0.22.0-flex` or `torch-1.13.1`.
    pub name: String,
    /// Provenance: revision, build command, fault injected, …
    #[serde(default)]
    pub details: BTreeMap<String, String>,
}

impl Artifact {
    /// `kind=…, key=value, …`: what tells two artifacts apart, for messages.
    ///
    /// ```
    /// use reproml_core::run::Artifact;
    /// let a = Artifact { kind: "builtin".into(), name: "x".into(), details: [("fault".into(), "none".into())].into() };
    /// assert_eq!(a.describe(), "kind=builtin, fault=none");
    /// ```
    pub fn describe(&self) -> String {
        std::iter::once(format!("kind={}", self.kind))
            .chain(self.details.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Everything a run reports, as posted to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunResult {
    /// The seed the run used (checked against the server's).
    pub seed: Seed,
    /// Metrics on the test split after the last epoch.
    pub metrics: Scores,
    /// Per-epoch figures, epochs 1 … E in order.
    pub epochs: Vec<EpochRecord>,
    /// The runtime: versions, backend, CPU, threads, environment.
    pub fingerprint: BTreeMap<String, String>,
    /// What trained the run.
    pub artifact: Artifact,
}

/// How far a claimed metric may be from the one its confusion matrix
/// gives, at most: rounding differences between engines (about 1e-16),
/// never a different count. See [`tolerance`].
pub const METRIC_TOLERANCE: f64 = 1e-9;

/// The tolerance for a matrix of `total` examples: one example more or
/// less moves a macro metric by at least 1/(256·total) (256 classes at
/// most), so the tolerance stays a quarter of that below any real change.
fn tolerance(total: u64) -> f64 {
    METRIC_TOLERANCE.min(1.0 / (1024.0 * total.max(1) as f64))
}

impl Scores {
    /// The canonical metrics of a confusion matrix: those of
    /// [`ConfusionMatrix::metrics`], the one implementation every stored
    /// result goes through, so engines that agree on every prediction
    /// agree on every bit of their metrics.
    pub fn of(matrix: &ConfusionMatrix) -> Result<Self, MetricsError> {
        let m = matrix.metrics()?;
        Ok(Self {
            accuracy: m.accuracy,
            precision: m.precision,
            recall: m.recall,
            f1: m.f1,
        })
    }

    /// The value of `metric`.
    pub fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Accuracy => self.accuracy,
            Metric::Precision => self.precision,
            Metric::Recall => self.recall,
            Metric::F1 => self.f1,
        }
    }

    fn problems(&self, at: &str, out: &mut Vec<String>) {
        for metric in Metric::ALL {
            let v = self.get(metric);
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                out.push(format!("{at}.{metric} must be a number in [0, 1], got {v}"));
            }
        }
    }
}

/// True for 64 lowercase hexadecimal digits (a SHA-256).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl RunResult {
    /// The fingerprint entries the result says its numbers depend on: the
    /// keys listed in `fingerprint["fixed"]` (comma-separated), with their
    /// values (`(absent)` for a listed key the fingerprint lacks). Every run
    /// of a variant must have the same.
    ///
    /// ```
    /// use reproml_core::run::sample_result;
    /// let mut r = sample_result(reproml_core::Seed::new(1), 0.5, 1);
    /// r.fingerprint.insert("fixed".into(), "backend,threads".into());
    /// let fixed = r.fixed_fingerprint();
    /// assert_eq!(fixed["backend"], "sample");
    /// assert_eq!(fixed["threads"], "(absent)");
    /// ```
    pub fn fixed_fingerprint(&self) -> BTreeMap<String, String> {
        let listed = self.fingerprint.get("fixed").map_or("", String::as_str);
        listed
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| {
                let value = self.fingerprint.get(k).map_or("(absent)", String::as_str);
                (k.to_owned(), value.to_owned())
            })
            .collect()
    }

    /// `key: the variant's runs have X, this result Y` for every entry in
    /// which two fixed fingerprints (see [`RunResult::fixed_fingerprint`])
    /// differ, in key order; empty when they agree. `it not fixed` stands
    /// for an entry one side does not list.
    ///
    /// ```
    /// use reproml_core::run::RunResult;
    /// let a = [("threads".to_owned(), "1".to_owned())].into();
    /// let b = [("threads".to_owned(), "2".to_owned())].into();
    /// assert_eq!(
    ///     RunResult::fixed_differences(&a, &b),
    ///     ["threads: the variant's runs have 1, this result 2"]
    /// );
    /// ```
    pub fn fixed_differences(
        recorded: &BTreeMap<String, String>,
        given: &BTreeMap<String, String>,
    ) -> Vec<String> {
        let keys: std::collections::BTreeSet<&String> =
            recorded.keys().chain(given.keys()).collect();
        let entry = |m: &BTreeMap<String, String>, k: &String| {
            m.get(k).map_or("it not fixed", String::as_str).to_owned()
        };
        keys.into_iter()
            .filter(|k| recorded.get(*k) != given.get(*k))
            .map(|k| {
                format!(
                    "{k}: the variant's runs have {}, this result {}",
                    entry(recorded, k),
                    entry(given, k)
                )
            })
            .collect()
    }

    /// The final trajectory digest: the last epoch's, which identifies the
    /// trained model bit for bit.
    pub fn final_digest(&self) -> Option<&str> {
        self.epochs.last().map(|e| e.digest.as_str())
    }

    /// Replaces every claimed metric by the one its confusion matrix gives,
    /// after checking that they agree within [`METRIC_TOLERANCE`]; the
    /// final `metrics` must be the last epoch's. Every epoch needs a
    /// matrix, and all of them count the same test examples. Returns every
    /// problem found.
    pub fn canonicalize(&mut self) -> Result<(), Vec<String>> {
        let mut out = Vec::new();
        let mut first_total = None;
        for (i, e) in self.epochs.iter_mut().enumerate() {
            let at = format!("epochs[{i}]");
            let Some(matrix) = &e.confusion else {
                out.push(format!(
                    "{at}.confusion is missing: send the test split's confusion matrix (rows = true class, columns = predicted class)"
                ));
                continue;
            };
            let total = matrix.total();
            match *first_total.get_or_insert((total, matrix.classes())) {
                (t, c) if (t, c) != (total, matrix.classes()) => out.push(format!(
                    "{at}.confusion counts {total} examples of {} classes, but epochs[0]'s counts {t} of {c}: every epoch is evaluated on the same test split",
                    matrix.classes()
                )),
                _ => {}
            }
            match Scores::of(matrix) {
                Ok(derived) => {
                    let tol = tolerance(total);
                    disagreements(&e.test, &derived, tol, &format!("{at}.test"), &mut out);
                    e.test = derived;
                }
                Err(err) => out.push(format!("{at}.confusion: {err}")),
            }
        }
        if let Some(last) = self.epochs.last() {
            let total = last.confusion.as_ref().map_or(1, ConfusionMatrix::total);
            disagreements(
                &self.metrics,
                &last.test,
                tolerance(total),
                "metrics",
                &mut out,
            );
            self.metrics = last.test;
        }
        if out.is_empty() { Ok(()) } else { Err(out) }
    }

    /// Checks a result against an experiment with `epochs` epochs; returns
    /// every problem found.
    pub fn validate(&self, epochs: u32) -> Result<(), Vec<String>> {
        let mut out = Vec::new();
        self.metrics.problems("metrics", &mut out);
        if self.epochs.len() != epochs as usize {
            out.push(format!(
                "epochs holds {} records; the experiment has {epochs} epochs",
                self.epochs.len()
            ));
        }
        for (i, e) in self.epochs.iter().enumerate() {
            if e.epoch as usize != i + 1 {
                out.push(format!(
                    "epochs[{i}].epoch must be {}, got {}",
                    i + 1,
                    e.epoch
                ));
            }
            if !e.loss.is_finite() {
                out.push(format!("epochs[{i}].loss must be finite, got {}", e.loss));
            }
            e.test.problems(&format!("epochs[{i}].test"), &mut out);
            if !is_sha256_hex(&e.digest) {
                out.push(format!(
                    "epochs[{i}].digest must be 64 lowercase hex digits"
                ));
            }
        }
        if self.fingerprint.len() > MAX_FINGERPRINT_ENTRIES {
            out.push(format!(
                "fingerprint has {} entries; at most {MAX_FINGERPRINT_ENTRIES} are allowed",
                self.fingerprint.len()
            ));
        }
        let texts = self
            .fingerprint
            .iter()
            .chain(&self.artifact.details)
            .flat_map(|(k, v)| [k, v])
            .chain([&self.artifact.kind, &self.artifact.name]);
        if texts.into_iter().any(|t| t.len() > MAX_TEXT_LEN) {
            out.push(format!(
                "a fingerprint or artifact text is longer than {MAX_TEXT_LEN} bytes"
            ));
        }
        if self.artifact.kind.trim().is_empty() || self.artifact.name.trim().is_empty() {
            out.push("artifact.kind and artifact.name must say what trained the run".into());
        }
        if self.artifact.details.len() > MAX_FINGERPRINT_ENTRIES {
            out.push("artifact.details has too many entries".into());
        }
        if out.is_empty() { Ok(()) } else { Err(out) }
    }
}

/// Adds a problem for each metric of `claimed` that is not `derived`.
fn disagreements(
    claimed: &Scores,
    derived: &Scores,
    tolerance: f64,
    at: &str,
    out: &mut Vec<String>,
) {
    for metric in Metric::ALL {
        let (c, d) = (claimed.get(metric), derived.get(metric));
        // NaN or infinite claims are refused by `validate`, not here.
        if c.is_finite() && (c - d).abs() > tolerance {
            out.push(format!(
                "{at}.{metric} is {c}, but the confusion matrix gives {d}"
            ));
        }
    }
}

/// A valid result with `epochs` epochs, all metrics equal to `accuracy`
/// and digests derived from `seed` and the epoch: sample data for tests and
/// benchmarks of the crates that store and move results.
#[cfg(any(test, feature = "test-support"))]
pub fn sample_result(seed: Seed, accuracy: f64, epochs: u32) -> RunResult {
    // Two classes of a million test examples each, each right with
    // probability `accuracy`: every metric is `accuracy` to 1e-6.
    let n = 1_000_000u64;
    let right = (accuracy.clamp(0.0, 1.0) * n as f64).round() as u64;
    let matrix = ConfusionMatrix::try_from(vec![vec![right, n - right], vec![n - right, right]])
        .expect("a 2×2 matrix");
    let scores = Scores::of(&matrix).expect("a non-empty matrix");
    RunResult {
        seed,
        metrics: scores,
        epochs: (1..=epochs)
            .map(|epoch| EpochRecord {
                epoch,
                loss: 0.5,
                test: scores,
                confusion: Some(matrix.clone()),
                digest: format!(
                    "{:064x}",
                    seed.get().wrapping_mul(1000).wrapping_add(u64::from(epoch))
                ),
            })
            .collect(),
        fingerprint: BTreeMap::from([("backend".into(), "sample".into())]),
        artifact: Artifact {
            kind: "builtin".into(),
            name: "sample".into(),
            details: BTreeMap::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_result_validates() {
        let r = sample_result(Seed::new(7), 0.9, 3);
        assert_eq!(r.validate(3), Ok(()));
        assert_eq!(r.final_digest(), Some(r.epochs[2].digest.as_str()));
    }

    #[test]
    fn every_problem_is_reported() {
        let mut r = sample_result(Seed::new(7), 0.9, 2);
        r.metrics.accuracy = 1.5;
        r.epochs[1].digest = "XYZ".into();
        r.epochs[0].loss = f64::NAN;
        let problems = r.validate(3).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn claimed_metrics_become_their_matrix_s_to_the_last_bit() {
        let mut r = sample_result(Seed::new(7), 0.9, 2);
        let canonical = r.clone();
        // One ulp off, as another engine's arithmetic may be: accepted,
        // and replaced by the canonical value.
        r.epochs[1].test.f1 = f64::from_bits(r.epochs[1].test.f1.to_bits() + 1);
        r.metrics.f1 = r.epochs[1].test.f1;
        r.canonicalize().unwrap();
        assert_eq!(r, canonical);
        assert_eq!(r.metrics.f1.to_bits(), canonical.metrics.f1.to_bits());
    }

    #[test]
    fn metrics_their_matrix_does_not_give_are_refused() {
        let mut r = sample_result(Seed::new(7), 0.9, 3);
        r.epochs[0].test.accuracy = 0.8;
        r.metrics.recall = 0.95;
        r.epochs[1].confusion = None;
        r.epochs[2].confusion =
            Some(ConfusionMatrix::try_from(vec![vec![9, 1], vec![1, 9]]).unwrap());
        let problems = r.canonicalize().unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems[0].contains("epochs[0].test.accuracy is 0.8"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("epochs[1].confusion is missing"),
            "{problems:?}"
        );
        assert!(problems[2].contains("counts 20 examples"), "{problems:?}");
        assert!(problems[3].starts_with("metrics.recall"), "{problems:?}");
    }

    #[test]
    fn a_matrix_travels_as_rows_and_must_be_square() {
        let r = sample_result(Seed::new(7), 0.75, 1);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["epochs"][0]["confusion"],
            serde_json::json!([[750000, 250000], [250000, 750000]])
        );
        for bad in [
            "[]",
            "[[1, 2], [3]]",
            "[[1, 2, 3]]",
            "[[18446744073709551615, 1], [0, 0]]",
        ] {
            assert!(
                serde_json::from_str::<ConfusionMatrix>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
