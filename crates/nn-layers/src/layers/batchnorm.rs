//! Batch normalization, with its two fused graph operations (training and evaluation).
//!
//! The serde settings ([`BatchNormConfig`]) live here too; `crate::spec` re-exports it.

use std::sync::Arc;

use nn_autograd::{AutogradError, Graph, Var};
use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Serialize};

use super::{layer_accessors, Meta};
use crate::error::Result;
use crate::init::{Fans, Initializer};
use crate::module::{check_param_count, CrossReplicaSum, ForwardCtx, Layer, Mode, ParamKind, ParamSpec};
use crate::spec::{yes, zeros};

fn ones() -> Initializer {
    Initializer::Ones
}
fn bn_momentum() -> f64 {
    0.99
}
fn bn_epsilon() -> f64 {
    1e-3
}

/// Settings of BatchNormalization (Keras's defaults; normalises over every axis but
/// the last).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormConfig {
    /// Weight of the old value in the moving-statistic update. Default 0.99.
    #[serde(default = "bn_momentum")]
    pub momentum: f64,
    /// Added to the variance before the square root. Default 1e-3.
    #[serde(default = "bn_epsilon")]
    pub epsilon: f64,
    /// Whether to add the learned offset β. Default true.
    #[serde(default = "yes")]
    pub center: bool,
    /// Whether to multiply by the learned scale γ. Default true.
    #[serde(default = "yes")]
    pub scale: bool,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub beta_initializer: Initializer,
    /// Default `ones`.
    #[serde(default = "ones")]
    pub gamma_initializer: Initializer,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub moving_mean_initializer: Initializer,
    /// Default `ones`.
    #[serde(default = "ones")]
    pub moving_variance_initializer: Initializer,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_initializer: Initializer::Zeros,
            gamma_initializer: Initializer::Ones,
            moving_mean_initializer: Initializer::Zeros,
            moving_variance_initializer: Initializer::Ones,
        }
    }
}

impl BatchNormConfig {
    /// Sets the momentum.
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
    /// Sets epsilon.
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    /// Sets whether β is used.
    pub fn with_center(mut self, center: bool) -> Self {
        self.center = center;
        self
    }
    /// Sets whether γ is used.
    pub fn with_scale(mut self, scale: bool) -> Self {
        self.scale = scale;
        self
    }
}

/// Batch normalization (Ioffe & Szegedy, 2015, "Batch Normalization: Accelerating
/// Deep Network Training by Reducing Internal Covariate Shift", Algorithm 1) over
/// the last axis, with Keras's semantics:
///
/// - **Training**: each feature `c` is normalised with the statistics of the batch,
///   taken over every axis but the last (the batch, and height and width for NHWC
///   images): `y = γ · (x − μ_B) / √(σ²_B + ε) + β`, where `σ²_B` is the **biased**
///   variance (divided by the count `m`, not `m − 1`). The moving statistics are
///   updated as `moving = momentum · moving + (1 − momentum) · batch`, also with the
///   biased variance: that is what Keras does (PyTorch instead uses the unbiased
///   variance for its running variance). The new values are pushed to
///   [`ForwardCtx::state_updates`] as `layers.{i}.moving_mean` and
///   `layers.{i}.moving_variance`.
/// - **Synchronised training** (data parallel, PyTorch's `SyncBatchNorm`): when
///   [`ForwardCtx::cross_replica`] is set, the statistics are those of the *global*
///   batch, every rank's share together, summed across ranks (see
///   `batch_norm_train_sync`); the moving statistics are updated from them, so
///   every rank pushes the same update.
/// - **Evaluation**: `y = γ · (x − moving_mean) / √(moving_variance + ε) + β`.
///
/// Defaults (Keras): momentum 0.99, ε = 1e-3, γ initialised to 1, β to 0, moving
/// mean to 0, moving variance to 1.
///
/// # Shapes
/// - input: `[batch, features]` or `[batch, height, width, channels]` (any rank ≥ 2
///   with the features last)
/// - parameters, in this order: `gamma: [features]` (if `scale`), `beta: [features]`
///   (if `center`), `moving_mean: [features]`, `moving_variance: [features]` (the last
///   two non-trainable)
/// - output: the input's shape
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormalization {
    meta: Meta,
    config: BatchNormConfig,
}

