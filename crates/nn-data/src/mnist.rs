//! MNIST and Fashion-MNIST from a directory holding the four standard IDX files.
//!
//! | set | images | labels |
//! | --- | --- | --- |
//! | training | `train-images-idx3-ubyte` | `train-labels-idx1-ubyte` |
//! | test | `t10k-images-idx3-ubyte` | `t10k-labels-idx1-ubyte` |
//!
//! Each name is also accepted with a `.` before `idx` (`train-images.idx3-ubyte`, as
//! some mirrors spell it) and with a `.gz` suffix; the first that exists is read,
//! in the order hyphen, hyphen `.gz`, dot, dot `.gz`. Compression is detected from
//! the bytes ([`crate::idx`]).
//!
//! Images come as bytes `0..=255`, samples `[28, 28, 1]` (NHWC, as Keras), and stay
//! bytes in memory until a batch needs them; `scale_by(1.0 / 255.0)` maps them to
//! `[0, 1]` as in the Keras examples:
//!
//! ```no_run
//! let mnist = nn_data::mnist::load_mnist("data/mnist")?;
//! let train = mnist.train.scale_by(1.0 / 255.0)?;
//! assert_eq!(train.sample_shape(), [28, 28, 1]);
//! # Ok::<(), nn_data::DataError>(())
//! ```
//!
//! MNIST: Y. LeCun, C. Cortes, C. J. C. Burges. Fashion-MNIST: H. Xiao, K. Rasul,
//! R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
//! Learning Algorithms", arXiv:1708.07747 (2017).

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, Targets};
use crate::error::{DataError, Result};
use crate::idx::{read_idx, IdxData};

/// MNIST's class names: the digits `"0"` to `"9"`.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Fashion-MNIST's class names, index `i` naming label `i` (Xiao et al. 2017).
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// A training set and a test set.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainTest {
    /// The training set (MNIST: 60,000 samples).
    pub train: Dataset,
    /// The test set (MNIST: 10,000 samples).
    pub test: Dataset,
}

/// Loads MNIST from `dir`: 60,000 training and 10,000 test images `[28, 28, 1]`
/// (bytes), labels `0..=9`, class names `"0"`–`"9"`; named `mnist-train` and
/// `mnist-test`.
///
/// # Errors
/// [`DataError::MissingFile`] when a file is absent under every accepted name;
/// any error of [`load_idx_pair`].
pub fn load_mnist(dir: impl AsRef<Path>) -> Result<TrainTest> {
    load_pair_dir(dir.as_ref(), "mnist", &MNIST_CLASSES)
}

/// Loads Fashion-MNIST from `dir` (the same file names and format as MNIST), with
/// its class names ([`FASHION_MNIST_CLASSES`]); named `fashion-mnist-train` and
/// `fashion-mnist-test`.
///
/// # Errors
/// As [`load_mnist`].
pub fn load_fashion_mnist(dir: impl AsRef<Path>) -> Result<TrainTest> {
    load_pair_dir(dir.as_ref(), "fashion-mnist", &FASHION_MNIST_CLASSES)
}

fn load_pair_dir(dir: &Path, name: &str, classes: &[&str]) -> Result<TrainTest> {
    let classes: Vec<String> = classes.iter().map(|s| s.to_string()).collect();
    let train = load_idx_pair(
        find_idx_file(dir, "train-images", 3)?,
        find_idx_file(dir, "train-labels", 1)?,
        format!("{name}-train"),
        classes.clone(),
    )?;
    let test = load_idx_pair(
        find_idx_file(dir, "t10k-images", 3)?,
        find_idx_file(dir, "t10k-labels", 1)?,
        format!("{name}-test"),
        classes,
    )?;
    Ok(TrainTest { train, test })
}

/// The path of `{stem}-idx{rank}-ubyte` in `dir` under the first accepted spelling
/// that exists (see the [module docs](self)).
///
/// # Errors
/// [`DataError::MissingFile`] listing every name tried.
pub fn find_idx_file(dir: impl AsRef<Path>, stem: &str, rank: u8) -> Result<PathBuf> {
    let dir = dir.as_ref();
    let tried: Vec<String> = [
        format!("{stem}-idx{rank}-ubyte"),
        format!("{stem}-idx{rank}-ubyte.gz"),
        format!("{stem}.idx{rank}-ubyte"),
        format!("{stem}.idx{rank}-ubyte.gz"),
    ]
    .into();
    tried
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::MissingFile { dir: dir.into(), tried })
}

/// Loads an image file and its label file (IDX, raw or gzip) into a dataset of
/// byte features: images `[N, H, W]` become samples `[H, W, 1]`, images
/// `[N, H, W, C]` samples `[H, W, C]`; labels `[N]` are class indices below
/// `class_names.len()`.
///
/// # Errors
/// Any error of [`read_idx`]; [`DataError::Format`] when the images are not u8 of
/// rank 3 or 4, the labels not u8 of rank 1, or a label is not below the number of
/// classes (naming the sample); [`DataError::Mismatch`] when the two files hold
/// different numbers of samples.
pub fn load_idx_pair(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    name: impl Into<String>,
    class_names: Vec<String>,
) -> Result<Dataset> {
    let (images, labels) = (images.as_ref(), labels.as_ref());
    let image_array = read_idx(images)?;
    let label_array = read_idx(labels)?;
    let format = |path: &Path, message: String| DataError::Format { path: path.into(), message };

    let (dims, image_data) = image_array.into_parts();
    let IdxData::U8(pixels) = image_data else {
        return Err(format(images, format!("images must be u8, found {}", image_data.dtype())));
    };
    let shape: Vec<usize> = match *dims.as_slice() {
        [n, h, w] => vec![n, h, w, 1],
        [n, h, w, c] => vec![n, h, w, c],
        _ => {
            return Err(format(images, format!("images must be [N, H, W] or [N, H, W, C], found dimensions {dims:?}")))
        }
    };
    let (label_dims, label_data) = label_array.into_parts();
    let IdxData::U8(label_bytes) = label_data else {
        return Err(format(labels, format!("labels must be u8, found {}", label_data.dtype())));
    };
    if label_dims.len() != 1 {
        return Err(format(labels, format!("labels must be [N], found dimensions {label_dims:?}")));
    }
    if label_bytes.len() != shape[0] {
        return Err(DataError::Mismatch {
            path: images.into(),
            other: labels.into(),
            message: format!("{} images but {} labels", shape[0], label_bytes.len()),
        });
    }
    let k = class_names.len();
    if let Some((i, &bad)) = label_bytes.iter().enumerate().find(|(_, &l)| usize::from(l) >= k) {
        return Err(format(labels, format!("label {bad} of sample {i} is not below {k} classes")));
    }
    let targets = Targets::classes(label_bytes.into_iter().map(usize::from).collect(), k)?;
    Dataset::from_bytes(name, pixels, &shape, targets)?.with_class_names(class_names)
}
