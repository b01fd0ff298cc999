//! Conv2D → MaxPool2D runs as one fused op inside Sequential (the convolution's full
//! output is never stored). Its values and every gradient must equal the unfused
//! path (Conv2D, then MaxPool2D) bit for bit, over random shapes, paddings, strides
//! and activations; and the fused op is gradchecked in f64 on its own.

mod common;

use common::{to_autograd, uniform, TOL};
use nn_autograd::{gradcheck_with, GradcheckOptions, Graph, Var};
use nn_layers::{
    Activation, Conv2DConfig, ForwardCtx, LayerSpec, Mode, ModelSpec, PaddingMode, Pool2DConfig, Sequential, Tensor,
};
use nn_tensor::random::seeded_rng;
use proptest::prelude::*;

/// Values and gradients (input first, then every parameter in order) of
/// `Σ w ⊙ model(x)` with fixed weights `w`.
fn values_and_grads(model: &Sequential<f64>, x: &Tensor<f64>) -> Vec<Tensor<f64>> {
    let mut g = Graph::<f64>::new();
    let xv = g.variable(x);
    let mut rng = seeded_rng(1);
    let y = model.forward(&mut g, xv, &mut ForwardCtx::new(Mode::Train, &mut rng)).unwrap();
    let w = g.constant(uniform(g.value(y).shape(), -1.0, 1.0, 9));
    let wy = g.mul(y, w);
    let s = g.sum(wy);
    let grads = g.backward(s).unwrap();
    let mut out = vec![g.value(y).clone(), grads.wrt(xv).unwrap().clone()];
    for p in model.parameters() {
        out.push(grads.get(&p.name).unwrap_or_else(|| panic!("no gradient for {}", p.name)).clone());
    }
    out
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Relu),
        Just(Activation::Linear),
        Just(Activation::Tanh),
        Just(Activation::Sigmoid),
        Just(Activation::Elu),
    ]
}

fn padding() -> impl Strategy<Value = PaddingMode> {
    prop_oneof![Just(PaddingMode::Valid), Just(PaddingMode::Same)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Two Conv2D → MaxPool2D blocks (so the second fused op also routes a gradient
    /// to its input), then Flatten → Dense, fused against unfused.
    #[test]
    fn fused_equals_unfused_bit_for_bit(
        batch in 1usize..9, h in 6usize..12, w in 6usize..12, c in 1usize..3, filters in 1usize..5,
        k in 1usize..4, stride in 1usize..3, conv_pad in padding(), act in activation(),
        pool in 1usize..4, pool_stride in 1usize..4, pool_pad in padding(), bias in any::<bool>(),
        rounded in any::<bool>(), seed in 0u64..1000,
    ) {
        let conv = |f| LayerSpec::Conv2D(
            Conv2DConfig::new(f, k).with_strides(stride).with_padding(conv_pad).with_activation(act).with_bias(bias),
        );
        let pool_spec = LayerSpec::MaxPool2D(Pool2DConfig::new(pool).with_strides(pool_stride).with_padding(pool_pad));
        let spec = ModelSpec::new(
            &[h, w, c],
            vec![conv(filters), pool_spec, conv(2), pool_spec, LayerSpec::Flatten, LayerSpec::dense(3, Activation::Linear)],
        );
        // Some shape combinations leave nothing to pool; those are build errors.
        let Ok(mut model) = Sequential::<f64>::new(spec, seed) else { return Ok(()) };
        // Rounding inputs and weights makes ties in the pool windows and exact zeros
        // before relu: the fused op must break them the same way.
        let r = |v: f64| if rounded { (v * 2.0).round() / 2.0 } else { v };
        for p in model.parameters_mut() {
            p.value = std::sync::Arc::new(p.value.map(r));
        }
        let x = uniform(&[batch, h, w, c], -1.0, 1.0, seed).map(r);
        model.set_fusion(true);
        let fused = values_and_grads(&model, &x);
        model.set_fusion(false);
        let unfused = values_and_grads(&model, &x);
        for (i, (a, b)) in fused.iter().zip(&unfused).enumerate() {
            prop_assert_eq!(a.to_vec(), b.to_vec(), "output {} differs", i);
        }
    }
}

/// Gradchecks `model` (its fused plan) with respect to the input and every
/// parameter, through [`Sequential::forward_with_parameters`].
fn gradcheck_model(model: &Sequential<f64>, x: Tensor<f64>, options: GradcheckOptions) -> nn_autograd::GradcheckReport {
    let mut inputs = vec![x];
    inputs.extend(model.parameters().iter().map(|p| (*p.value).clone()));
    gradcheck_with(&inputs, options, |g: &mut Graph<f64>, v: &[Var]| {
        let mut rng = seeded_rng(0);
        let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
        Ok(model.forward_with_parameters(g, &v[..1], &v[1..], &mut ctx, false).map_err(to_autograd)?[0])
    })
    .unwrap()
}

/// The fused Conv2D → MaxPool2D stage, gradchecked with respect to its input, kernel
/// and bias (a model of the two layers, which the planner fuses).
#[test]
fn fused_conv_pool_gradcheck() {
    let cases = [
        (Activation::Tanh, 3, 2, 2, PaddingMode::Valid, PaddingMode::Valid),
        (Activation::Sigmoid, 3, 1, 3, PaddingMode::Same, PaddingMode::Same),
        (Activation::Linear, 2, 1, 2, PaddingMode::Valid, PaddingMode::Same),
        (Activation::Softplus, 3, 2, 3, PaddingMode::Same, PaddingMode::Valid),
    ];
    for (i, (act, k, pool_stride, pool, conv_pad, pool_pad)) in cases.into_iter().enumerate() {
        let (h, w, c) = (7, 6, 2);
        let spec = ModelSpec::new(
            &[h, w, c],
            vec![
                LayerSpec::Conv2D(Conv2DConfig::new(3, k).with_padding(conv_pad).with_activation(act)),
                LayerSpec::MaxPool2D(Pool2DConfig::new(pool).with_strides(pool_stride).with_padding(pool_pad)),
            ],
        );
        let seed = i as u64;
        let mut model = Sequential::<f64>::new(spec, seed).unwrap();
        for p in model.parameters_mut() {
            p.value = std::sync::Arc::new(uniform(p.shape(), -1.0, 1.0, seed + 100));
        }
        assert_eq!(model.planned_stages(), 1, "case {i}: the planner fuses the pair");
        // A kernel perturbation moves every convolution output, so a near-tie inside a
        // pool window flips its argmax within the default step (1e-3): the unfused
        // Conv2D → MaxPool2D fails the same way on such draws (seed 2 here). A step of
        // 1e-5 stays on one side of every tie of these draws; its rounding error,
        // about 1.5·ε·|L|/h ≈ 3e-11·|L|, is still far below TOL.
        let options = GradcheckOptions { eps: 1e-5, ..GradcheckOptions::default() };
        let report = gradcheck_model(&model, uniform(&[2, h, w, c], -1.0, 1.0, seed), options);
        assert!(report.passes(TOL), "case {i} ({act:?}): {report}");
    }
}

/// Softmax is not element-wise: a Conv2D with it is not fused (the model still runs),
/// and neither is a Conv2D whose output has a second consumer.
#[test]
fn what_the_planner_does_not_fuse() {
    let spec = ModelSpec::new(
        &[5, 5, 1],
        vec![LayerSpec::Conv2D(Conv2DConfig::new(2, 3).with_activation(Activation::Softmax)), LayerSpec::max_pool(2)],
    );
    let model = Sequential::<f64>::new(spec, 0).unwrap();
    assert_eq!(model.planned_stages(), 2);
    let fused = Sequential::<f64>::new(ModelSpec::seed_cnn(&[12, 12, 1], 4), 0).unwrap();
    assert_eq!(fused.planned_stages(), 3, "Conv2D + MaxPool2D + Flatten fold into one stage");
    let branch = ModelSpec::from_json(
        r#"{"inputs": [{"name": "x", "shape": [6, 6, 1]}], "layers": [
            {"type": "Conv2D", "name": "c", "filters": 2, "kernel_size": 3, "activation": "relu"},
            {"type": "MaxPool2D", "name": "p", "pool_size": 2},
            {"type": "Flatten", "name": "f1"},
            {"type": "Flatten", "name": "f2", "inputs": ["c"]},
            {"type": "Dense", "name": "d1", "units": 2, "inputs": ["f1"]},
            {"type": "Dense", "name": "d2", "units": 2, "inputs": ["f2"]},
            {"type": "Add", "inputs": ["d1", "d2"]}]}"#,
    )
    .unwrap();
    let model = Sequential::<f64>::new(branch, 0).unwrap();
    assert_eq!(model.planned_stages(), 7, "c feeds two layers: nothing fused");
}

