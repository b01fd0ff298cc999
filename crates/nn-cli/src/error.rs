//! The CLI's error: one clear line, then a non-zero exit.

use thiserror::Error;

/// Everything a command can fail with.
#[derive(Debug, Error)]
pub enum CliError {
    /// A flag value that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// Training, evaluation or prediction failed.
    #[error(transparent)]
    Train(#[from] nn_train::TrainError),
    /// A model could not be built, saved or loaded.
    #[error(transparent)]
    Layer(#[from] nn_layers::LayerError),
    /// A dataset could not be read or split.
    #[error(transparent)]
    Data(#[from] nn_data::DataError),
    /// An optimizer could not be built or restored.
    #[error(transparent)]
    Optim(#[from] nn_optim::OptimError),
    /// Text could not be read, tokenized or split (`--data text:…`, `--text-column`).
    #[error(transparent)]
    Text(#[from] nn_text::TextError),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl CliError {
    /// An [`CliError::Io`] for `path`.
    pub fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        CliError::Io { path: path.display().to_string(), message: e.to_string() }
    }
}

/// Shorthand for `Result<T, CliError>`.
pub type Result<T> = std::result::Result<T, CliError>;
