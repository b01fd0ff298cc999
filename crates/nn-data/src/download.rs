//! Downloading data sets into a local cache, as Keras' `get_file` does: a file is
//! fetched once, verified against a SHA-256 recorded in the code, and read from the
//! cache from then on.
//!
//! [`mnist`] ensures the four MNIST files are in `<cache>/mnist` and returns that
//! folder, ready for [`crate::mnist::load_mnist`]:
//!
//! ```no_run
//! use nn_data::download::{self, DownloadOptions};
//! let dir = download::mnist(&DownloadOptions { progress: true, ..DownloadOptions::default() })?;
//! let mnist = nn_data::mnist::load_mnist(&dir)?;
//! assert_eq!(mnist.train.len(), 60_000);
//! # Ok::<(), nn_data::DataError>(())
//! ```
//!
//! # Where files go and where they come from
//! - The cache: [`DownloadOptions::cache_dir`], else `$NN_CACHE_DIR`, else
//!   `$XDG_CACHE_HOME/nn`, else `~/.cache/nn` (empty variables count as unset).
//!   Each data set has a folder below it (`<cache>/mnist`).
//! - The mirror: [`DownloadOptions::mirror`], else `$NN_MNIST_MIRROR`, else
//!   [`MNIST_MIRROR`], the copy TensorFlow and Keras download MNIST from. A file's
//!   URL is the mirror followed by the file name (a `/` is added between them when
//!   the mirror does not end with one). Only `http://` and `https://` are fetched
//!   (HTTPS through rustls with the Mozilla roots; the usual `HTTPS_PROXY`,
//!   `HTTP_PROXY` and `NO_PROXY` variables are honoured).
//!
//! # Verification
//! A file is checked by the SHA-256 of its *content*: the bytes after gzip
//! decompression when the file is gzip (it starts with `1f 8b`), else its bytes
//! ([`content_sha256`]). These are exactly the bytes the IDX reader reads, so a
//! mirror that re-compressed the files (with another gzip level or tool) serves
//! files that pass, while any change to the data fails. [`MNIST_FILES`] records
//! the content hashes of the canonical MNIST files; the `.gz` files of
//! [`MNIST_MIRROR`] themselves hash to the published
//! `440fcabf…` (training images), `3552534a…` (training labels), `8d422c7b…` (test
//! images) and `f7ae60f9…` (test labels).
//!
//! A file already in the cache whose content hash is right is not downloaded again;
//! one whose hash is wrong (damaged, cut short) is deleted and downloaded again. A
//! download goes to a temporary file `.nn-tmp-*` in the same folder, is verified,
//! and only then renamed to its final name: an interrupted or wrong download never
//! leaves a file under the final name, and two processes filling the same cache at
//! once do not see each other's partial files.
//!
//! # Errors
//! All errors are [`DataError`]s naming the file and, for network and verification
//! failures, the URL: an HTTP status other than 200, a connection or TLS failure,
//! a body cut short or over [`MAX_DOWNLOAD_BYTES`], a hash mismatch (with the
//! expected and the computed hash), a cache folder that cannot be created.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{invalid, DataError, Result};

/// The public MNIST mirror TensorFlow and Keras download from (Google's copy for
/// the CVDF); the default when neither [`DownloadOptions::mirror`] nor
/// `$NN_MNIST_MIRROR` is set.
pub const MNIST_MIRROR: &str = "https://storage.googleapis.com/cvdf-datasets/mnist/";

