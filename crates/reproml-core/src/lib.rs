//! The pure domain of ReproduceML: experiment specs, identifiers, seeds,
//! random streams, splits and classification metrics.
//!
//! Nothing here does I/O. Every random choice anywhere in ReproduceML comes
//! from [`stream::RandomStream`], keyed by the derivations in [`seed`] and
//! [`stream`]; `docs/protocol.md` specifies them byte for byte so that a
//! client in another language reproduces them exactly.

mod canonical;
pub mod fault;
pub mod id;
pub mod metrics;
pub mod run;
pub mod seed;
pub mod selection;
pub mod spec;
pub mod split;
pub mod stream;
pub mod time;

pub use id::{ExperimentId, IdentifierError, ModelName, Name, VariantLabel};
pub use seed::{RunIndex, Seed, SeedPolicy, SplitSeed};
pub use spec::ExperimentSpec;

/// Lowercase hexadecimal of `bytes`: how digests (SHA-256) are written in
/// the protocol, the database and reports.
///
/// ```
/// assert_eq!(reproml_core::hex(&[0x0f, 0xa0]), "0fa0");
/// ```
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
