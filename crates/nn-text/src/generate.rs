//! Text generation from a decoder-only (GPT-style) model with a key/value cache.
//!
//! [`Generator::new`] reads a [`Model`] built like [`ModelSpec::gpt`](nn_layers::ModelSpec::gpt)
//! (token Embedding → learned PositionEmbedding or SinePositionEncoding →
//! pre-LayerNorm causal blocks → LayerNormalization → Dense logits; Dropout and
//! Identity layers anywhere on the way are skipped, as in evaluation) and holds its
//! weights by reference (the model's `Arc`s: nothing is copied per step, and only a
//! non-contiguous parameter would be copied once).
//!
//! It then decodes one token at a time (Radford et al. 2019; the cache is the usual
//! incremental decoding of Vaswani et al. 2017's decoder): for a new token at
//! position `t`, each block computes the query, key and value of that position only,
//! appends the key and value to its cache (`[t + 1, heads, head_dim]`), attends over
//! the cache, and runs its MLP on that one position. A token costs
//! `O(L·(d² + t·d) + d·V)` multiply-adds (`L` blocks, width `d`, vocabulary `V`)
//! instead of a pass over the whole context. The logits equal the model's own
//! forward pass ([`Model::infer`]) on the prefix up to f32 rounding
//! (`crates/nn-text/tests/generate.rs`).
//!
//! [`Sampler`] turns logits into tokens: greedy (temperature 0), or
//! `softmax(logits / T)` restricted to the `top_k` largest, drawn from a ChaCha8
//! generator seeded by [`Sampling::seed`] (the same seed gives the same tokens).
//!
//! ```
//! use nn_layers::{Model, ModelSpec};
//! use nn_text::generate::{Generator, Sampling};
//!
//! let model = Model::<f32>::new(ModelSpec::gpt(20, 8, 16, 2, 1, 0.0)?, 7)?;
//! let mut generator = Generator::new(&model)?;
//! let tokens = generator.generate(&[3, 4], 5, &Sampling::greedy(), None)?;
//! assert_eq!(tokens.len(), 5);
//! assert!(tokens.iter().all(|&t| t < 20));
//! // The context (8 tokens) cannot hold 2 + 7.
//! assert!(generator.generate(&[3, 4], 7, &Sampling::greedy(), None).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use nn_layers::{Activation, LayerSpec, Model, Source, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

/// What can go wrong while building a [`Generator`], feeding it or sampling.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GenerateError {
    /// The model is not a decoder-only causal transformer of the gpt preset's
    /// arrangement; `at` names the first layer (or part of the model) that does not
    /// fit, e.g. `layer "block0_attention" (MultiHeadAttention)`.
    #[error("not a decoder-only causal transformer (the gpt preset's arrangement): {at}: {message}")]
    NotAGpt {
        /// The layer (`layer "name" (Kind)`) or part of the model (`the model's inputs`).
        at: String,
        /// What is expected there and what was found.
        message: String,
    },
    /// [`Generator::feed`] was called with every position of the context used.
    #[error("the model's context of {context} tokens is full (call reset to start again)")]
    ContextFull {
        /// The model's context length.
        context: usize,
    },
    /// A prompt plus the tokens to generate do not fit the model's context.
    #[error(
        "the prompt ({prompt} tokens) plus max tokens ({max_tokens}) is {total} tokens, longer than the model's context of {context} tokens"
    )]
    TooLong {
        /// Tokens in the prompt.
        prompt: usize,
        /// Tokens asked for.
        max_tokens: usize,
        /// `prompt + max_tokens`.
        total: usize,
        /// The model's context length.
        context: usize,
    },
    /// [`Generator::generate`] got a prompt of no token.
    #[error("the prompt is empty: give at least one token")]
    EmptyPrompt,
    /// A token id is not below the model's vocabulary size.
    #[error("token id {id} at position {position} is not below the model's vocabulary size {vocab_size}")]
    UnknownToken {
        /// The id given.
        id: u32,
        /// Its 0-based position in the sequence.
        position: usize,
        /// The model's vocabulary size (its Embedding's `input_dim`).
        vocab_size: usize,
    },
    /// A [`Sampling`] setting that cannot be used (temperature negative or not
    /// finite, `top_k` 0).
    #[error("sampling: {message}")]
    Sampling {
        /// The setting, its value and the accepted range.
        message: String,
    },
    /// Logits to sample from hold NaN or an infinity (e.g. weights that overflowed).
    #[error("the logits hold a value that is not finite ({value}) at token id {id}; the model's weights are unusable")]
    NonFiniteLogits {
        /// The token id whose logit is not finite.
        id: usize,
        /// That logit.
        value: f32,
    },
}

