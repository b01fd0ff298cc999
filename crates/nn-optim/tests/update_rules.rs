//! Each optimizer's update rule, checked over three steps on a 2-element parameter
//! with fixed gradients against values worked out here from the published rule
//! (formula written next to each reference); the ε-placement and bias-correction
//! cases; penalties versus decoupled weight decay; per-parameter settings and errors.

use nn_optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, OptimError, Optimizer, ParamKind, ParamMut, ParamRules, ParamSelector,
    Regularizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use nn_tensor::{Element, Tensor};

const THETA0: [f64; 2] = [1.0, -2.0];
const GRADS: [[f64; 2]; 3] = [[0.5, -1.0], [0.3, 0.2], [-0.1, 0.4]];

/// Runs `opt` on the parameter `name` from `theta0` with the given gradients and
/// returns θ after each step, as f64.
fn trajectory<T: Element>(
    opt: &mut dyn Optimizer<T>,
    name: &str,
    theta0: [f64; 2],
    grads: &[[f64; 2]],
) -> Vec<[f64; 2]> {
    let mut theta = Tensor::<T>::from_f64_slice(&[2], &theta0).unwrap();
    let mut out = Vec::new();
    for g in grads {
        let mut grad = Tensor::<T>::from_f64_slice(&[2], g).unwrap();
        opt.step(&mut [ParamMut::new(name, &mut theta, &mut grad)]).unwrap();
        let v = theta.to_vec();
        out.push([v[0].as_f64(), v[1].as_f64()]);
    }
    out
}

/// Asserts `got` and `want` agree to `rel` relative to max(|want|, 1).
fn assert_close(got: &[[f64; 2]], want: &[[f64; 2]], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len());
    for (t, (g, w)) in got.iter().zip(want).enumerate() {
        for i in 0..2 {
            let tol = rel * w[i].abs().max(1.0);
            assert!((g[i] - w[i]).abs() <= tol, "{what}: step {}, element {i}: got {}, want {}", t + 1, g[i], w[i]);
        }
    }
}

/// Checks an optimizer (built for f64 and f32 by `make`) against a reference
/// trajectory: f64 to 1e-14, f32 to 1e-5.
fn check_both<F64: Optimizer<f64>, F32: Optimizer<f32>>(
    mut o64: F64,
    mut o32: F32,
    name: &str,
    theta0: [f64; 2],
    grads: &[[f64; 2]],
    want: &[[f64; 2]],
    what: &str,
) {
    assert_close(&trajectory(&mut o64, name, theta0, grads), want, 1e-14, what);
    assert_close(&trajectory(&mut o32, name, theta0, grads), want, 1e-5, what);
}

// ------------------------------------------------------------------ SGD

#[test]
fn sgd_plain_three_steps() {
    // θ ← θ − η·g with η = 0.1:
    // θ1 = [1 − 0.05, −2 + 0.1]     = [0.95, −1.9]
    // θ2 = [0.95 − 0.03, −1.9 − 0.02] = [0.92, −1.92]
    // θ3 = [0.92 + 0.01, −1.92 − 0.04] = [0.93, −1.96]
    let want = [[0.95, -1.9], [0.92, -1.92], [0.93, -1.96]];
    let c = SgdConfig::new(0.1);
    check_both(Sgd::new(c).unwrap(), Sgd::new(c).unwrap(), "w", THETA0, &GRADS, &want, "sgd");
}

#[test]
fn sgd_momentum_with_dampening_three_steps() {
    // PyTorch: b1 = g1; b_t = μ·b_{t−1} + (1 − τ)·g_t; θ ← θ − η·b, with μ = 0.9, τ = 0.1, η = 0.1.
    // b1 = [0.5, −1];                                θ1 = [0.95, −1.9]
    // b2 = 0.9·[0.5, −1] + 0.9·[0.3, 0.2]   = [0.72, −0.72];   θ2 = [0.878, −1.828]
    // b3 = 0.9·[0.72, −0.72] + 0.9·[−0.1, 0.4] = [0.558, −0.288]; θ3 = [0.8222, −1.7992]
    let want = [[0.95, -1.9], [0.878, -1.828], [0.8222, -1.7992]];
    let c = SgdConfig::new(0.1).with_momentum(0.9).with_dampening(0.1);
    check_both(Sgd::new(c).unwrap(), Sgd::new(c).unwrap(), "w", THETA0, &GRADS, &want, "sgd momentum");
}

