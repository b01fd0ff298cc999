//! CSV files: a header row, feature columns (numbers, or text categories), one or
//! more target columns.
//!
//! ```text
//! sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm,species
//! 5.1,3.5,1.4,0.2,setosa
//! ```
//!
//! Two ways in:
//!
//! - **Training**: [`read_table`] reads a file into a [`Table`]: the [`Dataset`] and
//!   the [`FeatureSchema`] it was encoded with (feature names, order, categories,
//!   missing-value policy), the target column names and the task with the reason it
//!   was chosen. [`read`] returns just the dataset.
//! - **Prediction and evaluation**: [`read_by_schema`] reads a file the way a saved
//!   schema says: columns are found by header name, in the schema's order, whatever
//!   the file's order; extra columns are ignored and listed; a headerless file whose
//!   rows have exactly the schema's fields is read by position.
//!
//! Both encode every row through [`FeatureSchema::encode_row`], so a row becomes the
//! same model inputs at fit time and at prediction time.
//!
//! # Reading a table
//! - The first non-blank row is the header; it names the columns. Names must be
//!   distinct and non-empty for the columns used (a model finds them by name).
//! - The target column is chosen by name or 0-based index ([`Column`]; a user's
//!   text, [`Column::NameOrIndex`], is a header name when one equals it, else an
//!   index); the default is the last column. Every other column is a feature, in file order, except the
//!   columns listed in [`CsvOptions::drop`].
//! - Targets are class labels or real values ([`TargetKind`]). With the default,
//!   [`TargetKind::Auto`], a target column holding any non-numeric cell is a class
//!   column, otherwise it is real-valued (regression); [`Table::task_reason`] says
//!   which. Integer class labels (`0`, `1`, ...) therefore need
//!   [`TargetKind::Classes`].
//! - Class labels are mapped to indices in sorted order, so the mapping does not
//!   depend on row order: numerically when every label is a number (`2` before
//!   `10`), otherwise by byte-wise string order (`setosa`, `versicolor`,
//!   `virginica`). The sorted labels become the dataset's class names.
//! - Feature values are parsed as `f32`, correctly rounded from the decimal text. A
//!   text value in a numeric column is an error suggesting `--categorical NAME` (the
//!   columns in [`CsvOptions::categorical`] are one-hot encoded over the sorted
//!   distinct values found in the file) or `--drop NAME`. Infinities and numbers
//!   beyond `f32`'s range are errors.
//! - Missing cells (empty, `NA`, `NaN`, `null`, `?`, ...: [`is_missing`]) follow
//!   [`CsvOptions::missing`]: an error naming the line and column (the default), the
//!   row dropped ([`Missing::Drop`], counted in [`Table::dropped_rows`]), or a `NaN`
//!   feature for the mean imputer to fill ([`Missing::Mean`], rows counted in
//!   [`Table::rows_with_missing`]; see [`Scaler::fit_impute_mean`](crate::Scaler::fit_impute_mean);
//!   a missing categorical cell encodes as a block of `NaN`, which the imputer fills
//!   with the training frequency of each category). A missing target is
//!   an error, or drops the row under [`Missing::Drop`]. The categories of a
//!   categorical column come from the rows kept.
//! - A file with a header but no data row is an error: a dataset of no samples
//!   cannot be trained or evaluated on.
//!
//! # The format
//! - Fields are separated by [`CsvOptions::delimiter`] (`,` by default;
//!   [`parse_delimiter`] reads a user's spelling). A header that is one column but
//!   contains `;`, a tab, `|` or `,` is an error asking whether the file uses that
//!   delimiter.
//! - Fields may be quoted (`"5.1"`, `"a, b"`, `"say ""hi"""`), and a quoted field may
//!   span lines; a quote left open at the end of the file is an error naming the line
//!   where it opened. A quote opens a quoted field only as the field's first
//!   character, as in RFC 4180: in `1, "a, b"` the space before it makes the quote
//!   text, and the field ends at the comma. Spaces around fields are trimmed; blank
//!   lines (also at the end) are skipped; `\n`, `\r\n` and `\r` line ends all work;
//!   a UTF-8 byte-order mark is ignored. Text must be UTF-8.
//! - The whole file is read into memory, then parsed by the `csv` crate (twice for a
//!   table: categories must be known before rows are encoded).
//!
//! Errors are [`DataError::Csv`] with the 1-based line where the record starts,
//! counting every physical line (the header, blank lines, line breaks inside quoted
//! fields, whatever the line ends), and, for a cell, the 1-based column and its
//! header name.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

use nn_tensor::Tensor;

use crate::dataset::{Dataset, Targets};
use crate::error::{invalid, DataError, Result};
use crate::schema::{
    is_missing, quote, CellError, CellErrorKind, ColumnKind, FeatureColumn, FeatureSchema, Missing, Task,
};

/// A column of a CSV file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Column {
    /// The column whose header is this name (the first, if several are).
    Name(String),
    /// The column at this 0-based index.
    Index(usize),
    /// A column as a user typed it (`nn-cli`'s `--target`, `--drop`, `--categorical`):
    /// the column whose header is this text (the first, if several are); otherwise,
    /// when the text is a whole number, the column at that 0-based index. So a header
    /// of digits (`2020`, `0`) is always reached by its name, and `2` means the third
    /// column only when no column is named `2`.
    NameOrIndex(String),
    /// The last column.
    #[default]
    Last,
}

/// What the target column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetKind {
    /// Classes if any target cell is not a number, else real values.
    #[default]
    Auto,
    /// Class labels (any text, numbers included), mapped to indices in sorted order.
    Classes,
    /// Real values (regression); every target cell must be a finite number.
    Real,
}

/// How to read a CSV file into a [`Table`]. The default reads today's layout: the
/// last column is the target, every other column a numeric feature, a missing cell
/// an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The target columns: one for classes or single-output regression, several for
    /// multi-output regression (targets `[N, k]`). Default: the last column.
    pub targets: Vec<Column>,
    /// What the target columns hold. Default: [`TargetKind::Auto`].
    pub kind: TargetKind,
    /// The field delimiter. Default: `b','`.
    pub delimiter: u8,
    /// Columns to ignore (e.g. an `id` column). Default: none.
    pub drop: Vec<Column>,
    /// Text feature columns to one-hot encode ([`ColumnKind::Categorical`]). Default:
    /// none (every feature is numeric).
    pub categorical: Vec<Column>,
    /// What a missing feature cell does. Default: [`Missing::Error`].
    pub missing: Missing,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            targets: vec![Column::Last],
            kind: TargetKind::Auto,
            delimiter: b',',
            drop: Vec::new(),
            categorical: Vec::new(),
            missing: Missing::Error,
        }
    }
}

