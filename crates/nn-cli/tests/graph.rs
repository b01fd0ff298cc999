//! Graph models (format version 2) through every command: fit, evaluate, predict,
//! summary, tune, --init-from, --freeze, LoRA and its merge, exact resume; and bad
//! graph specs, each one clear `error:` line.

mod common;

use std::path::{Path, PathBuf};

use common::{fails_with, nn, stdout};

/// A residual block on the embedded 8×8 digits: y = relu(x + conv(conv(x))), a
/// two-branch merge, then a Dense head.
const RESIDUAL_DIGITS: &str = r#"{
  "format_version": 2,
  "inputs": [{"name": "image", "shape": [8, 8, 1]}],
  "layers": [
    {"type": "Conv2D", "name": "stem", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "Conv2D", "name": "c1", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "Conv2D", "name": "c2", "filters": 4, "kernel_size": 3, "padding": "same"},
    {"type": "Add", "name": "sum", "inputs": ["stem", "c2"]},
    {"type": "ReLU", "name": "block"},
    {"type": "GlobalMaxPooling2D", "name": "gmax", "inputs": ["block"]},
    {"type": "GlobalAveragePooling2D", "name": "gavg", "inputs": ["block"]},
    {"type": "Concatenate", "name": "both", "inputs": ["gmax", "gavg"]},
    {"type": "Dense", "name": "hidden", "units": 16, "activation": "relu"},
    {"type": "Dense", "name": "head", "units": 10, "activation": "softmax"}
  ]
}"#;

fn write_spec(dir: &Path) -> PathBuf {
    let spec = dir.join("residual.json");
    std::fs::write(&spec, RESIDUAL_DIGITS).unwrap();
    spec
}

fn figure(text: &str, label: &str) -> f64 {
    let at = text.find(label).unwrap_or_else(|| panic!("no `{label}` in:\n{text}")) + label.len();
    text[at..].split_whitespace().next().unwrap().trim_end_matches('%').parse().unwrap()
}

#[test]
fn a_graph_model_through_fit_evaluate_predict_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path());
    let summary = stdout(nn().args(["summary", "--model"]).arg(&spec));
    assert!(summary.contains("Connected to"), "{summary}");
    assert!(summary.lines().any(|l| l.contains("sum (Add)") && l.contains("stem, c2")), "{summary}");
    // stem 3·3·1·4 + 4 = 40; c1, c2 3·3·4·4 + 4 = 148 each; hidden 8·16 + 16 = 144;
    // head 16·10 + 10 = 170: 650 in all.
    assert!(summary.contains("Total params: 650"), "{summary}");

    let out = dir.path().join("run");
    let text =
        stdout(nn().args(["fit", "--epochs", "15", "--lr", "0.01", "--model"]).arg(&spec).arg("--out").arg(&out));
    assert!(figure(&text, "test accuracy:") > 0.8, "{text}");
    let json = std::fs::read_to_string(out.join("model.json")).unwrap();
    assert!(json.contains("\"format_version\": 2") && json.contains("\"sum\""), "{json}");
    let eval = stdout(nn().args(["evaluate", "--model"]).arg(&out).args(["--data", "digits"]));
    assert!(figure(&eval, "accuracy:") > 0.8, "{eval}");
    let csv = dir.path().join("rows.csv");
    let header: Vec<String> = (0..64).map(|i| format!("p{i}")).collect();
    std::fs::write(&csv, format!("{}\n{}\n", header.join(","), vec!["0"; 64].join(","))).unwrap();
    let pred = stdout(nn().args(["predict", "--model"]).arg(&out).arg("--input").arg(&csv));
    assert_eq!(pred.lines().count(), 2, "{pred}");
    let summary = stdout(nn().args(["summary", "--model"]).arg(&out));
    assert!(summary.contains("Total params: 650"), "{summary}");
}

