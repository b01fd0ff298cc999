//! Ratings and item files, ids mapped to contiguous indices, item features.
//!
//! # Ratings
//!
//! A ratings file is a CSV file with a header row, one interaction per row:
//!
//! ```text
//! userId,movieId,rating,timestamp
//! 383,21,3.0,789652009
//! 383,47,5.0,789652009
//! ```
//!
//! [`read_ratings`] finds the columns by header name ([`RatingsOptions`]; the default
//! names are MovieLens's), in any order; other columns are ignored.
//!
//! - A file whose first two bytes are gzip's magic number (`1f 8b`) is decompressed
//!   (`ratings.csv.gz`), whatever its name. The whole file is read into memory.
//! - Fields may be quoted (RFC 4180, through the `csv` crate); spaces around fields
//!   are trimmed; blank lines are skipped; a UTF-8 byte-order mark is ignored.
//! - User and item ids are text (`"383"` and `"0383"` are different users). Each kind
//!   is mapped to the indices `0..n` in the order of first appearance in
//!   [`Ratings::interactions`] ([`IdMap`]); a model stores the maps to turn its
//!   indices back into ids.
//! - Explicit feedback ([`Feedback::Explicit`]): the rating is the value to predict,
//!   any finite number (no scale is assumed: a 0.5–5 star file and a −10–10 file
//!   both read as they are).
//! - Implicit feedback ([`Feedback::Implicit`]): every interaction has the value
//!   `1.0` (the user saw, clicked or bought the item); the rating column may be
//!   absent and is not read. With [`RatingsOptions::implicit_threshold`] `Some(t)`
//!   the rating column is read, rows rated below `t` are dropped (a low rating is not
//!   a positive signal) and the others get `1.0`.
//! - Timestamps are whole numbers (Unix seconds in MovieLens); a split by time
//!   ([`crate::split`](mod@crate::split)) needs them.
//! - Duplicate user–item pairs follow [`Duplicates`]: keep the latest rating (the
//!   default), average them, or fail. [`Ratings::duplicates`] counts the rows that
//!   repeated an earlier pair. Duplicates are resolved on the ratings before the
//!   implicit threshold is applied, so the user's latest (or mean) opinion decides.
//! - [`Ratings::interactions`] keeps the file's row order, less the rows dropped as
//!   duplicates or below the threshold.
//!
//! Every problem is a [`RecError::Parse`] naming the file, the data row (1 is the
//! first row after the header; rows count CSV records, not physical lines) and the
//! column: an empty file, a header with no data row, a missing column (row 0, the
//! message lists the header), an empty id, a missing, non-numeric or non-finite
//! rating (`nan`, `inf`), a timestamp that is not a whole number, a row with a
//! different number of fields than the header. Nothing here panics on a bad file.
//!
//! # Items
//!
//! An items file describes the catalogue, one item per row, for the item-feature
//! models (two-tower) and for cold start:
//!
//! ```text
//! movieId,title,year,genres
//! 1,Toy Story,1995,Adventure|Animation|Children|Comedy|Fantasy
//! ```
//!
//! [`read_items`] turns each row into a feature vector ([`ItemFeatureSpec`]):
//!
//! - **Multi-valued** columns (genres): split on [`ItemsOptions::separator`] (`|`),
//!   one 0/1 feature per distinct value in the file (multi-hot), values in byte-wise
//!   sorted order, named `genres=Comedy`.
//! - **Text** columns (a title), by default through the text pipeline of nn-text
//!   ([`TextFeatures::Tokens`], [`ItemFeature::Tokens`]): a byte-level BPE
//!   tokenizer ([`TextTokenizer::train_bpe`]) is trained on the column's cells
//!   (trimmed, lower-cased unless [`ItemsOptions::text_lowercase`] is `false`) up to
//!   [`ItemsOptions::text_vocab`] tokens, and each item gets one 0/1 feature per
//!   token id that its cell's encoding holds (multi-hot; a repeated token still
//!   counts 1). The block has `vocab_size − 2` features, token id `t` at position
//!   `t − 2` (the special tokens `<pad>` and `<eos>` never occur in an encoding and
//!   have no feature), named by the token's string form (`title:Ġlove` for
//!   `" love"`). Training is deterministic and sees the cells as a multiset, so the
//!   block does not depend on row order. The tokenizer's `tokenizer.json` is kept in
//!   the spec ([`ItemTokenizer`]), so a saved model encodes a new item's title
//!   exactly as at training time.
//! - **Text** columns as **words** ([`TextFeatures::Words`], [`ItemFeature::Text`],
//!   the only kind before the text pipeline existed; models saved then still load):
//!   lower-cased alphanumeric words (split on every character that is not a letter
//!   or digit), one 0/1 feature per vocabulary word that occurs in the text
//!   (multi-hot), named `title:love`. The vocabulary keeps the words that occur in
//!   at least [`ItemsOptions::min_word_count`] items (document frequency), then the
//!   [`ItemsOptions::max_words`] most frequent, ties broken by the word in byte-wise
//!   order, in that order (most frequent first), so it does not depend on row order.
//! - **Numeric** columns (a year): standardised, `(x − mean) / std` with the mean and
//!   the population standard deviation of the column's non-empty cells; an empty cell
//!   becomes `0` (the mean); a column whose cells are all equal becomes `0`. Named by
//!   the column (`year`).
//!
//! The feature blocks follow the columns' order in the header. When
//! [`ItemsOptions::multi_valued`], [`ItemsOptions::text`] or
//! [`ItemsOptions::numeric`] is `None` that kind is detected, among the columns no
//! explicit list claimed: a column with the separator in at least one cell is
//! multi-valued; a column with at least one non-empty cell and every non-empty cell a
//! finite number is numeric; the title column ([`ItemsOptions::title_column`]) is the
//! text column. The id column is never a feature; the other columns are ignored
//! (listed in [`ItemFeatureSpec::ignored`]).
//!
//! Both text kinds are multi-hot rather than counts normalised to sum 1: a title
//! holds a few tokens that rarely repeat, so counts add little, while normalising
//! would make each token of a long title weigh less than one of a short title (the
//! length would leak into every feature) and put the block on another scale than
//! the genres' multi-hot beside it.
//!
//! The vocabularies, tokenizers, means and standard deviations are fitted on the
//! **whole items file**, not on the training ratings: item features are descriptions
//! of the catalogue, known for every item before any rating, not labels, so using the
//! test items' descriptions leaks nothing about the test ratings.
//!
//! # Cold start
//!
//! The items file may list items nobody rated: [`read_items`] appends them to the
//! item [`IdMap`] (after the rated items, in file order), so a model can score them
//! from their features alone. Rated items without a row in the items file get a zero
//! feature row and [`ItemTable::has_features`] `false`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use nn_text::tokenizer::{MAX_VOCAB, NUM_SPECIAL};
use nn_text::{TextError, TextTokenizer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{RecError, Result};

/// External id strings mapped to contiguous indices `0..len`, in first-seen order.
///
/// Serialised as the list of ids (index `i` is the `i`-th id); deserialising
/// rebuilds the lookup table and rejects a list with a repeated id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdMap {
    ids: Vec<String>,
    index: HashMap<String, usize>,
}

