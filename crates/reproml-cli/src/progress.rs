//! The runner's events for people and scripts: progress bars on a
//! terminal, one plain line per finished run when standard error is not a
//! terminal (a log file, CI, `nohup`), nothing with `--quiet`; and, with
//! `--json`, one JSON object per recorded run on standard output.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressState, ProgressStyle};
use reproml_core::{ExperimentId, RunIndex, VariantLabel};
use reproml_runner::{Event, Observer};
use serde::Serialize;

/// How progress is shown on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars redrawn in place.
    Bars,
    /// One line per finished run, nothing redrawn.
    Lines,
    /// Only failures.
    Quiet,
}

impl Mode {
    /// Bars on a terminal, lines elsewhere, nothing with `--quiet`.
    pub fn detect() -> Self {
        if crate::output::quiet() {
            Self::Quiet
        } else if std::io::stderr().is_terminal() {
            Self::Bars
        } else {
            Self::Lines
        }
    }
}

/// Shows the progress of training; optionally prints one JSON object per
/// recorded run on standard output.
pub struct Bars {
    multi: MultiProgress,
    mode: Mode,
    json: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    overall: Option<ProgressBar>,
    workers: HashMap<usize, ProgressBar>,
    epochs: u64,
    /// The side being trained, named on every line.
    side: String,
    started: HashMap<RunIndex, Instant>,
    variant_started: Option<Instant>,
    recorded: usize,
    todo: usize,
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

/// The widest a bar's label gets, so that a bar fits 80 columns.
const LABEL_WIDTH: usize = 28;

impl Bars {
    /// Progress in the [`Mode`] this process detects, and JSON lines when
    /// `json`.
    pub fn new(json: bool) -> Self {
        Self::with_mode(Mode::detect(), json)
    }

    /// Progress in `mode`.
    pub fn with_mode(mode: Mode, json: bool) -> Self {
        let multi = MultiProgress::new();
        if mode != Mode::Bars {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        Self {
            multi,
            mode,
            json,
            state: Mutex::new(State::default()),
        }
    }

    /// Prints a line on standard output without tearing the bars.
    pub fn println(&self, line: &str) {
        self.multi.suspend(|| println!("{line}"));
    }

    /// A line on standard error for people (not with `--quiet`).
    fn note(&self, line: &str) {
        if self.mode != Mode::Quiet {
            self.warn(line);
        }
    }

    /// A line on standard error that even `--quiet` shows (failures).
    fn warn(&self, line: &str) {
        self.multi.suspend(|| {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        });
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
                        "  {prefix:<18!} [{wide_bar}] epoch {pos:>2}/{len} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
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

    fn variant_started(&self, experiment: &ExperimentId, variant: &VariantLabel, todo: usize) {
        let side = format!("{experiment} / {variant}");
        let mut state = self.state();
        state.side.clone_from(&side);
        state.variant_started = Some(Instant::now());
        state.recorded = 0;
        state.todo = todo;
        if self.mode == Mode::Lines && todo > 0 {
            drop(state);
            self.note(&format!("{side}: training {todo} run(s)"));
            return;
        }
        let bar = self.multi.add(ProgressBar::new(todo as u64));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:<28!} [{wide_bar}] {pos}/{len} runs {elapsed:>4} eta {eta_or_unknown}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("eta_or_unknown", eta_or_unknown)
            .progress_chars("=> "),
        );
        bar.set_prefix(shorten(&side, LABEL_WIDTH));
        state.overall = Some(bar);
    }

    fn run_recorded(&self, run: RunIndex, seed: reproml_core::Seed, accuracy: f64) {
        let mut state = self.state();
        state.recorded += 1;
        let took = state
            .started
            .remove(&run)
            .map_or(Duration::ZERO, |t| t.elapsed());
        if let Some(bar) = &state.overall {
            bar.inc(1);
        }
        if self.mode == Mode::Lines {
            let line = format!(
                "{}: run {run} recorded ({}/{}): seed {seed}, accuracy {accuracy:.4}, {:.1} s",
                state.side,
                state.recorded,
                state.todo,
                took.as_secs_f64()
            );
            drop(state);
            self.note(&line);
        }
    }

    fn variant_finished(&self, failed: usize) {
        let mut state = self.state();
        let had_work = state.todo > 0;
        let took = state
            .variant_started
            .take()
            .map_or(Duration::ZERO, |t| t.elapsed());
        let line = format!(
            "{}: {} of {} run(s) recorded{} in {}",
            state.side,
            state.recorded,
            state.todo,
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            },
            duration(took)
        );
        // A finished bar becomes a plain line above the live ones: bars
        // that scroll out of a short terminal are dropped by indicatif,
        // printed lines stay in the scrollback.
        if let Some(bar) = state.overall.take() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        drop(state);
        if had_work {
            self.note(&line);
        }
    }
}