#[test]
fn sgd_nesterov_three_steps() {
    // PyTorch Nesterov: b as above with τ = 0; d = g + μ·b; θ ← θ − η·d, μ = 0.9, η = 0.1.
    // b1 = [0.5, −1];       d1 = [0.95, −1.9];    θ1 = [0.905, −1.81]
    // b2 = [0.75, −0.7];    d2 = [0.975, −0.43];  θ2 = [0.8075, −1.767]
    // b3 = [0.575, −0.23];  d3 = [0.4175, 0.193]; θ3 = [0.76575, −1.7863]
    let want = [[0.905, -1.81], [0.8075, -1.767], [0.76575, -1.7863]];
    let c = SgdConfig::new(0.1).with_momentum(0.9).with_nesterov(true);
    check_both(Sgd::new(c).unwrap(), Sgd::new(c).unwrap(), "w", THETA0, &GRADS, &want, "sgd nesterov");
}

// ------------------------------------------------------------------ Adam

/// Kingma & Ba (2015), Algorithm 1, written out (AMSGrad: Reddi et al. 2018 as in
/// PyTorch; decoupled decay: Loshchilov & Hutter with PyTorch's θ ← θ − η·λ·θ):
///   θ ← θ − η·λ·θ
///   m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²,  [v_max ← max(v_max, v)]
///   m̂ = m / (1 − β1^t),    v̂ = v / (1 − β2^t)   [v_max / (1 − β2^t) with AMSGrad]
///   θ ← θ − η·m̂ / (√v̂ + ε)
fn adam_reference(c: &AdamConfig, theta0: [f64; 2], grads: &[[f64; 2]], bias_correction: bool) -> Vec<[f64; 2]> {
    let (mut th, mut m, mut v, mut vmax) = (theta0, [0.0; 2], [0.0; 2], [0.0f64; 2]);
    let mut out = Vec::new();
    for (k, g) in grads.iter().enumerate() {
        let t = (k + 1) as i32;
        for i in 0..2 {
            th[i] -= c.learning_rate * c.weight_decay * th[i];
            m[i] = c.beta_1 * m[i] + (1.0 - c.beta_1) * g[i];
            v[i] = c.beta_2 * v[i] + (1.0 - c.beta_2) * g[i] * g[i];
            vmax[i] = vmax[i].max(v[i]);
            let (bc1, bc2) =
                if bias_correction { (1.0 - c.beta_1.powi(t), 1.0 - c.beta_2.powi(t)) } else { (1.0, 1.0) };
            let m_hat = m[i] / bc1;
            let v_hat = if c.amsgrad { vmax[i] } else { v[i] } / bc2;
            th[i] -= c.learning_rate * m_hat / (v_hat.sqrt() + c.epsilon);
        }
        out.push(th);
    }
    out
}

#[test]
fn adam_three_steps() {
    let c = AdamConfig::new(0.1).with_epsilon(1e-8);
    let want = adam_reference(&c, THETA0, &GRADS, true);
    // Step 1 by hand: m̂ = g, v̂ = g², so θ1 = θ0 − η·g/(|g| + ε) ≈ θ0 − 0.1·sign(g) = [0.9, −1.9].
    assert!((want[0][0] - 0.9).abs() < 1e-8 && (want[0][1] + 1.9).abs() < 1e-8);
    check_both(Adam::new(c).unwrap(), Adam::new(c).unwrap(), "w", THETA0, &GRADS, &want, "adam");
}

