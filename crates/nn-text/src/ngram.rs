//! A byte n-gram language model with interpolated Kneser–Ney smoothing: the
//! baseline a neural language model's bits per byte is compared to.
//!
//! # The model
//!
//! Source: S. F. Chen and J. Goodman, "An Empirical Study of Smoothing Techniques
//! for Language Modeling", Harvard TR-10-98 (1998), section 3.5, interpolated
//! Kneser–Ney with one discount per order. For an order-`n` model, the
//! probability of byte `w` after the history `h` (its last `k − 1` bytes at level
//! `k`, `h'` one byte shorter) is, level by level,
//!
//! ```text
//! P_0(w)     = 1 / 256
//! P_k(w | h) = max(c_k(h w) − D_k, 0) / c_k(h •)  +  D_k · N_k(h •) / c_k(h •) · P_{k−1}(w | h')
//!              (when c_k(h •) = Σ_v c_k(h v) > 0, else P_{k−1}(w | h'))
//! ```
//!
//! where `N_k(h •)` is the number of distinct bytes seen after `h`, `c_n` are the raw
//! counts of the `n`-grams in the training text, and the lower orders use
//! continuation counts, `c_k(g) = N_1+(• g)`, the number of distinct bytes seen
//! before the `k`-gram `g` (Kneser and Ney 1995). The discount of each order is
//! Ney's estimate `D_k = n_1 / (n_1 + 2 n_2)` (`n_r`: the number of `k`-grams whose
//! count at that level is `r`), clamped to `[0.1, 0.9]` (Ney's estimate lies in
//! `0.4`–`0.8` on real text; the clamp keeps every byte's probability positive on
//! tiny training sets, where `n_1` or `n_2` may be 0), or given by the caller
//! ([`ByteNgram::train_with_discounts`]).
//!
//! Each level sums to 1 over the 256 bytes (the discounted mass
//! `D_k · N_k(h •) / c_k(h •)` is exactly what is moved to the lower level), so the
//! model is a proper distribution for every history.
//!
//! At the start of a text, where fewer than `n − 1` bytes precede, the model uses
//! the levels the available history allows (the top one then holds continuation
//! counts, as there is no begin-of-text symbol).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::{invalid, Result};

/// The default order (5-grams: 4 bytes of history).
pub const DEFAULT_ORDER: usize = 5;
/// The largest order supported (an `n`-gram is packed into one `u64`).
pub const MAX_ORDER: usize = 8;

