//! # nn-serve
//!
//! An HTTP inference server for models saved by `nn-cli fit --out DIR` (model.json
//! with its metadata, weights.safetensors), built on axum (HTTP/1.1 on tokio). The
//! model is loaded once; requests are parsed on tokio's threads and answered by one
//! inference thread that batches requests arriving together. `nn-cli serve` is a
//! thin wrapper over [`run`].
//!
//! ```no_run
//! use nn_serve::{ModelService, ServeConfig, Server};
//!
//! # async fn demo() -> Result<(), nn_serve::ServeError> {
//! let service = ModelService::load(std::path::Path::new("runs/digits"))?;
//! let server = Server::new(service, ServeConfig::default())?;
//! let listener = nn_serve::bind("127.0.0.1:0".parse().unwrap()).await?;
//! println!("listening on http://{}", listener.local_addr().unwrap());
//! let report = server.serve(listener, nn_serve::shutdown_signal()).await?;
//! println!("stopped; {} connections closed unfinished", report.closed_unfinished);
//! # Ok(())
//! # }
//! ```
//!
//! # API
//! | route | answer |
//! |---|---|
//! | `POST /v1/predict` | body `{"inputs": [row, ...]}` (or `"instances"`), each row the raw features of one sample (the scalers saved with the model are applied, as `nn-cli predict` does): a flat array of `features` numbers in row-major order, nested arrays of the input shape (`[8][8]` or `[8][8][1]` for `[8, 8, 1]`), or, for a model trained on a CSV file with a header, an object keyed by column name (`{"sepal_length": 5.1, "soil": "clay", "age": null}`: numbers, numbers as text, categories, `null` for a missing value; see [`request`]). Answer `{"predictions": [{"class", "name", "probability", "probabilities"}, ...]}` in row order; a model without a final softmax answers `logits` instead of the two probability fields, a regression model (no class names) only `outputs`, in the target's units (mapped back from standardised units when the model was trained on standardised targets). `"ignored": [keys]` lists object keys that are not columns, `"unseen_categories": n` counts categories not seen in training (both only when there are any). For a text classifier ([`ModelService::with_text_column`]) each row is a text: a string, or an object keyed by the model's text column (`{"text": "And God said"}`), tokenized and padded or cut to the model's context as training and `nn-cli predict` do (see [`text`]); a language model answers 400 (`wrong_route`). |
//! | `POST /v1/generate` | language models only ([`ModelService::with_language_model`]): body [`GenerateRequest`] `{"prompt": text, "max_tokens": n, "temperature": t, "top_k": k, "seed": s}` (all but `prompt` optional: the rest of the context, 1, all tokens, 0), answer [`Generated`] `{"text", "tokens", "prompt_tokens"}`, `text` being the prompt and its continuation exactly as `nn-cli generate` prints it for the same settings. `max_tokens` must be in `[1, context − prompt tokens]`. Other models answer 400 (`wrong_route`). |
//! | `GET /v1/model` | [`ModelInfo`] (input shape, input and output kinds, class names, task, feature columns with their types and categories, for a text model [`TextInfo`] under `text`: its text column, context, vocabulary size and tokenizer, parameter counts, layers, summary, architecture) plus `max_batch`, `batch_wait_ms`, `max_body_bytes` |
//! | `GET /healthz` | `{"status": "ok", "queued": n}` |
//! | `GET /metrics` | Prometheus text format: `nn_serve_requests_total{route,code}`, `nn_serve_request_errors_total{route,code}`, the latency histogram `nn_serve_request_duration_seconds{route}`, batch histograms `nn_serve_batch_rows` and `nn_serve_batch_requests`, `nn_serve_rows_predicted_total`, `nn_serve_queue_depth` and the settings |
//! | `GET /` | a page to try the model by hand: a canvas for one-channel image models (the strokes are redrawn with a pen in proportion to the digit, then cropped, scaled into a 20×20 box and centred by centre of mass as MNIST digits were; or block-counted as the 8×8 UCI digits were), a form of the input columns otherwise (by name when the model knows them), and the answer as probability bars |
//!
//! Errors are JSON `{"error": message, "kind": kind}` with a 4xx status (see
//! [`ApiError`]), plus `"column": name` for an error about one column: 400 malformed
//! JSON or a body that is not `{"inputs": [...]}`, an object row without one of the
//! model's columns (`missing_column`), an object row for a model without column
//! names (`no_column_names`); 408 a body not received within `body_timeout`
//! (`timeout`, and the connection is closed); 413 a body over `max_body_bytes`; 422 a
//! row with the wrong number of values or shape, a non-finite value (a number beyond
//! `f32`'s range, JSON's `1e999`, or the non-JSON `NaN`/`Infinity`), a value that
//! does not fit its column (`bad_value`: text in a numeric column, a missing value the
//! model does not impute; for a text model an empty text, a missing text key or a
//! value that is not a string, and a `/v1/generate` setting out of range, `column`
//! naming the field), or a model output that is NaN or infinite for the input
//! (`non_finite_output`; 500 when the model's own parameters are not finite); 400
//! `/v1/predict` on a language model or `/v1/generate` on another model
//! (`wrong_route`, naming the route to use); 404/405 unknown routes and methods; 503
//! a full queue. The server keeps serving after any of them.
//!
//! # Batching
//! See the [batching rule](batcher): a batch takes the queued requests up to
//! `max_batch` rows, waiting at most `batch_wait` after its first request for more
//! (default 0: no wait, batches form only from requests that queued while the model
//! was busy). `max_batch = 1` turns batching off.
//!
//! # Same answers as `nn-cli predict`
//! A row's outputs are bit-identical to what `nn-cli predict` prints for it, and do
//! not depend on which requests it is batched with, as long as each matrix product
//! of the model gives row results independent of its number of rows. nn-tensor's
//! GEMM (the `gemm` crate) has two exceptions, both measured: a single row takes a
//! GEMV kernel whose sum over an inner dimension above 512 rounds differently (the
//! server avoids it by computing a lone row as two copies, see
//! [`ModelService::forward`]); and a product with at most 64 rows and 64 columns and
//! an inner dimension above 512 (e.g. `Dense(784 → 64)`) splits the inner dimension
//! into other blocks than a larger one. For models with such a layer, a row's last
//! bits can depend on the size of the batch it ran in, here and in `nn-cli predict`
//! alike. The digits MLP and the seed CNN have no such layer.
//!
//! # Limits and timeouts
//! A client cannot hold the server's resources for ever (see [`ServeConfig`]):
//! - **Headers** must arrive within `header_timeout` (default 10 s) of the
//!   connection's start or of its previous answer (so an idle kept-alive connection
//!   is closed after that long too); otherwise the connection is closed without an
//!   answer (hyper's `header_read_timeout` on tokio's timer).
//! - **A body** must arrive within `body_timeout` (default 30 s) of its headers;
//!   otherwise the answer is 408 (`kind` `timeout`) with `Connection: close`.
//! - **Connections**: at most `max_connections` (default 1024) are open, one task
//!   each. With that many open the server stops accepting, so new connections wait
//!   unanswered in the operating system's listen backlog (1024) until one closes;
//!   beyond the backlog the operating system refuses or drops them.
//!
//! # Shutdown
//! On SIGINT or SIGTERM ([`shutdown_signal`]) the server stops accepting (and
//! refuses the connections waiting in the backlog), closes idle connections, and
//! lets every request it has received finish, for at most `shutdown_timeout`
//! (default 30 s). Connections still open at that deadline (a request still being
//! received, computed or answered, or headers never completed) are closed, and
//! counted in the returned [`ShutdownReport`]. The inference thread then finishes
//! the batch it is running, if any, and the server returns: a shutdown takes at
//! most `shutdown_timeout` plus one batch.

