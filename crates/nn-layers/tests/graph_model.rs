//! Graph models (format version 2): building, the errors a bad graph gets, parameter
//! names, several inputs and outputs, the summary's "Connected to" column, version-1
//! files saved before graphs existed, the resnet preset, and fused against unfused
//! plans on graphs.

mod common;

use std::path::Path;

use common::uniform;
use nn_layers::{
    Activation, ForwardCtx, Graph, LayerError, LayerSpec, Mode, Model, ModelSpec, Sequential, Source, Tensor,
};
use nn_tensor::random::seeded_rng;

fn build(json: &str) -> Result<Model<f64>, LayerError> {
    Model::<f64>::new(ModelSpec::from_json(json)?, 0)
}

fn build_err(json: &str) -> String {
    build(json).unwrap_err().to_string()
}

#[test]
fn bad_graphs_fail_with_one_message_naming_the_layer() {
    let cases = [
        (
            r#"{"input_shape": [4], "layers": [{"type": "Dense", "units": 3, "name": "a"}, {"type": "Dense", "units": 3, "name": "a"}]}"#,
            "layer 1 (Dense) is named \"a\", like layer 0 (Dense)",
        ),
        (
            r#"{"inputs": [{"name": "x", "shape": [4]}], "layers": [{"type": "Dense", "units": 3, "name": "x"}]}"#,
            "layer 0 (Dense) is named \"x\", like a model input",
        ),
        (
            r#"{"input_shape": [4], "layers": [{"type": "Dense", "units": 3, "name": "a", "inputs": ["nope"]}]}"#,
            "layer \"a\" (Dense): unknown input \"nope\"",
        ),
        (
            r#"{"input_shape": [4], "layers": [
                {"type": "Dense", "units": 4, "name": "a", "inputs": ["b"]},
                {"type": "Dense", "units": 4, "name": "b", "inputs": ["a"]}]}"#,
            "layer \"a\" (Dense) is on a cycle",
        ),
        (
            r#"{"input_shape": [4], "layers": [
                {"type": "Dense", "units": 4, "name": "a", "inputs": ["a"]}]}"#,
            "layer \"a\" (Dense) is on a cycle",
        ),
        (
            r#"{"input_shape": [4], "layers": [
                {"type": "Dense", "units": 4, "name": "a"},
                {"type": "Dense", "units": 2, "name": "dead", "inputs": ["a"]},
                {"type": "Dense", "units": 3, "name": "out", "inputs": ["a"]}]}"#,
            "layer \"dead\" (Dense) is unused",
        ),
        (
            r#"{"inputs": [{"name": "x", "shape": [4]}, {"name": "y", "shape": [4]}], "layers": [
                {"type": "Dense", "units": 4, "inputs": ["x"]}]}"#,
            "input \"y\" is unused",
        ),
        (
            r#"{"inputs": [{"name": "x", "shape": [4]}, {"name": "y", "shape": [4]}], "layers": [
                {"type": "Dense", "units": 4}]}"#,
            "the model has 2 inputs; say which this layer takes",
        ),
        (r#"{"input_shape": [4], "layers": [], "outputs": []}"#, "the model has no layers"),
        (
            r#"{"input_shape": [4], "layers": [{"type": "Dense", "units": 3, "name": "a.b"}]}"#,
            "layer name \"a.b\" is not usable",
        ),
        (
            r#"{"input_shape": [4], "layers": [{"type": "Dense", "units": 3}], "outputs": ["zz"]}"#,
            "unknown output \"zz\"",
        ),
        (
            r#"{"inputs": [{"name": "x", "shape": [4, 0]}], "layers": [{"type": "Flatten"}]}"#,
            "input \"x\" has shape [4, 0]",
        ),
        (
            r#"{"input_shape": [4], "layers": [{"type": "Dense", "units": 3, "name": "d", "inputs": []}]}"#,
            "layer \"d\" (Dense): \"inputs\" is empty",
        ),
        (
            r#"{"input_shape": [4], "layers": [{"type": "Dense", "units": 3, "name": "d", "inputs": ["input", "input"]}]}"#,
            "layer \"d\" (Dense): takes one input, got 2",
        ),
    ];
    for (json, want) in cases {
        let err = build_err(json);
        assert!(err.contains(want), "want {want:?}, got {err:?}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // A 10,000-character name is quoted cut short.
    let long = "n".repeat(10_000);
    let json = format!(r#"{{"input_shape": [4], "layers": [{{"type": "Dense", "units": 3, "name": "{long}"}}]}}"#);
    let err = build_err(&json);
    assert!(err.len() < 300, "{}", err.len());
}

#[test]
fn version_2_parameters_are_named_by_layer() {
    let model = build(
        r#"{"input_shape": [4], "layers": [
            {"type": "Dense", "units": 3, "name": "hidden", "activation": "relu"},
            {"type": "BatchNormalization"},
            {"type": "Dense", "units": 2}]}"#,
    )
    .unwrap();
    let names: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hidden.kernel",
            "hidden.bias",
            "batch_normalization_1.gamma",
            "batch_normalization_1.beta",
            "batch_normalization_1.moving_mean",
            "batch_normalization_1.moving_variance",
            "dense_2.kernel",
            "dense_2.bias",
        ]
    );
    // The same chain without version-2 keys keeps the version-1 names.
    let v1 = build(r#"{"input_shape": [4], "layers": [{"type": "Dense", "units": 3}, {"type": "Dense", "units": 2}]}"#)
        .unwrap();
    let names: Vec<&str> = v1.parameters().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["layers.0.kernel", "layers.0.bias", "layers.1.kernel", "layers.1.bias"]);
    assert!(v1.is_chain());
}

