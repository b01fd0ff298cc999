//! Transformer presets as version-2 graphs: one pre-LayerNorm block
//! ([`ModelSpec::transformer_block`]), a decoder-only language model
//! ([`ModelSpec::gpt`]) and a sequence classifier
//! ([`ModelSpec::transformer_classifier`], pooling by mean or by a class token,
//! [`SequencePooling`]).

use crate::activation::Activation;
use crate::error::{LayerError, Result};
use crate::spec::{
    ClassTokenConfig, DenseConfig, EmbeddingConfig, LayerNormConfig, LayerSpec, MultiHeadAttentionConfig,
    PaddingMaskConfig, PositionEmbeddingConfig,
};

use super::spec::{InputSpec, ModelSpec, NodeSpec};

/// LayerNormalization's epsilon in the presets: 1e-5, GPT-2's (and PyTorch's) value.
pub const TRANSFORMER_LN_EPSILON: f64 = 1e-5;

/// Settings of one Transformer block ([`ModelSpec::transformer_block`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformerBlockConfig {
    /// Width of the residual stream (the features of the block's input and output).
    pub d_model: usize,
    /// Attention heads; must divide `d_model` (each head has `d_model / num_heads`
    /// features).
    pub num_heads: usize,
    /// Dropout rate on the attention weights and on both branches' outputs (before
    /// each residual sum); 0 adds no Dropout layers.
    pub dropout: f64,
    /// Whether attention is causal (a decoder).
    pub causal: bool,
}

/// How [`ModelSpec::transformer_classifier_with`] reduces the sequence to one
/// vector for its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SequencePooling {
    /// The mean over the real (unpadded) positions: GlobalAveragePooling1D with the
    /// padding mask.
    #[default]
    Mean,
    /// A learned class token appended after the text ([`ClassToken`]); the head reads
    /// its final state ([`ClassTokenPooling`]). It takes one of the `context`
    /// positions, so the texts get `context − 1` tokens.
    ///
    /// [`ClassToken`]: crate::layers::ClassToken
    /// [`ClassTokenPooling`]: crate::layers::ClassTokenPooling
    ClassToken,
}

/// Checks the sizes shared by the presets.
fn check_sizes(preset: &str, sizes: &[(&str, usize)], d_model: usize, num_heads: usize, dropout: f64) -> Result<()> {
    if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
        return Err(LayerError::Spec { message: format!("the {preset} preset needs {name} ≥ 1") });
    }
    if num_heads == 0 || !d_model.is_multiple_of(num_heads) {
        return Err(LayerError::Spec {
            message: format!("the {preset} preset needs num_heads ≥ 1 dividing d_model ({d_model}), got {num_heads}"),
        });
    }
    if !(0.0..1.0).contains(&dropout) {
        return Err(LayerError::Spec {
            message: format!("the {preset} preset needs dropout in [0, 1), got {dropout}"),
        });
    }
    Ok(())
}

fn layer_norm() -> LayerSpec {
    LayerSpec::LayerNormalization(LayerNormConfig::default().with_epsilon(TRANSFORMER_LN_EPSILON))
}

