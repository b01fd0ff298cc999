//! Reductions: `sum` and `mean` (of all elements or along axes) and `max` along an axis.

use ndarray::{ArrayD, Axis, Zip};
use nn_tensor::{Element, Tensor};

use crate::error::{tensor_err, Result};
use crate::graph::{bytes_of, Graph, Var};
use crate::ops::twin;

/// `shape` with the reduced `axes` set to length 1 (the keepdims shape).
fn keepdims_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect()
}

impl<T: Element> Graph<T> {
    /// Sum of all elements, as a 0-d tensor (shape `[]`), summed in row-major order.
    ///
    /// # Gradient
    /// `g` copied to every element.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_sum(&mut self, x: Var) -> Result<Var> {
        let i = self.idx("sum", x)?;
        let value = Tensor::scalar(self.val(i).sum());
        Ok(self.push_op("sum", &[i], value, 0, |_, g, sink| sink.add_expanded(0, &g)))
    }
    twin!(sum => try_sum(x: Var) -> Var);

    /// Mean of all elements, as a 0-d tensor (NaN for an empty tensor).
    ///
    /// # Gradient
    /// `g / n` copied to every element (`n` the element count).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_mean(&mut self, x: Var) -> Result<Var> {
        let i = self.idx("mean", x)?;
        let n = T::of_f64(self.val(i).len() as f64);
        let value = Tensor::scalar(self.val(i).sum() / n);
        Ok(self.push_op("mean", &[i], value, 0, move |_, g, sink| sink.add_expanded(0, &g.map(|v| v / n))))
    }
    twin!(mean => try_mean(x: Var) -> Var);

    /// Sum over `axes`; with `keepdims` the reduced axes stay with length 1.
    ///
    /// # Shapes
    /// e.g. `[batch, n]` summed over `[0]` → `[n]` (or `[1, n]` with `keepdims`).
    ///
    /// # Gradient
    /// `g` broadcast back along the reduced axes.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`](crate::AutogradError::Tensor) with
    /// [`TensorError::Axis`](nn_tensor::TensorError::Axis) for an axis `>= ndim` or a
    /// repeated axis.
    pub fn try_sum_axes(&mut self, x: Var, axes: &[usize], keepdims: bool) -> Result<Var> {
        self.reduce_axes("sum_axes", x, axes, keepdims, false)
    }
    twin!(sum_axes => try_sum_axes(x: Var, axes: &[usize], keepdims: bool) -> Var);

    /// Mean over `axes` (sum divided by the product of their lengths).
    ///
    /// # Gradient
    /// `g / count` broadcast back along the reduced axes.
    ///
    /// # Errors
    /// As [`Graph::try_sum_axes`].
    pub fn try_mean_axes(&mut self, x: Var, axes: &[usize], keepdims: bool) -> Result<Var> {
        self.reduce_axes("mean_axes", x, axes, keepdims, true)
    }
    twin!(mean_axes => try_mean_axes(x: Var, axes: &[usize], keepdims: bool) -> Var);

    fn reduce_axes(&mut self, op: &'static str, x: Var, axes: &[usize], keepdims: bool, mean: bool) -> Result<Var> {
        let i = self.idx(op, x)?;
        let xv = self.val(i);
        let value = if mean { xv.try_mean_axes(axes, keepdims) } else { xv.try_sum_axes(axes, keepdims) }
            .map_err(tensor_err(op))?;
        let kept = keepdims_shape(xv.shape(), axes);
        let count: usize = axes.iter().map(|&a| xv.shape()[a]).product();
        let scale = T::one() / T::of_f64(count as f64);
        Ok(self.push_op(op, &[i], value, 0, move |_, g, sink| {
            let mut g = g.try_into_reshape(&kept).map_err(tensor_err(op))?;
            if mean {
                g.map_inplace(|v| v * scale);
            }
            sink.add_expanded(0, &g)
        }))
    }

    /// Maximum along `axis`; with `keepdims` the axis stays with length 1.
    ///
    /// # Gradient
    /// The whole of `g` goes to the position of the maximum in each lane. **Ties:**
    /// to the first maximal element along the axis (the first in row-major order),
    /// the others get 0 (a subgradient; PyTorch's `max(dim)` does the same). A NaN
    /// counts as the maximum.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`](crate::AutogradError::Tensor) with
    /// [`TensorError::Axis`](nn_tensor::TensorError::Axis) for a bad axis or
    /// [`TensorError::InvalidArgument`](nn_tensor::TensorError::InvalidArgument) for an
    /// empty axis.
    pub fn try_max_axis(&mut self, x: Var, axis: usize, keepdims: bool) -> Result<Var> {
        let op = "max_axis";
        let i = self.idx(op, x)?;
        let xv = self.val(i);
        let arg = xv.try_argmax(axis).map_err(tensor_err(op))?;
        let mut out: ArrayD<T> = ArrayD::zeros(arg.raw_dim());
        Zip::from(&mut out).and(&arg).and(xv.array().lanes(Axis(axis))).for_each(|o, &a, lane| *o = lane[a]);
        if keepdims {
            out.insert_axis_inplace(Axis(axis));
        }
        let saved = bytes_of::<usize>(arg.len());
        Ok(self.push_op(op, &[i], Tensor::from(out), saved, move |_, g, sink| {
            let Some((buf, _)) = sink.buffer(0) else { return Ok(()) };
            let g = g.try_into_reshape(arg.shape()).map_err(tensor_err(op))?;
            Zip::from(buf.array_mut().lanes_mut(Axis(axis)))
                .and(&arg)
                .and(g.array())
                .for_each(|mut lane, &a, &g| lane[a] += g);
            Ok(())
        }))
    }
    twin!(max_axis => try_max_axis(x: Var, axis: usize, keepdims: bool) -> Var);
}
