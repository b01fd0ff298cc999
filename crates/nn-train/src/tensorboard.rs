//! TensorBoard event files: a writer of TensorFlow's record format and `Event`
//! protocol buffers, and a [`TensorBoard`] callback that logs every epoch (Keras's
//! `keras.callbacks.TensorBoard`).
//!
//! ## The format
//!
//! An event file is a sequence of records, each framed as in TensorFlow's
//! `tensorflow/core/lib/io/record_writer.cc`:
//!
//! ```text
//! u64 length (little-endian) | u32 masked_crc32c(length bytes) | data | u32 masked_crc32c(data)
//! ```
//!
//! with the CRC-32C (Castagnoli) checksum masked as
//! `((crc >> 15) | (crc << 17)).wrapping_add(0xa282ead8)` ([`masked_crc32c`]). Each
//! record's data is one [`Event`] message of `tensorflow/core/util/event.proto`
//! (encoded with `prost`); the first one carries `file_version: "brain.Event:2"`,
//! the others a [`Summary`] of scalars (`simple_value`) or histograms
//! ([`HistogramProto`]).
//!
//! Files are named `events.out.tfevents.{unix_seconds}.{hostname}.{pid}.nn`, which
//! TensorBoard picks up (it reads every file whose name contains `tfevents`).
//!
//! ## Reading the logs
//!
//! ```text
//! tensorboard --logdir DIR
//! ```
//!
//! shows the runs `train` and `validation` written by [`TensorBoard`], each with the
//! scalars `epoch_loss`, `epoch_accuracy`, ... at steps 0, 1, 2, ... (the 0-based
//! epoch, as Keras).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::callbacks::{Callback, CallbackCtx, Control};
use crate::error::{Result, TrainError};
use crate::history::{EpochLog, History};

/// The `file_version` of the first event of every file (TensorFlow's
/// `EventsWriter::kVersionPrefix` + version 2).
pub const FILE_VERSION: &str = "brain.Event:2";

/// The number of equal-width buckets of the weight histograms of [`TensorBoard`]
/// (TensorFlow 2's `tf.summary.histogram` default).
pub const HISTOGRAM_BUCKETS: usize = 30;

/// The constant added to a rotated CRC by [`masked_crc32c`] (TensorFlow's
/// `crc32c::kMaskDelta`).
const MASK_DELTA: u32 = 0xa282_ead8;

/// The CRC-32C (Castagnoli polynomial `0x1EDC6F41`, reflected, initial value and
/// final XOR `0xFFFFFFFF`; RFC 3720 §B.4) of `data`, through the `crc32c` crate
/// (SSE 4.2 / ARMv8 CRC instructions where available, a table otherwise).
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// TensorFlow's masked CRC of `data` (`tensorflow/core/lib/hash/crc32c.h`,
/// `crc32c::Mask`): `((crc >> 15) | (crc << 17)).wrapping_add(0xa282ead8)` with
/// `crc` = [`crc32c()`]`(data)`. Masking keeps the CRC of data that itself contains
/// CRCs well distributed.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    // `(crc >> 15) | (crc << 17)` is a right rotation by 15.
    crc32c(data).rotate_right(15).wrapping_add(MASK_DELTA)
}

/// One record of TensorFlow's record format around `data`:
/// `u64 len LE | u32 masked_crc32c(len bytes) LE | data | u32 masked_crc32c(data) LE`
/// (`tensorflow/core/lib/io/record_writer.cc`), `data.len() + 16` bytes.
pub fn encode_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// Splits `bytes` into the data of its records, checking both CRCs of each.
fn decode_records(bytes: &[u8]) -> std::result::Result<Vec<&[u8]>, String> {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let header = bytes.get(at..at + 12).ok_or_else(|| format!("truncated record header at byte {at}"))?;
        let (len_bytes, len_crc) = header.split_at(8);
        if masked_crc32c(len_bytes).to_le_bytes() != len_crc {
            return Err(format!("corrupt length of the record at byte {at} (CRC mismatch)"));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
        let start = at + 12;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e.checked_add(4).is_some_and(|e4| e4 <= bytes.len()))
            .ok_or_else(|| format!("truncated record at byte {at}: {len} bytes announced"))?;
        let data = &bytes[start..end];
        if masked_crc32c(data).to_le_bytes() != bytes[end..end + 4] {
            return Err(format!("corrupt data of the record at byte {at} (CRC mismatch)"));
        }
        records.push(data);
        at = end + 4;
    }
    Ok(records)
}