/// A version-1 model saved by nn before graph models existed (tests/fixtures/v1_model,
/// written by the previous commit's code with its predictions for a fixed batch)
/// loads and predicts the same: bit for bit up to the softmax output layer, whose
/// `exp` became the vectorized `fastmath::exp_f32` (within 1 ulp of the C library's)
/// later, so each probability may differ from the saved one by a few ulp.
#[test]
fn version_1_model_saved_before_graphs_loads_bit_identical() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1_model");
    let (model, meta) = Sequential::<f32>::load(&dir).unwrap();
    assert_eq!(model.spec().format_version, 1);
    assert_eq!(meta["class_names"][2], "c");
    assert_eq!(model.parameters()[0].name, "layers.0.kernel");
    let x: Vec<f32> = (0..2 * 64).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let x = Tensor::from_vec(&[2, 8, 8, 1], x);
    let expected: Vec<u32> = std::fs::read_to_string(dir.join("expected_predictions.txt"))
        .unwrap()
        .lines()
        .map(|l| u32::from_str_radix(l, 16).unwrap())
        .collect();
    let close = |got: &[u32]| {
        assert_eq!(got.len(), expected.len());
        for (i, (&g, &e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (g as i64 - e as i64).abs() <= 4,
                "prediction {i}: {} vs saved {}",
                f32::from_bits(g),
                f32::from_bits(e)
            );
        }
    };
    let got: Vec<u32> = model.predict(&x).unwrap().to_vec().iter().map(|v| v.to_bits()).collect();
    close(&got);
    let inferred: Vec<u32> =
        model.infer(x.array().view(), false).unwrap().to_vec().iter().map(|v| v.to_bits()).collect();
    assert_eq!(inferred, got);
}

/// Two inputs, two outputs: values checked against the same computation written out
/// with the layers' own parameters.
#[test]
fn two_inputs_and_two_outputs() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/two_inputs.json"))
            .unwrap();
    let model = Model::<f64>::new(ModelSpec::from_json(&text).unwrap(), 3).unwrap();
    assert_eq!(model.inputs().len(), 2);
    assert_eq!(model.output_shapes(), [vec![3], vec![1]]);
    let a = uniform(&[5, 4], -1.0, 1.0, 1);
    let b = uniform(&[5, 6], -1.0, 1.0, 2);
    let mut g = Graph::<f64>::no_grad();
    let (av, bv) = (g.input(a.clone()), g.input(b.clone()));
    let mut rng = seeded_rng(0);
    let outs = model.forward_all(&mut g, &[av, bv], &mut ForwardCtx::new(Mode::Eval, &mut rng), false).unwrap();
    // By hand: relu(a·Wa + ba) ‖ relu(b·Wb + bb) → relu(·W + b) → softmax / linear.
    let p = |name: &str| model.parameter(name).unwrap().value.array().clone();
    let dense = |x: &ndarray::ArrayD<f64>, layer: &str| {
        let x2 = x.view().into_dimensionality::<ndarray::Ix2>().unwrap();
        let w = p(&format!("{layer}.kernel")).into_dimensionality::<ndarray::Ix2>().unwrap();
        (x2.dot(&w) + p(&format!("{layer}.bias"))).into_dyn()
    };
    let relu = |x: ndarray::ArrayD<f64>| x.mapv(|v| v.max(0.0));
    let ha = relu(dense(a.array(), "measurements_dense"));
    let hb = relu(dense(b.array(), "history_dense"));
    let joined = ndarray::concatenate(ndarray::Axis(1), &[ha.view(), hb.view()]).unwrap();
    let hidden = relu(dense(&joined, "hidden"));
    let logits = dense(&hidden, "class");
    let score = dense(&hidden, "score");
    for (r, row) in logits.outer_iter().enumerate() {
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let sum: f64 = row.iter().map(|v| (v - m).exp()).sum();
        for (c, v) in row.iter().enumerate() {
            let want = (v - m).exp() / sum;
            assert!((g.value(outs[0]).array()[[r, c]] - want).abs() < 1e-12);
        }
    }
    for (x, y) in g.value(outs[1]).array().iter().zip(score.iter()) {
        assert!((x - y).abs() < 1e-12);
    }
    // One input for a two-input model: a clear error, no panic.
    let err = model.predict(&a).unwrap_err().to_string();
    assert!(err.contains("2 inputs and 2 outputs"), "{err}");
    let text = model.summary();
    assert!(text.contains("Connected to"), "{text}");
    assert!(text
        .lines()
        .any(|l| l.contains("joined (Concatenate)") && l.contains("measurements_dense, history_dense")));
}