#[test]
fn adam_amsgrad_three_steps_keeps_the_largest_second_moment() {
    // A large gradient then small ones, with β2 = 0.5 so that v falls: v1 = 0.5·4 = 2,
    // v2 = 0.5·2 + 0.5·1e-4 ≈ 1 < v_max = 2. AMSGrad divides by √(v_max/(1 − β2^t)).
    let grads = [[2.0, -1.0], [0.01, 0.01], [0.01, -0.01]];
    let c = AdamConfig::new(0.1).with_betas(0.9, 0.5).with_epsilon(1e-8).with_amsgrad(true);
    let want = adam_reference(&c, THETA0, &grads, true);
    let plain = adam_reference(&AdamConfig { amsgrad: false, ..c }, THETA0, &grads, true);
    assert!((want[2][0] - plain[2][0]).abs() > 1e-3, "the case must tell AMSGrad from Adam");
    check_both(Adam::new(c).unwrap(), Adam::new(c).unwrap(), "w", THETA0, &grads, &want, "amsgrad");
}

#[test]
fn adamw_three_steps() {
    // θ ← θ − η·λ·θ, then the Adam update; η = 0.1, λ = 0.1. The decay applies to a
    // kernel (by the naming convention).
    let c = AdamConfig::adamw(0.1).with_weight_decay(0.1).with_epsilon(1e-8);
    let want = adam_reference(&c, THETA0, &GRADS, true);
    let o64 = Adam::<f64>::adamw(c).unwrap();
    assert_eq!(o64.name(), "adamw");
    check_both(o64, Adam::adamw(c).unwrap(), "layers.0.kernel", THETA0, &GRADS, &want, "adamw");
}

#[test]
fn adam_epsilon_placement_matters_for_tiny_gradients() {
    // g constant and comparable to ε = 1e-8: √v̂ = |g| exactly (constant gradient), so
    // Algorithm 1 moves θ by η·|g|/(|g| + ε) per step: 0.1·1/2 = 0.05 for g = 1e-8 and
    // 0.1·3/4 = 0.075 for g = −3e-8.
    let grads = [[1e-8, -3e-8]; 3];
    let c = AdamConfig::new(0.1).with_epsilon(1e-8);
    let want: Vec<[f64; 2]> = (1..=3).map(|t| [1.0 - 0.05 * t as f64, -2.0 + 0.075 * t as f64]).collect();
    assert_close(&adam_reference(&c, THETA0, &grads, true), &want, 1e-9, "reference");
    check_both(Adam::new(c).unwrap(), Adam::new(c).unwrap(), "w", THETA0, &grads, &want, "adam tiny g");

    // The other placements give very different steps here:
    // ε under the root, √(v̂ + ε) ≈ 1e-4: step ≈ η·1e-8/1e-4 = 1e-5.
    let under_root = 0.1 * 1e-8 / (1e-16f64 + 1e-8).sqrt();
    // Keras's ε-hat (added to the uncorrected √v): at t = 1 the step is
    // η·√(1 − β2)·|g| / (√(1 − β2)·|g| + ε) ≈ 0.1·0.0306.
    let eps_hat = 0.1 * (0.001f64.sqrt() * 1e-8) / (0.001f64.sqrt() * 1e-8 + 1e-8);
    let ours = 1.0 - want[0][0];
    assert!(ours / under_root > 1e3 && ours / eps_hat > 10.0, "{ours} {under_root} {eps_hat}");
}

