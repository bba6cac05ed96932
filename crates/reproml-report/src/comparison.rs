//! The comparison itself: pure functions from recorded runs to statistics.

use std::collections::{BTreeMap, BTreeSet};

pub use reproml_api::runs_csv::RunSummary;
use reproml_core::metrics::Metric;
use reproml_core::selection::RunSelection;
use reproml_core::{RunIndex, SeedPolicy};
use reproml_stats::{
    CliffMagnitude, Descriptives, HodgesLehmann, MannWhitneyOptions, WilcoxonOptions,
    benjamini_hochberg, cliffs_delta, cliffs_magnitude, describe, hodges_lehmann, holm,
    mann_whitney_u, vargha_delaney_a12, wilcoxon,
};
use serde::{Deserialize, Serialize};

/// The metrics every run reports, in report order.
pub const METRICS: [Metric; 4] = Metric::ALL;

/// How to compare.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// The variants to compare in every experiment, the reference first.
    /// Empty: `buggy` against `corrected` when both exist, else the only
    /// two variants; an experiment with more needs them named.
    pub variants: Vec<String>,
    /// Per experiment, the variants to compare (reference first), in place
    /// of `variants`.
    pub variants_of: BTreeMap<String, Vec<String>>,
    /// Compare every pair of the variants, not only each against the
    /// reference.
    pub all_pairs: bool,
    /// Use every run instead of truncating to the smaller variant.
    pub all_runs: bool,
    /// Runs each experiment was meant to have (from its spec), to mark
    /// incomplete experiments.
    pub expected_runs: BTreeMap<String, u32>,
    /// Significance level for verdicts (default 0.05).
    pub alpha: Option<f64>,
    /// Equivalence margin: the largest shift of a metric, in its own
    /// units, that counts as no practical difference (default
    /// [`DEFAULT_MARGIN`]).
    pub margin: Option<f64>,
    /// Compare only these runs (e.g. the first 10 of 30); recorded in the
    /// report.
    pub selection: Option<RunSelection>,
}

/// The level of the spread test behind "equivalent", Bonferroni-divided
/// among a comparison's metrics: the Hodges-Lehmann interval estimates a
/// shift, which describes two sides only when their spreads agree, so a
/// spread difference at this level rules equivalence out.
pub const SPREAD_ALPHA: f64 = 0.05;

/// The default equivalence margin: one percentage point of accuracy,
/// precision, recall or F1. Smaller than the run-to-run spread of most
/// models here (0.5–3 points), larger than one test image of digits.
pub const DEFAULT_MARGIN: f64 = 0.01;

/// Why a comparison cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    /// Nothing to compare.
    #[error("no runs to compare")]
    NoRuns,
    /// The significance level is out of range.
    #[error("the significance level must lie strictly between 0 and 0.5; got {0}")]
    Alpha(f64),
    /// The same run appears twice (e.g. one export read twice).
    #[error("run {run} of {experiment} / {variant} appears more than once; read each export once")]
    DuplicateRun {
        /// The experiment.
        experiment: String,
        /// The variant.
        variant: String,
        /// The run.
        run: u32,
    },
    /// The variants to compare are ambiguous or missing.
    #[error("experiment {experiment}: {problem}")]
    Variants {
        /// The experiment.
        experiment: String,
        /// What is wrong.
        problem: String,
    },
}

/// One metric, baseline against treatment.
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
    /// Hodges-Lehmann shift of treatment over baseline with its interval
    /// at the report's equivalence confidence (`None` when not tested).
    pub shift: Option<HodgesLehmann>,
    /// Two-sided p of a test of equal spreads: Mann-Whitney U on each run's
    /// absolute deviation from its side's median (the rank form of the
    /// Brown-Forsythe test). `None` when not tested or when neither side
    /// varies.
    #[serde(default)]
    pub spread_p: Option<f64>,
}

/// What a comparison concludes.
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
    /// Every metric's shift lies inside ±margin with the report's
    /// equivalence confidence (two one-sided tests): any difference is too
    /// small to matter.
    Equivalent,
    /// No metric differs significantly, but none could have: even samples
    /// that do not overlap at all would not reach α after the correction
    /// for the report's number of tests. More runs are needed.
    Underpowered,
    /// Trajectories differ, no metric differs significantly, and the
    /// shift's interval reaches beyond the margin: neither a difference nor
    /// equivalence is shown.
    Inconclusive,
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
            Verdict::Equivalent => "equivalent — every metric's shift interval lies within ±margin",
            Verdict::Underpowered => {
                "inconclusive — underpowered: too few runs for any difference to reach α after correction"
            }
            Verdict::Inconclusive => {
                "inconclusive — no significant difference, but the shift may exceed the margin"
            }
            Verdict::FixedSeeds => {
                "not tested — fixed seeds: every run of a side repeats one run (effective n = 1)"
            }
        }
    }

    /// The verdict's short name, as in the JSON and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::NotTriggered => "not-triggered",
            Verdict::BitIdentical => "bit-identical",
            Verdict::Detected => "detected",
            Verdict::Equivalent => "equivalent",
            Verdict::Underpowered => "underpowered",
            Verdict::Inconclusive => "inconclusive",
            Verdict::FixedSeeds => "fixed-seeds",
        }
    }
}

