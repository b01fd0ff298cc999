//! The tape: [`Graph`], its [`Var`] handles, leaves, and memory accounting.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use nn_tensor::{Element, Tensor};

use crate::backward::{Backward, BackwardFn};
use crate::error::{unwrap, AutogradError, Result};

static NEXT_GRAPH_ID: AtomicU64 = AtomicU64::new(1);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_NODES: AtomicUsize = AtomicUsize::new(0);

/// Bytes of tensor data held by the nodes of every [`Graph`] alive in this process
/// (node values plus what backward rules saved), summed over all threads.
///
/// A graph adds to this as it grows and subtracts everything when dropped, so after
/// a training step has dropped its graph the count is back where it started (zero
/// when no other graph is alive). See also [`Graph::live_bytes`].
pub fn live_graph_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Number of nodes in every [`Graph`] alive in this process.
pub fn live_graph_nodes() -> usize {
    LIVE_NODES.load(Ordering::Relaxed)
}

/// A handle to one value recorded in a [`Graph`]: its position on the tape and the
/// id of the graph that made it.
///
/// `Var` is `Copy` (16 bytes) and owns nothing; read its value with
/// [`Graph::value`]. Passing a `Var` to a graph other than the one that created it
/// gives [`AutogradError::ForeignVar`] from every `try_` method (the plain methods
/// panic with that message), never a silent mix-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var {
    pub(crate) graph: u64,
    pub(crate) index: usize,
}

impl Var {
    /// Position on the tape (0 for the first node): nodes are numbered in creation order.
    pub fn index(self) -> usize {
        self.index
    }

    /// The id of the graph that created this handle (see [`Graph::id`]).
    pub fn graph_id(self) -> u64 {
        self.graph
    }
}

/// What a leaf holds: a tensor moved in, a copy of a borrowed tensor, or a shared
/// [`Arc`] (no copy). Every leaf constructor ([`Graph::input`], [`Graph::param`], ...)
/// takes `impl Into<LeafValue<T>>`, so all three forms are accepted:
///
/// - `Tensor<T>`: moved in, no copy (a batch built for this step);
/// - `&Tensor<T>`: cloned (a parameter owned by a layer; one copy per step);
/// - `Arc<Tensor<T>>` or `&Arc<Tensor<T>>`: shared, no copy (parameters kept in
///   `Arc`s; the optimizer's `Arc::make_mut` after the graph is dropped copies nothing).
#[derive(Debug, Clone)]
pub struct LeafValue<T: Element>(pub(crate) Value<T>);

impl<T: Element> From<Tensor<T>> for LeafValue<T> {
    fn from(t: Tensor<T>) -> Self {
        LeafValue(Value::Owned(t))
    }
}

impl<T: Element> From<&Tensor<T>> for LeafValue<T> {
    fn from(t: &Tensor<T>) -> Self {
        LeafValue(Value::Owned(t.clone()))
    }
}

impl<T: Element> From<Arc<Tensor<T>>> for LeafValue<T> {
    fn from(t: Arc<Tensor<T>>) -> Self {
        LeafValue(Value::Shared(t))
    }
}

impl<T: Element> From<&Arc<Tensor<T>>> for LeafValue<T> {
    fn from(t: &Arc<Tensor<T>>) -> Self {
        LeafValue(Value::Shared(Arc::clone(t)))
    }
}

/// A node's value: owned, or shared with the caller.
#[derive(Debug, Clone)]
pub(crate) enum Value<T: Element> {
    Owned(Tensor<T>),
    Shared(Arc<Tensor<T>>),
    /// Freed by [`Graph::release`] or [`Graph::backward_once`]; the shape stays for
    /// the gradient checks of backward.
    Released(Box<[usize]>),
}

impl<T: Element> Value<T> {
    /// The value.
    ///
    /// # Panics
    /// For a released value: only a backward rule that broke its declaration
    /// ([`Graph::declare_reads`]) can get here; forward use is refused by
    /// `Graph::idx` with [`AutogradError::Released`].
    #[inline]
    pub(crate) fn get(&self) -> &Tensor<T> {
        match self {
            Value::Owned(t) => t,
            Value::Shared(t) => t,
            Value::Released(_) => panic!("a backward rule read a value it declared it does not read"),
        }
    }

