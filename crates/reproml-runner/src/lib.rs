//! ReproduceML's runner: the client side of the protocol, as a library.
//!
//! [`run`] trains one run (seed and verified splits from the server, the
//! engine, the result posted back); [`pool`] trains the missing runs of a
//! variant with parallel workers and reports what happens as [`Event`]s;
//! [`study`] drives a whole study (builtin and command artifacts, retries,
//! resumption); [`demo`] is the README's main job; [`results`] loads
//! recorded runs for a comparison. Front ends (the CLI's progress bars, a
//! dashboard) only listen to events and print.

pub mod demo;
pub mod kubernetes;
pub mod pool;
pub mod results;
pub mod run;
pub mod slurm;
pub mod study;

use reproml_client::ClientError;
use reproml_core::run::Artifact;
use reproml_core::{ExperimentId, RunIndex, VariantLabel};
use reproml_train::{EpochProgress, TrainError};

pub use pool::{VariantOutcome, VariantPlan, threads_per_run, train_variant};

/// What happens while runs are trained, as it happens.
#[derive(Debug, Clone)]
pub enum Event {
    /// An experiment of a multi-experiment job (study, demo) starts.
    ExperimentStarted {
        /// The experiment.
        experiment: ExperimentId,
        /// What it is about, for people.
        about: String,
    },
    /// A study starts training one side of a bug.
    SideStarted {
        /// The experiment.
        experiment: ExperimentId,
        /// The side (variant).
        variant: VariantLabel,
        /// Its artifact, for people.
        artifact: String,
    },
    /// Runs of a variant are recorded already and are not trained again.
    Skipped {
        /// The experiment.
        experiment: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// How many.
        runs: usize,
    },
    /// A variant's training starts.
    VariantStarted {
        /// The experiment.
        experiment: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// Runs to train now.
        todo: usize,
        /// Epochs of each run.
        epochs: u32,
    },
    /// A worker starts a run.
    RunStarted {
        /// The worker, from 0.
        worker: usize,
        /// The run.
        run: RunIndex,
    },
    /// A run finished an epoch.
    EpochFinished {
        /// The worker.
        worker: usize,
        /// The run.
        run: RunIndex,
        /// The epoch's figures.
        progress: EpochProgress,
    },
    /// A run was trained and its result recorded by the server.
    RunRecorded {
        /// The worker.
        worker: usize,
        /// The experiment.
        experiment: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// The run.
        run: RunIndex,
        /// What it reported.
        result: Box<reproml_core::run::RunResult>,
        /// False when the server had the same result already.
        newly: bool,
    },
    /// A run failed; it is reported in the variant's outcome.
    RunFailed {
        /// The worker.
        worker: usize,
        /// The run.
        run: RunIndex,
        /// Why, with its causes.
        error: String,
    },
    /// A worker has no more runs to train.
    WorkerFinished {
        /// The worker.
        worker: usize,
    },
    /// A variant's training ended.
    VariantFinished {
        /// The experiment.
        experiment: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// Runs that failed.
        failed: Vec<RunIndex>,
    },
    /// Failed runs are tried again.
    Retrying {
        /// The experiment.
        experiment: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// Attempt number, from 1.
        attempt: u32,
        /// How many runs.
        runs: usize,
    },
    /// A side's missing runs were submitted to Slurm as a job array (or,
    /// without submitting, its script written).
    JobSubmitted {
        /// The experiment.
        experiment: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// Slurm's job id; `None` when only the script was written.
        job: Option<String>,
        /// Array tasks.
        tasks: usize,
        /// The job script.
        script: std::path::PathBuf,
    },
    /// The study's jobs, as Slurm and the server see them now.
    JobsWaiting {
        /// Array tasks waiting for a node.
        pending: usize,
        /// Array tasks running.
        running: usize,
        /// Runs of the submitted sides recorded so far.
        recorded: usize,
        /// Runs the submitted sides want.
        wanted: usize,
    },
    /// A `command` artifact is started for the missing runs of a variant.
    CommandStarted {
        /// The experiment.
        experiment: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// The command line, placeholders filled in.
        line: String,
    },
    /// A `command` artifact ended unsuccessfully.
    CommandFailed {
        /// The experiment.
        experiment: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// Its exit status.
        status: String,
    },
}

