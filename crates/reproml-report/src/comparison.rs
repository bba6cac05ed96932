//! The comparison itself: pure functions from recorded runs to statistics.

use std::collections::BTreeMap;

pub use reproml_api::runs_csv::RunSummary;
use reproml_core::metrics::Metric;
use reproml_core::{RunIndex, SeedPolicy};
use reproml_stats::{
    CliffMagnitude, Descriptives, MannWhitneyOptions, WilcoxonOptions, benjamini_hochberg,
    cliffs_delta, cliffs_magnitude, describe, holm, mann_whitney_u, vargha_delaney_a12, wilcoxon,
};
use serde::{Deserialize, Serialize};

/// The metrics every run reports, in report order.
pub const METRICS: [Metric; 4] = Metric::ALL;

/// How to compare.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// The two variants to compare (baseline first); when absent,
    /// `buggy`/`corrected` if present, else the only two variants.
    pub variants: Option<(String, String)>,
    /// Use every run instead of truncating to the smaller variant.
    pub all_runs: bool,
    /// Runs each experiment was meant to have (from its spec), to mark
    /// incomplete experiments.
    pub expected_runs: BTreeMap<String, u32>,
    /// Significance level for verdicts (default 0.05).
    pub alpha: Option<f64>,
}

/// Why a comparison cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Nothing to compare.
    #[error("no runs to compare")]
    NoRuns,
    /// The variants to compare are ambiguous or missing.
    #[error("experiment {experiment}: {problem}")]
    Variants {
        /// The experiment.
        experiment: String,
        /// What is wrong.
        problem: String,
    },
}

/// One metric of one experiment, baseline against treatment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// The metric.
    pub metric: Metric,
    /// Baseline values summarised.
    pub baseline: Descriptives,
    /// Treatment values summarised.
    pub treatment: Descriptives,
    /// Two-sided Mann-Whitney U p-value (`None` when undefined).
    pub mwu_p: Option<f64>,
    /// Holm-adjusted MWU p-value across the whole report.
    pub holm_p: Option<f64>,
    /// Benjamini-Hochberg-adjusted MWU p-value across the whole report.
    pub bh_p: Option<f64>,
    /// Two-sided paired Wilcoxon p-value (per-run seeds only; `None` when
    /// every pair is equal or runs do not pair).
    pub wilcoxon_p: Option<f64>,
    /// Vargha-Delaney A12 of treatment over baseline.
    pub a12: f64,
    /// Cliff's δ of treatment over baseline.
    pub cliffs_delta: f64,
    /// Its conventional reading.
    pub magnitude: CliffMagnitude,
}

/// What a comparison concludes about an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every pair of runs has the same final digest: the change never
    /// altered training.
    NotTriggered,
    /// A control: both variants are the same build on the same runtime
    /// (every recorded fingerprint entry and the artifact agree) and every
    /// pair of runs is bit-identical — training repeats exactly.
    BitIdentical,
    /// At least one metric differs at the Holm-adjusted level.
    Detected,
    /// Trajectories differ, but no metric differs significantly.
    NoEvidence,
    /// No metric differs significantly, but none could have: even samples
    /// that do not overlap at all would not reach α after the correction
    /// for the report's number of tests. More runs are needed.
    Underpowered,
    /// Not tested: with fixed seeds every run of a side repeats one run
    /// (effective n = 1), so there is no sample to test.
    FixedSeeds,
}

impl Verdict {
    /// The verdict in words.
    pub fn describe(self) -> &'static str {
        match self {
            Verdict::NotTriggered => "not triggered — identical trajectories",
            Verdict::BitIdentical => {
                "control: bit-identical — the same build repeats every run exactly"
            }
            Verdict::Detected => "difference detected",
            Verdict::NoEvidence => "no evidence of a difference",
            Verdict::Underpowered => {
                "inconclusive — underpowered: too few runs for any difference to reach α after correction"
            }
            Verdict::FixedSeeds => {
                "not tested — fixed seeds: every run of a side repeats one run (effective n = 1)"
            }
        }
    }
}

