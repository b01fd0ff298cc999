//! Whole-sequence recurrent kernels: SimpleRNN, LSTM and GRU, each one graph
//! operation with its backward pass (backpropagation through time) written by hand.
//!
//! Each op runs every time step of a batch of sequences at once. SimpleRNN and GRU
//! project all inputs with one GEMM (`[batch·time, features] · kernel + bias`), then
//! each step adds one `[batch, units] · recurrent_kernel` product and applies the
//! gate nonlinearities in place. The LSTM forms each step's pre-activations as
//! `b + x_t·W + h_{t−1}·U`, one chain of fused multiply-adds per element, so that
//! inference keeps one step of them per chunk instead of every step's. The per-step
//! products use the kernels packed once per op call ([`PackedRhs`], each output
//! element a chain of fused multiply-adds in order of the inner index) rather than
//! the general GEMM, which packed them again at every step (the
//! `gemm_f32_recurrent_step` benchmark compares the two). Backward walks the steps in
//! reverse (one `[batch, gates·units] · recurrent_kernelᵀ` product per step for the
//! gradient flowing into the previous state). SimpleRNN then forms the weight
//! gradients with one GEMM each over all steps; the LSTM and the GRU add each step's
//! `x_tᵀ·δ_t` and `h_{t−1}ᵀ·δ_t` while that step's gate gradients are in cache (one
//! chunk's sums per task, added up in chunk order), and keep no
//! `[batch, time, gates·units]` gradient buffer (in an LSTM training step the big
//! weight-gradient GEMMs ran at half the speed of these products on two threads).
//! An LSTM layer without `return_sequences` uses [`lstm_last`], whose output is the
//! last step alone, so that backward gets no `[batch, time, 2·units]` gradient that
//! is zero but for one step.
//! Nothing of a tensor's size is allocated per time step. The gate activations the
//! forward pass computed are kept for backward, within a chunk step-major (each
//! step's rows contiguous: rows a time-step stride apart fell in one set of the L1
//! cache); the states are the op's own output.
//!
//! Threads: the batch is cut into chunks of about [`CHUNK_ROWS`] samples, a number
//! fixed by the batch size alone, and each chunk runs the whole sequence (its
//! per-step products on the calling thread, then its gate arithmetic) as one task on
//! nn's pool. The steps of a chunk never wait for the other chunks, where splitting
//! each step's small GEMM over the pool cost two synchronisations per time step. A
//! batch of one chunk splits its per-step products' rows over the pool instead. Every
//! value is computed the same way whichever thread runs its chunk, so results are
//! bit-identical for any thread count. The gate nonlinearities run over a chunk's
//! rows in one vectorized pass per step, for `f32`
//! (`nn_tensor::fastmath`: within 2 ulp of the exact sigmoid and `tanh`; the C
//! library's scalar `expf`/`tanh` took over a third of an LSTM training step); `f64`
//! keeps the standard functions.
//!
//! The gate equations (Keras's conventions; gate blocks are laid out side by side in
//! the kernels, in the order given):
//!
//! - **SimpleRNN** (Elman, "Finding structure in time", *Cognitive Science* 14, 1990):
//!   `h_t = tanh(x_t·W + h_{t−1}·U + b)`.
//! - **LSTM** (Hochreiter & Schmidhuber, *Neural Computation* 9(8), 1997, with the
//!   forget gate of Gers, Schmidhuber & Cummins, 2000), gates `i, f, c̃, o`:
//!   `i = σ(x·W_i + h·U_i + b_i)`, `f = σ(x·W_f + h·U_f + b_f)`,
//!   `c̃ = tanh(x·W_c + h·U_c + b_c)`, `o = σ(x·W_o + h·U_o + b_o)`,
//!   `c_t = f ⊙ c_{t−1} + i ⊙ c̃`, `h_t = o ⊙ tanh(c_t)`.
//! - **GRU** in the `reset_after` form (Cho et al., 2014, with the reset gate applied
//!   after the recurrent matrix product, as cuDNN and Keras's default), gates `z, r, h̃`,
//!   input bias `b_in` and recurrent bias `b_rec`:
//!   `z = σ(x·W_z + b_in,z + h·U_z + b_rec,z)`, `r = σ(x·W_r + b_in,r + h·U_r + b_rec,r)`,
//!   `h̃ = tanh(x·W_h + b_in,h + r ⊙ (h·U_h + b_rec,h))`,
//!   `h_t = z ⊙ h_{t−1} + (1 − z) ⊙ h̃`.
//!
//! `σ` is the logistic sigmoid.

use std::sync::Mutex;

use ndarray::{Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut2, ArrayViewMut3, Axis, Ix2, ShapeBuilder, Slice};
use nn_autograd::{AutogradError, GradSink, Graph, Var};
use nn_tensor::gemm::PackedRhs;
use nn_tensor::{Element, Tensor, TensorError};

use crate::error::Result;

/// About how many samples of a batch one whole-sequence task handles: enough rows
/// for the per-step `[rows, units]·[units, gates·units]` GEMM to run near the
/// kernel's speed, few enough that a batch of 128 gives two tasks.
pub const CHUNK_ROWS: usize = 64;

/// Rows per chunk for `batch` samples: the batch cut into `⌈batch / CHUNK_ROWS⌉`
/// near-equal chunks. Depends on the batch size only, never on the thread count.
fn chunk_rows(batch: usize) -> usize {
    let chunks = batch.div_ceil(CHUNK_ROWS).max(1);
    batch.div_ceil(chunks).max(1)
}

