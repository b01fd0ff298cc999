//! Saving and loading models: architecture as JSON, weights as safetensors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nn_tensor::{DType, Element, Tensor};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{LayerError, Result};
use crate::model::{Model, ModelSpec, FORMAT_VERSION};

/// File name of the architecture inside a saved model's folder.
pub const MODEL_FILE: &str = "model.json";
/// File name of the weights inside a saved model's folder.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// File name of new weights staged by a save in progress (hidden): written first,
/// renamed to [`WEIGHTS_FILE`] after `model.json` names its checksum. A crash leaves
/// it behind; [`complete_interrupted_save`] finishes or discards it.
pub const WEIGHTS_STAGED_FILE: &str = ".nn-staged-weights.safetensors";

/// The content of `model.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    format_version: u32,
    model: ModelSpec,
    #[serde(default)]
    metadata: serde_json::Value,
    /// SHA-256 (lowercase hex) of the weights file saved with this `model.json`;
    /// absent in folders saved before the model and its weights were paired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weights_sha256: Option<String>,
}

/// SHA-256 of `bytes` as lowercase hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The `weights_sha256` that `dir/model.json` names, if the file reads as JSON.
fn manifest_checksum(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(MODEL_FILE)).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("weights_sha256")?.as_str().map(str::to_string)
}

/// The weights file that belongs to `dir/model.json`: [`WEIGHTS_FILE`], or the
/// staged file a save interrupted after its commit point left (see
/// [`Model::save`](crate::Model::save)), for readers of the file itself such as
/// [`Model::load_weights_matching`](crate::Model::load_weights_matching).
/// [`Model::load`](crate::Model::load) resolves this by itself.
pub fn saved_weights_path(dir: &Path) -> PathBuf {
    let weights = dir.join(WEIGHTS_FILE);
    let staged = dir.join(WEIGHTS_STAGED_FILE);
    if let (Some(sum), true) = (manifest_checksum(dir), staged.is_file()) {
        let matches = |p: &Path| std::fs::read(p).is_ok_and(|b| sha256_hex(&b) == sum);
        if !matches(&weights) && matches(&staged) {
            return staged;
        }
    }
    weights
}

/// What [`complete_interrupted_save`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptedSave {
    /// No staged weights: the last save (if any) finished.
    None,
    /// `model.json` already named the staged weights: they were moved into place,
    /// finishing the save.
    Completed,
    /// The staged weights belonged to a save that never wrote its `model.json`: they
    /// were removed, and the folder holds the previous model and weights.
    Discarded,
}

/// Finishes or undoes a save into `dir` that a crash interrupted (see
/// [`Model::save`](crate::Model::save) for the protocol): staged weights whose
/// checksum `model.json` names are renamed into place; any others are removed.
/// Meant for the start of a run that holds the folder's lock; loading does not need
/// it (it reads the staged file when `model.json` names it).
///
/// # Errors
/// [`LayerError::Io`] when the staged file cannot be read, renamed or removed.
pub fn complete_interrupted_save(dir: &Path) -> Result<InterruptedSave> {
    let staged = dir.join(WEIGHTS_STAGED_FILE);
    let bytes = match std::fs::read(&staged) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(InterruptedSave::None),
        Err(e) => return Err(io_err(&staged, "reading")(e)),
    };
    if manifest_checksum(dir).is_some_and(|sum| sum == sha256_hex(&bytes)) {
        let weights = dir.join(WEIGHTS_FILE);
        std::fs::rename(&staged, &weights).map_err(io_err(&weights, "renaming the staged weights"))?;
        nn_tensor::io::sync_dir(dir).map_err(io_err(dir, "syncing the folder"))?;
        Ok(InterruptedSave::Completed)
    } else {
        std::fs::remove_file(&staged).map_err(io_err(&staged, "removing"))?;
        Ok(InterruptedSave::Discarded)
    }
}

pub(crate) fn io_err<'a>(path: &'a Path, what: &'static str) -> impl Fn(std::io::Error) -> LayerError + 'a {
    move |e| LayerError::Io { path: path.to_path_buf(), message: format!("{what}: {e}") }
}

pub(crate) fn format_err(path: &Path, message: impl Into<String>) -> LayerError {
    LayerError::Format { path: path.to_path_buf(), message: message.into() }
}

pub(crate) fn dtype_of<T: Element>() -> Dtype {
    match T::DTYPE {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

/// Little-endian bytes of a tensor's elements in row-major order.
fn to_bytes<T: Element>(t: &Tensor<T>) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.len() * std::mem::size_of::<T>());
    for &v in t.array().iter() {
        match T::DTYPE {
            DType::F32 => out.extend_from_slice(&(v.as_f64() as f32).to_le_bytes()),
            DType::F64 => out.extend_from_slice(&v.as_f64().to_le_bytes()),
        }
    }
    out
}

