//! IDX reader and MNIST-directory loader on hand-made files: every element type,
//! raw and gzip, and every error case.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use nn_data::idx::{parse_idx, read_idx, IdxArray, IdxData, IdxType};
use nn_data::mnist::{self, load_idx_pair, FASHION_MNIST_CLASSES};
use nn_data::{DataError, Targets};
use proptest::prelude::*;

/// A 2×2×3 u8 image file written byte by byte from the IDX specification.
fn images_2x2x3() -> Vec<u8> {
    let mut b = vec![0x00, 0x00, 0x08, 0x03]; // magic: u8, 3 dimensions
    b.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]); // [2, 2, 3]
    b.extend_from_slice(&[0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]);
    b
}

fn labels(values: &[u8]) -> Vec<u8> {
    let mut b = vec![0x00, 0x00, 0x08, 0x01];
    b.extend_from_slice(&(values.len() as u32).to_be_bytes());
    b.extend_from_slice(values);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn tiny_u8_file_raw_and_gzip() {
    for bytes in [images_2x2x3(), gzip(&images_2x2x3())] {
        let a = parse_idx(&bytes, "tiny").unwrap();
        assert_eq!(a.dims(), [2, 2, 3]);
        assert_eq!(a.dtype(), IdxType::U8);
        assert_eq!(a.data(), &IdxData::U8(vec![0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]));
        let t = a.to_f32_tensor();
        assert_eq!(t.shape(), &[2, 2, 3]);
        assert_eq!(t.get(&[1, 1, 2]), Some(255.0));
    }
}

#[test]
fn every_element_type_big_endian() {
    // i8: -1, 127, -128
    let a = parse_idx(&[0, 0, 0x09, 1, 0, 0, 0, 3, 0xff, 0x7f, 0x80], "i8").unwrap();
    assert_eq!(a.data(), &IdxData::I8(vec![-1, 127, -128]));
    // i16: -2 = ff fe, 300 = 01 2c
    let a = parse_idx(&[0, 0, 0x0B, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x01, 0x2c], "i16").unwrap();
    assert_eq!(a.data(), &IdxData::I16(vec![-2, 300]));
    // i32: 65536 + 2 = 00 01 00 02, -1
    let a = parse_idx(&[0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 1, 0, 2, 0xff, 0xff, 0xff, 0xff], "i32").unwrap();
    assert_eq!(a.data(), &IdxData::I32(vec![65538, -1]));
    // f32: 1.5 = 3f c0 00 00, -2.0 = c0 00 00 00
    let a = parse_idx(&[0, 0, 0x0D, 1, 0, 0, 0, 2, 0x3f, 0xc0, 0, 0, 0xc0, 0, 0, 0], "f32").unwrap();
    assert_eq!(a.data(), &IdxData::F32(vec![1.5, -2.0]));
    // f64: 0.1 = 3f b9 99 99 99 99 99 9a, shape [1, 1]
    let a = parse_idx(&[0, 0, 0x0E, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a], "f64")
        .unwrap();
    assert_eq!(a.dims(), [1, 1]);
    assert_eq!(a.data(), &IdxData::F64(vec![0.1]));
    // 0 dimensions: a single element.
    let a = parse_idx(&[0, 0, 0x08, 0, 42], "scalar").unwrap();
    assert_eq!((a.dims(), a.data()), (&[][..], &IdxData::U8(vec![42])));
    // Zero-length dimension: an empty array is valid.
    let a = parse_idx(&[0, 0, 0x08, 2, 0, 0, 0, 0, 0, 0, 0, 5], "empty").unwrap();
    assert_eq!(a.dims(), [0, 5]);
    assert!(a.data().is_empty());
}

fn err(bytes: &[u8]) -> DataError {
    parse_idx(bytes, "/data/x-idx3-ubyte").unwrap_err()
}

#[test]
fn header_errors_name_the_file() {
    let e = err(&[0x12, 0x34, 0x08, 0x01, 0, 0, 0, 0]);
    assert!(matches!(e, DataError::BadMagic { found: [0x12, 0x34, 0x08, 0x01], .. }), "{e:?}");
    assert!(e.to_string().starts_with("/data/x-idx3-ubyte: not an IDX file: magic number 12 34 08 01"), "{e}");

    let e = err(&[0, 0, 0x0A, 1, 0, 0, 0, 0]);
    assert!(matches!(e, DataError::UnknownIdxType { code: 0x0A, .. }), "{e:?}");
    assert_eq!(e.to_string(), "/data/x-idx3-ubyte: unknown IDX element type code 0x0a");

    // Empty file and a header cut inside the dimensions.
    assert!(matches!(err(&[]), DataError::Truncated { expected: 4, got: 0, .. }));
    let e = err(&[0, 0, 8, 3, 0, 0, 0, 2, 0, 0]);
    assert!(matches!(e, DataError::Truncated { expected: 16, got: 10, .. }), "{e:?}");
}

#[test]
fn length_errors() {
    let full = images_2x2x3();
    let e = err(&full[..full.len() - 1]);
    assert!(matches!(e, DataError::Truncated { expected: 28, got: 27, .. }), "{e:?}");
    assert_eq!(e.to_string(), "/data/x-idx3-ubyte: truncated: the header announces 28 bytes, the file holds 27");
    let mut long = full.clone();
    long.extend_from_slice(&[9, 9, 9]);
    let e = err(&long);
    assert!(matches!(e, DataError::TrailingBytes { expected: 28, extra: 3, .. }), "{e:?}");
    // The same through gzip.
    assert!(matches!(err(&gzip(&full[..20])), DataError::Truncated { expected: 28, got: 20, .. }));
    assert!(matches!(err(&gzip(&long)), DataError::TrailingBytes { extra: 3, .. }));
    // A header announcing 2^32-1 × 2^32-1 × 2^32-1 f64 elements over 8 bytes of data.
    let mut huge = vec![0, 0, 0x0E, 3];
    huge.extend_from_slice(&[0xff; 12]);
    huge.extend_from_slice(&[0; 8]);
    assert!(matches!(err(&huge), DataError::Format { .. } | DataError::Truncated { .. }));
    // 2^31 × 2^31 u8: fits in u64 on 64-bit targets, so it is a truncation; no
    // allocation of that size happens.
    let mut big = vec![0, 0, 0x08, 2, 0x80, 0, 0, 0, 0x80, 0, 0, 0];
    big.extend_from_slice(&[1, 2, 3]);
    let e = err(&big);
    assert!(matches!(e, DataError::Truncated { got: 15, .. } | DataError::Format { .. }), "{e:?}");
}

#[test]
fn zero_sized_arrays_with_huge_dimensions_are_rejected() {
    // Found by fuzzing: dims [0x01007070, 0x70000600, 0, 0xa4e4, 0xa4a40070] hold 0
    // elements, but no array may have non-zero dimensions multiplying past isize::MAX.
    let input = [
        0x00, 0x00, 0x0b, 0x05, 0x01, 0x00, 0x70, 0x70, 0x70, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xa4, 0xe4, 0xa4, 0xa4, 0x00, 0x70,
    ];
    let e = err(&input);
    assert!(matches!(e, DataError::Format { .. }), "{e:?}");
    assert!(e.to_string().contains("overflow"), "{e}");
    assert!(IdxArray::new(vec![0, usize::MAX, 2], IdxData::U8(vec![])).is_err());
    let y = Targets::classes(vec![], 1).unwrap();
    assert!(nn_data::Dataset::from_bytes("z", vec![], &[0, usize::MAX / 2, 4], y).is_err());
    assert!(nn_data::one_hot(&[], usize::MAX).is_err());
}

#[test]
fn compression_errors() {
    let full = images_2x2x3();
    // gzip inside gzip.
    let e = err(&gzip(&gzip(&full)));
    assert!(matches!(e, DataError::StillCompressed { format: "gzip", .. }), "{e:?}");
    assert_eq!(e.to_string(), "/data/x-idx3-ubyte: the data is still gzip-compressed; decompress it first");
    // Other formats, detected from their signatures.
    assert!(matches!(err(b"PK\x03\x04rest"), DataError::StillCompressed { format: "zip", .. }));
    assert!(matches!(err(b"\xfd7zXZ\x00..."), DataError::StillCompressed { format: "xz", .. }));
    assert!(matches!(err(b"BZh91AY&SY"), DataError::StillCompressed { format: "bzip2", .. }));
    assert!(matches!(err(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0]), DataError::StillCompressed { format: "zstd", .. }));
    // A gzip stream cut short, and one with a corrupted body (CRC or deflate error).
    let gz = gzip(&full);
    let e = err(&gz[..gz.len() / 2]);
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
    assert!(e.to_string().starts_with("/data/x-idx3-ubyte: corrupt or truncated gzip stream"), "{e}");
    let mut bad = gz.clone();
    let mid = bad.len() - 9; // inside the CRC32 trailer
    bad[mid] ^= 0xff;
    assert!(matches!(err(&bad), DataError::Gzip { .. }));
    let mut bad = gz;
    bad[12] ^= 0x55; // inside the deflate data
    assert!(matches!(err(&bad), DataError::Gzip { .. } | DataError::BadMagic { .. } | DataError::Truncated { .. }));
}

