//! Named parameters, their gradients, the naming convention, and per-parameter settings
//! (learning-rate multiplier, frozen, weight decay / penalty on or off).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use nn_tensor::{Element, Tensor};

use crate::error::{OptimError, Result};

/// One trainable parameter as an optimizer sees it: its name, its value (updated in
/// place) and the gradient of the loss with respect to it.
///
/// The gradient is borrowed mutably so that one slice of `ParamMut` serves the whole
/// update: [`Regularizer::apply`](crate::Regularizer::apply) adds the penalty's
/// gradient to it, [`clip_grad_norm`](crate::clip_grad_norm) rescales it, then
/// [`Optimizer::step`](crate::Optimizer::step) reads it. Optimizers never write it.
///
/// # Shapes
/// `grad` must have exactly `value`'s shape (no broadcasting); a mismatch is
/// [`OptimError::GradShape`] naming the parameter and both shapes.
#[derive(Debug)]
pub struct ParamMut<'a, T: Element> {
    /// The parameter's name, e.g. `layers.0.kernel` (see the crate docs' naming convention).
    pub name: &'a str,
    /// The parameter's value, updated in place by a step.
    pub value: &'a mut Tensor<T>,
    /// ∂loss/∂value, same shape as `value`.
    pub grad: &'a mut Tensor<T>,
}

impl<'a, T: Element> ParamMut<'a, T> {
    /// Groups a name, a value and its gradient.
    pub fn new(name: &'a str, value: &'a mut Tensor<T>, grad: &'a mut Tensor<T>) -> Self {
        ParamMut { name, value, grad }
    }

    /// Checks that the gradient has the parameter's shape.
    ///
    /// # Errors
    /// [`OptimError::GradShape`] naming the parameter and both shapes.
    pub fn check_shape(&self) -> Result<()> {
        if self.value.shape() == self.grad.shape() {
            Ok(())
        } else {
            Err(OptimError::GradShape {
                name: self.name.to_string(),
                param: self.value.shape().to_vec(),
                grad: self.grad.shape().to_vec(),
            })
        }
    }
}

