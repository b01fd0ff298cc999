//! CSV files: a header row, numeric feature columns, one or more target columns.
//!
//! ```text
//! sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm,species
//! 5.1,3.5,1.4,0.2,setosa
//! ```
//!
//! - The first row is the header; it names the columns.
//! - The target column is chosen by name or 0-based index ([`Column`]); the
//!   default is the last column. Every other column is a feature.
//! - Targets are class labels or real values ([`TargetKind`]). With the default,
//!   [`TargetKind::Auto`], a target column holding any non-numeric cell is a class
//!   column, otherwise it is real-valued (regression). Integer class labels
//!   (`0`, `1`, ...) therefore need [`TargetKind::Classes`].
//! - Class labels are mapped to indices in sorted order, so the mapping does not
//!   depend on row order: numerically when every label is a number (`2` before
//!   `10`), otherwise by byte-wise string order (`setosa`, `versicolor`,
//!   `virginica`). The sorted labels become the dataset's class names.
//! - Fields may be quoted (`"5.1"`); spaces around fields are trimmed; blank lines
//!   (also at the end) are skipped; `\n` and `\r\n` line ends both work; a UTF-8
//!   byte-order mark is ignored.
//! - Feature values are parsed as `f32`, correctly rounded from the decimal text.
//!   An empty cell, a non-numeric cell, `NaN` and infinities are errors naming the
//!   line and column. So is a row with the wrong number of fields.
//! - A file with a header but no data row is an error: a dataset of no samples
//!   cannot be trained or evaluated on.
//!
//! Errors are [`DataError::Csv`] with the 1-based line (counting the header as line
//! 1) and, for a cell, the 1-based column and its header name.

use std::io::Read;
use std::path::Path;

use nn_tensor::Tensor;

use crate::dataset::{Dataset, Targets};
use crate::error::{DataError, Result};

/// A column of a CSV file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Column {
    /// The column whose header is this name (the first, if several are).
    Name(String),
    /// The column at this 0-based index.
    Index(usize),
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

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The target columns: one for classes or single-output regression, several for
    /// multi-output regression (targets `[N, k]`). Default: the last column.
    pub targets: Vec<Column>,
    /// What the target columns hold. Default: [`TargetKind::Auto`].
    pub kind: TargetKind,
    /// The field delimiter. Default: `b','`.
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { targets: vec![Column::Last], kind: TargetKind::Auto, delimiter: b',' }
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

    /// Sets the field delimiter (e.g. `b';'` or `b'\t'`).
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }
}

/// Reads a CSV file into a [`Dataset`] named after the file's stem: features
/// `[N, columns − targets]` as `f32`, targets as classes `[N]` (with class names) or
/// real values `[N]` / `[N, k]`.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read; otherwise as [`read_from`].
pub fn read(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| DataError::Io { path: path.into(), source })?;
    read_from(std::io::BufReader::new(file), path, options)
}

