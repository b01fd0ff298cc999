//! # nn-autograd
//!
//! Define-by-run reverse-mode automatic differentiation for the nn toolkit: the chain
//! rule over a computation graph, for everything above it (layers, training).
//!
//! - A [`Graph`] is a tape: an arena of nodes in creation order. Every operation
//!   computes its value immediately and returns a [`Var`], a small `Copy` handle (tape
//!   position plus the graph's id, so a `Var` of another graph is an error, never a
//!   silent mix-up). No `Rc<RefCell>` webs.
//! - Leaves: [`Graph::input`] and [`Graph::constant`] (no gradient),
//!   [`Graph::param`] (a parameter living outside the graph, bound for one step under
//!   a stable name such as `"layers.0.kernel"`), and [`Graph::variable`] (an unnamed
//!   leaf whose gradient is wanted).
//! - [`Graph::backward`] walks the tape once in reverse and returns [`Gradients`]:
//!   parameter name → gradient, in binding order, plus [`Gradients::wrt`] for any leaf
//!   that requires a gradient. A `Var` used by several ops accumulates their gradients.
//! - [`Graph::no_grad`] computes values only (evaluation, prediction).
//! - Each op has a fallible `try_` form returning [`AutogradError`] (with the op's name
//!   and the shapes involved) and a panicking twin for shapes checked when the model
//!   was built. Each op's backward rule is written next to its forward code.
//! - [`gradcheck`] compares every analytic gradient with central finite differences
//!   in `f64` (fourth-order by default, see [`Stencil`]); every op here is checked that way by property tests.
//! - Memory: a graph is meant to live for one training step; dropping it frees all
//!   it holds ([`Graph::live_bytes`], [`live_graph_bytes`], [`live_graph_nodes`]).
//!
//! ## Operations
//!
//! | family | ops |
//! |---|---|
//! | arithmetic (broadcasting) | [`add`](Graph::try_add), [`sub`](Graph::try_sub), [`mul`](Graph::try_mul), [`div`](Graph::try_div), [`neg`](Graph::try_neg), [`add_scalar`](Graph::try_add_scalar), [`sub_scalar`](Graph::try_sub_scalar), [`scalar_sub`](Graph::try_scalar_sub), [`mul_scalar`](Graph::try_mul_scalar), [`div_scalar`](Graph::try_div_scalar) |
//! | products | [`matmul`](Graph::try_matmul), [`matmul_t`](Graph::try_matmul_t) (transposed operands, batched), [`linear`](Graph::try_linear) (`x·W + b`, fused), [`linear_act`](Graph::try_linear_act) (`f(x·W + b)`, an [`Epilogue`] fused in) |
//! | reductions | [`sum`](Graph::try_sum), [`mean`](Graph::try_mean), [`sum_axes`](Graph::try_sum_axes), [`mean_axes`](Graph::try_mean_axes), [`max_axis`](Graph::try_max_axis) |
//! | shape | [`reshape`](Graph::try_reshape), [`flatten`](Graph::try_flatten), [`permute`](Graph::try_permute), [`transpose`](Graph::try_transpose), [`concat`](Graph::try_concat), [`stack`](Graph::try_stack), [`slice`](Graph::try_slice), [`gather_rows`](Graph::try_gather_rows) |
//! | element-wise maths | [`exp`](Graph::try_exp), [`ln`](Graph::try_ln), [`sqrt`](Graph::try_sqrt), [`powf`](Graph::try_powf), [`abs`](Graph::try_abs), [`clamp`](Graph::try_clamp) |
//! | activations | [`relu`](Graph::try_relu), [`leaky_relu`](Graph::try_leaky_relu), [`elu`](Graph::try_elu), [`sigmoid`](Graph::try_sigmoid), [`tanh`](Graph::try_tanh), [`softplus`](Graph::try_softplus) (any of these six as an [`Epilogue`]: [`activation`](Graph::try_activation)), [`softmax`](Graph::try_softmax), [`log_softmax`](Graph::try_log_softmax) |
//! | attention (Transformers) | [`gelu`](Graph::try_gelu) (exact, with [`erf`], or tanh form), [`masked_softmax`](Graph::try_masked_softmax) (scaled, masked positions exactly 0, fully masked rows zeros); the products are batched [`matmul_t`](Graph::try_matmul_t) |
//! | convolution, pooling (NHWC) | [`conv2d`](Graph::try_conv2d), [`conv2d_act`](Graph::try_conv2d_act) (an [`Epilogue`] fused in), [`conv2d_max_pool`](Graph::try_conv2d_max_pool) (conv2d → epilogue → max-pool (→ flatten) as one op, the convolution's output never stored), [`max_pool2d`](Graph::try_max_pool2d), [`avg_pool2d`](Graph::try_avg_pool2d) |
//! | regularisation | [`dropout`](Graph::try_dropout) (inverted, caller-supplied mask) |
//! | losses | [`cross_entropy`](Graph::try_cross_entropy) (+ [`_with`](Graph::try_cross_entropy_with) weights and [`Reduction`]), [`binary_cross_entropy_with_logits`](Graph::try_binary_cross_entropy_with_logits), [`mse`](Graph::try_mse) |
//!
//! Conventions at kinks (documented on each op): `relu'(0) = 0` and `|x|'(0) = 0` (as
//! PyTorch); a max or max-pool tie sends the whole gradient to the first maximal
//! element in row-major order, and overlapping pool windows route independently (an
//! element that is the maximum of 4 windows receives 4 gradients); `sigmoid(±1000)`
//! has gradient exactly 0, never NaN.
//!
//! Fused ops: an [`Epilogue`] is one of the six element-wise activations applied by
//! `linear_act`, `conv2d_act` and `conv2d_max_pool` to their own output, its
//! derivative read from that output in backward (each activation's value and
//! derivative is written once, shared with the activation ops), so no activation
//! tensor is allocated or traversed; each fused op equals its unfused composition bit
//! for bit. Their graph-free values, for inference: [`linear_value`],
//! [`conv2d_value`], [`conv2d_max_pool_value`].
//!
//! Custom fused ops from other crates join the tape with [`Graph::try_custom`] and a
//! backward closure (see [`BackwardFn`]), and are tested with [`gradcheck`].
//!
//! ## Example: one training step of a dense layer
//!
//! ```
//! use nn_autograd::{Graph, Tensor};
//!
//! // Parameters live outside the graph.
//! let mut kernel = Tensor::<f32>::from_vec(&[3, 2], vec![0.1, -0.2, 0.3, 0.0, -0.1, 0.2]);
//! let mut bias = Tensor::<f32>::zeros(&[2]);
//! let x = Tensor::<f32>::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]); // [batch, in_features]
//! let targets = [1usize, 0];
//!
//! let mut g = Graph::new();
//! let xv = g.input(x);
//! let w = g.param("dense.kernel", &kernel);
//! let b = g.param("dense.bias", &bias);
//! let logits = g.linear(xv, w, Some(b)); // [batch, 2]
//! let loss = g.cross_entropy(logits, &targets); // mean over the batch
//! let before = g.value(loss).item();
//! let grads = g.backward(loss).unwrap();
//! drop(g); // frees every node
//!
//! // Plain SGD, in binding order.
//! for (name, grad) in grads.iter() {
//!     let p = if name == "dense.kernel" { &mut kernel } else { &mut bias };
//!     p.array_mut().zip_mut_with(grad.array(), |w, &d| *w -= 0.1 * d);
//! }
//! let mut g = Graph::no_grad(); // evaluation: values only
//! let (xv, w, b) = (g.input(Tensor::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.])), g.param("k", &kernel), g.param("b", &bias));
//! let logits = g.linear(xv, w, Some(b));
//! let after = g.cross_entropy(logits, &targets);
//! assert!(g.value(after).item() < before);
//! ```
//!
//! ## Design notes
//! - Backward rules receive the output gradient by value, so element-wise rules scale
//!   it in place; gathers, `col2im` and the GEMMs of `linear` and `conv2d` accumulate
//!   straight into the input's gradient buffer ([`GradSink::buffer`]); pooling builds
//!   its input gradient in one pass, image chunk by image chunk. Saved tensors are kept
//!   only when some input needs a gradient (`max_pool2d` and `conv2d_max_pool` keep
//!   32-bit argmax offsets; `conv2d` keeps nothing: its backward rebuilds `im2col(x)`
//!   chunk by chunk, in cache). An epilogue's derivative is read from the op's output,
//!   so no pre-activation is kept either.
//! - Broadcasting is undone in one place, [`sum_to_shape`].
//! - Threads ([`nn_tensor::set_num_threads`]): GEMM, the convolution and pooling
//!   kernels (parallel over fixed chunks of whole images, see [`nn_tensor::conv`] and
//!   [`nn_tensor::pool`]) and element-wise activations on large tensors (fixed chunks
//!   of elements) use nn's thread pool; everything else runs on the calling thread.
//!   Work is split independently of the thread count and partial sums are added in
//!   chunk order, so the same inputs give bit-identical gradients at any thread count.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod backward;
mod broadcast;
mod error;
mod gradcheck;
mod graph;
mod ops;

pub use backward::{BackwardCtx, BackwardFn, GradSink, Gradients};
pub use broadcast::sum_to_shape;
pub use error::{AutogradError, Result};
pub use gradcheck::{gradcheck, gradcheck_with, GradcheckEntry, GradcheckOptions, GradcheckReport, Stencil};
pub use graph::{live_graph_bytes, live_graph_nodes, Graph, LeafValue, NodeKind, Var};
pub use ops::activation::Epilogue;
pub use ops::conv::conv2d_value;
pub use ops::conv_pool::{conv2d_max_pool_value, PoolWindow};
pub use ops::loss::Reduction;
pub use ops::matmul::linear_value;
pub use ops::transformer::{erf, erfc, gelu_value};

pub use nn_tensor;
pub use nn_tensor::conv::Padding;
pub use nn_tensor::{Element, Tensor};
