//! Callbacks: code that runs at fixed points of [`fit`](crate::fit) and may stop
//! training, save the model or change the learning rate (Keras `keras.callbacks`).

use std::path::PathBuf;
use std::sync::Arc;

use nn_layers::Sequential;
use nn_optim::{Optimizer, ReduceLrOnPlateau};
use nn_tensor::Tensor;

use crate::error::Result;
use crate::history::{EpochLog, History};
use crate::progress::Progress;

/// What a callback wants after its hook ran.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop after this point, for the reason given (printed and kept in the history).
    Stop(String),
}

/// What a callback may look at and change.
pub struct CallbackCtx<'a> {
    /// The model being trained.
    pub model: &'a mut Sequential,
    /// Its optimizer.
    pub optimizer: &'a mut dyn Optimizer<f32>,
    /// The progress display, for messages.
    pub progress: &'a mut Progress,
    /// Metadata saved with any model a callback writes (class names, scaling, ...).
    pub metadata: &'a serde_json::Value,
}

/// A hook into the training loop. Every method has a default that does nothing.
pub trait Callback {
    /// Before the first epoch.
    fn on_train_begin(&mut self, _ctx: &mut CallbackCtx<'_>) -> Result<()> {
        Ok(())
    }

    /// After a batch's loss is known and before the optimizer updates the weights:
    /// returning [`Control::Stop`] here leaves the weights as they were before the batch.
    fn on_batch_loss(&mut self, _epoch: usize, _batch: usize, _loss: f64) -> Control {
        Control::Continue
    }

    /// After batch `batch` (1-based) of epoch `epoch` (1-based) updated the weights.
    /// Returning [`Control::Stop`] ends training there: in the middle of an epoch,
    /// [`fit`](crate::fit) then returns at once (no validation, no `on_epoch_end`)
    /// with [`History::interrupted`] saying where it stopped; after an epoch's last
    /// batch, the epoch is completed first.
    fn on_batch_end(&mut self, _epoch: usize, _batch: usize) -> Control {
        Control::Continue
    }

    /// Before an epoch's validation pass (Keras's `on_test_begin`, which `fit` calls
    /// around its validation too); not called when there is no validation data.
    fn on_test_begin(&mut self) {}

    /// After an epoch's validation pass, before [`Callback::on_epoch_end`].
    fn on_test_end(&mut self) {}

    /// After each epoch, with its figures (validation included).
    fn on_epoch_end(&mut self, _log: &EpochLog, _ctx: &mut CallbackCtx<'_>) -> Result<Control> {
        Ok(Control::Continue)
    }

    /// After the last epoch, whatever ended training.
    fn on_train_end(&mut self, _history: &mut History, _ctx: &mut CallbackCtx<'_>) -> Result<()> {
        Ok(())
    }
}

/// Whether a monitored metric improves when it goes up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lower is better (losses).
    Min,
    /// Higher is better (accuracy).
    Max,
    /// `Max` for names containing `acc`, `Min` otherwise (Keras's `auto`).
    Auto,
}

impl Mode {
    fn resolve(self, monitor: &str) -> Mode {
        match self {
            Mode::Auto if monitor.contains("acc") => Mode::Max,
            Mode::Auto => Mode::Min,
            m => m,
        }
    }

    /// Whether `current` beats `best` by more than `min_delta`.
    fn improves(self, current: f64, best: f64, min_delta: f64) -> bool {
        match self {
            Mode::Max => current - min_delta > best,
            _ => current + min_delta < best,
        }
    }
}

fn monitored(log: &EpochLog, monitor: &str, ctx: &mut CallbackCtx<'_>) -> Option<f64> {
    let v = log.get(monitor);
    if v.is_none() {
        ctx.progress.message(&format!("warning: metric `{monitor}` is not logged; the callback ignores this epoch"));
    }
    v
}

