//! Sequential: building with shape inference and build-time errors, summary,
//! parameters, forward and forward_logits, state updates, initializers, and the
//! gradients a model reports checked against finite differences.

mod common;

use std::sync::Arc;

use nn_layers::{
    Activation, Conv2DConfig, DenseConfig, Fans, ForwardCtx, Graph, Initializer, LayerError, LayerSpec, Mode,
    ModelSpec, Module, PaddingMode, ParamKind, Sequential, Tensor,
};
use nn_tensor::random::seeded_rng;

#[test]
fn seed_cnn_summary_numbers() {
    let model = Sequential::<f32>::new(ModelSpec::seed_cnn(&[28, 28, 1], 10), 0).unwrap();
    // Conv2D: 3·3·1·32 + 32 = 320; MaxPool, Flatten: 0; Dense: 13·13·32 = 5408 inputs,
    // 5408·128 + 128 = 692,352; Dense: 128·10 + 10 = 1,290; total 693,962.
    let counts: Vec<usize> = (0..5).map(|i| model.layer_parameters(i).iter().map(|p| p.len()).sum()).collect();
    assert_eq!(counts, [320, 0, 0, 692_352, 1_290]);
    assert_eq!(model.num_parameters(), (693_962, 0));
    let shapes: Vec<&[usize]> = model.layers().iter().map(|l| l.output_shape()).collect();
    assert_eq!(shapes, [&[26, 26, 32][..], &[13, 13, 32], &[5408], &[128], &[10]]);

    let text = model.summary();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Model: \"sequential\" (input (None, 28, 28, 1), f32)");
    assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), ["Layer", "(type)", "Output", "Shape", "Param", "#"]);
    let rows: Vec<Vec<&str>> =
        lines[4..9].iter().map(|l| l.split("  ").map(str::trim).filter(|s| !s.is_empty()).collect()).collect();
    assert_eq!(
        rows,
        [
            vec!["layers.0 (Conv2D)", "(None, 26, 26, 32)", "320"],
            vec!["layers.1 (MaxPool2D)", "(None, 13, 13, 32)", "0"],
            vec!["layers.2 (Flatten)", "(None, 5408)", "0"],
            vec!["layers.3 (Dense)", "(None, 128)", "692,352"],
            vec!["layers.4 (Dense)", "(None, 10)", "1,290"],
        ]
    );
    assert_eq!(lines[10], "Total params: 693,962 (2.65 MB)");
    assert_eq!(lines[11], "Trainable params: 693,962 (2.65 MB)");
    assert_eq!(lines[12], "Non-trainable params: 0 (0.00 B)");
    // Param # column right-aligned: every row ends at the same column.
    let ends: Vec<usize> = lines[4..9].iter().map(|l| l.len()).collect();
    assert!(ends.iter().all(|&e| e == ends[0]), "{text}");
}

#[test]
fn summary_counts_non_trainable_batch_norm_statistics() {
    let spec = ModelSpec::new(&[8], vec![LayerSpec::dense(4, Activation::Relu), LayerSpec::batch_norm()]);
    let model = Sequential::<f64>::new(spec, 0).unwrap();
    // Dense 8·4 + 4 = 36; BatchNorm γ, β (trainable) and moving mean/variance: 4 each.
    assert_eq!(model.num_parameters(), (44, 8));
    let text = model.summary();
    assert!(text.contains("Total params: 52 (416.00 B)"), "{text}");
    assert!(text.contains("Trainable params: 44 (352.00 B)"), "{text}");
    assert!(text.contains("Non-trainable params: 8 (64.00 B)"), "{text}");
    assert!(text.contains("f64"));
}

