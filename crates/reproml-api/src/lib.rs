//! The wire types of ReproduceML's HTTP API (`docs/protocol.md`), defined
//! once: the server answers with them, the Rust client reads them, the
//! store maps its rows to them, and the OpenAPI document is tested field by
//! field against them.
//!
//! Serde only: no I/O, no HTTP. A change here is a change of the protocol.
//! Answers are read leniently (a newer server may add fields); what a
//! client sends is checked strictly by the server.

pub mod problem;
pub mod runs_csv;

use reproml_core::run::RunResult;
use reproml_core::split::SplitName;
use reproml_core::{
    ExperimentId, ExperimentSpec, RunIndex, Seed, SeedPolicy, SplitSeed, VariantLabel,
};
use serde::{Deserialize, Serialize};

pub use problem::{Problem, ProblemCode};

/// The API version every path starts with.
pub const API_VERSION: &str = "v1";

/// An experiment as the server stores and returns it: the spec, the
/// durable seeds derived from it, and its creation time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Its attributes.
    #[serde(flatten)]
    pub spec: ExperimentSpec,
    /// Its seeds `s_0 … s_{runs−1}`.
    pub seeds: Vec<Seed>,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
}

impl Experiment {
    /// The seed run `run` uses under the experiment's seed policy; `None`
    /// for a run the experiment does not have.
    ///
    /// ```
    /// use reproml_api::Experiment;
    /// use reproml_core::{ExperimentSpec, RunIndex, Seed, SeedPolicy};
    /// let mut spec = ExperimentSpec::new("e".parse().unwrap(), "mlp".parse().unwrap(), "digits".parse().unwrap(), 1);
    /// spec.runs = 2;
    /// spec.seed_policy = SeedPolicy::Fixed;
    /// let e = Experiment { spec, seeds: vec![Seed::new(10), Seed::new(11)], created_at: String::new() };
    /// assert_eq!(e.run_seed(RunIndex::new(1)), Some(Seed::new(10)));
    /// assert_eq!(e.run_seed(RunIndex::new(2)), None);
    /// ```
    pub fn run_seed(&self, run: RunIndex) -> Option<Seed> {
        if run.get() >= self.spec.runs {
            return None;
        }
        self.seeds
            .get(self.spec.seed_policy.seed_index(run) as usize)
            .copied()
    }

    /// The split seed `s_0`: every run of the experiment is tested on the
    /// same examples.
    pub fn split_seed(&self) -> Option<SplitSeed> {
        self.seeds.first().copied().map(SplitSeed::from_first)
    }
}

/// `GET /v1/experiments/{id}/runs/{run}/seed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSeed {
    /// The experiment.
    pub experiment: ExperimentId,
    /// The run.
    pub run: RunIndex,
    /// The run's seed.
    pub seed: Seed,
    /// The experiment's seed policy.
    pub seed_policy: SeedPolicy,
    /// The split seed `s_0`.
    pub split_seed: SplitSeed,
}

/// A recorded run: what the server stored for one run of one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRun {
    /// The experiment.
    pub experiment: ExperimentId,
    /// The variant.
    pub variant: VariantLabel,
    /// The run.
    pub run: RunIndex,
    /// When it was recorded (RFC 3339, UTC).
    pub recorded_at: String,
    /// What the run reported.
    #[serde(flatten)]
    pub result: RunResult,
}

/// How far one variant of an experiment is (`GET /v1/progress`): what a
/// dashboard needs to show progress without downloading every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantProgress {
    /// The experiment.
    pub experiment: ExperimentId,
    /// The variant.
    pub variant: VariantLabel,
    /// Runs recorded.
    pub recorded: u32,
    /// When the first of them was recorded (RFC 3339, UTC); absent while
    /// none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_recorded_at: Option<String>,
    /// When the last of them was recorded (RFC 3339, UTC); absent while
    /// none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_recorded_at: Option<String>,
    /// The artifact every run of the variant was trained by; absent while
    /// no run is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<reproml_core::run::Artifact>,
    /// Runs reported failed and not recorded since.
    #[serde(default)]
    pub failing: u32,
    /// Failure reports of the variant's runs, recorded ones included.
    #[serde(default)]
    pub failure_reports: u32,
    /// The error of the latest failure report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the latest failure was reported (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_at: Option<String>,
}

/// The longest error a failure report may carry, in bytes of UTF-8.
/// Clients cut longer ones ([`RunFailure::new`]); the server refuses them.
pub const MAX_FAILURE_ERROR_BYTES: usize = 4096;

/// A failed attempt at a run, as a client reports it (`POST
/// /v1/experiments/{id}/variants/{variant}/runs/{run}/failures`), so that
/// whoever watches the study sees it without the client's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFailure {
    /// The run's seed, as for a result: a report about another run's seed
    /// is refused.
    pub seed: Seed,
    /// What went wrong, as the client would print it.
    pub error: String,
}

