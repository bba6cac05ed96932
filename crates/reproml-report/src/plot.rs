//! Figures with plotters, as SVG and PDF (vector; the PDF converted from
//! the SVG by svg2pdf) and PNG (at twice the SVG's pixel size, 300 dpi at
//! about 11 inches wide): per experiment the
//! distribution of each metric per variant with every run shown (the
//! paper's Fig. 2) and the learning curves per variant; across experiments
//! the distribution of per-variant standard deviations (Fig. 3). A variant
//! keeps one colour in every figure of a report, named in a legend. Text
//! uses the embedded DejaVu Sans, so no system font is needed.

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

/// Okabe and Ito's palette, told apart with every common colour-vision
/// deficiency (Okabe & Ito 2008, "Color Universal Design"), black left out.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0xd5, 0x5e, 0x00), // vermillion
    RGBColor(0x00, 0x72, 0xb2), // blue
    RGBColor(0x00, 0x9e, 0x73), // bluish green
    RGBColor(0xe6, 0x9f, 0x00), // orange
    RGBColor(0xcc, 0x79, 0xa7), // reddish purple
    RGBColor(0x56, 0xb4, 0xe9), // sky blue
    RGBColor(0xf0, 0xe4, 0x42), // yellow
];

const GREY: RGBColor = RGBColor(0x55, 0x55, 0x55);

/// The colour of the variant at `index` in a report's variant order.
fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// A drawing's scale: 1 for the SVG, 2 for the print PNG.
#[derive(Clone, Copy)]
struct Scale(f64);

impl Scale {
    fn px(self, v: f64) -> i32 {
        (v * self.0).round() as i32
    }
    fn font(self, size: f64) -> (&'static str, f64) {
        ("sans-serif", size * self.0)
    }
    fn u(self, v: f64) -> u32 {
        (v * self.0).round() as u32
    }
}

/// One group of a box-plot panel: its label, its values, its colour.
struct Group {
    label: String,
    values: Vec<f64>,
    colour: RGBColor,
}

/// One box per group at x = 0, 1, …: Tukey whiskers ([`box_stats`]), every
/// run drawn, `n` under each label, the metric on the y axis.
fn draw_boxes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: Scale,
    title: &str,
    y_label: &str,
    groups: &[Group],
) -> Result<(), String> {
    let values: Vec<f64> = groups
        .iter()
        .flat_map(|g| g.values.iter().copied())
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    // No values at all: an empty axis, not a range from f64::MAX down to
    // f64::MIN, on which plotters' tick placement never ends.
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let (lo, hi) = (lo - pad, hi + pad);
    let labels: Vec<String> = groups
        .iter()
        .map(|g| format!("{} (n = {})", g.label, g.values.len()))
        .collect();
    let count = groups.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, s.font(16.0))
        .margin(s.px(8.0))
        .x_label_area_size(s.px(28.0))
        .y_label_area_size(s.px(64.0))
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
        .label_style(s.font(if groups.len() > 3 { 10.0 } else { 12.0 }))
        .axis_desc_style(s.font(12.0))
        .draw()
        .map_err(|e| e.to_string())?;
    let half = 0.18_f64.min(0.36 / count.max(1.0) * 2.0);
    for (i, g) in groups.iter().enumerate() {
        let x = i as f64;
        let Some(b) = box_stats(&g.values) else {
            continue;
        };
        let line = g.colour.stroke_width(s.u(2.0));
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
            .draw_series(segments.into_iter().map(|seg| PathElement::new(seg, line)))
            .map_err(|e| e.to_string())?;
        // Every run, spread sideways a little so equal values stay visible;
        // outliers hollow, so none hides under a cap.
        chart
            .draw_series(g.values.iter().enumerate().map(|(k, &y)| {
                let jitter = ((k % 7) as f64 - 3.0) * half / 6.0;
                let style = if b.outliers.contains(&y) {
                    g.colour.stroke_width(s.u(1.0))
                } else {
                    g.colour.mix(0.6).filled()
                };
                Circle::new((x + jitter, y), s.u(3.0), style)
            }))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A row of coloured squares with the variants' names, across the top.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: Scale,
    entries: &[(String, RGBColor)],
) -> Result<(), String> {
    let mut x = s.px(16.0);
    let y = s.px(10.0);
    for (name, c) in entries {
        area.draw(&Rectangle::new(
            [(x, y), (x + s.px(14.0), y + s.px(14.0))],
            c.filled(),
        ))
        .map_err(|e| e.to_string())?;
        area.draw(&Text::new(
            name.clone(),
            (x + s.px(20.0), y),
            s.font(13.0).into_font().color(&BLACK),
        ))
        .map_err(|e| e.to_string())?;
        x += s.px(40.0 + 8.0 * name.chars().count() as f64);
    }
    Ok(())
}

