//! Synchronised BatchNormalization (a [`CrossReplicaSum`] in the [`ForwardCtx`]): `R`
//! ranks, here threads, each holding a contiguous share of one batch, must together
//! compute exactly what single-process BatchNormalization computes on the whole
//! batch: the same output rows, the same input-gradient rows, gamma/beta gradients
//! whose sum over ranks is the whole-batch one, and the same moving-statistic updates
//! on every rank. All in f64.
//!
//! The oracle is the unsynchronised layer on the whole batch (itself gradchecked in
//! `gradcheck_layers.rs`), hand-computed values, and a finite-difference check of the
//! synchronised op across two ranks.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use common::uniform;
use nn_autograd::Graph;
use nn_layers::{
    BatchNormConfig, CrossReplicaSum, ForwardCtx, Layer, LayerError, LayerSpec, Mode, ModelSpec, Sequential, Tensor,
    Var,
};
use nn_tensor::random::seeded_rng;

// ------------------------------------------------------------------ test collectives

/// What the ranks of one [`ThreadSum`] group share.
#[derive(Debug)]
struct Hub {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f64>>>,
}

/// A [`CrossReplicaSum`] over the threads of one process: every rank deposits its
/// buffer, waits for the others, and sums the deposits in rank order (so every rank
/// gets the same bits), then waits again before a slot can be reused.
#[derive(Debug)]
struct ThreadSum {
    rank: usize,
    hub: Arc<Hub>,
}

impl ThreadSum {
    /// One handle per rank of a group of `size`.
    fn group(size: usize) -> Vec<Arc<dyn CrossReplicaSum>> {
        let hub = Arc::new(Hub { barrier: Barrier::new(size), slots: Mutex::new(vec![Vec::new(); size]) });
        (0..size).map(|rank| Arc::new(ThreadSum { rank, hub: Arc::clone(&hub) }) as Arc<dyn CrossReplicaSum>).collect()
    }
}

impl CrossReplicaSum for ThreadSum {
    fn sum_f64(&self, values: &mut [f64]) -> Result<(), String> {
        self.hub.slots.lock().unwrap()[self.rank] = values.to_vec();
        self.hub.barrier.wait();
        let result = {
            let slots = self.hub.slots.lock().unwrap();
            if slots.iter().any(|s| s.len() != values.len()) {
                Err(format!("lengths differ across ranks: {:?}", slots.iter().map(Vec::len).collect::<Vec<_>>()))
            } else {
                let mut total = vec![0.0f64; values.len()];
                for slot in slots.iter() {
                    total.iter_mut().zip(slot).for_each(|(t, &v)| *t += v);
                }
                values.copy_from_slice(&total);
                Ok(())
            }
        };
        self.hub.barrier.wait();
        result
    }
}

/// The sum over a group of one rank: nothing to do.
#[derive(Debug)]
struct NoopSum;

impl CrossReplicaSum for NoopSum {
    fn sum_f64(&self, _values: &mut [f64]) -> Result<(), String> {
        Ok(())
    }
}

/// A one-rank sum that records the length of every buffer it is given.
#[derive(Debug, Default)]
struct RecordingSum {
    lengths: Mutex<Vec<usize>>,
}

impl CrossReplicaSum for RecordingSum {
    fn sum_f64(&self, values: &mut [f64]) -> Result<(), String> {
        self.lengths.lock().unwrap().push(values.len());
        Ok(())
    }
}

/// A one-rank sum whose call number `fail_at` (0-based) fails.
#[derive(Debug)]
struct FailingSum {
    fail_at: usize,
    calls: AtomicUsize,
}

impl CrossReplicaSum for FailingSum {
    fn sum_f64(&self, _values: &mut [f64]) -> Result<(), String> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == self.fail_at {
            Err("link to rank 1 lost".to_string())
        } else {
            Ok(())
        }
    }
}

// ------------------------------------------------------------------ helpers

/// What one rank (or the whole batch) computed.
#[derive(Debug, Clone)]
struct Run {
    y: Vec<f64>,
    dx: Vec<f64>,
    dgamma: Vec<f64>,
    dbeta: Vec<f64>,
    updates: Vec<(String, Vec<f64>)>,
}

