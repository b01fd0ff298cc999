//! Loss functions with Keras's names, defaults and per-sample semantics, each one
//! fused graph operation (or the stable autograd op) with its gradient.
//!
//! ## What "mean" divides by
//!
//! A loss first computes one value per **sample**; the samples are all positions of
//! the output but its last axis (for an output `[batch, d]`: the `batch` rows):
//!
//! - element-wise losses (MSE, MAE, Huber, binary cross-entropy) average over the last
//!   axis, `ℓ_n = (1/d) Σ_j f(p_nj, t_nj)` (Keras's `mean(..., axis=-1)`); a 1-d output
//!   `[batch]` counts each element as a sample (`d = 1`);
//! - categorical losses sum over the classes (the last axis), `ℓ_n = −Σ_k t_nk log q_nk`.
//!
//! Then [`Reduction::Mean`] (the default, Keras's `sum_over_batch_size`) returns
//! `(1/N) Σ_n ℓ_n` with `N` the number of samples (the batch size for `[batch, d]`),
//! which for element-wise losses equals the mean over all `N·d` elements;
//! [`Reduction::Sum`] returns `Σ_n ℓ_n`.
//!
//! ## Probabilities are clamped, and perfect predictions give exactly 0
//!
//! Losses "from probabilities" take `ln(max(p, ε))` with `ε = 1e-7` (Keras's
//! epsilon), and binary cross-entropy takes `ln(max(1 − p, ε))` for its second term,
//! so `p = 0` or `p = 1` gives a finite loss (at most `−ln ε ≈ 16.12` per element).
//! Keras clamps `p` to `[ε, 1 − ε]` instead, so its loss for a perfect prediction is
//! `−ln(1 − ε) ≈ 1e-7`; clamping each logarithm's argument from below only keeps
//! `ln 1 = 0` exact, and a term whose target weight is 0 contributes `0 · ln ε = 0`,
//! so a perfect prediction (hard targets, `p = t`) gives **exactly 0**. Where a clamp
//! is active its gradient is 0 (as Keras's clip).
//!
//! ## Class weights
//!
//! [`WeightedLoss`] (made by [`Loss::with_class_weights`]) weights each sample of a
//! categorical or sparse categorical cross-entropy by the weight `w_c` of its class,
//! as Keras's `fit(class_weight=...)` does through sample weights:
//! [`Reduction::Mean`] returns `(1/N) Σ_n w_{c_n} ℓ_n`, divided by the number of
//! samples `N` (Keras's `sum_over_batch_size`), **not** by `Σ_n w_{c_n}` as PyTorch's
//! `CrossEntropyLoss(weight=w, reduction="mean")` does; [`Reduction::Sum`] returns
//! `Σ_n w_{c_n} ℓ_n`. [`balanced_class_weights`] gives scikit-learn's "balanced"
//! weights.

use ndarray::Zip;
use nn_autograd::{Graph, Var};
use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{LayerError, Result};

/// The clamp of losses from probabilities (Keras's `backend.epsilon()`).
pub const EPSILON: f64 = 1e-7;

/// What a loss compares the model's output with.
#[derive(Debug, Clone, Copy)]
pub enum LossTargets<'a, T: Element = f32> {
    /// One class index per sample (`[N]`, each `< classes`): sparse categorical
    /// cross-entropy; also accepted by categorical cross-entropy (as one-hot rows)
    /// and binary cross-entropy (each 0 or 1, one per output element).
    Classes(&'a [usize]),
    /// Values of the output's shape: regression targets, binary targets in `[0, 1]`,
    /// one-hot or probability rows for categorical cross-entropy. Sparse categorical
    /// cross-entropy also accepts `N` whole numbers (e.g. `[batch]` or `[batch, 1]`).
    Values(&'a Tensor<T>),
}

/// How per-sample losses are combined (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// `(1/N) Σ_n ℓ_n`, N the number of samples (Keras's `sum_over_batch_size`).
    #[default]
    #[serde(alias = "sum_over_batch_size")]
    Mean,
    /// `Σ_n ℓ_n`.
    Sum,
}

fn one() -> f64 {
    1.0
}

