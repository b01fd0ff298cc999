//! Dense (fully connected) layer.

use ndarray::ArrayViewD;
use nn_autograd::{Graph, Var};
use nn_tensor::{Element, Tensor};

use super::{layer_accessors, Meta};
use crate::activation::Activation;
use crate::error::Result;
use crate::init::{Fans, Initializer};
use crate::module::{check_param_count, ForwardCtx, Layer, ParamKind, ParamSpec, Parameter};
use crate::spec::DenseConfig;

/// `y = activation(x · kernel + bias)` on the last axis (Keras's `Dense`).
///
/// One graph op ([`Graph::try_linear_act`]): a single GEMM with the bias as its
/// initial value, and an element-wise activation applied in place on its output (see
/// [`Activation::epilogue`]); softmax runs after it over the last axis.
///
/// # Shapes
/// - input: `[batch, ..., in_features]`
/// - `kernel: [in_features, units]`, `bias: [units]` (parameters, in that order), then
///   with [LoRA adapters](crate::LoraConfig) `lora_a: [in_features, rank]`,
///   `lora_b: [rank, units]` (kernel and bias frozen then)
/// - output: `[batch, ..., units]`
///
/// With adapters the layer runs unfused: `x · kernel + bias + (α/r)·(x·A)·B`, then
/// the activation.
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
        // With adapters the base weights are frozen: only A and B train (Hu et al. 2021).
        let base_trainable = config.lora.is_none();
        meta.params.push(ParamSpec {
            kind: ParamKind::Kernel,
            shape: vec![in_features, config.units],
            trainable: base_trainable,
            initializer: config.kernel_initializer,
            fans,
        });
        if config.use_bias {
            meta.params.push(ParamSpec {
                kind: ParamKind::Bias,
                shape: vec![config.units],
                trainable: base_trainable,
                initializer: config.bias_initializer,
                fans: Fans::of_shape(&[config.units]),
            });
        }
        if let Some(lora) = config.lora {
            if lora.rank == 0 {
                return Err(meta.config_error("lora.rank must be at least 1, got 0"));
            }
            if !(lora.alpha.is_finite() && lora.alpha > 0.0) {
                return Err(meta.config_error(format!("lora.alpha must be a positive number, got {}", lora.alpha)));
            }
            meta.params.push(ParamSpec {
                kind: ParamKind::LoraA,
                shape: vec![in_features, lora.rank],
                trainable: true,
                initializer: Initializer::RandomNormal { mean: 0.0, stddev: 1.0 / (in_features as f64).sqrt() },
                fans: Fans::dense(in_features, lora.rank),
            });
            meta.params.push(ParamSpec {
                kind: ParamKind::LoraB,
                shape: vec![lora.rank, config.units],
                trainable: true,
                initializer: Initializer::Zeros,
                fans: Fans::dense(lora.rank, config.units),
            });
        }
        *meta.output_shape.last_mut().expect("non-empty") = config.units;
        Ok(Dense { meta, config })
    }

    /// The settings.
    pub fn config(&self) -> &DenseConfig {
        &self.config
    }

    /// The bias variable, if the layer has one.
    fn bias(&self, params: &[Var]) -> Option<Var> {
        if self.config.use_bias {
            params.get(1).copied()
        } else {
            None
        }
    }

    /// `x · kernel + bias`, plus `(α/r) · (x · A) · B` with adapters.
    fn affine<T: Element>(&self, g: &mut Graph<T>, x: Var, params: &[Var]) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let base = g.try_linear(x, params[0], self.bias(params))?;
        let Some(lora) = self.config.lora else {
            return Ok(base);
        };
        let at = usize::from(self.config.use_bias) + 1;
        let xa = g.try_linear(x, params[at], None)?;
        let xab = g.try_linear(xa, params[at + 1], None)?;
        let update = g.try_mul_scalar(xab, T::of_f64(lora.scaling()))?;
        Ok(g.try_add(base, update)?)
    }
}

impl<T: Element> Layer<T> for Dense {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        if self.config.lora.is_some() {
            let z = self.affine(g, x, params)?;
            return Ok(self.config.activation.apply(g, z)?);
        }
        let act = self.config.activation;
        let y = g.try_linear_act(x, params[0], self.bias(params), act.epilogue())?;
        match act {
            Activation::Softmax => Ok(act.apply(g, y)?),
            _ => Ok(y),
        }
    }

    fn ends_with_softmax(&self) -> bool {
        self.config.activation == Activation::Softmax
    }

    fn infer(&self, x: ArrayViewD<'_, T>, params: &[Parameter<T>], logits: bool) -> Option<Result<Tensor<T>>> {
        if self.config.lora.is_some() || params.len() != self.meta.params.len() || x.ndim() < 2 {
            return None; // adapters (and misuse) take the graph path
        }
        let mut act = self.config.activation;
        if logits && act == Activation::Softmax {
            act = Activation::Linear;
        }
        let bias = self.config.use_bias.then(|| &*params[1].value);
        let value = nn_autograd::linear_value(x, &params[0].value, bias, act.epilogue());
        let value = match act {
            Activation::Softmax => value.and_then(|v| {
                let last = v.ndim() - 1;
                v.try_softmax(last).map_err(|source| nn_autograd::AutogradError::Tensor { op: "softmax", source })
            }),
            _ => value,
        };
        Some(value.map_err(Into::into))
    }

    fn forward_logits(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        if <Self as Layer<T>>::ends_with_softmax(self) {
            self.affine(g, x, params)
        } else {
            self.forward(g, x, params, ctx)
        }
    }
}
