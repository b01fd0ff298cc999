//! Training: the gradients of every preset and loss against finite differences in
//! f64, the loss formulas, reproducibility, early stopping, RMSE; and, with
//! `NN_DATA_DIR`, the MovieLens targets (RMSE ≤ 0.86 on a random 80/20 split with a user-day bias; BPR
//! beats popularity on HR@10 with a leave-last-out split).

use std::path::PathBuf;

use nn_layers::Model;
use nn_recommend::data::{item_counts, items_by_user, read_ratings, IdMap, Interaction, RatingsOptions};
use nn_recommend::model::{OutputKind, Preset, RecSpec, Recommender};
use nn_recommend::split::{split, Split};
use nn_recommend::train::{
    fit, loss_and_gradients, objective_loss, rmse_mae, EpochReport, Objective, RecLoss, TrainConfig,
};
use nn_tensor::random::seeded_rng;
use nn_tensor::Tensor;

fn ids(prefix: &str, n: usize) -> IdMap {
    let mut m = IdMap::new();
    for k in 0..n {
        m.insert(&format!("{prefix}{k}"));
    }
    m
}

/// 5 users × 7 items, each user rating 4 items.
fn data() -> Vec<Interaction> {
    (0..5)
        .flat_map(|u| {
            (0..4).map(move |k| {
                let item = (u * 2 + k * 3) % 7;
                Interaction { user: u, item, value: 1.0 + ((u * 3 + item * 5) % 9) as f32 * 0.5, timestamp: None }
            })
        })
        .collect()
}

fn model(preset: Preset, seed: u64) -> Recommender {
    let spec = RecSpec::preset(preset, 3, &[4], None).unwrap();
    Recommender::new(spec, ids("u", 5), ids("i", 7), None, seed).unwrap()
}

fn to_f64(t: &Tensor<f32>) -> Tensor<f64> {
    Tensor::from_vec(t.shape(), t.to_vec().iter().map(|&v| v as f64).collect())
}

/// The batch's loss as a function of the gathered rows, the dense parameters and the
/// offsets (biases), in f64.
fn loss_of(model: &Model<f64>, inputs: &[Tensor<f64>], offsets: &[f64], obj: &Objective<'_>) -> f64 {
    loss_and_gradients(model, inputs.to_vec(), offsets, obj, &mut seeded_rng(0)).unwrap().loss
}

fn close(analytic: f64, numeric: f64, what: &str) {
    let tol = 1e-6 * (1.0 + analytic.abs().max(numeric.abs()));
    assert!((analytic - numeric).abs() <= tol, "{what}: analytic {analytic} vs numeric {numeric}");
}

