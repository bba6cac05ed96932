//! The convolution the CPU engine trains with: im2col and one matrix
//! product for the forward pass and for each gradient, on activations laid
//! out channels-first, `[c, n, h, w]`.
//!
//! Why: burn's default weight gradient (burn-backend's
//! `conv2d_weight_backward`) is a convolution of the input by the output
//! gradient with the batch as channels. On flex that is one small matrix
//! product per input channel (9 rows for a 3×3 kernel), each packing the
//! whole output gradient again: 45 % of a VGG-X training step (`perf`,
//! docs/performance.md). With the batch inside the columns,
//!
//! ```text
//! cols[(c, i, j), (n, y, x)] = x_pad[c, n, y + i, x + j]
//! out            = W · cols          [o, n·h'·w']
//! ∂W             = ∂out · colsᵀ      [o, c·k·k]
//! ∂cols          = Wᵀ · ∂out         then summed back into ∂x (col2im)
//! ```
//!
//! each is one large GEMM, `[c, n, h, w]` is what the product yields and
//! takes without a transpose, and the forward pass's columns serve the
//! weight gradient too. Pooling, ReLU and the rest work per `(n, c)`
//! plane, so they take the layout as it is; the network transposes once
//! before its first convolution and once at `Flatten`.
//!
//! Bit-identity: the products are flex's matmul, i.e. the `gemm` crate,
//! whose threads split only independent output blocks; each output's sum
//! runs in a fixed order of fixed-size blocks (`kc`, chosen from the shapes
//! and the cache sizes, never from the thread count). col2im adds the `k²`
//! shifted windows in a fixed order. The determinism tests check it across
//! thread counts and `--jobs`.
//!
//! The operation is a burn backend extension (`#[backend_extension]`), so
//! it stays inside burn: flex runs the forward pass, and the `Autodiff`
//! implementation records a backward step of our own. On CUDA the engine
//! keeps burn's `conv2d` on `[n, c, h, w]`; this extension is not routed
//! there.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Shape, Slice, Tensor};

/// A stride-1 2-D convolution with bias on channels-first activations.
#[backend_extension(Flex, Autodiff)]
pub trait ChannelsFirstConv: Backend {
    /// `x: [c, n, h, w]`, `weight: [o, c, k, k]`, `bias: [o]`, with
    /// `padding` zeros on every side; the result is `[o, n, h', w']`.
    fn conv2d_channels_first(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        padding: usize,
    ) -> FloatTensor<Self> {
        forward::<Self>(x, weight, bias, padding).0
    }
}

impl ChannelsFirstConv for Flex {}

/// The geometry of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    channels: usize,
    batch: usize,
    height: usize,
    width: usize,
    kernel: usize,
    padding: usize,
}

impl Geometry {
    fn of<B: Backend>(x: &FloatTensor<B>, weight: &FloatTensor<B>, padding: usize) -> Self {
        let [channels, batch, height, width] = x.shape().dims();
        let [_, _, kernel, _] = weight.shape().dims();
        Geometry {
            channels,
            batch,
            height,
            width,
            kernel,
            padding,
        }
    }

    fn padded(&self) -> [usize; 2] {
        [
            self.height + 2 * self.padding,
            self.width + 2 * self.padding,
        ]
    }

    fn out(&self) -> [usize; 2] {
        let [h, w] = self.padded();
        [h + 1 - self.kernel, w + 1 - self.kernel]
    }

    /// `[c, n, h', w']` window of the padded input for kernel offset `at`.
    fn window(&self, at: usize) -> [Slice; 4] {
        let (i, j) = (at / self.kernel, at % self.kernel);
        let [ho, wo] = self.out();
        [
            Slice::from(0..self.channels),
            Slice::from(0..self.batch),
            Slice::from(i..i + ho),
            Slice::from(j..j + wo),
        ]
    }

    fn centre(&self) -> [Slice; 4] {
        let p = self.padding;
        [
            Slice::from(0..self.channels),
            Slice::from(0..self.batch),
            Slice::from(p..p + self.height),
            Slice::from(p..p + self.width),
        ]
    }

    fn zeros<B: Backend>(&self, like: &FloatTensor<B>, [h, w]: [usize; 2]) -> FloatTensor<B> {
        B::float_zeros(
            Shape::new([self.channels, self.batch, h, w]),
            &like.device(),
            like.dtype().into(),
        )
    }
}

/// The im2col matrix `[c·k·k, n·h'·w']`; its row `(c, i, j)` matches the
/// weight's own layout `[o, c, k, k]`.
fn columns<B: Backend>(x: FloatTensor<B>, g: Geometry) -> FloatTensor<B> {
    let padded = if g.padding == 0 {
        x
    } else {
        B::float_slice_assign(g.zeros::<B>(&x, g.padded()), &g.centre(), x)
    };
    let [ho, wo] = g.out();
    let windows = (0..g.kernel * g.kernel)
        .map(|at| {
            let window = B::float_slice(padded.clone(), &g.window(at));
            B::float_reshape(window, Shape::new([g.channels, 1, g.batch * ho * wo]))
        })
        .collect();
    B::float_reshape(
        B::float_cat(windows, 1),
        Shape::new([g.channels * g.kernel * g.kernel, g.batch * ho * wo]),
    )
}

