//! CSV reader on hand-made files and, with `NN_DATA_DIR`, on iris and breast cancer.

use std::path::PathBuf;

use nn_data::csv::{parse, read, Column, CsvOptions, TargetKind};
use nn_data::{DataError, Targets};
use proptest::prelude::*;

fn ok(text: &str) -> nn_data::Dataset {
    parse(text.as_bytes(), "t.csv", &CsvOptions::default()).unwrap()
}

fn err(text: &str, options: &CsvOptions) -> DataError {
    parse(text.as_bytes(), "dir/t.csv", options).unwrap_err()
}

#[test]
fn text_labels_sorted_into_classes() {
    let d = ok("x,y,species\n1,2,virginica\n3,4,setosa\n5,6,versicolor\n7,8,setosa\n");
    assert_eq!(d.name(), "t");
    assert_eq!(d.len(), 4);
    assert_eq!(d.sample_shape(), &[2]);
    assert_eq!(d.class_names().unwrap(), ["setosa", "versicolor", "virginica"]);
    assert_eq!(d.targets(), &Targets::Classes { labels: vec![2, 0, 1, 0], num_classes: 3 });
    assert_eq!(d.features().to_vec(), vec![1., 2., 3., 4., 5., 6., 7., 8.]);
}

#[test]
fn header_only_is_an_error() {
    let e = err("a,b,label\n", &CsvOptions::default());
    assert!(matches!(e, DataError::Csv { line: 1, column: None, .. }), "{e:?}");
    assert_eq!(e.to_string(), "dir/t.csv:1: no data rows after the header");
    assert_eq!(err("", &CsvOptions::default()).to_string(), "dir/t.csv:1: no header row");
}

#[test]
fn blank_trailing_lines_crlf_bom_and_spaces() {
    let d = ok("\u{feff}a,b,label\r\n1, 2 ,x\r\n3,4,y\r\n\r\n\n   \n");
    assert_eq!(d.len(), 2);
    assert_eq!(d.features().to_vec(), vec![1., 2., 3., 4.]);
    assert_eq!(d.class_names().unwrap(), ["x", "y"]);
    // The byte-order mark is not part of the first column's name.
    let bom = "\u{feff}a,b\nx,1\ny,2\n";
    let d = parse(bom.as_bytes(), "t", &CsvOptions::default().target(Column::Name("a".into()))).unwrap();
    assert_eq!(d.class_names().unwrap(), ["x", "y"]);
}

#[test]
fn quoted_fields() {
    let d = ok("a,\"b, with comma\",label\n\"5.1\",\"-0.25\",\"class, one\"\n1e3,2,\"say \"\"hi\"\"\"\n");
    assert_eq!(d.features().to_vec(), vec![5.1, -0.25, 1000.0, 2.0]);
    assert_eq!(d.class_names().unwrap(), ["class, one", "say \"hi\""]);
}

