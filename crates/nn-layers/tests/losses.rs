//! Every loss: hand-computed values on 2–3 element examples (formula in each test),
//! reductions, label smoothing, class weights, clamping, errors, and gradchecks
//! (proptest, f64).

mod common;

use common::{assert_close, to_autograd, uniform, TOL};
use nn_autograd::{gradcheck_with, GradcheckOptions, Graph, Var};
use nn_layers::loss::{balanced_class_weights, Loss, LossTargets, Reduction, WeightedLoss, EPSILON};
use nn_layers::{LayerError, Tensor};
use proptest::prelude::*;

fn value(loss: Loss, output: &Tensor<f64>, targets: &LossTargets<'_, f64>, reduction: Reduction) -> f64 {
    let mut g = Graph::<f64>::new();
    let o = g.variable(output);
    let l = loss.compute_with(&mut g, o, targets, reduction).unwrap();
    assert_eq!(g.value(l).shape(), [] as [usize; 0], "a 0-d loss");
    g.value(l).item()
}

fn mean(loss: Loss, output: &Tensor<f64>, targets: &LossTargets<'_, f64>) -> f64 {
    value(loss, output, targets, Reduction::Mean)
}

fn t(shape: &[usize], v: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(shape, v.to_vec())
}

const BCE: Loss = Loss::BinaryCrossentropy { from_logits: false, label_smoothing: 0.0 };
const BCE_LOGITS: Loss = Loss::BinaryCrossentropy { from_logits: true, label_smoothing: 0.0 };
const CCE: Loss = Loss::CategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 };
const CCE_LOGITS: Loss = Loss::CategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 };
const SCCE: Loss = Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 };
const SCCE_LOGITS: Loss = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 };

#[test]
fn mean_squared_error() {
    // p = [[1, 2], [3, 5]], t = [[1, 0], [2, 2]]: (p − t)² = [[0, 4], [1, 9]];
    // per sample (mean over the last axis) [2, 5]; mean over the 2 samples 3.5 = 14/4;
    // sum over samples 7.
    let (p, y) = (t(&[2, 2], &[1., 2., 3., 5.]), t(&[2, 2], &[1., 0., 2., 2.]));
    assert_eq!(mean(Loss::MeanSquaredError, &p, &LossTargets::Values(&y)), 3.5);
    assert_eq!(value(Loss::MeanSquaredError, &p, &LossTargets::Values(&y), Reduction::Sum), 7.0);
    // A 1-d output [batch] counts each element as a sample: (0 + 4 + 1) / 3.
    let (p, y) = (t(&[3], &[1., 2., 3.]), t(&[3], &[1., 0., 2.]));
    assert_eq!(mean(Loss::MeanSquaredError, &p, &LossTargets::Values(&y)), 5.0 / 3.0);
    assert_eq!(value(Loss::MeanSquaredError, &p, &LossTargets::Values(&y), Reduction::Sum), 5.0);
}

#[test]
fn mean_absolute_error() {
    // |p − t| = [[0, 2], [1, 3]]: per sample [1, 2]; mean 1.5; sum 3.
    let (p, y) = (t(&[2, 2], &[1., 2., 3., 5.]), t(&[2, 2], &[1., 0., 2., 2.]));
    assert_eq!(mean(Loss::MeanAbsoluteError, &p, &LossTargets::Values(&y)), 1.5);
    assert_eq!(value(Loss::MeanAbsoluteError, &p, &LossTargets::Values(&y), Reduction::Sum), 3.0);
}

#[test]
fn huber() {
    // δ = 1, e = p − t = [[0, 2], [1, 3]]: ½e² where |e| ≤ δ, δ|e| − ½δ² otherwise:
    // [[0, 1.5], [0.5, 2.5]]; per sample [0.75, 1.5]; mean 1.125; sum 2.25.
    let (p, y) = (t(&[2, 2], &[1., 2., 3., 5.]), t(&[2, 2], &[1., 0., 2., 2.]));
    assert_eq!(mean(Loss::Huber { delta: 1.0 }, &p, &LossTargets::Values(&y)), 1.125);
    assert_eq!(value(Loss::Huber { delta: 1.0 }, &p, &LossTargets::Values(&y), Reduction::Sum), 2.25);
    // δ = 2.5: e = 2 → ½·4 = 2; e = 3 → 2.5·3 − 3.125 = 4.375; mean (0 + 2 + 0.5 + 4.375)/4.
    assert_eq!(mean(Loss::Huber { delta: 2.5 }, &p, &LossTargets::Values(&y)), 6.875 / 4.0);
}

