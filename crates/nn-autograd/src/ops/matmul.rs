//! Matrix products: [`Graph::try_matmul`], [`Graph::try_matmul_t`] (transposed
//! operands without copies), the fused dense-layer product [`Graph::try_linear`],
//! the same with an activation epilogue [`Graph::try_linear_act`], and its graph-free
//! value [`linear_value`]. Every product runs through [`nn_tensor::gemm`].

use ndarray::{Array2, ArrayView2, ArrayViewD, Ix2};
use nn_tensor::{Element, Tensor, TensorError};

use crate::error::{tensor_err, AutogradError, Result};
use crate::graph::{Graph, Var};
use crate::ops::activation::{scale_by_derivative, with_value, Epilogue};
use crate::ops::{column_sums, twin};

/// A 2-d tensor seen as a 3-d one with a leading batch of 1 (for `[k, n]` operands
/// meeting batched gradients).
fn as_batch_of_one<T: Element>(t: &Tensor<T>) -> Tensor<T> {
    if t.ndim() == 2 {
        t.reshape(&[1, t.shape()[0], t.shape()[1]])
    } else {
        t.clone()
    }
}

impl<T: Element> Graph<T> {
    /// Matrix product `a · b`.
    ///
    /// # Shapes
    /// - `[m, k] · [k, n] → [m, n]`
    /// - batched `[batch, m, k] · [batch, k, n] → [batch, m, n]`; a batch of 1 on
    ///   either side broadcasts;
    /// - `[batch, m, k] · [k, n] → [batch, m, n]` (one matrix shared by the batch).
    ///
    /// # Gradient
    /// `∂/∂a = g · bᵀ`, `∂/∂b = aᵀ · g` (needs both inputs), summed over the batch for
    /// an operand that was shared or broadcast.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] with [`TensorError::Rank`] or
    /// [`TensorError::ShapeMismatch`] (inner dimensions or batch sizes disagree).
    pub fn try_matmul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.try_matmul_t(a, b, false, false)
    }
    twin!(matmul => try_matmul(a: Var, b: Var) -> Var);

    /// `op(a) · op(b)`, where `op` swaps the last two axes of an operand whose flag is
    /// set. The transposes are stride changes handed to GEMM: nothing is copied.
    ///
    /// # Shapes
    /// As [`Graph::try_matmul`] after the transposes, e.g. with `transpose_a`:
    /// `[k, m]ᵀ · [k, n] → [m, n]`.
    ///
    /// # Gradient
    /// With `A = op(a)`, `B = op(b)`: `∂/∂A = g·Bᵀ`, `∂/∂B = Aᵀ·g`; for a transposed
    /// operand the transpose of that (`∂/∂a = B·gᵀ` when `transpose_a`, `∂/∂b = gᵀ·A`
    /// when `transpose_b`). Each is itself one transposed GEMM.
    ///
    /// # Errors
    /// As [`Graph::try_matmul`].
    pub fn try_matmul_t(&mut self, a: Var, b: Var, transpose_a: bool, transpose_b: bool) -> Result<Var> {
        let op = "matmul";
        let (ia, ib) = (self.idx(op, a)?, self.idx(op, b)?);
        let value = self.val(ia).try_matmul_t(self.val(ib), transpose_a, transpose_b).map_err(tensor_err(op))?;
        let (ta, tb) = (transpose_a, transpose_b);
        Ok(self.push_op(op, &[ia, ib], value, 0, move |ctx, g, sink| {
            let (a, b) = (ctx.input(0), ctx.input(1));
            let err = tensor_err(op);
            if sink.wants(0) {
                let ga = if !ta {
                    g.try_matmul_t(b, false, !tb)
                } else if g.ndim() == 3 && b.ndim() == 2 {
                    as_batch_of_one(b).try_matmul_t(&g, tb, true)
                } else {
                    b.try_matmul_t(&g, tb, true)
                }
                .map_err(&err)?;
                sink.add_unbroadcast(0, ga)?;
            }
            if sink.wants(1) {
                let gb =
                    if !tb { a.try_matmul_t(&g, !ta, false) } else { g.try_matmul_t(a, true, ta) }.map_err(&err)?;
                sink.add_unbroadcast(1, gb)?;
            }
            Ok(())
        }))
    }
    twin!(matmul_t => try_matmul_t(a: Var, b: Var, transpose_a: bool, transpose_b: bool) -> Var);

    /// The dense-layer product `x · kernel + bias`, fused: the bias is written into
    /// the output first and GEMM accumulates onto it (`β = 1`), so no extra pass.
    ///
    /// # Shapes
    /// - `x: [batch, in_features]` (or `[..., in_features]`: leading axes are
    ///   flattened, as Keras's `Dense` does)
    /// - `kernel: [in_features, out_features]` (Keras's kernel layout)
    /// - `bias: [out_features]`, optional
    /// - output: `[batch, out_features]` (or `[..., out_features]`)
    ///
    /// # Gradient
    /// `∂/∂x = g · kernelᵀ`, `∂/∂kernel = xᵀ · g`, `∂/∂bias = Σ_batch g` (the bias
    /// broadcast over the batch, undone by summing). Each GEMM accumulates straight
    /// into the gradient buffer; `∂/∂x` is skipped when `x` is data.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] with [`TensorError::Rank`] for a kernel that is not
    /// 2-d or a 0-d `x`; [`AutogradError::ShapeMismatch`] when `x`'s last axis is not
    /// `in_features` or the bias is not `[out_features]`.
    pub fn try_linear(&mut self, x: Var, kernel: Var, bias: Option<Var>) -> Result<Var> {
        self.try_linear_act(x, kernel, bias, None)
    }
    twin!(linear => try_linear(x: Var, kernel: Var, bias: Option<Var>) -> Var);

    /// `epilogue(x · kernel + bias)`: [`Graph::try_linear`] with an element-wise
    /// activation applied in place on the GEMM's output, as one op (a dense layer with
    /// its activation: no separate activation tensor is allocated or traversed).
    /// `None` is [`Graph::try_linear`] itself. Values and gradients equal
    /// [`Graph::try_linear`] followed by [`Graph::try_activation`] bit for bit.
    ///
    /// # Shapes
    /// As [`Graph::try_linear`].
    ///
    /// # Gradient
    /// With `G = g ⊙ f'(y)` (`f'` read from the output `y`, see [`Epilogue`]) as a
    /// `[rows, out_features]` matrix: `∂/∂x = G·kernelᵀ`, `∂/∂kernel = xᵀ·G`,
    /// `∂/∂bias = Σ_rows G`. `G` overwrites the incoming gradient: nothing is kept.
    ///
    /// # Errors
    /// As [`Graph::try_linear`]; [`AutogradError::InvalidArgument`] for a `LeakyRelu`
    /// or `Elu` epilogue whose parameter is negative or not finite.
    pub fn try_linear_act(
        &mut self,
        x: Var,
        kernel: Var,
        bias: Option<Var>,
        epilogue: Option<Epilogue>,
    ) -> Result<Var> {
        let op = "linear";
        let a = self.affine_operands(op, x, kernel, bias, epilogue)?;
        let (rows, in_f, out_f) = linear_shapes(op, a.x.shape(), a.kernel.shape(), a.bias.map(Tensor::shape))?;
        let value = linear_forward(op, a.x.array().view(), a.kernel, a.bias, epilogue, rows)?;

        let parents = a.parents;
        Ok(self.push_op(op, &parents, value, 0, move |ctx, mut g, sink| {
            let err = tensor_err(op);
            if let Some(e) = epilogue {
                scale_by_derivative(e, &mut g, ctx.output());
            }
            let g_std = g.array().as_standard_layout();
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
                let db = column_sums(g2.as_slice().expect("standard layout"), out_f);
                sink.add(2, Tensor::from_vec(&[out_f], db))?;
            }
            Ok(())
        }))
    }
    twin!(linear_act => try_linear_act(x: Var, kernel: Var, bias: Option<Var>, epilogue: Option<Epilogue>) -> Var);
}