#[test]
fn compression_is_detected_from_bytes_not_names() {
    let dir = tempfile::tempdir().unwrap();
    let raw_named_gz = write(dir.path(), "raw.gz", &images_2x2x3());
    let gz_named_raw = write(dir.path(), "packed-idx3-ubyte", &gzip(&images_2x2x3()));
    assert_eq!(read_idx(&raw_named_gz).unwrap(), read_idx(&gz_named_raw).unwrap());
    let e = read_idx(dir.path().join("absent")).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
    assert!(e.to_string().contains("absent"), "{e}");
}

#[test]
fn image_and_label_pair() {
    let dir = tempfile::tempdir().unwrap();
    let img = write(dir.path(), "img.gz", &gzip(&images_2x2x3()));
    let lab = write(dir.path(), "lab", &labels(&[1, 0]));
    let d = load_idx_pair(&img, &lab, "tiny", names(&["a", "b"])).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d.sample_shape(), &[2, 3, 1]);
    assert_eq!(d.targets(), &Targets::Classes { labels: vec![1, 0], num_classes: 2 });
    assert_eq!(d.class_names().unwrap(), ["a", "b"]);
    assert_eq!(d.raw_bytes().unwrap(), &[0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]);
    let x = d.clone().scale_by(1.0 / 255.0).unwrap().batch_features(&[1]).unwrap();
    assert_eq!(x.shape(), &[1, 2, 3, 1]);
    assert_eq!(x.to_vec(), [250.0f32, 251., 252., 253., 254., 255.].map(|v| v / 255.0));
    // 4-d images [N, H, W, C] keep their channels.
    let mut img4 = vec![0, 0, 8, 4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
    img4.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    let img4 = write(dir.path(), "img4", &img4);
    let one = write(dir.path(), "one", &labels(&[0]));
    assert_eq!(load_idx_pair(&img4, &one, "rgb", names(&["x"])).unwrap().sample_shape(), &[1, 2, 3]);
}

