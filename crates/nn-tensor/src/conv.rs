//! 2-d convolution: padding rules, output sizes, im2col and col2im, and the
//! convolution kernels [`conv2d_forward`] (with [`conv2d_forward_map`] fusing an
//! element-wise activation), [`conv2d_backward_filter`] and [`conv2d_backward_input`].
//!
//! The kernels split the batch into fixed chunks of whole images (about 4096 output
//! pixels each, whatever the thread count) that run in parallel on nn's pool; each
//! chunk builds its im2col matrix in a cache-sized buffer and runs a single-threaded
//! GEMM ([`crate::gemm::gemm_serial`]): at the skinny shapes of a first convolution
//! (`k = 9` or `n = 32`) one threaded GEMM over the whole batch is slower on two
//! threads than on one, while independent chunks scale. The kernel and bias gradients
//! are summed per chunk and the partials added in chunk order, so every result is
//! bit-identical at any thread count.
//!
//! Layout: **NHWC** (channels last, Keras's default): images are `[batch, height,
//! width, channels]` and a convolution kernel is `[kernel_h, kernel_w, in_channels,
//! filters]`, which reshapes without a copy to the `[kernel_h·kernel_w·in_channels,
//! filters]` matrix that multiplies the im2col matrix. The product
//! `[batch·out_h·out_w, filters]` is already the NHWC output, so no transpose is
//! needed on the way out.

use ndarray::{Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView4, ArrayViewMut2, CowArray, Ix4};

use crate::element::Element;
use crate::error::{Result, TensorError};

/// How a convolution or pooling window treats the border.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Padding {
    /// No padding: only windows that fit inside the input (`out = floor((in − k)/s) + 1`).
    Valid,
    /// Zero padding so that `out = ceil(in / s)`; the total padding
    /// `max((out − 1)·s + k − in, 0)` is split with the extra row/column at the
    /// bottom/right (TensorFlow's rule).
    Same,
    /// Explicit zero padding on each side.
    Explicit {
        /// Rows added above.
        top: usize,
        /// Rows added below.
        bottom: usize,
        /// Columns added on the left.
        left: usize,
        /// Columns added on the right.
        right: usize,
    },
}

/// Output length of a sliding window along one axis:
/// `floor((input + pad_total − kernel) / stride) + 1`.
///
/// # Errors
/// [`TensorError::InvalidArgument`] when `stride` or `kernel` is 0 or the kernel is
/// larger than the padded input.
pub fn conv_output_size(input: usize, kernel: usize, stride: usize, pad_total: usize) -> Result<usize> {
    if stride == 0 || kernel == 0 {
        return Err(TensorError::InvalidArgument {
            op: "conv2d",
            message: format!("kernel size {kernel} and stride {stride} must be positive"),
        });
    }
    let padded = input
        .checked_add(pad_total)
        .ok_or_else(|| TensorError::InvalidArgument { op: "conv2d", message: "padding overflows usize".into() })?;
    if kernel > padded {
        return Err(TensorError::InvalidArgument {
            op: "conv2d",
            message: format!("kernel size {kernel} is larger than the padded input size {padded}"),
        });
    }
    Ok((padded - kernel) / stride + 1)
}

/// The geometry of one 2-d convolution or pooling window over NHWC input: every
/// size the kernels below need, checked once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels.
    pub channels: usize,
    /// Window height.
    pub kernel_h: usize,
    /// Window width.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Zero rows above.
    pub pad_top: usize,
    /// Zero columns on the left.
    pub pad_left: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl Conv2dGeometry {
    /// Resolves `padding` and computes the output size for an `in_h × in_w × channels`
    /// input, a `kernel` = (height, width) window and `stride` = (vertical, horizontal).
    ///
    /// # Errors
    /// As [`conv_output_size`].
    pub fn new(
        (in_h, in_w, channels): (usize, usize, usize),
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
    ) -> Result<Self> {
        let (kernel_h, kernel_w) = kernel;
        let (stride_h, stride_w) = stride;
        if stride_h == 0 || stride_w == 0 {
            return Err(TensorError::InvalidArgument {
                op: "conv2d",
                message: format!("stride ({stride_h}, {stride_w}) must be positive"),
            });
        }
        let same = |input: usize, k: usize, s: usize| {
            let out = input.div_ceil(s);
            let total = ((out.max(1) - 1) * s + k).saturating_sub(input);
            (total / 2, total - total / 2)
        };
        let (top, bottom, left, right) = match padding {
            Padding::Valid => (0, 0, 0, 0),
            Padding::Same => {
                let (t, b) = same(in_h, kernel_h, stride_h);
                let (l, r) = same(in_w, kernel_w, stride_w);
                (t, b, l, r)
            }
            Padding::Explicit { top, bottom, left, right } => (top, bottom, left, right),
        };
        let out_h = conv_output_size(in_h, kernel_h, stride_h, top + bottom)?;
        let out_w = conv_output_size(in_w, kernel_w, stride_w, left + right)?;
        Ok(Conv2dGeometry {
            in_h,
            in_w,
            channels,
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            pad_top: top,
            pad_left: left,
            out_h,
            out_w,
        })
    }

    /// Columns of the im2col matrix: `kernel_h · kernel_w · channels`.
    pub fn patch_len(&self) -> usize {
        self.kernel_h * self.kernel_w * self.channels
    }

    /// The input row/column read by output position `o` at kernel offset `k`, or
    /// `None` when it falls in the zero padding.
    #[inline]
    pub fn source(&self, o: usize, k: usize, stride: usize, pad: usize, len: usize) -> Option<usize> {
        (o * stride + k).checked_sub(pad).filter(|&i| i < len)
    }

    pub(crate) fn check_input(&self, shape: &[usize]) -> Result<()> {
        if shape[1..] != [self.in_h, self.in_w, self.channels] {
            return Err(TensorError::ShapeMismatch {
                op: "im2col",
                lhs: vec![shape[0], self.in_h, self.in_w, self.channels],
                rhs: shape.to_vec(),
            });
        }
        Ok(())
    }
}

