//! 2×2 max pooling with stride 2 on the CPU, written for the engine.
//!
//! Why: flex's max pooling is general (any kernel, stride, padding,
//! dilation, 3-D) and computes the window bounds and an `i64` index for
//! every output; it took about a quarter of a LeNet-5 training step
//! (`perf`). This one knows its window, keeps the winner's position in the
//! window as one byte, and runs each `(n, c)` plane on its own, so it takes
//! `[n, c, h, w]` and the engine's `[c, n, h, w]` alike.
//!
//! It means what burn's and PyTorch's max pooling mean: the window is read
//! row by row, the first maximum wins a tie, a NaN wins over everything
//! (the last NaN if there are several), odd sizes drop their last row or
//! column. The gradient goes to the winner only; windows do not overlap, so
//! nothing is summed and the result does not depend on the thread count.
//!
//! A burn backend extension routed to flex, as `conv.rs` is.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// 2×2 max pooling with stride 2.
#[backend_extension(Flex, Autodiff)]
pub trait MaxPool2x2: Backend {
    /// `[a, b, h, w]` to `[a, b, h / 2, w / 2]`.
    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl MaxPool2x2 for Flex {
    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        pool(&x).0
    }
}

/// The pooled tensor and, for each output, where its winner sat in the
/// window (`2·row + column`).
fn pool(x: &FlexTensor) -> (FlexTensor, Arc<[u8]>) {
    let x = x.to_contiguous();
    let [a, b, h, w] = x.shape().dims();
    let (ho, wo) = (h / 2, w / 2);
    let input: &[f32] = x.storage();
    let mut out = vec![0.0f32; a * b * ho * wo];
    let mut winners = vec![0u8; out.len()];
    if !out.is_empty() {
        out.par_chunks_mut(ho * wo)
            .zip(winners.par_chunks_mut(ho * wo))
            .zip(input.par_chunks(h * w))
            .for_each(|((out, winners), plane)| {
                for y in 0..ho {
                    let top = &plane[2 * y * w..];
                    let bottom = &plane[(2 * y + 1) * w..];
                    for x in 0..wo {
                        let window = [top[2 * x], top[2 * x + 1], bottom[2 * x], bottom[2 * x + 1]];
                        let (mut best, mut at) = (window[0], 0u8);
                        for (i, &v) in window.iter().enumerate().skip(1) {
                            if v > best || v.is_nan() {
                                (best, at) = (v, i as u8);
                            }
                        }
                        out[y * wo + x] = best;
                        winners[y * wo + x] = at;
                    }
                }
            });
    }
    let out = FlexTensor::from_data(TensorData::new(out, [a, b, ho, wo]));
    (out, winners.into())
}

/// `∂x`: each output's gradient at its winner's place, zeros elsewhere.
fn unpool(grad: &FlexTensor, saved: &SavedPool) -> FlexTensor {
    let grad = grad.to_contiguous();
    let [a, b, h, w] = saved.input;
    let (ho, wo) = (h / 2, w / 2);
    let grad: &[f32] = grad.storage();
    let mut dx = vec![0.0f32; a * b * h * w];
    if !grad.is_empty() {
        dx.par_chunks_mut(h * w)
            .zip(grad.par_chunks(ho * wo))
            .zip(saved.winners.par_chunks(ho * wo))
            .for_each(|((plane, grad), winners)| {
                for y in 0..ho {
                    for x in 0..wo {
                        let at = usize::from(winners[y * wo + x]);
                        let (row, column) = (2 * y + at / 2, 2 * x + at % 2);
                        // `0 + g` as burn's own backward writes it: −0 becomes +0.
                        plane[row * w + column] = 0.0 + grad[y * wo + x];
                    }
                }
            });
    }
    FlexTensor::from_data(TensorData::new(dx, [a, b, h, w]))
}

/// What the backward step keeps.
#[derive(Clone)]
struct SavedPool {
    input: [usize; 4],
    winners: Arc<[u8]>,
}

impl std::fmt::Debug for SavedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SavedPool {{ input: {:?} }}", self.input)
    }
}

#[derive(Debug)]
struct MaxPool2x2Step;

impl Backward<Flex, 1> for MaxPool2x2Step {
    type State = SavedPool;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            grads.register::<Flex>(node.id, unpool(&grad, &ops.state));
        }
    }
}

impl<C: CheckpointStrategy> MaxPool2x2 for Autodiff<Flex, C> {
    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match MaxPool2x2Step
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, winners) = pool(x.primitive());
                let input = x.primitive().shape().dims();
                prep.finish(SavedPool { input, winners }, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(pool(x.primitive()).0),
        }
    }
}

/// [`MaxPool2x2::max_pool_2x2`] on tensors. CPU only (routed to flex).
pub fn max_pool_2x2(x: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<burn::backend::Dispatch as MaxPool2x2>::max_pool_2x2(
        x.into_dispatch(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use burn::tensor::module::max_pool2d;
    use burn::tensor::ops::MaxPoolOptions;
    use burn::tensor::{Device, Tensor, TensorData};
    use proptest::prelude::*;

    use super::*;

    /// Values and gradients of `Σ pool(x)·r` through `pooling`.
    fn run(
        pooling: impl Fn(Tensor<4>) -> Tensor<4>,
        x: &[f32],
        shape: [usize; 4],
    ) -> [Vec<f32>; 2] {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), shape), &device).require_grad();
        let out = pooling(x.clone());
        let dims = out.dims();
        let n = dims.iter().product::<usize>();
        // −0 among the output gradients: burn's backward turns it into +0.
        let r: Vec<f32> = (0..n)
            .map(|i| {
                if i % 5 == 0 {
                    -0.0
                } else {
                    (i % 7) as f32 - 3.0
                }
            })
            .collect();
        let r = Tensor::<4>::from_data(TensorData::new(r, dims), &device);
        let values = out.clone().into_data().try_into_vec::<f32>().unwrap();
        let grads = (out * r).sum().backward();
        let dx = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        [values, dx]
    }

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits())
    }

    proptest! {
        /// Ties (values from a handful), NaNs and odd sizes included.
        #[test]
        fn pools_and_routes_gradients_as_burn_does(
            a in 1usize..3, b in 1usize..4, h in 2usize..8, w in 2usize..8,
            seed in any::<u64>(), nans in any::<bool>(),
        ) {
            let n = a * b * h * w;
            let x: Vec<f32> = (0..n)
                .map(|i| {
                    let v = (seed.wrapping_mul(i as u64 + 1) >> 40) % 5;
                    if nans && v == 4 { f32::NAN } else { v as f32 }
                })
                .collect();
            let ours = run(max_pool_2x2, &x, [a, b, h, w]);
            let burns = run(|t| max_pool2d(t, MaxPoolOptions::new([2, 2])), &x, [a, b, h, w]);
            prop_assert!(same_bits(&ours[0], &burns[0]), "values {:?} vs {:?}", ours[0], burns[0]);
            prop_assert!(same_bits(&ours[1], &burns[1]), "∂x {:?} vs {:?}", ours[1], burns[1]);
        }
    }
}
