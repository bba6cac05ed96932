//! Deterministic train/test/validation splits and per-epoch orders.
//!
//! A split is a pure function of the number of examples, the split rule and
//! the *split seed* (the experiment's `s_0`, so that every run of an
//! experiment is evaluated on the same test set, as with an official split).
//! The order in which a run sees its training examples is a pure function
//! of the run's own seed and the epoch. The exact algorithm is in
//! `docs/protocol.md`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::seed::{Seed, SplitSeed};
use crate::stream::{Purpose, RandomStream};

/// One of the three parts of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitName {
    /// The examples a model is trained on.
    Train,
    /// The examples metrics are measured on.
    Test,
    /// Held-out examples for model selection.
    Validation,
}

impl SplitName {
    /// Every split, in protocol order.
    pub const ALL: [SplitName; 3] = [SplitName::Train, SplitName::Test, SplitName::Validation];

    /// The split's name in URLs and files.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Test => "test",
            SplitName::Validation => "validation",
        }
    }
}

impl fmt::Display for SplitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SplitName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SplitName::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| format!("unknown split {s:?}; use train, test or validation"))
    }
}

/// Why a split cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    /// A fraction is negative, not finite, or the fractions do not sum to 1.
    #[error(
        "split fractions train={train}, test={test}, validation={validation} are invalid: each must be in [0, 1], train and test above 0, and they must sum to 1"
    )]
    BadFractions {
        /// Train fraction given.
        train: f64,
        /// Test fraction given.
        test: f64,
        /// Validation fraction given.
        validation: f64,
    },
    /// The data set is too small for the fractions: a part would be empty.
    #[error(
        "{examples} examples are too few for these fractions: the {part} split would be empty; use more data or a larger fraction"
    )]
    TooFewExamples {
        /// Number of examples in the data set.
        examples: u32,
        /// The part that would be empty.
        part: SplitName,
    },
}

/// Fractions of a data set that go to each split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitFractions {
    /// Share for training, in (0, 1].
    pub train: f64,
    /// Share for testing, in (0, 1].
    pub test: f64,
    /// Share for validation, in [0, 1].
    pub validation: f64,
}

/// Fractions must sum to 1 within this tolerance (0.7 + 0.2 + 0.1 ≠ 1 in binary).
pub const FRACTION_SUM_TOLERANCE: f64 = 1e-9;

impl Default for SplitFractions {
    fn default() -> Self {
        Self {
            train: 0.8,
            test: 0.2,
            validation: 0.0,
        }
    }
}

impl SplitFractions {
    /// Every rule the fractions break, as `(key, what is wrong)` with the
    /// key `train`, `test`, `validation`, or empty for the sum: the one
    /// place the rules live (specs report these under `split.`).
    ///
    /// ```
    /// use reproml_core::split::SplitFractions;
    /// let f = SplitFractions { train: 0.7, test: 0.2, validation: 0.0 };
    /// assert_eq!(f.violations(), [("", "train + test + validation must be 1, got 0.9".to_owned())]);
    /// ```
    pub fn violations(&self) -> Vec<(&'static str, String)> {
        let unit = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        let mut out = Vec::new();
        for (key, value, zero_allowed) in [
            ("train", self.train, false),
            ("test", self.test, false),
            ("validation", self.validation, true),
        ] {
            if !unit(value) || (!zero_allowed && value <= 0.0) {
                let range = if zero_allowed { "[0, 1]" } else { "(0, 1]" };
                out.push((key, format!("must be in {range}, got {value:?}")));
            }
        }
        let sum = self.train + self.test + self.validation;
        let all_in_unit = [self.train, self.test, self.validation]
            .into_iter()
            .all(unit);
        if all_in_unit && (sum - 1.0).abs() > FRACTION_SUM_TOLERANCE {
            out.push((
                "",
                format!(
                    "train + test + validation must be 1, got {}",
                    // Rounded so that 0.7 + 0.2 shows as 0.9, not 0.8999999999999999.
                    (sum * 1e9).round() / 1e9
                ),
            ));
        }
        out
    }

    /// Checks the fractions are usable.
    pub fn validate(&self) -> Result<(), SplitError> {
        if self.violations().is_empty() {
            Ok(())
        } else {
            Err(SplitError::BadFractions {
                train: self.train,
                test: self.test,
                validation: self.validation,
            })
        }
    }

    /// How many of `examples` go to each split: test and validation are
    /// `floor(n · f + 0.5)`, train takes the rest.
    pub fn sizes(&self, examples: u32) -> Result<SplitSizes, SplitError> {
        self.validate()?;
        let part = |f: f64| (f64::from(examples) * f + 0.5).floor() as u32;
        let test = part(self.test);
        let validation = part(self.validation);
        let train = examples.saturating_sub(test + validation);
        let empty = |part| SplitError::TooFewExamples { examples, part };
        if test == 0 {
            return Err(empty(SplitName::Test));
        }
        if validation == 0 && self.validation > 0.0 {
            return Err(empty(SplitName::Validation));
        }
        if train == 0 || test + validation > examples {
            return Err(empty(SplitName::Train));
        }
        Ok(SplitSizes {
            train,
            test,
            validation,
        })
    }
}

