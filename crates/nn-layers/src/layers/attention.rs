//! Attention: MultiHeadAttention (Keras's `keras.layers.MultiHeadAttention` names and
//! defaults) and PaddingMask, which turns token ids into the 1/0 key mask it takes.
//!
//! # How a padding mask reaches attention
//! Keras carries masks implicitly (`Embedding(mask_zero=True)` attaches one to its
//! output). nn passes everything as explicit graph edges instead: a `PaddingMask`
//! layer reads the token ids `[batch, seq]` (the model input) and gives a
//! `[batch, seq]` tensor of 1 (keep) and 0 (padding, id 0 by default), and that tensor
//! is the **last input** of MultiHeadAttention (any input whose per-sample shape is
//! 1-d is the mask) and the second input of GlobalAveragePooling1D:
//!
//! ```json
//! {"type": "PaddingMask", "name": "mask", "inputs": ["tokens"]},
//! {"type": "Embedding", "name": "embed", "input_dim": 1000, "output_dim": 64, "inputs": ["tokens"]},
//! {"type": "MultiHeadAttention", "name": "mha", "num_heads": 4, "key_dim": 16, "inputs": ["embed", "mask"]},
//! {"type": "GlobalAveragePooling1D", "inputs": ["mha", "mask"]}
//! ```
//!
//! The mask masks keys only: every query position (padding included) attends to the
//! real tokens; a padded position's output is then left out by the masked pooling.

use nn_autograd::{Graph, Var};
use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Serialize};

use super::{layer_accessors, Meta};
use crate::error::{LayerError, Result};
use crate::init::{Fans, Initializer};
use crate::module::{check_param_count, ForwardCtx, Layer, Mode, ParamKind, ParamSpec};
use crate::spec::{yes, zeros, LoraConfig};

/// Settings of MultiHeadAttention (Keras's names and defaults; `use_causal_mask`,
/// a call argument in Keras, is a setting here).
///
/// JSON: `{"type": "MultiHeadAttention", "num_heads": 4, "key_dim": 16,
/// "use_causal_mask": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiHeadAttentionConfig {
    /// Number of attention heads, at least 1.
    pub num_heads: usize,
    /// Size of each head's query and key vectors, at least 1.
    pub key_dim: usize,
    /// Size of each head's value vectors; default `key_dim`. Left out of JSON when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_dim: Option<usize>,
    /// Dropout rate on the attention weights, in training only; in `[0, 1)`, default 0.
    #[serde(default)]
    pub dropout: f64,
    /// Whether the four projections add biases. Default true.
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Size of the output's last axis; default the query's last axis. Left out of
    /// JSON when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_shape: Option<usize>,
    /// Whether query position `i` may attend to key positions `j ≤ i` only (a
    /// decoder's causal mask, Keras's `use_causal_mask`). Default false.
    #[serde(default)]
    pub use_causal_mask: bool,
    /// Default `glorot_uniform`.
    #[serde(default)]
    pub kernel_initializer: Initializer,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
    /// Low-rank adapters (LoRA, Hu et al. 2021; see [`LoraConfig`]) on each of the
    /// four projections; default none. With them, every kernel and bias is frozen and
    /// only the `lora_a`, `lora_b` pairs train. Left out of JSON when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
}

