//! L1 and L2 weight penalties, reported as their own loss term.

use nn_tensor::{Element, Tensor};

use crate::error::{check_non_negative, Result};
use crate::param::{check_params, ParamMut, ParamRules};

/// L1 and L2 penalties on parameters, with Keras's conventions
/// (`keras.regularizers.L1L2`):
///
/// ```text
/// penalty  = l1·Σ|w| + l2·Σw²           (no ½ on the L2 term)
/// gradient = l1·sign(w) + 2·l2·w         (sign(0) = 0)
/// ```
///
/// So `Regularizer::l2(λ)` matches Keras's `l2(λ)`; PyTorch's coupled
/// `weight_decay = λ'` (which adds `λ'·w` to the gradient, i.e. a penalty `½λ'Σw²`)
/// equals `Regularizer::l2(λ'/2)`. Neither is decoupled weight decay (the
/// optimizers' `weight_decay`), which never enters the gradient.
///
/// The penalty is a separate term so the training log can show data loss and
/// penalty apart: [`apply`](Regularizer::apply) returns the penalty value and adds its
/// gradient to each parameter's gradient. It applies to the parameters whose
/// [`ParamRules`] `decay` flag is set: by default kernels, recurrent kernels and
/// embeddings, not biases or BatchNorm parameters.
///
/// Sums are accumulated in `f64` whatever the element type.
#[derive(Debug, Clone)]
pub struct Regularizer {
    l1: f64,
    l2: f64,
    rules: ParamRules,
}

impl Regularizer {
    /// Both penalties, with default rules.
    ///
    /// # Errors
    /// [`OptimError::InvalidHyperparameter`](crate::OptimError::InvalidHyperparameter)
    /// unless `l1` and `l2` are finite and `>= 0`.
    pub fn try_new(l1: f64, l2: f64) -> Result<Self> {
        check_non_negative("regularizer", "l1", l1)?;
        check_non_negative("regularizer", "l2", l2)?;
        Ok(Regularizer { l1, l2, rules: ParamRules::new() })
    }

    /// Panicking twin of [`Regularizer::try_new`].
    #[track_caller]
    pub fn new(l1: f64, l2: f64) -> Self {
        match Self::try_new(l1, l2) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    /// The L1 penalty `λ·Σ|w|`. Panics unless `λ` is finite and `>= 0`.
    #[track_caller]
    pub fn l1(lambda: f64) -> Self {
        Self::new(lambda, 0.0)
    }

    /// The L2 penalty `λ·Σw²` (gradient `2λw`). Panics unless `λ` is finite and `>= 0`.
    #[track_caller]
    pub fn l2(lambda: f64) -> Self {
        Self::new(0.0, lambda)
    }

    /// Replaces the rules deciding which parameters are penalised (their `decay` flag;
    /// `frozen` and `lr_multiplier` are ignored here).
    pub fn with_rules(mut self, rules: ParamRules) -> Self {
        self.rules = rules;
        self
    }

    /// The L1 factor.
    pub fn l1_factor(&self) -> f64 {
        self.l1
    }

    /// The L2 factor.
    pub fn l2_factor(&self) -> f64 {
        self.l2
    }

    /// The rules in force.
    pub fn rules(&self) -> &ParamRules {
        &self.rules
    }

    /// The penalty `l1·Σ|w| + l2·Σw²` over the selected parameters, without touching
    /// gradients (for evaluation).
    pub fn penalty<'a, T: Element>(&self, params: impl IntoIterator<Item = (&'a str, &'a Tensor<T>)>) -> f64 {
        params.into_iter().filter(|(name, _)| self.rules.resolve(name).decay).map(|(_, w)| self.penalty_of(w)).sum()
    }

    fn penalty_of<T: Element>(&self, w: &Tensor<T>) -> f64 {
        let (mut abs, mut sq) = (0.0, 0.0);
        for &x in w.array() {
            let x = x.as_f64();
            abs += x.abs();
            sq += x * x;
        }
        self.l1 * abs + self.l2 * sq
    }

