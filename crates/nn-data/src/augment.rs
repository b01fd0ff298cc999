//! Random image augmentation of training batches: integer shifts and rotations
//! (Keras `RandomTranslation` / `RandomRotation`, PyTorch `RandomAffine`).
//!
//! An [`Augment`] is written `shift:PIXELS`, `rotate:DEGREES` or
//! `shift:PIXELS,rotate:DEGREES` (parsed by [`str::parse`], printed back by
//! [`Display`](std::fmt::Display)). [`Augment::apply`] transforms every image of a
//! batch `[batch, height, width, channels]` (NHWC) independently.
//!
//! # Draws
//! For each image, in batch order, the generator gives (Lemire's unbiased
//! multiply-and-reject method for the integers, 53-bit floats for the angle, so the
//! numbers do not change with the rand crate's version):
//! 1. when `shift > 0`: `dx`, then `dy`, each a uniform integer in `[−shift, shift]`;
//! 2. when `rotate > 0`: the angle `θ = rotate·(2u − 1)` degrees, `u` uniform in
//!    `[0, 1)`, so `θ` is uniform in `[−rotate, rotate)`.
//!
//! A disabled part draws nothing (its value is 0). The randomness comes only from
//! the generator passed in; [`batch_rng`] derives the one nn-train uses for batch
//! `step` of epoch `epoch` from `(seed, epoch, step)` alone.
//!
//! # Resampling
//! Rows are `i` (down), columns `j` (right), the centre is
//! `c = ((h − 1)/2, (w − 1)/2)`, and `R(φ)` rotates a vector `(i, j)` by `φ`:
//! `R(φ)·(a, b) = (a·cos φ − b·sin φ, a·sin φ + b·cos φ)`. Output pixel `(i, j)`
//! samples the source image at (inverse mapping)
//!
//! ```text
//! p(i, j) = R(−θ)·((i, j) − c) + c − (dy, dx)
//!   row:    c_i + cos θ·(i − c_i) + sin θ·(j − c_j) − dy
//!   column: c_j − sin θ·(i − c_i) + cos θ·(j − c_j) − dx
//! ```
//!
//! with bilinear interpolation between the four surrounding pixels, every channel
//! alike; a neighbour outside the source image counts as the background value 0 (so
//! pixels mapped from outside the image are 0). The output coordinates are rotated
//! first, then translated. Read forwards, the content moves by `dx` columns right
//! and `dy` rows down and is then turned by `θ` about the centre; a positive `θ`
//! turns it counter-clockwise as displayed (rows downwards): by 90°, the top-right
//! corner becomes the top-left one (`numpy.rot90`).
//!
//! With `θ = 0` (and always when `rotate` is 0) the shift is an exact integer copy:
//! output `(i, j)` is source `(i − dy, j − dx)`, or 0 outside, bit for bit.
//!
//! ```
//! use nn_data::{Augment, augment::batch_rng};
//! use nn_tensor::Tensor;
//! let aug: Augment = "shift:2,rotate:10".parse()?;
//! assert_eq!(aug, Augment { shift: 2, rotate: 10.0 });
//! assert_eq!(aug.to_string(), "shift:2,rotate:10");
//! let mut batch = Tensor::<f32>::ones(&[4, 8, 8, 1]);
//! aug.apply(&mut batch, &mut batch_rng(42, 0, 0))?;
//! assert_eq!(batch.shape(), [4, 8, 8, 1]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use nn_tensor::Tensor;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::{invalid, Result};

/// The largest `shift` accepted, in pixels.
pub const MAX_SHIFT: usize = u32::MAX as usize;

/// The syntax, for error messages.
const SYNTAX: &str = "expected shift:PIXELS, rotate:DEGREES or shift:PIXELS,rotate:DEGREES";

/// Random shifts and rotations of training images (see the [module docs](self)).
///
/// Both parts default to 0 (off); `Augment::default()` changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Augment {
    /// The largest shift in pixels: `dx` and `dy` are drawn uniformly from the
    /// integers in `[−shift, shift]`.
    pub shift: usize,
    /// The largest rotation in degrees, in `[0, 180)`: the angle is drawn uniformly
    /// from `[−rotate, rotate)`.
    pub rotate: f64,
}

/// The transform drawn for one image: a shift by whole pixels and a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Transform {
    /// Columns to the right (negative: to the left).
    pub dx: i64,
    /// Rows down (negative: up).
    pub dy: i64,
    /// The rotation angle θ in degrees (positive: counter-clockwise as displayed).
    pub degrees: f64,
}

