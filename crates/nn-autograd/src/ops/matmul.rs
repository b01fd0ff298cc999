//! Matrix products: [`Graph::try_matmul`], [`Graph::try_matmul_t`] (transposed
//! operands without copies) and the fused dense-layer product [`Graph::try_linear`].
//! Every product runs through [`nn_tensor::gemm`].

use ndarray::{Array2, ArrayView2, Ix2};
use nn_tensor::{Element, Tensor, TensorError};

use crate::error::{tensor_err, AutogradError, Result};
use crate::graph::{Graph, Var};
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
        let op = "linear";
        let (ix, iw) = (self.idx(op, x)?, self.idx(op, kernel)?);
        let ib = bias.map(|b| self.idx(op, b)).transpose()?;
        let (xv, wv) = (self.val(ix), self.val(iw));
        if wv.ndim() != 2 {
            return Err(AutogradError::Tensor {
                op,
                source: TensorError::Rank { op, expected: "2", shape: wv.shape().to_vec() },
            });
        }
        if xv.ndim() == 0 {
            return Err(AutogradError::Tensor {
                op,
                source: TensorError::Rank { op, expected: "at least 1", shape: vec![] },
            });
        }
        let (in_f, out_f) = (wv.shape()[0], wv.shape()[1]);
        if xv.shape()[xv.ndim() - 1] != in_f {
            return Err(AutogradError::ShapeMismatch {
                op,
                lhs: xv.shape().to_vec(),
                rhs: wv.shape().to_vec(),
                expected: "x's last axis equal to the kernel's in_features (axis 0)",
            });
        }
        if let Some(ib) = ib {
            if self.val(ib).shape() != [out_f] {
                return Err(AutogradError::ShapeMismatch {
                    op,
                    lhs: self.val(ib).shape().to_vec(),
                    rhs: wv.shape().to_vec(),
                    expected: "a bias of shape [out_features]",
                });
            }
        }
        let lead = &xv.shape()[..xv.ndim() - 1];
        let rows: usize = lead.iter().product();
        let mut out_shape = lead.to_vec();
        out_shape.push(out_f);
        nn_tensor::shape::checked_numel(op, &out_shape).map_err(tensor_err(op))?;

        let x_std = xv.array().as_standard_layout();
        let x2 = x_std.view().into_shape_with_order((rows, in_f)).expect("standard layout, equal count");
        let w2 = wv.array().view().into_dimensionality::<Ix2>().expect("rank checked");
        let mut out = Array2::<T>::zeros((rows, out_f));
        let beta = match ib {
            Some(ib) => {
                let b = self.val(ib).array().view().into_shape_with_order(out_f).expect("shape checked");
                out.rows_mut().into_iter().for_each(|mut r| r.assign(&b));
                T::one()
            }
            None => T::zero(),
        };
        nn_tensor::gemm::gemm(T::one(), x2, w2, beta, &mut out.view_mut()).map_err(tensor_err(op))?;
        let value = Tensor::from(out).try_into_reshape(&out_shape).map_err(tensor_err(op))?;
        drop(x_std);

        let parents: Vec<usize> = [Some(ix), Some(iw), ib].into_iter().flatten().collect();
        Ok(self.push_op(op, &parents, value, 0, move |ctx, g, sink| {
            let err = tensor_err(op);
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
    twin!(linear => try_linear(x: Var, kernel: Var, bias: Option<Var>) -> Var);
}