/// Stops training when a monitored metric has stopped improving (Keras
/// `EarlyStopping`): after `patience` epochs without an improvement larger than
/// `min_delta`. With `restore_best_weights`, the weights of the best epoch are put
/// back at the end of training, whatever ended it, and that epoch is printed.
pub struct EarlyStopping {
    monitor: String,
    mode: Mode,
    min_delta: f64,
    patience: usize,
    restore_best_weights: bool,
    best: f64,
    best_epoch: usize,
    wait: usize,
    best_weights: Option<Vec<Arc<Tensor<f32>>>>,
}

impl EarlyStopping {
    /// Monitors `monitor` (e.g. `val_loss`) with `patience` epochs; mode `Auto`,
    /// `min_delta` 0, best weights restored.
    pub fn new(monitor: impl Into<String>, patience: usize) -> Self {
        let monitor = monitor.into();
        let mode = Mode::Auto.resolve(&monitor);
        EarlyStopping {
            monitor,
            mode,
            min_delta: 0.0,
            patience,
            restore_best_weights: true,
            best: f64::NAN,
            best_epoch: 0,
            wait: 0,
            best_weights: None,
        }
    }

    /// Sets whether higher or lower is better.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode.resolve(&self.monitor);
        self
    }

    /// Sets the smallest change that counts as an improvement.
    pub fn with_min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta.abs();
        self
    }

    /// Sets whether the best epoch's weights are restored at the end.
    pub fn with_restore_best_weights(mut self, restore: bool) -> Self {
        self.restore_best_weights = restore;
        self
    }

    /// The best epoch so far (1-based; 0 before any).
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }
}

impl Callback for EarlyStopping {
    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut CallbackCtx<'_>) -> Result<Control> {
        let Some(current) = monitored(log, &self.monitor, ctx) else { return Ok(Control::Continue) };
        if self.best.is_nan() || self.mode.improves(current, self.best, self.min_delta) {
            self.best = current;
            self.best_epoch = log.epoch;
            self.wait = 0;
            if self.restore_best_weights {
                // Arc clones: no copy now; the optimizer's next update copies on write.
                self.best_weights = Some(ctx.model.parameters().iter().map(|p| p.value.clone()).collect());
            }
            return Ok(Control::Continue);
        }
        self.wait += 1;
        if self.wait >= self.patience {
            return Ok(Control::Stop(format!(
                "early stopping: {} did not improve for {} epochs (best {:.4} at epoch {})",
                self.monitor, self.patience, self.best, self.best_epoch
            )));
        }
        Ok(Control::Continue)
    }

    fn on_train_end(&mut self, history: &mut History, ctx: &mut CallbackCtx<'_>) -> Result<()> {
        if let Some(best) = self.best_weights.take() {
            let last = history.epochs.last().map(|e| e.epoch).unwrap_or(0);
            if self.best_epoch != last {
                for (p, w) in ctx.model.parameters_mut().iter_mut().zip(best) {
                    p.value = w;
                }
                ctx.progress.message(&format!(
                    "Restoring model weights from the end of the best epoch: {} ({} = {:.4})",
                    self.best_epoch, self.monitor, self.best
                ));
            }
            history.restored_epoch = Some(self.best_epoch);
        }
        Ok(())
    }
}

/// Saves the model (model.json + weights.safetensors, atomically) after each epoch,
/// or only when the monitored metric improved (Keras `ModelCheckpoint`).
pub struct ModelCheckpoint {
    dir: PathBuf,
    monitor: String,
    mode: Mode,
    save_best_only: bool,
    best: f64,
}

impl ModelCheckpoint {
    /// Saves into `dir` after every epoch.
    pub fn every_epoch(dir: impl Into<PathBuf>) -> Self {
        ModelCheckpoint {
            dir: dir.into(),
            monitor: String::new(),
            mode: Mode::Min,
            save_best_only: false,
            best: f64::NAN,
        }
    }

