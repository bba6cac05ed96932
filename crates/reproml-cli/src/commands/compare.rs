//! `reproml compare` and `reproml report`: the variants of experiments,
//! tested and summarised.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use reproml_core::ExperimentSpec;
use reproml_report::{CompareOptions, Report, RunSummary, compare, to_csv, write_report};
use reproml_runner::results::{recorded_rows, selected};

/// Where the runs come from and how to compare them.
#[derive(Debug, Args)]
pub struct Source {
    /// Experiments to compare (identifiers); all when left out.
    experiments: Vec<String>,
    /// Compare every experiment whose identifier starts with this.
    #[arg(long)]
    prefix: Option<String>,
    /// Read runs from a CSV export (`reproml experiment runs ID`, or
    /// `GET /v1/experiments/{id}/runs?format=csv`) instead of a server;
    /// repeat for several files.
    #[arg(long, alias = "csv", value_name = "FILE", conflicts_with_all = ["server", "embedded", "db"])]
    csv_in: Vec<PathBuf>,
    /// URL of a running `reproml server` [default: $REPROML_SERVER, else
    /// the database of --embedded].
    #[arg(long, conflicts_with_all = ["embedded", "db"])]
    server: Option<String>,
    /// File holding the server's bearer token [default: $REPROML_TOKEN_FILE].
    #[arg(long, conflicts_with = "embedded")]
    token_file: Option<PathBuf>,
    /// CA certificate(s) to trust for an https:// server (PEM)
    /// [default: $REPROML_CA_CERT].
    #[arg(long, value_name = "PEM", conflicts_with = "embedded")]
    ca_cert: Option<PathBuf>,
    /// Read the runs from a database in this process (the default without
    /// --server or $REPROML_SERVER).
    #[arg(long)]
    embedded: bool,
    /// Database to read in this process (implies --embedded) [default:
    /// reproml.db].
    #[arg(long)]
    db: Option<PathBuf>,
    /// The variants to compare, the reference first: each other variant is
    /// compared with it (default: buggy,corrected, or the only two
    /// variants). E.g. `--variants torch-1.13,torch-2.15,burn`.
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
    /// Compare every pair of the variants, not only each with the reference.
    #[arg(long)]
    all_pairs: bool,
    /// Use every run instead of truncating both variants to the smaller number.
    #[arg(long)]
    all_runs: bool,
    /// Compare only these runs of every variant, as run indices from 0:
    /// `N`, `A..B` (B excluded), `A-B` (B included) or a comma-separated
    /// list; e.g. `--runs 0..10` for the first ten runs of each side.
    #[arg(long)]
    runs: Option<reproml_core::selection::RunSelection>,
    /// Significance level of the verdicts (after Holm's correction).
    #[arg(long, default_value_t = 0.05, value_parser = significance, allow_negative_numbers = true)]
    alpha: f64,
    /// Equivalence margin: the largest shift of a metric (in its own units,
    /// 0.01 = one percentage point) that counts as no practical difference.
    #[arg(long, default_value_t = reproml_report::DEFAULT_MARGIN, value_parser = margin, allow_negative_numbers = true)]
    margin: f64,
}

/// A significance level: strictly between 0 and 0.5.
fn significance(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v > 0.0 && v < 0.5 {
        Ok(v)
    } else {
        Err(format!(
            "{v} must lie strictly between 0 and 0.5 (e.g. 0.05)"
        ))
    }
}

/// An equivalence margin: positive and finite.
fn margin(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v > 0.0 && v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{v} must be a positive number (e.g. 0.01)"))
    }
}

/// Arguments of `reproml compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    source: Source,
    /// Print the comparison as JSON (the report's `report.json`).
    #[arg(long, conflicts_with = "csv_out")]
    json: bool,
    /// Print the comparison as CSV (the report's `report.csv`).
    #[arg(long = "csv-out")]
    csv_out: bool,
    /// Exit with status 3 when any comparison detects a difference, e.g. to
    /// gate a framework release in CI (after printing the comparison).
    #[arg(long)]
    fail_on_difference: bool,
}

