//! What several commands print the same way.

use anyhow::Result;
use reproml_client::Client;
use reproml_core::ExperimentSpec;
use reproml_report::{Provenance, Report, RunSummary, to_terminal};

/// Prints the comparison for a terminal: verdicts, a compact table per
/// comparison and a legend, within 100 columns.
pub fn print_summary(report: &Report) {
    print!("{}", to_terminal(report));
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Provenance::new(&tool, &reproml_core::time::rfc3339_utc(now), rows, specs)
}
