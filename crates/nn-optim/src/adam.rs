//! Adam (Kingma & Ba 2015, Algorithm 1), its AMSGrad variant (Reddi et al. 2018) and
//! AdamW's decoupled weight decay (Loshchilov & Hutter 2019).

use ndarray::Zip;
use nn_tensor::Element;
use serde::{Deserialize, Serialize};

use crate::error::{check, check_non_negative, check_unit_interval, Result};
use crate::optimizer::{shared_optimizer_methods, Optimizer, OptimizerConfig};
use crate::param::{ParamMut, ParamRules};
use crate::state::{Core, SlotSpec};

/// Elements per parallel work item of the Adam update (64 KiB of `f32` per slot).
const PAR_CHUNK: usize = 1 << 14;

/// Matching chunks of a parameter, its gradient and the two moment slots.
type Chunk4<'a, T> = (((&'a mut [T], &'a [T]), &'a mut [T]), &'a mut [T]);

/// Settings of [`Adam`] and AdamW.
///
/// Defaults follow Keras: `learning_rate = 0.001`, `beta_1 = 0.9`, `beta_2 = 0.999`,
/// `epsilon = 1e-7` (PyTorch uses `1e-8`), no AMSGrad, `weight_decay = 0` for Adam
/// ([`AdamConfig::new`]) and `0.004` for AdamW ([`AdamConfig::adamw`]; PyTorch's
/// AdamW uses `0.01`).
///
/// ε is added after the square root of the bias-corrected second moment, as in Kingma
/// & Ba's Algorithm 1 and PyTorch. Keras adds it to the uncorrected `√v` instead
/// ("ε-hat"), so with the same ε the two agree except where √v̂ is comparable to ε.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    /// η, `>= 0`.
    pub learning_rate: f64,
    /// β₁, decay of the first-moment average, in `[0, 1)`.
    pub beta_1: f64,
    /// β₂, decay of the second-moment average, in `[0, 1)`.
    pub beta_2: f64,
    /// ε, added to `√v̂`, `>= 0`.
    pub epsilon: f64,
    /// Use AMSGrad: the running maximum of the second moment in the denominator.
    pub amsgrad: bool,
    /// λ of decoupled weight decay `θ ← θ − η·λ·θ`, `>= 0`.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            learning_rate: 0.001,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    /// Adam with learning rate `learning_rate` and Keras's other defaults.
    pub fn new(learning_rate: f64) -> Self {
        AdamConfig { learning_rate, ..AdamConfig::default() }
    }

    /// AdamW's defaults (Keras): as [`AdamConfig::new`] with `weight_decay = 0.004`.
    pub fn adamw(learning_rate: f64) -> Self {
        AdamConfig { learning_rate, weight_decay: 0.004, ..AdamConfig::default() }
    }

    /// Sets β₁ and β₂.
    pub fn with_betas(mut self, beta_1: f64, beta_2: f64) -> Self {
        self.beta_1 = beta_1;
        self.beta_2 = beta_2;
        self
    }

    /// Sets ε.
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Turns AMSGrad on or off.
    pub fn with_amsgrad(mut self, amsgrad: bool) -> Self {
        self.amsgrad = amsgrad;
        self
    }

    /// Sets the decoupled weight decay λ.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    fn validate(&self, owner: &str) -> Result<()> {
        check_non_negative(owner, "learning_rate", self.learning_rate)?;
        check_unit_interval(owner, "beta_1", self.beta_1)?;
        check_unit_interval(owner, "beta_2", self.beta_2)?;
        check_non_negative(owner, "epsilon", self.epsilon)?;
        check_non_negative(owner, "weight_decay", self.weight_decay)?;
        // With ε = 0 the first update of a zero gradient would be 0/0.
        check(owner, "epsilon", self.epsilon, self.epsilon > 0.0, "epsilon > 0")
    }
}

/// Adam, Kingma & Ba (2015), Algorithm 1, with optional AMSGrad (Reddi et al. 2018)
/// and decoupled weight decay; built with [`Adam::adamw`] it is AdamW (Loshchilov &
/// Hutter 2019) with the decay scaled by the learning rate as in PyTorch.
///
/// For each parameter θ with gradient g, at its `t`-th update:
///
/// ```text
/// θ ← θ − η·λ·θ                          (decoupled weight decay, if λ > 0 and enabled)
/// m ← β₁·m + (1 − β₁)·g
/// v ← β₂·v + (1 − β₂)·g²
/// v_max ← max(v_max, v)                   (AMSGrad only; then v_max replaces v below)
/// m̂ = m / (1 − β₁ᵗ)
/// v̂ = v / (1 − β₂ᵗ)
/// θ ← θ − η·m̂ / (√v̂ + ε)
/// ```
///
/// `t` counts this parameter's updates (PyTorch), so a parameter unfrozen later starts
/// its bias correction afresh. State per parameter: `exp_avg` (m), `exp_avg_sq` (v),
/// and `max_exp_avg_sq` (v_max) with AMSGrad.
///
/// Decoupled decay differs from an L2 penalty: a penalty's gradient `2λθ` goes
/// through `m̂/(√v̂ + ε)` and is normalised away, decay does not (see the crate docs).
#[derive(Debug, Clone)]
pub struct Adam<T: Element> {
    config: AdamConfig,
    adamw: bool,
    core: Core<T>,
}

