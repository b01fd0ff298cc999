//! The one error type of nn-layers.

use std::path::PathBuf;

use nn_autograd::AutogradError;
use nn_tensor::TensorError;
use thiserror::Error;

/// Everything that can go wrong while building, running, saving or loading a model,
/// or computing a loss.
///
/// Errors raised while building a model name the layer (its index in the model and
/// its kind, e.g. `layer 2 (Conv2D)`) and the shapes involved; errors of the graph
/// operations a layer runs are wrapped in [`LayerError::Forward`] with the same
/// context; file errors carry the path.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LayerError {
    /// A layer cannot take the shape its predecessor produces (found when the model
    /// is built, before any training).
    #[error("{}: expected input shape {expected}, got {got:?} (per sample, batch axis left out)", label(*index, name, kind))]
    BuildShape {
        /// The layer's position in the model (0 for the first layer).
        index: usize,
        /// The layer's name in a graph model (format version 2), `None` in a chain.
        name: Option<String>,
        /// The layer's kind, e.g. `"Conv2D"`.
        kind: &'static str,
        /// The shape the layer needs, in words and with its axes, e.g.
        /// `"[height, width, channels] (3 axes)"`.
        expected: String,
        /// The per-sample shape it was given.
        got: Vec<usize>,
    },
    /// A layer's settings are unusable (zero units, a dropout rate of 1, ...).
    #[error("{}: {message}", label(*index, name, kind))]
    InvalidConfig {
        /// The layer's position in the model.
        index: usize,
        /// The layer's name in a graph model (format version 2), `None` in a chain.
        name: Option<String>,
        /// The layer's kind.
        kind: &'static str,
        /// What is wrong, with the offending value.
        message: String,
    },
    /// A model description (JSON or [`ModelSpec`](crate::ModelSpec)) is malformed:
    /// unknown key or layer type, missing field, unsupported format version, bad
    /// input shape.
    #[error("model spec: {message}")]
    Spec {
        /// What is wrong (serde's message includes line and column for JSON).
        message: String,
    },
    /// The batch given to a model does not have the shape `[batch, ...input_shape]`.
    #[error("model input: expected shape {}, got {got:?}", batch_shape(expected))]
    InputShape {
        /// The model's per-sample input shape.
        expected: Vec<usize>,
        /// The shape of the batch given.
        got: Vec<usize>,
    },
    /// A layer's input is invalid in a way shapes cannot show (e.g. an Embedding
    /// index that is not an integer in range).
    #[error("{message}")]
    InvalidInput {
        /// What is wrong, with the offending value and its position.
        message: String,
    },
    /// A layer failed during the forward pass; `source` says how.
    #[error("{}: {source}", label(*index, name, kind))]
    Forward {
        /// The layer's position in the model.
        index: usize,
        /// The layer's name in a graph model (format version 2), `None` in a chain.
        name: Option<String>,
        /// The layer's kind.
        kind: &'static str,
        /// The underlying error.
        #[source]
        source: Box<LayerError>,
    },
    /// A graph operation failed (its message names the operation and the shapes).
    #[error(transparent)]
    Autograd(#[from] AutogradError),
    /// A tensor operation failed (its message names the operation and the shapes).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A loss was given unusable settings or targets.
    #[error("{loss}: {message}")]
    Loss {
        /// The loss, by its Keras name (e.g. `"categorical_crossentropy"`).
        loss: &'static str,
        /// What is wrong, with the shapes or values involved.
        message: String,
    },
    /// A parameter name is not one of the model's parameters.
    #[error("unknown parameter {name:?}")]
    UnknownParameter {
        /// The name given.
        name: String,
    },
    /// A new value for a parameter (a state update, [`Sequential::set_parameter`](crate::Sequential::set_parameter))
    /// does not have the parameter's shape.
    #[error("parameter {name:?} has shape {expected:?}, the new value has shape {got:?}")]
    ParameterShape {
        /// The parameter's name.
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A file could not be read, written or created.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's message, with what was being done.
        message: String,
    },
    /// A file's content is not what it should be (not JSON, not safetensors, a
    /// truncated file, an unsupported format version).
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A weights file lacks a tensor the model needs.
    #[error(
        "{}: weight {name:?} is missing{}",
        path.display(),
        if unexpected.is_empty() { String::new() } else { format!(" (the file has instead: {unexpected:?})") }
    )]
    MissingWeight {
        /// The file.
        path: PathBuf,
        /// The parameter name not found.
        name: String,
        /// Names in the file that the model does not have (a likely misspelling).
        unexpected: Vec<String>,
    },
    /// A weights file holds a tensor the model has no parameter for.
    #[error("{}: the file has weight {name:?}, which the model does not have", path.display())]
    UnexpectedWeight {
        /// The file.
        path: PathBuf,
        /// The name in the file.
        name: String,
    },
    /// A weight in a file has another shape than the model's parameter.
    #[error("{}: weight {name:?} has shape {got:?}, the model expects {expected:?}", path.display())]
    WeightShape {
        /// The file.
        path: PathBuf,
        /// The parameter name.
        name: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The file's shape.
        got: Vec<usize>,
    },
    /// A weight in a file has another element type than the model.
    #[error("{}: weight {name:?} has dtype {got}, the model expects {expected}", path.display())]
    WeightDType {
        /// The file.
        path: PathBuf,
        /// The parameter name.
        name: String,
        /// The model's dtype (`f32` or `f64`).
        expected: String,
        /// The file's dtype (lower case, e.g. `f64`, `bf16`, `i32`).
        got: String,
    },
}

