//! The embedded default dataset: handwritten digits, 1,797 images of 8×8 pixels.
//!
//! Compiled into the crate, so examples and tests train without any file.
//!
//! # Source and licence
//! The test set of the *Optical Recognition of Handwritten Digits* data set
//! (E. Alpaydin and C. Kaynak, 1998), UCI Machine Learning Repository, licensed
//! under CC BY 4.0 (<https://creativecommons.org/licenses/by/4.0/>): the same 1,797
//! samples scikit-learn ships as `load_digits`. Each pixel counts the set pixels in
//! a 4×4 block of a 32×32 bitmap, so values lie in `0..=16`. See
//! `data/NOTICE.md` in this crate.
//!
//! # Storage
//! `data/digits.csv.gz`: gzip-compressed CSV without a header, 1,797 rows of 64
//! pixel values (row-major) and the label, embedded with `include_bytes!` and
//! decoded with flate2 at each call (about 1 ms).

use std::io::Read;

use flate2::read::GzDecoder;

use crate::dataset::{Dataset, Targets};

/// The embedded file `data/digits.csv.gz`, as compiled in.
pub const CSV_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// The number of samples.
pub const SAMPLES: usize = 1797;

/// How a digit sample is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// An image `[8, 8, 1]` (NHWC), for convolutional models.
    #[default]
    Image,
    /// A feature vector `[64]` (row-major pixels), for dense models.
    Flat,
}

/// The digits as images `[1797, 8, 8, 1]` with values `0..=16` (stored as bytes),
/// labels `0..=9`, class names `"0"`–`"9"`, named `digits`.
pub fn load() -> Dataset {
    load_as(Layout::Image, false)
}

/// The digits in `layout`, scaled to `[0, 1]` (divided by 16) when `unit_scale`.
pub fn load_as(layout: Layout, unit_scale: bool) -> Dataset {
    let mut text = String::new();
    GzDecoder::new(CSV_GZ).read_to_string(&mut text).expect("the embedded digits file is valid gzip text");
    let mut pixels = Vec::with_capacity(SAMPLES * 64);
    let mut labels = Vec::with_capacity(SAMPLES);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut values = line.split(',').map(|v| v.trim().parse::<u8>().expect("the embedded digits are integers"));
        pixels.extend(values.by_ref().take(64));
        labels.push(usize::from(values.next().expect("each embedded row ends with its label")));
    }
    assert_eq!(labels.len(), SAMPLES, "the embedded digits file holds {SAMPLES} rows");
    let targets = Targets::classes(labels, 10).expect("embedded labels are 0..=9");
    let names = (0..10).map(|d| d.to_string()).collect();
    let data = Dataset::from_bytes("digits", pixels, &[SAMPLES, 8, 8, 1], targets)
        .and_then(|d| d.with_class_names(names))
        .expect("the embedded digits have 64 pixels per row");
    let data = match layout {
        Layout::Image => data,
        Layout::Flat => data.flatten(),
    };
    if unit_scale {
        data.scale_by(1.0 / 16.0).expect("1/16 is finite")
    } else {
        data
    }
}
