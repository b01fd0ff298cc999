//! The ratings and items readers on small hand-written files (exact values and every
//! error case), and with `NN_DATA_DIR` on MovieLens.

use std::io::Write;
use std::path::{Path, PathBuf};

use nn_recommend::data::{
    item_counts, items_by_user, read_items, read_ratings, Duplicates, Feedback, IdMap, Interaction, ItemFeature,
    ItemFeatureSpec, ItemTokenizer, ItemsOptions, RatingsOptions, TextFeatures,
};
use nn_recommend::model::{Preset, RecSpec, Recommender, SPEC_FILE};
use nn_recommend::split::{split, Split};
use nn_recommend::RecError;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn ix(user: usize, item: usize, value: f32, timestamp: i64) -> Interaction {
    Interaction { user, item, value, timestamp: Some(timestamp) }
}

/// Reads `text` as a ratings file and returns the error.
fn ratings_err(text: &str, opts: &RatingsOptions) -> (RecError, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "r.csv", text);
    (read_ratings(&path, opts).unwrap_err(), path)
}

/// Asserts a parse error at `row`, `column` whose message contains `needle`.
fn assert_parse(e: &RecError, path: &Path, row: usize, column: Option<&str>, needle: &str) {
    match e {
        RecError::Parse { path: p, row: r, column: c, message } => {
            assert_eq!(p, path, "{e}");
            assert_eq!(*r, row, "{e}");
            assert_eq!(c.as_deref(), column, "{e}");
            assert!(message.contains(needle), "{e}: expected {needle:?}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn explicit_ratings_exact() {
    let dir = tempfile::tempdir().unwrap();
    // Columns in another order than MovieLens's, an extra column, quotes, spaces.
    let path = write(
        &dir,
        "r.csv",
        "timestamp,extra,movieId,userId,rating\n\
         100,x,m1,u1,4.5\n\
         90, y ,m2,u2,-3\n\
         \n\
         110,z,\"m1\",u2, 12.25\n",
    );
    let r = read_ratings(&path, &RatingsOptions::default()).unwrap();
    assert_eq!(r.users.ids(), ["u1", "u2"]);
    assert_eq!(r.items.ids(), ["m1", "m2"]);
    // No scale is assumed: -3 and 12.25 are kept as they are.
    assert_eq!(r.interactions, vec![ix(0, 0, 4.5, 100), ix(1, 1, -3.0, 90), ix(1, 0, 12.25, 110)]);
    assert_eq!(r.feedback, Feedback::Explicit);
    assert_eq!(r.duplicates, 0);
    assert_eq!(r.path, path);
}

#[test]
fn gzip_detected_by_magic_bytes() {
    let text = "userId,movieId,rating,timestamp\n1,10,3.0,5\n2,10,4.0,6\n1,20,5.0,7\n";
    let dir = tempfile::tempdir().unwrap();
    let plain = write(&dir, "plain.csv", text);
    // Named .csv, compressed all the same: the magic bytes decide.
    let gz = dir.path().join("ratings.csv");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
    let a = read_ratings(&plain, &RatingsOptions::default()).unwrap();
    let b = read_ratings(&gz, &RatingsOptions::default()).unwrap();
    assert_eq!(b.interactions, vec![ix(0, 0, 3.0, 5), ix(1, 0, 4.0, 6), ix(0, 1, 5.0, 7)]);
    assert_eq!(a.interactions, b.interactions);
    assert_eq!((a.users, a.items), (b.users, b.items));

    // A truncated gzip stream is an I/O error naming the file.
    let bytes = std::fs::read(&gz).unwrap();
    let cut = write(&dir, "cut.csv.gz", "");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_ratings(&cut, &RatingsOptions::default()).unwrap_err();
    assert!(matches!(&e, RecError::Io { path, .. } if *path == cut), "{e:?}");
    assert!(e.to_string().contains("gzip"), "{e}");
}

#[test]
fn missing_file_is_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.csv");
    let e = read_ratings(&path, &RatingsOptions::default()).unwrap_err();
    assert!(matches!(&e, RecError::Io { path: p, .. } if *p == path), "{e:?}");
}

#[test]
fn empty_and_header_only_files() {
    let (e, path) = ratings_err("", &RatingsOptions::default());
    assert_parse(&e, &path, 0, None, "empty file");
    let (e, path) = ratings_err("\n\n", &RatingsOptions::default());
    assert_parse(&e, &path, 0, None, "empty file");
    let (e, path) = ratings_err("userId,movieId,rating,timestamp\n", &RatingsOptions::default());
    assert_parse(&e, &path, 1, None, "no data rows");
    assert_eq!(e.to_string(), format!("{}: row 1: no data rows after the header", path.display()));
}

#[test]
fn missing_column_names_it_and_lists_the_header() {
    let (e, path) = ratings_err("userId,movieId,timestamp\n1,2,3\n", &RatingsOptions::default());
    assert_parse(&e, &path, 0, Some("rating"), "(userId,movieId,timestamp)");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: header, column \"rating\": no such column in the header (userId,movieId,timestamp)",
            path.display()
        )
    );
    // A file separated by semicolons: one header cell, and the error says why.
    let (e, _) = ratings_err("userId;movieId;rating;timestamp\n1;2;3;4\n", &RatingsOptions::default());
    assert!(e.to_string().ends_with("the file looks separated by ';': it must be comma-separated"), "{e}");
    let (e, path) = ratings_err("user,movieId,rating,timestamp\n1,2,3,4\n", &RatingsOptions::default());
    assert_parse(&e, &path, 0, Some("userId"), "(user,movieId,rating,timestamp)");
    // A file without timestamps reads with `timestamp_column: None`.
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "r.csv", "userId,movieId,rating\n1,2,3\n");
    let r = read_ratings(&p, &RatingsOptions { timestamp_column: None, ..Default::default() }).unwrap();
    assert_eq!(r.interactions, vec![Interaction { user: 0, item: 0, value: 3.0, timestamp: None }]);
}

