//! The errors of nn-serve: [`ServeError`] when the server cannot start or stops
//! abnormally, [`ApiError`] for one request (always answered as a JSON 4xx/5xx; the
//! server keeps serving).

use std::path::PathBuf;

use axum::http::StatusCode;
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
/// string in the JSON body `{"error": message, "kind": kind}`.
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
    /// 413: the body exceeds the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// 404: no such route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
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
            ApiError::BadJson(_) => StatusCode::BAD_REQUEST,
            ApiError::BadShape(_) | ApiError::NonFinite(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `kind` string of the JSON body (`bad_json`, `bad_shape`,
    /// `non_finite`, `too_large`, `not_found`, `method_not_allowed`, `unavailable`,
    /// `internal`).
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadJson(_) => "bad_json",
            ApiError::BadShape(_) => "bad_shape",
            ApiError::NonFinite(_) => "non_finite",
            ApiError::TooLarge(_) => "too_large",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string(), "kind": self.kind() });
        (self.status(), axum::Json(body)).into_response()
    }
}
