//! A run folder survives a crash at any step of its write protocol.
//!
//! Test builds compile nn-tensor's crash points in (the `failpoints` feature, see
//! `nn_tensor::io::crash_point`): `FAILPOINTS=NAME=N*off->return` aborts `fit` the
//! (N+1)-th time it reaches step NAME, as `kill -9` would at that moment, with no
//! timing involved. For every step this asserts:
//! - the folder then holds the previous run's model pair or the new one, loadable
//!   and matching (never a mix);
//! - the next `fit --resume` (or, before the new run's first checkpoint, the
//!   resumed previous run and then the original command again) ends with weights
//!   byte-identical to an uninterrupted run's;
//! - after that run, no temporary file, half checkpoint or staged weight is left.
//!
//! Also: SIGINT at any step writes a checkpoint of that step and the resumed run is
//! byte-identical; a full disk (a small tmpfs, when the tests run as root) leaves
//! the folder as it was.
#![cfg(unix)]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The new run of every test: 2 epochs of the mlp preset on the embedded digits.
const NEW_RUN: [&str; 8] = ["fit", "--model", "mlp", "--epochs", "2", "--verbose", "2", "--no-test"];

/// `nn-cli --threads 1 ARGS --out DIR`, with `FAILPOINTS` set when `failpoints` is.
fn fit(args: &[&str], out: &Path, failpoints: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nn-cli"));
    c.args(["--threads", "1"]).args(args).arg("--out").arg(out).stdin(Stdio::null());
    match failpoints {
        Some(f) => c.env("FAILPOINTS", f),
        None => c.env_remove("FAILPOINTS"),
    };
    c.output().unwrap()
}

fn resume(out: &Path) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nn-cli"));
    c.args(["--threads", "1", "fit", "--resume"]).arg(out).env_remove("FAILPOINTS").stdin(Stdio::null());
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The weights (as bytes of every parameter, in order) and the seed of the model
/// saved in `dir`, loaded as every command loads it.
fn saved(dir: &Path) -> (Vec<u8>, u64) {
    let (model, meta) = nn_train::load_model(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let bytes = model.parameters().iter().flat_map(|p| p.value.to_vec()).flat_map(f32::to_le_bytes).collect();
    (bytes, meta.seed)
}

/// The reference folders: an uninterrupted new run (seed 42), and a finished earlier
/// run (seed 7, 1 epoch) to copy into a folder before each crashed run.
struct Reference {
    _dir: tempfile::TempDir,
    new_run: PathBuf,
    old_run: PathBuf,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let new_run = dir.path().join("new");
        let o = fit(&NEW_RUN, &new_run, None);
        assert!(o.status.success(), "{}", text(&o));
        let old_run = dir.path().join("old");
        let o = fit(&["fit", "--model", "mlp", "--epochs", "1", "--seed", "7", "--verbose", "2"], &old_run, None);
        assert!(o.status.success(), "{}", text(&o));
        Reference { _dir: dir, new_run, old_run }
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Every entry under `dir` that a finished run must not leave: temporary files,
/// staged weights, half or stale checkpoints.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".nn-tmp-")
            || name == nn_layers::WEIGHTS_STAGED_FILE
            || name == "checkpoint.new"
            || name == "checkpoint.old"
        {
            found.push(e.path().display().to_string());
        }
        if e.file_type().unwrap().is_dir() {
            found.extend(leftovers(&e.path()));
        }
    }
    found
}

/// Crashes the new run at the `hit`-th time (0-based) it reaches `point`, in a folder
/// holding the earlier run, then checks the folder, resumes, and checks the result.
fn crash_and_recover(point: &str, hit: usize) {
    let r = reference();
    let (new_weights, _) = saved(&r.new_run);
    let (old_weights, _) = saved(&r.old_run);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    copy_dir(&r.old_run, &out);
    let spec = if hit == 0 { format!("{point}=return") } else { format!("{point}={hit}*off->return") };
    let crashed = fit(&NEW_RUN, &out, Some(&spec));
    let what = format!("crash at {point} (hit {hit})");
    assert_eq!(crashed.status.signal(), Some(libc::SIGABRT), "{what}: the run did not crash:\n{}", text(&crashed));

    // The folder holds one complete model pair: the earlier run's or the new one's.
    let (weights, seed) = saved(&out);
    match seed {
        7 => assert!(weights == old_weights, "{what}: seed 7's model.json with other weights"),
        42 => assert!(weights == new_weights, "{what}: seed 42's model.json with other weights"),
        s => panic!("{what}: model of seed {s}"),
    }

    // Resuming continues the run that the folder's checkpoint belongs to.
    let resumed = resume(&out);
    assert!(resumed.status.success(), "{what}: resume failed:\n{}", text(&resumed));
    assert!(leftovers(&out).is_empty(), "{what}: left {:?}", leftovers(&out));
    let (weights, seed) = saved(&out);
    if seed == 7 {
        // The crash came before the new run's first checkpoint: the earlier run was
        // resumed (it was finished, so nothing changed); the new run starts again.
        assert!(weights == old_weights, "{what}: the resumed earlier run changed its weights");
        let again = fit(&NEW_RUN, &out, None);
        assert!(again.status.success(), "{what}: {}", text(&again));
    }
    let (weights, seed) = saved(&out);
    assert_eq!(seed, 42, "{what}");
    assert!(weights == new_weights, "{what}: the recovered run's weights differ from the uninterrupted run's");
    let bytes = |d: &Path| std::fs::read(d.join("weights.safetensors")).unwrap();
    assert_eq!(bytes(&out), bytes(&r.new_run), "{what}: weights.safetensors differs");
    assert!(leftovers(&out).is_empty(), "{what}: left {:?}", leftovers(&out));
}