/// Shorthand for `Result<T, GenerateError>`.
pub type Result<T> = std::result::Result<T, GenerateError>;

/// How [`Sampler`] picks the next token from logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Softmax temperature `T ≥ 0`: the distribution is `softmax(logits / T)`; 0
    /// picks the largest logit (greedy; ties go to the lowest id). Must be finite.
    pub temperature: f64,
    /// Keep only the `k ≥ 1` largest logits (ties broken toward the lowest id); `None`
    /// keeps every token. `Some(1)` is greedy at any temperature.
    pub top_k: Option<usize>,
    /// Seed of the ChaCha8 generator the draws come from.
    pub seed: u64,
}

impl Sampling {
    /// Greedy decoding: temperature 0, no top-k, seed 0.
    pub fn greedy() -> Self {
        Sampling { temperature: 0.0, top_k: None, seed: 0 }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`GenerateError::Sampling`] for a temperature that is negative, NaN or
    /// infinite, or a `top_k` of 0.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(GenerateError::Sampling {
                message: format!("the temperature must be finite and at least 0, got {}", self.temperature),
            });
        }
        if self.top_k == Some(0) {
            return Err(GenerateError::Sampling { message: "top_k must be at least 1, got 0".into() });
        }
        Ok(())
    }

    /// Whether the draw is deterministic (temperature 0 or `top_k` 1).
    fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == Some(1)
    }
}

/// The index of the largest value (the lowest index among equal ones).
fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

/// Refuses logits that hold NaN or an infinity.
fn check_finite(logits: &[f32]) -> Result<()> {
    match logits.iter().position(|v| !v.is_finite()) {
        Some(id) => Err(GenerateError::NonFiniteLogits { id, value: logits[id] }),
        None => Ok(()),
    }
}

/// The distribution [`Sampler::sample`] draws from, `[vocab]`, in `f64`:
///
/// - greedy ([`Sampling::temperature`] 0 or `top_k` 1): 1 at the largest logit
///   (lowest id among ties), 0 elsewhere;
/// - otherwise `p_i = exp((l_i − m)/T) / Σ_{j∈K} exp((l_j − m)/T)` for `i` in `K`,
///   the `top_k` largest logits (all when `None`), and 0 outside `K`, with `m` the
///   largest logit (subtracted for stability).
///
/// # Errors
/// As [`Sampling::validate`]; [`GenerateError::NonFiniteLogits`]; an empty `logits`
/// is a [`GenerateError::Sampling`] error.
pub fn sampling_probabilities(logits: &[f32], sampling: &Sampling) -> Result<Vec<f64>> {
    let mut probs = vec![0.0; logits.len()];
    let mut keep = Vec::new();
    weights(logits, sampling, &mut keep, &mut probs)?;
    let total: f64 = keep.iter().map(|&i| probs[i]).sum();
    keep.iter().for_each(|&i| probs[i] /= total);
    Ok(probs)
}

/// Fills `keep` with the candidate ids (ascending) and `w[i]` with their
/// unnormalised weights (0 elsewhere is not written: only `keep` is meaningful).
fn weights(logits: &[f32], sampling: &Sampling, keep: &mut Vec<usize>, w: &mut [f64]) -> Result<()> {
    sampling.validate()?;
    if logits.is_empty() {
        return Err(GenerateError::Sampling { message: "no logits to sample from (vocabulary of 0)".into() });
    }
    check_finite(logits)?;
    keep.clear();
    if sampling.is_greedy() {
        let best = argmax(logits);
        keep.push(best);
        w[best] = 1.0;
        return Ok(());
    }
    keep.extend(0..logits.len());
    if let Some(k) = sampling.top_k.filter(|&k| k < logits.len()) {
        // The k largest by (logit descending, id ascending): a total order, so the
        // set does not depend on the selection algorithm.
        let order = |&a: &usize, &b: &usize| logits[b].total_cmp(&logits[a]).then(a.cmp(&b));
        keep.select_nth_unstable_by(k - 1, order);
        keep.truncate(k);
        keep.sort_unstable();
    }
    let m = keep.iter().map(|&i| logits[i]).fold(f32::NEG_INFINITY, f32::max);
    for &i in keep.iter() {
        w[i] = ((f64::from(logits[i]) - f64::from(m)) / sampling.temperature).exp();
    }
    Ok(())
}

