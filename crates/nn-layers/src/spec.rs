//! Serde descriptions of layers and models: a model is plain data (JSON).

use nn_tensor::conv::Padding;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::activation::Activation;
use crate::error::{LayerError, Result};
use crate::init::Initializer;

pub use crate::layers::{ConcatenateConfig, LayerNormConfig, Padding2D, ZeroPadding2DConfig};

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

fn yes() -> bool {
    true
}
fn zeros() -> Initializer {
    Initializer::Zeros
}
fn ones() -> Initializer {
    Initializer::Ones
}
fn one_by_one() -> Size2 {
    Size2(1, 1)
}
fn two_by_two() -> Size2 {
    Size2(2, 2)
}
fn bn_momentum() -> f64 {
    0.99
}
fn bn_epsilon() -> f64 {
    1e-3
}
fn leaky_slope() -> f64 {
    0.3
}
fn one_f64() -> f64 {
    1.0
}
fn embedding_init() -> Initializer {
    Initializer::RandomUniform { minval: -0.05, maxval: 0.05 }
}
fn orthogonal() -> Initializer {
    Initializer::Orthogonal
}

/// Settings of a Dense (fully connected) layer: `y = activation(x · kernel + bias)`.
///
/// # Shapes
/// `x: [batch, ..., in_features]` → `[batch, ..., units]` (applied to the last axis,
/// as Keras does); `kernel: [in_features, units]`, `bias: [units]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseConfig {
    /// Output features (`out_features`), at least 1.
    pub units: usize,
    /// Applied after the affine map. Default `linear`.
    #[serde(default)]
    pub activation: Activation,
    /// Whether to add a bias. Default true.
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Default `glorot_uniform`.
    #[serde(default)]
    pub kernel_initializer: Initializer,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
    /// Low-rank adapters (LoRA, Hu et al. 2021) on the kernel; default none. With
    /// them, kernel and bias are frozen and only `lora_a`, `lora_b` train (see
    /// [`LoraConfig`]). Left out of JSON when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
}

/// Low-rank adaptation of a Dense layer's kernel (LoRA; E. Hu et al., "LoRA: Low-Rank
/// Adaptation of Large Language Models", 2021, eq. 3): the layer computes
/// `y = activation(x · (kernel + (α/r) · A · B) + bias)`, evaluated as
/// `x · kernel + bias + (α/r) · ((x · A) · B)` so the `[in_features, units]` update is
/// never formed.
///
/// # Shapes
/// `lora_a: [in_features, rank]`, `lora_b: [rank, units]` (the paper's `A` and `B`
/// transposed, since our kernels are `[in_features, out_features]`).
///
/// # Initialisation
/// `A ~ N(0, 1/in_features)` (Gaussian, as the paper; the variance keeps `x · A` at
/// the scale of `x`'s features), `B = 0`, so a fresh adapter leaves the layer's
/// output exactly unchanged and training starts from the base model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// The rank `r` of the update, at least 1.
    pub rank: usize,
    /// The scale numerator `α` (the update is multiplied by `α / r`); finite and > 0.
    pub alpha: f64,
}

impl LoraConfig {
    /// Rank `rank` and scale numerator `alpha`.
    pub fn new(rank: usize, alpha: f64) -> Self {
        LoraConfig { rank, alpha }
    }

    /// The factor `α / r` on `A · B`.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

impl DenseConfig {
    /// `units` outputs, Keras's defaults otherwise.
    pub fn new(units: usize) -> Self {
        DenseConfig {
            units,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            lora: None,
        }
    }
    /// Adds (or, with `None`, removes) low-rank adapters.
    pub fn with_lora(mut self, lora: Option<LoraConfig>) -> Self {
        self.lora = lora;
        self
    }
    /// Sets the activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }
    /// Sets whether a bias is used.
    pub fn with_bias(mut self, use_bias: bool) -> Self {
        self.use_bias = use_bias;
        self
    }
    /// Sets the kernel initializer.
    pub fn with_kernel_initializer(mut self, init: Initializer) -> Self {
        self.kernel_initializer = init;
        self
    }
    /// Sets the bias initializer.
    pub fn with_bias_initializer(mut self, init: Initializer) -> Self {
        self.bias_initializer = init;
        self
    }
}

/// Settings of a 2-d convolution over NHWC images (cross-correlation, as Keras).
///
/// # Shapes
/// `x: [batch, height, width, in_channels]` → `[batch, out_h, out_w, filters]`;
/// `kernel: [kernel_h, kernel_w, in_channels, filters]`, `bias: [filters]`;
/// `valid`: `out = floor((in − k) / s) + 1`, `same`: `out = ceil(in / s)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2DConfig {
    /// Output channels, at least 1.
    pub filters: usize,
    /// `(kernel_h, kernel_w)`, or one integer for both.
    pub kernel_size: Size2,
    /// `(stride_h, stride_w)`. Default `(1, 1)`.
    #[serde(default = "one_by_one")]
    pub strides: Size2,
    /// Default `valid`.
    #[serde(default)]
    pub padding: PaddingMode,
    /// Default `linear`.
    #[serde(default)]
    pub activation: Activation,
    /// Default true.
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Default `glorot_uniform`.
    #[serde(default)]
    pub kernel_initializer: Initializer,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
}

