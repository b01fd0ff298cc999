//! `nn-cli fit`: the seed's whole workflow in one command.

use std::path::Path;

use clap::parser::ValueSource;
use clap::ArgMatches;
use nn_layers::ModelSpec;
use nn_optim::{
    AdagradConfig, AdamConfig, LrSchedule, OptimizerConfig, PlateauMode, ReduceLrOnPlateau, Regularizer, RmsPropConfig,
    SgdConfig,
};
use nn_train::checkpoint::ResumeCheckpoint;
use nn_train::{
    Callback, CallbackCtx, Control, EarlyStopping, EpochLog, FitConfig, History, ReduceLrOnPlateauCallback,
    TerminateOnNaN, Verbosity,
};

use super::Metadata;
use crate::args::{FitArgs, OptimizerKind, RunConfig};
use crate::cluster::Cluster;
use crate::data;
use crate::error::{CliError, Result};

/// The model presets `--model` accepts besides a FILE.json.
pub const PRESETS: [&str; 4] = ["mlp", "cnn", "lstm", "resnet"];

/// The `mlp`, `cnn`, `lstm` and `resnet` presets for `input_shape` and `classes` (a
/// single linear output replaces the softmax for regression).
pub fn preset(
    name: &str,
    input_shape: &[usize],
    classes: usize,
    hidden: usize,
    dropout: f64,
    regression: bool,
) -> Result<ModelSpec> {
    let mut spec = match name {
        "mlp" => ModelSpec::mlp(input_shape, hidden, classes, dropout),
        "cnn" => {
            if input_shape.len() != 3 {
                return Err(CliError::Usage(format!(
                    "--model cnn needs image data [height, width, channels], but samples have shape {input_shape:?}"
                )));
            }
            let mut spec = ModelSpec::seed_cnn(input_shape, classes);
            if dropout > 0.0 {
                // After the hidden Dense layer, before the output layer.
                let at = spec.layers.len() - 1;
                spec.layers.insert(at, nn_layers::LayerSpec::dropout(dropout).into());
            }
            spec
        }
        "resnet" => {
            if dropout > 0.0 {
                return Err(CliError::Usage(
                    "--dropout: the resnet preset has no dropout layer (it uses BatchNormalization)".into(),
                ));
            }
            ModelSpec::resnet(input_shape, classes).map_err(|e| CliError::Usage(format!("--model resnet: {e}")))?
        }
        "lstm" => {
            let mut spec = ModelSpec::lstm_classifier(input_shape, hidden, classes)
                .map_err(|e| CliError::Usage(format!("--model lstm: {e}")))?;
            if dropout > 0.0 {
                // After the LSTM, before the output layer.
                let at = spec.layers.len() - 1;
                spec.layers.insert(at, nn_layers::LayerSpec::dropout(dropout).into());
            }
            spec
        }
        other => {
            return Err(CliError::Usage(format!(
                "unknown model `{other}`: expected mlp, cnn, lstm, resnet or a FILE.json"
            )))
        }
    };
    if regression {
        // A regression head: the last Dense layer outputs raw values, no softmax.
        if let Some(nn_layers::LayerSpec::Dense(last)) = spec.layers.last_mut().map(|n| &mut n.layer) {
            last.activation = nn_layers::Activation::Linear;
        }
    }
    Ok(spec)
}

