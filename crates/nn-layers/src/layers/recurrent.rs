//! Recurrent layers: SimpleRNN, LSTM and GRU (Keras semantics and defaults), each
//! running the whole sequence as one graph op from [`crate::rnn`].
//!
//! The serde settings ([`SimpleRnnConfig`], [`LstmConfig`], [`GruConfig`]) live here
//! too; `crate::spec` re-exports them.

use nn_autograd::{Graph, Var};
use nn_tensor::random::Rng;
use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Serialize};

use super::{layer_accessors, Meta};
use crate::error::Result;
use crate::init::{Fans, Initializer};
use crate::module::{check_param_count, ForwardCtx, Layer, ParamKind, ParamSpec};
use crate::spec::{yes, zeros};

fn orthogonal() -> Initializer {
    Initializer::Orthogonal
}

/// Settings shared by the recurrent layers' serde forms (Keras's names and defaults).
macro_rules! recurrent_setters {
    () => {
        /// Sets whether every step's output is returned (`[batch, time, units]`) or
        /// only the last one (`[batch, units]`).
        pub fn with_return_sequences(mut self, return_sequences: bool) -> Self {
            self.return_sequences = return_sequences;
            self
        }
        /// Sets whether the final states are returned too (see the layer's
        /// `forward_with_state`).
        pub fn with_return_state(mut self, return_state: bool) -> Self {
            self.return_state = return_state;
            self
        }
        /// Sets whether biases are used.
        pub fn with_bias(mut self, use_bias: bool) -> Self {
            self.use_bias = use_bias;
            self
        }
        /// Sets the input kernel's initializer.
        pub fn with_kernel_initializer(mut self, init: Initializer) -> Self {
            self.kernel_initializer = init;
            self
        }
        /// Sets the recurrent kernel's initializer.
        pub fn with_recurrent_initializer(mut self, init: Initializer) -> Self {
            self.recurrent_initializer = init;
            self
        }
        /// Sets the bias initializer.
        pub fn with_bias_initializer(mut self, init: Initializer) -> Self {
            self.bias_initializer = init;
            self
        }
    };
}

/// Settings of a SimpleRNN layer (Keras's `SimpleRNN`; tanh activation):
/// `h_t = tanh(x_t · kernel + h_{t−1} · recurrent_kernel + bias)` (Elman, 1990).
///
/// # Shapes
/// `x: [batch, time, features]` → `[batch, units]`, or `[batch, time, units]` with
/// `return_sequences`; `kernel: [features, units]`, `recurrent_kernel: [units, units]`,
/// `bias: [units]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimpleRnnConfig {
    /// State size (`units`), at least 1.
    pub units: usize,
    /// Return every step's state instead of the last. Default false.
    #[serde(default)]
    pub return_sequences: bool,
    /// Also return the final state (only through `forward_with_state`; a
    /// [`Sequential`](crate::Sequential) model refuses it). Default false.
    #[serde(default)]
    pub return_state: bool,
    /// Default true.
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Default `glorot_uniform`.
    #[serde(default)]
    pub kernel_initializer: Initializer,
    /// Default `orthogonal`.
    #[serde(default = "orthogonal")]
    pub recurrent_initializer: Initializer,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
}

impl SimpleRnnConfig {
    /// `units` state size, Keras's defaults otherwise.
    pub fn new(units: usize) -> Self {
        SimpleRnnConfig {
            units,
            return_sequences: false,
            return_state: false,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            recurrent_initializer: Initializer::Orthogonal,
            bias_initializer: Initializer::Zeros,
        }
    }
    recurrent_setters!();
}

