//! The subcommands.

pub mod export;
pub mod finetune;
pub mod fit;
pub mod generate;
pub mod import;
pub mod recommend;
pub mod serve;
pub mod tune;

use std::path::Path;
use std::sync::OnceLock;

use nn_data::{Dataset, Targets};
use nn_layers::loss::Loss;
use nn_layers::{format_bytes, ModelShapes, ModelSpec, Sequential, StepMemory};
use nn_tensor::Tensor;

use crate::args::{DataSource, EvaluateArgs, MaxMemory, OptimizerKind, PredictArgs, SummaryArgs};
use crate::data;
use crate::error::{CliError, Result};

pub use nn_train::ModelMetadata as Metadata;

/// The loss `fit` and `evaluate` use for `data`'s targets with `model`'s output:
/// sparse categorical cross-entropy for classes, MSE for real values.
pub fn loss_for(targets: &Targets, model: &Sequential) -> Loss {
    match targets {
        Targets::Classes { .. } => {
            Loss::SparseCategoricalCrossentropy { from_logits: !model.ends_with_softmax(), label_smoothing: 0.0 }
        }
        Targets::Real(_) => Loss::MeanSquaredError,
    }
}

/// The loss `fit` trains with: [`loss_for`], with label smoothing `s` on the
/// classification loss.
///
/// # Errors
/// [`CliError::Usage`] for label smoothing (`s > 0`) on real-valued targets, which
/// have no labels to smooth.
pub fn training_loss(targets: &Targets, model: &Sequential, s: f64) -> Result<Loss> {
    match loss_for(targets, model) {
        Loss::SparseCategoricalCrossentropy { from_logits, .. } => {
            Ok(Loss::SparseCategoricalCrossentropy { from_logits, label_smoothing: s })
        }
        _ if s > 0.0 => Err(CliError::Usage("--label-smoothing needs class targets (classification)".into())),
        other => Ok(other),
    }
}

/// Whether a model predicts real values: its saved task, else no class names and no
/// softmax output (models saved before the task was recorded).
fn is_regression(model: &Sequential, meta: &Metadata) -> bool {
    match meta.task {
        Some(task) => task == nn_data::Task::Regression,
        None => meta.class_names.is_none() && !model.ends_with_softmax(),
    }
}

/// Prints RMSE, MAE, R² and the constant-mean baseline of `model` on `data` (features
/// scaled, targets in their own units), mapping the model's standardised outputs back
/// with `ts`; warns when the model does worse than the baseline.
pub fn print_regression(
    model: &Sequential,
    data: &Dataset,
    ts: &nn_data::TargetScaler,
    batch_size: usize,
    prefix: &str,
) -> Result<()> {
    let p = nn_train::predict(model, &data.features(), batch_size)?;
    let predicted = ts.invert(&p.outputs.to_vec());
    let Targets::Real(y) = data.targets() else {
        return Err(CliError::Usage(format!("{}: regression needs real-valued targets", data.name())));
    };
    let r = nn_train::RegressionReport::new(&predicted, &y.to_vec(), &ts.mean).ok_or_else(|| {
        CliError::Usage(format!(
            "{}: {} target values do not fit the model's {} outputs",
            data.name(),
            y.len(),
            ts.outputs()
        ))
    })?;
    // R² is undefined when the targets do not vary (one sample, or all equal).
    let r2 = if r.r2.is_finite() { format!("{:.4}", r.r2) } else { "n/a".into() };
    println!(
        "{prefix}rmse: {:.4} - {prefix}mae: {:.4} - {prefix}r2: {r2} - baseline rmse: {:.4} (predicting the training mean) ({} samples)",
        r.rmse,
        r.mae,
        r.baseline_rmse,
        data.len()
    );
    if r.worse_than_baseline() {
        println!(
            "warning: the model does worse than predicting the training mean (rmse {:.4} vs {:.4}); try more epochs, another --lr or more data",
            r.rmse, r.baseline_rmse
        );
    }
    Ok(())
}

