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
    /// Most memory a model may need, as estimated before it is built: one training step at --batch-size (fit, tune) or one inference batch (predict and evaluate at --batch-size, serve at --max-batch). A size such as 512M, 8G or 1.5GiB (K, M, G, T are powers of 1024), or `unlimited`. Default: the environment variable NN_MAX_MEMORY if set, else this machine's memory (the smallest of MemTotal, the cgroup's memory limit and `ulimit -v`; 8 GiB where none can be read).
    #[arg(long, global = true, value_name = "SIZE")]
    pub max_memory: Option<MaxMemory>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// A `--max-memory` value: bytes, or `None` for `unlimited`
/// ([`nn_layers::parse_memory_size`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxMemory(pub Option<u64>);

impl FromStr for MaxMemory {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        nn_layers::parse_memory_size(s).map(MaxMemory)
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model (default: a small MLP on the embedded digits data).
    Fit(Box<FitArgs>),
    /// Evaluate a saved model on a dataset: loss, accuracy, confusion matrix.
    Evaluate(EvaluateArgs),
    /// Predict classes (or values, for regression) for the rows of a CSV file or the images of an IDX file.
    Predict(PredictArgs),
    /// Print a model's layers, output shapes and parameter counts.
    Summary(SummaryArgs),
    /// Search hyperparameters (grid, random, successive halving) with early stopping per trial; resumable.
    Tune(Box<crate::commands::tune::TuneArgs>),
    /// Serve a saved model over HTTP: POST /v1/predict, GET /v1/model, /healthz, /metrics, and a page at /.
    Serve(crate::commands::serve::ServeArgs),
    /// Write a saved model as an ONNX file (input scaling and class names included) for ONNX Runtime.
    Export(crate::commands::export::ExportArgs),
    /// Read an ONNX file (e.g. a PyTorch MLP or CNN, NCHW) into an nn model folder for evaluate, predict, serve and fit --init-from.
    Import(crate::commands::import::ImportArgs),
    /// Top-N items for a user from a recommender (`fit --data ratings:…`), with scores and titles.
    Recommend(crate::commands::recommend::RecommendArgs),
    /// The items most similar to an item (cosine of the recommender's item vectors).
    Similar(crate::commands::recommend::SimilarArgs),
    /// Continue a prompt with a language model (`fit --data text:FILE --model gpt`): greedy, temperature or top-k sampling, seeded.
    Generate(crate::commands::generate::GenerateArgs),
}

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DataSource {
    /// The embedded 8×8 digits (1,797 samples).
    Digits,
    /// MNIST IDX files in a folder; without one, downloaded once into a cache folder
    /// ([`nn_data::download::mnist`]).
    Mnist(Option<PathBuf>),
    /// Fashion-MNIST IDX files in a folder.
    FashionMnist(PathBuf),
    /// A CSV file with a header row.
    Csv(PathBuf),
    /// Text for a language model (`text:FILE`): a plain UTF-8 file, or a CSV file
    /// with `--text-column` whose rows are joined with newlines (see crate::text).
    Text(PathBuf),
    /// The adding problem with sequences of this length (nn_data::adding; 10,000
    /// training and 1,000 test sequences, data seed fixed).
    Adding(usize),
    /// Ratings or implicit feedback (`user,item,rating,timestamp` CSV, optionally
    /// gzipped) for a recommender, with an optional items file of item features
    /// (`ratings:FILE[,items=FILE]`; see nn_recommend::data).
    Ratings {
        /// The ratings file.
        ratings: PathBuf,
        /// The items file (`movieId,title,year,genres`), if any.
        items: Option<PathBuf>,
    },
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
            "mnist" if rest.is_none() => Ok(DataSource::Mnist(None)),
            "mnist" => path("mnist").map(|p| DataSource::Mnist(Some(p))),
            "fashion-mnist" => path("fashion-mnist").map(DataSource::FashionMnist),
            "csv" => path("csv").map(DataSource::Csv),
            "text" => path("text").map(DataSource::Text),
            "ratings" => {
                let rest = rest.unwrap_or_default();
                let (ratings, items) = match rest.split_once(",items=") {
                    Some((r, i)) if !i.is_empty() => (r, Some(PathBuf::from(i))),
                    Some(_) => return Err(format!("`{s}`: items= needs a path, e.g. ratings:FILE,items=FILE")),
                    None => (rest, None),
                };
                if ratings.is_empty() {
                    return Err(format!("`{s}`: ratings needs a path, e.g. ratings:FILE[,items=FILE]"));
                }
                Ok(DataSource::Ratings { ratings: PathBuf::from(ratings), items })
            }
            "adding" => match rest.and_then(|r| r.parse::<usize>().ok()) {
                Some(n) if n >= 2 => Ok(DataSource::Adding(n)),
                _ => Err(format!("`{s}`: adding needs a sequence length of at least 2, e.g. adding:50")),
            },
            _ => Err(format!(
                "unknown data `{s}`: expected digits, mnist[:DIR], fashion-mnist:DIR, csv:PATH, text:PATH, adding:LENGTH or ratings:FILE[,items=FILE]"
            )),
        }
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::Digits => write!(f, "digits"),
            DataSource::Mnist(None) => write!(f, "mnist"),
            DataSource::Mnist(Some(p)) => write!(f, "mnist:{}", p.display()),
            DataSource::FashionMnist(p) => write!(f, "fashion-mnist:{}", p.display()),
            DataSource::Csv(p) => write!(f, "csv:{}", p.display()),
            DataSource::Text(p) => write!(f, "text:{}", p.display()),
            DataSource::Adding(n) => write!(f, "adding:{n}"),
            DataSource::Ratings { ratings, items: None } => write!(f, "ratings:{}", ratings.display()),
            DataSource::Ratings { ratings, items: Some(items) } => {
                write!(f, "ratings:{},items={}", ratings.display(), items.display())
            }
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