/// Why an augmentation spec (`--augment`) could not be parsed. Every variant holds
/// the whole spec and names the offending part.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AugmentParseError {
    /// The spec is empty.
    #[error("`` is empty; {SYNTAX}")]
    Empty,
    /// An item between commas is empty (`shift:2,`).
    #[error("`{spec}`: empty item; {SYNTAX}")]
    EmptyItem {
        /// The whole spec.
        spec: String,
    },
    /// An item is not `KEY:VALUE`.
    #[error("`{spec}`: `{item}` is not KEY:VALUE; {SYNTAX}")]
    MissingValue {
        /// The whole spec.
        spec: String,
        /// The item without a colon or value.
        item: String,
    },
    /// A key other than `shift` or `rotate`.
    #[error("`{spec}`: unknown key `{key}`; {SYNTAX}")]
    UnknownKey {
        /// The whole spec.
        spec: String,
        /// The unknown key.
        key: String,
    },
    /// A key given twice.
    #[error("`{spec}`: `{key}` is given twice")]
    Duplicate {
        /// The whole spec.
        spec: String,
        /// The repeated key.
        key: String,
    },
    /// A value that is not a number (for `shift`: not a whole number of pixels).
    #[error("`{spec}`: {key} `{value}` is not {}", if *key == "shift" { "a whole number of pixels" } else { "a finite number of degrees" })]
    NotANumber {
        /// The whole spec.
        spec: String,
        /// `shift` or `rotate`.
        key: &'static str,
        /// The value as written.
        value: String,
    },
    /// A negative value.
    #[error("`{spec}`: {key} `{value}` is negative (the range is ±{key}; give its size)")]
    Negative {
        /// The whole spec.
        spec: String,
        /// `shift` or `rotate`.
        key: &'static str,
        /// The value as written.
        value: String,
    },
    /// A rotation of 180 degrees or more.
    #[error("`{spec}`: rotate `{value}` must be below 180 degrees")]
    RotateTooLarge {
        /// The whole spec.
        spec: String,
        /// The value as written.
        value: String,
    },
    /// A shift above [`MAX_SHIFT`].
    #[error("`{spec}`: shift `{value}` is too large (at most {MAX_SHIFT} pixels)")]
    ShiftTooLarge {
        /// The whole spec.
        spec: String,
        /// The value as written.
        value: String,
    },
}

impl FromStr for Augment {
    type Err = AugmentParseError;

    /// Parses `shift:PIXELS`, `rotate:DEGREES` or `shift:PIXELS,rotate:DEGREES`
    /// (either order; spaces around items, keys and values are ignored).
    fn from_str(text: &str) -> std::result::Result<Augment, AugmentParseError> {
        let spec = text.trim();
        if spec.is_empty() {
            return Err(AugmentParseError::Empty);
        }
        let owned = || spec.to_string();
        let mut shift: Option<usize> = None;
        let mut rotate: Option<f64> = None;
        for item in spec.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(AugmentParseError::EmptyItem { spec: owned() });
            }
            let Some((key, value)) = item.split_once(':').map(|(k, v)| (k.trim(), v.trim())) else {
                return Err(AugmentParseError::MissingValue { spec: owned(), item: item.to_string() });
            };
            if value.is_empty() {
                return Err(AugmentParseError::MissingValue { spec: owned(), item: item.to_string() });
            }
            let negative = value.starts_with('-');
            match key {
                "shift" => {
                    if shift.is_some() {
                        return Err(AugmentParseError::Duplicate { spec: owned(), key: key.to_string() });
                    }
                    let digits = value.strip_prefix('-').unwrap_or(value);
                    let px = match digits.parse::<u64>() {
                        Ok(px) => px,
                        // All digits but beyond u64: a whole number, too large.
                        Err(_) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && !negative => {
                            return Err(AugmentParseError::ShiftTooLarge { spec: owned(), value: value.into() });
                        }
                        Err(_) => {
                            return Err(AugmentParseError::NotANumber {
                                spec: owned(),
                                key: "shift",
                                value: value.into(),
                            })
                        }
                    };
                    if negative {
                        return Err(AugmentParseError::Negative { spec: owned(), key: "shift", value: value.into() });
                    }
                    if px > MAX_SHIFT as u64 {
                        return Err(AugmentParseError::ShiftTooLarge { spec: owned(), value: value.into() });
                    }
                    shift = Some(px as usize);
                }
                "rotate" => {
                    if rotate.is_some() {
                        return Err(AugmentParseError::Duplicate { spec: owned(), key: key.to_string() });
                    }
                    let Some(deg) = value.parse::<f64>().ok().filter(|d| d.is_finite()) else {
                        return Err(AugmentParseError::NotANumber {
                            spec: owned(),
                            key: "rotate",
                            value: value.into(),
                        });
                    };
                    if negative {
                        return Err(AugmentParseError::Negative { spec: owned(), key: "rotate", value: value.into() });
                    }
                    if deg >= 180.0 {
                        return Err(AugmentParseError::RotateTooLarge { spec: owned(), value: value.into() });
                    }
                    rotate = Some(deg);
                }
                _ => return Err(AugmentParseError::UnknownKey { spec: owned(), key: key.to_string() }),
            }
        }
        Ok(Augment { shift: shift.unwrap_or(0), rotate: rotate.unwrap_or(0.0) })
    }
}

