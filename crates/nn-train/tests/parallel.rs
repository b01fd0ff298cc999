//! Data-parallel `fit` on ranks that are threads (`ThreadGroup`): the same losses as
//! one process with the same global batch, identical weights on every rank, the
//! validation figures of the whole set, and refusals when the ranks disagree.

use std::sync::Arc;
use std::thread;

use nn_data::digits::{self, Layout};
use nn_data::Dataset;
use nn_layers::loss::Loss;
use nn_layers::{ModelSpec, Sequential};
use nn_optim::{AdamConfig, OptimizerConfig, ParamRules};
use nn_train::parallel::{Collective, ThreadGroup};
use nn_train::{evaluate, evaluate_in, fit, FitConfig, History, Verbosity};

fn sce() -> Loss {
    Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 }
}

/// The digits as 64 features in [0, 1]: 1,437 training and 360 validation samples.
fn data() -> (Dataset, Dataset) {
    digits::load_as(Layout::Flat, true).split_validation(0.2).unwrap()
}

const MLP: &str = r#"{"input_shape": [64], "layers": [
    {"type": "Dense", "units": 32, "activation": "relu"},
    {"type": "Dense", "units": 10, "activation": "softmax"}]}"#;

// No bias before BatchNormalization (it would be cancelled): its gradient is 0 up to
// rounding, and Adam would turn that rounding into steps of the learning rate.
const BN: &str = r#"{"input_shape": [64], "layers": [
    {"type": "Dense", "units": 32, "use_bias": false},
    {"type": "BatchNormalization"},
    {"type": "Activation", "activation": "relu"},
    {"type": "Dense", "units": 10, "activation": "softmax"}]}"#;

fn bits(model: &Sequential) -> Vec<Vec<u32>> {
    model.parameters().iter().map(|p| p.value.to_vec().iter().map(|v| v.to_bits()).collect()).collect()
}

/// Trains `spec` for `epochs` at batch `batch` with `collective` (one process when
/// `None`): the history and the final weights' bits.
fn train(spec: &str, epochs: usize, batch: usize, collective: Option<Arc<dyn Collective>>) -> (History, Vec<Vec<u32>>) {
    train_with(spec, epochs, batch, collective, false)
}

fn train_with(
    spec: &str,
    epochs: usize,
    batch: usize,
    collective: Option<Arc<dyn Collective>>,
    sync_batchnorm: bool,
) -> (History, Vec<Vec<u32>>) {
    let (train, val) = data();
    let mut model = Sequential::new(ModelSpec::from_json(spec).unwrap(), 7).unwrap();
    let mut opt = OptimizerConfig::Adam(AdamConfig::new(0.003)).build::<f32>(ParamRules::new()).unwrap();
    let config = FitConfig {
        verbosity: Verbosity::Silent,
        seed: 11,
        collective,
        sync_batchnorm,
        ..FitConfig::new(epochs, batch)
    };
    let history = fit(&mut model, opt.as_mut(), &sce(), &train, Some(&val), &config, &mut []).unwrap();
    (history, bits(&model))
}

/// Runs `train` on every rank of a `size`-rank thread group.
fn on_ranks(spec: &'static str, size: usize, epochs: usize, batch: usize) -> Vec<(History, Vec<Vec<u32>>)> {
    on_ranks_with(spec, size, epochs, batch, false)
}