impl BatchNormalization {
    pub(crate) fn new(mut meta: Meta, config: BatchNormConfig) -> Result<Self> {
        if !(0.0..=1.0).contains(&config.momentum) {
            return Err(meta.config_error(format!("momentum must be in [0, 1], got {}", config.momentum)));
        }
        if !(config.epsilon.is_finite() && config.epsilon > 0.0) {
            return Err(meta.config_error(format!("epsilon must be positive and finite, got {}", config.epsilon)));
        }
        let features = match meta.input_shape.last() {
            Some(&c) if c > 0 => c,
            _ => return Err(meta.shape_error("[..., features ≥ 1] (at least 1 axis)")),
        };
        let vector = |kind: ParamKind, trainable: bool, initializer| ParamSpec {
            kind,
            shape: vec![features],
            trainable,
            initializer,
            fans: Fans::of_shape(&[features]),
        };
        if config.scale {
            meta.params.push(vector(ParamKind::Gamma, true, config.gamma_initializer));
        }
        if config.center {
            meta.params.push(vector(ParamKind::Beta, true, config.beta_initializer));
        }
        meta.params.push(vector(ParamKind::MovingMean, false, config.moving_mean_initializer));
        meta.params.push(vector(ParamKind::MovingVariance, false, config.moving_variance_initializer));
        Ok(BatchNormalization { meta, config })
    }

    /// The settings.
    pub fn config(&self) -> &BatchNormConfig {
        &self.config
    }
}

impl<T: Element> Layer<T> for BatchNormalization {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let mut it = params.iter().copied();
        let gamma = if self.config.scale { it.next() } else { None };
        let beta = if self.config.center { it.next() } else { None };
        let (moving_mean, moving_var) = (it.next().expect("counted"), it.next().expect("counted"));
        match ctx.mode {
            Mode::Eval => batch_norm_eval(g, x, gamma, beta, moving_mean, moving_var, self.config.epsilon),
            Mode::Train => {
                let (y, mean, var) = match &ctx.cross_replica {
                    Some(sum) => batch_norm_train_sync(g, x, gamma, beta, self.config.epsilon, Arc::clone(sum))?,
                    None => batch_norm_train(g, x, gamma, beta, self.config.epsilon)?,
                };
                let m = T::of_f64(self.config.momentum);
                let one_minus = T::of_f64(1.0 - self.config.momentum);
                let prefix = <Self as Layer<T>>::prefix(self);
                for (name, moving, batch) in [("moving_mean", moving_mean, mean), ("moving_variance", moving_var, var)]
                {
                    let mut new = g.try_value(moving)?.to_contiguous();
                    new.array_mut().zip_mut_with(batch.array(), |v, &b| *v = *v * m + b * one_minus);
                    ctx.state_updates.push((format!("{prefix}.{name}"), new));
                }
                Ok(y)
            }
        }
    }
}

/// Per-feature vectors of a graph value, checked to be `[features]`.
fn feature_vector<T: Element>(
    g: &Graph<T>,
    v: Option<Var>,
    x_shape: &[usize],
    what: &'static str,
) -> Result<Option<Vec<T>>> {
    let Some(v) = v else { return Ok(None) };
    let t = g.try_value(v)?;
    let c = *x_shape.last().expect("rank checked");
    if t.shape() != [c] {
        return Err(AutogradError::ShapeMismatch {
            op: "batch_norm",
            lhs: x_shape.to_vec(),
            rhs: t.shape().to_vec(),
            expected: what,
        }
        .into());
    }
    Ok(Some(t.to_vec()))
}

