//! Vectorized `exp`, logistic sigmoid and `tanh` over slices, for the gate
//! nonlinearities of recurrent layers (LSTM, GRU, SimpleRNN), where the C
//! library's scalar `expf`/`exp` took over a third of a training step.
//!
//! For `f32` the functions are branch-free loops of plain arithmetic, compiled for the
//! widest vector instructions of the CPU ([`crate::simd::vectorized`]): `exp` by
//! Cody–Waite range reduction (W. J. Cody and W. Waite, *Software Manual for the
//! Elementary Functions*, 1980) — `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, `n` rounded with
//! the `1.5·2^23` trick — and a degree-7 polynomial for `e^r` (the Taylor coefficients
//! `1/k!`; truncation error below `2·10⁻⁸` relative on that interval), scaled by `2^n`
//! built in the exponent bits. Measured against the correctly rounded values (from
//! `f64`) on about 860,000 inputs spread over the whole range (the tests): `exp` at
//! most 1 ulp off, sigmoid and `tanh` at most 2. Rust never fuses or reorders the operations, so results are the same on every
//! CPU and vector width. For `f64` the scalar standard functions are used, so
//! gradient checks in `f64` see the exact functions.

use std::any::TypeId;

use crate::element::Element;

/// `ln 2` split into a part exact in `f32` (its low bits zero) and the remainder.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `1.5·2^23`: adding it rounds an `f32` below `2^22` in magnitude to an integer,
/// which then sits in the low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;

/// `e^x` for `f32`, with `x` clamped to `[−88, 88]`: at most `1.7·10³⁸` above, and
/// exactly 0 for `x ≤ −87.7` (−∞ included, as a softmax over masked scores needs);
/// between that and `−87.3` (where `e^x` leaves the normal range) a subnormal. NaN
/// stays NaN. Within 1 ulp of the exact value on the inputs tested (`[−87, 88]`).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // Below −87.68, n rounds to −127 and the scale 2^n built below is +0.
    let x = x.clamp(-88.0, 88.0);
    let t = x * LOG2_E + ROUNDER;
    let n = t - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    // e^r = 1 + r + r²/2! + … + r⁷/7!, in Horner form.
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // 2^n: n (an integer in [−126, 127]) from the low bits of t, into the exponent.
    let k = (t.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let scale = f32::from_bits(((k + 127) as u32) << 23);
    p * scale
}

/// The coefficients of `P` in `erfc(z) ≈ t·e^{−z² + P(t)}`, `t = 1/(1 + z/2)`, for
/// `z ≥ 0`: the Chebyshev fit of Press, Teukolsky, Vetterling & Flannery, *Numerical
/// Recipes* (2nd ed., 1992), §6.2, function `erfcc`, relative error below `1.2·10⁻⁷`
/// for every `z ≥ 0`. Constant term first.
const ERFC_FIT: [f32; 10] = [
    -1.265_512_2,
    1.000_023_7,
    0.374_091_96,
    0.096_784_18,
    -0.186_288_06,
    0.278_868_07,
    -1.135_204,
    1.488_515_9,
    -0.822_152_2,
    0.170_872_77,
];

/// `1/√(2π)`, the normal density at 0.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// For `f32` `x`: `(erfc(|x|/√2), e^{−x²/2})`, the two pieces of the normal CDF
/// `Φ` and density `φ` that GELU needs. `x²/2` is formed exactly: `|x| = h + l` with
/// `h` the top 12 significand bits, so `h²/2` is exact in `f32` and the small rest
/// `h·l + l²/2` goes into a second `exp` together with the fit's `P(t)` (as fdlibm's
/// `erfc` splits `x²`). `|x|` is capped at 14, beyond which `e^{−x²/2}` is 0 in `f32`.
#[inline(always)]
fn normal_tail_f32(x: f32) -> (f32, f32) {
    let a = x.abs().min(14.0);
    let h = f32::from_bits(a.to_bits() & 0xffff_f000);
    let l = a - h;
    let rest = h * l + 0.5 * l * l;
    let head = exp_f32(-0.5 * h * h);
    let t = 1.0 / (1.0 + 0.5 * (a * std::f32::consts::FRAC_1_SQRT_2));
    let mut p = ERFC_FIT[9];
    for &c in ERFC_FIT[..9].iter().rev() {
        p = p * t + c;
    }
    let tail = t * head * exp_f32(p - rest);
    // e^{−rest} by its Taylor series to r⁴: rest ≤ h·l + l²/2 < 14·14·2⁻¹² ≈ 0.048,
    // so the first term left out, rest⁵/120, is below 2.2·10⁻⁹ (an f32 ulp of 1 is
    // 6·10⁻⁸): one `exp` fewer in the gradient.
    let r = rest;
    let e_rest = 1.0 + r * (-1.0 + r * (0.5 + r * (-1.0 / 6.0 + r * (1.0 / 24.0))));
    (tail, head * e_rest)
}