/// Arguments of `reproml report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    source: Source,
    /// Folder for index.html, report.md/.csv/.json and the figures (SVG, PNG).
    #[arg(long, default_value = "reproml-report")]
    out: PathBuf,
    /// Title of the report.
    #[arg(long, default_value = "ReproduceML comparison")]
    title: String,
    /// Print the comparison as JSON instead of the terminal summary.
    #[arg(long)]
    json: bool,
    /// Exit with status 3 when any comparison detects a difference.
    #[arg(long)]
    fail_on_difference: bool,
}

impl Source {
    /// The comparison, its rows, and the experiments' specs (none when
    /// read from CSV files).
    fn load(&self) -> Result<(Report, Vec<RunSummary>, Vec<ExperimentSpec>)> {
        let mut specs = Vec::new();
        let (mut rows, expected) = if !self.csv_in.is_empty() {
            let mut rows = Vec::new();
            for path in &self.csv_in {
                rows.extend(crate::files::read_runs_csv(path)?);
            }
            (rows, BTreeMap::new())
        } else {
            let args = crate::connect::ServerArgs::reading(
                self.server.clone(),
                self.token_file.clone(),
                self.ca_cert.clone(),
                self.embedded,
                self.db.clone(),
            );
            let connection = args.connect_existing()?;
            let (rows, expected) = recorded_rows(
                &connection.client,
                &self.experiments,
                self.prefix.as_deref(),
            )?;
            specs = crate::output::specs_of(&connection.client, &rows)?;
            (rows, expected)
        };
        if !self.csv_in.is_empty() {
            rows.retain(|r| {
                selected(
                    r.experiment.as_str(),
                    &self.experiments,
                    self.prefix.as_deref(),
                )
            });
        }
        let mut expected = expected;
        if let Some(selection) = &self.runs {
            // † marks runs missing from the selection; the report says
            // which runs it compares.
            for planned in expected.values_mut() {
                *planned = selection.below(*planned).len() as u32;
            }
        }
        if rows.is_empty() {
            bail!("no recorded runs match; train some with `reproml run`");
        }
        if self.variants.len() == 1 {
            return Err(crate::connect::usage(&format!(
                "--variants names the variants to compare, the reference first: at least two (e.g. buggy,corrected); got {:?}",
                self.variants
            )));
        }
        let options = CompareOptions {
            variants: self.variants.clone(),
            all_pairs: self.all_pairs,
            all_runs: self.all_runs,
            expected_runs: expected,
            alpha: Some(self.alpha),
            margin: Some(self.margin),
            selection: self.runs.clone(),
            ..CompareOptions::default()
        };
        Ok((compare(&rows, &options)?, rows, specs))
    }
}

/// Runs `reproml compare`.
pub fn run_compare(args: CompareArgs) -> Result<()> {
    let (report, _, _) = args.source.load()?;
    if args.json {
        crate::output::print_json(&report)?;
    } else if args.csv_out {
        print!("{}", to_csv(&report));
    } else {
        crate::output::print_summary(&report);
    }
    crate::output::gate(&report, args.fail_on_difference)
}

/// Runs `reproml report`.
pub fn run_report(args: ReportArgs) -> Result<()> {
    let (report, rows, specs) = args.source.load()?;
    let provenance = crate::output::provenance(&rows, &specs);
    let page = write_report(&args.out, &report, &rows, &args.title, &provenance)
        .with_context(|| format!("cannot write the report into {}", args.out.display()))?;
    if args.json {
        crate::output::print_json(&report)?;
        if !crate::output::quiet() {
            eprintln!("report: {}", page.display());
        }
    } else {
        crate::output::print_summary(&report);
        println!("\nreport: {}", page.display());
    }
    crate::output::gate(&report, args.fail_on_difference)
}
