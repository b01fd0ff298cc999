//! TensorBoard event files: CRC-32C vectors, the record framing and the protobuf
//! bytes decoded by hand, histograms, and whole `fit` runs with the callback, read
//! back (and, when `NN_TENSORBOARD_PYTHON` names a python with tensorboard, read by
//! TensorBoard's own `EventAccumulator`).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nn_data::{Dataset, Targets};
use nn_layers::loss::Loss;
use nn_layers::{ModelSpec, Sequential};
use nn_optim::{AdamConfig, OptimizerConfig, ParamRules};
use nn_tensor::Tensor;
use nn_train::tensorboard::{
    crc32c, encode_record, masked_crc32c, summary_value::Kind, Event, HistogramProto, Summary, SummaryValue,
    FILE_VERSION, HISTOGRAM_BUCKETS,
};
use nn_train::{
    fit, read_events, Callback, CallbackCtx, Control, EpochLog, EventWriter, FitConfig, History, TensorBoard,
    TrainError, Verbosity,
};
use prost::Message;

/// CRC-32C bit by bit (reflected polynomial 0x82F63B78, RFC 3720 §B.4), independent
/// of the crate the library uses.
fn crc32c_bitwise(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// TensorFlow's mask (`crc32c::Mask`), written out again as in its source.
#[allow(clippy::manual_rotate)]
fn mask(crc: u32) -> u32 {
    ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)
}

#[test]
fn crc32c_matches_the_rfc_3720_vectors() {
    // RFC 3720 §B.4: 32 bytes of zeros, of ones, and the check string "123456789"
    // (the catalogue's check value for CRC-32C).
    let vectors: [(&[u8], u32); 3] =
        [(&[0u8; 32], 0x8A91_36AA), (&[0xFFu8; 32], 0x62A8_AB43), (b"123456789", 0xE306_9283)];
    for (data, want) in vectors {
        assert_eq!(crc32c(data), want, "{data:?}");
        assert_eq!(crc32c_bitwise(data), want, "{data:?}");
        assert_eq!(masked_crc32c(data), mask(want));
    }
    // The mask by hand for "123456789": 0xE3069283 rotated right by 15 is 0x2507C60D,
    // plus 0xA282EAD8 is 0xC78AB0E5.
    assert_eq!(0xE306_9283u32.rotate_right(15), 0x2507_C60D);
    assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
    // The RFC's incrementing and decrementing 32-byte vectors.
    let inc: Vec<u8> = (0u8..32).collect();
    let dec: Vec<u8> = (0u8..32).rev().collect();
    assert_eq!(crc32c(&inc), 0x46DD_794E);
    assert_eq!(crc32c(&dec), 0x113F_DB5C);
}

/// Splits an event file's bytes into records by hand, checking the framing.
fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len_bytes: [u8; 8] = bytes[at..at + 8].try_into().unwrap();
        let len = u64::from_le_bytes(len_bytes) as usize;
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(len_crc, mask(crc32c_bitwise(&len_bytes)), "length CRC of the record at {at}");
        let data = &bytes[at + 12..at + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(data_crc, mask(crc32c_bitwise(data)), "data CRC of the record at {at}");
        out.push(data.to_vec());
        at += 16 + len;
    }
    assert_eq!(at, bytes.len(), "no trailing bytes");
    out
}

fn events_in(path: &Path) -> Vec<Event> {
    records(&std::fs::read(path).unwrap()).iter().map(|r| Event::decode(r.as_slice()).unwrap()).collect()
}

fn scalar_event(wall_time: f64, step: i64, tag: &str, value: f32) -> Event {
    let value = SummaryValue { tag: tag.into(), kind: Some(Kind::SimpleValue(value)) };
    Event { wall_time, step, file_version: String::new(), summary: Some(Summary { value: vec![value] }) }
}

