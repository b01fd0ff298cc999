//! Small cases computed by hand: forward values and gradients, each with its formula.

use nn_autograd::{AutogradError, Graph, Padding, Reduction, Tensor};

fn t64(shape: &[usize], v: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(shape, v.to_vec())
}

#[test]
fn bias_broadcast_over_a_batch() {
    // y = x + b with x [3, 2], b [2]; L = Σ c ⊙ y.
    // ∂L/∂b_j = Σ_i c_ij (the bias is read by every batch row), ∂L/∂x = c.
    let mut g = Graph::<f64>::new();
    let x = g.variable(t64(&[3, 2], &[1., 2., 3., 4., 5., 6.]));
    let b = g.param("bias", t64(&[2], &[10., 20.]));
    let c = g.constant(t64(&[3, 2], &[1., -1., 2., 0.5, -3., 4.]));
    let y = g.add(x, b);
    assert_eq!(g.value(y).to_vec(), vec![11., 22., 13., 24., 15., 26.]);
    let cy = g.mul(c, y);
    let loss = g.sum(cy);
    // 11 − 22 + 26 + 12 − 45 + 104 = 86
    assert_eq!(g.value(loss).item(), 86.);
    let grads = g.backward(loss).unwrap();
    // [1 + 2 − 3, −1 + 0.5 + 4]
    assert_eq!(grads.get("bias").unwrap().to_vec(), vec![0., 3.5]);
    assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![1., -1., 2., 0.5, -3., 4.]);
}

#[test]
fn linear_bias_and_kernel_gradients() {
    // y = x·W + b, x [2, 3], W [3, 2]; L = Σ y.
    // ∂L/∂b_j = batch = 2; ∂L/∂W_ij = Σ_n x_ni; ∂L/∂x_ni = Σ_j W_ij.
    let mut g = Graph::<f64>::new();
    let x = g.variable(t64(&[2, 3], &[1., 2., 3., 4., 5., 6.]));
    let w = g.param("kernel", t64(&[3, 2], &[1., 0., 0., 1., 1., -1.]));
    let b = g.param("bias", t64(&[2], &[0.5, -0.5]));
    let y = g.linear(x, w, Some(b));
    // row 0: [1 + 3, 2 − 3] + b = [4.5, −1.5]; row 1: [4 + 6, 5 − 6] + b = [10.5, −1.5]
    assert_eq!(g.value(y).to_vec(), vec![4.5, -1.5, 10.5, -1.5]);
    let loss = g.sum(y);
    let grads = g.backward(loss).unwrap();
    assert_eq!(grads.get("bias").unwrap().to_vec(), vec![2., 2.]);
    assert_eq!(grads.get("kernel").unwrap().to_vec(), vec![5., 5., 7., 7., 9., 9.]);
    assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![1., 1., 0., 1., 1., 0.]);
    assert_eq!(grads.names().collect::<Vec<_>>(), vec!["kernel", "bias"]);
}

#[test]
fn max_pool_ties_route_to_the_first_element_of_each_window() {
    // A 3×3 image of equal values, 2×2 windows, stride 1: four overlapping windows,
    // each a four-way tie. Each window sends its gradient to its own first element in
    // row-major order: window (r, c) → pixel (r, c).
    let mut g = Graph::<f64>::new();
    let x = g.variable(Tensor::ones(&[1, 3, 3, 1]));
    let y = g.max_pool2d(x, (2, 2), (1, 1), Padding::Valid);
    assert_eq!(g.value(y).to_vec(), vec![1.; 4]);
    let grads = g.backward_with_seed(y, t64(&[1, 2, 2, 1], &[1., 2., 3., 4.])).unwrap();
    assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![1., 2., 0., 3., 4., 0., 0., 0., 0.]);
}

