//! Browser test of the page at `GET /`: headless Chromium (Debian's `chromium`)
//! opens it, draws a stroke through real pointer events (`?demo=1`) or fills the
//! form (`?row=...`), and the prediction it displays must equal the API's answer
//! for the input it sent. Screenshots are kept in `target/tmp/nn-serve-browser/`.
//!
//! Ignored by default because it needs Chromium; `crates/nn-serve/tests/browser.sh`
//! installs it when missing and runs this test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nn_layers::{ModelSpec, Sequential};
use nn_serve::ServeConfig;
use nn_train::ModelMetadata;

fn chromium() -> PathBuf {
    let from_env = std::env::var_os("NN_CHROMIUM").map(PathBuf::from);
    let found = from_env.or_else(|| {
        ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
            let out = Command::new("which").arg(name).output().ok()?;
            out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
    });
    found.expect(
        "Chromium not found: run crates/nn-serve/tests/browser.sh (it installs Debian's chromium) or set NN_CHROMIUM",
    )
}

/// Runs headless Chromium on `url` with `extra` flags (at most 90 s) and returns its stdout.
fn run_chromium(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            // Virtual time runs until the page is idle (the fetches answered) or 10 s.
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed: {status:?}");
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The attribute `name` of the first tag that contains `marker` in `html`.
fn attribute(html: &str, marker: &str, name: &str) -> String {
    let at = html.find(marker).unwrap_or_else(|| panic!("`{marker}` not in the page:\n{html}"));
    let tag_start = html[..=at].rfind('<').unwrap();
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
    let key = format!(" {name}=\"");
    let v = &tag[tag.find(&key).unwrap_or_else(|| panic!("no {name} in {tag}")) + key.len()..];
    v[..v.find('"').unwrap()].to_string()
}

/// What the page showed after its request: the state, the request body it sent, the
/// displayed class, and each bar's value.
struct Shown {
    state: String,
    request: String,
    class: String,
    bars: Vec<(usize, String)>,
}

fn read_page(dom: &str) -> Shown {
    let state = attribute(dom, "<body", "data-state");
    let start = dom.find("id=\"last-request\">").expect("the request element") + "id=\"last-request\">".len();
    let request = dom[start..start + dom[start..].find("</pre>").unwrap()].to_string();
    let class = attribute(dom, "id=\"prediction\"", "data-class");
    let mut bars = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find("<li data-class=\"") {
        rest = &rest[i..];
        let c: usize = attribute(rest, "<li data-class", "data-class").parse().unwrap();
        bars.push((c, attribute(rest, "<li data-class", "data-value")));
        rest = &rest[1..];
    }
    Shown { state, request, class, bars }
}

fn screenshot(url: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nn-serve-browser");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    run_chromium(url, &["--window-size=1100,760", &format!("--screenshot={}", path.display())]);
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{}: not a real screenshot", path.display());
    println!("screenshot: {}", path.display());
    path
}

/// Opens `query` on the server, checks the displayed prediction against the API's
/// answer for the same input, keeps a screenshot, and returns the input row sent.
async fn check_page(server: &Running, query: &str, shot: &str) -> Vec<f64> {
    let url = format!("http://{}/{query}", server.addr);
    let dom = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run_chromium(&url, &["--dump-dom"])
    })
    .await
    .unwrap();
    let shown = read_page(&dom);
    assert_eq!(shown.state, "done", "the page did not finish:\n{dom}");
    let request: serde_json::Value = serde_json::from_str(&shown.request).unwrap();
    let answer = send(server.addr, "POST", "/v1/predict", shown.request.clone()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let p = &answer.json()["predictions"][0];
    assert_eq!(shown.class, p["class"].to_string(), "displayed class differs from the API's");
    let values = p["probabilities"].as_array().unwrap();
    assert_eq!(shown.bars.len(), values.len());
    for (c, shown_value) in &shown.bars {
        // The page prints the number it received; both must be the same f32.
        let api = values[*c].as_f64().unwrap() as f32;
        let page: f32 = shown_value.parse().unwrap();
        assert_eq!(page.to_bits(), api.to_bits(), "class {c}: page shows {shown_value}, API says {api}");
    }
    tokio::task::spawn_blocking({
        let shot = shot.to_string();
        move || screenshot(&url, &shot)
    })
    .await
    .unwrap();
    request["inputs"][0].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

/// A digits MLP trained for a few epochs, so the screenshot shows a real guess.
fn trained_digits_model(dir: &Path) -> PathBuf {
    use nn_data::Scaler;
    use nn_optim::{AdamConfig, OptimizerConfig, ParamRules};
    let scaler = Scaler::constant(1.0 / 16.0, 0.0).unwrap();
    let data = nn_data::digits::load().with_scaler(scaler.clone()).unwrap();
    let mut model = Sequential::<f32>::new(ModelSpec::mlp(&[8, 8, 1], 64, 10, 0.0), 3).unwrap();
    let mut optimizer = OptimizerConfig::Adam(AdamConfig::new(3e-3)).build::<f32>(ParamRules::new()).unwrap();
    let loss = nn_layers::loss::Loss::SparseCategoricalCrossentropy { from_logits: false };
    let mut config = nn_train::FitConfig::new(15, 32);
    config.verbosity = nn_train::Verbosity::Silent;
    nn_train::fit(&mut model, optimizer.as_mut(), &loss, &data, None, &config, &mut []).unwrap();
    let meta = ModelMetadata {
        data: "digits".into(),
        target: None,
        class_names: Some((0..10).map(|d| d.to_string()).collect()),
        scalers: vec![scaler],
        seed: 3,
    };
    let out = dir.join("digits");
    model.save(&out, &serde_json::to_value(&meta).unwrap()).unwrap();
    out
}

/// Bounding box `(x0, y0, x1, y1)` (inclusive) and centre of mass (pixel centres
/// at `i + 0.5`) of a `size`×`size` image.
fn geometry(img: &[f64], size: usize) -> ((usize, usize, usize, usize), (f64, f64)) {
    let (mut x0, mut y0, mut x1, mut y1) = (size, size, 0, 0);
    let (mut m, mut mx, mut my) = (0.0, 0.0, 0.0);
    for y in 0..size {
        for x in 0..size {
            let v = img[y * size + x];
            if v > 0.0 {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                m += v;
                mx += v * (x as f64 + 0.5);
                my += v * (y as f64 + 0.5);
            }
        }
    }
    ((x0, y0, x1, y1), (mx / m, my / m))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: run crates/nn-serve/tests/browser.sh"]
async fn the_page_shows_the_apis_prediction_for_a_drawn_stroke() {
    let dir = tempfile::tempdir().unwrap();

    // 8×8 digits: the stroke becomes UCI-style block counts, integers 0..16, the
    // digit's longer side spanning the 8 pixels.
    let server = start(&trained_digits_model(dir.path()), ServeConfig::default()).await;
    let row = check_page(&server, "?demo=1", "digits-8x8.png").await;
    assert_eq!(row.len(), 64);
    assert!(row.iter().all(|v| v.fract() == 0.0 && (0.0..=16.0).contains(v)), "{row:?}");
    let ((x0, y0, x1, y1), _) = geometry(&row, 8);
    assert_eq!((x1 - x0 + 1).max(y1 - y0 + 1), 8, "{row:?}");
    server.shutdown().await.unwrap();

    // 28×28 MNIST-style (the seed CNN, random weights): bytes 0..255, the digit's
    // longer side scaled to 20 pixels, its centre of mass moved to the centre.
    let server = start(&mnist_cnn_model(dir.path()), ServeConfig::default()).await;
    let row = check_page(&server, "?demo=1", "mnist-28x28.png").await;
    assert_eq!(row.len(), 784);
    assert!(row.iter().all(|v| v.fract() == 0.0 && (0.0..=255.0).contains(v)));
    let ((x0, y0, x1, y1), (cx, cy)) = geometry(&row, 28);
    let side = (x1 - x0 + 1).max(y1 - y0 + 1);
    assert!((19..=21).contains(&side), "box {x0},{y0}..{x1},{y1}");
    assert!((cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5, "centre of mass ({cx}, {cy})");
    server.shutdown().await.unwrap();

    // A tabular model: the form, filled from `?row=`.
    let meta = ModelMetadata {
        data: "csv:iris.csv".into(),
        target: Some("species".into()),
        class_names: Some(vec!["setosa".into(), "versicolor".into(), "virginica".into()]),
        scalers: vec![],
        seed: 1,
    };
    let model = save_model(dir.path(), ModelSpec::mlp(&[4], 8, 3, 0.0), &meta);
    let server = start(&model, ServeConfig::default()).await;
    let row = check_page(&server, "?row=5.1,3.5,1.4,0.2", "tabular.png").await;
    assert_eq!(row, vec![5.1, 3.5, 1.4, 0.2]);
    server.shutdown().await.unwrap();
}
