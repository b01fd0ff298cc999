//! Fine-tuning through the `nn-cli` binary on the embedded digits data: task A is
//! digits 0–4, task B digits 5–9 with few samples per class; `--init-from` with a new
//! head and frozen layers, LoRA with its merged export, `--head-from`, and the errors.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use nn_layers::Sequential;

mod common;
use common::nn;

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().clone();
    String::from_utf8(out.stdout).unwrap()
}

/// The figure after `label` in `text`.
fn figure(text: &str, label: &str) -> f64 {
    let at = text.find(label).unwrap_or_else(|| panic!("`{label}` not in output:\n{text}"));
    text[at + label.len()..].split_whitespace().next().unwrap().trim_end_matches([',', ')']).parse().unwrap()
}

/// A failing command prints one line, `error: ...`, containing `needle`.
fn fails_with(cmd: &mut Command, needle: &str) {
    let out = cmd.assert().failure().get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    assert!(lines[0].starts_with("error: ") && err.contains(needle), "`{needle}` not in: {err}");
}

/// Task A: the default MLP (Flatten → Dense(128) → Dense(5)) on digits 0–4.
fn task_a(dir: &Path) -> PathBuf {
    let out = dir.join("a");
    let text = stdout(nn().args(["fit", "--classes", "0-4", "--epochs", "5", "--out"]).arg(&out));
    assert!(text.contains("5 classes"), "{text}");
    assert!(figure(&text, "test accuracy:") > 0.9, "{text}");
    out
}

fn load(dir: &Path) -> Sequential {
    Sequential::load(dir).unwrap().0
}

#[test]
fn fine_tune_with_frozen_body_and_new_head() {
    let dir = tempfile::tempdir().unwrap();
    let a = task_a(dir.path());
    let b = dir.path().join("b");
    let text = stdout(
        nn().args(["fit", "--classes", "5-9", "--per-class", "20", "--epochs", "20", "--lr", "0.01", "--init-from"])
            .arg(&a)
            .args(["--num-classes", "5", "--freeze", "0..2", "--out"])
            .arg(&b),
    );
    // 20 per class of the training part: 100 training samples.
    assert!(text.contains("data digits: 100 training"), "{text}");
    assert!(text.contains("loaded 2 tensors"), "{text}");
    assert!(text.contains("skipped (not selected): layers.2.kernel, layers.2.bias"), "{text}");
    assert!(text.contains("newly initialised: layers.2.kernel, layers.2.bias"), "{text}");
    assert!(text.contains("froze 2 tensors (0..2)"), "{text}");
    // 64·128 + 128 frozen, 128·5 + 5 trainable.
    assert!(text.contains("8965 parameters (645 trainable, 8320 non-trainable)"), "{text}");
    assert!(figure(&text, "test accuracy:") > 0.6, "{text}");
    // The frozen body is bit-identical to task A's; the head is new and trained.
    let (ma, mb) = (load(&a), load(&b));
    for name in ["layers.1.kernel", "layers.1.bias"] {
        assert_eq!(ma.parameter(name).unwrap().value, mb.parameter(name).unwrap().value, "{name}");
    }
    assert_ne!(ma.parameter("layers.2.kernel").unwrap().value, mb.parameter("layers.2.kernel").unwrap().value);
    // Task B's class names are the original digits.
    let model_json = std::fs::read_to_string(b.join("model.json")).unwrap();
    assert!(model_json.contains("\"9\""), "{model_json}");
    // Task A's head on the (unchanged) body gives task A's accuracy back exactly.
    let eval_a = stdout(nn().args(["evaluate", "--data", "digits", "--classes", "0-4", "--model"]).arg(&a));
    let eval_b = stdout(
        nn().args(["evaluate", "--data", "digits", "--classes", "0-4", "--model"]).arg(&b).arg("--head-from").arg(&a),
    );
    assert!(eval_b.contains("head layers.2 taken from"), "{eval_b}");
    assert_eq!(figure(&eval_a, "accuracy:"), figure(&eval_b, "accuracy:"));
}

#[test]
fn lora_fine_tune_trains_adapters_only_and_exports_a_merged_model() {
    let dir = tempfile::tempdir().unwrap();
    let a = task_a(dir.path());
    let c = dir.path().join("c");
    let text = stdout(
        nn().args(["fit", "--classes", "5-9", "--per-class", "20", "--epochs", "5", "--lr", "0.01", "--init-from"])
            .arg(&a)
            .args(["--lora-rank", "4", "--lora-alpha", "8", "--out"])
            .arg(&c),
    );
    assert!(text.contains("loaded 4 tensors"), "{text}");
    assert!(text.contains("LoRA rank 4, alpha 8 on Dense layers.1, layers.2"), "{text}");
    // Adapters: 64·4 + 4·128 and 128·4 + 4·5.
    let adapters = 64 * 4 + 4 * 128 + 128 * 4 + 4 * 5;
    assert!(text.contains(&format!("({adapters} trainable,")), "{text}");
    // "... (max |Δ output| on N samples: D)"
    let at = text.find("max |Δ output| on").unwrap_or_else(|| panic!("{text}"));
    let rest = &text[at..];
    let from = rest.find("samples: ").unwrap() + "samples: ".len();
    let diff: f64 = rest[from..].split(')').next().unwrap().parse().unwrap();
    assert!(diff <= 1e-5, "{text}");
    // Base weights untouched; adapters trained; the merged model has no adapters and
    // evaluates the same.
    let (ma, mc, merged) = (load(&a), load(&c), load(&c.join("merged")));
    for name in ["layers.1.kernel", "layers.1.bias", "layers.2.kernel", "layers.2.bias"] {
        assert_eq!(ma.parameter(name).unwrap().value, mc.parameter(name).unwrap().value, "{name}");
    }
    assert!(mc.parameter("layers.2.lora_b").unwrap().value.array().iter().any(|&v| v != 0.0));
    assert!(merged.parameter("layers.2.lora_a").is_none());
    assert_eq!(merged.spec(), ma.spec());
    let e1 = stdout(nn().args(["evaluate", "--data", "digits", "--classes", "5-9", "--model"]).arg(&c));
    let e2 = stdout(nn().args(["evaluate", "--data", "digits", "--classes", "5-9", "--model"]).arg(c.join("merged")));
    assert!((figure(&e1, "accuracy:") - figure(&e2, "accuracy:")).abs() < 1e-9, "{e1}\n{e2}");
    assert!(figure(&e1, "accuracy:") > 0.6, "{e1}");
    // --head-from refuses a head with adapters.
    fails_with(
        nn().args(["evaluate", "--data", "digits", "--model"]).arg(&c).arg("--head-from").arg(&a),
        "has LoRA adapters",
    );
}

