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
//! - Convolution helpers in NHWC layout ([`conv`]): padding rules, output sizes,
//!   im2col and col2im.
//! - Stable `log_sum_exp`, `softmax`, `log_softmax` ([`softmax`](mod@softmax)).
//! - Seeded, portable random fills ([`random`]).
//!
//! Errors: one enum, [`TensorError`], naming the operation and the shapes involved.
//! Every operation that can fail on caller input has a `try_` form returning it; the
//! plain form panics with the same message.
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
mod element;
mod elementwise;
mod error;
pub mod gemm;
pub mod io;
mod matmul;
pub mod random;
mod reduce;
pub mod shape;
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

/// One line naming the GEMM back end in use and its kernels, for `--version` output
/// and logs, e.g. `gemm 0.19 (pure Rust, AVX-512 kernels), 2 threads`.
pub fn backend_summary() -> String {
    format!("{}, {} threads", gemm::backend().describe(), num_threads())
}