/// `--task`: what the target column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Class labels (text or numbers): softmax output, sparse categorical cross-entropy, accuracy.
    Classification,
    /// Real values: linear output, MSE on standardised targets; RMSE, MAE and R² reported.
    Regression,
}

impl From<TaskKind> for nn_data::Task {
    fn from(t: TaskKind) -> Self {
        match t {
            TaskKind::Classification => nn_data::Task::Classification,
            TaskKind::Regression => nn_data::Task::Regression,
        }
    }
}

/// `--missing`: what an empty or `NA` feature cell does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingKind {
    /// Refuse the file, naming the row and column.
    #[default]
    Error,
    /// Drop rows with a missing feature value (the count is printed); `evaluate` drops them too.
    Drop,
    /// Replace a missing value by its column's training mean (saved with the model); a missing category by the training frequency of each category.
    Mean,
}

impl From<MissingKind> for nn_data::Missing {
    fn from(m: MissingKind) -> Self {
        match m {
            MissingKind::Error => nn_data::Missing::Error,
            MissingKind::Drop => nn_data::Missing::Drop,
            MissingKind::Mean => nn_data::Missing::Mean,
        }
    }
}

fn default_delimiter() -> String {
    ",".into()
}

/// The data group: where the data comes from, how a CSV file is read, and how it is split and scaled.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Data")]
pub struct DataArgs {
    /// digits | mnist[:DIR] | fashion-mnist:DIR | csv:PATH | adding:LENGTH (`mnist` alone downloads MNIST once into a cache folder)
    #[arg(long, default_value = "digits")]
    pub data: DataSource,
    /// CSV target column (default: the last column). A value equal to a header name is that column; otherwise a number is a 0-based index (so a column named `2020` or `0` is always reached by its name).
    #[arg(long)]
    pub target: Option<String>,
    /// classification | regression. Default: classification when the target column holds any text, regression when it holds only numbers (the choice is printed). Numeric class labels (1, 2, 3) need `--task classification`.
    #[arg(long, value_enum)]
    #[serde(default)]
    pub task: Option<TaskKind>,
    /// CSV columns to ignore (comma-separated), e.g. an `id` column: a value equal to a header name is that column; otherwise a number is a 0-based index.
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub drop: Vec<String>,
    /// CSV text columns to one-hot encode (comma-separated; a value equal to a header name is that column, otherwise a number is a 0-based index); categories unseen in training encode as all zeros at prediction time.
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub categorical: Vec<String>,
    /// CSV field delimiter: `,` `;` `|` `tab` or any one ASCII character.
    #[arg(long, default_value = ",")]
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Missing feature values (empty, NA, NaN, null, ?) in a CSV file: error | drop | mean.
    #[arg(long, value_enum, default_value_t = MissingKind::Error)]
    #[serde(default)]
    pub missing: MissingKind,
    /// Fraction held out for validation, in [0, 1) (0: no validation part), of what the test part leaves: for digits and CSV, of the rows left after --test-split (0.2 of the 80% the default test split leaves is 16% of all rows); for MNIST, of its training set.
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    pub validation_split: f64,
    /// Fraction held out as the test part for data without one (digits, CSV), in [0, 1) (0: train on every row).
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    pub test_split: f64,
    /// Feature scaling for CSV data.
    #[arg(long, value_enum, default_value_t = ScaleKind::Standard)]
    pub scale: ScaleKind,
    /// Keep only these classes, re-indexed from 0 in the order given: `0-4`, `5-9`, `1,3,7` (all parts of the data).
    #[arg(long)]
    #[serde(default)]
    pub classes: Option<String>,
    /// Keep only the first N training samples of each class (after a seeded shuffle; validation and test parts untouched).
    #[arg(long)]
    #[serde(default)]
    pub per_class: Option<usize>,
    /// Random image augmentation, off by default: `shift:PIXELS`, `rotate:DEGREES` or `shift:PIXELS,rotate:DEGREES` (each image shifted by whole pixels dx, dy in [-PIXELS, PIXELS] and rotated by an angle in [-DEGREES, DEGREES), DEGREES < 180, background 0). Training batches only (never validation, test or prediction); image data only; seeded by --seed.
    #[arg(long, value_name = "SPEC")]
    #[serde(default)]
    pub augment: Option<String>,
    /// Text data: --text-column, --context, --tokenizer, --holdout-groups, --split-seed.
    #[command(flatten)]
    #[serde(default)]
    pub text: crate::text::TextArgs,
}

