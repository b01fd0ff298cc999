//! A first tour of nn-tensor: shapes, broadcasting, GEMM, reductions, stable softmax.
//!
//! Run: `cargo run --release -p nn-tensor --example tensor_tour`

use nn_tensor::{conv, random, Tensor, TensorError};

fn main() -> Result<(), TensorError> {
    println!("GEMM back end: {}", nn_tensor::backend_summary());

    // A batch of 4 samples with 3 features, and a Dense layer's kernel [in_features, out_features].
    let mut rng = random::seeded_rng(42);
    let x = Tensor::<f32>::random_normal(&[4, 3], 0.0, 1.0, &mut rng)?;
    let kernel = Tensor::<f32>::random_uniform(&[3, 2], -0.5, 0.5, &mut rng)?;
    let bias = Tensor::<f32>::from_vec(&[2], vec![0.1, -0.1]);

    // logits [batch, out_features] = x · W + b (the bias broadcasts over the batch).
    let logits = x.try_matmul(&kernel)?.try_add(&bias)?;
    println!("logits {:?}:\n{}", logits.shape(), logits.array());

    // Stable softmax over the class axis: every row sums to 1.
    let probs = logits.try_softmax(1)?;
    println!("softmax rows sum to {}", probs.try_sum_axes(&[1], false)?.array());
    println!("predicted classes: {}", logits.try_argmax(1)?);

    // Errors name the op and both shapes; nothing panics on a bad shape.
    let err = x.try_matmul(&x).unwrap_err();
    println!("a bad product is an error: {err}");

    // A 3×3 `same` convolution's geometry on a 28×28×1 image (NHWC).
    let g = conv::Conv2dGeometry::new((28, 28, 1), (3, 3), (1, 1), conv::Padding::Same)?;
    println!("same padding keeps {}×{}; each window unfolds to {} values", g.out_h, g.out_w, g.patch_len());
    Ok(())
}
