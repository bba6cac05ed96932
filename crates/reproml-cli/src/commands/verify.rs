//! `reproml verify`: train one run twice and compare every parameter after
//! every epoch.

use anyhow::{Result, bail};
use clap::Args;
use reproml_core::RunIndex;
use reproml_core::fault::Fault;
use reproml_runner::run::train_run;
use reproml_train::verify::first_divergence;

use crate::connect::{ExperimentArgs, ServerArgs};

/// Arguments of `reproml verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    experiment: ExperimentArgs,
    /// The run to train twice.
    #[arg(long, default_value_t = RunIndex::new(0))]
    run: RunIndex,
    /// Inject a defect in both trainings (see `reproml run --help`).
    #[arg(long, default_value = "none")]
    fault: Fault,
}

/// Runs `reproml verify`; fails when the trainings diverge.
pub fn run(args: VerifyArgs) -> Result<()> {
    let connection = args.server.connect()?;
    let client = &connection.client;
    let experiment = args.experiment.resolve(client)?;
    let train = || train_run(client, &experiment, args.run, &args.fault, &mut |_| {});
    eprintln!(
        "training run {} of {} twice …",
        args.run, args.experiment.experiment
    );
    let (first, second) = (train()?, train()?);
    if let Some(d) = first_divergence(&first, &second) {
        bail!(
            "NOT deterministic: the trainings diverge in epoch {}, first in tensor {}",
            d.epoch,
            d.tensor
        );
    }
    println!(
        "deterministic: {} epochs × {} tensors bit-identical; final digest {}",
        first.snapshots.len(),
        first.snapshots.first().map_or(0, |s| s.params.len()),
        first.result.final_digest().unwrap_or_default()
    );
    Ok(())
}
