//! 2-d max and average pooling over NHWC batches, forward and backward.
//!
//! The window geometry is a [`Conv2dGeometry`] with the pool as kernel. Windows may
//! overlap (stride smaller than the window); each output position is computed, and
//! routes its gradient, independently of the others. Padded positions never win a
//! max and are not counted by the average (TensorFlow/Keras semantics).
//!
//! Every kernel runs in parallel over chunks of whole images on nn's pool
//! ([`crate::set_num_threads`]). An output element is computed by one chunk, and
//! an image's gradient is accumulated by one chunk in a fixed order, so results are
//! bit-identical for any thread count.

use ndarray::{Array4, ArrayView4};

use crate::conv::Conv2dGeometry;
use crate::element::Element;
use crate::error::{Result, TensorError};

/// Output elements per work chunk (whole images, at least one).
const CHUNK_ELEMS: usize = 1 << 16;

/// Marks an argmax slot whose window covers no input element (only possible with
/// padding at least as large as the window, which pooling layers reject).
pub const NO_ARGMAX: u32 = u32::MAX;

fn images_per_chunk(g: &Conv2dGeometry) -> usize {
    (CHUNK_ELEMS / (g.out_h * g.out_w * g.channels).max(1)).max(1)
}

/// Fills `window` with the offsets of the input pixels `(ih, iw, 0)` inside output
/// pixel `(oh, ow)`'s window, in row-major window order (padding left out).
#[inline(always)]
fn window_offsets(g: &Conv2dGeometry, oh: usize, ow: usize, window: &mut Vec<usize>) {
    window.clear();
    for kh in 0..g.kernel_h {
        let Some(ih) = g.source(oh, kh, g.stride_h, g.pad_top, g.in_h) else { continue };
        for kw in 0..g.kernel_w {
            let Some(iw) = g.source(ow, kw, g.stride_w, g.pad_left, g.in_w) else { continue };
            window.push((ih * g.in_w + iw) * g.channels);
        }
    }
}

/// Calls `f(out_offset, in_offsets)` for every window of one image: `out_offset` is
/// the offset of output pixel `(oh, ow, 0)` in the image, `in_offsets` as
/// [`window_offsets`] gives them.
#[inline(always)]
fn for_each_window(g: &Conv2dGeometry, mut f: impl FnMut(usize, &[usize])) {
    let mut window = Vec::with_capacity(g.kernel_h * g.kernel_w);
    for oh in 0..g.out_h {
        for ow in 0..g.out_w {
            window_offsets(g, oh, ow, &mut window);
            f((oh * g.out_w + ow) * g.channels, &window);
        }
    }
}

fn check_output<T>(op: &'static str, grad_out: &ArrayView4<'_, T>, g: &Conv2dGeometry, input_len: usize) -> Result<()> {
    let batch = grad_out.shape()[0];
    if grad_out.shape()[1..] != [g.out_h, g.out_w, g.channels] || input_len != batch * g.in_h * g.in_w * g.channels {
        return Err(TensorError::ShapeMismatch {
            op,
            lhs: vec![batch, g.out_h, g.out_w, g.channels],
            rhs: grad_out.shape().to_vec(),
        });
    }
    Ok(())
}

/// Channels handled together by [`max_block`]: one AVX-512 vector of `f32` (the
/// loop runs through [`crate::simd::vectorized`]), then 8, then one at a time.
const MAX_LANES: usize = 16;

/// The maximum and its offset over one window, for channels `ch..ch + L`, into
/// `best[..L]` and `at[..L]`. The running values live in fixed-size local arrays and
/// are updated by selects, which the compiler turns into branch-free vector blends:
/// a data-dependent branch per element would mispredict about half the time on real
/// activations (that made pooling the slowest op of the seed CNN).
#[inline(always)]
fn max_block<T: Element, const L: usize>(x: &[T], window: &[usize], ch: usize, best: &mut [T], at: &mut [u32]) {
    let first = window[0] + ch;
    let mut b: [T; L] = x[first..first + L].try_into().expect("L channels");
    let mut a: [u32; L] = std::array::from_fn(|j| (first + j) as u32);
    for &base in &window[1..] {
        let p: &[T; L] = x[base + ch..base + ch + L].try_into().expect("L channels");
        for j in 0..L {
            // Take `p` when it is greater or NaN (`!(p <= b)`), unless `b` is already a
            // NaN: strictly greater keeps the first of equal maxima, and the first NaN
            // wins. Three vector compares, no branch.
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            let take = !(p[j] <= b[j]) & !b[j].is_nan();
            b[j] = if take { p[j] } else { b[j] };
            a[j] = if take { (base + ch + j) as u32 } else { a[j] };
        }
    }
    best[..L].copy_from_slice(&b);
    at[..L].copy_from_slice(&a);
}

