//! [`Model`]: a graph of named layers built from a [`ModelSpec`]; [`Sequential`] is
//! the same type, for the chains of format version 1.
//!
//! Building a model resolves every layer's inputs (earlier layers or model inputs),
//! infers every shape, refuses bad graphs with one message naming the layer and the
//! shapes (duplicate names, unknown references, cycles, unused layers or inputs,
//! shapes that do not agree at a merge), creates the parameters in layer order, and
//! plans fusion once ([`plan`]).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use ndarray::{ArrayViewD, CowArray, IxDyn};
use nn_autograd::{Graph, Var};
use nn_tensor::random::{seeded_rng, Rng};
use nn_tensor::{Element, Tensor};

use crate::error::{clip, LayerError, Result};
use crate::module::{ForwardCtx, Layer, Mode, Module, Parameter};

pub(crate) mod footprint;
pub(crate) mod plan;
pub mod spec;
mod transformer;

pub use footprint::{
    format_bytes, machine_memory, parse_memory_size, Footprint, LayerShape, MachineMemory, ModelShapes, StepMemory,
};
use plan::{GraphView, Stage};
pub use spec::{InputSpec, ModelSpec, NodeSpec, FORMAT_VERSION, MAX_NAME_LEN};
pub use transformer::{SequencePooling, TransformerBlockConfig, TRANSFORMER_LN_EPSILON};

/// Where a layer's input (or a model's output) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The model's input `k` (in [`ModelSpec::input_specs`] order).
    Input(usize),
    /// The output of layer `i` (in spec order).
    Layer(usize),
}

/// Most layers a model may have.
pub const MAX_LAYERS: usize = 10_000;

/// Most parameter scalars [`Model::new`] accepts (2^31, 8 GiB of `f32`); see
/// [`Model::with_limit`] for another bound.
pub const MAX_PARAMETERS: usize = 1 << 31;

/// A model: a graph of layers built from a [`ModelSpec`] (so it is plain data: JSON
/// in, JSON out). A chain (format version 1, or a version-2 spec without `inputs`
/// keys) is the common case, and [`Sequential`] names the same type for it.
///
/// Building infers every layer's shapes from the declared per-sample input shapes and
/// reports a mismatch then, naming the layer (its index in a chain, its name in a
/// graph), its kind, and the expected and actual shapes. Parameters live in the model
/// as [`Parameter`]s (values in `Arc`s), named `layers.{i}.{kind}` in a version-1
/// chain and `{layer name}.{kind}` in version 2, in layer order.
///
/// ```
/// use nn_layers::{ForwardCtx, Graph, Mode, ModelSpec, Sequential, Tensor};
/// use nn_tensor::random::seeded_rng;
///
/// let model = Sequential::<f32>::new(ModelSpec::seed_cnn(&[28, 28, 1], 10), 42)?;
/// assert_eq!(model.num_parameters(), (693_962, 0));
/// let mut g = Graph::no_grad();
/// let x = g.input(Tensor::zeros(&[2, 28, 28, 1]));
/// let mut rng = seeded_rng(0);
/// let y = model.forward(&mut g, x, &mut ForwardCtx::new(Mode::Eval, &mut rng))?;
/// assert_eq!(g.value(y).shape(), &[2, 10]);
/// # Ok::<(), nn_layers::LayerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Model<T: Element = f32> {
    spec: ModelSpec,
    inputs: Vec<InputSpec>,
    layers: Vec<Arc<dyn Layer<T>>>,
    /// Every layer's name (the given one, or the default `{kind}_{index}`).
    names: Vec<String>,
    /// Every layer's inputs.
    sources: Vec<Vec<Source>>,
    outputs: Vec<Source>,
    output_shapes: Vec<Vec<usize>>,
    /// Execution order (a topological order, ties broken by spec order).
    order: Vec<usize>,
    params: Vec<Parameter<T>>,
    /// `params[ranges[i]]` are layer `i`'s parameters.
    ranges: Vec<Range<usize>>,
    plan_fused: Vec<Stage>,
    plan_unfused: Vec<Stage>,
    infer_fused: Vec<Stage>,
    infer_unfused: Vec<Stage>,
    /// Whether the fused plan runs (see [`Model::set_fusion`]).
    fuse: bool,
}

/// A chain of layers: the same type as [`Model`], named for the models of format
/// version 1 (`Sequential::new(ModelSpec::new(input_shape, layers), seed)`).
pub type Sequential<T = f32> = Model<T>;

impl<T: Element> Model<T> {
    /// Builds the layers, infers every shape from the input shapes (per sample, e.g.
    /// `[28, 28, 1]` NHWC or `[64]`), plans fusion, and initialises the parameters
    /// from a ChaCha8 generator seeded with `seed`, drawing them in parameter order
    /// (the same seed gives the same weights on every machine).
    ///
    /// # Errors
    /// [`LayerError::Spec`] for an unsupported format version, an input shape with a
    /// zero dimension, and a bad graph: a duplicate or invalid name, an unknown
    /// reference, a cycle, a layer or input that nothing uses, no layers;
    /// [`LayerError::BuildShape`] when a layer cannot take the shape it receives
    /// (naming the layer, its kind, and the expected and actual shapes);
    /// [`LayerError::InvalidConfig`] for unusable settings (naming the layer);
    /// [`LayerError::Tensor`] for unusable initializer settings.
    pub fn new(spec: ModelSpec, seed: u64) -> Result<Self> {
        Self::build(spec, Some(&mut seeded_rng(seed)))
    }