#[test]
fn max_pool_element_shared_by_overlapping_windows_gets_every_gradient() {
    // The centre 9 is the maximum of all four 2×2 windows (stride 1), so it receives
    // the sum of their gradients: 1 + 2 + 3 + 4 = 10.
    let mut g = Graph::<f64>::new();
    let x = g.variable(t64(&[1, 3, 3, 1], &[0., 1., 0., 2., 9., 3., 0., 4., 0.]));
    let y = g.max_pool2d(x, (2, 2), (1, 1), Padding::Valid);
    assert_eq!(g.value(y).to_vec(), vec![9.; 4]);
    let grads = g.backward_with_seed(y, t64(&[1, 2, 2, 1], &[1., 2., 3., 4.])).unwrap();
    assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![0., 0., 0., 0., 10., 0., 0., 0., 0.]);
}

#[test]
fn max_pool_channels_are_independent_and_padding_never_wins() {
    // Two channels; 'same' 2×2 windows at stride 1 over a 2×2 image pad one row and
    // column at the bottom/right. Channel 0 is all negative: a zero from padding would
    // win if padding counted, but outputs are maxima of real pixels only:
    // (0,0): max(−1,−2,−3,−4) = −1, (0,1): max(−2,−4) = −2, (1,0): max(−3,−4) = −3, (1,1): −4.
    // Channel 1 is a tie of 5s: windows route to their first real pixel, (r, c).
    let x_vals = [-1., 5., -2., 5., -3., 5., -4., 5.];
    let mut g = Graph::<f64>::new();
    let x = g.variable(t64(&[1, 2, 2, 2], &x_vals));
    let y = g.max_pool2d(x, (2, 2), (1, 1), Padding::Same);
    assert_eq!(g.value(y).to_vec(), vec![-1., 5., -2., 5., -3., 5., -4., 5.]);
    let grads = g.backward_with_seed(y, Tensor::ones(&[1, 2, 2, 2])).unwrap();
    assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![1.; 8]);
}

#[test]
fn avg_pool_same_padding_divides_by_real_pixels() {
    // x = [[1, 2], [3, 4]], 2×2 windows, stride 1, 'same' (padding bottom/right):
    // (0,0) = (1+2+3+4)/4 = 2.5, (0,1) = (2+4)/2 = 3, (1,0) = (3+4)/2 = 3.5, (1,1) = 4.
    // ∂/∂x: (0,0) ∈ window (0,0) → 1/4; (0,1) ∈ (0,0),(0,1) → 1/4 + 1/2; (1,0) likewise;
    // (1,1) ∈ all four → 1/4 + 1/2 + 1/2 + 1 = 2.25.
    let mut g = Graph::<f64>::new();
    let x = g.variable(t64(&[1, 2, 2, 1], &[1., 2., 3., 4.]));
    let y = g.avg_pool2d(x, (2, 2), (1, 1), Padding::Same);
    assert_eq!(g.value(y).to_vec(), vec![2.5, 3., 3.5, 4.]);
    let loss = g.sum(y);
    let grads = g.backward(loss).unwrap();
    assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![0.25, 0.75, 0.75, 2.25]);
}

#[test]
fn conv2d_by_hand() {
    // x = 1..9 as a 3×3 image, kernel [[1, 0], [0, −1]], bias 0.5, stride 1, valid:
    // y(i,j) = x(i,j) − x(i+1,j+1) + 0.5 = −4 + 0.5 for every window.
    // With L = Σ y: ∂L/∂K(a,b) = Σ_windows x(i+a, j+b): (0,0) 1+2+4+5 = 12, (0,1) 16,
    // (1,0) 24, (1,1) 28; ∂L/∂bias = 4 windows; ∂L/∂x(p,q) = Σ_{windows covering
    // (p,q)} K(p−i, q−j) = [[1, 1, 0], [1, 0, −1], [0, −1, −1]].
    let mut g = Graph::<f64>::new();
    let x = g.variable(t64(&[1, 3, 3, 1], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]));
    let k = g.param("kernel", t64(&[2, 2, 1, 1], &[1., 0., 0., -1.]));
    let b = g.param("bias", t64(&[1], &[0.5]));
    let y = g.conv2d(x, k, Some(b), (1, 1), Padding::Valid);
    assert_eq!(g.shape(y), &[1, 2, 2, 1]);
    assert_eq!(g.value(y).to_vec(), vec![-3.5; 4]);
    let loss = g.sum(y);
    let grads = g.backward(loss).unwrap();
    assert_eq!(grads.get("kernel").unwrap().to_vec(), vec![12., 16., 24., 28.]);
    assert_eq!(grads.get("bias").unwrap().to_vec(), vec![4.]);
    assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![1., 1., 0., 1., 0., -1., 0., -1., -1.]);
}

