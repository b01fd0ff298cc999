//! The sparse part: embedding tables and LazyAdam's sparse updates.

use nn_optim::{bind, Adam, AdamConfig, Optimizer};
use nn_recommend::sparse::{EmbeddingTable, LazyAdam, LazyAdamConfig};
use nn_tensor::Tensor;

fn table(rows: usize, dim: usize, seed: u64) -> EmbeddingTable<f64> {
    EmbeddingTable::new("t", rows, dim, 0.5, seed).unwrap()
}

#[test]
fn lookup_gathers_rows_and_zeros_for_none() {
    let t = EmbeddingTable::<f32>::from_values("t", 3, 2, vec![1., 2., 3., 4., 5., 6.]).unwrap();
    let x = t.lookup(&[Some(2), None, Some(0), Some(2)]).unwrap();
    assert_eq!(x.shape(), [4, 2]);
    assert_eq!(x.to_vec(), [5., 6., 0., 0., 1., 2., 5., 6.]);
    assert_eq!(t.row(1), [3., 4.]);
    assert!(t.lookup(&[Some(3)]).unwrap_err().to_string().contains("row 3 out of range (3 rows)"));
    assert!(EmbeddingTable::<f32>::from_values("t", 3, 2, vec![0.; 5]).is_err());
    assert!(EmbeddingTable::<f32>::new("t", 3, 0, 0.1, 0).is_err());
}

#[test]
fn init_is_seeded() {
    let a = EmbeddingTable::<f32>::new("t", 10, 4, 0.1, 7).unwrap();
    let b = EmbeddingTable::<f32>::new("t", 10, 4, 0.1, 7).unwrap();
    let c = EmbeddingTable::<f32>::new("t", 10, 4, 0.1, 8).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.values, c.values);
    let std = (a.values.iter().map(|v| (v * v) as f64).sum::<f64>() / 40.0).sqrt();
    assert!(std > 0.05 && std < 0.15, "{std}");
    assert!(EmbeddingTable::<f32>::new("z", 2, 3, 0.0, 7).unwrap().values.iter().all(|&v| v == 0.0));
}

#[test]
fn rows_not_in_the_batch_stay_bit_identical() {
    let mut t = table(6, 3, 1);
    let before = t.clone();
    let mut opt = LazyAdam::new(&t, LazyAdamConfig::new(0.1, 0.05)).unwrap();
    for step in 0..3 {
        let g = Tensor::from_vec(&[3, 3], (0..9).map(|k| (k as f64 - 4.0) * 0.1 + step as f64).collect());
        let used = opt.step(&mut t, &[Some(1), Some(4), Some(1)], &g).unwrap();
        assert_eq!(used, [1, 4]);
    }
    for r in [0, 2, 3, 5] {
        let same = t.row(r).iter().zip(before.row(r)).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "row {r} changed");
    }
    for r in [1, 4] {
        assert!(t.row(r) != before.row(r), "row {r} did not change");
    }
    // A row none of the steps used keeps zero moments: using it later is a first step.
    let mut fresh = t.clone();
    let g = Tensor::from_vec(&[1, 3], vec![0.3, -0.2, 0.1]);
    opt.step(&mut fresh, &[Some(0)], &g).unwrap();
    assert!(fresh.row(2) == t.row(2));
}