/// `layer 2 (Conv2D)` in a chain, `layer "c1" (Conv2D)` in a graph.
fn label(index: usize, name: &Option<String>, kind: &str) -> String {
    match name {
        Some(name) => format!("layer {:?} ({kind})", clip(name)),
        None => format!("layer {index} ({kind})"),
    }
}

/// Longest piece of user text (a name, a type, a value) quoted in an error message.
pub const MAX_QUOTED: usize = 80;

/// `text` cut to [`MAX_QUOTED`] characters (with `…` and the full length when cut), so
/// that an error line stays one readable line whatever a file holds.
pub fn clip(text: &str) -> String {
    clip_to(text, MAX_QUOTED)
}

/// `text` cut to `max` characters, as [`clip`] (for whole messages that may quote a
/// long user string, such as a JSON parser's).
pub fn clip_to(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        text.to_string()
    } else {
        let head: String = text.chars().take(max).collect();
        format!("{head}… ({n} characters)")
    }
}

/// `[batch, d0, d1, ...]`.
fn batch_shape(per_sample: &[usize]) -> String {
    let mut s = String::from("[batch");
    for d in per_sample {
        s.push_str(&format!(", {d}"));
    }
    s.push(']');
    s
}

/// Shorthand for `Result<T, LayerError>`.
pub type Result<T> = std::result::Result<T, LayerError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_context() {
        let e = LayerError::BuildShape {
            index: 2,
            name: None,
            kind: "Conv2D",
            expected: "[height, width, channels] (3 axes)".into(),
            got: vec![5408],
        };
        assert_eq!(
            e.to_string(),
            "layer 2 (Conv2D): expected input shape [height, width, channels] (3 axes), got [5408] \
             (per sample, batch axis left out)"
        );
        let named =
            LayerError::InvalidConfig { index: 4, name: Some("c1".into()), kind: "Conv2D", message: "m".into() };
        assert_eq!(named.to_string(), "layer \"c1\" (Conv2D): m");
        assert_eq!(clip(&"x".repeat(100)), format!("{}… (100 characters)", "x".repeat(80)));
        let e = LayerError::InputShape { expected: vec![28, 28, 1], got: vec![4, 28, 28] };
        assert_eq!(e.to_string(), "model input: expected shape [batch, 28, 28, 1], got [4, 28, 28]");
        let e = LayerError::MissingWeight {
            path: "w.safetensors".into(),
            name: "layers.0.kernel".into(),
            unexpected: vec!["layers.0.kernal".into()],
        };
        assert_eq!(
            e.to_string(),
            "w.safetensors: weight \"layers.0.kernel\" is missing (the file has instead: [\"layers.0.kernal\"])"
        );
    }
}
