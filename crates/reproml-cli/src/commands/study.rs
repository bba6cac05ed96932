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
use reproml_train::device::ComputeDevice;

use crate::connect::ServerArgs;
use crate::output::print_summary;
use crate::progress::Bars;

/// What `reproml study` can do.
#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Train every side of every bug (recorded runs are never redone;
    /// failed runs are retried), then compare each side with the reference
    /// and report.
    #[command(
        after_long_help = "Examples:\n  reproml study run examples/studies/calibration.toml --embedded --db study.db\n  reproml study run study.toml --server http://127.0.0.1:7878 \\\n      --corpus corpus.json --labels labels.jsonl\n  reproml study run study.toml --server https://login01:7878 --executor slurm \\\n      --partition gpu --time 04:00:00 --slurm-dir /scratch/study-slurm"
    )]
    Run(StudyRunArgs),
    /// Show how many runs each side of each bug has recorded, and the runs
    /// failing with their latest error.
    #[command(
        after_long_help = "Examples:\n  reproml study status examples/studies/calibration.toml --embedded --db study.db\n  reproml study status study.toml --server http://127.0.0.1:7878 --json"
    )]
    Status(StudyStatusArgs),
    /// Write Kubernetes manifests for the study's missing runs: one Indexed
    /// Job per side (a completion index per run), as JSON that `kubectl
    /// apply -f DIR` reads; regenerate them after a failure to get only
    /// what is still missing.
    #[command(
        after_long_help = "Examples:\n  reproml study manifests study.toml --kubernetes --server https://reproml.lab:7878 \\\n      --image registry.lab/reproml:0.1.0 --secret reproml --gpus 1 --out k8s\n  kubectl apply -f k8s"
    )]
    Manifests(Box<StudyManifestsArgs>),
}

/// Arguments of `reproml study manifests`.
#[derive(Debug, Args)]
pub struct StudyManifestsArgs {
    /// The study file (TOML).
    study: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    labelled: crate::studies::Labelled,
    /// Kubernetes Indexed Jobs (the only format so far).
    #[arg(long, required = true)]
    kubernetes: bool,
    /// The container image with `reproml` (and the sides' clients).
    #[arg(long)]
    image: String,
    /// The server's URL as pods reach it (default: --server's).
    #[arg(long, value_name = "URL")]
    task_server: Option<String>,
    /// A Secret holding `token` and `ca.pem`, mounted at /etc/reproml and
    /// named by REPROML_TOKEN_FILE and REPROML_CA_CERT in each pod.
    #[arg(long)]
    secret: Option<String>,
    /// GPUs per pod (nvidia.com/gpu).
    #[arg(long, default_value_t = 0)]
    gpus: u32,
    /// Where built-in sides train in the pods: cpu, cuda or cuda:N
    /// (default: cuda with --gpus, else cpu; the image's `reproml` then
    /// needs `--features cuda`). Other sides' clients choose their own.
    #[arg(long)]
    device: Option<ComputeDevice>,
    /// Pods of one Job at once (default: all of its indexes).
    #[arg(long)]
    parallelism: Option<u32>,
    /// Runs each index trains (default: the study's, else 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    runs_per_task: Option<u32>,
    /// The path of `reproml` inside the image.
    #[arg(long, default_value = "reproml")]
    reproml: PathBuf,
    /// Folder for the manifests (default: `<study name>-kubernetes`).
    #[arg(long)]
    out: Option<PathBuf>,
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
    #[command(flatten)]
    labelled: crate::studies::Labelled,
    /// Print the comparison as JSON instead of the terminal summary.
    #[arg(long)]
    json: bool,
    /// Exit with status 3 when any bug's sides differ (after the report).
    #[arg(long)]
    fail_on_difference: bool,
    /// Where built-in sides train: cpu (bit-repeatable), cuda or cuda:N
    /// (builds with `--features cuda`), in this process or in each Slurm
    /// task. Recorded in every run's fingerprint. Other sides' clients
    /// choose their own.
    #[arg(long, default_value = "cpu")]
    device: ComputeDevice,
    /// Where the runs are trained: in this process (local), as a Slurm job
    /// array per side (slurm: submitted, waited for, resubmitted for what
    /// is missing), or only written as job scripts to submit by hand
    /// (print). Slurm needs a server every node reaches (--server).
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    executor: Executor,
    #[command(flatten)]
    slurm: SlurmArgs,
}