/// Draws tokens from logits with the settings of a [`Sampling`] and a ChaCha8
/// generator seeded with [`Sampling::seed`]: greedy draws take no random number;
/// others take one `f64` in `[0, 1)` each and return the first id (ascending) whose
/// cumulative weight exceeds it times the total (inverse transform sampling of
/// [`sampling_probabilities`]).
#[derive(Debug, Clone)]
pub struct Sampler {
    sampling: Sampling,
    rng: ChaCha8Rng,
    keep: Vec<usize>,
    weights: Vec<f64>,
}

impl Sampler {
    /// A sampler at the start of its seed's stream.
    ///
    /// # Errors
    /// As [`Sampling::validate`].
    pub fn new(sampling: &Sampling) -> Result<Self> {
        sampling.validate()?;
        Ok(Sampler {
            sampling: *sampling,
            rng: ChaCha8Rng::seed_from_u64(sampling.seed),
            keep: Vec::new(),
            weights: Vec::new(),
        })
    }

    /// The next token drawn from `logits: [vocab]`.
    ///
    /// # Errors
    /// [`GenerateError::NonFiniteLogits`]; [`GenerateError::Sampling`] for empty
    /// logits.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        self.weights.resize(logits.len(), 0.0);
        weights(logits, &self.sampling, &mut self.keep, &mut self.weights)?;
        let chosen = if self.keep.len() == 1 {
            self.keep[0]
        } else {
            let total: f64 = self.keep.iter().map(|&i| self.weights[i]).sum();
            let target = self.rng.random::<f64>() * total;
            let mut cumulative = 0.0;
            let mut chosen = *self.keep.last().expect("at least one candidate");
            for &i in &self.keep {
                cumulative += self.weights[i];
                if cumulative > target {
                    chosen = i;
                    break;
                }
            }
            chosen
        };
        Ok(chosen as u32)
    }
}

/// A parameter held by reference, contiguous (row-major).
#[derive(Debug, Clone)]
struct Weight(Arc<Tensor<f32>>);

impl Weight {
    fn data(&self) -> &[f32] {
        self.0.as_slice().expect("made contiguous in Generator::new")
    }
}

/// `y = act(x·W + b)` for one position: `kernel: [inputs, outputs]`.
#[derive(Debug, Clone)]
struct Linear {
    kernel: Weight,
    bias: Option<Weight>,
    outputs: usize,
    activation: Activation,
}

impl Linear {
    /// `y = act(x·kernel + bias)`, `x: [inputs]`, `y: [outputs]`, summed row by row of
    /// the kernel (contiguous rows, so the inner loop vectorises).
    fn apply(&self, x: &[f32], y: &mut [f32]) {
        match &self.bias {
            Some(b) => y.copy_from_slice(b.data()),
            None => y.fill(0.0),
        }
        for (&xi, row) in x.iter().zip(self.kernel.data().chunks_exact(self.outputs)) {
            for (yj, &wj) in y.iter_mut().zip(row) {
                *yj += xi * wj;
            }
        }
        activate(self.activation, y);
    }
}

/// Applies an element-wise activation in place, each value computed as the model
/// computes it (GELU by nn-autograd's [`gelu_value`](nn_autograd::gelu_value)).
fn activate(activation: Activation, y: &mut [f32]) {
    match (activation, activation.epilogue()) {
        (Activation::Linear | Activation::Softmax, _) => {}
        (Activation::Gelu, _) => y.iter_mut().for_each(|v| *v = nn_autograd::gelu_value(*v, false)),
        (Activation::GeluApproximate, _) => y.iter_mut().for_each(|v| *v = nn_autograd::gelu_value(*v, true)),
        (_, Some(e)) => y.iter_mut().for_each(|v| *v = e.value(*v)),
        (_, None) => {}
    }
}

/// LayerNormalization over one position's features (the model's formula and order
/// of operations: two passes, biased variance).
#[derive(Debug, Clone)]
struct Norm {
    gamma: Option<Weight>,
    beta: Option<Weight>,
    epsilon: f32,
}

