//! Driving a study: every bug's experiment, each of its sides (variants)
//! trained by its artifact in the study's order, failed runs retried,
//! recorded runs never redone (so a stopped study resumes), then the same
//! for the next bug.

use std::collections::BTreeMap;

use reproml_client::{Client, Experiment};
use reproml_core::fault::Fault;
use reproml_core::selection::RunSelection;
use reproml_core::{ExperimentId, RunIndex, VariantLabel};
use reproml_study::{ArtifactSpec, Study};

use crate::pool::{VariantPlan, missing_runs, threads_per_run, train_variant};
use crate::{Event, Observer, RunnerError};

/// How a study's training went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudyOutcome {
    /// `experiment / variant: runs [..]` for every variant with runs that
    /// still fail after the retries.
    pub unfinished: Vec<String>,
}

/// Trains every side of every bug with `jobs` parallel runs for builtin
/// artifacts. `origin` names the study file in errors.
pub fn run_study(
    client: &Client,
    study: &Study,
    origin: &str,
    jobs: u32,
    observer: &dyn Observer,
) -> Result<StudyOutcome, RunnerError> {
    let mut outcome = StudyOutcome::default();
    for bug in &study.bugs {
        let experiment = bug_experiment(client, study, bug, origin)?;
        let spec = &experiment.spec;
        for variant in &study.sides {
            let Some(artifact) = bug.artifact(variant) else {
                continue;
            };
            observer.event(Event::SideStarted {
                experiment: spec.id.clone(),
                variant: variant.clone(),
                artifact: describe(artifact),
            });
            let failed = match artifact {
                ArtifactSpec::Builtin { fault } => builtin(
                    client,
                    study,
                    &experiment,
                    variant,
                    fault.as_ref().unwrap_or(&Fault::None),
                    jobs,
                    observer,
                )?,
                ArtifactSpec::Command { command, env } => {
                    let side = CommandSide {
                        experiment: &experiment,
                        variant,
                        command,
                        env,
                    };
                    side.run_with_retries(client, study, observer)?
                }
                ArtifactSpec::Python { env, .. } => {
                    let command = artifact.python_command().unwrap_or_default();
                    let side = CommandSide {
                        experiment: &experiment,
                        variant,
                        command: &command,
                        env,
                    };
                    side.run_with_retries(client, study, observer)?
                }
            };
            if !failed.is_empty() {
                outcome
                    .unfinished
                    .push(format!("{} / {variant}: runs {failed:?}", spec.id));
            }
        }
    }
    Ok(outcome)
}

/// The experiment of `bug`, created on the server when missing.
fn bug_experiment(
    client: &Client,
    study: &Study,
    bug: &reproml_study::StudyBug,
    origin: &str,
) -> Result<Experiment, RunnerError> {
    let spec = study.spec(bug, origin)?;
    let (experiment, _) =
        client
            .create_experiment(&spec)
            .map_err(|source| RunnerError::CreateExperiment {
                bug: bug.id.clone(),
                source,
            })?;
    Ok(experiment)
}

/// Every side of every bug, in the study's order, with its experiment
/// (created on the server when missing) and artifact: what a cluster
/// executor submits.
pub fn study_sides(
    client: &Client,
    study: &Study,
    origin: &str,
) -> Result<Vec<(Experiment, VariantLabel, ArtifactSpec)>, RunnerError> {
    let mut sides = Vec::new();
    for bug in &study.bugs {
        let experiment = bug_experiment(client, study, bug, origin)?;
        for variant in &study.sides {
            if let Some(artifact) = bug.artifact(variant) {
                sides.push((experiment.clone(), variant.clone(), artifact.clone()));
            }
        }
    }
    Ok(sides)
}

/// A side's artifact in words, for the study's log.
fn describe(artifact: &ArtifactSpec) -> String {
    match artifact {
        ArtifactSpec::Builtin { fault: None } => "the built-in engine".into(),
        ArtifactSpec::Builtin { fault: Some(f) } => format!("the built-in engine with fault {f}"),
        ArtifactSpec::Command { command, .. } => format!("command `{command}`"),
        ArtifactSpec::Python {
            python, threads, ..
        } => format!(
            "PyTorch through `{python} -m reproml.run` at {} thread(s)",
            threads.unwrap_or(1)
        ),
    }
}

