//! The training loop: [`fit`], [`evaluate`], [`predict`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use nn_autograd::Graph;
use nn_data::{Augment, Batcher, Dataset, Targets};
use nn_layers::loss::{Loss, LossTargets};
use nn_layers::{CrossReplicaSum, ForwardCtx, Mode, Sequential};
use nn_optim::{bind, clip_grad_norm, clip_grad_value, LrSchedule, Optimizer, Regularizer};
use nn_tensor::random::seeded_rng;
use nn_tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::callbacks::{Callback, CallbackCtx, Control};
use crate::error::{Result, TrainError};
use crate::history::{EpochLog, History};
use crate::metrics::{accuracy, argmax_rows, ConfusionMatrix, MeanAccumulator};
use crate::parallel::{shard, Collective, Single};
use crate::progress::{Progress, Verbosity};

/// Settings of one [`fit`] run.
#[derive(Debug, Clone)]
pub struct FitConfig {
    /// Epochs to train in total (a resumed run counts the epochs already done).
    pub epochs: usize,
    /// Samples per batch; the last partial batch is kept.
    pub batch_size: usize,
    /// Seed of everything random in training: epoch `k`'s shuffle and dropout masks
    /// derive from `(seed, k)` only, and the augmentation of its batch `step` from
    /// `(seed, k, step)` only, so a run resumed at an epoch boundary continues
    /// exactly as an uninterrupted one.
    pub seed: u64,
    /// Reshuffle the training data every epoch (default true).
    pub shuffle: bool,
    /// Progress output.
    pub verbosity: Verbosity,
    /// L1/L2 penalties, added to the loss and reported separately as `penalty`.
    pub regularizer: Option<Regularizer>,
    /// Clip the global gradient norm to this value before each update.
    pub clip_norm: Option<f64>,
    /// Clip every gradient element to `[-v, v]` before each update.
    pub clip_value: Option<f64>,
    /// A per-step learning-rate schedule (evaluated at the optimizer's iteration count).
    pub schedule: Option<LrSchedule>,
    /// The first epoch to run (0-based): the number of epochs already done when resuming.
    pub initial_epoch: usize,
    /// Resume inside epoch `initial_epoch`, after the steps a stopped run finished
    /// ([`History::interrupted`] of that run, saved in its checkpoint). Default
    /// `None`: start the epoch at its first batch. Its `epoch` must equal
    /// `initial_epoch`.
    pub resume_within_epoch: Option<EpochProgress>,
    /// Metadata saved with models written by callbacks.
    pub metadata: serde_json::Value,
    /// Random shifts and rotations of the training images (default `None`: off).
    /// Applied to each training batch's features right before the forward pass,
    /// never to validation, [`evaluate`] or [`predict`]. Batch `step` of epoch `k`
    /// draws from [`nn_data::augment::batch_rng`]`(seed, k, step)`, a generator of
    /// its own that depends on nothing else, so runs stay reproducible and resumable.
    /// Needs image data (samples `[height, width, channels]`).
    pub augment: Option<Augment>,
    /// Per-class weights of the training loss (Keras `fit(class_weight=...)`):
    /// `class_weights[c]` multiplies the loss of each training sample of class `c`
    /// ([`nn_layers::loss::WeightedLoss`]). Validation and [`evaluate`] stay
    /// unweighted, as in Keras. Default `None`. Needs (sparse) categorical
    /// cross-entropy and one weight per class.
    pub class_weights: Option<Vec<f64>>,
    /// The data-parallel group this run is one rank of ([`crate::parallel`]); default
    /// `None`: one process. Every rank calls [`fit`] with the same model, data and
    /// settings (checked at the start: the error names the rank that differs). Each
    /// global batch of [`FitConfig::batch_size`] samples is cut into one contiguous
    /// share per rank ([`shard`]); each rank computes the loss and gradients of its
    /// share, the gradients are summed across ranks weighted by share size (so they
    /// are the gradients of the global batch's mean loss) in one flat all-reduce per
    /// step, and every rank takes the same optimizer step. The loss and metrics of
    /// each step and the validation (sharded the same way) are reduced exactly, so
    /// every rank logs, stops and schedules the same. BatchNormalization normalises
    /// with its rank's batch statistics (as PyTorch's DistributedDataParallel); the
    /// moving statistics are averaged across ranks every step, so the weights stay
    /// identical. Dropout masks of rank 0 come from the epoch's stream as in one
    /// process; rank `r > 0` draws each step's from `(seed, epoch, step, r)`.
    pub collective: Option<Arc<dyn Collective>>,
    /// With several ranks: BatchNormalization normalises with the statistics of the
    /// global batch (all ranks' shares; PyTorch's SyncBatchNorm), at the cost of two
    /// all-reduces per layer in the forward pass and one in the backward pass, instead
    /// of its rank's share. Default false. No effect in one process.
    pub sync_batchnorm: bool,
}

impl FitConfig {
    /// `epochs` epochs of batch `batch_size`, seed 0, shuffled, progress `Auto`.
    pub fn new(epochs: usize, batch_size: usize) -> Self {
        FitConfig {
            epochs,
            batch_size,
            seed: 0,
            shuffle: true,
            verbosity: Verbosity::Auto,
            regularizer: None,
            clip_norm: None,
            clip_value: None,
            schedule: None,
            initial_epoch: 0,
            resume_within_epoch: None,
            metadata: serde_json::Value::Null,
            augment: None,
            class_weights: None,
            collective: None,
            sync_batchnorm: false,
        }
    }
}