/// Settings of an LSTM layer (Keras's `LSTM`: tanh activation, sigmoid recurrent
/// activation). Gate equations in [`rnn::lstm`](crate::rnn::lstm).
///
/// # Shapes
/// `x: [batch, time, features]` → `[batch, units]`, or `[batch, time, units]` with
/// `return_sequences`; `kernel: [features, 4·units]`, `recurrent_kernel:
/// [units, 4·units]` and `bias: [4·units]` with the gate blocks in Keras's order
/// `i, f, c̃, o`. Parameters: `4·(features·units + units² + units)`, e.g. 80,384 for
/// LSTM(128) over 28 features.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LstmConfig {
    /// State size (`units`), at least 1.
    pub units: usize,
    /// Return every step's `h` instead of the last. Default false.
    #[serde(default)]
    pub return_sequences: bool,
    /// Also return the final `h` and `c` (only through `forward_with_state`; a
    /// [`Sequential`](crate::Sequential) model refuses it). Default false.
    #[serde(default)]
    pub return_state: bool,
    /// Default true.
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Initialise the forget gate's bias to 1 (Jozefowicz et al., "An empirical
    /// exploration of recurrent network architectures", ICML 2015), the other gates'
    /// with `bias_initializer`. Default true, as Keras.
    #[serde(default = "yes")]
    pub unit_forget_bias: bool,
    /// Default `glorot_uniform`.
    #[serde(default)]
    pub kernel_initializer: Initializer,
    /// Default `orthogonal`.
    #[serde(default = "orthogonal")]
    pub recurrent_initializer: Initializer,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
}

impl LstmConfig {
    /// `units` state size, Keras's defaults otherwise.
    pub fn new(units: usize) -> Self {
        LstmConfig {
            units,
            return_sequences: false,
            return_state: false,
            use_bias: true,
            unit_forget_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            recurrent_initializer: Initializer::Orthogonal,
            bias_initializer: Initializer::Zeros,
        }
    }
    recurrent_setters!();
    /// Sets whether the forget gate's bias starts at 1.
    pub fn with_unit_forget_bias(mut self, unit_forget_bias: bool) -> Self {
        self.unit_forget_bias = unit_forget_bias;
        self
    }
}

/// Settings of a GRU layer (Keras's `GRU` with its defaults: tanh activation, sigmoid
/// recurrent activation, `reset_after: true`). Gate equations in
/// [`rnn::gru`](crate::rnn::gru).
///
/// # Shapes
/// `x: [batch, time, features]` → `[batch, units]`, or `[batch, time, units]` with
/// `return_sequences`; `kernel: [features, 3·units]` and `recurrent_kernel:
/// [units, 3·units]` with the gate blocks in Keras's order `z, r, h̃`; `bias:
/// [2, 3·units]` (input bias, recurrent bias). Parameters:
/// `3·(features·units + units² + 2·units)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GruConfig {
    /// State size (`units`), at least 1.
    pub units: usize,
    /// Return every step's state instead of the last. Default false.
    #[serde(default)]
    pub return_sequences: bool,
    /// Also return the final state (only through `forward_with_state`; a
    /// [`Sequential`](crate::Sequential) model refuses it). Default false.
    #[serde(default)]
    pub return_state: bool,
    /// Default true.
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Apply the reset gate after the recurrent product (the only form supported;
    /// `false`, the original Cho et al. form, is refused when the layer is built).
    /// Default true, as Keras.
    #[serde(default = "yes")]
    pub reset_after: bool,
    /// Default `glorot_uniform`.
    #[serde(default)]
    pub kernel_initializer: Initializer,
    /// Default `orthogonal`.
    #[serde(default = "orthogonal")]
    pub recurrent_initializer: Initializer,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
}

impl GruConfig {
    /// `units` state size, Keras's defaults otherwise.
    pub fn new(units: usize) -> Self {
        GruConfig {
            units,
            return_sequences: false,
            return_state: false,
            use_bias: true,
            reset_after: true,
            kernel_initializer: Initializer::GlorotUniform,
            recurrent_initializer: Initializer::Orthogonal,
            bias_initializer: Initializer::Zeros,
        }
    }
    recurrent_setters!();
}

/// What a recurrent layer returns from
/// [`forward_with_state`](LSTM::forward_with_state), as Keras's `return_state`
/// does: the output, then the final states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurrentOutput {
    /// `[batch, units]` (the last state), or `[batch, time, units]` with
    /// `return_sequences`.
    pub output: Var,
    /// The final states, each `[batch, units]`: `[h_T]` for SimpleRNN and GRU,
    /// `[h_T, c_T]` for LSTM. Empty unless `return_state` is set.
    pub states: Vec<Var>,
}

