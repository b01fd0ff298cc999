//! The HTTP side: routes, handlers, body limit and timeouts, metrics middleware, the
//! connection loop (a bounded number of connections, a header read timeout), and
//! the shutdown with its deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

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

/// The largest accepted `header_timeout`, `body_timeout` and `shutdown_timeout`:
/// one hour.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// The largest accepted `max_connections`.
pub const MAX_CONNECTIONS: usize = 100_000;

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
    /// Longest time to receive a request's headers (`--header-timeout`, default
    /// 10 s, at most [`MAX_TIMEOUT`]), counted from when the connection is accepted
    /// or its previous answer was sent, so it is also the longest a kept-alive
    /// connection may stay idle. A connection whose headers are not complete by
    /// then is closed without an answer.
    pub header_timeout: Duration,
    /// Longest time to receive a request's whole body once its headers are in
    /// (`--body-timeout`, default 30 s, at most [`MAX_TIMEOUT`]). A body that is
    /// not complete by then gets a 408 (`kind` `timeout`) and the connection is
    /// closed.
    pub body_timeout: Duration,
    /// Most connections open at once (`--max-connections`, default 1024, at most
    /// [`MAX_CONNECTIONS`]). With that many open the server stops accepting: new
    /// connections wait in the operating system's listen backlog (1024 with
    /// [`bind`], capped by Linux's `net.core.somaxconn`), unanswered and costing the
    /// server nothing, until an open one closes; beyond the backlog the operating
    /// system refuses or drops them. Each open connection is one task, so tasks
    /// are bounded too.
    pub max_connections: usize,
    /// How long a shutdown waits for the requests in progress (`--shutdown-timeout`,
    /// default 30 s, at most [`MAX_TIMEOUT`]). Connections still open then are
    /// closed unfinished (counted in [`ShutdownReport`]).
    pub shutdown_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_batch: 64,
            batch_wait: Duration::ZERO,
            max_body_bytes: 8 << 20,
            max_queue: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl ServeConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`ServeError::Config`] for a zero `max_batch`, `max_body_bytes` or
    /// `max_queue`, a `batch_wait` above 10 s, a `header_timeout`, `body_timeout`
    /// or `shutdown_timeout` of zero or above [`MAX_TIMEOUT`], or a
    /// `max_connections` of zero or above [`MAX_CONNECTIONS`].
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
        for (name, d) in [
            ("header timeout", self.header_timeout),
            ("body timeout", self.body_timeout),
            ("shutdown timeout", self.shutdown_timeout),
        ] {
            if d.is_zero() || d > MAX_TIMEOUT {
                return Err(ServeError::Config(format!(
                    "{name} must be more than 0 s and at most {} s, got {} s",
                    MAX_TIMEOUT.as_secs(),
                    d.as_secs_f64()
                )));
            }
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(ServeError::Config(format!(
                "max connections must be in [1, {MAX_CONNECTIONS}], got {}",
                self.max_connections
            )));
        }
        Ok(())
    }
}

/// How a server stopped: what [`Server::serve`] and [`run`](crate::run) return
/// after a shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Connections still open when the shutdown deadline (`shutdown_timeout`)
    /// passed, closed without finishing: a request still being received, waiting
    /// for the model or being answered, or headers never completed. 0 when every
    /// request received was answered.
    pub closed_unfinished: usize,
}

impl ShutdownReport {
    /// Whether every connection finished before the deadline (every request
    /// received was answered).
    pub fn all_answered(&self) -> bool {
        self.closed_unfinished == 0
    }
}

struct AppState {
    service: Arc<ModelService>,
    batcher: BatcherHandle,
    metrics: Arc<Metrics>,
    config: ServeConfig,
    model_json: Bytes,
    /// `POST /v1/generate`: admission (`max_queue` waiting plus the one running;
    /// more get a 503) and the turn (one generation at a time).
    generate_slots: Arc<Semaphore>,
    generate_turn: Arc<Semaphore>,
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
        let generate_slots = Arc::new(Semaphore::new(config.max_queue.saturating_add(1)));
        let generate_turn = Arc::new(Semaphore::new(1));
        let state = AppState { service, batcher, metrics, config, model_json, generate_slots, generate_turn };
        Ok(Server { state: Arc::new(state), worker })
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
            .route("/v1/generate", post(generate))
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
    /// accepting connections, closes idle ones, lets every request already received
    /// finish (its batch runs and it is answered) for at most `shutdown_timeout`,
    /// closes the connections still open then, and stops the inference thread
    /// (after the batch it is running, if any).
    ///
    /// While serving: at most `max_connections` connections are open (see
    /// [`ServeConfig::max_connections`]), headers must arrive within
    /// `header_timeout` and a body within `body_timeout`.
    ///
    /// # Errors
    /// [`ServeError::Io`] when the inference thread panicked.
    pub async fn serve<F>(self, listener: TcpListener, shutdown: F) -> Result<ShutdownReport, ServeError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let router = self.router();
        let Server { state, worker } = self;
        let batcher = state.batcher.clone();
        let config = state.config;
        drop(state);
        let report = serve_connections(listener, router, &config, shutdown).await;
        // Every connection has closed, so no request can still be queued by a
        // handler: stop the thread after whatever it holds (answers to closed
        // connections are skipped), and wait for it.
        let joined = tokio::task::spawn_blocking(move || {
            batcher.stop();
            worker.join()
        })
        .await;
        match joined {
            Ok(Ok(())) => Ok(report),
            _ => Err(ServeError::io(
                "stopping the inference thread",
                std::io::Error::other("the inference thread panicked"),
            )),
        }
    }
}

