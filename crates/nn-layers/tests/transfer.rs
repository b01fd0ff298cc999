//! Fine-tuning and transfer: LoRA adapters on Dense layers (gradchecks of the adapter
//! path in f64, a fresh adapter leaves the outputs unchanged, merging keeps the
//! predictions), loading weights by name, replacing the head, freezing.

mod common;

use common::{check_layer, uniform, TOL};
use nn_layers::{
    Activation, DenseConfig, LayerError, LayerSpec, LoadOptions, LoraConfig, ModelSpec, Sequential, Tensor,
    WEIGHTS_FILE,
};
use proptest::prelude::*;

fn smooth_activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Linear),
        Just(Activation::Tanh),
        Just(Activation::Sigmoid),
        Just(Activation::Softmax),
        Just(Activation::Softplus),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// ∂/∂x, ∂/∂kernel, ∂/∂bias, ∂/∂A and ∂/∂B of a Dense layer with adapters
    /// against central finite differences (B random, not zero, so every path is live).
    #[test]
    fn lora_dense_gradcheck(batch in 1usize..4, inner in 1usize..3, in_f in 1usize..5, units in 1usize..5,
                            rank in 1usize..4, alpha in 0.5f64..8.0, act in smooth_activation(),
                            bias in any::<bool>(), rank3 in any::<bool>(), seed in 0u64..1000) {
        let config = DenseConfig::new(units).with_activation(act).with_bias(bias)
            .with_lora(Some(LoraConfig::new(rank, alpha)));
        let sample = if rank3 { vec![inner, in_f] } else { vec![in_f] };
        let mut shape = vec![batch];
        shape.extend(&sample);
        let report = check_layer(LayerSpec::Dense(config), &sample, uniform(&shape, -1.5, 1.5, seed),
                                 nn_layers::Mode::Train, seed);
        prop_assert!(report.passes(TOL), "{report}");
    }
}

/// A small model: Dense(6, tanh) → Dense(5, relu) → Dense(3, softmax) on 4 features.
fn mlp_spec(classes: usize) -> ModelSpec {
    ModelSpec::new(
        &[4],
        vec![
            LayerSpec::dense(6, Activation::Tanh),
            LayerSpec::dense(5, Activation::Relu),
            LayerSpec::dense(classes, Activation::Softmax),
        ],
    )
}

fn cast<T: nn_tensor::Element>(t: &Tensor<f64>) -> Tensor<T> {
    Tensor::from(t.array().mapv(T::of_f64))
}

fn max_abs_diff<T: nn_tensor::Element>(a: &Tensor<T>, b: &Tensor<T>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.array().iter().zip(b.array().iter()).map(|(x, y)| (x.as_f64() - y.as_f64()).abs()).fold(0.0, f64::max)
}

#[test]
fn fresh_lora_model_gives_the_base_outputs_bit_for_bit() {
    let base = Sequential::<f32>::new(mlp_spec(3), 7).unwrap();
    let lora = base.with_lora(|_| true, LoraConfig::new(2, 4.0), 11).unwrap();
    // B = 0 exactly, A Gaussian (not zero), base weights copied.
    for i in 0..3 {
        let b = lora.parameter(&format!("layers.{i}.lora_b")).unwrap();
        assert!(b.value.array().iter().all(|&v| v == 0.0));
        let a = lora.parameter(&format!("layers.{i}.lora_a")).unwrap();
        assert!(a.value.array().iter().any(|&v| v != 0.0));
        assert_eq!(lora.parameter(&format!("layers.{i}.kernel")).unwrap().value, base.parameters()[2 * i].value);
    }
    let x = Tensor::<f32>::from_vec(&[3, 4], (0..12).map(|i| (i as f32 - 5.5) / 3.0).collect());
    let want = base.predict(&x).unwrap();
    let got = lora.predict(&x).unwrap();
    assert_eq!(got.to_vec(), want.to_vec());
}

