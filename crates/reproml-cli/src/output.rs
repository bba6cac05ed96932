//! What several commands print the same way, and the process-wide output
//! settings (`--quiet`, `NO_COLOR`).

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use reproml_client::Client;
use reproml_core::ExperimentSpec;
use reproml_report::{Provenance, Report, RunSummary};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Sets `--quiet` for the whole process: no progress, no notes; results
/// and errors are still printed.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether colours may be used on standard error: a terminal, and no
/// `NO_COLOR` (<https://no-color.org>: set and not empty).
pub fn colour_on_stderr() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// Ends the process with `code` after the command has said why: used for
/// outcomes that are not errors but that a script must see, like a
/// difference found by `compare --fail-on-difference`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The process's exit status.
    pub code: u8,
    /// What standard error says.
    pub message: String,
}

/// Exit status of a command line that cannot work (as clap's own errors).
pub const EXIT_USAGE: u8 = 2;
/// Exit status when `--fail-on-difference` finds a difference.
pub const EXIT_DIFFERENCE: u8 = 3;
/// Exit status after Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Prints the comparison for a terminal: verdicts, a compact table per
/// comparison and a legend, within 100 columns, or within the terminal's
/// width down to 80 when standard output is a narrower terminal.
pub fn print_summary(report: &Report) {
    let width = terminal_size::terminal_size_of(std::io::stdout())
        .map_or(reproml_report::SUMMARY_WIDTH, |(w, _)| usize::from(w.0));
    print!("{}", reproml_report::to_terminal_width(report, width));
}

/// Prints `value` as pretty JSON on standard output (`--json`).
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The specs of the experiments `rows` come from.
pub fn specs_of(client: &Client, rows: &[RunSummary]) -> Result<Vec<ExperimentSpec>> {
    let ids: std::collections::BTreeSet<_> = rows.iter().map(|r| &r.experiment).collect();
    ids.into_iter()
        .map(|id| Ok(client.experiment(id)?.spec))
        .collect()
}

/// A report's provenance: this build of reproml (version, engine source
/// and crate digests, commit), now, and the experiments' specs.
pub fn provenance(rows: &[RunSummary], specs: &[ExperimentSpec]) -> Provenance {
    use reproml_train::fingerprint::{COMMIT, SOURCE, STACK};
    let tool = format!(
        "reproml {} (engine source {SOURCE}, crates {STACK}, commit {COMMIT})",
        env!("CARGO_PKG_VERSION")
    );
    Provenance::new(&tool, &now(), rows, specs)
}

/// The time now, as every record and report writes it (RFC 3339, UTC).
pub fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    reproml_core::time::rfc3339_utc(secs)
}

/// `--fail-on-difference`: status 3 when a comparison detected a
/// difference. Comparisons that cannot vouch for "no difference"
/// (inconclusive, underpowered, fixed seeds) pass the gate, so they are
/// named on standard error: a gate is only as good as its runs.
pub fn gate(report: &Report, fail_on_difference: bool) -> Result<()> {
    use reproml_report::Verdict;
    let unsure: Vec<String> = report
        .comparisons
        .iter()
        .filter(|c| {
            matches!(
                c.verdict,
                Verdict::Inconclusive | Verdict::Underpowered | Verdict::FixedSeeds
            )
        })
        .map(|c| format!("{} ({})", c.experiment, c.verdict.as_str()))
        .collect();
    if fail_on_difference && !unsure.is_empty() {
        eprintln!(
            "warning: the gate cannot vouch for {} comparison(s) without a verdict either way: {}; \
             `reproml plan` says how many runs would decide",
            unsure.len(),
            unsure.join(", ")
        );
    }
    let detected: Vec<String> = report
        .comparisons
        .iter()
        .filter(|c| c.verdict == reproml_report::Verdict::Detected)
        .map(|c| format!("{} ({} vs {})", c.experiment, c.baseline, c.treatment))
        .collect();
    if fail_on_difference && !detected.is_empty() {
        return Err(Exit {
            code: EXIT_DIFFERENCE,
            message: format!(
                "difference detected in {} comparison(s): {}",
                detected.len(),
                detected.join(", ")
            ),
        }
        .into());
    }
    Ok(())
}
