//! `mpirun -np N nn-cli fit`: data-parallel training over MPI (feature `mpi`).
//!
//! - 2 and 3 ranks give the per-epoch losses and accuracies of one process with the
//!   same global batch (to 1e-5 relative) and the same test accuracy, for the MLP and
//!   the seed CNN (on the embedded digits, so no data files are needed);
//! - rank 0 alone writes the run folder; `--resume` under MPI continues exactly;
//! - a killed rank, or a rank that fails (another data file on one "node", given
//!   with mpirun's MPMD syntax `A : B`), ends the whole job within seconds with a
//!   line naming the rank.
//!
//! Needs `mpirun` (Open MPI) on PATH; run as root it adds `--allow-run-as-root`.
#![cfg(all(unix, feature = "mpi"))]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const NN: &str = env!("CARGO_BIN_EXE_nn-cli");

fn mpirun() -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe"]).stdin(Stdio::null());
    c
}

/// `mpirun -np N nn-cli --threads 1 ARGS`.
fn on_ranks(n: usize, args: &[&str]) -> Output {
    let out = mpirun()
        .args(["-np", &n.to_string(), NN, "--threads", "1"])
        .args(args)
        .output()
        .expect("mpirun not found: install Open MPI (apt-get install openmpi-bin libopenmpi-dev)");
    out
}

fn one_process(args: &[&str]) -> Output {
    Command::new(NN).args(["--threads", "1"]).args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// history.csv as (header, rows of numbers).
fn history(dir: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    (header, rows)
}

/// The figure after `label` in `text`, e.g. `test accuracy: 0.9722`.
fn figure(text: &str, label: &str) -> f64 {
    let at = text.find(label).unwrap_or_else(|| panic!("no `{label}` in\n{text}")) + label.len();
    text[at..].split_whitespace().next().unwrap().trim_end_matches(['%', ',']).parse().unwrap()
}

/// Every training figure of `a` equals `b`'s to `rel` (seconds aside).
fn assert_same_history(a: &Path, b: &Path, rel: f64) {
    let (ha, ra) = history(a);
    let (hb, rb) = history(b);
    assert_eq!(ha, hb);
    assert_eq!(ra.len(), rb.len());
    for (x, y) in ra.iter().zip(&rb) {
        for ((name, u), v) in ha.iter().zip(x).zip(y) {
            if name.ends_with("seconds") {
                continue;
            }
            assert!(
                (u - v).abs() <= rel * u.abs().max(v.abs()),
                "{name}: {u} vs {v} ({} vs {})",
                a.display(),
                b.display()
            );
        }
    }
}

fn equivalence(model: &str, epochs: &str) {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &str| -> Vec<String> {
        ["fit", "--model", model, "--epochs", epochs, "--batch-size", "32", "--verbose", "2", "--out"]
            .iter()
            .map(|s| s.to_string())
            .chain([dir.path().join(out).display().to_string()])
            .collect()
    };
    let single_args = args("single");
    let single = one_process(&single_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(single.status.success(), "{}", text(&single));
    let single_acc = figure(&text(&single), "test accuracy:");
    for n in [2, 3] {
        let name = format!("np{n}");
        let a = args(&name);
        let run = on_ranks(n, &a.iter().map(String::as_str).collect::<Vec<_>>());
        let out = text(&run);
        assert!(run.status.success(), "{out}");
        assert_same_history(&dir.path().join(&name), &dir.path().join("single"), 1e-5);
        assert_eq!(figure(&out, "test accuracy:"), single_acc, "{out}");
        // One report (rank 0), with the all-reduce figures.
        assert_eq!(out.matches("test accuracy:").count(), 1, "{out}");
        assert!(out.contains(&format!("data-parallel on {n} ranks:")), "{out}");
        assert!(dir.path().join(&name).join("model.json").is_file());
    }
}

#[test]
fn mlp_on_two_and_three_ranks_equals_one_process() {
    equivalence("mlp", "3");
}

#[test]
fn seed_cnn_on_two_and_three_ranks_equals_one_process() {
    equivalence("cnn", "2");
}

/// `--sync-batchnorm`: the ranks normalise with the global batch's statistics, so a
/// model with BatchNormalization trains as in one process (without it, each rank's
/// share has its own statistics and the figures differ).
#[test]
fn sync_batchnorm_equals_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bn.json");
    std::fs::write(
        &spec,
        r#"{"input_shape": [8, 8, 1], "layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": 32, "use_bias": false},
            {"type": "BatchNormalization"},
            {"type": "Activation", "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"}]}"#,
    )
    .unwrap();
    let run = |n: usize, out: &str, sync: bool| {
        let out = dir.path().join(out).display().to_string();
        let s = spec.display().to_string();
        let mut args = vec!["fit", "--model", s.as_str(), "--epochs", "2", "--batch-size", "64", "--verbose", "2"];
        args.extend(["--out", out.as_str()]);
        if sync {
            args.push("--sync-batchnorm");
        }
        let o = if n == 1 { one_process(&args) } else { on_ranks(n, &args) };
        assert!(o.status.success(), "{}", text(&o));
    };
    run(1, "single", false);
    run(2, "sync", true);
    run(2, "local", false);
    assert_same_history(&dir.path().join("sync"), &dir.path().join("single"), 1e-5);
    let (_, local) = history(&dir.path().join("local"));
    let (_, single) = history(&dir.path().join("single"));
    assert_ne!(local[0][1], single[0][1], "per-rank statistics should change the loss");
}