/// One experiment's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentComparison {
    /// The experiment.
    pub experiment: String,
    /// The baseline variant (e.g. buggy).
    pub baseline: String,
    /// The treatment variant (e.g. corrected).
    pub treatment: String,
    /// Runs of each variant used.
    pub n: usize,
    /// Runs recorded per variant before truncation.
    pub recorded: (usize, usize),
    /// Fewer runs than planned, or unequal counts (marked †).
    pub incomplete: bool,
    /// The experiment's seed policy.
    pub seed_policy: SeedPolicy,
    /// Pairs of runs (same index) compared digest to digest.
    pub pairs: usize,
    /// Pairs whose final digests are equal.
    pub identical_pairs: usize,
    /// The four metrics.
    pub metrics: Vec<MetricComparison>,
    /// Fingerprint entries whose values differ between the two variants'
    /// runs: the change under test, or a confound (another thread count,
    /// another NumPy) that a verdict must be read against.
    pub fingerprint_differences: Vec<FingerprintDifference>,
    /// Both variants are the same build on the same runtime: their
    /// fingerprints are recorded and agree in every entry, and so do their
    /// artifacts (a repeat control, not a change).
    pub same_build: bool,
    /// The smallest Holm-adjusted p-value these sample sizes allow at all
    /// (two samples that do not overlap), given the report's number of
    /// tests: at or above α, no verdict but "underpowered" is possible.
    pub best_possible_holm_p: Option<f64>,
    /// The conclusion.
    pub verdict: Verdict,
}

/// One fingerprint entry whose values differ between two variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FingerprintDifference {
    /// The entry, e.g. `threads`.
    pub key: String,
    /// Its values among the baseline's runs (`(absent)` when missing).
    pub baseline: Vec<String>,
    /// Its values among the treatment's runs.
    pub treatment: Vec<String>,
}

/// Entries that name the artifact itself (its injected fault, its source
/// and crate digests, its commit): they differ by design between two
/// builds and are the change under test, not a confound.
const ARTIFACT_ENTRIES: [&str; 5] = ["fault", "source", "stack", "commit", "fixed"];

/// The fingerprint entries whose sets of values differ between `a` and `b`
/// (runs without a recorded fingerprint are left out).
fn fingerprint_differences(a: &[&RunSummary], b: &[&RunSummary]) -> Vec<FingerprintDifference> {
    fn values(runs: &[&RunSummary]) -> Option<Vec<BTreeMap<String, String>>> {
        let maps: Vec<BTreeMap<String, String>> = runs
            .iter()
            .filter_map(|r| r.fingerprint_entries())
            .collect();
        (!maps.is_empty()).then_some(maps)
    }
    let (Some(a), Some(b)) = (values(a), values(b)) else {
        return Vec::new();
    };
    let keys: std::collections::BTreeSet<&String> =
        a.iter().chain(&b).flat_map(|m| m.keys()).collect();
    let seen = |maps: &[BTreeMap<String, String>], key: &str| -> Vec<String> {
        let set: std::collections::BTreeSet<String> = maps
            .iter()
            .map(|m| m.get(key).cloned().unwrap_or_else(|| "(absent)".into()))
            .collect();
        set.into_iter().collect()
    };
    keys.into_iter()
        .filter(|k| !ARTIFACT_ENTRIES.contains(&k.as_str()))
        .filter_map(|k| {
            let (x, y) = (seen(&a, k), seen(&b, k));
            (x != y).then(|| FingerprintDifference {
                key: k.clone(),
                baseline: x,
                treatment: y,
            })
        })
        .collect()
}

/// True when both sides' runs record fingerprints, have one artifact and
/// agree on every fingerprint entry (the artifact's own included).
fn same_build(a: &[&RunSummary], b: &[&RunSummary]) -> bool {
    let side = |runs: &[&RunSummary]| -> Option<(BTreeMap<String, String>, String)> {
        let mut first: Option<(BTreeMap<String, String>, String)> = None;
        for r in runs {
            let map = r.fingerprint_entries()?;
            match &first {
                None => first = Some((map, r.artifact.clone())),
                Some((m, artifact)) if *m == map && *artifact == r.artifact => {}
                Some(_) => return None,
            }
        }
        first
    };
    matches!((side(a), side(b)), (Some(x), Some(y)) if x == y)
}

