//! Tests of `nn_train::tune::search_parallel`: a search spread over 2 or 3 ranks
//! (threads of a `ThreadGroup`) gives the same records, `trials.csv` (seconds
//! aside), `best/` files and `report` calls as the single-process `search`, for grid,
//! random and halving, uninterrupted and resumed; `trials.csv` and `best/` are
//! brought up to date after every chunk of one trial per rank; a failed trial or a
//! mismatch ends the search on every rank after its chunk, with the records before
//! it kept. A cheap, deterministic runner stands in for training.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nn_train::parallel::{Collective, ThreadGroup};
use nn_train::tune::{
    read_trials, search, search_parallel, Event, SearchConfig, SearchSpace, Strategy, Trial, TrialOutcome, TrialRecord,
    TrialRunner,
};
use nn_train::TrainError;

mod common;
use common::FakeTrials;

/// One search at a time: the check for leftover scratch folders looks at every
/// folder of this process.
static SERIAL: Mutex<()> = Mutex::new(());

fn space(json: &str) -> SearchSpace {
    SearchSpace::from_json(json, &["adam", "sgd", "momentum"]).unwrap()
}

/// A stand-in for training: the "validation loss" is a smooth function of the
/// parameters with its minimum at lr = 10^-2.5 and batch 32, lowered by a longer
/// budget (so rankings are known in advance, and lr 1e-2 and 1e-3 tie exactly); a
/// learning rate above 0.5 "diverges" (NaN). Its "model" is two files whose bytes
/// depend on the trial alone. With `watch`, it notes what that output folder holds
/// when each trial starts.
struct FakeRunner {
    trials: FakeTrials,
    watch: Option<PathBuf>,
    watched: Vec<Watched>,
}

/// What the output folder held when a trial started.
#[derive(Debug)]
struct Watched {
    /// The trial (id, rung).
    call: (usize, usize),
    /// The records in `trials.csv` (0 without the file).
    records: usize,
    /// `best/model.txt`, if any.
    best: Option<String>,
}

impl FakeRunner {
    fn new(fail_after: Option<usize>) -> Self {
        FakeRunner { trials: FakeTrials::new(fail_after), watch: None, watched: Vec::new() }
    }

    fn loss(trial: &Trial) -> f64 {
        let p = &trial.params;
        if p.learning_rate > 0.5 {
            return f64::NAN;
        }
        (p.learning_rate.log10() + 2.5).powi(2) + (p.batch_size as f64 / 32.0 - 1.0).abs() * 0.1 + p.l2
            - (trial.epochs as f64).ln() * 0.01
    }
}

impl TrialRunner for FakeRunner {
    fn run_trial(
        &mut self,
        trial: &Trial,
        objective: &nn_train::tune::Objective,
        _: usize,
    ) -> nn_train::Result<TrialOutcome> {
        if let Some(dir) = &self.watch {
            let file = dir.join("trials.csv");
            let records = if file.exists() { read_trials(&file).unwrap().len() } else { 0 };
            let best = std::fs::read_to_string(dir.join("best/model.txt")).ok();
            self.watched.push(Watched { call: (trial.id, trial.rung), records, best });
        }
        // The seconds differ between runs, as real timings do.
        self.trials.run(trial, objective, Self::loss(trial), |calls| 0.25 + calls as f64 * 1e-4)
    }

    fn save_model(&mut self, dir: &Path) -> nn_train::Result<()> {
        let t = self.trials.save_model_txt(dir);
        let weights: Vec<u8> = [t.params.learning_rate, t.params.l2, t.params.batch_size as f64, t.epochs as f64]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        std::fs::write(dir.join("weights.bin"), weights).unwrap();
        Ok(())
    }
}

type Events = Vec<(usize, usize, Event)>;

/// What one rank (or the single process) saw.
struct Seen {
    result: nn_train::Result<Vec<TrialRecord>>,
    events: Events,
    calls: Vec<(usize, usize)>,
    /// What `out` held as each trial started (with `parallel_watching`).
    watched: Vec<Watched>,
}

