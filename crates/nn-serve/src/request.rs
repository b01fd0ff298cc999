//! Parsing the body of `POST /v1/predict` straight into one flat `f32` buffer,
//! checking every row against the model as it streams by.
//!
//! The body is `{"inputs": [row, ...]}` (or `{"instances": [row, ...]}`, as
//! TensorFlow Serving names it). A row is one of
//! - a flat array of `features` numbers (the product of the input shape, in
//!   row-major order: for an image `[h, w, 1]`, pixel `(y, x)` is value `y·w + x`);
//!   for a model trained on a CSV file these are the model's inputs, a categorical
//!   column as its one-hot block (`input_names` of `GET /v1/model`);
//! - nested arrays of the input shape itself, trailing dimensions of 1 optional
//!   (`[8][8]` or `[8][8][1]` for an `[8, 8, 1]` model);
//! - an object keyed by column name, for a model that knows its feature columns
//!   (trained on a CSV file with a header): `{"sepal_length": 5.1, "city": "Oslo",
//!   "age": null}`. Values are JSON numbers, strings (numbers as text, or
//!   categories) or `null` (a missing value); a number stands for its JSON text, so
//!   the category `"3"` can be sent as `3`. Each row is encoded by
//!   [`FeatureSchema::encode_row`], exactly as `nn-cli predict` encodes a CSV row.
//!   Keys that are not columns are ignored and reported; a column without a key is
//!   an error (send `null` for a missing value).

use std::fmt;

use std::collections::HashMap;

use nn_data::{CellErrorKind, FeatureSchema, Missing};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::error::ApiError;

/// Rows read from a request: `rows × features` raw values, row after row.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRows {
    /// Number of rows.
    pub rows: usize,
    /// The raw feature values, `rows · features` of them (`NaN` for a missing
    /// value the model's scalers impute).
    pub values: Vec<f32>,
    /// Keys of object rows that are not feature columns, each once: by row, and
    /// alphabetically within a row.
    pub ignored: Vec<String>,
    /// Categories not seen in training, summed over the rows (each encodes as an
    /// all-zero one-hot block).
    pub unseen_categories: usize,
}

/// Parses a `POST /v1/predict` body for a model with per-sample `input_shape`
/// and, when it was trained on a CSV file with a header, its feature columns
/// `schema` (which must encode to the product of `input_shape`).
///
/// # Errors
/// [`ApiError::BadJson`] for invalid JSON, a body that is not `{"inputs": [...]}`
/// (or `{"instances": [...]}`), unknown or repeated keys; [`ApiError::NonFinite`]
/// for a number that does not fit a finite `f32` (including JSON's out-of-range
/// literals and the non-JSON tokens `NaN` and `Infinity`); [`ApiError::BadShape`]
/// for a row that is neither an array nor an object, has the wrong number of
/// values, is ragged, or is nested in another shape than the model's;
/// [`ApiError::NoColumnNames`] for an object row when there is no `schema`;
/// [`ApiError::MissingColumn`] for an object row without one of the columns;
/// [`ApiError::BadValue`] for an object row's value that does not fit its column.
/// Messages name the row (0-based) and, where there is one, the value or column.
pub fn parse_predict_body(
    body: &[u8],
    input_shape: &[usize],
    schema: Option<&FeatureSchema>,
) -> Result<ParsedRows, ApiError> {
    let mut ctx = Ctx {
        shape: input_shape,
        features: input_shape.iter().product(),
        schema,
        values: Vec::new(),
        rows: 0,
        ignored: Vec::new(),
        unseen: 0,
        problem: None,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = BodySeed(&mut ctx).deserialize(&mut de).and_then(|()| de.end());
    match result {
        Ok(()) => {
            Ok(ParsedRows { rows: ctx.rows, values: ctx.values, ignored: ctx.ignored, unseen_categories: ctx.unseen })
        }
        Err(e) => Err(match ctx.problem.take() {
            Some(problem) => problem,
            None => classify_json_error(e, body),
        }),
    }
}

fn classify_json_error(e: serde_json::Error, body: &[u8]) -> ApiError {
    let message = e.to_string();
    let has_token = |t: &[u8]| body.windows(t.len()).any(|w| w == t);
    if message.contains("number out of range") {
        ApiError::NonFinite(format!("{message}: values must be finite 32-bit floats"))
    } else if e.is_syntax() && (has_token(b"NaN") || has_token(b"Infinity")) {
        ApiError::NonFinite(format!("{message} (JSON has no NaN or Infinity: values must be finite numbers)"))
    } else {
        ApiError::BadJson(format!(
            "invalid request body: {message}; expected {{\"inputs\": [row, ...]}}, each row an array of numbers \
             or an object keyed by column name"
        ))
    }
}

struct Ctx<'s> {
    shape: &'s [usize],
    features: usize,
    schema: Option<&'s FeatureSchema>,
    values: Vec<f32>,
    rows: usize,
    ignored: Vec<String>,
    unseen: usize,
    /// The first validation problem; the deserializer is then stopped with a
    /// placeholder error and this one is reported instead.
    problem: Option<ApiError>,
}

