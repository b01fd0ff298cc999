//! Dense and Conv2D fused with their element-wise activation: one graph operation
//! each, so a training step neither allocates nor traverses a separate activation
//! tensor (for the seed CNN's Conv2D the activation pass moves as many bytes as the
//! convolution's GEMM writes).
//!
//! The affine part is the same computation as nn-autograd's `linear` and `conv2d`
//! (one GEMM with the bias as its initial value; im2col + GEMM), with the same
//! backward GEMMs; the activation is applied in place on the GEMM output, and its
//! derivative is computed from that output (so the pre-activation is never kept):
//!
//! | activation | `f'(x)` from `y = f(x)` |
//! |---|---|
//! | relu | `1` if `y > 0` else `0` (0 at `x = 0`, as nn-autograd) |
//! | leaky_relu (slope α = 0.2 > 0) | `1` if `y > 0` else `α` |
//! | elu (α = 1) | `1` if `y > 0` else `y + 1` (`= eˣ`) |
//! | sigmoid | `y·(1 − y)` |
//! | tanh | `1 − y²` |
//! | softplus | `1 − e^{−y}` (`= σ(x)`) |
//!
//! Softmax (not element-wise) and linear (nothing to fuse) use nn-autograd's ops.

use ndarray::{Array2, ArrayView2, ArrayViewD, Axis, Ix1, Ix2, Ix4, Zip};
use nn_autograd::{AutogradError, Graph, Padding, Var};
use nn_tensor::conv::{conv2d_backward_filter, conv2d_backward_input, conv2d_forward_map, Conv2dGeometry};
use nn_tensor::conv_pool::{conv2d_max_pool_backward, conv2d_max_pool_forward, conv2d_max_pool_infer};
use nn_tensor::{Element, Tensor, TensorError};

use crate::activation::{Activation, LEAKY_RELU_SLOPE};
use crate::error::Result;
use crate::module::PoolWindow;

impl Activation {
    /// Whether the activation is element-wise with a derivative computable from its
    /// output, so it can be fused into the GEMM's output (all but linear and softmax).
    pub(crate) fn fusable(self) -> bool {
        !matches!(self, Activation::Linear | Activation::Softmax)
    }

    /// `f(x)`, the same formulas as nn-autograd's activation ops.
    #[inline]
    fn value<T: Element>(self, x: T) -> T {
        match self {
            Activation::Relu => {
                if x > T::zero() {
                    x
                } else {
                    T::zero()
                }
            }
            Activation::LeakyRelu => {
                if x > T::zero() {
                    x
                } else {
                    T::of_f64(LEAKY_RELU_SLOPE) * x
                }
            }
            Activation::Elu => {
                if x > T::zero() {
                    x
                } else {
                    x.exp_m1()
                }
            }
            Activation::Sigmoid => nn_tensor::sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::Softplus => x.max(T::zero()) + (-x.abs()).exp().ln_1p(),
            Activation::Linear | Activation::Softmax => x,
        }
    }

