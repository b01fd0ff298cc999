//! 05-regression: predicting a real number. The data is Friedman's first benchmark
//! function (J. H. Friedman, "Multivariate Adaptive Regression Splines", Annals of
//! Statistics, 1991), generated here from a seed:
//! `y = 10·sin(π·x₀·x₁) + 20·(x₂ − 0.5)² + 10·x₃ + 5·x₄ + ε`, with ten features
//! `xᵢ ~ U(0, 1)` of which five are unused, and noise `ε ~ N(0, 1)`.
//!
//! Shows standardised features *and* targets (fitted on the training part only), a
//! linear output with mean squared error, early stopping on the validation loss,
//! predictions mapped back to the target's units, and the test RMSE against the
//! baseline that always predicts the training mean. The noise alone makes an RMSE
//! of 1.0 the best any model can reach.
//!
//! Run: `cargo run --release -p nn --example 05-regression`

use std::f64::consts::PI;

use nn::data::split::shuffled_split;
use nn::data::TargetScaler;
use nn::prelude::*;
use nn::train::RegressionReport;

const SAMPLES: usize = 4000;
const FEATURES: usize = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Generate the data: features [N, 10] and targets [N].
    let mut rng = seeded_rng(2024);
    let x = Tensor::<f32>::random_uniform(&[SAMPLES, FEATURES], 0.0, 1.0, &mut rng)?;
    let noise = Tensor::<f32>::random_normal(&[SAMPLES], 0.0, 1.0, &mut rng)?;
    let y: Vec<f32> = x
        .array()
        .outer_iter()
        .zip(noise.array().iter())
        .map(|(row, &e)| {
            let v: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            let clean = 10.0 * (PI * v[0] * v[1]).sin() + 20.0 * (v[2] - 0.5).powi(2) + 10.0 * v[3] + 5.0 * v[4];
            (clean + e as f64) as f32
        })
        .collect();

    // 2. Split the rows 70% / 15% / 15% in a seeded random order.
    let parts = shuffled_split(SAMPLES, &[0.7, 0.15, 0.15], 7)?;
    let rows = |idx: &[usize]| -> (Tensor<f32>, Vec<f32>) { (x.gather_rows(idx), idx.iter().map(|&i| y[i]).collect()) };
    let (train_x, train_y) = rows(&parts[0]);
    let (val_x, val_y) = rows(&parts[1]);
    let (test_x, test_y) = rows(&parts[2]);

    // 3. Standardise the targets: the model learns z = (y − mean) / std, which keeps
    //    the loss and gradients at unit scale whatever the target's units.
    let target_scaler = TargetScaler::fit(&train_y, 1)?;
    println!("targets: training mean {:.3}, standard deviation {:.3}", target_scaler.mean[0], target_scaler.std[0]);
    let dataset = |name: &str, features: Tensor<f32>, y: &[f32]| -> Result<Dataset, DataError> {
        let z = Tensor::from_vec(&[y.len(), 1], target_scaler.apply(y));
        Dataset::from_tensor(name, features, Targets::real(z)?)
    };
    let train = dataset("friedman1-train", train_x, &train_y)?;
    // 4. Standardise the features with the training part's statistics too.
    let scaler = Scaler::fit_standard(&train, Granularity::PerFeature)?;
    let train = train.with_scaler(scaler.clone())?;
    let val = dataset("friedman1-val", val_x, &val_y)?.with_scaler(scaler.clone())?;
    let test = dataset("friedman1-test", test_x, &test_y)?.with_scaler(scaler)?;
    println!("{} training, {} validation, {} test rows of {FEATURES} features", train.len(), val.len(), test.len());

    // 5. An MLP with a linear output: 10 → 64 relu → 64 relu → 1.
    let spec = ModelSpec::new(
        &[FEATURES],
        vec![
            LayerSpec::dense(64, Activation::Relu),
            LayerSpec::dense(64, Activation::Relu),
            LayerSpec::dense(1, Activation::Linear),
        ],
    );
    let mut model = Sequential::new(spec, 3)?;
    let mut optimizer = Adam::new(AdamConfig::new(2e-3))?;
    let loss = Loss::MeanSquaredError;
    let mut early = EarlyStopping::new("val_loss", 10); // keeps the best epoch's weights
    let config = FitConfig { seed: 5, verbosity: Verbosity::Silent, ..FitConfig::new(150, 32) };
    let history = fit(&mut model, &mut optimizer, &loss, &train, Some(&val), &config, &mut [&mut early])?;
    for log in history.epochs.iter().filter(|e| e.epoch == 1 || e.epoch % 20 == 0) {
        println!("epoch {:>3}: {}", log.epoch, nn::train::format_metrics(&log.metrics));
    }
    println!("{} epochs; {}", history.epochs.len(), history.stopped.as_deref().unwrap_or("ran every epoch"));

    // 6. Predict the test rows, map z back to y, and compare with the baseline that
    //    predicts the training mean for every row (scikit-learn's DummyRegressor).
    let z = predict(&model, &test.features(), 256)?.outputs; // [N, 1], standardised
    let predicted = target_scaler.invert(z.as_slice().expect("contiguous"));
    // RMSE, MAE and R² in the target's units, and the RMSE of the training mean.
    let report = RegressionReport::new(&predicted, &test_y, &target_scaler.mean).expect("one prediction per target");
    let (model_rmse, r2, baseline_rmse) = (report.rmse, report.r2, report.baseline_rmse);
    println!(
        "\ntest RMSE {model_rmse:.3} (the noise alone: 1.0), R² {r2:.3}; constant-mean baseline RMSE {baseline_rmse:.3}"
    );
    for i in 0..3 {
        println!("  row {i}: target {:>7.3}, predicted {:>7.3}", test_y[i], predicted[i]);
    }
    assert!(model_rmse < 0.4 * baseline_rmse, "RMSE {model_rmse} is not well below the baseline's {baseline_rmse}");
    assert!(r2 > 0.85, "R² {r2} is too low");
    Ok(())
}
