//! `mpirun -np N nn-cli tune …` against the same search in one process, on the
//! embedded digits data: the same `trials.csv` (objective values to 1e-6, seconds
//! aside) and the same best model (weights byte for byte). Needs Open MPI's
//! `mpirun` on PATH (`apt-get install openmpi-bin`); without it the tests fail.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{write_file, HALVING_SPACE, TUNE_SPACE};

const NN: &str = env!("CARGO_BIN_EXE_nn-cli");

/// Open MPI's launcher, or a failure that says how to get it.
fn mpirun() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("mpirun")).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "mpirun is not on PATH: the `mpi` feature's tests launch nn-cli under Open MPI \
             (apt-get install openmpi-bin libopenmpi-dev)"
        )
    })
}

/// Runs `cmd`, asserts success and returns its standard output.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout.into_owned()
}

/// `nn-cli --threads 1 tune` in one process.
fn alone() -> Command {
    let mut cmd = Command::new(NN);
    cmd.args(["--threads", "1", "tune"]);
    cmd
}

/// The same under `mpirun -np NP`, one thread per rank.
fn under_mpi(np: usize) -> Command {
    let mut cmd = Command::new(mpirun());
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-np", &np.to_string(), NN, "--threads", "1", "tune"]);
    cmd
}

/// `nn-cli --threads 1 tune ARGS --out OUT` in one process.
fn tune_alone(args: &[String], out: &Path) -> String {
    run(alone().args(args).arg("--out").arg(out))
}

/// The same under `mpirun -np NP`, one thread per rank.
fn tune_mpi(np: usize, args: &[String], out: &Path) -> String {
    run(under_mpi(np).args(args).arg("--out").arg(out))
}

/// Runs `tune` (`cmd`) with `ARGS --out OUT --abort-after-trials 2`, which must fail.
fn kill_after_two_trials(mut cmd: Command, args: &[String], out: &Path) {
    let killed = cmd.args(args).arg("--out").arg(out).args(["--abort-after-trials", "2"]).output().unwrap();
    assert!(!killed.status.success());
}

/// A search to compare: `space` written to `space.json` in a temporary folder, the
/// `tune` arguments `--space PATH FLAGS…`, and the search already run in one
/// process into `alone`; `other` is where the search to compare goes.
struct Search {
    _dir: tempfile::TempDir,
    args: Vec<String>,
    alone: PathBuf,
    other: PathBuf,
}

fn search_alone(space: &str, flags: &[&str]) -> Search {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--space".to_string(), write_file(dir.path(), "space.json", space)];
    args.extend(flags.iter().map(|f| f.to_string()));
    let (alone, other) = (dir.path().join("alone"), dir.path().join("other"));
    tune_alone(&args, &alone);
    Search { _dir: dir, args, alone, other }
}

/// Reruns the search cut after two trials in `s.other` over two ranks: the two
/// finished trials are read back, the rest of `total` trained, and the result is
/// the uncut search's.
fn assert_resumes_over_two_ranks(s: &Search, total: usize) {
    let text = tune_mpi(2, &s.args, &s.other);
    assert_eq!(text.matches("(from trials.csv)").count(), 2, "{text}");
    assert!(text.contains(&format!("{total} trials ({} trained now)", total - 2)), "{text}");
    assert_same_search(&s.alone, &s.other);
}

/// `trials.csv` as rows of fields.
fn rows(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("trials.csv")).unwrap();
    text.lines().map(|l| l.split(',').map(str::to_string).collect()).collect()
}

