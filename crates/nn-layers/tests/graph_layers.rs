//! The layers of graph models: the merges (Add, Subtract, Multiply, Average,
//! Maximum, Concatenate), LayerNormalization, ZeroPadding2D, GlobalMaxPooling2D and
//! Identity. Hand-computed forward values, f64 gradchecks of every layer (inputs and
//! parameters) and of whole version-2 graphs (fan-out, a tensor merged with itself, a
//! residual block with a stride-2 `same` downsampling branch), build errors, JSON
//! round trips, and the `ceil(in / 2)` rule of stride-2 `same` Conv2D in the fused
//! Conv2D → MaxPool2D path.

mod common;

use common::{distinct, random_params, to_autograd, uniform, TOL};
use nn_autograd::{gradcheck, gradcheck_with, GradcheckOptions, GradcheckReport, Graph, Var};
use nn_layers::{
    Activation, ConcatenateConfig, Conv2DConfig, ForwardCtx, LayerError, LayerNormConfig, LayerSpec, Mode, Model,
    ModelSpec, Padding2D, PaddingMode, Pool2DConfig, Tensor, ZeroPadding2DConfig,
};
use nn_tensor::random::seeded_rng;
use serde_json::json;

/// Runs `model` on `xs` (one batch per model input) on a no-grad graph, in evaluation.
fn run_model(model: &Model<f64>, xs: &[Tensor<f64>]) -> Vec<Tensor<f64>> {
    let mut g = Graph::<f64>::no_grad();
    let vars: Vec<Var> = xs.iter().map(|x| g.input(x.clone())).collect();
    let mut rng = seeded_rng(0);
    let ys = model.forward_all(&mut g, &vars, &mut ForwardCtx::new(Mode::Eval, &mut rng), false).unwrap();
    ys.into_iter().map(|y| g.value(y).clone()).collect()
}

fn model(json: &str) -> Model<f64> {
    Model::<f64>::new(ModelSpec::from_json(json).unwrap(), 0).unwrap()
}

fn t(shape: &[usize], values: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(shape, values.to_vec())
}

/// A model of one layer of `kind` (plus settings `extra`) over two inputs `a`, `b`.
fn two_input_model(layer: serde_json::Value, a: &[usize], b: &[usize]) -> Result<Model<f64>, LayerError> {
    let mut layer = layer;
    layer["name"] = json!("m");
    layer["inputs"] = json!(["a", "b"]);
    let spec = json!({
        "inputs": [{"name": "a", "shape": a}, {"name": "b", "shape": b}],
        "layers": [layer],
    });
    Model::<f64>::new(ModelSpec::from_json(&spec.to_string())?, 0)
}

// ------------------------------------------------------------------ forward values

#[test]
fn merge_values_by_hand() {
    let a = t(&[2, 3], &[1., -2., 3., 0.5, 0., -1.]);
    let b = t(&[2, 3], &[4., 5., -6., 0.5, -2., 2.]);
    let cases = [
        ("Add", vec![5., 3., -3., 1., -2., 1.]),
        ("Subtract", vec![-3., -7., 9., 0., 2., -3.]),
        ("Multiply", vec![4., -10., -18., 0.25, 0., -2.]),
        ("Average", vec![2.5, 1.5, -1.5, 0.5, -1., 0.5]),
        ("Maximum", vec![4., 5., 3., 0.5, 0., 2.]),
    ];
    for (kind, want) in cases {
        let m = two_input_model(json!({"type": kind}), &[3], &[3]).unwrap();
        assert_eq!(m.output_shape(), [3]);
        let y = &run_model(&m, &[a.clone(), b.clone()])[0];
        assert_eq!(y.shape(), [2, 3], "{kind}");
        assert_eq!(y.to_vec(), want, "{kind}");
    }
    // Three inputs: (1 + 4 + 7) / 3, max, product.
    let three = |kind: &str| {
        model(&format!(
            r#"{{"inputs": [{{"name": "a", "shape": [1]}}, {{"name": "b", "shape": [1]}}, {{"name": "c", "shape": [1]}}],
                "layers": [{{"type": "{kind}", "inputs": ["a", "b", "c"]}}]}}"#
        ))
    };
    let xs = [t(&[1, 1], &[1.]), t(&[1, 1], &[4.]), t(&[1, 1], &[7.])];
    assert_eq!(run_model(&three("Average"), &xs)[0].to_vec(), [4.]);
    assert_eq!(run_model(&three("Maximum"), &xs)[0].to_vec(), [7.]);
    assert_eq!(run_model(&three("Multiply"), &xs)[0].to_vec(), [28.]);
    assert_eq!(run_model(&three("Add"), &xs)[0].to_vec(), [12.]);
}

