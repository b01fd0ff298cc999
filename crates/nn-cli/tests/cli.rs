//! End-to-end tests of the `nn-cli` binary on the embedded digits data and tiny
//! generated files.

use std::path::Path;

use assert_cmd::Command;

mod common;
use common::{fails_with, nn, stdout};

/// The figure after `label` in `text`, e.g. `test accuracy: 0.9722`.
fn figure(text: &str, label: &str) -> f64 {
    let at = text.find(label).unwrap_or_else(|| panic!("`{label}` not in output:\n{text}"));
    text[at + label.len()..].split_whitespace().next().unwrap().trim_end_matches(',').parse().unwrap()
}

#[test]
fn default_fit_reaches_95_percent_on_digits() {
    let text = stdout(nn().arg("fit"));
    assert!(text.contains("data digits"), "{text}");
    let acc = figure(&text, "test accuracy:");
    assert!(acc >= 0.95, "test accuracy {acc}\n{text}");
}

#[test]
fn version_names_the_gemm_back_end() {
    let text = stdout(Command::cargo_bin("nn-cli").unwrap().arg("--version"));
    assert!(text.contains("GEMM back end: gemm"), "{text}");
}

#[test]
fn summary_of_the_seed_cnn() {
    let text = stdout(nn().args(["summary", "--model", "cnn"]));
    for n in ["320", "692,352", "1,290", "693,962"] {
        assert!(text.contains(n), "{n} missing from\n{text}");
    }
}

#[test]
fn out_dir_then_evaluate_and_predict() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let text = stdout(nn().args(["fit", "--epochs", "3", "--out"]).arg(&out));
    for f in
        ["model.json", "weights.safetensors", "history.csv", "learning_curves.svg", "run.json", "checkpoint/state.json"]
    {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let history = std::fs::read_to_string(out.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 4, "{history}");
    assert!(history.starts_with("epoch,loss,accuracy,val_loss,val_accuracy"), "{history}");
    let test_acc = figure(&text, "test accuracy:");

    let eval = stdout(nn().args(["evaluate", "--model"]).arg(&out).args(["--data", "digits", "--timing"]));
    assert!(eval.contains("confusion matrix"), "{eval}");
    assert!(figure(&eval, "inference:") > 0.0 && eval.contains("single-sample latency"), "{eval}");
    assert!(figure(&eval, "accuracy:") > 0.5, "{eval}");
    let _ = test_acc;

    // Predict on CSV rows of raw pixel values (0..16), with and without the label column.
    let csv = dir.path().join("rows.csv");
    let header: Vec<String> = (0..64).map(|i| format!("p{i}")).collect();
    let zero_row = vec!["0"; 64].join(",");
    std::fs::write(&csv, format!("{}\n{zero_row}\n{zero_row}\n", header.join(","))).unwrap();
    let pred = stdout(nn().args(["predict", "--model"]).arg(&out).arg("--input").arg(&csv));
    let lines: Vec<&str> = pred.lines().collect();
    assert_eq!(lines[0], "row,class,name,probability");
    assert_eq!(lines.len(), 3, "{pred}");
    assert_eq!(lines[1].split(',').nth(1), lines[2].split(',').nth(1));
}

#[test]
fn same_seed_gives_identical_weights() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        nn().args(["fit", "--epochs", "2", "--dropout", "0.2", "--out"]).arg(dir.path().join(name)).assert().success();
    }
    let a = std::fs::read(dir.path().join("a/weights.safetensors")).unwrap();
    let b = std::fs::read(dir.path().join("b/weights.safetensors")).unwrap();
    assert!(a == b, "weights differ between two runs with the same seed");
}

