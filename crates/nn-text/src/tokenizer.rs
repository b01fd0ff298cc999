//! [`TextTokenizer`]: text to token ids and back, either byte-level BPE trained
//! with the `tokenizers` library or plain bytes.
//!
//! # The two kinds
//!
//! - **Byte-level BPE** ([`TextTokenizer::train_bpe`]), as GPT-2 (Radford et al.
//!   2019, "Language Models are Unsupervised Multitask Learners", section 2.2):
//!   every UTF-8 byte is first mapped to one printable character (GPT-2's byte to
//!   Unicode table), the text is split into words by GPT-2's regular expression,
//!   and merges of the most frequent adjacent pairs, learnt by the `tokenizers`
//!   library's `BpeTrainer` (Sennrich et al. 2016, "Neural Machine Translation of
//!   Rare Words with Subword Units"), build tokens of several bytes. No byte is ever
//!   unknown, so no `<unk>` token is needed.
//! - **Bytes** ([`TextTokenizer::bytes`]): byte `b` is token `b + 2`, nothing merged;
//!   the baseline the BPE is compared to (the vocabulary is 258).
//!
//! Both number their special tokens first: [`PAD_TOKEN`] `<pad>` is id 0 (the id
//! that [`encode_classification`](crate::data::encode_classification) pads with)
//! and [`EOS_TOKEN`] `<eos>` id 1. The text `"<pad>"` inside an input is encoded
//! as ordinary text, never as the special token, so user text cannot inject one;
//! [`TextTokenizer::decode`] skips special tokens.
//!
//! # Round trip
//!
//! `decode(encode(s)) == s` for every string `s` (ASCII or not): no normalizer
//! changes the text, no prefix space is added, and the byte-level decoder undoes the
//! byte to character table. Decoding a sequence of ids that cuts a multi-byte
//! character (e.g. generated text) replaces the broken bytes by U+FFFD, as
//! `String::from_utf8_lossy` does.
//!
//! # Determinism
//!
//! Training is deterministic: the same texts give the same vocabulary and merges,
//! whatever the thread count (the trainer counts pairs exactly, orders its queue by
//! count then by pair, and numbers the initial alphabet in character order).
//!
//! # Files
//!
//! [`TextTokenizer::save`] writes the `tokenizers` library's own `tokenizer.json`
//! for both kinds (the bytes kind is a BPE model with no merge), so Python's
//! `tokenizers.Tokenizer.from_file("tokenizer.json")` reads either and gives the
//! same ids. (The file does not record "encode special tokens as text", a setting of
//! the library that is not serialised; Python would turn the literal text `<pad>`
//! into id 0.)

use std::path::Path;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BpeTrainerBuilder, Vocab, BPE};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{invalid, Result, TextError};

/// The padding token, id 0 in every tokenizer this crate builds.
pub const PAD_TOKEN: &str = "<pad>";
/// The end-of-sequence token, id 1 in every tokenizer this crate builds.
pub const EOS_TOKEN: &str = "<eos>";
/// The number of special tokens numbered before the bytes ([`PAD_TOKEN`],
/// [`EOS_TOKEN`]).
pub const NUM_SPECIAL: u32 = 2;
/// The largest vocabulary accepted: token ids are carried as `f32` features, exact
/// for whole numbers up to 2^24.
pub const MAX_VOCAB: usize = 1 << 24;

/// Which algorithm a [`TextTokenizer`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenizerKind {
    /// Byte-level BPE with learnt merges.
    Bpe,
    /// One token per byte: byte `b` is id `b + 2`.
    Bytes,
}

/// A tokenizer: text to token ids `[tokens]` and back. See the [module docs](self)
/// for the kinds, the special tokens, the round trip and the file format.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    kind: TokenizerKind,
    inner: Tokenizer,
    vocab_size: usize,
    pad_id: u32,
    eos_id: Option<u32>,
}