#[test]
fn fine_tuning_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let a = task_a(dir.path());
    let fit = |extra: &[&str]| {
        let mut c = nn();
        c.args(["fit", "--epochs", "1", "--init-from"]).arg(&a).args(extra);
        c
    };
    // A head of 5 outputs on 10 classes.
    fails_with(&mut fit(&[]), "has 5 outputs, the data needs 10: pass --num-classes 10");
    fails_with(&mut fit(&["--num-classes", "7"]), "--num-classes 7, but the data has 10 classes");
    // Asked explicitly to load the head whose shape now differs.
    fails_with(
        &mut fit(&["--num-classes", "10", "--load", "layers.1,layers.2"]),
        "weight \"layers.2.kernel\" has shape [128, 5], the model expects [128, 10]",
    );
    fails_with(&mut fit(&["--num-classes", "10", "--load", "layers.7"]), "unknown parameter \"layers.7\"");
    fails_with(&mut fit(&["--num-classes", "10", "--freeze", "1..9"]), "--freeze `1..9`");
    fails_with(
        &mut fit(&["--num-classes", "10", "--freeze", "layers.1.kernal"]),
        "no layer or parameter has this name",
    );
    fails_with(&mut fit(&["--num-classes", "10", "--lr-loaded=-1"]), "--lr-loaded must be a number >= 0");
    fails_with(&mut fit(&["--classes", "0-4", "--lora-rank", "0"]), "--lora-rank must be at least 1");
    // --classes and --per-class.
    fails_with(nn().args(["fit", "--classes", "4-2"]), "the range 4-2 is empty");
    fails_with(nn().args(["fit", "--classes", "0-4,3"]), "class 3 is given twice");
    fails_with(nn().args(["fit", "--classes", "8-12"]), "class 10 does not exist");
    fails_with(nn().args(["fit", "--per-class", "0"]), "--per-class must be at least 1");
    // --init-from a folder without a model.
    fails_with(nn().args(["fit", "--init-from"]).arg(dir.path().join("none")), "model.json");
}

#[test]
fn lr_loaded_and_named_loading() {
    let dir = tempfile::tempdir().unwrap();
    let a = task_a(dir.path());
    let out = dir.path().join("d");
    let text = stdout(
        nn().args(["fit", "--classes", "0-4", "--epochs", "1", "--init-from"])
            .arg(&a)
            .args(["--load", "layers.1", "--lr-loaded", "0", "--out"])
            .arg(&out),
    );
    assert!(text.contains("loaded 2 tensors"), "{text}");
    assert!(text.contains("learning rate × 0 for the 2 loaded tensors"), "{text}");
    // A multiplier of 0: the loaded layer is unchanged, the re-initialised head trained.
    let (ma, md) = (load(&a), load(&out));
    assert_eq!(ma.parameter("layers.1.kernel").unwrap().value, md.parameter("layers.1.kernel").unwrap().value);
    assert_ne!(ma.parameter("layers.2.kernel").unwrap().value, md.parameter("layers.2.kernel").unwrap().value);
}

#[test]
fn killed_and_resumed_lora_run_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let a = task_a(dir.path());
    let (full, cut) = (dir.path().join("full"), dir.path().join("cut"));
    let run = |out: &Path| {
        let mut c = nn();
        c.args(["fit", "--classes", "5-9", "--per-class", "20", "--epochs", "4", "--init-from"])
            .arg(&a)
            .args(["--num-classes", "5", "--lora-rank", "2", "--lr-loaded", "0.5", "--out"])
            .arg(out);
        c
    };
    run(&full).assert().success();
    run(&cut).args(["--abort-after-epochs", "2"]).assert().failure();
    nn().args(["fit", "--resume"]).arg(&cut).assert().success();
    for f in ["weights.safetensors", "merged/weights.safetensors"] {
        let x = std::fs::read(full.join(f)).unwrap();
        let y = std::fs::read(cut.join(f)).unwrap();
        assert!(x == y, "{f}: the resumed run differs from the uninterrupted one");
    }
    // The summary of the saved adapter model counts the frozen base as non-trainable.
    let text = stdout(nn().args(["summary", "--model"]).arg(&full));
    let adapters = 64 * 2 + 2 * 128;
    let head = 128 * 5 + 5;
    assert!(text.contains(&format!("Trainable params: {}", nn_layers::thousands(adapters + head))), "{text}");
}
