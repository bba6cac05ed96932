//! Trajectory digests: SHA-256 of every parameter, so that two trainings
//! can be compared bit for bit after each epoch.
//!
//! ```text
//! parameter digest = SHA-256(f32 little-endian bytes of the parameter)
//! model digest     = SHA-256("reproml/params/v1" ‖ for each parameter in order:
//!                      str(name) ‖ u32 rank ‖ u32 dims… ‖ f32 little-endian bytes)
//! ```
//! with `str` the length-prefixed UTF-8 of `docs/protocol.md`.

use reproml_core::hex;
use sha2::{Digest, Sha256};

use crate::model::ParamSpec;

/// The digests of one snapshot of the parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The model digest, hex.
    pub model: String,
    /// Each parameter's digest, hex, in parameter order.
    pub params: Vec<String>,
}

/// Digests `values` (one vector per parameter of `specs`).
pub fn snapshot(specs: &[ParamSpec], values: &[Vec<f32>]) -> Snapshot {
    let mut model = Sha256::new();
    model.update(b"reproml/params/v1");
    let mut params = Vec::with_capacity(specs.len());
    for (spec, values) in specs.iter().zip(values) {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        model.update((spec.name.len() as u32).to_le_bytes());
        model.update(spec.name.as_bytes());
        model.update((spec.shape.len() as u32).to_le_bytes());
        for &d in &spec.shape {
            model.update((d as u32).to_le_bytes());
        }
        model.update(&bytes);
        params.push(hex(&Sha256::digest(&bytes)));
    }
    Snapshot {
        model: hex(&model.finalize()),
        params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Init;

    #[test]
    fn one_bit_changes_the_digest() {
        let specs = vec![ParamSpec {
            name: "w".into(),
            shape: vec![2],
            init: Init::Zeros,
        }];
        let a = snapshot(&specs, &[vec![1.0, 2.0]]);
        let b = snapshot(&specs, &[vec![1.0, f32::from_bits(2.0f32.to_bits() + 1)]]);
        assert_ne!(a.model, b.model);
        assert_ne!(a.params, b.params);
        assert_eq!(a, snapshot(&specs, &[vec![1.0, 2.0]]));
        assert_eq!(a.model.len(), 64);
    }
}
