//! `reproml demo`, the README's main job: three comparisons whose answers
//! are known in advance, on LeNet-5, trained and compared end to end.

use std::collections::BTreeMap;

use reproml_client::Client;
use reproml_core::fault::Fault;
use reproml_core::selection::RunSelection;
use reproml_core::spec::SplitRule;
use reproml_core::split::SubsetLimits;
use reproml_core::{ExperimentSpec, VariantLabel};
use reproml_report::{CompareOptions, Report, RunSummary, Verdict, compare};

use crate::pool::{VariantPlan, threads_per_run, train_variant};
use crate::{Event, Observer, RunnerError};

/// One of the demo's comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    /// The experiment.
    pub experiment: &'static str,
    /// The baseline variant and its fault.
    pub baseline: (&'static str, &'static str),
    /// The treatment variant (trained without a fault).
    pub treatment: &'static str,
    /// What it shows.
    pub about: &'static str,
    /// The verdict it should reach, and why that verdict stays true for
    /// converged models.
    pub expected: (Verdict, &'static str),
}

/// The three comparisons: a real bug, a bug in an op the model never calls,
/// and the reference against itself.
pub const COMPARISONS: [Comparison; 3] = [
    Comparison {
        experiment: "demo-real-fault",
        baseline: ("buggy", "momentum-ignored"),
        treatment: "corrected",
        about: "SGD that drops its momentum: a bug with a real effect",
        expected: (
            Verdict::Detected,
            "without momentum, 30 epochs at lr 0.05 leave LeNet-5 about 3 points short",
        ),
    },
    Comparison {
        experiment: "demo-unused-op",
        baseline: ("buggy", "tanh-offset=0.001"),
        treatment: "corrected",
        about: "a wrong tanh, an op the model never calls",
        expected: (
            Verdict::NotTriggered,
            "LeNet-5 uses ReLU, so no run ever executes the fault",
        ),
    },
    Comparison {
        experiment: "demo-repeat",
        baseline: ("first", "none"),
        treatment: "repeat",
        about: "the same training, twice: is it deterministic?",
        expected: (
            Verdict::BitIdentical,
            "the engine is deterministic: one build repeats every run bit for bit",
        ),
    },
];

/// The data set the demo trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoData {
    /// UCI digits, built in (1,797 images of 8×8).
    Digits,
    /// Fashion-MNIST from `apt-get install dataset-fashion-mnist`, a subset.
    FashionMnist,
}

/// How big a demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSize {
    /// The data set.
    pub data: DemoData,
    /// Runs per variant.
    pub runs: u32,
    /// Epochs per run.
    pub epochs: u32,
    /// Runs trained in parallel.
    pub jobs: u32,
}

/// Why the demo cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Fashion-MNIST was asked for and is not installed.
    #[error(
        "{0} is missing; install it with `apt-get install dataset-fashion-mnist`, or run the demo on digits"
    )]
    FashionMnistMissing(&'static str),
    /// A demo value is out of range.
    #[error("the demo's experiment {0} is invalid: {1}")]
    Spec(String, String),
}

/// The spec of a demo experiment: LeNet-5, lr 0.05, momentum 0.9 — with
/// 30 epochs on digits about 98 % mean test accuracy, so the demo's
/// verdicts are about trained models.
pub fn spec(experiment: &str, size: &DemoSize) -> Result<ExperimentSpec, DemoError> {
    let bad = |e: String| DemoError::Spec(experiment.to_owned(), e);
    let challenge = match size.data {
        DemoData::Digits => "digits",
        DemoData::FashionMnist => {
            if !std::path::Path::new(reproml_data::FASHION_MNIST_DIR).is_dir() {
                return Err(DemoError::FashionMnistMissing(
                    reproml_data::FASHION_MNIST_DIR,
                ));
            }
            "fashion-mnist"
        }
    };
    let mut spec = ExperimentSpec::new(
        experiment.parse().map_err(|e| bad(format!("{e}")))?,
        "lenet5".parse().map_err(|e| bad(format!("{e}")))?,
        challenge.parse().map_err(|e| bad(format!("{e}")))?,
        size.epochs,
    );
    spec.description = "reproml demo".into();
    spec.runs = size.runs;
    spec.optimizer.lr = 0.05;
    spec.optimizer.momentum = 0.9;
    if size.data == DemoData::FashionMnist {
        spec.split = SplitRule::Official;
        spec.subset = SubsetLimits {
            train: Some(3000),
            test: Some(1000),
            validation: None,
        };
    }
    spec.validate().map_err(|v| {
        bad(v
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "))
    })?;
    Ok(spec)
}

/// Trains every comparison's two variants (treatment first); returns how
/// many runs failed.
pub fn train(
    client: &Client,
    size: &DemoSize,
    observer: &dyn Observer,
) -> Result<usize, RunnerError> {
    let mut failures = 0;
    for c in COMPARISONS {
        let spec = spec(c.experiment, size)?;
        let (experiment, _) = client.create_experiment(&spec)?;
        observer.event(Event::ExperimentStarted {
            experiment: spec.id.clone(),
            about: c.about.to_owned(),
        });
        for (variant, fault) in [(c.treatment, "none"), c.baseline] {
            let fault: Fault = fault
                .parse()
                .unwrap_or_else(|_| unreachable!("the demo's faults parse"));
            let variant: VariantLabel = variant
                .parse()
                .unwrap_or_else(|_| unreachable!("the demo's variants are labels"));
            let plan = VariantPlan {
                experiment: &experiment,
                variant: &variant,
                runs: RunSelection::first(size.runs),
                jobs: size.jobs,
                threads: threads_per_run(size.jobs, None),
                fault: &fault,
            };
            failures += train_variant(client, &plan, observer)?.failed.len();
        }
    }
    Ok(failures)
}

/// Compares each demo experiment's own two variants, with Holm and BH
/// across all of them.
pub fn compare_all(
    rows: &[RunSummary],
    planned_runs: BTreeMap<String, u32>,
) -> Result<Report, RunnerError> {
    let options = CompareOptions {
        variants_of: COMPARISONS
            .iter()
            .map(|c| {
                (
                    c.experiment.to_owned(),
                    vec![c.baseline.0.to_owned(), c.treatment.to_owned()],
                )
            })
            .collect(),
        expected_runs: planned_runs,
        ..CompareOptions::default()
    };
    let ours: Vec<RunSummary> = rows
        .iter()
        .filter(|r| {
            COMPARISONS
                .iter()
                .any(|c| c.experiment == r.experiment.as_str())
        })
        .cloned()
        .collect();
    Ok(compare(&ours, &options)?)
}