impl IdMap {
    /// An empty map.
    pub fn new() -> Self {
        IdMap::default()
    }

    /// A map from a list of ids: `ids[i]` gets index `i`.
    ///
    /// # Errors
    /// [`RecError::Config`] when an id appears twice.
    pub fn from_ids(ids: Vec<String>) -> Result<Self> {
        let mut index = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if let Some(first) = index.insert(id.clone(), i) {
                return Err(RecError::Config(format!("id \"{id}\" appears twice in the id list (at {first} and {i})")));
            }
        }
        Ok(IdMap { ids, index })
    }

    /// The index of `id`, adding it as index [`len`](Self::len) when it is new.
    pub fn insert(&mut self, id: &str) -> usize {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len();
        self.ids.push(id.to_owned());
        self.index.insert(id.to_owned(), i);
        i
    }

    /// The index of `id`, if it is known.
    pub fn get(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The id at `index`, if `index < len`.
    pub fn id(&self, index: usize) -> Option<&str> {
        self.ids.get(index).map(String::as_str)
    }

    /// The number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the map holds no id.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids in index order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
}

impl Serialize for IdMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.ids)
    }
}

impl<'de> Deserialize<'de> for IdMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let ids = Vec::<String>::deserialize(deserializer)?;
        IdMap::from_ids(ids).map_err(serde::de::Error::custom)
    }
}

/// One user–item interaction: indices into [`Ratings::users`] and
/// [`Ratings::items`], the value (the rating, or `1.0` for implicit feedback) and the
/// timestamp when the file has one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interaction {
    /// The user's index.
    pub user: usize,
    /// The item's index.
    pub item: usize,
    /// The rating (explicit feedback) or `1.0` (implicit feedback).
    pub value: f32,
    /// The time of the interaction (Unix seconds in MovieLens), if the file has one.
    pub timestamp: Option<i64>,
}

/// What the values mean: ratings to predict, or the mere fact of an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feedback {
    /// Each interaction's value is a rating to predict (regression, MSE).
    Explicit,
    /// Each interaction is a positive signal of value `1.0`; the items a user did not
    /// interact with are the negatives (ranking losses).
    Implicit,
}

impl FromStr for Feedback {
    type Err = RecError;

    /// `explicit` or `implicit`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "explicit" => Ok(Feedback::Explicit),
            "implicit" => Ok(Feedback::Implicit),
            _ => Err(RecError::Config(format!("unknown feedback \"{s}\": expected explicit or implicit"))),
        }
    }
}

impl fmt::Display for Feedback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Feedback::Explicit => "explicit",
            Feedback::Implicit => "implicit",
        })
    }
}

/// What to do when a user–item pair appears in several rows. The "last" row is the
/// one with the latest timestamp, and among equal timestamps (or without a timestamp
/// column) the later row in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Duplicates {
    /// Keep the last row (the user's latest opinion), drop the others.
    #[default]
    KeepLast,
    /// Keep one interaction, at the last row's place and with its timestamp, whose
    /// value is the mean of all the pair's values.
    Mean,
    /// A repeated pair is an error naming both rows.
    Error,
}

impl FromStr for Duplicates {
    type Err = RecError;

    /// `last`, `mean` or `error`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "last" | "keep-last" => Ok(Duplicates::KeepLast),
            "mean" => Ok(Duplicates::Mean),
            "error" => Ok(Duplicates::Error),
            _ => Err(RecError::Config(format!("unknown duplicates policy \"{s}\": expected last, mean or error"))),
        }
    }
}

impl fmt::Display for Duplicates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Duplicates::KeepLast => "last",
            Duplicates::Mean => "mean",
            Duplicates::Error => "error",
        })
    }
}

/// How to read a ratings file. The default reads MovieLens's
/// `userId,movieId,rating,timestamp` as explicit ratings, keeping the latest of
/// duplicate pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingsOptions {
    /// The header name of the user id column. Default `userId`.
    pub user_column: String,
    /// The header name of the item id column. Default `movieId`.
    pub item_column: String,
    /// The header name of the rating column. Default `rating`. Required for explicit
    /// feedback and for an implicit threshold; otherwise not read.
    pub rating_column: Option<String>,
    /// The header name of the timestamp column, or `None` for a file without one.
    /// Default `timestamp`.
    pub timestamp_column: Option<String>,
    /// Explicit ratings or implicit feedback. Default [`Feedback::Explicit`].
    pub feedback: Feedback,
    /// Implicit feedback only: rows rated below this are dropped. Default `None`
    /// (every row is a positive).
    pub implicit_threshold: Option<f32>,
    /// What to do with repeated user–item pairs. Default [`Duplicates::KeepLast`].
    pub duplicates: Duplicates,
}