#[test]
fn bad_cells_name_row_and_column() {
    let opts = RatingsOptions::default();
    let head = "userId,movieId,rating,timestamp\n1,2,3.5,10\n";
    let (e, path) = ratings_err(&format!("{head}1,3,,11\n"), &opts);
    assert_parse(&e, &path, 2, Some("rating"), "missing rating");
    assert_eq!(e.to_string(), format!("{}: row 2, column \"rating\": missing rating", path.display()));
    let (e, path) = ratings_err(&format!("{head}1,3,good,11\n"), &opts);
    assert_parse(&e, &path, 2, Some("rating"), "expected a number, got \"good\"");
    let (e, path) = ratings_err(&format!("{head}1,3,4,11\n1,4,nan,12\n"), &opts);
    assert_parse(&e, &path, 3, Some("rating"), "expected a finite number, got \"nan\"");
    let (e, path) = ratings_err(&format!("{head}1,3,inf,11\n"), &opts);
    assert_parse(&e, &path, 2, Some("rating"), "finite");
    // Beyond f32's range rounds to infinity: also refused.
    let (e, path) = ratings_err(&format!("{head}1,3,1e39,11\n"), &opts);
    assert_parse(&e, &path, 2, Some("rating"), "finite");
    let (e, path) = ratings_err(&format!("{head},3,4,11\n"), &opts);
    assert_parse(&e, &path, 2, Some("userId"), "empty id");
    let (e, path) = ratings_err(&format!("{head}1, ,4,11\n"), &opts);
    assert_parse(&e, &path, 2, Some("movieId"), "empty id");
    let (e, path) = ratings_err(&format!("{head}1,3,4,yesterday\n"), &opts);
    assert_parse(&e, &path, 2, Some("timestamp"), "whole number");
    let (e, path) = ratings_err(&format!("{head}1,3,4,1.5\n"), &opts);
    assert_parse(&e, &path, 2, Some("timestamp"), "got \"1.5\"");
    let (e, path) = ratings_err(&format!("{head}1,3,4,\n"), &opts);
    assert_parse(&e, &path, 2, Some("timestamp"), "missing timestamp");
    let (e, path) = ratings_err(&format!("{head}1,3,4\n"), &opts);
    assert_parse(&e, &path, 2, None, "expected 4 fields (as in the header), got 3");
}

const DUPLICATES: &str = "userId,movieId,rating,timestamp\n\
    1,10,1.0,50\n\
    2,10,2.0,10\n\
    1,10,3.0,40\n\
    1,20,4.0,10\n\
    1,10,5.0,50\n";

#[test]
fn duplicates_keep_last_by_timestamp_then_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "r.csv", DUPLICATES);
    let r = read_ratings(&path, &RatingsOptions::default()).unwrap();
    // Rows 1, 3 and 5 are the same pair; row 3 is older (40 < 50), rows 1 and 5 tie
    // at 50 and the later row wins, at its own place in the file.
    assert_eq!(r.duplicates, 2);
    assert_eq!(r.users.ids(), ["2", "1"]);
    assert_eq!(r.items.ids(), ["10", "20"]);
    assert_eq!(r.interactions, vec![ix(0, 0, 2.0, 10), ix(1, 1, 4.0, 10), ix(1, 0, 5.0, 50)]);

    // An earlier row with a later timestamp beats a later row.
    let path = write(&dir, "r2.csv", "userId,movieId,rating,timestamp\n1,10,1.0,99\n1,10,3.0,40\n");
    let r = read_ratings(&path, &RatingsOptions::default()).unwrap();
    assert_eq!((r.duplicates, r.interactions), (1, vec![ix(0, 0, 1.0, 99)]));

    // Without timestamps the later row wins.
    let path = write(&dir, "r3.csv", "userId,movieId,rating\n1,10,1.0\n1,10,3.0\n");
    let opts = RatingsOptions { timestamp_column: None, ..Default::default() };
    let r = read_ratings(&path, &opts).unwrap();
    assert_eq!(r.interactions, vec![Interaction { user: 0, item: 0, value: 3.0, timestamp: None }]);
}

