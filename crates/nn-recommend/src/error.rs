//! The error type of nn-recommend.

use std::path::PathBuf;

/// Everything nn-recommend can fail with. Each variant names its context (file, row,
/// column, expected vs got) so the CLI prints it as one `error:` line.
#[derive(Debug, thiserror::Error)]
pub enum RecError {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A ratings or items file is malformed: `row` counts data rows from 1 (the
    /// header is row 0), `column` is the header name when known.
    #[error("{path}: {}{}: {message}", if *row == 0 { "header".to_string() } else { format!("row {row}") }, column.as_ref().map(|c| format!(", column \"{c}\"")).unwrap_or_default())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The data row (1-based; 0 is the header).
        row: usize,
        /// The column's header name, when the error is about one column.
        column: Option<String>,
        /// What was expected and what was found.
        message: String,
    },
    /// Bad settings (an unknown split, a zero embedding size, a column that does not
    /// exist, an empty split).
    #[error("{0}")]
    Config(String),
    /// A user or item id that the model does not know, where no fallback applies.
    #[error("{kind} id \"{id}\" is not in the model ({known} known {kind}s)")]
    UnknownId {
        /// `user` or `item`.
        kind: &'static str,
        /// The id as given.
        id: String,
        /// How many ids of that kind the model knows.
        known: usize,
    },
    /// A layer of the dense part failed.
    #[error(transparent)]
    Layer(#[from] nn_layers::LayerError),
    /// The tape failed.
    #[error(transparent)]
    Autograd(#[from] nn_autograd::AutogradError),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] nn_tensor::TensorError),
    /// An optimizer failed.
    #[error(transparent)]
    Optim(#[from] nn_optim::OptimError),
    /// A saved model could not be decoded.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// `Result` with [`RecError`].
pub type Result<T, E = RecError> = std::result::Result<T, E>;