impl Default for RatingsOptions {
    fn default() -> Self {
        RatingsOptions {
            user_column: "userId".into(),
            item_column: "movieId".into(),
            rating_column: Some("rating".into()),
            timestamp_column: Some("timestamp".into()),
            feedback: Feedback::Explicit,
            implicit_threshold: None,
            duplicates: Duplicates::KeepLast,
        }
    }
}

/// A ratings file read into indices (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct Ratings {
    /// User ids ↔ indices, in order of first appearance in `interactions`.
    pub users: IdMap,
    /// Item ids ↔ indices, in order of first appearance in `interactions`.
    pub items: IdMap,
    /// The interactions in file order (less dropped duplicates and rows below the
    /// implicit threshold).
    pub interactions: Vec<Interaction>,
    /// Explicit or implicit, as read.
    pub feedback: Feedback,
    /// How many rows repeated a user–item pair of an earlier row (before the
    /// implicit threshold).
    pub duplicates: usize,
    /// The file read.
    pub path: PathBuf,
}

/// Reads a ratings file (plain or gzipped CSV; see the [module docs](self)).
///
/// # Errors
/// - [`RecError::Io`]: the file cannot be read, or its gzip stream is corrupt.
/// - [`RecError::Parse`] with the path, the 1-based data row and the column: an empty
///   file, a header with no data row, a column named in `opts` missing from the
///   header (row 0; the message lists the header), an empty id, a missing,
///   non-numeric or non-finite rating, a timestamp that is not a whole number, a row
///   whose field count differs from the header's, a repeated user–item pair under
///   [`Duplicates::Error`] (naming both rows).
/// - [`RecError::Config`]: explicit feedback without a rating column, a threshold
///   with explicit feedback or a non-finite threshold, or no row left after the
///   threshold.
pub fn read_ratings(path: &Path, opts: &RatingsOptions) -> Result<Ratings> {
    if opts.feedback == Feedback::Explicit && opts.rating_column.is_none() {
        return Err(RecError::Config("explicit feedback needs a rating column".into()));
    }
    if let Some(t) = opts.implicit_threshold {
        if opts.feedback == Feedback::Explicit {
            return Err(RecError::Config(format!(
                "an implicit threshold ({t}) applies only to implicit feedback; the ratings are read as explicit"
            )));
        }
        if !t.is_finite() {
            return Err(RecError::Config(format!("the implicit threshold must be a finite number, got {t}")));
        }
        if opts.rating_column.is_none() {
            return Err(RecError::Config("an implicit threshold needs a rating column".into()));
        }
    }
    let mut reader = CsvFile::open(path)?;
    let user_col = reader.column(&opts.user_column)?;
    let item_col = reader.column(&opts.item_column)?;
    let read_rating = opts.feedback == Feedback::Explicit || opts.implicit_threshold.is_some();
    let rating_col = match &opts.rating_column {
        Some(name) if read_rating => Some((reader.column(name)?, name.as_str())),
        _ => None,
    };
    let time_col = match &opts.timestamp_column {
        Some(name) => Some((reader.column(name)?, name.as_str())),
        None => None,
    };

    // Every row, with ids interned in file order; indices are remapped at the end.
    let mut users = IdMap::new();
    let mut items = IdMap::new();
    let mut rows: Vec<Interaction> = Vec::new();
    let mut row_numbers: Vec<usize> = Vec::new();
    reader.for_each_record(|row, record| {
        let id = |col: usize, name: &str| -> Result<&str> {
            let text = record.get(col).unwrap_or("");
            if text.is_empty() {
                return Err(parse_error(path, row, Some(name), "empty id"));
            }
            Ok(text)
        };
        let user = users.insert(id(user_col, &opts.user_column)?);
        let item = items.insert(id(item_col, &opts.item_column)?);
        let value = match rating_col {
            Some((col, name)) => parse_rating(path, row, name, record.get(col).unwrap_or(""))?,
            None => 1.0,
        };
        let timestamp = match time_col {
            Some((col, name)) => Some(parse_timestamp(path, row, name, record.get(col).unwrap_or(""))?),
            None => None,
        };
        rows.push(Interaction { user, item, value, timestamp });
        row_numbers.push(row);
        Ok(())
    })?;

    // Duplicates: `keeper` holds, per pair, the row that wins so far.
    let mut keep = vec![true; rows.len()];
    let mut keeper: HashMap<(usize, usize), usize> = HashMap::new();
    let mut sums: HashMap<(usize, usize), (f64, u32)> = HashMap::new();
    let mut duplicates = 0usize;
    for j in 0..rows.len() {
        let pair = (rows[j].user, rows[j].item);
        match keeper.entry(pair) {
            Entry::Vacant(v) => {
                v.insert(j);
            }
            Entry::Occupied(mut o) => {
                duplicates += 1;
                let k = *o.get();
                if opts.duplicates == Duplicates::Error {
                    return Err(parse_error(
                        path,
                        row_numbers[j],
                        None,
                        format!(
                            "user \"{}\" and item \"{}\" repeat row {} (duplicates are errors; \
                             pass --duplicates last or mean to allow them)",
                            users.id(pair.0).unwrap_or_default(),
                            items.id(pair.1).unwrap_or_default(),
                            row_numbers[k]
                        ),
                    ));
                }
                if opts.duplicates == Duplicates::Mean {
                    let s = sums.entry(pair).or_insert((f64::from(rows[k].value), 1));
                    s.0 += f64::from(rows[j].value);
                    s.1 += 1;
                }
                let later_wins = match (rows[j].timestamp, rows[k].timestamp) {
                    (Some(new), Some(old)) => new >= old,
                    _ => true,
                };
                if later_wins {
                    keep[k] = false;
                    o.insert(j);
                } else {
                    keep[j] = false;
                }
            }
        }
    }
    for (pair, (sum, count)) in &sums {
        let k = keeper[pair];
        rows[k].value = (sum / f64::from(*count)) as f32;
    }

    let mut out = Ratings {
        users: IdMap::new(),
        items: IdMap::new(),
        interactions: Vec::with_capacity(rows.len() - duplicates),
        feedback: opts.feedback,
        duplicates,
        path: path.to_path_buf(),
    };
    for (x, _) in rows.iter().zip(&keep).filter(|(_, &k)| k) {
        let mut value = x.value;
        if let Some(t) = opts.implicit_threshold {
            if value < t {
                continue;
            }
            value = 1.0;
        }
        // Ids come from the interning maps, so the lookups cannot fail.
        let user = out.users.insert(users.id(x.user).unwrap_or_default());
        let item = out.items.insert(items.id(x.item).unwrap_or_default());
        out.interactions.push(Interaction { user, item, value, timestamp: x.timestamp });
    }
    if out.interactions.is_empty() {
        return Err(RecError::Config(format!(
            "{}: no interaction left: every rating is below the implicit threshold {}",
            path.display(),
            opts.implicit_threshold.unwrap_or_default()
        )));
    }
    Ok(out)
}

