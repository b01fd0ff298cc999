//! The reverse walk: backward rules, gradient accumulation, and [`Gradients`].

use ndarray::{ArrayD, IxDyn, Zip};
use nn_tensor::{Element, Tensor};

use crate::broadcast::sum_to_shape;
use crate::error::{AutogradError, Result};
use crate::graph::{Graph, Node, NodeKind, Var};

/// The signature of a backward rule: given the gradient of the loss with respect to
/// an operation's output (by value, with the output's shape, so an element-wise rule
/// can scale it in place and hand the same buffer on), add the gradients with respect
/// to the operation's inputs into the [`GradSink`]. Every built-in op writes its rule
/// as such a closure next to its forward code; [`Graph::try_custom`] takes one too.
pub trait BackwardFn<T: Element>:
    Fn(&BackwardCtx<'_, T>, Tensor<T>, &mut GradSink<'_, T>) -> Result<()> + Send + Sync + 'static
{
}

impl<T: Element, F> BackwardFn<T> for F where
    F: Fn(&BackwardCtx<'_, T>, Tensor<T>, &mut GradSink<'_, T>) -> Result<()> + Send + Sync + 'static
{
}

/// The boxed form stored on the tape.
pub(crate) type Backward<T> = dyn Fn(&BackwardCtx<'_, T>, Tensor<T>, &mut GradSink<'_, T>) -> Result<()> + Send + Sync;

/// Read access, during backward, to an operation's input values and its output.
pub struct BackwardCtx<'a, T: Element> {
    nodes: &'a [Node<T>],
    parents: &'a [usize],
    this: usize,
}

impl<'a, T: Element> BackwardCtx<'a, T> {
    /// The value of input `k` (in the order the inputs were given to the op).
    ///
    /// # Panics
    /// If `k` is not below the number of inputs.
    #[inline]
    pub fn input(&self, k: usize) -> &'a Tensor<T> {
        self.nodes[self.parents[k]].value.get()
    }

    /// The operation's output value.
    #[inline]
    pub fn output(&self) -> &'a Tensor<T> {
        self.nodes[self.this].value.get()
    }

    /// The number of inputs.
    pub fn num_inputs(&self) -> usize {
        self.parents.len()
    }
}

/// Where a backward rule puts the gradients of its inputs. Gradients reaching the
/// same node from several uses are summed here (in tape order, so results are
/// reproducible).
pub struct GradSink<'a, T: Element> {
    grads: &'a mut [Option<Tensor<T>>],
    nodes: &'a [Node<T>],
    parents: &'a [usize],
    op: &'static str,
}

