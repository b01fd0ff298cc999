//! The training loop end to end on small generated data.

use std::sync::Arc;

use nn_data::{Dataset, Targets};
use nn_layers::loss::Loss;
use nn_layers::{ModelSpec, Sequential};
use nn_optim::{AdamConfig, OptimizerConfig, ParamRules, SgdConfig};
use nn_tensor::Tensor;
use nn_train::{
    checkpoint, evaluate, fit, predict, Callback, CallbackCtx, Control, EarlyStopping, EpochLog, FitConfig, History,
    ModelCheckpoint, Progress, TerminateOnNaN, Verbosity,
};

/// Two Gaussian-ish blobs in 2-d, class 0 around (−1, −1) and class 1 around (1, 1),
/// from a fixed deterministic sequence.
fn blobs(n: usize) -> Dataset {
    let mut x = Vec::with_capacity(n * 2);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 2;
        let centre = if c == 0 { -1.0 } else { 1.0 };
        let a = (i as f32 * 0.7).sin() * 0.4;
        let b = (i as f32 * 1.3).cos() * 0.4;
        x.extend([centre + a, centre + b]);
        labels.push(c);
    }
    Dataset::from_tensor("blobs", Tensor::from_vec(&[n, 2], x), Targets::classes(labels, 2).unwrap()).unwrap()
}

fn mlp(seed: u64) -> Sequential {
    Sequential::new(ModelSpec::mlp(&[2], 8, 2, 0.0), seed).unwrap()
}

fn quiet(epochs: usize, batch: usize) -> FitConfig {
    FitConfig { verbosity: Verbosity::Silent, seed: 3, ..FitConfig::new(epochs, batch) }
}

fn sce() -> Loss {
    Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 }
}

fn weights(model: &Sequential) -> Vec<Vec<u32>> {
    model.parameters().iter().map(|p| p.value.to_vec().iter().map(|v| v.to_bits()).collect()).collect()
}

#[test]
fn training_separates_two_blobs() {
    let data = blobs(200);
    let (train, val) = data.split_validation(0.25).unwrap();
    let mut model = mlp(1);
    let mut opt = OptimizerConfig::Adam(AdamConfig::new(0.01)).build::<f32>(ParamRules::new()).unwrap();
    let history = fit(&mut model, opt.as_mut(), &sce(), &train, Some(&val), &quiet(15, 16), &mut []).unwrap();
    assert_eq!(history.epochs.len(), 15);
    let loss = history.series("loss");
    assert!(loss[14] < loss[0] * 0.5, "{loss:?}");
    assert_eq!(history.epochs[14].get("val_accuracy"), Some(1.0));
    let e = evaluate(&model, &sce(), &val, 7).unwrap();
    assert_eq!(e.get("accuracy"), Some(1.0));
    let cm = e.confusion.unwrap();
    assert_eq!(cm.total(), 50);
    let p = predict(&model, &val.features(), 16).unwrap();
    assert_eq!(p.outputs.shape(), &[50, 2]);
    assert_eq!(p.classes, val.targets().labels().unwrap());
    // Probabilities: each row sums to 1.
    for row in p.outputs.to_vec().chunks(2) {
        assert!((row[0] + row[1] - 1.0).abs() < 1e-6);
    }
}

/// With a learning rate of 0 the weights never change, so the epoch's training loss
/// must equal the loss of the whole data set: 10 samples at batch 4 give batches of
/// 4, 4 and 2, and only a size-weighted mean of the batch losses equals it.
#[test]
fn epoch_loss_weights_the_partial_batch_by_its_size() {
    let data = blobs(10);
    let mut model = mlp(5);
    let mut opt = OptimizerConfig::Sgd(SgdConfig::new(0.0)).build::<f32>(ParamRules::new()).unwrap();
    let before = weights(&model);
    let config = FitConfig { shuffle: false, ..quiet(1, 4) };
    let history = fit(&mut model, opt.as_mut(), &sce(), &data, None, &config, &mut []).unwrap();
    assert_eq!(weights(&model), before);
    let whole = evaluate(&model, &sce(), &data, 10).unwrap();
    let epoch = history.epochs[0].get("loss").unwrap();
    assert!((epoch - whole.loss).abs() < 1e-6, "{epoch} vs {}", whole.loss);
    // The unweighted mean of the three batch losses differs measurably.
    let batch_losses: Vec<f64> = [(0, 4), (4, 8), (8, 10)]
        .iter()
        .map(|&(a, b)| evaluate(&model, &sce(), &data.subset(&(a..b).collect::<Vec<_>>()).unwrap(), 10).unwrap().loss)
        .collect();
    let unweighted = batch_losses.iter().sum::<f64>() / 3.0;
    assert!((unweighted - whole.loss).abs() > 1e-4, "test data must make the two means differ");
}