fn parse_rating(path: &Path, row: usize, column: &str, text: &str) -> Result<f32> {
    if text.is_empty() {
        return Err(parse_error(path, row, Some(column), "missing rating"));
    }
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(parse_error(path, row, Some(column), format!("expected a finite number, got \"{text}\""))),
        Err(_) => Err(parse_error(path, row, Some(column), format!("expected a number, got \"{text}\""))),
    }
}

fn parse_timestamp(path: &Path, row: usize, column: &str, text: &str) -> Result<i64> {
    if text.is_empty() {
        return Err(parse_error(path, row, Some(column), "missing timestamp"));
    }
    text.parse::<i64>().map_err(|_| {
        parse_error(path, row, Some(column), format!("expected a whole number (Unix seconds), got \"{text}\""))
    })
}

fn parse_error(path: &Path, row: usize, column: Option<&str>, message: impl Into<String>) -> RecError {
    RecError::Parse { path: path.to_path_buf(), row, column: column.map(str::to_owned), message: message.into() }
}

/// A CSV file read into memory (gunzipped when it starts with gzip's magic number),
/// its header parsed.
struct CsvFile<'p> {
    path: &'p Path,
    header: Vec<String>,
    reader: csv::Reader<std::io::Cursor<Vec<u8>>>,
}

impl<'p> CsvFile<'p> {
    fn open(path: &'p Path) -> Result<Self> {
        let io = |source| RecError::Io { path: path.to_path_buf(), source };
        let mut bytes = std::fs::read(path).map_err(io)?;
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut text = Vec::new();
            flate2::read::MultiGzDecoder::new(bytes.as_slice())
                .read_to_end(&mut text)
                .map_err(|e| io(std::io::Error::new(e.kind(), format!("corrupt or truncated gzip stream: {e}"))))?;
            bytes = text;
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .trim(csv::Trim::All)
            .from_reader(std::io::Cursor::new(bytes));
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| parse_error(path, 0, None, format!("cannot read the header: {e}")))?
            .iter()
            .map(str::to_owned)
            .collect();
        if header.is_empty() || header.iter().all(String::is_empty) {
            return Err(parse_error(path, 0, None, "empty file: no header row"));
        }
        Ok(CsvFile { path, header, reader })
    }

    /// The 0-based index of the column named `name`.
    fn column(&self, name: &str) -> Result<usize> {
        let mut found = self.header.iter().enumerate().filter(|(_, h)| *h == name).map(|(i, _)| i);
        match (found.next(), found.next()) {
            (Some(i), None) => Ok(i),
            (Some(_), Some(_)) => Err(parse_error(self.path, 0, Some(name), "the header names this column twice")),
            (None, _) => {
                // One header cell holding the others: another separator than the comma.
                let hint = match [';', '\t', '|']
                    .into_iter()
                    .find(|&c| self.header.len() == 1 && self.header[0].contains(c))
                {
                    Some(c) => format!("; the file looks separated by {c:?}: it must be comma-separated"),
                    None => String::new(),
                };
                Err(parse_error(
                    self.path,
                    0,
                    Some(name),
                    format!("no such column in the header ({}){hint}", self.header.join(",")),
                ))
            }
        }
    }

    /// Calls `f(row, record)` for every data row (`row` from 1); a file with no data
    /// row is an error.
    fn for_each_record(&mut self, mut f: impl FnMut(usize, &csv::StringRecord) -> Result<()>) -> Result<()> {
        let mut record = csv::StringRecord::new();
        let mut row = 0;
        loop {
            row += 1;
            match self.reader.read_record(&mut record) {
                Ok(true) => f(row, &record)?,
                Ok(false) => break,
                Err(e) => {
                    let message = match e.kind() {
                        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                            format!("expected {expected_len} fields (as in the header), got {len}")
                        }
                        csv::ErrorKind::Utf8 { .. } => "the text is not valid UTF-8".to_owned(),
                        _ => e.to_string(),
                    };
                    return Err(parse_error(self.path, row, None, message));
                }
            }
        }
        if row == 1 {
            return Err(parse_error(self.path, 1, None, "no data rows after the header"));
        }
        Ok(())
    }
}

/// How a text column becomes features (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextFeatures {
    /// Byte-level BPE tokens (nn-text's [`TextTokenizer`]), a multi-hot over the
    /// token ids ([`ItemFeature::Tokens`]).
    #[default]
    Tokens,
    /// Lower-cased words, a multi-hot over a word vocabulary ([`ItemFeature::Text`]).
    Words,
}

impl FromStr for TextFeatures {
    type Err = RecError;

    /// `tokens` or `words`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tokens" => Ok(TextFeatures::Tokens),
            "words" => Ok(TextFeatures::Words),
            _ => Err(RecError::Config(format!("unknown text features \"{s}\": expected tokens or words"))),
        }
    }
}