#[test]
fn killed_and_resumed_run_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let cut = dir.path().join("cut");
    let common = ["fit", "--epochs", "4", "--dropout", "0.1", "--seed", "7", "--out"];
    nn().args(common).arg(&full).assert().success();
    // Killed after epoch 2 (abort, as SIGKILL would: no clean-up runs).
    nn().args(common).arg(&cut).args(["--abort-after-epochs", "2"]).assert().failure();
    assert!(!cut.join("model.json").exists(), "a killed run must not leave a model");
    let state = std::fs::read_to_string(cut.join("checkpoint/state.json")).unwrap();
    assert!(state.contains("\"epochs_done\": 2"), "{state}");
    nn().args(["fit", "--resume"]).arg(&cut).assert().success();
    let a = std::fs::read(full.join("weights.safetensors")).unwrap();
    let b = std::fs::read(cut.join("weights.safetensors")).unwrap();
    assert!(a == b, "resumed weights differ from the uninterrupted run's");
    let ha = std::fs::read_to_string(full.join("history.csv")).unwrap();
    let hb = std::fs::read_to_string(cut.join("history.csv")).unwrap();
    let metrics = |h: &str| h.lines().map(|l| l.split(',').take(5).collect::<Vec<_>>().join(",")).collect::<Vec<_>>();
    assert_eq!(metrics(&ha), metrics(&hb));
}

#[test]
fn csv_training_with_text_labels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blobs.csv");
    // Two well-separated classes named by text.
    let mut text = String::from("x,y,label\n");
    for i in 0..60 {
        let t = i as f64 * 0.1;
        text += &format!("{},{},left\n", -2.0 + (t.sin() * 0.3), t.cos() * 0.3);
        text += &format!("{},{},right\n", 2.0 + (t.cos() * 0.3), t.sin() * 0.3);
    }
    std::fs::write(&path, text).unwrap();
    let out = stdout(nn().arg("fit").arg("--data").arg(format!("csv:{}", path.display())).args([
        "--epochs",
        "20",
        "--batch-size",
        "16",
    ]));
    assert!(out.contains("2 classes"), "{out}");
    assert!(figure(&out, "test accuracy:") >= 0.95, "{out}");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn bad_input_gives_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails_with(nn().args(["fit", "--data", "csv:/no/such/file.csv"]), "/no/such/file.csv");
    fails_with(nn().args(["fit", "--data", "mnist:/no/such/dir"]), "/no/such/dir");
    let garbage = d.join("garbage.csv");
    write(&garbage, "a,b,label\n1,2,x\n3,oops,y\n");
    fails_with(nn().arg("fit").arg("--data").arg(format!("csv:{}", garbage.display())), "garbage.csv:3, column 2");
    let good = d.join("good.csv");
    write(&good, "a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n1,3,x\n2,4,y\n5,5,x\n6,6,y\n1,1,x\n9,9,y\n");
    fails_with(nn().arg("fit").arg("--data").arg(format!("csv:{}", good.display())).args(["--target", "nope"]), "nope");
    let spec = d.join("model.json");
    write(&spec, r#"{"format_version":1,"input_shape":[10],"layers":[{"type":"Dense","units":10}]}"#);
    fails_with(nn().args(["fit", "--model"]).arg(&spec), "input shape");
    fails_with(nn().args(["fit", "--batch-size", "0"]), "batch-size");
    fails_with(nn().args(["fit", "--validation-split", "1.5"]), "validation-split");
    fails_with(nn().args(["fit", "--lr-schedule", "sideways"]), "lr-schedule");
    fails_with(nn().args(["fit", "--optimizer", "sgd", "--lr", "1e30", "--epochs", "1"]), "non-finite loss");
    fails_with(nn().args(["evaluate", "--model"]).arg(d.join("missing")).args(["--data", "digits"]), "missing");
    for cmd in [&["generate", "--prompt", "In the"][..], &["serve"], &["predict", "--input", "x.csv"]] {
        fails_with(nn().args(cmd).arg("--model").arg(d.join("missing")), "missing: no such folder");
    }
    // Negative numbers are values, not flags: the range check answers.
    fails_with(nn().args(["fit", "--lr", "-1"]), "--lr must be a positive number, got -1");
    fails_with(nn().args(["fit", "--validation-split", "-0.5"]), "--validation-split must be in [0, 1), got -0.5");
    fails_with(
        nn().args(["fit", "--model", "foo"]),
        "--model foo: not a preset (mlp, cnn, lstm, resnet; with text data gpt, transformer-classifier; with \
         ratings data mf, ncf, two-tower) and no such model file",
    );
    // An --out that is a file is refused before anything is loaded, and left as it was.
    let file = d.join("taken");
    write(&file, "keep me");
    let out = nn().args(["fit", "--out"]).arg(&file).assert().failure().get_output().clone();
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(stderr.contains("exists and is not a directory"), "{stderr}");
    assert!(!stdout.contains("data digits"), "the data was loaded first: {stdout}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    // Unknown flag values are clap's usage errors (exit 2).
    nn().args(["fit", "--optimizer", "lion"]).assert().code(2);
    nn().args(["fit", "--data", "imagenet"]).assert().code(2);
}

#[test]
fn nan_stop_saves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nan");
    nn().args(["fit", "--optimizer", "sgd", "--lr", "1e30", "--epochs", "2", "--out"]).arg(&out).assert().failure();
    assert!(!out.join("model.json").exists());
    assert!(!out.join("weights.safetensors").exists());
}

