//! # nn-data
//!
//! Labelled datasets for the nn toolkit: step 1 of a training run (load the data,
//! split it into training, validation and test sets, scale it, cut it into
//! shuffled mini-batches).
//!
//! - [`Dataset`]: features `[N, ...sample]` (images NHWC, channels last; CSV rows
//!   `[features]`), [`Targets`] (class indices `[N]` or real values `[N]` /
//!   `[N, k]`), optional class names and a name. Image features stay bytes in
//!   memory until a batch needs them.
//! - Readers: [`idx`] (every IDX element type, raw or gzip detected from the bytes,
//!   fully validated), [`mnist`] (MNIST and Fashion-MNIST directories), [`csv`]
//!   (header row, target column by name or index, text labels to class indices).
//!   Each reader also takes bytes or any [`std::io::Read`].
//! - Your own tables, safely: [`csv::read_table`] records what the model needs to
//!   read new files the same way, a [`FeatureSchema`] (feature names in order,
//!   one-hot categories of text columns, the missing-value policy), and the task
//!   with the reason it was chosen; columns can be dropped, missing cells refused,
//!   dropped or imputed ([`Missing`]). [`csv::read_by_schema`] reads a prediction
//!   or evaluation file by that schema: columns by name in any order, extra columns
//!   listed and ignored, unseen categories counted, labels mapped to the model's
//!   classes. Both encode rows with [`FeatureSchema::encode_row`].
//! - [`download`]: MNIST fetched once into a cache folder and verified by SHA-256 (Keras-style `--data mnist`).
//! - The embedded default, [`digits`]: 1,797 handwritten 8×8 digits compiled into
//!   the crate, so training needs no file. Source: the *Optical Recognition of
//!   Handwritten Digits* data set (E. Alpaydin, C. Kaynak, 1998), UCI Machine
//!   Learning Repository, CC BY 4.0.
//! - [`adding`]: the adding problem (Hochreiter & Schmidhuber, 1997), a seeded
//!   synthetic sequence-regression task for recurrent networks.
//! - [`split`]: Keras `validation_split` (the last fraction, before shuffling),
//!   seeded shuffled and stratified splits, exact counts that sum to `N`.
//! - [`scale`]: constant, min-max and standard scalers and mean imputation of
//!   missing (`NaN`) values ([`Scaler::fit_impute_mean`], first in a chain), fitted on
//!   the training part only, serde-serialisable so a saved model applies the same
//!   transform.
//! - [`batch`]: a seeded shuffle per epoch (epoch `k`'s order depends only on the
//!   seed and `k`), the last partial batch kept unless `drop_last`, one-hot
//!   encoding ([`one_hot`]).
//! - [`augment`]: random shifts and rotations of training images ([`Augment`],
//!   written `shift:PIXELS[,rotate:DEGREES]`), drawn from a generator the caller
//!   passes ([`augment::batch_rng`] derives one per batch from the run's seed).
//!
//! Errors: one enum, [`DataError`], naming the file (and the line, counted exactly
//! whatever the line ends, and the column in a CSV file) and what is wrong. No input bytes make a reader panic (both readers
//! are fuzzed: see `fuzz/` at the workspace root).
//!
//! ```
//! use nn_data::{digits, Batcher, Granularity, Scaler};
//! // 1,797 images [8, 8, 1]; 70% / 15% / 15% with the classes' proportions kept.
//! let data = digits::load_as(digits::Layout::Flat, false);
//! let parts = data.split_stratified(&[0.7, 0.15, 0.15], 42)?;
//! let counts: Vec<usize> = parts.iter().map(|p| p.len()).collect();
//! assert_eq!(counts, [1258, 270, 269]);
//! // Standardize with statistics of the training part only.
//! let scaler = Scaler::fit_standard(&parts[0], Granularity::PerFeature)?;
//! let train = parts[0].clone().with_scaler(scaler.clone())?;
//! let val = parts[1].clone().with_scaler(scaler)?;
//! let batcher = Batcher::new(128)?.shuffled(7);
//! let batches: Vec<_> = batcher.batches(&train, 0).collect();
//! assert_eq!(batches.len(), 10); // ceil(1258 / 128), the last of 106
//! assert_eq!(batches[9].features.shape(), [106, 64]);
//! assert_eq!(val.features().shape(), [270, 64]);
//! # Ok::<(), nn_data::DataError>(())
//! ```

#![warn(missing_docs)]

pub mod adding;
pub mod augment;
pub mod batch;
pub mod csv;
mod dataset;
pub mod digits;
pub mod download;
mod error;
pub mod idx;
pub mod mnist;
pub mod scale;
pub mod schema;
pub mod split;

pub use augment::{Augment, AugmentParseError};
pub use batch::{Batch, Batcher, Batches};
pub use dataset::{one_hot, Dataset, Targets};
pub use error::{DataError, Result};
pub use scale::{Granularity, Scaler};
pub use schema::{
    is_missing, CellError, CellErrorKind, ColumnKind, FeatureColumn, FeatureSchema, Missing, TargetScaler, Task,
};