/// Runs `f(first_sample, chunk, alone)` once per chunk of [`chunk_rows`] samples:
/// `chunk[j]` is the part of `parts[j].0` belonging to those samples (`parts[j].1`
/// elements per sample, samples stored one after another). Chunks run side by side
/// on nn's pool, each calling [`step_gemm`] with `alone = false` (products on its
/// own thread); a single chunk or one thread runs them in order with `alone = true`
/// (products split over the pool). The per-step products never go to the GEMM back
/// end (they use [`PackedRhs`]), so OpenBLAS's own pool is never entered twice.
/// With no samples or no time steps (an empty part) `f` is not called.
///
/// # Errors
/// The first error `f` returned.
fn for_sequence_chunks<T: Element>(
    parts: Vec<(&mut [T], usize)>,
    batch: usize,
    f: impl Fn(usize, &mut [&mut [T]], bool) -> std::result::Result<(), AutogradError> + Sync,
) -> std::result::Result<(), AutogradError> {
    let rows = chunk_rows(batch);
    if parts.iter().any(|(p, per_sample)| p.is_empty() || *per_sample == 0) {
        // No samples or no time steps: nothing to run (the buffers keep their zeros).
        return Ok(());
    }
    let mut chunks: Vec<Vec<&mut [T]>> = (0..batch.div_ceil(rows)).map(|_| Vec::new()).collect();
    for (part, per_sample) in parts {
        for (c, piece) in part.chunks_mut(rows * per_sample).enumerate() {
            chunks[c].push(piece);
        }
    }
    if chunks.len() <= 1 || nn_tensor::num_threads() <= 1 {
        for (c, mut chunk) in chunks.into_iter().enumerate() {
            f(c * rows, &mut chunk, true)?;
        }
        return Ok(());
    }
    let first_error = Mutex::new(None);
    let (f, first_error_ref) = (&f, &first_error);
    nn_tensor::thread_pool().scope(|s| {
        for (c, mut chunk) in chunks.into_iter().enumerate() {
            s.spawn(move |_| {
                if let Err(e) = f(c * rows, &mut chunk, false) {
                    first_error_ref.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A zeroed `[batch, time, width]` array, written on nn's pool ([`nn_tensor::zeros_par`]):
/// the per-step buffers of a batch are megabytes, and one `memset` on the calling
/// thread left the pool idle.
fn zeros3<T: Element>(batch: usize, time: usize, width: usize) -> Array3<T> {
    Array3::from_shape_vec((batch, time, width), nn_tensor::zeros_par(batch * time * width)).expect("the product")
}

/// One per-step product of a whole-sequence task, `C ← A·B + β·C` with `B` packed:
/// on the calling thread, or, when the task runs `alone` on a pool of several
/// threads, its rows split between them (the same bits either way: each output
/// element is computed whole by one thread, in the same order).
fn step_gemm<T: Element>(
    op: &'static str,
    alone: bool,
    a: ArrayView2<'_, T>,
    b: &PackedRhs<T>,
    beta: T,
    c: &mut ArrayViewMut2<'_, T>,
) -> std::result::Result<(), AutogradError> {
    let threads = nn_tensor::num_threads();
    let rows = a.nrows();
    if !alone || threads <= 1 || rows < 2 * STEP_SPLIT_ROWS {
        return b.gemm(a, beta, c).map_err(tensor_err(op));
    }
    let per = rows.div_ceil(threads).div_ceil(STEP_SPLIT_ROWS) * STEP_SPLIT_ROWS;
    let mut pieces = Vec::new();
    let (mut a, mut c) = (a, c.view_mut());
    while a.nrows() > 0 {
        let take = per.min(a.nrows());
        let (a_part, a_rest) = a.split_at(Axis(0), take);
        let (c_part, c_rest) = c.split_at(Axis(0), take);
        pieces.push((a_part, c_part, Ok(())));
        (a, c) = (a_rest, c_rest);
    }
    nn_tensor::thread_pool().scope(|s| {
        for (a_part, c_part, result) in &mut pieces {
            s.spawn(move |_| *result = b.gemm(a_part.view(), beta, c_part));
        }
    });
    pieces.into_iter().try_for_each(|(_, _, result)| result).map_err(tensor_err(op))
}

/// Rows per piece when [`step_gemm`] splits a product between threads: the packed
/// kernel's row block for `f32`.
const STEP_SPLIT_ROWS: usize = 6;

/// Step `t` of a chunk of `rows` samples stored `[rows, time, width]` in `data`: a
/// `[rows, width]` view with a row stride of `time·width`.
fn step_view<T>(data: &[T], rows: usize, time: usize, width: usize, t: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((rows, width).strides((time * width, 1)), &data[t * width..]).expect("inside the chunk")
}

/// [`step_view`], mutable.
fn step_view_mut<T>(data: &mut [T], rows: usize, time: usize, width: usize, t: usize) -> ArrayViewMut2<'_, T> {
    ArrayViewMut2::from_shape((rows, width).strides((time * width, 1)), &mut data[t * width..])
        .expect("inside the chunk")
}

fn tensor_err(op: &'static str) -> impl Fn(TensorError) -> AutogradError {
    move |source| AutogradError::Tensor { op, source }
}

fn mismatch(op: &'static str, lhs: &[usize], rhs: &[usize], expected: &'static str) -> AutogradError {
    AutogradError::ShapeMismatch { op, lhs: lhs.to_vec(), rhs: rhs.to_vec(), expected }
}

/// Batch, time steps, features and units of one recurrent op call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    time: usize,
    features: usize,
    units: usize,
}

/// Checks the shapes shared by the three cells: `x: [batch, time, features]`,
/// `kernel: [features, gates·units]`, `recurrent_kernel: [units, gates·units]`, and
/// each initial state `[batch, units]`.
fn check_shapes<T: Element>(
    op: &'static str,
    g: &Graph<T>,
    x: Var,
    kernel: Var,
    recurrent_kernel: Var,
    states: &[Var],
    gates: usize,
) -> Result<Dims> {
    let (xv, kv, rv) = (g.try_value(x)?, g.try_value(kernel)?, g.try_value(recurrent_kernel)?);
    if xv.ndim() != 3 {
        return Err(AutogradError::Tensor {
            op,
            source: TensorError::Rank { op, expected: "3 ([batch, time, features])", shape: xv.shape().to_vec() },
        }
        .into());
    }
    let (batch, time, features) = (xv.shape()[0], xv.shape()[1], xv.shape()[2]);
    if kv.ndim() != 2 || kv.shape()[0] != features || kv.shape()[1] % gates != 0 || kv.shape()[1] == 0 {
        return Err(mismatch(
            op,
            xv.shape(),
            kv.shape(),
            "a kernel [features, gates·units] for x [batch, time, features]",
        )
        .into());
    }
    let units = kv.shape()[1] / gates;
    if rv.shape() != [units, gates * units] {
        return Err(mismatch(
            op,
            kv.shape(),
            rv.shape(),
            "a recurrent kernel [units, gates·units] matching the kernel",
        )
        .into());
    }
    for &s in states {
        let sv = g.try_value(s)?;
        if sv.shape() != [batch, units] {
            return Err(mismatch(op, xv.shape(), sv.shape(), "an initial state [batch, units]").into());
        }
    }
    Ok(Dims { batch, time, features, units })
}

/// Checks a bias of `shape`.
fn check_bias<T: Element>(op: &'static str, g: &Graph<T>, bias: Option<Var>, shape: &[usize]) -> Result<()> {
    if let Some(b) = bias {
        let bv = g.try_value(b)?;
        if bv.shape() != shape {
            return Err(mismatch(op, bv.shape(), shape, "a bias of the shape the cell needs").into());
        }
    }
    Ok(())
}

/// `x · kernel + bias` for every time step at once, as `[batch, time, width]`.
fn project_inputs<T: Element>(
    op: &'static str,
    x: &Tensor<T>,
    kernel: &Tensor<T>,
    bias: Option<ArrayView1<'_, T>>,
    d: Dims,
) -> Result<Array3<T>> {
    let width = kernel.shape()[1];
    let rows = d.batch * d.time;
    let x_std = x.array().as_standard_layout();
    let x2 = x_std.view().into_shape_with_order((rows, d.features)).expect("standard layout, equal count");
    let w2 = kernel.array().view().into_dimensionality::<Ix2>().expect("rank checked");
    // The bias in every row (or zeros), written on nn's pool without a zeroing pass.
    let (start, beta) = match bias {
        Some(b) => (nn_tensor::repeat_rows(&b.to_vec(), rows), T::one()),
        None => (nn_tensor::zeros_par(rows * width), T::zero()),
    };
    let mut out = Array2::from_shape_vec((rows, width), start).expect("rows · width elements");
    nn_tensor::gemm::gemm(T::one(), x2, w2, beta, &mut out.view_mut()).map_err(tensor_err(op))?;
    Ok(out.into_shape_with_order((d.batch, d.time, width)).expect("equal count"))
}

/// The states each step started from, `[batch·time, units]`: `h0` for step 0, then
/// the first `units` columns of `out[:, t − 1, :]`.
fn previous_states<T: Element>(h0: &Tensor<T>, out: &Tensor<T>, d: Dims) -> Array2<T> {
    let (u, time) = (d.units, d.time);
    let per_sample = time * u;
    let width = out.len() / (d.batch * time).max(1);
    let os = out.as_slice().expect("own output, contiguous");
    let h0s = h0.array().as_standard_layout();
    let h0s = h0s.as_slice().expect("standard layout");
    // Whole samples per piece (about 16k elements), copied on nn's pool.
    let samples_per_piece = (1 << 14) / per_sample.max(1) + 1;
    let prev = nn_tensor::par_build(d.batch * per_sample, (samples_per_piece * per_sample).max(1), |piece, rows| {
        for (j, sample) in rows.chunks_mut(per_sample.max(1)).enumerate() {
            let b = piece * samples_per_piece + j;
            for (t, row) in sample.chunks_mut(u).enumerate() {
                let src = if t == 0 { &h0s[b * u..(b + 1) * u] } else { &os[(b * time + t - 1) * width..][..u] };
                row.copy_from_slice(src);
            }
        }
    });
    Array2::from_shape_vec((d.batch * time, u), prev).expect("equal count")
}

/// The gradients every cell computes the same way from `dxw` (the gradient with
/// respect to `x·kernel + b_in`, `[batch·time, gates·units]`) and `drec` (with
/// respect to `h_{t−1}·recurrent_kernel`, same shape): into `x` (input 0), `kernel`
/// (input 1) and `recurrent_kernel` (input 2).
#[allow(clippy::too_many_arguments)]
fn weight_grads<T: Element>(
    op: &'static str,
    sink: &mut GradSink<'_, T>,
    x: &Tensor<T>,
    kernel: &Tensor<T>,
    h0: &Tensor<T>,
    out: &Tensor<T>,
    dxw: ArrayView2<'_, T>,
    drec: ArrayView2<'_, T>,
    d: Dims,
) -> std::result::Result<(), AutogradError> {
    let err = tensor_err(op);
    let rows = d.batch * d.time;
    if sink.wants(1) {
        let x_std = x.array().as_standard_layout();
        let x2 = x_std.view().into_shape_with_order((rows, d.features)).expect("standard layout");
        let (buf, beta) = sink.buffer(1).expect("wanted");
        let mut dk = buf.array_mut().view_mut().into_dimensionality::<Ix2>().expect("rank 2");
        nn_tensor::gemm::gemm(T::one(), x2.t(), dxw, beta, &mut dk).map_err(&err)?;
    }
    if sink.wants(2) {
        let prev = previous_states(h0, out, d);
        let (buf, beta) = sink.buffer(2).expect("wanted");
        let mut dr = buf.array_mut().view_mut().into_dimensionality::<Ix2>().expect("rank 2");
        nn_tensor::gemm::gemm(T::one(), prev.t(), drec, beta, &mut dr).map_err(&err)?;
    }
    if let Some((buf, beta)) = sink.buffer(0) {
        let w2 = kernel.array().view().into_dimensionality::<Ix2>().expect("rank 2");
        let mut dx = buf.array_mut().view_mut().into_shape_with_order((rows, d.features)).expect("contiguous");
        nn_tensor::gemm::gemm(T::one(), dxw, w2.t(), beta, &mut dx).map_err(&err)?;
    }
    Ok(())
}

/// The bias gradient: the column sums of each of `parts` (`[batch·time, width]`)
/// added into row `j` of input `k`'s gradient (`[parts.len(), width]`, or `[width]`
/// for one part), each as the GEMM `1ᵀ·part` on nn's pool (the same bits at any
/// thread count) instead of a row-by-row sum on the calling thread.
fn bias_grad<T: Element>(
    op: &'static str,
    sink: &mut GradSink<'_, T>,
    k: usize,
    parts: &[ArrayView2<'_, T>],
) -> std::result::Result<(), AutogradError> {
    let Some((buf, beta)) = sink.buffer(k) else { return Ok(()) };
    let (rows, width) = parts[0].dim();
    let ones = Array2::from_elem((1, rows), T::one());
    let mut all =
        buf.array_mut().view_mut().into_shape_with_order((parts.len(), width)).expect("a contiguous bias gradient");
    for (j, part) in parts.iter().enumerate() {
        let mut row = all.slice_axis_mut(Axis(0), Slice::from(j..j + 1));
        nn_tensor::gemm::gemm(T::one(), ones.view(), part.view(), beta, &mut row).map_err(tensor_err(op))?;
    }
    Ok(())
}

/// `gates·units` zeros or the bias, as the initial value of a step's GEMM output.
fn fill_rows<T: Element>(m: &mut ndarray::ArrayViewMut2<'_, T>, bias: Option<ArrayView1<'_, T>>) -> T {
    match bias {
        Some(b) => {
            m.rows_mut().into_iter().for_each(|mut r| r.assign(&b));
            T::one()
        }
        None => T::zero(),
    }
}

/// The SimpleRNN over a whole sequence: `h_t = tanh(x_t·W + h_{t−1}·U + b)` (Elman,
/// 1990), as one graph op.
///
/// # Shapes
/// `x: [batch, time, features]`, `kernel W: [features, units]`,
/// `recurrent_kernel U: [units, units]`, `bias b: [units]`, `h0: [batch, units]`
/// → every state `[batch, time, units]` (`h_1 … h_T`).
///
/// # Gradient
/// Backpropagation through time: with `δ_t = (∂L/∂h_t + δ_{t+1}·Uᵀ) ⊙ (1 − h_t²)`,
/// `∂L/∂W = Σ_t x_tᵀ·δ_t`, `∂L/∂U = Σ_t h_{t−1}ᵀ·δ_t`, `∂L/∂b = Σ δ_t`,
/// `∂L/∂x_t = δ_t·Wᵀ`, `∂L/∂h0 = δ_1·Uᵀ`. Needs the op's output only.
///
/// # Errors
/// [`AutogradError::Tensor`] when `x` is not 3-d; [`AutogradError::ShapeMismatch`]
/// for weights, bias or `h0` that do not fit `x` and each other.
pub fn simple_rnn<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    kernel: Var,
    recurrent_kernel: Var,
    bias: Option<Var>,
    h0: Var,
) -> Result<Var> {
    let op = "simple_rnn";
    let d = check_shapes(op, g, x, kernel, recurrent_kernel, &[h0], 1)?;
    let (time, u) = (d.time, d.units);
    check_bias(op, g, bias, &[u])?;
    let bview = bias.map(|b| g.value(b).array().view().into_dimensionality::<ndarray::Ix1>().expect("rank 1"));
    let mut a = project_inputs(op, g.value(x), g.value(kernel), bview, d)?;
    let rk = PackedRhs::new(g.value(recurrent_kernel).array().view().into_dimensionality::<Ix2>().expect("rank 2"));
    let rk = &rk;
    let h0s = g.value(h0).array().as_standard_layout();
    let h0s = h0s.as_slice().expect("standard layout");
    let one = T::one();
    for_sequence_chunks(vec![(a.as_slice_mut().expect("fresh array"), time * u)], d.batch, |b0, p, alone| {
        let [av] = p else { unreachable!("one part") };
        let rows = av.len() / (time * u);
        let mut a3 = ArrayViewMut3::from_shape((rows, time, u), av).expect("the chunk's size");
        for t in 0..time {
            if t == 0 {
                let h0c = ArrayView2::from_shape((rows, u), &h0s[b0 * u..(b0 + rows) * u]).expect("shape checked");
                step_gemm(op, alone, h0c, rk, one, &mut a3.index_axis_mut(Axis(1), 0))?;
            } else {
                let (before, after) = a3.view_mut().split_at(Axis(1), t);
                let prev = before.index_axis_move(Axis(1), t - 1);
                let mut cur = after.index_axis_move(Axis(1), 0);
                step_gemm(op, alone, prev.view(), rk, one, &mut cur)?;
            }
            let mut step = a3.index_axis_mut(Axis(1), t);
            nn_tensor::simd::vectorized(
                #[inline(always)]
                || {
                    for mut row in step.rows_mut() {
                        row.as_slice_mut()
                            .expect("rows of a standard-layout array")
                            .iter_mut()
                            .for_each(|x| *x = x.tanh_fast());
                    }
                },
            );
        }
        Ok(())
    })?;
    let value = Tensor::from(a.into_dyn());

    let inputs: Vec<Var> =
        [Some(x), Some(kernel), Some(recurrent_kernel), Some(h0), bias].into_iter().flatten().collect();
    Ok(g.try_custom(op, &inputs, value, move |ctx, grad, sink| {
        let (xv, kv, rv, h0v, out) = (ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3), ctx.output());
        let rkt = PackedRhs::new(rv.array().view().into_dimensionality::<Ix2>().expect("rank 2").t());
        let rkt = &rkt;
        let gout = grad.array().as_standard_layout();
        let gout = gout.as_slice().expect("standard layout");
        let hs = out.as_slice().expect("own output, contiguous");
        let mut delta = zeros3::<T>(d.batch, time, u);
        let mut dh_next = Array2::<T>::zeros((d.batch, u));
        let parts = vec![
            (delta.as_slice_mut().expect("fresh array"), time * u),
            (dh_next.as_slice_mut().expect("fresh array"), u),
        ];
        // ∂L/∂h0 only when h0 needs a gradient: else step 0's `δ·Uᵀ` is skipped.
        let want_h0 = sink.wants(3);
        for_sequence_chunks(parts, d.batch, |b0, p, alone| {
            let [ds, dn] = p else { unreachable!("two parts") };
            let rows = dn.len() / u;
            for t in (0..time).rev() {
                for bl in 0..rows {
                    let base = ((b0 + bl) * time + t) * u;
                    let local = (bl * time + t) * u;
                    for k in 0..u {
                        let h = hs[base + k];
                        ds[local + k] = (gout[base + k] + dn[bl * u + k]) * (one - h * h);
                    }
                }
                if t == 0 && !want_h0 {
                    break;
                }
                let dt = step_view(ds, rows, time, u, t);
                let mut dnv = ArrayViewMut2::from_shape((rows, u), dn).expect("the chunk's size");
                step_gemm(op, alone, dt, rkt, T::zero(), &mut dnv)?;
            }
            Ok(())
        })?;
        let delta2 = delta.view().into_shape_with_order((d.batch * time, u)).expect("standard layout");
        weight_grads(op, sink, xv, kv, h0v, out, delta2, delta2, d)?;
        sink.add(3, Tensor::from(dh_next.into_dyn()))?;
        if ctx.num_inputs() == 5 {
            bias_grad(op, sink, 4, &[delta2])?;
        }
        Ok(())
    })?)
}

/// The LSTM over a whole sequence (Hochreiter & Schmidhuber, 1997, with the forget
/// gate of Gers et al., 2000; see the module docs for the gate equations), as one
/// graph op.
///
/// # Shapes
/// `x: [batch, time, features]`, `kernel: [features, 4·units]` and
/// `recurrent_kernel: [units, 4·units]` (gate blocks `i, f, c̃, o`), `bias: [4·units]`,
/// `h0, c0: [batch, units]` → `[batch, time, 2·units]`: at step `t`,
/// `[..., t, ..units]` is `h_t` and `[..., t, units..]` is `c_t`.
///
/// # Gradient
/// Backpropagation through time, from the step's output gradient plus what flows back
/// from step `t + 1` (`δh`, `δc`): `δc ← δc + δh ⊙ o ⊙ (1 − tanh²c_t)`;
/// pre-activation gradients `δi = δc ⊙ c̃ ⊙ i(1−i)`, `δf = δc ⊙ c_{t−1} ⊙ f(1−f)`,
/// `δc̃ = δc ⊙ i ⊙ (1−c̃²)`, `δo = δh ⊙ tanh c_t ⊙ o(1−o)`; then
/// `δh_{t−1} = δgates·Uᵀ`, `δc_{t−1} = δc ⊙ f`; weight gradients as for
/// [`simple_rnn`]. Needs the gate activations and `tanh c_t` (kept) and the output.
///
/// # Errors
/// As [`simple_rnn`].
#[allow(clippy::too_many_arguments)]
pub fn lstm<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    kernel: Var,
    recurrent_kernel: Var,
    bias: Option<Var>,
    h0: Var,
    c0: Var,
) -> Result<Var> {
    lstm_op(g, x, kernel, recurrent_kernel, bias, h0, c0, false)
}

/// [`lstm`] giving only the last step's `[h_T, c_T]`, `[batch, 2·units]` (an LSTM
/// layer without `return_sequences`). The same values and gradients as slicing the
/// last step out of [`lstm`]'s output, without a `[batch, time, 2·units]` gradient
/// that is zero but for its last step (written, then read back by backward).
///
/// # Errors
/// As [`lstm`]; [`AutogradError::ShapeMismatch`] for a sequence of zero steps.
#[allow(clippy::too_many_arguments)]
pub fn lstm_last<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    kernel: Var,
    recurrent_kernel: Var,
    bias: Option<Var>,
    h0: Var,
    c0: Var,
) -> Result<Var> {
    lstm_op(g, x, kernel, recurrent_kernel, bias, h0, c0, true)
}

/// [`lstm`] (`last_only` false) or [`lstm_last`].
#[allow(clippy::too_many_arguments)]
fn lstm_op<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    kernel: Var,
    recurrent_kernel: Var,
    bias: Option<Var>,
    h0: Var,
    c0: Var,
    last_only: bool,
) -> Result<Var> {
    let op = "lstm";
    let d = check_shapes(op, g, x, kernel, recurrent_kernel, &[h0, c0], 4)?;
    let (time, u) = (d.time, d.units);
    if last_only && time == 0 {
        return Err(mismatch(op, g.value(x).shape(), &[], "a sequence of at least one step").into());
    }
    check_bias(op, g, bias, &[4 * u])?;
    let bview = bias.map(|b| g.value(b).array().view().into_dimensionality::<ndarray::Ix1>().expect("rank 1"));
    let rk = PackedRhs::new(g.value(recurrent_kernel).array().view().into_dimensionality::<Ix2>().expect("rank 2"));
    let rk = &rk;
    let wk = PackedRhs::new(g.value(kernel).array().view().into_dimensionality::<Ix2>().expect("rank 2"));
    let wk = &wk;
    let bias_row: Vec<T> = bview.map(|b| b.to_vec()).unwrap_or_else(|| vec![T::zero(); 4 * u]);
    let xs = g.value(x).array().as_standard_layout();
    let xs = xs.as_slice().expect("standard layout");
    let features = d.features;
    let h0s = g.value(h0).array().as_standard_layout();
    let h0s = h0s.as_slice().expect("standard layout");
    let c0s = g.value(c0).array().as_standard_layout();
    let c0s = c0s.as_slice().expect("standard layout");
    let mut out = zeros3::<T>(d.batch, time, 2 * u);
    let inputs: Vec<Var> =
        [Some(x), Some(kernel), Some(recurrent_kernel), Some(h0), Some(c0), bias].into_iter().flatten().collect();
    // With a gradient to compute, the gate activations of every step and tanh(c_t)
    // are kept for backward; without (inference), one step's worth per chunk and per
    // sample, overwritten at each step.
    let training = g.is_recording() && inputs.iter().any(|&v| g.requires_grad(v));
    let kept_steps = if training { time } else { 1 };
    // Every step's pre-activations start as the bias (written once, on the pool).
    let mut a = if training {
        Array3::from_shape_vec((d.batch, time, 4 * u), nn_tensor::repeat_rows(&bias_row, d.batch * time))
            .expect("batch · time rows")
    } else {
        Array3::zeros((0, time, 4 * u))
    };
    let mut tanh_c = zeros3::<T>(d.batch, kept_steps, u);
    let one = T::one();
    let mut parts = Vec::with_capacity(3);
    if training {
        parts.push((a.as_slice_mut().expect("fresh array"), time * 4 * u));
    }
    parts.push((out.as_slice_mut().expect("fresh array"), time * 2 * u));
    parts.push((tanh_c.as_slice_mut().expect("fresh array"), kept_steps * u));
    // Within a chunk's part of `a` and `tanh_c` the layout is step-major
    // (`[time, rows, width]`): each step's rows are contiguous (rows one time-step
    // stride apart, 56 KiB for LSTM(128) over 28 steps, all fell in one set of the
    // L1 cache).
    for_sequence_chunks(parts, d.batch, |b0, p, alone| {
        let mut scratch: Vec<T>;
        let (av, ov, tv) = match p {
            [av, ov, tv] => (&mut **av, &mut **ov, &mut **tv),
            [ov, tv] => {
                // One step's pre-activations for the chunk, the bias in every row.
                scratch = nn_tensor::repeat_rows(&bias_row, ov.len() / (time * 2 * u));
                (&mut scratch[..], &mut **ov, &mut **tv)
            }
            _ => unreachable!("two or three parts"),
        };
        let rows = ov.len() / (time * 2 * u);
        // h_{t−1} of the chunk's samples, contiguous, for the next step's product.
        let mut h_prev = h0s[b0 * u..(b0 + rows) * u].to_vec();
        for t in 0..time {
            let gt = t % kept_steps;
            let step_gates = &mut av[gt * rows * 4 * u..][..rows * 4 * u];
            {
                if !training && t > 0 {
                    for row in step_gates.chunks_exact_mut(4 * u) {
                        row.copy_from_slice(&bias_row);
                    }
                }
                let prev = ArrayView2::from_shape((rows, u), &h_prev[..]).expect("the chunk's size");
                let xt = ArrayView2::from_shape(
                    (rows, features).strides((time * features, 1)),
                    &xs[(b0 * time + t) * features..],
                )
                .expect("inside x");
                let mut gates = ArrayViewMut2::from_shape((rows, 4 * u), &mut *step_gates).expect("the chunk's size");
                // b + x_t·W + h_{t−1}·U: one chain of fused multiply-adds per element
                // (the first product's result, stored exactly, starts the second).
                step_gemm(op, alone, xt, wk, one, &mut gates)?;
                step_gemm(op, alone, prev, rk, one, &mut gates)?;
            }
            let step_tc = &mut tv[gt * rows * u..][..rows * u];
            // The chunk's rows in one vectorized pass (one CPU dispatch per step).
            nn_tensor::simd::vectorized(
                #[inline(always)]
                || {
                    for bl in 0..rows {
                        let b = b0 + bl;
                        let ob = (bl * time + t) * 2 * u;
                        // The gate activations in place: i, f (σ), c̃ (tanh), o (σ).
                        let gates = &mut step_gates[bl * 4 * u..(bl + 1) * 4 * u];
                        let (i, rest) = gates.split_at_mut(u);
                        let (f, rest) = rest.split_at_mut(u);
                        let (c_hat, o) = rest.split_at_mut(u);
                        // This step's [h, c] and the previous step's c (or c0).
                        let (before, now) = ov.split_at_mut(ob);
                        let (h, c) = now[..2 * u].split_at_mut(u);
                        let c_prev = if t == 0 { &c0s[b * u..(b + 1) * u] } else { &before[ob - u..ob] };
                        let tc = &mut step_tc[bl * u..(bl + 1) * u];
                        let hp = &mut h_prev[bl * u..(bl + 1) * u];
                        let (o, c_prev) = (&mut o[..u], &c_prev[..u]);
                        for k in 0..u {
                            i[k] = i[k].sigmoid_fast();
                            f[k] = f[k].sigmoid_fast();
                            c_hat[k] = c_hat[k].tanh_fast();
                            o[k] = o[k].sigmoid_fast();
                            c[k] = f[k] * c_prev[k] + i[k] * c_hat[k];
                            tc[k] = c[k].tanh_fast();
                            h[k] = o[k] * tc[k];
                            hp[k] = h[k];
                        }
                    }
                },
            );
        }
        Ok(())
    })?;
    // The op's value; with `last_only` the states of every step stay here for backward.
    let (value, kept_out) = if last_only {
        let last = out.index_axis(Axis(1), time - 1).to_owned();
        (Tensor::from(last.into_dyn()), training.then_some(out))
    } else {
        (Tensor::from(out.into_dyn()), None)
    };
    // The gradient reaching a step before the last when only the last is output.
    let no_grad_out = vec![T::zero(); if last_only { 2 * u } else { 0 }];

    Ok(g.try_custom(op, &inputs, value, move |ctx, grad, sink| {
        let (xv, kv, rv, h0v, c0v) = (ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3), ctx.input(4));
        // Every step's [h, c]: kept here with `last_only`, else the op's own output.
        let os = match &kept_out {
            Some(states) => states.as_slice().expect("fresh array"),
            None => ctx.output().as_slice().expect("own output, contiguous"),
        };
        let rkt = PackedRhs::new(rv.array().view().into_dimensionality::<Ix2>().expect("rank 2").t());
        let rkt = &rkt;
        let gout = grad.array().as_standard_layout();
        let gout = gout.as_slice().expect("standard layout");
        let c0s = c0v.array().as_standard_layout();
        let c0s = c0s.as_slice().expect("standard layout");
        let av = a.as_slice().expect("fresh array");
        let tcv = tanh_c.as_slice().expect("fresh array");
        let features = d.features;
        let xs = xv.array().as_standard_layout();
        let xs = xs.as_slice().expect("standard layout");
        let h0s = h0v.array().as_standard_layout();
        let h0s = h0s.as_slice().expect("standard layout");
        let (want_x, want_k, want_r, want_h0) = (sink.wants(0), sink.wants(1), sink.wants(2), sink.wants(3));
        let want_b = ctx.num_inputs() == 6 && sink.wants(5);
        // Wᵀ packed for ∂L/∂x_t = δgates_t·Wᵀ, when x needs a gradient.
        let wkt = want_x.then(|| PackedRhs::new(kv.array().view().into_dimensionality::<Ix2>().expect("rank 2").t()));
        let wkt = wkt.as_ref();
        let mut dh_next = Array2::<T>::zeros((d.batch, u));
        let mut dc_next = Array2::<T>::zeros((d.batch, u));
        let mut dx = if want_x { zeros3::<T>(d.batch, time, features) } else { Array3::zeros((0, 0, 0)) };
        let mut parts =
            vec![(dh_next.as_slice_mut().expect("fresh array"), u), (dc_next.as_slice_mut().expect("fresh array"), u)];
        if want_x && features > 0 {
            parts.push((dx.as_slice_mut().expect("fresh array"), time * features));
        }
        // Each chunk's share of ∂L/∂W, ∂L/∂U and ∂L/∂b, added up in chunk order below.
        let per_chunk = chunk_rows(d.batch);
        let partials = Mutex::new(vec![None; d.batch.div_ceil(per_chunk)]);
        for_sequence_chunks(parts, d.batch, |b0, p, alone| {
            let (dhn, dcn, dxs) = match p {
                [dhn, dcn] => (&mut **dhn, &mut **dcn, None),
                [dhn, dcn, dxs] => (&mut **dhn, &mut **dcn, Some(&mut **dxs)),
                _ => unreachable!("two or three parts"),
            };
            let rows = dhn.len() / u;
            // One step's gate gradients [rows, 4·units], and the same packed as the
            // right-hand side of the weight gradients' products.
            let mut dz = vec![T::zero(); rows * 4 * u];
            let mut h_prev_t = vec![T::zero(); if want_r { rows * u } else { 0 }];
            let mut dz_packed = PackedRhs::new(ArrayView2::from_shape((0, 4 * u), &dz[..0]).expect("empty"));
            let mut dk = Array2::<T>::zeros(if want_k { (features, 4 * u) } else { (0, 0) });
            let mut dr = Array2::<T>::zeros(if want_r { (u, 4 * u) } else { (0, 0) });
            let mut db = vec![T::zero(); if want_b { 4 * u } else { 0 }];
            let mut dxs = dxs;
            for t in (0..time).rev() {
                nn_tensor::simd::vectorized(
                    #[inline(always)]
                    || {
                        for bl in 0..rows {
                            let b = b0 + bl;
                            // `a` and `tanh_c` step-major within the chunk (see forward).
                            let gb = (b0 * time + t * rows + bl) * 4 * u;
                            let ob = (b * time + t) * 2 * u;
                            let tb = (b0 * time + t * rows + bl) * u;
                            let c_prev = if t == 0 { &c0s[b * u..(b + 1) * u] } else { &os[ob - u..ob] };
                            let step = LstmStepGrad {
                                gates: &av[gb..gb + 4 * u],
                                tanh_c: &tcv[tb..tb + u],
                                c_prev,
                                grad_out: match (last_only, t + 1 == time) {
                                    (false, _) => &gout[ob..ob + 2 * u],
                                    (true, true) => &gout[b * 2 * u..(b + 1) * 2 * u],
                                    (true, false) => &no_grad_out,
                                },
                                dh_next: &dhn[bl * u..(bl + 1) * u],
                            };
                            step.run(&mut dcn[bl * u..(bl + 1) * u], &mut dz[bl * 4 * u..(bl + 1) * 4 * u]);
                            if want_b {
                                let row = &dz[bl * 4 * u..(bl + 1) * 4 * u];
                                db.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
                            }
                            if want_r {
                                // h_{t−1} as column `bl` of h_{t−1}ᵀ ([units, rows]).
                                let h_prev = if t == 0 { &h0s[b * u..][..u] } else { &os[ob - 2 * u..ob - u] };
                                for (j, &v) in h_prev.iter().enumerate() {
                                    h_prev_t[j * rows + bl] = v;
                                }
                            }
                        }
                    },
                );
                let zt = ArrayView2::from_shape((rows, 4 * u), &dz[..]).expect("the chunk's size");
                if want_k || want_r {
                    dz_packed.repack(zt);
                }
                if want_r {
                    // ∂L/∂U += h_{t−1}ᵀ·δgates_t, with h_{t−1}ᵀ copied to [units, rows]
                    // above (read in place, its columns a time-step stride apart all
                    // fell in one set of the L1 cache).
                    let prev_t = ArrayView2::from_shape((u, rows), &h_prev_t[..]).expect("the chunk's size");
                    step_gemm(op, alone, prev_t, &dz_packed, T::one(), &mut dr.view_mut())?;
                }
                if want_k {
                    // ∂L/∂W += x_tᵀ·δgates_t.
                    let x_t = ArrayView2::from_shape(
                        (features, rows).strides((1, time * features)),
                        &xs[(b0 * time + t) * features..],
                    )
                    .expect("inside x");
                    step_gemm(op, alone, x_t, &dz_packed, T::one(), &mut dk.view_mut())?;
                }
                if let (Some(dxs), Some(wkt)) = (dxs.as_deref_mut(), wkt) {
                    let mut dx_t = step_view_mut(dxs, rows, time, features, t);
                    step_gemm(op, alone, zt, wkt, T::zero(), &mut dx_t)?;
                }
                if t == 0 && !want_h0 {
                    break;
                }
                let mut dhv = ArrayViewMut2::from_shape((rows, u), &mut *dhn).expect("the chunk's size");
                step_gemm(op, alone, zt, rkt, T::zero(), &mut dhv)?;
            }
            partials.lock().unwrap_or_else(|p| p.into_inner())[b0 / per_chunk] = Some((dk, dr, db));
            Ok(())
        })?;
        add_partials(sink, want_x.then_some(dx), &[(1, want_k), (2, want_r)], want_b.then_some(5), partials)?;
        sink.add(3, Tensor::from(dh_next.into_dyn()))?;
        sink.add(4, Tensor::from(dc_next.into_dyn()))?;
        Ok(())
    })?)
}

