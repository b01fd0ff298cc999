//! Serving a recommender (a folder written by `nn-cli fit --data ratings:… --out
//! DIR`): `nn-cli serve --model DIR` detects it and answers
//!
//! - `POST /v1/recommend` with `{"user": "15", "top": 10, "exclude_seen": true}`
//!   (`top` defaults to 10, `exclude_seen` to true): `{"user": "15", "known_user":
//!   true, "items": [{"rank": 1, "item": "318", "score": 4.61, "title": "…"}, …]}`. A
//!   user the model does not know gets the model's fallback ranking (see
//!   [`Recommender::score_all_items`]) with `"known_user": false`, not an error: a
//!   new visitor still sees a list.
//! - `POST /v1/similar` with `{"item": "1", "top": 10}`: the items of highest cosine
//!   similarity of the item vectors (`"items"` as above, `score` the cosine).
//! - `GET /v1/model`: users, items, the spec; `GET /healthz`.
//!
//! Errors are JSON `{"error": …, "kind": …}` as for `/v1/predict`: 400 `bad_json`
//! for a body that is not the object above, 422 `bad_value` (with `column`) for a
//! `top` outside `[1, 10000]` or an unknown item in `/v1/similar`, 413 and 408 as
//! configured. Each request scores the whole catalogue on the blocking thread pool:
//! one matrix–vector product for the dot-product models, the dense part in batches
//! otherwise, then a partial sort (nn_recommend::rank::top_n).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use nn_recommend::model::Recommender;
use nn_recommend::rank::{cosine_similarities, top_n};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ServeError};
use crate::server::{serve_connections, ServeConfig, ShutdownReport};

/// The most items one request may ask for.
pub const MAX_TOP: usize = 10_000;

/// A loaded recommender and its description.
#[derive(Debug)]
pub struct RecommendService {
    model: Recommender,
    info: Bytes,
}

impl RecommendService {
    /// Loads the recommender saved in `dir`.
    ///
    /// # Errors
    /// [`ServeError::Config`] with the loader's message (missing or corrupt files).
    pub fn load(dir: &std::path::Path) -> Result<RecommendService, ServeError> {
        let model = Recommender::load(dir).map_err(|e| ServeError::Config(e.to_string()))?;
        Ok(RecommendService::new(model))
    }

    /// Serves `model`.
    pub fn new(model: Recommender) -> RecommendService {
        let info = serde_json::json!({
            "kind": "recommender",
            "users": model.users().len(),
            "items": model.items().len(),
            "item_features": model.item_table().map(|t| t.width()),
            "spec": model.spec(),
        });
        RecommendService { model, info: Bytes::from(info.to_string()) }
    }

    /// The model.
    pub fn model(&self) -> &Recommender {
        &self.model
    }

    /// The answer to `POST /v1/recommend` (what the handler runs off the I/O
    /// threads).
    ///
    /// # Errors
    /// [`ApiError::BadValue`] for `top` outside `[1, MAX_TOP]`;
    /// [`ApiError::Internal`] if scoring fails.
    pub fn recommend(&self, request: &RecommendRequest) -> Result<RecommendAnswer, ApiError> {
        check_top(request.top)?;
        let user = self.model.users().get(&request.user);
        let scores = self.model.score_all_items(user).map_err(|e| ApiError::Internal(e.to_string()))?;
        let seen: &[usize] = match (request.exclude_seen, user) {
            (true, Some(u)) => self.model.training_items(u),
            _ => &[],
        };
        let items = self.ranked(&top_n(&scores, request.top, seen));
        Ok(RecommendAnswer { user: Some(request.user.clone()), known_user: Some(user.is_some()), item: None, items })
    }

    /// The answer to `POST /v1/similar`.
    ///
    /// # Errors
    /// [`ApiError::BadValue`] for an unknown item or `top` outside `[1, MAX_TOP]`;
    /// [`ApiError::Internal`] if the item vectors cannot be computed.
    pub fn similar(&self, request: &SimilarRequest) -> Result<RecommendAnswer, ApiError> {
        check_top(request.top)?;
        let item = self.model.items().get(&request.item).ok_or_else(|| ApiError::BadValue {
            message: format!("item {:?} is not in the model ({} items)", request.item, self.model.items().len()),
            column: "item".into(),
        })?;
        let (vectors, dim) = self.model.item_vectors().map_err(|e| ApiError::Internal(e.to_string()))?;
        let scores = cosine_similarities(&vectors, dim, item);
        let items = self.ranked(&top_n(&scores, request.top, &[item]));
        Ok(RecommendAnswer { user: None, known_user: None, item: Some(request.item.clone()), items })
    }

    fn ranked(&self, ranked: &[(usize, f32)]) -> Vec<RankedItem> {
        ranked
            .iter()
            .enumerate()
            .map(|(k, &(i, score))| RankedItem {
                rank: k + 1,
                item: self.model.items().id(i).unwrap_or_default().to_string(),
                score,
                title: self.model.item_table().and_then(|t| t.titles.get(i).cloned().flatten()),
            })
            .collect()
    }
}

fn check_top(top: usize) -> Result<(), ApiError> {
    if (1..=MAX_TOP).contains(&top) {
        Ok(())
    } else {
        Err(ApiError::BadValue { message: format!("top must be in [1, {MAX_TOP}], got {top}"), column: "top".into() })
    }
}

fn default_top() -> usize {
    10
}

fn default_true() -> bool {
    true
}