impl fmt::Display for Augment {
    /// The spec that parses back to `self`: `shift:2,rotate:10`, `shift:2`,
    /// `rotate:15`, or `shift:0` when both parts are off.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.shift, self.rotate) {
            (s, r) if r != 0.0 && s > 0 => write!(f, "shift:{s},rotate:{r}"),
            (_, r) if r != 0.0 => write!(f, "rotate:{r}"),
            (s, _) => write!(f, "shift:{s}"),
        }
    }
}

/// A uniform integer in `0..bound` (`bound > 0`), unbiased (D. Lemire, "Fast Random
/// Integer Generation in an Interval", ACM TOMACS 2019).
fn below<R: RngCore + ?Sized>(rng: &mut R, bound: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(bound);
    if (m as u64) < bound {
        let threshold = bound.wrapping_neg() % bound;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(bound);
        }
    }
    (m >> 64) as u64
}

/// A uniform float in `[0, 1)` from the top 53 bits of one draw.
fn unit<R: RngCore + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

impl Augment {
    /// Whether this changes nothing (shift 0 and rotate 0).
    pub fn is_identity(&self) -> bool {
        self.shift == 0 && self.rotate == 0.0
    }

    /// Checks the ranges the parser enforces, for a value built in code or
    /// deserialized: `shift <= MAX_SHIFT`, `rotate` finite and in `[0, 180)`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`](crate::DataError::InvalidArgument) naming the value.
    pub fn validate(&self) -> Result<()> {
        if self.shift > MAX_SHIFT {
            return Err(invalid("Augment", format!("shift {} is too large (at most {MAX_SHIFT} pixels)", self.shift)));
        }
        if !(self.rotate.is_finite() && (0.0..180.0).contains(&self.rotate)) {
            return Err(invalid("Augment", format!("rotate {} must be in [0, 180) degrees", self.rotate)));
        }
        Ok(())
    }

    /// Draws one image's transform from `rng` (see [Draws](self#draws)).
    pub fn draw<R: RngCore + ?Sized>(&self, rng: &mut R) -> Transform {
        let mut t = Transform::default();
        if self.shift > 0 {
            let s = self.shift as u64;
            t.dx = below(rng, 2 * s + 1) as i64 - s as i64;
            t.dy = below(rng, 2 * s + 1) as i64 - s as i64;
        }
        if self.rotate > 0.0 {
            t.degrees = self.rotate * (2.0 * unit(rng) - 1.0);
        }
        t
    }

    /// Shifts and rotates every image of `batch` `[batch, height, width, channels]`
    /// in place, each with its own transform drawn from `rng` in batch order (see
    /// the [module docs](self)). A non-contiguous batch is made contiguous first.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`](crate::DataError::InvalidArgument) for a batch
    /// that is not 4-d, or for an out-of-range `self` ([`Augment::validate`]).
    pub fn apply<R: RngCore + ?Sized>(&self, batch: &mut Tensor<f32>, rng: &mut R) -> Result<()> {
        self.validate()?;
        let &[n, h, w, c] = batch.shape() else {
            return Err(invalid(
                "Augment::apply",
                format!(
                    "augmentation needs a batch of images [batch, height, width, channels], got shape {:?}",
                    batch.shape()
                ),
            ));
        };
        let len = h * w * c;
        if n == 0 || len == 0 || self.is_identity() {
            return Ok(());
        }
        if batch.as_slice_mut().is_none() {
            *batch = batch.to_contiguous();
        }
        let data = batch.as_slice_mut().expect("a contiguous tensor has a slice");
        let mut scratch = vec![0.0f32; len];
        for image in data.chunks_exact_mut(len) {
            let t = self.draw(rng);
            if t.is_identity() {
                continue;
            }
            t.resample_into(image, &mut scratch, h, w, c);
            image.copy_from_slice(&scratch);
        }
        Ok(())
    }
}

impl Transform {
    /// Whether this changes nothing (no shift, angle 0).
    pub fn is_identity(&self) -> bool {
        self.dx == 0 && self.dy == 0 && self.degrees == 0.0
    }

