//! The convolution the CPU engine trains with: im2col and matrix products
//! for the forward pass and for each gradient, on activations laid out
//! channels-first, `[c, n, h, w]`.
//!
//! Why: burn's default weight gradient (burn-backend's
//! `conv2d_weight_backward`) is a convolution of the input by the output
//! gradient with the batch as channels. On flex that is one small matrix
//! product per input channel (9 rows for a 3×3 kernel), each packing the
//! whole output gradient again: 45 % of a VGG-X training step (`perf`,
//! docs/performance.md). With the images inside the columns,
//!
//! ```text
//! cols[(c, i, j), (n, y, x)] = x_pad[c, n, y + i, x + j]
//! out            = W · cols          [o, n·h'·w']
//! ∂W             = ∂out · colsᵀ      [o, c·k·k]
//! ∂cols          = Wᵀ · ∂out         then summed back into ∂x (col2im)
//! ```
//!
//! each is a large product, and `[c, n, h, w]` is what the product yields
//! and takes without a transpose. The batch is taken in chunks of images
//! whose columns fit the core's cache (`CHUNK_BYTES`): a chunk's columns
//! are written and multiplied while still cached, and no column matrix
//! outlives its chunk, so the backward step keeps only the input, as
//! burn's own convolution does. Pooling, ReLU and the rest work per
//! `(n, c)` plane, so they take the layout as it is; the network
//! transposes once before its first convolution and once at `Flatten`.
//!
//! Bit-identity: the products are the `gemm` crate's (`matrix.rs`), whose
//! threads split only independent output blocks; each output's sum runs in
//! a fixed order of blocks chosen from the shapes and the cache sizes,
//! never from the thread count. The chunks come from the shapes too, and
//! the weight gradient adds them in order. col2im adds the `k²` shifted
//! windows in a fixed order; the bias gradient sums in a fixed order of
//! lanes. The determinism tests check it across thread counts and
//! `--jobs`.
//!
//! The operation is a burn backend extension (`#[backend_extension]`), so
//! it stays inside burn: flex's tensors in and out, and the `Autodiff`
//! implementation records a backward step of our own. On CUDA the engine
//! keeps burn's `conv2d` on `[n, c, h, w]`; this extension is not routed
//! there.

use std::ops::Range;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use crate::matrix::{Matrix, MatrixMut, multiply};

/// A stride-1 2-D convolution with bias on channels-first activations,
/// optionally followed by a ReLU.
#[backend_extension(Flex, Autodiff)]
pub trait ChannelsFirstConv: Backend {
    /// `x: [c, n, h, w]`, `weight: [o, c, k, k]`, `bias: [o]`, with
    /// `padding` zeros on every side; the result is `[o, n, h', w']`,
    /// through a ReLU when `relu` is set.
    fn conv2d_channels_first(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        padding: usize,
        relu: bool,
    ) -> FloatTensor<Self>;
}

impl ChannelsFirstConv for Flex {
    fn conv2d_channels_first(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        padding: usize,
        relu: bool,
    ) -> FlexTensor {
        forward(&x, &weight, &bias, padding, relu).0
    }
}

/// The geometry of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    channels: usize,
    batch: usize,
    height: usize,
    width: usize,
    outputs: usize,
    kernel: usize,
    padding: usize,
}

impl Geometry {
    fn of(x: &FlexTensor, weight: &FlexTensor, padding: usize) -> Self {
        let [channels, batch, height, width] = x.shape().dims();
        let [outputs, weight_channels, kernel, kernel_width] = weight.shape().dims();
        assert_eq!(channels, weight_channels, "input channels of a convolution");
        assert!(kernel == kernel_width && kernel > 0, "a square kernel");
        assert!(
            kernel <= height + 2 * padding && kernel <= width + 2 * padding,
            "a {kernel}×{kernel} kernel on a {height}×{width} map padded by {padding}"
        );
        Geometry {
            channels,
            batch,
            height,
            width,
            outputs,
            kernel,
            padding,
        }
    }

    fn out(&self) -> [usize; 2] {
        [
            self.height + 2 * self.padding + 1 - self.kernel,
            self.width + 2 * self.padding + 1 - self.kernel,
        ]
    }

    /// Output pixels per image, `h'·w'`.
    fn plane(&self) -> usize {
        let [ho, wo] = self.out();
        ho * wo
    }

