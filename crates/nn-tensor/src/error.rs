//! The one error type of nn-tensor.

use thiserror::Error;

/// Everything that can go wrong in an nn-tensor operation.
///
/// Each variant names the operation (`op`) and the shapes involved, so a message
/// read far from the call site still says what was attempted. The `try_` forms of
/// every operation return this; the plain forms panic with the same message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TensorError {
    /// Two shapes that the operation needs to agree (after broadcasting) do not.
    #[error("{op}: incompatible shapes {lhs:?} and {rhs:?}")]
    ShapeMismatch {
        /// The operation, e.g. `"add"` or `"matmul"`.
        op: &'static str,
        /// Shape of the left (or first) operand.
        lhs: Vec<usize>,
        /// Shape of the right (or second) operand.
        rhs: Vec<usize>,
    },
    /// A shape does not hold the number of elements the caller supplied or expects.
    #[error("{op}: shape {shape:?} holds {expected} elements, got {got}")]
    ElementCount {
        /// The operation.
        op: &'static str,
        /// The requested shape.
        shape: Vec<usize>,
        /// Elements the shape holds.
        expected: usize,
        /// Elements supplied.
        got: usize,
    },
    /// A shape too large to exist: the product of its dimensions overflows `usize`,
    /// or its size in bytes exceeds `isize::MAX` (see
    /// [`checked_numel_of`](crate::shape::checked_numel_of)).
    #[error(
        "{op}: shape {shape:?} is too large: its element count overflows usize or its size exceeds \
         isize::MAX ({}) bytes",
        isize::MAX
    )]
    Overflow {
        /// The operation.
        op: &'static str,
        /// The shape that is too large.
        shape: Vec<usize>,
    },
    /// The tensor has the wrong number of dimensions for the operation.
    #[error("{op}: expected a {expected}-d tensor, got shape {shape:?}")]
    Rank {
        /// The operation.
        op: &'static str,
        /// Dimensions the operation needs (e.g. `"2"`, `"3"`, `"at least 1"`).
        expected: &'static str,
        /// The shape received.
        shape: Vec<usize>,
    },
    /// An axis index is not below the tensor's number of dimensions, or is repeated.
    #[error("{op}: axis {axis} is invalid for shape {shape:?}")]
    Axis {
        /// The operation.
        op: &'static str,
        /// The offending axis.
        axis: usize,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// An index or range lies outside a dimension.
    #[error("{op}: index {index} is out of bounds for axis {axis} of length {len}")]
    IndexOutOfBounds {
        /// The operation.
        op: &'static str,
        /// The offending index (for a range, its end).
        index: usize,
        /// The axis indexed.
        axis: usize,
        /// The axis length.
        len: usize,
    },
    /// An argument has a value the operation cannot use (zero stride, empty list, ...).
    #[error("{op}: {message}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// What is wrong, in words.
        message: String,
    },
}

/// Shorthand for `Result<T, TensorError>`.
pub type Result<T> = std::result::Result<T, TensorError>;