#[test]
fn only_adapters_train_and_counts_add_up() {
    let base = Sequential::<f32>::new(mlp_spec(3), 7).unwrap();
    let (r, alpha) = (2, 4.0);
    let lora = base.with_lora(|i| i >= 1, LoraConfig::new(r, alpha), 1).unwrap();
    // Layer 0 untouched and trainable; layers 1 and 2: kernel and bias frozen, A and B trainable.
    let trainable: Vec<&str> = lora.parameters().iter().filter(|p| p.trainable).map(|p| p.name.as_str()).collect();
    assert_eq!(
        trainable,
        [
            "layers.0.kernel",
            "layers.0.bias",
            "layers.1.lora_a",
            "layers.1.lora_b",
            "layers.2.lora_a",
            "layers.2.lora_b"
        ]
    );
    let adapters = (6 * r + r * 5) + (5 * r + r * 3);
    let layer0 = 4 * 6 + 6;
    let frozen = (6 * 5 + 5) + (5 * 3 + 3);
    assert_eq!(lora.num_parameters(), (layer0 + adapters, frozen));
    let text = lora.summary();
    assert!(text.contains(&format!("Trainable params: {}", layer0 + adapters)), "{text}");
    assert!(text.contains(&format!("Non-trainable params: {frozen}")), "{text}");
    // The spec says it too, and survives JSON.
    let json = lora.spec().to_json();
    assert!(json.contains("\"lora\""), "{json}");
    assert_eq!(&ModelSpec::from_json(&json).unwrap(), lora.spec());
    assert!(!base.spec().to_json().contains("lora"));
}

/// `merge_lora` folds `(α/r)·A·B` into the kernel: the merged model has no adapters and
/// predicts what the adapted one does, to 1e-5 in f32 and 1e-12 in f64; its kernel is
/// the formula's value.
#[test]
fn merged_model_predicts_the_same() {
    fn check<T: nn_tensor::Element>(tol: f64) {
        let base = Sequential::<T>::new(mlp_spec(3), 3).unwrap();
        let (r, alpha) = (3, 6.0);
        let mut lora = base.with_lora(|_| true, LoraConfig::new(r, alpha), 5).unwrap();
        // Trained-looking adapters: B random, not zero.
        for (i, units) in [(0usize, 6usize), (1, 5), (2, 3)] {
            let b = uniform(&[r, units], -0.5, 0.5, 40 + i as u64);
            lora.set_parameter(&format!("layers.{i}.lora_b"), cast::<T>(&b)).unwrap();
        }
        let merged = lora.merge_lora().unwrap();
        assert_eq!(merged.spec(), base.spec());
        assert_eq!(merged.num_parameters(), base.num_parameters());
        let x = cast::<T>(&uniform(&[16, 4], -2.0, 2.0, 9));
        let diff = max_abs_diff(&lora.predict(&x).unwrap(), &merged.predict(&x).unwrap());
        assert!(diff <= tol, "max |Δ| = {diff}");
        // The merged kernel, element (1, 2) of layer 1: k + (α/r)·Σ_j A[1, j]·B[j, 2].
        let k = base.parameter("layers.1.kernel").unwrap().value.array()[[1, 2]].as_f64();
        let a = lora.parameter("layers.1.lora_a").unwrap().value.clone();
        let b = lora.parameter("layers.1.lora_b").unwrap().value.clone();
        let dot: f64 = (0..r).map(|j| a.array()[[1, j]].as_f64() * b.array()[[j, 2]].as_f64()).sum();
        let want = k + alpha / r as f64 * dot;
        let got = merged.parameter("layers.1.kernel").unwrap().value.array()[[1, 2]].as_f64();
        assert!((got - want).abs() <= tol * want.abs().max(1.0), "{got} vs {want}");
        // Bias untouched.
        assert_eq!(merged.parameter("layers.1.bias").unwrap().value, base.parameter("layers.1.bias").unwrap().value);
        // The lora differs from the base: the check is not vacuous.
        assert!(max_abs_diff(&lora.predict(&x).unwrap(), &base.predict(&x).unwrap()) > 1e-3);
    }
    check::<f32>(1e-5);
    check::<f64>(1e-12);
}

#[test]
fn lora_settings_are_checked() {
    let spec =
        ModelSpec::new(&[4], vec![LayerSpec::Dense(DenseConfig::new(3).with_lora(Some(LoraConfig::new(0, 1.0))))]);
    let e = Sequential::<f32>::new(spec, 0).unwrap_err();
    assert!(e.to_string().contains("lora.rank must be at least 1"), "{e}");
    let spec =
        ModelSpec::new(&[4], vec![LayerSpec::Dense(DenseConfig::new(3).with_lora(Some(LoraConfig::new(2, -1.0))))]);
    let e = Sequential::<f32>::new(spec, 0).unwrap_err();
    assert!(e.to_string().contains("lora.alpha must be a positive number, got -1"), "{e}");
    let bad = r#"{"input_shape": [4], "layers": [{"type": "Dense", "units": 3, "lora": {"rank": 2}}]}"#;
    assert!(ModelSpec::from_json(bad).unwrap_err().to_string().contains("missing field `alpha`"));
}