/// Records as text with the seconds left out (Debug prints NaN, which `==` on
/// records cannot compare, and every real exactly).
fn key(records: &[TrialRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.outcome.seconds = 0.0;
            format!("{r:?}")
        })
        .collect()
}

fn single(config: &SearchConfig, out: &Path, fail_after: Option<usize>) -> Seen {
    let mut runner = FakeRunner::new(fail_after);
    let mut events = Vec::new();
    let result = search(config, out, &mut runner, &mut |r, e| events.push((r.trial.id, r.trial.rung, e)));
    Seen { result, events, calls: runner.trials.calls, watched: runner.watched }
}

/// The search over `size` ranks, each a thread with a runner of its own (rank `r`
/// failing after `fail[r]` trials); rank 0 writes `out`, the others are given a path
/// they must never create.
fn parallel(config: &SearchConfig, out: &Path, size: usize, fail: &[Option<usize>]) -> Vec<Seen> {
    parallel_watching(config, out, size, fail, false)
}

/// [`parallel`], each rank's runner noting what `out` holds as each of its trials
/// starts when `watch`.
fn parallel_watching(config: &SearchConfig, out: &Path, size: usize, fail: &[Option<usize>], watch: bool) -> Vec<Seen> {
    let elsewhere = out.with_extension("not-rank-0");
    let seen: Vec<Seen> = std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::new(size)
            .into_iter()
            .map(|group| {
                let dir: PathBuf = if group.rank() == 0 { out.to_path_buf() } else { elsewhere.clone() };
                let fail_after = fail.get(group.rank()).copied().flatten();
                let watch = watch.then(|| out.to_path_buf());
                s.spawn(move || {
                    let mut runner = FakeRunner { watch, ..FakeRunner::new(fail_after) };
                    let mut events = Vec::new();
                    let result = search_parallel(
                        config,
                        &dir,
                        &mut runner,
                        &mut |r, e| events.push((r.trial.id, r.trial.rung, e)),
                        &group,
                    );
                    Seen { result, events, calls: runner.trials.calls, watched: runner.watched }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(!elsewhere.exists(), "a rank other than 0 wrote its output folder");
    for s in &seen[1..] {
        assert!(s.events.is_empty(), "report called on a rank other than 0");
    }
    // Every rank's scratch folder is gone.
    let prefix = format!("nn-tune-{}-", std::process::id());
    let left: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "scratch folders left: {left:?}");
    seen
}

/// `trials.csv` rows with the seconds column cut off, header included.
fn rows_without_seconds(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("trials.csv")).unwrap();
    text.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
}

/// Every file of `dir/best` with its bytes, by name.
fn best_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("best"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The folder holds what the search left and nothing else of the swap.
fn assert_folder(dir: &Path) {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["best", "search.json", "trials.csv"]);
}

/// Runs `config` in one process and over `size` ranks and checks that they agree:
/// records, events, trials.csv, best/; that every trial was trained once, by the
/// rank the chunks give it; that each chunk started with trials.csv and best/ up to
/// date with every chunk before it. Returns the single-process records.
fn check_same_as_single(config: &SearchConfig, size: usize) -> Vec<TrialRecord> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (one, many) = (dir.path().join("one"), dir.path().join("many"));
    let s = single(config, &one, None);
    let want = s.result.unwrap();
    let seen = parallel_watching(config, &many, size, &[], true);
    for (r, rank) in seen.iter().enumerate() {
        let got = rank.result.as_ref().unwrap_or_else(|e| panic!("rank {r}: {e}"));
        assert_eq!(key(got), key(&want), "rank {r}'s records");
    }
    // report saw the same (trial, rung, event) sequence, on rank 0 only.
    assert_eq!(seen[0].events, s.events);
    assert_eq!(rows_without_seconds(&many), rows_without_seconds(&one));
    assert_eq!(best_files(&many), best_files(&one));
    assert_folder(&many);
    // Every trial trained once, the union of the ranks' trials the single run's.
    let mut all: Vec<(usize, usize)> = seen.iter().flat_map(|s| s.calls.iter().copied()).collect();
    let mut want_calls = s.calls.clone();
    all.sort_unstable();
    want_calls.sort_unstable();
    assert_eq!(all, want_calls);
    // Chunks of `size`: the i-th trial of each round goes to rank i mod size, as the
    // (i mod size)-th of chunk i / size.
    let rungs = want.iter().map(|r| r.trial.rung).max().unwrap() + 1;
    for k in 0..rungs {
        let round: Vec<(usize, usize)> =
            want.iter().filter(|r| r.trial.rung == k).map(|r| (r.trial.id, r.trial.rung)).collect();
        for (r, rank) in seen.iter().enumerate() {
            let share: Vec<(usize, usize)> = round.iter().copied().skip(r).step_by(size).collect();
            let trained: Vec<(usize, usize)> = rank.calls.iter().copied().filter(|c| c.1 == k).collect();
            assert_eq!(trained, share, "rank {r}, rung {k}");
        }
    }
    // Rank r's trial is the r-th of its chunk: it started when trials.csv held every
    // record before the chunk (the records before it but r) and best/ the best of them.
    for (r, rank) in seen.iter().enumerate() {
        assert_eq!(rank.watched.len(), rank.calls.len());
        for w in &rank.watched {
            let at = want.iter().position(|x| (x.trial.id, x.trial.rung) == w.call).unwrap();
            let before = at - r;
            assert_eq!(w.records, before, "rank {r}, trial {:?}: records written", w.call);
            let best = nn_train::tune::best(&want[..before], &config.space.objective);
            let best = best.map(|b| format!("{} {} ", b.trial.id, b.trial.rung));
            match (&w.best, &best) {
                (Some(model), Some(b)) => assert!(model.starts_with(b.as_str()), "rank {r}, {:?}: {model}", w.call),
                (None, None) => {}
                other => panic!("rank {r}, trial {:?}: best/ {other:?}", w.call),
            }
        }
    }
    want
}

fn grid_config() -> SearchConfig {
    // lr 1.0 diverges (NaN) as the very first trial; lr 1e-2 and 1e-3 tie exactly.
    let s = space(r#"{"learning_rate": [1.0, 1e-3, 1e-2, 1e-1], "batch_size": [16, 32, 64]}"#);
    SearchConfig::new(s, Strategy::Grid)
}

fn random_config() -> SearchConfig {
    let s = space(
        r#"{"learning_rate": {"min": 1e-5, "max": 1, "scale": "log"}, "batch_size": [16, 32, 64],
            "objective": {"metric": "val_accuracy"}}"#,
    );
    SearchConfig { trials: Some(13), seed: 3, ..SearchConfig::new(s, Strategy::Random) }
}

fn halving_config() -> SearchConfig {
    let s = space(
        r#"{"learning_rate": {"min": 1e-5, "max": 1, "scale": "log"}, "batch_size": [16, 32, 64], "epochs": 27}"#,
    );
    SearchConfig { trials: Some(27), seed: 5, ..SearchConfig::new(s, Strategy::Halving) }
}

#[test]
fn a_grid_over_two_and_three_ranks_equals_one_process() {
    for size in [2, 3] {
        let want = check_same_as_single(&grid_config(), size);
        assert_eq!(want.len(), 12);
        assert!(want[0].outcome.objective.is_nan());
        // lr 1e-3 and 1e-2 at batch 32 tie at 0.25 - ln 20 / 100; the earlier (trial 4) is best.
        let best = nn_train::tune::best(&want, &grid_config().space.objective).unwrap();
        assert_eq!(best.trial.id, 4);
        assert_eq!(best.outcome.objective, want[7].outcome.objective);
        assert_eq!(best.outcome.objective, 0.25 - 20f64.ln() * 0.01);
    }
}

#[test]
fn a_random_search_over_two_and_three_ranks_equals_one_process() {
    for size in [2, 3] {
        let want = check_same_as_single(&random_config(), size);
        assert_eq!(want.len(), 13);
    }
}

#[test]
fn halving_over_two_and_three_ranks_equals_one_process() {
    for size in [2, 3] {
        let want = check_same_as_single(&halving_config(), size);
        let per_rung: Vec<usize> = (0..4).map(|k| want.iter().filter(|r| r.trial.rung == k).count()).collect();
        assert_eq!(per_rung, [27, 9, 3, 1]);
    }
}

/// A single-process run cut after `cut` trials, resumed over `size` ranks, ends as
/// the uninterrupted single-process run, reporting the first `cut` as resumed.
fn check_resume_over_ranks(config: &SearchConfig, cut: usize, size: usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (whole, part) = (dir.path().join("whole"), dir.path().join("part"));
    let full = single(config, &whole, None);
    let want = full.result.unwrap();
    assert!(single(config, &part, Some(cut)).result.is_err());
    assert_eq!(read_trials(&part.join("trials.csv")).unwrap().len(), cut);
    let seen = parallel(config, &part, size, &[]);
    for (r, rank) in seen.iter().enumerate() {
        assert_eq!(key(rank.result.as_ref().unwrap()), key(&want), "rank {r}");
    }
    let resumed = seen[0].events.iter().filter(|e| e.2 == Event::Resumed).count();
    assert_eq!(resumed, cut);
    // Past the resumed records, the same events as the uninterrupted run.
    assert_eq!(seen[0].events[cut..], full.events[cut..]);
    let trained: usize = seen.iter().map(|s| s.calls.len()).sum();
    assert_eq!(trained, full.calls.len() - cut);
    assert_eq!(rows_without_seconds(&part), rows_without_seconds(&whole));
    assert_eq!(best_files(&part), best_files(&whole));
    assert_folder(&part);
}

#[test]
fn a_cut_search_resumes_over_several_ranks_to_the_same_result() {
    check_resume_over_ranks(&grid_config(), 5, 2);
    check_resume_over_ranks(&random_config(), 4, 3);
    // Cut in the second rung (27 configurations in the first).
    check_resume_over_ranks(&halving_config(), 31, 2);
    check_resume_over_ranks(&halving_config(), 31, 3);
}

/// Losses (val_loss, minimised) by trial: 2.25, 2.25, 0.25, 0.01 and, for trial 5,
/// `last` (trial 4 is never trained: its rank fails first).
fn failing_grid(last: f64) -> SearchConfig {
    let s = space(&format!(
        r#"{{"learning_rate": [1e-1, 1e-4, 1e-2, {}, 1e-5, {}], "batch_size": [32]}}"#,
        10f64.powf(-2.4),
        last
    ));
    SearchConfig::new(s, Strategy::Grid)
}

/// Rank 0 of 2 fails on its third trial (trial 4, the first of the third chunk):
/// every rank ends with an error after that chunk, trials.csv keeps the records of
/// the two chunks before (trials 0..4) and best/ the best of them (trial 3, sent by
/// rank 1 after the second chunk), and a rerun over 3 ranks ends as the
/// uninterrupted single-process run.
fn check_failure(config: &SearchConfig) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (kept, best) = (4, 3);
    let dir = tempfile::tempdir().unwrap();
    let (whole, cut, copy) = (dir.path().join("whole"), dir.path().join("cut"), dir.path().join("copy"));
    let full = single(config, &whole, None);
    let want = full.result.unwrap();
    let seen = parallel(config, &cut, 2, &[Some(2), None]);
    match &seen[0].result {
        Err(TrainError::Config(m)) => assert_eq!(m, "interrupted"),
        other => panic!("rank 0: {other:?}"),
    }
    match &seen[1].result {
        Err(TrainError::Parallel(m)) => {
            assert_eq!(m, "trial 4 (rung 0) failed on rank 0: invalid configuration: interrupted")
        }
        other => panic!("rank 1: {other:?}"),
    }
    // Rank 1 trained its trial of the failed chunk: it knows of the failure only at
    // the chunk's end.
    assert_eq!(seen[0].calls, [(0, 0), (2, 0)]);
    assert_eq!(seen[1].calls, [(1, 0), (3, 0), (5, 0)]);
    let written = read_trials(&cut.join("trials.csv")).unwrap();
    assert_eq!(key(&written), key(&want[..kept]));
    assert_eq!(seen[0].events, full.events[..kept]);
    let model = std::fs::read_to_string(cut.join("best/model.txt")).unwrap();
    assert!(model.starts_with(&format!("{best} 0 ")), "{model}");
    assert_folder(&cut);

    // Resumed over 3 ranks, and (from a copy) in one process: the same as uninterrupted.
    std::fs::create_dir_all(copy.join("best")).unwrap();
    for name in ["search.json", "trials.csv", "best/model.txt", "best/weights.bin"] {
        std::fs::copy(cut.join(name), copy.join(name)).unwrap();
    }
    let again = parallel(config, &cut, 3, &[]);
    let alone = single(config, &copy, None);
    assert_eq!(key(again[0].result.as_ref().unwrap()), key(&want));
    assert_eq!(key(again[2].result.as_ref().unwrap()), key(&want));
    assert_eq!(key(&alone.result.unwrap()), key(&want));
    assert_eq!(again[0].events, alone.events);
    assert_eq!(again[0].events.iter().filter(|e| e.2 == Event::Resumed).count(), kept);
    assert_eq!(rows_without_seconds(&cut), rows_without_seconds(&whole));
    assert_eq!(best_files(&cut), best_files(&whole));
    assert_eq!(best_files(&copy), best_files(&whole));
}

