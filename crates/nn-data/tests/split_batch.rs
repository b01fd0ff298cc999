//! Splits (counts, Keras validation_split, shuffled, stratified) and batching.

use std::collections::HashSet;

use nn_data::batch::{epoch_order, num_batches};
use nn_data::split::{shuffled_split, split_counts, stratified_split, validation_split};
use nn_data::{digits, one_hot, Batcher, DataError, Dataset, Targets};
use nn_tensor::Tensor;
use proptest::prelude::*;

/// `n` samples whose single feature is their index and whose label is `index % k`.
fn indexed(n: usize, k: usize) -> Dataset {
    let x = Tensor::from_vec(&[n, 1], (0..n).map(|i| i as f32).collect());
    let y = Targets::classes((0..n).map(|i| i % k).collect(), k).unwrap();
    Dataset::from_tensor("indexed", x, y).unwrap()
}

fn assert_partition(parts: &[Vec<usize>], n: usize) {
    let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "parts must be disjoint and cover 0..{n}");
}

#[test]
fn counts_by_largest_remainder() {
    assert_eq!(split_counts(10, &[0.7, 0.2, 0.1]).unwrap(), [7, 2, 1]);
    // 11 · (0.7, 0.2, 0.1) = 7.7, 2.2, 1.1: floors 7, 2, 1 leave 1, which goes to the
    // largest remainder (0.7).
    assert_eq!(split_counts(11, &[0.7, 0.2, 0.1]).unwrap(), [8, 2, 1]);
    // 5 · (0.5, 0.5) = 2.5, 2.5: the tie goes to the earlier part.
    assert_eq!(split_counts(5, &[0.5, 0.5]).unwrap(), [3, 2]);
    // 100 · 0.29 = 28.999999999999996 in f64: snapped to 29.
    assert_eq!(split_counts(100, &[0.29, 0.71]).unwrap(), [29, 71]);
    assert_eq!(split_counts(3, &[1.0 / 3.0; 3]).unwrap(), [1, 1, 1]);
    assert_eq!(split_counts(0, &[0.5, 0.5]).unwrap(), [0, 0]);
    assert!(split_counts(10, &[0.5, 0.4]).is_err());
    assert!(split_counts(10, &[1.5, -0.5]).is_err());
    assert!(split_counts(10, &[]).is_err());
    assert!(split_counts(10, &[f64::NAN, 1.0]).is_err());
}

#[test]
fn keras_validation_split_takes_the_last_fraction() {
    let (train, val) = validation_split(60_000, 0.2).unwrap();
    assert_eq!((train.len(), val.len()), (48_000, 12_000));
    assert_eq!((train[0], train[47_999], val[0], val[11_999]), (0, 47_999, 48_000, 59_999));
    // floor(10 · (1 − 0.3)) = floor(7.000000000000001) = 7.
    let (train, val) = validation_split(10, 0.3).unwrap();
    assert_eq!((train, val), ((0..7).collect(), (7..10).collect()));
    // floor(10 · 0.75) = 7: Keras floors the training part, so validation gets 3.
    assert_eq!(validation_split(10, 0.25).unwrap().1.len(), 3);
    assert!(validation_split(1, 0.5).is_err()); // floor(0.5) = 0 training samples
    assert!(validation_split(10, 0.0).is_err());
    assert!(validation_split(10, 1.0).is_err());

    let d = indexed(10, 2);
    let (tr, va) = d.split_validation(0.2).unwrap();
    assert_eq!(tr.features().to_vec(), (0..8).map(|i| i as f32).collect::<Vec<_>>());
    assert_eq!(va.features().to_vec(), vec![8.0, 9.0]);
    assert_eq!(va.targets().labels().unwrap(), [0, 1]);
}

#[test]
fn shuffled_split_is_seeded_disjoint_and_complete() {
    let parts = shuffled_split(10, &[0.7, 0.2, 0.1], 42).unwrap();
    assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [7, 2, 1]);
    assert_partition(&parts, 10);
    assert_eq!(parts, shuffled_split(10, &[0.7, 0.2, 0.1], 42).unwrap());
    assert_ne!(parts, shuffled_split(10, &[0.7, 0.2, 0.1], 43).unwrap());
    assert_ne!(parts[0], (0..7).collect::<Vec<_>>(), "a shuffled split is not the identity");

    let d = indexed(10, 3);
    let sets = d.split_shuffled(&[0.7, 0.2, 0.1], 42).unwrap();
    for (set, idx) in sets.iter().zip(&parts) {
        // Each sub-dataset holds exactly the indexed samples, features and labels.
        assert_eq!(set.features().to_vec(), idx.iter().map(|&i| i as f32).collect::<Vec<_>>());
        assert_eq!(set.targets().labels().unwrap(), idx.iter().map(|&i| i % 3).collect::<Vec<_>>());
    }
}