#[test]
fn concatenate_values_by_hand() {
    // [1, 2, 2] ++ [1, 2, 1] along the last axis (default −1, also 2).
    let a = t(&[1, 2, 2], &[1., 2., 3., 4.]);
    let b = t(&[1, 2, 1], &[5., 6.]);
    for axis in [json!(null), json!(-1), json!(2)] {
        let mut layer = json!({"type": "Concatenate"});
        if !axis.is_null() {
            layer["axis"] = axis.clone();
        }
        let m = two_input_model(layer, &[2, 2], &[2, 1]).unwrap();
        assert_eq!(m.output_shape(), [2, 3], "axis {axis}");
        let y = &run_model(&m, &[a.clone(), b.clone()])[0];
        assert_eq!(y.shape(), [1, 2, 3]);
        assert_eq!(y.to_vec(), [1., 2., 5., 3., 4., 6.]);
    }
    // Along axis 1 (= −2 here): the rows of a, then those of c.
    let c = t(&[1, 1, 2], &[7., 8.]);
    for axis in [1, -2] {
        let m = two_input_model(json!({"type": "Concatenate", "axis": axis}), &[2, 2], &[1, 2]).unwrap();
        assert_eq!(m.output_shape(), [3, 2]);
        assert_eq!(run_model(&m, &[a.clone(), c.clone()])[0].to_vec(), [1., 2., 3., 4., 7., 8.]);
    }
}

