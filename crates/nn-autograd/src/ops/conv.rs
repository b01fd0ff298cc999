//! 2-d convolution over NHWC images, as im2col + one GEMM.

use ndarray::{Array2, Axis, Ix4};
use nn_tensor::conv::{col2im_add, im2col, Conv2dGeometry, Padding};
use nn_tensor::{Element, Tensor, TensorError};

use crate::error::{tensor_err, AutogradError, Result};
use crate::graph::{bytes_of, Graph, Var};
use crate::ops::twin;

impl<T: Element> Graph<T> {
    /// 2-d convolution (cross-correlation, as Keras's `Conv2D` and every framework
    /// compute it) of an NHWC batch with a bank of filters, plus an optional bias.
    ///
    /// `out[n, oh, ow, f] = bias[f] + Σ_{kh, kw, c} x[n, oh·sh + kh − pad_top, ow·sw + kw − pad_left, c] · kernel[kh, kw, c, f]`,
    /// with zeros outside the image. Computed as `im2col(x) · kernel` where the kernel
    /// is read as a `[kh·kw·in_channels, filters]` matrix (no copy) and the GEMM
    /// output `[batch·out_h·out_w, filters]` is already NHWC.
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
    /// With `G` = `g` as a `[batch·out_h·out_w, filters]` matrix and `C = im2col(x)`
    /// (saved by the forward pass when the kernel needs a gradient):
    /// `∂/∂kernel = Cᵀ · G`, `∂/∂bias = Σ_rows G`, `∂/∂x = col2im(G · kernelᵀ)`
    /// (col2im is im2col's adjoint: pixels read by several windows get the sum).
    /// `∂/∂x` is skipped when `x` is data (a first layer).
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
        let op = "conv2d";
        let (ix, ik) = (self.idx(op, x)?, self.idx(op, kernel)?);
        let ib = bias.map(|b| self.idx(op, b)).transpose()?;
        let (xv, kv) = (self.val(ix), self.val(ik));
        for t in [xv, kv] {
            if t.ndim() != 4 {
                return Err(AutogradError::Tensor {
                    op,
                    source: TensorError::Rank { op, expected: "4", shape: t.shape().to_vec() },
                });
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
            });
        }
        if let Some(ib) = ib {
            if self.val(ib).shape() != [filters] {
                return Err(AutogradError::ShapeMismatch {
                    op,
                    lhs: self.val(ib).shape().to_vec(),
                    rhs: kv.shape().to_vec(),
                    expected: "a bias of shape [filters]",
                });
            }
        }
        let geo = Conv2dGeometry::new((h, w, c), (kh, kw), stride, padding).map_err(tensor_err(op))?;
        let out_shape = [batch, geo.out_h, geo.out_w, filters];
        let rows = nn_tensor::shape::checked_numel(op, &out_shape[..3]).map_err(tensor_err(op))?;
        nn_tensor::shape::checked_numel(op, &out_shape).map_err(tensor_err(op))?;
        let patch = geo.patch_len();

        let x4 = xv.array().view().into_dimensionality::<Ix4>().expect("rank checked");
        let cols = im2col(x4, &geo).map_err(tensor_err(op))?;
        let k_std = kv.array().as_standard_layout();
        let kmat = k_std.view().into_shape_with_order((patch, filters)).expect("standard layout");
        let mut out = Array2::<T>::zeros((rows, filters));
        let beta = match ib {
            Some(ib) => {
                let b = self.val(ib).array().view().into_shape_with_order(filters).expect("shape checked");
                out.rows_mut().into_iter().for_each(|mut r| r.assign(&b));
                T::one()
            }
            None => T::zero(),
        };
        nn_tensor::gemm::gemm(T::one(), cols.view(), kmat, beta, &mut out.view_mut()).map_err(tensor_err(op))?;
        drop(k_std);
        let value = Tensor::from(out).try_into_reshape(&out_shape).map_err(tensor_err(op))?;

        // im2col(x) is what the kernel gradient needs; keep it only then.
        let cols = if self.wants(ik) { Some(cols) } else { None };
        let saved = cols.as_ref().map_or(0, |c| bytes_of::<T>(c.len()));
        let parents: Vec<usize> = [Some(ix), Some(ik), ib].into_iter().flatten().collect();
        Ok(self.push_op(op, &parents, value, saved, move |ctx, g, sink| {
            let err = tensor_err(op);
            let g_std = g.array().as_standard_layout();
            let g2 = g_std.view().into_shape_with_order((rows, filters)).expect("output shape");
            if let (Some(cols), Some((buf, beta))) = (cols.as_ref(), sink.buffer(1)) {
                let mut dk = buf.array_mut().view_mut().into_shape_with_order((patch, filters)).expect("contiguous");
                nn_tensor::gemm::gemm(T::one(), cols.t(), g2, beta, &mut dk).map_err(&err)?;
            }
            if ctx.num_inputs() == 3 && sink.wants(2) {
                sink.add(2, Tensor::from(g2.sum_axis(Axis(0))))?;
            }
            if sink.wants(0) {
                let k_std = ctx.input(1).array().as_standard_layout();
                let kmat = k_std.view().into_shape_with_order((patch, filters)).expect("standard layout");
                let mut dcols = Array2::<T>::zeros((rows, patch));
                nn_tensor::gemm::gemm(T::one(), g2, kmat.t(), T::zero(), &mut dcols.view_mut()).map_err(&err)?;
                let (buf, _) = sink.buffer(0).expect("wanted");
                col2im_add(
                    dcols.as_slice().expect("fresh array"),
                    &geo,
                    buf.as_slice_mut().expect("gradient buffers are contiguous"),
                );
            }
            Ok(())
        }))
    }
    twin!(conv2d => try_conv2d(x: Var, kernel: Var, bias: Option<Var>, stride: (usize, usize), padding: Padding) -> Var);
}