fn saved(model: &Sequential<f32>) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let path = dir.path().join(WEIGHTS_FILE);
    (dir, path)
}

fn values(model: &Sequential<f32>, name: &str) -> Vec<f32> {
    model.parameter(name).unwrap().value.to_vec()
}

#[test]
fn partial_loading_by_name_reports_each_tensor() {
    let source = Sequential::<f32>::new(mlp_spec(3), 1).unwrap();
    let (_dir, path) = saved(&source);
    // Same body, a 7-class head: the head's kernel and bias differ in shape.
    let mut model = Sequential::<f32>::new(mlp_spec(7), 2).unwrap();
    let fresh = model.clone();
    let report = model.load_weights_matching(&path, &LoadOptions::default()).unwrap();
    assert_eq!(report.loaded, ["layers.0.kernel", "layers.0.bias", "layers.1.kernel", "layers.1.bias"]);
    assert_eq!(
        report.shape_differs,
        [("layers.2.kernel".to_string(), vec![5, 3], vec![5, 7]), ("layers.2.bias".to_string(), vec![3], vec![7])]
    );
    assert!(report.absent.is_empty() && report.unused.is_empty() && report.not_selected.is_empty());
    assert_eq!(report.initialised, ["layers.2.kernel", "layers.2.bias"]);
    for name in ["layers.0.kernel", "layers.0.bias", "layers.1.kernel", "layers.1.bias"] {
        assert_eq!(values(&model, name), values(&source, name), "{name}");
    }
    assert_eq!(values(&model, "layers.2.kernel"), values(&fresh, "layers.2.kernel"));
    let text = report.to_string();
    assert!(text.contains("loaded 4 tensors"), "{text}");
    assert!(text.contains("skipped (shape differs): layers.2.kernel: file [5, 3], model [5, 7]"), "{text}");
    assert!(text.contains("newly initialised: layers.2.kernel, layers.2.bias"), "{text}");

    // Only one layer, by prefix; another excluded.
    let mut model = Sequential::<f32>::new(mlp_spec(3), 2).unwrap();
    let report = model.load_weights_matching(&path, &LoadOptions::only(["layers.1"])).unwrap();
    assert_eq!(report.loaded, ["layers.1.kernel", "layers.1.bias"]);
    assert_eq!(report.not_selected.len(), 4);
    let mut model = Sequential::<f32>::new(mlp_spec(3), 2).unwrap();
    let report =
        model.load_weights_matching(&path, &LoadOptions::default().excluding(["layers.2", "layers.0.bias"])).unwrap();
    assert_eq!(report.loaded, ["layers.0.kernel", "layers.1.kernel", "layers.1.bias"]);
    assert_eq!(values(&model, "layers.0.kernel"), values(&source, "layers.0.kernel"));
    assert_ne!(values(&model, "layers.2.kernel"), values(&source, "layers.2.kernel"));

    // A deeper model: the file lacks its extra layer; a shallower one leaves tensors unused.
    let deeper = ModelSpec::new(
        &[4],
        vec![
            LayerSpec::dense(6, Activation::Tanh),
            LayerSpec::dense(5, Activation::Relu),
            LayerSpec::dense(3, Activation::Softmax),
            LayerSpec::dense(2, Activation::Softmax),
        ],
    );
    let mut model = Sequential::<f32>::new(deeper, 2).unwrap();
    let report = model.load_weights_matching(&path, &LoadOptions::default()).unwrap();
    assert_eq!(report.loaded.len(), 6);
    assert_eq!(report.absent, ["layers.3.kernel", "layers.3.bias"]);
    let shallow = ModelSpec::new(&[4], vec![LayerSpec::dense(6, Activation::Tanh)]);
    let mut model = Sequential::<f32>::new(shallow, 2).unwrap();
    let report = model.load_weights_matching(&path, &LoadOptions::default()).unwrap();
    assert_eq!(report.unused, ["layers.1.bias", "layers.1.kernel", "layers.2.bias", "layers.2.kernel"]);
}

