//! A client cannot hold the server: half-sent headers and slow bodies are cut off
//! after their timeouts, connections beyond `max_connections` wait until one closes,
//! and a shutdown ends by its deadline even with a client that never finishes.
//!
//! The server runs on its own tokio runtime; the misbehaving clients are plain
//! blocking sockets on the test thread, so each step happens in the written order.
//! The timing assertions are deadlines with wide margins, not performance checks.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use nn_serve::{ServeConfig, ShutdownReport, MAX_CONNECTIONS, MAX_TIMEOUT};

/// How long a test waits for something that must happen, far beyond the timeouts.
const PATIENCE: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A raw connection whose reads give up after `PATIENCE`.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Reads until the server closes the connection (EOF or a reset); returns what came
/// and how long it took. Fails if the connection is still open after `PATIENCE`.
fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the connection is still open after {:?} ({e}); received {:?}",
                start.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    (got, start.elapsed())
}

/// Reads one answer (headers, then `Content-Length` bytes) from a kept-alive
/// connection: the status, the header block in lower case, the body.
fn read_answer(s: &mut TcpStream) -> (u16, String, String) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed inside the headers: {:?}", String::from_utf8_lossy(&raw));
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap().to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    (status, head, String::from_utf8(body).unwrap())
}

/// `GET /healthz`, kept alive.
fn healthz(s: &mut TcpStream) {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
}

/// A good request on a new connection gets its 200 answer.
fn assert_serves(rt: &tokio::runtime::Runtime, addr: SocketAddr) {
    let answer = rt.block_on(predict(addr, &digit_rows(2)));
    assert_eq!(probabilities(&answer).len(), 2);
}

#[test]
fn half_sent_headers_are_cut_off_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let model = digits_model(dir.path());
    let rt = runtime();
    let config = ServeConfig { header_timeout: Duration::from_secs(1), ..ServeConfig::default() };
    let server = rt.block_on(start(&model, config));
    // One client stops in the middle of its headers, another never sends a byte.
    let mut half = connect(server.addr);
    half.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Le").unwrap();
    let mut silent = connect(server.addr);
    let (got, waited) = read_until_closed(&mut half);
    assert!(got.is_empty(), "no answer is sent: {:?}", String::from_utf8_lossy(&got));
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}, before the 1 s header timeout");
    let (got, _) = read_until_closed(&mut silent);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));

    // A kept-alive connection idle after its answer is closed after the timeout too.
    let mut idle = connect(server.addr);
    healthz(&mut idle);
    assert_eq!(read_answer(&mut idle).0, 200);
    let (got, waited) = read_until_closed(&mut idle);
    assert!(got.is_empty() && waited >= Duration::from_millis(900), "{waited:?}");

    assert_serves(&rt, server.addr);
    assert!(rt.block_on(server.shutdown()).unwrap().all_answered());
}

#[test]
fn a_slow_body_gets_408_after_the_body_timeout_and_the_connection_closes() {
    let dir = tempfile::tempdir().unwrap();
    let model = digits_model(dir.path());
    let rt = runtime();
    let config = ServeConfig { body_timeout: Duration::from_secs(1), ..ServeConfig::default() };
    let server = rt.block_on(start(&model, config));
    let metrics = server.metrics.clone();
    let mut slow = connect(server.addr);
    slow.write_all(
        b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
    )
    .unwrap();
    slow.write_all(b"{\"inputs\":").unwrap();
    // The whole answer, then the end of the connection.
    let (got, waited) = read_until_closed(&mut slow);
    assert!(waited >= Duration::from_millis(900), "answered after {waited:?}, before the 1 s body timeout");
    let text = String::from_utf8(got).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no answer: {text:?}"));
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    let err: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(err["kind"], "timeout", "{err}");
    assert!(err["error"].as_str().unwrap().contains("within 1 s (--body-timeout)"), "{err}");
    assert_eq!(metrics.requests("/v1/predict", 408), 1);

    assert_serves(&rt, server.addr);
    assert!(rt.block_on(server.shutdown()).unwrap().all_answered());
}

