//! Hand-computed forward values of every layer on small inputs.

mod common;

use common::{assert_close, run_layer};
use nn_layers::{
    Activation, BatchNormConfig, Conv2DConfig, DenseConfig, EluConfig, EmbeddingConfig, ForwardCtx, Graph, LayerError,
    LayerSpec, LeakyReluConfig, Mode, PaddingMode, Pool2DConfig, Tensor,
};
use nn_tensor::random::seeded_rng;

/// The 4×4 one-channel image `x[r, c] = 4r + c + 1` (1 … 16), batch 1, NHWC.
fn image_4x4() -> Tensor<f64> {
    Tensor::from_vec(&[1, 4, 4, 1], (1..=16).map(f64::from).collect())
}

/// The asymmetric 3×3 kernel `[[1, 2, 0], [0, 0, 0], [0, 0, −1]]` as `[3, 3, 1, 1]`, so
/// `out[i, j] = x[i', j'] + 2·x[i', j' + 1] − x[i' + 2, j' + 2]` at window origin
/// `(i', j') = (i·s − pad_top, j·s − pad_left)`, zeros outside the image.
fn kernel_3x3() -> Tensor<f64> {
    Tensor::from_vec(&[3, 3, 1, 1], vec![1., 2., 0., 0., 0., 0., 0., 0., -1.])
}

fn conv(stride: usize, padding: PaddingMode, bias: f64) -> (Vec<usize>, Vec<f64>) {
    let spec = LayerSpec::Conv2D(Conv2DConfig::new(1, 3).with_strides(stride).with_padding(padding));
    let layer = spec.build::<f64>(0, &[4, 4, 1]).unwrap();
    let (y, _) =
        run_layer(layer.as_ref(), image_4x4(), &[kernel_3x3(), Tensor::from_vec(&[1], vec![bias])], Mode::Eval, 0);
    assert_eq!(y.shape()[1..], layer.output_shape()[..], "inferred shape matches the computed one");
    (y.shape().to_vec(), y.to_vec())
}

#[test]
fn conv2d_known_kernel_valid_stride_1() {
    // Interior windows: (4i+j+1) + 2(4i+j+2) − (4i+j+11) = 8i + 2j − 6.
    let (shape, y) = conv(1, PaddingMode::Valid, 0.0);
    assert_eq!(shape, [1, 2, 2, 1]);
    assert_eq!(y, [-6., -4., 2., 4.]);
    // The bias is added to every output.
    assert_eq!(conv(1, PaddingMode::Valid, 0.5).1, [-5.5, -3.5, 2.5, 4.5]);
}

#[test]
fn conv2d_known_kernel_valid_stride_2() {
    // out = floor((4 − 3) / 2) + 1 = 1: only the window at (0, 0), 8·0 + 2·0 − 6.
    let (shape, y) = conv(2, PaddingMode::Valid, 0.0);
    assert_eq!(shape, [1, 1, 1, 1]);
    assert_eq!(y, [-6.]);
}

#[test]
fn conv2d_known_kernel_same_stride_1() {
    // out = 4, total padding (4−1)·1 + 3 − 4 = 2: one zero row/column on every side.
    // out[i, j] = x[i−1, j−1] + 2·x[i−1, j] − x[i+1, j+1]; e.g. out[0, 0] = 0 + 0 − 6,
    // out[0, 3] = 0 + 0 − x[1, 4] = 0, out[1, 3] = x[0, 2] + 2·x[0, 3] − 0 = 3 + 8,
    // out[3, 0] = 0 + 2·x[2, 0] − x[4, 1] = 18, out[3, 3] = x[2, 2] + 2·x[2, 3] = 11 + 24.
    let (shape, y) = conv(1, PaddingMode::Same, 0.0);
    assert_eq!(shape, [1, 4, 4, 1]);
    assert_eq!(y, [-6., -7., -8., 0., -8., -6., -4., 11., -4., 2., 4., 23., 18., 29., 32., 35.]);
}

