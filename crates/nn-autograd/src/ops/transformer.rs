//! The ops of Transformer layers: the error function ([`erf`], [`erfc`]), GELU
//! ([`Graph::try_gelu`], exact or in its tanh form) and the masked, scaled softmax
//! of attention ([`Graph::try_masked_softmax`]).
//!
//! Attention's products are the batched GEMMs of [`Graph::try_matmul_t`]
//! (`[batch·heads, seq_q, key_dim] · [batch·heads, seq_k, key_dim]ᵀ`); only the
//! softmax between them needs its own op, so that masked positions get exactly 0 and
//! a row with every position masked gives zeros instead of NaN.

use nn_tensor::{Element, Tensor};

use crate::error::{AutogradError, Result};
use crate::graph::{Graph, Var};
use crate::ops::twin;

/// The error function `erf(x) = (2/√π) ∫₀ˣ e^{−t²} dt` in `f64`: the `libm` crate's
/// port of musl's `erf` (Sun's fdlibm `s_erf.c`: rational approximations on five
/// intervals of `|x|`, one `exp` beyond 0.84375), error below 1 ulp; odd in `x`,
/// `±1` beyond `|x| ≈ 6`. NaN gives NaN.
pub fn erf(x: f64) -> f64 {
    libm::erf(x)
}

/// The complementary error function `erfc(x) = 1 − erf(x)` (the `libm` crate's, as
/// [`erf`]), computed without the cancellation of `1 − erf(x)` for large `x`:
/// relative error below a few ulp in the tail; `erfc(−x) = 2 − erfc(x)`. NaN gives
/// NaN.
pub fn erfc(x: f64) -> f64 {
    libm::erfc(x)
}

/// `√(2/π)`, the constant of GELU's tanh form.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient of GELU's tanh form.
const GELU_CUBIC: f64 = 0.044_715;

/// Exact GELU `x·Φ(x)` and its derivative `Φ(x) + x·φ(x)` in `f64`, with
/// `Φ(x) = erfc(−x/√2)/2` (no cancellation for negative `x`) and
/// `φ(x) = e^{−x²/2}/√(2π)`.
fn gelu_exact(x: f64) -> (f64, f64) {
    let cdf = 0.5 * erfc(-x * std::f64::consts::FRAC_1_SQRT_2);
    let pdf = (-0.5 * x * x).exp() * (0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2);
    (x * cdf, cdf + x * pdf)
}

/// GELU's tanh form `½x(1 + tanh u)`, `u = √(2/π)(x + 0.044715x³)`, and its
/// derivative `½(1 + tanh u) + ½x(1 − tanh² u)·√(2/π)(1 + 3·0.044715x²)`.
fn gelu_tanh(x: f64) -> (f64, f64) {
    let t = (SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)).tanh();
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x);
    (0.5 * x * (1.0 + t), 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
}

/// The GELU value and derivative at `x` (exact or tanh form), computed in `f64`.
#[inline]
fn gelu_f64(x: f64, approximate: bool) -> (f64, f64) {
    if approximate {
        gelu_tanh(x)
    } else {
        gelu_exact(x)
    }
}

/// Whether `T` is `f32` (constant per instantiation, so the branches on it fold).
fn is_f32<T: Element>() -> bool {
    T::DTYPE == nn_tensor::DType::F32
}

/// GELU of one element: for `f32` the vectorizable kernels of
/// [`nn_tensor::fastmath`] ([`gelu_f32`](nn_tensor::fastmath::gelu_f32), within 8
/// ulp; [`gelu_tanh_f32`](nn_tensor::fastmath::gelu_tanh_f32)), otherwise computed in
/// `f64` with `libm`'s `erfc` (to the last digit, for gradient checks).
#[inline(always)]
pub fn gelu_value<T: Element>(x: T, approximate: bool) -> T {
    use nn_tensor::fastmath::{gelu_f32, gelu_tanh_f32};
    if is_f32::<T>() {
        let x = x.as_f64() as f32;
        T::of_f64(if approximate { gelu_tanh_f32(x) } else { gelu_f32(x) } as f64)
    } else {
        T::of_f64(gelu_f64(x.as_f64(), approximate).0)
    }
}