impl Norm {
    fn apply(&self, x: &[f32], y: &mut [f32]) {
        let h = x.len() as f32;
        let mean = x.iter().copied().sum::<f32>() / h;
        let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / h;
        let inv = 1.0 / (var + self.epsilon).sqrt();
        for (k, (out, &v)) in y.iter_mut().zip(x).enumerate() {
            let mut z = (v - mean) * inv;
            if let Some(g) = &self.gamma {
                z *= g.data()[k];
            }
            if let Some(b) = &self.beta {
                z += b.data()[k];
            }
            *out = z;
        }
    }
}

/// One pre-LayerNorm block's weights.
#[derive(Debug, Clone)]
struct Block {
    ln1: Norm,
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    ln2: Norm,
    up: Linear,
    down: Linear,
}

/// The position table: learned rows, or the fixed sinusoids computed once.
#[derive(Debug, Clone)]
enum Positions {
    Learned(Weight),
    Sine(Vec<f32>),
}

/// Scratch buffers and the caches, reused every step.
#[derive(Debug, Clone)]
struct State {
    /// Positions fed so far.
    len: usize,
    /// Per block: keys `[len, heads, key_dim]` and values `[len, heads, value_dim]`,
    /// row-major, allocated for the whole context up front.
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    x: Vec<f32>,
    normed: Vec<f32>,
    q: Vec<f32>,
    attended: Vec<f32>,
    branch: Vec<f32>,
    hidden: Vec<f32>,
    scores: Vec<f32>,
    logits: Vec<f32>,
}

/// Incremental decoding of a GPT-style model with a key/value cache (see the module
/// docs for the model it accepts and the cost per token).
///
/// Feed tokens one at a time with [`Generator::feed`] (each call returns the next
/// token's logits) or call [`Generator::generate`]; [`Generator::reset`] empties the
/// cache. The context is strict: feeding past the model's context length is an error
/// (no sliding window, which would change the positions the model was trained on).
#[derive(Debug, Clone)]
pub struct Generator {
    vocab: usize,
    context: usize,
    d_model: usize,
    heads: usize,
    key_dim: usize,
    value_dim: usize,
    token_embedding: Weight,
    positions: Positions,
    blocks: Vec<Block>,
    final_norm: Norm,
    head: Linear,
    state: State,
}

/// Walks a model's layers in execution order, matching the gpt arrangement.
struct Walk<'a> {
    model: &'a Model<f32>,
    order: &'a [usize],
    at: usize,
}

impl<'a> Walk<'a> {
    fn describe(&self, i: usize) -> String {
        format!("layer {:?} ({})", self.model.layer_name(i), self.model.layers()[i].kind())
    }

    fn fail(&self, i: usize, message: impl Into<String>) -> GenerateError {
        GenerateError::NotAGpt { at: self.describe(i), message: message.into() }
    }