/// col2im: `∂x[c, n, y, x] = Σ_{i, j} ∂cols[(c, i, j), (n, y − i + p, x − j + p)]`,
/// the windows added in a fixed order.
fn fold_columns<B: Backend>(cols: FloatTensor<B>, g: Geometry) -> FloatTensor<B> {
    let [ho, wo] = g.out();
    let kk = g.kernel * g.kernel;
    let cols = B::float_reshape(cols, Shape::new([g.channels, kk, g.batch, ho, wo]));
    let mut sum = g.zeros::<B>(&cols, g.padded());
    for at in 0..kk {
        let part = B::float_slice(
            cols.clone(),
            &[
                Slice::from(0..g.channels),
                Slice::from(at..at + 1),
                Slice::from(0..g.batch),
                Slice::from(0..ho),
                Slice::from(0..wo),
            ],
        );
        let part = B::float_reshape(part, Shape::new([g.channels, g.batch, ho, wo]));
        let window = g.window(at);
        let added = B::float_add(B::float_slice(sum.clone(), &window), part);
        sum = B::float_slice_assign(sum, &window, added);
    }
    if g.padding == 0 {
        sum
    } else {
        B::float_slice(sum, &g.centre())
    }
}

/// `a · b`, with the longer side of the result as gemm's rows: its AVX-512
/// kernel is 64 rows × 6 columns, so a product of 6 rows (LeNet-5's first
/// convolution) would leave most of it idle, while `(bᵀ · aᵀ)ᵀ` fills it.
/// Which way is taken depends on the shapes only, never on the threads.
fn product<B: Backend>(a: FloatTensor<B>, b: FloatTensor<B>) -> FloatTensor<B> {
    let [rows, _] = a.shape().dims();
    let [_, columns] = b.shape().dims();
    if rows >= 64 || rows >= columns {
        B::float_matmul(a, b)
    } else {
        let transposed = B::float_matmul(B::float_transpose(b), B::float_transpose(a));
        B::float_transpose(transposed)
    }
}

/// The output `[o, n, h', w']` and the columns it was computed from.
fn forward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    padding: usize,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let g = Geometry::of::<B>(&x, &weight, padding);
    let [o, ..] = weight.shape().dims::<4>();
    let [ho, wo] = g.out();
    let cols = columns::<B>(x, g);
    let weight = B::float_reshape(weight, Shape::new([o, g.channels * g.kernel * g.kernel]));
    let out = product::<B>(weight, cols.clone());
    let out = B::float_add(out, B::float_reshape(bias, Shape::new([o, 1])));
    (
        B::float_reshape(out, Shape::new([o, g.batch, ho, wo])),
        cols,
    )
}

#[derive(Debug)]
struct ChannelsFirstConvStep;

/// What the backward step keeps: the forward pass's columns, the weight
/// and the geometry.
type SavedConv<B> = (FloatTensor<B>, FloatTensor<B>, Geometry);

impl<B: Backend> Backward<B, 3> for ChannelsFirstConvStep {
    type State = SavedConv<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (cols, weight, g) = ops.state;
        let [o, ..] = weight.shape().dims::<4>();
        let [ho, wo] = g.out();
        let grad = B::float_reshape(grad, Shape::new([o, g.batch * ho * wo]));
        let weight_shape = weight.shape();
        let rows = g.channels * g.kernel * g.kernel;

        if let Some(node) = node_x {
            let weight = B::float_reshape(weight, Shape::new([o, rows]));
            let dcols = product::<B>(B::float_transpose(weight), grad.clone());
            grads.register::<B>(node.id, fold_columns::<B>(dcols, g));
        }
        if let Some(node) = node_weight {
            let dw = product::<B>(grad.clone(), B::float_transpose(cols));
            grads.register::<B>(node.id, B::float_reshape(dw, weight_shape));
        }
        if let Some(node) = node_bias {
            let db = B::float_sum_dim(grad, 1);
            grads.register::<B>(node.id, B::float_reshape(db, Shape::new([o])));
        }
    }
}

impl<B: ChannelsFirstConv, C: CheckpointStrategy> ChannelsFirstConv for Autodiff<B, C> {
    fn conv2d_channels_first(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        padding: usize,
    ) -> FloatTensor<Self> {
        match ChannelsFirstConvStep
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let weight = weight.into_primitive();
                let g = Geometry::of::<B>(x.primitive(), &weight, padding);
                let (out, cols) = forward::<B>(
                    x.into_primitive(),
                    weight.clone(),
                    bias.into_primitive(),
                    padding,
                );
                prep.finish((cols, weight, g), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_channels_first(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                padding,
            )),
        }
    }
}

