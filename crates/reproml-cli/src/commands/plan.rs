//! `reproml plan`: how many runs per side a study needs, by simulating its
//! own test on the spread of pilot runs (or a given spread).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args};
use reproml_core::metrics::Metric;
use reproml_stats::power::{Effect, Plan, PlanOptions, Spread, plan};

/// Arguments of `reproml plan`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("effect").required(true).args(["a12", "shift"])),
    // Not `required`: the pilot's server may come from REPROML_SERVER.
    group(ArgGroup::new("spread").args(["sd", "csv_in", "server", "embedded"])),
    after_help = "Examples:\n  \
        reproml plan --a12 0.7 --sd 0.007 --tests 72\n  \
        reproml plan --shift 0.01 --embedded --db reproml-demo/reproml.db \\\n      \
        --experiment demo-real-fault --variant corrected\n  \
        reproml plan --a12 0.64 --csv-in runs.csv --variant corrected --json"
)]
pub struct PlanArgs {
    /// The effect to detect as Vargha-Delaney A12 (e.g. 0.71: a run of the
    /// treatment beats a baseline run 71 % of the time).
    #[arg(long)]
    a12: Option<f64>,
    /// The effect to detect as a shift of the metric (e.g. 0.01: one
    /// percentage point of accuracy).
    #[arg(long, allow_negative_numbers = true)]
    shift: Option<f64>,
    /// The run-to-run standard deviation of the metric, when no pilot runs
    /// exist (normal distribution assumed).
    #[arg(long)]
    sd: Option<f64>,
    /// Pilot runs from a CSV export of runs (resampled as they are).
    #[arg(long, alias = "csv", value_name = "FILE", requires = "variant")]
    csv_in: Option<PathBuf>,
    /// Pilot runs from a running server [default: $REPROML_SERVER, else
    /// the database of --embedded].
    #[arg(long, requires_all = ["experiment", "variant"])]
    server: Option<String>,
    /// File holding the server's bearer token [default: $REPROML_TOKEN_FILE].
    #[arg(long, conflicts_with = "embedded")]
    token_file: Option<PathBuf>,
    /// CA certificate(s) to trust for an https:// server (PEM)
    /// [default: $REPROML_CA_CERT].
    #[arg(long, value_name = "PEM", conflicts_with = "embedded")]
    ca_cert: Option<PathBuf>,
    /// Pilot runs from a database read in this process (reproml.db, or --db).
    #[arg(long, requires_all = ["experiment", "variant"], conflicts_with = "server")]
    embedded: bool,
    /// Pilot runs from this database, read in this process (implies
    /// --embedded).
    #[arg(long, requires_all = ["experiment", "variant"], conflicts_with_all = ["server", "sd", "csv_in"])]
    db: Option<PathBuf>,
    /// The pilot experiment (required with a server; with --csv-in, when
    /// the file holds several).
    #[arg(long)]
    experiment: Option<String>,
    /// The pilot variant whose runs give the spread.
    #[arg(long)]
    variant: Option<String>,
    /// The metric the pilot's spread is read from.
    #[arg(long, default_value = "accuracy")]
    metric: Metric,
    /// Tests in the study's Holm family: comparisons × 4 metrics (4 for one
    /// bug; 72 for the paper's 18 bugs).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    tests: u64,
    /// Significance level before the correction.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Power wanted.
    #[arg(long, default_value_t = 0.8)]
    power: f64,
    /// Simulated studies per sample size (more: a smoother curve, slower).
    #[arg(long, default_value_t = 2000)]
    simulations: usize,
    /// Largest number of runs per side considered.
    #[arg(long, default_value_t = 500)]
    max_runs: usize,
    /// Seed of the simulation (the same seed gives the same plan).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

impl PlanArgs {
    /// The spread, and where it came from in words.
    fn spread(&self) -> Result<(Spread, String)> {
        if let Some(sd) = self.sd {
            return Ok((Spread::Normal { sd }, format!("a normal spread, sd {sd}")));
        }
        let from_server = self.server.is_some()
            || self.embedded
            || self.db.is_some()
            || crate::connect::server_from_env().is_some();
        if self.csv_in.is_none() && !from_server {
            return Err(crate::connect::usage(
                "the spread comes from --sd, pilot runs (--csv-in FILE, or --experiment and \
                 --variant on --server URL, $REPROML_SERVER or --db FILE)",
            ));
        }
        if self.csv_in.is_none() && (self.experiment.is_none() || self.variant.is_none()) {
            return Err(crate::connect::usage(
                "pilot runs on a server need --experiment and --variant",
            ));
        }
        let variant = self.variant.as_deref().unwrap_or_default();
        let rows = if let Some(path) = &self.csv_in {
            crate::files::read_runs_csv(path)?
        } else {
            let args = crate::connect::ServerArgs::reading(
                self.server.clone(),
                self.token_file.clone(),
                self.ca_cert.clone(),
                self.embedded,
                self.db.clone(),
            );
            let connection = args.connect_existing()?;
            let experiment = self.experiment.as_deref().unwrap_or_default();
            reproml_runner::results::recorded_rows(&connection.client, &[experiment.into()], None)?
                .0
        };
        let experiments: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.experiment.as_str()).collect();
        let experiment = match (&self.experiment, experiments.len()) {
            (Some(e), _) => e.clone(),
            (None, 1) => experiments
                .iter()
                .next()
                .map(|e| (*e).to_owned())
                .unwrap_or_default(),
            (None, _) => bail!(
                "the pilot runs come from several experiments ({}); name one with --experiment",
                experiments.into_iter().collect::<Vec<_>>().join(", ")
            ),
        };
        let values: Vec<f64> = rows
            .iter()
            .filter(|r| r.experiment.as_str() == experiment && r.variant.as_str() == variant)
            .map(|r| r.metric(self.metric))
            .collect();
        if values.len() < 2 {
            bail!(
                "experiment {experiment} has {} run(s) of variant {variant}; a pilot needs at least 2 (train more with `reproml run`, or give --sd)",
                values.len()
            );
        }
        if values.len() < 10 {
            eprintln!(
                "warning: {} pilot runs: resampled samples of more runs repeat the same few values, \
                 so the simulated spread is coarse; 10 or more pilot runs give a steadier plan",
                values.len()
            );
        }
        let what = format!(
            "{} pilot runs of {experiment} / {variant} ({})",
            values.len(),
            self.metric
        );
        Ok((Spread::Pilot { values }, what))
    }
}

