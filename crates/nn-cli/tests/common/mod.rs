//! Helpers shared by nn-cli's integration tests.
#![allow(dead_code)]

use std::path::Path;

use assert_cmd::Command;

/// The `nn-cli` binary, on one thread (results are bit-identical for a fixed count).
pub fn nn() -> Command {
    let mut c = Command::cargo_bin("nn-cli").unwrap();
    c.arg("--threads").arg("1");
    c
}

/// Runs `cmd`, asserts success and returns its standard output.
pub fn stdout(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

/// A failing command prints exactly one line, `error: ...`, containing `needle`.
pub fn fails_with(cmd: &mut Command, needle: &str) {
    let out = cmd.assert().failure().get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(needle), "`{needle}` not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Writes `text` to `dir/name` and returns that path as text.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// The search space of the `tune` tests: a log-scaled learning rate, two batch sizes
/// and two hidden widths, 4 epochs with patience 2, ranked by val_accuracy.
pub const TUNE_SPACE: &str = r#"{
  "learning_rate": {"min": 1e-3, "max": 3e-2, "scale": "log"},
  "batch_size": [32, 64],
  "hidden": [16, 32],
  "epochs": 4,
  "patience": 2,
  "objective": {"metric": "val_accuracy"}
}"#;

/// The `tune` tests' space for halving: 9 epochs at most, patience 9 (no early stop).
pub const HALVING_SPACE: &str =
    r#"{"learning_rate": {"min": 1e-4, "max": 1e-1, "scale": "log"}, "hidden": [16], "epochs": 9, "patience": 9}"#;

/// An IDX file of `n` images `8×8` (unsigned bytes), as MNIST's.
pub fn write_idx(path: &Path, n: usize, pixels: &[u8]) {
    let mut bytes = vec![0, 0, 0x08, 3];
    for d in [n as u32, 8, 8] {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(pixels);
    std::fs::write(path, bytes).unwrap();
}
