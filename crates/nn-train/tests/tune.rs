//! Tests of `nn_train::tune`: grid order, seeded sampling and its scales, halving
//! rungs and survivors, resume, and the errors of bad search spaces. A cheap,
//! deterministic runner stands in for training.

use std::path::Path;

use nn_train::tune::{
    halving_rungs, read_trials, search, write_trials, Direction, Event, FloatDomain, Objective, Range, Rung, Scale,
    SearchConfig, SearchSpace, Strategy, Trial, TrialOutcome, TrialParams, TrialRecord, TrialRunner,
};
use nn_train::TrainError;
use proptest::prelude::*;

mod common;
use common::FakeTrials;

const OPTIMIZERS: [&str; 3] = ["adam", "sgd", "momentum"];

fn space(json: &str) -> SearchSpace {
    SearchSpace::from_json(json, &OPTIMIZERS).unwrap()
}

fn config_err(json: &str) -> String {
    match SearchSpace::from_json(json, &OPTIMIZERS) {
        Err(TrainError::Config(m)) => m,
        other => panic!("expected a config error for {json}, got {other:?}"),
    }
}

/// A stand-in for training: the "validation loss" is a smooth function of the
/// parameters with its minimum at lr = 10^-2.5 and batch 32, lowered by a longer
/// budget, so rankings are known in advance.
struct FakeRunner {
    trials: FakeTrials,
}

impl FakeRunner {
    fn new() -> Self {
        FakeRunner { trials: FakeTrials::new(None) }
    }

    fn failing_after(n: usize) -> Self {
        FakeRunner { trials: FakeTrials::new(Some(n)) }
    }

    fn loss(trial: &Trial) -> f64 {
        let p = &trial.params;
        (p.learning_rate.log10() + 2.5).powi(2) + (p.batch_size as f64 / 32.0 - 1.0).abs() * 0.1 + p.l2
            - (trial.epochs as f64).ln() * 0.01
    }
}

impl TrialRunner for FakeRunner {
    fn run_trial(&mut self, trial: &Trial, objective: &Objective, _patience: usize) -> nn_train::Result<TrialOutcome> {
        self.trials.run(trial, objective, Self::loss(trial), |_| 0.5)
    }

    fn save_model(&mut self, dir: &Path) -> nn_train::Result<()> {
        self.trials.save_model_txt(dir);
        Ok(())
    }
}

#[test]
fn grid_is_complete_and_in_row_major_order() {
    let s = space(r#"{"learning_rate": [0.1, 0.01], "batch_size": [16, 32, 64], "optimizer": ["adam", "sgd"]}"#);
    let grid = s.grid().unwrap();
    // Nested loops, the first key outermost.
    let mut expected = Vec::new();
    for lr in [0.1, 0.01] {
        for batch_size in [16, 32, 64] {
            for opt in ["adam", "sgd"] {
                expected.push(TrialParams {
                    learning_rate: lr,
                    batch_size,
                    optimizer: opt.into(),
                    ..TrialParams::default()
                });
            }
        }
    }
    assert_eq!(grid.len(), 2 * 3 * 2);
    assert_eq!(grid, expected);
    // Keys not in the space keep fit's defaults.
    assert!(grid.iter().all(|p| p.l2 == 0.0 && p.dropout == 0.0 && p.hidden == 128));
}

#[test]
fn grid_over_every_key_counts_the_product() {
    let s = space(
        r#"{"learning_rate": [1e-3, 1e-2], "batch_size": [32], "optimizer": ["adam", "sgd", "momentum"],
            "l2": [0, 1e-4], "dropout": [0, 0.2, 0.5], "hidden": [32, 64], "filters": [8, 16]}"#,
    );
    let grid = s.grid().unwrap();
    assert_eq!(grid.len(), 2 * 3 * 2 * 3 * 2 * 2);
    for (i, a) in grid.iter().enumerate() {
        for b in &grid[i + 1..] {
            assert_ne!(a, b, "duplicate configuration");
        }
    }
    // The last key varies fastest, the first slowest.
    assert_eq!((grid[0].filters, grid[1].filters), (8, 16));
    assert_eq!(grid[0].hidden, grid[1].hidden);
    assert_eq!(grid[grid.len() / 2 - 1].learning_rate, 1e-3);
    assert_eq!(grid[grid.len() / 2].learning_rate, 1e-2);
}