#[test]
fn conv2d_known_kernel_same_stride_2() {
    // out = ceil(4 / 2) = 2, total padding (2−1)·2 + 3 − 4 = 1, put at the bottom/right
    // (TensorFlow's rule): windows at (0,0), (0,2), (2,0), (2,2) of the image padded below
    // and to the right. (0,2): 3 + 2·4 − 0 = 11; (2,0): 9 + 2·10 − 0 = 29; (2,2): 11 + 24.
    let (shape, y) = conv(2, PaddingMode::Same, 0.0);
    assert_eq!(shape, [1, 2, 2, 1]);
    assert_eq!(y, [-6., 11., 29., 35.]);
}

#[test]
fn same_padding_keeps_spatial_size_for_odd_and_even_kernels() {
    for k in 1..=5 {
        for (h, w) in [(4, 4), (5, 7), (6, 3), (1, 1)] {
            let spec = LayerSpec::Conv2D(Conv2DConfig::new(2, k).with_padding(PaddingMode::Same));
            let layer = spec.build::<f64>(0, &[h, w, 3]).unwrap();
            assert_eq!(layer.output_shape(), [h, w, 2], "kernel {k}, image {h}×{w}");
            let x = Tensor::from_vec(&[2, h, w, 3], (0..2 * h * w * 3).map(|i| i as f64 * 0.1).collect());
            let params = [Tensor::ones(&[k, k, 3, 2]), Tensor::zeros(&[2])];
            let (y, _) = run_layer(layer.as_ref(), x, &params, Mode::Eval, 0);
            assert_eq!(y.shape(), [2, h, w, 2]);
        }
    }
    // An even 2×2 kernel of ones on the 4×4 image with `same`: the extra zero row and
    // column go to the bottom and right, so out[i, j] = x[i,j] + x[i,j+1] + x[i+1,j] + x[i+1,j+1]
    // with zeros beyond: out[0, 0] = 1 + 2 + 5 + 6, out[3, 3] = 16, out[0, 3] = 4 + 8.
    let spec = LayerSpec::Conv2D(Conv2DConfig::new(1, 2).with_padding(PaddingMode::Same).with_bias(false));
    let layer = spec.build::<f64>(0, &[4, 4, 1]).unwrap();
    let (y, _) = run_layer(layer.as_ref(), image_4x4(), &[Tensor::ones(&[2, 2, 1, 1])], Mode::Eval, 0);
    assert_eq!(y.shape(), [1, 4, 4, 1]);
    assert_eq!(y.get(&[0, 0, 0, 0]), Some(14.0));
    assert_eq!(y.get(&[0, 0, 3, 0]), Some(12.0));
    assert_eq!(y.get(&[0, 3, 3, 0]), Some(16.0));
}

#[test]
fn conv2d_multi_channel_matches_direct_sum() {
    // Reference: the defining sum out[n,i,j,f] = b[f] + Σ_{u,v,c} x[n,i+u,j+v,c]·k[u,v,c,f].
    let (h, w, c, f, k) = (5, 4, 2, 3, 2);
    let x = Tensor::from_vec(&[2, h, w, c], (0..2 * h * w * c).map(|i| ((i * 7) % 11) as f64 - 5.0).collect());
    let kernel = Tensor::from_vec(&[k, k, c, f], (0..k * k * c * f).map(|i| ((i * 5) % 7) as f64 - 3.0).collect());
    let bias = Tensor::from_vec(&[f], vec![0.5, -1.0, 2.0]);
    let layer = LayerSpec::Conv2D(Conv2DConfig::new(f, k)).build::<f64>(0, &[h, w, c]).unwrap();
    let (y, _) = run_layer(layer.as_ref(), x.clone(), &[kernel.clone(), bias.clone()], Mode::Eval, 0);
    for n in 0..2 {
        for i in 0..h - k + 1 {
            for j in 0..w - k + 1 {
                for ff in 0..f {
                    let mut s = bias.get(&[ff]).unwrap();
                    for u in 0..k {
                        for v in 0..k {
                            for cc in 0..c {
                                s += x.get(&[n, i + u, j + v, cc]).unwrap() * kernel.get(&[u, v, cc, ff]).unwrap();
                            }
                        }
                    }
                    assert_eq!(y.get(&[n, i, j, ff]), Some(s));
                }
            }
        }
    }
}

