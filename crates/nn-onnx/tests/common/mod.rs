//! Helpers shared by the integration tests: a small deterministic generator,
//! parameter perturbation, the embedded digits, the graph using every feedforward
//! layer kind, and running a python script that lists its cases as JSON.
#![allow(dead_code)]

use std::path::Path;

use nn_layers::{ParamKind, Sequential};
use nn_tensor::Tensor;

/// A small deterministic generator (64-bit LCG, Knuth's MMIX constants), so the tests
/// need no RNG crate: uniform in `[lo, hi)`.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        lo + (hi - lo) * ((self.0 >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// Gives the model non-trivial biases, BatchNormalization statistics and LoRA
/// factors (they start at 0 or 1, which would hide a wrong mapping).
pub fn perturb(model: &mut Sequential, seed: u64) {
    let mut rng = Lcg(seed);
    let params: Vec<(String, Vec<usize>, ParamKind)> =
        model.parameters().iter().map(|p| (p.name.clone(), p.shape().to_vec(), p.kind)).collect();
    for (name, shape, kind) in params {
        let (lo, hi) = match kind {
            ParamKind::Bias | ParamKind::Beta | ParamKind::MovingMean | ParamKind::LoraB => (-0.5, 0.5),
            ParamKind::Gamma | ParamKind::MovingVariance => (0.5, 1.5),
            _ => continue,
        };
        let n = shape.iter().product();
        let values = (0..n).map(|_| rng.uniform(lo, hi)).collect();
        model.set_parameter(&name, Tensor::from_vec(&shape, values)).unwrap();
    }
}

/// The first `n` digits, raw pixel values 0–16, `[n, 8, 8, 1]`.
pub fn digits(n: usize) -> nn_data::Dataset {
    let d = nn_data::digits::load();
    d.subset(&(0..n).collect::<Vec<_>>()).unwrap()
}

/// A graph over `[8, 8, 1]` images using every feedforward layer kind: ZeroPadding2D
/// (asymmetric), Conv2D (stride 2 `same` with asymmetric padding, non-square kernels,
/// `valid` with unequal strides, each activation), BatchNormalization, the five
/// element-wise merges, Concatenate, ReLU, LeakyReLU, ELU, MaxPool2D and AvgPool2D
/// (`same` and `valid`), both global pools, LayerNormalization, Dense (with and
/// without bias, LoRA), Dropout, Activation, Identity, Reshape, Softmax on an inner
/// axis, Flatten.
pub const IMAGE_GRAPH: &str = r#"{
  "format_version": 2,
  "inputs": [{"name": "image", "shape": [8, 8, 1]}],
  "layers": [
    {"type": "ZeroPadding2D", "name": "pad", "padding": [[1, 0], [0, 2]]},
    {"type": "Conv2D", "name": "c1", "filters": 6, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "elu"},
    {"type": "Conv2D", "name": "c2", "filters": 6, "kernel_size": [2, 3], "padding": "same", "activation": "leaky_relu"},
    {"type": "BatchNormalization", "name": "bn", "epsilon": 0.01},
    {"type": "Add", "name": "add", "inputs": ["c1", "bn"]},
    {"type": "Subtract", "name": "sub", "inputs": ["c1", "bn"]},
    {"type": "Multiply", "name": "mul", "inputs": ["add", "sub", "c1"]},
    {"type": "Average", "name": "avg", "inputs": ["add", "sub", "mul"]},
    {"type": "Maximum", "name": "max", "inputs": ["add", "mul", "c2"]},
    {"type": "Concatenate", "name": "cat", "axis": -1, "inputs": ["avg", "max"]},
    {"type": "ReLU", "name": "relu"},
    {"type": "MaxPooling2D", "name": "mp", "pool_size": 2, "strides": 1, "padding": "same"},
    {"type": "Conv2D", "name": "c3", "filters": 3, "kernel_size": [2, 1], "strides": [1, 2], "activation": "sigmoid", "use_bias": false},
    {"type": "AveragePooling2D", "name": "ap", "pool_size": 3, "strides": 2, "padding": "same", "inputs": ["relu"]},
    {"type": "LeakyReLU", "name": "lrelu", "negative_slope": 0.1},
    {"type": "AveragePooling2D", "name": "ap2", "pool_size": 2, "inputs": ["lrelu"]},
    {"type": "Conv2D", "name": "c4", "filters": 4, "kernel_size": 1, "activation": "softplus", "inputs": ["ap2"]},
    {"type": "Flatten", "name": "flat_c4"},
    {"type": "GlobalAveragePooling2D", "name": "gap", "inputs": ["c3"]},
    {"type": "GlobalMaxPooling2D", "name": "gmp", "inputs": ["lrelu"]},
    {"type": "Concatenate", "name": "cat2", "inputs": ["gap", "gmp", "flat_c4"]},
    {"type": "LayerNormalization", "name": "ln"},
    {"type": "Dense", "name": "d1", "units": 16, "activation": "tanh"},
    {"type": "Dropout", "name": "drop", "rate": 0.3},
    {"type": "ELU", "name": "elu", "alpha": 0.5},
    {"type": "BatchNormalization", "name": "bn2", "center": false, "scale": false},
    {"type": "Dense", "name": "d2", "units": 8, "use_bias": false, "activation": "relu"},
    {"type": "LayerNormalization", "name": "ln2", "center": false, "epsilon": 0.001},
    {"type": "Activation", "name": "sig", "activation": "sigmoid"},
    {"type": "Identity", "name": "id"},
    {"type": "Reshape", "name": "rs", "target_shape": [2, 4]},
    {"type": "Softmax", "name": "inner_softmax"},
    {"type": "Flatten", "name": "flat"},
    {"type": "Dense", "name": "d3", "units": 10, "lora": {"rank": 2, "alpha": 4.0}},
    {"type": "Activation", "name": "probs", "activation": "softmax"}
  ]
}"#;

