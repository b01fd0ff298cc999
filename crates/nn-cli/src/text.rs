//! Text data for `nn-cli fit`: a language model (`--data text:FILE`, `--model gpt`)
//! and text classification (`--data csv:FILE --text-column COL --target COL`,
//! `--model transformer-classifier`), with the tokenizer trained on the training
//! part and saved as `tokenizer.json` beside the model, and fine-tuning from a
//! pretrained language model (`--init-from`: the body's weights by name, `--freeze
//! body` for a linear probe, `--lora-rank` on the attention and MLP projections).
//!
//! The splits (see [`prepare`]):
//!
//! - `--holdout-groups book,chapter`: whole groups of CSV rows (equal cells in these
//!   columns) are held out as the test part (`--test-split` is the fraction of
//!   groups; [`nn_text::group_split`]), seeded by `--split-seed` (default `--seed`),
//!   so a pretraining run and the fine-tuning runs of any seed share one test part.
//!   Without it, the last `--test-split` of the rows (of the text, for a plain file)
//!   is the test part.
//! - The validation part is the last `--validation-split` of the training rows (of
//!   the training text): a contiguous block, so no window spans both sides.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use nn_data::{Dataset, Task};
use nn_layers::loss::Loss;
use nn_layers::{name_matches, LayerSpec, LoadOptions, LoraConfig, ModelSpec, SequencePooling, Sequential};
use nn_text::{TextTable, TextTokenizer};
use serde::{Deserialize, Serialize};

use crate::args::{DataSource, RunConfig};
use crate::data::{self, Prepared};
use crate::error::{CliError, Result};

/// The text presets `--model` accepts.
pub const MODELS: [&str; 2] = ["gpt", "transformer-classifier"];

/// The tokenizer file saved beside a text model.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// `--context`'s default.
pub const DEFAULT_CONTEXT: usize = 128;
/// The vocabulary of `--tokenizer bpe` without a size.
pub const DEFAULT_VOCAB: usize = 4096;

/// Flags of text data (part of the data group, saved in run.json).
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
pub struct TextArgs {
    /// The CSV column holding text: with `--data text:FILE.csv[.gz]` its rows, joined with newlines, train a language model; with `--data csv:FILE` each row is a text to classify into `--target`.
    #[arg(long)]
    #[serde(default)]
    pub text_column: Option<String>,
    /// Tokens per window (language model) or per text (classification: padded with <pad> or cut). Default 128, or the --init-from model's.
    #[arg(long)]
    #[serde(default)]
    pub context: Option<usize>,
    /// bpe[:VOCAB] (byte-level BPE trained on the training part only; default bpe:4096) | bytes | FILE.json (a saved tokenizer). With --init-from the pretrained model's tokenizer.json is used.
    #[arg(long, value_name = "bpe[:VOCAB]|bytes|FILE.json")]
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Text from CSV: hold out whole groups of rows as the test part, rows with equal cells in these columns (comma-separated, e.g. book,chapter) staying together; --test-split is then the fraction of groups.
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub holdout_groups: Vec<String>,
    /// Seed of the test and validation splits of text and ratings data (held-out groups, validation rows, a random ratings split); default --seed. Keep it fixed across runs that must share a test part (a pretraining run and its fine-tuning runs; several model seeds).
    #[arg(long)]
    #[serde(default)]
    pub split_seed: Option<u64>,
}

impl TextArgs {
    fn given(&self) -> Option<&'static str> {
        if self.text_column.is_some() {
            Some("--text-column")
        } else if self.context.is_some() {
            Some("--context")
        } else if self.tokenizer.is_some() {
            Some("--tokenizer")
        } else if !self.holdout_groups.is_empty() {
            Some("--holdout-groups")
        } else if self.split_seed.is_some() {
            Some("--split-seed")
        } else {
            None
        }
    }
}

/// Sizes of the `gpt` and `transformer-classifier` presets (part of the model
/// group, saved in run.json).
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
pub struct TransformerArgs {
    /// Transformer blocks of the gpt / transformer-classifier presets (default 4).
    #[arg(long)]
    #[serde(default)]
    pub layers: Option<usize>,
    /// Attention heads per block (default 4); must divide --d-model.
    #[arg(long)]
    #[serde(default)]
    pub heads: Option<usize>,
    /// Width of the residual stream (default 128).
    #[arg(long)]
    #[serde(default)]
    pub d_model: Option<usize>,
    /// How the transformer-classifier sums up a text for its head (default mean).
    #[arg(long, value_enum)]
    #[serde(default)]
    pub pooling: Option<PoolingKind>,
}

/// `--pooling`: how the transformer-classifier reduces a text to one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolingKind {
    /// The mean of the final states of the real (unpadded) tokens.
    #[default]
    Mean,
    /// A learned class token appended after the text (it takes one of the --context positions); the head reads its final state. With a GPT's causal body only this last position sees the whole text.
    ClassToken,
}

impl From<PoolingKind> for SequencePooling {
    fn from(p: PoolingKind) -> Self {
        match p {
            PoolingKind::Mean => SequencePooling::Mean,
            PoolingKind::ClassToken => SequencePooling::ClassToken,
        }
    }
}

