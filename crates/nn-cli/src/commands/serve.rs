//! `nn-cli serve`: an HTTP inference server for a saved model (the nn-serve crate).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use nn_serve::{ModelService, ServeConfig};

use crate::error::{CliError, Result};

/// `nn-cli serve` flags. Kernel threads come from the global `--threads`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A folder written by `nn-cli fit --out`.
    #[arg(long)]
    pub model: PathBuf,
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Most rows per batch and per forward pass; 1 turns batching off.
    #[arg(long, default_value_t = 64)]
    pub max_batch: usize,
    /// Longest wait for more requests after a batch's first (milliseconds); 0 takes
    /// only the requests already queued, adding no latency.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub batch_wait_ms: f64,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, default_value_t = 8 << 20)]
    pub max_body_bytes: usize,
    /// Requests that may wait for the model (more: 503).
    #[arg(long, default_value_t = 1024)]
    pub max_queue: usize,
    /// Threads for HTTP and JSON (the model runs on its own thread).
    #[arg(long, default_value_t = 2)]
    pub io_threads: usize,
    /// Longest wait for a request's headers, in seconds, counted from the
    /// connection's start or its previous answer (so also the longest idle
    /// keep-alive); then the connection is closed unanswered. In (0, 3600].
    #[arg(long, value_name = "SECS", default_value_t = 10.0, allow_negative_numbers = true)]
    pub header_timeout: f64,
    /// Longest wait for a request's whole body once its headers are in, in seconds;
    /// then 408 and the connection is closed. In (0, 3600].
    #[arg(long, value_name = "SECS", default_value_t = 30.0, allow_negative_numbers = true)]
    pub body_timeout: f64,
    /// Most connections open at once; further ones wait unanswered in the listen
    /// backlog until one closes. In [1, 100000].
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// On SIGINT or SIGTERM, how long requests in progress may still take, in
    /// seconds; then the connections still open are closed and the server exits
    /// (status 0 either way; the last line says whether every request was
    /// answered). In (0, 3600].
    #[arg(long, value_name = "SECS", default_value_t = 30.0, allow_negative_numbers = true)]
    pub shutdown_timeout: f64,
}

/// `value` seconds of the flag `flag` as a duration.
///
/// # Errors
/// [`CliError::Usage`] naming the flag unless `value` is finite, more than 0 and at
/// most [`nn_serve::MAX_TIMEOUT`].
fn seconds(flag: &str, value: f64) -> Result<Duration> {
    let max = nn_serve::MAX_TIMEOUT.as_secs_f64();
    // A positive value below a nanosecond would become a zero duration.
    if value.is_finite() && value >= 1e-9 && value <= max {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(CliError::Usage(format!("{flag} must be a number of seconds in (0, {max}], got {value}")))
    }
}