#[test]
fn pair_errors() {
    let dir = tempfile::tempdir().unwrap();
    let img = write(dir.path(), "img", &images_2x2x3());
    let lab3 = write(dir.path(), "lab3", &labels(&[0, 1, 0]));
    let e = load_idx_pair(&img, &lab3, "t", names(&["a", "b"])).unwrap_err();
    assert!(matches!(e, DataError::Mismatch { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("img") && msg.contains("lab3") && msg.contains("2 images but 3 labels"), "{msg}");

    let lab_bad = write(dir.path(), "lab_bad", &labels(&[0, 7]));
    let e = load_idx_pair(&img, &lab_bad, "t", names(&["a", "b"])).unwrap_err();
    assert!(e.to_string().ends_with("lab_bad: label 7 of sample 1 is not below 2 classes"), "{e}");

    // Labels stored as i16, images of rank 2.
    let lab_i16 = write(dir.path(), "lab_i16", &[0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 0, 0, 1]);
    let e = load_idx_pair(&img, &lab_i16, "t", names(&["a", "b"])).unwrap_err();
    assert!(e.to_string().ends_with("lab_i16: labels must be u8, found i16"), "{e}");
    let flat = write(dir.path(), "flat", &[0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 1, 7, 8]);
    let lab2 = write(dir.path(), "lab2", &labels(&[0, 1]));
    let e = load_idx_pair(&flat, &lab2, "t", names(&["a", "b"])).unwrap_err();
    assert!(e.to_string().contains("images must be [N, H, W] or [N, H, W, C], found dimensions [2, 1]"), "{e}");
}

#[test]
fn mnist_directory_spellings_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Hyphen spelling gzipped for training, dot spelling raw for test.
    write(d, "train-images-idx3-ubyte.gz", &gzip(&images_2x2x3()));
    write(d, "train-labels-idx1-ubyte.gz", &gzip(&labels(&[3, 9])));
    write(d, "t10k-images.idx3-ubyte", &images_2x2x3());
    let e = mnist::load_mnist(d).unwrap_err();
    match &e {
        DataError::MissingFile { tried, .. } => assert_eq!(
            tried,
            &[
                "t10k-labels-idx1-ubyte",
                "t10k-labels-idx1-ubyte.gz",
                "t10k-labels.idx1-ubyte",
                "t10k-labels.idx1-ubyte.gz"
            ]
        ),
        other => panic!("{other:?}"),
    }
    write(d, "t10k-labels.idx1-ubyte", &labels(&[4, 0]));
    let m = mnist::load_mnist(d).unwrap();
    assert_eq!((m.train.name(), m.test.name()), ("mnist-train", "mnist-test"));
    assert_eq!(m.train.targets().labels().unwrap(), [3, 9]);
    assert_eq!(m.test.targets().labels().unwrap(), [4, 0]);
    assert_eq!(m.train.class_names().unwrap()[9], "9");
    let f = mnist::load_fashion_mnist(d).unwrap();
    assert_eq!(f.train.name(), "fashion-mnist-train");
    assert_eq!(f.train.class_names().unwrap(), FASHION_MNIST_CLASSES);
    assert_eq!(f.train.class_names().unwrap()[9], "Ankle boot");
}

fn arb_idx() -> impl Strategy<Value = IdxArray> {
    let dims = prop::collection::vec(0usize..4, 0..4);
    dims.prop_flat_map(|dims| {
        let n: usize = dims.iter().product();
        let data = prop_oneof![
            prop::collection::vec(any::<u8>(), n).prop_map(IdxData::U8),
            prop::collection::vec(any::<i8>(), n).prop_map(IdxData::I8),
            prop::collection::vec(any::<i16>(), n).prop_map(IdxData::I16),
            prop::collection::vec(any::<i32>(), n).prop_map(IdxData::I32),
            prop::collection::vec(-1e30f32..1e30, n).prop_map(IdxData::F32),
            prop::collection::vec(-1e300f64..1e300, n).prop_map(IdxData::F64),
        ];
        (Just(dims), data).prop_map(|(dims, data)| IdxArray::new(dims, data).unwrap())
    })
}

proptest! {
    #[test]
    fn encode_then_parse_round_trips(a in arb_idx(), zip in any::<bool>()) {
        let bytes = a.to_bytes();
        prop_assert_eq!(bytes.len(), 4 + 4 * a.dims().len() + a.dtype().size() * a.data().len());
        let bytes = if zip { gzip(&bytes) } else { bytes };
        prop_assert_eq!(parse_idx(&bytes, "rt").unwrap(), a);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), zip in any::<bool>()) {
        let bytes = if zip { gzip(&bytes) } else { bytes };
        let _ = parse_idx(&bytes, "any");
    }

    #[test]
    fn mutated_valid_files_never_panic(pos in 0usize..28, value in any::<u8>(), cut in 0usize..29) {
        let mut bytes = images_2x2x3();
        bytes[pos] = value;
        bytes.truncate(cut);
        let _ = parse_idx(&bytes, "mut");
        let _ = parse_idx(&gzip(&bytes), "mut.gz");
    }
}
