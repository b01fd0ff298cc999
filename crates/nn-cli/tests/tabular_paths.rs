//! The paths of a user's CSV runs: `evaluate` recognises the training file however
//! its path is spelled, and `fit --config` never writes over a run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod common;
use common::{fails_with, nn, stdout};

/// A deterministic stream of numbers in [0, 1) (a 64-bit LCG, Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A regression table of 300 rows, `y = 10 + 3·a − 2·b + c + noise`, in `dir/data/reg.csv`.
fn regression_csv(dir: &Path) -> PathBuf {
    let mut rng = Lcg(5);
    let mut text = String::from("a,b,c,y\n");
    for _ in 0..300 {
        let (a, b, c) = (rng.next(), rng.next(), rng.next());
        let y = 10.0 + 3.0 * a - 2.0 * b + c + 0.1 * rng.next();
        writeln!(text, "{a:.4},{b:.4},{c:.4},{y:.4}").unwrap();
    }
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let path = dir.join("data/reg.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// The `rmse: … (N samples)` line of `text` with `test ` prefixes removed: the
/// figures `fit` prints for its test part, as `evaluate` prints them.
fn regression_line(text: &str) -> String {
    let line = text.lines().find(|l| l.contains("rmse: ")).unwrap_or_else(|| panic!("no rmse line in:\n{text}"));
    line.replace("test ", "")
}

#[test]
fn evaluate_finds_the_held_out_part_however_the_training_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let csv = regression_csv(root);
    // Trained from `root` with a relative path, the default 20% test part: 60 rows.
    let fit = stdout(
        nn().current_dir(root).args(["fit", "--data", "csv:data/reg.csv", "--epochs", "3"]).args(["--out", "runs/r"]),
    );
    let expected = regression_line(&fit);
    assert!(expected.ends_with("(60 samples)"), "{fit}");
    std::os::unix::fs::symlink(&csv, root.join("link.csv")).unwrap();
    let absolute = format!("csv:{}", csv.display());
    let spellings: [(&Path, &str, &str); 6] = [
        (root, "runs/r", "csv:data/reg.csv"),
        (root, "runs/r", "csv:./data/reg.csv"),
        (root, "runs/r", &absolute),
        (&root.join("runs"), "r", "csv:../data/reg.csv"),
        (&root.join("data"), "../runs/r", "csv:reg.csv"),
        (root, "runs/r", "csv:link.csv"),
    ];
    for (cwd, model, data) in spellings {
        let text = stdout(nn().current_dir(cwd).args(["evaluate", "--model", model, "--data", data]));
        assert!(text.contains(&format!("the test part the run held out of {data} (60 of 300 rows, seed 42")), "{text}");
        assert!(text.contains(&format!("60 samples of {data}")), "{text}");
        assert!(!text.contains("note:"), "{data}: {text}");
        assert_eq!(regression_line(&text), expected, "{data} from {}", cwd.display());
    }
    // A copy of the file is another file: every row, and no claim about training rows.
    std::fs::copy(&csv, root.join("copy.csv")).unwrap();
    let text = stdout(nn().current_dir(root).args(["evaluate", "--model", "runs/r", "--data", "csv:copy.csv"]));
    assert!(text.contains("300 samples of csv:copy.csv"), "{text}");
    assert!(!text.contains("held out") && !text.contains("note:"), "{text}");
    // Trained with an absolute path, evaluated with a relative one.
    let abs_run = root.join("runs/abs");
    let fit = stdout(nn().args(["fit", "--data", &absolute, "--epochs", "3", "--out"]).arg(&abs_run));
    let text = stdout(nn().current_dir(root).args(["evaluate", "--model", "runs/abs", "--data", "csv:data/reg.csv"]));
    assert_eq!(regression_line(&text), regression_line(&fit), "{text}");
    // A model that does not know its run (of an earlier version): the training file's
    // every row, with the note, however it is spelled.
    let path = root.join("runs/r/model.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["metadata"].as_object_mut().unwrap().remove("run").expect("model.json holds its run");
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(root.join("runs/r/run.json")).unwrap();
    for data in ["csv:data/reg.csv", "csv:./data/reg.csv"] {
        let text = stdout(nn().current_dir(root).args(["evaluate", "--model", "runs/r", "--data", data]));
        assert!(text.contains("300 samples") && text.contains("including those the model was trained on"), "{text}");
    }
    let text = stdout(nn().current_dir(root).args(["evaluate", "--model", "runs/r", "--data", "csv:copy.csv"]));
    assert!(!text.contains("note:"), "{text}");
}

/// The files of `dir` and their contents, to show that nothing changed.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn fit_with_config_never_writes_over_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    regression_csv(root);
    let first = ["fit", "--data", "csv:data/reg.csv", "--epochs", "1"];
    stdout(nn().current_dir(root).args(first).args(["--out", "runs/ov"]));
    let before = snapshot(&root.join("runs"));
    std::os::unix::fs::symlink(root.join("runs/ov"), root.join("ov-link")).unwrap();
    let absolute = root.join("runs/ov").display().to_string();
    let absolute_slash = format!("{absolute}/");
    // The config's own folder, however spelled, with or without overrides.
    for out in ["runs/ov", "runs/ov/", "./runs/ov", "runs/../runs/ov", absolute.as_str(), &absolute_slash, "ov-link"] {
        for extra in [&[][..], &["--epochs", "2"][..]] {
            fails_with(
                nn().current_dir(root).args(["fit", "--config", "runs/ov/run.json", "--out", out]).args(extra),
                "holds a run already; pass --out NEW_DIR",
            );
        }
    }
    // The config named another way; no --out (the run's own folder).
    fails_with(
        nn().args(["fit", "--config"]).arg(root.join("runs/ov/../ov/run.json")).args(["--lr", "0.01"]),
        "pass --out NEW_DIR",
    );
    // Another folder holding a run, or just a run.json.
    stdout(nn().current_dir(root).args(first).args(["--out", "runs/other"]));
    let before_other = snapshot(&root.join("runs/other"));
    fails_with(
        nn().current_dir(root).args(["fit", "--config", "runs/ov/run.json", "--out", "runs/other"]),
        "runs/other, which holds a run already",
    );
    assert_eq!(snapshot(&root.join("runs/other")), before_other);
    std::fs::create_dir(root.join("runs/bare")).unwrap();
    std::fs::copy(root.join("runs/ov/run.json"), root.join("runs/bare/run.json")).unwrap();
    fails_with(
        nn().current_dir(root).args(["fit", "--config", "runs/ov/run.json", "--out", "runs/bare"]),
        "holds a run already",
    );
    std::fs::remove_dir_all(root.join("runs/other")).unwrap();
    std::fs::remove_dir_all(root.join("runs/bare")).unwrap();
    assert_eq!(snapshot(&root.join("runs")), before, "a refused run wrote something");
    // A new folder: the same run, bit for bit.
    stdout(nn().current_dir(root).args(["fit", "--config", "runs/ov/run.json", "--out", "runs/new"]));
    assert_eq!(
        std::fs::read(root.join("runs/ov/weights.safetensors")).unwrap(),
        std::fs::read(root.join("runs/new/weights.safetensors")).unwrap()
    );
    // --resume continues a run in its own folder.
    let text = stdout(nn().current_dir(root).args(["fit", "--resume", "runs/ov", "--epochs", "2"]));
    assert!(text.contains("resuming runs/ov after epoch 1, to 2 epochs in all"), "{text}");
}
