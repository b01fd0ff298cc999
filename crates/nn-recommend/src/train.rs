//! Training a [`Recommender`]: MSE on explicit ratings, BPR or sampled softmax with
//! seeded negative sampling on implicit feedback.
//!
//! Per batch ([`fit`]):
//!
//! ```text
//! pairs (user, item) of the batch (+ negatives for BPR / sampled softmax)
//!   → gather each table's rows, history means, item features   (sparse part, no tape)
//!   → g.variable(rows) per dense input → Model::forward_all     (dense part, on the tape)
//!   → prediction = μ + b_u + b_i (+ b_u,day) + dense output     (biases outside the tape)
//!   → loss and ∂loss/∂prediction (closed form, below)
//!   → g.backward_with_seed(output, ∂loss/∂prediction)
//!   → ∂/∂(gathered rows) → LazyAdam on those rows only          (sparse update, L2 there)
//!   → ∂/∂(dense parameters) → nn-optim Adam
//! ```
//!
//! Losses, over the batch's predictions `p`:
//! - [`RecLoss::Mse`]: `(1/n) Σ (p − r)²`. With the global bias on, `μ` (the training
//!   mean) is part of `p`, so the model learns ratings centred on `μ`.
//! - [`RecLoss::Bpr`]: `(1/(n·k)) Σ softplus(−(p_ui − p_uj))` over each positive `(u, i)`
//!   and its `k` negatives `j` (Rendle et al. 2009, BPR-Opt without its prior, which
//!   is the L2 of the sparse update).
//! - [`RecLoss::SampledSoftmax`]: `(1/n) Σ −log softmax([p_ui, p_uj₁ … p_ujₖ])₀`, the
//!   full softmax of YouTube DNN (Covington et al. 2016) over the positive and `k`
//!   uniform negatives (no log-Q correction is needed for uniform sampling: it shifts
//!   every logit by the same constant).
//!
//! Negatives are drawn uniformly from the items seen in training with a seeded ChaCha8,
//! rejecting the user's training positives (a user who has every item gets the
//! uniform draw without rejection after 100 tries).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use nn_layers::{ForwardCtx, Graph, Mode, Model};
use nn_optim::{bind, Adam, AdamConfig, Optimizer};
use nn_tensor::random::{seeded_rng, Rng};
use nn_tensor::{Element, Tensor};
use rand::seq::SliceRandom;
use rand::Rng as _;

use crate::data::{items_by_user, Interaction};
use crate::error::{RecError, Result};
use crate::model::{day_of, Lookup, Recommender};
use crate::sparse::{EmbeddingTable, LazyAdam, LazyAdamConfig};

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RecLoss {
    /// Mean squared error on explicit ratings.
    Mse,
    /// Bayesian personalised ranking with `negatives` sampled items per positive.
    Bpr {
        /// Negatives per positive (≥ 1).
        negatives: usize,
    },
    /// Softmax over the positive and `negatives` sampled items.
    SampledSoftmax {
        /// Negatives per positive (≥ 1).
        negatives: usize,
    },
}

impl RecLoss {
    /// Negatives per positive (0 for MSE).
    pub fn negatives(&self) -> usize {
        match *self {
            RecLoss::Mse => 0,
            RecLoss::Bpr { negatives } | RecLoss::SampledSoftmax { negatives } => negatives,
        }
    }
}

