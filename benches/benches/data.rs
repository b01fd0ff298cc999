//! Loading MNIST: the four gzipped IDX files decoded and validated, then the
//! training images turned into one `f32` tensor `[60000, 28, 28, 1]` scaled to
//! `[0, 1]`. Throughput counts images (70,000 per iteration), so the report reads
//! images per second.
//!
//! Needs the data: `NN_DATA_DIR=/path/to/data cargo bench -p nn-benches --bench data`
//! (reads `$NN_DATA_DIR/mnist`). Without the variable it prints a message and
//! measures nothing.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nn_data::mnist::load_mnist;

fn bench_mnist(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("NN_DATA_DIR").map(|d| PathBuf::from(d).join("mnist")) else {
        eprintln!("data bench skipped: set NN_DATA_DIR to a directory holding mnist/ (the four gzipped IDX files)");
        return;
    };
    let mut group = c.benchmark_group("mnist");
    group.sample_size(10);
    group.throughput(Throughput::Elements(70_000));
    group.bench_function("load_gz_idx", |b| {
        b.iter(|| load_mnist(&dir).expect("MNIST loads"));
    });
    group.throughput(Throughput::Elements(60_000));
    group.bench_function("train_to_f32_unit_scale", |b| {
        let train = load_mnist(&dir).expect("MNIST loads").train.scale_by(1.0 / 255.0).expect("finite scale");
        b.iter(|| train.features());
    });
    group.throughput(Throughput::Elements(70_000));
    group.bench_function("load_gz_idx_and_scale_to_f32", |b| {
        b.iter(|| {
            let m = load_mnist(&dir).expect("MNIST loads");
            let train = m.train.scale_by(1.0 / 255.0).expect("finite scale").features();
            let test = m.test.scale_by(1.0 / 255.0).expect("finite scale").features();
            (train, test)
        });
    });
    group.finish();
}

criterion_group!(benches, bench_mnist);
criterion_main!(benches);
