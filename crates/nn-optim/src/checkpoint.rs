//! Saving and loading optimizer state (with its configuration and schedules) as one
//! safetensors file, written atomically.
//!
//! # Format (version 1)
//! A safetensors file whose tensors are the per-parameter slots, named
//! `{parameter name}/{slot}` (e.g. `layers.0.kernel/exp_avg`), stored in the element
//! type of the run (`F32` or `F64`, little-endian, bit-exact). The header's
//! `__metadata__` holds one entry, `nn_optim`, a JSON document:
//!
//! ```json
//! {"format": "nn-optim-state", "version": 1, "dtype": "f32",
//!  "config": {"kind": "adam", "learning_rate": 0.001, ...},
//!  "learning_rate": 0.00095, "iterations": 1200,
//!  "params": {"layers.0.kernel": {"step": 1200, "slots": ["exp_avg", "exp_avg_sq"]}},
//!  "schedule": {"kind": "cosine_decay", ...} or null,
//!  "plateau": {"monitor": "val_loss", ..., "best": 0.31, "wait": 2, "cooldown_counter": 0} or null}
//! ```
//!
//! Floats in the JSON are written shortest-round-trip and parsed exactly, so a
//! resumed run continues bit for bit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use nn_tensor::{DType, Element, Tensor};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result};
use crate::optimizer::{Optimizer, OptimizerConfig};
use crate::schedule::{LrSchedule, ReduceLrOnPlateau};
use crate::state::{OptimizerState, ParamState};

const FORMAT: &str = "nn-optim-state";
const VERSION: u32 = 1;
const METADATA_KEY: &str = "nn_optim";

/// Everything a checkpoint file holds: the optimizer's configuration and state, and
/// the schedules driving its learning rate.
///
/// Resume with `config.build(rules)` (the same [`ParamRules`](crate::ParamRules) as the
/// interrupted run), then [`Optimizer::load_state`] with `state`.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerCheckpoint<T: Element> {
    /// The optimizer's configuration.
    pub config: OptimizerConfig,
    /// Its state (learning rate in force, iterations, moments by parameter name).
    pub state: OptimizerState<T>,
    /// The step schedule, if one was saved.
    pub schedule: Option<LrSchedule>,
    /// The plateau reducer with its state, if one was saved.
    pub plateau: Option<ReduceLrOnPlateau>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    dtype: String,
    config: OptimizerConfig,
    learning_rate: f64,
    iterations: u64,
    params: BTreeMap<String, ParamHeader>,
    schedule: Option<LrSchedule>,
    plateau: Option<ReduceLrOnPlateau>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamHeader {
    step: u64,
    slots: Vec<String>,
}

fn tensor_key(param: &str, slot: &str) -> String {
    format!("{param}/{slot}")
}

fn memory() -> PathBuf {
    PathBuf::from("<memory>")
}

