//! # nn-tensor
//!
//! n-dimensional tensors for the nn toolkit, on top of [`ndarray`].
//!
//! - [`Tensor<T>`] for `T = f32` (training) and `f64` (gradient checks): a thin owner
//!   of an [`ndarray::ArrayD`], convertible both ways without copying.
//! - Element-wise arithmetic with NumPy broadcasting ([`shape::broadcast_shape`]),
//!   reductions over axes, reshape/permute/slice/concat/stack/gather.
//! - Matrix products through one interface ([`gemm`]) with run-time selectable back
//!   ends: the pure-Rust `gemm` crate (default), `matrixmultiply`, and system OpenBLAS
//!   with the `openblas` feature.
//! - Convolution in NHWC layout ([`conv`]): padding rules, output sizes, im2col and
//!   col2im, and the forward/backward kernels (im2col + GEMM over chunks of whole
//!   images, in parallel); max and average pooling kernels ([`pool`]).
//! - Stable [`Tensor::log_sum_exp`], [`Tensor::softmax`] and [`Tensor::log_softmax`].
//! - Seeded, portable random fills ([`random`]).
//!
//! Threads: GEMM, the convolution and pooling kernels and [`Tensor::map_par`] run on
//! nn's own pool ([`set_num_threads`], [`install`]). Every parallel kernel splits its
//! work into chunks that depend on the shapes only, never on the thread count, and
//! adds partial sums in chunk order, so results are bit-identical at any thread count.
//!
//! Errors: one enum, [`TensorError`], naming the operation and the shapes involved.
//! Every operation that can fail on caller input has a `try_` form returning it; the
//! plain form panics with the same message. Every shape that is allocated is first
//! checked by one function, [`shape::checked_numel_of`] (no overflowing element count,
//! at most `isize::MAX` bytes), so a shape too large is [`TensorError::Overflow`], never
//! a "capacity overflow" panic or a wrapped-around size.
//!
//! ```
//! use nn_tensor::Tensor;
//! let x = Tensor::<f32>::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]);
//! let w = Tensor::<f32>::from_vec(&[3, 1], vec![1., 0., -1.]);
//! let b = Tensor::<f32>::from_vec(&[1], vec![0.5]);
//! let y = &x.matmul(&w) + &b; // [2, 1], bias broadcast over the batch
//! assert_eq!(y.to_vec(), vec![-1.5, -1.5]);
//! ```

#![warn(missing_docs)]

pub mod conv;
pub mod conv_pool;
mod element;
mod elementwise;
mod error;
pub mod fastmath;
pub mod gemm;
pub mod io;
mod matmul;
pub mod pool;
pub mod random;
mod reduce;
pub mod shape;
pub mod simd;
mod softmax;
mod tensor;

pub use element::{DType, Element};
pub use elementwise::sigmoid;
pub use error::{Result, TensorError};
pub use tensor::Tensor;

pub use ndarray;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static THREADS: AtomicUsize = AtomicUsize::new(0);
static POOL: Mutex<Option<Arc<rayon::ThreadPool>>> = Mutex::new(None);

/// Sets how many threads nn's kernels may use: the size of nn's own rayon pool
/// (used by GEMM and by [`install`]) and, with the `openblas` feature, of OpenBLAS's
/// pool. `0` restores the default: the number of CPUs the process may use.
///
/// Nothing else reads a thread count: no environment variable is consulted.
/// Results do not depend on the thread count (see [`gemm`]).
pub fn set_num_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
    *POOL.lock().unwrap_or_else(|e| e.into_inner()) = None;
    #[cfg(feature = "openblas")]
    gemm::set_blas_threads(num_threads());
}

/// The number of threads kernels use: the value given to [`set_num_threads`], or the
/// CPUs available to the process.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
}

/// nn's rayon pool, with [`num_threads`] threads (created on first use and again
/// after [`set_num_threads`] changes the count).
pub fn thread_pool() -> Arc<rayon::ThreadPool> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let n = num_threads();
    match pool.as_ref() {
        Some(p) if p.current_num_threads() == n => p.clone(),
        _ => {
            let p = Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("nn-worker-{i}"))
                    .build()
                    .expect("spawning the thread pool"),
            );
            *pool = Some(p.clone());
            p
        }
    }
}

/// Runs `f` inside nn's thread pool, so rayon parallelism in it uses exactly
/// [`num_threads`] threads.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if num_threads() <= 1 {
        return f();
    }
    thread_pool().install(f)
}

