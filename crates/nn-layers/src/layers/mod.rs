//! The layers, one module per family. Each is built from its [`LayerSpec`] and the
//! per-sample shape it receives, which it checks then (so a mismatch is an error
//! when the model is built, not during training), and runs on a graph with its
//! parameters passed in as variables.

use nn_tensor::Element;

use crate::error::{LayerError, Result};
use crate::module::{Layer, ParamSpec};
use crate::spec::LayerSpec;

mod activation;
mod attention;
mod batchnorm;
mod conv;
mod dense;
mod dropout;
mod embedding;
mod merge;
mod norm;
mod padding;
mod pool;
mod recurrent;
mod reshape;
mod sequence;

pub use activation::{ActivationConfig, ActivationLayer, EluConfig, LeakyReluConfig};
pub use attention::{MultiHeadAttention, MultiHeadAttentionConfig, PaddingMask, PaddingMaskConfig};
pub use batchnorm::{batch_norm_eval, batch_norm_train, batch_norm_train_sync, BatchNormConfig, BatchNormalization};
pub use conv::{Conv2D, Conv2DConfig};
pub use dense::{Dense, DenseConfig, LoraConfig};
pub use dropout::{Dropout, DropoutConfig};
pub use embedding::{Embedding, EmbeddingConfig};
pub use merge::{Concatenate, ConcatenateConfig, Dot, Merge, MergeOp};
pub use norm::{layer_norm, LayerNormConfig, LayerNormalization};
pub use padding::{Padding2D, ZeroPadding2D, ZeroPadding2DConfig};
pub use pool::{GlobalAveragePooling2D, GlobalMaxPooling2D, Pool2D, Pool2DConfig};
pub use recurrent::{GruConfig, LstmConfig, RecurrentOutput, SimpleRNN, SimpleRnnConfig, GRU, LSTM};
pub use reshape::{Flatten, Identity, Reshape, ReshapeConfig, TargetShape, MAX_TARGET_AXES};
pub use sequence::{
    sine_position_encoding, ClassToken, ClassTokenConfig, ClassTokenPooling, GlobalAveragePooling1D, PositionEmbedding,
    PositionEmbeddingConfig, SinePositionEncoding, SinePositionEncodingConfig,
};

/// What every built layer knows about itself: position, kind, shapes, parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Meta {
    pub index: usize,
    /// The layer's name in a graph model (format version 2), `None` in a chain.
    pub name: Option<String>,
    pub kind: &'static str,
    /// The first input's per-sample shape.
    pub input_shape: Vec<usize>,
    /// Every input's per-sample shape (one entry for all but merge layers).
    pub input_shapes: Vec<Vec<usize>>,
    pub output_shape: Vec<usize>,
    pub params: Vec<ParamSpec>,
}

impl Meta {
    pub fn new(index: usize, kind: &'static str, input_shape: &[usize]) -> Self {
        Meta {
            index,
            name: None,
            kind,
            input_shape: input_shape.to_vec(),
            input_shapes: vec![input_shape.to_vec()],
            output_shape: input_shape.to_vec(),
            params: Vec::new(),
        }
    }

    /// A build-time shape error for this layer.
    pub fn shape_error(&self, expected: impl Into<String>) -> LayerError {
        LayerError::BuildShape {
            index: self.index,
            name: self.name.clone(),
            kind: self.kind,
            expected: expected.into(),
            got: self.input_shape.clone(),
        }
    }

