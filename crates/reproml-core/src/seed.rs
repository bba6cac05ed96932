//! Experiment seeds: a pure function of the master seed and the experiment
//! identifier, so that an experiment re-created after its database is lost
//! gets the same seeds again.
//!
//! ```text
//! seed_i = u64_le(SHA-256(str("reproml/seed/v1") ‖ u64(master) ‖ str(id) ‖ u64(i))[0..8]) & (2^53 − 1)
//! ```
//!
//! Seeds are cut to 53 bits so that they are exact in every JSON parser
//! (JavaScript's numbers are doubles) and accepted by every engine's
//! `manual_seed`.

use serde::{Deserialize, Serialize};

use crate::ExperimentId;
use crate::canonical::CanonicalHasher;

/// A run's seed `s_i`: every random choice of the run (its epoch orders,
/// initial weights, dropout masks) derives from it. A type of its own so
/// that it cannot be mixed up with the split seed, a run index or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seed(u64);

impl Seed {
    /// A seed with this value (53 bits when derived; any `u64` keys a stream).
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// Its value, as streams are keyed and the protocol writes it.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// An experiment's split seed: which examples are train, test and
/// validation, the same for every run of the experiment. It is `s_0`, but
/// typed apart from run seeds: a run's seed passed where the split's is
/// expected would give each run other test examples, silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SplitSeed(u64);

impl SplitSeed {
    /// The split seed of an experiment whose first seed is `s0`.
    pub const fn from_first(s0: Seed) -> Self {
        Self(s0.0)
    }

    /// Its value, as streams are keyed and the protocol writes it.
    pub const fn get(self) -> u64 {
        self.0
    }
}

macro_rules! seed_text {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $t {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

seed_text!(Seed);
seed_text!(SplitSeed);

/// Index of a run inside an experiment, from 0. A type of its own: a run
/// index is not a seed index (under the `fixed` policy every run uses
/// `s_0`), an epoch, a step or a count of runs.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct RunIndex(u32);

impl RunIndex {
    /// Run number `value`.
    pub const fn new(value: u32) -> Self {
        Self(value)
    }

    /// Its number, as URLs and files write it.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Runs `0 … runs − 1` of an experiment with `runs` runs.
    ///
    /// ```
    /// use reproml_core::RunIndex;
    /// let all: Vec<u32> = RunIndex::first(3).map(RunIndex::get).collect();
    /// assert_eq!(all, [0, 1, 2]);
    /// ```
    pub fn first(runs: u32) -> impl Iterator<Item = RunIndex> {
        (0..runs).map(RunIndex)
    }

    /// The runs of `range`.
    pub fn span(range: std::ops::Range<RunIndex>) -> impl Iterator<Item = RunIndex> {
        (range.start.0..range.end.0).map(RunIndex)
    }
}

impl std::fmt::Display for RunIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for RunIndex {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// Seeds keep this many low bits (see the module docs for why).
pub const SEED_BITS: u32 = 53;

/// Mask applied to derived seeds: `2^53 − 1`.
pub const SEED_MASK: u64 = (1 << SEED_BITS) - 1;

const SEED_DOMAIN: &str = "reproml/seed/v1";

/// How runs of an experiment get their seeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeedPolicy {
    /// Run `i` gets seed `s_i`; every variant's run `i` shares it, so runs
    /// pair up across variants and the runs of one variant are independent
    /// samples of the training procedure.
    #[default]
    PerRun,
    /// Every run gets `s_0` (the paper's setting): with deterministic
    /// training all runs are then identical, so any spread measures residual
    /// non-determinism.
    Fixed,
}

impl SeedPolicy {
    /// Which seed `s_i` run `run` uses under this policy: `i`.
    pub fn seed_index(self, run: RunIndex) -> u32 {
        match self {
            SeedPolicy::PerRun => run.0,
            SeedPolicy::Fixed => 0,
        }
    }

    /// The policy's name as written in specs and the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            SeedPolicy::PerRun => "per-run",
            SeedPolicy::Fixed => "fixed",
        }
    }
}

/// The `index`-th seed `s_index` of experiment `id` under `master`.
///
/// ```
/// use reproml_core::{ExperimentId, seed::experiment_seed};
/// let id = ExperimentId::new("demo").unwrap();
/// assert_eq!(experiment_seed(42, &id, 0), experiment_seed(42, &id, 0));
/// assert_ne!(experiment_seed(42, &id, 0), experiment_seed(42, &id, 1));
/// assert!(experiment_seed(42, &id, 7).get() < 1 << 53);
/// ```
pub fn experiment_seed(master: u64, id: &ExperimentId, index: u32) -> Seed {
    let digest = CanonicalHasher::new(SEED_DOMAIN)
        .u64(master)
        .str(id.as_str())
        .u64(u64::from(index))
        .finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Seed(u64::from_le_bytes(first) & SEED_MASK)
}

/// The split seed of experiment `id` under `master`: `s_0`.
pub fn split_seed(master: u64, id: &ExperimentId) -> SplitSeed {
    SplitSeed::from_first(experiment_seed(master, id, 0))
}

/// The seed that run `run` of experiment `id` uses under `policy`.
pub fn run_seed(master: u64, id: &ExperimentId, policy: SeedPolicy, run: RunIndex) -> Seed {
    experiment_seed(master, id, policy.seed_index(run))
}

/// Seeds `s_0 … s_{runs−1}` of an experiment: what the server stores.
pub fn experiment_seeds(master: u64, id: &ExperimentId, runs: u32) -> Vec<Seed> {
    (0..runs).map(|i| experiment_seed(master, id, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> ExperimentId {
        ExperimentId::new(s).unwrap()
    }

    #[test]
    fn fixed_policy_gives_every_run_the_first_seed() {
        let e = id("exp");
        let s0 = experiment_seed(7, &e, 0);
        for run in RunIndex::first(5) {
            assert_eq!(run_seed(7, &e, SeedPolicy::Fixed, run), s0);
        }
        assert_ne!(run_seed(7, &e, SeedPolicy::PerRun, RunIndex::new(1)), s0);
    }

    proptest! {
        #[test]
        fn seeds_depend_on_master_and_identifier(master in any::<u64>(), i in 0u32..1000) {
            let a = experiment_seed(master, &id("a"), i);
            prop_assert_eq!(a, experiment_seed(master, &id("a"), i));
            prop_assert_ne!(a, experiment_seed(master, &id("b"), i));
            prop_assert_ne!(a, experiment_seed(master.wrapping_add(1), &id("a"), i));
            prop_assert!(a.get() <= SEED_MASK);
        }
    }
}
