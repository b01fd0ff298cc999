//! 03-custom-loop: a training loop written by hand instead of `nn::train::fit`, on the
//! embedded 8×8 digits. Shows how a model's parameters are wired to an optimizer
//! each step: forward on a fresh graph in training mode, loss, backward, drop the
//! graph, `bind` each trainable parameter to its gradient by name, `step`, then
//! apply BatchNormalization's moving statistics. There is no `zero_grad`: every step
//! builds a new graph and `backward` returns fresh gradients.
//!
//! Run: `cargo run --release -p nn --example 03-custom-loop`

use std::sync::Arc;
use std::time::Instant;

use nn::data::digits;
use nn::prelude::*;

/// Fraction of `data` whose highest-scoring class is its label (evaluation mode).
fn accuracy(model: &Sequential, data: &Dataset) -> Result<f64, Box<dyn std::error::Error>> {
    let probs = model.predict(&data.features())?; // [N, 10], no dropout, BatchNorm's moving statistics
    let predicted = probs.argmax(1);
    let labels = data.targets().labels().expect("class labels");
    let hits = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    Ok(hits as f64 / labels.len() as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1,797 digits as 64 pixels in [0, 1]; 80% to train, 20% to test, classes balanced.
    let data = digits::load_as(digits::Layout::Flat, true);
    let parts = data.split_stratified(&[0.8, 0.2], 0)?;
    let (train, test) = (&parts[0], &parts[1]);
    println!("digits: {} training and {} test samples", train.len(), test.len());

    // 64 → Dense(64, relu) → BatchNorm → Dropout(0.2) → Dense(10, softmax).
    let spec = ModelSpec::new(
        &[64],
        vec![
            LayerSpec::dense(64, Activation::Relu),
            LayerSpec::batch_norm(),
            LayerSpec::dropout(0.2),
            LayerSpec::dense(10, Activation::Softmax),
        ],
    );
    let mut model = Sequential::new(spec, 1)?;
    print!("{}", model.summary());

    let mut optimizer = Adam::new(AdamConfig::new(3e-3))?;
    // The model ends in a softmax: train on its logits with the loss's stable
    // log-softmax (PyTorch's CrossEntropyLoss on a model without the softmax).
    let loss_fn = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 };
    let batcher = Batcher::new(32)?.shuffled(7); // a new order each epoch, drawn from (7, epoch)
    let mut rng = seeded_rng(11); // dropout masks
    let epochs = 15;
    let before = accuracy(&model, test)?;
    let started = Instant::now();

    for epoch in 0..epochs {
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        for batch in batcher.batches(train, epoch as u64) {
            let labels = batch.targets.labels().expect("class labels");

            // Forward in training mode (dropout on, BatchNorm on batch statistics).
            // The graph binds every trainable weight by name, e.g. "layers.0.kernel".
            let mut g = Graph::new();
            let x = g.input(batch.features);
            let mut ctx = ForwardCtx::new(Mode::Train, &mut rng);
            let logits = model.forward_logits(&mut g, x, &mut ctx)?;
            let loss = loss_fn.compute(&mut g, logits, &LossTargets::Classes(labels))?;
            loss_sum += g.value(loss).item() as f64 * labels.len() as f64;
            seen += labels.len();

            // Backward: one gradient per bound parameter name.
            let mut grads = g.backward(loss)?;
            // BatchNorm's new moving mean and variance: not gradients, applied below.
            let state_updates = std::mem::take(&mut ctx.state_updates);
            // The graph holds a reference to each weight; dropping it first lets
            // `Arc::make_mut` below update the weights in place instead of copying them.
            drop(g);

            // Pair each trainable parameter with its gradient by name, in the model's
            // parameter order (deterministic), and update them all in one step.
            let mut bound = bind(
                model
                    .parameters_mut()
                    .iter_mut()
                    .filter(|p| p.trainable) // the moving statistics are not trained
                    .map(|p| (p.name.as_str(), Arc::make_mut(&mut p.value))),
                grads.iter_mut(),
            )?;
            // Optional extras go here, before the step: `clip_grad_norm(&mut bound, 1.0)?`,
            // `Regularizer::l2(1e-4).apply(&mut bound)?`, `schedule.apply(&mut optimizer)?`.
            optimizer.step(&mut bound)?;
            model.apply_state_updates(state_updates)?;
        }
        if epoch % 5 == 4 || epoch == 0 {
            println!(
                "epoch {:>2}: training loss {:.4}, test accuracy {:.2}%",
                epoch + 1,
                loss_sum / seen as f64,
                100.0 * accuracy(&model, test)?
            );
        }
    }

    let after = accuracy(&model, test)?;
    println!(
        "{epochs} epochs ({} optimizer steps) in {:.2} s; test accuracy {:.2}% (untrained: {:.2}%)",
        optimizer.iterations(),
        started.elapsed().as_secs_f64(),
        100.0 * after,
        100.0 * before
    );
    assert_eq!(optimizer.iterations(), epochs as u64 * batcher.num_batches(train.len()) as u64);
    assert!(after > 0.94, "test accuracy {after} is below 94%");
    Ok(())
}
