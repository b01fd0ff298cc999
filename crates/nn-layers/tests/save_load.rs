//! Saving and loading: bit-identical round trips (BatchNorm statistics included),
//! atomic writes, and clear errors for bad files.

use std::collections::HashMap;
use std::path::Path;

use nn_layers::{
    Activation, ForwardCtx, Graph, LayerError, LayerSpec, Mode, ModelSpec, Sequential, Tensor, MODEL_FILE, WEIGHTS_FILE,
};
use nn_tensor::random::seeded_rng;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

/// A model with every kind of state: conv, BatchNorm (NHWC), dropout, dense.
fn model() -> Sequential<f32> {
    let spec = ModelSpec::new(
        &[8, 8, 1],
        vec![
            LayerSpec::conv2d(4, 3, Activation::Relu),
            LayerSpec::batch_norm(),
            LayerSpec::max_pool(2),
            LayerSpec::Flatten,
            LayerSpec::dropout(0.3),
            LayerSpec::dense(5, Activation::Softmax),
        ],
    );
    let mut m = Sequential::<f32>::new(spec, 17).unwrap();
    // A few training forward passes so the moving statistics differ from their
    // initial values.
    for step in 0..3 {
        let mut g = Graph::<f32>::new();
        let xv = g.input(Tensor::random_normal(&[4, 8, 8, 1], 0.5, 2.0, &mut seeded_rng(step)).unwrap());
        let mut rng = seeded_rng(100 + step);
        let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
        m.forward(&mut g, xv, &mut ctx).unwrap();
        let updates = std::mem::take(&mut ctx.state_updates);
        drop(g);
        m.apply_state_updates(updates).unwrap();
    }
    assert_ne!(m.parameter("layers.1.moving_mean").unwrap().value.to_vec(), vec![0.0; 4]);
    m
}

fn batch() -> Tensor<f32> {
    Tensor::random_normal(&[6, 8, 8, 1], 0.0, 1.0, &mut seeded_rng(99)).unwrap()
}

#[test]
fn round_trip_gives_bit_identical_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run/model"); // created on save
    let m = model();
    let meta = serde_json::json!({"class_names": ["a", "b", "c", "d", "e"], "scale": [0.5, 2.0]});
    m.save_with_metadata(&out, &meta).unwrap();
    assert!(out.join(MODEL_FILE).is_file() && out.join(WEIGHTS_FILE).is_file());
    // Only the two files: no temporary file left behind.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);

    let (loaded, meta_back) = Sequential::<f32>::load(&out).unwrap();
    assert_eq!(meta_back, meta);
    assert_eq!(loaded.spec(), m.spec());
    assert_eq!(loaded.parameters(), m.parameters());
    let (a, b) = (m.predict(&batch()).unwrap(), loaded.predict(&batch()).unwrap());
    let bits = |t: &Tensor<f32>| t.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));

    // model.json carries the format version, the spec and the metadata.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(MODEL_FILE)).unwrap()).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["model"]["layers"][1]["type"], "BatchNormalization");
    assert_eq!(json["metadata"]["scale"][1], 2.0);

    // Saving again over the old files replaces them atomically.
    m.save(&out).unwrap();
    assert_eq!(Sequential::<f32>::load(&out).unwrap().1, serde_json::Value::Null);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
}

#[test]
fn weights_file_holds_every_parameter_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let m = model();
    m.save_weights(&path).unwrap();
    let data = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&data).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        [
            "layers.0.bias",
            "layers.0.kernel",
            "layers.1.beta",
            "layers.1.gamma",
            "layers.1.moving_mean",
            "layers.1.moving_variance",
            "layers.5.bias",
            "layers.5.kernel",
        ]
    );
    let k = st.tensor("layers.0.kernel").unwrap();
    assert_eq!(k.dtype(), Dtype::F32);
    assert_eq!(k.shape(), [3, 3, 1, 4]);
    let first = f32::from_le_bytes(k.data()[..4].try_into().unwrap());
    assert_eq!(first, m.parameter("layers.0.kernel").unwrap().value.to_vec()[0]);
    // load_weights into a freshly initialised model restores everything.
    let mut other = Sequential::<f32>::new(m.spec().clone(), 12345).unwrap();
    assert_ne!(other.parameters(), m.parameters());
    other.load_weights(&path).unwrap();
    assert_eq!(other.parameters(), m.parameters());
}