#[test]
fn parameter_names_kinds_and_order() {
    let spec = ModelSpec::new(
        &[6, 6, 2],
        vec![
            LayerSpec::conv2d(3, 3, Activation::Relu),
            LayerSpec::batch_norm(),
            LayerSpec::GlobalAveragePooling2D,
            LayerSpec::Dense(DenseConfig::new(2).with_bias(false)),
        ],
    );
    let model = Sequential::<f32>::new(spec, 0).unwrap();
    let names: Vec<(&str, ParamKind, bool)> =
        model.parameters().iter().map(|p| (p.name.as_str(), p.kind, p.trainable)).collect();
    assert_eq!(
        names,
        [
            ("layers.0.kernel", ParamKind::Kernel, true),
            ("layers.0.bias", ParamKind::Bias, true),
            ("layers.1.gamma", ParamKind::Gamma, true),
            ("layers.1.beta", ParamKind::Beta, true),
            ("layers.1.moving_mean", ParamKind::MovingMean, false),
            ("layers.1.moving_variance", ParamKind::MovingVariance, false),
            ("layers.3.kernel", ParamKind::Kernel, true),
        ]
    );
    assert_eq!(model.parameter("layers.0.kernel").unwrap().shape(), [3, 3, 2, 3]);
    assert_eq!(model.parameter("layers.3.kernel").unwrap().shape(), [3, 2]);
    // Keras's initial values: zeros for biases and β and moving means, ones for γ and
    // moving variances.
    assert!(model.parameter("layers.0.bias").unwrap().value.to_vec().iter().all(|&v| v == 0.0));
    assert!(model.parameter("layers.1.gamma").unwrap().value.to_vec().iter().all(|&v| v == 1.0));
    assert!(model.parameter("layers.1.moving_variance").unwrap().value.to_vec().iter().all(|&v| v == 1.0));
    assert_eq!(model.output_shape(), [2]);
}

#[test]
fn shape_mismatch_is_a_build_error_naming_layer_kind_and_shapes() {
    // Conv2D after Flatten: layer 2 gets [5408] but needs [height, width, channels].
    let spec = ModelSpec::new(
        &[28, 28, 1],
        vec![LayerSpec::conv2d(32, 3, Activation::Relu), LayerSpec::Flatten, LayerSpec::conv2d(8, 3, Activation::Relu)],
    );
    let err = Sequential::<f32>::new(spec, 0).unwrap_err();
    assert_eq!(
        err,
        LayerError::BuildShape {
            index: 2,
            name: None,
            kind: "Conv2D",
            expected: "[height, width, channels] (3 axes, NHWC without the batch axis)".into(),
            got: vec![21_632],
        }
    );
    assert_eq!(
        err.to_string(),
        "layer 2 (Conv2D): expected input shape [height, width, channels] (3 axes, NHWC without the batch axis), \
         got [21632] (per sample, batch axis left out)"
    );
    // A pool larger than the image.
    let spec = ModelSpec::new(&[5, 5, 1], vec![LayerSpec::conv2d(4, 5, Activation::Relu), LayerSpec::max_pool(2)]);
    let err = Sequential::<f32>::new(spec, 0).unwrap_err();
    assert!(
        matches!(&err, LayerError::BuildShape { index: 1, kind: "MaxPool2D", got, .. } if got == &[1, 1, 4]),
        "{err}"
    );
    assert!(err.to_string().contains("[height ≥ 2, width ≥ 2, channels ≥ 1]"), "{err}");
    // A kernel larger than a valid-padded input, with the same kernel fine under `same`.
    let conv =
        |padding| ModelSpec::new(&[2, 9, 3], vec![LayerSpec::Conv2D(Conv2DConfig::new(4, 3).with_padding(padding))]);
    let err = Sequential::<f32>::new(conv(PaddingMode::Valid), 0).unwrap_err();
    assert!(err.to_string().starts_with("layer 0 (Conv2D): expected input shape [height ≥ 3, width ≥ 3"), "{err}");
    assert_eq!(Sequential::<f32>::new(conv(PaddingMode::Same), 0).unwrap().output_shape(), [2, 9, 4]);
    // GlobalAveragePooling2D on vectors; Dense on a 0-d sample; bad settings.
    let err = Sequential::<f32>::new(ModelSpec::new(&[10], vec![LayerSpec::GlobalAveragePooling2D]), 0).unwrap_err();
    assert!(matches!(err, LayerError::BuildShape { index: 0, kind: "GlobalAveragePooling2D", .. }));
    let err = Sequential::<f32>::new(ModelSpec::new(&[4], vec![LayerSpec::dense(0, Activation::Relu)]), 0).unwrap_err();
    assert_eq!(err.to_string(), "layer 0 (Dense): units must be at least 1, got 0");
    let err = Sequential::<f32>::new(ModelSpec::new(&[4, 0], vec![]), 0).unwrap_err();
    assert!(matches!(err, LayerError::Spec { .. }));
}