#[test]
fn same_seed_same_weights_bit_for_bit() {
    let data = blobs(64);
    let run = || {
        let mut model = Sequential::new(ModelSpec::mlp(&[2], 8, 2, 0.3), 11).unwrap();
        let mut opt = OptimizerConfig::Adam(AdamConfig::new(0.01)).build::<f32>(ParamRules::new()).unwrap();
        fit(&mut model, opt.as_mut(), &sce(), &data, None, &quiet(3, 8), &mut []).unwrap();
        weights(&model)
    };
    assert_eq!(run(), run());
}

#[test]
fn non_finite_loss_stops_before_the_update() {
    let data = blobs(64);
    let mut model = mlp(2);
    let mut opt = OptimizerConfig::Sgd(SgdConfig::new(1e30)).build::<f32>(ParamRules::new()).unwrap();
    let mut nan = TerminateOnNaN;
    let history = fit(&mut model, opt.as_mut(), &sce(), &data, None, &quiet(3, 8), &mut [&mut nan]).unwrap();
    let reason = history.stopped.expect("training must stop");
    assert!(reason.starts_with("non-finite loss") && reason.contains("epoch 1, batch"), "{reason}");
    for p in model.parameters() {
        assert!(p.value.to_vec().iter().all(|v| v.is_finite()), "{} holds a non-finite value", p.name);
    }
}

/// Feeds a scripted validation curve to EarlyStopping, marking the weights with the
/// epoch number, and checks when it stops and which weights it restores.
#[test]
fn early_stopping_on_a_scripted_curve() {
    let mut model = mlp(0);
    let mut opt = OptimizerConfig::Sgd(SgdConfig::new(0.1)).build::<f32>(ParamRules::new()).unwrap();
    let mut progress = Progress::with_writer(Verbosity::Lines, 6, 1, Box::new(std::io::sink()));
    let meta = serde_json::Value::Null;
    let mut es = EarlyStopping::new("val_loss", 2).with_min_delta(0.01);
    // Epoch 2 is best (0.5); epoch 3 improves by less than min_delta; epoch 4 is worse.
    let curve = [0.9, 0.5, 0.495, 0.7, 0.4];
    let mut stopped_at = None;
    let mut history = History::default();
    for (i, &v) in curve.iter().enumerate() {
        let epoch = i + 1;
        for p in model.parameters_mut() {
            p.value = Arc::new(Tensor::full(p.value.shape(), epoch as f32));
        }
        let log = EpochLog {
            epoch,
            metrics: vec![("val_loss".into(), v)],
            learning_rate: 0.1,
            train_seconds: 0.0,
            val_seconds: 0.0,
        };
        history.epochs.push(log.clone());
        let mut ctx =
            CallbackCtx { model: &mut model, optimizer: opt.as_mut(), progress: &mut progress, metadata: &meta };
        if let Control::Stop(reason) = es.on_epoch_end(&log, &mut ctx).unwrap() {
            assert!(reason.contains("best 0.5000 at epoch 2"), "{reason}");
            stopped_at = Some(epoch);
            break;
        }
    }
    assert_eq!(stopped_at, Some(4));
    let mut ctx = CallbackCtx { model: &mut model, optimizer: opt.as_mut(), progress: &mut progress, metadata: &meta };
    es.on_train_end(&mut history, &mut ctx).unwrap();
    assert_eq!(history.restored_epoch, Some(2));
    assert!(model.parameters().iter().all(|p| p.value.to_vec().iter().all(|&v| v == 2.0)));
}

