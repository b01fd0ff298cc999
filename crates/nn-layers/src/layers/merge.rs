//! Merge layers (Keras's `keras.layers.merging`): the element-wise `Add`,
//! `Subtract`, `Multiply`, `Average` and `Maximum` ([`Merge`]), [`Concatenate`] and the
//! per-sample dot product [`Dot`].
//! They take several inputs in a graph model (format version 2, `"inputs": [...]`)
//! and have no parameters.
//!
//! Keras broadcasts the inputs of an element-wise merge; here every input must have
//! the same per-sample shape, checked when the model is built.

use nn_autograd::{AutogradError, Graph, Var};
use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Serialize};

use super::{layer_accessors, Meta};
use crate::error::{LayerError, Result};
use crate::module::{check_param_count, ForwardCtx, Layer};

/// Which element-wise merge a [`Merge`] layer computes, over inputs `x₀ … xₙ₋₁` of
/// one shape (Keras's merge layers of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MergeOp {
    /// `Σₖ xₖ` (Keras's `Add`).
    Add,
    /// `x₀ − x₁`, exactly two inputs (Keras's `Subtract`).
    Subtract,
    /// `Πₖ xₖ` (Keras's `Multiply`).
    Multiply,
    /// `(1/n) Σₖ xₖ` (Keras's `Average`).
    Average,
    /// `maxₖ xₖ` (Keras's `Maximum`).
    Maximum,
}

impl MergeOp {
    /// The Keras class name (the JSON `"type"`).
    pub fn kind(self) -> &'static str {
        match self {
            MergeOp::Add => "Add",
            MergeOp::Subtract => "Subtract",
            MergeOp::Multiply => "Multiply",
            MergeOp::Average => "Average",
            MergeOp::Maximum => "Maximum",
        }
    }

    /// The graph op name.
    fn op_name(self) -> &'static str {
        match self {
            MergeOp::Add => "merge_add",
            MergeOp::Subtract => "merge_subtract",
            MergeOp::Multiply => "merge_multiply",
            MergeOp::Average => "merge_average",
            MergeOp::Maximum => "merge_maximum",
        }
    }
}

/// An element-wise merge of several tensors of one shape: `Add`, `Subtract`,
/// `Multiply`, `Average` or `Maximum` ([`MergeOp`]; formulas and semantics of Keras's
/// `keras.layers.Add` etc.). No parameters. JSON: `{"type": "Add", "inputs": ["a",
/// "b"]}` in a graph model.
///
/// Each runs as one graph operation over all its inputs (one output allocation),
/// with these gradients for an upstream gradient `g`:
/// `Add`: `∂/∂xₖ = g`; `Subtract`: `∂/∂x₀ = g`, `∂/∂x₁ = −g`; `Multiply`:
/// `∂/∂xₖ = g · Π_{j≠k} xⱼ` (the product of the others, so a zero input is no
/// problem); `Average`: `∂/∂xₖ = g / n`; `Maximum`: the whole of `g` to the input
/// holding the maximum. **Ties** in `Maximum` go to the first maximal input (in the
/// order of `"inputs"`), the others get 0 (a subgradient, as `max_axis`); a NaN in the
/// first input is kept, a later NaN is never the maximum. The same tensor may be
/// given twice (`["d", "d"]`): its gradients add up (`Add`: `2g`).
///
/// # Shapes
/// `n` inputs `[batch, ...shape]` of identical shapes → `[batch, ...shape]`;
/// `Subtract` takes exactly 2 inputs, the others at least 2.
///
/// # Errors
/// When built: [`LayerError::InvalidConfig`] for a wrong number of inputs;
/// [`LayerError::BuildShape`] when two inputs' per-sample shapes differ (naming both;
/// Keras would broadcast them, this crate refuses). In forward:
/// [`LayerError::Autograd`] for inputs whose shapes differ (a layer used alone).
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    meta: Meta,
    op: MergeOp,
}

