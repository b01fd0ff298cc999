//! Example 02: a model as data. Builds the seed CNN from its JSON description,
//! prints its Keras-style summary, and runs a forward pass on a batch of random
//! 28×28 grey images, in evaluation mode and in training mode (with the loss and
//! the gradients of one step).
//!
//! Run with `cargo run -p nn-layers --example layers_tour`.

use nn_layers::loss::{Loss, LossTargets};
use nn_layers::{ForwardCtx, Graph, Mode, ModelSpec, Sequential, Tensor};
use nn_tensor::random::seeded_rng;

const SEED_CNN: &str = r#"{
    "format_version": 1,
    "input_shape": [28, 28, 1],
    "layers": [
        {"type": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"},
        {"type": "MaxPool2D", "pool_size": 2},
        {"type": "Flatten"},
        {"type": "Dense", "units": 128, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"}
    ]
}"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = ModelSpec::from_json(SEED_CNN)?;
    assert_eq!(spec, ModelSpec::seed_cnn(&[28, 28, 1], 10));
    let model = Sequential::<f32>::new(spec, 42)?;
    print!("{}", model.summary());

    // A batch of 4 images with pixels in [0, 1), NHWC.
    let mut rng = seeded_rng(7);
    let x = Tensor::<f32>::random_uniform(&[4, 28, 28, 1], 0.0, 1.0, &mut rng)?;

    // Evaluation: class probabilities, each row summing to 1.
    let probs = model.predict(&x)?;
    println!("\npredictions {:?}:", probs.shape());
    for (n, row) in probs.array().outer_iter().enumerate() {
        let best = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(k, _)| k).unwrap_or(0);
        println!("  image {n}: class {best}, p = {:.4}, row sum {:.6}", row[best], row.sum());
    }

    // Training: logits (the final softmax left out), a stable loss from logits, and
    // the gradient of every parameter by name.
    let labels = [3usize, 1, 4, 1];
    let mut g = Graph::new();
    let xv = g.input(&x);
    let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
    let logits = model.forward_logits(&mut g, xv, &mut ctx)?;
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 }
        .with_logits()
        .expect("a categorical loss");
    let l = loss.compute(&mut g, logits, &LossTargets::Classes(&labels))?;
    println!("\ntraining loss {:.4} (ln 10 = {:.4} for a uniform guess)", g.value(l).item(), 10f32.ln());
    for (name, grad) in g.backward(l)?.iter() {
        let norm = grad.array().iter().map(|v| v * v).sum::<f32>().sqrt();
        println!("  ∂loss/∂{name:<16} {:?}  norm {norm:.3e}", grad.shape());
    }
    Ok(())
}
