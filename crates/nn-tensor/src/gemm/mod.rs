//! General matrix multiplication (GEMM) behind one small interface with several back ends.
//!
//! Every matrix product in nn goes through [`gemm`]: `C ← α·A·B + β·C` on 2-d
//! ndarray views of any strides (so a transposed operand is a view, never a copy),
//! except the recurrent layers' per-step products, which use one operand packed once
//! for a whole sequence ([`PackedRhs`], whatever the back end).
//! The back end is chosen at run time and can be changed with [`set_backend`]; it is
//! never chosen by an environment variable.
//!
//! | [`Backend`] | what it runs | when to use it |
//! |---|---|---|
//! | `Gemm` (default) | the pure-Rust `gemm` crate; picks AVX-512, AVX2+FMA or scalar kernels by run-time CPU detection | fastest measured at nn's shapes on the reference machine (see README, "Benchmarks") |
//! | `MatrixMultiply` | `matrixmultiply` (ndarray's own kernel, with its AVX-512 kernels enabled), single-threaded | a second pure-Rust reference |
//! | `Blas` (feature `openblas`) | `cblas_?gemm` of the system OpenBLAS | to compare with, or where OpenBLAS is tuned for the CPU |
//!
//! Threads: `Gemm` uses up to [`crate::num_threads`] threads of the rayon pool;
//! `Blas` uses OpenBLAS's own pool, sized by [`crate::set_num_threads`] too. Neither
//! changes results: each output element is accumulated in the same order whatever
//! the thread count (tested).

use std::any::TypeId;
use std::sync::atomic::{AtomicU8, Ordering};

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::element::Element;
use crate::error::{Result, TensorError};

#[cfg(feature = "openblas")]
mod blas;
pub mod packed;

pub use packed::PackedRhs;

/// A GEMM implementation. See the [module docs](self) for what each runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The `gemm` crate (pure Rust, run-time CPU detection, rayon threads). Default.
    Gemm,
    /// The `matrixmultiply` crate, single-threaded.
    MatrixMultiply,
    /// System OpenBLAS through cblas. Only with the `openblas` cargo feature.
    #[cfg(feature = "openblas")]
    Blas,
}

static BACKEND: AtomicU8 = AtomicU8::new(0);

impl Backend {
    /// Every back end compiled into this build.
    pub fn available() -> Vec<Backend> {
        #[allow(unused_mut)]
        let mut v = vec![Backend::Gemm, Backend::MatrixMultiply];
        #[cfg(feature = "openblas")]
        v.push(Backend::Blas);
        v
    }

    /// Short lowercase name: `gemm`, `matrixmultiply` or `openblas`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gemm => "gemm",
            Backend::MatrixMultiply => "matrixmultiply",
            #[cfg(feature = "openblas")]
            Backend::Blas => "openblas",
        }
    }

    /// Parses a [`Backend::name`].
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::available().into_iter().find(|b| b.name() == name)
    }

    /// A one-line description naming the kernels this CPU gets, e.g.
    /// `gemm 0.19 (pure Rust, AVX-512 kernels)` or, with the `openblas` feature,
    /// OpenBLAS's own configuration string and core name.
    pub fn describe(self) -> String {
        match self {
            Backend::Gemm => format!("gemm 0.19 (pure Rust, {} kernels)", cpu_kernels()),
            Backend::MatrixMultiply => format!("matrixmultiply 0.3 (pure Rust, {} kernels, 1 thread)", cpu_kernels()),
            #[cfg(feature = "openblas")]
            Backend::Blas => blas::describe(),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Backend::Gemm => 0,
            Backend::MatrixMultiply => 1,
            #[cfg(feature = "openblas")]
            Backend::Blas => 2,
        }
    }

    fn from_u8(v: u8) -> Backend {
        match v {
            1 => Backend::MatrixMultiply,
            #[cfg(feature = "openblas")]
            2 => Backend::Blas,
            _ => Backend::Gemm,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The widest SIMD level this CPU offers to the pure-Rust kernels.
pub fn cpu_kernels() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return "AVX2+FMA";
        }
        "SSE"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "NEON"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

/// Selects the back end used by every later GEMM in this process.
pub fn set_backend(backend: Backend) {
    BACKEND.store(backend.to_u8(), Ordering::Relaxed);
}

/// The back end in use.
pub fn backend() -> Backend {
    Backend::from_u8(BACKEND.load(Ordering::Relaxed))
}

/// `C ← α·A·B + β·C` with the current [`backend`].
///
/// # Shapes
/// `a: [m, k]`, `b: [k, n]`, `c: [m, n]`; any strides (pass `a.t()` for Aᵀ). When
/// `β = 0`, C's old contents are ignored (NaNs in it do not propagate).
///
/// # Errors
/// [`TensorError::ShapeMismatch`] when the inner dimensions differ or C's shape is
/// not `[m, n]`.
pub fn gemm<T: Element>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    c: &mut ArrayViewMut2<'_, T>,
) -> Result<()> {
    gemm_with(backend(), alpha, a, b, beta, c)
}

