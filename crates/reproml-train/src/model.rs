//! Models described as plain lists of layers over a flat, ordered parameter
//! list; no tensors here (the interpreter is `forward.rs`).
//!
//! Every parameter is a 1-D leaf tensor, reshaped where a layer uses it, so
//! that initialisation, the optimiser and the trajectory digest all see the
//! same fixed order of named parameters. To add a model, build a
//! [`Network`] with [`NetworkBuilder`] and register a constructor in a
//! `ModelRegistry` (in `models.rs`; see `docs/training.md`, "Adding a model").

use reproml_core::stream::RandomStream;
use reproml_data::ImageShape;

/// How a parameter's initial values are drawn (from the run's own stream).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// `N(0, 2 / fan_out)`: Kaiming normal, fan-out mode, for ReLU.
    KaimingNormalFanOut {
        /// Output channels × kernel area.
        fan_out: usize,
    },
    /// `N(0, std²)`.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// `U(−bound, bound)`.
    Uniform {
        /// Half-width of the interval.
        bound: f64,
    },
    /// All zeros.
    Zeros,
}

impl Init {
    /// Draws `count` initial values; each parameter has its own stream so
    /// that adding a layer never changes the values of the others.
    pub fn draw(self, count: usize, stream: &mut RandomStream) -> Vec<f32> {
        match self {
            Init::KaimingNormalFanOut { fan_out } => {
                let std = (2.0 / fan_out as f64).sqrt();
                in_blocks(count, stream, 4, |s| (s.standard_normal() * std) as f32)
            }
            Init::Normal { std } => {
                in_blocks(count, stream, 4, |s| (s.standard_normal() * std) as f32)
            }
            Init::Uniform { bound } => in_blocks(count, stream, 2, |s| {
                ((2.0 * s.unit_f64() - 1.0) * bound) as f32
            }),
            Init::Zeros => vec![0.0; count],
        }
    }
}

/// Values drawn in order from `stream` by `draw`, which reads exactly
/// `words` words each. Large parameters are drawn in blocks on the
/// thread pool, each block from a copy of the stream moved to its first
/// word: the same values as one by one (VGG-X's 13-million-weight layer
/// is most of its initialisation). The stream ends past the last value.
fn in_blocks(
    count: usize,
    stream: &mut RandomStream,
    words: usize,
    draw: impl Fn(&mut RandomStream) -> f32 + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    const BLOCK: usize = 1 << 16;
    let start = stream.word_position();
    let word_of = |value: usize| start + (value as u128) * (words as u128);
    let mut values = vec![0.0f32; count];
    values
        .par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(block, values)| {
            let mut s = stream.clone();
            s.seek(word_of(block * BLOCK));
            values.iter_mut().for_each(|v| *v = draw(&mut s));
        });
    stream.seek(word_of(count));
    values
}

/// A named parameter with its shape and initialisation rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Name, e.g. `conv1.weight`.
    pub name: String,
    /// Shape as the layer uses it.
    pub shape: Vec<usize>,
    /// How its initial values are drawn.
    pub init: Init,
}

impl ParamSpec {
    /// Number of scalars.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for a parameter without scalars (never built).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One step of a network.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// 2-D convolution, stride 1, square kernel.
    Conv {
        /// Index of the weight `[out, in, k, k]`.
        weight: usize,
        /// Index of the bias `[out]`.
        bias: usize,
        /// Zero padding on each side.
        padding: usize,
    },
    /// `max(x, 0)`.
    Relu,
    /// `tanh(x)`: offered for user models; no built-in model uses it (the
    /// `tanh-offset` fault relies on that).
    Tanh,
    /// 2×2 max pooling, stride 2.
    MaxPool2,
    /// Adaptive average pooling to a fixed size.
    AdaptiveAvgPool {
        /// Output height and width.
        size: [usize; 2],
    },
    /// `[b, c, h, w] → [b, c·h·w]`.
    Flatten,
    /// Fully connected: `x · W + b` with `W` stored `[in, out]`.
    Linear {
        /// Index of the weight `[in, out]`.
        weight: usize,
        /// Index of the bias `[out]`.
        bias: usize,
    },
    /// Inverted dropout with drop probability `p` (masks from the run's stream).
    Dropout {
        /// Probability of dropping a unit.
        p: f64,
    },
}