impl fmt::Display for TextFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TextFeatures::Tokens => "tokens",
            TextFeatures::Words => "words",
        })
    }
}

/// How to read an items file. The default reads MovieLens's
/// `movieId,title,year,genres`: every feature kind detected, the title as text
/// through a byte-level BPE tokenizer of up to 1,000 tokens trained on the
/// lower-cased titles, `|` between the values of a multi-valued cell. Fields missing
/// from a serialised `ItemsOptions` take their default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ItemsOptions {
    /// The header name of the item id column (matched against the ratings' item ids).
    /// Default `movieId`.
    pub id_column: String,
    /// Multi-valued columns (multi-hot), or `None` to detect them. Default `None`.
    pub multi_valued: Option<Vec<String>>,
    /// Text columns (token or word multi-hot, [`ItemsOptions::text_features`]), or
    /// `None` for the title column. Default `None`.
    pub text: Option<Vec<String>>,
    /// Numeric columns (standardised), or `None` to detect them. Default `None`.
    pub numeric: Option<Vec<String>>,
    /// The column giving an item's display title ([`ItemTable::titles`]), or `None`.
    /// Default `title`.
    pub title_column: Option<String>,
    /// The separator between the values of a multi-valued cell. Default `|`.
    pub separator: char,
    /// How text columns become features: BPE tokens or words. Default
    /// [`TextFeatures::Tokens`].
    pub text_features: TextFeatures,
    /// Tokens only: the vocabulary size a text column's BPE tokenizer is trained up
    /// to, the 2 special tokens and the 256 bytes included, so at least 258
    /// ([`TextTokenizer::train_bpe`]; it merges only pairs seen twice, so a small
    /// file may end below). The block has `vocab_size − 2` features. Default 1,000.
    pub text_vocab: usize,
    /// Tokens only: whether cells are lower-cased before training and encoding (the
    /// setting is saved in [`ItemFeature::Tokens`]). Default `true`.
    pub text_lowercase: bool,
    /// Words only: the most words a text column's vocabulary keeps. Default 1,000.
    pub max_words: usize,
    /// Words only: the fewest items a word must occur in to enter a vocabulary.
    /// Default 2.
    pub min_word_count: usize,
}

impl Default for ItemsOptions {
    fn default() -> Self {
        ItemsOptions {
            id_column: "movieId".into(),
            multi_valued: None,
            text: None,
            numeric: None,
            title_column: Some("title".into()),
            separator: '|',
            text_features: TextFeatures::Tokens,
            text_vocab: 1000,
            text_lowercase: true,
            max_words: 1000,
            min_word_count: 2,
        }
    }
}

/// One column's block of item features (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ItemFeature {
    /// A multi-valued column: feature `i` is 1 when the cell holds `values[i]`.
    MultiValued {
        /// The header name.
        column: String,
        /// The distinct values, byte-wise sorted.
        values: Vec<String>,
    },
    /// A text column as words: feature `i` is 1 when the cell's lower-cased words
    /// include `words[i]`.
    Text {
        /// The header name.
        column: String,
        /// The vocabulary, most frequent first (ties by the word).
        words: Vec<String>,
    },
    /// A text column through a BPE tokenizer: feature `i` is 1 when the encoding of
    /// the cell (trimmed, then lower-cased if `lowercase`) holds token id `i + 2`;
    /// `tokenizer.vocab_size() − 2` features.
    Tokens {
        /// The header name.
        column: String,
        /// Whether the cell is lower-cased before encoding.
        lowercase: bool,
        /// The tokenizer, saved as its `tokenizer.json` text.
        tokenizer: ItemTokenizer,
    },
    /// A numeric column: one feature, `(x − mean) / std` (`0` when the cell is empty
    /// or `std` is 0).
    Numeric {
        /// The header name.
        column: String,
        /// The mean of the column's non-empty cells.
        mean: f64,
        /// Their population standard deviation.
        std: f64,
    },
}

impl ItemFeature {
    /// The header name of the column.
    pub fn column(&self) -> &str {
        match self {
            ItemFeature::MultiValued { column, .. }
            | ItemFeature::Text { column, .. }
            | ItemFeature::Tokens { column, .. }
            | ItemFeature::Numeric { column, .. } => column,
        }
    }

    /// The number of features of the block.
    pub fn width(&self) -> usize {
        match self {
            ItemFeature::MultiValued { values, .. } => values.len(),
            ItemFeature::Text { words, .. } => words.len(),
            ItemFeature::Tokens { tokenizer, .. } => tokenizer.width(),
            ItemFeature::Numeric { .. } => 1,
        }
    }

    /// The features' names: `genres=Comedy`, `title:love` (a word), `title:Ġlove`
    /// (a token, in the tokenizer's string form), `year`.
    pub fn names(&self) -> Vec<String> {
        match self {
            ItemFeature::MultiValued { column, values } => values.iter().map(|v| format!("{column}={v}")).collect(),
            ItemFeature::Text { column, words } => words.iter().map(|w| format!("{column}:{w}")).collect(),
            ItemFeature::Tokens { column, tokenizer, .. } => (0..tokenizer.width())
                .map(|i| {
                    let id = i as u32 + NUM_SPECIAL;
                    format!("{column}:{}", tokenizer.tokenizer().id_to_token(id).unwrap_or_default())
                })
                .collect(),
            ItemFeature::Numeric { column, .. } => vec![column.clone()],
        }
    }
}

/// The tokenizer of an [`ItemFeature::Tokens`] block: nn-text's [`TextTokenizer`]
/// together with its `tokenizer.json` text (the `tokenizers` library's format,
/// [`TextTokenizer::to_json`]).
///
/// Serialised as that text (a JSON string inside the spec); deserialising parses and
/// checks it ([`ItemTokenizer::from_json`]), so a malformed tokenizer fails when the
/// spec or the model is read, never while encoding. Two values are equal when their
/// texts are. Cloning shares the parsed tokenizer.
#[derive(Debug, Clone)]
pub struct ItemTokenizer {
    json: String,
    tokenizer: Arc<TextTokenizer>,
}