    /// Resamples one image `image` `[height, width, channels]` (row-major) into `out`
    /// of the same length (see [Resampling](self#resampling)).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`](crate::DataError::InvalidArgument) when a
    /// slice's length is not `height·width·channels`, or the angle is not finite.
    pub fn resample(&self, image: &[f32], out: &mut [f32], height: usize, width: usize, channels: usize) -> Result<()> {
        let len = height.checked_mul(width).and_then(|hw| hw.checked_mul(channels));
        if len != Some(image.len()) || image.len() != out.len() {
            return Err(invalid(
                "Transform::resample",
                format!(
                    "an image [{height}, {width}, {channels}] needs {} values, got {} in and {} out",
                    len.map_or("too many".to_string(), |l| l.to_string()),
                    image.len(),
                    out.len()
                ),
            ));
        }
        if !self.degrees.is_finite() {
            return Err(invalid("Transform::resample", format!("angle {} is not finite", self.degrees)));
        }
        self.resample_into(image, out, height, width, channels);
        Ok(())
    }

    /// [`Transform::resample`] on a tensor `[height, width, channels]`, returning the
    /// transformed image.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`](crate::DataError::InvalidArgument) for a tensor
    /// that is not 3-d or an angle that is not finite.
    pub fn apply_to(&self, image: &Tensor<f32>) -> Result<Tensor<f32>> {
        let &[h, w, c] = image.shape() else {
            return Err(invalid(
                "Transform::apply_to",
                format!("expected an image [height, width, channels], got shape {:?}", image.shape()),
            ));
        };
        let src = image.to_vec();
        let mut out = vec![0.0f32; src.len()];
        self.resample(&src, &mut out, h, w, c)?;
        Ok(Tensor::from_vec(&[h, w, c], out))
    }