#[test]
fn dense_known_kernel_and_fused_activation() {
    // y = relu(x·W + b): x = [1, 2], W = [[1, −1, 0.5], [2, 1, −1]], b = [0, −2, 0.25]:
    // x·W = [5, 1, −1.5]; + b = [5, −1, −1.25]; relu → [5, 0, 0].
    let spec = LayerSpec::Dense(DenseConfig::new(3).with_activation(Activation::Relu));
    let layer = spec.build::<f64>(0, &[2]).unwrap();
    let w = Tensor::from_vec(&[2, 3], vec![1., -1., 0.5, 2., 1., -1.]);
    let b = Tensor::from_vec(&[3], vec![0., -2., 0.25]);
    let x = Tensor::from_vec(&[1, 2], vec![1., 2.]);
    assert_eq!(run_layer(layer.as_ref(), x.clone(), &[w.clone(), b.clone()], Mode::Eval, 0).0.to_vec(), [5., 0., 0.]);
    // Softmax activation: softmax([5, −1, −1.25]) = e^z / Σ e^z.
    let spec = LayerSpec::dense(3, Activation::Softmax);
    let layer = spec.build::<f64>(0, &[2]).unwrap();
    let y = run_layer(layer.as_ref(), x, &[w, b], Mode::Eval, 0).0.to_vec();
    let z = [5.0f64, -1.0, -1.25];
    let s: f64 = z.iter().map(|v| v.exp()).sum();
    assert_close(&y, &z.map(|v| v.exp() / s), 1e-15);
    // Applied to the last axis of a rank-3 input: [batch, 2, in] → [batch, 2, units].
    let layer = LayerSpec::dense(3, Activation::Linear).build::<f64>(0, &[2, 2]).unwrap();
    assert_eq!(layer.output_shape(), [2, 3]);
}

#[test]
fn max_pool_with_ties_and_overlap() {
    // Channel 0 has ties inside each 2×2 window; the maximum is the value either way.
    // x (4×4) = [[1, 3, 3, 0],
    //            [3, 2, 1, 3],
    //            [5, 5, 0, 0],
    //            [5, 4, 0, 0]]
    let x =
        Tensor::<f64>::from_vec(&[1, 4, 4, 1], vec![1., 3., 3., 0., 3., 2., 1., 3., 5., 5., 0., 0., 5., 4., 0., 0.]);
    let layer = LayerSpec::max_pool(2).build::<f64>(0, &[4, 4, 1]).unwrap();
    let (y, _) = run_layer(layer.as_ref(), x.clone(), &[], Mode::Eval, 0);
    assert_eq!(y.shape(), [1, 2, 2, 1]);
    assert_eq!(y.to_vec(), [3., 3., 5., 0.]);
    // The gradient of a tie goes to the first maximal element in row-major window order:
    // window (0,0) → x[0,1]; (0,1) → x[0,2]; (1,0) → x[2,0]; (1,1) all zeros → x[2,2].
    let mut g = Graph::<f64>::new();
    let xv = g.variable(&x);
    let mut rng = seeded_rng(0);
    let y = layer.forward(&mut g, xv, &[], &mut ForwardCtx::new(Mode::Train, &mut rng)).unwrap();
    let s = g.sum(y);
    let grads = g.backward(s).unwrap();
    let dx = grads.wrt(xv).unwrap().to_vec();
    let mut want = vec![0.0; 16];
    for at in [1, 2, 8, 10] {
        want[at] = 1.0;
    }
    assert_eq!(dx, want);
    // Overlapping 2×2 windows with stride 1: out[i, j] = max of x[i..i+2, j..j+2].
    let spec = LayerSpec::MaxPool2D(Pool2DConfig::new(2).with_strides(1));
    let layer = spec.build::<f64>(0, &[4, 4, 1]).unwrap();
    let (y, _) = run_layer(layer.as_ref(), x, &[], Mode::Eval, 0);
    assert_eq!(y.to_vec(), [3., 3., 3., 5., 5., 3., 5., 5., 0.]);
}