impl MultiHeadAttentionConfig {
    /// `num_heads` heads of size `key_dim`, Keras's defaults otherwise.
    pub fn new(num_heads: usize, key_dim: usize) -> Self {
        MultiHeadAttentionConfig {
            num_heads,
            key_dim,
            value_dim: None,
            dropout: 0.0,
            use_bias: true,
            output_shape: None,
            use_causal_mask: false,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            lora: None,
        }
    }
    /// Adds (or, with `None`, removes) low-rank adapters on the four projections.
    pub fn with_lora(mut self, lora: Option<LoraConfig>) -> Self {
        self.lora = lora;
        self
    }
    /// Sets the causal mask.
    pub fn with_causal_mask(mut self, causal: bool) -> Self {
        self.use_causal_mask = causal;
        self
    }
    /// Sets the dropout rate on the attention weights.
    pub fn with_dropout(mut self, rate: f64) -> Self {
        self.dropout = rate;
        self
    }
    /// Sets the value size per head.
    pub fn with_value_dim(mut self, value_dim: usize) -> Self {
        self.value_dim = Some(value_dim);
        self
    }
    /// Sets the output size.
    pub fn with_output_shape(mut self, output_shape: usize) -> Self {
        self.output_shape = Some(output_shape);
        self
    }
    /// Sets whether the projections add biases.
    pub fn with_bias(mut self, use_bias: bool) -> Self {
        self.use_bias = use_bias;
        self
    }
    /// The value size per head (`value_dim`, else `key_dim`).
    pub fn effective_value_dim(&self) -> usize {
        self.value_dim.unwrap_or(self.key_dim)
    }
}

/// Multi-head scaled dot-product attention (Vaswani et al., "Attention Is All You
/// Need", 2017, §3.2.1–3.2.2, eq. 1), as Keras's `MultiHeadAttention`:
///
/// `Qₕ = query·W_Qₕ + b_Qₕ`, `Kₕ = key·W_Kₕ + b_Kₕ`, `Vₕ = value·W_Vₕ + b_Vₕ`,
/// `Aₕ = softmax(Qₕ Kₕᵀ / √key_dim + M)`, `out = Σₕ (Aₕ Vₕ)·W_Oₕ + b_O`,
///
/// where `M` is 0 at kept and −∞ at masked positions: masked weights are exactly 0,
/// and a query row with every key masked gets all-zero weights (so its output is
/// `b_O`), never NaN ([`Graph::try_masked_softmax`]). Dropout (training only) drops
/// attention weights. The heads run as batched GEMMs over `[batch·heads, seq, dim]`.
///
/// # Inputs
/// In a graph model, `inputs` lists, in order: `query`, then optionally `value`,
/// then optionally `key` (Keras's call order; default `value = query` (self-attention)
/// and `key = value`), then optionally a key padding mask — an input whose per-sample
/// shape is 1-d, `[seq_k]`, holding 1 (keep) or 0 (masked; values below 0.5 mask),
/// e.g. from a [`PaddingMask`] layer. With `use_causal_mask`, query `i` also sees only
/// keys `j ≤ i`. The mask carries no gradient.
///
/// # Shapes
/// - query `[batch, seq_q, query_features]`, value `[batch, seq_k, value_features]`,
///   key `[batch, seq_k, key_features]`, mask `[batch, seq_k]`
/// - parameters (Keras's layout and names, in this order; the biases when
///   `use_bias`): `query.kernel [query_features, num_heads, key_dim]`,
///   `query.bias [num_heads, key_dim]`, `key.kernel [key_features, num_heads,
///   key_dim]`, `key.bias`, `value.kernel [value_features, num_heads, value_dim]`,
///   `value.bias [num_heads, value_dim]`, `attention_output.kernel [num_heads,
///   value_dim, output_shape]`, `attention_output.bias [output_shape]`
/// - with [LoRA adapters](crate::LoraConfig) of rank `r`, then (all kernels and
///   biases frozen): `query.lora_a [query_features, r]`, `query.lora_b [r,
///   num_heads·key_dim]`, `key.lora_a [key_features, r]`, `key.lora_b [r,
///   num_heads·key_dim]`, `value.lora_a [value_features, r]`, `value.lora_b [r,
///   num_heads·value_dim]`, `attention_output.lora_a [num_heads·value_dim, r]`,
///   `attention_output.lora_b [r, output_shape]`. Each projection's kernel, seen as
///   the matrix `[in, out]` (`[features, heads·dim]`, or `[heads·value_dim,
///   output_shape]` for the output), becomes `kernel + (α/r)·A·B` (Hu et al. 2021,
///   eq. 3), evaluated as `x·kernel + bias + (α/r)·(x·A)·B`; `A ~ N(0, 1/in)`, `B = 0`,
///   so fresh adapters leave the output unchanged.
/// - output `[batch, seq_q, output_shape]` (default `query_features`)
///
/// # Errors
/// When built: [`LayerError::InvalidConfig`] for `num_heads`, `key_dim`,
/// `value_dim` or `output_shape` of 0, a dropout rate outside `[0, 1)`, a LoRA rank
/// of 0 or an `alpha` that is not a positive number, or inputs that
/// are not 1–3 sequences then at most one mask; [`LayerError::BuildShape`] for a
/// sequence input that is not `[seq, features]`, a key and value of different lengths,
/// or a mask whose length is not the key's.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiHeadAttention {
    meta: Meta,
    config: MultiHeadAttentionConfig,
    /// How many of the inputs are sequences (query, value, key); a mask may follow.
    sequences: usize,
    has_mask: bool,
}

