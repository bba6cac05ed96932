//! `reproml run`: train an experiment's runs for one variant and report them.

use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reproml_client::{Client, Experiment};
use reproml_core::split::SplitName;
use reproml_core::{ExperimentId, RunIndex, VariantLabel};
use reproml_train::{Fault, ModelRegistry, PreparedSplit, RunSettings, Trained};
use serde::Serialize;

use super::connect::ServerArgs;

/// Arguments of `reproml run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The experiment.
    #[arg(long)]
    experiment: ExperimentId,
    /// Create the experiment from this spec if it does not exist (an
    /// existing one must have the same attributes).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// The variant (evaluation type) these runs belong to, e.g. buggy or corrected.
    #[arg(long)]
    variant: VariantLabel,
    /// Runs to train: `N`, `A..B` (B excluded) or `A-B` (B included); all
    /// of the experiment's runs when left out.
    #[arg(long, value_parser = parse_range)]
    runs: Option<Range<u32>>,
    /// Runs trained in parallel; the results are bit-identical to --jobs 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: u32,
    /// Threads each run's kernels use; default: the cores divided among
    /// the jobs. Results do not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    /// Print one JSON object per finished run on standard output.
    #[arg(long)]
    json: bool,
    /// Inject a defect (for calibrating a study): momentum-ignored,
    /// grad-scale[=EPS[@PARAM]], dropout-scale[=SCALE], tanh-offset[=OFFSET].
    /// Recorded in the fingerprint and the artifact.
    #[arg(long, default_value = "none")]
    fault: Fault,
}

/// Parses `N`, `A..B` or `A-B`.
pub fn parse_range(s: &str) -> Result<Range<u32>, String> {
    let bad = || format!("{s:?} is not a run range; use N, A..B (B excluded) or A-B (B included)");
    let num = |t: &str| t.trim().parse::<u32>().map_err(|_| bad());
    let range = if let Some((a, b)) = s.split_once("..") {
        num(a)?..num(b)?
    } else if let Some((a, b)) = s.split_once('-') {
        num(a)?..num(b)?.checked_add(1).ok_or_else(bad)?
    } else {
        let n = num(s)?;
        n..n + 1
    };
    if range.is_empty() {
        Err(bad())
    } else {
        Ok(range)
    }
}

/// One finished run, as `--json` prints it.
#[derive(Serialize)]
struct RunLine<'a> {
    experiment: &'a ExperimentId,
    variant: &'a VariantLabel,
    run: RunIndex,
    seed: u64,
    digest: &'a str,
    accuracy: f64,
    precision: f64,
    recall: f64,
    f1: f64,
    recorded: bool,
}

/// Looks the experiment up, creating it from `spec` when given.
pub fn experiment(
    client: &Client,
    id: &ExperimentId,
    spec: Option<&PathBuf>,
) -> Result<Experiment> {
    match spec {
        Some(path) => {
            let spec = super::spec::load(path)?;
            if spec.id != *id {
                bail!(
                    "{} describes experiment {}, not {id}",
                    path.display(),
                    spec.id
                );
            }
            Ok(client.create_experiment(&spec)?.0)
        }
        None => client.experiment(id).map_err(|e| match e.code() {
            Some("experiment_not_found") => {
                anyhow::anyhow!("experiment {id} does not exist; give --spec FILE to create it")
            }
            _ => e.into(),
        }),
    }
}

/// Fetches a run's verified splits and trains it.
pub fn train_run(
    client: &Client,
    experiment: &Experiment,
    run: RunIndex,
    fault: &Fault,
    on_epoch: &mut dyn FnMut(reproml_train::EpochProgress),
) -> Result<Trained> {
    let id = &experiment.spec.id;
    let seed = client.seed(id, run)?.seed;
    let train = client.split(id, run, SplitName::Train, seed)?;
    let test = client.split(id, run, SplitName::Test, seed)?;
    let network = ModelRegistry::default().build(
        experiment.spec.model.as_str(),
        train.header.shape,
        train.header.classes as usize,
    )?;
    let settings = RunSettings {
        spec: &experiment.spec,
        seed,
        classes: train.header.classes as usize,
        fault: fault.clone(),
    };
    Ok(reproml_train::train(
        &network,
        &PreparedSplit::new(&train),
        &PreparedSplit::new(&test),
        &settings,
        on_epoch,
    )?)
}

/// What to train for one variant.
pub struct VariantJob<'a> {
    /// The experiment.
    pub experiment: &'a Experiment,
    /// The variant the results are recorded under.
    pub variant: &'a VariantLabel,
    /// Runs wanted (recorded ones are skipped).
    pub runs: Range<u32>,
    /// Runs trained in parallel.
    pub jobs: u32,
    /// Kernel threads of each run.
    pub threads: usize,
    /// Defect to inject.
    pub fault: &'a Fault,
    /// Print one JSON line per finished run.
    pub json: bool,
}

