//! Text datasets: language-modelling windows, text classification from CSV,
//! splits that hold out whole chapters, per-class samples, and plain text files.
//!
//! # Language modelling
//!
//! [`lm_windows`] cuts a token stream into `[N, context]` inputs with next-token
//! targets. The stream is split into two contiguous blocks **first** (training =
//! the first `floor(n · (1 − f))` tokens, validation = the rest, Keras's
//! `validation_split` rule) and only then cut into windows, so no window straddles
//! the boundary and no training window shares a token with a validation window.
//!
//! Targets: nn-data's [`Targets`] holds one class per sample (`[N]`) or real values
//! (`[N]`, `[N, k]`), not a class per position. The windows' targets are therefore
//! [`Targets::Real`] `[N, context]` holding whole-number token ids as `f32` (exact,
//! ids are below 2^24), which nn-layers' sparse categorical cross-entropy accepts as
//! `LossTargets::Values` against logits `[N, context, vocab]` (one row per
//! position, the mean over all `N · context` positions); the same ids are also in
//! [`LmData`] as `u32`.
//!
//! # Text classification
//!
//! [`read_text_csv`] reads a header-first CSV file (gzip detected from its first two
//! bytes, `1f 8b`) with a text column and a class column; [`encode_classification`]
//! tokenizes, pads with the pad id (0) or cuts each text to `context` tokens, and
//! reports how many rows were cut and the padding mask.
//!
//! # Held-out chapters (KJV)
//!
//! Consecutive verses are near-duplicates (parallel phrasing, repeated formulas), so a
//! verse-level random split leaks. [`chapter_split`] holds out whole chapters (groups
//! of equal `book` and `chapter` cells); [`group_split`] does the same for any
//! columns.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use nn_data::{Dataset, Targets};
use nn_tensor::Tensor;

use crate::error::{invalid, Result, TextError};
use crate::tokenizer::{TextTokenizer, MAX_VOCAB};

/// The KJV file inside a data folder (`$NN_DATA_DIR`): 31,102 verses,
/// `book,chapter,verse,testament,division,text`.
pub const KJV_FILE: &str = "kjv/verses.csv.gz";

// ------------------------------------------------------------------ files

/// The bytes of `path`, gunzipped when they start with the gzip magic `1f 8b`.
fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|source| TextError::Io {
        path: path.to_path_buf(),
        action: "cannot read",
        source,
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|source| TextError::Gzip { path: path.to_path_buf(), source })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn utf8_error(path: &Path, bytes: &[u8], e: std::str::Utf8Error, base: u64) -> TextError {
    let offset = e.valid_up_to();
    TextError::NotUtf8 { path: path.to_path_buf(), offset: base + offset as u64, byte: bytes[offset] }
}

/// Reads a plain text file (for `--data text:FILE`), gunzipped when it starts with
/// `1f 8b`.
///
/// # Errors
/// [`TextError::Io`] for a missing or unreadable file; [`TextError::Gzip`] for a
/// corrupt gzip stream; [`TextError::EmptyFile`] for a file of 0 bytes;
/// [`TextError::NotUtf8`] naming the byte offset (0-based) and value of the first
/// byte that is not UTF-8.
pub fn read_text_file(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    if bytes.is_empty() {
        return Err(TextError::EmptyFile { path: path.to_path_buf() });
    }
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let utf8 = e.utf8_error();
            Err(utf8_error(path, e.as_bytes(), utf8, 0))
        }
    }
}

// ------------------------------------------------------------------ language modelling

