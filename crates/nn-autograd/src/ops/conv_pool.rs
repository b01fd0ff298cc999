//! A convolution, its activation epilogue and a max-pool as one op,
//! [`Graph::try_conv2d_max_pool`], and its graph-free value
//! [`conv2d_max_pool_value`]: computed chunk by chunk of images by nn-tensor's
//! [`conv_pool`](nn_tensor::conv_pool) kernels, so that the convolution's full output
//! is never stored.

use ndarray::{ArrayViewD, Ix4};
use nn_tensor::conv::{Conv2dGeometry, Padding};
use nn_tensor::conv_pool::{conv2d_max_pool_backward, conv2d_max_pool_forward, conv2d_max_pool_infer};
use nn_tensor::{Element, Tensor};

use crate::error::{tensor_err, Result};
use crate::graph::{bytes_of, Graph, Var};
use crate::ops::activation::{with_derivative, with_value, Epilogue};
use crate::ops::conv::{conv2d_geometry, conv2d_views};
use crate::ops::pool::pool_geometry;
use crate::ops::twin;

/// A max-pooling window: the `pool`, `stride` and `padding` arguments of
/// [`Graph::try_max_pool2d`], as the fused [`Graph::try_conv2d_max_pool`] takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolWindow {
    /// Window (height, width).
    pub pool_size: (usize, usize),
    /// (vertical, horizontal) stride.
    pub strides: (usize, usize),
    /// Border handling.
    pub padding: Padding,
}

impl PoolWindow {
    /// The window's checked geometry over a convolution output `[batch, h, w, filters]`.
    fn geometry(self, op: &'static str, conv: &Conv2dGeometry, batch: usize, filters: usize) -> Result<Conv2dGeometry> {
        pool_geometry(op, &[batch, conv.out_h, conv.out_w, filters], self.pool_size, self.strides, self.padding)
    }
}

