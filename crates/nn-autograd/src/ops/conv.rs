//! 2-d convolution over NHWC images, as im2col + GEMM over chunks of whole images
//! ([`nn_tensor::conv::conv2d_forward`] and its two backward kernels):
//! [`Graph::try_conv2d`], the same with an activation epilogue
//! [`Graph::try_conv2d_act`], and its graph-free value [`conv2d_value`].

use ndarray::{ArrayView1, ArrayView4, ArrayViewD, Ix1, Ix4};
use nn_tensor::conv::{conv2d_backward_filter, conv2d_backward_input, conv2d_forward_map, Conv2dGeometry, Padding};
use nn_tensor::{Element, Tensor, TensorError};

use crate::error::{tensor_err, AutogradError, Result};
use crate::graph::{Graph, Var};
use crate::ops::activation::{scale_by_derivative, with_value, Epilogue};
use crate::ops::{column_sums, twin};

impl<T: Element> Graph<T> {
    /// 2-d convolution (cross-correlation, as Keras's `Conv2D` and every framework
    /// compute it) of an NHWC batch with a bank of filters, plus an optional bias.
    ///
    /// `out[n, oh, ow, f] = bias[f] + Σ_{kh, kw, c} x[n, oh·sh + kh − pad_top, ow·sw + kw − pad_left, c] · kernel[kh, kw, c, f]`,
    /// with zeros outside the image. Computed as `im2col(x) · kernel` where the kernel
    /// is read as a `[kh·kw·in_channels, filters]` matrix (no copy) and the GEMM
    /// output `[batch·out_h·out_w, filters]` is already NHWC; the batch is split into
    /// fixed chunks of whole images that run in parallel on nn's thread pool, each
    /// building its im2col rows in a cache-sized buffer and running a single-threaded
    /// GEMM (see [`nn_tensor::conv::conv2d_forward`]). Results are bit-identical for
    /// any thread count.
    ///
    /// # Shapes
    /// - `x: [batch, height, width, in_channels]`
    /// - `kernel: [kernel_h, kernel_w, in_channels, filters]` (Keras's layout)
    /// - `bias: [filters]`, optional
    /// - output: `[batch, out_h, out_w, filters]` with, per axis,
    ///   `valid`: `out = floor((in − k) / s) + 1`; `same`: `out = ceil(in / s)`, the
    ///   padding split with the extra row/column at the bottom/right (TensorFlow's
    ///   rule, see [`Padding`]).
    ///
    /// # Gradient
    /// With `G` = `g` as a `[batch·out_h·out_w, filters]` matrix and `C = im2col(x)`:
    /// `∂/∂kernel = Cᵀ · G`, `∂/∂bias = Σ_rows G`, `∂/∂x = col2im(G · kernelᵀ)`
    /// (col2im is im2col's adjoint: pixels read by several windows get the sum).
    /// Uses the input and the kernel; `C` is rebuilt chunk by chunk rather than saved,
    /// and the per-chunk partial sums of the kernel and bias gradients are added in
    /// chunk order. `∂/∂x` is skipped when `x` is data (a first layer).
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] with [`TensorError::Rank`] unless `x` and `kernel`
    /// are 4-d, or [`TensorError::InvalidArgument`] for a zero stride or a kernel
    /// larger than the padded input; [`AutogradError::ShapeMismatch`] when the
    /// kernel's `in_channels` differs from `x`'s or the bias is not `[filters]`.
    pub fn try_conv2d(
        &mut self,
        x: Var,
        kernel: Var,
        bias: Option<Var>,
        stride: (usize, usize),
        padding: Padding,
    ) -> Result<Var> {
        self.try_conv2d_act(x, kernel, bias, stride, padding, None)
    }
    twin!(conv2d => try_conv2d(x: Var, kernel: Var, bias: Option<Var>, stride: (usize, usize), padding: Padding) -> Var);

    /// `epilogue(conv2d(x, kernel) + bias)`: [`Graph::try_conv2d`] with an
    /// element-wise activation applied to each chunk of images right after its GEMM,
    /// while it is in cache ([`nn_tensor::conv::conv2d_forward_map`]), as one op: no
    /// separate activation tensor is allocated or traversed. `None` is
    /// [`Graph::try_conv2d`] itself. Values and gradients equal [`Graph::try_conv2d`]
    /// followed by [`Graph::try_activation`] bit for bit.
    ///
    /// # Shapes
    /// As [`Graph::try_conv2d`].
    ///
    /// # Gradient
    /// With `G = g ⊙ f'(y)` (`f'` read from the output `y`, see [`Epilogue`]) in
    /// place of `g`, as [`Graph::try_conv2d`]: `∂/∂kernel = Cᵀ·G`, `∂/∂bias = Σ_rows G`,
    /// `∂/∂x = col2im(G·kernelᵀ)`.
    ///
    /// # Errors
    /// As [`Graph::try_conv2d`]; [`AutogradError::InvalidArgument`] for a `LeakyRelu`
    /// or `Elu` epilogue whose parameter is negative or not finite.
    pub fn try_conv2d_act(
        &mut self,
        x: Var,
        kernel: Var,
        bias: Option<Var>,
        stride: (usize, usize),
        padding: Padding,
        epilogue: Option<Epilogue>,
    ) -> Result<Var> {
        let op = "conv2d";
        let a = self.affine_operands(op, x, kernel, bias, epilogue)?;
        let (geo, filters) = conv2d_geometry(op, a.x, a.kernel, a.bias, stride, padding)?;
        let value = conv2d_forward_act(op, a.x.array().view(), a.kernel, a.bias, &geo, epilogue)?;

        // Backward reads x and the kernel from the tape (im2col(x) is rebuilt chunk by
        // chunk, in cache, rather than saved): nothing extra is kept.
        let parents = a.parents;
        Ok(self.push_op(op, &parents, value, 0, move |ctx, mut g, sink| {
            let err = tensor_err(op);
            if let Some(e) = epilogue {
                scale_by_derivative(e, &mut g, ctx.output());
            }
            let g4 = g.array().view().into_dimensionality::<Ix4>().expect("output shape");
            let x4 = ctx.input(0).array().view().into_dimensionality::<Ix4>().expect("rank checked");
            let has_bias = ctx.num_inputs() == 3;
            if sink.wants(1) {
                let (dk, db) = conv2d_backward_filter(x4, g4, &geo).map_err(&err)?;
                sink.add(1, Tensor::from(dk))?;
                if has_bias {
                    sink.add(2, Tensor::from(db))?;
                }
            } else if has_bias && sink.wants(2) {
                let g_std = g.array().as_standard_layout();
                let db = column_sums(g_std.as_slice().expect("standard layout"), filters);
                sink.add(2, Tensor::from_vec(&[filters], db))?;
            }
            if let Some((buf, _)) = sink.buffer(0) {
                let k4 = ctx.input(1).array().view().into_dimensionality::<Ix4>().expect("rank checked");
                let dx = buf.as_slice_mut().expect("gradient buffers are contiguous");
                conv2d_backward_input(g4, k4, &geo, dx).map_err(&err)?;
            }
            Ok(())
        }))
    }
    twin!(conv2d_act => try_conv2d_act(x: Var, kernel: Var, bias: Option<Var>, stride: (usize, usize), padding: Padding, epilogue: Option<Epilogue>) -> Var);
}