/// One variant's learning curve: per epoch the mean, minimum and maximum
/// over its runs.
struct Curve {
    colour: RGBColor,
    epochs: Vec<Band>,
    /// Every run's own values, drawn thin under the mean (empty: not drawn).
    runs: Vec<Vec<f64>>,
}

#[derive(Clone, Copy)]
struct Band {
    mean: f64,
    min: f64,
    max: f64,
}

/// A panel: its title, its y axis, what it draws.
struct Panel<T> {
    title: String,
    y_label: String,
    content: Vec<T>,
}

/// What one figure holds: panels side by side, with a legend when it has
/// entries.
enum Figure {
    /// Box plots.
    Boxes {
        panels: Vec<Panel<Group>>,
        legend: Vec<(String, RGBColor)>,
    },
    /// Learning curves.
    Curves {
        panels: Vec<Panel<Curve>>,
        legend: Vec<(String, RGBColor)>,
    },
}

const LEGEND_HEIGHT: f64 = 34.0;

fn draw_figure<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    s: Scale,
    figure: &Figure,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let body = match figure {
        Figure::Boxes { legend, .. } | Figure::Curves { legend, .. } if !legend.is_empty() => {
            let (top, body) = root.split_vertically(s.px(LEGEND_HEIGHT));
            draw_legend(&top, s, legend)?;
            body
        }
        _ => root.clone(),
    };
    match figure {
        Figure::Boxes { panels, .. } => {
            for (area, p) in body.split_evenly((1, panels.len())).iter().zip(panels) {
                draw_boxes(area, s, &p.title, &p.y_label, &p.content)?;
            }
        }
        Figure::Curves { panels, .. } => {
            for (area, p) in body.split_evenly((1, panels.len())).iter().zip(panels) {
                draw_curves(area, s, &p.title, &p.y_label, &p.content)?;
            }
        }
    }
    root.present().map_err(|e| e.to_string())
}

/// Mean lines with min–max bands, epochs on the x axis.
fn draw_curves<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: Scale,
    title: &str,
    y_label: &str,
    curves: &[Curve],
) -> Result<(), String> {
    let epochs = curves.iter().map(|c| c.epochs.len()).max().unwrap_or(1) as f64;
    let (lo, hi) = curves
        .iter()
        .flat_map(|c| &c.epochs)
        .fold((f64::MAX, f64::MIN), |(a, b), e| {
            (a.min(e.min), b.max(e.max))
        });
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, s.font(16.0))
        .margin(s.px(8.0))
        .x_label_area_size(s.px(36.0))
        .y_label_area_size(s.px(64.0))
        .build_cartesian_2d(1.0..epochs.max(2.0), (lo - pad)..(hi + pad))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|v| format!("{v:.3}"))
        .label_style(s.font(12.0))
        .axis_desc_style(s.font(12.0))
        .draw()
        .map_err(|e| e.to_string())?;
    for Curve {
        colour: c,
        epochs: points,
        runs,
    } in curves
    {
        for run in runs {
            chart
                .draw_series(LineSeries::new(
                    run.iter().enumerate().map(|(e, &v)| ((e + 1) as f64, v)),
                    c.mix(0.45).stroke_width(s.u(1.0)),
                ))
                .map_err(|e| e.to_string())?;
        }
        let xs: Vec<f64> = (1..=points.len()).map(|e| e as f64).collect();
        // The band: along the maxima, then back along the minima.
        let band: Vec<(f64, f64)> = xs
            .iter()
            .zip(points)
            .map(|(&x, p)| (x, p.max))
            .chain(xs.iter().zip(points).rev().map(|(&x, p)| (x, p.min)))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(band, c.mix(0.18).filled())))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                xs.iter().zip(points).map(|(&x, p)| (x, p.mean)),
                c.stroke_width(s.u(2.0)),
            ))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Draws `figure` to `path` with extensions `.svg` and `.png`.