/// Where an epoch stood when training stopped between two of its steps: what a
/// checkpoint needs to continue it exactly as the uninterrupted run would have
/// (same batches, dropout draws and logged means). All randomness of epoch `epoch`
/// derives from `(seed, epoch)` except the dropout generator's position, saved here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochProgress {
    /// The epoch (0-based, so also the number of epochs completed before it).
    pub epoch: usize,
    /// Steps (batches) of it completed.
    pub steps_done: usize,
    /// The learning rate in force when the epoch began (what its log reports).
    pub learning_rate: f64,
    /// Training seconds spent in it so far.
    pub train_seconds: f64,
    /// Position of the epoch's dropout generator (ChaCha8 word position).
    pub rng_word_pos: u128,
    /// Running means of the loss, data loss, penalty and accuracy.
    pub means: [MeanAccumulator; 4],
}

/// Whether the model's output and the loss ask for class indices.
fn is_classification(loss: &Loss) -> bool {
    matches!(loss, Loss::SparseCategoricalCrossentropy { .. })
}

/// Losses computed from probabilities are computed from logits when the model ends in
/// a softmax: `log_softmax(z)` is exact where `ln(softmax(z))` underflows. Returns
/// whether to run the model up to its logits, and the loss to apply to that output.
fn stable_loss(model: &Sequential, loss: &Loss) -> (bool, Loss) {
    match loss.with_logits() {
        Some(from_logits) if model.ends_with_softmax() => (true, from_logits),
        _ => (false, *loss),
    }
}

/// Refuses a batch of features holding NaN or an infinity: a model trained or
/// evaluated on them gives NaN (or, after a ReLU, silently constant) outputs. A
/// missing value read as NaN needs the mean imputer ([`nn_data::Scaler::fit_impute_mean`])
/// first in the dataset's scalers.
fn check_finite_features(features: &nn_tensor::Tensor<f32>, name: &str, step: usize) -> Result<()> {
    if let Some(at) = features.as_slice().and_then(|v| v.iter().position(|x| !x.is_finite())) {
        let per_sample: usize = features.shape()[1..].iter().product::<usize>().max(1);
        let value = features.as_slice().map_or(f32::NAN, |v| v[at]);
        return Err(TrainError::Mismatch(format!(
            "data `{name}`: feature {} of sample {} of batch {step} is {value}: features must be finite (a missing value needs the mean imputer, Scaler::fit_impute_mean, first in the dataset's scalers)",
            at % per_sample,
            at / per_sample
        )));
    }
    Ok(())
}

/// Checks that `data` fits `model` and `loss` before any work is done.
/// `1 input`, `2 inputs`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn check_data(model: &Sequential, loss: &Loss, data: &Dataset, what: &str) -> Result<()> {
    if model.inputs().len() != 1 || model.outputs().len() != 1 {
        let names: Vec<&str> = model.inputs().iter().map(|i| i.name.as_str()).collect();
        return Err(TrainError::Mismatch(format!(
            "the model has {} ({}) and {}; a dataset feeds one input and one target, so train it \
             through the library (Model::forward_all)",
            plural(model.inputs().len(), "input"),
            names.join(", "),
            plural(model.outputs().len(), "output")
        )));
    }
    if data.sample_shape() != model.input_shape() {
        return Err(TrainError::Mismatch(format!(
            "{what} data `{}` has samples of shape {:?} but the model's input shape is {:?}",
            data.name(),
            data.sample_shape(),
            model.input_shape()
        )));
    }
    let outputs: usize = model.output_shape().iter().product();
    match data.targets() {
        Targets::Classes { .. } if model.output_shape().len() != 1 => {
            return Err(TrainError::Mismatch(format!(
                "the model's output has shape {:?} per sample, but a classifier's must be [classes]: \
                 add a Flatten or GlobalAveragePooling2D before the last Dense layer",
                model.output_shape()
            )));
        }
        Targets::Classes { num_classes, .. } => {
            if !is_classification(loss) {
                return Err(TrainError::Mismatch(format!(
                    "{what} data `{}` has class labels, but the loss {loss:?} needs real-valued targets",
                    data.name()
                )));
            }
            if *num_classes > outputs {
                return Err(TrainError::Mismatch(format!(
                    "{what} data `{}` has {num_classes} classes but the model outputs {outputs} values",
                    data.name()
                )));
            }
        }
        Targets::Real(t) if is_classification(loss) => {
            check_sequence_targets(model, t, &format!("{what} data `{}`", data.name()))?;
        }
        Targets::Real(t) => {
            let per_sample: usize = t.shape()[1..].iter().product();
            if per_sample != outputs {
                return Err(TrainError::Mismatch(format!(
                    "{what} data `{}` has {per_sample} target values per sample but the model outputs {outputs}",
                    data.name()
                )));
            }
        }
    }
    Ok(())
}

/// Checks class indices per position for a sequence model (a language model):
/// targets `[N, d1, ..., dk]` of whole numbers for a model whose output per sample
/// is `[d1, ..., dk, classes]` (e.g. logits `[context, vocab]` against the next
/// token at each of the `context` positions), each in `[0, classes)`.
fn check_sequence_targets(model: &Sequential, t: &Tensor<f32>, what: &str) -> Result<()> {
    let out = model.output_shape();
    let positions = &t.shape()[1..];
    if out.len() < 2 || positions != &out[..out.len() - 1] {
        return Err(TrainError::Mismatch(format!(
            "{what} has real-valued targets of shape {:?} per sample, but sparse categorical cross-entropy needs class labels \
             (or, for a sequence model, whole-number targets [positions] for an output [positions, classes]; the model outputs {:?})",
            positions, out
        )));
    }
    let classes = out[out.len() - 1];
    if let Some((i, &v)) =
        t.array().iter().enumerate().find(|(_, &v)| !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes))
    {
        let per_sample: usize = positions.iter().product::<usize>().max(1);
        return Err(TrainError::Mismatch(format!(
            "{what}: target {v} at position {} of sample {} is not a class index in [0, {classes})",
            i % per_sample,
            i / per_sample
        )));
    }
    Ok(())
}