/// A loss, serialised with Keras's class name as `"type"` and its settings, e.g.
/// `{"type": "CategoricalCrossentropy", "from_logits": true}`. Settings default as in
/// Keras (`from_logits: false`, `label_smoothing: 0`, Huber's `delta: 1`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "LossRepr", into = "LossRepr")]
pub enum Loss {
    /// `f(p, t) = (p − t)²`, per-sample mean over the last axis.
    MeanSquaredError,
    /// `f(p, t) = |p − t|` (gradient `sign(p − t)`, 0 at 0).
    MeanAbsoluteError,
    /// Huber (1964): `½e²` for `|e| ≤ δ`, `δ·|e| − ½δ²` otherwise, `e = p − t`.
    Huber {
        /// The threshold δ > 0 between the quadratic and linear parts. Default 1.
        delta: f64,
    },
    /// Binary cross-entropy `−t·ln p − (1 − t)·ln(1 − p)` per element, from
    /// probabilities `p` (clamped, see the module docs) or from logits `x` with the
    /// stable form `max(x, 0) − x·t + ln(1 + e^{−|x|})` (`p = σ(x)`).
    BinaryCrossentropy {
        /// Whether the output is logits (no sigmoid applied). Default false.
        from_logits: bool,
        /// Targets become `t·(1 − s) + s/2`. Default 0.
        label_smoothing: f64,
    },
    /// Categorical cross-entropy `−Σ_k t_k ln q_k` per sample with one-hot or
    /// probability targets: from logits through the stable `log_softmax`, or from
    /// probabilities `q = p / Σ_k p_k` (renormalised, as Keras, then clamped).
    CategoricalCrossentropy {
        /// Whether the output is logits (no softmax applied). Default false.
        from_logits: bool,
        /// Targets become `t·(1 − s) + s/K` for K classes. Default 0.
        label_smoothing: f64,
    },
    /// Categorical cross-entropy with class-index targets: `−ln q_{t}` per sample,
    /// from logits (the stable fused op of nn-autograd) or from probabilities. With
    /// label smoothing `s` the target row becomes `(1 − s)·onehot(t) + s/K` for K
    /// classes, so `ℓ = −(1 − s)·ln q_t − (s/K)·Σ_k ln q_k` (PyTorch's
    /// `CrossEntropyLoss(label_smoothing=s)`; the same as categorical cross-entropy
    /// with one-hot targets and the same `s`).
    SparseCategoricalCrossentropy {
        /// Whether the output is logits (no softmax applied). Default false.
        from_logits: bool,
        /// The target row becomes `(1 − s)·onehot + s/K` for K classes; in `[0, 1]`.
        /// Default 0 (left out of the serde form when 0, so files written before this
        /// setting existed read and write unchanged).
        label_smoothing: f64,
    },
}

/// The serde form of [`Loss`]: unit variants become empty struct variants, so that
/// `deny_unknown_fields` rejects settings given to them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum LossRepr {
    MeanSquaredError {},
    MeanAbsoluteError {},
    Huber {
        #[serde(default = "one")]
        delta: f64,
    },
    BinaryCrossentropy {
        #[serde(default)]
        from_logits: bool,
        #[serde(default)]
        label_smoothing: f64,
    },
    CategoricalCrossentropy {
        #[serde(default)]
        from_logits: bool,
        #[serde(default)]
        label_smoothing: f64,
    },
    SparseCategoricalCrossentropy {
        #[serde(default)]
        from_logits: bool,
        #[serde(default, skip_serializing_if = "is_zero")]
        label_smoothing: f64,
    },
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl From<LossRepr> for Loss {
    fn from(r: LossRepr) -> Self {
        match r {
            LossRepr::MeanSquaredError {} => Loss::MeanSquaredError,
            LossRepr::MeanAbsoluteError {} => Loss::MeanAbsoluteError,
            LossRepr::Huber { delta } => Loss::Huber { delta },
            LossRepr::BinaryCrossentropy { from_logits, label_smoothing } => {
                Loss::BinaryCrossentropy { from_logits, label_smoothing }
            }
            LossRepr::CategoricalCrossentropy { from_logits, label_smoothing } => {
                Loss::CategoricalCrossentropy { from_logits, label_smoothing }
            }
            LossRepr::SparseCategoricalCrossentropy { from_logits, label_smoothing } => {
                Loss::SparseCategoricalCrossentropy { from_logits, label_smoothing }
            }
        }
    }
}

impl From<Loss> for LossRepr {
    fn from(l: Loss) -> Self {
        match l {
            Loss::MeanSquaredError => LossRepr::MeanSquaredError {},
            Loss::MeanAbsoluteError => LossRepr::MeanAbsoluteError {},
            Loss::Huber { delta } => LossRepr::Huber { delta },
            Loss::BinaryCrossentropy { from_logits, label_smoothing } => {
                LossRepr::BinaryCrossentropy { from_logits, label_smoothing }
            }
            Loss::CategoricalCrossentropy { from_logits, label_smoothing } => {
                LossRepr::CategoricalCrossentropy { from_logits, label_smoothing }
            }
            Loss::SparseCategoricalCrossentropy { from_logits, label_smoothing } => {
                LossRepr::SparseCategoricalCrossentropy { from_logits, label_smoothing }
            }
        }
    }
}

