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
}

/// Loads the model, prints where it listens, serves until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<()> {
    if !(args.batch_wait_ms.is_finite() && (0.0..=10_000.0).contains(&args.batch_wait_ms)) {
        return Err(CliError::Usage(format!("--batch-wait-ms must be in [0, 10000], got {}", args.batch_wait_ms)));
    }
    let config = ServeConfig {
        max_batch: args.max_batch,
        batch_wait: Duration::from_secs_f64(args.batch_wait_ms / 1e3),
        max_body_bytes: args.max_body_bytes,
        max_queue: args.max_queue,
    };
    config.check().map_err(|e| CliError::Usage(e.to_string()))?;
    let service = ModelService::load(&args.model).map_err(|e| CliError::Usage(e.to_string()))?;
    let info = service.info();
    let classes = info.class_names.as_ref().map_or(String::new(), |c| format!(", {} classes", c.len()));
    let described = format!(
        "model {}: input {:?}{classes}, {} parameters",
        args.model.display(),
        info.input_shape,
        nn_layers::thousands(info.parameters.total)
    );
    let batching = if args.max_batch == 1 {
        "batching off".to_string()
    } else {
        format!("batches of up to {} rows, waiting up to {} ms", args.max_batch, args.batch_wait_ms)
    };
    nn_serve::run(service, args.addr, config, args.io_threads, |addr| {
        println!("{described}");
        println!("{batching}; {} kernel threads", nn_tensor::num_threads());
        println!("listening on http://{addr} (Ctrl-C or SIGTERM stops)");
        let _ = std::io::stdout().flush();
    })
    .map_err(|e| CliError::Usage(e.to_string()))?;
    println!("stopped: every request received was answered");
    Ok(())
}