#[test]
fn conv2d_same_padding_and_stride_two_by_hand() {
    // 1×3×3×1 image 1..9, 3×3 kernel of ones, stride 2, 'same': out = ceil(3/2) = 2,
    // total padding (2−1)·2 + 3 − 3 = 2 → one row/column each side. Window (i, j) is
    // centred on pixel (2i, 2j): (0,0) → 1+2+4+5 = 12, (0,1) → 2+3+5+6 = 16,
    // (1,0) → 4+5+7+8 = 24, (1,1) → 5+6+8+9 = 28.
    let mut g = Graph::<f64>::new();
    let x = g.input(t64(&[1, 3, 3, 1], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]));
    let k = g.param("k", Tensor::ones(&[3, 3, 1, 1]));
    let y = g.conv2d(x, k, None, (2, 2), Padding::Same);
    assert_eq!(g.value(y).to_vec(), vec![12., 16., 24., 28.]);
    // ∂L/∂K(a,b) for L = Σ y: Σ over windows (i, j) of pixel (2i + a − 1, 2j + b − 1),
    // zero where it falls in the padding. Each corner offset reaches the image from one
    // window only, at the centre pixel 5 (K(0,0) from window (1,1), K(0,2) from window
    // (1,0)); edge offsets reach two pixels (K(0,1): 4 + 6 from windows (1,0), (1,1);
    // K(1,0): 2 + 8); the centre offset reaches the four corners 1 + 3 + 7 + 9 = 20.
    let loss = g.sum(y);
    let grads = g.backward(loss).unwrap();
    assert_eq!(grads.get("k").unwrap().to_vec(), vec![5., 4. + 6., 5., 2. + 8., 20., 2. + 8., 5., 4. + 6., 5.]);
}

#[test]
fn cross_entropy_with_logits_of_magnitude_1e8_is_finite_and_exact() {
    // Row 0: logits [1e8, 0, −1e8], target 0. log_softmax = x − 1e8 − ln(1 + e^−1e8 + e^−2e8)
    //   = [0, −1e8, −2e8] exactly (the ln term is ln 1 = 0 in floating point) → ℓ₀ = 0.
    // Row 1: logits [0, 1e8, 0], target 0: log_softmax[0] = 0 − 1e8 − ln(1 + 2e^−1e8) = −1e8 → ℓ₁ = 1e8.
    // Mean: (0 + 1e8) / 2 = 5e7. Gradient: (softmax − onehot) / batch:
    //   row 0: ([1, 0, 0] − [1, 0, 0]) / 2 = 0; row 1: ([0, 1, 0] − [1, 0, 0]) / 2 = [−0.5, 0.5, 0].
    // 1e8 = 2⁸·390625 is exact in f32 too.
    fn run<T: nn_autograd::Element>() {
        let c = T::of_f64;
        let mut g = Graph::<T>::new();
        let logits = g.param("logits", Tensor::from_vec(&[2, 3], [1e8, 0., -1e8, 0., 1e8, 0.].map(c).to_vec()));
        let loss = g.cross_entropy(logits, &[0, 0]);
        assert_eq!(g.value(loss).item(), c(5e7));
        let grads = g.backward(loss).unwrap();
        assert_eq!(grads.get("logits").unwrap().to_vec(), [0., 0., 0., -0.5, 0.5, 0.].map(c).to_vec());
        // Per-sample losses and weights: ℓ = [0, 1e8]; weighted sum 2·0 + 0.5·1e8 = 5e7.
        let per = g.cross_entropy_with(logits, &[0, 0], None, Reduction::Unreduced);
        assert_eq!(g.value(per).to_vec(), vec![c(0.), c(1e8)]);
        let weights = [c(2.), c(0.5)];
        let sum = g.cross_entropy_with(logits, &[0, 0], Some(&weights), Reduction::Sum);
        assert_eq!(g.value(sum).item(), c(5e7));
    }
    run::<f32>();
    run::<f64>();
}

