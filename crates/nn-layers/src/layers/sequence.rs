//! Layers over sequences `[batch, seq, features]`: the position encodings of
//! Transformers (PositionEmbedding, learned; SinePositionEncoding, fixed) and the
//! two ways a classifier reduces a sequence to one vector: GlobalAveragePooling1D
//! (the mean, with an optional padding mask) or a learned class token (ClassToken
//! appends it, ClassTokenPooling reads it back after the Transformer blocks).

use nn_autograd::{Graph, Var};
use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Serialize};

use super::{layer_accessors, Meta};
use crate::error::{LayerError, Result};
use crate::init::{Fans, Initializer};
use crate::module::{check_param_count, ForwardCtx, Layer, ParamKind, ParamSpec};

/// Settings of PositionEmbedding (KerasNLP's `keras_nlp.layers.PositionEmbedding`
/// names: `sequence_length`, `initializer`).
///
/// JSON: `{"type": "PositionEmbedding", "sequence_length": 128}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionEmbeddingConfig {
    /// The longest sequence the table covers, at least 1.
    pub sequence_length: usize,
    /// Default `glorot_uniform` (KerasNLP's default).
    #[serde(default)]
    pub initializer: Initializer,
}

impl PositionEmbeddingConfig {
    /// A table for sequences of up to `sequence_length` positions.
    pub fn new(sequence_length: usize) -> Self {
        PositionEmbeddingConfig { sequence_length, initializer: Initializer::GlorotUniform }
    }
}

/// A learned position embedding added to its input: `y[n, t, :] = x[n, t, :] +
/// embeddings[t, :]` (the learned positions of GPT-2, Radford et al., "Language
/// Models are Unsupervised Multitask Learners", 2019). Sequences shorter than
/// `sequence_length` use the table's first rows.
///
/// Unlike KerasNLP's layer of the same name, which returns the table broadcast to the
/// input's shape (for the caller to add), this one returns the sum, so a model needs
/// no Add layer after it.
///
/// # Shapes
/// - input `[batch, seq, features]`, `seq ≤ sequence_length`
/// - `embeddings: [sequence_length, features]`
/// - output: the input's shape
///
/// # Errors
/// When built: [`LayerError::InvalidConfig`] for `sequence_length` 0;
/// [`LayerError::BuildShape`] for an input that is not `[seq ≥ 1, features ≥ 1]` or
/// longer than `sequence_length`.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionEmbedding {
    meta: Meta,
    config: PositionEmbeddingConfig,
}

/// The per-sample `[seq, features]` of a sequence layer, or a shape error.
fn seq_features(meta: &Meta) -> Result<(usize, usize)> {
    match meta.input_shape.as_slice() {
        &[s, f] if s > 0 && f > 0 => Ok((s, f)),
        _ => Err(meta.shape_error("[seq ≥ 1, features ≥ 1]")),
    }
}

impl PositionEmbedding {
    pub(crate) fn new(mut meta: Meta, config: PositionEmbeddingConfig) -> Result<Self> {
        if config.sequence_length == 0 {
            return Err(meta.config_error("sequence_length must be at least 1"));
        }
        let (seq, features) = seq_features(&meta)?;
        if seq > config.sequence_length {
            return Err(meta.shape_error(format!("[seq ≤ sequence_length = {}, features]", config.sequence_length)));
        }
        let shape = vec![config.sequence_length, features];
        meta.params.push(ParamSpec {
            kind: ParamKind::Embeddings,
            fans: Fans::of_shape(&shape),
            shape,
            trainable: true,
            initializer: config.initializer,
        });
        Ok(PositionEmbedding { meta, config })
    }

    /// The settings.
    pub fn config(&self) -> &PositionEmbeddingConfig {
        &self.config
    }
}