/// Parses CSV held in memory; `source` names it in errors and gives the dataset its
/// name (its file stem).
///
/// # Errors
/// As [`read_from`].
pub fn parse(bytes: &[u8], source: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset> {
    read_from(bytes, source, options)
}

/// Reads CSV from any reader; `source` names it in errors and gives the dataset its
/// name (its file stem).
///
/// # Errors
/// [`DataError::Csv`] naming the line (and column) for: no header, an unknown
/// target column, no feature column, several target columns with
/// [`TargetKind::Classes`], a row with the wrong number of fields, an empty,
/// non-numeric or non-finite feature (or real target) value, and a file with no
/// data row. [`DataError::Io`] when the reader fails.
pub fn read_from<R: Read>(reader: R, source: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset> {
    let path = source.as_ref();
    let csv_err = |line: u64, column: Option<(usize, &str)>, message: String| DataError::Csv {
        path: path.into(),
        line,
        column: column.map(|(c, _)| c + 1),
        column_name: column.map(|(_, n)| n.to_string()),
        message,
    };
    let map_csv_error = |e: ::csv::Error| {
        let line = e.position().map_or(0, |p| p.line());
        let message = e.to_string();
        match e.into_kind() {
            ::csv::ErrorKind::Io(source) => DataError::Io { path: path.into(), source },
            _ => DataError::Csv { path: path.into(), line, column: None, column_name: None, message },
        }
    };

    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(::csv::Trim::All)
        .delimiter(options.delimiter)
        .from_reader(reader);
    let header: Vec<String> =
        rdr.byte_headers().map_err(map_csv_error)?.iter().map(|h| String::from_utf8_lossy(h).into_owned()).collect();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(csv_err(1, None, "no header row".into()));
    }
    let ncols = header.len();

    // Resolve the target columns.
    if options.targets.is_empty() {
        return Err(csv_err(1, None, "no target column chosen".into()));
    }
    let mut target_cols = Vec::with_capacity(options.targets.len());
    for column in &options.targets {
        let index = match column {
            Column::Last => ncols - 1,
            Column::Index(i) if *i < ncols => *i,
            Column::Index(i) => {
                return Err(csv_err(
                    1,
                    None,
                    format!("target column index {i} is out of range: the header has {ncols} columns"),
                ))
            }
            Column::Name(name) => header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| csv_err(1, None, format!("no column named {name:?}; the columns are {header:?}")))?,
        };
        if target_cols.contains(&index) {
            return Err(csv_err(1, Some((index, &header[index])), "chosen as a target twice".into()));
        }
        target_cols.push(index);
    }
    let feature_cols: Vec<usize> = (0..ncols).filter(|c| !target_cols.contains(c)).collect();
    if feature_cols.is_empty() {
        return Err(csv_err(1, None, "no feature column: every column is a target".into()));
    }
    if options.kind == TargetKind::Classes && target_cols.len() > 1 {
        return Err(csv_err(1, None, format!("{} target columns cannot all be class labels", target_cols.len())));
    }

    let mut features: Vec<f32> = Vec::new();
    let mut target_cells: Vec<String> = Vec::new();
    let mut target_lines: Vec<u64> = Vec::new();
    let mut record = ::csv::ByteRecord::new();
    let mut rows = 0usize;
    while rdr.read_byte_record(&mut record).map_err(map_csv_error)? {
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record[0].is_empty() {
            continue; // a line of spaces
        }
        if record.len() != ncols {
            return Err(csv_err(
                line,
                None,
                format!("expected {ncols} fields as in the header, found {}", record.len()),
            ));
        }
        for &c in &feature_cols {
            features.push(parse_number(&record[c]).map_err(|m| csv_err(line, Some((c, &header[c])), m))?);
        }
        for &c in &target_cols {
            let cell = String::from_utf8_lossy(&record[c]);
            if cell.is_empty() {
                return Err(csv_err(line, Some((c, &header[c])), "missing target value".into()));
            }
            target_cells.push(cell.into_owned());
        }
        target_lines.push(line);
        rows += 1;
    }
    if rows == 0 {
        return Err(csv_err(1, None, "no data rows after the header".into()));
    }

    let numeric = |s: &str| s.parse::<f32>().ok().filter(|v| v.is_finite());
    let classes = match options.kind {
        TargetKind::Classes => true,
        TargetKind::Real => false,
        TargetKind::Auto => target_cols.len() == 1 && target_cells.iter().any(|c| numeric(c).is_none()),
    };

    let name = path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned());
    let feature_tensor = Tensor::try_from_vec(&[rows, feature_cols.len()], features)?;
    if classes {
        let mut names: Vec<String> = target_cells.clone();
        names.sort();
        names.dedup();
        let numbers: Option<Vec<f64>> = names.iter().map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite())).collect();
        if let Some(numbers) = numbers {
            let mut paired: Vec<(f64, String)> = numbers.into_iter().zip(names).collect();
            paired.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            names = paired.into_iter().map(|(_, s)| s).collect();
        }
        let index: std::collections::HashMap<&str, usize> =
            names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let labels: Vec<usize> = target_cells.iter().map(|c| index[c.as_str()]).collect();
        let targets = Targets::classes(labels, names.len())?;
        Dataset::from_tensor(name, feature_tensor, targets)?.with_class_names(names)
    } else {
        let k = target_cols.len();
        let mut values = Vec::with_capacity(target_cells.len());
        for (i, cell) in target_cells.iter().enumerate() {
            let c = target_cols[i % k];
            let v =
                parse_number(cell.as_bytes()).map_err(|m| csv_err(target_lines[i / k], Some((c, &header[c])), m))?;
            values.push(v);
        }
        let shape: Vec<usize> = if k == 1 { vec![rows] } else { vec![rows, k] };
        let targets = Targets::real(Tensor::try_from_vec(&shape, values)?)?;
        Dataset::from_tensor(name, feature_tensor, targets)
    }
}

/// Parses one numeric cell as a finite `f32` (correctly rounded).
fn parse_number(cell: &[u8]) -> std::result::Result<f32, String> {
    if cell.is_empty() {
        return Err("missing value".into());
    }
    let text = std::str::from_utf8(cell).map_err(|_| format!("not a number: {:?}", String::from_utf8_lossy(cell)))?;
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("not a finite f32 number: {text:?}")),
        Err(_) => Err(format!("not a number: {text:?}")),
    }
}
