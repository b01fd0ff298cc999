//! Shared helpers of the integration tests: models saved to a temporary folder, a
//! server on a loopback port, and a small HTTP/1.1 client (hyper).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use nn_layers::{ModelSpec, Sequential};
use nn_serve::{ModelService, ServeConfig, Server};
use nn_tensor::Tensor;
use nn_train::ModelMetadata;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Saves `spec` with random weights (seeded) and `meta` in `dir`, as `nn-cli fit`
/// does, and returns the folder.
pub fn save_model(dir: &Path, spec: ModelSpec, meta: &ModelMetadata) -> std::path::PathBuf {
    let model = Sequential::<f32>::new(spec, 11).unwrap();
    let out = dir.join("model");
    model.save_with_metadata(&out, &serde_json::to_value(meta).unwrap()).unwrap();
    out
}

/// A digits-style model: `[8, 8, 1]` pixels 0..16 scaled by 1/16, an MLP with 32
/// hidden units, class names "0".."9".
pub fn digits_model(dir: &Path) -> std::path::PathBuf {
    let meta = ModelMetadata {
        data: "digits".into(),
        target: None,
        class_names: Some((0..10).map(|d| d.to_string()).collect()),
        scalers: vec![nn_data::Scaler::constant(1.0 / 16.0, 0.0).unwrap()],
        seed: 11,
        ..ModelMetadata::default()
    };
    save_model(dir, ModelSpec::mlp(&[8, 8, 1], 32, 10, 0.0), &meta)
}

/// The seed CNN on `[28, 28, 1]` MNIST-style pixels 0..255 scaled by 1/255.
pub fn mnist_cnn_model(dir: &Path) -> std::path::PathBuf {
    let meta = ModelMetadata {
        data: "mnist:/data/mnist".into(),
        target: None,
        class_names: Some((0..10).map(|d| d.to_string()).collect()),
        scalers: vec![nn_data::Scaler::constant(1.0 / 255.0, 0.0).unwrap()],
        seed: 11,
        ..ModelMetadata::default()
    };
    save_model(dir, ModelSpec::seed_cnn(&[28, 28, 1], 10), &meta)
}

/// The first `n` embedded digits as raw rows of 64 values (0..16).
pub fn digit_rows(n: usize) -> Vec<Vec<f32>> {
    let d = nn_data::digits::load();
    let x = d.features().to_vec();
    x.chunks(64).take(n).map(|r| r.to_vec()).collect()
}

/// What `nn-cli predict` computes for `rows`: load the folder, apply the saved
/// scalers, run `nn_train::predict` with its default batch size of 1000.
pub fn reference(model_dir: &Path, rows: &[Vec<f32>]) -> (Vec<Vec<f32>>, Vec<usize>) {
    let (model, meta) = nn_train::load_model(model_dir).unwrap();
    let mut shape = vec![rows.len()];
    shape.extend_from_slice(model.input_shape());
    let raw = Tensor::try_from_vec(&shape, rows.concat()).unwrap();
    let p = nn_train::predict(&model, &meta.scale(&raw).unwrap(), 1000).unwrap();
    let k = p.outputs.shape()[1];
    (p.outputs.to_vec().chunks(k).map(|r| r.to_vec()).collect(), p.classes)
}

/// A server running on a tokio task, bound to 127.0.0.1 on a free port.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<nn_serve::ShutdownReport, nn_serve::ServeError>>,
    pub metrics: std::sync::Arc<nn_serve::Metrics>,
}

impl Running {
    /// Triggers the graceful shutdown and waits for `serve` to return.
    pub async fn shutdown(mut self) -> Result<nn_serve::ShutdownReport, nn_serve::ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.task).await.expect("serve returns after shutdown").unwrap()
    }
}

/// Starts a server for the model in `model_dir`.
pub async fn start(model_dir: &Path, config: ServeConfig) -> Running {
    start_service(ModelService::load(model_dir).unwrap(), config).await
}

/// Starts a server for a model built in code.
pub async fn start_service(service: ModelService, config: ServeConfig) -> Running {
    let server = Server::new(service, config).unwrap();
    let metrics = server.metrics();
    let listener = nn_serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    Running { addr, stop: Some(stop), task, metrics }
}

/// An answer: status, content type, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// Sends one request on a new connection.
pub async fn send(addr: SocketAddr, method: &str, path: &str, body: impl Into<Bytes>) -> Answer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    Answer { status, content_type, body }
}

/// `POST /v1/predict` with `{"inputs": rows}`.
pub async fn predict(addr: SocketAddr, rows: &[Vec<f32>]) -> Answer {
    send(addr, "POST", "/v1/predict", serde_json::to_vec(&serde_json::json!({ "inputs": rows })).unwrap()).await
}

/// The `probabilities` of each prediction of a 200 answer, as f32, with its class.
pub fn probabilities(answer: &Answer) -> Vec<(Vec<f32>, usize)> {
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let probs: Vec<f32> =
                p["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let class = p["class"].as_u64().unwrap() as usize;
            // The named probability is the class's entry, the name its name.
            assert_eq!(p["probability"].as_f64().unwrap() as f32, probs[class]);
            assert_eq!(p["name"].as_str().unwrap(), class.to_string());
            (probs, class)
        })
        .collect()
}

/// Asserts two lists of f32 rows are equal bit for bit.
pub fn assert_bits_eq(got: &[Vec<f32>], want: &[Vec<f32>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let gb: Vec<u32> = g.iter().map(|v| v.to_bits()).collect();
        let wb: Vec<u32> = w.iter().map(|v| v.to_bits()).collect();
        assert_eq!(gb, wb, "{what}: row {i} differs: {g:?} vs {w:?}");
    }
}
