//! Dense (fully connected) layer.
//!
//! The serde settings ([`DenseConfig`], [`LoraConfig`]) live here too; `crate::spec`
//! re-exports them.

use ndarray::ArrayViewD;
use nn_autograd::{Graph, Var};
use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Serialize};

use super::{layer_accessors, Meta};
use crate::activation::Activation;
use crate::error::Result;
use crate::init::{Fans, Initializer};
use crate::module::{check_param_count, ForwardCtx, Layer, ParamKind, ParamSpec, Parameter};
use crate::spec::{yes, zeros};

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
        if act.runs_after_product() {
            Ok(act.apply(g, y)?)
        } else {
            Ok(y)
        }
    }

    fn ends_with_softmax(&self) -> bool {
        self.config.activation == Activation::Softmax
    }

    fn infer(&self, x: ArrayViewD<'_, T>, params: &[Parameter<T>], logits: bool) -> Option<Result<Tensor<T>>> {
        let gelu = matches!(self.config.activation, Activation::Gelu | Activation::GeluApproximate);
        if self.config.lora.is_some() || gelu || params.len() != self.meta.params.len() || x.ndim() < 2 {
            return None; // adapters, GELU (and misuse) take the graph path
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
