//! The traits and types every layer and model shares: [`Mode`], [`ForwardCtx`] (with
//! its [`CrossReplicaSum`]), [`Parameter`], [`ParamKind`], [`ParamSpec`], [`Layer`]
//! and [`Module`].

use std::sync::Arc;

use nn_autograd::{Graph, Var};
use nn_tensor::random::Rng;
use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{LayerError, Result};
use crate::init::{Fans, Initializer};

/// Whether a forward pass trains or evaluates. It is always an explicit argument
/// (through [`ForwardCtx`]), never hidden state: Dropout and BatchNormalization
/// behave differently in the two modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Training: Dropout drops, BatchNormalization uses batch statistics and emits
    /// moving-statistic updates.
    Train,
    /// Evaluation and prediction: Dropout is the identity, BatchNormalization uses its
    /// moving statistics.
    Eval,
}

/// A sum across the ranks of a data-parallel group, for layers whose training-mode
/// forward needs statistics of the whole (global) batch rather than of the rank's
/// share: synchronised BatchNormalization (see
/// [`BatchNormalization`](crate::layers::BatchNormalization)). nn-layers knows
/// nothing of the transport; the trainer implements this over its collective (MPI,
/// threads) and hands it to the layers through [`ForwardCtx::cross_replica`].
///
/// # Contract
/// Every rank calls [`sum_f64`](CrossReplicaSum::sum_f64) the same number of times,
/// in the same order, with buffers of the same length; afterwards every rank's buffer
/// holds the element-wise sum over all ranks, with the **same bits on every rank**
/// (sum in an order that does not depend on the rank), so that every rank computes the
/// same normalisation and the same moving-statistic updates. A layer calls it during
/// forward and, for an op whose backward needs global sums, again during backward, so
/// every rank must run the same forward passes and the same backward passes.
pub trait CrossReplicaSum: Send + Sync + std::fmt::Debug {
    /// Replaces `values` on every rank by the element-wise sum over all ranks.
    ///
    /// # Errors
    /// A message when the transport fails or the ranks' lengths differ (where the
    /// implementation can see it); layers wrap it in their own error.
    fn sum_f64(&self, values: &mut [f64]) -> std::result::Result<(), String>;
}

/// Per-forward context: the mode (explicit, STYLE item 12), the random generator for
/// Dropout masks, the state updates produced in training, and, in data-parallel
/// training, the [`CrossReplicaSum`] that synchronises BatchNormalization.
///
/// Forward passes take the model by `&self`, so a layer that must change its state in
/// training (BatchNormalization's moving mean and variance) pushes the new values
/// here as `(parameter name, new value)`; the caller applies them after the step with
/// [`Model::apply_state_updates`](crate::Model::apply_state_updates) (or
/// drops them, e.g. when a step is skipped).
pub struct ForwardCtx<'a, T: Element = f32> {
    /// Train or evaluate.
    pub mode: Mode,
    /// Draws Dropout masks (in [`Mode::Train`] only), in layer order, so the same seed
    /// gives the same masks.
    pub rng: &'a mut Rng,
    /// New values of non-trainable state, in the order the layers produced them.
    pub state_updates: Vec<(String, Tensor<T>)>,
    /// The sum across the ranks of a data-parallel group, `None` (the default) in a
    /// single process. When set, BatchNormalization in [`Mode::Train`] normalises with
    /// the mean and variance of the global batch (all ranks' shares together) and
    /// updates its moving statistics from them (synchronised batch normalization);
    /// other layers ignore it. See [`CrossReplicaSum`] for what every rank must do.
    pub cross_replica: Option<Arc<dyn CrossReplicaSum>>,
}

impl<'a, T: Element> ForwardCtx<'a, T> {
    /// A context for one forward pass in `mode`, with no state updates yet and no
    /// cross-replica sum (single-process statistics).
    pub fn new(mode: Mode, rng: &'a mut Rng) -> Self {
        ForwardCtx { mode, rng, state_updates: Vec::new(), cross_replica: None }
    }

    /// Sets the cross-replica sum, which makes BatchNormalization synchronised in
    /// training (see [`ForwardCtx::cross_replica`]).
    pub fn with_cross_replica(mut self, sum: Arc<dyn CrossReplicaSum>) -> Self {
        self.cross_replica = Some(sum);
        self
    }

