//! Import without Python: export then import gives the original's predictions (the
//! presets and a graph using every feedforward layer kind, with input and target
//! scaling), hand-built NCHW graphs import with their flatten order kept, and hostile
//! files give one error, never a panic or a huge allocation.

mod common;

use common::{digits, perturb, Lcg, IMAGE_GRAPH, SEQUENCE_GRAPH};
use nn_data::{Granularity, Scaler, TargetScaler};
use nn_layers::{ModelSpec, ParamKind, Sequential};
use nn_onnx::proto::{
    dimension, AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto, DATA_TYPE_FLOAT,
};
use nn_onnx::OnnxError;
use nn_tensor::Tensor;
use nn_train::ModelMetadata;

/// The round trip's bound (the issue's acceptance).
const ROUND_TRIP: f32 = 1e-6;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Exports `model` with `meta`, imports it, and returns the largest difference of
/// the predictions on `raw` (each side scaling the raw features with its metadata).
fn round_trip(model: &Sequential, meta: &ModelMetadata, raw: &Tensor<f32>, opset: i64) -> (f32, nn_onnx::Imported) {
    let bytes = nn_onnx::export(model, meta, opset).unwrap();
    let back = nn_onnx::import(&bytes).unwrap();
    let a = model.predict(&meta.scale(raw).unwrap()).unwrap().to_vec();
    let b = back.model.predict(&back.metadata.scale(raw).unwrap()).unwrap().to_vec();
    assert!(a.iter().any(|v| *v != 0.0));
    (max_diff(&a, &b), back)
}

/// SimpleRNN, GRU and LSTM with and without `return_sequences`, stacked and side by
/// side (ONNX's `RNN`, `GRU`, `LSTM` between `Transpose` and `Squeeze` nodes).
const RECURRENT_GRAPH: &str = r#"{
  "format_version": 2,
  "inputs": [{"name": "seq", "shape": [6, 3]}],
  "layers": [
    {"type": "SimpleRNN", "name": "rnn", "units": 4, "return_sequences": true},
    {"type": "GRU", "name": "gru", "units": 5, "return_sequences": true},
    {"type": "LSTM", "name": "lstm", "units": 3},
    {"type": "LSTM", "name": "lstm_seq", "units": 3, "return_sequences": true, "inputs": ["seq"]},
    {"type": "GRU", "name": "gru2", "units": 4},
    {"type": "SimpleRNN", "name": "rnn2", "units": 2, "inputs": ["seq"]},
    {"type": "GRU", "name": "gru_nobias", "units": 2, "use_bias": false, "inputs": ["seq"]},
    {"type": "Concatenate", "name": "cat", "inputs": ["lstm", "gru2", "rnn2", "gru_nobias"]},
    {"type": "Dense", "name": "out", "units": 3, "activation": "softmax"}
  ]
}"#;