/// A multiply-rotate hasher for the packed `u64` keys (the key already spreads
/// its bytes; SipHash's protection against chosen keys is not needed for counts).
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// `bytes` (at most 8) packed big-endian into a `u64`.
fn pack(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Per history at one level: `c_k(h •)` (total) and `N_k(h •)` (distinct next
/// bytes).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct HistoryStats {
    total: u64,
    distinct: u32,
}

/// One level `k` (1-based: `k`-grams of `k − 1` bytes of history and the next byte).
#[derive(Debug, Clone, Default)]
struct Level {
    /// `c_k(g)` for each `k`-gram `g` (packed).
    counts: KeyMap<u64>,
    /// Per `(k − 1)`-byte history (packed).
    histories: KeyMap<HistoryStats>,
    discount: f64,
}

impl Level {
    fn from_counts(k: usize, counts: KeyMap<u64>) -> Level {
        let mut histories: KeyMap<HistoryStats> = KeyMap::default();
        for (&g, &c) in &counts {
            let h = if k == 1 { 0 } else { g >> 8 };
            let s = histories.entry(h).or_default();
            s.total += c;
            s.distinct += 1;
        }
        Level { counts, histories, discount: 0.0 }
    }

    /// Ney's `n_1 / (n_1 + 2 n_2)`, clamped to `[0.1, 0.9]` (0.5 when both are 0).
    fn ney_discount(&self) -> f64 {
        let n1 = self.counts.values().filter(|&&c| c == 1).count() as f64;
        let n2 = self.counts.values().filter(|&&c| c == 2).count() as f64;
        if n1 + n2 == 0.0 {
            0.5
        } else {
            (n1 / (n1 + 2.0 * n2)).clamp(0.1, 0.9)
        }
    }
}

/// A byte n-gram model with interpolated Kneser–Ney smoothing (see the
/// [module docs](self) for the formula and its source).
#[derive(Debug, Clone)]
pub struct ByteNgram {
    /// `levels[k − 1]` is level `k`, `k = 1..=order`.
    levels: Vec<Level>,
}

impl ByteNgram {
    /// Counts the `order`-grams of `text` and their lower-order continuation counts,
    /// with Ney's discount per order.
    ///
    /// # Errors
    /// [`TextError::InvalidArgument`](crate::TextError::InvalidArgument) for an
    /// order outside `1..=8` or a text shorter than `order` bytes.
    pub fn train(text: &[u8], order: usize) -> Result<ByteNgram> {
        let mut model = Self::count(text, order)?;
        for level in &mut model.levels {
            level.discount = level.ney_discount();
        }
        Ok(model)
    }

    /// As [`train`](Self::train) with the discount of each level given:
    /// `discounts[k − 1]` for level `k`, each in `(0, 1]`.
    ///
    /// # Errors
    /// As [`train`](Self::train), and
    /// [`TextError::InvalidArgument`](crate::TextError::InvalidArgument) for
    /// `discounts.len() != order` or a discount outside `(0, 1]`.
    pub fn train_with_discounts(text: &[u8], order: usize, discounts: &[f64]) -> Result<ByteNgram> {
        if discounts.len() != order {
            return Err(invalid("ByteNgram", format!("{} discounts for order {order}", discounts.len())));
        }
        if let Some(d) = discounts.iter().find(|&&d| !(d > 0.0 && d <= 1.0)) {
            return Err(invalid("ByteNgram", format!("discount {d} must be in (0, 1]")));
        }
        let mut model = Self::count(text, order)?;
        for (level, &d) in model.levels.iter_mut().zip(discounts) {
            level.discount = d;
        }
        Ok(model)
    }

    fn count(text: &[u8], order: usize) -> Result<ByteNgram> {
        if !(1..=MAX_ORDER).contains(&order) {
            return Err(invalid("ByteNgram", format!("order {order} must be in 1..={MAX_ORDER}")));
        }
        if text.len() < order {
            return Err(invalid(
                "ByteNgram",
                format!("the training text has {} bytes, fewer than the order {order}", text.len()),
            ));
        }
        // Raw counts of the top order.
        let mut top: KeyMap<u64> = KeyMap::default();
        for gram in text.windows(order) {
            *top.entry(pack(gram)).or_default() += 1;
        }
        // Continuation counts: c_k(g) = number of distinct (k+1)-grams x·g seen,
        // i.e. the keys of level k+1 with their first byte dropped.
        let mut counts = vec![top];
        for k in (1..order).rev() {
            let above = counts.last().expect("the top level is there");
            let mask = if k == 8 { u64::MAX } else { (1u64 << (8 * k)) - 1 };
            let mut level: KeyMap<u64> = KeyMap::default();
            for &g in above.keys() {
                *level.entry(g & mask).or_default() += 1;
            }
            counts.push(level);
        }
        counts.reverse();
        let levels = counts.into_iter().enumerate().map(|(i, c)| Level::from_counts(i + 1, c)).collect();
        Ok(ByteNgram { levels })
    }

    /// The order `n`.
    pub fn order(&self) -> usize {
        self.levels.len()
    }

    /// The discount of each level, `[order]` (`[k − 1]` for level `k`).
    pub fn discounts(&self) -> Vec<f64> {
        self.levels.iter().map(|l| l.discount).collect()
    }

    /// The number of distinct `k`-grams counted at level `k`, `[order]`.
    pub fn gram_counts(&self) -> Vec<usize> {
        self.levels.iter().map(|l| l.counts.len()).collect()
    }

    /// `P(byte | history)`; only the last `order − 1` bytes of `history` are used
    /// (fewer when the history is shorter: see the [module docs](self)).
    pub fn prob(&self, history: &[u8], byte: u8) -> f64 {
        let n = self.order();
        let h = &history[history.len().saturating_sub(n - 1)..];
        let mut p = 1.0 / 256.0;
        for k in 1..=h.len() + 1 {
            let level = &self.levels[k - 1];
            let ctx = &h[h.len() + 1 - k..];
            let key_h = pack(ctx);
            if let Some(stats) = level.histories.get(&key_h) {
                let total = stats.total as f64;
                let c = level.counts.get(&((key_h << 8) | u64::from(byte))).copied().unwrap_or(0) as f64;
                let d = level.discount;
                p = (c - d).max(0.0) / total + d * f64::from(stats.distinct) / total * p;
            }
        }
        p
    }

    /// `P(b | history)` for every byte `b`, `[256]`; sums to 1.
    pub fn distribution(&self, history: &[u8]) -> Vec<f64> {
        (0..=255u8).map(|b| self.prob(history, b)).collect()
    }

    /// The cross-entropy of `text` in bits per byte:
    /// `−(1/L) Σ_i log2 P(text[i] | text[..i])`, each byte predicted from the bytes
    /// of `text` before it (the first from none).
    ///
    /// # Errors
    /// [`TextError::InvalidArgument`](crate::TextError::InvalidArgument) for an
    /// empty text.
    pub fn bits_per_byte(&self, text: &[u8]) -> Result<f64> {
        if text.is_empty() {
            return Err(invalid("ByteNgram::bits_per_byte", "the text is empty"));
        }
        let n = self.order();
        let total: f64 = (0..text.len()).map(|i| -self.prob(&text[i.saturating_sub(n - 1)..i], text[i]).log2()).sum();
        Ok(total / text.len() as f64)
    }
}