    /// Returns the penalty over the selected parameters and adds its gradient
    /// `l1·sign(w) + 2·l2·w` to their gradients.
    ///
    /// # Errors
    /// [`OptimError::GradShape`](crate::OptimError::GradShape) and
    /// [`OptimError::DuplicateParam`](crate::OptimError::DuplicateParam), checked before
    /// any gradient changes.
    pub fn apply<T: Element>(&self, params: &mut [ParamMut<'_, T>]) -> Result<f64> {
        check_params(params)?;
        let (l1, two_l2) = (T::of_f64(self.l1), T::of_f64(2.0 * self.l2));
        let zero = T::zero();
        let mut total = 0.0;
        for p in params.iter_mut().filter(|p| self.rules.resolve(p.name).decay) {
            total += self.penalty_of(p.value);
            ndarray::Zip::from(p.grad.array_mut()).and(p.value.array()).for_each(|g, &w| {
                let sign = if w > zero {
                    T::one()
                } else if w < zero {
                    -T::one()
                } else {
                    zero
                };
                *g += l1 * sign + two_l2 * w;
            });
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param::ParamSelector;

    #[test]
    fn penalty_and_gradient_follow_the_keras_convention() {
        // w = [1.5, -2, 0]; l1 = 0.1, l2 = 0.01:
        // penalty = 0.1·(1.5 + 2 + 0) + 0.01·(2.25 + 4 + 0) = 0.35 + 0.0625 = 0.4125
        // gradient = 0.1·sign(w) + 0.02·w = [0.1 + 0.03, -0.1 - 0.04, 0] = [0.13, -0.14, 0]
        let r = Regularizer::new(0.1, 0.01);
        let mut w = Tensor::<f64>::from_vec(&[3], vec![1.5, -2.0, 0.0]);
        let mut g = Tensor::<f64>::from_vec(&[3], vec![1.0, 1.0, 1.0]);
        let mut b = Tensor::<f64>::from_vec(&[1], vec![5.0]);
        let mut gb = Tensor::<f64>::zeros(&[1]);
        let mut ps =
            [ParamMut::new("layers.0.kernel", &mut w, &mut g), ParamMut::new("layers.0.bias", &mut b, &mut gb)];
        let penalty = r.apply(&mut ps).unwrap();
        assert!((penalty - 0.4125).abs() < 1e-15);
        let expected = [1.13, 0.86, 1.0];
        for (got, want) in g.to_vec().iter().zip(expected) {
            assert!((got - want).abs() < 1e-15, "{got} vs {want}");
        }
        assert_eq!(gb.to_vec(), vec![0.0], "biases are not penalised by default");
        let k = Tensor::<f64>::from_vec(&[3], vec![1.5, -2.0, 0.0]);
        assert!((r.penalty([("layers.0.kernel", &k), ("layers.0.bias", &b)]) - 0.4125).abs() < 1e-15);
    }

    #[test]
    fn rules_select_what_is_penalised() {
        let r = Regularizer::l2(0.5).with_rules(
            ParamRules::new()
                .decay(ParamSelector::exact("layers.0.bias"), true)
                .decay(ParamSelector::prefix("layers.1."), false),
        );
        let b = Tensor::<f32>::from_vec(&[2], vec![1.0, 2.0]);
        let k1 = Tensor::<f32>::from_vec(&[1], vec![3.0]);
        // 0.5·(1 + 4) from the bias; layers.1.kernel is excluded.
        assert_eq!(r.penalty([("layers.0.bias", &b), ("layers.1.kernel", &k1)]), 2.5);
    }

    #[test]
    fn bad_factors_and_shapes_are_errors() {
        assert!(Regularizer::try_new(-0.1, 0.0).is_err());
        assert!(Regularizer::try_new(0.0, f64::NAN).is_err());
        let r = Regularizer::l1(0.1);
        let mut w = Tensor::<f32>::zeros(&[2]);
        let mut g = Tensor::<f32>::zeros(&[3]);
        let err = r.apply(&mut [ParamMut::new("layers.0.kernel", &mut w, &mut g)]).unwrap_err();
        assert!(err.to_string().contains("layers.0.kernel"));
    }
}
