//! Seeded random fills.
//!
//! The generator is ChaCha8 ([`rand_chacha::ChaCha8Rng`]): its stream is specified
//! by the algorithm, not by the platform, so the same seed gives the same numbers on
//! every machine. Fills are drawn in row-major order, so the thread count never
//! changes them: on the calling thread, except the Bernoulli mask
//! ([`Tensor::random_bernoulli`], Dropout's, drawn every training step), whose chunks
//! are drawn on nn's pool each from its own position of the same ChaCha stream
//! (ChaCha is a counter-mode generator, so any position can be reached directly): the
//! same numbers as one sequential draw.

use ndarray::{ArrayD, IxDyn};
use ndarray_rand::RandomExt;
use rand::{Rng as _, SeedableRng};
use rand_distr::{Distribution, Normal, StandardNormal, Uniform};

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::shape::checked_numel;
use crate::tensor::Tensor;

/// The random generator nn uses everywhere (portable, seedable, serialisable state).
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator seeded with `seed`.
pub fn seeded_rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

fn invalid(op: &'static str, message: String) -> TensorError {
    TensorError::InvalidArgument { op, message }
}

impl<T: Element> Tensor<T> {
    /// Samples uniformly from `[low, high)`.
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] unless `low < high` (both finite);
    /// [`TensorError::Overflow`] for an overflowing shape.
    pub fn random_uniform(shape: &[usize], low: T, high: T, rng: &mut Rng) -> Result<Self> {
        checked_numel("random_uniform", shape)?;
        let dist =
            Uniform::new(low, high).map_err(|e| invalid("random_uniform", format!("range [{low}, {high}): {e}")))?;
        Ok(Tensor { data: ArrayD::random_using(IxDyn(shape), dist, rng) })
    }

    /// Samples from the normal distribution N(mean, std²) (drawn in f64, then rounded).
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] for a negative or non-finite `std`.
    pub fn random_normal(shape: &[usize], mean: f64, std: f64, rng: &mut Rng) -> Result<Self> {
        checked_numel("random_normal", shape)?;
        let dist = Normal::new(mean, std)
            .ok()
            .filter(|_| std.is_finite() && std >= 0.0 && mean.is_finite())
            .ok_or_else(|| invalid("random_normal", format!("std {std} must be finite and non-negative")))?;
        Ok(Tensor { data: ArrayD::random_using(IxDyn(shape), dist, rng).mapv(T::of_f64) })
    }

    /// Samples from N(mean, std²) truncated to `mean ± 2·std`: values outside are
    /// redrawn, as Keras's `TruncatedNormal` and TensorFlow's `truncated_normal` do.
    ///
    /// # Errors
    /// As [`Tensor::random_normal`].
    pub fn random_truncated_normal(shape: &[usize], mean: f64, std: f64, rng: &mut Rng) -> Result<Self> {
        let n = checked_numel("random_truncated_normal", shape)?;
        if !(std.is_finite() && std >= 0.0 && mean.is_finite()) {
            return Err(invalid("random_truncated_normal", format!("std {std} must be finite and non-negative")));
        }
        let mut values = Vec::with_capacity(n);
        while values.len() < n {
            let z: f64 = StandardNormal.sample(rng);
            if z.abs() <= 2.0 {
                values.push(T::of_f64(mean + std * z));
            }
        }
        Tensor::try_from_vec(shape, values)
    }

    /// A Bernoulli mask: each element is 1 with probability `keep`, else 0. Dropout
    /// multiplies by this mask (and scales by `1/keep`).
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] unless `0 ≤ keep ≤ 1`.
    ///
    /// Element `i` is `1` when the `i`-th `f64` drawn from `rng` (one 64-bit word
    /// pair of its stream each) is below `keep`; chunks of [`BERNOULLI_CHUNK`]
    /// elements are drawn on nn's pool, each generator clone moved to its chunk's
    /// first word ([`rand_chacha::ChaCha8Rng::set_word_pos`]), and `rng` ends where a
    /// sequential draw would have left it. The same mask as drawing one element
    /// after another, at any thread count.
    pub fn random_bernoulli(shape: &[usize], keep: f64, rng: &mut Rng) -> Result<Self> {
        let n = checked_numel("random_bernoulli", shape)?;
        if !(0.0..=1.0).contains(&keep) {
            return Err(invalid("random_bernoulli", format!("probability {keep} is outside [0, 1]")));
        }
        let start = rng.get_word_pos();
        let template = rng.clone();
        let values = crate::par_build(n, BERNOULLI_CHUNK, |i, chunk: &mut [T]| {
            let mut r = template.clone();
            r.set_word_pos(start + WORDS_PER_F64 * (i * BERNOULLI_CHUNK) as u128);
            for x in chunk {
                *x = if r.random::<f64>() < keep { T::one() } else { T::zero() };
            }
        });
        rng.set_word_pos(start + WORDS_PER_F64 * n as u128);
        Tensor::try_from_vec(shape, values)
    }
}

