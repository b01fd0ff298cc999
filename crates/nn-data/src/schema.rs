//! What a model knows about its table: the feature columns it was trained on (names,
//! order, types, categories), how missing values are handled, the task, and the
//! scaling of real-valued targets. Saved with a model (model.json `metadata`) so that
//! prediction selects columns by name and maps outputs back to the target's units.

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// Whether a model predicts classes or real values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Class labels (softmax output, sparse categorical cross-entropy).
    Classification,
    /// Real values (linear output, mean squared error).
    Regression,
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        })
    }
}

/// What to do with an empty cell (or `NA`, `NaN`, `null`, `?`) in a feature column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// Refuse the file with an error naming the row and column (the default).
    #[default]
    Error,
    /// Drop every row with a missing feature value (the count is reported).
    Drop,
    /// Replace a missing value by its column's mean over the training part
    /// (scikit-learn `SimpleImputer(strategy="mean")`); the means are saved with the
    /// model and used at prediction time too. A missing category becomes the mean of
    /// its one-hot inputs: the training frequency of each category.
    Mean,
}

/// How one feature column is encoded into the model's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ColumnKind {
    /// A number: one input.
    Numeric,
    /// Text categories, one-hot encoded: one input per category, in this order. A
    /// category not in the list (unseen in training) encodes as all zeros
    /// (scikit-learn `OneHotEncoder(handle_unknown="ignore")`); a missing one, under
    /// [`Missing::Mean`], as `NaN` in every input, which the mean imputer replaces by
    /// the training mean of each one-hot input: the training frequency of each
    /// category.
    Categorical {
        /// The categories seen in the training file, sorted.
        categories: Vec<String>,
    },
}

/// One feature column of the table a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureColumn {
    /// The header name.
    pub name: String,
    /// Its encoding. The categories of a categorical column are sorted (byte-wise
    /// string order), which [`FeatureSchema::encode_row`] relies on.
    #[serde(flatten)]
    pub kind: ColumnKind,
}

impl FeatureColumn {
    /// The number of model inputs this column encodes to (1, or its categories).
    pub fn width(&self) -> usize {
        match &self.kind {
            ColumnKind::Numeric => 1,
            ColumnKind::Categorical { categories } => categories.len(),
        }
    }
}

/// The feature columns of a table in the order the model sees them, and the policy
/// for missing values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    /// The columns, in model-input order.
    pub columns: Vec<FeatureColumn>,
    /// What a missing feature value does.
    #[serde(default)]
    pub missing: Missing,
}

impl FeatureSchema {
    /// A schema of numeric columns with these names.
    pub fn numeric<S: Into<String>>(names: impl IntoIterator<Item = S>) -> FeatureSchema {
        FeatureSchema {
            columns: names.into_iter().map(|n| FeatureColumn { name: n.into(), kind: ColumnKind::Numeric }).collect(),
            missing: Missing::Error,
        }
    }

    /// A schema of `n` numeric columns without names: a file is read by position
    /// (see [`crate::csv::read_by_schema`]). For models saved before schemas
    /// recorded column names.
    pub fn positional(n: usize) -> FeatureSchema {
        FeatureSchema::numeric(std::iter::repeat_n("", n))
    }

    /// Whether the columns have no names (every name empty): files are then read by
    /// position.
    pub fn is_positional(&self) -> bool {
        self.columns.iter().all(|c| c.name.is_empty())
    }