#[test]
fn binary_crossentropy_from_probabilities() {
    // −t·ln p − (1 − t)·ln(1 − p) with p = [0.9, 0.2, 0.6], t = [1, 0, 1]:
    // −ln 0.9, −ln 0.8, −ln 0.6; mean over the 3 samples.
    let (p, y) = (t(&[3], &[0.9, 0.2, 0.6]), t(&[3], &[1., 0., 1.]));
    let want = -(0.9f64.ln() + 0.8f64.ln() + 0.6f64.ln()) / 3.0;
    assert_close(&[mean(BCE, &p, &LossTargets::Values(&y))], &[want], 1e-15);
    // Class targets 0/1 are accepted for binary cross-entropy.
    assert_close(&[mean(BCE, &p, &LossTargets::Classes(&[1, 0, 1]))], &[want], 1e-15);
    // Label smoothing s = 0.2: t' = t·(1 − s) + s/2 = [0.9, 0.1, 0.9].
    let smooth = Loss::BinaryCrossentropy { from_logits: false, label_smoothing: 0.2 };
    let bce = |p: f64, t: f64| -(t * p.ln() + (1.0 - t) * (1.0 - p).ln());
    let want = (bce(0.9, 0.9) + bce(0.2, 0.1) + bce(0.6, 0.9)) / 3.0;
    assert_close(&[mean(smooth, &p, &LossTargets::Values(&y))], &[want], 1e-15);
}

#[test]
fn binary_crossentropy_is_finite_at_0_and_1_and_exactly_0_when_perfect() {
    // A perfect prediction gives exactly +0 (not 1e-7 as clamping p to [ε, 1 − ε] would).
    let perfect = t(&[2, 2], &[1., 0., 0., 1.]);
    let l = mean(BCE, &perfect, &LossTargets::Values(&perfect));
    assert_eq!(l.to_bits(), 0.0f64.to_bits(), "{l}");
    // The worst prediction is finite: −ln ε per element.
    let wrong = t(&[2], &[0., 1.]);
    let l = mean(BCE, &wrong, &LossTargets::Values(&t(&[2], &[1., 0.])));
    assert_close(&[l], &[-(EPSILON.ln())], 1e-12);
    // The gradient at a clamped probability is 0, never inf or NaN.
    let mut g = Graph::<f64>::new();
    let o = g.variable(&wrong);
    let y = t(&[2], &[1., 0.]);
    let l = BCE.compute(&mut g, o, &LossTargets::Values(&y)).unwrap();
    assert_eq!(g.backward(l).unwrap().wrt(o).unwrap().to_vec(), [0., 0.]);
}

#[test]
fn binary_crossentropy_from_logits() {
    // max(x, 0) − x·t + ln(1 + e^{−|x|}) with x = [2, −1, 0], t = [1, 0, 1]:
    // ln(1 + e^{−2}), ln(1 + e^{−1}), ln 2.
    let (x, y) = (t(&[3, 1], &[2., -1., 0.]), t(&[3, 1], &[1., 0., 1.]));
    let want = ((-2.0f64).exp().ln_1p() + (-1.0f64).exp().ln_1p() + 2.0f64.ln()) / 3.0;
    assert_close(&[mean(BCE_LOGITS, &x, &LossTargets::Values(&y))], &[want], 1e-15);
    // Huge logits stay finite and exact: x = 1000, t = 0 costs 1000.
    let l = mean(BCE_LOGITS, &t(&[2], &[1000., -1000.]), &LossTargets::Values(&t(&[2], &[0., 0.])));
    assert_eq!(l, 500.0);
}

