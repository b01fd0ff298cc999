//! 2-d convolution over NHWC images, as im2col + GEMM over chunks of whole images
//! ([`nn_tensor::conv::conv2d_forward`] and its two backward kernels).

use ndarray::{Ix1, Ix4};
use nn_tensor::conv::{conv2d_backward_filter, conv2d_backward_input, conv2d_forward, Conv2dGeometry, Padding};
use nn_tensor::{Element, Tensor, TensorError};

use crate::error::{tensor_err, AutogradError, Result};
use crate::graph::{Graph, Var};
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
        let x4 = xv.array().view().into_dimensionality::<Ix4>().expect("rank checked");
        let k4 = kv.array().view().into_dimensionality::<Ix4>().expect("rank checked");
        let b1 = ib.map(|ib| self.val(ib).array().view().into_dimensionality::<Ix1>().expect("shape checked"));
        let value = Tensor::from(conv2d_forward(x4, k4, b1, &geo).map_err(tensor_err(op))?);

        // Backward reads x and the kernel from the tape (im2col(x) is rebuilt chunk by
        // chunk, in cache, rather than saved): nothing extra is kept.
        let parents: Vec<usize> = [Some(ix), Some(ik), ib].into_iter().flatten().collect();
        Ok(self.push_op(op, &parents, value, 0, move |ctx, g, sink| {
            let err = tensor_err(op);
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
    twin!(conv2d => try_conv2d(x: Var, kernel: Var, bias: Option<Var>, stride: (usize, usize), padding: Padding) -> Var);
}