/// The settings every recurrent layer shares, read from its config.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Common {
    units: usize,
    return_sequences: bool,
    return_state: bool,
    use_bias: bool,
    kernel_initializer: Initializer,
    recurrent_initializer: Initializer,
    bias_initializer: Initializer,
}

/// Checks `input_shape = [time, features]`, declares `kernel [features, gates·units]`,
/// `recurrent_kernel [units, gates·units]` and `bias` (of `bias_shape`) and sets the
/// output shape. Returns the number of time steps.
fn declare(meta: &mut Meta, c: Common, gates: usize, bias_shape: Vec<usize>) -> Result<usize> {
    let [time, features] = meta.input_shape[..] else {
        return Err(meta.shape_error("[time, features] (2 axes; add a Reshape layer for images)"));
    };
    if c.units == 0 {
        return Err(meta.config_error("units must be at least 1, got 0"));
    }
    let width = gates * c.units;
    meta.params.push(ParamSpec {
        kind: ParamKind::Kernel,
        shape: vec![features, width],
        trainable: true,
        initializer: c.kernel_initializer,
        fans: Fans::dense(features, width),
    });
    meta.params.push(ParamSpec {
        kind: ParamKind::RecurrentKernel,
        shape: vec![c.units, width],
        trainable: true,
        initializer: c.recurrent_initializer,
        fans: Fans::dense(c.units, width),
    });
    if c.use_bias {
        meta.params.push(ParamSpec {
            kind: ParamKind::Bias,
            fans: Fans::of_shape(&bias_shape),
            shape: bias_shape,
            trainable: true,
            initializer: c.bias_initializer,
        });
    }
    meta.output_shape = if c.return_sequences { vec![time, c.units] } else { vec![c.units] };
    Ok(time)
}

/// Zero initial states, or the given ones after checking their number.
fn initial_states<T: Element>(
    meta: &Meta,
    g: &mut Graph<T>,
    x: Var,
    units: usize,
    count: usize,
    given: Option<&[Var]>,
) -> Result<Vec<Var>> {
    match given {
        Some(s) if s.len() == count => Ok(s.to_vec()),
        Some(s) => Err(meta.config_error(format!("expects {count} initial state(s), got {}", s.len()))),
        None => {
            let batch = g.try_value(x)?.shape().first().copied().unwrap_or(0);
            Ok((0..count).map(|_| g.constant(Tensor::zeros(&[batch, units]))).collect())
        }
    }
}

/// From the op's `[batch, time, width]` states (`h_t` in columns `offset..offset +
/// units`), the last one as `[batch, units]`.
fn last_state<T: Element>(g: &mut Graph<T>, states: Var, offset: usize, units: usize) -> Result<Var> {
    let shape = g.try_value(states)?.shape().to_vec();
    let (batch, time, width) = (shape[0], shape[1], shape[2]);
    let mut last = g.try_slice(states, 1, time - 1, time)?;
    if width != units {
        last = g.try_slice(last, 2, offset, offset + units)?;
    }
    Ok(g.try_reshape(last, &[batch, units])?)
}

/// The output and (with `return_state`) the final states from the op's states.
fn outputs<T: Element>(c: Common, g: &mut Graph<T>, states: Var, cell_state: bool) -> Result<RecurrentOutput> {
    let u = c.units;
    let h_last = if !c.return_sequences || c.return_state { Some(last_state(g, states, 0, u)?) } else { None };
    let output = if c.return_sequences {
        if cell_state {
            g.try_slice(states, 2, 0, u)?
        } else {
            states
        }
    } else {
        h_last.expect("computed without return_sequences")
    };
    let mut out_states = Vec::new();
    if c.return_state {
        out_states.push(h_last.expect("computed with return_state"));
        if cell_state {
            out_states.push(last_state(g, states, u, u)?);
        }
    }
    Ok(RecurrentOutput { output, states: out_states })
}

/// Refuses `return_state` inside a [`Sequential`](crate::Sequential) model, which
/// passes one tensor from layer to layer.
pub(crate) fn refuse_return_state(meta: &Meta, return_state: bool) -> Result<()> {
    if return_state {
        return Err(meta.config_error(
            "return_state gives several outputs, which a Sequential model cannot pass on; \
             build the layer alone and call forward_with_state",
        ));
    }
    Ok(())
}