/// `x` as contiguous rows `[m, features]`, with `m` the product of the other axes
/// (which may be 0 only when `allow_no_rows`: a rank's empty share of a global batch).
fn rows_of<T: Element>(g: &Graph<T>, x: Var, allow_no_rows: bool) -> Result<(Vec<usize>, usize, usize)> {
    let shape = g.try_value(x)?.shape().to_vec();
    if shape.len() < 2
        || shape[shape.len() - 1] == 0
        || (!allow_no_rows && shape[..shape.len() - 1].iter().product::<usize>() == 0)
    {
        return Err(AutogradError::InvalidArgument {
            op: "batch_norm",
            message: format!("expected a non-empty input [batch, ..., features], got shape {shape:?}"),
        }
        .into());
    }
    let c = shape[shape.len() - 1];
    let m = shape.iter().product::<usize>() / c;
    Ok((shape, m, c))
}

/// Training-mode batch normalization as one graph operation: normalises `x` with
/// the mean and biased variance of the batch over every axis but the last, then
/// scales by `gamma` and shifts by `beta` (each optional). Returns the output and
/// the batch mean and biased variance (for the moving statistics).
///
/// `y = γ · x̂ + β` with `x̂ = (x − μ) / √(σ² + ε)`, `μ = (1/m) Σ x`,
/// `σ² = (1/m) Σ (x − μ)²` (two passes, for accuracy), `m` the number of rows.
///
/// # Shapes
/// `x: [batch, ..., features]` (rank ≥ 2), `gamma`, `beta: [features]` → `x`'s shape;
/// mean and variance `[features]`.
///
/// # Gradient
/// (Ioffe & Szegedy, 2015, section 3, with the sums over the `m` rows)
/// `∂/∂β = Σ g`, `∂/∂γ = Σ g·x̂`,
/// `∂/∂x = γ / √(σ² + ε) · (g − (1/m) Σ g − x̂ · (1/m) Σ g·x̂)`.
/// Saves only the per-feature mean and `1/√(σ² + ε)`; `x̂` is recomputed from the input.
///
/// # Errors
/// [`LayerError::Autograd`](crate::LayerError::Autograd) for an input of rank < 2 or
/// with no element, or a `gamma`/`beta` that is not `[features]`.
pub fn batch_norm_train<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    gamma: Option<Var>,
    beta: Option<Var>,
    epsilon: f64,
) -> Result<(Var, Tensor<T>, Tensor<T>)> {
    train_op(g, x, gamma, beta, epsilon, None)
}