impl Loss {
    /// Keras's function name: `"mean_squared_error"`, `"mean_absolute_error"`,
    /// `"huber"`, `"binary_crossentropy"`, `"categorical_crossentropy"`,
    /// `"sparse_categorical_crossentropy"`.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::MeanSquaredError => "mean_squared_error",
            Loss::MeanAbsoluteError => "mean_absolute_error",
            Loss::Huber { .. } => "huber",
            Loss::BinaryCrossentropy { .. } => "binary_crossentropy",
            Loss::CategoricalCrossentropy { .. } => "categorical_crossentropy",
            Loss::SparseCategoricalCrossentropy { .. } => "sparse_categorical_crossentropy",
        }
    }

    /// Whether the loss expects logits.
    pub fn from_logits(&self) -> bool {
        match *self {
            Loss::BinaryCrossentropy { from_logits, .. }
            | Loss::CategoricalCrossentropy { from_logits, .. }
            | Loss::SparseCategoricalCrossentropy { from_logits, .. } => from_logits,
            _ => false,
        }
    }

    /// For a categorical loss from probabilities, the same loss from logits: use it
    /// with [`Sequential::forward_logits`](crate::Sequential::forward_logits) when the
    /// model [ends with a softmax](crate::Sequential::ends_with_softmax), for a stable
    /// loss and gradient. `None` for the others.
    pub fn with_logits(&self) -> Option<Loss> {
        match *self {
            Loss::CategoricalCrossentropy { from_logits: false, label_smoothing } => {
                Some(Loss::CategoricalCrossentropy { from_logits: true, label_smoothing })
            }
            Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing } => {
                Some(Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing })
            }
            _ => None,
        }
    }

    /// The loss with [`Reduction::Mean`], as a 0-d `Var`. `output` is what the model
    /// produced: logits when `from_logits`, probabilities (or regression values)
    /// otherwise.
    ///
    /// # Errors
    /// As [`Loss::compute_with`].
    pub fn compute<T: Element>(&self, g: &mut Graph<T>, output: Var, targets: &LossTargets<'_, T>) -> Result<Var> {
        self.compute_with(g, output, targets, Reduction::Mean)
    }

    /// The loss with `reduction`, as a 0-d `Var` (see the [module docs](self) for what
    /// is averaged over what).
    ///
    /// # Shapes
    /// - element-wise losses: `output` any non-empty shape, `Values` targets of the
    ///   same shape;
    /// - categorical: `output: [..., classes]` (rank ≥ 2), targets `[..., classes]`
    ///   (`Values`) or `N` class indices (`Classes`), N the product of the other axes.
    ///
    /// # Errors
    /// [`LayerError::Loss`] naming the loss for targets of the wrong shape or kind,
    /// a class index out of range, a non-binary class for binary cross-entropy,
    /// `label_smoothing` outside `[0, 1]` or a `delta` that is not positive;
    /// [`LayerError::Autograd`] for a `Var` of another graph.
    pub fn compute_with<T: Element>(
        &self,
        g: &mut Graph<T>,
        output: Var,
        targets: &LossTargets<'_, T>,
        reduction: Reduction,
    ) -> Result<Var> {
        self.compute_inner(g, output, targets, reduction, None)
    }

    /// This loss with per-class weights `weights[c]` (Keras's `class_weight`): see
    /// [`WeightedLoss`]. Only categorical and sparse categorical cross-entropy accept
    /// class weights; the weights are checked when the loss is computed.
    pub fn with_class_weights(self, weights: Vec<f64>) -> WeightedLoss {
        WeightedLoss { loss: self, class_weights: weights }
    }

    /// [`Loss::compute_with`], with each sample's loss multiplied by the weight of its
    /// class when `class_weights` is given (checked here: one finite weight ≥ 0 per
    /// class, categorical losses only).
    fn compute_inner<T: Element>(
        &self,
        g: &mut Graph<T>,
        output: Var,
        targets: &LossTargets<'_, T>,
        reduction: Reduction,
        class_weights: Option<&[f64]>,
    ) -> Result<Var> {
        let name = self.name();
        let err = |message: String| LayerError::Loss { loss: name, message };
        let shape = g.try_value(output)?.shape().to_vec();
        if shape.iter().product::<usize>() == 0 {
            return Err(err(format!("the output has shape {shape:?}, with no element")));
        }
        if class_weights.is_some()
            && !matches!(self, Loss::CategoricalCrossentropy { .. } | Loss::SparseCategoricalCrossentropy { .. })
        {
            return Err(
                err("class weights apply to categorical and sparse categorical cross-entropy only".to_string()),
            );
        }
        match *self {
            Loss::MeanSquaredError => {
                let t = values(name, targets, &shape)?;
                let two = T::of_f64(2.0);
                pointwise(g, name, output, t, reduction, |p, t| (p - t) * (p - t), move |p, t| two * (p - t))
            }
            Loss::MeanAbsoluteError => {
                let t = values(name, targets, &shape)?;
                pointwise(g, name, output, t, reduction, |p, t| (p - t).abs(), |p, t| sign(p - t))
            }
            Loss::Huber { delta } => {
                if !(delta.is_finite() && delta > 0.0) {
                    return Err(err(format!("delta must be positive and finite, got {delta}")));
                }
                let t = values(name, targets, &shape)?;
                let (d, half) = (T::of_f64(delta), T::of_f64(0.5));
                pointwise(
                    g,
                    name,
                    output,
                    t,
                    reduction,
                    move |p, t| {
                        let e = (p - t).abs();
                        if e <= d {
                            half * e * e
                        } else {
                            d * e - half * d * d
                        }
                    },
                    move |p, t| {
                        let e = p - t;
                        if e.abs() <= d {
                            e
                        } else {
                            d * sign(e)
                        }
                    },
                )
            }
            Loss::BinaryCrossentropy { from_logits, label_smoothing } => {
                check_smoothing(name, label_smoothing)?;
                let mut t = binary_targets(name, targets, &shape)?;
                if label_smoothing > 0.0 {
                    let (keep, add) = (T::of_f64(1.0 - label_smoothing), T::of_f64(0.5 * label_smoothing));
                    t.map_inplace(|v| v * keep + add);
                }
                if from_logits {
                    pointwise(
                        g,
                        name,
                        output,
                        t,
                        reduction,
                        |x, t| x.max(T::zero()) - x * t + (-x.abs()).exp().ln_1p(),
                        |x, t| nn_tensor::sigmoid(x) - t,
                    )
                } else {
                    let eps = T::of_f64(EPSILON);
                    pointwise(
                        g,
                        name,
                        output,
                        t,
                        reduction,
                        move |p, t| -(t * p.max(eps).ln() + (T::one() - t) * (T::one() - p).max(eps).ln()),
                        move |p, t| {
                            let q = T::one() - p;
                            let a = if p >= eps { -t / p } else { T::zero() };
                            let b = if q >= eps { (T::one() - t) / q } else { T::zero() };
                            a + b
                        },
                    )
                }
            }
            Loss::CategoricalCrossentropy { from_logits, label_smoothing } => {
                check_smoothing(name, label_smoothing)?;
                let (rows, classes) = as_rows(name, &shape)?;
                let mut t = match targets {
                    LossTargets::Values(v) => {
                        if v.shape() != shape.as_slice() {
                            return Err(err(format!(
                                "targets have shape {:?}, the output has shape {shape:?}; give one-hot or probability \
                                 rows of the output's shape",
                                v.shape()
                            )));
                        }
                        v.to_contiguous().try_into_reshape(&[rows, classes])?
                    }
                    LossTargets::Classes(c) => one_hot(name, c, rows, classes)?,
                };
                // Each row's class: its index, or the first largest target (Keras's argmax).
                let row_classes: Option<Vec<usize>> = class_weights.map(|_| match targets {
                    LossTargets::Classes(c) => c.to_vec(),
                    LossTargets::Values(_) => argmax_rows(&t, classes),
                });
                smooth_rows(&mut t, label_smoothing, classes);
                if let (Some(w), Some(c)) = (class_weights, &row_classes) {
                    scale_rows(&mut t, &sample_weights(name, w, c, classes)?, classes);
                }
                let out2 = if shape.len() == 2 { output } else { g.try_reshape(output, &[rows, classes])? };
                if from_logits {
                    softmax_cross_entropy(g, name, out2, t, reduction)
                } else {
                    probability_cross_entropy(g, name, out2, t, reduction)
                }
            }
            Loss::SparseCategoricalCrossentropy { from_logits, label_smoothing } => {
                let (rows, classes) = as_rows(name, &shape)?;
                let owned;
                let c: &[usize] = match targets {
                    LossTargets::Classes(c) => c,
                    LossTargets::Values(v) => {
                        owned = class_values(name, v, rows)?;
                        &owned
                    }
                };
                if c.len() != rows {
                    return Err(err(format!(
                        "{} class targets given for {rows} samples (output shape {shape:?})",
                        c.len()
                    )));
                }
                if let Some((row, &bad)) = c.iter().enumerate().find(|(_, &k)| k >= classes) {
                    return Err(err(format!(
                        "target class {bad} of sample {row} is out of range for {classes} classes"
                    )));
                }
                check_smoothing(name, label_smoothing)?;
                let weights = match class_weights {
                    Some(w) => Some(sample_weights::<T>(name, w, c, classes)?),
                    None => None,
                };
                if from_logits && label_smoothing == 0.0 {
                    // The fused op, which takes `[..., classes]` as rows itself (no
                    // reshape copy of the logits); its `Mean` divides by the row count,
                    // weights or not.
                    let r = match reduction {
                        Reduction::Mean => nn_autograd::Reduction::Mean,
                        Reduction::Sum => nn_autograd::Reduction::Sum,
                    };
                    Ok(g.try_cross_entropy_with(output, c, weights.as_deref(), r)?)
                } else {
                    let out2 = if shape.len() == 2 { output } else { g.try_reshape(output, &[rows, classes])? };
                    let mut t = one_hot(name, c, rows, classes)?;
                    smooth_rows(&mut t, label_smoothing, classes);
                    if let Some(w) = &weights {
                        scale_rows(&mut t, w, classes);
                    }
                    if from_logits {
                        softmax_cross_entropy(g, name, out2, t, reduction)
                    } else {
                        probability_cross_entropy(g, name, out2, t, reduction)
                    }
                }
            }
        }
    }
}