/// Windows of a token stream for next-token prediction (see the
/// [module docs](self)).
///
/// # Shapes
/// - `train` features `[N_train, context]`, targets [`Targets::Real`]
///   `[N_train, context]`; `validation` likewise with `N_val` (0 when the
///   validation fraction is 0).
/// - `train_target_ids`, `validation_target_ids`: the targets as `u32`,
///   row-major `[N, context]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LmData {
    /// Training windows: features `x = t[s..s+context]` as `f32` ids, targets
    /// `y = t[s+1..s+context+1]`.
    pub train: Dataset,
    /// Validation windows, cut from the validation block only.
    pub validation: Dataset,
    /// The training targets as ids, row-major `[N_train, context]`.
    pub train_target_ids: Vec<u32>,
    /// The validation targets as ids, row-major `[N_val, context]`.
    pub validation_target_ids: Vec<u32>,
    /// Inputs per window.
    pub context: usize,
    /// Tokens between the starts of consecutive windows.
    pub stride: usize,
    /// The index of the first validation token: the training block is
    /// `tokens[..boundary]`, the validation block `tokens[boundary..]`.
    pub boundary: usize,
}

/// Window starts in a block of `len` tokens: `0, stride, 2·stride, ...` while
/// `start + context + 1 <= len` (the last target must be inside the block).
fn window_starts(len: usize, context: usize, stride: usize) -> impl Iterator<Item = usize> {
    (0..len).step_by(stride).take_while(move |&s| s + context < len)
}

fn windows(block: &[u32], context: usize, stride: usize, name: &str) -> Result<(Dataset, Vec<u32>)> {
    let starts: Vec<usize> = window_starts(block.len(), context, stride).collect();
    let n = starts.len();
    let mut x = Vec::with_capacity(n * context);
    let mut y = Vec::with_capacity(n * context);
    for &s in &starts {
        x.extend(block[s..s + context].iter().map(|&t| t as f32));
        y.extend_from_slice(&block[s + 1..s + context + 1]);
    }
    let features = Tensor::try_from_vec(&[n, context], x)?;
    let targets = Tensor::try_from_vec(&[n, context], y.iter().map(|&t| t as f32).collect())?;
    let dataset = Dataset::from_tensor(name, features, Targets::real(targets)?)?;
    Ok((dataset, y))
}

/// Non-overlapping language-modelling windows (stride = `context`): the first
/// `floor(n · (1 − validation_fraction))` tokens are the training block, the rest
/// the validation block, each cut into windows `x = t[s..s+context]`,
/// `y = t[s+1..s+context+1]`. Equivalent to
/// [`lm_windows_strided`]`(tokens, context, validation_fraction, context)`.
///
/// # Errors
/// As [`lm_windows_strided`].
pub fn lm_windows(tokens: &[u32], context: usize, validation_fraction: f64) -> Result<LmData> {
    lm_windows_strided(tokens, context, validation_fraction, context)
}

/// Language-modelling windows with a chosen `stride` (windows overlap when
/// `stride < context`, within one block only). A block of `m` tokens gives
/// `floor((m − context − 1) / stride) + 1` windows when `m > context`, else none;
/// the tokens after the last window are not used.
///
/// # Errors
/// [`TextError::InvalidArgument`] for `context` or `stride` 0, a fraction outside
/// `[0, 1)`, a token id `>= 2^24` (not exact as `f32`), a training block too short
/// for one window, or a validation fraction above 0 whose block is too short for
/// one window (each message gives the block's length and `context + 1`).
pub fn lm_windows_strided(tokens: &[u32], context: usize, validation_fraction: f64, stride: usize) -> Result<LmData> {
    const OP: &str = "lm_windows";
    if context == 0 || stride == 0 {
        return Err(invalid(OP, format!("context ({context}) and stride ({stride}) must be at least 1")));
    }
    if !(0.0..1.0).contains(&validation_fraction) {
        return Err(invalid(OP, format!("validation fraction {validation_fraction} must be in [0, 1)")));
    }
    if let Some((i, &t)) = tokens.iter().enumerate().find(|(_, &t)| t as usize >= MAX_VOCAB) {
        return Err(invalid(OP, format!("token {t} at position {i} is not below 2^24 (not exact as f32)")));
    }
    let n = tokens.len();
    let boundary = ((n as f64) * (1.0 - validation_fraction)).floor() as usize;
    let (train_block, val_block) = tokens.split_at(boundary.min(n));
    if train_block.len() <= context {
        return Err(invalid(
            OP,
            format!(
                "the training block has {} tokens; one window needs context + 1 = {}",
                train_block.len(),
                context + 1
            ),
        ));
    }
    if validation_fraction > 0.0 && val_block.len() <= context {
        return Err(invalid(
            OP,
            format!(
                "the validation block (fraction {validation_fraction}) has {} tokens; one window needs context + 1 = {}",
                val_block.len(),
                context + 1
            ),
        ));
    }
    let (train, train_target_ids) = windows(train_block, context, stride, "lm-train")?;
    let (validation, validation_target_ids) = windows(val_block, context, stride, "lm-validation")?;
    Ok(LmData { train, validation, train_target_ids, validation_target_ids, context, stride, boundary })
}

