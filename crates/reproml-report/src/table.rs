//! Tables: Markdown in the shape of the paper's Table V, CSV, and a
//! terminal summary that fits 100 columns.

use std::fmt::Write;

use crate::comparison::{Comparison, MetricComparison, Report, Verdict};

/// A p-value as every table and summary prints it: three decimals, or
/// `<0.001` below that (the exact value is in the CSV and JSON).
///
/// ```
/// use reproml_report::format_p;
/// assert_eq!(format_p(Some(0.0286)), "0.029");
/// assert_eq!(format_p(Some(6.7e-8)), "<0.001");
/// assert_eq!(format_p(None), "—");
/// ```
pub fn format_p(value: Option<f64>) -> String {
    match value {
        None => "—".into(),
        Some(v) if v < 0.001 => "<0.001".into(),
        Some(v) => format!("{v:.3}"),
    }
}

fn mean_sd(d: &reproml_stats::Descriptives, decimals: usize) -> String {
    format!("{:.decimals$} ± {:.decimals$}", d.mean, d.sd.unwrap_or(0.0))
}

/// A shift with its interval, e.g. `+0.021 [+0.015, +0.027]`.
fn shift(m: &MetricComparison) -> String {
    m.shift.map_or_else(
        || "—".into(),
        |s| format!("{:+.3} [{:+.3}, {:+.3}]", s.estimate, s.lower, s.upper),
    )
}

fn name(c: &Comparison) -> String {
    format!("{}{}", c.experiment, if c.incomplete { " †" } else { "" })
}

/// The comparison as a Markdown table: one row per comparison and metric;
/// † marks experiments with fewer runs than planned or unequal counts.
pub fn to_markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| experiment | baseline vs treatment | metric | n | baseline mean ± sd | treatment mean ± sd | MWU p | Holm p | BH p | Wilcoxon p | A12 | Cliff's δ | shift [{:.1}% CI] | trajectories | verdict |",
        report.equivalence_confidence * 100.0
    );
    let _ = writeln!(
        out,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for c in &report.comparisons {
        let trajectories = format!(
            "{}/{} identical{}",
            c.identical_pairs,
            c.pairs,
            if c.nondeterministic { " ‡" } else { "" }
        );
        for (i, m) in c.metrics.iter().enumerate() {
            let first = i == 0;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:+.3} ({}) | {} | {} | {} |",
                if first { name(c) } else { String::new() },
                if first {
                    format!("{} vs {}", c.baseline, c.treatment)
                } else {
                    String::new()
                },
                m.metric,
                c.n,
                mean_sd(&m.baseline, 4),
                mean_sd(&m.treatment, 4),
                format_p(m.mwu_p),
                format_p(m.holm_p),
                format_p(m.bh_p),
                format_p(m.wilcoxon_p),
                m.a12,
                m.cliffs_delta,
                m.magnitude.as_str(),
                shift(m),
                if first { trajectories.as_str() } else { "" },
                if first { c.verdict.as_str() } else { "" },
            );
        }
    }
    if report.comparisons.iter().any(|c| c.incomplete) {
        let _ = writeln!(
            out,
            "\n† fewer runs than planned, or unequal numbers of runs per variant."
        );
    }
    if report.comparisons.iter().any(|c| c.nondeterministic) {
        let _ = writeln!(out, "\n‡ {NONDETERMINISTIC}.");
    }
    out
}

/// Why a comparison on a non-repeatable engine reads trajectories as it does.
const NONDETERMINISTIC: &str = "runs trained on an engine that is not bit-repeatable \
     (fingerprint deterministic: false), so equal trajectories prove nothing and only \
     the metrics decide";