impl CsvOptions {
    /// Uses `column` as the single target column.
    pub fn target(mut self, column: Column) -> Self {
        self.targets = vec![column];
        self
    }

    /// Uses several target columns (multi-output regression).
    pub fn targets(mut self, columns: Vec<Column>) -> Self {
        self.targets = columns;
        self
    }

    /// Sets what the target columns hold.
    pub fn kind(mut self, kind: TargetKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the field delimiter (e.g. `b';'` or `b'\t'`; see [`parse_delimiter`]).
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// Ignores these columns.
    pub fn drop(mut self, columns: Vec<Column>) -> Self {
        self.drop = columns;
        self
    }

    /// One-hot encodes these text feature columns.
    pub fn categorical(mut self, columns: Vec<Column>) -> Self {
        self.categorical = columns;
        self
    }

    /// Sets what a missing feature cell does.
    pub fn missing(mut self, missing: Missing) -> Self {
        self.missing = missing;
        self
    }
}

/// Reads a user's spelling of a field delimiter: `,` `;` `|`, `tab` (any case), `\t`
/// (backslash and `t`, or a tab character), or any other single ASCII character
/// except the quote `"` and line breaks.
///
/// # Errors
/// A message saying what is accepted, quoting `text` (cut to 40 characters).
pub fn parse_delimiter(text: &str) -> std::result::Result<u8, String> {
    if text.eq_ignore_ascii_case("tab") || text == "\\t" || text == "\t" {
        return Ok(b'\t');
    }
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii() && !matches!(c, '"' | '\n' | '\r') => Ok(c as u8),
        _ => Err(format!(
            "a delimiter is one ASCII character other than '\"', e.g. ',' ';' '|' or tab, got {}",
            quote(text)
        )),
    }
}

/// A CSV file read for training: the dataset and what is needed to read new files
/// the same way (the [`FeatureSchema`], saved with a model).
///
/// With [`Missing::Mean`] the features hold `NaN` for missing cells: fit
/// [`Scaler::fit_impute_mean`](crate::Scaler::fit_impute_mean) on the training part
/// and add it to every part *first*, before any other scaler.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Features `[N, schema.width()]` as `f32` (one-hot blocks for categorical
    /// columns), targets as classes `[N]` (with class names) or real values `[N]` /
    /// `[N, k]`; named after the file's stem.
    pub data: Dataset,
    /// The feature columns in model-input order (file order, minus the targets and
    /// the dropped columns), their encodings, and the missing-value policy.
    pub schema: FeatureSchema,
    /// The header names of the target columns, in the order of
    /// [`CsvOptions::targets`].
    pub target_names: Vec<String>,
    /// Classification or regression.
    pub task: Task,
    /// Why [`task`](Self::task) was chosen, one short phrase: `column "species" holds
    /// text`, `column "quality" holds only numbers`, `chosen with --task`, or
    /// `2 target columns: multi-output regression`.
    pub task_reason: String,
    /// Rows removed for a missing value under [`Missing::Drop`].
    pub dropped_rows: usize,
    /// Rows kept with at least one missing feature cell under [`Missing::Mean`].
    pub rows_with_missing: usize,
}

/// Reads a CSV file into a [`Table`] (see the [module docs](self)).
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read; otherwise as [`read_table_from`].
pub fn read_table(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Table> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.into(), source })?;
    table_from_bytes(&bytes, path, options)
}

/// Parses CSV held in memory into a [`Table`]; `source` names it in errors and gives
/// the dataset its name (its file stem).
///
/// # Errors
/// As [`read_table_from`].
pub fn parse_table(bytes: &[u8], source: impl AsRef<Path>, options: &CsvOptions) -> Result<Table> {
    table_from_bytes(bytes, source.as_ref(), options)
}

/// Reads CSV from any reader into a [`Table`]; `source` names it in errors and gives
/// the dataset its name (its file stem).
///
/// # Errors
/// [`DataError::Io`] when the reader fails. [`DataError::InvalidArgument`] for a
/// delimiter that cannot be one (`"`, a line break, a non-ASCII byte).
/// [`DataError::Csv`] naming the line (and column) for: no header; a one-column
/// header that looks like another delimiter; an unknown or out-of-range target,
/// dropped or categorical column; a column chosen twice or in two roles; no feature
/// column; a used column with no name or a repeated name; several target columns
/// with [`TargetKind::Classes`]; a row with the wrong number of fields; an unclosed
/// quote; text that is not UTF-8; text, an infinity or a number beyond `f32` in a
/// numeric feature (or real target); a missing feature (under [`Missing::Error`]) or
/// target value; a categorical column with no value; no data row (left).
pub fn read_table_from<R: Read>(mut reader: R, source: impl AsRef<Path>, options: &CsvOptions) -> Result<Table> {
    let path = source.as_ref();
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|source| DataError::Io { path: path.into(), source })?;
    table_from_bytes(&bytes, path, options)
}