impl<T: Element> Layer<T> for PositionEmbedding {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let xs = g.try_value(x)?.shape().to_vec();
        if xs.len() != 3 || xs[1] > self.config.sequence_length {
            return Err(LayerError::InvalidInput {
                message: format!(
                    "PositionEmbedding takes [batch, seq ≤ {}, features], got {xs:?}",
                    self.config.sequence_length
                ),
            });
        }
        let table = if xs[1] == self.config.sequence_length { params[0] } else { g.try_slice(params[0], 0, 0, xs[1])? };
        Ok(g.try_add(x, table)?)
    }
}

fn max_wavelength() -> f64 {
    10_000.0
}

/// Settings of SinePositionEncoding (KerasNLP's name and default `max_wavelength`).
///
/// JSON: `{"type": "SinePositionEncoding"}` (`max_wavelength` optional).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinePositionEncodingConfig {
    /// The longest wavelength, `10000` by default (Vaswani et al. 2017); finite and
    /// greater than 1.
    #[serde(default = "max_wavelength")]
    pub max_wavelength: f64,
}

impl Default for SinePositionEncodingConfig {
    fn default() -> Self {
        SinePositionEncodingConfig { max_wavelength: max_wavelength() }
    }
}

/// The fixed sinusoidal position encoding of Vaswani et al., "Attention Is All You
/// Need", 2017, §3.5, added to its input:
///
/// `PE[t, 2i] = sin(t / W^{2i/d})`, `PE[t, 2i + 1] = cos(t / W^{2i/d})`,
/// `y = x + PE[:seq]`
///
/// for position `t`, feature pair `i`, `d` features and `W = max_wavelength`
/// (computed in `f64`, rounded to the element type). No parameters. KerasNLP's layer
/// of the same name returns `PE` alone; this one adds it (as [`PositionEmbedding`]).
///
/// # Shapes
/// `[batch, seq, features]` → the same shape.
///
/// # Errors
/// When built: [`LayerError::BuildShape`] for an input that is not
/// `[seq ≥ 1, features ≥ 1]`; [`LayerError::InvalidConfig`] for a `max_wavelength`
/// that is not finite and greater than 1.
#[derive(Debug, Clone, PartialEq)]
pub struct SinePositionEncoding {
    meta: Meta,
    config: SinePositionEncodingConfig,
}

impl SinePositionEncoding {
    pub(crate) fn new(meta: Meta, config: SinePositionEncodingConfig) -> Result<Self> {
        if !(config.max_wavelength.is_finite() && config.max_wavelength > 1.0) {
            return Err(meta.config_error(format!(
                "max_wavelength must be finite and greater than 1, got {}",
                config.max_wavelength
            )));
        }
        seq_features(&meta)?;
        Ok(SinePositionEncoding { meta, config })
    }

    /// The encoding `PE: [seq, features]` (see the type's docs).
    pub fn encoding<T: Element>(&self, seq: usize, features: usize) -> Tensor<T> {
        sine_position_encoding(seq, features, self.config.max_wavelength)
    }
}

/// `PE: [seq, features]` of [`SinePositionEncoding`] with wavelength base `max_wavelength`.
pub fn sine_position_encoding<T: Element>(seq: usize, features: usize, max_wavelength: f64) -> Tensor<T> {
    let mut values = Vec::with_capacity(seq * features);
    for t in 0..seq {
        for i in 0..features {
            let exponent = (2 * (i / 2)) as f64 / features as f64;
            let angle = t as f64 / max_wavelength.powf(exponent);
            values.push(T::of_f64(if i % 2 == 0 { angle.sin() } else { angle.cos() }));
        }
    }
    Tensor::from_vec(&[seq, features], values)
}

impl<T: Element> Layer<T> for SinePositionEncoding {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let xs = g.try_value(x)?.shape().to_vec();
        if xs.len() != 3 {
            return Err(LayerError::InvalidInput {
                message: format!("SinePositionEncoding takes [batch, seq, features], got {xs:?}"),
            });
        }
        let pe = g.constant(self.encoding::<T>(xs[1], xs[2]));
        Ok(g.try_add(x, pe)?)
    }
}

