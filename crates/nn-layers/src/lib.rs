//! # nn-layers
//!
//! Layers, losses, initializers and [`Model`]s for the nn toolkit, built
//! on [`nn_autograd`]: a model is data (a [`ModelSpec`], JSON in and out), is built
//! with every shape checked up front, runs forward on a [`Graph`] with an explicit
//! train/eval [`Mode`], prints a Keras-style [`summary`](Sequential::summary), and
//! saves as `model.json` + `weights.safetensors`.
//!
//! ## Layout and names (Keras-compatible)
//!
//! - Images are **NHWC** (channels last): `[batch, height, width, channels]`.
//! - Conv2D kernels are `[kernel_h, kernel_w, in_channels, filters]`, Dense kernels
//!   `[in_features, out_features]`, and Flatten runs in NHWC order, so weights of a
//!   Keras-trained model map 1:1.
//! - Parameters are named `layers.{i}.{kernel|recurrent_kernel|bias|gamma|beta|moving_mean|moving_variance|embeddings|lora_a|lora_b}`
//!   ([`Parameter`], [`ParamKind`]); nn-optim reads the kind from the last part.
//!
//! ## Layers
//!
//! | `"type"` | shapes (per batch) | parameters |
//! |---|---|---|
//! | [`Dense`](layers::Dense) | `[batch, ..., in] → [batch, ..., units]` | kernel `[in, units]`, bias `[units]`; with [LoRA](LoraConfig) also lora_a `[in, rank]`, lora_b `[rank, units]` |
//! | [`Conv2D`](layers::Conv2D) | `[batch, h, w, c] → [batch, oh, ow, filters]` | kernel `[kh, kw, c, filters]`, bias `[filters]` |
//! | [`MaxPool2D`, `AvgPool2D`](layers::Pool2D) | `[batch, h, w, c] → [batch, oh, ow, c]` | |
//! | [`GlobalAveragePooling2D`](layers::GlobalAveragePooling2D) | `[batch, h, w, c] → [batch, c]` | |
//! | [`GlobalMaxPooling2D`](layers::GlobalMaxPooling2D) | `[batch, h, w, c] → [batch, c]` | |
//! | [`ZeroPadding2D`](layers::ZeroPadding2D) | `[batch, h, w, c] → [batch, top + h + bottom, left + w + right, c]` | |
//! | [`Flatten`](layers::Flatten) | `[batch, d1, d2, ...] → [batch, d1·d2·…]` | |
//! | [`Dropout`](layers::Dropout) | unchanged | |
//! | [`BatchNormalization`](layers::BatchNormalization) | unchanged (features last) | gamma, beta, moving_mean, moving_variance `[features]` |
//! | [`LayerNormalization`](layers::LayerNormalization) | unchanged (normalised over the last axis) | gamma, beta `[features]` |
//! | [`Activation`, `ReLU`, `LeakyReLU`, `ELU`, `Softmax`](layers::ActivationLayer) | unchanged | |
//! | [`Embedding`](layers::Embedding) | `[batch, ...] → [batch, ..., output_dim]` | embeddings `[input_dim, output_dim]` |
//! | [`Reshape`](layers::Reshape) | `[batch, ...] → [batch, ...target_shape]` | |
//! | [`Identity`](layers::Identity) | unchanged | |
//! | [`Add`, `Subtract`, `Multiply`, `Average`, `Maximum`](layers::Merge) | n inputs `[batch, ...s]` (identical shapes; Subtract: 2) `→ [batch, ...s]` | |
//! | [`Concatenate`](layers::Concatenate) | n inputs `[batch, ..., dₖ, ...] → [batch, ..., Σ dₖ, ...]` along `axis` (default −1) | |
//! | [`Dot`](layers::Dot) | 2 inputs `[batch, d] → [batch, 1]`, `Σⱼ aⱼ·cⱼ` per sample | |
//! | [`SimpleRNN`](layers::SimpleRNN) | `[batch, time, features] → [batch, units]` (or `[batch, time, units]`) | kernel `[features, units]`, recurrent_kernel `[units, units]`, bias `[units]` |
//! | [`LSTM`](layers::LSTM) | as SimpleRNN | kernel `[features, 4·units]`, recurrent_kernel `[units, 4·units]`, bias `[4·units]` (gates i, f, c̃, o) |
//! | [`GRU`](layers::GRU) (`reset_after`) | as SimpleRNN | kernel `[features, 3·units]`, recurrent_kernel `[units, 3·units]`, bias `[2, 3·units]` (gates z, r, h̃) |
//! | [`MultiHeadAttention`](layers::MultiHeadAttention) | `[query, value?, key?, mask?]`: `[batch, seq_q, dq]`, `[batch, seq_k, dv]`, `[batch, seq_k, dk]`, `[batch, seq_k]` → `[batch, seq_q, output_shape]` | `query.kernel [dq, heads, key_dim]`, `query.bias [heads, key_dim]`, `key.*`, `value.*` alike, `attention_output.kernel [heads, value_dim, out]`, `attention_output.bias [out]` |
//! | [`PaddingMask`](layers::PaddingMask) | token ids `[batch, seq] → [batch, seq]` (1 token, 0 padding; `[batch, seq + 1]` with `class_token`) | |
//! | [`PositionEmbedding`](layers::PositionEmbedding) | `[batch, seq, d]` + table → unchanged | embeddings `[sequence_length, d]` |
//! | [`SinePositionEncoding`](layers::SinePositionEncoding) | `[batch, seq, d]` + fixed sinusoids → unchanged | |
//! | [`GlobalAveragePooling1D`](layers::GlobalAveragePooling1D) | `[batch, seq, d]` (and a mask `[batch, seq]`) → `[batch, d]` | |
//! | [`ClassToken`](layers::ClassToken) | `[batch, seq, d] → [batch, seq + 1, d]`, a learned token appended | embeddings `[1, d]` |
//! | [`ClassTokenPooling`](layers::ClassTokenPooling) | `[batch, seq, d] → [batch, d]`, the last position | |
//!
//! ## Speed
//!
//! Dense and Conv2D run as one graph op each, activation included (nn-autograd's
//! [`linear_act`](Graph::try_linear_act) and [`conv2d_act`](Graph::try_conv2d_act),
//! the activation as its [`Epilogue`](nn_autograd::Epilogue), see
//! [`Activation::epilogue`]): one GEMM with the bias as its initial value (Conv2D:
//! after im2col), then an element-wise activation (relu, leaky_relu, elu, sigmoid,
//! tanh, softplus) applied in place on the GEMM's output, its derivative computed from
//! that output in backward; so no separate activation tensor is allocated or
//! traversed. A Conv2D whose output only a MaxPool2D (then perhaps a Flatten) reads
//! runs with them as one op, [`conv2d_max_pool`](Graph::try_conv2d_max_pool), which
//! never stores the convolution's output. Without a graph ([`Model::infer`]) the same
//! kernels run on plain arrays ([`nn_autograd::linear_value`],
//! [`nn_autograd::conv2d_value`], [`nn_autograd::conv2d_max_pool_value`]). Softmax
//! follows as its own op (and [`Model::forward_logits`](crate::Model::forward_logits) leaves it out).
//! BatchNormalization is one fused op
//! per mode. Each recurrent layer runs its whole sequence as one op
//! ([`rnn`]): one GEMM for every step's input projection, one small GEMM per step
//! for the recurrence, gates computed in place, backpropagation through time written
//! by hand and gradchecked. Parameters are bound into the graph through their `Arc`s, so a step
//! copies no weights.
//!
//! ## A training step
//!
//! ```
//! use nn_layers::loss::{Loss, LossTargets};
//! use nn_layers::{ForwardCtx, Graph, Mode, ModelSpec, Sequential, Tensor};
//! use nn_tensor::random::seeded_rng;
//! use std::sync::Arc;
//!
//! let spec = ModelSpec::from_json(r#"{
//!     "input_shape": [4],
//!     "layers": [
//!         {"type": "Dense", "units": 8, "activation": "relu"},
//!         {"type": "BatchNormalization"},
//!         {"type": "Dropout", "rate": 0.25},
//!         {"type": "Dense", "units": 3, "activation": "softmax"}
//!     ]
//! }"#)?;
//! let mut model = Sequential::<f32>::new(spec, 7)?;
//! let x = Tensor::<f32>::from_vec(&[2, 4], vec![0.1, 0.2, 0.3, 0.4, -1.0, 0.5, 0.0, 2.0]);
//! let labels = [2usize, 0];
//!
//! let mut rng = seeded_rng(1);
//! let mut g = Graph::new();
//! let xv = g.input(x);
//! let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
//! // The model ends with a softmax: take the logits and the loss from logits (stable).
//! let logits = model.forward_logits(&mut g, xv, &mut ctx)?;
//! let loss = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 };
//! let l = loss.compute(&mut g, logits, &LossTargets::Classes(&labels))?;
//! let grads = g.backward(l)?;
//! let updates = std::mem::take(&mut ctx.state_updates); // BatchNorm's moving statistics
//! drop(g);
//! for p in model.parameters_mut().iter_mut().filter(|p| p.trainable) {
//!     let grad = grads.get(&p.name).expect("every trainable parameter has a gradient");
//!     Arc::make_mut(&mut p.value).array_mut().zip_mut_with(grad.array(), |w, &d| *w -= 0.1 * d);
//! }
//! model.apply_state_updates(updates)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Modules
//! - [`spec`]: [`ModelSpec`], [`LayerSpec`] and the per-layer configs (serde).
//! - [`layers`]: the built layers ([`Layer`] implementations) and the fused
//!   BatchNormalization ops.
//! - [`loss`]: [`Loss`](loss::Loss), [`LossTargets`](loss::LossTargets), [`Reduction`](loss::Reduction).
//! - [`init`]: [`Initializer`] and [`Fans`].
//! - [`Sequential`], [`Module`], [`Layer`], [`ForwardCtx`], [`Parameter`].
//! - Sizing before building: [`ModelSpec::shapes`] (every layer's output shape and
//!   parameter count, nothing allocated), [`ModelShapes::footprint`] (the memory of
//!   one training step or inference batch, an estimate: see [`Footprint`]),
//!   [`machine_memory`] and [`parse_memory_size`] to compare it with a limit.
//! - Saving: [`Model::save`](crate::Model::save), [`Model::load`](crate::Model::load), [`Model::save_weights`](crate::Model::save_weights),
//!   [`Model::load_weights`](crate::Model::load_weights).
//! - [`transfer`]: fine-tuning: loading by name ([`Model::load_weights_matching`](crate::Model::load_weights_matching)),
//!   freezing ([`Model::freeze`](crate::Model::freeze), [`Model::freeze_layers`](crate::Model::freeze_layers)), a new output head
//!   ([`Model::with_new_head`](crate::Model::with_new_head)), LoRA adapters on Dense layers
//!   ([`LoraConfig`], [`Model::with_lora`](crate::Model::with_lora), [`Model::merge_lora`](crate::Model::merge_lora)).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod activation;
mod error;
pub mod init;
mod io;
pub mod layers;
pub mod loss;
mod model;
mod module;
pub mod rnn;
pub mod spec;
mod summary;
pub mod transfer;

