//! Turning a `--data` source into training, validation and test sets.

use nn_data::csv::{Column, CsvOptions, TargetKind};
use nn_data::{digits, mnist, Dataset, FeatureSchema, Granularity, Scaler, TargetScaler, Targets, Task};
use nn_tensor::Tensor;

use crate::args::{DataArgs, DataSource, ScaleKind, TaskKind};
use crate::error::{CliError, Result};

/// The parts of a dataset a run uses, scaled with statistics of the training part.
pub struct Prepared {
    /// The training part (regression targets standardised when `target_scaler` is set).
    pub train: Dataset,
    /// The validation part (absent when the split is 0), scaled as the training part.
    pub validation: Option<Dataset>,
    /// The test part: features scaled, targets in their own units.
    pub test: Option<Dataset>,
    /// The feature transforms, saved with the model and applied by `predict`.
    pub scalers: Vec<Scaler>,
    /// Classification or regression.
    pub task: Task,
    /// The CSV feature columns (absent for other sources).
    pub schema: Option<FeatureSchema>,
    /// The standardisation of real-valued targets (regression on CSV data).
    pub target_scaler: Option<TargetScaler>,
    /// The CSV target column's header name.
    pub target_name: Option<String>,
}

/// The CSV target column: `--target` as typed, else the last column.
pub fn target_column(target: Option<&str>) -> Column {
    match target {
        None => Column::Last,
        Some(t) => column(t),
    }
}

/// A column of `--target`, `--drop` or `--categorical`: the column whose header
/// equals the text, else, for a whole number, the column at that 0-based index
/// (resolved against the header by [`nn_data::csv`]: [`Column::NameOrIndex`]).
fn column(t: &str) -> Column {
    Column::NameOrIndex(t.to_string())
}