impl DataArgs {
    /// The data group of `fit`'s defaults, reading `data`.
    pub fn defaults_for(data: DataSource) -> DataArgs {
        DataArgs {
            data,
            target: None,
            task: None,
            drop: Vec::new(),
            categorical: Vec::new(),
            delimiter: default_delimiter(),
            missing: MissingKind::Error,
            validation_split: 0.2,
            test_split: 0.2,
            scale: ScaleKind::Standard,
            classes: None,
            per_class: None,
            augment: None,
            text: crate::text::TextArgs::default(),
        }
    }
}

/// The model group: the architecture, and where its first weights come from.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Model")]
pub struct ModelArgs {
    /// mlp | cnn | lstm | resnet | FILE.json (a model spec, version 1 chain or version 2 graph); `cnn` is the seed CNN, `lstm` reads samples as sequences (images row by row), `resnet` a small residual network for images.
    #[arg(long, default_value = "mlp")]
    pub model: String,
    /// Hidden units of the `mlp` preset (and LSTM units of the `lstm` preset).
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Dropout rate after the hidden Dense layer (0 = none).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub dropout: f64,
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
    /// Sizes of the `gpt` and `transformer-classifier` presets: --layers, --heads, --d-model.
    #[command(flatten)]
    #[serde(default)]
    pub transformer: crate::text::TransformerArgs,
}

/// The optimizer group: the update rule, its learning rate and schedule, and the penalties.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Optimizer")]
pub struct OptimizerArgs {
    /// The optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adam)]
    pub optimizer: OptimizerKind,
    /// Learning rate (the `lstm` preset defaults to 2e-3).
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f64,
    /// constant | step:EPOCHS:GAMMA | exponential:RATE | cosine[:WARMUP_EPOCHS] | plateau[:PATIENCE[:FACTOR]]
    #[arg(long, default_value = "constant")]
    pub lr_schedule: String,
    /// Decoupled weight decay λ (θ ← θ − η·λ·θ); AdamW's default is 0.004.
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// L1 penalty λ·Σ|w| on kernels.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub l1: f64,
    /// L2 penalty λ·Σw² on kernels (Keras `l2`).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub l2: f64,
    /// Clip the global gradient norm to this value.
    #[arg(long, allow_negative_numbers = true)]
    pub clip_norm: Option<f64>,
    /// With --init-from: multiply the learning rate of the loaded, trainable parameters by F (discriminative learning rates).
    #[arg(long, requires = "init_from")]
    #[serde(default)]
    pub lr_loaded: Option<f64>,
}