#[test]
fn gradients_match_central_differences_for_every_preset_and_loss() {
    let h = 1e-6;
    for preset in [Preset::Mf, Preset::Ncf, Preset::TwoTower] {
        // One short epoch so that users, items and histories are known and the
        // embeddings are not at their initial values.
        let mut rec = model(preset, 3);
        let cfg = TrainConfig { epochs: 1, batch_size: 5, learning_rate: 0.05, ..TrainConfig::default() };
        fit(&mut rec, &data(), None, &cfg, |_| true).unwrap();
        let mut dense = Model::<f64>::new(rec.spec().dense.clone(), 0).unwrap();
        for p in rec.dense().parameters() {
            dense.set_parameter(&p.name, to_f64(&p.value)).unwrap();
        }
        // 3 positives, each with 2 negatives: pairs laid out as the objective expects.
        let pairs: Vec<(Option<usize>, usize)> = vec![
            (Some(0), 0),
            (Some(1), 2),
            (Some(4), 6),
            (Some(0), 3),
            (Some(0), 5),
            (Some(1), 1),
            (Some(1), 4),
            (Some(4), 0),
            (Some(4), 2),
        ];
        let targets = [4.0, 2.5, 3.0, 1.0, 5.0, 3.5, 2.0, 4.5, 1.5];
        let objectives = [
            Objective::Mse { targets: &targets },
            Objective::Bpr { positives: 3, negatives: 2 },
            Objective::SampledSoftmax { positives: 3, negatives: 2 },
        ];
        let inputs: Vec<Tensor<f64>> = rec.batch_inputs(&pairs).unwrap().iter().map(to_f64).collect();
        let offsets: Vec<f64> = (0..pairs.len()).map(|k| 3.0 + 0.1 * k as f64 - 0.4).collect();
        for obj in &objectives {
            let g = loss_and_gradients(&dense, inputs.clone(), &offsets, obj, &mut seeded_rng(0)).unwrap();
            assert!((g.loss - loss_of(&dense, &inputs, &offsets, obj)).abs() < 1e-12);
            // w.r.t. the gathered rows
            for (k, x) in inputs.iter().enumerate() {
                let analytic = g.inputs[k].to_vec();
                assert_eq!(g.inputs[k].shape(), x.shape());
                for e in 0..x.to_vec().len() {
                    let at = |d: f64| {
                        let mut xs = inputs.clone();
                        let mut v = xs[k].to_vec();
                        v[e] += d;
                        xs[k] = Tensor::from_vec(x.shape(), v);
                        loss_of(&dense, &xs, &offsets, obj)
                    };
                    let numeric = (at(h) - at(-h)) / (2.0 * h);
                    close(analytic[e], numeric, &format!("{preset} {obj:?} input {k}[{e}]"));
                }
            }
            // w.r.t. the dense parameters
            assert_eq!(g.params.len(), dense.parameters().len());
            for (name, grad) in &g.params {
                let value = dense.parameter(name).unwrap().value.to_vec();
                let shape = grad.shape().to_vec();
                for (e, &analytic) in grad.to_vec().iter().enumerate() {
                    let at = |d: f64| {
                        let mut m = dense.clone();
                        let mut v = value.clone();
                        v[e] += d;
                        m.set_parameter(name, Tensor::from_vec(&shape, v)).unwrap();
                        loss_of(&m, &inputs, &offsets, obj)
                    };
                    let numeric = (at(h) - at(-h)) / (2.0 * h);
                    close(analytic, numeric, &format!("{preset} {obj:?} {name}[{e}]"));
                }
            }
            // w.r.t. the predictions (the biases' gradient)
            for (e, &analytic) in g.predictions.iter().enumerate() {
                let at = |d: f64| {
                    let mut o = offsets.clone();
                    o[e] += d;
                    loss_of(&dense, &inputs, &o, obj)
                };
                close(analytic, (at(h) - at(-h)) / (2.0 * h), &format!("{preset} {obj:?} offset {e}"));
            }
        }
    }
}

#[test]
fn loss_formulas_by_hand() {
    // MSE: predictions [1, 3] for targets [2, 2]: (1 + 1)/2 = 1; ∂ = 2(p − y)/n = [−1, 1].
    let (l, d) = objective_loss(&[1.0, 3.0], &Objective::Mse { targets: &[2.0, 2.0] }).unwrap();
    assert_eq!((l, d), (1.0, vec![-1.0, 1.0]));
    // BPR, one positive 2.0 and one negative 0.5: softplus(−1.5) = ln(1 + e^−1.5).
    let (l, d) = objective_loss(&[2.0, 0.5], &Objective::Bpr { positives: 1, negatives: 1 }).unwrap();
    let s = 1.0 / (1.0 + 1.5f64.exp()); // σ(−1.5)
    assert!((l - (1.0 + (-1.5f64).exp()).ln()).abs() < 1e-12);
    assert!((d[0] + s).abs() < 1e-12 && (d[1] - s).abs() < 1e-12);
    // Sampled softmax, logits [1, 0, 0]: −ln(e / (e + 2)).
    let (l, d) = objective_loss(&[1.0, 0.0, 0.0], &Objective::SampledSoftmax { positives: 1, negatives: 2 }).unwrap();
    let z = 1f64.exp() + 2.0;
    assert!((l - (z.ln() - 1.0)).abs() < 1e-12);
    assert!((d[0] - (1f64.exp() / z - 1.0)).abs() < 1e-12 && (d[1] - 1.0 / z).abs() < 1e-12);
    assert!(objective_loss(&[1.0, 2.0], &Objective::Bpr { positives: 1, negatives: 2 }).is_err());
}