    /// Whether the mode is [`Mode::Train`].
    pub fn is_training(&self) -> bool {
        self.mode == Mode::Train
    }
}

impl<T: Element> std::fmt::Debug for ForwardCtx<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardCtx")
            .field("mode", &self.mode)
            .field("state_updates", &self.state_updates.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>())
            .field("cross_replica", &self.cross_replica)
            .finish()
    }
}

/// What a parameter is. It decides the default initializer, whether optimizers
/// update it and whether weight penalties apply (see nn-optim's `ParamKind`, which
/// reads the same Keras names), and how summaries count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// A weight matrix or filter bank (Dense `[in_features, out_features]`, Conv2D
    /// `[kernel_h, kernel_w, in_channels, filters]`).
    Kernel,
    /// An additive bias `[out_features]` or `[filters]`.
    Bias,
    /// BatchNormalization's scale γ `[features]`.
    Gamma,
    /// BatchNormalization's offset β `[features]`.
    Beta,
    /// BatchNormalization's moving mean `[features]` (state, not trained).
    MovingMean,
    /// BatchNormalization's moving variance `[features]` (state, not trained).
    MovingVariance,
    /// An Embedding table `[input_dim, output_dim]`.
    Embeddings,
    /// A recurrent layer's hidden-to-hidden weights (reserved for recurrent layers).
    RecurrentKernel,
    /// A LoRA adapter's down-projection `A: [in_features, rank]` (see
    /// [`LoraConfig`](crate::LoraConfig)).
    LoraA,
    /// A LoRA adapter's up-projection `B: [rank, out_features]`.
    LoraB,
}

impl ParamKind {
    /// The Keras weight name, which is also the last part of the parameter's name:
    /// `kernel`, `bias`, `gamma`, `beta`, `moving_mean`, `moving_variance`,
    /// `embeddings`, `recurrent_kernel`, `lora_a`, `lora_b`.
    pub fn keras_name(self) -> &'static str {
        match self {
            ParamKind::Kernel => "kernel",
            ParamKind::Bias => "bias",
            ParamKind::Gamma => "gamma",
            ParamKind::Beta => "beta",
            ParamKind::MovingMean => "moving_mean",
            ParamKind::MovingVariance => "moving_variance",
            ParamKind::Embeddings => "embeddings",
            ParamKind::RecurrentKernel => "recurrent_kernel",
            ParamKind::LoraA => "lora_a",
            ParamKind::LoraB => "lora_b",
        }
    }

    /// Whether gradients train it by default: everything but moving statistics.
    pub fn is_trainable(self) -> bool {
        !matches!(self, ParamKind::MovingMean | ParamKind::MovingVariance)
    }
}

/// One parameter (or piece of state) of a model, living outside any graph.
///
/// The value sits in an [`Arc`] so that a forward pass binds it into the graph
/// without copying ([`Graph::param`] accepts `&Arc<Tensor>`); an optimizer updates it
/// after the graph is dropped with [`Arc::make_mut`], which then copies nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter<T: Element = f32> {
    /// Stable hierarchical name: `layers.{i}.{kind}` with the Keras weight names
    /// ([`ParamKind::keras_name`]), e.g. `layers.0.kernel`, `layers.3.moving_mean`.
    pub name: String,
    /// The value.
    pub value: Arc<Tensor<T>>,
    /// What it is.
    pub kind: ParamKind,
    /// Whether gradients are computed for it and an optimizer updates it: false for
    /// moving statistics, and for frozen layers (set it to false to fine-tune the
    /// rest). Non-trainable parameters are bound as graph constants.
    pub trainable: bool,
}

impl<T: Element> Parameter<T> {
    /// The value's shape.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// The number of scalars it holds.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether it holds no scalar.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

/// A parameter a layer declares when it is built: its local name (the Keras weight
/// name), shape, kind, whether it is trained, and how to initialise it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// What it is; [`ParamKind::keras_name`] is its local name.
    pub kind: ParamKind,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Whether it is trained by gradients (false for moving statistics).
    pub trainable: bool,
    /// How it is filled when a model is created.
    pub initializer: Initializer,
    /// The fan-in and fan-out its initializer uses, computed by the layer for its kind
    /// (see [`Fans`]).
    pub fans: Fans,
}

