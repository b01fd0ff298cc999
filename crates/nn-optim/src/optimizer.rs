//! The [`Optimizer`] trait and the serialisable [`OptimizerConfig`] that builds any of them.

use nn_tensor::Element;
use serde::{Deserialize, Serialize};

use crate::adagrad::{Adagrad, AdagradConfig};
use crate::adam::{Adam, AdamConfig};
use crate::error::Result;
use crate::param::{ParamMut, ParamRules};
use crate::rmsprop::{RmsProp, RmsPropConfig};
use crate::sgd::{Sgd, SgdConfig};
use crate::state::OptimizerState;

/// A gradient-descent optimizer over named parameters.
///
/// The training loop holds its parameters as `(name, Tensor)` pairs and receives the
/// gradients keyed by the same names; it pairs them into [`ParamMut`]s (see
/// [`bind`](crate::bind)) and calls [`step`](Optimizer::step) once per batch. State
/// (moments, step counts) is kept per parameter name, so it can be saved and resumed
/// ([`state`](Optimizer::state), [`load_state`](Optimizer::load_state),
/// [`save_checkpoint`](crate::save_checkpoint)).
///
/// Per-parameter settings come from [`ParamRules`]: frozen parameters are skipped
/// (no state created, no update), others use `learning_rate × lr_multiplier`, and
/// decoupled weight decay applies only where the rules' `decay` flag is set (by
/// default kernels, recurrent kernels and embeddings).
///
/// Objects are usable as `Box<dyn Optimizer<T>>`; [`OptimizerConfig::build`] makes one.
pub trait Optimizer<T: Element>: Send + Sync {
    /// The optimizer's name: `sgd`, `adam`, `adamw`, `rmsprop` or `adagrad`.
    fn name(&self) -> &'static str;

    /// The configuration it was built from (with the learning rate it was built
    /// with; [`learning_rate`](Optimizer::learning_rate) gives the current one).
    fn config(&self) -> OptimizerConfig;

    /// Applies one update to every non-frozen parameter, in slice order.
    ///
    /// Everything is checked before anything changes, so on error neither the
    /// parameters nor the optimizer state were modified.
    ///
    /// # Errors
    /// [`OptimError::GradShape`](crate::OptimError::GradShape) when a gradient's shape
    /// differs from its parameter's; [`OptimError::DuplicateParam`](crate::OptimError::DuplicateParam)
    /// for a name given twice; [`OptimError::StateShape`](crate::OptimError::StateShape) when a
    /// parameter's shape changed since its state was created;
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter) for a
    /// negative or non-finite learning-rate multiplier in the rules.
    fn step(&mut self, params: &mut [ParamMut<'_, T>]) -> Result<()>;

    /// The learning rate η in force.
    fn learning_rate(&self) -> f64;

    /// Sets η (what schedules do between steps).
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter)
    /// unless `lr` is finite and `>= 0`.
    fn set_learning_rate(&mut self, lr: f64) -> Result<()>;

    /// Calls to [`step`](Optimizer::step) so far (Keras's `iterations`): the index a
    /// step-based schedule is evaluated at before the next step.
    fn iterations(&self) -> u64;

    /// The per-parameter rules in force.
    fn rules(&self) -> &ParamRules;

    /// Replaces the per-parameter rules (e.g. to unfreeze layers while fine-tuning).
    fn set_rules(&mut self, rules: ParamRules);

    /// The state: learning rate, iterations, per-parameter moments by name.
    fn state(&self) -> &OptimizerState<T>;

    /// Replaces the state with `state` (e.g. from [`load_checkpoint`](crate::load_checkpoint)),
    /// after checking it against the parameters it will be used with, given as
    /// `(name, shape)` pairs.
    ///
    /// # Errors
    /// [`OptimError::StateMismatch`](crate::OptimError::StateMismatch) when the state was
    /// saved by another optimizer, holds a parameter not in `params`, lacks a slot this
    /// optimizer keeps (or has one it does not), or lacks a non-frozen parameter
    /// although steps were taken; [`OptimError::StateShape`](crate::OptimError::StateShape)
    /// when a slot's shape differs from its parameter's;
    /// [`OptimError::DuplicateParam`](crate::OptimError::DuplicateParam).
    fn load_state(&mut self, state: OptimizerState<T>, params: &[(&str, &[usize])]) -> Result<()>;
}

