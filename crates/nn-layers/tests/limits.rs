//! Sizing a model before building it: the shape-only pass ([`ModelSpec::shapes`]) and
//! the memory estimate ([`nn_layers::Footprint`]), checked against hand-computed
//! numbers, against the built model, and on specs too large to build.

use std::time::Instant;

use nn_layers::{Activation, LayerSpec, Model, ModelSpec, Sequential, Source, StepMemory};

/// A small MLP: [4] → Dense(8, relu) → Dense(3, softmax).
fn mlp() -> ModelSpec {
    ModelSpec::new(&[4], vec![LayerSpec::dense(8, Activation::Relu), LayerSpec::dense(3, Activation::Softmax)])
}

/// A small CNN: [6, 6, 1] → Conv2D(2, 3×3, relu) → MaxPool2D(2) → Flatten → Dense(3).
fn cnn() -> ModelSpec {
    ModelSpec::new(
        &[6, 6, 1],
        vec![
            LayerSpec::conv2d(2, 3, Activation::Relu),
            LayerSpec::max_pool(2),
            LayerSpec::Flatten,
            LayerSpec::dense(3, Activation::Softmax),
        ],
    )
}

#[test]
fn mlp_footprint_by_hand() {
    let shapes = mlp().shapes().unwrap();
    // Dense 4·8 + 8 = 40, Dense 8·3 + 3 = 27.
    let counts: Vec<usize> = shapes.layers.iter().map(|l| l.parameters).collect();
    assert_eq!(counts, [40, 27]);
    assert_eq!(shapes.num_parameters(), (67, 0));
    let fp = shapes.footprint(4);
    // Per sample: input I = 4, kept A = 8 + 3 = 11.
    assert_eq!((fp.parameters, fp.trainable, fp.inputs, fp.kept), (67, 67, 4, 11));
    assert_eq!(fp.parameter_bytes(), 4 * 67);
    // Adam (2 slots), batch 10: 4·(67 + 67·3) = 1072 for the parameters,
    // 4·10·(4 + 2·11) = 1040 for the activations.
    assert_eq!(fp.training_step(10, 2), StepMemory { parameters: 1072, activations: 1040 });
    assert_eq!(fp.training_step(10, 2).total(), 2112);
    // Plain SGD keeps no slot: 4·(67 + 67) = 536.
    assert_eq!(fp.training_step(10, 0).parameters, 536);
    // Inference: the input (4) stays; 4 + 8 = 12, then 12 + 3 = 15 before the hidden
    // layer's value is freed: 4·10·15 = 600.
    assert_eq!(fp.inference_peak, 15);
    assert_eq!(fp.inference(10), StepMemory { parameters: 268, activations: 600 });
}

#[test]
fn cnn_footprint_by_hand() {
    let shapes = cnn().shapes().unwrap();
    let out: Vec<&[usize]> = shapes.layers.iter().map(|l| l.output_shape.as_slice()).collect();
    assert_eq!(out, [&[4, 4, 2][..], &[2, 2, 2], &[8], &[3]]);
    // Conv2D 3·3·1·2 + 2 = 20; Dense 8·3 + 3 = 27.
    let counts: Vec<usize> = shapes.layers.iter().map(|l| l.parameters).collect();
    assert_eq!(counts, [20, 0, 0, 27]);
    // f64, SGD, batch 5: 8·(47 + 47) = 752; I = 36, A = 32 + 8 + 8 + 3 = 51,
    // 8·5·(36 + 2·51) = 5520.
    let fp = shapes.footprint(8);
    assert_eq!((fp.inputs, fp.kept), (36, 51));
    assert_eq!(fp.training_step(5, 0), StepMemory { parameters: 752, activations: 5520 });
    // Inference: 36 + 32 = 68, + 8 = 76 (then the convolution's output is freed), ...
    assert_eq!(fp.inference_peak, 76);
    assert_eq!(fp.inference(5).activations, 8 * 5 * 76);
}

#[test]
fn frozen_parameters_have_no_gradient_and_no_slots() {
    // Dense(4) on [8]: 36; BatchNormalization(4): gamma, beta trainable, the moving
    // statistics (8) not.
    let spec = ModelSpec::new(&[8], vec![LayerSpec::dense(4, Activation::Relu), LayerSpec::batch_norm()]);
    let fp = spec.shapes().unwrap().footprint(4);
    assert_eq!((fp.parameters, fp.trainable), (52, 44));
    // 4·(52 + 44·3) = 736.
    assert_eq!(fp.training_step(1, 2).parameters, 736);
}

#[test]
fn recurrent_layers_and_dropout_count_what_they_keep() {
    // LSTM(2) over 5 steps keeps 6·2 per step: 60; its output is [2].
    let spec = ModelSpec::new(&[5, 3], vec![LayerSpec::lstm(2)]);
    let shapes = spec.shapes().unwrap();
    assert_eq!(shapes.layers[0].saved, 60);
    assert_eq!(shapes.footprint(4).kept, 62);
    // Dropout keeps a mask as large as its output.
    let spec = ModelSpec::mlp(&[4], 8, 3, 0.5);
    let shapes = spec.shapes().unwrap();
    let saved: Vec<usize> = shapes.layers.iter().map(|l| l.saved).collect();
    assert_eq!(saved, [0, 0, 8, 0]);
}