/// `tensorflow.Event` (`tensorflow/core/util/event.proto`), the fields TensorBoard's
/// scalars and histograms use. In the `.proto` file `file_version` and `summary` are
/// members of `oneof what`; as plain fields here they encode to the same bytes (an
/// event sets one of them).
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the Unix epoch when the event was written (field 1).
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The global step, here the 0-based epoch (field 2).
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// `"brain.Event:2"` in the first event of a file, empty otherwise (field 3).
    #[prost(string, tag = "3")]
    pub file_version: String,
    /// The values logged at `step` (field 5).
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary` (`tensorflow/core/framework/summary.proto`): values logged
/// together.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// The values (field 1).
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`: one tagged scalar or histogram.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    /// The series' name, e.g. `epoch_loss` (field 1).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// What is logged: `oneof value` of the `.proto` (a member of a oneof is encoded
    /// even when it is 0, so a scalar 0.0 is not lost).
    #[prost(oneof = "summary_value::Kind", tags = "2, 5")]
    pub kind: Option<summary_value::Kind>,
}

/// The `oneof value` of [`SummaryValue`].
pub mod summary_value {
    /// What a [`SummaryValue`](super::SummaryValue) holds.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// `float simple_value = 2`: a scalar (an `f32`, as TensorBoard stores it).
        #[prost(float, tag = "2")]
        SimpleValue(f32),
        /// `HistogramProto histo = 5`: a histogram.
        #[prost(message, tag = "5")]
        Histo(super::HistogramProto),
    }
}

/// `tensorflow.HistogramProto` (`tensorflow/core/framework/summary.proto`). Bucket
/// `i` holds `bucket[i]` values and spans `[bucket_limit[i−1], bucket_limit[i]]`, the
/// left edge of bucket 0 being `min` (how TensorBoard draws it); the last
/// `bucket_limit` is `max`.
#[derive(Clone, PartialEq, Message)]
pub struct HistogramProto {
    /// The smallest value (field 1).
    #[prost(double, tag = "1")]
    pub min: f64,
    /// The largest value (field 2).
    #[prost(double, tag = "2")]
    pub max: f64,
    /// The number of values (field 3).
    #[prost(double, tag = "3")]
    pub num: f64,
    /// Their sum (field 4).
    #[prost(double, tag = "4")]
    pub sum: f64,
    /// The sum of their squares (field 5).
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    /// The right edge of each bucket, increasing (field 6, packed).
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    /// The count of each bucket (field 7, packed).
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}

impl HistogramProto {
    /// The histogram of the finite `values` in `buckets` equal-width buckets over
    /// `[min, max]` (TensorFlow 2's `tf.summary.histogram` layout): edges
    /// `e_k = min + k·(max − min)/buckets`, `bucket_limit = [e_1, ..., e_{B−1}, max]`,
    /// bucket `k` counting `e_k ≤ v < e_{k+1}` (the last one also `v = max`, as
    /// `numpy.histogram`). When all values are equal there is one bucket
    /// (`bucket_limit = [max]`). Non-finite values are left out of everything.
    ///
    /// `None` when no value is finite or `buckets` is 0.
    pub fn from_values(values: impl IntoIterator<Item = f64>, buckets: usize) -> Option<HistogramProto> {
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if values.is_empty() || buckets == 0 {
            return None;
        }
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum = values.iter().sum();
        let sum_squares = values.iter().map(|v| v * v).sum();
        let num = values.len() as f64;
        let (bucket_limit, bucket) = if min == max || buckets == 1 {
            (vec![max], vec![num])
        } else {
            let width = (max - min) / buckets as f64;
            let mut limits: Vec<f64> = (1..buckets).map(|k| min + k as f64 * width).collect();
            let mut counts = vec![0.0; buckets];
            for v in &values {
                // The number of inner edges ≤ v is the bucket's index.
                counts[limits.partition_point(|&e| e <= *v)] += 1.0;
            }
            limits.push(max);
            (limits, counts)
        };
        Some(HistogramProto { min, max, num, sum, sum_squares, bucket_limit, bucket })
    }
}

