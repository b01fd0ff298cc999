//! Hand-built ONNX graphs in the shapes PyTorch writes (NCHW convolutions, `Gemm`
//! with `transB`, `Flatten` in C,H,W order), made with the `onnx` package's helpers
//! (`tests/import_graphs.py`): nn's outputs after import equal ONNX Runtime's on the
//! same file to 1e-5, on 100 inputs run in batches of 1, 7 and 32; and LSTM and
//! GRU operators over time-major sequences.
//!
//! Needs a python with `onnx`, `onnxruntime` and `numpy`, named by `NN_ONNX_PYTHON`
//! (`.ci/run` makes one); without it the test is ignored.

mod common;

use common::{nchw_to_nhwc, run_script};
use nn_tensor::Tensor;

/// The acceptance bound (absolute).
const TOLERANCE: f32 = 1e-5;

fn read_f32(path: &str) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
#[ignore = "needs python3 with onnx, onnxruntime and numpy: set NN_ONNX_PYTHON"]
fn imported_graphs_answer_like_onnx_runtime() {
    let Ok(python) = std::env::var("NN_ONNX_PYTHON") else {
        panic!("NN_ONNX_PYTHON: a python with onnx, onnxruntime and numpy (see .ci/run)");
    };
    let (_dir, cases) = run_script(&python, "import_graphs.py");
    assert_eq!(cases.len(), 6);
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let bytes = std::fs::read(case["file"].as_str().unwrap()).unwrap();
        let imported = nn_onnx::import(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let shape: Vec<usize> =
            case["input_shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let n = case["n"].as_u64().unwrap() as usize;
        let x = read_f32(case["x"].as_str().unwrap());
        let want = read_f32(case["y"].as_str().unwrap());
        // ONNX's NCHW images are given to nn as NHWC.
        let (nn_shape, x) = if let &[c, h, w] = shape.as_slice() {
            (vec![n, h, w, c], nchw_to_nhwc(&x, n, c, h, w))
        } else {
            (std::iter::once(n).chain(shape.iter().copied()).collect(), x)
        };
        assert_eq!(&nn_shape[1..], imported.model.input_shape(), "{name}");
        let got = imported.model.predict(&Tensor::from_vec(&nn_shape, x)).unwrap().to_vec();
        assert_eq!(got.len(), want.len(), "{name}");
        let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        println!(
            "{name:<18} {} layers: max |nn − onnxruntime| = {diff:.3e} over {n} samples",
            imported.model.layers().len()
        );
        if diff.is_nan() || diff > TOLERANCE {
            failures.push(format!("{name}: {diff:e}"));
        }
        if name == "torch_mlp" {
            let names = imported.metadata.class_names.clone().unwrap();
            assert_eq!(names, ["a", "b", "c", "d"]);
            assert_eq!(imported.metadata.task, Some(nn_data::Task::Classification));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