impl ItemTokenizer {
    /// Wraps a tokenizer, keeping its `tokenizer.json` text.
    ///
    /// # Errors
    /// [`RecError::Config`] when the tokenizer cannot be serialised.
    pub fn new(tokenizer: TextTokenizer) -> Result<Self> {
        let json = tokenizer
            .to_json()
            .map_err(|e| RecError::Config(format!("cannot serialise the item text tokenizer: {e}")))?;
        Ok(ItemTokenizer { json, tokenizer: Arc::new(tokenizer) })
    }

    /// Parses a `tokenizer.json` text with nn-text's checks ([`TextTokenizer::load`]:
    /// a byte-level BPE pipeline with a `<pad>` token and ids without a gap).
    ///
    /// # Errors
    /// [`RecError::Config`] when the text is not valid tokenizer JSON or not of that
    /// shape (the library's message).
    pub fn from_json(json: &str) -> Result<Self> {
        let config = |message: String| RecError::Config(format!("item text tokenizer: {message}"));
        let loaded = TextTokenizer::from_json(json);
        let tokenizer = loaded.map_err(|e| match e {
            TextError::Tokenizer { message, .. } => config(message),
            other => config(other.to_string()),
        })?;
        Ok(ItemTokenizer { json: json.to_owned(), tokenizer: Arc::new(tokenizer) })
    }

    /// The `tokenizer.json` text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The parsed tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The number of features of the block: the vocabulary less the 2 special
    /// tokens.
    pub fn width(&self) -> usize {
        self.tokenizer.vocab_size().saturating_sub(NUM_SPECIAL as usize)
    }

    /// Writes the multi-hot of `text`'s token ids into `out` (`[width]`, zeroed):
    /// `out[t − 2] = 1` for every id `t ≥ 2` of the encoding.
    fn encode_into(&self, text: &str, out: &mut [f32]) -> std::result::Result<(), String> {
        if text.is_empty() {
            return Ok(());
        }
        let ids = self.tokenizer.encode(text).map_err(|e| e.to_string())?;
        for id in ids {
            if let Some(slot) = (id as usize).checked_sub(NUM_SPECIAL as usize).and_then(|i| out.get_mut(i)) {
                *slot = 1.0;
            }
        }
        Ok(())
    }
}

impl PartialEq for ItemTokenizer {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl Serialize for ItemTokenizer {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.json)
    }
}

impl<'de> Deserialize<'de> for ItemTokenizer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let json = String::deserialize(deserializer)?;
        ItemTokenizer::from_json(&json).map_err(serde::de::Error::custom)
    }
}

/// How an items-file row becomes a feature vector: the id column, the separator, and
/// one block per feature column in header order (see the [module docs](self)). Plain
/// data: saved with a model, it encodes a new item's row the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemFeatureSpec {
    /// The header name of the id column.
    pub id_column: String,
    /// The separator between the values of a multi-valued cell.
    pub separator: char,
    /// The feature blocks, in header order.
    pub columns: Vec<ItemFeature>,
    /// The columns of the file that are neither the id nor a feature (the title
    /// column, when it is not a text feature, is listed here too).
    pub ignored: Vec<String>,
}

impl ItemFeatureSpec {
    /// The length of a feature vector: the sum of the blocks' widths.
    pub fn width(&self) -> usize {
        self.columns.iter().map(ItemFeature::width).sum()
    }

    /// The features' names in vector order (`genres=Comedy`, `title:love`, `year`).
    pub fn names(&self) -> Vec<String> {
        self.columns.iter().flat_map(ItemFeature::names).collect()
    }

    /// Encodes one item: `cell(column)` gives the row's text in a column (`None` or
    /// an empty text for a missing cell, which gives a zero block). Values and words
    /// outside the vocabularies are ignored; a text column of tokens encodes any text
    /// (byte-level BPE knows every byte), with the tokenizer saved in the spec, so the
    /// row is the one [`read_items`] gave at training time.
    ///
    /// # Shapes
    /// output: `[width]`.
    ///
    /// # Errors
    /// [`RecError::Config`] when a numeric cell is not a finite number (naming the
    /// column and the text), or when the tokenizer fails on a text cell (it does not
    /// on the pipelines [`ItemTokenizer`] accepts).
    pub fn encode<'a>(&self, cell: impl Fn(&str) -> Option<&'a str>) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.width()];
        Encoder::new(self)
            .encode(&cell, &mut out)
            .map_err(|(column, message)| RecError::Config(format!("item feature column \"{column}\": {message}")))?;
        Ok(out)
    }
}

/// Word and value lookups of a spec, built once for many rows.
struct Encoder<'s> {
    spec: &'s ItemFeatureSpec,
    lookups: Vec<HashMap<&'s str, usize>>,
}

impl<'s> Encoder<'s> {
    fn new(spec: &'s ItemFeatureSpec) -> Self {
        let lookups = spec
            .columns
            .iter()
            .map(|c| match c {
                ItemFeature::MultiValued { values: v, .. } | ItemFeature::Text { words: v, .. } => {
                    v.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect()
                }
                ItemFeature::Tokens { .. } | ItemFeature::Numeric { .. } => HashMap::new(),
            })
            .collect();
        Encoder { spec, lookups }
    }