#[test]
fn avg_pool_counts_only_image_positions() {
    // 2×2 average of the 4×4 image 1..16: (1+2+5+6)/4 = 3.5, 5.5, 11.5, 13.5.
    let layer = LayerSpec::avg_pool(2).build::<f64>(0, &[4, 4, 1]).unwrap();
    assert_eq!(run_layer(layer.as_ref(), image_4x4(), &[], Mode::Eval, 0).0.to_vec(), [3.5, 5.5, 11.5, 13.5]);
    // 3×3 windows, stride 2, `same`: out 2×2, padding bottom/right; the window at (2, 2)
    // covers x[2..4, 2..4] = 11, 12, 15, 16 only: mean 13.5 (padding is not counted).
    let spec = LayerSpec::AvgPool2D(Pool2DConfig::new(3).with_strides(2).with_padding(PaddingMode::Same));
    let layer = spec.build::<f64>(0, &[4, 4, 1]).unwrap();
    let y = run_layer(layer.as_ref(), image_4x4(), &[], Mode::Eval, 0).0.to_vec();
    // (0,0): x[0..3, 0..3] mean = 6; (0,2): x[0..3, 2..4] = 3,4,7,8,11,12 → 7.5; (2,0): x[2..4, 0..3] → 12.
    assert_eq!(y, [6., 7.5, 12., 13.5]);
}

#[test]
fn global_average_pooling_and_flatten_order() {
    // x[n, h, w, c] = 1000n + 100h + 10w + c over a 2×2×3 image.
    let x = Tensor::<f64>::from_vec(
        &[2, 2, 2, 3],
        (0..2)
            .flat_map(|n| {
                (0..2).flat_map(move |h| {
                    (0..2).flat_map(move |w| (0..3).map(move |c| (1000 * n + 100 * h + 10 * w + c) as f64))
                })
            })
            .collect(),
    );
    let layer = LayerSpec::GlobalAveragePooling2D.build::<f64>(0, &[2, 2, 3]).unwrap();
    let (y, _) = run_layer(layer.as_ref(), x.clone(), &[], Mode::Eval, 0);
    // Mean over h, w: 1000n + 50 + 5 + c.
    assert_eq!(y.shape(), [2, 3]);
    assert_eq!(y.to_vec(), [55., 56., 57., 1055., 1056., 1057.]);
    // Flatten keeps NHWC order: channel fastest, then width, then height.
    let layer = LayerSpec::Flatten.build::<f64>(0, &[2, 2, 3]).unwrap();
    let (y, _) = run_layer(layer.as_ref(), x.clone(), &[], Mode::Eval, 0);
    assert_eq!(y.shape(), [2, 12]);
    assert_eq!(y.to_vec()[..6], [0., 1., 2., 10., 11., 12.]);
    assert_eq!(y.to_vec(), x.to_vec());
}