/// The training group: epochs, batches, seed, stopping, and how classes are weighted.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Training")]
pub struct TrainingArgs {
    /// Epochs to train.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Seed of initialisation, splits, shuffles and dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stop when val_loss has not improved for this many epochs (best weights restored).
    #[arg(long)]
    pub early_stopping: Option<usize>,
    /// Class weights in the loss (Keras `class_weight`): `balanced` (n_samples / (n_classes · count), from the training part) or FILE.json (`{"class name": weight, ...}`, every class named).
    #[arg(long, value_name = "balanced|FILE.json")]
    #[serde(default)]
    pub class_weight: Option<String>,
    /// Label smoothing s of the classification loss: targets (1 − s)·one-hot + s/K, in [0, 1); classification only.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    #[serde(default)]
    pub label_smoothing: f64,
    /// Under MPI (`mpirun -np N nn-cli fit`): BatchNormalization normalises with the statistics of the whole global batch, all ranks' shares together (PyTorch's SyncBatchNorm), instead of each rank's own share. No effect in one process.
    #[arg(long)]
    #[serde(default)]
    pub sync_batchnorm: bool,
}

fn default_verbose() -> u8 {
    1
}

/// The output group: where the run is written and what is printed.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Write model.json, weights.safetensors, history.csv, learning_curves.svg, run.json and checkpoint/ here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Evaluate on the test part after training (on by default when the data has one).
    #[arg(long, overrides_with = "no_test")]
    pub test: bool,
    /// Skip the test evaluation, and hold no test part out of data without one (train on every row but the validation part).
    #[arg(long)]
    pub no_test: bool,
    /// Keras's `verbose` for the training progress: 0 none, 1 a progress bar on a terminal (one line per epoch otherwise), 2 one line per epoch (the run's summary lines are always printed).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    #[serde(default = "default_verbose")]
    pub verbose: u8,
    /// Write TensorBoard event files here (DIR/train, DIR/validation): losses, metrics and the learning rate per epoch.
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub tensorboard: Option<PathBuf>,
}

/// The names of [`RunConfig`]'s groups, as run.json writes them.
const GROUPS: [&str; 5] = ["data", "model", "optimizer", "training", "output"];

/// Everything that defines a training run, in five groups, checked once by
/// [`RunConfig::validate`]. Saved as `run.json` in `--out`; `fit --config run.json`
/// and `fit --resume DIR` read it back.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
pub struct RunConfig {
    /// The data group.
    #[command(flatten)]
    pub data: DataArgs,
    /// The model group.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The optimizer group.
    #[command(flatten)]
    pub optimizer: OptimizerArgs,
    /// The training group.
    #[command(flatten)]
    pub training: TrainingArgs,
    /// The output group.
    #[command(flatten)]
    pub output: OutputArgs,
}