/// Prints the figures of `model` on a test part after training, each line starting
/// with `lead`: RMSE, MAE, R² and the mean baseline in the target's units when the
/// targets were standardised (`ts`), otherwise the loss and metrics.
pub fn print_test(
    model: &Sequential,
    test: &Dataset,
    ts: Option<&nn_data::TargetScaler>,
    batch_size: usize,
    lead: &str,
) -> Result<()> {
    if let Some(ts) = ts {
        return print_regression(model, test, ts, batch_size, &format!("{lead}test "));
    }
    let e = nn_train::evaluate(model, &loss_for(test.targets(), model), test, batch_size)?;
    let metrics: Vec<String> = e.metrics.iter().map(|(k, v)| format!("test {k}: {v:.4}")).collect();
    println!("{lead}test loss: {:.4} - {} ({} samples)", e.loss, metrics.join(" - "), test.len());
    Ok(())
}

/// The most memory a model may need (`--max-memory`), and where that figure comes
/// from (for the refusal's message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit {
    /// Bytes; `None` for `unlimited`.
    pub bytes: Option<u64>,
    /// Who set it.
    pub origin: LimitOrigin,
}

/// Where a [`MemoryLimit`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitOrigin {
    /// `--max-memory`.
    Flag,
    /// The environment variable `NN_MAX_MEMORY`.
    Env,
    /// This machine's memory, bounded by what the named source says
    /// ([`nn_layers::machine_memory`]).
    Machine(&'static str),
    /// [`FALLBACK_LIMIT`], where the machine's memory cannot be read.
    Fallback,
}

/// The limit where the machine's memory cannot be read: 8 GiB.
pub const FALLBACK_LIMIT: u64 = 8 << 30;

/// The batch size `summary` sizes a training step at (`fit`'s default).
const SUMMARY_BATCH: usize = 32;

static MEMORY_LIMIT: OnceLock<MemoryLimit> = OnceLock::new();

impl MemoryLimit {
    /// The limit of this run: `--max-memory` when given, else `NN_MAX_MEMORY` (`env`,
    /// when set and not empty), else this machine's memory.
    ///
    /// # Errors
    /// [`CliError::Usage`] for an `NN_MAX_MEMORY` that is not a size.
    pub fn choose(flag: Option<MaxMemory>, env: Option<&str>) -> Result<MemoryLimit> {
        if let Some(MaxMemory(bytes)) = flag {
            return Ok(MemoryLimit { bytes, origin: LimitOrigin::Flag });
        }
        if let Some(text) = env.filter(|t| !t.trim().is_empty()) {
            let bytes =
                nn_layers::parse_memory_size(text).map_err(|e| CliError::Usage(format!("NN_MAX_MEMORY: {e}")))?;
            return Ok(MemoryLimit { bytes, origin: LimitOrigin::Env });
        }
        Ok(MemoryLimit::machine())
    }

    /// This machine's memory, or [`FALLBACK_LIMIT`].
    pub fn machine() -> MemoryLimit {
        match nn_layers::machine_memory() {
            Some(m) => MemoryLimit { bytes: Some(m.bytes), origin: LimitOrigin::Machine(m.source) },
            None => MemoryLimit { bytes: Some(FALLBACK_LIMIT), origin: LimitOrigin::Fallback },
        }
    }

    /// `4.0 GiB (--max-memory, default: this machine's memory)`; `None` when unlimited.
    fn describe(&self) -> Option<String> {
        let bytes = self.bytes?;
        let from = match self.origin {
            LimitOrigin::Flag => "--max-memory".to_string(),
            LimitOrigin::Env => "NN_MAX_MEMORY; --max-memory overrides it".to_string(),
            LimitOrigin::Machine("MemTotal") => "--max-memory, default: this machine's memory".to_string(),
            LimitOrigin::Machine(source) => format!("--max-memory, default: this machine's memory, here {source}"),
            LimitOrigin::Fallback => {
                format!(
                    "--max-memory, default: {} where the machine's memory cannot be read",
                    format_bytes(FALLBACK_LIMIT.into())
                )
            }
        };
        Some(format!("{} ({from})", format_bytes(bytes.into())))
    }

    /// Whether `need` bytes are over the limit.
    fn exceeded_by(&self, need: u128) -> bool {
        self.bytes.is_some_and(|b| need > u128::from(b))
    }
}