/// Serialisable description of an optimizer (`{"kind": "adam", "learning_rate": ...}`),
/// stored in checkpoints and buildable into any element type.
///
/// All fields are required when deserialising, so a checkpoint's configuration is
/// never silently completed by defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum OptimizerConfig {
    /// [`Sgd`].
    #[serde(rename = "sgd")]
    Sgd(SgdConfig),
    /// [`Adam`] without the AdamW name (its `weight_decay` is still decoupled).
    #[serde(rename = "adam")]
    Adam(AdamConfig),
    /// [`Adam`] built with [`Adam::adamw`].
    #[serde(rename = "adamw")]
    AdamW(AdamConfig),
    /// [`RmsProp`].
    #[serde(rename = "rmsprop")]
    RmsProp(RmsPropConfig),
    /// [`Adagrad`].
    #[serde(rename = "adagrad")]
    Adagrad(AdagradConfig),
}

impl OptimizerConfig {
    /// The optimizer's name, as [`Optimizer::name`] gives it.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd(_) => "sgd",
            OptimizerConfig::Adam(_) => "adam",
            OptimizerConfig::AdamW(_) => "adamw",
            OptimizerConfig::RmsProp(_) => "rmsprop",
            OptimizerConfig::Adagrad(_) => "adagrad",
        }
    }

    /// The configured (initial) learning rate.
    pub fn learning_rate(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.learning_rate,
            OptimizerConfig::Adam(c) | OptimizerConfig::AdamW(c) => c.learning_rate,
            OptimizerConfig::RmsProp(c) => c.learning_rate,
            OptimizerConfig::Adagrad(c) => c.learning_rate,
        }
    }

    /// Builds the optimizer with the given per-parameter rules.
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter)
    /// as the optimizer's constructor returns it.
    pub fn build<T: Element>(&self, rules: ParamRules) -> Result<Box<dyn Optimizer<T>>> {
        Ok(match self {
            OptimizerConfig::Sgd(c) => Box::new(Sgd::new(*c)?.with_rules(rules)),
            OptimizerConfig::Adam(c) => Box::new(Adam::new(*c)?.with_rules(rules)),
            OptimizerConfig::AdamW(c) => Box::new(Adam::adamw(*c)?.with_rules(rules)),
            OptimizerConfig::RmsProp(c) => Box::new(RmsProp::new(*c)?.with_rules(rules)),
            OptimizerConfig::Adagrad(c) => Box::new(Adagrad::new(*c)?.with_rules(rules)),
        })
    }
}

/// Implements the [`Optimizer`] methods every optimizer shares through its `core`
/// field and its `slots()` method, plus the inherent `with_rules` builder.
macro_rules! shared_optimizer_methods {
    () => {
        fn learning_rate(&self) -> f64 {
            self.core.state.learning_rate
        }

        fn set_learning_rate(&mut self, lr: f64) -> $crate::error::Result<()> {
            self.core.set_learning_rate(lr)
        }

        fn iterations(&self) -> u64 {
            self.core.state.iterations
        }

        fn rules(&self) -> &$crate::param::ParamRules {
            &self.core.rules
        }

        fn set_rules(&mut self, rules: $crate::param::ParamRules) {
            self.core.rules = rules;
        }

        fn state(&self) -> &$crate::state::OptimizerState<T> {
            &self.core.state
        }

        fn load_state(
            &mut self,
            state: $crate::state::OptimizerState<T>,
            params: &[(&str, &[usize])],
        ) -> $crate::error::Result<()> {
            let slots = self.slots();
            self.core.load_state(state, params, &slots)
        }
    };
}

pub(crate) use shared_optimizer_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_serialise_with_a_kind_tag_and_need_every_field() {
        let c = OptimizerConfig::AdamW(AdamConfig::adamw(0.01));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"adamw","learning_rate":0.01,"beta_1":0.9,"beta_2":0.999,"epsilon":1e-7,"amsgrad":false,"weight_decay":0.004}"#
        );
        assert_eq!(serde_json::from_str::<OptimizerConfig>(&json).unwrap(), c);
        let missing = r#"{"kind":"sgd","learning_rate":0.1,"momentum":0.9,"dampening":0.0,"nesterov":false}"#;
        let err = serde_json::from_str::<OptimizerConfig>(missing).unwrap_err();
        assert!(err.to_string().contains("missing field `weight_decay`"), "{err}");
        let unknown = r#"{"kind":"rmsprop","learning_rate":0.1,"rho":0.9,"momentum":0.0,"epsilon":1e-7,"centered":false,"weight_decay":0.0,"alpha":0.9}"#;
        assert!(serde_json::from_str::<OptimizerConfig>(unknown).is_err());
        let opt = OptimizerConfig::RmsProp(RmsPropConfig::new(0.1)).build::<f32>(ParamRules::new()).unwrap();
        assert_eq!((opt.name(), opt.learning_rate()), ("rmsprop", 0.1));
        assert_eq!(opt.config(), OptimizerConfig::RmsProp(RmsPropConfig::new(0.1)));
        assert!(OptimizerConfig::Adagrad(AdagradConfig::new(-1.0)).build::<f64>(ParamRules::new()).is_err());
    }
}
