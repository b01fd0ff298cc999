//! Feature scaling: by a constant, min-max, and standardization, fitted on the
//! training part only and stored as data (serde) so a saved model applies the same
//! transform at prediction time.
//!
//! # Statistics and the sample shape
//! A fitted [`Scaler`] holds one statistic per *feature*. Which elements share a
//! statistic is chosen at fit time by [`Granularity`]:
//! - [`Granularity::PerFeature`]: one per element of a sample (a `[features]` CSV
//!   row: one per column; a `[28, 28, 1]` image: one per pixel), as scikit-learn's
//!   scalers do on flattened rows.
//! - [`Granularity::PerChannel`]: one per entry of a sample's last axis (an NHWC
//!   image: one per channel), as Keras's `Normalization(axis=-1)` does.
//!
//! Statistics cover a sample's trailing axes: `L` statistics apply to samples whose
//! last axes multiply to `L`, and the element at row-major position `j` of a sample
//! uses statistic `j mod L`. So a per-pixel scaler fitted on `[28, 28, 1]` images also
//! applies to the same images flattened to `[784]`.
//!
//! # Arithmetic
//! Statistics are accumulated in `f64` over the `f32` values the model would see.
//! Each step maps an `f32` to `f64`, applies its formula in `f64`, and rounds to
//! `f32` once, so applying a chain step by step to a tensor ([`apply_all`]) and a
//! [`Dataset`]'s lazy batches give the same bits.

use nn_tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{invalid, DataError, Result};

/// Which elements of a sample share one statistic; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One statistic per element of a sample (scikit-learn's scalers on flat rows).
    #[default]
    PerFeature,
    /// One statistic per entry of the sample's last axis: per channel for NHWC
    /// images (Keras `Normalization(axis=-1)`).
    PerChannel,
}

/// A fitted feature transform, applied element by element.
///
/// Serialised with an internal tag, e.g. `{"kind":"standard","mean":[..],"std":[..]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scaler {
    /// `y = x · scale + offset` for every element (Keras `Rescaling(scale, offset)`);
    /// pixels to `[0, 1]`: `scale = 1/255`.
    Constant {
        /// The factor.
        scale: f64,
        /// Added after multiplying.
        offset: f64,
    },
    /// `y = low + (x − min_j) / (max_j − min_j) · (high − low)`, mapping the training
    /// range of feature `j` onto `[low, high]` (scikit-learn `MinMaxScaler`). A
    /// feature whose training values are all equal (`max_j = min_j`) uses a range of
    /// 1 instead of 0, so it maps to `low + (x − min_j)·(high − low)`: `low` on the
    /// training data, and no division by zero.
    MinMax {
        /// Per-feature minimum over the training data.
        min: Vec<f64>,
        /// Per-feature maximum over the training data.
        max: Vec<f64>,
        /// Lower end of the target range.
        low: f64,
        /// Upper end of the target range.
        high: f64,
    },
    /// `y = (x − mean_j) / std_j` (standard score; scikit-learn `StandardScaler`,
    /// Keras `Normalization`), with the population standard deviation
    /// `std_j = sqrt(Σ (x − mean_j)² / n)` (ddof 0). A feature whose training values
    /// are all equal has `std_j = 0`; it is stored as 1, as scikit-learn does, so the
    /// feature maps to `x − mean_j` (0 on the training data) and nothing divides by 0.
    Standard {
        /// Per-feature mean over the training data.
        mean: Vec<f64>,
        /// Per-feature population standard deviation, 0 replaced by 1.
        std: Vec<f64>,
    },
}

impl Scaler {
    /// `y = x · scale + offset`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for a non-finite `scale` or `offset`.
    pub fn constant(scale: f64, offset: f64) -> Result<Scaler> {
        if !scale.is_finite() || !offset.is_finite() {
            return Err(invalid("Scaler::constant", format!("scale {scale} and offset {offset} must be finite")));
        }
        Ok(Scaler::Constant { scale, offset })
    }

