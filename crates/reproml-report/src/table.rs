//! Tables: Markdown in the shape of the paper's Table V, and CSV.

use std::fmt::Write;

use crate::comparison::Report;

fn p(value: Option<f64>) -> String {
    match value {
        None => "—".into(),
        Some(v) if v < 1e-4 => format!("{v:.1e}"),
        Some(v) => format!("{v:.4}"),
    }
}

fn mean_sd(d: &reproml_stats::Descriptives) -> String {
    format!("{:.4} ± {:.4}", d.mean, d.sd.unwrap_or(0.0))
}

/// The comparison as a Markdown table: one row per experiment and metric;
/// † marks experiments with fewer runs than planned or unequal counts.
pub fn to_markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| experiment | metric | n | baseline mean ± sd | treatment mean ± sd | MWU p | Holm p | BH p | Wilcoxon p | A12 | Cliff's δ | trajectories |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for e in &report.experiments {
        let dagger = if e.incomplete { " †" } else { "" };
        let trajectories = format!("{}/{} identical", e.identical_pairs, e.pairs);
        for (i, m) in e.metrics.iter().enumerate() {
            let name = if i == 0 {
                format!(
                    "{}{dagger} ({} vs {})",
                    e.experiment, e.baseline, e.treatment
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:+.3} ({}) | {} |",
                m.metric,
                e.n,
                mean_sd(&m.baseline),
                mean_sd(&m.treatment),
                p(m.mwu_p),
                p(m.holm_p),
                p(m.bh_p),
                p(m.wilcoxon_p),
                m.a12,
                m.cliffs_delta,
                m.magnitude.as_str(),
                if i == 0 { trajectories.as_str() } else { "" },
            );
        }
    }
    if report.experiments.iter().any(|e| e.incomplete) {
        let _ = writeln!(
            out,
            "\n† fewer runs than planned, or unequal numbers of runs per variant."
        );
    }
    out
}

/// One line per experiment with its verdict.
pub fn verdict_lines(report: &Report) -> Vec<String> {
    report
        .experiments
        .iter()
        .map(|e| {
            let strongest = e
                .metrics
                .iter()
                .filter_map(|m| m.holm_p.map(|p| (p, m)))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            let detail = match strongest {
                Some((hp, m))
                    if !matches!(
                        e.verdict,
                        crate::Verdict::NotTriggered | crate::Verdict::BitIdentical
                    ) =>
                {
                    format!(
                        "; strongest: {} Holm p = {}, Cliff's δ = {:+.3} ({})",
                        m.metric,
                        p(Some(hp)),
                        m.cliffs_delta,
                        m.magnitude.as_str()
                    )
                }
                _ => String::new(),
            };
            // What else differs between the variants' runtimes: the change
            // under test, or a confound the verdict must be read against.
            let differs = if e.fingerprint_differences.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = e
                    .fingerprint_differences
                    .iter()
                    .map(|d| {
                        format!(
                            "{} {} vs {}",
                            d.key,
                            d.baseline.join("/"),
                            d.treatment.join("/")
                        )
                    })
                    .collect();
                format!(
                    "; runtimes differ (the change itself, or a possible confound): {}",
                    list.join(", ")
                )
            };
            format!(
                "{}{}: {} ({} vs {}, n = {}, {}/{} identical trajectories{detail}{differs})",
                e.experiment,
                if e.incomplete { " †" } else { "" },
                e.verdict.describe(),
                e.baseline,
                e.treatment,
                e.n,
                e.identical_pairs,
                e.pairs
            )
        })
        .collect()
}

/// The comparison as CSV, one row per experiment and metric.
pub fn to_csv(report: &Report) -> String {
    let mut out = String::from(
        "experiment,baseline,treatment,metric,n,incomplete,baseline_mean,baseline_sd,treatment_mean,treatment_sd,mwu_p,holm_p,bh_p,wilcoxon_p,a12,cliffs_delta,magnitude,identical_pairs,pairs,verdict\n",
    );
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for e in &report.experiments {
        for m in &e.metrics {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                e.experiment,
                e.baseline,
                e.treatment,
                m.metric,
                e.n,
                e.incomplete,
                m.baseline.mean,
                opt(m.baseline.sd),
                m.treatment.mean,
                opt(m.treatment.sd),
                opt(m.mwu_p),
                opt(m.holm_p),
                opt(m.bh_p),
                opt(m.wilcoxon_p),
                m.a12,
                m.cliffs_delta,
                m.magnitude.as_str(),
                e.identical_pairs,
                e.pairs,
                serde_json::to_value(e.verdict)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            );
        }
    }
    out
}
