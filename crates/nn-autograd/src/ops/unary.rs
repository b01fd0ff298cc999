//! Element-wise maths: `exp`, `ln`, `sqrt`, `powf`, `abs`, `clamp`.
//!
//! Each backward rule multiplies the upstream gradient, in place, by the local
//! derivative, computed from the input `x` or the output `y` as noted.

use nn_tensor::{Element, TensorError};

use crate::error::{AutogradError, Result};
use crate::graph::{Graph, Var};
use crate::ops::twin;

impl<T: Element> Graph<T> {
    /// `eˣ` element-wise.
    ///
    /// # Gradient
    /// `g · y` (uses the output).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`].
    pub fn try_exp(&mut self, x: Var) -> Result<Var> {
        self.unary_op("exp", x, T::exp, |g, _, y| g * y)
    }
    twin!(exp => try_exp(x: Var) -> Var);

    /// Natural logarithm element-wise (`ln 0 = −∞`, negative inputs give NaN).
    ///
    /// # Gradient
    /// `g / x` (uses the input; infinite at 0).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`].
    pub fn try_ln(&mut self, x: Var) -> Result<Var> {
        self.unary_op("ln", x, T::ln, |g, x, _| g / x)
    }
    twin!(ln => try_ln(x: Var) -> Var);

    /// Square root element-wise (negative inputs give NaN).
    ///
    /// # Gradient
    /// `g / (2y)` (uses the output; infinite at 0).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`].
    pub fn try_sqrt(&mut self, x: Var) -> Result<Var> {
        let two = T::of_f64(2.0);
        self.unary_op("sqrt", x, T::sqrt, move |g, _, y| g / (two * y))
    }
    twin!(sqrt => try_sqrt(x: Var) -> Var);

    /// `xᵖ` element-wise for a constant exponent `p` (IEEE `powf`: a negative base
    /// with a non-integer `p` gives NaN).
    ///
    /// # Gradient
    /// `g · p · x^(p−1)` (uses the input); exactly 0 when `p = 0`.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`].
    pub fn try_powf(&mut self, x: Var, p: T) -> Result<Var> {
        let pm1 = p - T::one();
        self.unary_op(
            "powf",
            x,
            move |v| v.powf(p),
            move |g, x, _| if p == T::zero() { T::zero() } else { g * p * x.powf(pm1) },
        )
    }
    twin!(powf => try_powf(x: Var, p: T) -> Var);

    /// `|x|` element-wise.
    ///
    /// # Gradient
    /// `g · sign(x)` with **`sign(0) = 0`**: the gradient at exactly 0 is 0 (as
    /// PyTorch).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`].
    pub fn try_abs(&mut self, x: Var) -> Result<Var> {
        self.unary_op("abs", x, T::abs, |g, x, _| {
            if x > T::zero() {
                g
            } else if x < T::zero() {
                -g
            } else {
                T::zero()
            }
        })
    }
    twin!(abs => try_abs(x: Var) -> Var);

    /// Clamps every element to `[min, max]`.
    ///
    /// # Gradient
    /// `g` where `min ≤ x ≤ max` (bounds included, as PyTorch), 0 where the input was
    /// clipped.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] with [`TensorError::InvalidArgument`] when
    /// `min > max` or a bound is NaN.
    pub fn try_clamp(&mut self, x: Var, min: T, max: T) -> Result<Var> {
        if min.is_nan() || max.is_nan() || min > max {
            return Err(AutogradError::Tensor {
                op: "clamp",
                source: TensorError::InvalidArgument {
                    op: "clamp",
                    message: format!("bounds [{min}, {max}] are not an interval"),
                },
            });
        }
        self.unary_op(
            "clamp",
            x,
            move |v| {
                if v < min {
                    min
                } else if v > max {
                    max
                } else {
                    v
                }
            },
            move |g, x, _| if x >= min && x <= max { g } else { T::zero() },
        )
    }
    twin!(clamp => try_clamp(x: Var, min: T, max: T) -> Var);
}