impl<T: Element> GradSink<'_, T> {
    /// Whether input `k` needs a gradient. Rules skip the work for inputs that do not
    /// (data, constants, subgraphs without parameters).
    ///
    /// # Panics
    /// If `k` is not below the number of inputs.
    #[inline]
    pub fn wants(&self, k: usize) -> bool {
        self.nodes[self.parents[k]].requires_grad
    }

    /// The shape of input `k`.
    #[inline]
    pub fn input_shape(&self, k: usize) -> &[usize] {
        self.nodes[self.parents[k]].value.shape()
    }

    /// Adds `grad` (which must have input `k`'s shape) to input `k`'s gradient. The
    /// first contribution is stored without copying; later ones are added in place.
    /// Does nothing when input `k` needs no gradient.
    ///
    /// # Errors
    /// [`AutogradError::GradientShape`] when `grad`'s shape differs from the input's.
    pub fn add(&mut self, k: usize, grad: Tensor<T>) -> Result<()> {
        if !self.wants(k) {
            return Ok(());
        }
        self.check_shape(k, grad.shape())?;
        let slot = &mut self.grads[self.parents[k]];
        match slot {
            None => *slot = Some(grad),
            Some(acc) => add_assign(acc.array_mut(), &grad.view()),
        }
        Ok(())
    }

    /// Adds a gradient computed at a broadcast shape to input `k`, first summing it
    /// over the axes along which input `k` was broadcast (the one place where
    /// broadcasting is undone, see [`sum_to_shape`](crate::sum_to_shape)).
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] when `grad`'s shape is not a broadcast of the input's.
    pub fn add_unbroadcast(&mut self, k: usize, grad: Tensor<T>) -> Result<()> {
        if !self.wants(k) {
            return Ok(());
        }
        let shape = self.input_shape(k).to_vec();
        let g = sum_to_shape(grad, &shape).map_err(|source| AutogradError::Tensor { op: self.op, source })?;
        self.add(k, g)
    }

    /// Adds `grad` broadcast (NumPy rules) up to input `k`'s shape, without
    /// materialising the broadcast when a gradient is already stored: the backward
    /// rule of reductions (`sum`, `mean`).
    ///
    /// # Errors
    /// [`AutogradError::Tensor`] when `grad` does not broadcast to the input's shape.
    pub fn add_expanded(&mut self, k: usize, grad: &Tensor<T>) -> Result<()> {
        if !self.wants(k) {
            return Ok(());
        }
        let shape = self.input_shape(k).to_vec();
        let view = grad.array().broadcast(IxDyn(&shape)).ok_or_else(|| AutogradError::Tensor {
            op: self.op,
            source: nn_tensor::TensorError::ShapeMismatch {
                op: "broadcast",
                lhs: grad.shape().to_vec(),
                rhs: shape.clone(),
            },
        })?;
        let slot = &mut self.grads[self.parents[k]];
        match slot {
            None => *slot = Some(Tensor::from(view.as_standard_layout().into_owned())),
            Some(acc) => add_assign(acc.array_mut(), &view),
        }
        Ok(())
    }

    /// Input `k`'s gradient buffer, contiguous and in row-major layout, for rules that
    /// scatter into it (pooling, gathers, `col2im`, GEMM with `β = 1`), together with
    /// the `β` to use: `0` when the buffer is fresh (all zeros, may be overwritten)
    /// and `1` when it already holds a gradient that must be added to. `None` when
    /// input `k` needs no gradient.
    pub fn buffer(&mut self, k: usize) -> Option<(&mut Tensor<T>, T)> {
        if !self.wants(k) {
            return None;
        }
        let node = &self.nodes[self.parents[k]];
        let slot = &mut self.grads[self.parents[k]];
        let beta = match slot {
            None => {
                // Zeroed on nn's pool in chunks (a language model's logits gradient
                // is 16 MB): not one single-threaded memset.
                let shape = node.value.shape();
                let zeros = nn_tensor::zeros_par(shape.iter().product());
                *slot = Some(Tensor::from_vec(shape, zeros));
                T::zero()
            }
            Some(acc) => {
                if !acc.is_contiguous() {
                    *acc = acc.to_contiguous();
                }
                T::one()
            }
        };
        slot.as_mut().map(|t| (t, beta))
    }

    fn check_shape(&self, k: usize, got: &[usize]) -> Result<()> {
        let expected = self.input_shape(k);
        if expected != got {
            return Err(AutogradError::GradientShape {
                op: self.op,
                input: k,
                expected: expected.to_vec(),
                got: got.to_vec(),
            });
        }
        Ok(())
    }
}

/// `acc += g` element-wise (shapes equal or `g` broadcast to `acc`'s shape).
#[inline]
fn add_assign<T: Element>(acc: &mut ArrayD<T>, g: &ndarray::ArrayViewD<'_, T>) {
    // Equal shapes, both contiguous (a residual connection's two gradients): on
    // nn's pool in fixed chunks, the same additions as the loop below.
    if acc.shape() == g.shape() {
        if let (Some(a), Some(b)) = (acc.as_slice_mut(), g.as_slice()) {
            const CHUNK: usize = 1 << 15;
            nn_tensor::par_chunks_mut(a, CHUNK, |i, a| {
                let b = &b[i * CHUNK..][..a.len()];
                a.iter_mut().zip(b).for_each(|(a, &b)| *a += b);
            });
            return;
        }
    }
    Zip::from(acc).and_broadcast(g).for_each(|a, &b| *a += b);
}

