//! Activation layers: Activation, ReLU, LeakyReLU, ELU, Softmax.
//!
//! The serde settings ([`ActivationConfig`], [`LeakyReluConfig`], [`EluConfig`]) live
//! here too; `crate::spec` re-exports them.

use nn_autograd::{Graph, Var};
use nn_tensor::Element;
use serde::{Deserialize, Serialize};

use super::{layer_accessors, Meta};
use crate::activation::Activation;
use crate::error::Result;
use crate::module::{check_param_count, ForwardCtx, Layer};
use crate::spec::LayerSpec;

fn leaky_slope() -> f64 {
    0.3
}
fn one_f64() -> f64 {
    1.0
}

/// Settings of an Activation layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationConfig {
    /// The function.
    pub activation: Activation,
}

/// Settings of LeakyReLU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakyReluConfig {
    /// Slope for `x ≤ 0`. Default 0.3 (Keras's `LeakyReLU` layer).
    #[serde(default = "leaky_slope")]
    pub negative_slope: f64,
}

impl Default for LeakyReluConfig {
    fn default() -> Self {
        LeakyReluConfig { negative_slope: 0.3 }
    }
}

/// Settings of ELU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EluConfig {
    /// `α` in `α·(eˣ − 1)` for `x ≤ 0`. Default 1.
    #[serde(default = "one_f64")]
    pub alpha: f64,
}

impl Default for EluConfig {
    fn default() -> Self {
        EluConfig { alpha: 1.0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Function {
    Named(Activation),
    LeakyRelu(f64),
    Elu(f64),
}

/// An activation as a layer of its own (Keras's `Activation`, `ReLU`, `LeakyReLU`,
/// `ELU`, `Softmax`; sigmoid and tanh through `Activation`). Element-wise, except
/// softmax, which normalises over the last axis. No parameters.
///
/// # Shapes
/// Any shape, unchanged (softmax needs at least 1 axis per sample).
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationLayer {
    meta: Meta,
    function: Function,
}

impl ActivationLayer {
    pub(crate) fn new(meta: Meta, spec: &LayerSpec) -> Result<Self> {
        let function = match *spec {
            LayerSpec::Activation(c) => Function::Named(c.activation),
            LayerSpec::ReLU => Function::Named(Activation::Relu),
            LayerSpec::Softmax => Function::Named(Activation::Softmax),
            LayerSpec::LeakyReLU(c) => {
                if !(c.negative_slope.is_finite() && c.negative_slope >= 0.0) {
                    return Err(meta.config_error(format!(
                        "negative_slope must be finite and non-negative, got {}",
                        c.negative_slope
                    )));
                }
                Function::LeakyRelu(c.negative_slope)
            }
            LayerSpec::ELU(c) => {
                if !c.alpha.is_finite() {
                    return Err(meta.config_error(format!("alpha must be finite, got {}", c.alpha)));
                }
                Function::Elu(c.alpha)
            }
            _ => unreachable!("LayerSpec::build sends only activation specs here"),
        };
        if function == Function::Named(Activation::Softmax) && meta.input_shape.is_empty() {
            return Err(meta.shape_error("[..., classes] (at least 1 axis for softmax)"));
        }
        Ok(ActivationLayer { meta, function })
    }
}

impl<T: Element> Layer<T> for ActivationLayer {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        Ok(match self.function {
            Function::Named(a) => a.apply(g, x)?,
            Function::LeakyRelu(slope) => g.try_leaky_relu(x, T::of_f64(slope))?,
            Function::Elu(alpha) => g.try_elu(x, T::of_f64(alpha))?,
        })
    }

    fn ends_with_softmax(&self) -> bool {
        self.function == Function::Named(Activation::Softmax)
    }

    fn forward_logits(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        if <Self as Layer<T>>::ends_with_softmax(self) {
            check_param_count::<T>(self, params)?;
            Ok(x)
        } else {
            self.forward(g, x, params, ctx)
        }
    }
}
