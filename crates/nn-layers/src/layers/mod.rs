//! The layers, one module per family. Each is built from its [`LayerSpec`] and the
//! per-sample shape it receives, which it checks then (so a mismatch is an error
//! when the model is built, not during training), and runs on a graph with its
//! parameters passed in as variables.

use nn_tensor::Element;

use crate::error::{LayerError, Result};
use crate::module::{Layer, ParamSpec};
use crate::spec::LayerSpec;

mod activation;
mod batchnorm;
mod conv;
mod dense;
mod dropout;
mod embedding;
mod pool;
mod recurrent;
mod reshape;

pub use activation::ActivationLayer;
pub use batchnorm::{batch_norm_eval, batch_norm_train, BatchNormalization};
pub use conv::Conv2D;
pub use dense::Dense;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use pool::{GlobalAveragePooling2D, Pool2D};
pub use recurrent::{RecurrentOutput, SimpleRNN, GRU, LSTM};
pub use reshape::{Flatten, Reshape};

/// What every built layer knows about itself: position, kind, shapes, parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Meta {
    pub index: usize,
    pub kind: &'static str,
    pub input_shape: Vec<usize>,
    pub output_shape: Vec<usize>,
    pub params: Vec<ParamSpec>,
}

impl Meta {
    pub fn new(index: usize, kind: &'static str, input_shape: &[usize]) -> Self {
        Meta { index, kind, input_shape: input_shape.to_vec(), output_shape: input_shape.to_vec(), params: Vec::new() }
    }

    /// A build-time shape error for this layer.
    pub fn shape_error(&self, expected: impl Into<String>) -> LayerError {
        LayerError::BuildShape {
            index: self.index,
            kind: self.kind,
            expected: expected.into(),
            got: self.input_shape.clone(),
        }
    }

    /// A build-time settings error for this layer.
    pub fn config_error(&self, message: impl Into<String>) -> LayerError {
        LayerError::InvalidConfig { index: self.index, kind: self.kind, message: message.into() }
    }
}

/// Implements the accessor methods of [`Layer`] from a `meta: Meta` field.
macro_rules! layer_accessors {
    () => {
        fn kind(&self) -> &'static str {
            self.meta.kind
        }
        fn index(&self) -> usize {
            self.meta.index
        }
        fn input_shape(&self) -> &[usize] {
            &self.meta.input_shape
        }
        fn output_shape(&self) -> &[usize] {
            &self.meta.output_shape
        }
        fn param_specs(&self) -> &[crate::module::ParamSpec] {
            &self.meta.params
        }
    };
}
pub(crate) use layer_accessors;

impl LayerSpec {
    /// Builds the layer as layer `index` of a model, for per-sample input shape
    /// `input_shape` (without the batch axis). The result knows its output shape and
    /// the parameters it needs (see [`Layer::param_specs`]).
    ///
    /// # Errors
    /// [`LayerError::BuildShape`] when the layer cannot take `input_shape` (naming
    /// the index, the kind, and the expected and actual shapes);
    /// [`LayerError::InvalidConfig`] for unusable settings, and for a recurrent layer
    /// with `return_state` (a model passes one tensor on; use the layer's
    /// `forward_with_state` alone).
    pub fn build<T: Element>(&self, index: usize, input_shape: &[usize]) -> Result<Box<dyn Layer<T>>> {
        let meta = Meta::new(index, self.kind(), input_shape);
        Ok(match self {
            LayerSpec::Dense(c) => Box::new(Dense::new(meta, *c)?),
            LayerSpec::Conv2D(c) => Box::new(Conv2D::new(meta, *c)?),
            LayerSpec::MaxPool2D(c) => Box::new(Pool2D::new(meta, *c, true)?),
            LayerSpec::AvgPool2D(c) => Box::new(Pool2D::new(meta, *c, false)?),
            LayerSpec::GlobalAveragePooling2D => Box::new(GlobalAveragePooling2D::new(meta)?),
            LayerSpec::Flatten => Box::new(Flatten::new(meta)?),
            LayerSpec::Dropout(c) => Box::new(Dropout::new(meta, *c)?),
            LayerSpec::BatchNormalization(c) => Box::new(BatchNormalization::new(meta, *c)?),
            LayerSpec::Activation(_)
            | LayerSpec::ReLU
            | LayerSpec::LeakyReLU(_)
            | LayerSpec::ELU(_)
            | LayerSpec::Softmax => Box::new(ActivationLayer::new(meta, self)?),
            LayerSpec::Embedding(c) => Box::new(Embedding::new(meta, *c)?),
            LayerSpec::SimpleRNN(c) => {
                recurrent::refuse_return_state(&meta, c.return_state)?;
                Box::new(SimpleRNN::new(meta, *c)?)
            }
            LayerSpec::LSTM(c) => {
                recurrent::refuse_return_state(&meta, c.return_state)?;
                Box::new(LSTM::new(meta, *c)?)
            }
            LayerSpec::GRU(c) => {
                recurrent::refuse_return_state(&meta, c.return_state)?;
                Box::new(GRU::new(meta, *c)?)
            }
            LayerSpec::Reshape(c) => Box::new(Reshape::new(meta, *c)?),
        })
    }
}
