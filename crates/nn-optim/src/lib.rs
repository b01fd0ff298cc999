//! # nn-optim
//!
//! Optimizers, weight penalties, gradient clipping, learning-rate schedules and
//! resumable optimizer state for the nn toolkit.
//!
//! This crate depends on nn-tensor only, not on nn-autograd: an optimizer works on
//! *named* parameters. The training loop keeps its parameters as `(name, Tensor)`
//! pairs, receives the gradients keyed by the same names, pairs them with [`bind`]
//! (or [`ParamMut::new`]) in a deterministic order, and hands the slice to the
//! penalty, the clipping and the optimizer in turn.
//!
//! ```
//! use nn_optim::{bind, clip_grad_norm, Adam, AdamConfig, LrSchedule, Optimizer, Regularizer};
//! use nn_tensor::Tensor;
//!
//! # fn main() -> Result<(), nn_optim::OptimError> {
//! let mut params = vec![
//!     ("layers.0.kernel".to_string(), Tensor::<f32>::from_vec(&[2, 1], vec![0.5, -0.5])),
//!     ("layers.0.bias".to_string(), Tensor::<f32>::zeros(&[1])),
//! ];
//! let mut opt = Adam::<f32>::new(AdamConfig::new(1e-3))?;
//! let schedule = LrSchedule::cosine_decay_with_warmup(0.0, 10, 1e-3, 1000, 0.0);
//! let l2 = Regularizer::l2(1e-4);
//!
//! // One training step; the gradients would come from autograd's backward pass.
//! let mut grads = vec![
//!     ("layers.0.kernel".to_string(), Tensor::<f32>::from_vec(&[2, 1], vec![0.1, 0.2])),
//!     ("layers.0.bias".to_string(), Tensor::<f32>::from_vec(&[1], vec![-0.3])),
//! ];
//! let mut bound = bind(
//!     params.iter_mut().map(|(n, t)| (n.as_str(), t)),
//!     grads.iter_mut().map(|(n, g)| (n.as_str(), g)),
//! )?;
//! let penalty = l2.apply(&mut bound)?; // log next to the data loss
//! let grad_norm = clip_grad_norm(&mut bound, 1.0)?; // norm before clipping
//! schedule.apply(&mut opt)?; // lr for this step, from opt.iterations()
//! opt.step(&mut bound)?;
//! assert!(penalty > 0.0 && grad_norm > 0.0 && opt.iterations() == 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## Parameter naming convention
//!
//! nn-layers names weights as Keras does: `layers.{i}.kernel`, `layers.{i}.bias`,
//! `layers.{i}.gamma`, `layers.{i}.beta`, `layers.{i}.moving_mean`,
//! `layers.{i}.moving_variance`, `layers.{i}.embeddings`,
//! `layers.{i}.recurrent_kernel`. The last dotted part gives the [`ParamKind`], which
//! sets the defaults:
//!
//! - penalties ([`Regularizer`]) and decoupled weight decay apply to **kernels,
//!   recurrent kernels and embeddings only**: not to biases, not to BatchNorm's γ/β,
//!   not to names of any other form;
//! - `moving_mean` and `moving_variance` are **frozen** (they are updated by the
//!   forward pass, not by gradients): an optimizer creates no state for them and
//!   leaves them alone if they are passed;
//! - every learning-rate multiplier is 1.
//!
//! [`ParamRules`] overrides any of this per parameter (exact name, prefix such as
//! `layers.0.`, kind, or any predicate): learning-rate multipliers for discriminative
//! fine-tuning, freezing, and turning penalties/decay on or off.
//!
//! ## Optimizers and their defaults
//!
//! All implement [`Optimizer`], are generic over the element type (`f32`, `f64`),
//! compute in that type (scalar coefficients in `f64`, then rounded), and follow
//! **PyTorch's update formulas** (stated on each type) with **Keras's default
//! hyperparameters** (the project's seed is Keras-based):
//!
//! | optimizer | formula | defaults (Keras) | PyTorch's defaults differ in |
//! |---|---|---|---|
//! | [`Sgd`] | momentum, dampening, Nesterov as `torch.optim.SGD` | η 0.01 | η (required) |
//! | [`Adam`] | Kingma & Ba Alg. 1, ε after `√v̂`; AMSGrad option | η 1e-3, β 0.9/0.999, **ε 1e-7** | ε 1e-8 |
//! | AdamW ([`Adam::adamw`]) | Adam + `θ ← θ − η·λ·θ` | as Adam, **λ 0.004** | λ 0.01 |
//! | [`RmsProp`] | `torch.optim.RMSprop` (ε after the root), momentum, centered | η 1e-3, ρ 0.9, ε 1e-7 | η 0.01, ρ 0.99, ε 1e-8 |
//! | [`Adagrad`] | `torch.optim.Adagrad` (ε after the root) | η 1e-3, initial accumulator 0.1, ε 1e-7 | η 0.01, 0, ε 1e-10 |
//!
//! Keras adds ε at different places (Adam: to the uncorrected `√v`; RMSprop and
//! Adagrad: under the root), so the same ε behaves slightly differently there; the
//! difference shows only where the root is comparable to ε.
//!
//! Every optimizer takes a `weight_decay` λ that is **decoupled** (Loshchilov & Hutter;
//! Keras 3's `weight_decay`): `θ ← θ − η·λ·θ` before the update, never through the
//! gradient, applied where the rules' `decay` flag is set.
//!
//! ## Penalties versus decoupled weight decay
//!
//! [`Regularizer`] follows Keras's `l1`/`l2`: penalty `λ·Σ|w|` and `λ·Σw²` (**no ½**),
//! gradients `λ·sign(w)` and `2λ·w`. So one SGD step with zero data gradient gives
//! `w − η·λ·sign(w)` (L1), `w − 2ηλ·w` (L2) and `w − ηλ·w` (decoupled decay with the
//! same λ). Under Adam the difference is larger: an L2 gradient is normalised by
//! `√v̂` (its first step is about `η·sign(w)` whatever λ), decay is not.
//!
//! ## Clipping
//!
//! [`clip_grad_norm`] has PyTorch's `clip_grad_norm_` semantics (one factor
//! `max_norm / (norm + 1e-6)` for all gradients when below 1; returns the norm before
//! clipping); a non-finite norm is an error and leaves the gradients unchanged.
//! [`clip_grad_value`] clamps elements.
//!
//! ## Schedules
//!
//! [`LrSchedule`]: constant, step decay, exponential decay (with staircase), cosine
//! decay with linear warm-up, with Keras's formulas. [`ReduceLrOnPlateau`]: Keras's
//! callback semantics, driven by a metric once per epoch. Both are serde types.
//!
//! ## Checkpoints
//!
//! [`save_checkpoint`] writes configuration, state (learning rate, iterations, moments
//! and per-parameter step counts, keyed by parameter name) and schedules as one
//! safetensors file with JSON metadata, atomically; [`load_checkpoint`] and
//! [`Optimizer::load_state`] restore it, checking names and shapes against the
//! parameters. A resumed run continues bit for bit as the uninterrupted one would.

#![warn(missing_docs)]

mod adagrad;
mod adam;
mod checkpoint;
mod clip;
mod error;
mod optimizer;
mod param;
mod regularizer;
mod rmsprop;
mod schedule;
mod sgd;
mod state;

pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig};
pub use checkpoint::{
    checkpoint_from_bytes, checkpoint_to_bytes, load_checkpoint, save_checkpoint, OptimizerCheckpoint,
};
pub use clip::{clip_grad_norm, clip_grad_value, global_norm};
pub use error::{OptimError, Result};
pub use optimizer::{Optimizer, OptimizerConfig};
pub use param::{bind, ParamKind, ParamMut, ParamOverride, ParamRules, ParamSelector, ParamSettings};
pub use regularizer::Regularizer;
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use schedule::{LrSchedule, PlateauMode, ReduceLrOnPlateau};
pub use sgd::{Sgd, SgdConfig};
pub use state::{OptimizerState, ParamState};
