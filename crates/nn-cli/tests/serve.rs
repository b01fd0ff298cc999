//! `nn-cli serve` end to end: a model trained by `nn-cli fit`, served on a loopback
//! port by the binary, answers like `nn-cli predict` bit for bit, refuses bad
//! requests with JSON errors, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;

const BIN: &str = env!("CARGO_BIN_EXE_nn-cli");

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

/// Sends SIGTERM and waits (at most 30 s) for a successful exit; returns the rest of stdout.
fn terminate(mut s: Served) -> String {
    let status = StdCommand::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = s.child.try_wait().unwrap() {
            break exit;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let mut rest = String::new();
    s.stdout.read_to_string(&mut rest).unwrap();
    rest
}

fn rows_json(rows: &[Vec<f32>]) -> String {
    serde_json::json!({ "inputs": rows }).to_string()
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
    let check = |answer: &serde_json::Value, i: usize| {
        let class = answer["class"].as_u64().unwrap() as usize;
        let name = answer["name"].as_str().unwrap();
        let p = answer["probability"].as_f64().unwrap() as f32;
        assert_eq!(format!("{i},{class},{name},{p:.6}"), expected[i], "row {i}");
        let bits: Vec<u32> = answer["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v.as_f64().unwrap() as f32).to_bits())
            .collect();
        assert_eq!(bits, reference[i], "row {i}: probabilities differ from nn-cli predict's");
    };
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

    let rest = terminate(served);
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
    fails_with(nn().args(["serve", "--addr", "127.0.0.1:0", "--model"]).arg(dir.path().join("none")), "model.json");
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