#[test]
fn adam_bias_correction_dominates_the_first_steps() {
    // Constant g: m_t = (1 − β1^t)·g and v_t = (1 − β2^t)·g², so the corrected m̂ = g and
    // v̂ = g², and each step moves θ by η·g/(|g| + ε) ≈ η·sign(g): θ_t = θ0 − t·η·g/(|g| + ε).
    let grads = [[0.5, -1.0]; 3];
    let c = AdamConfig::new(0.01).with_epsilon(1e-8);
    let step = [0.01 * 0.5 / (0.5 + 1e-8), -0.01 * 1.0 / (1.0 + 1e-8)];
    let want: Vec<[f64; 2]> = (1..=3).map(|t| [1.0 - t as f64 * step[0], -2.0 - t as f64 * step[1]]).collect();
    assert!((want[2][0] - 0.97).abs() < 1e-9 && (want[2][1] + 1.97).abs() < 1e-9);
    check_both(Adam::new(c).unwrap(), Adam::new(c).unwrap(), "w", THETA0, &grads, &want, "adam");
    // Without the correction the step would be η·(1 − β1^t)/√(1 − β2^t): at t = 1,
    // 0.1/√0.001 ≈ 3.16 times larger; the correction factors 1/(1 − β2^t) are 1000, 500, 333.
    let uncorrected = adam_reference(&c, THETA0, &grads, false);
    assert!((THETA0[0] - uncorrected[0][0]) / 0.01 > 3.1);
    assert!((uncorrected[2][0] - want[2][0]).abs() > 0.05);
}

// ------------------------------------------------------------------ RMSprop

/// PyTorch's RMSprop written out:
///   s ← ρ·s + (1 − ρ)·g²
///   centered: ḡ ← ρ·ḡ + (1 − ρ)·g, r = √(s − ḡ²) + ε;  else r = √s + ε
///   μ > 0: b ← μ·b + g/r, θ ← θ − η·b;  else θ ← θ − η·g/r
fn rmsprop_reference(c: &RmsPropConfig, theta0: [f64; 2], grads: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let (mut th, mut s, mut ga, mut b) = (theta0, [0.0; 2], [0.0; 2], [0.0; 2]);
    let mut out = Vec::new();
    for g in grads {
        for i in 0..2 {
            s[i] = c.rho * s[i] + (1.0 - c.rho) * g[i] * g[i];
            let r = if c.centered {
                ga[i] = c.rho * ga[i] + (1.0 - c.rho) * g[i];
                (s[i] - ga[i] * ga[i]).sqrt() + c.epsilon
            } else {
                s[i].sqrt() + c.epsilon
            };
            if c.momentum > 0.0 {
                b[i] = c.momentum * b[i] + g[i] / r;
                th[i] -= c.learning_rate * b[i];
            } else {
                th[i] -= c.learning_rate * g[i] / r;
            }
        }
        out.push(th);
    }
    out
}

#[test]
fn rmsprop_three_steps_all_variants() {
    let base = RmsPropConfig::new(0.01).with_epsilon(1e-8);
    // Step 1 by hand (plain): s = 0.1·g², θ1 = θ0 − η·g/(√0.1·|g| + ε) ≈ θ0 − 0.01·sign(g)/√0.1.
    let plain = rmsprop_reference(&base, THETA0, &GRADS);
    let k = 0.01 / 0.1f64.sqrt();
    assert!((plain[0][0] - (1.0 - k)).abs() < 1e-8 && (plain[0][1] - (-2.0 + k)).abs() < 1e-8);
    for c in [base, base.with_momentum(0.9), base.with_centered(true), base.with_centered(true).with_momentum(0.5)] {
        let want = rmsprop_reference(&c, THETA0, &GRADS);
        let what = format!("rmsprop {c:?}");
        check_both(RmsProp::new(c).unwrap(), RmsProp::new(c).unwrap(), "w", THETA0, &GRADS, &want, &what);
    }
}

