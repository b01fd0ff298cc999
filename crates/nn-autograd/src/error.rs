//! The one error type of nn-autograd.

use nn_tensor::TensorError;
use thiserror::Error;

/// Everything that can go wrong while building a graph or running backward.
///
/// Every variant names the graph operation (`op`, e.g. `"linear"` or `"conv2d"`);
/// errors from the tensor layer are wrapped in [`AutogradError::Tensor`] with the
/// graph operation that called it, so `linear: matmul: incompatible shapes [2, 3] and
/// [4, 5]` says both what the user asked for and which tensor step refused it.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AutogradError {
    /// A tensor operation failed (shapes, axes, sizes); `source` carries its shapes.
    #[error("{}", tensor_message(op, source))]
    Tensor {
        /// The graph operation that called the tensor operation.
        op: &'static str,
        /// The tensor layer's error, with its own operation name and shapes.
        #[source]
        source: TensorError,
    },
    /// Two operands whose shapes must agree do not.
    #[error("{op}: incompatible shapes {lhs:?} and {rhs:?} ({expected})")]
    ShapeMismatch {
        /// The graph operation.
        op: &'static str,
        /// Shape of the first operand.
        lhs: Vec<usize>,
        /// Shape of the second operand.
        rhs: Vec<usize>,
        /// What the operation needs, in words (e.g. `"equal shapes"`).
        expected: &'static str,
    },
    /// A [`Var`](crate::Var) created by another graph was passed to this one.
    #[error("{op}: the variable belongs to graph #{var_graph}, not to this graph #{graph}")]
    ForeignVar {
        /// The graph operation.
        op: &'static str,
        /// The id of the graph that created the variable.
        var_graph: u64,
        /// The id of the graph it was passed to.
        graph: u64,
    },
    /// A variable whose value was freed by [`Graph::release`](crate::Graph::release)
    /// was used again.
    #[error("{op}: the variable's value was released after its last use (tape position {index})")]
    Released {
        /// The graph operation.
        op: &'static str,
        /// The variable's tape position.
        index: usize,
    },
    /// [`Graph::backward`](crate::Graph::backward) was called on an output holding
    /// more than one element.
    #[error(
        "backward: the loss has shape {shape:?}, not one element; give a seed gradient with backward_with_seed \
         or reduce the loss first (sum, mean)"
    )]
    NonScalarLoss {
        /// The output's shape.
        shape: Vec<usize>,
    },
    /// The seed gradient given to [`Graph::backward_with_seed`](crate::Graph::backward_with_seed)
    /// does not have the output's shape.
    #[error("backward_with_seed: the seed gradient has shape {seed:?} but the output has shape {output:?}")]
    SeedShape {
        /// The seed's shape.
        seed: Vec<usize>,
        /// The output's shape.
        output: Vec<usize>,
    },
    /// Backward was asked of a graph built with [`Graph::no_grad`](crate::Graph::no_grad).
    #[error("backward: the graph was built in no-grad mode and recorded no backward information")]
    NoGrad,
    /// A parameter name was bound twice in one graph. Bind each parameter once per
    /// step and reuse its `Var` (using a `Var` several times accumulates gradients).
    #[error("param: a parameter named {name:?} is already bound in this graph")]
    DuplicateParam {
        /// The repeated name.
        name: String,
    },
    /// A class target is not below the number of classes.
    #[error("{op}: target class {target} of batch row {row} is out of range for {classes} classes")]
    TargetOutOfRange {
        /// The loss operation.
        op: &'static str,
        /// The batch row.
        row: usize,
        /// The target given.
        target: usize,
        /// The number of classes (logits columns).
        classes: usize,
    },
    /// An argument has a value the operation cannot use (a dropout rate outside
    /// `[0, 1)`, an empty list, a mask that is not 0/1, ...).
    #[error("{op}: {message}")]
    InvalidArgument {
        /// The graph operation.
        op: &'static str,
        /// What is wrong, in words, with the offending values.
        message: String,
    },
    /// A backward rule produced a gradient whose shape differs from its input's
    /// (a defect in a custom op's backward rule; the built-in ops never do this).
    #[error("{op}: backward produced a gradient of shape {got:?} for input {input} of shape {expected:?}")]
    GradientShape {
        /// The operation whose backward rule misbehaved.
        op: &'static str,
        /// Which of its inputs.
        input: usize,
        /// The input's shape.
        expected: Vec<usize>,
        /// The gradient's shape.
        got: Vec<usize>,
    },
}

/// `"{op}: {source}"`, without repeating the operation name when the tensor error
/// already starts with it.
fn tensor_message(op: &str, source: &TensorError) -> String {
    let text = source.to_string();
    match text.strip_prefix(op) {
        Some(rest) if rest.starts_with(':') => text,
        _ => format!("{op}: {text}"),
    }
}

/// Shorthand for `Result<T, AutogradError>`.
pub type Result<T> = std::result::Result<T, AutogradError>;

/// Wraps a [`TensorError`] with the graph operation `op`, for `map_err`.
pub(crate) fn tensor_err(op: &'static str) -> impl Fn(TensorError) -> AutogradError {
    move |source| AutogradError::Tensor { op, source }
}

/// Unwraps a `try_` result, panicking with the error's message (the panicking twins).
#[track_caller]
pub(crate) fn unwrap<U>(r: Result<U>) -> U {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_errors_name_both_operations_once() {
        let source = TensorError::ShapeMismatch { op: "matmul", lhs: vec![2, 3], rhs: vec![4, 5] };
        let e = AutogradError::Tensor { op: "linear", source: source.clone() };
        assert_eq!(e.to_string(), "linear: matmul: incompatible shapes [2, 3] and [4, 5]");
        let e = AutogradError::Tensor { op: "matmul", source };
        assert_eq!(e.to_string(), "matmul: incompatible shapes [2, 3] and [4, 5]");
    }
}
