//! 2-d max and average pooling over NHWC images.
//!
//! Windows may overlap (stride smaller than the window); each output position is
//! computed, and routes its gradient, independently of the others. Padded positions
//! never win a max and are not counted by the average (TensorFlow/Keras semantics).

use nn_tensor::conv::{Conv2dGeometry, Padding};
use nn_tensor::{Element, Tensor, TensorError};

use crate::error::{tensor_err, AutogradError, Result};
use crate::graph::{bytes_of, Graph, Var};
use crate::ops::twin;

/// Checked geometry of a pooling window over `x: [batch, h, w, channels]`.
fn pool_geometry<T: Element>(
    op: &'static str,
    x: &Tensor<T>,
    pool: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
) -> Result<Conv2dGeometry> {
    if x.ndim() != 4 {
        return Err(AutogradError::Tensor {
            op,
            source: TensorError::Rank { op, expected: "4", shape: x.shape().to_vec() },
        });
    }
    if let Padding::Explicit { top, bottom, left, right } = padding {
        if top.max(bottom) >= pool.0 || left.max(right) >= pool.1 {
            return Err(AutogradError::InvalidArgument {
                op,
                message: format!(
                    "explicit padding (top {top}, bottom {bottom}, left {left}, right {right}) must be smaller than \
                     the pool size {pool:?}, so that every window covers part of the image"
                ),
            });
        }
    }
    let s = x.shape();
    Conv2dGeometry::new((s[1], s[2], s[3]), pool, stride, padding).map_err(tensor_err(op))
}

/// Calls `f(out_offset, in_offsets)` for every output pixel, where `out_offset` is the
/// flat offset of output `(n, oh, ow, 0)` and `in_offsets` lists the flat offsets of
/// input pixels `(n, ih, iw, 0)` inside its window, in row-major window order.
fn for_each_window(batch: usize, g: &Conv2dGeometry, mut f: impl FnMut(usize, &[usize])) {
    let c = g.channels;
    let mut window = Vec::with_capacity(g.kernel_h * g.kernel_w);
    for n in 0..batch {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                window.clear();
                for kh in 0..g.kernel_h {
                    let Some(ih) = g.source(oh, kh, g.stride_h, g.pad_top, g.in_h) else { continue };
                    for kw in 0..g.kernel_w {
                        let Some(iw) = g.source(ow, kw, g.stride_w, g.pad_left, g.in_w) else { continue };
                        window.push(((n * g.in_h + ih) * g.in_w + iw) * c);
                    }
                }
                f(((n * g.out_h + oh) * g.out_w + ow) * c, &window);
            }
        }
    }
}