#[test]
fn requested_tensors_must_load() {
    let source = Sequential::<f32>::new(mlp_spec(3), 1).unwrap();
    let (_dir, path) = saved(&source);
    let mut model = Sequential::<f32>::new(mlp_spec(7), 2).unwrap();
    let before = model.clone();
    // Shape mismatch on an explicitly requested tensor: an error, and nothing changed.
    let e = model.load_weights_matching(&path, &LoadOptions::only(["layers.0", "layers.2.kernel"])).unwrap_err();
    assert!(matches!(e, LayerError::WeightShape { .. }), "{e}");
    assert!(e.to_string().contains("weight \"layers.2.kernel\" has shape [5, 3], the model expects [5, 7]"), "{e}");
    assert_eq!(model.parameters(), before.parameters());
    // A pattern that names no parameter.
    let e = model.load_weights_matching(&path, &LoadOptions::only(["layers.9"])).unwrap_err();
    assert_eq!(e.to_string(), "unknown parameter \"layers.9\"");
    // A requested parameter the file lacks.
    let deeper = ModelSpec::new(
        &[4],
        vec![
            LayerSpec::dense(6, Activation::Tanh),
            LayerSpec::dense(5, Activation::Relu),
            LayerSpec::dense(3, Activation::Relu),
            LayerSpec::dense(2, Activation::Softmax),
        ],
    );
    let mut model = Sequential::<f32>::new(deeper, 2).unwrap();
    let e = model.load_weights_matching(&path, &LoadOptions::only(["layers.3"])).unwrap_err();
    assert!(matches!(e, LayerError::MissingWeight { .. }), "{e}");
    // Not a safetensors file.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("w.safetensors");
    std::fs::write(&junk, b"not a file").unwrap();
    let e = model.load_weights_matching(&junk, &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not a valid safetensors file"), "{e}");
}

#[test]
fn new_head_keeps_the_body_bit_for_bit() {
    let mut source = Sequential::<f32>::new(mlp_spec(3), 1).unwrap();
    source.freeze_layers(0..1);
    let (model, head) = source.with_new_head(7, 99).unwrap();
    assert_eq!(head, 2);
    assert_eq!(model.output_shape(), &[7]);
    for name in ["layers.0.kernel", "layers.0.bias", "layers.1.kernel", "layers.1.bias"] {
        let (a, b) = (model.parameter(name).unwrap(), source.parameter(name).unwrap());
        assert_eq!(a.value.to_vec(), b.value.to_vec(), "{name}");
        assert_eq!(a.trainable, b.trainable, "{name}");
    }
    assert!(!model.parameter("layers.0.kernel").unwrap().trainable);
    assert_eq!(model.parameter("layers.2.kernel").unwrap().shape(), &[5, 7]);
    assert!(model.parameter("layers.2.bias").unwrap().value.array().iter().all(|&v| v == 0.0));
    // Same width: still a new head (fresh values from the seed), body unchanged.
    let (same, _) = source.with_new_head(3, 99).unwrap();
    assert_ne!(values(&same, "layers.2.kernel"), values(&source, "layers.2.kernel"));
    assert_eq!(values(&same, "layers.1.kernel"), values(&source, "layers.1.kernel"));
    // Seeded: the same seed gives the same head.
    let (again, _) = source.with_new_head(7, 99).unwrap();
    assert_eq!(values(&again, "layers.2.kernel"), values(&model, "layers.2.kernel"));
    // No Dense layer.
    let conv = Sequential::<f32>::new(ModelSpec::new(&[4, 4, 1], vec![LayerSpec::Flatten]), 0).unwrap();
    assert!(conv.with_new_head(2, 0).unwrap_err().to_string().contains("no Dense layer"));
}

#[test]
fn freezing_by_layer_range_and_name() {
    let mut model = Sequential::<f32>::new(ModelSpec::seed_cnn(&[28, 28, 1], 10), 0).unwrap();
    assert_eq!(model.freeze_layers(0..3), 2); // Conv2D kernel and bias; pooling and flatten have none
    assert_eq!(model.num_parameters(), (692_352 + 1_290, 320));
    assert_eq!(model.freeze(|n| n == "layers.4.bias"), 1);
    assert_eq!(model.freeze(|n| n == "layers.4.bias"), 0); // already frozen
    assert_eq!(model.num_parameters(), (692_352 + 1_280, 330));
    let text = model.summary();
    assert!(text.contains("Trainable params: 693,632"), "{text}");
    assert!(text.contains("Non-trainable params: 330"), "{text}");
}
