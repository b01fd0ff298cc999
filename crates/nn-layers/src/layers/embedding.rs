//! Embedding (a lookup table of vectors).
//!
//! The serde settings ([`EmbeddingConfig`]) live here too; `crate::spec` re-exports it.

use nn_autograd::{Graph, Var};
use nn_tensor::Element;
use serde::{Deserialize, Serialize};

use super::{layer_accessors, Meta};
use crate::error::{LayerError, Result};
use crate::init::{Fans, Initializer};
use crate::module::{check_param_count, ForwardCtx, Layer, ParamKind, ParamSpec};

fn embedding_init() -> Initializer {
    Initializer::RandomUniform { minval: -0.05, maxval: 0.05 }
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

/// Maps integer indices to rows of a learned table (Keras's `Embedding`):
/// `y[n, ..., :] = embeddings[x[n, ...], :]`.
///
/// Indices arrive as floats (the model's element type) and must be whole numbers in
/// `[0, input_dim)`; anything else is an error naming the value and its position.
/// The gradient reaches the table only (rows looked up several times get the sum);
/// indices get none.
///
/// # Shapes
/// - input: `[batch, ...]` (e.g. `[batch, sequence]`)
/// - `embeddings: [input_dim, output_dim]`
/// - output: `[batch, ..., output_dim]`
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    meta: Meta,
    config: EmbeddingConfig,
}

impl Embedding {
    pub(crate) fn new(mut meta: Meta, config: EmbeddingConfig) -> Result<Self> {
        if config.input_dim == 0 || config.output_dim == 0 {
            return Err(meta.config_error(format!(
                "input_dim ({}) and output_dim ({}) must be at least 1",
                config.input_dim, config.output_dim
            )));
        }
        let shape = vec![config.input_dim, config.output_dim];
        meta.params.push(ParamSpec {
            kind: ParamKind::Embeddings,
            fans: Fans::of_shape(&shape),
            shape,
            trainable: true,
            initializer: config.embeddings_initializer,
        });
        meta.output_shape.push(config.output_dim);
        Ok(Embedding { meta, config })
    }

    /// The settings.
    pub fn config(&self) -> &EmbeddingConfig {
        &self.config
    }
}

impl<T: Element> Layer<T> for Embedding {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let xv = g.try_value(x)?;
        let dim = self.config.input_dim;
        let mut indices = Vec::with_capacity(xv.len());
        for (at, &v) in xv.array().indexed_iter() {
            let f = v.as_f64();
            if !(f >= 0.0 && f < dim as f64 && f.fract() == 0.0) {
                return Err(LayerError::InvalidInput {
                    message: format!(
                        "index {v} at {:?} is not a whole number in [0, {dim}) (input_dim {dim})",
                        ndarray::Dimension::slice(&at)
                    ),
                });
            }
            indices.push(f as usize);
        }
        let mut out_shape = xv.shape().to_vec();
        out_shape.push(self.config.output_dim);
        let rows = g.try_gather_rows(params[0], &indices)?;
        Ok(g.try_reshape(rows, &out_shape)?)
    }
}