/// Synchronised training-mode batch normalization (PyTorch's `SyncBatchNorm`) as one
/// graph operation: [`batch_norm_train`] with the statistics of the **global** batch,
/// the union of every rank's share, obtained through `sum` (see [`CrossReplicaSum`]
/// for its contract). Each rank passes its own share `x: [m_r, ..., features]` and
/// gets its own rows of the output; the returned mean and variance are the global
/// ones, identical on every rank (so are the moving-statistic updates made from them).
///
/// # Forward
/// (Ioffe & Szegedy, 2015, Algorithm 1, over the global batch of `M = Σ_r m_r` rows)
/// 1. all-reduce `[Σ x (per feature), m_r]` (in `f64`) → `μ = Σ_all x / M`;
/// 2. all-reduce `Σ (x − μ)²` (per feature) → `σ² = Σ_all (x − μ)² / M`, the biased
///    variance, in two passes like [`batch_norm_train`];
/// 3. `y = γ · (x − μ) / √(σ² + ε) + β` on the local rows.
///
/// # Gradient
/// With `g = ∂L/∂y` on the local rows, the per-feature sums `Σ g` and `Σ g·x̂` are
/// all-reduced (one call, in `f64`) and
/// `∂/∂x = γ / √(σ² + ε) · (g − (1/M) Σ_all g − x̂ · (1/M) Σ_all g·x̂)`
/// (PyTorch's `SyncBatchNorm` backward, `torch/nn/modules/_functions.py`). The
/// gradients of `γ` (`Σ g·x̂`) and `β` (`Σ g`) stay **local** sums over the rank's
/// rows: the caller sums parameter gradients across ranks afterwards, as for every
/// other parameter.
///
/// **Contract on the loss.** Because the backward all-reduce adds the upstream
/// gradients of all ranks, rank `r` receives the gradient of `Σ_r L_r` (the sum of
/// every rank's loss) with respect to its rows, and summing each parameter's local
/// gradients across ranks gives `∇ Σ_r L_r`. So weight each rank's loss **before**
/// backward so that the sum across ranks is the global loss: for a mean loss over a
/// global batch of `n` rows, multiply the rank's mean loss over its `n_r` rows by
/// `n_r / n`. (Scaling every summed gradient by one common constant afterwards, as
/// PyTorch DDP's averaging does, is equivalent to scaling the loss.)
///
/// # Collective calls
/// Every rank must make the same calls in the same order: this function calls `sum`
/// twice (buffers of `features + 1` and `features` values), and its backward rule
/// once more (`2 · features` values) when backward runs through the op: on a
/// recording graph, when the loss depends on the output and the input, `gamma` or
/// `beta` needs a gradient. A rank's share may have no rows (it still takes part in
/// the sums); the global batch may not.
///
/// # Precision
/// The local sums are accumulated in `f64` whatever `T` is. In `f64` with one rank
/// (a sum that changes nothing) the results equal [`batch_norm_train`]'s bit for
/// bit; in `f32` they may differ in the last bits (this op is the more accurate).
///
/// # Shapes
/// As [`batch_norm_train`], except that `x` may have no rows.
///
/// # Errors
/// As [`batch_norm_train`]; [`LayerError::Autograd`](crate::LayerError::Autograd)
/// (`InvalidArgument`, op `batch_norm_train_sync`) when `sum` fails or the global
/// batch has no row; a failure of `sum` in backward is returned by `backward`.
pub fn batch_norm_train_sync<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    gamma: Option<Var>,
    beta: Option<Var>,
    epsilon: f64,
    sum: Arc<dyn CrossReplicaSum>,
) -> Result<(Var, Tensor<T>, Tensor<T>)> {
    train_op(g, x, gamma, beta, epsilon, Some(sum))
}

/// The op name of [`batch_norm_train_sync`], in its errors and on the tape.
const SYNC_OP: &str = "batch_norm_train_sync";

/// `sum.sum_f64(values)`, its error message wrapped with what was being summed.
fn all_reduce(sum: &dyn CrossReplicaSum, values: &mut [f64], what: &str) -> std::result::Result<(), AutogradError> {
    sum.sum_f64(values).map_err(|e| AutogradError::InvalidArgument {
        op: SYNC_OP,
        message: format!("the cross-replica sum of {what} failed: {e}"),
    })
}

/// Rows of `c` features in one block of the passes below: about 16,384 elements.
/// The blocks depend on the shape only, never on the thread count.
fn block_rows(c: usize) -> usize {
    ((1 << 14) / c.max(1)).max(1)
}

/// Per-feature sums over the `m` rows: `add(first_row, rows, acc)` adds the block of
/// rows `first_row..first_row + rows` into `acc` (`width` zeros to start), one block
/// per [`block_rows`] on nn's pool; the blocks' partial sums are then added in block
/// order. So the result is the same, bit for bit, at any thread count, and with one
/// block (`m ≤ block_rows(c)`) it is the plain sum in row order.
fn block_sums<T: Element>(
    m: usize,
    c: usize,
    width: usize,
    add: impl Fn(usize, usize, &mut [T]) + Send + Sync,
) -> Vec<T> {
    let rb = block_rows(c);
    let partials = nn_tensor::par_build::<T>(m.div_ceil(rb) * width, width, |i, acc| {
        let first = i * rb;
        nn_tensor::simd::vectorized(
            #[inline(always)]
            || add(first, rb.min(m - first), acc),
        );
    });
    let mut total = vec![T::zero(); width];
    for part in partials.chunks_exact(width.max(1)) {
        total.iter_mut().zip(part).for_each(|(t, &v)| *t += v);
    }
    total
}

