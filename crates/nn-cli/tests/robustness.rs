//! The process ends well when its surroundings go away: output into a closed pipe
//! (`nn-cli ... | head -1`) ends it quietly by SIGPIPE, never with a panic (exit
//! 101); SIGINT and SIGTERM during `fit` stop training cleanly, with exit status
//! 130 or 143 and no temporary file left.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `nn-cli --threads 1 ARGS`, stderr captured.
fn nn(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nn-cli"));
    c.args(["--threads", "1"]).args(args).stdin(Stdio::null()).stderr(Stdio::piped());
    c
}

/// A standard output whose reading end is already closed: the first write fails
/// with EPIPE (and raises SIGPIPE), deterministically.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Stdio::from(writer)
}

/// Waits for `child` and returns its exit status and standard error.
fn finish(mut child: Child) -> (ExitStatus, String) {
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (child.wait().unwrap(), err)
}

/// Ended by SIGPIPE, quietly: no panic, no exit code 101, nothing on stderr.
fn assert_quiet_sigpipe(what: &str, (status, err): (ExitStatus, String)) {
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_ne!(status.code(), Some(101), "{what}: {err}");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{what}: {status:?} {err}");
    assert_eq!(err, "", "{what}");
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    let child = nn(&["summary", "--model", "mlp"]).stdout(closed_pipe()).spawn().unwrap();
    assert_quiet_sigpipe("summary", finish(child));
    // fit prints its data line before training: the run ends there.
    let child = nn(&["fit", "--epochs", "1"]).stdout(closed_pipe()).spawn().unwrap();
    assert_quiet_sigpipe("fit", finish(child));
    let child = nn(&["--help"]).stdout(closed_pipe()).spawn().unwrap();
    let (status, err) = finish(child);
    assert!(!err.contains("panicked") && status.code() != Some(101), "{status:?} {err}");
}

#[test]
fn head_dash_1_after_the_first_line() {
    // As `nn-cli summary | head -1`: one line read, then the pipe closed. The rest
    // may still fit in the pipe's buffer (exit 0) or not (SIGPIPE): both are fine.
    let mut child = nn(&["summary", "--model", "resnet"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("Model:"), "{first}");
    let (status, err) = finish(child);
    assert!(!err.contains("panicked"), "{err}");
    assert!(status.success() || status.signal() == Some(libc::SIGPIPE), "{status:?} {err}");
}

#[test]
fn evaluate_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let status = nn(&["fit", "--epochs", "1", "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let child =
        nn(&["evaluate", "--model", out.to_str().unwrap(), "--data", "digits"]).stdout(closed_pipe()).spawn().unwrap();
    assert_quiet_sigpipe("evaluate", finish(child));
}

/// Starts `fit` for many epochs with `--out dir`, waits until training runs (its
/// first epoch line), sends `signal`, and returns the exit status, standard output
/// and standard error.
fn fit_then_signal(dir: &Path, signal: libc::c_int) -> (ExitStatus, String, String) {
    let mut child = nn(&["fit", "--epochs", "1000", "--quiet-progress", "--out", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let started = Instant::now();
    // Wait for the first finished epoch, so that a checkpoint exists.
    while !seen.lines().any(|l| l.starts_with("Epoch 1/")) {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "fit ended early:\n{seen}");
        seen.push_str(&line);
        assert!(started.elapsed() < Duration::from_secs(120), "{seen}");
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    stdout.read_to_string(&mut seen).unwrap();
    let (status, err) = finish(child);
    (status, seen, err)
}

/// Every file name under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            names.extend(files_under(&e.path()));
        } else {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    names
}

#[test]
fn sigint_and_sigterm_stop_fit_cleanly() {
    for (signal, name, code) in [(libc::SIGINT, "SIGINT", 130), (libc::SIGTERM, "SIGTERM", 143)] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let (status, stdout, err) = fit_then_signal(&out, signal);
        assert_eq!(status.code(), Some(code), "{name}: {status:?}\n{stdout}\n{err}");
        assert!(!err.contains("panicked"), "{err}");
        let all = format!("{stdout}{err}");
        assert!(all.contains(&format!("{name} received: training stopped")), "{all}");
        assert!(all.contains(&format!("interrupted by {name}")), "{all}");
        let files = files_under(&out);
        assert!(!files.iter().any(|f| f.starts_with(".nn-tmp-") || f.starts_with(".tmp")), "{files:?}");
        // The last finished epoch's checkpoint is there, to resume from.
        assert!(out.join("checkpoint").is_dir(), "{files:?}");
    }
}

/// Two runs on one `--out` folder: the second fails at once naming the first's
/// process id; once the first is killed, its lock is taken over, and the temporary
/// files it left are removed.
#[test]
fn one_run_at_a_time_per_folder_and_stale_leftovers_removed() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_nn-cli"))
        .args(["--threads", "1", "fit", "--epochs", "100000", "--verbose", "0", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !out.join("run.json").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "the first run did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_nn-cli"))
        .args(["--threads", "1", "fit", "--epochs", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr).to_string();
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("another run (process {}) is writing this folder", first.id())), "{err}");
    // A kill -9 leaves the lock file (released by the kernel) and, here, leftovers.
    first.kill().unwrap();
    first.wait().unwrap();
    std::fs::write(out.join(".nn-tmp-AbC123"), b"partial").unwrap();
    std::fs::create_dir_all(out.join("checkpoint.new")).unwrap();
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_nn-cli"))
        .args(["--threads", "1", "fit", "--epochs", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again.status.success(), "{text}{}", String::from_utf8_lossy(&again.stderr));
    // Ours two, and whatever the kill interrupted mid-write.
    let removed: usize = text
        .split("removed ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no removal line in:\n{text}"));
    assert!(removed >= 2 && text.contains("temporary file(s) an interrupted run left"), "{text}");
    assert!(!out.join(".nn-tmp-AbC123").exists() && !out.join("checkpoint.new").exists());
    for folder in [out.clone(), out.join("checkpoint")] {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            assert!(!name.starts_with(".nn-tmp-"), "{name} left in {}", folder.display());
        }
    }
    assert!(out.join("weights.safetensors").exists());
}