    /// As [`Model::new`], refusing (before allocating anything) a model of more than
    /// `max_parameters` parameter scalars.
    ///
    /// # Errors
    /// As [`Model::new`]; [`LayerError::Spec`] naming the count and the bound.
    pub fn with_limit(spec: ModelSpec, seed: u64, max_parameters: usize) -> Result<Self> {
        Self::build_limited(spec, Some(&mut seeded_rng(seed)), max_parameters)
    }

    /// Builds the model; fills parameters from `rng`, or with zeros when `None` (for
    /// loading, where every value is replaced).
    pub(crate) fn build(spec: ModelSpec, rng: Option<&mut Rng>) -> Result<Self> {
        Self::build_limited(spec, rng, MAX_PARAMETERS)
    }

    fn build_limited(spec: ModelSpec, mut rng: Option<&mut Rng>, max_parameters: usize) -> Result<Self> {
        let Resolved { inputs, layers, names, sources, outputs, order } = resolve::<T>(&spec, max_parameters)?;
        let mut params = Vec::new();
        let mut ranges = Vec::with_capacity(layers.len());
        for layer in &layers {
            let start = params.len();
            let prefix = layer.prefix();
            for (k, p) in layer.param_specs().iter().enumerate() {
                let value = match rng.as_deref_mut() {
                    Some(rng) => layer.init_parameter(k, rng)?,
                    None => Tensor::try_full(&p.shape, T::zero())?,
                };
                params.push(Parameter {
                    name: format!("{prefix}.{}", layer.param_name(k)),
                    value: Arc::new(value),
                    kind: p.kind,
                    trainable: p.trainable,
                });
            }
            ranges.push(start..params.len());
        }
        let output_shapes = outputs
            .iter()
            .map(|s| match *s {
                Source::Layer(i) => layers[i].output_shape().to_vec(),
                Source::Input(k) => inputs[k].shape.clone(),
            })
            .collect();
        let view = GraphView {
            specs: spec.layers.iter().map(|n| &n.layer).collect(),
            sources: &sources,
            outputs: &outputs,
            input_shapes: layers.iter().map(|l| l.input_shape()).collect(),
            order: &order,
        };
        let (plan_fused, plan_unfused) = (plan::plan(&view, true), plan::plan(&view, false));
        let (infer_fused, infer_unfused) = (plan::infer_plan(&view, true), plan::infer_plan(&view, false));
        Ok(Model {
            spec,
            inputs,
            layers,
            names,
            sources,
            outputs,
            output_shapes,
            order,
            params,
            ranges,
            plan_fused,
            plan_unfused,
            infer_fused,
            infer_unfused,
            fuse: true,
        })
    }

    /// The description the model was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The per-sample shape of the (first) input (without the batch axis).
    pub fn input_shape(&self) -> &[usize] {
        &self.inputs[0].shape
    }