#[test]
fn same_seed_gives_bit_identical_weights() {
    for (preset, loss) in [
        (Preset::Mf, RecLoss::Mse),
        (Preset::TwoTower, RecLoss::Bpr { negatives: 2 }),
        (Preset::Ncf, RecLoss::SampledSoftmax { negatives: 3 }),
    ] {
        let run = |seed: u64| {
            let mut rec = model(preset, 11);
            let cfg = TrainConfig { epochs: 3, batch_size: 6, loss, seed, patience: None, ..TrainConfig::default() };
            fit(&mut rec, &data(), None, &cfg, |_| true).unwrap();
            let mut w: Vec<u32> = rec.tables().iter().flat_map(|t| t.values.iter().map(|v| v.to_bits())).collect();
            w.extend(rec.dense().parameters().iter().flat_map(|p| p.value.to_vec()).map(f32::to_bits));
            w.extend((0..7).map(|i| rec.item_bias(i).to_bits()));
            w
        };
        let a = run(5);
        assert_eq!(a, run(5), "{preset}");
        assert_ne!(a, run(6), "{preset}: the seed changes the shuffle");
    }
}

#[test]
fn rmse_and_mae_by_hand() {
    // Untrained: every prediction is 0 (no user or item seen, μ = 0, no clipping).
    let rec = model(Preset::Mf, 0);
    let x = |user, item, value| Interaction { user, item, value, timestamp: None };
    let (rmse, mae) = rmse_mae(&rec, &[x(0, 0, 3.0), x(1, 1, -4.0)]).unwrap();
    assert!((rmse - 12.5f64.sqrt()).abs() < 1e-12 && (mae - 3.5).abs() < 1e-12);
    assert!(rmse_mae(&rec, &[]).is_err());
    assert!(rmse_mae(&rec, &[x(9, 0, 1.0)]).is_err());
}

#[test]
fn early_stopping_restores_the_best_epoch() {
    let all = data();
    let (train, valid) = all.split_at(15);
    let mut rec = model(Preset::Ncf, 2);
    // A learning rate high enough to overfit 15 ratings within a few epochs.
    let cfg = TrainConfig {
        epochs: 30,
        batch_size: 4,
        learning_rate: 0.05,
        l2: 0.0,
        patience: Some(2),
        ..Default::default()
    };
    let reports = fit(&mut rec, train, Some(valid), &cfg, |_| true).unwrap();
    let best = reports.iter().map(|r| r.val_rmse.unwrap()).fold(f64::INFINITY, f64::min);
    let (rmse, _) = rmse_mae(&rec, valid).unwrap();
    assert_eq!(rmse, best, "{reports:?}");
    let last = reports.last().unwrap();
    assert!(reports.len() < 30, "stopped early");
    assert!(last.val_rmse.unwrap() > best && (last.val_loss.unwrap() - last.val_rmse.unwrap().powi(2)).abs() < 1e-9);
    // on_epoch can stop training.
    let mut rec = model(Preset::Mf, 2);
    let seen: Vec<EpochReport> = fit(&mut rec, train, None, &cfg, |_| false).unwrap();
    assert_eq!(seen.len(), 1);
    let bad = TrainConfig { batch_size: 0, ..cfg };
    assert!(fit(&mut rec, train, None, &bad, |_| true).is_err());
    let bad = TrainConfig { loss: RecLoss::Bpr { negatives: 0 }, ..cfg };
    assert!(fit(&mut rec, train, None, &bad, |_| true).is_err());
}