/// Number of examples in each split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSizes {
    /// Training examples.
    pub train: u32,
    /// Test examples.
    pub test: u32,
    /// Validation examples.
    pub validation: u32,
}

/// Optional caps on the size of each split, for quick runs: a capped split
/// keeps the first `cap` of its examples in the split's random order, which
/// is a uniform random subset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsetLimits {
    /// Cap on training examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<u32>,
    /// Cap on test examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<u32>,
    /// Cap on validation examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<u32>,
}

impl SubsetLimits {
    /// True when no split is capped.
    pub fn is_none(&self) -> bool {
        *self == SubsetLimits::default()
    }

    fn cap(&self, name: SplitName) -> Option<u32> {
        match name {
            SplitName::Train => self.train,
            SplitName::Test => self.test,
            SplitName::Validation => self.validation,
        }
    }
}

/// A partition of example indices `0..n` into the three splits, each part
/// sorted ascending (membership only: order comes from [`epoch_order`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Indices of the training examples.
    pub train: Vec<u32>,
    /// Indices of the test examples.
    pub test: Vec<u32>,
    /// Indices of the validation examples.
    pub validation: Vec<u32>,
}

impl Split {
    /// Splits `examples` items by `fractions` with the split seed.
    ///
    /// Algorithm: `π = permutation(examples)` from stream
    /// `(seed, "split", 0, 0)`; test is the first `sizes.test` items of π,
    /// validation the next `sizes.validation`, train the rest; each part is
    /// then capped by `limits` (keeping its first items in π order) and
    /// sorted.
    ///
    /// ```
    /// use reproml_core::split::{Split, SplitFractions, SubsetLimits};
    /// use reproml_core::SplitSeed;
    /// let seed = SplitSeed::from_first(reproml_core::Seed::new(9));
    /// let s = Split::by_fractions(100, &SplitFractions::default(), seed, &SubsetLimits::default()).unwrap();
    /// assert_eq!((s.train.len(), s.test.len()), (80, 20));
    /// ```
    pub fn by_fractions(
        examples: u32,
        fractions: &SplitFractions,
        seed: SplitSeed,
        limits: &SubsetLimits,
    ) -> Result<Split, SplitError> {
        let sizes = fractions.sizes(examples)?;
        let order = RandomStream::new(seed.get(), &Purpose::Split, 0, 0).permutation(examples);
        let (test, rest) = order.split_at(sizes.test as usize);
        let (validation, train) = rest.split_at(sizes.validation as usize);
        Ok(Split {
            train: capped_sorted(train, limits.cap(SplitName::Train)),
            test: capped_sorted(test, limits.cap(SplitName::Test)),
            validation: capped_sorted(validation, limits.cap(SplitName::Validation)),
        })
    }

    /// Uses a challenge's official split: `train_examples` training items
    /// (indices `0..train_examples` of its training file) and `test_examples`
    /// test items (indices `0..test_examples` of its test file); no
    /// validation. Caps keep the first items of a permutation from stream
    /// `(seed, "split", 0, 1)` for train and `(seed, "split", 0, 2)` for test.
    pub fn official(
        train_examples: u32,
        test_examples: u32,
        seed: SplitSeed,
        limits: &SubsetLimits,
    ) -> Split {
        let part = |n: u32, step: u64, cap: Option<u32>| match cap {
            Some(cap) if cap < n => {
                let order = RandomStream::new(seed.get(), &Purpose::Split, 0, step).permutation(n);
                capped_sorted(&order, Some(cap))
            }
            _ => (0..n).collect(),
        };
        Split {
            train: part(train_examples, 1, limits.train),
            test: part(test_examples, 2, limits.test),
            validation: Vec::new(),
        }
    }

    /// The indices of one part.
    pub fn part(&self, name: SplitName) -> &[u32] {
        match name {
            SplitName::Train => &self.train,
            SplitName::Test => &self.test,
            SplitName::Validation => &self.validation,
        }
    }
}

fn capped_sorted(items: &[u32], cap: Option<u32>) -> Vec<u32> {
    let keep = cap.map_or(items.len(), |c| items.len().min(c as usize));
    let mut kept = items[..keep].to_vec();
    kept.sort_unstable();
    kept
}

