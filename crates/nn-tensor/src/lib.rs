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

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads nn's kernels may use (GEMM and the rayon pool; with the
/// `openblas` feature, OpenBLAS's pool too). `0` restores the default: the number
/// of CPUs the process may use.
///
/// The rayon global pool can be sized only once per process; if it already exists
/// with another size, kernels still use at most `n` of its threads.
/// Results do not depend on the thread count (see [`gemm`]).
pub fn set_num_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
    let effective = num_threads();
    let _ = rayon::ThreadPoolBuilder::new().num_threads(effective).build_global();
    #[cfg(feature = "openblas")]
    gemm::set_blas_threads(effective);
}

/// The number of threads kernels use: the value given to [`set_num_threads`], or the
/// CPUs available to the process.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
}

/// One line naming the GEMM back end in use and its kernels, for `--version` output
/// and logs, e.g. `gemm 0.19 (pure Rust, AVX-512 kernels), 2 threads`.
pub fn backend_summary() -> String {
    format!("{}, {} threads", gemm::backend().describe(), num_threads())
}