macro_rules! recurrent_layer {
    ($name:ident, $config:ty, $kind:literal, $gates:expr, $bias:expr, $nstates:expr) => {
        impl $name {
            pub(crate) fn new(mut meta: Meta, config: $config) -> Result<Self> {
                let common = Common {
                    units: config.units,
                    return_sequences: config.return_sequences,
                    return_state: config.return_state,
                    use_bias: config.use_bias,
                    kernel_initializer: config.kernel_initializer,
                    recurrent_initializer: config.recurrent_initializer,
                    bias_initializer: config.bias_initializer,
                };
                Self::validate(&meta, &config)?;
                let bias_shape: fn(usize) -> Vec<usize> = $bias;
                declare(&mut meta, common, $gates, bias_shape(config.units))?;
                Ok($name { meta, config, common })
            }

            /// Builds the layer on its own (as layer 0) for per-sample input
            /// `[time, features]`, e.g. to call
            #[doc = concat!("[`", stringify!($name), "::forward_with_state`].")]
            ///
            /// # Errors
            /// [`LayerError::BuildShape`](crate::LayerError::BuildShape) for an input shape that is not
            /// `[time, features]`; [`LayerError::InvalidConfig`](crate::LayerError::InvalidConfig) for zero units.
            pub fn build(config: $config, input_shape: &[usize]) -> Result<Self> {
                Self::new(Meta::new(0, $kind, input_shape), config)
            }

            /// The settings.
            pub fn config(&self) -> &$config {
                &self.config
            }

            /// Runs the layer on `x: [batch, time, features]` from the given initial
            /// states (each `[batch, units]`;
            #[doc = concat!(stringify!($nstates), " of them) or from zeros, returning the output and, with")]
            /// `return_state`, the final states (Keras's `initial_state` and
            /// `return_state`). `params` as for [`Layer::forward`].
            ///
            /// # Errors
            /// As [`Layer::forward`]; [`LayerError::InvalidConfig`](crate::LayerError::InvalidConfig) for the wrong
            /// number of initial states.
            pub fn forward_with_state<T: Element>(
                &self,
                g: &mut Graph<T>,
                x: Var,
                params: &[Var],
                initial_state: Option<&[Var]>,
            ) -> Result<RecurrentOutput> {
                check_param_count::<T>(self, params)?;
                let states = initial_states(&self.meta, g, x, self.common.units, $nstates, initial_state)?;
                self.run(g, x, params, &states)
            }
        }

        impl<T: Element> Layer<T> for $name {
            layer_accessors!();

            fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
                Ok(self.forward_with_state(g, x, params, None)?.output)
            }

            fn init_parameter(&self, k: usize, rng: &mut Rng) -> Result<Tensor<T>> {
                let p = &self.meta.params[k];
                let mut value = p.initializer.init::<T>(&p.shape, p.fans, rng)?;
                self.adjust_initial(p.kind, &mut value);
                Ok(value)
            }
        }
    };
}

/// Elman recurrent layer (Keras's `SimpleRNN`, tanh):
/// `h_t = tanh(x_t · kernel + h_{t−1} · recurrent_kernel + bias)`, `h_0 = 0` unless
/// given ([`rnn::simple_rnn`](crate::rnn::simple_rnn)).
///
/// # Shapes
/// - input: `[batch, time, features]`
/// - `kernel: [features, units]` (Glorot uniform), `recurrent_kernel: [units, units]`
///   (orthogonal), `bias: [units]` (zeros), in that order
/// - output: `[batch, units]`, or `[batch, time, units]` with `return_sequences`
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::upper_case_acronyms)]
pub struct SimpleRNN {
    meta: Meta,
    config: SimpleRnnConfig,
    common: Common,
}

recurrent_layer!(SimpleRNN, SimpleRnnConfig, "SimpleRNN", 1, |u| vec![u], 1);

impl SimpleRNN {
    fn run<T: Element>(&self, g: &mut Graph<T>, x: Var, params: &[Var], states: &[Var]) -> Result<RecurrentOutput> {
        let seq = crate::rnn::simple_rnn(g, x, params[0], params[1], params.get(2).copied(), states[0])?;
        outputs(self.common, g, seq, false)
    }