/// Settings of [`fit`]. Defaults: 20 epochs, batches of 256, learning rate 2e-3 (for
/// the tables and the dense part), L2 0.05 on the rows a batch uses, no dense weight
/// decay, MSE, seed 42, patience 3.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training interactions.
    pub epochs: usize,
    /// Positives per batch.
    pub batch_size: usize,
    /// η of LazyAdam (tables, biases) and Adam (dense part).
    pub learning_rate: f64,
    /// λ of the L2 penalty `λ/2‖row‖²` on each table and bias row a batch uses
    /// ([`LazyAdam`]).
    pub l2: f64,
    /// λ of the user and item biases (`None`: [`TrainConfig::l2`]); biases usually
    /// want less shrinkage than the factors (Koren 2009 uses separate constants).
    pub bias_l2: Option<f64>,
    /// Penalise a row once per use in a batch (a user with 3 ratings in the batch gets
    /// `3λ·row`), which is the per-rating objective of Koren, Bell & Volinsky (2009,
    /// eq. 2), instead of once per batch. Default false.
    pub l2_per_use: bool,
    /// Decoupled weight decay of the dense part's kernels (AdamW; 0: plain Adam).
    pub dense_weight_decay: f64,
    /// The objective.
    pub loss: RecLoss,
    /// Seed of the shuffles and the negatives (epoch `e` uses `seed + e`).
    pub seed: u64,
    /// Stop after this many epochs without a better validation score and restore the
    /// best epoch's weights; `None` trains every epoch (the best weights are still
    /// restored when there is a validation set).
    pub patience: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 256,
            learning_rate: 2e-3,
            l2: 0.05,
            bias_l2: None,
            l2_per_use: false,
            dense_weight_decay: 0.0,
            loss: RecLoss::Mse,
            seed: 42,
            patience: Some(3),
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub loss: f64,
    /// RMSE on the validation set (MSE training only).
    pub val_rmse: Option<f64>,
    /// The validation loss: MSE of the clipped predictions, or the BPR / softmax loss
    /// with negatives drawn from a fixed seed (the same every epoch).
    pub val_loss: Option<f64>,
    /// Wall-clock seconds of the epoch (training and validation).
    pub seconds: f64,
}

/// How a batch's predictions are scored; the pairs are laid out as the `n`
/// positives, then `n·k` negatives (negative `j` of positive `p` at `n + p·k + j`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective<'a> {
    /// `(1/n) Σ (pₖ − targetsₖ)²`.
    Mse {
        /// The ratings, one per pair.
        targets: &'a [f64],
    },
    /// BPR over `positives` and `positives · negatives` negatives.
    Bpr {
        /// `n`.
        positives: usize,
        /// `k`.
        negatives: usize,
    },
    /// Sampled softmax over `positives` groups of `1 + negatives`.
    SampledSoftmax {
        /// `n`.
        positives: usize,
        /// `k`.
        negatives: usize,
    },
}

/// `softplus(x) = ln(1 + eˣ)`, stable for large `|x|`.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The loss of predictions `p` and its gradient `∂loss/∂p` (formulas in the
/// [module docs](self)).
///
/// # Errors
/// [`RecError::Config`] when `p.len()` does not match the objective's layout.
pub fn objective_loss(p: &[f64], objective: &Objective<'_>) -> Result<(f64, Vec<f64>)> {
    let mut d = vec![0.0; p.len()];
    let loss = match *objective {
        Objective::Mse { targets } => {
            if targets.len() != p.len() || p.is_empty() {
                return Err(RecError::Config(format!("MSE: {} predictions for {} targets", p.len(), targets.len())));
            }
            let n = p.len() as f64;
            let mut l = 0.0;
            for ((d, &p), &y) in d.iter_mut().zip(p).zip(targets) {
                l += (p - y) * (p - y);
                *d = 2.0 * (p - y) / n;
            }
            l / n
        }
        Objective::Bpr { positives: n, negatives: k } | Objective::SampledSoftmax { positives: n, negatives: k } => {
            if n == 0 || k == 0 || p.len() != n * (1 + k) {
                return Err(RecError::Config(format!(
                    "ranking loss: {} predictions for {n} positives with {k} negatives each",
                    p.len()
                )));
            }
            let mut l = 0.0;
            if matches!(objective, Objective::Bpr { .. }) {
                let m = (n * k) as f64;
                for a in 0..n {
                    for j in 0..k {
                        let b = n + a * k + j;
                        let x = p[a] - p[b];
                        l += softplus(-x);
                        let g = -sigmoid(-x) / m;
                        d[a] += g;
                        d[b] -= g;
                    }
                }
                l / m
            } else {
                let nf = n as f64;
                for a in 0..n {
                    let idx: Vec<usize> = std::iter::once(a).chain((0..k).map(|j| n + a * k + j)).collect();
                    let max = idx.iter().map(|&i| p[i]).fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = idx.iter().map(|&i| (p[i] - max).exp()).sum();
                    l += max + z.ln() - p[a];
                    for &i in &idx {
                        d[i] += (p[i] - max).exp() / z / nf;
                    }
                    d[a] -= 1.0 / nf;
                }
                l / nf
            }
        }
    };
    Ok((loss, d))
}