/// Each write goes through `write_atomic`: 7 per checkpoint (5 files in it, run.json
/// and history.csv published), 3 checkpoints (start, 2 epochs), then staged weights,
/// model.json, history.csv and the curves: 25 in all. The hits cover each kind of
/// file: the first checkpoint's weights and state, a publish, the last checkpoint,
/// and each file of the final save.
#[test]
fn crash_inside_write_atomic() {
    for point in ["write_atomic:written", "write_atomic:synced", "write_atomic:renamed"] {
        for hit in [0, 4, 5, 6, 13, 20, 21, 22, 24] {
            crash_and_recover(point, hit);
        }
    }
}

#[test]
fn crash_between_the_steps_of_a_checkpoint() {
    for point in ["checkpoint:staged", "checkpoint:old_moved", "checkpoint:swapped", "run:published"] {
        for hit in [0, 1, 2] {
            crash_and_recover(point, hit);
        }
    }
}

#[test]
fn crash_between_the_steps_of_a_model_save() {
    for point in ["model_save:weights_staged", "model_save:manifest_written"] {
        crash_and_recover(point, 0);
    }
}

/// In a new folder, a crash before the first checkpoint leaves nothing to resume,
/// and `--resume` says so (one line, exit 1) instead of naming files never made.
#[test]
fn resume_before_the_first_checkpoint_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let crashed = fit(&NEW_RUN, &out, Some("write_atomic:written=return"));
    assert_eq!(crashed.status.signal(), Some(libc::SIGABRT), "{}", text(&crashed));
    let resumed = resume(&out);
    let err = String::from_utf8_lossy(&resumed.stderr).to_string();
    assert_eq!(resumed.status.code(), Some(1), "{}", text(&resumed));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nothing to resume") && err.contains("no checkpoint yet"), "{err}");
    let again = fit(&NEW_RUN, &out, None);
    assert!(again.status.success(), "{}", text(&again));
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    assert!(saved(&out).0 == saved(&reference().new_run).0);
}

/// SIGINT (raised by the process itself after exactly N steps, as a Ctrl-C at that
/// moment would) finishes the step, writes a checkpoint of it, exits 130; the
/// resumed run ends byte-identical to the uninterrupted one, history included.
#[test]
fn sigint_at_any_step_checkpoints_that_step() {
    let r = reference();
    let history = |d: &Path| -> Vec<Vec<String>> {
        // Every column but the timings.
        let text = std::fs::read_to_string(d.join("history.csv")).unwrap();
        let mut rows = text.lines().map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>());
        let header = rows.next().unwrap();
        let keep: Vec<usize> = (0..header.len()).filter(|&i| !header[i].ends_with("_seconds")).collect();
        std::iter::once(header).chain(rows).map(|r| keep.iter().map(|&i| r[i].clone()).collect()).collect()
    };
    let steps_per_epoch = 45; // 1,438 training samples (--no-test) in batches of 32
    for after in [1, 17, steps_per_epoch - 1, steps_per_epoch, steps_per_epoch + 1, 2 * steps_per_epoch - 1] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let mut args = NEW_RUN.to_vec();
        let n = after.to_string();
        args.extend(["--signal-after-steps", &n]);
        let stopped = fit(&args, &out, None);
        let all = text(&stopped);
        assert_eq!(stopped.status.code(), Some(130), "after {after} steps: {all}");
        assert!(all.contains("checkpoint written to") && all.contains("nn-cli fit --resume"), "{all}");
        if after % steps_per_epoch != 0 {
            let at = format!("at step {} of epoch {}", after % steps_per_epoch, after / steps_per_epoch + 1);
            assert!(all.contains(&at), "{at}: {all}");
        }
        let resumed = resume(&out);
        assert!(resumed.status.success(), "after {after} steps: {}", text(&resumed));
        assert_eq!(
            std::fs::read(out.join("weights.safetensors")).unwrap(),
            std::fs::read(r.new_run.join("weights.safetensors")).unwrap(),
            "after {after} steps"
        );
        assert_eq!(history(&out), history(&r.new_run), "after {after} steps");
        assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    }
}

/// The bytes of every file under `dir` (relative path → content), for comparing a
/// folder before and after a failed run.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, into: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), into);
            } else if e.file_name() != ".nn-lock" {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                into.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut map = std::collections::BTreeMap::new();
    walk(dir, dir, &mut map);
    map
}