#[test]
fn rmsprop_epsilon_placement_matters_for_tiny_gradients() {
    // g = 1e-8 = ε: s1 = 0.1·1e-16, r = √0.1·1e-8 + 1e-8, step = η·1e-8/r = η/(√0.1 + 1) ≈ 0.76·η.
    // With ε under the root (Keras) it would be η·1e-8/√(1e-17 + 1e-8) ≈ 1e-4·η.
    let grads = [[1e-8, 1e-8]; 3];
    let c = RmsPropConfig::new(0.01).with_epsilon(1e-8);
    let want = rmsprop_reference(&c, THETA0, &grads);
    assert!((THETA0[0] - want[0][0] - 0.01 / (0.1f64.sqrt() + 1.0)).abs() < 1e-15);
    check_both(RmsProp::new(c).unwrap(), RmsProp::new(c).unwrap(), "w", THETA0, &grads, &want, "rmsprop");
}

// ------------------------------------------------------------------ Adagrad

/// PyTorch's Adagrad written out: S ← S + g²; θ ← θ − η·g/(√S + ε), S starting at S0.
fn adagrad_reference(c: &AdagradConfig, theta0: [f64; 2], grads: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let (mut th, mut s) = (theta0, [c.initial_accumulator_value; 2]);
    let mut out = Vec::new();
    for g in grads {
        for i in 0..2 {
            s[i] += g[i] * g[i];
            th[i] -= c.learning_rate * g[i] / (s[i].sqrt() + c.epsilon);
        }
        out.push(th);
    }
    out
}

#[test]
fn adagrad_three_steps() {
    // Step 1 by hand: S = 0.1 + g² = [0.35, 1.1]; θ1 = [1 − 0.1·0.5/√0.35, −2 + 0.1/√1.1].
    let c = AdagradConfig::new(0.1);
    let want = adagrad_reference(&c, THETA0, &GRADS);
    assert!((want[0][0] - (1.0 - 0.05 / 0.35f64.sqrt())).abs() < 1e-6);
    assert!((want[0][1] - (-2.0 + 0.1 / 1.1f64.sqrt())).abs() < 1e-6);
    check_both(Adagrad::new(c).unwrap(), Adagrad::new(c).unwrap(), "w", THETA0, &GRADS, &want, "adagrad");
}

#[test]
fn adagrad_epsilon_placement_matters_for_tiny_gradients() {
    // S0 = 0, g = ε = 1e-7: S1 = g², step = η·g/(|g| + ε) = η/2 (under the root: ≈ η·3e-4).
    let grads = [[1e-7, -1e-7]; 3];
    let c = AdagradConfig::new(0.1).with_initial_accumulator_value(0.0).with_epsilon(1e-7);
    let want = adagrad_reference(&c, THETA0, &grads);
    assert!((THETA0[0] - want[0][0] - 0.05).abs() < 1e-12);
    check_both(Adagrad::new(c).unwrap(), Adagrad::new(c).unwrap(), "w", THETA0, &grads, &want, "adagrad");
}

// ------------------------------------------------------------------ penalties and decay

/// One SGD step (η = 0.1) on a kernel w = [0.8, −0.4] and a bias [0.5] with zero data
/// gradient, after `reg` (if any); returns (kernel, bias, penalty).
fn one_step_zero_grad(opt: &mut dyn Optimizer<f64>, reg: Option<&Regularizer>) -> ([f64; 2], f64, f64) {
    let mut w = Tensor::<f64>::from_vec(&[2], vec![0.8, -0.4]);
    let mut b = Tensor::<f64>::from_vec(&[1], vec![0.5]);
    let (mut gw, mut gb) = (Tensor::<f64>::zeros(&[2]), Tensor::<f64>::zeros(&[1]));
    let mut ps = [ParamMut::new("layers.0.kernel", &mut w, &mut gw), ParamMut::new("layers.0.bias", &mut b, &mut gb)];
    let penalty = reg.map_or(0.0, |r| r.apply(&mut ps).unwrap());
    opt.step(&mut ps).unwrap();
    let v = w.to_vec();
    ([v[0], v[1]], b.to_vec()[0], penalty)
}