/// Runs `f(scratch, index, chunk)` on every `chunk_len`-element chunk of `data` (the
/// last one may be shorter): on nn's pool when it has more than one thread (and the
/// GEMM back end tolerates concurrent calls, see [`gemm::gemm_serial`]), otherwise
/// in order on the calling thread. `init` makes a scratch value (a work buffer) for
/// each worker, reused across the chunks that worker runs.
///
/// The split depends only on `chunk_len`, never on the thread count, and each chunk
/// is processed the same way wherever it runs, so results are bit-identical for any
/// thread count as long as `f` writes only its own chunk (reductions write one
/// partial per chunk and are summed afterwards in chunk order).
pub(crate) fn for_each_chunk_mut<T: Send, S>(
    data: &mut [T],
    chunk_len: usize,
    init: impl Fn() -> S + Send + Sync,
    f: impl Fn(&mut S, usize, &mut [T]) + Send + Sync,
) {
    use rayon::prelude::*;
    if data.is_empty() {
        return;
    }
    let chunk_len = chunk_len.max(1);
    if data.len() <= chunk_len || num_threads() <= 1 || !gemm::concurrent_gemm_ok() {
        let mut scratch = init();
        for (i, chunk) in data.chunks_mut(chunk_len).enumerate() {
            f(&mut scratch, i, chunk);
        }
        return;
    }
    thread_pool().install(|| {
        data.par_chunks_mut(chunk_len).enumerate().for_each_init(init, |scratch, (i, chunk)| f(scratch, i, chunk))
    });
}

/// Runs `f(index, chunk)` on every `chunk_len`-element chunk of `data` (the last may
/// be shorter), spread over nn's pool as [`for_each_chunk_mut`] does: the split
/// depends only on `chunk_len`, so as long as `f` writes only its own chunk the
/// result is bit-identical at any thread count. For row-wise kernels outside this
/// crate (the attention softmax); `chunk_len` is best a whole number of rows.
pub fn par_chunks_mut<T: Send>(data: &mut [T], chunk_len: usize, f: impl Fn(usize, &mut [T]) + Send + Sync) {
    for_each_chunk_mut(data, chunk_len, || (), |_, i, chunk| f(i, chunk));
}

/// A new `Vec` of `len` elements made by `f(index, chunk)` on every `chunk_len`-element
/// chunk, spread over nn's pool as [`par_chunks_mut`] (each chunk starts zeroed, by the
/// worker that then fills it: no single-threaded zeroing pass over the whole buffer).
/// Bit-identical at any thread count as long as `f` writes only its chunk.
pub fn par_build<T: Element>(len: usize, chunk_len: usize, f: impl Fn(usize, &mut [T]) + Send + Sync) -> Vec<T> {
    vec_by_chunks(len, chunk_len, T::zero(), || (), |_, i, chunk| f(i, chunk))
}

/// The element-wise sum of the parts of `partials` (`part_len` elements each, stored
/// one after another), added part after part to zeros: the same bits as one serial
/// pass, with the elements split into blocks on nn's pool. For the per-chunk kernel
/// and bias gradients of the convolutions, where a serial sum over a hundred chunks
/// was a millisecond of a training step on the calling thread.
pub(crate) fn sum_parts<T: Element>(partials: &[T], part_len: usize) -> Vec<T> {
    const BLOCK: usize = 4096;
    if part_len == 0 {
        return Vec::new();
    }
    let parts = partials.len() / part_len;
    par_build(part_len, BLOCK, |i, block| {
        for p in 0..parts {
            let src = &partials[p * part_len + i * BLOCK..][..block.len()];
            block.iter_mut().zip(src).for_each(|(t, &v)| *t += v);
        }
    })
}

/// `len` zeros in a new `Vec`, written on nn's pool in chunks of 32,768 elements (a
/// fresh matrix-product output or gradient buffer of megabytes is not one memset on the
/// calling thread).
pub fn zeros_par<T: Element>(len: usize) -> Vec<T> {
    par_build(len, 1 << 15, |_, _| {})
}

/// `row` repeated `rows` times into a new `Vec` (`rows · row.len()` elements), the
/// copies spread over nn's pool: the starting value of a Dense layer's output (its
/// bias in every row) without a zeroing pass first.
pub fn repeat_rows<T: Copy + Send + Sync>(row: &[T], rows: usize) -> Vec<T> {
    let n = row.len();
    let Some(&first) = row.first() else { return Vec::new() };
    let per_chunk = (1 << 15) / n.max(1) + 1;
    vec_by_chunks(
        rows * n,
        per_chunk * n,
        first,
        || (),
        |_, _, chunk| {
            for dst in chunk.chunks_mut(n) {
                dst.copy_from_slice(&row[..dst.len()]);
            }
        },
    )
}

