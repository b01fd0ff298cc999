//! Dropout.
//!
//! The serde settings ([`DropoutConfig`]) live here too; `crate::spec` re-exports it.

use nn_autograd::{Graph, Var};
use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Serialize};

use super::{layer_accessors, Meta};
use crate::error::Result;
use crate::module::{check_param_count, ForwardCtx, Layer, Mode};

/// Settings of Dropout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutConfig {
    /// Fraction of inputs zeroed in training, in `[0, 1)`.
    pub rate: f64,
}

/// Inverted dropout (Srivastava et al., 2014, "Dropout: a simple way to prevent
/// neural networks from overfitting", as Keras implements it). In training each
/// element is kept with probability `1 − rate` and kept values are scaled by
/// `1 / (1 − rate)`, so the expected output equals the input; in evaluation the layer
/// is the identity (it returns its input `Var` and records nothing).
///
/// The mask is drawn from [`ForwardCtx::rng`] (a Bernoulli draw per element, in
/// row-major order), so the same seed gives the same masks. No parameters.
///
/// # Shapes
/// Any shape, unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropout {
    meta: Meta,
    config: DropoutConfig,
}

impl Dropout {
    pub(crate) fn new(meta: Meta, config: DropoutConfig) -> Result<Self> {
        if !(0.0..1.0).contains(&config.rate) {
            return Err(meta.config_error(format!("rate must be in [0, 1), got {}", config.rate)));
        }
        Ok(Dropout { meta, config })
    }

    /// The settings.
    pub fn config(&self) -> &DropoutConfig {
        &self.config
    }
}

impl<T: Element> Layer<T> for Dropout {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        if ctx.mode == Mode::Eval || self.config.rate == 0.0 {
            return Ok(x);
        }
        let shape = g.try_value(x)?.shape().to_vec();
        let mask = Tensor::<T>::random_bernoulli(&shape, 1.0 - self.config.rate, ctx.rng)?;
        Ok(g.try_dropout(x, mask, self.config.rate)?)
    }
}