    fn spec(&self, i: usize) -> &'a LayerSpec {
        &self.model.spec().layers[i].layer
    }

    fn peek(&self) -> Option<usize> {
        self.order.get(self.at).copied()
    }

    /// The next layer, which must read exactly `from`; `what` names what is expected.
    fn take(&mut self, from: Source, what: &str) -> Result<usize> {
        let Some(i) = self.peek() else {
            return Err(GenerateError::NotAGpt {
                at: "the end of the model".into(),
                message: format!("expected {what} next, found no more layers"),
            });
        };
        let sources = self.model.layer_inputs(i);
        if sources != [from] {
            return Err(self.fail(
                i,
                format!("expected {what} reading {}, got inputs {}", self.source(from), self.sources(sources)),
            ));
        }
        self.at += 1;
        Ok(i)
    }

    fn source(&self, s: Source) -> String {
        match s {
            Source::Input(k) => format!("input {:?}", self.model.inputs()[k].name),
            Source::Layer(i) => format!("{:?}", self.model.layer_name(i)),
        }
    }

    fn sources(&self, s: &[Source]) -> String {
        let names: Vec<String> = s.iter().map(|&s| self.source(s)).collect();
        format!("[{}]", names.join(", "))
    }

    /// Skips Dropout and Identity layers chained on `from` (no-ops in evaluation);
    /// returns the last one, or `from`.
    fn skip_no_ops(&mut self, mut from: Source) -> Source {
        while let Some(i) = self.peek() {
            let no_op = matches!(self.spec(i), LayerSpec::Dropout(_) | LayerSpec::Identity);
            if !no_op || self.model.layer_inputs(i) != [from] {
                break;
            }
            self.at += 1;
            from = Source::Layer(i);
        }
        from
    }

    /// A parameter of layer `i` by its local name (`kernel`, `query.bias`, ...), made
    /// contiguous and checked against `len` scalars.
    fn param(&self, i: usize, local: &str, len: usize) -> Result<Weight> {
        let name = format!("{}.{local}", self.model.layer_prefix(i));
        let p = self
            .model
            .layer_parameters(i)
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| self.fail(i, format!("has no parameter {name:?}")))?;
        if p.value.len() != len {
            return Err(self.fail(i, format!("parameter {name:?} has shape {:?}, expected {len} values", p.shape())));
        }
        let value = if p.value.as_slice().is_some() { Arc::clone(&p.value) } else { Arc::new(p.value.to_contiguous()) };
        Ok(Weight(value))
    }

    /// A LayerNormalization reading `from` over `d` features.
    fn norm(&mut self, from: Source, d: usize, what: &str) -> Result<(usize, Norm)> {
        let i = self.take(from, what)?;
        let LayerSpec::LayerNormalization(c) = *self.spec(i) else {
            return Err(self.fail(i, format!("expected {what} (LayerNormalization)")));
        };
        let gamma = c.scale.then(|| self.param(i, "gamma", d)).transpose()?;
        let beta = c.center.then(|| self.param(i, "beta", d)).transpose()?;
        Ok((i, Norm { gamma, beta, epsilon: c.epsilon as f32 }))
    }

    /// A Dense layer reading `from` with `inputs` features (`units` checked when given).
    fn dense(&mut self, from: Source, inputs: usize, units: Option<usize>, what: &str) -> Result<(usize, Linear)> {
        let i = self.take(from, what)?;
        let LayerSpec::Dense(c) = *self.spec(i) else {
            return Err(self.fail(i, format!("expected {what} (Dense)")));
        };
        if c.lora.is_some() {
            return Err(self.fail(i, "has LoRA adapters; merge them first (Model::merge_lora)"));
        }
        if let Some(u) = units.filter(|&u| u != c.units) {
            return Err(self.fail(i, format!("expected {what} of {u} units, got {}", c.units)));
        }
        if c.activation == Activation::Softmax && units.is_none() {
            return Err(self.fail(i, "a softmax inside a block is not element-wise"));
        }
        let kernel = self.param(i, "kernel", inputs * c.units)?;
        let bias = c.use_bias.then(|| self.param(i, "bias", c.units)).transpose()?;
        Ok((i, Linear { kernel, bias, outputs: c.units, activation: c.activation }))
    }

    /// An Add of exactly `a` and `b` (either order).
    fn add(&mut self, a: Source, b: Source, what: &str) -> Result<usize> {
        let Some(i) = self.peek() else {
            return Err(GenerateError::NotAGpt {
                at: "the end of the model".into(),
                message: format!("expected {what} next, found no more layers"),
            });
        };
        let s = self.model.layer_inputs(i);
        if !matches!(self.spec(i), LayerSpec::Add) || !(s == [a, b] || s == [b, a]) {
            return Err(self.fail(
                i,
                format!(
                    "expected {what} (Add of {} and {}), got inputs {}",
                    self.source(a),
                    self.source(b),
                    self.sources(s)
                ),
            ));
        }
        self.at += 1;
        Ok(i)
    }
}