/// The GELU value and slope at one element in one evaluation: the value as
/// [`gelu_value`] gives it (the same bits); the slope (`f32`: within `3·10⁻⁷`
/// absolute of the exact one).
#[inline(always)]
fn gelu_value_and_slope<T: Element>(x: T, approximate: bool) -> (T, T) {
    use nn_tensor::fastmath::{gelu_and_grad_f32, gelu_tanh_and_grad_f32};
    if is_f32::<T>() {
        let x = x.as_f64() as f32;
        let (y, s) = if approximate { gelu_tanh_and_grad_f32(x) } else { gelu_and_grad_f32(x) };
        (T::of_f64(y as f64), T::of_f64(s as f64))
    } else {
        let (y, s) = gelu_f64(x.as_f64(), approximate);
        (T::of_f64(y), T::of_f64(s))
    }
}

impl<T: Element> Graph<T> {
    /// The Gaussian error linear unit (Hendrycks & Gimpel, "Gaussian Error Linear
    /// Units (GELUs)", 2016, arXiv:1606.08415), element-wise, as Keras's
    /// `activations.gelu(x, approximate)`:
    ///
    /// - exact (`approximate = false`, Keras's default): `x·Φ(x) = ½x(1 + erf(x/√2))`,
    ///   `Φ` the standard normal CDF (with [`erfc`] for negative `x`);
    /// - `approximate = true`: the tanh form of the same paper (used by GPT-2),
    ///   `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
    ///
    /// `f32` uses the vectorized kernels of [`nn_tensor::fastmath`] (exact form within
    /// 8 ulp, its slope within `3·10⁻⁷`); `f64` is computed with `libm`'s `erfc`, to
    /// the last digit. Element-wise on nn's pool.
    ///
    /// # Gradient
    /// `g · f'(x)`, the slope `f'(x)` computed with the value in the forward pass and
    /// kept (GELU is not monotone: it cannot be recovered from the output): exact
    /// `Φ(x) + x·φ(x)`, `φ` the normal density; tanh form
    /// `½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 0.134145x²)`, `t` the tanh.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`].
    pub fn try_gelu(&mut self, x: Var, approximate: bool) -> Result<Var> {
        let op = "gelu";
        let i = self.idx(op, x)?;
        // The closures inline into the vectorized loops (measured: without the
        // attribute each element was a call, 3× slower than the f64 code).
        if !self.needs_grad(&[i]) {
            let value = self.val(i).map_par(
                #[inline(always)]
                move |x| gelu_value(x, approximate),
            );
            return Ok(self.push_op(op, &[i], value, 0, |_, _, _| Ok(())));
        }
        // Training: the slope comes out of the same evaluation (the two `exp`s
        // shared) and is kept, so backward is one multiplication per element.
        let (value, slope) = self.val(i).map2_par(
            #[inline(always)]
            move |x| gelu_value_and_slope(x, approximate),
        );
        let saved = slope.len() * std::mem::size_of::<T>();
        Ok(self.push_op(op, &[i], value, saved, move |_, mut g, sink| {
            g.try_zip_apply_par(
                &slope,
                #[inline(always)]
                |g, s| g * s,
            )
            .map_err(crate::error::tensor_err(op))?;
            sink.add(0, g)
        }))
    }
    twin!(gelu => try_gelu(x: Var, approximate: bool) -> Var);

