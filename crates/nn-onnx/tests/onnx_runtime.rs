//! Exported models run by ONNX Runtime give nn's predictions: the presets (mlp, cnn,
//! lstm, resnet) on the embedded digits, and two graph models using every layer kind,
//! at opsets 17 and 13, with input scaling (constant, standard, min-max, mean
//! imputation), class names and a target scaling.
//!
//! The check itself (`tests/check.py`) needs a python with `onnx`, `onnxruntime` and
//! `numpy`, named by `NN_ONNX_PYTHON` (`.ci/run` makes one); without it the test is
//! ignored (`cargo test -p nn-onnx -- --ignored` runs it).

mod common;

use std::path::Path;

use common::{digits, perturb, Lcg, IMAGE_GRAPH, SEQUENCE_GRAPH};

use nn_data::{Dataset, Granularity, Scaler, TargetScaler, Targets};
use nn_layers::{ModelSpec, Sequential};
use nn_tensor::Tensor;
use nn_train::ModelMetadata;

/// Largest absolute difference allowed between nn and ONNX Runtime (the issue's
/// acceptance bound).
const TOLERANCE: f64 = 1e-5;

/// One model to check: written to `dir` with its inputs and nn's outputs.
struct Case {
    name: String,
    model: Sequential,
    meta: ModelMetadata,
    raw: Tensor<f32>,
    opset: i64,
}