/// One user rates two items on two days, a point higher on the second day:
/// `μ + b_u + b_i + b_{u,t}` fits it exactly, and only `b_{u,t}` can tell the days
/// apart, so the predictions at the two days differ by 1.0 for both items; a time the
/// user did not rate on, or no time, gets no day bias. The model survives save/load.
#[test]
fn user_day_bias_learns_the_day_offset() {
    let day = 86_400;
    let x = |item, value, t| Interaction { user: 0, item, value, timestamp: Some(t) };
    let train = [x(0, 4.0, 10), x(1, 2.0, 20), x(0, 5.0, day + 5), x(1, 3.0, day + 50)];
    let mut spec = RecSpec::preset(Preset::Mf, 1, &[], None).unwrap();
    spec.biases.user_day = true;
    let mut rec = Recommender::new(spec, ids("u", 1), ids("i", 2), None, 3).unwrap();
    let cfg = TrainConfig {
        epochs: 600,
        batch_size: 4,
        learning_rate: 0.02,
        l2: 0.0,
        patience: None,
        ..TrainConfig::default()
    };
    fit(&mut rec, &train, None, &cfg, |_| true).unwrap();
    let pairs = [(Some(0), 0), (Some(0), 1), (Some(0), 0), (Some(0), 1)];
    let p = rec.predict_at(&pairs, &[Some(0), Some(0), Some(day), Some(2 * day - 1)]).unwrap();
    let want = [4.0, 2.0, 5.0, 3.0];
    for (p, w) in p.iter().zip(want) {
        assert!((p - w).abs() < 0.01, "{p} vs {w}");
    }
    assert!((rec.user_day_bias(0, day) - rec.user_day_bias(0, 0) - 1.0).abs() < 0.02);
    // An unseen day, an unknown time and `predict` add no day bias.
    let none = rec.predict(&pairs[..2]).unwrap();
    let unseen = rec.predict_at(&pairs[..2], &[Some(7 * day), None]).unwrap();
    assert_eq!(none, unseen);
    assert_eq!(rec.user_day_bias(0, 7 * day), 0.0);
    assert!((none[0] - none[1] - 2.0).abs() < 0.02, "{none:?}");
    assert!(rec.predict_at(&pairs, &[None]).is_err());
    // Save and load: the same predictions at every time.
    let dir = tempfile::tempdir().unwrap();
    rec.save(dir.path()).unwrap();
    let back = Recommender::load(dir.path()).unwrap();
    let times = [Some(0), Some(day), Some(7 * day), None];
    assert_eq!(back.predict_at(&pairs, &times).unwrap(), rec.predict_at(&pairs, &times).unwrap());
    // A ranking loss or ratings without timestamps cannot train it.
    let mut rec = Recommender::new(rec.spec().clone(), ids("u", 1), ids("i", 2), None, 3).unwrap();
    let bpr = TrainConfig { loss: RecLoss::Bpr { negatives: 1 }, ..cfg };
    let err = fit(&mut rec, &train, None, &bpr, |_| true).unwrap_err().to_string();
    assert!(err.contains("explicit ratings"), "{err}");
    let untimed: Vec<Interaction> = train.iter().map(|x| Interaction { timestamp: None, ..*x }).collect();
    let err = fit(&mut rec, &untimed, None, &cfg, |_| true).unwrap_err().to_string();
    assert!(err.contains("needs timestamps"), "{err}");
}

fn movielens() -> Option<PathBuf> {
    std::env::var_os("NN_DATA_DIR").map(|d| PathBuf::from(d).join("movielens"))
}

/// Trains `preset` with `cfg` on MovieLens (random 80/20 split, seed 42; 10% of the
/// training part for early stopping) and returns the test RMSE and seconds per epoch.
fn movielens_rmse(preset: Preset, dim: usize, hidden: &[usize], cfg: &TrainConfig) -> (f64, f64) {
    let dir = movielens().expect("NN_DATA_DIR");
    let ratings = read_ratings(&dir.join("ratings.csv.gz"), &RatingsOptions::default()).unwrap();
    let parts = split(&ratings.interactions, Split::Random { test_fraction: 0.2 }, 42).unwrap();
    let fit_parts = split(&parts.train, Split::Random { test_fraction: 0.1 }, 43).unwrap();
    let spec = RecSpec::preset(preset, dim, hidden, None).unwrap();
    let mut rec = Recommender::new(spec, ratings.users.clone(), ratings.items.clone(), None, cfg.seed).unwrap();
    let reports = fit(&mut rec, &fit_parts.train, Some(&fit_parts.test), cfg, |r| {
        eprintln!(
            "{preset} epoch {}: loss {:.4} val rmse {:.4} ({:.2} s)",
            r.epoch,
            r.loss,
            r.val_rmse.unwrap(),
            r.seconds
        );
        true
    })
    .unwrap();
    let (rmse, mae) = rmse_mae(&rec, &parts.test).unwrap();
    let secs = reports.iter().map(|r| r.seconds).sum::<f64>() / reports.len() as f64;
    eprintln!("{preset}: test RMSE {rmse:.4} MAE {mae:.4}, {:.2} s/epoch, {} epochs", secs, reports.len());
    (rmse, secs)
}