impl Merge {
    pub(crate) fn new(mut meta: Meta, op: MergeOp) -> Result<Self> {
        check_input_count(&meta, op == MergeOp::Subtract)?;
        let first = meta.input_shapes[0].clone();
        if let Some(k) = meta.input_shapes.iter().position(|s| *s != first) {
            return Err(mismatch(
                &meta,
                k,
                format!(
                    "{first:?} (the shape of input 0: the inputs of {} must have identical per-sample shapes, \
                     without broadcasting; input {k} differs)",
                    op.kind()
                ),
            ));
        }
        meta.output_shape = first;
        Ok(Merge { meta, op })
    }

    /// The merge it computes.
    pub fn op(&self) -> MergeOp {
        self.op
    }
}

impl<T: Element> Layer<T> for Merge {
    layer_accessors!();

    /// Refused unless the layer takes one input (never: merges take at least 2); use
    /// [`Layer::forward_inputs`].
    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        self.forward_inputs(g, &[x], params, ctx)
    }

    fn forward_inputs(
        &self,
        g: &mut Graph<T>,
        inputs: &[Var],
        params: &[Var],
        _ctx: &mut ForwardCtx<'_, T>,
    ) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let (lo, hi) = arity(self.op == MergeOp::Subtract);
        if inputs.len() < lo || inputs.len() > hi {
            return Err(self.meta.config_error(format!("takes {}, got {}", arity_words(lo, hi), inputs.len())));
        }
        elementwise(g, self.op, inputs)
    }
}

/// `(fewest, most)` inputs a merge takes.
fn arity(exactly_two: bool) -> (usize, usize) {
    if exactly_two {
        (2, 2)
    } else {
        (2, usize::MAX)
    }
}

fn arity_words(lo: usize, hi: usize) -> String {
    if lo == hi {
        format!("exactly {lo} inputs")
    } else {
        format!("at least {lo} inputs")
    }
}

/// Refuses a number of inputs the merge does not take.
fn check_input_count(meta: &Meta, exactly_two: bool) -> Result<()> {
    let (lo, hi) = arity(exactly_two);
    let n = meta.input_shapes.len();
    if n < lo || n > hi {
        return Err(meta.config_error(format!("takes {}, got {n}", arity_words(lo, hi))));
    }
    Ok(())
}

/// A build-time shape error at input `k` (its shape is the one reported as given).
fn mismatch(meta: &Meta, k: usize, expected: String) -> LayerError {
    LayerError::BuildShape {
        index: meta.index,
        name: meta.name.clone(),
        kind: meta.kind,
        expected,
        got: meta.input_shapes[k].clone(),
    }
}

