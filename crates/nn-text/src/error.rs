//! The one error type of nn-text.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while reading text, training or loading a
/// tokenizer, cutting windows or splitting.
///
/// Every variant about a file names it (`path`); CSV variants also name the row
/// (1-based, counting data rows only: the first row after the header is row 1), the
/// line where that row starts in the file (1-based, the header is line 1) and the
/// column by its header name, so a message read far from the call site still says
/// which cell is wrong.
#[derive(Debug, Error)]
pub enum TextError {
    /// The file could not be opened, read or written.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done: `"cannot read"`, `"cannot write"`.
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file starts with the gzip magic bytes `1f 8b` but the stream is corrupt
    /// or cut short.
    #[error("{}: corrupt or truncated gzip stream: {source}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// The file holds no byte (after decompression).
    #[error("{}: the file is empty", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The file's bytes are not UTF-8.
    #[error("{}: not UTF-8: invalid byte 0x{byte:02x} at byte offset {offset}", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The 0-based offset of the first invalid byte (in the decompressed bytes
        /// for a gzip file).
        offset: u64,
        /// The byte found there.
        byte: u8,
    },
    /// A CSV file cannot be parsed at a row: wrong number of fields, bytes that
    /// are not UTF-8, a quote left open.
    #[error("{}: row {row} (line {line}): {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The 1-based data row (the header is not counted; 0 for the header itself).
        row: u64,
        /// The 1-based line where the row starts (the header is line 1).
        line: u64,
        /// What is wrong, in words.
        message: String,
    },
    /// A column asked for is not in the CSV header.
    #[error("{}: no column {column:?}; the header has {header:?}", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The header's column names, in order.
        header: Vec<String>,
    },
    /// A cell that must hold text is empty (or only white space).
    #[error("{}: row {row} (line {line}), column {column:?}: the cell is empty", path.display())]
    EmptyCell {
        /// The file.
        path: PathBuf,
        /// The 1-based data row.
        row: u64,
        /// The 1-based line where the row starts.
        line: u64,
        /// The column's header name.
        column: String,
    },
    /// A CSV file has a header but no data row.
    #[error("{}: the file has a header but no data row", path.display())]
    NoRows {
        /// The file.
        path: PathBuf,
    },
    /// The `tokenizers` library failed: training, encoding, decoding, or reading or
    /// writing a `tokenizer.json` (`path` is set for the file operations).
    #[error("{}tokenizer: {message}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Tokenizer {
        /// The tokenizer file, for loading and saving.
        path: Option<PathBuf>,
        /// The library's message.
        message: String,
    },
    /// A token id is not below the vocabulary size.
    #[error("token id {id} at position {position} is not below the vocabulary size {vocab_size}")]
    UnknownTokenId {
        /// The id found.
        id: u32,
        /// Its 0-based position in the sequence given.
        position: usize,
        /// The tokenizer's vocabulary size.
        vocab_size: usize,
    },
    /// An argument has a value the operation cannot use (a context of 0, a fraction
    /// outside its range, a stream too short for one window, ...).
    #[error("{op}: {message}")]
    InvalidArgument {
        /// The operation, e.g. `"lm_windows"`.
        op: &'static str,
        /// What is wrong, with the value given and the value expected.
        message: String,
    },
    /// Building an nn-data [`Dataset`](nn_data::Dataset) failed.
    #[error(transparent)]
    Data(#[from] nn_data::DataError),
    /// A tensor could not be built (a shape that does not fit).
    #[error(transparent)]
    Tensor(#[from] nn_tensor::TensorError),
}

/// Shorthand for `Result<T, TextError>`.
pub type Result<T> = std::result::Result<T, TextError>;

pub(crate) fn invalid(op: &'static str, message: impl Into<String>) -> TextError {
    TextError::InvalidArgument { op, message: message.into() }
}
