//! `nn-cli generate`: continues a prompt with a language model saved by `nn-cli fit
//! --data text:FILE --model gpt` (the model folder and its `tokenizer.json`), decoding
//! token by token with a key/value cache ([`nn_text::Generator`]).
//!
//! Standard output gets the prompt and its continuation; standard error the number
//! of tokens and the speed in tokens per second.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use nn_text::{GenerateError, Generator, Sampling, TextTokenizer};

use crate::error::{CliError, Result};
use crate::text::TOKENIZER_FILE;

/// `nn-cli generate` flags.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A folder written by `nn-cli fit --data text:FILE --model gpt`: the model and its tokenizer.json.
    #[arg(long)]
    pub model: PathBuf,
    /// The text to continue (UTF-8, not empty).
    #[arg(long)]
    pub prompt: OsString,
    /// How many tokens to generate at most (at least 1; fewer when the model ends the text with <eos>). Default: the rest of the model's context. The prompt's tokens plus this must fit the context.
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Softmax temperature, finite and ≥ 0: below 1 sharper, above 1 flatter; 0 always takes the most likely token (greedy).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Sample only among the K most likely tokens (K ≥ 1; 1 is greedy). Default: all tokens.
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    pub top_k: Option<usize>,
    /// Seed of the sampling's random generator (the same seed gives the same text).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The prompt as UTF-8, or an error naming the first invalid byte and its offset.
fn prompt_text(prompt: OsString) -> Result<String> {
    prompt.into_string().map_err(|raw| {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let bytes = raw.as_bytes();
            let offset = std::str::from_utf8(bytes).err().map_or(0, |e| e.valid_up_to());
            CliError::Usage(format!(
                "--prompt is not valid UTF-8: invalid byte 0x{:02x} at byte offset {offset}",
                bytes.get(offset).copied().unwrap_or(0)
            ))
        }
        #[cfg(not(unix))]
        {
            CliError::Usage(format!("--prompt is not valid UTF-8: {}", raw.to_string_lossy()))
        }
    })
}

/// The sampling settings, checked with the flags' names.
fn sampling(args: &GenerateArgs) -> Result<Sampling> {
    if !(args.temperature.is_finite() && args.temperature >= 0.0) {
        return Err(CliError::Usage(format!("--temperature must be a finite number ≥ 0, got {}", args.temperature)));
    }
    if args.top_k == Some(0) {
        return Err(CliError::Usage("--top-k must be at least 1, got 0".into()));
    }
    Ok(Sampling { temperature: args.temperature, top_k: args.top_k, seed: args.seed })
}

/// A generation error as one usage line.
fn usage(e: GenerateError) -> CliError {
    CliError::Usage(e.to_string())
}

/// Runs `nn-cli generate`.
///
/// # Errors
/// [`CliError::Usage`] for an empty or non-UTF-8 prompt, a temperature below 0 or
/// not finite, `--top-k 0`, a model that is not a decoder-only transformer (naming
/// the first layer that does not fit), a folder without `tokenizer.json`, a tokenizer
/// whose vocabulary size is not the model's, or a prompt plus `--max-tokens` longer than
/// the model's context (naming both numbers); the loader's errors for the folder.
pub fn run(args: GenerateArgs) -> Result<()> {
    let sampling = sampling(&args)?;
    let prompt = prompt_text(args.prompt.clone())?;
    if prompt.is_empty() {
        return Err(CliError::Usage("--prompt is empty: give some text to continue".into()));
    }
    let dir = &args.model;
    let (model, _) = super::load_model(dir)?;
    if model.spec().layers.iter().any(|n| matches!(n.layer, nn_layers::LayerSpec::PaddingMask(_))) {
        return Err(CliError::Usage(format!(
            "{}: a text classifier (transformer-classifier), not a language model: it labels texts; use \
             `nn-cli predict --model {} --input FILE.csv` (generate continues text with a --model gpt folder)",
            dir.display(),
            dir.display()
        )));
    }
    let mut generator = Generator::new(&model).map_err(|e| CliError::Usage(format!("{}: {e}", dir.display())))?;
    let tok_path = dir.join(TOKENIZER_FILE);
    if !tok_path.is_file() {
        return Err(CliError::Usage(format!(
            "{}: the folder has no {TOKENIZER_FILE} (a language model saved by `nn-cli fit --data text:FILE --model gpt` has one)",
            dir.display()
        )));
    }
    let tokenizer = TextTokenizer::load(&tok_path)?;
    if tokenizer.vocab_size() != generator.vocab_size() {
        return Err(CliError::Usage(format!(
            "{}: {} tokens, but the model's vocabulary has {} (they were not saved together)",
            tok_path.display(),
            tokenizer.vocab_size(),
            generator.vocab_size()
        )));
    }
    let ids = tokenizer.encode(&prompt)?;
    let context = generator.context();
    let max_tokens = match args.max_tokens {
        Some(0) => return Err(CliError::Usage("--max-tokens must be at least 1".into())),
        Some(n) => n,
        None if ids.len() < context => context - ids.len(),
        None => {
            return Err(CliError::Usage(format!(
                "the prompt is {} tokens, which leaves no room in the model's context of {context} tokens",
                ids.len()
            )))
        }
    };
    let start = Instant::now();
    let new = generator.generate(&ids, max_tokens, &sampling, tokenizer.eos_id()).map_err(usage)?;
    let seconds = start.elapsed().as_secs_f64();
    let mut all = ids.clone();
    all.extend_from_slice(&new);
    let text = tokenizer.decode(&all)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(|e| CliError::Io { path: "standard output".into(), message: e.to_string() })?;
    out.flush().map_err(|e| CliError::Io { path: "standard output".into(), message: e.to_string() })?;
    // The time includes reading the prompt into the cache.
    eprintln!(
        "generated {} tokens after a prompt of {} tokens in {:.3} s ({:.0} tokens/s)",
        new.len(),
        ids.len(),
        seconds,
        new.len() as f64 / seconds.max(1e-9)
    );
    Ok(())
}