/// A graph over token sequences `[6]` (indices 0–9 as floats): Embedding, then
/// SimpleRNN, GRU and LSTM with and without `return_sequences`, stacked and side by
/// side, joined and classified.
pub const SEQUENCE_GRAPH: &str = r#"{
  "format_version": 2,
  "inputs": [{"name": "tokens", "shape": [6]}],
  "layers": [
    {"type": "Embedding", "name": "emb", "input_dim": 10, "output_dim": 5},
    {"type": "SimpleRNN", "name": "rnn", "units": 4, "return_sequences": true},
    {"type": "GRU", "name": "gru", "units": 5, "return_sequences": true},
    {"type": "LSTM", "name": "lstm", "units": 3},
    {"type": "LSTM", "name": "lstm_seq", "units": 3, "return_sequences": true, "inputs": ["emb"]},
    {"type": "GRU", "name": "gru2", "units": 4},
    {"type": "SimpleRNN", "name": "rnn2", "units": 2, "inputs": ["emb"]},
    {"type": "GRU", "name": "gru_nobias", "units": 2, "use_bias": false, "inputs": ["emb"]},
    {"type": "Concatenate", "name": "cat", "inputs": ["lstm", "gru2", "rnn2", "gru_nobias"]},
    {"type": "Dense", "name": "out", "units": 3, "activation": "softmax"}
  ]
}"#;

/// `[n, c, h, w]` as `[n, h, w, c]`.
pub fn nchw_to_nhwc(x: &[f32], n: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut t = vec![0f32; x.len()];
    for s in 0..n {
        for ci in 0..c {
            for i in 0..h {
                for j in 0..w {
                    t[((s * h + i) * w + j) * c + ci] = x[((s * c + ci) * h + i) * w + j];
                }
            }
        }
    }
    t
}

/// Runs `tests/<script>` with `python` on a fresh temporary folder and returns the
/// folder (kept alive while the files are read) and the cases it printed as JSON.
pub fn run_script(python: &str, script: &str) -> (tempfile::TempDir, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(script);
    let out = std::process::Command::new(python).arg(&path).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let cases: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    (dir, cases)
}