    /// `f'(x)` from `y = f(x)` (see the module table).
    #[inline]
    fn derivative_from_output<T: Element>(self, y: T) -> T {
        match self {
            Activation::Relu => {
                if y > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::LeakyRelu => {
                if y > T::zero() {
                    T::one()
                } else {
                    T::of_f64(LEAKY_RELU_SLOPE)
                }
            }
            Activation::Elu => {
                if y > T::zero() {
                    T::one()
                } else {
                    y + T::one()
                }
            }
            Activation::Sigmoid => y * (T::one() - y),
            Activation::Tanh => T::one() - y * y,
            Activation::Softplus => -(-y).exp_m1(),
            Activation::Linear | Activation::Softmax => T::one(),
        }
    }
}

/// Evaluates `$body` with `$f` bound to the activation's function `x ↦ f(x)` as a
/// closure. Relu gets its own copy of `$body`: a `match` on the activation inside an
/// element loop would keep the compiler from vectorizing it.
macro_rules! with_value {
    ($act:expr, |$f:ident| $body:expr) => {
        match $act {
            Activation::Relu => {
                let $f = |v: T| if v > T::zero() { v } else { T::zero() };
                $body
            }
            act => {
                let $f = move |v: T| act.value(v);
                $body
            }
        }
    };
}

/// As [`with_value`], with `$f` bound to the derivative taken from the output,
/// `y ↦ f'(x)` (see the module table).
macro_rules! with_derivative {
    ($act:expr, |$f:ident| $body:expr) => {
        match $act {
            Activation::Relu => {
                let $f = |y: T| if y > T::zero() { T::one() } else { T::zero() };
                $body
            }
            act => {
                let $f = move |y: T| act.derivative_from_output(y);
                $body
            }
        }
    };
}

/// `g ⊙ f'(y)` in place, `y` the op's output (vectorized for the CPU at run time).
fn scale_by_derivative<T: Element>(act: Activation, g: &mut Tensor<T>, y: &Tensor<T>) {
    with_derivative!(act, |d| nn_tensor::simd::vectorized(
        #[inline(always)]
        || {
            match (g.array_mut().as_slice_mut(), y.array().as_slice()) {
                (Some(gs), Some(ys)) => gs.iter_mut().zip(ys).for_each(|(g, &y)| *g *= d(y)),
                _ => Zip::from(g.array_mut()).and(y.array()).for_each(|g, &y| *g *= d(y)),
            }
        }
    ))
}

fn rank_error(op: &'static str, expected: &'static str, shape: &[usize]) -> AutogradError {
    AutogradError::Tensor { op, source: TensorError::Rank { op, expected, shape: shape.to_vec() } }
}

fn tensor_err(op: &'static str) -> impl Fn(TensorError) -> AutogradError {
    move |source| AutogradError::Tensor { op, source }
}

/// Fills `out`'s rows with `bias` (when given) and returns the GEMM's `β`.
fn init_with_bias<T: Element>(out: &mut Array2<T>, bias: Option<&Tensor<T>>) -> T {
    match bias {
        Some(b) => {
            let b = b.array().view().into_shape_with_order(out.ncols()).expect("bias shape checked");
            out.rows_mut().into_iter().for_each(|mut r| r.assign(&b));
            T::one()
        }
        None => T::zero(),
    }
}

/// `activation(x · kernel + bias)` on `x`'s last axis, as one graph op.
///
/// # Shapes
/// `x: [batch, ..., in_features]`, `kernel: [in_features, out_features]`,
/// `bias: [out_features]` → `[batch, ..., out_features]`.
///
/// # Gradient
/// With `G = g ⊙ f'(y)` as a `[rows, out_features]` matrix: `∂/∂x = G·kernelᵀ`,
/// `∂/∂kernel = xᵀ·G`, `∂/∂bias = Σ_rows G`.
///
/// # Errors
/// [`AutogradError::Tensor`] for a kernel that is not 2-d or a 0-d `x`;
/// [`AutogradError::ShapeMismatch`] when `x`'s last axis is not `in_features` or the
/// bias is not `[out_features]`.
pub(crate) fn dense<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    kernel: Var,
    bias: Option<Var>,
    act: Activation,
) -> Result<Var> {
    if !act.fusable() {
        let y = g.try_linear(x, kernel, bias)?;
        return Ok(act.apply(g, y)?);
    }
    let op = "dense";
    let (xv, wv) = (g.try_value(x)?, g.try_value(kernel)?);
    if wv.ndim() != 2 {
        return Err(rank_error(op, "2", wv.shape()).into());
    }
    if xv.ndim() == 0 {
        return Err(rank_error(op, "at least 1", &[]).into());
    }
    let (in_f, out_f) = (wv.shape()[0], wv.shape()[1]);
    if xv.shape()[xv.ndim() - 1] != in_f {
        return Err(AutogradError::ShapeMismatch {
            op,
            lhs: xv.shape().to_vec(),
            rhs: wv.shape().to_vec(),
            expected: "x's last axis equal to the kernel's in_features (axis 0)",
        }
        .into());
    }
    let bv = bias.map(|b| g.try_value(b)).transpose()?;
    if let Some(b) = bv {
        if b.shape() != [out_f] {
            return Err(AutogradError::ShapeMismatch {
                op,
                lhs: b.shape().to_vec(),
                rhs: wv.shape().to_vec(),
                expected: "a bias of shape [out_features]",
            }
            .into());
        }
    }
    let rows: usize = xv.shape()[..xv.ndim() - 1].iter().product();
    let value = dense_value(xv.array().view(), wv, bv, act)?;

    let inputs: Vec<Var> = [Some(x), Some(kernel), bias].into_iter().flatten().collect();
    Ok(g.try_custom(op, &inputs, value, move |ctx, mut grad, sink| {
        let err = tensor_err(op);
        scale_by_derivative(act, &mut grad, ctx.output());
        let g_std = grad.array().as_standard_layout();
        let g2 = g_std.view().into_shape_with_order((rows, out_f)).expect("output shape");
        let w2 = ctx.input(1).array().view().into_dimensionality::<Ix2>().expect("rank checked");
        if let Some((buf, beta)) = sink.buffer(0) {
            let mut dx = buf.array_mut().view_mut().into_shape_with_order((rows, in_f)).expect("contiguous");
            nn_tensor::gemm::gemm(T::one(), g2, w2.t(), beta, &mut dx).map_err(&err)?;
        }
        if sink.wants(1) {
            let x = ctx.input(0).array().as_standard_layout();
            let x2: ArrayView2<'_, T> = x.view().into_shape_with_order((rows, in_f)).expect("input shape");
            let (buf, beta) = sink.buffer(1).expect("wanted");
            let mut dw = buf.array_mut().view_mut().into_dimensionality::<Ix2>().expect("rank 2");
            nn_tensor::gemm::gemm(T::one(), x2.t(), g2, beta, &mut dw).map_err(&err)?;
        }
        if ctx.num_inputs() == 3 && sink.wants(2) {
            sink.add(2, Tensor::from(g2.sum_axis(Axis(0))))?;
        }
        Ok(())
    })?)
}