/// Max pooling: each output is the maximum of its window, per channel, together with
/// the position of that maximum for the backward pass.
///
/// **Ties** go to the first maximal element in row-major window order; a **NaN**
/// wins its window (the first NaN).
///
/// # Shapes
/// `input: [batch, in_h, in_w, channels]` → (`[batch, out_h, out_w, channels]`,
/// argmax): `argmax` has one entry per output element, the offset of the winning
/// element inside its image (`(ih·in_w + iw)·channels + c`), or [`NO_ARGMAX`] for a
/// window that covers only padding (its output is 0).
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when `input` does not match the geometry;
/// [`TensorError::InvalidArgument`] when one image has more than `u32::MAX − 1`
/// elements (the argmax offsets are 32-bit).
pub fn max_pool2d<T: Element>(input: ArrayView4<'_, T>, g: &Conv2dGeometry) -> Result<(Array4<T>, Vec<u32>)> {
    let op = "max_pool2d";
    g.check_input(input.shape())?;
    let batch = input.shape()[0];
    let img_in = g.in_h * g.in_w * g.channels;
    if img_in >= NO_ARGMAX as usize {
        return Err(TensorError::InvalidArgument {
            op,
            message: format!("an image of {img_in} elements is too large for 32-bit argmax offsets"),
        });
    }
    let img_out = g.out_h * g.out_w * g.channels;
    let len = crate::shape::checked_numel(op, &[batch, g.out_h, g.out_w, g.channels])?;
    let x = input.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let per_chunk = images_per_chunk(g);
    let chunk = per_chunk * img_out;
    let (out, arg) = crate::vec_pair_by_chunks(
        (len, chunk, T::zero()),
        (len, chunk, NO_ARGMAX),
        || (),
        |_, i, out, arg| max_pool_images(&xs[i * per_chunk * img_in..], g, out, arg),
    );
    let out = Array4::from_shape_vec((batch, g.out_h, g.out_w, g.channels), out).expect("len elements");
    Ok((out, arg))
}

/// Max pooling of the images `xs` (whole images, as many as `out` holds) into `out`
/// and `arg`, compiled for the CPU's widest vectors ([`crate::simd::vectorized`]).
/// The loop is written out rather than run through [`for_each_window`]'s closure,
/// which the compiler keeps out of line (and so at the baseline vector width).
#[inline(always)]
pub(crate) fn max_pool_images<T: Element>(xs: &[T], g: &Conv2dGeometry, out: &mut [T], arg: &mut [u32]) {
    let (img_in, img_out, c) = (g.in_h * g.in_w * g.channels, g.out_h * g.out_w * g.channels, g.channels);
    let mut window = Vec::with_capacity(g.kernel_h * g.kernel_w);
    // A window wholly inside the image is the same pattern of offsets at every
    // position: computed once, then shifted (no per-position padding checks).
    let pattern: Vec<usize> =
        (0..g.kernel_h).flat_map(|kh| (0..g.kernel_w).map(move |kw| (kh * g.in_w + kw) * c)).collect();
    let inside = |o: usize, s: usize, pad: usize, k: usize, len: usize| o * s >= pad && o * s - pad + k <= len;
    crate::simd::vectorized(
        #[inline(always)]
        || {
            for (j, (out, arg)) in out.chunks_exact_mut(img_out).zip(arg.chunks_exact_mut(img_out)).enumerate() {
                let x = &xs[j * img_in..][..img_in];
                for oh in 0..g.out_h {
                    let row_inside = inside(oh, g.stride_h, g.pad_top, g.kernel_h, g.in_h);
                    for ow in 0..g.out_w {
                        if row_inside && inside(ow, g.stride_w, g.pad_left, g.kernel_w, g.in_w) {
                            let base = ((oh * g.stride_h - g.pad_top) * g.in_w + ow * g.stride_w - g.pad_left) * c;
                            window.clear();
                            window.extend(pattern.iter().map(|&p| base + p));
                        } else {
                            window_offsets(g, oh, ow, &mut window);
                        }
                        if window.is_empty() {
                            continue; // only padding: output 0, no argmax
                        }
                        let o = (oh * g.out_w + ow) * c;
                        let (best, at) = (&mut out[o..o + c], &mut arg[o..o + c]);
                        let wide = c / MAX_LANES * MAX_LANES;
                        for ch in (0..wide).step_by(MAX_LANES) {
                            max_block::<T, MAX_LANES>(x, &window, ch, &mut best[ch..], &mut at[ch..]);
                        }
                        let narrow = wide + (c - wide) / 8 * 8;
                        for ch in (wide..narrow).step_by(8) {
                            max_block::<T, 8>(x, &window, ch, &mut best[ch..], &mut at[ch..]);
                        }
                        for ch in narrow..c {
                            max_block::<T, 1>(x, &window, ch, &mut best[ch..], &mut at[ch..]);
                        }
                    }
                }
            }
        },
    )
}