/// The checkpoint of `optimizer` (and optional schedules) as bytes in the format above.
///
/// # Errors
/// [`OptimError::Format`] if serialisation fails (a header over safetensors' 100 MB limit).
pub fn checkpoint_to_bytes<T: Element>(
    optimizer: &dyn Optimizer<T>,
    schedule: Option<&LrSchedule>,
    plateau: Option<&ReduceLrOnPlateau>,
) -> Result<Vec<u8>> {
    let state = optimizer.state();
    let header = Header {
        format: FORMAT.to_string(),
        version: VERSION,
        dtype: T::DTYPE.to_string(),
        config: optimizer.config(),
        learning_rate: state.learning_rate,
        iterations: state.iterations,
        params: state
            .params
            .iter()
            .map(|(name, ps)| {
                (name.clone(), ParamHeader { step: ps.step, slots: ps.slots.iter().map(|(s, _)| s.clone()).collect() })
            })
            .collect(),
        schedule: schedule.cloned(),
        plateau: plateau.cloned(),
    };
    let format_err = |message: String| OptimError::Format { path: memory(), message };
    let json = serde_json::to_string(&header).map_err(|e| format_err(e.to_string()))?;

    let dtype = match T::DTYPE {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    };
    let mut blobs = Vec::new();
    for (name, ps) in &state.params {
        for (slot, t) in &ps.slots {
            blobs.push((tensor_key(name, slot), t.shape().to_vec(), to_le_bytes(t)));
        }
    }
    let views = blobs
        .iter()
        .map(|(key, shape, bytes)| {
            TensorView::new(dtype, shape.clone(), bytes)
                .map(|v| (key.as_str(), v))
                .map_err(|e| format_err(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([(METADATA_KEY.to_string(), json)]);
    safetensors::serialize(views, Some(metadata)).map_err(|e| format_err(e.to_string()))
}

/// Writes the checkpoint of `optimizer` (and optional schedules) to `path`
/// atomically: to a temporary file in the same directory, flushed to disk, then
/// renamed over `path`, so a crash never leaves a half-written checkpoint.
///
/// # Errors
/// [`OptimError::Io`] naming `path` when writing fails; [`OptimError::Format`] as
/// [`checkpoint_to_bytes`].
pub fn save_checkpoint<T: Element>(
    path: impl AsRef<Path>,
    optimizer: &dyn Optimizer<T>,
    schedule: Option<&LrSchedule>,
    plateau: Option<&ReduceLrOnPlateau>,
) -> Result<()> {
    let path = path.as_ref();
    let bytes = checkpoint_to_bytes(optimizer, schedule, plateau)?;
    nn_tensor::io::write_atomic(path, |w| w.write_all(&bytes))
        .map_err(|source| OptimError::Io { path: path.to_path_buf(), source })
}

/// Reads a checkpoint written by [`save_checkpoint`].
///
/// # Errors
/// [`OptimError::Io`] if the file cannot be read; otherwise as [`checkpoint_from_bytes`],
/// with `path` in the message.
pub fn load_checkpoint<T: Element>(path: impl AsRef<Path>) -> Result<OptimizerCheckpoint<T>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| OptimError::Io { path: path.to_path_buf(), source })?;
    parse(&bytes, path)
}

/// Parses checkpoint bytes from [`checkpoint_to_bytes`].
///
/// # Errors
/// [`OptimError::Format`] for bytes that are not a safetensors file, lack or have
/// malformed `nn_optim` metadata, come from another format version, hold another
/// element type than `T`, miss a tensor the metadata names, have tensors the metadata
/// does not name, or hold an invalid schedule;
/// [`OptimError::InvalidHyperparameter`] for invalid saved settings.
pub fn checkpoint_from_bytes<T: Element>(bytes: &[u8]) -> Result<OptimizerCheckpoint<T>> {
    parse(bytes, &memory())
}

fn parse<T: Element>(bytes: &[u8], path: &Path) -> Result<OptimizerCheckpoint<T>> {
    let bad = |message: String| OptimError::Format { path: path.to_path_buf(), message };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| bad(format!("no `{METADATA_KEY}` metadata: not an nn-optim checkpoint")))?;
    let header: Header =
        serde_json::from_str(json).map_err(|e| bad(format!("malformed `{METADATA_KEY}` metadata: {e}")))?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(bad(format!(
            "format `{}` version {} is not `{FORMAT}` version {VERSION}",
            header.format, header.version
        )));
    }
    if header.dtype != T::DTYPE.to_string() {
        return Err(bad(format!("the state holds {} tensors, this run uses {}", header.dtype, T::DTYPE)));
    }
    if let Some(s) = &header.schedule {
        s.validate()?;
    }
    if let Some(p) = &header.plateau {
        p.validate()?;
    }
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let mut expected_keys = std::collections::HashSet::new();
    let mut params = BTreeMap::new();
    for (name, ph) in header.params {
        let mut slots = Vec::with_capacity(ph.slots.len());
        for slot in ph.slots {
            let key = tensor_key(&name, &slot);
            let view = tensors.tensor(&key).map_err(|_| bad(format!("tensor `{key}` is missing")))?;
            let t = from_view::<T>(&view).map_err(|m| bad(format!("tensor `{key}`: {m}")))?;
            slots.push((slot, t));
            expected_keys.insert(key);
        }
        params.insert(name, ParamState { step: ph.step, slots });
    }
    if let Some(extra) = tensors.names().into_iter().filter(|k| !expected_keys.contains(*k)).min() {
        return Err(bad(format!("tensor `{extra}` is not named in the metadata")));
    }
    let state = OptimizerState {
        optimizer: header.config.name().to_string(),
        learning_rate: header.learning_rate,
        iterations: header.iterations,
        params,
    };
    Ok(OptimizerCheckpoint { config: header.config, state, schedule: header.schedule, plateau: header.plateau })
}

fn to_le_bytes<T: Element>(t: &Tensor<T>) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.len() * std::mem::size_of::<T>());
    // Row-major order whatever the layout; `as_f64` is exact and the cast back to
    // f32 for F32 tensors is exact too.
    for &x in t.array() {
        match T::DTYPE {
            DType::F32 => out.extend_from_slice(&(x.as_f64() as f32).to_le_bytes()),
            DType::F64 => out.extend_from_slice(&x.as_f64().to_le_bytes()),
        }
    }
    out
}

fn from_view<T: Element>(view: &TensorView<'_>) -> std::result::Result<Tensor<T>, String> {
    let data = view.data();
    let values: Vec<T> = match (view.dtype(), T::DTYPE) {
        (Dtype::F32, DType::F32) => {
            data.chunks_exact(4).map(|c| T::of_f64(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)).collect()
        }
        (Dtype::F64, DType::F64) => data
            .chunks_exact(8)
            .map(|c| T::of_f64(f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])))
            .collect(),
        (d, _) => return Err(format!("dtype {d:?}, expected {}", T::DTYPE)),
    };
    Tensor::try_from_vec(view.shape(), values).map_err(|e| e.to_string())
}