#![warn(missing_docs)]

pub mod batcher;
mod error;
pub mod metrics;
mod model;
pub mod recommend;
pub mod request;
mod server;
pub mod text;

use std::net::SocketAddr;

pub use batcher::BatchOutput;
pub use error::{ApiError, ServeError};
pub use metrics::Metrics;
pub use model::{InputKind, LayerInfo, ModelInfo, ModelService, OutputKind, ParameterCounts};
pub use server::{bind, shutdown_signal, ServeConfig, Server, ShutdownReport, MAX_CONNECTIONS, MAX_TIMEOUT, PAGE_HTML};
pub use text::{GenerateRequest, Generated, TextInfo};

/// Serves `service` on `addr` until SIGINT or SIGTERM, on a tokio runtime of
/// `io_threads` threads (HTTP and JSON; the model runs on its own inference thread,
/// whose kernels use `nn_tensor::set_num_threads` threads). `ready` is called with
/// the bound address (useful with port 0) before the first request is accepted;
/// `stopping` when the signal arrives, as the shutdown begins (to say so: it may
/// last up to [`ServeConfig::shutdown_timeout`]).
/// Returns once the [shutdown](crate#shutdown) is over, with how many connections
/// the deadline closed unfinished.
///
/// # Errors
/// [`ServeError::Config`] for invalid settings or 0 I/O threads; [`ServeError::Io`]
/// when the runtime cannot start or `addr` cannot be bound.
pub fn run(
    service: ModelService,
    addr: SocketAddr,
    config: ServeConfig,
    io_threads: usize,
    ready: impl FnOnce(SocketAddr),
    stopping: impl FnOnce() + Send + 'static,
) -> Result<ShutdownReport, ServeError> {
    let server = Server::new(service, config)?;
    run_until_signal(addr, io_threads, ready, stopping, |listener, signal| server.serve(listener, signal))
}

/// The shared body of [`run`] and [`recommend::run`]: a tokio runtime of
/// `io_threads` threads, `addr` bound, `ready` called with the bound address, then
/// `serve` on the listener with a shutdown future that resolves (after calling
/// `stopping`) on SIGINT or SIGTERM.
pub(crate) fn run_until_signal<F, Fut>(
    addr: SocketAddr,
    io_threads: usize,
    ready: impl FnOnce(SocketAddr),
    stopping: impl FnOnce() + Send + 'static,
    serve: F,
) -> Result<ShutdownReport, ServeError>
where
    F: FnOnce(tokio::net::TcpListener, std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
    Fut: std::future::Future<Output = Result<ShutdownReport, ServeError>>,
{
    if io_threads == 0 {
        return Err(ServeError::Config("I/O threads must be at least 1".into()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(io_threads)
        .thread_name("nn-serve-io")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| ServeError::io("starting the tokio runtime", e))?;
    runtime.block_on(async move {
        let listener = bind(addr).await?;
        let local = listener.local_addr().map_err(|e| ServeError::io("reading the bound address", e))?;
        ready(local);
        let signal = Box::pin(async move {
            shutdown_signal().await;
            stopping();
        });
        serve(listener, signal).await
    })
}