    /// Rows of the im2col matrix, `c·k·k`, the weight's own layout.
    fn rows(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// Columns of the output, `n·h'·w'`.
    fn pixels(&self) -> usize {
        self.batch * self.plane()
    }

    /// The batch in chunks of images whose im2col columns fill about
    /// [`CHUNK_BYTES`]. From the shapes alone, so the products, and with
    /// them every sum, are the same on any number of threads.
    fn chunks(&self) -> impl Iterator<Item = Range<usize>> + use<> {
        let per_image = self.rows() * self.plane() * std::mem::size_of::<f32>();
        let images = (CHUNK_BYTES / per_image.max(1)).clamp(1, self.batch.max(1));
        let batch = self.batch;
        (0..batch)
            .step_by(images)
            .map(move |first| first..(first + images).min(batch))
    }

    /// Scratch for the columns of the largest chunk.
    fn scratch(&self) -> Vec<f32> {
        vec![0.0; self.rows() * self.largest_chunk()]
    }

    /// Output pixels in the largest (the first) chunk of images.
    fn largest_chunk(&self) -> usize {
        self.chunks().next().map_or(0, |c| c.len()) * self.plane()
    }

    /// The output positions along one axis whose input, `position + offset
    /// − padding`, lies inside the map of `size`: the rest read padding.
    fn inside(&self, offset: usize, size: usize, out: usize) -> Range<usize> {
        let start = self.padding.saturating_sub(offset);
        let end = (size + self.padding).saturating_sub(offset).min(out);
        start..end.max(start)
    }
}

/// A chunk's columns are written and read back while they are still in
/// the cache, never through memory: the whole batch's columns were 151 MB
/// for each of VGG-X's large layers. Bigger chunks pack the weight fewer
/// times: with 2, 8 and 32 MiB, VGG-X trained at 43.1, 44.9 and 42.4
/// images/s (medians of 4 interleaved epochs of the train bench's
/// `--throughput-child vgg-x 1`, built with each value; a core with 2 MiB
/// of L2 and a large shared L3).
const CHUNK_BYTES: usize = 8 << 20;

/// A row-major f32 matrix as a flex tensor, without copying.
fn tensor(values: Vec<f32>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// im2col for the images `images` of `x: [c, n, h, w]`, into
/// `cols: [c·k·k, |images|·h'·w']`:
/// `cols[(c, i, j), (n, y, x)] = x_pad[c, n, y + i, x + j]`. Every value of
/// `cols` is written, padding as zeros; rows run in parallel.
fn columns(cols: &mut [f32], x: &[f32], g: &Geometry, images: Range<usize>) {
    let [ho, wo] = g.out();
    let (h, w, p, k) = (g.height, g.width, g.padding, g.kernel);
    let width = images.len() * g.plane();
    if width == 0 {
        return;
    }
    cols.par_chunks_mut(width)
        .enumerate()
        .for_each(|(row, col)| {
            let (c, i, j) = (row / (k * k), row / k % k, row % k);
            let (ys, xs) = (g.inside(i, h, ho), g.inside(j, w, wo));
            let source = xs.start + j - p..xs.end + j - p;
            for (b, image) in images.clone().zip(col.chunks_mut(ho * wo)) {
                let plane = &x[(c * g.batch + b) * h * w..][..h * w];
                for (y, line) in image.chunks_mut(wo).enumerate() {
                    if ys.contains(&y) && !xs.is_empty() {
                        let input = &plane[(y + i - p) * w..][..w];
                        line[..xs.start].fill(0.0);
                        line[xs.clone()].copy_from_slice(&input[source.clone()]);
                        line[xs.end..].fill(0.0);
                    } else {
                        line.fill(0.0);
                    }
                }
            }
        });
}

/// col2im for the images `images`, added into `dx: [c, n, h, w]`:
/// `∂x[c, n, y, x] += Σ_{i, j} ∂cols[(c, i, j), (n, y − i + p, x − j + p)]`,
/// the `k²` windows added in a fixed order, each channel on its own.
fn fold_columns(dx: &mut [f32], dcols: &[f32], g: &Geometry, images: Range<usize>) {
    let [ho, wo] = g.out();
    let (h, w, p, k) = (g.height, g.width, g.padding, g.kernel);
    let width = images.len() * g.plane();
    if width == 0 || dx.is_empty() {
        return;
    }
    dx.par_chunks_mut(g.batch * h * w)
        .zip(dcols.par_chunks(k * k * width))
        .for_each(|(dx, rows)| {
            for (at, col) in rows.chunks(width).enumerate() {
                let (i, j) = (at / k, at % k);
                let (ys, xs) = (g.inside(i, h, ho), g.inside(j, w, wo));
                if xs.is_empty() {
                    continue;
                }
                let target = xs.start + j - p..xs.end + j - p;
                for (b, image) in images.clone().zip(col.chunks(ho * wo)) {
                    let plane = &mut dx[b * h * w..][..h * w];
                    for y in ys.clone() {
                        let line = &mut plane[(y + i - p) * w..][..w];
                        let from = &image[y * wo + xs.start..y * wo + xs.end];
                        for (to, from) in line[target.clone()].iter_mut().zip(from) {
                            *to += from;
                        }
                    }
                }
            }
        });
}

/// Adds `Σ_j m[r, j]` to `sums[r]` for every row `r` of `m`, each row's
/// sum in a fixed order: sixteen running sums (one per AVX-512 lane, so
/// the loop vectorises) added pairwise at the end.
fn add_row_sums(sums: &mut [f32], m: Matrix<'_>) {
    assert_eq!(sums.len(), m.rows(), "one sum per row");
    sums.par_iter_mut()
        .zip(m.row_slices().collect::<Vec<_>>())
        .for_each(|(sum, row)| {
            let mut lanes = [0.0f32; 16];
            let mut chunks = row.chunks_exact(16);
            for chunk in &mut chunks {
                for (lane, v) in lanes.iter_mut().zip(chunk) {
                    *lane += v;
                }
            }
            for (lane, v) in lanes.iter_mut().zip(chunks.remainder()) {
                *lane += v;
            }
            let mut width = 16;
            while width > 1 {
                width /= 2;
                for l in 0..width {
                    lanes[l] += lanes[l + width];
                }
            }
            *sum += lanes[0];
        });
}

/// Where ReLU lets a value, and the gradient at its output, through, as
/// flex decides it (`burn-flex` `ops/activation.rs`, `relu` and
/// `relu_backward`): above zero, or NaN. Everything else (−0 included)
/// becomes +0.
fn relu_passes(v: f32) -> bool {
    v.is_nan() || v > 0.0
}

fn relu(v: f32) -> f32 {
    if relu_passes(v) { v } else { 0.0 }
}

/// The output `[o, n, h', w']`, and the (contiguous) input the backward
/// step needs.
fn forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    padding: usize,
    relu_after: bool,
) -> (FlexTensor, SavedConv) {
    let g = Geometry::of(x, weight, padding);
    let (x, weight, bias) = (
        x.to_contiguous(),
        weight.to_contiguous(),
        bias.to_contiguous(),
    );
    let bias_values: &[f32] = bias.storage();
    assert_eq!(bias_values.len(), g.outputs, "one bias per output channel");
    let (rows, pixels, plane) = (g.rows(), g.pixels(), g.plane());
    // The bias first, then the products added to it: one pass fewer.
    let mut out = Vec::with_capacity(g.outputs * pixels);
    for &b in bias_values {
        out.extend(std::iter::repeat_n(b, pixels));
    }
    let weights = Matrix::row_major(weight.storage(), g.outputs, rows);
    let mut scratch = g.scratch();
    for images in g.chunks() {
        let width = images.len() * plane;
        let cols = &mut scratch[..rows * width];
        columns(cols, x.storage(), &g, images.clone());
        let block = &mut out[images.start * plane..];
        multiply(
            MatrixMut::rows_of(block, g.outputs, width, pixels),
            weights,
            Matrix::row_major(cols, rows, width),
            true,
        );
        if relu_after {
            // While the chunk's outputs are still in the cache.
            block.par_chunks_mut(pixels).for_each(|line| {
                line[..width].iter_mut().for_each(|v| *v = relu(*v));
            });
        }
    }
    let [ho, wo] = g.out();
    let out = tensor(out, [g.outputs, g.batch, ho, wo]);
    let saved = SavedConv {
        x,
        weight,
        out: relu_after.then(|| out.clone()),
        geometry: g,
    };
    (out, saved)
}

/// The gradients of the input, the weight and the bias, each only if
/// asked for.
fn backward(grad: &[f32], saved: &SavedConv, want: [bool; 3]) -> [Option<FlexTensor>; 3] {
    let g = saved.geometry;
    let (rows, pixels, plane) = (g.rows(), g.pixels(), g.plane());
    let x: &[f32] = saved.x.storage();
    let out: Option<&[f32]> = saved.out.as_ref().map(|out| out.storage());
    let weights = Matrix::row_major(saved.weight.storage(), g.outputs, rows);
    let [dx, dw, db] = want;
    let mut dx = dx.then(|| vec![0.0f32; x.len()]);
    let mut dw = dw.then(|| vec![0.0f32; g.outputs * rows]);
    let mut db = db.then(|| vec![0.0f32; g.outputs]);
    let mut scratch = g.scratch();
    // The gradient behind the ReLU, a chunk at a time.
    let mut masked = match out {
        Some(_) => vec![0.0f32; g.outputs * g.largest_chunk()],
        None => Vec::new(),
    };
    for (index, images) in g.chunks().enumerate() {
        let width = images.len() * plane;
        let start = images.start * plane;
        let grad = match out {
            None => Matrix::rows_of(&grad[start..], g.outputs, width, pixels),
            Some(out) => {
                // flex's `relu_backward`: the gradient passes where the
                // output is above zero or NaN.
                let masked = &mut masked[..g.outputs * width];
                let lines = grad[start..]
                    .chunks(pixels)
                    .zip(out[start..].chunks(pixels));
                masked
                    .par_chunks_mut(width)
                    .zip(lines.collect::<Vec<_>>())
                    .for_each(|(to, (grad, out))| {
                        for ((to, &g), &o) in to.iter_mut().zip(grad).zip(out) {
                            *to = if relu_passes(o) { g } else { 0.0 };
                        }
                    });
                Matrix::row_major(masked, g.outputs, width)
            }
        };
        if let Some(db) = db.as_mut() {
            // Each chunk's sums added in order.
            add_row_sums(db, grad);
        }
        let scratch = &mut scratch[..rows * width];
        if let Some(dw) = dw.as_mut() {
            // ∂W = Σ over chunks, in order, of ∂out · colsᵀ.
            columns(scratch, x, &g, images.clone());
            let cols = Matrix::row_major(scratch, rows, width);
            multiply(
                MatrixMut::row_major(dw, g.outputs, rows),
                grad,
                cols.t(),
                index > 0,
            );
        }
        if let Some(dx) = dx.as_mut() {
            // ∂cols = Wᵀ · ∂out, folded back onto the chunk's images.
            multiply(
                MatrixMut::row_major(scratch, rows, width),
                weights.t(),
                grad,
                false,
            );
            fold_columns(dx, scratch, &g, images);
        }
    }
    [
        dx.map(|dx| tensor(dx, [g.channels, g.batch, g.height, g.width])),
        dw.map(|dw| tensor(dw, [g.outputs, g.channels, g.kernel, g.kernel])),
        db.map(|db| tensor(db, [g.outputs])),
    ]
}

#[derive(Debug)]
struct ChannelsFirstConvStep;

/// What the backward step keeps: the input (which the graph holds anyway,
/// as the previous layer's output), the weight, with a ReLU its output
/// (the ReLU's own backward step kept that tensor before), and the
/// geometry.
#[derive(Debug, Clone)]
struct SavedConv {
    x: FlexTensor,
    weight: FlexTensor,
    out: Option<FlexTensor>,
    geometry: Geometry,
}

impl Backward<Flex, 3> for ChannelsFirstConvStep {
    type State = SavedConv;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let nodes = [node_x, node_weight, node_bias];
        let want = nodes.each_ref().map(Option::is_some);
        let gradients = backward(grad.storage(), &ops.state, want);
        for (node, gradient) in nodes.into_iter().zip(gradients) {
            if let (Some(node), Some(gradient)) = (node, gradient) {
                grads.register::<Flex>(node.id, gradient);
            }
        }
    }
}