/// Writes an IDX file: magic (0, 0, 0x08 = u8, rank), big-endian dimensions, bytes.
fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

/// An MNIST-format folder whose validation part (the last 20% of the training file,
/// as Keras's `validation_split`) has every label flipped: the better the model fits
/// the training part, the worse `val_loss` gets, so the validation curve is scripted
/// to be best after epoch 1.
#[test]
fn early_stopping_on_a_scripted_validation_curve() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (n, side) = (100usize, 4usize);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let class = i % 2;
        for _r in 0..side {
            for c in 0..side {
                let bright = (c < side / 2) == (class == 0);
                images.push(if bright { 200 + (i % 50) as u8 } else { (i % 7) as u8 });
            }
        }
        let flipped = i >= n * 4 / 5;
        labels.push(if flipped { 1 - class as u8 } else { class as u8 });
    }
    let dims = [n as u32, side as u32, side as u32];
    write_idx(&d.join("train-images-idx3-ubyte"), &dims, &images);
    write_idx(&d.join("train-labels-idx1-ubyte"), &[n as u32], &labels);
    write_idx(&d.join("t10k-images-idx3-ubyte"), &dims, &images);
    write_idx(&d.join("t10k-labels-idx1-ubyte"), &[n as u32], &labels);
    let text = stdout(nn().arg("fit").arg("--data").arg(format!("mnist:{}", d.display())).args([
        "--epochs",
        "30",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--early-stopping",
        "3",
    ]));
    assert!(text.contains("early stopping: val_loss did not improve for 3 epochs"), "{text}");
    assert!(text.contains("Restoring model weights from the end of the best epoch: 1"), "{text}");
    let epochs = text.lines().filter(|l| l.starts_with("Epoch ")).count();
    assert_eq!(epochs, 4, "best epoch 1 + patience 3\n{text}");
}

#[test]
fn model_from_a_spec_file_and_idx_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = d.join("softmax.json");
    write(
        &spec,
        r#"{"format_version":1,"input_shape":[8,8,1],"layers":[{"type":"Flatten"},{"type":"Dense","units":10,"activation":"softmax"}]}"#,
    );
    let summary = stdout(nn().args(["summary", "--model"]).arg(&spec));
    assert!(summary.contains("650"), "64·10 + 10 = 650 parameters\n{summary}");
    let out = d.join("run");
    let text =
        stdout(nn().args(["fit", "--epochs", "10", "--lr", "0.01", "--model"]).arg(&spec).arg("--out").arg(&out));
    assert!(figure(&text, "test accuracy:") > 0.8, "{text}");
    // Two 8×8 images as an IDX file of raw pixel values (0..16): all zeros, all 16.
    let idx = d.join("two.idx");
    let mut pixels = vec![0u8; 64];
    pixels.extend(vec![16u8; 64]);
    write_idx(&idx, &[2, 8, 8], &pixels);
    let pred = stdout(nn().args(["predict", "--model"]).arg(&out).arg("--input").arg(&idx));
    assert_eq!(pred.lines().count(), 3, "{pred}");
    for line in pred.lines().skip(1) {
        let p: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((0.1..=1.0).contains(&p), "{line}");
    }
    let summary = stdout(nn().args(["summary", "--model"]).arg(&out));
    assert!(summary.contains("650"), "{summary}");
    // An IDX file whose images do not fit the model is one clear error.
    write_idx(&idx, &[1, 3, 3], &[0; 9]);
    fails_with(nn().args(["predict", "--model"]).arg(&out).arg("--input").arg(&idx), "input shape");
}