#[test]
fn dropout_scales_in_training_and_is_identity_in_evaluation() {
    let rate = 0.25;
    let layer = LayerSpec::dropout(rate).build::<f64>(0, &[1000]).unwrap();
    let x = Tensor::<f64>::from_vec(&[4, 1000], (0..4000).map(|i| 1.0 + (i % 7) as f64).collect());
    let (y, _) = run_layer(layer.as_ref(), x.clone(), &[], Mode::Train, 11);
    // Every output is 0 or x · (1 / (1 − rate)), and the kept ones are exactly the Bernoulli
    // mask drawn from the same seed.
    let mask = Tensor::<f64>::random_bernoulli(&[4, 1000], 1.0 - rate, &mut seeded_rng(11)).unwrap();
    for ((&yi, &xi), &m) in y.to_vec().iter().zip(&x.to_vec()).zip(&mask.to_vec()) {
        assert_eq!(yi, if m == 1.0 { xi * (1.0 / (1.0 - rate)) } else { 0.0 });
    }
    let kept = mask.to_vec().iter().filter(|&&m| m == 1.0).count() as f64 / 4000.0;
    assert!((kept - 0.75).abs() < 0.03, "kept fraction {kept}");
    // Evaluation: the same Var comes back, values untouched.
    let mut g = Graph::<f64>::no_grad();
    let xv = g.input(&x);
    let mut rng = seeded_rng(0);
    let y = layer.forward(&mut g, xv, &[], &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap();
    assert_eq!(y, xv);
    assert_eq!(g.value(y), &x);
    // A rate of 1 or more is refused when the model is built.
    let err = LayerSpec::dropout(1.0).build::<f64>(3, &[4]).unwrap_err();
    assert_eq!(
        err,
        LayerError::InvalidConfig {
            index: 3,
            name: None,
            kind: "Dropout",
            message: "rate must be in [0, 1), got 1".into()
        }
    );
}

#[test]
fn batch_norm_training_and_evaluation() {
    // x = [[1, 2], [3, 6]] (batch 2, 2 features): batch mean μ = [2, 4], biased variance
    // σ² = [1, 4] (divided by 2, not 1). With γ = [1, 2], β = [0, 0.5], ε = 1e-3:
    // y = γ·(x − μ)/√(σ² + ε) + β.
    let layer = LayerSpec::batch_norm().build::<f64>(0, &[2]).unwrap();
    let x = Tensor::<f64>::from_vec(&[2, 2], vec![1., 2., 3., 6.]);
    let gamma = Tensor::from_vec(&[2], vec![1., 2.]);
    let beta = Tensor::from_vec(&[2], vec![0., 0.5]);
    let (mm, mv) = (Tensor::from_vec(&[2], vec![0., 0.]), Tensor::from_vec(&[2], vec![1., 1.]));
    let params = [gamma.clone(), beta.clone(), mm.clone(), mv.clone()];
    let (y, updates) = run_layer(layer.as_ref(), x.clone(), &params, Mode::Train, 0);
    let (a, b) = (1.0 / (1.0f64 + 1e-3).sqrt(), 2.0 / (4.0f64 + 1e-3).sqrt());
    assert_close(&y.to_vec(), &[-a, -2.0 * b + 0.5, a, 2.0 * b + 0.5], 1e-15);
    // Moving statistics: 0.99·old + 0.01·batch (biased variance, as Keras).
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].0, "layers.0.moving_mean");
    assert_eq!(updates[1].0, "layers.0.moving_variance");
    assert_close(&updates[0].1.to_vec(), &[0.02, 0.04], 1e-15);
    assert_close(&updates[1].1.to_vec(), &[1.0, 1.03], 1e-15);
    // Evaluation uses the moving statistics: y = γ·(x − m)/√(v + ε) + β.
    let params = [gamma, beta, updates[0].1.clone(), updates[1].1.clone()];
    let (y, updates) = run_layer(layer.as_ref(), x, &params, Mode::Eval, 0);
    assert!(updates.is_empty());
    let want = [
        (1.0 - 0.02) / (1.0f64 + 1e-3).sqrt(),
        2.0 * (2.0 - 0.04) / (1.03f64 + 1e-3).sqrt() + 0.5,
        (3.0 - 0.02) / (1.0f64 + 1e-3).sqrt(),
        2.0 * (6.0 - 0.04) / (1.03f64 + 1e-3).sqrt() + 0.5,
    ];
    assert_close(&y.to_vec(), &want, 1e-14);
}

#[test]
fn batch_norm_nhwc_normalises_over_batch_height_width() {
    // [batch 2, 1, 2, channels 2]: channel 0 holds 0, 2, 4, 6 (mean 3, biased variance 5),
    // channel 1 holds 1, 1, 1, 1 (variance 0 → output 0). No scale or centre.
    let spec = LayerSpec::BatchNormalization(BatchNormConfig::default().with_center(false).with_scale(false));
    let layer = spec.build::<f64>(5, &[1, 2, 2]).unwrap();
    assert_eq!(layer.param_specs().len(), 2);
    let x = Tensor::<f64>::from_vec(&[2, 1, 2, 2], vec![0., 1., 2., 1., 4., 1., 6., 1.]);
    let (y, updates) = run_layer(layer.as_ref(), x, &[Tensor::zeros(&[2]), Tensor::ones(&[2])], Mode::Train, 0);
    let s = (5.0f64 + 1e-3).sqrt();
    assert_close(&y.to_vec(), &[-3.0 / s, 0., -1.0 / s, 0., 1.0 / s, 0., 3.0 / s, 0.], 1e-15);
    assert_eq!(updates[0].0, "layers.5.moving_mean");
    assert_close(&updates[0].1.to_vec(), &[0.03, 0.01], 1e-15);
    assert_close(&updates[1].1.to_vec(), &[0.99 + 0.05, 0.99], 1e-15);
}