/// The gradient of [`max_pool2d`] as a new NHWC array: each output routes its whole
/// gradient to the element that won its window (overlapping windows add up), every
/// other element is 0. Built image chunk by image chunk (zeroed and scattered while
/// in cache), in parallel.
///
/// # Shapes
/// `grad_out: [batch, out_h, out_w, channels]`, `argmax` as returned by
/// [`max_pool2d`] → `[batch, in_h, in_w, channels]`.
///
/// # Errors
/// As [`max_pool2d_backward_add`].
pub fn max_pool2d_backward<T: Element>(
    grad_out: ArrayView4<'_, T>,
    argmax: &[u32],
    g: &Conv2dGeometry,
) -> Result<Array4<T>> {
    let batch = grad_out.shape()[0];
    let len = crate::shape::checked_numel("max_pool2d (backward)", &[batch, g.in_h, g.in_w, g.channels])?;
    let go = check_max_backward(&grad_out, argmax, g, len)?;
    let gs = go.as_slice().expect("standard layout");
    let (img_in, per_chunk) = (g.in_h * g.in_w * g.channels, images_per_chunk(g));
    let dx = crate::vec_by_chunks(
        len,
        per_chunk * img_in,
        T::zero(),
        || (),
        |_, i, dx| max_scatter(gs, argmax, g, i * per_chunk, dx),
    );
    Ok(Array4::from_shape_vec((batch, g.in_h, g.in_w, g.channels), dx).expect("len elements"))
}

/// The gradient of [`max_pool2d`], added into `input_grad`: each output routes its
/// whole gradient to the element that won its window (overlapping windows add up).
///
/// # Shapes
/// `grad_out: [batch, out_h, out_w, channels]`, `argmax` as returned by
/// [`max_pool2d`], `input_grad`: `batch·in_h·in_w·channels` elements, NHWC row-major.
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when the shapes or lengths do not match;
/// [`TensorError::InvalidArgument`] for an argmax offset outside the image.
pub fn max_pool2d_backward_add<T: Element>(
    grad_out: ArrayView4<'_, T>,
    argmax: &[u32],
    g: &Conv2dGeometry,
    input_grad: &mut [T],
) -> Result<()> {
    let go = check_max_backward(&grad_out, argmax, g, input_grad.len())?;
    let gs = go.as_slice().expect("standard layout");
    let (img_in, per_chunk) = (g.in_h * g.in_w * g.channels, images_per_chunk(g));
    crate::for_each_chunk_mut(
        input_grad,
        per_chunk * img_in,
        || (),
        |_, i, dx| max_scatter(gs, argmax, g, i * per_chunk, dx),
    );
    Ok(())
}