/// Reads a model spec (JSON) from `path`.
pub fn read_spec(path: &Path) -> Result<ModelSpec> {
    /// A spec of the largest models is a few hundred kilobytes of JSON.
    const MAX_SPEC_BYTES: u64 = 16 << 20;
    let size = std::fs::metadata(path).map_err(|e| CliError::io(path, e))?.len();
    if size > MAX_SPEC_BYTES {
        return Err(CliError::Usage(format!(
            "{}: {size} bytes is too large for a model spec (at most {MAX_SPEC_BYTES})",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| CliError::io(path, e))?;
    ModelSpec::from_json(&text).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}

/// The optimizer `kind` with learning rate `lr` and decoupled weight decay
/// `weight_decay` (default 0, AdamW's own default for `adamw`), as `--optimizer`,
/// `--lr` and `--weight-decay` describe it.
pub fn build_optimizer_config(kind: OptimizerKind, lr: f64, weight_decay: Option<f64>) -> Result<OptimizerConfig> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(CliError::Usage(format!("--lr must be a positive number, got {lr}")));
    }
    let wd = weight_decay.unwrap_or(0.0);
    if !(wd.is_finite() && wd >= 0.0) {
        return Err(CliError::Usage(format!("--weight-decay must be >= 0, got {wd}")));
    }
    let sgd = |momentum: f64, nesterov: bool| {
        OptimizerConfig::Sgd(SgdConfig { momentum, nesterov, weight_decay: wd, ..SgdConfig::new(lr) })
    };
    Ok(match kind {
        OptimizerKind::Sgd => sgd(0.0, false),
        OptimizerKind::Momentum => sgd(0.9, false),
        OptimizerKind::Nesterov => sgd(0.9, true),
        OptimizerKind::Adam => OptimizerConfig::Adam(AdamConfig { weight_decay: wd, ..AdamConfig::new(lr) }),
        OptimizerKind::Adamw => {
            let base = AdamConfig::adamw(lr);
            let weight_decay = weight_decay.unwrap_or(base.weight_decay);
            OptimizerConfig::AdamW(AdamConfig { weight_decay, ..base })
        }
        OptimizerKind::Rmsprop => {
            OptimizerConfig::RmsProp(RmsPropConfig { weight_decay: wd, ..RmsPropConfig::new(lr) })
        }
        OptimizerKind::Adagrad => {
            OptimizerConfig::Adagrad(AdagradConfig { weight_decay: wd, ..AdagradConfig::new(lr) })
        }
    })
}

/// The metadata saved with a model trained on `prepared` (from the data group `data`,
/// CSV target column `target`, seed `seed`, by the run `run` (as [`saved_config`] gives it) when a `fit`): class
/// names, scalers, data source, seed, task, the CSV feature columns, the target
/// scaling, a non-default delimiter and the run configuration.
pub fn model_metadata(
    data: &crate::args::DataArgs,
    target: Option<String>,
    prepared: &data::Prepared,
    seed: u64,
    run: Option<&RunConfig>,
) -> Result<serde_json::Value> {
    let run = run.map(serde_json::to_value).transpose().map_err(|e| CliError::Usage(e.to_string()))?;
    let delimiter = (data.delimiter != ",").then(|| data.delimiter.clone());
    let data = &data.data;
    let train = &prepared.train;
    let metadata = Metadata {
        data: data.to_string(),
        target,
        class_names: train
            .class_names()
            .map(|n| n.to_vec())
            .or_else(|| train.num_classes().map(|c| (0..c).map(|i| i.to_string()).collect())),
        scalers: prepared.scalers.clone(),
        seed,
        task: Some(prepared.task),
        features: prepared.schema.clone(),
        target_scaler: prepared.target_scaler.clone(),
        delimiter,
        run,
    };
    serde_json::to_value(&metadata).map_err(|e| CliError::Usage(e.to_string()))
}

/// A parsed `--lr-schedule`: a per-step schedule, or a plateau reducer.
enum Schedule {
    Steps(Option<LrSchedule>),
    Plateau(ReduceLrOnPlateau),
}

fn parse_schedule(text: &str, lr: f64, steps_per_epoch: usize, epochs: usize) -> Result<Schedule> {
    let bad = || {
        CliError::Usage(format!(
            "--lr-schedule `{text}`: expected constant, step:EPOCHS:GAMMA, exponential:RATE, cosine[:WARMUP_EPOCHS] or plateau[:PATIENCE[:FACTOR]]"
        ))
    };
    let parts: Vec<&str> = text.split(':').collect();
    let num = |i: usize| -> Result<Option<f64>> {
        match parts.get(i) {
            None => Ok(None),
            Some(s) => s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).map(Some).ok_or_else(bad),
        }
    };
    let spe = steps_per_epoch as u64;
    let schedule = match parts[0] {
        "constant" if parts.len() == 1 => Schedule::Steps(None),
        "step" if parts.len() == 3 => {
            let every = num(1)?.ok_or_else(bad)?;
            Schedule::Steps(Some(LrSchedule::step_decay(lr, (every as u64).max(1) * spe, num(2)?.ok_or_else(bad)?)))
        }
        "exponential" if parts.len() == 2 => {
            Schedule::Steps(Some(LrSchedule::exponential_decay(lr, spe, num(1)?.ok_or_else(bad)?, false)))
        }
        "cosine" if parts.len() <= 2 => {
            let warmup = num(1)?.unwrap_or(0.0) as u64 * spe;
            let total = epochs as u64 * spe;
            let decay = total.saturating_sub(warmup).max(1);
            Schedule::Steps(Some(if warmup > 0 {
                LrSchedule::cosine_decay_with_warmup(0.0, warmup, lr, decay, 0.0)
            } else {
                LrSchedule::cosine_decay(lr, decay, 0.0)
            }))
        }
        "plateau" if parts.len() <= 3 => {
            let patience = num(1)?.unwrap_or(2.0) as u64;
            let factor = num(2)?.unwrap_or(0.5);
            Schedule::Plateau(
                ReduceLrOnPlateau::new()
                    .with_monitor("val_loss")
                    .with_mode(PlateauMode::Min)
                    .with_patience(patience)
                    .with_factor(factor),
            )
        }
        _ => return Err(bad()),
    };
    if let Schedule::Steps(Some(s)) = &schedule {
        s.validate().map_err(|e| CliError::Usage(format!("--lr-schedule `{text}`: {e}")))?;
    }
    if let Schedule::Plateau(p) = &schedule {
        p.validate().map_err(|e| CliError::Usage(format!("--lr-schedule `{text}`: {e}")))?;
    }
    Ok(schedule)
}

/// Aborts the process after a number of epochs, as a kill would (for resume tests).
struct AbortAfter(usize);

impl Callback for AbortAfter {
    fn on_epoch_end(&mut self, log: &EpochLog, _ctx: &mut CallbackCtx<'_>) -> nn_train::Result<Control> {
        if log.epoch >= self.0 {
            std::process::abort();
        }
        Ok(Control::Continue)
    }
}

/// Sends this process SIGINT after a number of training steps, as a Ctrl-C at that
/// moment would (for the tests of the signal checkpoint).
struct SignalAfterSteps {
    after: usize,
    seen: usize,
}

impl Callback for SignalAfterSteps {
    fn on_batch_end(&mut self, _epoch: usize, _batch: usize) -> Control {
        self.seen += 1;
        if self.seen == self.after {
            let _ = signal_hook::low_level::raise(signal_hook::consts::SIGINT);
        }
        Control::Continue
    }
}

/// Parses `--augment SPEC` (`shift:PIXELS[,rotate:DEGREES]` or `rotate:DEGREES`).
fn parse_augment(spec: Option<&str>) -> Result<Option<nn_data::Augment>> {
    spec.map(|s| s.parse::<nn_data::Augment>().map_err(|e| CliError::Usage(format!("--augment {e}")))).transpose()
}