/// Per-position predictions and targets of a sequence model: the argmax over the
/// last axis of `out` (`[N, ..., classes]`) and the whole-number targets `t`
/// (`[N, ...]`, checked by [`check_sequence_targets`]). Returns (hits, positions).
fn sequence_hits(out: &Tensor<f32>, t: &Tensor<f32>) -> (usize, usize) {
    let classes = out.shape().last().copied().unwrap_or(1).max(1);
    let Some(scores) = out.as_slice() else {
        let owned = out.to_vec();
        return count_hits(&owned, t, classes);
    };
    count_hits(scores, t, classes)
}

fn count_hits(scores: &[f32], t: &Tensor<f32>, classes: usize) -> (usize, usize) {
    /// Rows per piece of nn's pool (a language model's batch is 2,048 rows of 2,048).
    const ROWS: usize = 64;
    let targets = t.to_vec();
    let rows = (scores.len() / classes).min(targets.len());
    // Hits per piece of rows, counted on nn's pool (exact in f32: at most 64 each).
    let counts: Vec<f32> = nn_tensor::par_build(rows.div_ceil(ROWS), 1, |piece, count| {
        let first = piece * ROWS;
        let last = (first + ROWS).min(rows);
        let hits = (first..last)
            .filter(|&r| nn_tensor::fastmath::argmax_f32(&scores[r * classes..][..classes]) as f32 == targets[r])
            .count();
        count[0] = hits as f32;
    });
    (counts.iter().map(|&c| c as usize).sum(), rows)
}

/// Reshapes real targets `[N]` to the model's output `[N, outputs]` when they match.
fn loss_targets<'a>(
    targets: &'a Targets,
    reshaped: &'a mut Option<Tensor<f32>>,
    out_shape: &[usize],
) -> LossTargets<'a> {
    match targets {
        Targets::Classes { labels, .. } => LossTargets::Classes(labels),
        Targets::Real(t) => {
            if t.shape() != out_shape {
                *reshaped = t.try_reshape(out_shape).ok();
            }
            LossTargets::Values(reshaped.as_ref().unwrap_or(t))
        }
    }
}

