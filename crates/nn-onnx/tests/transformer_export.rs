//! ONNX export and the Transformer layers: GELU (exact and tanh form) is written with
//! opset-9 operators (`Erf`, `Tanh`, `Mul`, `Add`); the attention and position layers
//! are refused with a message naming the layer and its kind.

use nn_layers::{Activation, DenseConfig, LayerSpec, ModelSpec, Sequential};
use nn_onnx::{export_proto, OnnxError};
use nn_train::ModelMetadata;

fn op_types(spec: ModelSpec) -> Vec<String> {
    let model = Sequential::new(spec, 0).unwrap();
    let m = export_proto(&model, &ModelMetadata::default(), 17).unwrap();
    let mut ops: Vec<String> = m.graph.unwrap().node.into_iter().map(|n| n.op_type).collect();
    if ops.last().map(String::as_str) == Some("Identity") {
        ops.pop(); // the node that names the graph's output
    }
    ops
}

#[test]
fn gelu_exports_as_its_formula() {
    let dense = |a| LayerSpec::Dense(DenseConfig::new(3).with_activation(a));
    let exact = op_types(ModelSpec::new(&[4], vec![dense(Activation::Gelu)]));
    assert_eq!(exact, ["MatMul", "Add", "Mul", "Erf", "Add", "Mul", "Mul"]);
    let tanh = op_types(ModelSpec::new(&[4], vec![LayerSpec::activation(Activation::GeluApproximate)]));
    assert_eq!(tanh, ["Mul", "Mul", "Mul", "Add", "Mul", "Tanh", "Add", "Mul", "Mul"]);
}

#[test]
fn attention_layers_are_refused_by_name() {
    let model = Sequential::new(ModelSpec::gpt(10, 4, 8, 2, 1, 0.0).unwrap(), 0).unwrap();
    match export_proto(&model, &ModelMetadata::default(), 17) {
        Err(e @ OnnxError::Unsupported { .. }) => {
            let message = e.to_string();
            assert!(message.contains("PositionEmbedding") || message.contains("MultiHeadAttention"), "{message}");
        }
        other => panic!("expected an Unsupported error, got {other:?}"),
    }
}