#[test]
fn stratified_split_keeps_proportions() {
    // 6 of class 0 and 4 of class 1, halved: 3 + 2 in each part.
    let labels = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1];
    let parts = stratified_split(&labels, 2, &[0.5, 0.5], 9).unwrap();
    assert_partition(&parts, 10);
    for p in &parts {
        let ones = p.iter().filter(|&&i| labels[i] == 1).count();
        assert_eq!((p.len() - ones, ones), (3, 2));
    }

    // The digits, 70/15/15: every class in every part within one sample of its share.
    let data = digits::load();
    let sets = data.split_stratified(&[0.7, 0.15, 0.15], 3).unwrap();
    let totals = split_counts(1797, &[0.7, 0.15, 0.15]).unwrap();
    assert_eq!(sets.iter().map(Dataset::len).collect::<Vec<_>>(), totals);
    let all = data.targets().class_counts().unwrap();
    for (set, &t) in sets.iter().zip(&totals) {
        for (c, &got) in set.targets().class_counts().unwrap().iter().enumerate() {
            let ideal = all[c] as f64 * t as f64 / 1797.0;
            assert!((got as f64 - ideal).abs() < 1.0, "class {c}: {got} vs {ideal}");
        }
    }
    let real = Dataset::from_tensor("r", Tensor::zeros(&[2, 1]), Targets::real(Tensor::zeros(&[2])).unwrap()).unwrap();
    assert!(matches!(real.split_stratified(&[0.5, 0.5], 0), Err(DataError::InvalidArgument { .. })));
    assert!(stratified_split(&[0, 5], 2, &[0.5, 0.5], 0).is_err());
}

#[test]
fn batch_counts() {
    assert_eq!(num_batches(48_000, 128, false).unwrap(), 375);
    assert_eq!(num_batches(48_000, 128, true).unwrap(), 375);
    assert_eq!(num_batches(1_000, 128, false).unwrap(), 8);
    assert_eq!(num_batches(1_000, 128, true).unwrap(), 7);
    assert!(num_batches(10, 0, false).is_err());
    assert!(Batcher::new(0).is_err());

    let d = indexed(1_000, 10);
    let keep = Batcher::new(128).unwrap().shuffled(1);
    let sizes: Vec<usize> = keep.batches(&d, 0).map(|b| b.len()).collect();
    assert_eq!(sizes, [128, 128, 128, 128, 128, 128, 128, 104]);
    assert_eq!(keep.batches(&d, 0).len(), 8);
    let drop = keep.drop_last(true);
    let sizes: Vec<usize> = drop.batches(&d, 0).map(|b| b.len()).collect();
    assert_eq!(sizes, [128; 7]);
    assert_eq!(drop.batch_indices(1_000, 0).len(), 7);
    // No partial batch to drop: 1,024 = 8 · 128.
    assert_eq!(drop.batches(&indexed(1_024, 2), 0).count(), 8);
}

#[test]
fn batches_hold_the_right_samples() {
    let d = indexed(10, 3);
    let batcher = Batcher::new(4).unwrap().shuffled(5);
    let mut seen = Vec::new();
    for b in batcher.batches(&d, 2) {
        assert_eq!(b.features.shape(), &[b.len(), 1]);
        assert_eq!(b.features.to_vec(), b.indices.iter().map(|&i| i as f32).collect::<Vec<_>>());
        assert_eq!(b.targets.labels().unwrap(), b.indices.iter().map(|&i| i % 3).collect::<Vec<_>>());
        seen.extend(b.indices);
    }
    assert_eq!(seen, epoch_order(10, 5, 2));
    // Sequential batches keep the stored order.
    let seq: Vec<usize> = Batcher::new(4).unwrap().batches(&d, 9).flat_map(|b| b.indices).collect();
    assert_eq!(seq, (0..10).collect::<Vec<_>>());
}

#[test]
fn epoch_order_depends_only_on_seed_and_epoch() {
    let a = epoch_order(100, 7, 3);
    assert_eq!(a, epoch_order(100, 7, 3));
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    assert_ne!(a, epoch_order(100, 7, 4), "different epochs differ");
    assert_ne!(a, epoch_order(100, 8, 3), "different seeds differ");
    // Epoch 3 needs no epochs 0–2 first: a fresh batcher reproduces it.
    let b = Batcher::new(10).unwrap().shuffled(7);
    assert_eq!(b.order(100, 3), a);
    // All epochs 0..20 of 100 samples are distinct.
    let distinct: HashSet<Vec<usize>> = (0..20).map(|k| epoch_order(100, 7, k)).collect();
    assert_eq!(distinct.len(), 20);
}

