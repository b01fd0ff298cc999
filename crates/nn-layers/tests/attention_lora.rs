//! LoRA adapters on MultiHeadAttention's four projections: fresh adapters (B = 0)
//! leave the output bit for bit unchanged; known A, B give the base layer with the
//! merged kernels `W + (α/r)·A·B` (computed here by loops); an f64 gradcheck of every
//! input and parameter, adapters included; parameter names, shapes, counts and
//! frozen state; `Model::with_lora` and `merge_lora` on a graph model with attention.

mod common;

use common::{random_params, to_autograd, uniform, TOL};
use nn_autograd::{gradcheck, Graph, Var};
use nn_layers::{
    Activation, ForwardCtx, Layer, LayerError, LayerSpec, LoraConfig, Mode, Model, ModelSpec, MultiHeadAttentionConfig,
    Tensor,
};
use nn_tensor::random::seeded_rng;
use serde_json::json;

/// Query `[3, 4]`, value `[5, 3]`, key `[5, 2]`: every projection has its own
/// input width. Heads 2, key_dim 3, value_dim 2, output 4.
const SHAPES: [&[usize]; 3] = [&[3, 4], &[5, 3], &[5, 2]];

fn config(lora: Option<LoraConfig>) -> MultiHeadAttentionConfig {
    MultiHeadAttentionConfig::new(2, 3).with_value_dim(2).with_causal_mask(true).with_lora(lora)
}

fn build(lora: Option<LoraConfig>) -> Box<dyn Layer<f64>> {
    LayerSpec::MultiHeadAttention(config(lora)).build_node::<f64>(0, Some("mha"), &SHAPES).unwrap()
}

fn inputs(seed: u64) -> Vec<Tensor<f64>> {
    SHAPES.iter().enumerate().map(|(i, s)| uniform(&[2, s[0], s[1]], -1.0, 1.0, seed + i as u64)).collect()
}

/// Runs a built layer on `xs` with parameters `params` (no-grad graph, inference).
fn run(layer: &dyn Layer<f64>, xs: &[Tensor<f64>], params: &[Tensor<f64>]) -> Vec<f64> {
    let mut g = Graph::<f64>::no_grad();
    let vars: Vec<Var> = xs.iter().map(|x| g.input(x.clone())).collect();
    let pv: Vec<Var> = params.iter().map(|p| g.constant(p)).collect();
    let mut rng = seeded_rng(0);
    let mut ctx = ForwardCtx::new(Mode::Eval, &mut rng);
    let y = layer.forward_inputs(&mut g, &vars, &pv, &mut ctx).unwrap();
    g.value(y).to_vec()
}

/// `[m, n]` row-major product of `a: [m, k]` and `b: [k, n]`.
fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    out
}

#[test]
fn adapter_shapes_names_and_frozen_state() {
    let r = 3;
    let layer = build(Some(LoraConfig::new(r, 6.0)));
    let specs = layer.param_specs();
    let names: Vec<String> = (0..specs.len()).map(|k| layer.param_name(k)).collect();
    assert_eq!(
        names,
        [
            "query.kernel",
            "query.bias",
            "key.kernel",
            "key.bias",
            "value.kernel",
            "value.bias",
            "attention_output.kernel",
            "attention_output.bias",
            "query.lora_a",
            "query.lora_b",
            "key.lora_a",
            "key.lora_b",
            "value.lora_a",
            "value.lora_b",
            "attention_output.lora_a",
            "attention_output.lora_b",
        ]
    );
    let shapes: Vec<&[usize]> = specs.iter().map(|p| p.shape.as_slice()).collect();
    assert_eq!(&shapes[8..], [&[4, r][..], &[r, 6], &[2, r], &[r, 6], &[3, r], &[r, 4], &[4, r], &[r, 4]]);
    assert!(specs[..8].iter().all(|p| !p.trainable));
    assert!(specs[8..].iter().all(|p| p.trainable));
    // Without biases the adapters follow the four kernels.
    let no_bias = LayerSpec::MultiHeadAttention(config(Some(LoraConfig::new(r, 6.0))).with_bias(false))
        .build_node::<f64>(0, Some("mha"), &SHAPES)
        .unwrap();
    assert_eq!(no_bias.param_name(4), "query.lora_a");
    assert_eq!(no_bias.param_name(11), "attention_output.lora_b");
    assert_eq!(no_bias.param_specs()[4].shape, [4, r]);
}

