//! A user's own CSV files: columns by name, the task made explicit, regression in the
//! target's units, class weights, one validated run configuration, and one `error:`
//! line for each bad input.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod common;
use common::{fails_with, nn, stdout};

/// The figure after `label` in `text`, e.g. `test rmse: 0.1234`.
fn figure(text: &str, label: &str) -> f64 {
    let at = text.find(label).unwrap_or_else(|| panic!("`{label}` not in output:\n{text}"));
    text[at + label.len()..].split_whitespace().next().unwrap().trim_end_matches(',').parse().unwrap()
}

/// A deterministic stream of numbers in [0, 1) (a 64-bit LCG, Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Three classes labelled 1, 2, 3 (numbers), 4 features whose means depend on the
/// class, 300 rows: header `a,b,c,d,label`.
fn numeric_label_csv(dir: &Path) -> PathBuf {
    let mut rng = Lcg(7);
    let mut text = String::from("a,b,c,d,label\n");
    for i in 0..300 {
        let class = i % 3 + 1;
        let c = class as f64;
        let v: Vec<f64> = (0..4).map(|j| c * (j as f64 + 1.0) + rng.next() * 2.0).collect();
        writeln!(text, "{:.4},{:.4},{:.4},{:.4},{class}", v[0], v[1], v[2], v[3]).unwrap();
    }
    let path = dir.join("classes.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// A regression table: 10 features in [0, 1), `y = 100 + 30·x0 − 20·x1 + 40·x2·x3 +
/// 10·sin(6·x4) + noise`, 600 rows; targets far from unit scale on purpose.
fn regression_csv(dir: &Path) -> PathBuf {
    let mut rng = Lcg(11);
    let mut text = String::new();
    let names: Vec<String> = (0..10).map(|j| format!("x{j}")).collect();
    writeln!(text, "{},y", names.join(",")).unwrap();
    for _ in 0..600 {
        let x: Vec<f64> = (0..10).map(|_| rng.next()).collect();
        let y = 100.0 + 30.0 * x[0] - 20.0 * x[1] + 40.0 * x[2] * x[3] + 10.0 * (6.0 * x[4]).sin() + rng.next();
        let cells: Vec<String> = x.iter().map(|v| format!("{v:.5}")).collect();
        writeln!(text, "{},{y:.4}", cells.join(",")).unwrap();
    }
    let path = dir.join("regression.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes `rows` (a header and data rows of `src`) with columns in `order` (by header
/// name; `"id"` adds a running id column).
fn reorder(src: &Path, dst: &Path, order: &[&str]) {
    let text = std::fs::read_to_string(src).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut out = order.join(",") + "\n";
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let row: Vec<String> = order
            .iter()
            .map(|name| match header.iter().position(|h| h == name) {
                Some(j) => cells[j].to_string(),
                None => format!("{}", 1000 + i),
            })
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    std::fs::write(dst, out).unwrap();
}

#[test]
fn numeric_labels_are_regression_by_default_and_classes_with_task() {
    let dir = tempfile::tempdir().unwrap();
    let csv = numeric_label_csv(dir.path());
    let data = format!("csv:{}", csv.display());
    let text = stdout(nn().args(["fit", "--data", &data, "--epochs", "1"]));
    assert!(
        text.contains("task: regression (column \"label\" holds only numbers; pass --task classification to override)"),
        "{text}"
    );
    let text = stdout(nn().args(["fit", "--data", &data, "--task", "classification", "--epochs", "15"]));
    assert!(text.contains("3 classes"), "{text}");
    assert!(!text.contains("task: "), "an explicit --task is not reported as inferred:\n{text}");
    let acc = figure(&text, "test accuracy:");
    assert!(acc >= 0.9, "test accuracy {acc}\n{text}");
}

#[test]
fn predictions_select_columns_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let csv = numeric_label_csv(dir.path());
    let out = dir.path().join("model");
    stdout(nn().args(["fit", "--data", &format!("csv:{}", csv.display()), "--task", "classification"]).args([
        "--epochs",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]));
    let model = out.to_str().unwrap();
    let predict = |input: &Path| {
        let o = nn().args(["predict", "--model", model, "--input", input.to_str().unwrap()]).assert().success();
        let o = o.get_output();
        (String::from_utf8(o.stdout.clone()).unwrap(), String::from_utf8(o.stderr.clone()).unwrap())
    };
    let (original, err) = predict(&csv);
    assert!(err.is_empty(), "the target column of the training file is expected, not news: {err}");
    assert_eq!(original.lines().count(), 301, "{original}");
    let reordered = dir.path().join("reordered.csv");
    reorder(&csv, &reordered, &["d", "label", "b", "a", "c"]);
    assert_eq!(predict(&reordered).0, original);
    let with_id = dir.path().join("with_id.csv");
    reorder(&csv, &with_id, &["id", "a", "b", "c", "d"]);
    let (text, err) = predict(&with_id);
    assert_eq!(text, original);
    assert!(err.contains("ignoring column the model was not trained on: id"), "{err}");
    // A missing column is refused by name.
    let missing = dir.path().join("missing.csv");
    reorder(&csv, &missing, &["a", "b", "d"]);
    fails_with(nn().args(["predict", "--model", model, "--input", missing.to_str().unwrap()]), "\"c\"");
    // The class names are the labels of the file: 1, 2 and 3.
    let classes: std::collections::BTreeSet<&str> =
        original.lines().skip(1).map(|l| l.split(',').nth(2).unwrap()).collect();
    assert!(classes.iter().all(|c| ["1", "2", "3"].contains(c)), "{classes:?}");
}

#[test]
fn regression_beats_the_mean_baseline_in_the_targets_units() {
    let dir = tempfile::tempdir().unwrap();
    let csv = regression_csv(dir.path());
    let out = dir.path().join("model");
    let text = stdout(nn().args(["fit", "--data", &format!("csv:{}", csv.display()), "--out", out.to_str().unwrap()]));
    assert!(text.contains("task: regression"), "{text}");
    assert!(text.contains("regression targets standardised"), "{text}");
    let rmse = figure(&text, "test rmse:");
    let r2 = figure(&text, "test r2:");
    let baseline = figure(&text, "baseline rmse:");
    // The targets' standard deviation is about 14; the baseline's RMSE is near it.
    assert!((10.0..20.0).contains(&baseline), "{text}");
    assert!(rmse < 0.5 * baseline && r2 > 0.75, "rmse {rmse}, r2 {r2}, baseline {baseline}\n{text}");
    assert!(!text.contains("warning"), "{text}");
    // Predictions come back in the target's units (around 100), not standard units.
    let pred = stdout(nn().args(["predict", "--model", out.to_str().unwrap(), "--input", csv.to_str().unwrap()]));
    let values: Vec<f64> = pred.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    assert!((100.0..140.0).contains(&mean), "mean prediction {mean}");
    // Evaluating on the training file: its held-out test part.
    let text =
        stdout(nn().args(["evaluate", "--model", out.to_str().unwrap(), "--data", &format!("csv:{}", csv.display())]));
    assert!(text.contains("rmse:") && text.contains("r2:"), "{text}");
}

#[test]
fn evaluate_on_another_file_does_not_claim_training_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = numeric_label_csv(dir.path());
    let out = dir.path().join("model");
    let data = format!("csv:{}", csv.display());
    stdout(nn().args(["fit", "--data", &data, "--task", "classification", "--epochs", "3", "--out"]).arg(&out));
    // The training file: the test part the run held out (20% of 300 rows).
    let text = stdout(nn().args(["evaluate", "--model", out.to_str().unwrap(), "--data", &data]));
    assert!(text.contains("the test part the run held out of"), "{text}");
    assert!(text.contains("60 samples"), "{text}");
    let fit_acc = {
        let t = stdout(nn().args(["fit", "--data", &data, "--task", "classification", "--epochs", "3"]));
        figure(&t, "test accuracy:")
    };
    assert_eq!(figure(&text, "accuracy:"), fit_acc, "{text}");
    // Without run.json beside the model, the run saved in model.json gives the same part.
    std::fs::remove_file(out.join("run.json")).unwrap();
    let again = stdout(nn().args(["evaluate", "--model", out.to_str().unwrap(), "--data", &data]));
    assert!(again.contains("60 samples") && again.contains("model.json)"), "{again}");
    assert_eq!(figure(&again, "accuracy:"), fit_acc, "{again}");
    // A model of an earlier version (no run in model.json) and no run.json: every row,
    // and it says so.
    let path = out.join("model.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["metadata"].as_object_mut().unwrap().remove("run").expect("model.json holds its run");
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let text = stdout(nn().args(["evaluate", "--model", out.to_str().unwrap(), "--data", &data]));
    assert!(text.contains("including those the model was trained on"), "{text}");
    let other = dir.path().join("other.csv");
    reorder(&csv, &other, &["label", "d", "c", "b", "a"]);
    let text = stdout(
        nn().args(["evaluate", "--model", out.to_str().unwrap(), "--data"]).arg(format!("csv:{}", other.display())),
    );
    assert!(!text.contains("trained on"), "{text}");
    assert!(text.contains("300 samples"), "{text}");
}

#[test]
fn every_row_can_be_trained_on() {
    let dir = tempfile::tempdir().unwrap();
    let csv = numeric_label_csv(dir.path());
    let data = format!("csv:{}", csv.display());
    let text = stdout(nn().args(["fit", "--data", &data, "--task", "classification", "--epochs", "1"]).args([
        "--test-split",
        "0",
        "--validation-split",
        "0",
    ]));
    assert!(text.contains("300 training, 0 validation, 0 test samples"), "{text}");
    let text = stdout(nn().args(["fit", "--data", &data, "--task", "classification", "--epochs", "1", "--no-test"]));
    assert!(text.contains("240 training, 60 validation, 0 test samples"), "{text}");
}

#[test]
fn config_reproduces_a_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    stdout(nn().args(["fit", "--epochs", "2", "--hidden", "32", "--lr", "0.003", "--out"]).arg(&a));
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("run.json")).unwrap()).unwrap();
    for group in ["data", "model", "optimizer", "training", "output"] {
        assert!(run[group].is_object(), "run.json has no `{group}` group: {run}");
    }
    assert_eq!(run["model"]["hidden"], 32);
    let text = stdout(nn().args(["fit", "--config"]).arg(a.join("run.json")).arg("--out").arg(&b));
    assert!(text.contains("with --out from the command line"), "{text}");
    assert_eq!(
        std::fs::read(a.join("weights.safetensors")).unwrap(),
        std::fs::read(b.join("weights.safetensors")).unwrap()
    );
    // An override changes only what it names.
    let c = dir.path().join("c");
    stdout(nn().args(["fit", "--config"]).arg(a.join("run.json")).args(["--epochs", "1", "--out"]).arg(&c));
    let run_c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(c.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_c["training"]["epochs"], 1);
    assert_eq!(run_c["model"]["hidden"], 32);
    assert_eq!(run_c["optimizer"]["lr"], 0.003);
    // From another working directory, with a relative data path in the first run:
    // run.json names the files absolutely.
    let csv = numeric_label_csv(dir.path());
    let rel = dir.path().join("rel");
    stdout(nn().current_dir(dir.path()).args([
        "fit",
        "--data",
        "csv:classes.csv",
        "--task",
        "classification",
        "--epochs",
        "1",
        "--out",
        "rel",
    ]));
    let elsewhere = tempfile::tempdir().unwrap();
    let again = dir.path().join("again");
    stdout(
        nn().current_dir(elsewhere.path()).args(["fit", "--config"]).arg(rel.join("run.json")).arg("--out").arg(&again),
    );
    assert_eq!(
        std::fs::read(rel.join("weights.safetensors")).unwrap(),
        std::fs::read(again.join("weights.safetensors")).unwrap()
    );
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(rel.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["data"]["data"]["Csv"], csv.canonicalize().unwrap().to_str().unwrap());
    // Without a new --out the run would overwrite the first: refused.
    fails_with(nn().args(["fit", "--config"]).arg(a.join("run.json")), "pass --out NEW_DIR");
    // A run killed before its first checkpoint: nothing to resume, and the way to
    // restart, the command that started it (--config would not write over the folder).
    let early = dir.path().join("early");
    std::fs::create_dir(&early).unwrap();
    std::fs::copy(a.join("run.json"), early.join("run.json")).unwrap();
    fails_with(nn().args(["fit", "--resume"]).arg(&early), "nothing to resume");
    fails_with(nn().args(["fit", "--config"]).arg(early.join("run.json")).arg("--out").arg(&early), "holds a run");
    stdout(nn().args(["fit", "--epochs", "2", "--hidden", "32", "--lr", "0.003", "--out"]).arg(&early));
    assert_eq!(
        std::fs::read(a.join("weights.safetensors")).unwrap(),
        std::fs::read(early.join("weights.safetensors")).unwrap()
    );
}