/// Checks that `augment` is in range and `train` holds images `[height, width, channels]`.
fn check_augment(augment: &Augment, train: &Dataset) -> Result<()> {
    augment.validate().map_err(|e| TrainError::Config(format!("augmentation {augment}: {e}")))?;
    if train.sample_shape().len() != 3 {
        return Err(TrainError::Config(format!(
            "augmentation ({augment}) needs image data with samples [height, width, channels], but training data `{}` has samples of shape {:?}",
            train.name(),
            train.sample_shape()
        )));
    }
    Ok(())
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    // SplitMix64 of (seed, epoch): distinct, well-mixed streams per epoch.
    let mut z = seed ^ (epoch as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The dropout stream of rank `rank > 0` at step `step` of epoch `epoch`.
fn rank_step_seed(seed: u64, epoch: usize, step: usize, rank: usize) -> u64 {
    epoch_seed(epoch_seed(seed, epoch) ^ (rank as u64).wrapping_mul(0xD1B5_4A32_D192_ED03), step)
}

/// A 64-bit fingerprint (SipHash with fixed keys) of what `feed` writes.
fn fingerprint(feed: impl FnOnce(&mut std::collections::hash_map::DefaultHasher)) -> [u8; 8] {
    use std::hash::Hasher as _;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    feed(&mut h);
    h.finish().to_le_bytes()
}

/// The fingerprint of a dataset's samples, targets and scaling.
fn data_fingerprint(data: &Dataset) -> [u8; 8] {
    use std::hash::Hasher as _;
    fingerprint(|h| {
        h.write_usize(data.len());
        for d in data.sample_shape() {
            h.write_usize(*d);
        }
        match data.raw_bytes() {
            Some(bytes) => h.write(bytes),
            None => data.features().array().iter().for_each(|x| h.write_u32(x.to_bits())),
        }
        h.write(format!("{:?}", data.scalers()).as_bytes());
        match data.targets() {
            Targets::Classes { labels, num_classes } => {
                h.write_usize(*num_classes);
                labels.iter().for_each(|l| h.write_usize(*l));
            }
            Targets::Real(t) => t.array().iter().for_each(|x| h.write_u32(x.to_bits())),
        }
    })
}

/// Checks, before anything is trained or written, that every rank of
/// `config.collective` trains the same model from the same weights on the same data
/// with the same settings, and that every batch gives every rank at least one sample
/// ([`fit`] checks this again itself). Optimizer settings other than the learning
/// rate are the caller's to compare (nn-cli compares its whole run configuration).
/// Nothing to check without a collective or with one rank.
///
/// # Errors
/// [`TrainError::Parallel`] naming the first rank that differs from rank 0, on every
/// rank; [`TrainError::Config`] when a batch would leave a rank without samples.
pub fn check_ranks(
    model: &Sequential,
    optimizer: &dyn Optimizer<f32>,
    train: &Dataset,
    validation: Option<&Dataset>,
    config: &FitConfig,
) -> Result<()> {
    let Some(group) = config.collective.as_deref().filter(|g| g.size() > 1) else { return Ok(()) };
    if config.batch_size == 0 || train.is_empty() {
        return Ok(()); // fit refuses these itself
    }
    let steps = train.len().div_ceil(config.batch_size);
    check_group(group, model, optimizer, train, validation, config, steps)
}

/// [`check_ranks`] with the group and the number of steps per epoch.
fn check_group(
    group: &dyn Collective,
    model: &Sequential,
    optimizer: &dyn Optimizer<f32>,
    train: &Dataset,
    validation: Option<&Dataset>,
    config: &FitConfig,
    steps: usize,
) -> Result<()> {
    use std::hash::Hasher as _;
    let size = group.size();
    let last = train.len() - (steps - 1) * config.batch_size;
    if config.batch_size < size || last < size {
        return Err(TrainError::Config(format!(
            "a batch must give each of the {size} ranks at least one sample, but the batch size is {} and the last batch of an epoch holds {last} of the {} training samples; choose another --batch-size",
            config.batch_size,
            train.len()
        )));
    }
    let settings = format!(
        "{:?}",
        (
            config.epochs,
            config.batch_size,
            config.seed,
            config.shuffle,
            config.initial_epoch,
            &config.resume_within_epoch,
            &config.regularizer,
            config.clip_norm,
            config.clip_value,
            &config.schedule,
            &config.augment,
            (&config.class_weights, config.sync_batchnorm),
        )
    );
    group.check_same("training settings", settings.as_bytes())?;
    group.check_same("training data", &data_fingerprint(train))?;
    if let Some(v) = validation {
        group.check_same("validation data", &data_fingerprint(v))?;
    }
    let weights = fingerprint(|h| {
        h.write_u64(optimizer.learning_rate().to_bits());
        for p in model.parameters() {
            h.write(p.name.as_bytes());
            h.write_u8(p.trainable as u8);
            p.value.shape().iter().for_each(|d| h.write_usize(*d));
            p.value.array().iter().for_each(|x| h.write_u32(x.to_bits()));
        }
    });
    group.check_same("model and initial weights", &weights)
}

/// Sums every rank's gradients (of its weighted share `(n_r / n) L_r` of the batch's
/// loss) into the gradients of the global batch, in one flat all-reduce in the order
/// of `order` (the trainable parameters, model order).
fn reduce_gradients(
    group: &dyn Collective,
    grads: &mut Vec<(String, Tensor<f32>)>,
    order: &[(String, Vec<usize>)],
) -> Result<()> {
    let total: usize = order.iter().map(|(_, shape)| shape.iter().product::<usize>()).sum();
    let mut flat = Vec::with_capacity(total);
    for (name, shape) in order {
        match grads.iter().find(|(n, _)| n == name) {
            Some((_, g)) if g.shape() == shape.as_slice() => flat.extend(g.array().iter()),
            Some((_, g)) => {
                return Err(TrainError::Mismatch(format!(
                    "gradient of `{name}` has shape {:?}, its parameter {shape:?}",
                    g.shape()
                )))
            }
            None => flat.extend(std::iter::repeat_n(0.0, shape.iter().product())),
        }
    }
    group.all_reduce_sum_f32(&mut flat)?;
    let mut at = 0;
    let mut out = Vec::with_capacity(order.len());
    for (name, shape) in order {
        let len: usize = shape.iter().product();
        let t = Tensor::from(
            nn_tensor::ndarray::ArrayD::from_shape_vec(shape.clone(), flat[at..at + len].to_vec())
                .map_err(|e| TrainError::Mismatch(format!("gradient of `{name}`: {e}")))?,
        );
        out.push((name.clone(), t));
        at += len;
    }
    *grads = out;
    Ok(())
}

/// Averages the moving statistics a training step produced across the ranks,
/// weighted by each rank's share `weight = n_r / n` of the batch, so every rank
/// applies the same update.
fn reduce_state_updates(group: &dyn Collective, updates: &mut [(String, Tensor<f32>)], weight: f32) -> Result<()> {
    let mut flat: Vec<f32> =
        updates.iter().flat_map(|(_, t)| t.array().iter().map(|x| x * weight).collect::<Vec<_>>()).collect();
    group.all_reduce_sum_f32(&mut flat)?;
    let mut at = 0;
    for (_, t) in updates.iter_mut() {
        for x in t.array_mut().iter_mut() {
            *x = flat[at];
            at += 1;
        }
    }
    Ok(())
}

/// A group's all-reduce as the sum synchronised BatchNormalization asks for.
#[derive(Debug)]
struct GroupSum(Arc<dyn Collective>);

impl CrossReplicaSum for GroupSum {
    fn sum_f64(&self, values: &mut [f64]) -> std::result::Result<(), String> {
        self.0.all_reduce_sum_f64(values).map_err(|e| e.to_string())
    }
}

/// Whether any rank asks to stop (`local`): every rank gets the same answer.
fn any_rank_stops(group: &dyn Collective, local: bool) -> Result<bool> {
    if group.size() == 1 {
        return Ok(local);
    }
    let mut flag = [local as u8 as f64];
    group.all_reduce_sum_f64(&mut flag)?;
    Ok(flag[0] > 0.0)
}

/// Trains `model` on `train` (Keras `Model.fit`): for each epoch, a seeded shuffle,
/// then per batch augmentation (when [`FitConfig::augment`] is set) → forward →
/// loss (+ penalties) → backward → clipping → schedule → optimizer step; then
/// validation in evaluation mode, callbacks, and one line of progress. Dropout and
/// augmentation are active only here, never in validation.
///
/// Returns the [`History`]; training that a callback stopped (early stopping, a
/// non-finite loss) still returns `Ok`, with the reason in [`History::stopped`].
///
/// # Errors
/// [`TrainError::Config`] for a batch size or epoch count of 0, or for augmentation
/// ([`FitConfig::augment`]) of data that is not images; [`TrainError::Mismatch`]
/// when the data does not fit the model or the loss (checked before training);
/// errors of the layers, optimizer and callbacks as they occur.
pub fn fit(
    model: &mut Sequential,
    optimizer: &mut dyn Optimizer<f32>,
    loss: &Loss,
    train: &Dataset,
    validation: Option<&Dataset>,
    config: &FitConfig,
    callbacks: &mut [&mut dyn Callback],
) -> Result<History> {
    if config.batch_size == 0 {
        return Err(TrainError::Config("batch size must be at least 1".into()));
    }
    if config.epochs == 0 {
        return Err(TrainError::Config("epochs must be at least 1".into()));
    }
    if train.is_empty() {
        return Err(TrainError::Config(format!("training data `{}` is empty", train.name())));
    }
    check_data(model, loss, train, "training")?;
    if let Some(v) = validation {
        check_data(model, loss, v, "validation")?;
    }
    if let Some(s) = &config.schedule {
        s.validate()?;
    }
    if let Some(a) = &config.augment {
        check_augment(a, train)?;
    }
    let (use_logits, train_loss) = stable_loss(model, loss);
    let weighted_loss = config.class_weights.as_ref().map(|w| train_loss.with_class_weights(w.clone()));
    if let Some(w) = &config.class_weights {
        let classes: usize = model.output_shape().last().copied().unwrap_or(0);
        if w.len() != classes
            || !matches!(loss, Loss::SparseCategoricalCrossentropy { .. } | Loss::CategoricalCrossentropy { .. })
        {
            return Err(TrainError::Config(format!(
                "class weights: {} weights for a model with {classes} outputs and the loss {}; one weight per class of a (sparse) categorical cross-entropy is needed",
                w.len(),
                loss.name()
            )));
        }
    }
    let classification = is_classification(loss);
    let batcher = if config.shuffle {
        Batcher::new(config.batch_size)?.shuffled(config.seed)
    } else {
        Batcher::new(config.batch_size)?.sequential()
    };
    let steps = batcher.num_batches(train.len());
    let group: &dyn Collective = config.collective.as_deref().unwrap_or(&Single);
    let (rank, size) = (group.rank(), group.size());
    if size > 1 {
        check_group(group, model, optimizer, train, validation, config, steps)?;
    }
    // Synchronised BatchNormalization sums its statistics across the ranks.
    let cross_replica: Option<Arc<dyn CrossReplicaSum>> = match (&config.collective, config.sync_batchnorm) {
        (Some(c), true) if size > 1 => Some(Arc::new(GroupSum(Arc::clone(c)))),
        _ => None,
    };
    // The trainable parameters in model order: the layout of the flat all-reduce.
    let order: Vec<(String, Vec<usize>)> =
        model.parameters().iter().filter(|p| p.trainable).map(|p| (p.name.clone(), p.value.shape().to_vec())).collect();
    let mut progress = Progress::new(config.verbosity, config.epochs, steps);
    let mut history = History { seed: config.seed, ..History::default() };
    let trainable: HashSet<String> =
        model.parameters().iter().filter(|p| p.trainable).map(|p| p.name.clone()).collect();

    {
        let mut ctx = CallbackCtx { model, optimizer, progress: &mut progress, metadata: &config.metadata };
        for cb in callbacks.iter_mut() {
            cb.on_train_begin(&mut ctx)?;
        }
    }

    let model_ref: &mut Sequential = model;
    let mut within = config.resume_within_epoch.clone();
    if let Some(p) = &within {
        if p.epoch != config.initial_epoch || p.steps_done >= steps {
            return Err(TrainError::Config(format!(
                "resuming inside epoch {} after {} steps does not fit a run starting at epoch {} with {steps} steps per epoch",
                p.epoch + 1,
                p.steps_done,
                config.initial_epoch + 1
            )));
        }
    }
    'epochs: for epoch in config.initial_epoch..config.epochs {
        let shown_epoch = epoch + 1;
        progress.start_epoch(shown_epoch);
        let started = Instant::now();
        let mut rng = seeded_rng(epoch_seed(config.seed, epoch));
        let [mut loss_mean, mut data_loss_mean, mut penalty_mean, mut acc_mean] = [MeanAccumulator::new(); 4];
        let mut learning_rate = optimizer.learning_rate();
        let mut skip = 0;
        let mut seconds_before = 0.0;
        if let Some(p) = within.take() {
            rng.set_word_pos(p.rng_word_pos);
            [loss_mean, data_loss_mean, penalty_mean, acc_mean] = p.means;
            learning_rate = p.learning_rate;
            skip = p.steps_done;
            seconds_before = p.train_seconds;
        }
        for (step, batch) in batcher.batches(train, epoch as u64).enumerate().skip(skip) {
            let n = batch.len();
            let mut features = batch.features;
            if epoch == config.initial_epoch {
                // Every sample passes through a batch of the first epoch; later epochs
                // see the same values in another order.
                check_finite_features(&features, train.name(), step)?;
            }
            if let Some(a) = &config.augment {
                a.apply(&mut features, &mut nn_data::augment::batch_rng(config.seed, epoch as u64, step as u64))?;
            }
            // This rank's share of the batch (all of it in one process).
            let (features, local_targets) = if size > 1 {
                let share = shard(n, rank, size);
                let indices: Vec<usize> = share.clone().collect();
                (features.try_slice_batch(share.start, share.end)?, batch.targets.select(&indices)?)
            } else {
                (features, batch.targets)
            };
            let local_n = features.shape()[0];
            let mut step_rng;
            let rng_now = if rank == 0 {
                &mut rng
            } else {
                step_rng = seeded_rng(rank_step_seed(config.seed, epoch, step, rank));
                &mut step_rng
            };
            let mut g = Graph::<f32>::new();
            let x = g.input(features);
            let mut fctx = ForwardCtx::new(Mode::Train, rng_now);
            if let Some(sum) = &cross_replica {
                fctx = fctx.with_cross_replica(Arc::clone(sum));
            }
            let out = if use_logits {
                model_ref.forward_logits(&mut g, x, &mut fctx)?
            } else {
                model_ref.forward(&mut g, x, &mut fctx)?
            };
            let mut state_updates = std::mem::take(&mut fctx.state_updates);
            let out_shape = g.value(out).shape().to_vec();
            let mut reshaped = None;
            let targets = loss_targets(&local_targets, &mut reshaped, &out_shape);
            let loss_var = match &weighted_loss {
                Some(w) => w.compute(&mut g, out, &targets)?,
                None => train_loss.compute(&mut g, out, &targets)?,
            };
            let mut data_loss = g.value(loss_var).item() as f64;
            let mut batch_accuracy = None;
            if classification {
                match &local_targets {
                    Targets::Classes { labels, .. } => {
                        batch_accuracy = Some(accuracy(&argmax_rows(g.value(out)), &labels[..]));
                    }
                    // A sequence model: the fraction of positions predicted right.
                    Targets::Real(t) => {
                        let (hits, total) = sequence_hits(g.value(out), t);
                        batch_accuracy = Some(hits as f64 / total.max(1) as f64);
                    }
                }
            }
            // The global batch's mean loss is Σ_r (n_r / n) L_r, L_r the mean loss of
            // rank r's n_r samples: each rank differentiates its term, and the sum of
            // the terms' gradients over the ranks is the batch's gradient.
            let weight = local_n as f64 / n as f64;
            let objective = if size > 1 { g.try_mul_scalar(loss_var, weight as f32)? } else { loss_var };
            // Consumes the graph, freeing each layer's activations once backward has
            // passed it, and its references to the parameters: updates copy nothing.
            let mut grads: Vec<(String, Tensor<f32>)> = g.backward_once(objective)?.into_vec();
            if size > 1 {
                reduce_gradients(group, &mut grads, &order)?;
                if cross_replica.is_none() {
                    // Synchronised BatchNormalization's updates are already the same
                    // on every rank (from the global statistics).
                    reduce_state_updates(group, &mut state_updates, weight as f32)?;
                }
                let mut sums = [data_loss * local_n as f64, batch_accuracy.unwrap_or(0.0) * local_n as f64];
                group.all_reduce_sum_f64(&mut sums)?;
                data_loss = sums[0] / n as f64;
                batch_accuracy = batch_accuracy.map(|_| sums[1] / n as f64);
            }
            if let Some(a) = batch_accuracy {
                acc_mean.add(a, n);
            }
            let penalty = match &config.regularizer {
                Some(r) => r.penalty(
                    model_ref.parameters().iter().filter(|p| p.trainable).map(|p| (p.name.as_str(), &*p.value)),
                ),
                None => 0.0,
            };
            let total = data_loss + penalty;
            for cb in callbacks.iter_mut() {
                if let Control::Stop(reason) = cb.on_batch_loss(shown_epoch, step + 1, total) {
                    progress.message(&reason);
                    history.stopped = Some(reason);
                    break 'epochs;
                }
            }
            {
                let mut bound = bind(
                    model_ref
                        .parameters_mut()
                        .iter_mut()
                        .filter(|p| p.trainable)
                        .map(|p| (p.name.as_str(), Arc::make_mut(&mut p.value))),
                    grads
                        .iter_mut()
                        .filter(|(name, _)| trainable.contains(name.as_str()))
                        .map(|(name, g)| (name.as_str(), g)),
                )?;
                if let Some(r) = &config.regularizer {
                    r.apply(&mut bound)?;
                }
                if let Some(v) = config.clip_value {
                    clip_grad_value(&mut bound, v)?;
                }
                if let Some(max_norm) = config.clip_norm {
                    clip_grad_norm(&mut bound, max_norm)?;
                }
                if let Some(s) = &config.schedule {
                    s.apply(&mut *optimizer)?;
                }
                optimizer.step(&mut bound)?;
            }
            model_ref.apply_state_updates(state_updates)?;
            loss_mean.add(total, n);
            data_loss_mean.add(data_loss, n);
            penalty_mean.add(penalty, n);
            let mut running = vec![("loss".to_string(), loss_mean.mean())];
            if classification {
                running.push(("accuracy".to_string(), acc_mean.mean()));
            }
            progress.step(step + 1, &running);
            let mut stop = None;
            for cb in callbacks.iter_mut() {
                if let Control::Stop(reason) = cb.on_batch_end(shown_epoch, step + 1) {
                    stop.get_or_insert(reason);
                }
            }
            if any_rank_stops(group, stop.is_some())? && stop.is_none() {
                stop = Some(crate::parallel::STOPPED_BY_ANOTHER_RANK.to_string());
            }
            if let Some(reason) = stop {
                if step + 1 < steps {
                    progress.message(&reason);
                    history.stopped = Some(reason);
                    history.interrupted = Some(EpochProgress {
                        epoch,
                        steps_done: step + 1,
                        learning_rate,
                        train_seconds: seconds_before + started.elapsed().as_secs_f64(),
                        rng_word_pos: rng.get_word_pos(),
                        means: [loss_mean, data_loss_mean, penalty_mean, acc_mean],
                    });
                    break 'epochs;
                }
            }
        }
        let train_seconds = seconds_before + started.elapsed().as_secs_f64();
        let mut metrics = vec![("loss".to_string(), loss_mean.mean())];
        if classification {
            metrics.push(("accuracy".to_string(), acc_mean.mean()));
        }
        if config.regularizer.is_some() {
            metrics.push(("data_loss".to_string(), data_loss_mean.mean()));
            metrics.push(("penalty".to_string(), penalty_mean.mean()));
        }
        let val_started = Instant::now();
        if let Some(v) = validation {
            // At the training batch size, as Keras's `validation_batch_size` default:
            // the evaluation's buffers then reuse the training step's freed memory
            // (a larger batch raised the resnet preset's peak RSS by about 50 MiB).
            callbacks.iter_mut().for_each(|cb| cb.on_test_begin());
            let e = evaluate_in(model_ref, loss, v, config.batch_size, group);
            callbacks.iter_mut().for_each(|cb| cb.on_test_end());
            let e = e?;
            metrics.push(("val_loss".to_string(), e.loss));
            for (k, val) in e.metrics {
                metrics.push((format!("val_{k}"), val));
            }
        }
        let log = EpochLog {
            epoch: shown_epoch,
            metrics,
            learning_rate,
            train_seconds,
            val_seconds: val_started.elapsed().as_secs_f64(),
        };
        progress.end_epoch(&log);
        history.epochs.push(log.clone());
        let mut stop = None;
        let mut ctx = CallbackCtx { model: model_ref, optimizer, progress: &mut progress, metadata: &config.metadata };
        for cb in callbacks.iter_mut() {
            if let Control::Stop(reason) = cb.on_epoch_end(&log, &mut ctx)? {
                stop.get_or_insert(reason);
            }
        }
        if any_rank_stops(group, stop.is_some())? && stop.is_none() {
            stop = Some(crate::parallel::STOPPED_BY_ANOTHER_RANK.to_string());
        }
        if let Some(reason) = stop {
            progress.message(&reason);
            history.stopped = Some(reason);
            break;
        }
    }
    let mut ctx = CallbackCtx { model: model_ref, optimizer, progress: &mut progress, metadata: &config.metadata };
    for cb in callbacks.iter_mut() {
        cb.on_train_end(&mut history, &mut ctx)?;
    }
    Ok(history)
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The loss, averaged over every sample (a partial batch counts by its size).
    pub loss: f64,
    /// Other metrics: `accuracy` for class labels; `mse` and `mae` for real targets.
    pub metrics: Vec<(String, f64)>,
    /// For class labels: the confusion matrix (`counts[target][predicted]`).
    pub confusion: Option<ConfusionMatrix>,
}

impl Evaluation {
    /// The value of metric `name` (`loss` included).
    pub fn get(&self, name: &str) -> Option<f64> {
        if name == "loss" {
            return Some(self.loss);
        }
        self.metrics.iter().find(|(k, _)| k == name).map(|&(_, v)| v)
    }
}

/// Evaluates `model` on `data` in evaluation mode (no dropout, BatchNorm moving
/// statistics, no graph recorded): the loss and metrics averaged over all samples
/// (Keras `Model.evaluate`).
///
/// # Errors
/// [`TrainError::Mismatch`] when the data does not fit the model or loss;
/// [`TrainError::Config`] for a batch size of 0 or empty data.
pub fn evaluate(model: &Sequential, loss: &Loss, data: &Dataset, batch_size: usize) -> Result<Evaluation> {
    evaluate_in(model, loss, data, batch_size, &Single)
}

/// [`evaluate`] on the ranks of `group`: each rank evaluates its contiguous share
/// ([`shard`]) of `data`, and the sums (loss × samples, confusion counts, squared and
/// absolute errors) are reduced, so every rank gets the figures of the whole data
/// (equal to [`evaluate`]'s up to the order of the additions). With one rank this
/// is [`evaluate`].
///
/// # Errors
/// As [`evaluate`]; [`TrainError::Parallel`] when the ranks' collectives fail.
pub fn evaluate_in(
    model: &Sequential,
    loss: &Loss,
    data: &Dataset,
    batch_size: usize,
    group: &dyn Collective,
) -> Result<Evaluation> {
    if batch_size == 0 {
        return Err(TrainError::Config("batch size must be at least 1".into()));
    }
    if data.is_empty() {
        return Err(TrainError::Config(format!("evaluation data `{}` is empty", data.name())));
    }
    check_data(model, loss, data, "evaluation")?;
    let classes = data.targets().num_classes().map(|c| c.max(model.output_shape().iter().product()));
    let mut sums = if group.size() > 1 {
        let share: Vec<usize> = shard(data.len(), group.rank(), group.size()).collect();
        let mut sums = if share.is_empty() {
            EvalSums::new(classes)
        } else {
            evaluation_sums(model, loss, &data.subset(&share)?, batch_size, classes)?
        };
        let mut flat = sums.to_flat();
        group.all_reduce_sum_f64(&mut flat)?;
        sums.set_flat(&flat);
        sums
    } else {
        evaluation_sums(model, loss, data, batch_size, classes)?
    };
    let mut metrics = Vec::new();
    let confusion = sums.confusion.take();
    if let Some(cm) = &confusion {
        metrics.push(("accuracy".to_string(), cm.accuracy()));
    } else if is_classification(loss) {
        // A sequence model: the fraction of positions whose argmax is the target.
        metrics.push(("accuracy".to_string(), sums.hits / sums.count as f64));
    } else {
        metrics.push(("mse".to_string(), sums.se / sums.count as f64));
        metrics.push(("mae".to_string(), sums.ae / sums.count as f64));
    }
    Ok(Evaluation { loss: sums.loss.mean(), metrics, confusion })
}

/// What [`evaluate_in`] adds up over samples.
struct EvalSums {
    loss: MeanAccumulator,
    confusion: Option<ConfusionMatrix>,
    se: f64,
    ae: f64,
    /// Positions of a sequence model predicted right (sparse targets per position).
    hits: f64,
    count: usize,
}

impl EvalSums {
    fn new(classes: Option<usize>) -> EvalSums {
        EvalSums {
            loss: MeanAccumulator::new(),
            confusion: classes.map(ConfusionMatrix::new),
            se: 0.0,
            ae: 0.0,
            hits: 0.0,
            count: 0,
        }
    }

    /// `[loss × samples, samples, se, ae, count, hits, confusion counts row by row...]`.
    fn to_flat(&self) -> Vec<f64> {
        let mut v = vec![self.loss.sum(), self.loss.count() as f64, self.se, self.ae, self.count as f64, self.hits];
        if let Some(cm) = &self.confusion {
            v.extend(cm.counts().iter().flatten().map(|&c| c as f64));
        }
        v
    }

    fn set_flat(&mut self, v: &[f64]) {
        self.loss = MeanAccumulator::from_sum(v[0], v[1] as usize);
        self.se = v[2];
        self.ae = v[3];
        self.count = v[4] as usize;
        self.hits = v[5];
        if let Some(cm) = &mut self.confusion {
            for (c, x) in cm.counts_mut().iter_mut().flatten().zip(&v[6..]) {
                *c = *x as u64;
            }
        }
    }
}

/// The sums of [`evaluate`] over `data` (checked by the caller).
fn evaluation_sums(
    model: &Sequential,
    loss: &Loss,
    data: &Dataset,
    batch_size: usize,
    classes: Option<usize>,
) -> Result<EvalSums> {
    let (use_logits, eval_loss) = stable_loss(model, loss);
    let classification = is_classification(loss);
    let mut sums = EvalSums::new(classes);
    for batch in Batcher::new(batch_size)?.sequential().batches(data, 0) {
        let n = batch.len();
        check_finite_features(&batch.features, data.name(), 0)?;
        // The model runs without a graph where its layers allow (Sequential::infer);
        // the loss is computed on a small graph over its output.
        let mut g = Graph::<f32>::no_grad();
        let out = g.input(model.infer(batch.features.array().view(), use_logits)?);
        let out_shape = g.value(out).shape().to_vec();
        let mut reshaped = None;
        let targets = loss_targets(&batch.targets, &mut reshaped, &out_shape);
        let l = eval_loss.compute(&mut g, out, &targets)?;
        sums.loss.add(g.value(l).item() as f64, n);
        match (&batch.targets, &mut sums.confusion) {
            (Targets::Classes { labels, .. }, Some(cm)) if classification => cm.add(&argmax_rows(g.value(out)), labels),
            (Targets::Real(t), _) if classification => {
                let (hits, total) = sequence_hits(g.value(out), t);
                sums.hits += hits as f64;
                sums.count += total;
            }
            (Targets::Real(_), _) => {
                if let LossTargets::Values(t) = targets {
                    for (p, y) in g.value(out).array().iter().zip(t.array().iter()) {
                        let d = (*p - *y) as f64;
                        sums.se += d * d;
                        sums.ae += d.abs();
                        sums.count += 1;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(sums)
}

/// The result of [`predict`].
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// The model's outputs `[N, outputs]`: class probabilities when the model ends
    /// in a softmax, raw outputs otherwise.
    pub outputs: Tensor<f32>,
    /// The index of each row's largest output (the predicted class).
    pub classes: Vec<usize>,
}

/// Runs `model` on `features` `[N, ...input_shape]` in evaluation mode, `batch_size`
/// samples at a time, without recording a graph (Keras `Model.predict`).
///
/// # Errors
/// [`TrainError::Mismatch`] when the features' sample shape differs from the model's
/// input shape; [`TrainError::Config`] for a batch size of 0.
pub fn predict(model: &Sequential, features: &Tensor<f32>, batch_size: usize) -> Result<Predictions> {
    if batch_size == 0 {
        return Err(TrainError::Config("batch size must be at least 1".into()));
    }
    if features.ndim() == 0 || &features.shape()[1..] != model.input_shape() {
        return Err(TrainError::Mismatch(format!(
            "input has shape {:?} but the model expects [N, {}]",
            features.shape(),
            model.input_shape().iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    let n = features.shape()[0];
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + batch_size).min(n);
        // The batch is read in place (no copy) and run without a graph where the
        // layers allow (Sequential::infer).
        let x = features.array().slice_axis(nn_tensor::ndarray::Axis(0), nn_tensor::ndarray::Slice::from(start..end));
        let value = model.infer(x, false)?;
        let rows = value.shape()[0];
        let cols = value.len() / rows.max(1);
        parts.push(value.try_into_reshape(&[rows, cols])?);
        start = end;
    }
    let outputs = if parts.is_empty() {
        Tensor::zeros(&[0, model.output_shape().iter().product()])
    } else {
        let refs: Vec<&Tensor<f32>> = parts.iter().collect();
        Tensor::try_concat(0, &refs)?
    };
    let classes = if n == 0 { Vec::new() } else { argmax_rows(&outputs) };
    Ok(Predictions { outputs, classes })
}