/// Documented behaviour: with `max_connections` open, new connections wait in the
/// listen backlog, unanswered, until one of the open ones closes.
#[test]
fn beyond_max_connections_a_new_connection_waits_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let model = digits_model(dir.path());
    let rt = runtime();
    let config = ServeConfig { max_connections: 2, header_timeout: Duration::from_secs(60), ..ServeConfig::default() };
    let server = rt.block_on(start(&model, config));
    // Two connections, each answered once (so surely accepted), then kept open idle.
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(server.addr);
            healthz(&mut s);
            assert_eq!(read_answer(&mut s).0, 200);
            s
        })
        .collect();
    // A third connects (the operating system completes the handshake) but its
    // request is not read while the two are open.
    let mut third = connect(server.addr);
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    third.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut byte = [0u8; 1];
    match third.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a third connection was served while two were open: {other:?}"),
    }
    // One closes: the third is accepted and answered.
    drop(held.pop());
    third.set_read_timeout(Some(PATIENCE)).unwrap();
    let (status, _, body) = read_answer(&mut third);
    assert_eq!(status, 200, "{body}");
    // The held connection still works, and once every client is gone a new one is served.
    healthz(&mut held[0]);
    assert_eq!(read_answer(&mut held[0]).0, 200);
    drop(held);
    drop(third);
    assert_serves(&rt, server.addr);
    assert!(rt.block_on(server.shutdown()).unwrap().all_answered());
}

#[test]
fn shutdown_closes_a_never_finished_request_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let model = digits_model(dir.path());
    let rt = runtime();
    let config = ServeConfig {
        shutdown_timeout: Duration::from_secs(1),
        header_timeout: Duration::from_secs(60),
        ..ServeConfig::default()
    };
    let server = rt.block_on(start(&model, config));
    let addr = server.addr;
    let mut half = connect(addr);
    half.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: test\r\n").unwrap();
    // An idle kept-alive connection is closed at once by the shutdown, not counted.
    let mut idle = connect(addr);
    healthz(&mut idle);
    assert_eq!(read_answer(&mut idle).0, 200);
    // Let the server read the half request before the shutdown starts.
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let report = rt.block_on(server.shutdown()).unwrap();
    let took = start.elapsed();
    assert_eq!(report, ShutdownReport { closed_unfinished: 1 });
    assert!(!report.all_answered());
    assert!(took >= Duration::from_millis(900), "the deadline was not waited for: {took:?}");
    assert!(took < PATIENCE, "{took:?}");
    assert!(read_until_closed(&mut half).0.is_empty());
    assert!(read_until_closed(&mut idle).0.is_empty());
    assert!(TcpStream::connect(addr).is_err(), "the port is closed after shutdown");
}

#[test]
fn settings_out_of_range_are_refused() {
    let ok = ServeConfig::default();
    assert!(ok.check().is_ok());
    assert_eq!(ok.header_timeout, Duration::from_secs(10));
    assert_eq!(ok.body_timeout, Duration::from_secs(30));
    assert_eq!(ok.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(ok.max_connections, 1024);
    let refused = |c: ServeConfig, needle: &str| {
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains(needle), "`{needle}` not in: {e}");
    };
    refused(ServeConfig { header_timeout: Duration::ZERO, ..ok }, "header timeout must be more than 0 s");
    refused(ServeConfig { body_timeout: MAX_TIMEOUT + Duration::from_nanos(1), ..ok }, "body timeout must be");
    refused(ServeConfig { shutdown_timeout: Duration::ZERO, ..ok }, "shutdown timeout must be");
    refused(ServeConfig { max_connections: 0, ..ok }, "max connections must be in [1, 100000], got 0");
    refused(ServeConfig { max_connections: MAX_CONNECTIONS + 1, ..ok }, "max connections must be in");
    assert!(ServeConfig { shutdown_timeout: MAX_TIMEOUT, max_connections: MAX_CONNECTIONS, ..ok }.check().is_ok());
}