/// Unfolds every window of an NHWC batch into one row (in parallel over chunks of
/// images on nn's pool; a pure copy, so the same at any thread count).
///
/// # Shapes
/// `input: [batch, in_h, in_w, channels]` → `[batch·out_h·out_w, kernel_h·kernel_w·channels]`.
/// Row `(n·out_h + oh)·out_w + ow` holds window `(oh, ow)` of image `n`; its columns
/// run over `(kh, kw, c)` in row-major order, with zeros where the window covers padding.
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when `input` does not match the geometry.
pub fn im2col<T: Element>(input: ArrayView4<'_, T>, g: &Conv2dGeometry) -> Result<Array2<T>> {
    g.check_input(input.shape())?;
    let batch = input.shape()[0];
    let rows = crate::shape::checked_numel("im2col", &[batch, g.out_h, g.out_w])?;
    crate::shape::checked_numel("im2col", &[rows, g.patch_len()])?;
    let input = input.as_standard_layout();
    let src = input.as_slice().expect("standard layout");
    let (img, per_img) = (g.in_h * g.in_w * g.channels, g.out_h * g.out_w * g.patch_len());
    let per_chunk = g.images_per_chunk();
    let cols = crate::vec_by_chunks(
        rows * g.patch_len(),
        per_chunk * per_img,
        T::zero(),
        || (),
        |_, i, chunk| {
            for (j, cols) in chunk.chunks_exact_mut(per_img.max(1)).enumerate() {
                im2col_image(&src[(i * per_chunk + j) * img..][..img], g, cols);
            }
        },
    );
    Ok(Array2::from_shape_vec((rows, g.patch_len()), cols).expect("rows·patch elements"))
}

/// [`im2col`] into a caller-owned buffer of `batch·out_h·out_w·patch_len` elements
/// (every element is written, so the buffer may be reused without clearing).
///
/// # Panics
/// If `out` has the wrong length or `input` does not match the geometry (checked
/// by [`im2col`]; this form is for callers that checked once and reuse buffers).
pub fn im2col_into<T: Element>(input: ArrayView4<'_, T>, g: &Conv2dGeometry, out: &mut [T]) {
    let batch = input.shape()[0];
    assert_eq!(input.shape()[1..], [g.in_h, g.in_w, g.channels], "im2col_into: input shape");
    assert_eq!(out.len(), batch * g.out_h * g.out_w * g.patch_len(), "im2col_into: buffer length");
    let input = input.as_standard_layout();
    let src = input.as_slice().expect("standard layout");
    let (img, per_img) = (g.in_h * g.in_w * g.channels, g.out_h * g.out_w * g.patch_len());
    let per_chunk = g.images_per_chunk();
    crate::for_each_chunk_mut(
        out,
        per_chunk * per_img,
        || (),
        |_, i, chunk| {
            for (j, cols) in chunk.chunks_exact_mut(per_img.max(1)).enumerate() {
                im2col_image(&src[(i * per_chunk + j) * img..][..img], g, cols);
            }
        },
    );
}

/// The adjoint of [`im2col`]: adds every row's values back onto the input positions
/// they were read from (positions covered by several windows receive the sum; padding
/// is dropped). Used for the input gradient of a convolution.
///
/// # Shapes
/// `cols: [batch·out_h·out_w, kernel_h·kernel_w·channels]` → `[batch, in_h, in_w, channels]`.
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when `cols` does not match the geometry and `batch`.
pub fn col2im<T: Element>(cols: ArrayView2<'_, T>, g: &Conv2dGeometry, batch: usize) -> Result<Array4<T>> {
    let want = [batch * g.out_h * g.out_w, g.patch_len()];
    if cols.shape() != want {
        return Err(TensorError::ShapeMismatch { op: "col2im", lhs: want.to_vec(), rhs: cols.shape().to_vec() });
    }
    let len = crate::shape::checked_numel("col2im", &[batch, g.in_h, g.in_w, g.channels])?;
    let cols = cols.as_standard_layout();
    let cols = cols.as_slice().expect("standard layout");
    let (img, per_img) = (g.in_h * g.in_w * g.channels, g.out_h * g.out_w * g.patch_len());
    let per_chunk = g.images_per_chunk();
    let out = crate::vec_by_chunks(
        len,
        per_chunk * img,
        T::zero(),
        || (),
        |_, i, chunk| {
            for (j, x) in chunk.chunks_exact_mut(img.max(1)).enumerate() {
                col2im_image_add(&cols[(i * per_chunk + j) * per_img..][..per_img], g, x);
            }
        },
    );
    Ok(Array4::from_shape_vec((batch, g.in_h, g.in_w, g.channels), out).expect("len elements"))
}

/// [`col2im`] adding into a caller-owned NHWC buffer (not cleared first).
///
/// # Panics
/// If the buffer lengths do not match the geometry.
pub fn col2im_add<T: Element>(cols: &[T], g: &Conv2dGeometry, out: &mut [T]) {
    let (img, cols_per_img) = (g.in_h * g.in_w * g.channels, g.out_h * g.out_w * g.patch_len());
    assert_eq!(cols.len() % cols_per_img.max(1), 0, "col2im: cols length");
    let batch = cols.len() / cols_per_img.max(1);
    assert_eq!(out.len(), batch * img, "col2im: buffer lengths");
    let per_chunk = g.images_per_chunk();
    crate::for_each_chunk_mut(
        out,
        per_chunk * img,
        || (),
        |_, i, chunk| {
            for (j, x) in chunk.chunks_exact_mut(img.max(1)).enumerate() {
                col2im_image_add(&cols[(i * per_chunk + j) * cols_per_img..][..cols_per_img], g, x);
            }
        },
    );
}

/// Copies a short run. Lengths 1–8 (one kernel row of a small kernel over few
/// channels: 3 for a 3×3 kernel on a grey image) become fixed-size moves instead of
/// calls to `memcpy`, which dominate at that length.
#[inline(always)]
fn copy_run<T: Copy>(dst: &mut [T], src: &[T]) {
    macro_rules! fixed {
        ($($n:literal)*) => {
            match dst.len() {
                $($n => {
                    let d: &mut [T; $n] = dst.try_into().expect("length matched");
                    let s: &[T; $n] = src.try_into().expect("runs of equal length");
                    *d = *s;
                })*
                _ => dst.copy_from_slice(src),
            }
        };
    }
    fixed!(1 2 3 4 5 6 7 8)
}

