//! Tables with a recorded schema (`read_table`), files read back by that schema
//! (`read_by_schema`), missing values, categories, delimiters and line numbers, on
//! hand-made files with hand-computed values.

use nn_data::csv::{
    parse, parse_by_schema, parse_delimiter, parse_table, read_by_schema, read_table, Column, CsvOptions,
    SchemaReadOptions, Table, TargetKind,
};
use proptest::prelude::*;

use nn_data::{ColumnKind, DataError, FeatureColumn, FeatureSchema, Granularity, Missing, Scaler, Targets, Task};

/// Four people; `id` is noise, `city` is text, one `income` and one `age` missing.
const PEOPLE: &str = "\
id,age,city,income,species
1,30,Rome,2.5,cat
2,40,Oslo,3.5,dog
3,50,Rome,NA,cat
4,,Paris,1.5,bird
";

fn people(missing: Missing) -> Result<Table, DataError> {
    let options = CsvOptions::default()
        .drop(vec![Column::Name("id".into())])
        .categorical(vec![Column::Name("city".into())])
        .missing(missing);
    parse_table(PEOPLE.as_bytes(), "dir/people.csv", &options)
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn categorical(name: &str, categories: &[&str]) -> FeatureColumn {
    FeatureColumn {
        name: name.into(),
        kind: ColumnKind::Categorical { categories: categories.iter().map(|c| c.to_string()).collect() },
    }
}

fn numeric(name: &str) -> FeatureColumn {
    FeatureColumn { name: name.into(), kind: ColumnKind::Numeric }
}

#[test]
fn table_records_the_schema_with_mean_imputation() {
    let t = people(Missing::Mean).unwrap();
    // File order minus the target and the dropped `id`; city's categories sorted.
    assert_eq!(
        t.schema,
        FeatureSchema {
            columns: vec![numeric("age"), categorical("city", &["Oslo", "Paris", "Rome"]), numeric("income")],
            missing: Missing::Mean,
        }
    );
    assert_eq!(t.schema.input_names(), ["age", "city=Oslo", "city=Paris", "city=Rome", "income"]);
    assert_eq!(t.target_names, ["species"]);
    assert_eq!(t.task, Task::Classification);
    assert_eq!(t.task_reason, "column \"species\" holds text");
    assert_eq!((t.dropped_rows, t.rows_with_missing), (0, 2));
    assert_eq!(t.data.name(), "people");
    assert_eq!(t.data.sample_shape(), [5]);
    assert_eq!(t.data.class_names().unwrap(), ["bird", "cat", "dog"]);
    assert_eq!(t.data.targets(), &Targets::Classes { labels: vec![1, 2, 1, 0], num_classes: 3 });
    let nan = f32::NAN;
    #[rustfmt::skip]
    let expected = [
        30.0, 0.0, 0.0, 1.0, 2.5,
        40.0, 1.0, 0.0, 0.0, 3.5,
        50.0, 0.0, 0.0, 1.0, nan,
        nan,  0.0, 1.0, 0.0, 1.5,
    ];
    assert_eq!(bits(&t.data.features().to_vec()), bits(&expected));

    // The imputer: means of the present values. age (30 + 40 + 50) / 3 = 40; the
    // one-hot columns 1/4, 1/4, 2/4; income (2.5 + 3.5 + 1.5) / 3 = 2.5.
    let impute = Scaler::fit_impute_mean(&t.data).unwrap();
    assert_eq!(impute, Scaler::Impute { values: vec![40.0, 0.25, 0.25, 0.5, 2.5] });
    let data = t.data.with_scaler(impute).unwrap();
    #[rustfmt::skip]
    let imputed = [
        30.0, 0.0, 0.0, 1.0, 2.5,
        40.0, 1.0, 0.0, 0.0, 3.5,
        50.0, 0.0, 0.0, 1.0, 2.5,
        40.0, 0.0, 1.0, 0.0, 1.5,
    ];
    assert_eq!(data.features().to_vec(), imputed);
    // Then standardization: age 30, 40, 50, 40 has mean 40 and population variance
    // (100 + 0 + 100 + 0) / 4 = 50.
    let standard = Scaler::fit_standard(&data, Granularity::PerFeature).unwrap();
    let Scaler::Standard { mean, std } = &standard else { panic!("{standard:?}") };
    assert_eq!((mean[0], std[0]), (40.0, 50f64.sqrt()));
    let data = data.with_scaler(standard).unwrap();
    let z = data.features().to_vec();
    assert!(z.iter().all(|v| v.is_finite()), "{z:?}");
    assert_eq!(z[0], (-10.0 / 50f64.sqrt()) as f32);
    assert_eq!(z[15], 0.0);
}

#[test]
fn missing_values_drop_rows_or_fail() {
    let t = people(Missing::Drop).unwrap();
    assert_eq!((t.dropped_rows, t.rows_with_missing), (2, 0));
    // Paris occurs only in a dropped row, so it is no category.
    assert_eq!(t.schema.columns[1], categorical("city", &["Oslo", "Rome"]));
    assert_eq!(t.data.features().to_vec(), [30.0, 0.0, 1.0, 2.5, 40.0, 1.0, 0.0, 3.5]);
    assert_eq!(t.data.class_names().unwrap(), ["cat", "dog"]);
    assert_eq!(t.data.targets().labels().unwrap(), [0, 1]);

    let e = people(Missing::Error).unwrap_err();
    assert!(matches!(e, DataError::Csv { line: 4, column: Some(4), .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "dir/people.csv:4, column 4 (\"income\"): missing value \"NA\" (use --missing drop or --missing mean)"
    );

    // A missing target: an error naming the line, whatever the policy but drop.
    let text = "a,b,label\n1,2,x\n3,4,?\n5,6,y\n";
    for missing in [Missing::Error, Missing::Mean] {
        let e = parse(text.as_bytes(), "t.csv", &CsvOptions::default().missing(missing)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.csv:3, column 3 (\"label\"): missing target value \"?\" (--missing drop drops such rows)"
        );
    }
    let t = parse_table(text.as_bytes(), "t.csv", &CsvOptions::default().missing(Missing::Drop)).unwrap();
    assert_eq!(t.dropped_rows, 1);
    assert_eq!(t.data.features().to_vec(), [1.0, 2.0, 5.0, 6.0]);

    // Every row dropped.
    let e = parse("a,b\n,1\nNA,2\n".as_bytes(), "t.csv", &CsvOptions::default().missing(Missing::Drop)).unwrap_err();
    assert_eq!(e.to_string(), "t.csv:1: no data row left: all 2 rows have a missing value (--missing drop)");
}

#[test]
fn task_and_its_reason() {
    let t = parse_table("x,quality\n1,5\n2,6.5\n".as_bytes(), "t", &CsvOptions::default()).unwrap();
    assert_eq!((t.task, t.task_reason.as_str()), (Task::Regression, "column \"quality\" holds only numbers"));
    assert_eq!(t.data.targets().values().unwrap().to_vec(), [5.0, 6.5]);
    let options = CsvOptions::default().kind(TargetKind::Classes);
    let t = parse_table("x,quality\n1,5\n2,6.5\n".as_bytes(), "t", &options).unwrap();
    assert_eq!((t.task, t.task_reason.as_str()), (Task::Classification, "chosen with --task"));
    assert_eq!(t.data.class_names().unwrap(), ["5", "6.5"]);
    let options = CsvOptions::default().targets(vec![Column::Index(1), Column::Index(2)]);
    let t = parse_table("x,y1,y2\n1,2,3\n".as_bytes(), "t", &options).unwrap();
    assert_eq!((t.task, t.task_reason.as_str()), (Task::Regression, "2 target columns: multi-output regression"));
    assert_eq!(t.target_names, ["y1", "y2"]);
}

#[test]
fn columns_chosen_wrongly_are_named() {
    let options = CsvOptions::default().drop(vec![Column::Name("ids".into())]);
    let e = parse(PEOPLE.as_bytes(), "t.csv", &options).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.csv:1: no column named \"ids\"; the columns are [\"id\", \"age\", \"city\", \"income\", \"species\"]"
    );
    let options = CsvOptions::default().categorical(vec![Column::Index(9)]);
    let e = parse(PEOPLE.as_bytes(), "t.csv", &options).unwrap_err();
    assert_eq!(e.to_string(), "t.csv:1: categorical column index 9 is out of range: the header has 5 columns");
    let options = CsvOptions::default().drop(vec![Column::Last]);
    let e = parse(PEOPLE.as_bytes(), "t.csv", &options).unwrap_err();
    assert_eq!(e.to_string(), "t.csv:1, column 5 (\"species\"): is the target: it cannot be dropped too");

    // Text in a numeric column: name the column and both ways out.
    let e = parse(PEOPLE.as_bytes(), "t.csv", &CsvOptions::default().missing(Missing::Mean)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.csv:2, column 3 (\"city\"): not a number: \"Rome\" \
         (a text column needs --categorical \"city\", or --drop \"city\" to ignore it)"
    );

    // Names: a model finds its columns by them.
    let e = parse("a,a,label\n1,2,x\n".as_bytes(), "t.csv", &CsvOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.csv:1, column 2 (\"a\"): repeats the name of column 1 (a model finds its columns by name): \
         rename one, or ignore it with --drop 1 (0-based)"
    );
    let e = parse(",a,label\n0,2,x\n".as_bytes(), "t.csv", &CsvOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.csv:1, column 1: no name in the header (a model finds its columns by name): \
         add one, or ignore the column with --drop 0 (0-based)"
    );
    let options = CsvOptions::default().drop(vec![Column::Index(0)]);
    assert_eq!(parse(",a,label\n0,2,x\n".as_bytes(), "t.csv", &options).unwrap().features().to_vec(), [2.0]);
}

#[test]
fn typed_columns_are_header_names_first_then_indices() {
    // Header names made of digits: a value equal to a name is that column.
    let text = "2,0,1,2020,y\na,1,2,3,10\nb,4,5,6,20\n";
    let typed = |t: &str| Column::NameOrIndex(t.into());
    let read = |options: CsvOptions| parse_table(text.as_bytes(), "t.csv", &options.categorical(vec![typed("2")]));
    let names = |t: Table| t.schema.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    // "2" is the first column (named "2"), categorical: a and b.
    let t = read(CsvOptions::default()).unwrap();
    assert_eq!(t.schema.columns[0], categorical("2", &["a", "b"]));
    assert_eq!(t.data.features().to_vec(), [1.0, 0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 4.0, 5.0, 6.0]);
    assert_eq!(names(read(CsvOptions::default().drop(vec![typed("0")])).unwrap()), ["2", "1", "2020"]);
    assert_eq!(names(read(CsvOptions::default().drop(vec![typed("2020")])).unwrap()), ["2", "0", "1"]);
    // No column is named "3": the column at index 3, named "2020".
    assert_eq!(names(read(CsvOptions::default().drop(vec![typed("3")])).unwrap()), ["2", "0", "1"]);
    // The target "0" is the column named "0", not the first one.
    let t = read(CsvOptions::default().target(typed("0"))).unwrap();
    assert_eq!((t.target_names, t.task_reason.as_str()), (vec!["0".to_string()], "column \"0\" holds only numbers"));
    assert_eq!(t.data.targets().values().unwrap().to_vec(), [1.0, 4.0]);
    // Neither a name nor an index in range; a name that is no number.
    let e = read(CsvOptions::default().drop(vec![typed("9")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.csv:1: no column named \"9\" and dropped column index 9 is out of range: the header has 5 columns \
         ([\"2\", \"0\", \"1\", \"2020\", \"y\"])"
    );
    let e = read(CsvOptions::default().drop(vec![typed("id")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.csv:1: no column named \"id\"; the columns are [\"2\", \"0\", \"1\", \"2020\", \"y\"]"
    );
    // Without a name of digits in the way, a number is an index, as before.
    let options = CsvOptions::default().drop(vec![typed("0"), typed("2")]).missing(Missing::Mean);
    let t = parse_table(PEOPLE.as_bytes(), "t", &options).unwrap();
    assert_eq!(t.schema, FeatureSchema { missing: Missing::Mean, ..FeatureSchema::numeric(["age", "income"]) });
}

#[test]
fn a_missing_category_is_imputed_with_the_training_frequencies() {
    // city: Oslo twice, Rome once, Lima once, missing twice (empty and NA).
    let text = "size,city,y\n1,Oslo,1\n2,Rome,2\n3,,3\n4,Oslo,4\n5,Lima,5\n6,NA,6\n";
    let options = CsvOptions::default().categorical(vec![Column::Name("city".into())]).missing(Missing::Mean);
    let t = parse_table(text.as_bytes(), "t.csv", &options).unwrap();
    assert_eq!(t.schema.columns[1], categorical("city", &["Lima", "Oslo", "Rome"]));
    assert_eq!(t.rows_with_missing, 2);
    let nan = f32::NAN;
    #[rustfmt::skip]
    let encoded = [
        1.0, 0.0, 1.0, 0.0,
        2.0, 0.0, 0.0, 1.0,
        3.0, nan, nan, nan,
        4.0, 0.0, 1.0, 0.0,
        5.0, 1.0, 0.0, 0.0,
        6.0, nan, nan, nan,
    ];
    assert_eq!(bits(&t.data.features().to_vec()), bits(&encoded));
    // The imputer's values for the one-hot inputs: the frequencies among the 4 rows
    // with a city, 1/4, 2/4, 1/4 (they sum to 1); size's mean 21/6 = 3.5.
    let impute = Scaler::fit_impute_mean(&t.data).unwrap();
    assert_eq!(impute, Scaler::Impute { values: vec![3.5, 0.25, 0.5, 0.25] });
    let imputed = t.data.with_scaler(impute.clone()).unwrap().features().to_vec();
    assert_eq!(imputed[8..12], [3.0, 0.25, 0.5, 0.25]);
    assert_eq!(imputed[20..], [6.0, 0.25, 0.5, 0.25]);
    // Prediction encodes a missing city the same way, for the same imputer.
    let r = parse_by_schema("city,size\n?,7\nRome,8\n".as_bytes(), "p.csv", &t.schema, &SchemaReadOptions::default())
        .unwrap();
    assert_eq!(r.unseen_categories, 0);
    let x = impute.apply(&r.features).unwrap().to_vec();
    assert_eq!(x, [7.0, 0.25, 0.5, 0.25, 8.0, 0.0, 0.0, 1.0]);
}

#[test]
fn evaluation_drops_the_rows_training_dropped() {
    let t = people(Missing::Drop).unwrap();
    let names = t.data.class_names().unwrap().to_vec();
    // PEOPLE's rows 3 and 4 have a missing value; a fifth has a missing target.
    let text = format!("{PEOPLE}5,60,Oslo,4.5,?\n");
    let options = SchemaReadOptions::default().target("species").class_names(names).drop_missing(true);
    let r = parse_by_schema(text.as_bytes(), "p.csv", &t.schema, &options).unwrap();
    assert_eq!(r.dropped_rows, 3);
    assert_eq!(r.line_numbers, [2, 3]);
    assert_eq!(bits(&r.features.to_vec()), bits(&t.data.features().to_vec()));
    assert_eq!(r.targets.as_ref(), Some(t.data.targets()));
    // Without the option a missing value is refused, as for prediction.
    let e = parse_by_schema(text.as_bytes(), "p.csv", &t.schema, &options.clone().drop_missing(false)).unwrap_err();
    assert!(e.to_string().starts_with("p.csv:4, column 4 (\"income\"): missing value"), "{e}");
    // Every row dropped: an error saying so.
    let e =
        parse_by_schema("age,city,income,species\n,Oslo,1,cat\n".as_bytes(), "p.csv", &t.schema, &options).unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.csv:1: no data row left: all 1 rows have a missing value (the model was trained with --missing drop)"
    );
}

#[test]
fn categorical_columns_one_hot_in_byte_order() {
    // Byte order: upper case before lower case, "10" before "9".
    let text = "size,colour,y\n9,red,1\n10,Red,2\n9,blue,3\n";
    let options = CsvOptions::default().categorical(vec![Column::Index(0), Column::Name("colour".into())]);
    let t = parse_table(text.as_bytes(), "t", &options).unwrap();
    assert_eq!(t.schema.columns, [categorical("size", &["10", "9"]), categorical("colour", &["Red", "blue", "red"])]);
    #[rustfmt::skip]
    let expected = [
        0.0, 1.0,   0.0, 0.0, 1.0,
        1.0, 0.0,   1.0, 0.0, 0.0,
        0.0, 1.0,   0.0, 1.0, 0.0,
    ];
    assert_eq!(t.data.features().to_vec(), expected);
    assert_eq!(t.data.targets().values().unwrap().to_vec(), [1.0, 2.0, 3.0]);
}

#[test]
fn a_one_column_header_names_the_likely_delimiter() {
    let e = parse("a;b;label\n1;2;x\n".as_bytes(), "t.csv", &CsvOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.csv:1: the header is one column but contains ';': is the file ';'-separated? pass --delimiter ';'"
    );
    let e = parse("a\tb\tlabel\n1\t2\tx\n".as_bytes(), "t.csv", &CsvOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.csv:1: the header is one column but contains a tab: is the file tab-separated? pass --delimiter tab"
    );
    let e = parse("a|b|label\n".as_bytes(), "t.csv", &CsvOptions::default()).unwrap_err();
    assert!(e.to_string().ends_with("pass --delimiter '|'"), "{e}");
    // Read with the right delimiter.
    let tab = CsvOptions::default().delimiter(parse_delimiter("tab").unwrap());
    assert_eq!(parse("a\tb\tlabel\n1\t2\tx\n".as_bytes(), "t", &tab).unwrap().features().to_vec(), [1.0, 2.0]);
    // And by schema.
    let schema = FeatureSchema::numeric(["a", "b"]);
    let e = parse_by_schema("a;b\n1;2\n".as_bytes(), "p.csv", &schema, &SchemaReadOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.csv:1: the header is one column but contains ';': is the file ';'-separated? pass --delimiter ';'"
    );
}

#[test]
fn delimiter_spellings() {
    for (text, byte) in [(",", b','), (";", b';'), ("|", b'|'), ("tab", b'\t'), ("TAB", b'\t'), ("\\t", b'\t')] {
        assert_eq!(parse_delimiter(text), Ok(byte), "{text}");
    }
    assert_eq!(parse_delimiter("\t"), Ok(b'\t'));
    assert_eq!(parse_delimiter(":"), Ok(b':'));
    for bad in ["", ";;", "\"", "\n", "é"] {
        let e = parse_delimiter(bad).unwrap_err();
        assert!(e.starts_with("a delimiter is one ASCII character"), "{bad:?}: {e}");
    }
    let e = parse("a\"b\n".as_bytes(), "t", &CsvOptions::default().delimiter(b'"')).unwrap_err();
    assert!(matches!(e, DataError::InvalidArgument { .. }), "{e:?}");
}

#[test]
fn crlf_files_name_the_right_line() {
    // Line 1 the header, line 2 blank, lines 3-4 one record with a quoted line
    // break, line 5 the bad cell.
    for end in ["\r\n", "\n", "\r"] {
        let text = ["a,b,label", "", "1,2,\"two", "lines\"", "3,oops,y", ""].join(end);
        let e = parse(text.as_bytes(), "t.csv", &CsvOptions::default()).unwrap_err();
        match &e {
            DataError::Csv { line, column, .. } => assert_eq!((*line, *column), (5, Some(2)), "{end:?}: {e}"),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with("t.csv:5, column 2 (\"b\"): not a number: \"oops\""), "{e}");
    }
    // A byte-order mark and a header after blank lines.
    let text = "\u{feff}\r\n\r\na,b\r\n1,2\r\n\r\n3,\r\n";
    let e = parse(text.as_bytes(), "t.csv", &CsvOptions::default()).unwrap_err();
    assert!(e.to_string().starts_with("t.csv:6, column 2 (\"b\"): missing target value"), "{e}");
    // The wrong field count and an unclosed quote name their lines.
    let e = parse("a,b\r\n1,2\r\n\r\n1,2,3\r\n".as_bytes(), "t.csv", &CsvOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "t.csv:4: expected 2 fields as in the header, found 3");
    let e = parse("a,b\r\n1,2\r\n3,\"x\r\n4,5\r\n".as_bytes(), "t.csv", &CsvOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "t.csv:3, column 2 (\"b\"): a quoted field opened on this line is never closed");
    // The lines of the rows read by schema.
    let schema = FeatureSchema::numeric(["a"]);
    let text = "a,b\r\n1,\"x\r\ny\"\r\n\r\n2,z\r\n";
    let r = parse_by_schema(text.as_bytes(), "p.csv", &schema, &SchemaReadOptions::default()).unwrap();
    assert_eq!(r.line_numbers, [2, 5]);
    assert_eq!(r.features.to_vec(), [1.0, 2.0]);
}

#[test]
fn text_must_be_utf8() {
    let e = parse(b"a,label\n1,caf\xe9\n", "t.csv", &CsvOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.csv:2, column 2 (\"label\"): not UTF-8 text: \"caf\u{fffd}\" (save the file as UTF-8)"
    );
}

#[test]
fn by_schema_finds_columns_by_name_whatever_the_order() {
    let t = people(Missing::Mean).unwrap();
    // The same rows, columns reordered, an extra column, no id.
    let moved = "\
income,zone,species,age,city
2.5,north,cat,30,Rome
3.5,south,dog,40,Oslo
NA,east,cat,50,Rome
1.5,west,bird,,Paris
";
    let options = SchemaReadOptions::default().target("species").class_names(t.data.class_names().unwrap().to_vec());
    let r = parse_by_schema(moved.as_bytes(), "p.csv", &t.schema, &options).unwrap();
    assert_eq!(bits(&r.features.to_vec()), bits(&t.data.features().to_vec()));
    assert_eq!(r.features.shape(), [4, 5]);
    assert_eq!(r.targets.as_ref(), Some(t.data.targets()));
    assert_eq!(r.ignored_columns, ["zone"]);
    assert!(!r.by_position);
    assert_eq!((r.unseen_categories, r.line_numbers.clone()), (0, vec![2, 3, 4, 5]));
    let d = r.into_dataset("p").unwrap();
    assert_eq!(d.class_names().unwrap(), ["bird", "cat", "dog"]);

    // Without a target, the model's target column is ignored too.
    let r = parse_by_schema(moved.as_bytes(), "p.csv", &t.schema, &SchemaReadOptions::default()).unwrap();
    assert_eq!(r.ignored_columns, ["zone", "species"]);
    assert!(r.targets.is_none());
    assert!(r.into_dataset("p").is_err());
}

#[test]
fn by_schema_unseen_categories_and_labels() {
    let t = people(Missing::Mean).unwrap();
    let names = t.data.class_names().unwrap().to_vec();
    let options = SchemaReadOptions::default().target("species").class_names(names);
    let text = "species,id,age,city,income\ndog,9,20,Lima,1\ncat,10,35,Oslo,\n";
    let r = parse_by_schema(text.as_bytes(), "p.csv", &t.schema, &options).unwrap();
    // Lima was never seen: its block is all zeros. The empty income is NaN.
    let expected = [20.0, 0.0, 0.0, 0.0, 1.0, 35.0, 1.0, 0.0, 0.0, f32::NAN];
    assert_eq!(bits(&r.features.to_vec()), bits(&expected));
    assert_eq!(r.unseen_categories, 1);
    assert_eq!(r.targets, Some(Targets::Classes { labels: vec![2, 1], num_classes: 3 }));
    assert_eq!(r.ignored_columns, ["id"]);

    let text = "species,age,city,income\ndog,20,Rome,1\nfish,35,Oslo,2\n";
    let e = parse_by_schema(text.as_bytes(), "p.csv", &t.schema, &options).unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.csv:3, column 1 (\"species\"): label \"fish\" is not one of the model's 3 classes [\"bird\", \"cat\", \"dog\"]"
    );
    let text = "species,age,city,income\n,20,Rome,1\n";
    let e = parse_by_schema(text.as_bytes(), "p.csv", &t.schema, &options).unwrap_err();
    assert_eq!(e.to_string(), "p.csv:2, column 1 (\"species\"): missing target value");

    // Numeric class names match numerically as well as by text.
    let schema = FeatureSchema::numeric(["x"]);
    let classes = SchemaReadOptions::default().target("y").class_names(vec!["1".into(), "2".into(), "10".into()]);
    let r = parse_by_schema("x,y\n0.5,2.0\n1.5,10\n2.5,1\n".as_bytes(), "p", &schema, &classes).unwrap();
    assert_eq!(r.targets.unwrap().labels().unwrap(), [1, 2, 0]);
    // Real targets.
    let real = SchemaReadOptions::default().target("y");
    let r = parse_by_schema("y,x\n-1.25,3\n".as_bytes(), "p", &schema, &real).unwrap();
    assert_eq!(r.targets.unwrap().values().unwrap().to_vec(), [-1.25]);
    let e = parse_by_schema("y,x\nbig,3\n".as_bytes(), "p", &schema, &real).unwrap_err();
    assert_eq!(e.to_string(), "p:2, column 1 (\"y\"): not a number: \"big\"");
}

#[test]
fn by_schema_missing_columns_are_named() {
    let t = people(Missing::Mean).unwrap();
    let e =
        parse_by_schema("Age,city,income\n1,Rome,2\n".as_bytes(), "p.csv", &t.schema, &SchemaReadOptions::default())
            .unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.csv:1: the model's column \"age\" is not in the header (the file has \"Age\"); \
         the file's columns are [\"Age\", \"city\", \"income\"]"
    );
    let e =
        parse_by_schema("city,x\nRome,2\n".as_bytes(), "p.csv", &t.schema, &SchemaReadOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.csv:1: the model's columns \"age\", \"income\" are not in the header; the file's columns are [\"city\", \"x\"]"
    );
    let options = SchemaReadOptions::default().target("species");
    let e = parse_by_schema("age,city,income\n1,Rome,2\n".as_bytes(), "p.csv", &t.schema, &options).unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.csv:1: no target column \"species\"; the file's columns are [\"age\", \"city\", \"income\"]"
    );
    // Many columns: the list is cut.
    let header: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
    let text = format!("{}\n{}\n", header.join(","), vec!["1"; 30].join(","));
    let e = parse_by_schema(text.as_bytes(), "p.csv", &t.schema, &SchemaReadOptions::default()).unwrap_err();
    assert!(e.to_string().ends_with("\"c10\", \"c11\", … 18 more]"), "{e}");
    // A needed name twice is ambiguous.
    let e = parse_by_schema(
        "age,city,income,age\n1,Rome,2,3\n".as_bytes(),
        "p.csv",
        &t.schema,
        &SchemaReadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.csv:1, column 4 (\"age\"): the name is also column 1's: the model's column is ambiguous"
    );
}

#[test]
fn by_schema_headerless_files_read_by_position() {
    let t = people(Missing::Mean).unwrap();
    let r = parse_by_schema("20,Rome,1.0\n35,Oslo,2\n".as_bytes(), "p.csv", &t.schema, &SchemaReadOptions::default())
        .unwrap();
    assert!(r.by_position);
    assert_eq!(r.features.to_vec(), [20.0, 0.0, 0.0, 1.0, 1.0, 35.0, 1.0, 0.0, 0.0, 2.0]);
    assert_eq!(r.line_numbers, [1, 2]);
    // The target last.
    let options = SchemaReadOptions::default().target("species").class_names(vec!["cat".into(), "dog".into()]);
    let r = parse_by_schema("20,Rome,1.0,dog\n".as_bytes(), "p.csv", &t.schema, &options).unwrap();
    assert_eq!(r.targets.unwrap().labels().unwrap(), [1]);
    // A short row names its line.
    let e = parse_by_schema("20,Rome,1.0\n35,Oslo\n".as_bytes(), "p.csv", &t.schema, &SchemaReadOptions::default())
        .unwrap_err();
    assert_eq!(e.to_string(), "p.csv:2: expected 3 fields as in the first row, found 2");
    // Numbers but the wrong count: read as a header, and the message says why.
    let e = parse_by_schema("20,1.0\n".as_bytes(), "p.csv", &t.schema, &SchemaReadOptions::default()).unwrap_err();
    assert!(
        e.to_string().ends_with("(the first row holds values: a file without a header needs 3 fields per row)"),
        "{e}"
    );

    // A schema without names reads by position, with or without a header.
    let schema = FeatureSchema::positional(2);
    assert!(schema.is_positional());
    let r = parse_by_schema("1,2\n3,4\n".as_bytes(), "p", &schema, &SchemaReadOptions::default()).unwrap();
    assert_eq!((r.by_position, r.features.to_vec()), (true, vec![1.0, 2.0, 3.0, 4.0]));
    let r = parse_by_schema("x,y\n1,2\n".as_bytes(), "p", &schema, &SchemaReadOptions::default()).unwrap();
    assert_eq!((r.by_position, r.features.to_vec(), r.line_numbers), (true, vec![1.0, 2.0], vec![2]));
    let options = SchemaReadOptions::default().target("label").class_names(vec!["a".into(), "b".into()]);
    let r = parse_by_schema("label,x,y\nb,1,2\n".as_bytes(), "p", &schema, &options).unwrap();
    assert_eq!(r.features.to_vec(), [1.0, 2.0]);
    assert_eq!(r.targets.unwrap().labels().unwrap(), [1]);
    let e = parse_by_schema("1,2,3\n".as_bytes(), "p", &schema, &SchemaReadOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "p:1: a file without a header needs 2 fields per row (the model's 2 columns), found 3");
}

#[test]
fn by_schema_cell_errors_and_bad_schemas() {
    let schema = FeatureSchema::numeric(["a", "b"]);
    let e = parse_by_schema("b,a\n1,x\n".as_bytes(), "p.csv", &schema, &SchemaReadOptions::default()).unwrap_err();
    assert!(e.to_string().starts_with("p.csv:2, column 2 (\"a\"): not a number: \"x\""), "{e}");
    let e = parse_by_schema("b,a\n1,\n".as_bytes(), "p.csv", &schema, &SchemaReadOptions::default()).unwrap_err();
    assert!(e.to_string().starts_with("p.csv:2, column 2 (\"a\"): missing value"), "{e}");
    // The messages name the command-line flags (the schema's own are neutral).
    assert_eq!(
        e.to_string(),
        "p.csv:2, column 2 (\"a\"): missing value (the model was trained without --missing mean, so it needs every value)"
    );
    let drop = FeatureSchema { missing: Missing::Drop, ..schema.clone() };
    let e = parse_by_schema("b,a\n1,NA\n".as_bytes(), "p.csv", &drop, &SchemaReadOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.csv:2, column 2 (\"a\"): missing value (the model was trained with --missing drop, \
         which cannot drop a row to predict)"
    );
    let e = parse_by_schema("b,a\n1,x\n".as_bytes(), "p.csv", &schema, &SchemaReadOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.csv:2, column 2 (\"a\"): not a number: \"x\" (a text column needs --categorical \"a\")"
    );
    let e = parse_by_schema("b,a\n1,1e39\n".as_bytes(), "p.csv", &schema, &SchemaReadOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "p.csv:2, column 2 (\"a\"): not a finite f32 number: \"1e39\"");
    let e = parse_by_schema("a,b\n".as_bytes(), "p.csv", &schema, &SchemaReadOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "p.csv:1: no data rows after the header");
    let e = parse_by_schema("".as_bytes(), "p.csv", &schema, &SchemaReadOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "p.csv:1: no header row: the file is empty");
    let unsorted = FeatureSchema { columns: vec![categorical("c", &["b", "a"])], missing: Missing::Error };
    let e = parse_by_schema("c\nb\n".as_bytes(), "p", &unsorted, &SchemaReadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::InvalidArgument { .. }), "{e:?}");
    let e =
        parse_by_schema("a,b\n1,2\n".as_bytes(), "p", &schema, &SchemaReadOptions::default().target("a")).unwrap_err();
    assert!(matches!(e, DataError::InvalidArgument { .. }), "{e:?}");
}

#[test]
fn tables_and_schemas_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.csv");
    std::fs::write(&train, "id,x,label\r\n1,0.5,a\r\n2,1.5,b\r\n").unwrap();
    let t = read_table(&train, &CsvOptions::default().drop(vec![Column::Name("id".into())])).unwrap();
    assert_eq!(t.schema, FeatureSchema::numeric(["x"]));
    let new = dir.path().join("new.csv");
    std::fs::write(&new, "x,id\r\n2.5,3\r\n").unwrap();
    let r = read_by_schema(&new, &t.schema, &SchemaReadOptions::default()).unwrap();
    assert_eq!((r.features.to_vec(), r.ignored_columns), (vec![2.5], vec!["id".to_string()]));
    let e = read_by_schema(dir.path().join("none.csv"), &t.schema, &SchemaReadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e:?}");
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "[a-c0-9,;.\"\n\r ?-]{0,80}", choice in 0u8..8) {
        let options = CsvOptions::default()
            .missing([Missing::Error, Missing::Drop, Missing::Mean][usize::from(choice % 3)])
            .categorical(if choice & 4 != 0 { vec![Column::Index(0)] } else { vec![] });
        if let Ok(t) = parse_table(text.as_bytes(), "fuzz", &options) {
            prop_assert_eq!(t.data.sample_len(), t.schema.width());
            // Read back by its own schema: the same features, bit for bit.
            if t.dropped_rows == 0 {
                let r = parse_by_schema(text.as_bytes(), "fuzz", &t.schema, &SchemaReadOptions::default()).unwrap();
                prop_assert_eq!(bits(&r.features.to_vec()), bits(&t.data.features().to_vec()));
                prop_assert_eq!(r.unseen_categories, 0);
                prop_assert!(!r.by_position);
            }
        }
        let schema = FeatureSchema {
            columns: vec![numeric("a"), categorical("b", &["0", "a", "b"])],
            missing: Missing::Mean,
        };
        let _ = parse_by_schema(text.as_bytes(), "fuzz", &schema, &SchemaReadOptions::default());
        let _ = parse_by_schema(text.as_bytes(), "fuzz", &FeatureSchema::positional(2), &SchemaReadOptions::default().target("c"));
        let classes = SchemaReadOptions::default().target("c").class_names(vec!["1".into(), "a".into()]);
        let _ = parse_by_schema(text.as_bytes(), "fuzz", &schema, &classes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        let _ = parse_table(&bytes, "fuzz", &CsvOptions::default().missing(Missing::Mean));
        let _ = parse_by_schema(&bytes, "fuzz", &FeatureSchema::numeric(["a"]), &SchemaReadOptions::default().target("b"));
    }
}

/// Writes a table of `cells` (row-major, `names.len()` per row) with the columns in
/// the order `order`, each row ended by `end`.
fn write(names: &[&str], cells: &[&str], order: &[usize], end: &str) -> String {
    let mut text: String = order.iter().map(|&c| names[c]).collect::<Vec<_>>().join(",");
    text.push_str(end);
    for row in cells.chunks(names.len()) {
        text.push_str(&order.iter().map(|&c| row[c]).collect::<Vec<_>>().join(","));
        text.push_str(end);
    }
    text
}

proptest! {
    /// Tables of numbers, text, quoted text and missing cells: when one reads, the
    /// same rows with the columns shuffled and an extra column read by its schema
    /// give the same features, bit for bit.
    #[test]
    fn shuffled_columns_read_by_schema_give_the_same_features(
        table in prop::collection::vec(
            (
                prop::sample::select(vec!["1", "2.5", "-3e-2", "7", "0", "", "NA"]),
                prop::sample::select(vec!["x", "y", "\"q,r\"", "\"a\"\"b\"", "", "?", "1"]),
                prop::sample::select(vec!["1e3", "-0", "4.25", "null"]),
                prop::sample::select(vec!["cat", "dog", "1", "2.5"]),
            ),
            1..12,
        ),
        order in Just(vec![0usize, 1, 2, 3, 4]).prop_shuffle(),
        crlf in any::<bool>(),
        choice in 0u8..3,
    ) {
        let names = ["a", "b", "c", "y", "extra"];
        let rows = table.len();
        let full: Vec<&str> = table.iter().flat_map(|&(a, b, c, y)| [a, b, c, y, "9"]).collect();
        let end = if crlf { "\r\n" } else { "\n" };
        let options = CsvOptions::default()
            .target(Column::Name("y".into()))
            .drop(vec![Column::Name("extra".into())])
            .categorical(vec![Column::Name("b".into())])
            .missing([Missing::Error, Missing::Drop, Missing::Mean][usize::from(choice)]);
        let train = write(&names, &full, &[0, 1, 2, 3, 4], end);
        if let Ok(t) = parse_table(train.as_bytes(), "t", &options) {
            prop_assert_eq!(t.data.len() + t.dropped_rows, rows);
            let shuffled = write(&names, &full, &order, end);
            let mut read = SchemaReadOptions::default().target("y");
            if let Some(classes) = t.data.class_names() {
                read = read.class_names(classes.to_vec());
            }
            let read = parse_by_schema(shuffled.as_bytes(), "p", &t.schema, &read);
            if t.dropped_rows == 0 {
                let r = read.unwrap();
                prop_assert_eq!(bits(&r.features.to_vec()), bits(&t.data.features().to_vec()));
                prop_assert_eq!(r.targets.as_ref(), Some(t.data.targets()));
                prop_assert_eq!(r.ignored_columns, vec!["extra".to_string()]);
                prop_assert_eq!(r.unseen_categories, 0);
                let lines: Vec<u64> = (2..2 + rows as u64).collect();
                prop_assert_eq!(r.line_numbers, lines);
            } else {
                // Evaluation drops the rows training dropped, and reads the same features.
                let mut again = SchemaReadOptions::default().target("y").drop_missing(true);
                if let Some(classes) = t.data.class_names() {
                    again = again.class_names(classes.to_vec());
                }
                let r = parse_by_schema(shuffled.as_bytes(), "p", &t.schema, &again).unwrap();
                prop_assert_eq!(r.dropped_rows, t.dropped_rows);
                prop_assert_eq!(bits(&r.features.to_vec()), bits(&t.data.features().to_vec()));
                prop_assert_eq!(r.targets.as_ref(), Some(t.data.targets()));
                if let Ok(r) = read {
                    // Prediction drops no row.
                    prop_assert_eq!(r.line_numbers.len(), rows);
                }
            }
        }
    }
}