#[test]
fn activation_layers() {
    let x = Tensor::<f64>::from_vec(&[1, 4], vec![-2., -0.5, 0., 1.5]);
    let run = |spec: LayerSpec| {
        let layer = spec.build::<f64>(0, &[4]).unwrap();
        run_layer(layer.as_ref(), x.clone(), &[], Mode::Eval, 0).0.to_vec()
    };
    assert_eq!(run(LayerSpec::ReLU), [0., 0., 0., 1.5]);
    // Keras's LeakyReLU layer default slope is 0.3; the "leaky_relu" activation's is 0.2.
    assert_eq!(run(LayerSpec::LeakyReLU(LeakyReluConfig::default())), [-0.6, -0.15, 0., 1.5]);
    assert_eq!(run(LayerSpec::activation(Activation::LeakyRelu)), [-0.4, -0.1, 0., 1.5]);
    let elu = run(LayerSpec::ELU(EluConfig { alpha: 2.0 }));
    assert_close(&elu, &[2.0 * ((-2.0f64).exp() - 1.0), 2.0 * ((-0.5f64).exp() - 1.0), 0., 1.5], 1e-15);
    let sig = run(LayerSpec::activation(Activation::Sigmoid));
    assert_close(&sig, &x.to_vec().iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect::<Vec<_>>(), 1e-15);
    let tanh = run(LayerSpec::activation(Activation::Tanh));
    assert_close(&tanh, &x.to_vec().iter().map(|v| v.tanh()).collect::<Vec<_>>(), 1e-15);
    assert_eq!(run(LayerSpec::activation(Activation::Linear)), x.to_vec());
    // softmax([0, ln 3]) = [1/4, 3/4], per row.
    let layer = LayerSpec::Softmax.build::<f64>(0, &[2]).unwrap();
    let y = run_layer(layer.as_ref(), Tensor::from_vec(&[2, 2], vec![0., 3f64.ln(), 5., 5.]), &[], Mode::Eval, 0).0;
    assert_close(&y.to_vec(), &[0.25, 0.75, 0.5, 0.5], 1e-15);
}

#[test]
fn embedding_looks_up_rows_and_rejects_bad_indices() {
    let layer = LayerSpec::Embedding(EmbeddingConfig::new(3, 2)).build::<f64>(0, &[2]).unwrap();
    assert_eq!(layer.output_shape(), [2, 2]);
    let table = Tensor::from_vec(&[3, 2], vec![0., 1., 10., 11., 20., 21.]);
    let x = Tensor::from_vec(&[2, 2], vec![2., 0., 1., 1.]);
    let (y, _) = run_layer(layer.as_ref(), x, std::slice::from_ref(&table), Mode::Eval, 0);
    assert_eq!(y.shape(), [2, 2, 2]);
    assert_eq!(y.to_vec(), [20., 21., 0., 1., 10., 11., 10., 11.]);
    for bad in [3.0, -1.0, 0.5, f64::NAN] {
        let mut g = Graph::<f64>::no_grad();
        let xv = g.input(Tensor::from_vec(&[1, 2], vec![0., bad]));
        let t = g.constant(&table);
        let mut rng = seeded_rng(0);
        let err = layer.forward(&mut g, xv, &[t], &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("at [0, 1]") && text.contains("[0, 3)"), "{text}");
    }
}

