//! Helpers shared by the integration tests.
#![allow(dead_code)]

use nn_autograd::{gradcheck, AutogradError, GradcheckReport, Graph, Var};
use nn_layers::{ForwardCtx, Layer, LayerError, LayerSpec, Mode, ParamKind, Tensor};
use nn_tensor::random::seeded_rng;

/// Worst relative error accepted by the gradient checks (see nn-autograd's tests:
/// fourth-order central differences with h = 1e-3·max(1, |x|) agree with a correct
/// gradient to about 1e-9 on these sizes; a rule off by a factor 1 + 1e-6 fails).
pub const TOL: f64 = 1e-6;

/// Uniform values in `[lo, hi)`.
pub fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor<f64> {
    Tensor::random_uniform(shape, lo, hi, &mut seeded_rng(seed)).unwrap()
}

/// Uniform values in `[-2, 2)` at least 0.01 (> 2h) away from 0.
pub fn away_from_zero(shape: &[usize], seed: u64) -> Tensor<f64> {
    uniform(shape, -2.0, 2.0, seed).map(|v| if v.abs() < 0.01 { 0.01f64.copysign(v) } else { v })
}

/// Distinct values at least 0.05 apart (no ties for max-pool): a seeded shuffle of
/// `0.05·(i − n/2)`.
pub fn distinct(shape: &[usize], seed: u64) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let keys = uniform(&[n], 0.0, 1.0, seed).to_vec();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    Tensor::from_vec(shape, order.iter().map(|&i| 0.05 * (i as f64 - n as f64 / 2.0)).collect())
}

/// Layer errors as autograd errors, for gradcheck closures.
pub fn to_autograd(e: LayerError) -> AutogradError {
    AutogradError::InvalidArgument { op: "layer", message: e.to_string() }
}

/// Random parameter values for a built layer: moving variances in `[0.5, 1.5)`,
/// everything else in `[-1, 1)`.
pub fn random_params(layer: &dyn Layer<f64>, seed: u64) -> Vec<Tensor<f64>> {
    layer
        .param_specs()
        .iter()
        .enumerate()
        .map(|(k, p)| match p.kind {
            ParamKind::MovingVariance => uniform(&p.shape, 0.5, 1.5, seed + 100 + k as u64),
            _ => uniform(&p.shape, -1.0, 1.0, seed + 100 + k as u64),
        })
        .collect()
}

/// Gradchecks layer `spec` (built for per-sample shape `sample`) with respect to its
/// input `x` and every parameter, in `mode`. The dropout generator is re-seeded on
/// every evaluation, so each evaluation draws the same mask.
pub fn check_layer(spec: LayerSpec, sample: &[usize], x: Tensor<f64>, mode: Mode, seed: u64) -> GradcheckReport {
    let layer = spec.build::<f64>(0, sample).unwrap();
    let mut inputs = vec![x];
    inputs.extend(random_params(layer.as_ref(), seed));
    gradcheck(&inputs, |g: &mut Graph<f64>, v: &[Var]| {
        let mut rng = seeded_rng(seed);
        let mut ctx = ForwardCtx::new(mode, &mut rng);
        layer.forward(g, v[0], &v[1..], &mut ctx).map_err(to_autograd)
    })
    .unwrap()
}

/// Runs a layer forward on `x` with parameter values `params` on a no-grad graph.
pub fn run_layer(
    layer: &dyn Layer<f64>,
    x: Tensor<f64>,
    params: &[Tensor<f64>],
    mode: Mode,
    seed: u64,
) -> (Tensor<f64>, Vec<(String, Tensor<f64>)>) {
    let mut g = Graph::<f64>::no_grad();
    let xv = g.input(x);
    let pv: Vec<Var> = params.iter().map(|p| g.constant(p)).collect();
    let mut rng = seeded_rng(seed);
    let mut ctx = ForwardCtx::new(mode, &mut rng);
    let y = layer.forward(&mut g, xv, &pv, &mut ctx).unwrap();
    (g.value(y).clone(), ctx.state_updates)
}

/// `|a − b| ≤ tol` element-wise, with a message.
pub fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "lengths differ: {got:?} vs {want:?}");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol, "element {i}: got {a}, want {b} (all: {got:?})");
    }
}
