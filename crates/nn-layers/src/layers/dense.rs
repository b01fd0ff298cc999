//! Dense (fully connected) layer.

use nn_autograd::{Graph, Var};
use nn_tensor::Element;

use super::{layer_accessors, Meta};
use crate::activation::Activation;
use crate::error::Result;
use crate::init::Fans;
use crate::module::{check_param_count, ForwardCtx, Layer, ParamKind, ParamSpec};
use crate::spec::DenseConfig;

/// `y = activation(x · kernel + bias)` on the last axis (Keras's `Dense`).
///
/// One graph op: a single GEMM with the bias as its initial value, and an
/// element-wise activation applied in place on its output (see the fused ops'
/// notes in the crate docs); softmax runs after it over the last axis.
///
/// # Shapes
/// - input: `[batch, ..., in_features]`
/// - `kernel: [in_features, units]`, `bias: [units]` (parameters, in that order)
/// - output: `[batch, ..., units]`
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    meta: Meta,
    config: DenseConfig,
}

impl Dense {
    pub(crate) fn new(mut meta: Meta, config: DenseConfig) -> Result<Self> {
        let Some(&in_features) = meta.input_shape.last() else {
            return Err(meta.shape_error("[..., in_features] (at least 1 axis)"));
        };
        if config.units == 0 {
            return Err(meta.config_error("units must be at least 1, got 0"));
        }
        let fans = Fans::dense(in_features, config.units);
        meta.params.push(ParamSpec {
            kind: ParamKind::Kernel,
            shape: vec![in_features, config.units],
            trainable: true,
            initializer: config.kernel_initializer,
            fans,
        });
        if config.use_bias {
            meta.params.push(ParamSpec {
                kind: ParamKind::Bias,
                shape: vec![config.units],
                trainable: true,
                initializer: config.bias_initializer,
                fans: Fans::of_shape(&[config.units]),
            });
        }
        *meta.output_shape.last_mut().expect("non-empty") = config.units;
        Ok(Dense { meta, config })
    }

    /// The settings.
    pub fn config(&self) -> &DenseConfig {
        &self.config
    }

    fn affine<T: Element>(&self, g: &mut Graph<T>, x: Var, params: &[Var]) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        Ok(g.try_linear(x, params[0], params.get(1).copied())?)
    }
}

impl<T: Element> Layer<T> for Dense {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        crate::fused::dense(g, x, params[0], params.get(1).copied(), self.config.activation)
    }

    fn ends_with_softmax(&self) -> bool {
        self.config.activation == Activation::Softmax
    }

    fn forward_logits(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        if <Self as Layer<T>>::ends_with_softmax(self) {
            self.affine(g, x, params)
        } else {
            self.forward(g, x, params, ctx)
        }
    }
}