impl Conv2DConfig {
    /// `filters` output channels and a `kernel_size` window, Keras's defaults
    /// otherwise (stride 1, `valid`, no activation, bias).
    pub fn new(filters: usize, kernel_size: impl Into<Size2>) -> Self {
        Conv2DConfig {
            filters,
            kernel_size: kernel_size.into(),
            strides: Size2(1, 1),
            padding: PaddingMode::Valid,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
        }
    }
    /// Sets the strides.
    pub fn with_strides(mut self, strides: impl Into<Size2>) -> Self {
        self.strides = strides.into();
        self
    }
    /// Sets the padding.
    pub fn with_padding(mut self, padding: PaddingMode) -> Self {
        self.padding = padding;
        self
    }
    /// Sets the activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }
    /// Sets whether a bias is used.
    pub fn with_bias(mut self, use_bias: bool) -> Self {
        self.use_bias = use_bias;
        self
    }
    /// Sets the kernel initializer.
    pub fn with_kernel_initializer(mut self, init: Initializer) -> Self {
        self.kernel_initializer = init;
        self
    }
    /// Sets the bias initializer.
    pub fn with_bias_initializer(mut self, init: Initializer) -> Self {
        self.bias_initializer = init;
        self
    }
}

/// Settings of MaxPool2D and AvgPool2D.
///
/// # Shapes
/// `[batch, height, width, channels]` → `[batch, out_h, out_w, channels]`, sizes as
/// for Conv2D with the pool as kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool2DConfig {
    /// Window `(height, width)`. Default `(2, 2)`.
    #[serde(default = "two_by_two")]
    pub pool_size: Size2,
    /// Default: the pool size (non-overlapping windows), as Keras.
    #[serde(default)]
    pub strides: Option<Size2>,
    /// Default `valid`.
    #[serde(default)]
    pub padding: PaddingMode,
}

impl Default for Pool2DConfig {
    fn default() -> Self {
        Pool2DConfig { pool_size: Size2(2, 2), strides: None, padding: PaddingMode::Valid }
    }
}

impl Pool2DConfig {
    /// A `pool_size` window with stride equal to it, `valid` padding.
    pub fn new(pool_size: impl Into<Size2>) -> Self {
        Pool2DConfig { pool_size: pool_size.into(), ..Self::default() }
    }
    /// Sets the strides.
    pub fn with_strides(mut self, strides: impl Into<Size2>) -> Self {
        self.strides = Some(strides.into());
        self
    }
    /// Sets the padding.
    pub fn with_padding(mut self, padding: PaddingMode) -> Self {
        self.padding = padding;
        self
    }
    /// The strides in use: the given ones or the pool size.
    pub fn effective_strides(&self) -> Size2 {
        self.strides.unwrap_or(self.pool_size)
    }
}

/// Settings of Dropout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutConfig {
    /// Fraction of inputs zeroed in training, in `[0, 1)`.
    pub rate: f64,
}