/// Trains the missing runs of one variant with `jobs` workers and progress
/// bars, posting each result; returns the runs that failed.
pub fn train_variant(
    client: &Client,
    job: &VariantJob<'_>,
    progress: &MultiProgress,
) -> Result<Vec<RunIndex>> {
    let id = &job.experiment.spec.id;
    let all = 0..job.experiment.spec.runs;
    if job.runs.end > all.end {
        bail!(
            "experiment {id} has runs 0..{}; {}..{} is out of range",
            all.end,
            job.runs.start,
            job.runs.end
        );
    }
    let done: BTreeSet<RunIndex> = client
        .runs(id, Some(job.variant))?
        .into_iter()
        .map(|r| r.run)
        .collect();
    let todo: VecDeque<RunIndex> = job.runs.clone().filter(|r| !done.contains(r)).collect();
    let skipped = job.runs.len() - todo.len();
    if skipped > 0 {
        progress.suspend(|| {
            eprintln!(
                "{skipped} run(s) of {} already recorded; skipping them",
                job.variant
            )
        });
    }
    let overall = progress.add(ProgressBar::new(todo.len() as u64));
    overall.set_style(
        ProgressStyle::with_template(
            "{prefix:<32} [{bar:30}] {pos}/{len} runs ({elapsed}, eta {eta})",
        )
        .context("progress template")?
        .progress_chars("=> "),
    );
    overall.set_prefix(format!("{id} / {}", job.variant));
    let queue = Mutex::new(todo);
    let failures = Mutex::new(Vec::new());
    let stdout = Mutex::new(std::io::stdout());
    std::thread::scope(|scope| {
        for _ in 0..job.jobs {
            scope.spawn(|| {
                let bar = progress.add(ProgressBar::new(u64::from(job.experiment.spec.epochs)));
                bar.set_style(
                    ProgressStyle::with_template(
                        "  run {prefix:>4} [{bar:20}] epoch {pos}/{len} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                loop {
                    let Some(run) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
                    else {
                        break;
                    };
                    bar.reset();
                    bar.set_prefix(run.to_string());
                    let outcome = reproml_train::with_threads(job.threads, || {
                        train_run(client, job.experiment, run, job.fault, &mut |p| {
                            bar.set_position(u64::from(p.epoch));
                            bar.set_message(format!(
                                "loss {:.4} accuracy {:.4}",
                                p.loss, p.accuracy
                            ));
                        })
                    })
                    .and_then(|trained| {
                        let recorded = client.post_result(id, job.variant, run, &trained.result)?;
                        Ok((trained, recorded))
                    });
                    match outcome {
                        Ok((trained, recorded)) if job.json => {
                            let r = &trained.result;
                            let line = RunLine {
                                experiment: id,
                                variant: job.variant,
                                run,
                                seed: r.seed,
                                digest: r.final_digest().unwrap_or_default(),
                                accuracy: r.metrics.accuracy,
                                precision: r.metrics.precision,
                                recall: r.metrics.recall,
                                f1: r.metrics.f1,
                                recorded,
                            };
                            if let Ok(json) = serde_json::to_string(&line) {
                                let mut out = stdout.lock().unwrap_or_else(|p| p.into_inner());
                                let _ = writeln!(out, "{json}");
                                let _ = out.flush();
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            progress.suspend(|| eprintln!("run {run} failed: {e:#}"));
                            failures.lock().unwrap_or_else(|p| p.into_inner()).push(run);
                        }
                    }
                    overall.inc(1);
                }
                bar.finish_and_clear();
            });
        }
    });
    overall.finish();
    Ok(failures.into_inner().unwrap_or_default())
}

/// Kernel threads per run: `threads`, or the cores shared among the jobs.
pub fn threads_per_run(jobs: u32, threads: Option<u32>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    threads.map_or((cores / jobs.max(1) as usize).max(1), |t| t as usize)
}

/// Runs `reproml run`.
pub fn run(args: RunArgs) -> Result<()> {
    let connection = args.server.connect()?;
    let client = &connection.client;
    let experiment = experiment(client, &args.experiment, args.spec.as_ref())?;
    let job = VariantJob {
        experiment: &experiment,
        variant: &args.variant,
        runs: args.runs.clone().unwrap_or(0..experiment.spec.runs),
        jobs: args.jobs,
        threads: threads_per_run(args.jobs, args.threads),
        fault: &args.fault,
        json: args.json,
    };
    let failures = train_variant(client, &job, &MultiProgress::new())?;
    if !failures.is_empty() {
        bail!(
            "{} run(s) failed: {failures:?}; run the same command again to retry them",
            failures.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ranges() {
        assert_eq!(parse_range("3"), Ok(3..4));
        assert_eq!(parse_range("0..10"), Ok(0..10));
        assert_eq!(parse_range("2-4"), Ok(2..5));
        assert!(parse_range("4..2").is_err());
        assert!(parse_range("x").is_err());
    }
}
