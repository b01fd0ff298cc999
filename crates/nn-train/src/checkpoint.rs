//! Resumable training checkpoints.
//!
//! `DIR/` holds `weights.safetensors` (the model, as [`Sequential::save_weights`]
//! writes it), `spec.json` (the architecture, [`SPEC_FILE`]), `optimizer.safetensors` (configuration, learning rate, iteration
//! count and every moment, as [`nn_optim::save_checkpoint`] writes it, with the
//! schedule) and `state.json` (epochs done, seed, the history so far). The RNG state
//! needs no file: all randomness of epoch `k` derives from `(seed, k)`, so a run
//! resumed after epoch `k` draws exactly what the uninterrupted run would have.
//!
//! The folder is replaced as a whole: a new checkpoint is written to `DIR.new/`
//! (every file by `nn_tensor::io::write_atomic`, the folder synced), the old one
//! moved to `DIR.old/`, the new one renamed into place, the old one removed. A crash
//! at any point leaves a complete checkpoint in `DIR/` or `DIR.old/`, and [`load`]
//! looks in both; an error (a full disk) removes `DIR.new/` and leaves `DIR/` as
//! it was. Files the caller attaches (the CLI's `run.json`) travel inside the
//! checkpoint, so they always describe the run the checkpoint belongs to; with
//! [`ResumeCheckpoint::publishing_to`] they and `history.csv` are then copied to
//! the run folder, which so changes only after a checkpoint succeeded.

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
    /// Where epoch `epochs_done + 1` stood when training stopped inside it (a
    /// SIGINT), or `None` for a checkpoint at an epoch boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<crate::fit::EpochProgress>,
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
/// epochs into `dir` (replaced as a whole; see the module docs), with `attachments`
/// (file name, bytes) written into it beside its own files (read them back with
/// [`attachment`]).
///
/// # Errors
/// [`TrainError::Io`] naming the file or folder that could not be written or
/// renamed, and the errors of saving weights and optimizer state. On any error
/// `DIR.new/` is removed and the previous checkpoint stays as it was.
pub fn save(
    dir: &Path,
    model: &Sequential,
    optimizer: &dyn Optimizer<f32>,
    schedule: Option<&LrSchedule>,
    state: &CheckpointState,
    attachments: &[(&str, &[u8])],
) -> Result<()> {
    let new = sibling(dir, ".new");
    let _ = std::fs::remove_dir_all(&new);
    let staged = stage(&new, model, optimizer, schedule, state, attachments);
    if let Err(e) = staged {
        let _ = std::fs::remove_dir_all(&new);
        return Err(e);
    }
    nn_tensor::io::crash_point("checkpoint:staged");
    let old = sibling(dir, ".old");
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&old);
        if let Err(e) = std::fs::rename(dir, &old) {
            let _ = std::fs::remove_dir_all(&new);
            return Err(TrainError::io(dir, e));
        }
        nn_tensor::io::crash_point("checkpoint:old_moved");
    }
    std::fs::rename(&new, dir).map_err(|e| TrainError::io(dir, e))?;
    nn_tensor::io::sync_dir(parent).map_err(|e| TrainError::io(parent, e))?;
    nn_tensor::io::crash_point("checkpoint:swapped");
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Writes every file of a checkpoint into the new folder `new`.
fn stage(
    new: &Path,
    model: &Sequential,
    optimizer: &dyn Optimizer<f32>,
    schedule: Option<&LrSchedule>,
    state: &CheckpointState,
    attachments: &[(&str, &[u8])],
) -> Result<()> {
    std::fs::create_dir_all(new).map_err(|e| TrainError::io(new, e))?;
    model.save_weights(&new.join("weights.safetensors"))?;
    let spec = model.spec().to_json();
    let json = serde_json::to_vec_pretty(state).map_err(|e| TrainError::io(new, e))?;
    nn_optim::save_checkpoint(new.join("optimizer.safetensors"), optimizer, schedule, None)?;
    let mut files: Vec<(&str, &[u8])> = vec![(SPEC_FILE, spec.as_bytes())];
    files.extend_from_slice(attachments);
    // state.json last: a folder holding it is complete.
    files.push(("state.json", &json));
    for (name, bytes) in files {
        let path = new.join(name);
        nn_tensor::io::write_atomic(&path, |w| w.write_all(bytes)).map_err(|e| TrainError::io(&path, e))?;
    }
    nn_tensor::io::sync_dir(new).map_err(|e| TrainError::io(new, e))
}

