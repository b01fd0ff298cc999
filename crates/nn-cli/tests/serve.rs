//! `nn-cli serve` end to end: a model trained by `nn-cli fit`, served on a loopback
//! port by the binary, answers like `nn-cli predict` bit for bit, refuses bad
//! requests with JSON errors, and stops cleanly on SIGTERM; it always shuts down
//! (issue #22): after SIGTERM, a client that sent half a request and never finishes
//! is closed at the `--shutdown-timeout` deadline and the process exits (status 0,
//! saying a connection was closed unfinished); `--max-connections` holds further
//! connections back until one closes; the limit flags are validated with one clear
//! error. The timing assertions are deadlines with wide margins, not performance checks.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use nn_layers::{ModelSpec, Sequential};
use nn_train::ModelMetadata;

const BIN: &str = env!("CARGO_BIN_EXE_nn-cli");

/// How long a test waits for something that must happen, far beyond the deadlines.
const PATIENCE: Duration = Duration::from_secs(20);

fn nn() -> Command {
    let mut c = Command::new(BIN);
    c.arg("--threads").arg("1");
    c
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`): status and body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {raw:?}"));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// A running `nn-cli serve`, killed on drop if the test failed before stopping it.
struct Served {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<std::process::ChildStdout>,
    banner: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(model: &Path, extra: &[&str]) -> Served {
    let mut child = StdCommand::new(BIN)
        .args(["--threads", "1", "serve", "--model"])
        .arg(model)
        .args(["--addr", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // From here on the guard kills the process if the test fails.
    let mut served = Served { child, addr: SocketAddr::from(([0, 0, 0, 0], 0)), stdout, banner: String::new() };
    loop {
        let mut line = String::new();
        assert!(served.stdout.read_line(&mut line).unwrap() > 0, "serve exited before listening:\n{}", served.banner);
        served.banner.push_str(&line);
        if let Some(rest) = line.strip_prefix("listening on http://") {
            served.addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return served;
        }
    }
}

fn rows_json(rows: &[Vec<f32>]) -> String {
    serde_json::json!({ "inputs": rows }).to_string()
}

/// Row `i` of a `/v1/predict` answer against `nn-cli predict`'s printed line
/// `row,class,name,probability` and the model's probabilities as f32 bits.
fn same_as_predict(answer: &serde_json::Value, i: usize, printed: &str, bits: &[u32]) {
    let class = answer["class"].as_u64().unwrap();
    let name = answer["name"].as_str().unwrap();
    let p = answer["probability"].as_f64().unwrap() as f32;
    assert_eq!(format!("{i},{class},{name},{p:.6}"), printed, "row {i}: {answer}");
    let got: Vec<u32> =
        answer["probabilities"].as_array().unwrap().iter().map(|v| (v.as_f64().unwrap() as f32).to_bits()).collect();
    assert_eq!(got, bits, "row {i}: probabilities differ from nn-cli predict's");
}

#[test]
fn serve_answers_like_predict_bit_for_bit_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    nn().args(["fit", "--epochs", "1", "--no-test", "--out"]).arg(&out).assert().success();

    // 30 raw digit rows (0..16) as CSV for `nn-cli predict`.
    let digits = nn_data::digits::load().features().to_vec();
    let rows: Vec<Vec<f32>> = digits.chunks(64).step_by(50).take(30).map(|r| r.to_vec()).collect();
    let csv = dir.path().join("rows.csv");
    let header: Vec<String> = (0..64).map(|i| format!("p{i}")).collect();
    let lines: Vec<String> =
        rows.iter().map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")).collect();
    std::fs::write(&csv, format!("{}\n{}\n", header.join(","), lines.join("\n"))).unwrap();
    let printed = nn().args(["predict", "--model"]).arg(&out).arg("--input").arg(&csv).assert().success();
    let printed = String::from_utf8(printed.get_output().stdout.clone()).unwrap();
    let expected: Vec<String> = printed.lines().skip(1).map(str::to_string).collect();
    assert_eq!(expected.len(), 30, "{printed}");

    // The same computation as `nn-cli predict`, kept as f32 bits.
    let (model, meta) = nn_train::load_model(&out).unwrap();
    let raw = nn_tensor::Tensor::try_from_vec(&[30, 8, 8, 1], rows.concat()).unwrap();
    let reference = nn_train::predict(&model, &meta.scale(&raw).unwrap(), 1000).unwrap();
    let reference: Vec<Vec<u32>> =
        reference.outputs.to_vec().chunks(10).map(|r| r.iter().map(|v| v.to_bits()).collect()).collect();

    let served = serve(&out, &["--max-batch", "8", "--batch-wait-ms", "5"]);
    assert!(served.banner.contains("batches of up to 8 rows, waiting up to 5 ms"), "{}", served.banner);
    let addr = served.addr;
    let check = |answer: &serde_json::Value, i: usize| same_as_predict(answer, i, &expected[i], &reference[i]);
    // All rows in one request.
    let (status, body) = http(addr, "POST", "/v1/predict", &rows_json(&rows));
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    for i in 0..30 {
        check(&answer["predictions"][i], i);
    }
    // One request per row, all at once, so that they are batched together.
    let threads: Vec<_> = rows
        .iter()
        .map(|r| {
            let body = rows_json(std::slice::from_ref(r));
            std::thread::spawn(move || http(addr, "POST", "/v1/predict", &body))
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let (status, body) = t.join().unwrap();
        assert_eq!(status, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        check(&answer["predictions"][0], i);
    }
    // A bad request gets a JSON 4xx; the server goes on.
    let (status, body) = http(addr, "POST", "/v1/predict", "{\"inputs\": [[1, 2, 3]]}");
    assert_eq!(status, 422, "{body}");
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["kind"], "bad_shape");
    assert!(err["error"].as_str().unwrap().contains("row 0 has 3 values, the model expects 64"), "{err}");
    let (status, body) = http(addr, "GET", "/healthz", "");
    assert_eq!((status, body.contains("\"ok\"")), (200, true), "{body}");
    let (_, metrics) = http(addr, "GET", "/metrics", "");
    assert!(metrics.contains("nn_serve_requests_total{route=\"/v1/predict\",code=\"200\"} 31"), "{metrics}");
    assert!(metrics.contains("nn_serve_rows_predicted_total 60"), "{metrics}");

    let (exit, _, rest) = terminate(served);
    assert!(exit.success(), "{exit:?}");
    assert!(rest.contains("stopped: every request received was answered"), "{rest}");
    assert!(TcpStream::connect(addr).is_err(), "the port is closed after shutdown");
}

/// A failing command prints exactly one line, `error: ...`, containing `needle`.
fn fails_with(cmd: &mut Command, needle: &str) {
    let out = cmd.assert().failure().get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    assert!(lines[0].starts_with("error: ") && err.contains(needle), "`{needle}` not in: {err}");
}

#[test]
fn serve_refuses_bad_settings_and_missing_models() {
    let dir = tempfile::tempdir().unwrap();
    fails_with(nn().args(["serve", "--addr", "127.0.0.1:0", "--model"]).arg(dir.path().join("none")), "no such folder");
    let out = dir.path().join("run");
    nn().args(["fit", "--epochs", "1", "--no-test", "--out"]).arg(&out).assert().success();
    let serve = |extra: &[&str]| {
        let mut c = nn();
        c.args(["serve", "--addr", "127.0.0.1:0", "--model"]).arg(&out).args(extra);
        c
    };
    fails_with(&mut serve(&["--max-batch", "0"]), "max batch must be at least 1");
    fails_with(&mut serve(&["--batch-wait-ms=-1"]), "--batch-wait-ms must be in [0, 10000]");
    fails_with(&mut serve(&["--max-body-bytes", "0"]), "max body size");
    // The address is taken: the error names it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut c = nn();
    c.args(["serve", "--addr", &addr, "--model"]).arg(&out);
    fails_with(&mut c, &format!("binding {addr}"));
}

/// A digits-style model folder as `nn-cli fit --out` writes it (random weights,
/// seeded): `[8, 8, 1]` pixels 0..16 scaled by 1/16, an MLP, classes "0".."9". The
/// same helper as nn-serve's tests (`digits_model`), without a training run.
fn saved_model(dir: &Path) -> PathBuf {
    let meta = ModelMetadata {
        data: "digits".into(),
        target: None,
        class_names: Some((0..10).map(|d| d.to_string()).collect()),
        scalers: vec![nn_data::Scaler::constant(1.0 / 16.0, 0.0).unwrap()],
        seed: 11,
        ..ModelMetadata::default()
    };
    let model = Sequential::<f32>::new(ModelSpec::mlp(&[8, 8, 1], 32, 10, 0.0), 11).unwrap();
    let out = dir.join("model");
    model.save_with_metadata(&out, &serde_json::to_value(meta).unwrap()).unwrap();
    out
}

/// Sends SIGTERM; waits (at most `PATIENCE`) for the exit. Returns the exit status,
/// the time from the signal to the exit, and the rest of stdout.
fn terminate(mut s: Served) -> (std::process::ExitStatus, Duration, String) {
    let pid = libc::pid_t::try_from(s.child.id()).unwrap();
    let start = Instant::now();
    // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let exit = loop {
        if let Some(exit) = s.child.try_wait().unwrap() {
            break exit;
        }
        assert!(start.elapsed() < PATIENCE, "serve still running {PATIENCE:?} after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    let mut rest = String::new();
    s.stdout.read_to_string(&mut rest).unwrap();
    (exit, took, rest)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Reads until the peer closes (EOF or reset); fails if still open after the read timeout.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the connection is still open ({e}); received {:?}", String::from_utf8_lossy(&got)),
        }
    }
}

/// The status of a `Connection: close` answer read to its end.
fn status_of(answer: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(answer);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {text:?}"))
}

const HEALTHZ_CLOSE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

#[test]
fn sigterm_with_a_half_sent_request_exits_at_the_shutdown_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let model = saved_model(dir.path());
    // The header timeout (60 s) is far beyond the deadline (2 s): only the deadline
    // can end the half-sent request.
    let served = serve(&model, &["--shutdown-timeout", "2", "--header-timeout", "60"]);
    assert!(
        served
            .banner
            .contains("at most 1024 connections; headers within 60 s, bodies within 30 s; a shutdown waits up to 2 s"),
        "{}",
        served.banner
    );
    let mut half = connect(served.addr);
    half.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: appl").unwrap();
    // Let the server read the half request before the signal.
    std::thread::sleep(Duration::from_millis(500));
    let (exit, took, rest) = terminate(served);
    assert!(exit.success(), "a stop at the deadline exits with status 0: {exit:?}\n{rest}");
    assert!(took >= Duration::from_millis(1900), "exited {took:?} after SIGTERM, before the 2 s deadline");
    assert!(took < Duration::from_secs(2) + Duration::from_secs(15), "{took:?}");
    assert!(rest.contains("stopping: no new connections; finishing the requests in progress (up to 2 s)"), "{rest}");
    assert!(rest.contains("stopped: the shutdown deadline (2 s) passed; 1 connection was closed unfinished"), "{rest}");
    assert!(read_until_closed(&mut half).is_empty(), "no answer to the half request");
}

#[test]
fn max_connections_holds_a_third_connection_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let model = saved_model(dir.path());
    let served = serve(&model, &["--max-connections", "2", "--header-timeout", "60"]);
    assert!(served.banner.contains("at most 2 connections"), "{}", served.banner);
    let addr = served.addr;
    // Two idle connections, accepted in order before the third (the listen backlog
    // is first in, first out), hold both slots.
    let first = connect(addr);
    let second = connect(addr);
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect(addr);
    third.write_all(HEALTHZ_CLOSE).unwrap();
    third.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut byte = [0u8; 1];
    match third.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a third connection was served while two were open: {other:?}"),
    }
    // One idle connection leaves: the third is answered.
    drop(first);
    third.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(status_of(&read_until_closed(&mut third)), 200);
    // Once the other leaves too, a good request is served, and every request
    // received was answered.
    drop(second);
    let mut good = connect(addr);
    let body = r#"{"inputs": [[0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0]]}"#;
    write!(
        good,
        "POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let answer = read_until_closed(&mut good);
    assert_eq!(status_of(&answer), 200, "{}", String::from_utf8_lossy(&answer));
    let (exit, _, rest) = terminate(served);
    assert!(exit.success(), "{exit:?}");
    assert!(rest.contains("stopped: every request received was answered"), "{rest}");
}

#[test]
fn serve_refuses_timeouts_and_limits_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let model = saved_model(dir.path());
    let serve = |extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(["--threads", "1", "serve", "--addr", "127.0.0.1:0", "--model"]).arg(&model).args(extra);
        c
    };
    for flag in ["--header-timeout", "--body-timeout", "--shutdown-timeout"] {
        for bad in ["0", "-1", "NaN", "inf", "3601"] {
            fails_with(
                &mut serve(&[&format!("{flag}={bad}")]),
                &format!("{flag} must be a number of seconds in (0, 3600], got"),
            );
        }
    }
    fails_with(&mut serve(&["--max-connections", "0"]), "max connections must be in [1, 100000], got 0");
    fails_with(&mut serve(&["--max-connections", "100001"]), "max connections must be in [1, 100000]");
}

// ------------------------------------------------------------------ text models

/// The flags of a tiny byte-level text Transformer of context 16.
const TINY_TEXT: [&str; 10] =
    ["--tokenizer", "bytes", "--context", "16", "--layers", "1", "--heads", "2", "--d-model", "32"];

/// `nn-cli fit` with `args`, into `out`.
fn fit_text(out: &Path, args: &[&str]) {
    nn().arg("fit")
        .args(args)
        .args(TINY_TEXT)
        .args(["--batch-size", "16", "--lr", "3e-3", "--out"])
        .arg(out)
        .assert()
        .success();
}

/// The body of a JSON answer.
fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Asserts a JSON error answer: status, `kind`, `column` (when given) and a part of
/// the message.
fn assert_error(answer: (u16, String), status: u16, kind: &str, column: Option<&str>, needle: &str) {
    let (got, body) = answer;
    let err = json(&body);
    assert_eq!((got, err["kind"].as_str()), (status, Some(kind)), "{body}");
    assert_eq!(err["column"].as_str(), column, "{body}");
    assert!(err["error"].as_str().unwrap().contains(needle), "`{needle}` not in {body}");
}

#[test]
fn serve_text_classifier_answers_texts_like_predict() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("cls.csv");
    let mut rows = String::from("text,label\n");
    for i in 0..80 {
        rows +=
            &if i % 2 == 0 { format!("a cat on a mat {i},cats\n") } else { format!("the dog by the log {i},dogs\n") };
    }
    std::fs::write(&csv, rows).unwrap();
    let out = dir.path().join("cls");
    fit_text(
        &out,
        &[
            "--data",
            &format!("csv:{}", csv.display()),
            "--text-column",
            "text",
            "--target",
            "label",
            "--model",
            "transformer-classifier",
            "--epochs",
            "2",
        ],
    );

    // Texts shorter than the context (padded), longer (cut: 16 of 41 bytes kept) and
    // of one byte, in a file for `nn-cli predict`.
    let texts = ["And God said", "a cat on a mat 7", "the dog by the log and the cat on the mat", "x", "dog"];
    let input = dir.path().join("texts.csv");
    std::fs::write(&input, format!("text\n{}\n", texts.join("\n"))).unwrap();
    let printed = nn().args(["predict", "--model"]).arg(&out).arg("--input").arg(&input).assert().success();
    let printed = String::from_utf8(printed.get_output().stdout.clone()).unwrap();
    let expected: Vec<&str> = printed.lines().skip(1).collect();
    assert_eq!(expected.len(), texts.len(), "{printed}");

    // `nn-cli predict`'s computation as f32 bits: the texts padded by nn-text, the model.
    let (model, _) = nn_train::load_model(&out).unwrap();
    let tokenizer = nn_text::TextTokenizer::load(out.join("tokenizer.json")).unwrap();
    let ids = nn_text::encode_padded(texts, &tokenizer, 16).unwrap();
    assert_eq!(ids.lengths, [12, 16, 16, 1, 3]);
    let x = nn_tensor::Tensor::try_from_vec(&[texts.len(), 16], ids.features).unwrap();
    let reference = nn_train::predict(&model, &x, 1000).unwrap().outputs.to_vec();
    let reference: Vec<Vec<u32>> = reference.chunks(2).map(|r| r.iter().map(|v| v.to_bits()).collect()).collect();

    let served = serve(&out, &["--max-batch", "4", "--batch-wait-ms", "5"]);
    assert!(
        served
            .banner
            .contains("texts (column \"text\", padded or cut to 16 tokens; bytes tokenizer, 258 tokens), 2 classes"),
        "{}",
        served.banner
    );
    let addr = served.addr;
    let check = |answer: &serde_json::Value, i: usize| same_as_predict(answer, i, expected[i], &reference[i]);
    // Plain strings, and objects keyed by the text column (other keys ignored).
    let strings = serde_json::json!({ "inputs": texts }).to_string();
    let objects: Vec<serde_json::Value> =
        texts.iter().enumerate().map(|(i, t)| serde_json::json!({ "text": t, "id": i })).collect();
    let objects = serde_json::json!({ "instances": objects }).to_string();
    for body in [&strings, &objects] {
        let (status, answer) = http(addr, "POST", "/v1/predict", body);
        assert_eq!(status, 200, "{answer}");
        let answer = json(&answer);
        for i in 0..texts.len() {
            check(&answer["predictions"][i], i);
        }
    }
    assert_eq!(json(&http(addr, "POST", "/v1/predict", &objects).1)["ignored"], serde_json::json!(["id"]));
    // One request per text, all at once, batched together.
    let threads: Vec<_> = texts
        .iter()
        .map(|t| {
            let body = serde_json::json!({ "inputs": [t] }).to_string();
            std::thread::spawn(move || http(addr, "POST", "/v1/predict", &body))
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let (status, answer) = t.join().unwrap();
        assert_eq!(status, 200, "{answer}");
        check(&json(&answer)["predictions"][0], i);
    }

    // GET /v1/model says the input is text.
    let (status, info) = http(addr, "GET", "/v1/model", "");
    assert_eq!(status, 200, "{info}");
    let info = json(&info);
    assert_eq!(info["input_kind"], "text");
    assert_eq!(
        info["text"],
        serde_json::json!({ "column": "text", "context": 16, "vocab_size": 258, "tokenizer": "bytes", "language_model": false })
    );

    // Errors: 422 naming the column, 400 for the wrong route; the server goes on.
    let predict = |body: &str| http(addr, "POST", "/v1/predict", body);
    assert_error(
        predict(r#"{"inputs": ["ok", ""]}"#),
        422,
        "bad_value",
        Some("text"),
        "row 1, column \"text\": the text is empty",
    );
    assert_error(
        predict(r#"{"inputs": [{"body": "x"}]}"#),
        422,
        "bad_value",
        Some("text"),
        "row 0 has no key \"text\"",
    );
    assert_error(
        predict(r#"{"inputs": [{"text": 5}]}"#),
        422,
        "bad_value",
        Some("text"),
        "expected a text (a JSON string), got 5",
    );
    assert_error(predict(r#"{"inputs": [[1, 2]]}"#), 422, "bad_value", Some("text"), "got [1,2]");
    assert_error(predict(r#"{"texts": ["x"]}"#), 400, "bad_json", None, "unknown field `texts`");
    assert_error(
        http(addr, "POST", "/v1/generate", r#"{"prompt": "a"}"#),
        400,
        "wrong_route",
        None,
        "this model classifies texts rather than continuing them: POST /v1/predict",
    );
    let (status, answer) = predict(&strings);
    assert_eq!(status, 200, "{answer}");
    check(&json(&answer)["predictions"][4], 4);

    let (exit, _, rest) = terminate(served);
    assert!(exit.success(), "{exit:?}");
    assert!(rest.contains("stopped: every request received was answered"), "{rest}");
}

#[test]
fn serve_gpt_generates_like_generate() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("rep.txt");
    std::fs::write(&text, "the cat sat on the mat. the dog ran to the log.\n".repeat(100)).unwrap();
    let out = dir.path().join("lm");
    fit_text(&out, &["--data", &format!("text:{}", text.display()), "--model", "gpt", "--epochs", "2"]);

    let generate = |args: &[&str]| {
        let done = nn().args(["generate", "--model"]).arg(&out).args(args).assert().success();
        let printed = String::from_utf8(done.get_output().stdout.clone()).unwrap();
        printed.strip_suffix('\n').unwrap().to_string()
    };
    let served = serve(&out, &[]);
    assert!(
        served.banner.contains("a language model of context 16 tokens (bytes tokenizer, 258 tokens"),
        "{}",
        served.banner
    );
    let addr = served.addr;
    // (body, the same settings as flags, tokens generated): sampled with a seed,
    // sampled among the top 3, greedy, and the default length (the rest of the
    // context: 16 − 4 prompt bytes).
    let cases: [(&str, &[&str], usize); 4] = [
        (
            r#"{"prompt": "the cat", "max_tokens": 6, "temperature": 0.8, "seed": 7}"#,
            &["--prompt", "the cat", "--max-tokens", "6", "--temperature", "0.8", "--seed", "7"],
            6,
        ),
        (
            r#"{"prompt": "the d", "max_tokens": 9, "top_k": 3, "seed": 2}"#,
            &["--prompt", "the d", "--max-tokens", "9", "--top-k", "3", "--seed", "2"],
            9,
        ),
        (
            r#"{"prompt": "the ", "max_tokens": 5, "temperature": 0}"#,
            &["--prompt", "the ", "--max-tokens", "5", "--temperature", "0"],
            5,
        ),
        (r#"{"prompt": "on t", "seed": 4}"#, &["--prompt", "on t", "--seed", "4"], 12),
    ];
    for (body, flags, tokens) in cases {
        let (status, answer) = http(addr, "POST", "/v1/generate", body);
        assert_eq!(status, 200, "{answer}");
        let answer = json(&answer);
        assert_eq!(answer["text"].as_str().unwrap(), generate(flags), "{body}");
        assert_eq!(answer["tokens"], tokens, "{body}");
        let prompt = json(body)["prompt"].as_str().unwrap().len();
        assert_eq!(answer["prompt_tokens"], prompt, "{body}");
    }
    let (_, info) = http(addr, "GET", "/v1/model", "");
    assert_eq!(
        json(&info)["text"],
        serde_json::json!({ "context": 16, "vocab_size": 258, "tokenizer": "bytes", "language_model": true })
    );

    let gen = |body: &str| http(addr, "POST", "/v1/generate", body);
    assert_error(
        gen(r#"{"prompt": "the", "max_tokens": 0}"#),
        422,
        "bad_value",
        Some("max_tokens"),
        "max_tokens must be in [1, 13] (the model's context of 16 tokens less the prompt's 3), got 0",
    );
    assert_error(gen(r#"{"prompt": "the", "max_tokens": 14}"#), 422, "bad_value", Some("max_tokens"), "got 14");
    assert_error(gen(r#"{"prompt": "the", "max_tokens": -2}"#), 422, "bad_value", Some("max_tokens"), "got -2");
    assert_error(
        gen(r#"{"prompt": "the cat sat on the mat"}"#),
        422,
        "bad_value",
        Some("prompt"),
        "the prompt is 22 tokens, which leaves no room in the model's context of 16 tokens",
    );
    assert_error(gen(r#"{"prompt": ""}"#), 422, "bad_value", Some("prompt"), "the prompt is empty");
    assert_error(
        gen(r#"{"prompt": "the", "temperature": -0.5}"#),
        422,
        "bad_value",
        Some("temperature"),
        "temperature must be a number ≥ 0, got -0.5",
    );
    assert_error(
        gen(r#"{"prompt": "the", "top_k": 0}"#),
        422,
        "bad_value",
        Some("top_k"),
        "top_k must be at least 1, got 0",
    );
    assert_error(gen(r#"{"prompt": "the", "length": 3}"#), 400, "bad_json", None, "unknown field `length`");
    assert_error(gen(r#"{"max_tokens": 3}"#), 400, "bad_json", None, "missing field `prompt`");
    assert_error(
        http(addr, "POST", "/v1/predict", r#"{"inputs": ["the cat"]}"#),
        400,
        "wrong_route",
        None,
        "is a language model (gpt): it continues text rather than classifying it; POST /v1/generate",
    );
    let (exit, _, rest) = terminate(served);
    assert!(exit.success(), "{exit:?}");
    assert!(rest.contains("stopped: every request received was answered"), "{rest}");
}