/// The gradients of one batch.
#[derive(Debug, Clone)]
pub struct BatchGradients<T: Element> {
    /// The batch's loss.
    pub loss: f64,
    /// `∂loss/∂input` per dense input, each of its input's shape `[pairs, width]`.
    pub inputs: Vec<Tensor<T>>,
    /// `∂loss/∂parameter` per trainable dense parameter, by name.
    pub params: Vec<(String, Tensor<T>)>,
    /// `∂loss/∂prediction` per pair (the gradient of each pair's biases).
    pub predictions: Vec<f64>,
}

/// The loss of one batch and its gradients w.r.t. the gathered rows (the dense
/// inputs, fed as graph variables), the dense parameters and the predictions:
/// prediction `k` is `offsets[k] + dense(inputs)[k]`. Generic over the element type
/// so that it can be checked against finite differences in f64.
///
/// # Shapes
/// `inputs`: one `[pairs, width]` per dense input; `offsets: [pairs]`.
///
/// # Errors
/// [`RecError::Layer`] if the dense part fails; [`RecError::Autograd`] from the
/// backward pass; [`RecError::Config`] for a layout that does not match `objective`.
pub fn loss_and_gradients<T: Element>(
    dense: &Model<T>,
    inputs: Vec<Tensor<T>>,
    offsets: &[f64],
    objective: &Objective<'_>,
    rng: &mut Rng,
) -> Result<BatchGradients<T>> {
    let mut g = Graph::<T>::new();
    let vars: Vec<_> = inputs.into_iter().map(|x| g.variable(x)).collect();
    let ys = dense.forward_all(&mut g, &vars, &mut ForwardCtx::new(Mode::Train, rng), false)?;
    let y = ys[0];
    let s = g.try_value(y)?.to_vec();
    if s.len() != offsets.len() {
        return Err(RecError::Config(format!("{} offsets for {} pairs", offsets.len(), s.len())));
    }
    let p: Vec<f64> = s.iter().zip(offsets).map(|(s, o)| s.as_f64() + o).collect();
    let (loss, dp) = objective_loss(&p, objective)?;
    let seed = Tensor::from_vec(&[dp.len(), 1], dp.iter().map(|&v| T::of_f64(v)).collect());
    let grads = g.backward_with_seed(y, seed)?;
    let inputs =
        vars.iter().map(|&v| grads.wrt(v).cloned().unwrap_or_else(|| Tensor::zeros(g.value(v).shape()))).collect();
    let params = dense
        .parameters()
        .iter()
        .filter(|p| p.trainable)
        .map(|p| (p.name.clone(), grads.get(&p.name).cloned().unwrap_or_else(|| Tensor::zeros(p.shape()))))
        .collect();
    Ok(BatchGradients { loss, inputs, params, predictions: dp })
}

/// Draws a negative for `user`: uniform over `candidates`, rejecting the user's
/// training positives (sorted) up to 100 times.
fn negative(rng: &mut Rng, candidates: &[usize], positives: &[usize]) -> usize {
    let mut j = candidates[rng.random_range(0..candidates.len())];
    for _ in 0..100 {
        if positives.binary_search(&j).is_err() {
            break;
        }
        j = candidates[rng.random_range(0..candidates.len())];
    }
    j
}

/// The pairs of a batch of positives with their negatives, in [`Objective`]'s layout.
fn batch_pairs(
    batch: &[Interaction],
    k: usize,
    rng: &mut Rng,
    candidates: &[usize],
    positives: &[Vec<usize>],
) -> Vec<(Option<usize>, usize)> {
    let mut pairs: Vec<(Option<usize>, usize)> = batch.iter().map(|x| (Some(x.user), x.item)).collect();
    for x in batch {
        for _ in 0..k {
            let j = negative(rng, candidates, positives.get(x.user).map_or(&[][..], |v| v.as_slice()));
            pairs.push((Some(x.user), j));
        }
    }
    pairs
}

/// A copy of every trained weight (for early stopping).
struct Snapshot {
    tables: Vec<EmbeddingTable>,
    user_bias: EmbeddingTable,
    item_bias: EmbeddingTable,
    user_day_bias: EmbeddingTable,
    dense: Vec<(String, Tensor<f32>)>,
}