/// Loads the model, prints where it listens, serves until SIGINT or SIGTERM, then
/// prints whether every request was answered or how many connections the shutdown
/// deadline closed unfinished.
pub fn run(args: ServeArgs) -> Result<()> {
    if !(args.batch_wait_ms.is_finite() && (0.0..=10_000.0).contains(&args.batch_wait_ms)) {
        return Err(CliError::Usage(format!("--batch-wait-ms must be in [0, 10000], got {}", args.batch_wait_ms)));
    }
    let config = ServeConfig {
        max_batch: args.max_batch,
        batch_wait: Duration::from_secs_f64(args.batch_wait_ms / 1e3),
        max_body_bytes: args.max_body_bytes,
        max_queue: args.max_queue,
        header_timeout: seconds("--header-timeout", args.header_timeout)?,
        body_timeout: seconds("--body-timeout", args.body_timeout)?,
        max_connections: args.max_connections,
        shutdown_timeout: seconds("--shutdown-timeout", args.shutdown_timeout)?,
    };
    config.check().map_err(|e| CliError::Usage(e.to_string()))?;
    super::require_folder(&args.model)?;
    if args.model.join(nn_recommend::model::SPEC_FILE).is_file() {
        return serve_recommender(&args, config);
    }
    // Sized from model.json before the weights are read (a folder that cannot be
    // described is left to the loader, which says why).
    if let Ok(spec) = nn_layers::ModelSpec::read_saved(&args.model) {
        super::check_inference(&spec, args.max_batch, "--max-batch")?;
    }
    let mut service = ModelService::load(&args.model).map_err(|e| CliError::Usage(e.to_string()))?;
    // A text model (a folder with tokenizer.json) reads texts with its tokenizer, as
    // `nn-cli predict` and `nn-cli generate` do.
    if let Some(text) = super::saved_text(&args.model, service.model(), service.metadata())? {
        let tokenizer = text.tokenizer().clone();
        service = if text.is_lm() {
            service.with_language_model(tokenizer)
        } else {
            service.with_text_column(tokenizer, text.text_column())
        }
        .map_err(|e| CliError::Usage(format!("{}: {e}", args.model.display())))?;
    }
    let info = service.info();
    let classes = info.class_names.as_ref().map_or(String::new(), |c| format!(", {} classes", c.len()));
    let input = match &info.text {
        Some(t) if t.language_model => format!(
            "a language model of context {} tokens ({} tokenizer, {} tokens; POST /v1/generate)",
            t.context, t.tokenizer, t.vocab_size
        ),
        Some(t) => format!(
            "texts (column {:?}, padded or cut to {} tokens; {} tokenizer, {} tokens)",
            t.column.as_deref().unwrap_or_default(),
            t.context,
            t.tokenizer,
            t.vocab_size
        ),
        None => format!("input {:?}", info.input_shape),
    };
    let described = format!(
        "model {}: {input}{classes}, {} parameters",
        args.model.display(),
        nn_layers::thousands(info.parameters.total)
    );
    let batching = if args.max_batch == 1 {
        "batching off".to_string()
    } else {
        format!("batches of up to {} rows, waiting up to {} ms", args.max_batch, args.batch_wait_ms)
    };
    let limits = format!(
        "at most {} connections; headers within {} s, bodies within {} s; a shutdown waits up to {} s",
        args.max_connections, args.header_timeout, args.body_timeout, args.shutdown_timeout
    );
    let lines = vec![described, format!("{batching}; {} kernel threads", nn_tensor::num_threads()), limits];
    serve_reporting(&args, lines, |ready, stopping| {
        nn_serve::run(service, args.addr, config, args.io_threads, ready, stopping)
    })
}

/// Runs a server through `run` (given what to print once it listens and when it
/// stops), then prints whether every request was answered.
fn serve_reporting(
    args: &ServeArgs,
    lines: Vec<String>,
    run: impl FnOnce(
        Box<dyn FnOnce(SocketAddr)>,
        Box<dyn FnOnce() + Send>,
    ) -> std::result::Result<nn_serve::ShutdownReport, nn_serve::ServeError>,
) -> Result<()> {
    let deadline = args.shutdown_timeout;
    let ready = Box::new(move |addr: SocketAddr| {
        for line in &lines {
            println!("{line}");
        }
        println!("listening on http://{addr} (Ctrl-C or SIGTERM stops)");
        let _ = std::io::stdout().flush();
    });
    let stopping = Box::new(move || {
        println!("stopping: no new connections; finishing the requests in progress (up to {deadline} s)");
        let _ = std::io::stdout().flush();
    });
    let report = run(ready, stopping).map_err(|e| CliError::Usage(e.to_string()))?;
    // A stop past the deadline is still a clean stop (exit status 0): the line says
    // what was cut short.
    match report.closed_unfinished {
        0 => println!("stopped: every request received was answered"),
        n => println!(
            "stopped: the shutdown deadline ({} s) passed; {n} connection{} closed unfinished",
            args.shutdown_timeout,
            if n == 1 { " was" } else { "s were" }
        ),
    }
    Ok(())
}

/// `nn-cli serve` on a recommender's folder (`fit --data ratings:… --out DIR`): the
/// routes of [`nn_serve::recommend`].
fn serve_recommender(args: &ServeArgs, config: ServeConfig) -> Result<()> {
    let service =
        nn_serve::recommend::RecommendService::load(&args.model).map_err(|e| CliError::Usage(e.to_string()))?;
    let described = format!(
        "recommender {}: {} users, {} items",
        args.model.display(),
        service.model().users().len(),
        service.model().items().len()
    );
    let lines = vec![described, "routes: POST /v1/recommend, POST /v1/similar, GET /v1/model, GET /healthz".into()];
    serve_reporting(args, lines, |ready, stopping| {
        nn_serve::recommend::run(service, args.addr, config, args.io_threads, ready, stopping)
    })
}
