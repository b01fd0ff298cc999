//! Every back end against a slow reference matmul, across transposes, strides and
//! element types (STYLE.md item 10).

use super::*;
use crate::Tensor;
use ndarray::{s, Array2};
use proptest::prelude::*;

/// C = A·B by the textbook triple loop, accumulated in f64.
fn naive(a: &ArrayView2<'_, f64>, b: &ArrayView2<'_, f64>) -> Array2<f64> {
    let (m, k) = a.dim();
    let n = b.ncols();
    Array2::from_shape_fn((m, n), |(i, j)| (0..k).map(|p| a[[i, p]] * b[[p, j]]).sum())
}

fn filled(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let h = (i as u64 * 7919 + j as u64 * 104_729 + seed * 31) % 1000;
        h as f64 / 250.0 - 2.0
    })
}

/// Runs `C ← α·op(A)·op(B) + β·C` on `backend` at f32 and f64 and checks both against
/// the naive product. Tolerances: f64 1e-12 relative to Σ|a||b|, f32 1e-5.
#[allow(clippy::too_many_arguments)]
fn check(backend: Backend, m: usize, n: usize, k: usize, ta: bool, tb: bool, stride: usize, seed: u64) {
    let a_store = filled(if ta { k } else { m } * stride, if ta { m } else { k } * stride, seed);
    let b_store = filled(if tb { n } else { k } * stride, if tb { k } else { n } * stride, seed + 1);
    // Strided views (every `stride`-th row and column), then transposed as a view.
    let a = a_store.slice(s![..;stride, ..;stride]);
    let b = b_store.slice(s![..;stride, ..;stride]);
    let a = if ta { a.reversed_axes() } else { a };
    let b = if tb { b.reversed_axes() } else { b };
    let (alpha, beta) = (1.5, -0.5);
    let c0 = filled(m, n, seed + 2);
    let want = naive(&a, &b) * alpha + &c0 * beta;
    let scale = naive(&a.mapv(f64::abs).view(), &b.mapv(f64::abs).view()) * alpha + c0.mapv(f64::abs) * 0.5;

    let mut c64 = c0.clone();
    gemm_with(backend, alpha, a, b, beta, &mut c64.view_mut()).unwrap();
    for ((g, w), s) in c64.iter().zip(&want).zip(&scale) {
        assert!((g - w).abs() <= 1e-12 * (s + 1.0), "{backend} f64 {m}x{n}x{k} ta={ta} tb={tb}: {g} vs {w}");
    }

    let (a32, b32) = (a.mapv(|v| v as f32), b.mapv(|v| v as f32));
    let (a32, b32) = (a32.view(), b32.view());
    let mut c32 = c0.mapv(|v| v as f32);
    gemm_with(backend, alpha as f32, a32, b32, beta as f32, &mut c32.view_mut()).unwrap();
    for ((g, w), s) in c32.iter().zip(&want).zip(&scale) {
        assert!((*g as f64 - w).abs() <= 1e-5 * (s + 1.0), "{backend} f32 {m}x{n}x{k} ta={ta} tb={tb}: {g} vs {w}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn every_backend_matches_the_triple_loop(
        m in 1usize..40, n in 1usize..40, k in 1usize..40, ta in any::<bool>(), tb in any::<bool>(),
        stride in 1usize..3, seed in 0u64..1000,
    ) {
        for backend in Backend::available() {
            check(backend, m, n, k, ta, tb, stride, seed);
        }
    }
}

#[test]
fn shapes_large_enough_to_block_and_thread() {
    // Sizes past the kernels' cache blocks (and the gemm crate's threading threshold).
    for backend in Backend::available() {
        for &(m, n, k) in &[(300, 70, 520), (9, 32, 2000), (129, 257, 65)] {
            check(backend, m, n, k, false, false, 1, 5);
            check(backend, m, n, k, true, true, 1, 6);
        }
    }
}

#[test]
fn beta_zero_ignores_nan_in_output() {
    for backend in Backend::available() {
        let a = filled(3, 4, 1);
        let b = filled(4, 2, 2);
        let mut c = Array2::from_elem((3, 2), f64::NAN);
        gemm_with(backend, 1.0, a.view(), b.view(), 0.0, &mut c.view_mut()).unwrap();
        let want = naive(&a.view(), &b.view());
        assert!(c.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-12), "{backend}: {c} vs {want}");
    }
}

/// Axes of length 1 may carry any stride (ndarray gives broadcasts and some slices
/// stride 0): every back end still multiplies them, e.g. [[2]]·[[3, 4]] = [[6, 8]]
/// and [1, 2]ᵀ·[[5]] = [[5], [10]], with the strides read from broadcast views.
#[test]
fn axes_of_length_one_with_zero_strides() {
    for backend in Backend::available() {
        let two = ndarray::arr0(2.0f64);
        let a = two.broadcast((1, 1)).unwrap();
        assert_eq!(a.strides(), &[0, 0]);
        let b = ndarray::arr1(&[3.0f64, 4.0]);
        let b = b.broadcast((1, 2)).unwrap();
        let mut c = Array2::from_elem((1, 2), f64::NAN);
        gemm_with(backend, 1.0, a, b, 0.0, &mut c.view_mut()).unwrap();
        assert_eq!(c, ndarray::arr2(&[[6.0, 8.0]]), "{backend}");

        let col = ndarray::arr2(&[[1.0f32], [2.0]]);
        let five = ndarray::arr0(5.0f32);
        let mut c = Array2::from_elem((2, 1), 1.0f32);
        gemm_with(backend, 1.0, col.view(), five.broadcast((1, 1)).unwrap(), 1.0, &mut c.view_mut()).unwrap();
        assert_eq!(c, ndarray::arr2(&[[6.0], [11.0]]), "{backend}");
    }
}