/// Each chunk's `(∂L/∂kernel, ∂L/∂recurrent_kernel, ∂L/∂bias)`, by chunk index.
type ChunkPartials<T> = Mutex<Vec<Option<(Array2<T>, Array2<T>, Vec<T>)>>>;

/// Hands the weight gradients a recurrent op's chunks computed to `sink`: `dx` (the
/// gradient with respect to `x`, input 0, when wanted) as it is, and the chunks'
/// partial sums added up in chunk order (the same order at any thread count) into
/// the inputs `weights` names (`(input, wanted)`) and into input `bias`; zeros when
/// no chunk ran (no samples or no time steps).
fn add_partials<T: Element>(
    sink: &mut GradSink<'_, T>,
    dx: Option<Array3<T>>,
    weights: &[(usize, bool); 2],
    bias: Option<usize>,
    partials: ChunkPartials<T>,
) -> std::result::Result<(), AutogradError> {
    if let Some(dx) = dx {
        sink.add(0, Tensor::from(dx.into_dyn()))?;
    }
    let partials: Vec<_> = partials.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().flatten().collect();
    let mut sums: [Option<Array2<T>>; 2] = [None, None];
    let mut bias_sum: Option<Vec<T>> = None;
    for (dk, dr, db) in partials {
        for (sum, part) in sums.iter_mut().zip([dk, dr]) {
            match sum {
                Some(s) => *s += &part,
                None => *sum = Some(part),
            }
        }
        match &mut bias_sum {
            Some(s) => s.iter_mut().zip(&db).for_each(|(s, &v)| *s += v),
            None => bias_sum = Some(db),
        }
    }
    // No chunk ran (no samples or no time steps): zero gradients.
    let zeros = |sink: &GradSink<'_, T>, k: usize| Tensor::zeros(sink.input_shape(k));
    for (&(k, wanted), sum) in weights.iter().zip(sums) {
        if wanted {
            let grad = match sum {
                Some(sum) => Tensor::from(sum.into_dyn()),
                None => zeros(sink, k),
            };
            sink.add(k, grad)?;
        }
    }
    if let Some(k) = bias {
        let grad = match bias_sum {
            Some(sum) => Tensor::from_vec(sink.input_shape(k), sum),
            None => zeros(sink, k),
        };
        sink.add(k, grad)?;
    }
    Ok(())
}

