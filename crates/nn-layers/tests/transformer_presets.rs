//! The Transformer presets: `ModelSpec::gpt` and `ModelSpec::transformer_classifier`
//! build, their parameter counts equal the formulas derived by hand, the GPT's output
//! at position t ignores later tokens, the classifier ignores padding and survives an
//! all-padding input, a whole model gradchecks in f64, and a saved GPT loads back to
//! bit-identical outputs.

use nn_autograd::Graph;
use nn_layers::{ForwardCtx, LayerError, Mode, Model, ModelSpec, NodeSpec, Tensor, TransformerBlockConfig};
use nn_tensor::random::seeded_rng;

/// Runs `model` on token ids `ids: [batch, context]` in evaluation.
fn run<T: nn_tensor::Element>(model: &Model<T>, ids: &Tensor<T>) -> Tensor<T> {
    let mut g = Graph::<T>::no_grad();
    let x = g.input(ids.clone());
    let mut rng = seeded_rng(0);
    let y = model.forward(&mut g, x, &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap();
    g.value(y).clone()
}

fn ids(shape: &[usize], values: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(shape, values.iter().map(|&v| v as f64).collect())
}

/// Per block: attention 4d² + 4d (query, key, value, output kernels d×d with biases),
/// MLP d·4d + 4d + 4d·d + d, two LayerNormalizations 2·2d.
fn block_params(d: usize) -> usize {
    (4 * d * d + 4 * d) + (d * 4 * d + 4 * d + 4 * d * d + d) + 4 * d
}

#[test]
fn gpt_parameter_count_matches_the_formula() {
    let (v, t, d, h, l) = (50, 16, 32, 4, 3);
    let spec = ModelSpec::gpt(v, t, d, h, l, 0.1).unwrap();
    let model = Model::<f32>::new(spec.clone(), 0).unwrap();
    assert_eq!(model.output_shape(), [t, v]);
    // token table + position table + blocks + final LayerNorm + logits Dense.
    let want = v * d + t * d + l * block_params(d) + 2 * d + (d * v + v);
    assert_eq!(block_params(d), 12 * d * d + 13 * d);
    assert_eq!(model.num_parameters(), (want, 0));
    assert_eq!(spec.shapes().unwrap().num_parameters(), (want, 0));
    let summary = model.summary();
    assert!(summary.contains("MultiHeadAttention") && summary.contains("PositionEmbedding"), "{summary}");
    assert!(ModelSpec::gpt(v, t, 30, 4, 1, 0.0).is_err(), "4 heads do not divide 30");
    assert!(matches!(ModelSpec::gpt(0, t, d, h, l, 0.0), Err(LayerError::Spec { .. })));
}

#[test]
fn classifier_parameter_count_matches_the_formula() {
    let (v, t, d, h, l, c) = (40, 12, 16, 2, 2, 3);
    let model = Model::<f32>::new(ModelSpec::transformer_classifier(v, t, d, h, l, c, 0.0).unwrap(), 0).unwrap();
    assert_eq!(model.output_shape(), [c]);
    let want = v * d + t * d + l * (12 * d * d + 13 * d) + 2 * d + d * c + c;
    assert_eq!(model.num_parameters(), (want, 0));
}

#[test]
fn gpt_position_t_ignores_later_tokens() {
    let model = Model::<f64>::new(ModelSpec::gpt(11, 6, 8, 2, 2, 0.0).unwrap(), 3).unwrap();
    let base_ids = [3, 1, 4, 1, 5, 9];
    let base = run(&model, &ids(&[1, 6], &base_ids));
    let vocab = 11;
    for t in 0..6 {
        let mut changed = base_ids;
        changed[t] = (changed[t] + 2) % vocab;
        let y = run(&model, &ids(&[1, 6], &changed));
        let (a, b) = (base.to_vec(), y.to_vec());
        for p in 0..6 {
            let same = (0..vocab).all(|k| (a[p * vocab + k] - b[p * vocab + k]).abs() <= 1e-12);
            assert_eq!(same, p < t, "changing token {t}: position {p} {}", if same { "unchanged" } else { "changed" });
        }
    }
}

/// `model` with what padded positions hold shifted by 0.75: the padding id's
/// embedding row (id 0) and the position embeddings of `positions` (width `d`).
fn with_padding_rows_shifted(model: &Model<f64>, d: usize, positions: std::ops::Range<usize>) -> Model<f64> {
    let mut changed = model.clone();
    for p in changed.parameters_mut() {
        let rows = match p.name.as_str() {
            "token_embedding.embeddings" => 0..1,
            "position_embedding.embeddings" => positions.clone(),
            _ => continue,
        };
        let mut v = p.value.to_vec();
        for r in rows {
            v[r * d..(r + 1) * d].iter_mut().for_each(|x| *x += 0.75);
        }
        p.value = std::sync::Arc::new(Tensor::from_vec(p.value.shape(), v));
    }
    changed
}

#[test]
fn classifier_ignores_padding_and_survives_all_padding() {
    let model = Model::<f64>::new(ModelSpec::transformer_classifier(9, 5, 8, 2, 1, 3, 0.0).unwrap(), 1).unwrap();
    let y = run(&model, &ids(&[3, 5], &[4, 2, 0, 0, 0, 4, 2, 7, 0, 0, 0, 0, 0, 0, 0]));
    let y = y.to_vec();
    assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
    for row in y.chunks(3) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    assert_ne!(&y[0..3], &y[3..6], "the third token is seen when it is not padding");
    // Padding is invisible: changing what padded positions hold (the padding id's
    // embedding row, the position embeddings of positions 2..5) leaves the output of
    // a sample padded from position 2 on unchanged.
    let changed = with_padding_rows_shifted(&model, 8, 2..5);
    let first = ids(&[1, 5], &[4, 2, 0, 0, 0]);
    let (a, b) = (run(&model, &first).to_vec(), run(&changed, &first).to_vec());
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-12), "{a:?} vs {b:?}");
    let second = ids(&[1, 5], &[4, 2, 7, 0, 0]);
    assert_ne!(run(&model, &second).to_vec(), run(&changed, &second).to_vec());
    // All padding: attention has nothing to attend to and the pooling nothing to
    // average; the head sees zeros, so its output is softmax(bias).
    let head_bias = model.parameters().iter().find(|p| p.name == "head.bias").unwrap().value.to_vec();
    let z: f64 = head_bias.iter().map(|b| b.exp()).sum();
    for (k, b) in head_bias.iter().enumerate() {
        assert!((y[6 + k] - b.exp() / z).abs() < 1e-15);
    }
}

