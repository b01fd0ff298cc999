//! Shared definitions for nn's criterion benchmarks (`benches/*.rs`).

#![warn(missing_docs)]

/// The matrix shapes nn's GEMM benchmarks measure.
pub mod gemm_shapes {
    /// How an operand is stored relative to the product's orientation.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Operand {
        /// Row-major as used.
        Plain,
        /// A transposed view of a row-major buffer (the weight-gradient products).
        Transposed,
    }

    /// One product `C[m, n] = A[m, k] · B[k, n]`.
    #[derive(Debug, Clone, Copy)]
    pub struct Shape {
        /// Name used as the benchmark id.
        pub name: &'static str,
        /// Rows of A and C.
        pub m: usize,
        /// Columns of B and C.
        pub n: usize,
        /// Inner dimension.
        pub k: usize,
        /// Storage of A.
        pub a: Operand,
        /// Storage of B.
        pub b: Operand,
    }

    impl Shape {
        /// Floating-point operations of the product: `2·m·n·k`.
        pub fn flops(&self) -> u64 {
            2 * (self.m as u64) * (self.n as u64) * (self.k as u64)
        }
    }

    use Operand::{Plain, Transposed};

    /// Square 256/512/1024, then the seed CNN's products at batch 128: the
    /// convolution as im2col (`[128·26·26, 9] · [9, 32]`), its kernel gradient
    /// (`colsᵀ · δ`: `[9, 86528] · [86528, 32]`, A a transposed view), and Dense
    /// 5408→128 forward (`x · W`), kernel gradient (`xᵀ · δ`) and input gradient (`δ · Wᵀ`).
    pub const SHAPES: &[Shape] = &[
        Shape { name: "square_256", m: 256, n: 256, k: 256, a: Plain, b: Plain },
        Shape { name: "square_512", m: 512, n: 512, k: 512, a: Plain, b: Plain },
        Shape { name: "square_1024", m: 1024, n: 1024, k: 1024, a: Plain, b: Plain },
        Shape { name: "conv_forward", m: 128 * 676, n: 32, k: 9, a: Plain, b: Plain },
        Shape { name: "conv_kernel_grad", m: 9, n: 32, k: 128 * 676, a: Transposed, b: Plain },
        Shape { name: "dense_forward", m: 128, n: 128, k: 5408, a: Plain, b: Plain },
        Shape { name: "dense_kernel_grad", m: 5408, n: 128, k: 128, a: Transposed, b: Plain },
        Shape { name: "dense_input_grad", m: 128, n: 5408, k: 128, a: Plain, b: Transposed },
    ];
}

/// The f32 FMA ceiling of one core: a loop of independent fused multiply-adds on
/// the widest vectors the CPU offers (AVX-512 or AVX2+FMA, detected at run time).
pub mod peak {
    /// Floating-point operations done by one call of [`fma_loop`] with `iters`.
    pub fn flops(iters: u64) -> u64 {
        // 12 accumulators × lanes × 2 FLOPs (multiply and add) per iteration.
        iters * 12 * lanes() as u64 * 2
    }

    /// f32 lanes per vector of the kernel [`fma_loop`] runs.
    pub fn lanes() -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return 16;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return 8;
            }
        }
        1
    }

    /// Runs `iters` iterations of 12 independent vector FMAs; returns a value that
    /// depends on every accumulator so the work cannot be optimised away.
    pub fn fma_loop(iters: u64) -> f32 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F (checked just above).
                return unsafe { x86::fma512(iters) };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                return unsafe { x86::fma256(iters) };
            }
        }
        let mut acc = [1.0f32; 12];
        for _ in 0..iters {
            for a in &mut acc {
                *a = a.mul_add(0.999_999, 1e-7);
            }
        }
        acc.iter().sum()
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::x86_64::*;

        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn fma512(iters: u64) -> f32 {
            let m = _mm512_set1_ps(0.999_999);
            let c = _mm512_set1_ps(1e-7);
            let mut acc = [_mm512_set1_ps(1.0); 12];
            for _ in 0..iters {
                for a in &mut acc {
                    *a = _mm512_fmadd_ps(*a, m, c);
                }
            }
            acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
        }

        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn fma256(iters: u64) -> f32 {
            let m = _mm256_set1_ps(0.999_999);
            let c = _mm256_set1_ps(1e-7);
            let mut acc = [_mm256_set1_ps(1.0); 12];
            for _ in 0..iters {
                for a in &mut acc {
                    *a = _mm256_fmadd_ps(*a, m, c);
                }
            }
            let mut out = [0f32; 8];
            let sum = acc.iter().fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
            _mm256_storeu_ps(out.as_mut_ptr(), sum);
            out.iter().sum()
        }
    }
}
