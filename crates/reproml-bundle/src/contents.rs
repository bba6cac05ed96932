//! What a bundle holds and how its records are checked: the layout of its
//! files, assembling one from records, and verifying one down to the
//! report re-derived from its runs.

use std::collections::BTreeMap;

use reproml_api::runs_csv::RunSummary;
use reproml_api::{Experiment, FailureRecord, RecordedRun};
use reproml_report::{CompareOptions, Report, ReportError};
use serde::{Deserialize, Serialize};

use crate::{Bundle, BundleError};

/// `bundle.json`: what the bundle is and how its report was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// The tool and build that wrote it.
    pub tool: String,
    /// When (RFC 3339, UTC).
    pub created_at: String,
    /// Where the records came from (a server's URL, a database file).
    pub source: String,
    /// The experiments, by identifier.
    pub experiments: Vec<String>,
    /// The comparison's settings: `report/report.json` is
    /// [`report_of`] the runs with them.
    pub settings: ReportSettings,
    /// Files of the study that came along (`study/…`), if any.
    #[serde(default)]
    pub study_files: Vec<String>,
}

/// The settings of the bundle's comparison (those of `reproml compare`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportSettings {
    /// Per experiment, its variants, the reference first (empty: as
    /// `compare` picks them).
    #[serde(default)]
    pub variants_of: BTreeMap<String, Vec<String>>,
    /// Every pair, not only each against the reference.
    #[serde(default)]
    pub all_pairs: bool,
    /// Every run, not truncated to the smaller side.
    #[serde(default)]
    pub all_runs: bool,
    /// Significance level (default 0.05).
    #[serde(default)]
    pub alpha: Option<f64>,
    /// Equivalence margin (default 0.01).
    #[serde(default)]
    pub margin: Option<f64>,
}

/// One experiment as the server stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentRecord {
    /// Spec, seeds, creation time.
    pub experiment: Experiment,
    /// Every recorded run, with per-epoch digests and fingerprint.
    pub runs: Vec<RecordedRun>,
    /// Failure reports.
    pub failures: Vec<FailureRecord>,
}

fn experiment_file(id: &str, name: &str) -> String {
    format!("experiments/{id}/{name}")
}

/// The comparison of `records` under `settings`, as `reproml compare`
/// makes it.
pub fn report_of(
    records: &[ExperimentRecord],
    settings: &ReportSettings,
) -> Result<Report, ReportError> {
    let rows: Vec<RunSummary> = records
        .iter()
        .flat_map(|r| {
            r.runs
                .iter()
                .map(|run| RunSummary::new(run, r.experiment.spec.seed_policy))
        })
        .collect();
    let options = CompareOptions {
        variants_of: settings.variants_of.clone(),
        all_pairs: settings.all_pairs,
        all_runs: settings.all_runs,
        alpha: settings.alpha,
        margin: settings.margin,
        expected_runs: records
            .iter()
            .map(|r| (r.experiment.spec.id.to_string(), r.experiment.spec.runs))
            .collect(),
        ..CompareOptions::default()
    };
    reproml_report::compare(&rows, &options)
}

/// The report's Markdown: table and legend, as `reproml report` writes.
fn report_markdown(report: &Report) -> String {
    format!(
        "{}\n\n{}\n",
        reproml_report::to_markdown(report),
        reproml_report::legend(report)
    )
}

/// A bundle of `records`: each experiment's files, the report made with
/// `description.settings`, `datasets` (`datasets.json`) and `extra` files
/// (the study's, under `study/`).
pub fn assemble(
    description: &Description,
    records: &[ExperimentRecord],
    datasets: &serde_json::Value,
    extra: Vec<(String, Vec<u8>)>,
) -> Result<Bundle, BundleError> {
    let mut bundle = Bundle::new();
    bundle.insert_json("bundle.json", description)?;
    bundle.insert_json("datasets.json", datasets)?;
    for r in records {
        let id = r.experiment.spec.id.as_str();
        bundle.insert_json(&experiment_file(id, "experiment.json"), &r.experiment)?;
        bundle.insert_json(&experiment_file(id, "runs.json"), &r.runs)?;
        bundle.insert_json(&experiment_file(id, "failures.json"), &r.failures)?;
    }
    let report = report_of(records, &description.settings).map_err(|e| BundleError::Invalid {
        file: "report/report.json".into(),
        message: format!("the runs cannot be compared: {e}"),
    })?;
    bundle.insert_json("report/report.json", &report)?;
    bundle.insert("report/report.md", report_markdown(&report).into_bytes())?;
    for (path, bytes) in extra {
        bundle.insert(&path, bytes)?;
    }
    Ok(bundle)
}

/// What [`verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Files in the bundle (the manifest apart).
    pub files: usize,
    /// Experiments.
    pub experiments: usize,
    /// Runs.
    pub runs: usize,
    /// Comparisons of the re-derived report.
    pub comparisons: usize,
}

