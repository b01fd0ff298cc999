//! `nn-cli import`: an exported model folder comes back as a folder that `predict`,
//! `evaluate`, `serve` and `fit --init-from` use, with the same predictions; bad
//! files give one error line; and (with `NN_ONNX_PYTHON`, a python with onnx,
//! onnxruntime and numpy) PyTorch-style NCHW graphs written with `onnx.helper`
//! import to nn models whose outputs equal ONNX Runtime's.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};

use common::{fails_with, nn, stdout, write_idx};

/// `predict`'s rows as (class, probability).
fn rows(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect(); // row,class,name,probability
            (f[1].to_string(), f[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn imported_folder_predicts_evaluates_serves_and_fine_tunes() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("rows.idx");
    let data = nn_data::digits::load().features().to_vec();
    let n = 100;
    write_idx(&idx, n, &data[..n * 64].iter().map(|&v| v as u8).collect::<Vec<_>>());
    for preset in ["mlp", "cnn", "resnet", "lstm"] {
        let run = dir.path().join(preset);
        nn().args(["fit", "--model", preset, "--epochs", "1", "--no-test", "--out"]).arg(&run).assert().success();
        let file = dir.path().join(format!("{preset}.onnx"));
        nn().args(["export", "--model"]).arg(&run).arg("--out").arg(&file).assert().success();
        let back = dir.path().join(format!("{preset}_imported"));
        let text = stdout(nn().args(["import", "--from"]).arg(&file).arg("--out").arg(&back));
        assert!(text.contains("input [8, 8, 1], output [10]; 10 class names"), "{text}");

        let a = rows(&stdout(nn().args(["predict", "--model"]).arg(&run).arg("--input").arg(&idx)));
        let b = rows(&stdout(nn().args(["predict", "--model"]).arg(&back).arg("--input").arg(&idx)));
        assert_eq!(a.len(), n);
        let worst = a.iter().zip(&b).map(|(x, y)| (x.1 - y.1).abs()).fold(0.0, f64::max);
        assert!(a.iter().zip(&b).all(|(x, y)| x.0 == y.0), "{preset}: classes differ");
        // predict prints 6 decimals: the 1e-6 round trip plus the rounding.
        assert!(worst <= 1e-6 + 1e-6, "{preset}: {worst}");
        println!("{preset}: max |predict(original) − predict(imported)| = {worst:.1e}");

        let ev = |m: &Path| stdout(nn().args(["evaluate", "--model"]).arg(m).args(["--data", "digits"]));
        let (e1, e2) = (ev(&run), ev(&back));
        let acc = |t: &str| t.lines().find(|l| l.contains("accuracy")).map(str::to_string);
        assert!(acc(&e2).is_some(), "{e2}");
        assert_eq!(acc(&e1), acc(&e2), "{preset}");
    }
    // Fine-tuning starts from the imported weights.
    let tuned = dir.path().join("tuned");
    let text = stdout(
        nn().args(["fit", "--epochs", "1", "--no-test", "--init-from"])
            .arg(dir.path().join("mlp_imported"))
            .arg("--out")
            .arg(&tuned),
    );
    assert!(text.contains("loaded 4 tensors from") && text.contains("dense_1.kernel, dense_1.bias"), "{text}");
    assert!(tuned.join("model.json").exists());

    // Serving: the imported folder answers a prediction over HTTP.
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_nn-cli"))
        .args(["--threads", "1", "serve", "--addr", "127.0.0.1:0", "--model"])
        .arg(dir.path().join("mlp_imported"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("serve exited");
        }
        if let Some(rest) = line.strip_prefix("listening on http://") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let body = serde_json::json!({ "inputs": [data[..64].to_vec()] }).to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("probabilities") || reply.contains("class"), "{reply}");
}

#[test]
fn import_refusals_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        nn().args(["import", "--from"]).arg(dir.path().join("none.onnx")).arg("--out").arg(dir.path()),
        "none.onnx",
    );
    // Never into a folder that holds anything (a run, a model, other files).
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("run.json"), b"{}").unwrap();
    fails_with(
        nn().args(["import", "--from"]).arg(dir.path().join("none.onnx")).arg("--out").arg(&run),
        "already exists and is not an empty folder",
    );
    assert_eq!(std::fs::read_dir(&run).unwrap().count(), 1);
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"\x89PNG\r\n\x1a\n not onnx at all").unwrap();
    fails_with(nn().args(["import", "--from"]).arg(&junk).arg("--out").arg(dir.path().join("o")), "ONNX");
    assert!(!dir.path().join("o").exists());
    // An MLP's export with an Erf node appended: an operator nn does not have.
    let spec =
        nn_layers::ModelSpec::from_json(r#"{"input_shape": [6], "layers": [{"type": "Dense", "units": 2}]}"#).unwrap();
    let model = nn_layers::Sequential::new(spec, 1).unwrap();
    let mut proto = nn_onnx::export_proto(&model, &nn_train::ModelMetadata::default(), 17).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    let last = graph.output[0].name.clone();
    graph.node.push(nn_onnx::proto::NodeProto {
        input: vec![last],
        output: vec!["erf".into()],
        name: "erf".into(),
        op_type: "Erf".into(),
        ..Default::default()
    });
    graph.output[0].name = "erf".into();
    let file = dir.path().join("erf.onnx");
    std::fs::write(&file, prost::Message::encode_to_vec(&proto)).unwrap();
    fails_with(
        nn().args(["import", "--from"]).arg(&file).arg("--out").arg(dir.path().join("o")),
        "unsupported ONNX operators: Erf;",
    );
    assert!(!dir.path().join("o").exists());
}
