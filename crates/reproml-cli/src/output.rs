//! What several commands print the same way.

use anyhow::Result;
use reproml_client::Client;
use reproml_core::ExperimentSpec;
use reproml_report::{Provenance, Report, RunSummary, to_markdown, verdict_lines};

/// Prints the verdicts and the Table-V-style table, with a legend for
/// reading it.
pub fn print_summary(report: &Report) {
    println!("{}", to_markdown(report));
    println!("{LEGEND}");
    println!();
    for line in verdict_lines(report) {
        println!("- {line}");
    }
}

/// What the table's direction and columns mean, wrapped for a terminal.
const LEGEND: &str = "\
Reading it: each row compares the first variant named (the baseline) with
the second. A12 is the chance that a run of the second scores higher than a
run of the first (ties count half; 0.5 means no difference), and Cliff's
δ = 2·A12 − 1 is positive when the second scores higher. Holm and BH p are
corrected over every test in the table. \"trajectories\" counts the pairs of
runs (same seed) whose final parameters are bit-identical.";

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
