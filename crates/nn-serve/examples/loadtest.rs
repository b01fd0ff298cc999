//! Load test of nn-serve on loopback: requests per second and p50/p99 latency at
//! several numbers of concurrent clients, with and without batching.
//!
//! ```sh
//! cargo run --release -p nn-serve --example loadtest -- [--seconds 5] [--clients 1,8,64]
//!     [--models digits,cnn] [--threads 1] [--max-requests 200000] [--repeat 1]
//! ```
//!
//! For each model, client count and batching setting it starts a server on
//! 127.0.0.1 (port 0) on its own tokio runtime (2 I/O threads, one inference thread
//! whose kernels use `--threads`), and runs `clients` closed-loop clients on another
//! runtime (one thread): each client keeps one HTTP/1.1 keep-alive connection and
//! sends one single-row `POST /v1/predict` after the other. Every run is bounded: a
//! 0.5 s warm-up that is not counted, then `--seconds` or `--max-requests` requests,
//! whichever comes first. Clients and server share the machine's cores. With
//! `--repeat N` each configuration runs N times and the run with the median
//! requests/s is reported. `model busy` is the share of the wall time the inference
//! thread spent on batches (from `nn_serve_batch_duration_seconds`).
//!
//! Models (random weights: the speed of a forward pass does not depend on the
//! values): `digits` is `nn-cli fit`'s default MLP on the 8×8 digits (Flatten →
//! Dense(128, relu) → Dense(10, softmax), 9,610 parameters), fed real digit rows;
//! `cnn` is the seed CNN on 28×28×1 (693,962 parameters), fed 28×28 byte images.
//! Batching off is `max_batch = 1`; on is `max_batch = 64` with `batch_wait = 0`
//! (the defaults), and `64/2ms` adds a 2 ms batch wait.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use nn_layers::{ModelSpec, Sequential};
use nn_serve::{ModelService, ServeConfig, Server};
use nn_train::ModelMetadata;

struct Options {
    seconds: f64,
    clients: Vec<usize>,
    models: Vec<String>,
    threads: usize,
    max_requests: u64,
    repeat: usize,
}

fn parse_args() -> Options {
    let mut o = Options {
        seconds: 5.0,
        clients: vec![1, 8, 64],
        models: vec!["digits".into(), "cnn".into()],
        threads: 1,
        max_requests: 200_000,
        repeat: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_else(|| usage(&format!("{} needs a value", args[i])));
        match args[i].as_str() {
            "--seconds" => o.seconds = value.parse().unwrap_or_else(|_| usage("--seconds: a number")),
            "--clients" => {
                o.clients =
                    value.split(',').map(|c| c.parse().unwrap_or_else(|_| usage("--clients: e.g. 1,8,64"))).collect()
            }
            "--models" => o.models = value.split(',').map(str::to_string).collect(),
            "--threads" => o.threads = value.parse().unwrap_or_else(|_| usage("--threads: a number")),
            "--max-requests" => o.max_requests = value.parse().unwrap_or_else(|_| usage("--max-requests: a number")),
            "--repeat" => o.repeat = value.parse().unwrap_or_else(|_| usage("--repeat: a number")),
            other => usage(&format!("unknown flag {other}")),
        }
        i += 2;
    }
    if !(o.seconds > 0.0 && o.seconds <= 600.0)
        || o.clients.iter().any(|&c| c == 0 || c > 1024)
        || o.threads == 0
        || o.repeat == 0
    {
        usage("--seconds in (0, 600], clients in 1..=1024, threads and repeat >= 1");
    }
    o
}

fn usage(message: &str) -> ! {
    eprintln!("loadtest: {message}\nusage: loadtest [--seconds S] [--clients 1,8,64] [--models digits,cnn] [--threads N] [--max-requests N] [--repeat N]");
    std::process::exit(2)
}

/// A model and request bodies for it (one row each).
fn model_and_bodies(name: &str) -> (ModelService, Vec<Bytes>) {
    let names = Some((0..10).map(|d| d.to_string()).collect());
    match name {
        "digits" => {
            let model = Sequential::<f32>::new(ModelSpec::mlp(&[8, 8, 1], 128, 10, 0.0), 42).unwrap();
            let meta = ModelMetadata {
                data: "digits".into(),
                class_names: names,
                scalers: vec![nn_data::Scaler::constant(1.0 / 16.0, 0.0).unwrap()],
                ..ModelMetadata::default()
            };
            let pixels = nn_data::digits::load().features().to_vec();
            let bodies = pixels
                .chunks(64)
                .take(256)
                .map(|r| Bytes::from(serde_json::to_vec(&serde_json::json!({ "inputs": [r] })).unwrap()))
                .collect();
            (ModelService::new(model, meta).expect("the metadata fits the model"), bodies)
        }
        "cnn" => {
            let model = Sequential::<f32>::new(ModelSpec::seed_cnn(&[28, 28, 1], 10), 42).unwrap();
            let meta = ModelMetadata {
                data: "mnist:-".into(),
                class_names: names,
                scalers: vec![nn_data::Scaler::constant(1.0 / 255.0, 0.0).unwrap()],
                ..ModelMetadata::default()
            };
            let mut rng = nn_tensor::random::seeded_rng(7);
            let bodies = (0..64)
                .map(|_| {
                    let row: Vec<u8> = nn_tensor::Tensor::<f32>::random_uniform(&[784], -400.0, 256.0, &mut rng)
                        .unwrap()
                        .to_vec()
                        .into_iter()
                        .map(|v| v.max(0.0) as u8)
                        .collect();
                    Bytes::from(serde_json::to_vec(&serde_json::json!({ "inputs": [row] })).unwrap())
                })
                .collect();
            (ModelService::new(model, meta).expect("the metadata fits the model"), bodies)
        }
        other => usage(&format!("unknown model {other}: digits or cnn")),
    }
}

