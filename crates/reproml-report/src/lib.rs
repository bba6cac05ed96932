//! Comparing the variants of experiments (the paper's statistical
//! analysis, §IV-E) and reporting it: a Table-V-style Markdown table, CSV
//! and JSON exports, box plots of every metric (Fig. 2), the spread of runs
//! across experiments (Fig. 3), and an HTML page bundling them.

mod boxstats;
mod comparison;
mod html;
mod plot;
mod provenance;
mod table;

pub use boxstats::{BoxStats, box_stats};
pub use comparison::{
    CompareOptions, Comparison, DEFAULT_MARGIN, ExperimentSides, FingerprintDifference, METRICS,
    MetricComparison, Report, ReportError, RunSummary, Side, Verdict, compare,
};
pub use html::{report_page, write_report};
pub use plot::{
    PlotError, curves_svg, dispersion_svg, experiment_svg, plot_dispersion, plot_experiment,
};
pub use provenance::{ExperimentProvenance, Provenance, VariantProvenance};
pub use table::{
    NARROW_WIDTH, SUMMARY_WIDTH, format_p, legend, to_csv, to_markdown, to_terminal,
    to_terminal_width, verdict_lines, wrap,
};