#[test]
fn an_event_encodes_to_the_protobuf_bytes_of_event_proto_and_back() {
    let event = scalar_event(1234.5, 7, "epoch_loss", 0.25);
    let bytes = event.encode_to_vec();
    // Event: wall_time (field 1, fixed64: key 0x09), step (field 2, varint: key 0x10),
    // summary (field 5, length-delimited: key 0x2a); Summary.value (field 1, key 0x0a);
    // Value.tag (field 1, key 0x0a), simple_value (field 2, fixed32: key 0x15).
    let mut want = vec![0x09];
    want.extend(1234.5f64.to_le_bytes());
    want.extend([0x10, 7, 0x2a, 19, 0x0a, 17, 0x0a, 10]);
    want.extend(b"epoch_loss");
    want.push(0x15);
    want.extend(0.25f32.to_le_bytes());
    assert_eq!(bytes, want);

    // The record: u64 length, its masked CRC, the data, the data's masked CRC.
    let record = encode_record(&bytes);
    assert_eq!(record.len(), 16 + 32);
    assert_eq!(record[..8], 32u64.to_le_bytes());
    assert_eq!(record[8..12], mask(crc32c_bitwise(&32u64.to_le_bytes())).to_le_bytes());
    assert_eq!(record[12..44], bytes[..]);
    assert_eq!(record[44..], mask(crc32c_bitwise(&bytes)).to_le_bytes());

    // Decoded back with prost, every field.
    let data = records(&record);
    assert_eq!(data.len(), 1);
    let back = Event::decode(data[0].as_slice()).unwrap();
    assert_eq!(back.wall_time, 1234.5);
    assert_eq!(back.step, 7);
    assert_eq!(back.file_version, "");
    let values = back.summary.unwrap().value;
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].tag, "epoch_loss");
    assert_eq!(values[0].kind, Some(Kind::SimpleValue(0.25)));

    // A scalar 0 is still written (a oneof member), so TensorBoard sees the value.
    let zero = scalar_event(1.0, 0, "a", 0.0).encode_to_vec();
    assert!(zero.ends_with(&[0x0a, 1, b'a', 0x15, 0, 0, 0, 0]), "{zero:?}");
    // The first event of a file: file_version (field 3, key 0x1a).
    let first = Event { wall_time: 2.0, step: 0, file_version: FILE_VERSION.into(), summary: None }.encode_to_vec();
    let mut want = vec![0x09];
    want.extend(2.0f64.to_le_bytes());
    want.extend([0x1a, 13]);
    want.extend(b"brain.Event:2");
    assert_eq!(first, want);
}