/// `path` made absolute (and free of `..`) when it exists, so that a run.json read
/// from another working directory names the same file; otherwise as given.
fn absolute(path: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `cfg` as run.json saves it: with the paths it names (data, model spec,
/// `--init-from`) absolute, so that `--config` and `--resume` work from any
/// directory. It is saved in every checkpoint and published beside it (see
/// `nn_train::checkpoint`), and in the metadata of the model the run saves.
fn saved_config(cfg: &RunConfig) -> RunConfig {
    use crate::args::DataSource;
    let mut cfg = cfg.clone();
    cfg.data.data = match cfg.data.data {
        DataSource::Csv(p) => DataSource::Csv(absolute(&p)),
        DataSource::Text(p) => DataSource::Text(absolute(&p)),
        DataSource::Mnist(Some(p)) => DataSource::Mnist(Some(absolute(&p))),
        DataSource::FashionMnist(p) => DataSource::FashionMnist(absolute(&p)),
        other => other,
    };
    if !PRESETS.contains(&cfg.model.model.as_str()) && !crate::text::MODELS.contains(&cfg.model.model.as_str()) {
        cfg.model.model = absolute(Path::new(&cfg.model.model)).display().to_string();
    }
    cfg.model.init_from = cfg.model.init_from.as_deref().map(absolute);
    cfg.output.out = cfg.output.out.as_deref().map(absolute);
    if let Some(tb) = cfg.output.tensorboard.as_deref() {
        cfg.output.tensorboard = Some(absolute(tb));
    }
    cfg
}

/// The file name of a run's configuration, in its folder and in its checkpoint.
const RUN_FILE: &str = "run.json";

/// Reads a run configuration (run.json, grouped or the earlier flat form).
fn read_config(path: &Path) -> Result<RunConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::io(path, format!("{e} (is this a run.json written by `nn-cli fit --out`?)")))?;
    RunConfig::from_json(&text).map_err(|e| CliError::io(path, e))
}

/// The default learning rate of the `lstm` preset (the others use `--lr`'s 1e-3).
pub const LSTM_DEFAULT_LR: f64 = 2e-3;

/// What [`validate`] derives from a run configuration.
struct Checked {
    augment: Option<nn_data::Augment>,
    optimizer: OptimizerConfig,
    regularizer: Option<Regularizer>,
}

/// Checks every value of `cfg` that can be checked before loading anything
/// (`spec_saved`: a resumed run's checkpoint holds the architecture, so the spec file
/// need not exist any more).
fn validate(cfg: &RunConfig, spec_saved: bool) -> Result<Checked> {
    let (d, m, o, t) = (&cfg.data, &cfg.model, &cfg.optimizer, &cfg.training);
    if t.batch_size == 0 {
        return Err(CliError::Usage("--batch-size must be at least 1".into()));
    }
    if t.epochs == 0 {
        return Err(CliError::Usage("--epochs must be at least 1".into()));
    }
    if !(m.dropout.is_finite() && (0.0..1.0).contains(&m.dropout)) {
        return Err(CliError::Usage(format!("--dropout must be in [0, 1), got {}", m.dropout)));
    }
    for (name, v) in [("l1", o.l1), ("l2", o.l2)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(CliError::Usage(format!("--{name} must be >= 0, got {v}")));
        }
    }
    data::check_fraction("validation-split", d.validation_split)?;
    data::check_fraction("test-split", d.test_split)?;
    data::check_fraction("label-smoothing", t.label_smoothing)?;
    if let Some(c) = o.clip_norm.filter(|c| !(c.is_finite() && *c > 0.0)) {
        return Err(CliError::Usage(format!("--clip-norm must be a positive number, got {c}")));
    }
    data::parse_delimiter(&d.delimiter)?;
    let csv = matches!(d.data, crate::args::DataSource::Csv(_));
    for (flag, given) in [
        ("--drop", !d.drop.is_empty()),
        ("--categorical", !d.categorical.is_empty()),
        ("--missing", d.missing != crate::args::MissingKind::Error),
        ("--delimiter", d.delimiter != ","),
    ] {
        if given && !csv {
            return Err(CliError::Usage(format!("{flag} applies to CSV data, not {}", d.data)));
        }
    }
    let augment = parse_augment(d.augment.as_deref())?;
    let optimizer = build_optimizer_config(o.optimizer, o.lr, o.weight_decay)?;
    let regularizer = if o.l1 > 0.0 || o.l2 > 0.0 { Some(Regularizer::try_new(o.l1, o.l2)?) } else { None };
    // The schedule needs the data's size; its syntax is checked now.
    parse_schedule(&o.lr_schedule, o.lr, 1, t.epochs)?;
    if !PRESETS.contains(&m.model.as_str())
        && !crate::text::MODELS.contains(&m.model.as_str())
        && !spec_saved
        && !Path::new(&m.model).exists()
    {
        return Err(CliError::Usage(format!(
            "--model {}: not a preset ({}; with text data {}; with ratings data mf, ncf, two-tower) and no such \
             model file",
            m.model,
            PRESETS.join(", "),
            crate::text::MODELS.join(", ")
        )));
    }
    if let Some(out) = cfg.output.out.as_ref().filter(|o| o.exists() && !o.is_dir()) {
        return Err(CliError::Usage(format!("--out {}: exists and is not a directory", out.display())));
    }
    Ok(Checked { augment, optimizer, regularizer })
}