    /// The model's inputs: names and per-sample shapes.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// The per-sample shape of the (first) output (without the batch axis), e.g. `[10]`.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shapes[0]
    }

    /// The per-sample shape of every output, in order.
    pub fn output_shapes(&self) -> &[Vec<usize>] {
        &self.output_shapes
    }

    /// The built layers, in spec order.
    pub fn layers(&self) -> &[Arc<dyn Layer<T>>] {
        &self.layers
    }

    /// Layer `index`'s name: the one given in the spec, or the default
    /// `{kind in snake case}_{index}` (e.g. `conv2d_0`).
    ///
    /// # Panics
    /// If `index` is not below the number of layers.
    pub fn layer_name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// The index of the layer named `name`.
    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Layer `index`'s inputs.
    ///
    /// # Panics
    /// If `index` is not below the number of layers.
    pub fn layer_inputs(&self, index: usize) -> &[Source] {
        &self.sources[index]
    }

    /// The model's outputs.
    pub fn outputs(&self) -> &[Source] {
        &self.outputs
    }

    /// The layers in the order they run (each after its inputs).
    pub fn execution_order(&self) -> &[usize] {
        &self.order
    }

    /// The prefix of layer `index`'s parameter names: `layers.{index}` in a version-1
    /// chain, the layer's name in a graph.
    ///
    /// # Panics
    /// If `index` is not below the number of layers.
    pub fn layer_prefix(&self, index: usize) -> String {
        self.layers[index].prefix()
    }

    /// Whether the model is a chain: each layer takes the one before it (the first
    /// the only input) and the last is the only output.
    pub fn is_chain(&self) -> bool {
        self.inputs.len() == 1
            && self.outputs == [Source::Layer(self.layers.len() - 1)]
            && self
                .sources
                .iter()
                .enumerate()
                .all(|(i, s)| *s == [if i == 0 { Source::Input(0) } else { Source::Layer(i - 1) }])
    }

    /// Layer `index`'s parameters.
    ///
    /// # Panics
    /// If `index` is not below the number of layers.
    pub fn layer_parameters(&self, index: usize) -> &[Parameter<T>] {
        &self.params[self.ranges[index].clone()]
    }

    /// Whether the (first) output layer ends with a softmax (a Softmax layer, an
    /// Activation layer with softmax, or a Dense/Conv2D with `activation: "softmax"`),
    /// which [`Model::forward_logits`] leaves out.
    pub fn ends_with_softmax(&self) -> bool {
        match self.outputs[0] {
            Source::Layer(i) => self.layers[i].ends_with_softmax(),
            Source::Input(_) => false,
        }
    }

    /// The number of stages the training plan runs: the number of layers when nothing
    /// is fused, fewer when the planner grouped layers (the seed CNN: 3 for 5 layers).
    pub fn planned_stages(&self) -> usize {
        if self.fuse {
            self.plan_fused.len()
        } else {
            self.plan_unfused.len()
        }
    }

    /// Whether [`Model::forward`] runs the fused plan (the default; see the fusion
    /// planner in `docs/ARCHITECTURE.md`). The results are the same either way; turning it off is for tests and
    /// benchmarks that compare the two paths.
    pub fn set_fusion(&mut self, fuse: bool) {
        self.fuse = fuse;
    }

    /// Checks a batch's shape for input `k`: `[batch ≥ 1, ...shape]`, and the batch
    /// size against `batch` when given.
    fn check_input(&self, k: usize, shape: &[usize], batch: Option<usize>) -> Result<()> {
        let want = &self.inputs[k].shape;
        if shape.len() != want.len() + 1
            || shape[1..] != want[..]
            || shape[0] == 0
            || batch.is_some_and(|b| b != shape[0])
        {
            return Err(LayerError::InputShape { expected: want.clone(), got: shape.to_vec() });
        }
        Ok(())
    }

    /// Binds layer `index`'s parameters into `g`: trainable ones as named parameters
    /// (shared through their `Arc`, no copy; reused when already bound in this graph),
    /// the others as constants.
    /// With `given`, the variables given for every parameter (in
    /// [`Model::parameters`] order) are used instead.
    fn bind(&self, g: &mut Graph<T>, index: usize, given: Option<&[Var]>) -> Result<Vec<Var>> {
        if let Some(given) = given {
            return Ok(given[self.ranges[index].clone()].to_vec());
        }
        self.params[self.ranges[index].clone()]
            .iter()
            .map(|p| {
                if p.trainable {
                    match g.param_var(&p.name) {
                        Some(v) => Ok(v),
                        None => Ok(g.try_param(&p.name, &p.value)?),
                    }
                } else {
                    Ok(g.constant(&p.value))
                }
            })
            .collect()
    }

    /// Wraps a layer's error with its index, name and kind.
    fn wrap(&self, i: usize) -> impl Fn(LayerError) -> LayerError + '_ {
        move |e| LayerError::Forward {
            index: i,
            name: self.layers[i].name().map(str::to_string),
            kind: self.layers[i].kind(),
            source: Box::new(e),
        }
    }

    /// Runs the model on one batch per input, giving one result per output. With
    /// `logits`, an output layer that ends with a softmax gives its logits instead.
    ///
    /// # Errors
    /// [`LayerError::InputShape`] when the number of inputs or a batch's shape is
    /// wrong (checked first; never a panic; all batches must have the same size);
    /// [`LayerError::Forward`] naming the layer that failed.
    pub fn forward_all(
        &self,
        g: &mut Graph<T>,
        xs: &[Var],
        ctx: &mut ForwardCtx<'_, T>,
        logits: bool,
    ) -> Result<Vec<Var>> {
        self.run_graph(g, xs, None, ctx, logits)
    }

    /// As [`Model::forward_all`], with the parameters taken from `params` (one `Var`
    /// per entry of [`Model::parameters`], in that order, each of that parameter's
    /// shape) instead of the model's values: the model as a function of its weights,
    /// for gradient checks and functional use (as PyTorch's `functional_call`).
    ///
    /// # Errors
    /// As [`Model::forward_all`]; [`LayerError::Spec`] when `params` has the wrong
    /// length.
    pub fn forward_with_parameters(
        &self,
        g: &mut Graph<T>,
        xs: &[Var],
        params: &[Var],
        ctx: &mut ForwardCtx<'_, T>,
        logits: bool,
    ) -> Result<Vec<Var>> {
        if params.len() != self.params.len() {
            return Err(LayerError::Spec {
                message: format!("the model has {} parameters, {} were given", self.params.len(), params.len()),
            });
        }
        self.run_graph(g, xs, Some(params), ctx, logits)
    }

    fn run_graph(
        &self,
        g: &mut Graph<T>,
        xs: &[Var],
        given: Option<&[Var]>,
        ctx: &mut ForwardCtx<'_, T>,
        logits: bool,
    ) -> Result<Vec<Var>> {
        if xs.len() != self.inputs.len() {
            return Err(LayerError::Spec {
                message: format!("the model takes {} inputs, {} were given", self.inputs.len(), xs.len()),
            });
        }
        let mut batch = None;
        for (k, &x) in xs.iter().enumerate() {
            let shape = g.try_value(x)?.shape().to_vec();
            self.check_input(k, &shape, batch)?;
            batch = Some(shape[0]);
        }
        let plan = if self.fuse { &self.plan_fused } else { &self.plan_unfused };
        let mut values: Vec<Option<Var>> = vec![None; self.layers.len()];
        let get = |values: &[Option<Var>], s: Source| match s {
            Source::Input(k) => xs[k],
            Source::Layer(j) => values[j].expect("plan runs inputs first"),
        };
        // How many more stages take each layer's value (outputs count once more, so
        // they are never released); at 0 the value is offered to Graph::release.
        let mut remaining = self.consumer_counts(plan);
        for &o in &self.outputs {
            // The inputs of an output layer that also feeds others: read again below.
            if let Source::Layer(i) = o {
                if self.has_consumer(i) {
                    for s in &self.sources[i] {
                        if let Source::Layer(j) = *s {
                            remaining[j] += 1;
                        }
                    }
                }
            }
        }
        for stage in plan {
            let first = stage.first_layer();
            let done = |g: &mut Graph<T>, values: &[Option<Var>], remaining: &mut [usize]| -> Result<()> {
                for s in &self.sources[first] {
                    let Source::Layer(j) = *s else { continue };
                    remaining[j] -= 1;
                    let Some(v) = values[j] else { continue };
                    // Another layer may hand on the same variable (Identity, or
                    // Dropout in evaluation): it is released only when none still needs it.
                    let in_use = values.iter().zip(remaining.iter()).any(|(w, &r)| r > 0 && *w == Some(v));
                    if remaining[j] == 0 && !in_use {
                        g.release(v)?;
                    }
                }
                Ok(())
            };
            match *stage {
                Stage::Layer(i) | Stage::Reshape(i) => {
                    let layer = &self.layers[i];
                    let params = self.bind(g, i, given).map_err(self.wrap(i))?;
                    let ins: Vec<Var> = self.sources[i].iter().map(|&s| get(&values, s)).collect();
                    let is_output = self.outputs.contains(&Source::Layer(i));
                    let v = if logits && is_output && layer.ends_with_softmax() && !self.has_consumer(i) {
                        layer.forward_logits(g, ins[0], &params, ctx)
                    } else {
                        layer.forward_inputs(g, &ins, &params, ctx)
                    }
                    .map_err(self.wrap(i))?;
                    values[i] = Some(v);
                    done(g, &values, &mut remaining)?;
                }
                Stage::ConvPool { conv, pool, flatten, window, .. } => {
                    let params = self.bind(g, conv, given).map_err(self.wrap(conv))?;
                    let x = get(&values, self.sources[conv][0]);
                    let c = self.conv_config(conv);
                    let bias = c.use_bias.then(|| params[1]);
                    let v = g
                        .try_conv2d_max_pool(
                            x,
                            params[0],
                            bias,
                            c.strides.pair(),
                            c.padding.into(),
                            c.activation.epilogue(),
                            window,
                            flatten.is_some(),
                        )
                        .map_err(|e| self.wrap(conv)(e.into()))?;
                    values[flatten.unwrap_or(pool)] = Some(v);
                    done(g, &values, &mut remaining)?;
                }
            }
        }
        // An output layer that also feeds other layers ran with its softmax; its
        // logits come from a second run of the layer.
        let mut outs = Vec::with_capacity(self.outputs.len());
        for &o in &self.outputs {
            let v = match o {
                Source::Layer(i) if logits && self.layers[i].ends_with_softmax() && self.has_consumer(i) => {
                    let params = self.bind(g, i, given).map_err(self.wrap(i))?;
                    let x = get(&values, self.sources[i][0]);
                    self.layers[i].forward_logits(g, x, &params, ctx).map_err(self.wrap(i))?
                }
                s => get(&values, s),
            };
            outs.push(v);
        }
        Ok(outs)
    }

    /// How many stages of `plan` take each layer's value, plus one for each model
    /// output it is.
    fn consumer_counts(&self, plan: &[Stage]) -> Vec<usize> {
        let mut counts = vec![0usize; self.layers.len()];
        for stage in plan {
            for s in &self.sources[stage.first_layer()] {
                if let Source::Layer(j) = *s {
                    counts[j] += 1;
                }
            }
        }
        for s in &self.outputs {
            if let Source::Layer(j) = *s {
                counts[j] += 1;
            }
        }
        counts
    }

    /// Whether another layer takes layer `i`'s output.
    fn has_consumer(&self, i: usize) -> bool {
        self.sources.iter().any(|s| s.contains(&Source::Layer(i)))
    }

    /// The settings of Conv2D layer `i` (a fused stage's first layer).
    fn conv_config(&self, i: usize) -> &crate::spec::Conv2DConfig {
        match &self.spec.layers[i].layer {
            crate::spec::LayerSpec::Conv2D(c) => c,
            other => unreachable!("the planner fuses only from a Conv2D, got {}", other.kind()),
        }
    }

    /// The single-input, single-output forward of [`Module`].
    fn run(&self, g: &mut Graph<T>, x: Var, ctx: &mut ForwardCtx<'_, T>, logits: bool) -> Result<Var> {
        self.require_single()?;
        Ok(self.forward_all(g, &[x], ctx, logits)?[0])
    }

    /// Refuses models with several inputs or outputs where one batch goes in and one
    /// result comes out.
    fn require_single(&self) -> Result<()> {
        if self.inputs.len() != 1 || self.outputs.len() != 1 {
            return Err(LayerError::Spec {
                message: format!(
                    "the model has {} and {}; this takes one of each (use forward_all)",
                    plural(self.inputs.len(), "input"),
                    plural(self.outputs.len(), "output")
                ),
            });
        }
        Ok(())
    }

    /// Runs the model on `x: [batch, ...input_shape]`, giving `[batch, ...output_shape]`,
    /// in the mode of `ctx`. Binds the parameters into `g` itself (trainable ones
    /// under their names, so `g.backward` reports their gradients; the others as
    /// constants). In [`Mode::Train`], BatchNormalization pushes its new moving
    /// statistics into `ctx.state_updates` (apply them with
    /// [`Model::apply_state_updates`]) and Dropout draws masks from `ctx.rng`.
    ///
    /// # Errors
    /// [`LayerError::InputShape`] when `x` is not `[batch ≥ 1, ...input_shape]`
    /// (checked first; never a panic); [`LayerError::Spec`] for a model with several
    /// inputs or outputs (use [`Model::forward_all`]); [`LayerError::Forward`] naming
    /// the layer that failed (e.g. an Embedding index out of range).
    pub fn forward(&self, g: &mut Graph<T>, x: Var, ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        self.run(g, x, ctx, false)
    }

    /// As [`Model::forward`], but stops before a final softmax (see
    /// [`Model::ends_with_softmax`]) and returns the logits, for losses computed
    /// from logits (numerically stable). Without a final softmax it equals `forward`.
    ///
    /// # Errors
    /// As [`Model::forward`].
    pub fn forward_logits(&self, g: &mut Graph<T>, x: Var, ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        self.run(g, x, ctx, true)
    }

    /// Predictions for a batch in evaluation mode on a no-grad graph:
    /// `x: [batch, ...input_shape]` → `[batch, ...output_shape]`.
    ///
    /// # Errors
    /// As [`Model::forward`].
    pub fn predict(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let mut g = Graph::no_grad();
        let xv = g.input(x);
        let mut rng = seeded_rng(0); // unused in evaluation
        let y = self.forward(&mut g, xv, &mut ForwardCtx::new(Mode::Eval, &mut rng))?;
        Ok(g.into_value(y)?)
    }

    /// Predictions in evaluation mode without a graph where the layers allow it:
    /// `x: [batch, ...input_shape]` → `[batch, ...output_shape]`, the same values as
    /// [`Model::forward`] in [`Mode::Eval`] (or [`Model::forward_logits`] when
    /// `logits`). Layers with a graph-free path ([`Layer::infer`]: Dense, Conv2D,
    /// fused Conv2D → MaxPool2D stages) run on plain arrays: `x` is read in place (a
    /// slice of a larger tensor is not copied), shape-only layers (Flatten, Reshape,
    /// Dropout) reshape without copying, a graph-free layer reads its input in place
    /// even when later layers still need it, and an intermediate is dropped once its
    /// last consumer has run. Any other layer runs on a no-grad graph of its own.
    ///
    /// # Errors
    /// [`LayerError::InputShape`] when `x` is not `[batch ≥ 1, ...input_shape]`;
    /// [`LayerError::Spec`] for a model with several inputs or outputs;
    /// [`LayerError::Forward`] naming the layer that failed.
    pub fn infer(&self, x: ArrayViewD<'_, T>, logits: bool) -> Result<Tensor<T>> {
        self.require_single()?;
        self.check_input(0, x.shape(), None)?;
        let batch = x.shape()[0];
        let plan = if self.fuse { &self.infer_fused } else { &self.infer_unfused };
        let mut remaining = self.consumer_counts(plan);
        let mut values: Vec<Option<CowArray<'_, T, IxDyn>>> = vec![None; self.layers.len()];
        let input = x;
        let take = take_value;
        for stage in plan {
            match *stage {
                Stage::Reshape(i) => {
                    let h = take(&mut values, &mut remaining, &input, self.sources[i][0]);
                    let mut target = vec![batch];
                    target.extend_from_slice(self.layers[i].output_shape());
                    values[i] = Some(reshape_cow(h, &target));
                }
                Stage::ConvPool { conv, pool, flatten, window, ref geometry } => {
                    let src = self.sources[conv][0];
                    let params = self.layer_parameters(conv);
                    let c = self.conv_config(conv);
                    let bias = c.use_bias.then(|| &*params[1].value);
                    let out = nn_autograd::conv2d_max_pool_value(
                        read_in_place(&values, &input, src),
                        &params[0].value,
                        bias,
                        geometry,
                        c.activation.epilogue(),
                        window,
                    )
                    .map_err(|e| self.wrap(conv)(e.into()))?;
                    done_reading(&mut values, &mut remaining, src);
                    let last = flatten.unwrap_or(pool);
                    let mut target = vec![batch];
                    target.extend_from_slice(self.layers[last].output_shape());
                    values[last] = Some(reshape_cow(CowArray::from(out.into_array()), &target));
                }
                Stage::Layer(i) => {
                    let layer = &self.layers[i];
                    let is_logits = logits && self.outputs.contains(&Source::Layer(i)) && !self.has_consumer(i);
                    if let [src] = self.sources[i][..] {
                        // A graph-free layer reads its input in place, even one that
                        // later stages still need (no copy).
                        let h = read_in_place(&values, &input, src);
                        if let Some(out) = layer.infer(h, self.layer_parameters(i), is_logits) {
                            let out = out.map_err(self.wrap(i))?;
                            done_reading(&mut values, &mut remaining, src);
                            values[i] = Some(CowArray::from(out.into_array()));
                            continue;
                        }
                    }
                    let ins: Vec<CowArray<'_, T, IxDyn>> =
                        self.sources[i].iter().map(|&s| take(&mut values, &mut remaining, &input, s)).collect();
                    let params = self.layer_parameters(i);
                    let direct = match ins.as_slice() {
                        [h] => layer.infer(h.view(), params, is_logits),
                        _ => None,
                    };
                    let out = match direct {
                        Some(out) => out.map_err(self.wrap(i))?,
                        None => {
                            let mut g = Graph::no_grad();
                            let vars: Vec<Var> =
                                ins.into_iter().map(|h| g.input(Tensor::from(h.into_owned()))).collect();
                            let bound = self.bind(&mut g, i, None).map_err(self.wrap(i))?;
                            let mut rng = seeded_rng(0); // unused in evaluation
                            let mut ctx = ForwardCtx::new(Mode::Eval, &mut rng);
                            let y = if is_logits {
                                layer.forward_logits(&mut g, vars[0], &bound, &mut ctx)
                            } else {
                                layer.forward_inputs(&mut g, &vars, &bound, &mut ctx)
                            }
                            .map_err(self.wrap(i))?;
                            g.into_value(y)?
                        }
                    };
                    values[i] = Some(CowArray::from(out.into_array()));
                }
            }
        }
        let out = match self.outputs[0] {
            Source::Layer(i) if logits && self.layers[i].ends_with_softmax() && self.has_consumer(i) => {
                // The output's value ran with softmax for its other consumers.
                let mut g = Graph::no_grad();
                let xv = g.input(Tensor::from(input.to_owned()));
                let mut rng = seeded_rng(0);
                let y = self.forward_logits(&mut g, xv, &mut ForwardCtx::new(Mode::Eval, &mut rng))?;
                return Ok(g.into_value(y)?);
            }
            Source::Layer(i) => values[i].take().expect("the output was computed").into_owned(),
            Source::Input(_) => input.to_owned(),
        };
        Ok(Tensor::from(out))
    }

    /// Every parameter, in a deterministic order: layer order, then each layer's
    /// order (kernel, bias; gamma, beta, moving_mean, moving_variance; embeddings).
    pub fn parameters(&self) -> &[Parameter<T>] {
        &self.params
    }

    /// Every parameter, mutably (optimizers update `value` with `Arc::make_mut`;
    /// set `trainable = false` to freeze one).
    pub fn parameters_mut(&mut self) -> &mut [Parameter<T>] {
        &mut self.params
    }

    /// The parameter named `name`, if any.
    pub fn parameter(&self, name: &str) -> Option<&Parameter<T>> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Replaces the value of parameter `name` (e.g. with a known kernel).
    ///
    /// # Errors
    /// [`LayerError::UnknownParameter`]; [`LayerError::ParameterShape`] when `value`'s
    /// shape differs from the parameter's.
    pub fn set_parameter(&mut self, name: &str, value: Tensor<T>) -> Result<()> {
        let p = self
            .params
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| LayerError::UnknownParameter { name: name.to_string() })?;
        if p.shape() != value.shape() {
            return Err(LayerError::ParameterShape {
                name: name.to_string(),
                expected: p.shape().to_vec(),
                got: value.shape().to_vec(),
            });
        }
        p.value = Arc::new(value.to_contiguous());
        Ok(())
    }

    /// Applies the state updates a training forward pass pushed into
    /// [`ForwardCtx::state_updates`] (BatchNormalization's moving statistics), in
    /// order: with several passes before one call, each parameter ends with the last
    /// value given for it. All updates are checked before any is applied.
    ///
    /// # Errors
    /// [`LayerError::UnknownParameter`] or [`LayerError::ParameterShape`]; the model
    /// is unchanged then.
    pub fn apply_state_updates(&mut self, updates: Vec<(String, Tensor<T>)>) -> Result<()> {
        let mut at = Vec::with_capacity(updates.len());
        for (name, value) in &updates {
            let i = self
                .params
                .iter()
                .position(|p| &p.name == name)
                .ok_or_else(|| LayerError::UnknownParameter { name: name.clone() })?;
            if self.params[i].shape() != value.shape() {
                return Err(LayerError::ParameterShape {
                    name: name.clone(),
                    expected: self.params[i].shape().to_vec(),
                    got: value.shape().to_vec(),
                });
            }
            at.push(i);
        }
        for (i, (_, value)) in at.into_iter().zip(updates) {
            self.params[i].value = Arc::new(value);
        }
        Ok(())
    }

    /// `(trainable, non-trainable)` scalar counts; for the seed CNN on 28×28×1 with
    /// 10 classes, `(693_962, 0)`.
    pub fn num_parameters(&self) -> (usize, usize) {
        Module::num_parameters(self)
    }
}

