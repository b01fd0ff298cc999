//! `load_model` refuses a model folder whose metadata does not fit the model, or whose
//! weights are not finite, with one message naming the field or tensor.

use nn_layers::{ModelSpec, Sequential};
use nn_train::{load_model, ModelMetadata};

fn saved(meta: &ModelMetadata, poison: bool) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    // 4 inputs → 3 outputs.
    let mut model = Sequential::new(ModelSpec::mlp(&[4], 5, 3, 0.0), 1).unwrap();
    if poison {
        let p = &mut model.parameters_mut()[2];
        let mut v = p.value.to_vec();
        v[1] = f32::NAN;
        p.value = std::sync::Arc::new(nn_tensor::Tensor::from_vec(p.value.shape(), v));
    }
    model.save_with_metadata(dir.path(), meta).unwrap();
    let err = match load_model(dir.path()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    (dir, err)
}

#[test]
fn metadata_that_does_not_fit_the_model_is_refused() {
    let good = ModelMetadata {
        class_names: Some(vec!["a".into(), "b".into(), "c".into()]),
        features: Some(nn_data::FeatureSchema::numeric(["w", "x", "y", "z"])),
        ..ModelMetadata::default()
    };
    assert_eq!(saved(&good, false).1, "");
    let three_names_short = ModelMetadata { class_names: Some(vec!["a".into(), "b".into()]), ..good.clone() };
    let err = saved(&three_names_short, false).1;
    assert!(err.ends_with("metadata.class_names: 2 names for a model with 3 outputs"), "{err}");
    let narrow = ModelMetadata { features: Some(nn_data::FeatureSchema::numeric(["w", "x"])), ..good.clone() };
    let err = saved(&narrow, false).1;
    assert!(err.ends_with("metadata.features: 2 columns encode to 2 inputs, the model takes 4"), "{err}");
    let scaler = nn_data::TargetScaler { mean: vec![0.0], std: vec![1.0] };
    let regression = ModelMetadata {
        class_names: None,
        task: Some(nn_data::Task::Regression),
        target_scaler: Some(scaler),
        ..good.clone()
    };
    let err = saved(&regression, false).1;
    assert!(err.ends_with("metadata.target_scaler: statistics for 1 outputs, the model has 3"), "{err}");
    let scalers = ModelMetadata { scalers: vec![nn_data::Scaler::Impute { values: vec![0.0; 3] }], ..good };
    assert!(saved(&scalers, false).1.contains("metadata.scalers[0]"));
}

#[test]
fn weights_that_are_not_finite_are_refused_naming_the_tensor() {
    let (_dir, err) = saved(&ModelMetadata::default(), true);
    assert!(err.contains("weights.safetensors: tensor layers.2.kernel: holds values that are not finite"), "{err}");
}