/// The run configuration of this invocation: run.json with `--resume` (`--epochs`
/// may raise the total), `--config FILE` with the command line's explicit flags on
/// top, or the flags alone.
fn resolve(args: &FitArgs, matches: Option<&ArgMatches>) -> Result<RunConfig> {
    let given = |id: &str| matches.and_then(|m| m.value_source(id)) == Some(ValueSource::CommandLine);
    let mut cfg = if let Some(dir) = &args.resume {
        if let Some(m) = matches {
            // A resumed run keeps its saved settings: a flag that would change them is
            // refused rather than silently ignored.
            const ALLOWED: [&str; 8] = [
                "resume",
                "epochs",
                "verbose",
                "quiet_progress",
                "threads",
                "max_memory",
                "abort_after_epochs",
                "signal_after_steps",
            ];
            let mut other: Vec<String> = m
                .ids()
                .map(|id| id.as_str())
                // Argument groups (the flattened structs) are named in CamelCase.
                .filter(|id| id.starts_with(|c: char| c.is_ascii_lowercase()))
                .filter(|id| !ALLOWED.contains(id) && m.value_source(id) == Some(ValueSource::CommandLine))
                .map(|id| format!("--{}", id.replace('_', "-")))
                .collect();
            other.sort();
            if !other.is_empty() {
                return Err(CliError::Usage(format!(
                    "--resume continues {} with its saved settings; only --epochs and --verbose may change ({} given); to change others, start a new run with `nn-cli fit --config {} --out NEW_DIR [flags]`",
                    dir.display(),
                    other.join(", "),
                    dir.join(RUN_FILE).display()
                )));
            }
        }
        // The checkpoint's own copy describes the run it belongs to; run.json beside it
        // is the published copy (and the only one in folders of earlier versions).
        let checkpoint = dir.join("checkpoint");
        let mut cfg = match nn_train::checkpoint::attachment(&checkpoint, RUN_FILE)? {
            Some(bytes) => {
                let path = checkpoint.join(RUN_FILE);
                let text = String::from_utf8(bytes).map_err(|e| CliError::io(&path, e))?;
                RunConfig::from_json(&text).map_err(|e| CliError::io(&path, e))?
            }
            None => read_config(&dir.join(RUN_FILE))?,
        };
        if given("epochs") {
            cfg.training.epochs = args.run.training.epochs;
        }
        if given("verbose") {
            cfg.output.verbose = args.run.output.verbose;
        }
        cfg.output.out = Some(dir.clone());
        cfg
    } else if let Some(path) = &args.config {
        let mut cfg = read_config(path)?;
        let changed = match matches {
            Some(m) => cfg.override_with(&args.run, m).map_err(|e| CliError::io(path, e))?,
            None => Vec::new(),
        };
        if let Some(out) = cfg.output.out.as_ref().filter(|o| holds_a_run(o) || same_dir(o, path.parent())) {
            return Err(CliError::Usage(format!(
                "--config {}: the run would be written over {}, which holds a run already; pass --out NEW_DIR (or --resume {} to continue it)",
                path.display(),
                out.display(),
                out.display()
            )));
        }
        let changed = if changed.is_empty() {
            String::new()
        } else {
            format!(" with --{} from the command line", changed.join(", --"))
        };
        println!("configuration from {}{changed}", path.display());
        cfg
    } else {
        let mut cfg = args.run.clone();
        if cfg.model.model == "lstm" && !given("lr") {
            // The LSTM preset's default learning rate: 2e-3 reaches 97.7% on sequential
            // MNIST in 3 epochs where 1e-3 reaches 96.1% (saved in run.json, so --resume keeps it).
            cfg.optimizer.lr = LSTM_DEFAULT_LR;
        }
        cfg
    };
    if args.quiet_progress {
        cfg.output.verbose = 2;
    }
    Ok(cfg)
}

/// Whether `dir` holds a run: a model, a run.json or a checkpoint, which a run with
/// `--config` must not write over.
fn holds_a_run(dir: &Path) -> bool {
    ["model.json", RUN_FILE, "checkpoint"].iter().any(|f| dir.join(f).exists())
}

/// Whether `dir` is the folder `other` (when given), compared canonicalised
/// (symbolic links, `.` and `..` resolved, a trailing `/` ignored; made absolute
/// where it does not exist).
fn same_dir(dir: &Path, other: Option<&Path>) -> bool {
    let resolved = |p: &Path| {
        let p = if p.as_os_str().is_empty() { Path::new(".") } else { p };
        std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_path_buf())
    };
    other.is_some_and(|o| resolved(dir) == resolved(o))
}

/// The number of model outputs `data`'s targets need.
pub(super) fn outputs_for(data: &nn_data::Dataset) -> usize {
    match data.targets() {
        nn_data::Targets::Classes { num_classes, .. } => *num_classes,
        nn_data::Targets::Real(t) => t.shape()[1..].iter().product(),
    }
}