#[test]
fn categorical_crossentropy_from_probabilities() {
    // −Σ_k t_k ln q_k, q = p / Σp: rows [0.7, 0.2, 0.1] (class 0) and [0.1, 0.1, 0.8]
    // (class 2): −ln 0.7 and −ln 0.8; mean over the 2 samples, or their sum.
    let p = t(&[2, 3], &[0.7, 0.2, 0.1, 0.1, 0.1, 0.8]);
    let onehot = t(&[2, 3], &[1., 0., 0., 0., 0., 1.]);
    let want = -(0.7f64.ln() + 0.8f64.ln());
    assert_close(&[mean(CCE, &p, &LossTargets::Values(&onehot))], &[want / 2.0], 1e-15);
    assert_close(&[value(CCE, &p, &LossTargets::Values(&onehot), Reduction::Sum)], &[want], 1e-15);
    // Class-index targets are one-hot rows; sparse categorical gives the same.
    assert_close(&[mean(CCE, &p, &LossTargets::Classes(&[0, 2]))], &[want / 2.0], 1e-15);
    assert_close(&[mean(SCCE, &p, &LossTargets::Classes(&[0, 2]))], &[want / 2.0], 1e-15);
    // Rows are renormalised (Keras): doubling the first row changes nothing.
    let p2 = t(&[2, 3], &[1.4, 0.4, 0.2, 0.1, 0.1, 0.8]);
    assert_close(&[mean(CCE, &p2, &LossTargets::Classes(&[0, 2]))], &[want / 2.0], 1e-15);
    // Probability targets: t = [0.5, 0.5, 0] on the first row: −(ln 0.7 + ln 0.2)/2.
    let soft = t(&[1, 3], &[0.5, 0.5, 0.]);
    let want = -(0.5 * 0.7f64.ln() + 0.5 * 0.2f64.ln());
    assert_close(&[mean(CCE, &t(&[1, 3], &[0.7, 0.2, 0.1]), &LossTargets::Values(&soft))], &[want], 1e-15);
    // Perfect one-hot predictions give exactly +0; a zero probability on the true class
    // is finite (−ln ε).
    let l = mean(CCE, &onehot, &LossTargets::Values(&onehot));
    assert_eq!(l.to_bits(), 0.0f64.to_bits());
    let l = mean(SCCE, &onehot, &LossTargets::Classes(&[1, 1]));
    assert_close(&[l], &[-(EPSILON.ln())], 1e-12);
}

#[test]
fn categorical_crossentropy_from_logits() {
    // −Σ_k t_k · log_softmax(z)_k; z = [1, 2, 3], class 2: ln(e + e² + e³) − 3.
    let z = t(&[1, 3], &[1., 2., 3.]);
    let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
    let onehot = t(&[1, 3], &[0., 0., 1.]);
    assert_close(&[mean(CCE_LOGITS, &z, &LossTargets::Values(&onehot))], &[lse - 3.0], 1e-15);
    assert_close(&[mean(SCCE_LOGITS, &z, &LossTargets::Classes(&[2]))], &[lse - 3.0], 1e-15);
    // Sparse targets may also come as whole numbers in a tensor ([batch] or [batch, 1]).
    assert_close(&[mean(SCCE_LOGITS, &z, &LossTargets::Values(&t(&[1, 1], &[2.])))], &[lse - 3.0], 1e-15);
    // Label smoothing s = 0.3 over K = 3 classes: t' = t·0.7 + 0.1 = [0.1, 0.1, 0.8].
    let smooth = Loss::CategoricalCrossentropy { from_logits: true, label_smoothing: 0.3 };
    let want = 0.1 * (lse - 1.0) + 0.1 * (lse - 2.0) + 0.8 * (lse - 3.0);
    assert_close(&[mean(smooth, &z, &LossTargets::Values(&onehot))], &[want], 1e-14);
    // Logits of magnitude 1e4 give exact, finite losses (through log-sum-exp).
    let big = t(&[2, 3], &[1e4, 0., -1e4, 1e4, 0., -1e4]);
    assert_eq!(value(SCCE_LOGITS, &big, &LossTargets::Classes(&[0, 2]), Reduction::Sum), 2e4);
    assert_eq!(value(CCE_LOGITS, &big, &LossTargets::Classes(&[0, 2]), Reduction::Sum), 2e4);
    // A [batch, time, classes] output: every (batch, time) position is a sample.
    let seq = t(&[1, 2, 3], &[1., 2., 3., 1., 2., 3.]);
    assert_close(&[mean(SCCE_LOGITS, &seq, &LossTargets::Classes(&[2, 0]))], &[(2.0 * lse - 4.0) / 2.0], 1e-15);
}