/// GPT-2's table from bytes to printable characters: the 188 bytes that are
/// printable Latin-1 (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) keep their code point, the 68
/// others (controls, space, no-break space, soft hyphen) take U+0100, U+0101, ... in
/// byte order.
fn byte_chars() -> [char; 256] {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    let mut table = ['\0'; 256];
    let mut next = 0x100u32;
    for b in 0..=255u8 {
        table[b as usize] = if printable(b) {
            char::from(b)
        } else {
            let c = char::from_u32(next).expect("U+0100..U+0143 are characters");
            next += 1;
            c
        };
    }
    table
}

fn special_tokens() -> Vec<AddedToken> {
    vec![AddedToken::from(PAD_TOKEN, true), AddedToken::from(EOS_TOKEN, true)]
}

/// The byte-level pipeline: no normalizer, GPT-2's word split without a prefix
/// space, the byte-level decoder.
fn byte_level_pipeline(model: BPE) -> Tokenizer {
    let byte_level = ByteLevel::new(false, true, true);
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(byte_level)).with_post_processor(Some(byte_level)).with_decoder(Some(byte_level));
    tokenizer
}

fn tokenizer_error(path: Option<&Path>, e: impl std::fmt::Display) -> TextError {
    TextError::Tokenizer { path: path.map(Path::to_path_buf), message: e.to_string() }
}

