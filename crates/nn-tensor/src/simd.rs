//! Run-time CPU dispatch for element-wise loops.
//!
//! nn is built for the baseline x86-64 instruction set (SSE2), so a plain loop runs
//! 4 `f32` lanes at a time even on a CPU with AVX-512. [`vectorized`] runs a closure
//! compiled again for the widest instruction set the CPU reports at run time (AVX-512,
//! else AVX2 + FMA, else the baseline), through the `pulp` crate (which the `gemm`
//! crate already uses for its kernels): the compiler auto-vectorizes the inlined loop
//! at that width.
//!
//! **Same results on every CPU.** Rust never contracts `a·b + c` into a fused
//! multiply-add and never reorders floating-point operations, so a loop's result
//! does not depend on the vector width it was compiled for: only element-wise loops
//! (no reductions whose order could change) belong here.

/// Runs `f` compiled for the widest vector instruction set of this CPU (see the
/// [module docs](self)). Mark the closure `#[inline(always)]`: its body is compiled
/// for the wider instructions only when it is inlined into the dispatched copy (a
/// closure the compiler keeps out of line stays at the baseline width; measured on
/// the max-pooling loop). Closures called inside it should be small or inlined too.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_the_closure_once_and_returns_its_value() {
        let mut v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let mut calls = 0;
        let total = super::vectorized(
            #[inline(always)]
            || {
                calls += 1;
                v.iter_mut().for_each(|x| *x = *x * 0.5 + 1.0);
                v.len()
            },
        );
        assert_eq!((calls, total), (1, 1000));
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32 * 0.5 + 1.0));
    }
}