#[test]
fn a_graph_model_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path());
    let full = dir.path().join("full");
    let cut = dir.path().join("cut");
    let common = ["fit", "--epochs", "3", "--seed", "5", "--model"];
    nn().args(common).arg(&spec).arg("--out").arg(&full).assert().success();
    nn().args(common).arg(&spec).arg("--out").arg(&cut).args(["--abort-after-epochs", "1"]).assert().failure();
    // The spec file is edited after the run started: the resume rebuilds the
    // architecture its checkpoint saved, not the edited file.
    std::fs::write(
        &spec,
        RESIDUAL_DIGITS.replace("\"units\": 16, \"activation\": \"relu\"", "\"units\": 16, \"activation\": \"tanh\""),
    )
    .unwrap();
    nn().args(["fit", "--resume"]).arg(&cut).assert().success();
    let a = std::fs::read(full.join("weights.safetensors")).unwrap();
    let b = std::fs::read(cut.join("weights.safetensors")).unwrap();
    assert!(a == b, "resumed weights differ from the uninterrupted run's");
    // ... and with the file gone, from another working directory.
    let cut2 = dir.path().join("cut2");
    std::fs::write(&spec, RESIDUAL_DIGITS).unwrap();
    nn().args(common).arg(&spec).arg("--out").arg(&cut2).args(["--abort-after-epochs", "1"]).assert().failure();
    std::fs::remove_file(&spec).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    nn().current_dir(elsewhere.path()).args(["fit", "--resume"]).arg(&cut2).assert().success();
    assert!(a == std::fs::read(cut2.join("weights.safetensors")).unwrap(), "resume without the spec file differs");
}

#[test]
fn fine_tuning_a_graph_model_by_layer_name() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path());
    let base = dir.path().join("base");
    nn().args(["fit", "--epochs", "2", "--model"]).arg(&spec).arg("--out").arg(&base).assert().success();
    // Freeze the convolutions by name, train the rest.
    let frozen = dir.path().join("frozen");
    let text = stdout(
        nn().args(["fit", "--epochs", "1", "--init-from"])
            .arg(&base)
            .args(["--freeze", "stem,c1,c2", "--out"])
            .arg(&frozen),
    );
    assert!(text.contains("stem.kernel"), "{text}");
    let weights = |dir: &Path| {
        let (model, _) = nn_layers::Sequential::<f32>::load(dir).unwrap();
        let names = ["stem.kernel", "c2.bias", "head.kernel"];
        names.iter().map(|n| model.parameter(n).unwrap().value.to_vec()).collect::<Vec<_>>()
    };
    let (b, f) = (weights(&base), weights(&frozen));
    assert_eq!(b[0], f[0], "a frozen convolution kept its weights");
    assert_eq!(b[1], f[1]);
    assert_ne!(b[2], f[2], "the head trained");
    // A layer without parameters cannot be frozen, and the message says so.
    fails_with(
        nn().args(["fit", "--epochs", "1", "--init-from"]).arg(&base).args(["--freeze", "sum"]),
        "--freeze `sum`: layer 3 (Add) has no parameters to freeze",
    );
    // LoRA on the graph's Dense layers, merged for export.
    let lora = dir.path().join("lora");
    stdout(
        nn().args(["fit", "--epochs", "1", "--init-from"]).arg(&base).args(["--lora-rank", "2", "--out"]).arg(&lora),
    );
    let merged = std::fs::read_to_string(lora.join("merged/model.json")).unwrap();
    // The architecture, not the metadata (whose run configuration names --lora-rank).
    let merged: serde_json::Value = serde_json::from_str(&merged).unwrap();
    let merged = merged["model"].to_string();
    assert!(!merged.contains("lora"), "{merged}");
    assert!(merged.contains("\"hidden\""), "{merged}");
}

