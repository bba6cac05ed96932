//! `reproml study`: run a whole study — every bug's buggy and corrected
//! variants, N runs each, resumable — then compare and report.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::MultiProgress;
use reproml_core::VariantLabel;
use reproml_report::{CompareOptions, compare, write_report};
use reproml_study::{ArtifactSpec, Study};
use reproml_train::Fault;

use super::compare::{print_summary, rows_from_server};
use super::connect::ServerArgs;
use super::run::{VariantJob, threads_per_run, train_variant};

/// What `reproml study` can do.
#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Train every bug's buggy and corrected variants (recorded runs are
    /// never redone; failed runs are retried), then compare and report.
    Run(StudyRunArgs),
    /// Show how many runs each bug's variants have recorded.
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
    #[arg(long)]
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

const VARIANTS: [&str; 2] = ["corrected", "buggy"];

fn load(path: &std::path::Path) -> Result<Study> {
    let text = super::read_text_file(path, 1 << 20, "study file")?;
    Ok(Study::from_toml(&text, &path.display().to_string())?)
}

/// Runs a `command` artifact for the missing runs of one variant; returns
/// the runs still missing afterwards.
fn run_command(
    client: &reproml_client::Client,
    experiment: &reproml_client::Experiment,
    variant: &VariantLabel,
    command: &str,
    env: &std::collections::BTreeMap<String, String>,
    runs: u32,
) -> Result<Vec<u32>> {
    let missing = |client: &reproml_client::Client| -> Result<Vec<u32>> {
        let done: std::collections::BTreeSet<u32> = client
            .runs(&experiment.spec.id, Some(variant))?
            .into_iter()
            .map(|r| r.run)
            .collect();
        Ok((0..runs).filter(|r| !done.contains(r)).collect())
    };
    let todo = missing(client)?;
    if todo.is_empty() {
        eprintln!("{runs} run(s) of {variant} already recorded; skipping them");
        return Ok(todo);
    }
    let list = todo
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let line = command
        .replace("{server}", client.base())
        .replace("{experiment}", experiment.spec.id.as_str())
        .replace("{variant}", variant.as_str())
        .replace("{runs}", &list);
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .envs(env)
        .status()
        .with_context(|| format!("cannot start {line:?}"))?;
    if !status.success() {
        eprintln!(
            "the artifact command for {} / {variant} ended with {status}",
            experiment.spec.id
        );
    }
    missing(client)
}

/// Runs a `reproml study` subcommand.
pub fn run(cmd: StudyCommand) -> Result<()> {
    match cmd {
        StudyCommand::Run(args) => run_study(args),
        StudyCommand::Status(args) => {
            let study = load(&args.study)?;
            let connection = args.server.connect()?;
            let origin = args.study.display().to_string();
            for bug in &study.bugs {
                let spec = study.spec(bug, &origin)?;
                let counts: Vec<String> = match connection.client.runs(&spec.id, None) {
                    Ok(runs) => VARIANTS
                        .iter()
                        .map(|v| {
                            format!(
                                "{v} {}/{}",
                                runs.iter().filter(|r| r.variant.as_str() == *v).count(),
                                study.runs
                            )
                        })
                        .collect(),
                    Err(e) if e.code() == Some("experiment_not_found") => {
                        vec!["not started".into()]
                    }
                    Err(e) => return Err(e.into()),
                };
                println!("{:<32} {}", spec.id, counts.join("   "));
            }
            Ok(())
        }
    }
}

fn run_study(args: StudyRunArgs) -> Result<()> {
    let study = load(&args.study)?;
    let origin = args.study.display().to_string();
    let connection = args.server.connect()?;
    let client = &connection.client;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let progress = MultiProgress::new();
    let mut unfinished = Vec::new();
    for bug in &study.bugs {
        let spec = study.spec(bug, &origin)?;
        let (experiment, _) = client
            .create_experiment(&spec)
            .with_context(|| format!("cannot create the experiment of bug {}", bug.id))?;
        for (variant, artifact) in VARIANTS.iter().zip([&bug.corrected, &bug.buggy]) {
            let variant: VariantLabel = variant.parse()?;
            let fault: Fault = match artifact {
                ArtifactSpec::Builtin { fault } => fault.as_deref().unwrap_or("none").parse()?,
                ArtifactSpec::Command { command, env } => {
                    let mut failures =
                        run_command(client, &experiment, &variant, command, env, study.runs)?;
                    for _ in 0..study.retries {
                        if failures.is_empty() {
                            break;
                        }
                        failures =
                            run_command(client, &experiment, &variant, command, env, study.runs)?;
                    }
                    if !failures.is_empty() {
                        unfinished.push(format!("{} / {variant}: runs {failures:?}", spec.id));
                    }
                    continue;
                }
            };
            let job = VariantJob {
                experiment: &experiment,
                variant: &variant,
                runs: 0..study.runs,
                jobs,
                threads: threads_per_run(jobs, None),
                fault: &fault,
                json: false,
            };
            let mut failures = train_variant(client, &job, &progress)?;
            for attempt in 1..=study.retries {
                if failures.is_empty() {
                    break;
                }
                progress.suspend(|| {
                    eprintln!(
                        "retrying {} failed run(s) of {} / {variant} (attempt {attempt})",
                        failures.len(),
                        spec.id
                    )
                });
                failures = train_variant(client, &job, &progress)?;
            }
            if !failures.is_empty() {
                unfinished.push(format!("{} / {variant}: runs {failures:?}", spec.id));
            }
        }
    }
    let (rows, expected) = rows_from_server(client, &[], Some(&format!("{}-", study.name)))?;
    let options = CompareOptions {
        expected_runs: expected,
        ..CompareOptions::default()
    };
    let report = compare(&rows, &options)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}-report", study.name)));
    let page = write_report(&out, &report, &rows, &format!("Study {}", study.name))
        .with_context(|| format!("cannot write the report into {}", out.display()))?;
    print_summary(&report);
    println!("\nreport: {}", page.display());
    if !unfinished.is_empty() {
        bail!(
            "some runs still fail after {} retries: {}; run the study again to retry them",
            study.retries,
            unfinished.join("; ")
        );
    }
    Ok(())
}
