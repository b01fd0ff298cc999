//! The model a server answers with: a loaded [`Sequential`] and its metadata, what
//! `GET /v1/model` reports about it, and the forward pass the batcher runs.

use std::path::Path;

use nn_data::{FeatureColumn, Missing, Task};
use nn_layers::Sequential;
use nn_tensor::Tensor;
use nn_text::TextTokenizer;
use nn_train::ModelMetadata;
use serde::Serialize;

use crate::error::ServeError;
use crate::text::{TextInfo, TextModel};

/// How the page and clients should feed the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// A one-channel image `[height, width, 1]`: the page offers a canvas.
    Image,
    /// Anything else (a feature vector `[features]`, colour images, ...): the page
    /// offers a form of the input columns.
    Tabular,
    /// Texts read with the model's tokenizer (a text classifier or a language model,
    /// see [`ModelService::with_text_column`] and
    /// [`ModelService::with_language_model`]); `text` of [`ModelInfo`] says more.
    Text,
}

/// What each row of the model's output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Class probabilities (the model ends with a softmax).
    Probabilities,
    /// Class scores before a softmax (a classifier without a final softmax).
    Logits,
    /// Real values (a regression model: no class names, no softmax).
    Values,
    /// A language model's scores over its vocabulary for the next token at every
    /// position (`[context, vocab_size]` per row); such a model answers
    /// `POST /v1/generate`, not `/v1/predict`.
    #[serde(rename = "next_token_logits")]
    NextTokenLogits,
}

/// One layer as `GET /v1/model` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerInfo {
    /// The layer's parameter prefix: `layers.{i}` in a chain, its name in a graph.
    pub name: String,
    /// Its kind as Keras names it (`Dense`, `Conv2D`, ...).
    pub kind: String,
    /// Its per-sample output shape (without the batch axis).
    pub output_shape: Vec<usize>,
    /// Its number of parameters (trainable and not).
    pub parameters: usize,
}

/// The body of `GET /v1/model`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The per-sample input shape, e.g. `[8, 8, 1]` or `[4]`.
    pub input_shape: Vec<usize>,
    /// Values per row of `POST /v1/predict` (the product of `input_shape`).
    pub features: usize,
    /// Canvas or form, for the page.
    pub input_kind: InputKind,
    /// For image models: the raw pixel value of full ink (16 for the 8×8 digits, 255
    /// for MNIST-style data), deduced from the data the model was trained on or from
    /// its saved scaler; 1 when unknown.
    pub pixel_max: f64,
    /// Values per output row.
    pub outputs: usize,
    /// What the output values are.
    pub output_kind: OutputKind,
    /// Class names by index (absent for regression).
    pub class_names: Option<Vec<String>>,
    /// `(trainable, non-trainable)` parameter counts.
    pub parameters: ParameterCounts,
    /// The layers in order.
    pub layers: Vec<LayerInfo>,
    /// The Keras-style text summary ([`Sequential::summary`]).
    pub summary: String,
    /// The model's architecture exactly as model.json stores it.
    pub architecture: serde_json::Value,
    /// The data the model was trained on (`--data` of `nn-cli fit`, e.g. `digits`).
    pub data: String,
    /// Classification or regression: as saved, else classification for a model
    /// with class names or a final softmax, regression otherwise.
    pub task: Task,
    /// The target column of a CSV-trained model, when one was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The feature columns of a model trained on a CSV file, in input order: each
    /// `{"name", "type": "numeric" | "categorical", "categories": [...]}`. Rows may
    /// then be sent as objects keyed by these names. Absent for image data and
    /// models saved without them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<FeatureColumn>>,
    /// What a missing (null) value does, when the columns are known: `error`,
    /// `drop` (also refused when predicting) or `mean` (imputed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Missing>,
    /// The name of each model input, when the columns are known: a numeric
    /// column's name, or `column=category` for each category of a categorical
    /// column (the order of a row sent as an array).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_names: Option<Vec<String>>,
    /// Whether regression outputs are mapped back from standardised units to the
    /// target's (the model was trained on standardised targets).
    pub target_scaled: bool,
    /// For a text model: its text column, context, vocabulary size and whether it
    /// is a language model. Absent for other models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<TextInfo>,
}

/// Parameter counts of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParameterCounts {
    /// Parameters an optimizer updates.
    pub trainable: usize,
    /// Parameters it does not (e.g. batch-norm moving statistics).
    pub non_trainable: usize,
    /// Their sum.
    pub total: usize,
}

/// A loaded model, ready to answer: the network, the metadata `nn-cli fit` saved
/// with it (scalers, class names), and what `GET /v1/model` reports.
///
/// `ModelService` is `Send + Sync`: the inference thread runs the forward pass
/// through `&self` (parameters are shared read-only).
#[derive(Debug)]
pub struct ModelService {
    model: Sequential,
    meta: ModelMetadata,
    info: ModelInfo,
    parameters_finite: bool,
    text: Option<TextModel>,
}