/// The four MNIST files and the SHA-256 of their content (the IDX bytes after gzip
/// decompression; see [Verification](self#verification)): training images and
/// labels, test images and labels.
pub const MNIST_FILES: [(&str, &str); 4] = [
    ("train-images-idx3-ubyte.gz", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    ("train-labels-idx1-ubyte.gz", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    ("t10k-images-idx3-ubyte.gz", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    ("t10k-labels-idx1-ubyte.gz", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
];

/// The largest body one download accepts (1 GiB); a server sending more is an
/// error, so a wrong URL cannot fill the disk.
pub const MAX_DOWNLOAD_BYTES: u64 = 1 << 30;

/// Where to cache downloads, where to fetch them from, and whether to show
/// progress. `DownloadOptions::default()` uses the environment and the built-in
/// mirror (see [the module docs](self#where-files-go-and-where-they-come-from)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadOptions {
    /// The cache folder (each data set gets a folder below it). `None`:
    /// `$NN_CACHE_DIR`, else `$XDG_CACHE_HOME/nn`, else `~/.cache/nn`.
    pub cache_dir: Option<PathBuf>,
    /// The base URL the files are fetched from. `None`: `$NN_MNIST_MIRROR`, else
    /// [`MNIST_MIRROR`].
    pub mirror: Option<String>,
    /// Print what is downloaded and its progress to standard error.
    pub progress: bool,
    /// The files to ensure, as `(file name, SHA-256 of the content in hex)`, in
    /// place of the built-in list ([`MNIST_FILES`] for [`mnist`]): for tests, and
    /// for mirrors of variants of a data set. `None`: the built-in list.
    pub expected: Option<Vec<(String, String)>>,
}

impl DownloadOptions {
    /// The cache folder these options name: [`cache_dir`](Self::cache_dir), else
    /// `$NN_CACHE_DIR`, else `$XDG_CACHE_HOME/nn`, else `$HOME/.cache/nn`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] when none of them is set.
    pub fn resolved_cache_dir(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.cache_dir {
            return Ok(dir.clone());
        }
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        default_cache_dir(var("NN_CACHE_DIR"), var("XDG_CACHE_HOME"), var("HOME").or_else(|| var("USERPROFILE")))
            .ok_or_else(|| {
                invalid(
                    "download",
                    "no cache folder: set NN_CACHE_DIR (or XDG_CACHE_HOME or HOME), or pass a cache folder",
                )
            })
    }

    /// The mirror these options name: [`mirror`](Self::mirror), else the
    /// environment variable `env_var` (e.g. `NN_MNIST_MIRROR`), else `default`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] naming where the mirror came from when it is
    /// not an `http://` or `https://` URL.
    pub fn resolved_mirror(&self, env_var: &str, default: &str) -> Result<String> {
        let (mirror, source) = match &self.mirror {
            Some(m) => (m.clone(), "the mirror".to_string()),
            None => match std::env::var(env_var).ok().filter(|v| !v.trim().is_empty()) {
                Some(m) => (m, format!("${env_var}")),
                None => (default.to_string(), "the default mirror".to_string()),
            },
        };
        let mirror = mirror.trim().to_string();
        let scheme_ok = ["http://", "https://"]
            .iter()
            .any(|s| mirror.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)) && mirror.len() > s.len());
        if !scheme_ok {
            return Err(invalid(
                "download",
                format!("{source} {mirror:?} is not an http:// or https:// URL (e.g. {MNIST_MIRROR})"),
            ));
        }
        Ok(mirror)
    }
}

/// `$NN_CACHE_DIR`, else `$XDG_CACHE_HOME/nn`, else `$HOME/.cache/nn`.
fn default_cache_dir(nn_cache: Option<PathBuf>, xdg_cache: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    nn_cache.or_else(|| xdg_cache.map(|d| d.join("nn"))).or_else(|| home.map(|h| h.join(".cache").join("nn")))
}

/// Ensures the four MNIST files ([`MNIST_FILES`], or `opts.expected`) are in
/// `<cache>/mnist` with the right content, downloading those that are missing or
/// wrong from the mirror, and returns that folder (ready for
/// [`crate::mnist::load_mnist`]).
///
/// # Errors
/// [`DataError::InvalidArgument`] for no cache folder, a mirror that is not an
/// HTTP(S) URL, or an expected hash that is not 64 hex digits; the errors of
/// [`fetch_verified`] for the first file that cannot be fetched and verified
/// (files already verified stay in the cache).
pub fn mnist(opts: &DownloadOptions) -> Result<PathBuf> {
    let dir = opts.resolved_cache_dir()?.join("mnist");
    let mirror = opts.resolved_mirror("NN_MNIST_MIRROR", MNIST_MIRROR)?;
    let files: Vec<(String, String)> = match &opts.expected {
        Some(list) => list.clone(),
        None => MNIST_FILES.iter().map(|(n, h)| (n.to_string(), h.to_string())).collect(),
    };
    for (name, sha256) in &files {
        check_file_name(name)?;
        let url = join_url(&mirror, name);
        fetch_verified(&url, &dir.join(name), sha256, opts.progress)?;
    }
    Ok(dir)
}

/// What [`fetch_verified`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The file was already there with the right content: nothing was downloaded.
    Cached,
    /// The file was downloaded (this many bytes) and verified.
    Downloaded {
        /// The size of the downloaded file in bytes.
        bytes: u64,
    },
}