/// Checks the operands of a convolution (shared by [`conv2d`] and
/// [`conv2d_max_pool`]); returns its geometry, the batch size and the filter count.
fn conv_geometry<T: Element>(
    g: &Graph<T>,
    op: &'static str,
    x: Var,
    kernel: Var,
    bias: Option<Var>,
    stride: (usize, usize),
    padding: Padding,
) -> Result<(Conv2dGeometry, usize, usize)> {
    let (xv, kv) = (g.try_value(x)?, g.try_value(kernel)?);
    for t in [xv, kv] {
        if t.ndim() != 4 {
            return Err(rank_error(op, "4", t.shape()).into());
        }
    }
    let (batch, h, w, c) = (xv.shape()[0], xv.shape()[1], xv.shape()[2], xv.shape()[3]);
    let (kh, kw, kc, filters) = (kv.shape()[0], kv.shape()[1], kv.shape()[2], kv.shape()[3]);
    if kc != c {
        return Err(AutogradError::ShapeMismatch {
            op,
            lhs: xv.shape().to_vec(),
            rhs: kv.shape().to_vec(),
            expected: "the kernel's in_channels (axis 2) equal to the input's channels (axis 3)",
        }
        .into());
    }
    let bv = bias.map(|b| g.try_value(b)).transpose()?;
    if let Some(b) = bv {
        if b.shape() != [filters] {
            return Err(AutogradError::ShapeMismatch {
                op,
                lhs: b.shape().to_vec(),
                rhs: kv.shape().to_vec(),
                expected: "a bias of shape [filters]",
            }
            .into());
        }
    }
    let geo = Conv2dGeometry::new((h, w, c), (kh, kw), stride, padding).map_err(tensor_err(op))?;
    Ok((geo, batch, filters))
}