    /// Checks what a schema read from a model file must hold before use: at least
    /// one column; names either all empty ([`positional`](Self::positional)) or all
    /// non-empty and distinct; the categories of each categorical column sorted
    /// (byte-wise) and distinct, as [`encode_row`](Self::encode_row) relies on.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidArgument`] naming the first problem.
    pub fn check(&self) -> Result<()> {
        if self.columns.is_empty() {
            return Err(invalid("FeatureSchema", "the schema has no column"));
        }
        let positional = self.is_positional();
        for (i, c) in self.columns.iter().enumerate() {
            if !positional && c.name.is_empty() {
                return Err(invalid("FeatureSchema", format!("column {} has no name while others do", i + 1)));
            }
            if !positional && self.columns[..i].iter().any(|o| o.name == c.name) {
                return Err(invalid("FeatureSchema", format!("column {} appears twice", quote(&c.name))));
            }
            if let ColumnKind::Categorical { categories } = &c.kind {
                if !categories.windows(2).all(|w| w[0] < w[1]) {
                    return Err(invalid(
                        "FeatureSchema",
                        format!("the categories of column {} are not sorted and distinct", quote(&c.name)),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The number of model inputs: the sum of the columns' widths.
    pub fn width(&self) -> usize {
        self.columns.iter().map(FeatureColumn::width).sum()
    }

    /// The name of each model input: a numeric column's name, or `column=category`
    /// for each category of a categorical column.
    pub fn input_names(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.width());
        for c in &self.columns {
            match &c.kind {
                ColumnKind::Numeric => out.push(c.name.clone()),
                ColumnKind::Categorical { categories } => {
                    out.extend(categories.iter().map(|k| format!("{}={k}", c.name)))
                }
            }
        }
        out
    }
}

/// Whether a raw cell means "no value": empty, `NA`, `N/A`, `NaN`, `nan`, `null`,
/// `NULL`, `None` or `?` (after trimming spaces), as pandas' `read_csv` reads them.
pub fn is_missing(field: &str) -> bool {
    matches!(field.trim(), "" | "NA" | "N/A" | "NaN" | "nan" | "null" | "NULL" | "None" | "?")
}

/// What is wrong with a cell that [`FeatureSchema::encode_row`] could not encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellErrorKind {
    /// No value (absent, or [`is_missing`]) and the schema's policy is not
    /// [`Missing::Mean`], so it cannot be imputed.
    Missing,
    /// Text that is not a number in a numeric column.
    NotANumber,
    /// A number outside `f32`'s range (or infinite) in a numeric column.
    NotFinite,
}

/// Why one cell of a row could not be encoded. Its [`Display`](std::fmt::Display)
/// text is neutral (`missing value`, `not a number: "x"`, ...); callers that
/// know their context (command-line flags, request format) word their own
/// message from [`kind`](Self::kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    /// The schema column (index into [`FeatureSchema::columns`]).
    pub column: usize,
    /// What is wrong.
    pub kind: CellErrorKind,
    /// The offending cell, trimmed (empty for an absent value).
    pub text: String,
}

impl std::fmt::Display for CellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            CellErrorKind::Missing => f.write_str("missing value"),
            CellErrorKind::NotANumber => write!(f, "not a number: {}", quote(&self.text)),
            CellErrorKind::NotFinite => write!(f, "not a finite f32 number: {}", quote(&self.text)),
        }
    }
}

impl std::error::Error for CellError {}

impl FeatureSchema {
    /// Encodes one row into [`width`](Self::width) model inputs appended to `out`.
    /// `field(i)` gives the raw text of schema column `i` (`None` when the row has
    /// no such value, which counts as missing).
    ///
    /// - A numeric column parses its text as `f32` (correctly rounded); a missing
    ///   value ([`is_missing`]) becomes `NaN` under [`Missing::Mean`] (the model's
    ///   imputing scaler replaces it by the training mean) and is an error otherwise.
    /// - A categorical column writes a one-hot block; a category not seen in
    ///   training writes all zeros. A missing value writes a block of `NaN` under
    ///   [`Missing::Mean`] (the imputing scaler replaces each by its one-hot input's
    ///   training mean, the category's training frequency) and is an error otherwise,
    ///   as for a numeric column.
    ///
    /// Returns the number of unseen categories met in the row.
    ///
    /// # Errors
    /// [`CellError`] naming the column: a missing value (unless [`Missing::Mean`]),
    /// text in a numeric column, a number outside `f32`'s range.
    /// On error `out` may hold part of the row.
    pub fn encode_row<'a>(
        &self,
        mut field: impl FnMut(usize) -> Option<&'a str>,
        out: &mut Vec<f32>,
    ) -> std::result::Result<usize, CellError> {
        let mut unseen = 0;
        for (i, column) in self.columns.iter().enumerate() {
            let raw = field(i).map(str::trim);
            let missing = raw.is_none_or(is_missing);
            if missing && self.missing != Missing::Mean {
                let text = raw.unwrap_or_default().to_owned();
                return Err(CellError { column: i, kind: CellErrorKind::Missing, text });
            }
            match &column.kind {
                ColumnKind::Numeric => {
                    if missing {
                        // Missing::Mean: the model's imputing scaler replaces it.
                        out.push(f32::NAN);
                        continue;
                    }
                    let text = raw.unwrap_or_default();
                    match text.parse::<f32>() {
                        Ok(v) if v.is_finite() => out.push(v),
                        Ok(_) => {
                            return Err(CellError { column: i, kind: CellErrorKind::NotFinite, text: text.to_owned() })
                        }
                        Err(_) => {
                            return Err(CellError { column: i, kind: CellErrorKind::NotANumber, text: text.to_owned() })
                        }
                    }
                }
                ColumnKind::Categorical { categories } => {
                    let start = out.len();
                    // Missing::Mean: the imputing scaler replaces each NaN by its
                    // one-hot input's training mean.
                    out.resize(start + categories.len(), if missing { f32::NAN } else { 0.0 });
                    if let Some(text) = raw.filter(|_| !missing) {
                        match categories.binary_search_by(|c| c.as_str().cmp(text)) {
                            Ok(k) => out[start + k] = 1.0,
                            Err(_) => unseen += 1,
                        }
                    }
                }
            }
        }
        Ok(unseen)
    }
}