/// Runs `reproml plan`.
pub fn run(args: PlanArgs) -> Result<()> {
    let effect = match (args.a12, args.shift) {
        (Some(a), _) => Effect::A12(a),
        (None, Some(d)) => Effect::Shift(d),
        (None, None) => bail!("give the effect to detect: --a12 or --shift"),
    };
    let (spread, source) = args.spread()?;
    let options = PlanOptions {
        alpha: args.alpha,
        tests: args.tests as usize,
        power: args.power,
        simulations: args.simulations,
        max_runs: args.max_runs,
        seed: args.seed,
    };
    let result = plan(effect, &spread, &options).context("cannot plan")?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "effect": effect,
                "spread": source,
                "options": options,
                "plan": result,
            }))?
        );
    } else {
        print_plan(&result, &options, &source);
    }
    Ok(())
}

fn print_plan(p: &Plan, o: &PlanOptions, source: &str) {
    println!("effect:     A12 = {:.3}, a shift of {:+.4}", p.a12, p.shift);
    println!(
        "test:       two-sided Mann-Whitney U, α = {} after Holm over {} tests (strictest step: p < {:.5})",
        o.alpha, o.tests, p.level
    );
    println!("spread:     {source}");
    println!(
        "simulation: {} studies per size, seed {}\n",
        o.simulations, o.seed
    );
    println!("  runs per side   power");
    for point in &p.curve {
        println!("  {:>13}   {:.3}", point.runs, point.power);
    }
    println!();
    match p.runs {
        Some(n) => println!(
            "=> {n} runs per side for power {} (the normal approximation of Noether 1987 gives {:.0}).",
            o.power,
            p.noether_runs.ceil()
        ),
        None => println!(
            "=> even {} runs per side fall short of power {}: a smaller effect than a study can find \
             here (raise --max-runs, or plan for a larger effect).",
            o.max_runs, o.power
        ),
    }
}