#[test]
fn forward_checks_the_input_shape_and_never_panics() {
    let model = Sequential::<f32>::new(ModelSpec::seed_cnn(&[28, 28, 1], 10), 1).unwrap();
    for bad in [vec![2, 28, 28], vec![2, 28, 28, 3], vec![0, 28, 28, 1], vec![28, 28, 1]] {
        let mut g = Graph::no_grad();
        let x = g.input(Tensor::zeros(&bad));
        let mut rng = seeded_rng(0);
        let err = model.forward(&mut g, x, &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap_err();
        assert_eq!(err, LayerError::InputShape { expected: vec![28, 28, 1], got: bad.clone() });
    }
    assert!(model.predict(&Tensor::zeros(&[1, 27, 28, 1])).is_err());
}

#[test]
fn forward_logits_stops_before_the_final_softmax() {
    let softmax_dense = ModelSpec::mlp(&[5], 6, 3, 0.0);
    let softmax_layer = ModelSpec::new(
        &[5],
        vec![LayerSpec::dense(6, Activation::Tanh), LayerSpec::dense(3, Activation::Linear), LayerSpec::Softmax],
    );
    let x = Tensor::<f64>::from_vec(&[2, 5], (0..10).map(|i| i as f64 * 0.3 - 1.0).collect());
    for spec in [softmax_dense, softmax_layer] {
        let model = Sequential::<f64>::new(spec, 3).unwrap();
        assert!(model.ends_with_softmax());
        let mut g = Graph::<f64>::no_grad();
        let xv = g.input(&x);
        let mut rng = seeded_rng(0);
        let mut ctx = ForwardCtx::new(Mode::Eval, &mut rng);
        let probs = model.forward(&mut g, xv, &mut ctx).unwrap();
        let logits = model.forward_logits(&mut g, xv, &mut ctx).unwrap();
        // softmax(logits) == probabilities, and the logits are not probabilities.
        let again = g.softmax(logits, 1);
        assert!(g.value(again).all_close(g.value(probs), 1e-15, 0.0));
        assert!(g.value(logits).to_vec().iter().any(|&v| v < 0.0));
        let sums = g.value(probs).sum_axes(&[1], false).to_vec();
        common::assert_close(&sums, &[1.0, 1.0], 1e-15);
        // The same through the Module trait (what a training loop holds).
        let m: &dyn Module<f64> = &model;
        assert!(m.ends_with_softmax());
        let via_trait = m.forward_logits(&mut g, xv, &mut ctx).unwrap();
        assert_eq!(g.value(via_trait), g.value(logits));
        assert_eq!(m.num_parameters(), model.num_parameters());
    }
    let plain =
        Sequential::<f64>::new(ModelSpec::new(&[5], vec![LayerSpec::dense(2, Activation::Sigmoid)]), 0).unwrap();
    assert!(!plain.ends_with_softmax());
}

#[test]
fn same_seed_same_weights_and_initializer_statistics() {
    let a = Sequential::<f32>::new(ModelSpec::seed_cnn(&[28, 28, 1], 10), 42).unwrap();
    let b = Sequential::<f32>::new(ModelSpec::seed_cnn(&[28, 28, 1], 10), 42).unwrap();
    let c = Sequential::<f32>::new(ModelSpec::seed_cnn(&[28, 28, 1], 10), 43).unwrap();
    assert_eq!(a.parameters(), b.parameters());
    assert_ne!(a.parameters()[0], c.parameters()[0]);
    // Glorot uniform: U(−l, l), l = √(6 / (fan_in + fan_out)); variance l²/3.
    // Dense 5408 → 128: l = √(6/5536) ≈ 0.0329.
    let k = a.parameter("layers.3.kernel").unwrap().value.cast::<f64>();
    let l = (6.0f64 / (5408.0 + 128.0)).sqrt();
    assert!(k.max() < l && k.min() >= -l);
    assert!(k.max() > 0.99 * l && k.min() < -0.99 * l);
    let var = k.try_var_axes(&[0, 1], false).unwrap().item();
    assert!((var / (l * l / 3.0) - 1.0).abs() < 0.01, "{var}");
    // Conv2D 3×3×1 → 32: fans 9 and 288, l = √(6/297).
    let k = a.parameter("layers.0.kernel").unwrap().value.cast::<f64>();
    let l = (6.0f64 / 297.0).sqrt();
    assert!(k.max() < l && k.min() >= -l && k.max() > 0.8 * l);
}

#[test]
fn initializers_follow_their_formulas() {
    let mut rng = seeded_rng(5);
    let fans = Fans::conv2d((3, 3), 16, 32); // fan_in 144, fan_out 288
    let var = |init: Initializer, rng: &mut _| {
        let t = init.init::<f64>(&[3, 3, 16, 32 * 20], Fans { fan_out: 288, ..fans }, rng).unwrap();
        (t.try_var_axes(&[0, 1, 2, 3], false).unwrap().item(), t.mean(), t.max().max(-t.min()))
    };
    // He normal: variance 2/fan_in, truncated at 2σ_raw with σ_raw = √(2/fan_in)/0.8796.
    let (v, m, bound) = var(Initializer::HeNormal, &mut rng);
    assert!((v / (2.0 / 144.0) - 1.0).abs() < 0.02 && m.abs() < 0.002, "{v} {m}");
    assert!(bound <= 2.0 * (2.0f64 / 144.0).sqrt() / 0.879_625_661_034_239_8 + 1e-12);
    let (v, _, bound) = var(Initializer::HeUniform, &mut rng);
    assert!((v / (2.0 / 144.0) - 1.0).abs() < 0.02 && bound < (6.0f64 / 144.0).sqrt());
    let (v, _, _) = var(Initializer::GlorotNormal, &mut rng);
    assert!((v / (2.0 / 432.0) - 1.0).abs() < 0.02, "{v}");
    let (v, _, _) = var(Initializer::LecunNormal, &mut rng);
    assert!((v / (1.0 / 144.0) - 1.0).abs() < 0.02, "{v}");
    let (v, _, _) = var(Initializer::LecunUniform, &mut rng);
    assert!((v / (1.0 / 144.0) - 1.0).abs() < 0.02, "{v}");
    let c = Initializer::Constant(0.25).init::<f32>(&[2, 2], fans, &mut rng).unwrap();
    assert_eq!(c.to_vec(), [0.25; 4]);
    assert_eq!(Initializer::Ones.init::<f32>(&[3], fans, &mut rng).unwrap().to_vec(), [1.0; 3]);
    assert!(Initializer::RandomUniform { minval: 1.0, maxval: 1.0 }.init::<f32>(&[3], fans, &mut rng).is_err());
    // A kernel initializer given in JSON reaches the parameters.
    let spec = ModelSpec::from_json(
        r#"{"input_shape": [3], "layers": [{"type": "Dense", "units": 2, "kernel_initializer": {"constant": 0.5},
            "bias_initializer": "ones"}]}"#,
    )
    .unwrap();
    let m = Sequential::<f32>::new(spec, 0).unwrap();
    assert_eq!(m.parameter("layers.0.kernel").unwrap().value.to_vec(), [0.5; 6]);
    assert_eq!(m.parameter("layers.0.bias").unwrap().value.to_vec(), [1.0; 2]);
}