/// The sizes of a Transformer preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Vocabulary.
    pub vocab: usize,
    /// Positions per sample: the tokens of a window or text, and a classifier's class
    /// token.
    pub context: usize,
    /// Residual width.
    pub d_model: usize,
    /// Heads per block.
    pub heads: usize,
    /// Blocks.
    pub layers: usize,
    /// Whether the attention is causal (a GPT's).
    pub causal: bool,
}

impl Sizes {
    /// The sizes of a saved `gpt` or `transformer-classifier` spec: the context from
    /// its input (and one more for a class token), vocabulary and width from its Embedding, heads from its first
    /// MultiHeadAttention, blocks by counting them, causal when any attention is.
    ///
    /// # Errors
    /// [`CliError::Usage`] for a spec without an Embedding or attention layer.
    pub fn of(spec: &ModelSpec, dir: &Path) -> Result<Sizes> {
        let mut embedding = None;
        let mut heads = None;
        let mut layers = 0;
        let mut causal = false;
        let mut class_token = 0;
        for node in &spec.layers {
            match &node.layer {
                LayerSpec::ClassToken(_) => class_token = 1,
                LayerSpec::Embedding(e) if embedding.is_none() => embedding = Some((e.input_dim, e.output_dim)),
                LayerSpec::MultiHeadAttention(a) => {
                    heads.get_or_insert(a.num_heads);
                    causal |= a.use_causal_mask;
                    layers += 1;
                }
                _ => {}
            }
        }
        match (embedding, heads, spec.input_shape.as_slice()) {
            (Some((vocab, d_model)), Some(heads), &[tokens]) => {
                Ok(Sizes { vocab, context: tokens + class_token, d_model, heads, layers, causal })
            }
            _ => Err(CliError::Usage(format!(
                "--init-from {}: not a text Transformer (gpt or transformer-classifier: token ids in, an Embedding and attention blocks)",
                dir.display()
            ))),
        }
    }
}

/// Bytes and tokens of a language-modelling part, for bits per byte.
#[derive(Debug, Clone)]
struct LmPart {
    /// Predicted tokens (windows × context).
    tokens: usize,
    /// UTF-8 bytes those tokens decode to.
    bytes: usize,
    /// The part's text (for the n-gram baseline).
    text: String,
}

/// What a text run needs besides its data: the model spec, the tokenizer, and how
/// to adapt a pretrained model.
pub struct TextRun {
    /// The preset's spec.
    pub spec: ModelSpec,
    tokenizer: TextTokenizer,
    /// Language modelling: the training text, validation and test parts.
    lm: Option<(String, Option<LmPart>, Option<LmPart>)>,
    pretrained: Option<PathBuf>,
}

/// Parses `--tokenizer` and trains or loads it on `train_texts`.
fn tokenizer_for<'a>(spec: Option<&str>, train_texts: impl Iterator<Item = &'a str>) -> Result<TextTokenizer> {
    let spec = spec.unwrap_or("bpe");
    let tok = if spec == "bytes" {
        TextTokenizer::bytes()
    } else if spec == "bpe" || spec.starts_with("bpe:") {
        let vocab = match spec.strip_prefix("bpe:") {
            None => DEFAULT_VOCAB,
            Some(v) => v.parse::<usize>().map_err(|_| {
                CliError::Usage(format!("--tokenizer {spec}: the vocabulary must be a whole number, e.g. bpe:4096"))
            })?,
        };
        TextTokenizer::train_bpe(train_texts, vocab)?
    } else if spec.ends_with(".json") {
        TextTokenizer::load(spec)?
    } else {
        return Err(CliError::Usage(format!("--tokenizer {spec}: expected bpe[:VOCAB], bytes or a FILE.json")));
    };
    Ok(tok)
}

/// `e`, prefixed with the flag that named its missing column (`flags`: column and
/// flag pairs, the first match wins), so the message says what to change.
fn naming_flag(e: nn_text::TextError, flags: &[(&str, &str)]) -> CliError {
    if let nn_text::TextError::MissingColumn { column, .. } = &e {
        if let Some((_, flag)) = flags.iter().find(|(c, _)| c == column) {
            return CliError::Usage(format!("{flag} {column}: {e}"));
        }
    }
    e.into()
}

/// Whether `path` names a CSV or TSV file (`.csv`, `.tsv`, gzipped or not, any case).
fn is_csv_name(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    [".csv", ".csv.gz", ".tsv", ".tsv.gz"].iter().any(|ext| name.ends_with(ext))
}

