//! Whole-model benchmarks through the public API, as `nn-cli fit` and `predict` run
//! them: one training step at batch 128 (forward to logits, sparse cross-entropy,
//! backward, Adam update) and inference at batch 1000 (`Sequential::infer`), on 1 and
//! 2 threads, for the models of `bench/compare.sh`: the seed CNN, the MLP 784→128→10,
//! the two-convolution net (`examples/models/cnn2.json`), LSTM(128) and GRU(128) over
//! the 28 image rows (the `lstm` preset, `examples/models/gru.json`) and the `resnet`
//! preset; and a training step of the GPT of `bench/gpt.sh` (batch 32 × context 64
//! tokens).
//!
//! Throughput is in samples (criterion reports samples/s), for the GPT in tokens.
//!
//! The allocator is mimalloc, set up as in nn-cli (freed memory kept, not purged):
//! with glibc's malloc the step's large
//! temporaries (megabytes each) are returned to the OS and faulted in again every
//! step, which costs more than the step's arithmetic (measured here: seed CNN step
//! 17.7 ms on 1 thread with glibc).
//!
//! Run with `cargo bench -p nn-benches --bench model`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nn_layers::loss::{Loss, LossTargets};
use nn_layers::{ForwardCtx, Graph, Mode, ModelSpec, Sequential, Tensor};
use nn_optim::{bind, Adam, AdamConfig, Optimizer};
use nn_tensor::random::seeded_rng;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// As nn-cli does at start-up: mimalloc keeps freed memory instead of handing it back
/// to the OS after 10 ms (`mi_option_purge_delay` = 15 in its `mimalloc.h`, set to
/// −1), unless `MIMALLOC_PURGE_DELAY` is set. Without it a GPT step's 16 MB logits
/// are faulted in, zeroed by the kernel, every step.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's integer options; any value is valid.
        unsafe { libmimalloc_sys::mi_option_set(15, -1) };
    }
}

/// The models of `bench/compare.sh`, each taking `[batch, 28, 28, 1]` images and
/// giving 10 classes. `NN_BENCH_MODELS` (names separated by commas) selects some.
fn models() -> Vec<(&'static str, ModelSpec)> {
    let image = [28, 28, 1];
    let all = [
        ("seed_cnn", ModelSpec::seed_cnn(&image, 10)),
        ("mlp_784_128_10", ModelSpec::mlp(&image, 128, 10, 0.0)),
        ("cnn2", ModelSpec::from_json(include_str!("../../examples/models/cnn2.json")).unwrap()),
        ("lstm_128", ModelSpec::lstm_classifier(&image, 128, 10).unwrap()),
        ("gru_128", ModelSpec::from_json(include_str!("../../examples/models/gru.json")).unwrap()),
        ("resnet", ModelSpec::resnet(&image, 10).unwrap()),
    ];
    let wanted = std::env::var("NN_BENCH_MODELS").ok();
    all.into_iter()
        .filter(|(name, _)| wanted.as_deref().is_none_or(|w| w.split(',').any(|n| n.trim() == *name)))
        .collect()
}

fn images(batch: usize, seed: u64) -> Tensor<f32> {
    Tensor::random_uniform(&[batch, 28, 28, 1], 0.0, 1.0, &mut seeded_rng(seed)).unwrap()
}

/// One optimisation step: forward to logits, loss, backward, Adam.
fn train_step(model: &mut Sequential, adam: &mut Adam<f32>, x: &Tensor<f32>, labels: &[usize]) -> f32 {
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 };
    let mut g = Graph::<f32>::new();
    let xv = g.input(x);
    let mut rng = seeded_rng(0);
    let logits = model.forward_logits(&mut g, xv, &mut ForwardCtx::new(Mode::Train, &mut rng)).unwrap();
    let l = loss.compute(&mut g, logits, &LossTargets::Classes(labels)).unwrap();
    let value = g.value(l).item();
    let mut grads = g.backward_once(l).unwrap();
    // The trainable parameters: BatchNormalization's moving statistics have no
    // gradient (their update, a few vector operations, is left out here).
    let mut bound = bind(
        model
            .parameters_mut()
            .iter_mut()
            .filter(|p| p.trainable)
            .map(|p| (p.name.as_str(), Arc::make_mut(&mut p.value))),
        grads.iter_mut(),
    )
    .unwrap();
    adam.step(&mut bound).unwrap();
    value
}

