//! # nn-text
//!
//! Text for the nn toolkit: the pieces a language model and a text classifier need
//! before and after the network.
//!
//! | module | what it holds |
//! |---|---|
//! | [`tokenizer`] | [`TextTokenizer`]: byte-level BPE trained with the `tokenizers` library (GPT-2's byte table and word split), or plain bytes; `<pad>` = 0, `<eos>` = 1; `tokenizer.json` in the library's own format, readable from Python |
//! | [`data`] | [`lm_windows`]: a token stream split into training and validation blocks, then cut into `[N, context]` windows with next-token targets; [`read_text_csv`] and [`encode_classification`]: text classification from CSV (gzip detected), padded or cut to `context` tokens with a mask; [`chapter_split`]: whole chapters held out; [`per_class_sample`]; [`read_text_file`] |
//! | [`ngram`] | [`ByteNgram`]: a byte n-gram model with interpolated Kneser–Ney smoothing (Chen & Goodman 1998), the baseline in bits per byte |
//! | [`generate`] | [`Generator`]: incremental decoding of a GPT-style model (`ModelSpec::gpt`) with a key/value cache; [`Sampler`]: greedy, temperature and top-k sampling, seeded |
//! | [`metrics`] | [`bits_per_byte`], [`perplexity`], [`bytes_per_token`] |
//!
//! The data it was made for is the King James Version (`$NN_DATA_DIR/kjv/verses.csv.gz`,
//! [`data::read_kjv`]): 31,102 verses of about 4.4 MB of English, labelled with 8
//! divisions of the books, so the same text pretrains a small GPT and then serves
//! as a classification task.
//!
//! ```
//! use nn_text::{lm_windows, TextTokenizer};
//!
//! let tok = TextTokenizer::bytes();
//! let ids = tok.encode("In the beginning God created the heaven and the earth.")?;
//! assert_eq!(ids[0], u32::from(b'I') + 2);
//! assert_eq!(tok.decode(&ids)?, "In the beginning God created the heaven and the earth.");
//!
//! // 54 tokens: the first floor(54 · 0.8) = 43 train, the last 11 validate; windows
//! // of 8 inputs and 8 next-token targets start at 0, 8, ..., 32 (a 6th would need 49 tokens).
//! let lm = lm_windows(&ids, 8, 0.2)?;
//! assert_eq!(ids.len(), 54);
//! assert_eq!(lm.boundary, 43);
//! assert_eq!(lm.train.len(), 5);
//! assert_eq!(lm.validation.len(), 1);
//! # Ok::<(), nn_text::TextError>(())
//! ```
//!
//! Errors: one enum, [`TextError`], naming the file (and for CSV files the row, its
//! line and the column) and what is wrong.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod data;
pub mod error;
pub mod generate;
pub mod metrics;
pub mod ngram;
pub mod tokenizer;

pub use data::{
    chapter_split, encode_classification, encode_padded, group_split, lm_windows, lm_windows_strided, per_class_sample,
    read_text_csv, read_text_file, ClassificationData, GroupSplit, LmData, PaddedTexts, TextTable,
};
pub use error::{Result, TextError};
pub use generate::{GenerateError, Generator, Sampler, Sampling};
pub use metrics::{bits_per_byte, bytes_per_token, perplexity};
pub use ngram::ByteNgram;
pub use tokenizer::{TextTokenizer, TokenizerKind};
