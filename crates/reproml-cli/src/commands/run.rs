//! `reproml run`: train an experiment's runs for one variant and report them.

use anyhow::{Result, bail};
use clap::Args;
use reproml_core::VariantLabel;
use reproml_core::fault::Fault;
use reproml_core::selection::RunSelection;
use reproml_runner::{VariantPlan, threads_per_run, train_variant};
use reproml_train::device::ComputeDevice;

use crate::connect::{ExperimentArgs, ServerArgs};
use crate::progress::Bars;

/// Arguments of `reproml run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    experiment: ExperimentArgs,
    /// The variant (evaluation type) these runs belong to, e.g. buggy or corrected.
    #[arg(long)]
    variant: VariantLabel,
    /// Runs to train, as run indices from 0: `N`, `A..B` (B excluded),
    /// `A-B` (B included) or a comma-separated list (`0-3,7,9`); all of the
    /// experiment's runs when left out.
    #[arg(long)]
    runs: Option<RunSelection>,
    /// Runs trained in parallel; the results are bit-identical to --jobs 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: u32,
    /// Threads each run's kernels use; default: the cores divided among
    /// the jobs. Results do not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    /// Where the kernels run: cpu (burn's flex backend, bit-repeatable),
    /// cuda or cuda:N (an NVIDIA GPU; builds with `--features cuda`).
    /// Recorded in the fingerprint and the artifact.
    #[arg(long, default_value = "cpu")]
    device: ComputeDevice,
    /// Print one JSON object per finished run on standard output.
    #[arg(long)]
    json: bool,
    /// Inject a defect (for calibrating a study): momentum-ignored,
    /// grad-scale[=EPS[@PARAM]], dropout-scale[=SCALE], tanh-offset[=OFFSET].
    /// Recorded in the fingerprint and the artifact.
    #[arg(long, default_value = "none")]
    fault: Fault,
}

/// Runs `reproml run`.
pub fn run(args: RunArgs) -> Result<()> {
    reproml_train::device::select(args.device)?;
    let connection = args.server.connect()?;
    let client = &connection.client;
    let experiment = args.experiment.resolve(client)?;
    let runs = args
        .runs
        .clone()
        .unwrap_or_else(|| RunSelection::first(experiment.spec.runs));
    crate::interrupt::on_interrupt(
        client,
        vec![(
            experiment.spec.id.clone(),
            args.variant.clone(),
            runs.clone(),
        )],
    );
    let plan = VariantPlan {
        experiment: &experiment,
        variant: &args.variant,
        runs,
        jobs: args.jobs,
        threads: threads_per_run(args.jobs, args.threads),
        fault: &args.fault,
    };
    let failed = train_variant(client, &plan, &Bars::new(args.json))?.failed;
    if !failed.is_empty() {
        bail!(
            "{} run(s) failed: {failed:?}; run the same command again to retry them",
            failed.len()
        );
    }
    Ok(())
}
