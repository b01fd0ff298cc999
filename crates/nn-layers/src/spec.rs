//! Serde descriptions of layers and models: a model is plain data (JSON).
//!
//! This module holds the tagged [`LayerSpec`] enum (one variant per layer type, its
//! `"type"` tag the Keras class name, with `LayerSpec::kind` and the constructors
//! such as [`LayerSpec::dense`]) and the shared [`Size2`] and [`PaddingMode`].
//!
//! Every layer's config (its struct, serde defaults and builders) lives in its layer
//! family's file under `crates/nn-layers/src/layers/` and is re-exported here, so
//! `nn_layers::spec::Pool2DConfig` and `nn_layers::Pool2DConfig` name the same type:
//!
//! - `dense.rs`: [`DenseConfig`], [`LoraConfig`]
//! - `conv.rs`: [`Conv2DConfig`]
//! - `pool.rs`: [`Pool2DConfig`]
//! - `dropout.rs`: [`DropoutConfig`]
//! - `batchnorm.rs`: [`BatchNormConfig`]
//! - `activation.rs`: [`ActivationConfig`], [`LeakyReluConfig`], [`EluConfig`]
//! - `embedding.rs`: [`EmbeddingConfig`]
//! - `recurrent.rs`: [`SimpleRnnConfig`], [`LstmConfig`], [`GruConfig`]
//! - `reshape.rs`: [`ReshapeConfig`], [`TargetShape`]
//! - `merge.rs`: [`ConcatenateConfig`]
//! - `norm.rs`: [`LayerNormConfig`]
//! - `padding.rs`: [`ZeroPadding2DConfig`], [`Padding2D`]
//! - `attention.rs`: [`MultiHeadAttentionConfig`], [`PaddingMaskConfig`]
//! - `sequence.rs`: [`PositionEmbeddingConfig`], [`SinePositionEncodingConfig`],
//!   [`ClassTokenConfig`]

use nn_tensor::conv::Padding;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::activation::Activation;
use crate::error::Result;
use crate::init::Initializer;

pub use crate::layers::{ActivationConfig, EluConfig, LeakyReluConfig};
pub use crate::layers::{BatchNormConfig, DropoutConfig, EmbeddingConfig, Pool2DConfig};
pub use crate::layers::{
    ClassTokenConfig, MultiHeadAttentionConfig, PaddingMaskConfig, PositionEmbeddingConfig, SinePositionEncodingConfig,
};
pub use crate::layers::{ConcatenateConfig, LayerNormConfig, Padding2D, ZeroPadding2DConfig};
pub use crate::layers::{Conv2DConfig, DenseConfig, LoraConfig};
pub use crate::layers::{GruConfig, LstmConfig, SimpleRnnConfig};
pub use crate::layers::{ReshapeConfig, TargetShape, MAX_TARGET_AXES};

/// A pair of sizes `(height, width)`: a kernel size, stride or pool size. In JSON it
/// may be one integer (used for both, as Keras allows) or a pair `[h, w]`; it is
/// written as a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Size2(pub usize, pub usize);

impl Size2 {
    /// `(n, n)`.
    pub fn square(n: usize) -> Size2 {
        Size2(n, n)
    }

    /// As a tuple `(height, width)`.
    pub fn pair(self) -> (usize, usize) {
        (self.0, self.1)
    }
}

impl From<usize> for Size2 {
    fn from(n: usize) -> Self {
        Size2(n, n)
    }
}

impl From<(usize, usize)> for Size2 {
    fn from((h, w): (usize, usize)) -> Self {
        Size2(h, w)
    }
}

impl Serialize for Size2 {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        [self.0, self.1].serialize(s)
    }
}

impl<'de> Deserialize<'de> for Size2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            One(usize),
            Two([usize; 2]),
        }
        match Either::deserialize(d) {
            Ok(Either::One(n)) => Ok(Size2(n, n)),
            Ok(Either::Two([h, w])) => Ok(Size2(h, w)),
            Err(_) => Err(serde::de::Error::custom("expected a non-negative integer or a pair [height, width]")),
        }
    }
}

/// Border handling of Conv2D and pooling, as Keras names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaddingMode {
    /// No padding: `out = floor((in − k) / s) + 1` (Keras's default).
    #[default]
    Valid,
    /// Zero padding so that `out = ceil(in / s)`; with stride 1 the spatial size is
    /// kept, for odd and even kernel sizes (an odd total padding puts the extra row or
    /// column at the bottom or right, as TensorFlow does).
    Same,
}