#[test]
fn single_input_layers_by_hand() {
    // LayerNormalization, ε = 0.5: row [1, 2, 3, 6] has μ = 3, σ² = 3.5, so
    // 1/√(σ² + ε) = 0.5 and x̂ = [−1, −0.5, 0, 1.5]; with the initial γ = 1, β = 0,
    // y = x̂. A constant row normalises to 0.
    let m = model(r#"{"input_shape": [4], "layers": [{"type": "LayerNormalization", "epsilon": 0.5}]}"#);
    assert_eq!(m.parameters().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["layers.0.gamma", "layers.0.beta"]);
    let y = &run_model(&m, &[t(&[2, 4], &[1., 2., 3., 6., 4., 4., 4., 4.])])[0];
    assert_eq!(y.to_vec(), [-1., -0.5, 0., 1.5, 0., 0., 0., 0.]);

    // ZeroPadding2D [[1, 0], [0, 2]] on a 2×1 image: one row above, two columns right.
    let m = model(r#"{"input_shape": [2, 1, 1], "layers": [{"type": "ZeroPadding2D", "padding": [[1, 0], [0, 2]]}]}"#);
    assert_eq!(m.output_shape(), [3, 3, 1]);
    let y = &run_model(&m, &[t(&[1, 2, 1, 1], &[5., 7.])])[0];
    assert_eq!(y.shape(), [1, 3, 3, 1]);
    assert_eq!(y.to_vec(), [0., 0., 0., 5., 0., 0., 7., 0., 0.]);
    // The default (Keras): one zero on every side.
    let m = model(r#"{"input_shape": [1, 1, 1], "layers": [{"type": "ZeroPadding2D"}]}"#);
    assert_eq!(run_model(&m, &[t(&[1, 1, 1, 1], &[3.])])[0].to_vec(), [0., 0., 0., 0., 3., 0., 0., 0., 0.]);

    // GlobalMaxPooling2D: per channel, the maximum over the 2×2 positions.
    let m = model(r#"{"input_shape": [2, 2, 2], "layers": [{"type": "GlobalMaxPooling2D"}]}"#);
    let x = t(&[1, 2, 2, 2], &[1., -1., 4., -3., 3., 0., 2., -2.]);
    assert_eq!(run_model(&m, std::slice::from_ref(&x))[0].to_vec(), [4., 0.]);

    // Identity.
    let m = model(r#"{"input_shape": [2, 2, 2], "layers": [{"type": "Identity"}]}"#);
    assert_eq!(run_model(&m, std::slice::from_ref(&x))[0], x);
    assert_eq!(m.infer(x.view(), false).unwrap(), x);
}

// ------------------------------------------------------------------ gradchecks

/// Gradchecks `spec` built for the per-sample shapes of `xs` (batch first), with
/// respect to every input and every parameter (random values).
fn check_node(spec: LayerSpec, xs: &[Tensor<f64>], seed: u64) -> GradcheckReport {
    let shapes: Vec<&[usize]> = xs.iter().map(|x| &x.shape()[1..]).collect();
    let layer = spec.build_node::<f64>(0, Some("layer"), &shapes).unwrap();
    let n = xs.len();
    let mut inputs = xs.to_vec();
    inputs.extend(random_params(layer.as_ref(), seed));
    gradcheck(&inputs, |g: &mut Graph<f64>, v: &[Var]| {
        let mut rng = seeded_rng(seed);
        let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
        layer.forward_inputs(g, &v[..n], &v[n..], &mut ctx).map_err(to_autograd)
    })
    .unwrap()
}

/// `n` tensors of `shape` whose elements are all distinct, at least 0.05 apart
/// (no ties for Maximum).
fn distinct_inputs(n: usize, shape: &[usize], seed: u64) -> Vec<Tensor<f64>> {
    let len: usize = shape.iter().product();
    let all = distinct(&[n * len], seed).to_vec();
    all.chunks(len).map(|c| Tensor::from_vec(shape, c.to_vec())).collect()
}

#[test]
fn every_merge_gradchecks() {
    for seed in 0..3 {
        for n in [2, 3] {
            let xs = distinct_inputs(n, &[2, 2, 3], seed);
            for spec in [LayerSpec::Add, LayerSpec::Multiply, LayerSpec::Average, LayerSpec::Maximum] {
                let report = check_node(spec, &xs, seed);
                assert!(report.passes(TOL), "{} of {n}: {report}", spec.kind());
            }
        }
        let xs = distinct_inputs(2, &[3, 2], seed);
        let report = check_node(LayerSpec::Subtract, &xs, seed);
        assert!(report.passes(TOL), "Subtract: {report}");
        // Concatenate along each per-sample axis of inputs of different extents.
        for (axis, b_shape) in [(1, [2, 1, 3, 2]), (2, [2, 2, 1, 2]), (-1, [2, 2, 3, 3])] {
            let xs = [uniform(&[2, 2, 3, 2], -1.0, 1.0, seed), uniform(&b_shape, -1.0, 1.0, seed + 7)];
            let report = check_node(LayerSpec::Concatenate(ConcatenateConfig { axis }), &xs, seed);
            assert!(report.passes(TOL), "Concatenate axis {axis}: {report}");
        }
    }
}

#[test]
fn single_input_layers_gradcheck() {
    for seed in 0..3 {
        for (scale, center) in [(true, true), (false, true), (true, false)] {
            let spec = LayerSpec::LayerNormalization(LayerNormConfig::default().with_scale(scale).with_center(center));
            for shape in [vec![3, 5], vec![2, 2, 3, 4]] {
                let report = check_node(spec, &[uniform(&shape, -2.0, 2.0, seed)], seed);
                assert!(report.passes(TOL), "LayerNormalization {shape:?} γ {scale} β {center}: {report}");
            }
        }
        let pad = LayerSpec::ZeroPadding2D(ZeroPadding2DConfig {
            padding: Padding2D { top: 1, bottom: 2, left: 0, right: 1 },
        });
        let x = uniform(&[2, 3, 2, 2], -1.0, 1.0, seed);
        let report = check_node(pad, std::slice::from_ref(&x), seed);
        assert!(report.passes(TOL), "ZeroPadding2D: {report}");
        let report = check_node(LayerSpec::Identity, &[x], seed);
        assert!(report.passes(TOL), "Identity: {report}");
        // Distinct values: no ties inside a channel.
        let report = check_node(LayerSpec::GlobalMaxPooling2D, &[distinct(&[2, 3, 3, 2], seed)], seed);
        assert!(report.passes(TOL), "GlobalMaxPooling2D: {report}");
    }
}

/// Gradchecks `model` with respect to its (single) input and every parameter,
/// through [`Model::forward_with_parameters`].
fn gradcheck_model(model: &Model<f64>, x: Tensor<f64>, options: GradcheckOptions) -> GradcheckReport {
    let mut inputs = vec![x];
    inputs.extend(model.parameters().iter().map(|p| (*p.value).clone()));
    gradcheck_with(&inputs, options, |g: &mut Graph<f64>, v: &[Var]| {
        let mut rng = seeded_rng(0);
        let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
        Ok(model.forward_with_parameters(g, &v[..1], &v[1..], &mut ctx, false).map_err(to_autograd)?[0])
    })
    .unwrap()
}

/// Replaces every parameter with uniform values in `[-1, 1)` (so β, γ and biases are
/// not at their constant initial values).
fn randomise(model: &mut Model<f64>, seed: u64) {
    for (k, p) in model.parameters_mut().iter_mut().enumerate() {
        p.value = std::sync::Arc::new(uniform(p.shape(), -1.0, 1.0, seed + k as u64));
    }
}

/// One layer's output feeds two consumers, which are merged again: both paths'
/// gradients reach `d` and add up.
#[test]
fn fan_out_gradients_add_up() {
    for merge in ["Multiply", "Concatenate", "Add", "Maximum"] {
        let mut m = model(&format!(
            r#"{{"format_version": 2, "input_shape": [4], "layers": [
                {{"type": "Dense", "name": "d", "units": 3, "activation": "tanh"}},
                {{"type": "Dense", "name": "a", "units": 2, "activation": "sigmoid", "inputs": ["d"]}},
                {{"type": "Dense", "name": "b", "units": 2, "activation": "tanh", "inputs": ["d"]}},
                {{"type": "{merge}", "name": "m", "inputs": ["a", "b"]}},
                {{"type": "LayerNormalization", "name": "ln"}}]}}"#
        ));
        randomise(&mut m, 3);
        let report = gradcheck_model(&m, uniform(&[3, 4], -1.0, 1.0, 5), GradcheckOptions::default());
        assert!(report.passes(TOL), "{merge}: {report}");
    }
}

/// Values and gradients (input first, then every parameter in order) of
/// `Σ w ⊙ model(x)` with fixed weights `w`.
fn values_and_grads(model: &Model<f64>, x: &Tensor<f64>, w_seed: u64) -> Vec<Tensor<f64>> {
    let mut g = Graph::<f64>::new();
    let xv = g.variable(x);
    let mut rng = seeded_rng(1);
    let y = model.forward(&mut g, xv, &mut ForwardCtx::new(Mode::Train, &mut rng)).unwrap();
    let w = g.constant(uniform(g.value(y).shape(), -1.0, 1.0, w_seed));
    let wy = g.mul(y, w);
    let s = g.sum(wy);
    let grads = g.backward(s).unwrap();
    let mut out = vec![g.value(y).clone(), grads.wrt(xv).unwrap().clone()];
    for p in model.parameters() {
        out.push(grads.get(&p.name).unwrap_or_else(|| panic!("no gradient for {}", p.name)).clone());
    }
    out
}

/// `Add(d, d)` is `2·d`, and every gradient is exactly twice that of `d` alone.
#[test]
fn a_tensor_merged_with_itself() {
    let layers = r#"{"type": "Dense", "name": "d", "units": 3, "activation": "tanh"}"#;
    let doubled = model(&format!(
        r#"{{"format_version": 2, "input_shape": [4], "layers": [{layers}, {{"type": "Add", "inputs": ["d", "d"]}}]}}"#
    ));
    let single = model(&format!(r#"{{"format_version": 2, "input_shape": [4], "layers": [{layers}]}}"#));
    let x = uniform(&[2, 4], -1.0, 1.0, 11);
    let two = values_and_grads(&doubled, &x, 4);
    let one = values_and_grads(&single, &x, 4);
    assert_eq!(two.len(), one.len());
    for (k, (a, b)) in two.iter().zip(&one).enumerate() {
        assert_eq!(a.to_vec(), b.map(|v| 2.0 * v).to_vec(), "value/gradient {k} is twice the single path's");
    }
    let report = gradcheck_model(&doubled, x.clone(), GradcheckOptions::default());
    assert!(report.passes(TOL), "{report}");
    // And the product of a tensor with itself: d², gradient 2·d·g.
    let squared = model(&format!(
        r#"{{"format_version": 2, "input_shape": [4], "layers": [{layers}, {{"type": "Multiply", "inputs": ["d", "d"]}}]}}"#
    ));
    let report = gradcheck_model(&squared, x, GradcheckOptions::default());
    assert!(report.passes(TOL), "{report}");
}

/// The residual block of the task: `y = relu(x + conv(conv(x)))` with `same` Conv2D,
/// then a stride-2 `same` downsampling branch beside a 1×1 stride-2 shortcut, on a
/// 5×5 input (so the downsampled size is ceil(5/2) = 3).
const RESIDUAL: &str = r#"{
  "format_version": 2,
  "inputs": [{"name": "x", "shape": [5, 5, 2]}],
  "layers": [
    {"type": "Conv2D", "name": "c1", "filters": 2, "kernel_size": 3, "padding": "same", "activation": "tanh"},
    {"type": "Conv2D", "name": "c2", "filters": 2, "kernel_size": 3, "padding": "same"},
    {"type": "Add", "name": "sum", "inputs": ["x", "c2"]},
    {"type": "ReLU", "name": "r"},
    {"type": "Conv2D", "name": "down", "filters": 3, "kernel_size": 3, "strides": 2, "padding": "same",
     "activation": "tanh", "inputs": ["r"]},
    {"type": "Conv2D", "name": "short", "filters": 3, "kernel_size": 1, "strides": 2, "padding": "same",
     "inputs": ["r"]},
    {"type": "Add", "name": "merge", "inputs": ["down", "short"]},
    {"type": "GlobalAveragePooling2D", "name": "gap"},
    {"type": "Dense", "name": "out", "units": 2}
  ]
}"#;

#[test]
fn residual_block_with_downsampling_gradchecks() {
    let mut m = model(RESIDUAL);
    let shape = |name: &str| m.layers()[m.layer_index(name).unwrap()].output_shape().to_vec();
    assert_eq!(shape("c2"), [5, 5, 2]);
    assert_eq!(shape("down"), [3, 3, 3], "stride 2, same: ceil(5 / 2)");
    assert_eq!(shape("short"), [3, 3, 3]);
    assert_eq!(m.output_shape(), [2]);
    randomise(&mut m, 20);
    // relu has a kink at 0: a step of 1e-5 keeps every pre-activation of these draws
    // on one side (rounding error ≈ 1.5·ε·|L|/h ≈ 3e-11·|L|, far below TOL).
    let options = GradcheckOptions { eps: 1e-5, ..GradcheckOptions::default() };
    let report = gradcheck_model(&m, uniform(&[2, 5, 5, 2], -1.0, 1.0, 21), options);
    assert!(report.passes(TOL), "{report}");
    // The graph-free evaluation path agrees with the graph bit for bit.
    let x = uniform(&[3, 5, 5, 2], -1.0, 1.0, 22);
    assert_eq!(m.infer(x.view(), false).unwrap(), run_model(&m, &[x])[0]);
}

/// Stride-2 `same` Conv2D gives `ceil(in / 2)` (the Keras/TensorFlow rule) for odd and
/// even sizes, alone and folded into the fused Conv2D → MaxPool2D [→ Flatten] stage,
/// whose values and gradients equal the unfused path's bit for bit.
#[test]
fn stride_2_same_conv_is_ceil_half_fused_and_not() {
    for (h, w) in [(5, 5), (6, 7), (7, 8), (9, 4)] {
        let conv = LayerSpec::Conv2D(
            Conv2DConfig::new(2, 3).with_strides(2).with_padding(PaddingMode::Same).with_activation(Activation::Tanh),
        );
        let alone = Model::<f64>::new(ModelSpec::new(&[h, w, 1], vec![conv]), 0).unwrap();
        let want = [h.div_ceil(2), w.div_ceil(2), 2];
        assert_eq!(alone.output_shape(), want, "{h}×{w}");
        let y = &run_model(&alone, &[uniform(&[2, h, w, 1], -1.0, 1.0, 1)])[0];
        assert_eq!(y.shape()[1..], want);
        for pool_pad in [PaddingMode::Valid, PaddingMode::Same] {
            let pool = LayerSpec::MaxPool2D(Pool2DConfig::new(2).with_padding(pool_pad));
            let spec = ModelSpec::new(
                &[h, w, 1],
                vec![conv, pool, LayerSpec::Flatten, LayerSpec::dense(3, Activation::Linear)],
            );
            let mut m = Model::<f64>::new(spec, 7).unwrap();
            assert_eq!(m.layers()[0].output_shape(), want);
            assert_eq!(m.planned_stages(), 2, "Conv2D + MaxPool2D + Flatten fused");
            let x = uniform(&[3, h, w, 1], -1.0, 1.0, 8);
            m.set_fusion(true);
            let fused = values_and_grads(&m, &x, 9);
            m.set_fusion(false);
            assert_eq!(m.planned_stages(), 4);
            let unfused = values_and_grads(&m, &x, 9);
            for (k, (a, b)) in fused.iter().zip(&unfused).enumerate() {
                assert_eq!(a.shape(), b.shape());
                assert_eq!(a.to_vec(), b.to_vec(), "{h}×{w} {pool_pad:?}: value/gradient {k} differs");
            }
            m.set_fusion(true);
            assert_eq!(m.infer(x.view(), false).unwrap().to_vec(), fused[0].to_vec());
        }
    }
}

// ------------------------------------------------------------------ build errors

#[test]
fn merge_build_errors_name_the_layer_and_shapes() {
    let e = two_input_model(json!({"type": "Add"}), &[3, 2], &[3, 4]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, LayerError::BuildShape { .. }), "{msg}");
    assert!(msg.contains("layer \"m\" (Add)") && msg.contains("[3, 2]") && msg.contains("[3, 4]"), "{msg}");
    for kind in ["Subtract", "Multiply", "Average", "Maximum"] {
        let e = two_input_model(json!({"type": kind}), &[2], &[3]).unwrap_err();
        assert!(matches!(e, LayerError::BuildShape { .. }), "{kind}: {e}");
    }
    // Subtract takes exactly two inputs.
    let three = r#"{"inputs": [{"name": "a", "shape": [2]}, {"name": "b", "shape": [2]}, {"name": "c", "shape": [2]}],
        "layers": [{"type": "Subtract", "name": "s", "inputs": ["a", "b", "c"]}]}"#;
    let e = Model::<f64>::new(ModelSpec::from_json(three).unwrap(), 0).unwrap_err();
    assert!(matches!(e, LayerError::InvalidConfig { .. }), "{e}");
    assert!(e.to_string().contains("layer \"s\" (Subtract): takes exactly 2 inputs, got 3"), "{e}");
    // A merge in a chain (one input) is refused.
    let chain = ModelSpec::new(&[2], vec![LayerSpec::Add]);
    let e = Model::<f64>::new(chain, 0).unwrap_err();
    assert!(e.to_string().contains("at least 2 inputs, got 1"), "{e}");
}

#[test]
fn concatenate_build_errors() {
    let concat = |axis: i64, a: &[usize], b: &[usize]| {
        two_input_model(json!({"type": "Concatenate", "axis": axis}), a, b).map(|_| ())
    };
    let e = concat(0, &[2, 3], &[2, 3]).unwrap_err();
    assert!(matches!(e, LayerError::InvalidConfig { .. }) && e.to_string().contains("batch axis"), "{e}");
    for axis in [3, -3, 7] {
        let e = concat(axis, &[2, 3], &[2, 3]).unwrap_err();
        assert!(matches!(e, LayerError::InvalidConfig { .. }), "{e}");
        assert!(e.to_string().contains(&format!("axis {axis} is out of range")), "{e}");
    }
    // Other axes must agree; the message names both shapes.
    let e = concat(-1, &[2, 3], &[4, 3]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, LayerError::BuildShape { .. }), "{msg}");
    assert!(msg.contains("[2, 3]") && msg.contains("[4, 3]") && msg.contains("(Concatenate)"), "{msg}");
    // Different ranks.
    assert!(matches!(concat(1, &[2, 3], &[2]).unwrap_err(), LayerError::BuildShape { .. }));
    assert!(concat(1, &[2, 3], &[4, 3]).is_ok());
    assert!(concat(-2, &[2, 3], &[4, 3]).is_ok());
}