/// The local names of MultiHeadAttention's parameters, Keras's sublayer names.
const MHA_NAMES: [&str; 4] = ["query", "key", "value", "attention_output"];

impl MultiHeadAttention {
    pub(crate) fn new(mut meta: Meta, config: MultiHeadAttentionConfig) -> Result<Self> {
        let c = config;
        let value_dim = c.effective_value_dim();
        if c.num_heads == 0 || c.key_dim == 0 || value_dim == 0 || c.output_shape == Some(0) {
            return Err(meta.config_error(format!(
                "num_heads ({}), key_dim ({}), value_dim ({value_dim}) and output_shape must be at least 1",
                c.num_heads, c.key_dim
            )));
        }
        if !(0.0..1.0).contains(&c.dropout) {
            return Err(meta.config_error(format!("dropout must be in [0, 1), got {}", c.dropout)));
        }
        let shapes = meta.input_shapes.clone();
        let sequences = shapes.iter().take_while(|s| s.len() != 1).count();
        let has_mask = shapes.len() == sequences + 1;
        if !(1..=3).contains(&sequences) || shapes.len() > sequences + 1 {
            return Err(meta.config_error(format!(
                "takes [query], [query, value] or [query, value, key] ([seq, features] each), optionally followed \
                 by a padding mask [seq_k]; got inputs of shapes {shapes:?}"
            )));
        }
        for s in &shapes[..sequences] {
            if s.len() != 2 || s[0] == 0 || s[1] == 0 {
                return Err(meta.shape_error(format!("sequences [seq ≥ 1, features ≥ 1], got inputs {shapes:?}")));
            }
        }
        let query = &shapes[0];
        let value = &shapes[sequences.min(2) - 1];
        let key = &shapes[sequences - 1];
        if key[0] != value[0] {
            return Err(meta.shape_error(format!("a key and value of one length, got key {key:?}, value {value:?}")));
        }
        if has_mask && shapes[sequences] != [key[0]] {
            return Err(meta.shape_error(format!("a padding mask [seq_k] = [{}], got inputs {shapes:?}", key[0])));
        }
        let out = c.output_shape.unwrap_or(query[1]);
        let h = c.num_heads;
        let kernels = [
            vec![query[1], h, c.key_dim],
            vec![key[1], h, c.key_dim],
            vec![value[1], h, value_dim],
            vec![h, value_dim, out],
        ];
        let biases = [vec![h, c.key_dim], vec![h, c.key_dim], vec![h, value_dim], vec![out]];
        // The projections as matrices [in, out], for the adapters.
        let matrices: Vec<(usize, usize)> = kernels
            .iter()
            .enumerate()
            .map(|(i, k)| if i == 3 { (k[0] * k[1], k[2]) } else { (k[0], k[1] * k[2]) })
            .collect();
        // With adapters the base weights are frozen: only A and B train (Hu et al. 2021).
        let base_trainable = c.lora.is_none();
        for (kernel, bias) in kernels.into_iter().zip(biases) {
            meta.params.push(ParamSpec {
                kind: ParamKind::Kernel,
                fans: Fans::of_shape(&kernel),
                shape: kernel,
                trainable: base_trainable,
                initializer: c.kernel_initializer,
            });
            if c.use_bias {
                meta.params.push(ParamSpec {
                    kind: ParamKind::Bias,
                    fans: Fans::of_shape(&bias),
                    shape: bias,
                    trainable: base_trainable,
                    initializer: c.bias_initializer,
                });
            }
        }
        if let Some(lora) = c.lora {
            if lora.rank == 0 {
                return Err(meta.config_error("lora.rank must be at least 1, got 0"));
            }
            if !(lora.alpha.is_finite() && lora.alpha > 0.0) {
                return Err(meta.config_error(format!("lora.alpha must be a positive number, got {}", lora.alpha)));
            }
            for (fan_in, fan_out) in matrices {
                meta.params.push(ParamSpec {
                    kind: ParamKind::LoraA,
                    shape: vec![fan_in, lora.rank],
                    trainable: true,
                    initializer: Initializer::RandomNormal { mean: 0.0, stddev: 1.0 / (fan_in as f64).sqrt() },
                    fans: Fans::dense(fan_in, lora.rank),
                });
                meta.params.push(ParamSpec {
                    kind: ParamKind::LoraB,
                    shape: vec![lora.rank, fan_out],
                    trainable: true,
                    initializer: Initializer::Zeros,
                    fans: Fans::dense(lora.rank, fan_out),
                });
            }
        }
        meta.output_shape = vec![query[0], out];
        Ok(MultiHeadAttention { meta, config, sequences, has_mask })
    }