/// [`gemm`] with an explicit back end.
pub fn gemm_with<T: Element>(
    backend: Backend,
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    c: &mut ArrayViewMut2<'_, T>,
) -> Result<()> {
    gemm_impl(backend, crate::num_threads(), alpha, a, b, beta, c)
}

/// [`gemm`] on the calling thread only, whatever [`crate::num_threads`] says: for
/// kernels that are themselves parallel over independent pieces (the convolution
/// over batch chunks), where a threaded GEMM per piece would only add overhead. The
/// result is bit-identical to [`gemm`]'s (the back ends accumulate each output
/// element in the same order whatever the thread count).
///
/// With [`Backend::Blas`] (feature `openblas`) OpenBLAS still uses its own pool;
/// nn's parallel kernels run their pieces one after another on that back end so
/// that the two pools never oversubscribe the CPU.
///
/// # Errors
/// As [`gemm`].
pub fn gemm_serial<T: Element>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    c: &mut ArrayViewMut2<'_, T>,
) -> Result<()> {
    gemm_impl(backend(), 1, alpha, a, b, beta, c)
}

fn gemm_impl<T: Element>(
    backend: Backend,
    threads: usize,
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    c: &mut ArrayViewMut2<'_, T>,
) -> Result<()> {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    if k != k2 {
        return Err(TensorError::ShapeMismatch { op: "matmul", lhs: vec![m, k], rhs: vec![k2, n] });
    }
    if c.dim() != (m, n) {
        return Err(TensorError::ShapeMismatch { op: "matmul (output)", lhs: vec![m, n], rhs: c.shape().to_vec() });
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 || alpha == T::zero() {
        if beta == T::zero() {
            c.fill(T::zero());
        } else {
            c.mapv_inplace(|x| x * beta);
        }
        return Ok(());
    }
    match backend {
        Backend::Gemm => run_gemm_crate_split(alpha, &a, &b, beta, c, threads),
        Backend::MatrixMultiply => run_matrixmultiply(alpha, &a, &b, beta, c),
        #[cfg(feature = "openblas")]
        Backend::Blas => blas::run(alpha, &a, &b, beta, c),
    }
    Ok(())
}

/// Whether nn's parallel kernels may run GEMMs on several threads at once: false
/// with [`Backend::Blas`], whose own thread pool would then oversubscribe the CPU.
/// Kernels that split their work into pieces each calling [`gemm_serial`] (the
/// convolution, the recurrent layers) run the pieces one after another when this
/// is false.
pub fn concurrent_gemm_ok() -> bool {
    #[cfg(feature = "openblas")]
    if backend() == Backend::Blas {
        return false;
    }
    true
}

/// Products smaller than this many multiply-adds run on the calling thread: handing
/// them to the pool costs more than it saves (a single-sample prediction's GEMMs).
pub(crate) const SERIAL_BELOW: usize = 1 << 18;

/// Into how many parts [`run_gemm_crate_split`] cuts the inner dimension `k`: 2 for
/// a small output with a long inner dimension (the seed CNN's Dense forward,
/// `[128 × 5408]·[5408 × 128]`), where the `gemm` crate finds too few output tiles
/// to keep two threads busy (measured: 99 GFLOP/s on 2 threads against 105 on one);
/// else 1. It depends on the shape only, never on the thread count.
fn k_parts(m: usize, n: usize, k: usize) -> usize {
    if m * n <= 128 * 128 && k >= 512 && m * n * k >= SERIAL_BELOW * 16 {
        2
    } else {
        1
    }
}

/// The `gemm` crate, with nn's parallel split: `C ← α·A·B + β·C` with the inner
/// dimension cut into [`k_parts`] parts, `C ← (β·C + α·A₁·B₁) + α·A₂·B₂`, the two
/// products computed at once on nn's pool when it has two threads (one after the
/// other otherwise: the same operations in the same order, so the same bits).
/// Unsplit products use the crate's own threading, or none below [`SERIAL_BELOW`].
fn run_gemm_crate_split<T: Element>(
    alpha: T,
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    beta: T,
    c: &mut ArrayViewMut2<'_, T>,
    threads: usize,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    if k_parts(m, n, k) == 1 {
        if threads > 1 && m * n * k >= SERIAL_BELOW {
            crate::install(|| run_gemm_crate(alpha, a, b, beta, c, threads));
        } else {
            run_gemm_crate(alpha, a, b, beta, c, 1);
        }
        return;
    }
    let half = k / 2;
    let (a1, a2) = a.view().split_at(ndarray::Axis(1), half);
    let (b1, b2) = b.view().split_at(ndarray::Axis(0), half);
    let mut second = ndarray::Array2::<T>::zeros((m, n));
    let first_part = |c: &mut ArrayViewMut2<'_, T>| run_gemm_crate(alpha, &a1, &b1, beta, c, 1);
    let second_part = |s: &mut ndarray::Array2<T>| run_gemm_crate(alpha, &a2, &b2, T::zero(), &mut s.view_mut(), 1);
    if threads > 1 {
        crate::thread_pool().install(|| rayon::join(|| first_part(c), || second_part(&mut second)));
    } else {
        first_part(c);
        second_part(&mut second);
    }
    ndarray::Zip::from(c).and(&second).for_each(|c, &s| *c += s);
}

fn run_gemm_crate<T: Element>(
    alpha: T,
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    beta: T,
    c: &mut ArrayViewMut2<'_, T>,
    threads: usize,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let [ars, acs] = [a.strides()[0], a.strides()[1]];
    let [brs, bcs] = [b.strides()[0], b.strides()[1]];
    let [crs, ccs] = [c.strides()[0], c.strides()[1]];
    let read_dst = beta != T::zero();
    // SAFETY: the views are valid for their shapes and strides (ndarray's invariant);
    // dimensions were checked to agree above; C is borrowed mutably and does not alias
    // A or B (the borrow checker forbids it). The gemm crate computes
    // dst ← alpha_dst·dst + beta_prod·lhs·rhs, so the two scalars are passed swapped.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            ccs,
            crs,
            read_dst,
            a.as_ptr(),
            acs,
            ars,
            b.as_ptr(),
            bcs,
            brs,
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

fn run_matrixmultiply<T: Element>(
    alpha: T,
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    beta: T,
    c: &mut ArrayViewMut2<'_, T>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let [ars, acs] = [a.strides()[0], a.strides()[1]];
    let [brs, bcs] = [b.strides()[0], b.strides()[1]];
    let [crs, ccs] = [c.strides()[0], c.strides()[1]];
    if beta == T::zero() {
        // matrixmultiply reads C when beta = 0 only to multiply by 0; clear NaNs first.
        c.fill(T::zero());
    }
    // SAFETY: as in `run_gemm_crate`; T is f32 or f64 exactly when the TypeId matches,
    // so the pointer casts reinterpret memory of the same type.
    unsafe {
        if TypeId::of::<T>() == TypeId::of::<f32>() {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                alpha.as_f64() as f32,
                a.as_ptr() as *const f32,
                ars,
                acs,
                b.as_ptr() as *const f32,
                brs,
                bcs,
                beta.as_f64() as f32,
                c.as_mut_ptr() as *mut f32,
                crs,
                ccs,
            );
        } else {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                alpha.as_f64(),
                a.as_ptr() as *const f64,
                ars,
                acs,
                b.as_ptr() as *const f64,
                brs,
                bcs,
                beta.as_f64(),
                c.as_mut_ptr() as *mut f64,
                crs,
                ccs,
            );
        }
    }
}

#[cfg(test)]
mod tests;

/// Sizes OpenBLAS's own thread pool (called by [`crate::set_num_threads`]).
#[cfg(feature = "openblas")]
pub(crate) fn set_blas_threads(n: usize) {
    blas::set_threads(n);
}
