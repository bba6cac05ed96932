//! Matrix products for the engine's own CPU operations (`conv.rs`): the
//! `gemm` crate that flex's `matmul` uses, called directly so that a
//! transposed operand is a pair of strides rather than a copy, and so that
//! a product can add into a destination that already holds the bias.
//!
//! Bit-identity: gemm blocks each output's sum into `kc`-long pieces, with
//! `kc` chosen from the shapes and the cache sizes; its threads split only
//! output blocks. So an output's value does not depend on the thread
//! count. Whether the product is threaded at all is decided here from the
//! shapes alone, with flex's own threshold.

/// A read-only matrix view into a slice: element `(r, c)` is
/// `data[r · row_stride + c · column_stride]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Matrix<'a> {
    data: &'a [f32],
    shape: Shape,
}

/// A mutable, row-major matrix view into a slice: element `(r, c)` is
/// `data[r · row_stride + c]`.
#[derive(Debug)]
pub(crate) struct MatrixMut<'a> {
    data: &'a mut [f32],
    shape: Shape,
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    rows: usize,
    columns: usize,
    row_stride: usize,
    column_stride: usize,
}

impl Shape {
    /// Checks that every element lies inside `len` values, and that the
    /// strides are no longer than the slice (so they fit an `isize`),
    /// with arithmetic that cannot wrap.
    fn within(mut self, len: usize) -> Self {
        // A stride along a dimension of one element is never used: set it
        // to 1, so that any value a caller gives is harmless.
        if self.rows <= 1 {
            self.row_stride = 1;
        }
        if self.columns <= 1 {
            self.column_stride = 1;
        }
        let past = || -> ! {
            panic!(
                "a {}×{} matrix view past its {len} values",
                self.rows, self.columns
            )
        };
        if self.rows > 0 && self.columns > 0 {
            if self.row_stride > len || self.column_stride > len {
                past();
            }
            let last = (self.rows - 1)
                .checked_mul(self.row_stride)
                .zip((self.columns - 1).checked_mul(self.column_stride))
                .and_then(|(a, b)| a.checked_add(b));
            if last.is_none_or(|last| last >= len) {
                past();
            }
        }
        self
    }

    fn row_major(rows: usize, columns: usize, row_stride: usize) -> Self {
        assert!(
            columns <= row_stride || rows <= 1,
            "rows of a matrix overlap"
        );
        Shape {
            rows,
            columns,
            row_stride,
            column_stride: 1,
        }
    }
}

impl<'a> Matrix<'a> {
    /// `data` as a row-major `rows × columns` matrix.
    ///
    /// # Panics
    /// If `data` does not hold exactly `rows · columns` values.
    pub(crate) fn row_major(data: &'a [f32], rows: usize, columns: usize) -> Self {
        assert_eq!(
            Some(data.len()),
            rows.checked_mul(columns),
            "a {rows}×{columns} matrix"
        );
        Self::rows_of(data, rows, columns, columns)
    }

    /// `rows × columns` values whose rows start `row_stride` apart in
    /// `data`: a block of columns of a wider row-major matrix.
    ///
    /// # Panics
    /// If the view reaches past `data`.
    pub(crate) fn rows_of(data: &'a [f32], rows: usize, columns: usize, row_stride: usize) -> Self {
        let shape = Shape::row_major(rows, columns, row_stride).within(data.len());
        Matrix { data, shape }
    }

    /// Its number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.shape.rows
    }

    /// The rows as slices.
    ///
    /// # Panics
    /// If the view's columns are not adjacent (a transposed view).
    pub(crate) fn row_slices(self) -> impl Iterator<Item = &'a [f32]> {
        let Shape {
            rows,
            columns,
            row_stride,
            column_stride,
        } = self.shape;
        assert!(
            column_stride == 1 || columns <= 1,
            "rows of a transposed view"
        );
        (0..rows).map(move |r| &self.data[r * row_stride..][..columns])
    }

    /// The transpose, without moving a value.
    pub(crate) fn t(self) -> Self {
        let s = self.shape;
        Matrix {
            data: self.data,
            shape: Shape {
                rows: s.columns,
                columns: s.rows,
                row_stride: s.column_stride,
                column_stride: s.row_stride,
            },
        }
    }
}