/// Reads a CSV file into a [`Dataset`] named after the file's stem: features
/// `[N, inputs]` as `f32`, targets as classes `[N]` (with class names) or real values
/// `[N]` / `[N, k]`. The [`Table::data`] of [`read_table`].
///
/// # Errors
/// As [`read_table`].
pub fn read(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset> {
    read_table(path, options).map(|t| t.data)
}

/// Parses CSV held in memory; `source` names it in errors and gives the dataset its
/// name (its file stem). The [`Table::data`] of [`parse_table`].
///
/// # Errors
/// As [`read_table_from`].
pub fn parse(bytes: &[u8], source: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset> {
    parse_table(bytes, source, options).map(|t| t.data)
}

/// Reads CSV from any reader; `source` names it in errors and gives the dataset its
/// name (its file stem). The [`Table::data`] of [`read_table_from`].
///
/// # Errors
/// As [`read_table_from`].
pub fn read_from<R: Read>(reader: R, source: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset> {
    read_table_from(reader, source, options).map(|t| t.data)
}

/// The most feature values a table may encode to (16 GiB of `f32`): beyond it, an
/// error instead of an allocation failure.
const MAX_ELEMENTS: usize = 1 << 32;

fn table_from_bytes(bytes: &[u8], path: &Path, options: &CsvOptions) -> Result<Table> {
    check_delimiter(options.delimiter)?;
    let mut records = Records::new(bytes, options.delimiter);
    let mut rec = Record::default();
    let nameless = Ctx { path, names: &[] };
    if !records.next_into(&mut rec).map_err(|e| nameless.raw(e))? {
        return Err(nameless.err(1, None, "no header row"));
    }
    let header: Vec<String> = rec.fields().map(str::to_owned).collect();
    let header_line = rec.line;
    let ctx = Ctx { path, names: &header };
    let ncols = header.len();
    if ncols == 1 {
        if let Some(hint) = delimiter_hint("the header", &header[0], options.delimiter) {
            return Err(ctx.err(header_line, None, hint));
        }
    }

    let resolve = |column: &Column, role: &str| -> Result<usize> {
        match column {
            Column::Last => Ok(ncols - 1),
            Column::Index(i) if *i < ncols => Ok(*i),
            Column::Index(i) => Err(ctx.err(
                header_line,
                None,
                format!("{role} column index {i} is out of range: the header has {ncols} columns"),
            )),
            Column::Name(name) => header.iter().position(|h| h == name).ok_or_else(|| {
                ctx.err(
                    header_line,
                    None,
                    format!("no column named {}; the columns are {}", quote(name), list(&header)),
                )
            }),
            Column::NameOrIndex(text) => match (header.iter().position(|h| h == text), text.parse::<usize>()) {
                (Some(i), _) => Ok(i),
                (None, Ok(i)) if i < ncols => Ok(i),
                (None, Ok(i)) => Err(ctx.err(
                    header_line,
                    None,
                    format!(
                        "no column named {} and {role} column index {i} is out of range: the header has {ncols} columns ({})",
                        quote(text),
                        list(&header)
                    ),
                )),
                (None, Err(_)) => Err(ctx.err(
                    header_line,
                    None,
                    format!("no column named {}; the columns are {}", quote(text), list(&header)),
                )),
            },
        }
    };

    // The roles of the columns.
    if options.targets.is_empty() {
        return Err(ctx.err(header_line, None, "no target column chosen"));
    }
    let mut target_cols = Vec::with_capacity(options.targets.len());
    for column in &options.targets {
        let index = resolve(column, "target")?;
        if target_cols.contains(&index) {
            return Err(ctx.err(header_line, Some(index), "chosen as a target twice"));
        }
        target_cols.push(index);
    }
    let mut dropped = vec![false; ncols];
    for column in &options.drop {
        let index = resolve(column, "dropped")?;
        if target_cols.contains(&index) {
            return Err(ctx.err(header_line, Some(index), "is the target: it cannot be dropped too"));
        }
        dropped[index] = true;
    }
    let mut categorical = vec![false; ncols];
    for column in &options.categorical {
        let index = resolve(column, "categorical")?;
        if target_cols.contains(&index) {
            return Err(ctx.err(
                header_line,
                Some(index),
                "is the target: --categorical is for feature columns (a text target is read as classes)",
            ));
        }
        if dropped[index] {
            return Err(ctx.err(header_line, Some(index), "is both dropped and categorical"));
        }
        categorical[index] = true;
    }
    let feature_cols: Vec<usize> = (0..ncols).filter(|&c| !target_cols.contains(&c) && !dropped[c]).collect();
    if feature_cols.is_empty() {
        let why =
            if dropped.contains(&true) { "every column is a target or dropped" } else { "every column is a target" };
        return Err(ctx.err(header_line, None, format!("no feature column: {why}")));
    }
    if options.kind == TargetKind::Classes && target_cols.len() > 1 {
        return Err(ctx.err(
            header_line,
            None,
            format!("{} target columns cannot all be class labels", target_cols.len()),
        ));
    }
    // A model finds its columns by name: the used ones need distinct names.
    let mut used: Vec<usize> = feature_cols.iter().chain(&target_cols).copied().collect();
    used.sort_unstable();
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(used.len());
    for &c in &used {
        if header[c].is_empty() && !target_cols.contains(&c) {
            return Err(ctx.err(
                header_line,
                Some(c),
                format!(
                    "no name in the header (a model finds its columns by name): add one, or ignore the column with --drop {c} (0-based)"
                ),
            ));
        }
        if let Some(&first) = seen.get(header[c].as_str()) {
            return Err(ctx.err(
                header_line,
                Some(c),
                format!(
                    "repeats the name of column {} (a model finds its columns by name): rename one, or ignore it with --drop {c} (0-based)",
                    first + 1
                ),
            ));
        }
        seen.insert(&header[c], c);
    }

    // Pass 1: find the missing cells, decide which rows stay, collect the categories
    // and the target cells. (Numbers are checked once, when pass 2 encodes them.)
    let mut categories: Vec<BTreeSet<String>> = vec![BTreeSet::new(); feature_cols.len()];
    let mut keep: Vec<bool> = Vec::new();
    let mut target_cells: Vec<String> = Vec::new();
    let mut target_lines: Vec<u64> = Vec::new();
    let (mut dropped_rows, mut rows_with_missing) = (0usize, 0usize);
    while records.next_into(&mut rec).map_err(|e| ctx.raw(e))? {
        let line = rec.line;
        if rec.len() != ncols {
            return Err(ctx.err(line, None, format!("expected {ncols} fields as in the header, found {}", rec.len())));
        }
        let (mut drop_row, mut has_missing) = (false, false);
        for &c in &feature_cols {
            let cell = rec.get(c);
            if is_missing(cell) {
                match options.missing {
                    Missing::Error => {
                        return Err(ctx.err(
                            line,
                            Some(c),
                            format!("missing value{} (use --missing drop or --missing mean)", shown(cell)),
                        ))
                    }
                    Missing::Drop => drop_row = true,
                    Missing::Mean => has_missing = true,
                }
            }
        }
        for &c in &target_cols {
            let cell = rec.get(c);
            if is_missing(cell) {
                if options.missing != Missing::Drop {
                    return Err(ctx.err(
                        line,
                        Some(c),
                        format!("missing target value{} (--missing drop drops such rows)", shown(cell)),
                    ));
                }
                drop_row = true;
            }
        }
        keep.push(!drop_row);
        if drop_row {
            dropped_rows += 1;
            continue;
        }
        rows_with_missing += usize::from(has_missing);
        for (set, &c) in categories.iter_mut().zip(&feature_cols) {
            let cell = rec.get(c);
            if categorical[c] && !is_missing(cell) && !set.contains(cell) {
                set.insert(cell.to_owned());
            }
        }
        target_cells.extend(target_cols.iter().map(|&c| rec.get(c).to_owned()));
        target_lines.push(line);
    }
    let rows = target_lines.len();
    if rows == 0 {
        let message = if dropped_rows > 0 {
            format!("no data row left: all {dropped_rows} rows have a missing value (--missing drop)")
        } else {
            "no data rows after the header".into()
        };
        return Err(ctx.err(header_line, None, message));
    }

    let mut columns = Vec::with_capacity(feature_cols.len());
    for (set, &c) in categories.into_iter().zip(&feature_cols) {
        let kind = if categorical[c] {
            if set.is_empty() {
                return Err(ctx.err(header_line, Some(c), "a categorical column with no value in any row"));
            }
            // A BTreeSet<String> iterates in byte-wise order, as encode_row requires.
            ColumnKind::Categorical { categories: set.into_iter().collect() }
        } else {
            ColumnKind::Numeric
        };
        columns.push(FeatureColumn { name: header[c].clone(), kind });
    }
    let schema = FeatureSchema { columns, missing: options.missing };

    // Pass 2: encode the kept rows, as prediction will.
    let width = schema.width();
    let total = rows.checked_mul(width).filter(|&t| t <= MAX_ELEMENTS);
    let Some(total) = total else {
        let widest = schema.columns.iter().zip(&feature_cols).max_by_key(|(c, _)| c.width()).map(|(_, &i)| i);
        return Err(ctx.err(
            header_line,
            widest,
            format!(
                "{rows} rows × {width} inputs is too large (over {MAX_ELEMENTS} values); \
                 a categorical column with one category per row (an id?) should be dropped"
            ),
        ));
    };
    let mut features: Vec<f32> = Vec::with_capacity(total);
    let mut records = Records::new(bytes, options.delimiter);
    records.next_into(&mut rec).map_err(|e| ctx.raw(e))?; // the header
    let mut index = 0;
    while records.next_into(&mut rec).map_err(|e| ctx.raw(e))? {
        let kept = keep.get(index).copied().unwrap_or(false);
        index += 1;
        if kept {
            schema.encode_row(|i| feature_cols.get(i).map(|&c| rec.get(c)), &mut features).map_err(
                |e: CellError| {
                    let c = feature_cols.get(e.column).copied();
                    let message = match (e.kind, c) {
                        // Text in a numeric column: name both ways out.
                        (CellErrorKind::NotANumber, Some(c)) => format!(
                            "{e} (a text column needs --categorical {0}, or --drop {0} to ignore it)",
                            quote(&header[c])
                        ),
                        // (Missing values were dealt with in pass 1.)
                        _ => e.to_string(),
                    };
                    ctx.err(rec.line, c, message)
                },
            )?;
        }
    }

    // The task.
    let numeric = |s: &str| s.parse::<f32>().ok().filter(|v| v.is_finite());
    let target_names: Vec<String> = target_cols.iter().map(|&c| header[c].clone()).collect();
    let (task, task_reason) = match options.kind {
        TargetKind::Classes => (Task::Classification, "chosen with --task".to_string()),
        TargetKind::Real => (Task::Regression, "chosen with --task".to_string()),
        TargetKind::Auto if target_cols.len() > 1 => {
            (Task::Regression, format!("{} target columns: multi-output regression", target_cols.len()))
        }
        TargetKind::Auto if target_cells.iter().any(|c| numeric(c).is_none()) => {
            (Task::Classification, format!("column {} holds text", quote(&target_names[0])))
        }
        TargetKind::Auto => (Task::Regression, format!("column {} holds only numbers", quote(&target_names[0]))),
    };

    let name = path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned());
    let feature_tensor = Tensor::try_from_vec(&[rows, width], features)?;
    let data = if task == Task::Classification {
        let names = sorted_classes(&target_cells);
        let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let labels: Vec<usize> = target_cells.iter().map(|c| index.get(c.as_str()).copied().unwrap_or(0)).collect();
        let targets = Targets::classes(labels, names.len())?;
        Dataset::from_tensor(name, feature_tensor, targets)?.with_class_names(names)?
    } else {
        let k = target_cols.len();
        let mut values = Vec::with_capacity(target_cells.len());
        for (i, cell) in target_cells.iter().enumerate() {
            let c = target_cols[i % k];
            values.push(parse_number(cell).map_err(|m| ctx.err(target_lines[i / k], Some(c), m))?);
        }
        let shape: Vec<usize> = if k == 1 { vec![rows] } else { vec![rows, k] };
        let targets = Targets::real(Tensor::try_from_vec(&shape, values)?)?;
        Dataset::from_tensor(name, feature_tensor, targets)?
    };
    Ok(Table { data, schema, target_names, task, task_reason, dropped_rows, rows_with_missing })
}

/// The distinct labels sorted: numerically when every one is a number, otherwise
/// byte-wise.
fn sorted_classes(cells: &[String]) -> Vec<String> {
    let distinct: std::collections::HashSet<&str> = cells.iter().map(String::as_str).collect();
    let mut names: Vec<String> = distinct.into_iter().map(str::to_owned).collect();
    names.sort_unstable();
    let numbers: Option<Vec<f64>> = names.iter().map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite())).collect();
    if let Some(numbers) = numbers {
        let mut paired: Vec<(f64, String)> = numbers.into_iter().zip(names).collect();
        paired.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        names = paired.into_iter().map(|(_, s)| s).collect();
    }
    names
}