    /// Fits a min-max scaler onto `[low, high]` on `train`'s features (after any
    /// scalers `train` already carries).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for an empty dataset, a non-finite feature
    /// value, or unless `low < high` (both finite).
    pub fn fit_min_max(train: &Dataset, granularity: Granularity, low: f64, high: f64) -> Result<Scaler> {
        if !(low.is_finite() && high.is_finite() && low < high) {
            return Err(invalid(
                "Scaler::fit_min_max",
                format!("range [{low}, {high}] must be finite with low < high"),
            ));
        }
        let l = stat_count(train.sample_shape(), granularity);
        let mut min = vec![f64::INFINITY; l];
        let mut max = vec![f64::NEG_INFINITY; l];
        for_each_value(train, "Scaler::fit_min_max", |j, x| {
            let k = j % l;
            min[k] = min[k].min(x);
            max[k] = max[k].max(x);
        })?;
        Ok(Scaler::MinMax { min, max, low, high })
    }

    /// Fits a standardization on `train`'s features (after any scalers `train`
    /// already carries): per-feature mean, then population standard deviation in a
    /// second pass, both accumulated in `f64`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for an empty dataset or a non-finite value.
    pub fn fit_standard(train: &Dataset, granularity: Granularity) -> Result<Scaler> {
        let l = stat_count(train.sample_shape(), granularity);
        let mut sum = vec![0.0f64; l];
        let mut count = vec![0u64; l];
        for_each_value(train, "Scaler::fit_standard", |j, x| {
            sum[j % l] += x;
            count[j % l] += 1;
        })?;
        let mean: Vec<f64> = sum.iter().zip(&count).map(|(s, &c)| s / c as f64).collect();
        let mut sq = vec![0.0f64; l];
        for_each_value(train, "Scaler::fit_standard", |j, x| {
            let d = x - mean[j % l];
            sq[j % l] += d * d;
        })?;
        let std = sq
            .iter()
            .zip(&count)
            .map(|(s, &c)| {
                let std = (s / c as f64).sqrt();
                if std == 0.0 {
                    1.0
                } else {
                    std
                }
            })
            .collect();
        Ok(Scaler::Standard { mean, std })
    }

    /// The number of per-feature statistics (0 for [`Scaler::Constant`]).
    pub fn num_stats(&self) -> usize {
        match self {
            Scaler::Constant { .. } => 0,
            Scaler::MinMax { min, .. } => min.len(),
            Scaler::Standard { mean, .. } => mean.len(),
        }
    }

    /// Checks that this scaler fits samples of `sample_shape` (see the
    /// [module docs](self)) and that its statistics are usable: finite, as many
    /// minima as maxima (at least one, each `min ≤ max`), as many means as standard
    /// deviations (at least one, each `std > 0`). Deserialised scalers are checked
    /// here before use.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] naming both shapes.
    pub fn check(&self, sample_shape: &[usize]) -> Result<()> {
        let consistent = match self {
            Scaler::Constant { scale, offset } => scale.is_finite() && offset.is_finite(),
            Scaler::MinMax { min, max, low, high } => {
                !min.is_empty()
                    && min.len() == max.len()
                    && min.iter().zip(max).all(|(a, b)| a.is_finite() && b.is_finite() && a <= b)
                    && low.is_finite()
                    && high.is_finite()
            }
            Scaler::Standard { mean, std } => {
                !mean.is_empty()
                    && mean.len() == std.len()
                    && mean.iter().all(|m| m.is_finite())
                    && std.iter().all(|s| s.is_finite() && *s > 0.0)
            }
        };
        if !consistent {
            return Err(invalid("Scaler", format!("inconsistent scaler {self:?}")));
        }
        let l = self.num_stats();
        if l == 0 {
            return Ok(());
        }
        let mut product = 1usize;
        for &d in sample_shape.iter().rev() {
            product = product.saturating_mul(d);
            if product == l {
                return Ok(());
            }
        }
        Err(invalid(
            "Scaler",
            format!("{l} statistics do not match the trailing axes of samples of shape {sample_shape:?}"),
        ))
    }

    /// Transforms one value: `x` is the element at row-major position `j` of a
    /// sample; computed in `f64`, rounded to `f32` once. `j` is taken modulo
    /// [`Scaler::num_stats`]; call [`Scaler::check`] first.
    #[inline]
    pub(crate) fn apply_one(&self, j: usize, x: f32) -> f32 {
        let x = f64::from(x);
        let y = match self {
            Scaler::Constant { scale, offset } => x * scale + offset,
            Scaler::MinMax { min, max, low, high } => {
                let k = j % min.len();
                let range = max[k] - min[k];
                let range = if range == 0.0 { 1.0 } else { range };
                low + (x - min[k]) / range * (high - low)
            }
            Scaler::Standard { mean, std } => {
                let k = j % mean.len();
                (x - mean[k]) / std[k]
            }
        };
        y as f32
    }

