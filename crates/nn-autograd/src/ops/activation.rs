//! Activation functions: `relu`, `leaky_relu`, `elu`, `sigmoid`, `tanh`, `softplus`,
//! and [`Epilogue`], the same six as the element-wise tail of a fused affine op
//! ([`Graph::try_linear_act`], [`Graph::try_conv2d_act`],
//! [`Graph::try_conv2d_max_pool`]).
//!
//! Each activation's value and derivative is written once, in this file, and both the
//! activation ops and the epilogues use it. Every derivative is computed from the
//! output `y = f(x)`, so an op keeps no pre-activation (a fused op never has one):
//!
//! | activation | `y = f(x)` | `f'(x)` from `y` |
//! |---|---|---|
//! | relu | `x` if `x > 0` else `0` | `1` if `y > 0` else `0` (so 0 at `x = 0`, as PyTorch) |
//! | leaky_relu (slope α) | `x` if `x > 0` else `α·x` | `1` if `x > 0` else `α` |
//! | elu (α) | `x` if `x > 0` else `α·(eˣ − 1)` (as `exp_m1`) | `1` if `x > 0` else `y + α` (`= α·eˣ`) |
//! | sigmoid | `σ(x)` ([`nn_tensor::sigmoid`]: `eˣ / (1 + eˣ)` for `x < 0`) | `y·(1 − y)` |
//! | tanh | `tanh x` | `1 − y²` |
//! | softplus | `max(x, 0) + ln(1 + e^{−|x|})` (as `ln_1p`) | `1 − e^{−y}` (as `−exp_m1(−y)`; `= σ(x)`) |
//!
//! For leaky_relu and elu the branch `x > 0` is read from the output (`y > 0`) when
//! `α ≥ 0`, which is exact then; the ops [`Graph::try_leaky_relu`] and
//! [`Graph::try_elu`] read it from the input, so any α works there (an [`Epilogue`]
//! has no input to read and requires `α ≥ 0`). Backward rules multiply: `g ← g·f'`.
//!
//! Conventions at the kinks are those of PyTorch and are stated per function. Every
//! function here is finite for inputs of any magnitude (no `exp` overflows).

use ndarray::Zip;
use nn_tensor::{Element, Tensor};

use crate::error::{tensor_err, AutogradError, Result};
use crate::graph::{Graph, Var};
use crate::ops::twin;

/// An element-wise activation applied by a fused op to its own output (an epilogue),
/// its derivative then computed from that output. Parameters are `f64`, converted to
/// the element type with [`Element::of_f64`] (to nearest for `f32`).
///
/// | variant | `y = f(x)` | `f'(x)` from `y` |
/// |---|---|---|
/// | `Relu` | `max(x, 0)` | `1` if `y > 0` else `0` |
/// | `LeakyRelu(α)`, `α ≥ 0` | `x` if `x > 0` else `α·x` | `1` if `y > 0` else `α` |
/// | `Elu(α)`, `α ≥ 0` | `x` if `x > 0` else `α·(eˣ − 1)` | `1` if `y > 0` else `y + α` |
/// | `Sigmoid` | `σ(x)` | `y·(1 − y)` |
/// | `Tanh` | `tanh x` | `1 − y²` |
/// | `Softplus` | `ln(1 + eˣ)`, stably | `1 − e^{−y}` |
///
/// The same formulas as the ops [`Graph::try_relu`], [`Graph::try_leaky_relu`],
/// [`Graph::try_elu`], [`Graph::try_sigmoid`], [`Graph::try_tanh`] and
/// [`Graph::try_softplus`], so a fused op equals the affine op followed by the
/// activation op bit for bit ([`Graph::try_activation`] applies an epilogue as its op).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Epilogue {
    /// Rectified linear unit `max(x, 0)`.
    Relu,
    /// Leaky ReLU with negative slope `α` (finite, `≥ 0`).
    LeakyRelu(f64),
    /// Exponential linear unit with scale `α` (finite, `≥ 0`).
    Elu(f64),
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softplus `ln(1 + eˣ)`.
    Softplus,
}

