//! Real `torch.onnx.export` files (`tests/torch_export.py`: a PyTorch MLP,
//! Linear-ReLU-Linear-Softmax, and a CNN, Conv2d-ReLU-MaxPool2d-Flatten-Linear,
//! exported at opsets 13 and 17 with a dynamic batch axis): nn's outputs after
//! import equal ONNX Runtime's on the same file to 1e-5, on 103 inputs run in
//! batches of 1, 7, 32, 32 and 31 (NCHW images given to nn as NHWC).
//!
//! Needs a python with `torch`, `onnx`, `onnxruntime` and `numpy`, named by
//! `NN_TORCH_PYTHON`; without it the test is ignored.

mod common;

use common::{nchw_to_nhwc, run_script};
use nn_tensor::Tensor;

/// The acceptance bound (absolute).
const TOLERANCE: f32 = 1e-5;

/// A float32, C-order `.npy` file (format 1.0 to 3.0): its shape and values.
fn read_npy(path: &str) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY", "{path}: not a .npy file");
    let (len, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + len]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"), "{path}: {header}");
    let dims = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = dims.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
    let data = b[start + len..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (shape, data)
}

#[test]
#[ignore = "needs python3 with torch, onnx, onnxruntime and numpy: set NN_TORCH_PYTHON"]
fn torch_exported_models_answer_like_onnx_runtime() {
    let Ok(python) = std::env::var("NN_TORCH_PYTHON") else {
        panic!("NN_TORCH_PYTHON: a python with torch, onnx, onnxruntime and numpy");
    };
    let (_dir, cases) = run_script(&python, "torch_export.py");
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.len() >= 4, "{names:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        assert!(case["producer"].as_str().unwrap().starts_with("pytorch"), "{name}");
        let bytes = std::fs::read(case["file"].as_str().unwrap()).unwrap();
        let imported = nn_onnx::import(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (xs, x) = read_npy(case["x"].as_str().unwrap());
        let (ys, want) = read_npy(case["y"].as_str().unwrap());
        let n = xs[0];
        assert!(n >= 100, "{name}: {n} samples");
        let (sample, x): (Vec<usize>, Vec<f32>) = match xs[1..] {
            [c, h, w] => (vec![h, w, c], nchw_to_nhwc(&x, n, c, h, w)),
            _ => (xs[1..].to_vec(), x),
        };
        assert_eq!(sample.as_slice(), imported.model.input_shape(), "{name}");
        let per = sample.iter().product::<usize>();
        let per_out = ys[1..].iter().product::<usize>();
        let batches: Vec<usize> =
            case["batches"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as usize).collect();
        assert!(batches.contains(&1) && batches.contains(&7), "{name}: {batches:?}");
        let (mut start, mut got) = (0, Vec::new());
        for b in batches {
            let shape: Vec<usize> = std::iter::once(b).chain(sample.iter().copied()).collect();
            let chunk = Tensor::from_vec(&shape, x[start * per..(start + b) * per].to_vec());
            let y = imported.model.predict(&chunk).unwrap().to_vec();
            assert_eq!(y.len(), b * per_out, "{name}");
            got.extend(y);
            start += b;
        }
        assert_eq!(start, n, "{name}");
        assert_eq!(got.len(), want.len(), "{name}");
        let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let kinds: Vec<&str> = imported.model.spec().layers.iter().map(|l| l.layer.kind()).collect();
        println!("{name:<20} {kinds:?}: max |nn − onnxruntime| = {diff:.3e} over {n} samples");
        if name.contains("view_ln") {
            // The Shape chain folded into a Flatten, the decomposed LayerNorm (opset
            // 13) put back together.
            assert!(kinds.contains(&"Flatten") && kinds.contains(&"LayerNormalization"), "{name}: {kinds:?}");
        }
        if diff.is_nan() || diff > TOLERANCE {
            failures.push(format!("{name}: {diff:e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