    /// The value's shape (kept after release).
    #[inline]
    pub(crate) fn shape(&self) -> &[usize] {
        match self {
            Value::Owned(t) => t.shape(),
            Value::Shared(t) => t.shape(),
            Value::Released(s) => s,
        }
    }

    /// Frees the value, keeping its shape.
    pub(crate) fn release(&mut self) {
        let shape: Box<[usize]> = self.shape().into();
        *self = Value::Released(shape);
    }

    /// Moves the value out, leaving it released: no copy for an owned value (a
    /// shared one is copied only while another holder keeps it).
    pub(crate) fn take(&mut self) -> Tensor<T> {
        let shape: Box<[usize]> = self.shape().into();
        match std::mem::replace(self, Value::Released(shape)) {
            Value::Owned(t) => t,
            Value::Shared(t) => Arc::try_unwrap(t).unwrap_or_else(|t| (*t).clone()),
            Value::Released(_) => unreachable!("Graph::idx refuses released values"),
        }
    }
}

/// What kind of node a [`Var`] points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// Data fed in for this step ([`Graph::input`]); no gradient.
    Input,
    /// A fixed tensor ([`Graph::constant`], [`Graph::detach`]); no gradient.
    Constant,
    /// A named parameter ([`Graph::param`]); its gradient is reported by name.
    Param,
    /// An unnamed leaf whose gradient is wanted ([`Graph::variable`]).
    Variable,
    /// The result of an operation.
    Op,
}

/// One entry of the tape.
pub(crate) struct Node<T: Element> {
    pub(crate) value: Value<T>,
    pub(crate) kind: NodeKind,
    /// Operation name (`"input"`, `"param"`, `"matmul"`, ...), for messages.
    pub(crate) op: &'static str,
    /// Tape positions of the operation's inputs (empty for leaves).
    pub(crate) parents: Box<[usize]>,
    /// The backward rule; `None` for leaves and for nodes no gradient flows through.
    pub(crate) backward: Option<Box<Backward<T>>>,
    /// Whether a gradient must flow into this node.
    pub(crate) requires_grad: bool,
    /// Bytes this node accounts for (value plus saved tensors).
    pub(crate) bytes: usize,
    /// Whether the backward rule reads the inputs' values ([`Graph::declare_reads`]).
    pub(crate) reads_inputs: bool,
    /// Whether the backward rule reads the node's own value.
    pub(crate) reads_output: bool,
}

/// A define-by-run tape for reverse-mode automatic differentiation.
///
/// Every operation (`try_add`, `try_matmul`, `try_conv2d`, ...) computes its value at
/// once, appends a node to an arena `Vec` in creation order, and returns a [`Var`]
/// handle. A node records its inputs' positions and a boxed backward rule holding
/// only what that rule needs (e.g. the argmax positions of a max-pool). There are no
/// reference-counted cells: [`Graph::backward`] walks the arena once, from the loss
/// back to the first node, and returns [`Gradients`](crate::Gradients).
///
/// Parameters live outside the graph and are bound as leaves for one step with
/// [`Graph::param`] under a stable name such as `"layers.0.kernel"`; their gradients
/// come back under the same name. A graph is meant to live for one training step:
/// dropping it frees everything it holds (see [`live_graph_bytes`]).
///
/// A graph made with [`Graph::no_grad`] computes the same values but records no
/// backward rules and saves nothing for backward: use it for evaluation and
/// prediction.
///
/// # Errors and panics
/// Each operation has a `try_` form returning [`AutogradError`] (bad shapes, a
/// foreign `Var`, bad arguments) and a plain form that panics with the same
/// message, for code whose shapes were checked when the model was built.
///
/// `T` is `f32` (training, the default) or `f64` (gradient checks).
pub struct Graph<T: Element = f32> {
    id: u64,
    recording: bool,
    pub(crate) nodes: Vec<Node<T>>,
    /// Bound parameters in binding order: (name, tape position).
    pub(crate) params: Vec<(String, usize)>,
    /// Unnamed gradient-requiring leaves, in creation order.
    pub(crate) variables: Vec<usize>,
    bytes: usize,
}

