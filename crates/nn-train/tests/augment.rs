//! `FitConfig::augment`: random shifts and rotations of training batches only,
//! reproducible from the seed, resumable at an epoch boundary.

use nn_data::{Augment, Dataset, Targets};
use nn_layers::loss::Loss;
use nn_layers::{ModelSpec, Sequential};
use nn_optim::{AdamConfig, OptimizerConfig, ParamRules, SgdConfig};
use nn_tensor::Tensor;
use nn_train::{evaluate, fit, FitConfig, TrainError, Verbosity};

const SIDE: usize = 6;

/// `n` images 6×6×1: class 0 bright on the left half, class 1 on the right, with a
/// deterministic ripple so that no two images are alike.
fn stripes(name: &str, n: usize, offset: usize) -> Dataset {
    let mut x = Vec::with_capacity(n * SIDE * SIDE);
    let mut labels = Vec::with_capacity(n);
    for k in 0..n {
        let i = k + offset;
        let class = i % 2;
        for _r in 0..SIDE {
            for c in 0..SIDE {
                let bright = (c < SIDE / 2) == (class == 0);
                let ripple = ((i * 7 + c * 3) as f32 * 0.37).sin() * 0.1;
                x.push(if bright { 0.8 + ripple } else { 0.1 + ripple });
            }
        }
        labels.push(class);
    }
    Dataset::from_tensor(name, Tensor::from_vec(&[n, SIDE, SIDE, 1], x), Targets::classes(labels, 2).unwrap()).unwrap()
}

fn model(seed: u64) -> Sequential {
    Sequential::new(ModelSpec::mlp(&[SIDE, SIDE, 1], 8, 2, 0.1), seed).unwrap()
}

/// The training batch size; validation runs at the same size (Keras's default).
const BATCH: usize = 8;

fn config(epochs: usize, augment: Option<Augment>) -> FitConfig {
    FitConfig { verbosity: Verbosity::Silent, seed: 11, augment, ..FitConfig::new(epochs, BATCH) }
}

fn sce() -> Loss {
    Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 }
}

fn weights(model: &Sequential) -> Vec<Vec<u32>> {
    model.parameters().iter().map(|p| p.value.to_vec().iter().map(|v| v.to_bits()).collect()).collect()
}

fn aug() -> Augment {
    "shift:1,rotate:15".parse().unwrap()
}

fn train_run(augment: Option<Augment>, epochs: usize) -> (Sequential, nn_train::History) {
    let train = stripes("train", 40, 0);
    let val = stripes("val", 16, 1000);
    let mut m = model(5);
    let mut opt = OptimizerConfig::Adam(AdamConfig::new(0.01)).build::<f32>(ParamRules::new()).unwrap();
    let h = fit(&mut m, opt.as_mut(), &sce(), &train, Some(&val), &config(epochs, augment), &mut []).unwrap();
    (m, h)
}

#[test]
fn augmented_training_is_deterministic_and_changes_the_result() {
    let (a, ha) = train_run(Some(aug()), 3);
    let (b, hb) = train_run(Some(aug()), 3);
    assert_eq!(weights(&a), weights(&b), "same seed, same augmentation: weights must be bit-identical");
    assert_eq!(ha.series("loss"), hb.series("loss"));
    let (plain, _) = train_run(None, 3);
    assert_ne!(weights(&a), weights(&plain), "augmentation changed nothing");
    // Augment::default() (shift 0, rotate 0) is the same as no augmentation.
    let (off, _) = train_run(Some(Augment::default()), 3);
    assert_eq!(weights(&off), weights(&plain));
}

#[test]
fn validation_metrics_are_computed_on_unaugmented_data() {
    let val = stripes("val", 16, 1000);
    let (m, h) = train_run(Some(Augment { shift: 3, rotate: 45.0 }), 2);
    let e = evaluate(&m, &sce(), &val, BATCH).unwrap();
    let last = h.epochs.last().unwrap();
    assert_eq!(last.get("val_loss"), Some(e.loss), "val_loss of the history vs evaluate after fit");
    assert_eq!(last.get("val_accuracy"), e.get("accuracy"));
}