/// Pairs parameters with their gradients by name, in the parameters' order (so the
/// order, and with it every result, is deterministic whatever order the gradients
/// come in, e.g. from a `HashMap`).
///
/// ```
/// use nn_optim::bind;
/// use nn_tensor::Tensor;
/// let mut params = vec![("layers.0.kernel".to_string(), Tensor::<f32>::zeros(&[2, 3]))];
/// let mut grads = vec![("layers.0.kernel".to_string(), Tensor::<f32>::ones(&[2, 3]))];
/// let bound = bind(
///     params.iter_mut().map(|(n, t)| (n.as_str(), t)),
///     grads.iter_mut().map(|(n, g)| (n.as_str(), g)),
/// ).unwrap();
/// assert_eq!(bound[0].name, "layers.0.kernel");
/// ```
///
/// With a model (nn-layers), a hand-written training step binds the trainable
/// parameters to the gradients of the step's graph, in this order:
///
/// ```text
/// let mut grads = g.backward(loss)?;             // Gradients, keyed by parameter name
/// let state_updates = std::mem::take(&mut ctx.state_updates);
/// drop(g);                                        // the graph holds the weights' Arcs
/// let mut bound = bind(
///     model.parameters_mut().iter_mut()
///         .filter(|p| p.trainable)                // not BatchNorm's moving statistics
///         .map(|p| (p.name.as_str(), Arc::make_mut(&mut p.value))),
///     grads.iter_mut(),
/// )?;
/// optimizer.step(&mut bound)?;
/// model.apply_state_updates(state_updates)?;    // BatchNorm's moving statistics, last
/// ```
///
/// Drop the graph before `Arc::make_mut`: while it lives it shares every weight, and
/// `make_mut` would copy them all. The `nn` crate's example `03-custom-loop` runs
/// this loop end to end.
///
/// Shapes are not checked here; the consumers ([`Optimizer::step`](crate::Optimizer::step),
/// [`Regularizer::apply`](crate::Regularizer::apply), clipping) check them.
///
/// # Errors
/// [`OptimError::DuplicateParam`] for a name given twice (on either side);
/// [`OptimError::MissingGradient`] for a parameter without gradient (pass only
/// trainable parameters: BatchNorm's `moving_mean`/`moving_variance` have none);
/// [`OptimError::UnknownGradient`] for a gradient naming no parameter.
pub fn bind<'a, T: Element>(
    params: impl IntoIterator<Item = (&'a str, &'a mut Tensor<T>)>,
    grads: impl IntoIterator<Item = (&'a str, &'a mut Tensor<T>)>,
) -> Result<Vec<ParamMut<'a, T>>> {
    let mut by_name: HashMap<&'a str, &'a mut Tensor<T>> = HashMap::new();
    for (name, grad) in grads {
        if by_name.insert(name, grad).is_some() {
            return Err(OptimError::DuplicateParam { name: name.to_string() });
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (name, value) in params {
        if !seen.insert(name) {
            return Err(OptimError::DuplicateParam { name: name.to_string() });
        }
        let grad = by_name.remove(name).ok_or_else(|| OptimError::MissingGradient { name: name.to_string() })?;
        out.push(ParamMut { name, value, grad });
    }
    if let Some(name) = by_name.keys().min() {
        return Err(OptimError::UnknownGradient { name: name.to_string() });
    }
    Ok(out)
}

/// Checks a whole step's input before anything is modified: no repeated name, every
/// gradient shaped like its parameter.
pub(crate) fn check_params<T: Element>(params: &[ParamMut<'_, T>]) -> Result<()> {
    let mut seen = HashSet::with_capacity(params.len());
    for p in params {
        if !seen.insert(p.name) {
            return Err(OptimError::DuplicateParam { name: p.name.to_string() });
        }
        p.check_shape()?;
    }
    Ok(())
}

/// What a parameter is, read from the last `.`-separated part of its name (Keras's
/// weight names, as nn-layers uses them: `layers.{i}.{kind}`).
///
/// | name ends in | kind | trained by default | penalty / weight decay by default |
/// |---|---|---|---|
/// | `kernel` | [`Kernel`](ParamKind::Kernel) | yes | yes |
/// | `recurrent_kernel` | [`RecurrentKernel`](ParamKind::RecurrentKernel) | yes | yes |
/// | `embeddings` | [`Embeddings`](ParamKind::Embeddings) | yes | yes |
/// | `bias` | [`Bias`](ParamKind::Bias) | yes | no |
/// | `gamma` | [`Gamma`](ParamKind::Gamma) (BatchNorm scale) | yes | no |
/// | `beta` | [`Beta`](ParamKind::Beta) (BatchNorm offset) | yes | no |
/// | `moving_mean` | [`MovingMean`](ParamKind::MovingMean) | no (frozen) | no |
/// | `moving_variance` | [`MovingVariance`](ParamKind::MovingVariance) | no (frozen) | no |
/// | anything else | [`Other`](ParamKind::Other) | yes | no |
///
/// Override any of this per parameter with [`ParamRules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// A layer's weight matrix or filter bank (Dense, Conv2D).
    Kernel,
    /// A recurrent layer's hidden-to-hidden weights.
    RecurrentKernel,
    /// An Embedding layer's table.
    Embeddings,
    /// An additive bias.
    Bias,
    /// BatchNorm's learned scale γ.
    Gamma,
    /// BatchNorm's learned offset β.
    Beta,
    /// BatchNorm's running mean (updated by the forward pass, not by gradients).
    MovingMean,
    /// BatchNorm's running variance (updated by the forward pass, not by gradients).
    MovingVariance,
    /// Any other name.
    Other,
}

impl ParamKind {
    /// The kind named by the last `.`-separated part of `name`.
    pub fn of(name: &str) -> ParamKind {
        match name.rsplit('.').next().unwrap_or(name) {
            "kernel" => ParamKind::Kernel,
            "recurrent_kernel" => ParamKind::RecurrentKernel,
            "embeddings" => ParamKind::Embeddings,
            "bias" => ParamKind::Bias,
            "gamma" => ParamKind::Gamma,
            "beta" => ParamKind::Beta,
            "moving_mean" => ParamKind::MovingMean,
            "moving_variance" => ParamKind::MovingVariance,
            _ => ParamKind::Other,
        }
    }

    /// Whether penalties and decoupled weight decay apply by default: kernels,
    /// recurrent kernels and embeddings only.
    pub fn decays_by_default(self) -> bool {
        matches!(self, ParamKind::Kernel | ParamKind::RecurrentKernel | ParamKind::Embeddings)
    }

    /// Whether an optimizer updates it by default: everything but BatchNorm's moving
    /// statistics.
    pub fn is_trainable(self) -> bool {
        !matches!(self, ParamKind::MovingMean | ParamKind::MovingVariance)
    }
}

/// Which parameters a rule of [`ParamRules`] applies to.
#[derive(Clone)]
pub enum ParamSelector {
    /// Exactly this name.
    Exact(String),
    /// Every name starting with this string, e.g. `"layers.0."` for one layer.
    Prefix(String),
    /// Every name of this kind.
    Kind(ParamKind),
    /// Every name for which the function returns true.
    Predicate(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl ParamSelector {
    /// Selects exactly `name`.
    pub fn exact(name: impl Into<String>) -> Self {
        ParamSelector::Exact(name.into())
    }

    /// Selects every name starting with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        ParamSelector::Prefix(prefix.into())
    }

    /// Selects every name of `kind`.
    pub fn kind(kind: ParamKind) -> Self {
        ParamSelector::Kind(kind)
    }

    /// Selects every name for which `f` returns true.
    pub fn predicate(f: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        ParamSelector::Predicate(Arc::new(f))
    }

    /// Whether this selector picks `name`.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            ParamSelector::Exact(n) => n == name,
            ParamSelector::Prefix(p) => name.starts_with(p.as_str()),
            ParamSelector::Kind(k) => ParamKind::of(name) == *k,
            ParamSelector::Predicate(f) => f(name),
        }
    }
}