#[test]
fn tune_searches_a_graph_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path());
    let space = dir.path().join("space.json");
    std::fs::write(&space, r#"{"learning_rate": [0.003, 0.01], "epochs": 2, "patience": 1}"#).unwrap();
    let out = dir.path().join("tune");
    let text = stdout(
        nn().args(["tune", "--model"])
            .arg(&spec)
            .arg("--space")
            .arg(&space)
            .args(["--strategy", "grid", "--out"])
            .arg(&out),
    );
    assert!(text.contains("best model: test loss"), "{text}");
    assert!(out.join("best/model.json").exists());
    std::fs::write(&space, r#"{"hidden": [8, 16]}"#).unwrap();
    fails_with(
        nn().args(["tune", "--model"]).arg(&spec).arg("--space").arg(&space).arg("--out").arg(dir.path().join("t2")),
        "`hidden` and `dropout` apply to the mlp and cnn presets only",
    );
}

#[test]
fn bad_graph_specs_give_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Flatten", "name": "f"}, {"type": "Dense", "units": 10, "name": "f"}]}"#,
            "layer 1 (Dense) is named \"f\", like layer 0 (Flatten)",
        ),
        (
            r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 10, "inputs": ["nope"]}]}"#,
            "unknown input \"nope\"",
        ),
        (
            r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Flatten", "name": "a", "inputs": ["b"]}, {"type": "Flatten", "name": "b", "inputs": ["a"]}]}"#,
            "is on a cycle",
        ),
        (
            r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Flatten", "name": "a"}, {"type": "Dense", "units": 3, "name": "x", "inputs": ["a"]}, {"type": "Dense", "units": 10, "inputs": ["a"]}]}"#,
            "layer \"x\" (Dense) is unused",
        ),
        (
            r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Flatten", "name": "a"}, {"type": "Dense", "units": 3, "name": "b", "inputs": ["a"]}, {"type": "Add", "name": "s", "inputs": ["a", "b"]}]}"#,
            "layer \"s\" (Add)",
        ),
        (
            r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 1000000000000, "name": "big"}]}"#,
            "layer \"big\" (Dense): 65000000000000 parameters, and the model 65000000000000 in all, more than the limit",
        ),
        (r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Dense", "units": 1e12}]}"#, "expected a whole number ≥ 0"),
        (
            r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Conv2D", "filters": 4, "kernel_size": 3}, {"type": "Dense", "units": 10}]}"#,
            "add a Flatten or GlobalAveragePooling2D",
        ),
        (
            r#"{"input_shape": [4294967296, 4294967296], "layers": [{"type": "Flatten"}]}"#,
            "input \"input\" has shape [4294967296, 4294967296]: too many elements",
        ),
        (
            r#"{"input_shape": [2147483648, 2], "layers": [{"type": "Dense", "units": 8589934592}]}"#,
            "layer 0 (Dense): output shape [2147483648, 8589934592] has too many elements",
        ),
        (r#"{"input_shape": [8, 8, 1], "layers": [{"type": "Dense", "units": 3}]"#, "EOF"),
    ];
    for (i, (json, want)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.json"));
        std::fs::write(&path, json).unwrap();
        fails_with(nn().args(["fit", "--epochs", "1", "--model"]).arg(&path), want);
    }
    // A model with two inputs cannot take one dataset.
    let two = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/two_inputs.json");
    fails_with(
        nn().args(["fit", "--epochs", "1", "--model"]).arg(&two),
        "the model has 2 inputs (measurements, history) and 2 outputs",
    );
    // A 1 MB layer type is quoted cut short.
    let path = dir.path().join("long.json");
    let long = "X".repeat(1 << 20);
    std::fs::write(&path, format!(r#"{{"input_shape": [4], "layers": [{{"type": "{long}"}}]}}"#)).unwrap();
    let out = nn().args(["fit", "--model"]).arg(&path).assert().failure().get_output().clone();
    assert!(out.stderr.len() < 1000, "{} bytes of error", out.stderr.len());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("(1048576 characters)") && err.contains("expected one of `Dense`"), "{err}");
}

#[test]
fn the_example_specs_build() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
    for (file, params) in [
        ("residual.json", "Total params: 36,266"),
        ("inception.json", "Total params: "),
        ("two_inputs.json", "Connected to"),
        // The models of bench/compare.sh (PyTorch and Keras count the same).
        ("cnn2.json", "Total params: 34,826"),
        ("gru.json", "Total params: 61,962"),
    ] {
        let summary = stdout(nn().args(["summary", "--model"]).arg(root.join(file)));
        assert!(summary.contains(params), "{file}:\n{summary}");
    }
}