impl ModelService {
    /// Loads a folder written by `nn-cli fit --out` (model.json and
    /// weights.safetensors) with [`nn_train::load_model`].
    ///
    /// # Errors
    /// [`ServeError::Model`] for a missing or damaged model folder;
    /// [`ServeError::Metadata`] as [`ModelService::new`].
    pub fn load(dir: &Path) -> Result<Self, ServeError> {
        let (model, meta) = nn_train::load_model(dir)
            .map_err(|source| ServeError::Model { path: dir.to_path_buf(), source: Box::new(source) })?;
        Self::new(model, meta)
    }

    /// Wraps a model and its metadata (for models built in code).
    ///
    /// # Errors
    /// [`ServeError::Metadata`] when the metadata does not fit the model
    /// ([`ModelMetadata::check`]: class names, scalers, feature columns, target
    /// scaler).
    pub fn new(model: Sequential, meta: ModelMetadata) -> Result<Self, ServeError> {
        meta.check(&model).map_err(ServeError::Metadata)?;
        let info = describe(&model, &meta);
        let parameters_finite = model.parameters().iter().all(|p| all_finite(&p.value));
        Ok(ModelService { model, meta, info, parameters_finite, text: None })
    }

    /// Makes the service a text classifier: rows of `POST /v1/predict` are texts
    /// (strings, or objects keyed by `column`), tokenized with `tokenizer` and
    /// padded or cut to the model's context as training did (see
    /// [`crate::text`]). `nn-cli serve` calls this for a folder with a
    /// `tokenizer.json`, with the text column of the saved run.
    ///
    /// # Errors
    /// [`ServeError::Metadata`] when the model's input is not `[context]` token ids
    /// or the tokenizer's vocabulary is not the size of the model's Embedding.
    pub fn with_text_column(self, tokenizer: TextTokenizer, column: impl Into<String>) -> Result<Self, ServeError> {
        let text = TextModel::new(&self.model, tokenizer, Some(column.into()))?;
        Ok(self.with_text_model(text))
    }

    /// Makes the service a language model: `POST /v1/generate` continues a prompt
    /// as `nn-cli generate` does, and `POST /v1/predict` is refused (see
    /// [`crate::text`]).
    ///
    /// # Errors
    /// [`ServeError::Metadata`] when the model is not a decoder-only transformer of
    /// the gpt preset ([`nn_text::Generator::new`]) or the tokenizer's vocabulary is
    /// not the model's.
    pub fn with_language_model(mut self, tokenizer: TextTokenizer) -> Result<Self, ServeError> {
        let text = TextModel::new(&self.model, tokenizer, None)?;
        // Next-token prediction is a classification over the vocabulary at every
        // position, whatever the saved run says (no class names, no softmax).
        self.info.output_kind = OutputKind::NextTokenLogits;
        self.info.task = Task::Classification;
        Ok(self.with_text_model(text))
    }

    fn with_text_model(mut self, text: TextModel) -> Self {
        self.info.input_kind = InputKind::Text;
        self.info.text = Some(text.info().clone());
        self.text = Some(text);
        self
    }

    /// The text side of a text model (tokenizer, generator).
    pub(crate) fn text(&self) -> Option<&TextModel> {
        self.text.as_ref()
    }

    /// Whether every parameter of the model is finite. When one is not, the model
    /// cannot give finite answers, and a non-finite answer is the model's fault
    /// (HTTP 500) rather than the input's (422).
    pub fn parameters_finite(&self) -> bool {
        self.parameters_finite
    }

    /// The network.
    pub fn model(&self) -> &Sequential {
        &self.model
    }