#[test]
fn grid_refuses_a_range() {
    let s = space(r#"{"learning_rate": {"min": 1e-4, "max": 1e-1, "scale": "log"}}"#);
    match s.grid() {
        Err(TrainError::Config(m)) => assert!(m.contains("learning_rate") && m.contains("range"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn random_sampling_is_reproducible_from_the_seed() {
    let s = space(
        r#"{"learning_rate": {"min": 1e-4, "max": 1e-1, "scale": "log"}, "batch_size": [16, 32, 64, 128],
            "dropout": {"min": 0, "max": 0.5}, "optimizer": ["adam", "sgd"]}"#,
    );
    let a: Vec<TrialParams> = (0..20).map(|i| s.sample(7, i)).collect();
    let b: Vec<TrialParams> = (0..20).map(|i| s.sample(7, i)).collect();
    assert_eq!(a, b);
    // A trial's draw depends on (seed, index) only: drawing it alone gives the same.
    assert_eq!(s.sample(7, 13), a[13]);
    let c: Vec<TrialParams> = (0..20).map(|i| s.sample(8, i)).collect();
    assert_ne!(a, c);
    // Different trials differ.
    assert_ne!(a[0], a[1]);
}

/// Log-uniform on [1e-4, 1e-1]: each of the three decades holds a third of the
/// draws, and E[ln x] = (ln 1e-4 + ln 1e-1) / 2. Uniform (linear) on the same range
/// puts (1e-2 − 1e-4) / (1e-1 − 1e-4) ≈ 9.9 % below 1e-2 instead of two thirds.
#[test]
fn log_scale_samples_are_uniform_in_the_logarithm() {
    let n = 3000;
    let log = space(r#"{"learning_rate": {"min": 1e-4, "max": 1e-1, "scale": "log"}}"#);
    let xs: Vec<f64> = (0..n).map(|i| log.sample(1, i).learning_rate).collect();
    assert!(xs.iter().all(|&x| (1e-4..=1e-1).contains(&x)));
    for (lo, hi) in [(1e-4, 1e-3), (1e-3, 1e-2), (1e-2, 1e-1)] {
        let frac = xs.iter().filter(|&&x| x >= lo && x < hi).count() as f64 / n as f64;
        assert!((frac - 1.0 / 3.0).abs() < 0.04, "decade [{lo}, {hi}): {frac}");
    }
    let mean_ln = xs.iter().map(|x| x.ln()).sum::<f64>() / n as f64;
    let expect = (1e-4f64.ln() + 1e-1f64.ln()) / 2.0;
    // std of ln x is (ln 1000)/√12 ≈ 1.99; 4 standard errors ≈ 0.145.
    assert!((mean_ln - expect).abs() < 0.15, "mean ln {mean_ln} vs {expect}");

    let lin = space(r#"{"learning_rate": {"min": 1e-4, "max": 1e-1}}"#);
    let below = (0..n).filter(|&i| lin.sample(1, i).learning_rate < 1e-2).count() as f64 / n as f64;
    let expect = (1e-2 - 1e-4) / (1e-1 - 1e-4);
    assert!((below - expect).abs() < 0.03, "linear: {below} below 1e-2, expected {expect}");
}

proptest! {
    #[test]
    fn samples_stay_inside_their_domains(seed in any::<u64>(), index in 0usize..1000, lo in 1e-6f64..1.0, span in 1.0f64..1e4) {
        let s = SearchSpace {
            learning_rate: Some(FloatDomain::Range(Range { min: lo, max: lo * span, scale: Scale::Log })),
            dropout: Some(FloatDomain::Range(Range { min: 0.1, max: 0.6, scale: Scale::Linear })),
            hidden: Some(vec![3, 5, 7]),
            ..space(r#"{"hidden": [1]}"#)
        };
        let p = s.sample(seed, index);
        prop_assert!(p.learning_rate >= lo && p.learning_rate <= lo * span);
        prop_assert!((0.1..=0.6).contains(&p.dropout));
        prop_assert!([3, 5, 7].contains(&p.hidden));
    }
}

#[test]
fn halving_rungs_follow_li_et_al() {
    let r = |configs, epochs| Rung { configs, epochs };
    // n = 27, η = 3, r = 1: 27×1, 9×3, 3×9, 1×27.
    assert_eq!(halving_rungs(27, 1, 27, 3).unwrap(), vec![r(27, 1), r(9, 3), r(3, 9), r(1, 27)]);
    // ⌊10/3⌋ = 3, ⌊10/9⌋ = 1.
    assert_eq!(halving_rungs(10, 1, 20, 3).unwrap(), vec![r(10, 1), r(3, 3), r(1, 9)]);
    // The cap ends the rungs early: 81×1, 27×3, 9×5.
    assert_eq!(halving_rungs(81, 1, 5, 3).unwrap(), vec![r(81, 1), r(27, 3), r(9, 5)]);
    // η = 2, r = 2: 16×2, 8×4, 4×8, 2×16, 1×30.
    assert_eq!(halving_rungs(16, 2, 30, 2).unwrap(), vec![r(16, 2), r(8, 4), r(4, 8), r(2, 16), r(1, 30)]);
    assert!(halving_rungs(0, 1, 10, 3).is_err());
    assert!(halving_rungs(9, 0, 10, 3).is_err());
    assert!(halving_rungs(9, 11, 10, 3).is_err());
    assert!(halving_rungs(9, 1, 10, 1).is_err());
}

fn halving_config(n: usize) -> SearchConfig {
    let s = space(
        r#"{"learning_rate": {"min": 1e-5, "max": 1, "scale": "log"}, "batch_size": [16, 32, 64], "epochs": 27}"#,
    );
    SearchConfig { trials: Some(n), seed: 5, ..SearchConfig::new(s, Strategy::Halving) }
}

#[test]
fn halving_keeps_the_best_fraction_at_each_rung() {
    let dir = tempfile::tempdir().unwrap();
    let config = halving_config(27);
    let mut runner = FakeRunner::new();
    let records = search(&config, dir.path(), &mut runner, &mut |_, _| {}).unwrap();
    let rungs = halving_rungs(27, 1, 27, 3).unwrap();
    assert_eq!(rungs.len(), 4);
    for (k, rung) in rungs.iter().enumerate() {
        let at: Vec<&TrialRecord> = records.iter().filter(|r| r.trial.rung == k).collect();
        assert_eq!(at.len(), rung.configs, "rung {k}");
        assert!(at.iter().all(|r| r.trial.epochs == rung.epochs));
        if k > 0 {
            // The survivors are the rung-before's best `configs` by val_loss (min).
            let mut prev: Vec<&TrialRecord> = records.iter().filter(|r| r.trial.rung == k - 1).collect();
            prev.sort_by(|a, b| a.outcome.objective.total_cmp(&b.outcome.objective));
            let mut want: Vec<usize> = prev.iter().take(rung.configs).map(|r| r.trial.id).collect();
            want.sort_unstable();
            let got: Vec<usize> = at.iter().map(|r| r.trial.id).collect();
            assert_eq!(got, want, "rung {k}");
            // A promoted configuration keeps its parameters.
            for r in &at {
                assert_eq!(r.trial.params, config.space.sample(5, r.trial.id));
            }
        }
    }
    assert_eq!(runner.trials.calls.len(), 27 + 9 + 3 + 1);
    // 27×1 + 9×3 + 3×9 + 1×27 = 108 epochs, against 27×27 = 729 for full training.
    let epochs: usize = records.iter().map(|r| r.trial.epochs).sum();
    assert_eq!(epochs, 108);
}

fn csv_without_seconds(dir: &Path) -> Vec<TrialRecord> {
    let mut r = read_trials(&dir.join("trials.csv")).unwrap();
    for x in &mut r {
        x.outcome.seconds = 0.0;
    }
    r
}

fn check_resume(config: &SearchConfig, fail_after: usize) {
    let whole = tempfile::tempdir().unwrap();
    let mut runner = FakeRunner::new();
    let full = search(config, whole.path(), &mut runner, &mut |_, _| {}).unwrap();
    let total = runner.trials.calls.len();
    assert!(fail_after < total);

    let cut = tempfile::tempdir().unwrap();
    let mut first = FakeRunner::failing_after(fail_after);
    assert!(search(config, cut.path(), &mut first, &mut |_, _| {}).is_err());
    assert_eq!(read_trials(&cut.path().join("trials.csv")).unwrap().len(), fail_after);

    let mut second = FakeRunner::new();
    let mut resumed = 0;
    let again =
        search(config, cut.path(), &mut second, &mut |_, e| resumed += usize::from(e == Event::Resumed)).unwrap();
    assert_eq!(resumed, fail_after);
    // Only the unfinished trials were trained, in the uninterrupted run's order.
    assert_eq!(second.trials.calls, runner.trials.calls[fail_after..].to_vec());
    assert_eq!(again, full);
    assert_eq!(csv_without_seconds(cut.path()), csv_without_seconds(whole.path()));
    let best = |d: &Path| std::fs::read_to_string(d.join("best/model.txt")).unwrap();
    assert_eq!(best(cut.path()), best(whole.path()));

    // A third run has nothing left to do.
    let mut third = FakeRunner::new();
    assert_eq!(search(config, cut.path(), &mut third, &mut |_, _| {}).unwrap(), full);
    assert!(third.trials.calls.is_empty());
}

#[test]
fn an_interrupted_random_search_resumes_to_the_same_result() {
    let s = space(r#"{"learning_rate": {"min": 1e-5, "max": 1, "scale": "log"}, "batch_size": [16, 32, 64]}"#);
    let config = SearchConfig { trials: Some(12), seed: 3, ..SearchConfig::new(s, Strategy::Random) };
    check_resume(&config, 5);
}

#[test]
fn an_interrupted_halving_search_resumes_to_the_same_result() {
    // Interrupted in the second rung (27 configurations in the first).
    check_resume(&halving_config(27), 31);
}

#[test]
fn an_interrupted_grid_search_resumes_to_the_same_result() {
    let s = space(
        r#"{"learning_rate": [1e-1, 1e-2, 1e-3], "batch_size": [16, 32], "objective": {"metric": "val_accuracy"}}"#,
    );
    assert_eq!(s.objective.direction(), Direction::Max);
    check_resume(&SearchConfig::new(s, Strategy::Grid), 2);
}

#[test]
fn the_best_model_is_the_best_record() {
    let dir = tempfile::tempdir().unwrap();
    let s =
        space(r#"{"learning_rate": [1e-1, 10e-3, 3.1622776601683795e-3, 1e-4], "objective": {"metric": "val_loss"}}"#);
    let records =
        search(&SearchConfig::new(s.clone(), Strategy::Grid), dir.path(), &mut FakeRunner::new(), &mut |_, _| {})
            .unwrap();
    let best = nn_train::tune::best(&records, &s.objective).unwrap();
    // 10^-2.5 is the fake's optimum.
    assert_eq!(best.trial.id, 2);
    let saved = std::fs::read_to_string(dir.path().join("best/model.txt")).unwrap();
    assert!(saved.starts_with("2 0 "), "{saved}");
    let table = nn_train::tune::ranked_table(&records, &s, 10);
    let first_row = table.lines().nth(1).unwrap();
    assert!(first_row.split_whitespace().nth(1) == Some("2"), "{table}");
}

#[test]
fn a_different_search_in_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = space(r#"{"learning_rate": [1e-1, 1e-2]}"#);
    search(&SearchConfig::new(s.clone(), Strategy::Grid), dir.path(), &mut FakeRunner::new(), &mut |_, _| {}).unwrap();
    let other = SearchConfig { seed: 1, ..SearchConfig::new(s, Strategy::Random) };
    match search(&other, dir.path(), &mut FakeRunner::new(), &mut |_, _| {}) {
        Err(TrainError::Config(m)) => assert!(m.contains("different search"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn more_random_trials_extend_an_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = space(r#"{"learning_rate": {"min": 1e-4, "max": 1e-1, "scale": "log"}}"#);
    let short = SearchConfig { trials: Some(3), ..SearchConfig::new(s.clone(), Strategy::Random) };
    search(&short, dir.path(), &mut FakeRunner::new(), &mut |_, _| {}).unwrap();
    let long = SearchConfig { trials: Some(5), ..short };
    let mut runner = FakeRunner::new();
    let records = search(&long, dir.path(), &mut runner, &mut |_, _| {}).unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(runner.trials.calls, vec![(3, 0), (4, 0)]);
}

#[test]
fn trials_csv_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trials.csv");
    let rec = TrialRecord {
        trial: Trial {
            id: 4,
            rung: 1,
            epochs: 9,
            params: TrialParams { learning_rate: 0.1 + 0.2, l2: 1.0 / 3.0, ..TrialParams::default() },
        },
        outcome: TrialOutcome {
            best_epoch: 7,
            epochs_run: 9,
            objective: f64::NAN,
            val_loss: f64::NAN,
            val_accuracy: 0.123456789012345,
            seconds: 1.25,
        },
    };
    write_trials(&path, std::slice::from_ref(&rec)).unwrap();
    let back = read_trials(&path).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].trial, rec.trial);
    assert_eq!(back[0].outcome.val_accuracy.to_bits(), rec.outcome.val_accuracy.to_bits());
    assert!(back[0].outcome.objective.is_nan());
}

#[test]
fn nan_objectives_rank_last() {
    let o = Objective { metric: "val_loss".into(), mode: None };
    assert_eq!(o.direction(), Direction::Min);
    assert!(o.better(0.5, f64::NAN));
    assert!(!o.better(f64::NAN, 0.5));
    assert!(o.better(0.1, 0.2));
    assert_eq!(o.best_index(&[f64::NAN, 0.3, 0.2, 0.2, 0.9]), Some(2));
    assert_eq!(o.best_index(&[f64::NAN]), None);
    let acc = Objective { metric: "val_accuracy".into(), mode: None };
    assert_eq!(acc.best_index(&[0.5, 0.9, 0.9, 0.1]), Some(1));
    let forced = Objective { metric: "val_accuracy".into(), mode: Some(Direction::Min) };
    assert_eq!(forced.best_index(&[0.5, 0.9, 0.1]), Some(2));
}

#[test]
fn bad_spaces_fail_with_one_clear_message() {
    let empty = config_err("{}");
    assert!(empty.contains("search space is empty"), "{empty}");
    assert!(config_err(r#"{"epochs": 5}"#).contains("search space is empty"));
    let unknown = config_err(r#"{"learning_rate": [0.1], "momentum": [0.9]}"#);
    assert!(unknown.contains("unknown field `momentum`"), "{unknown}");
    let reversed = config_err(r#"{"learning_rate": {"min": 0.1, "max": 0.001}}"#);
    assert!(reversed.contains("`learning_rate`: min 0.1 > max 0.001"), "{reversed}");
    let zero_budget = config_err(r#"{"learning_rate": [0.1], "epochs": 0}"#);
    assert!(zero_budget.contains("`epochs`"), "{zero_budget}");
    let negative_budget = config_err(r#"{"learning_rate": [0.1], "epochs": -3}"#);
    assert!(negative_budget.contains("-3"), "{negative_budget}");
    assert!(config_err(r#"{"batch_size": []}"#).contains("`batch_size` is an empty list"));
    assert!(config_err(r#"{"batch_size": [0, 32]}"#).contains("`batch_size`"));
    assert!(config_err(r#"{"learning_rate": [0.1, -0.1]}"#).contains("`learning_rate`: -0.1"));
    assert!(config_err(r#"{"learning_rate": {"min": 0, "max": 1, "scale": "log"}}"#).contains("learning_rate"));
    assert!(config_err(r#"{"dropout": [1.0]}"#).contains("`dropout`"));
    assert!(config_err(r#"{"l2": {"min": -1, "max": 1}}"#).contains("`l2`"));
    assert!(config_err(r#"{"optimizer": ["adam", "lion"]}"#).contains("unknown optimizer `lion`"));
    assert!(config_err(r#"{"hidden": [8], "objective": {"metric": "accuracy"}}"#).contains("unknown metric"));
    let shape = config_err(r#"{"learning_rate": {"low": 0.1, "high": 0.2}}"#);
    assert!(shape.contains("a list of numbers, or a range"), "{shape}");
    // A zero trial budget is refused by the search before any training.
    let s = space(r#"{"learning_rate": [0.1]}"#);
    let zero = SearchConfig { trials: Some(0), ..SearchConfig::new(s, Strategy::Random) };
    let dir = tempfile::tempdir().unwrap();
    let mut runner = FakeRunner::new();
    assert!(matches!(search(&zero, dir.path(), &mut runner, &mut |_, _| {}), Err(TrainError::Config(_))));
    assert!(runner.trials.calls.is_empty());
}