/// An id given as a JSON string or integer (ids are read from CSV files as text:
/// `15` and `"15"` are the same user).
fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(i64),
    }
    Ok(match Id::deserialize(d)? {
        Id::Text(s) => s,
        Id::Number(n) => n.to_string(),
    })
}

/// The body of `POST /v1/recommend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    /// The user's id as in the ratings file (a JSON string or integer).
    #[serde(deserialize_with = "id_text")]
    pub user: String,
    /// How many items (default 10).
    #[serde(default = "default_top")]
    pub top: usize,
    /// Leave out the user's training items (default true).
    #[serde(default = "default_true")]
    pub exclude_seen: bool,
}

/// The body of `POST /v1/similar`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarRequest {
    /// The item's id (a JSON string or integer).
    #[serde(deserialize_with = "id_text")]
    pub item: String,
    /// How many items (default 10).
    #[serde(default = "default_top")]
    pub top: usize,
}

/// One ranked item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedItem {
    /// 1 for the best.
    pub rank: usize,
    /// The item's id (a JSON string or integer).
    #[serde(deserialize_with = "id_text")]
    pub item: String,
    /// The model's score (a predicted rating for an explicit-feedback model) or the
    /// cosine similarity.
    pub score: f32,
    /// The item's title, when the model has an items file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// The answer of `/v1/recommend` and `/v1/similar`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendAnswer {
    /// The user asked about (`/v1/recommend`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Whether the model knows the user (`/v1/recommend`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_user: Option<bool>,
    /// The item asked about (`/v1/similar`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// Best first.
    pub items: Vec<RankedItem>,
}

struct RecState {
    service: Arc<RecommendService>,
    config: ServeConfig,
}

/// Reads and parses a JSON body with the configured limit and deadline.
async fn json_body<T: serde::de::DeserializeOwned>(state: &RecState, request: Request) -> Result<T, ApiError> {
    let timeout = state.config.body_timeout;
    let body = tokio::time::timeout(timeout, Bytes::from_request(request, &())).await.map_err(|_| {
        ApiError::Timeout(format!(
            "the request body did not arrive within {} s (--body-timeout)",
            timeout.as_secs_f64()
        ))
    })?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "the request body exceeds the limit of {} bytes (--max-body-bytes)",
                state.config.max_body_bytes
            ))
        } else {
            ApiError::BadJson(format!("could not read the request body: {}", e.body_text()))
        }
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadJson(format!("the body is not the expected JSON object: {e}")))
}

async fn recommend_route(State(state): State<Arc<RecState>>, request: Request) -> Result<Response, ApiError> {
    let body: RecommendRequest = json_body(&state, request).await?;
    let service = Arc::clone(&state.service);
    let answer = tokio::task::spawn_blocking(move || service.recommend(&body))
        .await
        .map_err(|e| ApiError::Internal(format!("scoring failed: {e}")))??;
    Ok(axum::Json(answer).into_response())
}

async fn similar_route(State(state): State<Arc<RecState>>, request: Request) -> Result<Response, ApiError> {
    let body: SimilarRequest = json_body(&state, request).await?;
    let service = Arc::clone(&state.service);
    let answer = tokio::task::spawn_blocking(move || service.similar(&body))
        .await
        .map_err(|e| ApiError::Internal(format!("scoring failed: {e}")))??;
    Ok(axum::Json(answer).into_response())
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route {} {}: a recommender serves POST /v1/recommend, POST /v1/similar, GET /v1/model, GET /healthz",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    let path = request.uri().path().to_string();
    let allowed = if path.starts_with("/v1/recommend") || path.starts_with("/v1/similar") { "POST" } else { "GET" };
    ApiError::MethodNotAllowed(format!("{} is not allowed on {path}: use {allowed}", request.method()))
}

/// The routes of a recommender (see the [module docs](self)).
pub fn router(service: Arc<RecommendService>, config: ServeConfig) -> Router {
    let state = Arc::new(RecState { service, config });
    Router::new()
        .route("/v1/recommend", post(recommend_route))
        .route("/v1/similar", post(similar_route))
        .route(
            "/v1/model",
            get(|State(s): State<Arc<RecState>>| async move {
                ([(axum::http::header::CONTENT_TYPE, "application/json")], s.service.info.clone()).into_response()
            }),
        )
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
}

/// Serves `service` on `listener` until `shutdown` resolves, with the connection
/// limits, timeouts and graceful shutdown of [`crate::Server::serve`].
///
/// # Errors
/// [`ServeError::Config`] for invalid settings.
pub async fn serve<F>(
    service: RecommendService,
    config: ServeConfig,
    listener: tokio::net::TcpListener,
    shutdown: F,
) -> Result<ShutdownReport, ServeError>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    config.check()?;
    let router = router(Arc::new(service), config);
    Ok(serve_connections(listener, router, &config, shutdown).await)
}

/// As [`crate::run`] for a recommender: serves `service` on `addr` until SIGINT or
/// SIGTERM.
///
/// # Errors
/// [`ServeError::Config`] for invalid settings or 0 I/O threads; [`ServeError::Io`]
/// when the runtime cannot start or `addr` cannot be bound.
pub fn run(
    service: RecommendService,
    addr: SocketAddr,
    config: ServeConfig,
    io_threads: usize,
    ready: impl FnOnce(SocketAddr),
    stopping: impl FnOnce() + Send + 'static,
) -> Result<ShutdownReport, ServeError> {
    config.check()?;
    crate::run_until_signal(addr, io_threads, ready, stopping, |listener, signal| {
        serve(service, config, listener, signal)
    })
}