/// Where a study's runs are trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Executor {
    /// In this process (built-in sides) or as child processes (commands).
    Local,
    /// As Slurm job arrays.
    Slurm,
    /// Job scripts written, nothing submitted.
    Print,
}

/// Slurm settings of `study run` (each overrides the study's `[slurm]`).
#[derive(Debug, Args)]
struct SlurmArgs {
    /// Folder for job scripts, task logs and the list of jobs, on a file
    /// system every node can write (default: `<study name>-slurm`).
    #[arg(long, value_name = "DIR")]
    slurm_dir: Option<PathBuf>,
    /// `sbatch --partition`.
    #[arg(long)]
    partition: Option<String>,
    /// `sbatch --time` of each array task, e.g. 02:00:00.
    #[arg(long)]
    time: Option<String>,
    /// `sbatch --gres`, e.g. gpu:1.
    #[arg(long)]
    gres: Option<String>,
    /// Runs each array task trains (default 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    runs_per_task: Option<u32>,
    /// Seconds between two looks at Slurm's queue and the server.
    #[arg(long, default_value_t = 10, hide = true)]
    poll_seconds: u64,
}

/// Arguments of `reproml study status`.
#[derive(Debug, Args)]
pub struct StudyStatusArgs {
    /// The study file (TOML).
    study: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    labelled: crate::studies::Labelled,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The folder of `study run --executor slurm`: its jobs' tasks are
    /// shown as Slurm sees them (default: `<study name>-slurm`, if there).
    #[arg(long, value_name = "DIR")]
    slurm_dir: Option<PathBuf>,
}

/// One bug's progress, as `study status --json` prints it.
#[derive(serde::Serialize)]
struct BugStatus {
    bug: String,
    experiment: String,
    /// Recorded runs per side; absent when the experiment does not exist yet.
    recorded: Option<std::collections::BTreeMap<String, u32>>,
    runs: u32,
    complete: bool,
    /// Runs reported failed and not recorded since, per side, with the
    /// latest error.
    failing: std::collections::BTreeMap<String, Vec<FailingRun>>,
}

/// A run that failed and has no result yet.
#[derive(serde::Serialize)]
struct FailingRun {
    run: u32,
    reports: u32,
    last_error: String,
    last_failed_at: String,
}

/// Runs a `reproml study` subcommand.
pub fn run(cmd: StudyCommand) -> Result<()> {
    match cmd {
        StudyCommand::Run(args) => run_study(args),
        StudyCommand::Manifests(args) => manifests(*args),
        StudyCommand::Status(args) => {
            let study = args.labelled.load(&args.study)?;
            let connection = args.server.connect_existing()?;
            let origin = args.study.display().to_string();
            let progress = progress(&connection.client, &study, &origin)?;
            let jobs = reproml_runner::slurm::submitted_jobs(
                &args
                    .slurm_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(format!("{}-slurm", study.name))),
            );
            if args.json {
                let bugs: Vec<BugStatus> = study
                    .bugs
                    .iter()
                    .zip(&progress)
                    .map(|(bug, p)| BugStatus {
                        bug: bug.id.clone(),
                        experiment: p.experiment.to_string(),
                        recorded: p
                            .recorded
                            .as_ref()
                            .map(|r| r.iter().map(|(v, n)| (v.to_string(), *n)).collect()),
                        runs: study.runs,
                        complete: p.complete(study.runs),
                        failing: p.failing.iter().fold(
                            std::collections::BTreeMap::new(),
                            |mut by, f| {
                                by.entry(f.variant.to_string())
                                    .or_insert_with(Vec::new)
                                    .push(FailingRun {
                                        run: f.run.get(),
                                        reports: f.reports,
                                        last_error: f.last_error.clone(),
                                        last_failed_at: f.last_failed_at.clone(),
                                    });
                                by
                            },
                        ),
                    })
                    .collect();
                return crate::output::print_json(&bugs);
            }
            for bug in progress {
                let counts: Vec<String> = match &bug.recorded {
                    Some(recorded) => recorded
                        .iter()
                        .map(|(variant, n)| format!("{variant} {n}/{}", study.runs))
                        .collect(),
                    None => vec!["not started".into()],
                };
                println!("{:<32} {}", bug.experiment, counts.join("   "));
                for job in jobs
                    .iter()
                    .filter(|j| j.experiment == bug.experiment.as_str())
                {
                    // Only the pending and running tasks: Slurm forgets
                    // ended ones, and the server's counts above are the
                    // record of what they did.
                    let state =
                        match reproml_runner::slurm::active_tasks(std::slice::from_ref(&job.job)) {
                            Ok((0, 0)) => "ended".to_owned(),
                            Ok((pending, running)) => {
                                format!("{pending} pending, {running} running")
                            }
                            Err(e) => format!("unknown ({e})"),
                        };
                    println!(
                        "  {}: Slurm job {} ({} task(s)): {state}",
                        job.variant, job.job, job.tasks
                    );
                }
                // Per side, its latest failure: enough to see what broke.
                for side in &study.sides {
                    let mine: Vec<_> = bug.failing.iter().filter(|f| f.variant == *side).collect();
                    if let Some(f) = mine
                        .iter()
                        .max_by(|a, b| a.last_failed_at.cmp(&b.last_failed_at))
                    {
                        println!(
                            "  {side}: {} run(s) failing; run {} at {}: {}",
                            mine.len(),
                            f.run,
                            f.last_failed_at,
                            first_line(&f.last_error)
                        );
                    }
                }
            }
            Ok(())
        }
    }
}