/// One sample's inputs to the LSTM gradient at one step (formulas in [`lstm`]'s
/// docs), each `units` long except `gates` (`i, f, c̃, o`) and `grad_out`
/// (`[∂L/∂h_t, ∂L/∂c_t]` from the step's own output), `4·units` and `2·units`.
struct LstmStepGrad<'a, T> {
    gates: &'a [T],
    tanh_c: &'a [T],
    c_prev: &'a [T],
    grad_out: &'a [T],
    /// `∂L/∂h_t` flowing back from step `t + 1` through the recurrent kernel.
    dh_next: &'a [T],
}

impl<T: Element> LstmStepGrad<'_, T> {
    /// Writes the gate pre-activation gradients `[δi, δf, δc̃, δo]` into `dz` and
    /// replaces `dc` (`∂L/∂c_t` flowing back from step `t + 1`) by `∂L/∂c_{t−1}`.
    /// Slices of equal length, so the loop compiles to vector instructions.
    #[inline(always)]
    fn run(&self, dc_next: &mut [T], dz: &mut [T]) {
        let u = self.tanh_c.len();
        let one = T::one();
        let (i, rest) = self.gates[..4 * u].split_at(u);
        let (f, rest) = rest.split_at(u);
        let (c_hat, o) = rest.split_at(u);
        let (zi, rest) = dz[..4 * u].split_at_mut(u);
        let (zf, rest) = rest.split_at_mut(u);
        let (zc, zo) = rest.split_at_mut(u);
        let (gh, gc) = self.grad_out[..2 * u].split_at(u);
        let (tc, c_prev, dhn, dcn) = (&self.tanh_c[..u], &self.c_prev[..u], &self.dh_next[..u], &mut dc_next[..u]);
        for k in 0..u {
            let dh = gh[k] + dhn[k];
            let dc = gc[k] + dcn[k] + dh * o[k] * (one - tc[k] * tc[k]);
            zi[k] = dc * c_hat[k] * i[k] * (one - i[k]);
            zf[k] = dc * c_prev[k] * f[k] * (one - f[k]);
            zc[k] = dc * i[k] * (one - c_hat[k] * c_hat[k]);
            zo[k] = dh * tc[k] * o[k] * (one - o[k]);
            dcn[k] = dc * f[k];
        }
    }
}