/// The element-wise merge `op` of `inputs` (identical shapes) as one graph
/// operation; see [`Merge`] for the formulas and gradients.
fn elementwise<T: Element>(g: &mut Graph<T>, op: MergeOp, inputs: &[Var]) -> Result<Var> {
    let name = op.op_name();
    let vals = inputs.iter().map(|&v| g.try_value(v)).collect::<std::result::Result<Vec<_>, _>>()?;
    let shape = vals[0].shape().to_vec();
    if let Some(v) = vals.iter().find(|v| v.shape() != shape.as_slice()) {
        return Err(AutogradError::ShapeMismatch {
            op: name,
            lhs: shape,
            rhs: v.shape().to_vec(),
            expected: "identical shapes for every input of a merge",
        }
        .into());
    }
    let n = vals.len();
    // Contiguous row-major data of every input (borrowed when already so).
    let std: Vec<_> = vals.iter().map(|v| v.array().as_standard_layout()).collect();
    let xs: Vec<&[T]> = std.iter().map(|a| a.as_slice().expect("standard layout")).collect();
    // Element by element in the order of the inputs (the same bits as a pass per
    // input), spread over nn's pool in fixed chunks.
    let scale = T::one() / T::of_f64(n as f64);
    let combine = |j: usize| -> T {
        let mut o = xs[0][j];
        for x in &xs[1..] {
            let v = x[j];
            match op {
                MergeOp::Add | MergeOp::Average => o += v,
                MergeOp::Subtract => o -= v,
                MergeOp::Multiply => o *= v,
                MergeOp::Maximum => {
                    if v > o {
                        o = v
                    }
                }
            }
        }
        if op == MergeOp::Average {
            o *= scale;
        }
        o
    };
    const CHUNK: usize = 1 << 15;
    let out = nn_tensor::par_build(xs[0].len(), CHUNK, |c, chunk: &mut [T]| {
        for (k, o) in chunk.iter_mut().enumerate() {
            *o = combine(c * CHUNK + k);
        }
    });
    drop(std);
    let value = Tensor::from_vec(&shape, out);
    let merged = g.try_custom(name, inputs, value, move |ctx, grad, sink| {
        let n = ctx.num_inputs();
        match op {
            MergeOp::Add => {
                // Every input gets the gradient: copies for all but the last, which
                // takes it.
                let wanted: Vec<usize> = (0..n).filter(|&k| sink.wants(k)).collect();
                if let Some((&last, rest)) = wanted.split_last() {
                    for &k in rest {
                        sink.add(k, grad.clone())?;
                    }
                    sink.add(last, grad)?;
                }
            }
            MergeOp::Average => {
                let scale = T::one() / T::of_f64(n as f64);
                let scaled = grad.map(|v| v * scale);
                for k in 0..n {
                    if sink.wants(k) {
                        sink.add(k, scaled.clone())?;
                    }
                }
            }
            MergeOp::Subtract => {
                if sink.wants(1) {
                    sink.add(1, grad.map(|v| -v))?;
                }
                sink.add(0, grad)?;
            }
            MergeOp::Multiply | MergeOp::Maximum => {
                let std: Vec<_> = (0..n).map(|k| ctx.input(k).array().as_standard_layout()).collect();
                let xs: Vec<&[T]> = std.iter().map(|a| a.as_slice().expect("standard layout")).collect();
                let g_std = grad.array().as_standard_layout();
                let gs = g_std.as_slice().expect("standard layout");
                if op == MergeOp::Multiply {
                    for k in 0..n {
                        if !sink.wants(k) {
                            continue;
                        }
                        let mut d = gs.to_vec();
                        for (_, x) in xs.iter().enumerate().filter(|&(j, _)| j != k) {
                            d.iter_mut().zip(*x).for_each(|(d, &v)| *d *= v);
                        }
                        sink.add(k, Tensor::from_vec(&shape, d))?;
                    }
                } else {
                    // The first maximal input of each element, found as in forward.
                    let mut grads: Vec<Option<Vec<T>>> =
                        (0..n).map(|k| sink.wants(k).then(|| vec![T::zero(); gs.len()])).collect();
                    for (i, &gi) in gs.iter().enumerate() {
                        let (mut arg, mut best) = (0, xs[0][i]);
                        for (k, x) in xs.iter().enumerate().skip(1) {
                            if x[i] > best {
                                (arg, best) = (k, x[i]);
                            }
                        }
                        if let Some(d) = &mut grads[arg] {
                            d[i] = gi;
                        }
                    }
                    for (k, d) in grads.into_iter().enumerate() {
                        if let Some(d) = d {
                            sink.add(k, Tensor::from_vec(&shape, d))?;
                        }
                    }
                }
            }
        }
        Ok(())
    })?;
    // Add, Average and Subtract read no value in backward; Multiply and Maximum read
    // their inputs. None reads its output.
    let reads_inputs = matches!(op, MergeOp::Multiply | MergeOp::Maximum);
    g.declare_reads(merged, reads_inputs, false)?;
    Ok(merged)
}

/// The dot product of two vectors per sample (Keras's `keras.layers.Dot` with
/// `axes=-1` on rank-2 tensors, `normalize=False`): `y[b] = Σⱼ a[b, j] · c[b, j]`.
/// The score of a matrix-factorisation or two-tower recommender (Koren, Bell &
/// Volinsky 2009, eq. 2: `r̂ = qᵢᵀpᵤ`). No parameters. JSON: `{"type": "Dot",
/// "inputs": ["user", "item"]}` in a graph model.
///
/// # Gradient
/// For an upstream gradient `g: [batch, 1]`: `∂/∂a[b, j] = g[b] · c[b, j]` and
/// `∂/∂c[b, j] = g[b] · a[b, j]` (the backward rule needs both inputs). The same
/// tensor given twice (`["u", "u"]`, a squared norm) gets both contributions.
///
/// # Shapes
/// Exactly 2 inputs `[batch, d]` of one `d` → `[batch, 1]`.
///
/// # Errors
/// When built: [`LayerError::InvalidConfig`] unless there are exactly 2 inputs;
/// [`LayerError::BuildShape`] unless both per-sample shapes are the same `[d]`. In
/// forward: [`LayerError::Autograd`] for inputs of other shapes (a layer used alone).
#[derive(Debug, Clone, PartialEq)]
pub struct Dot {
    meta: Meta,
}

