//! Hostile model specs and the memory limit (`--max-memory`, `NN_MAX_MEMORY`): every
//! command sizes a model before building it and refuses one it cannot hold with one
//! line and exit code 1, never a panic (101), an abort (134) or a swap storm.
//!
//! Each hostile run is made under a 3 GB address-space limit (`ulimit -v`), so that
//! an unbounded allocation would abort the child instead of passing; that limit is
//! also what the default `--max-memory` reads as this machine's memory there.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;

mod common;
use common::{fails_with, nn, stdout};

/// `nn-cli --threads 1 ARGS` under `ulimit -v 3000000` (KiB), with no
/// `NN_MAX_MEMORY` from the environment.
fn bounded(args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "ulimit -v 3000000; exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_nn-cli"), "--threads", "1"]);
    c.args(args).env_remove("NN_MAX_MEMORY");
    c
}

/// Runs `cmd`, returning its output and how long it took.
fn run(cmd: &mut Command) -> (Output, Duration) {
    let t = Instant::now();
    let out = cmd.output().unwrap();
    (out, t.elapsed())
}

/// `cmd` exits with 1 and prints exactly one line on stderr, `error: ...`, shorter
/// than 400 characters and containing `needle`.
fn refused(cmd: &mut Command, needle: &str) -> String {
    let (out, took) = run(cmd);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{:?} after {took:?}\n{err}", out.status);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].chars().count() < 400, "{} characters: {err}", lines[0].chars().count());
    assert!(err.contains(needle), "`{needle}` not in: {err}");
    lines[0].to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Flatten → Dense(`units`) on the digits' 8×8×1 images.
fn dense_spec(units: &str) -> String {
    format!(r#"{{"input_shape": [8, 8, 1], "layers": [{{"type": "Flatten"}}, {{"type": "Dense", "units": {units}}}]}}"#)
}

#[test]
fn a_trillion_units_are_refused_as_a_float_and_as_an_integer() {
    let dir = tempfile::tempdir().unwrap();
    let float = write(dir.path(), "float.json", &dense_spec("1e12"));
    let int = write(dir.path(), "int.json", &dense_spec("1000000000000"));
    refused(&mut bounded(&["fit", "--epochs", "1", "--model", &float]), "expected a whole number");
    refused(&mut bounded(&["summary", "--model", &float]), "expected a whole number");
    // 64·10¹² parameters: over the 2³¹ any model may have, whatever the memory.
    refused(&mut bounded(&["fit", "--epochs", "1", "--model", &int]), "more than the limit of 2147483648");
    refused(&mut bounded(&["summary", "--model", &int]), "more than the limit of 2147483648");
}

#[test]
fn twenty_million_units_fit_is_refused_and_summary_is_instant() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "big.json", &dense_spec("20000000"));
    // 1.3·10⁹ parameters: 16 bytes each with Adam's slots, about 24 GiB a step.
    let line = refused(
        &mut bounded(&["fit", "--epochs", "1", "--model", &spec]),
        "needs about 24.1 GiB for one training step at batch 32 (parameters 19.4 GiB, activations 4.8 GiB); the limit is",
    );
    assert!(line.contains("the parameters alone are over it: use a smaller model"), "{line}");
    assert!(line.contains("default: this machine's memory"), "{line}");
    // The summary allocates no parameter: it prints at once, within the 3 GB.
    let (out, took) = run(&mut bounded(&["summary", "--model", &spec]));
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(text.contains("1,300,000,000") && text.contains("Total params: 1,300,000,000 (4.84 GB)"), "{text}");
    assert!(text.contains("Memory estimate: about 24.1 GiB for one training step at batch 32 with adam"), "{text}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("warning: training this model at batch 32 needs about 24.1 GiB"), "{err}");
}

#[test]
fn a_hundred_thousand_layers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let layers = vec![r#"{"type": "Flatten"}"#; 100_000].join(",");
    let spec = write(dir.path(), "deep.json", &format!(r#"{{"input_shape": [8, 8, 1], "layers": [{layers}]}}"#));
    refused(&mut bounded(&["fit", "--epochs", "1", "--model", &spec]), "100000 layers: at most 10000");
    refused(&mut bounded(&["summary", "--model", &spec]), "100000 layers: at most 10000");
}

#[test]
fn a_huge_type_string_is_refused_and_clipped() {
    let dir = tempfile::tempdir().unwrap();
    // 50 MB: over the spec file's 16 MB cap.
    let long = "A".repeat(50 << 20);
    let spec = write(dir.path(), "long.json", &format!(r#"{{"input_shape": [4], "layers": [{{"type": "{long}"}}]}}"#));
    refused(&mut bounded(&["fit", "--epochs", "1", "--model", &spec]), "too large for a model spec");
    // 10 MB: read, and the parser's message quotes it clipped (then lists the 30
    // layer types, so this line is longer than the others, but not 10 MB).
    let long = "A".repeat(10 << 20);
    let spec = write(dir.path(), "ten.json", &format!(r#"{{"input_shape": [4], "layers": [{{"type": "{long}"}}]}}"#));
    let (out, _) = run(&mut bounded(&["fit", "--epochs", "1", "--model", &spec]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains("unknown variant `AAAA") && err.len() < 1300, "{err}");
}

#[test]
fn an_input_shape_of_2_to_the_96_elements_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "wide.json",
        r#"{"input_shape": [4294967296, 4294967296, 4294967296], "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 10}]}"#,
    );
    refused(&mut bounded(&["fit", "--epochs", "1", "--model", &spec]), "too many elements");
    refused(&mut bounded(&["summary", "--model", &spec]), "too many elements");
}

#[test]
fn a_wide_convolution_at_a_huge_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "conv.json",
        r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Conv2D", "filters": 65536, "kernel_size": 3},
            {"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}]}"#,
    );
    // 6·6·65536 outputs per sample, kept with their gradients: 40 GiB at the largest
    // batch there is (a batch holds at most the 1,150 training samples).
    let line = refused(
        &mut bounded(&["fit", "--epochs", "1", "--batch-size", "1000000", "--model", &spec]),
        "for one training step at batch 1150",
    );
    assert!(line.contains("lower --batch-size or the model's size, or raise --max-memory"), "{line}");
}

#[test]
fn max_memory_flag_and_environment_variable() {
    // The default MLP on digits: 9,610 parameters, about 210 KiB a step at batch 32.
    refused(nn().args(["fit", "--epochs", "1", "--max-memory", "100K"]), "the limit is 100.0 KiB (--max-memory);");
    refused(
        nn().args(["--max-memory", "100K", "fit", "--epochs", "1"]).env_remove("NN_MAX_MEMORY"),
        "the limit is 100.0 KiB (--max-memory);",
    );
    refused(
        nn().args(["fit", "--epochs", "1"]).env("NN_MAX_MEMORY", "100K"),
        "(NN_MAX_MEMORY; --max-memory overrides it)",
    );
    // The flag overrides the variable; `unlimited` checks nothing.
    let text = stdout(nn().args(["fit", "--epochs", "1", "--max-memory", "unlimited"]).env("NN_MAX_MEMORY", "100K"));
    assert!(text.contains("test accuracy"), "{text}");
    let text = stdout(nn().args(["fit", "--epochs", "1", "--max-memory", "1M"]));
    assert!(text.contains("test accuracy"), "{text}");
    refused(nn().args(["fit", "--epochs", "1"]).env("NN_MAX_MEMORY", "lots"), "NN_MAX_MEMORY: `lots`: expected a size");
    let out = nn().args(["fit", "--max-memory", "12X"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("expected a size such as 512M"), "{err}");
}

#[test]
fn predict_evaluate_and_summary_size_a_saved_model_before_loading_it() {
    let dir = tempfile::tempdir().unwrap();
    // A saved folder whose model.json describes 1.3·10⁹ parameters (and no weights:
    // the refusal comes before they would be read).
    let saved = dir.path().join("big");
    std::fs::create_dir(&saved).unwrap();
    let file = format!(r#"{{"format_version": 1, "model": {}, "metadata": null}}"#, dense_spec("20000000"));
    write(&saved, "model.json", &file);
    let input = write(dir.path(), "rows.csv", &format!("{}\n", vec!["0"; 64].join(",")));
    let s = saved.display().to_string();
    refused(
        &mut bounded(&["predict", "--model", &s, "--input", &input]),
        "for one inference batch of 1000 (parameters 4.8 GiB",
    );
    refused(
        &mut bounded(&["evaluate", "--model", &s, "--data", "digits", "--batch-size", "10"]),
        "for one inference batch of 10",
    );
    let (out, _) = run(&mut bounded(&["summary", "--model", &s]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1,300,000,000"));
    // A small saved model under a tiny limit: refused by the same check.
    let small = dir.path().join("small");
    stdout(nn().args(["fit", "--epochs", "1", "--out"]).arg(&small));
    fails_with(
        nn().args(["--max-memory", "10K", "evaluate", "--data", "digits", "--model"]).arg(&small),
        "for one inference batch of 1000",
    );
}

#[test]
fn tune_sizes_its_largest_trial_before_loading_data() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "big.json", &dense_spec("20000000"));
    let space = write(dir.path(), "space.json", r#"{"learning_rate": [0.01], "batch_size": [8, 64], "epochs": 1}"#);
    let out = dir.path().join("run").display().to_string();
    refused(
        &mut bounded(&["tune", "--model", &spec, "--space", &space, "--out", &out]),
        "for one training step at batch 64",
    );
    // The mlp preset on digits with the space's largest hidden layer.
    let space = write(dir.path(), "hidden.json", r#"{"hidden": [16, 20000000], "epochs": 1}"#);
    refused(&mut bounded(&["tune", "--space", &space, "--out", &out]), "for one training step at batch 32");
    assert!(!Path::new(&out).join("trials.csv").exists());
}
