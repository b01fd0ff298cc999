//! The element types a [`Tensor`](crate::Tensor) holds: `f32` for training, `f64` for gradient checks.

use std::fmt::{Debug, Display};

/// The data type of a tensor, as stored in files (safetensors) and printed in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary64.
    F64,
}

impl Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// A floating-point element type usable in a [`Tensor`](crate::Tensor).
///
/// Implemented for `f32` and `f64` only; the trait is sealed in practice by the GEMM
/// dispatch it requires.
pub trait Element:
    num_traits::Float
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + rand_distr::uniform::SampleUniform
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::ops::DivAssign
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
{
    /// The matching [`DType`].
    const DTYPE: DType;

    /// Converts from `f64`, rounding to nearest for `f32`.
    fn of_f64(x: f64) -> Self;

    /// Converts to `f64` exactly.
    fn as_f64(self) -> f64;

    /// `e^self` by a kernel that vectorizes when inlined into a loop: for `f32`
    /// [`crate::fastmath::exp_f32`] (within 1 ulp, 0 below −87.7), for `f64` the
    /// standard `exp` (exact to the last digit, for gradient checks).
    fn exp_fast(self) -> Self;

    /// The logistic sigmoid `1 / (1 + e^−self)`, vectorizable like [`Element::exp_fast`]:
    /// for `f32` [`crate::fastmath::sigmoid_f32`] (within 2 ulp), for `f64`
    /// [`crate::sigmoid`] (the standard `exp`).
    fn sigmoid_fast(self) -> Self;

    /// `tanh self`, vectorizable like [`Element::exp_fast`]: for `f32`
    /// [`crate::fastmath::tanh_f32`] (within 2 ulp), for `f64` the standard `tanh`.
    fn tanh_fast(self) -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    #[inline]
    fn of_f64(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp_fast(self) -> Self {
        crate::fastmath::exp_f32(self)
    }
    #[inline(always)]
    fn sigmoid_fast(self) -> Self {
        crate::fastmath::sigmoid_f32(self)
    }
    #[inline(always)]
    fn tanh_fast(self) -> Self {
        crate::fastmath::tanh_f32(self)
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    #[inline]
    fn of_f64(x: f64) -> Self {
        x
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp_fast(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn sigmoid_fast(self) -> Self {
        crate::sigmoid(self)
    }
    #[inline(always)]
    fn tanh_fast(self) -> Self {
        self.tanh()
    }
}
