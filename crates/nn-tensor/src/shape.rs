//! Shape arithmetic: overflow-checked element counts and NumPy broadcasting.

use crate::error::{Result, TensorError};

/// The number of elements of `shape`, or [`TensorError::Overflow`] if the shape is
/// too large to allocate: the product of its dimensions overflows `usize`, or the
/// product of its non-zero dimensions exceeds `isize::MAX` (ndarray's limit, which
/// applies even when another dimension is 0).
///
/// The empty shape `[]` (a scalar) holds one element.
pub fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    let overflow = || TensorError::Overflow { op, shape: shape.to_vec() };
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(overflow)?;
    Ok(if shape.contains(&0) { 0 } else { nonzero })
}

/// The shape that `lhs` and `rhs` broadcast to under NumPy's rules.
///
/// Shapes are aligned at their last axis; two dimensions are compatible when they
/// are equal or one of them is 1 (NumPy, "Broadcasting", general rules).
///
/// # Errors
/// [`TensorError::ShapeMismatch`] naming `op` and both shapes when some aligned pair
/// of dimensions differs and neither is 1.
pub fn broadcast_shape(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Result<Vec<usize>> {
    let ndim = lhs.len().max(rhs.len());
    let mut out = vec![0; ndim];
    for (i, o) in out.iter_mut().enumerate() {
        let l = dim_from_end(lhs, ndim - 1 - i);
        let r = dim_from_end(rhs, ndim - 1 - i);
        *o = match (l, r) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => return Err(TensorError::ShapeMismatch { op, lhs: lhs.to_vec(), rhs: rhs.to_vec() }),
        };
    }
    Ok(out)
}

/// Dimension `k` counted from the end (`k = 0` is the last axis); 1 past the front.
fn dim_from_end(shape: &[usize], k: usize) -> usize {
    if k < shape.len() {
        shape[shape.len() - 1 - k]
    } else {
        1
    }
}

/// The axes of `target` along which a value of shape `source` was broadcast to
/// reach `target`, i.e. the axes a gradient must be summed over to return to
/// `source`'s shape. Leading axes that `source` lacks are included.
///
/// `source` must broadcast to `target` (as checked by [`broadcast_shape`]); the
/// result lists axes of `target` in increasing order.
pub fn broadcast_axes(source: &[usize], target: &[usize]) -> Vec<usize> {
    let lead = target.len().saturating_sub(source.len());
    (0..target.len()).filter(|&i| i < lead || (source[i - lead] == 1 && target[i] != 1)).collect()
}

/// Checks that every axis in `axes` is below `ndim` and none repeats.
pub(crate) fn check_axes(op: &'static str, axes: &[usize], shape: &[usize]) -> Result<()> {
    for (i, &a) in axes.iter().enumerate() {
        if a >= shape.len() || axes[..i].contains(&a) {
            return Err(TensorError::Axis { op, axis: a, shape: shape.to_vec() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numel_overflow_is_an_error() {
        assert_eq!(checked_numel("t", &[2, 3, 4]).unwrap(), 24);
        assert_eq!(checked_numel("t", &[]).unwrap(), 1);
        assert_eq!(checked_numel("t", &[5, 0]).unwrap(), 0);
        let err = checked_numel("t", &[usize::MAX, 2]).unwrap_err();
        assert!(matches!(err, TensorError::Overflow { .. }));
        // A zero dimension does not excuse the others from ndarray's isize::MAX limit.
        assert!(checked_numel("t", &[0, usize::MAX / 2, 4]).is_err());
        assert!(checked_numel("t", &[0, 1 << 40, 1 << 30]).is_err());
        assert_eq!(checked_numel("t", &[0, 1 << 20]).unwrap(), 0);
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shape("t", &[8, 1, 6, 1], &[7, 1, 5]).unwrap(), vec![8, 7, 6, 5]);
        assert_eq!(broadcast_shape("t", &[3], &[]).unwrap(), vec![3]);
        assert_eq!(broadcast_shape("t", &[0, 1], &[1, 4]).unwrap(), vec![0, 4]);
        let err = broadcast_shape("add", &[2, 3], &[4]).unwrap_err();
        assert_eq!(err.to_string(), "add: incompatible shapes [2, 3] and [4]");
    }

    #[test]
    fn broadcast_axes_lists_expanded_axes() {
        assert_eq!(broadcast_axes(&[3], &[2, 3]), vec![0]);
        assert_eq!(broadcast_axes(&[2, 1], &[2, 3]), vec![1]);
        assert_eq!(broadcast_axes(&[1, 3, 1], &[4, 2, 3, 5]), vec![0, 1, 3]);
        assert_eq!(broadcast_axes(&[2, 3], &[2, 3]), Vec::<usize>::new());
    }
}
