//! One run, as the protocol has it: the run's seed and verified splits
//! from the server, training on the engine, the result posted back.

use reproml_client::{Client, Experiment};
use reproml_core::fault::Fault;
use reproml_core::split::SplitName;
use reproml_core::{ExperimentId, ExperimentSpec, RunIndex};
use reproml_train::{EpochProgress, ModelRegistry, PreparedSplit, RunSettings, Trained};

use crate::RunnerError;

/// The experiment `id` from the server; created from `spec` when one is
/// given (an existing experiment must then have the same attributes).
/// `origin` names the spec's source in errors.
pub fn experiment(
    client: &Client,
    id: &ExperimentId,
    spec: Option<(&ExperimentSpec, &str)>,
) -> Result<Experiment, RunnerError> {
    match spec {
        Some((spec, origin)) => {
            if spec.id != *id {
                return Err(RunnerError::SpecMismatch {
                    origin: origin.to_owned(),
                    found: spec.id.clone(),
                    wanted: id.clone(),
                });
            }
            Ok(client.create_experiment(spec)?.0)
        }
        None => client.experiment(id).map_err(|e| match e.code() {
            Some(reproml_api::ProblemCode::ExperimentNotFound) => {
                RunnerError::ExperimentMissing(id.clone())
            }
            _ => e.into(),
        }),
    }
}

/// Fetches run `run`'s seed and verified splits and trains it with
/// `fault`; `on_epoch` hears of every epoch. Nothing is posted.
pub fn train_run(
    client: &Client,
    experiment: &Experiment,
    run: RunIndex,
    fault: &Fault,
    on_epoch: &mut dyn FnMut(EpochProgress),
) -> Result<Trained, RunnerError> {
    let id = &experiment.spec.id;
    let seed = client.seed(id, run)?.seed;
    let train = client.split(id, run, SplitName::Train, seed)?;
    let test = client.split(id, run, SplitName::Test, seed)?;
    let (a, b) = (&train.header, &test.header);
    if (&a.dataset_digest, a.shape, a.classes, &a.normalization)
        != (&b.dataset_digest, b.shape, b.classes, &b.normalization)
    {
        return Err(RunnerError::InconsistentSplits {
            experiment: id.clone(),
            run,
        });
    }
    let network = ModelRegistry::default()
        .build(
            experiment.spec.model.as_str(),
            train.header.shape,
            train.header.classes as usize,
        )
        .map_err(reproml_train::TrainError::from)?;
    let settings = RunSettings {
        spec: &experiment.spec,
        seed,
        classes: train.header.classes as usize,
        fault: fault.clone(),
    };
    let mut trained = reproml_train::train(
        &network,
        &PreparedSplit::new(&train),
        &PreparedSplit::new(&test),
        &settings,
        on_epoch,
    )?;
    // The data the run saw: every run of a variant must have seen the same.
    trained
        .result
        .fingerprint
        .insert("dataset".into(), train.header.dataset_digest.clone());
    Ok(trained)
}
