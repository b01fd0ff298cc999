//! Adagrad (Duchi, Hazan & Singer 2011), in PyTorch's formulation (`torch.optim.Adagrad`).

use ndarray::Zip;
use nn_tensor::Element;
use serde::{Deserialize, Serialize};

use crate::error::{check, check_non_negative, Result};
use crate::optimizer::{shared_optimizer_methods, Optimizer, OptimizerConfig};
use crate::param::{ParamMut, ParamRules};
use crate::state::{Core, SlotSpec};

/// Settings of [`Adagrad`]. Defaults follow Keras: `learning_rate = 0.001`,
/// `initial_accumulator_value = 0.1`, `epsilon = 1e-7` (PyTorch: `0.01`, `0`, `1e-10`).
///
/// ε is added after the square root (PyTorch); Keras adds it under the square root.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdagradConfig {
    /// η, `>= 0`.
    pub learning_rate: f64,
    /// The value every accumulator starts from, `>= 0`.
    pub initial_accumulator_value: f64,
    /// ε, added to the root, `> 0`.
    pub epsilon: f64,
    /// λ of decoupled weight decay `θ ← θ − η·λ·θ`, `>= 0`.
    pub weight_decay: f64,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig { learning_rate: 0.001, initial_accumulator_value: 0.1, epsilon: 1e-7, weight_decay: 0.0 }
    }
}

impl AdagradConfig {
    /// Adagrad with learning rate `learning_rate` and Keras's other defaults.
    pub fn new(learning_rate: f64) -> Self {
        AdagradConfig { learning_rate, ..AdagradConfig::default() }
    }

    /// Sets the accumulators' starting value.
    pub fn with_initial_accumulator_value(mut self, value: f64) -> Self {
        self.initial_accumulator_value = value;
        self
    }

    /// Sets ε.
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Sets the decoupled weight decay λ.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    fn validate(&self) -> Result<()> {
        check_non_negative("adagrad", "learning_rate", self.learning_rate)?;
        check_non_negative("adagrad", "initial_accumulator_value", self.initial_accumulator_value)?;
        check_non_negative("adagrad", "epsilon", self.epsilon)?;
        check("adagrad", "epsilon", self.epsilon, self.epsilon > 0.0, "epsilon > 0")?;
        check_non_negative("adagrad", "weight_decay", self.weight_decay)
    }
}

/// Adagrad as `torch.optim.Adagrad` computes it (without its `lr_decay`; use a
/// schedule instead).
///
/// For each parameter θ with gradient g:
///
/// ```text
/// θ ← θ − η·λ·θ                 (decoupled weight decay, if λ > 0 and enabled)
/// S ← S + g²                    (S starts at initial_accumulator_value)
/// θ ← θ − η·g / (√S + ε)
/// ```
///
/// State per parameter: `sum` (S).
#[derive(Debug, Clone)]
pub struct Adagrad<T: Element> {
    config: AdagradConfig,
    core: Core<T>,
}

impl<T: Element> Adagrad<T> {
    /// Adagrad with `config`'s settings and default [`ParamRules`].
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter)
    /// for η, the initial accumulator or λ negative or non-finite, or ε not `> 0`.
    pub fn new(config: AdagradConfig) -> Result<Self> {
        config.validate()?;
        let core = Core::new("adagrad", config.learning_rate);
        Ok(Adagrad { config, core })
    }

    /// Replaces the per-parameter rules.
    pub fn with_rules(mut self, rules: ParamRules) -> Self {
        self.core.rules = rules;
        self
    }

    fn slots(&self) -> Vec<SlotSpec> {
        vec![SlotSpec { name: "sum", init: self.config.initial_accumulator_value }]
    }
}

impl<T: Element> Optimizer<T> for Adagrad<T> {
    fn name(&self) -> &'static str {
        "adagrad"
    }

    fn config(&self) -> OptimizerConfig {
        OptimizerConfig::Adagrad(self.config)
    }

    fn step(&mut self, params: &mut [ParamMut<'_, T>]) -> Result<()> {
        let c = self.config;
        let slots = self.slots();
        let eps = T::of_f64(c.epsilon);
        self.core.step(params, &slots, c.weight_decay, |ctx, theta, grad, state| {
            let lr = T::of_f64(ctx.lr);
            let [(_, sum)] = state else { unreachable!("adagrad keeps one slot") };
            Zip::from(theta).and(grad).and(sum.array_mut()).for_each(|w, &g, s| {
                *s += g * g;
                *w -= lr * g / (s.sqrt() + eps);
            });
        })
    }

    shared_optimizer_methods!();
}