#[test]
fn resume_under_mpi_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let cut = dir.path().join("cut");
    let base = ["fit", "--model", "mlp", "--epochs", "3", "--batch-size", "64", "--verbose", "2", "--out"];
    let f = full.display().to_string();
    let run = on_ranks(2, &[&base[..], &[f.as_str()]].concat());
    assert!(run.status.success(), "{}", text(&run));
    // Killed after epoch 1 (every rank aborts as a kill would), then resumed.
    let c = cut.display().to_string();
    let killed = on_ranks(2, &[&base[..], &[c.as_str(), "--abort-after-epochs", "1"]].concat());
    assert!(!killed.status.success(), "{}", text(&killed));
    let resumed = on_ranks(2, &["fit", "--resume", c.as_str()]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert!(text(&resumed).contains("resuming"), "{}", text(&resumed));
    assert_same_history(&cut, &full, 0.0);
    let weights = |d: &Path| std::fs::read(d.join("weights.safetensors")).unwrap();
    assert_eq!(weights(&cut), weights(&full));
}

/// A rank that fails (here: rank 1 is given a data file that does not exist, as a
/// node missing its copy would) ends the job at once with a line naming it; the
/// other rank, waiting for it, is ended too.
#[test]
fn a_failing_rank_ends_the_job_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    let other = dir.path().join("other.csv");
    let mut rows = String::from("a,b,label\n");
    let mut rows2 = rows.clone();
    for i in 0..60 {
        rows += &format!("{},{},{}\n", i % 7, i % 5, if i % 3 == 0 { "x" } else { "y" });
        rows2 += &format!("{},{},{}\n", i % 6, i % 5, if i % 3 == 0 { "x" } else { "y" });
    }
    std::fs::write(&good, rows).unwrap();
    std::fs::write(&other, rows2).unwrap();
    let missing = dir.path().join("missing.csv");
    let mpmd = |b: &Path, extra: &[&str]| {
        let started = Instant::now();
        let out = mpirun()
            .args(["-np", "1", NN, "--threads", "1", "fit", "--epochs", "2", "--data"])
            .arg(format!("csv:{}", good.display()))
            .args([":", "-np", "1", NN, "--threads", "1", "fit", "--epochs", "2", "--data"])
            .arg(format!("csv:{}", b.display()))
            .args(extra)
            .output()
            .unwrap();
        (out, started.elapsed())
    };
    let (out, took) = mpmd(&missing, &[]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(t.contains("error: rank 1 of 2: ") && t.contains("missing.csv"), "{t}");
    // Another file of the same shape on rank 1: refused before training, by name, in
    // one line from rank 0 (every rank got the same verdict).
    let (out, _) = mpmd(&other, &[]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert_eq!(t.matches("error: rank 1 does not have rank 0's training data").count(), 1, "{t}");
    // Any flag that differs: the whole run configuration is compared.
    for extra in [&["--optimizer", "sgd"][..], &["--early-stopping", "2"], &["--lr", "0.01"]] {
        let (out, _) = mpmd(&good, extra);
        let t = text(&out);
        assert!(!out.status.success(), "{t}");
        assert_eq!(
            t.matches("error: rank 1 does not have rank 0's flags (the run configuration)").count(),
            1,
            "{extra:?}: {t}"
        );
    }
}

/// `kill -9` of one rank in the middle of training ends the job within seconds.
#[test]
fn a_killed_rank_ends_the_job() {
    let started = Instant::now();
    let mut job = mpirun()
        .args(["-np", "2", NN, "--threads", "1", "fit", "--model", "mlp", "--epochs", "100000", "--verbose", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Find rank 1 (its environment says OMPI_COMM_WORLD_RANK=1) once it trains.
    let rank1 = loop {
        assert!(started.elapsed() < Duration::from_secs(60), "rank 1 never started");
        std::thread::sleep(Duration::from_millis(500));
        let found = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let env = std::fs::read(e.path().join("environ")).ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let mine = env.split(|b| *b == 0).any(|v| v == b"OMPI_COMM_WORLD_RANK=1");
            let nn = cmd.split(|b| *b == 0).next().is_some_and(|c| c.ends_with(b"nn-cli"));
            let ppid = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let parent_ok = ppid.split_whitespace().nth(3)? == job.id().to_string();
            (mine && nn && parent_ok).then_some(pid)
        });
        if let Some(pid) = found {
            break pid;
        }
    };
    std::thread::sleep(Duration::from_secs(2));
    let killed_at = Instant::now();
    Command::new("kill").args(["-9", &rank1.to_string()]).status().unwrap();
    let deadline = Duration::from_secs(30);
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        if killed_at.elapsed() > deadline {
            let _ = job.kill();
            panic!("the job still runs {deadline:?} after rank 1 was killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = job.wait_with_output().unwrap();
    let t = text(&out);
    assert!(!status.success(), "{t}");
    assert!(t.contains("rank 1"), "{t}");
}