/// A new `Vec` of `len` elements built chunk by chunk: each chunk of `chunk_len`
/// elements is first filled with `fill`, then handed to `f` (as in
/// [`for_each_chunk_mut`], in parallel on nn's pool). Unlike `vec![fill; len]`
/// followed by a pass of `f`, the fill happens chunk by chunk right before `f` works
/// on the same (cache-resident) chunk, on every worker at once, instead of one
/// single-threaded `memset` of the whole buffer (or a page fault per 4 KiB) that
/// evicts the cache before `f` starts: for the 11 MB activations of a convolution
/// that is a whole pass over memory saved.
pub(crate) fn vec_by_chunks<T: Copy + Send + Sync, S>(
    len: usize,
    chunk_len: usize,
    fill: T,
    init: impl Fn() -> S + Send + Sync,
    f: impl Fn(&mut S, usize, &mut [T]) + Send + Sync,
) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    for_each_chunk_mut(&mut v.spare_capacity_mut()[..len], chunk_len, init, |scratch, i, chunk| {
        for e in chunk.iter_mut() {
            e.write(fill);
        }
        // SAFETY: every element of `chunk` was initialised just above, and
        // `MaybeUninit<T>` has the same layout as `T`, so viewing the chunk as `[T]`
        // is sound; `f` can only write initialised values through it.
        let chunk = unsafe { &mut *(chunk as *mut [std::mem::MaybeUninit<T>] as *mut [T]) };
        f(scratch, i, chunk);
    });
    // SAFETY: `for_each_chunk_mut` visits every chunk of the first `len` elements
    // (or unwinds, in which case this line is never reached and the `Vec` is freed
    // with length 0), and each chunk was fully initialised before `f` ran.
    unsafe { v.set_len(len) };
    v
}

/// `f(x)` for every element `x` of `src`, into a new `Vec`, chunk by chunk of
/// `chunk_len` on nn's pool ([`for_each_chunk_mut`]), each chunk's loop compiled for
/// the CPU's widest vectors ([`simd::vectorized`]; mark `f` `#[inline(always)]`).
/// Every element is written exactly once: no fill pass before (unlike
/// [`vec_by_chunks`]). Bit-identical at any thread count.
#[allow(clippy::needless_range_loop)]
pub(crate) fn map_by_chunks<T: Copy + Send + Sync, U: Copy + Send + Sync>(
    src: &[T],
    chunk_len: usize,
    f: impl Fn(T) -> U + Send + Sync,
) -> Vec<U> {
    let chunk_len = chunk_len.max(1);
    let mut v: Vec<U> = Vec::with_capacity(src.len());
    for_each_chunk_mut(
        &mut v.spare_capacity_mut()[..src.len()],
        chunk_len,
        || (),
        |_, i, chunk| {
            let src = &src[i * chunk_len..][..chunk.len()];
            // An index loop: the zip adapter's `fold` stayed out of line, compiled
            // without the wider instructions (measured on GELU).
            simd::vectorized(
                #[inline(always)]
                || {
                    for j in 0..chunk.len() {
                        chunk[j].write(f(src[j]));
                    }
                },
            );
        },
    );
    // SAFETY: `for_each_chunk_mut` visits every chunk of the first `src.len()`
    // elements (or unwinds, and this line is never reached), and the loop above
    // writes every element of each chunk.
    unsafe { v.set_len(src.len()) };
    v
}

/// [`map_by_chunks`] for a function of two results: `(f(x).0, f(x).1)` for every
/// element `x` of `src`, into two new `Vec`s in one pass.
#[allow(clippy::needless_range_loop)]
pub(crate) fn map2_by_chunks<T: Copy + Send + Sync, U: Copy + Send + Sync>(
    src: &[T],
    chunk_len: usize,
    f: impl Fn(T) -> (U, U) + Send + Sync,
) -> (Vec<U>, Vec<U>) {
    let (n, chunk_len) = (src.len(), chunk_len.max(1));
    let mut a: Vec<U> = Vec::with_capacity(n);
    let mut b: Vec<U> = Vec::with_capacity(n);
    for_each_chunk_pair_mut(
        &mut a.spare_capacity_mut()[..n],
        chunk_len,
        &mut b.spare_capacity_mut()[..n],
        chunk_len,
        || (),
        |_, i, ca, cb| {
            let src = &src[i * chunk_len..][..ca.len()];
            simd::vectorized(
                #[inline(always)]
                || {
                    for j in 0..ca.len() {
                        let (x, y) = f(src[j]);
                        ca[j].write(x);
                        cb[j].write(y);
                    }
                },
            );
        },
    );
    // SAFETY: as in `map_by_chunks`: both vectors' chunks are split alike (same
    // length, same chunk size) and every element of each was written.
    unsafe {
        a.set_len(n);
        b.set_len(n);
    }
    (a, b)
}