#[test]
fn every_row_once_equals_dense_adam_with_l2_gradient() {
    let (rows, dim, l2, lr) = (5, 4, 0.03, 0.01);
    let mut sparse = table(rows, dim, 3);
    let mut dense = Tensor::from_vec(&[rows, dim], sparse.values.clone());
    let mut lazy = LazyAdam::new(&sparse, LazyAdamConfig::new(lr, l2)).unwrap();
    let mut adam = Adam::<f64>::new(AdamConfig::new(lr)).unwrap();
    // Rows in a shuffled order: LazyAdam must put each gradient on its row.
    let order = [3usize, 0, 4, 1, 2];
    for step in 0..4 {
        let grad_rows: Vec<f64> = (0..rows * dim).map(|k| ((k * 7 + step * 3) % 11) as f64 * 0.1 - 0.5).collect();
        let permuted: Vec<f64> = order.iter().flat_map(|&r| grad_rows[r * dim..(r + 1) * dim].to_vec()).collect();
        let idx: Vec<Option<usize>> = order.iter().map(|&r| Some(r)).collect();
        lazy.step(&mut sparse, &idx, &Tensor::from_vec(&[rows, dim], permuted)).unwrap();
        // Dense: gradient + λ·θ, one Adam step on the whole table.
        let theta = dense.to_vec();
        let mut g = Tensor::from_vec(&[rows, dim], grad_rows.iter().zip(&theta).map(|(g, w)| g + l2 * w).collect());
        let mut bound = bind([("table", &mut dense)], [("table", &mut g)]).unwrap();
        adam.step(&mut bound).unwrap();
    }
    for (a, b) in sparse.values.iter().zip(dense.to_vec()) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn duplicate_indices_are_summed_before_the_step() {
    // With β₁ = β₂ = 0, Adam's first step is θ − η·g/(|g| + ε): a sign step on the
    // summed gradient. Row 0 gets 0.3 + (−0.5) = −0.2 (so it moves up by η), not two
    // separate updates; L2 λ·θ is added once: g = −0.2 + 0.1·1.0 = −0.1.
    let mut t = EmbeddingTable::<f64>::from_values("t", 2, 1, vec![1.0, 2.0]).unwrap();
    let cfg =
        LazyAdamConfig { learning_rate: 0.5, beta_1: 0.0, beta_2: 0.0, epsilon: 1e-12, l2: 0.1, l2_per_use: false };
    let mut opt = LazyAdam::new(&t, cfg).unwrap();
    let g = Tensor::from_vec(&[3, 1], vec![0.3, 7.0, -0.5]);
    opt.step(&mut t, &[Some(0), None, Some(0)], &g).unwrap();
    assert!((t.values[0] - 1.5).abs() < 1e-9, "{}", t.values[0]);
    assert_eq!(t.values[1], 2.0);
    // Same check with magnitudes: β₁ = 0.9, β₂ = 0.999 at t = 1 still gives m̂ = g,
    // v̂ = g², so the step is η·sign(g) whatever |g|; the sum decides the sign.
    let mut t = EmbeddingTable::<f64>::from_values("t", 1, 2, vec![0.0, 0.0]).unwrap();
    let mut opt = LazyAdam::new(&t, LazyAdamConfig::new(0.1, 0.0)).unwrap();
    let g = Tensor::from_vec(&[2, 2], vec![1.0, -3.0, -2.0, 1.0]);
    opt.step(&mut t, &[Some(0), Some(0)], &g).unwrap();
    assert!((t.values[0] - 0.1).abs() < 1e-6 && (t.values[1] - 0.1).abs() < 1e-6, "{:?}", t.values);
}

#[test]
fn bad_steps_are_refused_without_change() {
    let mut t = table(3, 2, 0);
    let before = t.clone();
    let mut opt = LazyAdam::new(&t, LazyAdamConfig::new(0.1, 0.0)).unwrap();
    let e = opt.step(&mut t, &[Some(5)], &Tensor::zeros(&[1, 2])).unwrap_err();
    assert!(e.to_string().contains("row 5 out of range"), "{e}");
    let e = opt.step(&mut t, &[Some(0)], &Tensor::zeros(&[1, 3])).unwrap_err();
    assert!(e.to_string().contains("gradient shape [1, 3], expected [1, 2]"), "{e}");
    assert_eq!(t, before);
    assert_eq!(opt.iterations(), 0);
    assert!(LazyAdam::new(&t, LazyAdamConfig::new(-1.0, 0.0)).is_err());
}

#[test]
fn l2_per_use_counts_each_use_of_a_row() {
    // Row 0 = 1.0 used twice with gradients 0.05 and −0.2 (sum −0.15). Once per row:
    // g = −0.15 + 0.1·1.0 = −0.05 < 0, so the sign step moves it up by η. Per use:
    // g = −0.15 + 2·0.1·1.0 = +0.05 > 0, so it moves down by η. β₁ = β₂ = 0 make the
    // step η·sign(g).
    for (per_use, want) in [(false, 1.5), (true, 0.5)] {
        let mut t = EmbeddingTable::<f64>::from_values("t", 1, 1, vec![1.0]).unwrap();
        let cfg = LazyAdamConfig {
            learning_rate: 0.5,
            beta_1: 0.0,
            beta_2: 0.0,
            epsilon: 1e-12,
            l2: 0.1,
            l2_per_use: per_use,
        };
        let mut opt = LazyAdam::new(&t, cfg).unwrap();
        opt.step(&mut t, &[Some(0), Some(0)], &Tensor::from_vec(&[2, 1], vec![0.05, -0.2])).unwrap();
        assert!((t.values[0] - want).abs() < 1e-9, "per use {per_use}: {}", t.values[0]);
    }
}