/// `0.4 s` below a minute (runs of small models take less than a
/// second), `3 minutes` above.
fn duration(took: Duration) -> String {
    if took < Duration::from_secs(60) {
        format!("{:.1} s", took.as_secs_f64())
    } else {
        indicatif::HumanDuration(took).to_string()
    }
}

/// `eta ?` until the first run has finished: indicatif's estimate is 0 s
/// before it has a rate, which reads as "done".
fn eta_or_unknown(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    if state.pos() == 0 {
        let _ = w.write_str("?");
    } else {
        let _ = write!(w, "{:#}", indicatif::HumanDuration(state.eta()));
    }
}

/// `text` cut to `width` characters, with an ellipsis when cut.
fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

impl Observer for Bars {
    fn event(&self, event: Event) {
        match event {
            Event::ExperimentStarted { experiment, about } => {
                if self.mode == Mode::Quiet {
                    return;
                }
                self.println(&format!("{experiment}: {about}"));
            }
            Event::SideStarted {
                experiment,
                variant,
                artifact,
            } => self.note(&format!("{experiment} / {variant}: trained by {artifact}")),
            Event::Skipped {
                experiment,
                variant,
                runs,
            } => self.note(&format!(
                "{experiment} / {variant}: {runs} run(s) already recorded; skipping them"
            )),
            Event::VariantStarted {
                experiment,
                variant,
                todo,
                epochs,
            } => {
                self.state().epochs = u64::from(epochs);
                self.variant_started(&experiment, &variant, todo);
            }
            Event::RunStarted { worker, run } => {
                let mut state = self.state();
                state.started.insert(run, Instant::now());
                if self.mode == Mode::Bars {
                    let bar = self.worker_bar(&mut state, worker);
                    bar.reset();
                    bar.set_prefix(format!("run {run}"));
                }
            }
            Event::EpochFinished {
                worker, progress, ..
            } => {
                if self.mode != Mode::Bars {
                    return;
                }
                let mut state = self.state();
                let bar = self.worker_bar(&mut state, worker);
                bar.set_position(u64::from(progress.epoch));
                bar.set_message(format!(
                    "loss {:.4} acc {:.4} ({:.1} s/epoch)",
                    progress.loss, progress.accuracy, progress.seconds
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
                let m = &result.metrics;
                if self.json {
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
                self.run_recorded(run, result.seed, m.accuracy);
            }
            Event::RunFailed { run, error, .. } => {
                let side = {
                    let mut state = self.state();
                    state.started.remove(&run);
                    if let Some(bar) = &state.overall {
                        bar.inc(1);
                    }
                    state.side.clone()
                };
                self.warn(&format!("{side}: run {run} failed: {error}"));
            }
            Event::WorkerFinished { worker } => {
                if let Some(bar) = self.state().workers.remove(&worker) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
            }
            Event::VariantFinished { failed, .. } => self.variant_finished(failed.len()),
            Event::Retrying {
                experiment,
                variant,
                attempt,
                runs,
            } => self.note(&format!(
                "retrying {runs} failed run(s) of {experiment} / {variant} (attempt {attempt})"
            )),
            Event::CommandStarted {
                experiment,
                variant,
                line,
            } => self.note(&format!("{experiment} / {variant}: running {line}")),
            Event::JobSubmitted {
                experiment,
                variant,
                job,
                tasks,
                script,
            } => self.note(&match job {
                Some(job) => format!(
                    "{experiment} / {variant}: Slurm job {job}, {tasks} array task(s) ({})",
                    script.display()
                ),
                None => format!(
                    "{experiment} / {variant}: job script {} ({tasks} array task(s)), not submitted",
                    script.display()
                ),
            }),
            Event::JobsWaiting {
                pending,
                running,
                recorded,
                wanted,
            } => self.note(&format!(
                "Slurm: {pending} task(s) pending, {running} running; {recorded}/{wanted} runs of the submitted sides recorded"
            )),
            Event::CommandFailed {
                experiment,
                variant,
                status,
            } => self.warn(&format!(
                "the artifact command for {experiment} / {variant} ended with {status}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_cut_with_an_ellipsis() {
        assert_eq!(shorten("short", 10), "short");
        let cut = shorten("a-very-long-experiment-name / corrected", 12);
        assert_eq!(cut.chars().count(), 12);
        assert!(cut.ends_with('…'));
    }
}
