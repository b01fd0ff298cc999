//! Stochastic gradient descent with momentum, dampening and Nesterov momentum, in
//! PyTorch's formulation (`torch.optim.SGD`).

use ndarray::Zip;
use nn_tensor::Element;
use serde::{Deserialize, Serialize};

use crate::error::{check, check_non_negative, Result};
use crate::optimizer::{shared_optimizer_methods, Optimizer, OptimizerConfig};
use crate::param::{ParamMut, ParamRules};
use crate::state::{Core, SlotSpec};

/// Settings of [`Sgd`]. Defaults follow Keras (`learning_rate = 0.01`, no momentum).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgdConfig {
    /// η, `>= 0`.
    pub learning_rate: f64,
    /// μ, `>= 0`; `0` disables the momentum buffer.
    pub momentum: f64,
    /// τ, in `[0, 1]`: the share of the gradient left out of the momentum buffer.
    pub dampening: f64,
    /// Nesterov momentum (needs `momentum > 0` and `dampening = 0`).
    pub nesterov: bool,
    /// λ of decoupled weight decay `θ ← θ − η·λ·θ` (Keras 3 `weight_decay`), `>= 0`.
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig { learning_rate: 0.01, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 }
    }
}

impl SgdConfig {
    /// Plain gradient descent with learning rate `learning_rate`.
    pub fn new(learning_rate: f64) -> Self {
        SgdConfig { learning_rate, ..SgdConfig::default() }
    }

    /// Sets the momentum μ.
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets the dampening τ.
    pub fn with_dampening(mut self, dampening: f64) -> Self {
        self.dampening = dampening;
        self
    }

    /// Turns Nesterov momentum on or off.
    pub fn with_nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// Sets the decoupled weight decay λ.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    fn validate(&self) -> Result<()> {
        check_non_negative("sgd", "learning_rate", self.learning_rate)?;
        check_non_negative("sgd", "momentum", self.momentum)?;
        let d = self.dampening;
        check("sgd", "dampening", d, (0.0..=1.0).contains(&d), "a value in [0, 1]")?;
        check_non_negative("sgd", "weight_decay", self.weight_decay)?;
        if self.nesterov {
            check("sgd", "momentum", self.momentum, self.momentum > 0.0, "momentum > 0 with nesterov")?;
            check("sgd", "dampening", d, d == 0.0, "dampening = 0 with nesterov")?;
        }
        Ok(())
    }
}

/// Stochastic gradient descent (Robbins & Monro 1951) with momentum (Polyak 1964;
/// Sutskever et al. 2013 for the Nesterov form), as `torch.optim.SGD` computes it.
///
/// For each parameter θ with gradient g, at its `t`-th update:
///
/// ```text
/// θ ← θ − η·λ·θ                    (decoupled weight decay, if λ > 0 and enabled)
/// if μ = 0:  d = g
/// else:      b = g                  if t = 1
///            b = μ·b + (1 − τ)·g    otherwise
///            d = g + μ·b            if nesterov
///            d = b                  otherwise
/// θ ← θ − η·d
/// ```
///
/// With a constant η and τ = 0 this equals Keras's `velocity = μ·v − η·g; θ += v`;
/// the two differ when η changes between steps (PyTorch's buffer does not carry η).
///
/// State per parameter: `momentum_buffer` when μ > 0, nothing otherwise.
#[derive(Debug, Clone)]
pub struct Sgd<T: Element> {
    config: SgdConfig,
    core: Core<T>,
}

impl<T: Element> Sgd<T> {
    /// An optimizer with `config`'s settings and default [`ParamRules`].
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter)
    /// for η, μ or λ negative or non-finite, τ outside `[0, 1]`, or Nesterov without
    /// momentum or with dampening.
    pub fn new(config: SgdConfig) -> Result<Self> {
        config.validate()?;
        let core = Core::new("sgd", config.learning_rate);
        Ok(Sgd { config, core })
    }

    /// Replaces the per-parameter rules.
    pub fn with_rules(mut self, rules: ParamRules) -> Self {
        self.core.rules = rules;
        self
    }

    fn slots(&self) -> Vec<SlotSpec> {
        if self.config.momentum > 0.0 {
            vec![SlotSpec { name: "momentum_buffer", init: 0.0 }]
        } else {
            Vec::new()
        }
    }
}

impl<T: Element> Optimizer<T> for Sgd<T> {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn config(&self) -> OptimizerConfig {
        OptimizerConfig::Sgd(self.config)
    }

    fn step(&mut self, params: &mut [ParamMut<'_, T>]) -> Result<()> {
        let c = self.config;
        let slots = self.slots();
        let mu = T::of_f64(c.momentum);
        let keep = T::of_f64(1.0 - c.dampening);
        self.core.step(params, &slots, c.weight_decay, |ctx, theta, grad, state| {
            let lr = T::of_f64(ctx.lr);
            match state {
                [] => Zip::from(theta).and(grad).for_each(|w, &g| *w -= lr * g),
                [(_, buf)] => {
                    let first = ctx.step == 1;
                    Zip::from(theta).and(grad).and(buf.array_mut()).for_each(|w, &g, b| {
                        *b = if first { g } else { mu * *b + keep * g };
                        let d = if c.nesterov { g + mu * *b } else { *b };
                        *w -= lr * d;
                    });
                }
                _ => unreachable!("sgd keeps at most one slot"),
            }
        })
    }

    shared_optimizer_methods!();
}