#[test]
fn cross_entropy_of_moderate_logits_by_formula() {
    // logits [1, 2, 3], target 2: ℓ = ln(e¹ + e² + e³) − 3 = ln(1 + e⁻¹ + e⁻²);
    // ∂ℓ/∂x_j = softmax_j − [j = 2].
    let mut g = Graph::<f64>::new();
    let x = g.variable(t64(&[1, 3], &[1., 2., 3.]));
    let loss = g.cross_entropy(x, &[2]);
    let z = 1.0 + (-1f64).exp() + (-2f64).exp();
    assert!((g.value(loss).item() - z.ln()).abs() < 1e-15);
    let grads = g.backward(loss).unwrap();
    let want = [(-2f64).exp() / z, (-1f64).exp() / z, 1.0 / z - 1.0];
    for (a, b) in grads.wrt(x).unwrap().to_vec().iter().zip(want) {
        assert!((a - b).abs() < 1e-15, "{a} vs {b}");
    }
}

#[test]
fn cross_entropy_rejects_bad_targets() {
    let mut g = Graph::<f32>::new();
    let x = g.input(Tensor::zeros(&[2, 3]));
    let err = g.try_cross_entropy(x, &[0, 3]).unwrap_err();
    assert_eq!(err, AutogradError::TargetOutOfRange { op: "cross_entropy", row: 1, target: 3, classes: 3 });
    assert_eq!(err.to_string(), "cross_entropy: target class 3 of batch row 1 is out of range for 3 classes");
    let err = g.try_cross_entropy(x, &[0]).unwrap_err();
    assert!(matches!(err, AutogradError::ShapeMismatch { .. }), "{err}");
    let v = g.input(Tensor::zeros(&[3]));
    assert!(g.try_cross_entropy(v, &[0, 0, 0]).is_err());
}

#[test]
fn sigmoid_of_plus_minus_1000_has_zero_gradient_not_nan() {
    // σ(−1000) = 0 and σ(1000) = 1 exactly, so σ' = σ(1 − σ) = 0; σ(0) = 1/2, σ'(0) = 1/4.
    fn run<T: nn_autograd::Element>() {
        let c = T::of_f64;
        let mut g = Graph::<T>::new();
        let x = g.variable(Tensor::from_vec(&[3], vec![c(-1000.), c(0.), c(1000.)]));
        let y = g.sigmoid(x);
        assert_eq!(g.value(y).to_vec(), vec![c(0.), c(0.5), c(1.)]);
        let s = g.sum(y);
        let grads = g.backward(s).unwrap();
        assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![c(0.), c(0.25), c(0.)]);
        // Softplus and tanh stay finite too: softplus(±1000) = 1000, 0; tanh' = 0.
        let sp = g.softplus(x);
        assert_eq!(g.value(sp).to_vec(), vec![c(0.), c(2f64.ln()), c(1000.)]);
        let t = g.tanh(x);
        let st = g.sum(t);
        assert_eq!(g.backward(st).unwrap().wrt(x).unwrap().to_vec(), vec![c(0.), c(1.), c(0.)]);
    }
    run::<f32>();
    run::<f64>();
}

