//! The HTTP side: routes, handlers, body limit, metrics middleware, and serving with
//! graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::batcher::{self, BatchOutput, BatchSettings, BatcherHandle, Job};
use crate::error::{ApiError, ServeError};
use crate::metrics::{route_label, Metrics};
use crate::model::{ModelService, OutputKind};
use crate::request::{parse_predict_body, ParsedRows};

/// The page served at `GET /`: HTML, CSS and JavaScript in one file, no external
/// assets.
pub const PAGE_HTML: &str = include_str!("page.html");

/// Bodies above this size are parsed on tokio's blocking pool rather than on an
/// I/O thread.
const PARSE_INLINE_LIMIT: usize = 64 * 1024;

/// Server settings (the `nn-cli serve` flags other than the model and address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeConfig {
    /// Most rows per forward pass, and the size at which a batch stops gathering
    /// requests (`--max-batch`, default 64). 1 turns batching off.
    pub max_batch: usize,
    /// Longest time a batch waits for more requests after taking its first
    /// (`--batch-wait-ms`, default 0: take only what is already queued). See the
    /// [batching rule](crate#batching).
    pub batch_wait: Duration,
    /// Largest request body in bytes (`--max-body-bytes`, default 8 MiB); larger
    /// bodies get a 413.
    pub max_body_bytes: usize,
    /// Requests that may wait for the inference thread (`--max-queue`, default
    /// 1024); more get a 503.
    pub max_queue: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig { max_batch: 64, batch_wait: Duration::ZERO, max_body_bytes: 8 << 20, max_queue: 1024 }
    }
}

impl ServeConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`ServeError::Config`] for a zero `max_batch`, `max_body_bytes` or
    /// `max_queue`, or a `batch_wait` above 10 s.
    pub fn check(&self) -> Result<(), ServeError> {
        let bad = |m: &str| Err(ServeError::Config(m.to_string()));
        if self.max_batch == 0 {
            return bad("max batch must be at least 1 row");
        }
        if self.max_body_bytes == 0 {
            return bad("max body size must be at least 1 byte");
        }
        if self.max_queue == 0 {
            return bad("max queue must be at least 1 request");
        }
        if self.batch_wait > Duration::from_secs(10) {
            return bad("batch wait must be at most 10 s (10000 ms)");
        }
        Ok(())
    }
}

struct AppState {
    service: Arc<ModelService>,
    batcher: BatcherHandle,
    metrics: Arc<Metrics>,
    config: ServeConfig,
    model_json: Bytes,
}

/// An inference server for one model: its inference thread is running; serve it
/// with [`Server::serve`], or route requests to [`Server::router`] yourself.
pub struct Server {
    state: Arc<AppState>,
    worker: JoinHandle<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("config", &self.state.config).finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct ModelBody<'a> {
    #[serde(flatten)]
    info: &'a crate::model::ModelInfo,
    max_batch: usize,
    batch_wait_ms: f64,
    max_body_bytes: usize,
}

impl Server {
    /// Starts the inference thread for `service` with `config`.
    ///
    /// # Errors
    /// [`ServeError::Config`] for invalid settings; [`ServeError::Io`] when the
    /// thread cannot start.
    pub fn new(service: ModelService, config: ServeConfig) -> Result<Server, ServeError> {
        config.check()?;
        let service = Arc::new(service);
        let (trainable, frozen) = service.model().num_parameters();
        let metrics = Arc::new(Metrics::new(trainable + frozen, config.max_batch, config.batch_wait));
        let settings =
            BatchSettings { max_batch: config.max_batch, batch_wait: config.batch_wait, max_queue: config.max_queue };
        let (batcher, worker) = batcher::start(Arc::clone(&service), Arc::clone(&metrics), settings)?;
        let body = ModelBody {
            info: service.info(),
            max_batch: config.max_batch,
            batch_wait_ms: config.batch_wait.as_secs_f64() * 1e3,
            max_body_bytes: config.max_body_bytes,
        };
        let model_json = Bytes::from(serde_json::to_vec(&body).map_err(|e| ServeError::Config(e.to_string()))?);
        Ok(Server { state: Arc::new(AppState { service, batcher, metrics, config, model_json }), worker })
    }

    /// The model being served.
    pub fn service(&self) -> &ModelService {
        &self.state.service
    }

    /// The live metrics (what `GET /metrics` renders).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.state.metrics)
    }

    /// The routes (see the [crate docs](crate#api)), with the body limit and the
    /// metrics middleware.
    pub fn router(&self) -> Router {
        let state = Arc::clone(&self.state);
        Router::new()
            .route("/", get(page))
            .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
            .route("/v1/predict", post(predict))
            .route("/v1/model", get(model))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
            .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), track))
            .with_state(state)
    }

    /// Serves HTTP/1.1 on `listener` until `shutdown` resolves, then stops
    /// accepting connections, lets every request already received finish (its
    /// batch runs and it is answered), closes idle connections, and stops the
    /// inference thread.
    ///
    /// # Errors
    /// [`ServeError::Io`] when the inference thread panicked.
    pub async fn serve<F>(self, listener: TcpListener, shutdown: F) -> Result<(), ServeError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let router = self.router();
        let Server { state, worker } = self;
        let batcher = state.batcher.clone();
        drop(state);
        // Answers are small and written at once: send them without Nagle's delay.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        // axum's serve never returns an error (accept errors are retried).
        let _ = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
        // Every connection has closed, so no request can still be queued: stop the
        // thread after whatever it holds, and wait for it.
        let joined = tokio::task::spawn_blocking(move || {
            batcher.stop();
            worker.join()
        })
        .await;
        match joined {
            Ok(Ok(())) => Ok(()),
            _ => Err(ServeError::io(
                "stopping the inference thread",
                std::io::Error::other("the inference thread panicked"),
            )),
        }
    }
}

