//! Random streams: every random choice in ReproduceML comes from one of
//! these, never from an engine's or the operating system's generator.
//!
//! A stream is ChaCha20 keyed by
//!
//! ```text
//! key = SHA-256(str("reproml/stream/v1") ‖ u64(run seed) ‖ str(purpose) ‖ u64(epoch) ‖ u64(step))
//! ```
//!
//! with a zero nonce and the block counter starting at 0 (the keystream of
//! `rand_chacha::ChaCha20Rng::from_seed(key)`, equal to RFC 8439's ChaCha20
//! with a zero nonce for the first 2^32 blocks). The keystream is read as
//! little-endian `u32` words; every draw below is defined on those words so
//! another language can reproduce it exactly — see `docs/protocol.md`.
//!
//! Giving each purpose, epoch and step its own stream means that adding a
//! draw in one place never shifts the numbers drawn anywhere else, and that
//! runs in parallel threads share nothing.

use std::fmt;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::canonical::CanonicalHasher;

const STREAM_DOMAIN: &str = "reproml/stream/v1";

/// What a stream is used for. Each purpose draws from its own stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Partition of a data set into train/test/validation.
    Split,
    /// Order of the training examples within one epoch.
    EpochOrder,
    /// Initial weights of a model.
    WeightInit,
    /// Dropout masks.
    Dropout,
    /// Anything else a client needs; the name is hashed as given.
    Other(String),
}

impl Purpose {
    /// The purpose's name as hashed into the stream key.
    pub fn as_str(&self) -> &str {
        match self {
            Purpose::Split => "split",
            Purpose::EpochOrder => "epoch-order",
            Purpose::WeightInit => "weight-init",
            Purpose::Dropout => "dropout",
            Purpose::Other(name) => name,
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The 32-byte ChaCha20 key of the stream for `(seed, purpose, epoch, step)`;
/// `seed` is the value of a run's [`Seed`](crate::Seed) or of the [`SplitSeed`](crate::SplitSeed).
pub fn stream_key(seed: u64, purpose: &Purpose, epoch: u64, step: u64) -> [u8; 32] {
    CanonicalHasher::new(STREAM_DOMAIN)
        .u64(seed)
        .str(purpose.as_str())
        .u64(epoch)
        .u64(step)
        .finish()
}

/// A deterministic, portable source of random numbers.
///
/// ```
/// use reproml_core::stream::{Purpose, RandomStream};
/// let mut a = RandomStream::new(7, &Purpose::WeightInit, 0, 0);
/// let mut b = RandomStream::new(7, &Purpose::WeightInit, 0, 0);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let x = a.unit_f64();
/// assert!((0.0..1.0).contains(&x));
/// ```
#[derive(Clone)]
pub struct RandomStream {
    rng: ChaCha20Rng,
}

impl fmt::Debug for RandomStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RandomStream")
            .field("word_pos", &self.rng.get_word_pos())
            .finish()
    }
}

impl RandomStream {
    /// The stream for `(seed, purpose, epoch, step)`; epochs count from 0;
    /// `seed` is a [`Seed`](crate::Seed)'s or a split seed's value.
    pub fn new(seed: u64, purpose: &Purpose, epoch: u64, step: u64) -> Self {
        Self::from_key(stream_key(seed, purpose, epoch, step))
    }

    /// A stream with an explicit ChaCha20 key.
    pub fn from_key(key: [u8; 32]) -> Self {
        Self {
            rng: ChaCha20Rng::from_seed(key),
        }
    }

    /// The next keystream word.
    pub fn next_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    /// The keep flags of an inverted-dropout mask over `count` units with
    /// drop probability `p` (`docs/protocol.md`, "Dropout masks"): unit
    /// `i` is kept when the `i`-th word is at least `⌊p · 2³²⌋`. Layers of
    /// one batch draw one after another from the batch's stream.
    ///
    /// ```
    /// use reproml_core::stream::{Purpose, RandomStream};
    /// let mut s = RandomStream::new(1, &Purpose::Dropout, 0, 0);
    /// let kept = s.dropout_keep(1000, 0.5).iter().filter(|&&k| k).count();
    /// assert!((400..600).contains(&kept));
    /// ```
    pub fn dropout_keep(&mut self, count: usize, p: f64) -> Vec<bool> {
        let threshold = dropout_threshold(p);
        (0..count)
            .map(|_| u64::from(self.next_u32()) >= threshold)
            .collect()
    }

    /// Two words, the first one low: `lo | hi << 32`.
    pub fn next_u64(&mut self) -> u64 {
        let lo = u64::from(self.next_u32());
        let hi = u64::from(self.next_u32());
        lo | hi << 32
    }

