//! GEMM against a right-hand matrix packed once and used many times: the recurrent
//! kernel of an LSTM, GRU or SimpleRNN, multiplied by a `[rows, units]` state at
//! every time step of a sequence.
//!
//! [`PackedRhs::new`] copies `B: [k, n]` once into panels of [`NR`] columns, each
//! stored `[k][NR]` contiguously (the last panel zero-padded); [`PackedRhs::gemm`]
//! then forms `C ← A·B + β·C` a few rows at a time with a register-blocked kernel
//! (an `MR × NR` tile of accumulators, `MR` = 6 for `f32`, 3 for `f64`: twelve
//! 256-bit registers either way, the layout of BLIS's Haswell kernels, Van Zee & van
//! de Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS Functionality", *ACM
//! TOMS* 41(3), 2015). The general [`gemm`](super::gemm) packs B again on every call:
//! for a `[64, 128]·[128, 512]` step that copy is a quarter of B's traffic and the
//! call's set-up is paid 28 times per sequence.
//!
//! **Bits.** Each output element is `acc ← β·c`, then `acc ← a[r, p]·b[p, j] + acc`
//! as one fused multiply-add for `p = 0, 1, …, k − 1` in that order, then stored. The
//! order depends on nothing else (not the thread count, the tile a row falls in, nor
//! the vector width the CPU offers: a fused multiply-add is exactly rounded whether
//! the instruction or the library computes it), so results are the same bits on
//! every machine and any number of threads. They differ from the general
//! [`gemm`](super::gemm)'s in the last bits (another blocking of `k`).
//!
//! The kernel uses AVX2 and FMA intrinsics when the CPU has them (checked at run
//! time; the compiler did not keep a portable tile of accumulators in registers:
//! 3.5 GFLOP/s against 72 for the `gemm` crate); other CPUs run the same operations
//! one element at a time.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::{Element, Result, TensorError};

/// Columns per packed panel (two 256-bit registers of `f32`, four of `f64`).
pub const NR: usize = 16;

/// `B: [k, n]` packed for [`PackedRhs::gemm`]: `⌈n / NR⌉` panels, panel `q` holding
/// `B[p, q·NR + j]` at `(q·k + p)·NR + j`, zeros past column `n`.
#[derive(Debug, Clone)]
pub struct PackedRhs<T> {
    k: usize,
    n: usize,
    panels: Vec<T>,
}

impl<T: Element> PackedRhs<T> {
    /// Packs `b: [k, n]` (any strides: pass `u.t()` for `Uᵀ`). Costs one pass over B.
    pub fn new(b: ArrayView2<'_, T>) -> Self {
        let mut packed = PackedRhs { k: 0, n: 0, panels: Vec::new() };
        packed.repack(b);
        packed
    }

    /// Packs `b: [k, n]` in place of the matrix held, reusing the allocation when it is
    /// large enough (a new matrix at every time step without allocating). Costs one
    /// pass over B.
    pub fn repack(&mut self, b: ArrayView2<'_, T>) {
        let (k, n) = b.dim();
        let count = n.div_ceil(NR);
        self.panels.resize(count * k * NR, T::zero());
        (self.k, self.n) = (k, n);
        if n % NR == 0 && b.strides()[1] == 1 {
            // Contiguous rows, whole panels: straight copies of NR elements.
            for (p, row) in b.rows().into_iter().enumerate() {
                let row = row.to_slice().expect("unit column stride");
                for (q, src) in row.chunks_exact(NR).enumerate() {
                    self.panels[(q * k + p) * NR..][..NR].copy_from_slice(src);
                }
            }
            return;
        }
        for (q, panel) in self.panels.chunks_mut((k * NR).max(1)).enumerate().take(count) {
            let j0 = q * NR;
            let width = NR.min(n - j0);
            for (p, row) in panel.chunks_mut(NR).enumerate() {
                for (j, v) in row[..width].iter_mut().enumerate() {
                    *v = b[(p, j0 + j)];
                }
                // The last panel's padding (what an earlier, wider matrix left).
                row[width..].fill(T::zero());
            }
        }
    }

