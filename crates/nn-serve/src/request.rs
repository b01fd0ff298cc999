//! Parsing the body of `POST /v1/predict` straight into one flat `f32` buffer,
//! checking every row against the model's input shape as it streams by.
//!
//! The body is `{"inputs": [row, ...]}`. A row is either a flat array of
//! `features` numbers (the product of the input shape, in row-major order: for an
//! image `[h, w, 1]`, pixel `(y, x)` is value `y·w + x`), or nested arrays of the
//! input shape itself, trailing dimensions of 1 optional (`[8][8]` or `[8][8][1]`
//! for an `[8, 8, 1]` model).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::error::ApiError;

/// Rows read from a request: `rows × features` raw values, row after row.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRows {
    /// Number of rows.
    pub rows: usize,
    /// The raw feature values, `rows · features` of them.
    pub values: Vec<f32>,
}

/// Parses a `POST /v1/predict` body for a model with per-sample `input_shape`.
///
/// # Errors
/// [`ApiError::BadJson`] for invalid JSON, a body that is not `{"inputs": [...]}`,
/// unknown or repeated keys; [`ApiError::NonFinite`] for a number that does not fit
/// a finite `f32` (including JSON's out-of-range literals and the non-JSON tokens
/// `NaN` and `Infinity`); [`ApiError::BadShape`] for a row that is not an array, has
/// the wrong number of values, is ragged, or is nested in another shape than the
/// model's. Messages name the row (0-based) and, where there is one, the value.
pub fn parse_predict_body(body: &[u8], input_shape: &[usize]) -> Result<ParsedRows, ApiError> {
    let mut ctx =
        Ctx { shape: input_shape, features: input_shape.iter().product(), values: Vec::new(), rows: 0, problem: None };
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = BodySeed(&mut ctx).deserialize(&mut de).and_then(|()| de.end());
    match result {
        Ok(()) => Ok(ParsedRows { rows: ctx.rows, values: ctx.values }),
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
        ApiError::BadJson(format!("invalid request body: {message}; expected {{\"inputs\": [[...], ...]}}"))
    }
}

struct Ctx<'s> {
    shape: &'s [usize],
    features: usize,
    values: Vec<f32>,
    rows: usize,
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
        let mut seen = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != "inputs" {
                return Err(de::Error::unknown_field(&key, &["inputs"]));
            }
            if seen {
                return Err(de::Error::duplicate_field("inputs"));
            }
            seen = true;
            map.next_value_seed(RowsSeed(&mut *self.0))?;
        }
        if !seen {
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
        self.0.fail(ApiError::BadShape(format!(
            "row {row} is {what}, not an array: `inputs` is a list of rows of {features} values each \
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
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_an_array("an object"))
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
        parse_predict_body(body.as_bytes(), shape)
    }

    #[test]
    fn flat_and_nested_rows_give_the_same_row_major_values() {
        let flat = parse(r#"{"inputs": [[1, 2, 3, 4], [5, 6.5, -7, 8e-1]]}"#, &[2, 2, 1]).unwrap();
        assert_eq!(flat, ParsedRows { rows: 2, values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5, -7.0, 0.8] });
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
        assert_eq!(parse(r#"{"inputs": []}"#, &[4]).unwrap(), ParsedRows { rows: 0, values: vec![] });
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
}