// ------------------------------------------------------------------ by schema

/// How to read a file by a saved [`FeatureSchema`] ([`read_by_schema`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaReadOptions {
    /// The field delimiter. Default: `b','`.
    pub delimiter: u8,
    /// The target column's header name, to read targets too (evaluation). Default:
    /// none (prediction).
    pub target: Option<String>,
    /// The model's classes (class index `i` is `class_names[i]`): each target label
    /// is mapped to its index. `None`: the targets are real values. Used only with
    /// [`target`](Self::target).
    pub class_names: Option<Vec<String>>,
    /// Skip each row with a missing feature value, or a missing target, instead of
    /// refusing it, and count it in [`SchemaRead::dropped_rows`]: evaluating a model
    /// trained with [`Missing::Drop`] on the same kind of file drops the rows its
    /// training dropped. Default: `false` (prediction answers every row).
    pub drop_missing: bool,
}

impl Default for SchemaReadOptions {
    fn default() -> Self {
        SchemaReadOptions { delimiter: b',', target: None, class_names: None, drop_missing: false }
    }
}

impl SchemaReadOptions {
    /// Sets the field delimiter (see [`parse_delimiter`]).
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// Reads the target column with this header name too.
    pub fn target(mut self, name: impl Into<String>) -> Self {
        self.target = Some(name.into());
        self
    }

