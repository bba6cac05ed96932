//! The runner's events drawn as progress bars (hidden off a terminal), and
//! finished runs printed as JSON lines for `--json`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reproml_core::{ExperimentId, RunIndex, VariantLabel};
use reproml_runner::{Event, Observer};
use serde::Serialize;

/// Draws bars for every variant and worker; optionally prints one JSON
/// object per recorded run on standard output.
pub struct Bars {
    multi: MultiProgress,
    json: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    overall: Option<ProgressBar>,
    workers: HashMap<usize, ProgressBar>,
    epochs: u64,
    /// The variant being trained, named on every run's bar.
    variant: String,
}

/// One finished run, as `--json` prints it.
#[derive(Serialize)]
struct RunLine<'a> {
    experiment: &'a ExperimentId,
    variant: &'a VariantLabel,
    run: RunIndex,
    seed: reproml_core::Seed,
    digest: &'a str,
    accuracy: f64,
    precision: f64,
    recall: f64,
    f1: f64,
    recorded: bool,
}

impl Bars {
    /// Bars, and JSON lines when `json`.
    pub fn new(json: bool) -> Self {
        Self {
            multi: MultiProgress::new(),
            json,
            state: Mutex::new(State::default()),
        }
    }

    /// Prints a line on standard output without tearing the bars.
    pub fn println(&self, line: &str) {
        self.multi.suspend(|| println!("{line}"));
    }

    fn note(&self, line: &str) {
        self.multi.suspend(|| eprintln!("{line}"));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn worker_bar(&self, state: &mut State, worker: usize) -> ProgressBar {
        let epochs = state.epochs;
        state
            .workers
            .entry(worker)
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(epochs));
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {prefix:>16} [{bar:20}] epoch {pos}/{len} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar
            })
            .clone()
    }

    fn print_json(&self, line: &RunLine<'_>) {
        if let Ok(json) = serde_json::to_string(line) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{json}");
            let _ = out.flush();
        }
    }
}

impl Observer for Bars {
    fn event(&self, event: Event) {
        match event {
            Event::ExperimentStarted { experiment, about } => {
                self.println(&format!("{experiment}: {about}"));
            }
            Event::SideStarted {
                experiment,
                variant,
                artifact,
            } => self.note(&format!("{experiment} / {variant}: trained by {artifact}")),
            Event::Skipped { variant, runs, .. } => self.note(&format!(
                "{runs} run(s) of {variant} already recorded; skipping them"
            )),
            Event::VariantStarted {
                experiment,
                variant,
                todo,
                epochs,
            } => {
                let bar = self.multi.add(ProgressBar::new(todo as u64));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:<32} [{bar:30}] {pos}/{len} runs ({elapsed}, eta {eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("{experiment} / {variant}"));
                let mut state = self.state();
                state.overall = Some(bar);
                state.epochs = u64::from(epochs);
                state.variant = variant.to_string();
            }
            Event::RunStarted { worker, run } => {
                let mut state = self.state();
                let bar = self.worker_bar(&mut state, worker);
                bar.reset();
                bar.set_prefix(format!("{} run {run}", state.variant));
            }
            Event::EpochFinished {
                worker, progress, ..
            } => {
                let mut state = self.state();
                let bar = self.worker_bar(&mut state, worker);
                bar.set_position(u64::from(progress.epoch));
                bar.set_message(format!(
                    "loss {:.4} accuracy {:.4}",
                    progress.loss, progress.accuracy
                ));
            }
            Event::RunRecorded {
                experiment,
                variant,
                run,
                result,
                newly,
                ..
            } => {
                if self.json {
                    let m = &result.metrics;
                    self.print_json(&RunLine {
                        experiment: &experiment,
                        variant: &variant,
                        run,
                        seed: result.seed,
                        digest: result.final_digest().unwrap_or_default(),
                        accuracy: m.accuracy,
                        precision: m.precision,
                        recall: m.recall,
                        f1: m.f1,
                        recorded: newly,
                    });
                }
                if let Some(bar) = &self.state().overall {
                    bar.inc(1);
                }
            }
            Event::RunFailed { run, error, .. } => {
                self.note(&format!("run {run} failed: {error}"));
                if let Some(bar) = &self.state().overall {
                    bar.inc(1);
                }
            }
            Event::WorkerFinished { worker } => {
                if let Some(bar) = self.state().workers.remove(&worker) {
                    bar.finish_and_clear();
                }
            }
            Event::VariantFinished { .. } => {
                if let Some(bar) = self.state().overall.take() {
                    bar.finish();
                }
            }
            Event::Retrying {
                experiment,
                variant,
                attempt,
                runs,
            } => self.note(&format!(
                "retrying {runs} failed run(s) of {experiment} / {variant} (attempt {attempt})"
            )),
            Event::CommandStarted { .. } => {}
            Event::CommandFailed {
                experiment,
                variant,
                status,
            } => self.note(&format!(
                "the artifact command for {experiment} / {variant} ended with {status}"
            )),
        }
    }
}
