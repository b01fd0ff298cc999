//! The Transformer layers: MultiHeadAttention (against a by-hand case and a loop
//! reference of Vaswani et al.'s formula, causal and padding masks by perturbation,
//! fully masked rows, f64 gradchecks of every parameter and input with and without
//! masks and with dropout), PaddingMask, PositionEmbedding, SinePositionEncoding,
//! GlobalAveragePooling1D (masked mean), GELU in Dense and as a layer, build errors,
//! parameter names, and JSON round trips.

mod common;

use common::{assert_close, random_params, to_autograd, uniform, TOL};
use nn_autograd::{erf, gradcheck, GradcheckReport, Graph, Var};
use nn_layers::loss::{Loss, LossTargets};
use nn_layers::{
    Activation, ClassTokenConfig, DenseConfig, ForwardCtx, Layer, LayerError, LayerSpec, Mode, Model, ModelSpec,
    MultiHeadAttentionConfig, PaddingMaskConfig, PositionEmbeddingConfig, SinePositionEncodingConfig, Tensor,
};
use nn_tensor::random::seeded_rng;
use serde_json::json;

fn t(shape: &[usize], values: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(shape, values.to_vec())
}

fn build(spec: LayerSpec, shapes: &[&[usize]]) -> Box<dyn Layer<f64>> {
    spec.build_node::<f64>(0, Some("layer"), shapes).unwrap()
}

/// Runs a built layer on `xs` with parameters `params` (no-grad graph).
fn run(layer: &dyn Layer<f64>, xs: &[Tensor<f64>], params: &[Tensor<f64>], mode: Mode, seed: u64) -> Tensor<f64> {
    let mut g = Graph::<f64>::no_grad();
    let vars: Vec<Var> = xs.iter().map(|x| g.input(x.clone())).collect();
    let pv: Vec<Var> = params.iter().map(|p| g.constant(p)).collect();
    let mut rng = seeded_rng(seed);
    let mut ctx = ForwardCtx::new(mode, &mut rng);
    let y = layer.forward_inputs(&mut g, &vars, &pv, &mut ctx).unwrap();
    g.value(y).clone()
}

/// Gradchecks a layer over inputs `xs` and random parameters, in `mode` (the dropout
/// generator re-seeded on every evaluation).
fn check(spec: LayerSpec, xs: &[Tensor<f64>], mode: Mode, seed: u64) -> GradcheckReport {
    let shapes: Vec<&[usize]> = xs.iter().map(|x| &x.shape()[1..]).collect();
    let layer = build(spec, &shapes);
    let n = xs.len();
    let mut inputs = xs.to_vec();
    inputs.extend(random_params(layer.as_ref(), seed));
    gradcheck(&inputs, |g: &mut Graph<f64>, v: &[Var]| {
        let mut rng = seeded_rng(seed);
        let mut ctx = ForwardCtx::new(mode, &mut rng);
        layer.forward_inputs(g, &v[..n], &v[n..], &mut ctx).map_err(to_autograd)
    })
    .unwrap()
}

// ------------------------------------------------------------ MultiHeadAttention

