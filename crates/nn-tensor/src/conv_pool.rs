//! A convolution fused with the element-wise activation and the max pooling that
//! follow it (the seed CNN's `Conv2D(relu) → MaxPool2D`), forward and backward.
//!
//! Unfused, the convolution's output (`[batch, out_h, out_w, filters]`, 11 MB for
//! the seed CNN at batch 128) is written whole, read back by the pooling, and in the
//! backward pass a gradient of the same size is zeroed, scattered into, scaled by the
//! activation's derivative and read again by the kernel-gradient GEMM: five passes
//! over a buffer four times larger than the L2 cache. Here each chunk of whole images
//! (the same chunks as [`crate::conv::conv2d_forward_map`]) computes its convolution
//! output into a cache-sized scratch buffer and pools it at once; the backward pass
//! rebuilds the chunk's convolution gradient in the same kind of buffer from the
//! pooled gradient and the argmax, and feeds it to the GEMMs while it is in cache.
//! Only the pooled output and its argmax are stored between the passes.
//!
//! **Same numbers as the unfused ops.** Every value is computed by the same
//! operations in the same order as [`crate::conv::conv2d_forward_map`] followed by
//! [`crate::pool::max_pool2d`], and backward as [`crate::pool::max_pool2d_backward`]
//! followed by the derivative scaling and [`crate::conv::conv2d_backward_filter`] /
//! [`crate::conv::conv2d_backward_input`]: results are bit-identical to the unfused
//! path (tested), and to themselves at any thread count.
//!
//! The activation's derivative is taken from its output (`f'(x)` as a function of
//! `y = f(x)`, as nn-layers' fused layers do): the convolution output at a window's
//! argmax is exactly the pooled value, so the pooled output is all the backward pass
//! needs.

use ndarray::{Array1, Array4, ArrayView1, ArrayView4};

use crate::conv::Conv2dGeometry;
use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::pool::{max_pool_images, NO_ARGMAX};

/// Checks that `pool` is a window over the output of `conv` with `filters` channels,
/// and that one convolution output image fits 32-bit argmax offsets.
fn check_pool(op: &'static str, conv: &Conv2dGeometry, pool: &Conv2dGeometry, filters: usize) -> Result<()> {
    if (pool.in_h, pool.in_w, pool.channels) != (conv.out_h, conv.out_w, filters) {
        return Err(TensorError::ShapeMismatch {
            op,
            lhs: vec![conv.out_h, conv.out_w, filters],
            rhs: vec![pool.in_h, pool.in_w, pool.channels],
        });
    }
    let img = conv.out_h * conv.out_w * filters;
    if img >= NO_ARGMAX as usize {
        return Err(TensorError::InvalidArgument {
            op,
            message: format!("a convolution output image of {img} elements is too large for 32-bit argmax offsets"),
        });
    }
    Ok(())
}

/// `max_pool(activation(conv2d(x, kernel) + bias))` in one pass over the batch: the
/// convolution as [`crate::conv::conv2d_forward`] (cross-correlation, NHWC), then
/// the max pooling of [`crate::pool::max_pool2d`] (ties to the first maximum in
/// row-major window order, a NaN wins its window).
///
/// # Shapes
/// `input: [batch, in_h, in_w, channels]`, `kernel: [kernel_h, kernel_w, channels,
/// filters]`, `bias: [filters]`; `conv` is the convolution's geometry and `pool` the
/// pooling window's over the convolution output (`pool.in_h = conv.out_h`,
/// `pool.in_w = conv.out_w`, `pool.channels = filters`) → (`[batch, pool.out_h,
/// pool.out_w, filters]`, argmax): one argmax entry per output element, the offset of
/// the winning element inside its image of the convolution output
/// (`(oh·conv.out_w + ow)·filters + f`), or [`NO_ARGMAX`] for a window covering only
/// padding.
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when `input`, `kernel`, `bias` or `pool` do not
/// match `conv`; [`TensorError::InvalidArgument`] when one convolution output image
/// has `u32::MAX` elements or more; [`TensorError::Overflow`] when a size overflows.
pub fn conv2d_max_pool_forward<T: Element>(
    input: ArrayView4<'_, T>,
    kernel: ArrayView4<'_, T>,
    bias: Option<ArrayView1<'_, T>>,
    conv: &Conv2dGeometry,
    pool: &Conv2dGeometry,
    activation: impl Fn(T) -> T + Send + Sync,
) -> Result<(Array4<T>, Vec<u32>)> {
    let (out, arg) = forward(input, kernel, bias, conv, pool, activation, true)?;
    Ok((out, arg.expect("kept")))
}