    /// The settings.
    pub fn config(&self) -> &MultiHeadAttentionConfig {
        &self.config
    }

    /// `x: [batch, seq, features]` projected by `kernel: [features, heads, dim]` (and
    /// `bias: [heads, dim]`, and the adapter `(A, B)`, `[features, r]`, `[r,
    /// heads·dim]`) to `[batch·heads, seq, dim]`.
    fn project<T: Element>(
        &self,
        g: &mut Graph<T>,
        x: Var,
        kernel: Var,
        bias: Option<Var>,
        adapter: Option<(Var, Var)>,
    ) -> Result<Var> {
        let ks = g.try_value(kernel)?.shape().to_vec();
        let (heads, dim) = (ks[1], ks[2]);
        let k2 = g.try_reshape(kernel, &[ks[0], heads * dim])?;
        let b2 = bias.map(|b| g.try_reshape(b, &[heads * dim])).transpose()?;
        let y = g.try_linear(x, k2, b2)?;
        let y = self.adapt(g, x, y, adapter)?;
        Ok(g.try_split_heads(y, heads)?) // [batch·heads, seq, dim]
    }

    /// `y + (α/r)·(x·A)·B` with an adapter, `y` without (`x: [..., in]`, `y: [...,
    /// out]`, `A: [in, r]`, `B: [r, out]`).
    fn adapt<T: Element>(&self, g: &mut Graph<T>, x: Var, y: Var, adapter: Option<(Var, Var)>) -> Result<Var> {
        let (Some(lora), Some((a, b))) = (self.config.lora, adapter) else {
            return Ok(y);
        };
        let xa = g.try_linear(x, a, None)?;
        let xab = g.try_linear(xa, b, None)?;
        let update = g.try_mul_scalar(xab, T::of_f64(lora.scaling()))?;
        Ok(g.try_add(y, update)?)
    }

