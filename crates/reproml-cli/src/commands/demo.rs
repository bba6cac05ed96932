//! `reproml demo`: the whole methodology on the built-in digits data in a
//! few minutes — three comparisons whose answers are known in advance
//! (`reproml_runner::demo`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use reproml_api::ProblemCode;
use reproml_report::{Verdict, write_report};
use reproml_runner::RunnerError;
use reproml_runner::demo::{COMPARISONS, DemoData, DemoSize, compare_all};
use reproml_runner::results::recorded_rows;

use crate::connect::ServerArgs;
use crate::output::print_summary;
use crate::progress::Bars;
use reproml_core::selection::RunSelection;

/// The data set the demo trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoDataArg {
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
    data: DemoDataArg,
    /// Runs per variant (a number of runs; `--runs` selects run indices
    /// elsewhere).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(3..=1000))]
    count: u32,
    /// Epochs per run (30 trains LeNet-5 to about 98 % on digits).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100))]
    epochs: u32,
    /// Runs trained in parallel (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: Option<u32>,
}

/// Runs `reproml demo`.
pub fn run(args: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let db = args.dir.join("reproml.db");
    let size = DemoSize {
        data: match args.data {
            DemoDataArg::Digits => DemoData::Digits,
            DemoDataArg::FashionMnist => DemoData::FashionMnist,
        },
        runs: args.count,
        epochs: args.epochs,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32)),
    };
    // Refuse a missing data set before anything is created.
    reproml_runner::demo::spec(COMPARISONS[0].experiment, &size)?;
    println!(
        "ReproduceML demo: three comparisons of {} runs per variant,\n\
         LeNet-5 on {}, {} epochs each.\n\
         Database: {} (an interrupted demo resumes from it)\n",
        args.count,
        match args.data {
            DemoDataArg::Digits => "the built-in digits",
            DemoDataArg::FashionMnist => "Fashion-MNIST",
        },
        args.epochs,
        db.display()
    );
    let connection = ServerArgs::embedded(db.clone(), Some(2026)).connect()?;
    let client = &connection.client;
    let wanted = COMPARISONS
        .iter()
        .flat_map(|c| [c.baseline.0, c.treatment].map(|v| (c.experiment, v)))
        .map(|(experiment, variant)| {
            Ok((
                experiment.parse()?,
                variant.parse()?,
                RunSelection::first(size.runs),
            ))
        })
        .collect::<Result<_>>()?;
    crate::interrupt::on_interrupt(client, wanted);
    let failures = reproml_runner::demo::train(client, &size, &Bars::new(false)).map_err(|e| {
        // An earlier demo with other --count or --epochs holds the same
        // experiments with other attributes.
        let conflict = matches!(&e, RunnerError::Client(c)
            if c.code() == Some(ProblemCode::ExperimentConflict));
        // A demo recorded by another build of reproml: its runs cannot be
        // completed with this build's (a variant is one build).
        let other_build = matches!(
            &e,
            RunnerError::ArtifactConflict { .. } | RunnerError::FingerprintConflict { .. }
        );
        let e = anyhow::Error::from(e);
        if conflict {
            e.context(format!("delete {} to start afresh", db.display()))
        } else if other_build {
            e.context(format!(
                "{} holds a demo trained by another build of reproml; run the demo with another --dir, or delete {} to start afresh",
                args.dir.display(),
                db.display()
            ))
        } else {
            e
        }
    })?;
    if failures > 0 {
        bail!("{failures} run(s) failed; run the demo again to retry them");
    }
    let ids: Vec<String> = COMPARISONS
        .iter()
        .map(|c| c.experiment.to_string())
        .collect();
    let (rows, planned) = recorded_rows(client, &ids, None)?;
    let report = compare_all(&rows, planned)?;
    let specs = crate::output::specs_of(client, &rows)?;
    let provenance = crate::output::provenance(&rows, &specs);
    let page = write_report(
        &args.dir.join("report"),
        &report,
        &rows,
        "ReproduceML demo",
        &provenance,
    )
    .context("cannot write the demo report")?;
    println!();
    print_summary(&report);
    println!("\nWhat the demo shows:");
    for c in COMPARISONS {
        let Some(got) = report
            .comparisons
            .iter()
            .find(|r| r.experiment == c.experiment)
        else {
            continue;
        };
        let (expected, why) = c.expected;
        let outcome = if got.verdict == expected {
            "as expected"
        } else {
            "UNEXPECTED"
        };
        // Within 80 columns, like the summary above it.
        let lines = [
            (format!("{}: {}", c.experiment, c.about), "- "),
            (format!("expected: {} ({why})", expected.as_str()), "  "),
        ];
        for (text, first) in lines {
            for line in
                reproml_report::wrap(&text, reproml_report::NARROW_WIDTH, first, "            ")
            {
                println!("{line}");
            }
        }
        println!("  got:      {} — {outcome}", got.verdict.as_str());
    }
    if let Some(e) = report
        .comparisons
        .iter()
        .find(|e| e.experiment == "demo-repeat")
    {
        if e.verdict == Verdict::BitIdentical {
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