/// The folder holding the checkpoint of `dir`: `dir` itself, or `DIR.old/` when a
/// crash interrupted a swap.
fn current(dir: &Path) -> PathBuf {
    if dir.join("state.json").exists() {
        dir.to_path_buf()
    } else {
        sibling(dir, ".old")
    }
}

/// The bytes of the file `name` attached to the checkpoint in `dir` (or `DIR.old/`)
/// by [`save`], or `None` when it has no such file.
///
/// # Errors
/// [`TrainError::Io`] when the file exists but cannot be read.
pub fn attachment(dir: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let path = current(dir).join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TrainError::io(&path, e)),
    }
}

/// Undoes a swap that a crash interrupted after moving the previous checkpoint
/// aside: when `dir` is missing and `DIR.old/` is complete, `DIR.old/` is renamed
/// back to `dir` (the newer `DIR.new/`, never published, is the caller's to
/// remove). Returns whether it did. Call it only while no other process writes the
/// checkpoint (under the run folder's lock).
///
/// # Errors
/// [`TrainError::Io`] when the rename fails.
pub fn recover(dir: &Path) -> Result<bool> {
    let old = sibling(dir, ".old");
    if dir.exists() || !old.join("state.json").is_file() {
        return Ok(false);
    }
    std::fs::rename(&old, dir).map_err(|e| TrainError::io(dir, e))?;
    Ok(true)
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
    let dir = current(dir);
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
    let dir = current(dir);
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
    attachments: Vec<(String, Vec<u8>)>,
    publish: Option<PathBuf>,
}

impl ResumeCheckpoint {
    /// Checkpoints into `dir`; `history` holds the epochs of a resumed run so far
    /// (empty for a new run, with its seed set); `schedule` is saved alongside.
    pub fn new(dir: impl Into<PathBuf>, history: History, schedule: Option<LrSchedule>) -> Self {
        ResumeCheckpoint { dir: dir.into(), schedule, history, attachments: Vec::new(), publish: None }
    }

    /// Saves the file `name` with `bytes` inside every checkpoint ([`save`]).
    pub fn with_attachment(mut self, name: impl Into<String>, bytes: Vec<u8>) -> Self {
        self.attachments.push((name.into(), bytes));
        self
    }

    /// After each successful checkpoint, writes the attached files and `history.csv`
    /// (the history so far, [`History::write_csv`]) into `dir` too, each atomically:
    /// so they change only together with a checkpoint, and a failed one (a full
    /// disk) leaves them as they were.
    pub fn publishing_to(mut self, dir: impl Into<PathBuf>) -> Self {
        self.publish = Some(dir.into());
        self
    }

    /// Writes a checkpoint now: after `epochs_done` epochs of the history given so
    /// far (0 for the checkpoint of a run about to start), plus `partial`, the steps
    /// of the next epoch a stopped run finished ([`History::interrupted`]).
    ///
    /// # Errors
    /// As [`save`], then [`TrainError::Io`] for a file published to the run folder.
    pub fn save_now(
        &self,
        model: &Sequential,
        optimizer: &dyn Optimizer<f32>,
        epochs_done: usize,
        partial: Option<crate::fit::EpochProgress>,
    ) -> Result<()> {
        let state = CheckpointState {
            format_version: 1,
            epochs_done,
            seed: self.history.seed,
            history: self.history.clone(),
            partial,
        };
        let attachments: Vec<(&str, &[u8])> =
            self.attachments.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
        save(&self.dir, model, optimizer, self.schedule.as_ref(), &state, &attachments)?;
        if let Some(out) = &self.publish {
            for (name, bytes) in &self.attachments {
                let path = out.join(name);
                nn_tensor::io::write_atomic(&path, |w| w.write_all(bytes)).map_err(|e| TrainError::io(&path, e))?;
            }
            self.history.write_csv(&out.join("history.csv"))?;
            nn_tensor::io::crash_point("run:published");
        }
        Ok(())
    }
}

impl Callback for ResumeCheckpoint {
    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut CallbackCtx<'_>) -> Result<Control> {
        self.history.epochs.push(log.clone());
        if ctx.model.parameters().iter().any(|p| p.value.array().iter().any(|v| !v.is_finite())) {
            ctx.progress.message("checkpoint skipped: weights are not finite");
            return Ok(Control::Continue);
        }
        self.save_now(ctx.model, &*ctx.optimizer, log.epoch, None)?;
        Ok(Control::Continue)
    }
}