    /// Transforms `values`, a row-major run of whole samples whose trailing axes fit
    /// this scaler (see [`Scaler::check`]).
    pub(crate) fn apply_slice(&self, values: &mut [f32]) {
        // Statistic `j mod L` for element `j` of a sample; as L divides the sample
        // length, that is also the element's position in the buffer modulo L.
        match self {
            Scaler::Constant { scale, offset } => {
                let (scale, offset) = (*scale, *offset);
                values.iter_mut().for_each(|v| *v = (f64::from(*v) * scale + offset) as f32);
            }
            Scaler::MinMax { min, max, low, high } => {
                let (low, span) = (*low, high - low);
                let ranges: Vec<f64> =
                    min.iter().zip(max).map(|(a, b)| if b - a == 0.0 { 1.0 } else { b - a }).collect();
                for chunk in values.chunks_exact_mut(min.len()) {
                    for ((v, m), r) in chunk.iter_mut().zip(min).zip(&ranges) {
                        *v = (low + (f64::from(*v) - m) / r * span) as f32;
                    }
                }
            }
            Scaler::Standard { mean, std } => {
                for chunk in values.chunks_exact_mut(mean.len()) {
                    for ((v, m), s) in chunk.iter_mut().zip(mean).zip(std) {
                        *v = ((f64::from(*v) - m) / s) as f32;
                    }
                }
            }
        }
    }

    /// Applies this scaler to `features` of shape `[batch, ...sample]`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for a 0-d tensor or samples this scaler does
    /// not fit (see [`Scaler::check`]).
    pub fn apply(&self, features: &Tensor<f32>) -> Result<Tensor<f32>> {
        apply_all(std::slice::from_ref(self), features)
    }
}

/// Applies `scalers` in order to `features` of shape `[batch, ...sample]`, each step
/// rounding to `f32` once: the same bits a [`Dataset`] carrying these scalers yields
/// in its batches.
///
/// # Errors
/// [`DataError::InvalidArgument`] for a 0-d tensor or samples a scaler does not fit.
pub fn apply_all(scalers: &[Scaler], features: &Tensor<f32>) -> Result<Tensor<f32>> {
    if features.ndim() == 0 {
        return Err(invalid("Scaler::apply", "features must be [batch, ...], got a 0-d tensor"));
    }
    let sample_shape = &features.shape()[1..];
    for s in scalers {
        s.check(sample_shape)?;
    }
    let mut out = features.to_contiguous();
    let values = out.as_slice_mut().ok_or_else(|| invalid("Scaler::apply", "non-contiguous tensor"))?;
    for s in scalers {
        s.apply_slice(values);
    }
    Ok(out)
}

fn stat_count(sample_shape: &[usize], granularity: Granularity) -> usize {
    match granularity {
        Granularity::PerFeature => sample_shape.iter().product(),
        Granularity::PerChannel => sample_shape.last().copied().unwrap_or(1),
    }
}

/// Calls `f(j, x)` for every element of every sample of `data` (as its batches would
/// hold it), with `j` its row-major position in the sample; samples are decoded in
/// chunks so byte-stored datasets are never materialised whole.
fn for_each_value(data: &Dataset, op: &'static str, mut f: impl FnMut(usize, f64)) -> Result<()> {
    const CHUNK: usize = 1024;
    if data.is_empty() {
        return Err(invalid(op, format!("cannot fit on the empty dataset {:?}", data.name())));
    }
    let sample_len = data.sample_len();
    if sample_len == 0 {
        return Err(invalid(op, format!("dataset {:?} has samples with no element", data.name())));
    }
    let mut buf = Vec::new();
    for start in (0..data.len()).step_by(CHUNK) {
        let end = (start + CHUNK).min(data.len());
        data.decode_range_into(start, end, &mut buf);
        for (i, &x) in buf.iter().enumerate() {
            if !x.is_finite() {
                let sample = start + i / sample_len;
                return Err(DataError::InvalidArgument {
                    op,
                    message: format!("non-finite value {x} in sample {sample} of {:?}", data.name()),
                });
            }
            f(i % sample_len, f64::from(x));
        }
    }
    Ok(())
}
