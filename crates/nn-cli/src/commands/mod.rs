//! The subcommands.

pub mod finetune;
pub mod fit;
pub mod serve;
pub mod tune;

use std::path::Path;

use nn_data::{Dataset, Targets};
use nn_layers::loss::Loss;
use nn_layers::Sequential;
use nn_tensor::Tensor;

use crate::args::{EvaluateArgs, PredictArgs, SummaryArgs};
use crate::data;
use crate::error::{CliError, Result};

pub use nn_train::ModelMetadata as Metadata;

/// The loss `fit` and `evaluate` use for `data`'s targets with `model`'s output:
/// sparse categorical cross-entropy for classes, MSE for real values.
pub fn loss_for(targets: &Targets, model: &Sequential) -> Loss {
    match targets {
        Targets::Classes { .. } => Loss::SparseCategoricalCrossentropy { from_logits: !model.ends_with_softmax() },
        Targets::Real(_) => Loss::MeanSquaredError,
    }
}

/// Loads a model folder and its metadata.
pub fn load_model(dir: &Path) -> Result<(Sequential, Metadata)> {
    Ok(nn_train::load_model(dir)?)
}

fn with_scalers(mut d: Dataset, scalers: &[nn_data::Scaler]) -> Result<Dataset> {
    for s in scalers {
        d = d.with_scaler(s.clone())?;
    }
    Ok(d)
}

/// `nn-cli evaluate`: loss, accuracy and the confusion matrix on the data's test part
/// (or the whole data when it has none).
pub fn evaluate(args: EvaluateArgs) -> Result<()> {
    let (mut model, mut meta) = load_model(&args.model)?;
    if let Some(dir) = &args.head_from {
        finetune::swap_head(&mut model, dir)?;
        meta.class_names = load_model(dir)?.1.class_names;
    }
    let target = args.target.clone().or(meta.target.clone());
    let (all, test) = data::load(&args.data, target.as_deref())?;
    if test.is_none() {
        println!(
            "note: {} has no separate test set, so all its rows are used, including those the model was trained on",
            args.data
        );
    }
    let mut part = test.unwrap_or(all);
    if let Some(text) = &args.classes {
        part = data::keep_classes(&part, &data::parse_classes(text)?)?;
    }
    let part = with_scalers(part, &meta.scalers)?;
    let loss = loss_for(part.targets(), &model);
    let e = nn_train::evaluate(&model, &loss, &part, args.batch_size)?;
    println!("{} samples of {}", part.len(), args.data);
    println!("loss: {:.4}", e.loss);
    for (k, v) in &e.metrics {
        println!("{k}: {v:.4}");
    }
    if let Some(cm) = &e.confusion {
        let names = meta.class_names.clone().or_else(|| part.class_names().map(|n| n.to_vec())).unwrap_or_default();
        println!("\nconfusion matrix (rows: target, columns: predicted)\n{}", cm.render(&names));
    }
    if args.timing {
        time_inference(&model, &part, args.batch_size)?;
    }
    Ok(())
}