    /// The resampling itself; lengths already checked.
    fn resample_into(&self, image: &[f32], out: &mut [f32], h: usize, w: usize, c: usize) {
        let (hi, wi) = (h as i64, w as i64);
        if self.degrees == 0.0 {
            // An exact integer copy: output (i, j) = source (i − dy, j − dx).
            for i in 0..h {
                let row = &mut out[i * w * c..(i + 1) * w * c];
                let si = i as i64 - self.dy;
                if !(0..hi).contains(&si) {
                    row.fill(0.0);
                    continue;
                }
                let src_row = &image[si as usize * w * c..(si as usize + 1) * w * c];
                for j in 0..w {
                    let sj = j as i64 - self.dx;
                    let px = &mut row[j * c..(j + 1) * c];
                    if (0..wi).contains(&sj) {
                        px.copy_from_slice(&src_row[sj as usize * c..(sj as usize + 1) * c]);
                    } else {
                        px.fill(0.0);
                    }
                }
            }
            return;
        }
        let (sin, cos) = self.degrees.to_radians().sin_cos();
        let (ci, cj) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
        let mut acc = vec![0.0f64; c];
        for i in 0..h {
            let a = i as f64 - ci;
            for j in 0..w {
                let b = j as f64 - cj;
                let y = ci + cos * a + sin * b - self.dy as f64;
                let x = cj - sin * a + cos * b - self.dx as f64;
                let (y0, x0) = (y.floor(), x.floor());
                let (fy, fx) = (y - y0, x - x0);
                let (y0, x0) = (y0 as i64, x0 as i64);
                acc.fill(0.0);
                // Zero weights are skipped, so a sample on the grid copies its pixel exactly.
                for (yy, wy) in [(y0, 1.0 - fy), (y0.saturating_add(1), fy)] {
                    if wy == 0.0 || !(0..hi).contains(&yy) {
                        continue;
                    }
                    for (xx, wx) in [(x0, 1.0 - fx), (x0.saturating_add(1), fx)] {
                        if wx == 0.0 || !(0..wi).contains(&xx) {
                            continue;
                        }
                        let weight = wy * wx;
                        let at = (yy as usize * w + xx as usize) * c;
                        for (s, &v) in acc.iter_mut().zip(&image[at..at + c]) {
                            *s += weight * f64::from(v);
                        }
                    }
                }
                let at = (i * w + j) * c;
                for (o, &s) in out[at..at + c].iter_mut().zip(&acc) {
                    *o = s as f32;
                }
            }
        }
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit value from `z`.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Separates the augmentation generators from every other generator of a run.
const AUGMENT_DOMAIN: u64 = 0x6175_676D_656E_7421; // "augment!"

/// The generator of the augmentation of batch `step` (0-based) of epoch `epoch`
/// (0-based) in a run seeded `seed`: ChaCha8 keyed by a SplitMix64 mix of `seed`
/// (under a constant of its own) and `epoch`, on stream `step`. It depends on
/// `(seed, epoch, step)` only, so a run resumed at an epoch boundary draws what an
/// uninterrupted one draws, and it is a different stream from the run's shuffle
/// (ChaCha8 keyed by `seed` itself) and dropout generators.
pub fn batch_rng(seed: u64, epoch: u64, step: u64) -> ChaCha8Rng {
    let key = mix(mix(seed ^ AUGMENT_DOMAIN) ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    rng.set_stream(step);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> std::result::Result<Augment, AugmentParseError> {
        s.parse()
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse("shift:2").unwrap(), Augment { shift: 2, rotate: 0.0 });
        assert_eq!(parse("shift:2,rotate:10").unwrap(), Augment { shift: 2, rotate: 10.0 });
        assert_eq!(parse("rotate:15").unwrap(), Augment { shift: 0, rotate: 15.0 });
        assert_eq!(parse("rotate:12.5,shift:3").unwrap(), Augment { shift: 3, rotate: 12.5 });
        assert_eq!(parse(" shift : 1 , rotate: 0.5 ").unwrap(), Augment { shift: 1, rotate: 0.5 });
        assert_eq!(parse("shift:0").unwrap(), Augment::default());
        assert_eq!(parse("rotate:179.9").unwrap().rotate, 179.9);
    }

    #[test]
    fn rejects_bad_specs_with_the_offending_text() {
        use AugmentParseError as E;
        let spec = |s: &str| s.to_string();
        assert_eq!(parse(""), Err(E::Empty));
        assert_eq!(parse("  "), Err(E::Empty));
        assert!(E::Empty.to_string().starts_with("`` is empty; expected shift:PIXELS"));
        assert_eq!(parse("shift:2,"), Err(E::EmptyItem { spec: spec("shift:2,") }));
        assert_eq!(parse("shift"), Err(E::MissingValue { spec: spec("shift"), item: spec("shift") }));
        assert_eq!(parse("shift:"), Err(E::MissingValue { spec: spec("shift:"), item: spec("shift:") }));
        assert_eq!(parse("zoom:2"), Err(E::UnknownKey { spec: spec("zoom:2"), key: spec("zoom") }));
        assert_eq!(parse("shift:1,shift:2"), Err(E::Duplicate { spec: spec("shift:1,shift:2"), key: spec("shift") }));
        assert_eq!(
            parse("rotate:1,rotate:2"),
            Err(E::Duplicate { spec: spec("rotate:1,rotate:2"), key: spec("rotate") })
        );
        assert_eq!(parse("shift:x"), Err(E::NotANumber { spec: spec("shift:x"), key: "shift", value: spec("x") }));
        assert_eq!(
            parse("shift:1.5"),
            Err(E::NotANumber { spec: spec("shift:1.5"), key: "shift", value: spec("1.5") })
        );
        assert_eq!(
            parse("rotate:ten"),
            Err(E::NotANumber { spec: spec("rotate:ten"), key: "rotate", value: spec("ten") })
        );
        assert_eq!(
            parse("rotate:NaN"),
            Err(E::NotANumber { spec: spec("rotate:NaN"), key: "rotate", value: spec("NaN") })
        );
        assert_eq!(
            parse("rotate:inf"),
            Err(E::NotANumber { spec: spec("rotate:inf"), key: "rotate", value: spec("inf") })
        );
        assert_eq!(parse("shift:-2"), Err(E::Negative { spec: spec("shift:-2"), key: "shift", value: spec("-2") }));
        assert_eq!(parse("shift:-0"), Err(E::Negative { spec: spec("shift:-0"), key: "shift", value: spec("-0") }));
        assert_eq!(
            parse("rotate:-10"),
            Err(E::Negative { spec: spec("rotate:-10"), key: "rotate", value: spec("-10") })
        );
        assert_eq!(parse("rotate:180"), Err(E::RotateTooLarge { spec: spec("rotate:180"), value: spec("180") }));
        assert_eq!(parse("rotate:500"), Err(E::RotateTooLarge { spec: spec("rotate:500"), value: spec("500") }));
        assert_eq!(
            parse("shift:99999999999"),
            Err(E::ShiftTooLarge { spec: spec("shift:99999999999"), value: spec("99999999999") })
        );
        // The message names the spec and the value.
        let msg = parse("shift:2,rotate:abc").unwrap_err().to_string();
        assert_eq!(msg, "`shift:2,rotate:abc`: rotate `abc` is not a finite number of degrees");
        let msg = parse("zoom:2").unwrap_err().to_string();
        assert!(msg.contains("unknown key `zoom`") && msg.contains("shift:PIXELS"), "{msg}");
    }

    #[test]
    fn display_round_trips() {
        for text in ["shift:2", "shift:2,rotate:10", "rotate:15", "rotate:0.25", "shift:0", "shift:7,rotate:179.5"] {
            let a = parse(text).unwrap();
            assert_eq!(a.to_string(), text);
            assert_eq!(parse(&a.to_string()).unwrap(), a);
        }
        assert_eq!(parse("rotate:10,shift:2").unwrap().to_string(), "shift:2,rotate:10");
        assert_eq!(Augment { shift: 3, rotate: 1.0 / 3.0 }.to_string().parse::<Augment>().unwrap().rotate, 1.0 / 3.0);
    }

    #[test]
    fn serde_round_trip_and_defaults() {
        let a = Augment { shift: 2, rotate: 10.0 };
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"shift":2,"rotate":10.0}"#);
        assert_eq!(serde_json::from_str::<Augment>(&json).unwrap(), a);
        assert_eq!(serde_json::from_str::<Augment>(r#"{"shift":1}"#).unwrap(), Augment { shift: 1, rotate: 0.0 });
        assert!(serde_json::from_str::<Augment>(r#"{"zoom":1}"#).is_err());
    }

    /// A hand-written 4×4 image with values 1..=16, row-major.
    fn image4() -> Vec<f32> {
        (1..=16).map(|v| v as f32).collect()
    }

    #[test]
    fn a_shift_is_an_exact_integer_translation() {
        let src = image4();
        let mut out = vec![f32::NAN; 16];
        // One column right, two rows down.
        Transform { dx: 1, dy: 2, degrees: 0.0 }.resample(&src, &mut out, 4, 4, 1).unwrap();
        #[rustfmt::skip]
        let expected = [
            0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
            0.0, 1.0, 2.0, 3.0,
            0.0, 5.0, 6.0, 7.0,
        ];
        assert_eq!(out, expected);
        // One column left, one row up.
        Transform { dx: -1, dy: -1, degrees: 0.0 }.resample(&src, &mut out, 4, 4, 1).unwrap();
        #[rustfmt::skip]
        let expected = [
            6.0, 7.0, 8.0, 0.0,
            10.0, 11.0, 12.0, 0.0,
            14.0, 15.0, 16.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(out, expected);
        // Bit-exact for arbitrary values, and per channel.
        let src2: Vec<f32> = (0..32).map(|v| (v as f32 * 0.1).sin() / 3.0).collect();
        let mut out2 = vec![0.0; 32];
        Transform { dx: 1, dy: 0, degrees: 0.0 }.resample(&src2, &mut out2, 4, 4, 2).unwrap();
        for i in 0..4 {
            assert_eq!(&out2[i * 8..i * 8 + 2], &[0.0, 0.0]);
            for j in 1..4 {
                for ch in 0..2 {
                    assert_eq!(out2[(i * 4 + j) * 2 + ch].to_bits(), src2[(i * 4 + j - 1) * 2 + ch].to_bits());
                }
            }
        }
        // Shifted fully out: all background.
        Transform { dx: 4, dy: 0, degrees: 0.0 }.resample(&src, &mut out, 4, 4, 1).unwrap();
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn shift_only_augmentation_matches_its_drawn_translation() {
        let aug = Augment { shift: 2, rotate: 0.0 };
        let mut rng = batch_rng(5, 0, 0);
        let t = aug.draw(&mut rng.clone());
        assert!(t.dx.abs() <= 2 && t.dy.abs() <= 2 && t.degrees == 0.0);
        let mut batch = Tensor::from_vec(&[1, 4, 4, 1], image4());
        aug.apply(&mut batch, &mut rng).unwrap();
        let src = image4();
        let expected: Vec<f32> = (0..16)
            .map(|k| {
                let (si, sj) = ((k / 4) as i64 - t.dy, (k % 4) as i64 - t.dx);
                if (0..4).contains(&si) && (0..4).contains(&sj) {
                    src[(si * 4 + sj) as usize]
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(batch.to_vec(), expected);
    }

    #[test]
    fn rotation_by_90_degrees_is_transpose_then_flip() {
        for n in [4usize, 5] {
            let src: Vec<f32> = (0..n * n).map(|v| v as f32 + 1.0).collect();
            let mut out = vec![0.0; n * n];
            Transform { dx: 0, dy: 0, degrees: 90.0 }.resample(&src, &mut out, n, n, 1).unwrap();
            for i in 0..n {
                for j in 0..n {
                    // numpy.rot90: the transpose, rows reversed.
                    let expected = src[j * n + (n - 1 - i)];
                    assert!(
                        (out[i * n + j] - expected).abs() < 1e-5,
                        "n {n} ({i}, {j}): {} vs {expected}",
                        out[i * n + j]
                    );
                }
            }
            // −90°: the transpose, columns reversed.
            Transform { dx: 0, dy: 0, degrees: -90.0 }.resample(&src, &mut out, n, n, 1).unwrap();
            for i in 0..n {
                for j in 0..n {
                    let expected = src[(n - 1 - j) * n + i];
                    assert!((out[i * n + j] - expected).abs() < 1e-5);
                }
            }
        }
        // The 4×4 case written out: the top-right corner 4 goes to the top left.
        let mut out = vec![0.0; 16];
        Transform { dx: 0, dy: 0, degrees: 90.0 }.resample(&image4(), &mut out, 4, 4, 1).unwrap();
        #[rustfmt::skip]
        let expected = [
            4.0, 8.0, 12.0, 16.0,
            3.0, 7.0, 11.0, 15.0,
            2.0, 6.0, 10.0, 14.0,
            1.0, 5.0, 9.0, 13.0,
        ];
        for (o, e) in out.iter().zip(expected) {
            assert!((o - e).abs() < 1e-5, "{out:?}");
        }
    }

    #[test]
    fn rotation_keeps_the_centre_pixel() {
        let n = 7;
        let src: Vec<f32> = (0..n * n).map(|v| ((v * 37) % 11) as f32 / 10.0).collect();
        let centre = (n / 2) * n + n / 2;
        for deg in [10.0, 33.3, 90.0, 135.0] {
            let mut once = vec![0.0; n * n];
            let mut back = vec![0.0; n * n];
            Transform { dx: 0, dy: 0, degrees: deg }.resample(&src, &mut once, n, n, 1).unwrap();
            Transform { dx: 0, dy: 0, degrees: -deg }.resample(&once, &mut back, n, n, 1).unwrap();
            assert!((once[centre] - src[centre]).abs() < 1e-6, "{deg}");
            assert!((back[centre] - src[centre]).abs() < 1e-6, "{deg}");
        }
        // A small rotation of a constant image changes only the border.
        let ones = vec![1.0f32; n * n];
        let mut out = vec![0.0; n * n];
        Transform { dx: 0, dy: 0, degrees: 5.0 }.resample(&ones, &mut out, n, n, 1).unwrap();
        for i in 1..n - 1 {
            for j in 1..n - 1 {
                assert!((out[i * n + j] - 1.0).abs() < 1e-6);
            }
        }
        assert!(out[0] < 1.0, "a corner maps from outside the image");
    }

    #[test]
    fn rotation_then_translation_follows_the_formula() {
        // 30° and a shift, on a 5×6 image with 2 channels: compare with the formula
        // evaluated here, bilinear weights written out.
        let (h, w, c) = (5usize, 6usize, 2usize);
        let src: Vec<f32> = (0..h * w * c).map(|v| (v as f32 * 0.37).cos()).collect();
        let t = Transform { dx: 1, dy: -1, degrees: 30.0 };
        let mut out = vec![0.0; h * w * c];
        t.resample(&src, &mut out, h, w, c).unwrap();
        let (s, co) = 30f64.to_radians().sin_cos();
        let (ci, cj) = (2.0, 2.5);
        let at = |y: i64, x: i64, ch: usize| -> f64 {
            if (0..h as i64).contains(&y) && (0..w as i64).contains(&x) {
                src[(y as usize * w + x as usize) * c + ch] as f64
            } else {
                0.0
            }
        };
        for i in 0..h {
            for j in 0..w {
                let (a, b) = (i as f64 - ci, j as f64 - cj);
                let y = ci + co * a + s * b + 1.0;
                let x = cj - s * a + co * b - 1.0;
                let (y0, x0) = (y.floor(), x.floor());
                let (fy, fx) = (y - y0, x - x0);
                let (y0, x0) = (y0 as i64, x0 as i64);
                for ch in 0..c {
                    let v = (1.0 - fy) * (1.0 - fx) * at(y0, x0, ch)
                        + (1.0 - fy) * fx * at(y0, x0 + 1, ch)
                        + fy * (1.0 - fx) * at(y0 + 1, x0, ch)
                        + fy * fx * at(y0 + 1, x0 + 1, ch);
                    assert!((out[(i * w + j) * c + ch] as f64 - v).abs() < 1e-6);
                }
            }
        }
    }

    #[test]
    fn draws_stay_in_range_and_cover_it() {
        let aug = Augment { shift: 2, rotate: 15.0 };
        let mut rng = batch_rng(1, 2, 3);
        let mut seen = std::collections::HashSet::new();
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for _ in 0..2000 {
            let t = aug.draw(&mut rng);
            assert!((-2..=2).contains(&t.dx) && (-2..=2).contains(&t.dy));
            assert!((-15.0..15.0).contains(&t.degrees));
            seen.insert((t.dx, t.dy));
            lo = lo.min(t.degrees);
            hi = hi.max(t.degrees);
        }
        assert_eq!(seen.len(), 25);
        assert!(lo < -14.0 && hi > 14.0, "{lo} {hi}");
        // Disabled parts draw nothing.
        assert_eq!(Augment { shift: 0, rotate: 10.0 }.draw(&mut rng).dx, 0);
        assert_eq!(Augment { shift: 1, rotate: 0.0 }.draw(&mut rng).degrees, 0.0);
    }

    #[test]
    fn same_seed_same_batch_other_step_other_batch() {
        let aug = Augment { shift: 2, rotate: 10.0 };
        let base: Vec<f32> = (0..8 * 6 * 6).map(|v| (v % 13) as f32 / 13.0).collect();
        let run = |seed, epoch, step| {
            let mut b = Tensor::from_vec(&[8, 6, 6, 1], base.clone());
            aug.apply(&mut b, &mut batch_rng(seed, epoch, step)).unwrap();
            b.to_vec()
        };
        let a = run(42, 3, 5);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&run(42, 3, 5)));
        assert_ne!(a, base);
        assert_ne!(a, run(42, 3, 6));
        assert_ne!(a, run(42, 4, 5));
        assert_ne!(a, run(43, 3, 5));
        // Each image gets its own transform: identical inputs come out different.
        let mut same = Tensor::from_vec(&[2, 6, 6, 1], [&base[..36], &base[..36]].concat());
        aug.apply(&mut same, &mut batch_rng(42, 0, 0)).unwrap();
        let v = same.to_vec();
        assert_ne!(v[..36], v[36..]);
    }

    #[test]
    fn the_generator_differs_from_the_shuffle_stream() {
        let mut aug = batch_rng(7, 0, 0);
        let mut shuffle = crate::batch::stream_rng(7, 0);
        let mut plain = ChaCha8Rng::seed_from_u64(7);
        let a = aug.next_u64();
        assert_ne!(a, shuffle.next_u64());
        assert_ne!(a, plain.next_u64());
    }

    #[test]
    fn errors_for_non_images_and_bad_values() {
        let aug = Augment { shift: 1, rotate: 0.0 };
        let mut rng = batch_rng(0, 0, 0);
        let mut flat = Tensor::<f32>::zeros(&[4, 64]);
        let e = aug.apply(&mut flat, &mut rng).unwrap_err();
        assert!(matches!(e, crate::DataError::InvalidArgument { .. }));
        assert!(e.to_string().contains("[4, 64]"), "{e}");
        let mut three = Tensor::<f32>::zeros(&[2, 8, 8]);
        assert!(aug.apply(&mut three, &mut rng).is_err());
        let mut ok = Tensor::<f32>::zeros(&[2, 8, 8, 1]);
        for bad in [
            Augment { shift: 0, rotate: 180.0 },
            Augment { shift: 0, rotate: f64::NAN },
            Augment { shift: 0, rotate: -1.0 },
        ] {
            assert!(bad.apply(&mut ok, &mut rng).is_err(), "{bad:?}");
        }
        let t = Transform { dx: 0, dy: 0, degrees: 1.0 };
        assert!(t.resample(&[0.0; 15], &mut [0.0; 16], 4, 4, 1).is_err());
        assert!(t.apply_to(&Tensor::zeros(&[4, 4])).is_err());
        assert_eq!(t.apply_to(&Tensor::zeros(&[4, 4, 1])).unwrap(), Tensor::zeros(&[4, 4, 1]));
    }

    #[test]
    fn non_contiguous_batches_are_handled() {
        let aug = Augment { shift: 1, rotate: 20.0 };
        let base: Vec<f32> = (0..3 * 5 * 5 * 2).map(|v| v as f32).collect();
        let contiguous = Tensor::from_vec(&[3, 5, 5, 2], base.clone());
        // The same logical tensor with permuted strides.
        let permuted =
            Tensor::from_vec(&[3, 2, 5, 5], contiguous.permute(&[0, 3, 1, 2]).to_vec()).permute(&[0, 2, 3, 1]);
        assert_eq!(permuted.to_vec(), base);
        let (mut a, mut b) = (contiguous, permuted);
        aug.apply(&mut a, &mut batch_rng(1, 1, 1)).unwrap();
        aug.apply(&mut b, &mut batch_rng(1, 1, 1)).unwrap();
        assert_eq!(a.to_vec(), b.to_vec());
    }
}
