//! The adding problem, a synthetic long-range-dependency task for recurrent networks
//! (Hochreiter & Schmidhuber, "Long short-term memory", *Neural Computation* 9(8),
//! 1997, experiment 4), in the form later benchmarks use (Le, Jaitly & Hinton, "A
//! simple way to initialize recurrent networks of rectified linear units", 2015;
//! Arjovsky, Shah & Bengio, "Unitary evolution recurrent neural networks", 2016).
//!
//! Each sample is a sequence of `length` pairs `(value, marker)`: the values are drawn
//! uniformly from `[0, 1)`, and exactly two markers are 1 (the others 0), one at a
//! position drawn uniformly from the first half `[0, ⌊length/2⌋)` and one from the
//! second half `[⌊length/2⌋, length)`. The target is the sum of the two marked values.
//! Predicting the constant mean 1 gives a mean squared error of `Var(u₁ + u₂) = 2/12
//! ≈ 0.167`, the baseline a model must beat.

use nn_tensor::random::seeded_rng;
use nn_tensor::Tensor;
use rand::Rng as _;

use crate::dataset::{Dataset, Targets};
use crate::error::{invalid, Result};
use crate::mnist::TrainTest;

/// The mean squared error of always predicting the mean target (1): `2/12`.
pub const CONSTANT_MEAN_MSE: f64 = 2.0 / 12.0;

/// `samples` sequences of the adding problem of `length` steps, from a ChaCha8
/// generator seeded with `seed` (the same seed gives the same data on every machine).
///
/// # Shapes
/// Features `[samples, length, 2]` (per step: value, marker), real targets
/// `[samples, 1]`.
///
/// # Errors
/// [`DataError::InvalidArgument`](crate::DataError::InvalidArgument) for a length
/// below 2 or no samples.
pub fn generate(length: usize, samples: usize, seed: u64) -> Result<Dataset> {
    if length < 2 {
        return Err(invalid("adding problem", format!("the sequence length must be at least 2, got {length}")));
    }
    if samples == 0 {
        return Err(invalid("adding problem", "the number of samples must be at least 1"));
    }
    let mut rng = seeded_rng(seed);
    let half = length / 2;
    let mut features = Vec::with_capacity(samples * length * 2);
    let mut targets = Vec::with_capacity(samples);
    for _ in 0..samples {
        let first = rng.random_range(0..half);
        let second = rng.random_range(half..length);
        let mut sum = 0.0f32;
        for t in 0..length {
            let value: f32 = rng.random::<f32>();
            let marked = t == first || t == second;
            if marked {
                sum += value;
            }
            features.push(value);
            features.push(if marked { 1.0 } else { 0.0 });
        }
        targets.push(sum);
    }
    let features = Tensor::try_from_vec(&[samples, length, 2], features)?;
    let targets = Targets::real(Tensor::try_from_vec(&[samples, 1], targets)?)?;
    Dataset::from_tensor(format!("adding-{length}"), features, targets)
}

/// A training and a test set of the adding problem, drawn from independent streams
/// (seeds `seed` and `seed + 1`), named `adding-{length}-train` and `-test`.
///
/// # Errors
/// As [`generate`].
pub fn train_test(length: usize, train: usize, test: usize, seed: u64) -> Result<TrainTest> {
    Ok(TrainTest {
        train: generate(length, train, seed)?.with_name(format!("adding-{length}-train")),
        test: generate(length, test, seed.wrapping_add(1))?.with_name(format!("adding-{length}-test")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_markers_one_per_half_and_the_target_is_their_sum() {
        let d = generate(10, 200, 3).unwrap();
        assert_eq!(d.features().shape(), [200, 10, 2]);
        let x = d.features().to_vec();
        let y = d.targets().values().unwrap().to_vec();
        assert_eq!(d.targets().values().unwrap().shape(), [200, 1]);
        for s in 0..200 {
            let step = |t: usize| (x[(s * 10 + t) * 2], x[(s * 10 + t) * 2 + 1]);
            let marked: Vec<usize> = (0..10).filter(|&t| step(t).1 == 1.0).collect();
            assert_eq!(marked.len(), 2, "sample {s}");
            assert!(marked[0] < 5 && marked[1] >= 5, "sample {s}: {marked:?}");
            assert!((0..10).all(|t| (0.0..1.0).contains(&step(t).0) && matches!(step(t).1, 0.0 | 1.0)));
            assert_eq!(y[s], step(marked[0]).0 + step(marked[1]).0);
        }
    }

    #[test]
    fn seeded_and_the_constant_mean_baseline_is_one_sixth() {
        let a = generate(50, 20_000, 7).unwrap();
        assert_eq!(a.features().to_vec(), generate(50, 20_000, 7).unwrap().features().to_vec());
        assert_ne!(a.features().to_vec(), generate(50, 20_000, 8).unwrap().features().to_vec());
        let y = a.targets().values().unwrap().to_vec();
        let mse = y.iter().map(|&v| (v as f64 - 1.0).powi(2)).sum::<f64>() / y.len() as f64;
        // Var(u1 + u2) = 1/6; the sample estimate over 20,000 draws has sd ≈ 0.0012.
        assert!((mse - CONSTANT_MEAN_MSE).abs() < 0.006, "{mse}");
        let tt = train_test(50, 100, 10, 7).unwrap();
        assert_eq!((tt.train.len(), tt.test.len()), (100, 10));
        assert_eq!(tt.train.name(), "adding-50-train");
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(generate(1, 10, 0).unwrap_err().to_string().contains("at least 2, got 1"));
        assert!(generate(5, 0, 0).is_err());
    }
}
