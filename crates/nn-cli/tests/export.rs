//! `nn-cli export`: a trained model folder as an ONNX file; refusals of bad flags;
//! and (with `NN_ONNX_PYTHON`, a python with onnx, onnxruntime and numpy) ONNX
//! Runtime's answers on raw pixels against `nn-cli predict`'s.

mod common;

use common::{fails_with, nn, stdout, write_idx};

#[test]
fn export_writes_an_onnx_file_and_refuses_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    nn().args(["fit", "--model", "cnn", "--epochs", "1", "--no-test", "--out"]).arg(&run).assert().success();
    let file = dir.path().join("model.onnx");
    let text = stdout(nn().args(["export", "--model"]).arg(&run).args(["--format", "onnx", "--out"]).arg(&file));
    assert!(text.contains("ONNX opset 17") && text.contains("[batch, 8, 8, 1]"), "{text}");
    assert!(text.contains("[batch, 10]") && text.contains("class names"), "{text}");
    let bytes = std::fs::read(&file).unwrap();
    // ModelProto field 1 (ir_version, varint) = 8 comes first.
    assert_eq!(&bytes[..2], &[0x08, 0x08]);
    let text = stdout(nn().args(["export", "--model"]).arg(&run).args(["--opset", "13", "--out"]).arg(&file));
    assert!(text.contains("ONNX opset 13"), "{text}");

    for (flag, value) in [("--opset", "12"), ("--opset", "18"), ("--format", "tflite")] {
        let out = nn()
            .args(["export", "--model"])
            .arg(&run)
            .args([flag, value, "--out"])
            .arg(dir.path().join("x.onnx"))
            .assert()
            .failure()
            .get_output()
            .clone();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(value) && !err.contains("panicked"), "{err}");
        assert!(!dir.path().join("x.onnx").exists());
    }
    fails_with(
        nn().args(["export", "--model"]).arg(dir.path().join("missing")).arg("--out").arg(dir.path().join("y.onnx")),
        "missing",
    );
    fails_with(
        nn().args(["export", "--model"]).arg(&run).arg("--out").arg(dir.path().join("no/such/dir/m.onnx")),
        "m.onnx",
    );
}

/// Runs the exported file on the same IDX pixels with ONNX Runtime (batches of 1, 7
/// and 32) and prints each row's class and probability as `nn-cli predict` does.
const RUN_WITH_ONNXRUNTIME: &str = r#"
import sys
import numpy as np
import onnx
import onnxruntime as ort
model = onnx.load(sys.argv[1])
onnx.checker.check_model(model, full_check=True)
raw = open(sys.argv[2], "rb").read()
n = int.from_bytes(raw[4:8], "big")
x = np.frombuffer(raw[16:], dtype=np.uint8).astype(np.float32).reshape(n, 8, 8, 1)
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
out, start, sizes = [], 0, [1, 7]
while start < n:
    k = sizes.pop(0) if sizes else 32
    out.append(sess.run(None, {name: x[start:start + k]})[0])
    start += k
for p in np.concatenate(out):
    c = int(np.argmax(p))
    print(f"{c},{p[c]:.9f}")
"#;

#[test]
#[ignore = "needs python3 with onnx, onnxruntime and numpy: set NN_ONNX_PYTHON"]
fn onnx_runtime_answers_like_predict() {
    let python = std::env::var("NN_ONNX_PYTHON").expect("NN_ONNX_PYTHON: a python with onnx and onnxruntime");
    let dir = tempfile::tempdir().unwrap();
    for model in ["mlp", "cnn", "resnet", "lstm"] {
        let run = dir.path().join(model);
        nn().args(["fit", "--model", model, "--epochs", "1", "--no-test", "--out"]).arg(&run).assert().success();
        let file = dir.path().join(format!("{model}.onnx"));
        nn().args(["export", "--model"]).arg(&run).arg("--out").arg(&file).assert().success();
        let data = nn_data::digits::load().features().to_vec();
        let n = 120;
        let pixels: Vec<u8> = data[..n * 64].iter().map(|&v| v as u8).collect();
        let idx = dir.path().join("rows.idx");
        write_idx(&idx, n, &pixels);
        let pred = stdout(nn().args(["predict", "--model"]).arg(&run).arg("--input").arg(&idx));
        let script = dir.path().join("run.py");
        std::fs::write(&script, RUN_WITH_ONNXRUNTIME).unwrap();
        let out = std::process::Command::new(&python).arg(&script).arg(&file).arg(&idx).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let ort = String::from_utf8(out.stdout).unwrap();
        let mut worst = 0.0f64;
        let lines: Vec<&str> = pred.lines().skip(1).collect();
        assert_eq!(lines.len(), n, "{pred}");
        for (p, o) in lines.iter().zip(ort.lines()) {
            let f: Vec<&str> = p.split(',').collect(); // row,class,name,probability
            let (c, prob) = o.split_once(',').unwrap();
            assert_eq!(f[1], c, "{model}: predict {p} vs onnxruntime {o}");
            let d = (f[3].parse::<f64>().unwrap() - prob.parse::<f64>().unwrap()).abs();
            worst = worst.max(d);
        }
        println!("{model}: max |predict − onnxruntime| = {worst:.2e} (predict prints 6 decimals)");
        // predict rounds to 6 decimals (±5e-7), plus the 1e-5 bound.
        assert!(worst <= 1e-5 + 5e-7, "{model}: {worst}");
    }
}
