//! 2-d max and average pooling over NHWC images.
//!
//! Windows may overlap (stride smaller than the window); each output position is
//! computed, and routes its gradient, independently of the others. Padded positions
//! never win a max and are not counted by the average (TensorFlow/Keras semantics).
//! The kernels are [`nn_tensor::pool`]'s: parallel over chunks of whole images,
//! bit-identical for any thread count.

use ndarray::Ix4;
use nn_tensor::conv::{Conv2dGeometry, Padding};
use nn_tensor::{Element, Tensor, TensorError};

use crate::error::{tensor_err, AutogradError, Result};
use crate::graph::{bytes_of, Graph, Var};
use crate::ops::twin;

/// Checked geometry of a pooling window over an input of shape `[batch, h, w,
/// channels]` (shared with the fused convolution + max-pool op).
///
/// # Errors
/// As [`Graph::try_max_pool2d`].
pub(crate) fn pool_geometry(
    op: &'static str,
    shape: &[usize],
    pool: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
) -> Result<Conv2dGeometry> {
    if shape.len() != 4 {
        return Err(AutogradError::Tensor {
            op,
            source: TensorError::Rank { op, expected: "4", shape: shape.to_vec() },
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
    Conv2dGeometry::new((shape[1], shape[2], shape[3]), pool, stride, padding).map_err(tensor_err(op))
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
        let geo = pool_geometry(op, xv.shape(), pool, stride, padding)?;
        let x4 = xv.array().view().into_dimensionality::<Ix4>().expect("rank checked");
        let (value, arg) = nn_tensor::pool::max_pool2d(x4, &geo).map_err(tensor_err(op))?;
        let arg = if self.needs_grad(&[i]) { arg } else { Vec::new() };
        let saved = bytes_of::<u32>(arg.len());
        Ok(self.push_op(op, &[i], Tensor::from(value), saved, move |_, g, sink| {
            if !sink.wants(0) {
                return Ok(());
            }
            let g4 = g.array().view().into_dimensionality::<Ix4>().expect("output shape");
            let dx = nn_tensor::pool::max_pool2d_backward(g4, &arg, &geo).map_err(tensor_err(op))?;
            sink.add(0, Tensor::from(dx))
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
        let geo = pool_geometry(op, xv.shape(), pool, stride, padding)?;
        let x4 = xv.array().view().into_dimensionality::<Ix4>().expect("rank checked");
        let value = nn_tensor::pool::avg_pool2d(x4, &geo).map_err(tensor_err(op))?;
        Ok(self.push_op(op, &[i], Tensor::from(value), 0, move |_, g, sink| {
            if !sink.wants(0) {
                return Ok(());
            }
            let g4 = g.array().view().into_dimensionality::<Ix4>().expect("output shape");
            let dx = nn_tensor::pool::avg_pool2d_backward(g4, &geo).map_err(tensor_err(op))?;
            sink.add(0, Tensor::from(dx))
        }))
    }
    twin!(avg_pool2d => try_avg_pool2d(x: Var, pool: (usize, usize), stride: (usize, usize), padding: Padding) -> Var);
}
