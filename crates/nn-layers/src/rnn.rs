//! Whole-sequence recurrent kernels: SimpleRNN, LSTM and GRU, each one graph
//! operation with its backward pass (backpropagation through time) written by hand.
//!
//! Each op runs every time step of a batch of sequences at once: one GEMM projects
//! all inputs (`[batch·time, features] · kernel + bias`), then each step adds one
//! `[batch, units] · recurrent_kernel` GEMM and applies the gate nonlinearities in
//! place. Backward walks the steps in reverse (one `[batch, gates·units] ·
//! recurrent_kernelᵀ` GEMM per step for the gradient flowing into the previous
//! state), then forms the weight gradients with one GEMM each over all steps. Nothing
//! of a tensor's size is allocated per time step. The gate activations the forward
//! pass computed are kept for backward; the states are the op's own output.
//!
//! The per-step element-wise work (LSTM and GRU) is split over nn's thread pool by
//! sample when it is large enough; each value is computed the same way wherever it
//! runs, so results are bit-identical for any thread count. The gate nonlinearities
//! run over each sample's gate blocks as whole slices, vectorized for `f32`
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

use ndarray::{Array2, Array3, ArrayView1, ArrayView2, Axis, Ix2, Slice};
use nn_autograd::{AutogradError, GradSink, Graph, Var};
use nn_tensor::{Element, Tensor, TensorError};

use crate::error::Result;

/// Samples per chunk below which the per-step element-wise work stays on the calling
/// thread (spawning would cost more than it saves).
const MIN_PARALLEL_ELEMENTS: usize = 4096;

/// Runs `f(first_sample, chunks)` over the samples `0..samples` split into one range
/// per thread of nn's pool: `chunks[j]` is the part of `parts[j].0` belonging to those
/// samples (`parts[j].1` elements per sample, samples stored one after another).
/// Each sample's values are computed the same way whichever chunk it falls in, so
/// results are bit-identical for every thread count. `work` is the number of
/// elements the step touches, to decide whether threads pay off.
fn for_sample_chunks<T: Element>(
    parts: Vec<(&mut [T], usize)>,
    samples: usize,
    work: usize,
    f: impl Fn(usize, &mut [&mut [T]]) + Sync,
) {
    let threads = nn_tensor::num_threads().min(samples);
    if threads <= 1 || work < MIN_PARALLEL_ELEMENTS {
        let mut all: Vec<&mut [T]> = parts.into_iter().map(|(p, _)| p).collect();
        f(0, &mut all);
        return;
    }
    let per_chunk = samples.div_ceil(threads);
    let mut chunks: Vec<Vec<&mut [T]>> = (0..samples.div_ceil(per_chunk)).map(|_| Vec::new()).collect();
    for (part, per_sample) in parts {
        for (c, piece) in part.chunks_mut(per_chunk * per_sample).enumerate() {
            chunks[c].push(piece);
        }
    }
    let f = &f;
    nn_tensor::thread_pool().scope(|s| {
        for (c, mut chunk) in chunks.into_iter().enumerate() {
            s.spawn(move |_| f(c * per_chunk, &mut chunk));
        }
    });
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
    let mut out = Array2::<T>::zeros((rows, width));
    let beta = match bias {
        Some(b) => {
            out.rows_mut().into_iter().for_each(|mut r| r.assign(&b));
            T::one()
        }
        None => T::zero(),
    };
    nn_tensor::gemm::gemm(T::one(), x2, w2, beta, &mut out.view_mut()).map_err(tensor_err(op))?;
    Ok(out.into_shape_with_order((d.batch, d.time, width)).expect("equal count"))
}

