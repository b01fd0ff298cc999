//! Benchmarks of the recurrent layers on sequential MNIST's shapes (batch 128, 28
//! time steps of 28 features, 128 units): one training step of the layer alone
//! (forward over the sequence, then backpropagation through time from the last
//! state), for LSTM, GRU and SimpleRNN.
//!
//! Throughput is in FLOPs of the GEMMs (criterion reports GFLOP/s), with `G` gate
//! blocks (LSTM 4, GRU 3, SimpleRNN 1): input projection `2·B·T·F·G·U` and its kernel
//! gradient (the input needs none), recurrent products forward, into the previous
//! state and for the recurrent kernel's gradient `3 · 2·B·T·U·G·U`.
//!
//! Run with `cargo bench -p nn-benches --bench recurrent`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nn_layers::{ForwardCtx, Graph, LayerSpec, Mode, ModelSpec, Sequential, Tensor};
use nn_tensor::random::seeded_rng;

const BATCH: usize = 128;
const TIME: usize = 28;
const FEATURES: usize = 28;
const UNITS: usize = 128;

fn train_step(c: &mut Criterion) {
    let x = Tensor::<f32>::random_uniform(&[BATCH, TIME, FEATURES], 0.0, 1.0, &mut seeded_rng(1)).unwrap();
    let mut group = c.benchmark_group("recurrent_train_step_b128_t28_f28_u128");
    for (name, spec, gates) in [
        ("lstm", LayerSpec::lstm(UNITS), 4),
        ("gru", LayerSpec::gru(UNITS), 3),
        ("simple_rnn", LayerSpec::simple_rnn(UNITS), 1),
    ] {
        let model = Sequential::<f32>::new(ModelSpec::new(&[TIME, FEATURES], vec![spec]), 0).unwrap();
        let flops = 2 * BATCH * TIME * gates * UNITS * (2 * FEATURES + 3 * UNITS);
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut g = Graph::<f32>::new();
                let xv = g.input(&x);
                let mut rng = seeded_rng(0);
                let h = model.forward(&mut g, xv, &mut ForwardCtx::new(Mode::Train, &mut rng)).unwrap();
                let l = g.sum(h);
                g.backward(l).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