    /// Maps target labels to the indices of these class names.
    pub fn class_names(mut self, names: Vec<String>) -> Self {
        self.class_names = Some(names);
        self
    }

    /// Skips (and counts) rows with a missing value ([`drop_missing`](Self::drop_missing)).
    pub fn drop_missing(mut self, drop: bool) -> Self {
        self.drop_missing = drop;
        self
    }
}

/// A file read by a saved schema ([`read_by_schema`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaRead {
    /// The model inputs `[N, schema.width()]`, row `i` from the `i`-th data row.
    pub features: Tensor<f32>,
    /// The targets when [`SchemaReadOptions::target`] was given: class indices `[N]`
    /// into [`class_names`](Self::class_names), or real values `[N]`.
    pub targets: Option<Targets>,
    /// The model's class names, when given in the options with a target.
    pub class_names: Option<Vec<String>>,
    /// The header names of the columns not read, in file order (the model's target
    /// column among them when no target was asked for). Empty when read by position.
    pub ignored_columns: Vec<String>,
    /// Whether the columns were taken by position (a file without a header, or a
    /// schema without names) rather than by name; callers should warn.
    pub by_position: bool,
    /// The number of categorical cells holding a category the model never saw in
    /// training (encoded as all zeros).
    pub unseen_categories: usize,
    /// The 1-based line on which each data row starts, `[N]`.
    pub line_numbers: Vec<u64>,
    /// The rows skipped for a missing value ([`SchemaReadOptions::drop_missing`]).
    pub dropped_rows: usize,
}

impl SchemaRead {
    /// The features and targets as a [`Dataset`] called `name`, with the class names
    /// when known (for evaluation).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] when no target was read.
    pub fn into_dataset(self, name: impl Into<String>) -> Result<Dataset> {
        let targets = self.targets.ok_or_else(|| invalid("SchemaRead::into_dataset", "no target column was read"))?;
        let classes = targets.num_classes().is_some();
        let data = Dataset::from_tensor(name, self.features, targets)?;
        match self.class_names {
            Some(names) if classes => data.with_class_names(names),
            _ => Ok(data),
        }
    }
}

/// Reads a CSV file by a saved schema: the model's feature columns found by header
/// name in the schema's order, encoded with [`FeatureSchema::encode_row`]; see
/// [`read_by_schema_from`] for the rules.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read; otherwise as
/// [`read_by_schema_from`].
pub fn read_by_schema(
    path: impl AsRef<Path>,
    schema: &FeatureSchema,
    options: &SchemaReadOptions,
) -> Result<SchemaRead> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.into(), source })?;
    by_schema_from_bytes(&bytes, path, schema, options)
}

/// [`read_by_schema`] on CSV held in memory; `source` names it in errors.
///
/// # Errors
/// As [`read_by_schema_from`].
pub fn parse_by_schema(
    bytes: &[u8],
    source: impl AsRef<Path>,
    schema: &FeatureSchema,
    options: &SchemaReadOptions,
) -> Result<SchemaRead> {
    by_schema_from_bytes(bytes, source.as_ref(), schema, options)
}

/// Reads CSV from any reader by a saved schema; `source` names it in errors.
///
/// - With a header, each schema column is the header column of that name, whatever
///   the file's order; the target column likewise ([`SchemaReadOptions::target`]).
///   Other columns are ignored and listed in [`SchemaRead::ignored_columns`].
/// - The first row is data, not a header (`by_position`), when it has no field equal
///   to a schema column name or the target name, has exactly one field per schema
///   column (plus one, last, for the target when asked), and each field could be a
///   value there: a number or a missing cell, or for a categorical column one of its
///   categories, or for the target one of the class names. A schema without names
///   ([`FeatureSchema::positional`]) always reads by position: the first row is a
///   header unless every field could be a value; with a header the target column is
///   found by name and the others are the features in file order.
/// - Every row must have the header's (or first row's) number of fields.
/// - Missing values and unseen categories are handled as the schema says (see
///   [`FeatureSchema::encode_row`]), except that with
///   [`SchemaReadOptions::drop_missing`] a row with a missing feature or target value
///   is skipped and counted.
/// - Class labels map to the index of the equal class name, or else, for a number,
///   of the one class name equal to it as a number (`2.0` is class `2`).
///
/// # Errors
/// [`DataError::Io`] when the reader fails. [`DataError::InvalidArgument`] for an
/// inconsistent schema ([`FeatureSchema::check`]), an unusable delimiter, empty
/// class names, or a target name that is also a feature's. [`DataError::Csv`] naming
/// the line (and column) for: an empty file; a one-column first row that looks like
/// another delimiter; schema columns or the target absent from the header (naming
/// them and listing the file's columns), or present twice; a row with the wrong
/// number of fields; an unclosed quote; text that is not UTF-8; a cell the schema
/// cannot encode; a missing target; a label not among the class names; a real target
/// that is not a finite number; no data row (or none left by
/// [`SchemaReadOptions::drop_missing`]).
pub fn read_by_schema_from<R: Read>(
    mut reader: R,
    source: impl AsRef<Path>,
    schema: &FeatureSchema,
    options: &SchemaReadOptions,
) -> Result<SchemaRead> {
    let path = source.as_ref();
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|source| DataError::Io { path: path.into(), source })?;
    by_schema_from_bytes(&bytes, path, schema, options)
}

/// How the target column's labels are read.
enum Labels<'a> {
    /// Class indices into these names; `index` maps each name to its index.
    Classes { names: &'a [String], index: HashMap<&'a str, usize>, labels: Vec<usize> },
    /// Real values.
    Real(Vec<f32>),
}

impl Labels<'_> {
    /// The class index of `label`: the equal name, else the one name equal to it as
    /// a finite number.
    fn class_index(names: &[String], index: &HashMap<&str, usize>, label: &str) -> Option<usize> {
        if let Some(&i) = index.get(label) {
            return Some(i);
        }
        let value = label.parse::<f64>().ok().filter(|v| v.is_finite())?;
        let mut hits = names.iter().enumerate().filter(|(_, n)| n.parse::<f64>().ok() == Some(value));
        match (hits.next(), hits.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }
}