impl From<PaddingMode> for Padding {
    fn from(p: PaddingMode) -> Padding {
        match p {
            PaddingMode::Valid => Padding::Valid,
            PaddingMode::Same => Padding::Same,
        }
    }
}

/// Serde default `true` (shared by the configs in `layers/`).
pub(crate) fn yes() -> bool {
    true
}
/// Serde default `zeros` (shared by the configs in `layers/`).
pub(crate) fn zeros() -> Initializer {
    Initializer::Zeros
}

/// One layer of a [`ModelSpec`](crate::ModelSpec), tagged in JSON by `"type"` with the
/// Keras class name, its settings beside it, e.g.
/// `{"type": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"}`.
/// Optional settings take Keras's defaults; unknown keys and types are errors.
///
/// The merge layers (`Add`, `Subtract`, `Multiply`, `Average`, `Maximum`,
/// `Concatenate`) take several inputs, so they appear in graph models (format
/// version 2) with an `"inputs"` list, e.g. `{"type": "Add", "inputs": ["a", "b"]}`.
///
/// Sigmoid and tanh layers are `{"type": "Activation", "activation": "sigmoid"}`, as
/// in Keras.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "LayerSpecRepr", into = "LayerSpecRepr")]
#[allow(clippy::upper_case_acronyms)] // Keras's class names (ELU, LSTM, GRU)
pub enum LayerSpec {
    /// Fully connected layer.
    Dense(DenseConfig),
    /// 2-d convolution, NHWC.
    Conv2D(Conv2DConfig),
    /// 2-d max pooling (Keras also calls it `MaxPooling2D`).
    MaxPool2D(Pool2DConfig),
    /// 2-d average pooling (Keras also calls it `AveragePooling2D`).
    AvgPool2D(Pool2DConfig),
    /// Mean over height and width: `[batch, h, w, c]` → `[batch, c]`.
    GlobalAveragePooling2D,
    /// `[batch, d1, d2, ...]` → `[batch, d1·d2·…]` in row-major (NHWC) order.
    Flatten,
    /// Inverted dropout.
    Dropout(DropoutConfig),
    /// Batch normalization over the last axis.
    BatchNormalization(BatchNormConfig),
    /// Any [`Activation`].
    Activation(ActivationConfig),
    /// `max(x, 0)`.
    ReLU,
    /// `x` for `x > 0`, `negative_slope · x` otherwise.
    LeakyReLU(LeakyReluConfig),
    /// `x` for `x > 0`, `α·(eˣ − 1)` otherwise.
    ELU(EluConfig),
    /// Softmax over the last axis.
    Softmax,
    /// Lookup table of vectors.
    Embedding(EmbeddingConfig),
    /// Elman recurrent layer.
    SimpleRNN(SimpleRnnConfig),
    /// Long short-term memory.
    LSTM(LstmConfig),
    /// Gated recurrent unit (`reset_after` form).
    GRU(GruConfig),
    /// Per-sample reshape.
    Reshape(ReshapeConfig),
    /// Element-wise sum of ≥ 2 inputs of one shape (graph models).
    Add,
    /// `x₀ − x₁` of exactly 2 inputs of one shape.
    Subtract,
    /// Element-wise product of ≥ 2 inputs of one shape.
    Multiply,
    /// Element-wise mean of ≥ 2 inputs of one shape.
    Average,
    /// Element-wise maximum of ≥ 2 inputs of one shape.
    Maximum,
    /// Joins ≥ 2 inputs along an axis.
    Concatenate(ConcatenateConfig),
    /// Per-sample dot product of 2 inputs `[batch, d]` → `[batch, 1]`.
    Dot,
    /// Layer normalization over the last axis.
    LayerNormalization(LayerNormConfig),
    /// Zero rows and columns around NHWC images.
    ZeroPadding2D(ZeroPadding2DConfig),
    /// Maximum over height and width: `[batch, h, w, c]` → `[batch, c]`.
    GlobalMaxPooling2D,
    /// Returns its input.
    Identity,
    /// Multi-head scaled dot-product attention over `[query, value?, key?, mask?]`.
    MultiHeadAttention(MultiHeadAttentionConfig),
    /// Token ids `[batch, seq]` → a 1 (token) / 0 (padding) mask.
    PaddingMask(PaddingMaskConfig),
    /// A learned `[sequence_length, features]` table added to `[batch, seq, features]`.
    PositionEmbedding(PositionEmbeddingConfig),
    /// The fixed sinusoidal encoding (Vaswani et al. 2017) added to its input.
    SinePositionEncoding(SinePositionEncodingConfig),
    /// Mean over the sequence axis: `[batch, seq, features]` (and an optional mask
    /// `[batch, seq]`) → `[batch, features]`.
    GlobalAveragePooling1D,
    /// Appends a learned token: `[batch, seq, features]` → `[batch, seq + 1, features]`.
    ClassToken(ClassTokenConfig),
    /// The last position (the class token's state): `[batch, seq, features]` →
    /// `[batch, features]`.
    ClassTokenPooling,
}

