//! Checks the implementation against vectors made by an independent Python
//! implementation of `docs/protocol.md` (`vectors/make_vectors.py`).
#![allow(clippy::unwrap_used)] // fixture access: a malformed fixture should panic loudly

use std::collections::BTreeMap;

use reproml_core::seed::{experiment_seed, run_seed};
use reproml_core::split::{Split, SplitFractions, SubsetLimits, epoch_order};
use reproml_core::stream::{Purpose, RandomStream, dropout_scale, dropout_threshold, stream_key};
use reproml_core::{ExperimentId, RunIndex, Seed, SeedPolicy, SplitSeed};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    experiment_seeds: Vec<SeedVector>,
    run_seeds: Vec<RunSeedVector>,
    streams: Vec<StreamVector>,
    splits: Vec<SplitVector>,
    epoch_orders: Vec<EpochOrderVector>,
    dropout_masks: Vec<DropoutVector>,
}

#[derive(Deserialize)]
struct DropoutVector {
    seed: u64,
    epoch: u64,
    step: u64,
    layers: Vec<DropoutLayer>,
}

#[derive(Deserialize)]
struct DropoutLayer {
    p: f64,
    count: usize,
    threshold: u64,
    scale: f32,
    mask: Vec<u8>,
}

#[derive(Deserialize)]
struct SeedVector {
    master: u64,
    experiment: String,
    index: u32,
    seed: Seed,
}

#[derive(Deserialize)]
struct RunSeedVector {
    master: u64,
    experiment: String,
    policy: SeedPolicy,
    run: RunIndex,
    seed: Seed,
}

#[derive(Deserialize)]
struct StreamVector {
    seed: u64,
    purpose: String,
    epoch: u64,
    step: u64,
    key: String,
    words: Vec<u32>,
    #[serde(rename = "u64")]
    u64s: Vec<u64>,
    below: Vec<(u64, u64)>,
    unit_f64: Vec<f64>,
    standard_normal: Vec<f64>,
    permutation_10: Vec<u32>,
}

#[derive(Deserialize)]
struct SplitVector {
    method: String,
    examples: Option<u32>,
    train: Option<f64>,
    test: Option<f64>,
    validation: Option<f64>,
    train_examples: Option<u32>,
    test_examples: Option<u32>,
    seed: SplitSeed,
    caps: BTreeMap<String, u32>,
    expected: BTreeMap<String, Vec<u32>>,
}

#[derive(Deserialize)]
struct EpochOrderVector {
    length: u32,
    seed: Seed,
    epoch: u64,
    order: Vec<u32>,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("vectors/protocol-vectors.json")).unwrap()
}

fn purpose(name: &str) -> Purpose {
    match name {
        "split" => Purpose::Split,
        "epoch-order" => Purpose::EpochOrder,
        "weight-init" => Purpose::WeightInit,
        "dropout" => Purpose::Dropout,
        other => Purpose::Other(other.to_owned()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn experiment_and_run_seeds_match() {
    let v = vectors();
    for s in &v.experiment_seeds {
        let id = ExperimentId::new(s.experiment.as_str()).unwrap();
        assert_eq!(
            experiment_seed(s.master, &id, s.index),
            s.seed,
            "{}/{}",
            s.experiment,
            s.index
        );
    }
    for s in &v.run_seeds {
        let id = ExperimentId::new(s.experiment.as_str()).unwrap();
        assert_eq!(run_seed(s.master, &id, s.policy, s.run), s.seed);
    }
}

#[test]
fn stream_keys_words_and_draws_match() {
    for s in vectors().streams {
        let p = purpose(&s.purpose);
        let fresh = || RandomStream::new(s.seed, &p, s.epoch, s.step);
        assert_eq!(hex(&stream_key(s.seed, &p, s.epoch, s.step)), s.key);

        let mut r = fresh();
        let words: Vec<u32> = (0..s.words.len()).map(|_| r.next_u32()).collect();
        assert_eq!(words, s.words, "keystream words of {}", s.purpose);

        let mut r = fresh();
        let u64s: Vec<u64> = (0..s.u64s.len()).map(|_| r.next_u64()).collect();
        assert_eq!(u64s, s.u64s);

        let mut r = fresh();
        for &(n, expected) in &s.below {
            assert_eq!(r.below(n), expected, "below({n})");
        }

        let mut r = fresh();
        for &expected in &s.unit_f64 {
            assert_eq!(r.unit_f64().to_bits(), expected.to_bits());
        }

        // Exact in practice (same C library), but the protocol allows the
        // last bit of ln/cos to differ between platforms.
        let mut r = fresh();
        for &expected in &s.standard_normal {
            let got = r.standard_normal();
            assert!(
                (got - expected).abs() <= 4.0 * f64::EPSILON * expected.abs().max(1.0),
                "{got} vs {expected}"
            );
        }

        assert_eq!(fresh().permutation(10), s.permutation_10);
    }
}

#[test]
fn splits_match() {
    for s in vectors().splits {
        let limits = SubsetLimits {
            train: s.caps.get("train").copied(),
            test: s.caps.get("test").copied(),
            validation: s.caps.get("validation").copied(),
        };
        let split = match s.method.as_str() {
            "fractions" => {
                let f = SplitFractions {
                    train: s.train.unwrap(),
                    test: s.test.unwrap(),
                    validation: s.validation.unwrap(),
                };
                Split::by_fractions(s.examples.unwrap(), &f, s.seed, &limits).unwrap()
            }
            "official" => Split::official(
                s.train_examples.unwrap(),
                s.test_examples.unwrap(),
                s.seed,
                &limits,
            ),
            other => panic!("unknown method {other}"),
        };
        assert_eq!(split.train, s.expected["train"]);
        assert_eq!(split.test, s.expected["test"]);
        assert_eq!(split.validation, s.expected["validation"]);
    }
}

#[test]
fn epoch_orders_match() {
    for e in vectors().epoch_orders {
        assert_eq!(epoch_order(e.length, e.seed, e.epoch), e.order);
    }
}

#[test]
fn dropout_masks_match() {
    for v in vectors().dropout_masks {
        // One stream per batch, consumed by the layers in order.
        let mut stream = RandomStream::new(v.seed, &Purpose::Dropout, v.epoch, v.step);
        for layer in &v.layers {
            assert_eq!(
                dropout_threshold(layer.p),
                layer.threshold,
                "p = {}",
                layer.p
            );
            assert_eq!(dropout_scale(layer.p), layer.scale, "p = {}", layer.p);
            let kept: Vec<u8> = stream
                .dropout_keep(layer.count, layer.p)
                .into_iter()
                .map(u8::from)
                .collect();
            assert_eq!(
                kept, layer.mask,
                "seed {} epoch {} step {}",
                v.seed, v.epoch, v.step
            );
        }
    }
}
