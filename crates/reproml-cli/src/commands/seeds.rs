//! `reproml seeds`: the seeds an experiment's runs get.

use anyhow::Result;
use clap::Args;
use reproml_core::{ExperimentId, RunIndex, Seed, SeedPolicy, seed};
use serde::Serialize;

/// Arguments of `reproml seeds`.
#[derive(Debug, Args)]
pub struct SeedsArgs {
    /// The experiment identifier (letters, digits, '.', '_', '-').
    #[arg(long)]
    experiment: ExperimentId,
    /// The master seed the server derives every experiment's seeds from.
    #[arg(long)]
    master_seed: u64,
    /// How many runs to list (runs 0 … COUNT−1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=reproml_core::spec::MAX_RUNS as i64))]
    count: u32,
    /// Seed policy: per-run (run i gets s_i) or fixed (every run gets s_0).
    #[arg(long, default_value = "per-run", value_parser = parse_policy)]
    policy: SeedPolicy,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct SeedList<'a> {
    experiment: &'a ExperimentId,
    master_seed: u64,
    policy: SeedPolicy,
    runs: Vec<RunSeed>,
}

#[derive(Serialize)]
struct RunSeed {
    run: RunIndex,
    seed: Seed,
}

fn parse_policy(s: &str) -> Result<SeedPolicy, String> {
    match s {
        "per-run" => Ok(SeedPolicy::PerRun),
        "fixed" => Ok(SeedPolicy::Fixed),
        _ => Err(format!("unknown seed policy {s:?}; use per-run or fixed")),
    }
}

/// Runs `reproml seeds`.
pub fn run(args: &SeedsArgs) -> Result<()> {
    let runs = RunIndex::first(args.count)
        .map(|run| RunSeed {
            run,
            seed: seed::run_seed(args.master_seed, &args.experiment, args.policy, run),
        })
        .collect();
    let list = SeedList {
        experiment: &args.experiment,
        master_seed: args.master_seed,
        policy: args.policy,
        runs,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        println!(
            "# experiment {} · master seed {} · policy {}",
            list.experiment,
            list.master_seed,
            list.policy.as_str()
        );
        println!("{:>5}  {:>16}", "run", "seed");
        for r in &list.runs {
            println!("{:>5}  {:>16}", r.run, r.seed);
        }
    }
    Ok(())
}