/// The mean over the sequence axis (Keras's `GlobalAveragePooling1D`, whose mask
/// support this follows): `y[n, :] = Σ_t w_nt x[n, t, :]` with `w_nt = 1/seq`, or,
/// with a mask input, `w_nt = m_nt / Σ_t m_nt` over the kept positions (`m` 1 where
/// the mask is ≥ 0.5, else 0); a sample with every position masked gives zeros.
///
/// No parameters. (The other way to pool is a class token: [`ClassToken`] and
/// [`ClassTokenPooling`].)
///
/// # Inputs
/// `[x]` or `[x, mask]`, the mask `[batch, seq]` of 1 (keep) / 0 (e.g. from
/// [`PaddingMask`](super::PaddingMask)); it carries no gradient.
///
/// # Shapes
/// `[batch, seq, features]` (and `[batch, seq]`) → `[batch, features]`.
///
/// # Errors
/// When built: [`LayerError::BuildShape`] for an input that is not
/// `[seq ≥ 1, features ≥ 1]` or a mask that is not `[seq]`;
/// [`LayerError::InvalidConfig`] for more than 2 inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalAveragePooling1D {
    meta: Meta,
}

impl GlobalAveragePooling1D {
    pub(crate) fn new(mut meta: Meta) -> Result<Self> {
        let (seq, features) = seq_features(&meta)?;
        match meta.input_shapes.len() {
            1 => {}
            2 if meta.input_shapes[1] == [seq] => {}
            2 => return Err(meta.shape_error(format!("a mask [seq] = [{seq}], got {:?}", meta.input_shapes[1]))),
            n => return Err(meta.config_error(format!("takes [x] or [x, mask], got {n} inputs"))),
        }
        meta.output_shape = vec![features];
        Ok(GlobalAveragePooling1D { meta })
    }
}

impl<T: Element> Layer<T> for GlobalAveragePooling1D {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        self.forward_inputs(g, &[x], params, ctx)
    }

    fn forward_inputs(
        &self,
        g: &mut Graph<T>,
        inputs: &[Var],
        params: &[Var],
        _ctx: &mut ForwardCtx<'_, T>,
    ) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        match *inputs {
            [x] => Ok(g.try_mean_axes(x, &[1], false)?),
            [x, mask] => {
                let xs = g.try_value(x)?.shape().to_vec();
                let m = g.try_value(mask)?;
                if xs.len() != 3 || m.shape() != [xs[0], xs[1]] {
                    return Err(LayerError::InvalidInput {
                        message: format!(
                            "GlobalAveragePooling1D takes x [batch, seq, features] and a mask [batch, seq], got {xs:?} \
                             and {:?}",
                            m.shape()
                        ),
                    });
                }
                let seq = xs[1];
                let keep: Vec<f64> = m.to_vec().iter().map(|v| if v.as_f64() >= 0.5 { 1.0 } else { 0.0 }).collect();
                let mut w = Vec::with_capacity(keep.len());
                for row in keep.chunks(seq) {
                    let count: f64 = row.iter().sum();
                    w.extend(row.iter().map(|&k| T::of_f64(if count > 0.0 { k / count } else { 0.0 })));
                }
                let w = g.constant(Tensor::from_vec(&[xs[0], 1, seq], w));
                let y = g.try_matmul(w, x)?; // [batch, 1, features]
                Ok(g.try_reshape(y, &[xs[0], xs[2]])?)
            }
            _ => Err(self.meta.config_error(format!("takes [x] or [x, mask], got {} inputs", inputs.len()))),
        }
    }
}

fn class_token_initializer() -> Initializer {
    Initializer::RandomNormal { mean: 0.0, stddev: 0.02 }
}

/// Settings of ClassToken.
///
/// JSON: `{"type": "ClassToken"}` (`initializer` optional).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassTokenConfig {
    /// How the token starts; default `N(0, 0.02²)`, the initialisation of BERT's and
    /// GPT-2's embeddings.
    #[serde(default = "class_token_initializer")]
    pub initializer: Initializer,
}

