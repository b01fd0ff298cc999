//! Text models: a text classifier (`nn-cli fit --data csv:FILE --text-column COL
//! --model transformer-classifier`) answers `POST /v1/predict` with texts, and a
//! language model (`--data text:FILE --model gpt`) answers `POST /v1/generate`.
//! Both read texts with the `tokenizer.json` saved beside the model.
//!
//! - **Classifier rows** are strings, or objects keyed by the model's text column
//!   (`{"text": "And God said"}`). Each text is tokenized and padded with `<pad>` or
//!   cut to the model's context by [`nn_text::encode_padded`], the function training
//!   and `nn-cli predict` use, so a text's answer is bit-identical to what `nn-cli
//!   predict` prints for it. The token ids then go through the batcher like any
//!   row.
//! - **Generation** runs [`nn_text::Generator::generate`] (a key/value cache) with
//!   [`nn_text::Sampling`] as `nn-cli generate` does, so the same prompt and
//!   settings give the same text. Generations run one at a time (the generator's
//!   cache is shared) on tokio's blocking pool, not on the inference thread; at most
//!   `max_queue` requests wait for their turn, more get a 503. A generation is at
//!   most the model's context in tokens, and one in progress when the server stops
//!   is finished before it exits (as the inference thread finishes its batch).

use std::sync::Mutex;

use nn_layers::{LayerSpec, Sequential};
use nn_text::{GenerateError, Generator, Sampling, TextTokenizer, TokenizerKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ServeError};
use crate::request::ParsedRows;

/// What `GET /v1/model` says about a text model's input (its `text` field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextInfo {
    /// The key of a row given as an object (the CSV column the classifier was
    /// trained on); absent for a language model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Tokens per text (longer texts are cut, shorter ones padded) or, for a
    /// language model, the most tokens of a prompt plus its continuation.
    pub context: usize,
    /// Tokens the tokenizer knows (the model's vocabulary).
    pub vocab_size: usize,
    /// `bpe` (byte-level BPE) or `bytes` (one token per byte).
    pub tokenizer: &'static str,
    /// Whether the model is a language model (answers `POST /v1/generate`) rather
    /// than a classifier (answers `POST /v1/predict`).
    pub language_model: bool,
}

/// The text side of a [`ModelService`](crate::ModelService): the tokenizer, the
/// context, and for a language model its generator.
pub(crate) struct TextModel {
    tokenizer: TextTokenizer,
    info: TextInfo,
    /// The language model's decoder, one generation at a time.
    generator: Option<Mutex<Generator>>,
}

impl std::fmt::Debug for TextModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextModel").field("info", &self.info).finish_non_exhaustive()
    }
}

/// The vocabulary of the model's first Embedding layer (its token ids).
fn embedding_vocab(model: &Sequential) -> Option<usize> {
    model.spec().layers.iter().find_map(|l| match &l.layer {
        LayerSpec::Embedding(e) => Some(e.input_dim),
        _ => None,
    })
}

impl TextModel {
    /// A text classifier reading rows keyed by `column`, or (when `column` is
    /// `None`) a language model.
    ///
    /// # Errors
    /// [`ServeError::Metadata`] when the model's input is not one row of token ids,
    /// the tokenizer's vocabulary is not the model's, or (language model) the model
    /// is not a decoder-only transformer ([`Generator::new`]'s error).
    pub(crate) fn new(
        model: &Sequential,
        tokenizer: TextTokenizer,
        column: Option<String>,
    ) -> Result<TextModel, ServeError> {
        let &[context] = model.input_shape() else {
            return Err(ServeError::Metadata(format!(
                "a text model takes one row of token ids, but this model's input has shape {:?}",
                model.input_shape()
            )));
        };
        let generator = match column {
            Some(_) => None,
            None => Some(Generator::new(model).map_err(|e| ServeError::Metadata(e.to_string()))?),
        };
        let vocab = match &generator {
            Some(g) => Some(g.vocab_size()),
            None => embedding_vocab(model),
        };
        if let Some(v) = vocab.filter(|&v| v != tokenizer.vocab_size()) {
            return Err(ServeError::Metadata(format!(
                "the tokenizer has {} tokens, but the model's vocabulary has {v} (they were not saved together)",
                tokenizer.vocab_size()
            )));
        }
        let info = TextInfo {
            language_model: generator.is_some(),
            column,
            context,
            vocab_size: tokenizer.vocab_size(),
            tokenizer: match tokenizer.kind() {
                TokenizerKind::Bpe => "bpe",
                TokenizerKind::Bytes => "bytes",
            },
        };
        Ok(TextModel { tokenizer, info, generator: generator.map(Mutex::new) })
    }

    /// What `GET /v1/model` reports.
    pub(crate) fn info(&self) -> &TextInfo {
        &self.info
    }