/// A categorical or sparse categorical cross-entropy whose samples are weighted by
/// their class (Keras's `Model.fit(class_weight=...)`): sample `n` of class `c_n`
/// contributes `w_{c_n} · ℓ_n`, with `ℓ_n` the unweighted per-sample loss of
/// [`Loss`] (label smoothing included).
///
/// - [`Reduction::Mean`]: `(1/N) Σ_n w_{c_n} ℓ_n`, divided by the number of samples
///   `N` as Keras's `sum_over_batch_size` does. PyTorch's
///   `CrossEntropyLoss(weight=w, reduction="mean")` divides by `Σ_n w_{c_n}` instead,
///   so its value is this one times `N / Σ_n w_{c_n}`.
/// - [`Reduction::Sum`]: `Σ_n w_{c_n} ℓ_n`.
///
/// The class of a sample is its index for [`LossTargets::Classes`] (and for the
/// whole-number targets of sparse categorical cross-entropy); for one-hot or
/// probability rows ([`LossTargets::Values`], categorical cross-entropy) it is the
/// row's first largest target, as Keras takes `argmax(y)`. With label smoothing the
/// smoothed row is weighted by the weight of its (hard) class.
///
/// Serialised as `{"loss": {"type": "SparseCategoricalCrossentropy", ...},
/// "class_weights": [1.0, 2.5, ...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedLoss {
    /// The loss: [`Loss::CategoricalCrossentropy`] or
    /// [`Loss::SparseCategoricalCrossentropy`].
    pub loss: Loss,
    /// One finite weight `≥ 0` per class (`class_weights[c]` for class `c`); its
    /// length must be the number of classes (the output's last axis).
    pub class_weights: Vec<f64>,
}

