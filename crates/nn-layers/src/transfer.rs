//! Transfer learning and fine-tuning on a [`Model`]: loading trained
//! weights by name (fully or partly), freezing parameters, replacing the output
//! head, adding LoRA adapters to Dense layers and merging them back for export.
//!
//! The pretrain-then-fine-tune workflow:
//!
//! ```
//! use nn_layers::{LoadOptions, LoraConfig, ModelSpec, Sequential, WEIGHTS_FILE};
//!
//! // A model trained on task A (5 classes), saved.
//! let dir = tempfile::tempdir()?;
//! let task_a = Sequential::<f32>::new(ModelSpec::mlp(&[8], 16, 5, 0.0), 1)?;
//! task_a.save(dir.path())?;
//!
//! // Task B: same body, a fresh 3-class head, the first Dense frozen.
//! let mut model = Sequential::<f32>::new(ModelSpec::mlp(&[8], 16, 3, 0.0), 2)?;
//! let report = model.load_weights_matching(&dir.path().join(WEIGHTS_FILE), &LoadOptions::default())?;
//! assert_eq!(report.loaded, ["layers.1.kernel", "layers.1.bias"]);
//! assert_eq!(report.initialised, ["layers.2.kernel", "layers.2.bias"]); // shape differs
//! model.freeze(|name| name.starts_with("layers.1."));
//! assert_eq!(model.num_parameters(), (16 * 3 + 3, 8 * 16 + 16));
//!
//! // Or: LoRA adapters of rank 2 on every Dense layer; only they train.
//! let lora = task_a.with_lora(|_| true, LoraConfig::new(2, 4.0), 3)?;
//! assert_eq!(lora.num_parameters().0, (8 * 2 + 2 * 16) + (16 * 2 + 2 * 5));
//! let merged = lora.merge_lora()?; // a plain model again, same predictions
//! assert_eq!(merged.spec(), task_a.spec());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nn_tensor::{Element, Tensor};
use safetensors::SafeTensors;

use crate::error::{LayerError, Result};
use crate::io::{dtype_of, format_err, from_bytes, io_err};
use crate::model::Model;
use crate::spec::{LayerSpec, LoraConfig};

/// Whether parameter `name` is selected by `pattern`: the exact name
/// (`layers.0.kernel`) or a prefix ending at a `.` boundary (`layers.0` selects
/// `layers.0.kernel` and `layers.0.bias`, not `layers.01.kernel`).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    name == pattern || (name.starts_with(pattern) && name[pattern.len()..].starts_with('.'))
}

/// Which tensors [`Model::load_weights_matching`](crate::Model::load_weights_matching) loads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Parameter names or prefixes (see [`name_matches`]) to load, and only these.
    /// Empty: every parameter whose name and shape match the file (the rest keep
    /// their initial values). A requested parameter must be in the file with the
    /// model's shape, else loading fails.
    pub only: Vec<String>,
    /// Names or prefixes never loaded (they keep their initial values), e.g. the
    /// output head `layers.4`.
    pub exclude: Vec<String>,
}

impl LoadOptions {
    /// Loads only the parameters selected by `patterns` (each must match).
    pub fn only<S: Into<String>>(patterns: impl IntoIterator<Item = S>) -> Self {
        LoadOptions { only: patterns.into_iter().map(Into::into).collect(), exclude: Vec::new() }
    }

    /// Also never loads the parameters selected by `patterns`.
    pub fn excluding<S: Into<String>>(mut self, patterns: impl IntoIterator<Item = S>) -> Self {
        self.exclude.extend(patterns.into_iter().map(Into::into));
        self
    }
}

/// What [`Model::load_weights_matching`](crate::Model::load_weights_matching) did, name by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The file loaded from.
    pub path: PathBuf,
    /// Model parameters given the file's values, in model order.
    pub loaded: Vec<String>,
    /// Model parameters the file has under another shape: `(name, file's shape,
    /// model's shape)`; they keep their initial values.
    pub shape_differs: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Model parameters the file lacks; they keep their initial values.
    pub absent: Vec<String>,
    /// Model parameters not loaded because of [`LoadOptions`] (not requested, or
    /// excluded); they keep their initial values.
    pub not_selected: Vec<String>,
    /// Tensors of the file that the model has no parameter for (sorted).
    pub unused: Vec<String>,
    /// Every model parameter that kept its initial value (shape differs, absent, not
    /// selected), in model order.
    pub initialised: Vec<String>,
}

