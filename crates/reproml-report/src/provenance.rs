//! Where a report's numbers come from, for a reviewer: the tool that made
//! it and when, each experiment's spec, and per variant the artifacts that
//! trained it and the runtime its runs shared.

use std::collections::{BTreeMap, BTreeSet};

use reproml_core::ExperimentSpec;
use serde::{Deserialize, Serialize};

use crate::comparison::RunSummary;

/// The provenance section of a report (also `provenance.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The tool and build that made the report, e.g. `reproml 0.1.0 (…)`.
    pub tool: String,
    /// When the report was made (RFC 3339, UTC).
    pub generated_at: String,
    /// One entry per experiment, by identifier.
    pub experiments: Vec<ExperimentProvenance>,
}

/// One experiment's provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentProvenance {
    /// The experiment.
    pub experiment: String,
    /// Its spec, when the report was made from a server (not from a CSV).
    pub spec: Option<ExperimentSpec>,
    /// Its variants.
    pub variants: Vec<VariantProvenance>,
}

/// One variant's provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantProvenance {
    /// The variant.
    pub variant: String,
    /// Runs recorded.
    pub runs: usize,
    /// The artifacts that trained them (one, on a server that enforces it).
    pub artifacts: Vec<String>,
    /// The fingerprint entries every run shares, with their value.
    pub shared: BTreeMap<String, String>,
    /// The entries whose value differs between runs (machine names, …).
    pub varying: Vec<String>,
}

impl Provenance {
    /// The provenance of `rows` (with `specs` where known), made by `tool`
    /// at `generated_at`.
    pub fn new(
        tool: &str,
        generated_at: &str,
        rows: &[RunSummary],
        specs: &[ExperimentSpec],
    ) -> Self {
        let mut by_experiment: BTreeMap<&str, BTreeMap<&str, Vec<&RunSummary>>> = BTreeMap::new();
        for r in rows {
            by_experiment
                .entry(r.experiment.as_str())
                .or_default()
                .entry(r.variant.as_str())
                .or_default()
                .push(r);
        }
        let experiments = by_experiment
            .into_iter()
            .map(|(experiment, variants)| ExperimentProvenance {
                experiment: experiment.to_owned(),
                spec: specs.iter().find(|s| s.id.as_str() == experiment).cloned(),
                variants: variants
                    .into_iter()
                    .map(|(variant, runs)| variant_provenance(variant, &runs))
                    .collect(),
            })
            .collect();
        Self {
            tool: tool.to_owned(),
            generated_at: generated_at.to_owned(),
            experiments,
        }
    }

    /// The section as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "## Provenance\n\nMade by {} at {}.\n",
            self.tool, self.generated_at
        );
        for e in &self.experiments {
            out.push_str(&format!("\n### {}\n\n", e.experiment));
            if let Some(spec) = &e.spec {
                out.push_str(&format!("```toml\n{}```\n\n", spec.to_toml()));
            }
            for v in &e.variants {
                out.push_str(&format!(
                    "- **{}**: {} runs, artifact {}\n",
                    v.variant,
                    v.runs,
                    v.artifacts.join(" + ")
                ));
                if !v.shared.is_empty() {
                    let entries: Vec<String> = v
                        .shared
                        .iter()
                        .map(|(k, val)| format!("{k} = {val}"))
                        .collect();
                    out.push_str(&format!("  - runtime: {}\n", entries.join("; ")));
                }
                if !v.varying.is_empty() {
                    out.push_str(&format!(
                        "  - differs between runs: {}\n",
                        v.varying.join(", ")
                    ));
                }
            }
        }
        out
    }
}

fn variant_provenance(variant: &str, runs: &[&RunSummary]) -> VariantProvenance {
    let artifacts: BTreeSet<&str> = runs.iter().map(|r| r.artifact.as_str()).collect();
    let maps: Vec<BTreeMap<String, String>> = runs
        .iter()
        .filter_map(|r| r.fingerprint_entries())
        .collect();
    let keys: BTreeSet<&String> = maps.iter().flat_map(|m| m.keys()).collect();
    let mut shared = BTreeMap::new();
    let mut varying = Vec::new();
    for key in keys {
        let values: BTreeSet<Option<&String>> = maps.iter().map(|m| m.get(key)).collect();
        match values.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(value)] => {
                shared.insert(key.clone(), (*value).clone());
            }
            _ => varying.push(key.clone()),
        }
    }
    VariantProvenance {
        variant: variant.to_owned(),
        runs: runs.len(),
        artifacts: artifacts.into_iter().map(str::to_owned).collect(),
        shared,
        varying,
    }
}