/// Step 1: the data, split, scaled and restricted as the data group says.
fn prepare_data(cfg: &RunConfig, checked: &Checked) -> Result<data::Prepared> {
    let hold_test = !cfg.output.no_test || cfg.output.test;
    let prepared = data::prepare(&cfg.data, cfg.training.seed, hold_test)?;
    let prepared = data::restrict(prepared, cfg.data.classes.as_deref(), cfg.data.per_class, cfg.training.seed)?;
    let train = &prepared.train;
    if let Some(a) = &checked.augment {
        let &[h, w, _] = train.sample_shape() else {
            return Err(CliError::Usage(format!(
                "--augment {a}: needs image data (samples [height, width, channels]), but {} has samples of shape {:?}",
                cfg.data.data,
                train.sample_shape()
            )));
        };
        // A shift of half the image or more moves most of a digit out of the frame.
        if a.shift > 0 && 2 * a.shift >= h.min(w) {
            return Err(CliError::Usage(format!(
                "--augment {a}: a shift of {} pixels moves most of the {h}×{w} images out of the frame (at most {})",
                a.shift,
                (h.min(w) - 1) / 2
            )));
        }
    }
    let columns = prepared
        .schema
        .as_ref()
        .map(|s| format!(", {} feature columns → {} inputs", s.columns.len(), s.width()))
        .unwrap_or_default();
    println!(
        "data {}: {} training, {} validation, {} test samples of shape {:?}{}{columns}",
        cfg.data.data,
        train.len(),
        prepared.validation.as_ref().map_or(0, |d| d.len()),
        prepared.test.as_ref().map_or(0, |d| d.len()),
        train.sample_shape(),
        train.num_classes().map(|c| format!(", {c} classes")).unwrap_or_default()
    );
    if let Some(schema) = &prepared.schema {
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        println!("feature columns: {}", nn_layers::clip_to(&names.join(", "), 200));
    }
    if train.num_classes() == Some(1) {
        println!("warning: the target has a single class, so every prediction will be that class");
    }
    if let Some(ts) = &prepared.target_scaler {
        let stats: Vec<String> = ts.mean.iter().zip(&ts.std).map(|(m, s)| format!("mean {m:.4}, std {s:.4}")).collect();
        println!(
            "regression targets standardised with the training part's {} (losses below are in standard units)",
            stats.join("; ")
        );
    }
    Ok(prepared)
}

/// The per-class weights of `--class-weight`, by class index.
fn class_weights(spec: Option<&str>, train: &nn_data::Dataset) -> Result<Option<Vec<f64>>> {
    let Some(spec) = spec else { return Ok(None) };
    let Some(counts) = train.targets().class_counts() else {
        return Err(CliError::Usage("--class-weight needs class targets (classification)".into()));
    };
    if spec == "balanced" {
        let w = nn_layers::loss::balanced_class_weights(&counts);
        return Ok(Some(w));
    }
    let path = Path::new(spec);
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::io(path, format!("{e} (--class-weight takes `balanced` or a JSON file of class name → weight)"))
    })?;
    let map: std::collections::BTreeMap<String, f64> = serde_json::from_str(&text)
        .map_err(|e| CliError::io(path, format!("expected {{\"class\": weight, ...}}: {e}")))?;
    let names: Vec<String> =
        train.class_names().map(|n| n.to_vec()).unwrap_or_else(|| (0..counts.len()).map(|i| i.to_string()).collect());
    if let Some(unknown) = map.keys().find(|k| !names.contains(k)) {
        return Err(CliError::Usage(format!(
            "{}: class {:?} is not in the data (its classes are {})",
            path.display(),
            nn_layers::clip(unknown),
            nn_layers::clip(&names.join(", "))
        )));
    }
    let mut weights = Vec::with_capacity(names.len());
    for n in &names {
        match map.get(n) {
            Some(&w) if w.is_finite() && w >= 0.0 => weights.push(w),
            Some(&w) => return Err(CliError::Usage(format!("{}: class {n}: weight {w} is not >= 0", path.display()))),
            None => return Err(CliError::Usage(format!("{}: no weight for class {n}", path.display()))),
        }
    }
    Ok(Some(weights))
}