    /// The saved metadata (scalers, class names, training data).
    pub fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    /// What `GET /v1/model` answers.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Runs raw features `[n, ...input_shape]` through the saved scalers and the
    /// model in evaluation mode, at most `chunk` rows per forward pass, and returns
    /// the outputs `[n, outputs]` and each row's largest-output class. When the
    /// metadata has a target scaler (a regression model trained on standardised
    /// targets), the outputs are mapped back to the target's units with
    /// [`nn_data::TargetScaler::invert`].
    ///
    /// This is what `nn-cli predict` computes: [`ModelMetadata::scale`] then
    /// [`nn_train::predict`], with one difference. A forward pass over a single row
    /// is run on two copies of the row and the second copy's result dropped: with one
    /// row, nn-tensor's GEMM back end (the `gemm` crate) switches to a GEMV kernel
    /// that accumulates the inner dimension in a different order once it exceeds its
    /// block size (512), e.g. in the seed CNN's `Dense(5408 → 128)`, so the last
    /// bits of a row would depend on whether it was batched with others. With the
    /// duplicate, a row's result is the same whichever requests it is batched with,
    /// and equal to what `nn-cli predict` prints for it in a file of several rows.
    ///
    /// # Errors
    /// The scaler's or the model's error, as text (the caller validated the shape, so
    /// an error here is a bug, answered with a 500).
    pub fn forward(&self, raw: &Tensor<f32>, chunk: usize) -> Result<(Tensor<f32>, Vec<usize>), String> {
        let x = self.meta.scale(raw).map_err(|e| e.to_string())?;
        let n = x.shape().first().copied().unwrap_or(0);
        let chunk = chunk.max(1);
        let mut outputs = Vec::with_capacity(n.div_ceil(chunk));
        let mut classes = Vec::with_capacity(n);
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let part = x.try_slice_batch(start, end).map_err(|e| e.to_string())?;
            let p = if end - start == 1 {
                let twice = Tensor::try_concat(0, &[&part, &part]).map_err(|e| e.to_string())?;
                let p = nn_train::predict(&self.model, &twice, 2).map_err(|e| e.to_string())?;
                nn_train::Predictions {
                    outputs: p.outputs.try_slice_batch(0, 1).map_err(|e| e.to_string())?,
                    classes: p.classes[..1].to_vec(),
                }
            } else {
                nn_train::predict(&self.model, &part, end - start).map_err(|e| e.to_string())?
            };
            outputs.push(p.outputs);
            classes.extend(p.classes);
            start = end;
        }
        let outputs = if outputs.is_empty() {
            Tensor::zeros(&[0, self.info.outputs])
        } else {
            let refs: Vec<&Tensor<f32>> = outputs.iter().collect();
            Tensor::try_concat(0, &refs).map_err(|e| e.to_string())?
        };
        let outputs = match &self.meta.target_scaler {
            Some(ts) => {
                let shape = outputs.shape().to_vec();
                Tensor::try_from_vec(&shape, ts.invert(&outputs.to_vec())).map_err(|e| e.to_string())?
            }
            None => outputs,
        };
        Ok((outputs, classes))
    }
}

fn all_finite(t: &Tensor<f32>) -> bool {
    match t.as_slice() {
        Some(values) => values.iter().all(|v| v.is_finite()),
        None => t.to_vec().iter().all(|v| v.is_finite()),
    }
}

/// The raw value of full ink for an image model: 16 for the 8×8 digits (UCI
/// optdigits counts 0..16 set pixels per 4×4 block), 255 for MNIST-style IDX data,
/// else `1/scale` of a single saved `x · scale` scaler, else 1.
fn pixel_max(meta: &ModelMetadata) -> f64 {
    let data = meta.data.as_str();
    if data == "digits" {
        return 16.0;
    }
    if data.starts_with("mnist:") || data.starts_with("fashion-mnist:") {
        return 255.0;
    }
    match meta.scalers.as_slice() {
        [nn_data::Scaler::Constant { scale, offset }] if *scale > 0.0 && *offset == 0.0 => (1.0 / scale).round(),
        _ => 1.0,
    }
}

fn describe(model: &Sequential, meta: &ModelMetadata) -> ModelInfo {
    let input_shape = model.input_shape().to_vec();
    let input_kind = match input_shape.as_slice() {
        [h, w, 1] if *h > 1 && *w > 1 => InputKind::Image,
        _ => InputKind::Tabular,
    };
    let outputs = model.output_shape().iter().product();
    let output_kind = if model.ends_with_softmax() {
        OutputKind::Probabilities
    } else if meta.class_names.is_some() {
        OutputKind::Logits
    } else {
        OutputKind::Values
    };
    let layers = model
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| LayerInfo {
            name: model.layer_prefix(i),
            kind: l.kind().to_string(),
            output_shape: l.output_shape().to_vec(),
            parameters: model.layer_parameters(i).iter().map(|p| p.len()).sum(),
        })
        .collect();
    let (trainable, non_trainable) = model.num_parameters();
    let task = meta.task.unwrap_or(match output_kind {
        OutputKind::Values => Task::Regression,
        OutputKind::Probabilities | OutputKind::Logits | OutputKind::NextTokenLogits => Task::Classification,
    });
    let schema = meta.features.as_ref();
    ModelInfo {
        features: input_shape.iter().product(),
        input_shape,
        input_kind,
        pixel_max: if input_kind == InputKind::Image { pixel_max(meta) } else { 1.0 },
        outputs,
        output_kind,
        class_names: meta.class_names.clone(),
        parameters: ParameterCounts { trainable, non_trainable, total: trainable + non_trainable },
        layers,
        summary: model.summary(),
        architecture: serde_json::to_value(model.spec()).unwrap_or(serde_json::Value::Null),
        data: meta.data.clone(),
        task,
        target: meta.target.clone(),
        columns: schema.map(|s| s.columns.clone()),
        missing: schema.map(|s| s.missing),
        input_names: schema.map(|s| s.input_names()),
        target_scaled: meta.target_scaler.is_some(),
        text: None,
    }
}