/// The value of [`dense`] on plain arrays (no graph; shapes already checked):
/// `activation(x · kernel + bias)` on `x`'s last axis, by the same operations as the
/// graph ops (one GEMM with the bias as its initial value, then the activation; for
/// linear and softmax, nn-autograd's `linear` and then nn-tensor's softmax).
///
/// # Shapes
/// As [`dense`].
///
/// # Errors
/// [`AutogradError::Tensor`] when the output's size overflows.
pub(crate) fn dense_value<T: Element>(
    x: ArrayViewD<'_, T>,
    kernel: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    act: Activation,
) -> Result<Tensor<T>> {
    let op = "dense";
    let (in_f, out_f) = (kernel.shape()[0], kernel.shape()[1]);
    let lead = &x.shape()[..x.ndim() - 1];
    let rows: usize = lead.iter().product();
    let mut out_shape = lead.to_vec();
    out_shape.push(out_f);
    nn_tensor::shape::checked_numel(op, &out_shape).map_err(tensor_err(op))?;
    let x_std = x.as_standard_layout();
    let x2 = x_std.view().into_shape_with_order((rows, in_f)).expect("standard layout, equal count");
    let w2 = kernel.array().view().into_dimensionality::<Ix2>().expect("rank checked");
    let mut out = Array2::<T>::zeros((rows, out_f));
    let beta = init_with_bias(&mut out, bias);
    nn_tensor::gemm::gemm(T::one(), x2, w2, beta, &mut out.view_mut()).map_err(tensor_err(op))?;
    drop(x_std);
    if act.fusable() {
        with_value!(act, |f| nn_tensor::simd::vectorized(
            #[inline(always)]
            || out.mapv_inplace(f)
        ));
    }
    let value = Tensor::from(out).try_into_reshape(&out_shape)?;
    Ok(match act {
        Activation::Softmax => value.try_softmax(out_shape.len() - 1).map_err(tensor_err("softmax"))?,
        _ => value,
    })
}

/// The value of a Conv2D with activation `act` (not softmax) on plain arrays (no
/// graph), by the same kernel as [`conv2d`]; with `pool`, the value of
/// [`conv2d_max_pool`] (its argmax, which only backward needs, is not stored).
///
/// # Shapes
/// `x: [batch, h, w, in_channels]` matching `geo`, `kernel: [kh, kw, in_channels,
/// filters]`, `bias: [filters]` → `[batch, out_h, out_w, filters]` (pooled with `pool`).
///
/// # Errors
/// [`AutogradError::Tensor`] when `x` does not match the geometry.
pub(crate) fn conv2d_value<T: Element>(
    x: ArrayViewD<'_, T>,
    kernel: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    geo: &Conv2dGeometry,
    act: Activation,
    pool: Option<PoolWindow>,
) -> Result<Tensor<T>> {
    let op = "conv2d";
    debug_assert!(pool_fusable(act));
    let x4 = x.into_dimensionality::<Ix4>().map_err(|_| rank_error(op, "4", &[]))?;
    let k4 = kernel.array().view().into_dimensionality::<Ix4>().expect("rank checked");
    let b1 = bias.map(|b| b.array().view().into_dimensionality::<Ix1>().expect("bias shape checked"));
    let out = match pool {
        None => with_value!(act, |f| conv2d_forward_map(x4, k4, b1, geo, f)),
        Some(w) => {
            let filters = kernel.shape()[3];
            let pool = Conv2dGeometry::new((geo.out_h, geo.out_w, filters), w.pool_size, w.strides, w.padding)
                .map_err(tensor_err(op))?;
            with_value!(act, |f| conv2d_max_pool_infer(x4, k4, b1, geo, &pool, f))
        }
    }
    .map_err(tensor_err(op))?;
    Ok(Tensor::from(out.into_dyn()))
}