#[test]
fn duplicates_mean_and_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "r.csv", DUPLICATES);
    let r = read_ratings(&path, &RatingsOptions { duplicates: Duplicates::Mean, ..Default::default() }).unwrap();
    assert_eq!(r.duplicates, 2);
    // (1 + 3 + 5) / 3 = 3, at the last row's place with its (latest) timestamp.
    assert_eq!(r.interactions, vec![ix(0, 0, 2.0, 10), ix(1, 1, 4.0, 10), ix(1, 0, 3.0, 50)]);

    let e = read_ratings(&path, &RatingsOptions { duplicates: Duplicates::Error, ..Default::default() }).unwrap_err();
    assert_parse(&e, &path, 3, None, "user \"1\" and item \"10\" repeat row 1");
}

#[test]
fn implicit_feedback_and_threshold() {
    let dir = tempfile::tempdir().unwrap();
    // No rating column at all: every row is a positive of value 1.
    let path = write(&dir, "clicks.csv", "user,item\na,x\nb,y\na,y\n");
    let opts = RatingsOptions {
        user_column: "user".into(),
        item_column: "item".into(),
        timestamp_column: None,
        feedback: Feedback::Implicit,
        ..Default::default()
    };
    let r = read_ratings(&path, &opts).unwrap();
    assert_eq!(r.feedback, Feedback::Implicit);
    let pairs: Vec<(usize, usize, f32)> = r.interactions.iter().map(|x| (x.user, x.item, x.value)).collect();
    assert_eq!(pairs, vec![(0, 0, 1.0), (1, 1, 1.0), (0, 1, 1.0)]);

    // Threshold 3.5: rows below are dropped before the ids are numbered, so user "2",
    // who only rated low, is not a user; the rest become 1.0.
    let text = "userId,movieId,rating,timestamp\n2,7,1.0,1\n1,8,4.0,2\n1,7,3.5,3\n1,9,3.0,4\n3,9,5,5\n";
    let path = write(&dir, "r.csv", text);
    let opts = RatingsOptions { feedback: Feedback::Implicit, implicit_threshold: Some(3.5), ..Default::default() };
    let r = read_ratings(&path, &opts).unwrap();
    assert_eq!(r.users.ids(), ["1", "3"]);
    assert_eq!(r.items.ids(), ["8", "7", "9"]);
    assert_eq!(r.interactions, vec![ix(0, 0, 1.0, 2), ix(0, 1, 1.0, 3), ix(1, 2, 1.0, 5)]);

    // The user's latest rating decides: 5 then 2 is not a positive.
    let path = write(&dir, "r2.csv", "userId,movieId,rating,timestamp\n1,7,5,1\n1,8,4,1\n1,7,2,9\n");
    let r = read_ratings(&path, &opts).unwrap();
    assert_eq!((r.duplicates, r.interactions), (1, vec![ix(0, 0, 1.0, 1)]));
    assert_eq!(r.items.ids(), ["8"]);

    // Everything below the threshold; a threshold with explicit feedback.
    let path = write(&dir, "r3.csv", "userId,movieId,rating,timestamp\n1,7,1,1\n");
    assert!(
        matches!(read_ratings(&path, &opts), Err(RecError::Config(m)) if m.contains("below the implicit threshold 3.5"))
    );
    let explicit = RatingsOptions { implicit_threshold: Some(3.0), ..Default::default() };
    assert!(matches!(read_ratings(&path, &explicit), Err(RecError::Config(m)) if m.contains("implicit feedback")));
    // A threshold needs the rating column, and reads it strictly.
    let path = write(&dir, "r4.csv", "userId,movieId,rating,timestamp\n1,7,x,1\n");
    assert_parse(&read_ratings(&path, &opts).unwrap_err(), &path, 1, Some("rating"), "got \"x\"");
}

#[test]
fn feedback_and_duplicates_names() {
    assert_eq!("implicit".parse::<Feedback>().unwrap(), Feedback::Implicit);
    assert_eq!(Feedback::Explicit.to_string(), "explicit");
    assert_eq!("mean".parse::<Duplicates>().unwrap(), Duplicates::Mean);
    assert_eq!(Duplicates::default(), Duplicates::KeepLast);
    assert!("sometimes".parse::<Duplicates>().unwrap_err().to_string().contains("last, mean or error"));
    assert_eq!(serde_json::to_string(&Feedback::Implicit).unwrap(), "\"implicit\"");
    assert_eq!(serde_json::to_string(&Duplicates::KeepLast).unwrap(), "\"keep-last\"");
}