/// Why a model cannot be built for an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The name is not registered.
    #[error("unknown model {name:?}; built-in models: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The registered names.
        known: String,
    },
    /// The input is too small or of the wrong kind for the model.
    #[error("model {model} cannot take {channels}×{height}×{width} inputs: {reason}")]
    Input {
        /// The model.
        model: String,
        /// Input channels.
        channels: u32,
        /// Input height.
        height: u32,
        /// Input width.
        width: u32,
        /// Why.
        reason: String,
    },
}

/// A model: its parameters in fixed order and its layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// Model name.
    pub name: String,
    /// Parameters, in the order of init, optimiser and digest.
    pub params: Vec<ParamSpec>,
    /// Layers, input to logits.
    pub layers: Vec<Layer>,
}

/// Builds a [`Network`] while tracking the shape of the activations, so
/// that layer sizes follow from the input and impossible inputs are caught.
pub struct NetworkBuilder {
    network: Network,
    /// Current activation shape: `[c, h, w]`, or `[features]` after Flatten.
    shape: Vec<usize>,
    input: ImageShape,
}

/// How a builder initialises new layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitScheme {
    /// The paper's VGG-X rule: Kaiming normal (fan-out) convolutions,
    /// `N(0, 0.01)` linear weights, zero biases.
    Paper,
    /// PyTorch's defaults: `U(±1/√fan_in)` for weights and biases.
    TorchDefault,
}

impl NetworkBuilder {
    /// Starts a network for `input` images.
    pub fn new(name: &str, input: ImageShape) -> Self {
        Self {
            network: Network {
                name: name.into(),
                params: Vec::new(),
                layers: Vec::new(),
            },
            shape: vec![
                input.channels as usize,
                input.height as usize,
                input.width as usize,
            ],
            input,
        }
    }

    fn refuse(&self, reason: String) -> ModelError {
        ModelError::Input {
            model: self.network.name.clone(),
            channels: self.input.channels,
            height: self.input.height,
            width: self.input.width,
            reason,
        }
    }

    fn param(&mut self, name: String, shape: Vec<usize>, init: Init) -> usize {
        self.network.params.push(ParamSpec { name, shape, init });
        self.network.params.len() - 1
    }

    fn spatial(&self) -> Result<(usize, usize, usize), ModelError> {
        match self.shape[..] {
            [c, h, w] => Ok((c, h, w)),
            _ => Err(self.refuse("a spatial layer after Flatten".into())),
        }
    }

    /// A `k×k` convolution to `out` channels with `padding`, then ReLU.
    pub fn conv_relu(
        mut self,
        name: &str,
        out: usize,
        k: usize,
        padding: usize,
        scheme: InitScheme,
    ) -> Result<Self, ModelError> {
        let (c, h, w) = self.spatial()?;
        if h + 2 * padding < k || w + 2 * padding < k {
            return Err(self.refuse(format!(
                "{name} needs a {k}×{k} window but the feature map is {h}×{w}"
            )));
        }
        let (wi, bi) = match scheme {
            InitScheme::Paper => (
                Init::KaimingNormalFanOut {
                    fan_out: out * k * k,
                },
                Init::Zeros,
            ),
            InitScheme::TorchDefault => {
                let bound = 1.0 / ((c * k * k) as f64).sqrt();
                (Init::Uniform { bound }, Init::Uniform { bound })
            }
        };
        let weight = self.param(format!("{name}.weight"), vec![out, c, k, k], wi);
        let bias = self.param(format!("{name}.bias"), vec![out], bi);
        self.network.layers.push(Layer::Conv {
            weight,
            bias,
            padding,
        });
        self.network.layers.push(Layer::Relu);
        self.shape = vec![out, h + 2 * padding + 1 - k, w + 2 * padding + 1 - k];
        Ok(self)
    }