/// The largest char boundary of `s` at or below `at`.
fn floor_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Windows of `text` (`context` inputs, next-token targets, stride `context`) and
/// the bytes and tokens they predict.
fn lm_part(tok: &TextTokenizer, text: String, context: usize, what: &str) -> Result<(Dataset, LmPart)> {
    let ids = tok.encode(&text)?;
    let windows = nn_text::lm_windows(&ids, context, 0.0).map_err(|_| {
        CliError::Usage(format!(
            "the {what} part of the text has {} token{}, too few for one window of --context {context} \
             (it needs at least {}: give more text or a smaller --context{})",
            ids.len(),
            if ids.len() == 1 { "" } else { "s" },
            context + 1,
            match what {
                "validation" => ", or a larger --validation-split",
                "test" => ", or a larger --test-split",
                _ => "",
            }
        ))
    })?;
    let n = windows.train.len();
    let covered = n * context;
    // The targets are tokens 1..=covered: their bytes are those of the decoded prefix
    // of covered + 1 tokens less those of the first token.
    let bytes = tok.decode(&ids[..covered + 1])?.len() - tok.decode(&ids[..1])?.len();
    Ok((windows.train, LmPart { tokens: covered, bytes, text }))
}

/// Splits row indices `0..n` of `table` into (training, test) as `--holdout-groups`
/// and `--test-split` say.
fn split_rows(table: &TextTable, args: &crate::args::DataArgs, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    let n = table.len();
    if args.test_split == 0.0 {
        return Ok(((0..n).collect(), Vec::new()));
    }
    if args.text.holdout_groups.is_empty() {
        let cut = ((n as f64) * (1.0 - args.test_split)).floor() as usize;
        return Ok(((0..cut).collect(), (cut..n).collect()));
    }
    let columns: Vec<&str> = args.text.holdout_groups.iter().map(String::as_str).collect();
    let split = nn_text::group_split(table, &columns, args.test_split, seed)?;
    println!(
        "held out {} of {} groups ({}) as the test part: {} rows",
        split.test_groups,
        split.train_groups + split.test_groups,
        columns.join(", "),
        split.test.len()
    );
    Ok((split.train, split.test))
}

/// The tokenizer and sizes of a pretrained model in `dir` (`--init-from`).
fn pretrained(dir: &Path, args: &RunConfig) -> Result<(TextTokenizer, Sizes)> {
    if args.data.text.tokenizer.is_some() {
        return Err(CliError::Usage(format!(
            "--tokenizer: with --init-from the pretrained model's tokenizer ({}) is used; drop --tokenizer",
            dir.join(TOKENIZER_FILE).display()
        )));
    }
    if !dir.exists() {
        return Err(CliError::Usage(format!(
            "--init-from {}: no such folder (give the --out folder of a `nn-cli fit --data text:… --model gpt` run)",
            dir.display()
        )));
    }
    let path = dir.join(TOKENIZER_FILE);
    if !path.exists() {
        return Err(CliError::Usage(format!(
            "--init-from {}: no {TOKENIZER_FILE}; a text model to fine-tune must come from `nn-cli fit --data text:…`",
            dir.display()
        )));
    }
    let tok = TextTokenizer::load(&path)?;
    let spec = ModelSpec::read_saved(dir)?;
    let sizes = Sizes::of(&spec, dir)?;
    if let Some(c) = args.data.text.context.filter(|&c| c != sizes.context) {
        let how = if c > sizes.context { "longer than" } else { "different from" };
        return Err(CliError::Usage(format!(
            "--context {c} is {how} the context of the model in {} ({} positions in its position embedding); use --context {} or leave it out",
            dir.display(),
            sizes.context,
            sizes.context
        )));
    }
    let t = &args.model.transformer;
    for (flag, given, have) in [
        ("--layers", t.layers, sizes.layers),
        ("--heads", t.heads, sizes.heads),
        ("--d-model", t.d_model, sizes.d_model),
    ] {
        if let Some(g) = given.filter(|&g| g != have) {
            return Err(CliError::Usage(format!(
                "{flag} {g}: the model in {} has {have}; its sizes are kept with --init-from",
                dir.display()
            )));
        }
    }
    Ok((tok, sizes))
}

