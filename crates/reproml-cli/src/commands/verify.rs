//! `reproml verify`: train one run twice and compare every parameter after
//! every epoch.

use anyhow::{Result, bail};
use clap::Args;
use reproml_core::{ExperimentId, RunIndex};
use reproml_train::Fault;

use super::connect::ServerArgs;

/// Arguments of `reproml verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The experiment.
    #[arg(long)]
    experiment: ExperimentId,
    /// Create the experiment from this spec if it does not exist.
    #[arg(long)]
    spec: Option<std::path::PathBuf>,
    /// The run to train twice.
    #[arg(long, default_value_t = 0)]
    run: RunIndex,
    /// Inject a defect in both trainings (see `reproml run --help`).
    #[arg(long, default_value = "none")]
    fault: Fault,
}

/// Runs `reproml verify`; fails when the trainings diverge.
pub fn run(args: VerifyArgs) -> Result<()> {
    let connection = args.server.connect()?;
    let experiment =
        super::run::experiment(&connection.client, &args.experiment, args.spec.as_ref())?;
    let train = || {
        super::run::train_run(
            &connection.client,
            &experiment,
            args.run,
            &args.fault,
            &mut |_| {},
        )
    };
    eprintln!("training run {} of {} twice …", args.run, args.experiment);
    let (first, second) = (train()?, train()?);
    let names = &first.param_names;
    for (e, (a, b)) in first.snapshots.iter().zip(&second.snapshots).enumerate() {
        if a.model != b.model {
            let tensor = a
                .params
                .iter()
                .zip(&b.params)
                .position(|(x, y)| x != y)
                .map(|i| {
                    names
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("parameter {i}"))
                })
                .unwrap_or_else(|| "(the parameter layout)".into());
            bail!(
                "NOT deterministic: the trainings diverge in epoch {}, first in tensor {tensor}",
                e + 1
            );
        }
    }
    let last = first
        .snapshots
        .last()
        .map(|s| s.model.as_str())
        .unwrap_or_default();
    println!(
        "deterministic: {} epochs × {} tensors bit-identical; final digest {last}",
        first.snapshots.len(),
        first.snapshots.first().map_or(0, |s| s.params.len())
    );
    Ok(())
}