/// The best configuration measured: mf with a user-day bias (timeSVD++'s `b_{u,t}`),
/// 128 dimensions, λ 0.15, η 1e-3, trained on the whole training part for 56 epochs
/// (the epoch count early stopping picked on a 10 % validation part). Test RMSE
/// 0.8527 with seed 42 (0.8649 without the day bias): the target is 0.86, the
/// bias model's 0.887.
#[test]
#[ignore = "needs MovieLens: set NN_DATA_DIR"]
fn movielens_mf_with_a_user_day_bias_reaches_0_86() {
    let dir = movielens().expect("NN_DATA_DIR");
    let ratings = read_ratings(&dir.join("ratings.csv.gz"), &RatingsOptions::default()).unwrap();
    let parts = split(&ratings.interactions, Split::Random { test_fraction: 0.2 }, 42).unwrap();
    let mut spec = RecSpec::preset(Preset::Mf, 128, &[], None).unwrap();
    spec.biases.user_day = true;
    let mut rec = Recommender::new(spec, ratings.users.clone(), ratings.items.clone(), None, 42).unwrap();
    let cfg =
        TrainConfig { epochs: 56, learning_rate: 1e-3, l2: 0.15, seed: 42, patience: None, ..TrainConfig::default() };
    fit(&mut rec, &parts.train, None, &cfg, |_| true).unwrap();
    let (rmse, mae) = rmse_mae(&rec, &parts.test).unwrap();
    eprintln!("mf + user-day bias: test RMSE {rmse:.4} MAE {mae:.4}");
    assert!(rmse <= 0.86, "test RMSE {rmse} (measured 0.8527)");
}

/// Early stopping on 10 % of the training part (test RMSE 0.871 measured).
#[test]
#[ignore = "needs MovieLens: set NN_DATA_DIR"]
fn movielens_mf_with_early_stopping() {
    let cfg = TrainConfig {
        epochs: 80,
        batch_size: 256,
        learning_rate: 1e-3,
        l2: 0.15,
        seed: 42,
        patience: Some(3),
        ..TrainConfig::default()
    };
    let (rmse, _) = movielens_rmse(Preset::Mf, 128, &[], &cfg);
    assert!(rmse < 0.875, "test RMSE {rmse}");
}

#[test]
#[ignore = "needs MovieLens: set NN_DATA_DIR"]
fn movielens_bpr_beats_popularity_on_hr_at_10() {
    let dir = movielens().expect("NN_DATA_DIR");
    let ratings = read_ratings(&dir.join("ratings.csv.gz"), &RatingsOptions::default()).unwrap();
    let implicit: Vec<Interaction> = ratings.interactions.iter().map(|x| Interaction { value: 1.0, ..*x }).collect();
    let parts = split(&implicit, Split::LeaveLastOut { per_user: 1 }, 42).unwrap();
    let (nu, ni) = (ratings.users.len(), ratings.items.len());
    let mut spec = RecSpec::preset(Preset::Mf, 32, &[], None).unwrap();
    spec.output = OutputKind::Score;
    let mut rec = Recommender::new(spec, ratings.users.clone(), ratings.items.clone(), None, 42).unwrap();
    let cfg = TrainConfig {
        epochs: 10,
        learning_rate: 2e-3,
        l2: 0.01,
        loss: RecLoss::Bpr { negatives: 4 },
        patience: None,
        ..TrainConfig::default()
    };
    fit(&mut rec, &parts.train, None, &cfg, |r| {
        eprintln!("bpr epoch {}: loss {:.4} ({:.2} s)", r.epoch, r.loss, r.seconds);
        true
    })
    .unwrap();
    let train_by_user = items_by_user(&parts.train, nu);
    let popularity: Vec<f32> = item_counts(&parts.train, ni).iter().map(|&c| c as f32).collect();
    // HR@10: the held-out item among the 10 best items the user did not have in training.
    let hit = |scores: &[f32], user: usize, item: usize| {
        let seen = &train_by_user[user];
        let target = scores[item];
        let better = (0..ni).filter(|&j| seen.binary_search(&j).is_err() && j != item && scores[j] > target).count();
        better < 10
    };
    let (mut bpr_hits, mut pop_hits) = (0, 0);
    for x in &parts.test {
        let scores = rec.score_all_items(Some(x.user)).unwrap();
        bpr_hits += hit(&scores, x.user, x.item) as usize;
        pop_hits += hit(&popularity, x.user, x.item) as usize;
    }
    let n = parts.test.len() as f64;
    let (bpr, pop) = (bpr_hits as f64 / n, pop_hits as f64 / n);
    eprintln!("HR@10 over {n} users: BPR-MF {bpr:.4}, popularity {pop:.4}");
    assert!(bpr > pop, "BPR {bpr} vs popularity {pop}");
}