/// A BatchNormalization layer (momentum 0.9, so the update is visible) for per-sample
/// shape `sample`, with random γ, β, moving mean in `[-1, 1)`, moving variance in
/// `[0.5, 1.5)`.
fn layer_and_params(sample: &[usize], seed: u64) -> (Box<dyn Layer<f64>>, Vec<Tensor<f64>>) {
    let spec = LayerSpec::BatchNormalization(BatchNormConfig::default().with_momentum(0.9));
    let layer = spec.build::<f64>(3, sample).unwrap();
    let c = *sample.last().unwrap();
    let params = vec![
        uniform(&[c], 0.5, 1.5, seed + 1),
        uniform(&[c], -1.0, 1.0, seed + 2),
        uniform(&[c], -1.0, 1.0, seed + 3),
        uniform(&[c], 0.5, 1.5, seed + 4),
    ];
    (layer, params)
}

/// Runs `layer` forward in training mode on `x` (with `sum` as the cross-replica sum,
/// if any), then backward with seed `w` (the loss `Σ w ⊙ y`).
fn run(
    layer: &dyn Layer<f64>,
    params: &[Tensor<f64>],
    x: &Tensor<f64>,
    w: &Tensor<f64>,
    sum: Option<Arc<dyn CrossReplicaSum>>,
) -> Run {
    let mut g = Graph::<f64>::new();
    let xv = g.variable(x);
    // γ and β are trained; the moving statistics are constants, as in a model.
    let pv: Vec<Var> =
        params.iter().enumerate().map(|(k, p)| if k < 2 { g.variable(p) } else { g.constant(p) }).collect();
    let mut rng = seeded_rng(0);
    let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
    if let Some(sum) = sum {
        ctx = ctx.with_cross_replica(sum);
    }
    let y = layer.forward(&mut g, xv, &pv, &mut ctx).unwrap();
    let grads = g.backward_with_seed(y, w.clone()).unwrap();
    Run {
        y: g.value(y).to_vec(),
        dx: grads.wrt(xv).unwrap().to_vec(),
        dgamma: grads.wrt(pv[0]).unwrap().to_vec(),
        dbeta: grads.wrt(pv[1]).unwrap().to_vec(),
        updates: ctx.state_updates.into_iter().map(|(n, t)| (n, t.to_vec())).collect(),
    }
}

/// What one forward pass of [`forward_with_sum`] left.
struct Forward {
    /// The graph, for a backward pass.
    g: Graph<f64>,
    /// The layer's output, or its error.
    y: Result<Var, LayerError>,
    /// The context's state updates.
    state_updates: Vec<(String, Tensor<f64>)>,
}

/// Runs `layer` forward once on `x` in `mode` with `sum` as the cross-replica sum, on
/// a fresh graph: with `grad`, `x` and the parameters are variables; without, the
/// graph is a no-grad one with `x` an input and the parameters constants.
fn forward_with_sum(
    layer: &dyn Layer<f64>,
    params: &[Tensor<f64>],
    x: &Tensor<f64>,
    mode: Mode,
    grad: bool,
    sum: Arc<dyn CrossReplicaSum>,
) -> Forward {
    let (mut g, xv, pv) = if grad {
        let mut g = Graph::<f64>::new();
        let xv = g.variable(x);
        let pv: Vec<Var> = params.iter().map(|p| g.variable(p)).collect();
        (g, xv, pv)
    } else {
        let mut g = Graph::<f64>::no_grad();
        let xv = g.input(x);
        let pv: Vec<Var> = params.iter().map(|p| g.constant(p)).collect();
        (g, xv, pv)
    };
    let mut rng = seeded_rng(0);
    let mut ctx = ForwardCtx::new(mode, &mut rng).with_cross_replica(sum);
    let y = layer.forward(&mut g, xv, &pv, &mut ctx);
    Forward { g, y, state_updates: ctx.state_updates }
}