#[test]
fn state_updates_move_batch_norm_statistics() {
    let spec = ModelSpec::new(&[2], vec![LayerSpec::batch_norm()]);
    let mut model = Sequential::<f64>::new(spec, 0).unwrap();
    let x = Tensor::from_vec(&[2, 2], vec![1., 2., 3., 6.]);
    let mut g = Graph::<f64>::new();
    let xv = g.input(&x);
    let mut rng = seeded_rng(0);
    let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
    model.forward(&mut g, xv, &mut ctx).unwrap();
    let updates = std::mem::take(&mut ctx.state_updates);
    // Moving statistics are constants in the graph: no gradient is reported for them.
    assert_eq!(g.param_names().collect::<Vec<_>>(), ["layers.0.gamma", "layers.0.beta"]);
    drop(g);
    model.apply_state_updates(updates).unwrap();
    common::assert_close(&model.parameter("layers.0.moving_mean").unwrap().value.to_vec(), &[0.02, 0.04], 1e-15);
    common::assert_close(&model.parameter("layers.0.moving_variance").unwrap().value.to_vec(), &[1.0, 1.03], 1e-15);
    // Bad updates change nothing.
    let before = model.parameters().to_vec();
    let err = model
        .apply_state_updates(vec![
            ("layers.0.moving_mean".into(), Tensor::zeros(&[2])),
            ("layers.0.moving_varianse".into(), Tensor::zeros(&[2])),
        ])
        .unwrap_err();
    assert_eq!(err, LayerError::UnknownParameter { name: "layers.0.moving_varianse".into() });
    let err = model.apply_state_updates(vec![("layers.0.moving_mean".into(), Tensor::zeros(&[3]))]).unwrap_err();
    assert!(matches!(err, LayerError::ParameterShape { .. }));
    assert_eq!(model.parameters(), &before[..]);
}

