//! Language-modelling windows, CSV text tables, classification encoding, text
//! files, chapter splits and per-class samples.

use std::io::Write;
use std::path::{Path, PathBuf};

use nn_data::Targets;
use nn_text::{
    chapter_split, encode_classification, group_split, lm_windows, lm_windows_strided, per_class_sample, read_text_csv,
    read_text_file, TextError, TextTokenizer,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

// ------------------------------------------------------------------ lm_windows

/// 20 tokens 0..20, context 4, validation 0.25: boundary floor(20 · 0.75) = 15;
/// training windows start at 0, 4, 8 (12 would need token 16); the validation block
/// 15..20 holds one window.
#[test]
fn lm_windows_hand_computed() {
    let tokens: Vec<u32> = (0..20).collect();
    let lm = lm_windows(&tokens, 4, 0.25).unwrap();
    assert_eq!(lm.boundary, 15);
    assert_eq!((lm.context, lm.stride), (4, 4));
    assert_eq!(lm.train.len(), 3);
    assert_eq!(lm.train.sample_shape(), [4]);
    assert_eq!(lm.train.features().to_vec(), [0., 1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11.]);
    assert_eq!(lm.train_target_ids, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    match lm.train.targets() {
        Targets::Real(t) => {
            assert_eq!(t.shape(), [3, 4]);
            assert_eq!(t.to_vec(), [1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.]);
        }
        other => panic!("expected real targets, got {other:?}"),
    }
    assert_eq!(lm.validation.len(), 1);
    assert_eq!(lm.validation.features().to_vec(), [15., 16., 17., 18.]);
    assert_eq!(lm.validation_target_ids, [16, 17, 18, 19]);
}

/// With token i = i, every value in a training window (inputs and targets) is below
/// the boundary and every validation value at or above it: no window straddles, no
/// training window overlaps a validation window. Counts follow
/// floor((m − c − 1) / stride) + 1.
#[test]
fn lm_windows_never_cross_the_boundary() {
    for &(n, context, fraction, stride) in
        &[(100usize, 7usize, 0.1, 7usize), (1000, 16, 0.2, 16), (1000, 16, 0.2, 5), (257, 3, 0.5, 1), (64, 8, 0.3, 3)]
    {
        let tokens: Vec<u32> = (0..n as u32).collect();
        let lm = lm_windows_strided(&tokens, context, fraction, stride).unwrap();
        let boundary = lm.boundary;
        assert_eq!(boundary, (n as f64 * (1.0 - fraction)).floor() as usize);
        let expected = |m: usize| if m > context { (m - context - 1) / stride + 1 } else { 0 };
        assert_eq!(lm.train.len(), expected(boundary), "{n} {context} {fraction} {stride}");
        assert_eq!(lm.validation.len(), expected(n - boundary));
        let train_max = lm
            .train
            .features()
            .to_vec()
            .into_iter()
            .map(|x| x as u32)
            .chain(lm.train_target_ids.iter().copied())
            .max()
            .unwrap();
        let val_min = lm
            .validation
            .features()
            .to_vec()
            .into_iter()
            .map(|x| x as u32)
            .chain(lm.validation_target_ids.iter().copied())
            .min()
            .unwrap();
        assert!((train_max as usize) < boundary && val_min as usize >= boundary, "{train_max} {val_min} {boundary}");
        // Each target is its input shifted by one.
        let x = lm.train.features().to_vec();
        for (xi, &yi) in x.iter().zip(&lm.train_target_ids) {
            assert_eq!(*xi as u32 + 1, yi);
        }
    }
}

#[test]
fn lm_windows_without_validation() {
    let tokens: Vec<u32> = (0..9).collect();
    let lm = lm_windows(&tokens, 4, 0.0).unwrap();
    assert_eq!(lm.boundary, 9);
    assert_eq!(lm.train.len(), 2);
    assert_eq!(lm.validation.len(), 0);
    assert!(lm.validation_target_ids.is_empty());
}

#[test]
fn lm_windows_errors() {
    let tokens: Vec<u32> = (0..20).collect();
    let op_of = |r: nn_text::Result<nn_text::LmData>| match r {
        Err(TextError::InvalidArgument { op, message }) => (op, message),
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    assert!(op_of(lm_windows(&tokens, 0, 0.1)).1.contains("context (0)"));
    assert!(op_of(lm_windows_strided(&tokens, 4, 0.1, 0)).1.contains("stride (0)"));
    assert!(op_of(lm_windows(&tokens, 4, 1.0)).1.contains("[0, 1)"));
    assert!(op_of(lm_windows(&tokens, 4, f64::NAN)).1.contains("[0, 1)"));
    // Training block of 4 tokens for context 4.
    assert!(op_of(lm_windows(&tokens[..5], 4, 0.2)).1.contains("training block has 4 tokens"));
    // Validation block of 2 tokens: floor(20 · 0.9) = 18.
    assert!(op_of(lm_windows(&tokens, 4, 0.1)).1.contains("validation block (fraction 0.1) has 2 tokens"));
    assert!(op_of(lm_windows(&[1, 2, 1 << 24, 3, 4, 5], 2, 0.0)).1.contains("position 2"));
}

// ------------------------------------------------------------------ CSV

const CSV: &str = "id,text,label\n1,the heaven and the earth,law\n2,\"blessed, are the meek\",gospels\n3,In the beginning,law\n4,Amen,  epistles \n";

#[test]
fn read_text_csv_plain_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [("t.csv", CSV.as_bytes().to_vec()), ("t.csv.gz", gzip(CSV.as_bytes()))] {
        let path = write(dir.path(), name, &bytes);
        let table = read_text_csv(&path, "text", "label").unwrap();
        assert_eq!(table.len(), 4);
        assert_eq!(table.header(), ["id", "text", "label"]);
        assert_eq!(table.texts(), ["the heaven and the earth", "blessed, are the meek", "In the beginning", "Amen"]);
        // Sorted class names; cells trimmed.
        assert_eq!(table.class_names(), ["epistles", "gospels", "law"]);
        assert_eq!(table.labels(), [2, 1, 2, 0]);
        assert_eq!(table.column("id").unwrap(), ["1", "2", "3", "4"]);
        assert_eq!((table.text_column(), table.target_column()), ("text", "label"));
        assert_eq!(table.line(0), Some(2));
        let sub = table.select(&[3, 1]).unwrap();
        assert_eq!(sub.labels(), [0, 1]);
        assert_eq!(sub.class_names(), table.class_names());
        assert!(table.select(&[4]).is_err());
    }
}

#[test]
fn read_text_csv_errors_name_row_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.csv", CSV.as_bytes());
    match read_text_csv(&path, "verse", "label") {
        Err(e @ TextError::MissingColumn { .. }) => {
            let TextError::MissingColumn { ref column, ref header, .. } = e else { unreachable!() };
            assert_eq!(column, "verse");
            assert_eq!(header, &["id", "text", "label"]);
            assert!(e.to_string().contains("a.csv"), "{e}");
        }
        other => panic!("expected MissingColumn, got {other:?}"),
    }
    // Row 3 starts on line 5: row 2's text holds a line break.
    let empty = write(dir.path(), "b.csv", b"text,label\nfirst,x\n\"two\nlines\",y\n  ,z\n");
    match read_text_csv(&empty, "text", "label") {
        Err(TextError::EmptyCell { row: 3, line: 5, column, .. }) => assert_eq!(column, "text"),
        other => panic!("expected EmptyCell, got {other:?}"),
    }
    let no_label = write(dir.path(), "c.csv", b"text,label\nfirst,\n");
    match read_text_csv(&no_label, "text", "label") {
        Err(TextError::EmptyCell { row: 1, line: 2, column, .. }) => assert_eq!(column, "label"),
        other => panic!("expected EmptyCell, got {other:?}"),
    }
    let ragged = write(dir.path(), "d.csv", b"text,label\nfirst,x\nsecond,y,extra\n");
    match read_text_csv(&ragged, "text", "label") {
        Err(TextError::Csv { row: 2, line: 3, message, .. }) => assert!(message.contains("3 fields"), "{message}"),
        other => panic!("expected Csv, got {other:?}"),
    }
    let latin1 = write(dir.path(), "e.csv", b"text,label\ncaf\xe9,x\n");
    match read_text_csv(&latin1, "text", "label") {
        Err(TextError::Csv { row: 1, line: 2, message, .. }) => {
            assert!(
                message.contains("\"text\"") && message.contains("0xe9") && message.contains("offset 3"),
                "{message}"
            )
        }
        other => panic!("expected Csv, got {other:?}"),
    }
    let header_only = write(dir.path(), "f.csv", b"text,label\n");
    assert!(matches!(read_text_csv(&header_only, "text", "label"), Err(TextError::NoRows { .. })));
    let nothing = write(dir.path(), "g.csv", b"");
    assert!(matches!(read_text_csv(&nothing, "text", "label"), Err(TextError::EmptyFile { .. })));
    let corrupt = write(dir.path(), "h.csv.gz", &gzip(CSV.as_bytes())[..20]);
    assert!(matches!(read_text_csv(&corrupt, "text", "label"), Err(TextError::Gzip { .. })));
    assert!(matches!(read_text_csv(dir.path().join("none.csv"), "text", "label"), Err(TextError::Io { .. })));
}

/// Bytes tokenizer, context 4: "ab" pads to [a, b, 0, 0]; "abcdef" is cut to
/// [a, b, c, d] (one row truncated).
#[test]
fn encode_classification_pads_and_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "cls.csv", b"text,label\nab,no\nabcdef,yes\nabcd,no\n");
    let table = read_text_csv(&path, "text", "label").unwrap();
    let enc = encode_classification(&table, &TextTokenizer::bytes(), 4).unwrap();
    let (a, b, c, d) = (99.0, 100.0, 101.0, 102.0); // byte + 2
    assert_eq!(enc.dataset.features().to_vec(), [a, b, 0., 0., a, b, c, d, a, b, c, d]);
    assert_eq!(enc.dataset.sample_shape(), [4]);
    assert_eq!(enc.dataset.name(), "cls");
    assert_eq!(enc.mask.shape(), [3, 4]);
    assert_eq!(enc.mask.to_vec(), [1., 1., 0., 0., 1., 1., 1., 1., 1., 1., 1., 1.]);
    assert_eq!(enc.lengths, [2, 4, 4]);
    assert_eq!(enc.truncated, 1);
    assert_eq!(enc.dataset.targets().labels(), Some(&[0, 1, 0][..]));
    assert_eq!(enc.dataset.class_names(), Some(&["no".to_string(), "yes".to_string()][..]));
    assert!(matches!(
        encode_classification(&table, &TextTokenizer::bytes(), 0),
        Err(TextError::InvalidArgument { .. })
    ));
}