/// Gradients of a loss with respect to the parameters and variables of one graph.
///
/// Parameters come in binding order ([`Gradients::iter`]), so everything downstream
/// (optimizers, clipping by global norm, logs) is deterministic. Every bound
/// parameter has an entry; one the loss does not depend on gets a gradient of zeros.
/// Each gradient has its parameter's shape and is contiguous (row-major).
#[derive(Debug, Clone)]
pub struct Gradients<T: Element = f32> {
    graph: u64,
    params: Vec<(String, usize, Tensor<T>)>,
    variables: Vec<(usize, Tensor<T>)>,
}

impl<T: Element> Gradients<T> {
    /// The gradient of the parameter bound as `name`, if one was bound.
    pub fn get(&self, name: &str) -> Option<&Tensor<T>> {
        self.params.iter().find(|(n, _, _)| n == name).map(|(_, _, g)| g)
    }

    /// Mutable access (e.g. for a regularizer adding its own gradient).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Tensor<T>> {
        self.params.iter_mut().find(|(n, _, _)| n == name).map(|(_, _, g)| g)
    }

    /// Takes the gradient of `name` out (the entry is removed).
    pub fn remove(&mut self, name: &str) -> Option<Tensor<T>> {
        let pos = self.params.iter().position(|(n, _, _)| n == name)?;
        Some(self.params.remove(pos).2)
    }

    /// The gradient with respect to a parameter or [`Graph::variable`] leaf `var`
    /// of the graph that produced these gradients; `None` for inputs, constants,
    /// operation results and `Var`s of other graphs.
    pub fn wrt(&self, var: Var) -> Option<&Tensor<T>> {
        if var.graph != self.graph {
            return None;
        }
        self.params
            .iter()
            .find(|(_, i, _)| *i == var.index)
            .map(|(_, _, g)| g)
            .or_else(|| self.variables.iter().find(|(i, _)| *i == var.index).map(|(_, g)| g))
    }

    /// `(name, gradient)` pairs in binding order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor<T>)> + '_ {
        self.params.iter().map(|(n, _, g)| (n.as_str(), g))
    }

    /// `(name, gradient)` pairs in binding order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Tensor<T>)> + '_ {
        self.params.iter_mut().map(|(n, _, g)| (n.as_str(), g))
    }

    /// The parameter names in binding order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.params.iter().map(|(n, _, _)| n.as_str())
    }

    /// Number of parameter gradients.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether there is no parameter gradient.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Consumes into `(name, gradient)` pairs in binding order.
    pub fn into_vec(self) -> Vec<(String, Tensor<T>)> {
        self.params.into_iter().map(|(n, _, g)| (n, g)).collect()
    }
}