impl std::fmt::Display for LoadReport {
    /// Several lines: `loaded N tensors: ...`, `skipped (shape differs): name file
    /// [..] vs model [..]`, `skipped (absent from the file): ...`, `newly initialised:
    /// ...`, `unused in the file: ...` (empty groups left out).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "loaded {} tensors from {}: {}", self.loaded.len(), self.path.display(), self.loaded.join(", "))?;
        for (name, file, model) in &self.shape_differs {
            writeln!(f, "skipped (shape differs): {name}: file {file:?}, model {model:?}")?;
        }
        if !self.absent.is_empty() {
            writeln!(f, "skipped (absent from the file): {}", self.absent.join(", "))?;
        }
        if !self.not_selected.is_empty() {
            writeln!(f, "skipped (not selected): {}", self.not_selected.join(", "))?;
        }
        if !self.initialised.is_empty() {
            writeln!(f, "newly initialised: {}", self.initialised.join(", "))?;
        }
        if !self.unused.is_empty() {
            writeln!(f, "unused in the file: {}", self.unused.join(", "))?;
        }
        Ok(())
    }
}

impl<T: Element> Model<T> {
    /// Loads parameters by name from a safetensors file (e.g. the
    /// `weights.safetensors` of another model), fully or partly, and reports what it
    /// did. Unlike [`Model::load_weights`](crate::Model::load_weights) (all or nothing) the file and the model
    /// may differ: a parameter is loaded when it is selected by `options`, present in
    /// the file, and of the same shape; any other parameter keeps its current value.
    /// Values are converted nowhere: the file's element type must be the model's.
    /// Every check passes before anything changes.
    ///
    /// # Errors
    /// [`LayerError::Io`], [`LayerError::Format`] for an unreadable or invalid file;
    /// [`LayerError::UnknownParameter`] for a pattern of `options.only` that selects
    /// no model parameter; for a parameter requested through `options.only`:
    /// [`LayerError::MissingWeight`] when the file lacks it and
    /// [`LayerError::WeightShape`] when its shape differs; [`LayerError::WeightDType`]
    /// for a selected tensor of another element type.
    pub fn load_weights_matching(&mut self, path: &Path, options: &LoadOptions) -> Result<LoadReport> {
        let data = std::fs::read(path).map_err(io_err(path, "reading"))?;
        let tensors = SafeTensors::deserialize(&data)
            .map_err(|e| format_err(path, format!("not a valid safetensors file (truncated or corrupted?): {e}")))?;
        for pattern in &options.only {
            if !self.parameters().iter().any(|p| name_matches(pattern, &p.name)) {
                return Err(LayerError::UnknownParameter { name: pattern.clone() });
            }
        }
        let mut unused: Vec<String> =
            tensors.names().into_iter().filter(|n| self.parameter(n).is_none()).map(str::to_string).collect();
        unused.sort();
        let mut report = LoadReport { path: path.to_path_buf(), unused: unused.clone(), ..LoadReport::default() };
        let mut values = Vec::new();
        for (i, p) in self.parameters().iter().enumerate() {
            let requested = options.only.iter().any(|pat| name_matches(pat, &p.name));
            let excluded = options.exclude.iter().any(|pat| name_matches(pat, &p.name));
            if excluded || (!options.only.is_empty() && !requested) {
                report.not_selected.push(p.name.clone());
                report.initialised.push(p.name.clone());
                continue;
            }
            let Ok(view) = tensors.tensor(&p.name) else {
                if requested {
                    return Err(LayerError::MissingWeight {
                        path: path.to_path_buf(),
                        name: p.name.clone(),
                        unexpected: unused,
                    });
                }
                report.absent.push(p.name.clone());
                report.initialised.push(p.name.clone());
                continue;
            };
            if view.shape() != p.shape() {
                if requested {
                    return Err(LayerError::WeightShape {
                        path: path.to_path_buf(),
                        name: p.name.clone(),
                        expected: p.shape().to_vec(),
                        got: view.shape().to_vec(),
                    });
                }
                report.shape_differs.push((p.name.clone(), view.shape().to_vec(), p.shape().to_vec()));
                report.initialised.push(p.name.clone());
                continue;
            }
            if view.dtype() != dtype_of::<T>() {
                return Err(LayerError::WeightDType {
                    path: path.to_path_buf(),
                    name: p.name.clone(),
                    expected: T::DTYPE.to_string(),
                    got: format!("{:?}", view.dtype()).to_lowercase(),
                });
            }
            values.push((i, Tensor::try_from_vec(view.shape(), from_bytes::<T>(view.data()))?));
            report.loaded.push(p.name.clone());
        }
        let params = self.parameters_mut();
        for (i, value) in values {
            params[i].value = Arc::new(value);
        }
        Ok(report)
    }

