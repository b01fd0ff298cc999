//! The error type of nn-train.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Everything `fit`, `evaluate`, `predict` and the callbacks can report.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A layer or model error (shapes, save/load).
    #[error(transparent)]
    Layer(#[from] nn_layers::LayerError),
    /// An optimizer, schedule or optimizer-state error.
    #[error(transparent)]
    Optim(#[from] nn_optim::OptimError),
    /// A dataset error.
    #[error(transparent)]
    Data(#[from] nn_data::DataError),
    /// A tensor error.
    #[error(transparent)]
    Tensor(#[from] nn_tensor::TensorError),
    /// An autograd error.
    #[error(transparent)]
    Autograd(#[from] nn_autograd::AutogradError),
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The data does not fit the model or the loss.
    #[error("{0}")]
    Mismatch(String),
    /// A data-parallel group failed or its ranks disagree (see [`crate::parallel`]).
    #[error("{0}")]
    Parallel(String),
    /// A configuration value is out of range (batch size 0, no epochs, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl TrainError {
    /// An [`TrainError::Io`] for `path`.
    pub fn io(path: &Path, e: impl std::fmt::Display) -> Self {
        TrainError::Io { path: path.to_path_buf(), message: e.to_string() }
    }
}

/// Shorthand for `Result<T, TrainError>`.
pub type Result<T> = std::result::Result<T, TrainError>;