/// Vaswani et al. 2017, eq. 1 and §3.2.2, by loops: per sample, head, query `i`:
/// scores over kept keys `j`, softmax, the weighted values, the output projection.
#[allow(clippy::too_many_arguments)]
fn reference_mha(
    q_in: &Tensor<f64>,
    v_in: &Tensor<f64>,
    k_in: &Tensor<f64>,
    p: &[Tensor<f64>],
    heads: usize,
    kd: usize,
    vd: usize,
    keep: &dyn Fn(usize, usize, usize) -> bool,
) -> Vec<f64> {
    let (b, tq, dq) = (q_in.shape()[0], q_in.shape()[1], q_in.shape()[2]);
    let (tk, dvi, dki) = (v_in.shape()[1], v_in.shape()[2], k_in.shape()[2]);
    let (q, v, k) = (q_in.to_vec(), v_in.to_vec(), k_in.to_vec());
    let (wq, bq, wk, bk, wv, bv, wo, bo) = (
        p[0].to_vec(),
        p[1].to_vec(),
        p[2].to_vec(),
        p[3].to_vec(),
        p[4].to_vec(),
        p[5].to_vec(),
        p[6].to_vec(),
        p[7].to_vec(),
    );
    let out = bo.len();
    // proj(x, w, bias, dim_in, dim) for sample n, position s, head h, component e.
    let proj = |x: &[f64],
                w: &[f64],
                bias: &[f64],
                len: usize,
                din: usize,
                dim: usize,
                n: usize,
                s: usize,
                h: usize,
                e: usize| {
        let mut acc = bias[h * dim + e];
        for f in 0..din {
            acc += x[(n * len + s) * din + f] * w[f * heads * dim + h * dim + e];
        }
        acc
    };
    let mut y = vec![0.0; b * tq * out];
    for n in 0..b {
        for i in 0..tq {
            for o in 0..out {
                y[(n * tq + i) * out + o] = bo[o];
            }
            for h in 0..heads {
                let qv: Vec<f64> = (0..kd).map(|e| proj(&q, &wq, &bq, tq, dq, kd, n, i, h, e)).collect();
                let mut w = vec![0.0; tk];
                let mut max = f64::NEG_INFINITY;
                for (j, wj) in w.iter_mut().enumerate() {
                    if keep(n, i, j) {
                        let s: f64 = (0..kd).map(|e| qv[e] * proj(&k, &wk, &bk, tk, dki, kd, n, j, h, e)).sum();
                        *wj = s / (kd as f64).sqrt();
                        max = max.max(*wj);
                    }
                }
                let mut total = 0.0;
                for (j, wj) in w.iter_mut().enumerate() {
                    *wj = if keep(n, i, j) { (*wj - max).exp() } else { 0.0 };
                    total += *wj;
                }
                for e in 0..vd {
                    let mut head_out = 0.0;
                    for (j, wj) in w.iter().enumerate() {
                        if total > 0.0 {
                            head_out += wj / total * proj(&v, &wv, &bv, tk, dvi, vd, n, j, h, e);
                        }
                    }
                    for o in 0..out {
                        y[(n * tq + i) * out + o] += head_out * wo[h * vd * out + e * out + o];
                    }
                }
            }
        }
    }
    y
}

#[test]
fn attention_by_hand_one_head_identity_kernels() {
    // 1 head, key_dim 2, identity projections, zero biases: Q = K = V = x.
    // x = [[1, 0], [0, 2]]: scores/√2 = [[1, 0], [0, 4]]/√2.
    let layer = build(LayerSpec::MultiHeadAttention(MultiHeadAttentionConfig::new(1, 2)), &[&[2, 2]]);
    let eye = t(&[2, 1, 2], &[1., 0., 0., 1.]);
    let zero = t(&[1, 2], &[0., 0.]);
    let params = [
        eye.clone(),
        zero.clone(),
        eye.clone(),
        zero.clone(),
        eye.clone(),
        zero,
        t(&[1, 2, 2], &[1., 0., 0., 1.]),
        t(&[2], &[0., 0.]),
    ];
    let y = run(layer.as_ref(), &[t(&[1, 2, 2], &[1., 0., 0., 2.])], &params, Mode::Eval, 0);
    let r = std::f64::consts::FRAC_1_SQRT_2;
    let (a0, a1) = (r.exp() / (r.exp() + 1.0), 1.0 / (r.exp() + 1.0)); // row 0: scores r, 0
    let (b0, b1) = (1.0 / (1.0 + (4.0 * r).exp()), (4.0 * r).exp() / (1.0 + (4.0 * r).exp())); // row 1: 0, 4r
    assert_close(&y.to_vec(), &[a0, 2.0 * a1, b0, 2.0 * b1], 1e-15);
    // Causal: position 0 sees only itself → exactly x₀.
    let causal =
        build(LayerSpec::MultiHeadAttention(MultiHeadAttentionConfig::new(1, 2).with_causal_mask(true)), &[&[2, 2]]);
    let y = run(causal.as_ref(), &[t(&[1, 2, 2], &[1., 0., 0., 2.])], &params, Mode::Eval, 0);
    assert_close(&y.to_vec(), &[1.0, 0.0, b0, 2.0 * b1], 1e-15);
}