impl ModelSpec {
    /// The layers of one pre-LayerNorm Transformer block (the GPT-2 arrangement,
    /// Radford et al., "Language Models are Unsupervised Multitask Learners", 2019,
    /// §2.3; attention of Vaswani et al. 2017), reading layer or input `input`
    /// (`[batch, seq, d_model]`), named `{prefix}_…`:
    ///
    /// `h = x + Dropout(MHA(LN(x)))`, `y = h + Dropout(Dense(d_model)(Dense(4·d_model,
    /// gelu)(LN(h))))`
    ///
    /// with LayerNormalization (ε = 1e-5), MultiHeadAttention of `num_heads` heads of
    /// `d_model / num_heads` features (dropout on its weights, causal when asked,
    /// `mask` — a `[batch, seq]` padding mask layer or input — as its last input), the
    /// exact GELU. Returns the layers and the name of the last one (`{prefix}_out`).
    ///
    /// Parameters: `12·d² + 13·d` for `d = d_model` (attention `4d² + 4d`, the MLP
    /// `8d² + 5d`, two LayerNormalizations `4d`).
    ///
    /// # Errors
    /// [`LayerError::Spec`] for `d_model` 0, `num_heads` 0 or not dividing `d_model`,
    /// or a dropout rate outside `[0, 1)`.
    pub fn transformer_block(
        prefix: &str,
        input: &str,
        mask: Option<&str>,
        config: &TransformerBlockConfig,
    ) -> Result<(Vec<NodeSpec>, String)> {
        let TransformerBlockConfig { d_model, num_heads, dropout, causal } = *config;
        check_sizes("transformer block", &[("d_model", d_model)], d_model, num_heads, dropout)?;
        let name = |s: &str| format!("{prefix}_{s}");
        let mha = MultiHeadAttentionConfig::new(num_heads, d_model / num_heads)
            .with_dropout(dropout)
            .with_causal_mask(causal);
        let mut attention_inputs = vec![name("ln1")];
        attention_inputs.extend(mask.map(str::to_string));
        let mut layers = vec![
            NodeSpec::named(name("ln1"), layer_norm()).with_inputs([input]),
            NodeSpec::named(name("attention"), LayerSpec::MultiHeadAttention(mha)).with_inputs(attention_inputs),
        ];
        let mut branch = name("attention");
        if dropout > 0.0 {
            layers.push(NodeSpec::named(name("attention_dropout"), LayerSpec::dropout(dropout)));
            branch = name("attention_dropout");
        }
        layers.push(NodeSpec::named(name("residual1"), LayerSpec::Add).with_inputs([input.to_string(), branch]));
        layers.push(NodeSpec::named(name("ln2"), layer_norm()));
        layers.push(NodeSpec::named(
            name("mlp_up"),
            LayerSpec::Dense(DenseConfig::new(4 * d_model).with_activation(Activation::Gelu)),
        ));
        layers.push(NodeSpec::named(name("mlp_down"), LayerSpec::dense(d_model, Activation::Linear)));
        let mut branch = name("mlp_down");
        if dropout > 0.0 {
            layers.push(NodeSpec::named(name("mlp_dropout"), LayerSpec::dropout(dropout)));
            branch = name("mlp_dropout");
        }
        layers.push(NodeSpec::named(name("out"), LayerSpec::Add).with_inputs([name("residual1"), branch]));
        Ok((layers, name("out")))
    }

    /// The token and position embeddings shared by the presets: `tokens` →
    /// Embedding(`vocab_size`, `d_model`) [→ ClassToken] → PositionEmbedding(`context`)
    /// [→ Dropout].
    fn embeddings(
        vocab_size: usize,
        context: usize,
        d_model: usize,
        dropout: f64,
        class_token: bool,
    ) -> (Vec<NodeSpec>, String) {
        let mut layers =
            vec![NodeSpec::named("token_embedding", LayerSpec::Embedding(EmbeddingConfig::new(vocab_size, d_model)))
                .with_inputs(["tokens"])];
        if class_token {
            layers.push(NodeSpec::named("class_token", LayerSpec::ClassToken(ClassTokenConfig::default())));
        }
        layers.push(NodeSpec::named(
            "position_embedding",
            LayerSpec::PositionEmbedding(PositionEmbeddingConfig::new(context)),
        ));
        let mut last = "position_embedding".to_string();
        if dropout > 0.0 {
            layers.push(NodeSpec::named("embedding_dropout", LayerSpec::dropout(dropout)));
            last = "embedding_dropout".into();
        }
        (layers, last)
    }

    /// A decoder-only (GPT-style) language model over token ids (Radford et al.
    /// 2019): input `tokens: [context]` (whole numbers in `[0, vocab_size)`) →
    /// Embedding + learned PositionEmbedding [→ Dropout] → `num_layers` causal
    /// pre-LayerNorm blocks ([`ModelSpec::transformer_block`], named `block{i}_…`) →
    /// LayerNormalization → Dense(`vocab_size`) logits `[batch, context, vocab_size]`
    /// (no softmax: train with sparse categorical cross-entropy `from_logits`, targets
    /// `[batch, context]`, the next token at each position).
    ///
    /// Parameters (`V` vocabulary, `T` context, `d` width, `L` layers):
    /// `V·d + T·d + L·(12d² + 13d) + 2d + d·V + V`.
    ///
    /// # Errors
    /// [`LayerError::Spec`] for a size of 0, `num_heads` not dividing `d_model`, or a
    /// dropout rate outside `[0, 1)`.
    pub fn gpt(
        vocab_size: usize,
        context: usize,
        d_model: usize,
        num_heads: usize,
        num_layers: usize,
        dropout: f64,
    ) -> Result<ModelSpec> {
        let sizes = [("vocab_size", vocab_size), ("context", context), ("d_model", d_model)];
        check_sizes("gpt", &sizes, d_model, num_heads, dropout)?;
        let (mut layers, mut last) = ModelSpec::embeddings(vocab_size, context, d_model, dropout, false);
        let block = TransformerBlockConfig { d_model, num_heads, dropout, causal: true };
        for i in 0..num_layers {
            let (nodes, out) = ModelSpec::transformer_block(&format!("block{i}"), &last, None, &block)?;
            layers.extend(nodes);
            last = out;
        }
        layers.push(NodeSpec::named("final_norm", layer_norm()).with_inputs([last]));
        layers.push(NodeSpec::named("logits", LayerSpec::dense(vocab_size, Activation::Linear)));
        let inputs = vec![InputSpec { name: "tokens".into(), shape: vec![context] }];
        Ok(ModelSpec::graph(inputs, layers, Vec::new()))
    }