/// The serde form of [`LayerSpec`]: parameterless layers are empty struct variants
/// here, so that `deny_unknown_fields` rejects settings given to them (serde ignores
/// extra keys next to the tag of a unit variant).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
#[allow(clippy::upper_case_acronyms)]
enum LayerSpecRepr {
    Dense(DenseConfig),
    Conv2D(Conv2DConfig),
    #[serde(alias = "MaxPooling2D")]
    MaxPool2D(Pool2DConfig),
    #[serde(alias = "AveragePooling2D")]
    AvgPool2D(Pool2DConfig),
    GlobalAveragePooling2D {},
    Flatten {},
    Dropout(DropoutConfig),
    BatchNormalization(BatchNormConfig),
    Activation(ActivationConfig),
    ReLU {},
    LeakyReLU(LeakyReluConfig),
    ELU(EluConfig),
    Softmax {},
    Embedding(EmbeddingConfig),
    SimpleRNN(SimpleRnnConfig),
    LSTM(LstmConfig),
    GRU(GruConfig),
    Reshape(ReshapeConfig),
    Add {},
    Subtract {},
    Multiply {},
    Average {},
    Maximum {},
    Concatenate(ConcatenateConfig),
    Dot {},
    LayerNormalization(LayerNormConfig),
    ZeroPadding2D(ZeroPadding2DConfig),
    GlobalMaxPooling2D {},
    Identity {},
    MultiHeadAttention(MultiHeadAttentionConfig),
    PaddingMask(PaddingMaskConfig),
    PositionEmbedding(PositionEmbeddingConfig),
    SinePositionEncoding(SinePositionEncodingConfig),
    GlobalAveragePooling1D {},
    ClassToken(ClassTokenConfig),
    ClassTokenPooling {},
}

impl From<LayerSpecRepr> for LayerSpec {
    fn from(r: LayerSpecRepr) -> Self {
        match r {
            LayerSpecRepr::Dense(c) => LayerSpec::Dense(c),
            LayerSpecRepr::Conv2D(c) => LayerSpec::Conv2D(c),
            LayerSpecRepr::MaxPool2D(c) => LayerSpec::MaxPool2D(c),
            LayerSpecRepr::AvgPool2D(c) => LayerSpec::AvgPool2D(c),
            LayerSpecRepr::GlobalAveragePooling2D {} => LayerSpec::GlobalAveragePooling2D,
            LayerSpecRepr::Flatten {} => LayerSpec::Flatten,
            LayerSpecRepr::Dropout(c) => LayerSpec::Dropout(c),
            LayerSpecRepr::BatchNormalization(c) => LayerSpec::BatchNormalization(c),
            LayerSpecRepr::Activation(c) => LayerSpec::Activation(c),
            LayerSpecRepr::ReLU {} => LayerSpec::ReLU,
            LayerSpecRepr::LeakyReLU(c) => LayerSpec::LeakyReLU(c),
            LayerSpecRepr::ELU(c) => LayerSpec::ELU(c),
            LayerSpecRepr::Softmax {} => LayerSpec::Softmax,
            LayerSpecRepr::Embedding(c) => LayerSpec::Embedding(c),
            LayerSpecRepr::SimpleRNN(c) => LayerSpec::SimpleRNN(c),
            LayerSpecRepr::LSTM(c) => LayerSpec::LSTM(c),
            LayerSpecRepr::GRU(c) => LayerSpec::GRU(c),
            LayerSpecRepr::Reshape(c) => LayerSpec::Reshape(c),
            LayerSpecRepr::Add {} => LayerSpec::Add,
            LayerSpecRepr::Subtract {} => LayerSpec::Subtract,
            LayerSpecRepr::Multiply {} => LayerSpec::Multiply,
            LayerSpecRepr::Average {} => LayerSpec::Average,
            LayerSpecRepr::Maximum {} => LayerSpec::Maximum,
            LayerSpecRepr::Concatenate(c) => LayerSpec::Concatenate(c),
            LayerSpecRepr::Dot {} => LayerSpec::Dot,
            LayerSpecRepr::LayerNormalization(c) => LayerSpec::LayerNormalization(c),
            LayerSpecRepr::ZeroPadding2D(c) => LayerSpec::ZeroPadding2D(c),
            LayerSpecRepr::GlobalMaxPooling2D {} => LayerSpec::GlobalMaxPooling2D,
            LayerSpecRepr::Identity {} => LayerSpec::Identity,
            LayerSpecRepr::MultiHeadAttention(c) => LayerSpec::MultiHeadAttention(c),
            LayerSpecRepr::PaddingMask(c) => LayerSpec::PaddingMask(c),
            LayerSpecRepr::PositionEmbedding(c) => LayerSpec::PositionEmbedding(c),
            LayerSpecRepr::SinePositionEncoding(c) => LayerSpec::SinePositionEncoding(c),
            LayerSpecRepr::GlobalAveragePooling1D {} => LayerSpec::GlobalAveragePooling1D,
            LayerSpecRepr::ClassToken(c) => LayerSpec::ClassToken(c),
            LayerSpecRepr::ClassTokenPooling {} => LayerSpec::ClassTokenPooling,
        }
    }
}