fn snapshot(m: &Recommender) -> Snapshot {
    Snapshot {
        tables: m.tables.clone(),
        user_bias: m.user_bias.clone(),
        item_bias: m.item_bias.clone(),
        user_day_bias: m.user_day_bias.clone(),
        dense: m.dense.parameters().iter().map(|p| (p.name.clone(), (*p.value).clone())).collect(),
    }
}

fn restore(m: &mut Recommender, s: Snapshot) -> Result<()> {
    m.tables = s.tables;
    m.user_bias = s.user_bias;
    m.item_bias = s.item_bias;
    m.user_day_bias = s.user_day_bias;
    for (name, v) in s.dense {
        m.dense.set_parameter(&name, v)?;
    }
    m.invalidate();
    Ok(())
}

fn check_config(cfg: &TrainConfig) -> Result<()> {
    let ok = cfg.epochs >= 1
        && cfg.batch_size >= 1
        && cfg.learning_rate.is_finite()
        && cfg.learning_rate > 0.0
        && cfg.l2.is_finite()
        && cfg.l2 >= 0.0
        && cfg.bias_l2.is_none_or(|b| b.is_finite() && b >= 0.0)
        && cfg.dense_weight_decay.is_finite()
        && cfg.dense_weight_decay >= 0.0
        && (cfg.loss == RecLoss::Mse || cfg.loss.negatives() >= 1);
    if ok {
        Ok(())
    } else {
        Err(RecError::Config(format!(
            "training settings: need epochs >= 1, batch_size >= 1, learning_rate > 0, l2 >= 0, \
             dense_weight_decay >= 0 and at least 1 negative for a ranking loss; got {cfg:?}"
        )))
    }
}

fn check_interactions(model: &Recommender, data: &[Interaction], what: &str) -> Result<()> {
    let (nu, ni) = (model.users.len(), model.items.len());
    if let Some(x) = data.iter().find(|x| x.user >= nu || x.item >= ni || !x.value.is_finite()) {
        return Err(RecError::Config(format!(
            "{what}: interaction {x:?} is out of range ({nu} users, {ni} items) or not finite"
        )));
    }
    Ok(())
}