/// The standard normal CDF `Φ(x) = erfc(−x/√2)/2` for `f32` (see
/// [`normal_tail_f32`]); no cancellation for negative `x`.
#[inline(always)]
fn normal_cdf_f32(x: f32, tail: f32) -> f32 {
    if x >= 0.0 {
        1.0 - 0.5 * tail
    } else {
        0.5 * tail
    }
}

/// Exact GELU `x·Φ(x)` (Hendrycks & Gimpel, arXiv:1606.08415) for `f32`, with `Φ`
/// from the `erfc` fit of [`ERFC_FIT`] and an exactly formed `x²/2`: within 8 ulp of
/// the correctly rounded value on `[−13, 13]` (measured, see the tests). Branch-free
/// once inlined, so a loop of it vectorizes. `+∞ ↦ +∞`; `−∞` and NaN give NaN (as
/// `x·Φ(x)` computed in `f64` does).
#[inline(always)]
pub fn gelu_f32(x: f32) -> f32 {
    let (tail, _) = normal_tail_f32(x);
    x * normal_cdf_f32(x, tail)
}

/// The derivative of exact GELU, `Φ(x) + x·φ(x)`, for `f32` (as [`gelu_f32`]):
/// within `3·10⁻⁷` of the exact value in absolute terms (it crosses 0 near
/// `x = −0.75`, so a relative bound means nothing there).
#[inline(always)]
pub fn gelu_grad_f32(x: f32) -> f32 {
    let (tail, density) = normal_tail_f32(x);
    normal_cdf_f32(x, tail) + x * (FRAC_1_SQRT_2PI * density)
}

/// [`gelu_f32`] and [`gelu_grad_f32`] at once, sharing the two `exp`s: the value
/// and the slope a layer keeps for its backward pass (the same bits as the two
/// functions give apart).
#[inline(always)]
pub fn gelu_and_grad_f32(x: f32) -> (f32, f32) {
    let (tail, density) = normal_tail_f32(x);
    let cdf = normal_cdf_f32(x, tail);
    (x * cdf, cdf + x * (FRAC_1_SQRT_2PI * density))
}

/// [`gelu_tanh_f32`] and [`gelu_tanh_grad_f32`] at once, sharing the tanh.
#[inline(always)]
pub fn gelu_tanh_and_grad_f32(x: f32) -> (f32, f32) {
    let t = tanh_f32(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x));
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x);
    (0.5 * x * (1.0 + t), 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
}

/// `√(2/π)`, the constant of GELU's tanh form.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// GELU's tanh form `½x(1 + tanh u)`, `u = √(2/π)(x + 0.044715x³)` (Hendrycks &
/// Gimpel; GPT-2's), for `f32`, with [`tanh_f32`].
#[inline(always)]
pub fn gelu_tanh_f32(x: f32) -> f32 {
    let t = tanh_f32(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x));
    0.5 * x * (1.0 + t)
}

/// The derivative of [`gelu_tanh_f32`]:
/// `½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²)`, `t = tanh u`.
#[inline(always)]
pub fn gelu_tanh_grad_f32(x: f32) -> f32 {
    let t = tanh_f32(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x));
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x);
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
}

/// Lanes of the row reductions below: 32 independent accumulators (four AVX2 or two
/// AVX-512 registers), so consecutive vector operations do not wait on each other's
/// latency; a constant, so the summation order (and the bits) is the same on every
/// CPU.
const LANES: usize = 32;

/// The largest element of `xs` (NaNs skipped; −∞ for an empty or all-NaN slice), in
/// [`LANES`] interleaved lanes so the loop vectorizes; the max does not depend on the
/// order.
#[inline(always)]
fn max_f32(xs: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    chunks.remainder().iter().chain(&lanes).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// `Σ e^{x − m}` over `xs`, replacing each element by its term when `WRITE`, summed
/// in [`LANES`] interleaved lanes (element `i` into lane `i mod LANES`; the remainder
/// and then the lanes added in order): a fixed order, so the same bits on every CPU.
#[inline(always)]
fn exp_sum_f32<const WRITE: bool>(xs: &mut [f32], m: f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = xs.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (s, x) in lanes.iter_mut().zip(c.iter_mut()) {
            let e = exp_f32(*x - m);
            *s += e;
            if WRITE {
                *x = e;
            }
        }
    }
    let mut sum = 0.0f32;
    for x in chunks.into_remainder() {
        let e = exp_f32(*x - m);
        sum += e;
        if WRITE {
            *x = e;
        }
    }
    lanes.iter().fold(sum, |s, &l| s + l)
}

