//! Every layer gradchecked in f64 (central finite differences, nn_autograd::gradcheck)
//! with respect to its input and every parameter, over random shapes and values.
//!
//! Tolerance `TOL = 1e-6` on the worst relative error (see `common`). Inputs are kept
//! away from kinks: relu/leaky_relu at 0 (values at least 0.01 from 0), max-pool ties
//! (distinct values 0.05 apart); Conv2D and Dense are checked with smooth activations
//! (relu, leaky_relu and elu, whose first or second derivative jumps at 0, are checked
//! as layers on inputs away from 0, and fused into Dense/Conv2D against the separate
//! nn-autograd ops in `fused_activations_match_separate_ops`).

mod common;

use common::{away_from_zero, check_layer, distinct, random_params, to_autograd, uniform, TOL};
use nn_autograd::{gradcheck, Graph, Var};
use nn_layers::{
    Activation, BatchNormConfig, Conv2DConfig, DenseConfig, EluConfig, EmbeddingConfig, ForwardCtx, LayerSpec,
    LeakyReluConfig, Mode, PaddingMode, Pool2DConfig, Tensor,
};
use nn_tensor::random::seeded_rng;
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

fn padding() -> impl Strategy<Value = PaddingMode> {
    prop_oneof![Just(PaddingMode::Valid), Just(PaddingMode::Same)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn dense(batch in 1usize..4, inner in 1usize..3, in_f in 1usize..5, units in 1usize..5,
             act in smooth_activation(), bias in any::<bool>(), rank3 in any::<bool>(), seed in 0u64..1000) {
        let spec = LayerSpec::Dense(DenseConfig::new(units).with_activation(act).with_bias(bias));
        let sample = if rank3 { vec![inner, in_f] } else { vec![in_f] };
        let mut shape = vec![batch];
        shape.extend(&sample);
        let report = check_layer(spec, &sample, uniform(&shape, -1.5, 1.5, seed), Mode::Train, seed);
        prop_assert!(report.passes(TOL), "{report}");
    }

    #[test]
    fn conv2d(batch in 1usize..3, h in 3usize..7, w in 3usize..7, c in 1usize..3, filters in 1usize..4,
              kh in 1usize..4, kw in 1usize..4, sh in 1usize..3, sw in 1usize..3, pad in padding(),
              act in prop_oneof![Just(Activation::Linear), Just(Activation::Tanh), Just(Activation::Sigmoid)],
              bias in any::<bool>(), seed in 0u64..1000) {
        let spec = LayerSpec::Conv2D(
            Conv2DConfig::new(filters, (kh, kw)).with_strides((sh, sw)).with_padding(pad).with_activation(act).with_bias(bias),
        );
        let report = check_layer(spec, &[h, w, c], uniform(&[batch, h, w, c], -1.0, 1.0, seed), Mode::Train, seed);
        prop_assert!(report.passes(TOL), "{report}");
    }

    #[test]
    fn pooling(batch in 1usize..3, h in 2usize..7, w in 2usize..7, c in 1usize..3, p in 1usize..4,
               s in 1usize..3, pad in padding(), max in any::<bool>(), seed in 0u64..1000) {
        prop_assume!(pad == PaddingMode::Same || (p <= h && p <= w));
        let config = Pool2DConfig::new(p).with_strides(s).with_padding(pad);
        let spec = if max { LayerSpec::MaxPool2D(config) } else { LayerSpec::AvgPool2D(config) };
        let x = distinct(&[batch, h, w, c], seed);
        let report = check_layer(spec, &[h, w, c], x, Mode::Train, seed);
        prop_assert!(report.passes(TOL), "{report}");
    }

    #[test]
    fn global_average_pooling_and_flatten(batch in 1usize..3, h in 1usize..5, w in 1usize..5, c in 1usize..4,
                                          seed in 0u64..1000) {
        let x = uniform(&[batch, h, w, c], -1.0, 1.0, seed);
        for spec in [LayerSpec::GlobalAveragePooling2D, LayerSpec::Flatten] {
            let report = check_layer(spec, &[h, w, c], x.clone(), Mode::Train, seed);
            prop_assert!(report.passes(TOL), "{report}");
        }
    }

    #[test]
    fn dropout_in_both_modes(batch in 1usize..4, n in 1usize..8, rate in 0.0f64..0.9, seed in 0u64..1000) {
        let x = uniform(&[batch, n], -1.0, 1.0, seed);
        for mode in [Mode::Train, Mode::Eval] {
            let report = check_layer(LayerSpec::dropout(rate), &[n], x.clone(), mode, seed);
            prop_assert!(report.passes(TOL), "{report}");
        }
    }

    #[test]
    fn batch_norm_in_both_modes(batch in 2usize..5, hw in 1usize..3, c in 1usize..4, images in any::<bool>(),
                                center in any::<bool>(), scale in any::<bool>(), seed in 0u64..1000) {
        let sample = if images { vec![hw, hw, c] } else { vec![c] };
        let mut shape = vec![batch];
        shape.extend(&sample);
        let spec = LayerSpec::BatchNormalization(BatchNormConfig::default().with_center(center).with_scale(scale));
        for mode in [Mode::Train, Mode::Eval] {
            // Gradients with respect to x, γ, β and (in evaluation, where they are used)
            // the moving mean and variance.
            let report = check_layer(spec, &sample, uniform(&shape, -2.0, 2.0, seed), mode, seed);
            prop_assert!(report.passes(TOL), "{mode:?}: {report}");
        }
    }

    #[test]
    fn activation_layers(batch in 1usize..3, n in 1usize..6, slope in 0.0f64..1.0, alpha in 0.1f64..2.0,
                         seed in 0u64..1000) {
        let x = away_from_zero(&[batch, n], seed);
        let specs = [
            LayerSpec::ReLU,
            LayerSpec::LeakyReLU(LeakyReluConfig { negative_slope: slope }),
            LayerSpec::ELU(EluConfig { alpha }),
            LayerSpec::Softmax,
            LayerSpec::activation(Activation::Sigmoid),
            LayerSpec::activation(Activation::Tanh),
            LayerSpec::activation(Activation::LeakyRelu),
            LayerSpec::activation(Activation::Softplus),
        ];
        for spec in specs {
            let report = check_layer(spec, &[n], x.clone(), Mode::Train, seed);
            prop_assert!(report.passes(TOL), "{spec:?}: {report}");
        }
    }

    #[test]
    fn embedding_table(batch in 1usize..3, seq in 1usize..4, dim in 1usize..5, out in 1usize..4, seed in 0u64..1000) {
        // Indices are data: the gradient flows to the table only (repeats accumulate).
        let layer = LayerSpec::Embedding(EmbeddingConfig::new(dim, out)).build::<f64>(0, &[seq]).unwrap();
        let idx: Vec<f64> = (0..batch * seq).map(|i| ((i as u64 * 7 + seed) % dim as u64) as f64).collect();
        let x = Tensor::from_vec(&[batch, seq], idx);
        let report = gradcheck(&random_params(layer.as_ref(), seed), |g: &mut Graph<f64>, v: &[Var]| {
            let xv = g.input(&x);
            let mut rng = seeded_rng(0);
            layer.forward(g, xv, v, &mut ForwardCtx::new(Mode::Train, &mut rng)).map_err(to_autograd)
        }).unwrap();
        prop_assert!(report.passes(TOL), "{report}");
    }
}

/// Dense and Conv2D apply their element-wise activation inside one fused op; its
/// values must equal nn-autograd's `linear`/`conv2d` followed by the activation op
/// bit for bit, and its gradients (the derivative taken from the output) must agree
/// to rounding, at every activation, including relu at exactly 0.
#[test]
fn fused_activations_match_separate_ops() {
    let acts = [
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Elu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Softplus,
        Activation::Softmax,
        Activation::Linear,
    ];
    for (k, act) in acts.into_iter().enumerate() {
        for conv in [false, true] {
            let (spec, sample, xshape) = if conv {
                let c =
                    Conv2DConfig::new(3, 2).with_strides((1, 2)).with_padding(PaddingMode::Same).with_activation(act);
                (LayerSpec::Conv2D(c), vec![4, 5, 2], vec![2, 4, 5, 2])
            } else {
                (LayerSpec::dense(4, act), vec![3, 5], vec![2, 3, 5])
            };
            let layer = spec.build::<f64>(0, &sample).unwrap();
            let params = random_params(layer.as_ref(), k as u64);
            // Rounded inputs and weights make some pre-activations exactly 0.
            let x = uniform(&xshape, -2.0, 2.0, 10 + k as u64).map(|v| (v * 2.0).round() / 2.0);
            let params: Vec<Tensor<f64>> = params.iter().map(|p| p.map(|v| (v * 2.0).round() / 2.0)).collect();
            let weights = uniform(layer.output_shape(), -1.0, 1.0, 3);

            let run = |fused: bool| {
                let mut g = Graph::<f64>::new();
                let xv = g.variable(&x);
                let pv: Vec<Var> = params.iter().map(|p| g.variable(p)).collect();
                let y = if fused {
                    let mut rng = seeded_rng(0);
                    layer.forward(&mut g, xv, &pv, &mut ForwardCtx::new(Mode::Train, &mut rng)).unwrap()
                } else {
                    let z = if conv {
                        g.conv2d(xv, pv[0], Some(pv[1]), (1, 2), nn_autograd::Padding::Same)
                    } else {
                        g.linear(xv, pv[0], Some(pv[1]))
                    };
                    act.apply(&mut g, z).unwrap()
                };
                let w = g.constant(&weights);
                let wy = g.mul(y, w);
                let s = g.sum(wy);
                let grads = g.backward(s).unwrap();
                let mut all = vec![g.value(y).clone()];
                all.extend([xv, pv[0], pv[1]].iter().map(|&v| grads.wrt(v).unwrap().clone()));
                all
            };
            let (fused, separate) = (run(true), run(false));
            assert_eq!(fused[0], separate[0], "{act:?} conv={conv}: values");
            for (a, b) in fused[1..].iter().zip(&separate[1..]) {
                assert!(a.all_close(b, 1e-12, 1e-14), "{act:?} conv={conv}: {a:?} vs {b:?}");
            }
        }
    }
}