    /// A Transformer encoder classifier over token ids padded with 0: input
    /// `tokens: [context]` → PaddingMask (id 0 is padding) → Embedding + learned
    /// PositionEmbedding [→ Dropout] → `num_layers` pre-LayerNorm blocks whose
    /// attention ignores padded keys → LayerNormalization → GlobalAveragePooling1D
    /// over the real tokens → Dense(`num_classes`, softmax).
    ///
    /// Parameters: `V·d + T·d + L·(12d² + 13d) + 2d + d·C + C` (`C` classes).
    ///
    /// # Errors
    /// As [`ModelSpec::gpt`], and `num_classes` 0.
    #[allow(clippy::too_many_arguments)]
    pub fn transformer_classifier(
        vocab_size: usize,
        context: usize,
        d_model: usize,
        num_heads: usize,
        num_layers: usize,
        num_classes: usize,
        dropout: f64,
    ) -> Result<ModelSpec> {
        ModelSpec::transformer_classifier_with(
            vocab_size,
            context,
            d_model,
            num_heads,
            num_layers,
            num_classes,
            dropout,
            SequencePooling::Mean,
        )
    }

    /// [`ModelSpec::transformer_classifier`] with a choice of `pooling`.
    ///
    /// With [`SequencePooling::ClassToken`] the input is `tokens: [context − 1]`: the
    /// PaddingMask gets a kept position at the end, Embedding → ClassToken (the
    /// learned token appended) → PositionEmbedding(`context`) → the blocks →
    /// LayerNormalization → ClassTokenPooling (the token's state) → Dense(softmax).
    /// The position table keeps `context` rows, so a GPT pretrained with the same
    /// `context` lends it whole. Parameters: `d` more than with the mean.
    ///
    /// # Errors
    /// As [`ModelSpec::transformer_classifier`]; [`LayerError::Spec`] for a class
    /// token with `context` below 2.
    #[allow(clippy::too_many_arguments)]
    pub fn transformer_classifier_with(
        vocab_size: usize,
        context: usize,
        d_model: usize,
        num_heads: usize,
        num_layers: usize,
        num_classes: usize,
        dropout: f64,
        pooling: SequencePooling,
    ) -> Result<ModelSpec> {
        let sizes =
            [("vocab_size", vocab_size), ("context", context), ("d_model", d_model), ("num_classes", num_classes)];
        check_sizes("transformer classifier", &sizes, d_model, num_heads, dropout)?;
        let class_token = pooling == SequencePooling::ClassToken;
        if class_token && context < 2 {
            return Err(LayerError::Spec {
                message: format!(
                    "a class token takes one of the context positions: the transformer classifier needs context ≥ \
                     2, got {context}"
                ),
            });
        }
        let mask = PaddingMaskConfig { class_token, ..PaddingMaskConfig::default() };
        let mut layers = vec![NodeSpec::named("padding_mask", LayerSpec::PaddingMask(mask)).with_inputs(["tokens"])];
        let (embed, mut last) = ModelSpec::embeddings(vocab_size, context, d_model, dropout, class_token);
        layers.extend(embed);
        let block = TransformerBlockConfig { d_model, num_heads, dropout, causal: false };
        for i in 0..num_layers {
            let (nodes, out) = ModelSpec::transformer_block(&format!("block{i}"), &last, Some("padding_mask"), &block)?;
            layers.extend(nodes);
            last = out;
        }
        layers.push(NodeSpec::named("final_norm", layer_norm()).with_inputs([last]));
        layers.push(match pooling {
            SequencePooling::Mean => {
                NodeSpec::named("pool", LayerSpec::GlobalAveragePooling1D).with_inputs(["final_norm", "padding_mask"])
            }
            SequencePooling::ClassToken => NodeSpec::named("pool", LayerSpec::ClassTokenPooling),
        });
        layers.push(NodeSpec::named("head", LayerSpec::dense(num_classes, Activation::Softmax)));
        let tokens = context - usize::from(class_token);
        let inputs = vec![InputSpec { name: "tokens".into(), shape: vec![tokens] }];
        Ok(ModelSpec::graph(inputs, layers, Vec::new()))
    }
}