#[test]
fn zero_b_gives_the_base_output_bit_for_bit() {
    let base = build(None);
    let lora = build(Some(LoraConfig::new(2, 4.0)));
    let base_params = random_params(base.as_ref(), 7);
    let mut params = base_params.clone();
    for (k, spec) in lora.param_specs().iter().enumerate().skip(8) {
        params.push(if k % 2 == 0 {
            uniform(&spec.shape, -1.0, 1.0, 50 + k as u64)
        } else {
            Tensor::zeros(&spec.shape)
        });
    }
    let xs = inputs(3);
    let want = run(base.as_ref(), &xs, &base_params);
    let got = run(lora.as_ref(), &xs, &params);
    assert_eq!(got, want);
}

#[test]
fn known_adapters_equal_the_merged_kernels() {
    let (r, alpha) = (2, 3.0);
    let s = alpha / r as f64;
    let base = build(None);
    let lora = build(Some(LoraConfig::new(r, alpha)));
    let params = random_params(lora.as_ref(), 11);
    // Every B non-zero (random_params draws from [-1, 1]).
    assert!(params[9].to_vec().iter().any(|&v| v != 0.0));
    let mut merged: Vec<Tensor<f64>> = params[..8].to_vec();
    // [in, out] of each projection: query 4→6, key 2→6, value 3→4, output 4→4.
    for (p, (fan_in, fan_out)) in [(4usize, 6usize), (2, 6), (3, 4), (4, 4)].into_iter().enumerate() {
        let ab = matmul(&params[8 + 2 * p].to_vec(), &params[9 + 2 * p].to_vec(), fan_in, r, fan_out);
        let w = merged[2 * p].to_vec();
        assert_eq!(w.len(), ab.len());
        let sum: Vec<f64> = w.iter().zip(&ab).map(|(w, d)| w + s * d).collect();
        merged[2 * p] = Tensor::from_vec(merged[2 * p].shape(), sum);
    }
    let xs = inputs(21);
    let want = run(base.as_ref(), &xs, &merged);
    let got = run(lora.as_ref(), &xs, &params);
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 1e-12, "element {i}: {a} vs {b}");
    }
    // Not vacuous: the adapters change the output.
    let plain = run(base.as_ref(), &xs, &params[..8]);
    assert!(plain.iter().zip(&got).any(|(a, b)| (a - b).abs() > 1e-3));
}

#[test]
fn lora_attention_gradcheck_f64() {
    for (bias, seed) in [(true, 1u64), (false, 2)] {
        let spec = LayerSpec::MultiHeadAttention(config(Some(LoraConfig::new(2, 5.0))).with_bias(bias));
        let layer = spec.build_node::<f64>(0, Some("mha"), &SHAPES).unwrap();
        let xs = inputs(seed);
        let mut all = xs.clone();
        all.extend(random_params(layer.as_ref(), seed));
        let report = gradcheck(&all, |g: &mut Graph<f64>, v: &[Var]| {
            let mut rng = seeded_rng(seed);
            let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
            layer.forward_inputs(g, &v[..3], &v[3..], &mut ctx).map_err(to_autograd)
        })
        .unwrap();
        assert!(report.passes(TOL), "{report}");
    }
}

#[test]
fn lora_settings_are_checked() {
    for lora in [LoraConfig::new(0, 1.0), LoraConfig::new(2, 0.0), LoraConfig::new(2, f64::NAN)] {
        let err = LayerSpec::MultiHeadAttention(config(Some(lora))).build_node::<f64>(0, Some("mha"), &SHAPES);
        assert!(matches!(err, Err(LayerError::InvalidConfig { .. })), "{lora:?}");
    }
}

/// Tokens-free graph model: `x [3, 4]` → self-attention → Dense(2, tanh).
fn model_spec() -> ModelSpec {
    ModelSpec::from_json(
        &json!({"inputs": [{"name": "x", "shape": [3, 4]}],
                "layers": [{"type": "MultiHeadAttention", "name": "mha", "num_heads": 2, "key_dim": 3, "inputs": ["x"]},
                           {"type": "Dense", "name": "head", "units": 2, "activation": "tanh", "inputs": ["mha"]}]})
        .to_string(),
    )
    .unwrap()
}

#[test]
fn old_json_loads_without_adapters_and_lora_round_trips() {
    let spec = model_spec();
    let LayerSpec::MultiHeadAttention(c) = &spec.layers[0].layer else { panic!("not attention") };
    assert_eq!(c.lora, None);
    assert!(!spec.to_json().contains("lora"));
    let base = Model::<f64>::new(spec, 0).unwrap();
    let lora = base.with_lora(|i| i == 0, LoraConfig::new(2, 4.0), 1).unwrap();
    let json = lora.spec().to_json();
    assert!(json.contains("\"lora\""), "{json}");
    assert_eq!(&ModelSpec::from_json(&json).unwrap(), lora.spec());
}