    /// Parses a `POST /v1/predict` body of texts into padded token ids
    /// `[rows, context]` (see [`parse_texts`]).
    ///
    /// # Errors
    /// [`ApiError::WrongRoute`] for a language model; [`parse_texts`]'s errors.
    pub(crate) fn parse_predict(&self, body: &[u8]) -> Result<ParsedRows, ApiError> {
        let Some(column) = &self.info.column else {
            return Err(ApiError::WrongRoute(
                "this model is a language model (gpt): it continues text rather than classifying it; \
                 POST /v1/generate with {\"prompt\": \"...\", \"max_tokens\": n}"
                    .into(),
            ));
        };
        let (texts, ignored) = parse_texts(body, column)?;
        let padded = nn_text::encode_padded(texts.iter().map(String::as_str), &self.tokenizer, self.info.context)
            .map_err(|e| ApiError::Internal(format!("tokenizing the texts: {e}")))?;
        Ok(ParsedRows { rows: texts.len(), values: padded.features, ignored, unseen_categories: 0 })
    }

    /// Answers a `POST /v1/generate` body (see [`GenerateRequest`]).
    ///
    /// # Errors
    /// [`ApiError::WrongRoute`] for a classifier; [`ApiError::BadJson`] for a body
    /// that is not a [`GenerateRequest`]; [`ApiError::BadValue`] naming the field
    /// (`column`) for an empty prompt, a prompt that leaves no room in the context,
    /// `max_tokens` below 1 or above the room left, a `temperature` below 0, a
    /// `top_k` below 1; [`ApiError::NonFiniteOutput`] when the model's logits are
    /// not finite.
    pub(crate) fn generate(&self, body: &[u8]) -> Result<Generated, ApiError> {
        let Some(generator) = &self.generator else {
            return Err(ApiError::WrongRoute(
                "this model classifies texts rather than continuing them: POST /v1/predict with \
                 {\"inputs\": [\"text\", ...]}"
                    .into(),
            ));
        };
        let request: GenerateRequest = serde_json::from_slice(body).map_err(|e| {
            ApiError::BadJson(format!(
                "invalid request body: {e}; expected {{\"prompt\": \"...\", \"max_tokens\": n, \"temperature\": t, \
                 \"top_k\": k, \"seed\": s}} (all but prompt optional)"
            ))
        })?;
        let bad = |field: &str, message: String| ApiError::BadValue { message, column: field.to_string() };
        if !(request.temperature.is_finite() && request.temperature >= 0.0) {
            return Err(bad("temperature", format!("temperature must be a number ≥ 0, got {}", request.temperature)));
        }
        let top_k = match request.top_k {
            None => None,
            Some(k) if k >= 1 => Some(usize::try_from(k).unwrap_or(usize::MAX)),
            Some(k) => return Err(bad("top_k", format!("top_k must be at least 1, got {k}"))),
        };
        if request.prompt.is_empty() {
            return Err(bad("prompt", "the prompt is empty: give some text to continue".into()));
        }
        let ids = self.tokenizer.encode(&request.prompt).map_err(|e| bad("prompt", e.to_string()))?;
        let context = self.info.context;
        let room = context.saturating_sub(ids.len());
        if room == 0 {
            return Err(bad(
                "prompt",
                format!(
                    "the prompt is {} tokens, which leaves no room in the model's context of {context} tokens",
                    ids.len()
                ),
            ));
        }
        let max_tokens = match request.max_tokens {
            None => room,
            Some(n) if n >= 1 && n <= room as i64 => n as usize,
            Some(n) => {
                return Err(bad(
                    "max_tokens",
                    format!(
                        "max_tokens must be in [1, {room}] (the model's context of {context} tokens less the \
                         prompt's {}), got {n}",
                        ids.len()
                    ),
                ))
            }
        };
        let sampling = Sampling { temperature: request.temperature, top_k, seed: request.seed };
        let new = {
            // A generation that panicked leaves a cache that `generate` resets.
            let mut generator = generator.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            generator.generate(&ids, max_tokens, &sampling, self.tokenizer.eos_id())
        }
        .map_err(|e| match e {
            GenerateError::NonFiniteLogits { .. } => {
                ApiError::NonFiniteOutput { message: e.to_string(), model_fault: true }
            }
            GenerateError::Sampling { .. } => bad("temperature", e.to_string()),
            other => ApiError::Internal(other.to_string()),
        })?;
        let mut all = ids.clone();
        all.extend_from_slice(&new);
        let text = self.tokenizer.decode(&all).map_err(|e| ApiError::Internal(format!("decoding: {e}")))?;
        Ok(Generated { text, tokens: new.len(), prompt_tokens: ids.len() })
    }
}