/// Reads, splits and tokenizes text data when the run asks for it (`--data text:…`,
/// or `--data csv:… --text-column`); `None` for other data.
///
/// # Errors
/// [`CliError::Usage`] for text flags on other data, a text model on other data, a
/// missing `--target` for classification, parts too short for one window, and the
/// pretrained model's mismatches (see [`pretrained`]); [`CliError::Text`] for the
/// reading and tokenizing errors (an empty file, a missing column, an empty text
/// cell, bytes that are not UTF-8).
pub fn prepare(cfg: &RunConfig) -> Result<Option<(Prepared, TextRun)>> {
    let d = &cfg.data;
    let model = cfg.model.model.as_str();
    let is_text = match &d.data {
        DataSource::Text(_) => true,
        DataSource::Csv(_) => d.text.text_column.is_some(),
        _ => false,
    };
    if !is_text {
        if let Some(flag) = d.text.given() {
            return Err(CliError::Usage(format!(
                "{flag} applies to text data (--data text:FILE, or --data csv:FILE with --text-column), not {}",
                d.data
            )));
        }
        if MODELS.contains(&model) {
            return Err(CliError::Usage(format!(
                "--model {model} reads token ids: use --data text:FILE (gpt) or --data csv:FILE --text-column COL (transformer-classifier)"
            )));
        }
        return Ok(None);
    }
    let split_seed = d.text.split_seed.unwrap_or(cfg.training.seed);
    let pre = match &cfg.model.init_from {
        Some(dir) => Some(pretrained(dir, cfg)?),
        None => None,
    };
    let t = &cfg.model.transformer;
    let sizes_for = |vocab: usize| match &pre {
        Some((_, s)) => Sizes { vocab, ..*s },
        None => Sizes {
            vocab,
            context: d.text.context.unwrap_or(DEFAULT_CONTEXT),
            d_model: t.d_model.unwrap_or(128),
            heads: t.heads.unwrap_or(4),
            layers: t.layers.unwrap_or(4),
            causal: false,
        },
    };
    let context = sizes_for(0).context;
    if context == 0 {
        return Err(CliError::Usage("--context must be at least 1".into()));
    }
    let pooling = t.pooling.unwrap_or_default();
    if t.pooling.is_some() && model != "transformer-classifier" {
        return Err(CliError::Usage(format!("--pooling applies to --model transformer-classifier, not {model}")));
    }
    if pooling == PoolingKind::ClassToken && context < 2 {
        return Err(CliError::Usage(format!(
            "--pooling class-token takes one of the --context positions: --context must be at least 2, got {context}"
        )));
    }
    let dropout = cfg.model.dropout;
    match &d.data {
        DataSource::Text(path) => {
            if model != "gpt" {
                return Err(CliError::Usage(format!(
                    "--data text: trains a language model: --model gpt (got {model})"
                )));
            }
            // The three parts as text: training, validation, test.
            let (train_text, val_text, test_text, train_rows): (String, String, String, Vec<String>) = match &d
                .text
                .text_column
            {
                Some(col) => {
                    let group = d.text.holdout_groups.first().unwrap_or(col);
                    let table = nn_text::read_text_csv(path, col, group)
                        .map_err(|e| naming_flag(e, &[(col, "--text-column"), (group, "--holdout-groups")]))?;
                    let (train, test) = split_rows(&table, d, split_seed)?;
                    let cut = ((train.len() as f64) * (1.0 - d.validation_split)).floor() as usize;
                    let texts = table.texts();
                    let join = |rows: &[usize]| rows.iter().map(|&r| texts[r].as_str()).collect::<Vec<_>>().join("\n");
                    let rows: Vec<String> = train[..cut].iter().map(|&r| texts[r].clone()).collect();
                    (join(&train[..cut]), join(&train[cut..]), join(&test), rows)
                }
                None => {
                    // A CSV file read as plain text would train on its commas and
                    // other columns without a word said: ask for the column.
                    if is_csv_name(path) {
                        return Err(CliError::Usage(format!(
                            "{}: a CSV file: pass --text-column COL (the column holding the text; its rows are \
                             joined with newlines), or give the text as a plain .txt file",
                            path.display()
                        )));
                    }
                    let text = nn_text::read_text_file(path)?;
                    let keep = 1.0 - d.test_split;
                    let a = floor_boundary(&text, ((text.len() as f64) * keep * (1.0 - d.validation_split)) as usize);
                    let b = floor_boundary(&text, ((text.len() as f64) * keep) as usize).max(a);
                    let rows = text[..a].lines().map(str::to_string).collect();
                    (text[..a].to_string(), text[a..b].to_string(), text[b..].to_string(), rows)
                }
            };
            let tok = match &pre {
                Some((tok, _)) => tok.clone(),
                None => tokenizer_for(d.text.tokenizer.as_deref(), train_rows.iter().map(String::as_str))?,
            };
            let (train, train_part) = lm_part(&tok, train_text, context, "training")?;
            let validation =
                if d.validation_split > 0.0 { Some(lm_part(&tok, val_text, context, "validation")?) } else { None };
            let test = if d.test_split > 0.0 { Some(lm_part(&tok, test_text, context, "test")?) } else { None };
            println!(
                "text {}: tokenizer {} ({} tokens); {} training tokens ({} bytes){}",
                path.display(),
                format!("{:?}", tok.kind()).to_lowercase(),
                tok.vocab_size(),
                train_part.tokens,
                train_part.text.len(),
                validation
                    .as_ref()
                    .map(|(_, p)| format!(", {} validation tokens ({} bytes)", p.tokens, p.text.len()))
                    .unwrap_or_default()
            );
            let s = sizes_for(tok.vocab_size());
            let spec = ModelSpec::gpt(s.vocab, s.context, s.d_model, s.heads, s.layers, dropout)
                .map_err(|e| CliError::Usage(format!("--model gpt: {e}")))?;
            let prepared = Prepared {
                train,
                validation: validation.as_ref().map(|(d, _)| d.clone()),
                test: test.as_ref().map(|(d, _)| d.clone()),
                scalers: Vec::new(),
                task: Task::Classification,
                schema: None,
                target_scaler: None,
                target_name: None,
            };
            let lm = Some((train_part.text, validation.map(|(_, p)| p), test.map(|(_, p)| p)));
            let run = TextRun {
                spec,
                tokenizer: tok,
                lm,
                pretrained: pre.map(|_| cfg.model.init_from.clone().unwrap_or_default()),
            };
            Ok(Some((prepared, run)))
        }
        DataSource::Csv(path) => {
            if model != "transformer-classifier" {
                return Err(CliError::Usage(format!(
                    "--text-column classifies texts: --model transformer-classifier (got {model})"
                )));
            }
            let col = d.text.text_column.as_deref().unwrap_or("text");
            let Some(target) = d.target.as_deref() else {
                return Err(CliError::Usage("--text-column: name the class column with --target".into()));
            };
            let table = nn_text::read_text_csv(path, col, target)
                .map_err(|e| naming_flag(e, &[(col, "--text-column"), (target, "--target")]))?;
            let (train_rows, test_rows) = split_rows(&table, d, split_seed)?;
            let parts = nn_data::split::shuffled_split(
                train_rows.len(),
                &[1.0 - d.validation_split, d.validation_split],
                split_seed.wrapping_add(1),
            )?;
            let mut fit_rows: Vec<usize> = parts[0].iter().map(|&i| train_rows[i]).collect();
            let mut val_rows: Vec<usize> = parts[1].iter().map(|&i| train_rows[i]).collect();
            fit_rows.sort_unstable();
            val_rows.sort_unstable();
            let tok = match &pre {
                Some((tok, _)) => tok.clone(),
                None => {
                    let texts = table.texts();
                    tokenizer_for(d.text.tokenizer.as_deref(), fit_rows.iter().map(|&r| texts[r].as_str()))?
                }
            };
            // A class token takes the last of the model's positions.
            let text_tokens = context - usize::from(pooling == PoolingKind::ClassToken);
            let encode = |rows: &[usize]| -> Result<Option<Dataset>> {
                if rows.is_empty() {
                    return Ok(None);
                }
                let part = nn_text::encode_classification(&table.select(rows)?, &tok, text_tokens)?;
                Ok(Some(part.dataset))
            };
            let train = encode(&fit_rows)?.ok_or_else(|| CliError::Usage("the training part is empty".into()))?;
            let positions = if text_tokens < context {
                format!("context {context} ({text_tokens} tokens of text and the class token)")
            } else {
                format!("context {context}")
            };
            println!(
                "text {}: column {col:?} → {} classes of {target:?}; tokenizer {} ({} tokens), {positions}",
                path.display(),
                table.num_classes(),
                format!("{:?}", tok.kind()).to_lowercase(),
                tok.vocab_size()
            );
            let prepared = Prepared {
                train,
                validation: encode(&val_rows)?,
                test: encode(&test_rows)?,
                scalers: Vec::new(),
                task: Task::Classification,
                schema: None,
                target_scaler: None,
                target_name: Some(target.to_string()),
            };
            let prepared = data::restrict(prepared, d.classes.as_deref(), d.per_class, cfg.training.seed)?;
            // After --classes, the head has one output per class kept.
            let classes = prepared.train.num_classes().unwrap_or(table.num_classes());
            let s = sizes_for(tok.vocab_size());
            let mut spec = ModelSpec::transformer_classifier_with(
                s.vocab,
                s.context,
                s.d_model,
                s.heads,
                s.layers,
                classes,
                dropout,
                pooling.into(),
            )
            .map_err(|e| CliError::Usage(format!("--model transformer-classifier: {e}")))?;
            if s.causal {
                // The body of a GPT was trained to attend to earlier tokens only: it keeps
                // its causal attention (the padding, at the end, stays masked as well).
                for node in &mut spec.layers {
                    if let LayerSpec::MultiHeadAttention(a) = &mut node.layer {
                        a.use_causal_mask = true;
                    }
                }
                println!("attention stays causal, as in the pretrained model");
            }
            println!(
                "data: {} training, {} validation, {} test texts",
                prepared.train.len(),
                prepared.validation.as_ref().map_or(0, Dataset::len),
                prepared.test.as_ref().map_or(0, Dataset::len)
            );
            let run = TextRun { spec, tokenizer: tok, lm: None, pretrained: cfg.model.init_from.clone() };
            Ok(Some((prepared, run)))
        }
        _ => Ok(None),
    }
}

