//! # nn
//!
//! Neural networks on the CPU, in one dependency. This crate re-exports the nn
//! workspace's crates as modules and gathers the types of the common path in a
//! [`prelude`]:
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`tensor`] | nn-tensor | [`Tensor`](tensor::Tensor), broadcasting, GEMM, convolution kernels, seeded random fills, the thread pool |
//! | [`autograd`] | nn-autograd | the [`Graph`](autograd::Graph) tape, [`backward`](autograd::Graph::backward), [`gradcheck`](autograd::gradcheck) |
//! | [`layers`] | nn-layers | [`ModelSpec`](layers::ModelSpec) (a model as data), [`Model`](layers::Model), layers, losses, saving and loading |
//! | [`optim`] | nn-optim | SGD, Adam(W), RMSprop, Adagrad, schedules, clipping, penalties |
//! | [`data`] | nn-data | [`Dataset`](data::Dataset), CSV and IDX (MNIST) readers, the embedded digits, splits, scalers, batches |
//! | [`train`] | nn-train | [`fit`](train::fit), [`evaluate`](train::evaluate), [`predict`](train::predict), callbacks, metrics, tuning |
//! | [`text`] | nn-text | [`TextTokenizer`](text::TextTokenizer) (byte-level BPE, bytes), language-modelling windows, text classification from CSV, held-out chapters, the byte n-gram baseline, bits per byte |
//! | `serve` | nn-serve | the HTTP inference server (feature `serve`, on by default) |
//!
//! ```toml
//! [dependencies]
//! nn = { path = "crates/nn" }                                  # everything
//! # nn = { path = "crates/nn", default-features = false }      # without the server (no tokio)
//! ```
//!
//! ## From Keras or PyTorch
//!
//! | Keras / PyTorch | nn |
//! |---|---|
//! | `keras.Sequential([layers.Dense(32, activation="relu"), ...])` | [`ModelSpec::new`](layers::ModelSpec::new)`(&input_shape, vec![`[`LayerSpec::dense`](layers::LayerSpec::dense)`(32, Activation::Relu), ...])`, then [`Sequential::new`](layers::Model::new)`(spec, seed)`; or the same as JSON with [`ModelSpec::from_json`](layers::ModelSpec::from_json) |
//! | the functional API, `keras.Model(inputs, outputs)`; `torch.nn.Module` with a custom `forward` | a graph spec (format version 2): [`ModelSpec::graph`](layers::ModelSpec::graph) with [`NodeSpec::named`](layers::NodeSpec::named)`(...).with_inputs([...])`, merges `Add`, `Concatenate`, ... |
//! | `model.summary()` | [`Model::summary`](layers::Model::summary) |
//! | `model.compile(optimizer, loss)` | nothing to compile: the optimizer and the [`Loss`](layers::loss::Loss) are arguments of `fit` |
//! | `model.fit(x, y, epochs, batch_size, validation_data, callbacks)` | [`fit`](train::fit)`(&mut model, &mut optimizer, &loss, &train, Some(&val), &`[`FitConfig`](train::FitConfig)`::new(epochs, batch_size), &mut callbacks)` → [`History`](train::History) |
//! | `model.evaluate`, `model.predict` | [`evaluate`](train::evaluate), [`predict`](train::predict) (batched), or [`Model::predict`](layers::Model::predict) on one batch |
//! | `keras.callbacks.EarlyStopping`, `ModelCheckpoint`, `CSVLogger`, `ReduceLROnPlateau`, `TerminateOnNaN` | [`EarlyStopping`](train::EarlyStopping), [`ModelCheckpoint`](train::ModelCheckpoint), [`CsvLogger`](train::CsvLogger), [`ReduceLrOnPlateauCallback`](train::ReduceLrOnPlateauCallback), [`TerminateOnNaN`](train::TerminateOnNaN) |
//! | `model.save(dir)`, `keras.models.load_model(dir)` | [`Model::save`](layers::Model::save) / [`save_with_metadata`](layers::Model::save_with_metadata), [`Model::load`](layers::Model::load) / [`load_with_metadata`](layers::Model::load_with_metadata) (`model.json` + safetensors weights) |
//! | `torch.save(model.state_dict())`, `model.load_weights` | [`Model::save_weights`](layers::Model::save_weights), [`Model::load_weights`](layers::Model::load_weights) |
//! | `torch.Tensor`, `x @ w`, `x + b` | [`Tensor<f32>`](tensor::Tensor), `x.matmul(&w)` (or `try_matmul`), `&x + &b` (NumPy broadcasting) |
//! | `requires_grad=True`, `loss.backward()`, `x.grad` | a leaf from [`Graph::variable`](autograd::Graph::variable) or [`Graph::param`](autograd::Graph::param); [`Graph::backward`](autograd::Graph::backward) returns the [`Gradients`](autograd::Gradients) (`grads.wrt(var)`, `grads.get(name)`) |
//! | `with torch.no_grad():` | [`Graph::no_grad`](autograd::Graph::no_grad) |
//! | `model.train()`, `model.eval()` | the [`Mode`](layers::Mode) of each call's [`ForwardCtx`](layers::ForwardCtx) |
//! | `torch.optim.Adam(model.parameters(), lr)`, `optimizer.zero_grad()`, `optimizer.step()` | [`Adam::new`](optim::Adam::new)`(`[`AdamConfig::new`](optim::AdamConfig::new)`(lr))`; no `zero_grad` (every step's graph is new and `backward` returns fresh gradients); [`bind`](optim::bind) then [`Optimizer::step`](optim::Optimizer::step), see [below](#your-own-training-loop) |
//! | `nn.CrossEntropyLoss()` | [`Loss::SparseCategoricalCrossentropy`](layers::loss::Loss::SparseCategoricalCrossentropy)` { from_logits: true, label_smoothing: 0.0 }` (label smoothing as PyTorch's) |
//! | `DataLoader(dataset, batch_size, shuffle=True)` | [`Batcher::new`](data::Batcher::new)`(batch_size)?.shuffled(seed).batches(&dataset, epoch)` |
//! | `StandardScaler`, `train_test_split(stratify=y)` | [`Scaler::fit_standard`](data::Scaler::fit_standard), [`Dataset::split_stratified`](data::Dataset::split_stratified) |
//! | `torch.autograd.gradcheck` | [`gradcheck`](autograd::gradcheck) (central differences in `f64`) |
//! | `torch.manual_seed`, `torch.set_num_threads` | explicit seeds everywhere (model init, `FitConfig::seed`, [`seeded_rng`](tensor::random::seeded_rng)); [`set_num_threads`](tensor::set_num_threads) (results do not depend on it) |
//!
//! Conventions: images are NHWC (`[batch, height, width, channels]`), Dense kernels
//! `[in, out]`, parameter names Keras's (`layers.0.kernel`), optimizer defaults
//! Keras's. Fallible calls return their own crate's error; those of `tensor`,
//! `autograd`, `layers`, `optim` and `data` all convert into [`train::TrainError`]
//! with `?`.
//!
//! ## Training a model
//!
//! ```
//! use nn::data::digits;
//! use nn::prelude::*;
//!
//! // 256 of the embedded 8×8 digits, as vectors of 64 pixels scaled to [0, 1].
//! let all = digits::load_as(digits::Layout::Flat, true);
//! let train = all.subset(&(0..256).collect::<Vec<_>>())?;
//!
//! // 64 → Dense(32, relu) → Dense(10, softmax), weights drawn from seed 42.
//! let spec = ModelSpec::new(
//!     &[64],
//!     vec![LayerSpec::dense(32, Activation::Relu), LayerSpec::dense(10, Activation::Softmax)],
//! );
//! let mut model = Sequential::new(spec, 42)?;
//! let mut adam = Adam::new(AdamConfig::new(0.01))?;
//! let loss = Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 };
//!
//! // One epoch with one batch of 256 samples: a single optimizer step.
//! let before = evaluate(&model, &loss, &train, 256)?.loss;
//! let config = FitConfig { verbosity: Verbosity::Silent, ..FitConfig::new(1, 256) };
//! let history = fit(&mut model, &mut adam, &loss, &train, None, &config, &mut [])?;
//! let after = evaluate(&model, &loss, &train, 256)?.loss;
//! assert_eq!(history.epochs.len(), 1);
//! assert!(after < before, "{after} < {before}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Your own training loop
//!
//! [`fit`](train::fit) covers the usual case. A hand-written step wires the model's
//! parameters to an optimizer in five moves: run the model on a fresh
//! [`Graph`](autograd::Graph) in [`Mode::Train`](layers::Mode::Train), compute the
//! loss, call `backward`, **drop the graph** (it holds a reference to every weight,
//! so updating before dropping it would copy them), then pair each trainable
//! parameter with its gradient by name ([`bind`](optim::bind)) and step. A model's
//! weights live in `Arc`s ([`Parameter::value`](layers::Parameter::value));
//! `Arc::make_mut` gives the optimizer the tensor to update in place.
//! BatchNormalization's moving statistics are not trained by gradients: the forward
//! pass returns them in `ForwardCtx::state_updates`, applied after the step.
//!
//! ```
//! use std::sync::Arc;
//! use nn::prelude::*;
//!
//! let mut model = Sequential::new(ModelSpec::mlp(&[4], 8, 3, 0.0), 1)?;
//! let mut sgd = Sgd::new(SgdConfig::new(0.1))?;
//! let x = Tensor::from_vec(&[2, 4], vec![0.1, 0.2, 0.3, 0.4, -1.0, 0.5, 0.0, 2.0]);
//! let labels = [2usize, 0];
//! let loss = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 };
//! let mut rng = seeded_rng(7); // dropout masks, if the model had dropout
//!
//! let mut losses = Vec::new();
//! for _step in 0..2 {
//!     let mut g = Graph::new();
//!     let xv = g.input(&x);
//!     let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
//!     let logits = model.forward_logits(&mut g, xv, &mut ctx)?; // the softmax is in the loss
//!     let l = loss.compute(&mut g, logits, &LossTargets::Classes(&labels))?;
//!     losses.push(g.value(l).item());
//!     let mut grads = g.backward(l)?;
//!     let state_updates = std::mem::take(&mut ctx.state_updates);
//!     drop(g);
//!     let mut bound = bind(
//!         model
//!             .parameters_mut()
//!             .iter_mut()
//!             .filter(|p| p.trainable)
//!             .map(|p| (p.name.as_str(), Arc::make_mut(&mut p.value))),
//!         grads.iter_mut(),
//!     )?;
//!     sgd.step(&mut bound)?;
//!     model.apply_state_updates(state_updates)?;
//! }
//! assert!(losses[1] < losses[0]);
//! assert_eq!(sgd.iterations(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Examples
//!
//! `crates/nn/examples/` holds numbered programs, each runnable with
//! `cargo run --release -p nn --example NAME` (`.ci/examples` runs them all):
//! `01-tensor`, `02-autograd`, `03-custom-loop`, `04-fit-csv`, `05-regression`,
//! `06-cnn-mnist`, `07-graph-model`, `08-save-load-predict`. Those that read real
//! data look under `$NN_DATA_DIR` and fall back to data they carry or generate.
//!
//! ## Features
//!
//! - `serve` (default): the `serve` module, nn-serve's HTTP inference server.
//! - `openblas`: nn-tensor's OpenBLAS GEMM back end (needs the system library).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[doc(inline)]
pub use nn_tensor as tensor;