/// Two variants of one experiment compared: the baseline (the reference)
/// against the treatment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The experiment.
    pub experiment: String,
    /// The baseline variant (e.g. buggy, or the study's reference side).
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
    /// Some run of either variant was trained on an engine that does not
    /// vouch for bit-repeatable kernels (fingerprint `deterministic` is
    /// exactly `false`: the built-in engine on a GPU). Equal trajectories
    /// then do not show that the change never altered training, so neither
    /// "not triggered" nor "bit-identical" is given and the metrics are
    /// tested. (The Python client's `False`, PyTorch's determinism settings
    /// off, is compared as a fingerprint entry like any other.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nondeterministic: bool,
    /// The smallest Holm-adjusted p-value these sample sizes allow at all
    /// (two samples that do not overlap), given the report's number of
    /// tests: at or above α, no verdict but "underpowered" is possible.
    pub best_possible_holm_p: Option<f64>,
    /// The conclusion.
    pub verdict: Verdict,
}

impl Comparison {
    /// True when every metric's shift interval reaches `confidence` and
    /// lies inside ±`margin`.
    pub fn within_margin(&self, margin: f64, confidence: f64) -> bool {
        self.metrics.iter().all(|m| {
            m.shift.is_some_and(|s| {
                s.achieved_confidence >= confidence - 1e-12
                    && s.lower >= -margin
                    && s.upper <= margin
            })
        })
    }

    /// The metrics whose spreads differ between the sides at
    /// [`SPREAD_ALPHA`] / (number of metrics), where a shift does not
    /// describe the difference.
    pub fn unequal_spreads(&self) -> Vec<&MetricComparison> {
        let level = SPREAD_ALPHA / self.metrics.len().max(1) as f64;
        self.metrics
            .iter()
            .filter(|m| m.spread_p.is_some_and(|p| p < level))
            .collect()
    }

    /// The metric with the smallest Holm-adjusted p-value, if any was tested.
    pub fn strongest(&self) -> Option<&MetricComparison> {
        self.metrics
            .iter()
            .filter(|m| m.holm_p.is_some())
            .min_by(|a, b| a.holm_p.unwrap_or(1.0).total_cmp(&b.holm_p.unwrap_or(1.0)))
    }
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

/// One variant of an experiment, every recorded run summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// The variant.
    pub variant: String,
    /// The artifacts that trained its runs (one, unless it is corrupt).
    pub artifacts: Vec<String>,
    /// The four metrics over all its recorded runs, in [`METRICS`] order.
    pub metrics: Vec<Descriptives>,
}

/// The variants of one experiment taking part in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSides {
    /// The experiment.
    pub experiment: String,
    /// Its variants, the reference first.
    pub sides: Vec<Side>,
}

/// A whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Significance level of the verdicts.
    pub alpha: f64,
    /// Equivalence margin, in each metric's own units.
    pub margin: f64,
    /// Confidence of the shift intervals behind "equivalent": 1 − 2α/k for
    /// k tested comparisons (two one-sided tests at α, Bonferroni across
    /// the report's comparisons; every metric must pass, which needs no
    /// correction across metrics).
    pub equivalence_confidence: f64,
    /// Mann-Whitney tests in Holm's and BH's family: those of comparisons
    /// whose trajectories differ (identical ones are decided by their
    /// digests, not by a test).
    pub tests: usize,
    /// The runs compared when not all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<RunSelection>,
    /// Every experiment's variants.
    pub experiments: Vec<ExperimentSides>,
    /// Every comparison made.
    pub comparisons: Vec<Comparison>,
}

