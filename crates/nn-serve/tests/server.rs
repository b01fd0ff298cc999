//! Integration tests: a server on a loopback port, good and bad requests, answers
//! compared bit for bit with what `nn-cli predict` computes (load, scale, predict).

mod common;

use std::time::{Duration, Instant};

use common::*;
use nn_layers::{Activation, LayerSpec, ModelSpec};
use nn_serve::ServeConfig;
use nn_train::ModelMetadata;

fn config(max_batch: usize, wait_ms: u64) -> ServeConfig {
    ServeConfig { max_batch, batch_wait: Duration::from_millis(wait_ms), ..ServeConfig::default() }
}

/// Sends every row as its own request, all at once, and returns the answers in row order.
async fn one_request_per_row(addr: std::net::SocketAddr, rows: &[Vec<f32>]) -> Vec<(Vec<f32>, usize)> {
    let tasks: Vec<_> = rows.iter().map(|r| tokio::spawn(predict_one(addr, r.clone()))).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn predict_one(addr: std::net::SocketAddr, row: Vec<f32>) -> (Vec<f32>, usize) {
    probabilities(&predict(addr, &[row]).await).remove(0)
}

/// The value of the sample line `name` (exact text before the value) in `metrics`.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("`{name}` missing from\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_answers_equal_predict_bit_for_bit_batched_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let model = digits_model(dir.path());
    let rows = digit_rows(40);
    let (want, want_classes) = reference(&model, &rows);

    for (max_batch, wait_ms) in [(1, 0), (64, 0), (8, 20)] {
        let server = start(&model, config(max_batch, wait_ms)).await;
        // All rows in one request.
        let all = probabilities(&predict(server.addr, &rows).await);
        let (got, classes): (Vec<_>, Vec<_>) = all.into_iter().unzip();
        assert_bits_eq(&got, &want, &format!("one request, max batch {max_batch}"));
        assert_eq!(classes, want_classes);
        // One request per row, concurrently: batched together when batching is on.
        let each = one_request_per_row(server.addr, &rows).await;
        let (got, classes): (Vec<_>, Vec<_>) = each.into_iter().unzip();
        assert_bits_eq(&got, &want, &format!("one request per row, max batch {max_batch}"));
        assert_eq!(classes, want_classes);
        let metrics = send(server.addr, "GET", "/metrics", "").await.text();
        assert_eq!(sample(&metrics, "nn_serve_rows_predicted_total"), 80.0);
        let batches = sample(&metrics, "nn_serve_batch_rows_count");
        // The 40-row request is a batch of its own (run `max_batch` rows per forward pass).
        if max_batch == 1 {
            assert_eq!(batches, 41.0, "without batching every request is its own batch");
        } else if wait_ms > 0 {
            // 40 single-row requests arriving together, held up to 20 ms: far fewer
            // batches than requests (the exact number depends on scheduling).
            assert!(batches < 1.0 + 40.0 / 2.0, "{batches} batches for 41 requests\n{metrics}");
            let small = sample(&metrics, "nn_serve_batch_rows_bucket{le=\"8\"}");
            assert_eq!(small, batches - 1.0, "only the 40-row request's batch is above 8 rows\n{metrics}");
        }
        server.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_rows_answer_like_flat_rows() {
    let dir = tempfile::tempdir().unwrap();
    let model = digits_model(dir.path());
    let rows = digit_rows(3);
    let server = start(&model, ServeConfig::default()).await;
    let flat = predict(server.addr, &rows).await;
    let nested: Vec<Vec<Vec<f32>>> = rows.iter().map(|r| r.chunks(8).map(|c| c.to_vec()).collect()).collect();
    let body = serde_json::to_vec(&serde_json::json!({ "inputs": nested })).unwrap();
    let answer = send(server.addr, "POST", "/v1/predict", body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, flat.body);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_cnn_single_rows_equal_a_full_batch() {
    // The CNN's Dense(5408 → 128) is where a one-row GEMM would round differently;
    // the server must still answer each lone row like the batch of all rows.
    let dir = tempfile::tempdir().unwrap();
    let model = mnist_cnn_model(dir.path());
    let mut rng = nn_tensor::random::seeded_rng(5);
    let pixels = nn_tensor::Tensor::<f32>::random_uniform(&[6, 784], 0.0, 256.0, &mut rng).unwrap().to_vec();
    let rows: Vec<Vec<f32>> = pixels.chunks(784).map(|r| r.iter().map(|v| v.floor()).collect()).collect();
    let (want, want_classes) = reference(&model, &rows);
    let server = start(&model, config(1, 0)).await;
    let each = one_request_per_row(server.addr, &rows).await;
    let (got, classes): (Vec<_>, Vec<_>) = each.into_iter().unzip();
    assert_bits_eq(&got, &want, "seed CNN, one row per forward pass");
    assert_eq!(classes, want_classes);
    let model_info = send(server.addr, "GET", "/v1/model", "").await.json();
    assert_eq!(model_info["pixel_max"], 255.0);
    assert_eq!(model_info["parameters"]["total"], 693_962);
    server.shutdown().await.unwrap();
}

/// A graph model (a residual block with a two-branch merge) is served like a chain:
/// answers equal `nn-cli predict`'s bit for bit, and /v1/model lists layers by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_model_answers_equal_predict() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::from_json(
        r#"{"inputs": [{"name": "image", "shape": [8, 8, 1]}], "layers": [
            {"type": "Conv2D", "name": "stem", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"type": "Conv2D", "name": "c1", "filters": 4, "kernel_size": 3, "padding": "same"},
            {"type": "BatchNormalization", "name": "bn"},
            {"type": "Add", "name": "sum", "inputs": ["stem", "bn"]},
            {"type": "GlobalMaxPooling2D", "name": "gmax", "inputs": ["sum"]},
            {"type": "GlobalAveragePooling2D", "name": "gavg", "inputs": ["sum"]},
            {"type": "Concatenate", "name": "both", "inputs": ["gmax", "gavg"]},
            {"type": "Dense", "name": "head", "units": 10, "activation": "softmax"}]}"#,
    )
    .unwrap();
    let meta = nn_train::ModelMetadata {
        data: "digits".into(),
        target: None,
        class_names: Some((0..10).map(|d| d.to_string()).collect()),
        scalers: vec![nn_data::Scaler::constant(1.0 / 16.0, 0.0).unwrap()],
        seed: 11,
        ..ModelMetadata::default()
    };
    let model = save_model(dir.path(), spec, &meta);
    let rows = digit_rows(12);
    let (want, want_classes) = reference(&model, &rows);
    let server = start(&model, config(4, 0)).await;
    let each = one_request_per_row(server.addr, &rows).await;
    let (got, classes): (Vec<_>, Vec<_>) = each.into_iter().unzip();
    assert_bits_eq(&got, &want, "graph model, one row per request");
    assert_eq!(classes, want_classes);
    let info = send(server.addr, "GET", "/v1/model", "").await.json();
    let names: Vec<&str> = info["layers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["stem", "c1", "bn", "sum", "gmax", "gavg", "both", "head"]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let model = digits_model(dir.path());
    let server = start(&model, ServeConfig { max_body_bytes: 4096, ..ServeConfig::default() }).await;
    let row = |n: usize| vec!["1"; n].join(",");
    let cases: Vec<(String, &str, u16, &str, &str)> = vec![
        ("{\"inputs\": [[1,2,".into(), "POST", 400, "bad_json", "EOF while parsing"),
        ("hello".into(), "POST", 400, "bad_json", "expected value at line 1 column 1"),
        (format!("{{\"input\": [[{}]]}}", row(64)), "POST", 400, "bad_json", "unknown field `input`"),
        (
            format!("{{\"inputs\": [[{}]]}}", row(63)),
            "POST",
            422,
            "bad_shape",
            "row 0 has 63 values, the model expects 64",
        ),
        (format!("{{\"inputs\": [{}]}}", row(64)), "POST", 422, "bad_shape", "row 0 is a number, not an array"),
        (
            format!("{{\"inputs\": [[{}], [{},1e39]]}}", row(64), row(63)),
            "POST",
            422,
            "non_finite",
            "row 1, value 63: 1e39",
        ),
        (format!("{{\"inputs\": [[{},NaN]]}}", row(63)), "POST", 422, "non_finite", "NaN"),
        (format!("{{\"inputs\": [[{},1e999]]}}", row(63)), "POST", 422, "non_finite", "out of range"),
        (
            format!("{{\"inputs\": [{}]}}", vec![format!("[{}]", row(64)); 40].join(",")),
            "POST",
            413,
            "too_large",
            "4096 bytes",
        ),
    ];
    for (body, method, status, kind, needle) in &cases {
        let a = send(server.addr, method, "/v1/predict", body.clone()).await;
        assert_eq!(a.status, *status, "{body:.80}: {}", a.text());
        assert!(a.content_type.starts_with("application/json"), "{}", a.content_type);
        let j = a.json();
        assert_eq!(j["kind"], *kind, "{j}");
        assert!(j["error"].as_str().unwrap().contains(needle), "`{needle}` not in {j}");
    }
    let a = send(server.addr, "GET", "/v1/predict", "").await;
    assert_eq!((a.status, a.json()["kind"].as_str().unwrap()), (405, "method_not_allowed"));
    let a = send(server.addr, "POST", "/v2/predict", "{}").await;
    assert_eq!((a.status, a.json()["kind"].as_str().unwrap()), (404, "not_found"));
    // Still serving, and the answers are right.
    let rows = digit_rows(2);
    let (want, _) = reference(&model, &rows);
    let got: Vec<Vec<f32>> = probabilities(&predict(server.addr, &rows).await).into_iter().map(|p| p.0).collect();
    assert_bits_eq(&got, &want, "after bad requests");
    // Zero rows is a valid (empty) request.
    let a = send(server.addr, "POST", "/v1/predict", "{\"inputs\": []}").await;
    assert_eq!((a.status, a.json()), (200, serde_json::json!({ "predictions": [] })));
    let m = send(server.addr, "GET", "/metrics", "").await.text();
    assert_eq!(sample(&m, "nn_serve_request_errors_total{route=\"/v1/predict\",code=\"422\"}"), 5.0);
    assert_eq!(sample(&m, "nn_serve_request_errors_total{route=\"/v1/predict\",code=\"400\"}"), 3.0);
    assert_eq!(sample(&m, "nn_serve_request_errors_total{route=\"/v1/predict\",code=\"413\"}"), 1.0);
    assert_eq!(sample(&m, "nn_serve_request_errors_total{route=\"/v1/predict\",code=\"405\"}"), 1.0);
    assert_eq!(sample(&m, "nn_serve_request_errors_total{route=\"other\",code=\"404\"}"), 1.0);
    assert_eq!(sample(&m, "nn_serve_requests_total{route=\"/v1/predict\",code=\"200\"}"), 2.0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_health_metrics_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let model = digits_model(dir.path());
    let server = start(&model, config(16, 3)).await;

    let info = send(server.addr, "GET", "/v1/model", "").await;
    assert_eq!(info.status, 200);
    let j = info.json();
    assert_eq!(j["input_shape"], serde_json::json!([8, 8, 1]));
    assert_eq!(j["features"], 64);
    assert_eq!(j["input_kind"], "image");
    assert_eq!(j["pixel_max"], 16.0);
    assert_eq!(j["output_kind"], "probabilities");
    assert_eq!(j["class_names"], serde_json::json!(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]));
    // Flatten, Dense(64 → 32), Dense(32 → 10): 64·32 + 32 + 32·10 + 10.
    assert_eq!(j["parameters"]["total"], 64 * 32 + 32 + 32 * 10 + 10);
    let kinds: Vec<&str> = j["layers"].as_array().unwrap().iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Flatten", "Dense", "Dense"]);
    assert_eq!(j["layers"][1]["parameters"], 64 * 32 + 32);
    assert_eq!((j["max_batch"].as_u64(), j["batch_wait_ms"].as_f64()), (Some(16), Some(3.0)));
    assert!(j["summary"].as_str().unwrap().contains("Total params: 2,410"), "{}", j["summary"]);

    let h = send(server.addr, "GET", "/healthz", "").await;
    assert_eq!((h.status, h.json()["status"].as_str().unwrap()), (200, "ok"));

    for _ in 0..3 {
        assert_eq!(predict(server.addr, &digit_rows(2)).await.status, 200);
    }
    let m = send(server.addr, "GET", "/metrics", "").await;
    assert_eq!(m.status, 200);
    assert_eq!(m.content_type, "text/plain; version=0.0.4; charset=utf-8");
    let text = m.text();
    assert_eq!(sample(&text, "nn_serve_requests_total{route=\"/v1/predict\",code=\"200\"}"), 3.0);
    assert_eq!(sample(&text, "nn_serve_request_duration_seconds_count{route=\"/v1/predict\"}"), 3.0);
    assert_eq!(sample(&text, "nn_serve_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"+Inf\"}"), 3.0);
    assert_eq!(sample(&text, "nn_serve_rows_predicted_total"), 6.0);
    assert_eq!(sample(&text, "nn_serve_model_parameters"), 2410.0);
    // Every sample line is `name{labels} value` with a number; buckets never decrease.
    let mut last: Option<(String, f64)> = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in `{line}`"));
        assert!(series.chars().next().unwrap().is_ascii_alphabetic(), "{line}");
        if let Some((prefix, _)) = series.split_once("le=") {
            if let Some((p, v)) = &last {
                if p == prefix {
                    assert!(value >= *v, "bucket decreases at `{line}`");
                }
            }
            last = Some((prefix.to_string(), value));
        }
    }
    for name in ["nn_serve_requests_total", "nn_serve_request_errors_total", "nn_serve_request_duration_seconds"] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }

    let page = send(server.addr, "GET", "/", "").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    let html = page.text();
    assert!(html.contains("<canvas id=\"board\"") && html.contains("/v1/predict"));
    // Self-contained: no external scripts, styles, images or fonts.
    for needle in ["src=\"http", "href=\"http", "url(http", "@import", "<link"] {
        assert!(!html.contains(needle), "external asset `{needle}` in the page");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabular_and_regression_models() {
    let dir = tempfile::tempdir().unwrap();
    // A 4-feature classifier with a standard scaler, like `nn-cli fit --data csv:iris.csv`.
    let scaler = nn_data::Scaler::Standard { mean: vec![5.8, 3.0, 3.8, 1.2], std: vec![0.8, 0.4, 1.8, 0.8] };
    let meta = ModelMetadata {
        data: "csv:iris.csv".into(),
        target: Some("species".into()),
        class_names: Some(vec!["setosa".into(), "versicolor".into(), "virginica".into()]),
        scalers: vec![scaler],
        seed: 1,
        ..ModelMetadata::default()
    };
    let model = save_model(dir.path(), ModelSpec::mlp(&[4], 8, 3, 0.0), &meta);
    let server = start(&model, ServeConfig::default()).await;
    let j = send(server.addr, "GET", "/v1/model", "").await.json();
    assert_eq!((j["input_kind"].as_str(), j["pixel_max"].as_f64()), (Some("tabular"), Some(1.0)));
    let rows = vec![vec![5.1, 3.5, 1.4, 0.2], vec![6.7, 3.0, 5.2, 2.3]];
    let (want, classes) = reference(&model, &rows);
    let a = predict(server.addr, &rows).await;
    let preds = a.json()["predictions"].as_array().unwrap().clone();
    for (i, p) in preds.iter().enumerate() {
        let names = ["setosa", "versicolor", "virginica"];
        assert_eq!(p["name"], names[classes[i]]);
        let got: Vec<f32> = p["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_bits_eq(&[got], &want[i..=i], "tabular");
    }
    server.shutdown().await.unwrap();

    // A regression head: no class names, no softmax → `outputs` only.
    let spec = ModelSpec::new(&[3], vec![LayerSpec::dense(2, Activation::Linear)]);
    let dir2 = tempfile::tempdir().unwrap();
    let model = save_model(dir2.path(), spec, &ModelMetadata::default());
    let server = start(&model, ServeConfig::default()).await;
    let rows = vec![vec![1.0, -2.0, 0.5]];
    let (want, _) = reference(&model, &rows);
    let a = predict(server.addr, &rows).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let p = &a.json()["predictions"][0];
    assert!(p.get("class").is_none() && p.get("probabilities").is_none(), "{p}");
    let got: Vec<f32> = p["outputs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_bits_eq(&[got], &want, "regression");
    assert_eq!(send(server.addr, "GET", "/v1/model", "").await.json()["output_kind"], "values");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_is_parsed_off_the_io_threads() {
    // 300 rows of 64 values is about 60 KiB of JSON with these values... make it
    // longer than the 64 KiB inline limit with decimals.
    let dir = tempfile::tempdir().unwrap();
    let model = digits_model(dir.path());
    let rows: Vec<Vec<f32>> = digit_rows(400).into_iter().map(|r| r.iter().map(|v| v + 0.125).collect()).collect();
    let body = serde_json::to_vec(&serde_json::json!({ "inputs": rows })).unwrap();
    assert!(body.len() > 64 * 1024, "{} bytes", body.len());
    let server = start(&model, ServeConfig::default()).await;
    let a = send(server.addr, "POST", "/v1/predict", body).await;
    let (want, _) = reference(&model, &rows);
    let got: Vec<Vec<f32>> = probabilities(&a).into_iter().map(|p| p.0).collect();
    // 400 rows run 64 per forward pass, the reference all 400 at once: the digits
    // MLP's products give the same row results at any number of rows.
    assert_bits_eq(&got, &want, "400 rows");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let model = digits_model(dir.path());
    // A batch waits 1.5 s for company, so the request is surely in flight when the
    // shutdown starts 0.3 s after it was sent.
    let server = start(&model, config(1000, 1500)).await;
    let addr = server.addr;
    let rows = digit_rows(1);
    let sent = Instant::now();
    let in_flight = tokio::spawn(async move { predict(addr, &rows).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished());
    let metrics = server.metrics.clone();
    let report = server.shutdown().await.unwrap();
    assert!(report.all_answered(), "{report:?}");
    let answer = in_flight.await.unwrap();
    assert!(sent.elapsed() >= Duration::from_millis(1400), "the batch wait was cut short");
    let (want, _) = reference(&model, &digit_rows(1));
    assert_bits_eq(&[probabilities(&answer).remove(0).0], &want, "in-flight request");
    assert_eq!(metrics.requests("/v1/predict", 200), 1);
    // And the port is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// A model with one `Dense(2 → 1)` of known weights: `z = 0.5·a − 1·b + 0.25`.
fn known_dense(kernel: [f32; 2], bias: f32) -> nn_layers::Sequential {
    let spec = ModelSpec::new(&[2], vec![LayerSpec::dense(1, Activation::Linear)]);
    let mut model = nn_layers::Sequential::<f32>::new(spec, 1).unwrap();
    model.set_parameter("layers.0.kernel", nn_tensor::Tensor::try_from_vec(&[2, 1], kernel.to_vec()).unwrap()).unwrap();
    model.set_parameter("layers.0.bias", nn_tensor::Tensor::try_from_vec(&[1], vec![bias]).unwrap()).unwrap();
    model
}

fn save(dir: &std::path::Path, model: &nn_layers::Sequential, meta: &ModelMetadata) -> std::path::PathBuf {
    let out = dir.join("known");
    model.save_with_metadata(&out, &serde_json::to_value(meta).unwrap()).unwrap();
    out
}

fn outputs(answer: &Answer) -> Vec<Vec<f64>> {
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["outputs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_answers_are_in_the_targets_units() {
    let dir = tempfile::tempdir().unwrap();
    // Targets were standardised with mean 10 and std 2: the answer is z·2 + 10.
    let meta = ModelMetadata {
        data: "csv:houses.csv".into(),
        target: Some("price".into()),
        task: Some(nn_data::Task::Regression),
        features: Some(nn_data::FeatureSchema::numeric(["a", "b"])),
        target_scaler: Some(nn_data::TargetScaler { mean: vec![10.0], std: vec![2.0] }),
        ..ModelMetadata::default()
    };
    let model = save(dir.path(), &known_dense([0.5, -1.0], 0.25), &meta);
    let server = start(&model, ServeConfig::default()).await;
    // Row 0: z = 0.5·2 − 0.5 + 0.25 = 0.75 → 11.5. Row 1: z = 0.5·4 − 1 + 0.25 = 1.25 → 12.5.
    // Row 2 (an object, keys in any order): z = 0.5·(−6) − 3 + 0.25 = −5.75 → −1.5.
    let body = r#"{"inputs": [[2, 0.5], [4, 1], {"b": 3, "a": -6}]}"#;
    let a = send(server.addr, "POST", "/v1/predict", body).await;
    assert_eq!(outputs(&a), vec![vec![11.5], vec![12.5], vec![-1.5]]);
    let j = a.json();
    assert!(j.get("ignored").is_none() && j.get("unseen_categories").is_none(), "{j}");
    let info = send(server.addr, "GET", "/v1/model", "").await.json();
    assert_eq!(info["task"], "regression");
    assert_eq!(info["target"], "price");
    assert_eq!(info["target_scaled"], true);
    assert_eq!(info["output_kind"], "values");
    assert_eq!(
        info["columns"],
        serde_json::json!([{"name": "a", "type": "numeric"}, {"name": "b", "type": "numeric"}])
    );
    server.shutdown().await.unwrap();

    // Without the target scaler the same model answers z itself.
    let meta = ModelMetadata { target_scaler: None, ..meta };
    let dir2 = tempfile::tempdir().unwrap();
    let model = save(dir2.path(), &known_dense([0.5, -1.0], 0.25), &meta);
    let server = start(&model, ServeConfig::default()).await;
    let a = send(server.addr, "POST", "/v1/predict", r#"{"inputs": [[2, 0.5]]}"#).await;
    assert_eq!(outputs(&a), vec![vec![0.75]]);
    assert_eq!(send(server.addr, "GET", "/v1/model", "").await.json()["target_scaled"], false);
    server.shutdown().await.unwrap();
}

/// A model trained on a CSV file with a header: rows may be objects keyed by column
/// name, encoded exactly as the arrays of the model's inputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_as_objects_keyed_by_column_name() {
    use nn_data::{ColumnKind, FeatureColumn, FeatureSchema, Missing};
    let dir = tempfile::tempdir().unwrap();
    let schema = FeatureSchema {
        columns: vec![
            FeatureColumn { name: "sepal_length".into(), kind: ColumnKind::Numeric },
            FeatureColumn {
                name: "soil".into(),
                kind: ColumnKind::Categorical { categories: vec!["3".into(), "clay".into(), "sand".into()] },
            },
            FeatureColumn { name: "petal_width".into(), kind: ColumnKind::Numeric },
        ],
        missing: Missing::Error,
    };
    let meta = ModelMetadata {
        data: "csv:iris.csv".into(),
        target: Some("species".into()),
        class_names: Some(vec!["setosa".into(), "versicolor".into(), "virginica".into()]),
        scalers: vec![nn_data::Scaler::Standard {
            mean: vec![5.8, 0.3, 0.3, 0.3, 1.2],
            std: vec![0.8, 0.5, 0.5, 0.5, 0.8],
        }],
        task: Some(nn_data::Task::Classification),
        features: Some(schema),
        ..ModelMetadata::default()
    };
    let model = save_model(dir.path(), ModelSpec::mlp(&[5], 8, 3, 0.0), &meta);
    let server = start(&model, ServeConfig::default()).await;

    let info = send(server.addr, "GET", "/v1/model", "").await.json();
    assert_eq!(info["task"], "classification");
    assert_eq!(info["missing"], "error");
    assert_eq!(
        info["columns"],
        serde_json::json!([
            {"name": "sepal_length", "type": "numeric"},
            {"name": "soil", "type": "categorical", "categories": ["3", "clay", "sand"]},
            {"name": "petal_width", "type": "numeric"}
        ])
    );
    assert_eq!(
        info["input_names"],
        serde_json::json!(["sepal_length", "soil=3", "soil=clay", "soil=sand", "petal_width"])
    );

    // Objects (a number as a category, numbers as text, extra keys, an unseen
    // category) answer exactly what the equivalent arrays answer.
    let objects = r#"{"instances": [
        {"sepal_length": 5.1, "soil": "sand", "petal_width": 0.2, "id": 7},
        {"petal_width": "1.8", "soil": 3, "sepal_length": "6.3", "note": "x", "id": 8},
        {"sepal_length": 4.9, "soil": "loam", "petal_width": 0.1}
    ]}"#;
    let arrays = r#"{"inputs": [[5.1, 0, 0, 1, 0.2], [6.3, 1, 0, 0, 1.8], [4.9, 0, 0, 0, 0.1]]}"#;
    let a = send(server.addr, "POST", "/v1/predict", objects).await;
    let b = send(server.addr, "POST", "/v1/predict", arrays).await;
    assert_eq!((a.status, b.status), (200, 200), "{} {}", a.text(), b.text());
    let (ja, jb) = (a.json(), b.json());
    assert_eq!(ja["predictions"], jb["predictions"]);
    assert_eq!(ja["ignored"], serde_json::json!(["id", "note"]));
    assert_eq!(ja["unseen_categories"], 1);
    assert!(jb.get("ignored").is_none() && jb.get("unseen_categories").is_none(), "{jb}");
    let rows = vec![vec![5.1, 0.0, 0.0, 1.0, 0.2], vec![6.3, 1.0, 0.0, 0.0, 1.8], vec![4.9, 0.0, 0.0, 0.0, 0.1]];
    let (want, _) = reference(&model, &rows);
    let got: Vec<Vec<f32>> = ja["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect())
        .collect();
    assert_bits_eq(&got, &want, "object rows");

    // Errors: JSON naming the column.
    let cases = [
        (r#"{"inputs": [{"sepal_length": 5, "soil": "clay"}]}"#, 400, "missing_column", Some("petal_width")),
        (
            r#"{"inputs": [{"sepal_length": null, "soil": "clay", "petal_width": 1}]}"#,
            422,
            "bad_value",
            Some("sepal_length"),
        ),
        (
            r#"{"inputs": [{"sepal_length": "tall", "soil": "clay", "petal_width": 1}]}"#,
            422,
            "bad_value",
            Some("sepal_length"),
        ),
        (r#"{"inputs": [{"sepal_length": 5, "soil": false, "petal_width": 1}]}"#, 422, "bad_value", Some("soil")),
    ];
    for (body, status, kind, column) in cases {
        let a = send(server.addr, "POST", "/v1/predict", body).await;
        let j = a.json();
        assert_eq!((a.status, j["kind"].as_str().unwrap()), (status, kind), "{body}: {j}");
        assert_eq!(j["column"].as_str(), column, "{j}");
        assert!(j["error"].as_str().unwrap().contains(column.unwrap()), "{j}");
    }
    let a = send(server.addr, "POST", "/v1/predict", r#"{"inputs": [{"sepal_length": 5, "soil": "clay"}]}"#).await;
    assert_eq!(a.json()["error"], "row 0 has no value for the column \"petal_width\" (send null for a missing value)");
    server.shutdown().await.unwrap();

    // A model without column names refuses objects with a 400 saying so.
    let dir2 = tempfile::tempdir().unwrap();
    let model = digits_model(dir2.path());
    let server = start(&model, ServeConfig::default()).await;
    let a = send(server.addr, "POST", "/v1/predict", r#"{"inputs": [{"pixel0": 1}]}"#).await;
    let j = a.json();
    assert_eq!((a.status, j["kind"].as_str().unwrap()), (400, "no_column_names"), "{j}");
    assert!(j["error"].as_str().unwrap().contains("has no column names"), "{j}");
    assert!(send(server.addr, "GET", "/v1/model", "").await.json().get("columns").is_none());
    server.shutdown().await.unwrap();
}

/// Missing values under `--missing mean`: null becomes NaN, which the saved
/// imputing scaler replaces by the training mean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_values_are_imputed_when_the_model_was_trained_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut schema = nn_data::FeatureSchema::numeric(["a", "b"]);
    schema.missing = nn_data::Missing::Mean;
    let meta = ModelMetadata {
        features: Some(schema),
        // The imputer of `--missing mean`: column means 4 and 1.
        scalers: imputer(&[4.0, 1.0]),
        ..ModelMetadata::default()
    };
    let model = save(dir.path(), &known_dense([0.5, -1.0], 0.25), &meta);
    let server = start(&model, ServeConfig::default()).await;
    // a missing → 4: z = 2 − 0.5 + 0.25 = 1.75; b missing → 1: z = 1 − 1 + 0.25 = 0.25.
    let body = r#"{"inputs": [{"a": null, "b": 0.5}, {"a": 2, "b": "NA"}]}"#;
    let a = send(server.addr, "POST", "/v1/predict", body).await;
    assert_eq!(outputs(&a), vec![vec![1.75], vec![0.25]]);
    server.shutdown().await.unwrap();
}

/// The saved scaler that imputes `means` for NaN, as `fit --missing mean` saves it.
fn imputer(means: &[f64]) -> Vec<nn_data::Scaler> {
    vec![nn_data::Scaler::Impute { values: means.to_vec() }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_finite_answers_are_errors_not_nulls() {
    // Finite parameters, an input that overflows f32 inside the model: 422.
    let dir = tempfile::tempdir().unwrap();
    let model = save(dir.path(), &known_dense([3e38, 0.0], 0.0), &ModelMetadata::default());
    let server = start(&model, ServeConfig::default()).await;
    let a = send(server.addr, "POST", "/v1/predict", r#"{"inputs": [[0.5, 0], [10, 0], [-10, 0]]}"#).await;
    let j = a.json();
    assert_eq!((a.status, j["kind"].as_str().unwrap()), (422, "non_finite_output"), "{j}");
    assert!(
        j["error"].as_str().unwrap().starts_with("the model's output is not finite (NaN or infinite) for rows 1, 2:"),
        "{j}"
    );
    // The same server answers finite rows.
    let a = send(server.addr, "POST", "/v1/predict", r#"{"inputs": [[0.5, 0]]}"#).await;
    assert_eq!(outputs(&a), vec![vec![1.5e38]]);
    server.shutdown().await.unwrap();

    // A saved model holding a NaN parameter is refused when loaded, naming the tensor.
    let dir = tempfile::tempdir().unwrap();
    let meta = ModelMetadata { class_names: Some(vec!["only".into()]), ..ModelMetadata::default() };
    let model = save(dir.path(), &known_dense([f32::NAN, 1.0], 0.0), &meta);
    let Err(e) = nn_serve::ModelService::load(&model) else { panic!("a NaN weight is refused") };
    assert!(e.to_string().contains("tensor layers.0.kernel: holds values that are not finite"), "{e}");
    // Built in code, such a model answers 500 naming the cause, never `null`.
    let service = nn_serve::ModelService::new(known_dense([f32::NAN, 1.0], 0.0), meta).unwrap();
    assert!(!service.parameters_finite());
    let server = start_service(service, ServeConfig::default()).await;
    let a = send(server.addr, "POST", "/v1/predict", r#"{"inputs": [[1, 2]]}"#).await;
    let j = a.json();
    assert_eq!((a.status, j["kind"].as_str().unwrap()), (500, "non_finite_output"), "{j}");
    assert!(j["error"].as_str().unwrap().contains("row 0: the model's parameters hold NaN"), "{j}");
    assert!(!a.text().contains("null"), "{}", a.text());
    server.shutdown().await.unwrap();
}

#[test]
fn metadata_that_does_not_fit_the_model_is_refused_at_load() {
    let model = || known_dense([1.0, 1.0], 0.0);
    let meta =
        ModelMetadata { features: Some(nn_data::FeatureSchema::numeric(["a", "b", "c"])), ..ModelMetadata::default() };
    let e = nn_serve::ModelService::new(model(), meta).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the model's metadata does not fit the model: metadata.features: 3 columns encode to 3 inputs, \
         the model takes 2"
    );
    let meta = ModelMetadata {
        target_scaler: Some(nn_data::TargetScaler { mean: vec![1.0, 2.0], std: vec![1.0, 1.0] }),
        ..ModelMetadata::default()
    };
    let e = nn_serve::ModelService::new(model(), meta).unwrap_err();
    assert!(e.to_string().contains("metadata.target_scaler: statistics for 2 outputs, the model has 1"), "{e}");
    let meta = ModelMetadata {
        target_scaler: Some(nn_data::TargetScaler { mean: vec![f64::NAN], std: vec![1.0] }),
        ..ModelMetadata::default()
    };
    assert!(nn_serve::ModelService::new(model(), meta).is_err());
}