/// The index of the largest element of `row`: the first one on ties, 0 for an empty
/// row, a row whose first element is NaN, or a row of −∞ and NaN only (as the plain
/// loop `if x > row[best] { best = i }` decides). The max is found in vectorized
/// lanes, then its first position.
pub fn argmax_f32(row: &[f32]) -> usize {
    if row.first().is_none_or(|x| x.is_nan()) {
        return 0;
    }
    let m = crate::simd::vectorized(
        #[inline(always)]
        || max_f32(row),
    );
    row.iter().position(|&x| x == m).unwrap_or(0)
}

/// The shift of a softmax row: its max, or 0 when that is −∞ (a row of −∞ only), so
/// the row's log-sum-exp comes out −∞ rather than NaN.
#[inline(always)]
fn row_shift_f32(row: &[f32]) -> f32 {
    let m = max_f32(row);
    if m == f32::NEG_INFINITY {
        0.0
    } else {
        m
    }
}

/// `softmax` of one `f32` row in place, `e^{x − m} / Σ e^{x − m}` with `m` the row
/// max, vectorized ([`exp_f32`], a fixed summation order: the same bits on every CPU).
/// A NaN or +∞ in the row gives NaN everywhere, a row of −∞ only gives NaN.
/// Returns the shift `m` and the sum `Σ e^{x − m}` (so `ln` of the row's softmax at
/// `j` is `(x_j − m) − ln Σ`, the cross-entropy's term).
pub fn softmax_f32(row: &mut [f32]) -> (f32, f32) {
    crate::simd::vectorized(
        #[inline(always)]
        || {
            let m = row_shift_f32(row);
            let sum = exp_sum_f32::<true>(row, m);
            row.iter_mut().for_each(|e| *e /= sum);
            (m, sum)
        },
    )
}

/// `log_softmax` of one `f32` row in place, `x − m − ln Σ e^{x − m}` (as
/// [`softmax_f32`]; exact for extreme logits: the largest term of the sum is 1).
pub fn log_softmax_f32(row: &mut [f32]) {
    crate::simd::vectorized(
        #[inline(always)]
        || {
            let m = row_shift_f32(row);
            let l = exp_sum_f32::<false>(row, m).ln();
            row.iter_mut().for_each(|x| *x = *x - m - l);
        },
    )
}

/// Logistic sigmoid `1 / (1 + e^−x)` for `f32` (see [`exp_f32`]); within 2 ulp.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// `tanh x` for `f32`: `1 − 2/(e^{2|x|} + 1)` with the sign of `x`, and for
/// `|x| < 0.4`, where that form loses digits, the odd Taylor polynomial to `x^13`
/// (truncation below `4·10⁻⁹` relative there). Within 2 ulp.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let big = 1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0);
    let s = a * a;
    let q = 21_844.0 / 6_081_075.0;
    let q = q * s - 1382.0 / 155_925.0;
    let q = q * s + 62.0 / 2835.0;
    let q = q * s - 17.0 / 315.0;
    let q = q * s + 2.0 / 15.0;
    let q = q * s - 1.0 / 3.0;
    let small = a + a * s * q;
    let t = if a < 0.4 { small } else { big };
    t.copysign(x)
}

/// `xs` as `f32`s, when `T` is `f32`.
pub(crate) fn as_f32<T: Element>(xs: &mut [T]) -> Option<&mut [f32]> {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: T is f32 (same type id), so the slice's layout is that of [f32].
        Some(unsafe { &mut *(xs as *mut [T] as *mut [f32]) })
    } else {
        None
    }
}

/// Replaces every element of `xs` by its logistic sigmoid (`f32`: [`sigmoid_f32`],
/// vectorized; other types: [`crate::sigmoid`]).
pub fn sigmoid_slice<T: Element>(xs: &mut [T]) {
    match as_f32(xs) {
        Some(v) => crate::simd::vectorized(
            #[inline(always)]
            || v.iter_mut().for_each(|x| *x = sigmoid_f32(*x)),
        ),
        None => xs.iter_mut().for_each(|x| *x = crate::sigmoid(*x)),
    }
}

