//! `reproml stats`: the tests of `reproml-stats` on numbers from the
//! command line or from files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use reproml_stats::{
    Alternative, MannWhitneyOptions, Method, TestResult, WilcoxonOptions, ZeroMethod,
    mann_whitney_u, wilcoxon,
};
use serde::Serialize;

/// The tests `reproml stats` runs.
#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// Mann-Whitney U test of two independent samples (scipy.stats.mannwhitneyu).
    ///
    /// The statistic is U of the first sample. `auto` uses the exact
    /// distribution when either sample has at most 8 values and there are
    /// no ties, the normal approximation otherwise.
    #[command(
        after_long_help = "Examples:\n  reproml stats mannwhitneyu --x 0.91,0.93,0.92 --y 0.95,0.96,0.94\n  reproml stats mannwhitneyu --x-file buggy.txt --y-file corrected.txt \\\n      --method asymptotic --json"
    )]
    #[command(name = "mannwhitneyu")]
    MannWhitneyU {
        #[command(flatten)]
        samples: Samples,
        /// Alternative hypothesis: two-sided, less (x below y) or greater.
        #[arg(long, default_value = "two-sided")]
        alternative: Alternative,
        /// How the p-value is computed: auto, exact or asymptotic.
        #[arg(long, default_value = "auto")]
        method: Method,
        /// Turn off the continuity correction of the asymptotic method.
        #[arg(long)]
        no_continuity: bool,
        /// Print {"statistic": …, "pvalue": …, "method": …} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Wilcoxon signed-rank test of paired samples (scipy.stats.wilcoxon).
    ///
    /// The statistic is min(R+, R−) for two-sided tests, R+ otherwise.
    /// `auto`: above 50 pairs asymptotic; otherwise exact without ties or
    /// zeros, an exact permutation test with them (up to 13 pairs),
    /// asymptotic beyond.
    #[command(
        after_long_help = "Examples:\n  reproml stats wilcoxon --x 0.91,0.93,0.92,0.90 --y 0.95,0.96,0.94,0.97\n  reproml stats wilcoxon --x-file buggy.txt --y-file corrected.txt --zero-method pratt"
    )]
    Wilcoxon {
        #[command(flatten)]
        samples: Samples,
        /// Treatment of zero differences: wilcox (drop), pratt or zsplit.
        #[arg(long, default_value = "wilcox")]
        zero_method: ZeroMethod,
        /// Apply the continuity correction to the normal approximation.
        #[arg(long)]
        correction: bool,
        /// How the p-value is computed: auto, exact or asymptotic.
        #[arg(long, default_value = "auto")]
        method: Method,
        /// Alternative hypothesis: two-sided, less (x below y) or greater.
        #[arg(long, default_value = "two-sided")]
        alternative: Alternative,
        /// Print {"statistic": …, "pvalue": …, "method": …} as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The two samples, inline or from files.
#[derive(Debug, Args)]
pub struct Samples {
    /// First sample, comma-separated (e.g. 0.91,0.92,0.90).
    #[arg(
        long,
        value_delimiter = ',',
        allow_negative_numbers = true,
        required_unless_present = "x_file",
        conflicts_with = "x_file"
    )]
    x: Vec<f64>,
    /// Second sample, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        allow_negative_numbers = true,
        required_unless_present = "y_file",
        conflicts_with = "y_file"
    )]
    y: Vec<f64>,
    /// Read the first sample from a file: one number per line (blank lines
    /// and lines starting with # are skipped).
    #[arg(long)]
    x_file: Option<PathBuf>,
    /// Read the second sample from a file, like --x-file.
    #[arg(long)]
    y_file: Option<PathBuf>,
}

/// Largest sample file read, in bytes.
const MAX_SAMPLE_FILE_BYTES: u64 = 64 << 20;

impl Samples {
    fn load(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let pick = |inline: &Vec<f64>, file: &Option<PathBuf>| match file {
            Some(path) => read_sample_file(path),
            None => Ok(inline.clone()),
        };
        Ok((pick(&self.x, &self.x_file)?, pick(&self.y, &self.y_file)?))
    }
}

fn read_sample_file(path: &Path) -> Result<Vec<f64>> {
    let text = crate::files::read_text_file(path, MAX_SAMPLE_FILE_BYTES, "sample file")?;
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let value: f64 = line
            .parse()
            .with_context(|| format!("{}:{}: {line:?} is not a number", path.display(), i + 1))?;
        values.push(value);
    }
    Ok(values)
}

#[derive(Serialize)]
struct JsonResult {
    statistic: f64,
    pvalue: f64,
    method: reproml_stats::MethodUsed,
}

fn print(
    name: &str,
    statistic_name: &str,
    result: &TestResult,
    alternative: Alternative,
    json: bool,
) -> Result<()> {
    if json {
        let out = JsonResult {
            statistic: result.statistic,
            pvalue: result.pvalue,
            method: result.method,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        let alternative = serde_json::to_value(alternative)?;
        let method = serde_json::to_value(result.method)?;
        println!(
            "{name}: {statistic_name} = {}, p = {} ({}, {})",
            result.statistic,
            result.pvalue,
            alternative.as_str().unwrap_or_default(),
            method.as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// Runs a `reproml stats` subcommand.
pub fn run(cmd: StatsCommand) -> Result<()> {
    match cmd {
        StatsCommand::MannWhitneyU {
            samples,
            alternative,
            method,
            no_continuity,
            json,
        } => {
            let (x, y) = samples.load()?;
            let opts = MannWhitneyOptions {
                alternative,
                method,
                continuity: !no_continuity,
            };
            let result = mann_whitney_u(&x, &y, &opts)?;
            print("Mann-Whitney U", "U", &result, alternative, json)
        }
        StatsCommand::Wilcoxon {
            samples,
            zero_method,
            correction,
            method,
            alternative,
            json,
        } => {
            let (x, y) = samples.load()?;
            let opts = WilcoxonOptions {
                zero_method,
                correction,
                alternative,
                method,
            };
            let result = wilcoxon(&x, &y, &opts)?;
            let statistic = if alternative == Alternative::TwoSided {
                "min(R+, R-)"
            } else {
                "R+"
            };
            print(
                "Wilcoxon signed-rank",
                statistic,
                &result,
                alternative,
                json,
            )
        }
    }
}