fn write_f32(path: &Path, t: &[f32]) {
    std::fs::write(path, t.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

impl Case {
    fn new(name: &str, spec: ModelSpec, meta: ModelMetadata, raw: Tensor<f32>, opset: i64) -> Case {
        let mut model = Sequential::new(spec, 7).unwrap();
        perturb(&mut model, 11);
        Case { name: name.into(), model, meta, raw, opset }
    }

    /// Exports the model and writes the files `check.py` reads; returns its entry.
    fn write(&self, dir: &Path) -> serde_json::Value {
        let bytes = nn_onnx::export(&self.model, &self.meta, self.opset).unwrap();
        let onnx = dir.join(format!("{}.onnx", self.name));
        std::fs::write(&onnx, bytes).unwrap();
        // What `nn-cli predict` computes: scale the raw features, predict, map
        // regression outputs back to the target's units.
        let x = self.meta.scale(&self.raw).unwrap();
        let mut y = nn_train::predict(&self.model, &x, 32).unwrap().outputs.to_vec();
        if let Some(ts) = &self.meta.target_scaler {
            y = ts.invert(&y);
        }
        let (inputs, expected) = (dir.join(format!("{}.x", self.name)), dir.join(format!("{}.y", self.name)));
        write_f32(&inputs, &self.raw.to_vec());
        write_f32(&expected, &y);
        serde_json::json!({
            "name": self.name,
            "onnx": onnx,
            "inputs": inputs,
            "input_shape": self.model.input_shape(),
            "expected": expected,
            "output_shape": self.model.output_shape(),
            "class_names": self.meta.class_names,
        })
    }
}

fn class_meta(scalers: Vec<Scaler>) -> ModelMetadata {
    ModelMetadata {
        data: "digits".into(),
        class_names: Some((0..10).map(|d| format!("digit {d}")).collect()),
        scalers,
        task: Some(nn_data::Task::Classification),
        ..Default::default()
    }
}

fn cases() -> Vec<Case> {
    let data = digits(150);
    let raw = data.features();
    let standard = Scaler::fit_standard(&data, Granularity::PerFeature).unwrap();
    let per_channel = Scaler::fit_standard(&data, Granularity::PerChannel).unwrap();
    let constant = Scaler::constant(1.0 / 16.0, 0.0).unwrap();
    let shape = [8, 8, 1];
    let preset = |name: &str| -> ModelSpec {
        match name {
            "mlp" => ModelSpec::mlp(&shape, 32, 10, 0.2),
            "cnn" => ModelSpec::seed_cnn(&shape, 10),
            "lstm" => ModelSpec::lstm_classifier(&shape, 16, 10).unwrap(),
            "resnet" => ModelSpec::resnet(&shape, 10).unwrap(),
            _ => unreachable!(),
        }
    };
    let mut cases = vec![
        Case::new("mlp", preset("mlp"), class_meta(vec![standard.clone()]), raw.clone(), 17),
        Case::new("cnn", preset("cnn"), class_meta(vec![constant.clone()]), raw.clone(), 17),
        Case::new("lstm", preset("lstm"), class_meta(vec![constant.clone()]), raw.clone(), 17),
        Case::new("resnet", preset("resnet"), class_meta(vec![per_channel.clone()]), raw.clone(), 17),
        Case::new("lstm_opset13", preset("lstm"), class_meta(vec![constant.clone()]), raw.clone(), 13),
        Case::new("cnn_opset13", preset("cnn"), class_meta(vec![standard.clone()]), raw.clone(), 13),
    ];
    let image = ModelSpec::from_json(IMAGE_GRAPH).unwrap();
    cases.push(Case::new("all_layers", image.clone(), class_meta(vec![constant.clone()]), raw.clone(), 17));
    cases.push(Case::new("all_layers_opset13", image.clone(), class_meta(vec![standard.clone()]), raw.clone(), 13));
    cases.push(Case::new("all_layers_opset15", image, class_meta(vec![]), raw.clone(), 15));

    let mut rng = Lcg(3);
    let tokens: Vec<f32> = (0..120 * 6).map(|_| rng.uniform(0.0, 10.0).floor().min(9.0)).collect();
    let seq = ModelSpec::from_json(SEQUENCE_GRAPH).unwrap();
    let seq_meta = ModelMetadata { class_names: Some(vec!["a".into(), "b".into(), "c".into()]), ..Default::default() };
    let tokens = Tensor::from_vec(&[120, 6], tokens);
    cases.push(Case::new("recurrent", seq.clone(), seq_meta.clone(), tokens.clone(), 17));
    cases.push(Case::new("recurrent_opset13", seq, seq_meta, tokens, 13));

    // Regression on 5 features with missing values: mean imputation, then min-max
    // scaling; two outputs mapped back by the target scaling.
    let mut values: Vec<f32> = (0..110 * 5).map(|_| rng.uniform(-3.0, 7.0)).collect();
    for k in (0..values.len()).step_by(7) {
        values[k] = f32::NAN;
    }
    let x = Tensor::from_vec(&[110, 5], values);
    let table = Dataset::from_tensor("table", x.clone(), Targets::classes(vec![0; 110], 1).unwrap()).unwrap();
    let impute = Scaler::fit_impute_mean(&table).unwrap();
    let minmax =
        Scaler::fit_min_max(&table.clone().with_scaler(impute.clone()).unwrap(), Granularity::PerFeature, -1.0, 1.0)
            .unwrap();
    let spec = ModelSpec::from_json(
        r#"{"input_shape": [5], "layers": [
            {"type": "Dense", "units": 12, "activation": "softplus"},
            {"type": "Dense", "units": 2}]}"#,
    )
    .unwrap();
    let meta = ModelMetadata {
        data: "csv:table.csv".into(),
        target: Some("y".into()),
        scalers: vec![impute, minmax],
        task: Some(nn_data::Task::Regression),
        target_scaler: Some(TargetScaler { mean: vec![10.0, -3.0], std: vec![2.5, 0.5] }),
        ..Default::default()
    };
    cases.push(Case::new("regression", spec, meta, x, 17));
    cases
}

#[test]
#[ignore = "needs python3 with onnx, onnxruntime and numpy: set NN_ONNX_PYTHON"]
fn onnx_runtime_matches_nn() {
    let Ok(python) = std::env::var("NN_ONNX_PYTHON") else {
        panic!("NN_ONNX_PYTHON: a python with onnx, onnxruntime and numpy (see .ci/run)");
    };
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    let entries: Vec<serde_json::Value> = cases.iter().map(|c| c.write(dir.path())).collect();
    let list = dir.path().join("cases.json");
    std::fs::write(&list, serde_json::to_string(&entries).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check.py");
    let out = std::process::Command::new(&python).arg(&script).arg(&list).output().unwrap();
    assert!(
        out.status.success(),
        "check.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let r = &report[&case.name];
        let diff = r["max_abs_diff"].as_f64().unwrap();
        println!(
            "{:<20} opset {} max |nn − onnxruntime| = {diff:.3e} over {} samples",
            case.name, case.opset, r["samples"]
        );
        assert!(r["samples"].as_u64().unwrap() >= 100, "{}: {r}", case.name);
        assert_eq!(r["batches"], serde_json::json!([1, 7, 32]), "{}", case.name);
        if diff.is_nan() || diff > TOLERANCE {
            failures.push(format!("{}: max abs difference {diff:e} > {TOLERANCE:e}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