/// Sets the limit every command checks (`main` does, once, from `--max-memory` and
/// `NN_MAX_MEMORY`); later calls are ignored.
pub fn set_memory_limit(limit: MemoryLimit) {
    let _ = MEMORY_LIMIT.set(limit);
}

/// The limit set by [`set_memory_limit`], else this machine's memory.
pub fn memory_limit() -> MemoryLimit {
    *MEMORY_LIMIT.get_or_init(MemoryLimit::machine)
}

/// Optimizer slots per trainable parameter: Adam and AdamW keep two moments,
/// momentum SGD, RMSprop and Adagrad one tensor, plain SGD none.
pub fn optimizer_slots(kind: OptimizerKind) -> usize {
    match kind {
        OptimizerKind::Sgd => 0,
        OptimizerKind::Momentum | OptimizerKind::Nesterov | OptimizerKind::Rmsprop | OptimizerKind::Adagrad => 1,
        OptimizerKind::Adam | OptimizerKind::Adamw => 2,
    }
}

/// `about 7.4 GiB for one training step at batch 4096 (parameters 0.8 GiB, activations 6.6 GiB)`.
fn needs(m: &StepMemory, what: &str) -> String {
    format!(
        "about {} for {what} (parameters {}, activations {})",
        format_bytes(m.total()),
        format_bytes(m.parameters),
        format_bytes(m.activations)
    )
}

/// Checks, from its shapes alone (nothing allocated), that one training step of
/// `spec` at batch size `batch` with `optimizer_slots` slots per parameter fits the
/// [`memory_limit`] (f32 parameters and activations; the estimate is
/// [`nn_layers::Footprint`]'s). Returns the shapes.
///
/// # Errors
/// The spec's own errors ([`ModelSpec::shapes`]), and [`CliError::Usage`] naming the
/// estimate, its parts and the limit when it is over.
pub fn check_training(spec: &ModelSpec, batch: usize, optimizer_slots: usize) -> Result<ModelShapes> {
    let shapes = spec.shapes()?;
    let step = shapes.footprint(std::mem::size_of::<f32>()).training_step(batch, optimizer_slots);
    within_limit(&step, &format!("one training step at batch {batch}"), "--batch-size")?;
    Ok(shapes)
}

/// [`CliError::Usage`] naming the estimate `step` (of `what`) and the limit when
/// `step` exceeds the [`memory_limit`], with what to change: `batch_flag` (the flag
/// of the batch size) or, when the parameters alone are over, the model's size.
fn within_limit(step: &StepMemory, what: &str, batch_flag: &str) -> Result<()> {
    let limit = memory_limit();
    let remedy = if limit.exceeded_by(step.parameters) {
        "the parameters alone are over it: use a smaller model, or raise --max-memory".to_string()
    } else {
        format!("lower {batch_flag} or the model's size, or raise --max-memory")
    };
    match (limit.exceeded_by(step.total()), limit.describe()) {
        (true, Some(max)) => {
            Err(CliError::Usage(format!("the model needs {}; the limit is {max}; {remedy}", needs(step, what))))
        }
        _ => Ok(()),
    }
}

/// As [`check_training`], for one inference batch of `batch` samples (`batch_flag`: the
/// flag that sets it, named in the error).
///
/// # Errors
/// As [`check_training`].
pub fn check_inference(spec: &ModelSpec, batch: usize, batch_flag: &str) -> Result<ModelShapes> {
    let shapes = spec.shapes()?;
    let step = shapes.footprint(std::mem::size_of::<f32>()).inference(batch);
    within_limit(&step, &format!("one inference batch of {batch}"), batch_flag)?;
    Ok(shapes)
}

/// Loads a model folder and its metadata, after checking that one inference batch of
/// `batch` samples fits the [`memory_limit`] (from `model.json` alone, before the
/// model is built or its weights read).
pub fn load_model_for(dir: &Path, batch: usize) -> Result<(Sequential, Metadata)> {
    require_folder(dir)?;
    if dir.join(nn_recommend::model::SPEC_FILE).is_file() {
        return Err(CliError::Usage(format!(
            "{} is a recommender (fit --data ratings:…): use `nn-cli recommend`, `nn-cli similar` or `nn-cli serve` with it",
            dir.display()
        )));
    }
    require_model_file(dir)?;
    // A folder whose description cannot be read is left to the loader, which says why.
    if let Ok(spec) = ModelSpec::read_saved(dir) {
        check_inference(&spec, batch, "--batch-size")?;
    }
    Ok(nn_train::load_model(dir)?)
}

