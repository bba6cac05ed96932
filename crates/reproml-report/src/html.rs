//! The report folder: Markdown, CSV, JSON, figures, and an HTML page
//! bundling them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::comparison::{Report, RunSummary};
use crate::plot::{plot_curves, plot_dispersion, plot_experiment};
use crate::provenance::Provenance;
use crate::table::{legend, to_csv, to_markdown, verdict_lines};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes `report.md`, `report.csv`, `report.json`, `provenance.json`, per
/// experiment its box plots (`<experiment>.svg/.pdf/.png`) and, when the
/// runs carry their epochs, its learning curves
/// (`<experiment>-curves.svg/.pdf/.png`), `dispersion.svg/.pdf/.png` and
/// `index.html` into `dir`; returns the HTML page's path.
pub fn write_report(
    dir: &Path,
    report: &Report,
    rows: &[RunSummary],
    title: &str,
    provenance: &Provenance,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let markdown = to_markdown(report);
    std::fs::write(
        dir.join("report.md"),
        format!(
            "# {title}\n\n{}\n\n{markdown}\n\n{}",
            legend(report),
            provenance.to_markdown()
        ),
    )?;
    std::fs::write(
        dir.join("provenance.json"),
        serde_json::to_string_pretty(provenance).map_err(std::io::Error::other)?,
    )?;
    std::fs::write(dir.join("report.csv"), to_csv(report))?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(report).map_err(std::io::Error::other)?,
    )?;
    let order = report.side_names();
    let mut figures = Vec::new();
    for e in &report.experiments {
        let mine: Vec<RunSummary> = rows
            .iter()
            .filter(|r| r.experiment.as_str() == e.experiment)
            .cloned()
            .collect();
        let sides: Vec<&str> = e.sides.iter().map(|s| s.variant.as_str()).collect();
        let stem = dir.join(&e.experiment);
        plot_experiment(&stem, &mine, &sides, &order).map_err(std::io::Error::other)?;
        let curves_stem = dir.join(format!("{}-curves", e.experiment));
        let curves = plot_curves(&curves_stem, &mine, &sides, &order)
            .map_err(std::io::Error::other)?
            .then(|| format!("{}-curves.svg", e.experiment));
        figures.push((
            e.experiment.clone(),
            format!("{}.svg", e.experiment),
            curves,
        ));
    }
    plot_dispersion(&dir.join("dispersion"), report).map_err(std::io::Error::other)?;

    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}table{{border-collapse:collapse;font-size:13px}}\
         td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         img{{max-width:100%}}li{{margin:.3em 0}}</style></head><body><h1>{t}</h1><h2>Verdicts</h2><ul>",
        t = escape(title)
    );
    for line in verdict_lines(report) {
        let _ = write!(html, "<li>{}</li>", escape(&line));
    }
    let _ = write!(
        html,
        "</ul><p>{}</p><p>Files: <a href=\"report.md\">Markdown</a>, <a href=\"report.csv\">CSV</a>, <a href=\"report.json\">JSON</a>; every figure as SVG, as vector PDF and as PNG at print resolution.</p><h2>Table</h2><table>",
        escape(&legend(report))
    );
    for (i, line) in markdown
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .enumerate()
    {
        let cell = if i == 0 { "th" } else { "td" };
        html.push_str("<tr>");
        for c in line.trim_matches('|').split('|') {
            let _ = write!(html, "<{cell}>{}</{cell}>", escape(c.trim()));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    if report.comparisons.iter().any(|c| c.incomplete) {
        html.push_str("<p>† fewer runs than planned, or unequal numbers of runs per variant.</p>");
    }
    html.push_str("<h2>Metrics per variant (every run shown)</h2>");
    for (name, file, curves) in &figures {
        let _ = write!(
            html,
            "<h3>{}</h3><img src=\"{}\" alt=\"box plots of {}\"><p><small><a href=\"{}\">PDF</a></small></p>",
            escape(name),
            escape(file),
            escape(name),
            escape(&file.replace(".svg", ".pdf"))
        );
        if let Some(curves) = curves {
            let _ = write!(
                html,
                "<img src=\"{}\" alt=\"learning curves of {}\">",
                escape(curves),
                escape(name)
            );
        }
    }
    html.push_str("<h2>Spread of runs across experiments</h2><img src=\"dispersion.svg\" alt=\"standard deviations\">");
    let _ = write!(
        html,
        "<h2>Provenance</h2><p>Made by {} at {} (also <a href=\"provenance.json\">JSON</a>).</p>",
        escape(&provenance.tool),
        escape(&provenance.generated_at)
    );
    for e in &provenance.experiments {
        let _ = write!(html, "<h3>{}</h3>", escape(&e.experiment));
        if let Some(spec) = &e.spec {
            let _ = write!(html, "<pre>{}</pre>", escape(&spec.to_toml()));
        }
        html.push_str("<ul>");
        for v in &e.variants {
            let shared: Vec<String> = v
                .shared
                .iter()
                .map(|(k, val)| format!("{k} = {val}"))
                .collect();
            let _ = write!(
                html,
                "<li><b>{}</b>: {} runs, artifact {}<br><small>runtime: {}{}</small></li>",
                escape(&v.variant),
                v.runs,
                escape(&v.artifacts.join(" + ")),
                escape(&shared.join("; ")),
                if v.varying.is_empty() {
                    String::new()
                } else {
                    format!("; differs between runs: {}", escape(&v.varying.join(", ")))
                }
            );
        }
        html.push_str("</ul>");
    }
    html.push_str("</body></html>\n");
    let page = dir.join("index.html");
    std::fs::write(&page, html)?;
    Ok(page)
}