fn by_schema_from_bytes(
    bytes: &[u8],
    path: &Path,
    schema: &FeatureSchema,
    options: &SchemaReadOptions,
) -> Result<SchemaRead> {
    check_delimiter(options.delimiter)?;
    schema.check()?;
    let positional = schema.is_positional();
    let target = options.target.as_deref();
    let class_names = options.class_names.as_deref().filter(|_| target.is_some());
    if class_names.is_some_and(<[String]>::is_empty) {
        return Err(invalid("read_by_schema", "the model has no class names"));
    }
    if let Some(t) = target {
        if !positional && schema.columns.iter().any(|c| c.name == t) {
            return Err(invalid("read_by_schema", format!("the target column {} is also a feature", quote(t))));
        }
    }
    let n = schema.columns.len();
    let wanted = n + usize::from(target.is_some());

    let mut records = Records::new(bytes, options.delimiter);
    let mut rec = Record::default();
    let nameless = Ctx { path, names: &[] };
    if !records.next_into(&mut rec).map_err(|e| nameless.raw(e))? {
        return Err(nameless.err(1, None, "no header row: the file is empty"));
    }
    let first: Vec<String> = rec.fields().map(str::to_owned).collect();
    let first_line = rec.line;

    // Could `field` be a value of file column `position` read by position?
    let value_like = |position: Option<usize>, field: &str| -> bool {
        if is_missing(field) || field.parse::<f64>().is_ok() {
            return true;
        }
        let known_category = |c: &FeatureColumn| match &c.kind {
            ColumnKind::Categorical { categories } => categories.iter().any(|k| k == field),
            ColumnKind::Numeric => false,
        };
        let known_class = || class_names.is_some_and(|names| names.iter().any(|k| k == field));
        match position {
            Some(i) if i < n => known_category(&schema.columns[i]),
            Some(_) => known_class(),
            None => schema.columns.iter().any(known_category) || known_class(),
        }
    };
    let headerless = if positional {
        first.iter().all(|f| value_like(None, f))
    } else {
        !first.iter().any(|f| schema.columns.iter().any(|c| c.name == *f) || Some(f.as_str()) == target)
            && first.len() == wanted
            && first.iter().enumerate().all(|(i, f)| value_like(Some(i), f))
    };

    if first.len() == 1 && wanted > 1 {
        let what = if headerless { "the first row" } else { "the header" };
        if let Some(hint) = delimiter_hint(what, &first[0], options.delimiter) {
            return Err(nameless.err(first_line, None, hint));
        }
    }

    // Which file column feeds each schema column, and the target's.
    let (feature_idx, target_idx, names, ignored_columns): (Vec<usize>, Option<usize>, Vec<String>, Vec<String>);
    if headerless {
        if first.len() != wanted {
            let with = if target.is_some() { " and the target, last" } else { "" };
            return Err(nameless.err(
                first_line,
                None,
                format!(
                    "a file without a header needs {wanted} fields per row (the model's {n} columns{with}), found {}",
                    first.len()
                ),
            ));
        }
        feature_idx = (0..n).collect();
        target_idx = target.map(|_| n);
        names = schema.columns.iter().map(|c| c.name.clone()).chain(target.map(str::to_owned)).collect();
        ignored_columns = Vec::new();
    } else {
        let ctx = Ctx { path, names: &first };
        // Each name's first column, and its second when it repeats.
        let mut positions: HashMap<&str, (usize, Option<usize>)> = HashMap::with_capacity(first.len());
        for (i, h) in first.iter().enumerate() {
            positions
                .entry(h.as_str())
                .and_modify(|e| {
                    e.1.get_or_insert(i);
                })
                .or_insert((i, None));
        }
        let find = |name: &str| -> Result<Option<usize>> {
            match positions.get(name) {
                None => Ok(None),
                Some(&(a, None)) => Ok(Some(a)),
                Some(&(a, Some(b))) => Err(ctx.err(
                    first_line,
                    Some(b),
                    format!("the name is also column {}'s: the model's column is ambiguous", a + 1),
                )),
            }
        };
        target_idx = match target {
            None => None,
            Some(t) => Some(find(t)?.ok_or_else(|| {
                ctx.err(
                    first_line,
                    None,
                    format!(
                        "no target column {}{}; the file's columns are {}",
                        quote(t),
                        near(&first, t),
                        list(&first)
                    ),
                )
            })?),
        };
        if positional {
            feature_idx = (0..first.len()).filter(|&i| Some(i) != target_idx).collect();
            if feature_idx.len() != n {
                return Err(ctx.err(
                    first_line,
                    None,
                    format!(
                        "the model reads {n} feature columns by position, the file has {}{}",
                        feature_idx.len(),
                        if target.is_some() { " besides the target" } else { "" }
                    ),
                ));
            }
        } else {
            let mut found = Vec::with_capacity(n);
            let mut absent: Vec<&str> = Vec::new();
            for c in &schema.columns {
                match find(&c.name)? {
                    Some(i) => found.push(i),
                    None => absent.push(&c.name),
                }
            }
            if !absent.is_empty() {
                let named: Vec<String> = absent.iter().take(5).map(|a| quote(a)).collect();
                let more = if absent.len() > 5 { format!(" and {} more", absent.len() - 5) } else { String::new() };
                let (noun, verb) = if absent.len() == 1 { ("column", "is") } else { ("columns", "are") };
                let hint = if absent.len() == 1 { near(&first, absent[0]) } else { String::new() };
                let numbers = if first.iter().all(|f| value_like(None, f)) {
                    format!(" (the first row holds values: a file without a header needs {wanted} fields per row)")
                } else {
                    String::new()
                };
                return Err(ctx.err(
                    first_line,
                    None,
                    format!(
                        "the model's {noun} {}{more} {verb} not in the header{hint}; the file's columns are {}{numbers}",
                        named.join(", "),
                        list(&first)
                    ),
                ));
            }
            feature_idx = found;
        }
        let mut read = vec![false; first.len()];
        feature_idx.iter().chain(&target_idx).for_each(|&i| read[i] = true);
        ignored_columns = (0..first.len()).filter(|&i| !read[i]).map(|i| first[i].clone()).collect();
        names = first.clone();
    }
    let ctx = Ctx { path, names: &names };
    let expected = first.len();

    let mut labels = match class_names {
        Some(names) => Labels::Classes {
            names,
            index: names.iter().enumerate().rev().map(|(i, n)| (n.as_str(), i)).collect(),
            labels: Vec::new(),
        },
        None => Labels::Real(Vec::new()),
    };
    let mut features: Vec<f32> = Vec::new();
    let mut line_numbers: Vec<u64> = Vec::new();
    let mut unseen_categories = 0usize;
    let mut dropped_rows = 0usize;
    let mut row = |rec: &Record| -> Result<()> {
        let line = rec.line;
        if rec.len() != expected {
            let like = if headerless { "the first row" } else { "the header" };
            return Err(ctx.err(line, None, format!("expected {expected} fields as in {like}, found {}", rec.len())));
        }
        if options.drop_missing && feature_idx.iter().chain(&target_idx).any(|&c| is_missing(rec.get(c))) {
            dropped_rows += 1;
            return Ok(());
        }
        unseen_categories +=
            schema.encode_row(|i| feature_idx.get(i).map(|&c| rec.get(c)), &mut features).map_err(|e: CellError| {
                ctx.err(line, feature_idx.get(e.column).copied(), predict_cell_message(schema, &e))
            })?;
        if let Some(t) = target_idx {
            let cell = rec.get(t);
            if is_missing(cell) {
                return Err(ctx.err(line, Some(t), format!("missing target value{}", shown(cell))));
            }
            match &mut labels {
                Labels::Classes { names, index, labels } => {
                    let i = Labels::class_index(names, index, cell).ok_or_else(|| {
                        ctx.err(
                            line,
                            Some(t),
                            format!(
                                "label {} is not one of the model's {} classes {}",
                                quote(cell),
                                names.len(),
                                list(names)
                            ),
                        )
                    })?;
                    labels.push(i);
                }
                Labels::Real(values) => values.push(parse_number(cell).map_err(|m| ctx.err(line, Some(t), m))?),
            }
        }
        line_numbers.push(line);
        Ok(())
    };
    if headerless {
        row(&rec)?;
    }
    while records.next_into(&mut rec).map_err(|e| ctx.raw(e))? {
        row(&rec)?;
    }
    let rows = line_numbers.len();
    if rows == 0 && dropped_rows > 0 {
        return Err(ctx.err(
            first_line,
            None,
            format!("no data row left: all {dropped_rows} rows have a missing value (the model was trained with --missing drop)"),
        ));
    }
    if rows == 0 {
        return Err(ctx.err(first_line, None, "no data rows after the header"));
    }
    let features = Tensor::try_from_vec(&[rows, schema.width()], features)?;
    let targets = match (target_idx, labels) {
        (None, _) => None,
        (Some(_), Labels::Classes { names, labels, .. }) => Some(Targets::classes(labels, names.len())?),
        (Some(_), Labels::Real(values)) => Some(Targets::real(Tensor::try_from_vec(&[rows], values)?)?),
    };
    Ok(SchemaRead {
        features,
        targets,
        class_names: class_names.map(<[String]>::to_vec),
        ignored_columns,
        by_position: headerless || positional,
        unseen_categories,
        line_numbers,
        dropped_rows,
    })
}