/// A `--model` folder that does not exist, said as such (not as the first file the
/// loader misses in it).
///
/// # Errors
/// [`CliError::Usage`] when nothing is at `dir`.
pub fn require_folder(dir: &Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "--model {}: no such folder (give the --out folder of a `nn-cli fit` run)",
        dir.display()
    )))
}

/// A `--model` folder that exists but holds no `model.json` (a parent of run folders,
/// say), said as such rather than as the file the loader could not open.
///
/// # Errors
/// [`CliError::Usage`] when `dir` is a folder without `model.json`.
fn require_model_file(dir: &Path) -> Result<()> {
    if !dir.is_dir() || dir.join("model.json").exists() {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "--model {}: the folder has no model.json (give the --out folder of a `nn-cli fit` run itself)",
        dir.display()
    )))
}

/// Loads a model folder and its metadata ([`load_model_for`] one sample).
pub fn load_model(dir: &Path) -> Result<(Sequential, Metadata)> {
    load_model_for(dir, 1)
}

/// `nn-cli tune`'s check before any data is loaded: the largest trial the search
/// space allows (its largest batch size, hidden units and filters, the optimizer with
/// the most slots) must fit the [`memory_limit`]. Checked for a spec file, and for a
/// preset on data whose sample shape is known without reading it (digits, MNIST,
/// Fashion-MNIST); a preset on CSV or adding data is sized by its data, read later.
/// A space or spec that cannot be read is left to `tune`, which says why.
///
/// # Errors
/// As [`check_training`].
pub fn check_tune(args: &tune::TuneArgs) -> Result<()> {
    use clap::ValueEnum;
    let Ok(space) = nn_train::tune::SearchSpace::read(&args.space, &[]) else {
        return Ok(());
    };
    let base = nn_train::tune::TrialParams::default();
    let largest = |list: &Option<Vec<usize>>, default: usize| {
        list.as_ref().and_then(|v| v.iter().max().copied()).unwrap_or(default)
    };
    let batch = largest(&space.batch_size, base.batch_size);
    let hidden = largest(&space.hidden, args.model.hidden);
    let filters = largest(&space.filters, base.filters);
    // Any rate above 0 adds the Dropout layer (and its mask); the rate itself sizes nothing.
    let dropout = if space.dropout.is_some() { 0.5 } else { args.model.dropout };
    let optimizers = space.optimizer.clone().unwrap_or_else(|| vec![base.optimizer.clone()]);
    let slots =
        optimizers.iter().filter_map(|o| OptimizerKind::from_str(o, true).ok()).map(optimizer_slots).max().unwrap_or(2);
    let model = args.model.model.as_str();
    let spec = if fit::PRESETS.contains(&model) {
        let (shape, classes) = match args.data.data {
            DataSource::Digits => (vec![8, 8, 1], 10),
            DataSource::Mnist(_) | DataSource::FashionMnist(_) => (vec![28, 28, 1], 10),
            DataSource::Csv(_) | DataSource::Text(_) | DataSource::Adding(_) | DataSource::Ratings { .. } => {
                return Ok(())
            }
        };
        let Ok(mut spec) = fit::preset(model, &shape, classes, hidden, dropout, false) else {
            return Ok(());
        };
        if model == "cnn" {
            // As tune's trials: the convolution's filters and the hidden Dense layer's units.
            let last = spec.layers.len() - 1;
            for node in &mut spec.layers[..last] {
                match &mut node.layer {
                    nn_layers::LayerSpec::Conv2D(c) => c.filters = filters,
                    nn_layers::LayerSpec::Dense(d) => d.units = hidden,
                    _ => {}
                }
            }
        }
        spec
    } else {
        match fit::read_spec(Path::new(model)) {
            Ok(spec) => spec,
            Err(_) => return Ok(()),
        }
    };
    check_training(&spec, batch, slots).map(|_| ())
}

fn with_scalers(mut d: Dataset, scalers: &[nn_data::Scaler]) -> Result<Dataset> {
    for s in scalers {
        d = d.with_scaler(s.clone())?;
    }
    Ok(d)
}