/// [`conv2d_max_pool_forward`]'s pooled output alone, for inference: the same values,
/// without storing the argmax (each chunk's argmax stays in a reused buffer).
///
/// # Shapes and errors
/// As [`conv2d_max_pool_forward`].
pub fn conv2d_max_pool_infer<T: Element>(
    input: ArrayView4<'_, T>,
    kernel: ArrayView4<'_, T>,
    bias: Option<ArrayView1<'_, T>>,
    conv: &Conv2dGeometry,
    pool: &Conv2dGeometry,
    activation: impl Fn(T) -> T + Send + Sync,
) -> Result<Array4<T>> {
    Ok(forward(input, kernel, bias, conv, pool, activation, false)?.0)
}

/// The forward pass of both; the argmax is returned only with `keep_argmax`.
fn forward<T: Element>(
    input: ArrayView4<'_, T>,
    kernel: ArrayView4<'_, T>,
    bias: Option<ArrayView1<'_, T>>,
    conv: &Conv2dGeometry,
    pool: &Conv2dGeometry,
    activation: impl Fn(T) -> T + Send + Sync,
    keep_argmax: bool,
) -> Result<(Array4<T>, Option<Vec<u32>>)> {
    let op = "conv2d + max_pool2d";
    let ops = conv.forward_operands(op, input, kernel, bias)?;
    let (filters, batch) = (ops.filters, input.shape()[0]);
    check_pool(op, conv, pool, filters)?;
    let len = crate::shape::checked_numel(op, &[batch, pool.out_h, pool.out_w, filters])?;
    let (xs, kmat, bias) = (ops.x.as_slice().expect("standard layout"), ops.kmat(), ops.bias.as_deref());
    let (rows_per_img, per_chunk) = (conv.out_h * conv.out_w, conv.images_per_chunk());
    let img_in = conv.in_h * conv.in_w * conv.channels;
    let img_pool = pool.out_h * pool.out_w * filters;
    let chunk = per_chunk * img_pool;
    // One chunk of images: convolution and activation into `y` (cache-sized), then
    // pooled into `out_c` / `arg_c`.
    let work = |cols_buf: &mut Vec<T>, y_buf: &mut Vec<T>, i: usize, out_c: &mut [T], arg_c: &mut [u32]| {
        let n = out_c.len() / img_pool.max(1);
        let rows = n * rows_per_img;
        if y_buf.len() < rows * filters {
            y_buf.resize(rows * filters, T::zero());
        }
        let y = &mut y_buf[..rows * filters];
        conv.forward_chunk(&xs[i * per_chunk * img_in..][..n * img_in], n, kmat, bias, cols_buf, y);
        crate::simd::vectorized(
            #[inline(always)]
            || y.iter_mut().for_each(|v| *v = activation(*v)),
        );
        max_pool_images(y, pool, out_c, arg_c);
    };
    let shape = (batch, pool.out_h, pool.out_w, filters);
    if !keep_argmax {
        // The argmax of each chunk goes to a per-worker buffer that stays in cache.
        let scratch = || (Vec::<T>::new(), Vec::<T>::new(), Vec::<u32>::new());
        let out = crate::vec_by_chunks(len, chunk, T::zero(), scratch, |(cols, y, arg), i, out_c| {
            arg.clear();
            arg.resize(out_c.len(), NO_ARGMAX);
            work(cols, y, i, out_c, arg);
        });
        return Ok((Array4::from_shape_vec(shape, out).expect("len elements"), None));
    }
    let scratch = || (Vec::<T>::new(), Vec::<T>::new());
    let (out, arg) = crate::vec_pair_by_chunks(
        (len, chunk, T::zero()),
        (len, chunk, NO_ARGMAX),
        scratch,
        |(cols, y), i, out_c, arg_c| work(cols, y, i, out_c, arg_c),
    );
    Ok((Array4::from_shape_vec(shape, out).expect("len elements"), Some(arg)))
}

/// What [`conv2d_max_pool_backward`] computes besides the input gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvPoolGrads<T> {
    /// `∂/∂kernel`: `[kernel_h, kernel_w, channels, filters]`.
    pub kernel: Array4<T>,
    /// `∂/∂bias`: `[filters]`.
    pub bias: Array1<T>,
}

/// Per-worker buffers of the backward pass.
#[derive(Default)]
struct BackwardScratch<T> {
    scaled: Vec<T>,
    cols: Vec<T>,
    dy: Vec<T>,
    dcols: Vec<T>,
    seen: Vec<bool>,
}

