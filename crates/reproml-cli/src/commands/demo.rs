//! `reproml demo`: the whole methodology on the built-in digits data in a
//! few minutes — three comparisons whose answers are known in advance.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::MultiProgress;
use reproml_core::{ExperimentSpec, VariantLabel};
use std::collections::BTreeMap;

use reproml_report::{CompareOptions, Report, RunRow, Verdict, compare, write_report};
use reproml_train::Fault;

use super::compare::{print_summary, rows_from_server};
use super::connect::ServerArgs;
use super::run::{VariantJob, train_variant};

/// The data set the demo trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoData {
    /// UCI digits, built in (1,797 images of 8×8).
    Digits,
    /// Fashion-MNIST from `apt-get install dataset-fashion-mnist` (a subset).
    FashionMnist,
}

/// Arguments of `reproml demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the database and the report (reused: an interrupted demo resumes).
    #[arg(long, default_value = "reproml-demo")]
    dir: PathBuf,
    /// Data set.
    #[arg(long, value_enum, default_value = "digits")]
    data: DemoData,
    /// Runs per variant.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(3..=1000))]
    runs: u32,
    /// Epochs per run.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    epochs: u32,
    /// Runs trained in parallel (default: one per core).
    #[arg(long)]
    jobs: Option<u32>,
}

/// The three comparisons: (experiment, baseline variant and its fault, treatment variant).
const COMPARISONS: [(&str, &str, &str, &str, &str); 3] = [
    (
        "demo-real-fault",
        "buggy",
        "momentum-ignored",
        "corrected",
        "SGD that drops its momentum: a bug with a real effect",
    ),
    (
        "demo-unused-op",
        "buggy",
        "tanh-offset=0.001",
        "corrected",
        "a wrong tanh, an op the model never calls",
    ),
    (
        "demo-repeat",
        "first",
        "none",
        "repeat",
        "the same training, twice: is it deterministic?",
    ),
];

fn spec(id: &str, args: &DemoArgs) -> Result<ExperimentSpec> {
    let (challenge, extra) = match args.data {
        DemoData::Digits => ("digits", ""),
        DemoData::FashionMnist => {
            if !std::path::Path::new(reproml_data::FASHION_MNIST_DIR).is_dir() {
                bail!(
                    "{} is missing; install it with `apt-get install dataset-fashion-mnist`, or run the demo on digits",
                    reproml_data::FASHION_MNIST_DIR
                );
            }
            (
                "fashion-mnist",
                "[split]\nmethod = \"official\"\n[subset]\ntrain = 3000\ntest = 1000\n",
            )
        }
    };
    let text = format!(
        "id = \"{id}\"\ndescription = \"reproml demo\"\nmodel = \"lenet5\"\nchallenge = \"{challenge}\"\nepochs = {}\nruns = {}\n\
         [optimizer]\nlr = 0.05\nmomentum = 0.5\n{extra}",
        args.epochs, args.runs
    );
    Ok(ExperimentSpec::from_toml(&text, "demo")?)
}

/// Runs `reproml demo`.
pub fn run(args: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let db = args.dir.join("reproml.db");
    println!(
        "ReproduceML demo: three comparisons of {} runs per variant, LeNet-5 on {}, {} epochs each.\n\
         Database: {} (an interrupted demo resumes from it)\n",
        args.runs,
        match args.data {
            DemoData::Digits => "the built-in digits",
            DemoData::FashionMnist => "Fashion-MNIST",
        },
        args.epochs,
        db.display()
    );
    let connection = ServerArgs {
        server: None,
        token_file: None,
        embedded: true,
        db: db.clone(),
        // A fixed master seed: everyone's demo trains the same runs.
        master_seed: Some(2026),
    }
    .connect()?;
    let client = &connection.client;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let progress = MultiProgress::new();
    let mut failures = 0;
    for (id, baseline, fault, treatment, what) in COMPARISONS {
        progress.suspend(|| println!("{id}: {what}"));
        let (experiment, _) = client
            .create_experiment(&spec(id, &args)?)
            .with_context(|| {
                format!(
                    "cannot create {id}; delete {} to start afresh",
                    db.display()
                )
            })?;
        for (variant, fault) in [(treatment, "none"), (baseline, fault)] {
            let fault: Fault = fault.parse()?;
            let variant: VariantLabel = variant.parse()?;
            let job = VariantJob {
                experiment: &experiment,
                variant: &variant,
                runs: 0..args.runs,
                jobs,
                threads: super::run::threads_per_run(jobs, None),
                fault: &fault,
                json: false,
            };
            failures += train_variant(client, &job, &progress)?.len();
        }
    }
    if failures > 0 {
        bail!("{failures} run(s) failed; run the demo again to retry them");
    }
    let ids: Vec<String> = COMPARISONS.iter().map(|c| c.0.to_string()).collect();
    let (rows, expected) = rows_from_server(client, &ids, None)?;
    let report = compare_all(&rows, expected)?;
    let page = write_report(&args.dir.join("report"), &report, &rows, "ReproduceML demo")
        .context("cannot write the demo report")?;
    println!();
    print_summary(&report);
    let repeat = report
        .experiments
        .iter()
        .find(|e| e.experiment == "demo-repeat");
    if let Some(e) = repeat {
        if e.verdict == Verdict::NotTriggered {
            println!(
                "\ndeterminism proven: {}/{} repeated runs are bit-identical, epoch by epoch",
                e.identical_pairs, e.pairs
            );
        } else {
            println!(
                "\nWARNING: repeated runs differ ({}/{} identical): training is not deterministic here",
                e.identical_pairs, e.pairs
            );
        }
    }
    println!("report: {}", page.display());
    Ok(())
}

/// Compares each demo experiment's own two variants, with Holm and BH
/// across all of them: the variants are renamed to a common
/// baseline/treatment so that one `compare` adjusts every p-value together,
/// then given back their names.
fn compare_all(rows: &[RunRow], expected_runs: BTreeMap<String, u32>) -> Result<Report> {
    let names = |id: &str| COMPARISONS.iter().find(|c| c.0 == id).map(|c| (c.1, c.3));
    let renamed: Vec<RunRow> = rows
        .iter()
        .filter_map(|r| {
            let (baseline, treatment) = names(&r.experiment)?;
            let variant = match r.variant.as_str() {
                v if v == baseline => "baseline",
                v if v == treatment => "treatment",
                _ => return None,
            };
            Some(RunRow {
                variant: variant.into(),
                ..r.clone()
            })
        })
        .collect();
    let options = CompareOptions {
        variants: Some(("baseline".into(), "treatment".into())),
        expected_runs,
        ..CompareOptions::default()
    };
    let mut report = compare(&renamed, &options)?;
    for e in &mut report.experiments {
        if let Some((baseline, treatment)) = names(&e.experiment) {
            e.baseline = baseline.into();
            e.treatment = treatment.into();
        }
    }
    Ok(report)
}