    /// The keep flags `[batch or 1, seq_q, seq_k]` from the causal setting and the
    /// padding mask (`None` when nothing is masked).
    fn mask<T: Element>(&self, g: &Graph<T>, mask: Option<Var>, sq: usize, sk: usize) -> Result<Option<Vec<bool>>> {
        let causal = self.config.use_causal_mask;
        let pad = match mask {
            None => None,
            Some(m) => {
                let mv = g.try_value(m)?;
                if mv.ndim() != 2 || mv.shape()[1] != sk {
                    return Err(LayerError::InvalidInput {
                        message: format!(
                            "{}: the padding mask must be [batch, {sk}], got {:?}",
                            self.meta.name.as_deref().unwrap_or("MultiHeadAttention"),
                            mv.shape()
                        ),
                    });
                }
                Some(mv.to_vec().into_iter().map(|v| v.as_f64() >= 0.5).collect::<Vec<bool>>())
            }
        };
        if !causal && pad.is_none() {
            return Ok(None);
        }
        let batches = pad.as_ref().map_or(1, |p| p.len() / sk.max(1));
        let mut keep = Vec::with_capacity(batches * sq * sk);
        for b in 0..batches {
            for i in 0..sq {
                for j in 0..sk {
                    let padded = pad.as_ref().is_some_and(|p| !p[b * sk + j]);
                    let future = causal && j > i;
                    keep.push(!(padded || future));
                }
            }
        }
        Ok(Some(keep))
    }
}

impl<T: Element> Layer<T> for MultiHeadAttention {
    layer_accessors!();

    fn param_name(&self, k: usize) -> String {
        let per = if self.config.use_bias { 2 } else { 1 };
        if k >= 4 * per {
            let j = k - 4 * per;
            let part = if j.is_multiple_of(2) { "lora_a" } else { "lora_b" };
            return format!("{}.{part}", MHA_NAMES[(j / 2).min(3)]);
        }
        let part = if k.is_multiple_of(per) { "kernel" } else { "bias" };
        format!("{}.{part}", MHA_NAMES[(k / per).min(3)])
    }

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        self.forward_inputs(g, &[x], params, ctx)
    }

    fn forward_inputs(
        &self,
        g: &mut Graph<T>,
        inputs: &[Var],
        params: &[Var],
        ctx: &mut ForwardCtx<'_, T>,
    ) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        if inputs.len() != self.sequences + usize::from(self.has_mask) {
            return Err(self.meta.config_error(format!(
                "was built for {} inputs, got {}",
                self.sequences + usize::from(self.has_mask),
                inputs.len()
            )));
        }
        let query = inputs[0];
        let value = inputs[self.sequences.min(2) - 1];
        let key = inputs[self.sequences - 1];
        let mask = self.has_mask.then(|| inputs[self.sequences]);
        let per = if self.config.use_bias { 2 } else { 1 };
        let weights = |k: usize| (params[k * per], (per == 2).then(|| params[k * per + 1]));
        let (wq, bq) = weights(0);
        let (wk, bk) = weights(1);
        let (wv, bv) = weights(2);
        let (wo, bo) = weights(3);
        let adapters: Vec<Option<(Var, Var)>> =
            (0..4).map(|k| self.config.lora.map(|_| (params[4 * per + 2 * k], params[4 * per + 2 * k + 1]))).collect();

        let batch = g.try_value(query)?.shape()[0];
        let heads = self.config.num_heads;
        let q = self.project(g, query, wq, bq, adapters[0])?;
        let k = self.project(g, key, wk, bk, adapters[1])?;
        let v = self.project(g, value, wv, bv, adapters[2])?;
        let (sq, sk) = (g.try_value(q)?.shape()[1], g.try_value(k)?.shape()[1]);
        let keep = self.mask(g, mask, sq, sk)?;
        if let Some(keep) = &keep {
            if keep.len() / (sq * sk).max(1) > 1 && keep.len() / (sq * sk) != batch {
                return Err(LayerError::InvalidInput {
                    message: format!("the padding mask has {} rows for a batch of {batch}", keep.len() / (sq * sk)),
                });
            }
        }
        let scores = g.try_matmul_t(q, k, false, true)?;
        let scale = 1.0 / (self.config.key_dim as f64).sqrt();
        let mut attention = g.try_masked_softmax(scores, scale, keep.as_deref())?;
        if ctx.mode == Mode::Train && self.config.dropout > 0.0 {
            let shape = g.try_value(attention)?.shape().to_vec();
            let drop = Tensor::<T>::random_bernoulli(&shape, 1.0 - self.config.dropout, ctx.rng)?;
            attention = g.try_dropout(attention, drop, self.config.dropout)?;
        }
        let o = g.try_matmul(attention, v)?; // [batch·heads, seq_q, value_dim]
        let dv = self.config.effective_value_dim();
        let o = g.try_merge_heads(o, heads)?; // [batch, seq_q, heads·value_dim]
        let ws = g.try_value(wo)?.shape().to_vec();
        let wo2 = g.try_reshape(wo, &[heads * dv, ws[2]])?;
        let y = g.try_linear(o, wo2, bo)?;
        self.adapt(g, o, y, adapters[3])
    }
}

