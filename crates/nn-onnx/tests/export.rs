//! The exporter without ONNX Runtime: the graph it writes decoded with prost (inputs,
//! outputs, the batch axis, operators, weights in ONNX's layout, metadata), the
//! padding rule, and the refusals (opset, metadata that does not fit).

use nn_data::Scaler;
use nn_layers::{InputSpec, LayerSpec, ModelSpec, NodeSpec, Sequential};
use nn_onnx::proto::{dimension, ModelProto, TensorProto};
use nn_onnx::{export, export_proto, resolve_pads, OnnxError};
use nn_train::ModelMetadata;
use prost::Message;

fn floats(t: &TensorProto) -> Vec<f32> {
    t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

fn dims(m: &ModelProto, output: bool) -> Vec<dimension::Value> {
    let g = m.graph.as_ref().unwrap();
    let v = if output { &g.output[0] } else { &g.input[0] };
    let t = v.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
    t.shape.as_ref().unwrap().dim.iter().map(|d| d.value.clone().unwrap()).collect()
}

#[test]
fn the_seed_cnn_decodes_to_the_expected_graph() {
    let model = Sequential::new(ModelSpec::seed_cnn(&[8, 8, 1], 10), 1).unwrap();
    let meta = ModelMetadata {
        class_names: Some((0..10).map(|c| format!("c{c}")).collect()),
        scalers: vec![Scaler::constant(0.0625, 0.0).unwrap()],
        ..Default::default()
    };
    let bytes = export(&model, &meta, 17).unwrap();
    let m = ModelProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(m.ir_version, 8);
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!((m.opset_import[0].domain.as_str(), m.opset_import[0].version), ("", 17));
    let names = m.metadata_props.iter().find(|p| p.key == "class_names").unwrap();
    assert_eq!(names.value, r#"["c0","c1","c2","c3","c4","c5","c6","c7","c8","c9"]"#);
    use dimension::Value::{DimParam, DimValue};
    assert_eq!(dims(&m, false), [DimParam("batch".into()), DimValue(8), DimValue(8), DimValue(1)]);
    assert_eq!(dims(&m, true), [DimParam("batch".into()), DimValue(10)]);
    let g = m.graph.as_ref().unwrap();
    assert_eq!(g.input[0].name, "input");
    assert_eq!(g.output[0].name, "output");
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(
        ops,
        [
            "Mul",
            "Add", // scaling
            "Transpose",
            "Conv",
            "Transpose",
            "Relu", // Conv2D
            "Transpose",
            "MaxPool",
            "Transpose", // MaxPool2D
            "Flatten",
            "MatMul",
            "Add",
            "Relu",
            "MatMul",
            "Add",
            "Softmax",
            "Identity"
        ]
    );
    // The scaling reads the graph input; the last node writes the graph output.
    assert_eq!(g.node[0].input[0], "input");
    assert_eq!(g.node.last().unwrap().output, ["output"]);
    // Conv's kernel in ONNX's [filters, channels, kh, kw] from nn's [kh, kw, c, f].
    let conv = g.node.iter().find(|n| n.op_type == "Conv").unwrap();
    let w = g.initializer.iter().find(|t| t.name == conv.input[1]).unwrap();
    assert_eq!(w.dims, [32, 1, 3, 3]);
    let kernel = model.parameter("layers.0.kernel").unwrap().value.to_vec(); // [3, 3, 1, 32]
    let onnx = floats(w);
    for (f, i, j) in [(0, 0, 0), (5, 1, 2), (31, 2, 1)] {
        assert_eq!(onnx[(f * 3 + i) * 3 + j], kernel[(i * 3 + j) * 32 + f], "filter {f} at ({i}, {j})");
    }
    let attr = |name: &str| conv.attribute.iter().find(|a| a.name == name).unwrap().ints.clone();
    assert_eq!(attr("pads"), [0, 0, 0, 0]);
    assert_eq!(attr("strides"), [1, 1]);
    // NHWC → NCHW before, back after.
    let perm = |k: usize| g.node[k].attribute[0].ints.clone();
    assert_eq!((perm(2), perm(4)), (vec![0, 3, 1, 2], vec![0, 2, 3, 1]));
    // The dense kernel goes in unchanged ([in, out], MatMul's right operand).
    let mm = g.node.iter().find(|n| n.op_type == "MatMul").unwrap();
    let k = g.initializer.iter().find(|t| t.name == mm.input[1]).unwrap();
    assert_eq!(k.dims, [288, 128]);
    assert_eq!(floats(k), model.parameter("layers.3.kernel").unwrap().value.to_vec());
}

#[test]
fn same_padding_is_resolved_as_nn_does() {
    use nn_layers::PaddingMode::{Same, Valid};
    // Stride 2 on an even size: out 4, total (4 − 1)·2 + 3 − 8 = 1, all of it after.
    assert_eq!(resolve_pads(Same, (8, 8), (3, 3), (2, 2)), [0, 0, 1, 1]);
    // Odd size: total 2, one on each side.
    assert_eq!(resolve_pads(Same, (7, 7), (3, 3), (2, 2)), [1, 1, 1, 1]);
    // An even kernel at stride 1: the extra row and column at the bottom and right.
    assert_eq!(resolve_pads(Same, (5, 6), (2, 4), (1, 1)), [0, 1, 1, 2]);
    assert_eq!(resolve_pads(Valid, (5, 6), (2, 4), (1, 1)), [0, 0, 0, 0]);
    // The stride-2 convolution of the resnet preset on MNIST: 28 → 14, total 1.
    let model = Sequential::new(ModelSpec::resnet(&[28, 28, 1], 10).unwrap(), 1).unwrap();
    let m = export_proto(&model, &ModelMetadata::default(), 17).unwrap();
    let g = m.graph.unwrap();
    let conv = g.node.iter().find(|n| n.name.starts_with("stage1_conv1/Conv")).unwrap();
    let pads = &conv.attribute.iter().find(|a| a.name == "pads").unwrap().ints;
    assert_eq!(pads, &[0, 0, 1, 1]);
}

#[test]
fn layer_normalization_below_opset_17_is_decomposed() {
    let spec = ModelSpec::new(&[4], vec![LayerSpec::LayerNormalization(Default::default())]);
    let model = Sequential::new(spec, 1).unwrap();
    let ops = |opset| -> Vec<String> {
        let m = export_proto(&model, &ModelMetadata::default(), opset).unwrap();
        m.graph.unwrap().node.into_iter().map(|n| n.op_type).collect()
    };
    assert_eq!(ops(17), ["LayerNormalization", "Identity"]);
    assert_eq!(ops(16), ["ReduceMean", "Sub", "Mul", "ReduceMean", "Add", "Sqrt", "Div", "Mul", "Add", "Identity"]);
}

#[test]
fn refusals_name_what_is_wrong_and_write_nothing() {
    let model = Sequential::new(ModelSpec::mlp(&[4], 3, 2, 0.0), 1).unwrap();
    let meta = ModelMetadata::default();
    for opset in [12, 18, -1] {
        let e = export(&model, &meta, opset).unwrap_err();
        assert!(matches!(e, OnnxError::Opset { opset: o } if o == opset), "{e}");
        assert!(e.to_string().contains("use 13 to 17"), "{e}");
    }
    // Scaling statistics that fit no trailing axes of the input.
    let bad = ModelMetadata {
        scalers: vec![Scaler::Standard { mean: vec![0.0; 3], std: vec![1.0; 3] }],
        ..Default::default()
    };
    let e = export(&model, &bad, 17).unwrap_err();
    assert!(matches!(e, OnnxError::Metadata(_)) && e.to_string().contains("3 statistics"), "{e}");
    // A target scaling for another number of outputs.
    let bad = ModelMetadata {
        target_scaler: Some(nn_data::TargetScaler { mean: vec![0.0; 3], std: vec![1.0; 3] }),
        ..Default::default()
    };
    let e = export(&model, &bad, 17).unwrap_err();
    assert!(e.to_string().contains("3 outputs"), "{e}");
    // Input scaling on a model with two inputs cannot be placed.
    let spec = ModelSpec::graph(
        vec![InputSpec { name: "a".into(), shape: vec![2] }, InputSpec { name: "b".into(), shape: vec![2] }],
        vec![NodeSpec::named("sum", LayerSpec::Add).with_inputs(["a", "b"])],
        vec![],
    );
    let two = Sequential::new(spec, 1).unwrap();
    let scaled = ModelMetadata { scalers: vec![Scaler::constant(2.0, 0.0).unwrap()], ..Default::default() };
    let e = export(&two, &scaled, 17).unwrap_err();
    assert!(e.to_string().contains("2 inputs"), "{e}");
    // Without scaling, a two-input graph exports with both inputs.
    let m = export_proto(&two, &ModelMetadata::default(), 17).unwrap();
    let g = m.graph.unwrap();
    assert_eq!(g.input.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    // The message of a layer refusal names the layer, its index and kind.
    let e = OnnxError::Unsupported { layer: "attn".into(), index: 3, kind: "Attention", reason: "no mapping".into() };
    assert_eq!(e.to_string(), "layer \"attn\" (index 3, Attention) cannot be exported to ONNX: no mapping");
}
