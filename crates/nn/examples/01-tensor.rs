//! 01-tensor: the `Tensor` type. Creating tensors, NumPy-style broadcasting, reshaping
//! and reductions, a stable softmax, matrix products (GEMM) checked against a plain
//! triple loop in f64, and the errors a bad shape gives instead of a panic.
//!
//! Run: `cargo run --release -p nn --example 01-tensor`

use std::time::Instant;

use nn::prelude::*;
use nn::tensor::random::seeded_rng;

fn main() -> Result<(), TensorError> {
    // Which GEMM kernels this machine uses, and on how many threads.
    println!("back end: {}\n", nn::tensor::backend_summary());

    // --- Creating tensors -------------------------------------------------------
    // Values are given in row-major order; the shape says how to read them.
    let x = Tensor::<f32>::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]);
    println!("x {:?} =\n{}", x.shape(), x.array());
    assert_eq!((x.ndim(), x.len()), (2, 6));
    let zeros = Tensor::<f32>::zeros(&[2, 3]);
    let sevens = Tensor::<f32>::full(&[3], 7.0);
    assert_eq!(zeros.sum(), 0.0);
    assert_eq!(sevens.to_vec(), [7.0, 7.0, 7.0]);

    // --- Broadcasting -------------------------------------------------------------
    // A [3] bias is added to every row of a [2, 3] batch, as in NumPy and PyTorch.
    let bias = Tensor::<f32>::from_vec(&[3], vec![10., 20., 30.]);
    let shifted = &x + &bias;
    assert_eq!(shifted.to_vec(), [11., 22., 33., 14., 25., 36.]);
    // A [2, 1] column divides each row by its own value; a scalar scales everything.
    let col = Tensor::<f32>::from_vec(&[2, 1], vec![1., 2.]);
    assert_eq!((&x / &col).to_vec(), [1., 2., 3., 2., 2.5, 3.]);
    assert_eq!((&x * 0.5).to_vec(), [0.5, 1., 1.5, 2., 2.5, 3.]);

    // --- Shapes -------------------------------------------------------------------
    let r = x.reshape(&[3, 2]); // same values, read as 3 rows of 2
    assert_eq!(r.to_vec(), [1., 2., 3., 4., 5., 6.]);
    let t = x.t(); // transpose: a stride change, no copy
    assert_eq!((t.shape(), t.to_contiguous().to_vec()), (&[3, 2][..], vec![1., 4., 2., 5., 3., 6.]));
    let both = Tensor::concat(0, &[&x, &x]); // [4, 3]
    let first_row = both.slice_batch(0, 1); // [1, 3]
    assert_eq!((both.shape(), first_row.to_vec()), (&[4, 3][..], vec![1., 2., 3.]));

    // --- Reductions and softmax ---------------------------------------------------
    println!("column sums {}, row means {}", x.sum_axes(&[0], false).array(), x.mean_axes(&[1], false).array());
    assert_eq!(x.sum_axes(&[0], false).to_vec(), [5., 7., 9.]);
    assert_eq!(x.mean_axes(&[1], false).to_vec(), [2., 5.]);
    // Softmax over the last axis is computed stably: logits of 1000 do not overflow.
    let logits = Tensor::<f32>::from_vec(&[2, 3], vec![1000., 1001., 1002., -1., 0., 1.]);
    let probs = logits.softmax(1);
    println!("softmax of [1000, 1001, 1002] = {}", probs.slice_batch(0, 1).array());
    // Both rows differ by a constant only, so they get the same probabilities.
    assert!(probs.slice_batch(0, 1).all_close(&probs.slice_batch(1, 2), 1e-6, 0.0));
    assert_eq!(probs.argmax(1).iter().copied().collect::<Vec<_>>(), [2, 2]);

    // --- Matrix products ----------------------------------------------------------
    // [2, 3] · [3, 2] by hand: row 0 of x times the columns of w.
    let w = Tensor::<f32>::from_vec(&[3, 2], vec![1., 0., 0., 1., 1., -1.]);
    let xw = x.matmul(&w);
    assert_eq!(xw.to_vec(), [1. + 3., 2. - 3., 4. + 6., 5. - 6.]);

    // A larger product, timed, and checked against a triple loop in f64.
    let (m, k, n) = (256, 512, 384);
    let mut rng = seeded_rng(42);
    let a = Tensor::<f32>::random_normal(&[m, k], 0.0, 1.0, &mut rng)?;
    let b = Tensor::<f32>::random_normal(&[k, n], 0.0, 1.0, &mut rng)?;
    let started = Instant::now();
    let reps = 20;
    let mut c = a.matmul(&b);
    for _ in 1..reps {
        c = a.matmul(&b);
    }
    let seconds = started.elapsed().as_secs_f64() / reps as f64;
    let (av, bv, cv) = (a.as_slice().unwrap(), b.as_slice().unwrap(), c.as_slice().unwrap());
    let mut max_err = 0.0f64;
    for i in 0..m {
        for j in 0..n {
            let exact: f64 = (0..k).map(|p| av[i * k + p] as f64 * bv[p * n + j] as f64).sum();
            max_err = max_err.max((cv[i * n + j] as f64 - exact).abs());
        }
    }
    println!(
        "[{m}, {k}] · [{k}, {n}] in {:.3} ms ({:.1} GFLOP/s), largest difference from f64: {max_err:.2e}",
        seconds * 1e3,
        2.0 * (m * k * n) as f64 / seconds / 1e9
    );
    // Each entry sums 512 products of N(0, 1) values (|entry| ~ 23): f32 rounding
    // stays far below 1e-3.
    assert!(max_err < 1e-3, "GEMM differs from the f64 reference by {max_err}");

    // A batch of matrices times one matrix: [4, 2, 3] · [3, 2] → [4, 2, 2].
    let batch = Tensor::stack(0, &[&x, &x, &x, &x]);
    assert_eq!(batch.matmul(&w).shape(), [4, 2, 2]);

    // f64 tensors work the same way (gradient checks use them); `cast` converts.
    let x64: Tensor<f64> = x.cast();
    assert_eq!(x64.matmul(&w.cast()).to_vec(), [4., -1., 10., -1.]);

    // --- Errors -------------------------------------------------------------------
    // Every operation that can fail on its input has a `try_` form returning a
    // TensorError that names the operation and the shapes; the plain form panics
    // with the same message.
    let err = x.try_matmul(&x).unwrap_err();
    println!("\n[2, 3] · [2, 3]: {err}");
    assert!(matches!(err, TensorError::ShapeMismatch { .. }));
    let err = x.try_add(&Tensor::zeros(&[2])).unwrap_err();
    println!("[2, 3] + [2]:   {err}");
    let err = x.try_reshape(&[4, 2]).unwrap_err();
    println!("reshape to [4, 2]: {err}");
    let err = Tensor::<f32>::try_from_vec(&[2, 2], vec![1., 2., 3.]).unwrap_err();
    println!("4 elements from 3 values: {err}");
    Ok(())
}
