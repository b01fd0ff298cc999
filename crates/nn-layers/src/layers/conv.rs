//! 2-d convolution over NHWC images.

use ndarray::ArrayViewD;
use nn_autograd::{Graph, Var};
use nn_tensor::conv::{Conv2dGeometry, Padding};
use nn_tensor::{Element, Tensor};

use super::{layer_accessors, Meta};
use crate::activation::Activation;
use crate::error::Result;
use crate::init::Fans;
use crate::module::{check_param_count, ForwardCtx, Layer, ParamKind, ParamSpec, Parameter};
use crate::spec::{Conv2DConfig, PaddingMode};

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
        match act {
            Activation::Softmax => Ok(act.apply(g, y)?),
            _ => Ok(y),
        }
    }

    fn ends_with_softmax(&self) -> bool {
        self.config.activation == Activation::Softmax
    }

    fn infer(&self, x: ArrayViewD<'_, T>, params: &[Parameter<T>], _logits: bool) -> Option<Result<Tensor<T>>> {
        let act = self.config.activation;
        let g = &self.geometry;
        if act == Activation::Softmax
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