impl ParamSpec {
    /// Number of scalars.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it holds no scalar.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A max-pooling window, as the fusion planner hands it to the fused
/// Conv2D → MaxPool2D op (nn-autograd's [`Graph::try_conv2d_max_pool`]).
pub use nn_autograd::PoolWindow;

/// A built layer: its settings and the shapes inferred for it, but no parameter
/// values. Values live in the model ([`Parameter`]) and are handed to
/// [`Layer::forward`] as graph variables, in the order of [`Layer::param_specs`]; this
/// keeps layers immutable during a step and lets tests gradcheck a layer with respect
/// to its parameters by passing [`Graph::variable`] leaves.
///
/// All shapes here are per sample (without the batch axis).
pub trait Layer<T: Element = f32>: std::fmt::Debug + Send + Sync {
    /// The layer's kind, as Keras names the class (`"Dense"`, `"Conv2D"`, ...).
    fn kind(&self) -> &'static str;

    /// The layer's position in its model (in a chain, its parameters are named
    /// `layers.{index}.*`).
    fn index(&self) -> usize;

    /// The layer's name in a graph model (format version 2; its parameters are named
    /// `{name}.*`), `None` in a chain.
    fn name(&self) -> Option<&str>;

    /// The per-sample input shape the layer was built for.
    fn input_shape(&self) -> &[usize];

    /// The per-sample output shape.
    fn output_shape(&self) -> &[usize];

    /// The parameters the layer needs, in the order [`Layer::forward`] takes them.
    fn param_specs(&self) -> &[ParamSpec];

    /// Runs the layer on `x: [batch, ...input_shape]`, giving `[batch, ...output_shape]`.
    /// `params` holds one `Var` per [`Layer::param_specs`] entry, in that order.
    ///
    /// # Errors
    /// [`LayerError::Autograd`] when a graph operation refuses the shapes (the model
    /// checks shapes first, so this happens only when a layer is used alone),
    /// [`LayerError::InvalidInput`] for unusable input values,
    /// [`LayerError::InvalidConfig`] when `params` has the wrong length.
    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var>;

    /// Runs a layer on several inputs `[batch, ...input_shapes[k]]` (merge layers
    /// such as Add and Concatenate override it). The default takes exactly one input
    /// and runs [`Layer::forward`].
    ///
    /// # Errors
    /// As [`Layer::forward`]; [`LayerError::InvalidConfig`] for a number of inputs the
    /// layer does not take.
    fn forward_inputs(
        &self,
        g: &mut Graph<T>,
        inputs: &[Var],
        params: &[Var],
        ctx: &mut ForwardCtx<'_, T>,
    ) -> Result<Var> {
        match inputs {
            [x] => self.forward(g, *x, params, ctx),
            _ => Err(LayerError::InvalidConfig {
                index: self.index(),
                name: self.name().map(str::to_string),
                kind: self.kind(),
                message: format!("takes one input, got {}", inputs.len()),
            }),
        }
    }

    /// Whether the layer's last step is a softmax (a Softmax layer, or a Dense or
    /// Conv2D with `activation: "softmax"`).
    fn ends_with_softmax(&self) -> bool {
        false
    }

    /// As [`Layer::forward`], but without a final softmax (see
    /// [`Layer::ends_with_softmax`]): the logits.
    ///
    /// # Errors
    /// As [`Layer::forward`].
    fn forward_logits(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        self.forward(g, x, params, ctx)
    }

    /// The layer in evaluation mode on plain arrays, without a graph (the fast path
    /// of [`crate::Model::infer`]): the same values as [`Layer::forward`] in
    /// [`Mode::Eval`] (or [`Layer::forward_logits`] when `logits`), with `params` the
    /// layer's parameters in [`Layer::param_specs`] order. `None` when the layer has
    /// no such path (the default); the model then runs it on a no-grad graph.
    ///
    /// # Errors
    /// As [`Layer::forward`].
    fn infer(
        &self,
        _x: ndarray::ArrayViewD<'_, T>,
        _params: &[Parameter<T>],
        _logits: bool,
    ) -> Option<Result<Tensor<T>>> {
        None
    }