#[test]
fn checkpoint_best_only_and_exact_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = blobs(96);
    let (train, val) = data.split_validation(0.25).unwrap();
    let adam = OptimizerConfig::Adam(AdamConfig::new(0.01));
    let config = |epochs| FitConfig { initial_epoch: 0, ..quiet(epochs, 8) };

    // Uninterrupted: 4 epochs.
    let mut full = Sequential::new(ModelSpec::mlp(&[2], 8, 2, 0.2), 4).unwrap();
    let mut opt = adam.build::<f32>(ParamRules::new()).unwrap();
    let mut best = ModelCheckpoint::best_only(dir.path().join("best"), "val_loss");
    fit(&mut full, opt.as_mut(), &sce(), &train, Some(&val), &config(4), &mut [&mut best]).unwrap();
    assert!(dir.path().join("best/model.json").exists());

    // Interrupted after 2 epochs, checkpointed, resumed into a fresh model and optimizer.
    let mut part = Sequential::new(ModelSpec::mlp(&[2], 8, 2, 0.2), 4).unwrap();
    let mut opt = adam.build::<f32>(ParamRules::new()).unwrap();
    let mut ck =
        checkpoint::ResumeCheckpoint::new(dir.path().join("ck"), History { seed: 3, ..History::default() }, None);
    fit(&mut part, opt.as_mut(), &sce(), &train, Some(&val), &config(2), &mut [&mut ck]).unwrap();
    let mut resumed = Sequential::new(ModelSpec::mlp(&[2], 8, 2, 0.2), 99).unwrap();
    let loaded = checkpoint::load(&dir.path().join("ck"), &mut resumed).unwrap();
    assert_eq!(loaded.state.epochs_done, 2);
    let mut opt = loaded.optimizer.config.build::<f32>(ParamRules::new()).unwrap();
    let shapes: Vec<(String, Vec<usize>)> = resumed
        .parameters()
        .iter()
        .filter(|p| p.trainable)
        .map(|p| (p.name.clone(), p.value.shape().to_vec()))
        .collect();
    let refs: Vec<(&str, &[usize])> = shapes.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
    opt.load_state(loaded.optimizer.state, &refs).unwrap();
    let cfg = FitConfig { initial_epoch: 2, ..config(4) };
    let h = fit(&mut resumed, opt.as_mut(), &sce(), &train, Some(&val), &cfg, &mut []).unwrap();
    assert_eq!(h.epochs.first().map(|e| e.epoch), Some(3));
    assert_eq!(weights(&resumed), weights(&full));
}

#[test]
fn data_that_does_not_fit_is_an_error_before_training() {
    let data = blobs(8);
    let mut model = Sequential::new(ModelSpec::mlp(&[3], 4, 2, 0.0), 0).unwrap();
    let mut opt = OptimizerConfig::Sgd(SgdConfig::new(0.1)).build::<f32>(ParamRules::new()).unwrap();
    let err = fit(&mut model, opt.as_mut(), &sce(), &data, None, &quiet(1, 4), &mut []).unwrap_err();
    assert!(err.to_string().contains("shape [2]") && err.to_string().contains("[3]"), "{err}");
    let mut model = mlp(0);
    let err = fit(&mut model, opt.as_mut(), &sce(), &data, None, &quiet(1, 0), &mut []).unwrap_err();
    assert!(err.to_string().contains("batch size"), "{err}");
    let three =
        Dataset::from_tensor("three", Tensor::zeros(&[3, 2]), Targets::classes(vec![0, 1, 2], 3).unwrap()).unwrap();
    let err = fit(&mut model, opt.as_mut(), &sce(), &three, None, &quiet(1, 2), &mut []).unwrap_err();
    assert!(err.to_string().contains("3 classes"), "{err}");
    assert!(predict(&model, &Tensor::zeros(&[4, 3]), 2).is_err());
}

/// Class weights of 2 for every class double each gradient exactly (a power of two
/// commutes with rounding), so plain SGD at learning rate η with them ends on the
/// same weights, bit for bit, as SGD at 2η without them. Weights of 0 on one class
/// leave that class out of the gradient: training on class 1 alone.
#[test]
fn class_weights_scale_each_samples_gradient() {
    let data = blobs(64);
    let sgd = |lr: f64| OptimizerConfig::Sgd(SgdConfig::new(lr)).build::<f32>(ParamRules::new()).unwrap();
    let run = |lr: f64, class_weights: Option<Vec<f64>>, data: &Dataset| {
        let mut model = mlp(5);
        let config = FitConfig { class_weights, ..quiet(2, 16) };
        fit(&mut model, sgd(lr).as_mut(), &sce(), data, None, &config, &mut []).unwrap();
        weights(&model)
    };
    assert_eq!(run(0.05, Some(vec![2.0, 2.0]), &data), run(0.1, None, &data));
    assert_ne!(run(0.05, Some(vec![2.0, 2.0]), &data), run(0.05, None, &data));
    // The wrong number of weights is refused before training.
    let mut model = mlp(5);
    let config = FitConfig { class_weights: Some(vec![1.0; 3]), ..quiet(1, 16) };
    let err = fit(&mut model, sgd(0.1).as_mut(), &sce(), &data, None, &config, &mut []).unwrap_err();
    assert!(err.to_string().contains("3 weights for a model with 2 outputs"), "{err}");
}

