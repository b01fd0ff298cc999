//! Mini-batches: a seeded shuffle per epoch, a batch size, the last partial batch
//! kept unless `drop_last` is set.
//!
//! # Shuffle
//! Epoch `k`'s order is a Fisher–Yates (Durstenfeld) shuffle of `0..n` driven by
//! ChaCha8 seeded with `seed` and set to stream `k` ([`epoch_order`]). The order
//! therefore depends only on `(n, seed, k)`: resuming at epoch 7 reproduces epoch 7
//! without replaying epochs 0–6, and different epochs use independent streams.
//! Uniform draws below a bound use Lemire's multiply-and-reject method
//! (D. Lemire, "Fast Random Integer Generation in an Interval", ACM TOMACS 2019),
//! written here so the order does not change with the rand crate's version.

use nn_tensor::Tensor;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::{Dataset, Targets};
use crate::error::{invalid, Result};

/// ChaCha8 seeded with `seed`, on stream `stream`.
pub(crate) fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A uniform integer in `0..bound` (`bound > 0`), unbiased (Lemire 2019).
fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(bound);
    if (m as u64) < bound {
        let threshold = bound.wrapping_neg() % bound;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(bound);
        }
    }
    (m >> 64) as u64
}

/// Shuffles `items` in place: for `i` from `len − 1` down to 1, swap item `i` with
/// item `j`, `j` uniform in `0..=i` (Durstenfeld's Fisher–Yates).
pub(crate) fn shuffle_in_place<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// The sample order of epoch `epoch`: a permutation of `0..n` that depends only on
/// `(n, seed, epoch)` (see the [module docs](self)).
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    shuffle_in_place(&mut order, &mut stream_rng(seed, epoch));
    order
}

/// The number of batches for `n` samples: `ceil(n / batch_size)`, or
/// `floor(n / batch_size)` with `drop_last`. 1,000 samples at 128 give 8 batches
/// (the last of 104), 7 with `drop_last`.
///
/// # Errors
/// [`DataError::InvalidArgument`](crate::DataError::InvalidArgument) for a batch
/// size of 0.
pub fn num_batches(n: usize, batch_size: usize, drop_last: bool) -> Result<usize> {
    if batch_size == 0 {
        return Err(invalid("num_batches", "batch size must be at least 1"));
    }
    Ok(if drop_last { n / batch_size } else { n.div_ceil(batch_size) })
}

/// How a dataset is cut into mini-batches each epoch.
///
/// ```
/// use nn_data::{Batcher, digits};
/// let data = digits::load().scale_by(1.0 / 16.0)?;
/// let batcher = Batcher::new(128)?.shuffled(42);
/// for batch in batcher.batches(&data, 0) {
///     assert_eq!(batch.features.shape()[1..], [8, 8, 1]);
/// }
/// assert_eq!(batcher.num_batches(data.len()), 15); // ceil(1797 / 128)
/// # Ok::<(), nn_data::DataError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batcher {
    batch_size: usize,
    shuffle: Option<u64>,
    drop_last: bool,
}

impl Batcher {
    /// Batches of `batch_size` samples in stored order, the last partial batch kept.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`](crate::DataError::InvalidArgument) for a batch
    /// size of 0.
    pub fn new(batch_size: usize) -> Result<Batcher> {
        if batch_size == 0 {
            return Err(invalid("Batcher::new", "batch size must be at least 1"));
        }
        Ok(Batcher { batch_size, shuffle: None, drop_last: false })
    }

    /// Shuffles every epoch with [`epoch_order`]`(n, seed, epoch)`.
    pub fn shuffled(mut self, seed: u64) -> Batcher {
        self.shuffle = Some(seed);
        self
    }

    /// Keeps the stored order (the default).
    pub fn sequential(mut self) -> Batcher {
        self.shuffle = None;
        self
    }

    /// Whether to drop the last batch when it is smaller than the batch size
    /// (default `false`: kept).
    pub fn drop_last(mut self, drop_last: bool) -> Batcher {
        self.drop_last = drop_last;
        self
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The shuffle seed, or `None` when the order is sequential.
    pub fn seed(&self) -> Option<u64> {
        self.shuffle
    }

    /// Whether a last partial batch is dropped.
    pub fn drops_last(&self) -> bool {
        self.drop_last
    }

    /// The number of batches per epoch for `n` samples (see [`num_batches`]).
    pub fn num_batches(&self, n: usize) -> usize {
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The sample order of `epoch` for `n` samples (`0..n` when sequential).
    pub fn order(&self, n: usize, epoch: u64) -> Vec<usize> {
        match self.shuffle {
            Some(seed) => epoch_order(n, seed, epoch),
            None => (0..n).collect(),
        }
    }

    /// The sample indices of each batch of `epoch` for `n` samples.
    pub fn batch_indices(&self, n: usize, epoch: u64) -> Vec<Vec<usize>> {
        let order = self.order(n, epoch);
        let mut out: Vec<Vec<usize>> = order.chunks(self.batch_size).map(<[usize]>::to_vec).collect();
        if self.drop_last && out.last().is_some_and(|b| b.len() < self.batch_size) {
            out.pop();
        }
        out
    }

    /// The batches of `data` for `epoch`, in order.
    pub fn batches<'a>(&self, data: &'a Dataset, epoch: u64) -> Batches<'a> {
        let order = self.order(data.len(), epoch);
        Batches { data, order, pos: 0, batch_size: self.batch_size, remaining: self.num_batches(data.len()) }
    }
}

/// One mini-batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Scaled features `[batch, ...sample]`.
    pub features: Tensor<f32>,
    /// The targets of the same samples, in the same order (class indices `[batch]`
    /// or real values `[batch]` / `[batch, k]`).
    pub targets: Targets,
    /// The samples' indices in the dataset.
    pub indices: Vec<usize>,
}

impl Batch {
    /// The batch size (the number of samples).
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

impl Dataset {
    /// The batch of the samples at `indices`: their scaled features and targets.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`](crate::DataError::InvalidArgument) for an
    /// index `>= N`.
    pub fn batch(&self, indices: &[usize]) -> Result<Batch> {
        Ok(Batch {
            features: self.batch_features(indices)?,
            targets: self.targets().select(indices)?,
            indices: indices.to_vec(),
        })
    }
}

/// The iterator of [`Batcher::batches`]: yields each [`Batch`] of one epoch,
/// decoding (and scaling) its features only when it is reached.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
    remaining: usize,
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let end = (self.pos + self.batch_size).min(self.order.len());
        let indices = &self.order[self.pos..end];
        self.pos = end;
        Some(self.data.batch(indices).expect("epoch orders are permutations of the dataset's indices"))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Batches<'_> {}