/// Prints inference throughput at `batch_size` (median of 3 timed passes after one
/// warm-up pass) and the median single-sample latency over 200 calls (after 20
/// warm-up calls): the protocol of the reference scripts in ../shared/peers.
fn time_inference(model: &Sequential, data: &Dataset, batch_size: usize) -> Result<()> {
    use std::time::Instant;
    let x = data.features();
    let n = data.len();
    nn_train::predict(model, &x, batch_size)?;
    let mut passes = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        nn_train::predict(model, &x, batch_size)?;
        passes.push(t.elapsed().as_secs_f64());
    }
    passes.sort_by(f64::total_cmp);
    let singles: Vec<Tensor<f32>> = (0..220.min(n))
        .map(|i| x.try_slice_batch(i, i + 1))
        .collect::<std::result::Result<_, _>>()
        .map_err(nn_train::TrainError::from)?;
    let mut lat = Vec::new();
    for (i, s) in singles.iter().enumerate() {
        let t = Instant::now();
        nn_train::predict(model, s, 1)?;
        if i >= 20 {
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    lat.sort_by(f64::total_cmp);
    let median_lat = lat.get(lat.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "inference: {:.0} samples/s at batch {batch_size} (median of 3 passes over {n} samples); single-sample latency {median_lat:.3} ms (median of {})",
        n as f64 / passes[1],
        lat.len()
    );
    Ok(())
}

/// Reads features for prediction: an IDX image file (magic number first) or a CSV
/// file with a header, whose target column (if present) is dropped.
fn read_inputs(path: &Path, model: &Sequential, meta: &Metadata) -> Result<Tensor<f32>> {
    let bytes = std::fs::read(path).map_err(|e| CliError::io(path, e))?;
    let looks_idx = bytes.len() >= 4 && ((bytes[0] == 0 && bytes[1] == 0) || (bytes[0] == 0x1f && bytes[1] == 0x8b));
    let features = if looks_idx {
        let arr = nn_data::idx::parse_idx(&bytes, path)?;
        let n = arr.dims().first().copied().unwrap_or(0);
        let mut shape = vec![n];
        shape.extend_from_slice(model.input_shape());
        arr.to_f32_tensor().try_into_reshape(&shape).map_err(|_| {
            CliError::Usage(format!(
                "{}: IDX dimensions {:?} do not fit the model's input shape {:?}",
                path.display(),
                arr.dims(),
                model.input_shape()
            ))
        })?
    } else {
        read_csv_features(path, &bytes, model, meta)?
    };
    Ok(meta.scale(&features)?)
}

fn read_csv_features(path: &Path, bytes: &[u8], model: &Sequential, meta: &Metadata) -> Result<Tensor<f32>> {
    let want: usize = model.input_shape().iter().product();
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes);
    let headers = reader.headers().map_err(|e| CliError::io(path, e))?.clone();
    // Drop the target column when the file still has it.
    let drop = if headers.len() == want + 1 {
        match meta.target.as_deref().map(|t| data::target_column(Some(t))) {
            Some(nn_data::csv::Column::Name(n)) => headers.iter().position(|h| h == n),
            Some(nn_data::csv::Column::Index(i)) => Some(i),
            _ => Some(headers.len() - 1),
        }
    } else {
        None
    };
    let mut values = Vec::new();
    let mut rows = 0;
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| CliError::io(path, format!("line {line}: {e}")))?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let fields: Vec<&str> = record.iter().enumerate().filter(|(j, _)| Some(*j) != drop).map(|(_, f)| f).collect();
        if fields.len() != want {
            return Err(CliError::Usage(format!(
                "{}: line {line} has {} feature columns, the model expects {want}",
                path.display(),
                fields.len()
            )));
        }
        for (j, f) in fields.iter().enumerate() {
            let v: f32 = f.trim().parse().ok().filter(|v: &f32| v.is_finite()).ok_or_else(|| {
                CliError::Usage(format!(
                    "{}: line {line}, column {}: `{f}` is not a finite number",
                    path.display(),
                    j + 1
                ))
            })?;
            values.push(v);
        }
        rows += 1;
    }
    let mut shape = vec![rows];
    shape.extend_from_slice(model.input_shape());
    Tensor::try_from_vec(&shape, values).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}

/// `nn-cli predict`: class, class name and probability for each input row.
pub fn predict(args: PredictArgs) -> Result<()> {
    let (model, meta) = load_model(&args.model)?;
    let x = read_inputs(&args.input, &model, &meta)?;
    let p = nn_train::predict(&model, &x, args.batch_size)?;
    let regression = meta.class_names.is_none() && !model.ends_with_softmax();
    let k = p.outputs.shape().get(1).copied().unwrap_or(1).max(1);
    let mut text = String::new();
    if regression {
        text.push_str("row,prediction\n");
        for (i, row) in p.outputs.to_vec().chunks(k).enumerate() {
            let vals: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            text.push_str(&format!("{i},{}\n", vals.join(";")));
        }
    } else {
        text.push_str("row,class,name,probability\n");
        let names = meta.class_names.unwrap_or_default();
        for (i, (&c, row)) in p.classes.iter().zip(p.outputs.to_vec().chunks(k)).enumerate() {
            let name = names.get(c).cloned().unwrap_or_else(|| c.to_string());
            text.push_str(&format!("{i},{c},{name},{:.6}\n", row[c]));
        }
    }
    // A reader that closes the pipe early (`| head`) is not an error.
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::io(Path::new("<stdout>"), e)),
        _ => Ok(()),
    }
}

/// `nn-cli summary`: the Keras-style table of a preset, a spec file or a saved model.
pub fn summary(args: SummaryArgs) -> Result<()> {
    let (input_shape, classes) = match &args.data {
        None => (vec![28, 28, 1], 10),
        Some(source) => {
            let (d, _) = data::load(source, None)?;
            (d.sample_shape().to_vec(), d.num_classes().unwrap_or(1))
        }
    };
    let model = match args.model.as_str() {
        name if fit::PRESETS.contains(&name) => {
            Sequential::new(fit::preset(&args.model, &input_shape, classes, 128, 0.0, false)?, 0)?
        }
        other => {
            let path = Path::new(other);
            if path.is_dir() {
                load_model(path)?.0
            } else {
                Sequential::new(fit::read_spec(path)?, 0)?
            }
        }
    };
    println!("{}", model.summary());
    Ok(())
}