#[test]
fn histograms_have_equal_width_buckets_and_encode_packed() {
    // 0, 1, ..., 10 in 5 buckets of width 2: edges 2, 4, 6, 8 and max 10; buckets
    // [0, 2) {0, 1}, [2, 4) {2, 3}, [4, 6), [6, 8), [8, 10] {8, 9, 10}.
    let h = HistogramProto::from_values((0..=10).map(f64::from), 5).unwrap();
    assert_eq!((h.min, h.max, h.num, h.sum, h.sum_squares), (0.0, 10.0, 11.0, 55.0, 385.0));
    assert_eq!(h.bucket_limit, [2.0, 4.0, 6.0, 8.0, 10.0]);
    assert_eq!(h.bucket, [2.0, 2.0, 2.0, 2.0, 3.0]);
    // Protobuf: min 0 is the default (left out); doubles are fixed64 (keys 0x11, 0x19,
    // 0x21, 0x29); the repeated doubles are packed (keys 0x32, 0x3a, 40 bytes each).
    let bytes = h.encode_to_vec();
    let mut want = Vec::new();
    for (key, v) in [(0x11u8, 10.0f64), (0x19, 11.0), (0x21, 55.0), (0x29, 385.0)] {
        want.push(key);
        want.extend(v.to_le_bytes());
    }
    for (key, vs) in [(0x32u8, &h.bucket_limit), (0x3a, &h.bucket)] {
        want.extend([key, 40]);
        vs.iter().for_each(|v| want.extend(v.to_le_bytes()));
    }
    assert_eq!(bytes, want);
    assert_eq!(HistogramProto::decode(bytes.as_slice()).unwrap(), h);

    // Equal values: one bucket. Non-finite values are left out. Nothing finite: None.
    let h = HistogramProto::from_values([0.5, f64::NAN, 0.5, f64::INFINITY], 30).unwrap();
    assert_eq!((h.min, h.max, h.num, h.sum, h.sum_squares), (0.5, 0.5, 2.0, 1.0, 0.5));
    assert_eq!((h.bucket_limit, h.bucket), (vec![0.5], vec![2.0]));
    assert_eq!(HistogramProto::from_values([f64::NAN], 30), None);
    assert_eq!(HistogramProto::from_values([1.0, 2.0], 0), None);
    // 30 buckets by default, counting every value.
    let h = HistogramProto::from_values((0..1000).map(|i| (i as f64 * 0.37).sin()), HISTOGRAM_BUCKETS).unwrap();
    assert_eq!((h.bucket.len(), h.bucket_limit.len()), (30, 30));
    assert_eq!(h.bucket.iter().sum::<f64>(), 1000.0);
    assert_eq!(*h.bucket_limit.last().unwrap(), h.max);
    assert!(h.bucket_limit.windows(2).all(|w| w[0] < w[1]));
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn the_writer_names_its_file_starts_with_the_version_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let before = unix_now();
    let mut w = EventWriter::create(dir.path().join("run")).unwrap();
    let name = w.path().file_name().unwrap().to_str().unwrap().to_string();
    let parts: Vec<&str> = name.split('.').collect();
    // events.out.tfevents.{seconds}.{host}.{pid}.nn (a host name may hold dots).
    assert_eq!(parts[..3], ["events", "out", "tfevents"], "{name}");
    let secs: u64 = parts[3].parse().unwrap();
    assert!(secs as f64 >= before.floor() && secs as f64 <= unix_now(), "{name}");
    assert_eq!(parts[parts.len() - 2], std::process::id().to_string(), "{name}");
    assert_eq!(parts[parts.len() - 1], "nn", "{name}");
    let host = parts[4..parts.len() - 2].join(".");
    let want_host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    assert_eq!(host, if want_host.is_empty() { "localhost".to_string() } else { want_host });

    // The version event is on disk as soon as the writer exists.
    let events = events_in(w.path());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].file_version, "brain.Event:2");
    assert!(events[0].wall_time >= before && events[0].wall_time <= unix_now());
    w.add_scalar("epoch_loss", 0.1, 3).unwrap();
    w.add_scalar("epoch_accuracy", 0.0, 4).unwrap();
    w.flush().unwrap();
    let events = events_in(w.path());
    assert_eq!(events.len(), 3);
    assert_eq!(events[1], scalar_event(events[1].wall_time, 3, "epoch_loss", 0.1f64 as f32));
    assert_eq!(events[2], scalar_event(events[2].wall_time, 4, "epoch_accuracy", 0.0));
    assert!(events[1].wall_time >= events[0].wall_time && events[2].wall_time >= events[1].wall_time);
    assert_eq!(read_events(w.path()).unwrap(), events);

    // A second writer in the same folder never overwrites the first file.
    let w2 = EventWriter::create(dir.path().join("run")).unwrap();
    assert_ne!(w2.path(), w.path());
    assert_eq!(event_files(&dir.path().join("run")).len(), 2);
    assert_eq!(events_in(w.path()).len(), 3);
}

#[test]
fn corrupt_or_unreadable_files_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::create(dir.path()).unwrap();
    w.add_scalar("x", 1.0, 0).unwrap();
    w.flush().unwrap();
    let path = w.path().to_path_buf();
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 6] ^= 1; // a bit of the last record's data
    std::fs::write(&path, &bytes).unwrap();
    let e = read_events(&path).unwrap_err();
    assert!(matches!(&e, TrainError::Io { path: p, .. } if p == &path), "{e}");
    assert!(e.to_string().contains("CRC mismatch"), "{e}");
    std::fs::write(&path, &bytes[..n - 2]).unwrap();
    assert!(read_events(&path).unwrap_err().to_string().contains("truncated record"));
    // A folder that cannot be created (a file is in the way).
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, b"").unwrap();
    let e = EventWriter::create(blocked.join("train")).err().unwrap();
    assert!(e.to_string().contains(&blocked.join("train").display().to_string()), "{e}");
    let e = TensorBoard::new(blocked.join("logs")).err().unwrap();
    assert!(matches!(&e, TrainError::Io { path, .. } if path == &blocked.join("logs")), "{e}");
    // A log folder that becomes unusable before training: fit fails naming DIR/train.
    let logs = dir.path().join("logs");
    let mut tb = TensorBoard::new(&logs).unwrap();
    std::fs::remove_dir(&logs).unwrap();
    std::fs::write(&logs, b"").unwrap();
    let e = fit_with(&mut [&mut tb], 1).err().unwrap();
    assert!(matches!(&e, TrainError::Io { path, .. } if path == &logs.join("train")), "{e}");
}