impl Epilogue {
    /// The activation op's name (`"relu"`, `"leaky_relu"`, `"elu"`, `"sigmoid"`,
    /// `"tanh"`, `"softplus"`).
    pub fn name(self) -> &'static str {
        match self {
            Epilogue::Relu => "relu",
            Epilogue::LeakyRelu(_) => "leaky_relu",
            Epilogue::Elu(_) => "elu",
            Epilogue::Sigmoid => "sigmoid",
            Epilogue::Tanh => "tanh",
            Epilogue::Softplus => "softplus",
        }
    }

    /// `f(x)`.
    #[inline]
    pub fn value<T: Element>(self, x: T) -> T {
        match self {
            Epilogue::Relu => relu(x),
            Epilogue::LeakyRelu(alpha) => leaky_relu(x, T::of_f64(alpha)),
            Epilogue::Elu(alpha) => elu(x, T::of_f64(alpha)),
            Epilogue::Sigmoid => nn_tensor::sigmoid(x),
            Epilogue::Tanh => x.tanh(),
            Epilogue::Softplus => softplus(x),
        }
    }

    /// `f'(x)` from the output `y = f(x)` (see the table above; exact for a
    /// parameter `α ≥ 0`, which every fused op checks).
    #[inline]
    pub fn derivative_from_output<T: Element>(self, y: T) -> T {
        let positive = y > T::zero();
        match self {
            Epilogue::Relu => relu_derivative(positive),
            Epilogue::LeakyRelu(alpha) => leaky_relu_derivative(positive, T::of_f64(alpha)),
            Epilogue::Elu(alpha) => elu_derivative(positive, y, T::of_f64(alpha)),
            Epilogue::Sigmoid => sigmoid_derivative(y),
            Epilogue::Tanh => tanh_derivative(y),
            Epilogue::Softplus => softplus_derivative(y),
        }
    }

    /// Checks that the derivative can be read from the output: the parameter of
    /// `LeakyRelu` and `Elu` is finite and `≥ 0` (so `y > 0` exactly where `x > 0`).
    ///
    /// # Errors
    /// [`AutogradError::InvalidArgument`] naming `op` otherwise.
    pub(crate) fn check(self, op: &'static str) -> Result<()> {
        match self {
            Epilogue::LeakyRelu(alpha) | Epilogue::Elu(alpha) if !(alpha.is_finite() && alpha >= 0.0) => {
                Err(AutogradError::InvalidArgument {
                    op,
                    message: format!(
                        "the {} epilogue's parameter must be finite and non-negative (its derivative is read from \
                         the output), got {alpha}",
                        self.name()
                    ),
                })
            }
            _ => Ok(()),
        }
    }
}

/// `max(x, 0)` (0 for `x = 0`, and for a NaN input, as `x > 0` is false there).
#[inline(always)]
pub(crate) fn relu<T: Element>(x: T) -> T {
    if x > T::zero() {
        x
    } else {
        T::zero()
    }
}

/// relu's `f'`: 1 where `x > 0` (equivalently `y > 0`), else 0.
#[inline(always)]
pub(crate) fn relu_derivative<T: Element>(positive: bool) -> T {
    if positive {
        T::one()
    } else {
        T::zero()
    }
}

/// `x` for `x > 0`, `α·x` otherwise.
#[inline(always)]
fn leaky_relu<T: Element>(x: T, alpha: T) -> T {
    if x > T::zero() {
        x
    } else {
        alpha * x
    }
}

/// leaky_relu's `f'`: 1 where `x > 0`, else `α`.
#[inline(always)]
fn leaky_relu_derivative<T: Element>(positive: bool, alpha: T) -> T {
    if positive {
        T::one()
    } else {
        alpha
    }
}

/// `x` for `x > 0`, `α·(eˣ − 1)` otherwise.
#[inline(always)]
fn elu<T: Element>(x: T, alpha: T) -> T {
    if x > T::zero() {
        x
    } else {
        alpha * x.exp_m1()
    }
}

/// elu's `f'`: 1 where `x > 0`, else `y + α = α·eˣ`.
#[inline(always)]
fn elu_derivative<T: Element>(positive: bool, y: T, alpha: T) -> T {
    if positive {
        T::one()
    } else {
        y + alpha
    }
}

/// sigmoid's `f'` from `y = σ(x)`.
#[inline(always)]
fn sigmoid_derivative<T: Element>(y: T) -> T {
    y * (T::one() - y)
}