/// The loss of `model` on `x` against `labels` in evaluation mode (so BatchNorm uses
/// fixed statistics and the loss is a smooth function of every trainable parameter).
fn eval_loss(model: &Sequential<f64>, x: &Tensor<f64>, labels: &[usize]) -> f64 {
    let mut g = Graph::<f64>::no_grad();
    let xv = g.input(x);
    let mut rng = seeded_rng(0);
    let logits = model.forward_logits(&mut g, xv, &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap();
    let l = g.cross_entropy(logits, labels);
    g.value(l).item()
}

#[test]
fn model_gradients_match_finite_differences_and_frozen_parameters_get_none() {
    // A small CNN with every kind of parameter; gradients from g.backward against
    // central differences (L(θ + h) − L(θ − h)) / 2h, h = 1e-5, on every trainable scalar.
    let spec = ModelSpec::new(
        &[5, 5, 2],
        vec![
            LayerSpec::Conv2D(
                Conv2DConfig::new(3, 2).with_activation(Activation::Tanh).with_padding(PaddingMode::Same),
            ),
            LayerSpec::batch_norm(),
            LayerSpec::avg_pool(2),
            LayerSpec::Flatten,
            LayerSpec::dense(4, Activation::Elu),
            LayerSpec::dense(3, Activation::Softmax),
        ],
    );
    let mut model = Sequential::<f64>::new(spec, 9).unwrap();
    // Non-trivial BatchNorm statistics and β.
    model.set_parameter("layers.1.moving_mean", Tensor::from_vec(&[3], vec![0.1, -0.2, 0.05])).unwrap();
    model.set_parameter("layers.1.moving_variance", Tensor::from_vec(&[3], vec![0.5, 1.2, 0.8])).unwrap();
    model.set_parameter("layers.1.beta", Tensor::from_vec(&[3], vec![0.3, -0.1, 0.2])).unwrap();
    model.parameters_mut()[0].trainable = false; // freeze the conv kernel
    let x = common::uniform(&[3, 5, 5, 2], -1.0, 1.0, 4);
    let labels = [0, 2, 1];

    let mut g = Graph::<f64>::new();
    let xv = g.input(&x);
    let mut rng = seeded_rng(0);
    let logits = model.forward_logits(&mut g, xv, &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap();
    let l = g.cross_entropy(logits, &labels);
    let grads = g.backward(l).unwrap();
    drop(g);
    assert!(grads.get("layers.0.kernel").is_none(), "a frozen parameter is a constant");
    let trainable: Vec<String> = model.parameters().iter().filter(|p| p.trainable).map(|p| p.name.clone()).collect();
    assert_eq!(grads.names().collect::<Vec<_>>(), trainable);

    let h = 1e-5;
    let mut worst = 0.0f64;
    for name in &trainable {
        let base = model.parameter(name).unwrap().value.clone();
        let analytic = grads.get(name).unwrap().to_vec();
        for (i, &a) in analytic.iter().enumerate() {
            let mut shifted = |d: f64| {
                let mut v = (*base).clone();
                v.as_slice_mut().unwrap()[i] += d;
                model.set_parameter(name, v).unwrap();
                eval_loss(&model, &x, &labels)
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
            worst = worst.max((numeric - a).abs() / numeric.abs().max(a.abs()).max(1e-3));
        }
        model.set_parameter(name, (*base).clone()).unwrap();
    }
    assert!(worst < 1e-6, "worst relative error {worst}");
}

#[test]
fn parameters_are_shared_with_the_graph_not_copied() {
    let model = Sequential::<f32>::new(ModelSpec::seed_cnn(&[28, 28, 1], 10), 0).unwrap();
    let before: Vec<usize> = model.parameters().iter().map(|p| Arc::strong_count(&p.value)).collect();
    let mut g = Graph::<f32>::new();
    let xv = g.input(Tensor::zeros(&[2, 28, 28, 1]));
    let mut rng = seeded_rng(0);
    model.forward(&mut g, xv, &mut ForwardCtx::new(Mode::Train, &mut rng)).unwrap();
    // Each value is now held by the model and the graph: the same allocation.
    let during: Vec<usize> = model.parameters().iter().map(|p| Arc::strong_count(&p.value)).collect();
    assert_eq!(during, before.iter().map(|c| c + 1).collect::<Vec<_>>());
    let kernel = g.param_var("layers.3.kernel").unwrap();
    assert!(std::ptr::eq(g.value(kernel), &*model.parameter("layers.3.kernel").unwrap().value));
    drop(g);
    let after: Vec<usize> = model.parameters().iter().map(|p| Arc::strong_count(&p.value)).collect();
    assert_eq!(after, before);
}

#[test]
fn dropout_in_a_model_uses_the_context_rng_and_mode() {
    let model = Sequential::<f32>::new(ModelSpec::mlp(&[20], 64, 4, 0.5), 0).unwrap();
    let x = Tensor::<f32>::ones(&[3, 20]);
    let run = |mode, seed| {
        let mut g = Graph::no_grad();
        let xv = g.input(&x);
        let mut rng = seeded_rng(seed);
        let y = Module::forward(&model, &mut g, xv, &mut ForwardCtx::new(mode, &mut rng)).unwrap();
        g.value(y).clone()
    };
    assert_eq!(run(Mode::Train, 1), run(Mode::Train, 1));
    assert_ne!(run(Mode::Train, 1), run(Mode::Train, 2));
    assert_eq!(run(Mode::Eval, 1), run(Mode::Eval, 2));
    assert_eq!(run(Mode::Eval, 1), model.predict(&x).unwrap());
}

#[test]
fn shapes_too_large_for_memory_are_refused_when_building() {
    use nn_layers::{ReshapeConfig, TargetShape};
    let build = |input: &[usize], layers: Vec<LayerSpec>| {
        Sequential::<f32>::new(ModelSpec::new(input, layers), 0).expect_err("the build must fail").to_string()
    };
    // [5, 2^62]: the element count overflows usize.
    let err = build(&[5, 1 << 62], vec![LayerSpec::Flatten]);
    assert_eq!(err, "model spec: input \"input\" has shape [5, 4611686018427387904]: too many elements");
    // [2^62]: a valid count, but 2^65 bytes as f64 (it used to build 4.6e18 features).
    let err = build(&[1 << 62], vec![LayerSpec::Flatten]);
    assert_eq!(err, "model spec: input \"input\" has shape [4611686018427387904]: too many elements");
    // [2^32, 2^32] would wrap to 0 elements.
    let err = build(&[1 << 32, 1 << 32], vec![LayerSpec::Flatten]);
    assert!(err.contains("[4294967296, 4294967296]: too many elements"), "{err}");
    // A Reshape target too large is the layer's settings error, naming the layer.
    let target = TargetShape::new(&[1 << 32, 1 << 32]).unwrap();
    let err = build(&[4], vec![LayerSpec::Reshape(ReshapeConfig { target_shape: target })]);
    assert_eq!(
        err,
        "layer 0 (Reshape): target_shape [4294967296, 4294967296] has too many elements (at most \
         1152921504606846975 per sample)"
    );
    // A large but possible shape still builds.
    let model = Sequential::<f32>::new(ModelSpec::new(&[1 << 20, 1 << 10], vec![LayerSpec::Flatten]), 0).unwrap();
    assert_eq!(model.output_shape(), [1 << 30]);
}