/// The accept loop and the shutdown: one task per connection, at most
/// `max_connections` at once; on `shutdown`, graceful close and then the deadline.
pub(crate) async fn serve_connections<F>(
    listener: TcpListener,
    router: Router,
    config: &ServeConfig,
    shutdown: F,
) -> ShutdownReport
where
    F: Future<Output = ()>,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(config.header_timeout);
    let http = Arc::new(http);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        // Reaped here so the set holds only connections that are still open.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((tcp, slot)) = accepted else { continue };
        // Answers are small and written at once: send them without Nagle's delay.
        let _ = tcp.set_nodelay(true);
        connections.spawn(serve_connection(tcp, Arc::clone(&http), router.clone(), closing_rx.clone(), slot));
    }
    // Connections waiting in the backlog are refused from here on.
    drop(listener);
    let _ = closing.send(true);
    let deadline = tokio::time::sleep(config.shutdown_timeout);
    let mut deadline = pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            joined = connections.join_next() => if joined.is_none() { break },
        }
    }
    // Aborting drops each connection (and its handler), which closes its socket.
    connections.abort_all();
    let mut closed_unfinished = 0;
    while let Some(joined) = connections.join_next().await {
        if joined.is_err_and(|e| e.is_cancelled()) {
            closed_unfinished += 1;
        }
    }
    ShutdownReport { closed_unfinished }
}

/// Waits for a free connection slot, then for a connection. `None` when accepting
/// failed: at once for an error of that one connection, after a second for an
/// error of the listener (such as too many open files), as axum's loop does.
async fn accept(listener: &TcpListener, slots: &Arc<Semaphore>) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    // The semaphore is never closed.
    let slot = Arc::clone(slots).acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((tcp, _)) => Some((tcp, slot)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            None
        }
        Err(_) => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            None
        }
    }
}

/// Serves one connection until it closes; on the first `closing` it finishes the
/// request in progress (if any) and closes. `_slot` frees a connection slot when
/// the task ends, aborted included.
async fn serve_connection(
    tcp: TcpStream,
    http: Arc<http1::Builder>,
    router: Router,
    mut closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let conn = http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router));
    let mut conn = pin!(conn);
    tokio::select! {
        // A failed connection (a client that left, a header timeout) needs nothing.
        _ = conn.as_mut() => return,
        _ = closing.wait_for(|&c| c) => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
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
        "no route {} {}: the routes are GET /, POST /v1/predict, POST /v1/generate (language models), GET /v1/model, \
         GET /healthz, GET /metrics",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    let path = request.uri().path().to_string();
    let allowed = if path == "/v1/predict" || path == "/v1/generate" { "POST" } else { "GET" };
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

/// The body of a request, within `body_timeout` (408) and `max_body_bytes` (413).
async fn read_body(state: &Arc<AppState>, request: Request) -> Result<Bytes, ApiError> {
    // The body limit (413) is checked as the body arrives; the deadline covers the
    // whole body.
    let timeout = state.config.body_timeout;
    let body = tokio::time::timeout(timeout, Bytes::from_request(request, state)).await.map_err(|_| {
        ApiError::Timeout(format!(
            "the request body did not arrive within {} s (--body-timeout)",
            timeout.as_secs_f64()
        ))
    })?;
    body.map_err(|e: BytesRejection| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "the request body exceeds the limit of {} bytes (--max-body-bytes)",
                state.config.max_body_bytes
            ))
        } else {
            ApiError::BadJson(format!("could not read the request body: {}", e.body_text()))
        }
    })
}

async fn predict(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let body = read_body(&state, request).await?;
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

/// `POST /v1/generate` on a language model ([`crate::text`]): on tokio's blocking
/// pool, one generation at a time; the others wait (without holding a thread), at
/// most `max_queue` of them (more: 503).
async fn generate(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let body = read_body(&state, request).await?;
    let service = Arc::clone(&state.service);
    if service.text().is_none() {
        return Err(ApiError::WrongRoute(
            "this model is not a language model: POST /v1/predict with {\"inputs\": [row, ...]}".into(),
        ));
    }
    let Ok(_admitted) = Arc::clone(&state.generate_slots).try_acquire_owned() else {
        return Err(ApiError::Unavailable("server busy: too many generations waiting, retry later".into()));
    };
    let turn = Arc::clone(&state.generate_turn)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
    let generated = tokio::task::spawn_blocking(move || {
        // Held until the generation ends, even when the client has gone.
        let _turn = turn;
        match service.text() {
            Some(text) => text.generate(&body),
            None => Err(ApiError::Internal("not a text model".into())),
        }
    })
    .await
    .map_err(|e| ApiError::Internal(format!("generating failed: {e}")))??;
    Ok(axum::Json(generated).into_response())
}

fn parse_for(service: &ModelService, body: &[u8]) -> Result<ParsedRows, ApiError> {
    if let Some(text) = service.text() {
        return text.parse_predict(body);
    }
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
                // A language model never gets here (/v1/predict refuses it).
                OutputKind::Values | OutputKind::NextTokenLogits => Prediction {
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
