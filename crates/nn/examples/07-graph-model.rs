//! 07-graph-model: a model that is not a chain (Keras's functional API), as a
//! version-2 `ModelSpec`: named layers, each taking the named outputs it reads. A
//! residual block adds its input back (`Add`), then two poolings of the same feature
//! map run side by side and are joined (`Concatenate`):
//!
//! ```text
//! image ─ stem (conv 3×3) ─┬─ conv_a (3×3, relu) ─ conv_b (3×3) ─ add ─ relu ─┬─ avg_pool ─┬─ concat ─ dense
//!                          └────────────────────────────────────────┘         └─ max_pool ─┘
//! ```
//!
//! Builds it in Rust, checks that its JSON form reads back equal, prints the
//! Keras-style summary with its "Connected to" column, and trains it a few epochs
//! on the embedded 8×8 digits with `fit`.
//!
//! Run: `cargo run --release -p nn --example 07-graph-model`

use nn::data::digits;
use nn::layers::{ConcatenateConfig, Conv2DConfig, PaddingMode};
use nn::prelude::*;

/// A 3×3 convolution with `same` padding (the output keeps the input's height and width).
fn conv(filters: usize, activation: Activation) -> LayerSpec {
    LayerSpec::Conv2D(Conv2DConfig::new(filters, 3).with_padding(PaddingMode::Same).with_activation(activation))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Each node: a name, its layer, and (where it is not simply the node before) the
    // names of its inputs. The model's input is named too.
    let spec = ModelSpec::graph(
        vec![InputSpec { name: "image".into(), shape: vec![8, 8, 1] }],
        vec![
            NodeSpec::named("stem", conv(16, Activation::Relu)).with_inputs(["image"]),
            NodeSpec::named("conv_a", conv(16, Activation::Relu)),
            NodeSpec::named("conv_b", conv(16, Activation::Linear)),
            NodeSpec::named("add", LayerSpec::Add).with_inputs(["stem", "conv_b"]), // the residual connection
            NodeSpec::named("relu", LayerSpec::ReLU),
            NodeSpec::named("avg_pool", LayerSpec::GlobalAveragePooling2D).with_inputs(["relu"]),
            NodeSpec::named("max_pool", LayerSpec::GlobalMaxPooling2D).with_inputs(["relu"]),
            NodeSpec::named("concat", LayerSpec::Concatenate(ConcatenateConfig::default()))
                .with_inputs(["avg_pool", "max_pool"]),
            NodeSpec::named("dense", LayerSpec::dense(10, Activation::Softmax)),
        ],
        vec!["dense".into()],
    );
    // The same model as data: this JSON is what a model.json file holds.
    let json = spec.to_json();
    assert_eq!(ModelSpec::from_json(&json)?, spec);
    println!("the spec as JSON ({} bytes) reads back equal", json.len());

    let mut model = Sequential::new(spec, 5)?;
    print!("{}", model.summary());
    // Parameters are named after their layer: "stem.kernel", "conv_a.bias", ...
    let names: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).collect();
    println!("parameters: {}", names.join(", "));
    assert_eq!(names[0], "stem.kernel");
    assert_eq!(model.output_shape(), [10]);

    // The digits as images [8, 8, 1] in [0, 1]; 70% / 15% / 15%, stratified.
    let parts = digits::load_as(digits::Layout::Image, true).split_stratified(&[0.7, 0.15, 0.15], 3)?;
    let (train, val, test) = (&parts[0], &parts[1], &parts[2]);

    let mut optimizer = Adam::new(AdamConfig::new(3e-3))?;
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 };
    let config = FitConfig { seed: 0, verbosity: Verbosity::Lines, ..FitConfig::new(12, 32) };
    let history = fit(&mut model, &mut optimizer, &loss, train, Some(val), &config, &mut [])?;

    let result = evaluate(&model, &loss, test, 256)?;
    let accuracy = result.get("accuracy").expect("classification reports accuracy");
    let seconds: f64 = history.epochs.iter().map(|e| e.train_seconds).sum();
    println!(
        "{} epochs in {seconds:.1} s; test loss {:.4}, accuracy {:.2}% on {} images",
        history.epochs.len(),
        result.loss,
        100.0 * accuracy,
        test.len()
    );
    assert!(accuracy >= 0.9, "test accuracy {accuracy} is below 90%");
    Ok(())
}