/// The value of [`Graph::try_conv2d_act`] on plain arrays, without a graph, for a
/// geometry computed beforehand (e.g. when a layer was built): the same kernel, so
/// bit-identical to the graph op's value. For inference, where nothing is recorded.
///
/// # Shapes
/// `x: [batch, geometry.in_h, geometry.in_w, geometry.channels]`, `kernel:
/// [geometry.kernel_h, geometry.kernel_w, channels, filters]`, `bias: [filters]` →
/// `[batch, geometry.out_h, geometry.out_w, filters]`.
///
/// # Errors
/// [`AutogradError::Tensor`] when `x` or the kernel is not 4-d, the bias not 1-d, or
/// a shape does not match `geometry` (any epilogue parameter is accepted: no
/// derivative is taken).
pub fn conv2d_value<T: Element>(
    x: ArrayViewD<'_, T>,
    kernel: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    geometry: &Conv2dGeometry,
    epilogue: Option<Epilogue>,
) -> Result<Tensor<T>> {
    conv2d_forward_act("conv2d", x, kernel, bias, geometry, epilogue)
}

/// `epilogue(conv2d(x, kernel) + bias)` by nn-tensor's batch-chunked kernel: im2col +
/// single-threaded GEMM per chunk of images, bias and epilogue applied while the chunk
/// is in cache.
fn conv2d_forward_act<T: Element>(
    op: &'static str,
    x: ArrayViewD<'_, T>,
    kernel: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    geometry: &Conv2dGeometry,
    epilogue: Option<Epilogue>,
) -> Result<Tensor<T>> {
    let (x4, k4, b1) = conv2d_views(op, x, kernel, bias)?;
    let out = with_value!(epilogue, |f| conv2d_forward_map(x4, k4, b1, geometry, f)).map_err(tensor_err(op))?;
    Ok(Tensor::from(out))
}