impl TextTokenizer {
    /// Trains byte-level BPE on `texts` (each item one document or line; words never
    /// span two items) up to `vocab_size` tokens: the 2 special tokens, the 256
    /// byte characters, then one token per merge, merging only pairs seen at least
    /// twice (so a small text may end below `vocab_size`; [`vocab_size`](Self::vocab_size)
    /// tells the size reached).
    ///
    /// Source: the `tokenizers` library's `BpeTrainer`, with GPT-2's byte-level
    /// pre-tokenizer (see the [module docs](self)).
    ///
    /// # Errors
    /// [`TextError::InvalidArgument`] when `vocab_size` is below 258 or above
    /// [`MAX_VOCAB`], or when the texts hold no byte; [`TextError::Tokenizer`] when
    /// the library fails.
    pub fn train_bpe<'a>(texts: impl Iterator<Item = &'a str>, vocab_size: usize) -> Result<TextTokenizer> {
        let base = NUM_SPECIAL as usize + 256;
        if !(base..=MAX_VOCAB).contains(&vocab_size) {
            return Err(invalid(
                "TextTokenizer::train_bpe",
                format!(
                    "vocab_size {vocab_size} must be in {base}..={MAX_VOCAB} (2 special tokens + 256 bytes + merges)"
                ),
            ));
        }
        let texts: Vec<&str> = texts.collect();
        if texts.iter().all(|t| t.is_empty()) {
            return Err(invalid("TextTokenizer::train_bpe", format!("the {} texts hold no byte", texts.len())));
        }
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(special_tokens())
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        let mut inner = byte_level_pipeline(BPE::default());
        inner.train(&mut trainer, texts.iter()).map_err(|e| tokenizer_error(None, e))?;
        Self::from_inner(inner, None)
    }

    /// The byte tokenizer: byte `b` is id `b + 2`, `<pad>` 0, `<eos>` 1; vocabulary
    /// 258.
    pub fn bytes() -> TextTokenizer {
        let chars = byte_chars();
        let vocab: Vocab = [(PAD_TOKEN.to_string(), 0), (EOS_TOKEN.to_string(), 1)]
            .into_iter()
            .chain(chars.iter().enumerate().map(|(b, c)| (c.to_string(), b as u32 + NUM_SPECIAL)))
            .collect();
        let model = BPE::builder().vocab_and_merges(vocab, Vec::new()).build().expect("258 distinct tokens, no merge");
        let mut inner = byte_level_pipeline(model);
        inner.add_special_tokens(&special_tokens());
        inner.set_encode_special_tokens(true);
        TextTokenizer { kind: TokenizerKind::Bytes, inner, vocab_size: 258, pad_id: 0, eos_id: Some(1) }
    }

    /// Checks a `tokenizers` pipeline and wraps it: BPE model, no normalizer,
    /// byte-level pre-tokenizer without prefix space and byte-level decoder (so the
    /// round trip holds), a `<pad>` token, ids `0..vocab_size` without a gap.
    fn from_inner(mut inner: Tokenizer, path: Option<&Path>) -> Result<TextTokenizer> {
        let fail = |message: String| TextError::Tokenizer { path: path.map(Path::to_path_buf), message };
        if !matches!(inner.get_model(), ModelWrapper::BPE(_)) {
            return Err(fail("the model is not BPE".into()));
        }
        if inner.get_normalizer().is_some() {
            return Err(fail(
                "a normalizer is set; nn-text tokenizers have none (it would break the round trip)".into(),
            ));
        }
        match inner.get_pre_tokenizer() {
            Some(PreTokenizerWrapper::ByteLevel(b)) if !b.add_prefix_space => {}
            _ => return Err(fail("the pre-tokenizer is not ByteLevel with add_prefix_space false".into())),
        }
        if !matches!(inner.get_decoder(), Some(DecoderWrapper::ByteLevel(_))) {
            return Err(fail("the decoder is not ByteLevel".into()));
        }
        let vocab = inner.get_vocab(true);
        let mut ids: Vec<u32> = vocab.values().copied().collect();
        ids.sort_unstable();
        if let Some((expected, &got)) = ids.iter().enumerate().find(|(i, &id)| id as usize != *i) {
            return Err(fail(format!(
                "token ids are not 0..{}: id {expected} is missing (next id is {got})",
                ids.len()
            )));
        }
        let vocab_size = ids.len();
        if vocab_size > MAX_VOCAB {
            return Err(fail(format!("{vocab_size} tokens exceed the limit of {MAX_VOCAB}")));
        }
        let pad_id = inner.token_to_id(PAD_TOKEN).ok_or_else(|| fail(format!("no {PAD_TOKEN} token")))?;
        let eos_id = inner.token_to_id(EOS_TOKEN);
        inner.set_encode_special_tokens(true);
        let chars = byte_chars();
        let is_bytes = vocab_size == 258
            && pad_id == 0
            && eos_id == Some(1)
            && chars.iter().enumerate().all(|(b, c)| vocab.get(&c.to_string()) == Some(&(b as u32 + NUM_SPECIAL)));
        let kind = if is_bytes { TokenizerKind::Bytes } else { TokenizerKind::Bpe };
        Ok(TextTokenizer { kind, inner, vocab_size, pad_id, eos_id })
    }

    /// The kind: [`TokenizerKind::Bpe`] or [`TokenizerKind::Bytes`].
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// The number of tokens, special tokens included: ids are `0..vocab_size`.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The id of `<pad>` (0 for every tokenizer this crate builds).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The id of `<eos>` (1 for every tokenizer this crate builds), if the
    /// vocabulary has one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// The id of a token given as the library's string form (byte characters for
    /// ordinary tokens, e.g. `"Ġthe"` for `" the"`), if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The library's string form of token `id`, if `id < vocab_size`.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The token ids of `text`, `[tokens]`, without any special token.
    ///
    /// # Errors
    /// [`TextError::Tokenizer`] when the library fails (it does not on the
    /// pipelines this type accepts).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self.kind {
            TokenizerKind::Bytes => Ok(text.bytes().map(|b| u32::from(b) + NUM_SPECIAL).collect()),
            TokenizerKind::Bpe => {
                let encoding = self.inner.encode_fast(text, false).map_err(|e| tokenizer_error(None, e))?;
                Ok(encoding.get_ids().to_vec())
            }
        }
    }

    /// The token ids of each text, `[texts][tokens]`, the same as [`encode`](Self::encode)
    /// on each; BPE encodes the texts in parallel on the library's thread pool (the
    /// result does not depend on the thread count).
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        match self.kind {
            TokenizerKind::Bytes => texts.iter().map(|t| self.encode(t)).collect(),
            TokenizerKind::Bpe => {
                let encodings =
                    self.inner.encode_batch_fast(texts.to_vec(), false).map_err(|e| tokenizer_error(None, e))?;
                Ok(encodings.iter().map(|e| e.get_ids().to_vec()).collect())
            }
        }
    }

    /// The text of `ids`, special tokens skipped; bytes that do not form UTF-8
    /// become U+FFFD.
    ///
    /// # Errors
    /// [`TextError::UnknownTokenId`] for an id `>= vocab_size`;
    /// [`TextError::Tokenizer`] when the library fails.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        if let Some((position, &id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= self.vocab_size) {
            return Err(TextError::UnknownTokenId { id, position, vocab_size: self.vocab_size });
        }
        match self.kind {
            TokenizerKind::Bytes => {
                let bytes: Vec<u8> =
                    ids.iter().filter(|&&id| id >= NUM_SPECIAL).map(|&id| (id - NUM_SPECIAL) as u8).collect();
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
            TokenizerKind::Bpe => self.inner.decode(ids, true).map_err(|e| tokenizer_error(None, e)),
        }
    }

    /// The `tokenizers` library's JSON of this tokenizer (what [`save`](Self::save)
    /// writes), pretty-printed.
    ///
    /// # Errors
    /// [`TextError::Tokenizer`] when serialisation fails.
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(true).map_err(|e| tokenizer_error(None, e))
    }

    /// Writes `tokenizer.json` (the `tokenizers` library's format) to `path`,
    /// through a temporary file in the same folder renamed over `path`.
    ///
    /// # Errors
    /// [`TextError::Tokenizer`] when serialisation fails; [`TextError::Io`] when
    /// the file cannot be written (`path` is then left as it was).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let json = self.inner.to_string(true).map_err(|e| tokenizer_error(Some(path), e))?;
        nn_tensor::io::write_atomic(path, |w| w.write_all(json.as_bytes())).map_err(|source| TextError::Io {
            path: path.to_path_buf(),
            action: "cannot write",
            source,
        })
    }

    /// Reads a `tokenizer.json` written by [`save`](Self::save) (or any byte-level
    /// BPE file of the same shape: BPE model, no normalizer, ByteLevel
    /// pre-tokenizer without prefix space, ByteLevel decoder, a `<pad>` token, ids
    /// without a gap). A file whose vocabulary is exactly the byte layout of
    /// [`bytes`](Self::bytes) loads as [`TokenizerKind::Bytes`].
    ///
    /// # Errors
    /// [`TextError::Io`] when the file cannot be read; [`TextError::Tokenizer`]
    /// (naming the file) when it is not valid tokenizer JSON or not of that shape.
    pub fn load(path: impl AsRef<Path>) -> Result<TextTokenizer> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|source| TextError::Io {
            path: path.to_path_buf(),
            action: "cannot read",
            source,
        })?;
        let inner: Tokenizer = json.parse().map_err(|e| tokenizer_error(Some(path), e))?;
        Self::from_inner(inner, Some(path))
    }

    /// [`load`](Self::load) from the text of a `tokenizer.json` (one kept inside
    /// another file, e.g. a recommender's item features), with the same checks.
    ///
    /// # Errors
    /// [`TextError::Tokenizer`] when `json` is not valid tokenizer JSON or not of
    /// that shape.
    pub fn from_json(json: &str) -> Result<TextTokenizer> {
        let inner: Tokenizer = json.parse().map_err(|e| tokenizer_error(None, e))?;
        Self::from_inner(inner, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GPT-2's table: printable bytes keep their code point; space (0x20) is the
    /// 33rd non-printable byte, so U+0120 ("Ġ"); newline (0x0a) the 11th, U+010A.
    #[test]
    fn byte_table_matches_gpt2() {
        let t = byte_chars();
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0], '\u{100}');
        assert_eq!(t[b'\n' as usize], '\u{10a}');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[0xAD], '\u{143}');
        let distinct: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
        // The library's alphabet is the same set of characters.
        let lib: std::collections::HashSet<char> = ByteLevel::alphabet().into_iter().collect();
        assert_eq!(distinct, lib);
    }

    /// The fast path of the bytes kind gives the ids the library's pipeline gives.
    #[test]
    fn bytes_fast_path_matches_pipeline() {
        let tok = TextTokenizer::bytes();
        let text = "In the beginning\n\tGod créa 天地 <pad> \u{0}\u{7f}";
        let fast = tok.encode(text).unwrap();
        let slow = tok.inner.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(fast, slow);
        assert_eq!(tok.inner.decode(&fast, true).unwrap(), text);
    }
}