/// Replaces every element of `xs` by its `tanh` (`f32`: [`tanh_f32`], vectorized;
/// other types: the standard `tanh`).
pub fn tanh_slice<T: Element>(xs: &mut [T]) {
    match as_f32(xs) {
        Some(v) => crate::simd::vectorized(
            #[inline(always)]
            || v.iter_mut().for_each(|x| *x = tanh_f32(*x)),
        ),
        None => xs.iter_mut().for_each(|x| *x = x.tanh()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite `f32` of one sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    /// Every 9973rd `f32` bit pattern in the range checked (about 430,000 of each
    /// sign), plus the edges.
    fn samples(lo: f32, hi: f32) -> Vec<f32> {
        let mut v: Vec<f32> = (0..u32::MAX / 9973).map(|i| f32::from_bits(i * 9973)).collect();
        v.extend(v.clone().iter().map(|x| -x));
        v.retain(|x| x.is_finite() && (lo..=hi).contains(x));
        v.extend([lo, hi, 0.0, -0.0, 0.4, -0.4, 1e-30, -1e-30]);
        v
    }

    #[test]
    fn exp_is_within_2_ulp_of_the_exact_value() {
        let worst = samples(-87.0, 88.0).into_iter().map(|x| ulps(exp_f32(x), (x as f64).exp() as f32)).max().unwrap();
        assert!(worst <= 1, "worst {worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
        // Flushed to 0 where e^x is far below the normal range, −∞ included.
        assert_eq!((exp_f32(-1000.0), exp_f32(f32::NEG_INFINITY), exp_f32(-87.7)), (0.0, 0.0, 0.0));
        assert_eq!(exp_f32(1000.0), exp_f32(88.0));
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_and_tanh_are_within_a_few_ulp() {
        let mut worst_s = 0;
        let mut worst_t = 0;
        for x in samples(-80.0, 80.0) {
            let xd = x as f64;
            let s = (1.0 / (1.0 + (-xd).exp())) as f32;
            if s > f32::MIN_POSITIVE {
                worst_s = worst_s.max(ulps(sigmoid_f32(x), s));
            }
            worst_t = worst_t.max(ulps(tanh_f32(x), xd.tanh() as f32));
        }
        assert!(worst_s <= 2, "sigmoid: worst {worst_s} ulp");
        assert!(worst_t <= 2, "tanh: worst {worst_t} ulp");
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!((tanh_f32(30.0), tanh_f32(-30.0)), (1.0, -1.0));
        assert_eq!((sigmoid_f32(100.0), sigmoid_f32(0.0)), (1.0, 0.5));
    }

    /// Exact GELU and its slope in `f64` (`libm`'s `erfc`, below 1 ulp).
    fn gelu_exact(x: f64) -> (f64, f64) {
        let cdf = 0.5 * libm::erfc(-x * std::f64::consts::FRAC_1_SQRT_2);
        let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (x * cdf, cdf + x * pdf)
    }

    #[test]
    fn gelu_is_within_8_ulp_and_its_slope_within_3e_7() {
        let (mut worst, mut worst_slope) = (0, 0.0f64);
        for x in samples(-13.0, 13.0) {
            let (v, d) = gelu_exact(x as f64);
            if v.abs() > 1e-30 {
                worst = worst.max(ulps(gelu_f32(x), v as f32));
            }
            worst_slope = worst_slope.max((gelu_grad_f32(x) as f64 - d).abs());
            // Value and slope at once: the same bits as apart.
            let (y, s) = gelu_and_grad_f32(x);
            assert_eq!((y.to_bits(), s.to_bits()), (gelu_f32(x).to_bits(), gelu_grad_f32(x).to_bits()), "x = {x}");
            let (y, s) = gelu_tanh_and_grad_f32(x);
            assert_eq!((y.to_bits(), s.to_bits()), (gelu_tanh_f32(x).to_bits(), gelu_tanh_grad_f32(x).to_bits()));
        }
        assert!(worst <= 8, "gelu: worst {worst} ulp");
        assert!(worst_slope <= 3e-7, "slope: worst {worst_slope}");
        // Hand values: GELU(0) = 0, slope ½; GELU(1) = Φ(1) = 0.841344746…
        assert_eq!(gelu_f32(0.0), 0.0);
        assert!((gelu_grad_f32(0.0) - 0.5).abs() <= 6e-8);
        assert!((gelu_f32(1.0) - 0.841_344_8).abs() <= 2e-7);
        assert_eq!((gelu_f32(f32::INFINITY), gelu_f32(30.0), gelu_f32(-30.0)), (f32::INFINITY, 30.0, -0.0));
        assert!(gelu_f32(f32::NAN).is_nan() && gelu_f32(f32::NEG_INFINITY).is_nan());
        // The tanh form against its own formula in f64.
        for x in samples(-10.0, 10.0) {
            let xd = x as f64;
            let t = (0.797_884_560_802_865_4 * (xd + 0.044_715 * xd * xd * xd)).tanh();
            let want = 0.5 * xd * (1.0 + t);
            // 1 + t cancels for negative x: tanh's few ulp near −1 cost up to ~x·1.2e-7.
            assert!((gelu_tanh_f32(x) as f64 - want).abs() <= 4e-7 * want.abs() + 1.5e-7 * xd.abs() + 1e-44, "x = {x}");
            let du = 0.797_884_560_802_865_4 * (1.0 + 3.0 * 0.044_715 * xd * xd);
            let slope = 0.5 * (1.0 + t) + 0.5 * xd * (1.0 - t * t) * du;
            assert!((gelu_tanh_grad_f32(x) as f64 - slope).abs() <= 1e-6, "x = {x}");
        }
    }

    #[test]
    fn softmax_rows_match_f64_and_keep_their_edge_cases() {
        // Odd lengths exercise the lane loop and its remainder.
        for n in [1usize, 7, 8, 9, 31, 32, 33, 95, 2048] {
            let xs: Vec<f32> = (0..n).map(|i| ((i * 7919) % 97) as f32 * 0.37 - 20.0).collect();
            let m = xs.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
            let sum: f64 = xs.iter().map(|&x| (x as f64 - m).exp()).sum();
            let mut s = xs.clone();
            softmax_f32(&mut s);
            let mut l = xs.clone();
            log_softmax_f32(&mut l);
            for i in 0..n {
                // x − m rounded to f32 costs up to |x − m|·2⁻²⁴ relative in e^{x−m}.
                let want = (xs[i] as f64 - m).exp() / sum;
                let tol = (4e-7 + 6e-8 * (xs[i] as f64 - m).abs()) * want;
                assert!((s[i] as f64 - want).abs() <= tol, "softmax n={n} i={i}");
                let want = xs[i] as f64 - m - sum.ln();
                assert!((l[i] as f64 - want).abs() <= 4e-6, "log_softmax n={n} i={i}");
            }
        }
        let mut r = vec![1e4f32, -1e4];
        softmax_f32(&mut r);
        assert_eq!(r, vec![1.0, 0.0]);
        let mut r = vec![f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY];
        softmax_f32(&mut r);
        assert_eq!(r, vec![0.0, 1.0, 0.0]);
        let mut r = vec![f32::NEG_INFINITY; 3];
        log_softmax_f32(&mut r);
        assert!(r.iter().all(|x| x.is_nan()));
        let mut r = vec![0.0, f32::NAN, 1.0];
        softmax_f32(&mut r);
        assert!(r.iter().all(|x| x.is_nan()));
    }

    #[test]
    fn argmax_picks_the_first_largest_as_the_plain_loop() {
        let plain = |row: &[f32]| {
            let mut best = 0;
            for (k, &x) in row.iter().enumerate() {
                if x > row[best] {
                    best = k;
                }
            }
            best
        };
        let rows: Vec<Vec<f32>> = vec![
            vec![],
            vec![3.0],
            vec![1.0, 5.0, 5.0, 2.0],
            (0..37).map(|i| ((i * 13) % 17) as f32).collect(),
            vec![f32::NAN, 1.0, 2.0],
            vec![1.0, f32::NAN, 7.0, 7.0],
            vec![f32::NEG_INFINITY; 9],
            vec![f32::NEG_INFINITY, f32::NAN, f32::NEG_INFINITY],
            vec![-1.0, -0.5, f32::INFINITY, 2.0, f32::INFINITY],
        ];
        for row in rows {
            assert_eq!(argmax_f32(&row), plain(&row), "{row:?}");
        }
        assert_eq!(argmax_f32(&[1.0, 5.0, 5.0, 2.0]), 1);
    }

    #[test]
    fn slices_match_the_scalar_functions_and_f64_uses_the_exact_ones() {
        let xs: Vec<f32> = (-2000..2000).map(|i| i as f32 * 0.01).collect();
        let mut s = xs.clone();
        sigmoid_slice(&mut s);
        let mut t = xs.clone();
        tanh_slice(&mut t);
        for (i, &x) in xs.iter().enumerate() {
            assert_eq!(s[i].to_bits(), sigmoid_f32(x).to_bits());
            assert_eq!(t[i].to_bits(), tanh_f32(x).to_bits());
        }
        let mut d = vec![0.3f64, -2.0];
        tanh_slice(&mut d);
        assert_eq!(d, vec![0.3f64.tanh(), (-2.0f64).tanh()]);
        sigmoid_slice(&mut d);
        assert_eq!(d[0], crate::sigmoid(0.3f64.tanh()));
    }
}