/// The value of [`Graph::try_linear_act`] on plain arrays, without a graph:
/// `epilogue(x · kernel + bias)` on `x`'s last axis, by the same operations (one GEMM
/// with the bias as its initial value, then the epilogue in place), so bit-identical
/// to the graph op's value. For inference, where nothing is recorded.
///
/// # Shapes
/// As [`Graph::try_linear`]: `x: [..., in_features]`, `kernel: [in_features,
/// out_features]`, `bias: [out_features]` → `[..., out_features]`.
///
/// # Errors
/// As [`Graph::try_linear`] (any epilogue parameter is accepted: no derivative is taken).
pub fn linear_value<T: Element>(
    x: ArrayViewD<'_, T>,
    kernel: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    epilogue: Option<Epilogue>,
) -> Result<Tensor<T>> {
    let op = "linear";
    let (rows, _, _) = linear_shapes(op, x.shape(), kernel.shape(), bias.map(Tensor::shape))?;
    linear_forward(op, x, kernel, bias, epilogue, rows)
}

/// Checks the operands of a linear map; returns `(rows, in_features, out_features)`,
/// `rows` the product of `x`'s leading axes.
fn linear_shapes(op: &'static str, x: &[usize], w: &[usize], b: Option<&[usize]>) -> Result<(usize, usize, usize)> {
    let rank_err = |expected, shape: &[usize]| AutogradError::Tensor {
        op,
        source: TensorError::Rank { op, expected, shape: shape.to_vec() },
    };
    if w.len() != 2 {
        return Err(rank_err("2", w));
    }
    if x.is_empty() {
        return Err(rank_err("at least 1", x));
    }
    let (in_f, out_f) = (w[0], w[1]);
    if x[x.len() - 1] != in_f {
        return Err(AutogradError::ShapeMismatch {
            op,
            lhs: x.to_vec(),
            rhs: w.to_vec(),
            expected: "x's last axis equal to the kernel's in_features (axis 0)",
        });
    }
    if let Some(b) = b {
        if b != [out_f] {
            return Err(AutogradError::ShapeMismatch {
                op,
                lhs: b.to_vec(),
                rhs: w.to_vec(),
                expected: "a bias of shape [out_features]",
            });
        }
    }
    Ok((x[..x.len() - 1].iter().product(), in_f, out_f))
}

