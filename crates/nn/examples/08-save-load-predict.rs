//! 08-save-load-predict: the life of a trained model. Trains a small MLP on the
//! embedded digits, saves it with metadata of our own (a struct deriving serde's
//! `Serialize`), loads it back in a "new process" (nothing shared but the folder),
//! predicts, and checks that every output is identical bit for bit to the original
//! model's. Also shows that saving is deterministic: the same model gives the same
//! file bytes.
//!
//! Run: `cargo run --release -p nn --example 08-save-load-predict`

use nn::data::digits;
use nn::layers::{MODEL_FILE, WEIGHTS_FILE};
use nn::prelude::*;
use serde::{Deserialize, Serialize};

/// What the application needs besides the weights, saved in model.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AppInfo {
    class_names: Vec<String>,
    /// What raw pixel counts (0..=16) are multiplied by before they reach the model.
    pixel_scale: f64,
    test_accuracy: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Train: the digits as 64 pixels in [0, 1], an MLP, 10 epochs.
    let data = digits::load_as(digits::Layout::Flat, true);
    let parts = data.split_stratified(&[0.8, 0.2], 1)?;
    let (train, test) = (&parts[0], &parts[1]);
    let mut model = Sequential::new(ModelSpec::mlp(&[64], 64, 10, 0.1), 8)?;
    let mut optimizer = Adam::new(AdamConfig::new(3e-3))?;
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 };
    let config = FitConfig { verbosity: Verbosity::Silent, ..FitConfig::new(10, 32) };
    fit(&mut model, &mut optimizer, &loss, train, None, &config, &mut [])?;
    let accuracy = evaluate(&model, &loss, test, 256)?.get("accuracy").expect("accuracy");
    println!("trained: test accuracy {:.2}%", 100.0 * accuracy);
    assert!(accuracy > 0.93, "test accuracy {accuracy} is below 93%");

    // Save: model.json (architecture + our metadata) and weights.safetensors.
    let dir = tempfile::tempdir()?;
    let saved = dir.path().join("digits-mlp");
    let info = AppInfo {
        class_names: data.class_names().expect("class names").to_vec(),
        pixel_scale: 1.0 / 16.0,
        test_accuracy: accuracy,
    };
    model.save_with_metadata(&saved, &info)?;
    for file in [MODEL_FILE, WEIGHTS_FILE] {
        println!("  {}: {} bytes", saved.join(file).display(), std::fs::metadata(saved.join(file))?.len());
    }

    // Load: only the folder is needed. The metadata comes back as our type.
    let (loaded, info_back) = Sequential::load_with_metadata::<AppInfo>(&saved)?;
    assert_eq!(info_back, info);
    assert_eq!(loaded.spec(), model.spec());
    println!("loaded {} parameters; metadata: {:?}", loaded.num_parameters().0, info_back.class_names);

    // Predict with both models: every probability identical, bit for bit.
    let x = test.features();
    let (before, after) = (model.predict(&x)?, loaded.predict(&x)?);
    assert_eq!(before.shape(), [test.len(), 10]);
    let bits = |t: &Tensor<f32>| t.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    assert_eq!(bits(&before), bits(&after), "predictions differ after loading");
    println!("{} × 10 probabilities identical bit for bit after loading", test.len());

    // The batched predictor gives the classes; show the first few with their names.
    let predictions = predict(&loaded, &x, 128)?;
    let labels = test.targets().labels().expect("labels");
    for (i, (&class, &label)) in predictions.classes.iter().zip(labels).take(5).enumerate() {
        let p = predictions.outputs.get(&[i, class]).expect("in range");
        println!("  test image {i}: predicted {} (p = {p:.3}), label {}", info.class_names[class], label);
    }

    // Saving is deterministic: the same model writes the same bytes, so a saved
    // model can be checked by hash. `save` (no metadata) writes `null` metadata.
    let again = dir.path().join("again");
    loaded.save_with_metadata(&again, &info)?;
    for file in [MODEL_FILE, WEIGHTS_FILE] {
        assert_eq!(std::fs::read(saved.join(file))?, std::fs::read(again.join(file))?, "{file} differs");
    }
    let plain = dir.path().join("plain");
    loaded.save(&plain)?;
    let (_, metadata) = Sequential::<f32>::load(&plain)?;
    assert!(metadata.is_null());
    println!("a second save wrote identical files; a save without metadata loads with null metadata");
    Ok(())
}
