//! RMSprop (Tieleman & Hinton 2012, lecture 6.5; centered form from Graves 2013,
//! eq. 38–45), in PyTorch's formulation (`torch.optim.RMSprop`).

use ndarray::Zip;
use nn_tensor::Element;
use serde::{Deserialize, Serialize};

use crate::error::{check, check_non_negative, check_unit_interval, Result};
use crate::optimizer::{shared_optimizer_methods, Optimizer, OptimizerConfig};
use crate::param::{ParamMut, ParamRules};
use crate::state::{Core, SlotSpec};

/// Settings of [`RmsProp`]. Defaults follow Keras: `learning_rate = 0.001`,
/// `rho = 0.9`, `momentum = 0`, `epsilon = 1e-7`, not centered (PyTorch: `0.01`,
/// `alpha = 0.99`, `1e-8`).
///
/// ε is added after the square root (PyTorch); Keras adds it under the square root.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmsPropConfig {
    /// η, `>= 0`.
    pub learning_rate: f64,
    /// ρ (PyTorch's `alpha`), decay of the squared-gradient average, in `[0, 1)`.
    pub rho: f64,
    /// μ, `>= 0`; `0` disables the momentum buffer.
    pub momentum: f64,
    /// ε, added to the root, `> 0`.
    pub epsilon: f64,
    /// Divide by an estimate of the gradient's variance instead of its raw second moment.
    pub centered: bool,
    /// λ of decoupled weight decay `θ ← θ − η·λ·θ`, `>= 0`.
    pub weight_decay: f64,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            learning_rate: 0.001,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
            weight_decay: 0.0,
        }
    }
}

impl RmsPropConfig {
    /// RMSprop with learning rate `learning_rate` and Keras's other defaults.
    pub fn new(learning_rate: f64) -> Self {
        RmsPropConfig { learning_rate, ..RmsPropConfig::default() }
    }

    /// Sets ρ.
    pub fn with_rho(mut self, rho: f64) -> Self {
        self.rho = rho;
        self
    }

    /// Sets the momentum μ.
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets ε.
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Turns the centered variant on or off.
    pub fn with_centered(mut self, centered: bool) -> Self {
        self.centered = centered;
        self
    }

    /// Sets the decoupled weight decay λ.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    fn validate(&self) -> Result<()> {
        check_non_negative("rmsprop", "learning_rate", self.learning_rate)?;
        check_unit_interval("rmsprop", "rho", self.rho)?;
        check_non_negative("rmsprop", "momentum", self.momentum)?;
        check_non_negative("rmsprop", "epsilon", self.epsilon)?;
        check("rmsprop", "epsilon", self.epsilon, self.epsilon > 0.0, "epsilon > 0")?;
        check_non_negative("rmsprop", "weight_decay", self.weight_decay)
    }
}

/// RMSprop as `torch.optim.RMSprop` computes it.
///
/// For each parameter θ with gradient g:
///
/// ```text
/// θ ← θ − η·λ·θ                        (decoupled weight decay, if λ > 0 and enabled)
/// s ← ρ·s + (1 − ρ)·g²
/// if centered:  ḡ ← ρ·ḡ + (1 − ρ)·g;   r = √max(s − ḡ², 0) + ε
/// else:         r = √s + ε
/// if μ > 0:     b ← μ·b + g / r;       θ ← θ − η·b
/// else:         θ ← θ − η·g / r
/// ```
///
/// `s − ḡ²` is never negative in exact arithmetic (it is a weighted variance);
/// clamping at 0 only removes the NaN a rounding error could produce.
/// State per parameter: `square_avg` (s), `grad_avg` (ḡ) if centered,
/// `momentum_buffer` (b) if μ > 0.
#[derive(Debug, Clone)]
pub struct RmsProp<T: Element> {
    config: RmsPropConfig,
    core: Core<T>,
}

impl<T: Element> RmsProp<T> {
    /// RMSprop with `config`'s settings and default [`ParamRules`].
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter)
    /// for η, μ or λ negative or non-finite, ε not `> 0`, or ρ outside `[0, 1)`.
    pub fn new(config: RmsPropConfig) -> Result<Self> {
        config.validate()?;
        let core = Core::new("rmsprop", config.learning_rate);
        Ok(RmsProp { config, core })
    }

    /// Replaces the per-parameter rules.
    pub fn with_rules(mut self, rules: ParamRules) -> Self {
        self.core.rules = rules;
        self
    }

    fn slots(&self) -> Vec<SlotSpec> {
        let mut s = vec![SlotSpec { name: "square_avg", init: 0.0 }];
        if self.config.centered {
            s.push(SlotSpec { name: "grad_avg", init: 0.0 });
        }
        if self.config.momentum > 0.0 {
            s.push(SlotSpec { name: "momentum_buffer", init: 0.0 });
        }
        s
    }
}

impl<T: Element> Optimizer<T> for RmsProp<T> {
    fn name(&self) -> &'static str {
        "rmsprop"
    }

    fn config(&self) -> OptimizerConfig {
        OptimizerConfig::RmsProp(self.config)
    }

    fn step(&mut self, params: &mut [ParamMut<'_, T>]) -> Result<()> {
        let c = self.config;
        let slots = self.slots();
        let (rho, one_rho) = (T::of_f64(c.rho), T::of_f64(1.0 - c.rho));
        let (mu, eps, zero) = (T::of_f64(c.momentum), T::of_f64(c.epsilon), T::zero());
        // Keeps NaN (unlike `max`), clamps tiny negative rounding errors.
        let clamp0 = move |x: T| if x < zero { zero } else { x };
        self.core.step(params, &slots, c.weight_decay, |ctx, theta, grad, state| {
            let lr = T::of_f64(ctx.lr);
            match state {
                [(_, s)] => Zip::from(theta).and(grad).and(s.array_mut()).for_each(|w, &g, s| {
                    *s = rho * *s + one_rho * g * g;
                    *w -= lr * g / (s.sqrt() + eps);
                }),
                [(_, s), (_, b)] if !c.centered => {
                    Zip::from(theta).and(grad).and(s.array_mut()).and(b.array_mut()).for_each(|w, &g, s, b| {
                        *s = rho * *s + one_rho * g * g;
                        *b = mu * *b + g / (s.sqrt() + eps);
                        *w -= lr * *b;
                    })
                }
                [(_, s), (_, ga)] => {
                    Zip::from(theta).and(grad).and(s.array_mut()).and(ga.array_mut()).for_each(|w, &g, s, ga| {
                        *s = rho * *s + one_rho * g * g;
                        *ga = rho * *ga + one_rho * g;
                        *w -= lr * g / (clamp0(*s - *ga * *ga).sqrt() + eps);
                    })
                }
                [(_, s), (_, ga), (_, b)] => {
                    Zip::from(theta).and(grad).and(s.array_mut()).and(ga.array_mut()).and(b.array_mut()).for_each(
                        |w, &g, s, ga, b| {
                            *s = rho * *s + one_rho * g * g;
                            *ga = rho * *ga + one_rho * g;
                            *b = mu * *b + g / (clamp0(*s - *ga * *ga).sqrt() + eps);
                            *w -= lr * *b;
                        },
                    )
                }
                _ => unreachable!("rmsprop keeps one to three slots"),
            }
        })
    }

    shared_optimizer_methods!();
}