impl fmt::Debug for ParamSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamSelector::Exact(n) => write!(f, "Exact({n:?})"),
            ParamSelector::Prefix(p) => write!(f, "Prefix({p:?})"),
            ParamSelector::Kind(k) => write!(f, "Kind({k:?})"),
            ParamSelector::Predicate(_) => f.write_str("Predicate(..)"),
        }
    }
}

/// Changes one rule makes; `None` leaves the setting as earlier rules (or the
/// defaults) set it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ParamOverride {
    /// Multiplies the optimizer's learning rate for these parameters (must be finite
    /// and `>= 0`; checked at each step). Also scales their decoupled weight decay,
    /// which is proportional to the learning rate.
    pub lr_multiplier: Option<f64>,
    /// `true`: the optimizer skips them (no state created, no update).
    pub frozen: Option<bool>,
    /// Whether penalties ([`Regularizer`](crate::Regularizer)) and decoupled weight
    /// decay apply.
    pub decay: Option<bool>,
}

/// The settings in force for one parameter, from [`ParamRules::resolve`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSettings {
    /// Factor on the learning rate.
    pub lr_multiplier: f64,
    /// Skipped by optimizers.
    pub frozen: bool,
    /// Penalties and decoupled weight decay apply.
    pub decay: bool,
}

/// Per-parameter settings: an ordered list of (selector, override) rules on top of
/// the defaults of [`ParamKind`]. Later rules win where they set the same field.
///
/// Used for discriminative learning rates (a multiplier per layer), freezing layers
/// while fine-tuning, and choosing which parameters get penalties and weight decay.
///
/// ```
/// use nn_optim::{ParamKind, ParamRules, ParamSelector};
/// let rules = ParamRules::new()
///     .lr_multiplier(ParamSelector::prefix("layers.0."), 0.1) // slower first layer
///     .freeze(ParamSelector::exact("layers.2.kernel"))
///     .decay(ParamSelector::kind(ParamKind::Bias), true); // decay biases too
/// assert_eq!(rules.resolve("layers.0.kernel").lr_multiplier, 0.1);
/// assert!(rules.resolve("layers.2.kernel").frozen);
/// assert!(rules.resolve("layers.1.bias").decay);
/// assert!(!rules.resolve("layers.1.gamma").decay); // BatchNorm: default, no decay
/// assert!(rules.resolve("layers.1.moving_mean").frozen); // default: not trained
/// ```
#[derive(Debug, Clone, Default)]
pub struct ParamRules {
    rules: Vec<(ParamSelector, ParamOverride)>,
}

impl ParamRules {
    /// No rules: every parameter gets its kind's defaults.
    pub fn new() -> Self {
        ParamRules::default()
    }

    /// Adds a rule (applied after the existing ones).
    pub fn with(mut self, selector: ParamSelector, change: ParamOverride) -> Self {
        self.rules.push((selector, change));
        self
    }

    /// Sets the learning-rate multiplier of the selected parameters.
    pub fn lr_multiplier(self, selector: ParamSelector, multiplier: f64) -> Self {
        self.with(selector, ParamOverride { lr_multiplier: Some(multiplier), ..ParamOverride::default() })
    }

    /// Freezes the selected parameters: no state, no update.
    pub fn freeze(self, selector: ParamSelector) -> Self {
        self.with(selector, ParamOverride { frozen: Some(true), ..ParamOverride::default() })
    }

    /// Unfreezes the selected parameters.
    pub fn unfreeze(self, selector: ParamSelector) -> Self {
        self.with(selector, ParamOverride { frozen: Some(false), ..ParamOverride::default() })
    }

    /// Turns penalties and decoupled weight decay on or off for the selected parameters.
    pub fn decay(self, selector: ParamSelector, on: bool) -> Self {
        self.with(selector, ParamOverride { decay: Some(on), ..ParamOverride::default() })
    }

    /// The rules, in the order they apply.
    pub fn rules(&self) -> &[(ParamSelector, ParamOverride)] {
        &self.rules
    }