/// Training-mode batch normalization over several blocks of rows (the statistics and
/// the gradient sums are formed block by block on nn's pool): `[64, 9, 9, 8]` is
/// 5,184 rows of 8 features, three blocks of at most 2,048 rows. In f64 the output
/// and every gradient match the formulas evaluated row by row (`y = γ·x̂ + β`,
/// `∂x = γ·s·(g − mean g − x̂·mean(g·x̂))`, `∂γ = Σ g·x̂`, `∂β = Σ g`); in f32 they
/// are the same bits on 1, 2 and 3 threads.
#[test]
fn batch_norm_over_many_blocks_matches_the_formula_at_any_thread_count() {
    use nn_autograd::Graph;
    use nn_layers::layers::batch_norm_train;
    let (shape, c, eps) = ([64usize, 9, 9, 8], 8usize, 1e-3);
    let draw = |shape: &[usize], lo: f64, hi: f64, seed: u64| {
        Tensor::<f64>::random_uniform(shape, lo, hi, &mut seeded_rng(seed)).unwrap()
    };
    let (x, gamma, beta, seed) =
        (draw(&shape, -2.0, 3.0, 1), draw(&[c], 0.5, 1.5, 2), draw(&[c], -0.5, 0.5, 3), draw(&shape, -1.0, 1.0, 4));

    let mut g = Graph::<f64>::new();
    let (xv, gv, bv) = (g.variable(x.clone()), g.param("gamma", gamma.clone()), g.param("beta", beta.clone()));
    let (y, mean, var) = batch_norm_train(&mut g, xv, Some(gv), Some(bv), eps).unwrap();
    let got_y = g.value(y).to_vec();
    let grads = g.backward_with_seed(y, seed.clone()).unwrap();

    let (xs, gs, gm, bt) = (x.to_vec(), seed.to_vec(), gamma.to_vec(), beta.to_vec());
    let m = xs.len() / c;
    let col = |v: &[f64], k: usize| v.iter().skip(k).step_by(c).copied().collect::<Vec<f64>>();
    let (mut want_y, mut want_dx) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
    for k in 0..c {
        let (xk, gk) = (col(&xs, k), col(&gs, k));
        let mu = xk.iter().sum::<f64>() / m as f64;
        let v = xk.iter().map(|a| (a - mu) * (a - mu)).sum::<f64>() / m as f64;
        assert!((mean.to_vec()[k] - mu).abs() < 1e-13 && (var.to_vec()[k] - v).abs() < 1e-12, "feature {k}");
        let s = 1.0 / (v + eps).sqrt();
        let xhat: Vec<f64> = xk.iter().map(|a| (a - mu) * s).collect();
        let mean_g = gk.iter().sum::<f64>() / m as f64;
        let mean_gx = gk.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / m as f64;
        for r in 0..m {
            want_y[r * c + k] = gm[k] * xhat[r] + bt[k];
            want_dx[r * c + k] = gm[k] * s * (gk[r] - mean_g - xhat[r] * mean_gx);
        }
        let dgamma = gk.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>();
        assert!((grads.wrt(gv).unwrap().to_vec()[k] - dgamma).abs() < 1e-9, "∂γ of feature {k}");
        assert!((grads.wrt(bv).unwrap().to_vec()[k] - gk.iter().sum::<f64>()).abs() < 1e-9, "∂β of feature {k}");
    }
    assert_close(&got_y, &want_y, 1e-12);
    assert_close(&grads.wrt(xv).unwrap().to_vec(), &want_dx, 1e-12);

    let f32s = |t: &Tensor<f64>| Tensor::<f32>::from_vec(t.shape(), t.to_vec().iter().map(|&v| v as f32).collect());
    let bits = |threads: usize| -> Vec<u32> {
        nn_tensor::set_num_threads(threads);
        let mut g = Graph::<f32>::new();
        let (xv, gv, bv) = (g.variable(f32s(&x)), g.param("gamma", f32s(&gamma)), g.param("beta", f32s(&beta)));
        let (y, mean, var) = batch_norm_train(&mut g, xv, Some(gv), Some(bv), eps).unwrap();
        let mut out: Vec<u32> =
            g.value(y).to_vec().iter().chain(&mean.to_vec()).chain(&var.to_vec()).map(|v| v.to_bits()).collect();
        let grads = g.backward_with_seed(y, f32s(&seed)).unwrap();
        for v in [xv, gv, bv] {
            out.extend(grads.wrt(v).unwrap().to_vec().iter().map(|v| v.to_bits()));
        }
        out
    };
    let one = bits(1);
    assert!(one == bits(2) && one == bits(3));
    nn_tensor::set_num_threads(0);
}