impl Generator {
    /// Reads `model`'s arrangement and weights.
    ///
    /// Accepted: one input `[context]` of token ids → Embedding(`V`, `d`) →
    /// PositionEmbedding (`sequence_length ≥ context`) or SinePositionEncoding → any
    /// number of blocks `h = x + MHA(LN(x))`, `y = h + Dense(d)(Dense(act)(LN(h)))`
    /// (MultiHeadAttention causal, self-attention without a padding mask, output `d`;
    /// any element-wise MLP activation) → LayerNormalization → Dense(`V`) (linear or
    /// softmax; the generator returns the logits before a softmax) as the one output.
    /// Dropout and Identity layers may sit on any path.
    ///
    /// # Errors
    /// [`GenerateError::NotAGpt`] naming the first layer that does not fit (or the
    /// inputs or outputs): e.g. attention without a causal mask, a padding mask input,
    /// a Dense or MultiHeadAttention with LoRA adapters, extra layers, a logits layer whose units are not
    /// the vocabulary size.
    pub fn new(model: &Model<f32>) -> Result<Self> {
        let inputs = model.inputs();
        let context = match (inputs.len(), inputs.first().map(|i| i.shape.as_slice())) {
            (1, Some(&[t])) => t,
            _ => {
                let shapes: Vec<&[usize]> = inputs.iter().map(|i| i.shape.as_slice()).collect();
                return Err(GenerateError::NotAGpt {
                    at: "the model's inputs".into(),
                    message: format!("expected one input of token ids [context], got shapes {shapes:?}"),
                });
            }
        };
        if model.outputs().len() != 1 {
            return Err(GenerateError::NotAGpt {
                at: "the model's outputs".into(),
                message: format!("expected one output (the logits), got {}", model.outputs().len()),
            });
        }
        let mut w = Walk { model, order: model.execution_order(), at: 0 };

        let embed = w.take(Source::Input(0), "a token Embedding")?;
        let LayerSpec::Embedding(e) = *w.spec(embed) else {
            return Err(w.fail(embed, "expected a token Embedding reading the token ids"));
        };
        let (vocab, d) = (e.input_dim, e.output_dim);
        let token_embedding = w.param(embed, "embeddings", vocab * d)?;

        let pos = w.take(Source::Layer(embed), "a PositionEmbedding or SinePositionEncoding")?;
        let positions = match *w.spec(pos) {
            LayerSpec::PositionEmbedding(c) => Positions::Learned(w.param(pos, "embeddings", c.sequence_length * d)?),
            LayerSpec::SinePositionEncoding(c) => {
                Positions::Sine(nn_layers::layers::sine_position_encoding::<f32>(context, d, c.max_wavelength).to_vec())
            }
            _ => return Err(w.fail(pos, "expected a PositionEmbedding or SinePositionEncoding after the Embedding")),
        };
        let mut stream = w.skip_no_ops(Source::Layer(pos));

        let mut blocks = Vec::new();
        let mut heads_dims: Option<(usize, usize, usize)> = None;
        loop {
            // A LayerNormalization followed by MultiHeadAttention starts a block;
            // otherwise it is the final norm.
            let is_block =
                w.order.get(w.at + 1).is_some_and(|&j| matches!(w.spec(j), LayerSpec::MultiHeadAttention(_)));
            if !is_block {
                break;
            }
            let (ln1_at, ln1) = w.norm(stream, d, "the block's first LayerNormalization")?;
            let mha_at = w.peek().expect("checked above");
            let LayerSpec::MultiHeadAttention(c) = *w.spec(mha_at) else { unreachable!("checked above") };
            if c.lora.is_some() {
                return Err(w.fail(mha_at, "has LoRA adapters; merge them first (Model::merge_lora)"));
            }
            let sources = model.layer_inputs(mha_at);
            if sources.iter().any(|&s| s != Source::Layer(ln1_at)) {
                return Err(w.fail(
                    mha_at,
                    format!(
                        "expected self-attention over {:?} only (no padding mask), got inputs {}",
                        model.layer_name(ln1_at),
                        w.sources(sources)
                    ),
                ));
            }
            if !c.use_causal_mask {
                return Err(w.fail(mha_at, "attention is not causal (use_causal_mask is false): not a decoder"));
            }
            if c.output_shape.is_some_and(|o| o != d) {
                return Err(w.fail(mha_at, format!("expected an output of {d} features, got {:?}", c.output_shape)));
            }
            let (h, kd, vd) = (c.num_heads, c.key_dim, c.effective_value_dim());
            if heads_dims.is_some_and(|x| x != (h, kd, vd)) {
                return Err(w.fail(mha_at, "every block's attention must have the same heads and head sizes"));
            }
            heads_dims = Some((h, kd, vd));
            w.at += 1;
            let proj = |w: &Walk<'_>, name: &str, inputs: usize, outputs: usize| -> Result<Linear> {
                Ok(Linear {
                    kernel: w.param(mha_at, &format!("{name}.kernel"), inputs * outputs)?,
                    bias: c.use_bias.then(|| w.param(mha_at, &format!("{name}.bias"), outputs)).transpose()?,
                    outputs,
                    activation: Activation::Linear,
                })
            };
            let query = proj(&w, "query", d, h * kd)?;
            let key = proj(&w, "key", d, h * kd)?;
            let value = proj(&w, "value", d, h * vd)?;
            let output = proj(&w, "attention_output", h * vd, d)?;
            let branch = w.skip_no_ops(Source::Layer(mha_at));
            stream = Source::Layer(w.add(stream, branch, "the attention's residual sum")?);

            let (ln2_at, ln2) = w.norm(stream, d, "the block's second LayerNormalization")?;
            let (up_at, up) = w.dense(Source::Layer(ln2_at), d, None, "the MLP's first Dense")?;
            let (down_at, down) = w.dense(Source::Layer(up_at), up.outputs, Some(d), "the MLP's second Dense")?;
            if down.activation == Activation::Softmax {
                return Err(w.fail(down_at, "a softmax inside a block is not element-wise"));
            }
            let branch = w.skip_no_ops(Source::Layer(down_at));
            stream = Source::Layer(w.add(stream, branch, "the MLP's residual sum")?);
            stream = w.skip_no_ops(stream);
            blocks.push(Block { ln1, query, key, value, output, ln2, up, down });
        }
        if blocks.is_empty() {
            let at = w.peek().map_or_else(|| "the end of the model".to_string(), |i| w.describe(i));
            return Err(GenerateError::NotAGpt {
                at,
                message: "expected a Transformer block (LayerNormalization then causal MultiHeadAttention)".into(),
            });
        }
        let (final_at, final_norm) = w.norm(stream, d, "the final LayerNormalization")?;
        let (head_at, mut head) = w.dense(Source::Layer(final_at), d, Some(vocab), "the logits Dense")?;
        if !matches!(head.activation, Activation::Linear | Activation::Softmax) {
            return Err(w.fail(head_at, format!("expected linear logits, got activation {}", head.activation.name())));
        }
        head.activation = Activation::Linear; // the logits: a softmax output is left out
        if let Some(extra) = w.peek() {
            return Err(w.fail(extra, "expected nothing after the logits Dense"));
        }
        if model.outputs() != [Source::Layer(head_at)] {
            return Err(GenerateError::NotAGpt {
                at: "the model's outputs".into(),
                message: format!("expected the logits layer {:?} as the output", model.layer_name(head_at)),
            });
        }
        let (heads, key_dim, value_dim) = heads_dims.expect("at least one block");
        let state = State {
            len: 0,
            keys: vec![Vec::with_capacity(context * heads * key_dim); blocks.len()],
            values: vec![Vec::with_capacity(context * heads * value_dim); blocks.len()],
            x: vec![0.0; d],
            normed: vec![0.0; d],
            q: vec![0.0; heads * key_dim],
            attended: vec![0.0; heads * value_dim],
            branch: vec![0.0; d],
            hidden: vec![0.0; blocks.iter().map(|b| b.up.outputs).max().unwrap_or(0)],
            scores: vec![0.0; context],
            logits: vec![0.0; vocab],
        };
        Ok(Generator {
            vocab,
            context,
            d_model: d,
            heads,
            key_dim,
            value_dim,
            token_embedding,
            positions,
            blocks,
            final_norm,
            head,
            state,
        })
    }

    /// The vocabulary size (the Embedding's `input_dim`).
    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    /// The context length (the model's input `[context]`).
    pub fn context(&self) -> usize {
        self.context
    }

    /// The number of Transformer blocks.
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// Tokens fed since the last reset (the next token's position).
    pub fn position(&self) -> usize {
        self.state.len
    }

    /// Empties the key/value cache: the next token fed is at position 0.
    pub fn reset(&mut self) {
        self.state.len = 0;
        for c in self.state.keys.iter_mut().chain(self.state.values.iter_mut()) {
            c.clear();
        }
    }

    /// Feeds `token` at the next position and returns the logits of the token after
    /// it, `[vocab]` (before any softmax): the model's output at this position given
    /// every token fed since the last [`reset`](Self::reset).
    ///
    /// # Errors
    /// [`GenerateError::UnknownToken`] for `token ≥ vocab_size`;
    /// [`GenerateError::ContextFull`] when `context` tokens were fed already. Nothing
    /// changes on an error.
    pub fn feed(&mut self, token: u32) -> Result<&[f32]> {
        let t = self.state.len;
        if token as usize >= self.vocab {
            return Err(GenerateError::UnknownToken { id: token, position: t, vocab_size: self.vocab });
        }
        if t >= self.context {
            return Err(GenerateError::ContextFull { context: self.context });
        }
        let d = self.d_model;
        let (heads, kd, vd) = (self.heads, self.key_dim, self.value_dim);
        let s = &mut self.state;
        let row = &self.token_embedding.data()[token as usize * d..][..d];
        let pos = match &self.positions {
            Positions::Learned(p) => &p.data()[t * d..][..d],
            Positions::Sine(p) => &p[t * d..][..d],
        };
        for ((x, &e), &p) in s.x.iter_mut().zip(row).zip(pos) {
            *x = e + p;
        }
        let scale = (1.0 / (kd as f64).sqrt()) as f32;
        for (b, block) in self.blocks.iter().enumerate() {
            // Attention: this position's query, key and value; keys and values cached.
            block.ln1.apply(&s.x, &mut s.normed);
            block.query.apply(&s.normed, &mut s.q);
            let keys = &mut s.keys[b];
            keys.resize((t + 1) * heads * kd, 0.0);
            block.key.apply(&s.normed, &mut keys[t * heads * kd..]);
            let values = &mut s.values[b];
            values.resize((t + 1) * heads * vd, 0.0);
            block.value.apply(&s.normed, &mut values[t * heads * vd..]);
            let scores = &mut s.scores[..=t];
            for h in 0..heads {
                let q = &s.q[h * kd..][..kd];
                // softmax(s·q·kⱼ) over j ≤ t, as the model's masked softmax.
                let mut max = f32::NEG_INFINITY;
                for (j, score) in scores.iter_mut().enumerate() {
                    let k = &keys[(j * heads + h) * kd..][..kd];
                    let dot = q.iter().zip(k).fold(0.0f32, |a, (&x, &y)| a + x * y);
                    *score = scale * dot;
                    max = max.max(*score);
                }
                let mut total = 0.0f32;
                for score in scores.iter_mut() {
                    *score = nn_tensor::fastmath::exp_f32(*score - max);
                    total += *score;
                }
                let out = &mut s.attended[h * vd..][..vd];
                out.fill(0.0);
                for (j, &a) in scores.iter().enumerate() {
                    let a = a / total;
                    let v = &values[(j * heads + h) * vd..][..vd];
                    out.iter_mut().zip(v).for_each(|(o, &v)| *o += a * v);
                }
            }
            block.output.apply(&s.attended, &mut s.branch);
            s.x.iter_mut().zip(&s.branch).for_each(|(x, &y)| *x += y);
            // MLP.
            block.ln2.apply(&s.x, &mut s.normed);
            let hidden = &mut s.hidden[..block.up.outputs];
            block.up.apply(&s.normed, hidden);
            block.down.apply(hidden, &mut s.branch);
            s.x.iter_mut().zip(&s.branch).for_each(|(x, &y)| *x += y);
        }
        self.final_norm.apply(&s.x, &mut s.normed);
        self.head.apply(&s.normed, &mut s.logits);
        s.len = t + 1;
        Ok(&s.logits)
    }

    /// Generates up to `max_tokens` tokens after `prompt`, from an empty cache: feeds
    /// the prompt, then draws each token with a [`Sampler`] of `sampling` and feeds
    /// it back. Stops early after drawing `eos` (when given; the `<eos>` id of the
    /// tokenizer, [`TextTokenizer::eos_id`](crate::TextTokenizer::eos_id)), which is
    /// not included. Returns the new tokens only.
    ///
    /// # Errors
    /// [`GenerateError::EmptyPrompt`]; [`GenerateError::TooLong`] when
    /// `prompt.len() + max_tokens` exceeds the context (checked before any work);
    /// [`GenerateError::UnknownToken`] for a prompt id `≥ vocab_size`;
    /// [`GenerateError::Sampling`] for unusable settings;
    /// [`GenerateError::NonFiniteLogits`].
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        sampling: &Sampling,
        eos: Option<u32>,
    ) -> Result<Vec<u32>> {
        let mut sampler = Sampler::new(sampling)?;
        if prompt.is_empty() {
            return Err(GenerateError::EmptyPrompt);
        }
        let total = prompt.len().saturating_add(max_tokens);
        if total > self.context {
            return Err(GenerateError::TooLong { prompt: prompt.len(), max_tokens, total, context: self.context });
        }
        if let Some((position, &id)) = prompt.iter().enumerate().find(|(_, &id)| id as usize >= self.vocab) {
            return Err(GenerateError::UnknownToken { id, position, vocab_size: self.vocab });
        }
        self.reset();
        let (last, head) = prompt.split_last().expect("not empty");
        for &token in head {
            self.feed(token)?;
        }
        let mut logits_token = *last;
        let mut out = Vec::with_capacity(max_tokens);
        while out.len() < max_tokens {
            let logits = self.feed(logits_token)?;
            let next = sampler.sample(logits)?;
            if Some(next) == eos {
                break;
            }
            out.push(next);
            logits_token = next;
        }
        Ok(out)
    }
}