/// Binds `addr` (use port 0 for any free port).
///
/// # Errors
/// [`ServeError::Io`] naming the address when it cannot be bound.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|e| ServeError::io(format!("binding {addr}"), e))
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (SIGINT only off Unix).
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => interrupt.await,
        }
    }
    #[cfg(not(unix))]
    interrupt.await;
}

async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = route_label(request.uri().path());
    let start = Instant::now();
    let response = next.run(request).await;
    state.metrics.record_request(route, response.status().as_u16(), start.elapsed());
    response
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], PAGE_HTML)
        .into_response()
}

async fn model(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], state.model_json.clone()).into_response()
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(serde_json::json!({ "status": "ok", "queued": state.batcher.queued() })).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render(state.batcher.queued());
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route {} {}: the routes are GET /, POST /v1/predict, GET /v1/model, GET /healthz, GET /metrics",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    let path = request.uri().path().to_string();
    let allowed = if path == "/v1/predict" { "POST" } else { "GET" };
    ApiError::MethodNotAllowed(format!("{} is not allowed on {path}: use {allowed}", request.method()))
}

/// One row of a `POST /v1/predict` answer.
#[derive(Serialize)]
struct Prediction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probability: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probabilities: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logits: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outputs: Option<&'a [f32]>,
}

#[derive(Serialize)]
struct PredictBody<'a> {
    predictions: Vec<Prediction<'a>>,
    /// Keys of object rows that are not feature columns.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    ignored: &'a [String],
    /// Categories not seen in training, over all rows.
    #[serde(skip_serializing_if = "is_zero")]
    unseen_categories: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

async fn predict(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
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
    let parsed = if body.len() <= PARSE_INLINE_LIMIT {
        parse_for(&state.service, &body)?
    } else {
        let service = Arc::clone(&state.service);
        tokio::task::spawn_blocking(move || parse_for(&service, &body))
            .await
            .map_err(|e| ApiError::Internal(format!("parsing the body failed: {e}")))??
    };
    let ParsedRows { rows, values, ignored, unseen_categories } = parsed;
    let output = if rows == 0 {
        BatchOutput { outputs: Vec::new(), classes: Vec::new() }
    } else {
        let (reply, answer) = oneshot::channel();
        state.batcher.submit(Job { rows, values, reply })?;
        answer.await.map_err(|_| ApiError::Internal("the inference thread stopped".into()))??
    };
    check_finite(&state.service, &output)?;
    Ok(render_predictions(&state.service, &output, &ignored, unseen_categories))
}

fn parse_for(service: &ModelService, body: &[u8]) -> Result<ParsedRows, ApiError> {
    parse_predict_body(body, service.model().input_shape(), service.metadata().features.as_ref())
}

/// Refuses an answer with a NaN or infinite output: 422 when the model's
/// parameters are finite (the input drove it out of range), else 500.
fn check_finite(service: &ModelService, output: &BatchOutput) -> Result<(), ApiError> {
    let k = service.info().outputs.max(1);
    let bad: Vec<usize> = output
        .outputs
        .chunks(k)
        .enumerate()
        .filter(|(_, row)| row.iter().any(|v| !v.is_finite()))
        .map(|(i, _)| i)
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    let mut rows = bad.iter().take(10).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    if bad.len() > 10 {
        rows.push_str(&format!(" and {} more", bad.len() - 10));
    }
    let which = if bad.len() == 1 { "row" } else { "rows" };
    Err(if service.parameters_finite() {
        ApiError::NonFiniteOutput {
            message: format!(
                "the model's output is not finite (NaN or infinite) for {which} {rows}: the input is probably \
                 far outside the range of the training data"
            ),
            model_fault: false,
        }
    } else {
        ApiError::NonFiniteOutput {
            message: format!(
                "the model's output is not finite (NaN or infinite) for {which} {rows}: the model's parameters \
                 hold NaN or infinite values (did its training diverge?), so it cannot give finite answers"
            ),
            model_fault: true,
        }
    })
}

fn render_predictions(service: &ModelService, output: &BatchOutput, ignored: &[String], unseen: usize) -> Response {
    let info = service.info();
    let k = info.outputs.max(1);
    let predictions = output
        .outputs
        .chunks(k)
        .zip(&output.classes)
        .map(|(row, &c)| {
            let name = Some(service.metadata().class_name(c));
            match info.output_kind {
                OutputKind::Probabilities => Prediction {
                    class: Some(c),
                    name,
                    probability: Some(row[c]),
                    probabilities: Some(row),
                    logits: None,
                    outputs: None,
                },
                OutputKind::Logits => Prediction {
                    class: Some(c),
                    name,
                    probability: None,
                    probabilities: None,
                    logits: Some(row),
                    outputs: None,
                },
                OutputKind::Values => Prediction {
                    class: None,
                    name: None,
                    probability: None,
                    probabilities: None,
                    logits: None,
                    outputs: Some(row),
                },
            }
        })
        .collect();
    match serde_json::to_vec(&PredictBody { predictions, ignored, unseen_categories: unseen }) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => ApiError::Internal(format!("encoding the answer: {e}")).into_response(),
    }
}