impl<T: Element> Graph<T> {
    /// 2-d max pooling: each output is the maximum of a `pool = (height, width)`
    /// window, per channel.
    ///
    /// # Shapes
    /// `x: [batch, height, width, channels]` → `[batch, out_h, out_w, channels]`,
    /// `out_h`/`out_w` as for [`Graph::try_conv2d`] with the pool as kernel.
    ///
    /// # Gradient
    /// Each output routes its whole gradient to the input element that won its
    /// window. **Ties:** the first maximal element in row-major window order
    /// (which is also row-major image order). **Overlapping windows** route
    /// independently, so an element that is the maximum of 4 windows receives the sum
    /// of those 4 gradients. A NaN wins its window.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] for a non-4-d input, a zero stride or a window larger
    /// than the padded input; [`AutogradError::InvalidArgument`] for explicit padding
    /// not smaller than the window.
    pub fn try_max_pool2d(
        &mut self,
        x: Var,
        pool: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
    ) -> Result<Var> {
        let op = "max_pool2d";
        let i = self.idx(op, x)?;
        let xv = self.val(i);
        let geo = pool_geometry(op, xv, pool, stride, padding)?;
        let (batch, c) = (xv.shape()[0], geo.channels);
        let out_shape = [batch, geo.out_h, geo.out_w, c];
        let len = nn_tensor::shape::checked_numel(op, &out_shape).map_err(tensor_err(op))?;
        let x_std = xv.array().as_standard_layout();
        let src = x_std.as_slice().expect("standard layout");
        let mut out = vec![T::zero(); len];
        let mut arg = vec![0usize; len];
        for_each_window(batch, &geo, |o, window| {
            let (best, best_at) = (&mut out[o..o + c], &mut arg[o..o + c]);
            for (w, &base) in window.iter().enumerate() {
                for ch in 0..c {
                    let v = src[base + ch];
                    if w == 0 || v > best[ch] || (v.is_nan() && !best[ch].is_nan()) {
                        best[ch] = v;
                        best_at[ch] = base + ch;
                    }
                }
            }
        });
        drop(x_std);
        let value = Tensor::from_vec(&out_shape, out);
        let needs = self.needs_grad(&[i]);
        let arg = if needs { arg } else { Vec::new() };
        let saved = bytes_of::<usize>(arg.len());
        Ok(self.push_op(op, &[i], value, saved, move |_, g, sink| {
            if let Some((buf, _)) = sink.buffer(0) {
                let dst = buf.as_slice_mut().expect("gradient buffers are contiguous");
                for (&at, &gv) in arg.iter().zip(g.array().iter()) {
                    dst[at] += gv;
                }
            }
            Ok(())
        }))
    }
    twin!(max_pool2d => try_max_pool2d(x: Var, pool: (usize, usize), stride: (usize, usize), padding: Padding) -> Var);

    /// 2-d average pooling: each output is the mean of a `pool = (height, width)`
    /// window, per channel, over the positions inside the image (padding is not
    /// counted, as Keras's `AveragePooling2D` and PyTorch's `count_include_pad=False`).
    ///
    /// # Shapes
    /// As [`Graph::try_max_pool2d`].
    ///
    /// # Gradient
    /// Each output spreads `g / count` over the `count` input positions of its window;
    /// overlapping windows add up.
    ///
    /// # Errors
    /// As [`Graph::try_max_pool2d`].
    pub fn try_avg_pool2d(
        &mut self,
        x: Var,
        pool: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
    ) -> Result<Var> {
        let op = "avg_pool2d";
        let i = self.idx(op, x)?;
        let xv = self.val(i);
        let geo = pool_geometry(op, xv, pool, stride, padding)?;
        let (batch, c) = (xv.shape()[0], geo.channels);
        let out_shape = [batch, geo.out_h, geo.out_w, c];
        let len = nn_tensor::shape::checked_numel(op, &out_shape).map_err(tensor_err(op))?;
        let x_std = xv.array().as_standard_layout();
        let src = x_std.as_slice().expect("standard layout");
        let mut out = vec![T::zero(); len];
        for_each_window(batch, &geo, |o, window| {
            let acc = &mut out[o..o + c];
            for &base in window {
                for (a, &v) in acc.iter_mut().zip(&src[base..base + c]) {
                    *a += v;
                }
            }
            let count = T::of_f64(window.len() as f64);
            acc.iter_mut().for_each(|a| *a /= count);
        });
        drop(x_std);
        let value = Tensor::from_vec(&out_shape, out);
        Ok(self.push_op(op, &[i], value, 0, move |_, g, sink| {
            let Some((buf, _)) = sink.buffer(0) else { return Ok(()) };
            let g_std = g.array().as_standard_layout();
            let gs = g_std.as_slice().expect("standard layout");
            let dst = buf.as_slice_mut().expect("gradient buffers are contiguous");
            for_each_window(batch, &geo, |o, window| {
                let count = T::of_f64(window.len() as f64);
                for &base in window {
                    for (d, &gv) in dst[base..base + c].iter_mut().zip(&gs[o..o + c]) {
                        *d += gv / count;
                    }
                }
            });
            Ok(())
        }))
    }
    twin!(avg_pool2d => try_avg_pool2d(x: Var, pool: (usize, usize), stride: (usize, usize), padding: Padding) -> Var);
}
