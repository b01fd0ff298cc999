//! What a trained model carries besides its weights: the metadata `nn-cli fit` saves
//! in model.json, so that evaluation, prediction and serving apply exactly the
//! transforms training used.

use std::path::Path;

use nn_layers::Sequential;
use nn_tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The `metadata` object of model.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// The data the model was trained on, as given to `--data` (e.g. `digits`).
    pub data: String,
    /// The CSV target column, if one was named.
    pub target: Option<String>,
    /// Class names by index (absent for regression).
    pub class_names: Option<Vec<String>>,
    /// Feature transforms, applied in order to raw features before the model.
    pub scalers: Vec<nn_data::Scaler>,
    /// The training run's seed.
    pub seed: u64,
    /// Classification or regression (absent in models saved before it was recorded:
    /// classification when `class_names` is present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<nn_data::Task>,
    /// The CSV feature columns the model was trained on, by name and in input order
    /// (absent for image data and for models saved before columns were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<nn_data::FeatureSchema>,
    /// The standardisation of regression targets: model outputs are mapped back with
    /// [`nn_data::TargetScaler::invert`] (absent: outputs are in the target's units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_scaler: Option<nn_data::TargetScaler>,
}

impl ModelMetadata {
    /// Applies the saved scalers to raw features `[N, ...input_shape]`.
    ///
    /// # Errors
    /// [`TrainError::Data`] when the features do not fit the scalers' statistics.
    pub fn scale(&self, raw: &Tensor<f32>) -> Result<Tensor<f32>> {
        Ok(nn_data::scale::apply_all(&self.scalers, raw)?)
    }

    /// The name of class `c` (its index when no names were saved).
    pub fn class_name(&self, c: usize) -> String {
        self.class_names.as_ref().and_then(|n| n.get(c).cloned()).unwrap_or_else(|| c.to_string())
    }
}

/// Loads a model folder written by `nn-cli fit --out` (model.json with its metadata,
/// and weights.safetensors).
///
/// # Errors
/// The loader's errors ([`TrainError::Layer`]) for missing or damaged files;
/// [`TrainError::Io`] when the metadata object is malformed.
pub fn load_model(dir: &Path) -> Result<(Sequential, ModelMetadata)> {
    let (model, meta) = Sequential::load(dir)?;
    let meta = if meta.is_null() {
        ModelMetadata::default()
    } else {
        serde_json::from_value(meta).map_err(|e| TrainError::io(&dir.join("model.json"), format!("metadata: {e}")))?
    };
    Ok((model, meta))
}