impl<T: Element> Module<T> for Model<T> {
    fn forward(&self, g: &mut Graph<T>, x: Var, ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        Model::forward(self, g, x, ctx)
    }

    fn forward_logits(&self, g: &mut Graph<T>, x: Var, ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        Model::forward_logits(self, g, x, ctx)
    }

    fn ends_with_softmax(&self) -> bool {
        Model::ends_with_softmax(self)
    }

    fn parameters(&self) -> &[Parameter<T>] {
        &self.params
    }

    fn parameters_mut(&mut self) -> &mut [Parameter<T>] {
        &mut self.params
    }

    fn apply_state_updates(&mut self, updates: Vec<(String, Tensor<T>)>) -> Result<()> {
        Model::apply_state_updates(self, updates)
    }
}

/// A spec resolved into layers (built from their settings and input shapes, no
/// parameter allocated) with every check of [`Model::new`] passed.
pub(crate) struct Resolved<T: Element> {
    pub(crate) inputs: Vec<InputSpec>,
    pub(crate) layers: Vec<Arc<dyn Layer<T>>>,
    pub(crate) names: Vec<String>,
    pub(crate) sources: Vec<Vec<Source>>,
    pub(crate) outputs: Vec<Source>,
    pub(crate) order: Vec<usize>,
}