/// Trains `model` on `train`, validating on `valid` after each epoch; `on_epoch` sees
/// each epoch's report and returns `false` to stop. Returns the reports.
///
/// Before the first epoch, the model learns from `train` what it needs for
/// prediction: which users and items were seen, the users' histories (when the spec
/// uses them), for MSE the global mean `μ` and the rating range `[min, max]`
/// (ranking losses set `μ = 0` and no range), and with a user-day bias the
/// `(user, day)` pairs of the training ratings (its rows). Each epoch shuffles `train` with a
/// ChaCha8 seeded with `seed + epoch` (which also draws the negatives); the same seed
/// gives bit-identical weights. With `valid`, the best epoch (lowest validation RMSE
/// for MSE, lowest validation loss otherwise) is restored at the end, and training
/// stops after [`TrainConfig::patience`] epochs without improvement.
///
/// # Errors
/// [`RecError::Config`] for bad settings, an empty `train`, an interaction out of
/// the model's range, or a user-day bias with a ranking loss or without timestamps; [`RecError::Layer`], [`RecError::Autograd`],
/// [`RecError::Optim`] from the dense part.
pub fn fit(
    model: &mut Recommender,
    train: &[Interaction],
    valid: Option<&[Interaction]>,
    cfg: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochReport) -> bool,
) -> Result<Vec<EpochReport>> {
    check_config(cfg)?;
    if train.is_empty() {
        return Err(RecError::Config("no training interactions".into()));
    }
    check_interactions(model, train, "training data")?;
    if let Some(v) = valid {
        check_interactions(model, v, "validation data")?;
    }
    let (nu, ni) = (model.users.len(), model.items.len());
    // What prediction needs from the training data.
    model.seen_users = vec![false; nu];
    model.seen_items = vec![false; ni];
    for x in train {
        model.seen_users[x.user] = true;
        model.seen_items[x.item] = true;
    }
    let positives = items_by_user(train, nu);
    // Every model keeps them: `recommend --exclude-seen` leaves them out.
    model.histories = positives.clone();
    if cfg.loss == RecLoss::Mse {
        let mean = train.iter().map(|x| x.value as f64).sum::<f64>() / train.len() as f64;
        model.global_bias = if model.spec.biases.global { mean as f32 } else { 0.0 };
        let lo = train.iter().map(|x| x.value).fold(f32::INFINITY, f32::min);
        let hi = train.iter().map(|x| x.value).fold(f32::NEG_INFINITY, f32::max);
        model.rating_range = Some((lo, hi));
    } else {
        model.global_bias = 0.0;
        model.rating_range = None;
    }
    if model.spec.biases.user_day {
        if cfg.loss != RecLoss::Mse {
            return Err(RecError::Config(
                "a user-day bias shifts every item of a user's day alike, so it cannot help ranking: \
                 it needs explicit ratings (MSE)"
                    .into(),
            ));
        }
        let days: std::collections::BTreeSet<(usize, i64)> =
            train.iter().filter_map(|x| x.timestamp.map(|t| (x.user, day_of(t)))).collect();
        if days.is_empty() {
            return Err(RecError::Config("a user-day bias needs timestamps: the training ratings have none".into()));
        }
        model.user_days = days.into_iter().collect();
        model.user_day_bias = EmbeddingTable::new("user_day_bias", model.user_days.len(), 1, 0.0, 0)?;
    } else {
        model.user_days = Vec::new();
        model.user_day_bias = EmbeddingTable::new("user_day_bias", 0, 1, 0.0, 0)?;
    }
    model.invalidate();
    let candidates: Vec<usize> = (0..ni).filter(|&i| model.seen_items[i]).collect();
    let k = cfg.loss.negatives();

    // The batch objective (1/n)(Σ loss + λ Σ_{rows used} ‖row‖²) with n = batch_size:
    // LazyAdam adds λ'·row, the gradient of λ'/2·‖row‖², so λ' = 2λ/n.
    let sparse_cfg = LazyAdamConfig {
        l2_per_use: cfg.l2_per_use,
        ..LazyAdamConfig::new(cfg.learning_rate, 2.0 * cfg.l2 / cfg.batch_size as f64)
    };
    let mut table_opts = model.tables.iter().map(|t| LazyAdam::new(t, sparse_cfg)).collect::<Result<Vec<_>>>()?;
    let bias_l2 = cfg.bias_l2.unwrap_or(cfg.l2);
    let bias_cfg = LazyAdamConfig {
        l2_per_use: cfg.l2_per_use,
        ..LazyAdamConfig::new(cfg.learning_rate, 2.0 * bias_l2 / cfg.batch_size as f64)
    };
    let mut user_bias_opt = LazyAdam::new(&model.user_bias, bias_cfg)?;
    let mut item_bias_opt = LazyAdam::new(&model.item_bias, bias_cfg)?;
    let mut user_day_opt = LazyAdam::new(&model.user_day_bias, bias_cfg)?;
    let mut dense_opt: Box<dyn Optimizer<f32>> = if cfg.dense_weight_decay > 0.0 {
        Box::new(Adam::adamw(AdamConfig::new(cfg.learning_rate).with_weight_decay(cfg.dense_weight_decay))?)
    } else {
        Box::new(Adam::new(AdamConfig::new(cfg.learning_rate))?)
    };

    let mut reports = Vec::new();
    let mut best: Option<(f64, Snapshot)> = None;
    let mut since_best = 0usize;
    let mut data: Vec<Interaction> = train.to_vec();
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        let mut rng = seeded_rng(cfg.seed.wrapping_add(epoch as u64));
        data.shuffle(&mut rng);
        let (mut loss_sum, mut count) = (0.0, 0usize);
        for batch in data.chunks(cfg.batch_size) {
            let pairs = batch_pairs(batch, k, &mut rng, &candidates, &positives);
            let targets: Vec<f64> = batch.iter().map(|x| x.value as f64).collect();
            let objective = match cfg.loss {
                RecLoss::Mse => Objective::Mse { targets: &targets },
                RecLoss::Bpr { negatives } => Objective::Bpr { positives: batch.len(), negatives },
                RecLoss::SampledSoftmax { negatives } => {
                    Objective::SampledSoftmax { positives: batch.len(), negatives }
                }
            };
            let inputs = model.batch_inputs(&pairs)?;
            // Times of the pairs: the positives' (the negatives, after them, have none).
            let times: Vec<Option<i64>> =
                batch.iter().map(|x| x.timestamp).chain(std::iter::repeat(None)).take(pairs.len()).collect();
            let offsets: Vec<f64> = model.offsets(&pairs, Some(&times)).iter().map(|&o| o as f64).collect();
            let grads = loss_and_gradients(&model.dense, inputs, &offsets, &objective, &mut rng)?;
            let opts = BiasOpts { user: &mut user_bias_opt, item: &mut item_bias_opt, user_day: &mut user_day_opt };
            apply(model, &pairs, &times, &grads, &mut table_opts, opts, &mut *dense_opt)?;
            loss_sum += grads.loss * batch.len() as f64;
            count += batch.len();
        }
        model.invalidate();
        let (val_rmse, val_loss) = match valid {
            Some(v) if !v.is_empty() => validation(model, v, cfg, &candidates, &positives)?,
            _ => (None, None),
        };
        let report = EpochReport {
            epoch,
            loss: loss_sum / count as f64,
            val_rmse,
            val_loss,
            seconds: start.elapsed().as_secs_f64(),
        };
        reports.push(report);
        let keep_going = on_epoch(&report);
        if let Some(score) = val_rmse.or(val_loss) {
            if best.as_ref().is_none_or(|(b, _)| score < *b) {
                best = Some((score, snapshot(model)));
                since_best = 0;
            } else {
                since_best += 1;
            }
        }
        if !keep_going || cfg.patience.is_some_and(|p| since_best >= p && best.is_some()) {
            break;
        }
    }
    if let Some((_, s)) = best {
        restore(model, s)?;
    }
    Ok(reports)
}