/// Settings of BatchNormalization (Keras's defaults; normalises over every axis but
/// the last).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormConfig {
    /// Weight of the old value in the moving-statistic update. Default 0.99.
    #[serde(default = "bn_momentum")]
    pub momentum: f64,
    /// Added to the variance before the square root. Default 1e-3.
    #[serde(default = "bn_epsilon")]
    pub epsilon: f64,
    /// Whether to add the learned offset β. Default true.
    #[serde(default = "yes")]
    pub center: bool,
    /// Whether to multiply by the learned scale γ. Default true.
    #[serde(default = "yes")]
    pub scale: bool,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub beta_initializer: Initializer,
    /// Default `ones`.
    #[serde(default = "ones")]
    pub gamma_initializer: Initializer,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub moving_mean_initializer: Initializer,
    /// Default `ones`.
    #[serde(default = "ones")]
    pub moving_variance_initializer: Initializer,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_initializer: Initializer::Zeros,
            gamma_initializer: Initializer::Ones,
            moving_mean_initializer: Initializer::Zeros,
            moving_variance_initializer: Initializer::Ones,
        }
    }
}

impl BatchNormConfig {
    /// Sets the momentum.
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
    /// Sets epsilon.
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    /// Sets whether β is used.
    pub fn with_center(mut self, center: bool) -> Self {
        self.center = center;
        self
    }
    /// Sets whether γ is used.
    pub fn with_scale(mut self, scale: bool) -> Self {
        self.scale = scale;
        self
    }
}

/// Settings of an Activation layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationConfig {
    /// The function.
    pub activation: Activation,
}

/// Settings of LeakyReLU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakyReluConfig {
    /// Slope for `x ≤ 0`. Default 0.3 (Keras's `LeakyReLU` layer).
    #[serde(default = "leaky_slope")]
    pub negative_slope: f64,
}

impl Default for LeakyReluConfig {
    fn default() -> Self {
        LeakyReluConfig { negative_slope: 0.3 }
    }
}

/// Settings of ELU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EluConfig {
    /// `α` in `α·(eˣ − 1)` for `x ≤ 0`. Default 1.
    #[serde(default = "one_f64")]
    pub alpha: f64,
}

impl Default for EluConfig {
    fn default() -> Self {
        EluConfig { alpha: 1.0 }
    }
}

/// Settings of Embedding (a lookup table of vectors).
///
/// # Shapes
/// `x: [batch, ...]` holding integer indices in `[0, input_dim)` (stored as floats)
/// → `[batch, ..., output_dim]`; `embeddings: [input_dim, output_dim]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// Vocabulary size (indices run over `0..input_dim`), at least 1.
    pub input_dim: usize,
    /// Vector length, at least 1.
    pub output_dim: usize,
    /// Default `random_uniform` over `[−0.05, 0.05)` (Keras's default).
    #[serde(default = "embedding_init")]
    pub embeddings_initializer: Initializer,
}

impl EmbeddingConfig {
    /// A table of `input_dim` vectors of length `output_dim`, Keras's initializer.
    pub fn new(input_dim: usize, output_dim: usize) -> Self {
        EmbeddingConfig { input_dim, output_dim, embeddings_initializer: embedding_init() }
    }
}

/// Settings shared by the recurrent layers' serde forms (Keras's names and defaults).
macro_rules! recurrent_setters {
    () => {
        /// Sets whether every step's output is returned (`[batch, time, units]`) or
        /// only the last one (`[batch, units]`).
        pub fn with_return_sequences(mut self, return_sequences: bool) -> Self {
            self.return_sequences = return_sequences;
            self
        }
        /// Sets whether the final states are returned too (see the layer's
        /// `forward_with_state`).
        pub fn with_return_state(mut self, return_state: bool) -> Self {
            self.return_state = return_state;
            self
        }
        /// Sets whether biases are used.
        pub fn with_bias(mut self, use_bias: bool) -> Self {
            self.use_bias = use_bias;
            self
        }
        /// Sets the input kernel's initializer.
        pub fn with_kernel_initializer(mut self, init: Initializer) -> Self {
            self.kernel_initializer = init;
            self
        }
        /// Sets the recurrent kernel's initializer.
        pub fn with_recurrent_initializer(mut self, init: Initializer) -> Self {
            self.recurrent_initializer = init;
            self
        }
        /// Sets the bias initializer.
        pub fn with_bias_initializer(mut self, init: Initializer) -> Self {
            self.bias_initializer = init;
            self
        }
    };
}

