//! `reproml verify`: train one run twice and compare every parameter after
//! every epoch.

use anyhow::Result;
use clap::Args;
use reproml_core::RunIndex;
use reproml_core::fault::Fault;
use reproml_runner::run::train_run;
use reproml_train::device::ComputeDevice;
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
    /// Where the kernels run: cpu (burn's flex backend, bit-repeatable),
    /// cuda or cuda:N (an NVIDIA GPU; builds with `--features cuda`). Both
    /// trainings run in this process: on a GPU, kernels picked by timing
    /// are reused within a process, so separate processes can still differ
    /// (scripts/gpu-determinism.sh compares those).
    #[arg(long, default_value = "cpu")]
    device: ComputeDevice,
    /// Print the outcome as JSON (also when the trainings diverge).
    #[arg(long)]
    json: bool,
}

/// `verify --json`'s outcome.
#[derive(serde::Serialize)]
struct Outcome<'a> {
    experiment: &'a str,
    run: RunIndex,
    deterministic: bool,
    epochs: usize,
    tensors: usize,
    /// The first epoch and tensor whose bits differ.
    first_divergence: Option<(u32, &'a str)>,
    final_digest: &'a str,
}

/// Runs `reproml verify`; exits with status 3 when the trainings diverge.
pub fn run(args: VerifyArgs) -> Result<()> {
    reproml_train::device::select(args.device)?;
    let connection = args.server.connect()?;
    let client = &connection.client;
    let experiment = args.experiment.resolve(client)?;
    let train = || train_run(client, &experiment, args.run, &args.fault, &mut |_| {});
    if !crate::output::quiet() {
        eprintln!(
            "training run {} of {} twice …",
            args.run, args.experiment.experiment
        );
    }
    let (first, second) = (train()?, train()?);
    let divergence = first_divergence(&first, &second);
    if args.json {
        crate::output::print_json(&Outcome {
            experiment: args.experiment.experiment.as_str(),
            run: args.run,
            deterministic: divergence.is_none(),
            epochs: first.snapshots.len(),
            tensors: first.snapshots.first().map_or(0, |s| s.params.len()),
            first_divergence: divergence.as_ref().map(|d| (d.epoch, d.tensor.as_str())),
            final_digest: first.result.final_digest().unwrap_or_default(),
        })?;
    }
    if let Some(d) = divergence {
        // Status 3, as a detected difference: a script tells "not
        // deterministic" apart from a failure to train (1).
        return Err(crate::output::Exit {
            code: crate::output::EXIT_DIFFERENCE,
            message: format!(
                "NOT deterministic: the trainings diverge in epoch {}, first in tensor {}",
                d.epoch, d.tensor
            ),
        }
        .into());
    }
    if args.json {
        return Ok(());
    }
    if args.device != ComputeDevice::Cpu && !crate::output::quiet() {
        eprintln!(
            "note: both trainings ran in this process; on {}, kernels chosen by timing are \
             reused within a process, so two processes can still differ",
            args.device
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
