//! Shape operations: `reshape`, `flatten`, `permute`, `split_heads` and
//! `merge_heads`, `transpose`, `concat`, `stack`, `slice` and `gather_rows`. Their backward rules move gradients back into place
//! (reshape back, permute back, split, scatter-add).

use ndarray::{Axis, Slice};
use nn_tensor::{Element, Tensor, TensorError};

use crate::error::{tensor_err, AutogradError, Result};
use crate::graph::{bytes_of, Graph, Var};
use crate::ops::twin;

impl<T: Element> Graph<T> {
    /// The same elements (row-major order) under a new `shape` with the same count.
    ///
    /// # Gradient
    /// `g` reshaped back to the input's shape.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] with [`TensorError::ElementCount`] when the counts differ.
    pub fn try_reshape(&mut self, x: Var, shape: &[usize]) -> Result<Var> {
        let op = "reshape";
        let i = self.idx(op, x)?;
        let value = self.val(i).try_reshape(shape).map_err(tensor_err(op))?;
        let in_shape = self.val(i).shape().to_vec();
        Ok(self.push_op(op, &[i], value, 0, move |_, g, sink| {
            sink.add(0, g.try_into_reshape(&in_shape).map_err(tensor_err(op))?)
        }))
    }
    twin!(reshape => try_reshape(x: Var, shape: &[usize]) -> Var);

