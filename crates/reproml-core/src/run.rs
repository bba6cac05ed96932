//! What a run reports: its final metrics, its per-epoch trajectory, the
//! runtime it ran on and the artifact that trained it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::Metric;
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

impl Scores {
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
    /// The final trajectory digest: the last epoch's, which identifies the
    /// trained model bit for bit.
    pub fn final_digest(&self) -> Option<&str> {
        self.epochs.last().map(|e| e.digest.as_str())
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
        if self.artifact.details.len() > MAX_FINGERPRINT_ENTRIES {
            out.push("artifact.details has too many entries".into());
        }
        if out.is_empty() { Ok(()) } else { Err(out) }
    }
}

/// A valid result with `epochs` epochs, all metrics equal to `accuracy`
/// and digests derived from `seed` and the epoch: sample data for tests and
/// benchmarks of the crates that store and move results.
#[cfg(any(test, feature = "test-support"))]
pub fn sample_result(seed: Seed, accuracy: f64, epochs: u32) -> RunResult {
    let scores = Scores {
        accuracy,
        precision: accuracy,
        recall: accuracy,
        f1: accuracy,
    };
    RunResult {
        seed,
        metrics: scores,
        epochs: (1..=epochs)
            .map(|epoch| EpochRecord {
                epoch,
                loss: 0.5,
                test: scores,
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
}