/// Ensures `dest` holds the file at `url`, whose content hashes to `sha256` (hex,
/// either case; see [`content_sha256`]). A `dest` that already has that content is
/// left alone ([`Fetched::Cached`]); otherwise the file is downloaded to a
/// temporary `.nn-tmp-*` file beside `dest`, verified and renamed to `dest` (a
/// `dest` with other content is deleted first). `dest`'s folder is created when
/// missing. With `progress`, what is downloaded and how far it got are printed to
/// standard error.
///
/// # Errors
/// [`DataError::InvalidArgument`] when `sha256` is not 64 hex digits or `dest` has
/// no file name; [`DataError::Format`] naming `dest` and `url` when the server
/// cannot be reached, answers another status than 200, sends a body cut short or
/// larger than [`MAX_DOWNLOAD_BYTES`], or the content hashes to something else
/// than `sha256` (the message gives both hashes; nothing is left under `dest` or
/// the temporary name); [`DataError::Format`] naming the folder when it cannot be
/// created or written.
pub fn fetch_verified(url: &str, dest: &Path, sha256: &str, progress: bool) -> Result<Fetched> {
    let expected = normalise_sha256(sha256)?;
    let Some(name) = dest.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Err(invalid("download", format!("{} has no file name", dest.display())));
    };
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if dest.is_file() {
        match content_sha256(dest) {
            Ok(got) if got == expected => return Ok(Fetched::Cached),
            _ => {
                if progress {
                    eprintln!("{}: content differs from the expected SHA-256; downloading it again", dest.display());
                }
                fs::remove_file(dest).map_err(|e| write_error(dest, "cannot remove the stale file", e))?;
            }
        }
    }
    fs::create_dir_all(&dir).map_err(|e| write_error(&dir, "cannot create the cache folder", e))?;
    let temp = TempFile::new(&dir, &name);
    let bytes = download(url, temp.path(), dest, progress)?;
    let got = content_sha256(temp.path()).map_err(|e| DataError::Format {
        path: dest.to_path_buf(),
        message: format!("the file downloaded from {url} is unreadable ({e}); it was not kept"),
    })?;
    if got != expected {
        return Err(DataError::Format {
            path: dest.to_path_buf(),
            message: format!(
                "SHA-256 mismatch for {name} downloaded from {url}: expected {expected}, got {got} \
                 (the file was not kept; check the mirror)"
            ),
        });
    }
    temp.persist(dest)?;
    Ok(Fetched::Downloaded { bytes })
}

