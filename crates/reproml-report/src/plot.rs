//! Figures with plotters, as SVG and PNG: per experiment the distribution of
//! each metric per variant with every run shown (the paper's Fig. 2), and
//! across experiments the distribution of per-variant standard deviations
//! (Fig. 3). Text uses the embedded DejaVu Sans, so no system font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::boxstats::box_stats;
use crate::comparison::{METRICS, Report, RunSummary};

/// Why a figure could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {message}")]
pub struct PlotError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        // A broken embedded font is a build defect, caught by the tests.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        );
    });
}

const COLOURS: [RGBColor; 2] = [RGBColor(0xd6, 0x60, 0x4d), RGBColor(0x43, 0x93, 0xc3)];

/// One box per group at x = 0, 1, …: Tukey whiskers ([`box_stats`]), every
/// run drawn, `n` under each label, the metric on the y axis. `colours`
/// gives each group's colour, so a variant keeps its colour everywhere.
fn draw_boxes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    groups: &[(String, Vec<f64>)],
    colours: &[RGBColor],
) -> Result<(), String> {
    let values: Vec<f64> = groups.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let (lo, hi) = (lo - pad, hi + pad);
    let labels: Vec<String> = groups
        .iter()
        .map(|(l, v)| format!("{l} (n = {})", v.len()))
        .collect();
    let count = groups.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5..count - 0.5, lo..hi)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| format!("{v:.3}"))
        .y_desc(y_label)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (_, v)) in groups.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let x = i as f64;
        let Some(b) = box_stats(v) else { continue };
        let line = colour.stroke_width(2);
        let half = 0.18;
        let segments = [
            // The box and its median.
            vec![
                (x - half, b.q1),
                (x + half, b.q1),
                (x + half, b.q3),
                (x - half, b.q3),
                (x - half, b.q1),
            ],
            vec![(x - half, b.median), (x + half, b.median)],
            // Whiskers to the most extreme runs inside the fences, with caps.
            vec![(x, b.q3), (x, b.whisker_high)],
            vec![(x, b.q1), (x, b.whisker_low)],
            vec![
                (x - half / 2.0, b.whisker_high),
                (x + half / 2.0, b.whisker_high),
            ],
            vec![
                (x - half / 2.0, b.whisker_low),
                (x + half / 2.0, b.whisker_low),
            ],
        ];
        chart
            .draw_series(segments.into_iter().map(|s| PathElement::new(s, line)))
            .map_err(|e| e.to_string())?;
        // Every run, spread sideways a little so equal values stay visible;
        // outliers hollow, so none hides under a cap.
        chart
            .draw_series(v.iter().enumerate().map(|(k, &y)| {
                let jitter = ((k % 7) as f64 - 3.0) * 0.03;
                let outlier = b.outliers.contains(&y);
                let style = if outlier {
                    colour.stroke_width(1)
                } else {
                    colour.mix(0.6).filled()
                };
                Circle::new((x + jitter, y), 3, style)
            }))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A panel of box plots: its title, its y axis, its groups.
struct Panel {
    title: String,
    y_label: String,
    groups: Vec<(String, Vec<f64>)>,
}

fn draw_panels<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    panels: &[Panel],
    colours: &[RGBColor],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    for (area, p) in root.split_evenly((1, panels.len())).iter().zip(panels) {
        draw_boxes(area, &p.title, &p.y_label, &p.groups, colours)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Draws `panels` to `path` with extensions `.svg` and `.png`.
fn render(
    path: &Path,
    size: (u32, u32),
    panels: &[Panel],
    colours: &[RGBColor],
) -> Result<(), PlotError> {
    register_font();
    let svg = path.with_extension("svg");
    let png = path.with_extension("png");
    let err = |p: &Path, message: String| PlotError {
        path: p.display().to_string(),
        message,
    };
    draw_panels(
        SVGBackend::new(&svg, size).into_drawing_area(),
        panels,
        colours,
    )
    .map_err(|m| err(&svg, m))?;
    draw_panels(
        BitMapBackend::new(&png, size).into_drawing_area(),
        panels,
        colours,
    )
    .map_err(|m| err(&png, m))
}

/// Box plots of the four metrics of one experiment, baseline and treatment
/// (always in the same two colours), written to `path` with extensions
/// `.svg` and `.png`.
pub fn plot_experiment(
    path: &Path,
    rows: &[RunSummary],
    baseline: &str,
    treatment: &str,
) -> Result<(), PlotError> {
    let panels: Vec<Panel> = METRICS
        .iter()
        .map(|&metric| {
            let groups = [baseline, treatment]
                .iter()
                .map(|v| {
                    (
                        v.to_string(),
                        rows.iter()
                            .filter(|r| r.variant.as_str() == *v)
                            .map(|r| r.metric(metric))
                            .collect(),
                    )
                })
                .collect();
            Panel {
                title: metric.to_string(),
                y_label: format!("test {metric}"),
                groups,
            }
        })
        .collect();
    render(path, (1600, 480), &panels, &COLOURS)
}

/// The distribution, across experiments and variants, of each metric's
/// standard deviation over runs (the paper's Fig. 3). One neutral colour:
/// the groups are metrics, not variants.
pub fn plot_dispersion(path: &Path, report: &Report) -> Result<(), PlotError> {
    let groups: Vec<(String, Vec<f64>)> = METRICS
        .iter()
        .enumerate()
        .map(|(i, metric)| {
            let sds = report
                .experiments
                .iter()
                .flat_map(|e| [&e.metrics[i].baseline, &e.metrics[i].treatment])
                .map(|d| d.sd.unwrap_or(0.0))
                .collect();
            (metric.to_string(), sds)
        })
        .collect();
    let panel = Panel {
        title: "standard deviation over runs, per experiment and variant".into(),
        y_label: "standard deviation".into(),
        groups,
    };
    render(path, (900, 420), &[panel], &[RGBColor(0x55, 0x55, 0x55)])
}
