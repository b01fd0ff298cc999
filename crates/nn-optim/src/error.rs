//! The one error type of nn-optim.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong in an optimizer step, a penalty, clipping, a schedule
/// or a checkpoint.
///
/// Every variant names the parameter, hyperparameter or file involved, so a message
/// read in a training log still says what went wrong and where.
#[derive(Debug, Error)]
pub enum OptimError {
    /// A gradient's shape differs from its parameter's.
    #[error("parameter `{name}`: gradient shape {grad:?} differs from parameter shape {param:?}")]
    GradShape {
        /// The parameter's name.
        name: String,
        /// The parameter's shape.
        param: Vec<usize>,
        /// The gradient's shape.
        grad: Vec<usize>,
    },
    /// The same parameter name appears twice in one call.
    #[error("parameter `{name}` appears more than once")]
    DuplicateParam {
        /// The repeated name.
        name: String,
    },
    /// A parameter has no gradient (see [`bind`](crate::bind)).
    #[error("parameter `{name}` has no gradient")]
    MissingGradient {
        /// The parameter's name.
        name: String,
    },
    /// A gradient names no parameter (see [`bind`](crate::bind)).
    #[error("gradient `{name}` matches no parameter")]
    UnknownGradient {
        /// The gradient's name.
        name: String,
    },
    /// A hyperparameter (or per-parameter setting) is outside its valid range.
    #[error("{owner}: {name} = {value} is invalid; expected {expected}")]
    InvalidHyperparameter {
        /// What holds it: an optimizer (`"adam"`), `"regularizer"`, `"schedule"`,
        /// `"clip_grad_norm"`, or `parameter `name``.
        owner: String,
        /// The hyperparameter's name, e.g. `"beta_1"`.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The valid range, in words, e.g. `"0 <= beta_1 < 1"`.
        expected: &'static str,
    },
    /// Stored optimizer state has a shape that differs from its parameter's.
    #[error("parameter `{name}`: optimizer state `{slot}` has shape {state:?}, parameter has shape {param:?}")]
    StateShape {
        /// The parameter's name.
        name: String,
        /// The state slot, e.g. `"exp_avg"`.
        slot: String,
        /// The parameter's shape.
        param: Vec<usize>,
        /// The stored state's shape.
        state: Vec<usize>,
    },
    /// Optimizer state does not fit this optimizer or these parameters.
    #[error("cannot load optimizer state: {0}")]
    StateMismatch(String),
    /// The global gradient norm is infinite or NaN; the gradients were left unchanged.
    #[error("non-finite gradient norm {norm} (first non-finite gradient: `{name}`); gradients left unchanged")]
    NonFiniteNorm {
        /// The computed norm (`inf` or `NaN`).
        norm: f64,
        /// The first parameter whose gradient holds a non-finite value.
        name: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint file is malformed (bad safetensors, bad JSON, missing entries).
    #[error("{path}: {message}")]
    Format {
        /// The file (`<memory>` for bytes not read from a file).
        path: PathBuf,
        /// What is wrong, in words.
        message: String,
    },
}

/// Shorthand for `Result<T, OptimError>`.
pub type Result<T> = std::result::Result<T, OptimError>;

/// `Ok` if `ok`, else [`OptimError::InvalidHyperparameter`] with `expected` describing the valid range.
pub(crate) fn check(owner: &str, name: &'static str, value: f64, ok: bool, expected: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(OptimError::InvalidHyperparameter { owner: owner.to_string(), name, value, expected })
    }
}

/// `value` is finite and `>= 0`.
pub(crate) fn check_non_negative(owner: &str, name: &'static str, value: f64) -> Result<()> {
    check(owner, name, value, value.is_finite() && value >= 0.0, "a finite value >= 0")
}

/// `0 <= value < 1`.
pub(crate) fn check_unit_interval(owner: &str, name: &'static str, value: f64) -> Result<()> {
    check(owner, name, value, (0.0..1.0).contains(&value), "a value in [0, 1)")
}
