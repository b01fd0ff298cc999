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

/// The flags of every headless Chromium run: no sandbox (CI runs as root), no GPU,
/// nothing in the background that could reach the network.
const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
];

/// Runs headless Chromium on `url` with `extra` flags (at most 90 s) and returns its stdout.
fn run_chromium(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args(CHROMIUM_FLAGS)
        .args([
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
/// answer for the same input, keeps a screenshot, and returns the input row sent
/// (an array of numbers, or an object keyed by column name).
async fn check_page(server: &Running, query: &str, shot: &str) -> serde_json::Value {
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
    request["inputs"][0].clone()
}

fn numbers(row: &serde_json::Value) -> Vec<f64> {
    row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

/// A digits MLP trained for a few epochs, so the screenshot shows a real guess.
fn trained_digits_model(dir: &Path) -> PathBuf {
    use nn_data::Scaler;
    use nn_optim::{AdamConfig, OptimizerConfig, ParamRules};
    let scaler = Scaler::constant(1.0 / 16.0, 0.0).unwrap();
    let data = nn_data::digits::load().with_scaler(scaler.clone()).unwrap();
    let mut model = Sequential::<f32>::new(ModelSpec::mlp(&[8, 8, 1], 64, 10, 0.0), 3).unwrap();
    let mut optimizer = OptimizerConfig::Adam(AdamConfig::new(3e-3)).build::<f32>(ParamRules::new()).unwrap();
    let loss = nn_layers::loss::Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 };
    let mut config = nn_train::FitConfig::new(15, 32);
    config.verbosity = nn_train::Verbosity::Silent;
    nn_train::fit(&mut model, optimizer.as_mut(), &loss, &data, None, &config, &mut []).unwrap();
    let meta = ModelMetadata {
        data: "digits".into(),
        target: None,
        class_names: Some((0..10).map(|d| d.to_string()).collect()),
        scalers: vec![scaler],
        seed: 3,
        ..ModelMetadata::default()
    };
    let out = dir.join("digits");
    model.save_with_metadata(&out, &serde_json::to_value(&meta).unwrap()).unwrap();
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
    let row = numbers(&check_page(&server, "?demo=1", "digits-8x8.png").await);
    assert_eq!(row.len(), 64);
    assert!(row.iter().all(|v| v.fract() == 0.0 && (0.0..=16.0).contains(v)), "{row:?}");
    let ((x0, y0, x1, y1), _) = geometry(&row, 8);
    assert_eq!((x1 - x0 + 1).max(y1 - y0 + 1), 8, "{row:?}");
    server.shutdown().await.unwrap();

    // 28×28 MNIST-style (the seed CNN, random weights): bytes 0..255, the digit's
    // longer side scaled to 20 pixels, its centre of mass moved to the centre.
    let server = start(&mnist_cnn_model(dir.path()), ServeConfig::default()).await;
    let row = numbers(&check_page(&server, "?demo=1", "mnist-28x28.png").await);
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
        ..ModelMetadata::default()
    };
    let model = save_model(dir.path(), ModelSpec::mlp(&[4], 8, 3, 0.0), &meta);
    let server = start(&model, ServeConfig::default()).await;
    let row = numbers(&check_page(&server, "?row=5.1,3.5,1.4,0.2", "tabular.png").await);
    assert_eq!(row, vec![5.1, 3.5, 1.4, 0.2]);
    server.shutdown().await.unwrap();

    // A model that knows its columns: the form has a field per column, by name, and
    // sends an object (a category as text, an empty field as null).
    use nn_data::{ColumnKind, FeatureColumn, FeatureSchema, Missing};
    let meta = ModelMetadata {
        features: Some(FeatureSchema {
            columns: vec![
                FeatureColumn { name: "sepal_length".into(), kind: ColumnKind::Numeric },
                FeatureColumn {
                    name: "soil".into(),
                    kind: ColumnKind::Categorical { categories: vec!["clay".into(), "sand".into()] },
                },
                FeatureColumn { name: "petal_width".into(), kind: ColumnKind::Numeric },
            ],
            missing: Missing::Mean,
        }),
        scalers: vec![nn_data::Scaler::Impute { values: vec![5.8, 0.5, 0.5, 1.2] }],
        ..meta
    };
    let dir2 = tempfile::tempdir().unwrap();
    let model = save_model(dir2.path(), ModelSpec::mlp(&[4], 8, 3, 0.0), &meta);
    let server = start(&model, ServeConfig::default()).await;
    let row = check_page(&server, "?row=5.1,sand,", "tabular-columns.png").await;
    assert_eq!(row, serde_json::json!({"sepal_length": 5.1, "soil": "sand", "petal_width": null}));
    server.shutdown().await.unwrap();
}

/// The text content of the element whose opening tag contains `marker`, with the
/// five HTML escapes undone.
fn element_text(html: &str, marker: &str) -> String {
    let at = html.find(marker).unwrap_or_else(|| panic!("`{marker}` not in the page:\n{html}"));
    let start = at + html[at..].find('>').unwrap() + 1;
    let text = &html[start..start + html[start..].find("</").unwrap()];
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: run crates/nn-serve/tests/browser.sh"]
async fn the_page_classifies_and_continues_a_typed_text() {
    use nn_serve::ModelService;
    use nn_text::TextTokenizer;
    // A text classifier (random weights): the text box, sent as a string; the
    // displayed class and bars must be the API's.
    let spec = ModelSpec::transformer_classifier(258, 16, 16, 2, 1, 3, 0.0).unwrap();
    let meta = ModelMetadata {
        data: "csv:verses.csv".into(),
        class_names: Some(vec!["law".into(), "history".into(), "poetry".into()]),
        ..ModelMetadata::default()
    };
    let service = ModelService::new(Sequential::<f32>::new(spec, 5).unwrap(), meta)
        .unwrap()
        .with_text_column(TextTokenizer::bytes(), "verse")
        .unwrap();
    let server = start_service(service, ServeConfig::default()).await;
    let sent = check_page(&server, "?text=And%20God%20said", "text-classifier.png").await;
    assert_eq!(sent, "And God said");
    server.shutdown().await.unwrap();

    // A language model: the prompt and settings go to POST /v1/generate, and the
    // page shows the API's text for that request.
    let spec = ModelSpec::gpt(258, 12, 16, 2, 1, 0.0).unwrap();
    let service = ModelService::new(Sequential::<f32>::new(spec, 7).unwrap(), ModelMetadata::default())
        .unwrap()
        .with_language_model(TextTokenizer::bytes())
        .unwrap();
    let server = start_service(service, ServeConfig::default()).await;
    let url = format!("http://{}/?text=In%20the", server.addr);
    let dom = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run_chromium(&url, &["--dump-dom"])
    })
    .await
    .unwrap();
    let shown = read_page(&dom);
    assert_eq!(shown.state, "done", "the page did not finish:\n{dom}");
    let request: serde_json::Value = serde_json::from_str(&shown.request).unwrap();
    assert_eq!(request, serde_json::json!({"prompt": "In the", "temperature": 1, "seed": 0}));
    let answer = send(server.addr, "POST", "/v1/generate", shown.request.clone()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(element_text(&dom, "id=\"prediction\""), answer.json()["text"].as_str().unwrap());
    tokio::task::spawn_blocking(move || screenshot(&url, "text-generate.png")).await.unwrap();
    server.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------
// Drawing digits with the mouse on a model trained on MNIST.

/// Headless Chromium driven through the DevTools protocol over a pipe
/// (`--remote-debugging-pipe`: commands on the browser's fd 3, answers on fd 4,
/// each a JSON message ended by a NUL byte), attached to one page.
struct Browser {
    child: std::process::Child,
    to: std::process::ChildStdin,
    from: std::sync::mpsc::Receiver<serde_json::Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Opens `url` in a new page of a new headless Chromium, `width`×`height` CSS pixels.
    fn open(url: &str, width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // The shell gives Chromium our pipes as its fds 3 (commands) and 4 (answers).
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg(chromium())
            .args(CHROMIUM_FLAGS)
            .arg("--remote-debugging-pipe")
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let to = child.stdin.take().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, from) = std::sync::mpsc::channel();
        std::thread::spawn(move || loop {
            let mut message = Vec::new();
            match std::io::BufRead::read_until(&mut out, 0, &mut message) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    message.pop();
                    if let Ok(v) = serde_json::from_slice(&message) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut browser = Browser { child, to, from, next_id: 0, session: String::new(), _profile: profile };
        let target = browser.call("Target.createTarget", serde_json::json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached =
            browser.call("Target.attachToTarget", serde_json::json!({ "targetId": target_id, "flatten": true }));
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
        browser.call("Page.navigate", serde_json::json!({ "url": url }));
        browser
    }

    /// Sends one command (to the page once attached) and returns its result.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = serde_json::json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = serde_json::Value::String(self.session.clone());
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        std::io::Write::write_all(&mut self.to, &bytes).unwrap();
        std::io::Write::flush(&mut self.to).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self.from.recv_timeout(left).unwrap_or_else(|_| panic!("no answer to {method} in 60 s"));
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {}", answer["error"]);
                return answer["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    /// Waits (at most 30 s) until `expression` is true in the page; an expression that
    /// throws (the page still loading: no `document.body` yet) counts as not yet true.
    fn wait_for(&mut self, expression: &str) {
        let start = Instant::now();
        while self.eval(&format!("(() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }})()"))
            != serde_json::Value::Bool(true)
        {
            assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {expression}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page rectangle `(left, top, width, height)` of the element `id`.
    fn rect(&mut self, id: &str) -> (f64, f64, f64, f64) {
        let r = self.eval(&format!(
            "(() => {{ const r = document.getElementById({id:?}).getBoundingClientRect(); \
             return [r.left, r.top, r.width, r.height]; }})()"
        ));
        let v: Vec<f64> = r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        (v[0], v[1], v[2], v[3])
    }

    fn mouse(&mut self, kind: &str, x: f64, y: f64, buttons: u32) {
        self.call(
            "Input.dispatchMouseEvent",
            serde_json::json!({
                "type": kind, "x": x, "y": y, "button": "left", "buttons": buttons,
                "clickCount": if kind == "mouseMoved" { 0 } else { 1 }, "pointerType": "mouse"
            }),
        );
    }

    /// Draws one stroke through `points` (fractions of the element `id`'s box) with
    /// the mouse button held, moving in steps of at most 4 CSS pixels.
    fn stroke(&mut self, id: &str, points: &[(f64, f64)]) {
        let (left, top, w, h) = self.rect(id);
        let at = |(x, y): (f64, f64)| (left + x * w, top + y * h);
        let (x0, y0) = at(points[0]);
        self.mouse("mouseMoved", x0, y0, 0);
        self.mouse("mousePressed", x0, y0, 1);
        let (mut px, mut py) = (x0, y0);
        for &p in &points[1..] {
            let (x, y) = at(p);
            let steps = ((x - px).hypot(y - py) / 4.0).ceil().max(1.0) as usize;
            for s in 1..=steps {
                let t = s as f64 / steps as f64;
                self.mouse("mouseMoved", px + (x - px) * t, py + (y - py) * t, 1);
            }
            (px, py) = (x, y);
        }
        self.mouse("mouseReleased", px, py, 0);
    }

    /// Clicks the centre of the element `id`.
    fn click(&mut self, id: &str) {
        let (left, top, w, h) = self.rect(id);
        let (x, y) = (left + w / 2.0, top + h / 2.0);
        self.mouse("mouseMoved", x, y, 0);
        self.mouse("mousePressed", x, y, 1);
        self.mouse("mouseReleased", x, y, 0);
    }

    /// A PNG of the page as shown.
    fn screenshot(&mut self) -> Vec<u8> {
        let r = self.call("Page.captureScreenshot", serde_json::json!({ "format": "png" }));
        base64_decode(r["data"].as_str().unwrap())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= (value(c) as u32) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// The release `nn-cli` to train with: `$NN_CLI`, else `target/release/nn-cli` when
/// it is newer than every source file of the workspace's crates (browser.sh builds
/// it), else none.
fn release_cli() -> Option<PathBuf> {
    if let Some(cli) = std::env::var_os("NN_CLI").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(cli));
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent()?;
    let cli = target.join("release").join("nn-cli");
    let built = std::fs::metadata(&cli).and_then(|m| m.modified()).ok()?;
    fn newest(dir: &Path) -> std::time::SystemTime {
        let mut t = std::time::SystemTime::UNIX_EPOCH;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let m =
                if path.is_dir() { newest(&path) } else { entry.metadata().and_then(|m| m.modified()).unwrap_or(t) };
            t = t.max(m);
        }
        t
    }
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let sources = std::fs::read_dir(crates).ok()?.flatten().map(|c| newest(&c.path().join("src"))).max()?;
    if built >= sources {
        Some(cli)
    } else {
        println!("{} is older than the sources: training with the library instead", cli.display());
        None
    }
}

/// The seed CNN trained for one epoch on MNIST, saved with its metadata in `out`,
/// checked to reach 90 % on the first 1,000 test images. With a release `nn-cli`
/// ([`release_cli`]): `nn-cli fit --data mnist:DIR --model cnn --epochs 1` on all
/// 60,000 training images (a few seconds). Without: `nn_train::fit` on the first
/// 20,000 images (pixels scaled by 1/255, as `nn-cli` does), which takes a minute or
/// two in a debug build.
fn trained_mnist_model(mnist_dir: &Path, out: &Path) -> PathBuf {
    use nn_data::Scaler;
    use nn_optim::{AdamConfig, OptimizerConfig, ParamRules};
    let start = Instant::now();
    let dir = out.join("mnist-cnn");
    let how = if let Some(cli) = release_cli() {
        let output = Command::new(&cli)
            .args(["--threads", "2", "fit", "--model", "cnn", "--epochs", "1", "--batch-size", "64", "--seed", "7"])
            .args(["--validation-split", "0", "--no-test", "--verbose", "0"])
            .arg("--data")
            .arg(format!("mnist:{}", mnist_dir.display()))
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{} fit failed:\n{}{}",
            cli.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        format!("{} fit, 60,000 images", cli.display())
    } else {
        let mnist = nn_data::mnist::load_mnist(mnist_dir).unwrap();
        let scaler = Scaler::constant(1.0 / 255.0, 0.0).unwrap();
        let train = mnist.train.subset(&(0..20_000).collect::<Vec<_>>()).unwrap().with_scaler(scaler.clone()).unwrap();
        let mut model = Sequential::<f32>::new(ModelSpec::seed_cnn(&[28, 28, 1], 10), 7).unwrap();
        let mut optimizer = OptimizerConfig::Adam(AdamConfig::new(1e-3)).build::<f32>(ParamRules::new()).unwrap();
        let loss = nn_layers::loss::Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 };
        let mut config = nn_train::FitConfig::new(1, 64);
        config.seed = 7;
        config.verbosity = nn_train::Verbosity::Silent;
        nn_train::fit(&mut model, optimizer.as_mut(), &loss, &train, None, &config, &mut []).unwrap();
        let meta = ModelMetadata {
            data: format!("mnist:{}", mnist_dir.display()),
            class_names: Some((0..10).map(|d| d.to_string()).collect()),
            scalers: vec![scaler],
            seed: 7,
            ..ModelMetadata::default()
        };
        model.save_with_metadata(&dir, &serde_json::to_value(&meta).unwrap()).unwrap();
        "nn_train::fit, 20,000 images".to_string()
    };
    // The saved model as the server loads it, on test images it never saw.
    let (model, meta) = nn_train::load_model(&dir).unwrap();
    let test = nn_data::mnist::load_mnist(mnist_dir).unwrap().test;
    let test = test.subset(&(0..1000).collect::<Vec<_>>()).unwrap();
    let x = meta.scale(&test.features()).unwrap();
    let p = nn_train::predict(&model, &x, 500).unwrap();
    let labels = test.targets().labels().unwrap();
    let right = p.classes.iter().zip(labels).filter(|(a, b)| a == b).count();
    let accuracy = right as f64 / labels.len() as f64;
    println!(
        "seed CNN, 1 epoch ({how}): accuracy {accuracy:.3} on 1,000 test images ({:.1} s)",
        start.elapsed().as_secs_f64()
    );
    assert!(accuracy > 0.9, "the model did not learn: test accuracy {accuracy}");
    dir
}

/// Strokes of digits as a person draws them, in fractions of the canvas.
fn digit_strokes(digit: u8) -> Vec<Vec<(f64, f64)>> {
    match digit {
        // A bar, then down to the left.
        7 => vec![vec![(0.27, 0.22), (0.72, 0.2), (0.66, 0.34), (0.56, 0.55), (0.47, 0.82)]],
        // One line, slightly slanted.
        1 => vec![vec![(0.53, 0.16), (0.51, 0.5), (0.48, 0.84)]],
        // An oval, started at the top, drawn anticlockwise and closed.
        0 => vec![(0..=40)
            .map(|i| {
                let a = std::f64::consts::TAU * i as f64 / 40.0;
                (0.5 - 0.21 * a.sin(), 0.5 - 0.32 * a.cos())
            })
            .collect()],
        _ => unreachable!(),
    }
}

fn mnist_dir() -> Option<PathBuf> {
    let root = PathBuf::from(std::env::var_os("NN_DATA_DIR").filter(|v| !v.is_empty())?);
    // CI's NN_DATA_DIR=../shared/data is relative to the workspace root.
    let root = if root.is_relative() { Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(root) } else { root };
    Some(root.join("mnist"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and MNIST: run crates/nn-serve/tests/browser.sh with NN_DATA_DIR set"]
async fn digits_drawn_with_the_mouse_are_read_by_a_model_trained_on_mnist() {
    let Some(mnist) = mnist_dir() else {
        println!("skipped: set NN_DATA_DIR to the folder holding mnist/ to draw digits for a trained model");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = tokio::task::spawn_blocking({
        let out = dir.path().to_path_buf();
        move || trained_mnist_model(&mnist, &out)
    })
    .await
    .unwrap();
    let server = start(&model, ServeConfig::default()).await;
    let url = format!("http://{}/", server.addr);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nn-serve-browser");
    std::fs::create_dir_all(&shots).unwrap();

    let drawn = tokio::task::spawn_blocking(move || {
        let mut browser = Browser::open(&url, 1100, 760);
        browser.wait_for("document.body.dataset.state === 'ready'");
        let mut drawn = Vec::new();
        for digit in [7u8, 1, 0] {
            browser.click("clear");
            browser.wait_for(
                "document.body.dataset.state === 'ready' && document.getElementById('prediction').dataset.class === ''",
            );
            for stroke in digit_strokes(digit) {
                browser.stroke("board", &stroke);
            }
            browser.wait_for("document.body.dataset.state === 'done' || document.body.dataset.state === 'error'");
            let shown = browser.eval("document.getElementById('prediction').dataset.class");
            let request = browser.eval("document.getElementById('last-request').textContent");
            let text = browser.eval("document.getElementById('prediction').textContent");
            let png = browser.screenshot();
            let path = shots.join(format!("mnist-drawn-{digit}.png"));
            std::fs::write(&path, &png).unwrap();
            println!("drew {digit}: the page shows {text}; screenshot: {}", path.display());
            drawn.push((
                digit,
                shown.as_str().unwrap_or_default().to_string(),
                request.as_str().unwrap().to_string(),
                png,
            ));
        }
        drawn
    })
    .await
    .unwrap();

    for (digit, shown, request, png) in &drawn {
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "digit {digit}: not a real screenshot");
        // The page's input is MNIST-like: bytes, the digit's longer side 20 pixels,
        // its centre of mass at the centre.
        let body: serde_json::Value = serde_json::from_str(request).unwrap();
        let row: Vec<f64> = body["inputs"][0].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(row.len(), 784);
        assert!(row.iter().all(|v| v.fract() == 0.0 && (0.0..=255.0).contains(v)));
        let ((x0, y0, x1, y1), (cx, cy)) = geometry(&row, 28);
        let ink: f64 = row.iter().sum::<f64>() / 255.0;
        println!("digit {digit}: box {x0},{y0}..{x1},{y1}, ink {ink:.1} full pixels");
        assert!((19..=21).contains(&(x1 - x0 + 1).max(y1 - y0 + 1)), "digit {digit}: box {x0},{y0}..{x1},{y1}");
        assert!((cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5, "digit {digit}: centre of mass ({cx}, {cy})");
        // The page shows the API's answer for what it sent, and that is the digit drawn.
        let answer = send(server.addr, "POST", "/v1/predict", request.clone()).await;
        let p = &answer.json()["predictions"][0];
        assert_eq!(*shown, p["class"].to_string(), "digit {digit}: the page and the API differ");
        assert_eq!(*shown, digit.to_string(), "drew {digit}, the model read {shown}: {p}");
    }
    server.shutdown().await.unwrap();
}