fn zero() -> f64 {
    0.0
}

/// Settings of PaddingMask.
///
/// JSON: `{"type": "PaddingMask", "inputs": ["tokens"]}` (`mask_value` optional).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaddingMaskConfig {
    /// The token id that marks padding; default 0 (Keras's `mask_zero=True`).
    #[serde(default = "zero")]
    pub mask_value: f64,
    /// Whether the model appends a class token ([`ClassToken`](super::ClassToken))
    /// after the token ids: the mask then has one more position, kept (1), at the
    /// end. Default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub class_token: bool,
}

impl Default for PaddingMaskConfig {
    fn default() -> Self {
        PaddingMaskConfig { mask_value: 0.0, class_token: false }
    }
}

impl PaddingMaskConfig {
    /// The mask of a model with a [`ClassToken`](super::ClassToken) after its ids.
    pub fn with_class_token(mut self) -> Self {
        self.class_token = true;
        self
    }
}

/// The padding mask of a batch of token ids: 1 where the id differs from
/// `mask_value` (a real token), 0 where it equals it (padding) — what Keras's
/// `Embedding(mask_zero=True)` computes implicitly, as an explicit tensor for
/// [`MultiHeadAttention`] and GlobalAveragePooling1D (see the module docs).
///
/// No parameters and no gradient (the result is a constant of the graph).
///
/// # Shapes
/// `[batch, seq]` → `[batch, seq]`, or `[batch, seq + 1]` with `class_token` (the
/// last column all 1).
///
/// # Errors
/// When built: [`LayerError::BuildShape`] for a per-sample shape that is not
/// `[seq]`; [`LayerError::InvalidConfig`] for a non-finite `mask_value`.
#[derive(Debug, Clone, PartialEq)]
pub struct PaddingMask {
    meta: Meta,
    config: PaddingMaskConfig,
}

impl PaddingMask {
    pub(crate) fn new(mut meta: Meta, config: PaddingMaskConfig) -> Result<Self> {
        if !config.mask_value.is_finite() {
            return Err(meta.config_error(format!("mask_value must be finite, got {}", config.mask_value)));
        }
        let &[seq] = meta.input_shape.as_slice() else {
            return Err(meta.shape_error("token ids [seq]"));
        };
        meta.output_shape = vec![seq + usize::from(config.class_token)];
        Ok(PaddingMask { meta, config })
    }
}

impl<T: Element> Layer<T> for PaddingMask {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let pad = T::of_f64(self.config.mask_value);
        let mask = g.try_value(x)?.map(|v| if v == pad { T::zero() } else { T::one() });
        if !self.config.class_token {
            return Ok(g.constant(mask));
        }
        let &[batch, seq] = mask.shape() else {
            return Err(LayerError::InvalidInput {
                message: format!("PaddingMask takes token ids [batch, seq], got {:?}", mask.shape()),
            });
        };
        let ids = mask.into_vec();
        let mut out = Vec::with_capacity(batch * (seq + 1));
        for n in 0..batch {
            out.extend_from_slice(&ids[n * seq..(n + 1) * seq]);
            out.push(T::one());
        }
        Ok(g.constant(Tensor::from_vec(&[batch, seq + 1], out)))
    }
}