#[test]
fn resnet_preset_counts_and_shapes() {
    let model = Model::<f32>::new(ModelSpec::resnet(&[28, 28, 1], 10).unwrap(), 0).unwrap();
    assert_eq!(model.num_parameters(), (309_162, 1_408));
    let at = |name: &str| model.layers()[model.layer_index(name).unwrap()].output_shape().to_vec();
    assert_eq!(at("stem_relu"), [28, 28, 32]);
    assert_eq!(at("stage1_out"), [14, 14, 32]);
    assert_eq!(at("stage2_out"), [7, 7, 64]);
    assert_eq!(at("stage3_out"), [4, 4, 128], "same padding, stride 2: ceil(7 / 2)");
    assert_eq!(model.output_shape(), [10]);
    assert_eq!(model.layer_inputs(model.layer_index("stage2_add").unwrap()).len(), 2);
    assert!(matches!(model.outputs(), [Source::Layer(_)]));
    assert!(ModelSpec::resnet(&[784], 10).unwrap_err().to_string().contains("[height, width, channels]"));
    // Evaluation without a graph equals the graph, bit for bit.
    let x = Tensor::<f32>::from(uniform(&[3, 28, 28, 1], 0.0, 1.0, 5).array().mapv(|v| v as f32));
    let got = model.infer(x.array().view(), false).unwrap();
    assert_eq!(got.to_vec(), model.predict(&x).unwrap().to_vec());
}

/// A graph whose Conv2D → MaxPool2D → Flatten is fused, beside a residual branch:
/// fused and unfused plans give the same values and gradients, bit for bit, in
/// training; and `infer` equals the graph.
#[test]
fn fused_and_unfused_plans_agree_on_a_graph() {
    let json = r#"{"inputs": [{"name": "x", "shape": [8, 8, 2]}], "layers": [
        {"type": "Conv2D", "name": "c0", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "Conv2D", "name": "c1", "filters": 3, "kernel_size": 3, "padding": "same"},
        {"type": "BatchNormalization", "name": "bn"},
        {"type": "Add", "name": "sum", "inputs": ["bn", "c0"]},
        {"type": "Conv2D", "name": "c2", "filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "tanh"},
        {"type": "MaxPool2D", "name": "p", "pool_size": 2},
        {"type": "Flatten", "name": "f"},
        {"type": "Dense", "name": "out", "units": 3, "activation": "softmax"}]}"#;
    let mut model = build(json).unwrap();
    let fused_stages = model.planned_stages();
    let x = uniform(&[4, 8, 8, 2], -1.0, 1.0, 7);
    let run = |model: &Model<f64>| {
        let mut g = Graph::<f64>::new();
        let xv = g.variable(&x);
        let mut rng = seeded_rng(1);
        let y = model.forward_logits(&mut g, xv, &mut ForwardCtx::new(Mode::Train, &mut rng)).unwrap();
        let w = g.constant(uniform(g.value(y).shape(), -1.0, 1.0, 9));
        let wy = g.mul(y, w);
        let s = g.sum(wy);
        let grads = g.backward(s).unwrap();
        let mut out = vec![g.value(y).to_vec(), grads.wrt(xv).unwrap().to_vec()];
        for p in model.parameters().iter().filter(|p| p.trainable) {
            out.push(grads.get(&p.name).unwrap().to_vec());
        }
        out
    };
    let fused = run(&model);
    let infer_fused = model.infer(x.array().view(), true).unwrap().to_vec();
    model.set_fusion(false);
    assert_eq!(model.planned_stages(), 8);
    assert_eq!(fused_stages, 6, "c2 + p + f fused");
    assert_eq!(fused, run(&model));
    assert_eq!(infer_fused, model.infer(x.array().view(), true).unwrap().to_vec());
    let mut g = Graph::<f64>::no_grad();
    let xv = g.input(&x);
    let mut rng = seeded_rng(0);
    let y = model.forward_logits(&mut g, xv, &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap();
    assert_eq!(g.value(y).to_vec(), infer_fused);
}

