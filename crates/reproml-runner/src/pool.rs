//! Training the missing runs of one variant with parallel workers.
//!
//! Recorded runs are never trained again, so an interrupted job resumes
//! where it stopped; a failed run does not stop the others and is
//! reported in the outcome for the caller to retry.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;

use reproml_client::{Client, Experiment, RecordedRun};
use reproml_core::fault::Fault;
use reproml_core::selection::RunSelection;
use reproml_core::{RunIndex, VariantLabel};

use crate::run::train_run;
use crate::{Event, Observer, RunnerError, describe};

/// What to train for one variant.
#[derive(Debug, Clone)]
pub struct VariantPlan<'a> {
    /// The experiment.
    pub experiment: &'a Experiment,
    /// The variant the results are recorded under.
    pub variant: &'a VariantLabel,
    /// Runs wanted (recorded ones are skipped).
    pub runs: RunSelection,
    /// Runs trained in parallel.
    pub jobs: u32,
    /// Kernel threads of each run.
    pub threads: usize,
    /// Defect to inject.
    pub fault: &'a Fault,
}

/// How a variant's training went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariantOutcome {
    /// Runs recorded by this call.
    pub recorded: Vec<RunIndex>,
    /// Runs that were recorded before and skipped.
    pub skipped: usize,
    /// Runs that failed, ascending.
    pub failed: Vec<RunIndex>,
}

/// Kernel threads per run: `threads`, or the cores shared among the jobs.
pub fn threads_per_run(jobs: u32, threads: Option<u32>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    threads.map_or((cores / jobs.max(1) as usize).max(1), |t| t as usize)
}

/// The runs of `wanted` that `variant` has not recorded yet.
pub fn missing_runs(
    client: &Client,
    experiment: &Experiment,
    variant: &VariantLabel,
    wanted: &RunSelection,
) -> Result<Vec<RunIndex>, RunnerError> {
    let recorded = client.runs(&experiment.spec.id, Some(variant))?;
    Ok(missing_of(&recorded, wanted))
}

fn missing_of(recorded: &[RecordedRun], wanted: &RunSelection) -> Vec<RunIndex> {
    let done: BTreeSet<RunIndex> = recorded.iter().map(|r| r.run).collect();
    wanted.iter().filter(|r| !done.contains(r)).collect()
}

/// Refuses to train runs whose artifact is not the variant's: the server
/// would refuse each result (`artifact_conflict`) after its training, so
/// the check comes first.
fn check_artifact(
    experiment: &Experiment,
    variant: &VariantLabel,
    recorded: &[RecordedRun],
    fault: &Fault,
) -> Result<(), RunnerError> {
    let Some(first) = recorded.first() else {
        return Ok(());
    };
    let ours = reproml_train::builtin_artifact(experiment.spec.model.as_str(), fault);
    if first.result.artifact == ours {
        let (mut recorded, mut ours) = (
            first.result.fixed_fingerprint(),
            reproml_train::builtin_fixed_fingerprint(fault),
        );
        // Known only once a run's splits arrive; the server checks it.
        recorded.remove("dataset");
        ours.remove("dataset");
        if recorded == ours {
            return Ok(());
        }
        let differences = reproml_core::run::RunResult::fixed_differences(&recorded, &ours);
        return Err(RunnerError::FingerprintConflict {
            experiment: experiment.spec.id.clone(),
            variant: variant.clone(),
            differences,
        });
    }
    Err(RunnerError::ArtifactConflict {
        experiment: experiment.spec.id.clone(),
        variant: variant.clone(),
        recorded: Box::new(first.result.artifact.clone()),
        given: Box::new(ours),
    })
}