    /// Writes the features of one row into `out` (`[width]`, zeroed); an error is
    /// `(column, message)`.
    fn encode<'a>(
        &self,
        cell: &dyn Fn(&str) -> Option<&'a str>,
        out: &mut [f32],
    ) -> std::result::Result<(), (String, String)> {
        let mut offset = 0;
        for (block, lookup) in self.spec.columns.iter().zip(&self.lookups) {
            let text = cell(block.column()).unwrap_or("").trim();
            let width = block.width();
            let dst = &mut out[offset..offset + width];
            match block {
                ItemFeature::MultiValued { .. } => {
                    for value in split_values(text, self.spec.separator) {
                        if let Some(&i) = lookup.get(value) {
                            dst[i] = 1.0;
                        }
                    }
                }
                ItemFeature::Text { .. } => {
                    for word in words(text) {
                        if let Some(&i) = lookup.get(word.as_str()) {
                            dst[i] = 1.0;
                        }
                    }
                }
                ItemFeature::Tokens { column, lowercase, tokenizer } => {
                    let lower;
                    let text = if *lowercase {
                        lower = text.to_lowercase();
                        lower.as_str()
                    } else {
                        text
                    };
                    tokenizer.encode_into(text, dst).map_err(|message| (column.clone(), message))?;
                }
                ItemFeature::Numeric { column, mean, std } => {
                    if !text.is_empty() {
                        let x = parse_number(text)
                            .ok_or_else(|| (column.clone(), format!("expected a finite number, got \"{text}\"")))?;
                        dst[0] = if *std > 0.0 { ((x - mean) / std) as f32 } else { 0.0 };
                    }
                }
            }
            offset += width;
        }
        Ok(())
    }
}

/// The non-empty, trimmed values of a multi-valued cell.
fn split_values(text: &str, separator: char) -> impl Iterator<Item = &str> {
    text.split(separator).map(str::trim).filter(|v| !v.is_empty())
}

/// The lower-cased alphanumeric words of a text.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The items of a catalogue as feature rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemTable {
    /// How the rows were encoded.
    pub spec: ItemFeatureSpec,
    /// The features, row-major `[num_items, width]`; row `i` is item index `i`.
    pub features: Vec<f32>,
    /// Per item, whether the items file had a row for it (`false`: a zero row).
    pub has_features: Vec<bool>,
    /// Per item, its title when the file has a title column and the cell is not empty.
    pub titles: Vec<Option<String>>,
}

impl ItemTable {
    /// The number of items (rows).
    pub fn num_items(&self) -> usize {
        self.has_features.len()
    }

    /// The features of item index `item`: `[width]`.
    ///
    /// # Panics
    /// When `item >= num_items()`.
    pub fn row(&self, item: usize) -> &[f32] {
        let w = self.width();
        &self.features[item * w..(item + 1) * w]
    }

    /// The length of a feature row.
    pub fn width(&self) -> usize {
        self.spec.width()
    }
}

/// The kind a column plays, while fitting.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Multi,
    Text,
    Numeric,
}