/// The SHA-256 (lowercase hex) of a file's content: of the bytes after gzip
/// decompression when the file starts with the gzip magic `1f 8b` (every member of
/// a multi-member stream), else of its bytes.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read; [`DataError::Gzip`] when it
/// starts like gzip but the stream is corrupt or cut short.
pub fn content_sha256(path: &Path) -> Result<String> {
    let io = |source| DataError::Io { path: path.to_path_buf(), source };
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let mut magic = [0u8; 2];
    let mut have = 0;
    while have < 2 {
        match file.read(&mut magic[have..]).map_err(io)? {
            0 => break,
            n => have += n,
        }
    }
    let head = &magic[..have];
    let mut hasher = Sha256::new();
    if head == [0x1f, 0x8b] {
        let mut decoder = flate2::read::MultiGzDecoder::new(head.chain(file));
        std::io::copy(&mut decoder, &mut hasher)
            .map_err(|source| DataError::Gzip { path: path.to_path_buf(), source })?;
    } else {
        hasher.update(head);
        std::io::copy(&mut file, &mut hasher).map_err(io)?;
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn normalise_sha256(sha256: &str) -> Result<String> {
    let s = sha256.trim().to_ascii_lowercase();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("download", format!("expected SHA-256 {sha256:?} is not 64 hex digits")));
    }
    Ok(s)
}

/// A file name to fetch must be one path component, so it stays in the cache folder.
fn check_file_name(name: &str) -> Result<()> {
    let ok =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\']) && !name.starts_with(".nn-tmp-");
    if ok {
        Ok(())
    } else {
        Err(invalid("download", format!("{name:?} is not a plain file name")))
    }
}

fn join_url(mirror: &str, name: &str) -> String {
    if mirror.ends_with('/') {
        format!("{mirror}{name}")
    } else {
        format!("{mirror}/{name}")
    }
}

fn write_error(path: &Path, what: &str, e: std::io::Error) -> DataError {
    DataError::Format { path: path.to_path_buf(), message: format!("{what}: {e}") }
}

/// Downloads `url` into `temp` (already reserved), returning the body's size.
/// Errors name `dest` and `url`.
fn download(url: &str, temp: &Path, dest: &Path, progress: bool) -> Result<u64> {
    let fail = |message: String| DataError::Format { path: dest.to_path_buf(), message };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("nn-data/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    if progress {
        eprintln!("Downloading {url}");
    }
    let response = agent.get(url).call().map_err(|e| fail(format!("downloading {url} failed: {e}")))?;
    let status = response.status();
    if status.as_u16() != 200 {
        let reason = status.canonical_reason().unwrap_or("");
        return Err(fail(format!("downloading {url} failed: HTTP {} {reason}", status.as_u16())));
    }
    let total = response.body().content_length();
    if total.is_some_and(|t| t > MAX_DOWNLOAD_BYTES) {
        return Err(fail(format!(
            "downloading {url}: the server announces {} bytes, more than the limit of {MAX_DOWNLOAD_BYTES}",
            total.unwrap_or(0)
        )));
    }
    let mut body = response.into_body().into_with_config().limit(MAX_DOWNLOAD_BYTES + 1).reader();
    let file = File::create(temp).map_err(|e| write_error(temp, "cannot create the download file", e))?;
    let mut out = BufWriter::new(file);
    let mut buf = vec![0u8; 64 * 1024];
    let mut done: u64 = 0;
    let mut shown = Instant::now();
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(fail(format!("downloading {url} failed after {done} bytes: {e}")));
            }
        };
        done += n as u64;
        if done > MAX_DOWNLOAD_BYTES {
            return Err(fail(format!("downloading {url}: the body exceeds the limit of {MAX_DOWNLOAD_BYTES} bytes")));
        }
        out.write_all(&buf[..n]).map_err(|e| write_error(temp, "cannot write the download file", e))?;
        if progress && shown.elapsed() >= Duration::from_millis(250) {
            shown = Instant::now();
            eprint!("\r  {}", progress_text(done, total));
        }
    }
    out.flush().map_err(|e| write_error(temp, "cannot write the download file", e))?;
    out.into_inner()
        .map_err(|e| write_error(temp, "cannot write the download file", e.into_error()))?
        .sync_all()
        .map_err(|e| write_error(temp, "cannot write the download file", e))?;
    if let Some(t) = total {
        if done != t {
            return Err(fail(format!("downloading {url}: the body has {done} bytes, the server announced {t}")));
        }
    }
    if progress {
        eprintln!("\r  {}", progress_text(done, total));
    }
    Ok(done)
}

