//! Optimizer state keyed by parameter name: what a checkpoint saves so that a resumed
//! run continues exactly.

use std::collections::{BTreeMap, HashMap};

use nn_tensor::{Element, Tensor};

use crate::error::{OptimError, Result};
use crate::param::{ParamMut, ParamRules};

/// The state an optimizer keeps for one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamState<T: Element> {
    /// Updates applied to this parameter so far (`t` in the bias corrections of Adam;
    /// it differs from [`OptimizerState::iterations`] for a parameter that was frozen
    /// for a while).
    pub step: u64,
    /// Named tensors shaped like the parameter, in the optimizer's order, using
    /// PyTorch's names: `momentum_buffer` (SGD, RMSprop), `exp_avg`, `exp_avg_sq`,
    /// `max_exp_avg_sq` (Adam, AdamW), `square_avg`, `grad_avg` (RMSprop), `sum`
    /// (Adagrad).
    pub slots: Vec<(String, Tensor<T>)>,
}

impl<T: Element> ParamState<T> {
    /// The slot called `name`, if this optimizer keeps one.
    pub fn slot(&self, name: &str) -> Option<&Tensor<T>> {
        self.slots.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// Everything an optimizer has learnt during a run: the current learning rate (a
/// schedule may have changed it), the number of steps taken, and per-parameter
/// moments keyed by parameter name.
///
/// Saved and loaded with [`save_checkpoint`](crate::save_checkpoint) and
/// [`load_checkpoint`](crate::load_checkpoint); loaded into an optimizer with
/// [`Optimizer::load_state`](crate::Optimizer::load_state), which checks it against
/// the parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState<T: Element> {
    /// The optimizer that wrote it: `sgd`, `adam`, `adamw`, `rmsprop` or `adagrad`.
    pub optimizer: String,
    /// The learning rate in force.
    pub learning_rate: f64,
    /// Calls to [`Optimizer::step`](crate::Optimizer::step) so far (Keras's
    /// `iterations`); the step index a schedule is evaluated at.
    pub iterations: u64,
    /// Per-parameter state, by parameter name. Frozen parameters have none.
    pub params: BTreeMap<String, ParamState<T>>,
}

/// A state slot an optimizer keeps per parameter, and the value it starts from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotSpec {
    pub name: &'static str,
    pub init: f64,
}

/// What the update rule of one parameter is given besides its tensors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepCtx {
    /// The learning rate for this parameter (global rate × its multiplier).
    pub lr: f64,
    /// This parameter's update count, including this one (1 on the first update).
    pub step: u64,
}

/// The machinery every optimizer shares: state, rules, validation, decoupled decay.
#[derive(Debug, Clone)]
pub(crate) struct Core<T: Element> {
    pub state: OptimizerState<T>,
    pub rules: ParamRules,
}

