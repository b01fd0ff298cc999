//! The OpenBLAS back end (feature `openblas`): cblas calls into the system library.

use std::any::TypeId;

use cblas_sys::{cblas_dgemm, cblas_sgemm, CBLAS_LAYOUT, CBLAS_TRANSPOSE};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::element::Element;

// Make sure the linker pulls in the library that blas-src selects.
extern crate blas_src;

extern "C" {
    fn openblas_get_config() -> *const std::os::raw::c_char;
    fn openblas_get_corename() -> *const std::os::raw::c_char;
    fn openblas_set_num_threads(n: std::os::raw::c_int);
}

/// OpenBLAS's configuration and the core its kernels were chosen for.
pub(super) fn describe() -> String {
    // SAFETY: both functions return pointers to static NUL-terminated strings.
    let (config, core) = unsafe {
        (
            std::ffi::CStr::from_ptr(openblas_get_config()).to_string_lossy().into_owned(),
            std::ffi::CStr::from_ptr(openblas_get_corename()).to_string_lossy().into_owned(),
        )
    };
    let forced = match std::env::var("OPENBLAS_CORETYPE") {
        Ok(v) => format!(", OPENBLAS_CORETYPE={v} set by the user"),
        Err(_) => String::new(),
    };
    format!("OpenBLAS ({}; kernels for core {core}{forced})", config.trim())
}

/// Sizes OpenBLAS's thread pool.
pub(crate) fn set_threads(n: usize) {
    // SAFETY: plain FFI call with an int argument.
    unsafe { openblas_set_num_threads(n.min(i32::MAX as usize) as i32) }
}

/// How cblas sees a 2-d view: its transpose flag and leading dimension, if its
/// layout is one cblas accepts in row-major mode (unit stride along one axis).
///
/// The stride of an axis of length 1 is never used to address an element, and
/// ndarray leaves it at any value (0 for a one-element slice or broadcast), so such
/// an axis is given the smallest leading dimension cblas accepts instead.
fn blas_layout<T>(v: &ArrayView2<'_, T>) -> Option<(CBLAS_TRANSPOSE, i32)> {
    let (r, c) = v.dim();
    let [rs, cs] = [v.strides()[0], v.strides()[1]];
    if (cs == 1 || c <= 1) && (r <= 1 || rs >= c.max(1) as isize) {
        let ld = if r <= 1 { c.max(1) as isize } else { rs };
        Some((CBLAS_TRANSPOSE::CblasNoTrans, i32::try_from(ld).ok()?))
    } else if (rs == 1 || r <= 1) && (c <= 1 || cs >= r.max(1) as isize) {
        let ld = if c <= 1 { r.max(1) as isize } else { cs };
        Some((CBLAS_TRANSPOSE::CblasTrans, i32::try_from(ld).ok()?))
    } else {
        None
    }
}

/// A row-major copy with ndarray's default strides (`as_standard_layout` keeps the
/// strides of a view it deems standard, which for axes of length 1 may be 0).
fn row_major_copy<T: Element>(v: &ArrayView2<'_, T>) -> Array2<T> {
    Array2::from_shape_vec(v.raw_dim(), v.iter().copied().collect()).expect("the length is the view's")
}

pub(super) fn run<T: Element>(
    alpha: T,
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    beta: T,
    c: &mut ArrayViewMut2<'_, T>,
) {
    // Operands whose strides cblas cannot express are copied to row-major first.
    let a_owned;
    let a = match blas_layout(a) {
        Some(_) => a.view(),
        None => {
            a_owned = row_major_copy(a);
            a_owned.view()
        }
    };
    let b_owned;
    let b = match blas_layout(b) {
        Some(_) => b.view(),
        None => {
            b_owned = row_major_copy(b);
            b_owned.view()
        }
    };
    let c_layout = blas_layout(&c.view());
    let Some((CBLAS_TRANSPOSE::CblasNoTrans, ldc)) = c_layout else {
        let mut tmp: Array2<T> = row_major_copy(&c.view());
        run(alpha, &a, &b, beta, &mut tmp.view_mut());
        c.assign(&tmp);
        return;
    };
    let (ta, lda) = blas_layout(&a).expect("made row-major above");
    let (tb, ldb) = blas_layout(&b).expect("made row-major above");
    let (m, k) = a.dim();
    let n = b.ncols();
    let [m, n, k] = [m as i32, n as i32, k as i32];
    if beta == T::zero() {
        c.fill(T::zero());
    }
    // SAFETY: layouts validated by `blas_layout`; dimensions checked by the caller;
    // T is f32/f64 exactly when the TypeId matches.
    unsafe {
        if TypeId::of::<T>() == TypeId::of::<f32>() {
            cblas_sgemm(
                CBLAS_LAYOUT::CblasRowMajor,
                ta,
                tb,
                m,
                n,
                k,
                alpha.as_f64() as f32,
                a.as_ptr() as *const f32,
                lda,
                b.as_ptr() as *const f32,
                ldb,
                beta.as_f64() as f32,
                c.as_mut_ptr() as *mut f32,
                ldc,
            );
        } else {
            cblas_dgemm(
                CBLAS_LAYOUT::CblasRowMajor,
                ta,
                tb,
                m,
                n,
                k,
                alpha.as_f64(),
                a.as_ptr() as *const f64,
                lda,
                b.as_ptr() as *const f64,
                ldb,
                beta.as_f64(),
                c.as_mut_ptr() as *mut f64,
                ldc,
            );
        }
    }
}