/// The optimizers of the biases.
struct BiasOpts<'a> {
    user: &'a mut LazyAdam,
    item: &'a mut LazyAdam,
    user_day: &'a mut LazyAdam,
}

/// Applies one batch's gradients: LazyAdam on the used rows of every table and bias,
/// Adam on the dense part.
fn apply(
    model: &mut Recommender,
    pairs: &[(Option<usize>, usize)],
    times: &[Option<i64>],
    grads: &BatchGradients<f32>,
    table_opts: &mut [LazyAdam],
    bias_opts: BiasOpts<'_>,
    dense_opt: &mut dyn Optimizer<f32>,
) -> Result<()> {
    let n = pairs.len();
    let users: Vec<Option<usize>> = pairs.iter().map(|&(u, _)| u.filter(|&u| model.seen_users[u])).collect();
    let items: Vec<Option<usize>> = pairs.iter().map(|&(_, i)| Some(i).filter(|&i| model.seen_items[i])).collect();
    // Per table: the rows used and their gradients, from every input bound to it.
    let mut per_table: Vec<(Vec<Option<usize>>, Vec<f32>)> = vec![(Vec::new(), Vec::new()); model.tables.len()];
    for (k, r) in model.resolved.iter().enumerate() {
        let Some(t) = r.table else { continue };
        let g = grads.inputs[k].to_vec();
        let d = model.tables[t].dim;
        let (idx, rows) = &mut per_table[t];
        match r.lookup {
            Lookup::User => {
                idx.extend_from_slice(&users);
                rows.extend_from_slice(&g);
            }
            Lookup::Item => {
                idx.extend_from_slice(&items);
                rows.extend_from_slice(&g);
            }
            Lookup::History => {
                // ∂/∂y_j = Σ over the batch's pairs of user u with j ∈ N(u) of g / |N(u)|:
                // summed per user first, then spread over the user's history.
                let mut by_user: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
                for (p, u) in users.iter().enumerate() {
                    let Some(u) = *u else { continue };
                    let acc = by_user.entry(u).or_insert_with(|| vec![0.0; d]);
                    acc.iter_mut().zip(&g[p * d..(p + 1) * d]).for_each(|(a, &v)| *a += v);
                }
                for (u, acc) in by_user {
                    let h = &model.histories[u];
                    if h.is_empty() {
                        continue;
                    }
                    let inv = 1.0 / h.len() as f32;
                    let scaled: Vec<f32> = acc.iter().map(|&v| v * inv).collect();
                    for &j in h {
                        idx.push(Some(j));
                        rows.extend_from_slice(&scaled);
                    }
                }
            }
            Lookup::ItemFeatures => {}
        }
    }
    for ((t, opt), (idx, rows)) in model.tables.iter_mut().zip(table_opts.iter_mut()).zip(per_table) {
        if idx.is_empty() {
            continue;
        }
        let d = t.dim;
        opt.step(t, &idx, &Tensor::from_vec(&[idx.len(), d], rows))?;
    }
    let dp = Tensor::from_vec(&[n, 1], grads.predictions.iter().map(|&v| v as f32).collect());
    if model.spec.biases.user {
        bias_opts.user.step(&mut model.user_bias, &users, &dp)?;
    }
    if model.spec.biases.item {
        bias_opts.item.step(&mut model.item_bias, &items, &dp)?;
    }
    if model.spec.biases.user_day {
        let rows: Vec<Option<usize>> = pairs.iter().zip(times).map(|(&(u, _), &t)| model.user_day_row(u, t)).collect();
        bias_opts.user_day.step(&mut model.user_day_bias, &rows, &dp)?;
    }
    if !grads.params.is_empty() {
        let mut g: Vec<(String, Tensor<f32>)> = grads.params.clone();
        let mut bound = bind(
            model
                .dense
                .parameters_mut()
                .iter_mut()
                .filter(|p| p.trainable)
                .map(|p| (p.name.as_str(), Arc::make_mut(&mut p.value))),
            g.iter_mut().map(|(name, t)| (name.as_str(), t)),
        )?;
        dense_opt.step(&mut bound)?;
    }
    Ok(())
}

