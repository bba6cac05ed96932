//! The interpreter: a [`Network`]'s layers run on burn tensors, with the
//! parameters as the flat list the description orders.

use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::module::{adaptive_avg_pool2d, conv2d, linear, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};
use reproml_core::stream::RandomStream;

use crate::conv::conv2d_channels_first;
use crate::device::ComputeDevice;
use crate::fault::{Fault, FaultEffects};
use crate::model::{Layer, Network};
use crate::pool::max_pool_2x2;

impl Network {
    /// Log-probabilities `[batch, classes]`. `dropout` supplies masks in
    /// training and is `None` in evaluation.
    pub fn forward(
        &self,
        params: &[Tensor<1>],
        input: Tensor<4>,
        mut dropout: Option<&mut RandomStream>,
        fault: &Fault,
        device: &Device,
    ) -> Tensor<2> {
        enum Act {
            Maps(Tensor<4>),
            Features(Tensor<2>),
        }
        // On the CPU, maps are `[c, n, h, w]` from the input to `Flatten`,
        // the layout of the engine's own convolution (conv.rs); pooling and
        // activations work per plane, so they take either layout.
        let on_cpu = crate::device::selected() == ComputeDevice::Cpu;
        let input = if on_cpu {
            input.permute([1, 0, 2, 3])
        } else {
            input
        };
        let shaped = |i: usize| -> Vec<usize> { self.params[i].shape.clone() };
        let mut x = Act::Maps(input);
        let mut layers = self.layers.iter().peekable();
        while let Some(layer) = layers.next() {
            x = match (layer, x) {
                (
                    Layer::Conv {
                        weight,
                        bias,
                        padding,
                    },
                    Act::Maps(t),
                ) => {
                    let s = shaped(*weight);
                    let w = params[*weight].clone().reshape([s[0], s[1], s[2], s[3]]);
                    let b = params[*bias].clone();
                    if on_cpu {
                        // A ReLU after it is applied inside (conv.rs).
                        let relu = layers.next_if(|l| matches!(l, Layer::Relu)).is_some();
                        Act::Maps(conv2d_channels_first(t, w, b, *padding, relu))
                    } else {
                        let options = ConvOptions::new([1, 1], [*padding, *padding], [1, 1], 1);
                        Act::Maps(conv2d(t, w, Some(b), options))
                    }
                }
                (Layer::Relu, Act::Maps(t)) => Act::Maps(relu(t)),
                (Layer::Relu, Act::Features(t)) => Act::Features(relu(t)),
                (Layer::Tanh, Act::Maps(t)) => Act::Maps(fault.tanh(t)),
                (Layer::Tanh, Act::Features(t)) => Act::Features(fault.tanh(t)),
                (Layer::MaxPool2, Act::Maps(t)) if on_cpu => Act::Maps(max_pool_2x2(t)),
                (Layer::MaxPool2, Act::Maps(t)) => {
                    Act::Maps(max_pool2d(t, MaxPoolOptions::new([2, 2])))
                }
                (Layer::AdaptiveAvgPool { size }, Act::Maps(t)) => {
                    Act::Maps(adaptive_avg_pool2d(t, *size))
                }
                (Layer::Flatten, Act::Maps(t)) => {
                    let t = if on_cpu { t.permute([1, 0, 2, 3]) } else { t };
                    Act::Features(t.flatten(1, 3))
                }
                (Layer::Linear { weight, bias }, Act::Features(t)) => {
                    let s = shaped(*weight);
                    let w = params[*weight].clone().reshape([s[0], s[1]]);
                    Act::Features(linear(t, w, Some(params[*bias].clone())))
                }
                (Layer::Dropout { p }, Act::Features(t)) => match dropout.as_deref_mut() {
                    Some(stream) => {
                        let [batch, features] = t.dims();
                        let mask =
                            dropout_mask(stream, batch * features, *p, fault.dropout_scale(*p));
                        let mask = Tensor::<2>::from_data(
                            TensorData::new(mask, [batch, features]),
                            device,
                        );
                        Act::Features(t * mask)
                    }
                    None => Act::Features(t),
                },
                (layer, _) => {
                    unreachable!("the builder orders layers; {layer:?} got the wrong rank")
                }
            };
        }
        match x {
            Act::Features(logits) => log_softmax(logits, 1),
            Act::Maps(_) => unreachable!("every network ends with a linear layer"),
        }
    }
}

/// An inverted-dropout mask from the run's stream (the protocol's rule,
/// `RandomStream::dropout_keep`), kept units scaled by `scale`.
fn dropout_mask(stream: &mut RandomStream, count: usize, p: f64, scale: f32) -> Vec<f32> {
    stream
        .dropout_keep(count, p)
        .into_iter()
        .map(|kept| if kept { scale } else { 0.0 })
        .collect()
}