    /// The softmax of attention over the last axis of `x: [groups, rows, cols]` (any
    /// leading axes count as groups), scaled and masked:
    /// `y_ij = keep_ij · e^{s·x_ij − m_i} / Σ_k keep_ik · e^{s·x_ik − m_i}`, `m_i` the
    /// largest kept `s·x_ik` of the row (Vaswani et al., "Attention Is All You Need",
    /// 2017, §3.2.1, eq. 1, with `s = 1/√d_k` and masked scores taken as −∞).
    ///
    /// Masked positions get exactly 0, and a row with every position masked is all
    /// zeros (not NaN, not uniform): such a query position attends to nothing.
    ///
    /// `mask`, when given, holds `mask_groups · rows · cols` flags (`true` keeps the
    /// position) in row-major `[mask_groups, rows, cols]` order, where `mask_groups`
    /// divides `groups`: group `g` uses mask block `g / (groups / mask_groups)`. With
    /// `x: [batch·heads, seq_q, seq_k]` and a mask `[batch, seq_q, seq_k]`, each
    /// sample's mask serves its `heads` consecutive groups.
    ///
    /// # Shapes
    /// `x: [..., rows, cols]` (rank ≥ 2) → the same shape.
    ///
    /// # Gradient
    /// `∂/∂x = s · y ⊙ (g − Σ_row g ⊙ y)` (uses the output only; masked positions,
    /// where `y = 0`, get 0).
    ///
    /// # Errors
    /// [`AutogradError::InvalidArgument`] for an `x` of rank below 2, a non-finite
    /// scale, or a mask whose length is not a whole number of `[rows, cols]` blocks
    /// dividing the groups.
    pub fn try_masked_softmax(&mut self, x: Var, scale: f64, mask: Option<&[bool]>) -> Result<Var> {
        let op = "masked_softmax";
        let i = self.idx(op, x)?;
        let xv = self.val(i);
        let shape = xv.shape().to_vec();
        let invalid = |message: String| AutogradError::InvalidArgument { op, message };
        if shape.len() < 2 {
            return Err(invalid(format!("expected scores [..., rows, cols] (rank ≥ 2), got shape {shape:?}")));
        }
        if !scale.is_finite() {
            return Err(invalid(format!("the scale must be finite, got {scale}")));
        }
        let cols = shape[shape.len() - 1];
        let block = shape[shape.len() - 2] * cols;
        let groups = xv.len().checked_div(block).unwrap_or(0);
        let repeat = match mask {
            None => 1,
            Some(m) => {
                let mask_groups = m.len().checked_div(block).unwrap_or(0);
                if block == 0
                    || !m.len().is_multiple_of(block)
                    || mask_groups == 0
                    || !groups.is_multiple_of(mask_groups)
                {
                    return Err(invalid(format!(
                        "a mask of {} flags is not [mask_groups, rows, cols] with mask_groups dividing the {groups} \
                         groups of scores {shape:?}",
                        m.len()
                    )));
                }
                groups / mask_groups
            }
        };
        let s = T::of_f64(scale);
        let x_std = xv.array().as_standard_layout();
        let xs = x_std.as_slice().expect("standard layout");
        let rows_per_chunk = (ROW_CHUNK / cols.max(1)).max(1);
        let out = if cols == 0 {
            vec![T::zero(); xs.len()]
        } else {
            // Whole rows per chunk of nn's pool; each row is computed the same way
            // wherever it runs (bit-identical at any thread count).
            nn_tensor::par_build(xs.len(), rows_per_chunk * cols, |c, chunk| {
                for (k, yrow) in chunk.chunks_exact_mut(cols).enumerate() {
                    let r = c * rows_per_chunk + k;
                    let keep = mask.map(|m| {
                        let (group, row) = (r * cols / block, (r * cols) % block);
                        let start = (group / repeat) * block + row;
                        &m[start..start + cols]
                    });
                    softmax_row(&xs[r * cols..][..cols], yrow, s, keep);
                }
            })
        };
        drop(x_std);
        let value = Tensor::from_vec(&shape, out);
        Ok(self.push_op(op, &[i], value, 0, move |ctx, g, sink| {
            let shape = g.shape().to_vec();
            // The upstream gradient is ours: reuse its buffer when it is contiguous.
            let mut gs = g.into_vec();
            let y_std = ctx.output().array().as_standard_layout();
            let ys = y_std.as_slice().expect("standard layout");
            if cols > 0 {
                nn_tensor::par_chunks_mut(&mut gs, rows_per_chunk * cols, |c, chunk| {
                    let ys = &ys[c * rows_per_chunk * cols..][..chunk.len()];
                    for (grow, yrow) in chunk.chunks_exact_mut(cols).zip(ys.chunks_exact(cols)) {
                        let dot = grow.iter().zip(yrow).fold(T::zero(), |a, (&g, &y)| a + g * y);
                        grow.iter_mut().zip(yrow).for_each(|(g, &y)| *g = s * y * (*g - dot));
                    }
                });
            }
            sink.add(0, Tensor::from_vec(&shape, gs))
        }))
    }
    twin!(masked_softmax => try_masked_softmax(x: Var, scale: f64, mask: Option<&[bool]>) -> Var);
}

