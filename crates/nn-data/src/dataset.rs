//! [`Dataset`]: features, targets, optional class names and a name.

use nn_tensor::Tensor;

use crate::error::{invalid, DataError, Result};
use crate::scale::Scaler;
use crate::split;

/// How features are held in memory.
#[derive(Debug, Clone, PartialEq)]
enum Storage {
    /// Bytes (images): 1 byte per element, turned into `f32` only when a batch
    /// needs them. MNIST's 60,000 × 784 training images take 47 MB like this
    /// instead of 188 MB as `f32`.
    Bytes(Vec<u8>),
    /// Real values (CSV columns, tensors).
    Real(Vec<f32>),
}

/// What a model should predict for each sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Class indices `[N]`, each `< num_classes`.
    Classes {
        /// The class index of each sample.
        labels: Vec<usize>,
        /// The number of classes (kept by subsets that lack some classes).
        num_classes: usize,
    },
    /// Real values for regression: `[N]` (one output) or `[N, k]` (k outputs).
    Real(Tensor<f32>),
}

impl Targets {
    /// Class-index targets.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for a label `>= num_classes`.
    pub fn classes(labels: Vec<usize>, num_classes: usize) -> Result<Targets> {
        if let Some((i, &bad)) = labels.iter().enumerate().find(|(_, &l)| l >= num_classes) {
            return Err(invalid(
                "Targets::classes",
                format!("label {bad} of sample {i} is not below {num_classes} classes"),
            ));
        }
        Ok(Targets::Classes { labels, num_classes })
    }

    /// Regression targets `[N]` or `[N, k]`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for another rank.
    pub fn real(values: Tensor<f32>) -> Result<Targets> {
        if !(1..=2).contains(&values.ndim()) {
            return Err(invalid("Targets::real", format!("expected [N] or [N, k], got {:?}", values.shape())));
        }
        Ok(Targets::Real(values.to_contiguous()))
    }

    /// The number of samples `N`.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Real(t) => t.shape().first().copied().unwrap_or(0),
        }
    }

    /// Checks what the constructors [`Targets::classes`] and [`Targets::real`]
    /// ensure, for targets built from the variants directly: every label below
    /// `num_classes`, real values of rank 1 or 2. [`Dataset`]'s constructors call it.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] naming the first problem.
    pub fn check(&self) -> Result<()> {
        match self {
            Targets::Classes { labels, num_classes } => {
                if let Some((i, &bad)) = labels.iter().enumerate().find(|(_, &l)| l >= *num_classes) {
                    return Err(invalid(
                        "Targets",
                        format!("label {bad} of sample {i} is not below {num_classes} classes"),
                    ));
                }
            }
            Targets::Real(t) if !(1..=2).contains(&t.ndim()) => {
                return Err(invalid("Targets", format!("real targets must be [N] or [N, k], got {:?}", t.shape())));
            }
            Targets::Real(_) => {}
        }
        Ok(())
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class indices, for class targets.
    pub fn labels(&self) -> Option<&[usize]> {
        match self {
            Targets::Classes { labels, .. } => Some(labels),
            Targets::Real(_) => None,
        }
    }

    /// The number of classes, for class targets.
    pub fn num_classes(&self) -> Option<usize> {
        match self {
            Targets::Classes { num_classes, .. } => Some(*num_classes),
            Targets::Real(_) => None,
        }
    }

    /// The regression values, for real targets.
    pub fn values(&self) -> Option<&Tensor<f32>> {
        match self {
            Targets::Real(t) => Some(t),
            Targets::Classes { .. } => None,
        }
    }

    /// How many samples each class has (`[num_classes]`), for class targets. Labels
    /// `>= num_classes` (possible only in targets built from the variants directly,
    /// which [`Targets::check`] rejects) are not counted.
    pub fn class_counts(&self) -> Option<Vec<usize>> {
        let Targets::Classes { labels, num_classes } = self else { return None };
        let mut counts = vec![0; *num_classes];
        for &l in labels {
            if let Some(c) = counts.get_mut(l) {
                *c += 1;
            }
        }
        Some(counts)
    }

    /// The targets of the samples at `indices`, in that order.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for an index `>= N`.
    pub fn select(&self, indices: &[usize]) -> Result<Targets> {
        let n = self.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(invalid("Targets::select", format!("sample index {bad} is out of range for {n} samples")));
        }
        Ok(match self {
            Targets::Classes { labels, num_classes } => {
                Targets::Classes { labels: indices.iter().map(|&i| labels[i]).collect(), num_classes: *num_classes }
            }
            Targets::Real(t) => Targets::Real(t.try_gather_rows(indices)?),
        })
    }

    /// The targets as a tensor: class targets one-hot encoded `[N, num_classes]`
    /// (see [`one_hot`]); real targets as stored.
    ///
    /// # Errors
    /// As [`one_hot`], for targets built from the variants directly with a label
    /// `>= num_classes`.
    pub fn to_tensor(&self) -> Result<Tensor<f32>> {
        match self {
            Targets::Classes { labels, num_classes } => one_hot(labels, *num_classes),
            Targets::Real(t) => Ok(t.clone()),
        }
    }
}