/// Two blobs in 2-d, class 0 around (−1, −1) and class 1 around (1, 1).
fn blobs(n: usize) -> Dataset {
    let mut x = Vec::with_capacity(n * 2);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 2;
        let centre = if c == 0 { -1.0 } else { 1.0 };
        x.extend([centre + (i as f32 * 0.7).sin() * 0.4, centre + (i as f32 * 1.3).cos() * 0.4]);
        labels.push(c);
    }
    Dataset::from_tensor("blobs", Tensor::from_vec(&[n, 2], x), Targets::classes(labels, 2).unwrap()).unwrap()
}

/// Trains a small MLP (seeded) on 40 blobs with 20 for validation, batch 8, for
/// epochs `initial_epoch..epochs`, with `callbacks`.
fn fit_from(
    callbacks: &mut [&mut dyn Callback],
    initial_epoch: usize,
    epochs: usize,
) -> nn_train::Result<(History, Sequential)> {
    let mut model = Sequential::new(ModelSpec::mlp(&[2], 4, 2, 0.0), 1).unwrap();
    let mut opt = OptimizerConfig::Adam(AdamConfig::new(0.01)).build::<f32>(ParamRules::new()).unwrap();
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 };
    let config = FitConfig { verbosity: Verbosity::Silent, seed: 3, initial_epoch, ..FitConfig::new(epochs, 8) };
    let history = fit(&mut model, opt.as_mut(), &loss, &blobs(40), Some(&blobs(20)), &config, callbacks)?;
    Ok((history, model))
}

fn fit_with(callbacks: &mut [&mut dyn Callback], epochs: usize) -> nn_train::Result<(History, Sequential)> {
    fit_from(callbacks, 0, epochs)
}

/// Counts the events on disk at the end of every epoch (it runs after TensorBoard).
struct Peek {
    dir: PathBuf,
    counts: Vec<(usize, usize)>,
}

impl Callback for Peek {
    fn on_epoch_end(&mut self, _log: &EpochLog, _ctx: &mut CallbackCtx<'_>) -> nn_train::Result<Control> {
        let count = |run: &str| -> usize {
            let dir = self.dir.join(run);
            if !dir.exists() {
                return 0;
            }
            event_files(&dir).iter().map(|f| events_in(f).len()).sum()
        };
        self.counts.push((count("train"), count("validation")));
        Ok(Control::Continue)
    }
}

/// Scalars by tag: `(step, value)` in file order; histograms by tag.
type Logged = (Vec<(String, Vec<(i64, f32)>)>, Vec<(String, Vec<(i64, HistogramProto)>)>);

fn logged(events: &[Event]) -> Logged {
    let (mut scalars, mut histograms): Logged = (Vec::new(), Vec::new());
    fn push<T>(list: &mut Vec<(String, Vec<(i64, T)>)>, tag: &str, item: (i64, T)) {
        match list.iter_mut().find(|(t, _)| t == tag) {
            Some((_, v)) => v.push(item),
            None => list.push((tag.to_string(), vec![item])),
        }
    }
    for e in events {
        for v in e.summary.iter().flat_map(|s| &s.value) {
            match &v.kind {
                Some(Kind::SimpleValue(x)) => push(&mut scalars, &v.tag, (e.step, *x)),
                Some(Kind::Histo(h)) => push(&mut histograms, &v.tag, (e.step, h.clone())),
                None => panic!("a value without content: {v:?}"),
            }
        }
    }
    (scalars, histograms)
}

/// `(step, value as f32)` of metric `name` over the epochs of `history`, step = epoch − 1.
fn series(history: &History, name: &str) -> Vec<(i64, f32)> {
    history.epochs.iter().map(|e| (e.epoch as i64 - 1, e.get(name).unwrap() as f32)).collect()
}

