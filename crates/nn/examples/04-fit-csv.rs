//! 04-fit-csv: classification from a CSV file with `nn::train::fit`, the Keras-style
//! path: read the CSV (header row, target column), split it stratified into
//! training, validation and test parts, standardise the features with the training
//! part's statistics, train an MLP with early stopping on the validation loss, and
//! report the test accuracy with a confusion matrix.
//!
//! The data: `$NN_DATA_DIR/iris/iris.csv` (Fisher's iris: 150 flowers, 4
//! measurements, 3 species as text) when that file exists; otherwise the embedded
//! 8×8 digits written out as a CSV file of 1,797 rows (64 pixel columns and an
//! integer `digit` column) in a temporary folder.
//!
//! Run: `cargo run --release -p nn --example 04-fit-csv`
//! (or `NN_DATA_DIR=../shared/data cargo run --release -p nn --example 04-fit-csv`)

use std::fmt::Write as _;
use std::path::PathBuf;

use nn::data::csv::{self, Column, CsvOptions, TargetKind};
use nn::data::digits;
use nn::prelude::*;

/// Writes the embedded digits as CSV text: a header, then one row per image.
fn digits_csv() -> String {
    let data = digits::load_as(digits::Layout::Flat, false); // pixel counts 0..=16
    let mut text = (0..64).map(|i| format!("r{}c{}", i / 8, i % 8)).collect::<Vec<_>>().join(",");
    text += ",digit\n";
    let pixels = data.features();
    let labels = data.targets().labels().expect("class labels");
    for (row, label) in pixels.array().outer_iter().zip(labels) {
        for v in row.iter() {
            write!(text, "{v},").unwrap();
        }
        writeln!(text, "{label}").unwrap();
    }
    text
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let iris = std::env::var_os("NN_DATA_DIR").map(|d| PathBuf::from(d).join("iris/iris.csv")).filter(|p| p.is_file());
    // What each file needs: iris's target is its last column (the default) and holds
    // text, so it is read as classes. The digit column holds integers, which would be
    // read as a regression target: `TargetKind::Classes` says they are labels.
    let (path, options, min_accuracy) = match iris {
        Some(path) => (path, CsvOptions::default(), 0.85),
        None => {
            let path = temp.path().join("digits.csv");
            std::fs::write(&path, digits_csv())?;
            println!("NN_DATA_DIR/iris/iris.csv not found: using the embedded digits, written to a CSV file");
            let options = CsvOptions::default().target(Column::Name("digit".into())).kind(TargetKind::Classes);
            (path, options, 0.93)
        }
    };

    // 1. Read the CSV. Features become f32 columns; text labels become class indices
    //    in sorted order, and the sorted labels the class names.
    let data = csv::read(&path, &options)?;
    let classes = data.num_classes().expect("a class target");
    let names = data.class_names().map(<[String]>::to_vec).unwrap_or_default();
    println!(
        "{}: {} rows, {} features, {} classes {:?}",
        path.display(),
        data.len(),
        data.sample_len(),
        classes,
        names
    );

    // 2. 70% / 15% / 15%, each class in the same proportion in every part.
    let parts = data.split_stratified(&[0.7, 0.15, 0.15], 42)?;
    // 3. Standardise each feature with the training part's mean and deviation only.
    let scaler = Scaler::fit_standard(&parts[0], Granularity::PerFeature)?;
    let scaled = |part: &Dataset| part.clone().with_scaler(scaler.clone());
    let (train, val, test) = (scaled(&parts[0])?, scaled(&parts[1])?, scaled(&parts[2])?);
    println!("split: {} training, {} validation, {} test rows", train.len(), val.len(), test.len());

    // 4. An MLP: features → Dense(32, relu) → Dense(classes, softmax).
    let spec = ModelSpec::new(
        train.sample_shape(),
        vec![LayerSpec::dense(32, Activation::Relu), LayerSpec::dense(classes, Activation::Softmax)],
    );
    let mut model = Sequential::new(spec, 0)?;
    let (trainable, _) = model.num_parameters();
    println!("model: {trainable} trainable parameters");

    // 5. fit: Adam, batch 16, up to 200 epochs, stopping 15 epochs after the best
    //    validation loss and going back to that epoch's weights.
    let mut optimizer = Adam::new(AdamConfig::new(3e-3))?;
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 };
    let mut early = EarlyStopping::new("val_loss", 15);
    let config = FitConfig { seed: 1, verbosity: Verbosity::Silent, ..FitConfig::new(200, 16) };
    let history = fit(&mut model, &mut optimizer, &loss, &train, Some(&val), &config, &mut [&mut early])?;
    for log in history.epochs.iter().filter(|e| e.epoch == 1 || e.epoch % 10 == 0) {
        println!("epoch {:>3}: {}", log.epoch, nn::train::format_metrics(&log.metrics));
    }
    let seconds: f64 = history.epochs.iter().map(|e| e.train_seconds).sum();
    println!(
        "{} epochs in {seconds:.2} s; {}",
        history.epochs.len(),
        history.stopped.as_deref().unwrap_or("ran every epoch")
    );

    // 6. Test: accuracy and the confusion matrix (rows: true class, columns: predicted).
    let result = evaluate(&model, &loss, &test, 256)?;
    let accuracy = result.get("accuracy").expect("classification reports accuracy");
    println!("\ntest loss {:.4}, accuracy {:.2}% on {} rows", result.loss, 100.0 * accuracy, test.len());
    print!("{}", result.confusion.as_ref().expect("a confusion matrix").render(&names));
    assert!(accuracy >= min_accuracy, "test accuracy {accuracy} is below {min_accuracy}");
    Ok(())
}