#[test]
fn bad_cells_name_line_and_column() {
    let text = "a,b,label\n1,2,x\n3,oops,y\n";
    let e = err(text, &CsvOptions::default());
    match &e {
        DataError::Csv { line, column, column_name, .. } => {
            assert_eq!((*line, *column, column_name.as_deref()), (3, Some(2), Some("b")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.to_string(),
        "dir/t.csv:3, column 2 (\"b\"): not a number: \"oops\" \
         (a text column needs --categorical \"b\", or --drop \"b\" to ignore it)"
    );

    let e = err("a,b,label\n1,,x\n", &CsvOptions::default());
    assert_eq!(e.to_string(), "dir/t.csv:2, column 2 (\"b\"): missing value (use --missing drop or --missing mean)");
    let e = err("a,b,label\n1,2,x\n1,2\n", &CsvOptions::default());
    assert_eq!(e.to_string(), "dir/t.csv:3: expected 3 fields as in the header, found 2");
    // `NaN` (like `NA`, `?`, `null`) is a missing value.
    let e = err("a,b,label\n1,NaN,x\n", &CsvOptions::default());
    assert!(
        e.to_string().ends_with("column 2 (\"b\"): missing value \"NaN\" (use --missing drop or --missing mean)"),
        "{e}"
    );
    let e = err("a,b,label\n1,inf,x\n", &CsvOptions::default());
    assert!(e.to_string().ends_with("column 2 (\"b\"): not a finite f32 number: \"inf\""), "{e}");
    let e = err("a,b,label\n1,1e39,x\n", &CsvOptions::default());
    assert!(e.to_string().contains("not a finite f32 number: \"1e39\""), "{e}");
    let e = err("a,b,label\n1,2,\n", &CsvOptions::default());
    assert_eq!(
        e.to_string(),
        "dir/t.csv:2, column 3 (\"label\"): missing target value (--missing drop drops such rows)"
    );
    // A bad real target names its cell too.
    let e = err("a,y\n1,2\n2,zz\n", &CsvOptions::default().kind(TargetKind::Real));
    assert_eq!(e.to_string(), "dir/t.csv:3, column 2 (\"y\"): not a number: \"zz\"");
}

#[test]
fn target_column_by_name_or_index() {
    let text = "label,a,b\nx,1,2\ny,3,4\n";
    let by_name = parse(text.as_bytes(), "t", &CsvOptions::default().target(Column::Name("label".into()))).unwrap();
    let by_index = parse(text.as_bytes(), "t", &CsvOptions::default().target(Column::Index(0))).unwrap();
    assert_eq!(by_name, by_index);
    assert_eq!(by_name.features().to_vec(), vec![1., 2., 3., 4.]);
    assert_eq!(by_name.targets().labels().unwrap(), [0, 1]);

    let e = err(text, &CsvOptions::default().target(Column::Name("kind".into())));
    assert_eq!(e.to_string(), "dir/t.csv:1: no column named \"kind\"; the columns are [\"label\", \"a\", \"b\"]");
    let e = err(text, &CsvOptions::default().target(Column::Index(3)));
    assert!(e.to_string().contains("target column index 3 is out of range: the header has 3 columns"), "{e}");
    let e = err("only\n1\n", &CsvOptions::default());
    assert!(e.to_string().contains("no feature column"), "{e}");
}

#[test]
fn numeric_targets_are_regression_unless_asked() {
    let text = "x,y\n1,10\n2,2\n3,2.5\n";
    let d = ok(text);
    assert_eq!(d.targets().values().unwrap().to_vec(), vec![10.0, 2.0, 2.5]);
    assert_eq!(d.targets().values().unwrap().shape(), &[3]);
    assert!(d.class_names().is_none());

    // As classes, numbers sort numerically: 2 < 2.5 < 10.
    let c = parse(text.as_bytes(), "t", &CsvOptions::default().kind(TargetKind::Classes)).unwrap();
    assert_eq!(c.class_names().unwrap(), ["2", "2.5", "10"]);
    assert_eq!(c.targets().labels().unwrap(), [2, 0, 1]);

    // Two target columns: [N, 2].
    let m = parse(
        "a,t1,b,t2\n1,10,2,20\n3,30,4,40\n".as_bytes(),
        "t",
        &CsvOptions::default().targets(vec![Column::Name("t1".into()), Column::Index(3)]),
    )
    .unwrap();
    assert_eq!(m.features().to_vec(), vec![1., 2., 3., 4.]);
    let t = m.targets().values().unwrap();
    assert_eq!((t.shape(), t.to_vec()), (&[2usize, 2][..], vec![10., 20., 30., 40.]));
    let e = err(
        "a,t1,t2\n1,2,3\n",
        &CsvOptions::default().targets(vec![Column::Index(1), Column::Index(2)]).kind(TargetKind::Classes),
    );
    assert!(e.to_string().contains("2 target columns cannot all be class labels"), "{e}");
}

#[test]
fn other_delimiters_and_io_errors() {
    let d = parse("a;b;c\n1;2;u\n".as_bytes(), "t", &CsvOptions::default().delimiter(b';')).unwrap();
    assert_eq!(d.features().to_vec(), vec![1., 2.]);
    let e = read("/no/such/file.csv", &CsvOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
    assert!(e.to_string().starts_with("/no/such/file.csv: cannot read"), "{e}");
}

#[test]
fn reads_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flowers.csv");
    std::fs::write(&p, "a,b\n0.5,x\n").unwrap();
    let d = read(&p, &CsvOptions::default()).unwrap();
    assert_eq!(d.name(), "flowers");
    assert_eq!(d.features().to_vec(), vec![0.5]);
}

fn data_dir() -> Option<PathBuf> {
    std::env::var_os("NN_DATA_DIR").map(PathBuf::from)
}

#[test]
#[ignore = "needs the iris CSV: set NN_DATA_DIR"]
fn real_iris() {
    let dir = data_dir().expect("NN_DATA_DIR");
    let d = read(dir.join("iris/iris.csv"), &CsvOptions::default()).unwrap();
    assert_eq!(d.len(), 150);
    assert_eq!(d.sample_shape(), &[4]);
    assert_eq!(d.class_names().unwrap(), ["setosa", "versicolor", "virginica"]);
    assert_eq!(d.targets().class_counts().unwrap(), [50, 50, 50]);
    // First row: 5.1,3.5,1.4,0.2,setosa
    assert_eq!(d.batch_features(&[0]).unwrap().to_vec(), vec![5.1, 3.5, 1.4, 0.2]);
}

#[test]
#[ignore = "needs the breast cancer CSV: set NN_DATA_DIR"]
fn real_breast_cancer() {
    let dir = data_dir().expect("NN_DATA_DIR");
    let d = read(dir.join("breast_cancer/breast_cancer.csv"), &CsvOptions::default()).unwrap();
    assert_eq!(d.len(), 569);
    assert_eq!(d.sample_shape(), &[30]);
    assert_eq!(d.class_names().unwrap(), ["benign", "malignant"]);
    assert_eq!(d.targets().class_counts().unwrap(), [357, 212]);
    let first = d.batch_features(&[0]).unwrap().to_vec();
    assert_eq!(first[..3], [17.99, 10.38, 122.8]);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = parse(&bytes, "fuzz", &CsvOptions::default());
        let _ = parse(&bytes, "fuzz", &CsvOptions::default().kind(TargetKind::Classes));
        let _ = parse(&bytes, "fuzz", &CsvOptions::default().target(Column::Index(0)).kind(TargetKind::Real));
    }

    #[test]
    fn csv_like_text_never_panics(text in "[a-c0-9,.\"\n\r -]{0,80}") {
        let _ = parse(text.as_bytes(), "fuzz", &CsvOptions::default());
    }

    /// Any finite f32 written with Rust's shortest round-trip formatting reads back
    /// to the same bits.
    #[test]
    fn written_tables_read_back_exactly(
        rows in prop::collection::vec((any::<f32>().prop_filter("finite", |v| v.is_finite()), -1e6f32..1e6, 0u8..3), 1..20)
    ) {
        let mut text = String::from("f0,f1,label\n");
        for (a, b, l) in &rows {
            text.push_str(&format!("{a},\"{b:e}\",class{l}\n"));
        }
        let d = parse(text.as_bytes(), "t", &CsvOptions::default()).unwrap();
        let expected: Vec<f32> = rows.iter().flat_map(|(a, b, _)| [*a, *b]).collect();
        let got = d.features().to_vec();
        prop_assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        let mut present: Vec<u8> = rows.iter().map(|r| r.2).collect();
        present.sort();
        present.dedup();
        let names = d.class_names().unwrap();
        prop_assert_eq!(names.len(), present.len());
        for (i, (_, _, l)) in rows.iter().enumerate() {
            prop_assert_eq!(&names[d.targets().labels().unwrap()[i]], &format!("class{l}"));
        }
    }
}