#[test]
fn a_fit_run_logs_every_epoch_to_train_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let start = unix_now();
    let mut tb = TensorBoard::new(&logs).unwrap().with_histograms(2);
    let mut peek = Peek { dir: logs.clone(), counts: Vec::new() };
    let (history, model) = fit_with(&mut [&mut tb, &mut peek], 3).unwrap();
    let end = unix_now();
    assert_eq!(history.epochs.len(), 3);
    assert_eq!(tb.log_dir(), logs);

    // One file per run, in DIR/train and DIR/validation.
    let train_files = event_files(&logs.join("train"));
    let val_files = event_files(&logs.join("validation"));
    assert_eq!(train_files, [tb.train_file().unwrap()]);
    assert_eq!(val_files, [tb.validation_file().unwrap()]);

    let train = events_in(&train_files[0]);
    assert_eq!(train[0].file_version, "brain.Event:2");
    assert!(train.iter().all(|e| e.wall_time >= start && e.wall_time <= end));
    let (scalars, histograms) = logged(&train[1..]);
    let tags: Vec<&str> = scalars.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tags, ["epoch_loss", "epoch_accuracy", "epoch_learning_rate"]);
    assert_eq!(scalars[0].1, series(&history, "loss"));
    assert_eq!(scalars[1].1, series(&history, "accuracy"));
    assert_eq!(scalars[2].1, vec![(0, 0.01), (1, 0.01), (2, 0.01)]);

    // Histograms at the 0-based epochs 0 and 2, one per parameter, tagged with its
    // name; the last one is exactly that of the final weights.
    let params = model.parameters();
    assert_eq!(histograms.len(), params.len());
    for ((tag, hs), p) in histograms.iter().zip(params) {
        assert_eq!(tag, &p.name);
        assert_eq!(hs.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 2]);
        let want = HistogramProto::from_values(p.value.to_vec().iter().map(|&v| f64::from(v)), 30).unwrap();
        assert_eq!(hs[1].1, want, "{tag}");
        assert_eq!(hs[0].1.num, p.len() as f64);
    }

    let val = events_in(&val_files[0]);
    assert_eq!(val[0].file_version, "brain.Event:2");
    let (scalars, histograms) = logged(&val[1..]);
    assert!(histograms.is_empty());
    let tags: Vec<&str> = scalars.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tags, ["epoch_loss", "epoch_accuracy"]);
    assert_eq!(scalars[0].1, series(&history, "val_loss"));
    assert_eq!(scalars[1].1, series(&history, "val_accuracy"));

    // Everything of an epoch was on disk when the epoch ended: the version event, 3
    // scalars per epoch and the histograms of epochs 0 and 2 in train; the version
    // event and 2 scalars per epoch in validation.
    let n = params.len();
    assert_eq!(peek.counts, [(1 + 3 + n, 1 + 2), (1 + 6 + n, 1 + 4), (1 + 9 + 2 * n, 1 + 6)]);

    // A resumed run (initial epoch 3) writes new files whose steps continue at 3.
    let mut tb = TensorBoard::new(&logs).unwrap();
    let (history, _) = fit_from(&mut [&mut tb], 3, 4).unwrap();
    assert_eq!(event_files(&logs.join("train")).len(), 2);
    assert_eq!(event_files(&logs.join("validation")).len(), 2);
    let (scalars, histograms) = logged(&events_in(tb.train_file().unwrap())[1..]);
    assert!(histograms.is_empty());
    assert_eq!(scalars[0].1, [(3, history.epochs[0].get("loss").unwrap() as f32)]);
    let (scalars, _) = logged(&events_in(tb.validation_file().unwrap())[1..]);
    assert_eq!(scalars[0].1, [(3, history.epochs[0].get("val_loss").unwrap() as f32)]);
}

#[test]
fn without_validation_data_there_is_no_validation_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut tb = TensorBoard::new(dir.path()).unwrap();
    let mut model = Sequential::new(ModelSpec::mlp(&[2], 4, 2, 0.0), 1).unwrap();
    let mut opt = OptimizerConfig::Adam(AdamConfig::new(0.01)).build::<f32>(ParamRules::new()).unwrap();
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 };
    let config = FitConfig { verbosity: Verbosity::Silent, ..FitConfig::new(2, 8) };
    let history = fit(&mut model, opt.as_mut(), &loss, &blobs(16), None, &config, &mut [&mut tb]).unwrap();
    assert!(!dir.path().join("validation").exists());
    assert_eq!(tb.validation_file(), None);
    let (scalars, _) = logged(&events_in(tb.train_file().unwrap())[1..]);
    assert_eq!(scalars[0].1, series(&history, "loss"));
}

/// The script run by [`tensorboard_reads_the_files`]: prints, as JSON, each run's
/// scalars (step, f32 bits of the value, f64 bits of the wall time) and histograms
/// (f64 bits) as TensorBoard's `EventAccumulator` reads them. Bits, so that no
/// decimal conversion stands between the values compared.
const READ_WITH_TENSORBOARD: &str = r#"
import json, struct, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

def d(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]