impl Dot {
    pub(crate) fn new(mut meta: Meta) -> Result<Self> {
        check_input_count(&meta, true)?;
        let first = meta.input_shapes[0].clone();
        if first.len() != 1 {
            return Err(mismatch(&meta, 0, "a vector per sample [d] (Dot multiplies two [batch, d] tensors)".into()));
        }
        if meta.input_shapes[1] != first {
            return Err(mismatch(&meta, 1, format!("{first:?} (the shape of input 0: Dot's inputs must agree)")));
        }
        meta.output_shape = vec![1];
        Ok(Dot { meta })
    }
}

impl<T: Element> Layer<T> for Dot {
    layer_accessors!();

    /// Refused: Dot takes exactly 2 inputs; use [`Layer::forward_inputs`].
    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        self.forward_inputs(g, &[x], params, ctx)
    }

    fn forward_inputs(
        &self,
        g: &mut Graph<T>,
        inputs: &[Var],
        params: &[Var],
        _ctx: &mut ForwardCtx<'_, T>,
    ) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        if inputs.len() != 2 {
            return Err(self.meta.config_error(format!("takes exactly 2 inputs, got {}", inputs.len())));
        }
        dot(g, inputs[0], inputs[1])
    }
}

/// `y[b] = Σⱼ a[b, j] · c[b, j]` of two `[batch, d]` tensors as one graph operation;
/// see [`Dot`].
fn dot<T: Element>(g: &mut Graph<T>, a: Var, c: Var) -> Result<Var> {
    let (av, cv) = (g.try_value(a)?, g.try_value(c)?);
    if av.shape().len() != 2 || av.shape() != cv.shape() {
        return Err(AutogradError::ShapeMismatch {
            op: "dot",
            lhs: av.shape().to_vec(),
            rhs: cv.shape().to_vec(),
            expected: "two [batch, d] tensors of one shape",
        }
        .into());
    }
    let (n, d) = (av.shape()[0], av.shape()[1]);
    let (a_std, c_std) = (av.array().as_standard_layout(), cv.array().as_standard_layout());
    let (xs, ys) = (a_std.as_slice().expect("standard layout"), c_std.as_slice().expect("standard layout"));
    let out: Vec<T> = (0..n)
        .map(|b| {
            let mut s = T::zero();
            for j in 0..d {
                s += xs[b * d + j] * ys[b * d + j];
            }
            s
        })
        .collect();
    drop((a_std, c_std));
    let value = Tensor::from_vec(&[n, 1], out);
    Ok(g.try_custom("dot", &[a, c], value, move |ctx, grad, sink| {
        let g_std = grad.array().as_standard_layout();
        let gs = g_std.as_slice().expect("standard layout");
        for (k, other) in [(0, 1), (1, 0)] {
            if !sink.wants(k) {
                continue;
            }
            let o_std = ctx.input(other).array().as_standard_layout();
            let os = o_std.as_slice().expect("standard layout");
            let d_in: Vec<T> = (0..n * d).map(|i| gs[i / d] * os[i]).collect();
            sink.add(k, Tensor::from_vec(&[n, d], d_in))?;
        }
        Ok(())
    })?)
}

fn minus_one() -> i64 {
    -1
}

/// Settings of Concatenate (Keras's `keras.layers.Concatenate`).
///
/// JSON: `{"type": "Concatenate", "axis": -1}` (`axis` may be left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcatenateConfig {
    /// The axis to join along, counted as Keras does, with the batch axis as axis 0:
    /// for per-sample shapes of `r` axes, `1..=r`, or `−r..=−1` from the end. Axis 0
    /// (the batch) is refused. Default −1 (the last axis, e.g. channels of NHWC
    /// images).
    #[serde(default = "minus_one")]
    pub axis: i64,
}

impl Default for ConcatenateConfig {
    fn default() -> Self {
        ConcatenateConfig { axis: -1 }
    }
}

