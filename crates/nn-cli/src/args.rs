//! Command-line flags (clap).

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

/// nn: train, evaluate, tune and serve neural networks on the CPU.
#[derive(Debug, Parser)]
#[command(name = "nn-cli", about, long_about = None)]
pub struct Cli {
    /// Threads for the kernels (GEMM and nn's pool); default: all CPUs.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model (default: a small MLP on the embedded digits data).
    Fit(Box<FitArgs>),
    /// Evaluate a saved model on a dataset: loss, accuracy, confusion matrix.
    Evaluate(EvaluateArgs),
    /// Predict classes for the rows of a CSV file or the images of an IDX file.
    Predict(PredictArgs),
    /// Print a model's layers, output shapes and parameter counts.
    Summary(SummaryArgs),
    /// Search hyperparameters (grid, random, successive halving) with early stopping per trial; resumable.
    Tune(Box<crate::commands::tune::TuneArgs>),
    /// Serve a saved model over HTTP: POST /v1/predict, GET /v1/model, /healthz, /metrics, and a page at /.
    Serve(crate::commands::serve::ServeArgs),
}

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DataSource {
    /// The embedded 8×8 digits (1,797 samples).
    Digits,
    /// MNIST IDX files in a folder.
    Mnist(PathBuf),
    /// Fashion-MNIST IDX files in a folder.
    FashionMnist(PathBuf),
    /// A CSV file with a header row.
    Csv(PathBuf),
    /// The adding problem with sequences of this length (nn_data::adding; 10,000
    /// training and 1,000 test sequences, data seed fixed).
    Adding(usize),
}

impl FromStr for DataSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, rest) = match s.split_once(':') {
            Some((k, r)) => (k, Some(r)),
            None => (s, None),
        };
        let path = |what: &str| match rest {
            Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
            _ => Err(format!("`{s}`: {what} needs a path, e.g. {what}:DIR")),
        };
        match kind {
            "digits" if rest.is_none() => Ok(DataSource::Digits),
            "mnist" => path("mnist").map(DataSource::Mnist),
            "fashion-mnist" => path("fashion-mnist").map(DataSource::FashionMnist),
            "csv" => path("csv").map(DataSource::Csv),
            "adding" => match rest.and_then(|r| r.parse::<usize>().ok()) {
                Some(n) if n >= 2 => Ok(DataSource::Adding(n)),
                _ => Err(format!("`{s}`: adding needs a sequence length of at least 2, e.g. adding:50")),
            },
            _ => Err(format!(
                "unknown data `{s}`: expected digits, mnist:DIR, fashion-mnist:DIR, csv:PATH or adding:LENGTH"
            )),
        }
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::Digits => write!(f, "digits"),
            DataSource::Mnist(p) => write!(f, "mnist:{}", p.display()),
            DataSource::FashionMnist(p) => write!(f, "fashion-mnist:{}", p.display()),
            DataSource::Csv(p) => write!(f, "csv:{}", p.display()),
            DataSource::Adding(n) => write!(f, "adding:{n}"),
        }
    }
}

/// Which optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain gradient descent θ ← θ − η·g.
    Sgd,
    /// SGD with momentum 0.9.
    Momentum,
    /// SGD with Nesterov momentum 0.9.
    Nesterov,
    /// Adam (Kingma & Ba).
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    Adamw,
    /// RMSprop.
    Rmsprop,
    /// Adagrad.
    Adagrad,
}

/// Feature scaling for CSV data (images are always scaled to [0, 1]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleKind {
    /// Standard scores with the training part's mean and standard deviation.
    Standard,
    /// Min-max onto [0, 1] with the training part's range.
    Minmax,
    /// No scaling.
    None,
}