/// Whether parameter `name` is a LoRA adapter.
fn is_adapter(name: &str) -> bool {
    matches!(name.rsplit('.').next(), Some("lora_a" | "lora_b"))
}

/// The output head's layer name in the presets.
fn head_name(spec: &ModelSpec) -> &'static str {
    if spec.layers.iter().any(|l| l.name.as_deref() == Some("head")) {
        "head"
    } else {
        "logits"
    }
}

impl TextRun {
    /// The run configuration `finetune::build_model` builds the fresh preset from:
    /// `cfg` without `--init-from`, `--lora-rank` and `--freeze body` (applied by
    /// [`TextRun::adapt`] once the pretrained weights are in).
    pub fn build_config(&self, cfg: &RunConfig) -> RunConfig {
        let mut c = cfg.clone();
        c.model.init_from = None;
        c.model.lora_rank = None;
        c.model.lora_alpha = None;
        c.model.freeze.retain(|f| f != "body");
        c
    }

    /// The loss: next-token sparse categorical cross-entropy from logits for a
    /// language model; `None` (the usual choice) for classification.
    pub fn loss(&self) -> Option<Loss> {
        self.lm.as_ref().map(|_| Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 })
    }

    /// Loads the pretrained body by name (every parameter but the head's), then
    /// `--freeze body` (all but the head) and `--lora-rank` (adapters on the Dense
    /// layers but the head and on the MultiHeadAttention layers, i.e. the blocks' MLP
    /// and attention projections; everything else but the head frozen), and prints
    /// the trainable share.
    ///
    /// # Errors
    /// The loaders' errors; [`CliError::Usage`] when the pretrained model shares no
    /// parameter with this one, or for a bad LoRA rank or alpha.
    pub fn adapt(&self, mut model: Sequential, cfg: &RunConfig) -> Result<Sequential> {
        let head = head_name(model.spec());
        if let Some(dir) = &self.pretrained {
            let report = model.load_weights_matching(
                &nn_layers::saved_weights_path(dir),
                &LoadOptions::default().excluding([head]),
            )?;
            if report.loaded.is_empty() {
                return Err(CliError::Usage(format!(
                    "--init-from {}: no parameter of this model is in its weights",
                    dir.display()
                )));
            }
            println!(
                "loaded {} tensors from {} (newly initialised: {}; unused in the file: {})",
                report.loaded.len(),
                dir.display(),
                if report.initialised.is_empty() { "none".into() } else { report.initialised.join(", ") },
                if report.unused.is_empty() { "none".into() } else { report.unused.join(", ") }
            );
        }
        if cfg.model.freeze.iter().any(|f| f == "body") {
            let n = model.freeze(|name| !name_matches(head, name));
            println!("froze the body: {n} tensors (all but {head})");
        }
        if let Some(rank) = cfg.model.lora_rank {
            let alpha = cfg.model.lora_alpha.unwrap_or(rank as f64);
            if rank == 0 || !(alpha.is_finite() && alpha > 0.0) {
                return Err(CliError::Usage(format!(
                    "--lora-rank must be at least 1 and --lora-alpha a positive number, got {rank} and {alpha}"
                )));
            }
            let adapted: Vec<usize> = model
                .spec()
                .layers
                .iter()
                .enumerate()
                // The MLP projections (Dense) and the attention's four projections.
                .filter(|(_, l)| {
                    l.name.as_deref() != Some(head)
                        && matches!(l.layer, LayerSpec::Dense(_) | LayerSpec::MultiHeadAttention(_))
                })
                .map(|(i, _)| i)
                .collect();
            model = model.with_lora(|i| adapted.contains(&i), LoraConfig::new(rank, alpha), cfg.training.seed)?;
            model.freeze(|n| !is_adapter(n) && !name_matches(head, n));
            let names: Vec<String> = adapted.iter().map(|&i| model.layer_prefix(i)).collect();
            println!(
                "LoRA rank {rank}, alpha {alpha} on the layers {}; everything else but {head} frozen",
                names.join(", ")
            );
        }
        let (trainable, frozen) = model.num_parameters();
        let total = trainable + frozen;
        println!(
            "trainable parameters: {trainable} of {total} ({:.2} %)",
            100.0 * trainable as f64 / total.max(1) as f64
        );
        Ok(model)
    }

    /// Writes `tokenizer.json` into the run folder `out` (temporary file, then
    /// renamed).
    ///
    /// # Errors
    /// [`CliError::Text`] when it cannot be written.
    pub fn save_tokenizer(&self, out: &Path) -> Result<()> {
        self.tokenizer.save(out.join(TOKENIZER_FILE))?;
        Ok(())
    }

    /// For a language model: validation and test loss (nats per token), perplexity
    /// and bits per byte ([`nn_text::bits_per_byte`] over the bytes the predicted
    /// tokens decode to), and the byte n-gram baselines (orders 3 and 5, trained on
    /// the training text) on the same parts. Nothing for classification.
    ///
    /// # Errors
    /// The evaluation's errors.
    pub fn report(&self, model: &Sequential, prepared: &Prepared, batch_size: usize) -> Result<()> {
        let (Some((train_text, validation, test)), Some(loss)) = (&self.lm, self.loss()) else {
            return Ok(());
        };
        let ngrams: Vec<(usize, nn_text::ByteNgram)> = [3, 5]
            .into_iter()
            .filter_map(|order| nn_text::ByteNgram::train(train_text.as_bytes(), order).ok().map(|m| (order, m)))
            .collect();
        for (what, part, data) in
            [("validation", validation, prepared.validation.as_ref()), ("test", test, prepared.test.as_ref())]
        {
            let (Some(part), Some(data)) = (part, data) else { continue };
            let e = nn_train::evaluate(model, &loss, data, batch_size)?;
            let bpb = nn_text::bits_per_byte(e.loss, part.tokens, part.bytes)?;
            let ppl = nn_text::perplexity(e.loss)?;
            let baselines: Vec<String> = ngrams
                .iter()
                .filter_map(|(o, m)| m.bits_per_byte(part.text.as_bytes()).ok().map(|b| format!("order {o}: {b:.3}")))
                .collect();
            println!(
                "{what} loss {:.4} nats/token, perplexity {ppl:.2}, token accuracy {:.4}, bits per byte {bpb:.3} ({} tokens, {} bytes); byte n-gram bits per byte {}",
                e.loss,
                e.get("accuracy").unwrap_or(f64::NAN),
                part.tokens,
                part.bytes,
                baselines.join(", ")
            );
        }
        Ok(())
    }

    /// Whether this run is a language model (no classification test to print).
    pub fn is_lm(&self) -> bool {
        self.lm.is_some()
    }
}