/// Checks that the records of a bundle (already checked against its
/// manifest by [`Bundle::read`]) hold together: every run belongs to its
/// experiment, has the seed the experiment gives it, a valid result whose
/// metrics are those of its confusion matrices, and its variant's single
/// artifact; and the report equals the one re-derived from the runs with
/// the recorded settings, to the last bit. Returns the records for
/// re-training.
pub fn verify(bundle: &Bundle) -> Result<(Verified, Vec<ExperimentRecord>), BundleError> {
    let description: Description = bundle.json("bundle.json")?;
    let mut problems = Vec::new();
    let mut records = Vec::new();
    for id in &description.experiments {
        let experiment: Experiment = bundle.json(&experiment_file(id, "experiment.json"))?;
        let runs: Vec<RecordedRun> = bundle.json(&experiment_file(id, "runs.json"))?;
        let failures: Vec<FailureRecord> = bundle.json(&experiment_file(id, "failures.json"))?;
        let file = experiment_file(id, "runs.json");
        if experiment.spec.id.as_str() != id {
            problems.push(format!(
                "{}: holds experiment {}, not {id}",
                experiment_file(id, "experiment.json"),
                experiment.spec.id
            ));
        }
        let mut artifacts = BTreeMap::new();
        for run in &runs {
            let at = format!("{file}: {} run {}", run.variant, run.run);
            if run.experiment != experiment.spec.id {
                problems.push(format!("{at} belongs to experiment {}", run.experiment));
            }
            match experiment.run_seed(run.run) {
                None => problems.push(format!(
                    "{at}: the experiment has {} runs",
                    experiment.spec.runs
                )),
                Some(seed) if seed != run.result.seed => problems.push(format!(
                    "{at}: seed {}, but the experiment gives this run {seed}",
                    run.result.seed
                )),
                Some(_) => {}
            }
            let mut canonical = run.result.clone();
            match run
                .result
                .validate(experiment.spec.epochs)
                .and_then(|()| canonical.canonicalize())
            {
                Err(found) => problems.push(format!("{at}: {}", found.join("; "))),
                Ok(()) if canonical != run.result => problems.push(format!(
                    "{at}: its metrics are not those of its confusion matrices"
                )),
                Ok(()) => {}
            }
            let first = artifacts
                .entry(run.variant.clone())
                .or_insert(&run.result.artifact);
            if **first != run.result.artifact {
                problems.push(format!(
                    "{at}: artifact {}, but the variant's other runs are of {}",
                    run.result.artifact.name, first.name
                ));
            }
        }
        records.push(ExperimentRecord {
            experiment,
            runs,
            failures,
        });
    }
    let run_count = records.iter().map(|r| r.runs.len()).sum();
    let mut comparisons = 0;
    match report_of(&records, &description.settings) {
        Err(e) => problems.push(format!(
            "report/report.json: the runs cannot be compared: {e}"
        )),
        Ok(derived) => {
            comparisons = derived.comparisons.len();
            let stored: serde_json::Value = bundle.json("report/report.json")?;
            let derived_json =
                serde_json::to_value(&derived).map_err(|e| BundleError::Invalid {
                    file: "report/report.json".into(),
                    message: e.to_string(),
                })?;
            if stored != derived_json {
                problems.push(first_difference(
                    "report/report.json",
                    &stored,
                    &derived_json,
                ));
            }
            if bundle.get("report/report.md") != Some(report_markdown(&derived).as_bytes()) {
                problems.push(
                    "report/report.md: differs from the report re-derived from the runs".into(),
                );
            }
        }
    }
    if !problems.is_empty() {
        return Err(BundleError::Inconsistent(problems));
    }
    Ok((
        Verified {
            files: bundle.paths().count(),
            experiments: records.len(),
            runs: run_count,
            comparisons,
        },
        records,
    ))
}

/// Where two JSON values first differ, as a line naming the file and the
/// JSON path, with both values.
fn first_difference(file: &str, stored: &serde_json::Value, derived: &serde_json::Value) -> String {
    fn walk(a: &serde_json::Value, b: &serde_json::Value, path: &mut String) -> Option<String> {
        use serde_json::Value;
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for key in x.keys().chain(y.keys()) {
                    let len = path.len();
                    path.push('.');
                    path.push_str(key);
                    let null = Value::Null;
                    let found = walk(
                        x.get(key).unwrap_or(&null),
                        y.get(key).unwrap_or(&null),
                        path,
                    );
                    if found.is_some() {
                        return found;
                    }
                    path.truncate(len);
                }
                None
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    let found = walk(u, v, path);
                    if found.is_some() {
                        return found;
                    }
                    path.truncate(len);
                }
                None
            }
            _ if a == b => None,
            _ => Some(format!("{path}: recorded {a}, re-derived {b}")),
        }
    }
    let mut path = String::new();
    let at = walk(stored, derived, &mut path).unwrap_or_default();
    format!("{file} differs from the report re-derived from the runs at {at}")
}
