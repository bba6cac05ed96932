//! The indices-only split stream over a cached data set: the same examples
//! as the full stream, every byte of it protected, and a data set that is
//! not the split's refused.
#![allow(clippy::unwrap_used)] // test fixtures

use std::sync::Arc;

use reproml_core::split::SplitName;
use reproml_core::{ExperimentSpec, RunIndex, Seed, SplitSeed};
use reproml_data::serve::{DatasetFacts, encode_split, served_split};
use reproml_data::wire::{self, CachedDataset, Version, WireError};
use reproml_data::{Dataset, ImageShape, generate};

fn data(seed: u64) -> Dataset {
    let shape = ImageShape {
        channels: 3,
        height: 4,
        width: 4,
    };
    generate(shape, 5, 60, 0, seed)
}

/// The train split of run 1 as a full stream and as an indices-only one.
fn streams(data: &Dataset) -> (Vec<u8>, Vec<u8>) {
    let spec = ExperimentSpec::from_toml(
        "id = \"e\"\nmodel = \"mlp\"\nchallenge = \"gen\"\nepochs = 1\nruns = 2\n",
        "spec.toml",
    )
    .unwrap();
    let facts = DatasetFacts::of(data);
    let seeds = (SplitSeed::from_first(Seed::new(7)), Seed::new(11));
    let (header, indices) = served_split(
        data,
        &facts,
        &spec,
        seeds,
        RunIndex::new(1),
        SplitName::Train,
    )
    .unwrap();
    (
        encode_split(data, &header, &indices, Version::V2),
        encode_split(data, &header, &indices, Version::Indices),
    )
}

#[test]
fn an_indices_stream_over_the_cache_is_the_full_split() {
    let data = data(1);
    let (full, indices) = streams(&data);
    assert!(
        indices.len() * 3 < full.len(),
        "{} vs {}",
        indices.len(),
        full.len()
    );
    let cached = Arc::new(CachedDataset::new(data));
    let from_full = wire::decode(&full).unwrap();
    let from_cache = wire::decode_indices_from(&mut indices.as_slice(), &cached).unwrap();
    assert_eq!(from_cache.version, Version::Indices);
    assert_eq!(from_cache.header, from_full.header);
    assert_eq!(from_cache.len(), from_full.len());
    for k in 0..from_full.len() {
        assert_eq!(from_cache.index(k), from_full.index(k));
        assert_eq!(from_cache.label(k), from_full.label(k));
        assert_eq!(from_cache.image(k), from_full.image(k));
    }
    // A server that does not know the form sends the full stream: used as is.
    let old_server = wire::decode_indices_from(&mut full.as_slice(), &cached).unwrap();
    assert_eq!(old_server.image(3), from_full.image(3));
    // Without the data set there are no pixels to give.
    assert!(matches!(
        wire::decode(&indices),
        Err(WireError::Mismatch(_))
    ));
}

#[test]
fn every_byte_of_an_indices_stream_is_protected() {
    let data = data(2);
    let (_, indices) = streams(&data);
    let cached = Arc::new(CachedDataset::new(data));
    for at in 0..indices.len() {
        for flip in [0x01, 0x80] {
            let mut bad = indices.clone();
            bad[at] ^= flip;
            assert!(
                wire::decode_indices_from(&mut bad.as_slice(), &cached).is_err(),
                "byte {at} ^ {flip:#x} went unnoticed"
            );
        }
    }
}

#[test]
fn another_data_set_is_refused() {
    let (_, indices) = streams(&data(3));
    let other = Arc::new(CachedDataset::new(data(4)));
    let err = wire::decode_indices_from(&mut indices.as_slice(), &other).unwrap_err();
    assert!(
        matches!(&err, WireError::Mismatch(m) if m.contains("not of the cached data set")),
        "{err}"
    );
}