impl WeightedLoss {
    /// Keras's function name of the underlying loss ([`Loss::name`]).
    pub fn name(&self) -> &'static str {
        self.loss.name()
    }

    /// For a loss from probabilities, the same weighted loss from logits (see
    /// [`Loss::with_logits`]); `None` when the loss already takes logits.
    pub fn with_logits(&self) -> Option<WeightedLoss> {
        self.loss.with_logits().map(|loss| WeightedLoss { loss, class_weights: self.class_weights.clone() })
    }

    /// The weighted loss with [`Reduction::Mean`] (divided by the number of samples),
    /// as a 0-d `Var`.
    ///
    /// # Errors
    /// As [`WeightedLoss::compute_with`].
    pub fn compute<T: Element>(&self, g: &mut Graph<T>, output: Var, targets: &LossTargets<'_, T>) -> Result<Var> {
        self.compute_with(g, output, targets, Reduction::Mean)
    }

    /// The weighted loss with `reduction`, as a 0-d `Var`.
    ///
    /// # Shapes
    /// `output: [..., classes]` (rank ≥ 2); targets as for [`Loss::compute_with`];
    /// `class_weights: [classes]`.
    ///
    /// # Errors
    /// [`LayerError::Loss`] naming the loss for a loss other than categorical or
    /// sparse categorical cross-entropy, a number of class weights other than the
    /// number of classes, a weight that is negative or not finite, and every error of
    /// [`Loss::compute_with`].
    pub fn compute_with<T: Element>(
        &self,
        g: &mut Graph<T>,
        output: Var,
        targets: &LossTargets<'_, T>,
        reduction: Reduction,
    ) -> Result<Var> {
        self.loss.compute_inner(g, output, targets, reduction, Some(&self.class_weights))
    }
}