/// Checks the arguments of the max-pool backward kernels; returns `grad_out` in
/// standard layout.
fn check_max_backward<'a, T: Element>(
    grad_out: &'a ArrayView4<'_, T>,
    argmax: &[u32],
    g: &Conv2dGeometry,
    input_len: usize,
) -> Result<ndarray::CowArray<'a, T, ndarray::Ix4>> {
    let op = "max_pool2d (backward)";
    check_output(op, grad_out, g, input_len)?;
    if argmax.len() != grad_out.len() {
        return Err(TensorError::ShapeMismatch { op, lhs: grad_out.shape().to_vec(), rhs: vec![argmax.len()] });
    }
    let img_in = g.in_h * g.in_w * g.channels;
    // NO_ARGMAX + 1 wraps to 0, so one branch-free max checks every entry.
    let largest = argmax.iter().map(|&a| a.wrapping_add(1)).max().unwrap_or(0);
    if largest as usize > img_in {
        return Err(TensorError::InvalidArgument {
            op,
            message: format!("argmax offset {} is outside an image of {img_in} elements", largest - 1),
        });
    }
    Ok(grad_out.as_standard_layout())
}

/// Adds the max-pool gradient of the images `first..` into `dx` (whole images), in
/// output order within each image.
fn max_scatter<T: Element>(gs: &[T], argmax: &[u32], g: &Conv2dGeometry, first: usize, dx: &mut [T]) {
    let (img_in, img_out) = (g.in_h * g.in_w * g.channels, g.out_h * g.out_w * g.channels);
    if img_in == 0 {
        return;
    }
    for (j, dx) in dx.chunks_exact_mut(img_in).enumerate() {
        let o = (first + j) * img_out;
        for (&at, &gv) in argmax[o..o + img_out].iter().zip(&gs[o..o + img_out]) {
            if at != NO_ARGMAX {
                dx[at as usize] += gv;
            }
        }
    }
}

/// Average pooling: each output is the mean of its window, per channel, over the
/// positions inside the image (padding is not counted, as Keras's
/// `AveragePooling2D` and PyTorch's `count_include_pad=False`).
///
/// # Shapes
/// `input: [batch, in_h, in_w, channels]` → `[batch, out_h, out_w, channels]`.
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when `input` does not match the geometry.
pub fn avg_pool2d<T: Element>(input: ArrayView4<'_, T>, g: &Conv2dGeometry) -> Result<Array4<T>> {
    let op = "avg_pool2d";
    g.check_input(input.shape())?;
    let batch = input.shape()[0];
    let (img_in, img_out) = (g.in_h * g.in_w * g.channels, g.out_h * g.out_w * g.channels);
    let len = crate::shape::checked_numel(op, &[batch, g.out_h, g.out_w, g.channels])?;
    let x = input.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let per_chunk = images_per_chunk(g);
    let c = g.channels;
    let out = crate::vec_by_chunks(
        len,
        per_chunk * img_out,
        T::zero(),
        || (),
        |_, i, out| {
            for (j, out) in out.chunks_exact_mut(img_out).enumerate() {
                let x = &xs[(i * per_chunk + j) * img_in..][..img_in];
                for_each_window(g, |o, window| {
                    let acc = &mut out[o..o + c];
                    for &base in window {
                        acc.iter_mut().zip(&x[base..base + c]).for_each(|(a, &v)| *a += v);
                    }
                    let count = T::of_f64(window.len() as f64);
                    acc.iter_mut().for_each(|a| *a /= count);
                });
            }
        },
    );
    Ok(Array4::from_shape_vec((batch, g.out_h, g.out_w, g.channels), out).expect("len elements"))
}

/// The gradient of [`avg_pool2d`] as a new NHWC array: each output spreads
/// `g / count` over the `count` input positions of its window (overlapping windows
/// add up), built image chunk by image chunk in parallel.
///
/// # Shapes
/// `grad_out: [batch, out_h, out_w, channels]` → `[batch, in_h, in_w, channels]`.
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when `grad_out` does not match the geometry.
pub fn avg_pool2d_backward<T: Element>(grad_out: ArrayView4<'_, T>, g: &Conv2dGeometry) -> Result<Array4<T>> {
    let op = "avg_pool2d (backward)";
    let batch = grad_out.shape()[0];
    let len = crate::shape::checked_numel(op, &[batch, g.in_h, g.in_w, g.channels])?;
    check_output(op, &grad_out, g, len)?;
    let go = grad_out.as_standard_layout();
    let gs = go.as_slice().expect("standard layout");
    let (img_in, per_chunk) = (g.in_h * g.in_w * g.channels, images_per_chunk(g));
    let dx = crate::vec_by_chunks(
        len,
        per_chunk * img_in,
        T::zero(),
        || (),
        |_, i, dx| avg_spread(gs, g, i * per_chunk, dx),
    );
    Ok(Array4::from_shape_vec((batch, g.in_h, g.in_w, g.channels), dx).expect("len elements"))
}

