//! The one error type of nn-data.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while reading, splitting, scaling or batching data.
///
/// Every variant about a file names it (`path`; for bytes read from memory, the
/// source name the caller gave), and CSV errors name the line and column, so a
/// message read far from the call site still says which file is wrong and how.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file starts like a gzip stream but the stream is corrupt or cut short.
    #[error("{}: corrupt or truncated gzip stream: {source}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// The data is compressed in a way the reader does not undo: a gzip stream
    /// inside the gzip stream, or zip, xz, bzip2 or zstd.
    #[error("{}: the data is still {format}-compressed; decompress it first", path.display())]
    StillCompressed {
        /// The file.
        path: PathBuf,
        /// The compression detected from the leading bytes, e.g. `"gzip"`.
        format: &'static str,
    },
    /// The file does not start with an IDX magic number (`00 00 type rank`).
    #[error(
        "{}: not an IDX file: magic number {:02x} {:02x} {:02x} {:02x} (expected 00 00, an element type code and the number of dimensions)",
        path.display(), found[0], found[1], found[2], found[3]
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first four bytes (zero-padded when the file is shorter).
        found: [u8; 4],
    },
    /// The IDX element type code is not one of 0x08 (u8), 0x09 (i8), 0x0B (i16),
    /// 0x0C (i32), 0x0D (f32), 0x0E (f64).
    #[error("{}: unknown IDX element type code 0x{code:02x}", path.display())]
    UnknownIdxType {
        /// The file.
        path: PathBuf,
        /// The type byte found.
        code: u8,
    },
    /// The file ends before the data its header announces.
    #[error("{}: truncated: the header announces {expected} bytes, the file holds {got}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header implies (after decompression).
        expected: u64,
        /// Bytes present (after decompression).
        got: u64,
    },
    /// Bytes follow the data the header announces.
    #[error("{}: {extra} unexpected bytes after the {expected} the header announces", path.display())]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Bytes the header implies.
        expected: u64,
        /// Bytes beyond them (at least; reading stops early).
        extra: u64,
    },
    /// The file holds valid data of the wrong kind or shape for the caller, e.g.
    /// an MNIST image file that is not 3-d u8, or a label outside `0..classes`.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        message: String,
    },
    /// Two files that belong together disagree, e.g. an image file and a label file
    /// holding different numbers of samples.
    #[error("{} and {}: {message}", path.display(), other.display())]
    Mismatch {
        /// The first file (the images).
        path: PathBuf,
        /// The second file (the labels).
        other: PathBuf,
        /// What differs, with both counts.
        message: String,
    },
    /// None of the accepted spellings of a needed file exists in a directory.
    #[error("{}: none of {} exists", dir.display(), tried.join(", "))]
    MissingFile {
        /// The directory searched.
        dir: PathBuf,
        /// The file names tried, in order.
        tried: Vec<String>,
    },
    /// A CSV cell, row or header is wrong. `line` is 1-based and counts every
    /// physical line of the file (the header, blank lines, and line breaks inside
    /// quoted fields); `column` is 1-based, with the header name when there is one
    /// (shown cut to 40 characters).
    #[error(
        "{}:{line}{}: {message}",
        path.display(),
        match (column, column_name) {
            (Some(c), Some(n)) => format!(", column {c} ({})", crate::schema::quote(n)),
            (Some(c), None) => format!(", column {c}"),
            _ => String::new(),
        }
    )]
    Csv {
        /// The file.
        path: PathBuf,
        /// The 1-based line where the record starts.
        line: u64,
        /// The 1-based column, when one cell is at fault.
        column: Option<usize>,
        /// The column's header name, when known.
        column_name: Option<String>,
        /// What is wrong, in words.
        message: String,
    },
    /// An argument has a value the operation cannot use (fractions not summing to 1,
    /// a batch size of 0, a sample index out of range, ...).
    #[error("{op}: {message}")]
    InvalidArgument {
        /// The operation, e.g. `"split"`.
        op: &'static str,
        /// What is wrong, in words.
        message: String,
    },
    /// A tensor operation failed (a shape that does not fit).
    #[error(transparent)]
    Tensor(#[from] nn_tensor::TensorError),
}

/// Shorthand for `Result<T, DataError>`.
pub type Result<T> = std::result::Result<T, DataError>;

pub(crate) fn invalid(op: &'static str, message: impl Into<String>) -> DataError {
    DataError::InvalidArgument { op, message: message.into() }
}
