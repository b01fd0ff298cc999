//! Helpers shared by nn-cli's integration tests.
#![allow(dead_code)]

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