#[test]
fn l1_l2_and_decoupled_decay_one_step_with_zero_data_gradient() {
    let (eta, lambda) = (0.1, 0.01);
    let sgd = || Sgd::<f64>::new(SgdConfig::new(eta)).unwrap();

    // L1: penalty λ·Σ|w| = 0.01·1.2 = 0.012; gradient λ·sign(w) = [0.01, −0.01];
    // w ← w − η·λ·sign(w) = [0.8 − 0.001, −0.4 + 0.001] = [0.799, −0.399].
    let (w, b, p) = one_step_zero_grad(&mut sgd(), Some(&Regularizer::l1(lambda)));
    assert!((p - 0.012).abs() < 1e-16);
    assert!((w[0] - 0.799).abs() < 1e-15 && (w[1] + 0.399).abs() < 1e-15, "{w:?}");
    assert_eq!(b, 0.5, "biases are not penalised by default");

    // L2 (Keras, no ½): penalty λ·Σw² = 0.01·0.8 = 0.008; gradient 2λw = [0.016, −0.008];
    // w ← w − 2ηλ·w = w·0.998 = [0.7984, −0.3992].
    let (w, b, p) = one_step_zero_grad(&mut sgd(), Some(&Regularizer::l2(lambda)));
    assert!((p - 0.008).abs() < 1e-16);
    assert!((w[0] - 0.7984).abs() < 1e-15 && (w[1] + 0.3992).abs() < 1e-15, "{w:?}");
    assert_eq!(b, 0.5);

    // Decoupled decay (no penalty, nothing in the gradient): w ← w − η·λ·w = w·0.999
    // = [0.7992, −0.3996]: half of L2's step for the same λ, because L2's gradient is 2λw.
    let mut decayed = Sgd::<f64>::new(SgdConfig::new(eta).with_weight_decay(lambda)).unwrap();
    let (w, b, p) = one_step_zero_grad(&mut decayed, None);
    assert_eq!(p, 0.0);
    assert!((w[0] - 0.7992).abs() < 1e-15 && (w[1] + 0.3996).abs() < 1e-15, "{w:?}");
    assert_eq!(b, 0.5, "biases are not decayed by default");

    // Under Adam the difference is starker. L2's gradient 2λw goes through m̂/(√v̂ + ε):
    // at t = 1 that is 2λw/(|2λw| + ε) ≈ sign(w), so w moves by ≈ η = 0.1 whatever λ:
    // w ≈ [0.7, −0.3]. AdamW's decay: w·(1 − ηλ) = [0.7992, −0.3996], and the Adam part
    // is 0/(0 + ε) = 0 because the data gradient is zero.
    let mut adam = Adam::<f64>::new(AdamConfig::new(eta)).unwrap();
    let (w, _, _) = one_step_zero_grad(&mut adam, Some(&Regularizer::l2(lambda)));
    let e = 1e-7; // ε; the step is η·|2λw|/(|2λw| + ε)
    let want = [0.8 - eta * 0.016 / (0.016 + e), -0.4 + eta * 0.008 / (0.008 + e)];
    assert!((w[0] - want[0]).abs() < 1e-15 && (w[1] - want[1]).abs() < 1e-15, "{w:?} vs {want:?}");
    assert!((w[0] - 0.7).abs() < 1e-5);
    let mut adamw = Adam::<f64>::adamw(AdamConfig::adamw(eta).with_weight_decay(lambda)).unwrap();
    let (w, b, _) = one_step_zero_grad(&mut adamw, None);
    assert!((w[0] - 0.7992).abs() < 1e-15 && (w[1] + 0.3996).abs() < 1e-15, "{w:?}");
    assert_eq!(b, 0.5);
}