// ------------------------------------------------------------------ helpers

/// Where errors point: the file, and the name of each column when known.
struct Ctx<'a> {
    path: &'a Path,
    names: &'a [String],
}

impl Ctx<'_> {
    /// A [`DataError::Csv`] at `line`, for the 0-based file `column` when given.
    fn err(&self, line: u64, column: Option<usize>, message: impl Into<String>) -> DataError {
        DataError::Csv {
            path: self.path.into(),
            line,
            column: column.map(|c| c + 1),
            column_name: column.and_then(|c| self.names.get(c)).filter(|n| !n.is_empty()).cloned(),
            message: message.into(),
        }
    }

    fn raw(&self, e: RawError) -> DataError {
        self.err(e.line, e.column, e.message)
    }
}

/// Refuses a delimiter the parser cannot split on.
fn check_delimiter(delimiter: u8) -> Result<()> {
    if delimiter == b'"' || delimiter == b'\n' || delimiter == b'\r' || !delimiter.is_ascii() {
        return Err(invalid(
            "csv",
            format!(
                "{:?} cannot be the field delimiter (one ASCII character other than '\"' or a line break)",
                delimiter as char
            ),
        ));
    }
    Ok(())
}

/// When a one-field row `field` contains another common delimiter, the message
/// asking whether the file uses it (the most frequent one; `what` is "the header" or
/// "the first row").
fn delimiter_hint(what: &str, field: &str, current: u8) -> Option<String> {
    let mut best: Option<(usize, u8)> = None;
    for c in [b';', b'\t', b'|', b','] {
        let count = field.bytes().filter(|&b| b == c).count();
        if c != current && count > 0 && best.is_none_or(|(n, _)| count > n) {
            best = Some((count, c));
        }
    }
    let (_, c) = best?;
    Some(if c == b'\t' {
        format!("{what} is one column but contains a tab: is the file tab-separated? pass --delimiter tab")
    } else {
        let c = c as char;
        format!("{what} is one column but contains '{c}': is the file '{c}'-separated? pass --delimiter '{c}'")
    })
}

/// `names` as `["a", "b", … 3 more]`, each cut to 40 characters, at most 12 shown.
fn list(names: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut parts: Vec<String> = names.iter().take(SHOWN).map(|n| quote(n)).collect();
    if names.len() > SHOWN {
        parts.push(format!("… {} more", names.len() - SHOWN));
    }
    format!("[{}]", parts.join(", "))
}

/// ` (the file has "Age")` when a header name equals `name` but for case.
fn near(header: &[String], name: &str) -> String {
    header
        .iter()
        .find(|h| h.eq_ignore_ascii_case(name))
        .map_or_else(String::new, |h| format!(" (the file has {})", quote(h)))
}

/// ` "NA"` for a missing cell spelled with text, nothing for an empty one.
fn shown(cell: &str) -> String {
    if cell.is_empty() {
        String::new()
    } else {
        format!(" {}", quote(cell))
    }
}

/// The message for a feature cell that [`FeatureSchema::encode_row`] refused when
/// reading a file to predict, worded for the command line (`nn-cli predict`).
fn predict_cell_message(schema: &FeatureSchema, e: &CellError) -> String {
    match e.kind {
        CellErrorKind::Missing => {
            let hint = match schema.missing {
                Missing::Drop => "the model was trained with --missing drop, which cannot drop a row to predict",
                _ => "the model was trained without --missing mean, so it needs every value",
            };
            format!("{e} ({hint})")
        }
        CellErrorKind::NotANumber => match schema.columns.get(e.column) {
            Some(column) => format!("{e} (a text column needs --categorical {})", quote(&column.name)),
            None => e.to_string(),
        },
        CellErrorKind::NotFinite => e.to_string(),
    }
}

