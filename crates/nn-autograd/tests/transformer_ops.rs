//! The Transformer ops: GELU (exact and tanh form) and the masked, scaled softmax of
//! attention. Forward values from their formulas (with `erf` checked against
//! tabulated values in the unit tests), f64 gradchecks, and the masking rules
//! (masked positions exactly 0, a fully masked row zeros, never NaN).

use nn_autograd::{erf, gradcheck, Graph, Tensor};
use nn_tensor::random::seeded_rng;

fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor<f64> {
    Tensor::random_uniform(shape, lo, hi, &mut seeded_rng(seed)).unwrap()
}

#[test]
fn gelu_values_follow_the_formulas() {
    let xs = [-5.0, -2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 2.0, 6.0];
    let mut g = Graph::<f64>::no_grad();
    let x = g.input(Tensor::from_vec(&[xs.len()], xs.to_vec()));
    let exact = g.gelu(x, false);
    let tanh = g.gelu(x, true);
    for (k, &v) in xs.iter().enumerate() {
        let want = 0.5 * v * (1.0 + erf(v / 2f64.sqrt()));
        let got = g.value(exact).to_vec()[k];
        assert!((got - want).abs() <= 1e-15 * (1.0 + want.abs()), "gelu({v}) = {got}, want {want}");
        let u = (2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v);
        let want_tanh = 0.5 * v * (1.0 + u.tanh());
        let got = g.value(tanh).to_vec()[k];
        assert!((got - want_tanh).abs() <= 1e-15 * (1.0 + want_tanh.abs()), "gelu_tanh({v})");
    }
    // Hand values: GELU(1) = Φ(1) = 0.8413447460685429, GELU(−1) = −(1 − Φ(1)).
    assert!((g.value(exact).to_vec()[6] - 0.8413447460685429).abs() < 1e-15);
    assert!((g.value(exact).to_vec()[2] + 0.15865525393145707).abs() < 1e-15);
    // The two forms differ by less than 1e-3 (the paper's approximation) but differ.
    let (a, b) = (g.value(exact).to_vec(), g.value(tanh).to_vec());
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-3));
    assert!(a.iter().zip(&b).any(|(p, q)| (p - q).abs() > 1e-6));
}

#[test]
fn gelu_gradchecks_in_both_forms() {
    for approximate in [false, true] {
        for seed in 0..3 {
            let x = uniform(&[3, 5], -4.0, 4.0, seed);
            let report = gradcheck(&[x], |g, v| g.try_gelu(v[0], approximate)).unwrap();
            assert!(report.passes(1e-7), "approximate {approximate}: {report}");
        }
    }
}

#[test]
fn masked_softmax_values() {
    // One row [1, 2, 3] with scale 0.5, the middle position masked:
    // e^{0.5}, e^{1.5} normalised; the masked one exactly 0.
    let mut g = Graph::<f64>::no_grad();
    let x = g.input(Tensor::from_vec(&[1, 1, 3], vec![1.0, 2.0, 3.0]));
    let y = g.masked_softmax(x, 0.5, Some(&[true, false, true]));
    let (a, c) = (0.5f64.exp(), 1.5f64.exp());
    let want = [a / (a + c), 0.0, c / (a + c)];
    let got = g.value(y).to_vec();
    for k in 0..3 {
        assert!((got[k] - want[k]).abs() < 1e-15, "{got:?} vs {want:?}");
    }
    assert_eq!(got[1], 0.0);
    // No mask: the plain softmax of 0.5·x.
    let y = g.masked_softmax(x, 0.5, None);
    let (a, b, c) = (0.5f64.exp(), 1f64.exp(), 1.5f64.exp());
    let s = a + b + c;
    let got = g.value(y).to_vec();
    for (k, want) in [a / s, b / s, c / s].into_iter().enumerate() {
        assert!((got[k] - want).abs() < 1e-15);
    }
}

#[test]
fn fully_masked_rows_are_zero_not_nan() {
    // [2 groups, 2 rows, 2 cols], mask [1 group] shared by both: row 0 fully masked.
    let mut g = Graph::<f64>::new();
    let x = g.variable(Tensor::from_vec(&[2, 2, 2], vec![1e300, -3.0, 0.5, 0.25, 7.0, 8.0, 1.0, 1.0]));
    let y = g.masked_softmax(x, 1.0, Some(&[false, false, true, true]));
    let v = g.value(y).to_vec();
    assert_eq!(&v[0..2], [0.0, 0.0]);
    assert_eq!(&v[4..6], [0.0, 0.0]);
    assert!((v[6] - 0.5).abs() < 1e-15 && (v[7] - 0.5).abs() < 1e-15);
    let grads = g.backward_with_seed(y, Tensor::from_vec(&[2, 2, 2], vec![1.0; 8])).unwrap();
    let dx = grads.wrt(x).unwrap().to_vec();
    assert!(dx.iter().all(|d| d.is_finite()), "{dx:?}");
    assert_eq!(&dx[0..2], [0.0, 0.0]);
}

#[test]
fn masked_softmax_gradchecks_with_and_without_masks() {
    // 4 groups (batch 2 × heads 2), 3 query rows, 4 key columns; a causal-and-padding
    // mask per sample, with one fully masked row.
    let mask: Vec<bool> = (0..2 * 3 * 4).map(|k| k % 5 != 0 && !(12..16).contains(&k)).collect();
    for seed in 0..3 {
        let x = uniform(&[4, 3, 4], -2.0, 2.0, seed);
        for m in [None, Some(mask.as_slice())] {
            let report = gradcheck(std::slice::from_ref(&x), |g, v| g.try_masked_softmax(v[0], 0.7, m)).unwrap();
            assert!(report.passes(1e-7), "mask {}: {report}", m.is_some());
        }
    }
}

#[test]
fn masked_softmax_refuses_bad_masks() {
    let mut g = Graph::<f64>::new();
    let x = g.input(Tensor::zeros(&[3, 2, 2]));
    // 2 mask blocks do not divide 3 groups; 5 flags are not whole blocks.
    assert!(g.try_masked_softmax(x, 1.0, Some(&[true; 8])).is_err());
    assert!(g.try_masked_softmax(x, 1.0, Some(&[true; 5])).is_err());
    assert!(g.try_masked_softmax(x, f64::NAN, None).is_err());
    let v = g.input(Tensor::zeros(&[3]));
    assert!(g.try_masked_softmax(v, 1.0, None).is_err());
}