#[test]
fn attention_matches_the_loop_reference() {
    // Cross-attention, 3 heads, key_dim 2, value_dim 3, output 5, query ≠ key ≠ value.
    let c = MultiHeadAttentionConfig::new(3, 2).with_value_dim(3).with_output_shape(5);
    let (q, v, k) = (uniform(&[2, 3, 4], -1., 1., 1), uniform(&[2, 4, 6], -1., 1., 2), uniform(&[2, 4, 2], -1., 1., 3));
    let mask = t(&[2, 4], &[1., 1., 0., 1., 0., 1., 1., 1.]);
    let layer = build(LayerSpec::MultiHeadAttention(c), &[&[3, 4], &[4, 6], &[4, 2], &[4]]);
    assert_eq!(layer.output_shape(), [3, 5]);
    let params = random_params(layer.as_ref(), 9);
    let shapes: Vec<Vec<usize>> = params.iter().map(|p| p.shape().to_vec()).collect();
    assert_eq!(
        shapes,
        [vec![4, 3, 2], vec![3, 2], vec![2, 3, 2], vec![3, 2], vec![6, 3, 3], vec![3, 3], vec![3, 3, 5], vec![5]]
    );
    let y = run(layer.as_ref(), &[q.clone(), v.clone(), k.clone(), mask.clone()], &params, Mode::Eval, 0);
    let m = mask.to_vec();
    let want = reference_mha(&q, &v, &k, &params, 3, 2, 3, &|n, _, j| m[n * 4 + j] == 1.0);
    assert_close(&y.to_vec(), &want, 1e-13);
    // Self-attention with a causal mask, 2 heads.
    let c = MultiHeadAttentionConfig::new(2, 3).with_causal_mask(true);
    let layer = build(LayerSpec::MultiHeadAttention(c), &[&[4, 4]]);
    let params = random_params(layer.as_ref(), 4);
    let x = uniform(&[2, 4, 4], -1., 1., 5);
    let y = run(layer.as_ref(), std::slice::from_ref(&x), &params, Mode::Eval, 0);
    let want = reference_mha(&x, &x, &x, &params, 2, 3, 3, &|_, i, j| j <= i);
    assert_close(&y.to_vec(), &want, 1e-13);
}

/// Output rows of sample 0 of `a` and `b` ([1, seq, d]) that differ by more than 1e-12.
fn changed_rows(a: &Tensor<f64>, b: &Tensor<f64>) -> Vec<usize> {
    let d = a.shape()[2];
    let (a, b) = (a.to_vec(), b.to_vec());
    (0..a.len() / d).filter(|&r| (0..d).any(|k| (a[r * d + k] - b[r * d + k]).abs() > 1e-12)).collect()
}

#[test]
fn causal_mask_makes_positions_independent_of_later_ones() {
    let c = MultiHeadAttentionConfig::new(2, 2).with_causal_mask(true);
    let layer = build(LayerSpec::MultiHeadAttention(c), &[&[5, 3]]);
    let params = random_params(layer.as_ref(), 1);
    let x = uniform(&[1, 5, 3], -1., 1., 2);
    let base = run(layer.as_ref(), std::slice::from_ref(&x), &params, Mode::Eval, 0);
    for t in 0..5 {
        let mut v = x.to_vec();
        v[t * 3 + 1] += 0.5;
        let y = run(layer.as_ref(), &[Tensor::from_vec(&[1, 5, 3], v)], &params, Mode::Eval, 0);
        // Positions before t are unchanged; t and every later one change.
        assert_eq!(changed_rows(&base, &y), (t..5).collect::<Vec<_>>(), "perturbing position {t}");
    }
}

#[test]
fn padding_mask_hides_masked_keys() {
    let layer = build(LayerSpec::MultiHeadAttention(MultiHeadAttentionConfig::new(2, 2)), &[&[3, 2], &[4, 3], &[4]]);
    let params = random_params(layer.as_ref(), 3);
    let (q, v) = (uniform(&[1, 3, 2], -1., 1., 4), uniform(&[1, 4, 3], -1., 1., 5));
    let mask = t(&[1, 4], &[1., 0., 1., 0.]);
    let base = run(layer.as_ref(), &[q.clone(), v.clone(), mask.clone()], &params, Mode::Eval, 0);
    for j in 0..4 {
        let mut w = v.to_vec();
        w[j * 3] += 0.7;
        let y =
            run(layer.as_ref(), &[q.clone(), Tensor::from_vec(&[1, 4, 3], w), mask.clone()], &params, Mode::Eval, 0);
        let want: Vec<usize> = if j % 2 == 1 { vec![] } else { vec![0, 1, 2] };
        assert_eq!(changed_rows(&base, &y), want, "perturbing key/value {j}");
    }
}