#[test]
fn overrides_turn_decay_and_penalties_on_for_biases() {
    let rules = ParamRules::new().decay(ParamSelector::kind(ParamKind::Bias), true);
    // Decoupled: b ← b·(1 − ηλ) = 0.5·0.999.
    let mut sgd = Sgd::<f64>::new(SgdConfig::new(0.1).with_weight_decay(0.01)).unwrap().with_rules(rules.clone());
    let (_, b, _) = one_step_zero_grad(&mut sgd, None);
    assert!((b - 0.4995).abs() < 1e-16);
    // L2: b ← b − η·2λ·b = 0.5·0.998; penalty adds λ·b² = 0.0025.
    let (_, b, p) =
        one_step_zero_grad(&mut Sgd::new(SgdConfig::new(0.1)).unwrap(), Some(&Regularizer::l2(0.01).with_rules(rules)));
    assert!((b - 0.499).abs() < 1e-16);
    assert!((p - 0.0105).abs() < 1e-16);
}

// ------------------------------------------------------------------ per-parameter settings

#[test]
fn lr_multipliers_scale_each_parameter_and_frozen_ones_get_no_state() {
    let rules = ParamRules::new()
        .lr_multiplier(ParamSelector::prefix("layers.0."), 0.5)
        .freeze(ParamSelector::exact("layers.2.kernel"));
    let mut opt = Sgd::<f64>::new(SgdConfig::new(0.1).with_momentum(0.9)).unwrap().with_rules(rules);
    let mut a = Tensor::<f64>::from_vec(&[1], vec![1.0]);
    let mut b = Tensor::<f64>::from_vec(&[1], vec![1.0]);
    let mut frozen = Tensor::<f64>::from_vec(&[1], vec![1.0]);
    let mut stats = Tensor::<f64>::from_vec(&[1], vec![1.0]);
    let mut g = [0, 1, 2, 3].map(|_| Tensor::<f64>::from_vec(&[1], vec![1.0]));
    let [ga, gb, gf, gs] = &mut g;
    opt.step(&mut [
        ParamMut::new("layers.0.kernel", &mut a, ga),
        ParamMut::new("layers.1.kernel", &mut b, gb),
        ParamMut::new("layers.2.kernel", &mut frozen, gf),
        ParamMut::new("layers.3.moving_mean", &mut stats, gs),
    ])
    .unwrap();
    // b1 = g = 1: θ ← 1 − 0.5·0.1·1 and 1 − 0.1·1.
    assert_eq!(a.to_vec(), vec![0.95]);
    assert_eq!(b.to_vec(), vec![0.9]);
    assert_eq!(frozen.to_vec(), vec![1.0]);
    assert_eq!(stats.to_vec(), vec![1.0], "moving statistics are frozen by default");
    let names: Vec<_> = opt.state().params.keys().cloned().collect();
    assert_eq!(names, ["layers.0.kernel", "layers.1.kernel"]);
    assert_eq!(opt.state().params["layers.0.kernel"].step, 1);
    assert_eq!(opt.state().params["layers.0.kernel"].slot("momentum_buffer").unwrap().to_vec(), vec![1.0]);

    // Unfreezing later starts the parameter's own step count (and bias correction) at 1.
    let mut adam = Adam::<f64>::new(AdamConfig::new(0.1))
        .unwrap()
        .with_rules(ParamRules::new().freeze(ParamSelector::exact("late")));
    let mut x = Tensor::<f64>::zeros(&[1]);
    let mut gx = Tensor::<f64>::ones(&[1]);
    for _ in 0..3 {
        adam.step(&mut [ParamMut::new("late", &mut x, &mut gx)]).unwrap();
    }
    assert!(adam.state().params.is_empty());
    adam.set_rules(ParamRules::new());
    adam.step(&mut [ParamMut::new("late", &mut x, &mut gx)]).unwrap();
    assert_eq!((adam.iterations(), adam.state().params["late"].step), (4, 1));
    assert!((x.to_vec()[0] + 0.1).abs() < 1e-6, "first corrected step ≈ −η·sign(g)");
}