#[test]
fn class_weights_and_label_smoothing() {
    let dir = tempfile::tempdir().unwrap();
    let csv = numeric_label_csv(dir.path());
    let data = format!("csv:{}", csv.display());
    let text = stdout(nn().args(["fit", "--data", &data, "--task", "classification", "--epochs", "2"]).args([
        "--class-weight",
        "balanced",
        "--label-smoothing",
        "0.1",
    ]));
    assert!(text.contains("class weights: 1: 1.0000, 2: 1.0000, 3: 1.0000"), "{text}");
    let weights = dir.path().join("w.json");
    std::fs::write(&weights, r#"{"1": 1.0, "2": 2.5, "3": 1.0}"#).unwrap();
    let text = stdout(
        nn().args(["fit", "--data", &data, "--task", "classification", "--epochs", "1"])
            .args(["--class-weight", weights.to_str().unwrap()]),
    );
    assert!(text.contains("class weights: 1: 1.0000, 2: 2.5000, 3: 1.0000"), "{text}");
    std::fs::write(&weights, r#"{"1": 1.0, "7": 2.5}"#).unwrap();
    fails_with(
        nn().args(["fit", "--data", &data, "--task", "classification", "--class-weight", weights.to_str().unwrap()]),
        "class \"7\" is not in the data",
    );
    fails_with(nn().args(["fit", "--data", &data, "--class-weight", "balanced"]), "needs class targets");
}

#[test]
fn bad_tabular_inputs_give_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let semi = dir.path().join("semi.csv");
    std::fs::write(&semi, "a;b;label\n1;2;x\n3;4;y\n").unwrap();
    fails_with(nn().args(["fit", "--data"]).arg(format!("csv:{}", semi.display())), "--delimiter ';'");
    let text = stdout(
        nn().args(["fit", "--epochs", "1", "--delimiter", ";", "--data"])
            .arg(format!("csv:{}", semi.display()))
            .args(["--test-split", "0", "--validation-split", "0"]),
    );
    assert!(text.contains("2 training"), "{text}");
    let holes = dir.path().join("holes.csv");
    std::fs::write(&holes, "a,b,label\n1,2,x\n3,,y\n5,6,x\n7,8,y\n").unwrap();
    let data = format!("csv:{}", holes.display());
    fails_with(nn().args(["fit", "--data", &data]), "holes.csv:3, column 2 (\"b\"): missing value");
    let text = stdout(nn().args(["fit", "--data", &data, "--missing", "drop", "--epochs", "1", "--test-split", "0"]));
    assert!(text.contains("dropped 1 rows"), "{text}");
    let text = stdout(nn().args(["fit", "--data", &data, "--missing", "mean", "--epochs", "1", "--test-split", "0"]));
    assert!(text.contains("1 rows have missing values"), "{text}");
    fails_with(nn().args(["fit", "--data", &data, "--drop", "nope"]), "nope");
    fails_with(nn().args(["fit", "--drop", "a"]), "--drop applies to CSV data");
    fails_with(nn().args(["fit", "--label-smoothing", "1.5"]), "--label-smoothing must be in [0, 1)");
}

#[test]
fn text_features_are_one_hot_encoded_with_categorical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cities.csv");
    let mut text = String::from("size,city,label\n");
    for i in 0..120 {
        let city = ["Oslo", "Rome", "Lima"][i % 3];
        let label = if city == "Rome" { "warm" } else { "cold" };
        writeln!(text, "{},{city},{label}", i % 7).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    let data = format!("csv:{}", path.display());
    fails_with(nn().args(["fit", "--data", &data]), "--categorical");
    let out = dir.path().join("model");
    let text =
        stdout(nn().args(["fit", "--data", &data, "--categorical", "city", "--epochs", "30", "--out"]).arg(&out));
    assert!(text.contains("2 feature columns → 4 inputs"), "{text}");
    assert_eq!(figure(&text, "test accuracy:"), 1.0, "{text}");
    let input = dir.path().join("input.csv");
    std::fs::write(&input, "city,size\nRome,3\nOslo,3\nParis,3\n").unwrap();
    let o =
        nn().args(["predict", "--model", out.to_str().unwrap(), "--input", input.to_str().unwrap()]).assert().success();
    let o = o.get_output();
    let pred = String::from_utf8(o.stdout.clone()).unwrap();
    let names: Vec<&str> = pred.lines().skip(1).map(|l| l.split(',').nth(2).unwrap()).collect();
    assert_eq!(names[..2], ["warm", "cold"], "{pred}");
    assert!(String::from_utf8(o.stderr.clone()).unwrap().contains("1 categorical value was unseen in training"));
}

/// The 10 `mean_*` measurements of the breast cancer table predicting
/// `worst_smoothness` (real values): the other 20 columns and the diagnosis dropped.
#[test]
#[ignore = "needs the breast cancer table: set NN_DATA_DIR"]
fn regression_on_a_real_ten_feature_table_beats_the_baseline() {
    let dir = PathBuf::from(std::env::var("NN_DATA_DIR").expect("NN_DATA_DIR")).join("breast_cancer/breast_cancer.csv");
    let header = std::fs::read_to_string(&dir).unwrap().lines().next().unwrap().to_string();
    let drop: Vec<&str> = header.split(',').filter(|c| !c.starts_with("mean_") && *c != "worst_smoothness").collect();
    assert_eq!(drop.len(), 20);
    let text = stdout(nn().args(["fit", "--data"]).arg(format!("csv:{}", dir.display())).args([
        "--target",
        "worst_smoothness",
        "--drop",
        &drop.join(","),
    ]));
    assert!(text.contains("10 feature columns"), "{text}");
    let rmse = figure(&text, "test rmse:");
    let r2 = figure(&text, "test r2:");
    let baseline = figure(&text, "baseline rmse:");
    println!("breast cancer worst_smoothness: rmse {rmse}, r2 {r2}, baseline rmse {baseline}");
    assert!(rmse < 0.8 * baseline && r2 > 0.5, "{text}");
}

/// Header names made of digits: a value of `--target`, `--drop` or `--categorical`
/// equal to a header name is that column; otherwise a number is a 0-based index.
#[test]
fn column_names_of_digits_are_names_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("years.csv");
    let mut rng = Lcg(3);
    let mut text = String::from("2,0,1,2020,y\n");
    for i in 0..40 {
        let v: Vec<f64> = (0..3).map(|_| rng.next()).collect();
        writeln!(text, "{},{:.3},{:.3},{:.3},{:.3}", ["a", "b", "c"][i % 3], v[0], v[1], v[2], v[0] + v[1]).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    let data = format!("csv:{}", path.display());
    let fit = |extra: &[&str]| stdout(nn().args(["fit", "--data", &data, "--epochs", "1"]).args(extra));
    let columns = |text: &str| text.lines().find(|l| l.starts_with("feature columns: ")).unwrap().to_string();
    // The error's hint, --categorical "2", works as printed: column "2", not the third.
    fails_with(nn().args(["fit", "--data", &data]), "a text column needs --categorical \"2\"");
    let text = fit(&["--categorical", "2"]);
    assert_eq!(columns(&text), "feature columns: 2, 0, 1, 2020", "{text}");
    assert!(text.contains("4 feature columns → 6 inputs"), "{text}");
    // --drop 0 drops the column named "0" (the second), --drop 2020 the one named so.
    assert_eq!(columns(&fit(&["--categorical", "2", "--drop", "0"])), "feature columns: 2, 1, 2020");
    assert_eq!(columns(&fit(&["--categorical", "2", "--drop", "2020"])), "feature columns: 2, 0, 1");
    // No column is named "3": index 3, the column named "2020".
    assert_eq!(columns(&fit(&["--categorical", "2", "--drop", "3"])), "feature columns: 2, 0, 1");
    // --target 0: the column named "0".
    let text = fit(&["--categorical", "2", "--target", "0"]);
    assert!(text.contains("task: regression (column \"0\" holds only numbers"), "{text}");
    assert_eq!(columns(&text), "feature columns: 2, 1, 2020, y");
    fails_with(
        nn().args(["fit", "--data", &data, "--categorical", "2", "--drop", "9"]),
        "no column named \"9\" and dropped column index 9 is out of range: the header has 5 columns",
    );
    let help = stdout(nn().args(["fit", "--help"]));
    assert!(help.contains("A value equal to a header name is that column; otherwise a number is a 0-based index"));
}

#[test]
fn label_smoothing_needs_classes() {
    let dir = tempfile::tempdir().unwrap();
    let csv = regression_csv(dir.path());
    let out = dir.path().join("run");
    fails_with(
        nn().args(["fit", "--data", &format!("csv:{}", csv.display()), "--label-smoothing", "0.1", "--out"]).arg(&out),
        "--label-smoothing needs class targets (classification)",
    );
    assert!(!out.exists(), "a refused run leaves no folder");
}

/// `rows` rows of `size,city,label`: `label` is `warm` for Rome, else `cold`; `size` is
/// missing in every 11th row and `city` in every 13th.
fn holes_csv(path: &Path, rows: usize) {
    let mut text = String::from("size,city,label\n");
    for i in 0..rows {
        let city = if i % 13 == 0 { "" } else { ["Oslo", "Rome", "Lima"][i % 3] };
        let size = if i % 11 == 0 { "NA".to_string() } else { (i % 7).to_string() };
        let label = if city == "Rome" { "warm" } else { "cold" };
        writeln!(text, "{size},{city},{label}").unwrap();
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn evaluate_drops_rows_as_a_missing_drop_model_was_trained() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("holes.csv");
    holes_csv(&csv, 200);
    let data = format!("csv:{}", csv.display());
    let out = dir.path().join("model");
    let fit = stdout(
        nn().args(["fit", "--data", &data, "--categorical", "city", "--missing", "drop", "--epochs", "3", "--out"])
            .arg(&out),
    );
    // Rows 0, 11, 13, ... : 200 − 167 = 33 have a missing value.
    assert!(fit.contains("--missing drop: dropped 33 rows with a missing value"), "{fit}");
    let evaluate = |data: &str| {
        let o = nn().args(["evaluate", "--model", out.to_str().unwrap(), "--data", data]).assert().success();
        let o = o.get_output();
        (String::from_utf8(o.stdout.clone()).unwrap(), String::from_utf8(o.stderr.clone()).unwrap())
    };
    // The training file: the same rows dropped, so the run's own test part.
    let (text, err) = evaluate(&data);
    assert_eq!(
        err.trim(),
        "note: dropped 33 rows with a missing value, as training did (the model was trained with --missing drop)"
    );
    assert!(text.contains("the test part the run held out of"), "{text}");
    assert!(text.contains("(33 of 167 rows, seed 42;"), "{text}");
    assert_eq!(figure(&text, "loss:"), figure(&fit, "test loss:"), "{text}\n{fit}");
    assert_eq!(figure(&text, "accuracy:"), figure(&fit, "test accuracy:"), "{text}\n{fit}");
    // Another file: all its complete rows.
    let other = dir.path().join("other.csv");
    holes_csv(&other, 30);
    let (text, err) = evaluate(&format!("csv:{}", other.display()));
    assert!(err.contains("note: dropped 5 rows with a missing value"), "{err}");
    assert!(text.contains("25 samples of"), "{text}");
    // predict answers every row, so it still refuses one it cannot encode.
    fails_with(
        nn().args(["predict", "--model", out.to_str().unwrap(), "--input", csv.to_str().unwrap()]),
        "cannot drop a row to predict",
    );
}

#[test]
fn a_missing_category_gets_the_training_frequencies() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("cities.csv");
    // 100 rows on every part (no validation or test part): city Oslo 40, Rome 30,
    // Lima 20, missing 10; size 1..=4 in turn, missing in rows 5, 15, ..., 95.
    let mut text = String::from("size,city,label\n");
    for i in 0..100 {
        let city = match i % 10 {
            0..=3 => "Oslo",
            4..=6 => "Rome",
            7 | 8 => "Lima",
            _ => "NA",
        };
        let size = if i % 10 == 5 { String::new() } else { (i % 4 + 1).to_string() };
        writeln!(text, "{size},{city},{}", if city == "Rome" { "warm" } else { "cold" }).unwrap();
    }
    std::fs::write(&csv, text).unwrap();
    let out = dir.path().join("model");
    let fit = stdout(nn().args(["fit", "--data"]).arg(format!("csv:{}", csv.display())).args([
        "--categorical",
        "city",
        "--missing",
        "mean",
        "--test-split",
        "0",
        "--validation-split",
        "0",
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        fit.contains(
            "--missing mean: 20 rows have missing values, replaced by their column's training mean \
             (a missing category by the training frequency of each category)"
        ),
        "{fit}"
    );
    // The imputer saved with the model: size's mean over the 90 rows that have one,
    // then the frequencies of Lima, Oslo and Rome among the 90 rows with a city.
    let model_json = out.join("model.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&model_json).unwrap()).unwrap();
    let imputer = &json["metadata"]["scalers"][0];
    assert_eq!(imputer["kind"], "impute", "{imputer}");
    let sizes: Vec<f64> = (0..100).filter(|i| i % 10 != 5).map(|i| (i % 4 + 1) as f64).collect();
    let size_mean = sizes.iter().sum::<f64>() / sizes.len() as f64;
    let values: Vec<f64> = imputer["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(values, [size_mean, 20.0 / 90.0, 40.0 / 90.0, 30.0 / 90.0]);
    // predict and serve encode a missing city the same way: with the imputer's city
    // values set to Rome's one-hot block, a row without a city predicts as Rome.
    json["metadata"]["scalers"][0]["values"] = serde_json::json!([size_mean, 0.0, 0.0, 1.0]);
    std::fs::write(&model_json, serde_json::to_string(&json).unwrap()).unwrap();
    let input = dir.path().join("input.csv");
    std::fs::write(&input, "size,city\n3,Rome\n3,\n3,?\n3,Paris\n").unwrap();
    let o = nn().args(["predict", "--model", out.to_str().unwrap(), "--input", input.to_str().unwrap()]).assert();
    let o = o.success().get_output().clone();
    let pred = String::from_utf8(o.stdout).unwrap();
    let rows: Vec<&str> = pred.lines().skip(1).map(|l| l.split_once(',').unwrap().1).collect();
    assert_eq!(rows[1], rows[0], "{pred}");
    assert_eq!(rows[2], rows[0], "{pred}");
    // An unseen city is still all zeros: another input, and counted.
    assert_ne!(rows[3], rows[0], "{pred}");
    assert!(String::from_utf8(o.stderr).unwrap().contains("1 categorical value was unseen in training"));
}

#[test]
fn small_tabular_problems_are_refused_or_reported_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        format!("csv:{}", path.display())
    };
    // A feature column with no value at all under --missing mean.
    let empty = write("empty.csv", "a,b,y\n1,,3\n2,NA,5\n4,,1\n5,?,2\n6,,3\n");
    fails_with(
        nn().args(["fit", "--data", &empty, "--missing", "mean", "--test-split", "0", "--validation-split", "0"]),
        "column \"b\" has no value in the 5 rows of the training part, so --missing mean has no training mean to fill it with",
    );
    // Regression on one training row.
    let two = write("two.csv", "a,y\n1,3\n2,5\n");
    fails_with(nn().args(["fit", "--data", &two]), "regression needs at least 2");
    // One test row: R² is undefined and says so.
    let three = write("three.csv", "a,y\n1,3\n2,5\n4,1\n");
    let text = stdout(
        nn().args(["fit", "--data", &three, "--epochs", "1", "--validation-split", "0"]).args(["--test-split", "0.34"]),
    );
    assert!(text.contains("test r2: n/a - baseline rmse:"), "{text}");
    assert!(text.contains("(1 samples)"), "{text}");
    // --validation-split is a fraction of what the test part leaves.
    let help = stdout(nn().args(["fit", "--help"]));
    assert!(help.contains("of what the test part leaves"), "{help}");
    // A model of CSV columns evaluated on images.
    let csv = regression_csv(dir.path());
    let out = dir.path().join("model");
    stdout(nn().args(["fit", "--data", &format!("csv:{}", csv.display()), "--epochs", "1", "--out"]).arg(&out));
    fails_with(
        nn().args(["evaluate", "--model", out.to_str().unwrap(), "--data", "digits"]),
        "was trained on the CSV columns x0, x1, x2, x3, x4, x5, x6, x7, x8, x9 (10 inputs), but digits has samples of shape [8, 8, 1]",
    );
    // And a digits model on a CSV file.
    let digits = dir.path().join("digits");
    stdout(nn().args(["fit", "--epochs", "1", "--out"]).arg(&digits));
    fails_with(
        nn().args(["evaluate", "--model", digits.to_str().unwrap(), "--data", &format!("csv:{}", csv.display())]),
        "takes inputs of shape [8, 8, 1] (digits), but csv:",
    );
}

#[test]
fn the_confusion_matrix_shows_whole_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.csv");
    let mut text = String::from("x,kind\n");
    for i in 0..120 {
        let kind = if i % 3 == 0 { "rare_event" } else { "common" };
        writeln!(text, "{},{kind}", if kind == "common" { 1.0 } else { -1.0 } + 0.01 * (i % 5) as f64).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    let data = format!("csv:{}", path.display());
    let out = dir.path().join("model");
    stdout(nn().args(["fit", "--data", &data, "--epochs", "30", "--out"]).arg(&out));
    let text = stdout(nn().args(["evaluate", "--model", out.to_str().unwrap(), "--data", &data]));
    // 24 test rows: 16 common, 8 rare_event, all right; columns 10 wide.
    assert!(text.contains(&format!("{:>10} | {:>10} {:>10} | precision", "", "common", "rare_event")), "{text}");
    assert!(text.contains(&format!("{:>10} | {:>10} {:>10} |", "rare_event", 0, 8)), "{text}");
}
