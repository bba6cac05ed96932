//! Which examples a run gets, in which order: the server's side of
//! `docs/protocol.md` sections 4, 5 and 8, shared with tests and tools.

use reproml_core::spec::SplitRule;
use reproml_core::split::{Split, SplitError, SplitName, SubsetLimits, epoch_order};
use reproml_core::{ExperimentSpec, RunIndex, Seed, SplitSeed};

use crate::Dataset;
use crate::wire::{self, ChunkEncoder, SplitHeader, SplitOrder, Version, records_per_chunk};

/// Why a split cannot be served.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServeError {
    /// The spec asks for the official split of a data set that has none.
    #[error("this data set has no official split; use method = \"fractions\"")]
    NoOfficialSplit,
    /// The fractions cannot split this many examples.
    #[error(transparent)]
    Impossible(#[from] SplitError),
}

/// The data set indices of split `name` for a run, in the served order
/// (epoch 0's for train, ascending otherwise), with that order.
pub fn served_indices(
    data: &Dataset,
    spec: &ExperimentSpec,
    split_seed: SplitSeed,
    run_seed: Seed,
    name: SplitName,
) -> Result<(Vec<u32>, SplitOrder), ServeError> {
    let split = membership(data, &spec.split, &spec.subset, split_seed)?;
    let members = split.part(name);
    if name == SplitName::Train {
        let order = epoch_order(members.len() as u32, run_seed, 0);
        Ok((
            order.into_iter().map(|p| members[p as usize]).collect(),
            SplitOrder::Epoch0,
        ))
    } else {
        Ok((members.to_vec(), SplitOrder::Index))
    }
}

/// What the server knows of a data set besides its examples: computed
/// once and cached, since both take a pass over every pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetFacts {
    /// SHA-256 of the content, hex.
    pub digest: String,
    /// Its own normalisation.
    pub normalization: reproml_api::Normalization,
}

impl DatasetFacts {
    /// Computes the facts of `data`.
    pub fn of(data: &Dataset) -> Self {
        Self {
            digest: reproml_core::hex(&data.digest()),
            normalization: data.normalization(),
        }
    }
}

/// Split `name` of run `run` of experiment `spec`, exactly as the server
/// serves it: its header and the data set indices in the served order.
pub fn served_split(
    data: &Dataset,
    facts: &DatasetFacts,
    spec: &ExperimentSpec,
    seeds: (SplitSeed, Seed),
    run: RunIndex,
    name: SplitName,
) -> Result<(SplitHeader, Vec<u32>), ServeError> {
    let (split_seed, run_seed) = seeds;
    let (indices, order) = served_indices(data, spec, split_seed, run_seed, name)?;
    let header = SplitHeader {
        experiment: spec.id.clone(),
        run,
        split: name,
        seed: run_seed,
        examples: indices.len() as u32,
        shape: data.shape,
        classes: data.classes,
        normalization: facts.normalization.clone(),
        dataset_digest: facts.digest.clone(),
        order,
    };
    Ok((header, indices))
}

fn membership(
    data: &Dataset,
    rule: &SplitRule,
    subset: &SubsetLimits,
    seed: SplitSeed,
) -> Result<Split, ServeError> {
    match rule {
        SplitRule::Fractions(fractions) => Ok(Split::by_fractions(
            data.len() as u32,
            fractions,
            seed,
            subset,
        )?),
        SplitRule::Official => {
            let official = data.official.ok_or(ServeError::NoOfficialSplit)?;
            let mut s = Split::official(official.train, official.test, seed, subset);
            // The official test file follows the training file in the data set.
            s.test.iter_mut().for_each(|i| *i += official.train);
            Ok(s)
        }
    }
}

/// The chunks of a split stream after its header, one at a time, then the
/// trailer: what the server sends (`encoder` from [`wire::begin`]).
pub fn encode_records<'a>(
    data: &'a Dataset,
    indices: &'a [u32],
    encoder: ChunkEncoder,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    let pixels = encoder.version().record_pixels(data.shape);
    let mut encoder = Some(encoder);
    let mut chunks = indices.chunks(records_per_chunk(pixels));
    std::iter::from_fn(move || match chunks.next() {
        Some(part) => {
            let records = part
                .iter()
                .map(|&i| (i, data.labels[i as usize], data.image(i as usize)));
            encoder.as_mut().map(|e| e.chunk(records))
        }
        None => encoder.take().map(ChunkEncoder::finish),
    })
}

/// A whole split stream in memory.
pub fn encode_split(
    data: &Dataset,
    header: &SplitHeader,
    indices: &[u32],
    version: Version,
) -> Vec<u8> {
    let (mut out, encoder) = wire::begin(header, version);
    for chunk in encode_records(data, indices, encoder) {
        out.extend(chunk);
    }
    out
}
