//! `fit` and `evaluate` with per-position class targets: a language model's logits
//! `[N, context, vocab]` against whole-number targets `[N, context]` (the next
//! token at each position), trained with sparse categorical cross-entropy.

use nn_data::{Dataset, Targets};
use nn_layers::loss::Loss;
use nn_layers::{ModelSpec, Sequential, Tensor};
use nn_optim::{Adam, AdamConfig};
use nn_train::{evaluate, fit, FitConfig, TrainError, Verbosity};

const LOSS: Loss = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 };

/// Every window of 8 tokens of the sequence 0 1 2 3 4 0 1 …, targets shifted by one.
fn cyclic(vocab: usize, context: usize) -> Dataset {
    let token = |k: usize| (k % vocab) as f32;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for start in 0..vocab {
        x.extend((start..start + context).map(token));
        y.extend((start + 1..start + context + 1).map(token));
    }
    let targets = Targets::real(Tensor::from_vec(&[vocab, context], y)).unwrap();
    Dataset::from_tensor("cyclic", Tensor::from_vec(&[vocab, context], x), targets).unwrap()
}

#[test]
fn tiny_gpt_fits_next_token_targets_with_per_token_accuracy() {
    let (vocab, context) = (5, 8);
    let data = cyclic(vocab, context);
    let mut model = Sequential::<f32>::new(ModelSpec::gpt(vocab, context, 16, 2, 1, 0.0).unwrap(), 0).unwrap();
    let before = evaluate(&model, &LOSS, &data, 8).unwrap();
    // Near chance before training: ln 5 = 1.609.
    assert!(before.loss > 1.2, "initial loss {}", before.loss);
    let mut opt = Adam::<f32>::new(AdamConfig::new(0.01)).unwrap();
    let config = FitConfig { verbosity: Verbosity::Silent, ..FitConfig::new(80, 5) };
    let history = fit(&mut model, &mut opt, &LOSS, &data, Some(&data), &config, &mut []).unwrap();
    let last = history.epochs.last().unwrap();
    let after = evaluate(&model, &LOSS, &data, 8).unwrap();
    assert!(after.loss < 0.05, "loss after 80 steps {}", after.loss);
    // The sequence is deterministic, so every one of the 40 positions is right.
    assert_eq!(after.get("accuracy"), Some(1.0));
    assert!(after.get("mse").is_none());
    // The per-batch training accuracy is the same per-position fraction.
    let train_acc = last.metrics.iter().find(|(k, _)| k == "accuracy").map(|&(_, v)| v).unwrap();
    assert!((0.0..=1.0).contains(&train_acc));
    assert_eq!(last.metrics.iter().find(|(k, _)| k == "val_accuracy").map(|&(_, v)| v), Some(1.0));
}

#[test]
fn per_token_accuracy_counts_positions() {
    // An untrained model: the accuracy is (argmax == target) over all N·context
    // positions, recomputed here from `predict`'s outputs.
    let (vocab, context) = (5, 8);
    let data = cyclic(vocab, context);
    let model = Sequential::<f32>::new(ModelSpec::gpt(vocab, context, 8, 2, 1, 0.0).unwrap(), 3).unwrap();
    let eval = evaluate(&model, &LOSS, &data, 2).unwrap();
    let p = nn_train::predict(&model, &data.features(), 2).unwrap();
    let logits = p.outputs.to_vec();
    let targets = data.targets().clone();
    let Targets::Real(t) = targets else { panic!("real targets") };
    let mut hits = 0;
    for (row, &y) in logits.chunks_exact(vocab).zip(t.to_vec().iter()) {
        let best = (0..vocab).fold(0, |b, k| if row[k] > row[b] { k } else { b });
        hits += usize::from(best as f32 == y);
    }
    assert_eq!(eval.get("accuracy"), Some(hits as f64 / (vocab * context) as f64));
}

#[test]
fn bad_sequence_targets_are_refused() {
    let (vocab, context) = (5, 8);
    let model = Sequential::<f32>::new(ModelSpec::gpt(vocab, context, 8, 2, 1, 0.0).unwrap(), 0).unwrap();
    let x = Tensor::from_vec(&[1, context], vec![0.0; context]);
    let with = |y: Vec<f32>| {
        Dataset::from_tensor("bad", x.clone(), Targets::real(Tensor::from_vec(&[1, context], y)).unwrap()).unwrap()
    };
    let mut y = vec![1.0; context];
    y[3] = 5.0; // vocab 5: out of range
    let err = evaluate(&model, &LOSS, &with(y), 4).unwrap_err();
    assert!(matches!(err, TrainError::Mismatch(_)));
    assert!(err.to_string().contains("target 5 at position 3 of sample 0"), "{err}");
    let mut y = vec![1.0; context];
    y[0] = 0.5;
    let err = evaluate(&model, &LOSS, &with(y), 4).unwrap_err();
    assert!(err.to_string().contains("target 0.5 at position 0"), "{err}");
    // Targets that do not match the positions of the output.
    let short =
        Dataset::from_tensor("short", x.clone(), Targets::real(Tensor::from_vec(&[1, 4], vec![0.0; 4])).unwrap())
            .unwrap();
    let err = evaluate(&model, &LOSS, &short, 4).unwrap_err();
    assert!(err.to_string().contains("[4] per sample"), "{err}");
}