/// Elements from little-endian bytes (the length was checked by safetensors).
pub(crate) fn from_bytes<T: Element>(bytes: &[u8]) -> Vec<T> {
    match T::DTYPE {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|c| T::of_f64(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64))
            .collect(),
        DType::F64 => {
            bytes.chunks_exact(8).map(|c| T::of_f64(f64::from_le_bytes(c.try_into().expect("8 bytes")))).collect()
        }
    }
}

impl<T: Element> Model<T> {
    /// Saves the model into folder `dir` (created if needed), with no metadata:
    /// `dir/model.json` (`{"format_version": <the spec's version>, "model": <ModelSpec>,
    /// "metadata": null, "weights_sha256": <hex>}`) and `dir/weights.safetensors` (see
    /// [`Model::save_weights`](crate::Model::save_weights)).
    /// [`Model::save_with_metadata`](crate::Model::save_with_metadata) also stores data
    /// of the caller's (class names, scaling statistics, ...).
    ///
    /// The two files are replaced as a pair: the weights are staged in
    /// [`WEIGHTS_STAGED_FILE`], then `model.json`, naming their SHA-256, replaces the
    /// old one (the commit point), then the staged file is renamed into place; each
    /// step writes a temporary file, syncs it and renames it
    /// (`nn_tensor::io::write_atomic`). A crash at any point leaves a folder that
    /// [`Model::load`](crate::Model::load) reads as the old model or the new one, never
    /// a mix: before the commit point the old `model.json` names the old weights,
    /// after it the new `model.json` names the staged ones.
    ///
    /// ```
    /// use nn_layers::{ModelSpec, Sequential};
    /// let dir = tempfile::tempdir()?;
    /// let model = Sequential::<f32>::new(ModelSpec::mlp(&[4], 8, 3, 0.0), 1)?;
    /// model.save(dir.path())?;
    /// let (loaded, metadata) = Sequential::<f32>::load(dir.path())?;
    /// assert_eq!(loaded.parameters(), model.parameters());
    /// assert!(metadata.is_null());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`LayerError::Io`] naming the folder or file that could not be created or
    /// written.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.write_model(dir, serde_json::Value::Null)
    }

    /// As [`Model::save`](crate::Model::save), with `metadata` stored under
    /// `"metadata"` in `model.json`: any value serde can serialise as JSON (a struct
    /// deriving `Serialize`, a map, a `serde_json::Value`, ...), read back by
    /// [`Model::load`](crate::Model::load) as a `serde_json::Value` or by
    /// [`Model::load_with_metadata`](crate::Model::load_with_metadata) as the caller's
    /// type. The value is first converted to a `serde_json::Value`, so object keys are
    /// written in sorted order whatever order the type declares them in, and the file
    /// is byte for byte the one the same value given as a `serde_json::Value` gives.
    ///
    /// ```
    /// use nn_layers::{ModelSpec, Sequential};
    /// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    /// struct Info {
    ///     class_names: Vec<String>,
    /// }
    /// let dir = tempfile::tempdir()?;
    /// let model = Sequential::<f32>::new(ModelSpec::mlp(&[4], 8, 2, 0.0), 1)?;
    /// let info = Info { class_names: vec!["cat".into(), "dog".into()] };
    /// model.save_with_metadata(dir.path(), &info)?;
    /// let (_, back) = Sequential::<f32>::load_with_metadata::<Info>(dir.path())?;
    /// assert_eq!(back, info);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`LayerError::Format`] when `metadata` cannot be represented as JSON (its
    /// `Serialize` implementation fails, or a map has keys that are neither strings nor numbers);
    /// otherwise as [`Model::save`](crate::Model::save).
    pub fn save_with_metadata<M: Serialize + ?Sized>(&self, dir: &Path, metadata: &M) -> Result<()> {
        let metadata = serde_json::to_value(metadata)
            .map_err(|e| format_err(&dir.join(MODEL_FILE), format!("metadata cannot be written as JSON: {e}")))?;
        self.write_model(dir, metadata)
    }

    /// Stages the weights, writes `dir/model.json` with `metadata` and their checksum,
    /// then moves the weights into place (the protocol of [`Model::save`](crate::Model::save)).
    fn write_model(&self, dir: &Path, metadata: serde_json::Value) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io_err(dir, "creating the folder"))?;
        let weights = dir.join(WEIGHTS_FILE);
        let data = self.weights_bytes(&weights)?;
        let staged = dir.join(WEIGHTS_STAGED_FILE);
        nn_tensor::io::write_atomic(&staged, |w| w.write_all(&data)).map_err(io_err(&staged, "writing"))?;
        nn_tensor::io::crash_point("model_save:weights_staged");
        let file = ModelFile {
            format_version: self.spec().format_version,
            model: self.spec().clone(),
            metadata,
            weights_sha256: Some(sha256_hex(&data)),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| format_err(dir, e.to_string()))?;
        let path = dir.join(MODEL_FILE);
        nn_tensor::io::write_atomic(&path, |w| w.write_all(text.as_bytes())).map_err(io_err(&path, "writing"))?;
        nn_tensor::io::crash_point("model_save:manifest_written");
        std::fs::rename(&staged, &weights).map_err(io_err(&weights, "renaming the staged weights"))?;
        nn_tensor::io::sync_dir(dir).map_err(io_err(dir, "syncing the folder"))
    }

    /// Loads a model saved by [`Model::save`](crate::Model::save) or
    /// [`Model::save_with_metadata`](crate::Model::save_with_metadata) from folder `dir`:
    /// builds it from `model.json`, then loads `weights.safetensors` with every check
    /// of [`Model::load_weights`](crate::Model::load_weights). Returns the model and
    /// the metadata given at save time as JSON (`null` if none). Predictions in
    /// evaluation mode are bit-identical to those of the saved model.
    ///
    /// When `model.json` names the weights' SHA-256 (every save since the pair
    /// protocol), the weights must match it; a save interrupted after its commit
    /// point is read from the staged weights it left (see [`Model::save`](crate::Model::save)).
    ///
    /// # Errors
    /// [`LayerError::Io`] for a missing or unreadable file; [`LayerError::Format`]
    /// for a `model.json` that is not valid JSON, lacks `format_version` or `model`,
    /// has an unknown key or a newer format version, or describes an invalid model
    /// (the message carries the underlying error), and for weights whose checksum is
    /// not the one `model.json` names (files of two different saves); the errors of
    /// [`Model::load_weights`](crate::Model::load_weights).
    pub fn load(dir: &Path) -> Result<(Self, serde_json::Value)> {
        let path = dir.join(MODEL_FILE);
        let text = std::fs::read_to_string(&path).map_err(io_err(&path, "reading"))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format_err(&path, format!("not valid JSON: {e}")))?;
        match value.get("format_version").and_then(serde_json::Value::as_u64) {
            Some(v) if v >= 1 && v <= u64::from(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(format_err(
                    &path,
                    format!(
                        "format_version {v} is not supported (this version of nn-layers reads 1 to {FORMAT_VERSION})"
                    ),
                ))
            }
            None => return Err(format_err(&path, "no \"format_version\" (a non-negative integer) at the top level")),
        }
        let file: ModelFile = serde_json::from_value(value).map_err(|e| format_err(&path, e.to_string()))?;
        let mut model = Model::build(file.model, None).map_err(|e| format_err(&path, e.to_string()))?;
        let weights = dir.join(WEIGHTS_FILE);
        let mut data = std::fs::read(&weights).map_err(io_err(&weights, "reading"));
        if let Some(expected) = &file.weights_sha256 {
            if !data.as_ref().is_ok_and(|d| sha256_hex(d) == *expected) {
                // A save interrupted after its commit point: the staged weights are the pair.
                let staged = dir.join(WEIGHTS_STAGED_FILE);
                match std::fs::read(&staged) {
                    Ok(d) if sha256_hex(&d) == *expected => data = Ok(d),
                    _ if data.is_err() => {}
                    _ => {
                        return Err(format_err(
                            &weights,
                            format!(
                                "does not match {MODEL_FILE} (its SHA-256 is not the one {MODEL_FILE} names): the two files come from different saves; restore the pair or save the model again"
                            ),
                        ))
                    }
                }
            }
        }
        model.load_weights_from(&weights, &data?)?;
        Ok((model, file.metadata))
    }

    /// As [`Model::load`](crate::Model::load), with the metadata read as an `M` (the
    /// type given to [`Model::save_with_metadata`](crate::Model::save_with_metadata),
    /// or any type that reads the same JSON). A model saved without metadata has
    /// `null` there, which reads as `None` for `M = Option<_>` and as `()`, and is an
    /// error for a struct.
    ///
    /// # Errors
    /// As [`Model::load`](crate::Model::load); [`LayerError::Format`] naming
    /// `model.json` when the metadata does not deserialise as an `M`.
    pub fn load_with_metadata<M: DeserializeOwned>(dir: &Path) -> Result<(Self, M)> {
        let (model, metadata) = Self::load(dir)?;
        let metadata = serde_json::from_value(metadata)
            .map_err(|e| format_err(&dir.join(MODEL_FILE), format!("metadata: {e}")))?;
        Ok((model, metadata))
    }

    /// Writes every parameter (trainable and not: BatchNormalization's moving
    /// statistics included) to a safetensors file at `path`, atomically, under its
    /// name (`layers.0.kernel`, ...), in the model's element type (`F32` or `F64`),
    /// little-endian and row-major as the format prescribes. The file's metadata
    /// records `"format": "nn-layers/<format version>"` (one key, so the bytes are reproducible).
    ///
    /// # Errors
    /// [`LayerError::Io`] when the file cannot be written; [`LayerError::Format`] if
    /// safetensors refuses the header (over its 100 MB limit).
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        let data = self.weights_bytes(path)?;
        nn_tensor::io::write_atomic(path, |w| w.write_all(&data)).map_err(io_err(path, "writing"))
    }

    /// The bytes [`Model::save_weights`](crate::Model::save_weights) writes (`path` only names the file in errors).
    fn weights_bytes(&self, path: &Path) -> Result<Vec<u8>> {
        let bytes: Vec<Vec<u8>> = self.parameters().iter().map(|p| to_bytes(&p.value)).collect();
        let views = self
            .parameters()
            .iter()
            .zip(&bytes)
            .map(|(p, b)| {
                TensorView::new(dtype_of::<T>(), p.shape().to_vec(), b)
                    .map(|v| (p.name.clone(), v))
                    .map_err(|e| format_err(path, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        // One metadata entry: safetensors writes a HashMap in hash order, so a single
        // key keeps the file bytes identical from run to run.
        let info = HashMap::from([("format".to_string(), format!("nn-layers/{FORMAT_VERSION}"))]);
        safetensors::serialize(views, Some(info)).map_err(|e| format_err(path, e.to_string()))
    }

    /// Loads every parameter from a safetensors file written by
    /// [`Model::save_weights`](crate::Model::save_weights) (or by any tool using the same names, e.g. Keras
    /// weights exported under `layers.{i}.kernel`, ...).
    ///
    /// Every check passes before anything changes: the file must hold exactly the
    /// model's parameter names, each with the model's element type and shape.
    ///
    /// # Errors
    /// [`LayerError::Io`] when the file cannot be read; [`LayerError::Format`] when it
    /// is not a valid safetensors file (truncated, corrupted header);
    /// [`LayerError::MissingWeight`] (listing the file's unexpected names, a likely
    /// misspelling), [`LayerError::UnexpectedWeight`], [`LayerError::WeightDType`],
    /// [`LayerError::WeightShape`], each naming the file and the weight.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        let data = std::fs::read(path).map_err(io_err(path, "reading"))?;
        self.load_weights_from(path, &data)
    }

    /// [`Model::load_weights`](crate::Model::load_weights) from the file's bytes `data` (`path` names it in errors).
    fn load_weights_from(&mut self, path: &Path, data: &[u8]) -> Result<()> {
        let tensors = SafeTensors::deserialize(data)
            .map_err(|e| format_err(path, format!("not a valid safetensors file (truncated or corrupted?): {e}")))?;
        let mut unexpected: Vec<String> =
            tensors.names().into_iter().filter(|n| self.parameter(n).is_none()).map(str::to_string).collect();
        unexpected.sort();
        let mut loaded = Vec::with_capacity(self.parameters().len());
        for p in self.parameters() {
            let view = tensors.tensor(&p.name).map_err(|_| LayerError::MissingWeight {
                path: PathBuf::from(path),
                name: p.name.clone(),
                unexpected: unexpected.clone(),
            })?;
            if view.dtype() != dtype_of::<T>() {
                return Err(LayerError::WeightDType {
                    path: path.to_path_buf(),
                    name: p.name.clone(),
                    expected: T::DTYPE.to_string(),
                    got: format!("{:?}", view.dtype()).to_lowercase(),
                });
            }
            if view.shape() != p.shape() {
                return Err(LayerError::WeightShape {
                    path: path.to_path_buf(),
                    name: p.name.clone(),
                    expected: p.shape().to_vec(),
                    got: view.shape().to_vec(),
                });
            }
            loaded.push(Tensor::try_from_vec(view.shape(), from_bytes::<T>(view.data()))?);
        }
        if let Some(name) = unexpected.into_iter().next() {
            return Err(LayerError::UnexpectedWeight { path: path.to_path_buf(), name });
        }
        for (p, value) in self.parameters_mut().iter_mut().zip(loaded) {
            p.value = Arc::new(value);
        }
        Ok(())
    }
}