#[test]
fn id_map_indices_and_serde_round_trip() {
    let mut m = IdMap::new();
    assert!(m.is_empty());
    assert_eq!(m.insert("b"), 0);
    assert_eq!(m.insert("a"), 1);
    assert_eq!(m.insert("b"), 0);
    assert_eq!(m.insert("c"), 2);
    assert_eq!((m.len(), m.get("a"), m.get("z"), m.id(2), m.id(3)), (3, Some(1), None, Some("c"), None));
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(json, r#"["b","a","c"]"#);
    let back: IdMap = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.get("c"), Some(2));
    let e = serde_json::from_str::<IdMap>(r#"["b","a","b"]"#).unwrap_err();
    assert!(e.to_string().contains("\"b\" appears twice"), "{e}");
}

#[test]
fn items_by_user_and_counts() {
    let train = [ix(1, 3, 1.0, 0), ix(0, 2, 1.0, 0), ix(1, 0, 1.0, 0), ix(1, 3, 1.0, 0)];
    assert_eq!(items_by_user(&train, 3), vec![vec![2], vec![0, 3], vec![]]);
    assert_eq!(item_counts(&train, 5), vec![1, 0, 1, 2, 0]);
}

const MOVIES: &str = "movieId,title,year,genres,director\n\
    10,Love Actually,2003,Comedy|Romance,Curtis\n\
    20,Love and Death,1975,Comedy,Allen\n\
    30,Death Proof,,Action|Thriller,Tarantino\n\
    40,The Thriller,1995,Thriller,X\n";

/// The word features of text columns ([`TextFeatures::Words`], the kind before the
/// text pipeline).
fn words() -> ItemsOptions {
    ItemsOptions { text_features: TextFeatures::Words, ..Default::default() }
}

#[test]
fn item_features_hand_computed() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "movies.csv", MOVIES);
    // The ratings knew items 20, 99 (no row in the file) and 10; 30 and 40 are
    // catalogue items without ratings, appended in file order.
    let mut items = IdMap::new();
    for id in ["20", "99", "10"] {
        items.insert(id);
    }
    let t = read_items(&path, &mut items, &words()).unwrap();
    assert_eq!(items.ids(), ["20", "99", "10", "30", "40"]);
    assert_eq!(t.num_items(), 5);
    // Title words in at least 2 items: "death" (2) and "love" (2), ties by the word.
    // Years 2003, 1975, 1995: mean 1991, population variance (144 + 256 + 16) / 3.
    let std = (416.0f64 / 3.0).sqrt();
    let z = |year: f64| ((year - 1991.0) / std) as f32;
    assert_eq!(
        t.spec.names(),
        ["title:death", "title:love", "year", "genres=Action", "genres=Comedy", "genres=Romance", "genres=Thriller"]
    );
    assert_eq!(t.width(), 7);
    assert_eq!(t.spec.ignored, ["director"]);
    match &t.spec.columns[1] {
        ItemFeature::Numeric { column, mean, std: s } => {
            assert_eq!(column, "year");
            assert!((mean - 1991.0).abs() < 1e-12 && (s - std).abs() < 1e-12, "{mean} {s}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.row(0), [1.0, 1.0, z(1975.0), 0.0, 1.0, 0.0, 0.0]);
    assert_eq!(t.row(1), [0.0; 7]);
    assert_eq!(t.row(2), [0.0, 1.0, z(2003.0), 0.0, 1.0, 1.0, 0.0]);
    // A missing year is the mean: 0 after standardising.
    assert_eq!(t.row(3), [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    assert_eq!(t.row(4), [0.0, 0.0, z(1995.0), 0.0, 0.0, 0.0, 1.0]);
    assert_eq!(t.features.len(), 5 * 7);
    assert_eq!(t.has_features, [true, false, true, true, true]);
    assert_eq!(t.titles[0].as_deref(), Some("Love and Death"));
    assert_eq!(t.titles[1], None);

    // The spec is data: it round-trips through JSON (a word block keeps its "text"
    // tag, as in models saved before the text pipeline) and encodes a new row the
    // same way.
    let json = serde_json::to_string(&t.spec).unwrap();
    assert!(json.contains(r#"{"kind":"text","column":"title","words":["death","love"]}"#), "{json}");
    let spec: nn_recommend::ItemFeatureSpec = serde_json::from_str(&serde_json::to_string(&t.spec).unwrap()).unwrap();
    assert_eq!(spec, t.spec);
    let row = spec
        .encode(|c| match c {
            "title" => Some("Death of Love!"),
            "year" => Some("1991"),
            "genres" => Some("Romance|Western"),
            _ => None,
        })
        .unwrap();
    assert_eq!(row, [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let e = spec.encode(|c| if c == "year" { Some("soon") } else { None }).unwrap_err();
    assert!(e.to_string().contains("\"year\": expected a finite number, got \"soon\""), "{e}");
}

#[test]
fn item_vocabulary_limits_and_explicit_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "movies.csv", MOVIES);
    // One word only: "death" and "love" tie at 2, the word breaks the tie.
    let opts = ItemsOptions { max_words: 1, ..words() };
    let t = read_items(&path, &mut IdMap::new(), &opts).unwrap();
    assert_eq!(t.spec.names()[..2], ["title:death".to_string(), "year".to_string()]);
    // Every word of one item: 7 distinct words, most frequent first.
    let opts = ItemsOptions { min_word_count: 1, ..words() };
    let t = read_items(&path, &mut IdMap::new(), &opts).unwrap();
    let ItemFeature::Text { words, .. } = &t.spec.columns[0] else { panic!("{:?}", t.spec.columns) };
    assert_eq!(words, &["death", "love", "actually", "and", "proof", "the", "thriller"]);

    // Explicit lists: director as a (single-valued) category, no text, no numbers.
    let opts = ItemsOptions {
        multi_valued: Some(vec!["director".into(), "genres".into()]),
        text: Some(vec![]),
        numeric: Some(vec![]),
        ..Default::default()
    };
    let mut items = IdMap::new();
    let t = read_items(&path, &mut items, &opts).unwrap();
    assert_eq!(items.ids(), ["10", "20", "30", "40"]);
    assert_eq!(t.spec.ignored, ["title", "year"]);
    assert_eq!(t.spec.names()[..4], ["genres=Action", "genres=Comedy", "genres=Romance", "genres=Thriller"]);
    assert_eq!(t.spec.names()[4..], ["director=Allen", "director=Curtis", "director=Tarantino", "director=X"]);
    assert_eq!(t.row(1), [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    assert_eq!(t.titles[2].as_deref(), Some("Death Proof"));

    let both = ItemsOptions { numeric: Some(vec!["genres".into()]), ..opts.clone() };
    let e = read_items(&path, &mut IdMap::new(), &both).unwrap_err();
    assert!(matches!(&e, RecError::Config(m) if m.contains("\"genres\" is listed as both")), "{e}");
    let id = ItemsOptions { numeric: Some(vec!["movieId".into()]), ..Default::default() };
    assert!(matches!(read_items(&path, &mut IdMap::new(), &id), Err(RecError::Config(_))));
    // A text cell in a column declared numeric names its row and column.
    let numeric = ItemsOptions { numeric: Some(vec!["director".into()]), ..Default::default() };
    let e = read_items(&path, &mut IdMap::new(), &numeric).unwrap_err();
    assert_parse(&e, &path, 1, Some("director"), "got \"Curtis\"");
    let absent = ItemsOptions { multi_valued: Some(vec!["tags".into()]), ..Default::default() };
    let e = read_items(&path, &mut IdMap::new(), &absent).unwrap_err();
    assert_parse(&e, &path, 0, Some("tags"), "(movieId,title,year,genres,director)");
}

#[test]
fn item_file_errors_name_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ItemsOptions::default();
    let path = write(&dir, "a.csv", "movieId,title,genres\n1,A,x|y\n2,B\n");
    assert_parse(&read_items(&path, &mut IdMap::new(), &opts).unwrap_err(), &path, 2, None, "expected 3 fields");
    let path = write(&dir, "b.csv", "movieId,title,genres\n1,A,x\n2,B,y\n1,C,z\n");
    let e = read_items(&path, &mut IdMap::new(), &opts).unwrap_err();
    assert_parse(&e, &path, 3, Some("movieId"), "item \"1\" already has a row (row 1)");
    let path = write(&dir, "c.csv", "movieId,title,genres\n,A,x\n");
    assert_parse(&read_items(&path, &mut IdMap::new(), &opts).unwrap_err(), &path, 1, Some("movieId"), "empty id");
    let path = write(&dir, "d.csv", "movieId,title,genres\n");
    assert_parse(&read_items(&path, &mut IdMap::new(), &opts).unwrap_err(), &path, 1, None, "no data rows");
    let path = write(&dir, "e.csv", "");
    assert_parse(&read_items(&path, &mut IdMap::new(), &opts).unwrap_err(), &path, 0, None, "empty file");
    let path = write(&dir, "f.csv", "id,genres\n1,x\n");
    assert_parse(&read_items(&path, &mut IdMap::new(), &opts).unwrap_err(), &path, 0, Some("movieId"), "(id,genres)");
}

/// The tokenizer of a spec's first block, which must be a token block.
fn title_tokens(spec: &ItemFeatureSpec) -> (&ItemTokenizer, bool) {
    match &spec.columns[0] {
        ItemFeature::Tokens { column, lowercase, tokenizer } => {
            assert_eq!(column, "title");
            (tokenizer, *lowercase)
        }
        other => panic!("expected a token block, got {other:?}"),
    }
}

/// The multi-hot of `text`'s token ids, computed from the tokenizer's own encoding:
/// position `id − 2` for every id.
fn multi_hot(tokenizer: &ItemTokenizer, text: &str) -> Vec<f32> {
    let mut out = vec![0.0; tokenizer.width()];
    for id in tokenizer.tokenizer().encode(text).unwrap() {
        out[id as usize - 2] = 1.0;
    }
    out
}

#[test]
fn item_title_tokens_match_the_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "movies.csv", MOVIES);
    let mut items = IdMap::new();
    items.insert("20");
    let t = read_items(&path, &mut items, &ItemsOptions::default()).unwrap();
    assert_eq!(items.ids(), ["20", "10", "30", "40"]);
    let (tok, lowercase) = title_tokens(&t.spec);
    assert!(lowercase);
    // The tokenizer is the one nn-text trains on the lower-cased titles (training is
    // deterministic, so the same JSON).
    let lower = ["love actually", "love and death", "death proof", "the thriller"];
    let expected = nn_text::TextTokenizer::train_bpe(lower.iter().copied(), 1000).unwrap();
    assert_eq!(tok.json(), expected.to_json().unwrap());
    // The rows' order does not matter: the file upside down trains the same tokenizer.
    let lines: Vec<&str> = MOVIES.lines().collect();
    let reversed = std::iter::once(lines[0]).chain(lines[1..].iter().rev().copied()).collect::<Vec<_>>().join("\n");
    let upside_down = read_items(&write(&dir, "reversed.csv", &reversed), &mut IdMap::new(), &ItemsOptions::default());
    assert_eq!(upside_down.unwrap().spec, t.spec);
    // Four titles allow only a few merges: far below the 1,000 asked for.
    let vocab = tok.tokenizer().vocab_size();
    assert!(vocab > 258 && vocab < 300, "{vocab}");
    let width = vocab - 2;
    assert_eq!(tok.width(), width);
    assert_eq!(t.width(), width + 1 + 4);
    // Id 2 is the first byte character in character order ('!'); the year follows
    // the title block.
    let names = t.spec.names();
    assert_eq!(names[0], "title:!");
    assert_eq!(names[width..], ["year", "genres=Action", "genres=Comedy", "genres=Romance", "genres=Thriller"]);
    // Every row's title block is the multi-hot of the tokenizer's own encoding.
    for (item, title) in ["love and death", "love actually", "death proof", "the thriller"].iter().enumerate() {
        let row = &t.row(item)[..width];
        assert_eq!(row, multi_hot(tok, title), "{title}");
        let ones = row.iter().filter(|&&x| x == 1.0).count();
        let ids: std::collections::BTreeSet<u32> = tok.tokenizer().encode(title).unwrap().into_iter().collect();
        assert_eq!(ones, ids.len(), "{title}");
        assert!(ids.iter().all(|&id| id >= 2), "no special token in {title}");
    }
    // "love" starts two titles, so its pairs are seen twice and merge into one token,
    // set for those two items only.
    let love = tok.tokenizer().encode("love").unwrap();
    assert_eq!(love.len(), 1, "{love:?}");
    assert_eq!(tok.tokenizer().token_to_id("love"), Some(love[0]));
    assert_eq!(names[love[0] as usize - 2], "title:love");
    let column: Vec<f32> = (0..4).map(|i| t.row(i)[love[0] as usize - 2]).collect();
    assert_eq!(column, [1.0, 1.0, 0.0, 0.0]);
    // The spec lower-cases a new title before encoding.
    let encode = |title: &'static str| t.spec.encode(move |c| (c == "title").then_some(title)).unwrap();
    let title_only: Vec<f32> = t.row(0)[..width].iter().chain(&[0.0; 5]).copied().collect();
    assert_eq!(encode("LOVE and Death"), title_only);
    assert_eq!(encode("  Love and Death "), title_only);
    assert_ne!(encode("Love Death"), title_only);
}

#[test]
fn item_title_tokens_empty_cells_case_and_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "m.csv", "movieId,title,genres\n1,Love Love,x|y\n2,,x\n3,love,y\n");
    let t = read_items(&path, &mut IdMap::new(), &ItemsOptions::default()).unwrap();
    let (tok, _) = title_tokens(&t.spec);
    let width = tok.width();
    // An empty title: a zero block (the genres still set), no display title.
    assert_eq!(t.row(1)[..width], vec![0.0; width]);
    assert_eq!(t.row(1)[width..], [1.0, 0.0]);
    assert_eq!(t.titles[1], None);
    let none = t.spec.encode(|c| (c == "genres").then_some("y")).unwrap();
    assert_eq!(none[..width], vec![0.0; width]);
    assert_eq!(none[width..], [0.0, 1.0]);
    // A repeated token still counts 1: "love love" is the multi-hot of its ids.
    assert_eq!(t.row(0)[..width], multi_hot(tok, "love love"));
    assert!(t.row(0).iter().all(|&x| x == 0.0 || x == 1.0));

    // Without lower-casing the case is kept: "Love" and "love" encode differently.
    let opts = ItemsOptions { text_lowercase: false, ..Default::default() };
    let t = read_items(&path, &mut IdMap::new(), &opts).unwrap();
    let (tok, lowercase) = title_tokens(&t.spec);
    assert!(!lowercase);
    assert_eq!(t.row(0)[..tok.width()], multi_hot(tok, "Love Love"));
    assert_ne!(tok.tokenizer().encode("Love").unwrap(), tok.tokenizer().encode("love").unwrap());

    // A title column whose cells are all empty: the byte tokenizer, a zero block.
    let path = write(&dir, "e.csv", "movieId,title,genres\n1,,x|y\n2, ,y\n");
    let t = read_items(&path, &mut IdMap::new(), &ItemsOptions::default()).unwrap();
    let (tok, _) = title_tokens(&t.spec);
    assert_eq!(tok.tokenizer().kind(), nn_text::TokenizerKind::Bytes);
    assert_eq!(t.width(), 256 + 2);
    assert_eq!(t.row(0)[..256], [0.0; 256]);
    assert_eq!(t.row(1)[256..], [0.0, 1.0]);

    // The vocabulary must hold the specials and the bytes.
    let small = ItemsOptions { text_vocab: 257, ..Default::default() };
    let e = read_items(&path, &mut IdMap::new(), &small).unwrap_err();
    assert!(matches!(&e, RecError::Config(m) if m.contains("\"title\": text_vocab 257 must be in 258..=")), "{e}");

    // The option's names, and a serialised ItemsOptions without the new fields.
    assert_eq!("words".parse::<TextFeatures>().unwrap(), TextFeatures::Words);
    assert_eq!(TextFeatures::Tokens.to_string(), "tokens");
    assert!("bpe".parse::<TextFeatures>().is_err());
    let old: ItemsOptions = serde_json::from_str(r#"{"id_column":"itemId","max_words":7}"#).unwrap();
    assert_eq!(old, ItemsOptions { id_column: "itemId".into(), max_words: 7, ..Default::default() });
}

#[test]
fn item_title_tokens_survive_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "movies.csv", MOVIES);
    let mut items = IdMap::new();
    let t = read_items(&path, &mut items, &ItemsOptions::default()).unwrap();
    let (tok, _) = title_tokens(&t.spec);
    let width = tok.width();
    let new_row = |c: &str| match c {
        "title" => Some("Death of Love!"),
        "year" => Some("1991"),
        "genres" => Some("Romance|Western"),
        _ => None,
    };
    let row = t.spec.encode(new_row).unwrap();
    let mut expected = multi_hot(tok, "death of love!");
    expected.extend([0.0, 0.0, 0.0, 1.0, 0.0]);
    assert_eq!(row, expected);

    // Through the spec's JSON: the tokenizer is its tokenizer.json text.
    let json = serde_json::to_string(&t.spec).unwrap();
    let spec: ItemFeatureSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(spec, t.spec);
    assert_eq!(title_tokens(&spec).0.json(), tok.tokenizer().to_json().unwrap());
    assert_eq!(spec.encode(new_row).unwrap(), row);

    // Through a saved two-tower recommender.
    let mut users = IdMap::new();
    for u in ["a", "b"] {
        users.insert(u);
    }
    let rec_spec = RecSpec::preset(Preset::TwoTower, 4, &[8], Some(t.width())).unwrap();
    let rec = Recommender::new(rec_spec, users, items.clone(), Some(t.clone()), 3).unwrap();
    let out = dir.path().join("rec");
    rec.save(&out).unwrap();
    let loaded = Recommender::load(&out).unwrap();
    let lt = loaded.item_table().unwrap();
    assert_eq!(lt, &t);
    assert_eq!(lt.spec.encode(new_row).unwrap(), row);
    for i in 0..items.len() {
        assert_eq!(
            lt.spec.encode(|c| (c == "title").then_some(t.titles[i].as_deref().unwrap())).unwrap()[..width],
            t.row(i)[..width]
        );
    }
}

#[test]
fn malformed_saved_tokenizer_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "movies.csv", MOVIES);
    let mut items = IdMap::new();
    let t = read_items(&path, &mut items, &ItemsOptions::default()).unwrap();
    let good = title_tokens(&t.spec).0.json().to_owned();

    // Not JSON at all.
    let e = ItemTokenizer::from_json("{\"model\": ").unwrap_err();
    assert!(matches!(&e, RecError::Config(m) if m.starts_with("item text tokenizer: ")), "{e}");
    // Valid JSON of a pipeline nn-text refuses: a normalizer breaks the round trip.
    let mut value: serde_json::Value = serde_json::from_str(&good).unwrap();
    value["normalizer"] = serde_json::json!({"type": "Lowercase"});
    let e = ItemTokenizer::from_json(&value.to_string()).unwrap_err();
    assert!(matches!(&e, RecError::Config(m) if m.contains("normalizer")), "{e}");
    // The untouched text parses back to the same tokenizer.
    assert_eq!(ItemTokenizer::from_json(&good).unwrap().tokenizer().vocab_size(), title_tokens(&t.spec).0.width() + 2);

    // Inside a spec, the error names the problem when the spec is read.
    let mut spec: serde_json::Value = serde_json::to_value(&t.spec).unwrap();
    spec["columns"][0]["tokenizer"] = serde_json::json!("{\"version\": \"1.0\", \"model\": 5}");
    let e = serde_json::from_value::<ItemFeatureSpec>(spec).unwrap_err();
    assert!(e.to_string().contains("item text tokenizer: "), "{e}");

    // Inside a saved model: a format error naming recommender.json.
    let mut users = IdMap::new();
    users.insert("a");
    let rec_spec = RecSpec::preset(Preset::TwoTower, 4, &[8], Some(t.width())).unwrap();
    let out = dir.path().join("rec");
    Recommender::new(rec_spec, users, items, Some(t), 3).unwrap().save(&out).unwrap();
    let spec_path = out.join(SPEC_FILE);
    let mut saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&spec_path).unwrap()).unwrap();
    saved["item_features"]["spec"]["columns"][0]["tokenizer"] = serde_json::json!("not a tokenizer");
    std::fs::write(&spec_path, saved.to_string()).unwrap();
    match Recommender::load(&out) {
        Err(RecError::Format { path, message }) => {
            assert_eq!(path, spec_path);
            assert!(message.contains("item text tokenizer: "), "{message}");
        }
        Err(other) => panic!("expected a format error, got {other}"),
        Ok(_) => panic!("a malformed tokenizer loaded"),
    }
}