/// Trains the missing runs of `plan` with `plan.jobs` workers, posting
/// each result as soon as it is trained.
pub fn train_variant(
    client: &Client,
    plan: &VariantPlan<'_>,
    observer: &dyn Observer,
) -> Result<VariantOutcome, RunnerError> {
    let spec = &plan.experiment.spec;
    let id = &spec.id;
    if plan.jobs == 0 {
        return Err(RunnerError::NoWorkers);
    }
    if plan.runs.end() > spec.runs {
        return Err(RunnerError::RunsOutOfRange {
            experiment: id.clone(),
            runs: spec.runs,
            selection: plan.runs.clone(),
        });
    }
    let recorded = client.runs(id, Some(plan.variant))?;
    check_artifact(plan.experiment, plan.variant, &recorded, plan.fault)?;
    let todo: VecDeque<RunIndex> = missing_of(&recorded, &plan.runs).into();
    let skipped = plan.runs.len() - todo.len();
    if skipped > 0 {
        observer.event(Event::Skipped {
            experiment: id.clone(),
            variant: plan.variant.clone(),
            runs: skipped,
        });
    }
    observer.event(Event::VariantStarted {
        experiment: id.clone(),
        variant: plan.variant.clone(),
        todo: todo.len(),
        epochs: spec.epochs,
    });
    let queue = Mutex::new(todo);
    let outcome = Mutex::new(VariantOutcome {
        skipped,
        ..VariantOutcome::default()
    });
    std::thread::scope(|scope| {
        for worker in 0..plan.jobs as usize {
            let (queue, outcome) = (&queue, &outcome);
            scope.spawn(move || {
                while let Some(run) = next(queue) {
                    observer.event(Event::RunStarted { worker, run });
                    let trained = reproml_train::with_threads(plan.threads, || {
                        train_run(client, plan.experiment, run, plan.fault, &mut |progress| {
                            observer.event(Event::EpochFinished {
                                worker,
                                run,
                                progress,
                            })
                        })
                    });
                    let posted = trained.and_then(|t| {
                        let newly = client.post_result(id, plan.variant, run, &t.result)?;
                        Ok((t, newly))
                    });
                    // A worker that panicked leaves the outcome as it was: still usable.
                    let mut outcome = outcome.lock().unwrap_or_else(|p| p.into_inner());
                    match posted {
                        Ok((trained, newly)) => {
                            outcome.recorded.push(run);
                            drop(outcome);
                            observer.event(Event::RunRecorded {
                                worker,
                                experiment: id.clone(),
                                variant: plan.variant.clone(),
                                run,
                                result: Box::new(trained.result),
                                newly,
                            });
                        }
                        Err(e) => {
                            outcome.failed.push(run);
                            drop(outcome);
                            let error = describe(&e);
                            report_failure(client, plan, run, &e, &error);
                            observer.event(Event::RunFailed { worker, run, error });
                        }
                    }
                }
                observer.event(Event::WorkerFinished { worker });
            });
        }
    });
    let mut outcome = outcome.into_inner().unwrap_or_else(|p| p.into_inner());
    outcome.failed.sort_unstable();
    outcome.recorded.sort_unstable();
    observer.event(Event::VariantFinished {
        experiment: id.clone(),
        variant: plan.variant.clone(),
        failed: outcome.failed.clone(),
    });
    Ok(outcome)
}

/// Tells the server that `run` failed, so that the dashboard shows it.
/// Best effort: the run's failure is in the outcome and the events
/// whatever becomes of the report.
fn report_failure(
    client: &Client,
    plan: &VariantPlan<'_>,
    run: RunIndex,
    failure: &RunnerError,
    error: &str,
) {
    let unreachable = matches!(
        failure,
        RunnerError::Client(reproml_client::ClientError::Unreachable { .. })
    );
    if unreachable {
        return; // nobody to tell
    }
    if let Some(seed) = plan.experiment.run_seed(run) {
        // Its own error would only repeat the run's (the server is down).
        let _ = client.post_failure(&plan.experiment.spec.id, plan.variant, run, seed, error);
    }
}

fn next(queue: &Mutex<VecDeque<RunIndex>>) -> Option<RunIndex> {
    queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
}