/// `nn-cli fit` flags. Saved as `run.json` in `--out` so `--resume` can rebuild the run.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct FitArgs {
    /// digits | mnist:DIR | fashion-mnist:DIR | csv:PATH | adding:LENGTH
    #[arg(long, default_value = "digits")]
    pub data: DataSource,
    /// CSV target column, by header name or 0-based index (default: the last column).
    #[arg(long)]
    pub target: Option<String>,
    /// mlp | cnn | lstm | resnet | FILE.json (a model spec, version 1 chain or version 2 graph); `cnn` is the seed CNN, `lstm` reads samples as sequences (images row by row), `resnet` a small residual network for images.
    #[arg(long, default_value = "mlp")]
    pub model: String,
    /// Hidden units of the `mlp` preset (and LSTM units of the `lstm` preset).
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Epochs to train.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// The optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adam)]
    pub optimizer: OptimizerKind,
    /// Learning rate (the `lstm` preset defaults to 2e-3).
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f64,
    /// constant | step:EPOCHS:GAMMA | exponential:RATE | cosine[:WARMUP_EPOCHS] | plateau[:PATIENCE[:FACTOR]]
    #[arg(long, default_value = "constant")]
    pub lr_schedule: String,
    /// Fraction of the training part held out for validation, in (0, 1).
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    pub validation_split: f64,
    /// Evaluate on the test part after training (on by default when the data has one).
    #[arg(long, overrides_with = "no_test")]
    pub test: bool,
    /// Skip the test evaluation.
    #[arg(long)]
    pub no_test: bool,
    /// Fraction held out as the test part for data without one (digits, CSV).
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    pub test_split: f64,
    /// Feature scaling for CSV data.
    #[arg(long, value_enum, default_value_t = ScaleKind::Standard)]
    pub scale: ScaleKind,
    /// L1 penalty λ·Σ|w| on kernels.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub l1: f64,
    /// L2 penalty λ·Σw² on kernels (Keras `l2`).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub l2: f64,
    /// Decoupled weight decay λ (θ ← θ − η·λ·θ); AdamW's default is 0.004.
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Dropout rate after the hidden Dense layer (0 = none).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub dropout: f64,
    /// Clip the global gradient norm to this value.
    #[arg(long, allow_negative_numbers = true)]
    pub clip_norm: Option<f64>,
    /// Stop when val_loss has not improved for this many epochs (best weights restored).
    #[arg(long)]
    pub early_stopping: Option<usize>,
    /// Seed of initialisation, splits, shuffles and dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Keep only these classes, re-indexed from 0 in the order given: `0-4`, `5-9`, `1,3,7` (all parts of the data).
    #[arg(long)]
    #[serde(default)]
    pub classes: Option<String>,
    /// Keep only the first N training samples of each class (after a seeded shuffle; validation and test parts untouched).
    #[arg(long)]
    #[serde(default)]
    pub per_class: Option<usize>,
    /// Start from the weights of a model saved by `fit --out` (its architecture replaces --model); loaded by name, reported tensor by tensor.
    #[arg(long)]
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// With --init-from: load only these parameters (names or prefixes such as `layers.0`, comma-separated); each must load.
    #[arg(long, value_delimiter = ',', requires = "init_from")]
    #[serde(default)]
    pub load: Vec<String>,
    /// With --init-from: replace the output head (the last Dense layer) by a new one with K outputs.
    #[arg(long, requires = "init_from")]
    #[serde(default)]
    pub num_classes: Option<usize>,
    /// Freeze parameters: a layer range `0..3` (half-open, spec order), a layer index `2`, or a layer name or parameter prefix (`stem`, `layers.0.kernel`; comma-separated).
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub freeze: Vec<String>,
    /// Add LoRA adapters of this rank to the Dense layers (a new head excepted); everything else is frozen.
    #[arg(long)]
    #[serde(default)]
    pub lora_rank: Option<usize>,
    /// LoRA scale numerator α (the update is (α/r)·A·B); default: the rank (scale 1).
    #[arg(long, requires = "lora_rank")]
    #[serde(default)]
    pub lora_alpha: Option<f64>,
    /// With --init-from: multiply the learning rate of the loaded, trainable parameters by F (discriminative learning rates).
    #[arg(long, requires = "init_from")]
    #[serde(default)]
    pub lr_loaded: Option<f64>,
    /// Random image augmentation, off by default: `shift:PIXELS`, `rotate:DEGREES` or `shift:PIXELS,rotate:DEGREES` (each image shifted by whole pixels dx, dy in [-PIXELS, PIXELS] and rotated by an angle in [-DEGREES, DEGREES), DEGREES < 180, background 0). Training batches only (never validation, test or prediction); image data only; seeded by --seed.
    #[arg(long, value_name = "SPEC")]
    #[serde(default)]
    pub augment: Option<String>,
    /// Write model.json, weights.safetensors, history.csv, learning_curves.svg and checkpoint/ here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run saved in DIR (its run.json and checkpoint/); --epochs may raise the total.
    #[arg(long, conflicts_with = "out")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// One line per epoch even on a terminal.
    #[arg(long)]
    #[serde(skip)]
    pub quiet_progress: bool,
    /// (testing) abort the process after this many epochs, as a kill would.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub abort_after_epochs: Option<usize>,
}

/// `nn-cli evaluate` flags.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A folder written by `nn-cli fit --out`.
    #[arg(long)]
    pub model: PathBuf,
    /// digits | mnist:DIR | fashion-mnist:DIR | csv:PATH (its test part is used when it has one).
    #[arg(long)]
    pub data: DataSource,
    /// CSV target column (default: the one the model was trained with, else the last).
    #[arg(long)]
    pub target: Option<String>,
    /// Keep only these classes, re-indexed from 0 in the order given (as `fit --classes`).
    #[arg(long)]
    pub classes: Option<String>,
    /// Use the output head (last Dense layer) of this saved model instead of the model's own.
    #[arg(long)]
    pub head_from: Option<PathBuf>,
    /// Samples per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Also time inference: samples/s at `--batch-size` (median of 3 passes over the
    /// data) and the median latency of 200 single-sample predictions.
    #[arg(long)]
    pub timing: bool,
}

/// `nn-cli predict` flags.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A folder written by `nn-cli fit --out`.
    #[arg(long)]
    pub model: PathBuf,
    /// A CSV file (header row; the target column, if present, is ignored) or an IDX image file.
    #[arg(long)]
    pub input: PathBuf,
    /// Samples per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
}

/// `nn-cli summary` flags.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// mlp | cnn | lstm | resnet | FILE.json | DIR (a saved model).
    #[arg(long, default_value = "cnn")]
    pub model: String,
    /// The data whose shape a preset is sized to (default: MNIST's 28×28×1 and 10 classes).
    #[arg(long)]
    pub data: Option<DataSource>,
}