fn movielens() -> Option<PathBuf> {
    std::env::var_os("NN_DATA_DIR").map(|d| PathBuf::from(d).join("movielens"))
}

#[test]
#[ignore = "needs MovieLens: set NN_DATA_DIR"]
fn movielens_ratings_and_movies() {
    let dir = movielens().expect("NN_DATA_DIR is not set");
    let r = read_ratings(&dir.join("ratings.csv.gz"), &RatingsOptions::default()).unwrap();
    assert_eq!(r.interactions.len(), 100_004);
    assert_eq!((r.users.len(), r.items.len(), r.duplicates), (671, 9_066, 0));
    assert_eq!((r.users.id(0), r.items.id(0)), (Some("383"), Some("21")));
    assert_eq!(r.interactions[0], ix(0, 0, 3.0, 789_652_009));
    let last = r.interactions[100_003];
    assert_eq!((r.users.id(last.user), r.items.id(last.item)), (Some("251"), Some("1704")));
    assert_eq!((last.value, last.timestamp), (4.5, Some(1_476_640_644)));
    assert!(r.interactions.windows(2).all(|w| w[0].timestamp <= w[1].timestamp), "sorted by time");
    let min = r.interactions.iter().map(|x| x.value).fold(f32::INFINITY, f32::min);
    let max = r.interactions.iter().map(|x| x.value).fold(f32::NEG_INFINITY, f32::max);
    assert_eq!((min, max), (0.5, 5.0));
    let mean = r.interactions.iter().map(|x| f64::from(x.value)).sum::<f64>() / 100_004.0;
    assert!((mean - 3.543_608).abs() < 1e-6, "{mean}");

    // Every movie of movies.csv is rated at least once: the file adds no cold item.
    let mut items = r.items.clone();
    let t = read_items(&dir.join("movies.csv"), &mut items, &words()).unwrap();
    assert_eq!(items.len(), 9_066);
    assert_eq!(items, r.items);
    assert!(t.has_features.iter().all(|&h| h));
    let kinds: Vec<(&str, usize)> = t
        .spec
        .columns
        .iter()
        .map(|c| match c {
            ItemFeature::MultiValued { column, values } => (column.as_str(), values.len()),
            ItemFeature::Text { column, words } => (column.as_str(), words.len()),
            ItemFeature::Tokens { column, tokenizer, .. } => (column.as_str(), tokenizer.width()),
            ItemFeature::Numeric { column, .. } => (column.as_str(), 1),
        })
        .collect();
    // 3,076 title words occur in 2 or more movies; the 1,000 most frequent are kept.
    assert_eq!(kinds, [("title", 1000), ("year", 1), ("genres", 20)]);
    assert!(t.spec.ignored.is_empty());
    let names = t.spec.names();
    assert_eq!(names[..5], ["title:the", "title:of", "title:a", "title:s", "title:and"]);
    assert_eq!(names[1001], "genres=(no genres listed)");
    assert_eq!(names[1001 + 19], "genres=Western");
    // Genre counts: Drama 4,328 and Comedy 3,307 movies.
    let column = |name: &str| {
        let c = names.iter().position(|n| n == name).unwrap();
        (0..t.num_items()).map(|i| t.row(i)[c]).sum::<f32>()
    };
    assert_eq!(
        (column("genres=Drama"), column("genres=Comedy"), column("genres=(no genres listed)")),
        (4328.0, 3307.0, 17.0)
    );
    // 9,061 years (5 missing): mean 1992.008, population std 19.251.
    let ItemFeature::Numeric { mean, std, .. } = &t.spec.columns[1] else { panic!() };
    assert!((mean - 1_992.008_498).abs() < 1e-5 && (std - 19.251_013).abs() < 1e-5, "{mean} {std}");
    let toy = r.items.get("1").unwrap();
    assert_eq!(t.titles[toy].as_deref(), Some("Toy Story"));
    assert_eq!(t.row(toy)[1000], ((1995.0 - mean) / std) as f32);

    // The default: the titles through a BPE tokenizer of 1,000 tokens (998 features).
    let tokens = read_items(&dir.join("movies.csv"), &mut items, &ItemsOptions::default()).unwrap();
    let (tok, _) = title_tokens(&tokens.spec);
    println!(
        "BPE vocabulary {}, \"toy story\" = {:?}",
        tok.tokenizer().vocab_size(),
        tok.tokenizer().encode("toy story")
    );
    assert_eq!(tok.width(), 998);
    assert_eq!(tokens.width(), 998 + 1 + 20);
    assert_eq!(tokens.row(toy)[..998], multi_hot(tok, "toy story"));
    assert_eq!(tokens.row(toy)[998..], t.row(toy)[1000..]);
}

#[test]
#[ignore = "needs MovieLens: set NN_DATA_DIR"]
fn movielens_training_mean_rmse_matches_the_readme() {
    let dir = movielens().expect("NN_DATA_DIR is not set");
    let r = read_ratings(&dir.join("ratings.csv.gz"), &RatingsOptions::default()).unwrap();
    let s = split(&r.interactions, Split::Random { test_fraction: 0.2 }, 0).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (80_003, 20_001));
    let mean = s.train.iter().map(|x| f64::from(x.value)).sum::<f64>() / s.train.len() as f64;
    let mse = s.test.iter().map(|x| (f64::from(x.value) - mean).powi(2)).sum::<f64>() / s.test.len() as f64;
    let rmse = mse.sqrt();
    println!("train mean {mean:.4}, test RMSE {rmse:.4} (README: 1.056)");
    assert!((rmse - 1.056).abs() < 0.01, "{rmse}");
}