#[test]
fn a_failed_trial_ends_every_rank_and_keeps_the_records_before_it() {
    // Trial 5 (rank 1, in the failed chunk) is worse than trial 3.
    check_failure(&failing_grid(1e-1));
}

#[test]
fn a_better_trial_in_the_failed_chunk_after_the_failure_is_not_recorded() {
    // Trial 5 (rank 1, lr 10^-2.5, the optimum) follows the failed trial 4 in its
    // chunk: neither it nor its model is kept, and trial 3 stays the best.
    check_failure(&failing_grid(10f64.powf(-2.5)));
}

/// A one-round search (grid or random) over `size` ranks whose rank `rank` fails on
/// its trial of chunk `chunk`: every rank stops after that chunk, and the output
/// folder holds what one process cut just before the failed trial holds, the
/// records of every chunk before it (and of the failed chunk's trials before it)
/// with their best model; a rerun over 2 ranks ends as the uninterrupted run.
fn check_failure_mid_round(config: &SearchConfig, size: usize, rank: usize, chunk: usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (whole, cut, part) = (dir.path().join("whole"), dir.path().join("cut"), dir.path().join("part"));
    let full = single(config, &whole, None);
    let want = full.result.unwrap();
    let failed = chunk * size + rank;
    assert!(failed > 0 && failed < want.len() && want.iter().all(|r| r.trial.rung == 0));
    let mut fail = vec![None; size];
    fail[rank] = Some(chunk);
    let seen = parallel(config, &cut, size, &fail);
    let id = want[failed].trial.id;
    for (r, s) in seen.iter().enumerate() {
        match (&s.result, r == rank) {
            (Err(TrainError::Config(m)), true) => assert_eq!(m, "interrupted"),
            (Err(TrainError::Parallel(m)), false) => {
                assert_eq!(m, &format!("trial {id} (rung 0) failed on rank {rank}: invalid configuration: interrupted"))
            }
            other => panic!("rank {r}: {other:?}"),
        }
        // Nothing past the failed chunk was trained; in it, all but the failed trial.
        let end = ((chunk + 1) * size).min(want.len());
        let share: Vec<(usize, usize)> =
            (r..end).step_by(size).filter(|&i| i != failed).map(|i| (want[i].trial.id, want[i].trial.rung)).collect();
        assert_eq!(s.calls, share, "rank {r}");
    }
    let written = read_trials(&cut.join("trials.csv")).unwrap();
    assert_eq!(key(&written), key(&want[..failed]));
    assert_eq!(seen[0].events, full.events[..failed]);
    // One process killed before the failed trial left the same folder.
    let alone = single(config, &part, Some(failed));
    assert_eq!(key(&read_trials(&part.join("trials.csv")).unwrap()), key(&want[..failed]));
    assert!(alone.result.is_err());
    assert_eq!(rows_without_seconds(&cut), rows_without_seconds(&part));
    assert_eq!(best_files(&cut), best_files(&part));
    assert_folder(&cut);
    let again = parallel(config, &cut, 2, &[]);
    assert_eq!(key(again[1].result.as_ref().unwrap()), key(&want));
    assert_eq!(again[0].events.iter().filter(|e| e.2 == Event::Resumed).count(), failed);
    assert_eq!(rows_without_seconds(&cut), rows_without_seconds(&whole));
    assert_eq!(best_files(&cut), best_files(&whole));
}