/// Elements of attention scores per chunk of nn's pool (whole rows).
const ROW_CHUNK: usize = 1 << 14;

/// One row of [`Graph::try_masked_softmax`]: `y = softmax(s·x)` over the kept
/// positions, 0 elsewhere; all zeros when nothing is kept. The exponentials are
/// [`Element::exp_fast`] (vectorized for `f32`, exact for `f64`).
#[allow(clippy::needless_range_loop)]
fn softmax_row<T: Element>(x: &[T], y: &mut [T], s: T, keep: Option<&[bool]>) {
    let kept = |j: usize| keep.is_none_or(|k| k[j]);
    let mut max = T::neg_infinity();
    for (j, &v) in x.iter().enumerate() {
        if kept(j) && s * v > max {
            max = s * v;
        }
    }
    if max == T::neg_infinity() {
        y.iter_mut().for_each(|v| *v = T::zero());
        return;
    }
    nn_tensor::simd::vectorized(
        #[inline(always)]
        || {
            // Index loops: they inline into the vectorized copy (a zip's fold did not).
            let (x, n) = (&x[..y.len()], y.len());
            match keep {
                None => {
                    for j in 0..n {
                        y[j] = (s * x[j] - max).exp_fast();
                    }
                }
                Some(k) => {
                    let k = &k[..n];
                    for j in 0..n {
                        let e = (s * x[j] - max).exp_fast();
                        y[j] = if k[j] { e } else { T::zero() };
                    }
                }
            }
        },
    );
    let total = y.iter().fold(T::zero(), |t, &v| t + v);
    y.iter_mut().for_each(|v| *v /= total);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tabulated values (Abramowitz & Stegun table 7.1, and the closed forms
    /// `erf(∞) = 1`), to 16 digits.
    #[test]
    fn erf_matches_tabulated_values() {
        let table = [
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (1.5, 0.9661051464753108),
            (2.0, 0.9953222650189527),
            (3.0, 0.9999779095030014),
        ];
        for (x, want) in table {
            assert!((erf(x) - want).abs() < 2e-15, "erf({x}) = {} vs {want}", erf(x));
            assert!((erf(-x) + want).abs() < 2e-15, "erf(-{x})");
        }
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
        assert!(erf(f64::NAN).is_nan());
        // erfc far in the tail, relative: erfc(3), erfc(4), erfc(5).
        for (x, want) in [(3.0, 2.209049699858544e-5), (4.0, 1.541725790028002e-8), (5.0, 1.537459794428035e-12)] {
            assert!(((erfc(x) - want) / want).abs() < 1e-13, "erfc({x}) = {} vs {want}", erfc(x));
        }
        assert!((erfc(-1.0) - (1.0 + 0.8427007929497149)).abs() < 2e-15);
    }

    /// No gap where fdlibm switches between its approximations (|x| = 0.84375,
    /// 1.25, 1/0.35, 6): erf is increasing with slope `2/√π·e^{−x²}`, so across each
    /// switch the step matches the slope to a few ulp; and erf + erfc = 1.
    #[test]
    fn erf_has_no_gap_where_its_approximations_meet() {
        for x in [0.84375, 1.25, 1.0 / 0.35, 6.0] {
            let h = 1e-9;
            let step = erf(x + h) - erf(x - h);
            let slope = std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp() * 2.0 * h;
            assert!((step - slope).abs() <= 1e-15 + 1e-6 * slope, "x = {x}: step {step} vs {slope}");
            assert!((erf(x) + erfc(x) - 1.0).abs() < 4e-16, "x = {x}");
        }
    }
}