impl<T: Element> Default for Graph<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> std::fmt::Debug for Graph<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("id", &self.id)
            .field("recording", &self.recording)
            .field("nodes", &self.nodes.len())
            .field("params", &self.params.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>())
            .field("live_bytes", &self.bytes)
            .finish()
    }
}

impl<T: Element> Drop for Graph<T> {
    fn drop(&mut self) {
        LIVE_BYTES.fetch_sub(self.bytes, Ordering::Relaxed);
        LIVE_NODES.fetch_sub(self.nodes.len(), Ordering::Relaxed);
    }
}

impl<T: Element> Graph<T> {
    /// An empty graph that records backward rules (for training).
    pub fn new() -> Self {
        Self::with_recording(true)
    }

    /// An empty graph that computes values only: no backward rules are stored and
    /// nothing is saved for backward, so it is lighter and faster (evaluation,
    /// prediction). [`Graph::backward`] on it returns [`AutogradError::NoGrad`].
    pub fn no_grad() -> Self {
        Self::with_recording(false)
    }

    fn with_recording(recording: bool) -> Self {
        Graph {
            id: NEXT_GRAPH_ID.fetch_add(1, Ordering::Relaxed),
            recording,
            nodes: Vec::new(),
            params: Vec::new(),
            variables: Vec::new(),
            bytes: 0,
        }
    }

    /// This graph's process-unique id (carried by every [`Var`] it creates).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether backward rules are recorded (false for [`Graph::no_grad`] graphs).
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Number of nodes on the tape.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tape is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Bytes of tensor data this graph holds: every node's value plus the tensors
    /// backward rules saved (shared parameter values included).
    pub fn live_bytes(&self) -> usize {
        self.bytes
    }

    // ------------------------------------------------------------------ leaves

    fn push_leaf(&mut self, kind: NodeKind, op: &'static str, value: LeafValue<T>) -> Var {
        let requires_grad = self.recording && matches!(kind, NodeKind::Param | NodeKind::Variable);
        self.push_node(Node {
            value: value.0,
            kind,
            op,
            parents: Box::new([]),
            backward: None,
            requires_grad,
            bytes: 0,
            reads_inputs: false,
            reads_output: false,
        })
    }

    /// Feeds data for this step (a batch of features or targets). Inputs get no
    /// gradient; use [`Graph::variable`] for a leaf whose gradient is wanted.
    pub fn input(&mut self, value: impl Into<LeafValue<T>>) -> Var {
        self.push_leaf(NodeKind::Input, "input", value.into())
    }

    /// A fixed tensor (a mask, a constant matrix); no gradient flows into it.
    pub fn constant(&mut self, value: impl Into<LeafValue<T>>) -> Var {
        self.push_leaf(NodeKind::Constant, "constant", value.into())
    }

    /// An unnamed leaf whose gradient is wanted: after [`Graph::backward`] read it
    /// with [`Gradients::wrt`](crate::Gradients::wrt). Used by [`gradcheck`](crate::gradcheck)
    /// and for gradients with respect to inputs (saliency, adversarial examples).
    pub fn variable(&mut self, value: impl Into<LeafValue<T>>) -> Var {
        let v = self.push_leaf(NodeKind::Variable, "variable", value.into());
        self.variables.push(v.index);
        v
    }

    /// Binds a parameter that lives outside the graph as a leaf for this step, under
    /// a stable `name` (e.g. `"layers.0.kernel"`). [`Graph::backward`] reports its
    /// gradient under that name, in binding order. Use the returned `Var` as often as
    /// needed (gradients accumulate); bind each name once per graph.
    ///
    /// The value may be moved in, borrowed (copied once) or shared through an `Arc`
    /// (no copy), see [`LeafValue`].
    ///
    /// # Errors
    /// [`AutogradError::DuplicateParam`] when `name` is already bound in this graph.
    pub fn try_param(&mut self, name: &str, value: impl Into<LeafValue<T>>) -> Result<Var> {
        if self.params.iter().any(|(n, _)| n == name) {
            return Err(AutogradError::DuplicateParam { name: name.to_string() });
        }
        let v = self.push_leaf(NodeKind::Param, "param", value.into());
        self.params.push((name.to_string(), v.index));
        Ok(v)
    }