// ------------------------------------------------------------------ JSON

#[test]
fn every_new_config_round_trips_through_json() {
    let specs = [
        (LayerSpec::Add, json!({"type": "Add"})),
        (LayerSpec::Subtract, json!({"type": "Subtract"})),
        (LayerSpec::Multiply, json!({"type": "Multiply"})),
        (LayerSpec::Average, json!({"type": "Average"})),
        (LayerSpec::Maximum, json!({"type": "Maximum"})),
        (LayerSpec::Concatenate(ConcatenateConfig::default()), json!({"type": "Concatenate", "axis": -1})),
        (LayerSpec::Concatenate(ConcatenateConfig { axis: 2 }), json!({"type": "Concatenate", "axis": 2})),
        (
            LayerSpec::LayerNormalization(LayerNormConfig::default()),
            json!({"type": "LayerNormalization", "epsilon": 1e-3, "center": true, "scale": true,
                   "beta_initializer": "zeros", "gamma_initializer": "ones"}),
        ),
        (
            LayerSpec::ZeroPadding2D(ZeroPadding2DConfig {
                padding: Padding2D { top: 1, bottom: 2, left: 3, right: 4 },
            }),
            json!({"type": "ZeroPadding2D", "padding": [[1, 2], [3, 4]]}),
        ),
        (LayerSpec::GlobalMaxPooling2D, json!({"type": "GlobalMaxPooling2D"})),
        (LayerSpec::Identity, json!({"type": "Identity"})),
    ];
    for (spec, want) in specs {
        let value = serde_json::to_value(spec).unwrap();
        assert_eq!(value, want, "{}", spec.kind());
        assert_eq!(value["type"], spec.kind());
        assert_eq!(serde_json::from_value::<LayerSpec>(value).unwrap(), spec);
    }
    // Keras's defaults when keys are left out, and Keras's forms of padding.
    let read = |v: serde_json::Value| serde_json::from_value::<LayerSpec>(v).unwrap();
    assert_eq!(read(json!({"type": "Concatenate"})), LayerSpec::Concatenate(ConcatenateConfig { axis: -1 }));
    assert_eq!(read(json!({"type": "LayerNormalization"})), LayerSpec::LayerNormalization(LayerNormConfig::default()));
    let pad = |p: Padding2D| LayerSpec::ZeroPadding2D(ZeroPadding2DConfig { padding: p });
    assert_eq!(read(json!({"type": "ZeroPadding2D"})), pad(Padding2D::uniform(1)));
    assert_eq!(read(json!({"type": "ZeroPadding2D", "padding": 2})), pad(Padding2D::uniform(2)));
    assert_eq!(read(json!({"type": "ZeroPadding2D", "padding": [1, 2]})), pad(Padding2D::symmetric(1, 2)));
    // Unknown keys are errors, for parameterless layers too.
    for bad in [
        json!({"type": "Add", "axis": 1}),
        json!({"type": "Identity", "units": 1}),
        json!({"type": "GlobalMaxPooling2D", "keepdims": true}),
        json!({"type": "Concatenate", "axis": -1, "mode": "x"}),
        json!({"type": "LayerNormalization", "momentum": 0.9}),
        json!({"type": "ZeroPadding2D", "padding": [1, 2, 3]}),
    ] {
        assert!(serde_json::from_value::<LayerSpec>(bad.clone()).is_err(), "{bad}");
    }

    // A whole version-2 graph with every new layer reads, writes and reads back equal,
    // and builds.
    let text = r#"{"format_version": 2, "inputs": [{"name": "x", "shape": [4, 4, 2]}], "layers": [
        {"type": "ZeroPadding2D", "name": "p", "padding": [[1, 0], [0, 1]]},
        {"type": "Identity", "name": "i", "inputs": ["x"]},
        {"type": "ZeroPadding2D", "name": "p2", "padding": [[0, 1], [1, 0]]},
        {"type": "Add", "name": "add", "inputs": ["p", "p2"]},
        {"type": "Subtract", "name": "sub", "inputs": ["p", "p2"]},
        {"type": "Multiply", "name": "mul", "inputs": ["add", "sub"]},
        {"type": "Average", "name": "avg", "inputs": ["add", "sub", "mul"]},
        {"type": "Maximum", "name": "max", "inputs": ["avg", "p"]},
        {"type": "Concatenate", "name": "cat", "axis": -1, "inputs": ["max", "add"]},
        {"type": "LayerNormalization", "name": "ln", "epsilon": 1e-5},
        {"type": "GlobalMaxPooling2D", "name": "gmp"}]}"#;
    let spec = ModelSpec::from_json(text).unwrap();
    let again = ModelSpec::from_json(&spec.to_json()).unwrap();
    assert_eq!(again, spec);
    let m = Model::<f64>::new(spec, 0).unwrap();
    assert_eq!(m.layers()[m.layer_index("cat").unwrap()].output_shape(), [5, 5, 4]);
    assert_eq!(m.output_shape(), [4]);
    assert_eq!(m.parameters().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["ln.gamma", "ln.beta"]);
    let y = &run_model(&m, &[uniform(&[2, 4, 4, 2], -1.0, 1.0, 3)])[0];
    assert_eq!(y.shape(), [2, 4]);
}
