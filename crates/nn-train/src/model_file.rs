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
    /// The CSV field delimiter of the training file, as `--delimiter` took it (absent:
    /// a comma); prediction and evaluation files are read with it unless told otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// The configuration of the run that saved the model (the CLI's `run.json`), so
    /// that what belongs to that run, such as the test part it held out, is found
    /// from the model itself, whatever a later run wrote beside it. Absent in models
    /// saved by the library or by earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<serde_json::Value>,
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
/// and weights.safetensors), and checks that they belong together.
///
/// # Errors
/// The loader's errors ([`TrainError::Layer`]) for missing or damaged files;
/// [`TrainError::Io`] naming model.json when the metadata object is malformed, and
/// when it does not fit the model ([`ModelMetadata::check`]) or a weight is not
/// finite (naming the tensor).
pub fn load_model(dir: &Path) -> Result<(Sequential, ModelMetadata)> {
    let (model, meta) = Sequential::load(dir)?;
    let json = dir.join("model.json");
    let meta = if meta.is_null() {
        ModelMetadata::default()
    } else {
        serde_json::from_value(meta).map_err(|e| TrainError::io(&json, format!("metadata: {e}")))?
    };
    meta.check(&model).map_err(|e| TrainError::io(&json, e))?;
    if let Some(p) = model.parameters().iter().find(|p| p.value.to_vec().iter().any(|v| !v.is_finite())) {
        return Err(TrainError::io(
            &dir.join(nn_layers::WEIGHTS_FILE),
            format!("tensor {}: holds values that are not finite (NaN or infinite); the model cannot be used", p.name),
        ));
    }
    Ok((model, meta))
}

impl ModelMetadata {
    /// Checks that this metadata describes `model`: one class name per output, scalers
    /// that fit the input shape, a feature schema as wide as the input, a target
    /// scaler with one statistic per output, finite statistics.
    ///
    /// # Errors
    /// A message naming the field and the expected and found sizes.
    pub fn check(&self, model: &Sequential) -> std::result::Result<(), String> {
        let outputs: usize = model.output_shape().iter().product();
        let inputs: usize = model.input_shape().iter().product();
        if let Some(names) = &self.class_names {
            if names.len() != outputs && self.task != Some(nn_data::Task::Regression) {
                return Err(format!("metadata.class_names: {} names for a model with {outputs} outputs", names.len()));
            }
        }
        for (i, s) in self.scalers.iter().enumerate() {
            s.check(model.input_shape()).map_err(|e| format!("metadata.scalers[{i}]: {e}"))?;
        }
        if let Some(schema) = &self.features {
            if schema.width() != inputs {
                return Err(format!(
                    "metadata.features: {} columns encode to {} inputs, the model takes {inputs}",
                    schema.columns.len(),
                    schema.width()
                ));
            }
        }
        if let Some(ts) = &self.target_scaler {
            if ts.outputs() != outputs || ts.std.len() != outputs {
                return Err(format!(
                    "metadata.target_scaler: statistics for {} outputs, the model has {outputs}",
                    ts.outputs()
                ));
            }
            if ts.mean.iter().chain(&ts.std).any(|v| !v.is_finite()) || ts.std.iter().any(|s| *s <= 0.0) {
                return Err(
                    "metadata.target_scaler: a mean or standard deviation is not a finite number (std > 0)".into()
                );
            }
        }
        Ok(())
    }
}
