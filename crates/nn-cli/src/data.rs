//! Turning a `--data` source into training, validation and test sets.

use nn_data::csv::{Column, CsvOptions};
use nn_data::{digits, mnist, Dataset, Granularity, Scaler};

use crate::args::{DataSource, ScaleKind};
use crate::error::{CliError, Result};

/// The parts of a dataset a run uses, scaled with statistics of the training part.
pub struct Prepared {
    /// The training part.
    pub train: Dataset,
    /// The validation part (absent when the split is 0).
    pub validation: Option<Dataset>,
    /// The test part.
    pub test: Option<Dataset>,
    /// The feature transforms, saved with the model and applied by `predict`.
    pub scalers: Vec<Scaler>,
}

/// The CSV target column: a header name, or a 0-based index when it parses as one.
pub fn target_column(target: Option<&str>) -> Column {
    match target {
        None => Column::Last,
        Some(t) => match t.parse::<usize>() {
            Ok(i) => Column::Index(i),
            Err(_) => Column::Name(t.to_string()),
        },
    }
}

fn check_fraction(name: &str, v: f64, allow_zero: bool) -> Result<()> {
    let ok = v.is_finite() && v < 1.0 && (v > 0.0 || (allow_zero && v == 0.0));
    if !ok {
        let range = if allow_zero { "[0, 1)" } else { "(0, 1)" };
        return Err(CliError::Usage(format!("--{name} must be in {range}, got {v}")));
    }
    Ok(())
}

/// Loads the whole of `source` as `(data, test part if the source has its own)`, unscaled.
pub fn load(source: &DataSource, target: Option<&str>) -> Result<(Dataset, Option<Dataset>)> {
    Ok(match source {
        DataSource::Digits => (digits::load(), None),
        DataSource::Mnist(dir) => {
            let tt = mnist::load_mnist(dir)?;
            (tt.train, Some(tt.test))
        }
        DataSource::FashionMnist(dir) => {
            let tt = mnist::load_fashion_mnist(dir)?;
            (tt.train, Some(tt.test))
        }
        DataSource::Csv(path) => {
            let data = nn_data::csv::read(path, &CsvOptions::default().target(target_column(target)))?;
            (data, None)
        }
    })
}

/// The scale that maps a source's raw pixel values onto `[0, 1]`, for image sources.
fn pixel_scale(source: &DataSource) -> Option<f64> {
    match source {
        DataSource::Digits => Some(1.0 / 16.0),
        DataSource::Mnist(_) | DataSource::FashionMnist(_) => Some(1.0 / 255.0),
        DataSource::Csv(_) => None,
    }
}

/// Splits and scales `source` for training.
///
/// - Sources with a test set (MNIST) keep it; the validation part is the last
///   `validation_split` of the training set, as Keras's `validation_split`.
/// - Sources without one (digits, CSV) are split once, seeded, into training,
///   validation and test parts (stratified when the targets are classes), since their
///   rows are often sorted by class.
/// - Image pixels are scaled to [0, 1]; CSV features as `scale` says, fitted on the
///   training part only.
pub fn prepare(
    source: &DataSource,
    target: Option<&str>,
    validation_split: f64,
    test_split: f64,
    scale: ScaleKind,
    seed: u64,
) -> Result<Prepared> {
    check_fraction("validation-split", validation_split, false)?;
    check_fraction("test-split", test_split, false)?;
    let (data, test) = load(source, target)?;
    let (train, validation, test) = match test {
        Some(test) => {
            if validation_split > 0.0 {
                let (train, val) = data.split_validation(validation_split)?;
                (train, Some(val), Some(test))
            } else {
                (data, None, Some(test))
            }
        }
        None => {
            let keep = 1.0 - test_split;
            let fractions = [keep * (1.0 - validation_split), keep * validation_split, test_split];
            let mut parts = if data.num_classes().is_some() {
                data.split_stratified(&fractions, seed)?
            } else {
                data.split_shuffled(&fractions, seed)?
            };
            let test = parts.pop();
            let val = parts.pop().filter(|v| !v.is_empty());
            let train = parts.pop().expect("three fractions give three parts");
            (train, val, test)
        }
    };
    if train.is_empty() {
        return Err(CliError::Usage(format!("the training part of {source} is empty")));
    }
    let scaler = match (pixel_scale(source), scale) {
        (Some(s), _) => Some(Scaler::constant(s, 0.0)?),
        (None, ScaleKind::Standard) => Some(Scaler::fit_standard(&train, Granularity::PerFeature)?),
        (None, ScaleKind::Minmax) => Some(Scaler::fit_min_max(&train, Granularity::PerFeature, 0.0, 1.0)?),
        (None, ScaleKind::None) => None,
    };
    let scalers: Vec<Scaler> = scaler.into_iter().collect();
    let apply = |d: Dataset| -> Result<Dataset> {
        let mut d = d;
        for s in &scalers {
            d = d.with_scaler(s.clone())?;
        }
        Ok(d)
    };
    Ok(Prepared {
        train: apply(train)?,
        validation: validation.map(apply).transpose()?,
        test: test.map(apply).transpose()?,
        scalers: scalers.clone(),
    })
}