#[test]
fn bad_input_is_an_error_and_changes_nothing() {
    let mut opt = Adam::<f32>::new(AdamConfig::new(0.1)).unwrap();
    let mut w = Tensor::<f32>::ones(&[2, 3]);
    let mut gw = Tensor::<f32>::ones(&[2, 3]);
    let mut b = Tensor::<f32>::ones(&[3]);
    let mut gb = Tensor::<f32>::ones(&[1, 3]);
    let err = opt
        .step(&mut [ParamMut::new("layers.0.kernel", &mut w, &mut gw), ParamMut::new("layers.0.bias", &mut b, &mut gb)])
        .unwrap_err();
    assert_eq!(err.to_string(), "parameter `layers.0.bias`: gradient shape [1, 3] differs from parameter shape [3]");
    assert_eq!(w.to_vec(), vec![1.0; 6], "the valid parameter was not updated either");
    assert_eq!(opt.iterations(), 0);
    assert!(opt.state().params.is_empty());

    let mut w2 = Tensor::<f32>::ones(&[2, 3]);
    let mut g2 = Tensor::<f32>::ones(&[2, 3]);
    let err = opt.step(&mut [ParamMut::new("a", &mut w, &mut gw), ParamMut::new("a", &mut w2, &mut g2)]).unwrap_err();
    assert!(matches!(err, OptimError::DuplicateParam { ref name } if name == "a"));

    // A parameter whose shape changed after its state was created.
    opt.step(&mut [ParamMut::new("a", &mut w, &mut gw)]).unwrap();
    let mut w3 = Tensor::<f32>::ones(&[3, 2]);
    let mut g3 = Tensor::<f32>::ones(&[3, 2]);
    let err = opt.step(&mut [ParamMut::new("a", &mut w3, &mut g3)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameter `a`: optimizer state `exp_avg` has shape [2, 3], parameter has shape [3, 2]"
    );

    let mut bad = Sgd::<f32>::new(SgdConfig::new(0.1))
        .unwrap()
        .with_rules(ParamRules::new().lr_multiplier(ParamSelector::exact("a"), -1.0));
    let err = bad.step(&mut [ParamMut::new("a", &mut w, &mut gw)]).unwrap_err();
    assert!(err.to_string().contains("parameter `a`: lr_multiplier = -1"), "{err}");
}

#[test]
fn invalid_hyperparameters_are_rejected() {
    let bad: Vec<(OptimError, &str)> = vec![
        (Sgd::<f32>::new(SgdConfig::new(-0.1)).unwrap_err(), "sgd: learning_rate = -0.1"),
        (Sgd::<f32>::new(SgdConfig::new(0.1).with_nesterov(true)).unwrap_err(), "sgd: momentum = 0"),
        (
            Sgd::<f32>::new(SgdConfig::new(0.1).with_momentum(0.9).with_dampening(0.1).with_nesterov(true))
                .unwrap_err(),
            "sgd: dampening = 0.1",
        ),
        (Adam::<f32>::new(AdamConfig::new(0.1).with_betas(1.0, 0.999)).unwrap_err(), "adam: beta_1 = 1"),
        (Adam::<f32>::new(AdamConfig::new(0.1).with_epsilon(0.0)).unwrap_err(), "adam: epsilon = 0"),
        (Adam::<f32>::adamw(AdamConfig::new(f64::NAN)).unwrap_err(), "adamw: learning_rate = NaN"),
        (RmsProp::<f32>::new(RmsPropConfig::new(0.1).with_rho(-0.5)).unwrap_err(), "rmsprop: rho = -0.5"),
        (
            Adagrad::<f32>::new(AdagradConfig::new(0.1).with_weight_decay(-1.0)).unwrap_err(),
            "adagrad: weight_decay = -1",
        ),
    ];
    for (err, start) in bad {
        assert!(err.to_string().starts_with(start), "{err}");
    }
    let mut opt = Sgd::<f32>::new(SgdConfig::new(0.1)).unwrap();
    assert!(opt.set_learning_rate(f64::INFINITY).is_err());
    assert_eq!(opt.learning_rate(), 0.1);
    opt.set_learning_rate(0.05).unwrap();
    assert_eq!(opt.learning_rate(), 0.05);
}