#[test]
fn conventions_at_kinks() {
    // relu'(0) = 0, |x|'(0) = 0, leaky_relu'(0) = α, elu'(0) = α, clamp passes at its bounds.
    let mut g = Graph::<f64>::new();
    let x = g.variable(t64(&[3], &[-1., 0., 1.]));
    type Op = Box<dyn Fn(&mut Graph<f64>) -> nn_autograd::Var>;
    let cases: Vec<(&str, Op, Vec<f64>)> = vec![
        ("relu", Box::new(move |g| g.relu(x)), vec![0., 0., 1.]),
        ("abs", Box::new(move |g| g.abs(x)), vec![-1., 0., 1.]),
        ("leaky_relu", Box::new(move |g| g.leaky_relu(x, 0.1)), vec![0.1, 0.1, 1.]),
        ("elu", Box::new(move |g| g.elu(x, 0.5)), vec![0.5 * (-1f64).exp(), 0.5, 1.]),
        ("clamp", Box::new(move |g| g.clamp(x, -1., 0.)), vec![1., 1., 0.]),
    ];
    for (name, f, want) in cases {
        let y = f(&mut g);
        let s = g.sum(y);
        let got = g.backward(s).unwrap().wrt(x).unwrap().to_vec();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn max_axis_ties_go_to_the_first_element() {
    // Row 0: max 3 at columns 0 and 2 → column 0. Row 1: all 2 → column 0.
    let mut g = Graph::<f64>::new();
    let x = g.variable(t64(&[2, 3], &[3., 1., 3., 2., 2., 2.]));
    let m = g.max_axis(x, 1, false);
    assert_eq!(g.value(m).to_vec(), vec![3., 2.]);
    let grads = g.backward_with_seed(m, t64(&[2], &[5., 7.])).unwrap();
    assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![5., 0., 0., 7., 0., 0.]);
    // Along axis 0 with keepdims: column maxima [3, 2, 3] from row 0, 1, 0.
    let m0 = g.max_axis(x, 0, true);
    assert_eq!(g.shape(m0), &[1, 3]);
    let grads = g.backward_with_seed(m0, t64(&[1, 3], &[1., 1., 1.])).unwrap();
    assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![1., 0., 1., 0., 1., 0.]);
}

#[test]
fn bce_from_logits_is_stable_for_large_logits() {
    // ℓ = max(x, 0) − x·y + ln(1 + e^−|x|), x = [1000, −1000, 0], y = [0, 1, 0.5]:
    // ℓ = [1000, 1000, ln 2]; mean = (2000 + ln 2)/3. ∂ℓ/∂x = (σ(x) − y)/3 = [1/3, −1/3, 0].
    let mut g = Graph::<f64>::new();
    let x = g.variable(t64(&[3], &[1000., -1000., 0.]));
    let y = g.input(t64(&[3], &[0., 1., 0.5]));
    let loss = g.binary_cross_entropy_with_logits(x, y);
    assert_eq!(g.value(loss).item(), (2000. + 2f64.ln()) / 3.);
    let grads = g.backward(loss).unwrap();
    assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![1. / 3., -1. / 3., 0.]);
    // Correct predictions at ±1000 cost exactly 0.
    let y2 = g.input(t64(&[3], &[1., 0., 0.5]));
    let per = g.binary_cross_entropy_with_logits_with(x, y2, Reduction::Unreduced);
    assert_eq!(g.value(per).to_vec(), vec![0., 0., 2f64.ln()]);
}

#[test]
fn mse_by_hand() {
    // p = [1, 2, 3], t = [1, 0, 5]: mean((p − t)²) = (0 + 4 + 4)/3; ∂/∂p = 2(p − t)/3, ∂/∂t = −∂/∂p.
    let mut g = Graph::<f64>::new();
    let p = g.variable(t64(&[3], &[1., 2., 3.]));
    let t = g.variable(t64(&[3], &[1., 0., 5.]));
    let loss = g.mse(p, t);
    assert_eq!(g.value(loss).item(), 8. / 3.);
    let grads = g.backward(loss).unwrap();
    assert_eq!(grads.wrt(p).unwrap().to_vec(), vec![0., 4. / 3., -4. / 3.]);
    assert_eq!(grads.wrt(t).unwrap().to_vec(), vec![0., -4. / 3., 4. / 3.]);
    let bad = g.variable(t64(&[3, 1], &[1., 0., 5.]));
    assert!(matches!(g.try_mse(p, bad), Err(AutogradError::ShapeMismatch { .. })));
}