/// One-hot encoding: row `i` of the `[labels.len(), num_classes]` result is 1 at
/// column `labels[i]` and 0 elsewhere.
///
/// # Errors
/// [`DataError::InvalidArgument`] for a label `>= num_classes`.
pub fn one_hot(labels: &[usize], num_classes: usize) -> Result<Tensor<f32>> {
    let count = checked_count(&[labels.len(), num_classes])
        .ok_or_else(|| invalid("one_hot", format!("[{}, {num_classes}] is too large", labels.len())))?;
    let mut out = vec![0.0f32; count];
    for (i, &l) in labels.iter().enumerate() {
        if l >= num_classes {
            return Err(invalid("one_hot", format!("label {l} of sample {i} is not below {num_classes} classes")));
        }
        out[i * num_classes + l] = 1.0;
    }
    Ok(Tensor::try_from_vec(&[labels.len(), num_classes], out)?)
}

/// A labelled dataset: features `[N, ...sample]`, targets, optional class names and
/// a name.
///
/// # Layout
/// Samples are row-major. Images are NHWC (channels last, as in Keras): MNIST
/// samples are `[28, 28, 1]`, CSV rows are `[features]`.
///
/// # Storage
/// Features are held either as bytes (images) or as `f32`. Byte features stay
/// bytes until a batch needs them: [`Dataset::batch_features`] converts only the
/// requested samples. Scalers added with [`Dataset::with_scaler`] are not applied to
/// the stored data but recorded and applied to each batch (each step in `f64`,
/// rounded to `f32`), so scaling MNIST to `[0, 1]` costs no memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    name: String,
    storage: Storage,
    sample_shape: Vec<usize>,
    len: usize,
    scalers: Vec<Scaler>,
    targets: Targets,
    class_names: Option<Vec<String>>,
}

/// The element count of `shape`, or `None` when it cannot be an ndarray shape: the
/// product overflows, or the product of its non-zero dimensions exceeds `isize::MAX`
/// (ndarray's limit, which applies even when another dimension is 0).
pub(crate) fn checked_count(shape: &[usize]) -> Option<usize> {
    let nonzero = shape.iter().filter(|&&d| d != 0).try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    if nonzero > isize::MAX as usize {
        return None;
    }
    Some(if shape.contains(&0) { 0 } else { nonzero })
}

fn check_features(op: &'static str, shape: &[usize], count: usize, targets: &Targets) -> Result<(usize, Vec<usize>)> {
    let Some((&n, sample)) = shape.split_first() else {
        return Err(invalid(op, "features must be [N, ...], got a 0-d shape"));
    };
    if checked_count(shape) != Some(count) {
        return Err(invalid(op, format!("shape {shape:?} does not hold {count} elements")));
    }
    targets.check()?;
    if targets.len() != n {
        return Err(invalid(op, format!("{n} samples of features but {} targets", targets.len())));
    }
    Ok((n, sample.to_vec()))
}