impl RunConfig {
    /// Parses run.json: the grouped form, or the flat form of earlier versions.
    ///
    /// # Errors
    /// The JSON error of the grouped form (or of the flat form when the text has no
    /// `"data"` object).
    pub fn from_json(text: &str) -> Result<RunConfig, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        // Grouped: {"data": {"data": ...}}; flat: {"data": "Digits" or {"Csv": ...}}.
        if value.get("data").and_then(|d| d.get("data")).is_some() {
            return serde_json::from_value(value);
        }
        // The flat form: each field goes to the group that has it; fields the file
        // lacks keep their command-line defaults.
        let serde_json::Value::Object(flat) = value else {
            return serde_json::from_value(value);
        };
        let mut grouped = serde_json::to_value(RunConfig::defaults())?;
        for (key, v) in flat {
            for group in GROUPS {
                if grouped[group].get(&key).is_some() {
                    grouped[group][&key] = v;
                    break;
                }
            }
        }
        serde_json::from_value(grouped)
    }

    /// The configuration of `nn-cli fit` with no flag.
    pub fn defaults() -> RunConfig {
        use clap::FromArgMatches;
        let cmd = <RunConfig as Args>::augment_args(clap::Command::new("fit"));
        let matches = cmd.get_matches_from(["fit"]);
        RunConfig::from_arg_matches(&matches).unwrap_or_else(|e| unreachable!("every flag has a default: {e}"))
    }

    /// Replaces each field the command line gave explicitly (`matches`) by its value
    /// in `cli`, keeping this configuration's value for every other field. The clap
    /// argument ids are the field names, unique across the groups.
    ///
    /// # Errors
    /// A message when a field cannot be carried over (never for these types).
    pub fn override_with(&mut self, cli: &RunConfig, matches: &clap::ArgMatches) -> Result<Vec<String>, String> {
        let mut mine = serde_json::to_value(&*self).map_err(|e| e.to_string())?;
        let theirs = serde_json::to_value(cli).map_err(|e| e.to_string())?;
        let mut changed = Vec::new();
        for id in matches.ids() {
            let id = id.as_str();
            if matches.value_source(id) != Some(clap::parser::ValueSource::CommandLine) {
                continue;
            }
            for group in GROUPS {
                if let Some(v) = theirs[group].get(id) {
                    mine[group][id] = v.clone();
                    changed.push(id.replace('_', "-"));
                }
            }
        }
        *self = serde_json::from_value(mine).map_err(|e| e.to_string())?;
        Ok(changed)
    }
}

/// `nn-cli fit` flags: the run's configuration, and how this invocation starts it.
#[derive(Debug, Clone, Args)]
pub struct FitArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunConfig,
    /// Start from the configuration in FILE (a run.json written by `fit --out`); flags given on the command line override its values.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Continue the run saved in DIR (its run.json and checkpoint/); --epochs may raise the total.
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// One line per epoch even on a terminal (the same as --verbose 2).
    #[arg(long, hide = true)]
    pub quiet_progress: bool,
    /// (testing) abort the process after this many epochs, as a kill would.
    #[arg(long, hide = true)]
    pub abort_after_epochs: Option<usize>,
    /// (testing) send this process SIGINT after this many training steps, as a
    /// Ctrl-C at that exact moment would.
    #[arg(long, hide = true)]
    pub signal_after_steps: Option<usize>,
    /// Settings used only with `--data ratings:…` (a recommender).
    #[command(flatten)]
    pub recommend: RecommendFitArgs,
}

/// `nn-cli fit --data ratings:…` settings (a recommender; see nn_recommend). The
/// other flags that apply: --model (mf, ncf, two-tower or a RecSpec JSON file),
/// --hidden (the width of the dense layers; 0 for none), --epochs, --batch-size,
/// --lr, --weight-decay (the dense part), --seed, --split-seed, --early-stopping,
/// --validation-split, --out, --verbose.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Recommendation (--data ratings:FILE[,items=FILE])")]
pub struct RecommendFitArgs {
    /// How the ratings are split into training and test parts: random[:F], leave-last-out[:K] (each user's K latest by time), time[:F] (the latest F of all ratings).
    #[arg(long, value_name = "SPLIT", default_value = "random:0.2")]
    pub split: String,
    /// explicit: the rating column is a score to predict (MSE, RMSE); implicit: every row is a positive interaction (ranking losses).
    #[arg(long, value_name = "explicit|implicit", default_value = "explicit")]
    pub feedback: String,
    /// With --feedback implicit: keep only rows whose rating is at least this (the others are dropped).
    #[arg(long, value_name = "RATING")]
    pub implicit_threshold: Option<f32>,
    /// The training loss: mse (explicit), sampled-softmax or bpr (implicit; default sampled-softmax).
    #[arg(long, value_name = "mse|bpr|sampled-softmax")]
    pub loss: Option<String>,
    /// Negative items sampled per positive for sampled-softmax and bpr.
    #[arg(long, default_value_t = 20)]
    pub negatives: usize,
    /// Length of the user and item embeddings.
    #[arg(long, default_value_t = 32)]
    pub embedding_dim: usize,
    /// L2 penalty λ/2·‖row‖² on the embedding and bias rows a batch uses (the dense part's kernels take --weight-decay).
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub embedding_l2: f64,
    /// Add a bias per user and day of the rating (timeSVD++'s b_u,t, Koren 2010): a user's mood on one day. Explicit ratings with timestamps; it applies to ratings of a day the user rated in training (the test part of a random split), never to recommend or serve, which have no time.
    #[arg(long)]
    pub user_day_bias: bool,
    /// Duplicate user–item rows: last (keep the latest; the default), mean, or error.
    #[arg(long, value_name = "last|mean|error", default_value = "last")]
    pub duplicates: String,
}