/// Joins its inputs along one axis (Keras's `Concatenate`). No parameters.
///
/// # Shapes
/// `n ≥ 2` inputs `[batch, d₁, …, dᵣ]` that agree on every axis but `axis` →
/// `[batch, …, Σ d_axis, …]`, the inputs' slices in the order of `"inputs"`. `axis`
/// counts with the batch axis as 0 (see [`ConcatenateConfig::axis`]); e.g. two
/// `[batch, 8, 8, 16]` images joined with the default `axis: -1` give
/// `[batch, 8, 8, 32]`.
///
/// # Gradient
/// The upstream gradient split back along `axis` into the inputs' extents.
///
/// # Errors
/// When built: [`LayerError::InvalidConfig`] for fewer than 2 inputs, axis 0 (the
/// batch) or an axis out of range for the inputs' rank; [`LayerError::BuildShape`]
/// for inputs of different ranks or that differ on another axis (naming both shapes).
#[derive(Debug, Clone, PartialEq)]
pub struct Concatenate {
    meta: Meta,
    config: ConcatenateConfig,
    /// The axis of the batched tensors (1..=r).
    axis: usize,
}

impl Concatenate {
    pub(crate) fn new(mut meta: Meta, config: ConcatenateConfig) -> Result<Self> {
        check_input_count(&meta, false)?;
        let first = meta.input_shapes[0].clone();
        let rank = first.len();
        if let Some(k) = meta.input_shapes.iter().position(|s| s.len() != rank) {
            return Err(mismatch(
                &meta,
                k,
                format!(
                    "{rank} axes like input 0 {first:?} (Concatenate's inputs must have one rank; input {k} differs)"
                ),
            ));
        }
        let r = rank as i64;
        let axis = match config.axis {
            0 => {
                return Err(meta.config_error(
                    "axis 0 is the batch axis: Concatenate joins per-sample axes (1 to rank, or −rank to −1)",
                ))
            }
            a if (1..=r).contains(&a) => a as usize,
            a if (-r..=-1).contains(&a) => (r + 1 + a) as usize,
            a => {
                return Err(meta.config_error(format!(
                    "axis {a} is out of range for inputs of {rank} axes per sample {first:?} (the batch axis is \
                     axis 0): use 1 to {rank} or −{rank} to −1"
                )))
            }
        };
        let at = axis - 1; // in the per-sample shape
        let others = |s: &[usize]| s.iter().enumerate().filter(|&(i, _)| i != at).map(|(_, &d)| d).collect::<Vec<_>>();
        let want = others(&first);
        if let Some(k) = meta.input_shapes.iter().position(|s| others(s) != want) {
            return Err(mismatch(
                &meta,
                k,
                format!(
                    "a shape agreeing with input 0 {first:?} on every axis but axis {} (input {k} differs)",
                    config.axis
                ),
            ));
        }
        let mut out = first;
        out[at] = meta.input_shapes.iter().map(|s| s[at]).sum();
        meta.output_shape = out;
        Ok(Concatenate { meta, config, axis })
    }

    /// The settings.
    pub fn config(&self) -> &ConcatenateConfig {
        &self.config
    }
}

impl<T: Element> Layer<T> for Concatenate {
    layer_accessors!();

    /// Refused: Concatenate takes at least 2 inputs; use [`Layer::forward_inputs`].
    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        self.forward_inputs(g, &[x], params, ctx)
    }

    fn forward_inputs(
        &self,
        g: &mut Graph<T>,
        inputs: &[Var],
        params: &[Var],
        _ctx: &mut ForwardCtx<'_, T>,
    ) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        if inputs.len() < 2 {
            return Err(self.meta.config_error(format!("takes at least 2 inputs, got {}", inputs.len())));
        }
        Ok(g.try_concat(inputs, self.axis)?)
    }
}

#[cfg(test)]
mod tests {
    use nn_autograd::gradcheck;
    use nn_tensor::random::seeded_rng;

    use super::*;
    use crate::module::Mode;
    use crate::spec::LayerSpec;