/// The two searches' trials.csv agree: the same header and trials (id, rung, epoch
/// budget, parameters, best epoch, epochs run), objective, val_loss and
/// val_accuracy to 1e-6 relative; seconds aside. And their best models agree:
/// model.json and the weights byte for byte, history.csv but for its timings.
fn assert_same_search(one: &Path, many: &Path) {
    let (a, b) = (rows(one), rows(many));
    assert_eq!(a.len(), b.len(), "row counts");
    assert_eq!(a[0], b[0], "header");
    assert_eq!(a[0][12..15], ["objective", "val_loss", "val_accuracy"]);
    assert_eq!(a[0][15], "seconds");
    for (x, y) in a[1..].iter().zip(&b[1..]) {
        assert_eq!(x[..12], y[..12], "trial fields");
        for j in 12..15 {
            let (u, v): (f64, f64) = (x[j].parse().unwrap(), y[j].parse().unwrap());
            let close = (u.is_nan() && v.is_nan()) || (u - v).abs() <= 1e-6 * u.abs().max(v.abs());
            assert!(close, "{}: {u} vs {v} in trial {} rung {}", a[0][j], x[0], x[1]);
        }
    }
    let read = |d: &Path, f: &str| std::fs::read(d.join("best").join(f)).unwrap();
    assert_eq!(read(one, "weights.safetensors"), read(many, "weights.safetensors"), "best weights");
    assert_eq!(read(one, "model.json"), read(many, "model.json"), "best model.json");
    // history.csv: every column but the timings.
    let history = |d: &Path| -> Vec<Vec<String>> {
        let text = String::from_utf8(read(d, "history.csv")).unwrap();
        let mut lines = text.lines().map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>());
        let header = lines.next().unwrap();
        let keep: Vec<usize> = (0..header.len()).filter(|&j| !header[j].ends_with("seconds")).collect();
        std::iter::once(header).chain(lines).map(|r| keep.iter().map(|&j| r[j].clone()).collect()).collect()
    };
    assert_eq!(history(one), history(many), "best history.csv");
    let mut names: Vec<String> =
        std::fs::read_dir(many).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, [".nn-lock", "best", "search.json", "trials.csv"]);
}

#[test]
fn a_random_search_over_two_ranks_equals_one_process() {
    let s = search_alone(TUNE_SPACE, &["--trials", "5", "--seed", "3"]);
    let text = tune_mpi(2, &s.args, &s.other);
    assert_same_search(&s.alone, &s.other);
    assert_eq!(rows(&s.other).len(), 1 + 5);
    // Rank 0 alone prints: each trial once, one summary.
    assert_eq!(text.matches("2 ranks: each trains its share").count(), 1, "{text}");
    for id in 0..5 {
        assert_eq!(text.matches(&format!("trial {id} [rung 0,")).count(), 1, "{text}");
    }
    assert_eq!(text.matches("5 trials (5 trained now)").count(), 1, "{text}");
    assert_eq!(text.matches("best model: test loss").count(), 1, "{text}");
}

#[test]
fn halving_over_three_ranks_equals_one_process() {
    let s = search_alone(HALVING_SPACE, &["--strategy", "halving", "--trials", "9", "--eta", "3"]);
    let text = tune_mpi(3, &s.args, &s.other);
    assert!(text.contains("rungs (configurations x epochs): 9x1, 3x3, 1x9"), "{text}");
    assert_same_search(&s.alone, &s.other);
    // 9 + 3 + 1 trials over the three rungs.
    let per_rung: Vec<usize> =
        (0..3).map(|k| rows(&s.other)[1..].iter().filter(|r| r[1] == k.to_string()).count()).collect();
    assert_eq!(per_rung, [9, 3, 1]);
}

#[test]
fn a_search_killed_in_one_process_resumes_over_two_ranks() {
    let s = search_alone(TUNE_SPACE, &["--trials", "4", "--seed", "9"]);
    // Killed after two trials...
    kill_after_two_trials(alone(), &s.args, &s.other);
    assert_eq!(rows(&s.other).len(), 1 + 2);
    // ...and resumed over two ranks: the two finished trials read back, two trained.
    assert_resumes_over_two_ranks(&s, 4);
}

#[test]
fn a_search_killed_over_two_ranks_keeps_its_finished_chunks() {
    let s = search_alone(TUNE_SPACE, &["--trials", "5", "--seed", "4"]);
    // Rank 0 killed once the first chunk (trials 0 and 1) is recorded, mid-round...
    kill_after_two_trials(under_mpi(2), &s.args, &s.other);
    // ...left that chunk's records in trials.csv...
    let kept = rows(&s.other);
    assert_eq!(kept.len(), 1 + 2);
    assert_eq!([&kept[1][..2], &kept[2][..2]], [["0", "0"], ["1", "0"]]);
    // ...and the rerun reads them back and trains the other three.
    assert_resumes_over_two_ranks(&s, 5);
}
