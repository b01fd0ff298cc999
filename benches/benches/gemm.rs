//! GEMM throughput in FLOP/s (criterion `Throughput::Elements` counts 2·m·n·k
//! floating-point operations, so "elem/s" in the report reads as FLOP/s) for every
//! compiled back end, at 1 and 2 threads, on square shapes and on the seed CNN's
//! shapes at batch 128.
//!
//! A second group, `gemm_f32_recurrent_step`, compares the general GEMM on one thread
//! with [`PackedRhs`] (B packed once, as the recurrent layers use it) on the per-step
//! products of an LSTM(128) over a 64-sample chunk: `[64, 128]·[128, 512]` forward,
//! `[64, 512]·[512, 128]` (the recurrent kernel transposed) backward, contiguous and
//! as the layers hold them (step `t`'s rows of a `[64, 28, width]` buffer).
//!
//! Full run: `cargo bench -p nn-benches --bench gemm`
//! Quick run (CI): `cargo bench -p nn-benches --bench gemm -- --quick`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use nn_benches::gemm_shapes::{Operand, SHAPES};
use nn_tensor::gemm::{gemm_with, Backend, PackedRhs};

fn filled(rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| ((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5)
}

fn bench_gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm_f32");
    group.sample_size(10);
    // The ceiling: one core's independent vector FMAs (no memory traffic).
    let iters = 1_000_000;
    group.throughput(Throughput::Elements(nn_benches::peak::flops(iters)));
    group.bench_function(BenchmarkId::new("fma_peak/1t", "ceiling"), |b| {
        b.iter(|| nn_benches::peak::fma_loop(std::hint::black_box(iters)))
    });
    for shape in SHAPES {
        // Storage follows how the training step holds each operand: a "transposed"
        // operand is a transposed view of a row-major buffer (no copy).
        let a_store = match shape.a {
            Operand::Plain => filled(shape.m, shape.k),
            Operand::Transposed => filled(shape.k, shape.m),
        };
        let b_store = match shape.b {
            Operand::Plain => filled(shape.k, shape.n),
            Operand::Transposed => filled(shape.n, shape.k),
        };
        let a = match shape.a {
            Operand::Plain => a_store.view(),
            Operand::Transposed => a_store.t(),
        };
        let b = match shape.b {
            Operand::Plain => b_store.view(),
            Operand::Transposed => b_store.t(),
        };
        let mut out = Array2::<f32>::zeros((shape.m, shape.n));
        group.throughput(Throughput::Elements(shape.flops()));
        for backend in Backend::available() {
            let threads: &[usize] = if backend == Backend::MatrixMultiply { &[1] } else { &[1, 2] };
            for &t in threads {
                nn_tensor::set_num_threads(t);
                let id = BenchmarkId::new(format!("{}/{}t", backend.name(), t), shape.name);
                group.bench_function(id, |bencher| {
                    bencher.iter(|| gemm_with(backend, 1.0, a, b, 0.0, &mut out.view_mut()).unwrap())
                });
            }
        }
    }
    group.finish();
    nn_tensor::set_num_threads(0);
}

fn bench_recurrent_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm_f32_recurrent_step");
    let u = filled(128, 512);
    let u1 = filled(128, 128);
    for (name, a, b) in [
        ("forward_64x128x512", filled(64, 128), u.view()),
        ("backward_64x512x128", filled(64, 512), u.t()),
        ("simple_64x128x128", filled(64, 128), u1.view()),
    ] {
        let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
        let mut out = Array2::<f32>::zeros((m, n));
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        nn_tensor::set_num_threads(1);
        group.bench_function(BenchmarkId::new("gemm/1t", name), |bencher| {
            bencher.iter(|| gemm_with(Backend::Gemm, 1.0, a.view(), b, 1.0, &mut out.view_mut()).unwrap())
        });
        let packed = PackedRhs::new(b);
        group.bench_function(BenchmarkId::new("packed/1t", name), |bencher| {
            bencher.iter(|| packed.gemm(a.view(), 1.0, &mut out.view_mut()).unwrap())
        });
    }
    // SimpleRNN's real layout: step t's rows of a [64, 28, 128] buffer (row stride 28·128).
    let (time, u) = (28, 128);
    let mut seq = filled(64, time * u);
    let packed = PackedRhs::new(u1.view());
    group.throughput(Throughput::Elements((2 * 64 * u * u) as u64));
    for (label, packed_path) in [("gemm/1t", false), ("packed/1t", true)] {
        group.bench_function(BenchmarkId::new(label, "simple_strided_64x128x128"), |bencher| {
            bencher.iter(|| {
                let (before, after) = seq.view_mut().split_at(ndarray::Axis(1), 5 * u);
                let prev = before.slice_move(ndarray::s![.., 4 * u..]);
                let mut cur = after.slice_move(ndarray::s![.., ..u]);
                if packed_path {
                    packed.gemm(prev.view(), 1.0, &mut cur).unwrap()
                } else {
                    nn_tensor::gemm::gemm_serial(1.0, prev.view(), u1.view(), 1.0, &mut cur).unwrap()
                }
            })
        });
    }
    // LSTM's real layout: gates [64, 28, 512], states [64, 28, 2·128] (h then c).
    let (g4, s2) = (4 * u, 2 * u);
    let mut gates = filled(64, time * g4);
    let states = filled(64, time * s2);
    let mut dh = Array2::<f32>::zeros((64, u));
    let uk = filled(u, g4);
    let (pu, put) = (PackedRhs::new(uk.view()), PackedRhs::new(uk.t()));
    group.throughput(Throughput::Elements((2 * 64 * u * g4) as u64));
    group.bench_function(BenchmarkId::new("packed/1t", "lstm_strided_forward_64x128x512"), |bencher| {
        bencher.iter(|| {
            let prev = states.slice(ndarray::s![.., 4 * s2..4 * s2 + u]);
            let mut cur = gates.slice_mut(ndarray::s![.., 5 * g4..6 * g4]);
            pu.gemm(prev, 1.0, &mut cur).unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("packed/1t", "lstm_strided_backward_64x512x128"), |bencher| {
        bencher.iter(|| {
            let dz = gates.slice(ndarray::s![.., 5 * g4..6 * g4]);
            put.gemm(dz, 0.0, &mut dh.view_mut()).unwrap()
        })
    });
    group.finish();
    nn_tensor::set_num_threads(0);
}

criterion_group!(benches, bench_gemm, bench_recurrent_step);
criterion_main!(benches);
