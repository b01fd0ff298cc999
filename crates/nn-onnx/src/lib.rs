//! ONNX export and import of nn models: `nn-cli export --model DIR --format onnx --out
//! model.onnx` and `nn-cli import --from model.onnx --out DIR`.
//!
//! [`import()`] reads an ONNX inference graph made of operators nn has (a PyTorch MLP
//! or CNN, NCHW, or a file [`export()`] wrote) into a [`Model`](nn_layers::Model) and
//! its [`ModelMetadata`](nn_train::ModelMetadata); see [`mod@import`] for the
//! operators and the NCHW → NHWC conversion.
//!
//! [`export()`] writes a trained [`Model`](nn_layers::Model) with the metadata saved
//! beside it ([`ModelMetadata`](nn_train::ModelMetadata): input scaling, class names,
//! target scaling) as one ONNX inference graph that ONNX Runtime runs on the same raw
//! features `nn-cli predict` reads, giving the same outputs (probabilities for a
//! classifier). The protobuf messages are declared by hand with `prost`'s derive in
//! [`proto`] (the field numbers of `onnx/onnx.proto`): no `protoc`, no build script.
//!
//! ```
//! use nn_layers::{ModelSpec, Sequential};
//! use nn_train::ModelMetadata;
//!
//! let model = Sequential::new(ModelSpec::seed_cnn(&[28, 28, 1], 10), 42)?;
//! let meta = ModelMetadata { class_names: Some((0..10).map(|d| d.to_string()).collect()), ..Default::default() };
//! let bytes = nn_onnx::export(&model, &meta, nn_onnx::DEFAULT_OPSET)?;
//! assert!(bytes.len() > 4 * 693_962); // the weights as float32, plus the graph
//! assert!(matches!(nn_onnx::export(&model, &meta, 18), Err(nn_onnx::OnnxError::Opset { opset: 18 })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! Tensors stay NHWC as in nn, the batch axis symbolic (`"batch"`); ONNX's NCHW
//! `Conv` and pooling operators are wrapped in `Transpose` nodes, the recurrent
//! operators likewise for their `[time, batch, features]` input.
//!
//! # What maps to what (opsets 13–17)
//!
//! | nn layer | ONNX nodes |
//! |---|---|
//! | Dense | `MatMul` (kernel `[in, out]`), `Add` (bias), LoRA as `MatMul`, `MatMul`, `Mul`, `Add`; then the activation |
//! | activations | `Relu`, `LeakyRelu` (α 0.2 or the layer's slope), `Elu`, `Sigmoid`, `Tanh`, `Softplus`, `Softmax` (axis −1) |
//! | Conv2D | `Transpose`, `Conv` (kernel `[f, c, kh, kw]`, explicit pads as nn's `same`), `Transpose`, activation |
//! | MaxPool2D / AvgPool2D | `Transpose`, `MaxPool` / `AveragePool` (`count_include_pad` 0), `Transpose` |
//! | GlobalAverage/MaxPooling2D | `ReduceMean` / `ReduceMax` over axes 1, 2 |
//! | Flatten, Reshape | `Flatten` (axis 1), `Reshape` (NHWC row-major, as nn) |
//! | Dropout, Identity | `Identity` |
//! | BatchNormalization | `Sub` (moving mean), `Mul` (γ/√(σ²+ε)), `Add` (β) |
//! | LayerNormalization | `LayerNormalization` (opset 17), else `ReduceMean`, `Sub`, `Mul`, `ReduceMean`, `Add`, `Sqrt`, `Div`, `Mul`, `Add` |
//! | ZeroPadding2D | `Pad` |
//! | Embedding | `Cast` (to int64), `Gather` |
//! | Add, Subtract, Multiply, Average, Maximum, Concatenate | `Add`…, `Sub`, `Mul`…, `Add`… `Mul` (1/n), `Max`, `Concat` (same axis) |
//! | SimpleRNN, LSTM, GRU | `Transpose`, `RNN` / `LSTM` (gates i, o, f, c) / `GRU` (`linear_before_reset` 1), `Squeeze` |
//!
//! Fused stages of nn's planner (Conv2D → MaxPool2D, activations inside Dense and
//! Conv2D) compute the same values as their layers one by one, and are written as
//! those layers' nodes; ONNX Runtime fuses them again.

#![warn(missing_docs)]

pub mod export;
pub mod import;
pub mod proto;

pub use export::{
    export, export_proto, resolve_pads, BATCH_DIM, CLASS_NAMES_KEY, DEFAULT_OPSET, IR_VERSION, NN_METADATA_KEY, OPSETS,
};
pub use import::{import, import_proto, Imported, FOREIGN_DATA, IMPORT_OPSETS, SUPPORTED_OPERATORS};

/// Why a model could not be exported or imported. Nothing is written when either
/// fails.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// A layer has no ONNX form (or not yet): names the layer, its index and kind.
    #[error("layer {layer:?} (index {index}, {kind}) cannot be exported to ONNX: {reason}")]
    Unsupported {
        /// The layer's name in the model (`dense_1`, or its given name).
        layer: String,
        /// Its index in the model's spec.
        index: usize,
        /// Its kind (the JSON `"type"`).
        kind: &'static str,
        /// Why.
        reason: String,
    },
    /// The opset asked for is not one the exporter writes.
    #[error("ONNX opset {opset} is not supported: use 13 to 17 (default 17)")]
    Opset {
        /// The opset asked for.
        opset: i64,
    },
    /// The saved metadata (input scaling, target scaling) does not fit the model.
    #[error("metadata: {0}")]
    Metadata(String),
    /// Import: the bytes are not an ONNX model (truncated, corrupt, another format).
    #[error("not a readable ONNX model: {0}")]
    Decode(String),
    /// Import: the graph uses operators nn has no layer for; every one, by name.
    #[error("unsupported ONNX operators: {}; nn imports {}", .0.join(", "), import::SUPPORTED_OPERATORS.join(", "))]
    UnsupportedOperators(Vec<String>),
    /// Import: the graph is not well formed (a cycle, a missing value, a tensor
    /// whose data does not fill its shape, an opset outside 13 to 21).
    #[error("invalid ONNX model: {0}")]
    Invalid(String),
    /// Import: a node whose settings or inputs nn cannot express.
    #[error("node {node:?} ({op}) cannot be imported: {reason}")]
    Node {
        /// The node's name (`#k`, its position, when it has none).
        node: String,
        /// Its operator.
        op: String,
        /// Why.
        reason: String,
    },
    /// Import: the nn model built from the graph is refused by nn (shapes, sizes).
    #[error("the imported model does not build: {0}")]
    Model(String),
}
