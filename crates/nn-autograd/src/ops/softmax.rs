//! `softmax` and `log_softmax` along an axis, computed stably (the maximum of each
//! lane is subtracted first, see [`nn_tensor`]'s `softmax`).

use ndarray::{Axis, Zip};
use nn_tensor::Element;

use crate::error::{tensor_err, Result};
use crate::graph::{Graph, Var};
use crate::ops::twin;

impl<T: Element> Graph<T> {
    /// `softmax(x)_i = e^{x_i − m} / Σ_j e^{x_j − m}` along `axis` (`m` the lane
    /// maximum): each lane sums to 1; logits of any magnitude are safe.
    ///
    /// # Gradient
    /// `y ⊙ (g − Σ_axis g ⊙ y)` (the softmax Jacobian–vector product; uses the output).
    ///
    /// # Errors
    /// [`AutogradError::Tensor`](crate::AutogradError::Tensor) for an axis `>= ndim`.
    pub fn try_softmax(&mut self, x: Var, axis: usize) -> Result<Var> {
        let op = "softmax";
        let i = self.idx(op, x)?;
        let value = self.val(i).try_softmax(axis).map_err(tensor_err(op))?;
        Ok(self.push_op(op, &[i], value, 0, move |ctx, mut g, sink| {
            let y = ctx.output().array();
            Zip::from(g.array_mut().lanes_mut(Axis(axis))).and(y.lanes(Axis(axis))).for_each(|mut gl, yl| {
                let dot = gl.iter().zip(yl.iter()).fold(T::zero(), |s, (&g, &y)| s + g * y);
                gl.zip_mut_with(&yl, |g, &y| *g = y * (*g - dot));
            });
            sink.add(0, g)
        }))
    }
    twin!(softmax => try_softmax(x: Var, axis: usize) -> Var);

    /// `log_softmax(x)_i = x_i − m − ln Σ_j e^{x_j − m}` along `axis`: exact
    /// log-probabilities even for logits of magnitude 1e8.
    ///
    /// # Gradient
    /// `g − softmax(x) · Σ_axis g`, with `softmax(x) = e^y` (uses the output).
    ///
    /// # Errors
    /// [`AutogradError::Tensor`](crate::AutogradError::Tensor) for an axis `>= ndim`.
    pub fn try_log_softmax(&mut self, x: Var, axis: usize) -> Result<Var> {
        let op = "log_softmax";
        let i = self.idx(op, x)?;
        let value = self.val(i).try_log_softmax(axis).map_err(tensor_err(op))?;
        Ok(self.push_op(op, &[i], value, 0, move |ctx, mut g, sink| {
            let y = ctx.output().array();
            Zip::from(g.array_mut().lanes_mut(Axis(axis))).and(y.lanes(Axis(axis))).for_each(|mut gl, yl| {
                let total = gl.iter().fold(T::zero(), |s, &g| s + g);
                gl.zip_mut_with(&yl, |g, &y| *g -= y.exp() * total);
            });
            sink.add(0, g)
        }))
    }
    twin!(log_softmax => try_log_softmax(x: Var, axis: usize) -> Var);
}