// ------------------------------------------------------------------ CSV text tables

/// A CSV file read for text classification: every column (as text), the text
/// column, and the class column mapped to indices.
///
/// Class names are the distinct (trimmed) cells of the class column sorted by
/// their bytes; label `i` is `class_names[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextTable {
    path: PathBuf,
    header: Vec<String>,
    columns: Vec<Vec<String>>,
    lines: Vec<u64>,
    text_column: usize,
    target_column: usize,
    labels: Vec<usize>,
    class_names: Vec<String>,
}

impl TextTable {
    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of rows `N`.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no row (only possible after [`select`](Self::select)
    /// with no index).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The header's column names (trimmed), in file order.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The text of each row, `[N]`, as in the file (not trimmed).
    pub fn texts(&self) -> &[String] {
        &self.columns[self.text_column]
    }

    /// The class index of each row, `[N]`.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The class names, sorted; index `i` names class `i`.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The name of the text column.
    pub fn text_column(&self) -> &str {
        &self.header[self.text_column]
    }

    /// The name of the class column.
    pub fn target_column(&self) -> &str {
        &self.header[self.target_column]
    }

    /// The 1-based line where row `row` (0-based) starts in the file, if in range.
    pub fn line(&self, row: usize) -> Option<u64> {
        self.lines.get(row).copied()
    }

    /// The cells of the column named `name`, `[N]`.
    ///
    /// # Errors
    /// [`TextError::MissingColumn`] listing the header when there is no such column.
    pub fn column(&self, name: &str) -> Result<&[String]> {
        let i = self.column_index(name)?;
        Ok(&self.columns[i])
    }

    fn column_index(&self, name: &str) -> Result<usize> {
        self.header.iter().position(|h| h == name).ok_or_else(|| TextError::MissingColumn {
            path: self.path.clone(),
            column: name.to_string(),
            header: self.header.clone(),
        })
    }

    /// The rows at `indices`, in that order; the class names (and so the meaning
    /// of each label) are kept even when a class is absent from the subset.
    ///
    /// # Errors
    /// [`TextError::InvalidArgument`] for an index `>= N`.
    pub fn select(&self, indices: &[usize]) -> Result<TextTable> {
        let n = self.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(invalid("TextTable::select", format!("row index {bad} is out of range for {n} rows")));
        }
        Ok(TextTable {
            path: self.path.clone(),
            header: self.header.clone(),
            columns: self.columns.iter().map(|c| indices.iter().map(|&i| c[i].clone()).collect()).collect(),
            lines: indices.iter().map(|&i| self.lines[i]).collect(),
            text_column: self.text_column,
            target_column: self.target_column,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
        })
    }
}

fn csv_error(path: &Path, e: &csv::Error) -> TextError {
    let (row, line) = e.position().map(|p| (p.record(), p.line())).unwrap_or((0, 0));
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len}")
        }
        _ => e.to_string(),
    };
    TextError::Csv { path: path.to_path_buf(), row, line, message }
}

