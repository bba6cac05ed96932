//! The training procedure, controlled by ReproduceML as in the paper: the
//! run's data in the run's order, initial weights and dropout masks from the
//! run's streams, SGD with PyTorch's momentum semantics, evaluation on the
//! test split after every epoch, a trajectory digest after every epoch.

use std::collections::BTreeMap;

use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};
use reproml_core::metrics::ConfusionMatrix;
use reproml_core::run::{Artifact, EpochRecord, RunResult, Scores};
use reproml_core::spec::Optimizer;
use reproml_core::split::epoch_order;
use reproml_core::stream::{Purpose, RandomStream};
use reproml_core::{ExperimentSpec, Seed};
use reproml_data::wire::DecodedSplit;
use reproml_data::{ImageShape, Normalization};

use crate::digest::{Snapshot, snapshot};
use crate::fault::{Fault, FaultEffects};
use crate::model::Network;
use crate::scaled_sum::scaled_sum;
use crate::{TrainError, fingerprint};

/// A split turned into model inputs once: normalised `f32` pixels.
pub struct PreparedSplit {
    shape: ImageShape,
    /// `(pixel / max − mean[c]) / std[c]` for every example, served order.
    inputs: Vec<f32>,
    labels: Vec<u8>,
    /// Data set index of each example.
    indices: Vec<u32>,
}

impl PreparedSplit {
    /// Normalises a verified split with the data set's own statistics.
    pub fn new(split: &DecodedSplit) -> Self {
        let shape = split.header.shape;
        let Normalization {
            max_value,
            mean,
            std,
        } = &split.header.normalization;
        let plane = (shape.height * shape.width) as usize;
        let scale = f64::from(*max_value);
        // One lookup table per channel: a pixel is one of 256 bytes.
        let tables: Vec<[f32; 256]> = (0..shape.channels as usize)
            .map(|c| std::array::from_fn(|p| ((p as f64 / scale - mean[c]) / std[c]) as f32))
            .collect();
        let mut inputs = Vec::with_capacity(split.len() * shape.pixels());
        for k in 0..split.len() {
            for (i, &p) in split.image(k).iter().enumerate() {
                inputs.push(tables[i / plane][p as usize]);
            }
        }
        Self {
            shape,
            inputs,
            labels: (0..split.len()).map(|k| split.label(k)).collect(),
            indices: split.indices(),
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn batch(&self, positions: &[usize], device: &Device) -> (Tensor<4>, Vec<u8>) {
        let size = self.shape.pixels();
        let mut data = Vec::with_capacity(positions.len() * size);
        let mut labels = Vec::with_capacity(positions.len());
        for &p in positions {
            data.extend_from_slice(&self.inputs[p * size..(p + 1) * size]);
            labels.push(self.labels[p]);
        }
        let s = self.shape;
        let dims = [
            positions.len(),
            s.channels as usize,
            s.height as usize,
            s.width as usize,
        ];
        (
            Tensor::<4>::from_data(TensorData::new(data, dims), device),
            labels,
        )
    }
}

/// What a run needs besides the model.
pub struct RunSettings<'a> {
    /// The experiment's attributes (epochs, batch sizes, optimiser).
    pub spec: &'a ExperimentSpec,
    /// The run's seed.
    pub seed: Seed,
    /// Number of classes of the challenge.
    pub classes: usize,
    /// Defect to inject, if any.
    pub fault: Fault,
}

/// Reported after each epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochProgress {
    /// Epoch just finished, from 1.
    pub epoch: u32,
    /// Of how many.
    pub epochs: u32,
    /// Mean training loss of the epoch.
    pub loss: f64,
    /// Test accuracy after the epoch.
    pub accuracy: f64,
    /// Wall-clock seconds the epoch took: its training steps, the digest
    /// of its parameters and its evaluation (not the parameters'
    /// initialisation before the first epoch).
    pub seconds: f64,
}

/// A finished run: the result to post and the per-epoch digests.
#[derive(Debug, Clone)]
pub struct Trained {
    /// What the server records.
    pub result: RunResult,
    /// Digests after each epoch (for `reproml verify`).
    pub snapshots: Vec<Snapshot>,
    /// Names of the parameters, in digest order.
    pub param_names: Vec<String>,
}