    /// Saves into `dir` only when `monitor` improved (mode `Auto`).
    pub fn best_only(dir: impl Into<PathBuf>, monitor: impl Into<String>) -> Self {
        let monitor = monitor.into();
        let mode = Mode::Auto.resolve(&monitor);
        ModelCheckpoint { dir: dir.into(), monitor, mode, save_best_only: true, best: f64::NAN }
    }
}

impl Callback for ModelCheckpoint {
    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut CallbackCtx<'_>) -> Result<Control> {
        if self.save_best_only {
            let Some(current) = monitored(log, &self.monitor, ctx) else { return Ok(Control::Continue) };
            if !current.is_finite() || !(self.best.is_nan() || self.mode.improves(current, self.best, 0.0)) {
                return Ok(Control::Continue);
            }
            self.best = current;
        }
        if ctx.model.parameters().iter().any(|p| p.value.array().iter().any(|v| !v.is_finite())) {
            ctx.progress.message("ModelCheckpoint: weights are not finite; nothing saved");
            return Ok(Control::Continue);
        }
        ctx.model.save_with_metadata(&self.dir, ctx.metadata)?;
        Ok(Control::Continue)
    }
}

/// Stops training at the first non-finite batch loss, before that batch updates the
/// weights, naming the epoch and batch (Keras `TerminateOnNaN`, but the weights stay
/// finite).
#[derive(Debug, Default)]
pub struct TerminateOnNaN;

impl Callback for TerminateOnNaN {
    fn on_batch_loss(&mut self, epoch: usize, batch: usize, loss: f64) -> Control {
        if loss.is_finite() {
            Control::Continue
        } else {
            Control::Stop(format!("non-finite loss {loss} at epoch {epoch}, batch {batch}: training stopped"))
        }
    }
}

/// Rewrites a CSV file of the history after every epoch (Keras `CSVLogger`).
pub struct CsvLogger {
    path: PathBuf,
    history: History,
}

impl CsvLogger {
    /// Logs to `path` (replaced atomically each epoch).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CsvLogger { path: path.into(), history: History::default() }
    }

    /// Starts from epochs already logged (a resumed run).
    pub fn with_history(mut self, history: History) -> Self {
        self.history = history;
        self
    }
}

impl Callback for CsvLogger {
    fn on_epoch_end(&mut self, log: &EpochLog, _ctx: &mut CallbackCtx<'_>) -> Result<Control> {
        self.history.epochs.push(log.clone());
        self.history.write_csv(&self.path)?;
        Ok(Control::Continue)
    }
}

/// Lowers the learning rate when a metric has stopped improving (Keras
/// `ReduceLROnPlateau`), through nn-optim's [`ReduceLrOnPlateau`].
pub struct ReduceLrOnPlateauCallback {
    reducer: ReduceLrOnPlateau,
}

impl ReduceLrOnPlateauCallback {
    /// Wraps a configured reducer (its monitor names the metric, e.g. `val_loss`).
    pub fn new(reducer: ReduceLrOnPlateau) -> Self {
        ReduceLrOnPlateauCallback { reducer }
    }

    /// The reducer with its state (for checkpoints).
    pub fn reducer(&self) -> &ReduceLrOnPlateau {
        &self.reducer
    }
}

impl Callback for ReduceLrOnPlateauCallback {
    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut CallbackCtx<'_>) -> Result<Control> {
        let monitor = self.reducer.monitor.clone();
        let Some(current) = monitored(log, &monitor, ctx) else { return Ok(Control::Continue) };
        let before = ctx.optimizer.learning_rate();
        if self.reducer.apply(current, &mut *ctx.optimizer)? {
            ctx.progress.message(&format!(
                "ReduceLROnPlateau: {monitor} stalled; learning rate {before:.3e} -> {:.3e}",
                ctx.optimizer.learning_rate()
            ));
        }
        Ok(Control::Continue)
    }
}
