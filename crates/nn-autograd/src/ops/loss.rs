//! Loss building blocks, each fused into one op with its stable form: cross-entropy
//! from logits with integer class targets, binary cross-entropy from logits, and mean
//! squared error.

use ndarray::{ArrayD, Zip};
use nn_tensor::{Element, Tensor};

use crate::error::{tensor_err, AutogradError, Result};
use crate::graph::{bytes_of, Graph, Var};
use crate::ops::twin;

/// How per-sample (or per-element) losses are combined into the op's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reduction {
    /// The sum divided by the number of samples (cross-entropy: batch rows; BCE and
    /// MSE: elements), a 0-d output. With sample weights the divisor is still the
    /// count, not the weights' sum (Keras's `sum_over_batch_size`). The default.
    #[default]
    Mean,
    /// The sum, a 0-d output.
    Sum,
    /// No reduction: one loss per sample (cross-entropy: `[batch]`) or per element
    /// (BCE, MSE: the input's shape).
    Unreduced,
}

impl Reduction {
    /// Combines `losses` into the op's output.
    fn apply<T: Element>(self, losses: ArrayD<T>) -> Tensor<T> {
        match self {
            Reduction::Mean => {
                let n = T::of_f64(losses.len() as f64);
                Tensor::scalar(losses.iter().fold(T::zero(), |s, &v| s + v) / n)
            }
            Reduction::Sum => Tensor::scalar(losses.iter().fold(T::zero(), |s, &v| s + v)),
            Reduction::Unreduced => Tensor::from(losses),
        }
    }

    /// The factor by which the upstream gradient is multiplied for `count` samples.
    fn scale<T: Element>(self, count: usize) -> T {
        match self {
            Reduction::Mean => T::one() / T::of_f64(count as f64),
            Reduction::Sum | Reduction::Unreduced => T::one(),
        }
    }
}

impl<T: Element> Graph<T> {
    /// Mean cross-entropy of `logits` against integer class `targets`:
    /// `−(1/batch) Σ_i log_softmax(logits_i)[targets_i]`, computed through the stable
    /// `log_softmax`, so logits of magnitude 1e8 give a finite, exact loss.
    /// Same as [`Graph::try_cross_entropy_with`] with no weights and [`Reduction::Mean`].
    ///
    /// # Shapes
    /// `logits: [batch, classes]`, `targets: [batch]` (values `< classes`) → `[]`.
    ///
    /// # Errors
    /// As [`Graph::try_cross_entropy_with`].
    pub fn try_cross_entropy(&mut self, logits: Var, targets: &[usize]) -> Result<Var> {
        self.try_cross_entropy_with(logits, targets, None, Reduction::Mean)
    }
    twin!(cross_entropy => try_cross_entropy(logits: Var, targets: &[usize]) -> Var);