    /// Panicking twin of [`Graph::try_param`].
    #[track_caller]
    pub fn param(&mut self, name: &str, value: impl Into<LeafValue<T>>) -> Var {
        unwrap(self.try_param(name, value))
    }

    /// The `Var` bound to parameter `name`, if any.
    pub fn param_var(&self, name: &str) -> Option<Var> {
        self.params.iter().find(|(n, _)| n == name).map(|&(_, i)| self.var(i))
    }

    /// The bound parameter names, in binding order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.params.iter().map(|(n, _)| n.as_str())
    }

    /// A constant holding `x`'s current value: the same numbers, but no gradient flows
    /// back through it (stop-gradient). Copies the value.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`] for a `Var` of another graph.
    pub fn try_detach(&mut self, x: Var) -> Result<Var> {
        let i = self.idx("detach", x)?;
        let value = self.val(i).clone();
        Ok(self.push_leaf(NodeKind::Constant, "detach", value.into()))
    }

    /// Panicking twin of [`Graph::try_detach`].
    #[track_caller]
    pub fn detach(&mut self, x: Var) -> Var {
        unwrap(self.try_detach(x))
    }

    // ------------------------------------------------------------------ reading

    /// The value of `var`.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`] for a `Var` of another graph.
    pub fn try_value(&self, var: Var) -> Result<&Tensor<T>> {
        let i = self.idx("value", var)?;
        Ok(self.val(i))
    }

    /// The value of `var`, moved out of the graph, which is consumed: the result of
    /// an inference pass without the copy `try_value(var)?.clone()` makes (a
    /// `[1000, 28, 28, 32]` activation is 100 MB).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`] for a `Var` of another graph;
    /// [`AutogradError::Released`] for a released value.
    pub fn into_value(mut self, var: Var) -> Result<Tensor<T>> {
        let i = self.idx("into_value", var)?;
        Ok(self.nodes[i].value.take())
    }

    /// The value of `var`. Panics for a `Var` of another graph.
    #[track_caller]
    pub fn value(&self, var: Var) -> &Tensor<T> {
        unwrap(self.try_value(var))
    }

    /// The shape of `var`'s value. Panics for a `Var` of another graph.
    #[track_caller]
    pub fn shape(&self, var: Var) -> &[usize] {
        self.value(var).shape()
    }

    /// The kind of node `var` points to. Panics for a `Var` of another graph.
    #[track_caller]
    pub fn kind(&self, var: Var) -> NodeKind {
        self.nodes[unwrap(self.idx("kind", var))].kind
    }

    /// The name of the operation that produced `var` (`"input"`, `"param"`,
    /// `"conv2d"`, ...). Panics for a `Var` of another graph.
    #[track_caller]
    pub fn op_name(&self, var: Var) -> &'static str {
        self.nodes[unwrap(self.idx("op_name", var))].op
    }

    /// Whether a gradient flows into `var` (it depends on a parameter or variable and
    /// the graph is recording). Panics for a `Var` of another graph.
    #[track_caller]
    pub fn requires_grad(&self, var: Var) -> bool {
        self.nodes[unwrap(self.idx("requires_grad", var))].requires_grad
    }

    // ------------------------------------------------------------------ custom ops

    /// Records an operation implemented outside this crate: `value` was computed from
    /// `inputs`, and `backward` maps the gradient of `value` to gradients of the
    /// inputs (see [`BackwardFn`]). This is how fused ops in other crates join the tape;
    /// test them with [`gradcheck`](crate::gradcheck).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`] for an input of another graph.
    pub fn try_custom(
        &mut self,
        op: &'static str,
        inputs: &[Var],
        value: Tensor<T>,
        backward: impl BackwardFn<T>,
    ) -> Result<Var> {
        let parents = inputs.iter().map(|&v| self.idx(op, v)).collect::<Result<Vec<_>>>()?;
        Ok(self.push_op(op, &parents, value, 0, backward))
    }

    /// Declares what the backward rule of the op that made `var` reads: its inputs'
    /// values (`inputs`) and its own value (`output`). Every op starts as reading
    /// both; an op whose rule reads less says so right after it is recorded, which
    /// lets [`Graph::release`] free values early. nn's own ops declare: the
    /// output-based activations (ReLU, sigmoid, tanh, ...: output only), and in
    /// nn-layers training-mode BatchNormalization (inputs only) and the merge `Add`
    /// (neither).
    ///
    /// A rule that reads what it declared it does not read panics in backward (a
    /// programming error in the op, never a user input).
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`]; [`AutogradError::Released`].
    pub fn declare_reads(&mut self, var: Var, inputs: bool, output: bool) -> Result<()> {
        let i = self.idx("declare_reads", var)?;
        let node = &mut self.nodes[i];
        if node.kind == NodeKind::Op {
            node.reads_inputs = inputs;
            node.reads_output = output;
        }
        Ok(())
    }

    /// Frees `var`'s value now, when nothing can read it again: the caller promises
    /// that no later forward op takes `var` (one that tries gets
    /// [`AutogradError::Released`], as does [`Graph::value`]), and the graph checks
    /// the backward side: `var` must be an op's result whose own rule does not read
    /// it, and every op recorded so far that takes it must have a rule that does not
    /// read its inputs ([`Graph::declare_reads`]). Returns whether the value was
    /// freed (`false`, changing nothing, when a rule may still read it or `var` is a
    /// leaf). Values and gradients are unchanged either way; the graph's peak memory
    /// drops by the intermediates that only feed such ops, e.g. a
    /// BatchNormalization's output consumed by a ReLU.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`]; [`AutogradError::Released`] when `var` was
    /// already released.
    pub fn release(&mut self, var: Var) -> Result<bool> {
        let i = self.idx("release", var)?;
        let node = &self.nodes[i];
        if node.kind != NodeKind::Op || node.reads_output {
            return Ok(false);
        }
        if self.nodes[i + 1..].iter().any(|n| n.reads_inputs && n.parents.contains(&i)) {
            return Ok(false);
        }
        let bytes = bytes_of::<T>(self.nodes[i].value.get().len());
        self.nodes[i].value.release();
        self.nodes[i].bytes -= bytes;
        self.bytes -= bytes;
        LIVE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
        Ok(true)
    }

    // ------------------------------------------------------------------ internals

    /// The tape position of `var`, checking that it belongs to this graph.
    #[inline]
    pub(crate) fn idx(&self, op: &'static str, var: Var) -> Result<usize> {
        if var.graph != self.id || var.index >= self.nodes.len() {
            return Err(AutogradError::ForeignVar { op, var_graph: var.graph, graph: self.id });
        }
        if matches!(self.nodes[var.index].value, Value::Released(_)) {
            return Err(AutogradError::Released { op, index: var.index });
        }
        Ok(var.index)
    }

    /// Stops counting node `i`'s bytes (its value and saved tensors were freed).
    pub(crate) fn release_bytes(&mut self, i: usize) {
        let bytes = std::mem::take(&mut self.nodes[i].bytes);
        self.bytes -= bytes;
        LIVE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// The value at tape position `i`.
    #[inline]
    pub(crate) fn val(&self, i: usize) -> &Tensor<T> {
        self.nodes[i].value.get()
    }

    #[inline]
    fn var(&self, index: usize) -> Var {
        Var { graph: self.id, index }
    }

    /// Whether an op over `parents` needs its backward rule (recording, and some
    /// parent needs a gradient). Ops check this before saving anything for backward.
    #[inline]
    pub(crate) fn needs_grad(&self, parents: &[usize]) -> bool {
        self.recording && parents.iter().any(|&p| self.nodes[p].requires_grad)
    }

    /// Appends an operation's result. The backward rule is stored only when some
    /// parent needs a gradient; `saved_bytes` is what the rule holds (for accounting).
    pub(crate) fn push_op(
        &mut self,
        op: &'static str,
        parents: &[usize],
        value: Tensor<T>,
        saved_bytes: usize,
        backward: impl BackwardFn<T>,
    ) -> Var {
        let requires_grad = self.needs_grad(parents);
        let (backward, saved_bytes): (Option<Box<Backward<T>>>, usize) =
            if requires_grad { (Some(Box::new(backward)), saved_bytes) } else { (None, 0) };
        self.push_node(Node {
            value: Value::Owned(value),
            kind: NodeKind::Op,
            op,
            parents: parents.into(),
            backward,
            requires_grad,
            bytes: saved_bytes,
            // Until the op declares otherwise, its rule may read everything.
            reads_inputs: true,
            reads_output: true,
        })
    }

    fn push_node(&mut self, mut node: Node<T>) -> Var {
        node.bytes += node.value.get().len() * std::mem::size_of::<T>();
        self.bytes += node.bytes;
        LIVE_BYTES.fetch_add(node.bytes, Ordering::Relaxed);
        LIVE_NODES.fetch_add(1, Ordering::Relaxed);
        self.nodes.push(node);
        self.var(self.nodes.len() - 1)
    }
}