/// `nn-cli evaluate`: loss, accuracy and the confusion matrix (classification) or
/// RMSE, MAE, R² and the mean baseline (regression) on the data's test part, or on
/// the whole data when it has none. A CSV file is read by the model's saved column
/// names. A text classifier reads its text column with its `tokenizer.json`
/// ([`crate::text::SavedText::evaluation_part`]: on its training file, the test part
/// `fit` held out); a language model prints `fit`'s closing report on `text:FILE`
/// ([`crate::text::SavedText::report_lm`]).
pub fn evaluate(args: EvaluateArgs) -> Result<()> {
    let (mut model, mut meta) = load_model_for(&args.model, args.batch_size)?;
    if let Some(dir) = &args.head_from {
        finetune::swap_head(&mut model, dir)?;
        meta.class_names = load_model(dir)?.1.class_names;
    }
    let target = args.target.clone().or(meta.target.clone());
    let regression = is_regression(&model, &meta);
    let text = saved_text(&args.model, &model, &meta)?;
    if let Some(lm) = text.as_ref().filter(|t| t.is_lm()) {
        return lm.report_lm(&model, &args.data);
    }
    let mut part = match (&args.data, &meta.features, &text) {
        (DataSource::Csv(path), _, Some(t)) => {
            let target = target.as_deref().ok_or_else(|| {
                CliError::Usage("the model does not record its target column: pass --target NAME".into())
            })?;
            t.check_delimiter(args.delimiter.as_deref())?;
            let training_file = same_source(t.training_data(), &args.data);
            t.evaluation_part(path, target, training_file, meta.class_names.as_deref())?
        }
        (_, _, Some(t)) => {
            return Err(CliError::Usage(format!(
                "the model in {} classifies texts: evaluate it with --data csv:FILE (columns {:?} and {:?})",
                args.model.display(),
                t.text_column(),
                target.as_deref().unwrap_or("TARGET")
            )))
        }
        (DataSource::Csv(path), Some(schema), None) => {
            let bytes = std::fs::read(path).map_err(|e| CliError::io(path, e))?;
            let read = read_by_schema(
                path,
                &bytes,
                schema,
                &meta,
                args.delimiter.as_deref(),
                Some(target.clone()),
                regression,
            )?;
            training_file_test_part(&args, &meta, read.into_dataset(data::file_stem(path))?)?
        }
        _ => {
            let mut data_args = crate::args::DataArgs::defaults_for(args.data.clone());
            data_args.target = target.clone();
            data_args.delimiter = args.delimiter.clone().or(meta.delimiter.clone()).unwrap_or_else(|| ",".into());
            if regression {
                data_args.task = matches!(args.data, DataSource::Csv(_)).then_some(crate::args::TaskKind::Regression);
            }
            let loaded = data::load(&data_args)?;
            match loaded.test {
                Some(test) => test,
                None => training_file_test_part(&args, &meta, loaded.data)?,
            }
        }
    };
    if let Some(text) = &args.classes {
        part = data::keep_classes(&part, &data::parse_classes(text)?)?;
    }
    check_input_shape(&args, &model, &meta, part.sample_shape())?;
    let part = with_scalers(part, &meta.scalers)?;
    println!("{} samples of {}", part.len(), args.data);
    if let (true, Some(ts)) = (regression, &meta.target_scaler) {
        print_regression(&model, &part, ts, args.batch_size, "")?;
    } else {
        let loss = loss_for(part.targets(), &model);
        let e = nn_train::evaluate(&model, &loss, &part, args.batch_size)?;
        println!("loss: {:.4}", e.loss);
        for (k, v) in &e.metrics {
            println!("{k}: {v:.4}");
        }
        if let Some(cm) = &e.confusion {
            let names = meta.class_names.clone().or_else(|| part.class_names().map(|n| n.to_vec())).unwrap_or_default();
            println!("\nconfusion matrix (rows: target, columns: predicted)\n{}", cm.render(&names));
        }
    }
    if args.timing {
        time_inference(&model, &part, args.batch_size)?;
    }
    Ok(())
}