/// Receives [`Event`]s, from any worker thread.
pub trait Observer: Sync {
    /// One event.
    fn event(&self, event: Event);
}

impl<F: Fn(Event) + Sync> Observer for F {
    fn event(&self, event: Event) {
        self(event)
    }
}

/// An observer that ignores everything.
pub fn quiet() -> impl Observer {
    |_: Event| {}
}

/// Why the runner stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The server refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The experiment is not on the server and no spec was given.
    #[error("experiment {0} does not exist; give --spec FILE to create it")]
    ExperimentMissing(ExperimentId),
    /// The spec given describes another experiment.
    #[error("{origin} describes experiment {found}, not {wanted}")]
    SpecMismatch {
        /// Where the spec came from.
        origin: String,
        /// The experiment in the spec.
        found: ExperimentId,
        /// The experiment asked for.
        wanted: ExperimentId,
    },
    /// A plan with no workers would train nothing and report success.
    #[error("at least one job is needed to train runs (got --jobs 0)")]
    NoWorkers,
    /// Runs outside the experiment were asked for.
    #[error(
        "experiment {experiment} has runs 0..{runs} (run indices from 0); runs {selection} reach beyond them"
    )]
    RunsOutOfRange {
        /// The experiment.
        experiment: ExperimentId,
        /// Its run count.
        runs: u32,
        /// The runs asked for.
        selection: reproml_core::selection::RunSelection,
    },
    /// The runs would be trained by another artifact than the variant's.
    #[error(
        "variant {variant} of {experiment} was trained by {} ({}), but these runs would be trained by {} ({}). \
         A variant is one artifact: use another variant name for this one (e.g. --variant {variant}-2), \
         or the variant's own settings to complete it",
        recorded.name, recorded.describe(), given.name, given.describe()
    )]
    ArtifactConflict {
        /// The experiment.
        experiment: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// The variant's artifact.
        recorded: Box<Artifact>,
        /// The artifact these runs would have.
        given: Box<Artifact>,
    },
    /// The runs would have another build (compiler, target, backend) than
    /// the variant's, in a fingerprint entry results depend on.
    #[error(
        "these runs would not match variant {variant} of {experiment} in fingerprint entries its numbers depend on ({}). \
         A variant is one build: use another variant name for these runs (e.g. --variant {variant}-2)",
        differences.join("; ")
    )]
    FingerprintConflict {
        /// The experiment.
        experiment: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// One line per entry that differs (`RunResult::fixed_differences`).
        differences: Vec<String>,
    },
    /// A run's train and test splits describe different data.
    #[error(
        "the train and test splits of run {run} of {experiment} describe different data \
         (data set digest, image shape, classes or normalisation); nothing was trained. \
         Is something between this client and the server altering answers?"
    )]
    InconsistentSplits {
        /// The experiment.
        experiment: ExperimentId,
        /// The run.
        run: RunIndex,
    },
    /// An experiment asked for is not on the server.
    #[error("no experiment {0} on the server")]
    NoSuchExperiment(String),
    /// A study's experiment could not be created.
    #[error("cannot create the experiment of bug {bug}")]
    CreateExperiment {
        /// The bug.
        bug: String,
        /// Why.
        #[source]
        source: ClientError,
    },
    /// A study file is unusable.
    #[error(transparent)]
    Study(#[from] reproml_study::StudyError),
    /// A `command` artifact could not be started.
    #[error("cannot start {line:?}")]
    Command {
        /// The command line.
        line: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Slurm refused or failed a request (`sbatch`, `squeue`), or its
    /// tools are missing.
    #[error("{what}: {message}")]
    Slurm {
        /// What was asked.
        what: String,
        /// What went wrong, and what to do.
        message: String,
    },
    /// The demo cannot start.
    #[error(transparent)]
    Demo(#[from] demo::DemoError),
    /// The runs cannot be compared.
    #[error(transparent)]
    Report(#[from] reproml_report::ReportError),
}

/// `error` and its causes, joined by `: ` (what a person needs to act).
/// Errors here name their cause as `source`, not in their own text, so
/// that a chain is printed once.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}