#[test]
fn bad_targets_and_settings_are_errors() {
    let p = t(&[2, 3], &[0.7, 0.2, 0.1, 0.1, 0.1, 0.8]);
    let mut g = Graph::<f64>::new();
    let o = g.variable(&p);
    let err = |loss: Loss, targets: LossTargets<'_, f64>, g: &mut Graph<f64>| loss.compute(g, o, &targets).unwrap_err();
    let e = err(SCCE, LossTargets::Classes(&[0, 3]), &mut g);
    assert_eq!(
        e,
        LayerError::Loss {
            loss: "sparse_categorical_crossentropy",
            message: "target class 3 of sample 1 is out of range for 3 classes".into()
        }
    );
    assert!(err(SCCE_LOGITS, LossTargets::Classes(&[0]), &mut g)
        .to_string()
        .contains("1 class targets given for 2 samples"));
    let wrong = t(&[3, 2], &[0.; 6]);
    let e = err(CCE, LossTargets::Values(&wrong), &mut g).to_string();
    assert!(e.contains("[3, 2]") && e.contains("[2, 3]"), "{e}");
    assert!(err(Loss::MeanSquaredError, LossTargets::Classes(&[0, 1]), &mut g)
        .to_string()
        .contains("LossTargets::Values"));
    assert!(err(BCE, LossTargets::Classes(&[0, 1, 2, 0, 1, 0]), &mut g).to_string().contains("not a binary class"));
    let smooth = Loss::CategoricalCrossentropy { from_logits: true, label_smoothing: 1.5 };
    assert!(err(smooth, LossTargets::Classes(&[0, 1]), &mut g).to_string().contains("label_smoothing"));
    assert!(err(Loss::Huber { delta: 0.0 }, LossTargets::Values(&p), &mut g).to_string().contains("delta"));
    assert!(err(SCCE, LossTargets::Values(&t(&[2], &[0.5, 1.])), &mut g).to_string().contains("not a class index"));
    let v = g.variable(t(&[3], &[0.2, 0.3, 0.5]));
    let e = CCE.compute(&mut g, v, &LossTargets::Classes(&[2])).unwrap_err().to_string();
    assert!(e.contains("at least 2 axes"), "{e}");
}

