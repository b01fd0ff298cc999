//! [`Sequential`]: a stack of layers built from a [`ModelSpec`].

use std::ops::Range;
use std::sync::Arc;

use ndarray::{ArrayViewD, CowArray, IxDyn};
use nn_autograd::{Graph, Var};
use nn_tensor::random::{seeded_rng, Rng};
use nn_tensor::{Element, Tensor};

use crate::error::{LayerError, Result};
use crate::module::{ForwardCtx, Layer, Mode, Module, Parameter};
use crate::spec::ModelSpec;

/// A model made of layers applied one after the other, built from a [`ModelSpec`]
/// (so it is plain data: JSON in, JSON out).
///
/// Building infers every layer's shapes from the declared per-sample input shape and
/// reports a mismatch then, naming the layer's index, kind, and the expected and
/// actual shapes. Parameters live in the model as [`Parameter`]s (values in `Arc`s),
/// named `layers.{i}.{kernel|bias|gamma|beta|moving_mean|moving_variance|embeddings}`,
/// in layer order.
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
pub struct Sequential<T: Element = f32> {
    spec: ModelSpec,
    layers: Vec<Arc<dyn Layer<T>>>,
    params: Vec<Parameter<T>>,
    /// `params[ranges[i]]` are layer `i`'s parameters.
    ranges: Vec<Range<usize>>,
    output_shape: Vec<usize>,
    /// Whether Conv2D → MaxPool2D runs fused (see [`Sequential::set_fusion`]).
    fuse: bool,
}

impl<T: Element> Sequential<T> {
    /// Builds the layers, infers every shape from `spec.input_shape` (per sample, e.g.
    /// `[28, 28, 1]` NHWC or `[64]`), and initialises the parameters from a ChaCha8
    /// generator seeded with `seed`, drawing them in parameter order (the same seed
    /// gives the same weights on every machine).
    ///
    /// # Errors
    /// [`LayerError::Spec`] for an unsupported format version or an input shape with
    /// a zero dimension; [`LayerError::BuildShape`] when a layer cannot take the shape
    /// it receives (naming the layer index, its kind, and the expected and actual
    /// shapes); [`LayerError::InvalidConfig`] for unusable settings (naming the layer);
    /// [`LayerError::Tensor`] for unusable initializer settings.
    pub fn new(spec: ModelSpec, seed: u64) -> Result<Self> {
        Self::build(spec, Some(&mut seeded_rng(seed)))
    }

    /// Builds the model; fills parameters from `rng`, or with zeros when `None` (for
    /// loading, where every value is replaced).
    pub(crate) fn build(spec: ModelSpec, mut rng: Option<&mut Rng>) -> Result<Self> {
        spec.check_version()?;
        if spec.input_shape.contains(&0) {
            return Err(LayerError::Spec {
                message: format!("input_shape {:?} has a zero dimension", spec.input_shape),
            });
        }
        let mut layers: Vec<Arc<dyn Layer<T>>> = Vec::with_capacity(spec.layers.len());
        let mut params = Vec::new();
        let mut ranges = Vec::with_capacity(spec.layers.len());
        let mut shape = spec.input_shape.clone();
        for (index, layer_spec) in spec.layers.iter().enumerate() {
            let layer: Arc<dyn Layer<T>> = Arc::from(layer_spec.build::<T>(index, &shape)?);
            let start = params.len();
            for (k, p) in layer.param_specs().iter().enumerate() {
                let value = match rng.as_deref_mut() {
                    Some(rng) => layer.init_parameter(k, rng)?,
                    None => Tensor::try_full(&p.shape, T::zero())?,
                };
                params.push(Parameter {
                    name: format!("layers.{index}.{}", p.kind.keras_name()),
                    value: Arc::new(value),
                    kind: p.kind,
                    trainable: p.trainable,
                });
            }
            ranges.push(start..params.len());
            shape = layer.output_shape().to_vec();
            layers.push(layer);
        }
        Ok(Sequential { spec, layers, params, ranges, output_shape: shape, fuse: true })
    }

    /// The description the model was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The per-sample input shape (without the batch axis).
    pub fn input_shape(&self) -> &[usize] {
        &self.spec.input_shape
    }

    /// The per-sample output shape (without the batch axis), e.g. `[10]`.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    /// The built layers, in order.
    pub fn layers(&self) -> &[Arc<dyn Layer<T>>] {
        &self.layers
    }

    /// Layer `index`'s parameters.
    ///
    /// # Panics
    /// If `index` is not below the number of layers.
    pub fn layer_parameters(&self, index: usize) -> &[Parameter<T>] {
        &self.params[self.ranges[index].clone()]
    }

