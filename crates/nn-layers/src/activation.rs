//! Activation functions by their Keras names, applied on a graph; the element-wise
//! ones map to nn-autograd's [`Epilogue`], which Dense and Conv2D fuse into their op.

use nn_autograd::{Epilogue, Graph, Var};
use nn_tensor::Element;
use serde::{Deserialize, Serialize};

/// An element-wise (or, for softmax, per-row) activation, serialised by its Keras
/// name: `"linear"`, `"relu"`, `"leaky_relu"`, `"elu"`, `"sigmoid"`, `"tanh"`,
/// `"softmax"`, `"softplus"`, `"gelu"`, `"gelu_approximate"`.
///
/// | name | formula | derivative convention |
/// |---|---|---|
/// | `linear` | `x` | |
/// | `relu` | `max(x, 0)` | 0 at `x = 0` |
/// | `leaky_relu` | `x` if `x > 0` else `0.2·x` (Keras's `activations.leaky_relu` slope; the `LeakyReLU` layer defaults to 0.3) | `0.2` at 0 |
/// | `elu` | `x` if `x > 0` else `eˣ − 1` (α = 1) | `1` at 0 |
/// | `sigmoid` | `1 / (1 + e⁻ˣ)` | |
/// | `tanh` | `tanh x` | |
/// | `softmax` | `e^{x_i} / Σ_j e^{x_j}` over the last axis, computed stably | |
/// | `softplus` | `ln(1 + eˣ)`, computed stably | |
/// | `gelu` | `x·Φ(x) = ½x(1 + erf(x/√2))` (Hendrycks & Gimpel 2016; Keras's `gelu(x, approximate=False)`) | read from the input |
/// | `gelu_approximate` | `½x(1 + tanh(√(2/π)(x + 0.044715x³)))` (Keras's `gelu(x, approximate=True)`, GPT-2's form) | read from the input |
///
/// GELU is not an [`Epilogue`] (its derivative needs the input): Dense and Conv2D
/// apply it as its own op after their product ([`Graph::try_gelu`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// The identity (Keras's default: no activation).
    #[default]
    Linear,
    /// Rectified linear unit.
    Relu,
    /// Leaky ReLU with negative slope 0.2.
    LeakyRelu,
    /// Exponential linear unit with α = 1.
    Elu,
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
    /// Softplus.
    Softplus,
    /// Exact GELU `x·Φ(x)` (with nn-autograd's `erf`).
    Gelu,
    /// GELU's tanh form (Keras's `approximate=True`).
    GeluApproximate,
}

/// Keras's default negative slope of the `leaky_relu` activation function.
pub const LEAKY_RELU_SLOPE: f64 = 0.2;

impl Activation {
    /// Keras's name.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Elu => "elu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
            Activation::Softplus => "softplus",
            Activation::Gelu => "gelu",
            Activation::GeluApproximate => "gelu_approximate",
        }
    }

    /// The element-wise activation as nn-autograd's [`Epilogue`] (its value and
    /// derivative are defined there, once): leaky_relu with slope
    /// [`LEAKY_RELU_SLOPE`], elu with α = 1. `None` for linear (nothing to apply) and
    /// softmax (not element-wise) and GELU (its derivative needs the input).
    pub fn epilogue(self) -> Option<Epilogue> {
        match self {
            Activation::Linear | Activation::Softmax | Activation::Gelu | Activation::GeluApproximate => None,
            Activation::Relu => Some(Epilogue::Relu),
            Activation::LeakyRelu => Some(Epilogue::LeakyRelu(LEAKY_RELU_SLOPE)),
            Activation::Elu => Some(Epilogue::Elu(1.0)),
            Activation::Sigmoid => Some(Epilogue::Sigmoid),
            Activation::Tanh => Some(Epilogue::Tanh),
            Activation::Softplus => Some(Epilogue::Softplus),
        }
    }

    /// Whether Dense and Conv2D apply it as a separate op after their fused product
    /// (softmax and GELU, which are no [`Epilogue`]); the fusion planner leaves such
    /// a Conv2D unfused.
    pub fn runs_after_product(self) -> bool {
        matches!(self, Activation::Softmax | Activation::Gelu | Activation::GeluApproximate)
    }

    /// Applies the activation to `x` (softmax over `x`'s last axis). `Linear` returns
    /// `x` itself, recording nothing.
    ///
    /// # Errors
    /// [`AutogradError`](nn_autograd::AutogradError) for a `Var` of another graph or a
    /// 0-d input to softmax.
    pub fn apply<T: Element>(self, g: &mut Graph<T>, x: Var) -> nn_autograd::Result<Var> {
        match (self, self.epilogue()) {
            (_, Some(e)) => g.try_activation(x, e),
            (Activation::Gelu, None) => g.try_gelu(x, false),
            (Activation::GeluApproximate, None) => g.try_gelu(x, true),
            (Activation::Softmax, None) => {
                let ndim = g.try_value(x)?.ndim();
                g.try_softmax(x, ndim.saturating_sub(1))
            }
            _ => Ok(x),
        }
    }
}