out = {}
for run in ("train", "validation"):
    acc = EventAccumulator(sys.argv[1] + "/" + run, size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    out[run] = {
        "file_version": acc.file_version,
        "scalars": {
            t: [[e.step, struct.unpack("<I", struct.pack("<f", e.value))[0], d(e.wall_time)] for e in acc.Scalars(t)]
            for t in tags["scalars"]
        },
        "histograms": {
            t: [[e.step, d(e.histogram_value.num), d(e.histogram_value.min), d(e.histogram_value.max),
                 [d(x) for x in e.histogram_value.bucket_limit], [d(x) for x in e.histogram_value.bucket]]
                for e in acc.Histograms(t)]
            for t in tags["histograms"]
        },
    }
print(json.dumps(out))
"#;

#[test]
#[ignore = "needs python3 with tensorboard: set NN_TENSORBOARD_PYTHON"]
fn tensorboard_reads_the_files() {
    let python = std::env::var("NN_TENSORBOARD_PYTHON").expect("NN_TENSORBOARD_PYTHON: a python with tensorboard");
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let mut tb = TensorBoard::new(&logs).unwrap().with_histograms(1);
    let (history, model) = fit_with(&mut [&mut tb], 3).unwrap();
    let script = dir.path().join("read.py");
    std::fs::write(&script, READ_WITH_TENSORBOARD).unwrap();
    let out = std::process::Command::new(&python).arg(&script).arg(&logs).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let wall_times: Vec<f64> =
        events_in(tb.train_file().unwrap()).iter().filter(|e| e.summary.is_some()).map(|e| e.wall_time).collect();
    for (run, metrics) in [
        ("train", vec![("epoch_loss", "loss"), ("epoch_accuracy", "accuracy")]),
        ("validation", vec![("epoch_loss", "val_loss"), ("epoch_accuracy", "val_accuracy")]),
    ] {
        let r = &read[run];
        assert_eq!(r["file_version"], 2.0, "{run}");
        let mut tags: Vec<String> = r["scalars"].as_object().unwrap().keys().cloned().collect();
        tags.sort();
        let mut want: Vec<String> = metrics.iter().map(|(t, _)| t.to_string()).collect();
        if run == "train" {
            want.push("epoch_learning_rate".into());
        }
        want.sort();
        assert_eq!(tags, want, "{run}");
        for (tag, name) in metrics {
            let got: Vec<(i64, u32)> = r["scalars"][tag]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e[0].as_i64().unwrap(), e[1].as_u64().unwrap() as u32))
                .collect();
            let want: Vec<(i64, u32)> = series(&history, name).iter().map(|&(s, v)| (s, v.to_bits())).collect();
            assert_eq!(got, want, "{run}/{tag}");
        }
    }
    // The learning rate, exactly, and wall times as written (f64 round-trip).
    let lr: Vec<(i64, u32)> = read["train"]["scalars"]["epoch_learning_rate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_i64().unwrap(), e[1].as_u64().unwrap() as u32))
        .collect();
    assert_eq!(lr, [0, 1, 2].map(|s| (s, 0.01f32.to_bits())));
    let loss_times: Vec<f64> = read["train"]["scalars"]["epoch_loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| f64::from_bits(e[2].as_u64().unwrap()))
        .collect();
    assert!(loss_times.iter().all(|t| wall_times.contains(t)), "{loss_times:?} {wall_times:?}");

    // One histogram per parameter and epoch; the last equals the final weights'.
    let hists = read["train"]["histograms"].as_object().unwrap();
    assert_eq!(hists.len(), model.parameters().len());
    for p in model.parameters() {
        let hs = hists[&p.name].as_array().unwrap();
        assert_eq!(hs.iter().map(|h| h[0].as_i64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
        let want = HistogramProto::from_values(p.value.to_vec().iter().map(|&v| f64::from(v)), 30).unwrap();
        let last = &hs[2];
        let f = |v: &serde_json::Value| f64::from_bits(v.as_u64().unwrap());
        let floats = |v: &serde_json::Value| -> Vec<f64> { v.as_array().unwrap().iter().map(f).collect() };
        assert_eq!((f(&last[1]), f(&last[2]), f(&last[3])), (want.num, want.min, want.max), "{}", p.name);
        assert_eq!(floats(&last[4]), want.bucket_limit, "{}", p.name);
        assert_eq!(floats(&last[5]), want.bucket, "{}", p.name);
    }
}