/// Export → import of the presets and the every-layer graph, with the input
/// scaling the CLI saves: predictions within 1e-6 of the original's.
#[test]
fn round_trip_gives_the_original_predictions() {
    let data = digits(150);
    let raw = data.features();
    let standard = Scaler::fit_standard(&data, Granularity::PerFeature).unwrap();
    let per_channel = Scaler::fit_standard(&data, Granularity::PerChannel).unwrap();
    let constant = Scaler::constant(1.0 / 16.0, 0.0).unwrap();
    let classes = |scalers: Vec<Scaler>| ModelMetadata {
        data: "digits".into(),
        class_names: Some((0..10).map(|d| format!("digit {d}")).collect()),
        scalers,
        task: Some(nn_data::Task::Classification),
        ..Default::default()
    };
    let shape = [8, 8, 1];
    let cases: Vec<(&str, ModelSpec, ModelMetadata, i64)> = vec![
        ("mlp", ModelSpec::mlp(&shape, 32, 10, 0.2), classes(vec![standard.clone()]), 17),
        ("cnn", ModelSpec::seed_cnn(&shape, 10), classes(vec![constant.clone()]), 17),
        ("cnn_opset13", ModelSpec::seed_cnn(&shape, 10), classes(vec![standard.clone()]), 13),
        ("resnet", ModelSpec::resnet(&shape, 10).unwrap(), classes(vec![per_channel]), 17),
        ("lstm", ModelSpec::lstm_classifier(&shape, 16, 10).unwrap(), classes(vec![constant.clone()]), 17),
        ("lstm_opset13", ModelSpec::lstm_classifier(&shape, 16, 10).unwrap(), classes(vec![standard.clone()]), 13),
        ("all_layers", ModelSpec::from_json(IMAGE_GRAPH).unwrap(), classes(vec![constant.clone()]), 17),
        ("all_layers_plain", ModelSpec::from_json(IMAGE_GRAPH).unwrap(), classes(vec![]), 17),
        // Below opset 17 the LayerNormalization layers are decomposed; the importer
        // puts nn's own pattern back together.
        ("all_layers_opset13", ModelSpec::from_json(IMAGE_GRAPH).unwrap(), classes(vec![constant.clone()]), 13),
    ];
    for (k, (name, spec, meta, opset)) in cases.into_iter().enumerate() {
        let mut model = Sequential::new(spec, 11 + k as u64).unwrap();
        perturb(&mut model, 5 + k as u64);
        let (diff, back) = round_trip(&model, &meta, &raw, opset);
        println!("{name:<18} opset {opset}: max |original − imported| = {diff:.3e}");
        assert!(diff <= ROUND_TRIP, "{name}: {diff:e}");
        assert_eq!(back.metadata.class_names, meta.class_names, "{name}");
        assert_eq!(back.metadata.scalers.len(), meta.scalers.len(), "{name}");
        assert_eq!(back.metadata.task, Some(nn_data::Task::Classification), "{name}");
        assert_eq!(back.model.input_shape(), &shape, "{name}");
        let kinds = |m: &Sequential| -> Vec<&'static str> { m.spec().layers.iter().map(|l| l.layer.kind()).collect() };
        let count = |m: &Sequential, k: &str| kinds(m).iter().filter(|x| **x == k).count();
        assert_eq!(count(&back.model, "LayerNormalization"), count(&model, "LayerNormalization"), "{name}");
    }
}

/// Embedding + recurrent: the table comes back as an Embedding layer (same
/// values), the predictions within 1e-6 of the original's, at opsets 13 and 17.
#[test]
fn embedding_recurrent_round_trip() {
    let mut model = Sequential::new(ModelSpec::from_json(SEQUENCE_GRAPH).unwrap(), 6).unwrap();
    perturb(&mut model, 10);
    let mut rng = Lcg(3);
    let tokens: Vec<f32> = (0..120 * 6).map(|_| rng.uniform(0.0, 10.0).floor().min(9.0)).collect();
    let raw = Tensor::from_vec(&[120, 6], tokens);
    let meta = ModelMetadata { class_names: Some(vec!["a".into(), "b".into(), "c".into()]), ..Default::default() };
    for opset in [13, 17] {
        let (diff, back) = round_trip(&model, &meta, &raw, opset);
        println!("embedding+recurrent opset {opset}: max |original − imported| = {diff:.3e}");
        assert!(diff <= ROUND_TRIP, "{diff:e}");
        assert_eq!(back.model.input_shape(), &[6]);
        assert_eq!(back.metadata.class_names, meta.class_names);
        let emb = back.model.spec().layers.iter().find(|l| l.layer.kind() == "Embedding").expect("an Embedding");
        match &emb.layer {
            nn_layers::LayerSpec::Embedding(c) => assert_eq!((c.input_dim, c.output_dim), (10, 5)),
            other => panic!("{other:?}"),
        }
        let table = |m: &Sequential| -> Vec<f32> {
            m.parameters().iter().find(|p| p.kind == ParamKind::Embeddings).unwrap().value.to_vec()
        };
        assert_eq!(table(&back.model), table(&model));
        // Indices that are not whole numbers are refused, as by the original.
        let bad = Tensor::from_vec(&[1, 6], vec![0.5, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(model.predict(&bad).is_err() && back.model.predict(&bad).is_err());
    }
}

/// A regression model's target scaling comes back as metadata.
/// The recurrent layers' gate order, biases and sequence outputs come back.
#[test]
fn recurrent_round_trip() {
    let mut model = Sequential::new(ModelSpec::from_json(RECURRENT_GRAPH).unwrap(), 4).unwrap();
    perturb(&mut model, 8);
    let mut rng = Lcg(2);
    let raw = Tensor::from_vec(&[30, 6, 3], (0..30 * 18).map(|_| rng.uniform(-2.0, 2.0)).collect());
    for opset in [13, 17] {
        let (diff, back) = round_trip(&model, &ModelMetadata::default(), &raw, opset);
        println!("recurrent          opset {opset}: max |original − imported| = {diff:.3e}");
        assert!(diff <= ROUND_TRIP, "{diff:e}");
        let kinds: Vec<&str> = back.model.spec().layers.iter().map(|l| l.layer.kind()).collect();
        assert_eq!(kinds.iter().filter(|k| ["SimpleRNN", "GRU", "LSTM"].contains(k)).count(), 7, "{kinds:?}");
    }
}

#[test]
fn regression_round_trip_keeps_the_target_scaling() {
    let spec = ModelSpec::from_json(
        r#"{"input_shape": [5], "layers": [
            {"type": "Dense", "units": 12, "activation": "softplus"},
            {"type": "Dense", "units": 2}]}"#,
    )
    .unwrap();
    let mut model = Sequential::new(spec, 3).unwrap();
    perturb(&mut model, 9);
    let mut rng = Lcg(1);
    let raw = Tensor::from_vec(&[40, 5], (0..200).map(|_| rng.uniform(-3.0, 7.0)).collect());
    let ts = TargetScaler { mean: vec![10.0, -3.0], std: vec![2.5, 0.5] };
    let meta = ModelMetadata {
        scalers: vec![Scaler::Standard { mean: vec![1.0, 2.0, 0.5, -1.0, 3.0], std: vec![2.0, 1.0, 0.5, 4.0, 1.5] }],
        task: Some(nn_data::Task::Regression),
        target: Some("y".into()),
        target_scaler: Some(ts.clone()),
        ..Default::default()
    };
    let (diff, back) = round_trip(&model, &meta, &raw, 17);
    assert!(diff <= ROUND_TRIP, "{diff:e}");
    assert_eq!(back.metadata.target_scaler, Some(ts));
    assert_eq!(back.metadata.task, Some(nn_data::Task::Regression));
    assert_eq!(back.metadata.target.as_deref(), Some("y"));
    assert_eq!(back.metadata.class_names, None);
}

