//! 06-cnn-mnist: the seed CNN, Conv2D(32, 3×3, relu) → MaxPool2D(2×2) → Flatten →
//! Dense(128, relu) → Dense(10, softmax), trained with `fit` on MNIST for one epoch
//! and evaluated on the 10,000 test images.
//!
//! MNIST is read from `$NN_DATA_DIR/mnist` (the four IDX files, raw or gzipped).
//! Without it, the same architecture trains on the embedded 8×8 digits instead (and
//! says so), so the example always runs.
//!
//! Run: `cargo run --release -p nn --example 06-cnn-mnist`
//! (on MNIST: `NN_DATA_DIR=../shared/data cargo run --release -p nn --example 06-cnn-mnist`)

use std::path::PathBuf;
use std::time::Instant;

use nn::data::{digits, mnist};
use nn::prelude::*;

/// The training images used from MNIST's 60,000: enough for ~97% after one epoch
/// while keeping the run short on two cores.
const MNIST_TRAIN: usize = 30_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mnist_dir = std::env::var_os("NN_DATA_DIR").map(|d| PathBuf::from(d).join("mnist")).filter(|d| d.is_dir());
    // The data, the epochs to train and the test accuracy the run must reach.
    let (train, test, epochs, min_accuracy) = match &mnist_dir {
        Some(dir) => {
            let started = Instant::now();
            let sets = mnist::load_mnist(dir)?;
            // Pixels are stored as bytes 0..=255; scale_by maps them to [0, 1] as each
            // batch is formed, without converting the whole set to f32.
            let subset: Vec<usize> = (0..MNIST_TRAIN.min(sets.train.len())).collect();
            let train = sets.train.subset(&subset)?.scale_by(1.0 / 255.0)?;
            let test = sets.test.scale_by(1.0 / 255.0)?;
            println!("MNIST from {} ({:.1} s to read)", dir.display(), started.elapsed().as_secs_f64());
            (train, test, 1, 0.95)
        }
        None => {
            println!("NN_DATA_DIR/mnist not found: training on the embedded 8×8 digits instead");
            let parts = digits::load_as(digits::Layout::Image, true).split_stratified(&[0.8, 0.2], 0)?;
            let [train, test]: [Dataset; 2] = parts.try_into().expect("two parts");
            (train, test, 15, 0.93)
        }
    };
    println!("{} training and {} test images of shape {:?}", train.len(), test.len(), train.sample_shape());

    // The seed CNN for this image size and 10 classes.
    let mut model = Sequential::new(ModelSpec::seed_cnn(train.sample_shape(), 10), 42)?;
    print!("{}", model.summary());

    // Adam with Keras's defaults (lr 1e-3), batch 128. `Verbosity::Auto` draws a
    // Keras-style progress bar on a terminal and prints one line per epoch otherwise.
    let mut optimizer = Adam::new(AdamConfig::new(1e-3))?;
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 };
    let batch = if mnist_dir.is_some() { 128 } else { 32 };
    let config = FitConfig { seed: 0, verbosity: Verbosity::Auto, ..FitConfig::new(epochs, batch) };
    let history = fit(&mut model, &mut optimizer, &loss, &train, None, &config, &mut [])?;
    let seconds: f64 = history.epochs.iter().map(|e| e.train_seconds).sum();
    println!("trained {epochs} epoch(s) in {seconds:.1} s ({:.0} images/s)", (epochs * train.len()) as f64 / seconds);

    let result = evaluate(&model, &loss, &test, 1000)?;
    let accuracy = result.get("accuracy").expect("classification reports accuracy");
    println!("test loss {:.4}, accuracy {:.2}% on {} images", result.loss, 100.0 * accuracy, test.len());
    assert!(accuracy >= min_accuracy, "test accuracy {accuracy} is below {min_accuracy}");
    Ok(())
}