#[test]
fn with_lora_trains_only_the_four_adapters() {
    let r = 3;
    let base = Model::<f64>::new(model_spec(), 0).unwrap();
    let lora = base.with_lora(|i| i == 0, LoraConfig::new(r, 6.0), 1).unwrap();
    // Adapters: query, key, value 4·r + r·6 each; output 6·r + r·4.
    let adapters = 3 * (4 * r + r * 6) + (6 * r + r * 4);
    // Frozen: 3·(4·6 + 6) + 6·4 + 4; the Dense head 4·2 + 2 still trains.
    let frozen = 3 * (4 * 6 + 6) + 6 * 4 + 4;
    assert_eq!(lora.num_parameters(), (adapters + 4 * 2 + 2, frozen));
    let trainable: Vec<&str> = lora.parameters().iter().filter(|p| p.trainable).map(|p| p.name.as_str()).collect();
    assert_eq!(
        trainable,
        [
            "mha.query.lora_a",
            "mha.query.lora_b",
            "mha.key.lora_a",
            "mha.key.lora_b",
            "mha.value.lora_a",
            "mha.value.lora_b",
            "mha.attention_output.lora_a",
            "mha.attention_output.lora_b",
            "head.kernel",
            "head.bias"
        ]
    );
    // Fresh adapters: B = 0, the predictions are the base's bit for bit.
    for part in ["query", "key", "value", "attention_output"] {
        assert!(lora.parameter(&format!("mha.{part}.lora_b")).unwrap().value.to_vec().iter().all(|&v| v == 0.0));
        assert_eq!(
            lora.parameter(&format!("mha.{part}.kernel")).unwrap().value,
            base.parameter(&format!("mha.{part}.kernel")).unwrap().value
        );
    }
    let x = uniform(&[5, 3, 4], -1.0, 1.0, 8);
    assert_eq!(lora.predict(&x).unwrap().to_vec(), base.predict(&x).unwrap().to_vec());
}

fn cast<T: nn_tensor::Element>(t: &Tensor<f64>) -> Tensor<T> {
    Tensor::from(t.array().mapv(T::of_f64))
}

fn max_abs_diff<T: nn_tensor::Element>(a: &Tensor<T>, b: &Tensor<T>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.array().iter().zip(b.array().iter()).map(|(x, y)| (x.as_f64() - y.as_f64()).abs()).fold(0.0, f64::max)
}

/// `merge_lora` folds every attention adapter (and the Dense head's) into its
/// kernel: same spec as the base, same predictions as the adapted model to 1e-5 in
/// f32 and 1e-12 in f64.
#[test]
fn merged_attention_model_predicts_the_same() {
    fn check<T: nn_tensor::Element>(tol: f64) {
        let base = Model::<T>::new(model_spec(), 3).unwrap();
        let r = 2;
        let mut lora = base.with_lora(|_| true, LoraConfig::new(r, 4.0), 5).unwrap();
        for (k, (name, out)) in
            [("mha.query", 6usize), ("mha.key", 6), ("mha.value", 6), ("mha.attention_output", 4), ("head", 2)]
                .into_iter()
                .enumerate()
        {
            let b = uniform(&[r, out], -0.5, 0.5, 40 + k as u64);
            lora.set_parameter(&format!("{name}.lora_b"), cast::<T>(&b)).unwrap();
        }
        let merged = lora.merge_lora().unwrap();
        assert_eq!(merged.spec(), base.spec());
        assert_eq!(merged.num_parameters(), base.num_parameters());
        let x = cast::<T>(&uniform(&[6, 3, 4], -2.0, 2.0, 9));
        let adapted = lora.predict(&x).unwrap();
        let diff = max_abs_diff(&adapted, &merged.predict(&x).unwrap());
        assert!(diff <= tol, "max |Δ| = {diff}");
        assert!(max_abs_diff(&adapted, &base.predict(&x).unwrap()) > 1e-3, "the adapters change the output");
    }
    check::<f32>(1e-5);
    check::<f64>(1e-12);
}

#[test]
fn dense_activation_is_unchanged_by_attention_adapters() {
    // The head keeps its own settings when only the attention layer is adapted.
    let base = Model::<f64>::new(model_spec(), 0).unwrap();
    let lora = base.with_lora(|i| i == 0, LoraConfig::new(1, 1.0), 1).unwrap();
    let LayerSpec::Dense(c) = &lora.spec().layers[1].layer else { panic!("not Dense") };
    assert_eq!((c.activation, c.lora), (Activation::Tanh, None));
}