/// Elements per chunk of [`Tensor::random_bernoulli`]'s parallel draw.
pub const BERNOULLI_CHUNK: usize = 1 << 14;

/// 32-bit words of the ChaCha stream one `f64` takes (`rand` builds it from one
/// `u64`).
const WORDS_PER_F64: u128 = 2;

impl<T: Element> Tensor<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parallel mask is the sequential draw: element by element against
    /// `rng.random::<f64>() < keep` over several chunks (and a part chunk), and
    /// the generator continues from the same place.
    #[test]
    fn bernoulli_chunks_match_one_sequential_draw() {
        let n = 3 * BERNOULLI_CHUNK + 123;
        for threads in [1, 2] {
            crate::set_num_threads(threads);
            let mut rng = seeded_rng(11);
            let _: u32 = rng.random(); // start off a word-pair boundary
            let mut serial = rng.clone();
            let mask = Tensor::<f32>::random_bernoulli(&[n], 0.3, &mut rng).unwrap();
            let want: Vec<f32> = (0..n).map(|_| if serial.random::<f64>() < 0.3 { 1.0 } else { 0.0 }).collect();
            assert_eq!(mask.to_vec(), want);
            assert_eq!(rng.random::<u64>(), serial.random::<u64>());
        }
        crate::set_num_threads(0);
    }

    #[test]
    fn same_seed_same_numbers() {
        let a = Tensor::<f32>::random_normal(&[4, 5], 0.0, 1.0, &mut seeded_rng(7)).unwrap();
        let b = Tensor::<f32>::random_normal(&[4, 5], 0.0, 1.0, &mut seeded_rng(7)).unwrap();
        let c = Tensor::<f32>::random_normal(&[4, 5], 0.0, 1.0, &mut seeded_rng(8)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn uniform_range_and_moments() {
        let t = Tensor::<f64>::random_uniform(&[100_000], -2.0, 4.0, &mut seeded_rng(1)).unwrap();
        assert!(t.min() >= -2.0 && t.max() < 4.0);
        // mean (a+b)/2 = 1, variance (b−a)²/12 = 3; standard error of the mean ≈ 0.0055.
        assert!((t.mean() - 1.0).abs() < 0.03, "{}", t.mean());
        let var = t.try_var_axes(&[0], false).unwrap().item();
        assert!((var - 3.0).abs() < 0.05, "{var}");
        assert!(Tensor::<f64>::random_uniform(&[2], 1.0, 1.0, &mut seeded_rng(1)).is_err());
    }

    #[test]
    fn normal_truncated_and_bernoulli() {
        let mut rng = seeded_rng(3);
        let n = Tensor::<f64>::random_normal(&[100_000], 1.0, 2.0, &mut rng).unwrap();
        assert!((n.mean() - 1.0).abs() < 0.05);
        assert!((n.try_var_axes(&[0], false).unwrap().item() - 4.0).abs() < 0.1);
        let t = Tensor::<f64>::random_truncated_normal(&[100_000], 0.0, 1.0, &mut rng).unwrap();
        assert!(t.max() <= 2.0 && t.min() >= -2.0);
        // Variance of a standard normal truncated to ±2: 1 − 2·2·φ(2)/(Φ(2) − Φ(−2)) ≈ 0.7737.
        let var = t.try_var_axes(&[0], false).unwrap().item();
        assert!((var - 0.7737).abs() < 0.01, "{var}");
        let m = Tensor::<f32>::random_bernoulli(&[100_000], 0.8, &mut rng).unwrap();
        assert!(m.to_vec().iter().all(|&v| v == 0.0 || v == 1.0));
        assert!((m.mean() - 0.8).abs() < 0.01);
        assert!(Tensor::<f32>::random_bernoulli(&[1], 1.5, &mut rng).is_err());
        assert!(Tensor::<f32>::random_normal(&[1], 0.0, -1.0, &mut rng).is_err());
    }
}