fn render(path: &Path, size: (u32, u32), figure: &Figure) -> Result<(), PlotError> {
    register_font();
    let svg = path.with_extension("svg");
    let png = path.with_extension("png");
    let err = |p: &Path, message: String| PlotError {
        path: p.display().to_string(),
        message,
    };
    draw_figure(
        SVGBackend::new(&svg, size).into_drawing_area(),
        Scale(1.0),
        figure,
    )
    .map_err(|m| err(&svg, m))?;
    let print = Scale(2.0);
    draw_figure(
        BitMapBackend::new(&png, (print.u(size.0.into()), print.u(size.1.into())))
            .into_drawing_area(),
        print,
        figure,
    )
    .map_err(|m| err(&png, m))?;
    let pdf = path.with_extension("pdf");
    svg_to_pdf(&svg, &pdf).map_err(|m| err(&pdf, m))
}

/// `figure` as an SVG document in memory.
fn render_svg(size: (u32, u32), figure: &Figure) -> Result<String, PlotError> {
    register_font();
    let mut svg = String::new();
    draw_figure(
        SVGBackend::with_string(&mut svg, size).into_drawing_area(),
        Scale(1.0),
        figure,
    )
    .map_err(|message| PlotError {
        path: "(in memory)".into(),
        message,
    })?;
    Ok(svg)
}