/// A full disk: a run folder on a small tmpfs holding a finished run, filled up,
/// then a new run on it. It fails with one `error:` line naming the disk, and the
/// folder is exactly as it was: run.json, history.csv, the model pair and the
/// checkpoint, with no temporary file or half checkpoint; `--resume` still works.
/// Needs root (to mount); skipped with a note otherwise.
#[test]
fn a_full_disk_leaves_the_folder_as_it_was() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(&mnt).status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let out = mnt.join("run");
    copy_dir(&reference().old_run, &out);
    let before = snapshot(&out);
    // Fill the disk, leaving `free` bytes, then try the new run.
    for free in [0usize, 60_000, 130_000, 134_000, 146_000] {
        let filler = mnt.join("filler");
        let _ = std::fs::remove_file(&filler);
        let mut chunk = 0;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&filler).unwrap();
            let block = vec![0u8; 4096];
            while f.write_all(&block).is_ok() {
                chunk += 1;
            }
        }
        let _ = f_truncate(&filler, chunk * 4096 - free.min(chunk * 4096));
        let failed = fit(&NEW_RUN, &out, None);
        let err = String::from_utf8_lossy(&failed.stderr).to_string();
        if failed.status.success() {
            assert!(free > 0, "a run on a full disk succeeded");
            // Enough room after all: the run finished (nothing to compare).
            eprintln!("free {free}: the run fitted");
            std::fs::remove_file(&filler).unwrap();
            std::fs::remove_dir_all(&out).unwrap();
            copy_dir(&reference().old_run, &out);
            continue;
        }
        eprintln!("free {free}: {}", err.trim());
        assert_eq!(failed.status.code(), Some(1), "free {free}: {}", text(&failed));
        assert!(err.starts_with("error:") && err.lines().count() == 1, "free {free}: {err}");
        assert!(err.contains("No space left on device"), "free {free}: {err}");
        assert!(leftovers(&out).is_empty(), "free {free}: {:?}", leftovers(&out));
        let after = snapshot(&out);
        if free == 0 {
            assert!(after == before, "a run that could write nothing changed the folder");
        } else if after != before {
            // The new run's first checkpoint fitted: the folder is that run's, and
            // consistent (its run.json is in its checkpoint).
            let run = std::fs::read(out.join("run.json")).unwrap();
            assert_eq!(run, std::fs::read(out.join("checkpoint/run.json")).unwrap(), "free {free}");
        }
        std::fs::remove_file(&filler).unwrap();
        let resumed = resume(&out);
        assert!(resumed.status.success(), "free {free}: resume after freeing space: {}", text(&resumed));
        // Put the earlier run back for the next size.
        std::fs::remove_dir_all(&out).unwrap();
        copy_dir(&reference().old_run, &out);
    }
}

fn f_truncate(path: &Path, len: usize) -> std::io::Result<()> {
    std::fs::OpenOptions::new().write(true).open(path)?.set_len(len as u64)
}

/// A new run that crashed after its first checkpoint leaves the earlier run's model
/// beside its own run.json: `evaluate` takes the test part from the run saved in
/// model.json (the model's own), not from run.json (found by a newcomer: it tested the
/// model partly on rows it had trained on).
#[test]
fn evaluate_uses_the_run_that_saved_the_model() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    copy_dir(&r.old_run, &out);
    let crashed = fit(&NEW_RUN, &out, Some("run:published=return"));
    assert_eq!(crashed.status.signal(), Some(libc::SIGABRT), "{}", text(&crashed));
    let run_json = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(run_json.contains("\"seed\": 42"), "{run_json}");
    assert_eq!(saved(&out).1, 7);
    let evaluated = Command::new(env!("CARGO_BIN_EXE_nn-cli"))
        .args(["--threads", "1", "evaluate", "--data", "digits", "--model"])
        .arg(&out)
        .output()
        .unwrap();
    let all = text(&evaluated);
    assert!(evaluated.status.success(), "{all}");
    assert!(all.contains("the test part the run held out of digits (359 of 1797 rows, seed 7;"), "{all}");
}

/// `--resume` refuses flags it would ignore, says when a folder is no run at all, and
/// a run refused before its first checkpoint removes the folder it created.
#[test]
fn resume_refuses_flags_it_would_ignore_and_failed_starts_leave_nothing() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    copy_dir(&r.old_run, &out);
    let nn = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_nn-cli")).args(args).output().unwrap();
    let o = nn(&["fit", "--resume", out.to_str().unwrap(), "--lr", "0.1", "--seed", "3"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("only --epochs and --verbose may change (--lr, --seed given)"), "{err}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = nn(&["fit", "--resume", empty.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("not a run folder (no checkpoint/ or run.json"), "{err}");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "nothing written into it");
    let refused = dir.path().join("refused");
    let o = nn(&["fit", "--max-memory", "10K", "--out", refused.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!refused.exists(), "the folder a refused run created is removed");
}
