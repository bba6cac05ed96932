//! `x·a + y·b` on the CPU in one pass on the pool's threads: the
//! optimiser's update of every parameter.
//!
//! Why: SGD with momentum as burn tensor operations (`buf·μ + g`, then
//! `p − buf·lr`) is four elementwise passes a parameter, each allocating
//! its result, and flex runs elementwise operations on one thread: for
//! VGG-X, four serial passes over 62 MB of parameters every step, while
//! the second thread waited.
//!
//! The same bits as those operations: each value is `(x·a) + (y·b)`, two
//! products rounded to f32 and their sum rounded (Rust never fuses them
//! into one multiply-add). With `a = 1` the product is `x` exactly, and
//! `p + buf·(−lr)` is `p − buf·lr` exactly (negation is exact), so
//! `scaled_sum(buf, μ, g, 1)` and `scaled_sum(p, 1, buf, −lr)` are what
//! the four operations computed. Each value is its own: no sum, so no
//! order, depends on the threads.
//!
//! A burn backend extension routed to flex, as `conv.rs` is; parameters
//! are never tracked by autodiff, so there is no `Autodiff` routing.

use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// `x·a + y·b`, elementwise.
#[backend_extension(Flex)]
pub trait ScaledSum: Backend {
    /// `x` and `y` of the same shape; the result has it too.
    fn scaled_sum(x: FloatTensor<Self>, a: f32, y: FloatTensor<Self>, b: f32) -> FloatTensor<Self>;
}

/// Values per task: large enough that a task is worth its scheduling.
const PER_TASK: usize = 1 << 16;

impl ScaledSum for Flex {
    fn scaled_sum(x: FlexTensor, a: f32, y: FlexTensor, b: f32) -> FlexTensor {
        assert_eq!(x.shape(), y.shape(), "a scaled sum of tensors of one shape");
        let y = y.to_contiguous();
        let y: &[f32] = y.storage();
        let combine = |x: f32, y: f32| x * a + y * b;
        // In place when `x` is ours alone (a momentum buffer is).
        let mut x = {
            let contiguous = x.to_contiguous();
            drop(x);
            contiguous
        };
        if let Some(values) = x.try_storage_mut::<f32>() {
            values
                .par_chunks_mut(PER_TASK)
                .zip(y.par_chunks(PER_TASK))
                .for_each(|(x, y)| x.iter_mut().zip(y).for_each(|(x, &y)| *x = combine(*x, y)));
            return x;
        }
        let shape = x.shape();
        let mut out = Vec::with_capacity(y.len());
        x.storage::<f32>()
            .par_iter()
            .zip(y)
            .map(|(&x, &y)| combine(x, y))
            .collect_into_vec(&mut out);
        FlexTensor::from_data(TensorData::new(out, shape))
    }
}

/// [`ScaledSum::scaled_sum`] on tensors. CPU only (routed to flex).
pub fn scaled_sum(x: Tensor<1>, a: f32, y: Tensor<1>, b: f32) -> Tensor<1> {
    Tensor::from_dispatch(<burn::backend::Dispatch as ScaledSum>::scaled_sum(
        x.into_dispatch(),
        a,
        y.into_dispatch(),
        b,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use burn::tensor::{Device, Tensor, TensorData};
    use proptest::prelude::*;

    use super::*;

    fn tensor(values: &[f32]) -> Tensor<1> {
        Tensor::<1>::from_data(
            TensorData::new(values.to_vec(), [values.len()]),
            &Device::flex(),
        )
    }

    fn bits(t: Tensor<1>) -> Vec<u32> {
        let values = t.into_data().try_into_vec::<f32>().unwrap();
        values.iter().map(|v| v.to_bits()).collect()
    }

    proptest! {
        /// The momentum update and the step, against the burn operations
        /// the optimiser used before, bit for bit; with the first input
        /// shared (a new result) and unshared (updated in place).
        #[test]
        fn equals_burns_elementwise_operations(
            pairs in proptest::collection::vec((-1e3f32..1e3, -1e3f32..1e3), 1..300),
            momentum in 0.0f64..1.0, lr in 1e-4f64..1.0, shared in any::<bool>(),
        ) {
            let (xs, ys): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
            let (x, y) = (tensor(&xs), tensor(&ys));
            let keep = shared.then(|| x.clone());
            let buf = scaled_sum(x.clone(), momentum as f32, y.clone(), 1.0);
            prop_assert_eq!(bits(buf), bits(x.clone().mul_scalar(momentum) + y.clone()));
            let step = scaled_sum(x.clone(), 1.0, y.clone(), -(lr as f32));
            prop_assert_eq!(bits(step), bits(x - y.mul_scalar(lr)));
            if let Some(kept) = keep {
                prop_assert_eq!(bits(kept), xs.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn large_tensors_are_split_into_tasks_without_changing_a_value() {
        let n = 3 * PER_TASK + 11;
        let xs: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 0.37).collect();
        let ys: Vec<f32> = (0..n).map(|i| (i % 89) as f32 * -1.3).collect();
        let want: Vec<u32> = xs
            .iter()
            .zip(&ys)
            .map(|(x, y)| (x * 0.9 + y * 1.0).to_bits())
            .collect();
        for threads in [1, 3] {
            let got = crate::with_threads(threads, || {
                bits(scaled_sum(tensor(&xs), 0.9, tensor(&ys), 1.0))
            });
            assert_eq!(got, want, "{threads} threads");
        }
    }
}
