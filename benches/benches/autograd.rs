//! The autograd graph's overhead and the convolution's cost, in FLOP/s (criterion
//! `Throughput::Elements` counts floating-point operations, so "elem/s" reads as FLOP/s).
//!
//! - `mlp_step`: one training step (forward, cross-entropy, backward) of a
//!   784→128→10 MLP with ReLU at batch 128, through the graph (`graph`) and as the
//!   same maths written directly on arrays (`direct`); the gap is the graph's overhead.
//! - `conv2d`: forward and backward of the seed CNN's first layer (batch 128, 28×28×1
//!   input, 32 filters 3×3, stride 1, valid), the input being data (no input gradient).
//!
//! - `train_step_batch128`: one full training step (forward, cross-entropy, backward;
//!   no optimizer) of the seed CNN (conv 3×3×32 + relu → max-pool 2×2 → flatten →
//!   Dense 5408→128 + relu → Dense 128→10) and of the 784→128→10 MLP, through
//!   nn-autograd's ops, in samples per second (`Throughput::Elements(batch)`, so
//!   "elem/s" reads as samples/s and the time is the time per step). Parameters are
//!   bound through `Arc`s, as a layer holding them would, so no step copies them.
//!
//! Full run: `cargo bench -p nn-benches --bench autograd`
//! Quick run (CI): `cargo bench -p nn-benches --bench autograd -- --quick`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array2, Axis, Ix2};
use nn_autograd::{Graph, Padding, Tensor};
use nn_tensor::gemm::gemm;
use nn_tensor::random::seeded_rng;

const BATCH: usize = 128;

fn uniform(shape: &[usize], scale: f32, seed: u64) -> Tensor<f32> {
    Tensor::random_uniform(shape, -scale, scale, &mut seeded_rng(seed)).unwrap()
}

struct Mlp {
    x: Tensor<f32>,
    targets: Vec<usize>,
    w1: Tensor<f32>,
    b1: Tensor<f32>,
    w2: Tensor<f32>,
    b2: Tensor<f32>,
}

fn view2(t: &Tensor<f32>) -> ndarray::ArrayView2<'_, f32> {
    t.array().view().into_dimensionality::<Ix2>().unwrap()
}

impl Mlp {
    fn new() -> Self {
        Mlp {
            x: uniform(&[BATCH, 784], 1.0, 1),
            targets: (0..BATCH).map(|i| i % 10).collect(),
            w1: uniform(&[784, 128], 0.08, 2),
            b1: uniform(&[128], 0.01, 3),
            w2: uniform(&[128, 10], 0.2, 4),
            b2: uniform(&[10], 0.01, 5),
        }
    }

    /// Forward + backward through the graph; returns the loss and the gradient count.
    fn graph_step(&self) -> (f32, usize) {
        let mut g = Graph::new();
        let x = g.input(&self.x);
        let (w1, b1) = (g.param("dense0.kernel", &self.w1), g.param("dense0.bias", &self.b1));
        let (w2, b2) = (g.param("dense1.kernel", &self.w2), g.param("dense1.bias", &self.b2));
        let h = g.linear(x, w1, Some(b1));
        let h = g.relu(h);
        let logits = g.linear(h, w2, Some(b2));
        let loss = g.cross_entropy(logits, &self.targets);
        let grads = g.backward(loss).unwrap();
        (g.value(loss).item(), grads.len())
    }

    /// The same maths on arrays, with the same allocations a hand-written step needs.
    fn direct_step(&self) -> (f32, [Array2<f32>; 2]) {
        let (x, w1, w2) = (view2(&self.x), view2(&self.w1), view2(&self.w2));
        let mut h = Array2::<f32>::zeros((BATCH, 128));
        h.rows_mut().into_iter().for_each(|mut r| r.assign(self.b1.array()));
        gemm(1.0, x, w1, 1.0, &mut h.view_mut()).unwrap();
        h.mapv_inplace(|v| v.max(0.0));
        let mut logits = Array2::<f32>::zeros((BATCH, 10));
        logits.rows_mut().into_iter().for_each(|mut r| r.assign(self.b2.array()));
        gemm(1.0, h.view(), w2, 1.0, &mut logits.view_mut()).unwrap();
        // log_softmax, loss, and d loss/d logits = (softmax − onehot)/batch.
        let mut loss = 0.0;
        let mut dlogits = logits;
        for (mut row, &t) in dlogits.rows_mut().into_iter().zip(&self.targets) {
            let m = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let lse = m + row.iter().map(|&v| (v - m).exp()).sum::<f32>().ln();
            loss -= row[t] - lse;
            row.mapv_inplace(|v| (v - lse).exp() / BATCH as f32);
            row[t] -= 1.0 / BATCH as f32;
        }
        let mut dw2 = Array2::<f32>::zeros((128, 10));
        gemm(1.0, h.t(), dlogits.view(), 0.0, &mut dw2.view_mut()).unwrap();
        let _db2 = dlogits.sum_axis(Axis(0));
        let mut dh = Array2::<f32>::zeros((BATCH, 128));
        gemm(1.0, dlogits.view(), w2.t(), 0.0, &mut dh.view_mut()).unwrap();
        dh.zip_mut_with(&h, |d, &a| {
            if a <= 0.0 {
                *d = 0.0
            }
        });
        let mut dw1 = Array2::<f32>::zeros((784, 128));
        gemm(1.0, x.t(), dh.view(), 0.0, &mut dw1.view_mut()).unwrap();
        let _db1 = dh.sum_axis(Axis(0));
        (loss / BATCH as f32, [dw1, dw2])
    }
}

