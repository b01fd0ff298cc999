//! Activation functions: `relu`, `leaky_relu`, `elu`, `sigmoid`, `tanh`, `softplus`.
//!
//! Conventions at the kinks are those of PyTorch and are stated per function. Every
//! function here is finite for inputs of any magnitude (no `exp` overflows).

use nn_tensor::Element;

use crate::error::Result;
use crate::graph::{Graph, Var};
use crate::ops::twin;

impl<T: Element> Graph<T> {
    /// Rectified linear unit `max(x, 0)`.
    ///
    /// # Gradient
    /// `g` where `x > 0`, else 0. **At exactly `x = 0` the gradient is 0** (as
    /// PyTorch). Uses the output only (`y > 0` exactly where `x > 0`), so backward
    /// reads two arrays, not three.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_relu(&mut self, x: Var) -> Result<Var> {
        let op = "relu";
        let i = self.idx(op, x)?;
        let value = self.val(i).map_par(|v| if v > T::zero() { v } else { T::zero() });
        Ok(self.push_op(op, &[i], value, 0, |ctx, mut g, sink| {
            // A select, not a conditional store: branch-free, so it vectorises and
            // never mispredicts on the random sign pattern of activations.
            g.try_zip_apply_par(ctx.output(), |g, y| if y > T::zero() { g } else { T::zero() })
                .map_err(crate::error::tensor_err("relu"))?;
            sink.add(0, g)
        }))
    }
    twin!(relu => try_relu(x: Var) -> Var);

    /// Leaky ReLU: `x` for `x > 0`, `alpha · x` otherwise (Maas et al., 2013).
    ///
    /// # Gradient
    /// `g` where `x > 0`, `alpha · g` otherwise (so `alpha · g` at exactly 0, as PyTorch).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_leaky_relu(&mut self, x: Var, alpha: T) -> Result<Var> {
        self.unary_op(
            "leaky_relu",
            x,
            move |v| if v > T::zero() { v } else { alpha * v },
            move |g, x, _| if x > T::zero() { g } else { alpha * g },
        )
    }
    twin!(leaky_relu => try_leaky_relu(x: Var, alpha: T) -> Var);

    /// Exponential linear unit: `x` for `x > 0`, `alpha · (eˣ − 1)` otherwise
    /// (Clevert, Unterthiner & Hochreiter, 2016), with `eˣ − 1` computed as `exp_m1`
    /// for accuracy near 0.
    ///
    /// # Gradient
    /// `g` where `x > 0`, `alpha · eˣ · g` otherwise (so `alpha · g` at exactly 0).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_elu(&mut self, x: Var, alpha: T) -> Result<Var> {
        self.unary_op(
            "elu",
            x,
            move |v| if v > T::zero() { v } else { alpha * v.exp_m1() },
            move |g, x, _| if x > T::zero() { g } else { alpha * x.exp() * g },
        )
    }
    twin!(elu => try_elu(x: Var, alpha: T) -> Var);

    /// Logistic sigmoid `σ(x) = 1 / (1 + e⁻ˣ)`, computed without overflow
    /// ([`nn_tensor::sigmoid`]: for `x < 0` as `eˣ / (1 + eˣ)`).
    ///
    /// # Gradient
    /// `g · y · (1 − y)` (uses the output). For `x = ±1000`, `y` is exactly 1 or 0, so
    /// the gradient is exactly 0, never NaN.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_sigmoid(&mut self, x: Var) -> Result<Var> {
        self.unary_op("sigmoid", x, nn_tensor::sigmoid, |g, _, y| g * y * (T::one() - y))
    }
    twin!(sigmoid => try_sigmoid(x: Var) -> Var);

    /// Hyperbolic tangent.
    ///
    /// # Gradient
    /// `g · (1 − y²)` (uses the output; exactly 0 where `y = ±1`).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_tanh(&mut self, x: Var) -> Result<Var> {
        self.unary_op("tanh", x, T::tanh, |g, _, y| g * (T::one() - y * y))
    }
    twin!(tanh => try_tanh(x: Var) -> Var);

    /// Softplus `ln(1 + eˣ)`, computed stably as `max(x, 0) + ln(1 + e^−|x|)` (using
    /// `ln_1p`), so it is finite and accurate for inputs of any magnitude.
    ///
    /// # Gradient
    /// `g · σ(x)` (uses the input).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_softplus(&mut self, x: Var) -> Result<Var> {
        self.unary_op("softplus", x, softplus, |g, x, _| g * nn_tensor::sigmoid(x))
    }
    twin!(softplus => try_softplus(x: Var) -> Var);
}

/// `ln(1 + eˣ) = max(x, 0) + ln(1 + e^−|x|)`.
#[inline]
pub(crate) fn softplus<T: Element>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}
