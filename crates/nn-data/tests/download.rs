//! Downloads against a local HTTP server on 127.0.0.1 started by each test (never
//! the internet): verification by SHA-256, the cache, 404s, hash mismatches. The
//! test with the real MNIST files needs `NN_DATA_DIR` (its `mnist/` folder is
//! served) and is ignored by default.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nn_data::download::{self, content_sha256, fetch_verified, DownloadOptions, Fetched, MNIST_FILES};

/// A tiny HTTP/1.1 server: `GET /<name>` answers the file `name`, anything else
/// 404. Each request's path is recorded. It runs until the test process ends.
struct Server {
    base: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/mnist/", listener.local_addr().unwrap());
        let files = Arc::new(Mutex::new(files));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (f, r) = (Arc::clone(&files), Arc::clone(&requests));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (f, r) = (Arc::clone(&f), Arc::clone(&r));
                std::thread::spawn(move || answer(stream, &f, &r));
            }
        });
        Server { base, files, requests }
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    fn requested(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn answer(mut stream: TcpStream, files: &Mutex<HashMap<String, Vec<u8>>>, requests: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // Skip the headers.
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    requests.lock().unwrap().push(path.clone());
    let body = path.strip_prefix("/mnist/").and_then(|name| files.lock().unwrap().get(name).cloned());
    let (status, body) = match body {
        Some(b) => ("200 OK", b),
        None => ("404 Not Found", b"not found".to_vec()),
    };
    let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Files a server holds, by name.
type Files = HashMap<String, Vec<u8>>;

/// Four small fake files under MNIST's names (two gzip, two plain) and their
/// content hashes.
fn fake_files() -> (Files, Vec<(String, String)>) {
    let contents: [&[u8]; 4] = [b"fake training images", b"fake training labels", b"abc", b""];
    let mut files = HashMap::new();
    let mut expected = Vec::new();
    for (i, ((name, _), content)) in MNIST_FILES.iter().zip(contents).enumerate() {
        let bytes = if i < 2 { gzip(content, 6) } else { content.to_vec() };
        files.insert(name.to_string(), bytes);
        expected.push((name.to_string(), sha256_hex(content)));
    }
    (files, expected)
}

fn options(cache: &Path, server: &Server, expected: Vec<(String, String)>) -> DownloadOptions {
    DownloadOptions {
        cache_dir: Some(cache.to_path_buf()),
        mirror: Some(server.base.clone()),
        progress: false,
        expected: Some(expected),
    }
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn sorted_mnist_names() -> Vec<String> {
    let mut names: Vec<String> = MNIST_FILES.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    names
}

#[test]
fn content_hash_is_of_the_decompressed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // The SHA-256 test vector of "abc" (FIPS 180-2, appendix B.1).
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    for (name, bytes) in [("plain", b"abc".to_vec()), ("fast.gz", gzip(b"abc", 1)), ("best.gz", gzip(b"abc", 9))] {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(content_sha256(&p).unwrap(), abc, "{name}");
    }
    // The empty file's hash, and a corrupt gzip stream is an error naming the file.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(content_sha256(&empty).unwrap(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    let bad = dir.path().join("bad.gz");
    let mut g = gzip(b"abcdefgh", 6);
    g.truncate(g.len() - 5);
    std::fs::write(&bad, g).unwrap();
    let e = content_sha256(&bad).unwrap_err();
    assert!(e.to_string().contains("bad.gz") && e.to_string().contains("gzip"), "{e}");
}

#[test]
fn downloads_verify_and_are_cached() {
    let (files, expected) = fake_files();
    let server = Server::start(files.clone());
    let cache = tempfile::tempdir().unwrap();
    let opts = options(cache.path(), &server, expected.clone());

    let dir = download::mnist(&opts).unwrap();
    assert_eq!(dir, cache.path().join("mnist"));
    assert_eq!(server.count(), 4);
    let mut want_requests: Vec<String> = MNIST_FILES.iter().map(|(n, _)| format!("/mnist/{n}")).collect();
    assert_eq!(server.requested(), want_requests);
    // The files are stored as served, and no temporary file is left.
    assert_eq!(listing(&dir), sorted_mnist_names());
    for (name, bytes) in &files {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
    }

    // A second call finds everything cached: no request.
    assert_eq!(download::mnist(&opts).unwrap(), dir);
    assert_eq!(server.count(), 4);

    // A damaged cached file is downloaded again, and only that one.
    let damaged = dir.join(MNIST_FILES[2].0);
    std::fs::write(&damaged, b"abd").unwrap();
    download::mnist(&opts).unwrap();
    assert_eq!(server.count(), 5);
    want_requests.push(format!("/mnist/{}", MNIST_FILES[2].0));
    assert_eq!(server.requested(), want_requests);
    assert_eq!(std::fs::read(&damaged).unwrap(), b"abc");

    // The same content compressed otherwise is accepted from the cache as it is.
    let recompressed = gzip(b"fake training images", 9);
    assert_ne!(&recompressed, &files[MNIST_FILES[0].0]);
    std::fs::write(dir.join(MNIST_FILES[0].0), &recompressed).unwrap();
    download::mnist(&opts).unwrap();
    assert_eq!(server.count(), 5);

    // fetch_verified reports what it did.
    let dest = cache.path().join("other").join("x.bin");
    let url = format!("{}{}", server.base, MNIST_FILES[2].0);
    assert_eq!(fetch_verified(&url, &dest, &expected[2].1, false).unwrap(), Fetched::Downloaded { bytes: 3 });
    assert_eq!(fetch_verified(&url, &dest, &expected[2].1.to_uppercase(), false).unwrap(), Fetched::Cached);
    assert_eq!(server.count(), 6);
}

#[test]
fn a_hash_mismatch_is_an_error_and_leaves_no_file() {
    let (files, mut expected) = fake_files();
    let server = Server::start(files);
    let cache = tempfile::tempdir().unwrap();
    // The test labels are expected to be "abd", the server has "abc".
    let wrong = sha256_hex(b"abd");
    expected[2].1 = wrong.clone();
    let e = download::mnist(&options(cache.path(), &server, expected)).unwrap_err();
    let message = e.to_string();
    let name = MNIST_FILES[2].0;
    let url = format!("{}{name}", server.base);
    let got = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert!(matches!(e, nn_data::DataError::Format { .. }), "{e:?}");
    assert_eq!(
        message,
        format!(
            "{}: SHA-256 mismatch for {name} downloaded from {url}: expected {wrong}, got {got} \
             (the file was not kept; check the mirror)",
            cache.path().join("mnist").join(name).display()
        )
    );
    // The two files before it were kept; the bad one is neither under its name nor
    // as a temporary file; the one after it was not fetched.
    let dir = cache.path().join("mnist");
    let mut want = vec![MNIST_FILES[0].0.to_string(), MNIST_FILES[1].0.to_string()];
    want.sort();
    assert_eq!(listing(&dir), want);
    assert_eq!(server.count(), 3);
}

#[test]
fn a_404_names_the_url_and_leaves_no_file() {
    let (mut files, expected) = fake_files();
    files.remove(MNIST_FILES[1].0);
    let server = Server::start(files);
    let cache = tempfile::tempdir().unwrap();
    let e = download::mnist(&options(cache.path(), &server, expected)).unwrap_err();
    let url = format!("{}{}", server.base, MNIST_FILES[1].0);
    assert!(e.to_string().ends_with(&format!("downloading {url} failed: HTTP 404 Not Found")), "{e}");
    assert_eq!(listing(&cache.path().join("mnist")), [MNIST_FILES[0].0]);

    // Once the server has it, the next call fetches only the missing files.
    let (all, _) = fake_files();
    server.files.lock().unwrap().insert(MNIST_FILES[1].0.to_string(), all[MNIST_FILES[1].0].clone());
    let before = server.count();
    let (_, expected) = fake_files();
    download::mnist(&options(cache.path(), &server, expected)).unwrap();
    assert_eq!(server.count(), before + 3);
    assert_eq!(listing(&cache.path().join("mnist")), sorted_mnist_names());
}

#[test]
fn unreachable_servers_and_bad_settings_are_clear_errors() {
    // A port nobody listens on (bound, then closed).
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cache = tempfile::tempdir().unwrap();
    let (_, expected) = fake_files();
    let opts = DownloadOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        mirror: Some(format!("http://127.0.0.1:{port}/mnist")),
        progress: true,
        expected: Some(expected.clone()),
    };
    let e = download::mnist(&opts).unwrap_err().to_string();
    let url = format!("http://127.0.0.1:{port}/mnist/{}", MNIST_FILES[0].0);
    assert!(e.contains(&format!("downloading {url} failed: ")), "{e}");
    assert_eq!(listing(&cache.path().join("mnist")), Vec::<String>::new());

    let e = download::mnist(&DownloadOptions { mirror: Some("ftp://example.invalid/".into()), ..opts.clone() })
        .unwrap_err();
    assert!(matches!(e, nn_data::DataError::InvalidArgument { .. }), "{e:?}");
    assert!(e.to_string().contains("\"ftp://example.invalid/\" is not an http:// or https:// URL"), "{e}");

    let mut bad = expected.clone();
    bad[0].1 = "1234".into();
    let e = download::mnist(&DownloadOptions { expected: Some(bad), ..opts.clone() }).unwrap_err();
    assert!(e.to_string().contains("\"1234\" is not 64 hex digits"), "{e}");

    let mut bad = expected;
    bad[0].0 = "../escape".into();
    let e = download::mnist(&DownloadOptions { expected: Some(bad), ..opts }).unwrap_err();
    assert!(e.to_string().contains("\"../escape\" is not a plain file name"), "{e}");
}

fn mnist_source() -> PathBuf {
    let root = std::env::var_os("NN_DATA_DIR").expect("set NN_DATA_DIR to the folder holding mnist/");
    let root = PathBuf::from(root);
    // Relative paths (CI's ../shared/data) are relative to the workspace root.
    if root.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(root).join("mnist")
    } else {
        root.join("mnist")
    }
}

#[test]
#[ignore = "needs MNIST: set NN_DATA_DIR"]
fn real_mnist_from_a_local_mirror_verifies_and_loads() {
    let source = mnist_source();
    let files: HashMap<String, Vec<u8>> =
        MNIST_FILES.iter().map(|(name, _)| (name.to_string(), std::fs::read(source.join(name)).unwrap())).collect();
    let server = Server::start(files);
    let cache = tempfile::tempdir().unwrap();
    // The built-in hashes.
    let opts = DownloadOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        mirror: Some(server.base.clone()),
        progress: true,
        expected: None,
    };
    let dir = download::mnist(&opts).unwrap();
    assert_eq!(server.count(), 4);
    assert_eq!(listing(&dir), sorted_mnist_names());
    let mnist = nn_data::mnist::load_mnist(&dir).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
    // Cached from now on.
    download::mnist(&opts).unwrap();
    assert_eq!(server.count(), 4);
}