impl<'a> MatrixMut<'a> {
    /// `data` as a row-major `rows × columns` matrix.
    ///
    /// # Panics
    /// If `data` does not hold exactly `rows · columns` values.
    pub(crate) fn row_major(data: &'a mut [f32], rows: usize, columns: usize) -> Self {
        assert_eq!(
            Some(data.len()),
            rows.checked_mul(columns),
            "a {rows}×{columns} matrix"
        );
        Self::rows_of(data, rows, columns, columns)
    }

    /// As [`Matrix::rows_of`].
    pub(crate) fn rows_of(
        data: &'a mut [f32],
        rows: usize,
        columns: usize,
        row_stride: usize,
    ) -> Self {
        let shape = Shape::row_major(rows, columns, row_stride).within(data.len());
        MatrixMut { data, shape }
    }
}

/// Below this many multiply-adds a product runs on the calling thread:
/// flex's threshold (burn-flex `ops/matmul.rs`, 192³), so that threading
/// is decided as before, from the shapes alone.
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// `dst = a · b`, or `dst += a · b` with `accumulate`.
///
/// # Panics
/// If the shapes do not agree.
pub(crate) fn multiply(dst: MatrixMut<'_>, a: Matrix<'_>, b: Matrix<'_>, accumulate: bool) {
    let (m, k, n) = (a.shape.rows, a.shape.columns, b.shape.columns);
    assert_eq!(b.shape.rows, k, "inner dimensions of a product");
    assert_eq!(
        (dst.shape.rows, dst.shape.columns),
        (m, n),
        "the destination of a {m}×{n} product"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                let start = r * dst.shape.row_stride;
                dst.data[start..start + n].fill(0.0);
            }
        }
        return;
    }
    let threads = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let stride = |s: usize| isize::try_from(s).expect("a stride within a slice fits an isize");
    #[allow(unsafe_code)]
    // SAFETY: gemm reads `a` at i·rs + l·cs for i < m, l < k, `b` at
    // l·rs + j·cs for l < k, j < n, and writes (with `accumulate`, also
    // reads) `dst` at i·rs + j for i < m, j < n. Every view was checked on
    // construction (`Shape::within`, without wrapping) to keep its largest
    // such index inside its slice, so every access is in bounds; strides
    // are at most a slice's length, so they fit an isize. The rows of `dst` do not
    // overlap (`Shape::row_major`), so no element is written by two
    // threads. `dst` is a unique borrow, so it aliases neither operand,
    // and all three outlive the call, which returns only when every thread
    // it started has finished.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            stride(dst.shape.row_stride),
            accumulate,
            a.data.as_ptr(),
            stride(a.shape.column_stride),
            stride(a.shape.row_stride),
            b.data.as_ptr(),
            stride(b.shape.column_stride),
            stride(b.shape.row_stride),
            1.0,
            1.0,
            false,
            false,
            false,
            threads,
        );
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The textbook product, in f64 so that it is the reference.
    fn reference(a: Matrix<'_>, b: Matrix<'_>) -> Vec<f64> {
        let at = |x: Matrix<'_>, r: usize, c: usize| {
            f64::from(x.data[r * x.shape.row_stride + c * x.shape.column_stride])
        };
        let (m, k, n) = (a.shape.rows, a.shape.columns, b.shape.columns);
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|l| at(a, i, l) * at(b, l, j)).sum();
            }
        }
        out
    }

    proptest! {
        /// Every combination of transposed operands, with and without
        /// accumulating, into a block of columns of a wider destination,
        /// against the textbook product; the rest of the destination is
        /// left alone.
        #[test]
        fn multiplies_plain_and_transposed_views(
            m in 1usize..40, k in 1usize..40, n in 1usize..40, margin in 0usize..5,
            transpose_a in any::<bool>(), transpose_b in any::<bool>(),
            accumulate in any::<bool>(), seed in 0u32..1000,
        ) {
            let value = |i: usize| (((i as u32).wrapping_mul(2654435761) ^ seed) % 17) as f32 - 8.0;
            let a_data: Vec<f32> = (0..m * k).map(value).collect();
            let b_data: Vec<f32> = (0..k * n).map(|i| value(i + 7)).collect();
            let a = if transpose_a {
                Matrix::row_major(&a_data, k, m).t()
            } else {
                Matrix::row_major(&a_data, m, k)
            };
            let b = if transpose_b {
                Matrix::row_major(&b_data, n, k).t()
            } else {
                Matrix::row_major(&b_data, k, n)
            };
            let wide = n + margin;
            let mut dst = vec![1.5f32; m * wide];
            multiply(MatrixMut::rows_of(&mut dst[margin..], m, n, wide), a, b, accumulate);
            let start = if accumulate { 1.5 } else { 0.0 };
            let want = reference(a, b);
            for (i, row) in dst.chunks(wide).enumerate() {
                prop_assert!(row[..margin].iter().all(|&v| v == 1.5), "margin written");
                for (j, got) in row[margin..].iter().enumerate() {
                    // Small integers: every partial sum is exact in f32.
                    prop_assert_eq!(f64::from(*got), start + want[i * n + j]);
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "inner dimensions")]
    fn refuses_mismatched_shapes() {
        let a = [0.0; 6];
        multiply(
            MatrixMut::row_major(&mut [0.0; 4], 2, 2),
            Matrix::row_major(&a, 2, 3),
            Matrix::row_major(&a, 2, 3),
            false,
        );
    }

    #[test]
    #[should_panic(expected = "past its")]
    fn refuses_a_view_past_its_slice() {
        Matrix::rows_of(&[0.0; 10], 3, 3, 4);
    }

    /// Shapes whose element counts wrap around `usize` are refused, not
    /// taken for small ones.
    #[test]
    fn refuses_shapes_that_overflow() {
        let wraps = (usize::MAX / 3) + 1;
        for attempt in [
            std::panic::catch_unwind(|| Matrix::row_major(&[0.0; 2], 3, wraps)),
            std::panic::catch_unwind(|| Matrix::rows_of(&[0.0; 2], 2, 1, usize::MAX)),
            std::panic::catch_unwind(|| Matrix::rows_of(&[0.0; 4], wraps, 1, 3)),
        ] {
            assert!(attempt.is_err());
        }
    }

    /// Large enough for gemm's threads and for several blocks of the
    /// summed dimension, with operands that are column blocks of wider
    /// matrices (as the convolution's gradient chunks are): against the
    /// textbook product, and the same bits on 1 and 3 threads.
    #[test]
    fn large_strided_products_are_right_and_thread_independent() {
        let (m, k, n, wide) = (200, 600, 300, 700);
        let a_data: Vec<f32> = (0..m * wide).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let b_data: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
        let a = Matrix::rows_of(&a_data[3..], m, k, wide);
        let b = Matrix::row_major(&b_data, k, n);
        let want = reference(a, b);
        let on = |threads| {
            crate::with_threads(threads, || {
                let mut dst = vec![0.0f32; m * n];
                multiply(MatrixMut::row_major(&mut dst, m, n), a, b, false);
                dst
            })
        };
        let one = on(1);
        // Small integers: every partial sum is exact in f32.
        assert!(
            one.iter()
                .zip(&want)
                .all(|(got, want)| f64::from(*got) == *want)
        );
        assert_eq!(one, on(3));
    }

    #[test]
    fn an_empty_inner_dimension_gives_zeros_or_leaves_the_sum() {
        let mut dst = vec![2.0f32; 6];
        multiply(
            MatrixMut::rows_of(&mut dst, 2, 2, 3),
            Matrix::row_major(&[], 2, 0),
            Matrix::row_major(&[], 0, 2),
            true,
        );
        assert_eq!(dst, [2.0; 6]);
        multiply(
            MatrixMut::rows_of(&mut dst, 2, 2, 3),
            Matrix::row_major(&[], 2, 0),
            Matrix::row_major(&[], 0, 2),
            false,
        );
        assert_eq!(dst, [0.0, 0.0, 2.0, 0.0, 0.0, 2.0]);
    }
}
