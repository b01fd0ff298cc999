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

/// Training sequences of `--data adding:LENGTH`.
pub const ADDING_TRAIN: usize = 10_000;
/// Test sequences of `--data adding:LENGTH`.
pub const ADDING_TEST: usize = 1_000;
/// The fixed data seed of `--data adding:LENGTH`, so that `evaluate` sees the same
/// test set as `fit` (the run's `--seed` still drives everything else).
pub const ADDING_SEED: u64 = 1997;

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
        DataSource::Adding(length) => {
            let tt = nn_data::adding::train_test(*length, ADDING_TRAIN, ADDING_TEST, ADDING_SEED)?;
            (tt.train, Some(tt.test))
        }
    })
}

/// The scale that maps a source's raw pixel values onto `[0, 1]`, for image sources.
fn pixel_scale(source: &DataSource) -> Option<f64> {
    match source {
        DataSource::Digits => Some(1.0 / 16.0),
        DataSource::Mnist(_) | DataSource::FashionMnist(_) => Some(1.0 / 255.0),
        DataSource::Csv(_) | DataSource::Adding(_) => None,
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
        // Values in [0, 1) and 0/1 markers: already on a good scale.
        (None, _) if matches!(source, DataSource::Adding(_)) => None,
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

/// Parses `--classes`: ranges `a-b` (inclusive) and single classes, comma-separated,
/// e.g. `0-4`, `5-9`, `1,3,7`; the order given is the new class order.
pub fn parse_classes(text: &str) -> Result<Vec<usize>> {
    let bad = |why: &str| CliError::Usage(format!("--classes `{text}`: {why} (expected e.g. 0-4, 5-9 or 1,3,7)"));
    let mut out: Vec<usize> = Vec::new();
    for part in text.split(',').map(str::trim) {
        let num = |s: &str| s.trim().parse::<usize>().map_err(|_| bad(&format!("`{s}` is not a class index")));
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if lo > hi {
            return Err(bad(&format!("the range {lo}-{hi} is empty")));
        }
        for c in lo..=hi {
            if out.contains(&c) {
                return Err(bad(&format!("class {c} is given twice")));
            }
            out.push(c);
        }
    }
    Ok(out)
}

/// The samples of `data` whose class is in `classes`, relabelled `classes[i] → i`, in
/// stored order (selected with [`Dataset::subset`]); the class names follow (the old
/// names, or the old indices as text). Scaling is kept.
///
/// # Errors
/// [`CliError::Usage`] for real-valued targets or a class the data does not have.
pub fn keep_classes(data: &Dataset, classes: &[usize]) -> Result<Dataset> {
    let (Some(labels), Some(k)) = (data.targets().labels(), data.num_classes()) else {
        return Err(CliError::Usage(format!("--classes needs class targets, but {} has real values", data.name())));
    };
    if let Some(&c) = classes.iter().find(|&&c| c >= k) {
        return Err(CliError::Usage(format!("--classes: class {c} does not exist ({} has {k} classes)", data.name())));
    }
    let mut map = vec![None; k];
    for (new, &old) in classes.iter().enumerate() {
        map[old] = Some(new);
    }
    let indices: Vec<usize> = (0..labels.len()).filter(|&i| map[labels[i]].is_some()).collect();
    let picked = data.subset(&indices)?;
    let relabelled: Vec<usize> = indices.iter().filter_map(|&i| map[labels[i]]).collect();
    let targets = nn_data::Targets::classes(relabelled, classes.len())?;
    let names: Vec<String> = classes
        .iter()
        .map(|&c| data.class_names().and_then(|n| n.get(c).cloned()).unwrap_or_else(|| c.to_string()))
        .collect();
    let out = match picked.raw_bytes() {
        Some(bytes) => {
            let mut d = Dataset::from_bytes(picked.name(), bytes.to_vec(), &picked.shape(), targets)?;
            for s in picked.scalers() {
                d = d.with_scaler(s.clone())?;
            }
            d
        }
        None => Dataset::from_tensor(picked.name(), picked.features(), targets)?,
    };
    Ok(out.with_class_names(names)?)
}

/// The first `n` samples of each class after a shuffle seeded with `seed`, kept in
/// stored order (a class with fewer samples keeps them all).
///
/// # Errors
/// [`CliError::Usage`] for real-valued targets or `n = 0`.
pub fn first_per_class(data: &Dataset, n: usize, seed: u64) -> Result<Dataset> {
    let (Some(labels), Some(k)) = (data.targets().labels(), data.num_classes()) else {
        return Err(CliError::Usage(format!("--per-class needs class targets, but {} has real values", data.name())));
    };
    if n == 0 {
        return Err(CliError::Usage("--per-class must be at least 1".into()));
    }
    let order = nn_data::split::shuffled_split(labels.len(), &[1.0], seed)?.pop().unwrap_or_default();
    let mut taken = vec![0usize; k];
    let mut keep: Vec<usize> = order
        .into_iter()
        .filter(|&i| {
            let c = &mut taken[labels[i]];
            *c += 1;
            *c <= n
        })
        .collect();
    keep.sort_unstable();
    Ok(data.subset(&keep)?)
}

/// Applies `--classes` (to every part) and `--per-class` (to the training part) to
/// prepared data.
///
/// # Errors
/// As [`parse_classes`], [`keep_classes`] and [`first_per_class`].
pub fn restrict(mut p: Prepared, classes: Option<&str>, per_class: Option<usize>, seed: u64) -> Result<Prepared> {
    if let Some(text) = classes {
        let classes = parse_classes(text)?;
        p.train = keep_classes(&p.train, &classes)?;
        p.validation = p.validation.map(|d| keep_classes(&d, &classes)).transpose()?;
        p.test = p.test.map(|d| keep_classes(&d, &classes)).transpose()?;
    }
    if let Some(n) = per_class {
        p.train = first_per_class(&p.train, n, seed)?;
    }
    if p.train.is_empty() {
        return Err(CliError::Usage("no training sample is left after --classes / --per-class".into()));
    }
    Ok(p)
}
