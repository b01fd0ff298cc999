//! # nn-train
//!
//! Training for nn models, as a library (so a team can train without the CLI):
//!
//! - [`fit`]: the training loop (Keras `Model.fit`): seeded per-epoch shuffles,
//!   forward, loss (+ L1/L2 penalties, reported separately), backward, gradient
//!   clipping, learning-rate schedule, optimizer step, validation, callbacks, a
//!   [`History`] of every epoch;
//! - [`evaluate`] and [`predict`] in evaluation mode with no graph recorded;
//! - [`metrics`]: loss, accuracy, top-k accuracy, per-class precision/recall/F1,
//!   confusion matrix, MSE, MAE; epoch figures are exact sample-weighted averages;
//! - [`callbacks`]: [`EarlyStopping`], [`ModelCheckpoint`], [`TerminateOnNaN`],
//!   [`CsvLogger`], [`ReduceLrOnPlateauCallback`];
//! - [`checkpoint`]: everything needed to resume a run exactly;
//! - [`tune`]: hyperparameter search (grid, random, successive halving), resumable;
//! - [`progress`]: Keras-style progress (a live bar on a terminal, one line per epoch
//!   otherwise), with Keras's `verbose` 0, 1, 2 or `"auto"` ([`Verbosity`]);
//! - [`tensorboard`]: TensorBoard event files ([`EventWriter`]) and the
//!   [`TensorBoard`] callback (per-epoch scalars of training and validation, weight
//!   histograms).
//!
//! Determinism: the same seed and thread count give bit-identical weights. All
//! randomness of epoch `k` (shuffle, dropout masks) derives from `(seed, k)`.

#![warn(missing_docs)]

pub mod callbacks;
pub mod checkpoint;
mod error;
mod fit;
mod history;
pub mod metrics;
mod model_file;
pub mod parallel;
pub mod progress;
pub mod tensorboard;
pub mod tune;

pub use callbacks::{
    Callback, CallbackCtx, Control, CsvLogger, EarlyStopping, ModelCheckpoint, ReduceLrOnPlateauCallback,
    TerminateOnNaN,
};
pub use error::{Result, TrainError};
pub use fit::{check_ranks, evaluate, evaluate_in, fit, predict, EpochProgress, Evaluation, FitConfig, Predictions};
pub use history::{format_metrics, EpochLog, History};
pub use metrics::RegressionReport;
pub use model_file::{load_model, ModelMetadata};
pub use progress::{Progress, Verbosity};
pub use tensorboard::{read_events, EventWriter, TensorBoard};