/// `n what`, with an `s` unless `n` is 1.
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Counts the training steps this invocation ran (a resumed run starts inside an
/// epoch, an interrupted one stops inside one).
struct StepCount(usize);

impl Callback for StepCount {
    fn on_batch_end(&mut self, _epoch: usize, _batch: usize) -> Control {
        self.0 += 1;
        Control::Continue
    }
}

/// Prints what the data-parallel ranks spent exchanging gradients (rank 0's view):
/// seconds in all-reduces and their share of the training time, bytes sent per step.
fn print_comm(cluster: &Cluster, train_secs: f64, steps: usize) {
    let stats = cluster.group.stats();
    if stats.all_reduces == 0 || steps == 0 {
        return;
    }
    println!(
        "data-parallel on {} ranks: {:.3} ms per step in all-reduces ({:.1}% of training), {:.3} MB sent per step by each rank",
        cluster.size(),
        1e3 * stats.seconds / steps as f64,
        100.0 * stats.seconds / train_secs.max(1e-9),
        stats.bytes_sent as f64 / steps as f64 / 1e6
    );
}

/// Removes the run folder it names when dropped, if it holds nothing but the lock
/// file: a run that created its folder and failed before writing anything.
struct RemoveIfUnused(Option<std::path::PathBuf>);

impl Drop for RemoveIfUnused {
    fn drop(&mut self) {
        let Some(dir) = &self.0 else { return };
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        if names.iter().all(|n| n == crate::lock::LOCK_FILE) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs `nn-cli fit`: data → model → optimizer → fit → save → test.
///
/// In an MPI job of several ranks (`cluster`), every rank runs this with the same
/// flags and trains its share of each batch (`nn_train::FitConfig::collective`);
/// rank 0 alone locks and writes the run folder, prints, saves and tests.
pub fn run(args: FitArgs, matches: Option<&ArgMatches>, cluster: &Cluster) -> Result<()> {
    if matches!(args.run.data.data, crate::args::DataSource::Ratings { .. }) {
        if cluster.size() > 1 {
            return Err(CliError::Usage(
                "a recommender (--data ratings:…) trains in one process; run it without mpirun".into(),
            ));
        }
        return super::recommend::fit(&args, matches);
    }
    super::recommend::check_not_given(matches, &args.run.data.data)?;
    let root = cluster.is_root();
    // One run at a time per folder, locked before anything in it is read; what an
    // interrupted run left is cleaned up under the lock.
    let resume_dir = args.resume.clone();
    let mut lock = None;
    if let Some(dir) = &resume_dir {
        if !dir.is_dir() {
            return Err(CliError::Usage(format!("--resume {}: no such run folder", dir.display())));
        }
        let was_run = dir.join(crate::lock::LOCK_FILE).exists() || dir.join(RUN_FILE).exists();
        if !was_run && !nn_train::checkpoint::exists(&dir.join("checkpoint")) {
            return Err(CliError::Usage(format!(
                "--resume {}: not a run folder (no checkpoint/ or run.json; `nn-cli fit --out DIR` makes one)",
                dir.display()
            )));
        }
        if root {
            lock = Some(crate::lock::take(dir, &[dir])?);
        }
        // The other ranks read the checkpoint once rank 0 has recovered it.
        cluster.group.barrier()?;
        if !nn_train::checkpoint::exists(&dir.join("checkpoint")) {
            return Err(CliError::Usage(format!(
                "{}: nothing to resume, the run stopped before it began training (no checkpoint yet); start it again with the command that started it",
                dir.display()
            )));
        }
    }
    let cfg = resolve(&args, matches)?;
    if cluster.size() > 1 {
        // Every rank must run the same command: the whole run configuration but the
        // data path (each node may read its own copy; the data itself is compared by
        // fingerprint before the first step).
        let mut same = saved_config(&cfg);
        same.data.data = match same.data.data {
            crate::args::DataSource::Csv(_) => crate::args::DataSource::Csv(Default::default()),
            crate::args::DataSource::Mnist(Some(_)) => crate::args::DataSource::Mnist(Some(Default::default())),
            crate::args::DataSource::FashionMnist(_) => crate::args::DataSource::FashionMnist(Default::default()),
            other => other,
        };
        let bytes = serde_json::to_vec(&same).map_err(|e| CliError::Usage(format!("run configuration: {e}")))?;
        cluster.group.check_same("flags (the run configuration)", &bytes)?;
    }
    // A folder this run creates is removed again if the run fails before its first
    // checkpoint (a refused model, bad data), so a failed start leaves nothing behind.
    let mut created = RemoveIfUnused(None);
    if let (None, Some(out), true) = (&lock, &cfg.output.out, root) {
        if !out.exists() {
            created.0 = Some(out.clone());
        }
        lock = Some(crate::lock::take(out, &[out])?);
    }
    let _lock = lock;
    // A resumed run rebuilds the architecture its checkpoint saved, not what the spec
    // file (which may have been edited, moved or deleted since) says now.
    let checkpointed = match &resume_dir {
        Some(dir) => nn_train::checkpoint::load_spec(&dir.join("checkpoint"))?,
        None => None,
    };
    let checked = validate(&cfg, checkpointed.is_some())?;
    let (d, m, o, t) = (&cfg.data, &cfg.model, &cfg.optimizer, &cfg.training);

    // 1. Data (text is read, split and tokenized by crate::text).
    let (prepared, text) = match crate::text::prepare(&cfg)? {
        Some((p, run)) => (p, Some(run)),
        None => (prepare_data(&cfg, &checked)?, None),
    };
    let train = &prepared.train;

    // 2. Model.
    let outputs = outputs_for(train);
    let regression = prepared.task == nn_data::Task::Regression;
    let spec = if let Some(spec) = &checkpointed {
        spec.clone()
    } else if let Some(run) = &text {
        run.spec.clone()
    } else if PRESETS.contains(&m.model.as_str()) {
        preset(&m.model, train.sample_shape(), outputs, m.hidden, m.dropout, regression)?
    } else {
        read_spec(Path::new(&m.model))?
    };
    // Sized for the largest batch it will see: at most the training part.
    let mut sized = cfg.clone();
    sized.training.batch_size = t.batch_size.min(train.len().max(1));
    if let Some(run) = &text {
        sized = run.build_config(&sized);
    }
    let super::finetune::Prepared { mut model, rules } = super::finetune::build_model(&sized, outputs, spec)?;
    if let Some(run) = &text {
        model = run.adapt(model, &cfg)?;
    }
    if let (Some(saved), Some(dir)) = (&checkpointed, &resume_dir) {
        if model.spec() != saved {
            return Err(CliError::Usage(format!(
                "{}: the model to resume differs from the architecture its checkpoint saved (was --init-from's model changed?); start a new run",
                dir.display()
            )));
        }
    }
    let (trainable, frozen) = model.num_parameters();
    let name = match (&m.init_from, &checkpointed, &resume_dir) {
        (Some(d), _, _) => format!("from {}", d.display()),
        (None, Some(_), Some(dir)) => format!("{} (as saved in {})", m.model, dir.join("checkpoint").display()),
        _ => m.model.clone(),
    };
    println!("model {name}: {} parameters ({trainable} trainable, {frozen} non-trainable)", trainable + frozen);
    let weights = class_weights(t.class_weight.as_deref(), train)?;
    if let Some(w) = &weights {
        let listed: Vec<String> = w
            .iter()
            .enumerate()
            .map(|(c, w)| {
                let name = train.class_names().and_then(|n| n.get(c).cloned()).unwrap_or_else(|| c.to_string());
                format!("{}: {w:.4}", nn_layers::clip(&name))
            })
            .collect();
        println!("class weights: {}", listed.join(", "));
    }
    let loss = match text.as_ref().and_then(|r| r.loss()) {
        Some(lm) => lm,
        None => super::training_loss(train.targets(), &model, t.label_smoothing)?,
    };

    // 3. Optimizer, schedule, callbacks.
    let steps_per_epoch = train.len().div_ceil(t.batch_size);
    let schedule = parse_schedule(&o.lr_schedule, o.lr, steps_per_epoch, t.epochs)?;
    let mut optimizer = checked.optimizer.build::<f32>(rules)?;
    let saved = saved_config(&cfg);
    let metadata =
        model_metadata(d, prepared.target_name.clone().or(d.target.clone()), &prepared, t.seed, Some(&saved))?;
    let step_schedule = match &schedule {
        Schedule::Steps(s) => s.clone(),
        Schedule::Plateau(_) => None,
    };

    let mut history_so_far = History { seed: t.seed, ..History::default() };
    let mut initial_epoch = 0;
    let mut within_epoch = None;
    if let Some(dir) = &resume_dir {
        let loaded = nn_train::checkpoint::load(&dir.join("checkpoint"), &mut model)?;
        if loaded.optimizer.config != checked.optimizer {
            return Err(CliError::Usage(format!(
                "{}: the checkpoint's optimizer differs from run.json's",
                dir.display()
            )));
        }
        let shapes: Vec<(String, Vec<usize>)> = model
            .parameters()
            .iter()
            .filter(|p| p.trainable)
            .map(|p| (p.name.clone(), p.value.shape().to_vec()))
            .collect();
        let refs: Vec<(&str, &[usize])> = shapes.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
        optimizer.load_state(loaded.optimizer.state, &refs)?;
        initial_epoch = loaded.state.epochs_done;
        history_so_far = loaded.state.history;
        let at = match &loaded.state.partial {
            Some(p) => format!("at step {} of epoch {}", p.steps_done + 1, p.epoch + 1),
            None => format!("after epoch {initial_epoch}"),
        };
        within_epoch = loaded.state.partial;
        if initial_epoch >= t.epochs {
            println!(
                "nothing to do: {} of {} already done (raise --epochs to continue); saving its model again",
                dir.display(),
                plural(initial_epoch, "epoch")
            );
        } else {
            println!("resuming {} {at}, to {} in all", dir.display(), plural(t.epochs, "epoch"));
        }
    }
    // SIGINT/SIGTERM from here on: stop at the next batch, so every file being
    // written is completed (a second signal ends the process at once).
    let mut stop_on_signal = match crate::signals::install() {
        Ok(flag) => Some(crate::signals::StopOnSignal::new(flag)),
        Err(e) => {
            eprintln!("warning: cannot handle SIGINT/SIGTERM ({e}): they end the run at once");
            None
        }
    };
    // Rank 0 alone writes (run folder, checkpoints, TensorBoard).
    let out = cfg.output.out.as_ref().filter(|_| root);

    let mut nan_stop = TerminateOnNaN;
    let mut early = t.early_stopping.map(|p| EarlyStopping::new("val_loss", p));
    if early.is_some() && prepared.validation.is_none() {
        return Err(CliError::Usage("--early-stopping needs a validation part (--validation-split > 0)".into()));
    }
    let mut plateau = match schedule {
        Schedule::Plateau(p) => {
            if prepared.validation.is_none() {
                return Err(CliError::Usage(
                    "--lr-schedule plateau watches val_loss and needs a validation part (--validation-split > 0)"
                        .into(),
                ));
            }
            Some(ReduceLrOnPlateauCallback::new(p))
        }
        Schedule::Steps(_) => None,
    };
    // Checkpoints carry run.json; run.json and history.csv beside them change only
    // after a checkpoint succeeded.
    let mut resume_ckpt = match out {
        Some(o) => Some(
            ResumeCheckpoint::new(o.join("checkpoint"), history_so_far.clone(), step_schedule.clone())
                .with_attachment(
                    RUN_FILE,
                    serde_json::to_vec_pretty(&saved).map_err(|e| CliError::Usage(format!("run.json: {e}")))?,
                )
                .publishing_to(o),
        ),
        None => None,
    };
    let config = FitConfig {
        seed: t.seed,
        verbosity: match (root, cluster.size() > 1, Verbosity::try_from(cfg.output.verbose)?) {
            (false, _, _) => Verbosity::Silent,
            // mpirun gives its ranks a terminal even when its output is redirected:
            // one line per epoch, no live bar.
            (true, true, Verbosity::Auto) => Verbosity::Lines,
            (true, _, v) => v,
        },
        regularizer: checked.regularizer.clone(),
        clip_norm: o.clip_norm,
        schedule: step_schedule,
        initial_epoch,
        resume_within_epoch: within_epoch,
        metadata: metadata.clone(),
        augment: checked.augment,
        class_weights: weights,
        collective: (cluster.size() > 1).then(|| cluster.group.clone()),
        sync_batchnorm: t.sync_batchnorm,
        ..FitConfig::new(t.epochs, t.batch_size)
    };
    if cluster.size() > 1 {
        // The ranks agree on data, model and weights before anything is written.
        nn_train::check_ranks(&model, optimizer.as_ref(), train, prepared.validation.as_ref(), &config)?;
    }
    if let (Some(ckpt), None) = (&resume_ckpt, &resume_dir) {
        // A new run is resumable from its start.
        ckpt.save_now(&model, optimizer.as_ref(), 0, None)?;
    }
    created.0 = None;
    let mut abort = args.abort_after_epochs.map(AbortAfter);
    let mut raise = args.signal_after_steps.map(|after| SignalAfterSteps { after, seen: 0 });
    let mut tensorboard =
        cfg.output.tensorboard.as_ref().filter(|_| root).map(nn_train::TensorBoard::new).transpose()?;
    let mut callbacks: Vec<&mut dyn Callback> = vec![&mut nan_stop];
    if let Some(c) = early.as_mut() {
        callbacks.push(c);
    }
    if let Some(c) = plateau.as_mut() {
        callbacks.push(c);
    }
    if let Some(c) = resume_ckpt.as_mut() {
        callbacks.push(c);
    }
    if let Some(c) = tensorboard.as_mut() {
        callbacks.push(c);
    }
    if let Some(c) = abort.as_mut() {
        callbacks.push(c);
    }
    if let Some(c) = raise.as_mut() {
        callbacks.push(c);
    }
    if let Some(c) = stop_on_signal.as_mut() {
        callbacks.push(c);
    }
    let mut steps_run = StepCount(0);
    callbacks.push(&mut steps_run);
    let mut validation_memory = crate::ReturnMemoryAroundValidation;
    callbacks.push(&mut validation_memory);

    if initial_epoch < t.epochs {
        println!(
            "training {}, batch {}, {} (lr {}), seed {}{}",
            plural(t.epochs, "epoch"),
            t.batch_size,
            checked.optimizer.name(),
            o.lr,
            t.seed,
            checked.augment.map(|a| format!(", augment {a}")).unwrap_or_default()
        );
    }
    // 4. Train. What reading the data freed goes back to the OS (from every
    // thread's heap); from here on, freed memory is kept for the next step's buffers.
    crate::return_kept_memory();
    let started = std::time::Instant::now();
    let history = if initial_epoch < t.epochs {
        nn_train::fit(
            &mut model,
            optimizer.as_mut(),
            &loss,
            train,
            prepared.validation.as_ref(),
            &config,
            &mut callbacks,
        )?
    } else {
        History::default()
    };
    let seconds = started.elapsed().as_secs_f64();
    // Saving and testing reuse little of what training freed: hand it back.
    crate::return_kept_memory();
    let mut full = history_so_far;
    full.epochs.extend(history.epochs.iter().cloned());
    full.stopped = history.stopped.clone();
    full.restored_epoch = history.restored_epoch;
    if let Some(reason) = &history.stopped {
        if reason.starts_with("non-finite") {
            return Err(CliError::Usage(format!("{reason}; no model was saved (try a lower --lr)")));
        }
    }
    let another_rank = history.stopped.as_deref() == Some(nn_train::parallel::STOPPED_BY_ANOTHER_RANK);
    if let (None, true) = (crate::signals::received(), another_rank) {
        // Another rank of the MPI job was interrupted: every rank stopped at the same
        // step, and rank 0 keeps that point to resume from.
        let at = match &history.interrupted {
            Some(p) => format!("at step {} of epoch {}", p.steps_done, p.epoch + 1),
            None => format!("after epoch {}", full.epochs.last().map_or(0, |e| e.epoch)),
        };
        if let (Some(ckpt), Some(p)) = (&resume_ckpt, &history.interrupted) {
            ckpt.save_now(&model, optimizer.as_ref(), p.epoch, Some(p.clone()))?;
        }
        let resume = out.map(|o| format!("; continue with: nn-cli fit --resume {}", o.display())).unwrap_or_default();
        if root {
            eprintln!("another rank of the job was interrupted: every rank stopped {at}{resume}");
        }
        return Ok(());
    }
    if let Some(signal) = crate::signals::received() {
        // Stopped by SIGINT/SIGTERM after a step: a checkpoint of exactly that point
        // (the epoch-end callback wrote one when the step ended an epoch); main exits
        // with 128 + the signal's number.
        let at = match &history.interrupted {
            Some(p) => format!("at step {} of epoch {}", p.steps_done, p.epoch + 1),
            None => format!("after epoch {}", full.epochs.last().map_or(0, |e| e.epoch)),
        };
        if let (Some(ckpt), Some(p)) = (&resume_ckpt, &history.interrupted) {
            ckpt.save_now(&model, optimizer.as_ref(), p.epoch, Some(p.clone()))?;
        }
        if root {
            // (mpirun passes a Ctrl-C on to its ranks as SIGTERM.)
            eprintln!("{}", crate::signals::message(signal, &at, out.map(|o| o.as_path())));
        }
        return Ok(());
    }
    let train_secs: f64 = history.epochs.iter().map(|e| e.train_seconds).sum();
    if !history.epochs.is_empty() {
        println!(
            "trained {} epoch{} in {seconds:.1} s ({:.2} s per training epoch)",
            history.epochs.len(),
            if history.epochs.len() == 1 { "" } else { "s" },
            train_secs / history.epochs.len() as f64
        );
    }
    if cluster.size() > 1 {
        print_comm(cluster, train_secs, steps_run.0);
        if !root {
            return Ok(());
        }
    }

    // 5. Save.
    if let Some(out) = out {
        model.save_with_metadata(out, &metadata)?;
        if let Some(run) = &text {
            run.save_tokenizer(out)?;
        }
        full.write_csv(&out.join("history.csv"))?;
        crate::plot::learning_curves(&full, &out.join("learning_curves.svg"))?;
        println!(
            "saved model.json, weights.safetensors, history.csv, learning_curves.svg (with run.json and checkpoint/) in {}",
            out.display()
        );
        if model.parameters().iter().any(|p| p.kind == nn_layers::ParamKind::LoraA) {
            let check = prepared.test.as_ref().or(prepared.validation.as_ref()).unwrap_or(train);
            super::finetune::export_merged(&model, out, &metadata, check)?;
            // The merged folder is a model of its own: predict, evaluate, serve and
            // generate read its texts with the same tokenizer.
            if let Some(run) = &text {
                run.save_tokenizer(&out.join("merged"))?;
            }
        }
    }

    // 6. Test.
    let run_test = !cfg.output.no_test || cfg.output.test;
    if let Some(run) = &text {
        run.report(&model, &prepared, t.batch_size.max(64))?;
    }
    if let (true, Some(test), false) = (run_test, &prepared.test, text.as_ref().is_some_and(|r| r.is_lm())) {
        super::print_test(&model, test, prepared.target_scaler.as_ref(), t.batch_size.max(256), "")?;
    }
    Ok(())
}