#[test]
fn graph_inference_frees_values_after_their_last_reader() {
    // a → d1 (16) → d2 (16) → add(d1, d2) (16) → head (2): d1 is read twice, so it
    // lives until the Add ran: 4 + 16 + 16 + 16 = 52 at the Add.
    let text = r#"{"inputs": [{"name": "a", "shape": [4]}], "layers": [
        {"type": "Dense", "units": 16, "name": "d1", "inputs": ["a"]},
        {"type": "Dense", "units": 16, "name": "d2"},
        {"type": "Add", "name": "sum", "inputs": ["d1", "d2"]},
        {"type": "Dense", "units": 2, "name": "head"}]}"#;
    let shapes = ModelSpec::from_json(text).unwrap().shapes().unwrap();
    assert_eq!(shapes.layers[2].inputs, [Source::Layer(0), Source::Layer(1)]);
    let fp = shapes.footprint(4);
    assert_eq!(fp.inference_peak, 52);
    assert_eq!(fp.kept, 16 + 16 + 16 + 2);
}

#[test]
fn the_shape_only_pass_agrees_with_the_built_model() {
    let specs = [
        mlp(),
        cnn(),
        ModelSpec::seed_cnn(&[28, 28, 1], 10),
        ModelSpec::resnet(&[28, 28, 1], 10).unwrap(),
        ModelSpec::lstm_classifier(&[28, 28, 1], 16, 10).unwrap(),
        ModelSpec::mlp(&[8, 8, 1], 32, 10, 0.25),
    ];
    for spec in specs {
        let shapes = spec.shapes().unwrap();
        let model = Sequential::<f32>::new(spec.clone(), 0).unwrap();
        assert_eq!(shapes, model.shapes(), "{}", spec.to_json());
        assert_eq!(shapes.num_parameters(), model.num_parameters());
        assert_eq!(shapes.summary::<f32>(), model.summary());
        let f64_model = Model::<f64>::new(spec, 0).unwrap();
        assert_eq!(shapes.summary::<f64>(), f64_model.summary());
    }
}

#[test]
fn a_built_model_reports_its_frozen_state() {
    let mut model = Sequential::<f32>::new(mlp(), 0).unwrap();
    model.freeze_layers(0..1);
    let shapes = model.shapes();
    assert_eq!(shapes.num_parameters(), (27, 40));
    assert_eq!(shapes.footprint(4).trainable, 27);
}

/// Peak resident memory of this process so far (Linux), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn twenty_million_units_are_sized_without_allocating_them() {
    let spec = ModelSpec::from_json(
        r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 20000000}]}"#,
    )
    .unwrap();
    let before = peak_rss_kib();
    let t = Instant::now();
    let shapes = spec.shapes().unwrap();
    let text = shapes.summary::<f32>();
    let fp = shapes.footprint(4);
    assert!(t.elapsed().as_secs_f64() < 1.0, "{:?}", t.elapsed());
    if let (Some(a), Some(b)) = (before, peak_rss_kib()) {
        assert!(b - a < 100 << 10, "peak RSS grew by {} KiB", b - a);
    }
    assert!(text.contains("Total params: 1,300,000,000 (4.84 GB)"), "{text}");
    // 64·2·10⁷ + 2·10⁷ parameters; Adam at batch 32: 16 bytes per parameter, and
    // 4·32·(64 + 2·(64 + 2·10⁷)) for the activations.
    assert_eq!(fp.parameters, 1_300_000_000);
    let step = fp.training_step(32, 2);
    assert_eq!(step.parameters, 16 * 1_300_000_000);
    assert_eq!(step.activations, 4 * 32 * (64 + 2 * (64 + 20_000_000)));
}

#[test]
fn specs_too_large_to_build_are_refused_by_the_shape_pass() {
    let cases = [
        // 64·10¹² parameters: over MAX_PARAMETERS.
        (
            r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 1000000000000}]}"#,
            "more than the limit",
        ),
        // 2⁹⁶ elements per sample.
        (
            r#"{"input_shape": [4294967296, 4294967296, 4294967296], "layers": [{"type": "Flatten"}]}"#,
            "too many elements",
        ),
        // A kernel of 2⁴⁰·2⁴⁰ scalars: its element count overflows.
        (
            r#"{"input_shape": [1099511627776], "layers": [{"type": "Dense", "units": 1099511627776}]}"#,
            "too many elements",
        ),
    ];
    for (text, needle) in cases {
        let t = Instant::now();
        let e = ModelSpec::from_json(text).unwrap().shapes().unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
        assert!(e.len() < 400, "{e}");
        assert!(t.elapsed().as_secs_f64() < 1.0);
    }
    let many: Vec<LayerSpec> = (0..100_000).map(|_| LayerSpec::Flatten).collect();
    let e = ModelSpec::new(&[4], many).shapes().unwrap_err().to_string();
    assert!(e.contains("100000 layers"), "{e}");
}

#[test]
fn a_saved_description_reads_without_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let model = Sequential::<f32>::new(cnn(), 3).unwrap();
    model.save(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join(nn_layers::WEIGHTS_FILE)).unwrap();
    assert_eq!(&ModelSpec::read_saved(dir.path()).unwrap(), model.spec());
    std::fs::write(dir.path().join(nn_layers::MODEL_FILE), "{\"format_version\": 1}").unwrap();
    let e = ModelSpec::read_saved(dir.path()).unwrap_err().to_string();
    assert!(e.contains("no \"model\""), "{e}");
    let e = ModelSpec::read_saved(&dir.path().join("missing")).unwrap_err().to_string();
    assert!(e.contains("model.json"), "{e}");
}