    fn run(spec: LayerSpec, xs: &[Tensor<f64>]) -> Tensor<f64> {
        let shapes: Vec<&[usize]> = xs.iter().map(|x| &x.shape()[1..]).collect();
        let layer = spec.build_node::<f64>(0, Some("m"), &shapes).unwrap();
        let mut g = Graph::<f64>::no_grad();
        let vars: Vec<Var> = xs.iter().map(|x| g.input(x.clone())).collect();
        let mut rng = seeded_rng(0);
        let y = layer.forward_inputs(&mut g, &vars, &[], &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap();
        assert_eq!(g.value(y).shape()[1..], layer.output_shape()[..]);
        g.value(y).clone()
    }

    fn t(shape: &[usize], v: &[f64]) -> Tensor<f64> {
        Tensor::from_vec(shape, v.to_vec())
    }

    #[test]
    fn elementwise_values() {
        let a = t(&[2, 2], &[1., -2., 3., 0.5]);
        let b = t(&[2, 2], &[4., 5., -6., 0.5]);
        let c = t(&[2, 2], &[-1., 7., 2., 2.]);
        assert_eq!(run(LayerSpec::Add, &[a.clone(), b.clone(), c.clone()]).to_vec(), [4., 10., -1., 3.]);
        assert_eq!(run(LayerSpec::Subtract, &[a.clone(), b.clone()]).to_vec(), [-3., -7., 9., 0.]);
        assert_eq!(run(LayerSpec::Multiply, &[a.clone(), b.clone(), c.clone()]).to_vec(), [-4., -70., -36., 0.5]);
        assert_eq!(run(LayerSpec::Average, &[a.clone(), b.clone()]).to_vec(), [2.5, 1.5, -1.5, 0.5]);
        assert_eq!(run(LayerSpec::Maximum, &[a, b, c]).to_vec(), [4., 7., 3., 2.]);
    }

    #[test]
    fn concatenate_values() {
        let a = t(&[1, 2, 2], &[1., 2., 3., 4.]);
        let b = t(&[1, 2, 1], &[5., 6.]);
        let y = run(LayerSpec::Concatenate(ConcatenateConfig { axis: -1 }), &[a.clone(), b]);
        assert_eq!(y.shape(), [1, 2, 3]);
        assert_eq!(y.to_vec(), [1., 2., 5., 3., 4., 6.]);
        let c = t(&[1, 1, 2], &[7., 8.]);
        let y = run(LayerSpec::Concatenate(ConcatenateConfig { axis: 1 }), &[a, c]);
        assert_eq!(y.shape(), [1, 3, 2]);
        assert_eq!(y.to_vec(), [1., 2., 3., 4., 7., 8.]);
    }

    #[test]
    fn maximum_ties_go_to_the_first_input() {
        let x = [t(&[1, 3], &[1., 2., 3.]), t(&[1, 3], &[1., 5., 3.]), t(&[1, 3], &[0., 5., 3.])];
        let mut g = Graph::<f64>::new();
        let vars: Vec<Var> = x.iter().map(|x| g.variable(x.clone())).collect();
        let y = elementwise(&mut g, MergeOp::Maximum, &vars).unwrap();
        let s = g.sum(y);
        let grads = g.backward(s).unwrap();
        assert_eq!(grads.wrt(vars[0]).unwrap().to_vec(), [1., 0., 1.]);
        assert_eq!(grads.wrt(vars[1]).unwrap().to_vec(), [0., 1., 0.]);
        assert_eq!(grads.wrt(vars[2]).unwrap().to_vec(), [0., 0., 0.]);
    }

    #[test]
    fn every_merge_gradchecks() {
        let tol = 1e-6;
        let xs: Vec<Tensor<f64>> =
            (0..3).map(|k| Tensor::random_uniform(&[2, 3], -1.0, 1.0, &mut seeded_rng(k)).unwrap()).collect();
        for op in [MergeOp::Add, MergeOp::Subtract, MergeOp::Multiply, MergeOp::Average, MergeOp::Maximum] {
            let n = if op == MergeOp::Subtract { 2 } else { 3 };
            let report = gradcheck(&xs[..n], |g, v| {
                elementwise(g, op, v).map_err(|e| match e {
                    LayerError::Autograd(e) => e,
                    e => AutogradError::InvalidArgument { op: "merge", message: e.to_string() },
                })
            })
            .unwrap();
            assert!(report.passes(tol), "{op:?}: {report}");
        }
    }

    #[test]
    fn dot_values_and_gradients() {
        // [1, 2, 3]·[4, −5, 6] = 4 − 10 + 18 = 12; [0.5, 0, −1]·[2, 7, 3] = 1 − 3 = −2.
        let a = t(&[2, 3], &[1., 2., 3., 0.5, 0., -1.]);
        let c = t(&[2, 3], &[4., -5., 6., 2., 7., 3.]);
        let y = run(LayerSpec::Dot, &[a.clone(), c.clone()]);
        assert_eq!(y.shape(), [2, 1]);
        assert_eq!(y.to_vec(), [12., -2.]);
        let report = gradcheck(&[a, c], |g, v| {
            dot(g, v[0], v[1]).map_err(|e| match e {
                LayerError::Autograd(e) => e,
                e => AutogradError::InvalidArgument { op: "dot", message: e.to_string() },
            })
        })
        .unwrap();
        assert!(report.passes(1e-6), "{report}");
        // The same tensor twice: y = ‖a‖², ∂y/∂a = 2a.
        let mut g = Graph::<f64>::new();
        let x = g.variable(t(&[1, 2], &[3., -4.]));
        let y = dot(&mut g, x, x).unwrap();
        assert_eq!(g.value(y).to_vec(), [25.]);
        let s = g.sum(y);
        assert_eq!(g.backward(s).unwrap().wrt(x).unwrap().to_vec(), [6., -8.]);
        let e = LayerSpec::Dot.build_node::<f32>(0, Some("d"), &[&[3], &[4]]).unwrap_err();
        assert!(matches!(&e, LayerError::BuildShape { got, .. } if got == &[4]), "{e}");
        let e = LayerSpec::Dot.build_node::<f32>(0, None, &[&[3], &[3], &[3]]).unwrap_err();
        assert!(e.to_string().contains("exactly 2 inputs, got 3"), "{e}");
        let e = LayerSpec::Dot.build_node::<f32>(0, None, &[&[2, 3], &[2, 3]]).unwrap_err();
        assert!(matches!(e, LayerError::BuildShape { .. }), "{e}");
    }

    #[test]
    fn build_errors() {
        let e = LayerSpec::Add.build_node::<f32>(3, Some("sum"), &[&[4, 2], &[4, 3]]).unwrap_err();
        assert!(matches!(&e, LayerError::BuildShape { got, .. } if got == &[4, 3]), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("[4, 2]") && msg.contains("[4, 3]") && msg.contains("\"sum\" (Add)"), "{msg}");
        let e = LayerSpec::Subtract.build_node::<f32>(0, None, &[&[2], &[2], &[2]]).unwrap_err();
        assert!(e.to_string().contains("exactly 2 inputs, got 3"), "{e}");
        let e = LayerSpec::Maximum.build::<f32>(0, &[2]).unwrap_err();
        assert!(e.to_string().contains("at least 2 inputs, got 1"), "{e}");
        let concat = |axis| LayerSpec::Concatenate(ConcatenateConfig { axis });
        let e = concat(0).build_node::<f32>(0, None, &[&[2, 3], &[2, 3]]).unwrap_err();
        assert!(matches!(e, LayerError::InvalidConfig { .. }) && e.to_string().contains("batch axis"), "{e}");
        for axis in [3, -3] {
            let e = concat(axis).build_node::<f32>(0, None, &[&[2, 3], &[2, 3]]).unwrap_err();
            assert!(e.to_string().contains("out of range"), "{e}");
        }
        let e = concat(-1).build_node::<f32>(0, None, &[&[2, 3], &[3, 3]]).unwrap_err();
        assert!(matches!(&e, LayerError::BuildShape { got, .. } if got == &[3, 3]), "{e}");
        assert!(e.to_string().contains("[2, 3]"), "{e}");
        let ok = concat(-2).build_node::<f32>(0, None, &[&[2, 3], &[5, 3]]).unwrap();
        assert_eq!(ok.output_shape(), [7, 3]);
        let e = concat(1).build_node::<f32>(0, None, &[&[2, 3], &[2]]).unwrap_err();
        assert!(matches!(e, LayerError::BuildShape { .. }), "{e}");
    }
}
