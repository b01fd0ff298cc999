//! The errors of nn-serve: [`ServeError`] when the server cannot start or stops
//! abnormally, [`ApiError`] for one request (always answered as a JSON 4xx/5xx; the
//! server keeps serving).

use std::path::PathBuf;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use thiserror::Error;

/// Why the server could not start, or stopped abnormally.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The model folder could not be loaded (missing or damaged model.json or weights).
    #[error("loading the model from {path}: {source}")]
    Model {
        /// The model folder.
        path: PathBuf,
        /// The loader's error (boxed: it is large and rare).
        #[source]
        source: Box<nn_train::TrainError>,
    },
    /// A setting is out of range (a batch size of 0, a zero body limit, ...).
    #[error("invalid server setting: {0}")]
    Config(String),
    /// The model's metadata does not fit the model (feature columns that encode to
    /// another number of inputs than the model takes, a target scaler for another
    /// number of outputs, non-finite target statistics).
    #[error("the model's metadata does not fit the model: {0}")]
    Metadata(String),
    /// Binding, accepting or starting a thread failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (e.g. `binding 127.0.0.1:8080`).
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl ServeError {
    /// A [`ServeError::Io`] with `context`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ServeError::Io { context: context.into(), source }
    }
}

/// Why one request failed. Each kind maps to one HTTP status and a stable `kind`
/// string in the JSON body `{"error": message, "kind": kind}` (plus `"column": name`
/// for errors about one column of a row given as an object).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiError {
    /// 400: the body is not valid JSON, or not the expected object (serde's message,
    /// with line and column).
    #[error("{0}")]
    BadJson(String),
    /// 422: valid JSON whose rows do not fit the model (wrong feature count, ragged
    /// or wrongly shaped nested arrays, a row that is not an array).
    #[error("{0}")]
    BadShape(String),
    /// 422: a value is not a finite `f32` (e.g. `1e39`, which overflows `f32`).
    #[error("{0}")]
    NonFinite(String),
    /// 400: a row given as an object lacks one of the model's feature columns.
    #[error("{message}")]
    MissingColumn {
        /// What is wrong, naming the row and the column.
        message: String,
        /// The column's name (the JSON body's `column`).
        column: String,
    },
    /// 400: a row was given as an object to a model that has no column names (not
    /// trained on a CSV file with a header): rows must be arrays.
    #[error("{0}")]
    NoColumnNames(String),
    /// 422: a value of a row given as an object does not fit its column (text in a
    /// numeric column, a missing value the model cannot impute, a boolean, ...).
    #[error("{message}")]
    BadValue {
        /// What is wrong, naming the row and the column.
        message: String,
        /// The column's name (the JSON body's `column`).
        column: String,
    },
    /// 422 (or 500): the model's output for a row is NaN or infinite. 422 when the
    /// model's parameters are finite (the input drove it out of range); 500 when
    /// the model itself holds NaN or infinite parameters.
    #[error("{message}")]
    NonFiniteOutput {
        /// What is wrong, naming the rows.
        message: String,
        /// Whether the model is at fault (500) rather than the input (422).
        model_fault: bool,
    },
    /// 413: the body exceeds the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// 408: the request body did not arrive within the body timeout
    /// (`ServeConfig::body_timeout`); the answer closes the connection
    /// (`Connection: close`).
    #[error("{0}")]
    Timeout(String),
    /// 404: no such route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 400: the route does not fit this model: `POST /v1/predict` on a language
    /// model, `POST /v1/generate` on any other model (the message names the route
    /// to use).
    #[error("{0}")]
    WrongRoute(String),
    /// 503: the request queue is full, or the server is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// 500: the model failed on a valid input (a bug; the server keeps serving).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadJson(_)
            | ApiError::MissingColumn { .. }
            | ApiError::NoColumnNames(_)
            | ApiError::WrongRoute(_) => StatusCode::BAD_REQUEST,
            ApiError::BadShape(_) | ApiError::NonFinite(_) | ApiError::BadValue { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::NonFiniteOutput { model_fault: false, .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NonFiniteOutput { model_fault: true, .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `kind` string of the JSON body (`bad_json`, `bad_shape`,
    /// `non_finite`, `missing_column`, `no_column_names`, `bad_value`,
    /// `non_finite_output`, `too_large`, `timeout`, `not_found`, `method_not_allowed`,
    /// `wrong_route`, `unavailable`, `internal`).
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadJson(_) => "bad_json",
            ApiError::BadShape(_) => "bad_shape",
            ApiError::NonFinite(_) => "non_finite",
            ApiError::MissingColumn { .. } => "missing_column",
            ApiError::NoColumnNames(_) => "no_column_names",
            ApiError::BadValue { .. } => "bad_value",
            ApiError::NonFiniteOutput { .. } => "non_finite_output",
            ApiError::TooLarge(_) => "too_large",
            ApiError::Timeout(_) => "timeout",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::WrongRoute(_) => "wrong_route",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ApiError {
    /// The column an error is about (`MissingColumn`, `BadValue`), given as the JSON
    /// body's `column`.
    pub fn column(&self) -> Option<&str> {
        match self {
            ApiError::MissingColumn { column, .. } | ApiError::BadValue { column, .. } => Some(column),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.to_string(), "kind": self.kind() });
        if let Some(column) = self.column() {
            body["column"] = serde_json::Value::String(column.to_string());
        }
        let mut response = (self.status(), axum::Json(body)).into_response();
        if matches!(self, ApiError::Timeout(_)) {
            // The rest of the body may still come: the connection cannot be reused.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