/// [`for_each_chunk_mut`] over two slices split alike: chunk `i` of `a` (`a_len`
/// elements) goes with chunk `i` of `b` (`b_len` elements). Both must hold the same
/// number of chunks. `init` makes one scratch value per worker, as in
/// [`for_each_chunk_mut`].
pub(crate) fn for_each_chunk_pair_mut<A: Send, B: Send, S>(
    a: &mut [A],
    a_len: usize,
    b: &mut [B],
    b_len: usize,
    init: impl Fn() -> S + Send + Sync,
    f: impl Fn(&mut S, usize, &mut [A], &mut [B]) + Send + Sync,
) {
    use rayon::prelude::*;
    let (a_len, b_len) = (a_len.max(1), b_len.max(1));
    assert_eq!(a.len().div_ceil(a_len), b.len().div_ceil(b_len), "chunk counts");
    if a.len() <= a_len || num_threads() <= 1 || !gemm::concurrent_gemm_ok() {
        let mut scratch = init();
        for (i, (ca, cb)) in a.chunks_mut(a_len).zip(b.chunks_mut(b_len)).enumerate() {
            f(&mut scratch, i, ca, cb);
        }
        return;
    }
    thread_pool().install(|| {
        a.par_chunks_mut(a_len)
            .zip(b.par_chunks_mut(b_len))
            .enumerate()
            .for_each_init(init, |scratch, (i, (ca, cb))| f(scratch, i, ca, cb))
    });
}

/// [`vec_by_chunks`] for two vectors built together: chunk `i` of the first
/// (`a_chunk` elements, filled with `a_fill`) goes with chunk `i` of the second
/// (`b_chunk` elements, filled with `b_fill`), as in [`for_each_chunk_pair_mut`]
/// (`init` makes one scratch value per worker).
pub(crate) fn vec_pair_by_chunks<A: Copy + Send + Sync, B: Copy + Send + Sync, S>(
    (a_len, a_chunk, a_fill): (usize, usize, A),
    (b_len, b_chunk, b_fill): (usize, usize, B),
    init: impl Fn() -> S + Send + Sync,
    f: impl Fn(&mut S, usize, &mut [A], &mut [B]) + Send + Sync,
) -> (Vec<A>, Vec<B>) {
    let mut a: Vec<A> = Vec::with_capacity(a_len);
    let mut b: Vec<B> = Vec::with_capacity(b_len);
    for_each_chunk_pair_mut(
        &mut a.spare_capacity_mut()[..a_len],
        a_chunk,
        &mut b.spare_capacity_mut()[..b_len],
        b_chunk,
        init,
        |scratch, i, ca, cb| {
            ca.iter_mut().for_each(|e| {
                e.write(a_fill);
            });
            cb.iter_mut().for_each(|e| {
                e.write(b_fill);
            });
            // SAFETY: as in `vec_by_chunks`: both chunks were fully initialised just
            // above and `MaybeUninit<X>` has the layout of `X`.
            let ca = unsafe { &mut *(ca as *mut [std::mem::MaybeUninit<A>] as *mut [A]) };
            let cb = unsafe { &mut *(cb as *mut [std::mem::MaybeUninit<B>] as *mut [B]) };
            f(scratch, i, ca, cb);
        },
    );
    // SAFETY: as in `vec_by_chunks`: every chunk of both was initialised (the chunk
    // counts agree, checked by `for_each_chunk_pair_mut`), or this is not reached.
    unsafe {
        a.set_len(a_len);
        b.set_len(b_len);
    }
    (a, b)
}

/// One line naming the GEMM back end in use and its kernels, for `--version` output
/// and logs, e.g. `gemm 0.19 (pure Rust, AVX-512 kernels), 2 threads`.
pub fn backend_summary() -> String {
    format!("{}, {} threads", gemm::backend().describe(), num_threads())
}