// ------------------------------------------------------------------ text files

#[test]
fn read_text_file_ok_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(dir.path(), "a.txt", "héllo\n".as_bytes());
    assert_eq!(read_text_file(&ok).unwrap(), "héllo\n");
    let gz = write(dir.path(), "a.txt.gz", &gzip("héllo\n".as_bytes()));
    assert_eq!(read_text_file(&gz).unwrap(), "héllo\n");
    let missing = dir.path().join("missing.txt");
    match read_text_file(&missing) {
        Err(TextError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected Io, got {other:?}"),
    }
    let empty = write(dir.path(), "empty.txt", b"");
    assert!(matches!(read_text_file(&empty), Err(TextError::EmptyFile { .. })));
    // "héllo" is 68 c3 a9 6c 6c 6f; a lone 0xff at offset 6.
    let bad = write(dir.path(), "bad.txt", b"h\xc3\xa9llo\xff!");
    match read_text_file(&bad) {
        Err(e @ TextError::NotUtf8 { offset: 6, byte: 0xff, .. }) => {
            assert!(e.to_string().contains("byte offset 6"), "{e}")
        }
        other => panic!("expected NotUtf8, got {other:?}"),
    }
}

// ------------------------------------------------------------------ splits

fn verses_csv(chapters: usize, verses: usize) -> String {
    let mut s = String::from("book,chapter,verse,division,text\n");
    for c in 0..chapters {
        let book = if c % 2 == 0 { "Gen" } else { "Exo" };
        for v in 1..=verses {
            s.push_str(&format!("{book},{},{v},{},verse {c} {v}\n", c / 2 + 1, if c < 6 { "law" } else { "history" }));
        }
    }
    s
}