/// Class weights that balance the classes, scikit-learn's
/// `compute_class_weight("balanced")`: `w_c = n_samples / (n_classes · count_c)`, with
/// `n_samples = Σ_c count_c` and `n_classes` the number of classes that occur
/// (`count_c > 0`). A class with `count_c = 0` gets weight 0 (scikit-learn refuses
/// classes absent from the data instead); leaving it out of `n_classes` keeps
/// `Σ_c w_c · count_c = n_samples`, so the weighted loss stays on the scale of the
/// unweighted one. All-zero counts give all-zero weights.
///
/// `counts[c]` is the number of training samples of class `c`; the result has the
/// same length, ready for [`Loss::with_class_weights`].
pub fn balanced_class_weights(counts: &[usize]) -> Vec<f64> {
    let n_samples: usize = counts.iter().sum();
    let n_classes = counts.iter().filter(|&&c| c > 0).count();
    counts.iter().map(|&c| if c == 0 { 0.0 } else { n_samples as f64 / (n_classes as f64 * c as f64) }).collect()
}

/// `sign(x)`, 0 at 0.
fn sign<T: Element>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        T::zero()
    }
}

fn check_smoothing(loss: &'static str, s: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&s) {
        return Err(LayerError::Loss { loss, message: format!("label_smoothing must be in [0, 1], got {s}") });
    }
    Ok(())
}

/// Label smoothing of target rows `[rows, classes]`: `t·(1 − s) + s/K`.
fn smooth_rows<T: Element>(t: &mut Tensor<T>, s: f64, classes: usize) {
    if s > 0.0 {
        let (keep, add) = (T::of_f64(1.0 - s), T::of_f64(s / classes as f64));
        t.map_inplace(|v| v * keep + add);
    }
}

/// Multiplies row `r` of the contiguous `[rows, classes]` targets by `w[r]`: the
/// cross-entropy `−Σ_k t_k ln q_k` and its gradient are linear in the targets, so
/// this weights sample `r`'s loss and gradient by `w[r]`.
fn scale_rows<T: Element>(t: &mut Tensor<T>, w: &[T], classes: usize) {
    let ts = t.as_slice_mut().expect("contiguous targets");
    for (row, &wr) in ts.chunks_exact_mut(classes).zip(w) {
        row.iter_mut().for_each(|v| *v *= wr);
    }
}

/// The index of each row's first largest value, for `[rows, classes]` targets.
fn argmax_rows<T: Element>(t: &Tensor<T>, classes: usize) -> Vec<usize> {
    let ts = t.as_slice().expect("contiguous targets");
    ts.chunks_exact(classes)
        .map(|row| row.iter().enumerate().fold(0, |best, (k, &v)| if v > row[best] { k } else { best }))
        .collect()
}

/// Per-sample weights `w[c_n]` from class weights, checked: one finite weight ≥ 0 per
/// class.
fn sample_weights<T: Element>(loss: &'static str, w: &[f64], c: &[usize], classes: usize) -> Result<Vec<T>> {
    if w.len() != classes {
        return Err(LayerError::Loss {
            loss,
            message: format!("{} class weights given for {classes} classes", w.len()),
        });
    }
    if let Some((k, bad)) = w.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
        return Err(LayerError::Loss {
            loss,
            message: format!("class weight {bad} of class {k} is not finite and ≥ 0"),
        });
    }
    Ok(c.iter().map(|&k| T::of_f64(w[k])).collect())
}

/// `[..., classes]` as `(rows, classes)`; rank ≥ 2.
fn as_rows(loss: &'static str, shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(LayerError::Loss {
            loss,
            message: format!("expected an output [batch, ..., classes] (at least 2 axes), got shape {shape:?}"),
        });
    }
    let classes = shape[shape.len() - 1];
    Ok((shape.iter().product::<usize>() / classes, classes))
}