/// im2col of one image `x` (`in_h·in_w·channels` elements) into `cols` (`out_h·out_w`
/// rows of `patch_len`). A window row that lies inside the image horizontally is one
/// contiguous run of `kernel_w·channels` input elements (NHWC), copied at once; only
/// windows that overlap the left/right padding go column by column.
fn im2col_image<T: Element>(x: &[T], g: &Conv2dGeometry, cols: &mut [T]) {
    let (c, patch) = (g.channels, g.patch_len());
    if patch == 0 {
        return;
    }
    let run = g.kernel_w * c;
    let mut rows = cols.chunks_exact_mut(patch);
    for oh in 0..g.out_h {
        for ow in 0..g.out_w {
            let dst = rows.next().expect("out_h·out_w rows");
            let start = ow * g.stride_w;
            let inside = start >= g.pad_left && start - g.pad_left + g.kernel_w <= g.in_w;
            for (kh, d) in dst.chunks_exact_mut(run).enumerate() {
                match g.source(oh, kh, g.stride_h, g.pad_top, g.in_h) {
                    None => d.fill(T::zero()),
                    Some(ih) if inside => {
                        let s = (ih * g.in_w + start - g.pad_left) * c;
                        copy_run(d, &x[s..s + run]);
                    }
                    Some(ih) => {
                        for (kw, dc) in d.chunks_exact_mut(c).enumerate() {
                            match g.source(ow, kw, g.stride_w, g.pad_left, g.in_w) {
                                Some(iw) => {
                                    let s = (ih * g.in_w + iw) * c;
                                    copy_run(dc, &x[s..s + c]);
                                }
                                None => dc.fill(T::zero()),
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Inputs with at least this many channels get the row-major im2col matrix: a patch
/// row then reads `kernel_w·channels` contiguous elements per kernel row, where the
/// transposed layout gathers every element with a stride of `channels` (measured on
/// the second convolution of a two-layer MNIST net, 32 channels: im2col was 22% of a
/// training epoch).
const ROW_MAJOR_CHANNELS: usize = 8;

impl Conv2dGeometry {
    /// Whether the im2col matrix (and the input gradient's) is built row by row
    /// (`[rows, patch]`) rather than patch-major: for inputs of
    /// [`ROW_MAJOR_CHANNELS`] or more channels. It depends on the shape only.
    fn row_major(&self) -> bool {
        self.channels >= ROW_MAJOR_CHANNELS
    }
}

/// im2col of one image `x` in transposed (patch-major) layout: element `(p, r)` of
/// the `[patch_len, ld]` matrix `cols_t` is window `r − col0`'s element `p`, for
/// the `out_h·out_w` columns starting at `col0`. Row `p = (kh, kw, c)` of one output
/// row `oh` reads input row `oh·sh + kh − pad_top` at columns `ow·sw + kw − pad_left`:
/// for stride 1 on one channel a contiguous run of `out_w` elements, one copy.
fn im2col_t_image<T: Element>(x: &[T], g: &Conv2dGeometry, cols_t: &mut [T], ld: usize, col0: usize) {
    let c = g.channels;
    let per_img = g.out_h * g.out_w;
    for kh in 0..g.kernel_h {
        for kw in 0..g.kernel_w {
            let (lo, hi) = g.inside_columns(kw);
            for ci in 0..c {
                let p = (kh * g.kernel_w + kw) * c + ci;
                let row = &mut cols_t[p * ld + col0..][..per_img];
                for (oh, seg) in row.chunks_exact_mut(g.out_w).enumerate() {
                    let Some(ih) = g.source(oh, kh, g.stride_h, g.pad_top, g.in_h) else {
                        seg.fill(T::zero());
                        continue;
                    };
                    seg[..lo].fill(T::zero());
                    seg[hi..].fill(T::zero());
                    if lo == hi {
                        continue; // this kernel column reads only padding
                    }
                    let first = (ih * g.in_w + lo * g.stride_w + kw - g.pad_left) * c + ci;
                    let step = g.stride_w * c;
                    if step == 1 {
                        seg[lo..hi].copy_from_slice(&x[first..first + (hi - lo)]);
                    } else {
                        for (d, &v) in seg[lo..hi].iter_mut().zip(x[first..].iter().step_by(step)) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col_t_image`]: adds the `out_h·out_w` columns starting at
/// `col0` of the patch-major `[patch_len, ld]` matrix `cols_t` back onto one image `x`.
fn col2im_t_image_add<T: Element>(cols_t: &[T], g: &Conv2dGeometry, ld: usize, col0: usize, x: &mut [T]) {
    let c = g.channels;
    let per_img = g.out_h * g.out_w;
    for kh in 0..g.kernel_h {
        for kw in 0..g.kernel_w {
            let (lo, hi) = g.inside_columns(kw);
            for ci in 0..c {
                let p = (kh * g.kernel_w + kw) * c + ci;
                let row = &cols_t[p * ld + col0..][..per_img];
                for (oh, seg) in row.chunks_exact(g.out_w).enumerate() {
                    let Some(ih) = g.source(oh, kh, g.stride_h, g.pad_top, g.in_h) else { continue };
                    if lo == hi {
                        continue; // this kernel column reads only padding
                    }
                    let first = (ih * g.in_w + lo * g.stride_w + kw - g.pad_left) * c + ci;
                    let step = g.stride_w * c;
                    if step == 1 {
                        x[first..first + (hi - lo)].iter_mut().zip(&seg[lo..hi]).for_each(|(d, &v)| *d += v);
                    } else {
                        for (d, &v) in x[first..].iter_mut().step_by(step).zip(&seg[lo..hi]) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col_image`]: adds `cols` back onto one image `x`.
fn col2im_image_add<T: Element>(cols: &[T], g: &Conv2dGeometry, x: &mut [T]) {
    let (c, patch) = (g.channels, g.patch_len());
    if patch == 0 {
        return;
    }
    let run = g.kernel_w * c;
    let add = |dst: &mut [T], src: &[T]| dst.iter_mut().zip(src).for_each(|(d, &v)| *d += v);
    let mut rows = cols.chunks_exact(patch);
    for oh in 0..g.out_h {
        for ow in 0..g.out_w {
            let row = rows.next().expect("out_h·out_w rows");
            let start = ow * g.stride_w;
            let inside = start >= g.pad_left && start - g.pad_left + g.kernel_w <= g.in_w;
            for (kh, r) in row.chunks_exact(run).enumerate() {
                match g.source(oh, kh, g.stride_h, g.pad_top, g.in_h) {
                    None => {}
                    Some(ih) if inside => {
                        let s = (ih * g.in_w + start - g.pad_left) * c;
                        add(&mut x[s..s + run], r);
                    }
                    Some(ih) => {
                        for (kw, rc) in r.chunks_exact(c).enumerate() {
                            if let Some(iw) = g.source(ow, kw, g.stride_w, g.pad_left, g.in_w) {
                                let s = (ih * g.in_w + iw) * c;
                                add(&mut x[s..s + c], rc);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// GEMM rows handled by one work chunk of the convolution kernels below: a chunk is
/// `max(1, CHUNK_ROWS / (out_h·out_w))` whole images, so its im2col buffer
/// (`CHUNK_ROWS · patch_len` elements) stays in the core's L2 cache next to the GEMM
/// that consumes it. The split depends on the geometry only, never on the thread
/// count, which keeps results bit-identical for any thread count.
const CHUNK_ROWS: usize = 4096;

/// Elements of a work chunk's im2col buffer at most (256 KiB of `f32`): with many
/// input channels a patch is long, and [`CHUNK_ROWS`] rows of it would spill the
/// core's L2 cache (measured on the two-convolution net, `Conv2D 64` over 32 channels:
/// 4.6 MB per chunk).
const CHUNK_ELEMENTS: usize = 1 << 16;

impl Conv2dGeometry {
    /// Images per work chunk: at most [`CHUNK_ROWS`] GEMM rows and
    /// [`CHUNK_ELEMENTS`] im2col elements, and at least one image.
    pub(crate) fn images_per_chunk(&self) -> usize {
        let rows = (self.out_h * self.out_w).max(1);
        (CHUNK_ROWS / rows).min(CHUNK_ELEMENTS / (rows * self.patch_len()).max(1)).max(1)
    }

    /// Whether the window is a single pixel read in place (1×1 kernel, stride 1, no
    /// padding): then the im2col matrix is the input itself and is not built.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kernel_h == 1
            && self.kernel_w == 1
            && self.stride_h == 1
            && self.stride_w == 1
            && self.pad_top == 0
            && self.pad_left == 0
            && self.out_h == self.in_h
            && self.out_w == self.in_w
    }

    /// The output columns `lo..hi` whose input column `ow·sw + kw − pad_left`, at
    /// kernel column `kw`, lies inside the image (the others read padding).
    fn inside_columns(&self, kw: usize) -> (usize, usize) {
        let lo = self.pad_left.saturating_sub(kw).div_ceil(self.stride_w).min(self.out_w);
        let hi =
            if self.in_w + self.pad_left > kw { (self.in_w + self.pad_left - kw - 1) / self.stride_w + 1 } else { 0 };
        (lo, hi.clamp(lo, self.out_w))
    }

    /// Checks `kernel: [kernel_h, kernel_w, channels, filters]`; returns `filters`.
    pub(crate) fn check_kernel(&self, op: &'static str, kernel: &[usize]) -> Result<usize> {
        if kernel.len() != 4 || kernel[..3] != [self.kernel_h, self.kernel_w, self.channels] {
            return Err(TensorError::ShapeMismatch {
                op,
                lhs: vec![self.kernel_h, self.kernel_w, self.channels, kernel.get(3).copied().unwrap_or(0)],
                rhs: kernel.to_vec(),
            });
        }
        Ok(kernel[3])
    }

    /// The im2col matrix of `n` consecutive images `x` (`n·in_h·in_w·channels`
    /// elements), as a `[rows, patch_len]` view: `x` itself for a pointwise window,
    /// otherwise built in `scratch` (grown as needed, never cleared: every element is
    /// written). With [`Conv2dGeometry::row_major`] (inputs of many channels) it is
    /// built row by row ([`im2col_image`]: runs of `kernel_w·channels` contiguous
    /// input elements, one copy each); else in transposed, patch-major layout (see
    /// [`im2col_t_image`]), which is
    /// both cheaper to build (contiguous runs of `out_w` for stride 1 on one channel)
    /// and faster for the GEMMs at these skinny shapes (measured: the seed CNN's
    /// convolution forward plus kernel gradient 2.0 ms instead of 3.2 ms).
    pub(crate) fn cols_of<'a, T: Element>(&self, x: &'a [T], n: usize, scratch: &'a mut Vec<T>) -> ArrayView2<'a, T> {
        let (rows, patch) = (n * self.out_h * self.out_w, self.patch_len());
        if self.is_pointwise() {
            return ArrayView2::from_shape((rows, patch), x).expect("pointwise: the input is the im2col matrix");
        }
        if scratch.len() < rows * patch {
            scratch.resize(rows * patch, T::zero());
        }
        if self.row_major() {
            let (img, per_img) = (self.in_h * self.in_w * self.channels, self.out_h * self.out_w * patch);
            for j in 0..n {
                im2col_image(&x[j * img..][..img], self, &mut scratch[j * per_img..][..per_img]);
            }
            return ArrayView2::from_shape((rows, patch), &scratch[..rows * patch]).expect("rows·patch");
        }
        let cols_t = &mut scratch[..rows * patch];
        let (img, per_img) = (self.in_h * self.in_w * self.channels, self.out_h * self.out_w);
        for j in 0..n {
            im2col_t_image(&x[j * img..][..img], self, cols_t, rows, j * per_img);
        }
        ArrayView2::from_shape((patch, rows), &scratch[..rows * patch]).expect("patch·rows").reversed_axes()
    }
}

/// The checked operands of a forward convolution (see
/// [`Conv2dGeometry::forward_operands`]).
pub(crate) struct ForwardOperands<'a, T: Element> {
    /// The input batch in standard layout (borrowed when it already is).
    pub x: CowArray<'a, T, Ix4>,
    /// The kernel in standard layout.
    pub k: CowArray<'a, T, Ix4>,
    /// The bias, copied (one row of `filters` values).
    pub bias: Option<Vec<T>>,
    /// The number of filters.
    pub filters: usize,
    patch: usize,
}

impl<T: Element> ForwardOperands<'_, T> {
    /// The kernel as the `[patch_len, filters]` matrix that multiplies im2col rows.
    pub(crate) fn kmat(&self) -> ArrayView2<'_, T> {
        self.k.view().into_shape_with_order((self.patch, self.filters)).expect("standard layout")
    }
}

impl Conv2dGeometry {
    /// Checks `input`, `kernel` and `bias` against this geometry and the per-chunk
    /// work sizes, and puts them in the layout the chunk kernels read.
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] for operands that do not match;
    /// [`TensorError::Overflow`] when a chunk's buffers would overflow `usize`.
    pub(crate) fn forward_operands<'a, T: Element>(
        &self,
        op: &'static str,
        input: ArrayView4<'a, T>,
        kernel: ArrayView4<'a, T>,
        bias: Option<ArrayView1<'_, T>>,
    ) -> Result<ForwardOperands<'a, T>> {
        self.check_input(input.shape())?;
        let filters = self.check_kernel(op, kernel.shape())?;
        if let Some(b) = &bias {
            if b.len() != filters {
                return Err(TensorError::ShapeMismatch { op, lhs: vec![filters], rhs: b.shape().to_vec() });
            }
        }
        let patch = self.patch_len();
        crate::shape::checked_numel(op, &[self.images_per_chunk(), self.out_h * self.out_w, patch.max(filters)])?;
        let standard = |v: ArrayView4<'a, T>| -> CowArray<'a, T, Ix4> {
            if v.is_standard_layout() {
                v.into()
            } else {
                v.as_standard_layout().into_owned().into()
            }
        };
        Ok(ForwardOperands { x: standard(input), k: standard(kernel), bias: bias.map(|b| b.to_vec()), filters, patch })
    }
}

impl Conv2dGeometry {
    /// The convolution of `n` consecutive images `x` into `out` (`n·out_h·out_w`
    /// rows of `filters`): `out = bias + im2col(x)·kmat`, one single-threaded GEMM.
    /// `cols` is the im2col scratch buffer (see [`Conv2dGeometry::cols_of`]).
    pub(crate) fn forward_chunk<T: Element>(
        &self,
        x: &[T],
        n: usize,
        kmat: ArrayView2<'_, T>,
        bias: Option<&[T]>,
        cols: &mut Vec<T>,
        out: &mut [T],
    ) {
        let filters = kmat.ncols();
        let cols = self.cols_of(x, n, cols);
        let beta = match bias {
            Some(b) => {
                out.chunks_exact_mut(filters).for_each(|row| row.copy_from_slice(b));
                T::one()
            }
            None => T::zero(),
        };
        let mut c = ArrayViewMut2::from_shape((n * self.out_h * self.out_w, filters), out).expect("whole images");
        crate::gemm::gemm_serial(T::one(), cols, kmat, beta, &mut c).expect("shapes agree");
    }

    /// The kernel and bias gradients of `n` consecutive images `x` with output
    /// gradient `grad` (`n·out_h·out_w` rows of `filters`), written to `part`
    /// (`patch_len·filters` kernel entries, then `filters` bias entries):
    /// `im2col(x)ᵀ·G` and the row sums of `G` in row order.
    pub(crate) fn filter_grad_chunk<T: Element>(
        &self,
        x: &[T],
        n: usize,
        grad: &[T],
        cols: &mut Vec<T>,
        part: &mut [T],
    ) {
        let (patch, rows) = (self.patch_len(), n * self.out_h * self.out_w);
        let filters = grad.len() / rows.max(1);
        let (dk, db) = part.split_at_mut(patch * filters);
        let gmat = ArrayView2::from_shape((rows, filters), grad).expect("whole images");
        let cols = self.cols_of(x, n, cols);
        let mut dk = ArrayViewMut2::from_shape((patch, filters), dk).expect("patch·filters");
        crate::gemm::gemm_serial(T::one(), cols.t(), gmat, T::zero(), &mut dk).expect("shapes agree");
        // Row by row, so each bias entry is summed in row order at any vector width.
        crate::simd::vectorized(
            #[inline(always)]
            || {
                for row in grad.chunks_exact(filters.max(1)) {
                    db.iter_mut().zip(row).for_each(|(d, &v)| *d += v);
                }
            },
        );
    }

    /// Adds the input gradient of `n` consecutive images into `dx` (their
    /// `n·in_h·in_w·channels` elements): `dx += col2im(G·kmatᵀ)`, with `grad` = G
    /// (`n·out_h·out_w` rows of `filters`); `dcols` is scratch.
    pub(crate) fn input_grad_chunk<T: Element>(
        &self,
        grad: &[T],
        n: usize,
        kmat: ArrayView2<'_, T>,
        dcols: &mut Vec<T>,
        dx: &mut [T],
    ) {
        let (patch, rows_per_img) = (self.patch_len(), self.out_h * self.out_w);
        let (rows, img_in) = (n * rows_per_img, self.in_h * self.in_w * self.channels);
        let gmat = ArrayView2::from_shape((rows, kmat.ncols()), grad).expect("whole images");
        if self.is_pointwise() {
            let mut dx = ArrayViewMut2::from_shape((rows, patch), dx).expect("pointwise: input rows");
            crate::gemm::gemm_serial(T::one(), gmat, kmat.t(), T::one(), &mut dx).expect("shapes agree");
            return;
        }
        if dcols.len() < rows * patch {
            dcols.resize(rows * patch, T::zero());
        }
        let buf = &mut dcols[..rows * patch];
        if self.row_major() {
            // G·Kᵀ row by row, like the forward's im2col matrix.
            let mut dc = ArrayViewMut2::from_shape((rows, patch), &mut *buf).expect("rows·patch");
            crate::gemm::gemm_serial(T::one(), gmat, kmat.t(), T::zero(), &mut dc).expect("shapes agree");
            let per_img = rows_per_img * patch;
            for j in 0..n {
                col2im_image_add(&buf[j * per_img..][..per_img], self, &mut dx[j * img_in..][..img_in]);
            }
            return;
        }
        // (G·Kᵀ)ᵀ = K·Gᵀ, built patch-major like the forward's im2col matrix.
        let mut dc_t = ArrayViewMut2::from_shape((patch, rows), &mut *buf).expect("patch·rows");
        crate::gemm::gemm_serial(T::one(), kmat, gmat.t(), T::zero(), &mut dc_t).expect("shapes agree");
        for j in 0..n {
            col2im_t_image_add(buf, self, rows, j * rows_per_img, &mut dx[j * img_in..][..img_in]);
        }
    }
}

/// 2-d convolution (cross-correlation) of an NHWC batch with a bank of filters, plus
/// an optional bias: `out[n, oh, ow, f] = bias[f] + Σ_{kh, kw, c} x[n, oh·sh + kh −
/// pad_top, ow·sw + kw − pad_left, c] · kernel[kh, kw, c, f]`, zeros outside the image.
///
/// Computed as im2col + GEMM over chunks of whole images (see the module docs), in
/// parallel on nn's pool ([`crate::set_num_threads`]); each chunk runs a
/// single-threaded GEMM. Each output element is computed by exactly one chunk, so
/// the result does not depend on the thread count.
///
/// # Shapes
/// `input: [batch, in_h, in_w, channels]`, `kernel: [kernel_h, kernel_w, channels,
/// filters]` (Keras's layout), `bias: [filters]` → `[batch, out_h, out_w, filters]`.
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when `input`, `kernel` or `bias` do not match the
/// geometry; [`TensorError::Overflow`] when the output's size overflows `usize`.
pub fn conv2d_forward<T: Element>(
    input: ArrayView4<'_, T>,
    kernel: ArrayView4<'_, T>,
    bias: Option<ArrayView1<'_, T>>,
    g: &Conv2dGeometry,
) -> Result<Array4<T>> {
    conv2d_forward_map(input, kernel, bias, g, |v| v)
}

/// [`conv2d_forward`] followed by an element-wise `activation` applied to every
/// output, fused: each chunk of images is activated right after its GEMM, while it
/// is still in cache, so a fused Conv2D + relu layer costs no extra pass over the
/// output (`out = activation(bias + conv(x, kernel))`).
///
/// # Shapes and errors
/// As [`conv2d_forward`].
pub fn conv2d_forward_map<T: Element>(
    input: ArrayView4<'_, T>,
    kernel: ArrayView4<'_, T>,
    bias: Option<ArrayView1<'_, T>>,
    g: &Conv2dGeometry,
    activation: impl Fn(T) -> T + Send + Sync,
) -> Result<Array4<T>> {
    let op = "conv2d";
    let ops = g.forward_operands(op, input, kernel, bias)?;
    let (filters, batch) = (ops.filters, input.shape()[0]);
    let out_shape = (batch, g.out_h, g.out_w, filters);
    let len = crate::shape::checked_numel(op, &[batch, g.out_h, g.out_w, filters])?;
    let (xs, kmat, bias) = (ops.x.as_slice().expect("standard layout"), ops.kmat(), ops.bias.as_deref());
    let per_chunk = g.images_per_chunk();
    let (img_in, img_out) = (g.in_h * g.in_w * g.channels, g.out_h * g.out_w * filters);
    let out = crate::vec_by_chunks(len, per_chunk * img_out, T::zero(), Vec::new, |scratch, i, out_c| {
        let n = out_c.len() / img_out;
        g.forward_chunk(&xs[i * per_chunk * img_in..][..n * img_in], n, kmat, bias, scratch, out_c);
        crate::simd::vectorized(
            #[inline(always)]
            || out_c.iter_mut().for_each(|v| *v = activation(*v)),
        );
    });
    Ok(Array4::from_shape_vec(out_shape, out).expect("len elements"))
}

/// Gradients of [`conv2d_forward`] with respect to the kernel and the bias:
/// `∂/∂kernel = im2col(x)ᵀ · G` and `∂/∂bias = Σ_rows G`, with `G` = `grad_out` as a
/// `[batch·out_h·out_w, filters]` matrix.
///
/// Each chunk of images computes its partial sums (im2col rebuilt per chunk in a
/// cache-sized buffer, so the full im2col matrix is never stored); the partials are
/// added in chunk order, so the result is bit-identical for any thread count.
///
/// # Shapes
/// `input: [batch, in_h, in_w, channels]`, `grad_out: [batch, out_h, out_w, filters]`
/// → (`[kernel_h, kernel_w, channels, filters]`, `[filters]`).
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when `input` or `grad_out` do not match the geometry.
pub fn conv2d_backward_filter<T: Element>(
    input: ArrayView4<'_, T>,
    grad_out: ArrayView4<'_, T>,
    g: &Conv2dGeometry,
) -> Result<(Array4<T>, Array1<T>)> {
    let op = "conv2d (kernel gradient)";
    g.check_input(input.shape())?;
    let batch = input.shape()[0];
    let filters = check_grad_out(op, grad_out.shape(), g, batch)?;
    let (patch, rows_per_img) = (g.patch_len(), g.out_h * g.out_w);
    let kernel_shape = (g.kernel_h, g.kernel_w, g.channels, filters);
    let per_chunk = g.images_per_chunk();
    let part_len = patch * filters + filters;
    let chunks = batch.div_ceil(per_chunk);
    crate::shape::checked_numel(op, &[chunks.max(1), part_len])?;
    crate::shape::checked_numel(op, &[per_chunk, rows_per_img, patch.max(filters)])?;
    let mut partials = crate::zeros_par::<T>(chunks * part_len);
    let x = input.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let go = grad_out.as_standard_layout();
    let gs = go.as_slice().expect("standard layout");
    let (img_in, img_out) = (g.in_h * g.in_w * g.channels, rows_per_img * filters);
    crate::for_each_chunk_mut(&mut partials, part_len, Vec::new, |scratch, i, part| {
        let first = i * per_chunk;
        let n = per_chunk.min(batch - first);
        g.filter_grad_chunk(
            &xs[first * img_in..][..n * img_in],
            n,
            &gs[first * img_out..][..n * img_out],
            scratch,
            part,
        );
    });
    let mut total = crate::sum_parts(&partials, part_len);
    let db = Array1::from(total.split_off(patch * filters));
    let dk = Array4::from_shape_vec(kernel_shape, total).expect("patch·filters");
    Ok((dk, db))
}

/// Gradient of [`conv2d_forward`] with respect to its input, added into `input_grad`:
/// `input_grad += col2im(G · kernelᵀ)` (col2im is im2col's adjoint: pixels read by
/// several windows get the sum; see [`col2im`]). Parallel over chunks of whole images,
/// each writing only its own images, so the result does not depend on the thread count.
///
/// # Shapes
/// `grad_out: [batch, out_h, out_w, filters]`, `kernel: [kernel_h, kernel_w, channels,
/// filters]`, `input_grad`: `batch·in_h·in_w·channels` elements, NHWC row-major.
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when the shapes or `input_grad`'s length do not match.
pub fn conv2d_backward_input<T: Element>(
    grad_out: ArrayView4<'_, T>,
    kernel: ArrayView4<'_, T>,
    g: &Conv2dGeometry,
    input_grad: &mut [T],
) -> Result<()> {
    let op = "conv2d (input gradient)";
    let batch = grad_out.shape()[0];
    let filters = g.check_kernel(op, kernel.shape())?;
    if check_grad_out(op, grad_out.shape(), g, batch)? != filters {
        return Err(TensorError::ShapeMismatch { op, lhs: kernel.shape().to_vec(), rhs: grad_out.shape().to_vec() });
    }
    let img_in = g.in_h * g.in_w * g.channels;
    if input_grad.len() != batch * img_in {
        return Err(TensorError::ShapeMismatch {
            op,
            lhs: vec![batch, g.in_h, g.in_w, g.channels],
            rhs: vec![input_grad.len()],
        });
    }
    if img_in == 0 {
        return Ok(());
    }
    let (patch, rows_per_img) = (g.patch_len(), g.out_h * g.out_w);
    let per_chunk = g.images_per_chunk();
    crate::shape::checked_numel(op, &[per_chunk, rows_per_img, patch.max(filters)])?;
    let go = grad_out.as_standard_layout();
    let gs = go.as_slice().expect("standard layout");
    let k = kernel.as_standard_layout();
    let kmat = k.view().into_shape_with_order((patch, filters)).expect("standard layout");
    let img_out = rows_per_img * filters;
    crate::for_each_chunk_mut(input_grad, per_chunk * img_in, Vec::new, |dcols: &mut Vec<T>, i, dx| {
        let n = dx.len() / img_in;
        g.input_grad_chunk(&gs[i * per_chunk * img_out..][..n * img_out], n, kmat, dcols, dx);
    });
    Ok(())
}

/// Checks `grad_out: [batch, out_h, out_w, filters]`; returns `filters`.
fn check_grad_out(op: &'static str, shape: &[usize], g: &Conv2dGeometry, batch: usize) -> Result<usize> {
    if shape.len() != 4 || shape[..3] != [batch, g.out_h, g.out_w] {
        return Err(TensorError::ShapeMismatch {
            op,
            lhs: vec![batch, g.out_h, g.out_w, shape.get(3).copied().unwrap_or(0)],
            rhs: shape.to_vec(),
        });
    }
    Ok(shape[3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, Array4};
    use proptest::prelude::*;

    #[test]
    fn output_size_formula() {
        assert_eq!(conv_output_size(28, 3, 1, 0).unwrap(), 26);
        assert_eq!(conv_output_size(28, 3, 2, 2).unwrap(), 14);
        assert_eq!(conv_output_size(5, 2, 2, 0).unwrap(), 2);
        assert!(conv_output_size(2, 3, 1, 0).is_err());
        assert!(conv_output_size(2, 1, 0, 0).is_err());
    }

    #[test]
    fn same_padding_keeps_size_for_odd_and_even_kernels() {
        for k in 1..=4 {
            let g = Conv2dGeometry::new((7, 6, 1), (k, k), (1, 1), Padding::Same).unwrap();
            assert_eq!((g.out_h, g.out_w), (7, 6), "kernel {k}");
        }
        // Even kernel 2 over 6: total padding 1, put at the bottom/right (TF rule).
        let g = Conv2dGeometry::new((6, 6, 1), (2, 2), (1, 1), Padding::Same).unwrap();
        assert_eq!((g.pad_top, g.pad_left), (0, 0));
        let g = Conv2dGeometry::new((7, 7, 1), (3, 3), (2, 2), Padding::Same).unwrap();
        assert_eq!((g.out_h, g.pad_top), (4, 1));
    }

    /// Direct convolution with six nested loops (batch, out row, out col, filter,
    /// kernel row, kernel col, channel): the reference for im2col + GEMM.
    fn direct_conv(x: &Array4<f64>, k: &Array4<f64>, g: &Conv2dGeometry) -> Array4<f64> {
        let (n, f) = (x.shape()[0], k.shape()[3]);
        let mut out = Array4::zeros((n, g.out_h, g.out_w, f));
        for b in 0..n {
            for oh in 0..g.out_h {
                for ow in 0..g.out_w {
                    for fi in 0..f {
                        let mut acc = 0.0;
                        for kh in 0..g.kernel_h {
                            for kw in 0..g.kernel_w {
                                for c in 0..g.channels {
                                    let ih = (oh * g.stride_h + kh) as isize - g.pad_top as isize;
                                    let iw = (ow * g.stride_w + kw) as isize - g.pad_left as isize;
                                    if ih >= 0 && iw >= 0 && (ih as usize) < g.in_h && (iw as usize) < g.in_w {
                                        acc += x[[b, ih as usize, iw as usize, c]] * k[[kh, kw, c, fi]];
                                    }
                                }
                            }
                        }
                        out[[b, oh, ow, fi]] = acc;
                    }
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// im2col followed by GEMM equals the direct convolution; col2im is im2col's
        /// adjoint: <im2col(x), y> = <x, col2im(y)>.
        #[test]
        fn im2col_gemm_matches_direct_convolution(
            n in 1usize..3, h in 3usize..8, w in 3usize..8, c in 1usize..4, f in 1usize..4,
            kh in 1usize..4, kw in 1usize..4, s in 1usize..3, pad in 0usize..2, same in any::<bool>(), seed in 0u64..100,
        ) {
            let padding = if same { Padding::Same } else { Padding::Explicit { top: pad, bottom: pad, left: pad, right: pad } };
            let g = Conv2dGeometry::new((h, w, c), (kh, kw), (s, s), padding).unwrap();
            let x = Array::from_shape_fn((n, h, w, c), |(a, b, d, e)| ((a * 31 + b * 7 + d * 3 + e + seed as usize) % 11) as f64 - 5.0);
            let k = Array::from_shape_fn((kh, kw, c, f), |(a, b, d, e)| ((a * 5 + b * 3 + d * 2 + e * 7) % 9) as f64 * 0.25 - 1.0);
            let cols = im2col(x.view(), &g).unwrap();
            let kmat = k.view().into_shape_with_order((kh * kw * c, f)).unwrap();
            let mut out = ndarray::Array2::<f64>::zeros((cols.nrows(), f));
            crate::gemm::gemm(1.0, cols.view(), kmat, 0.0, &mut out.view_mut()).unwrap();
            let out = out.into_shape_with_order((n, g.out_h, g.out_w, f)).unwrap();
            let want = direct_conv(&x, &k, &g);
            for (a, b) in out.iter().zip(want.iter()) {
                prop_assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{} vs {}", a, b);
            }
            let y = Array::from_shape_fn(cols.raw_dim(), |(r, q)| ((r * 13 + q * 5) % 7) as f64 - 3.0);
            let lhs: f64 = cols.iter().zip(y.iter()).map(|(a, b)| a * b).sum();
            let back = col2im(y.view(), &g, n).unwrap();
            let rhs: f64 = x.iter().zip(back.iter()).map(|(a, b)| a * b).sum();
            prop_assert!((lhs - rhs).abs() <= 1e-9 * (1.0 + lhs.abs()));
        }
    }

    /// The convolution kernels against the definitions they implement: the forward
    /// pass against the direct convolution, the kernel and bias gradients against
    /// `im2col(x)ᵀ·G` and the column sums of `G` (by triple loops), the input
    /// gradient against `col2im(G·Kᵀ)`. Batches large enough for several work
    /// chunks (the last one partial), at every thread count with identical bits.
    fn check_conv_kernels(
        n: usize,
        (h, w, c): (usize, usize, usize),
        f: usize,
        k: (usize, usize),
        s: usize,
        padding: Padding,
    ) {
        let g = Conv2dGeometry::new((h, w, c), k, (s, s), padding).unwrap();
        let x = Array::from_shape_fn((n, h, w, c), |(a, b, d, e)| ((a * 31 + b * 7 + d * 3 + e) % 11) as f64 - 5.0);
        let kern = Array::from_shape_fn((k.0, k.1, c, f), |(a, b, d, e)| {
            ((a * 5 + b * 3 + d * 2 + e * 7) % 9) as f64 * 0.25 - 1.0
        });
        let bias = Array::from_shape_fn(f, |i| i as f64 * 0.5 - 1.0);
        let gout = Array::from_shape_fn((n, g.out_h, g.out_w, f), |(a, b, d, e)| {
            ((a * 3 + b * 5 + d * 7 + e) % 13) as f64 - 6.0
        });
        let mut want = direct_conv(&x, &kern, &g);
        want.axis_iter_mut(ndarray::Axis(3)).zip(bias.iter()).for_each(|(mut v, &b)| v += b);
        let cols = im2col(x.view(), &g).unwrap();
        let gmat = gout.view().into_shape_with_order((n * g.out_h * g.out_w, f)).unwrap();
        let patch = g.patch_len();
        let want_dk = ndarray::Array2::from_shape_fn((patch, f), |(p, j)| {
            (0..cols.nrows()).map(|r| cols[[r, p]] * gmat[[r, j]]).sum::<f64>()
        });
        let want_db = gmat.sum_axis(ndarray::Axis(0));
        let kmat = kern.view().into_shape_with_order((patch, f)).unwrap();
        let dcols = ndarray::Array2::from_shape_fn((cols.nrows(), patch), |(r, p)| {
            (0..f).map(|j| gmat[[r, j]] * kmat[[p, j]]).sum::<f64>()
        });
        let want_dx = col2im(dcols.view(), &g, n).unwrap();
        let run = || {
            let y = conv2d_forward(x.view(), kern.view(), Some(bias.view()), &g).unwrap();
            let (dk, db) = conv2d_backward_filter(x.view(), gout.view(), &g).unwrap();
            let mut dx = vec![1.0; x.len()];
            conv2d_backward_input(gout.view(), kern.view(), &g, &mut dx).unwrap();
            (y, dk, db, dx)
        };
        crate::set_num_threads(1);
        let one = run();
        crate::set_num_threads(2);
        let two = run();
        crate::set_num_threads(0);
        assert_eq!(one, two, "thread count changed the bits");
        let (y, dk, db, dx) = one;
        let relu = conv2d_forward_map(x.view(), kern.view(), Some(bias.view()), &g, |v| v.max(0.0)).unwrap();
        assert_eq!(relu, y.mapv(|v| v.max(0.0)), "fused activation");
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + b.abs());
        assert!(y.iter().zip(want.iter()).all(|(&a, &b)| close(a, b)), "forward");
        assert!(dk.iter().zip(want_dk.iter()).all(|(&a, &b)| close(a, b)), "kernel gradient");
        assert!(db.iter().zip(want_db.iter()).all(|(&a, &b)| close(a, b)), "bias gradient");
        // The input gradient was added onto ones.
        assert!(dx.iter().zip(want_dx.iter()).all(|(&a, &b)| close(a, b + 1.0)), "input gradient");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The chunked kernels against their definitions on random geometries,
        /// explicit padding included (up to a kernel wider than the image).
        #[test]
        fn conv_kernels_match_on_random_geometries(
            n in 1usize..4, h in 1usize..7, w in 1usize..7, f in 1usize..4,
            // Few channels (patch-major im2col) and many (row-major, from ROW_MAJOR_CHANNELS).
            c in prop_oneof![1usize..4, ROW_MAJOR_CHANNELS..ROW_MAJOR_CHANNELS + 3],
            kh in 1usize..4, kw in 1usize..4, s in 1usize..4, pads in proptest::array::uniform4(0usize..3),
        ) {
            let [top, bottom, left, right] = pads;
            prop_assume!(kh <= h + top + bottom && kw <= w + left + right);
            check_conv_kernels(n, (h, w, c), f, (kh, kw), s, Padding::Explicit { top, bottom, left, right });
        }
    }

    #[test]
    fn conv_kernels_match_their_definitions() {
        // The seed CNN's geometry, with a batch spanning 3 chunks (6 images each).
        check_conv_kernels(15, (28, 28, 1), 4, (3, 3), 1, Padding::Valid);
        check_conv_kernels(9, (12, 11, 3), 5, (3, 2), 2, Padding::Same);
        check_conv_kernels(3, (5, 6, 2), 3, (2, 3), 1, Padding::Explicit { top: 1, bottom: 0, left: 2, right: 1 });
        // A kernel column that only ever reads padding (kernel wider than the image).
        check_conv_kernels(2, (3, 1, 2), 2, (2, 5), 1, Padding::Explicit { top: 0, bottom: 0, left: 4, right: 0 });
        check_conv_kernels(2, (3, 2, 1), 2, (1, 2), 3, Padding::Explicit { top: 1, bottom: 1, left: 4, right: 1 });
        // Pointwise (1×1) windows read the input in place.
        check_conv_kernels(70, (8, 8, 3), 2, (1, 1), 1, Padding::Valid);
        check_conv_kernels(2, (4, 4, 3), 2, (1, 1), 2, Padding::Valid);
        // The second convolution of a two-layer MNIST net (row-major im2col), and
        // `same` padding at stride 2 with many channels.
        check_conv_kernels(9, (13, 13, 32), 3, (3, 3), 1, Padding::Valid);
        check_conv_kernels(3, (8, 7, 16), 2, (3, 3), 2, Padding::Same);
        // Wrong shapes are errors, not panics.
        let g = Conv2dGeometry::new((5, 5, 2), (3, 3), (1, 1), Padding::Valid).unwrap();
        let x = Array4::<f64>::zeros((1, 5, 5, 2));
        assert!(conv2d_forward(x.view(), Array4::zeros((3, 3, 1, 4)).view(), None, &g).is_err());
        let bias = ndarray::Array1::zeros(3);
        assert!(conv2d_forward(x.view(), Array4::zeros((3, 3, 2, 4)).view(), Some(bias.view()), &g).is_err());
        assert!(conv2d_backward_filter(x.view(), Array4::zeros((1, 3, 2, 4)).view(), &g).is_err());
        let mut dx = vec![0.0; 10];
        assert!(conv2d_backward_input(
            Array4::zeros((1, 3, 3, 4)).view(),
            Array4::zeros((3, 3, 2, 4)).view(),
            &g,
            &mut dx
        )
        .is_err());
    }

    #[test]
    fn im2col_by_hand() {
        // 1×3×3×1 image 1..9, 2×2 kernel, stride 1, valid: four windows.
        let x = Array::from_shape_vec((1, 3, 3, 1), (1..=9).map(f64::from).collect()).unwrap();
        let g = Conv2dGeometry::new((3, 3, 1), (2, 2), (1, 1), Padding::Valid).unwrap();
        let cols = im2col(x.view(), &g).unwrap();
        assert_eq!(cols.as_slice().unwrap(), &[1., 2., 4., 5., 2., 3., 5., 6., 4., 5., 7., 8., 5., 6., 8., 9.]);
        // The centre pixel is read by all four windows: col2im of ones counts readers.
        let back = col2im(Array2::<f64>::ones((4, 4)).view(), &g, 1).unwrap();
        assert_eq!(back.as_slice().unwrap(), &[1., 2., 1., 2., 4., 2., 1., 2., 1.]);
        assert!(im2col(Array4::<f64>::zeros((1, 4, 3, 1)).view(), &g).is_err());
    }
}