/// Refuses data whose samples do not have as many values as the model's input
/// (before the model's scalers would refuse them with less to go on), naming the
/// CSV columns the model was trained on when it was.
fn check_input_shape(args: &EvaluateArgs, model: &Sequential, meta: &Metadata, sample: &[usize]) -> Result<()> {
    let want = model.input_shape();
    if want.iter().product::<usize>() == sample.iter().product::<usize>() {
        return Ok(());
    }
    let trained_on = match &meta.features {
        Some(schema) => {
            let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
            format!(
                "was trained on the CSV columns {} ({} inputs)",
                nn_layers::clip_to(&names.join(", "), 80),
                schema.width()
            )
        }
        None => format!("takes inputs of shape {want:?} ({})", nn_layers::clip(&meta.data)),
    };
    let remedy = if meta.features.is_some() { ": evaluate it on a CSV file with those columns" } else { "" };
    Err(CliError::Usage(format!(
        "the model in {} {trained_on}, but {} has samples of shape {sample:?}{remedy}",
        args.model.display(),
        args.data
    )))
}

/// Whether two data sources name the same data: for a file or folder, the same
/// path once canonicalised (symbolic links, `.` and `..` resolved; made absolute
/// where it does not exist), so `csv:x.csv`, `csv:./x.csv`, `csv:../dir/x.csv`, an
/// absolute spelling and a link to the file all agree.
fn same_source(a: &DataSource, b: &DataSource) -> bool {
    fn resolved(p: &Path) -> std::path::PathBuf {
        std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_path_buf())
    }
    match (a, b) {
        (DataSource::Csv(x), DataSource::Csv(y))
        | (DataSource::Text(x), DataSource::Text(y))
        | (DataSource::FashionMnist(x), DataSource::FashionMnist(y))
        | (DataSource::Mnist(Some(x)), DataSource::Mnist(Some(y))) => resolved(x) == resolved(y),
        _ => a == b,
    }
}

/// The run that trained the model in `dir` and the file it was read from: the run
/// saved in model.json; for models of earlier versions, run.json beside the model
/// when it names the model's seed (a later run may have replaced it).
///
/// # Errors
/// [`CliError::Io`] for a saved run that cannot be parsed.
fn saved_run(dir: &Path, meta: &Metadata) -> Result<(Option<crate::args::RunConfig>, std::path::PathBuf)> {
    let run = dir.join("run.json");
    let text = match &meta.run {
        Some(value) => Some(value.to_string()),
        None => std::fs::read_to_string(&run).ok(),
    };
    let from = if meta.run.is_some() { dir.join("model.json") } else { run };
    let cfg = text
        .map(|text| crate::args::RunConfig::from_json(&text).map_err(|e| CliError::io(&from, e)))
        .transpose()?
        .filter(|cfg| meta.run.is_some() || cfg.training.seed == meta.seed);
    Ok((cfg, from))
}

/// The text setup of a text model's folder ([`crate::text::SavedText::load`]);
/// `None`, without reading its run, for any other model.
///
/// # Errors
/// [`saved_run`]'s and [`crate::text::SavedText::load`]'s.
fn saved_text(dir: &Path, model: &Sequential, meta: &Metadata) -> Result<Option<crate::text::SavedText>> {
    if !dir.join(crate::text::TOKENIZER_FILE).is_file() {
        return Ok(None);
    }
    crate::text::SavedText::load(dir, model, saved_run(dir, meta)?.0)
}

/// On the file a model was trained on, the test part its run held out (the run saved
/// in model.json gives the split and seed; for earlier models, run.json beside it
/// when it names the model's seed); otherwise `data` itself, with a note when that
/// includes the training rows. Files are compared by their canonical paths
/// ([`same_source`]).
fn training_file_test_part(args: &EvaluateArgs, meta: &Metadata, data: Dataset) -> Result<Dataset> {
    let (cfg, from) = saved_run(&args.model, meta)?;
    // The run names its data with an absolute path; the metadata as it was typed.
    let training_file = match &cfg {
        Some(cfg) => same_source(&cfg.data.data, &args.data),
        None => meta.data.parse::<DataSource>().is_ok_and(|d| same_source(&d, &args.data)),
    };
    if !training_file {
        return Ok(data);
    }
    if let Some(cfg) = cfg {
        let hold_test = !cfg.output.no_test || cfg.output.test;
        // Rows dropped for --missing drop were dropped again when the file was read.
        if cfg.data.classes.is_none() {
            if let Some(test) = data::held_out_test(&cfg.data, cfg.training.seed, hold_test, data.clone())? {
                println!(
                    "the test part the run held out of {} ({} of {} rows, seed {}; from {})",
                    args.data,
                    test.len(),
                    data.len(),
                    cfg.training.seed,
                    from.display()
                );
                return Ok(test);
            }
        }
    }
    println!(
        "note: {} has no separate test set, so all its rows are used, including those the model was trained on",
        args.data
    );
    Ok(data)
}