/// Parses one numeric cell as a finite `f32` (correctly rounded).
fn parse_number(text: &str) -> std::result::Result<f32, String> {
    if is_missing(text) {
        return Err(format!("missing value{}", shown(text)));
    }
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("not a finite f32 number: {}", quote(text))),
        Err(_) => Err(format!("not a number: {}", quote(text))),
    }
}

/// A parse error below the level of columns: the line, the 0-based field.
struct RawError {
    line: u64,
    column: Option<usize>,
    message: String,
}

/// One record: its fields (trimmed UTF-8 text) and the line it starts on.
#[derive(Debug, Default)]
struct Record {
    line: u64,
    text: String,
    bounds: Vec<(usize, usize)>,
}

impl Record {
    fn len(&self) -> usize {
        self.bounds.len()
    }

    /// Field `i` (`""` past the end).
    fn get(&self, i: usize) -> &str {
        self.bounds.get(i).map_or("", |&(a, b)| &self.text[a..b])
    }

    fn fields(&self) -> impl Iterator<Item = &str> {
        self.bounds.iter().map(|&(a, b)| &self.text[a..b])
    }
}

/// A `csv` reader with our settings: every row a record (the header too), any
/// number of fields per row, fields untrimmed (trimmed when copied into a
/// [`Record`]).
fn csv_reader<R: Read>(input: R, delimiter: u8) -> ::csv::Reader<R> {
    ::csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(input)
}

/// The non-blank records of CSV bytes in memory, parsed by the `csv` crate, each
/// with the line it starts on counted here from its byte offset: `\n`, `\r\n` and
/// `\r` each end one line, inside quoted fields too.
struct Records<'a> {
    /// The input (csv skips a UTF-8 byte-order mark at its start).
    bytes: &'a [u8],
    delimiter: u8,
    reader: ::csv::Reader<&'a [u8]>,
    raw: ::csv::ByteRecord,
    /// The line breaks are counted up to this offset...
    counted: usize,
    /// ... which is on this 1-based line.
    line: u64,
    /// Whether the input holds a `\r`.
    has_cr: bool,
}

impl<'a> Records<'a> {
    fn new(bytes: &'a [u8], delimiter: u8) -> Records<'a> {
        let reader = csv_reader(bytes, delimiter);
        Records {
            bytes,
            delimiter,
            reader,
            raw: ::csv::ByteRecord::new(),
            counted: 0,
            line: 1,
            has_cr: bytes.contains(&b'\r'),
        }
    }

    /// The 1-based line holding byte `offset`, which is not before the last one
    /// asked for (records come in order). Counts the line breaks in between.
    fn line_of(&mut self, offset: usize) -> u64 {
        let offset = offset.clamp(self.counted, self.bytes.len());
        let span = &self.bytes[self.counted..offset];
        let mut breaks = span.iter().filter(|&&b| b == b'\n').count();
        if self.has_cr {
            // Each `\r` not followed by a `\n` (which may lie past `span`).
            let next = self.bytes.get(self.counted + 1..).unwrap_or_default().iter().chain([&0]);
            breaks += span.iter().zip(next).filter(|&(&b, &n)| b == b'\r' && n != b'\n').count();
        }
        self.line += breaks as u64;
        self.counted = offset;
        self.line
    }

    /// Reads the next record that is not blank (one empty field: a line of spaces)
    /// into `rec`; `false` at the end of the input.
    fn next_into(&mut self, rec: &mut Record) -> std::result::Result<bool, RawError> {
        loop {
            match self.reader.read_byte_record(&mut self.raw) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => {
                    let line = self.line_of(self.reader.position().byte() as usize);
                    return Err(RawError { line, column: None, message: e.to_string() });
                }
            }
            // The record's position is where the previous one stopped: past it lie
            // what csv skipped (a byte-order mark, blank lines, the `\n` of a `\r\n`).
            let mut at = self.raw.position().map_or(0, |p| p.byte() as usize);
            if at == 0 && self.bytes.starts_with(b"\xef\xbb\xbf") {
                at = 3;
            }
            let rest = self.bytes.get(at..).unwrap_or_default();
            let start = at + rest.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            rec.line = self.line_of(start);
            if self.reader.position().byte() as usize == self.bytes.len() {
                self.check_closed(start, self.raw.len())?;
            }
            rec.text.clear();
            rec.bounds.clear();
            for (c, field) in self.raw.iter().enumerate() {
                let field = field.trim_ascii();
                let text = std::str::from_utf8(field).map_err(|_| RawError {
                    line: rec.line,
                    column: Some(c),
                    message: format!(
                        "not UTF-8 text: {} (save the file as UTF-8)",
                        quote(&String::from_utf8_lossy(field))
                    ),
                })?;
                let a = rec.text.len();
                rec.text.push_str(text);
                rec.bounds.push((a, rec.text.len()));
            }
            if !(rec.len() == 1 && rec.get(0).is_empty()) {
                return Ok(true);
            }
        }
    }

    /// An error when the last record, starting at byte `start` with `fields`
    /// fields, ends inside a quoted field (csv ends it at the end of the input
    /// without a word). Read again with a delimiter appended, the record keeps its
    /// fields, and nothing follows, only when the delimiter falls inside the open
    /// quote; otherwise it ends a field or starts a record. (A line end first keeps
    /// csv from taking a byte-order mark there for the file's.)
    fn check_closed(&mut self, start: usize, fields: usize) -> std::result::Result<(), RawError> {
        let Some(last) = fields.checked_sub(1) else { return Ok(()) };
        let tail = self.bytes.get(start..).unwrap_or_default();
        let end = [self.delimiter];
        let mut reader = csv_reader(b"\n".chain(tail).chain(&end[..]), self.delimiter);
        let mut record = ::csv::ByteRecord::new();
        let open = matches!(reader.read_byte_record(&mut record), Ok(true))
            && record.len() == fields
            && matches!(reader.read_byte_record(&mut ::csv::ByteRecord::new()), Ok(false));
        if !open {
            return Ok(());
        }
        // The open field is its quote, then its text (the delimiter included) to
        // the end with each quote doubled.
        let text = record.get(last).unwrap_or_default();
        let quotes = text.iter().filter(|&&b| b == b'"').count();
        let opened = (start + tail.len() + 1).saturating_sub(1 + text.len() + quotes);
        Err(RawError {
            line: self.line_of(opened),
            column: Some(last),
            message: "a quoted field opened on this line is never closed".into(),
        })
    }
}