#[test]
fn fully_masked_rows_give_the_output_bias_not_nan() {
    let layer = build(LayerSpec::MultiHeadAttention(MultiHeadAttentionConfig::new(2, 2)), &[&[3, 2], &[3]]);
    let params = random_params(layer.as_ref(), 6);
    let x = uniform(&[2, 3, 2], -1., 1., 7);
    // Sample 0 fully masked, sample 1 not.
    let y = run(layer.as_ref(), &[x, t(&[2, 3], &[0., 0., 0., 1., 1., 1.])], &params, Mode::Eval, 0);
    let y = y.to_vec();
    assert!(y.iter().all(|v| v.is_finite()));
    let bo = params[7].to_vec();
    for row in 0..3 {
        assert_eq!(&y[row * 2..row * 2 + 2], bo.as_slice());
    }
    assert_ne!(&y[6..8], bo.as_slice());
}

#[test]
fn attention_gradchecks_with_and_without_masks() {
    let mha = |c: MultiHeadAttentionConfig| LayerSpec::MultiHeadAttention(c);
    for seed in 0..2 {
        let x = uniform(&[2, 3, 4], -1., 1., seed);
        let kv = uniform(&[2, 4, 3], -1., 1., seed + 10);
        let k = uniform(&[2, 4, 2], -1., 1., seed + 20);
        let mask = t(&[2, 4], &[1., 1., 0., 1., 0., 0., 0., 0.]); // sample 1 fully masked
        let cases: Vec<(&str, LayerSpec, Vec<Tensor<f64>>, Mode)> = vec![
            ("self", mha(MultiHeadAttentionConfig::new(2, 2)), vec![x.clone()], Mode::Eval),
            ("causal", mha(MultiHeadAttentionConfig::new(2, 3).with_causal_mask(true)), vec![x.clone()], Mode::Eval),
            (
                "cross+mask",
                mha(MultiHeadAttentionConfig::new(2, 2).with_value_dim(3)),
                vec![x.clone(), kv.clone(), mask.clone()],
                Mode::Eval,
            ),
            (
                "q,v,k",
                mha(MultiHeadAttentionConfig::new(1, 2).with_output_shape(3)),
                vec![x.clone(), kv.clone(), k.clone()],
                Mode::Eval,
            ),
            ("no bias", mha(MultiHeadAttentionConfig::new(2, 2).with_bias(false)), vec![x.clone()], Mode::Eval),
            (
                "dropout",
                mha(MultiHeadAttentionConfig::new(2, 2).with_dropout(0.3).with_causal_mask(true)),
                vec![x.clone()],
                Mode::Train,
            ),
        ];
        for (what, spec, xs, mode) in cases {
            let report = check(spec, &xs, mode, seed);
            assert!(report.passes(TOL), "{what}: {report}");
        }
    }
}

#[test]
fn attention_dropout_only_in_training() {
    let c = MultiHeadAttentionConfig::new(1, 2).with_dropout(0.5);
    let layer = build(LayerSpec::MultiHeadAttention(c), &[&[4, 2]]);
    let params = random_params(layer.as_ref(), 1);
    let x = uniform(&[1, 4, 2], -1., 1., 2);
    let eval = run(layer.as_ref(), std::slice::from_ref(&x), &params, Mode::Eval, 0);
    let no_drop = build(LayerSpec::MultiHeadAttention(MultiHeadAttentionConfig::new(1, 2)), &[&[4, 2]]);
    assert_eq!(eval.to_vec(), run(no_drop.as_ref(), std::slice::from_ref(&x), &params, Mode::Eval, 0).to_vec());
    let a = run(layer.as_ref(), std::slice::from_ref(&x), &params, Mode::Train, 3);
    let b = run(layer.as_ref(), std::slice::from_ref(&x), &params, Mode::Train, 3);
    assert_eq!(a.to_vec(), b.to_vec(), "same seed, same mask");
    assert_ne!(a.to_vec(), eval.to_vec());
}