/// [`ChannelsFirstConv::conv2d_channels_first`] on tensors: `x: [c, n, h, w]`
/// to `[o, n, h', w']`. CPU only: the extension is routed to flex, with or
/// without autodiff.
pub fn conv2d_channels_first(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    padding: usize,
) -> Tensor<4> {
    Tensor::from_dispatch(
        <burn::backend::Dispatch as ChannelsFirstConv>::conv2d_channels_first(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            padding,
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Device, Tensor, TensorData};
    use reproml_core::stream::{Purpose, RandomStream};

    use super::*;

    fn random(stream: &mut RandomStream, shape: &[usize]) -> Vec<f32> {
        let n = shape.iter().product();
        (0..n).map(|_| stream.standard_normal() as f32).collect()
    }

    /// The output and the gradients of `Σ out²·r` (not linear in `out`, so
    /// the gradients depend on the forward values) for x, weight and bias.
    fn run(
        conv: impl Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>,
        [n, c, h, w, o, k]: [usize; 6],
    ) -> [Vec<f32>; 4] {
        let device = Device::flex().autodiff();
        let mut stream = RandomStream::new(11, &Purpose::Dropout, n as u64, k as u64);
        let tensor = |stream: &mut RandomStream, shape: [usize; 4]| {
            let v = random(stream, &shape);
            Tensor::<4>::from_data(TensorData::new(v, shape), &device).require_grad()
        };
        let x = tensor(&mut stream, [n, c, h, w]);
        let weight = tensor(&mut stream, [o, c, k, k]);
        let bias = Tensor::<1>::from_data(TensorData::new(random(&mut stream, &[o]), [o]), &device)
            .require_grad();
        let out = conv(x.clone(), weight.clone(), bias.clone());
        let r = Tensor::<4>::from_data(
            TensorData::new(random(&mut stream, &out.dims()), out.dims()),
            &device,
        );
        let values = |g: TensorData| g.try_into_vec::<f32>().unwrap();
        let forward = values(out.clone().into_data());
        let grads = (out.clone() * out * r).sum().backward();
        [
            forward,
            values(x.grad(&grads).unwrap().into_data()),
            values(weight.grad(&grads).unwrap().into_data()),
            values(bias.grad(&grads).unwrap().into_data()),
        ]
    }

    fn ours(padding: usize) -> impl Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4> {
        move |x, w, b| {
            conv2d_channels_first(x.permute([1, 0, 2, 3]), w, b, padding).permute([1, 0, 2, 3])
        }
    }

    const PARTS: [&str; 4] = ["out", "∂x", "∂weight", "∂bias"];

    /// Both branches of `product` (fewer and more than 64 output channels),
    /// kernels 3 and 5, padding 0 to 2, odd sizes, a batch of one.
    #[test]
    fn values_and_gradients_match_burns_convolution() {
        for (shape, padding) in [
            ([2, 3, 7, 6, 4, 3], 1),
            ([3, 2, 5, 5, 5, 3], 0),
            ([1, 4, 6, 6, 2, 5], 2),
            ([2, 1, 8, 8, 3, 5], 0),
            ([2, 3, 6, 5, 64, 3], 1),
            ([1, 5, 4, 4, 70, 3], 0),
        ] {
            let options = ConvOptions::new([1, 1], [padding, padding], [1, 1], 1);
            let burns = run(|x, w, b| conv2d(x, w, Some(b), options.clone()), shape);
            let ours = run(ours(padding), shape);
            for (part, (a, b)) in PARTS.iter().zip(ours.iter().zip(&burns)) {
                assert_eq!(a.len(), b.len(), "{part} {shape:?}");
                for (i, (p, q)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                        "{part}[{i}] {p} vs burn's {q} ({shape:?}, padding {padding})"
                    );
                }
            }
        }
    }

    /// Large enough that flex hands every product to gemm with threads
    /// (over 7·10⁶ multiply-adds) and gemm splits it.
    #[test]
    fn values_and_gradients_are_bit_identical_across_thread_counts() {
        let shape = [8, 32, 16, 16, 48, 3];
        let on = |threads: usize| {
            crate::with_threads(threads, || {
                assert_eq!(rayon::current_num_threads(), threads, "a pool of its own");
                run(ours(1), shape)
            })
        };
        let one = on(1);
        for threads in [2, 3] {
            let many = on(threads);
            for (part, (a, b)) in PARTS.iter().zip(one.iter().zip(&many)) {
                let differ = a.iter().zip(b).filter(|(p, q)| p.to_bits() != q.to_bits());
                assert_eq!(differ.count(), 0, "{part} on {threads} threads");
            }
        }
    }
}