impl<T: Element> Adam<T> {
    /// Adam with `config`'s settings and default [`ParamRules`].
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter)
    /// for η, ε or λ negative or non-finite, ε = 0, or β₁, β₂ outside `[0, 1)`.
    pub fn new(config: AdamConfig) -> Result<Self> {
        config.validate("adam")?;
        let core = Core::new("adam", config.learning_rate);
        Ok(Adam { config, adamw: false, core })
    }

    /// AdamW: the same update, named `adamw` (in its state and configuration). Start
    /// from [`AdamConfig::adamw`] for AdamW's default weight decay.
    ///
    /// # Errors
    /// As [`Adam::new`].
    pub fn adamw(config: AdamConfig) -> Result<Self> {
        config.validate("adamw")?;
        let core = Core::new("adamw", config.learning_rate);
        Ok(Adam { config, adamw: true, core })
    }

    /// Replaces the per-parameter rules.
    pub fn with_rules(mut self, rules: ParamRules) -> Self {
        self.core.rules = rules;
        self
    }

    fn slots(&self) -> Vec<SlotSpec> {
        let mut s = vec![SlotSpec { name: "exp_avg", init: 0.0 }, SlotSpec { name: "exp_avg_sq", init: 0.0 }];
        if self.config.amsgrad {
            s.push(SlotSpec { name: "max_exp_avg_sq", init: 0.0 });
        }
        s
    }
}

impl<T: Element> Optimizer<T> for Adam<T> {
    fn name(&self) -> &'static str {
        if self.adamw {
            "adamw"
        } else {
            "adam"
        }
    }

    fn config(&self) -> OptimizerConfig {
        if self.adamw {
            OptimizerConfig::AdamW(self.config)
        } else {
            OptimizerConfig::Adam(self.config)
        }
    }

    fn step(&mut self, params: &mut [ParamMut<'_, T>]) -> Result<()> {
        let c = self.config;
        let slots = self.slots();
        let (b1, b2) = (T::of_f64(c.beta_1), T::of_f64(c.beta_2));
        let (one_b1, one_b2) = (T::of_f64(1.0 - c.beta_1), T::of_f64(1.0 - c.beta_2));
        let eps = T::of_f64(c.epsilon);
        self.core.step(params, &slots, c.weight_decay, |ctx, theta, grad, state| {
            let lr = T::of_f64(ctx.lr);
            let t = ctx.step as f64;
            let bc1 = T::of_f64(1.0 - c.beta_1.powf(t));
            let bc2 = T::of_f64(1.0 - c.beta_2.powf(t));
            match state {
                [(_, m), (_, v)] => {
                    let update = |w: &mut T, g: T, m: &mut T, v: &mut T| {
                        *m = b1 * *m + one_b1 * g;
                        *v = b2 * *v + one_b2 * g * g;
                        let m_hat = *m / bc1;
                        let v_hat = *v / bc2;
                        *w -= lr * m_hat / (v_hat.sqrt() + eps);
                    };
                    // Contiguous parameters (all of a model's) take a plain slice loop,
                    // compiled for the CPU's widest vectors; the result is the same
                    // element by element whatever the vector width.
                    let (m, v) = (m.array_mut(), v.array_mut());
                    match (theta.as_slice_mut(), grad.as_slice(), m.as_slice_mut(), v.as_slice_mut()) {
                        (Some(ws), Some(gs), Some(ms), Some(vs)) => {
                            // Large parameters are split into chunks updated in parallel on
                            // nn's pool; each element's update is the same wherever it runs.
                            let chunk = |(((ws, gs), ms), vs): Chunk4<'_, T>| {
                                nn_tensor::simd::vectorized(
                                    #[inline(always)]
                                    || {
                                        for (((w, &g), m), v) in
                                            ws.iter_mut().zip(gs).zip(ms.iter_mut()).zip(vs.iter_mut())
                                        {
                                            update(w, g, m, v);
                                        }
                                    },
                                )
                            };
                            if ws.len() < 2 * PAR_CHUNK || nn_tensor::num_threads() < 2 {
                                chunk((((ws, gs), ms), vs));
                            } else {
                                use rayon::prelude::*;
                                nn_tensor::install(|| {
                                    ws.par_chunks_mut(PAR_CHUNK)
                                        .zip(gs.par_chunks(PAR_CHUNK))
                                        .zip(ms.par_chunks_mut(PAR_CHUNK))
                                        .zip(vs.par_chunks_mut(PAR_CHUNK))
                                        .for_each(chunk)
                                });
                            }
                        }
                        _ => Zip::from(theta).and(grad).and(m).and(v).for_each(|w, &g, m, v| update(w, g, m, v)),
                    }
                }
                [(_, m), (_, v), (_, vmax)] => {
                    Zip::from(theta).and(grad).and(m.array_mut()).and(v.array_mut()).and(vmax.array_mut()).for_each(
                        |w, &g, m, v, vmax| {
                            *m = b1 * *m + one_b1 * g;
                            *v = b2 * *v + one_b2 * g * g;
                            // NaN-propagating maximum: a NaN in v must not be hidden.
                            if v.is_nan() || *v > *vmax {
                                *vmax = *v;
                            }
                            let m_hat = *m / bc1;
                            let v_hat = *vmax / bc2;
                            *w -= lr * m_hat / (v_hat.sqrt() + eps);
                        },
                    );
                }
                _ => unreachable!("adam keeps two or three slots"),
            }
        })
    }

    shared_optimizer_methods!();
}