    /// `[batch, d1, d2, ...] → [batch, d1·d2·...]` (Keras's `Flatten`).
    ///
    /// # Gradient
    /// As [`Graph::try_reshape`].
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] with [`TensorError::Rank`] for a 0-d input.
    pub fn try_flatten(&mut self, x: Var) -> Result<Var> {
        let op = "flatten";
        let shape = self.try_value(x)?.shape();
        let Some((&batch, rest)) = shape.split_first() else {
            return Err(AutogradError::Tensor {
                op,
                source: TensorError::Rank { op, expected: "at least 1", shape: vec![] },
            });
        };
        let target = [batch, rest.iter().product()];
        self.try_reshape(x, &target)
    }
    twin!(flatten => try_flatten(x: Var) -> Var);

    /// Reorders axes: output axis `i` is input axis `axes[i]` (NumPy's
    /// `transpose(axes)`). The result is contiguous.
    ///
    /// # Gradient
    /// `g` permuted by the inverse permutation.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] unless `axes` is a permutation of `0..ndim`.
    pub fn try_permute(&mut self, x: Var, axes: &[usize]) -> Result<Var> {
        let op = "permute";
        let i = self.idx(op, x)?;
        let xv = self.val(i);
        let permuted = xv.try_permute(axes).map_err(tensor_err(op))?;
        let value = permuted.to_contiguous();
        let mut inverse = vec![0; axes.len()];
        for (k, &a) in axes.iter().enumerate() {
            inverse[a] = k;
        }
        Ok(self.push_op(op, &[i], value, 0, move |_, g, sink| {
            sink.add(0, g.try_into_permute(&inverse).map_err(tensor_err(op))?)
        }))
    }
    twin!(permute => try_permute(x: Var, axes: &[usize]) -> Var);

    /// The heads of multi-head attention split out of the feature axis:
    /// `[batch, seq, heads·dim] → [batch·heads, seq, dim]`
    /// ([`Tensor::try_split_heads`]): a reshape, a permute `(0, 2, 1, 3)` and a
    /// reshape in one copy.
    ///
    /// # Gradient
    /// `g` merged back ([`Tensor::try_merge_heads`]).
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] for an input that is not 3-d or whose last axis
    /// `heads` does not divide.
    pub fn try_split_heads(&mut self, x: Var, heads: usize) -> Result<Var> {
        let op = "split_heads";
        let i = self.idx(op, x)?;
        let value = self.val(i).try_split_heads(heads).map_err(tensor_err(op))?;
        Ok(self.push_op(op, &[i], value, 0, move |_, g, sink| {
            sink.add(0, g.try_merge_heads(heads).map_err(tensor_err(op))?)
        }))
    }
    twin!(split_heads => try_split_heads(x: Var, heads: usize) -> Var);

    /// The inverse of [`Graph::try_split_heads`]: `[batch·heads, seq, dim] →
    /// [batch, seq, heads·dim]` ([`Tensor::try_merge_heads`]).
    ///
    /// # Gradient
    /// `g` split again ([`Tensor::try_split_heads`]).
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] for an input that is not 3-d or whose first axis
    /// `heads` does not divide.
    pub fn try_merge_heads(&mut self, x: Var, heads: usize) -> Result<Var> {
        let op = "merge_heads";
        let i = self.idx(op, x)?;
        let value = self.val(i).try_merge_heads(heads).map_err(tensor_err(op))?;
        Ok(self.push_op(op, &[i], value, 0, move |_, g, sink| {
            sink.add(0, g.try_split_heads(heads).map_err(tensor_err(op))?)
        }))
    }
    twin!(merge_heads => try_merge_heads(x: Var, heads: usize) -> Var);

    /// Swaps the last two axes (the matrix transpose, batched for 3-d and more).
    ///
    /// # Gradient
    /// `g` with its last two axes swapped back.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] with [`TensorError::Rank`] for fewer than 2 axes.
    pub fn try_transpose(&mut self, x: Var) -> Result<Var> {
        let op = "transpose";
        let n = self.try_value(x)?.ndim();
        if n < 2 {
            let shape = self.value(x).shape().to_vec();
            return Err(AutogradError::Tensor { op, source: TensorError::Rank { op, expected: "at least 2", shape } });
        }
        let mut axes: Vec<usize> = (0..n).collect();
        axes.swap(n - 2, n - 1);
        self.try_permute(x, &axes)
    }
    twin!(transpose => try_transpose(x: Var) -> Var);

    /// Joins `xs` along an existing `axis`; all other dimensions must agree.
    ///
    /// # Gradient
    /// `g` split back along `axis` into the inputs' extents.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`]: an empty list, a bad axis, or mismatched shapes.
    pub fn try_concat(&mut self, xs: &[Var], axis: usize) -> Result<Var> {
        let op = "concat";
        let idx = xs.iter().map(|&v| self.idx(op, v)).collect::<Result<Vec<_>>>()?;
        let vals: Vec<&Tensor<T>> = idx.iter().map(|&i| self.val(i)).collect();
        let value = Tensor::try_concat(axis, &vals).map_err(tensor_err(op))?;
        let extents: Vec<usize> = vals.iter().map(|t| t.shape()[axis]).collect();
        Ok(self.push_op(op, &idx, value, 0, move |_, g, sink| {
            let mut start = 0;
            for (k, &len) in extents.iter().enumerate() {
                if sink.wants(k) {
                    sink.add(k, g.try_slice_axis(axis, start, start + len).map_err(tensor_err(op))?)?;
                }
                start += len;
            }
            Ok(())
        }))
    }
    twin!(concat => try_concat(xs: &[Var], axis: usize) -> Var);

    /// Joins equally shaped `xs` along a new `axis` (`0..=ndim`), e.g. the outputs of
    /// a recurrent layer's time steps.
    ///
    /// # Gradient
    /// Input `k` receives `g`'s index `k` along `axis`.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`]: an empty list, a bad axis, or different shapes.
    pub fn try_stack(&mut self, xs: &[Var], axis: usize) -> Result<Var> {
        let op = "stack";
        let idx = xs.iter().map(|&v| self.idx(op, v)).collect::<Result<Vec<_>>>()?;
        let vals: Vec<&Tensor<T>> = idx.iter().map(|&i| self.val(i)).collect();
        let value = Tensor::try_stack(axis, &vals).map_err(tensor_err(op))?;
        Ok(self.push_op(op, &idx, value, 0, move |ctx, g, sink| {
            for k in 0..ctx.num_inputs() {
                if sink.wants(k) {
                    sink.add(k, Tensor::from(g.array().index_axis(Axis(axis), k).to_owned()))?;
                }
            }
            Ok(())
        }))
    }
    twin!(stack => try_stack(xs: &[Var], axis: usize) -> Var);

    /// Elements `start..end` along `axis` (a contiguous copy).
    ///
    /// # Gradient
    /// `g` added into the sliced range of a zero gradient; the rest gets 0.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] with [`TensorError::Axis`] or
    /// [`TensorError::IndexOutOfBounds`] when the range does not fit.
    pub fn try_slice(&mut self, x: Var, axis: usize, start: usize, end: usize) -> Result<Var> {
        let op = "slice";
        let i = self.idx(op, x)?;
        let value = self.val(i).try_slice_axis(axis, start, end).map_err(tensor_err(op))?;
        Ok(self.push_op(op, &[i], value, 0, move |_, g, sink| {
            if let Some((buf, _)) = sink.buffer(0) {
                let mut part = buf.array_mut().slice_axis_mut(Axis(axis), Slice::from(start..end));
                part.zip_mut_with(g.array(), |a, &b| *a += b);
            }
            Ok(())
        }))
    }
    twin!(slice => try_slice(x: Var, axis: usize, start: usize, end: usize) -> Var);

    /// Rows of axis 0 picked by `indices` (repeats allowed), in that order:
    /// `[n, ...] → [indices.len(), ...]`. The lookup of an embedding table.
    ///
    /// # Gradient
    /// Row `r` of `g` is added to row `indices[r]`; a row picked several times
    /// receives the sum (scatter-add), rows never picked get 0.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] with [`TensorError::Rank`] for a 0-d input or
    /// [`TensorError::IndexOutOfBounds`] for an index `>= n`.
    pub fn try_gather_rows(&mut self, x: Var, indices: &[usize]) -> Result<Var> {
        let op = "gather_rows";
        let i = self.idx(op, x)?;
        let value = self.val(i).try_gather_rows(indices).map_err(tensor_err(op))?;
        let saved = if self.needs_grad(&[i]) { bytes_of::<usize>(indices.len()) } else { 0 };
        let indices = if saved > 0 { indices.to_vec() } else { Vec::new() };
        Ok(self.push_op(op, &[i], value, saved, move |_, g, sink| {
            if let Some((buf, _)) = sink.buffer(0) {
                let buf = buf.array_mut();
                for (r, &row) in indices.iter().enumerate() {
                    let mut dst = buf.index_axis_mut(Axis(0), row);
                    dst.zip_mut_with(&g.array().index_axis(Axis(0), r), |a, &b| *a += b);
                }
            }
            Ok(())
        }))
    }
    twin!(gather_rows => try_gather_rows(x: Var, indices: &[usize]) -> Var);
}