pub use activation::{Activation, LEAKY_RELU_SLOPE};
pub use error::{clip, clip_to, LayerError, Result, MAX_QUOTED};
pub use init::{Fans, Initializer};
pub use io::{
    complete_interrupted_save, saved_weights_path, InterruptedSave, MODEL_FILE, WEIGHTS_FILE, WEIGHTS_STAGED_FILE,
};
pub use model::{
    format_bytes, machine_memory, parse_memory_size, Footprint, InputSpec, LayerShape, MachineMemory, Model,
    ModelShapes, ModelSpec, NodeSpec, Sequential, Source, StepMemory, FORMAT_VERSION, MAX_LAYERS, MAX_NAME_LEN,
    MAX_PARAMETERS,
};
pub use model::{SequencePooling, TransformerBlockConfig, TRANSFORMER_LN_EPSILON};
pub use module::CrossReplicaSum;
pub use module::{ForwardCtx, Layer, Mode, Module, ParamKind, ParamSpec, Parameter, PoolWindow};
pub use nn_autograd::{Graph, Var};
pub use nn_tensor::Tensor;
pub use spec::{
    ActivationConfig, BatchNormConfig, Conv2DConfig, DenseConfig, DropoutConfig, EluConfig, EmbeddingConfig, LayerSpec,
    LeakyReluConfig, LoraConfig, PaddingMode, Pool2DConfig, Size2,
};
pub use spec::{
    ClassTokenConfig, MultiHeadAttentionConfig, PaddingMaskConfig, PositionEmbeddingConfig, SinePositionEncodingConfig,
};
pub use spec::{ConcatenateConfig, LayerNormConfig, Padding2D, ZeroPadding2DConfig};
pub use spec::{GruConfig, LstmConfig, ReshapeConfig, SimpleRnnConfig, TargetShape};
pub use summary::thousands;
pub use transfer::{name_matches, LoadOptions, LoadReport};