#[test]
fn serde_and_helpers() {
    let loss: Loss = serde_json::from_str(r#"{"type": "CategoricalCrossentropy", "label_smoothing": 0.1}"#).unwrap();
    assert_eq!(loss, Loss::CategoricalCrossentropy { from_logits: false, label_smoothing: 0.1 });
    assert_eq!(serde_json::from_str::<Loss>(&serde_json::to_string(&loss).unwrap()).unwrap(), loss);
    let huber: Loss = serde_json::from_str(r#"{"type": "Huber"}"#).unwrap();
    assert_eq!(huber, Loss::Huber { delta: 1.0 });
    let e = serde_json::from_str::<Loss>(r#"{"type": "MeanSquaredError", "reduction": "sum"}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `reduction`"), "{e}");
    assert_eq!(loss.with_logits(), Some(Loss::CategoricalCrossentropy { from_logits: true, label_smoothing: 0.1 }));
    assert_eq!(SCCE.with_logits(), Some(SCCE_LOGITS));
    assert_eq!(BCE.with_logits(), None);
    assert!(SCCE_LOGITS.from_logits() && !CCE.from_logits());
    assert_eq!(serde_json::from_str::<Reduction>("\"sum_over_batch_size\"").unwrap(), Reduction::Mean);
}

fn weighted_value(loss: &WeightedLoss, output: &Tensor<f64>, targets: &LossTargets<'_, f64>, red: Reduction) -> f64 {
    let mut g = Graph::<f64>::new();
    let o = g.variable(output);
    let l = loss.compute_with(&mut g, o, targets, red).unwrap();
    assert_eq!(g.value(l).shape(), [] as [usize; 0], "a 0-d loss");
    g.value(l).item()
}

/// `ln(e^{z_1} + e^{z_2} + e^{z_3})`.
fn lse(z: [f64; 3]) -> f64 {
    z.iter().map(|v| v.exp()).sum::<f64>().ln()
}

#[test]
fn sparse_categorical_crossentropy_with_label_smoothing() {
    // K = 3, s = 0.3: the target row of class 2 is (1 − s)·onehot + s/K = [0.1, 0.1, 0.8].
    // From logits z = [1, 2, 3]: −Σ_k t_k (z_k − lse(z)) = lse(z) − (0.1 + 0.2 + 2.4)
    // = 3 + ln(1 + e^{−1} + e^{−2}) − 2.7 = 0.70760596444438...
    let smooth = |from_logits| Loss::SparseCategoricalCrossentropy { from_logits, label_smoothing: 0.3 };
    let z = t(&[1, 3], &[1., 2., 3.]);
    let want = lse([1., 2., 3.]) - 2.7;
    assert_close(&[want], &[0.707_605_964_444_380_2], 1e-15);
    assert_close(&[mean(smooth(true), &z, &LossTargets::Classes(&[2]))], &[want], 1e-14);
    // Whole-number targets in a tensor give the same.
    assert_close(&[mean(smooth(true), &z, &LossTargets::Values(&t(&[1], &[2.])))], &[want], 1e-14);
    // From probabilities p = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], classes [0, 2]: rows
    // [0.8, 0.1, 0.1] and [0.1, 0.1, 0.8];
    // ℓ_1 = −(0.8 ln 0.7 + 0.1 ln 0.2 + 0.1 ln 0.1), ℓ_2 = −(0.2 ln 0.1 + 0.8 ln 0.8).
    let p = t(&[2, 3], &[0.7, 0.2, 0.1, 0.1, 0.1, 0.8]);
    let l1 = -(0.8 * 0.7f64.ln() + 0.1 * 0.2f64.ln() + 0.1 * 0.1f64.ln());
    let l2 = -(0.2 * 0.1f64.ln() + 0.8 * 0.8f64.ln());
    assert_close(&[(l1 + l2) / 2.0], &[0.657_787_057_671_988_8], 1e-15);
    assert_close(&[mean(smooth(false), &p, &LossTargets::Classes(&[0, 2]))], &[(l1 + l2) / 2.0], 1e-15);
    assert_close(&[value(smooth(false), &p, &LossTargets::Classes(&[0, 2]), Reduction::Sum)], &[l1 + l2], 1e-15);
    // The same as categorical cross-entropy with one-hot targets and the same smoothing,
    // and as PyTorch's (1 − s)·nll + s·mean_k(−log q_k).
    let cce = |from_logits| Loss::CategoricalCrossentropy { from_logits, label_smoothing: 0.3 };
    assert_close(&[mean(cce(false), &p, &LossTargets::Classes(&[0, 2]))], &[(l1 + l2) / 2.0], 1e-15);
    let torch = 0.7 * (lse([1., 2., 3.]) - 3.0) + 0.3 * (3.0 * lse([1., 2., 3.]) - 6.0) / 3.0;
    assert_close(&[mean(smooth(true), &z, &LossTargets::Classes(&[2]))], &[torch], 1e-14);
    // Bit for bit the categorical loss from logits with the same smoothing; s = 1 is the
    // uniform target: lse(z) − (1 + 2 + 3)/3.
    assert_eq!(mean(smooth(true), &z, &LossTargets::Classes(&[2])), mean(cce(true), &z, &LossTargets::Classes(&[2])));
    let uniform_target = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 1.0 };
    assert_close(&[mean(uniform_target, &z, &LossTargets::Classes(&[2]))], &[lse([1., 2., 3.]) - 2.0], 1e-14);
    // with_logits keeps the smoothing.
    assert_eq!(smooth(false).with_logits(), Some(smooth(true)));
}

#[test]
fn class_weights_weight_each_sample_and_divide_by_the_batch_size() {
    let w = vec![1.0, 2.0, 0.5];
    // From probabilities, classes [0, 2]: per-sample weights [w_0, w_2] = [1, 0.5];
    // mean = (1·(−ln 0.7) + 0.5·(−ln 0.8)) / N with N = 2 (Keras), 0.23412335979791865;
    // PyTorch's weight= would divide by Σw = 1.5 instead (0.3121644797305582).
    let p = t(&[2, 3], &[0.7, 0.2, 0.1, 0.1, 0.1, 0.8]);
    let want = (-(0.7f64.ln()) - 0.5 * 0.8f64.ln()) / 2.0;
    assert_close(&[want], &[0.234_123_359_797_918_65], 1e-15);
    for loss in [SCCE, CCE] {
        let weighted = loss.with_class_weights(w.clone());
        assert_close(&[weighted_value(&weighted, &p, &LossTargets::Classes(&[0, 2]), Reduction::Mean)], &[want], 1e-15);
        assert_close(
            &[weighted_value(&weighted, &p, &LossTargets::Classes(&[0, 2]), Reduction::Sum)],
            &[2.0 * want],
            1e-15,
        );
    }
    // One-hot rows: the class is the row's argmax.
    let onehot = t(&[2, 3], &[1., 0., 0., 0., 0., 1.]);
    let weighted = CCE.with_class_weights(w.clone());
    assert_close(&[weighted_value(&weighted, &p, &LossTargets::Values(&onehot), Reduction::Mean)], &[want], 1e-15);
    // From logits z = [[1, 2, 3], [2, 0, −1]], classes [2, 0]: weights [0.5, 1];
    // ℓ_1 = lse(z_1) − 3, ℓ_2 = lse(z_2) − 2; mean (0.5·ℓ_1 + ℓ_2) / 2 = 0.18682450088923785
    // (through the fused op for sparse, the dense rows for categorical).
    let z = t(&[2, 3], &[1., 2., 3., 2., 0., -1.]);
    let (a, b) = (lse([1., 2., 3.]) - 3.0, lse([2., 0., -1.]) - 2.0);
    let want = (0.5 * a + b) / 2.0;
    assert_close(&[want], &[0.186_824_500_889_237_85], 1e-15);
    for loss in [SCCE_LOGITS, CCE_LOGITS] {
        let weighted = loss.with_class_weights(w.clone());
        assert_close(&[weighted_value(&weighted, &z, &LossTargets::Classes(&[2, 0]), Reduction::Mean)], &[want], 1e-15);
        assert_close(
            &[weighted_value(&weighted, &z, &LossTargets::Classes(&[2, 0]), Reduction::Sum)],
            &[0.5 * a + b],
            1e-15,
        );
    }
    // Smoothing and weights together, s = 0.3: rows [0.1, 0.1, 0.8] (class 2, weight 0.5)
    // and [0.8, 0.1, 0.1] (class 0, weight 1); mean 0.5118245008892379.
    let l1 = lse([1., 2., 3.]) - (0.1 + 0.2 + 2.4);
    let l2 = lse([2., 0., -1.]) - (1.6 + 0.0 - 0.1);
    let want = (0.5 * l1 + l2) / 2.0;
    assert_close(&[want], &[0.511_824_500_889_237_9], 1e-15);
    for loss in [
        Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.3 },
        Loss::CategoricalCrossentropy { from_logits: true, label_smoothing: 0.3 },
    ] {
        let weighted = loss.with_class_weights(w.clone());
        assert_close(&[weighted_value(&weighted, &z, &LossTargets::Classes(&[2, 0]), Reduction::Mean)], &[want], 1e-14);
    }
    // Unit weights change nothing; a [batch, time, classes] output weights every position.
    let ones = SCCE_LOGITS.with_class_weights(vec![1.0; 3]);
    let plain = mean(SCCE_LOGITS, &z, &LossTargets::Classes(&[2, 0]));
    assert_eq!(weighted_value(&ones, &z, &LossTargets::Classes(&[2, 0]), Reduction::Mean), plain);
    let seq = t(&[1, 2, 3], &[1., 2., 3., 2., 0., -1.]);
    let weighted = SCCE_LOGITS.with_class_weights(w.clone());
    assert_close(
        &[weighted_value(&weighted, &seq, &LossTargets::Classes(&[2, 0]), Reduction::Mean)],
        &[(0.5 * a + b) / 2.0],
        1e-15,
    );
    // The gradient is weighted too: sample 1 (weight 0.5) of the sparse loss from logits
    // gets 0.5·(softmax(z_1) − onehot(2)) / 2.
    let mut g = Graph::<f64>::new();
    let o = g.variable(&z);
    let l = weighted.compute(&mut g, o, &LossTargets::Classes(&[2, 0])).unwrap();
    let dz = g.backward(l).unwrap().wrt(o).unwrap().to_vec();
    let e = [1f64.exp(), 2f64.exp(), 3f64.exp()];
    let s: f64 = e.iter().sum();
    let want_row = [0.25 * e[0] / s, 0.25 * e[1] / s, 0.25 * (e[2] / s - 1.0)];
    assert_close(&dz[..3], &want_row, 1e-15);
}

#[test]
fn class_weight_errors_and_serde() {
    let p = t(&[2, 3], &[0.7, 0.2, 0.1, 0.1, 0.1, 0.8]);
    let mut g = Graph::<f64>::new();
    let o = g.variable(&p);
    let err = |loss: WeightedLoss, g: &mut Graph<f64>| loss.compute(g, o, &LossTargets::Classes(&[0, 2])).unwrap_err();
    assert_eq!(
        err(SCCE.with_class_weights(vec![1.0, 2.0]), &mut g),
        LayerError::Loss {
            loss: "sparse_categorical_crossentropy",
            message: "2 class weights given for 3 classes".into()
        }
    );
    let e = err(CCE.with_class_weights(vec![1.0, -2.0, 1.0]), &mut g).to_string();
    assert!(e.contains("class weight -2 of class 1"), "{e}");
    let e = err(CCE.with_class_weights(vec![1.0, f64::NAN, 1.0]), &mut g).to_string();
    assert!(e.contains("class weight NaN of class 1"), "{e}");
    let e = err(Loss::MeanSquaredError.with_class_weights(vec![1.0; 3]), &mut g).to_string();
    assert!(e.contains("class weights apply to categorical"), "{e}");
    let bad = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: -0.1 };
    assert!(err(bad.with_class_weights(vec![1.0; 3]), &mut g).to_string().contains("label_smoothing"));

    // The sparse loss's serde form is unchanged when label_smoothing is 0 (files written
    // before it existed read back, and default losses write what they always wrote).
    assert_eq!(
        serde_json::to_string(&SCCE).unwrap(),
        r#"{"type":"SparseCategoricalCrossentropy","from_logits":false}"#
    );
    let old: Loss = serde_json::from_str(r#"{"type": "SparseCategoricalCrossentropy", "from_logits": true}"#).unwrap();
    assert_eq!(old, SCCE_LOGITS);
    let smooth = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.1 };
    let json = serde_json::to_string(&smooth).unwrap();
    assert_eq!(json, r#"{"type":"SparseCategoricalCrossentropy","from_logits":true,"label_smoothing":0.1}"#);
    assert_eq!(serde_json::from_str::<Loss>(&json).unwrap(), smooth);
    let weighted = smooth.with_class_weights(vec![1.0, 0.5]);
    let json = serde_json::to_string(&weighted).unwrap();
    assert_eq!(
        json,
        r#"{"loss":{"type":"SparseCategoricalCrossentropy","from_logits":true,"label_smoothing":0.1},"class_weights":[1.0,0.5]}"#
    );
    assert_eq!(serde_json::from_str::<WeightedLoss>(&json).unwrap(), weighted);
    assert!(serde_json::from_str::<WeightedLoss>(r#"{"loss": {"type": "Huber"}, "class_weight": [1]}"#).is_err());
    assert_eq!(weighted.name(), "sparse_categorical_crossentropy");
    assert_eq!(weighted.with_logits(), None);
    assert_eq!(SCCE.with_class_weights(vec![2.0]).with_logits(), Some(SCCE_LOGITS.with_class_weights(vec![2.0])));
}

#[test]
fn balanced_weights_follow_scikit_learn() {
    // n_samples / (n_classes · count_c): counts [4, 2, 1] → 7/12, 7/6, 7/3 (scikit-learn's
    // compute_class_weight("balanced", classes=[0, 1, 2], y=[0, 0, 0, 0, 1, 1, 2])).
    assert_eq!(balanced_class_weights(&[4, 2, 1]), [7.0 / 12.0, 7.0 / 6.0, 7.0 / 3.0]);
    // An empty class gets 0 and does not count in n_classes: 10 / (3·count_c), and the
    // weighted sample count stays 10 (6·10/18 + 3·10/9 + 1·10/3).
    let w = balanced_class_weights(&[6, 3, 1, 0]);
    assert_eq!(w, [10.0 / 18.0, 10.0 / 9.0, 10.0 / 3.0, 0.0]);
    assert_close(&[6.0 * w[0] + 3.0 * w[1] + w[2]], &[10.0], 1e-15);
    assert_eq!(balanced_class_weights(&[5, 5]), [1.0, 1.0]);
    assert_eq!(balanced_class_weights(&[0, 0]), [0.0, 0.0]);
    assert!(balanced_class_weights(&[]).is_empty());
}

/// Gradchecks `compute(output)` (a loss, labelled `what` in the message) in f64.
///
/// From probabilities a loss has large higher derivatives near small p, which the
/// default step (1e-3, 4-point stencil) turns into ~1e-9 of truncation error on
/// gradients of ~1e-3: a step of 1e-4 keeps the estimate itself within TOL.
fn check_grad(
    what: &dyn std::fmt::Debug,
    output: Tensor<f64>,
    compute: impl Fn(&mut Graph<f64>, Var) -> nn_layers::Result<Var>,
) -> Result<(), TestCaseError> {
    let options = GradcheckOptions { eps: 1e-4, ..GradcheckOptions::default() };
    let report =
        gradcheck_with(&[output], options, |g: &mut Graph<f64>, v: &[Var]| compute(g, v[0]).map_err(to_autograd))
            .unwrap();
    prop_assert!(report.passes(TOL), "{what:?}: {report}");
    Ok(())
}

fn check_loss(
    loss: Loss,
    output: Tensor<f64>,
    targets: LossTargets<'_, f64>,
    reduction: Reduction,
) -> Result<(), TestCaseError> {
    check_grad(&(loss, reduction), output, |g, out| loss.compute_with(g, out, &targets, reduction))
}

fn check_weighted(
    loss: WeightedLoss,
    output: Tensor<f64>,
    targets: LossTargets<'_, f64>,
    reduction: Reduction,
) -> Result<(), TestCaseError> {
    check_grad(&(&loss, reduction), output, |g, out| loss.compute_with(g, out, &targets, reduction))
}

fn reduction() -> impl Strategy<Value = Reduction> {
    prop_oneof![Just(Reduction::Mean), Just(Reduction::Sum)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn regression_losses(batch in 1usize..4, d in 1usize..4, flat in any::<bool>(), delta in 0.2f64..2.0,
                         red in reduction(), seed in 0u64..1000) {
        let shape = if flat { vec![batch] } else { vec![batch, d] };
        let y = uniform(&shape, -1.0, 1.0, seed);
        // Errors with |e| in [0.05, 2], at least 0.02 away from ±δ (Huber's seam) and 0.
        let e = uniform(&shape, 0.05, 2.0, seed + 1).map(|v| if (v - delta).abs() < 0.02 { delta + 0.02 } else { v });
        let signs = uniform(&shape, -1.0, 1.0, seed + 2).map(|s| if s < 0.0 { -1.0 } else { 1.0 });
        let p = Tensor::from_vec(&shape, y.to_vec().iter().zip(e.to_vec()).zip(signs.to_vec()).map(|((y, e), s)| y + s * e).collect());
        for loss in [Loss::MeanSquaredError, Loss::MeanAbsoluteError, Loss::Huber { delta }] {
            check_loss(loss, p.clone(), LossTargets::Values(&y), red)?;
        }
    }

    #[test]
    fn binary_losses(batch in 1usize..4, d in 1usize..3, smoothing in 0.0f64..0.5, red in reduction(), seed in 0u64..1000) {
        let y = uniform(&[batch, d], 0.0, 1.0, seed);
        let p = uniform(&[batch, d], 0.05, 0.95, seed + 1);
        check_loss(Loss::BinaryCrossentropy { from_logits: false, label_smoothing: smoothing }, p, LossTargets::Values(&y), red)?;
        let x = uniform(&[batch, d], -4.0, 4.0, seed + 2);
        check_loss(Loss::BinaryCrossentropy { from_logits: true, label_smoothing: smoothing }, x, LossTargets::Values(&y), red)?;
    }

    #[test]
    fn categorical_losses(batch in 1usize..4, classes in 2usize..5, smoothing in 0.0f64..0.5, red in reduction(),
                          seed in 0u64..1000) {
        let labels: Vec<usize> = (0..batch).map(|i| (i * 3 + seed as usize) % classes).collect();
        let soft = uniform(&[batch, classes], 0.0, 1.0, seed);
        let z = uniform(&[batch, classes], -3.0, 3.0, seed + 1);
        let p = uniform(&[batch, classes], 0.1, 1.0, seed + 2); // positive, not normalised
        for from_logits in [true, false] {
            let out = if from_logits { z.clone() } else { p.clone() };
            let cce = Loss::CategoricalCrossentropy { from_logits, label_smoothing: smoothing };
            check_loss(cce, out.clone(), LossTargets::Values(&soft), red)?;
            check_loss(cce, out.clone(), LossTargets::Classes(&labels), red)?;
            let scce = Loss::SparseCategoricalCrossentropy { from_logits, label_smoothing: smoothing };
            check_loss(scce, out, LossTargets::Classes(&labels), red)?;
        }
    }

    #[test]
    fn smoothed_and_class_weighted_losses(batch in 1usize..4, classes in 2usize..5, smoothing in 0.0f64..0.5,
                                          red in reduction(), seed in 0u64..1000) {
        let labels: Vec<usize> = (0..batch).map(|i| (i * 3 + seed as usize) % classes).collect();
        let weights = uniform(&[classes], 0.0, 3.0, seed + 3).to_vec();
        let soft = uniform(&[batch, classes], 0.0, 1.0, seed);
        let z = uniform(&[batch, classes], -3.0, 3.0, seed + 1);
        let p = uniform(&[batch, classes], 0.1, 1.0, seed + 2);
        for from_logits in [true, false] {
            let out = if from_logits { z.clone() } else { p.clone() };
            for s in [0.0, smoothing] {
                let scce = Loss::SparseCategoricalCrossentropy { from_logits, label_smoothing: s };
                let cce = Loss::CategoricalCrossentropy { from_logits, label_smoothing: s };
                check_loss(scce, out.clone(), LossTargets::Classes(&labels), red)?;
                check_weighted(scce.with_class_weights(weights.clone()), out.clone(), LossTargets::Classes(&labels), red)?;
                check_weighted(cce.with_class_weights(weights.clone()), out.clone(), LossTargets::Classes(&labels), red)?;
                check_weighted(cce.with_class_weights(weights.clone()), out.clone(), LossTargets::Values(&soft), red)?;
            }
        }
    }
}