    /// A uniform integer in `0..n` by rejection: draw `x = next_u64()`
    /// until `x < 2^64 − (2^64 mod n)`, then return `x mod n`.
    ///
    /// # Panics
    /// If `n` is 0 (an empty range is a caller bug, not input).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "RandomStream::below(0): the range is empty");
        // 2^64 mod n, computed without 128-bit arithmetic.
        let rem = (u64::MAX % n + 1) % n;
        loop {
            let x = self.next_u64();
            if x <= u64::MAX - rem {
                return x % n;
            }
        }
    }

    /// Words of the keystream read so far.
    pub fn word_position(&self) -> u128 {
        self.rng.get_word_pos()
    }

    /// Moves to word `position` of the keystream, as if exactly that many
    /// words had been read: draws that use a fixed number of words each
    /// (a normal value four, a uniform double two) can then be split into
    /// blocks drawn in parallel, with the very values drawn in order.
    pub fn seek(&mut self, position: u128) {
        self.rng.set_word_pos(position);
    }

    /// A uniform double in `[0, 1)`: `(next_u64() >> 11) · 2^−53`.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal deviate by Box–Muller, cosine branch only:
    /// `u1 = 1 − unit_f64()`, `u2 = unit_f64()`,
    /// `sqrt(−2 ln u1) · cos(2π u2)`. Using one deviate per pair keeps the
    /// stream position a simple function of the number of draws.
    pub fn standard_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit_f64();
        let u2 = self.unit_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Fisher–Yates: for `i` from `len − 1` down to 1, swap item `i` with
    /// item `below(i + 1)`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// A uniformly random permutation of `0..n`: [`RandomStream::shuffle`]
    /// applied to `[0, 1, …, n − 1]`.
    pub fn permutation(&mut self, n: u32) -> Vec<u32> {
        let mut items: Vec<u32> = (0..n).collect();
        self.shuffle(&mut items);
        items
    }
}

/// The word a dropout draw must reach for its unit to be kept:
/// `⌊p · 2³²⌋`, truncated as the protocol says.
pub fn dropout_threshold(p: f64) -> u64 {
    (p * 4_294_967_296.0) as u64
}

/// The factor kept units are scaled by in inverted dropout: `1 / (1 − p)`,
/// computed in `f64` and rounded once to `f32`.
pub fn dropout_scale(p: f64) -> f32 {
    (1.0 / (1.0 - p)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn purposes_epochs_and_steps_get_distinct_streams() {
        let base = stream_key(1, &Purpose::Split, 0, 0);
        assert_ne!(base, stream_key(2, &Purpose::Split, 0, 0));
        assert_ne!(base, stream_key(1, &Purpose::EpochOrder, 0, 0));
        assert_ne!(base, stream_key(1, &Purpose::Split, 1, 0));
        assert_ne!(base, stream_key(1, &Purpose::Split, 0, 1));
        assert_eq!(
            stream_key(1, &Purpose::Other("split".into()), 0, 0),
            base,
            "a purpose is identified by its name alone"
        );
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut s = RandomStream::new(3, &Purpose::Split, 0, 0);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[s.below(6) as usize] += 1;
        }
        for c in counts {
            assert!((9_400..10_600).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn standard_normal_has_unit_moments() {
        let mut s = RandomStream::new(5, &Purpose::WeightInit, 0, 0);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| s.standard_normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        assert!(xs.iter().all(|x| x.is_finite()));
    }

    proptest! {
        #[test]
        fn seeking_reads_the_words_reading_would(seed in any::<u64>(), skip in 0u32..200) {
            let mut read = RandomStream::new(seed, &Purpose::WeightInit, 0, 0);
            for _ in 0..skip {
                read.next_u32();
            }
            let mut sought = RandomStream::new(seed, &Purpose::WeightInit, 0, 0);
            sought.seek(u128::from(skip));
            prop_assert_eq!(sought.word_position(), u128::from(skip));
            for _ in 0..40 {
                prop_assert_eq!(sought.next_u32(), read.next_u32());
            }
        }

        #[test]
        fn permutation_holds_every_index_once(seed in any::<u64>(), n in 0u32..500) {
            let mut p = RandomStream::new(seed, &Purpose::EpochOrder, 0, 0).permutation(n);
            p.sort_unstable();
            prop_assert_eq!(p, (0..n).collect::<Vec<_>>());
        }

        #[test]
        fn below_stays_in_range(seed in any::<u64>(), n in 1u64..u64::MAX) {
            let mut s = RandomStream::new(seed, &Purpose::Dropout, 0, 0);
            for _ in 0..8 {
                prop_assert!(s.below(n) < n);
            }
        }

        #[test]
        fn unit_f64_stays_in_range(seed in any::<u64>()) {
            let mut s = RandomStream::new(seed, &Purpose::Dropout, 0, 0);
            for _ in 0..64 {
                let x = s.unit_f64();
                prop_assert!((0.0..1.0).contains(&x));
            }
        }
    }
}