impl Report {
    /// Every variant name in the report, in order of first appearance:
    /// the index gives a variant its colour in every figure.
    pub fn side_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for s in self.experiments.iter().flat_map(|e| &e.sides) {
            if !names.contains(&s.variant.as_str()) {
                names.push(&s.variant);
            }
        }
        names
    }
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
    let keys: BTreeSet<&String> = a.iter().chain(&b).flat_map(|m| m.keys()).collect();
    let seen = |maps: &[BTreeMap<String, String>], key: &str| -> Vec<String> {
        let set: BTreeSet<String> = maps
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

/// True when some run's fingerprint says its engine is not bit-repeatable.
fn nondeterministic(runs: &[&RunSummary]) -> bool {
    runs.iter().any(|r| {
        r.fingerprint_entries()
            .is_some_and(|f| f.get("deterministic").is_some_and(|d| d == "false"))
    })
}

/// The variants of `experiment` to compare, the reference first.
fn pick_variants(
    experiment: &str,
    runs: &BTreeMap<String, Vec<&RunSummary>>,
    opts: &CompareOptions,
) -> Result<Vec<String>, ReportError> {
    let fail = |problem: String| ReportError::Variants {
        experiment: experiment.into(),
        problem,
    };
    let named = opts.variants_of.get(experiment).unwrap_or(&opts.variants);
    let chosen: Vec<String> = if !named.is_empty() {
        named.clone()
    } else if runs.contains_key("buggy") && runs.contains_key("corrected") {
        vec!["buggy".into(), "corrected".into()]
    } else if runs.len() == 2 {
        runs.keys().cloned().collect()
    } else {
        return Err(fail(format!(
            "has variants {:?}; name those to compare with --variants REFERENCE,OTHER,…",
            runs.keys().collect::<Vec<_>>()
        )));
    };
    if chosen.len() < 2 {
        return Err(fail(format!(
            "needs at least two variants to compare; got {chosen:?}"
        )));
    }
    let mut seen = BTreeSet::new();
    for v in &chosen {
        if !seen.insert(v) {
            return Err(fail(format!("variant {v} is named twice")));
        }
        if !runs.contains_key(v) {
            return Err(fail(format!(
                "has no runs of variant {v} (it has {:?})",
                runs.keys().collect::<Vec<_>>()
            )));
        }
    }
    Ok(chosen)
}

fn describe_or(experiment: &str, values: &[f64]) -> Result<Descriptives, ReportError> {
    describe(values).map_err(|e| ReportError::Variants {
        experiment: experiment.into(),
        problem: e.to_string(),
    })
}

/// Per metric, the baseline's and the treatment's values that a
/// comparison's tests used: the shifts and spread tests, computed once the
/// report's confidence is known, read exactly these.
type Samples = Vec<(Vec<f64>, Vec<f64>)>;

/// Compares `base` with `treat`, two variants of `experiment`: everything
/// but the report-wide adjustments and the verdict; with the values used.
fn compare_pair(
    experiment: &str,
    (base_name, base_all): (&str, &[&RunSummary]),
    (treat_name, treat_all): (&str, &[&RunSummary]),
    opts: &CompareOptions,
) -> Result<(Comparison, Samples), ReportError> {
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
    let treat_by_run: BTreeMap<RunIndex, &RunSummary> = treat.iter().map(|r| (r.run, *r)).collect();
    let paired: Vec<(&RunSummary, &RunSummary)> = base
        .iter()
        .filter_map(|b| treat_by_run.get(&b.run).map(|t| (*b, *t)))
        .collect();
    let identical_pairs = paired
        .iter()
        .filter(|(b, t)| b.final_digest == t.final_digest)
        .count();
    // Fixed seeds repeat one run: no sample, so no test, and nothing added
    // to the report's family of tests.
    let tested = seed_policy == SeedPolicy::PerRun;
    let samples: Samples = METRICS
        .iter()
        .map(|&metric| {
            (
                base.iter().map(|r| r.metric(metric)).collect(),
                treat.iter().map(|r| r.metric(metric)).collect(),
            )
        })
        .collect();
    let metrics = METRICS
        .iter()
        .zip(&samples)
        .map(|(&metric, (x, y))| {
            let wilcoxon_p = if tested && !paired.is_empty() {
                let px: Vec<f64> = paired.iter().map(|(b, _)| b.metric(metric)).collect();
                let py: Vec<f64> = paired.iter().map(|(_, t)| t.metric(metric)).collect();
                (px != py)
                    .then(|| wilcoxon(&px, &py, &WilcoxonOptions::default()).ok())
                    .flatten()
                    .map(|r| r.pvalue)
            } else {
                None
            };
            let delta = cliffs_delta(y, x).unwrap_or(0.0);
            Ok(MetricComparison {
                metric,
                baseline: describe_or(experiment, x)?,
                treatment: describe_or(experiment, y)?,
                mwu_p: tested
                    .then(|| mann_whitney_u(x, y, &MannWhitneyOptions::default()).ok())
                    .flatten()
                    .map(|r| r.pvalue),
                holm_p: None,
                bh_p: None,
                wilcoxon_p,
                a12: vargha_delaney_a12(y, x).unwrap_or(0.5),
                cliffs_delta: delta,
                magnitude: cliffs_magnitude(delta),
                shift: None,
                spread_p: None,
            })
        })
        .collect::<Result<Vec<_>, ReportError>>()?;
    let comparison = Comparison {
        experiment: experiment.into(),
        baseline: base_name.into(),
        treatment: treat_name.into(),
        n: base.len().min(treat.len()),
        recorded: (base_all.len(), treat_all.len()),
        incomplete,
        seed_policy,
        pairs: paired.len(),
        identical_pairs,
        metrics,
        fingerprint_differences: fingerprint_differences(&base, &treat),
        same_build: same_build(&base, &treat),
        nondeterministic: nondeterministic(&base) || nondeterministic(&treat),
        best_possible_holm_p: None,
        verdict: Verdict::Inconclusive,
    };
    Ok((comparison, samples))
}

/// Compares the variants of every experiment in `rows`: each against the
/// reference (the first variant), or every pair with
/// [`CompareOptions::all_pairs`]; Holm and BH across every test of the
/// report.
pub fn compare(rows: &[RunSummary], opts: &CompareOptions) -> Result<Report, ReportError> {
    let alpha = opts.alpha.unwrap_or(0.05);
    if !(alpha > 0.0 && alpha < 0.5) {
        return Err(ReportError::Alpha(alpha));
    }
    let margin = opts.margin.unwrap_or(DEFAULT_MARGIN);
    let selected: Vec<RunSummary> = rows
        .iter()
        .filter(|r| {
            opts.selection
                .as_ref()
                .is_none_or(|selection| selection.contains(r.run.get()))
        })
        .cloned()
        .collect();
    let rows = &selected[..];
    if rows.is_empty() {
        return Err(ReportError::NoRuns);
    }
    let mut seen = BTreeSet::new();
    for r in rows {
        if !seen.insert((r.experiment.as_str(), r.variant.as_str(), r.run)) {
            return Err(ReportError::DuplicateRun {
                experiment: r.experiment.to_string(),
                variant: r.variant.to_string(),
                run: r.run.get(),
            });
        }
    }
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
    let mut comparisons = Vec::new();
    let mut samples = Vec::new();
    for (experiment, mut variants) in by_experiment {
        for runs in variants.values_mut() {
            runs.sort_by_key(|r| r.run);
        }
        let names = pick_variants(experiment, &variants, opts)?;
        let sides = names
            .iter()
            .map(|name| {
                let runs = &variants[name];
                let artifacts: BTreeSet<&str> = runs.iter().map(|r| r.artifact.as_str()).collect();
                Ok(Side {
                    variant: name.clone(),
                    artifacts: artifacts.into_iter().map(str::to_owned).collect(),
                    metrics: METRICS
                        .iter()
                        .map(|&m| {
                            describe_or(
                                experiment,
                                &runs.iter().map(|r| r.metric(m)).collect::<Vec<_>>(),
                            )
                        })
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<Vec<_>, ReportError>>()?;
        experiments.push(ExperimentSides {
            experiment: experiment.into(),
            sides,
        });
        for (i, base) in names.iter().enumerate() {
            let others = if opts.all_pairs || i == 0 {
                &names[i + 1..]
            } else {
                &[][..]
            };
            for treat in others {
                let (comparison, values) = compare_pair(
                    experiment,
                    (base, &variants[base]),
                    (treat, &variants[treat]),
                    opts,
                )?;
                comparisons.push(comparison);
                samples.push(values);
            }
        }
    }
    // Comparisons whose every pair of runs is bit-identical are decided by
    // their digests, not by a test: their p-values (all 1) stay out of the
    // family, so they do not dilute the tests that matter.
    for c in &mut comparisons {
        if decided_by_digests(c) {
            for m in &mut c.metrics {
                m.mwu_p = None;
            }
        }
    }
    // Adjust every remaining MWU p-value of the report together.
    let raw: Vec<f64> = comparisons
        .iter()
        .flat_map(|c| c.metrics.iter().filter_map(|m| m.mwu_p))
        .collect();
    let (h, b) = (holm(&raw), benjamini_hochberg(&raw));
    let tests = raw.len();
    let tested = |c: &Comparison| c.seed_policy == SeedPolicy::PerRun && !decided_by_digests(c);
    let tested_comparisons = comparisons.iter().filter(|c| tested(c)).count().max(1);
    let equivalence_confidence = 1.0 - 2.0 * alpha / tested_comparisons as f64;
    let mut k = 0;
    for (c, values) in comparisons.iter_mut().zip(&samples) {
        c.best_possible_holm_p = tested(c)
            .then(|| best_possible_p(c.metrics[0].baseline.n, c.metrics[0].treatment.n))
            .flatten()
            .map(|p| (p * tests.max(1) as f64).min(1.0));
        for m in &mut c.metrics {
            if m.mwu_p.is_some() {
                m.holm_p = Some(h[k]);
                m.bh_p = Some(b[k]);
                k += 1;
            }
        }
        if tested(c) {
            attach_shifts(c, values, equivalence_confidence);
        }
        c.verdict = verdict(c, alpha, margin, equivalence_confidence);
    }
    Ok(Report {
        alpha,
        margin,
        equivalence_confidence,
        tests,
        selection: opts.selection.clone(),
        experiments,
        comparisons,
    })
}

/// Fills in every metric's Hodges-Lehmann shift (treatment over
/// baseline) at `confidence`, from the same runs the tests used — also
/// where the test is undefined (a metric constant on both sides has a
/// shift too: exactly 0 when the constants agree).
fn attach_shifts(c: &mut Comparison, samples: &Samples, confidence: f64) {
    if !(confidence > 0.0 && confidence < 1.0) {
        return;
    }
    for (m, (baseline, treatment)) in c.metrics.iter_mut().zip(samples) {
        m.shift = hodges_lehmann(treatment, baseline, confidence).ok();
        m.spread_p = spread_test(treatment, baseline);
    }
}

/// The rank form of the Brown-Forsythe test: Mann-Whitney U on the
/// absolute deviations of each sample from its own median. `None` when no
/// run of either side deviates (equal spreads, trivially) or the test is
/// undefined.
fn spread_test(x: &[f64], y: &[f64]) -> Option<f64> {
    let deviations = |v: &[f64]| -> Option<Vec<f64>> {
        let median = describe(v).ok()?.median;
        Some(v.iter().map(|a| (a - median).abs()).collect())
    };
    let (dx, dy) = (deviations(x)?, deviations(y)?);
    if dx.iter().chain(&dy).all(|d| *d == 0.0) {
        return None;
    }
    mann_whitney_u(&dx, &dy, &MannWhitneyOptions::default())
        .ok()
        .map(|r| r.pvalue)
}

/// Every pair of runs is bit-identical on an engine that vouches for its
/// repeatability: the digests decide, not a test. On an engine that is not
/// bit-repeatable, equal trajectories are luck, not proof: the metrics
/// decide, as for any other difference.
fn decided_by_digests(c: &Comparison) -> bool {
    c.pairs > 0 && c.identical_pairs == c.pairs && !c.nondeterministic
}

/// The conclusion of one comparison whose p-values are adjusted.
fn verdict(c: &Comparison, alpha: f64, margin: f64, confidence: f64) -> Verdict {
    let all_identical = decided_by_digests(c);
    if c.seed_policy == SeedPolicy::Fixed {
        Verdict::FixedSeeds
    } else if all_identical && c.same_build {
        Verdict::BitIdentical
    } else if all_identical {
        Verdict::NotTriggered
    } else if c
        .metrics
        .iter()
        .any(|m| m.holm_p.is_some_and(|p| p < alpha))
    {
        Verdict::Detected
    } else if c.within_margin(margin, confidence) && c.unequal_spreads().is_empty() {
        Verdict::Equivalent
    } else if c.best_possible_holm_p.is_none_or(|p| p >= alpha) {
        Verdict::Underpowered
    } else {
        Verdict::Inconclusive
    }
}

/// The smallest two-sided Mann-Whitney p-value two samples of these sizes
/// can get: that of samples that do not overlap, computed as a comparison
/// computes it (SciPy's `auto`: exact for up to 8 runs without ties), for
/// distinct values and for each side one repeated value (ties make the
/// normal approximation apply, which can go lower).
fn best_possible_p(n_baseline: usize, n_treatment: usize) -> Option<f64> {
    let distinct_x: Vec<f64> = (0..n_baseline).map(|i| i as f64).collect();
    let distinct_y: Vec<f64> = (0..n_treatment).map(|i| (n_baseline + i) as f64).collect();
    let tied_x = vec![0.0; n_baseline];
    let tied_y = vec![1.0; n_treatment];
    [(distinct_x, distinct_y), (tied_x, tied_y)]
        .iter()
        .filter_map(|(x, y)| mann_whitney_u(x, y, &MannWhitneyOptions::default()).ok())
        .map(|r| r.pvalue)
        .reduce(f64::min)
}
