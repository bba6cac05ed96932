//! Figures with plotters, as SVG and PNG: per experiment the distribution of
//! each metric per variant with every run shown (the paper's Fig. 2), and
//! across experiments the distribution of per-variant standard deviations
//! (Fig. 3). Text uses the embedded DejaVu Sans, so no system font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

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

fn draw_boxes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    groups: &[(String, Vec<f64>)],
) -> Result<(), String> {
    let values: Vec<f64> = groups.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let (lo, hi) = ((lo - pad) as f32, (hi + pad) as f32);
    let labels: Vec<String> = groups.iter().map(|(l, _)| l.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(52)
        .build_cartesian_2d(labels.as_slice().into_segmented(), lo..hi)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_label_formatter(&|v| format!("{v:.3}"))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(label) | SegmentValue::Exact(label) => label.to_string(),
            SegmentValue::Last => String::new(),
        })
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (label, v)) in groups.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let quartiles = Quartiles::new(v);
        chart
            .draw_series(std::iter::once(
                Boxplot::new_vertical(SegmentValue::CenterOf(label), &quartiles)
                    .width(30)
                    .style(colour.stroke_width(2)),
            ))
            .map_err(|e| e.to_string())?;
        // Every run, spread sideways a little so equal values stay visible.
        chart
            .draw_series(v.iter().enumerate().map(|(k, &y)| {
                let jitter = (k % 7) as i32 * 3 - 9;
                EmptyElement::at((SegmentValue::CenterOf(label), y as f32))
                    + Circle::new((jitter, 0), 2, colour.mix(0.6).filled())
            }))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Panels of box plots, side by side: `(title, groups)` each.
type Panels = Vec<(String, Vec<(String, Vec<f64>)>)>;

fn draw_panels<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    panels: &Panels,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    for (area, (title, groups)) in root.split_evenly((1, panels.len())).iter().zip(panels) {
        draw_boxes(area, title, groups)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Draws `panels` to `path` with extensions `.svg` and `.png`.
fn render(path: &Path, size: (u32, u32), panels: &Panels) -> Result<(), PlotError> {
    register_font();
    let svg = path.with_extension("svg");
    let png = path.with_extension("png");
    let err = |p: &Path, message: String| PlotError {
        path: p.display().to_string(),
        message,
    };
    draw_panels(SVGBackend::new(&svg, size).into_drawing_area(), panels)
        .map_err(|m| err(&svg, m))?;
    draw_panels(BitMapBackend::new(&png, size).into_drawing_area(), panels)
        .map_err(|m| err(&png, m))
}

/// Box plots of the four metrics of one experiment, baseline and treatment,
/// written to `path` with extensions `.svg` and `.png`.
pub fn plot_experiment(
    path: &Path,
    rows: &[RunSummary],
    baseline: &str,
    treatment: &str,
) -> Result<(), PlotError> {
    let panels = METRICS
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
            (metric.to_string(), groups)
        })
        .collect();
    render(path, (1200, 320), &panels)
}

/// The distribution, across experiments and variants, of each metric's
/// standard deviation over runs (the paper's Fig. 3).
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
    let title = "standard deviation over runs, per experiment and variant".to_string();
    render(path, (900, 360), &vec![(title, groups)])
}