/// Reads an items file into feature rows aligned with `items` (see the
/// [module docs](self)). Items of the file that `items` does not know are appended
/// to it, in file order (cold-start items); known items without a row get a zero row.
///
/// # Shapes
/// [`ItemTable::features`]: `[items.len() after the call, spec.width()]`.
///
/// # Errors
/// - [`RecError::Io`]: the file cannot be read, or its gzip stream is corrupt.
/// - [`RecError::Parse`] with the path, the 1-based data row and the column: an empty
///   file, a header with no data row, a named column missing from the header (row 0,
///   the header listed), a row whose field count differs from the header's, an empty
///   id, an id already given by an earlier row (naming it), a non-numeric cell in a
///   column listed in [`ItemsOptions::numeric`].
/// - [`RecError::Config`]: a column in two feature lists, the id column as a
///   feature, [`ItemsOptions::text_vocab`] outside `258..=2^24` (tokens), or the BPE
///   trainer failing (naming the column).
pub fn read_items(path: &Path, items: &mut IdMap, opts: &ItemsOptions) -> Result<ItemTable> {
    let mut reader = CsvFile::open(path)?;
    let header = reader.header.clone();
    let id_col = reader.column(&opts.id_column)?;
    let title_col = match &opts.title_column {
        Some(name) => Some(reader.column(name)?),
        None => None,
    };

    let mut records: Vec<csv::StringRecord> = Vec::new();
    let mut first_row: HashMap<String, usize> = HashMap::new();
    reader.for_each_record(|row, record| {
        let id = record.get(id_col).unwrap_or("");
        if id.is_empty() {
            return Err(parse_error(path, row, Some(&opts.id_column), "empty id"));
        }
        if let Some(first) = first_row.insert(id.to_owned(), row) {
            return Err(parse_error(
                path,
                row,
                Some(&opts.id_column),
                format!("item \"{id}\" already has a row (row {first})"),
            ));
        }
        records.push(record.clone());
        Ok(())
    })?;

    // Which kind each column plays: explicit lists first, then detection.
    let mut kinds: Vec<Option<Kind>> = vec![None; header.len()];
    let lists = [(Kind::Multi, &opts.multi_valued), (Kind::Text, &opts.text), (Kind::Numeric, &opts.numeric)];
    for (kind, list) in lists {
        for name in list.iter().flatten() {
            let col = reader.column(name)?;
            if col == id_col {
                return Err(RecError::Config(format!("the id column \"{name}\" cannot be an item feature")));
            }
            if let Some(other) = kinds[col] {
                return Err(RecError::Config(format!(
                    "item column \"{name}\" is listed as both {} and {}",
                    kind_name(other),
                    kind_name(kind)
                )));
            }
            kinds[col] = Some(kind);
        }
    }
    let claimed: Vec<bool> = kinds.iter().map(Option::is_some).collect();
    let free = |col: usize| col != id_col && Some(col) != title_col && !claimed[col];
    let cells = |col: usize| records.iter().map(move |r| r.get(col).unwrap_or(""));
    if opts.multi_valued.is_none() {
        for col in (0..header.len()).filter(|&c| free(c)) {
            if cells(col).any(|v| v.contains(opts.separator)) {
                kinds[col] = Some(Kind::Multi);
            }
        }
    }
    if opts.numeric.is_none() {
        let candidates: Vec<usize> = (0..header.len()).filter(|&c| free(c) && kinds[c].is_none()).collect();
        for col in candidates {
            let mut non_empty = cells(col).filter(|v| !v.is_empty()).peekable();
            if non_empty.peek().is_some() && non_empty.all(|v| parse_number(v).is_some()) {
                kinds[col] = Some(Kind::Numeric);
            }
        }
    }
    if opts.text.is_none() {
        if let Some(col) = title_col.filter(|&c| !claimed[c]) {
            kinds[col] = Some(Kind::Text);
        }
    }

    // Fit each feature column on the whole file.
    let mut columns = Vec::new();
    let mut ignored = Vec::new();
    for (col, kind) in kinds.iter().enumerate() {
        let column = header[col].clone();
        match kind {
            None if col != id_col => ignored.push(column),
            None => {}
            Some(Kind::Multi) => {
                let values: BTreeSet<&str> = cells(col).flat_map(|v| split_values(v, opts.separator)).collect();
                columns
                    .push(ItemFeature::MultiValued { column, values: values.into_iter().map(str::to_owned).collect() });
            }
            Some(Kind::Text) if opts.text_features == TextFeatures::Tokens => {
                let texts: Vec<String> = cells(col)
                    .map(|v| {
                        let v = v.trim();
                        if opts.text_lowercase {
                            v.to_lowercase()
                        } else {
                            v.to_owned()
                        }
                    })
                    .collect();
                let base = NUM_SPECIAL as usize + 256;
                if !(base..=MAX_VOCAB).contains(&opts.text_vocab) {
                    return Err(RecError::Config(format!(
                        "item text column \"{column}\": text_vocab {} must be in {base}..={MAX_VOCAB} \
                         (2 special tokens + 256 bytes + merges)",
                        opts.text_vocab
                    )));
                }
                let tokenizer = if texts.iter().all(String::is_empty) {
                    // Nothing to learn merges from: the bytes are the whole vocabulary.
                    TextTokenizer::bytes()
                } else {
                    TextTokenizer::train_bpe(texts.iter().map(String::as_str), opts.text_vocab).map_err(|e| {
                        RecError::Config(format!("item text column \"{column}\": cannot train its tokenizer: {e}"))
                    })?
                };
                columns.push(ItemFeature::Tokens {
                    column,
                    lowercase: opts.text_lowercase,
                    tokenizer: ItemTokenizer::new(tokenizer)?,
                });
            }
            Some(Kind::Text) => {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for text in cells(col) {
                    let distinct: HashSet<String> = words(text).collect();
                    for w in distinct {
                        *counts.entry(w).or_default() += 1;
                    }
                }
                let mut kept: Vec<(String, usize)> =
                    counts.into_iter().filter(|(_, n)| *n >= opts.min_word_count).collect();
                kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                kept.truncate(opts.max_words);
                columns.push(ItemFeature::Text { column, words: kept.into_iter().map(|(w, _)| w).collect() });
            }
            Some(Kind::Numeric) => {
                let mut values = Vec::new();
                for (i, text) in cells(col).enumerate() {
                    if text.is_empty() {
                        continue;
                    }
                    match parse_number(text) {
                        Some(x) => values.push(x),
                        None => {
                            return Err(parse_error(
                                path,
                                i + 1,
                                Some(&column),
                                format!("expected a finite number, got \"{text}\""),
                            ))
                        }
                    }
                }
                let n = values.len().max(1) as f64;
                let mean = values.iter().sum::<f64>() / n;
                let std = (values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
                columns.push(ItemFeature::Numeric { column, mean, std });
            }
        }
    }
    let spec = ItemFeatureSpec { id_column: opts.id_column.clone(), separator: opts.separator, columns, ignored };

    let indices: Vec<usize> = records.iter().map(|r| items.insert(r.get(id_col).unwrap_or(""))).collect();
    let width = spec.width();
    let num_items = items.len();
    let mut features = vec![0.0f32; num_items * width];
    let mut has_features = vec![false; num_items];
    let mut titles = vec![None; num_items];
    let encoder = Encoder::new(&spec);
    let column_index: HashMap<&str, usize> = header.iter().enumerate().map(|(i, h)| (h.as_str(), i)).collect();
    for (record, &item) in records.iter().zip(&indices) {
        let cell = |name: &str| column_index.get(name).and_then(|&c| record.get(c));
        // Every numeric cell was parsed while fitting, so encoding cannot fail here.
        encoder.encode(&cell, &mut features[item * width..(item + 1) * width]).map_err(|(column, message)| {
            RecError::Parse { path: path.to_path_buf(), row: 0, column: Some(column), message }
        })?;
        has_features[item] = true;
        titles[item] = title_col.and_then(|c| record.get(c)).filter(|t| !t.is_empty()).map(str::to_owned);
    }
    Ok(ItemTable { spec, features, has_features, titles })
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Multi => "multi-valued",
        Kind::Text => "text",
        Kind::Numeric => "numeric",
    }
}

/// The items each user interacted with: `out[user]` sorted ascending, without
/// repeats (for excluding seen items when ranking, and for negative sampling).
///
/// # Shapes
/// output: `num_users` lists.
///
/// # Panics
/// When an interaction's user is `>= num_users` (the interactions do not belong to
/// these users).
pub fn items_by_user(train: &[Interaction], num_users: usize) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); num_users];
    for x in train {
        out[x.user].push(x.item);
    }
    for list in &mut out {
        list.sort_unstable();
        list.dedup();
    }
    out
}

/// How many interactions each item has (its popularity).
///
/// # Shapes
/// output: `[num_items]`.
///
/// # Panics
/// When an interaction's item is `>= num_items`.
pub fn item_counts(train: &[Interaction], num_items: usize) -> Vec<u32> {
    let mut counts = vec![0u32; num_items];
    for x in train {
        counts[x.item] += 1;
    }
    counts
}
