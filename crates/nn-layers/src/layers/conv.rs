//! 2-d convolution over NHWC images.
//!
//! The serde settings ([`Conv2DConfig`]) live here too; `crate::spec` re-exports it.

use ndarray::ArrayViewD;
use nn_autograd::{Graph, Var};
use nn_tensor::conv::{Conv2dGeometry, Padding};
use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Serialize};

use super::{layer_accessors, Meta};
use crate::activation::Activation;
use crate::error::Result;
use crate::init::{Fans, Initializer};
use crate::module::{check_param_count, ForwardCtx, Layer, ParamKind, ParamSpec, Parameter};
use crate::spec::{yes, zeros, PaddingMode, Size2};

fn one_by_one() -> Size2 {
    Size2(1, 1)
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

/// `y = activation(conv2d(x, kernel) + bias)` (Keras's `Conv2D`, channels last):
/// `y[n, i, j, f] = b[f] + Σ_{u, v, c} x[n, i·s_h + u − p_top, j·s_w + v − p_left, c] · k[u, v, c, f]`
/// (cross-correlation, zeros outside the image).
///
/// One graph op ([`Graph::try_conv2d_act`]): im2col and a single GEMM (bias
/// included), with an element-wise activation applied in place on its output (see
/// [`Activation::epilogue`]); softmax runs after it over the last axis.
///
/// # Shapes
/// - input: `[batch, height, width, in_channels]`
/// - `kernel: [kernel_h, kernel_w, in_channels, filters]`, `bias: [filters]`
/// - output: `[batch, out_h, out_w, filters]`, per axis `valid`:
///   `out = floor((in − k) / s) + 1`, `same`: `out = ceil(in / s)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2D {
    meta: Meta,
    config: Conv2DConfig,
    geometry: Conv2dGeometry,
}

impl Conv2D {
    pub(crate) fn new(mut meta: Meta, config: Conv2DConfig) -> Result<Self> {
        let (kh, kw) = config.kernel_size.pair();
        let (sh, sw) = config.strides.pair();
        if config.filters == 0 || kh == 0 || kw == 0 || sh == 0 || sw == 0 {
            return Err(meta.config_error(format!(
                "filters ({}), kernel_size ({kh}, {kw}) and strides ({sh}, {sw}) must all be at least 1",
                config.filters
            )));
        }
        let &[h, w, c] = meta.input_shape.as_slice() else {
            return Err(meta.shape_error("[height, width, channels] (3 axes, NHWC without the batch axis)"));
        };
        let geometry = Conv2dGeometry::new((h, w, c), (kh, kw), (sh, sw), Padding::from(config.padding))
            .ok()
            .filter(|_| c > 0)
            .ok_or_else(|| {
                meta.shape_error(match config.padding {
                    PaddingMode::Valid => {
                        format!("[height ≥ {kh}, width ≥ {kw}, channels ≥ 1] for a {kh}×{kw} kernel with valid padding")
                    }
                    PaddingMode::Same => "[height ≥ 1, width ≥ 1, channels ≥ 1]".to_string(),
                })
            })?;
        let fans = Fans::conv2d((kh, kw), c, config.filters);
        meta.params.push(ParamSpec {
            kind: ParamKind::Kernel,
            shape: vec![kh, kw, c, config.filters],
            trainable: true,
            initializer: config.kernel_initializer,
            fans,
        });
        if config.use_bias {
            meta.params.push(ParamSpec {
                kind: ParamKind::Bias,
                shape: vec![config.filters],
                trainable: true,
                initializer: config.bias_initializer,
                fans: Fans::of_shape(&[config.filters]),
            });
        }
        meta.output_shape = vec![geometry.out_h, geometry.out_w, config.filters];
        Ok(Conv2D { meta, config, geometry })
    }

    /// The settings.
    pub fn config(&self) -> &Conv2DConfig {
        &self.config
    }

    /// The resolved geometry (padding amounts, output size).
    pub fn geometry(&self) -> &Conv2dGeometry {
        &self.geometry
    }

    fn affine<T: Element>(&self, g: &mut Graph<T>, x: Var, params: &[Var]) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        Ok(g.try_conv2d(x, params[0], params.get(1).copied(), self.config.strides.pair(), self.config.padding.into())?)
    }
}

impl<T: Element> Layer<T> for Conv2D {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let (stride, padding) = (self.config.strides.pair(), self.config.padding.into());
        let act = self.config.activation;
        let y = g.try_conv2d_act(x, params[0], params.get(1).copied(), stride, padding, act.epilogue())?;
        if act.runs_after_product() {
            Ok(act.apply(g, y)?)
        } else {
            Ok(y)
        }
    }

    fn ends_with_softmax(&self) -> bool {
        self.config.activation == Activation::Softmax
    }

    fn infer(&self, x: ArrayViewD<'_, T>, params: &[Parameter<T>], _logits: bool) -> Option<Result<Tensor<T>>> {
        let act = self.config.activation;
        let g = &self.geometry;
        if act.runs_after_product()
            || params.len() != self.meta.params.len()
            || x.ndim() != 4
            || x.shape()[1..] != [g.in_h, g.in_w, g.channels]
        {
            return None;
        }
        let bias = self.config.use_bias.then(|| &*params[1].value);
        Some(nn_autograd::conv2d_value(x, &params[0].value, bias, g, act.epilogue()).map_err(Into::into))
    }

    fn forward_logits(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        if <Self as Layer<T>>::ends_with_softmax(self) {
            self.affine(g, x, params)
        } else {
            self.forward(g, x, params, ctx)
        }
    }
}