#[test]
fn attention_parameters_have_keras_names() {
    let spec = ModelSpec::from_json(
        &json!({"inputs": [{"name": "x", "shape": [3, 4]}],
                "layers": [{"type": "MultiHeadAttention", "name": "mha", "num_heads": 2, "key_dim": 3, "inputs": ["x", "x"]}]})
        .to_string(),
    )
    .unwrap();
    let model = Model::<f64>::new(spec, 0).unwrap();
    let names: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "mha.query.kernel",
            "mha.query.bias",
            "mha.key.kernel",
            "mha.key.bias",
            "mha.value.kernel",
            "mha.value.bias",
            "mha.attention_output.kernel",
            "mha.attention_output.bias"
        ]
    );
    // 4·(4·6) + 3·6 + 6·4 + 4 parameters.
    assert_eq!(model.num_parameters().0, 3 * (4 * 6 + 6) + 6 * 4 + 4);
}

#[test]
fn attention_build_errors() {
    let mha = |c: MultiHeadAttentionConfig| LayerSpec::MultiHeadAttention(c);
    let err = |spec: LayerSpec, shapes: &[&[usize]]| spec.build_node::<f64>(0, Some("a"), shapes).unwrap_err();
    assert!(matches!(err(mha(MultiHeadAttentionConfig::new(0, 2)), &[&[3, 4]]), LayerError::InvalidConfig { .. }));
    assert!(matches!(
        err(mha(MultiHeadAttentionConfig::new(1, 2).with_dropout(1.0)), &[&[3, 4]]),
        LayerError::InvalidConfig { .. }
    ));
    // Key and value of different lengths; a mask of the wrong length; a 1-d query.
    assert!(matches!(
        err(mha(MultiHeadAttentionConfig::new(1, 2)), &[&[3, 4], &[5, 4], &[6, 4]]),
        LayerError::BuildShape { .. }
    ));
    let e = err(mha(MultiHeadAttentionConfig::new(1, 2)), &[&[3, 4], &[5]]);
    assert!(matches!(e, LayerError::BuildShape { .. }), "{e}");
    assert!(matches!(err(mha(MultiHeadAttentionConfig::new(1, 2)), &[&[3]]), LayerError::InvalidConfig { .. }));
    assert!(matches!(
        err(mha(MultiHeadAttentionConfig::new(1, 2)), &[&[3, 4], &[3, 4], &[3, 4], &[3, 4]]),
        LayerError::InvalidConfig { .. }
    ));
}

// ----------------------------------------------------------------- PaddingMask

#[test]
fn padding_mask_values() {
    let layer = build(LayerSpec::PaddingMask(PaddingMaskConfig::default()), &[&[4]]);
    let y = run(layer.as_ref(), &[t(&[2, 4], &[5., 3., 0., 0., 0., 1., 2., 0.])], &[], Mode::Eval, 0);
    assert_eq!(y.to_vec(), [1., 1., 0., 0., 0., 1., 1., 0.]);
    let layer = build(LayerSpec::PaddingMask(PaddingMaskConfig { mask_value: 2.0, class_token: false }), &[&[4]]);
    let y = run(layer.as_ref(), &[t(&[1, 4], &[2., 3., 0., 2.])], &[], Mode::Eval, 0);
    assert_eq!(y.to_vec(), [0., 1., 1., 0.]);
    assert!(LayerSpec::PaddingMask(PaddingMaskConfig::default()).build_node::<f64>(0, None, &[&[2, 3]]).is_err());
    // With a class token after the ids: one more position, kept, at the end.
    let layer = build(LayerSpec::PaddingMask(PaddingMaskConfig::default().with_class_token()), &[&[3]]);
    assert_eq!(layer.output_shape(), [4]);
    let y = run(layer.as_ref(), &[t(&[2, 3], &[5., 0., 0., 7., 8., 9.])], &[], Mode::Eval, 0);
    assert_eq!(y.shape(), [2, 4]);
    assert_eq!(y.to_vec(), [1., 0., 0., 1., 1., 1., 1., 1.]);
}

// ------------------------------------------------------------------ class token

