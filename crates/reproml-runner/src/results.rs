//! Recorded runs, loaded for a comparison.

use std::collections::BTreeMap;

use reproml_api::runs_csv::RunSummary;
use reproml_client::Client;

use crate::RunnerError;

/// Whether experiment `id` is asked for: in `wanted` (every experiment
/// when it is empty) and starting with `prefix`.
///
/// ```
/// use reproml_runner::results::selected;
/// assert!(selected("study-b1", &[], Some("study-")));
/// assert!(!selected("demo", &["other".into()], None));
/// ```
pub fn selected(id: &str, wanted: &[String], prefix: Option<&str>) -> bool {
    (wanted.is_empty() || wanted.iter().any(|w| w == id))
        && prefix.is_none_or(|p| id.starts_with(p))
}

/// The recorded runs of the experiments on the server that are in
/// `wanted` (all when empty) and start with `prefix`, with the number of
/// runs each experiment plans. An experiment in `wanted` that the server
/// lacks is an error.
pub fn recorded_rows(
    client: &Client,
    wanted: &[String],
    prefix: Option<&str>,
) -> Result<(Vec<RunSummary>, BTreeMap<String, u32>), RunnerError> {
    let mut rows = Vec::new();
    let mut planned = BTreeMap::new();
    for e in client.experiments()? {
        let id = e.spec.id.to_string();
        if !selected(&id, wanted, prefix) {
            continue;
        }
        planned.insert(id, e.spec.runs);
        rows.extend(
            client
                .runs(&e.spec.id, None)?
                .iter()
                .map(|r| RunSummary::new(r, e.spec.seed_policy)),
        );
    }
    if let Some(missing) = wanted.iter().find(|w| !planned.contains_key(*w)) {
        return Err(RunnerError::NoSuchExperiment(missing.clone()));
    }
    Ok((rows, planned))
}