/// `Values` targets of exactly `shape`, contiguous.
fn values<T: Element>(loss: &'static str, targets: &LossTargets<'_, T>, shape: &[usize]) -> Result<Tensor<T>> {
    match targets {
        LossTargets::Values(v) if v.shape() == shape => Ok(v.to_contiguous()),
        LossTargets::Values(v) => Err(LayerError::Loss {
            loss,
            message: format!("targets have shape {:?}, the output has shape {shape:?}", v.shape()),
        }),
        LossTargets::Classes(_) => Err(LayerError::Loss {
            loss,
            message: format!(
                "needs target values (LossTargets::Values) of the output's shape {shape:?}, not class indices"
            ),
        }),
    }
}

/// Binary targets of `shape`: `Values` as given, or `Classes` that are all 0 or 1.
fn binary_targets<T: Element>(loss: &'static str, targets: &LossTargets<'_, T>, shape: &[usize]) -> Result<Tensor<T>> {
    match targets {
        LossTargets::Classes(c) => {
            let n: usize = shape.iter().product();
            if c.len() != n {
                return Err(LayerError::Loss {
                    loss,
                    message: format!("{} class targets given for an output of shape {shape:?} ({n} elements)", c.len()),
                });
            }
            if let Some((i, &bad)) = c.iter().enumerate().find(|(_, &k)| k > 1) {
                return Err(LayerError::Loss {
                    loss,
                    message: format!("target {bad} at {i} is not a binary class (0 or 1)"),
                });
            }
            Ok(Tensor::try_from_vec(shape, c.iter().map(|&k| T::of_f64(k as f64)).collect())?)
        }
        _ => values(loss, targets, shape),
    }
}

/// One-hot rows `[rows, classes]` from class indices.
fn one_hot<T: Element>(loss: &'static str, c: &[usize], rows: usize, classes: usize) -> Result<Tensor<T>> {
    if c.len() != rows {
        return Err(LayerError::Loss { loss, message: format!("{} class targets given for {rows} samples", c.len()) });
    }
    let mut t = vec![T::zero(); rows * classes];
    for (r, &k) in c.iter().enumerate() {
        if k >= classes {
            return Err(LayerError::Loss {
                loss,
                message: format!("target class {k} of sample {r} is out of range for {classes} classes"),
            });
        }
        t[r * classes + k] = T::one();
    }
    Ok(Tensor::try_from_vec(&[rows, classes], t)?)
}

/// Class indices from `rows` whole numbers.
fn class_values<T: Element>(loss: &'static str, v: &Tensor<T>, rows: usize) -> Result<Vec<usize>> {
    if v.len() != rows {
        return Err(LayerError::Loss {
            loss,
            message: format!("targets of shape {:?} hold {} values for {rows} samples", v.shape(), v.len()),
        });
    }
    v.array()
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = x.as_f64();
            if f >= 0.0 && f.fract() == 0.0 && f < usize::MAX as f64 {
                Ok(f as usize)
            } else {
                Err(LayerError::Loss { loss, message: format!("target {x} of sample {i} is not a class index") })
            }
        })
        .collect()
}

/// The count of samples and the divisor of the total for an element-wise loss.
fn pointwise_divisor(shape: &[usize], reduction: Reduction) -> f64 {
    let n: usize = shape.iter().product();
    let d = if shape.len() >= 2 { shape[shape.len() - 1] } else { 1 };
    match reduction {
        Reduction::Mean => n as f64,
        Reduction::Sum => d as f64,
    }
}

/// An element-wise loss as one graph op: `value = Σ f(p, t) / divisor` (row-major
/// sum), gradient `g · df(p, t) / divisor`.
fn pointwise<T: Element>(
    g: &mut Graph<T>,
    loss: &'static str,
    output: Var,
    targets: Tensor<T>,
    reduction: Reduction,
    f: impl Fn(T, T) -> T,
    df: impl Fn(T, T) -> T + Send + Sync + 'static,
) -> Result<Var> {
    let p = g.try_value(output)?;
    let divisor = T::of_f64(pointwise_divisor(p.shape(), reduction));
    let total = Zip::from(p.array()).and(targets.array()).fold(T::zero(), |s, &p, &t| s + f(p, t));
    let value = Tensor::scalar(total / divisor);
    Ok(g.try_custom(loss, &[output], value, move |ctx, grad, sink| {
        let up = grad.item() / divisor;
        let dp = Zip::from(ctx.input(0).array()).and(targets.array()).map_collect(|&p, &t| up * df(p, t));
        sink.add(0, Tensor::from(dp))
    })?)
}

