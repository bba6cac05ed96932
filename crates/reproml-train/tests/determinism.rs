//! Bitwise determinism, learning, and fault injection on the real digits data.
#![allow(clippy::unwrap_used)]

use reproml_core::ExperimentSpec;
use reproml_core::Seed;
use reproml_core::seed::split_seed;
use reproml_core::split::SplitName;
use reproml_data::serve::{DatasetFacts, encode_split, served_split};
use reproml_data::wire::{self, decode};
use reproml_train::{Fault, ModelRegistry, PreparedSplit, RunSettings, Trained, train};

fn spec(model: &str, epochs: u32) -> ExperimentSpec {
    ExperimentSpec::from_toml(
        &format!(
            "id = \"t\"\nmodel = \"{model}\"\nchallenge = \"digits\"\nepochs = {epochs}\nruns = 4\n[optimizer]\nlr = 0.05\nmomentum = 0.5\n"
        ),
        "test",
    )
    .unwrap()
}

/// The run's splits exactly as the server would serve them.
fn splits(spec: &ExperimentSpec, run_seed: Seed) -> (PreparedSplit, PreparedSplit) {
    let data = reproml_data::builtin("digits").unwrap();
    let split_seed = split_seed(1, &spec.id);
    let prepare = |name| {
        let (header, indices) = served_split(
            &data,
            &DatasetFacts::of(&data),
            spec,
            (split_seed, run_seed),
            reproml_core::RunIndex::new(0),
            name,
        )
        .unwrap();
        PreparedSplit::new(&decode(&encode_split(&data, &header, &indices, wire::CURRENT)).unwrap())
    };
    (prepare(SplitName::Train), prepare(SplitName::Test))
}

fn run(model: &str, epochs: u32, seed: u64, fault: Fault) -> Trained {
    let seed = Seed::new(seed);
    let spec = spec(model, epochs);
    let (train_split, test_split) = splits(&spec, seed);
    let data = reproml_data::builtin("digits").unwrap();
    let network = ModelRegistry::default()
        .build(model, data.shape, 10)
        .unwrap();
    let settings = RunSettings {
        spec: &spec,
        seed,
        classes: 10,
        fault,
    };
    train(&network, &train_split, &test_split, &settings, &mut |_| {}).unwrap()
}

#[test]
fn the_same_seed_gives_bitwise_identical_trajectories() {
    let a = run("mlp", 3, 11, Fault::None);
    let b = run("mlp", 3, 11, Fault::None);
    assert_eq!(a.snapshots, b.snapshots, "every parameter, every epoch");
    assert_eq!(a.result.epochs, b.result.epochs);
    let c = run("mlp", 3, 12, Fault::None);
    for (x, y) in a.snapshots.iter().zip(&c.snapshots) {
        assert_ne!(x.model, y.model, "another seed, another trajectory");
    }
}

/// The engine's own convolution and pooling (LeNet-5) on one and on two
/// kernel threads: the same trajectory, bit for bit.
#[test]
fn the_thread_count_changes_no_bit_of_a_convolutional_network() {
    let one = reproml_train::with_threads(1, || run("lenet5", 2, 5, Fault::None));
    let two = reproml_train::with_threads(2, || run("lenet5", 2, 5, Fault::None));
    assert_eq!(one.snapshots, two.snapshots, "every parameter, every epoch");
    assert_eq!(one.result.epochs, two.result.epochs);
}

#[test]
fn models_learn_the_digits() {
    let r = run("mlp", 5, 3, Fault::None);
    assert!(r.result.metrics.accuracy > 0.85, "{:?}", r.result.metrics);
    let losses: Vec<f64> = r.result.epochs.iter().map(|e| e.loss).collect();
    assert!(losses[4] < losses[0], "{losses:?}");
    let lenet = run("lenet5", 10, 3, Fault::None);
    assert!(
        lenet.result.metrics.accuracy > 0.8,
        "{:?}",
        lenet.result.metrics
    );
}

#[test]
fn a_fault_that_touches_the_model_changes_the_trajectory() {
    let clean = run("mlp", 2, 5, Fault::None);
    for fault in ["momentum-ignored", "grad-scale=0.001"] {
        let faulty = run("mlp", 2, 5, fault.parse().unwrap());
        assert_eq!(faulty.result.fingerprint["fault"], fault);
        assert_ne!(
            clean.snapshots[0].model, faulty.snapshots[0].model,
            "{fault}"
        );
    }
}

#[test]
fn a_fault_in_an_op_the_model_never_uses_changes_nothing() {
    let clean = run("lenet5", 2, 5, Fault::None);
    let faulty = run("lenet5", 2, 5, "tanh-offset=0.5".parse().unwrap());
    assert_eq!(clean.snapshots, faulty.snapshots);
    // Dropout faults cannot touch a model without dropout either.
    let dropout = run("lenet5", 2, 5, "dropout-scale=1".parse().unwrap());
    assert_eq!(clean.snapshots, dropout.snapshots);
}

#[test]
fn the_result_is_what_the_server_accepts() {
    let r = run("mlp", 2, 9, Fault::None);
    assert_eq!(r.result.validate(2), Ok(()));
    assert_eq!(r.result.final_digest(), Some(r.snapshots[1].model.as_str()));
    for key in [
        "reproml",
        "burn",
        "rustc",
        "target",
        "backend",
        "cpu_features",
        "cpu_caches",
        "threads",
        "os",
        "device",
        "deterministic",
    ] {
        assert!(
            r.result.fingerprint.contains_key(key),
            "fingerprint lacks {key}"
        );
    }
    // The CPU engine vouches for its own repeatability (tested above).
    assert_eq!(r.result.fingerprint["device"], "cpu");
    assert_eq!(r.result.fingerprint["deterministic"], "true");
    assert!(!r.result.fingerprint.contains_key("gpu"));
}