#[test]
fn class_token_is_appended_and_pooling_reads_it_back() {
    let spec = LayerSpec::ClassToken(ClassTokenConfig::default());
    let layer = build(spec, &[&[2, 3]]);
    assert_eq!(layer.output_shape(), [3, 3]);
    assert_eq!(layer.param_specs()[0].shape, [1, 3]);
    let x = t(&[2, 2, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.]);
    let token = t(&[1, 3], &[-1., 0.5, 2.]);
    let y = run(layer.as_ref(), std::slice::from_ref(&x), std::slice::from_ref(&token), Mode::Eval, 0);
    assert_eq!(y.shape(), [2, 3, 3]);
    #[rustfmt::skip]
    assert_eq!(y.to_vec(), [1., 2., 3., 4., 5., 6., -1., 0.5, 2., 7., 8., 9., 10., 11., 12., -1., 0.5, 2.]);
    // The input and the token gradchecked (the token's gradient sums over the batch).
    let report = check(spec, std::slice::from_ref(&x), Mode::Eval, 3);
    assert!(report.passes(TOL), "{report}");
    // The token's gradient by hand: d Σ(c ⊙ y) / d token = Σ_n c[n, seq, :].
    let mut g = Graph::<f64>::new();
    let xv = g.input(x.clone());
    let tv = g.param("token", token.clone());
    let mut rng = seeded_rng(0);
    let yv = layer.forward_inputs(&mut g, &[xv], &[tv], &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap();
    let weights = uniform(&[2, 3, 3], -1., 1., 9);
    let c = g.constant(weights.clone());
    let prod = g.try_mul(yv, c).unwrap();
    let loss = g.try_sum(prod).unwrap();
    let grads = g.backward(loss).unwrap();
    let w = weights.to_vec();
    let want: Vec<f64> = (0..3).map(|f| w[6 + f] + w[15 + f]).collect();
    assert_close(&grads.get("token").unwrap().to_vec(), &want, 1e-15);

    let pool = build(LayerSpec::ClassTokenPooling, &[&[3, 3]]);
    assert_eq!(pool.output_shape(), [3]);
    let pooled = run(pool.as_ref(), &[y], &[], Mode::Eval, 0);
    assert_eq!(pooled.shape(), [2, 3]);
    assert_eq!(pooled.to_vec(), [-1., 0.5, 2., -1., 0.5, 2.]);
    let report = check(LayerSpec::ClassTokenPooling, &[x], Mode::Eval, 0);
    assert!(report.passes(TOL), "{report}");
    for bad in [&[3][..], &[0, 3], &[3, 0]] {
        assert!(matches!(spec.build_node::<f64>(0, None, &[bad]), Err(LayerError::BuildShape { .. })), "{bad:?}");
        assert!(LayerSpec::ClassTokenPooling.build_node::<f64>(0, None, &[bad]).is_err(), "{bad:?}");
    }
}

// ------------------------------------------------------------ position encodings

#[test]
fn position_embedding_adds_the_table_and_takes_shorter_sequences() {
    let spec = LayerSpec::PositionEmbedding(PositionEmbeddingConfig::new(4));
    let layer = build(spec, &[&[2, 3]]); // a sequence of 2 of the 4 positions
    assert_eq!(layer.param_specs()[0].shape, [4, 3]);
    let table = t(&[4, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.]);
    let x = t(&[2, 2, 3], &[0., 0., 0., 1., 1., 1., -1., 0., 1., 0.5, 0.5, 0.5]);
    let y = run(layer.as_ref(), &[x], &[table], Mode::Eval, 0);
    assert_eq!(y.to_vec(), [1., 2., 3., 5., 6., 7., 0., 2., 4., 4.5, 5.5, 6.5]);
    for seed in 0..2 {
        let report = check(spec, &[uniform(&[2, 2, 3], -1., 1., seed)], Mode::Eval, seed);
        assert!(report.passes(TOL), "{report}");
        let report = check(spec, &[uniform(&[2, 4, 3], -1., 1., seed)], Mode::Eval, seed);
        assert!(report.passes(TOL), "{report}");
    }
    assert!(matches!(spec.build_node::<f64>(0, None, &[&[5, 3]]).unwrap_err(), LayerError::BuildShape { .. }));
}

#[test]
fn sine_position_encoding_follows_vaswani() {
    let spec = LayerSpec::SinePositionEncoding(SinePositionEncodingConfig::default());
    let layer = build(spec, &[&[3, 4]]);
    let y = run(layer.as_ref(), &[Tensor::zeros(&[1, 3, 4])], &[], Mode::Eval, 0).to_vec();
    // d = 4: PE[t] = [sin t, cos t, sin(t/100), cos(t/100)] (10000^{2/4} = 100).
    let mut want = Vec::new();
    for p in 0..3 {
        let p = p as f64;
        want.extend([p.sin(), p.cos(), (p / 100.0).sin(), (p / 100.0).cos()]);
    }
    assert_close(&y, &want, 1e-15);
    assert_eq!(&y[0..4], [0., 1., 0., 1.]);
    let x = uniform(&[2, 3, 4], -1., 1., 1);
    let y = run(layer.as_ref(), std::slice::from_ref(&x), &[], Mode::Eval, 0).to_vec();
    let sum: Vec<f64> = x.to_vec().iter().enumerate().map(|(k, v)| v + want[k % 12]).collect();
    assert_close(&y, &sum, 1e-15);
    let report = check(spec, &[x], Mode::Eval, 0);
    assert!(report.passes(TOL), "{report}");
    let bad = LayerSpec::SinePositionEncoding(SinePositionEncodingConfig { max_wavelength: 1.0 });
    assert!(matches!(bad.build_node::<f64>(0, None, &[&[3, 4]]).unwrap_err(), LayerError::InvalidConfig { .. }));
}

// ------------------------------------------------------- GlobalAveragePooling1D

#[test]
fn global_average_pooling_1d_with_and_without_mask() {
    let spec = LayerSpec::GlobalAveragePooling1D;
    let x = t(&[2, 3, 2], &[1., 2., 3., 4., 5., 9., -1., 0., 1., 2., 3., 4.]);
    let plain = build(spec, &[&[3, 2]]);
    assert_eq!(plain.output_shape(), [2]);
    assert_close(&run(plain.as_ref(), std::slice::from_ref(&x), &[], Mode::Eval, 0).to_vec(), &[3., 5., 1., 2.], 1e-15);
    let masked = build(spec, &[&[3, 2], &[3]]);
    let mask = t(&[2, 3], &[1., 1., 0., 0., 0., 0.]);
    // Sample 0: mean of the first two rows; sample 1 fully masked → zeros.
    assert_eq!(run(masked.as_ref(), &[x.clone(), mask.clone()], &[], Mode::Eval, 0).to_vec(), [2., 3., 0., 0.]);
    let mask = t(&[2, 3], &[1., 0., 1., 0., 1., 1.]);
    for (xs, what) in [(vec![x.clone()], "plain"), (vec![x.clone(), mask], "masked")] {
        let report = check(spec, &xs, Mode::Eval, 0);
        assert!(report.passes(TOL), "{what}: {report}");
    }
    assert!(spec.build_node::<f64>(0, None, &[&[3, 2], &[4]]).is_err());
    assert!(spec.build_node::<f64>(0, None, &[&[3]]).is_err());
}

// ------------------------------------------------------------------------ GELU

#[test]
fn gelu_in_dense_and_as_a_layer() {
    let x = uniform(&[2, 3], -3., 3., 1);
    let dense = LayerSpec::Dense(DenseConfig::new(2).with_activation(Activation::Gelu));
    let layer = build(dense, &[&[3]]);
    let params = random_params(layer.as_ref(), 2);
    let y = run(layer.as_ref(), std::slice::from_ref(&x), &params, Mode::Eval, 0).to_vec();
    let (xv, w, b) = (x.to_vec(), params[0].to_vec(), params[1].to_vec());
    for n in 0..2 {
        for o in 0..2 {
            let z = b[o] + (0..3).map(|i| xv[n * 3 + i] * w[i * 2 + o]).sum::<f64>();
            let want = 0.5 * z * (1.0 + erf(z / 2f64.sqrt()));
            assert!((y[n * 2 + o] - want).abs() < 1e-14);
        }
    }
    // Model::infer (graph-free where possible) gives the same values as forward.
    let model = Model::<f64>::new(ModelSpec::new(&[3], vec![dense]), 3).unwrap();
    let mut g = Graph::<f64>::no_grad();
    let xv = g.input(x.clone());
    let mut rng = seeded_rng(0);
    let fwd = nn_layers::Module::forward(&model, &mut g, xv, &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap();
    assert_eq!(g.value(fwd).to_vec(), model.infer(x.array().view(), false).unwrap().to_vec());
    for (act, what) in [(Activation::Gelu, "gelu"), (Activation::GeluApproximate, "gelu_approximate")] {
        let report =
            check(LayerSpec::Dense(DenseConfig::new(2).with_activation(act)), std::slice::from_ref(&x), Mode::Eval, 4);
        assert!(report.passes(TOL), "{what}: {report}");
        let report = check(LayerSpec::activation(act), std::slice::from_ref(&x), Mode::Eval, 4);
        assert!(report.passes(TOL), "{what} layer: {report}");
        assert_eq!(serde_json::to_value(act).unwrap(), json!(what));
    }
    let layer = build(LayerSpec::activation(Activation::GeluApproximate), &[&[3]]);
    let y = run(layer.as_ref(), &[t(&[1, 3], &[-1., 0., 2.])], &[], Mode::Eval, 0).to_vec();
    let tanh_form =
        |v: f64| 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh());
    assert_close(&y, &[tanh_form(-1.), 0., tanh_form(2.)], 1e-15);
}

// -------------------------------------------------------------------- JSON, loss

#[test]
fn new_layers_round_trip_through_json() {
    let cases = [
        (
            LayerSpec::MultiHeadAttention(MultiHeadAttentionConfig::new(4, 16).with_causal_mask(true)),
            json!({"type": "MultiHeadAttention", "num_heads": 4, "key_dim": 16, "dropout": 0.0, "use_bias": true,
                   "use_causal_mask": true, "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}),
        ),
        (LayerSpec::PaddingMask(PaddingMaskConfig::default()), json!({"type": "PaddingMask", "mask_value": 0.0})),
        (
            LayerSpec::PositionEmbedding(PositionEmbeddingConfig::new(8)),
            json!({"type": "PositionEmbedding", "sequence_length": 8, "initializer": "glorot_uniform"}),
        ),
        (
            LayerSpec::SinePositionEncoding(SinePositionEncodingConfig::default()),
            json!({"type": "SinePositionEncoding", "max_wavelength": 10000.0}),
        ),
        (LayerSpec::GlobalAveragePooling1D, json!({"type": "GlobalAveragePooling1D"})),
        (
            LayerSpec::PaddingMask(PaddingMaskConfig::default().with_class_token()),
            json!({"type": "PaddingMask", "mask_value": 0.0, "class_token": true}),
        ),
        (
            LayerSpec::ClassToken(ClassTokenConfig::default()),
            json!({"type": "ClassToken", "initializer": {"random_normal": {"mean": 0.0, "stddev": 0.02}}}),
        ),
        (LayerSpec::ClassTokenPooling, json!({"type": "ClassTokenPooling"})),
    ];
    for (spec, want) in cases {
        let v = serde_json::to_value(spec).unwrap();
        assert_eq!(v, want);
        assert_eq!(serde_json::from_value::<LayerSpec>(v).unwrap(), spec);
    }
    // Keras-style minimal JSON with defaults, and unknown keys refused.
    let m: LayerSpec = serde_json::from_value(
        json!({"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 8, "value_dim": 4, "output_shape": 6}),
    )
    .unwrap();
    assert_eq!(
        m,
        LayerSpec::MultiHeadAttention(MultiHeadAttentionConfig::new(2, 8).with_value_dim(4).with_output_shape(6))
    );
    assert!(serde_json::from_value::<LayerSpec>(json!({"type": "GlobalAveragePooling1D", "x": 1})).is_err());
    assert!(serde_json::from_value::<LayerSpec>(json!({"type": "MultiHeadAttention", "num_heads": 2})).is_err());
}

#[test]
fn sparse_cross_entropy_averages_over_every_position() {
    // Logits [batch 1, context 2, vocab 3], targets [1, 2]: the mean of the two
    // positions' −log softmax.
    let logits = t(&[1, 2, 3], &[1., 2., 0., 0., 0., 3.]);
    let targets = t(&[1, 2], &[1., 2.]);
    let mut g = Graph::<f64>::no_grad();
    let l = g.input(logits);
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 };
    let out = loss.compute(&mut g, l, &LossTargets::Values(&targets)).unwrap();
    let v = g.value(out).item();
    let lse = |a: f64, b: f64, c: f64| (a.exp() + b.exp() + c.exp()).ln();
    let want = 0.5 * ((lse(1., 2., 0.) - 2.0) + (lse(0., 0., 3.) - 3.0));
    assert!((v - want).abs() < 1e-14, "{v} vs {want}");
}