/// With a learning rate of 0 the weights never move: the epoch's training loss is
/// the loss on the augmented batches, which differs from the loss of the clean
/// training set, while val_loss equals the clean validation loss.
#[test]
fn only_training_batches_are_augmented() {
    let train = stripes("train", 40, 0);
    let val = stripes("val", 16, 1000);
    let run = |augment| {
        let mut m = Sequential::new(ModelSpec::mlp(&[SIDE, SIDE, 1], 8, 2, 0.0), 5).unwrap();
        let mut opt = OptimizerConfig::Sgd(SgdConfig::new(0.0)).build::<f32>(ParamRules::new()).unwrap();
        let h = fit(&mut m, opt.as_mut(), &sce(), &train, Some(&val), &config(1, augment), &mut []).unwrap();
        (m, h.epochs[0].clone())
    };
    let (m, plain) = run(None);
    let clean_train = evaluate(&m, &sce(), &train, 256).unwrap().loss;
    let clean_val = evaluate(&m, &sce(), &val, BATCH).unwrap().loss;
    assert!((plain.get("loss").unwrap() - clean_train).abs() < 1e-6);
    let (_, augmented) = run(Some(Augment { shift: 2, rotate: 30.0 }));
    let loss = augmented.get("loss").unwrap();
    assert!((loss - clean_train).abs() > 1e-4, "training loss {loss} equals the clean loss {clean_train}");
    assert_eq!(augmented.get("val_loss"), Some(clean_val));
    assert_eq!(plain.get("val_loss"), Some(clean_val));
}

#[test]
fn a_run_resumed_at_an_epoch_boundary_equals_an_uninterrupted_one() {
    let train = stripes("train", 40, 0);
    // Plain SGD keeps no optimizer state, so continuing with the same model is a resume.
    let sgd = || OptimizerConfig::Sgd(SgdConfig::new(0.05)).build::<f32>(ParamRules::new()).unwrap();
    let mut full = model(2);
    fit(&mut full, sgd().as_mut(), &sce(), &train, None, &config(4, Some(aug())), &mut []).unwrap();
    let mut cut = model(2);
    fit(&mut cut, sgd().as_mut(), &sce(), &train, None, &config(2, Some(aug())), &mut []).unwrap();
    let resume = FitConfig { initial_epoch: 2, ..config(4, Some(aug())) };
    let h = fit(&mut cut, sgd().as_mut(), &sce(), &train, None, &resume, &mut []).unwrap();
    assert_eq!(h.epochs.first().map(|e| e.epoch), Some(3));
    assert_eq!(weights(&cut), weights(&full));
}

#[test]
fn augmenting_data_that_is_not_images_is_a_config_error_before_training() {
    let flat = Dataset::from_tensor(
        "flat",
        Tensor::from_vec(&[4, 2], vec![0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 0.2, 0.8]),
        Targets::classes(vec![0, 1, 0, 1], 2).unwrap(),
    )
    .unwrap();
    let mut m = Sequential::new(ModelSpec::mlp(&[2], 4, 2, 0.0), 0).unwrap();
    let before = weights(&m);
    let mut opt = OptimizerConfig::Sgd(SgdConfig::new(0.1)).build::<f32>(ParamRules::new()).unwrap();
    let err = fit(&mut m, opt.as_mut(), &sce(), &flat, None, &config(1, Some(aug())), &mut []).unwrap_err();
    assert!(matches!(err, TrainError::Config(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("[2]") && msg.contains("flat") && msg.contains("image"), "{msg}");
    assert_eq!(weights(&m), before);
    // An out-of-range augmentation built in code is refused too.
    let train = stripes("train", 8, 0);
    let mut m = model(0);
    let bad = Augment { shift: 1, rotate: 200.0 };
    let err = fit(&mut m, opt.as_mut(), &sce(), &train, None, &config(1, Some(bad)), &mut []).unwrap_err();
    assert!(matches!(err, TrainError::Config(_)) && err.to_string().contains("rotate"), "{err}");
}