impl RunFailure {
    /// A report of `error`, cut at a character boundary to
    /// [`MAX_FAILURE_ERROR_BYTES`].
    ///
    /// ```
    /// use reproml_api::{MAX_FAILURE_ERROR_BYTES, RunFailure};
    /// use reproml_core::Seed;
    /// let long = "é".repeat(MAX_FAILURE_ERROR_BYTES);
    /// let report = RunFailure::new(Seed::new(1), &long);
    /// assert!(report.error.len() <= MAX_FAILURE_ERROR_BYTES);
    /// assert!(report.error.ends_with('…'));
    /// ```
    pub fn new(seed: Seed, error: &str) -> Self {
        let error = if error.len() <= MAX_FAILURE_ERROR_BYTES {
            error.to_owned()
        } else {
            let ellipsis = '…';
            let mut end = MAX_FAILURE_ERROR_BYTES - ellipsis.len_utf8();
            while !error.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}{ellipsis}", &error[..end])
        };
        Self { seed, error }
    }

    /// Why the server refuses this report, if it does.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.error.trim().is_empty() {
            problems.push("error is empty; say what went wrong".to_owned());
        }
        if self.error.len() > MAX_FAILURE_ERROR_BYTES {
            problems.push(format!(
                "error is {} bytes long; at most {MAX_FAILURE_ERROR_BYTES} are kept (cut it)",
                self.error.len()
            ));
        }
        problems
    }
}

/// What the server keeps of one run's failure reports: their count and the
/// latest (`GET /v1/experiments/{id}/failures`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The experiment.
    pub experiment: ExperimentId,
    /// The variant.
    pub variant: VariantLabel,
    /// The run.
    pub run: RunIndex,
    /// Failure reports of this run.
    pub reports: u32,
    /// The latest report's error.
    pub last_error: String,
    /// When it was reported (RFC 3339, UTC).
    pub last_failed_at: String,
    /// Whether the run has a result recorded (it succeeded later).
    pub recorded: bool,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
    /// The server's version.
    pub version: String,
    /// The API version, [`API_VERSION`].
    pub api: String,
}

/// Channels, height and width of every image of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageShape {
    /// Colour channels (1 or 3).
    pub channels: u32,
    /// Rows of pixels.
    pub height: u32,
    /// Columns of pixels.
    pub width: u32,
}

impl ImageShape {
    /// Bytes per image.
    pub fn pixels(&self) -> usize {
        self.channels as usize * self.height as usize * self.width as usize
    }
}

/// Per-channel mean and standard deviation of the scaled pixels
/// (`byte / max_value`) over every example of the data set. Clients feed
/// `(byte / max_value − mean) / std` to the model. Each data set uses its
/// own statistics (the original tool applied MNIST's to CIFAR-10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Largest pixel value of the format (16 for digits, 255 otherwise).
    pub max_value: u8,
    /// Mean per channel.
    pub mean: Vec<f64>,
    /// Population standard deviation per channel (1 where it would be 0).
    pub std: Vec<f64>,
}

/// The order in which a split's records are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitOrder {
    /// The run's epoch-0 order (the train split).
    #[serde(rename = "epoch-0")]
    Epoch0,
    /// Ascending data set index (test and validation).
    #[serde(rename = "index")]
    Index,
}

impl SplitOrder {
    /// The order a split is served in.
    pub fn of(split: SplitName) -> Self {
        match split {
            SplitName::Train => SplitOrder::Epoch0,
            SplitName::Test | SplitName::Validation => SplitOrder::Index,
        }
    }
}

/// What a split stream says about itself before its records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitHeader {
    /// Experiment identifier.
    pub experiment: ExperimentId,
    /// Run index.
    pub run: RunIndex,
    /// Which split.
    pub split: SplitName,
    /// The run's seed.
    pub seed: Seed,
    /// Number of records that follow.
    pub examples: u32,
    /// Shape of every image.
    pub shape: ImageShape,
    /// Number of classes.
    pub classes: u32,
    /// The data set's own normalisation.
    pub normalization: Normalization,
    /// SHA-256 of the data set's content, hex.
    pub dataset_digest: String,
    /// The order of the records.
    pub order: SplitOrder,
}

#[cfg(test)]
mod tests {
    use super::*;
    use reproml_core::run::sample_result;

    fn spec() -> ExperimentSpec {
        ExperimentSpec::new(
            "e".parse().unwrap(),
            "mlp".parse().unwrap(),
            "digits".parse().unwrap(),
            1,
        )
    }

    #[test]
    fn an_experiment_flattens_its_spec() {
        let e = Experiment {
            spec: spec(),
            seeds: vec![Seed::new(1), Seed::new(2)],
            created_at: "2026-11-27T00:00:00Z".into(),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["id"], "e");
        assert_eq!(json["seeds"][1], 2);
        let back: Experiment = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn a_recorded_run_flattens_its_result() {
        let r = RecordedRun {
            experiment: "e".parse().unwrap(),
            variant: "buggy".parse().unwrap(),
            run: RunIndex::new(3),
            recorded_at: "2026-11-27T00:00:00Z".into(),
            result: sample_result(Seed::new(5), 0.5, 2),
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["seed"], 5);
        assert_eq!(json["variant"], "buggy");
        assert_eq!(serde_json::from_value::<RecordedRun>(json).unwrap(), r);
    }

    #[test]
    fn split_orders_are_written_as_the_protocol_says() {
        assert_eq!(
            serde_json::to_string(&SplitOrder::of(SplitName::Train)).unwrap(),
            "\"epoch-0\""
        );
        assert_eq!(
            serde_json::to_string(&SplitOrder::of(SplitName::Test)).unwrap(),
            "\"index\""
        );
    }
}