/// Parses CSV `bytes` (read from `path`) by the model's saved columns, printing one note for ignored
/// columns, positional reading and unseen categories.
fn read_by_schema(
    path: &Path,
    bytes: &[u8],
    schema: &nn_data::FeatureSchema,
    meta: &Metadata,
    delimiter: Option<&str>,
    target: Option<Option<String>>,
    regression: bool,
) -> Result<nn_data::csv::SchemaRead> {
    let mut opts = nn_data::csv::SchemaReadOptions {
        delimiter: data::parse_delimiter(delimiter.or(meta.delimiter.as_deref()).unwrap_or(","))?,
        ..Default::default()
    };
    // Evaluation: the target column by name (the model's, or --target), and the rows
    // with a missing value dropped when training dropped them. Prediction: the
    // model's target column, if present, is ignored, and every row is answered.
    if let Some(t) = target {
        opts.target = Some(t.or_else(|| meta.target.clone()).ok_or_else(|| {
            CliError::Usage("the model does not record its target column: pass --target NAME".into())
        })?);
        opts.class_names = if regression { None } else { meta.class_names.clone() };
        opts.drop_missing = schema.missing == nn_data::Missing::Drop;
    }
    let mut read = nn_data::csv::parse_by_schema(bytes, path, schema, &opts)?;
    // The model's own target column in a prediction file is expected, not news.
    read.ignored_columns.retain(|c| Some(c) != meta.target.as_ref());
    if read.by_position && !schema.is_positional() {
        eprintln!(
            "warning: {} has no header naming the model's columns; its columns are taken by position ({})",
            path.display(),
            nn_layers::clip(&schema.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "))
        );
    }
    if !read.ignored_columns.is_empty() {
        eprintln!(
            "note: ignoring column{} the model was not trained on: {}",
            if read.ignored_columns.len() == 1 { "" } else { "s" },
            nn_layers::clip(&read.ignored_columns.join(", "))
        );
    }
    if read.dropped_rows > 0 {
        eprintln!(
            "note: dropped {} row{} with a missing value, as training did (the model was trained with --missing drop)",
            read.dropped_rows,
            if read.dropped_rows == 1 { "" } else { "s" }
        );
    }
    if read.unseen_categories > 0 {
        eprintln!(
            "note: {} categorical value{} unseen in training, encoded as all zeros",
            read.unseen_categories,
            if read.unseen_categories == 1 { " was" } else { "s were" }
        );
    }
    Ok(read)
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
/// file, read by the model's saved column names (by position for models saved
/// without them), whose target column (if present) is ignored.
fn read_inputs(path: &Path, model: &Sequential, meta: &Metadata, delimiter: Option<&str>) -> Result<Tensor<f32>> {
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
        let width: usize = model.input_shape().iter().product();
        let positional;
        let schema = match &meta.features {
            Some(s) => s,
            None => {
                eprintln!(
                    "warning: {} was saved without its column names; the columns of {} are taken by position",
                    meta.data,
                    path.display()
                );
                positional = nn_data::FeatureSchema::positional(width);
                &positional
            }
        };
        let read = read_by_schema(path, &bytes, schema, meta, delimiter, None, is_regression(model, meta))?;
        let mut shape = vec![read.features.shape()[0]];
        shape.extend_from_slice(model.input_shape());
        read.features.try_into_reshape(&shape).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?
    };
    Ok(meta.scale(&features)?)
}

/// `nn-cli predict`: class, class name and probability for each input row (a text
/// classifier reads the texts of its text column with its `tokenizer.json`,
/// [`crate::text::SavedText::read_for_prediction`]; a language model is refused,
/// pointing to `nn-cli generate`).
pub fn predict(args: PredictArgs) -> Result<()> {
    let (model, meta) = load_model_for(&args.model, args.batch_size)?;
    let x = match saved_text(&args.model, &model, &meta)? {
        Some(t) if t.is_lm() => {
            return Err(CliError::Usage(format!(
                "the model in {} is a language model (gpt): it continues text rather than classifying rows; use `nn-cli generate --model {} --prompt TEXT`",
                args.model.display(),
                args.model.display()
            )))
        }
        Some(t) => {
            t.check_delimiter(args.delimiter.as_deref())?;
            t.read_for_prediction(&args.input)?
        }
        None => read_inputs(&args.input, &model, &meta, args.delimiter.as_deref())?,
    };
    let p = nn_train::predict(&model, &x, args.batch_size)?;
    let regression = is_regression(&model, &meta);
    let outputs = p.outputs.to_vec();
    if outputs.iter().any(|v| !v.is_finite()) {
        return Err(CliError::Usage(format!(
            "{}: the model's outputs are not finite for some rows (are its weights finite?)",
            args.model.display()
        )));
    }
    let k = p.outputs.shape().get(1).copied().unwrap_or(1).max(1);
    let mut text = String::new();
    if regression {
        text.push_str("row,prediction\n");
        let values = match &meta.target_scaler {
            Some(ts) => ts.invert(&outputs),
            None => outputs,
        };
        for (i, row) in values.chunks(k).enumerate() {
            let vals: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            text.push_str(&format!("{i},{}\n", vals.join(";")));
        }
    } else {
        text.push_str("row,class,name,probability\n");
        let names = meta.class_names.unwrap_or_default();
        for (i, (&c, row)) in p.classes.iter().zip(outputs.chunks(k)).enumerate() {
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

/// `nn-cli summary`: the Keras-style table of a preset, a spec file or a saved model,
/// from the model's shapes alone (no parameter is allocated, so a model of any size
/// prints at once), then the memory estimate of one training step at batch 32 with
/// Adam and of one inference batch of 32, with a warning when the training step is
/// over the [`memory_limit`].
pub fn summary(args: SummaryArgs) -> Result<()> {
    let (input_shape, classes) = match &args.data {
        None => (vec![28, 28, 1], 10),
        Some(source) => {
            let d = data::load(&crate::args::DataArgs::defaults_for(source.clone()))?.data;
            (d.sample_shape().to_vec(), d.num_classes().unwrap_or(1))
        }
    };
    let spec = match args.model.as_str() {
        name if fit::PRESETS.contains(&name) => fit::preset(&args.model, &input_shape, classes, 128, 0.0, false)?,
        other => {
            let path = Path::new(other);
            if !path.exists() {
                return Err(CliError::Usage(format!(
                    "--model {other}: not a preset ({}), and no such model folder or spec file",
                    fit::PRESETS.join(", ")
                )));
            }
            if path.is_dir() {
                match ModelSpec::read_saved(path) {
                    Ok(spec) => spec,
                    // The loader says what is wrong with the folder.
                    Err(_) => load_model(path)?.0.spec().clone(),
                }
            } else {
                fit::read_spec(path)?
            }
        }
    };
    let shapes = spec.shapes()?;
    let footprint = shapes.footprint(std::mem::size_of::<f32>());
    let step = footprint.training_step(SUMMARY_BATCH, optimizer_slots(OptimizerKind::Adam));
    let infer = footprint.inference(SUMMARY_BATCH);
    println!("{}", shapes.summary::<f32>());
    println!("Memory estimate: {}", needs(&step, &format!("one training step at batch {SUMMARY_BATCH} with adam")));
    println!("Memory estimate: {}", needs(&infer, &format!("one inference batch of {SUMMARY_BATCH}")));
    let limit = memory_limit();
    if let (true, Some(max)) = (limit.exceeded_by(step.total()), limit.describe()) {
        eprintln!(
            "warning: training this model at batch {SUMMARY_BATCH} needs about {}, over the limit of {max}: fit would refuse it",
            format_bytes(step.total())
        );
    }
    Ok(())
}