fn progress_text(done: u64, total: Option<u64>) -> String {
    let (unit, div) = if total.unwrap_or(done) >= 1_000_000 { ("MB", 1e6) } else { ("kB", 1e3) };
    let size = |b: u64| b as f64 / div;
    match total {
        Some(t) if t > 0 => {
            format!("{:.1} / {:.1} {unit} ({:.0}%)", size(done), size(t), 100.0 * done as f64 / t as f64)
        }
        _ => format!("{:.1} {unit}", size(done)),
    }
}

/// A temporary `.nn-tmp-<pid>-<n>-<name>` file in the destination folder, deleted
/// on drop unless [persisted](TempFile::persist).
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    fn new(dir: &Path, name: &str) -> TempFile {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        TempFile { path: dir.join(format!(".nn-tmp-{}-{n}-{name}", std::process::id())), keep: false }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file to `dest` (same folder, so the rename is atomic).
    fn persist(mut self, dest: &Path) -> Result<()> {
        fs::rename(&self.path, dest).map_err(|e| write_error(dest, "cannot move the verified download in place", e))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_folder_falls_back_in_order() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(default_cache_dir(p("/c"), p("/x"), p("/h")), p("/c"));
        assert_eq!(default_cache_dir(None, p("/x"), p("/h")), p("/x/nn"));
        assert_eq!(default_cache_dir(None, None, p("/h")), p("/h/.cache/nn"));
        assert_eq!(default_cache_dir(None, None, None), None);
        let opts = DownloadOptions { cache_dir: p("/given"), ..DownloadOptions::default() };
        assert_eq!(opts.resolved_cache_dir().unwrap(), PathBuf::from("/given"));
    }

    #[test]
    fn urls_hashes_and_names_are_checked() {
        assert_eq!(join_url("http://h/m/", "f.gz"), "http://h/m/f.gz");
        assert_eq!(join_url("http://h/m", "f.gz"), "http://h/m/f.gz");
        let opts = |m: &str| DownloadOptions { mirror: Some(m.into()), ..DownloadOptions::default() };
        assert_eq!(opts("HTTPS://h/").resolved_mirror("NN_TEST_UNSET_VAR", MNIST_MIRROR).unwrap(), "HTTPS://h/");
        for bad in ["ftp://h/", "h/mnist", "http://", ""] {
            let e = opts(bad).resolved_mirror("NN_TEST_UNSET_VAR", MNIST_MIRROR).unwrap_err();
            assert!(e.to_string().contains("is not an http:// or https:// URL"), "{bad}: {e}");
        }
        let e = DownloadOptions::default().resolved_mirror("NN_TEST_UNSET_VAR", "file:///x").unwrap_err();
        assert!(e.to_string().contains("the default mirror \"file:///x\""), "{e}");
        assert_eq!(normalise_sha256(&"AB".repeat(32)).unwrap(), "ab".repeat(32));
        assert!(normalise_sha256("abc").is_err());
        assert!(normalise_sha256(&"g".repeat(64)).is_err());
        for bad in ["", ".", "..", "a/b", "a\\b", ".nn-tmp-x"] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
        assert!(check_file_name("train-images-idx3-ubyte.gz").is_ok());
        assert_eq!(progress_text(1_500_000, Some(3_000_000)), "1.5 / 3.0 MB (50%)");
        assert_eq!(progress_text(1_500_000, None), "1.5 MB");
        assert_eq!(progress_text(28_881, Some(28_881)), "28.9 / 28.9 kB (100%)");
    }
}