#[test]
fn dropout_scales_kept_units() {
    // rate 0.5 → kept units ×2: y = [1·2, 0, 3·2, 0]; ∂y/∂x = mask·2.
    let mut g = Graph::<f64>::new();
    let x = g.variable(t64(&[4], &[1., 2., 3., 4.]));
    let y = g.dropout(x, t64(&[4], &[1., 0., 1., 0.]), 0.5);
    assert_eq!(g.value(y).to_vec(), vec![2., 0., 6., 0.]);
    let s = g.sum(y);
    assert_eq!(g.backward(s).unwrap().wrt(x).unwrap().to_vec(), vec![2., 0., 2., 0.]);
    assert!(g.try_dropout(x, Tensor::ones(&[4]), 1.0).is_err());
    assert!(g.try_dropout(x, Tensor::ones(&[4]), -0.1).is_err());
    let err = g.try_dropout(x, t64(&[4], &[1., 0.5, 1., 1.]), 0.5).unwrap_err();
    assert_eq!(err.to_string(), "dropout: mask entry 0.5 at [1] is neither 0 nor 1");
    assert!(matches!(g.try_dropout(x, Tensor::ones(&[3]), 0.5), Err(AutogradError::ShapeMismatch { .. })));
}

#[test]
fn gradients_accumulate_over_every_use() {
    // L = Σ x² + Σ 2x + mean(x) ⇒ ∂L/∂x = 2x + 2 + 1/n.
    let mut g = Graph::<f64>::new();
    let x = g.variable(t64(&[4], &[-1., 0., 1., 2.]));
    let sq = g.mul(x, x);
    let a = g.sum(sq);
    let x2 = g.mul_scalar(x, 2.);
    let b = g.sum(x2);
    let c = g.mean(x);
    let ab = g.add(a, b);
    let loss = g.add(ab, c);
    let grads = g.backward(loss).unwrap();
    assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![0.25, 2.25, 4.25, 6.25]);
}

#[test]
fn shape_ops_move_gradients_back_into_place() {
    // gather_rows with a repeated row: row 0 picked twice gets 2 gradients.
    let mut g = Graph::<f64>::new();
    let table = g.param("embedding", t64(&[3, 2], &[1., 2., 3., 4., 5., 6.]));
    let rows = g.gather_rows(table, &[0, 2, 0]);
    assert_eq!(g.value(rows).to_vec(), vec![1., 2., 5., 6., 1., 2.]);
    let grads = g.backward_with_seed(rows, t64(&[3, 2], &[1., 1., 10., 10., 100., 100.])).unwrap();
    assert_eq!(grads.get("embedding").unwrap().to_vec(), vec![101., 101., 0., 0., 10., 10.]);

    // concat then slice back: the slice's gradient lands in the right input.
    let a = g.variable(t64(&[1, 2], &[1., 2.]));
    let b = g.variable(t64(&[2, 2], &[3., 4., 5., 6.]));
    let ab = g.concat(&[a, b], 0);
    let mid = g.slice(ab, 0, 1, 2); // = b's first row
    assert_eq!(g.value(mid).to_vec(), vec![3., 4.]);
    let s = g.sum(mid);
    let grads = g.backward(s).unwrap();
    assert_eq!(grads.wrt(a).unwrap().to_vec(), vec![0., 0.]);
    assert_eq!(grads.wrt(b).unwrap().to_vec(), vec![1., 1., 0., 0.]);

    // permute: y[i, j] = x[j, i]; the seed goes back transposed.
    let x = g.variable(t64(&[2, 3], &[1., 2., 3., 4., 5., 6.]));
    let y = g.transpose(x);
    assert_eq!(g.value(y).to_vec(), vec![1., 4., 2., 5., 3., 6.]);
    let grads = g.backward_with_seed(y, t64(&[3, 2], &[1., 2., 3., 4., 5., 6.])).unwrap();
    assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![1., 3., 5., 2., 4., 6.]);
}