impl<T: Element> IntoIterator for Gradients<T> {
    type Item = (String, Tensor<T>);
    type IntoIter = std::vec::IntoIter<(String, Tensor<T>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl<T: Element> Graph<T> {
    /// Reverse-mode differentiation of a scalar `loss`: walks the tape once, from
    /// `loss` back to the first node, applying each operation's backward rule
    /// (the chain rule; e.g. Goodfellow, Bengio & Courville, *Deep Learning*, §6.5).
    /// A node used by several operations receives the sum of their gradients.
    ///
    /// The graph is not consumed: values stay readable afterwards, and calling
    /// backward again gives the same result.
    ///
    /// # Errors
    /// [`AutogradError::NoGrad`] on a [`Graph::no_grad`] graph;
    /// [`AutogradError::NonScalarLoss`] when `loss` holds more than one element (use
    /// [`Graph::backward_with_seed`]); [`AutogradError::ForeignVar`].
    pub fn backward(&self, loss: Var) -> Result<Gradients<T>> {
        let i = self.scalar_root("backward", loss)?;
        self.run_backward(i, Tensor::ones(self.val(i).shape()))
    }

    /// The tape position of a scalar `loss` on a recording graph (the checks of
    /// [`Graph::backward`]).
    fn scalar_root(&self, op: &'static str, loss: Var) -> Result<usize> {
        if !self.is_recording() {
            return Err(AutogradError::NoGrad);
        }
        let i = self.idx(op, loss)?;
        let value = self.val(i);
        if value.len() != 1 {
            return Err(AutogradError::NonScalarLoss { shape: value.shape().to_vec() });
        }
        Ok(i)
    }

    /// Reverse-mode differentiation of a non-scalar `output` with an explicit seed
    /// gradient ∂L/∂output (the vector of a vector–Jacobian product). With a seed of
    /// ones this equals `backward` of `sum(output)`.
    ///
    /// # Errors
    /// [`AutogradError::SeedShape`] when `seed`'s shape differs from `output`'s; as
    /// [`Graph::backward`] otherwise.
    pub fn backward_with_seed(&self, output: Var, seed: Tensor<T>) -> Result<Gradients<T>> {
        if !self.is_recording() {
            return Err(AutogradError::NoGrad);
        }
        let i = self.idx("backward_with_seed", output)?;
        if seed.shape() != self.val(i).shape() {
            return Err(AutogradError::SeedShape { seed: seed.shape().to_vec(), output: self.val(i).shape().to_vec() });
        }
        self.run_backward(i, seed)
    }

    /// [`Graph::backward`] for a graph used for one step only: consumes the graph and
    /// frees each operation's value and everything its backward rule saved as soon
    /// as the walk has passed it (PyTorch's default, `retain_graph=False`). A rule
    /// reads only its own node and its inputs, all at or before its tape position,
    /// so nothing freed is read again; the peak memory of a training step drops by
    /// the activations already passed while the gradients of earlier layers are
    /// being formed. Gradients equal [`Graph::backward`]'s bit for bit (tested).
    ///
    /// # Errors
    /// As [`Graph::backward`].
    pub fn backward_once(mut self, loss: Var) -> Result<Gradients<T>> {
        let root = self.scalar_root("backward_once", loss)?;
        let mut grads = self.seeded_grads(root, Tensor::ones(self.val(root).shape()));
        for j in (0..=root).rev() {
            self.backward_step(j, &mut grads)?;
            let node = &mut self.nodes[j];
            if node.kind == NodeKind::Op {
                // Leaves stay: their shapes give the zero gradients handed out below.
                node.backward = None;
                node.value.release();
                self.release_bytes(j);
            }
        }
        Ok(self.leaf_gradients(grads))
    }

    fn seeded_grads(&self, root: usize, seed: Tensor<T>) -> Vec<Option<Tensor<T>>> {
        let mut grads: Vec<Option<Tensor<T>>> = std::iter::repeat_with(|| None).take(root + 1).collect();
        if self.nodes[root].requires_grad {
            grads[root] = Some(seed);
        }
        grads
    }

    /// Runs node `j`'s backward rule on its gradient (taken from `grads[j]`), adding
    /// into its inputs' entries of `grads`.
    fn backward_step(&self, j: usize, grads: &mut [Option<Tensor<T>>]) -> Result<()> {
        let node = &self.nodes[j];
        if node.kind != NodeKind::Op {
            return Ok(()); // leaves keep their gradient in `grads[j]`
        }
        let Some(g) = grads[j].take() else { return Ok(()) };
        if let Some(rule) = &node.backward {
            let ctx = BackwardCtx { nodes: &self.nodes, parents: &node.parents, this: j };
            let mut sink = GradSink { grads: &mut grads[..j], nodes: &self.nodes, parents: &node.parents, op: node.op };
            rule(&ctx, g, &mut sink)?;
        }
        Ok(())
    }

    fn run_backward(&self, root: usize, seed: Tensor<T>) -> Result<Gradients<T>> {
        let mut grads = self.seeded_grads(root, seed);
        for j in (0..=root).rev() {
            self.backward_step(j, &mut grads)?;
        }
        Ok(self.leaf_gradients(grads))
    }

    /// The gradients of the bound parameters and variables, out of `grads`.
    fn leaf_gradients(&self, mut grads: Vec<Option<Tensor<T>>>) -> Gradients<T> {
        // Leaf gradients are handed out contiguous (a permute's backward, say, can
        // leave a strided one), zeros for leaves the output does not depend on.
        let mut take = |i: usize| -> Tensor<T> {
            match grads.get_mut(i).and_then(Option::take) {
                Some(g) if g.is_contiguous() => g,
                Some(g) => g.to_contiguous(),
                None => Tensor::zeros(self.val(i).shape()),
            }
        };
        let params = self.params.iter().map(|(n, i)| (n.clone(), *i, take(*i))).collect();
        let variables = self.variables.iter().map(|&i| (i, take(i))).collect();
        Gradients { graph: self.id(), params, variables }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_use_accumulates_and_unused_params_get_zeros() {
        // y = w·w + 3w  (w used three times) ⇒ dy/dw = 2w + 3 = 7 at w = 2.
        let mut g = Graph::<f64>::new();
        let w = g.param("w", Tensor::from_vec(&[1], vec![2.]));
        let u = g.param("unused", Tensor::from_vec(&[2], vec![1., 1.]));
        let ww = g.mul(w, w);
        let w3 = g.mul_scalar(w, 3.0);
        let y = g.add(ww, w3);
        let grads = g.backward(y).unwrap();
        assert_eq!(grads.get("w").unwrap().to_vec(), vec![7.]);
        assert_eq!(grads.get("unused").unwrap().to_vec(), vec![0., 0.]);
        assert_eq!(grads.names().collect::<Vec<_>>(), vec!["w", "unused"]);
        assert_eq!(grads.wrt(w).unwrap().to_vec(), vec![7.]);
        assert!(grads.wrt(u).is_some());
        assert!(grads.wrt(ww).is_none());
        // Backward does not consume the graph: a second call agrees.
        assert_eq!(g.backward(y).unwrap().get("w").unwrap().to_vec(), vec![7.]);
    }

    /// A graph whose rules read their own outputs (tanh, exp, sigmoid), their inputs
    /// (matmul) and a node used twice, for `backward_once` against `backward`.
    fn two_layer_graph(x: &Tensor<f64>, w1: &Tensor<f64>, w2: &Tensor<f64>) -> (Graph<f64>, Var, Var) {
        let mut g = Graph::<f64>::new();
        let xv = g.variable(x.clone());
        let a = g.param("w1", w1.clone());
        let b = g.param("w2", w2.clone());
        let _unused = g.param("unused", Tensor::from_vec(&[2], vec![1., 1.]));
        let h = g.try_matmul(xv, a).unwrap();
        let h = g.try_tanh(h).unwrap();
        let e = g.try_exp(h).unwrap();
        let s = g.try_sigmoid(h).unwrap();
        let hs = g.mul(e, s);
        let y = g.try_matmul(hs, b).unwrap();
        let y2 = g.mul(y, y);
        let loss = g.try_sum(y2).unwrap();
        (g, xv, loss)
    }

    #[test]
    fn backward_once_frees_as_it_goes_and_agrees_bit_for_bit() {
        let x = Tensor::from_vec(&[2, 3], vec![0.5, -1.0, 2.0, 0.25, 1.5, -0.75]);
        let w1 = Tensor::from_vec(&[3, 2], vec![0.1, -0.2, 0.3, 0.4, -0.5, 0.6]);
        let w2 = Tensor::from_vec(&[2, 1], vec![0.7, -0.8]);
        let (g, xv, loss) = two_layer_graph(&x, &w1, &w2);
        let kept = g.backward(loss).unwrap();
        let (g2, xv2, loss2) = two_layer_graph(&x, &w1, &w2);
        let once = g2.backward_once(loss2).unwrap();
        for name in ["w1", "w2", "unused"] {
            assert_eq!(kept.get(name).unwrap().to_vec(), once.get(name).unwrap().to_vec(), "{name}");
        }
        assert_eq!(once.get("unused").unwrap().to_vec(), [0., 0.]);
        assert_eq!(kept.wrt(xv).unwrap().to_vec(), once.wrt(xv2).unwrap().to_vec());
        // By hand for w2: ∂(Σ y²)/∂w2 = hsᵀ·2y, hs = e^h·σ(h), h = tanh(x·w1).
        let (xs, w1s) = (x.to_vec(), w1.to_vec());
        let mut h = Vec::new();
        for r in 0..2 {
            for c in 0..2 {
                let t = (0..3).map(|k| xs[r * 3 + k] * w1s[k * 2 + c]).sum::<f64>().tanh();
                h.push(t.exp() / (1.0 + (-t).exp()));
            }
        }
        let y: Vec<f64> = (0..2).map(|r| h[r * 2] * 0.7 - h[r * 2 + 1] * 0.8).collect();
        let dw2: Vec<f64> = (0..2).map(|c| (0..2).map(|r| h[r * 2 + c] * 2.0 * y[r]).sum()).collect();
        for (got, want) in once.get("w2").unwrap().to_vec().iter().zip(&dw2) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    /// A two-op chain `first → second → sum`: `second`'s rule holds `token`; `first`'s
    /// rule (run after it) records whether the token was still alive then.
    fn chain_with_token(
        token: std::sync::Arc<()>,
        alive: std::sync::Arc<std::sync::Mutex<Option<bool>>>,
    ) -> (Graph<f64>, Var) {
        let mut g = Graph::<f64>::new();
        let w = g.param("w", Tensor::from_vec(&[2], vec![1.0, 2.0]));
        let weak = std::sync::Arc::downgrade(&token);
        let first = g
            .try_custom("first", &[w], Tensor::from_vec(&[2], vec![3.0, 6.0]), move |_ctx, grad, sink| {
                *alive.lock().unwrap() = Some(weak.upgrade().is_some());
                sink.add(0, grad.map(|v| 3.0 * v))
            })
            .unwrap();
        let second = g
            .try_custom("second", &[first], Tensor::from_vec(&[2], vec![6.0, 12.0]), move |_ctx, grad, sink| {
                let _saved = &token;
                sink.add(0, grad.map(|v| 2.0 * v))
            })
            .unwrap();
        let loss = g.try_sum(second).unwrap();
        (g, loss)
    }

    #[test]
    fn backward_once_drops_what_a_rule_saved_once_it_has_run() {
        use std::sync::{Arc, Mutex};
        for once in [false, true] {
            let alive = Arc::new(Mutex::new(None));
            let (g, loss) = chain_with_token(Arc::new(()), Arc::clone(&alive));
            let before = g.live_bytes();
            let grads = if once { g.backward_once(loss).unwrap() } else { g.backward(loss).unwrap() };
            // d(Σ 2·3·w)/dw = 6 either way.
            assert_eq!(grads.get("w").unwrap().to_vec(), [6.0, 6.0]);
            // `backward` keeps every rule (and what it saved) until the graph is
            // dropped; `backward_once` drops `second`'s before `first`'s rule runs.
            assert_eq!(*alive.lock().unwrap(), Some(!once), "once = {once}");
            assert!(before >= 3 * 2 * 8);
        }
    }

    #[test]
    fn non_scalar_loss_needs_a_seed() {
        let mut g = Graph::<f64>::new();
        let x = g.variable(Tensor::from_vec(&[3], vec![1., 2., 3.]));
        let y = g.mul(x, x);
        let err = g.backward(y).unwrap_err();
        assert_eq!(err, AutogradError::NonScalarLoss { shape: vec![3] });
        assert!(err.to_string().contains("backward_with_seed"));
        // d(Σ s_i x_i²)/dx_i = 2 s_i x_i
        let grads = g.backward_with_seed(y, Tensor::from_vec(&[3], vec![1., 0., -1.])).unwrap();
        assert_eq!(grads.wrt(x).unwrap().to_vec(), vec![2., 0., -6.]);
        let err = g.backward_with_seed(y, Tensor::zeros(&[1, 3])).unwrap_err();
        assert!(matches!(err, AutogradError::SeedShape { .. }));
    }

    #[test]
    fn custom_op_with_bad_gradient_shape_is_reported() {
        let mut g = Graph::<f64>::new();
        let x = g.variable(Tensor::from_vec(&[2], vec![1., 2.]));
        let y = g
            .try_custom("twice", &[x], Tensor::from_vec(&[2], vec![2., 4.]), |_, _, sink| {
                sink.add(0, Tensor::zeros(&[3]))
            })
            .unwrap();
        let s = g.sum(y);
        let err = g.backward(s).unwrap_err();
        assert_eq!(err, AutogradError::GradientShape { op: "twice", input: 0, expected: vec![2], got: vec![3] });
    }
}
