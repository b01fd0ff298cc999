//! Shape arithmetic: overflow-checked element counts and NumPy broadcasting.

use crate::error::{Result, TensorError};

/// The widest element a tensor holds (`f64`), in bytes: the size [`checked_numel`]
/// checks shapes against, so a shape it accepts can be allocated for any
/// [`Element`](crate::Element) type.
pub const MAX_ELEMENT_SIZE: usize = 8;

/// The number of elements of `shape`, checked so that a buffer of them, each
/// `elem_size` bytes, can exist: every shape that nn-tensor allocates goes through
/// this function (directly or through [`checked_numel`]).
///
/// A shape without a zero dimension must hold at most `isize::MAX` bytes (Rust's
/// limit on the size of one allocation; the product is computed with checked
/// multiplication, so it cannot wrap around). A shape with a zero dimension holds 0
/// elements and allocates nothing, but the product of its other dimensions must
/// still be at most `isize::MAX` (ndarray's limit on any shape), whatever
/// `elem_size` is. The empty shape `[]` (a scalar) holds one element. An
/// `elem_size` of 0 counts as 1.
///
/// # Errors
/// [`TensorError::Overflow`] naming `op` and `shape` when either limit is passed:
/// e.g. `[4611686018427387904]` (2^62) with `elem_size` 4 (2^64 bytes), or
/// `[4294967296, 4294967296]` whose product wraps `usize` to 0.
pub fn checked_numel_of(op: &'static str, shape: &[usize], elem_size: usize) -> Result<usize> {
    let overflow = || TensorError::Overflow { op, shape: shape.to_vec() };
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(overflow)?;
    if shape.contains(&0) {
        return Ok(0);
    }
    match nonzero.checked_mul(elem_size.max(1)) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(nonzero),
        _ => Err(overflow()),
    }
}

/// The number of elements of `shape`, checked as by [`checked_numel_of`] for
/// elements of [`MAX_ELEMENT_SIZE`] bytes: the product of the dimensions must not
/// overflow, and (for a shape without a zero dimension) `8 · product` must be at most
/// `isize::MAX` bytes, so that a tensor of `shape` can be allocated as `f32` or `f64`.
///
/// The empty shape `[]` (a scalar) holds one element; a shape with a zero dimension
/// holds none (its other dimensions must still multiply to at most `isize::MAX`).
///
/// # Errors
/// [`TensorError::Overflow`] naming `op` and `shape`.
pub fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    checked_numel_of(op, shape, MAX_ELEMENT_SIZE)
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
    fn byte_size_is_checked_against_isize_max() {
        // 2^62 elements: a valid element count, but 2^64 bytes as f32.
        assert_eq!(checked_numel_of("t", &[1 << 62], 1).unwrap(), 1 << 62);
        let err = checked_numel_of("full", &[1 << 62], 4).unwrap_err();
        assert_eq!(err, TensorError::Overflow { op: "full", shape: vec![1 << 62] });
        assert!(err.to_string().contains("[4611686018427387904]"), "{err}");
        // The largest f32 shape that fits, and one element more.
        let max_f32 = isize::MAX as usize / 4;
        assert_eq!(checked_numel_of("t", &[max_f32], 4).unwrap(), max_f32);
        assert!(checked_numel_of("t", &[max_f32 + 1], 4).is_err());
        // A product that wraps around to 0 is an overflow, not an empty shape.
        let err = checked_numel_of("t", &[1 << 32, 1 << 32], 4).unwrap_err();
        assert!(err.to_string().contains("[4294967296, 4294967296]"), "{err}");
        // checked_numel checks for the widest element type (8 bytes).
        assert!(checked_numel("t", &[1 << 60]).is_err());
        assert_eq!(checked_numel("t", &[(1 << 60) - 1]).unwrap(), (1 << 60) - 1);
        // Empty shapes stay allowed: the byte limit applies to what is allocated.
        assert_eq!(checked_numel_of("t", &[0, 1 << 62], 8).unwrap(), 0);
        assert_eq!(checked_numel_of("t", &[], 8).unwrap(), 1);
        assert_eq!(checked_numel_of("t", &[3, 2], 0).unwrap(), 6);
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