/// The order in which a run visits its `len` training examples in `epoch`
/// (from 0): a permutation of positions `0..len` from stream
/// `(run seed, "epoch-order", epoch, 0)`.
///
/// ```
/// use reproml_core::{Seed, split::epoch_order};
/// let seed = Seed::new(1);
/// assert_ne!(epoch_order(50, seed, 0), epoch_order(50, seed, 1));
/// assert_eq!(epoch_order(50, seed, 3), epoch_order(50, seed, 3));
/// ```
pub fn epoch_order(len: u32, run_seed: Seed, epoch: u64) -> Vec<u32> {
    RandomStream::new(run_seed.get(), &Purpose::EpochOrder, epoch, 0).permutation(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ss(value: u64) -> SplitSeed {
        SplitSeed::from_first(Seed::new(value))
    }

    /// Fractions in hundredths: test 1–50 %, validation 0–40 %, train the rest.
    fn fractions() -> impl Strategy<Value = SplitFractions> {
        (1u32..=50, 0u32..=40).prop_map(|(test, validation)| SplitFractions {
            train: f64::from(100 - test - validation) / 100.0,
            test: f64::from(test) / 100.0,
            validation: f64::from(validation) / 100.0,
        })
    }

    #[test]
    fn sizes_round_half_up_and_train_takes_the_rest() {
        let f = SplitFractions {
            train: 0.7,
            test: 0.2,
            validation: 0.1,
        };
        assert_eq!(
            f.sizes(1797).unwrap(),
            SplitSizes {
                train: 1258,
                test: 359,
                validation: 180
            }
        );
    }

    #[test]
    fn rejects_fractions_that_do_not_sum_to_one() {
        let f = SplitFractions {
            train: 0.5,
            test: 0.2,
            validation: 0.0,
        };
        assert!(matches!(f.sizes(10), Err(SplitError::BadFractions { .. })));
        let nan = SplitFractions {
            train: f64::NAN,
            ..SplitFractions::default()
        };
        assert!(nan.validate().is_err());
    }

    #[test]
    fn rejects_a_data_set_too_small_for_a_part() {
        let err = SplitFractions::default().sizes(2).unwrap_err();
        assert_eq!(
            err,
            SplitError::TooFewExamples {
                examples: 2,
                part: SplitName::Test
            }
        );
    }

    #[test]
    fn official_split_keeps_files_apart_and_caps_randomly() {
        let limits = SubsetLimits {
            train: Some(10),
            ..SubsetLimits::default()
        };
        let s = Split::official(100, 30, ss(4), &limits);
        assert_eq!(s.train.len(), 10);
        assert_ne!(s.train, (0..10).collect::<Vec<_>>());
        assert_eq!(s.test, (0..30).collect::<Vec<_>>());
        assert!(s.validation.is_empty());
    }

    proptest! {
        #[test]
        fn split_is_a_disjoint_cover(n in 10u32..3000, f in fractions(), seed in any::<u64>()) {
            let Ok(s) = Split::by_fractions(n, &f, ss(seed), &SubsetLimits::default()) else {
                return Ok(());
            };
            let mut all: Vec<u32> = [&s.train, &s.test, &s.validation].into_iter().flatten().copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
            let sizes = f.sizes(n).unwrap();
            prop_assert_eq!(s.test.len() as u32, sizes.test);
            prop_assert_eq!(s.validation.len() as u32, sizes.validation);
        }

        #[test]
        fn split_is_deterministic_and_seed_dependent(n in 50u32..2000, seed in any::<u64>()) {
            let f = SplitFractions::default();
            let none = SubsetLimits::default();
            let a = Split::by_fractions(n, &f, ss(seed), &none).unwrap();
            prop_assert_eq!(&a, &Split::by_fractions(n, &f, ss(seed), &none).unwrap());
            prop_assert_ne!(&a, &Split::by_fractions(n, &f, ss(seed ^ 1), &none).unwrap());
        }

        #[test]
        fn caps_take_a_subset_of_the_uncapped_split(n in 50u32..2000, seed in any::<u64>(), cap in 1u32..40) {
            let f = SplitFractions::default();
            let full = Split::by_fractions(n, &f, ss(seed), &SubsetLimits::default()).unwrap();
            let limits = SubsetLimits { train: Some(cap), test: Some(cap), validation: None };
            let capped = Split::by_fractions(n, &f, ss(seed), &limits).unwrap();
            prop_assert_eq!(capped.train.len(), cap as usize);
            prop_assert!(capped.train.iter().all(|i| full.train.binary_search(i).is_ok()));
            prop_assert!(capped.test.iter().all(|i| full.test.binary_search(i).is_ok()));
        }

        #[test]
        fn epoch_order_is_a_permutation_that_changes_with_the_epoch(
            len in 20u32..2000, seed in any::<u64>(), epoch in 0u64..1000
        ) {
            let order = epoch_order(len, Seed::new(seed), epoch);
            prop_assert_eq!(&order, &epoch_order(len, Seed::new(seed), epoch));
            let mut sorted = order.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..len).collect::<Vec<_>>());
            prop_assert_ne!(&order, &epoch_order(len, Seed::new(seed), epoch + 1));
        }

        #[test]
        fn every_epoch_visits_the_same_training_examples(
            n in 50u32..2000, seed in any::<u64>(), e1 in 0u64..100, e2 in 0u64..100
        ) {
            let split = Split::by_fractions(n, &SplitFractions::default(), ss(seed), &SubsetLimits::default()).unwrap();
            let visit = |epoch| {
                let mut seen: Vec<u32> = epoch_order(split.train.len() as u32, Seed::new(seed), epoch)
                    .into_iter()
                    .map(|pos| split.train[pos as usize])
                    .collect();
                seen.sort_unstable();
                seen
            };
            prop_assert_eq!(visit(e1), split.train.clone());
            prop_assert_eq!(visit(e2), split.train.clone());
        }
    }
}