/// `(val_rmse, val_loss)` of `valid`.
fn validation(
    model: &Recommender,
    valid: &[Interaction],
    cfg: &TrainConfig,
    candidates: &[usize],
    positives: &[Vec<usize>],
) -> Result<(Option<f64>, Option<f64>)> {
    if cfg.loss == RecLoss::Mse {
        let (rmse, _) = rmse_mae(model, valid)?;
        return Ok((Some(rmse), Some(rmse * rmse)));
    }
    // The same negatives every epoch, so the losses are comparable.
    let mut rng = seeded_rng(cfg.seed ^ 0x9e37_79b9_7f4a_7c15);
    let k = cfg.loss.negatives();
    let (mut sum, mut count) = (0.0, 0usize);
    for batch in valid.chunks(1024) {
        let pairs = batch_pairs(batch, k, &mut rng, candidates, positives);
        let p: Vec<f64> = model.predict(&pairs)?.iter().map(|&v| v as f64).collect();
        let objective = match cfg.loss {
            RecLoss::Bpr { negatives } => Objective::Bpr { positives: batch.len(), negatives },
            _ => Objective::SampledSoftmax { positives: batch.len(), negatives: k },
        };
        let (l, _) = objective_loss(&p, &objective)?;
        sum += l * batch.len() as f64;
        count += batch.len();
    }
    Ok((None, Some(sum / count as f64)))
}

/// Root mean squared error and mean absolute error of the model's (clipped)
/// predictions on `data` at their timestamps ([`Recommender::predict_at`]):
/// `√((1/n) Σ (r̂ − r)²)`, `(1/n) Σ |r̂ − r|`.
///
/// # Errors
/// [`RecError::Config`] for empty `data`; [`RecError::UnknownId`] for an index out of
/// range.
pub fn rmse_mae(model: &Recommender, data: &[Interaction]) -> Result<(f64, f64)> {
    if data.is_empty() {
        return Err(RecError::Config("RMSE of no interactions".into()));
    }
    let pairs: Vec<(Option<usize>, usize)> = data.iter().map(|x| (Some(x.user), x.item)).collect();
    let times: Vec<Option<i64>> = data.iter().map(|x| x.timestamp).collect();
    let p = model.predict_at(&pairs, &times)?;
    let (mut se, mut ae) = (0.0, 0.0);
    for (p, x) in p.iter().zip(data) {
        let e = *p as f64 - x.value as f64;
        se += e * e;
        ae += e.abs();
    }
    let n = data.len() as f64;
    Ok(((se / n).sqrt(), ae / n))
}