/// `nn-cli evaluate` flags.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A folder written by `nn-cli fit --out`.
    #[arg(long)]
    pub model: PathBuf,
    /// digits | mnist:DIR | fashion-mnist:DIR | csv:PATH | text:PATH (a language model; its test part is used when it has one).
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
    /// CSV field delimiter: `,` `;` `|` `tab` or any one ASCII character (default: the one the model was trained with, else `,`).
    #[arg(long)]
    pub delimiter: Option<String>,
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
    /// A CSV file or an IDX image file. CSV columns are taken by the names the model was trained on, in any order; other columns (an id, the target) are ignored.
    #[arg(long)]
    pub input: PathBuf,
    /// CSV field delimiter: `,` `;` `|` `tab` or any one ASCII character (default: the one the model was trained with, else `,`).
    #[arg(long)]
    pub delimiter: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A run.json as the flat `FitArgs` of the previous release wrote it.
    const FLAT_RUN_JSON: &str = r#"{
  "data": {"Mnist": "/data/mnist"}, "target": null, "model": "cnn", "hidden": 64, "epochs": 3,
  "batch_size": 128, "optimizer": "adam", "lr": 0.002, "lr_schedule": "cosine:1",
  "validation_split": 0.1, "test": false, "no_test": false, "test_split": 0.2, "scale": "standard",
  "l1": 0.0, "l2": 0.0001, "weight_decay": null, "dropout": 0.25, "clip_norm": 1.0,
  "early_stopping": 4, "seed": 7, "classes": "0-4", "per_class": null, "init_from": null,
  "load": [], "num_classes": null, "freeze": [], "lora_rank": null, "lora_alpha": null,
  "lr_loaded": null, "augment": "shift:2", "out": "runs/cnn"
}"#;

    #[test]
    fn flat_run_json_of_the_previous_release_reads_into_groups() {
        let cfg = RunConfig::from_json(FLAT_RUN_JSON).unwrap();
        assert_eq!(cfg.data.data, DataSource::Mnist(Some("/data/mnist".into())));
        assert_eq!(cfg.data.validation_split, 0.1);
        assert_eq!(cfg.data.classes.as_deref(), Some("0-4"));
        assert_eq!(cfg.data.augment.as_deref(), Some("shift:2"));
        assert_eq!(cfg.data.delimiter, ",");
        assert_eq!((cfg.model.model.as_str(), cfg.model.hidden, cfg.model.dropout), ("cnn", 64, 0.25));
        assert_eq!((cfg.optimizer.lr, cfg.optimizer.l2, cfg.optimizer.clip_norm), (0.002, 0.0001, Some(1.0)));
        assert_eq!(cfg.optimizer.lr_schedule, "cosine:1");
        assert_eq!((cfg.training.epochs, cfg.training.batch_size, cfg.training.seed), (3, 128, 7));
        assert_eq!(cfg.training.early_stopping, Some(4));
        assert_eq!(cfg.training.label_smoothing, 0.0);
        assert_eq!(cfg.output.out, Some(PathBuf::from("runs/cnn")));
        assert_eq!(cfg.output.verbose, 1);
        // Written back grouped, it reads back equal.
        let grouped = serde_json::to_string(&cfg).unwrap();
        assert!(grouped.starts_with(r#"{"data":{"data":{"Mnist":"/data/mnist"}"#), "{grouped}");
        assert_eq!(RunConfig::from_json(&grouped).unwrap(), cfg);
    }

    #[test]
    fn mnist_without_a_folder_means_the_download_cache() {
        assert_eq!("mnist".parse::<DataSource>().unwrap(), DataSource::Mnist(None));
        assert_eq!("mnist:d".parse::<DataSource>().unwrap(), DataSource::Mnist(Some("d".into())));
        assert_eq!(DataSource::Mnist(None).to_string(), "mnist");
        assert!("mnist:".parse::<DataSource>().is_err());
    }
}