/// Settings of a SimpleRNN layer (Keras's `SimpleRNN`; tanh activation):
/// `h_t = tanh(x_t · kernel + h_{t−1} · recurrent_kernel + bias)` (Elman, 1990).
///
/// # Shapes
/// `x: [batch, time, features]` → `[batch, units]`, or `[batch, time, units]` with
/// `return_sequences`; `kernel: [features, units]`, `recurrent_kernel: [units, units]`,
/// `bias: [units]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimpleRnnConfig {
    /// State size (`units`), at least 1.
    pub units: usize,
    /// Return every step's state instead of the last. Default false.
    #[serde(default)]
    pub return_sequences: bool,
    /// Also return the final state (only through `forward_with_state`; a
    /// [`Sequential`](crate::Sequential) model refuses it). Default false.
    #[serde(default)]
    pub return_state: bool,
    /// Default true.
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Default `glorot_uniform`.
    #[serde(default)]
    pub kernel_initializer: Initializer,
    /// Default `orthogonal`.
    #[serde(default = "orthogonal")]
    pub recurrent_initializer: Initializer,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
}

impl SimpleRnnConfig {
    /// `units` state size, Keras's defaults otherwise.
    pub fn new(units: usize) -> Self {
        SimpleRnnConfig {
            units,
            return_sequences: false,
            return_state: false,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            recurrent_initializer: Initializer::Orthogonal,
            bias_initializer: Initializer::Zeros,
        }
    }
    recurrent_setters!();
}

/// Settings of an LSTM layer (Keras's `LSTM`: tanh activation, sigmoid recurrent
/// activation). Gate equations in [`rnn::lstm`](crate::rnn::lstm).
///
/// # Shapes
/// `x: [batch, time, features]` → `[batch, units]`, or `[batch, time, units]` with
/// `return_sequences`; `kernel: [features, 4·units]`, `recurrent_kernel:
/// [units, 4·units]` and `bias: [4·units]` with the gate blocks in Keras's order
/// `i, f, c̃, o`. Parameters: `4·(features·units + units² + units)`, e.g. 80,384 for
/// LSTM(128) over 28 features.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LstmConfig {
    /// State size (`units`), at least 1.
    pub units: usize,
    /// Return every step's `h` instead of the last. Default false.
    #[serde(default)]
    pub return_sequences: bool,
    /// Also return the final `h` and `c` (only through `forward_with_state`; a
    /// [`Sequential`](crate::Sequential) model refuses it). Default false.
    #[serde(default)]
    pub return_state: bool,
    /// Default true.
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Initialise the forget gate's bias to 1 (Jozefowicz et al., "An empirical
    /// exploration of recurrent network architectures", ICML 2015), the other gates'
    /// with `bias_initializer`. Default true, as Keras.
    #[serde(default = "yes")]
    pub unit_forget_bias: bool,
    /// Default `glorot_uniform`.
    #[serde(default)]
    pub kernel_initializer: Initializer,
    /// Default `orthogonal`.
    #[serde(default = "orthogonal")]
    pub recurrent_initializer: Initializer,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
}

impl LstmConfig {
    /// `units` state size, Keras's defaults otherwise.
    pub fn new(units: usize) -> Self {
        LstmConfig {
            units,
            return_sequences: false,
            return_state: false,
            use_bias: true,
            unit_forget_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            recurrent_initializer: Initializer::Orthogonal,
            bias_initializer: Initializer::Zeros,
        }
    }
    recurrent_setters!();
    /// Sets whether the forget gate's bias starts at 1.
    pub fn with_unit_forget_bias(mut self, unit_forget_bias: bool) -> Self {
        self.unit_forget_bias = unit_forget_bias;
        self
    }
}

/// Settings of a GRU layer (Keras's `GRU` with its defaults: tanh activation, sigmoid
/// recurrent activation, `reset_after: true`). Gate equations in
/// [`rnn::gru`](crate::rnn::gru).
///
/// # Shapes
/// `x: [batch, time, features]` → `[batch, units]`, or `[batch, time, units]` with
/// `return_sequences`; `kernel: [features, 3·units]` and `recurrent_kernel:
/// [units, 3·units]` with the gate blocks in Keras's order `z, r, h̃`; `bias:
/// [2, 3·units]` (input bias, recurrent bias). Parameters:
/// `3·(features·units + units² + 2·units)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GruConfig {
    /// State size (`units`), at least 1.
    pub units: usize,
    /// Return every step's state instead of the last. Default false.
    #[serde(default)]
    pub return_sequences: bool,
    /// Also return the final state (only through `forward_with_state`; a
    /// [`Sequential`](crate::Sequential) model refuses it). Default false.
    #[serde(default)]
    pub return_state: bool,
    /// Default true.
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Apply the reset gate after the recurrent product (the only form supported;
    /// `false`, the original Cho et al. form, is refused when the layer is built).
    /// Default true, as Keras.
    #[serde(default = "yes")]
    pub reset_after: bool,
    /// Default `glorot_uniform`.
    #[serde(default)]
    pub kernel_initializer: Initializer,
    /// Default `orthogonal`.
    #[serde(default = "orthogonal")]
    pub recurrent_initializer: Initializer,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
}