#[doc(inline)]
pub use nn_autograd as autograd;

#[doc(inline)]
pub use nn_layers as layers;

#[doc(inline)]
pub use nn_optim as optim;

#[doc(inline)]
pub use nn_data as data;

#[doc(inline)]
pub use nn_train as train;

#[doc(inline)]
pub use nn_onnx as onnx;

#[doc(inline)]
pub use nn_text as text;

#[cfg(feature = "serve")]
#[doc(inline)]
pub use nn_serve as serve;

/// The types and functions of the common path, for `use nn::prelude::*`: tensors and
/// the autograd tape, model specs and models, losses, optimizers, datasets and
/// batches, `fit` / `evaluate` / `predict` with their settings, results and
/// callbacks.
///
/// Names that two crates use for different things are left out (reach them through
/// their module): nn-data's dataset targets are [`Targets`](crate::data::Targets)
/// here, the loss's borrowed view of them [`LossTargets`](crate::layers::loss::LossTargets);
/// the two `Reduction`s (autograd's and the losses'), the two `ParamKind`s (layers'
/// and the optimizers'), and the crates' `Result` aliases are not imported.
pub mod prelude {
    pub use nn_tensor::random::seeded_rng;
    pub use nn_tensor::{Tensor, TensorError};

    pub use nn_autograd::{gradcheck, AutogradError, Gradients, Graph, Var};