/// `activation(conv2d(x, kernel) + bias)` over NHWC images, as one graph op (see
/// nn-autograd's `conv2d` for the convolution's definition and padding rules).
///
/// # Shapes
/// `x: [batch, h, w, in_channels]`, `kernel: [kh, kw, in_channels, filters]`,
/// `bias: [filters]` → `[batch, out_h, out_w, filters]`.
///
/// # Gradient
/// With `G = g ⊙ f'(y)` as a `[batch·out_h·out_w, filters]` matrix and `C = im2col(x)`
/// (rebuilt chunk by chunk in the backward pass, never stored whole):
/// `∂/∂kernel = Cᵀ·G`, `∂/∂bias = Σ_rows G`, `∂/∂x = col2im(G·kernelᵀ)`.
///
/// # Errors
/// [`AutogradError::Tensor`] for inputs that are not 4-d, a zero stride, or a kernel
/// larger than the padded input; [`AutogradError::ShapeMismatch`] when the kernel's
/// `in_channels` differs from `x`'s or the bias is not `[filters]`.
pub(crate) fn conv2d<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    kernel: Var,
    bias: Option<Var>,
    stride: (usize, usize),
    padding: Padding,
    act: Activation,
) -> Result<Var> {
    if !act.fusable() {
        let y = g.try_conv2d(x, kernel, bias, stride, padding)?;
        return Ok(act.apply(g, y)?);
    }
    let op = "conv2d";
    let (geo, batch, filters) = conv_geometry(g, op, x, kernel, bias, stride, padding)?;
    let out_shape = [batch, geo.out_h, geo.out_w, filters];
    nn_tensor::shape::checked_numel(op, &out_shape).map_err(tensor_err(op))?;

    let (xv, kv) = (g.try_value(x)?, g.try_value(kernel)?);
    let bv = bias.map(|b| g.try_value(b)).transpose()?;
    let x4 = xv.array().view().into_dimensionality::<Ix4>().expect("rank checked");
    let k4 = kv.array().view().into_dimensionality::<Ix4>().expect("rank checked");
    let b1 = bv.map(|b| b.array().view().into_dimensionality::<Ix1>().expect("bias shape checked"));
    // nn-tensor's batch-chunked kernel: im2col + single-threaded GEMM per chunk of
    // images, bias and activation applied while the chunk is in cache.
    let out = with_value!(act, |f| conv2d_forward_map(x4, k4, b1, &geo, f)).map_err(tensor_err(op))?;
    let value = Tensor::from(out);
    debug_assert_eq!(value.shape(), out_shape);

    let inputs: Vec<Var> = [Some(x), Some(kernel), bias].into_iter().flatten().collect();
    Ok(g.try_custom(op, &inputs, value, move |ctx, mut grad, sink| {
        let err = tensor_err(op);
        scale_by_derivative(act, &mut grad, ctx.output());
        let g_std = grad.array().as_standard_layout();
        let g4 = g_std.view().into_dimensionality::<Ix4>().expect("output shape");
        let wants_bias = ctx.num_inputs() == 3 && sink.wants(2);
        if sink.wants(1) || wants_bias {
            // Kernel and bias gradients: per-chunk partial sums added in chunk order
            // (bit-identical for any thread count); im2col is rebuilt per chunk, not kept.
            let x4 = ctx.input(0).array().view().into_dimensionality::<Ix4>().expect("rank checked");
            let (dk, db) = conv2d_backward_filter(x4, g4.view(), &geo).map_err(&err)?;
            if sink.wants(1) {
                sink.add(1, Tensor::from(dk))?;
            }
            if wants_bias {
                sink.add(2, Tensor::from(db))?;
            }
        }
        if sink.wants(0) {
            let k4 = ctx.input(1).array().view().into_dimensionality::<Ix4>().expect("rank checked");
            let (buf, _) = sink.buffer(0).expect("wanted");
            // Adds into the buffer: a fresh buffer is zeros, an accumulating one keeps its sum.
            conv2d_backward_input(g4.view(), k4, &geo, buf.as_slice_mut().expect("contiguous gradient"))
                .map_err(&err)?;
        }
        Ok(())
    })?)
}

/// Whether [`conv2d_max_pool`] handles a convolution with this activation: every
/// element-wise one (linear included); not softmax, which is not element-wise.
pub(crate) fn pool_fusable(act: Activation) -> bool {
    act != Activation::Softmax
}

