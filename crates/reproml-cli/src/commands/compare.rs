//! `reproml compare` and `reproml report`: the variants of experiments,
//! tested and summarised.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use reproml_client::Client;
use reproml_report::{
    CompareOptions, Report, RunRow, compare, to_csv, to_markdown, verdict_lines, write_report,
};

/// Where the runs come from and how to compare them.
#[derive(Debug, Args)]
pub struct Source {
    /// Experiments to compare (identifiers); all when left out.
    experiments: Vec<String>,
    /// Compare every experiment whose identifier starts with this.
    #[arg(long)]
    prefix: Option<String>,
    /// Read runs from a CSV export (`GET /v1/experiments/{id}/runs?format=csv`)
    /// instead of a server.
    #[arg(long, conflicts_with_all = ["server", "embedded"])]
    csv: Vec<PathBuf>,
    /// URL of a running `reproml server`.
    #[arg(long, conflicts_with = "embedded")]
    server: Option<String>,
    /// File holding the server's bearer token.
    #[arg(long, requires = "server")]
    token_file: Option<PathBuf>,
    /// Read the runs from a database in this process.
    #[arg(long)]
    embedded: bool,
    /// Database for --embedded.
    #[arg(long, default_value = "reproml.db")]
    db: PathBuf,
    /// The two variants to compare, baseline first (default: buggy,corrected,
    /// or the only two variants).
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
    /// Use every run instead of truncating both variants to the smaller number.
    #[arg(long)]
    all_runs: bool,
    /// Significance level of the verdicts (after Holm's correction).
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
}

/// Arguments of `reproml compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    source: Source,
    /// Print the comparison as JSON.
    #[arg(long, conflicts_with = "csv_out")]
    json: bool,
    /// Print the comparison as CSV.
    #[arg(long = "csv-out")]
    csv_out: bool,
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
}

fn parse_csv(path: &PathBuf) -> Result<Vec<RunRow>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, record) in reader.deserialize::<CsvRow>().enumerate() {
        let r = record.with_context(|| {
            format!(
                "{}: row {} is not a run of the CSV export",
                path.display(),
                i + 2
            )
        })?;
        rows.push(RunRow {
            experiment: r.experiment,
            variant: r.variant,
            run: r.run,
            seed: r.seed,
            seed_policy: r.seed_policy,
            accuracy: r.accuracy,
            precision: r.precision,
            recall: r.recall,
            f1: r.f1,
            final_digest: r.final_digest,
        });
    }
    Ok(rows)
}

/// The columns `reproml compare` needs from a CSV export (others ignored).
#[derive(serde::Deserialize)]
struct CsvRow {
    experiment: String,
    variant: String,
    run: u32,
    seed: u64,
    seed_policy: reproml_core::SeedPolicy,
    accuracy: f64,
    precision: f64,
    recall: f64,
    f1: f64,
    final_digest: String,
}

/// Loads the rows and the planned run counts from a server.
pub fn rows_from_server(
    client: &Client,
    wanted: &[String],
    prefix: Option<&str>,
) -> Result<(Vec<RunRow>, BTreeMap<String, u32>)> {
    let mut rows = Vec::new();
    let mut expected = BTreeMap::new();
    for e in client.experiments()? {
        let id = e.spec.id.to_string();
        let selected =
            (wanted.is_empty() || wanted.contains(&id)) && prefix.is_none_or(|p| id.starts_with(p));
        if !selected {
            continue;
        }
        expected.insert(id.clone(), e.spec.runs);
        for r in client.runs(&e.spec.id, None)? {
            rows.push(RunRow {
                experiment: id.clone(),
                variant: r.variant.to_string(),
                run: r.run,
                seed: r.result.seed,
                seed_policy: e.spec.seed_policy,
                accuracy: r.result.metrics.accuracy,
                precision: r.result.metrics.precision,
                recall: r.result.metrics.recall,
                f1: r.result.metrics.f1,
                final_digest: r.result.final_digest().unwrap_or_default().to_owned(),
            });
        }
    }
    for w in wanted {
        if !expected.contains_key(w) {
            bail!("no experiment {w} on the server");
        }
    }
    Ok((rows, expected))
}

impl Source {
    fn load(&self) -> Result<(Report, Vec<RunRow>)> {
        let (mut rows, expected) = if !self.csv.is_empty() {
            let mut rows = Vec::new();
            for path in &self.csv {
                rows.extend(parse_csv(path)?);
            }
            (rows, BTreeMap::new())
        } else {
            let args = super::connect::ServerArgs {
                server: self.server.clone(),
                token_file: self.token_file.clone(),
                embedded: self.embedded || self.server.is_none(),
                db: self.db.clone(),
                master_seed: None,
            };
            let connection = args.connect()?;
            rows_from_server(
                &connection.client,
                &self.experiments,
                self.prefix.as_deref(),
            )?
        };
        if !self.csv.is_empty() {
            rows.retain(|r| {
                (self.experiments.is_empty() || self.experiments.contains(&r.experiment))
                    && self
                        .prefix
                        .as_deref()
                        .is_none_or(|p| r.experiment.starts_with(p))
            });
        }
        if rows.is_empty() {
            bail!("no recorded runs match; train some with `reproml run`");
        }
        let variants = match &self.variants[..] {
            [] => None,
            [a, b] => Some((a.clone(), b.clone())),
            other => bail!(
                "--variants takes two variants, baseline first (e.g. buggy,corrected); got {other:?}"
            ),
        };
        let options = CompareOptions {
            variants,
            all_runs: self.all_runs,
            expected_runs: expected,
            alpha: Some(self.alpha),
        };
        Ok((compare(&rows, &options)?, rows))
    }
}

/// Prints the verdicts and the Table-V-style table.
pub fn print_summary(report: &Report) {
    println!("{}", to_markdown(report));
    for line in verdict_lines(report) {
        println!("- {line}");
    }
}

/// Runs `reproml compare`.
pub fn run_compare(args: CompareArgs) -> Result<()> {
    let (report, _) = args.source.load()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.csv_out {
        print!("{}", to_csv(&report));
    } else {
        print_summary(&report);
    }
    Ok(())
}

/// Runs `reproml report`.
pub fn run_report(args: ReportArgs) -> Result<()> {
    let (report, rows) = args.source.load()?;
    let page = write_report(&args.out, &report, &rows, &args.title)
        .with_context(|| format!("cannot write the report into {}", args.out.display()))?;
    print_summary(&report);
    println!("\nreport: {}", page.display());
    Ok(())
}
