//! The built-in models and the registry that names them. Layer sizes
//! follow the input; an input a model cannot take is refused with the
//! reason.

use reproml_data::ImageShape;

use std::collections::BTreeMap;

use crate::model::{InitScheme, ModelError, Network, NetworkBuilder};

/// A small multilayer perceptron for fast runs: 128 and 64 hidden units,
/// PyTorch's default initialisation.
pub fn mlp(input: ImageShape, classes: usize) -> Result<Network, ModelError> {
    let s = InitScheme::TorchDefault;
    Ok(NetworkBuilder::new("mlp", input)
        .flatten()?
        .linear("fc1", 128, true, s)?
        .linear("fc2", 64, true, s)?
        .linear("fc3", classes, false, s)?
        .build())
}

/// LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: conv 5×5 to 6
/// channels (padding 2), pool, conv 5×5 to 16 (padding 2 when the map is
/// smaller than 10, as on 8×8 digits), pool, then 120, 84 and the classes.
/// PyTorch's default initialisation.
pub fn lenet5(input: ImageShape, classes: usize) -> Result<Network, ModelError> {
    let s = InitScheme::TorchDefault;
    let after_pool = input.height.min(input.width) as usize / 2;
    let pad2 = if after_pool < 10 { 2 } else { 0 };
    Ok(NetworkBuilder::new("lenet5", input)
        .conv_relu("conv1", 6, 5, 2, s)?
        .max_pool()?
        .conv_relu("conv2", 16, 5, pad2, s)?
        .max_pool()?
        .flatten()?
        .linear("fc1", 120, true, s)?
        .linear("fc2", 84, true, s)?
        .linear("fc3", classes, false, s)?
        .build())
}

/// The paper's VGG-X: conv 3×3 to 64, conv 3×3 to 256, max pool, conv 3×3
/// to 512, adaptive average pool to 5×5, then 1024, 1024 (ReLU and dropout
/// 0.5 each) and the classes. Kaiming-normal (fan-out) convolutions,
/// `N(0, 0.01)` linear weights, zero biases. 15,497,738 parameters for
/// 3×32×32 inputs and 10 classes.
pub fn vgg_x(input: ImageShape, classes: usize) -> Result<Network, ModelError> {
    let s = InitScheme::Paper;
    Ok(NetworkBuilder::new("vgg-x", input)
        .conv_relu("conv1", 64, 3, 1, s)?
        .conv_relu("conv2", 256, 3, 1, s)?
        .max_pool()?
        .conv_relu("conv3", 512, 3, 1, s)?
        .adaptive_avg_pool([5, 5])?
        .flatten()?
        .linear("fc1", 1024, true, s)?
        .dropout(0.5)
        .linear("fc2", 1024, true, s)?
        .dropout(0.5)
        .linear("fc3", classes, false, s)?
        .build())
}

/// VGG-11 (Simonyan & Zisserman 2015, configuration A) adapted to 32×32
/// inputs as is usual for CIFAR-10: the eight convolutions and five pools,
/// then a 512–512–classes classifier with dropout 0.5. Needs inputs of at
/// least 32×32 (five halvings). PyTorch's default initialisation.
pub fn vgg11(input: ImageShape, classes: usize) -> Result<Network, ModelError> {
    let s = InitScheme::TorchDefault;
    let mut b = NetworkBuilder::new("vgg11", input);
    let plan: [&[usize]; 5] = [&[64], &[128], &[256, 256], &[512, 512], &[512, 512]];
    let mut n = 0;
    for block in plan {
        for &out in block {
            n += 1;
            b = b.conv_relu(&format!("conv{n}"), out, 3, 1, s)?;
        }
        b = b.max_pool()?;
    }
    Ok(b.flatten()?
        .linear("fc1", 512, true, s)?
        .dropout(0.5)
        .linear("fc2", 512, true, s)?
        .dropout(0.5)
        .linear("fc3", classes, false, s)?
        .build())
}