/// The first line of an error, cut to 200 characters: a status line, not
/// a log (`--json` has it whole).
///
/// Control characters are shown escaped: the text is a client's, and a
/// terminal would obey them.
fn first_line(error: &str) -> String {
    let line = error.lines().next().unwrap_or_default();
    let cut = match line.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_owned(),
    };
    cut.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn manifests(args: StudyManifestsArgs) -> Result<()> {
    debug_assert!(args.kubernetes);
    if args.server.embedded || args.server.db.is_some() {
        return Err(crate::connect::usage(
            "manifests need a server the pods reach: start `reproml server` and give --server URL",
        ));
    }
    let study = args.labelled.load(&args.study)?;
    let origin = args.study.display().to_string();
    let connection = args.server.connect()?;
    let client = &connection.client;
    let server = args
        .task_server
        .clone()
        .unwrap_or_else(|| client.base().to_owned());
    let settings = reproml_runner::kubernetes::KubernetesSettings {
        image: args.image.clone(),
        secret: args.secret.clone(),
        gpus: args.gpus,
        parallelism: args.parallelism,
        retries: study.retries,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-kubernetes", study.name)));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let device = args.device.unwrap_or(if args.gpus > 0 {
        ComputeDevice::Cuda(0)
    } else {
        ComputeDevice::Cpu
    });
    let all = reproml_core::selection::RunSelection::first(study.runs);
    let mut written = 0;
    for (experiment, variant, artifact) in
        reproml_runner::study::study_sides(client, &study, &origin)?
    {
        let missing = reproml_runner::pool::missing_runs(client, &experiment, &variant, &all)?;
        if missing.is_empty() {
            continue;
        }
        let job = reproml_runner::slurm::side_job(
            &experiment,
            &variant,
            &artifact,
            &missing,
            &reproml_runner::slurm::TaskSettings {
                server: &server,
                reproml: &args.reproml,
                runs_per_task: args
                    .runs_per_task
                    .or(study.slurm.runs_per_task)
                    .unwrap_or(1),
                device,
            },
        );
        let manifest = reproml_runner::kubernetes::indexed_job(&job, &settings);
        let name = manifest["metadata"]["name"]
            .as_str()
            .unwrap_or("job")
            .to_owned();
        let path = out.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        written += 1;
    }
    println!(
        "{written} Indexed Job(s) written to {}: `kubectl apply -f {}`; when they are done, \
         `reproml study run` (or `reproml report`) compares",
        out.display(),
        out.display()
    );
    Ok(())
}

