//! Benchmarks of the layers on the seed CNN's shapes (batch 128, 28×28×1 MNIST
//! images): a whole training step (forward to logits, loss, backward), and Dense /
//! Conv2D with relu fused into one op against nn-autograd's separate ops.
//!
//! Throughput is in FLOPs of the GEMMs (criterion reports GFLOP/s):
//! Conv2D forward `2·rows·patch·filters`, Dense forward `2·rows·in·out`, and
//! backward once (kernel gradient only, the first layer's input needs none) or twice
//! (kernel and input gradients).
//!
//! Run with `cargo bench -p nn-benches --bench layers`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nn_autograd::Padding;
use nn_layers::loss::{Loss, LossTargets};
use nn_layers::{Activation, ForwardCtx, Graph, LayerSpec, Mode, ModelSpec, Sequential, Tensor};
use nn_tensor::random::seeded_rng;

const BATCH: usize = 128;

fn images() -> Tensor<f32> {
    Tensor::random_uniform(&[BATCH, 28, 28, 1], 0.0, 1.0, &mut seeded_rng(1)).unwrap()
}

fn train_step(c: &mut Criterion) {
    let model = Sequential::<f32>::new(ModelSpec::seed_cnn(&[28, 28, 1], 10), 0).unwrap();
    let x = images();
    let labels: Vec<usize> = (0..BATCH).map(|i| i % 10).collect();
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 };
    // conv: forward + kernel gradient; dense 5408→128 and 128→10: forward + 2 backward.
    let flops = BATCH * (2 * 2 * 26 * 26 * 9 * 32 + 3 * 2 * 5408 * 128 + 3 * 2 * 128 * 10);
    let mut group = c.benchmark_group("seed_cnn");
    group.throughput(Throughput::Elements(flops as u64));
    group.bench_function("train_step_b128", |b| {
        b.iter(|| {
            let mut g = Graph::<f32>::new();
            let xv = g.input(&x);
            let mut rng = seeded_rng(0);
            let logits = model.forward_logits(&mut g, xv, &mut ForwardCtx::new(Mode::Train, &mut rng)).unwrap();
            let l = loss.compute(&mut g, logits, &LossTargets::Classes(&labels)).unwrap();
            g.backward(l).unwrap()
        })
    });
    group.finish();
}

/// Forward and backward of one layer with relu, fused (the layer) and separate
/// (nn-autograd's op, then its relu op). As in the seed CNN, the convolution is
/// followed by a 2×2 max-pool (whose backward scatters into the relu's gradient)
/// before the sum that makes a scalar; the Dense output is small enough to sum.
fn fused_vs_separate(c: &mut Criterion) {
    let mut group = c.benchmark_group("relu_fusion");
    let cases = [
        ("conv2d_32x3x3_b128", LayerSpec::conv2d(32, 3, Activation::Relu), vec![28, 28, 1], 2 * 2 * 26 * 26 * 9 * 32),
        ("dense_5408x128_b128", LayerSpec::dense(128, Activation::Relu), vec![5408], 3 * 2 * 5408 * 128),
    ];
    for (name, spec, sample, flops) in cases {
        let model = Sequential::<f32>::new(ModelSpec::new(&sample, vec![spec]), 0).unwrap();
        let mut shape = vec![BATCH];
        shape.extend(&sample);
        let x = Tensor::<f32>::random_uniform(&shape, -1.0, 1.0, &mut seeded_rng(2)).unwrap();
        let is_conv = sample.len() == 3;
        group.throughput(Throughput::Elements((BATCH * flops) as u64));
        for fused in [true, false] {
            let id = BenchmarkId::new(name, if fused { "fused" } else { "separate" });
            group.bench_function(id, |b| {
                b.iter(|| {
                    let mut g = Graph::<f32>::new();
                    // Dense gets an input gradient (it is not a first layer); conv does not.
                    let xv = if is_conv { g.input(&x) } else { g.variable(&x) };
                    let y = if fused {
                        let mut rng = seeded_rng(0);
                        model.forward(&mut g, xv, &mut ForwardCtx::new(Mode::Train, &mut rng)).unwrap()
                    } else {
                        let p = model.parameters();
                        let (k, bias) = (g.param(&p[0].name, &p[0].value), g.param(&p[1].name, &p[1].value));
                        let z = if is_conv {
                            g.conv2d(xv, k, Some(bias), (1, 1), Padding::Valid)
                        } else {
                            g.linear(xv, k, Some(bias))
                        };
                        g.relu(z)
                    };
                    let y = if is_conv { g.max_pool2d(y, (2, 2), (2, 2), Padding::Valid) } else { y };
                    let s = g.sum(y);
                    g.backward(s).unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, train_step, fused_vs_separate);
criterion_main!(benches);