/// A new `[m, c]` buffer (row-major, as `xs`) whose row `r` is `f(xs row r, gs row r,
/// out row r)`, built block by block ([`block_rows`]) on nn's pool; `gs` is a second
/// input of `xs`'s length (or `xs` again). Each element depends on its own row only,
/// so the result does not depend on the split.
fn map_rows<T: Element>(xs: &[T], gs: &[T], c: usize, f: impl Fn(&[T], &[T], &mut [T]) + Send + Sync) -> Vec<T> {
    let block = block_rows(c) * c;
    nn_tensor::par_build(xs.len(), block, |i, out| {
        let (x, g) = (&xs[i * block..][..out.len()], &gs[i * block..][..out.len()]);
        nn_tensor::simd::vectorized(
            #[inline(always)]
            || {
                for ((o, xr), gr) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)).zip(g.chunks_exact(c)) {
                    f(xr, gr, o);
                }
            },
        );
    })
}

/// Per-feature mean and biased variance of the local rows `xs` (`m` rows of `c`),
/// accumulated in `T` by blocks of rows ([`block_sums`]; the single-process
/// statistics), and the count `m`.
fn local_stats<T: Element>(xs: &[T], c: usize, m: usize) -> (Vec<T>, Vec<T>, T) {
    let mf = T::of_f64(m as f64);
    let mut mean = block_sums(m, c, c, |first, rows, acc: &mut [T]| {
        for row in xs[first * c..][..rows * c].chunks_exact(c) {
            acc.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
        }
    });
    mean.iter_mut().for_each(|s| *s /= mf);
    let mut var = block_sums(m, c, c, |first, rows, acc: &mut [T]| {
        for row in xs[first * c..][..rows * c].chunks_exact(c) {
            for ((s, &v), &mu) in acc.iter_mut().zip(row).zip(&mean) {
                let d = v - mu;
                *s += d * d;
            }
        }
    });
    var.iter_mut().for_each(|s| *s /= mf);
    (mean, var, mf)
}

/// `(x − mean) · scale (+ beta)` for every row of `xs` (`c` features), on nn's pool
/// ([`map_rows`]).
fn normalize_rows<T: Element>(xs: &[T], c: usize, mean: &[T], scale: &[T], beta: Option<&[T]>) -> Vec<T> {
    match beta {
        Some(b) => map_rows(xs, xs, c, |row, _, out| {
            for k in 0..c {
                out[k] = (row[k] - mean[k]) * scale[k] + b[k];
            }
        }),
        None => map_rows(xs, xs, c, |row, _, out| {
            for k in 0..c {
                out[k] = (row[k] - mean[k]) * scale[k];
            }
        }),
    }
}

/// Per-feature mean and biased variance of the global batch (all ranks' rows),
/// accumulated in `f64` and summed across ranks, and the global row count `M`.
fn global_stats<T: Element>(
    xs: &[T],
    c: usize,
    m: usize,
    sum: &dyn CrossReplicaSum,
) -> std::result::Result<(Vec<T>, Vec<T>, T), AutogradError> {
    let mut sums = vec![0.0f64; c + 1];
    for row in xs.chunks_exact(c) {
        sums.iter_mut().zip(row).for_each(|(s, &v)| *s += v.as_f64());
    }
    sums[c] = m as f64;
    all_reduce(sum, &mut sums, "the per-feature sums and the row count")?;
    let total = sums[c];
    if !(total >= 1.0 && total.is_finite()) {
        return Err(AutogradError::InvalidArgument {
            op: SYNC_OP,
            message: format!("the global batch must have at least one row, the ranks' row counts sum to {total}"),
        });
    }
    let mean: Vec<T> = sums[..c].iter().map(|&s| T::of_f64(s / total)).collect();
    let mut squares = vec![0.0f64; c];
    for row in xs.chunks_exact(c) {
        for ((s, &v), &mu) in squares.iter_mut().zip(row).zip(&mean) {
            let d = (v - mu).as_f64();
            *s += d * d;
        }
    }
    all_reduce(sum, &mut squares, "the per-feature squared deviations")?;
    let var = squares.iter().map(|&s| T::of_f64(s / total)).collect();
    Ok((mean, var, T::of_f64(total)))
}