/// A text model saved by `fit` (a folder with [`TOKENIZER_FILE`]): what `predict`
/// and `evaluate` need to read text exactly as training did.
pub struct SavedText {
    /// The folder.
    dir: PathBuf,
    /// The run as `fit` saved it.
    cfg: RunConfig,
    /// The folder's tokenizer.
    tokenizer: TextTokenizer,
    /// Tokens per text (classifier) or per window (language model): the model's
    /// input length.
    context: usize,
}

impl SavedText {
    /// The text setup of the model folder `dir` (`model` loaded from it, `cfg` the
    /// run saved with it); `None` when `dir` holds no [`TOKENIZER_FILE`] (not a text
    /// model).
    ///
    /// # Errors
    /// [`CliError::Usage`] for a text model without its run configuration or whose
    /// input is not one row of token ids; [`CliError::Text`] for a tokenizer that
    /// cannot be read.
    pub fn load(dir: &Path, model: &Sequential, cfg: Option<RunConfig>) -> Result<Option<SavedText>> {
        let path = dir.join(TOKENIZER_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let Some(cfg) = cfg else {
            return Err(CliError::Usage(format!(
                "{}: a text model ({TOKENIZER_FILE}) saved without its run configuration (model.json's run or run.json), which says how its texts were read; train it again with `nn-cli fit`",
                dir.display()
            )));
        };
        let &[context] = model.input_shape() else {
            return Err(CliError::Usage(format!(
                "{}: has a {TOKENIZER_FILE} but its input has shape {:?}, not one row of token ids",
                dir.display(),
                model.input_shape()
            )));
        };
        let tokenizer = TextTokenizer::load(&path)?;
        Ok(Some(SavedText { dir: dir.to_path_buf(), cfg, tokenizer, context }))
    }

    /// Whether the model is a language model (`fit --data text:…`, `--model gpt`).
    pub fn is_lm(&self) -> bool {
        matches!(self.cfg.data.data, DataSource::Text(_))
    }

    /// The CSV column the model reads its texts from (`--text-column`, default `text`).
    pub fn text_column(&self) -> &str {
        self.cfg.data.text.text_column.as_deref().unwrap_or("text")
    }

    /// The folder's tokenizer (what `nn-cli serve` encodes request texts with).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The data the model was trained on (an absolute path, as `fit` saved it).
    pub fn training_data(&self) -> &DataSource {
        &self.cfg.data.data
    }

    /// Refuses a `--delimiter` other than `,`: text CSV files are read comma-separated,
    /// as `fit` read them.
    ///
    /// # Errors
    /// [`CliError::Usage`] naming the delimiter given.
    pub fn check_delimiter(&self, delimiter: Option<&str>) -> Result<()> {
        match delimiter {
            Some(d) if d != "," => Err(CliError::Usage(format!(
                "--delimiter {d:?}: the text model in {} reads comma-separated files, as fit did",
                self.dir.display()
            ))),
            _ => Ok(()),
        }
    }

    /// The token ids of each text of the CSV file `path` for prediction: its column
    /// [`text_column`](Self::text_column) (by header name; a file of one column
    /// whose header is another name is read as that column, with a note), tokenized
    /// and padded or cut to the model's context as training did
    /// ([`nn_text::encode_classification`]). Other columns are ignored.
    ///
    /// # Shapes
    /// output: `[rows, context]` (token ids as `f32`).
    ///
    /// # Errors
    /// [`CliError::Text`] naming the file, row, line and column: no such column (the
    /// header listed), an empty text cell, bytes that are not UTF-8, a row with
    /// another number of fields, an empty file or one with no data row.
    pub fn read_for_prediction(&self, path: &Path) -> Result<nn_tensor::Tensor<f32>> {
        let col = self.text_column();
        // The text column doubles as the (unused) class column: every row is answered.
        let table = match nn_text::read_text_csv(path, col, col) {
            Err(nn_text::TextError::MissingColumn { header, .. }) if header.len() == 1 => {
                eprintln!(
                    "note: {} has one column, {:?}: it is read as the model's text column {col:?} (its first line is the header)",
                    path.display(),
                    header[0]
                );
                nn_text::read_text_csv(path, &header[0], &header[0])?
            }
            other => other?,
        };
        let encoded = nn_text::encode_classification(&table, &self.tokenizer, self.context)?;
        Ok(encoded.dataset.features())
    }

    /// The texts of the CSV file `path` to evaluate a classifier on, with their
    /// classes in column `target` mapped to the model's `class_names` by name. On
    /// the file the model was trained on (`training_file`), the test part `fit` held
    /// out (the saved `--test-split`, `--holdout-groups` and `--split-seed`, with
    /// [`split_rows`], and `--classes` as [`data::restrict`] kept them); on another
    /// file, all its rows. Tokenized and padded as training did.
    ///
    /// # Shapes
    /// output: features `[rows, context]`, class targets `[rows]`.
    ///
    /// # Errors
    /// [`CliError::Text`] for the file's errors (as [`nn_text::read_text_csv`]);
    /// [`CliError::Usage`] naming the row, line and column of a class the model does
    /// not know.
    pub fn evaluation_part(
        &self,
        path: &Path,
        target: &str,
        training_file: bool,
        class_names: Option<&[String]>,
    ) -> Result<Dataset> {
        let table = nn_text::read_text_csv(path, self.text_column(), target)?;
        let d = &self.cfg.data;
        let mut rows: Vec<usize> = (0..table.len()).collect();
        if training_file {
            let split_seed = d.text.split_seed.unwrap_or(self.cfg.training.seed);
            let (_, test) = split_rows(&table, d, split_seed)?;
            if test.is_empty() {
                println!(
                    "note: the run held no test part out of {} (--test-split 0), so all its rows are used, including those the model was trained on",
                    path.display()
                );
            } else {
                println!(
                    "the test part the run held out of {} ({} of {} rows, split seed {split_seed})",
                    path.display(),
                    test.len(),
                    table.len()
                );
                rows = test;
            }
            if let Some(text) = &d.classes {
                let keep = data::parse_classes(text)?;
                rows.retain(|&r| keep.contains(&table.labels()[r]));
            }
        }
        let names = class_names.unwrap_or(table.class_names());
        // The model's index of each class of the file, by name.
        let index: Vec<Option<usize>> = table.class_names().iter().map(|c| names.iter().position(|n| n == c)).collect();
        let mut labels = Vec::with_capacity(rows.len());
        for &r in &rows {
            let label = table.labels()[r];
            let Some(i) = index[label] else {
                return Err(CliError::Usage(format!(
                    "{}: row {} (line {}), column {target:?}: class {:?} is not one the model knows ({})",
                    path.display(),
                    r + 1,
                    table.line(r).unwrap_or(0),
                    table.class_names()[label],
                    nn_layers::clip(&names.join(", "))
                )));
            };
            labels.push(i);
        }
        let encoded = nn_text::encode_classification(&table.select(&rows)?, &self.tokenizer, self.context)?;
        let targets = nn_data::Targets::classes(labels, names.len())?;
        let name = encoded.dataset.name().to_string();
        Ok(Dataset::from_tensor(name, encoded.dataset.features(), targets)?.with_class_names(names.to_vec())?)
    }

    /// For a language model: reads `data` (`text:FILE`) with the saved run's
    /// settings and this folder's tokenizer and context, splits it as `fit` did (the
    /// same `--test-split`, `--validation-split`, `--holdout-groups` and
    /// `--split-seed`), and prints what `fit` prints at the end of a gpt run
    /// ([`TextRun::report`]): validation and test loss, perplexity, bits per byte and
    /// the byte n-gram baselines. On the training file these are `fit`'s figures.
    ///
    /// # Errors
    /// [`CliError::Usage`] for data other than `text:FILE`, or a run that held out
    /// neither part; [`prepare`]'s errors (a part too short for one window, ...).
    pub fn report_lm(&self, model: &Sequential, data: &DataSource) -> Result<()> {
        let DataSource::Text(path) = data else {
            return Err(CliError::Usage(format!(
                "the model in {} is a language model: evaluate it with --data text:FILE (got {data})",
                self.dir.display()
            )));
        };
        let mut cfg = self.cfg.clone();
        // The file is read as what it is, whatever the model was trained on: a plain
        // text file whole, a CSV file by the saved text column (`text` when the model
        // was trained on plain text).
        if !is_csv_name(path) {
            cfg.data.text.text_column = None;
            cfg.data.text.holdout_groups.clear();
        } else if cfg.data.text.text_column.is_none() {
            println!("note: the model was trained on plain text; {} is read by its column \"text\"", path.display());
            cfg.data.text.text_column = Some("text".into());
        }
        if cfg.data.test_split == 0.0 && cfg.data.validation_split == 0.0 {
            return Err(CliError::Usage(format!(
                "the run of {} held out no validation or test text (--test-split 0, --validation-split 0): nothing to evaluate on",
                self.dir.display()
            )));
        }
        let sizes = Sizes::of(model.spec(), &self.dir)?;
        cfg.data.data = data.clone();
        cfg.data.text.tokenizer = Some(self.dir.join(TOKENIZER_FILE).to_string_lossy().into_owned());
        cfg.data.text.context = Some(self.context);
        cfg.model.init_from = None;
        cfg.model.transformer = TransformerArgs {
            layers: Some(sizes.layers),
            heads: Some(sizes.heads),
            d_model: Some(sizes.d_model),
            pooling: None,
        };
        let Some((prepared, run)) = prepare(&cfg)? else {
            return Err(CliError::Usage(format!("{data}: not text data")));
        };
        run.report(model, &prepared, cfg.training.batch_size.max(64))
    }
}