fn on_ranks_with(
    spec: &'static str,
    size: usize,
    epochs: usize,
    batch: usize,
    sync_batchnorm: bool,
) -> Vec<(History, Vec<Vec<u32>>)> {
    let handles: Vec<_> = ThreadGroup::new(size)
        .into_iter()
        .map(|rank| {
            thread::spawn(move || {
                let rank: Arc<dyn Collective> = Arc::new(rank);
                train_with(spec, epochs, batch, Some(rank), sync_batchnorm)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn assert_close(a: f64, b: f64, rel: f64, what: &str) {
    assert!((a - b).abs() <= rel * a.abs().max(b.abs()), "{what}: {a} vs {b} (relative {:e})", (a - b).abs() / a.abs());
}

/// Every rank of `ranks` holds the same weights and logged the same figures, which
/// equal one process's (`single`) to 1e-5 relative; the weights are within 1e-4 of
/// one process's (the sums are only added in another order).
fn assert_like_one_process(ranks: &[(History, Vec<Vec<u32>>)], single: &(History, Vec<Vec<u32>>)) {
    let size = ranks.len();
    for (h, w) in &ranks[1..] {
        assert_eq!(w, &ranks[0].1, "{size} ranks: weights differ between ranks");
        assert_eq!(h.epochs.len(), single.0.epochs.len());
        for (a, b) in h.epochs.iter().zip(&ranks[0].0.epochs) {
            assert_eq!(a.metrics, b.metrics);
        }
    }
    for (a, b) in ranks[0].0.epochs.iter().zip(&single.0.epochs) {
        for key in ["loss", "accuracy", "val_loss", "val_accuracy"] {
            let (x, y) = (a.get(key).unwrap(), b.get(key).unwrap());
            assert_close(x, y, 1e-5, &format!("{size} ranks, epoch {} {key}", a.epoch));
        }
    }
    let max_diff = ranks[0]
        .1
        .iter()
        .flatten()
        .zip(single.1.iter().flatten())
        .map(|(a, b)| (f32::from_bits(*a) - f32::from_bits(*b)).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-4, "{size} ranks: weights differ from one process by {max_diff}");
}

#[test]
fn two_and_three_ranks_give_one_process_losses_and_identical_weights() {
    let single = train(MLP, 3, 32, None);
    for size in [2, 3] {
        assert_like_one_process(&on_ranks(MLP, size, 3, 32), &single);
    }
    // A data-parallel run is reproducible bit for bit.
    let again = on_ranks(MLP, 2, 3, 32);
    let first = on_ranks(MLP, 2, 3, 32);
    assert_eq!(again[0].1, first[0].1);
}

#[test]
fn batch_normalization_ranks_stay_identical() {
    let ranks = on_ranks(BN, 2, 2, 64);
    assert_eq!(ranks[0].1, ranks[1].1);
    // Each rank normalises with the statistics of its 32 samples, one process with
    // those of all 64: close, not equal.
    let (single, _) = train(BN, 2, 64, None);
    for (a, b) in ranks[0].0.epochs.iter().zip(&single.epochs) {
        let (a, b) = (a.get("val_accuracy").unwrap(), b.get("val_accuracy").unwrap());
        assert!((a - b).abs() < 0.05, "val_accuracy {a} on 2 ranks, {b} in one process");
    }
}

/// With synchronised BatchNormalization the ranks normalise with the global batch's
/// statistics: the run equals one process's (figures and weights, moving statistics
/// included), not just nearly.
#[test]
fn synchronised_batch_normalization_equals_one_process() {
    let single = train(BN, 2, 64, None);
    for size in [2, 3] {
        assert_like_one_process(&on_ranks_with(BN, size, 2, 64, true), &single);
    }
}

#[test]
fn sharded_evaluation_equals_the_whole_set() {
    let (_, val) = data();
    let model = Sequential::new(ModelSpec::from_json(MLP).unwrap(), 3).unwrap();
    let whole = evaluate(&model, &sce(), &val, 50).unwrap();
    let handles: Vec<_> = ThreadGroup::new(3)
        .into_iter()
        .map(|rank| {
            let (model, val) = (model.clone(), val.clone());
            thread::spawn(move || evaluate_in(&model, &sce(), &val, 50, &rank).unwrap())
        })
        .collect();
    for h in handles {
        let e = h.join().unwrap();
        // Batches of 50 within each share: the f32 batch means differ in rounding.
        assert_close(e.loss, whole.loss, 1e-6, "loss");
        assert_eq!(e.get("accuracy"), whole.get("accuracy"));
        assert_eq!(e.confusion.as_ref().unwrap().counts(), whole.confusion.as_ref().unwrap().counts());
    }
}

/// The errors of a 2-rank `fit` of the MLP at batch `batch` where rank r builds its
/// model with seed `7 + r·seed_step`.
fn refusals(seed_step: u64, batch: usize) -> Vec<String> {
    let handles: Vec<_> = ThreadGroup::new(2)
        .into_iter()
        .map(|rank| {
            thread::spawn(move || {
                let seed = 7 + rank.rank() as u64 * seed_step;
                let (train, _) = data();
                let mut model = Sequential::new(ModelSpec::from_json(MLP).unwrap(), seed).unwrap();
                let mut opt = OptimizerConfig::Adam(AdamConfig::new(0.003)).build::<f32>(ParamRules::new()).unwrap();
                let rank: Arc<dyn Collective> = Arc::new(rank);
                let config =
                    FitConfig { verbosity: Verbosity::Silent, collective: Some(rank), ..FitConfig::new(1, batch) };
                fit(&mut model, opt.as_mut(), &sce(), &train, None, &config, &mut []).unwrap_err().to_string()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn ranks_that_disagree_are_refused_by_name() {
    // Rank 1 trains with another seed: its initial weights differ from rank 0's.
    for e in refusals(1, 32) {
        assert_eq!(e, "rank 1 does not have rank 0's model and initial weights");
    }
    // 1,437 samples at batch 1,436 leave 1 sample for the last batch: too few for 2 ranks.
    for e in refusals(0, 1436) {
        assert!(e.contains("last batch of an epoch holds 1 of the 1437"), "{e}");
    }
}