/// One sample's inputs to the GRU gradient at one step (formulas in [`gru`]'s docs):
/// the gate activations `z, r, h̃` (`3·units`), `h_{t−1}`, `h_{t−1}·U_h + b_rec,h`
/// and `∂L/∂h_t` from the step's own output (`units` each).
struct GruStepGrad<'a, T> {
    gates: &'a [T],
    h_prev: &'a [T],
    rec_h: &'a [T],
    grad_out: &'a [T],
}

impl<T: Element> GruStepGrad<'_, T> {
    /// Writes the input-side gradients `[δz, δr, δa_h]` into `dxw` and the
    /// recurrent-side `[δz, δr, δa_h ⊙ r]` into `drec`, and replaces `dh` (`∂L/∂h_t`
    /// flowing back from step `t + 1` through U) by its part through `z`, `δh ⊙ z`
    /// (the GEMM adds `drec·Uᵀ`). Slices of equal length, so the loop vectorizes.
    #[inline(always)]
    fn run(&self, dh_next: &mut [T], dxw: &mut [T], drec: &mut [T]) {
        let u = self.h_prev.len();
        let one = T::one();
        let (z, rest) = self.gates[..3 * u].split_at(u);
        let (r, h_hat) = rest.split_at(u);
        let (xz, rest) = dxw[..3 * u].split_at_mut(u);
        let (xr, xh) = rest.split_at_mut(u);
        let (rz, rest) = drec[..3 * u].split_at_mut(u);
        let (rr, rh) = rest.split_at_mut(u);
        let (h_prev, rec_h, gh, dhn) = (&self.h_prev[..u], &self.rec_h[..u], &self.grad_out[..u], &mut dh_next[..u]);
        for k in 0..u {
            let dh = gh[k] + dhn[k];
            let dz = dh * (h_prev[k] - h_hat[k]) * z[k] * (one - z[k]);
            let dah = dh * (one - z[k]) * (one - h_hat[k] * h_hat[k]);
            let dr = dah * rec_h[k] * r[k] * (one - r[k]);
            xz[k] = dz;
            xr[k] = dr;
            xh[k] = dah;
            rz[k] = dz;
            rr[k] = dr;
            rh[k] = dah * r[k];
            dhn[k] = dh * z[k];
        }
    }
}