/// The states each step started from, `[batch·time, units]`: `h0` for step 0, then
/// the first `units` columns of `out[:, t − 1, :]`.
fn previous_states<T: Element>(h0: &Tensor<T>, out: &Tensor<T>, d: Dims) -> Array2<T> {
    let u = d.units;
    let out3 = out.array().view().into_dimensionality::<ndarray::Ix3>().expect("rank 3");
    let h0 = h0.array().view().into_dimensionality::<Ix2>().expect("rank 2");
    let mut prev = Array3::<T>::zeros((d.batch, d.time, u));
    prev.index_axis_mut(Axis(1), 0).assign(&h0);
    if d.time > 1 {
        prev.slice_axis_mut(Axis(1), Slice::from(1..))
            .assign(&out3.slice_axis(Axis(1), Slice::from(..d.time - 1)).slice_axis(Axis(2), Slice::from(..u)));
    }
    prev.into_shape_with_order((d.batch * d.time, u)).expect("equal count")
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
    check_bias(op, g, bias, &[d.units])?;
    let bview = bias.map(|b| g.value(b).array().view().into_dimensionality::<ndarray::Ix1>().expect("rank 1"));
    let mut a = project_inputs(op, g.value(x), g.value(kernel), bview, d)?;
    let rk = g.value(recurrent_kernel).array().view().into_dimensionality::<Ix2>().expect("rank 2");
    let h0v = g.value(h0).array().view().into_dimensionality::<Ix2>().expect("rank 2");
    for t in 0..d.time {
        if t == 0 {
            let mut cur = a.index_axis_mut(Axis(1), 0);
            nn_tensor::gemm::gemm(T::one(), h0v, rk, T::one(), &mut cur).map_err(tensor_err(op))?;
        } else {
            let (before, after) = a.view_mut().split_at(Axis(1), t);
            let prev = before.index_axis_move(Axis(1), t - 1);
            let mut cur = after.index_axis_move(Axis(1), 0);
            nn_tensor::gemm::gemm(T::one(), prev.view(), rk, T::one(), &mut cur).map_err(tensor_err(op))?;
        }
        for mut row in a.index_axis_mut(Axis(1), t).rows_mut() {
            nn_tensor::fastmath::tanh_slice(row.as_slice_mut().expect("rows of a standard-layout array"));
        }
    }
    let value = Tensor::from(a.into_dyn());

    let inputs: Vec<Var> =
        [Some(x), Some(kernel), Some(recurrent_kernel), Some(h0), bias].into_iter().flatten().collect();
    Ok(g.try_custom(op, &inputs, value, move |ctx, grad, sink| {
        let (xv, kv, rv, h0v, out) = (ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3), ctx.output());
        let rk = rv.array().view().into_dimensionality::<Ix2>().expect("rank 2");
        let gout = grad.array().as_standard_layout();
        let gout = gout.as_slice().expect("standard layout");
        let hs = out.as_slice().expect("own output, contiguous");
        let u = d.units;
        let mut delta = Array3::<T>::zeros((d.batch, d.time, u));
        let mut dh_next = Array2::<T>::zeros((d.batch, u));
        for t in (0..d.time).rev() {
            {
                let ds = delta.as_slice_mut().expect("fresh array");
                let dn = dh_next.as_slice().expect("fresh array");
                for b in 0..d.batch {
                    let base = (b * d.time + t) * u;
                    for k in 0..u {
                        let h = hs[base + k];
                        ds[base + k] = (gout[base + k] + dn[b * u + k]) * (T::one() - h * h);
                    }
                }
            }
            let dt = delta.index_axis(Axis(1), t);
            nn_tensor::gemm::gemm(T::one(), dt, rk.t(), T::zero(), &mut dh_next.view_mut()).map_err(tensor_err(op))?;
        }
        let delta2 = delta.view().into_shape_with_order((d.batch * d.time, u)).expect("standard layout");
        weight_grads(op, sink, xv, kv, h0v, out, delta2, delta2, d)?;
        sink.add(3, Tensor::from(dh_next.into_dyn()))?;
        if ctx.num_inputs() == 5 && sink.wants(4) {
            sink.add(4, Tensor::from(delta2.sum_axis(Axis(0))))?;
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
/// [`simple_rnn`]. Needs the gate activations (kept) and the output.
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
    let op = "lstm";
    let d = check_shapes(op, g, x, kernel, recurrent_kernel, &[h0, c0], 4)?;
    let u = d.units;
    check_bias(op, g, bias, &[4 * u])?;
    let bview = bias.map(|b| g.value(b).array().view().into_dimensionality::<ndarray::Ix1>().expect("rank 1"));
    // Pre-activations, then (in place) the gate activations i, f, c̃, o.
    let mut a = project_inputs(op, g.value(x), g.value(kernel), bview, d)?;
    let rk = g.value(recurrent_kernel).array().view().into_dimensionality::<Ix2>().expect("rank 2");
    let h0v = g.value(h0).as_slice().map(<[T]>::to_vec).unwrap_or_else(|| g.value(h0).to_vec());
    let c0v = g.value(c0).as_slice().map(<[T]>::to_vec).unwrap_or_else(|| g.value(c0).to_vec());
    let h0a = Array2::from_shape_vec((d.batch, u), h0v).expect("shape checked");
    let mut out = Array3::<T>::zeros((d.batch, d.time, 2 * u));
    for t in 0..d.time {
        {
            let mut gates = a.index_axis_mut(Axis(1), t);
            let prev = if t == 0 {
                h0a.view()
            } else {
                out.index_axis(Axis(1), t - 1).slice_axis_move(Axis(1), Slice::from(..u))
            };
            nn_tensor::gemm::gemm(T::one(), prev, rk, T::one(), &mut gates).map_err(tensor_err(op))?;
        }
        let parts = vec![
            (a.as_slice_mut().expect("fresh array"), d.time * 4 * u),
            (out.as_slice_mut().expect("fresh array"), d.time * 2 * u),
        ];
        for_sample_chunks(parts, d.batch, d.batch * u, |b0, p| {
            let [av, ov] = p else { unreachable!("two parts") };
            for bl in 0..av.len() / (d.time * 4 * u) {
                let b = b0 + bl;
                let gb = (bl * d.time + t) * 4 * u;
                let ob = (bl * d.time + t) * 2 * u;
                // The gate activations in place, vectorized: i, f (σ), c̃ (tanh), o (σ).
                let gates = &mut av[gb..gb + 4 * u];
                nn_tensor::fastmath::sigmoid_slice(&mut gates[..2 * u]);
                nn_tensor::fastmath::tanh_slice(&mut gates[2 * u..3 * u]);
                nn_tensor::fastmath::sigmoid_slice(&mut gates[3 * u..]);
                let (i, rest) = gates.split_at(u);
                let (f, rest) = rest.split_at(u);
                let (c_hat, o) = rest.split_at(u);
                // This step's [h, c] and the previous step's c (or c0).
                let (before, now) = ov.split_at_mut(ob);
                let (h, c) = now[..2 * u].split_at_mut(u);
                let c_prev = if t == 0 { &c0v[b * u..(b + 1) * u] } else { &before[ob - u..] };
                for k in 0..u {
                    c[k] = f[k] * c_prev[k] + i[k] * c_hat[k];
                }
                h.copy_from_slice(c);
                nn_tensor::fastmath::tanh_slice(h);
                for k in 0..u {
                    h[k] = o[k] * h[k];
                }
            }
        });
    }
    let value = Tensor::from(out.into_dyn());

    let inputs: Vec<Var> =
        [Some(x), Some(kernel), Some(recurrent_kernel), Some(h0), Some(c0), bias].into_iter().flatten().collect();
    Ok(g.try_custom(op, &inputs, value, move |ctx, grad, sink| {
        let (xv, kv, rv, h0v, c0v, out) =
            (ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3), ctx.input(4), ctx.output());
        let rk = rv.array().view().into_dimensionality::<Ix2>().expect("rank 2");
        let gout = grad.array().as_standard_layout();
        let gout = gout.as_slice().expect("standard layout");
        let c0s = c0v.array().as_standard_layout();
        let c0s = c0s.as_slice().expect("standard layout");
        let os = out.as_slice().expect("own output, contiguous");
        let av = a.as_slice().expect("fresh array");
        let mut dz = Array3::<T>::zeros((d.batch, d.time, 4 * u));
        let mut dh_next = Array2::<T>::zeros((d.batch, u));
        let mut dc_next = Array2::<T>::zeros((d.batch, u));
        let one = T::one();
        for t in (0..d.time).rev() {
            {
                let parts = vec![
                    (dz.as_slice_mut().expect("fresh array"), d.time * 4 * u),
                    (dc_next.as_slice_mut().expect("fresh array"), u),
                ];
                let dhn = dh_next.as_slice().expect("fresh array");
                for_sample_chunks(parts, d.batch, d.batch * u, |b0, p| {
                    let [zs, dcn] = p else { unreachable!("two parts") };
                    let mut tcs = vec![T::zero(); u];
                    for bl in 0..dcn.len() / u {
                        let b = b0 + bl;
                        let gb = (b * d.time + t) * 4 * u;
                        let ob = (b * d.time + t) * 2 * u;
                        let zb = (bl * d.time + t) * 4 * u;
                        // tanh(c_t), vectorized, as the forward pass computed it.
                        tcs.copy_from_slice(&os[ob + u..ob + 2 * u]);
                        nn_tensor::fastmath::tanh_slice(&mut tcs);
                        for k in 0..u {
                            let (i, f, c_hat, o) = (av[gb + k], av[gb + u + k], av[gb + 2 * u + k], av[gb + 3 * u + k]);
                            let tc = tcs[k];
                            let dh = gout[ob + k] + dhn[b * u + k];
                            let dc = gout[ob + u + k] + dcn[bl * u + k] + dh * o * (one - tc * tc);
                            let c_prev = if t == 0 { c0s[b * u + k] } else { os[ob - 2 * u + u + k] };
                            zs[zb + k] = dc * c_hat * i * (one - i);
                            zs[zb + u + k] = dc * c_prev * f * (one - f);
                            zs[zb + 2 * u + k] = dc * i * (one - c_hat * c_hat);
                            zs[zb + 3 * u + k] = dh * tc * o * (one - o);
                            dcn[bl * u + k] = dc * f;
                        }
                    }
                });
            }
            let zt = dz.index_axis(Axis(1), t);
            nn_tensor::gemm::gemm(one, zt, rk.t(), T::zero(), &mut dh_next.view_mut()).map_err(tensor_err(op))?;
        }
        let dz2 = dz.view().into_shape_with_order((d.batch * d.time, 4 * u)).expect("standard layout");
        weight_grads(op, sink, xv, kv, h0v, out, dz2, dz2, d)?;
        sink.add(3, Tensor::from(dh_next.into_dyn()))?;
        sink.add(4, Tensor::from(dc_next.into_dyn()))?;
        if ctx.num_inputs() == 6 && sink.wants(5) {
            sink.add(5, Tensor::from(dz2.sum_axis(Axis(0))))?;
        }
        Ok(())
    })?)
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
    let u = d.units;
    check_bias(op, g, bias, &[2, 3 * u])?;
    let bias2 = bias.map(|b| g.value(b).array().view().into_dimensionality::<Ix2>().expect("rank 2"));
    let mut a = project_inputs(op, g.value(x), g.value(kernel), bias2.as_ref().map(|b| b.row(0)), d)?;
    let rk = g.value(recurrent_kernel).array().view().into_dimensionality::<Ix2>().expect("rank 2");
    let h0s = g.value(h0).array().as_standard_layout().into_owned();
    let h0a = h0s.view().into_dimensionality::<Ix2>().expect("rank 2");
    let mut inner = Array2::<T>::zeros((d.batch, 3 * u));
    // h_{t−1}·U_h + b_rec,h at every step, for backward.
    let mut rec_h = Array3::<T>::zeros((d.batch, d.time, u));
    let mut out = Array3::<T>::zeros((d.batch, d.time, u));
    for t in 0..d.time {
        {
            let mut iv = inner.view_mut();
            let beta = fill_rows(&mut iv, bias2.as_ref().map(|b| b.row(1)));
            let prev = if t == 0 { h0a.view() } else { out.index_axis(Axis(1), t - 1) };
            nn_tensor::gemm::gemm(T::one(), prev, rk, beta, &mut iv).map_err(tensor_err(op))?;
        }
        let parts = vec![
            (a.as_slice_mut().expect("fresh array"), d.time * 3 * u),
            (out.as_slice_mut().expect("fresh array"), d.time * u),
            (rec_h.as_slice_mut().expect("fresh array"), d.time * u),
        ];
        let iv = inner.as_slice().expect("fresh array");
        let h0v = h0a.as_slice().expect("standard layout");
        for_sample_chunks(parts, d.batch, d.batch * u, |b0, p| {
            let [av, ov, rv] = p else { unreachable!("three parts") };
            for bl in 0..ov.len() / (d.time * u) {
                let b = b0 + bl;
                let gb = (bl * d.time + t) * 3 * u;
                let ob = (bl * d.time + t) * u;
                let ib = b * 3 * u;
                // z, r = σ(pre-activations), vectorized; then h̃ = tanh(... + r ⊙ rh).
                let gates = &mut av[gb..gb + 3 * u];
                for k in 0..2 * u {
                    gates[k] += iv[ib + k];
                }
                nn_tensor::fastmath::sigmoid_slice(&mut gates[..2 * u]);
                for k in 0..u {
                    let rh = iv[ib + 2 * u + k];
                    gates[2 * u + k] += gates[u + k] * rh;
                    rv[ob + k] = rh;
                }
                nn_tensor::fastmath::tanh_slice(&mut gates[2 * u..]);
                for k in 0..u {
                    let (z, h_hat) = (gates[k], gates[2 * u + k]);
                    let h_prev = if t == 0 { h0v[b * u + k] } else { ov[ob - u + k] };
                    ov[ob + k] = z * h_prev + (T::one() - z) * h_hat;
                }
            }
        });
    }
    let value = Tensor::from(out.into_dyn());

    let inputs: Vec<Var> =
        [Some(x), Some(kernel), Some(recurrent_kernel), Some(h0), bias].into_iter().flatten().collect();
    Ok(g.try_custom(op, &inputs, value, move |ctx, grad, sink| {
        let (xv, kv, rv, h0v, out) = (ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3), ctx.output());
        let rk = rv.array().view().into_dimensionality::<Ix2>().expect("rank 2");
        let gout = grad.array().as_standard_layout();
        let gout = gout.as_slice().expect("standard layout");
        let h0s = h0v.array().as_standard_layout();
        let h0s = h0s.as_slice().expect("standard layout");
        let os = out.as_slice().expect("own output, contiguous");
        let av = a.as_slice().expect("fresh array");
        let rhs = rec_h.as_slice().expect("fresh array");
        let mut dxw = Array3::<T>::zeros((d.batch, d.time, 3 * u));
        let mut drec = Array3::<T>::zeros((d.batch, d.time, 3 * u));
        let mut dh_next = Array2::<T>::zeros((d.batch, u));
        let one = T::one();
        for t in (0..d.time).rev() {
            {
                let parts = vec![
                    (dxw.as_slice_mut().expect("fresh array"), d.time * 3 * u),
                    (drec.as_slice_mut().expect("fresh array"), d.time * 3 * u),
                    (dh_next.as_slice_mut().expect("fresh array"), u),
                ];
                for_sample_chunks(parts, d.batch, d.batch * u, |b0, p| {
                    let [xs, rs, dhn] = p else { unreachable!("three parts") };
                    for bl in 0..dhn.len() / u {
                        let b = b0 + bl;
                        let gb = (b * d.time + t) * 3 * u;
                        let ob = (b * d.time + t) * u;
                        let lb = (bl * d.time + t) * 3 * u;
                        for k in 0..u {
                            let (z, r, h_hat) = (av[gb + k], av[gb + u + k], av[gb + 2 * u + k]);
                            let h_prev = if t == 0 { h0s[b * u + k] } else { os[ob - u + k] };
                            let dh = gout[ob + k] + dhn[bl * u + k];
                            let dz = dh * (h_prev - h_hat) * z * (one - z);
                            let dah = dh * (one - z) * (one - h_hat * h_hat);
                            let dr = dah * rhs[ob + k] * r * (one - r);
                            xs[lb + k] = dz;
                            xs[lb + u + k] = dr;
                            xs[lb + 2 * u + k] = dah;
                            rs[lb + k] = dz;
                            rs[lb + u + k] = dr;
                            rs[lb + 2 * u + k] = dah * r;
                            dhn[bl * u + k] = dh * z;
                        }
                    }
                });
            }
            let rt = drec.index_axis(Axis(1), t);
            nn_tensor::gemm::gemm(one, rt, rk.t(), one, &mut dh_next.view_mut()).map_err(tensor_err(op))?;
        }
        let rows = d.batch * d.time;
        let dxw2 = dxw.view().into_shape_with_order((rows, 3 * u)).expect("standard layout");
        let drec2 = drec.view().into_shape_with_order((rows, 3 * u)).expect("standard layout");
        weight_grads(op, sink, xv, kv, h0v, out, dxw2, drec2, d)?;
        sink.add(3, Tensor::from(dh_next.into_dyn()))?;
        if ctx.num_inputs() == 5 && sink.wants(4) {
            let mut db = Array2::<T>::zeros((2, 3 * u));
            db.row_mut(0).assign(&dxw2.sum_axis(Axis(0)));
            db.row_mut(1).assign(&drec2.sum_axis(Axis(0)));
            sink.add(4, Tensor::from(db.into_dyn()))?;
        }
        Ok(())
    })?)
}