/// Reads a CSV file with a header row: `text_column` holds the texts,
/// `target_column` the class of each row (any text; classes are sorted by their
/// bytes). A file starting with `1f 8b` is gunzipped first. Every column is kept
/// ([`TextTable::column`]).
///
/// # Errors
/// - [`TextError::Io`], [`TextError::Gzip`]: the file cannot be read or unzipped.
/// - [`TextError::MissingColumn`]: a column is not in the header (the header is
///   listed).
/// - [`TextError::Csv`] naming the row (1-based, data rows only) and its line: a row
///   with another number of fields than the header, a quote left open, or a cell
///   that is not UTF-8 (with the column's name and the byte offset in the cell).
/// - [`TextError::EmptyCell`] naming the row, line and column: an empty (or only
///   white space) text or class cell.
/// - [`TextError::NoRows`]: a header but no data row; [`TextError::EmptyFile`]: no
///   byte at all.
pub fn read_text_csv(path: impl AsRef<Path>, text_column: &str, target_column: &str) -> Result<TextTable> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    if bytes.is_empty() {
        return Err(TextError::EmptyFile { path: path.to_path_buf() });
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(&bytes[..]);
    let raw_header = reader.byte_headers().map_err(|e| csv_error(path, &e))?.clone();
    let mut header = Vec::with_capacity(raw_header.len());
    for (c, cell) in raw_header.iter().enumerate() {
        let name = std::str::from_utf8(cell).map_err(|e| TextError::Csv {
            path: path.to_path_buf(),
            row: 0,
            line: 1,
            message: format!("header column {} is not UTF-8 (byte offset {} in the cell)", c + 1, e.valid_up_to()),
        })?;
        let name = if c == 0 { name.trim_start_matches('\u{feff}') } else { name };
        header.push(name.trim().to_string());
    }
    let find = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| TextError::MissingColumn {
            path: path.to_path_buf(),
            column: name.to_string(),
            header: header.clone(),
        })
    };
    let text_index = find(text_column)?;
    let target_index = find(target_column)?;

    let mut columns: Vec<Vec<String>> = vec![Vec::new(); header.len()];
    let mut lines = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut row: u64 = 0;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, &e)),
        }
        row += 1;
        let line = record.position().map_or(0, |p| p.line());
        for (c, cell) in record.iter().enumerate() {
            let text = std::str::from_utf8(cell).map_err(|e| TextError::Csv {
                path: path.to_path_buf(),
                row,
                line,
                message: format!(
                    "column {:?}: invalid UTF-8 byte 0x{:02x} at byte offset {} in the cell",
                    header[c],
                    cell[e.valid_up_to()],
                    e.valid_up_to()
                ),
            })?;
            if (c == text_index || c == target_index) && text.trim().is_empty() {
                return Err(TextError::EmptyCell { path: path.to_path_buf(), row, line, column: header[c].clone() });
            }
            columns[c].push(if c == target_index { text.trim().to_string() } else { text.to_string() });
        }
        lines.push(line);
    }
    if row == 0 {
        return Err(TextError::NoRows { path: path.to_path_buf() });
    }
    let class_names: Vec<String> =
        columns[target_index].iter().cloned().collect::<BTreeSet<String>>().into_iter().collect();
    let index: HashMap<&str, usize> = class_names.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let labels = columns[target_index].iter().map(|c| index[c.as_str()]).collect();
    Ok(TextTable {
        path: path.to_path_buf(),
        header,
        columns,
        lines,
        text_column: text_index,
        target_column: target_index,
        labels,
        class_names,
    })
}

/// The KJV verses of `data_dir` (`$NN_DATA_DIR`): [`read_text_csv`] of
/// [`KJV_FILE`] with text column `text` and class column `division` (8 classes:
/// epistles, gospels_acts, history, law, major_prophets, minor_prophets,
/// revelation, wisdom, in that order).
///
/// # Errors
/// As [`read_text_csv`].
pub fn read_kjv(data_dir: impl AsRef<Path>) -> Result<TextTable> {
    read_text_csv(data_dir.as_ref().join(KJV_FILE), "text", "division")
}

// ------------------------------------------------------------------ classification encoding

/// Token ids of a text table padded or cut to a fixed length.
///
/// # Shapes
/// - `dataset`: features `[N, context]` (token ids as `f32`, pad id after the
///   text), targets [`Targets::Classes`] `[N]` with the table's class names.
/// - `mask`: `[N, context]`, 1 at a text token, 0 at padding.
/// - `lengths`: `[N]`, the tokens kept per row (`<= context`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationData {
    /// Features and class targets.
    pub dataset: Dataset,
    /// The padding mask, 1/0.
    pub mask: Tensor<f32>,
    /// Tokens kept per row.
    pub lengths: Vec<usize>,
    /// How many rows had more than `context` tokens and were cut (their first
    /// `context` tokens are kept).
    pub truncated: usize,
    /// Tokens per row.
    pub context: usize,
}