/// The GRU over a whole sequence in the `reset_after` form (Keras's default; see the
/// module docs for the gate equations), as one graph op.
///
/// # Shapes
/// `x: [batch, time, features]`, `kernel: [features, 3·units]` and
/// `recurrent_kernel: [units, 3·units]` (gate blocks `z, r, h̃`),
/// `bias: [2, 3·units]` (row 0 the input bias `b_in`, row 1 the recurrent bias
/// `b_rec`), `h0: [batch, units]` → every state `[batch, time, units]`.
///
/// # Gradient
/// Backpropagation through time, with `δh` the step's output gradient plus what flows
/// back from step `t + 1`: `δz = δh ⊙ (h_{t−1} − h̃) ⊙ z(1−z)`,
/// `δa_h = δh ⊙ (1 − z) ⊙ (1 − h̃²)`, `δr = δa_h ⊙ (h_{t−1}·U_h + b_rec,h) ⊙ r(1−r)`;
/// the input side gets `[δz, δr, δa_h]`, the recurrent side `[δz, δr, δa_h ⊙ r]`, and
/// `δh_{t−1} = δh ⊙ z + [δz, δr, δa_h ⊙ r]·Uᵀ`. Needs the gate activations and
/// `h_{t−1}·U_h + b_rec,h` (kept) and the output.
///
/// # Errors
/// As [`simple_rnn`].
pub fn gru<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    kernel: Var,
    recurrent_kernel: Var,
    bias: Option<Var>,
    h0: Var,
) -> Result<Var> {
    let op = "gru";
    let d = check_shapes(op, g, x, kernel, recurrent_kernel, &[h0], 3)?;
    let (time, u) = (d.time, d.units);
    check_bias(op, g, bias, &[2, 3 * u])?;
    let bias2 = bias.map(|b| g.value(b).array().view().into_dimensionality::<Ix2>().expect("rank 2"));
    let mut a = project_inputs(op, g.value(x), g.value(kernel), bias2.as_ref().map(|b| b.row(0)), d)?;
    let rk = PackedRhs::new(g.value(recurrent_kernel).array().view().into_dimensionality::<Ix2>().expect("rank 2"));
    let rk = &rk;
    let h0s = g.value(h0).array().as_standard_layout();
    let h0s = h0s.as_slice().expect("standard layout");
    let b_rec = bias2.as_ref().map(|b| b.row(1));
    // h_{t−1}·U_h + b_rec,h at every step, for backward.
    let mut rec_h = zeros3::<T>(d.batch, time, u);
    let mut out = zeros3::<T>(d.batch, time, u);
    let one = T::one();
    let parts = vec![
        (a.as_slice_mut().expect("fresh array"), time * 3 * u),
        (out.as_slice_mut().expect("fresh array"), time * u),
        (rec_h.as_slice_mut().expect("fresh array"), time * u),
    ];
    for_sequence_chunks(parts, d.batch, |b0, p, alone| {
        let [av, ov, rv] = p else { unreachable!("three parts") };
        let rows = ov.len() / (time * u);
        let mut inner = Array2::<T>::zeros((rows, 3 * u));
        for t in 0..time {
            {
                let mut iv = inner.view_mut();
                let beta = fill_rows(&mut iv, b_rec);
                let prev = if t == 0 {
                    ArrayView2::from_shape((rows, u), &h0s[b0 * u..(b0 + rows) * u]).expect("shape checked")
                } else {
                    step_view(ov, rows, time, u, t - 1)
                };
                step_gemm(op, alone, prev, rk, beta, &mut iv)?;
            }
            let iv = inner.as_slice().expect("fresh array");
            // The chunk's rows in one vectorized pass (one CPU dispatch per step).
            nn_tensor::simd::vectorized(
                #[inline(always)]
                || {
                    for bl in 0..rows {
                        let b = b0 + bl;
                        let gb = (bl * time + t) * 3 * u;
                        let ob = (bl * time + t) * u;
                        let ib = bl * 3 * u;
                        // z, r = σ(pre-activations); then h̃ = tanh(... + r ⊙ rh).
                        let gates = &mut av[gb..gb + 3 * u];
                        let (zr, h_hat) = gates.split_at_mut(2 * u);
                        let (z, r) = zr.split_at_mut(u);
                        let (inner_zr, rec) = iv[ib..ib + 3 * u].split_at(2 * u);
                        let (inner_z, inner_r) = inner_zr.split_at(u);
                        let (before, now) = ov.split_at_mut(ob);
                        let h = &mut now[..u];
                        let h_prev = if t == 0 { &h0s[b * u..(b + 1) * u] } else { &before[ob - u..ob] };
                        let rec_out = &mut rv[ob..ob + u];
                        let (r, h_hat, rec, inner_r) = (&mut r[..u], &mut h_hat[..u], &rec[..u], &inner_r[..u]);
                        for k in 0..u {
                            z[k] = (z[k] + inner_z[k]).sigmoid_fast();
                            r[k] = (r[k] + inner_r[k]).sigmoid_fast();
                            h_hat[k] = (h_hat[k] + r[k] * rec[k]).tanh_fast();
                            rec_out[k] = rec[k];
                            h[k] = z[k] * h_prev[k] + (one - z[k]) * h_hat[k];
                        }
                    }
                },
            );
        }
        Ok(())
    })?;
    let value = Tensor::from(out.into_dyn());

    let inputs: Vec<Var> =
        [Some(x), Some(kernel), Some(recurrent_kernel), Some(h0), bias].into_iter().flatten().collect();
    Ok(g.try_custom(op, &inputs, value, move |ctx, grad, sink| {
        let (xv, kv, rv, h0v, out) = (ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3), ctx.output());
        let rkt = PackedRhs::new(rv.array().view().into_dimensionality::<Ix2>().expect("rank 2").t());
        let rkt = &rkt;
        let gout = grad.array().as_standard_layout();
        let gout = gout.as_slice().expect("standard layout");
        let h0s = h0v.array().as_standard_layout();
        let h0s = h0s.as_slice().expect("standard layout");
        let os = out.as_slice().expect("own output, contiguous");
        let av = a.as_slice().expect("fresh array");
        let rhs = rec_h.as_slice().expect("fresh array");
        let features = d.features;
        let xs = xv.array().as_standard_layout();
        let xs = xs.as_slice().expect("standard layout");
        let (want_x, want_k, want_r, want_h0) = (sink.wants(0), sink.wants(1), sink.wants(2), sink.wants(3));
        let want_b = ctx.num_inputs() == 5 && sink.wants(4);
        // Wᵀ packed for ∂L/∂x_t = δ(input side)_t·Wᵀ, when x needs a gradient.
        let wkt = want_x.then(|| PackedRhs::new(kv.array().view().into_dimensionality::<Ix2>().expect("rank 2").t()));
        let wkt = wkt.as_ref();
        let mut dh_next = Array2::<T>::zeros((d.batch, u));
        let mut dx = if want_x { zeros3::<T>(d.batch, time, features) } else { Array3::zeros((0, 0, 0)) };
        let mut parts = vec![(dh_next.as_slice_mut().expect("fresh array"), u)];
        if want_x && features > 0 {
            parts.push((dx.as_slice_mut().expect("fresh array"), time * features));
        }
        // Each chunk's share of ∂L/∂W, ∂L/∂U and ∂L/∂b (rows b_in, b_rec), added up in
        // chunk order below; as the LSTM's (see there).
        let per_chunk = chunk_rows(d.batch);
        let partials = Mutex::new(vec![None; d.batch.div_ceil(per_chunk)]);
        for_sequence_chunks(parts, d.batch, |b0, p, alone| {
            let (dhn, dxs) = match p {
                [dhn] => (&mut **dhn, None),
                [dhn, dxs] => (&mut **dhn, Some(&mut **dxs)),
                _ => unreachable!("one or two parts"),
            };
            let rows = dhn.len() / u;
            // One step's input-side and recurrent-side gradients [rows, 3·units], and
            // the same packed for the weight gradients' products.
            let mut dxw = vec![T::zero(); rows * 3 * u];
            let mut drec = vec![T::zero(); rows * 3 * u];
            let mut h_prev_t = vec![T::zero(); if want_r { rows * u } else { 0 }];
            let empty = ArrayView2::from_shape((0, 3 * u), &dxw[..0]).expect("empty");
            let (mut dxw_packed, mut drec_packed) = (PackedRhs::new(empty), PackedRhs::new(empty));
            let mut dk = Array2::<T>::zeros(if want_k { (features, 3 * u) } else { (0, 0) });
            let mut dr = Array2::<T>::zeros(if want_r { (u, 3 * u) } else { (0, 0) });
            let mut db = vec![T::zero(); if want_b { 6 * u } else { 0 }];
            let mut dxs = dxs;
            for t in (0..time).rev() {
                nn_tensor::simd::vectorized(
                    #[inline(always)]
                    || {
                        for bl in 0..rows {
                            let b = b0 + bl;
                            let gb = (b * time + t) * 3 * u;
                            let ob = (b * time + t) * u;
                            let lb = bl * 3 * u;
                            let h_prev = if t == 0 { &h0s[b * u..(b + 1) * u] } else { &os[ob - u..ob] };
                            let step = GruStepGrad {
                                gates: &av[gb..gb + 3 * u],
                                h_prev,
                                rec_h: &rhs[ob..ob + u],
                                grad_out: &gout[ob..ob + u],
                            };
                            step.run(
                                &mut dhn[bl * u..(bl + 1) * u],
                                &mut dxw[lb..lb + 3 * u],
                                &mut drec[lb..lb + 3 * u],
                            );
                            if want_b {
                                let (db_in, db_rec) = db.split_at_mut(3 * u);
                                db_in.iter_mut().zip(&dxw[lb..lb + 3 * u]).for_each(|(s, &v)| *s += v);
                                db_rec.iter_mut().zip(&drec[lb..lb + 3 * u]).for_each(|(s, &v)| *s += v);
                            }
                            if want_r {
                                // h_{t−1} as column `bl` of h_{t−1}ᵀ ([units, rows]).
                                for (j, &v) in h_prev.iter().enumerate() {
                                    h_prev_t[j * rows + bl] = v;
                                }
                            }
                        }
                    },
                );
                let xt = ArrayView2::from_shape((rows, 3 * u), &dxw[..]).expect("the chunk's size");
                let rt = ArrayView2::from_shape((rows, 3 * u), &drec[..]).expect("the chunk's size");
                if want_k {
                    // ∂L/∂W += x_tᵀ·δ(input side)_t.
                    dxw_packed.repack(xt);
                    let x_t = ArrayView2::from_shape(
                        (features, rows).strides((1, time * features)),
                        &xs[(b0 * time + t) * features..],
                    )
                    .expect("inside x");
                    step_gemm(op, alone, x_t, &dxw_packed, T::one(), &mut dk.view_mut())?;
                }
                if want_r {
                    // ∂L/∂U += h_{t−1}ᵀ·δ(recurrent side)_t.
                    drec_packed.repack(rt);
                    let prev_t = ArrayView2::from_shape((u, rows), &h_prev_t[..]).expect("the chunk's size");
                    step_gemm(op, alone, prev_t, &drec_packed, T::one(), &mut dr.view_mut())?;
                }
                if let (Some(dxs), Some(wkt)) = (dxs.as_deref_mut(), wkt) {
                    let mut dx_t = step_view_mut(dxs, rows, time, features, t);
                    step_gemm(op, alone, xt, wkt, T::zero(), &mut dx_t)?;
                }
                if t == 0 && !want_h0 {
                    break;
                }
                let mut dhv = ArrayViewMut2::from_shape((rows, u), &mut *dhn).expect("the chunk's size");
                step_gemm(op, alone, rt, rkt, one, &mut dhv)?;
            }
            partials.lock().unwrap_or_else(|p| p.into_inner())[b0 / per_chunk] = Some((dk, dr, db));
            Ok(())
        })?;
        add_partials(sink, want_x.then_some(dx), &[(1, want_k), (2, want_r)], want_b.then_some(4), partials)?;
        sink.add(3, Tensor::from(dh_next.into_dyn()))?;
        Ok(())
    })?)
}