/// Cross-entropy of logits `[rows, classes]` against target rows: per row
/// `ℓ = −Σ_k t_k · log_softmax(z)_k` (stable log-softmax). Gradient per row:
/// `softmax(z) · Σ_k t_k − t` (Goodfellow, Bengio & Courville, *Deep Learning*, §6.2.2.3).
fn softmax_cross_entropy<T: Element>(
    g: &mut Graph<T>,
    loss: &'static str,
    logits: Var,
    targets: Tensor<T>,
    reduction: Reduction,
) -> Result<Var> {
    let z = g.try_value(logits)?;
    let rows = z.shape()[0];
    let logp = z.try_log_softmax(1)?;
    let total = Zip::from(logp.array()).and(targets.array()).fold(T::zero(), |s, &l, &t| s - t * l);
    let divisor = T::of_f64(match reduction {
        Reduction::Mean => rows as f64,
        Reduction::Sum => 1.0,
    });
    let value = Tensor::scalar(total / divisor);
    Ok(g.try_custom(loss, &[logits], value, move |_, grad, sink| {
        let up = grad.item() / divisor;
        let mut dz = logp.to_contiguous();
        let t = targets.array();
        for (r, mut row) in dz.array_mut().outer_iter_mut().enumerate() {
            let mass = t.index_axis(ndarray::Axis(0), r).sum();
            row.zip_mut_with(&t.index_axis(ndarray::Axis(0), r), |d, &tk| *d = up * (d.exp() * mass - tk));
        }
        sink.add(0, dz)
    })?)
}

/// Cross-entropy of probabilities `[rows, classes]` against target rows: per row
/// `q = p / Σ_k p_k` (Keras renormalises; a row summing to 0 is left as is) and
/// `ℓ = −Σ_k t_k · ln(max(q_k, ε))`. Gradient per row, with
/// `a_k = −t_k / q_k` where `q_k ≥ ε` (else 0) and `s = Σ_k p_k`:
/// `∂ℓ/∂p_j = (a_j − Σ_k a_k q_k) / s`.
fn probability_cross_entropy<T: Element>(
    g: &mut Graph<T>,
    loss: &'static str,
    probs: Var,
    targets: Tensor<T>,
    reduction: Reduction,
) -> Result<Var> {
    let p = g.try_value(probs)?.to_contiguous();
    let (rows, classes) = (p.shape()[0], p.shape()[1]);
    let eps = T::of_f64(EPSILON);
    let sums: Vec<T> = p
        .array()
        .outer_iter()
        .map(|r| {
            let s = r.sum();
            if s > T::zero() {
                s
            } else {
                T::one()
            }
        })
        .collect();
    let ps = p.as_slice().expect("contiguous");
    let ts = targets.as_slice().expect("contiguous");
    let mut total = T::zero();
    for ((pr, tr), &s) in ps.chunks_exact(classes).zip(ts.chunks_exact(classes)).zip(&sums) {
        let row_sum = pr.iter().zip(tr).fold(T::zero(), |acc, (&p, &t)| acc + t * (p / s).max(eps).ln());
        total += -row_sum;
    }
    let divisor = T::of_f64(match reduction {
        Reduction::Mean => rows as f64,
        Reduction::Sum => 1.0,
    });
    let value = Tensor::scalar(total / divisor);
    Ok(g.try_custom(loss, &[probs], value, move |ctx, grad, sink| {
        let up = grad.item() / divisor;
        let p = ctx.input(0).to_contiguous();
        let ps = p.as_slice().expect("contiguous");
        let ts = targets.as_slice().expect("contiguous");
        let mut dp = vec![T::zero(); rows * classes];
        for (((dr, pr), tr), &s) in
            dp.chunks_exact_mut(classes).zip(ps.chunks_exact(classes)).zip(ts.chunks_exact(classes)).zip(&sums)
        {
            let mut dot = T::zero();
            for ((d, &p), &t) in dr.iter_mut().zip(pr).zip(tr) {
                let q = p / s;
                *d = if q >= eps { -t / q } else { T::zero() };
                dot += *d * q;
            }
            dr.iter_mut().for_each(|d| *d = up * (*d - dot) / s);
        }
        sink.add(0, Tensor::from_vec(&[rows, classes], dp))
    })?)
}