fn bench_train_step(c: &mut Criterion) {
    keep_freed_memory();
    let mut group = c.benchmark_group("model_train_step_b128");
    group.sample_size(20);
    group.throughput(Throughput::Elements(128));
    let x = images(128, 1);
    let labels: Vec<usize> = (0..128).map(|i| (i * 7) % 10).collect();
    for (name, spec) in models() {
        let mut model = Sequential::<f32>::new(spec, 0).unwrap();
        let mut adam = Adam::new(AdamConfig::new(1e-3)).unwrap();
        for threads in [1, 2] {
            nn_tensor::set_num_threads(threads);
            group.bench_function(BenchmarkId::new(name, format!("{threads}t")), |b| {
                b.iter(|| train_step(&mut model, &mut adam, &x, &labels))
            });
        }
    }
    group.finish();
    nn_tensor::set_num_threads(0);
}

/// One training step of `nn-cli fit --model gpt` at bench/gpt.sh's size: vocabulary
/// 2048, context 64, width 64, 4 heads, 2 blocks, batch 32 (2048 tokens; throughput
/// in tokens), sparse cross-entropy on the `[32, 64, 2048]` logits, Adam.
fn bench_gpt_train_step(c: &mut Criterion) {
    keep_freed_memory();
    let (vocab, context, batch) = (2048, 64, 32);
    let mut group = c.benchmark_group("gpt_train_step_b32");
    group.sample_size(10);
    group.throughput(Throughput::Elements((batch * context) as u64));
    let ids: Vec<f32> = (0..batch * (context + 1)).map(|i| ((i * 7919 + 13) % vocab) as f32).collect();
    let mut tokens = Vec::with_capacity(batch * context);
    let mut next = Vec::with_capacity(batch * context);
    for row in ids.chunks_exact(context + 1) {
        tokens.extend_from_slice(&row[..context]);
        next.extend(row[1..].iter().map(|&t| t as usize));
    }
    let x = Tensor::from_vec(&[batch, context], tokens);
    let spec = ModelSpec::gpt(vocab, context, 64, 4, 2, 0.0).unwrap();
    let mut model = Sequential::<f32>::new(spec, 0).unwrap();
    let mut adam = Adam::new(AdamConfig::new(3e-3)).unwrap();
    for threads in [1, 2] {
        nn_tensor::set_num_threads(threads);
        group.bench_function(BenchmarkId::new("gpt_v2048_t64_d64_l2", format!("{threads}t")), |b| {
            b.iter(|| train_step(&mut model, &mut adam, &x, &next))
        });
    }
    group.finish();
    nn_tensor::set_num_threads(0);
}

fn bench_inference(c: &mut Criterion) {
    keep_freed_memory();
    let mut group = c.benchmark_group("model_inference_b1000");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1000));
    let x = images(1000, 2);
    for (name, spec) in models() {
        let model = Sequential::<f32>::new(spec, 0).unwrap();
        for threads in [1, 2] {
            nn_tensor::set_num_threads(threads);
            group.bench_function(BenchmarkId::new(name, format!("{threads}t")), |b| {
                b.iter(|| model.infer(x.array().view(), false).unwrap())
            });
        }
    }
    group.finish();
    nn_tensor::set_num_threads(0);
}

criterion_group!(benches, bench_train_step, bench_gpt_train_step, bench_inference);
criterion_main!(benches);
