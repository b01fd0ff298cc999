//! Fine-tuning through `fit`: frozen parameters stay bit-identical and get no
//! optimizer state; LoRA trains only its adapters and merges to the same predictions;
//! discriminative learning rates scale the update of the selected parameters.

use nn_data::{Dataset, Targets};
use nn_layers::loss::Loss;
use nn_layers::{Activation, LayerSpec, LoraConfig, ModelSpec, Sequential};
use nn_optim::{AdamConfig, OptimizerConfig, ParamRules, ParamSelector, SgdConfig};
use nn_tensor::Tensor;
use nn_train::{fit, FitConfig, Verbosity};

/// Three classes of points in 3-d from a fixed deterministic sequence.
fn data(n: usize) -> Dataset {
    let mut x = Vec::with_capacity(n * 3);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 3;
        let t = i as f32;
        x.extend([
            c as f32 - 1.0 + (t * 0.7).sin() * 0.3,
            (t * 1.3).cos() * 0.3,
            (c as f32) * 0.5 + (t * 0.9).sin() * 0.2,
        ]);
        labels.push(c);
    }
    Dataset::from_tensor("points", Tensor::from_vec(&[n, 3], x), Targets::classes(labels, 3).unwrap()).unwrap()
}

fn model(seed: u64) -> Sequential {
    let spec = ModelSpec::new(
        &[3],
        vec![
            LayerSpec::dense(16, Activation::Relu),
            LayerSpec::batch_norm(),
            LayerSpec::dense(8, Activation::Tanh),
            LayerSpec::dense(3, Activation::Softmax),
        ],
    );
    Sequential::new(spec, seed).unwrap()
}

fn quiet(epochs: usize, batch: usize) -> FitConfig {
    FitConfig { verbosity: Verbosity::Silent, seed: 3, ..FitConfig::new(epochs, batch) }
}

fn sce() -> Loss {
    Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 }
}

fn bits(model: &Sequential, name: &str) -> Vec<u32> {
    model.parameter(name).unwrap().value.to_vec().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn frozen_parameters_are_bit_identical_and_stateless_after_training() {
    let train = data(120);
    let mut m = model(1);
    let before = m.clone();
    assert_eq!(m.freeze_layers(0..2), 4); // Dense kernel, bias; BatchNorm gamma, beta (moving stats already frozen)
    let frozen = ["layers.0.kernel", "layers.0.bias", "layers.1.gamma", "layers.1.beta"];
    let trained = ["layers.2.kernel", "layers.2.bias", "layers.3.kernel", "layers.3.bias"];
    let mut opt = OptimizerConfig::Adam(AdamConfig::new(0.01)).build::<f32>(ParamRules::new()).unwrap();
    let history = fit(&mut m, opt.as_mut(), &sce(), &train, None, &quiet(3, 16), &mut []).unwrap();
    assert_eq!(history.epochs.len(), 3);
    for name in frozen {
        assert_eq!(bits(&m, name), bits(&before, name), "{name} changed");
        assert!(!opt.state().params.contains_key(name), "{name} has optimizer state");
    }
    for name in trained {
        assert_ne!(bits(&m, name), bits(&before, name), "{name} did not train");
        assert_eq!(opt.state().params[name].step, 3 * 8, "{name}"); // 120 / 16 → 8 steps per epoch
    }
    // BatchNorm's moving statistics still follow the data (state, not training).
    assert_ne!(bits(&m, "layers.1.moving_mean"), bits(&before, "layers.1.moving_mean"));
}

#[test]
fn lora_trains_only_the_adapters_and_merges_to_the_same_predictions() {
    let train = data(120);
    let base = model(2);
    let mut m = base.with_lora(|i| i == 2 || i == 3, LoraConfig::new(2, 4.0), 5).unwrap();
    m.freeze(|n| !n.ends_with("lora_a") && !n.ends_with("lora_b"));
    let trainable: Vec<&str> = m.parameters().iter().filter(|p| p.trainable).map(|p| p.name.as_str()).collect();
    assert_eq!(trainable, ["layers.2.lora_a", "layers.2.lora_b", "layers.3.lora_a", "layers.3.lora_b"]);
    let mut opt = OptimizerConfig::Adam(AdamConfig::new(0.01)).build::<f32>(ParamRules::new()).unwrap();
    fit(&mut m, opt.as_mut(), &sce(), &train, None, &quiet(3, 16), &mut []).unwrap();
    for p in base.parameters().iter().filter(|p| !p.name.starts_with("layers.1.moving")) {
        assert_eq!(bits(&m, &p.name), bits(&base, &p.name), "{} changed", p.name);
    }
    assert!(m.parameter("layers.3.lora_b").unwrap().value.array().iter().any(|&v| v != 0.0));
    let merged = m.merge_lora().unwrap();
    let x = train.features();
    let (a, b) = (m.predict(&x).unwrap(), merged.predict(&x).unwrap());
    let diff = a.array().iter().zip(b.array().iter()).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
    assert!(diff <= 1e-5, "max |Δ| = {diff}");
    let moved = a
        .array()
        .iter()
        .zip(base.predict(&x).unwrap().array().iter())
        .map(|(p, q)| (p - q).abs())
        .fold(0.0f32, f32::max);
    assert!(moved > 1e-3, "training changed nothing: {moved}");
}

/// Plain SGD, one step: θ₁ − θ₀ = −η·m·g. With multiplier m = 0.25 on layer 0 and the
/// same start, data and gradient, its update is a quarter of the full-rate one; a
/// multiplier of 0 leaves it bit-identical.
#[test]
fn lr_multiplier_scales_the_update_of_the_selected_layers() {
    let train = data(16);
    let run = |mult: f64| {
        let mut m = model(3);
        let rules = ParamRules::new().lr_multiplier(ParamSelector::prefix("layers.0."), mult);
        let mut opt = OptimizerConfig::Sgd(SgdConfig::new(0.1)).build::<f32>(rules).unwrap();
        let config = FitConfig { shuffle: false, ..quiet(1, 16) };
        fit(&mut m, opt.as_mut(), &sce(), &train, None, &config, &mut []).unwrap();
        m
    };
    let start = model(3);
    let (full, quarter, none) = (run(1.0), run(0.25), run(0.0));
    let delta = |m: &Sequential, name: &str| -> Vec<f64> {
        let (a, b) = (m.parameter(name).unwrap().value.to_vec(), start.parameter(name).unwrap().value.to_vec());
        a.iter().zip(&b).map(|(x, y)| f64::from(*x) - f64::from(*y)).collect()
    };
    let (d1, dq) = (delta(&full, "layers.0.kernel"), delta(&quarter, "layers.0.kernel"));
    assert!(d1.iter().any(|d| d.abs() > 1e-4));
    for (a, b) in d1.iter().zip(&dq) {
        assert!((b - 0.25 * a).abs() <= 1e-6, "{b} vs 0.25 × {a}");
    }
    assert_eq!(delta(&quarter, "layers.3.kernel"), delta(&full, "layers.3.kernel"));
    assert_eq!(bits(&none, "layers.0.kernel"), bits(&start, "layers.0.kernel"));
}
