//! The runs CSV export (`GET /v1/experiments/{id}/runs?format=csv`): one
//! line per recorded run with the columns `reproml compare --csv-in` reads.
//! Written by the server and read by the comparison, both through this
//! module, so the two cannot drift apart.

use std::io::Read;

use reproml_core::metrics::Metric;
use reproml_core::{ExperimentId, RunIndex, Seed, SeedPolicy, VariantLabel};
use serde::{Deserialize, Serialize};

use crate::RecordedRun;

/// The columns, in order.
pub const COLUMNS: [&str; 13] = [
    "experiment",
    "variant",
    "run",
    "seed",
    "seed_policy",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "final_digest",
    "artifact",
    "recorded_at",
    "fingerprint",
];

/// One recorded run in brief: a line of the export, and what a
/// comparison of variants reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The experiment.
    pub experiment: ExperimentId,
    /// The variant.
    pub variant: VariantLabel,
    /// The run.
    pub run: RunIndex,
    /// The run's seed.
    pub seed: Seed,
    /// The experiment's seed policy.
    pub seed_policy: SeedPolicy,
    /// Final test accuracy.
    pub accuracy: f64,
    /// Final macro precision.
    pub precision: f64,
    /// Final macro recall.
    pub recall: f64,
    /// Final macro F1.
    pub f1: f64,
    /// The last epoch's trajectory digest.
    pub final_digest: String,
    /// The artifact's name.
    #[serde(default)]
    pub artifact: String,
    /// When the run was recorded.
    #[serde(default)]
    pub recorded_at: String,
    /// The run's fingerprint as a JSON object (empty in exports made
    /// before it was a column): compared between variants, where a
    /// difference may be a confound.
    #[serde(default)]
    pub fingerprint: String,
    /// Loss and test accuracy after each epoch, for learning curves: read
    /// from the server, not part of the CSV export (empty when read from
    /// one).
    #[serde(skip)]
    pub curve: Vec<CurvePoint>,
}

/// One epoch of a run's learning curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// Test accuracy after the epoch.
    pub accuracy: f64,
}

impl RunSummary {
    /// The value of `metric`.
    pub fn metric(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Accuracy => self.accuracy,
            Metric::Precision => self.precision,
            Metric::Recall => self.recall,
            Metric::F1 => self.f1,
        }
    }

    /// The run's fingerprint entries; `None` for an export made before
    /// the fingerprint was a column (or an unreadable one).
    pub fn fingerprint_entries(&self) -> Option<std::collections::BTreeMap<String, String>> {
        serde_json::from_str(&self.fingerprint).ok()
    }

    /// The summary of a recorded run of an experiment with `policy`.
    pub fn new(run: &RecordedRun, policy: SeedPolicy) -> Self {
        let m = &run.result.metrics;
        Self {
            experiment: run.experiment.clone(),
            variant: run.variant.clone(),
            run: run.run,
            seed: run.result.seed,
            seed_policy: policy,
            accuracy: m.accuracy,
            precision: m.precision,
            recall: m.recall,
            f1: m.f1,
            final_digest: run.result.final_digest().unwrap_or_default().to_owned(),
            artifact: run.result.artifact.name.clone(),
            recorded_at: run.recorded_at.clone(),
            fingerprint: serde_json::to_string(&run.result.fingerprint).unwrap_or_default(),
            curve: run
                .result
                .epochs
                .iter()
                .map(|e| CurvePoint {
                    loss: e.loss,
                    accuracy: e.test.accuracy,
                })
                .collect(),
        }
    }
}

/// A CSV export that cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct RunsCsvError {
    /// The file or URL.
    pub origin: String,
    /// What is wrong, and on which line.
    pub message: String,
}