/// Gradients of [`conv2d_max_pool_forward`]. With `G` the convolution-output
/// gradient rebuilt chunk by chunk (each pooled gradient routed to its window's
/// argmax, overlapping windows adding up, then multiplied by `f'` there, taken from
/// the pooled value `y` as `derivative(y)`):
/// `∂/∂kernel = im2col(x)ᵀ·G`, `∂/∂bias = Σ_rows G` (when `want_filter`), and
/// `input_grad += col2im(G·kernelᵀ)` (when `input_grad` is given).
///
/// # Shapes
/// `input: [batch, in_h, in_w, channels]`, `kernel: [kernel_h, kernel_w, channels,
/// filters]`, `grad_pooled` and `pooled: [batch, pool.out_h, pool.out_w, filters]`,
/// `argmax` as returned by [`conv2d_max_pool_forward`], `input_grad`:
/// `batch·in_h·in_w·channels` elements, NHWC row-major.
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when a shape or length does not match `conv` and
/// `pool`; [`TensorError::InvalidArgument`] for an argmax offset outside the image.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_max_pool_backward<T: Element>(
    input: ArrayView4<'_, T>,
    kernel: ArrayView4<'_, T>,
    grad_pooled: ArrayView4<'_, T>,
    pooled: ArrayView4<'_, T>,
    argmax: &[u32],
    conv: &Conv2dGeometry,
    pool: &Conv2dGeometry,
    derivative: impl Fn(T) -> T + Send + Sync,
    want_filter: bool,
    input_grad: Option<&mut [T]>,
) -> Result<Option<ConvPoolGrads<T>>> {
    let op = "conv2d + max_pool2d (backward)";
    conv.check_input(input.shape())?;
    let filters = conv.check_kernel(op, kernel.shape())?;
    check_pool(op, conv, pool, filters)?;
    let batch = input.shape()[0];
    let pooled_shape = [batch, pool.out_h, pool.out_w, filters];
    for s in [grad_pooled.shape(), pooled.shape()] {
        if s != pooled_shape {
            return Err(TensorError::ShapeMismatch { op, lhs: pooled_shape.to_vec(), rhs: s.to_vec() });
        }
    }
    let len = crate::shape::checked_numel(op, &pooled_shape)?;
    if argmax.len() != len {
        return Err(TensorError::ShapeMismatch { op, lhs: vec![len], rhs: vec![argmax.len()] });
    }
    let (patch, rows_per_img) = (conv.patch_len(), conv.out_h * conv.out_w);
    let (img_in, img_conv, img_pool) =
        (conv.in_h * conv.in_w * conv.channels, rows_per_img * filters, len / batch.max(1));
    // Checked in blocks on nn's pool (a serial scan was 5 % of a training step of a
    // two-convolution CNN); the first bad offset is reported.
    let outside = |a: &u32| *a != NO_ARGMAX && *a as usize >= img_conv;
    let any_outside = crate::thread_pool().install(|| {
        use rayon::prelude::*;
        argmax.par_chunks(1 << 15).any(|c| c.iter().any(outside))
    });
    let first_outside = if any_outside { argmax.iter().copied().find(outside) } else { None };
    if let Some(bad) = first_outside {
        return Err(TensorError::InvalidArgument {
            op,
            message: format!("argmax offset {bad} outside a convolution output image of {img_conv} elements"),
        });
    }
    if let Some(dx) = &input_grad {
        if dx.len() != batch * img_in {
            return Err(TensorError::ShapeMismatch {
                op,
                lhs: vec![batch, conv.in_h, conv.in_w, conv.channels],
                rhs: vec![dx.len()],
            });
        }
    }
    let per_chunk = conv.images_per_chunk();
    crate::shape::checked_numel(op, &[per_chunk, rows_per_img, patch.max(filters)])?;
    let chunks = batch.div_ceil(per_chunk);
    // Without the kernel gradient each chunk still gets one (unused) element, so the
    // partials split into as many chunks as the input gradient.
    let part_len = if want_filter { patch * filters + filters } else { 1 };
    crate::shape::checked_numel(op, &[chunks.max(1), part_len])?;
    let x = input.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let k = kernel.as_standard_layout();
    let kmat = k.view().into_shape_with_order((patch, filters)).expect("standard layout");
    let gp = grad_pooled.as_standard_layout();
    let gps = gp.as_slice().expect("standard layout");
    let py = pooled.as_standard_layout();
    let pys = py.as_slice().expect("standard layout");
    // Windows that cannot overlap route each gradient to a distinct element, so the
    // scaling by f' can follow each routing directly.
    let disjoint = pool.stride_h >= pool.kernel_h && pool.stride_w >= pool.kernel_w;
    // Disjoint windows with no padding that cover the whole output (2×2 pooling of
    // an even-sized map): each output element lies in exactly one window.
    let tiles = disjoint
        && pool.pad_top == 0
        && pool.pad_left == 0
        && pool.stride_h == pool.kernel_h
        && pool.stride_w == pool.kernel_w
        && pool.out_h * pool.kernel_h == pool.in_h
        && pool.out_w * pool.kernel_w == pool.in_w;

    let work = |s: &mut BackwardScratch<T>, i: usize, part: &mut [T], dx: Option<&mut [T]>| {
        let first = i * per_chunk;
        let n = per_chunk.min(batch - first);
        let rows = n * rows_per_img;
        if s.dy.len() < rows * filters {
            s.dy.resize(rows * filters, T::zero());
        }
        let dy = &mut s.dy[..rows * filters];
        if tiles {
            // The windows tile the convolution output: write every element once, in
            // order, the routed and scaled gradient `(0 + g)·f'(y)` at each window's
            // argmax and 0 elsewhere, with no zero fill first and no scattered writes
            // (the same values as the unfused zero-fill, scatter and scaling).
            s.scaled.resize(filters, T::zero());
            let scaled = &mut s.scaled[..];
            crate::simd::vectorized(
                #[inline(always)]
                || {
                    for j in 0..n {
                        let d = &mut dy[j * img_conv..][..img_conv];
                        for oh in 0..pool.out_h {
                            for ow in 0..pool.out_w {
                                let o = (first + j) * img_pool + (oh * pool.out_w + ow) * filters;
                                let (args, gs, ys) =
                                    (&argmax[o..][..filters], &gps[o..][..filters], &pys[o..][..filters]);
                                for ((v, &g), &y) in scaled.iter_mut().zip(gs).zip(ys) {
                                    *v = (T::zero() + g) * derivative(y);
                                }
                                for kh in 0..pool.kernel_h {
                                    for kw in 0..pool.kernel_w {
                                        let at =
                                            ((oh * pool.kernel_h + kh) * pool.in_w + ow * pool.kernel_w + kw) * filters;
                                        let dst = &mut d[at..][..filters];
                                        for (ch, ((d, &a), &v)) in
                                            dst.iter_mut().zip(args).zip(scaled.iter()).enumerate()
                                        {
                                            *d = if a == (at + ch) as u32 { v } else { T::zero() };
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            );
        } else if disjoint {
            dy.fill(T::zero());
            // Each element receives at most one gradient: route and scale in one pass,
            // `(0 + g)·f'(y)` exactly as the unfused zero-fill, scatter and scaling.
            for j in 0..n {
                let o = (first + j) * img_pool;
                let d = &mut dy[j * img_conv..][..img_conv];
                let (args, gs, ys) = (&argmax[o..o + img_pool], &gps[o..o + img_pool], &pys[o..o + img_pool]);
                for ((&at, &g), &y) in args.iter().zip(gs).zip(ys) {
                    if at != NO_ARGMAX {
                        d[at as usize] = (T::zero() + g) * derivative(y);
                    }
                }
            }
        } else {
            dy.fill(T::zero());
            // Route each pooled gradient to its argmax (overlapping windows add up), as
            // max_pool2d_backward does, then scale each routed element by f'(y) once.
            s.seen.clear();
            s.seen.resize(img_conv, false);
            for j in 0..n {
                let o = (first + j) * img_pool;
                let d = &mut dy[j * img_conv..][..img_conv];
                let (args, gs, ys) = (&argmax[o..o + img_pool], &gps[o..o + img_pool], &pys[o..o + img_pool]);
                for (&at, &g) in args.iter().zip(gs) {
                    if at != NO_ARGMAX {
                        d[at as usize] += g;
                    }
                }
                for (&at, &y) in args.iter().zip(ys) {
                    if at != NO_ARGMAX && !std::mem::replace(&mut s.seen[at as usize], true) {
                        d[at as usize] *= derivative(y);
                    }
                }
                s.seen.iter_mut().for_each(|b| *b = false);
            }
        }
        // Everywhere no gradient arrived, G = 0·f' = 0: the zero fill stands.
        if want_filter {
            conv.filter_grad_chunk(&xs[first * img_in..][..n * img_in], n, dy, &mut s.cols, part);
        }
        if let Some(dx) = dx {
            conv.input_grad_chunk(dy, n, kmat, &mut s.dcols, dx);
        }
    };

    let mut partials = crate::zeros_par::<T>(chunks * part_len);
    if batch > 0 {
        match input_grad {
            Some(dx) if img_in > 0 => crate::for_each_chunk_pair_mut(
                &mut partials,
                part_len,
                dx,
                per_chunk * img_in,
                BackwardScratch::default,
                |s, i, part, dx| work(s, i, part, Some(dx)),
            ),
            _ if want_filter => {
                crate::for_each_chunk_mut(&mut partials, part_len, BackwardScratch::default, |s, i, part| {
                    work(s, i, part, None)
                })
            }
            _ => {}
        }
    }
    if !want_filter {
        return Ok(None);
    }
    let mut total = crate::sum_parts(&partials, part_len);
    let bias = Array1::from(total.split_off(patch * filters));
    let kernel =
        Array4::from_shape_vec((conv.kernel_h, conv.kernel_w, conv.channels, filters), total).expect("patch·filters");
    Ok(Some(ConvPoolGrads { kernel, bias }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::{conv2d_backward_filter, conv2d_backward_input, conv2d_forward_map, Padding};
    use crate::pool::{max_pool2d, max_pool2d_backward};
    use ndarray::Array;

    fn filled(shape: &[usize], seed: u64) -> Vec<f64> {
        let n: usize = shape.iter().product();
        (0..n)
            .map(|i| {
                let v =
                    (i as u64).wrapping_mul(6364136223846793005).wrapping_add(seed.wrapping_mul(1442695040888963407));
                ((v >> 33) % 2001) as f64 / 1000.0 - 1.0
            })
            .collect()
    }

    fn relu(v: f64) -> f64 {
        if v > 0.0 {
            v
        } else {
            0.0
        }
    }

    fn relu_d(y: f64) -> f64 {
        if y > 0.0 {
            1.0
        } else {
            0.0
        }
    }

    /// Fused against unfused, bit for bit, forward and backward.
    fn compare(
        batch: usize,
        (h, w, c): (usize, usize, usize),
        filters: usize,
        pool_k: usize,
        pool_s: usize,
        pad: Padding,
    ) {
        let conv = Conv2dGeometry::new((h, w, c), (3, 3), (1, 1), Padding::Valid).unwrap();
        let pool =
            Conv2dGeometry::new((conv.out_h, conv.out_w, filters), (pool_k, pool_k), (pool_s, pool_s), pad).unwrap();
        let x = Array::from_shape_vec((batch, h, w, c), filled(&[batch, h, w, c], 1)).unwrap();
        let k = Array::from_shape_vec((3, 3, c, filters), filled(&[3, 3, c, filters], 2)).unwrap();
        let b = Array::from_shape_vec(filters, filled(&[filters], 3)).unwrap();
        let (pooled, arg) = conv2d_max_pool_forward(x.view(), k.view(), Some(b.view()), &conv, &pool, relu).unwrap();
        let y = conv2d_forward_map(x.view(), k.view(), Some(b.view()), &conv, relu).unwrap();
        let (pooled_ref, _) = max_pool2d(y.view(), &pool).unwrap();
        assert_eq!(pooled, pooled_ref);
        assert_eq!(conv2d_max_pool_infer(x.view(), k.view(), Some(b.view()), &conv, &pool, relu).unwrap(), pooled);
        // Ties: relu makes many zeros; the argmax must point at a zero or the max.
        for (o, (&a, &v)) in arg.iter().zip(pooled.iter()).enumerate() {
            let img = o / (pool.out_h * pool.out_w * filters);
            assert_eq!(y.as_slice().unwrap()[img * conv.out_h * conv.out_w * filters + a as usize], v);
        }

        let gp = Array::from_shape_vec(pooled.raw_dim(), filled(pooled.shape(), 4)).unwrap();
        let mut dx = vec![0.0; x.len()];
        let grads = conv2d_max_pool_backward(
            x.view(),
            k.view(),
            gp.view(),
            pooled.view(),
            &arg,
            &conv,
            &pool,
            relu_d,
            true,
            Some(&mut dx),
        )
        .unwrap()
        .unwrap();
        let (_, arg_ref) = max_pool2d(y.view(), &pool).unwrap();
        let mut g = max_pool2d_backward(gp.view(), &arg_ref, &pool).unwrap();
        g.zip_mut_with(&y, |g, &y| *g *= relu_d(y));
        let (dk, db) = conv2d_backward_filter(x.view(), g.view(), &conv).unwrap();
        let mut dx_ref = vec![0.0; x.len()];
        conv2d_backward_input(g.view(), k.view(), &conv, &mut dx_ref).unwrap();
        assert_eq!(grads.kernel, dk);
        assert_eq!(grads.bias, db);
        assert_eq!(dx, dx_ref);
        assert!(dk.iter().any(|&v| v != 0.0) && dx.iter().any(|&v| v != 0.0));

        // Without the kernel gradient, only the input gradient.
        let mut dx2 = vec![0.0; x.len()];
        let none = conv2d_max_pool_backward(
            x.view(),
            k.view(),
            gp.view(),
            pooled.view(),
            &arg,
            &conv,
            &pool,
            relu_d,
            false,
            Some(&mut dx2),
        )
        .unwrap();
        assert!(none.is_none());
        assert_eq!(dx2, dx_ref);
    }

    #[test]
    fn matches_the_unfused_ops_bit_for_bit() {
        // The seed CNN's layer on a batch spanning several chunks (6 images each).
        compare(13, (28, 28, 1), 8, 2, 2, Padding::Valid);
        // Several input channels, an odd output size (the last row/column dropped).
        compare(3, (9, 8, 3), 5, 2, 2, Padding::Valid);
        // Overlapping windows (3×3, stride 2) and "same" pooling.
        compare(4, (11, 11, 2), 4, 3, 2, Padding::Same);
        compare(2, (7, 7, 1), 3, 3, 1, Padding::Valid);
    }

    #[test]
    fn thread_count_does_not_change_results() {
        let conv = Conv2dGeometry::new((28, 28, 1), (3, 3), (1, 1), Padding::Valid).unwrap();
        let pool = Conv2dGeometry::new((26, 26, 8), (2, 2), (2, 2), Padding::Valid).unwrap();
        let x = Array::from_shape_vec((20, 28, 28, 1), filled(&[20, 28, 28, 1], 5)).unwrap();
        let k = Array::from_shape_vec((3, 3, 1, 8), filled(&[3, 3, 1, 8], 6)).unwrap();
        let run = |threads| {
            crate::set_num_threads(threads);
            let (p, a) = conv2d_max_pool_forward(x.view(), k.view(), None, &conv, &pool, relu).unwrap();
            let gp = p.mapv(|v| v * 0.5 - 0.1);
            let gr =
                conv2d_max_pool_backward(x.view(), k.view(), gp.view(), p.view(), &a, &conv, &pool, relu_d, true, None)
                    .unwrap()
                    .unwrap();
            (p, gr)
        };
        let one = run(1);
        let two = run(2);
        crate::set_num_threads(0);
        assert_eq!(one, two);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let conv = Conv2dGeometry::new((8, 8, 1), (3, 3), (1, 1), Padding::Valid).unwrap();
        let wrong_pool = Conv2dGeometry::new((7, 6, 4), (2, 2), (2, 2), Padding::Valid).unwrap();
        let x = Array::<f64, _>::zeros((2, 8, 8, 1));
        let k = Array::<f64, _>::zeros((3, 3, 1, 4));
        let e = conv2d_max_pool_forward(x.view(), k.view(), None, &conv, &wrong_pool, |v| v).unwrap_err();
        assert!(matches!(e, TensorError::ShapeMismatch { .. }), "{e}");
        let pool = Conv2dGeometry::new((6, 6, 4), (2, 2), (2, 2), Padding::Valid).unwrap();
        let (p, mut a) = conv2d_max_pool_forward(x.view(), k.view(), None, &conv, &pool, |v| v).unwrap();
        a[3] = 10_000;
        let e = conv2d_max_pool_backward(x.view(), k.view(), p.view(), p.view(), &a, &conv, &pool, |_| 1.0, true, None)
            .unwrap_err();
        assert!(matches!(e, TensorError::InvalidArgument { .. }), "{e}");
        let mut short = vec![0.0; 5];
        a[3] = 0;
        let e = conv2d_max_pool_backward(
            x.view(),
            k.view(),
            p.view(),
            p.view(),
            &a,
            &conv,
            &pool,
            |_| 1.0,
            true,
            Some(&mut short),
        )
        .unwrap_err();
        assert!(matches!(e, TensorError::ShapeMismatch { .. }), "{e}");
    }
}