#[test]
fn summary_of_the_lstm_preset() {
    // Sequential MNIST: Reshape to 28 steps of 28 features, LSTM(128) with
    // 4·(28·128 + 128·128 + 128) = 80,384 parameters, Dense(10) with 1,290.
    let text = stdout(nn().args(["summary", "--model", "lstm"]));
    for n in ["(Reshape)", "(None, 28, 28)", "(LSTM)", "80,384", "1,290", "81,674"] {
        assert!(text.contains(n), "{n} missing from\n{text}");
    }
}

#[test]
fn lstm_learns_the_adding_problem_then_evaluates_the_same_test_set() {
    // Length 10: predicting the mean gives MSE 2/12 ≈ 0.167; a small LSTM gets far below.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let text = stdout(nn().args([
        "fit",
        "--data",
        "adding:10",
        "--model",
        "lstm",
        "--hidden",
        "16",
        "--epochs",
        "3",
        "--batch-size",
        "64",
        "--lr",
        "0.01",
        "--clip-norm",
        "1",
        "--quiet-progress",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("8000 training, 2000 validation, 1000 test samples of shape [10, 2]"), "{text}");
    let mse = figure(&text, "test mse:");
    assert!(mse < 0.02, "test mse {mse} (constant mean: 0.167)\n{text}");
    // A regression head: the preset's last Dense is linear.
    let model = std::fs::read_to_string(out.join("model.json")).unwrap();
    assert!(model.contains("\"LSTM\"") && model.contains("\"linear\"") && !model.contains("softmax"), "{model}");
    let eval = stdout(nn().args(["evaluate", "--model", out.to_str().unwrap(), "--data", "adding:10"]));
    assert!(eval.contains("1000 samples of adding:10"), "{eval}");
    assert!((figure(&eval, "mse:") - mse).abs() < 1e-4, "{eval}\nvs\n{text}");
}

#[test]
fn lstm_reads_digit_images_row_by_row() {
    let text = stdout(nn().args([
        "fit",
        "--model",
        "lstm",
        "--hidden",
        "32",
        "--epochs",
        "10",
        "--lr",
        "0.01",
        "--quiet-progress",
    ]));
    // 8×8 images as 8 steps of 8 features: 4·(8·32 + 32·32 + 32) + 33·10 = 5,578 parameters.
    assert!(text.contains("model lstm: 5578 parameters"), "{text}");
    let acc = figure(&text, "test accuracy:");
    assert!(acc >= 0.85, "test accuracy {acc}\n{text}");
}

#[test]
fn bad_sequence_data_is_a_clear_usage_error() {
    for (arg, needle) in [("adding:1", "adding needs a sequence length of at least 2"), ("adding:x", "e.g. adding:50")]
    {
        let out = nn().args(["fit", "--data", arg]).assert().failure().get_output().clone();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("error: invalid value") && err.contains(needle) && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn verbose_levels_and_tensorboard_event_files() {
    let dir = tempfile::tempdir().unwrap();
    let tb = dir.path().join("tb");
    // --verbose 2: one line per epoch; --verbose 0: no epoch line at all.
    let text = stdout(nn().args(["fit", "--epochs", "3", "--verbose", "2", "--tensorboard"]).arg(&tb));
    assert_eq!(text.lines().filter(|l| l.starts_with("Epoch ")).count(), 3, "{text}");
    let quiet = stdout(nn().args(["fit", "--epochs", "3", "--verbose", "0"]));
    assert!(!quiet.lines().any(|l| l.starts_with("Epoch ")), "{quiet}");
    assert!(quiet.contains("test accuracy:"), "{quiet}");
    // Keras's layout: train/ and validation/ event files, one scalar per epoch and tag.
    for (sub, tag) in [("train", "epoch_loss"), ("train", "epoch_learning_rate"), ("validation", "epoch_accuracy")] {
        let files: Vec<_> = std::fs::read_dir(tb.join(sub)).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let events = nn_train::read_events(&files[0]).unwrap();
        let steps: Vec<i64> = events
            .iter()
            .filter(|e| e.summary.as_ref().is_some_and(|s| s.value.iter().any(|v| v.tag == tag)))
            .map(|e| e.step)
            .collect();
        assert_eq!(steps, [0, 1, 2], "{sub}/{tag}");
    }
    let out = nn().args(["fit", "--verbose", "3"]).assert().failure().get_output().stderr.clone();
    assert!(String::from_utf8(out).unwrap().starts_with("error: invalid value '3' for '--verbose"));
}