/// Texts as rows of token ids of one length, from [`encode_padded`].
///
/// # Shapes
/// `features` and `mask` hold `rows × context` values row after row; `lengths` one
/// per row.
#[derive(Debug, Clone, PartialEq)]
pub struct PaddedTexts {
    /// Token ids as `f32`, the pad id after each text.
    pub features: Vec<f32>,
    /// 1 at a text token, 0 at padding.
    pub mask: Vec<f32>,
    /// Tokens kept per row (`<= context`).
    pub lengths: Vec<usize>,
    /// How many texts had more than `context` tokens and were cut.
    pub truncated: usize,
}

/// Tokenizes each of `texts` with `tokenizer` and pads it with
/// [`TextTokenizer::pad_id`] after the text, or keeps its first `context` tokens:
/// the rows a text classifier reads, in training ([`encode_classification`]) and
/// when predicting or serving.
///
/// # Errors
/// [`TextError::InvalidArgument`] for `context` 0; the tokenizer's errors.
pub fn encode_padded<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    tokenizer: &TextTokenizer,
    context: usize,
) -> Result<PaddedTexts> {
    if context == 0 {
        return Err(invalid("encode_padded", "context must be at least 1"));
    }
    let pad = tokenizer.pad_id() as f32;
    let (mut features, mut mask, mut lengths, mut truncated) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for text in texts {
        let ids = tokenizer.encode(text)?;
        if ids.len() > context {
            truncated += 1;
        }
        let kept = ids.len().min(context);
        features.extend(ids[..kept].iter().map(|&id| id as f32));
        features.resize(features.len() + context - kept, pad);
        mask.resize(mask.len() + kept, 1.0);
        mask.resize(mask.len() + context - kept, 0.0);
        lengths.push(kept);
    }
    Ok(PaddedTexts { features, mask, lengths, truncated })
}

/// Tokenizes each text of `table` with `tokenizer` and pads it with
/// [`TextTokenizer::pad_id`] (0) after the text, or keeps its first `context`
/// tokens. The dataset is named after the file's stem.
///
/// # Errors
/// [`TextError::InvalidArgument`] for `context` 0; the tokenizer's errors.
pub fn encode_classification(
    table: &TextTable,
    tokenizer: &TextTokenizer,
    context: usize,
) -> Result<ClassificationData> {
    if context == 0 {
        return Err(invalid("encode_classification", "context must be at least 1"));
    }
    let n = table.len();
    let PaddedTexts { features, mask, lengths, truncated } =
        encode_padded(table.texts().iter().map(String::as_str), tokenizer, context)?;
    let name = table
        .path()
        .file_name()
        .and_then(|f| f.to_str())
        .map(|f| f.split('.').next().unwrap_or(f).to_string())
        .unwrap_or_else(|| "text".to_string());
    let targets = Targets::classes(table.labels().to_vec(), table.num_classes())?;
    let dataset = Dataset::from_tensor(name, Tensor::try_from_vec(&[n, context], features)?, targets)?
        .with_class_names(table.class_names().to_vec())?;
    let mask = Tensor::try_from_vec(&[n, context], mask)?;
    Ok(ClassificationData { dataset, mask, lengths, truncated, context })
}

// ------------------------------------------------------------------ splits

/// A split of a table's rows into training and test rows, by groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSplit {
    /// Training row indices, ascending.
    pub train: Vec<usize>,
    /// Test row indices, ascending.
    pub test: Vec<usize>,
    /// The number of groups on the training side.
    pub train_groups: usize,
    /// The number of groups on the test side.
    pub test_groups: usize,
}