/// [`batch_norm_train`] (`sync` = `None`) and [`batch_norm_train_sync`].
fn train_op<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    gamma: Option<Var>,
    beta: Option<Var>,
    epsilon: f64,
    sync: Option<Arc<dyn CrossReplicaSum>>,
) -> Result<(Var, Tensor<T>, Tensor<T>)> {
    let (shape, m, c) = rows_of(g, x, sync.is_some())?;
    let gamma_v = feature_vector(g, gamma, &shape, "gamma of shape [features]")?;
    let beta_v = feature_vector(g, beta, &shape, "beta of shape [features]")?;
    let xv = g.try_value(x)?;
    let x_std = xv.array().as_standard_layout();
    let xs = x_std.as_slice().expect("standard layout");

    // `count` is the number of rows the statistics are over: `m`, or the global `M`.
    let (mean, var, count) = match &sync {
        None => local_stats(xs, c, m),
        Some(sum) => global_stats(xs, c, m, sum.as_ref())?,
    };
    let eps = T::of_f64(epsilon);
    let inv: Vec<T> = var.iter().map(|&v| T::one() / (v + eps).sqrt()).collect();
    let scale: Vec<T> = match &gamma_v {
        Some(gm) => inv.iter().zip(gm).map(|(&i, &g)| g * i).collect(),
        None => inv.clone(),
    };
    let out = normalize_rows(xs, c, &mean, &scale, beta_v.as_deref());
    drop(x_std);
    let value = Tensor::from_vec(&shape, out);

    let inputs: Vec<Var> = [Some(x), gamma, beta].into_iter().flatten().collect();
    let (gamma_at, beta_at) = (gamma.map(|_| 1), beta.map(|_| 1 + usize::from(gamma.is_some())));
    let saved_mean = mean.clone();
    let op = if sync.is_some() { SYNC_OP } else { "batch_norm_train" };
    let y = g.try_custom(op, &inputs, value, move |ctx, grad, sink| {
        let x_std = ctx.input(0).array().as_standard_layout();
        let xs = x_std.as_slice().expect("standard layout");
        let g_std = grad.array().as_standard_layout();
        let gs = g_std.as_slice().expect("standard layout");
        // Local sums Σ g and Σ g·x̂ (the γ and β gradients), and the sums the input
        // gradient uses: the same, or (synchronised) their totals over all ranks.
        let (sum_g, sum_gx, totals) = match &sync {
            None => {
                let mut sums = block_sums(m, c, 2 * c, |first, rows, acc: &mut [T]| {
                    let (sum_g, sum_gx) = acc.split_at_mut(c);
                    let (x, g) = (&xs[first * c..][..rows * c], &gs[first * c..][..rows * c]);
                    for (xr, gr) in x.chunks_exact(c).zip(g.chunks_exact(c)) {
                        let feature = xr.iter().zip(gr).zip(saved_mean.iter().zip(&inv));
                        for ((sg, sgx), ((&xv, &gv), (&mu, &s))) in sum_g.iter_mut().zip(sum_gx.iter_mut()).zip(feature)
                        {
                            *sg += gv;
                            *sgx += gv * ((xv - mu) * s);
                        }
                    }
                });
                let sum_gx = sums.split_off(c);
                (sums, sum_gx, None)
            }
            Some(sum) => {
                // [Σ g | Σ g·x̂], in f64; reduced across ranks on every rank, always
                // (the call must not depend on which gradients this rank wants).
                let mut sums = vec![0.0f64; 2 * c];
                for (xr, gr) in xs.chunks_exact(c).zip(gs.chunks_exact(c)) {
                    for k in 0..c {
                        let xhat = (xr[k] - saved_mean[k]) * inv[k];
                        sums[k] += gr[k].as_f64();
                        sums[c + k] += (gr[k] * xhat).as_f64();
                    }
                }
                let local: Vec<T> = sums.iter().map(|&s| T::of_f64(s)).collect();
                all_reduce(sum.as_ref(), &mut sums, "the per-feature gradient sums")?;
                let total: Vec<T> = sums.iter().map(|&s| T::of_f64(s)).collect();
                let (sum_g, sum_gx) = (local[..c].to_vec(), local[c..].to_vec());
                (sum_g, sum_gx, Some((total[..c].to_vec(), total[c..].to_vec())))
            }
        };
        if sink.wants(0) {
            let (tg, tgx) = match &totals {
                Some((tg, tgx)) => (tg.as_slice(), tgx.as_slice()),
                None => (sum_g.as_slice(), sum_gx.as_slice()),
            };
            let gm: Vec<T> = match gamma_at {
                Some(at) => ctx.input(at).to_vec(),
                None => vec![T::one(); c],
            };
            // Per feature: γ·s, Σg / M and Σg·x̂ / M, formed once (no division per
            // element).
            let a: Vec<T> = gm.iter().zip(&inv).map(|(&g, &s)| g * s).collect();
            let b: Vec<T> = tg.iter().map(|&v| v / count).collect();
            let d: Vec<T> = tgx.iter().map(|&v| v / count).collect();
            let dx = map_rows(xs, gs, c, |xr, gr, out| {
                let feature = xr.iter().zip(gr).zip(saved_mean.iter().zip(&inv));
                let terms = a.iter().zip(&b).zip(&d);
                for ((o, ((&xv, &gv), (&mu, &s))), ((&a, &b), &d)) in out.iter_mut().zip(feature).zip(terms) {
                    *o = a * (gv - b - ((xv - mu) * s) * d);
                }
            });
            sink.add(0, Tensor::from_vec(ctx.input(0).shape(), dx))?;
        }
        if let Some(at) = gamma_at {
            sink.add(at, Tensor::from_vec(&[c], sum_gx))?;
        }
        if let Some(at) = beta_at {
            sink.add(at, Tensor::from_vec(&[c], sum_g))?;
        }
        Ok(())
    })?;
    // x̂ is recomputed from the input: the rule never reads the output.
    g.declare_reads(y, true, false)?;
    Ok((y, Tensor::from_vec(&[c], mean), Tensor::from_vec(&[c], var)))
}