    pub use nn_layers::loss::{Loss, LossTargets};
    pub use nn_layers::{
        Activation, ForwardCtx, InputSpec, LayerError, LayerSpec, Mode, Model, ModelSpec, NodeSpec, Parameter,
        Sequential,
    };

    pub use nn_optim::{
        bind, clip_grad_norm, Adagrad, AdagradConfig, Adam, AdamConfig, LrSchedule, OptimError, Optimizer,
        OptimizerConfig, ParamRules, Regularizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
    };

    pub use nn_data::{Batch, Batcher, DataError, Dataset, Granularity, Scaler, Targets};

    pub use nn_train::{
        evaluate, fit, predict, Callback, CsvLogger, EarlyStopping, EpochLog, Evaluation, FitConfig, History,
        ModelCheckpoint, Predictions, ReduceLrOnPlateauCallback, TerminateOnNaN, TrainError, Verbosity,
    };
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;

    /// The prelude's names resolve to one item each, and both target types exist
    /// under distinct names.
    #[test]
    fn prelude_names_are_distinct() {
        let data_targets = Targets::classes(vec![0, 1], 2).unwrap();
        let labels = data_targets.labels().unwrap().to_vec();
        let loss_targets: LossTargets<'_> = LossTargets::Classes(&labels);
        assert!(matches!(loss_targets, LossTargets::Classes(l) if l == [0, 1]));
        let spec = ModelSpec::new(&[2], vec![LayerSpec::dense(2, Activation::Softmax)]);
        let model: Sequential = Model::new(spec, 0).unwrap();
        assert_eq!(model.output_shape(), [2]);
    }
}
