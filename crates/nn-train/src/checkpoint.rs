//! Resumable training checkpoints.
//!
//! `DIR/` holds `weights.safetensors` (the model, as [`Sequential::save_weights`]
//! writes it), `spec.json` (the architecture, [`SPEC_FILE`]), `optimizer.safetensors` (configuration, learning rate, iteration
//! count and every moment, as [`nn_optim::save_checkpoint`] writes it, with the
//! schedule) and `state.json` (epochs done, seed, the history so far). The RNG state
//! needs no file: all randomness of epoch `k` derives from `(seed, k)`, so a run
//! resumed after epoch `k` draws exactly what the uninterrupted run would have.
//!
//! The folder is replaced as a whole: a new checkpoint is written to `DIR.new/`,
//! the old one moved to `DIR.old/`, the new one renamed into place, the old one
//! removed. A crash at any point leaves a complete checkpoint in `DIR/` or
//! `DIR.old/`, and [`load`] looks in both.

use std::path::{Path, PathBuf};

use nn_layers::{ModelSpec, Sequential};
use nn_optim::{LrSchedule, Optimizer};
use serde::{Deserialize, Serialize};

use crate::callbacks::{Callback, CallbackCtx, Control};
use crate::error::{Result, TrainError};
use crate::history::{EpochLog, History};

/// What `state.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Format version of this file.
    pub format_version: u32,
    /// Epochs completed: the `initial_epoch` of the resumed run.
    pub epochs_done: usize,
    /// The run's seed.
    pub seed: u64,
    /// The history up to `epochs_done`.
    pub history: History,
}

/// A loaded checkpoint.
pub struct Loaded {
    /// The optimizer checkpoint (configuration, state, schedule).
    pub optimizer: nn_optim::OptimizerCheckpoint<f32>,
    /// Epochs done, seed and history.
    pub state: CheckpointState,
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    dir.with_file_name(name)
}

/// Writes a checkpoint of `model`, `optimizer` and `schedule` after `state.epochs_done`
/// epochs into `dir` (replaced as a whole; see the module docs).
///
/// # Errors
/// [`TrainError::Io`] and the errors of saving weights and optimizer state.
pub fn save(
    dir: &Path,
    model: &Sequential,
    optimizer: &dyn Optimizer<f32>,
    schedule: Option<&LrSchedule>,
    state: &CheckpointState,
) -> Result<()> {
    let new = sibling(dir, ".new");
    let old = sibling(dir, ".old");
    let _ = std::fs::remove_dir_all(&new);
    std::fs::create_dir_all(&new).map_err(|e| TrainError::io(&new, e))?;
    model.save_weights(&new.join("weights.safetensors"))?;
    let spec_path = new.join(SPEC_FILE);
    let spec = model.spec().to_json();
    nn_tensor::io::write_atomic(&spec_path, |w| w.write_all(spec.as_bytes()))
        .map_err(|e| TrainError::io(&spec_path, e))?;
    nn_optim::save_checkpoint(new.join("optimizer.safetensors"), optimizer, schedule, None)?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| TrainError::io(&new, e))?;
    let state_path = new.join("state.json");
    nn_tensor::io::write_atomic(&state_path, |w| w.write_all(&json)).map_err(|e| TrainError::io(&state_path, e))?;
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(dir, &old).map_err(|e| TrainError::io(dir, e))?;
    }
    std::fs::rename(&new, dir).map_err(|e| TrainError::io(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Whether `dir` (or `DIR.old/`, when a crash interrupted a swap) holds a checkpoint.
pub fn exists(dir: &Path) -> bool {
    dir.join("state.json").exists() || sibling(dir, ".old").join("state.json").exists()
}

/// The file of a checkpoint that holds the model's architecture (its [`ModelSpec`]
/// as JSON), so that a resumed run rebuilds the model it checkpointed even when the
/// spec file it started from has changed or gone.
pub const SPEC_FILE: &str = "spec.json";

/// The architecture saved in the checkpoint in `dir` (or `DIR.old/`), or `None` for a
/// checkpoint written before checkpoints held it.
///
/// # Errors
/// [`TrainError::Io`] when the file cannot be read or is not a model spec.
pub fn load_spec(dir: &Path) -> Result<Option<ModelSpec>> {
    let dir = if dir.join("state.json").exists() { dir.to_path_buf() } else { sibling(dir, ".old") };
    let path = dir.join(SPEC_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    ModelSpec::from_json(&text)
        .map(Some)
        .map_err(|e| TrainError::io(&path, std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())))
}

/// Loads the checkpoint in `dir` (or `DIR.old/` when a crash interrupted a swap) into
/// `model`'s weights, returning the optimizer checkpoint and the run state.
///
/// # Errors
/// [`TrainError::Io`] when neither folder holds a checkpoint, or a weight or an
/// optimizer state value is not finite (naming the tensor); the weight and optimizer
/// loaders' errors for a damaged or mismatched file.
pub fn load(dir: &Path, model: &mut Sequential) -> Result<Loaded> {
    let dir = if dir.join("state.json").exists() { dir.to_path_buf() } else { sibling(dir, ".old") };
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| TrainError::io(&state_path, e))?;
    let weights = dir.join("weights.safetensors");
    model.load_weights(&weights)?;
    if let Some(p) = model.parameters().iter().find(|p| p.value.to_vec().iter().any(|v| !v.is_finite())) {
        return Err(TrainError::io(
            &weights,
            format!("tensor {}: holds values that are not finite (NaN or infinite)", p.name),
        ));
    }
    let optimizer_path = dir.join("optimizer.safetensors");
    let optimizer: nn_optim::OptimizerCheckpoint<f32> = nn_optim::load_checkpoint(&optimizer_path)?;
    if !optimizer.state.learning_rate.is_finite() {
        return Err(TrainError::io(&optimizer_path, "the learning rate in force is not finite"));
    }
    for (name, p) in &optimizer.state.params {
        if let Some((slot, _)) = p.slots.iter().find(|(_, t)| t.to_vec().iter().any(|v| !v.is_finite())) {
            return Err(TrainError::io(
                &optimizer_path,
                format!("optimizer state {slot} of {name}: holds values that are not finite (NaN or infinite)"),
            ));
        }
    }
    Ok(Loaded { optimizer, state })
}

/// A callback writing a resumable checkpoint after every epoch.
pub struct ResumeCheckpoint {
    dir: PathBuf,
    schedule: Option<LrSchedule>,
    history: History,
}

impl ResumeCheckpoint {
    /// Checkpoints into `dir`; `history` holds the epochs of a resumed run so far
    /// (empty for a new run, with its seed set); `schedule` is saved alongside.
    pub fn new(dir: impl Into<PathBuf>, history: History, schedule: Option<LrSchedule>) -> Self {
        ResumeCheckpoint { dir: dir.into(), schedule, history }
    }
}

impl Callback for ResumeCheckpoint {
    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut CallbackCtx<'_>) -> Result<Control> {
        self.history.epochs.push(log.clone());
        if ctx.model.parameters().iter().any(|p| p.value.array().iter().any(|v| !v.is_finite())) {
            ctx.progress.message("checkpoint skipped: weights are not finite");
            return Ok(Control::Continue);
        }
        let state = CheckpointState {
            format_version: 1,
            epochs_done: log.epoch,
            seed: self.history.seed,
            history: self.history.clone(),
        };
        save(&self.dir, ctx.model, &*ctx.optimizer, self.schedule.as_ref(), &state)?;
        Ok(Control::Continue)
    }
}