/// `epilogue(x · kernel + bias)` for checked shapes: the bias written into the output
/// first, one GEMM accumulating onto it (`β = 1`), then the epilogue in place
/// (vectorized for the CPU at run time).
fn linear_forward<T: Element>(
    op: &'static str,
    x: ArrayViewD<'_, T>,
    kernel: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    epilogue: Option<Epilogue>,
    rows: usize,
) -> Result<Tensor<T>> {
    let (in_f, out_f) = (kernel.shape()[0], kernel.shape()[1]);
    let mut out_shape = x.shape()[..x.ndim() - 1].to_vec();
    out_shape.push(out_f);
    nn_tensor::shape::checked_numel(op, &out_shape).map_err(tensor_err(op))?;

    let x_std = x.as_standard_layout();
    let x2 = x_std.view().into_shape_with_order((rows, in_f)).expect("standard layout, equal count");
    let w2 = kernel.array().view().into_dimensionality::<Ix2>().expect("rank checked");
    // With a bias, C starts as the bias rows (one pass, no zeroing first) and the
    // GEMM adds to it (β = 1).
    let (mut out, beta) = match bias {
        Some(b) => {
            let v = nn_tensor::repeat_rows(&b.to_vec(), rows);
            (Array2::from_shape_vec((rows, out_f), v).expect("rows · out_f elements"), T::one())
        }
        None => (Array2::<T>::zeros((rows, out_f)), T::zero()),
    };
    nn_tensor::gemm::gemm(T::one(), x2, w2, beta, &mut out.view_mut()).map_err(tensor_err(op))?;
    drop(x_std);
    if epilogue.is_some() {
        with_value!(epilogue, |f| nn_tensor::simd::vectorized(
            #[inline(always)]
            || out.mapv_inplace(f)
        ));
    }
    Tensor::from(out).try_into_reshape(&out_shape).map_err(tensor_err(op))
}