/// The export of `rows`, with its header line even when there are none.
pub fn write(rows: &[RunSummary]) -> Result<String, RunsCsvError> {
    let fail = |e: csv::Error| RunsCsvError {
        origin: "runs CSV".into(),
        message: e.to_string(),
    };
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(COLUMNS).map_err(fail)?;
    for r in rows {
        // Written field by field with Rust's shortest round-trip `Display`
        // (`1`, `0.000001`), as the export always was; serde's writer would
        // switch to `1.0` and `1e-6`.
        w.write_record([
            r.experiment.as_str(),
            r.variant.as_str(),
            &r.run.to_string(),
            &r.seed.to_string(),
            r.seed_policy.as_str(),
            &r.accuracy.to_string(),
            &r.precision.to_string(),
            &r.recall.to_string(),
            &r.f1.to_string(),
            &r.final_digest,
            &r.artifact,
            &r.recorded_at,
            &r.fingerprint,
        ])
        .map_err(fail)?;
    }
    let bytes = w.into_inner().map_err(|e| RunsCsvError {
        origin: "runs CSV".into(),
        message: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|e| RunsCsvError {
        origin: "runs CSV".into(),
        message: e.to_string(),
    })
}

/// Reads an export; `origin` names it in errors. Columns other than
/// [`COLUMNS`] are ignored; `artifact`, `recorded_at` and `fingerprint`
/// may be missing.
pub fn read(reader: impl Read, origin: &str) -> Result<Vec<RunSummary>, RunsCsvError> {
    let mut reader = csv::Reader::from_reader(reader);
    reader
        .deserialize::<RunSummary>()
        .enumerate()
        .map(|(i, row)| {
            row.map_err(|e| RunsCsvError {
                origin: origin.to_owned(),
                message: format!(
                    "line {} is not a run of the CSV export ({e}); export runs with `GET /v1/experiments/ID/runs?format=csv`",
                    i + 2
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reproml_core::run::sample_result;

    fn recorded(run: RunIndex, accuracy: f64) -> RecordedRun {
        let mut result = sample_result(
            reproml_core::Seed::new(u64::from(run.get()) + 7),
            accuracy,
            2,
        );
        result.artifact.name = "torch, \"1.13\"".into();
        RecordedRun {
            experiment: "e".parse().unwrap(),
            variant: "buggy".parse().unwrap(),
            run,
            recorded_at: "2026-11-27T00:00:00Z".into(),
            result,
        }
    }

    #[test]
    fn rows_survive_a_round_trip_bit_for_bit() {
        let rows: Vec<RunSummary> = [(0, 0.983_187_717_309_673_9), (1, 0.1 + 0.2)]
            .into_iter()
            .map(|(r, a)| RunSummary::new(&recorded(RunIndex::new(r), a), SeedPolicy::PerRun))
            .collect();
        let text = write(&rows).unwrap();
        assert!(text.starts_with(&COLUMNS.join(",")), "{text}");
        let back = read(text.as_bytes(), "t.csv").unwrap();
        // Everything but the learning curve, which the export leaves out.
        assert!(rows.iter().all(|r| r.curve.len() == 2));
        let without_curves: Vec<RunSummary> = rows
            .iter()
            .map(|r| RunSummary {
                curve: Vec::new(),
                ..r.clone()
            })
            .collect();
        assert_eq!(back, without_curves);
        assert_eq!(back[0].accuracy.to_bits(), rows[0].accuracy.to_bits());
    }

    #[test]
    fn numbers_are_written_as_the_export_always_wrote_them() {
        let mut row = RunSummary::new(&recorded(RunIndex::new(3), 1.0), SeedPolicy::Fixed);
        row.precision = 0.0;
        row.recall = 1e-6;
        row.f1 = 0.983_187_717_309_673_9;
        let text = write(&[row]).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert!(
            line.starts_with("e,buggy,3,10,fixed,1,0,0.000001,0.9831877173096739,"),
            "{line}"
        );
        assert!(line.contains(r#","torch, ""1.13""","#), "{line}");
    }

    #[test]
    fn an_empty_export_has_its_header() {
        assert_eq!(write(&[]).unwrap().trim_end(), COLUMNS.join(","));
    }

    #[test]
    fn a_bad_line_is_named() {
        let text = format!(
            "{}\ne,buggy,notanumber,1,per-run,1,1,1,1,d,a,t\n",
            COLUMNS.join(",")
        );
        let err = read(text.as_bytes(), "x.csv").unwrap_err().to_string();
        assert!(err.starts_with("x.csv: line 2"), "{err}");
    }
}