    /// A build-time settings error for this layer.
    pub fn config_error(&self, message: impl Into<String>) -> LayerError {
        LayerError::InvalidConfig {
            index: self.index,
            name: self.name.clone(),
            kind: self.kind,
            message: message.into(),
        }
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
        fn name(&self) -> Option<&str> {
            self.meta.name.as_deref()
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
        self.build_node(index, None, &[input_shape])
    }

    /// Builds the layer as node `index` of a graph model, named `name` (`None` in a
    /// chain: errors then name the index), taking tensors of the per-sample shapes
    /// `input_shapes` (one per input, in order).
    ///
    /// # Errors
    /// As [`LayerSpec::build`]; [`LayerError::InvalidConfig`] when a single-input
    /// layer is given several inputs (or none), or a merge layer fewer than it needs;
    /// [`LayerError::BuildShape`] when the shapes of a merge do not agree.
    pub fn build_node<T: Element>(
        &self,
        index: usize,
        name: Option<&str>,
        input_shapes: &[&[usize]],
    ) -> Result<Box<dyn Layer<T>>> {
        let mut meta = Meta::new(index, self.kind(), input_shapes.first().copied().unwrap_or(&[]));
        meta.name = name.map(str::to_string);
        meta.input_shapes = input_shapes.iter().map(|s| s.to_vec()).collect();
        if let Some(layer) = self.build_multi_input::<T>(&meta)? {
            return Ok(layer);
        }
        if input_shapes.len() != 1 {
            return Err(meta.config_error(format!("takes one input, got {}", input_shapes.len())));
        }
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
            LayerSpec::LayerNormalization(c) => Box::new(LayerNormalization::new(meta, *c)?),
            LayerSpec::ZeroPadding2D(c) => Box::new(ZeroPadding2D::new(meta, *c)?),
            LayerSpec::GlobalMaxPooling2D => Box::new(GlobalMaxPooling2D::new(meta)?),
            LayerSpec::Identity => Box::new(Identity::new(meta)?),
            LayerSpec::PaddingMask(c) => Box::new(PaddingMask::new(meta, *c)?),
            LayerSpec::PositionEmbedding(c) => Box::new(PositionEmbedding::new(meta, *c)?),
            LayerSpec::SinePositionEncoding(c) => Box::new(SinePositionEncoding::new(meta, *c)?),
            LayerSpec::ClassToken(c) => Box::new(ClassToken::new(meta, *c)?),
            LayerSpec::ClassTokenPooling => Box::new(ClassTokenPooling::new(meta)?),
            LayerSpec::MultiHeadAttention(_) | LayerSpec::GlobalAveragePooling1D => {
                unreachable!("build_multi_input builds the layers that may take several inputs")
            }
            LayerSpec::Add
            | LayerSpec::Subtract
            | LayerSpec::Multiply
            | LayerSpec::Average
            | LayerSpec::Maximum
            | LayerSpec::Concatenate(_)
            | LayerSpec::Dot => unreachable!("build_multi_input builds the merge layers"),
        })
    }

    /// The layers that take several inputs (merges) built from `meta` (which holds
    /// every input shape); `None` for single-input layers.
    ///
    /// # Errors
    /// [`LayerError::InvalidConfig`] for a number of inputs the merge does not take
    /// (`Subtract`: exactly 2, the others at least 2) or a Concatenate axis that is 0
    /// or out of range; [`LayerError::BuildShape`] when the inputs' shapes do not
    /// agree (naming both).
    fn build_multi_input<T: Element>(&self, meta: &Meta) -> Result<Option<Box<dyn Layer<T>>>> {
        let op = match self {
            LayerSpec::Add => MergeOp::Add,
            LayerSpec::Subtract => MergeOp::Subtract,
            LayerSpec::Multiply => MergeOp::Multiply,
            LayerSpec::Average => MergeOp::Average,
            LayerSpec::Maximum => MergeOp::Maximum,
            LayerSpec::Concatenate(c) => return Ok(Some(Box::new(Concatenate::new(meta.clone(), *c)?))),
            LayerSpec::Dot => return Ok(Some(Box::new(Dot::new(meta.clone())?))),
            LayerSpec::MultiHeadAttention(c) => return Ok(Some(Box::new(MultiHeadAttention::new(meta.clone(), *c)?))),
            LayerSpec::GlobalAveragePooling1D => return Ok(Some(Box::new(GlobalAveragePooling1D::new(meta.clone())?))),
            _ => return Ok(None),
        };
        Ok(Some(Box::new(Merge::new(meta.clone(), op)?)))
    }
}