impl From<LayerSpec> for LayerSpecRepr {
    fn from(l: LayerSpec) -> Self {
        match l {
            LayerSpec::Dense(c) => LayerSpecRepr::Dense(c),
            LayerSpec::Conv2D(c) => LayerSpecRepr::Conv2D(c),
            LayerSpec::MaxPool2D(c) => LayerSpecRepr::MaxPool2D(c),
            LayerSpec::AvgPool2D(c) => LayerSpecRepr::AvgPool2D(c),
            LayerSpec::GlobalAveragePooling2D => LayerSpecRepr::GlobalAveragePooling2D {},
            LayerSpec::Flatten => LayerSpecRepr::Flatten {},
            LayerSpec::Dropout(c) => LayerSpecRepr::Dropout(c),
            LayerSpec::BatchNormalization(c) => LayerSpecRepr::BatchNormalization(c),
            LayerSpec::Activation(c) => LayerSpecRepr::Activation(c),
            LayerSpec::ReLU => LayerSpecRepr::ReLU {},
            LayerSpec::LeakyReLU(c) => LayerSpecRepr::LeakyReLU(c),
            LayerSpec::ELU(c) => LayerSpecRepr::ELU(c),
            LayerSpec::Softmax => LayerSpecRepr::Softmax {},
            LayerSpec::Embedding(c) => LayerSpecRepr::Embedding(c),
            LayerSpec::SimpleRNN(c) => LayerSpecRepr::SimpleRNN(c),
            LayerSpec::LSTM(c) => LayerSpecRepr::LSTM(c),
            LayerSpec::GRU(c) => LayerSpecRepr::GRU(c),
            LayerSpec::Reshape(c) => LayerSpecRepr::Reshape(c),
            LayerSpec::Add => LayerSpecRepr::Add {},
            LayerSpec::Subtract => LayerSpecRepr::Subtract {},
            LayerSpec::Multiply => LayerSpecRepr::Multiply {},
            LayerSpec::Average => LayerSpecRepr::Average {},
            LayerSpec::Maximum => LayerSpecRepr::Maximum {},
            LayerSpec::Concatenate(c) => LayerSpecRepr::Concatenate(c),
            LayerSpec::Dot => LayerSpecRepr::Dot {},
            LayerSpec::LayerNormalization(c) => LayerSpecRepr::LayerNormalization(c),
            LayerSpec::ZeroPadding2D(c) => LayerSpecRepr::ZeroPadding2D(c),
            LayerSpec::GlobalMaxPooling2D => LayerSpecRepr::GlobalMaxPooling2D {},
            LayerSpec::Identity => LayerSpecRepr::Identity {},
            LayerSpec::MultiHeadAttention(c) => LayerSpecRepr::MultiHeadAttention(c),
            LayerSpec::PaddingMask(c) => LayerSpecRepr::PaddingMask(c),
            LayerSpec::PositionEmbedding(c) => LayerSpecRepr::PositionEmbedding(c),
            LayerSpec::SinePositionEncoding(c) => LayerSpecRepr::SinePositionEncoding(c),
            LayerSpec::GlobalAveragePooling1D => LayerSpecRepr::GlobalAveragePooling1D {},
            LayerSpec::ClassToken(c) => LayerSpecRepr::ClassToken(c),
            LayerSpec::ClassTokenPooling => LayerSpecRepr::ClassTokenPooling {},
        }
    }
}