    /// Cross-entropy from logits with integer class targets, optional per-sample
    /// weights and a [`Reduction`]. Per sample:
    /// `ℓ_i = −w_i · log_softmax(logits_i)[t_i]` (the negative log-likelihood of a
    /// softmax classifier; Goodfellow, Bengio & Courville, *Deep Learning*, §6.2.2.3),
    /// with `log_softmax` computed stably (`x − max − ln Σ e^{x − max}`).
    ///
    /// # Shapes
    /// `logits: [batch, classes]`, `targets: [batch]`, `sample_weights: [batch]` →
    /// `[]` (`Mean`, `Sum`) or `[batch]` (`Unreduced`). Logits of higher rank
    /// `[d0, …, classes]` are rows in row-major order (e.g. `[batch, seq, vocab]` for
    /// a language model, without a reshape copy): `batch = d0·…` rows of targets.
    ///
    /// # Gradient
    /// `∂ℓ_i/∂logits_i = w_i · (softmax(logits_i) − onehot(t_i))`, times the upstream
    /// gradient (and `1/batch` for `Mean`). The probabilities are saved by the forward
    /// pass ([`Tensor::try_softmax_nll`]), so backward needs no `exp`.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] with [`TensorError::Rank`](nn_tensor::TensorError::Rank)
    /// for `logits` of rank below 2; [`AutogradError::ShapeMismatch`] when `targets` or the
    /// weights do not hold one value per batch row; [`AutogradError::TargetOutOfRange`]
    /// for a target `>= classes`; [`AutogradError::InvalidArgument`] for an empty
    /// batch with [`Reduction::Mean`].
    pub fn try_cross_entropy_with(
        &mut self,
        logits: Var,
        targets: &[usize],
        sample_weights: Option<&[T]>,
        reduction: Reduction,
    ) -> Result<Var> {
        let op = "cross_entropy";
        let i = self.idx(op, logits)?;
        let lv = self.val(i);
        if lv.ndim() < 2 {
            return Err(AutogradError::Tensor {
                op,
                source: nn_tensor::TensorError::Rank {
                    op,
                    expected: "at least 2 ([batch, classes] or [..., classes])",
                    shape: lv.shape().to_vec(),
                },
            });
        }
        // Every leading axis counts as a batch axis: a row per position of a sequence.
        let classes = lv.shape()[lv.ndim() - 1];
        let batch = lv.shape()[..lv.ndim() - 1].iter().product::<usize>();
        if targets.len() != batch {
            return Err(AutogradError::ShapeMismatch {
                op,
                lhs: lv.shape().to_vec(),
                rhs: vec![targets.len()],
                expected: "one target per batch row",
            });
        }
        if let Some(w) = sample_weights {
            if w.len() != batch {
                return Err(AutogradError::ShapeMismatch {
                    op,
                    lhs: lv.shape().to_vec(),
                    rhs: vec![w.len()],
                    expected: "one sample weight per batch row",
                });
            }
        }
        if let Some((row, &target)) = targets.iter().enumerate().find(|(_, &t)| t >= classes) {
            return Err(AutogradError::TargetOutOfRange { op, row, target, classes });
        }
        if batch == 0 && reduction == Reduction::Mean {
            return Err(AutogradError::InvalidArgument {
                op,
                message: "the mean over an empty batch is undefined".into(),
            });
        }
        // The probabilities (saved for backward: the gradient is softmax − onehot, no
        // second exp) and each row's −log-likelihood, in one pass.
        let (probs, nll) = lv.try_softmax_nll(targets).map_err(tensor_err(op))?;
        let weight = |r: usize| sample_weights.map_or(T::one(), |w| w[r]);
        let losses = ArrayD::from_shape_fn(ndarray::IxDyn(&[batch]), |r| weight(r[0]) * nll[r[0]]);
        let value = reduction.apply(losses);

        let needs = self.needs_grad(&[i]);
        let targets = if needs { targets.to_vec() } else { Vec::new() };
        let weights: Option<Vec<T>> = if needs { sample_weights.map(<[T]>::to_vec) } else { None };
        let saved = if needs {
            bytes_of::<T>(probs.len()) + bytes_of::<usize>(batch) + bytes_of::<T>(weights.as_ref().map_or(0, Vec::len))
        } else {
            0
        };
        let scale: T = reduction.scale(batch);
        Ok(self.push_op(op, &[i], value, saved, move |_, g, sink| {
            if !sink.wants(0) {
                return Ok(());
            }
            let upstream = |r: usize| -> T {
                match reduction {
                    Reduction::Unreduced => g.array()[[r]],
                    _ => g.array().iter().next().copied().unwrap_or_else(T::zero),
                }
            };
            // Row r's factor c_r: the upstream gradient, the reduction's scale and the
            // sample weight; one factor for all rows without weights or `Unreduced`.
            let uniform = weights.is_none() && reduction != Reduction::Unreduced;
            let factor = |r: usize| upstream(r) * scale * weights.as_ref().map_or(T::one(), |w| w[r]);
            // c·softmax from the saved probabilities into a new tensor (no zeroed
            // buffer first), then −c at each target.
            let mut grad = if uniform {
                // Element-wise over nn's pool. `move`: with `c` borrowed, the loop
                // reloaded it through a pointer and stayed scalar.
                let c = factor(0);
                probs.map_par(
                    #[inline(always)]
                    move |p| c * p,
                )
            } else {
                let mut grad = probs.clone();
                let rows = grad.array_mut().as_slice_mut().expect("softmax_nll returns standard layout");
                for (r, row) in rows.chunks_exact_mut(classes.max(1)).enumerate() {
                    let c = factor(r);
                    row.iter_mut().for_each(|p| *p = c * *p);
                }
                grad
            };
            let rows = grad.array_mut().as_slice_mut().expect("standard layout");
            for (r, &t) in targets.iter().enumerate() {
                rows[r * classes + t] -= factor(if uniform { 0 } else { r });
            }
            sink.add(0, grad)
        }))
    }
    twin!(cross_entropy_with => try_cross_entropy_with(logits: Var, targets: &[usize], sample_weights: Option<&[T]>, reduction: Reduction) -> Var);

    /// Mean binary cross-entropy from logits (sigmoid and log-loss fused):
    /// per element `ℓ = max(x, 0) − x·y + ln(1 + e^{−|x|})`, the stable form of
    /// `−y·ln σ(x) − (1 − y)·ln(1 − σ(x))` (as TensorFlow's
    /// `sigmoid_cross_entropy_with_logits`), finite for logits of any magnitude.
    /// Same as [`Graph::try_binary_cross_entropy_with_logits_with`] with
    /// [`Reduction::Mean`] (the mean over all elements).
    ///
    /// # Shapes
    /// `logits` and `targets` of equal shape (e.g. `[batch, 1]`) → `[]`.
    ///
    /// # Errors
    /// As [`Graph::try_binary_cross_entropy_with_logits_with`].
    pub fn try_binary_cross_entropy_with_logits(&mut self, logits: Var, targets: Var) -> Result<Var> {
        self.try_binary_cross_entropy_with_logits_with(logits, targets, Reduction::Mean)
    }
    twin!(binary_cross_entropy_with_logits => try_binary_cross_entropy_with_logits(logits: Var, targets: Var) -> Var);