struct Outcome {
    requests: u64,
    seconds: f64,
    latencies: Vec<Duration>,
    errors: u64,
    mean_batch: f64,
    /// Fraction of the wall time the inference thread spent on batches.
    busy: f64,
}

fn run_one(model: &str, clients: usize, config: ServeConfig, o: &Options) -> Outcome {
    let (service, bodies) = model_and_bodies(model);
    let server = Server::new(service, config).unwrap();
    let metrics = server.metrics();
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = server_rt.block_on(nn_serve::bind("127.0.0.1:0".parse().unwrap())).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server_rt.spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));

    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let counting = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let counted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let bodies = Arc::new(bodies);
    let (latencies, seconds, (mean_batch, busy)) = client_rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (counting, done, counted, errors, bodies) =
                (counting.clone(), done.clone(), counted.clone(), errors.clone(), bodies.clone());
            let max = o.max_requests;
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
                tokio::spawn(conn);
                let mut lat = Vec::new();
                let mut i = c;
                while !done.load(Ordering::Relaxed) {
                    let body = bodies[i % bodies.len()].clone();
                    i += clients;
                    let req = Request::post("/v1/predict")
                        .header("host", "127.0.0.1")
                        .header("content-type", "application/json")
                        .body(Full::new(body))
                        .unwrap();
                    let t = Instant::now();
                    if sender.ready().await.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    let ok = match sender.send_request(req).await {
                        Ok(res) => {
                            let status = res.status();
                            let body = res.into_body().collect().await.map(|b| b.to_bytes());
                            status == 200 && body.is_ok()
                        }
                        Err(_) => false,
                    };
                    let elapsed = t.elapsed();
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if counting.load(Ordering::Relaxed) && !done.load(Ordering::Relaxed) {
                        lat.push(elapsed);
                        if counted.fetch_add(1, Ordering::Relaxed) + 1 >= max {
                            done.store(true, Ordering::Relaxed);
                        }
                    }
                }
                lat
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        counting.store(true, Ordering::Relaxed);
        let before = batch_totals(&metrics);
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(o.seconds);
        while Instant::now() < deadline && !done.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        done.store(true, Ordering::Relaxed);
        let seconds = start.elapsed().as_secs_f64();
        let after = batch_totals(&metrics);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        (all, seconds, ((after.0 - before.0) / (after.1 - before.1), (after.2 - before.2) / seconds))
    });
    let _ = stop.send(());
    server_rt.block_on(serving).unwrap().unwrap();
    Outcome {
        requests: latencies.len() as u64,
        seconds,
        latencies,
        errors: errors.load(Ordering::Relaxed),
        mean_batch,
        busy,
    }
}

/// `(rows, batches, seconds busy)` of the inference thread so far, from the metrics text.
fn batch_totals(m: &nn_serve::Metrics) -> (f64, f64, f64) {
    let text = m.render(0);
    let value = |name: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' '))).unwrap().parse().unwrap()
    };
    (value("nn_serve_batch_rows_sum"), value("nn_serve_batch_rows_count"), value("nn_serve_batch_duration_seconds_sum"))
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank: the smallest value with at least q of the samples at or below it.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

fn main() {
    let o = parse_args();
    nn_tensor::set_num_threads(o.threads);
    let modes: [(&str, usize, u64); 3] =
        [("off (max batch 1)", 1, 0), ("64 / wait 0", 64, 0), ("64 / wait 2 ms", 64, 2)];
    println!(
        "nn-serve load test: {} s per run, kernel threads {}, GEMM {}, {} CPUs",
        o.seconds,
        o.threads,
        nn_tensor::backend_summary(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!();
    println!("| model | clients | batching | requests/s | p50 ms | p99 ms | rows/batch | model busy | errors |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for model in &o.models {
        for &clients in &o.clients {
            for (label, max_batch, wait_ms) in modes {
                let config =
                    ServeConfig { max_batch, batch_wait: Duration::from_millis(wait_ms), ..ServeConfig::default() };
                // With --repeat, the run with the median requests/s is reported.
                let mut runs: Vec<Outcome> = (0..o.repeat).map(|_| run_one(model, clients, config, &o)).collect();
                runs.sort_by(|a, b| (a.requests as f64 / a.seconds).total_cmp(&(b.requests as f64 / b.seconds)));
                let mut r = runs.swap_remove(runs.len() / 2);
                r.latencies.sort();
                println!(
                    "| {model} | {clients} | {label} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0} % | {} |",
                    r.requests as f64 / r.seconds,
                    percentile(&r.latencies, 0.50),
                    percentile(&r.latencies, 0.99),
                    r.mean_batch,
                    100.0 * r.busy,
                    r.errors
                );
            }
        }
    }
}