#[test]
fn an_output_that_also_feeds_a_layer_keeps_both_values() {
    // "probs" is an output and also the input of "more": forward_logits gives its
    // logits as the output while "more" still sees the softmax.
    let model = build(
        r#"{"input_shape": [3], "layers": [
            {"type": "Dense", "units": 4, "name": "probs", "activation": "softmax"},
            {"type": "Dense", "units": 2, "name": "more"}],
            "outputs": ["probs", "more"]}"#,
    )
    .unwrap();
    let x = uniform(&[2, 3], -1.0, 1.0, 3);
    let mut g = Graph::<f64>::no_grad();
    let xv = g.input(&x);
    let mut rng = seeded_rng(0);
    let mut ctx = ForwardCtx::new(Mode::Eval, &mut rng);
    let plain = model.forward_all(&mut g, &[xv], &mut ctx, false).unwrap();
    let logits = model.forward_all(&mut g, &[xv], &mut ctx, true).unwrap();
    assert_eq!(g.value(plain[1]).to_vec(), g.value(logits[1]).to_vec());
    let softmax = g.value(logits[0]).try_softmax(1).unwrap();
    for (a, b) in softmax.to_vec().iter().zip(g.value(plain[0]).to_vec()) {
        assert!((a - b).abs() < 1e-15);
    }
    let _ = LayerSpec::dense(1, Activation::Linear); // the builder API stays available
}

/// Conv2D → BatchNormalization → ReLU → Add(ReLU, Conv2D) with the BatchNormalization
/// and the Add also model outputs (`keep`) or not: the trained graph of the second
/// holds neither the BatchNormalization's output (only the ReLU reads it, and ReLU's
/// rule reads its own output) nor the Add's, and its gradients are the same bits.
fn bn_relu_add(keep: bool) -> (Graph<f64>, Vec<(String, Tensor<f64>)>) {
    let outputs = if keep { r#"["bn", "sum", "out"]"# } else { r#"["out"]"# };
    let json = format!(
        r#"{{"inputs": [{{"name": "x", "shape": [4, 4, 2]}}], "layers": [
            {{"type": "Conv2D", "filters": 3, "kernel_size": 1, "use_bias": false, "name": "conv"}},
            {{"type": "BatchNormalization", "name": "bn"}},
            {{"type": "ReLU", "name": "relu"}},
            {{"type": "Add", "name": "sum", "inputs": ["relu", "conv"]}},
            {{"type": "ReLU", "name": "out"}}],
            "outputs": {outputs}}}"#
    );
    let model = build(&json).unwrap();
    let mut g = Graph::<f64>::new();
    let x = g.input(uniform(&[5, 4, 4, 2], -1.0, 1.0, 3));
    let mut rng = seeded_rng(0);
    let outs = model.forward_all(&mut g, &[x], &mut ForwardCtx::new(Mode::Train, &mut rng), false).unwrap();
    let last = *outs.last().unwrap();
    let sq = g.try_mul(last, last).unwrap();
    let loss = g.try_sum(sq).unwrap();
    let grads = g.backward(loss).unwrap().into_vec();
    (g, grads)
}

#[test]
fn training_graphs_release_values_no_backward_rule_reads() {
    let (kept, kept_grads) = bn_relu_add(true);
    let (released, grads) = bn_relu_add(false);
    // Two [5, 4, 4, 3] values of f64 fewer: the BatchNormalization's and the Add's.
    assert_eq!(kept.live_bytes() - released.live_bytes(), 2 * 5 * 4 * 4 * 3 * 8);
    assert_eq!(kept_grads.len(), grads.len());
    for ((name_a, a), (name_b, b)) in kept_grads.iter().zip(&grads) {
        assert_eq!(name_a, name_b);
        assert_eq!(a.to_vec(), b.to_vec(), "{name_a}");
    }
    assert!(grads.iter().any(|(_, g)| g.to_vec().iter().any(|&v| v != 0.0)));
}