/// The fingerprint entries that differ between a comparison's sides, as
/// `threads 1 vs 2, numpy 1.24 vs 1.26`; empty when none.
fn differences(c: &Comparison) -> String {
    c.fingerprint_differences
        .iter()
        .map(|d| {
            format!(
                "{} {} vs {}",
                d.key,
                d.baseline.join("/"),
                d.treatment.join("/")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when every metric's shift interval lies inside the report's margin.
fn within_margin(c: &Comparison, report: &Report) -> bool {
    c.within_margin(report.margin, report.equivalence_confidence)
}

/// Runs per side as a comparison used them: `10`, or `10 vs 15` with
/// `--all-runs` on unequal sides.
fn sizes(c: &Comparison) -> String {
    let (a, b) = (c.metrics[0].baseline.n, c.metrics[0].treatment.n);
    if a == b {
        a.to_string()
    } else {
        format!("{a} vs {b}")
    }
}

/// A note when a shift cannot describe the difference: the spreads differ.
fn spread_note(c: &Comparison) -> String {
    let unequal = c.unequal_spreads();
    if unequal.is_empty() || matches!(c.verdict, Verdict::NotTriggered | Verdict::BitIdentical) {
        return String::new();
    }
    let list: Vec<String> = unequal
        .iter()
        .map(|m| {
            format!(
                "{} sd {:.4} vs {:.4}, p {}",
                m.metric,
                m.baseline.sd.unwrap_or(0.0),
                m.treatment.sd.unwrap_or(0.0),
                format_p(m.spread_p)
            )
        })
        .collect();
    format!(
        "; the spreads differ ({}), so a shift does not describe the difference and \"equivalent\" is not concluded",
        list.join("; ")
    )
}

/// The evidence behind a verdict in a few words.
fn evidence(c: &Comparison, report: &Report) -> String {
    match c.verdict {
        Verdict::NotTriggered | Verdict::BitIdentical | Verdict::FixedSeeds => String::new(),
        Verdict::Equivalent => {
            let widest = c
                .metrics
                .iter()
                .filter_map(|m| m.shift.map(|s| s.lower.abs().max(s.upper.abs())))
                .fold(0.0, f64::max);
            format!(
                "; every shift's {:.1}% interval within ±{} (widest reaches {widest:.4})",
                report.equivalence_confidence * 100.0,
                report.margin
            )
        }
        _ => {
            let strongest = c.strongest().map_or_else(String::new, |m| {
                format!(
                    "; strongest: {} Holm p {}, Cliff's δ {:+.3} ({}), shift {}",
                    m.metric,
                    format_p(m.holm_p),
                    m.cliffs_delta,
                    m.magnitude.as_str(),
                    shift(m)
                )
            });
            if c.verdict == Verdict::Detected && within_margin(c, report) {
                format!(
                    "{strongest}; every shift's interval lies within ±{}: a real but negligible change",
                    report.margin
                )
            } else {
                strongest
            }
        }
    }
}

/// One line per comparison with its verdict, its evidence and, when the
/// sides' runtimes differ, the entries that could confound it.
pub fn verdict_lines(report: &Report) -> Vec<String> {
    report
        .comparisons
        .iter()
        .map(|c| {
            let differs = differences(c);
            let confounds = if differs.is_empty() {
                String::new()
            } else {
                format!("; runtimes differ (the change itself, or a possible confound): {differs}")
            };
            let repeatable = if c.nondeterministic {
                format!("; {NONDETERMINISTIC}")
            } else {
                String::new()
            };
            format!(
                "{}: {} ({} vs {}, n = {}, {}/{} identical trajectories{repeatable}{}{}{confounds})",
                name(c),
                c.verdict.describe(),
                c.baseline,
                c.treatment,
                sizes(c),
                c.identical_pairs,
                c.pairs,
                evidence(c, report),
                spread_note(c),
            )
        })
        .collect()
}

/// Breaks `text` into lines of at most `width` characters, the first
/// starting with `first`, the others with `rest`; a word longer than a
/// line gets a line of its own.
///
/// ```
/// let lines = reproml_report::wrap("one two three four", 10, "- ", "  ");
/// assert_eq!(lines, ["- one two", "  three", "  four"]);
/// ```
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = first.to_owned();
    let mut empty = true;
    // Words longer than a line (a long name, a fingerprint value) are cut
    // into pieces that fit, so no line ever exceeds the width.
    let room = width
        .saturating_sub(first.chars().count().max(rest.chars().count()))
        .max(8);
    let pieces = text.split_whitespace().flat_map(|word| {
        let chars: Vec<char> = word.chars().collect();
        chars
            .chunks(room)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
    });
    for word in pieces {
        let word = word.as_str();
        let used = line.chars().count();
        if !empty && used + 1 + word.chars().count() > width {
            lines.push(std::mem::replace(&mut line, rest.to_owned()));
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    lines.push(line);
    lines
}

/// Appends `text` to `out`, wrapped to the summary's width.
fn push_wrapped(out: &mut String, width: usize, text: &str, first: &str, rest: &str) {
    for line in wrap(text, width, first, rest) {
        out.push_str(&line);
        out.push('\n');
    }
}

/// Width of the terminal summary: its full table needs it.
pub const SUMMARY_WIDTH: usize = 100;

/// The narrowest summary: its table leaves out Cliff's δ (= 2·A12 − 1)
/// to fit a classic terminal.
pub const NARROW_WIDTH: usize = 80;

/// Cuts a name to `width` characters, marking the cut with `…`.
fn fit(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        name.to_owned()
    } else {
        let mut s: String = name.chars().take(width - 1).collect();
        s.push('…');
        s
    }
}

/// The comparison for a terminal: per comparison its verdict, a compact
/// table of the four metrics and any possible confounds, then a legend;
/// no line is wider than [`SUMMARY_WIDTH`]. The full table is in the
/// report's files.
pub fn to_terminal(report: &Report) -> String {
    to_terminal_width(report, SUMMARY_WIDTH)
}

/// [`to_terminal`] for a terminal `width` columns wide: below
/// [`SUMMARY_WIDTH`] the table leaves out Cliff's δ and every line fits
/// `width` (at least [`NARROW_WIDTH`]).
pub fn to_terminal_width(report: &Report, width: usize) -> String {
    let width = width.clamp(NARROW_WIDTH, SUMMARY_WIDTH);
    let full = width >= SUMMARY_WIDTH;
    let mut out = String::new();
    for c in &report.comparisons {
        let head = format!(
            "{}: {} (baseline) vs {}, n = {}, {}/{} identical trajectories{}",
            name(c),
            c.baseline,
            c.treatment,
            sizes(c),
            c.identical_pairs,
            c.pairs,
            if c.nondeterministic {
                " (engine not bit-repeatable)"
            } else {
                ""
            }
        );
        push_wrapped(&mut out, width, &head, "", "    ");
        push_wrapped(
            &mut out,
            width,
            &format!(
                "{}{}{}",
                c.verdict.describe(),
                evidence_short(c, report),
                spread_note(c)
            ),
            "  => ",
            "     ",
        );
        let (b, t) = (fit(&c.baseline, 13), fit(&c.treatment, 13));
        let delta = |text: &str| {
            if full {
                format!("  {text:<16}")
            } else {
                String::new()
            }
        };
        let _ = writeln!(
            out,
            "  {:<9}  {:>13}  {:>13}  {:>6}  {:>4}{}  shift [CI]",
            "metric",
            b,
            t,
            "Holm p",
            "A12",
            delta("Cliff's δ")
        );
        for m in &c.metrics {
            let _ = writeln!(
                out,
                "  {:<9}  {:>13}  {:>13}  {:>6}  {:>4.2}{}  {}",
                m.metric.to_string(),
                mean_sd(&m.baseline, 3),
                mean_sd(&m.treatment, 3),
                format_p(m.holm_p),
                m.a12,
                delta(&format!("{:+.2} {}", m.cliffs_delta, m.magnitude.as_str())),
                shift(m)
            );
        }
        let differs = differences(c);
        if !differs.is_empty() {
            push_wrapped(
                &mut out,
                width,
                &format!("possible confounds (runtimes differ): {differs}"),
                "  ",
                "    ",
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "Verdicts:");
    for c in &report.comparisons {
        let line = format!(
            "{} ({} vs {}): {}",
            name(c),
            c.baseline,
            c.treatment,
            c.verdict.describe()
        );
        push_wrapped(&mut out, width, &line, "- ", "  ");
    }
    out.push('\n');
    let mut legend = legend(report);
    if !full {
        legend.push_str(
            " Cliff's δ and its magnitude are left out at this width; a terminal of 100 columns shows them.",
        );
    }
    push_wrapped(&mut out, width, &legend, "", "");
    out
}

/// The verdict's evidence, short enough for the terminal's verdict line.
fn evidence_short(c: &Comparison, report: &Report) -> String {
    match c.verdict {
        Verdict::Detected if within_margin(c, report) => c
            .strongest()
            .map(|m| {
                format!(
                    " (strongest: {}, Holm p {}); every shift interval lies within ±{}: a real but negligible change",
                    m.metric,
                    format_p(m.holm_p),
                    report.margin
                )
            })
            .unwrap_or_default(),
        Verdict::Detected | Verdict::Inconclusive => c
            .strongest()
            .map(|m| format!(" (strongest: {}, Holm p {})", m.metric, format_p(m.holm_p)))
            .unwrap_or_default(),
        Verdict::Underpowered => c
            .best_possible_holm_p
            .map(|p| format!(" (smallest reachable Holm p {})", format_p(Some(p))))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// How to read the summary: direction, effect sizes, intervals, corrections.
pub fn legend(report: &Report) -> String {
    let selection = report.selection.as_ref().map_or_else(String::new, |r| {
        format!(
            " Only runs {r} of each side are compared (--runs); choosing N after looking at results inflates false positives."
        )
    });
    format!(
        "Reading it: each comparison sets a baseline (named first) against another variant; \
         columns show the mean and standard deviation. A12 is the chance that a run of the other variant scores higher \
         than a baseline run (ties count half; 0.5 = no difference), Cliff's δ = 2·A12 − 1. \
         The shift is the Hodges-Lehmann median difference (other − baseline) with its \
         {:.1}% interval; \"equivalent\" needs every metric's interval inside ±{} and no \
         difference in spread (a shift describes two sides only when their spreads agree). Holm p is \
         corrected over all {} tests at α = {}. \"Identical trajectories\" counts pairs of runs \
         (same seed) whose final parameters are bit-identical; a comparison whose every pair is \
         identical is decided by that and adds no test. The full table is in the report's files \
         (or `compare --csv-out`).{selection}",
        report.equivalence_confidence * 100.0,
        report.margin,
        report.tests,
        report.alpha
    )
}

/// The comparison as CSV, one row per comparison and metric.
pub fn to_csv(report: &Report) -> String {
    let mut out = String::from(
        "experiment,baseline,treatment,metric,n,incomplete,baseline_mean,baseline_sd,treatment_mean,treatment_sd,mwu_p,holm_p,bh_p,wilcoxon_p,a12,cliffs_delta,magnitude,shift,shift_lower,shift_upper,identical_pairs,pairs,verdict\n",
    );
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for c in &report.comparisons {
        for m in &c.metrics {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                c.experiment,
                c.baseline,
                c.treatment,
                m.metric,
                c.n,
                c.incomplete,
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
                opt(m.shift.map(|s| s.estimate)),
                opt(m.shift.map(|s| s.lower)),
                opt(m.shift.map(|s| s.upper)),
                c.identical_pairs,
                c.pairs,
                c.verdict.as_str()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_words_and_width() {
        let text = "one two three four five six seven eight nine ten";
        let lines = wrap(text, 12, "> ", "  ");
        assert!(lines.iter().all(|l| l.chars().count() <= 12), "{lines:?}");
        assert_eq!(lines[0], "> one two");
        let joined: Vec<&str> = lines.iter().flat_map(|l| l.split_whitespace()).collect();
        assert_eq!(joined.join(" "), format!("> {text}"));
        assert_eq!(fit("torch-2.15-with-a-long-name", 10), "torch-2.1…");
    }
}