/// tanh's `f'` from `y = tanh x`.
#[inline(always)]
fn tanh_derivative<T: Element>(y: T) -> T {
    T::one() - y * y
}

/// `ln(1 + eˣ) = max(x, 0) + ln(1 + e^−|x|)`.
#[inline(always)]
fn softplus<T: Element>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

/// softplus's `f'` from `y = softplus(x)`: `1 − e^{−y} = σ(x)`.
#[inline(always)]
fn softplus_derivative<T: Element>(y: T) -> T {
    -(-y).exp_m1()
}

/// Evaluates `$body` with `$f` bound to the function `x ↦ f(x)` of `$epi`, an
/// `Option<Epilogue>` (`None`: the identity), as a closure over the element type `T`
/// in scope. The identity and relu get their own copies of `$body`: a `match` on the
/// epilogue inside an element loop would keep the compiler from vectorizing it.
macro_rules! with_value {
    ($epi:expr, |$f:ident| $body:expr) => {
        match $epi {
            None => {
                let $f = |x: T| x;
                $body
            }
            Some($crate::ops::activation::Epilogue::Relu) => {
                let $f = |x: T| $crate::ops::activation::relu(x);
                $body
            }
            Some(epi) => {
                let $f = move |x: T| epi.value::<T>(x);
                $body
            }
        }
    };
}
pub(crate) use with_value;

/// As [`with_value`], with `$f` bound to the derivative read from the output,
/// `y ↦ f'(x)` (`None`: 1).
macro_rules! with_derivative {
    ($epi:expr, |$f:ident| $body:expr) => {
        match $epi {
            None => {
                let $f = |_: T| T::one();
                $body
            }
            Some($crate::ops::activation::Epilogue::Relu) => {
                let $f = |y: T| $crate::ops::activation::relu_derivative::<T>(y > T::zero());
                $body
            }
            Some(epi) => {
                let $f = move |y: T| epi.derivative_from_output::<T>(y);
                $body
            }
        }
    };
}
pub(crate) use with_derivative;

/// `g ← g·f'(y)` in place, `y` the fused op's output (single-threaded, vectorized for
/// the CPU at run time: the epilogue's backward half).
pub(crate) fn scale_by_derivative<T: Element>(epilogue: Epilogue, g: &mut Tensor<T>, y: &Tensor<T>) {
    with_derivative!(Some(epilogue), |d| nn_tensor::simd::vectorized(
        #[inline(always)]
        || match (g.array_mut().as_slice_mut(), y.array().as_slice()) {
            (Some(gs), Some(ys)) => gs.iter_mut().zip(ys).for_each(|(g, &y)| *g *= d(y)),
            _ => Zip::from(g.array_mut()).and(y.array()).for_each(|g, &y| *g *= d(y)),
        }
    ))
}

impl<T: Element> Graph<T> {
    /// Records an element-wise activation `y = f(x)` whose derivative is read from
    /// its output: backward is `g ← g·d(y)` (both spread over nn's thread pool for
    /// large tensors, bit-identical at any thread count).
    fn output_activation(
        &mut self,
        op: &'static str,
        x: Var,
        f: impl Fn(T) -> T + Send + Sync,
        d: impl Fn(T) -> T + Send + Sync + 'static,
    ) -> Result<Var> {
        let i = self.idx(op, x)?;
        let value = self.val(i).map_par(f);
        let y = self.push_op(op, &[i], value, 0, move |ctx, mut g, sink| {
            // Branch-free: the selects inside `d` vectorise and never mispredict on the
            // random sign pattern of activations.
            g.try_zip_apply_par(
                ctx.output(),
                #[inline(always)]
                |g, y| g * d(y),
            )
            .map_err(tensor_err(op))?;
            sink.add(0, g)
        });
        // The rule reads the output only: the input may be released (Graph::release).
        self.declare_reads(y, false, true)?;
        Ok(y)
    }