/// Evaluation-mode batch normalization as one graph operation, with given (moving)
/// statistics: `y = γ · (x − μ) / √(σ² + ε) + β`, per feature (the last axis).
///
/// # Shapes
/// `x: [batch, ..., features]` (rank ≥ 2); `gamma`, `beta` (optional), `mean`,
/// `variance: [features]` → `x`'s shape.
///
/// # Gradient
/// With `s = 1/√(σ² + ε)`: `∂/∂x = g·γ·s`, `∂/∂γ = Σ g·(x − μ)·s`, `∂/∂β = Σ g`,
/// `∂/∂μ = −γ·s·Σ g`, `∂/∂σ² = −½·γ·s³·Σ g·(x − μ)` (sums over all rows). In a model
/// the statistics are constants, so only the first three are computed there.
///
/// # Errors
/// As [`batch_norm_train`]; also for statistics that are not `[features]`.
pub fn batch_norm_eval<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    gamma: Option<Var>,
    beta: Option<Var>,
    mean: Var,
    variance: Var,
    epsilon: f64,
) -> Result<Var> {
    let (shape, _, c) = rows_of(g, x, false)?;
    let gamma_v = feature_vector(g, gamma, &shape, "gamma of shape [features]")?;
    let beta_v = feature_vector(g, beta, &shape, "beta of shape [features]")?;
    let mu = feature_vector(g, Some(mean), &shape, "moving_mean of shape [features]")?.expect("given");
    let var = feature_vector(g, Some(variance), &shape, "moving_variance of shape [features]")?.expect("given");
    let eps = T::of_f64(epsilon);
    let inv: Vec<T> = var.iter().map(|&v| T::one() / (v + eps).sqrt()).collect();
    let gm = gamma_v.unwrap_or_else(|| vec![T::one(); c]);
    let scale: Vec<T> = inv.iter().zip(&gm).map(|(&i, &g)| g * i).collect();
    let xv = g.try_value(x)?;
    let x_std = xv.array().as_standard_layout();
    let xs = x_std.as_slice().expect("standard layout");
    let out = normalize_rows(xs, c, &mu, &scale, beta_v.as_deref());
    drop(x_std);
    let value = Tensor::from_vec(&shape, out);

    let inputs: Vec<Var> = [Some(x), gamma, beta, Some(mean), Some(variance)].into_iter().flatten().collect();
    let gamma_at = gamma.map(|_| 1);
    let beta_at = beta.map(|_| 1 + usize::from(gamma.is_some()));
    let mean_at = 1 + usize::from(gamma.is_some()) + usize::from(beta.is_some());
    let var_at = mean_at + 1;
    Ok(g.try_custom("batch_norm_eval", &inputs, value, move |ctx, grad, sink| {
        let x_std = ctx.input(0).array().as_standard_layout();
        let xs = x_std.as_slice().expect("standard layout");
        let g_std = grad.array().as_standard_layout();
        let gs = g_std.as_slice().expect("standard layout");
        if sink.wants(0) {
            let dx = map_rows(gs, gs, c, |gr, _, out| {
                out.iter_mut().zip(gr).zip(&scale).for_each(|((o, &g), &s)| *o = g * s);
            });
            sink.add(0, Tensor::from_vec(ctx.input(0).shape(), dx))?;
        }
        let m = xs.len() / c;
        let mut sum_g = block_sums(m, c, 2 * c, |first, rows, acc: &mut [T]| {
            let (sum_g, sum_gd) = acc.split_at_mut(c);
            let (x, g) = (&xs[first * c..][..rows * c], &gs[first * c..][..rows * c]);
            for (xr, gr) in x.chunks_exact(c).zip(g.chunks_exact(c)) {
                let feature = xr.iter().zip(gr).zip(&mu);
                for ((sg, sgd), ((&xv, &gv), &mu)) in sum_g.iter_mut().zip(sum_gd.iter_mut()).zip(feature) {
                    *sg += gv;
                    *sgd += gv * (xv - mu);
                }
            }
        });
        let sum_gd = sum_g.split_off(c);
        if let Some(at) = gamma_at {
            sink.add(at, Tensor::from_vec(&[c], (0..c).map(|k| sum_gd[k] * inv[k]).collect()))?;
        }
        if let Some(at) = beta_at {
            sink.add(at, Tensor::from_vec(&[c], sum_g.clone()))?;
        }
        if sink.wants(mean_at) {
            sink.add(mean_at, Tensor::from_vec(&[c], (0..c).map(|k| -scale[k] * sum_g[k]).collect()))?;
        }
        if sink.wants(var_at) {
            let half = T::of_f64(0.5);
            let d = (0..c).map(|k| -half * scale[k] * inv[k] * inv[k] * sum_gd[k]).collect();
            sink.add(var_at, Tensor::from_vec(&[c], d))?;
        }
        Ok(())
    })?)
}