impl Ctx<'_> {
    fn fail<E: de::Error>(&mut self, problem: ApiError) -> E {
        let message = problem.to_string();
        self.problem.get_or_insert(problem);
        E::custom(message)
    }

    fn shape_text(&self) -> String {
        format!("{:?}", self.shape)
    }
}

struct BodySeed<'c, 's>(&'c mut Ctx<'s>);

impl<'de> DeserializeSeed<'de> for BodySeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object {\"inputs\": [[...], ...]}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        const FIELDS: &[&str] = &["inputs", "instances"];
        let mut seen: Option<String> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !FIELDS.contains(&key.as_ref()) {
                return Err(de::Error::unknown_field(&key, FIELDS));
            }
            if let Some(first) = &seen {
                return Err(if first == key.as_ref() {
                    de::Error::duplicate_field(if key == "inputs" { "inputs" } else { "instances" })
                } else {
                    de::Error::custom("give the rows under one of `inputs` and `instances`, not both")
                });
            }
            seen = Some(key.into_owned());
            map.next_value_seed(RowsSeed(&mut *self.0))?;
        }
        if seen.is_none() {
            return Err(de::Error::missing_field("inputs"));
        }
        Ok(())
    }
}

struct RowsSeed<'c, 's>(&'c mut Ctx<'s>);

impl<'de> DeserializeSeed<'de> for RowsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(RowSeed(&mut *self.0))?.is_some() {
            self.0.rows += 1;
        }
        Ok(())
    }
}

/// One row: an array (flat or nested). Anything else is a shape error.
struct RowSeed<'c, 's>(&'c mut Ctx<'s>);