/// The gradient of [`avg_pool2d`], added into `input_grad`: each output spreads
/// `g / count` over the `count` input positions of its window (overlapping windows
/// add up).
///
/// # Shapes
/// `grad_out: [batch, out_h, out_w, channels]`, `input_grad`:
/// `batch·in_h·in_w·channels` elements, NHWC row-major.
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when the shapes or lengths do not match.
pub fn avg_pool2d_backward_add<T: Element>(
    grad_out: ArrayView4<'_, T>,
    g: &Conv2dGeometry,
    input_grad: &mut [T],
) -> Result<()> {
    check_output("avg_pool2d (backward)", &grad_out, g, input_grad.len())?;
    let go = grad_out.as_standard_layout();
    let gs = go.as_slice().expect("standard layout");
    let (img_in, per_chunk) = (g.in_h * g.in_w * g.channels, images_per_chunk(g));
    crate::for_each_chunk_mut(input_grad, per_chunk * img_in, || (), |_, i, dx| avg_spread(gs, g, i * per_chunk, dx));
    Ok(())
}

/// Adds the average-pool gradient of the images `first..` into `dx` (whole images).
fn avg_spread<T: Element>(gs: &[T], g: &Conv2dGeometry, first: usize, dx: &mut [T]) {
    let (img_in, img_out, c) = (g.in_h * g.in_w * g.channels, g.out_h * g.out_w * g.channels, g.channels);
    if img_in == 0 {
        return;
    }
    for (j, dx) in dx.chunks_exact_mut(img_in).enumerate() {
        let gimg = &gs[(first + j) * img_out..][..img_out];
        for_each_window(g, |o, window| {
            let count = T::of_f64(window.len() as f64);
            for &base in window {
                dx[base..base + c].iter_mut().zip(&gimg[o..o + c]).for_each(|(d, &gv)| *d += gv / count);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Padding;
    use ndarray::Array;
    use proptest::prelude::*;

    /// Max and average pooling by the definition, one output at a time.
    fn reference(x: &Array4<f64>, g: &Conv2dGeometry) -> (Array4<f64>, Array4<f64>) {
        let n = x.shape()[0];
        let mut mx = Array4::zeros((n, g.out_h, g.out_w, g.channels));
        let mut avg = mx.clone();
        for ((b, oh, ow, c), m) in mx.indexed_iter_mut() {
            let mut vals = vec![];
            for kh in 0..g.kernel_h {
                for kw in 0..g.kernel_w {
                    let ih = (oh * g.stride_h + kh) as isize - g.pad_top as isize;
                    let iw = (ow * g.stride_w + kw) as isize - g.pad_left as isize;
                    if ih >= 0 && iw >= 0 && (ih as usize) < g.in_h && (iw as usize) < g.in_w {
                        vals.push(x[[b, ih as usize, iw as usize, c]]);
                    }
                }
            }
            *m = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            avg[[b, oh, ow, c]] = vals.iter().sum::<f64>() / vals.len() as f64;
        }
        (mx, avg)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Forward values equal the definition; the backward passes are the adjoints
        /// of the forward maps: <pool(x) routed by argmax, y> = <x, backward(y)> for
        /// max, <avg(x), y> = <x, avg_backward(y)> for the (linear) average.
        #[test]
        fn pooling_matches_the_definition_and_backward_is_the_adjoint(
            n in 1usize..4, h in 2usize..9, w in 2usize..9, c in 1usize..5,
            k in 1usize..4, s in 1usize..3, same in any::<bool>(), seed in 0u64..1000,
        ) {
            let padding = if same { Padding::Same } else { Padding::Valid };
            prop_assume!(k <= h && k <= w);
            let g = Conv2dGeometry::new((h, w, c), (k, k), (s, s), padding).unwrap();
            // Distinct values, so the max is unique.
            let x = Array::from_shape_fn((n, h, w, c), |(a, b, d, e)| {
                ((a * 7919 + b * 104_729 + d * 1_299_709 + e * 15_485_863 + seed as usize) % 1_000_003) as f64
            });
            let (want_max, want_avg) = reference(&x, &g);
            let (mx, arg) = max_pool2d(x.view(), &g).unwrap();
            prop_assert_eq!(&mx, &want_max);
            let avg = avg_pool2d(x.view(), &g).unwrap();
            for (a, b) in avg.iter().zip(want_avg.iter()) {
                prop_assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0));
            }
            let y = Array::from_shape_fn(mx.raw_dim(), |(a, b, d, e)| ((a + 3 * b + 5 * d + 7 * e) % 11) as f64 - 5.0);
            let img = h * w * c;
            let mut dx = vec![0.0; n * img];
            max_pool2d_backward_add(y.view(), &arg, &g, &mut dx).unwrap();
            // Each output's gradient lands on the element equal to that output.
            let lhs: f64 = mx.iter().zip(y.iter()).map(|(m, y)| m * y).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(x, d)| x * d).sum();
            prop_assert!((lhs - rhs).abs() <= 1e-9 * lhs.abs().max(1.0));
            // The fresh form equals adding into zeros.
            prop_assert_eq!(max_pool2d_backward(y.view(), &arg, &g).unwrap().into_raw_vec_and_offset().0, dx);
            let mut dx = vec![0.0; n * img];
            avg_pool2d_backward_add(y.view(), &g, &mut dx).unwrap();
            prop_assert_eq!(avg_pool2d_backward(y.view(), &g).unwrap().into_raw_vec_and_offset().0, dx.clone());
            let lhs: f64 = avg.iter().zip(y.iter()).map(|(m, y)| m * y).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(x, d)| x * d).sum();
            prop_assert!((lhs - rhs).abs() <= 1e-9 * lhs.abs().max(1.0));
        }
    }

    #[test]
    fn max_pool_ties_go_to_the_first_element_and_nan_wins() {
        let g = Conv2dGeometry::new((2, 2, 2), (2, 2), (2, 2), Padding::Valid).unwrap();
        // Channel 0: all equal (tie → offset 0); channel 1: NaN at pixel (1, 0).
        let x = Array::from_shape_vec((1, 2, 2, 2), vec![1.0, 0.0, 1.0, 5.0, 1.0, f64::NAN, 1.0, 9.0]).unwrap();
        let (m, arg) = max_pool2d(x.view(), &g).unwrap();
        assert_eq!(m[[0, 0, 0, 0]], 1.0);
        assert!(m[[0, 0, 0, 1]].is_nan());
        assert_eq!(arg, vec![0, 5]);
        let mut dx = vec![0.0; 8];
        max_pool2d_backward_add(Array4::from_elem((1, 1, 1, 2), 2.0).view(), &arg, &g, &mut dx).unwrap();
        assert_eq!(dx, vec![2.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0]);
        let bad = max_pool2d_backward_add(Array4::from_elem((1, 1, 1, 2), 2.0).view(), &[0, 8], &g, &mut dx);
        assert!(matches!(bad, Err(TensorError::InvalidArgument { .. })));
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // 16×16×16 outputs per image: 16 images per work chunk, so 40 images make 3
        // chunks, the last one partial; overlapping 3×3 windows, stride 2, padding.
        let g = Conv2dGeometry::new((31, 31, 16), (3, 3), (2, 2), Padding::Same).unwrap();
        assert_eq!(images_per_chunk(&g), 16);
        let mut rng = crate::random::seeded_rng(3);
        let x = crate::Tensor::<f32>::random_uniform(&[40, 31, 31, 16], -1.0, 1.0, &mut rng).unwrap();
        let x4 = x.array().view().into_dimensionality::<ndarray::Ix4>().unwrap();
        let run = || {
            let (m, arg) = max_pool2d(x4, &g).unwrap();
            let mut dx = vec![0.5f32; x.len()];
            max_pool2d_backward_add(m.view(), &arg, &g, &mut dx).unwrap();
            avg_pool2d_backward_add(m.view(), &g, &mut dx).unwrap();
            let fresh = (max_pool2d_backward(m.view(), &arg, &g).unwrap(), avg_pool2d_backward(m.view(), &g).unwrap());
            (m, dx, avg_pool2d(x4, &g).unwrap(), fresh)
        };
        crate::set_num_threads(1);
        let one = run();
        crate::set_num_threads(2);
        let two = run();
        crate::set_num_threads(0);
        assert_eq!(one, two);
    }
}