impl LayerSpec {
    /// The layer's kind: the `"type"` tag (`"Dense"`, `"Conv2D"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Dense(_) => "Dense",
            LayerSpec::Conv2D(_) => "Conv2D",
            LayerSpec::MaxPool2D(_) => "MaxPool2D",
            LayerSpec::AvgPool2D(_) => "AvgPool2D",
            LayerSpec::GlobalAveragePooling2D => "GlobalAveragePooling2D",
            LayerSpec::Flatten => "Flatten",
            LayerSpec::Dropout(_) => "Dropout",
            LayerSpec::BatchNormalization(_) => "BatchNormalization",
            LayerSpec::Activation(_) => "Activation",
            LayerSpec::ReLU => "ReLU",
            LayerSpec::LeakyReLU(_) => "LeakyReLU",
            LayerSpec::ELU(_) => "ELU",
            LayerSpec::Softmax => "Softmax",
            LayerSpec::Embedding(_) => "Embedding",
            LayerSpec::SimpleRNN(_) => "SimpleRNN",
            LayerSpec::LSTM(_) => "LSTM",
            LayerSpec::GRU(_) => "GRU",
            LayerSpec::Reshape(_) => "Reshape",
            LayerSpec::Add => "Add",
            LayerSpec::Subtract => "Subtract",
            LayerSpec::Multiply => "Multiply",
            LayerSpec::Average => "Average",
            LayerSpec::Maximum => "Maximum",
            LayerSpec::Concatenate(_) => "Concatenate",
            LayerSpec::Dot => "Dot",
            LayerSpec::LayerNormalization(_) => "LayerNormalization",
            LayerSpec::ZeroPadding2D(_) => "ZeroPadding2D",
            LayerSpec::GlobalMaxPooling2D => "GlobalMaxPooling2D",
            LayerSpec::Identity => "Identity",
            LayerSpec::MultiHeadAttention(_) => "MultiHeadAttention",
            LayerSpec::PaddingMask(_) => "PaddingMask",
            LayerSpec::PositionEmbedding(_) => "PositionEmbedding",
            LayerSpec::SinePositionEncoding(_) => "SinePositionEncoding",
            LayerSpec::GlobalAveragePooling1D => "GlobalAveragePooling1D",
            LayerSpec::ClassToken(_) => "ClassToken",
            LayerSpec::ClassTokenPooling => "ClassTokenPooling",
        }
    }

    /// A Dense layer with `units` outputs and `activation`.
    pub fn dense(units: usize, activation: Activation) -> Self {
        LayerSpec::Dense(DenseConfig::new(units).with_activation(activation))
    }

    /// A Conv2D layer (stride 1, `valid`) with `filters` square `kernel × kernel`
    /// filters and `activation`.
    pub fn conv2d(filters: usize, kernel: usize, activation: Activation) -> Self {
        LayerSpec::Conv2D(Conv2DConfig::new(filters, kernel).with_activation(activation))
    }

    /// A MaxPool2D layer with a square `pool × pool` window and equal stride.
    pub fn max_pool(pool: usize) -> Self {
        LayerSpec::MaxPool2D(Pool2DConfig::new(pool))
    }

    /// An AvgPool2D layer with a square `pool × pool` window and equal stride.
    pub fn avg_pool(pool: usize) -> Self {
        LayerSpec::AvgPool2D(Pool2DConfig::new(pool))
    }

    /// A Dropout layer with `rate`.
    pub fn dropout(rate: f64) -> Self {
        LayerSpec::Dropout(DropoutConfig { rate })
    }

    /// A BatchNormalization layer with Keras's defaults.
    pub fn batch_norm() -> Self {
        LayerSpec::BatchNormalization(BatchNormConfig::default())
    }

    /// An Activation layer.
    pub fn activation(activation: Activation) -> Self {
        LayerSpec::Activation(ActivationConfig { activation })
    }

    /// An LSTM layer with `units` and Keras's defaults (last output only).
    pub fn lstm(units: usize) -> Self {
        LayerSpec::LSTM(LstmConfig::new(units))
    }

    /// A GRU layer with `units` and Keras's defaults (last output only).
    pub fn gru(units: usize) -> Self {
        LayerSpec::GRU(GruConfig::new(units))
    }

    /// A SimpleRNN layer with `units` and Keras's defaults (last output only).
    pub fn simple_rnn(units: usize) -> Self {
        LayerSpec::SimpleRNN(SimpleRnnConfig::new(units))
    }

    /// A Reshape layer to the per-sample shape `target_shape`.
    ///
    /// # Errors
    /// As [`TargetShape::new`].
    pub fn reshape(target_shape: &[usize]) -> Result<Self> {
        Ok(LayerSpec::Reshape(ReshapeConfig { target_shape: TargetShape::new(target_shape)? }))
    }
}