    /// Rectified linear unit `max(x, 0)`.
    ///
    /// # Gradient
    /// `g·1` where `x > 0`, `g·0` otherwise (0 for a finite `g`). **At exactly `x = 0`
    /// the gradient is 0** (as PyTorch). Uses the output only (`y > 0` exactly where
    /// `x > 0`), so backward reads two arrays, not three.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_relu(&mut self, x: Var) -> Result<Var> {
        self.output_activation("relu", x, relu, |y| relu_derivative(y > T::zero()))
    }
    twin!(relu => try_relu(x: Var) -> Var);

    /// Leaky ReLU: `x` for `x > 0`, `alpha · x` otherwise (Maas et al., 2013).
    ///
    /// # Gradient
    /// `g` where `x > 0`, `alpha · g` otherwise (so `alpha · g` at exactly 0, as PyTorch).
    /// The branch is read from the input, so any `alpha` works.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_leaky_relu(&mut self, x: Var, alpha: T) -> Result<Var> {
        self.unary_op(
            "leaky_relu",
            x,
            move |v| leaky_relu(v, alpha),
            move |g, x, _| g * leaky_relu_derivative(x > T::zero(), alpha),
        )
    }
    twin!(leaky_relu => try_leaky_relu(x: Var, alpha: T) -> Var);

    /// Exponential linear unit: `x` for `x > 0`, `alpha · (eˣ − 1)` otherwise
    /// (Clevert, Unterthiner & Hochreiter, 2016), with `eˣ − 1` computed as `exp_m1`
    /// for accuracy near 0.
    ///
    /// # Gradient
    /// `g` where `x > 0`, `(y + alpha) · g = alpha · eˣ · g` otherwise (so `alpha · g`
    /// at exactly 0). The branch is read from the input, so any `alpha` works.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_elu(&mut self, x: Var, alpha: T) -> Result<Var> {
        self.unary_op("elu", x, move |v| elu(v, alpha), move |g, x, y| g * elu_derivative(x > T::zero(), y, alpha))
    }
    twin!(elu => try_elu(x: Var, alpha: T) -> Var);

    /// Logistic sigmoid `σ(x) = 1 / (1 + e⁻ˣ)`, computed without overflow
    /// ([`nn_tensor::sigmoid`]: for `x < 0` as `eˣ / (1 + eˣ)`).
    ///
    /// # Gradient
    /// `g · (y · (1 − y))` (uses the output). For `x = ±1000`, `y` is exactly 1 or 0,
    /// so the gradient is exactly 0, never NaN.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_sigmoid(&mut self, x: Var) -> Result<Var> {
        self.output_activation("sigmoid", x, nn_tensor::sigmoid, sigmoid_derivative)
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
        self.output_activation("tanh", x, T::tanh, tanh_derivative)
    }
    twin!(tanh => try_tanh(x: Var) -> Var);

    /// Softplus `ln(1 + eˣ)`, computed stably as `max(x, 0) + ln(1 + e^−|x|)` (using
    /// `ln_1p`), so it is finite and accurate for inputs of any magnitude.
    ///
    /// # Gradient
    /// `g · (1 − e^{−y})` (uses the output; `1 − e^{−y} = σ(x)`, computed as
    /// `−exp_m1(−y)`, accurate for outputs of any magnitude).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_softplus(&mut self, x: Var) -> Result<Var> {
        self.output_activation("softplus", x, softplus, softplus_derivative)
    }
    twin!(softplus => try_softplus(x: Var) -> Var);

    /// Applies `epilogue` as its own op: [`Graph::try_relu`], [`Graph::try_leaky_relu`],
    /// [`Graph::try_elu`], [`Graph::try_sigmoid`], [`Graph::try_tanh`] or
    /// [`Graph::try_softplus`] (a parameter converted with [`Element::of_f64`]). The
    /// unfused counterpart of an epilogue: same values and gradients, bit for bit.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_activation(&mut self, x: Var, epilogue: Epilogue) -> Result<Var> {
        match epilogue {
            Epilogue::Relu => self.try_relu(x),
            Epilogue::LeakyRelu(alpha) => self.try_leaky_relu(x, T::of_f64(alpha)),
            Epilogue::Elu(alpha) => self.try_elu(x, T::of_f64(alpha)),
            Epilogue::Sigmoid => self.try_sigmoid(x),
            Epilogue::Tanh => self.try_tanh(x),
            Epilogue::Softplus => self.try_softplus(x),
        }
    }
    twin!(activation => try_activation(x: Var, epilogue: Epilogue) -> Var);
}