impl<T: Element> Graph<T> {
    /// `max_pool2d(epilogue(conv2d(x, kernel) + bias))` as one op, optionally
    /// flattened to `[batch, features]` (NHWC order, in place: no copy): a Conv2D, its
    /// activation and a MaxPool2D computed chunk by chunk of images by
    /// [`conv2d_max_pool_forward`], so the convolution's full output is never stored
    /// (see nn-tensor's `conv_pool` module). `None` applies no activation. Values and
    /// gradients equal [`Graph::try_conv2d_act`] followed by [`Graph::try_max_pool2d`]
    /// (and [`Graph::try_flatten`]) bit for bit.
    ///
    /// # Shapes
    /// `x: [batch, h, w, in_channels]`, `kernel: [kh, kw, in_channels, filters]`,
    /// `bias: [filters]` → `[batch, pool_out_h, pool_out_w, filters]`, the pooled size
    /// as for [`Graph::try_max_pool2d`] over the convolution's output
    /// (`[batch, pool_out_h · pool_out_w · filters]` with `flatten`).
    ///
    /// # Gradient
    /// `G` = the pooled gradient routed to each window's argmax (first maximal element
    /// on ties; overlapping windows add up) and multiplied there by `f'`, read from
    /// the pooled value (the activation's output at the argmax); then as
    /// [`Graph::try_conv2d`]: `∂/∂kernel = Cᵀ·G`, `∂/∂bias = Σ_rows G`,
    /// `∂/∂x = col2im(G·kernelᵀ)`. Keeps the 32-bit argmax offsets when some input
    /// needs a gradient.
    ///
    /// # Errors
    /// As [`Graph::try_conv2d_act`]; as [`Graph::try_max_pool2d`] when the window does
    /// not fit the convolution's output ([`AutogradError::Tensor`] for a zero stride or
    /// a window larger than the padded output,
    /// [`AutogradError::InvalidArgument`] for explicit padding not smaller than the
    /// window).
    ///
    /// [`AutogradError::Tensor`]: crate::AutogradError::Tensor
    /// [`AutogradError::InvalidArgument`]: crate::AutogradError::InvalidArgument
    #[allow(clippy::too_many_arguments)]
    pub fn try_conv2d_max_pool(
        &mut self,
        x: Var,
        kernel: Var,
        bias: Option<Var>,
        stride: (usize, usize),
        padding: Padding,
        epilogue: Option<Epilogue>,
        window: PoolWindow,
        flatten: bool,
    ) -> Result<Var> {
        let op = "conv2d + max_pool2d";
        let a = self.affine_operands(op, x, kernel, bias, epilogue)?;
        let (geo, filters) = conv2d_geometry(op, a.x, a.kernel, a.bias, stride, padding)?;
        let pool = window.geometry(op, &geo, a.x.shape()[0], filters)?;
        let (x4, k4, b1) = conv2d_views(op, a.x.array().view(), a.kernel, a.bias)?;
        let (out, argmax) =
            with_value!(epilogue, |f| conv2d_max_pool_forward(x4, k4, b1, &geo, &pool, f)).map_err(tensor_err(op))?;
        let pooled_shape = out.raw_dim();
        let (rows, len) = (pooled_shape[0], out.len());
        let value = Tensor::from(out.into_dyn());
        // Flattened in place: an owned array in standard layout reshapes without a copy.
        let value =
            if flatten { value.try_into_reshape(&[rows, len / rows.max(1)]).map_err(tensor_err(op))? } else { value };

        let parents = a.parents;
        let argmax = if self.needs_grad(&parents) { argmax } else { Vec::new() };
        let saved = bytes_of::<u32>(argmax.len());
        Ok(self.push_op(op, &parents, value, saved, move |ctx, g, sink| {
            let err = tensor_err(op);
            // Back to [batch, h, w, filters] (views of standard-layout arrays: no copies).
            let g_std = g.array().as_standard_layout();
            let g4 = g_std.view().into_shape_with_order(pooled_shape).expect("output shape");
            let y4 = ctx.output().array().view().into_shape_with_order(pooled_shape).expect("standard layout");
            let x4 = ctx.input(0).array().view().into_dimensionality::<Ix4>().expect("rank checked");
            let k4 = ctx.input(1).array().view().into_dimensionality::<Ix4>().expect("rank checked");
            let wants_bias = ctx.num_inputs() == 3 && sink.wants(2);
            let want_filter = sink.wants(1) || wants_bias;
            let mut dx = sink.buffer(0).map(|(buf, _)| buf);
            // Adds into the buffer: a fresh buffer is zeros, an accumulating one keeps its sum.
            let dx = dx.as_mut().map(|buf| buf.as_slice_mut().expect("contiguous gradient"));
            let grads = with_derivative!(epilogue, |d| {
                conv2d_max_pool_backward(x4, k4, g4, y4, &argmax, &geo, &pool, d, want_filter, dx)
            })
            .map_err(&err)?;
            if let Some(grads) = grads {
                if sink.wants(1) {
                    sink.add(1, Tensor::from(grads.kernel))?;
                }
                if wants_bias {
                    sink.add(2, Tensor::from(grads.bias))?;
                }
            }
            Ok(())
        }))
    }

    twin!(
        #[allow(clippy::too_many_arguments)]
        conv2d_max_pool => try_conv2d_max_pool(
            x: Var, kernel: Var, bias: Option<Var>, stride: (usize, usize), padding: Padding,
            epilogue: Option<Epilogue>, window: PoolWindow, flatten: bool
        ) -> Var
    );
}

/// The value of [`Graph::try_conv2d_max_pool`] (unflattened) on plain arrays, without
/// a graph, for a convolution geometry computed beforehand: the same kernel without
/// the argmax (which only backward needs), so bit-identical to the graph op's value.
/// For inference, where nothing is recorded.
///
/// # Shapes
/// `x`, `kernel`, `bias` as for [`conv2d_value`](crate::conv2d_value) →
/// `[batch, pool_out_h, pool_out_w, filters]`.
///
/// # Errors
/// As [`conv2d_value`](crate::conv2d_value); as [`Graph::try_max_pool2d`] when the
/// window does not fit the convolution's output.
pub fn conv2d_max_pool_value<T: Element>(
    x: ArrayViewD<'_, T>,
    kernel: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    geometry: &Conv2dGeometry,
    epilogue: Option<Epilogue>,
    window: PoolWindow,
) -> Result<Tensor<T>> {
    let op = "conv2d + max_pool2d";
    let (x4, k4, b1) = conv2d_views(op, x, kernel, bias)?;
    let pool = window.geometry(op, geometry, x4.shape()[0], k4.shape()[3])?;
    let out =
        with_value!(epilogue, |f| conv2d_max_pool_infer(x4, k4, b1, geometry, &pool, f)).map_err(tensor_err(op))?;
    Ok(Tensor::from(out.into_dyn()))
}