/// The body of `POST /v1/generate`: the settings of `nn-cli generate`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    /// The text to continue (not empty).
    pub prompt: String,
    /// Tokens to generate at most, in `[1, context − prompt tokens]` (fewer when the
    /// model ends the text with `<eos>`); default: the rest of the context.
    #[serde(default)]
    pub max_tokens: Option<i64>,
    /// Softmax temperature, ≥ 0 (0: always the most likely token); default 1.
    #[serde(default = "one")]
    pub temperature: f64,
    /// Sample among the `top_k` most likely tokens only (≥ 1); default all.
    #[serde(default)]
    pub top_k: Option<i64>,
    /// Seed of the sampling's random generator; default 0.
    #[serde(default)]
    pub seed: u64,
}

fn one() -> f64 {
    1.0
}

/// The answer of `POST /v1/generate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Generated {
    /// The prompt and its continuation, decoded together (what `nn-cli generate`
    /// prints).
    pub text: String,
    /// Tokens generated.
    pub tokens: usize,
    /// Tokens of the prompt.
    pub prompt_tokens: usize,
}

/// The texts of a `POST /v1/predict` body `{"inputs": [row, ...]}` (or
/// `"instances"`) for a classifier reading `column`: each row a string, or an
/// object whose key `column` holds a string (other keys are ignored and returned,
/// each once, by row and alphabetically within a row).
///
/// # Errors
/// [`ApiError::BadJson`] for invalid JSON or a body that is not `{"inputs":
/// [...]}`; [`ApiError::BadValue`] with `column` for a row that is an object
/// without the key, a value that is not a string (or a row that is neither a string
/// nor an object), or an empty text. Messages name the row (0-based).
pub fn parse_texts(body: &[u8], column: &str) -> Result<(Vec<String>, Vec<String>), ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        inputs: Option<Vec<Value>>,
        #[serde(default)]
        instances: Option<Vec<Value>>,
    }
    let expected =
        format!("expected {{\"inputs\": [text, ...]}}, each text a string or an object {{\"{column}\": \"...\"}}");
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadJson(format!("invalid request body: {e}; {expected}")))?;
    let rows = match (body.inputs, body.instances) {
        (Some(rows), None) | (None, Some(rows)) => rows,
        _ => return Err(ApiError::BadJson(format!("give exactly one of `inputs` and `instances`; {expected}"))),
    };
    let bad = |message: String| ApiError::BadValue { message, column: column.to_string() };
    let mut texts = Vec::with_capacity(rows.len());
    let mut ignored: Vec<String> = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        let value = match row {
            Value::Object(mut map) => {
                let value = map.remove(column);
                let mut others: Vec<String> = map.into_iter().map(|(k, _)| k).collect();
                others.sort();
                for k in others {
                    if !ignored.contains(&k) {
                        ignored.push(k);
                    }
                }
                match value {
                    Some(v) => v,
                    None => return Err(bad(format!("row {i} has no key {column:?}, the model's text column"))),
                }
            }
            other => other,
        };
        match value {
            Value::String(s) if s.is_empty() => {
                return Err(bad(format!("row {i}, column {column:?}: the text is empty")));
            }
            Value::String(s) => texts.push(s),
            other => {
                return Err(bad(format!(
                    "row {i}, column {column:?}: expected a text (a JSON string), got {}",
                    nn_layers::clip(&other.to_string())
                )));
            }
        }
    }
    Ok((texts, ignored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_texts_reads_strings_and_objects_and_names_the_column() {
        let (texts, ignored) =
            parse_texts(br#"{"inputs": ["a b", {"text": "c", "id": 3}, {"z": 1, "text": "d", "a": 2}]}"#, "text")
                .unwrap();
        assert_eq!(texts, ["a b", "c", "d"]);
        assert_eq!(ignored, ["id", "a", "z"]);
        let (texts, _) = parse_texts(br#"{"instances": ["x"]}"#, "text").unwrap();
        assert_eq!(texts, ["x"]);
        let err = |body: &[u8]| parse_texts(body, "verse").unwrap_err();
        for (body, needle) in [
            (&br#"{"inputs": ["ok", ""]}"#[..], "row 1, column \"verse\": the text is empty"),
            (br#"{"inputs": [{"text": "x"}]}"#, "row 0 has no key \"verse\""),
            (br#"{"inputs": [{"verse": 3}]}"#, "expected a text (a JSON string), got 3"),
            (br#"{"inputs": [null]}"#, "got null"),
        ] {
            let e = err(body);
            assert_eq!((e.kind(), e.column(), e.status().as_u16()), ("bad_value", Some("verse"), 422), "{e}");
            assert!(e.to_string().contains(needle), "{e}");
        }
        assert_eq!(err(br#"{"inputs": ["a"], "instances": ["b"]}"#).kind(), "bad_json");
        assert_eq!(err(br#"{"rows": ["a"]}"#).kind(), "bad_json");
        assert_eq!(err(b"[").kind(), "bad_json");
    }
}