/// Resolves `spec`: names, references, order, every layer built from its input
/// shapes, every shape and the parameter count checked (at most `max_parameters`),
/// all before anything of a parameter's or an activation's size is allocated.
pub(crate) fn resolve<T: Element>(spec: &ModelSpec, max_parameters: usize) -> Result<Resolved<T>> {
    spec.check_version()?;
    let spec_err = |message: String| LayerError::Spec { message };
    let inputs = spec.input_specs();
    if spec.layers.is_empty() {
        return Err(spec_err("the model has no layers".into()));
    }
    if spec.layers.len() > MAX_LAYERS {
        return Err(spec_err(format!("{} layers: at most {MAX_LAYERS} are supported", spec.layers.len())));
    }
    let graph = spec.format_version >= 2;
    let mut by_name: HashMap<String, Source> = HashMap::new();
    for (k, input) in inputs.iter().enumerate() {
        check_name(&input.name, "input")?;
        if input.shape.contains(&0) || input.shape.is_empty() && !spec.inputs.is_empty() {
            return Err(spec_err(format!(
                "input {:?} has shape {:?}: every axis must be at least 1",
                clip(&input.name),
                input.shape
            )));
        }
        let mut batch_of_one = vec![1];
        batch_of_one.extend_from_slice(&input.shape);
        if nn_tensor::shape::checked_numel("model input", &batch_of_one).is_err() {
            return Err(spec_err(format!(
                "input {:?} has shape {:?}: too many elements",
                clip(&input.name),
                input.shape
            )));
        }
        if by_name.insert(input.name.clone(), Source::Input(k)).is_some() {
            return Err(spec_err(format!("two inputs are named {:?}", clip(&input.name))));
        }
    }
    let mut names = Vec::with_capacity(spec.layers.len());
    for (i, node) in spec.layers.iter().enumerate() {
        let name = match &node.name {
            Some(n) => {
                check_name(n, "layer")?;
                n.clone()
            }
            None => format!("{}_{i}", spec::snake_case(node.layer.kind())),
        };
        if let Some(prev) = by_name.insert(name.clone(), Source::Layer(i)) {
            let what = match prev {
                Source::Input(_) => "a model input".to_string(),
                Source::Layer(j) if spec.layers[j].name.is_none() => {
                    format!("layer {j} ({}), which has that name by default", spec.layers[j].layer.kind())
                }
                Source::Layer(j) => format!("layer {j} ({})", spec.layers[j].layer.kind()),
            };
            return Err(spec_err(format!("layer {i} ({}) is named {:?}, like {what}", node.layer.kind(), clip(&name))));
        }
        names.push(name);
    }
    let label = |i: usize| {
        if graph {
            format!("layer {:?} ({})", clip(&names[i]), spec.layers[i].layer.kind())
        } else {
            format!("layer {i} ({})", spec.layers[i].layer.kind())
        }
    };
    // Resolve every layer's inputs.
    let mut sources = Vec::with_capacity(spec.layers.len());
    for (i, node) in spec.layers.iter().enumerate() {
        let srcs = match &node.inputs {
            Some(list) => {
                if list.is_empty() {
                    return Err(spec_err(format!("{}: \"inputs\" is empty", label(i))));
                }
                list.iter()
                    .map(|r| {
                        by_name.get(r).copied().ok_or_else(|| {
                            spec_err(format!(
                                "{}: unknown input {:?} (no layer or model input has that name)",
                                label(i),
                                clip(r)
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            None if i == 0 => {
                if inputs.len() != 1 {
                    return Err(spec_err(format!(
                        "{}: the model has {} inputs; say which this layer takes with \"inputs\"",
                        label(i),
                        inputs.len()
                    )));
                }
                vec![Source::Input(0)]
            }
            None => vec![Source::Layer(i - 1)],
        };
        sources.push(srcs);
    }
    let outputs: Vec<Source> = if spec.outputs.is_empty() {
        vec![Source::Layer(spec.layers.len() - 1)]
    } else {
        spec.outputs
            .iter()
            .map(|o| match by_name.get(o) {
                Some(Source::Layer(i)) => Ok(Source::Layer(*i)),
                Some(Source::Input(_)) => Err(spec_err(format!("output {:?} is a model input, not a layer", clip(o)))),
                None => Err(spec_err(format!("unknown output {:?} (no layer has that name)", clip(o)))),
            })
            .collect::<Result<_>>()?
    };
    let order = topological_order(&sources)
        .map_err(|i| spec_err(format!("{} is on a cycle: its inputs depend on its own output", label(i))))?;
    // Every layer and input must lead to an output.
    let mut used = vec![false; spec.layers.len()];
    let mut input_used = vec![false; inputs.len()];
    let mut stack: Vec<Source> = outputs.clone();
    while let Some(s) = stack.pop() {
        match s {
            Source::Input(k) => input_used[k] = true,
            Source::Layer(i) => {
                if !used[i] {
                    used[i] = true;
                    stack.extend(sources[i].iter().copied());
                }
            }
        }
    }
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(spec_err(format!(
            "{} is unused: no model output depends on it (add it to \"outputs\" or remove it)",
            label(i)
        )));
    }
    if let Some(k) = input_used.iter().position(|u| !u) {
        return Err(spec_err(format!("input {:?} is unused: no layer takes it", clip(&inputs[k].name))));
    }

    // Build the layers in execution order (their input shapes are known then),
    // then the parameters in spec order.
    let mut built: Vec<Option<Arc<dyn Layer<T>>>> = vec![None; spec.layers.len()];
    for &i in &order {
        let shapes: Vec<&[usize]> = sources[i]
            .iter()
            .map(|s| match *s {
                Source::Input(k) => inputs[k].shape.as_slice(),
                Source::Layer(j) => built[j].as_ref().expect("topological order").output_shape(),
            })
            .collect();
        let name = graph.then_some(names[i].as_str());
        built[i] = Some(Arc::from(spec.layers[i].layer.build_node::<T>(i, name, &shapes)?));
    }
    let layers: Vec<Arc<dyn Layer<T>>> = built.into_iter().map(|l| l.expect("every layer built")).collect();
    // Every shape and the parameter count are checked before anything is allocated.
    let mut total = 0usize;
    let mut largest = (0usize, 0usize);
    for (i, layer) in layers.iter().enumerate() {
        let too_big = |what: String| spec_err(format!("{}: {what}", label(i)));
        let mut batch_of_one = vec![1];
        batch_of_one.extend_from_slice(layer.output_shape());
        nn_tensor::shape::checked_numel("model build", &batch_of_one)
            .map_err(|_| too_big(format!("output shape {:?} has too many elements", layer.output_shape())))?;
        for p in layer.param_specs() {
            let n = nn_tensor::shape::checked_numel("model build", &p.shape)
                .map_err(|_| too_big(format!("parameter shape {:?} has too many elements", p.shape)))?;
            total = total.saturating_add(n);
        }
        let own: usize = layer.param_specs().iter().map(|p| p.shape.iter().product::<usize>()).sum();
        if own > largest.1 {
            largest = (i, own);
        }
    }
    if total > max_parameters {
        return Err(spec_err(format!(
            "{}: {} parameters, and the model {total} in all, more than the limit of {max_parameters} ({} GiB as {})",
            label(largest.0),
            largest.1,
            (max_parameters as f64 * std::mem::size_of::<T>() as f64 / (1u64 << 30) as f64).round(),
            T::DTYPE
        )));
    }
    Ok(Resolved { inputs, layers, names, sources, outputs, order })
}

/// `1 input`, `2 inputs`.
pub(crate) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Refuses an empty name, one over [`MAX_NAME_LEN`] characters, or one with a `.`
/// (parameter names are `{layer}.{kind}`) or a control character.
fn check_name(name: &str, what: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.chars().count() > MAX_NAME_LEN
        || name.contains('.')
        || name.chars().any(char::is_control);
    if bad {
        return Err(LayerError::Spec {
            message: format!(
                "{what} name {:?} is not usable: 1 to {MAX_NAME_LEN} characters, no '.' and no control characters",
                clip(name)
            ),
        });
    }
    Ok(())
}

/// A topological order of the layers (Kahn's algorithm, the lowest index first among
/// the ready ones, so a chain runs in spec order); `Err(i)` names a layer on a cycle.
fn topological_order(sources: &[Vec<Source>]) -> std::result::Result<Vec<usize>, usize> {
    let n = sources.len();
    let mut pending: Vec<usize> =
        sources.iter().map(|s| s.iter().filter(|s| matches!(s, Source::Layer(_))).count()).collect();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, srcs) in sources.iter().enumerate() {
        for s in srcs {
            if let Source::Layer(j) = *s {
                consumers[j].push(i);
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &c in &consumers[i] {
            pending[c] -= 1;
            if pending[c] == 0 {
                ready.insert(c);
            }
        }
    }
    if order.len() < n {
        return Err((0..n).find(|&i| pending[i] > 0).expect("some layer is left"));
    }
    Ok(order)
}

/// Source `s`'s value as a view, for a reader that only reads it.
fn read_in_place<'v, 'a: 'v, T: Element>(
    values: &'v [Option<CowArray<'a, T, IxDyn>>],
    input: &'v ArrayViewD<'a, T>,
    s: Source,
) -> ArrayViewD<'v, T> {
    match s {
        Source::Input(_) => input.view(),
        Source::Layer(j) => values[j].as_ref().expect("plan runs inputs first").view(),
    }
}

/// One reader of source `s` is done: its value is dropped after the last.
fn done_reading<T: Element>(values: &mut [Option<CowArray<'_, T, IxDyn>>], remaining: &mut [usize], s: Source) {
    if let Source::Layer(j) = s {
        remaining[j] -= 1;
        if remaining[j] == 0 {
            values[j] = None;
        }
    }
}

/// Source `s`'s value for one more reader: moved out for its last reader, copied for
/// the others (the input is read in place).
fn take_value<'a, T: Element>(
    values: &mut [Option<CowArray<'a, T, IxDyn>>],
    remaining: &mut [usize],
    input: &ArrayViewD<'a, T>,
    s: Source,
) -> CowArray<'a, T, IxDyn> {
    match s {
        Source::Input(_) => CowArray::from(input.clone()),
        Source::Layer(j) => {
            remaining[j] -= 1;
            if remaining[j] == 0 {
                values[j].take().expect("plan runs inputs first")
            } else {
                CowArray::from(values[j].as_ref().expect("plan runs inputs first").to_owned())
            }
        }
    }
}

/// `h` with shape `shape` (same element count): without a copy when `h` is in
/// standard layout, else copied into it first.
fn reshape_cow<'a, T: Element>(h: CowArray<'a, T, IxDyn>, shape: &[usize]) -> CowArray<'a, T, IxDyn> {
    let h = if h.is_standard_layout() { h } else { CowArray::from(h.as_standard_layout().into_owned()) };
    h.into_shape_with_order(IxDyn(shape)).expect("standard layout and the same element count")
}