#[test]
fn errors_name_the_op_and_the_shapes() {
    let mut g = Graph::<f32>::new();
    let x = g.input(Tensor::zeros(&[2, 3]));
    let w = g.param("w", Tensor::zeros(&[4, 5]));
    let err = g.try_linear(x, w, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "linear: incompatible shapes [2, 3] and [4, 5] (x's last axis equal to the kernel's in_features (axis 0))"
    );
    let err = g.try_matmul(x, w).unwrap_err();
    assert_eq!(err.to_string(), "matmul: incompatible shapes [2, 3] and [4, 5]");
    let err = g.try_add(x, w).unwrap_err();
    assert_eq!(err.to_string(), "add: incompatible shapes [2, 3] and [4, 5]");
    let img = g.input(Tensor::zeros(&[1, 5, 5, 3]));
    let k = g.param("k", Tensor::zeros(&[3, 3, 2, 4]));
    let err = g.try_conv2d(img, k, None, (1, 1), Padding::Valid).unwrap_err();
    assert!(err.to_string().starts_with("conv2d: incompatible shapes [1, 5, 5, 3] and [3, 3, 2, 4]"), "{err}");
    let err = g.try_conv2d(x, k, None, (1, 1), Padding::Valid).unwrap_err();
    assert_eq!(err.to_string(), "conv2d: expected a 4-d tensor, got shape [2, 3]");
    let k3 = g.param("k3", Tensor::zeros(&[7, 7, 3, 1]));
    assert!(g.try_conv2d(img, k3, None, (1, 1), Padding::Valid).is_err());
    assert!(g.try_conv2d(img, k3, None, (0, 1), Padding::Same).is_err());
    let pad = Padding::Explicit { top: 2, bottom: 0, left: 0, right: 0 };
    assert!(matches!(g.try_max_pool2d(img, (2, 2), (1, 1), pad), Err(AutogradError::InvalidArgument { .. })));
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.add(x, w))).unwrap_err();
    assert_eq!(err.downcast_ref::<String>().unwrap(), "add: incompatible shapes [2, 3] and [4, 5]");
}

/// Logits `[2, 3, 4]` (a batch of sequences) are 6 rows of 4 classes: the same loss
/// and the same gradient, bit for bit, as the reshaped `[6, 4]`, for every reduction
/// and with sample weights; the gradient keeps the logits' shape.
#[test]
fn cross_entropy_takes_leading_axes_as_rows() {
    let vals: Vec<f64> = (0..24).map(|i| ((i * 7) % 11) as f64 * 0.3 - 1.4).collect();
    let targets = [3, 0, 2, 1, 1, 0];
    let weights = [1.0, 0.5, 2.0, 1.0, 0.0, 3.0];
    for (w, reduction) in [
        (None, Reduction::Mean),
        (None, Reduction::Sum),
        (Some(&weights[..]), Reduction::Mean),
        (None, Reduction::Unreduced),
    ] {
        let run = |shape: &[usize]| {
            let mut g = Graph::<f64>::new();
            let x = g.variable(Tensor::from_vec(shape, vals.clone()));
            let l = g.try_cross_entropy_with(x, &targets, w, reduction).unwrap();
            let loss = g.value(l).to_vec();
            let s = g.sum(l);
            let grad = g.backward(s).unwrap().wrt(x).unwrap().clone();
            (loss, grad)
        };
        let (l3, g3) = run(&[2, 3, 4]);
        let (l2, g2) = run(&[6, 4]);
        assert_eq!(l3, l2, "{reduction:?}");
        assert_eq!(g3.shape(), &[2, 3, 4]);
        assert_eq!(g3.to_vec(), g2.to_vec(), "{reduction:?}");
    }
    // Row 0 by hand: −log_softmax(x₀)[3].
    let row: Vec<f64> = vals[..4].to_vec();
    let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
    let mut g = Graph::<f64>::new();
    let x = g.input(Tensor::from_vec(&[2, 3, 4], vals.clone()));
    let l = g.try_cross_entropy_with(x, &targets, None, Reduction::Unreduced).unwrap();
    assert!((g.value(l).to_vec()[0] - (lse - row[3])).abs() < 1e-15);
}
