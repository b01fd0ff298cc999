//! Feature scaling: by a constant, min-max, and standardization, and mean imputation
//! of missing values, fitted on the training part only and stored as data (serde) so a
//! saved model applies the same transform at prediction time.
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
//!
//! # Missing values (`NaN`)
//! A feature value of `NaN` means "missing" (a CSV table read with
//! [`Missing::Mean`](crate::Missing::Mean)); a [`Dataset`] holds such features as
//! they are ([`Dataset::from_tensor`] and [`Dataset::with_scaler`] do not look at the
//! values). [`Scaler::Impute`], fitted by [`Scaler::fit_impute_mean`] on the non-`NaN`
//! values, replaces `NaN` by the feature's training mean. **The imputer must come
//! first in a chain**: fit it on the raw training part, add it
//! ([`Dataset::with_scaler`]), then fit the other scalers on the dataset carrying it,
//! which they see imputed, so that no `NaN` reaches the model. [`Scaler::fit_standard`]
//! and [`Scaler::fit_min_max`] refuse a `NaN` they see (the imputer is missing or
//! comes later), as every fit refuses infinities; applied to a `NaN` they give `NaN`.
//!
//! ```
//! use nn_data::{Dataset, Granularity, Scaler, Targets};
//! use nn_tensor::Tensor;
//! // Feature 0 holds 1, missing, 3: the imputer's mean is 2.
//! let x = Tensor::from_vec(&[3, 1], vec![1.0, f32::NAN, 3.0]);
//! let train = Dataset::from_tensor("t", x, Targets::classes(vec![0, 0, 0], 1)?)?;
//! let impute = Scaler::fit_impute_mean(&train)?;
//! assert_eq!(impute, Scaler::Impute { values: vec![2.0] });
//! let train = train.with_scaler(impute)?;
//! let standard = Scaler::fit_standard(&train, Granularity::PerFeature)?;
//! let train = train.with_scaler(standard)?;
//! // 1, 2, 3 standardized: mean 2, population std sqrt(2/3).
//! let z = (1.0f64 / (2.0f64 / 3.0).sqrt()) as f32;
//! assert_eq!(train.features().to_vec(), vec![-z, 0.0, z]);
//! # Ok::<(), nn_data::DataError>(())
//! ```

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
    /// `y = values_j` where `x` is `NaN` (a missing value), else `y = x` unchanged
    /// (bit for bit): mean imputation, scikit-learn
    /// `SimpleImputer(strategy="mean")`. Serialised as
    /// `{"kind":"impute","values":[..]}`. Put it first in a chain of scalers (see the
    /// [module docs](self)).
    Impute {
        /// Per-feature replacement of a missing value: the mean of the feature's
        /// non-missing training values (0 when it had none).
        values: Vec<f64>,
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
    /// scalers `train` already carries: the imputer first when values are missing).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for an empty dataset, a non-finite feature
    /// value (`NaN` included: add the imputer first), or unless `low < high` (both
    /// finite).
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
        for_each_value(train, "Scaler::fit_min_max", false, |j, x| {
            let k = j % l;
            min[k] = min[k].min(x);
            max[k] = max[k].max(x);
        })?;
        Ok(Scaler::MinMax { min, max, low, high })
    }

    /// Fits a standardization on `train`'s features (after any scalers `train`
    /// already carries: the imputer first when values are missing): per-feature mean,
    /// then population standard deviation in a second pass, both accumulated in `f64`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for an empty dataset or a non-finite value
    /// (`NaN` included: add the imputer first).
    pub fn fit_standard(train: &Dataset, granularity: Granularity) -> Result<Scaler> {
        let l = stat_count(train.sample_shape(), granularity);
        let mut sum = vec![0.0f64; l];
        let mut count = vec![0u64; l];
        for_each_value(train, "Scaler::fit_standard", false, |j, x| {
            sum[j % l] += x;
            count[j % l] += 1;
        })?;
        let mean: Vec<f64> = sum.iter().zip(&count).map(|(s, &c)| s / c as f64).collect();
        let mut sq = vec![0.0f64; l];
        for_each_value(train, "Scaler::fit_standard", false, |j, x| {
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

    /// Fits mean imputation on `train`'s features (after any scalers `train` already
    /// carries, which should be none: the imputer comes first): for each element of a
    /// sample (one per CSV feature, [`Granularity::PerFeature`]), the mean of its
    /// non-`NaN` values, accumulated in `f64`; 0 for a feature whose every value is
    /// `NaN`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for an empty dataset or an infinite value.
    pub fn fit_impute_mean(train: &Dataset) -> Result<Scaler> {
        let l = stat_count(train.sample_shape(), Granularity::PerFeature);
        let mut sum = vec![0.0f64; l];
        let mut count = vec![0u64; l];
        for_each_value(train, "Scaler::fit_impute_mean", true, |j, x| {
            sum[j % l] += x;
            count[j % l] += 1;
        })?;
        let values = sum.iter().zip(&count).map(|(s, &c)| if c == 0 { 0.0 } else { s / c as f64 }).collect();
        Ok(Scaler::Impute { values })
    }

    /// The number of per-feature statistics (0 for [`Scaler::Constant`]).
    pub fn num_stats(&self) -> usize {
        match self {
            Scaler::Constant { .. } => 0,
            Scaler::MinMax { min, .. } => min.len(),
            Scaler::Standard { mean, .. } => mean.len(),
            Scaler::Impute { values } => values.len(),
        }
    }

    /// Checks that this scaler fits samples of `sample_shape` (see the
    /// [module docs](self)) and that its statistics are usable: finite, as many
    /// minima as maxima (at least one, each `min ≤ max`), as many means as standard
    /// deviations (at least one, each `std > 0`), at least one imputed value.
    /// Deserialised scalers are checked here before use.
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
            Scaler::Impute { values } => !values.is_empty() && values.iter().all(|v| v.is_finite()),
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
        let wide = f64::from(x);
        match self {
            Scaler::Constant { scale, offset } => (wide * scale + offset) as f32,
            Scaler::MinMax { min, max, low, high } => {
                let k = j % min.len();
                let range = max[k] - min[k];
                let range = if range == 0.0 { 1.0 } else { range };
                (low + (wide - min[k]) / range * (high - low)) as f32
            }
            Scaler::Standard { mean, std } => {
                let k = j % mean.len();
                ((wide - mean[k]) / std[k]) as f32
            }
            Scaler::Impute { values } if x.is_nan() => values[j % values.len()] as f32,
            Scaler::Impute { .. } => x,
        }
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
            Scaler::Impute { values: fill } => {
                let fill: Vec<f32> = fill.iter().map(|&m| m as f32).collect();
                for chunk in values.chunks_exact_mut(fill.len()) {
                    for (v, &m) in chunk.iter_mut().zip(&fill) {
                        if v.is_nan() {
                            *v = m;
                        }
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
/// chunks so byte-stored datasets are never materialised whole. A `NaN` (a missing
/// value) is skipped when `skip_nan`, else an error; an infinity is an error.
fn for_each_value(data: &Dataset, op: &'static str, skip_nan: bool, mut f: impl FnMut(usize, f64)) -> Result<()> {
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
            if x.is_nan() && skip_nan {
                continue;
            }
            if !x.is_finite() {
                let sample = start + i / sample_len;
                let hint = if x.is_nan() { " (a missing value: add the mean imputer first)" } else { "" };
                return Err(DataError::InvalidArgument {
                    op,
                    message: format!("non-finite value {x} in sample {sample} of {:?}{hint}", data.name()),
                });
            }
            f(i % sample_len, f64::from(x));
        }
    }
    Ok(())
}