/// A whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Significance level of the verdicts.
    pub alpha: f64,
    /// Every experiment compared.
    pub experiments: Vec<ExperimentComparison>,
}

fn pick_variants(
    experiment: &str,
    runs: &BTreeMap<String, Vec<&RunSummary>>,
    opts: &CompareOptions,
) -> Result<(String, String), ReportError> {
    let fail = |problem: String| ReportError::Variants {
        experiment: experiment.into(),
        problem,
    };
    let pair = match &opts.variants {
        Some(pair) => pair.clone(),
        None if runs.contains_key("buggy") && runs.contains_key("corrected") => {
            ("buggy".into(), "corrected".into())
        }
        None if runs.len() == 2 => {
            let mut names = runs.keys().cloned();
            (
                names.next().unwrap_or_default(),
                names.next().unwrap_or_default(),
            )
        }
        None => {
            return Err(fail(format!(
                "has variants {:?}; name the two to compare with --variants A,B",
                runs.keys().collect::<Vec<_>>()
            )));
        }
    };
    for v in [&pair.0, &pair.1] {
        if !runs.contains_key(v) {
            return Err(fail(format!("has no runs of variant {v}")));
        }
    }
    Ok(pair)
}

/// Compares the variants of every experiment in `rows`.
pub fn compare(rows: &[RunSummary], opts: &CompareOptions) -> Result<Report, ReportError> {
    if rows.is_empty() {
        return Err(ReportError::NoRuns);
    }
    let alpha = opts.alpha.unwrap_or(0.05);
    let mut by_experiment: BTreeMap<&str, BTreeMap<String, Vec<&RunSummary>>> = BTreeMap::new();
    for r in rows {
        by_experiment
            .entry(r.experiment.as_str())
            .or_default()
            .entry(r.variant.to_string())
            .or_default()
            .push(r);
    }
    let mut experiments = Vec::new();
    for (experiment, mut variants) in by_experiment {
        for runs in variants.values_mut() {
            runs.sort_by_key(|r| r.run);
        }
        let (base_name, treat_name) = pick_variants(experiment, &variants, opts)?;
        let (base_all, treat_all) = (&variants[&base_name], &variants[&treat_name]);
        let n = if opts.all_runs {
            usize::MAX
        } else {
            base_all.len().min(treat_all.len())
        };
        let base: Vec<&RunSummary> = base_all.iter().take(n).copied().collect();
        let treat: Vec<&RunSummary> = treat_all.iter().take(n).copied().collect();
        let expected = opts.expected_runs.get(experiment).map(|&e| e as usize);
        let incomplete = base_all.len() != treat_all.len()
            || expected.is_some_and(|e| base_all.len() < e || treat_all.len() < e);
        let seed_policy = base[0].seed_policy;
        let treat_by_run: BTreeMap<RunIndex, &RunSummary> =
            treat.iter().map(|r| (r.run, *r)).collect();
        let paired: Vec<(&RunSummary, &RunSummary)> = base
            .iter()
            .filter_map(|b| treat_by_run.get(&b.run).map(|t| (*b, *t)))
            .collect();
        let identical_pairs = paired
            .iter()
            .filter(|(b, t)| b.final_digest == t.final_digest)
            .count();
        let metrics = METRICS
            .iter()
            .map(|&metric| {
                let x: Vec<f64> = base.iter().map(|r| r.metric(metric)).collect();
                let y: Vec<f64> = treat.iter().map(|r| r.metric(metric)).collect();
                // Fixed seeds repeat one run: no sample, so no test, and
                // nothing added to the report's family of tests.
                let tested = seed_policy == SeedPolicy::PerRun;
                let wilcoxon_p = (tested && !paired.is_empty())
                    .then(|| {
                        let px: Vec<f64> = paired.iter().map(|(b, _)| b.metric(metric)).collect();
                        let py: Vec<f64> = paired.iter().map(|(_, t)| t.metric(metric)).collect();
                        (px != py).then(|| {
                            wilcoxon(&px, &py, &WilcoxonOptions::default())
                                .ok()
                                .map(|r| r.pvalue)
                        })
                    })
                    .flatten()
                    .flatten();
                let delta = cliffs_delta(&y, &x).unwrap_or(0.0);
                Ok(MetricComparison {
                    metric,
                    baseline: describe(&x).map_err(|e| ReportError::Variants {
                        experiment: experiment.into(),
                        problem: e.to_string(),
                    })?,
                    treatment: describe(&y).map_err(|e| ReportError::Variants {
                        experiment: experiment.into(),
                        problem: e.to_string(),
                    })?,
                    mwu_p: tested
                        .then(|| mann_whitney_u(&x, &y, &MannWhitneyOptions::default()).ok())
                        .flatten()
                        .map(|r| r.pvalue),
                    holm_p: None,
                    bh_p: None,
                    wilcoxon_p,
                    a12: vargha_delaney_a12(&y, &x).unwrap_or(0.5),
                    cliffs_delta: delta,
                    magnitude: cliffs_magnitude(delta),
                })
            })
            .collect::<Result<Vec<_>, ReportError>>()?;
        experiments.push(ExperimentComparison {
            experiment: experiment.into(),
            baseline: base_name,
            treatment: treat_name,
            n: base.len().min(treat.len()),
            recorded: (base_all.len(), treat_all.len()),
            incomplete,
            seed_policy,
            pairs: paired.len(),
            identical_pairs,
            metrics,
            fingerprint_differences: fingerprint_differences(&base, &treat),
            same_build: same_build(&base, &treat),
            best_possible_holm_p: None,
            verdict: Verdict::NoEvidence,
        });
    }
    // Adjust every MWU p-value of the report together.
    let raw: Vec<f64> = experiments
        .iter()
        .flat_map(|e| e.metrics.iter().filter_map(|m| m.mwu_p))
        .collect();
    let (h, b) = (holm(&raw), benjamini_hochberg(&raw));
    let tests = raw.len();
    let mut k = 0;
    for e in &mut experiments {
        e.best_possible_holm_p = (e.seed_policy == SeedPolicy::PerRun)
            .then(|| best_possible_p(e.metrics[0].baseline.n, e.metrics[0].treatment.n))
            .flatten()
            .map(|p| (p * tests as f64).min(1.0));
        for m in &mut e.metrics {
            if m.mwu_p.is_some() {
                m.holm_p = Some(h[k]);
                m.bh_p = Some(b[k]);
                k += 1;
            }
        }
        e.verdict = if e.seed_policy == SeedPolicy::Fixed {
            Verdict::FixedSeeds
        } else if e.pairs > 0 && e.identical_pairs == e.pairs && e.same_build {
            Verdict::BitIdentical
        } else if e.pairs > 0 && e.identical_pairs == e.pairs {
            Verdict::NotTriggered
        } else if e
            .metrics
            .iter()
            .any(|m| m.holm_p.is_some_and(|p| p < alpha))
        {
            Verdict::Detected
        } else if e.best_possible_holm_p.is_none_or(|p| p >= alpha) {
            Verdict::Underpowered
        } else {
            Verdict::NoEvidence
        };
    }
    Ok(Report { alpha, experiments })
}

/// The two-sided Mann-Whitney p-value of two samples of these sizes that
/// do not overlap at all: the smallest the test can give them.
fn best_possible_p(n_baseline: usize, n_treatment: usize) -> Option<f64> {
    let x: Vec<f64> = (0..n_baseline).map(|i| i as f64).collect();
    let y: Vec<f64> = (0..n_treatment).map(|i| (n_baseline + i) as f64).collect();
    mann_whitney_u(&x, &y, &MannWhitneyOptions::default())
        .ok()
        .map(|r| r.pvalue)
}
