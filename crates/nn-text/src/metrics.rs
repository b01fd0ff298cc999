//! Language-model metrics that compare across tokenizers: bits per byte and
//! perplexity.
//!
//! A model's loss is a mean negative log-likelihood in nats **per token**; two
//! tokenizers cut the same text into different numbers of tokens, so losses per
//! token do not compare. The total information, `loss · tokens` nats, does: divided
//! by the text's bytes and by `ln 2` it is the bits per byte (bpb) of the text, the
//! unit of the byte n-gram baseline ([`ByteNgram::bits_per_byte`](crate::ngram::ByteNgram::bits_per_byte)).

use crate::error::{invalid, Result};

fn check_loss(op: &'static str, loss: f64) -> Result<()> {
    if !loss.is_finite() || loss < 0.0 {
        return Err(invalid(op, format!("mean negative log-likelihood {loss} must be finite and non-negative")));
    }
    Ok(())
}

/// Bits per byte: `bpb = loss · tokens / (bytes · ln 2)`, for a mean negative
/// log-likelihood `mean_nll_nats_per_token` (natural log, as cross-entropy
/// losses report) over `tokens` tokens that encode `bytes` bytes of UTF-8 text.
///
/// # Errors
/// [`TextError::InvalidArgument`](crate::TextError::InvalidArgument) for a loss that
/// is negative or not finite, or for `bytes` 0.
pub fn bits_per_byte(mean_nll_nats_per_token: f64, tokens: usize, bytes: usize) -> Result<f64> {
    check_loss("bits_per_byte", mean_nll_nats_per_token)?;
    if bytes == 0 {
        return Err(invalid("bits_per_byte", "the text has 0 bytes"));
    }
    Ok(mean_nll_nats_per_token * tokens as f64 / (bytes as f64 * std::f64::consts::LN_2))
}

/// Perplexity per token: `exp(loss)` for a mean negative log-likelihood in nats
/// per token (the number of equally likely tokens that would give the same loss).
///
/// # Errors
/// [`TextError::InvalidArgument`](crate::TextError::InvalidArgument) for a loss that
/// is negative or not finite.
pub fn perplexity(mean_nll_nats_per_token: f64) -> Result<f64> {
    check_loss("perplexity", mean_nll_nats_per_token)?;
    Ok(mean_nll_nats_per_token.exp())
}

/// Bytes per token: `bytes / tokens`, how much text one token covers on average.
///
/// # Errors
/// [`TextError::InvalidArgument`](crate::TextError::InvalidArgument) for `tokens` 0.
pub fn bytes_per_token(bytes: usize, tokens: usize) -> Result<f64> {
    if tokens == 0 {
        return Err(invalid("bytes_per_token", "0 tokens"));
    }
    Ok(bytes as f64 / tokens as f64)
}