/// `max_pool2d(activation(conv2d(x, kernel) + bias))` as one graph op: a Conv2D
/// followed by a MaxPool2D, computed chunk by chunk by nn-tensor's
/// [`conv2d_max_pool_forward`] so that the convolution's full output is never stored
/// (see nn-tensor's `conv_pool` module). Values and gradients are bit-identical to
/// [`conv2d`] followed by nn-autograd's `max_pool2d`.
///
/// # Shapes
/// `x: [batch, h, w, in_channels]`, `kernel: [kh, kw, in_channels, filters]`,
/// `bias: [filters]` → `[batch, pool_out_h, pool_out_w, filters]`.
///
/// # Gradient
/// `G` = the pooled gradient routed to each window's argmax and multiplied there by
/// `f'` (from the pooled value, which is the activation's output at the argmax);
/// then as [`conv2d`]: `∂/∂kernel = Cᵀ·G`, `∂/∂bias = Σ_rows G`,
/// `∂/∂x = col2im(G·kernelᵀ)`.
///
/// # Errors
/// As [`conv2d`]; [`AutogradError::Tensor`] when the pooling window does not fit the
/// convolution's output (a zero stride, or a window larger than the padded output).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_max_pool<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    kernel: Var,
    bias: Option<Var>,
    stride: (usize, usize),
    padding: Padding,
    act: Activation,
    window: PoolWindow,
    flatten: bool,
) -> Result<Var> {
    let op = "conv2d + max_pool2d";
    debug_assert!(pool_fusable(act));
    let (geo, _, filters) = conv_geometry(g, op, x, kernel, bias, stride, padding)?;
    let pool = Conv2dGeometry::new((geo.out_h, geo.out_w, filters), window.pool_size, window.strides, window.padding)
        .map_err(tensor_err(op))?;
    let (xv, kv) = (g.try_value(x)?, g.try_value(kernel)?);
    let bv = bias.map(|b| g.try_value(b)).transpose()?;
    let x4 = xv.array().view().into_dimensionality::<Ix4>().expect("rank checked");
    let k4 = kv.array().view().into_dimensionality::<Ix4>().expect("rank checked");
    let b1 = bv.map(|b| b.array().view().into_dimensionality::<Ix1>().expect("bias shape checked"));
    let (out, argmax) =
        with_value!(act, |f| conv2d_max_pool_forward(x4, k4, b1, &geo, &pool, f)).map_err(tensor_err(op))?;
    let pooled_shape = out.raw_dim();
    let (rows, len) = (pooled_shape[0], out.len());
    let value = Tensor::from(out.into_dyn());
    // Flattened in place: an owned array in standard layout reshapes without a copy.
    let value = if flatten { value.try_into_reshape(&[rows, len / rows.max(1)])? } else { value };

    let inputs: Vec<Var> = [Some(x), Some(kernel), bias].into_iter().flatten().collect();
    Ok(g.try_custom(op, &inputs, value, move |ctx, grad, sink| {
        let err = tensor_err(op);
        // Back to [batch, h, w, filters] (views of standard-layout arrays: no copies).
        let g_std = grad.array().as_standard_layout();
        let g4 = g_std.view().into_shape_with_order(pooled_shape).expect("output shape");
        let y4 = ctx.output().array().view().into_shape_with_order(pooled_shape).expect("standard layout");
        let x4 = ctx.input(0).array().view().into_dimensionality::<Ix4>().expect("rank checked");
        let k4 = ctx.input(1).array().view().into_dimensionality::<Ix4>().expect("rank checked");
        let wants_bias = ctx.num_inputs() == 3 && sink.wants(2);
        let want_filter = sink.wants(1) || wants_bias;
        let mut dx = sink.buffer(0).map(|(buf, _)| buf);
        // Adds into the buffer: a fresh buffer is zeros, an accumulating one keeps its sum.
        let dx = dx.as_mut().map(|buf| buf.as_slice_mut().expect("contiguous gradient"));
        let grads = with_derivative!(act, |d| {
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
    })?)
}