#[test]
fn a_failure_mid_round_keeps_the_chunks_before_it() {
    // Random, 13 trials over 3 ranks: rank 2 fails on trial 8 (chunk 2); trials 0..8
    // are kept, and ranks 0 and 1 train nothing past trials 6 and 7.
    check_failure_mid_round(&random_config(), 3, 2, 2);
    // The last chunk holds one trial (12), on rank 0; ranks 1 and 2 have none.
    check_failure_mid_round(&random_config(), 3, 0, 4);
    // Grid over 2 ranks, rank 1 failing in the first chunk: trial 0 alone is kept.
    check_failure_mid_round(&grid_config(), 2, 1, 0);
    // Grid over 3 ranks, rank 1 failing in chunk 2 (trial 7): trials 0..7 are kept.
    check_failure_mid_round(&grid_config(), 3, 1, 2);
}

#[test]
fn ranks_with_different_settings_stop_before_any_training() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let a = random_config();
    let b = SearchConfig { seed: 4, ..random_config() };
    let seen: Vec<nn_train::Result<Vec<TrialRecord>>> = std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::new(2)
            .into_iter()
            .map(|g| {
                let (config, out) = (if g.rank() == 0 { &a } else { &b }, &out);
                s.spawn(move || search_parallel(config, out, &mut FakeRunner::new(None), &mut |_, _| {}, &g))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &seen {
        match r {
            Err(TrainError::Parallel(m)) => assert_eq!(m, "rank 1 does not have rank 0's search settings"),
            other => panic!("{other:?}"),
        }
    }
    assert!(!out.exists());
}

#[test]
fn a_different_search_in_the_folder_stops_every_rank() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    single(&grid_config(), &out, None).result.unwrap();
    let seen = parallel(&random_config(), &out, 2, &[]);
    match &seen[0].result {
        Err(TrainError::Config(m)) => assert!(m.contains("holds a different search"), "{m}"),
        other => panic!("{other:?}"),
    }
    match &seen[1].result {
        Err(TrainError::Parallel(m)) => {
            assert!(m.starts_with("rank 0: invalid configuration: ") && m.contains("different search"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert!(seen.iter().all(|s| s.calls.is_empty()));
}

#[test]
fn a_best_swap_cut_short_is_undone_at_the_next_start() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let first = parallel(&grid_config(), &out, 2, &[]);
    let want = best_files(&out);
    // Killed between the swap's renames: best/ moved to best.old/, best.new/ written
    // for a trial not yet recorded.
    std::fs::rename(out.join("best"), out.join("best.old")).unwrap();
    std::fs::create_dir(out.join("best.new")).unwrap();
    std::fs::write(out.join("best.new/model.txt"), "unrecorded").unwrap();
    // Every trial is recorded, so the rerun trains none and keeps the recorded best.
    let again = parallel(&grid_config(), &out, 2, &[]);
    assert!(again.iter().all(|s| s.calls.is_empty()));
    assert_eq!(key(again[1].result.as_ref().unwrap()), key(first[1].result.as_ref().unwrap()));
    assert_eq!(best_files(&out), want);
    assert_folder(&out);
    // Killed after them: the stale best.old/ goes, best/ stays.
    std::fs::create_dir(out.join("best.old")).unwrap();
    std::fs::write(out.join("best.old/model.txt"), "replaced").unwrap();
    single(&grid_config(), &out, None).result.unwrap();
    assert_eq!(best_files(&out), want);
    assert_folder(&out);
}