    /// Freezes every parameter whose name `select` accepts (`trainable = false`):
    /// it is then bound as a graph constant, gets no gradient, no optimizer state and
    /// no update. Returns how many parameters were newly frozen.
    pub fn freeze(&mut self, select: impl Fn(&str) -> bool) -> usize {
        let mut n = 0;
        for p in self.parameters_mut().iter_mut().filter(|p| p.trainable && select(&p.name)) {
            p.trainable = false;
            n += 1;
        }
        n
    }

    /// Freezes the parameters of layers `range` (indices in spec order, half-open,
    /// e.g. `0..3`). Returns how many parameters were newly frozen.
    pub fn freeze_layers(&mut self, range: std::ops::Range<usize>) -> usize {
        let prefixes: Vec<String> = range.filter(|&i| i < self.layers().len()).map(|i| self.layer_prefix(i)).collect();
        self.freeze(|name| prefixes.iter().any(|p| name_matches(p, name)))
    }

    /// A model with description `spec`, parameters drawn from `seed`, then every
    /// parameter that `self` has under the same name and shape (and `keep` accepts)
    /// copied from `self` with its frozen state.
    fn rebuild(&self, spec: crate::model::ModelSpec, seed: u64, keep: impl Fn(&str) -> bool) -> Result<Self> {
        let mut out = Model::new(spec, seed)?;
        for p in out.parameters_mut() {
            if let Some(old) = self.parameter(&p.name) {
                if old.shape() == p.shape() && keep(&p.name) {
                    p.value = Arc::clone(&old.value);
                    p.trainable &= old.trainable;
                }
            }
        }
        Ok(out)
    }

    /// The index of the last Dense layer, the output head.
    fn head_index(&self) -> Result<usize> {
        self.spec().layers.iter().rposition(|l| matches!(l.layer, LayerSpec::Dense(_))).ok_or_else(|| {
            LayerError::Spec { message: "the model has no Dense layer to serve as its output head".into() }
        })
    }

    /// The same model with its output head (the last Dense layer) replaced by a new
    /// one of `units` outputs, initialised from `seed` with the layer's initializers
    /// (same activation, no adapters); every other parameter is kept, value and
    /// frozen state, bit for bit. Returns the model and the index of the new head.
    ///
    /// # Errors
    /// [`LayerError::Spec`] when the model has no Dense layer;
    /// [`LayerError::InvalidConfig`] for 0 units or when a layer after the head cannot
    /// take the new width.
    pub fn with_new_head(&self, units: usize, seed: u64) -> Result<(Self, usize)> {
        let head = self.head_index()?;
        let mut spec = self.spec().clone();
        if let LayerSpec::Dense(c) = &mut spec.layers[head].layer {
            c.units = units;
            c.lora = None;
        }
        let prefix = self.layer_prefix(head);
        let model = self.rebuild(spec, seed, |name| !name_matches(&prefix, name))?;
        Ok((model, head))
    }