/// Writes a safetensors file holding `tensors` (name, dtype, shape, bytes).
fn write_file(path: &Path, tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView<'_>)> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// The model's parameters as (name, dtype, shape, bytes), for editing.
fn tensors_of(m: &Sequential<f32>) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    m.parameters()
        .iter()
        .map(|p| {
            let bytes = p.value.to_vec().iter().flat_map(|v| v.to_le_bytes()).collect();
            (p.name.clone(), Dtype::F32, p.shape().to_vec(), bytes)
        })
        .collect()
}

#[test]
fn bad_weight_files_are_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    let mut m = model();
    let before = m.parameters().to_vec();
    let good = tensors_of(&m);

    // Wrong name (a misspelling): the missing name and the file's odd one are reported.
    let mut t = good.clone();
    t[0].0 = "layers.0.kernal".into();
    write_file(&path, &t);
    assert_eq!(
        m.load_weights(&path).unwrap_err(),
        LayerError::MissingWeight {
            path: path.clone(),
            name: "layers.0.kernel".into(),
            unexpected: vec!["layers.0.kernal".into()]
        }
    );
    // An extra tensor.
    let mut t = good.clone();
    t.push(("layers.9.kernel".into(), Dtype::F32, vec![1], vec![0; 4]));
    write_file(&path, &t);
    assert_eq!(
        m.load_weights(&path).unwrap_err(),
        LayerError::UnexpectedWeight { path: path.clone(), name: "layers.9.kernel".into() }
    );
    // Wrong shape (same element count, transposed).
    let mut t = good.clone();
    let k = t.iter().position(|x| x.0 == "layers.5.kernel").unwrap();
    t[k].2.reverse();
    write_file(&path, &t);
    let err = m.load_weights(&path).unwrap_err();
    assert_eq!(
        err,
        LayerError::WeightShape {
            path: path.clone(),
            name: "layers.5.kernel".into(),
            expected: vec![36, 5],
            got: vec![5, 36]
        }
    );
    assert!(err.to_string().contains("weight \"layers.5.kernel\" has shape [5, 36], the model expects [36, 5]"));
    // Wrong dtype: f64 values where the model holds f32.
    let mut t = good.clone();
    t[1].1 = Dtype::F64;
    t[1].3 = t[1].3.iter().flat_map(|&b| [b, 0]).collect(); // twice the bytes
    write_file(&path, &t);
    let err = m.load_weights(&path).unwrap_err();
    assert_eq!(
        err,
        LayerError::WeightDType {
            path: path.clone(),
            name: "layers.0.bias".into(),
            expected: "f32".into(),
            got: "f64".into()
        }
    );
    // A truncated file.
    m.save_weights(&path).unwrap();
    let data = std::fs::read(&path).unwrap();
    std::fs::write(&path, &data[..data.len() - 10]).unwrap();
    let err = m.load_weights(&path).unwrap_err();
    assert!(matches!(&err, LayerError::Format { message, .. } if message.contains("truncated")), "{err}");
    std::fs::write(&path, b"not safetensors").unwrap();
    assert!(matches!(m.load_weights(&path).unwrap_err(), LayerError::Format { .. }));
    // A missing file.
    let err = m.load_weights(&dir.path().join("nope.safetensors")).unwrap_err();
    assert!(matches!(&err, LayerError::Io { message, .. } if message.starts_with("reading")), "{err}");
    assert!(err.to_string().contains("nope.safetensors"));

    assert_eq!(m.parameters(), &before[..], "failed loads leave the model untouched");
}

#[test]
fn an_f64_model_refuses_f32_weights() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let spec = ModelSpec::new(&[3], vec![LayerSpec::dense(2, Activation::Linear)]);
    Sequential::<f32>::new(spec.clone(), 0).unwrap().save_weights(&path).unwrap();
    let mut m64 = Sequential::<f64>::new(spec, 0).unwrap();
    let err = m64.load_weights(&path).unwrap_err();
    assert!(
        matches!(&err, LayerError::WeightDType { expected, got, .. } if expected == "f64" && got == "f32"),
        "{err}"
    );
}