    /// The settings in force for `name`: its [`ParamKind`] defaults, then every
    /// matching rule in order.
    pub fn resolve(&self, name: &str) -> ParamSettings {
        let kind = ParamKind::of(name);
        let mut s = ParamSettings { lr_multiplier: 1.0, frozen: !kind.is_trainable(), decay: kind.decays_by_default() };
        for (selector, change) in &self.rules {
            if selector.matches(name) {
                if let Some(m) = change.lr_multiplier {
                    s.lr_multiplier = m;
                }
                if let Some(f) = change.frozen {
                    s.frozen = f;
                }
                if let Some(d) = change.decay {
                    s.decay = d;
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_last_name_part() {
        assert_eq!(ParamKind::of("layers.3.kernel"), ParamKind::Kernel);
        assert_eq!(ParamKind::of("layers.3.recurrent_kernel"), ParamKind::RecurrentKernel);
        assert_eq!(ParamKind::of("layers.0.embeddings"), ParamKind::Embeddings);
        assert_eq!(ParamKind::of("layers.1.moving_variance"), ParamKind::MovingVariance);
        assert_eq!(ParamKind::of("kernel"), ParamKind::Kernel);
        assert_eq!(ParamKind::of("layers.1.kernel_2"), ParamKind::Other);
        let r = ParamRules::new();
        for (name, decay, frozen) in [
            ("layers.0.kernel", true, false),
            ("layers.0.recurrent_kernel", true, false),
            ("layers.0.embeddings", true, false),
            ("layers.0.bias", false, false),
            ("layers.1.gamma", false, false),
            ("layers.1.beta", false, false),
            ("layers.1.moving_mean", false, true),
            ("layers.1.moving_variance", false, true),
            ("w", false, false),
        ] {
            let s = r.resolve(name);
            assert_eq!((s.decay, s.frozen, s.lr_multiplier), (decay, frozen, 1.0), "{name}");
        }
    }

    #[test]
    fn later_rules_win_field_by_field() {
        let r = ParamRules::new()
            .lr_multiplier(ParamSelector::prefix("layers.0."), 0.1)
            .freeze(ParamSelector::predicate(|n| n.ends_with("bias")))
            .lr_multiplier(ParamSelector::exact("layers.0.bias"), 0.5)
            .unfreeze(ParamSelector::exact("layers.0.bias"))
            .decay(ParamSelector::kind(ParamKind::Kernel), false);
        assert_eq!(r.resolve("layers.0.kernel"), ParamSettings { lr_multiplier: 0.1, frozen: false, decay: false });
        assert_eq!(r.resolve("layers.0.bias"), ParamSettings { lr_multiplier: 0.5, frozen: false, decay: false });
        assert_eq!(r.resolve("layers.1.bias"), ParamSettings { lr_multiplier: 1.0, frozen: true, decay: false });
        assert_eq!(format!("{:?}", r.rules()[1].0), "Predicate(..)");
    }

    #[test]
    fn bind_pairs_by_name_in_parameter_order() {
        let mut params = [("b".to_string(), Tensor::<f64>::zeros(&[1])), ("a".to_string(), Tensor::zeros(&[2]))];
        let mut grads: HashMap<String, Tensor<f64>> =
            [("a".to_string(), Tensor::ones(&[2])), ("b".to_string(), Tensor::ones(&[1]))].into_iter().collect();
        let bound =
            bind(params.iter_mut().map(|(n, t)| (n.as_str(), t)), grads.iter_mut().map(|(n, g)| (n.as_str(), g)))
                .unwrap();
        let names: Vec<_> = bound.iter().map(|p| p.name).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(bound[1].grad.shape(), &[2]);

        let mut few = [("a".to_string(), Tensor::<f64>::ones(&[2]))];
        let err = bind(params.iter_mut().map(|(n, t)| (n.as_str(), t)), few.iter_mut().map(|(n, g)| (n.as_str(), g)))
            .unwrap_err();
        assert_eq!(err.to_string(), "parameter `b` has no gradient");

        let mut extra = [
            ("a".to_string(), Tensor::<f64>::ones(&[2])),
            ("b".to_string(), Tensor::ones(&[1])),
            ("c".to_string(), Tensor::ones(&[1])),
        ];
        let err = bind(params.iter_mut().map(|(n, t)| (n.as_str(), t)), extra.iter_mut().map(|(n, g)| (n.as_str(), g)))
            .unwrap_err();
        assert_eq!(err.to_string(), "gradient `c` matches no parameter");
    }

    #[test]
    fn shape_errors_name_the_parameter_and_both_shapes() {
        let mut v = Tensor::<f32>::zeros(&[2, 3]);
        let mut g = Tensor::<f32>::zeros(&[3, 2]);
        let p = ParamMut::new("layers.0.kernel", &mut v, &mut g);
        assert_eq!(
            p.check_shape().unwrap_err().to_string(),
            "parameter `layers.0.kernel`: gradient shape [3, 2] differs from parameter shape [2, 3]"
        );
    }
}