impl Default for ClassTokenConfig {
    fn default() -> Self {
        ClassTokenConfig { initializer: class_token_initializer() }
    }
}

/// Appends a learned class token to every sequence: `y[n, t, :] = x[n, t, :]` for
/// `t < seq` and `y[n, seq, :] = token` — the extra position whose state, after the
/// Transformer blocks, [`ClassTokenPooling`] takes as the sequence's summary (the
/// `[CLS]` token of BERT, Devlin et al. 2019, §3, and of ViT, Dosovitskiy et al.
/// 2021, eq. 1, learned here as a vector rather than a vocabulary entry).
///
/// It goes **last**, not first as in BERT: with causal attention (the body of a
/// GPT, fine-tuned) only the last position sees the whole text, which is why GPT's
/// fine-tuning reads the state of an end token (Radford et al., "Improving Language
/// Understanding by Generative Pre-Training", 2018, §3.3). Padding sits between the
/// text and the token; a [`PaddingMask`](super::PaddingMask) with `class_token:
/// true` marks the token's position as kept and the padding as masked. Put a
/// position embedding after this layer so the token has a position of its own.
///
/// # Shapes
/// - input `[batch, seq, features]`
/// - `embeddings: [1, features]` (the token)
/// - output `[batch, seq + 1, features]`
///
/// # Errors
/// When built: [`LayerError::BuildShape`] for an input that is not
/// `[seq ≥ 1, features ≥ 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassToken {
    meta: Meta,
    config: ClassTokenConfig,
}

impl ClassToken {
    pub(crate) fn new(mut meta: Meta, config: ClassTokenConfig) -> Result<Self> {
        let (seq, features) = seq_features(&meta)?;
        let shape = vec![1, features];
        meta.params.push(ParamSpec {
            kind: ParamKind::Embeddings,
            fans: Fans::of_shape(&shape),
            shape,
            trainable: true,
            initializer: config.initializer,
        });
        meta.output_shape = vec![seq + 1, features];
        Ok(ClassToken { meta, config })
    }

    /// The settings.
    pub fn config(&self) -> &ClassTokenConfig {
        &self.config
    }
}

impl<T: Element> Layer<T> for ClassToken {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let xs = g.try_value(x)?.shape().to_vec();
        let features = self.meta.input_shape[1];
        if xs.len() != 3 || xs[2] != features {
            return Err(LayerError::InvalidInput {
                message: format!("ClassToken takes [batch, seq, {features}], got {xs:?}"),
            });
        }
        // [batch, 1, features] zeros + the [1, features] token (broadcast; its
        // gradient is the sum over the batch).
        let zeros = g.constant(Tensor::zeros(&[xs[0], 1, features]));
        let token = g.try_add(zeros, params[0])?;
        Ok(g.try_concat(&[x, token], 1)?)
    }
}

/// The state of the class token appended by [`ClassToken`]: the last position,
/// `y[n, :] = x[n, seq − 1, :]`. No parameters.
///
/// # Shapes
/// `[batch, seq, features]` → `[batch, features]`.
///
/// # Errors
/// When built: [`LayerError::BuildShape`] for an input that is not
/// `[seq ≥ 1, features ≥ 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassTokenPooling {
    meta: Meta,
}

impl ClassTokenPooling {
    pub(crate) fn new(mut meta: Meta) -> Result<Self> {
        let (_, features) = seq_features(&meta)?;
        meta.output_shape = vec![features];
        Ok(ClassTokenPooling { meta })
    }
}

impl<T: Element> Layer<T> for ClassTokenPooling {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let xs = g.try_value(x)?.shape().to_vec();
        if xs.len() != 3 || xs[1] == 0 {
            return Err(LayerError::InvalidInput {
                message: format!("ClassTokenPooling takes [batch, seq ≥ 1, features], got {xs:?}"),
            });
        }
        let last = g.try_slice(x, 1, xs[1] - 1, xs[1])?;
        Ok(g.try_reshape(last, &[xs[0], xs[2]])?)
    }
}