/// The SVG at `svg` as a vector PDF at `pdf` (svg2pdf), its text set in
/// the embedded DejaVu Sans, so that a paper can include the figure
/// without rasterising it.
fn svg_to_pdf(svg: &Path, pdf: &Path) -> Result<(), String> {
    use svg2pdf::usvg;
    let text = std::fs::read_to_string(svg).map_err(|e| e.to_string())?;
    let mut options = usvg::Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_font_data(include_bytes!("../assets/DejaVuSans.ttf").to_vec());
    fonts.set_sans_serif_family("DejaVu Sans");
    let tree = usvg::Tree::from_str(&text, &options).map_err(|e| e.to_string())?;
    let bytes = svg2pdf::to_pdf(
        &tree,
        svg2pdf::ConversionOptions::default(),
        svg2pdf::PageOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(pdf, bytes).map_err(|e| e.to_string())
}

/// The legend entries of `sides`, coloured by their place in `order` (a
/// report's [`Report::side_names`]).
fn legend_of(sides: &[&str], order: &[&str]) -> Vec<(String, RGBColor)> {
    sides
        .iter()
        .map(|s| {
            let i = order.iter().position(|o| o == s).unwrap_or(0);
            ((*s).to_owned(), colour(i))
        })
        .collect()
}

/// Box plots of the four metrics of one experiment, one box per variant
/// in `sides`, coloured by the variant's place in `order`, written to
/// `path` with extensions `.svg`, `.png` and `.pdf`.
pub fn plot_experiment(
    path: &Path,
    rows: &[RunSummary],
    sides: &[&str],
    order: &[&str],
) -> Result<(), PlotError> {
    let (figure, size) = boxes_figure(rows, sides, order);
    render(path, size, &figure)
}

/// The box plots of [`plot_experiment`] as an SVG document (the
/// dashboard's figure, drawn by the same code as the report's).
pub fn experiment_svg(
    rows: &[RunSummary],
    sides: &[&str],
    order: &[&str],
) -> Result<String, PlotError> {
    let (figure, size) = boxes_figure(rows, sides, order);
    render_svg(size, &figure)
}

fn boxes_figure(rows: &[RunSummary], sides: &[&str], order: &[&str]) -> (Figure, (u32, u32)) {
    let legend = legend_of(sides, order);
    let panels = METRICS
        .iter()
        .map(|&metric| {
            let groups = legend
                .iter()
                .map(|(v, c)| Group {
                    label: v.clone(),
                    values: rows
                        .iter()
                        .filter(|r| r.variant.as_str() == v)
                        .map(|r| r.metric(metric))
                        .collect(),
                    colour: *c,
                })
                .collect();
            Panel {
                title: metric.to_string(),
                y_label: format!("test {metric}"),
                content: groups,
            }
        })
        .collect();
    let width = 1600.max(240 * 4 * sides.len() as u32 / 2);
    (Figure::Boxes { panels, legend }, (width, 520))
}

/// Per-epoch learning curves of one experiment's variants: training loss
/// and test accuracy, the mean over runs as a line and the range over runs
/// as a band. Returns `Ok(false)` without drawing when no run has its
/// epochs (rows read from a CSV export).
pub fn plot_curves(
    path: &Path,
    rows: &[RunSummary],
    sides: &[&str],
    order: &[&str],
) -> Result<bool, PlotError> {
    let Some((figure, size)) = curves_figure(rows, sides, order, false) else {
        return Ok(false);
    };
    render(path, size, &figure)?;
    Ok(true)
}

/// The learning curves of [`plot_curves`] as an SVG document, with every
/// run's own curve drawn thin under the mean when `every_run`; `None` when
/// no run has its epochs.
pub fn curves_svg(
    rows: &[RunSummary],
    sides: &[&str],
    order: &[&str],
    every_run: bool,
) -> Result<Option<String>, PlotError> {
    curves_figure(rows, sides, order, every_run)
        .map(|(figure, size)| render_svg(size, &figure))
        .transpose()
}

fn curves_figure(
    rows: &[RunSummary],
    sides: &[&str],
    order: &[&str],
    every_run: bool,
) -> Option<(Figure, (u32, u32))> {
    let legend = legend_of(sides, order);
    if !rows.iter().any(|r| !r.curve.is_empty()) {
        return None;
    }
    let summarise = |variant: &str, pick: fn(&reproml_api::runs_csv::CurvePoint) -> f64| {
        let runs: Vec<&RunSummary> = rows
            .iter()
            .filter(|r| r.variant.as_str() == variant && !r.curve.is_empty())
            .collect();
        let epochs = runs.iter().map(|r| r.curve.len()).min().unwrap_or(0);
        (0..epochs)
            .map(|e| {
                let v: Vec<f64> = runs.iter().map(|r| pick(&r.curve[e])).collect();
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let (min, max) = v
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
                Band { mean, min, max }
            })
            .collect::<Vec<_>>()
    };
    let each_run = |variant: &str, pick: fn(&reproml_api::runs_csv::CurvePoint) -> f64| {
        if !every_run {
            return Vec::new();
        }
        rows.iter()
            .filter(|r| r.variant.as_str() == variant)
            .map(|r| r.curve.iter().map(pick).collect())
            .collect()
    };
    let panel = |title: &str, y: &str, pick: fn(&reproml_api::runs_csv::CurvePoint) -> f64| Panel {
        title: title.to_owned(),
        y_label: y.to_owned(),
        content: legend
            .iter()
            .map(|(v, c)| Curve {
                colour: *c,
                epochs: summarise(v, pick),
                runs: each_run(v, pick),
            })
            .collect(),
    };
    let panels = vec![
        panel(
            "training loss (line: mean, band: range over runs)",
            "mean training loss",
            |p| p.loss,
        ),
        panel(
            "test accuracy (line: mean, band: range over runs)",
            "test accuracy",
            |p| p.accuracy,
        ),
    ];
    Some((Figure::Curves { panels, legend }, (1600, 480)))
}

/// The distribution, across experiments and variants, of each metric's
/// standard deviation over runs (the paper's Fig. 3). One neutral colour:
/// the groups are metrics, not variants.
pub fn plot_dispersion(path: &Path, report: &Report) -> Result<(), PlotError> {
    let (figure, size) = dispersion_figure(report);
    render(path, size, &figure)
}

/// The figure of [`plot_dispersion`] as an SVG document.
pub fn dispersion_svg(report: &Report) -> Result<String, PlotError> {
    let (figure, size) = dispersion_figure(report);
    render_svg(size, &figure)
}

fn dispersion_figure(report: &Report) -> (Figure, (u32, u32)) {
    let groups = METRICS
        .iter()
        .enumerate()
        .map(|(i, metric)| Group {
            label: metric.to_string(),
            values: report
                .experiments
                .iter()
                .flat_map(|e| &e.sides)
                .map(|side| side.metrics[i].sd.unwrap_or(0.0))
                .collect(),
            colour: GREY,
        })
        .collect();
    let panels = vec![Panel {
        title: "standard deviation over runs, per experiment and variant".into(),
        y_label: "standard deviation".into(),
        content: groups,
    }];
    (
        Figure::Boxes {
            panels,
            legend: Vec::new(),
        },
        (900, 420),
    )
}