#[test]
fn a_small_transformer_block_model_gradchecks() {
    // Input [4, 8] → one pre-LN block (2 heads, padding mask input) → output; every
    // parameter and the input gradchecked through the whole graph.
    let (mut layers, out) = ModelSpec::transformer_block(
        "b",
        "x",
        Some("mask"),
        &TransformerBlockConfig { d_model: 8, num_heads: 2, dropout: 0.0, causal: true },
    )
    .unwrap();
    layers
        .push(NodeSpec::named("head", nn_layers::LayerSpec::GlobalAveragePooling1D).with_inputs([out, "mask".into()]));
    let spec = ModelSpec::graph(
        vec![
            nn_layers::InputSpec { name: "x".into(), shape: vec![4, 8] },
            nn_layers::InputSpec { name: "mask".into(), shape: vec![4] },
        ],
        layers,
        Vec::new(),
    );
    let model = Model::<f64>::new(spec, 5).unwrap();
    let x = Tensor::random_uniform(&[2, 4, 8], -1.0, 1.0, &mut seeded_rng(1)).unwrap();
    let mask = Tensor::from_vec(&[2, 4], vec![1., 1., 1., 0., 1., 0., 1., 1.]);
    // Model binds its own parameters by name, so the whole graph is checked against
    // central differences of the model run (f64, step 1e-6): the input, and every
    // 7th element of every parameter.
    let eps = 1e-6;
    let base_x = x;
    let loss = |x: &Tensor<f64>, m: &Model<f64>| -> f64 {
        let mut g = Graph::<f64>::no_grad();
        let (xv, mv) = (g.input(x.clone()), g.input(mask.clone()));
        let mut rng = seeded_rng(0);
        let y = m.forward_all(&mut g, &[xv, mv], &mut ForwardCtx::new(Mode::Eval, &mut rng), false).unwrap()[0];
        g.value(y).to_vec().iter().enumerate().map(|(k, v)| v * (1.0 + k as f64 * 0.1)).sum()
    };
    let mut g = Graph::<f64>::new();
    let (xv, mv) = (g.variable(base_x.clone()), g.input(mask.clone()));
    let mut rng = seeded_rng(0);
    let y = model.forward_all(&mut g, &[xv, mv], &mut ForwardCtx::new(Mode::Eval, &mut rng), false).unwrap()[0];
    let n = g.value(y).len();
    let w = Tensor::from_vec(g.value(y).shape(), (0..n).map(|k| 1.0 + k as f64 * 0.1).collect());
    let grads = g.backward_with_seed(y, w).unwrap();
    let dx = grads.wrt(xv).unwrap().to_vec();
    let mut worst = 0.0f64;
    for k in 0..base_x.len() {
        let (mut p, mut m) = (base_x.to_vec(), base_x.to_vec());
        p[k] += eps;
        m[k] -= eps;
        let num = (loss(&Tensor::from_vec(base_x.shape(), p), &model)
            - loss(&Tensor::from_vec(base_x.shape(), m), &model))
            / (2.0 * eps);
        worst = worst.max((num - dx[k]).abs() / num.abs().max(1e-3));
    }
    assert!(worst < 1e-6, "input gradient: worst relative error {worst}");
    for (name, grad) in grads.iter() {
        let p = model.parameters().iter().position(|p| p.name == name).unwrap();
        let value = model.parameters()[p].value.to_vec();
        for k in (0..value.len()).step_by(7) {
            let shifted = |delta: f64| {
                let mut m = model.clone();
                let mut v = value.clone();
                v[k] += delta;
                m.parameters_mut()[p].value = std::sync::Arc::new(Tensor::from_vec(grad.shape(), v));
                loss(&base_x, &m)
            };
            let num = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
            let got = grad.to_vec()[k];
            assert!((num - got).abs() / num.abs().max(1e-3) < 1e-6, "{name}[{k}]: analytic {got}, numeric {num}");
        }
    }
}