#[test]
fn degenerate_and_mismatched_shapes() {
    let a = Array2::<f32>::zeros((3, 0));
    let b = Array2::<f32>::zeros((0, 2));
    let mut c = Array2::<f32>::from_elem((3, 2), 2.0);
    gemm(1.0, a.view(), b.view(), 0.5, &mut c.view_mut()).unwrap();
    assert_eq!(c, Array2::from_elem((3, 2), 1.0));
    let bad = Array2::<f32>::zeros((3, 2));
    let err = gemm(1.0, bad.view(), bad.view(), 0.0, &mut c.view_mut()).unwrap_err();
    assert_eq!(err.to_string(), "matmul: incompatible shapes [3, 2] and [3, 2]");
}

#[test]
fn thread_count_does_not_change_results() {
    // Each output element is accumulated in the same order whatever the thread count.
    let a = filled(256, 512, 3).mapv(|v| v as f32);
    let b = filled(512, 384, 4).mapv(|v| v as f32);
    let run = |threads| {
        crate::set_num_threads(threads);
        let mut c = Array2::<f32>::zeros((256, 384));
        gemm_with(Backend::Gemm, 1.0, a.view(), b.view(), 0.0, &mut c.view_mut()).unwrap();
        c
    };
    let one = run(1);
    let two = run(2);
    crate::set_num_threads(0);
    assert!(one.iter().zip(&two).all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// The split-k path (a small output over a long inner dimension, the seed CNN's
/// Dense forward shape): right against the triple loop with α, β and transposed
/// operands, and the same bits on one and two threads.
#[test]
fn split_inner_dimension_is_right_and_thread_independent() {
    assert_eq!(k_parts(128, 128, 5408), 2);
    assert_eq!(k_parts(128, 5408, 128), 1);
    check(Backend::Gemm, 64, 96, 2051, false, true, 1, 5);
    check(Backend::Gemm, 128, 128, 1024, true, false, 1, 6);
    let a = filled(128, 5408, 7).mapv(|v| v as f32);
    let b = filled(5408, 128, 8).mapv(|v| v as f32);
    let c0 = filled(128, 128, 9).mapv(|v| v as f32);
    let run = |threads| {
        crate::set_num_threads(threads);
        let mut c = c0.clone();
        gemm_with(Backend::Gemm, 1.0, a.view(), b.view(), 1.0, &mut c.view_mut()).unwrap();
        c
    };
    let one = run(1);
    let two = run(2);
    crate::set_num_threads(0);
    assert!(one.iter().zip(&two).all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn tensor_matmul_2d_and_batched() {
    // [[1,2],[3,4]]·[[5,6],[7,8]] = [[19,22],[43,50]]
    let a = Tensor::<f64>::from_vec(&[2, 2], vec![1., 2., 3., 4.]);
    let b = Tensor::<f64>::from_vec(&[2, 2], vec![5., 6., 7., 8.]);
    assert_eq!(a.matmul(&b).to_vec(), vec![19., 22., 43., 50.]);
    // aᵀ·b = [[1,3],[2,4]]·b = [[26,30],[38,44]];  a·bᵀ = [[17,23],[39,53]]
    assert_eq!(a.matmul_t(&b, true, false).to_vec(), vec![26., 30., 38., 44.]);
    assert_eq!(a.matmul_t(&b, false, true).to_vec(), vec![17., 23., 39., 53.]);
    let batch = Tensor::stack(0, &[&a, &b]);
    let out = batch.matmul(&b);
    assert_eq!(out.shape(), &[2, 2, 2]);
    // b·b = [[67,78],[91,106]]
    assert_eq!(out.to_vec(), vec![19., 22., 43., 50., 67., 78., 91., 106.]);
    let out = batch.matmul_t(&batch, false, true);
    // b·bᵀ = [[61,83],[83,113]]
    assert_eq!(out.slice_batch(1, 2).to_vec(), vec![61., 83., 83., 113.]);
    let one = Tensor::stack(0, &[&b]);
    assert_eq!(batch.matmul(&one).to_vec(), out_of(&batch, &b));
    assert!(a.try_matmul(&Tensor::zeros(&[3, 2])).is_err());
    assert!(a.try_matmul(&Tensor::zeros(&[2])).is_err());
    assert!(batch.try_matmul(&Tensor::zeros(&[3, 2, 2])).is_err());
}

fn out_of(batch: &Tensor<f64>, b: &Tensor<f64>) -> Vec<f64> {
    batch.matmul(b).to_vec()
}

#[test]
fn backend_names_round_trip() {
    for b in Backend::available() {
        assert_eq!(Backend::from_name(b.name()), Some(b));
        assert!(!b.describe().is_empty());
    }
    assert_eq!(Backend::from_name("cuda"), None);
}

/// The `openblas` back end really calls the system library: OpenBLAS answers with
/// its own configuration string.
#[cfg(feature = "openblas")]
#[test]
fn openblas_is_linked_and_answers() {
    let d = Backend::Blas.describe();
    assert!(d.starts_with("OpenBLAS (") && d.contains("kernels for core"), "{d}");
}
