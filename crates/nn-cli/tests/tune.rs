//! End-to-end tests of `nn-cli tune` on the embedded digits data: the files it
//! writes, resume after a kill, halving's rungs and the errors of bad input.

use std::path::Path;

mod common;
use common::{fails_with, nn, stdout, write_file, HALVING_SPACE, TUNE_SPACE};

/// trials.csv rows without the seconds column (the only field that may differ
/// between runs).
fn rows_without_seconds(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("trials.csv")).unwrap();
    text.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
}

#[test]
fn random_search_writes_trials_and_a_usable_best_model() {
    let dir = tempfile::tempdir().unwrap();
    let space = write_file(dir.path(), "space.json", TUNE_SPACE);
    let out = dir.path().join("run");
    let text = stdout(nn().args(["tune", "--space", &space, "--trials", "4", "--seed", "3", "--out"]).arg(&out));
    let rows = std::fs::read_to_string(out.join("trials.csv")).unwrap();
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), 1 + 4, "{rows}");
    assert!(lines[0].starts_with("trial,rung,epochs,learning_rate,batch_size,optimizer"), "{rows}");
    // Every trial's learning rate lies in the range, its batch and hidden in the lists.
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        let lr: f64 = f[3].parse().unwrap();
        assert!((1e-3..=3e-2).contains(&lr), "{l}");
        assert!(["32", "64"].contains(&f[4]) && ["16", "32"].contains(&f[8]), "{l}");
        let acc: f64 = f[12].parse().unwrap();
        assert!(acc > 0.5 && acc <= 1.0, "{l}");
    }
    assert!(text.contains("ranked by val_accuracy"), "{text}");
    assert!(text.contains("best model: test loss"), "{text}");
    // The best model is a `fit --out` folder: evaluate and predict read it.
    let eval = stdout(nn().args(["evaluate", "--data", "digits", "--model"]).arg(out.join("best")));
    assert!(eval.contains("accuracy:"), "{eval}");
    assert!(out.join("search.json").exists());
    // The best row's objective is the best val_accuracy in the saved model's history,
    // at the recorded best epoch.
    // The first row with the highest objective is the best trial (ties: the earlier).
    let rows: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split(',').collect()).collect();
    let objective = |r: &Vec<&str>| r[12].parse::<f64>().unwrap();
    let mut best_row = &rows[0];
    for r in &rows[1..] {
        if objective(r) > objective(best_row) {
            best_row = r;
        }
    }
    let history = std::fs::read_to_string(out.join("best/history.csv")).unwrap();
    let header: Vec<&str> = history.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "val_accuracy").unwrap();
    let series: Vec<f64> = history.lines().skip(1).map(|l| l.split(',').nth(col).unwrap().parse().unwrap()).collect();
    assert_eq!(series.len().to_string(), best_row[11], "epochs run");
    let max = series.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let first_best = series.iter().position(|&v| v == max).unwrap() + 1;
    assert_eq!(best_row[12].parse::<f64>().unwrap(), max);
    assert_eq!(best_row[10], first_best.to_string(), "best epoch");
}

#[test]
fn a_killed_search_resumes_to_the_same_trials() {
    let dir = tempfile::tempdir().unwrap();
    let space = write_file(dir.path(), "space.json", TUNE_SPACE);
    let whole = dir.path().join("whole");
    let cut = dir.path().join("cut");
    let args = ["tune", "--space", &space, "--trials", "4", "--seed", "9", "--out"];
    stdout(nn().args(args).arg(&whole));
    // Killed after two trials...
    nn().args(args).arg(&cut).args(["--abort-after-trials", "2"]).assert().failure();
    assert_eq!(rows_without_seconds(&cut).len(), 1 + 2);
    // ...and rerun: the two finished trials are read back, the others trained.
    let text = stdout(nn().args(args).arg(&cut));
    assert_eq!(text.matches("(from trials.csv)").count(), 2, "{text}");
    assert!(text.contains("4 trials (2 trained now)"), "{text}");
    assert_eq!(rows_without_seconds(&cut), rows_without_seconds(&whole));
    let weights = |d: &Path| std::fs::read(d.join("best/weights.safetensors")).unwrap();
    assert_eq!(weights(&cut), weights(&whole));
}

#[test]
fn halving_trains_the_right_number_per_rung() {
    let dir = tempfile::tempdir().unwrap();
    let space = write_file(dir.path(), "space.json", HALVING_SPACE);
    let out = dir.path().join("run");
    let text = stdout(
        nn().args(["tune", "--space", &space, "--strategy", "halving", "--trials", "9", "--eta", "3", "--out"])
            .arg(&out),
    );
    assert!(text.contains("rungs (configurations x epochs): 9x1, 3x3, 1x9"), "{text}");
    let rows = std::fs::read_to_string(out.join("trials.csv")).unwrap();
    let per_rung = |k: &str, epochs: &str| {
        rows.lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split(',').collect();
                f[1] == k && f[2] == epochs
            })
            .count()
    };
    assert_eq!((per_rung("0", "1"), per_rung("1", "3"), per_rung("2", "9")), (9, 3, 1), "{rows}");
    assert_eq!(rows.lines().count(), 1 + 13);
}

#[test]
fn bad_spaces_fail_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let cases = [
        ("{}", "the search space is empty"),
        (r#"{"learning_rate": [0.01], "momentum": [0.9]}"#, "unknown field `momentum`"),
        (r#"{"learning_rate": {"min": 0.1, "max": 0.001}}"#, "`learning_rate`: min 0.1 > max 0.001"),
        (r#"{"learning_rate": [0.01], "epochs": 0}"#, "`epochs`"),
        (r#"{"optimizer": ["adam", "lion"]}"#, "unknown optimizer `lion`"),
        (r#"{"filters": [8]}"#, "`filters` applies to --model cnn only"),
    ];
    for (i, (json, needle)) in cases.iter().enumerate() {
        let space = write_file(dir.path(), &format!("s{i}.json"), json);
        fails_with(nn().args(["tune", "--space", &space, "--out"]).arg(&out), needle);
    }
    let ok = write_file(dir.path(), "ok.json", r#"{"learning_rate": {"min": 1e-3, "max": 1e-2}}"#);
    fails_with(nn().args(["tune", "--space", &ok, "--trials", "0", "--out"]).arg(&out), "--trials must be at least 1");
    fails_with(nn().args(["tune", "--space", &ok, "--strategy", "grid", "--out"]).arg(&out), "grid search needs lists");
    fails_with(
        nn().args(["tune", "--space", &ok, "--strategy", "halving", "--eta", "1", "--out"]).arg(&out),
        "eta must be at least 2",
    );
    assert!(!out.exists(), "no output before the input is checked");
}
