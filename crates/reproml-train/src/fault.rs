//! What each fault of the vocabulary ([`Fault`], parsed in `reproml-core`)
//! does to the engine.

use burn::tensor::Tensor;
use burn::tensor::activation::tanh;

pub use reproml_core::fault::{Fault, FaultParseError};

/// The effects of a fault on training, where the engine asks for them.
pub(crate) trait FaultEffects {
    /// The scale dropout applies to kept units.
    fn dropout_scale(&self, p: f64) -> f32;
    /// `tanh`, as the fault leaves it.
    fn tanh<const D: usize>(&self, t: Tensor<D>) -> Tensor<D>;
    /// The factor applied to parameter `index` (named `name`)'s gradient.
    fn gradient_factor(&self, index: usize, name: &str) -> Option<f64>;
    /// Whether SGD keeps its momentum.
    fn keeps_momentum(&self) -> bool;
}

impl FaultEffects for Fault {
    /// The scale dropout applies to kept units.
    fn dropout_scale(&self, p: f64) -> f32 {
        match self {
            Fault::DropoutScale { scale } => *scale,
            _ => reproml_core::stream::dropout_scale(p),
        }
    }

    /// `tanh`, as the fault leaves it.
    fn tanh<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        match self {
            Fault::TanhOffset { offset } => tanh(t).add_scalar(*offset),
            _ => tanh(t),
        }
    }

    /// The factor applied to parameter `index` (named `name`)'s gradient.
    fn gradient_factor(&self, index: usize, name: &str) -> Option<f64> {
        match self {
            Fault::GradScale { epsilon, param } => {
                let hit = match param {
                    Some(p) => p == name,
                    None => index == 0,
                };
                hit.then_some(1.0 + epsilon)
            }
            _ => None,
        }
    }

    /// Whether SGD keeps its momentum.
    fn keeps_momentum(&self) -> bool {
        !matches!(self, Fault::MomentumIgnored)
    }
}