impl GruConfig {
    /// `units` state size, Keras's defaults otherwise.
    pub fn new(units: usize) -> Self {
        GruConfig {
            units,
            return_sequences: false,
            return_state: false,
            use_bias: true,
            reset_after: true,
            kernel_initializer: Initializer::GlorotUniform,
            recurrent_initializer: Initializer::Orthogonal,
            bias_initializer: Initializer::Zeros,
        }
    }
    recurrent_setters!();
}

/// The most axes a [`TargetShape`] holds.
pub const MAX_TARGET_AXES: usize = 8;

/// A per-sample shape of up to [`MAX_TARGET_AXES`] axes, each at least 1; JSON: an
/// array of integers, e.g. `[28, 28]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TargetShape {
    dims: [usize; MAX_TARGET_AXES],
    len: usize,
}

impl TargetShape {
    /// The shape `dims`.
    ///
    /// # Errors
    /// [`LayerError::Spec`] for no axis, more than [`MAX_TARGET_AXES`] axes or a zero
    /// axis.
    pub fn new(dims: &[usize]) -> Result<Self> {
        if dims.is_empty() || dims.len() > MAX_TARGET_AXES || dims.contains(&0) {
            return Err(LayerError::Spec {
                message: format!("target_shape {dims:?} must have 1 to {MAX_TARGET_AXES} axes, each at least 1"),
            });
        }
        let mut d = [0; MAX_TARGET_AXES];
        d[..dims.len()].copy_from_slice(dims);
        Ok(TargetShape { dims: d, len: dims.len() })
    }

    /// The axes.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.len]
    }
}

impl Serialize for TargetShape {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.dims().serialize(s)
    }
}

impl<'de> Deserialize<'de> for TargetShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let dims = Vec::<usize>::deserialize(d)?;
        TargetShape::new(&dims).map_err(serde::de::Error::custom)
    }
}

/// Settings of Reshape (Keras's `Reshape`, without `-1`).
///
/// # Shapes
/// `[batch, ...]` → `[batch, ...target_shape]`, the same number of elements per sample,
/// row-major order kept (e.g. `[batch, 28, 28, 1]` → `[batch, 28, 28]` for a recurrent
/// layer reading images row by row).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReshapeConfig {
    /// The per-sample output shape.
    pub target_shape: TargetShape,
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
    /// Layer normalization over the last axis.
    LayerNormalization(LayerNormConfig),
    /// Zero rows and columns around NHWC images.
    ZeroPadding2D(ZeroPadding2DConfig),
    /// Maximum over height and width: `[batch, h, w, c]` → `[batch, c]`.
    GlobalMaxPooling2D,
    /// Returns its input.
    Identity,
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
    LayerNormalization(LayerNormConfig),
    ZeroPadding2D(ZeroPadding2DConfig),
    GlobalMaxPooling2D {},
    Identity {},
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
            LayerSpecRepr::LayerNormalization(c) => LayerSpec::LayerNormalization(c),
            LayerSpecRepr::ZeroPadding2D(c) => LayerSpec::ZeroPadding2D(c),
            LayerSpecRepr::GlobalMaxPooling2D {} => LayerSpec::GlobalMaxPooling2D,
            LayerSpecRepr::Identity {} => LayerSpec::Identity,
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
            LayerSpec::LayerNormalization(c) => LayerSpecRepr::LayerNormalization(c),
            LayerSpec::ZeroPadding2D(c) => LayerSpecRepr::ZeroPadding2D(c),
            LayerSpec::GlobalMaxPooling2D => LayerSpecRepr::GlobalMaxPooling2D {},
            LayerSpec::Identity => LayerSpecRepr::Identity {},
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
            LayerSpec::LayerNormalization(_) => "LayerNormalization",
            LayerSpec::ZeroPadding2D(_) => "ZeroPadding2D",
            LayerSpec::GlobalMaxPooling2D => "GlobalMaxPooling2D",
            LayerSpec::Identity => "Identity",
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
