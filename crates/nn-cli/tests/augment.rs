//! `nn-cli fit --augment SPEC` on a tiny image dataset, its run.json round trip for
//! `--resume`, and its usage errors.

use std::path::Path;

use assert_cmd::Command;

mod common;
use common::{nn, stdout};

fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

/// Writes an MNIST-format folder `dir` of 48 training and 16 test images 6×6: class 0 bright on
/// the left half, class 1 on the right. Returns its `--data` value.
fn tiny_images(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let side = 6usize;
    let write = |images: &str, labels: &str, n: usize, offset: usize| {
        let mut pixels = Vec::new();
        let mut classes = Vec::new();
        for k in 0..n {
            let i = k + offset;
            let class = i % 2;
            for _r in 0..side {
                for c in 0..side {
                    let bright = (c < side / 2) == (class == 0);
                    pixels.push(if bright { 180 + (i * 7 % 60) as u8 } else { (i * 3 % 40) as u8 });
                }
            }
            classes.push(class as u8);
        }
        write_idx(&dir.join(images), &[n as u32, side as u32, side as u32], &pixels);
        write_idx(&dir.join(labels), &[n as u32], &classes);
    };
    write("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 48, 0);
    write("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 16, 100);
    format!("mnist:{}", dir.display())
}

/// Flags of a small, quick run.
const SMALL: [&str; 6] = ["--hidden", "8", "--batch-size", "8", "--seed", "5"];

/// A failing command exits with code 1 and prints exactly one line, `error: ...`,
/// containing every needle.
fn fails_with_code_1(cmd: &mut Command, needles: &[&str]) {
    let out = cmd.assert().code(1).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn fit_with_augment_runs_on_images_and_is_saved_in_run_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_images(&dir.path().join("data"));
    let out = dir.path().join("run");
    let text = stdout(
        nn().args(["fit", "--data", &data, "--epochs", "2", "--augment", "shift:1"]).args(SMALL).arg("--out").arg(&out),
    );
    assert!(text.contains("augment shift:1"), "{text}");
    assert!(text.contains("test accuracy:"), "{text}");
    assert!(out.join("weights.safetensors").exists());
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["data"]["augment"], "shift:1", "{run}");
}

#[test]
fn augmented_runs_are_reproducible_and_resume_augmenting() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_images(&dir.path().join("data"));
    let full = dir.path().join("full");
    let again = dir.path().join("again");
    let cut = dir.path().join("cut");
    let plain = dir.path().join("plain");
    let common = ["fit", "--data", &data, "--epochs", "3", "--augment", "shift:1,rotate:20"];
    nn().args(common).args(SMALL).arg("--out").arg(&full).assert().success();
    nn().args(common).args(SMALL).arg("--out").arg(&again).assert().success();
    // Killed after epoch 1, then resumed from run.json (which carries --augment).
    nn().args(common).args(SMALL).arg("--out").arg(&cut).args(["--abort-after-epochs", "1"]).assert().failure();
    nn().args(["fit", "--resume"]).arg(&cut).assert().success();
    nn().args(["fit", "--data", &data, "--epochs", "3"]).args(SMALL).arg("--out").arg(&plain).assert().success();
    let weights = |d: &Path| std::fs::read(d.join("weights.safetensors")).unwrap();
    assert!(weights(&full) == weights(&again), "same seed and augmentation, different weights");
    assert!(weights(&full) == weights(&cut), "the resumed run differs from the uninterrupted one");
    assert!(weights(&full) != weights(&plain), "--augment changed nothing");
}

#[test]
fn bad_augment_flags_give_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_images(&dir.path().join("data"));
    fails_with_code_1(
        nn().args(["fit", "--data", &data, "--epochs", "1", "--augment", "shift:x"]),
        &["--augment", "shift:x", "whole number"],
    );
    fails_with_code_1(nn().args(["fit", "--data", &data, "--augment", "rotate:180"]), &["--augment", "180"]);
    fails_with_code_1(nn().args(["fit", "--data", &data, "--augment", "zoom:2"]), &["unknown key `zoom`"]);
    fails_with_code_1(nn().args(["fit", "--data", &data, "--augment", ""]), &["--augment `` is empty"]);
    // A shift of half the image or more (the digits are 8×8) is refused, as is a
    // whole number too large to represent.
    fails_with_code_1(
        nn().args(["fit", "--augment", "shift:4"]),
        &["--augment shift:4", "out of the frame", "at most 3"],
    );
    fails_with_code_1(nn().args(["fit", "--augment", "shift:99999999999999999999999"]), &["too large"]);
    // CSV rows are not images: refused before training, with the shape.
    let csv = dir.path().join("rows.csv");
    let mut text = String::from("x,y,label\n");
    for i in 0..20 {
        text += &format!("{},{},{}\n", i as f64 * 0.1, 1.0 - i as f64 * 0.05, i % 2);
    }
    std::fs::write(&csv, text).unwrap();
    fails_with_code_1(
        nn().args(["fit", "--epochs", "1", "--augment", "shift:1"]).arg("--data").arg(format!("csv:{}", csv.display())),
        &["--augment shift:1", "image data", "[2]"],
    );
}