/// Checks that `--{name}` is in [0, 1).
pub fn check_fraction(name: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && (0.0..1.0).contains(&v)) {
        return Err(CliError::Usage(format!("--{name} must be in [0, 1), got {v}")));
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

/// How a CSV file is read: `--target`, `--task`, `--drop`, `--categorical`,
/// `--delimiter`, `--missing`.
pub fn csv_options(args: &DataArgs) -> Result<CsvOptions> {
    Ok(CsvOptions {
        targets: vec![target_column(args.target.as_deref())],
        kind: match args.task {
            None => TargetKind::Auto,
            Some(TaskKind::Classification) => TargetKind::Classes,
            Some(TaskKind::Regression) => TargetKind::Real,
        },
        delimiter: parse_delimiter(&args.delimiter)?,
        drop: args.drop.iter().map(|c| column(c)).collect(),
        categorical: args.categorical.iter().map(|c| column(c)).collect(),
        missing: args.missing.into(),
    })
}

/// The file stem of `path`, naming a dataset read from it.
pub fn file_stem(path: &std::path::Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

/// Parses `--delimiter`.
pub fn parse_delimiter(text: &str) -> Result<u8> {
    nn_data::csv::parse_delimiter(text).map_err(|e| CliError::Usage(format!("--delimiter {text:?}: {e}")))
}

/// What [`load`] read: the data, its own test part, and for a CSV file its schema and
/// how the task was chosen.
pub struct Loaded {
    /// The whole data (the training part when the source has its own test part).
    pub data: Dataset,
    /// The source's own test part (MNIST, the adding problem).
    pub test: Option<Dataset>,
    /// The CSV feature columns.
    pub schema: Option<FeatureSchema>,
    /// Classification or regression, and why (for a CSV file).
    pub task: (Task, Option<String>),
    /// The CSV target column's header name (the first, for several).
    pub target_name: Option<String>,
}

/// Loads the whole of `args.data`, unscaled, printing what a CSV file's reading
/// decided (the task, dropped rows).
pub fn load(args: &DataArgs) -> Result<Loaded> {
    let plain = |data: Dataset, test: Option<Dataset>| {
        let task = if data.num_classes().is_some() { Task::Classification } else { Task::Regression };
        Loaded { data, test, schema: None, task: (task, None), target_name: None }
    };
    if args.task.is_some() && !matches!(args.data, DataSource::Csv(_)) {
        return Err(CliError::Usage(format!("--task applies to CSV data; {} has its own task", args.data)));
    }
    Ok(match &args.data {
        DataSource::Digits => plain(digits::load(), None),
        DataSource::Mnist(dir) => {
            let dir = match dir {
                Some(d) => d.clone(),
                None => nn_data::download::mnist(&nn_data::download::DownloadOptions {
                    progress: true,
                    ..Default::default()
                })?,
            };
            let tt = mnist::load_mnist(&dir)?;
            plain(tt.train, Some(tt.test))
        }
        DataSource::FashionMnist(dir) => {
            let tt = mnist::load_fashion_mnist(dir)?;
            plain(tt.train, Some(tt.test))
        }
        DataSource::Csv(path) => {
            let table = nn_data::csv::read_table(path, &csv_options(args)?)?;
            if table.dropped_rows > 0 {
                println!("--missing drop: dropped {} rows with a missing value", table.dropped_rows);
            }
            if table.rows_with_missing > 0 {
                let categories =
                    table.schema.columns.iter().any(|c| matches!(c.kind, nn_data::ColumnKind::Categorical { .. }));
                println!(
                    "--missing mean: {} rows have missing values, replaced by their column's training mean{}",
                    table.rows_with_missing,
                    if categories { " (a missing category by the training frequency of each category)" } else { "" }
                );
            }
            let reason = if args.task.is_some() {
                None
            } else {
                let other = match table.task {
                    Task::Classification => "regression",
                    Task::Regression => "classification",
                };
                Some(format!("{} ({}; pass --task {other} to override)", table.task, table.task_reason))
            };
            Loaded {
                target_name: table.target_names.first().cloned(),
                data: table.data,
                test: None,
                schema: Some(table.schema),
                task: (table.task, reason),
            }
        }
        DataSource::Adding(length) => {
            let tt = nn_data::adding::train_test(*length, ADDING_TRAIN, ADDING_TEST, ADDING_SEED)?;
            plain(tt.train, Some(tt.test))
        }
        DataSource::Text(_) => {
            return Err(CliError::Usage(format!(
                "--data {}: text is read by `nn-cli fit` (a language model); evaluate a text model with `--data text:…` through fit's run folder",
                args.data
            )))
        }
        DataSource::Ratings { .. } => {
            return Err(CliError::Usage(format!(
                "--data {}: ratings train a recommender with `nn-cli fit`; other commands read them through `nn-cli recommend`",
                args.data
            )))
        }
    })
}

/// The scale that maps a source's raw pixel values onto `[0, 1]`, for image sources.
fn pixel_scale(source: &DataSource) -> Option<f64> {
    match source {
        DataSource::Digits => Some(1.0 / 16.0),
        DataSource::Mnist(_) | DataSource::FashionMnist(_) => Some(1.0 / 255.0),
        DataSource::Csv(_) | DataSource::Text(_) | DataSource::Adding(_) | DataSource::Ratings { .. } => None,
    }
}

/// Splits `data` into training, validation and test parts as [`prepare`] does.
fn split(
    args: &DataArgs,
    seed: u64,
    hold_test: bool,
    data: Dataset,
    test: Option<Dataset>,
) -> Result<(Dataset, Option<Dataset>, Option<Dataset>)> {
    Ok(match test {
        Some(test) => {
            if args.validation_split > 0.0 {
                let (train, val) = data.split_validation(args.validation_split)?;
                (train, Some(val), Some(test))
            } else {
                (data, None, Some(test))
            }
        }
        None => {
            let test_split = if hold_test { args.test_split } else { 0.0 };
            let keep = 1.0 - test_split;
            let fractions = [keep * (1.0 - args.validation_split), keep * args.validation_split, test_split];
            let mut parts = if data.num_classes().is_some() {
                data.split_stratified(&fractions, seed)?
            } else {
                data.split_shuffled(&fractions, seed)?
            };
            let test = parts.pop().filter(|t| !t.is_empty());
            let val = parts.pop().filter(|v| !v.is_empty());
            let train = parts.pop().unwrap_or_else(|| data.clone());
            (train, val, test)
        }
    })
}

/// The test part a `fit` run with configuration `args`, `seed` and `hold_test` held
/// out of `data` (unscaled, targets in their own units); `None` when it held none.
pub fn held_out_test(args: &DataArgs, seed: u64, hold_test: bool, data: Dataset) -> Result<Option<Dataset>> {
    Ok(split(args, seed, hold_test, data, None)?.2)
}

/// Splits and scales the data of `args` for training, with `seed` for the splits.
///
/// - Sources with a test set (MNIST) keep it; the validation part is the last
///   `validation_split` of the training set, as Keras's `validation_split`.
/// - Sources without one (digits, CSV) are split once, seeded, into training,
///   validation and test parts (stratified when the targets are classes), since their
///   rows are often sorted by class. `hold_test = false` (`--no-test`) or
///   `--test-split 0` holds no test part out.
/// - Image pixels are scaled to [0, 1]; CSV features as `--scale` says, fitted on the
///   training part only, after `--missing mean`'s imputer (also fitted there).
/// - Real-valued CSV targets are standardised with the training part's mean and
///   standard deviation in the training and validation parts; the test part keeps
///   them in their own units.
pub fn prepare(args: &DataArgs, seed: u64, hold_test: bool) -> Result<Prepared> {
    check_fraction("validation-split", args.validation_split)?;
    check_fraction("test-split", args.test_split)?;
    let loaded = load(args)?;
    if let Some(line) = &loaded.task.1 {
        println!("task: {line}");
    }
    let (train, validation, test) = split(args, seed, hold_test, loaded.data, loaded.test)?;
    if train.is_empty() {
        return Err(CliError::Usage(format!("the training part of {} is empty", args.data)));
    }
    if matches!(train.targets(), Targets::Real(_)) && train.len() < 2 {
        return Err(CliError::Usage(format!(
            "the training part of {} has 1 sample; regression needs at least 2 (to learn the targets' spread): use more rows or a smaller --test-split / --validation-split",
            args.data
        )));
    }
    let mut scalers: Vec<Scaler> = Vec::new();
    if let Some(schema) = loaded.schema.as_ref().filter(|s| s.missing == nn_data::Missing::Mean) {
        check_imputable(&train, schema)?;
        scalers.push(Scaler::fit_impute_mean(&train)?);
    }
    let imputed = match scalers.first() {
        Some(s) => train.clone().with_scaler(s.clone())?,
        None => train.clone(),
    };
    match (pixel_scale(&args.data), args.scale) {
        (Some(s), _) => scalers.push(Scaler::constant(s, 0.0)?),
        // Values in [0, 1) and 0/1 markers: already on a good scale.
        (None, _) if matches!(args.data, DataSource::Adding(_)) => {}
        (None, ScaleKind::Standard) => scalers.push(Scaler::fit_standard(&imputed, Granularity::PerFeature)?),
        (None, ScaleKind::Minmax) => scalers.push(Scaler::fit_min_max(&imputed, Granularity::PerFeature, 0.0, 1.0)?),
        (None, ScaleKind::None) => {}
    }
    let apply = |d: Dataset| -> Result<Dataset> {
        let mut d = d;
        for s in &scalers {
            d = d.with_scaler(s.clone())?;
        }
        Ok(d)
    };
    // Regression targets of a CSV file: standardised on the training part.
    let target_scaler = match (train.targets(), &args.data) {
        (Targets::Real(t), DataSource::Csv(_)) => {
            let k = t.shape()[1..].iter().product::<usize>().max(1);
            Some(TargetScaler::fit(&t.to_vec(), k)?)
        }
        _ => None,
    };
    let standardise = |d: Dataset| -> Result<Dataset> {
        match (&target_scaler, d.targets()) {
            (Some(ts), Targets::Real(t)) => {
                let z = Tensor::try_from_vec(t.shape(), ts.apply(&t.to_vec())).map_err(nn_data::DataError::from)?;
                Ok(d.with_targets(Targets::real(z)?)?)
            }
            _ => Ok(d),
        }
    };
    Ok(Prepared {
        train: standardise(apply(train)?)?,
        validation: validation.map(|v| apply(v).and_then(standardise)).transpose()?,
        test: test.map(apply).transpose()?,
        scalers: scalers.clone(),
        task: loaded.task.0,
        schema: loaded.schema,
        target_scaler,
        target_name: loaded.target_name,
    })
}

/// Refuses, under `--missing mean`, a feature column with no value in the training
/// part `train` (raw features, `NaN` where missing): the imputer would have no mean
/// to fill it with.
fn check_imputable(train: &Dataset, schema: &FeatureSchema) -> Result<()> {
    let x = train.features().to_vec();
    let width = schema.width();
    let mut start = 0;
    for column in &schema.columns {
        let w = column.width();
        let empty = x.chunks_exact(width.max(1)).all(|row| row[start..start + w].iter().all(|v| v.is_nan()));
        if empty {
            let name = nn_layers::clip(&column.name);
            return Err(CliError::Usage(format!(
                "column {name:?} has no value in the {} rows of the training part, so --missing mean has no training mean to fill it with: ignore it with --drop {name:?}",
                train.len()
            )));
        }
        start += w;
    }
    Ok(())
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
    let targets = Targets::classes(relabelled, classes.len())?;
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