    /// 2×2 max pooling.
    pub fn max_pool(mut self) -> Result<Self, ModelError> {
        let (c, h, w) = self.spatial()?;
        if h < 2 || w < 2 {
            return Err(self.refuse(format!(
                "max pooling needs at least 2×2, the feature map is {h}×{w}"
            )));
        }
        self.network.layers.push(Layer::MaxPool2);
        self.shape = vec![c, h / 2, w / 2];
        Ok(self)
    }

    /// Adaptive average pooling to `size`.
    pub fn adaptive_avg_pool(mut self, size: [usize; 2]) -> Result<Self, ModelError> {
        let (c, _, _) = self.spatial()?;
        self.network.layers.push(Layer::AdaptiveAvgPool { size });
        self.shape = vec![c, size[0], size[1]];
        Ok(self)
    }

    /// Flattens the feature maps.
    pub fn flatten(mut self) -> Result<Self, ModelError> {
        let (c, h, w) = self.spatial()?;
        self.network.layers.push(Layer::Flatten);
        self.shape = vec![c * h * w];
        Ok(self)
    }

    /// A fully connected layer to `out` features, optionally with ReLU.
    pub fn linear(
        mut self,
        name: &str,
        out: usize,
        relu: bool,
        scheme: InitScheme,
    ) -> Result<Self, ModelError> {
        let [input] = self.shape[..] else {
            return Err(self.refuse(format!("{name} needs flattened features")));
        };
        let (wi, bi) = match scheme {
            InitScheme::Paper => (Init::Normal { std: 0.01 }, Init::Zeros),
            InitScheme::TorchDefault => {
                let bound = 1.0 / (input as f64).sqrt();
                (Init::Uniform { bound }, Init::Uniform { bound })
            }
        };
        let weight = self.param(format!("{name}.weight"), vec![input, out], wi);
        let bias = self.param(format!("{name}.bias"), vec![out], bi);
        self.network.layers.push(Layer::Linear { weight, bias });
        if relu {
            self.network.layers.push(Layer::Relu);
        }
        self.shape = vec![out];
        Ok(self)
    }

    /// Dropout with probability `p`.
    pub fn dropout(mut self, p: f64) -> Self {
        self.network.layers.push(Layer::Dropout { p });
        self
    }

    /// The finished network.
    pub fn build(self) -> Network {
        self.network
    }
}

impl Network {
    /// Number of scalar parameters.
    pub fn parameter_count(&self) -> usize {
        self.params.iter().map(ParamSpec::len).sum()
    }

    /// Initial parameters for a run: parameter `i` from stream
    /// `(seed, "weight-init", 0, i)`.
    pub fn initial_parameters(&self, seed: reproml_core::Seed) -> Vec<Vec<f32>> {
        self.params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut stream = RandomStream::new(
                    seed.get(),
                    &reproml_core::stream::Purpose::WeightInit,
                    0,
                    i as u64,
                );
                p.init.draw(p.len(), &mut stream)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use reproml_core::stream::Purpose;

    use super::*;

    /// Block boundaries (2¹⁶ values) crossed, with a partial last block;
    /// the stream left where drawing one by one leaves it.
    #[test]
    fn drawing_in_blocks_gives_the_values_drawn_one_by_one() {
        let count = 2 * (1 << 16) + 7;
        for (init, one) in [
            (
                Init::Normal { std: 0.5 },
                (|s: &mut RandomStream| (s.standard_normal() * 0.5) as f32)
                    as fn(&mut RandomStream) -> f32,
            ),
            (Init::Uniform { bound: 0.25 }, |s| {
                ((2.0 * s.unit_f64() - 1.0) * 0.25) as f32
            }),
        ] {
            let mut blocks = RandomStream::new(3, &Purpose::WeightInit, 0, 1);
            let mut serial = blocks.clone();
            let drawn = crate::with_threads(3, || init.draw(count, &mut blocks));
            let want: Vec<f32> = (0..count).map(|_| one(&mut serial)).collect();
            assert!(
                drawn
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
            assert_eq!(drawn.len(), want.len());
            assert_eq!(blocks.next_u32(), serial.next_u32(), "{init:?}");
        }
    }
}