/// `Sequential::infer` (no graph where layers allow) against `forward` on a no-grad
/// graph, bit for bit: the seed CNN (fused Conv2D → MaxPool2D), an MLP (leading
/// Flatten, Dropout, softmax head, with and without `logits`), a model that falls
/// back to the graph part way (BatchNormalization, an activation layer), and an input
/// that is a strided slice of a larger array.
#[test]
fn infer_equals_the_graph_path() {
    let models = [
        ModelSpec::seed_cnn(&[12, 12, 1], 4),
        ModelSpec::mlp(&[6, 5, 1], 7, 3, 0.3),
        ModelSpec::new(
            &[8, 8, 2],
            vec![
                LayerSpec::Conv2D(Conv2DConfig::new(3, 3).with_activation(Activation::Tanh)),
                LayerSpec::Flatten,
                LayerSpec::dense(5, Activation::Relu),
                LayerSpec::batch_norm(),
                LayerSpec::dense(4, Activation::Sigmoid),
                LayerSpec::dense(2, Activation::Softmax),
            ],
        ),
    ];
    for (k, spec) in models.into_iter().enumerate() {
        let model = Sequential::<f64>::new(spec, k as u64).unwrap();
        let mut shape = vec![5];
        shape.extend_from_slice(model.input_shape());
        // Every other sample of a batch of 10: a strided view, read in place.
        let mut big_shape = shape.clone();
        big_shape[0] = 10;
        let big = uniform(&big_shape, -1.0, 1.0, 40 + k as u64);
        let view = big.array().slice_axis(ndarray::Axis(0), ndarray::Slice::new(0, None, 2));
        let x = Tensor::from(view.to_owned());
        for logits in [false, true] {
            let mut g = Graph::<f64>::no_grad();
            let xv = g.input(x.clone());
            let mut rng = seeded_rng(0);
            let mut ctx = ForwardCtx::new(Mode::Eval, &mut rng);
            let y =
                if logits { model.forward_logits(&mut g, xv, &mut ctx) } else { model.forward(&mut g, xv, &mut ctx) }
                    .unwrap();
            let got = model.infer(view.view(), logits).unwrap();
            assert_eq!(got.shape(), g.value(y).shape(), "model {k}");
            assert_eq!(got.to_vec(), g.value(y).to_vec(), "model {k}, logits {logits}");
        }
    }
    let model = Sequential::<f64>::new(ModelSpec::seed_cnn(&[12, 12, 1], 4), 0).unwrap();
    let bad = Tensor::<f64>::zeros(&[2, 12, 11, 1]);
    assert!(matches!(model.infer(bad.array().view(), false), Err(nn_layers::LayerError::InputShape { .. })));
}