#[test]
fn bad_model_json_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let m = model();
    m.save(out).unwrap();
    let json_path = out.join(MODEL_FILE);
    let original = std::fs::read_to_string(&json_path).unwrap();
    let cases: HashMap<&str, String> = HashMap::from([
        ("not valid JSON", "{".to_string()),
        ("no \"format_version\"", original.replace("\"format_version\": 1,", "")),
        ("format_version 7 is not supported", original.replacen("\"format_version\": 1", "\"format_version\": 7", 1)),
        ("unknown field `optimiser`", original.replacen('{', "{\"optimiser\": \"adam\",", 1)),
        ("unknown variant `Dense3D`", original.replace("\"type\": \"Dense\"", "\"type\": \"Dense3D\"")),
    ]);
    for (want, text) in cases {
        std::fs::write(&json_path, text).unwrap();
        let err = Sequential::<f32>::load(out).unwrap_err();
        assert!(matches!(err, LayerError::Format { .. }), "{err}");
        assert!(err.to_string().contains(want), "{want}: {err}");
        assert!(err.to_string().contains(MODEL_FILE));
    }
    // A model.json whose architecture does not match the weights: the weights are checked.
    let other = ModelSpec::new(&[8, 8, 1], vec![LayerSpec::Flatten, LayerSpec::dense(5, Activation::Softmax)]);
    std::fs::write(&json_path, serde_json::json!({"format_version": 1, "model": other}).to_string()).unwrap();
    assert!(matches!(Sequential::<f32>::load(out).unwrap_err(), LayerError::MissingWeight { .. }));
    let err = Sequential::<f32>::load(&out.join("missing")).unwrap_err();
    assert!(matches!(err, LayerError::Io { .. }), "{err}");
}

/// The model pair protocol, each state a crash can leave checked by hand: a save cut
/// short before its commit point (staged weights, old model.json) loads the old pair;
/// after it (new model.json, staged weights not yet moved) the new pair; weights of
/// another save beside a model.json are refused; `complete_interrupted_save` finishes
/// or discards the staged file.
#[test]
fn model_and_weights_are_published_as_a_pair() {
    use nn_layers::{complete_interrupted_save, saved_weights_path, InterruptedSave, WEIGHTS_STAGED_FILE};
    let spec = ModelSpec::mlp(&[4], 8, 3, 0.0);
    let (a, b) = (Sequential::<f32>::new(spec.clone(), 1).unwrap(), Sequential::<f32>::new(spec, 2).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    a.save(&da).unwrap();
    b.save(&db).unwrap();
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    let params = |d: &Path| Sequential::<f32>::load(d).map(|(m, _)| m.parameters().to_vec());

    // Before the commit point: a's pair, with b's weights staged.
    let out = dir.path().join("out");
    a.save(&out).unwrap();
    std::fs::write(out.join(WEIGHTS_STAGED_FILE), read(&db, WEIGHTS_FILE)).unwrap();
    assert_eq!(params(&out).unwrap(), a.parameters());
    assert_eq!(saved_weights_path(&out), out.join(WEIGHTS_FILE));
    assert_eq!(complete_interrupted_save(&out).unwrap(), InterruptedSave::Discarded);
    assert!(!out.join(WEIGHTS_STAGED_FILE).exists());
    assert_eq!(params(&out).unwrap(), a.parameters());

    // After it: b's model.json names the staged weights; a's are still in place.
    std::fs::write(out.join(WEIGHTS_STAGED_FILE), read(&db, WEIGHTS_FILE)).unwrap();
    std::fs::write(out.join(MODEL_FILE), read(&db, MODEL_FILE)).unwrap();
    assert_eq!(params(&out).unwrap(), b.parameters());
    assert_eq!(saved_weights_path(&out), out.join(WEIGHTS_STAGED_FILE));
    assert_eq!(complete_interrupted_save(&out).unwrap(), InterruptedSave::Completed);
    assert_eq!(read(&out, WEIGHTS_FILE), read(&db, WEIGHTS_FILE));
    assert_eq!(params(&out).unwrap(), b.parameters());
    assert_eq!(complete_interrupted_save(&out).unwrap(), InterruptedSave::None);

    // Weights of another save beside this model.json: refused, naming both files.
    std::fs::write(out.join(WEIGHTS_FILE), read(&da, WEIGHTS_FILE)).unwrap();
    let err = params(&out).unwrap_err().to_string();
    assert!(err.contains("weights.safetensors: does not match model.json"), "{err}");
}