fn tensor_into_vec(t: Tensor<f32>) -> Vec<f32> {
    let a = t.into_array();
    if a.is_standard_layout() {
        let n = a.len();
        let (v, offset) = a.into_raw_vec_and_offset();
        let start = offset.unwrap_or(0);
        if start == 0 && v.len() == n {
            return v;
        }
        return v[start..start + n].to_vec();
    }
    a.iter().copied().collect()
}

impl Dataset {
    /// A dataset whose features are bytes (images), `shape = [N, ...sample]` in
    /// row-major order; the values the model sees are the bytes as `f32`, then any
    /// scalers added later.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] when `shape` does not hold `bytes.len()`
    /// elements or `N` differs from the number of targets.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>, shape: &[usize], targets: Targets) -> Result<Dataset> {
        let (len, sample_shape) = check_features("Dataset::from_bytes", shape, bytes.len(), &targets)?;
        Ok(Dataset {
            name: name.into(),
            storage: Storage::Bytes(bytes),
            sample_shape,
            len,
            scalers: Vec::new(),
            targets,
            class_names: None,
        })
    }

    /// A dataset whose features are the tensor `[N, ...sample]`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for a 0-d tensor or when `N` differs from the
    /// number of targets.
    pub fn from_tensor(name: impl Into<String>, features: Tensor<f32>, targets: Targets) -> Result<Dataset> {
        let shape = features.shape().to_vec();
        let (len, sample_shape) = check_features("Dataset::from_tensor", &shape, features.len(), &targets)?;
        Ok(Dataset {
            name: name.into(),
            storage: Storage::Real(tensor_into_vec(features)),
            sample_shape,
            len,
            scalers: Vec::new(),
            targets,
            class_names: None,
        })
    }

    /// Sets the class names (index `i` names class `i`).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] unless the targets are classes and there is
    /// one name per class.
    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Dataset> {
        match self.targets.num_classes() {
            Some(k) if k == names.len() => {
                self.class_names = Some(names);
                Ok(self)
            }
            Some(k) => Err(invalid("Dataset::with_class_names", format!("{} names for {k} classes", names.len()))),
            None => Err(invalid("Dataset::with_class_names", "the targets are real values, not classes")),
        }
    }

    /// The same features with other targets (e.g. standardised regression targets);
    /// class names are dropped unless the new targets are classes of the same count.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] when the new targets are invalid or their
    /// number differs from the number of samples.
    pub fn with_targets(mut self, targets: Targets) -> Result<Dataset> {
        targets.check()?;
        if targets.len() != self.len {
            return Err(invalid(
                "Dataset::with_targets",
                format!("{} targets for {} samples", targets.len(), self.len),
            ));
        }
        if targets.num_classes() != self.targets.num_classes() {
            self.class_names = None;
        }
        self.targets = targets;
        Ok(self)
    }

    /// Renames the dataset.
    pub fn with_name(mut self, name: impl Into<String>) -> Dataset {
        self.name = name.into();
        self
    }

    /// Appends a scaler, applied to every batch after those already added.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] when the scaler does not fit the sample shape
    /// ([`Scaler::check`]).
    pub fn with_scaler(mut self, scaler: Scaler) -> Result<Dataset> {
        scaler.check(&self.sample_shape)?;
        self.scalers.push(scaler);
        Ok(self)
    }

    /// Appends `Scaler::Constant { scale, offset: 0 }`: `scale_by(1.0 / 255.0)` maps
    /// MNIST pixels to `[0, 1]` without converting the stored bytes.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for a non-finite `scale`.
    pub fn scale_by(self, scale: f64) -> Result<Dataset> {
        self.with_scaler(Scaler::constant(scale, 0.0)?)
    }

    /// The same samples under another sample shape with as many elements (row-major
    /// order is unchanged), e.g. `[8, 8, 1]` to `[64]`. Scalers already added keep
    /// applying by row-major position, so their results do not change (a per-channel
    /// scaler still sees each element's channel: channels are the last axis).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] when the element counts differ.
    pub fn reshape_samples(mut self, sample_shape: &[usize]) -> Result<Dataset> {
        let full: Vec<usize> = std::iter::once(self.len).chain(sample_shape.iter().copied()).collect();
        let count = sample_shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if count != Some(self.sample_len()) || checked_count(&full).is_none() {
            return Err(invalid(
                "Dataset::reshape_samples",
                format!("cannot reshape samples {:?} to {sample_shape:?}", self.sample_shape),
            ));
        }
        self.sample_shape = sample_shape.to_vec();
        Ok(self)
    }

    /// Samples flattened to `[features]` (Keras `Flatten` on the data).
    pub fn flatten(self) -> Dataset {
        let n = self.sample_len();
        self.reshape_samples(&[n]).expect("a flat shape holds the same element count")
    }

    // ------------------------------------------------------------------ accessors

    /// The dataset's name (e.g. `"mnist-train"`, a CSV file's stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of samples `N`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shape of one sample, e.g. `[28, 28, 1]` (NHWC) or `[features]`.
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// The number of elements in one sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The features' full shape `[N, ...sample]`.
    pub fn shape(&self) -> Vec<usize> {
        std::iter::once(self.len).chain(self.sample_shape.iter().copied()).collect()
    }

    /// The targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The class names, if known.
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// The number of classes, for class targets.
    pub fn num_classes(&self) -> Option<usize> {
        self.targets.num_classes()
    }

    /// The scalers applied to every batch, in order (store them with a model).
    pub fn scalers(&self) -> &[Scaler] {
        &self.scalers
    }

    /// The stored bytes `[N, ...sample]` (row-major, before scaling) when the
    /// features are held as bytes.
    pub fn raw_bytes(&self) -> Option<&[u8]> {
        match &self.storage {
            Storage::Bytes(b) => Some(b),
            Storage::Real(_) => None,
        }
    }

    // ------------------------------------------------------------------ features

    /// When the features are bytes and every scaler is a [`Scaler::Constant`], the
    /// value each byte becomes: the whole chain applied to the 256 possible bytes,
    /// step by step as [`Scaler::apply_one`] does, so a lookup gives the same bits.
    fn byte_table(&self) -> Option<[f32; 256]> {
        if !matches!(self.storage, Storage::Bytes(_))
            || !self.scalers.iter().all(|s| matches!(s, Scaler::Constant { .. }))
        {
            return None;
        }
        let mut table = [0.0f32; 256];
        for (b, v) in table.iter_mut().enumerate() {
            *v = self.scalers.iter().fold(b as f32, |x, s| s.apply_one(0, x));
        }
        Some(table)
    }

    /// Appends the scaled features of samples `rows` (each `< N`; the caller checks)
    /// to `out`.
    fn extend_scaled(&self, rows: impl Iterator<Item = std::ops::Range<usize>>, out: &mut Vec<f32>) {
        let s = self.sample_len();
        let first = out.len();
        let table = self.byte_table();
        match (&self.storage, &table) {
            (Storage::Bytes(b), Some(t)) => rows.for_each(|r| {
                // A table lookup per byte, written into place (not pushed) so that the
                // loop vectorizes (gathers) at the CPU's widest vectors.
                let (src, at) = (&b[r.start * s..r.end * s], out.len());
                out.resize(at + src.len(), 0.0);
                nn_tensor::simd::vectorized(
                    #[inline(always)]
                    || {
                        out[at..].iter_mut().zip(src).for_each(|(o, &x)| *o = t[usize::from(x)]);
                    },
                );
            }),
            (Storage::Bytes(b), None) => {
                rows.for_each(|r| out.extend(b[r.start * s..r.end * s].iter().map(|&x| f32::from(x))))
            }
            (Storage::Real(v), _) => rows.for_each(|r| out.extend_from_slice(&v[r.start * s..r.end * s])),
        }
        if table.is_none() {
            for sc in &self.scalers {
                sc.apply_slice(&mut out[first..]);
            }
        }
    }

    /// Decodes samples `start..end` into `out` (cleared first): stored values as
    /// `f32`, then every scaler. Bounds are the caller's to check.
    pub(crate) fn decode_range_into(&self, start: usize, end: usize, out: &mut Vec<f32>) {
        out.clear();
        self.extend_scaled(std::iter::once(start..end), out);
    }

    /// The features of the samples at `indices`, in that order, scaled:
    /// `[indices.len(), ...sample]`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for an index `>= N`.
    pub fn batch_features(&self, indices: &[usize]) -> Result<Tensor<f32>> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len) {
            return Err(invalid(
                "Dataset::batch_features",
                format!("sample index {bad} is out of range for {} samples", self.len),
            ));
        }
        let mut out = Vec::with_capacity(indices.len() * self.sample_len());
        self.extend_scaled(indices.iter().map(|&i| i..i + 1), &mut out);
        let shape: Vec<usize> = std::iter::once(indices.len()).chain(self.sample_shape.iter().copied()).collect();
        Ok(Tensor::try_from_vec(&shape, out)?)
    }

    /// All features, scaled: `[N, ...sample]`. For byte features this allocates the
    /// whole `f32` tensor (4 bytes per element); prefer batches for large sets.
    pub fn features(&self) -> Tensor<f32> {
        let mut out = Vec::with_capacity(self.len * self.sample_len());
        self.decode_range_into(0, self.len, &mut out);
        Tensor::try_from_vec(&self.shape(), out).expect("a dataset's shape holds its element count")
    }

    /// A dataset of the samples at `indices` (copied, in that order, repeats
    /// allowed), with the same name, scalers and class names.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for an index `>= N`.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        let targets = self.targets.select(indices)?;
        let s = self.sample_len();
        let storage = match &self.storage {
            Storage::Bytes(b) => {
                Storage::Bytes(indices.iter().flat_map(|&i| b[i * s..(i + 1) * s].iter().copied()).collect())
            }
            Storage::Real(v) => {
                Storage::Real(indices.iter().flat_map(|&i| v[i * s..(i + 1) * s].iter().copied()).collect())
            }
        };
        Ok(Dataset {
            name: self.name.clone(),
            storage,
            sample_shape: self.sample_shape.clone(),
            len: indices.len(),
            scalers: self.scalers.clone(),
            targets,
            class_names: self.class_names.clone(),
        })
    }

    // ------------------------------------------------------------------ splits

    /// Keras's `validation_split`: the last `fraction` of the samples, in their
    /// stored order, becomes the validation set (see [`split::validation_split`]).
    /// Returns `(train, validation)`.
    ///
    /// # Errors
    /// As [`split::validation_split`].
    pub fn split_validation(&self, fraction: f64) -> Result<(Dataset, Dataset)> {
        let (train, val) = split::validation_split(self.len, fraction)?;
        Ok((self.subset(&train)?, self.subset(&val)?))
    }

    /// A seeded shuffled split into parts of the given fractions (see
    /// [`split::shuffled_split`]), e.g. `[0.7, 0.2, 0.1]` for train, validation, test.
    ///
    /// # Errors
    /// As [`split::shuffled_split`].
    pub fn split_shuffled(&self, fractions: &[f64], seed: u64) -> Result<Vec<Dataset>> {
        split::shuffled_split(self.len, fractions, seed)?.iter().map(|idx| self.subset(idx)).collect()
    }

    /// A seeded stratified split: each part keeps the class proportions (see
    /// [`split::stratified_split`]).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for real-valued targets, and as
    /// [`split::stratified_split`].
    pub fn split_stratified(&self, fractions: &[f64], seed: u64) -> Result<Vec<Dataset>> {
        let Targets::Classes { labels, num_classes } = &self.targets else {
            return Err(DataError::InvalidArgument {
                op: "split_stratified",
                message: "stratifying needs class targets, not real values".into(),
            });
        };
        split::stratified_split(labels, *num_classes, fractions, seed)?.iter().map(|idx| self.subset(idx)).collect()
    }
}