fn bench_mlp_step(c: &mut Criterion) {
    let mlp = Mlp::new();
    // The two must compute the same loss (same maths, same GEMM).
    let (lg, _) = mlp.graph_step();
    let (ld, _) = mlp.direct_step();
    assert!((lg - ld).abs() <= 1e-5 * lg.abs(), "graph {lg} vs direct {ld}");
    let mut group = c.benchmark_group("mlp_step_784_128_10_batch128");
    group.sample_size(20);
    // Forward 2·B·(784·128 + 128·10); backward two GEMMs per layer (the first layer's
    // input gradient is skipped: the input is data) → 2·B·(784·128) + 4·B·(128·10).
    let fwd = 2 * BATCH as u64 * (784 * 128 + 128 * 10);
    let bwd = 2 * BATCH as u64 * (784 * 128) + 4 * BATCH as u64 * (128 * 10);
    group.throughput(Throughput::Elements(fwd + bwd));
    for threads in [1, 2] {
        nn_tensor::set_num_threads(threads);
        group.bench_function(BenchmarkId::new("graph", format!("{threads}t")), |b| b.iter(|| mlp.graph_step()));
        group.bench_function(BenchmarkId::new("direct", format!("{threads}t")), |b| b.iter(|| mlp.direct_step()));
    }
    group.finish();
    nn_tensor::set_num_threads(0);
}

fn bench_conv2d(c: &mut Criterion) {
    let x = uniform(&[BATCH, 28, 28, 1], 1.0, 6);
    let kernel = uniform(&[3, 3, 1, 32], 0.3, 7);
    let bias = uniform(&[32], 0.01, 8);
    let mut group = c.benchmark_group("conv2d_batch128_28x28x1_32f_3x3");
    group.sample_size(20);
    // Forward 2·B·26·26·32·9; backward: the kernel gradient, the same count again.
    let flops = 2 * 2 * BATCH as u64 * 26 * 26 * 32 * 9;
    group.throughput(Throughput::Elements(flops));
    for threads in [1, 2] {
        nn_tensor::set_num_threads(threads);
        group.bench_function(BenchmarkId::new("forward_backward", format!("{threads}t")), |b| {
            b.iter(|| {
                let mut g = Graph::new();
                let xv = g.input(&x);
                let (k, bv) = (g.param("conv.kernel", &kernel), g.param("conv.bias", &bias));
                let y = g.conv2d(xv, k, Some(bv), (1, 1), Padding::Valid);
                let s = g.sum(y);
                g.backward(s).unwrap().len()
            })
        });
        group.bench_function(BenchmarkId::new("forward_no_grad", format!("{threads}t")), |b| {
            b.iter(|| {
                let mut g = Graph::no_grad();
                let xv = g.input(&x);
                let (k, bv) = (g.param("conv.kernel", &kernel), g.param("conv.bias", &bias));
                let y = g.conv2d(xv, k, Some(bv), (1, 1), Padding::Valid);
                g.value(y).len()
            })
        });
    }
    group.finish();
    nn_tensor::set_num_threads(0);
}

/// The seed CNN's parameters and one batch, for [`bench_train_step`].
struct SeedCnn {
    x: Tensor<f32>,
    targets: Vec<usize>,
    params: Vec<(&'static str, Arc<Tensor<f32>>)>,
}

impl SeedCnn {
    fn new() -> Self {
        let shapes: [(&'static str, &[usize], f32); 6] = [
            ("conv.kernel", &[3, 3, 1, 32], 0.3),
            ("conv.bias", &[32], 0.01),
            ("dense0.kernel", &[5408, 128], 0.03),
            ("dense0.bias", &[128], 0.01),
            ("dense1.kernel", &[128, 10], 0.2),
            ("dense1.bias", &[10], 0.01),
        ];
        let params =
            shapes.iter().enumerate().map(|(i, &(n, s, a))| (n, Arc::new(uniform(s, a, 20 + i as u64)))).collect();
        SeedCnn { x: uniform(&[BATCH, 28, 28, 1], 1.0, 9), targets: (0..BATCH).map(|i| (i * 7) % 10).collect(), params }
    }

    /// Forward, loss and backward; returns the loss and the number of gradients.
    fn step(&self) -> (f32, usize) {
        let mut g = Graph::new();
        let x = g.input(&self.x);
        let p: Vec<_> = self.params.iter().map(|(n, t)| g.param(n, t)).collect();
        let h = g.conv2d(x, p[0], Some(p[1]), (1, 1), Padding::Valid);
        let h = g.relu(h);
        let h = g.max_pool2d(h, (2, 2), (2, 2), Padding::Valid);
        let h = g.flatten(h);
        let h = g.linear(h, p[2], Some(p[3]));
        let h = g.relu(h);
        let logits = g.linear(h, p[4], Some(p[5]));
        let loss = g.cross_entropy(logits, &self.targets);
        let grads = g.backward(loss).unwrap();
        (g.value(loss).item(), grads.len())
    }
}

fn bench_train_step(c: &mut Criterion) {
    let cnn = SeedCnn::new();
    let mlp = Mlp::new();
    let mut group = c.benchmark_group("train_step_batch128");
    group.sample_size(20);
    group.throughput(Throughput::Elements(BATCH as u64));
    for threads in [1, 2] {
        nn_tensor::set_num_threads(threads);
        group.bench_function(BenchmarkId::new("seed_cnn", format!("{threads}t")), |b| b.iter(|| cnn.step()));
        group
            .bench_function(BenchmarkId::new("mlp_784_128_10", format!("{threads}t")), |b| b.iter(|| mlp.graph_step()));
    }
    group.finish();
    nn_tensor::set_num_threads(0);
}

criterion_group!(benches, bench_train_step, bench_mlp_step, bench_conv2d);
criterion_main!(benches);