/// `text` quoted for a message, cut to 40 characters.
pub(crate) fn quote(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// Standardisation of real-valued targets, fitted on the training part:
/// `z = (y − mean) / std` per output, so that a regression model trains on values of
/// unit scale; predictions are mapped back with `y = z · std + mean`
/// (scikit-learn `TransformedTargetRegressor` with a `StandardScaler`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetScaler {
    /// The mean of each output over the training part.
    pub mean: Vec<f64>,
    /// The population standard deviation of each output (1 where it is 0).
    pub std: Vec<f64>,
}

impl TargetScaler {
    /// Fits the mean and standard deviation of each of the `k` outputs of `values`
    /// (row-major `[N, k]`, or `[N]` when `k = 1`), accumulated in `f64`.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidArgument`] when `k` is 0, `values` is empty, its length
    /// is not a multiple of `k`, or a value is not finite.
    pub fn fit(values: &[f32], k: usize) -> Result<TargetScaler> {
        if k == 0 || values.is_empty() || !values.len().is_multiple_of(k) {
            return Err(invalid(
                "TargetScaler::fit",
                format!(" {} values do not form rows of {k} outputs", values.len()),
            ));
        }
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(invalid("TargetScaler::fit", format!("a target value is {v}")));
        }
        let n = (values.len() / k) as f64;
        let mut mean = vec![0.0f64; k];
        for row in values.chunks_exact(k) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; k];
        for row in values.chunks_exact(k) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v as f64 - m) * (v as f64 - m);
            }
        }
        let std = var.iter().map(|s| (s / n).sqrt()).map(|s| if s > 0.0 { s } else { 1.0 }).collect();
        Ok(TargetScaler { mean, std })
    }

    /// The number of outputs.
    pub fn outputs(&self) -> usize {
        self.mean.len()
    }

    /// `(y − mean) / std` for each value of row-major `[N, k]` data, rounded to `f32` once.
    pub fn apply(&self, values: &[f32]) -> Vec<f32> {
        let k = self.mean.len().max(1);
        values.iter().enumerate().map(|(i, &v)| ((v as f64 - self.mean[i % k]) / self.std[i % k]) as f32).collect()
    }

    /// `z · std + mean` for each value of row-major `[N, k]` data, rounded to `f32` once.
    pub fn invert(&self, values: &[f32]) -> Vec<f32> {
        let k = self.mean.len().max(1);
        values.iter().enumerate().map(|(i, &z)| (z as f64 * self.std[i % k] + self.mean[i % k]) as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_scaler_round_trip() {
        // Outputs [1, 3] and [10, 10]: means 2 and 10, stds 1 and 0 (→ 1).
        let s = TargetScaler::fit(&[1.0, 10.0, 3.0, 10.0], 2).unwrap();
        assert_eq!(s.mean, [2.0, 10.0]);
        assert_eq!(s.std, [1.0, 1.0]);
        assert_eq!(s.apply(&[1.0, 10.0, 3.0, 12.0]), [-1.0, 0.0, 1.0, 2.0]);
        assert_eq!(s.invert(&[-1.0, 0.0, 1.0, 2.0]), [1.0, 10.0, 3.0, 12.0]);
        assert!(TargetScaler::fit(&[1.0, 2.0, 3.0], 2).is_err());
        assert!(TargetScaler::fit(&[1.0, f32::NAN], 1).is_err());
    }

    #[test]
    fn positional_and_checked_schemas() {
        let p = FeatureSchema::positional(3);
        assert!(p.is_positional());
        assert_eq!((p.width(), p.input_names()), (3, vec![String::new(); 3]));
        assert!(p.check().is_ok());
        assert!(!FeatureSchema::numeric(["a", "b"]).is_positional());
        assert!(FeatureSchema::numeric(["a", "b"]).check().is_ok());
        let bad = [
            FeatureSchema::numeric(Vec::<String>::new()),
            FeatureSchema::numeric(["a", ""]),
            FeatureSchema::numeric(["a", "a"]),
            FeatureSchema {
                columns: vec![FeatureColumn {
                    name: "c".into(),
                    kind: ColumnKind::Categorical { categories: vec!["x".into(), "x".into()] },
                }],
                missing: Missing::Error,
            },
        ];
        let messages: Vec<String> = bad.iter().map(|s| s.check().unwrap_err().to_string()).collect();
        assert_eq!(
            messages,
            [
                "FeatureSchema: the schema has no column",
                "FeatureSchema: column 2 has no name while others do",
                "FeatureSchema: column \"a\" appears twice",
                "FeatureSchema: the categories of column \"c\" are not sorted and distinct",
            ]
        );
    }

    #[test]
    fn schema_widths_and_names() {
        let schema = FeatureSchema {
            columns: vec![
                FeatureColumn { name: "age".into(), kind: ColumnKind::Numeric },
                FeatureColumn {
                    name: "city".into(),
                    kind: ColumnKind::Categorical { categories: vec!["Oslo".into(), "Rome".into()] },
                },
            ],
            missing: Missing::Mean,
        };
        assert_eq!(schema.width(), 3);
        assert_eq!(schema.input_names(), ["age", "city=Oslo", "city=Rome"]);
        let json = serde_json::to_string(&schema).unwrap();
        assert_eq!(
            json,
            r#"{"columns":[{"name":"age","type":"numeric"},{"name":"city","type":"categorical","categories":["Oslo","Rome"]}],"missing":"mean"}"#
        );
        assert_eq!(serde_json::from_str::<FeatureSchema>(&json).unwrap(), schema);

        let mut out = Vec::new();
        let row = ["41.5", "Rome"];
        assert_eq!(schema.encode_row(|i| Some(row[i]), &mut out), Ok(0));
        assert_eq!(out, [41.5, 0.0, 1.0]);
        // A missing age becomes NaN under Missing::Mean; an unseen city all zeros.
        out.clear();
        let row = ["NA", "Paris"];
        assert_eq!(schema.encode_row(|i| Some(row[i]), &mut out), Ok(1));
        assert!(out[0].is_nan());
        assert_eq!(out[1..], [0.0, 0.0]);
        let strict = FeatureSchema { missing: Missing::Error, ..schema.clone() };
        // A missing category is an error too unless the policy is Missing::Mean.
        out.clear();
        let err = strict.encode_row(|i| Some(["1", ""][i]), &mut out).unwrap_err();
        assert_eq!((err.column, err.kind, err.text.as_str()), (1, CellErrorKind::Missing, ""));
        assert_eq!(err.to_string(), "missing value");
        // A missing city under Missing::Mean: NaN in each of its inputs, for the
        // imputer to fill with the categories' training frequencies.
        out.clear();
        assert_eq!(schema.encode_row(|i| Some(["1", "NA"][i]), &mut out), Ok(0));
        assert_eq!(out[0], 1.0);
        assert!(out[1].is_nan() && out[2].is_nan(), "{out:?}");
        out.clear();
        let err = strict.encode_row(|i| Some(["", "Oslo"][i]), &mut out).unwrap_err();
        assert_eq!(err.column, 0);
        assert_eq!(err.kind, CellErrorKind::Missing);
        out.clear();
        let err = strict.encode_row(|i| Some(["old", "Oslo"][i]), &mut out).unwrap_err();
        assert_eq!((err.column, err.kind, err.text.as_str()), (0, CellErrorKind::NotANumber, "old"));
        assert_eq!(err.to_string(), "not a number: \"old\"");
        out.clear();
        let err = strict.encode_row(|i| Some(["1e39", "Oslo"][i]), &mut out).unwrap_err();
        assert_eq!(
            (err.kind, err.to_string().as_str()),
            (CellErrorKind::NotFinite, "not a finite f32 number: \"1e39\"")
        );
    }
}