impl<C: CheckpointStrategy> ChannelsFirstConv for Autodiff<Flex, C> {
    fn conv2d_channels_first(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        padding: usize,
        relu: bool,
    ) -> FloatTensor<Self> {
        let step = ChannelsFirstConvStep
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        let (out, saved) = forward(
            x.primitive(),
            weight.primitive(),
            bias.primitive(),
            padding,
            relu,
        );
        match step {
            OpsKind::Tracked(prep) => prep.finish(saved, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

/// [`ChannelsFirstConv::conv2d_channels_first`] on tensors: `x: [c, n, h, w]`
/// to `[o, n, h', w']`, through a ReLU when `relu` is set (applied to each
/// chunk of images while it is in the cache, and in the backward pass to
/// each chunk of the gradient: no tensor of its own, no pass of its own).
/// CPU only: the extension is routed to flex, with or without autodiff.
pub fn conv2d_channels_first(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    padding: usize,
    relu: bool,
) -> Tensor<4> {
    Tensor::from_dispatch(
        <burn::backend::Dispatch as ChannelsFirstConv>::conv2d_channels_first(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            padding,
            relu,
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

    fn ours(padding: usize, relu: bool) -> impl Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4> {
        move |x, w, b| {
            conv2d_channels_first(x.permute([1, 0, 2, 3]), w, b, padding, relu)
                .permute([1, 0, 2, 3])
        }
    }

    const PARTS: [&str; 4] = ["out", "∂x", "∂weight", "∂bias"];

    /// Fewer and more than 64 output channels, kernels 3 and 5, padding 0
    /// to 2, odd sizes, a batch of one, several chunks; with and without
    /// the ReLU (against burn's `relu` after its `conv2d`).
    #[test]
    fn values_and_gradients_match_burns_convolution() {
        for (shape, padding) in [
            ([2, 3, 7, 6, 4, 3], 1),
            ([3, 2, 5, 5, 5, 3], 0),
            ([1, 4, 6, 6, 2, 5], 2),
            ([2, 1, 8, 8, 3, 5], 0),
            ([2, 3, 6, 5, 64, 3], 1),
            ([1, 5, 4, 4, 70, 3], 0),
            // Padding wider than the kernel reaches; a 1×1 output.
            ([2, 2, 3, 4, 3, 3], 3),
            ([2, 2, 3, 3, 2, 3], 0),
            // Chunks of 14 images and a last one of 2 (`chunks_cover_the_batch`).
            ([16, 64, 16, 16, 4, 3], 1),
        ] {
            for relu in [false, true] {
                let options = ConvOptions::new([1, 1], [padding, padding], [1, 1], 1);
                let burns = run(
                    |x, w, b| {
                        let out = conv2d(x, w, Some(b), options.clone());
                        if relu {
                            burn::tensor::activation::relu(out)
                        } else {
                            out
                        }
                    },
                    shape,
                );
                let ours = run(ours(padding, relu), shape);
                for (part, (a, b)) in PARTS.iter().zip(ours.iter().zip(&burns)) {
                    assert_eq!(a.len(), b.len(), "{part} {shape:?}");
                    // Sums taken in another order differ by rounding, which
                    // scales with the largest values summed, not with the
                    // result (a small result may be a large cancellation);
                    // a misplaced term differs by the order of the values.
                    let scale = b.iter().fold(0.0f32, |m, q| m.max(q.abs()));
                    for (i, (p, q)) in a.iter().zip(b).enumerate() {
                        assert!(
                            (p - q).abs() <= 1e-4 * (1.0 + q.abs()) + 1e-5 * scale,
                            "{part}[{i}] {p} vs burn's {q} ({shape:?}, padding {padding}, relu {relu}, largest {scale})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn chunks_cover_the_batch_in_order_within_the_cache_budget() {
        let geometry = |batch, channels, size| Geometry {
            channels,
            batch,
            height: size,
            width: size,
            outputs: 4,
            kernel: 3,
            padding: 1,
        };
        let sizes = |g: &Geometry| g.chunks().map(|c| c.len()).collect::<Vec<_>>();
        assert_eq!(sizes(&geometry(16, 64, 16)), [14, 2]);
        // VGG-X's second convolution: 2.4 MB of columns an image.
        assert_eq!(sizes(&geometry(8, 64, 32)), [3, 3, 2]);
        // One image over the budget is a chunk of its own.
        assert_eq!(sizes(&geometry(2, 256, 32)), [1, 1]);
        assert_eq!(sizes(&geometry(64, 1, 8)), [64]);
        for g in [geometry(16, 64, 16), geometry(64, 6, 14), geometry(1, 3, 5)] {
            let chunks: Vec<_> = g.chunks().collect();
            assert_eq!(chunks.first().map(|c| c.start), Some(0));
            assert_eq!(chunks.last().map(|c| c.end), Some(g.batch));
            assert!(chunks.windows(2).all(|w| w[0].end == w[1].start));
            let per_image = g.rows() * g.plane() * 4;
            assert!(
                chunks
                    .iter()
                    .all(|c| c.len() == 1 || c.len() * per_image <= CHUNK_BYTES)
            );
        }
    }

    /// Large enough that every product is threaded (over 7·10⁶
    /// multiply-adds) and gemm splits it, in two chunks.
    #[test]
    fn values_and_gradients_are_bit_identical_across_thread_counts() {
        let shape = [16, 64, 16, 16, 48, 3];
        let on = |threads: usize| {
            crate::with_threads(threads, || {
                assert_eq!(rayon::current_num_threads(), threads, "a pool of its own");
                [run(ours(1, false), shape), run(ours(1, true), shape)].concat()
            })
        };
        let one = on(1);
        for threads in [2, 3] {
            let many = on(threads);
            assert_eq!(one.len(), 8);
            for (part, (a, b)) in PARTS.iter().cycle().zip(one.iter().zip(&many)) {
                let differ = a.iter().zip(b).filter(|(p, q)| p.to_bits() != q.to_bits());
                assert_eq!(differ.count(), 0, "{part} on {threads} threads");
            }
        }
    }
}