/// Bytes of `n` elements of `T`, for saved-tensor accounting.
#[inline]
pub(crate) fn bytes_of<T>(n: usize) -> usize {
    n * std::mem::size_of::<T>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_record_kind_and_value() {
        let mut g = Graph::<f64>::new();
        let x = g.input(Tensor::from_vec(&[2], vec![1., 2.]));
        let w = Tensor::from_vec(&[2], vec![3., 4.]);
        let p = g.param("w", &w);
        let shared = Arc::new(Tensor::from_vec(&[1], vec![5.]));
        let s = g.param("s", &shared);
        assert_eq!(g.kind(x), NodeKind::Input);
        assert_eq!(g.kind(p), NodeKind::Param);
        assert_eq!(g.value(p), &w);
        assert_eq!(g.value(s).to_vec(), vec![5.]);
        assert!(!g.requires_grad(x) && g.requires_grad(p));
        assert_eq!(g.param_var("w"), Some(p));
        assert_eq!(g.param_names().collect::<Vec<_>>(), vec!["w", "s"]);
        assert_eq!(g.live_bytes(), 5 * 8);
        let err = g.try_param("w", &w).unwrap_err();
        assert_eq!(err.to_string(), "param: a parameter named \"w\" is already bound in this graph");
    }

    #[test]
    fn into_value_moves_the_value_out_without_copying() {
        let mut g = Graph::<f64>::no_grad();
        let x = g.input(Tensor::from_vec(&[3], vec![1., -2., 3.]));
        let y = g.relu(x);
        let at = g.value(y).as_slice().unwrap().as_ptr();
        let out = g.into_value(y).unwrap();
        assert_eq!(out.to_vec(), vec![1., 0., 3.]);
        assert_eq!(out.as_slice().unwrap().as_ptr(), at, "the same buffer, not a copy");
        // A shared leaf held elsewhere too is copied; a foreign Var is an error.
        let shared = Arc::new(Tensor::from_vec(&[1], vec![5.]));
        let mut g = Graph::<f64>::no_grad();
        let s = g.input(Arc::clone(&shared));
        assert_eq!(g.into_value(s).unwrap().to_vec(), vec![5.]);
        let other = Graph::<f64>::no_grad();
        let err = other.into_value(y).unwrap_err();
        assert!(matches!(err, AutogradError::ForeignVar { op: "into_value", .. }), "{err}");
    }

    #[test]
    fn release_frees_only_what_no_rule_reads_and_keeps_gradients() {
        // w → a = tanh(w) → b = double(a) → r = relu(b) → m = r·r → Σ.
        // `double` is a custom op whose rule reads no value at all.
        let w = Tensor::from_vec(&[3], vec![-0.5, 0.25, 1.5]);
        let build = || {
            let mut g = Graph::<f64>::new();
            let wv = g.param("w", &w);
            let a = g.try_tanh(wv).unwrap();
            let doubled = g.value(a).map(|v| 2.0 * v);
            let b =
                g.try_custom("double", &[a], doubled, |_ctx, grad, sink| sink.add(0, grad.map(|v| 2.0 * v))).unwrap();
            let r = g.try_relu(b).unwrap();
            let m = g.try_mul(r, r).unwrap();
            let loss = g.try_sum(m).unwrap();
            (g, [wv, a, b, r], loss)
        };
        let (g_keep, _, loss_keep) = build();
        let (mut g, [wv, a, b, r], loss) = build();
        let before = g.live_bytes();
        // A leaf: no. a: tanh's rule reads its output. b: `double` keeps the default
        // (reads everything) until it declares. r: `mul` reads its inputs.
        let freed: Vec<bool> = [wv, a, b, r].iter().map(|&v| g.release(v).unwrap()).collect();
        assert_eq!(freed, [false, false, false, false]);
        assert_eq!(g.live_bytes(), before);
        // Declared: `double` reads nothing of its own, and its only consumer, relu,
        // reads only its output. b goes.
        g.declare_reads(b, false, false).unwrap();
        assert!(g.release(b).unwrap());
        assert_eq!(g.live_bytes(), before - 3 * 8);
        assert_eq!(g.try_value(b).unwrap_err(), AutogradError::Released { op: "value", index: b.index });
        assert!(matches!(g.try_relu(b), Err(AutogradError::Released { op: "relu", .. })));
        assert!(matches!(g.release(b), Err(AutogradError::Released { .. })));
        // Gradients are unchanged: d Σ relu(2 tanh w)² / dw = 8·tanh w·(1 − tanh²w) where w > 0.
        let kept = g_keep.backward(loss_keep).unwrap();
        let got = g.backward(loss).unwrap();
        assert_eq!(kept.get("w").unwrap().to_vec(), got.get("w").unwrap().to_vec());
        let want: Vec<f64> = w
            .to_vec()
            .into_iter()
            .map(|x: f64| if x > 0.0 { 8.0 * x.tanh() * (1.0 - x.tanh().powi(2)) } else { 0.0 })
            .collect();
        for (g, w) in got.get("w").unwrap().to_vec().iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        // And backward_once over a graph with a released node agrees too.
        let (mut g2, [_, _, b2, _], loss2) = build();
        g2.declare_reads(b2, false, false).unwrap();
        assert!(g2.release(b2).unwrap());
        assert_eq!(g2.backward_once(loss2).unwrap().get("w").unwrap().to_vec(), got.get("w").unwrap().to_vec());
    }

    #[test]
    fn graphs_and_gradients_can_cross_threads() {
        fn assert_send_sync<X: Send + Sync>() {}
        assert_send_sync::<Graph<f32>>();
        assert_send_sync::<crate::Gradients<f64>>();
        assert_send_sync::<Var>();
    }

    #[test]
    fn foreign_vars_are_errors() {
        let mut a = Graph::<f32>::new();
        let mut b = Graph::<f32>::new();
        let x = a.input(Tensor::zeros(&[1]));
        let _ = b.input(Tensor::zeros(&[1]));
        let err = b.try_value(x).unwrap_err();
        assert!(
            matches!(err, AutogradError::ForeignVar { var_graph, graph, .. } if var_graph == a.id() && graph == b.id())
        );
        assert!(b.try_relu(x).is_err());
    }

    #[test]
    fn no_grad_graph_stores_no_backward() {
        let mut g = Graph::<f32>::no_grad();
        let w = g.param("w", Tensor::from_vec(&[2], vec![1., -1.]));
        let y = g.relu(w);
        assert!(!g.requires_grad(y));
        assert!(g.nodes.iter().all(|n| n.backward.is_none()));
        assert_eq!(g.value(y).to_vec(), vec![1., 0.]);
        assert_eq!(g.backward(y).unwrap_err(), AutogradError::NoGrad);
    }
}
