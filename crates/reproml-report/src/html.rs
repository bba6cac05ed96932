//! The report folder: Markdown, CSV, JSON, figures, and an HTML page
//! bundling them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::comparison::{Report, RunSummary};
use crate::plot::{
    PlotError, curves_svg, dispersion_svg, experiment_svg, plot_curves, plot_dispersion,
    plot_experiment,
};
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
    for (e, mine, sides) in per_experiment(report, rows) {
        let stem = dir.join(&e.experiment);
        plot_experiment(&stem, &mine, &sides, &order).map_err(std::io::Error::other)?;
        let curves_stem = dir.join(format!("{}-curves", e.experiment));
        let curves = plot_curves(&curves_stem, &mine, &sides, &order)
            .map_err(std::io::Error::other)?
            .then(|| Image::File(format!("{}-curves.svg", e.experiment)));
        figures.push(ExperimentFigures {
            experiment: e.experiment.clone(),
            boxes: Image::File(format!("{}.svg", e.experiment)),
            curves,
        });
    }
    plot_dispersion(&dir.join("dispersion"), report).map_err(std::io::Error::other)?;
    let html = page(
        report,
        &markdown,
        title,
        provenance,
        &figures,
        &Image::File("dispersion.svg".into()),
    );
    let page_path = dir.join("index.html");
    std::fs::write(&page_path, html)?;
    Ok(page_path)
}

/// The report as one self-contained HTML page, its figures inline SVG:
/// what the server answers for a comparison (nothing written to disk).
pub fn report_page(
    report: &Report,
    rows: &[RunSummary],
    title: &str,
    provenance: &Provenance,
) -> Result<String, PlotError> {
    let order = report.side_names();
    let mut figures = Vec::new();
    for (e, mine, sides) in per_experiment(report, rows) {
        figures.push(ExperimentFigures {
            experiment: e.experiment.clone(),
            boxes: Image::Svg(experiment_svg(&mine, &sides, &order)?),
            curves: curves_svg(&mine, &sides, &order, false)?.map(Image::Svg),
        });
    }
    Ok(page(
        report,
        &to_markdown(report),
        title,
        provenance,
        &figures,
        &Image::Svg(dispersion_svg(report)?),
    ))
}

/// Per experiment of the report: its runs and its sides' names.
fn per_experiment<'a>(
    report: &'a Report,
    rows: &[RunSummary],
) -> impl Iterator<Item = (&'a crate::ExperimentSides, Vec<RunSummary>, Vec<&'a str>)> {
    report.experiments.iter().map(|e| {
        let mine: Vec<RunSummary> = rows
            .iter()
            .filter(|r| r.experiment.as_str() == e.experiment)
            .cloned()
            .collect();
        (
            e,
            mine,
            e.sides.iter().map(|s| s.variant.as_str()).collect(),
        )
    })
}

/// A figure of the page: a file beside it, or SVG drawn into it.
enum Image {
    File(String),
    Svg(String),
}

impl Image {
    fn write(&self, html: &mut String, alt: &str) {
        match self {
            Image::File(file) => {
                let _ = write!(html, "<img src=\"{}\" alt=\"{alt}\">", escape(file));
            }
            // Drawn by our plotting code from numbers and identifiers,
            // which plotters escapes as SVG text.
            Image::Svg(svg) => {
                let _ = write!(
                    html,
                    "<figure role=\"img\" aria-label=\"{alt}\">{}</figure>",
                    svg.trim_start_matches(|c| c != '<')
                        .trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
                );
            }
        }
    }
}

/// One experiment's figures.
struct ExperimentFigures {
    experiment: String,
    boxes: Image,
    curves: Option<Image>,
}

/// The page: verdicts, legend, table, figures and provenance.
fn page(
    report: &Report,
    markdown: &str,
    title: &str,
    provenance: &Provenance,
    figures: &[ExperimentFigures],
    dispersion: &Image,
) -> String {
    let mut html = String::new();
    let files = matches!(dispersion, Image::File(_));
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}table{{border-collapse:collapse;font-size:13px}}\
         td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         img,figure svg{{max-width:100%;height:auto}}figure{{margin:0}}li{{margin:.3em 0}}</style></head><body><h1>{t}</h1><h2>Verdicts</h2><ul>",
        t = escape(title)
    );
    for line in verdict_lines(report) {
        let _ = write!(html, "<li>{}</li>", escape(&line));
    }
    let _ = write!(html, "</ul><p>{}</p>", escape(&legend(report)));
    if files {
        html.push_str("<p>Files: <a href=\"report.md\">Markdown</a>, <a href=\"report.csv\">CSV</a>, <a href=\"report.json\">JSON</a>; every figure as SVG, as vector PDF and as PNG at print resolution.</p>");
    }
    html.push_str("<h2>Table</h2><table>");
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
    for f in figures {
        let name = escape(&f.experiment);
        let _ = write!(html, "<h3>{name}</h3>");
        f.boxes.write(&mut html, &format!("box plots of {name}"));
        if let Image::File(file) = &f.boxes {
            let _ = write!(
                html,
                "<p><small><a href=\"{}\">PDF</a></small></p>",
                escape(&file.replace(".svg", ".pdf"))
            );
        }
        if let Some(curves) = &f.curves {
            curves.write(&mut html, &format!("learning curves of {name}"));
        }
    }
    html.push_str("<h2>Spread of runs across experiments</h2>");
    dispersion.write(&mut html, "standard deviations");
    let _ = write!(
        html,
        "<h2>Provenance</h2><p>Made by {} at {}{}.</p>",
        escape(&provenance.tool),
        escape(&provenance.generated_at),
        if files {
            " (also <a href=\"provenance.json\">JSON</a>)"
        } else {
            ""
        }
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
    html
}