/// Trains a builtin side, retrying failed runs; returns the runs that
/// still fail.
fn builtin(
    client: &Client,
    study: &Study,
    experiment: &Experiment,
    variant: &VariantLabel,
    fault: &Fault,
    jobs: u32,
    observer: &dyn Observer,
) -> Result<Vec<RunIndex>, RunnerError> {
    let plan = VariantPlan {
        experiment,
        variant,
        runs: RunSelection::first(study.runs),
        jobs,
        threads: threads_per_run(jobs, None),
        fault,
    };
    let mut failed = train_variant(client, &plan, observer)?.failed;
    for attempt in 1..=study.retries {
        if failed.is_empty() {
            break;
        }
        observer.event(Event::Retrying {
            experiment: experiment.spec.id.clone(),
            variant: variant.clone(),
            attempt,
            runs: failed.len(),
        });
        failed = train_variant(client, &plan, observer)?.failed;
    }
    Ok(failed)
}

/// One side of a bug trained by a `command` artifact.
struct CommandSide<'a> {
    experiment: &'a Experiment,
    variant: &'a VariantLabel,
    command: &'a str,
    env: &'a BTreeMap<String, String>,
}

impl CommandSide<'_> {
    /// Runs the command for the missing runs, then again for those still
    /// missing, up to the study's retries; returns the runs still missing.
    fn run_with_retries(
        &self,
        client: &Client,
        study: &Study,
        observer: &dyn Observer,
    ) -> Result<Vec<RunIndex>, RunnerError> {
        let mut failed = self.run(client, study.runs, observer)?;
        for _ in 0..study.retries {
            if failed.is_empty() {
                break;
            }
            failed = self.run(client, study.runs, observer)?;
        }
        Ok(failed)
    }

    /// Runs the command once for the missing runs; returns those still
    /// missing afterwards.
    fn run(
        &self,
        client: &Client,
        runs: u32,
        observer: &dyn Observer,
    ) -> Result<Vec<RunIndex>, RunnerError> {
        let id = &self.experiment.spec.id;
        let all = RunSelection::first(runs);
        let todo = missing_runs(client, self.experiment, self.variant, &all)?;
        let skipped = runs as usize - todo.len();
        if skipped > 0 {
            observer.event(Event::Skipped {
                experiment: id.clone(),
                variant: self.variant.clone(),
                runs: skipped,
            });
        }
        if todo.is_empty() {
            return Ok(todo);
        }
        let line = command_line(self.command, client.base(), id, self.variant, &todo);
        observer.event(Event::CommandStarted {
            experiment: id.clone(),
            variant: self.variant.clone(),
            line: line.clone(),
        });
        let reports_before = self.failure_reports(client);
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .envs(self.env)
            .status()
            .map_err(|source| RunnerError::Command {
                line: line.clone(),
                source,
            })?;
        if !status.success() {
            observer.event(Event::CommandFailed {
                experiment: id.clone(),
                variant: self.variant.clone(),
                status: status.to_string(),
            });
        }
        let missing = missing_runs(client, self.experiment, self.variant, &all)?;
        if !status.success() && !interrupted(status) {
            // A client that died before it could report (a crash, an
            // import error) is reported here, on the first run it left
            // out, so that the dashboard shows the side failing.
            if let Some(&run) = missing.first()
                && self.failure_reports(client) == reports_before
                && let Some(seed) = self.experiment.run_seed(run)
            {
                let error = format!(
                    "the side's command exited with {status} before recording {} run(s); its output is in the log of `reproml study run`: {line}",
                    missing.len()
                );
                let _ = client.post_failure(id, self.variant, run, seed, &error);
            }
        }
        Ok(missing)
    }

    /// The failure reports of this side so far (0 when the server cannot
    /// say: the report is only for the dashboard).
    fn failure_reports(&self, client: &Client) -> u64 {
        client
            .failures(&self.experiment.spec.id)
            .map(|all| {
                all.iter()
                    .filter(|f| &f.variant == self.variant)
                    .map(|f| u64::from(f.reports))
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Whether the command ended because of Ctrl-C or a termination signal
/// (directly, or as a shell reports it: 128 + the signal): an interruption,
/// not a failure to report.
fn interrupted(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    matches!(status.signal(), Some(SIGINT | SIGTERM))
        || matches!(status.code(), Some(c) if c == 128 + SIGINT || c == 128 + SIGTERM)
}

/// A `command` artifact's line with its placeholders filled in:
/// `{server}`, `{experiment}`, `{variant}` and `{runs}` (the missing runs
/// as a run selection, e.g. `0,2-3`, which `reproml run --runs` and
/// `python -m reproml.run --runs` both read), in one pass, every value
/// quoted for `sh`.
///
/// ```
/// use reproml_core::RunIndex;
/// use reproml_runner::study::command_line;
/// let line = command_line(
///     "client --url {server} -e {experiment} -v {variant} -r {runs}",
///     "http://127.0.0.1:7878",
///     &"s-b1".parse().unwrap(),
///     &"buggy".parse().unwrap(),
///     &[0, 2, 3].map(RunIndex::new),
/// );
/// assert_eq!(line, "client --url 'http://127.0.0.1:7878' -e 's-b1' -v 'buggy' -r '0,2-3'");
/// ```
pub fn command_line(
    template: &str,
    server: &str,
    experiment: &ExperimentId,
    variant: &VariantLabel,
    runs: &[RunIndex],
) -> String {
    let list = RunSelection::from_indices(runs.iter().map(|r| r.get())).to_string();
    reproml_study::template::fill(
        template,
        &[
            ("server", server),
            ("experiment", experiment.as_str()),
            ("variant", variant.as_str()),
            ("runs", &list),
        ],
    )
}

/// How far one bug of a study is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BugProgress {
    /// The bug's experiment.
    pub experiment: ExperimentId,
    /// Recorded runs per side (in the study's order); `None` when the
    /// experiment is not on the server yet.
    pub recorded: Option<Vec<(VariantLabel, u32)>>,
    /// Runs reported failed and not recorded since, by side then run.
    pub failing: Vec<reproml_client::FailureRecord>,
}

impl BugProgress {
    /// True when every variant has recorded `runs` runs.
    pub fn complete(&self, runs: u32) -> bool {
        self.recorded
            .as_ref()
            .is_some_and(|r| r.iter().all(|(_, n)| *n >= runs))
    }
}

/// How far every bug of `study` is, from the server's records.
pub fn progress(
    client: &Client,
    study: &Study,
    origin: &str,
) -> Result<Vec<BugProgress>, RunnerError> {
    study
        .bugs
        .iter()
        .map(|bug| {
            let experiment = study.spec(bug, origin)?.id;
            let recorded = match client.runs(&experiment, None) {
                Ok(runs) => Some(
                    study
                        .sides
                        .iter()
                        .map(|v| {
                            let n = runs.iter().filter(|r| r.variant == *v).count();
                            (v.clone(), n as u32)
                        })
                        .collect(),
                ),
                Err(e) if e.code() == Some(reproml_api::ProblemCode::ExperimentNotFound) => None,
                Err(e) => return Err(e.into()),
            };
            let failing = match (&recorded, client.failures(&experiment)) {
                (None, _) => Vec::new(),
                (Some(_), Ok(all)) => all.into_iter().filter(|f| !f.recorded).collect(),
                // A server from before failure reports.
                (Some(_), Err(e)) if e.code() == Some(reproml_api::ProblemCode::RouteNotFound) => {
                    Vec::new()
                }
                (Some(_), Err(e)) => return Err(e.into()),
            };
            Ok(BugProgress {
                experiment,
                recorded,
                failing,
            })
        })
        .collect()
}