    fn adjust_initial<T: Element>(&self, _kind: ParamKind, _value: &mut Tensor<T>) {}

    fn validate(_meta: &Meta, _config: &SimpleRnnConfig) -> Result<()> {
        Ok(())
    }
}

/// Long short-term memory (Keras's `LSTM`: tanh, sigmoid gates `i, f, c̃, o`; gate
/// equations in [`rnn::lstm`](crate::rnn::lstm)); `h_0 = c_0 = 0` unless given.
/// With `unit_forget_bias` (the default) the forget gate's bias starts at 1.
///
/// # Shapes
/// - input: `[batch, time, features]`
/// - `kernel: [features, 4·units]` (Glorot uniform), `recurrent_kernel:
///   [units, 4·units]` (orthogonal), `bias: [4·units]`, gate blocks `i, f, c̃, o`
/// - output: `[batch, units]`, or `[batch, time, units]` with `return_sequences`
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::upper_case_acronyms)]
pub struct LSTM {
    meta: Meta,
    config: LstmConfig,
    common: Common,
}

recurrent_layer!(LSTM, LstmConfig, "LSTM", 4, |u| vec![4 * u], 2);

impl LSTM {
    fn run<T: Element>(&self, g: &mut Graph<T>, x: Var, params: &[Var], states: &[Var]) -> Result<RecurrentOutput> {
        let (bias, u) = (params.get(2).copied(), self.common.units);
        if self.common.return_sequences {
            let seq = crate::rnn::lstm(g, x, params[0], params[1], bias, states[0], states[1])?;
            return outputs(self.common, g, seq, true);
        }
        // Only the last step: [h_T, c_T] straight from the op.
        let last = crate::rnn::lstm_last(g, x, params[0], params[1], bias, states[0], states[1])?;
        let h = g.try_slice(last, 1, 0, u)?;
        let states = if self.common.return_state { vec![h, g.try_slice(last, 1, u, 2 * u)?] } else { Vec::new() };
        Ok(RecurrentOutput { output: h, states })
    }

    fn adjust_initial<T: Element>(&self, kind: ParamKind, value: &mut Tensor<T>) {
        if kind == ParamKind::Bias && self.config.unit_forget_bias {
            let u = self.config.units;
            let v = value.as_slice_mut().expect("freshly drawn, contiguous");
            v[u..2 * u].iter_mut().for_each(|b| *b = T::one());
        }
    }

    fn validate(_meta: &Meta, _config: &LstmConfig) -> Result<()> {
        Ok(())
    }
}

/// Gated recurrent unit (Keras's `GRU` with `reset_after: true`: tanh, sigmoid gates
/// `z, r, h̃`; gate equations in [`rnn::gru`](crate::rnn::gru)); `h_0 = 0` unless
/// given.
///
/// # Shapes
/// - input: `[batch, time, features]`
/// - `kernel: [features, 3·units]` (Glorot uniform), `recurrent_kernel:
///   [units, 3·units]` (orthogonal), `bias: [2, 3·units]` (input bias, then
///   recurrent bias), gate blocks `z, r, h̃`
/// - output: `[batch, units]`, or `[batch, time, units]` with `return_sequences`
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::upper_case_acronyms)]
pub struct GRU {
    meta: Meta,
    config: GruConfig,
    common: Common,
}

recurrent_layer!(GRU, GruConfig, "GRU", 3, |u| vec![2, 3 * u], 1);

impl GRU {
    fn run<T: Element>(&self, g: &mut Graph<T>, x: Var, params: &[Var], states: &[Var]) -> Result<RecurrentOutput> {
        let seq = crate::rnn::gru(g, x, params[0], params[1], params.get(2).copied(), states[0])?;
        outputs(self.common, g, seq, false)
    }

    fn adjust_initial<T: Element>(&self, _kind: ParamKind, _value: &mut Tensor<T>) {}

    fn validate(meta: &Meta, config: &GruConfig) -> Result<()> {
        if !config.reset_after {
            return Err(meta.config_error(
                "reset_after: false (the original Cho et al. form) is not supported; use Keras's default reset_after: true",
            ));
        }
        Ok(())
    }
}