#[test]
fn shuffle_is_uniform_over_permutations() {
    // 6,000 shuffles of 3 items: each of the 3! = 6 orders should appear 1,000 times;
    // the count is binomial with σ = sqrt(6000 · 1/6 · 5/6) ≈ 28.9, so allow 5σ.
    let mut counts = std::collections::HashMap::new();
    for k in 0..6_000u64 {
        *counts.entry(epoch_order(3, 11, k)).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), 6);
    for (perm, c) in counts {
        assert!((c as f64 - 1000.0).abs() < 5.0 * 28.9, "{perm:?} appeared {c} times");
    }
    // Position of item 0 over 10 items: uniform, 1,000 expected per slot, σ ≈ 30.
    let mut slot = [0usize; 10];
    for k in 0..10_000u64 {
        slot[epoch_order(10, 3, k).iter().position(|&v| v == 0).unwrap()] += 1;
    }
    for c in slot {
        assert!((c as f64 - 1000.0).abs() < 150.0, "{slot:?}");
    }
}

#[test]
fn one_hot_encoding() {
    let t = one_hot(&[2, 0, 1], 3).unwrap();
    assert_eq!(t.shape(), &[3, 3]);
    assert_eq!(t.to_vec(), vec![0., 0., 1., 1., 0., 0., 0., 1., 0.]);
    assert!(one_hot(&[3], 3).is_err());
    assert_eq!(one_hot(&[], 4).unwrap().shape(), &[0, 4]);
    let y = Targets::classes(vec![1, 0], 2).unwrap();
    assert_eq!(y.to_tensor().unwrap().to_vec(), vec![0., 1., 1., 0.]);
    // Targets built from the variants directly are checked, not trusted.
    let bad = Targets::Classes { labels: vec![0, 3], num_classes: 2 };
    assert!(bad.check().is_err());
    assert!(bad.to_tensor().is_err());
    assert_eq!(bad.class_counts().unwrap(), [1, 0]);
    assert!(Dataset::from_tensor("b", Tensor::zeros(&[2, 1]), bad).is_err());
    assert!(Dataset::from_tensor("b", Tensor::zeros(&[1, 1]), Targets::Real(Tensor::scalar(1.0))).is_err());
    assert!(Targets::classes(vec![2], 2).is_err());
}

proptest! {
    #[test]
    fn counts_are_exact_and_close(n in 0usize..10_000, raw in prop::collection::vec(0.0f64..1.0, 1..6)) {
        let total: f64 = raw.iter().sum();
        prop_assume!(total > 1e-3);
        let fractions: Vec<f64> = raw.iter().map(|r| r / total).collect();
        let counts = split_counts(n, &fractions).unwrap();
        prop_assert_eq!(counts.iter().sum::<usize>(), n);
        for (c, f) in counts.iter().zip(&fractions) {
            prop_assert!((*c as f64 - f * n as f64).abs() < 1.0 + 1e-6);
        }
    }

    #[test]
    fn stratified_cells_round_their_share(
        labels in prop::collection::vec(0usize..5, 0..300),
        raw in prop::collection::vec(0.01f64..1.0, 1..5),
        seed in any::<u64>(),
    ) {
        let total: f64 = raw.iter().sum();
        let fractions: Vec<f64> = raw.iter().map(|r| r / total).collect();
        let parts = stratified_split(&labels, 5, &fractions, seed).unwrap();
        assert_partition(&parts, labels.len());
        let totals = split_counts(labels.len(), &fractions).unwrap();
        prop_assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), totals.clone());
        // Every (class, part) cell is its exact share n_c·T_j/N rounded down or up.
        for c in 0..5 {
            let nc = labels.iter().filter(|&&l| l == c).count();
            for (p, &t) in parts.iter().zip(&totals) {
                let got = p.iter().filter(|&&i| labels[i] == c).count();
                let share = (nc * t) as f64 / labels.len().max(1) as f64;
                prop_assert!(got as f64 >= share.floor() && got as f64 <= share.ceil(), "class {} got {} of {}", c, got, share);
            }
        }
    }

    #[test]
    fn shuffled_parts_partition(n in 0usize..500, seed in any::<u64>()) {
        let parts = shuffled_split(n, &[0.6, 0.3, 0.1], seed).unwrap();
        assert_partition(&parts, n);
    }

    #[test]
    fn every_epoch_visits_every_sample_once(n in 1usize..300, bs in 1usize..64, seed in any::<u64>(), epoch in any::<u64>()) {
        let b = Batcher::new(bs).unwrap().shuffled(seed);
        let batches = b.batch_indices(n, epoch);
        prop_assert_eq!(batches.len(), n.div_ceil(bs));
        let mut all: Vec<usize> = batches.into_iter().flatten().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
    }
}
