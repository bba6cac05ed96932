//! `reproml study`: run a whole study — every side of every bug (buggy and
//! corrected, or any named sides), N runs each, resumable — then compare
//! and report.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use reproml_report::{CompareOptions, compare, write_report};
use reproml_runner::results::recorded_rows;
use reproml_runner::study::{progress, run_study as run_study_runs};
use reproml_study::Comparisons;

use crate::connect::ServerArgs;
use crate::files::load_study;
use crate::output::print_summary;
use crate::progress::Bars;

/// What `reproml study` can do.
#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Train every side of every bug (recorded runs are never redone;
    /// failed runs are retried), then compare each side with the reference
    /// and report.
    Run(StudyRunArgs),
    /// Show how many runs each side of each bug has recorded.
    Status(StudyStatusArgs),
}

/// Arguments of `reproml study run`.
#[derive(Debug, Args)]
pub struct StudyRunArgs {
    /// The study file (TOML).
    study: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// Runs trained in parallel (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: Option<u32>,
    /// Folder for the report (default: `<study name>-report`).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `reproml study status`.
#[derive(Debug, Args)]
pub struct StudyStatusArgs {
    /// The study file (TOML).
    study: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs a `reproml study` subcommand.
pub fn run(cmd: StudyCommand) -> Result<()> {
    match cmd {
        StudyCommand::Run(args) => run_study(args),
        StudyCommand::Status(args) => {
            let study = load_study(&args.study)?;
            let connection = args.server.connect_existing()?;
            let origin = args.study.display().to_string();
            for bug in progress(&connection.client, &study, &origin)? {
                let counts: Vec<String> = match &bug.recorded {
                    Some(recorded) => recorded
                        .iter()
                        .map(|(variant, n)| format!("{variant} {n}/{}", study.runs))
                        .collect(),
                    None => vec!["not started".into()],
                };
                println!("{:<32} {}", bug.experiment, counts.join("   "));
            }
            Ok(())
        }
    }
}

fn run_study(args: StudyRunArgs) -> Result<()> {
    let study = load_study(&args.study)?;
    let origin = args.study.display().to_string();
    let connection = args.server.connect()?;
    let client = &connection.client;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let mut wanted = Vec::new();
    for bug in &study.bugs {
        let id = study.spec(bug, &origin)?.id;
        for side in study.sides.iter().filter(|s| bug.artifact(s).is_some()) {
            wanted.push((
                id.clone(),
                side.clone(),
                reproml_core::selection::RunSelection::first(study.runs),
            ));
        }
    }
    crate::interrupt::on_interrupt(client, wanted);
    let outcome = run_study_runs(client, &study, &origin, jobs, &Bars::new(false))?;
    // Exactly the study's experiments: another study's whose name shares
    // the prefix must not join this one's family of tests.
    let ids: Vec<String> = study
        .bugs
        .iter()
        .map(|bug| study.spec(bug, &origin).map(|s| s.id.to_string()))
        .collect::<Result<_, _>>()?;
    let (mut rows, planned) = recorded_rows(client, &ids, None)?;
    // A side whose every run failed has nothing to compare: compare the
    // sides that have runs, and say which are missing.
    let mut variants_of = std::collections::BTreeMap::new();
    let mut uncompared = Vec::new();
    for id in &ids {
        let present: Vec<String> = study
            .sides
            .iter()
            .filter(|side| {
                rows.iter()
                    .any(|r| r.experiment.as_str() == id && r.variant == **side)
            })
            .map(ToString::to_string)
            .collect();
        if present.len() < study.sides.len() {
            uncompared.push(format!(
                "{id} has no runs of {}",
                study
                    .sides
                    .iter()
                    .filter(|s| !present.contains(&s.to_string()))
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if present.len() >= 2 && present[0] == study.reference().as_str() {
            variants_of.insert(id.clone(), present);
        } else {
            rows.retain(|r| r.experiment.as_str() != id);
        }
    }
    if rows.is_empty() {
        bail!(
            "no experiment of the study has runs of the reference and another side to compare ({}); \
             run the study again to retry the failed runs",
            uncompared.join("; ")
        );
    }
    let options = CompareOptions {
        variants_of,
        all_pairs: study.comparisons == Comparisons::AllPairs,
        expected_runs: planned,
        ..CompareOptions::default()
    };
    let report = compare(&rows, &options)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}-report", study.name)));
    let specs = crate::output::specs_of(client, &rows)?;
    let provenance = crate::output::provenance(&rows, &specs);
    let page = write_report(
        &out,
        &report,
        &rows,
        &format!("Study {}", study.name),
        &provenance,
    )
    .with_context(|| format!("cannot write the report into {}", out.display()))?;
    print_summary(&report);
    println!("\nreport: {}", page.display());
    if !uncompared.is_empty() {
        eprintln!("not compared for want of runs: {}", uncompared.join("; "));
    }
    if !outcome.unfinished.is_empty() {
        bail!(
            "some runs still fail after {} retries: {}; run the study again to retry them",
            study.retries,
            outcome.unfinished.join("; ")
        );
    }
    Ok(())
}
