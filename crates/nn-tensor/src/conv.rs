//! Helpers for 2-d convolution: padding rules, output sizes, im2col and col2im.
//!
//! Layout: **NHWC** (channels last, Keras's default): images are `[batch, height,
//! width, channels]` and a convolution kernel is `[kernel_h, kernel_w, in_channels,
//! filters]`, which reshapes without a copy to the `[kernel_h·kernel_w·in_channels,
//! filters]` matrix that multiplies the im2col matrix. The product
//! `[batch·out_h·out_w, filters]` is already the NHWC output, so no transpose is
//! needed on the way out.

use ndarray::{Array2, Array4, ArrayView2, ArrayView4};

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

    fn check_input(&self, shape: &[usize]) -> Result<()> {
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

/// Unfolds every window of an NHWC batch into one row.
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
    let mut cols = Array2::<T>::zeros((rows, g.patch_len()));
    im2col_into(input, g, cols.as_slice_mut().expect("fresh array is contiguous"));
    Ok(cols)
}

/// [`im2col`] into a caller-owned buffer of `batch·out_h·out_w·patch_len` elements
/// (every element is written, so the buffer may be reused without clearing).
///
/// # Panics
/// If `out` has the wrong length or `input` does not match the geometry (checked
/// by [`im2col`]; this form is for callers that checked once and reuse buffers).
pub fn im2col_into<T: Element>(input: ArrayView4<'_, T>, g: &Conv2dGeometry, out: &mut [T]) {
    let batch = input.shape()[0];
    let c = g.channels;
    let patch = g.patch_len();
    assert_eq!(out.len(), batch * g.out_h * g.out_w * patch, "im2col_into: buffer length");
    let input = input.as_standard_layout();
    let src = input.as_slice().expect("standard layout");
    let img = g.in_h * g.in_w * c;
    for (row_idx, row) in out.chunks_exact_mut(patch).enumerate() {
        let ow = row_idx % g.out_w;
        let oh = (row_idx / g.out_w) % g.out_h;
        let n = row_idx / (g.out_w * g.out_h);
        let base = n * img;
        for kh in 0..g.kernel_h {
            let ih = g.source(oh, kh, g.stride_h, g.pad_top, g.in_h);
            for kw in 0..g.kernel_w {
                let dst = &mut row[(kh * g.kernel_w + kw) * c..][..c];
                match (ih, g.source(ow, kw, g.stride_w, g.pad_left, g.in_w)) {
                    (Some(ih), Some(iw)) => {
                        let s = base + (ih * g.in_w + iw) * c;
                        dst.copy_from_slice(&src[s..s + c]);
                    }
                    _ => dst.fill(T::zero()),
                }
            }
        }
    }
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
    let mut out = Array4::<T>::zeros((batch, g.in_h, g.in_w, g.channels));
    let cols = cols.as_standard_layout();
    col2im_add(cols.as_slice().expect("standard layout"), g, out.as_slice_mut().expect("contiguous"));
    Ok(out)
}

/// [`col2im`] adding into a caller-owned NHWC buffer (not cleared first).
///
/// # Panics
/// If the buffer lengths do not match the geometry.
pub fn col2im_add<T: Element>(cols: &[T], g: &Conv2dGeometry, out: &mut [T]) {
    let c = g.channels;
    let patch = g.patch_len();
    let img = g.in_h * g.in_w * c;
    assert_eq!(cols.len() % patch.max(1), 0, "col2im: cols length");
    assert_eq!(out.len() / img.max(1) * g.out_h * g.out_w * patch, cols.len(), "col2im: buffer lengths");
    for (row_idx, row) in cols.chunks_exact(patch).enumerate() {
        let ow = row_idx % g.out_w;
        let oh = (row_idx / g.out_w) % g.out_h;
        let n = row_idx / (g.out_w * g.out_h);
        let base = n * img;
        for kh in 0..g.kernel_h {
            let Some(ih) = g.source(oh, kh, g.stride_h, g.pad_top, g.in_h) else { continue };
            for kw in 0..g.kernel_w {
                let Some(iw) = g.source(ow, kw, g.stride_w, g.pad_left, g.in_w) else { continue };
                let d = base + (ih * g.in_w + iw) * c;
                for (o, &v) in out[d..d + c].iter_mut().zip(&row[(kh * g.kernel_w + kw) * c..][..c]) {
                    *o += v;
                }
            }
        }
    }
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