#[test]
fn gpt_saves_and_loads_to_bit_identical_outputs() {
    let spec = ModelSpec::gpt(13, 5, 8, 2, 2, 0.1).unwrap();
    assert_eq!(ModelSpec::from_json(&spec.to_json()).unwrap(), spec);
    let model = Model::<f32>::new(spec, 7).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let (loaded, _) = Model::<f32>::load(dir.path()).unwrap();
    assert_eq!(loaded.parameters(), model.parameters());
    let names: Vec<&str> = loaded.parameters().iter().map(|p| p.name.as_str()).take(4).collect();
    assert_eq!(
        names,
        ["token_embedding.embeddings", "position_embedding.embeddings", "block0_ln1.gamma", "block0_ln1.beta"]
    );
    let x = Tensor::<f32>::from_vec(&[2, 5], vec![1., 2., 3., 4., 5., 0., 12., 7., 7., 1.]);
    let (a, b) = (run(&model, &x), run(&loaded, &x));
    assert_eq!(a.shape(), [2, 5, 13]);
    assert!(a.to_vec().iter().zip(b.to_vec()).all(|(p, q)| p.to_bits() == q.to_bits()));
}

/// The classifier with a class token: `d` more parameters, `context − 1` token ids
/// in, padding invisible (the token sits after it, the mask keeps the token), every
/// real token seen even with causal attention (the token is last), a saved model
/// loads back bit-identical, and a GPT of the same `context` lends its whole
/// position table.
#[test]
fn classifier_with_a_class_token() {
    use nn_layers::{LayerSpec, LoadOptions, SequencePooling};
    let (v, t, d, h, l, c) = (9, 5, 8, 2, 1, 3);
    let spec = ModelSpec::transformer_classifier_with(v, t, d, h, l, c, 0.0, SequencePooling::ClassToken).unwrap();
    assert_eq!(spec.inputs[0].shape, [t - 1]);
    let model = Model::<f64>::new(spec.clone(), 1).unwrap();
    let mean = Model::<f64>::new(ModelSpec::transformer_classifier(v, t, d, h, l, c, 0.0).unwrap(), 1).unwrap();
    assert_eq!(model.num_parameters().0, mean.num_parameters().0 + d);
    let names: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).take(3).collect();
    assert_eq!(names, ["token_embedding.embeddings", "class_token.embeddings", "position_embedding.embeddings"]);
    assert!(ModelSpec::transformer_classifier_with(v, 1, d, h, l, c, 0.0, SequencePooling::ClassToken).is_err());

    // Causal attention as well: the token, last, still sees every real token.
    let mut causal_spec = spec.clone();
    for node in &mut causal_spec.layers {
        if let LayerSpec::MultiHeadAttention(a) = &mut node.layer {
            a.use_causal_mask = true;
        }
    }
    let causal = Model::<f64>::new(causal_spec, 1).unwrap();
    for m in [&model, &causal] {
        let y = run(m, &ids(&[2, 4], &[4, 2, 0, 0, 0, 0, 0, 0])).to_vec();
        for row in y.chunks(3) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        // Padding is invisible: the padding id's embedding and the padded positions'
        // embeddings changed, the output of a text padded from position 2 on is not.
        let changed = with_padding_rows_shifted(m, d, 2..4);
        let text = ids(&[1, 4], &[4, 2, 0, 0]);
        let (a, b) = (run(m, &text).to_vec(), run(&changed, &text).to_vec());
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-12), "{a:?} vs {b:?}");
        // Every real token matters, the first one included.
        for k in 0..3 {
            let mut other = [4, 2, 7, 0];
            other[k] = 5;
            assert_ne!(run(m, &ids(&[1, 4], &other)).to_vec(), run(m, &ids(&[1, 4], &[4, 2, 7, 0])).to_vec());
        }
        // A text of padding only: the token attends to itself alone.
        assert!(run(m, &ids(&[1, 4], &[0, 0, 0, 0])).to_vec().iter().all(|v| v.is_finite()));
    }

    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let (loaded, _) = Model::<f64>::load(dir.path()).unwrap();
    assert_eq!(loaded.spec(), model.spec());
    let x = ids(&[2, 4], &[1, 2, 3, 0, 8, 0, 0, 0]);
    let (a, b) = (run(&model, &x), run(&loaded, &x));
    assert!(a.to_vec().iter().zip(b.to_vec()).all(|(p, q)| p.to_bits() == q.to_bits()));

    let gpt = Model::<f64>::new(ModelSpec::gpt(v, t, d, h, l, 0.0).unwrap(), 2).unwrap();
    let gpt_dir = tempfile::tempdir().unwrap();
    gpt.save(gpt_dir.path()).unwrap();
    let mut tuned = model.clone();
    let report =
        tuned.load_weights_matching(&nn_layers::saved_weights_path(gpt_dir.path()), &LoadOptions::default()).unwrap();
    assert!(report.loaded.iter().any(|n| n == "position_embedding.embeddings"), "{report:?}");
    assert!(report.initialised.iter().any(|n| n == "class_token.embeddings"), "{report:?}");
}