/// A convolution's input and kernel as 4-d views, its bias as a 1-d view.
pub(crate) type ConvViews<'a, T> = (ArrayView4<'a, T>, ArrayView4<'a, T>, Option<ArrayView1<'a, T>>);

/// The operands of a convolution as 4-d (input, kernel) and 1-d (bias) views.
///
/// # Errors
/// [`AutogradError::Tensor`] with [`TensorError::Rank`] for another rank.
pub(crate) fn conv2d_views<'a, T: Element>(
    op: &'static str,
    x: ArrayViewD<'a, T>,
    kernel: &'a Tensor<T>,
    bias: Option<&'a Tensor<T>>,
) -> Result<ConvViews<'a, T>> {
    let rank_err = |expected, shape: &[usize]| AutogradError::Tensor {
        op,
        source: TensorError::Rank { op, expected, shape: shape.to_vec() },
    };
    let x_shape = x.shape().to_vec();
    let x4 = x.into_dimensionality::<Ix4>().map_err(|_| rank_err("4", &x_shape))?;
    let k4 = kernel.array().view().into_dimensionality::<Ix4>().map_err(|_| rank_err("4", kernel.shape()))?;
    let b1 = bias
        .map(|b| b.array().view().into_dimensionality::<Ix1>().map_err(|_| rank_err("1", b.shape())))
        .transpose()?;
    Ok((x4, k4, b1))
}

/// Checks the operands of a convolution of `x` with `kernel` (and `bias`); returns
/// its geometry and the number of filters.
///
/// # Errors
/// As [`Graph::try_conv2d`].
pub(crate) fn conv2d_geometry<T: Element>(
    op: &'static str,
    xv: &Tensor<T>,
    kv: &Tensor<T>,
    bv: Option<&Tensor<T>>,
    stride: (usize, usize),
    padding: Padding,
) -> Result<(Conv2dGeometry, usize)> {
    for t in [xv, kv] {
        if t.ndim() != 4 {
            return Err(AutogradError::Tensor {
                op,
                source: TensorError::Rank { op, expected: "4", shape: t.shape().to_vec() },
            });
        }
    }
    let (h, w, c) = (xv.shape()[1], xv.shape()[2], xv.shape()[3]);
    let (kh, kw, kc, filters) = (kv.shape()[0], kv.shape()[1], kv.shape()[2], kv.shape()[3]);
    if kc != c {
        return Err(AutogradError::ShapeMismatch {
            op,
            lhs: xv.shape().to_vec(),
            rhs: kv.shape().to_vec(),
            expected: "the kernel's in_channels (axis 2) equal to the input's channels (axis 3)",
        });
    }
    if let Some(b) = bv {
        if b.shape() != [filters] {
            return Err(AutogradError::ShapeMismatch {
                op,
                lhs: b.shape().to_vec(),
                rhs: kv.shape().to_vec(),
                expected: "a bias of shape [filters]",
            });
        }
    }
    let geo = Conv2dGeometry::new((h, w, c), (kh, kw), stride, padding).map_err(tensor_err(op))?;
    Ok((geo, filters))
}