/// 10 chapters (5 in each of two books, whose chapter numbers repeat) of 3 verses:
/// at 0.3, 3 chapters (9 verses) are held out whole.
#[test]
fn chapter_split_holds_out_whole_chapters() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "v.csv", verses_csv(10, 3).as_bytes());
    let table = read_text_csv(&path, "text", "division").unwrap();
    let split = chapter_split(&table, 0.3, 7).unwrap();
    assert_eq!((split.train_groups, split.test_groups), (7, 3));
    assert_eq!((split.train.len(), split.test.len()), (21, 9));
    let key = |r: usize| (table.column("book").unwrap()[r].clone(), table.column("chapter").unwrap()[r].clone());
    let train: std::collections::HashSet<_> = split.train.iter().map(|&r| key(r)).collect();
    let test: std::collections::HashSet<_> = split.test.iter().map(|&r| key(r)).collect();
    assert_eq!((train.len(), test.len()), (7, 3));
    assert!(train.is_disjoint(&test));
    let mut all: Vec<usize> = split.train.iter().chain(&split.test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..30).collect::<Vec<_>>());
    assert!(split.train.windows(2).all(|w| w[0] < w[1]));
    // The same seed gives the same split.
    assert_eq!(chapter_split(&table, 0.3, 7).unwrap(), split);
    // Grouping by book only: two groups, one each side.
    let by_book = group_split(&table, &["book"], 0.5, 1).unwrap();
    assert_eq!((by_book.train.len(), by_book.test.len()), (15, 15));
    // Errors.
    assert!(matches!(chapter_split(&table, 0.0, 7), Err(TextError::InvalidArgument { .. })));
    assert!(matches!(group_split(&table, &["book"], 0.1, 7), Err(TextError::InvalidArgument { .. })));
    assert!(matches!(group_split(&table, &["testament"], 0.3, 7), Err(TextError::MissingColumn { .. })));
}

#[test]
fn per_class_sample_is_exact_and_seeded() {
    // Class 0: 10 samples, class 1: 5, class 2: 3.
    let labels: Vec<usize> = [vec![0; 10], vec![1; 5], vec![2; 3]].concat();
    let chosen = per_class_sample(&labels, 3, 42).unwrap();
    assert_eq!(chosen.len(), 9);
    assert!(chosen.windows(2).all(|w| w[0] < w[1]));
    for c in 0..3 {
        assert_eq!(chosen.iter().filter(|&&i| labels[i] == c).count(), 3);
    }
    // Class 2 has exactly 3: all of them.
    assert!([15, 16, 17].iter().all(|i| chosen.contains(i)));
    assert_eq!(per_class_sample(&labels, 3, 42).unwrap(), chosen);
    // Some seed among a few draws another subset of class 0 (C(10,3) = 120 subsets).
    assert!((0..5).any(|s| per_class_sample(&labels, 3, s).unwrap() != chosen));
    match per_class_sample(&labels, 4, 42) {
        Err(TextError::InvalidArgument { message, .. }) => assert!(message.contains("class 2 has 3"), "{message}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(per_class_sample(&labels, 0, 42).is_err());
}
