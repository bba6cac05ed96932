//! The canonical byte encoding hashed by every derivation (seeds, streams).
//!
//! Written out in `docs/protocol.md` so that any language can reproduce it:
//! a string is its UTF-8 bytes prefixed by their length as a `u32`
//! little-endian; an integer is its 8 bytes as a `u64` little-endian. Each
//! derivation starts with a domain string ("reproml/seed/v1", …) so that no
//! two purposes can ever hash the same bytes.

use sha2::{Digest, Sha256};

/// Builds the SHA-256 of a canonical encoding, field by field.
#[derive(Clone, Default)]
pub(crate) struct CanonicalHasher(Sha256);

impl CanonicalHasher {
    /// Starts an encoding with its domain string.
    pub(crate) fn new(domain: &str) -> Self {
        Self::default().str(domain)
    }

    pub(crate) fn str(mut self, s: &str) -> Self {
        // Identifiers and purposes are bounded far below 4 GiB, so the
        // length always fits the u32 prefix.
        let len = u32::try_from(s.len()).expect("canonical strings are shorter than 4 GiB");
        self.0.update(len.to_le_bytes());
        self.0.update(s.as_bytes());
        self
    }

    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.update(v.to_le_bytes());
        self
    }

    pub(crate) fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}