/// Splits `x` along its first axis into contiguous shares of `shares[r]` samples.
fn split(x: &Tensor<f64>, shares: &[usize]) -> Vec<Tensor<f64>> {
    let per_sample: usize = x.shape()[1..].iter().product();
    assert_eq!(shares.iter().sum::<usize>(), x.shape()[0]);
    let values = x.to_vec();
    let mut start = 0;
    shares
        .iter()
        .map(|&n| {
            let mut shape = x.shape().to_vec();
            shape[0] = n;
            let part = values[start * per_sample..(start + n) * per_sample].to_vec();
            start += n;
            Tensor::from_vec(&shape, part)
        })
        .collect()
}

/// Runs `f(x_r, w_r, sum_r)` for every share `r`, one thread per rank joined by a
/// [`ThreadSum`] group, and returns the results in rank order.
fn on_ranks<T: Send>(
    xs: &[Tensor<f64>],
    ws: &[Tensor<f64>],
    f: impl Fn(&Tensor<f64>, &Tensor<f64>, Arc<dyn CrossReplicaSum>) -> T + Sync,
) -> Vec<T> {
    let sums = ThreadSum::group(xs.len());
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = xs.iter().zip(ws).zip(sums).map(|((x, w), sum)| s.spawn(move || f(x, w, sum))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Runs one rank per share, as threads joined by a [`ThreadSum`] group.
fn run_ranks(layer: &dyn Layer<f64>, params: &[Tensor<f64>], xs: &[Tensor<f64>], ws: &[Tensor<f64>]) -> Vec<Run> {
    on_ranks(xs, ws, |x, w, sum| run(layer, params, x, w, Some(sum)))
}

/// `|a − b| ≤ tol · max(1, |b|)` element-wise.
#[track_caller]
fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * y.abs().max(1.0), "{what}[{i}]: {x} vs {y} (tolerance {tol})");
    }
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The rows of `whole` (values of a `[batch, ...]` tensor, `per_sample` values a
/// sample) that belong to each share.
fn rows(whole: &[f64], shares: &[usize], per_sample: usize) -> Vec<Vec<f64>> {
    let mut start = 0;
    shares
        .iter()
        .map(|&n| {
            let part = whole[start * per_sample..(start + n) * per_sample].to_vec();
            start += n;
            part
        })
        .collect()
}

/// Checks (a) forward rows, (b) input-gradient rows and summed γ/β gradients, and
/// (c) identical moving-statistic updates, for `sample`-shaped samples split into
/// `shares`.
fn check_against_whole_batch(sample: &[usize], shares: &[usize], seed: u64) {
    let (layer, params) = layer_and_params(sample, seed);
    let mut shape = vec![shares.iter().sum::<usize>()];
    shape.extend(sample);
    let per_sample: usize = sample.iter().product();
    // Features with different offsets and spreads, so the statistics are not trivial.
    let x = uniform(&shape, -2.0, 3.0, seed + 10);
    let w = uniform(&shape, -1.0, 1.0, seed + 11);
    let whole = run(layer.as_ref(), &params, &x, &w, None);
    let ranks = run_ranks(layer.as_ref(), &params, &split(&x, shares), &split(&w, shares));

    let what = format!("sample {sample:?}, shares {shares:?}");
    let (y_rows, dx_rows) = (rows(&whole.y, shares, per_sample), rows(&whole.dx, shares, per_sample));
    let (mut dgamma, mut dbeta) = (vec![0.0; params[0].len()], vec![0.0; params[0].len()]);
    for (r, rank) in ranks.iter().enumerate() {
        // (a) the output rows.
        assert_close(&rank.y, &y_rows[r], 1e-12, &format!("{what}: rank {r} output"));
        // (b) the input-gradient rows (loss_r = Σ w ⊙ y_r sums to the whole-batch loss).
        assert_close(&rank.dx, &dx_rows[r], 1e-10, &format!("{what}: rank {r} input gradient"));
        dgamma.iter_mut().zip(&rank.dgamma).for_each(|(s, &v)| *s += v);
        dbeta.iter_mut().zip(&rank.dbeta).for_each(|(s, &v)| *s += v);
        // (c) the moving-statistic updates: the same bits on every rank, equal to the
        // whole batch's.
        assert_eq!(rank.updates.len(), 2);
        for ((name, value), (want_name, want)) in rank.updates.iter().zip(&whole.updates) {
            assert_eq!(name, want_name);
            assert_eq!(bits(value), bits(&ranks[0].updates.iter().find(|(n, _)| n == name).unwrap().1));
            assert_close(value, want, 1e-12, &format!("{what}: rank {r} {name}"));
        }
    }
    assert_eq!(whole.updates[0].0, "layers.3.moving_mean");
    assert_eq!(whole.updates[1].0, "layers.3.moving_variance");
    assert_close(&dgamma, &whole.dgamma, 1e-10, &format!("{what}: Σ_r gamma gradient"));
    assert_close(&dbeta, &whole.dbeta, 1e-10, &format!("{what}: Σ_r beta gradient"));
    // The local γ/β gradients really are local (not already summed): they differ
    // between ranks holding different rows.
    if shares.iter().filter(|&&n| n > 0).count() > 1 {
        assert_ne!(bits(&ranks[0].dbeta), bits(&ranks[ranks.len() - 1].dbeta), "{what}: local beta gradients");
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn two_ranks_match_the_whole_batch() {
    for seed in [0, 7, 42] {
        check_against_whole_batch(&[4], &[3, 3], seed);
        check_against_whole_batch(&[4], &[2, 3], seed); // uneven: 5 rows as 2 + 3
        check_against_whole_batch(&[4], &[1, 6], seed);
    }
}

#[test]
fn three_ranks_match_the_whole_batch() {
    for seed in [1, 8] {
        check_against_whole_batch(&[3], &[2, 2, 2], seed);
        check_against_whole_batch(&[3], &[1, 2, 2], seed); // uneven: 5 rows as 1 + 2 + 2
        check_against_whole_batch(&[3], &[4, 1, 3], seed);
    }
}

#[test]
fn nhwc_images_match_the_whole_batch() {
    // Statistics over batch, height and width: each rank's share holds whole images.
    check_against_whole_batch(&[2, 3, 2], &[2, 1], 3);
    check_against_whole_batch(&[2, 2, 3], &[1, 1, 2], 4);
}

#[test]
fn a_rank_with_an_empty_share_still_takes_part() {
    // Rank 1 has no rows: it joins every sum, gets an empty output and gradient, and
    // the same moving-statistic update as the others.
    check_against_whole_batch(&[3], &[2, 0, 3], 5);
}

#[test]
fn hand_computed_two_rank_values() {
    // One feature; rank 0 holds 0, 2 and rank 1 holds 4, 6: global mean 3, biased
    // variance (9 + 1 + 1 + 9) / 4 = 5. γ = 2, β = 0.5, moving mean 0.1, moving
    // variance 1, momentum 0.9.
    let spec = LayerSpec::BatchNormalization(BatchNormConfig::default().with_momentum(0.9));
    let layer = spec.build::<f64>(0, &[1]).unwrap();
    let params = [[2.0], [0.5], [0.1], [1.0]].map(|v| Tensor::from_vec(&[1], v.to_vec()));
    let xs = [Tensor::from_vec(&[2, 1], vec![0.0, 2.0]), Tensor::from_vec(&[2, 1], vec![4.0, 6.0])];
    // Seed gradient: 1 on every row, so Σ_all g = 4 and Σ_all g·x̂ = 0: dx = 0.
    let ws = [Tensor::ones(&[2, 1]), Tensor::ones(&[2, 1])];
    let ranks = run_ranks(layer.as_ref(), &params, &xs, &ws);
    let s = (5.0f64 + 1e-3).sqrt();
    assert_close(&ranks[0].y, &[-6.0 / s + 0.5, -2.0 / s + 0.5], 1e-15, "rank 0 output");
    assert_close(&ranks[1].y, &[2.0 / s + 0.5, 6.0 / s + 0.5], 1e-15, "rank 1 output");
    for rank in &ranks {
        assert_close(&rank.dx, &[0.0, 0.0], 1e-15, "input gradient");
        assert_close(&rank.updates[0].1, &[0.9 * 0.1 + 0.1 * 3.0], 1e-15, "moving mean");
        assert_close(&rank.updates[1].1, &[0.9 + 0.1 * 5.0], 1e-15, "moving variance");
        assert_eq!(rank.dbeta, [2.0]); // local: two rows of gradient 1
    }
    assert_close(&ranks[0].dgamma, &[-4.0 / s], 1e-15, "rank 0 gamma gradient"); // x̂ = −3/s, −1/s
    assert_close(&ranks[1].dgamma, &[4.0 / s], 1e-15, "rank 1 gamma gradient");

    // Seed 1 on rank 0's first row only: with M = 4,
    // dx_i = γ/s · (g_i − 1/4 − x̂_i · x̂_0 / 4), x̂ = (−3, −1, 1, 3)/s, on both ranks.
    let ws = [Tensor::from_vec(&[2, 1], vec![1.0, 0.0]), Tensor::zeros(&[2, 1])];
    let ranks = run_ranks(layer.as_ref(), &params, &xs, &ws);
    let xhat = [-3.0 / s, -1.0 / s, 1.0 / s, 3.0 / s];
    let dx: Vec<f64> =
        (0..4).map(|i| 2.0 / s * (f64::from(u8::from(i == 0)) - 0.25 - xhat[i] * xhat[0] / 4.0)).collect();
    assert_close(&ranks[0].dx, &dx[..2], 1e-15, "rank 0 input gradient");
    assert_close(&ranks[1].dx, &dx[2..], 1e-15, "rank 1 input gradient");
}

#[test]
fn one_rank_equals_unsynchronised_batch_norm_bit_for_bit() {
    for (sample, batch, seed) in [(vec![4], 5, 0), (vec![2, 3, 3], 2, 1), (vec![1], 1, 2)] {
        let (layer, params) = layer_and_params(&sample, seed);
        let mut shape = vec![batch];
        shape.extend(&sample);
        let x = uniform(&shape, -2.0, 3.0, seed + 10);
        let w = uniform(&shape, -1.0, 1.0, seed + 11);
        let plain = run(layer.as_ref(), &params, &x, &w, None);
        let synced = run(layer.as_ref(), &params, &x, &w, Some(Arc::new(NoopSum)));
        assert_eq!(bits(&synced.y), bits(&plain.y), "{sample:?}: output");
        assert_eq!(bits(&synced.dx), bits(&plain.dx), "{sample:?}: input gradient");
        assert_eq!(bits(&synced.dgamma), bits(&plain.dgamma), "{sample:?}: gamma gradient");
        assert_eq!(bits(&synced.dbeta), bits(&plain.dbeta), "{sample:?}: beta gradient");
        for ((n, a), (m, b)) in synced.updates.iter().zip(&plain.updates) {
            assert_eq!(n, m);
            assert_eq!(bits(a), bits(b), "{sample:?}: {n}");
        }
    }
}

/// The two-rank loss `Σ_r Σ w_r ⊙ y_r` as a function of every rank's input and of γ
/// (shared by the ranks), forward only on no-grad graphs.
fn two_rank_loss(layer: &dyn Layer<f64>, params: &[Tensor<f64>], xs: &[Tensor<f64>], ws: &[Tensor<f64>]) -> f64 {
    let losses = on_ranks(xs, ws, |x, w, sum| {
        let forward = forward_with_sum(layer, params, x, Mode::Train, false, sum);
        let y = forward.y.unwrap();
        forward.g.value(y).to_vec().iter().zip(w.to_vec()).map(|(a, b)| a * b).sum::<f64>()
    });
    // Summed in rank order: every evaluation adds the same way.
    losses.into_iter().sum()
}

#[test]
fn finite_differences_across_two_ranks() {
    // Every input element of both ranks, and every γ and β element (perturbed on both
    // ranks at once, as a shared parameter is), against the analytic gradient: the
    // rank's input gradient, and the sum of the ranks' local γ/β gradients.
    // Fourth-order central differences, h = 1e-3·max(1, |v|).
    let (layer, params) = layer_and_params(&[3], 21);
    let x = uniform(&[5, 3], -2.0, 3.0, 31);
    let w = uniform(&[5, 3], -1.0, 1.0, 32);
    let shares = [2, 3];
    let (xs, ws) = (split(&x, &shares), split(&w, &shares));
    let ranks = run_ranks(layer.as_ref(), &params, &xs, &ws);
    let loss = |xs: &[Tensor<f64>], params: &[Tensor<f64>]| two_rank_loss(layer.as_ref(), params, xs, &ws);
    let numeric = |f: &dyn Fn(f64) -> f64, v: f64| {
        let h = 1e-3 * v.abs().max(1.0);
        (-f(v + 2.0 * h) + 8.0 * f(v + h) - 8.0 * f(v - h) + f(v - 2.0 * h)) / (12.0 * h)
    };
    let mut worst = 0.0f64;
    let mut compare = |analytic: f64, numeric: f64| {
        worst = worst.max((analytic - numeric).abs() / analytic.abs().max(1.0));
    };
    for r in 0..2 {
        for i in 0..xs[r].len() {
            let v = xs[r].to_vec()[i];
            let f = |t: f64| {
                let mut xs = xs.clone();
                let mut values = xs[r].to_vec();
                values[i] = t;
                xs[r] = Tensor::from_vec(xs[r].shape(), values);
                loss(&xs, &params)
            };
            compare(ranks[r].dx[i], numeric(&f, v));
        }
    }
    for p in 0..2 {
        let local = |run: &Run| if p == 0 { run.dgamma.clone() } else { run.dbeta.clone() };
        for k in 0..3 {
            let analytic: f64 = ranks.iter().map(|run| local(run)[k]).sum();
            let v = params[p].to_vec()[k];
            let f = |t: f64| {
                let mut params = params.clone();
                let mut values = params[p].to_vec();
                values[k] = t;
                params[p] = Tensor::from_vec(&[3], values);
                loss(&xs, &params)
            };
            compare(analytic, numeric(&f, v));
        }
    }
    assert!(worst < 1e-8, "worst relative error {worst:e}");
}

#[test]
fn a_model_with_dense_layers_matches_the_whole_batch() {
    // Dense → BatchNormalization → Dense, run as 2 ranks with shares 2 + 3 of 5
    // rows: every parameter's gradient summed over ranks equals the whole batch's,
    // and every rank's BatchNormalization update equals the whole batch's.
    let spec = r#"{
        "input_shape": [4],
        "layers": [
            {"type": "Dense", "units": 3, "activation": "tanh"},
            {"type": "BatchNormalization", "momentum": 0.8},
            {"type": "Dense", "units": 2}
        ]
    }"#;
    let model = Sequential::<f64>::new(ModelSpec::from_json(spec).unwrap(), 5).unwrap();
    let x = uniform(&[5, 4], -1.0, 1.0, 50);
    let w = uniform(&[5, 2], -1.0, 1.0, 51);
    let shares = [2, 3];
    let step = |x: &Tensor<f64>, w: &Tensor<f64>, sum: Option<Arc<dyn CrossReplicaSum>>| {
        let mut g = Graph::<f64>::new();
        let xv = g.input(x);
        let mut rng = seeded_rng(0);
        let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
        ctx.cross_replica = sum;
        let y = model.forward(&mut g, xv, &mut ctx).unwrap();
        let grads = g.backward_with_seed(y, w.clone()).unwrap();
        let grads: Vec<(String, Vec<f64>)> = grads.into_iter().map(|(n, t)| (n, t.to_vec())).collect();
        (g.value(y).to_vec(), grads, ctx.state_updates)
    };
    let (whole_y, whole_grads, whole_updates) = step(&x, &w, None);
    let (xs, ws) = (split(&x, &shares), split(&w, &shares));
    let ranks = on_ranks(&xs, &ws, |x, w, sum| step(x, w, Some(sum)));
    let y_rows = rows(&whole_y, &shares, 2);
    for (r, (y, _, updates)) in ranks.iter().enumerate() {
        assert_close(y, &y_rows[r], 1e-12, &format!("rank {r} output"));
        assert_eq!(updates.len(), 2);
        for ((n, t), (m, u)) in updates.iter().zip(&whole_updates) {
            assert_eq!(n, m);
            assert_close(&t.to_vec(), &u.to_vec(), 1e-12, &format!("rank {r} {n}"));
        }
    }
    assert_eq!(whole_grads.len(), 6); // two Dense kernels and biases, γ, β
    for (k, (name, want)) in whole_grads.iter().enumerate() {
        let mut total = vec![0.0; want.len()];
        for (_, grads, _) in &ranks {
            assert_eq!(&grads[k].0, name);
            total.iter_mut().zip(&grads[k].1).for_each(|(s, &v)| *s += v);
        }
        assert_close(&total, want, 1e-10, &format!("Σ_r gradient of {name}"));
    }
}

#[test]
fn sum_errors_are_errors_not_panics() {
    let (layer, params) = layer_and_params(&[2], 0);
    let x = uniform(&[3, 2], -1.0, 1.0, 1);
    // Forward: the first sum fails.
    let sum = Arc::new(FailingSum { fail_at: 0, calls: AtomicUsize::new(0) });
    let forward = forward_with_sum(layer.as_ref(), &params, &x, Mode::Train, true, sum);
    let err = forward.y.unwrap_err();
    assert!(matches!(err, LayerError::Autograd(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("batch_norm_train_sync: the cross-replica sum"), "{msg}");
    assert!(msg.contains("link to rank 1 lost"), "{msg}");
    assert!(forward.state_updates.is_empty());

    // Backward: the third sum (the gradient sums) fails; forward went through.
    let sum = Arc::new(FailingSum { fail_at: 2, calls: AtomicUsize::new(0) });
    let forward = forward_with_sum(layer.as_ref(), &params, &x, Mode::Train, true, sum);
    let y = forward.y.unwrap();
    let err = forward.g.backward_with_seed(y, Tensor::ones(&[3, 2])).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cross-replica sum of the per-feature gradient sums failed: link to rank 1 lost"), "{msg}");
}

#[test]
fn the_calls_each_rank_makes() {
    // Per BatchNormalization op: [Σx | m] and Σ(x − μ)² in forward, [Σg | Σg·x̂] in
    // backward; on a no-grad graph only the forward two.
    let (layer, params) = layer_and_params(&[2], 0);
    let x = uniform(&[4, 2], -1.0, 1.0, 1);
    let sum = Arc::new(RecordingSum::default());
    run(layer.as_ref(), &params, &x, &Tensor::ones(&[4, 2]), Some(Arc::clone(&sum) as _));
    assert_eq!(*sum.lengths.lock().unwrap(), [3, 2, 4]);

    let sum = Arc::new(RecordingSum::default());
    let forward = forward_with_sum(layer.as_ref(), &params, &x, Mode::Train, false, Arc::clone(&sum) as _);
    forward.y.unwrap();
    assert_eq!(*sum.lengths.lock().unwrap(), [3, 2]);
    assert_eq!(forward.state_updates.len(), 2);
}

#[test]
fn evaluation_ignores_the_cross_replica_sum() {
    // A sum that would fail is never called in evaluation mode.
    let (layer, params) = layer_and_params(&[2], 0);
    let x = uniform(&[4, 2], -1.0, 1.0, 1);
    let failing = Arc::new(FailingSum { fail_at: 0, calls: AtomicUsize::new(0) });
    let forward = forward_with_sum(layer.as_ref(), &params, &x, Mode::Eval, true, Arc::clone(&failing) as _);
    let y = forward.y.unwrap();
    forward.g.backward_with_seed(y, Tensor::ones(&[4, 2])).unwrap();
    assert_eq!(failing.calls.load(Ordering::SeqCst), 0);
    assert!(forward.state_updates.is_empty());
}