    /// The same model with LoRA adapters (see [`LoraConfig`]) on every Dense and
    /// MultiHeadAttention layer whose index `select` accepts (on an attention layer,
    /// one pair on each of its four projections): their kernels and biases frozen,
    /// `lora_a` drawn from `seed` (`N(0, 1/in_features)`), `lora_b` zero, so the
    /// outputs are unchanged until training. Every other parameter is kept, value and frozen
    /// state; layers that already have adapters get new ones.
    ///
    /// # Errors
    /// [`LayerError::InvalidConfig`] for rank 0 or an `alpha` that is not a positive
    /// number.
    pub fn with_lora(&self, select: impl Fn(usize) -> bool, lora: LoraConfig, seed: u64) -> Result<Self> {
        let mut spec = self.spec().clone();
        for (i, node) in spec.layers.iter_mut().enumerate() {
            match &mut node.layer {
                LayerSpec::Dense(c) if select(i) => c.lora = Some(lora),
                LayerSpec::MultiHeadAttention(c) if select(i) => c.lora = Some(lora),
                _ => {}
            }
        }
        self.rebuild(spec, seed, |name| !matches!(name.rsplit('.').next(), Some("lora_a" | "lora_b")))
    }

    /// Folds every LoRA adapter into its kernel, `kernel + (α/r)·A·B` (in `f64`,
    /// rounded once to `T`; a MultiHeadAttention kernel is seen as the matrix
    /// `[in, out]` of its adapter, the same row-major values), and returns a plain
    /// model without adapters, for export: its predictions equal this model's up to rounding (checked to 1e-5 in the
    /// tests). Parameters other than the adapters are copied; every parameter of the
    /// result is trainable as its kind says (the frozen state is not carried).
    ///
    /// # Errors
    /// [`LayerError::Tensor`] or [`LayerError::Spec`] only if the parameters do not
    /// have the shapes their layers declare (they always do for a model built by this
    /// crate).
    pub fn merge_lora(&self) -> Result<Self> {
        let mut spec = self.spec().clone();
        let mut merged: Vec<(String, Tensor<T>)> = Vec::new();
        for (i, node) in spec.layers.iter_mut().enumerate() {
            let (lora, projections): (_, &[&str]) = match &mut node.layer {
                LayerSpec::Dense(c) => (c.lora.take(), &[""]),
                LayerSpec::MultiHeadAttention(c) => (c.lora.take(), &["query.", "key.", "value.", "attention_output."]),
                _ => continue,
            };
            let Some(lora) = lora else { continue };
            let prefix = self.layer_prefix(i);
            for part in projections {
                let get = |local: &str| self.parameter(&format!("{prefix}.{part}{local}")).map(|p| &p.value);
                let (Some(k), Some(a), Some(b)) = (get("kernel"), get("lora_a"), get("lora_b")) else {
                    continue;
                };
                let to64 = |t: &Tensor<T>| Tensor::<f64>::from(t.array().mapv(|v| v.as_f64()));
                let ab = to64(a).try_matmul(&to64(b))?;
                let s = lora.scaling();
                let k64 = to64(k);
                if k64.len() != ab.len() {
                    return Err(LayerError::Spec {
                        message: format!(
                            "{prefix}.{part}kernel has shape {:?} but its adapter gives {:?}",
                            k.shape(),
                            ab.shape()
                        ),
                    });
                }
                let sum: Vec<T> =
                    k64.array().iter().zip(ab.array().iter()).map(|(&w, &d)| T::of_f64(w + s * d)).collect();
                merged.push((format!("{prefix}.{part}kernel"), Tensor::try_from_vec(k.shape(), sum)?));
            }
        }
        let mut out = Model::build(spec, None)?;
        for p in out.parameters_mut() {
            if let Some((_, v)) = merged.iter().find(|(n, _)| *n == p.name) {
                p.value = Arc::new(v.clone());
            } else if let Some(old) = self.parameter(&p.name) {
                p.value = Arc::clone(&old.value);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_name_parts() {
        assert!(name_matches("layers.0", "layers.0.kernel"));
        assert!(name_matches("layers.0.", "layers.0.bias"));
        assert!(name_matches("layers.0.kernel", "layers.0.kernel"));
        assert!(!name_matches("layers.0", "layers.01.kernel"));
        assert!(!name_matches("layers.0.k", "layers.0.kernel"));
        assert!(!name_matches("layers.1", "layers.0.kernel"));
    }
}