/// NaN features (a missing value read without the imputer) are refused before
/// training, naming the sample, instead of training a model into NaN weights.
#[test]
fn non_finite_features_are_refused() {
    let mut x = vec![0.5f32; 8 * 2];
    x[5 * 2 + 1] = f32::NAN;
    let data = Dataset::from_tensor(
        "holes",
        Tensor::from_vec(&[8, 2], x),
        Targets::classes(vec![0, 1, 0, 1, 0, 1, 0, 1], 2).unwrap(),
    )
    .unwrap();
    let mut model = mlp(1);
    let mut opt = OptimizerConfig::Sgd(SgdConfig::new(0.1)).build::<f32>(ParamRules::new()).unwrap();
    let config = FitConfig { shuffle: false, ..quiet(1, 4) };
    let err = fit(&mut model, opt.as_mut(), &sce(), &data, None, &config, &mut []).unwrap_err().to_string();
    assert!(err.starts_with("data `holes`: feature 1 of sample 1 of batch 1 is NaN: features must be finite"), "{err}");
    let err = evaluate(&model, &sce(), &data, 8).unwrap_err().to_string();
    assert!(err.contains("feature 1 of sample 5 of batch 0 is NaN"), "{err}");
}

/// A checkpoint whose weights or optimizer state hold NaN is refused on load, naming
/// the tensor, instead of resuming into a model full of NaN.
#[test]
fn checkpoints_with_non_finite_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let data = blobs(32);
    let mut model = mlp(2);
    let mut opt = OptimizerConfig::Adam(AdamConfig::new(0.01)).build::<f32>(ParamRules::new()).unwrap();
    let mut cb = checkpoint::ResumeCheckpoint::new(&ck, History::default(), None);
    fit(&mut model, opt.as_mut(), &sce(), &data, None, &quiet(1, 16), &mut [&mut cb]).unwrap();
    assert!(checkpoint::load(&ck, &mut mlp(9)).is_ok());

    // Adam's first moment of one weight set to NaN, written back as a checkpoint would be.
    let optimizer_file = ck.join("optimizer.safetensors");
    let mut state = nn_optim::load_checkpoint::<f32>(&optimizer_file).unwrap();
    let name = state.state.params.keys().next().unwrap().clone();
    let slot = &mut state.state.params.get_mut(&name).unwrap().slots[0];
    let mut v = slot.1.to_vec();
    v[0] = f32::NAN;
    slot.1 = Tensor::from_vec(slot.1.shape(), v);
    let slot_name = slot.0.clone();
    let shapes: Vec<(String, Vec<usize>)> =
        model.parameters().iter().map(|p| (p.name.clone(), p.value.shape().to_vec())).collect();
    let refs: Vec<(&str, &[usize])> = shapes.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
    let mut poisoned = state.config.build::<f32>(ParamRules::new()).unwrap();
    poisoned.load_state(state.state, &refs).unwrap();
    nn_optim::save_checkpoint(&optimizer_file, poisoned.as_ref(), None, None).unwrap();
    let err = checkpoint::load(&ck, &mut mlp(9)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(&format!("optimizer state {slot_name} of {name}: holds values that are not finite")), "{err}");

    // A NaN weight.
    let mut bad = mlp(2);
    let p = &mut bad.parameters_mut()[0];
    let mut v = p.value.to_vec();
    v[3] = f32::INFINITY;
    p.value = Arc::new(Tensor::from_vec(p.value.shape(), v));
    let first = p.name.clone();
    bad.save_weights(&ck.join("weights.safetensors")).unwrap();
    let err = checkpoint::load(&ck, &mut mlp(9)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(&format!("tensor {first}: holds values that are not finite")), "{err}");
}