/// Holds out whole groups of rows: rows with equal cells in every column of
/// `columns` form a group; the groups (numbered in order of first appearance) are
/// shuffled by nn-data's seeded split ([`nn_data::split::shuffled_split`] with
/// fractions `[1 − test_fraction, test_fraction]`, ChaCha8, largest-remainder
/// counts) and each group goes wholly to one side. The test fraction counts
/// groups, not rows.
///
/// # Errors
/// [`TextError::MissingColumn`] for a column not in the table;
/// [`TextError::InvalidArgument`] for no column, a fraction outside `(0, 1)`, or a
/// side left without a group (too few groups for the fraction).
pub fn group_split(table: &TextTable, columns: &[&str], test_fraction: f64, seed: u64) -> Result<GroupSplit> {
    const OP: &str = "group_split";
    if columns.is_empty() {
        return Err(invalid(OP, "no grouping column given"));
    }
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(invalid(OP, format!("test fraction {test_fraction} must be in (0, 1)")));
    }
    let cells: Vec<&[String]> = columns.iter().map(|c| table.column(c)).collect::<Result<_>>()?;
    let mut group_of: HashMap<Vec<&str>, usize> = HashMap::new();
    let mut row_group = Vec::with_capacity(table.len());
    for r in 0..table.len() {
        let key: Vec<&str> = cells.iter().map(|c| c[r].as_str()).collect();
        let next = group_of.len();
        row_group.push(*group_of.entry(key).or_insert(next));
    }
    let groups = group_of.len();
    let parts = nn_data::split::shuffled_split(groups, &[1.0 - test_fraction, test_fraction], seed)?;
    if parts[0].is_empty() || parts[1].is_empty() {
        return Err(invalid(
            OP,
            format!(
                "{groups} groups at test fraction {test_fraction} give {} training and {} test groups; both need one",
                parts[0].len(),
                parts[1].len()
            ),
        ));
    }
    let mut is_test = vec![false; groups];
    for &g in &parts[1] {
        is_test[g] = true;
    }
    let (test, train): (Vec<usize>, Vec<usize>) = (0..table.len()).partition(|&r| is_test[row_group[r]]);
    Ok(GroupSplit { train, test, train_groups: parts[0].len(), test_groups: parts[1].len() })
}

/// Holds out whole chapters: [`group_split`] over the columns `book` and
/// `chapter` (the KJV's), so no chapter has verses on both sides.
///
/// # Errors
/// As [`group_split`].
pub fn chapter_split(table: &TextTable, test_fraction: f64, seed: u64) -> Result<GroupSplit> {
    group_split(table, &["book", "chapter"], test_fraction, seed)
}

/// `per_class` samples of each class present in `labels`, drawn without
/// replacement: the indices `0..N` are put in the seeded random order of
/// [`nn_data::split::shuffled_split`]`(N, &[1.0], seed)` and the first `per_class`
/// of each class are kept. Returns the chosen indices ascending (a class with a
/// label but no sample is not asked for).
///
/// # Errors
/// [`TextError::InvalidArgument`] for `per_class` 0 or a class with fewer than
/// `per_class` samples (naming the class and its count).
pub fn per_class_sample(labels: &[usize], per_class: usize, seed: u64) -> Result<Vec<usize>> {
    const OP: &str = "per_class_sample";
    if per_class == 0 {
        return Err(invalid(OP, "per_class must be at least 1"));
    }
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut available = vec![0usize; classes];
    for &l in labels {
        available[l] += 1;
    }
    if let Some((c, &have)) = available.iter().enumerate().find(|(_, &k)| k > 0 && k < per_class) {
        return Err(invalid(OP, format!("class {c} has {have} samples, fewer than the {per_class} asked for")));
    }
    let order = nn_data::split::shuffled_split(labels.len(), &[1.0], seed)?.swap_remove(0);
    let mut taken = vec![0usize; classes];
    let mut chosen: Vec<usize> = order
        .into_iter()
        .filter(|&i| {
            let c = labels[i];
            let keep = taken[c] < per_class;
            taken[c] += usize::from(keep);
            keep
        })
        .collect();
    chosen.sort_unstable();
    Ok(chosen)
}