impl<'de> DeserializeSeed<'de> for RowSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl RowSeed<'_, '_> {
    fn not_an_array<E: de::Error>(self, what: &str) -> E {
        let row = self.0.rows;
        let features = self.0.features;
        let objects = if self.0.schema.is_some() { " or objects keyed by column name" } else { "" };
        self.0.fail(ApiError::BadShape(format!(
            "row {row} is {what}, not an array: `inputs` is a list of rows of {features} values each{objects} \
             (to send one row, wrap it: {{\"inputs\": [[...]]}})"
        )))
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row (an array of numbers)")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let ctx = self.0;
        let start = ctx.values.len();
        let mut shape = RowShape { dims: Vec::new(), leaf_depth: None };
        NestedSeed { ctx: &mut *ctx, shape: &mut shape, depth: 0 }.visit_seq(seq)?;
        let count = ctx.values.len() - start;
        let row = ctx.rows;
        if count != ctx.features {
            let problem = ApiError::BadShape(format!(
                "row {row} has {count} values, the model expects {} (input shape {})",
                ctx.features,
                ctx.shape_text()
            ));
            return Err(ctx.fail(problem));
        }
        let dims: Vec<usize> = shape.dims.iter().map(|d| d.unwrap_or(0)).collect();
        let flat = dims.len() == 1;
        let mut trimmed = ctx.shape;
        while let [rest @ .., 1] = trimmed {
            if rest.len() < dims.len() {
                break;
            }
            trimmed = rest;
        }
        if !flat && dims != trimmed && dims != ctx.shape {
            let problem = ApiError::BadShape(format!(
                "row {row} is nested as {:?}, the model expects {} or a flat array of {} values",
                dims,
                ctx.shape_text(),
                ctx.features
            ));
            return Err(ctx.fail(problem));
        }
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.not_an_array("a number"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.not_an_array("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.not_an_array("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_an_array("a string"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.not_an_array("a boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_an_array("null"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.0;
        let row = ctx.rows;
        let Some(schema) = ctx.schema else {
            let problem = ApiError::NoColumnNames(format!(
                "row {row} is an object, but this model has no column names (its metadata records no feature \
                 columns): send each row as an array of {} numbers",
                ctx.features
            ));
            return Err(ctx.fail(problem));
        };
        // The row's cells by column name: Some(text), or None for null.
        let mut cells: HashMap<String, Option<String>> = HashMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let cell = map.next_value_seed(CellSeed { ctx: &mut *ctx, column: &key })?;
            if cells.insert(key.clone(), cell).is_some() {
                let problem = ApiError::BadJson(format!("row {row}: the key {key:?} appears twice"));
                return Err(ctx.fail(problem));
            }
        }
        let mut ordered: Vec<Option<&str>> = Vec::with_capacity(schema.columns.len());
        for column in &schema.columns {
            match cells.get(&column.name) {
                Some(cell) => ordered.push(cell.as_deref()),
                None => {
                    let problem = ApiError::MissingColumn {
                        message: format!(
                            "row {row} has no value for the column {:?} (send null for a missing value)",
                            column.name
                        ),
                        column: column.name.clone(),
                    };
                    return Err(ctx.fail(problem));
                }
            }
        }
        let mut extra: Vec<&String> = cells.keys().filter(|k| !schema.columns.iter().any(|c| &c.name == *k)).collect();
        extra.sort();
        for key in extra {
            if !ctx.ignored.contains(key) {
                ctx.ignored.push(key.clone());
            }
        }
        let start = ctx.values.len();
        match schema.encode_row(|i| ordered[i], &mut ctx.values) {
            Ok(unseen) => ctx.unseen += unseen,
            Err(e) => {
                ctx.values.truncate(start);
                let column = schema.columns.get(e.column).map(|c| c.name.clone()).unwrap_or_default();
                let message = match (e.kind, schema.missing) {
                    (CellErrorKind::Missing, Missing::Drop) => format!(
                        "row {row}, column {column:?}: {e} (the model was trained with --missing drop, \
                         which cannot drop a row to predict)"
                    ),
                    (CellErrorKind::Missing, _) => format!(
                        "row {row}, column {column:?}: {e} (the model was trained without --missing mean, \
                         so it cannot impute it)"
                    ),
                    // Text in a numeric column, or a number out of range: as is.
                    _ => format!("row {row}, column {column:?}: {e}"),
                };
                return Err(ctx.fail(ApiError::BadValue { message, column }));
            }
        }
        let count = ctx.values.len() - start;
        if count != ctx.features {
            // Checked when the model is loaded; kept as a guard.
            let problem = ApiError::Internal(format!(
                "row {row}: the feature columns encode to {count} values, the model expects {}",
                ctx.features
            ));
            return Err(ctx.fail(problem));
        }
        Ok(())
    }
}

/// One value of an object row: a number (as its JSON text), a string, or null.
struct CellSeed<'c, 'k, 's> {
    ctx: &'c mut Ctx<'s>,
    column: &'k str,
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_, '_, '_> {
    type Value = Option<String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl CellSeed<'_, '_, '_> {
    fn wrong<E: de::Error>(self, what: &str) -> E {
        let row = self.ctx.rows;
        let column = self.column.to_string();
        let message = format!("row {row}, column {column:?}: expected a number, a string or null, got {what}");
        self.ctx.fail(ApiError::BadValue { message, column })
    }
}

impl<'de> Visitor<'de> for CellSeed<'_, '_, '_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, a string or null")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<String>, E> {
        // serde_json's text of the number (shortest round-trip form).
        match serde_json::Number::from_f64(v) {
            Some(n) => Ok(Some(n.to_string())),
            None => Err(self.wrong("a non-finite number")),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Option<String>, E> {
        Ok(Some(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<String>, E> {
        Err(self.wrong("a boolean"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Option<String>, A::Error> {
        Err(self.wrong("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Option<String>, A::Error> {
        Err(self.wrong("an object"))
    }
}

/// The nesting seen in one row: the length of the arrays at each depth (which must
/// agree: rows are rectangular) and the depth at which the numbers sit.
struct RowShape {
    dims: Vec<Option<usize>>,
    leaf_depth: Option<usize>,
}

/// A value inside a row at `depth` (0 = the row's own array).
struct NestedSeed<'c, 'r, 's> {
    ctx: &'c mut Ctx<'s>,
    shape: &'r mut RowShape,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for NestedSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl NestedSeed<'_, '_, '_> {
    fn ragged<E: de::Error>(self) -> E {
        let row = self.ctx.rows;
        self.ctx.fail(ApiError::BadShape(format!(
            "row {row} is ragged: its nested arrays differ in length or depth (the model expects {} or a flat array of {} values)",
            self.ctx.shape_text(),
            self.ctx.features
        )))
    }

    fn number<E: de::Error>(self, v: f64) -> Result<(), E> {
        // A number sits one level below the array holding it.
        match self.shape.leaf_depth {
            None => self.shape.leaf_depth = Some(self.depth),
            Some(d) if d == self.depth => {}
            Some(_) => return Err(self.ragged()),
        }
        let x = v as f32;
        if !x.is_finite() {
            let row = self.ctx.rows;
            let index = self.ctx.values.len() - row * self.ctx.features;
            return Err(self.ctx.fail(ApiError::NonFinite(format!(
                "row {row}, value {index}: {v:e} is not a finite 32-bit float (|x| must be below 3.4028235e38)"
            ))));
        }
        self.ctx.values.push(x);
        Ok(())
    }

    fn not_a_number<E: de::Error>(self, what: &str) -> E {
        let row = self.ctx.rows;
        let index = self.ctx.values.len() - row * self.ctx.features;
        self.ctx.fail(ApiError::BadShape(format!("row {row}, value {index}: expected a number, got {what}")))
    }
}

impl<'de> Visitor<'de> for NestedSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or an array of numbers")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Arrays sit at `depth`; their elements one below.
        if self.shape.leaf_depth.is_some_and(|d| d <= self.depth) || self.depth >= self.ctx.shape.len() {
            return Err(self.ragged());
        }
        let mut len = 0;
        while seq
            .next_element_seed(NestedSeed { ctx: &mut *self.ctx, shape: &mut *self.shape, depth: self.depth + 1 })?
            .is_some()
        {
            len += 1;
        }
        // Inner arrays finish first, so the slot for this depth may not exist yet.
        if self.shape.dims.len() <= self.depth {
            self.shape.dims.resize(self.depth + 1, None);
        }
        match self.shape.dims[self.depth] {
            None => self.shape.dims[self.depth] = Some(len),
            Some(l) if l == len => {}
            Some(_) => return Err(self.ragged()),
        }
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.number(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.number(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.number(v as f64)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_a_number("a string"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.not_a_number("a boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_a_number("null"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_a_number("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str, shape: &[usize]) -> Result<ParsedRows, ApiError> {
        parse_predict_body(body.as_bytes(), shape, None)
    }

    fn rows(rows: usize, values: Vec<f32>) -> ParsedRows {
        ParsedRows { rows, values, ignored: vec![], unseen_categories: 0 }
    }

    #[test]
    fn flat_and_nested_rows_give_the_same_row_major_values() {
        let flat = parse(r#"{"inputs": [[1, 2, 3, 4], [5, 6.5, -7, 8e-1]]}"#, &[2, 2, 1]).unwrap();
        assert_eq!(flat, rows(2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5, -7.0, 0.8]));
        let nested = parse(r#"{"inputs": [[[1, 2], [3, 4]], [[5, 6.5], [-7, 8e-1]]]}"#, &[2, 2, 1]).unwrap();
        assert_eq!(nested, flat);
        let full =
            parse(r#"{"inputs": [[[[1], [2]], [[3], [4]]], [[[5], [6.5]], [[-7], [8e-1]]]]}"#, &[2, 2, 1]).unwrap();
        assert_eq!(full, flat);
        // Values are rounded to f32 as `nn-cli predict` rounds a CSV cell (`str::parse::<f32>`).
        let cells = ["0.1", "0.2", "0.30000001", "16", "1e-3", "123456789", "-0.0"];
        let body = format!("{{\"inputs\": [[{}]]}}", cells.join(","));
        let want: Vec<u32> = cells.iter().map(|c| c.parse::<f32>().unwrap().to_bits()).collect();
        let got: Vec<u32> = parse(&body, &[7]).unwrap().values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn no_rows_is_valid() {
        assert_eq!(parse(r#"{"inputs": []}"#, &[4]).unwrap(), rows(0, vec![]));
        // `instances` (TensorFlow Serving's name) is the same list.
        assert_eq!(parse(r#"{"instances": [[1, 2]]}"#, &[2]).unwrap(), rows(1, vec![1.0, 2.0]));
    }

    #[test]
    fn syntax_errors_and_wrong_objects_are_bad_json() {
        for body in [
            "",
            "{",
            "[1,2]",
            r#"{"input": [[1]]}"#,
            r#"{}"#,
            r#"{"inputs": 3}"#,
            r#"{"inputs": [[1,2,3,4]], "inputs": []}"#,
            r#"{"inputs": [[1,2,3,4]], "instances": []}"#,
            r#"{"inputs": [[1,2,3,4]]} x"#,
        ] {
            let e = parse(body, &[4]).unwrap_err();
            assert!(matches!(e, ApiError::BadJson(_)), "{body}: {e:?}");
        }
        let e = parse(r#"{"inputs": [[1,2,3,4]],"#, &[4]).unwrap_err();
        assert!(e.to_string().contains("line 1 column"), "{e}");
        assert!(parse(r#"{"input": [[1]]}"#, &[4]).unwrap_err().to_string().contains("unknown field `input`"));
        assert!(parse(r#"{}"#, &[4]).unwrap_err().to_string().contains("missing field `inputs`"));
    }

    #[test]
    fn wrong_counts_and_shapes_name_the_row() {
        let e = parse(r#"{"inputs": [[1,2,3,4], [1,2,3]]}"#, &[4]).unwrap_err();
        assert_eq!(e, ApiError::BadShape("row 1 has 3 values, the model expects 4 (input shape [4])".into()));
        let e = parse(r#"{"inputs": [[1,2,3,4,5]]}"#, &[2, 2, 1]).unwrap_err();
        assert!(e.to_string().starts_with("row 0 has 5 values, the model expects 4"), "{e}");
        // One row sent without the outer list.
        let e = parse(r#"{"inputs": [1,2,3,4]}"#, &[4]).unwrap_err();
        assert!(matches!(&e, ApiError::BadShape(m) if m.starts_with("row 0 is a number, not an array")), "{e:?}");
        // Ragged nesting, wrong nesting, strings.
        for body in [r#"{"inputs": [[[1,2],[3]]]}"#, r#"{"inputs": [[[1,2],3,4]]}"#, r#"{"inputs": [[1,[2],3,4]]}"#] {
            let e = parse(body, &[2, 2, 1]).unwrap_err();
            assert!(matches!(&e, ApiError::BadShape(m) if m.contains("ragged")), "{body}: {e:?}");
        }
        let e = parse(r#"{"inputs": [[[1],[2],[3],[4]]]}"#, &[2, 2, 1]).unwrap_err();
        assert!(matches!(&e, ApiError::BadShape(m) if m.contains("nested as [4, 1]")), "{e:?}");
        let e = parse(r#"{"inputs": [[1,2,"3",4]]}"#, &[4]).unwrap_err();
        assert_eq!(e, ApiError::BadShape("row 0, value 2: expected a number, got a string".into()));
        let e = parse(r#"{"inputs": [[1,2,3,4],[1,null,3,4]]}"#, &[4]).unwrap_err();
        assert_eq!(e, ApiError::BadShape("row 1, value 1: expected a number, got null".into()));
        // Deeper than the input shape allows.
        let e = parse(r#"{"inputs": [[[[[1]]]]]}"#, &[1, 1, 1]).unwrap_err();
        assert!(matches!(e, ApiError::BadShape(_)), "{e:?}");
    }

    #[test]
    fn non_finite_values_are_refused() {
        // 1e39 is a finite f64 but overflows f32.
        let e = parse(r#"{"inputs": [[1,2,3,4],[1,2,1e39,4]]}"#, &[4]).unwrap_err();
        assert!(matches!(&e, ApiError::NonFinite(m) if m.starts_with("row 1, value 2: 1e39")), "{e:?}");
        let e = parse(r#"{"inputs": [[1,2,3,-3.5e38]]}"#, &[4]).unwrap_err();
        assert!(matches!(e, ApiError::NonFinite(_)), "{e:?}");
        for body in
            [r#"{"inputs": [[1,2,3,1e999]]}"#, r#"{"inputs": [[1,2,3,NaN]]}"#, r#"{"inputs": [[1,2,3,-Infinity]]}"#]
        {
            let e = parse(body, &[4]).unwrap_err();
            assert!(matches!(e, ApiError::NonFinite(_)), "{body}: {e:?}");
        }
        // The largest finite f32 is accepted.
        assert_eq!(parse(r#"{"inputs": [[3.4028235e38]]}"#, &[1]).unwrap().values, vec![f32::MAX]);
    }

    fn schema(missing: Missing) -> FeatureSchema {
        use nn_data::{ColumnKind, FeatureColumn};
        FeatureSchema {
            columns: vec![
                FeatureColumn { name: "age".into(), kind: ColumnKind::Numeric },
                FeatureColumn {
                    name: "city".into(),
                    kind: ColumnKind::Categorical { categories: vec!["3".into(), "Oslo".into(), "Rome".into()] },
                },
                FeatureColumn { name: "height".into(), kind: ColumnKind::Numeric },
            ],
            missing,
        }
    }

    fn parse_with(body: &str, schema: &FeatureSchema) -> Result<ParsedRows, ApiError> {
        parse_predict_body(body.as_bytes(), &[schema.width()], Some(schema))
    }

    #[test]
    fn object_rows_are_encoded_by_column_name() {
        let s = schema(Missing::Mean);
        // Keys in any order; numbers, numbers as text, categories; a number as a
        // category matches its text; extra keys are reported once, in order.
        let body = r#"{"inputs": [
            {"height": 1.75, "city": "Rome", "age": 41.5, "note": "x"},
            {"city": 3, "age": "7", "height": -2e-1, "id": 12, "note": null},
            [1, 0, 1, 0, 2]
        ]}"#;
        let got = parse_with(body, &s).unwrap();
        assert_eq!(got.rows, 3);
        assert_eq!(got.values, vec![41.5, 0.0, 0.0, 1.0, 1.75, 7.0, 1.0, 0.0, 0.0, -0.2, 1.0, 0.0, 1.0, 0.0, 2.0]);
        assert_eq!(got.ignored, ["note", "id"]);
        assert_eq!(got.unseen_categories, 0);
        // null and missing-value text become NaN under --missing mean (a missing
        // category too, in each of its inputs); unseen categories encode as zeros,
        // counted.
        let got =
            parse_with(r#"{"instances": [{"age": null, "city": "Paris", "height": "NA"}, {"age": 1, "city": "Lima", "height": 2}]}"#, &s)
                .unwrap();
        assert!(got.values[0].is_nan() && got.values[4].is_nan(), "{:?}", got.values);
        assert_eq!(got.values[1..4], [0.0, 0.0, 0.0]);
        assert_eq!(got.values[5..], [1.0, 0.0, 0.0, 0.0, 2.0]);
        assert_eq!((got.unseen_categories, got.ignored.len()), (2, 0));
        // The same value as a JSON number and as text encodes to the same bits.
        let a = parse_with(r#"{"inputs": [{"age": 0.1, "city": "Oslo", "height": 16777217}]}"#, &s).unwrap();
        let b = parse_with(r#"{"inputs": [{"age": "0.1", "city": "Oslo", "height": "16777217"}]}"#, &s).unwrap();
        assert_eq!(a.values, b.values);
        assert_eq!(a.values[0].to_bits(), 0.1f32.to_bits());
    }

    #[test]
    fn object_row_errors_name_the_row_and_column() {
        let s = schema(Missing::Error);
        let e = parse_with(r#"{"inputs": [{"age": 1, "city": "Oslo", "height": 2}, {"age": 1, "city": "Oslo"}]}"#, &s)
            .unwrap_err();
        assert_eq!(
            e,
            ApiError::MissingColumn {
                message: "row 1 has no value for the column \"height\" (send null for a missing value)".into(),
                column: "height".into()
            }
        );
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        let e = parse_with(r#"{"inputs": [{"age": null, "city": "Oslo", "height": 2}]}"#, &s).unwrap_err();
        assert_eq!(
            e,
            ApiError::BadValue {
                message: "row 0, column \"age\": missing value (the model was trained without --missing mean, \
                          so it cannot impute it)"
                    .into(),
                column: "age".into()
            }
        );
        let e = parse_with(r#"{"inputs": [{"age": 1, "city": "Oslo", "height": "NA"}]}"#, &schema(Missing::Drop))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "row 0, column \"height\": missing value (the model was trained with --missing drop, \
             which cannot drop a row to predict)"
        );
        let e = parse_with(r#"{"inputs": [{"age": "old", "city": "Oslo", "height": 2}]}"#, &s).unwrap_err();
        assert_eq!(e.to_string(), "row 0, column \"age\": not a number: \"old\"");
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        let e = parse_with(r#"{"inputs": [{"age": 1e39, "city": "Oslo", "height": 2}]}"#, &s).unwrap_err();
        assert_eq!(e.to_string(), "row 0, column \"age\": not a finite f32 number: \"1e+39\"");
        let e = parse_with(r#"{"inputs": [{"age": true, "city": "Oslo", "height": 2}]}"#, &s).unwrap_err();
        assert_eq!(e.to_string(), "row 0, column \"age\": expected a number, a string or null, got a boolean");
        assert_eq!(e.column(), Some("age"));
        let e = parse_with(r#"{"inputs": [{"age": 1, "city": ["Oslo"], "height": 2}]}"#, &s).unwrap_err();
        assert!(matches!(&e, ApiError::BadValue { column, .. } if column == "city"), "{e:?}");
        let e = parse_with(r#"{"inputs": [{"age": 1, "age": 2, "city": "Oslo", "height": 2}]}"#, &s).unwrap_err();
        assert_eq!(e, ApiError::BadJson("row 0: the key \"age\" appears twice".into()));
        // A model without column names refuses objects with a 400.
        let e = parse(r#"{"inputs": [[1, 2], {"a": 1, "b": 2}]}"#, &[2]).unwrap_err();
        assert!(
            matches!(&e, ApiError::NoColumnNames(m) if m.starts_with("row 1 is an object, but this model has no column names")),
            "{e:?}"
        );
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
    }
}