/// A CSV model's feature schema: three numeric columns and a categorical one of two
/// categories, five inputs.
fn csv_schema() -> nn_data::FeatureSchema {
    let mut schema = nn_data::FeatureSchema::numeric(["sepal_length", "sepal_width", "petal_length"]);
    schema.columns.push(nn_data::FeatureColumn {
        name: "colour".into(),
        kind: nn_data::ColumnKind::Categorical { categories: vec!["blue".into(), "red".into()] },
    });
    schema.missing = nn_data::Missing::Mean;
    schema
}

#[test]
fn round_trip_keeps_the_feature_schema_and_drops_local_paths() {
    let mut model = Sequential::new(ModelSpec::mlp(&[5], 8, 3, 0.0), 11).unwrap();
    perturb(&mut model, 4);
    let meta = ModelMetadata {
        data: "csv:/home/someone/secret/iris.csv".into(),
        target: Some("species".into()),
        class_names: Some(vec!["setosa".into(), "versicolor".into(), "virginica".into()]),
        scalers: vec![Scaler::Standard { mean: vec![5.8, 3.0, 3.7, 0.4, 0.6], std: vec![0.8, 0.4, 1.7, 0.5, 0.5] }],
        seed: 42,
        task: Some(nn_data::Task::Classification),
        features: Some(csv_schema()),
        delimiter: Some(";".into()),
        run: Some(serde_json::json!({"data": {"data": "csv:/home/someone/secret/iris.csv"}})),
        ..Default::default()
    };
    let proto = nn_onnx::export_proto(&model, &meta, 17).unwrap();
    let prop = |k: &str| proto.metadata_props.iter().find(|p| p.key == k).map(|p| p.value.clone());
    assert_eq!(prop("data").as_deref(), Some("csv:iris.csv"));
    assert!(proto.metadata_props.iter().all(|p| !p.value.contains("/home/someone")), "{:?}", proto.metadata_props);
    let saved: ModelMetadata = serde_json::from_str(&prop(nn_onnx::export::NN_METADATA_KEY).unwrap()).unwrap();
    assert_eq!(saved.features, meta.features);
    assert_eq!(saved.run, None);
    assert!(saved.scalers.is_empty(), "the scalers are nodes of the graph");

    let mut rng = Lcg(5);
    let raw = Tensor::from_vec(&[6, 5], (0..30).map(|_| rng.uniform(-1.0, 6.0)).collect());
    let (diff, back) = round_trip(&model, &meta, &raw, 17);
    assert!(diff <= ROUND_TRIP, "{diff:e}");
    let m = &back.metadata;
    assert_eq!(m.features, meta.features);
    assert_eq!(m.features.as_ref().unwrap().columns[3].name, "colour");
    assert_eq!(m.target.as_deref(), Some("species"));
    assert_eq!(m.task, Some(nn_data::Task::Classification));
    assert_eq!(m.class_names, meta.class_names);
    assert_eq!(m.delimiter.as_deref(), Some(";"));
    assert_eq!(m.seed, 42);
    // The scaling comes back from the graph's float32 nodes.
    match m.scalers.as_slice() {
        [Scaler::Standard { mean, std }] => {
            let want = [5.8, 3.0, 3.7, 0.4, 0.6, 0.8, 0.4, 1.7, 0.5, 0.5];
            assert!(mean.iter().chain(std).zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{mean:?} {std:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(m.data, "csv:iris.csv");
    assert_eq!(m.run, None);
    m.check(&back.model).unwrap();
}

#[test]
fn regression_round_trip_keeps_the_feature_schema() {
    let model = Sequential::new(ModelSpec::mlp(&[5], 6, 1, 0.0), 2).unwrap();
    let meta = ModelMetadata {
        data: "csv:houses.csv".into(),
        target: Some("price".into()),
        task: Some(nn_data::Task::Regression),
        features: Some(csv_schema()),
        target_scaler: Some(TargetScaler { mean: vec![250.0], std: vec![40.0] }),
        ..Default::default()
    };
    let back = nn_onnx::import(&nn_onnx::export(&model, &meta, 17).unwrap()).unwrap();
    assert_eq!(back.metadata.features, meta.features);
    assert_eq!(back.metadata.target.as_deref(), Some("price"));
    assert_eq!(back.metadata.task, Some(nn_data::Task::Regression));
    assert_eq!(back.metadata.target_scaler, meta.target_scaler);
    assert_eq!(back.metadata.class_names, None);
    assert_eq!(back.metadata.data, "csv:houses.csv");
}

#[test]
fn nn_metadata_is_read_only_from_nn_files_and_checked() {
    let model = Sequential::new(ModelSpec::mlp(&[5], 4, 2, 0.0), 1).unwrap();
    let meta = ModelMetadata { features: Some(csv_schema()), target: Some("t".into()), ..Default::default() };
    let mut proto = nn_onnx::export_proto(&model, &meta, 17).unwrap();

    // A foreign producer: the nn metadata is not trusted, the data gets a clear name.
    let mut foreign = proto.clone();
    foreign.producer_name = "pytorch".into();
    foreign.metadata_props.retain(|p| p.key != "data");
    let back = nn_onnx::import_proto(&foreign).unwrap();
    assert_eq!(back.metadata.features, None);
    assert_eq!(back.metadata.data, "imported ONNX model");
    assert_eq!(back.metadata.data, nn_onnx::import::FOREIGN_DATA);

    // Columns that do not fit the model's input are left out with a note.
    let mut wide = meta.clone();
    wide.features
        .as_mut()
        .unwrap()
        .columns
        .push(nn_data::FeatureColumn { name: "extra".into(), kind: nn_data::ColumnKind::Numeric });
    let json = serde_json::to_string(&wide).unwrap();
    proto.metadata_props.iter_mut().find(|p| p.key == nn_onnx::export::NN_METADATA_KEY).unwrap().value = json;
    let back = nn_onnx::import_proto(&proto).unwrap();
    assert_eq!(back.metadata.features, None);
    assert!(back.notes.iter().any(|n| n.contains("encoding to 6 inputs, the model takes 5")), "{:?}", back.notes);
    assert_eq!(back.metadata.target.as_deref(), Some("t"));

    // Malformed JSON: a note, the rest of the import unharmed.
    proto.metadata_props.iter_mut().find(|p| p.key == nn_onnx::export::NN_METADATA_KEY).unwrap().value = "{".into();
    let back = nn_onnx::import_proto(&proto).unwrap();
    assert_eq!(back.metadata.features, None);
    assert!(back.notes.iter().any(|n| n.contains("is not nn's metadata")), "{:?}", back.notes);
}

#[test]
fn portable_data_names_keep_only_the_file_name() {
    use nn_onnx::export::portable_data_name as p;
    assert_eq!(p("csv:/work/x/iris.csv"), "csv:iris.csv");
    assert_eq!(p("csv:iris.csv"), "csv:iris.csv");
    assert_eq!(p("mnist:/data/mnist"), "mnist:mnist");
    assert_eq!(p("digits"), "digits");
    assert_eq!(p("adding:50"), "adding:50");
    assert_eq!(p(""), "");
}

#[test]
fn supported_operators_are_alphabetical() {
    let ops = nn_onnx::SUPPORTED_OPERATORS;
    assert!(ops.windows(2).all(|w| w[0].to_lowercase() < w[1].to_lowercase()), "{ops:?}");
    assert!(ops.contains(&"GRU") && ops.contains(&"LSTM"));
}

// ---- hand-built graphs -------------------------------------------------------

fn info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let mut dim = vec![Dimension { value: Some(dimension::Value::DimParam("N".into())), denotation: String::new() }];
    dim.extend(
        dims.iter().map(|&d| Dimension { value: Some(dimension::Value::DimValue(d)), denotation: String::new() }),
    );
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor { elem_type: DATA_TYPE_FLOAT, shape: Some(TensorShapeProto { dim }) }),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: format!("{op}_{output}"),
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, input: ValueInfoProto, output: ValueInfoProto) -> ModelProto {
    ModelProto {
        ir_version: 8,
        producer_name: "test".into(),
        graph: Some(GraphProto {
            node: nodes,
            name: "g".into(),
            initializer: inits,
            input: vec![input],
            output: vec![output],
            ..Default::default()
        }),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        ..Default::default()
    }
}

/// Conv (NCHW, pads 1) → Relu → MaxPool → Flatten → Gemm (transB) as PyTorch writes a
/// small CNN: nn's output equals a direct NCHW computation of the same graph, which
/// needs the Gemm's rows permuted from C,H,W to nn's H,W,C order.
#[test]
fn nchw_cnn_keeps_the_flatten_order() {
    let mut rng = Lcg(7);
    let (c, f, h, w, classes) = (2usize, 3usize, 4usize, 4usize, 5usize);
    let wconv: Vec<f32> = (0..f * c * 9).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let bconv: Vec<f32> = (0..f).map(|_| rng.uniform(-0.5, 0.5)).collect();
    let k = f * (h / 2) * (w / 2);
    let wfc: Vec<f32> = (0..classes * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let bfc: Vec<f32> = (0..classes).map(|_| rng.uniform(-0.5, 0.5)).collect();
    let m = model(
        vec![
            node(
                "Conv",
                &["x", "w", "b"],
                "c",
                vec![AttributeProto::ints("pads", &[1, 1, 1, 1]), AttributeProto::ints("kernel_shape", &[3, 3])],
            ),
            node("Relu", &["c"], "r", vec![]),
            node(
                "MaxPool",
                &["r"],
                "p",
                vec![AttributeProto::ints("kernel_shape", &[2, 2]), AttributeProto::ints("strides", &[2, 2])],
            ),
            node("Flatten", &["p"], "fl", vec![AttributeProto::int("axis", 1)]),
            node("Gemm", &["fl", "wfc", "bfc"], "y", vec![AttributeProto::int("transB", 1)]),
        ],
        vec![
            TensorProto::float("w", &[f, c, 3, 3], &wconv),
            TensorProto::float("b", &[f], &bconv),
            TensorProto::float("wfc", &[classes, k], &wfc),
            TensorProto::float("bfc", &[classes], &bfc),
        ],
        info("x", &[c as i64, h as i64, w as i64]),
        info("y", &[classes as i64]),
    );
    let back = nn_onnx::import_proto(&m).unwrap();
    assert_eq!(back.model.input_shape(), &[h, w, c]);
    assert!(back.notes.iter().any(|n| n.contains("NCHW")), "{:?}", back.notes);
    // Reference: the graph computed directly on NCHW arrays.
    let n = 3;
    let x: Vec<f32> = (0..n * c * h * w).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let mut want = Vec::new();
    for s in 0..n {
        let xs = &x[s * c * h * w..(s + 1) * c * h * w];
        let mut conv = vec![0f32; f * h * w];
        for fo in 0..f {
            for i in 0..h {
                for j in 0..w {
                    let mut acc = bconv[fo];
                    for ci in 0..c {
                        for a in 0..3 {
                            for b in 0..3 {
                                let (ii, jj) = (i as i64 + a as i64 - 1, j as i64 + b as i64 - 1);
                                if ii >= 0 && jj >= 0 && ii < h as i64 && jj < w as i64 {
                                    acc += wconv[((fo * c + ci) * 3 + a) * 3 + b]
                                        * xs[(ci * h + ii as usize) * w + jj as usize];
                                }
                            }
                        }
                    }
                    conv[(fo * h + i) * w + j] = acc.max(0.0);
                }
            }
        }
        let mut pooled = Vec::new(); // C, H, W order: ONNX's Flatten
        for fo in 0..f {
            for i in 0..h / 2 {
                for j in 0..w / 2 {
                    let v = [(0, 0), (0, 1), (1, 0), (1, 1)]
                        .iter()
                        .map(|&(a, b)| conv[(fo * h + 2 * i + a) * w + 2 * j + b])
                        .fold(f32::NEG_INFINITY, f32::max);
                    pooled.push(v);
                }
            }
        }
        for o in 0..classes {
            want.push(bfc[o] + (0..k).map(|q| wfc[o * k + q] * pooled[q]).sum::<f32>());
        }
    }
    // nn reads NHWC.
    let mut nhwc = vec![0f32; x.len()];
    for s in 0..n {
        for ci in 0..c {
            for i in 0..h {
                for j in 0..w {
                    nhwc[((s * h + i) * w + j) * c + ci] = x[((s * c + ci) * h + i) * w + j];
                }
            }
        }
    }
    let got = back.model.predict(&Tensor::from_vec(&[n, h, w, c], nhwc)).unwrap().to_vec();
    let d = max_diff(&got, &want);
    assert!(d < 1e-5, "max difference {d:e}");
}

/// PyTorch's `x.view(x.size(0), -1)`: `Shape`, `Gather` of the batch axis,
/// `Unsqueeze`, `Concat` with `[-1]`, then `Reshape`: folded to a Reshape; the
/// `MatMul` after it sees the elements in ONNX's order.
#[test]
fn shape_chains_before_reshape_are_folded() {
    let mut rng = Lcg(4);
    let wv: Vec<f32> = (0..6 * 2).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let scalar = |name: &str, v: i64| NodeProto {
        output: vec![name.into()],
        name: name.into(),
        op_type: "Constant".into(),
        attribute: vec![AttributeProto::int("value_int", v)],
        ..Default::default()
    };
    let nodes = vec![
        node("Shape", &["x"], "shape", vec![]),
        scalar("zero", 0),
        node("Gather", &["shape", "zero"], "batch", vec![AttributeProto::int("axis", 0)]),
        node("Unsqueeze", &["batch", "axes0"], "batch1", vec![]),
        node("Concat", &["batch1", "minus_one"], "target", vec![AttributeProto::int("axis", 0)]),
        node("Reshape", &["x", "target"], "flat", vec![]),
        node("MatMul", &["flat", "w"], "y", vec![]),
    ];
    let inits = vec![
        TensorProto::int64s("axes0", &[0]),
        TensorProto::int64s("minus_one", &[-1]),
        TensorProto::float("w", &[6, 2], &wv),
    ];
    let m = model(nodes, inits, info("x", &[2, 3]), info("y", &[2]));
    let back = nn_onnx::import(&m.to_bytes()).unwrap();
    let kinds: Vec<&str> = back.model.spec().layers.iter().map(|l| l.layer.kind()).collect();
    assert_eq!(kinds, ["Reshape", "Dense"]);
    let x: Vec<f32> = (0..7 * 6).map(|_| rng.uniform(-2.0, 2.0)).collect();
    let got = back.model.predict(&Tensor::from_vec(&[7, 2, 3], x.clone())).unwrap().to_vec();
    let want: Vec<f32> = (0..7)
        .flat_map(|s| {
            let x = &x;
            let wv = &wv;
            (0..2).map(move |j| (0..6).map(|i| x[s * 6 + i] * wv[i * 2 + j]).sum::<f32>())
        })
        .collect();
    let diff = max_diff(&got, &want);
    println!("shape chain + MatMul: max |nn − direct| = {diff:.3e}");
    assert!(diff <= 1e-6, "{diff:e}");
    // The batch size on another axis is refused, naming the node.
    let mut m = m;
    let g = m.graph.as_mut().unwrap();
    g.node[4].input = vec!["minus_one".into(), "batch1".into()];
    let e = import_err(&m.to_bytes());
    assert!(e.contains("(Reshape) cannot be imported: the batch size on an axis other than the first"), "{e}");
}

/// nn's LayerNormalization below opset 17 comes back only from the exporter's
/// exact pattern: with a constant renamed it is refused, naming `Sqrt`.
#[test]
fn decomposed_layer_norm_outside_the_pattern_is_refused() {
    let spec = ModelSpec::from_json(
        r#"{"input_shape": [5], "layers": [
            {"type": "Dense", "units": 4}, {"type": "LayerNormalization", "name": "ln"}, {"type": "Dense", "units": 2}]}"#,
    )
    .unwrap();
    let mut model = Sequential::new(spec, 2).unwrap();
    perturb(&mut model, 3);
    let mut rng = Lcg(5);
    let raw = Tensor::from_vec(&[20, 5], (0..100).map(|_| rng.uniform(-2.0, 2.0)).collect());
    let (diff, back) = round_trip(&model, &ModelMetadata::default(), &raw, 13);
    assert!(diff <= ROUND_TRIP, "{diff:e}");
    let kinds: Vec<&str> = back.model.spec().layers.iter().map(|l| l.layer.kind()).collect();
    assert_eq!(kinds, ["Dense", "LayerNormalization", "Dense"]);
    let mut m = nn_onnx::export_proto(&model, &ModelMetadata::default(), 13).unwrap();
    let g = m.graph.as_mut().unwrap();
    for t in &mut g.initializer {
        if t.name == "ln/epsilon" {
            t.name = "ln/eps".into();
        }
    }
    for n in &mut g.node {
        for i in &mut n.input {
            if i == "ln/epsilon" {
                *i = "ln/eps".into();
            }
        }
    }
    let e = import_err(&m.to_bytes());
    assert!(e.starts_with("unsupported ONNX operators: Sqrt; "), "{e}");
}

// ---- errors and hostile files --------------------------------------------------

fn mlp_bytes() -> Vec<u8> {
    let model = Sequential::new(ModelSpec::mlp(&[4], 8, 3, 0.0), 1).unwrap();
    nn_onnx::export(&model, &ModelMetadata::default(), 17).unwrap()
}

fn import_err(bytes: &[u8]) -> String {
    match nn_onnx::import(bytes) {
        Ok(_) => panic!("imported"),
        Err(e) => {
            let s = e.to_string();
            assert!(!s.contains('\n'), "one line: {s}");
            s
        }
    }
}

#[test]
fn unsupported_operators_are_listed_by_name_in_one_error() {
    let mut m = ModelProto::decode_bytes(&mlp_bytes());
    let g = m.graph.as_mut().unwrap();
    g.node.push(node("Sqrt", &["output"], "z", vec![]));
    g.node.push(node("Erf", &["z"], "z2", vec![]));
    let e = nn_onnx::import(&m.to_bytes()).unwrap_err();
    assert!(matches!(&e, OnnxError::UnsupportedOperators(ops) if ops == &["Erf", "Sqrt"]), "{e}");
    assert!(e.to_string().starts_with("unsupported ONNX operators: Erf, Sqrt; nn imports Add, "), "{e}");

    let mut m = ModelProto::decode_bytes(&mlp_bytes());
    let g = m.graph.as_mut().unwrap();
    g.node.push(node("FancyOp", &["output"], "z", vec![]));
    g.node.push(node("Erf", &["output"], "z2", vec![]));
    g.node.push(node("FancyOp", &["z"], "z3", vec![]));
    let e = import_err(&m.to_bytes());
    assert!(e.starts_with("unsupported ONNX operators: Erf, FancyOp; "), "{e}");
}

/// Decoding helper for the tests.
trait DecodeBytes {
    fn decode_bytes(b: &[u8]) -> Self;
}
impl DecodeBytes for ModelProto {
    fn decode_bytes(b: &[u8]) -> Self {
        prost::Message::decode(b).unwrap()
    }
}

#[test]
fn hostile_files_give_one_error_line() {
    let good = mlp_bytes();
    assert!(nn_onnx::import(&good).is_ok());
    // Empty, wrong magic (a PNG header, text), truncated at every length.
    assert!(import_err(b"").contains("empty"));
    import_err(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    import_err(b"{\"format_version\": 2}");
    for cut in (1..good.len()).step_by(7) {
        let _ = nn_onnx::import(&good[..cut]).map_err(|e| assert!(!e.to_string().contains('\n')));
    }
    // Every byte flipped in turn: an error or a model, never a panic.
    for k in 0..good.len().min(3000) {
        let mut b = good.clone();
        b[k] ^= 0xa5;
        let _ = nn_onnx::import(&b);
    }

    // A tensor claiming 2^40 elements with 16 bytes of data.
    let mut m = ModelProto::decode_bytes(&good);
    let t = &mut m.graph.as_mut().unwrap().initializer[0];
    t.dims = vec![1 << 20, 1 << 20];
    let e = import_err(&m.to_bytes());
    assert!(e.contains("needs 1099511627776 values"), "{e}");
    // Dims whose product overflows, and a negative one.
    t_dims(&good, vec![i64::MAX, i64::MAX], "too large");
    t_dims(&good, vec![-4], "negative");
    // raw_data shorter than the shape says.
    let mut m = ModelProto::decode_bytes(&good);
    let t = &mut m.graph.as_mut().unwrap().initializer[0];
    t.raw_data.truncate(t.raw_data.len() - 4);
    assert!(import_err(&m.to_bytes()).contains("bytes"));

    // A cycle: the first node reads the last node's output.
    let mut m = ModelProto::decode_bytes(&good);
    let g = m.graph.as_mut().unwrap();
    let last = g.node.last().unwrap().output[0].clone();
    g.node[0].input[0] = last;
    let e = import_err(&m.to_bytes());
    assert!(e.contains("cycle"), "{e}");
    // A value read but never written.
    let mut m = ModelProto::decode_bytes(&good);
    m.graph.as_mut().unwrap().node[1].input[0] = "nowhere".into();
    assert!(import_err(&m.to_bytes()).contains("nowhere"));
    // Huge input dims.
    let mut m = ModelProto::decode_bytes(&good);
    m.graph.as_mut().unwrap().input[0] = info("input", &[1 << 40, 1 << 40]);
    import_err(&m.to_bytes());
    let mut m = ModelProto::decode_bytes(&good);
    m.graph.as_mut().unwrap().input[0] = info("input", &[1 << 30, 1 << 30, 1 << 30]);
    import_err(&m.to_bytes());
    // Opset outside the range, no graph.
    let mut m = ModelProto::decode_bytes(&good);
    m.opset_import[0].version = 9;
    assert!(import_err(&m.to_bytes()).contains("opset 9"));
    let mut m = ModelProto::decode_bytes(&good);
    m.graph = None;
    assert!(import_err(&m.to_bytes()).contains("no graph"));
    // A Max without inputs (found by the fuzzer: it panicked once).
    let mut m = ModelProto::decode_bytes(&good);
    m.graph.as_mut().unwrap().node.push(NodeProto {
        output: vec!["m".into()],
        op_type: "Max".into(),
        name: "empty_max".into(),
        ..Default::default()
    });
    let e = import_err(&m.to_bytes());
    assert!(e.contains("node \"empty_max\" (Max) cannot be imported: has no input"), "{e}");
    // Concats of constants doubling a shape 40 times: refused before allocating.
    let mut m = ModelProto::decode_bytes(&good);
    let g = m.graph.as_mut().unwrap();
    g.initializer.push(TensorProto::int64s("c0", &[1, 2, 3, 4]));
    for k in 0..40 {
        let (a, b) = (format!("c{k}"), format!("c{}", k + 1));
        g.node.push(node("Concat", &[&a, &a], &b, vec![AttributeProto::int("axis", 0)]));
    }
    let e = import_err(&m.to_bytes());
    assert!(e.contains("(Concat) cannot be imported: the model would need more than"), "{e}");
    // A grouped convolution names the node and the setting.
    let cnn = Sequential::new(ModelSpec::seed_cnn(&[8, 8, 1], 3), 1).unwrap();
    let mut m = nn_onnx::export_proto(&cnn, &ModelMetadata::default(), 17).unwrap();
    let conv = m.graph.as_mut().unwrap().node.iter_mut().find(|n| n.op_type == "Conv").unwrap();
    conv.attribute.iter_mut().find(|a| a.name == "group").unwrap().i = 2;
    let e = import_err(&m.to_bytes());
    assert!(e.contains("(Conv) cannot be imported: group = 2"), "{e}");
}

fn t_dims(good: &[u8], dims: Vec<i64>, want: &str) {
    let mut m = ModelProto::decode_bytes(good);
    m.graph.as_mut().unwrap().initializer[0].dims = dims;
    let e = import_err(&m.to_bytes());
    assert!(e.contains(want), "{e}");
}