/// Seconds since the Unix epoch, now.
fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The host's name from `/proc/sys/kernel/hostname`, or `localhost`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains(['/', '\\']))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Reads every event of an event file, checking each record's CRCs.
///
/// # Errors
/// [`TrainError::Io`] naming `path` when it cannot be read, a record is truncated or
/// fails its CRC, or a record is not an `Event` message.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    decode_records(&bytes)
        .map_err(|e| TrainError::io(path, e))?
        .into_iter()
        .enumerate()
        .map(|(i, data)| Event::decode(data).map_err(|e| TrainError::io(path, format!("record {i}: {e}"))))
        .collect()
}

/// Appends [`Event`]s to a new event file (TensorFlow's `EventsWriter`).
///
/// Events are buffered; [`EventWriter::flush`] writes them to the file and asks the
/// system to put them on disk, so that whatever was flushed survives a crash.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` (and its parents) if needed and a new event file
    /// `events.out.tfevents.{unix_seconds}.{hostname}.{pid}.nn` in it, starting with
    /// the event `file_version: "brain.Event:2"`, flushed. An existing file is never
    /// overwritten: should that name be taken (a second writer of this process in
    /// the same second), `.1`, `.2`, ... is appended to it.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the folder or file that could not be created or
    /// written.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let wall_time = now();
        let base = format!("events.out.tfevents.{}.{}.{}.nn", wall_time as u64, hostname(), std::process::id());
        let mut n = 0usize;
        let (path, file) = loop {
            let name = if n == 0 { base.clone() } else { format!("{base}.{n}") };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(TrainError::io(&path, e)),
            }
        };
        let mut writer = EventWriter { path, out: BufWriter::new(file) };
        writer.write_event(&Event { wall_time, step: 0, file_version: FILE_VERSION.to_string(), summary: None })?;
        writer.flush()?;
        Ok(writer)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` as one record (buffered until [`EventWriter::flush`]).
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the file when writing fails.
    pub fn write_event(&mut self, event: &Event) -> Result<()> {
        let record = encode_record(&event.encode_to_vec());
        self.out.write_all(&record).map_err(|e| TrainError::io(&self.path, e))
    }

    /// Appends the scalar `value` of series `tag` at `step`, as an `f32`
    /// `simple_value` (what TensorBoard stores), stamped with the current time.
    ///
    /// # Errors
    /// As [`EventWriter::write_event`].
    pub fn add_scalar(&mut self, tag: &str, value: f64, step: i64) -> Result<()> {
        self.add_value(tag, summary_value::Kind::SimpleValue(value as f32), step)
    }

    /// Appends the histogram `histogram` of series `tag` at `step` (see
    /// [`HistogramProto::from_values`]), stamped with the current time.
    ///
    /// # Errors
    /// As [`EventWriter::write_event`].
    pub fn add_histogram(&mut self, tag: &str, histogram: HistogramProto, step: i64) -> Result<()> {
        self.add_value(tag, summary_value::Kind::Histo(histogram), step)
    }

    fn add_value(&mut self, tag: &str, kind: summary_value::Kind, step: i64) -> Result<()> {
        let value = SummaryValue { tag: tag.to_string(), kind: Some(kind) };
        let summary = Summary { value: vec![value] };
        self.write_event(&Event { wall_time: now(), step, file_version: String::new(), summary: Some(summary) })
    }

    /// Writes the buffered events to the file and syncs it to disk (`fsync` of the
    /// data).
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the file when writing or syncing fails.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| TrainError::io(&self.path, e))?;
        self.out.get_ref().sync_data().map_err(|e| TrainError::io(&self.path, e))
    }
}

/// Logs every epoch to TensorBoard event files (Keras's
/// `keras.callbacks.TensorBoard(log_dir)`):
///
/// - under `log_dir/train`: `epoch_loss`, every other training metric `m` of the
///   [`EpochLog`] as `epoch_{m}` (`epoch_accuracy`, ...) and `epoch_learning_rate`
///   (the rate in force during the epoch);
/// - under `log_dir/validation` (created at the first epoch with validation figures):
///   each `val_{m}` as `epoch_{m}` (`epoch_loss`, `epoch_accuracy`, ...);
/// - with [`TensorBoard::with_histograms`]`(freq)`, every `freq` epochs (the 0-based
///   epochs 0, freq, 2·freq, ..., as Keras's `histogram_freq`), one histogram of
///   [`HISTOGRAM_BUCKETS`] buckets per model parameter under `log_dir/train`, tagged
///   with the parameter's name (`layers.0.kernel`, ...).
///
/// The step of everything logged for an epoch is its 0-based index (Keras's
/// `epoch`), so a resumed run continues the curves. Each run of [`fit`](crate::fit)
/// writes new files (one per folder); the files are flushed and synced after every
/// epoch, so a crash loses no finished epoch.
pub struct TensorBoard {
    log_dir: PathBuf,
    histogram_freq: usize,
    train: Option<EventWriter>,
    validation: Option<EventWriter>,
}

impl TensorBoard {
    /// Logs under `log_dir`, which is created now (with its parents) so that a path
    /// that cannot hold the logs is reported before training starts; no histograms.
    /// The event files are created when training begins.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming `log_dir` when it cannot be created.
    pub fn new(log_dir: impl Into<PathBuf>) -> Result<Self> {
        let log_dir = log_dir.into();
        std::fs::create_dir_all(&log_dir).map_err(|e| TrainError::io(&log_dir, e))?;
        Ok(TensorBoard { log_dir, histogram_freq: 0, train: None, validation: None })
    }

    /// Also logs weight histograms every `freq` epochs (0: never, the default).
    pub fn with_histograms(mut self, freq: usize) -> Self {
        self.histogram_freq = freq;
        self
    }

    /// The folder holding the `train` and `validation` runs.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The training event file of the current (or last) run, once created.
    pub fn train_file(&self) -> Option<&Path> {
        self.train.as_ref().map(EventWriter::path)
    }

    /// The validation event file of the current (or last) run, once created.
    pub fn validation_file(&self) -> Option<&Path> {
        self.validation.as_ref().map(EventWriter::path)
    }
}

/// The writer in `slot`, created in `dir` if there is none yet.
fn writer<'a>(slot: &'a mut Option<EventWriter>, dir: &Path) -> Result<&'a mut EventWriter> {
    if slot.is_none() {
        *slot = Some(EventWriter::create(dir)?);
    }
    Ok(slot.as_mut().expect("just created"))
}

impl Callback for TensorBoard {
    fn on_train_begin(&mut self, _ctx: &mut CallbackCtx<'_>) -> Result<()> {
        self.validation = None;
        self.train = Some(EventWriter::create(self.log_dir.join("train"))?);
        Ok(())
    }

    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut CallbackCtx<'_>) -> Result<Control> {
        let index = log.epoch.saturating_sub(1);
        let step = index as i64;
        let train = writer(&mut self.train, &self.log_dir.join("train"))?;
        for (name, value) in log.metrics.iter().filter(|(name, _)| !name.starts_with("val_")) {
            train.add_scalar(&format!("epoch_{name}"), *value, step)?;
        }
        train.add_scalar("epoch_learning_rate", log.learning_rate, step)?;
        if self.histogram_freq > 0 && index.is_multiple_of(self.histogram_freq) {
            for p in ctx.model.parameters() {
                let values = p.value.array().iter().map(|&v| f64::from(v));
                if let Some(h) = HistogramProto::from_values(values, HISTOGRAM_BUCKETS) {
                    train.add_histogram(&p.name, h, step)?;
                }
            }
        }
        train.flush()?;
        let mut validation = log.metrics.iter().filter_map(|(k, v)| Some((k.strip_prefix("val_")?, *v))).peekable();
        if validation.peek().is_some() {
            let val = writer(&mut self.validation, &self.log_dir.join("validation"))?;
            for (name, value) in validation {
                val.add_scalar(&format!("epoch_{name}"), value, step)?;
            }
            val.flush()?;
        }
        Ok(Control::Continue)
    }

    fn on_train_end(&mut self, _history: &mut History, _ctx: &mut CallbackCtx<'_>) -> Result<()> {
        for w in [&mut self.train, &mut self.validation].into_iter().flatten() {
            w.flush()?;
        }
        Ok(())
    }
}
