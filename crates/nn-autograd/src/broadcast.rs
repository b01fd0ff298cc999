//! Undoing broadcasting: the single helper every broadcasting op's backward rule uses.

use nn_tensor::shape::broadcast_axes;
use nn_tensor::{Element, Tensor, TensorError};

/// Sums `grad` (a gradient at a broadcast shape) back to `shape`, the shape of the
/// operand that was broadcast: over the axes listed by
/// [`nn_tensor::shape::broadcast_axes`] (leading axes the operand lacks, and axes
/// where it had length 1), then reshaped to `shape`.
///
/// This is the chain rule for broadcasting: an operand element read by several
/// output positions receives the sum of their gradients. When `grad` already has
/// `shape`, it is returned unchanged (no copy).
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when `shape` does not broadcast to `grad`'s shape.
pub fn sum_to_shape<T: Element>(grad: Tensor<T>, shape: &[usize]) -> Result<Tensor<T>, TensorError> {
    if grad.shape() == shape {
        return Ok(grad);
    }
    let target = nn_tensor::shape::broadcast_shape("sum_to_shape", shape, grad.shape())?;
    if target != grad.shape() {
        return Err(TensorError::ShapeMismatch { op: "sum_to_shape", lhs: grad.shape().to_vec(), rhs: shape.to_vec() });
    }
    let axes = broadcast_axes(shape, grad.shape());
    grad.try_sum_axes(&axes, false)?.try_into_reshape(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_leading_and_unit_axes() {
        // grad [2, 3] = [[1, 2, 3], [4, 5, 6]]
        let g = Tensor::<f64>::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]);
        // bias [3]: column sums
        assert_eq!(sum_to_shape(g.clone(), &[3]).unwrap().to_vec(), vec![5., 7., 9.]);
        // [1, 3]: column sums, keeping the unit axis
        let s = sum_to_shape(g.clone(), &[1, 3]).unwrap();
        assert_eq!((s.shape(), s.to_vec()), (&[1usize, 3][..], vec![5., 7., 9.]));
        // [2, 1]: row sums
        assert_eq!(sum_to_shape(g.clone(), &[2, 1]).unwrap().to_vec(), vec![6., 15.]);
        // scalar: total
        let s = sum_to_shape(g.clone(), &[]).unwrap();
        assert_eq!((s.shape().len(), s.item()), (0, 21.));
        // same shape: untouched
        assert_eq!(sum_to_shape(g.clone(), &[2, 3]).unwrap(), g);
        assert!(sum_to_shape(g.clone(), &[2]).is_err());
        assert!(sum_to_shape(g, &[4, 2, 3]).is_err());
    }
}