    /// The initial value of parameter `k` (an index into [`Layer::param_specs`]),
    /// drawn from `rng`. The default uses the parameter's [`Initializer`]; the LSTM
    /// overrides it to set the forget gate's bias to 1 (`unit_forget_bias`).
    ///
    /// # Errors
    /// [`LayerError::Tensor`] for unusable initializer settings.
    ///
    /// # Panics
    /// If `k` is not below the number of parameters.
    fn init_parameter(&self, k: usize, rng: &mut Rng) -> Result<Tensor<T>> {
        let p = &self.param_specs()[k];
        Ok(p.initializer.init::<T>(&p.shape, p.fans, rng)?)
    }

    /// The local name of parameter `k` (an index into [`Layer::param_specs`]); the
    /// model names it `{prefix}.{local name}`. The default is the Keras weight name of
    /// its kind ([`ParamKind::keras_name`]: `kernel`, `bias`, …); a layer holding
    /// several parameters of one kind overrides it with a dotted path, as Keras names
    /// the weights of its sublayers (MultiHeadAttention: `query.kernel`,
    /// `attention_output.bias`, …), so the last part is still the kind's name.
    ///
    /// # Panics
    /// If `k` is not below the number of parameters.
    fn param_name(&self, k: usize) -> String {
        self.param_specs()[k].kind.keras_name().to_string()
    }

    /// The parameter prefix: the name in a graph model, `layers.{index}` in a chain.
    fn prefix(&self) -> String {
        match self.name() {
            Some(name) => name.to_string(),
            None => format!("layers.{}", self.index()),
        }
    }
}

/// Checks that a layer received one `Var` per declared parameter.
pub(crate) fn check_param_count<T: Element>(layer: &dyn Layer<T>, params: &[Var]) -> Result<()> {
    let want = layer.param_specs().len();
    if params.len() != want {
        return Err(LayerError::InvalidConfig {
            index: layer.index(),
            name: layer.name().map(str::to_string),
            kind: layer.kind(),
            message: format!("forward expects {want} parameter variables, got {}", params.len()),
        });
    }
    Ok(())
}

/// Something that runs forward on a graph and owns named parameters: a model.
/// [`Model`](crate::Model) implements it; the training loop works on any
/// `Module`.
pub trait Module<T: Element = f32> {
    /// Runs the model on a batch `x` in the mode given by `ctx`, binding the
    /// trainable parameters into `g` as named parameters (so `g.backward` reports
    /// their gradients under their names) and the others as constants.
    ///
    /// # Errors
    /// [`LayerError::InputShape`] for a batch of the wrong shape,
    /// [`LayerError::Forward`] naming the layer that failed.
    fn forward(&self, g: &mut Graph<T>, x: Var, ctx: &mut ForwardCtx<'_, T>) -> Result<Var>;

    /// As [`Module::forward`], but without a final softmax, when the model
    /// [ends with one](Module::ends_with_softmax): the logits, for losses computed from
    /// logits. The default runs `forward`.
    ///
    /// # Errors
    /// As [`Module::forward`].
    fn forward_logits(&self, g: &mut Graph<T>, x: Var, ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        self.forward(g, x, ctx)
    }

    /// Whether the output is a softmax that [`Module::forward_logits`] leaves out.
    /// The default is false.
    fn ends_with_softmax(&self) -> bool {
        false
    }

    /// Every parameter, in a deterministic order (layer order, then each layer's
    /// declared order).
    fn parameters(&self) -> &[Parameter<T>];

    /// Every parameter, mutably (for optimizers and for freezing layers).
    fn parameters_mut(&mut self) -> &mut [Parameter<T>];

    /// Replaces state (BatchNormalization's moving statistics) with the values a
    /// training forward pass pushed into [`ForwardCtx::state_updates`].
    ///
    /// # Errors
    /// [`LayerError::UnknownParameter`] or [`LayerError::ParameterShape`]; nothing is
    /// changed then.
    fn apply_state_updates(&mut self, updates: Vec<(String, Tensor<T>)>) -> Result<()>;

    /// `(trainable, non-trainable)` scalar counts.
    fn num_parameters(&self) -> (usize, usize) {
        self.parameters().iter().fold((0, 0), |(t, n), p| if p.trainable { (t + p.len(), n) } else { (t, n + p.len()) })
    }
}