    /// Whether the last layer ends with a softmax (a Softmax layer, an Activation
    /// layer with softmax, or a Dense/Conv2D with `activation: "softmax"`), which
    /// [`Sequential::forward_logits`] leaves out.
    pub fn ends_with_softmax(&self) -> bool {
        self.layers.last().is_some_and(|l| l.ends_with_softmax())
    }

    /// Checks the batch's shape: `[batch ≥ 1, ...input_shape]`.
    fn check_input(&self, g: &Graph<T>, x: Var) -> Result<()> {
        let shape = g.try_value(x)?.shape();
        if shape.len() != self.spec.input_shape.len() + 1 || shape[1..] != self.spec.input_shape[..] || shape[0] == 0 {
            return Err(LayerError::InputShape { expected: self.spec.input_shape.clone(), got: shape.to_vec() });
        }
        Ok(())
    }

    /// Binds layer `index`'s parameters into `g`: trainable ones as named parameters
    /// (shared through their `Arc`, no copy; reused when already bound in this graph),
    /// the others as constants.
    fn bind(&self, g: &mut Graph<T>, index: usize) -> Result<Vec<Var>> {
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

    fn run(&self, g: &mut Graph<T>, x: Var, ctx: &mut ForwardCtx<'_, T>, logits: bool) -> Result<Var> {
        self.check_input(g, x)?;
        self.run_from(g, x, ctx, logits, 0)
    }

    /// Runs layers `start..` on `x` (the output of layer `start − 1`).
    fn run_from(
        &self,
        g: &mut Graph<T>,
        x: Var,
        ctx: &mut ForwardCtx<'_, T>,
        logits: bool,
        start: usize,
    ) -> Result<Var> {
        let mut h = x;
        let last = self.layers.len().saturating_sub(1);
        let mut i = start;
        while i < self.layers.len() {
            let layer = &self.layers[i];
            let wrap = |e: LayerError| LayerError::Forward { index: i, kind: layer.kind(), source: Box::new(e) };
            let params = self.bind(g, i).map_err(wrap)?;
            // A max pooling right after this layer (say Conv2D → MaxPool2D) runs fused
            // with it when the layer has a fused form: same values and gradients, but
            // the layer's full output is never stored. The pool has no parameters.
            let window = self.layers.get(i + 1).and_then(|next| next.max_pool_window());
            // (A pool has no softmax, so this holds for `forward_logits` too.)
            // A Flatten right after the pool is folded in too (no copy).
            if self.fuse {
                let flatten = self.layers.get(i + 2).is_some_and(|l| l.kind() == "Flatten");
                if let Some(fused) = window.and_then(|w| layer.forward_max_pooled(g, h, &params, w, flatten, ctx)) {
                    h = fused.map_err(wrap)?;
                    i += if flatten { 3 } else { 2 };
                    continue;
                }
            }
            h = if logits && i == last {
                layer.forward_logits(g, h, &params, ctx)
            } else {
                layer.forward(g, h, &params, ctx)
            }
            .map_err(wrap)?;
            i += 1;
        }
        Ok(h)
    }

    /// Whether [`Sequential::forward`] runs a Conv2D and the MaxPool2D after it as
    /// one fused operation (the default; see [`Layer::forward_max_pooled`]). The
    /// results are the same either way; turning it off is for tests and benchmarks
    /// that compare the two paths.
    pub fn set_fusion(&mut self, fuse: bool) {
        self.fuse = fuse;
    }

    /// Runs the model on `x: [batch, ...input_shape]`, giving `[batch, ...output_shape]`,
    /// in the mode of `ctx`. Binds the parameters into `g` itself (trainable ones
    /// under their names, so `g.backward` reports their gradients; the others as
    /// constants). In [`Mode::Train`], BatchNormalization pushes its new moving
    /// statistics into `ctx.state_updates` (apply them with
    /// [`Sequential::apply_state_updates`]) and Dropout draws masks from `ctx.rng`.
    ///
    /// # Errors
    /// [`LayerError::InputShape`] when `x` is not `[batch ≥ 1, ...input_shape]`
    /// (checked first; never a panic); [`LayerError::Forward`] naming the layer that
    /// failed (e.g. an Embedding index out of range).
    pub fn forward(&self, g: &mut Graph<T>, x: Var, ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        self.run(g, x, ctx, false)
    }

    /// As [`Sequential::forward`], but stops before a final softmax (see
    /// [`Sequential::ends_with_softmax`]) and returns the logits, for losses computed
    /// from logits (numerically stable). Without a final softmax it equals `forward`.
    ///
    /// # Errors
    /// As [`Sequential::forward`].
    pub fn forward_logits(&self, g: &mut Graph<T>, x: Var, ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        self.run(g, x, ctx, true)
    }

    /// Predictions for a batch in evaluation mode on a no-grad graph:
    /// `x: [batch, ...input_shape]` → `[batch, ...output_shape]`.
    ///
    /// # Errors
    /// As [`Sequential::forward`].
    pub fn predict(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let mut g = Graph::no_grad();
        let xv = g.input(x);
        let mut rng = seeded_rng(0); // unused in evaluation
        let y = self.forward(&mut g, xv, &mut ForwardCtx::new(Mode::Eval, &mut rng))?;
        Ok(g.try_value(y)?.clone())
    }

    /// Predictions in evaluation mode without a graph where the layers allow it:
    /// `x: [batch, ...input_shape]` → `[batch, ...output_shape]`, the same values as
    /// [`Sequential::forward`] in [`Mode::Eval`] (or [`Sequential::forward_logits`]
    /// when `logits`). Dense, Conv2D (fused with a MaxPool2D after it), Flatten,
    /// Reshape and Dropout run on plain arrays: `x` is read in place (a slice of a
    /// larger tensor is not copied), shape-only layers reshape without copying, and no
    /// intermediate is kept once the next layer has it. From the first layer without
    /// such a path (Keras-style activation layers, BatchNormalization, recurrent
    /// layers, Dense with LoRA adapters, ...) the rest runs on a no-grad graph.
    ///
    /// # Errors
    /// [`LayerError::InputShape`] when `x` is not `[batch ≥ 1, ...input_shape]`;
    /// [`LayerError::Forward`] naming the layer that failed.
    pub fn infer(&self, x: ArrayViewD<'_, T>, logits: bool) -> Result<Tensor<T>> {
        let shape = x.shape();
        if shape.len() != self.spec.input_shape.len() + 1 || shape[1..] != self.spec.input_shape[..] || shape[0] == 0 {
            return Err(LayerError::InputShape { expected: self.spec.input_shape.clone(), got: shape.to_vec() });
        }
        let batch = shape[0];
        let mut h = CowArray::from(x);
        let last = self.layers.len().saturating_sub(1);
        let mut i = 0;
        while i < self.layers.len() {
            let layer = &self.layers[i];
            let wrap = |e: LayerError| LayerError::Forward { index: i, kind: layer.kind(), source: Box::new(e) };
            if layer.reshapes_in_eval() {
                let mut target = vec![batch];
                target.extend_from_slice(layer.output_shape());
                h = reshape_cow(h, &target);
                i += 1;
                continue;
            }
            let params = self.layer_parameters(i);
            let window = self.layers.get(i + 1).and_then(|next| next.max_pool_window());
            let fused = match window {
                Some(w) if self.fuse => layer.infer_max_pooled(h.view(), params, w).map(|r| (r, 2)),
                _ => None,
            };
            match fused.or_else(|| layer.infer(h.view(), params, logits && i == last).map(|r| (r, 1))) {
                Some((out, step)) => {
                    h = CowArray::from(out.map_err(wrap)?.into_array());
                    i += step;
                }
                None => {
                    let mut g = Graph::no_grad();
                    let xv = g.input(Tensor::from(h.into_owned()));
                    let mut rng = seeded_rng(0); // unused in evaluation
                    let mut ctx = ForwardCtx::new(Mode::Eval, &mut rng);
                    let y = self.run_from(&mut g, xv, &mut ctx, logits, i)?;
                    return Ok(g.try_value(y)?.clone());
                }
            }
        }
        Ok(Tensor::from(h.into_owned()))
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

impl<T: Element> Module<T> for Sequential<T> {
    fn forward(&self, g: &mut Graph<T>, x: Var, ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        Sequential::forward(self, g, x, ctx)
    }

    fn forward_logits(&self, g: &mut Graph<T>, x: Var, ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        Sequential::forward_logits(self, g, x, ctx)
    }

    fn ends_with_softmax(&self) -> bool {
        Sequential::ends_with_softmax(self)
    }

    fn parameters(&self) -> &[Parameter<T>] {
        &self.params
    }

    fn parameters_mut(&mut self) -> &mut [Parameter<T>] {
        &mut self.params
    }

    fn apply_state_updates(&mut self, updates: Vec<(String, Tensor<T>)>) -> Result<()> {
        Sequential::apply_state_updates(self, updates)
    }
}

/// `h` with shape `shape` (same element count): without a copy when `h` is in
/// standard layout, else copied into it first.
fn reshape_cow<'a, T: Element>(h: CowArray<'a, T, IxDyn>, shape: &[usize]) -> CowArray<'a, T, IxDyn> {
    let h = if h.is_standard_layout() { h } else { CowArray::from(h.as_standard_layout().into_owned()) };
    h.into_shape_with_order(IxDyn(shape)).expect("standard layout and the same element count")
}