    /// `[k, n]`, the shape of the packed matrix.
    pub fn dim(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// `C ← A·B + β·C` on the calling thread (see the [module docs](self) for the
    /// order of operations). When `β = 0`, C's old contents are ignored.
    ///
    /// # Shapes
    /// `a: [m, k]`, `c: [m, n]`, any strides.
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] when A's columns are not `k` or C is not `[m, n]`.
    pub fn gemm(&self, a: ArrayView2<'_, T>, beta: T, c: &mut ArrayViewMut2<'_, T>) -> Result<()> {
        let (m, k) = a.dim();
        if k != self.k {
            return Err(TensorError::ShapeMismatch {
                op: "matmul (packed)",
                lhs: vec![m, k],
                rhs: vec![self.k, self.n],
            });
        }
        if c.dim() != (m, self.n) {
            return Err(TensorError::ShapeMismatch {
                op: "matmul (packed, output)",
                lhs: vec![m, self.n],
                rhs: c.shape().to_vec(),
            });
        }
        if m == 0 || self.n == 0 {
            return Ok(());
        }
        if k == 0 {
            c.map_inplace(|v| *v = if beta == T::zero() { T::zero() } else { beta * *v });
            return Ok(());
        }
        let sa = (a.strides()[0], a.strides()[1]);
        let sc = (c.strides()[0], c.strides()[1]);
        let (pa, pc) = (a.as_ptr(), c.as_mut_ptr());
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            use std::any::TypeId;
            // SAFETY: the CPU has AVX2 and FMA (checked just above); the casts are
            // between identical types (same type id); the views are `[m, k]` and
            // `[m, n]` with the strides given (shapes checked above).
            unsafe {
                if TypeId::of::<T>() == TypeId::of::<f32>() {
                    let panels = &*(self.panels.as_slice() as *const [T] as *const [f32]);
                    let beta = *(&beta as *const T as *const f32);
                    let job = avx2::Job { panels, k, n: self.n, a: pa.cast(), sa, c: pc.cast(), sc, beta };
                    avx2::by_row_blocks(
                        job,
                        m,
                        &[
                            avx2::block_f32::<1>,
                            avx2::block_f32::<2>,
                            avx2::block_f32::<3>,
                            avx2::block_f32::<4>,
                            avx2::block_f32::<5>,
                            avx2::block_f32::<6>,
                        ],
                    );
                    return Ok(());
                }
                if TypeId::of::<T>() == TypeId::of::<f64>() {
                    let panels = &*(self.panels.as_slice() as *const [T] as *const [f64]);
                    let beta = *(&beta as *const T as *const f64);
                    let job = avx2::Job { panels, k, n: self.n, a: pa.cast(), sa, c: pc.cast(), sc, beta };
                    avx2::by_row_blocks(job, m, &[avx2::block_f64::<1>, avx2::block_f64::<2>, avx2::block_f64::<3>]);
                    return Ok(());
                }
            }
        }
        // Any other CPU: the same operations one element at a time (the same bits).
        for r in 0..m {
            for (q, panel) in self.panels.chunks_exact(k * NR).enumerate() {
                for j in q * NR..self.n.min((q + 1) * NR) {
                    let jj = j - q * NR;
                    // SAFETY: (r, j) and (r, p) lie inside the `[m, n]` and `[m, k]` views.
                    unsafe {
                        let cp = pc.offset(r as isize * sc.0 + j as isize * sc.1);
                        let mut acc = if beta == T::zero() { T::zero() } else { beta * *cp };
                        for p in 0..k {
                            acc = (*pa.offset(r as isize * sa.0 + p as isize * sa.1)).mul_add(panel[p * NR + jj], acc);
                        }
                        *cp = acc;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The AVX2 + FMA kernels: an `M × NR` tile of accumulators in twelve registers
/// (`f32`: `M ≤ 6` rows of two registers; `f64`: `M ≤ 3` rows of four), one
/// broadcast of A's element and one fused multiply-add per register and step of `k`.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::NR;

    /// Loads row `r`'s `width` columns of C at `c` (scaled by `beta`) into `out`.
    #[inline(always)]
    unsafe fn load_c<E: Copy + Default + std::ops::Mul<Output = E> + PartialEq>(
        c: *const E,
        sc: (isize, isize),
        r: usize,
        width: usize,
        beta: E,
    ) -> [E; NR] {
        let mut out = [E::default(); NR];
        if beta != E::default() {
            for (j, v) in out[..width].iter_mut().enumerate() {
                *v = beta * *c.offset(r as isize * sc.0 + j as isize * sc.1);
            }
        }
        out
    }

    /// Stores `width` columns of `row` into row `r` of C.
    #[inline(always)]
    unsafe fn store_c<E: Copy>(c: *mut E, sc: (isize, isize), r: usize, width: usize, row: &[E; NR]) {
        for (j, &v) in row[..width].iter().enumerate() {
            *c.offset(r as isize * sc.0 + j as isize * sc.1) = v;
        }
    }

    /// One product: `panels` packed for `[k, n]` (`k > 0`), A and C addressed by their
    /// first element and `(row, column)` strides.
    #[derive(Clone, Copy)]
    pub(super) struct Job<'p, E> {
        pub panels: &'p [E],
        pub k: usize,
        pub n: usize,
        pub a: *const E,
        pub sa: (isize, isize),
        pub c: *mut E,
        pub sc: (isize, isize),
        pub beta: E,
    }

    impl<E> Job<'_, E> {
        /// Each panel with its number of real columns and C's column where it starts.
        #[inline(always)]
        fn panels(&self) -> impl Iterator<Item = (&[E], usize, *mut E)> + '_ {
            self.panels.chunks_exact(self.k * NR).enumerate().map(move |(q, panel)| {
                let j0 = q * NR;
                (panel, NR.min(self.n - j0), self.c.wrapping_offset(j0 as isize * self.sc.1))
            })
        }
    }

    /// Runs `blocks[rows − 1]` on each block of up to `blocks.len()` rows of `m`.
    ///
    /// # Safety
    /// `job` addresses valid `[m, k]` and `[m, n]` views, and the blocks' CPU
    /// features are available.
    pub(super) unsafe fn by_row_blocks<E: Copy>(job: Job<'_, E>, m: usize, blocks: &[unsafe fn(Job<'_, E>)]) {
        let mut r = 0;
        while r < m {
            let rows = blocks.len().min(m - r);
            let at = Job { a: job.a.offset(r as isize * job.sa.0), c: job.c.offset(r as isize * job.sc.0), ..job };
            blocks[rows - 1](at);
            r += rows;
        }
    }

    /// Rows `0..M` of the job's A and C against every panel.
    ///
    /// # Safety
    /// As [`by_row_blocks`], with `M` rows.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_f32<const M: usize>(job: Job<'_, f32>) {
        let Job { k, a, sa, sc, beta, .. } = job;
        for (panel, width, cq) in job.panels() {
            let mut lo = [_mm256_setzero_ps(); M];
            let mut hi = [_mm256_setzero_ps(); M];
            let whole = width == NR && sc.1 == 1;
            if beta != 0.0 {
                for r in 0..M {
                    if whole {
                        // Contiguous full-width rows: straight vector loads (β·c, as below).
                        let cp = cq.offset(r as isize * sc.0);
                        let vb = _mm256_set1_ps(beta);
                        lo[r] = _mm256_mul_ps(vb, _mm256_loadu_ps(cp));
                        hi[r] = _mm256_mul_ps(vb, _mm256_loadu_ps(cp.add(8)));
                    } else {
                        let row = load_c(cq, sc, r, width, beta);
                        lo[r] = _mm256_loadu_ps(row.as_ptr());
                        hi[r] = _mm256_loadu_ps(row.as_ptr().add(8));
                    }
                }
            }
            let mut bp = panel.as_ptr();
            for p in 0..k {
                let (b0, b1) = (_mm256_loadu_ps(bp), _mm256_loadu_ps(bp.add(8)));
                for r in 0..M {
                    let av = _mm256_set1_ps(*a.offset(r as isize * sa.0 + p as isize * sa.1));
                    lo[r] = _mm256_fmadd_ps(av, b0, lo[r]);
                    hi[r] = _mm256_fmadd_ps(av, b1, hi[r]);
                }
                bp = bp.add(NR);
            }
            for r in 0..M {
                if whole {
                    let cp = cq.offset(r as isize * sc.0);
                    _mm256_storeu_ps(cp, lo[r]);
                    _mm256_storeu_ps(cp.add(8), hi[r]);
                } else {
                    let mut row = [0.0f32; NR];
                    _mm256_storeu_ps(row.as_mut_ptr(), lo[r]);
                    _mm256_storeu_ps(row.as_mut_ptr().add(8), hi[r]);
                    store_c(cq, sc, r, width, &row);
                }
            }
        }
    }

    /// Rows `0..M` of the job's A and C against every panel.
    ///
    /// # Safety
    /// As [`by_row_blocks`], with `M` rows.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_f64<const M: usize>(job: Job<'_, f64>) {
        let Job { k, a, sa, sc, beta, .. } = job;
        for (panel, width, cq) in job.panels() {
            let mut acc = [[_mm256_setzero_pd(); 4]; M];
            if beta != 0.0 {
                for (r, regs) in acc.iter_mut().enumerate() {
                    let row = load_c(cq, sc, r, width, beta);
                    for (i, reg) in regs.iter_mut().enumerate() {
                        *reg = _mm256_loadu_pd(row.as_ptr().add(4 * i));
                    }
                }
            }
            let mut bp = panel.as_ptr();
            for p in 0..k {
                let b = [
                    _mm256_loadu_pd(bp),
                    _mm256_loadu_pd(bp.add(4)),
                    _mm256_loadu_pd(bp.add(8)),
                    _mm256_loadu_pd(bp.add(12)),
                ];
                for (r, regs) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_pd(*a.offset(r as isize * sa.0 + p as isize * sa.1));
                    for i in 0..4 {
                        regs[i] = _mm256_fmadd_pd(av, b[i], regs[i]);
                    }
                }
                bp = bp.add(NR);
            }
            for (r, regs) in acc.iter().enumerate() {
                let mut row = [0.0f64; NR];
                for (i, reg) in regs.iter().enumerate() {
                    _mm256_storeu_pd(row.as_mut_ptr().add(4 * i), *reg);
                }
                store_c(cq, sc, r, width, &row);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, ShapeBuilder};

    use super::*;

    fn filled<T: Element>(rows: usize, cols: usize, seed: u64) -> Array2<T> {
        // Small integers times a power of two: every product and sum below is exact.
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            let v = ((i as u64 * 31 + j as u64 * 17 + seed * 7) % 13) as f64 - 6.0;
            T::of_f64(v * 0.25)
        })
    }

    /// Exact inputs: the packed product equals the textbook triple loop exactly, for
    /// every edge (rows not a multiple of MR, columns not a multiple of NR).
    fn matches_triple_loop<T: Element>() {
        for &(m, k, n) in &[(1, 1, 1), (7, 5, 17), (13, 128, 512), (64, 33, 40), (6, 3, 16), (2, 0, 3)] {
            let (a, b, c0) = (filled::<T>(m, k, 1), filled::<T>(k, n, 2), filled::<T>(m, n, 3));
            let packed = PackedRhs::new(b.view());
            for beta in [T::zero(), T::one(), T::of_f64(-0.5)] {
                let mut c = c0.clone();
                packed.gemm(a.view(), beta, &mut c.view_mut()).unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let mut want = beta.as_f64() * c0[(i, j)].as_f64();
                        for p in 0..k {
                            want += a[(i, p)].as_f64() * b[(p, j)].as_f64();
                        }
                        assert_eq!(c[(i, j)].as_f64(), want, "{m}×{k}×{n} β={} at ({i}, {j})", beta.as_f64());
                    }
                }
            }
        }
    }

    #[test]
    fn f32_matches_the_triple_loop_exactly() {
        matches_triple_loop::<f32>();
    }

    #[test]
    fn f64_matches_the_triple_loop_exactly() {
        matches_triple_loop::<f64>();
    }

    /// Inexact inputs: each element is the fused multiply-adds in order of `p`, the
    /// documented order, bit for bit; strided and transposed operands included.
    #[test]
    fn f32_is_fused_multiply_adds_in_order_of_k() {
        let (m, k, n) = (11, 37, 35);
        let a = Array2::from_shape_fn((m, k), |(i, p)| ((i * k + p) as f32 * 0.37).sin());
        let bt = Array2::from_shape_fn((n, k), |(j, p)| ((j * k + p) as f32 * 0.11).cos());
        let c0 = Array2::from_shape_fn((m, n), |(i, j)| (i as f32 - j as f32) * 0.01);
        // A stored column-major: strides (1, m).
        let mut a_cm = Array2::<f32>::zeros((m, k).f());
        a_cm.assign(&a);
        let packed = PackedRhs::new(bt.t());
        let mut c = c0.clone();
        packed.gemm(a_cm.view(), 1.0, &mut c.view_mut()).unwrap();
        for i in 0..m {
            for j in 0..n {
                let mut acc = c0[(i, j)];
                for p in 0..k {
                    acc = a[(i, p)].mul_add(bt[(j, p)], acc);
                }
                assert_eq!(c[(i, j)].to_bits(), acc.to_bits(), "({i}, {j})");
            }
        }
    }

    /// Repacking over a larger matrix (contiguous whole panels, then a transposed
    /// view with a part panel) gives the products of a fresh packing, bit for bit.
    #[test]
    fn repack_reuses_the_buffer_and_gives_the_fresh_results() {
        let wide = Array2::from_shape_fn((9, 40), |(p, j)| (p * 40 + j) as f32 * 0.25 - 3.0);
        let mut packed = PackedRhs::new(wide.view());
        let whole = Array2::from_shape_fn((5, 32), |(p, j)| ((p * 32 + j) as f32 * 0.7).sin());
        let part_t = Array2::from_shape_fn((19, 6), |(j, p)| ((j * 6 + p) as f32 * 0.3).cos());
        for b in [whole.view(), part_t.t()] {
            packed.repack(b);
            assert_eq!(packed.dim(), b.dim());
            let (k, n) = b.dim();
            let a = Array2::from_shape_fn((7, k), |(i, p)| (i as f32 - p as f32) * 0.5);
            let (mut got, mut want) = (Array2::<f32>::ones((7, n)), Array2::<f32>::ones((7, n)));
            packed.gemm(a.view(), 1.0, &mut got.view_mut()).unwrap();
            PackedRhs::new(b).gemm(a.view(), 1.0, &mut want.view_mut()).unwrap();
            assert_eq!(got, want);
            for i in 0..7 {
                for j in 0..n {
                    let mut acc = 1.0f32;
                    for p in 0..k {
                        acc = a[(i, p)].mul_add(b[(p, j)], acc);
                    }
                    assert_eq!(got[(i, j)].to_bits(), acc.to_bits(), "({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_errors() {
        let packed = PackedRhs::new(Array2::<f32>::zeros((4, 5)).view());
        assert_eq!(packed.dim(), (4, 5));
        let mut c = Array2::<f32>::zeros((2, 5));
        let err = packed.gemm(Array2::zeros((2, 3)).view(), 0.0, &mut c.view_mut()).unwrap_err();
        assert!(matches!(err, TensorError::ShapeMismatch { ref lhs, ref rhs, .. } if lhs == &[2, 3] && rhs == &[4, 5]));
        let mut c = Array2::<f32>::zeros((2, 4));
        let err = packed.gemm(Array2::zeros((2, 4)).view(), 0.0, &mut c.view_mut()).unwrap_err();
        assert!(matches!(err, TensorError::ShapeMismatch { ref lhs, ref rhs, .. } if lhs == &[2, 5] && rhs == &[2, 4]));
    }

    #[test]
    fn beta_zero_ignores_nans_in_c() {
        let packed = PackedRhs::new(Array2::<f32>::ones((2, 3)).view());
        let mut c = Array2::<f32>::from_elem((1, 3), f32::NAN);
        packed.gemm(Array2::from_elem((1, 2), 2.0).view(), 0.0, &mut c.view_mut()).unwrap();
        assert_eq!(c.as_slice().unwrap(), &[4.0, 4.0, 4.0]);
    }
}