fn run_study(args: StudyRunArgs) -> Result<()> {
    let study = args.labelled.load(&args.study)?;
    let origin = args.study.display().to_string();
    if args.executor == Executor::Local {
        // Probed now: a missing GPU is an error before any run starts.
        reproml_train::device::select(args.device)?;
    }
    let connection = args.server.connect()?;
    let client = &connection.client;
    if !crate::output::quiet() {
        // The study's page of the dashboard (an embedded server's lives
        // as long as this command).
        let sides: usize = study
            .bugs
            .iter()
            .map(|bug| {
                study
                    .sides
                    .iter()
                    .filter(|s| bug.artifact(s).is_some())
                    .count()
            })
            .sum();
        eprintln!(
            "progress of the study: {}/#/progress?study={}-&planned={}",
            client.base().trim_end_matches('/'),
            study.name,
            sides * study.runs as usize
        );
    }
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
    let outcome = match args.executor {
        Executor::Local => run_study_runs(client, &study, &origin, jobs, &Bars::new(false))?,
        Executor::Slurm | Executor::Print => {
            if args.server.embedded || args.server.db.is_some() {
                return Err(crate::connect::usage(
                    "--executor slurm and print need a server every compute node reaches: \
                     start `reproml server` (docs/cluster.md) and give --server URL",
                ));
            }
            let mut settings = study.slurm.clone();
            let flags = &args.slurm;
            for (setting, flag) in [
                (&mut settings.partition, &flags.partition),
                (&mut settings.time, &flags.time),
                (&mut settings.gres, &flags.gres),
            ] {
                if flag.is_some() {
                    setting.clone_from(flag);
                }
            }
            settings.runs_per_task = flags.runs_per_task.or(settings.runs_per_task);
            let dir = flags
                .slurm_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}-slurm", study.name)));
            let plan = reproml_runner::slurm::SlurmRun {
                settings,
                dir: std::path::absolute(&dir).unwrap_or(dir),
                reproml: std::env::current_exe().context("cannot find the reproml binary")?,
                submit: args.executor == Executor::Slurm,
                poll: std::time::Duration::from_secs(flags.poll_seconds.max(1)),
                // Paths the tasks need whatever the cluster passes on.
                env: [
                    ("REPROML_TOKEN_FILE", args.server.token_file()),
                    ("REPROML_CA_CERT", args.server.ca_cert()),
                ]
                .into_iter()
                .filter_map(|(key, path)| {
                    let path = std::path::absolute(path?).ok()?;
                    Some((key.to_owned(), path.display().to_string()))
                })
                .collect(),
                device: args.device,
            };
            if args.device == ComputeDevice::Cpu
                && plan
                    .settings
                    .gres
                    .as_deref()
                    .is_some_and(|g| g.contains("gpu"))
            {
                eprintln!(
                    "warning: the jobs ask for GPUs (--gres {}), but built-in sides train on the \
                     CPU; give --device cuda to train them on the GPU",
                    plan.settings.gres.as_deref().unwrap_or_default()
                );
            }
            let outcome = reproml_runner::slurm::run_study(
                client,
                &study,
                &origin,
                &plan,
                &Bars::new(false),
            )?;
            if args.executor == Executor::Print {
                println!(
                    "job scripts written to {}; submit each with `sbatch FILE`, then run this \
                     command again (recorded runs are never trained again) or `reproml report`",
                    plan.dir.display()
                );
                return Ok(());
            }
            outcome
        }
    };
    // Exactly the study's experiments: another study's whose name shares
    // the prefix must not join this one's family of tests.
    let ids: Vec<String> = study
        .bugs
        .iter()
        .map(|bug| study.spec(bug, &origin).map(|s| s.id.to_string()))
        .collect::<Result<_, _>>()?;
    let (mut rows, planned) = recorded_rows(client, &ids, None)?;
    let (variants_of, uncompared) = crate::studies::compared_sides(&study, &ids, &mut rows);
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
    if args.json {
        crate::output::print_json(&report)?;
        if !crate::output::quiet() {
            eprintln!("report: {}", page.display());
        }
    } else {
        print_summary(&report);
        println!("\nreport: {}", page.display());
    }
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
    crate::output::gate(&report, args.fail_on_difference)
}