impl<T: Element> Core<T> {
    pub fn new(name: &'static str, learning_rate: f64) -> Self {
        Core {
            state: OptimizerState {
                optimizer: name.to_string(),
                learning_rate,
                iterations: 0,
                params: BTreeMap::new(),
            },
            rules: ParamRules::new(),
        }
    }

    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        crate::error::check_non_negative(&self.state.optimizer, "learning_rate", lr)?;
        self.state.learning_rate = lr;
        Ok(())
    }

    /// One step: validates everything first (so an error leaves parameters and state
    /// untouched), then for each non-frozen parameter applies decoupled weight decay
    /// `θ ← θ·(1 − η·λ)` when enabled for it, then `update`.
    pub fn step<F>(
        &mut self,
        params: &mut [ParamMut<'_, T>],
        slots: &[SlotSpec],
        weight_decay: f64,
        mut update: F,
    ) -> Result<()>
    where
        F: FnMut(StepCtx, &mut ndarray::ArrayD<T>, &ndarray::ArrayD<T>, &mut [(String, Tensor<T>)]),
    {
        crate::param::check_params(params)?;
        let mut settings = Vec::with_capacity(params.len());
        for p in params.iter() {
            let s = self.rules.resolve(p.name);
            if !s.frozen {
                let m = s.lr_multiplier;
                if !(m.is_finite() && m >= 0.0) {
                    crate::error::check_non_negative(&format!("parameter `{}`", p.name), "lr_multiplier", m)?;
                }
                if let Some(st) = self.state.params.get(p.name) {
                    check_slot_shapes(p.name, p.value.shape(), st)?;
                }
            }
            settings.push(s);
        }
        for (p, s) in params.iter_mut().zip(settings) {
            if s.frozen {
                continue;
            }
            if !self.state.params.contains_key(p.name) {
                let fresh = ParamState {
                    step: 0,
                    slots: slots
                        .iter()
                        .map(|sp| (sp.name.to_string(), Tensor::full(p.value.shape(), T::of_f64(sp.init))))
                        .collect(),
                };
                self.state.params.insert(p.name.to_string(), fresh);
            }
            let st = self.state.params.get_mut(p.name).expect("inserted above");
            st.step += 1;
            let lr = self.state.learning_rate * s.lr_multiplier;
            if weight_decay != 0.0 && s.decay {
                // Loshchilov & Hutter decoupled decay, scaled by the learning rate as in
                // PyTorch's AdamW: θ ← θ − η·λ·θ, computed as θ·(1 − η·λ).
                let keep = T::of_f64(1.0 - lr * weight_decay);
                p.value.array_mut().mapv_inplace(|w| w * keep);
            }
            update(StepCtx { lr, step: st.step }, p.value.array_mut(), p.grad.array(), &mut st.slots);
        }
        self.state.iterations += 1;
        Ok(())
    }

    /// Replaces the state after checking it against this optimizer and the parameters.
    pub fn load_state(
        &mut self,
        state: OptimizerState<T>,
        params: &[(&str, &[usize])],
        slots: &[SlotSpec],
    ) -> Result<()> {
        let mismatch = |m: String| Err(OptimError::StateMismatch(m));
        if state.optimizer != self.state.optimizer {
            return mismatch(format!(
                "it was saved by optimizer `{}`, this optimizer is `{}`",
                state.optimizer, self.state.optimizer
            ));
        }
        crate::error::check_non_negative(&state.optimizer, "learning_rate", state.learning_rate)?;
        let mut shapes: HashMap<&str, &[usize]> = HashMap::with_capacity(params.len());
        for &(name, shape) in params {
            if shapes.insert(name, shape).is_some() {
                return Err(OptimError::DuplicateParam { name: name.to_string() });
            }
        }
        let mut params_out = BTreeMap::new();
        for (name, mut ps) in state.params {
            let Some(&shape) = shapes.get(name.as_str()) else {
                return mismatch(format!("it holds parameter `{name}`, which is not among the parameters given"));
            };
            let mut ordered = Vec::with_capacity(slots.len());
            for sp in slots {
                let Some(i) = ps.slots.iter().position(|(n, _)| n == sp.name) else {
                    return mismatch(format!("parameter `{name}` has no `{}` slot", sp.name));
                };
                ordered.push(ps.slots.swap_remove(i));
            }
            if let Some((extra, _)) = ps.slots.first() {
                return mismatch(format!("parameter `{name}` has a `{extra}` slot this optimizer does not keep"));
            }
            ps.slots = ordered;
            check_slot_shapes(&name, shape, &ps)?;
            params_out.insert(name, ps);
        }
        if state.iterations > 0 {
            for &(name, _) in params {
                if !self.rules.resolve(name).frozen && !params_out.contains_key(name) {
                    return mismatch(format!(
                        "parameter `{name}` has no saved state although {} steps were taken",
                        state.iterations
                    ));
                }
            }
        }
        self.state = OptimizerState { params: params_out, ..state };
        Ok(())
    }
}

fn check_slot_shapes<T: Element>(name: &str, shape: &[usize], st: &ParamState<T>) -> Result<()> {
    for (slot, t) in &st.slots {
        if t.shape() != shape {
            return Err(OptimError::StateShape {
                name: name.to_string(),
                slot: slot.clone(),
                param: shape.to_vec(),
                state: t.shape().to_vec(),
            });
        }
    }
    Ok(())
}