/// AlexNet (Krizhevsky et al. 2012) adapted to 32×32 inputs: five 3×3
/// convolutions (64, 192, 384, 256, 256 channels) with three pools, then
/// 1024–1024–classes with dropout 0.5. Needs at least 8×8. PyTorch's default
/// initialisation.
pub fn alexnet(input: ImageShape, classes: usize) -> Result<Network, ModelError> {
    let s = InitScheme::TorchDefault;
    Ok(NetworkBuilder::new("alexnet", input)
        .conv_relu("conv1", 64, 3, 1, s)?
        .max_pool()?
        .conv_relu("conv2", 192, 3, 1, s)?
        .max_pool()?
        .conv_relu("conv3", 384, 3, 1, s)?
        .conv_relu("conv4", 256, 3, 1, s)?
        .conv_relu("conv5", 256, 3, 1, s)?
        .max_pool()?
        .flatten()?
        .dropout(0.5)
        .linear("fc1", 1024, true, s)?
        .dropout(0.5)
        .linear("fc2", 1024, true, s)?
        .linear("fc3", classes, false, s)?
        .build())
}

/// Builds a model by name for an input shape and class count.
pub type ModelConstructor = fn(ImageShape, usize) -> Result<Network, ModelError>;

/// The models `reproml run` knows, by name.
#[derive(Clone)]
pub struct ModelRegistry {
    models: BTreeMap<String, ModelConstructor>,
}

impl Default for ModelRegistry {
    fn default() -> Self {
        let mut r = Self {
            models: BTreeMap::new(),
        };
        r.register("mlp", mlp);
        r.register("lenet5", lenet5);
        r.register("vgg-x", vgg_x);
        r.register("vgg11", vgg11);
        r.register("alexnet", alexnet);
        r
    }
}

impl ModelRegistry {
    /// Adds (or replaces) a model.
    pub fn register(&mut self, name: &str, constructor: ModelConstructor) {
        self.models.insert(name.into(), constructor);
    }

    /// Builds model `name` for `input` and `classes`.
    pub fn build(
        &self,
        name: &str,
        input: ImageShape,
        classes: usize,
    ) -> Result<Network, ModelError> {
        let constructor = self.models.get(name).ok_or_else(|| ModelError::Unknown {
            name: name.into(),
            known: self.names().join(", "),
        })?;
        constructor(input, classes)
    }

    /// The registered names.
    pub fn names(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_holds_exactly_the_models_a_server_accepts() {
        let mut names = ModelRegistry::default().names();
        names.sort();
        let mut accepted: Vec<_> = reproml_core::spec::BUILTIN_MODELS
            .iter()
            .map(|s| s.to_string())
            .collect();
        accepted.sort();
        assert_eq!(names, accepted);
    }

    fn shape(c: u32, h: u32, w: u32) -> ImageShape {
        ImageShape {
            channels: c,
            height: h,
            width: w,
        }
    }

    #[test]
    fn vgg_x_has_the_paper_s_parameter_count() {
        assert_eq!(
            vgg_x(shape(3, 32, 32), 10).unwrap().parameter_count(),
            15_497_738
        );
    }

    #[test]
    fn classic_sizes() {
        // LeNet-5 on 28×28: conv1 156, conv2 2416, fc1 400·120+120, fc2 10164, fc3 850.
        assert_eq!(
            lenet5(shape(1, 28, 28), 10).unwrap().parameter_count(),
            156 + 2416 + 48_120 + 10_164 + 850
        );
        // MLP on 8×8 digits: 64·128+128 + 128·64+64 + 64·10+10.
        assert_eq!(
            mlp(shape(1, 8, 8), 10).unwrap().parameter_count(),
            8320 + 8256 + 650
        );
        assert!(vgg11(shape(3, 32, 32), 10).is_ok());
        assert!(alexnet(shape(3, 32, 32), 10).is_ok());
    }

    #[test]
    fn every_model_takes_the_challenges_it_should() {
        for input in [shape(1, 8, 8), shape(1, 28, 28), shape(3, 32, 32)] {
            for build in [mlp, lenet5, vgg_x, alexnet] {
                assert!(build(input, 10).is_ok(), "{input:?}");
            }
        }
    }

    #[test]
    fn too_small_inputs_are_refused_with_a_reason() {
        let err = vgg11(shape(1, 28, 28), 10).unwrap_err().to_string();
        assert!(err.contains("vgg11 cannot take 1×28×28 inputs"), "{err}");
        assert!(err.contains("max pooling needs at least 2×2"), "{err}");
        assert!(lenet5(shape(1, 2, 2), 10).is_err());
    }
}