/// Trains `network` from scratch on `train`, evaluating on `test`.
pub fn train(
    network: &Network,
    train: &PreparedSplit,
    test: &PreparedSplit,
    settings: &RunSettings<'_>,
    on_epoch: &mut dyn FnMut(EpochProgress),
) -> Result<Trained, TrainError> {
    let spec = settings.spec;
    if train.is_empty() || test.is_empty() {
        return Err(TrainError::Data(
            "the train and test splits must not be empty".into(),
        ));
    }
    let by_index = check_served_order(train, settings.seed)?;
    let (inner, backend) = crate::device::burn_device();
    let autodiff = inner.clone().autodiff();
    let mut params: Vec<Tensor<1>> = network
        .initial_parameters(settings.seed)
        .into_iter()
        .map(|v| {
            let n = v.len();
            Tensor::<1>::from_data(TensorData::new(v, [n]), &inner)
        })
        .collect();
    let mut sgd = Sgd::new(&spec.optimizer, &settings.fault, params.len());
    let batch_size = spec.batch.train as usize;
    let mut epochs = Vec::with_capacity(spec.epochs as usize);
    let mut snapshots = Vec::with_capacity(spec.epochs as usize);

    for epoch in 0..spec.epochs {
        let started = std::time::Instant::now();
        let order: Vec<usize> = epoch_order(train.len() as u32, settings.seed, u64::from(epoch))
            .into_iter()
            .map(|p| by_index[p as usize])
            .collect();
        let mut loss_sum = 0.0;
        let mut batches = 0usize;
        for (step, positions) in order.chunks(batch_size).enumerate() {
            let (input, labels) = train.batch(positions, &autodiff);
            let leaves: Vec<Tensor<1>> = params
                .iter()
                .map(|p| p.clone().autodiff().require_grad())
                .collect();
            let mut dropout = RandomStream::new(
                settings.seed.get(),
                &Purpose::Dropout,
                u64::from(epoch),
                step as u64,
            );
            let log_probs = network.forward(
                &leaves,
                input,
                Some(&mut dropout),
                &settings.fault,
                &autodiff,
            );
            let targets = Tensor::<2, Int>::from_data(
                TensorData::new(
                    labels.iter().map(|&l| i64::from(l)).collect::<Vec<_>>(),
                    [labels.len(), 1],
                ),
                &autodiff,
            );
            let loss = log_probs.gather(1, targets).mean().neg();
            let grads = loss.backward();
            loss_sum += f64::from(scalar(&loss.inner())?);
            batches += 1;
            sgd.step(network, &mut params, &leaves, &grads)?;
        }
        let values = params
            .iter()
            .map(|p| {
                p.to_data()
                    .try_into_vec::<f32>()
                    .map_err(|e| TrainError::Engine(format!("{e:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let snap = snapshot(&network.params, &values);
        let (scores, matrix) = evaluate(
            network,
            &params,
            test,
            spec.batch.test as usize,
            settings,
            &inner,
        )?;
        let loss = loss_sum / batches as f64;
        if !loss.is_finite() {
            return Err(TrainError::Diverged { epoch: epoch + 1 });
        }
        on_epoch(EpochProgress {
            epoch: epoch + 1,
            epochs: spec.epochs,
            loss,
            accuracy: scores.accuracy,
            seconds: started.elapsed().as_secs_f64(),
        });
        epochs.push(EpochRecord {
            epoch: epoch + 1,
            loss,
            test: scores,
            confusion: Some(matrix),
            digest: snap.model.clone(),
        });
        snapshots.push(snap);
    }
    assemble(network, settings, backend, epochs, snapshots)
}

/// The protocol check: the served train order must be epoch 0's, so a
/// server and a client that disagree on the protocol fail loudly instead of
/// training differently. Returns the positions of the examples sorted by
/// data set index, from which every epoch's order is taken.
fn check_served_order(train: &PreparedSplit, seed: Seed) -> Result<Vec<usize>, TrainError> {
    let mut by_index: Vec<usize> = (0..train.len()).collect();
    by_index.sort_by_key(|&p| train.indices[p]);
    let served = epoch_order(train.len() as u32, seed, 0)
        .into_iter()
        .map(|p| by_index[p as usize]);
    if !served.eq(0..train.len()) {
        return Err(TrainError::Data(
            "the training split is not in the run's epoch-0 order; the server and this client disagree on the protocol"
                .into(),
        ));
    }
    Ok(by_index)
}

/// SGD with PyTorch's semantics (dampening 0, no Nesterov, L2 weight decay
/// added to the gradient), with the fault's effects on gradients and
/// momentum.
struct Sgd<'a> {
    optimizer: &'a Optimizer,
    fault: &'a Fault,
    /// One momentum buffer per parameter, created on its first step.
    momentum: Vec<Option<Tensor<1>>>,
    /// Whether the parameters live on the CPU (flex).
    on_cpu: bool,
}

impl<'a> Sgd<'a> {
    fn new(optimizer: &'a Optimizer, fault: &'a Fault, params: usize) -> Self {
        Self {
            optimizer,
            fault,
            momentum: vec![None; params],
            on_cpu: crate::device::selected() == crate::device::ComputeDevice::Cpu,
        }
    }

    /// Updates every parameter from its leaf's gradient in `grads`.
    fn step(
        &mut self,
        network: &Network,
        params: &mut [Tensor<1>],
        leaves: &[Tensor<1>],
        grads: &Gradients,
    ) -> Result<(), TrainError> {
        let o = self.optimizer;
        for (i, leaf) in leaves.iter().enumerate() {
            let name = &network.params[i].name;
            let mut g = leaf
                .grad(grads)
                .ok_or_else(|| TrainError::Engine(format!("no gradient for {name}")))?;
            if let Some(factor) = self.fault.gradient_factor(i, name) {
                g = g.mul_scalar(factor);
            }
            if o.weight_decay != 0.0 {
                g = g + params[i].clone().mul_scalar(o.weight_decay);
            }
            // PyTorch's SGD: buf = g on the first step, then μ·buf + g
            // (dampening 0); the step uses buf. On the CPU each is one
            // parallel pass with the same bits (scaled_sum.rs).
            if o.momentum != 0.0 && self.fault.keeps_momentum() {
                let buf = match self.momentum[i].take() {
                    Some(buf) if self.on_cpu => scaled_sum(buf, o.momentum as f32, g, 1.0),
                    Some(buf) => buf.mul_scalar(o.momentum) + g,
                    None => g,
                };
                g = buf.clone();
                self.momentum[i] = Some(buf);
            }
            params[i] = if self.on_cpu {
                scaled_sum(params[i].clone(), 1.0, g, -(o.lr as f32))
            } else {
                params[i].clone() - g.mul_scalar(o.lr)
            };
        }
        Ok(())
    }
}

/// The artifact this engine records for runs of `model` with `fault`:
/// known before training, so that a runner can check it against the
/// variant's before spending any time.
pub fn builtin_artifact(model: &str, fault: &Fault) -> Artifact {
    artifact_on(crate::device::burn_device().1, model, fault)
}

/// The fingerprint entries this build's results depend on (see
/// [`fingerprint::FIXED_KEYS`]), as a run on this machine would report them.
pub fn builtin_fixed_fingerprint(fault: &Fault) -> BTreeMap<String, String> {
    let full = fingerprint::fingerprint(crate::device::burn_device().1, fault);
    fingerprint::FIXED_KEYS
        .iter()
        .map(|k| {
            let v = full.get(*k).map_or("(absent)", String::as_str);
            ((*k).to_owned(), v.to_owned())
        })
        .collect()
}

fn artifact_on(backend: &str, model: &str, fault: &Fault) -> Artifact {
    Artifact {
        kind: "builtin".into(),
        name: format!(
            "reproml-{}-burn-{}-{backend}",
            env!("CARGO_PKG_VERSION"),
            fingerprint::BURN_VERSION
        ),
        // The build, exactly: two builds of different code or different
        // locked crates never share an artifact, so never a variant.
        details: BTreeMap::from([
            ("model".to_owned(), model.to_owned()),
            ("fault".to_owned(), fault.to_string()),
            ("source".to_owned(), fingerprint::SOURCE.to_owned()),
            ("stack".to_owned(), fingerprint::STACK.to_owned()),
        ]),
    }
}

/// The finished run: the result the server records (metrics of the last
/// epoch, fingerprint, artifact) and the digests for `verify`.
fn assemble(
    network: &Network,
    settings: &RunSettings<'_>,
    backend: &str,
    epochs: Vec<EpochRecord>,
    snapshots: Vec<Snapshot>,
) -> Result<Trained, TrainError> {
    let metrics = epochs
        .last()
        .map(|e| e.test)
        .ok_or(TrainError::Data("no epochs".into()))?;
    Ok(Trained {
        result: RunResult {
            seed: settings.seed,
            metrics,
            epochs,
            fingerprint: fingerprint::fingerprint(backend, &settings.fault),
            artifact: artifact_on(backend, &network.name, &settings.fault),
        },
        snapshots,
        param_names: network.params.iter().map(|p| p.name.clone()).collect(),
    })
}

fn scalar(t: &Tensor<1>) -> Result<f32, TrainError> {
    t.to_data()
        .try_into_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .ok_or_else(|| TrainError::Engine("the loss is not a scalar".into()))
}

/// Accuracy and macro precision/recall/F1 on `test`, with the confusion
/// matrix they come from.
fn evaluate(
    network: &Network,
    params: &[Tensor<1>],
    test: &PreparedSplit,
    batch: usize,
    settings: &RunSettings<'_>,
    device: &Device,
) -> Result<(Scores, ConfusionMatrix), TrainError> {
    let mut matrix = ConfusionMatrix::new(settings.classes);
    let positions: Vec<usize> = (0..test.len()).collect();
    for chunk in positions.chunks(batch) {
        let (input, labels) = test.batch(chunk, device);
        let predicted = network
            .forward(params, input, None, &settings.fault, device)
            .argmax(1)
            .to_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .map_err(|e| TrainError::Engine(format!("{e:?}")))?;
        for (&truth, &p) in labels.iter().zip(&predicted) {
            matrix
                .record(usize::from(truth), p as usize)
                .map_err(|e| TrainError::Data(e.to_string()))?;
        }
    }
    let scores = Scores::of(&matrix).map_err(|e| TrainError::Data(e.to_string()))?;
    Ok((scores, matrix))
}