    /// Binary cross-entropy from logits with a [`Reduction`] (see
    /// [`Graph::try_binary_cross_entropy_with_logits`] for the formula). Targets are
    /// probabilities in `[0, 1]` (usually 0 or 1), usually an input leaf.
    ///
    /// # Gradient
    /// `∂ℓ/∂x = σ(x) − y`, `∂ℓ/∂y = −x`, times the upstream gradient (and
    /// `1/count` for `Mean`).
    ///
    /// # Errors
    /// [`AutogradError::ShapeMismatch`] when the shapes differ;
    /// [`AutogradError::InvalidArgument`] for empty inputs with [`Reduction::Mean`].
    pub fn try_binary_cross_entropy_with_logits_with(
        &mut self,
        logits: Var,
        targets: Var,
        reduction: Reduction,
    ) -> Result<Var> {
        self.pointwise_loss(
            "binary_cross_entropy_with_logits",
            logits,
            targets,
            reduction,
            |x, y| x.max(T::zero()) - x * y + (-x.abs()).exp().ln_1p(),
            |x, y| nn_tensor::sigmoid(x) - y,
            |x, _| -x,
        )
    }
    twin!(binary_cross_entropy_with_logits_with => try_binary_cross_entropy_with_logits_with(logits: Var, targets: Var, reduction: Reduction) -> Var);

    /// Mean squared error `(1/n) Σ (prediction − target)²` over all elements. Same as
    /// [`Graph::try_mse_with`] with [`Reduction::Mean`].
    ///
    /// # Shapes
    /// `prediction` and `target` of equal shape → `[]`.
    ///
    /// # Errors
    /// As [`Graph::try_mse_with`].
    pub fn try_mse(&mut self, prediction: Var, target: Var) -> Result<Var> {
        self.try_mse_with(prediction, target, Reduction::Mean)
    }
    twin!(mse => try_mse(prediction: Var, target: Var) -> Var);

    /// Squared error `(p − t)²` per element with a [`Reduction`].
    ///
    /// # Gradient
    /// `∂ℓ/∂p = 2(p − t)`, `∂ℓ/∂t = −2(p − t)`, times the upstream gradient (and
    /// `1/n` for `Mean`).
    ///
    /// # Errors
    /// [`AutogradError::ShapeMismatch`] when the shapes differ;
    /// [`AutogradError::InvalidArgument`] for empty inputs with [`Reduction::Mean`].
    pub fn try_mse_with(&mut self, prediction: Var, target: Var, reduction: Reduction) -> Result<Var> {
        let two = T::of_f64(2.0);
        self.pointwise_loss(
            "mse",
            prediction,
            target,
            reduction,
            |p, t| (p - t) * (p - t),
            move |p, t| two * (p - t),
            move |p, t| two * (t - p),
        )
    }
    twin!(mse_with => try_mse_with(prediction: Var, target: Var, reduction: Reduction) -> Var);

    /// An element-wise loss `f(a, b)` of two equally shaped operands with partial
    /// derivatives `da`, `db`, reduced by `reduction`.
    #[allow(clippy::too_many_arguments)]
    fn pointwise_loss(
        &mut self,
        op: &'static str,
        a: Var,
        b: Var,
        reduction: Reduction,
        f: impl Fn(T, T) -> T,
        da: impl Fn(T, T) -> T + Send + Sync + 'static,
        db: impl Fn(T, T) -> T + Send + Sync + 'static,
    ) -> Result<Var> {
        let (ia, ib) = (self.idx(op, a)?, self.idx(op, b)?);
        let (av, bv) = (self.val(ia), self.val(ib));
        if av.shape() != bv.shape() {
            return Err(AutogradError::ShapeMismatch {
                op,
                lhs: av.shape().to_vec(),
                rhs: bv.shape().to_vec(),
                expected: "equal shapes",
            });
        }
        let count = av.len();
        if count == 0 && reduction == Reduction::Mean {
            return Err(AutogradError::InvalidArgument {
                op,
                message: "the mean over no elements is undefined".into(),
            });
        }
        let losses = Zip::from(av.array()).and(bv.array()).map_collect(|&a, &b| f(a, b));
        let value = reduction.apply(losses);
        let scale: T = reduction.scale(count);
        Ok(self.push_op(op, &[ia, ib], value, 0, move |ctx, g, sink| {
            let (a, b) = (ctx.input(0).array(), ctx.input(1).array());
            for (k, d) in [(0, &da as &dyn Fn(T, T) -> T), (1, &db)] {
                if sink.wants(k) {
                    let grad =
                        Zip::from(a).and(b).and_broadcast(g.array()).map_collect(|&a, &b, &g| g * scale * d(a, b));
                    sink.add(k, Tensor::from(grad))?;
                }
            }
            Ok(())
        }))
    }
}
