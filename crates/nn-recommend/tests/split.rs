//! Train/test splits: syntax, exact hand-worked cases, and the invariants (counts,
//! disjointness, input order, no future in training, seeds) on generated data.

use std::collections::HashSet;

use nn_recommend::data::Interaction;
use nn_recommend::split::{split, Split, SplitData};
use nn_recommend::RecError;

/// Interaction `i` of user `user` at time `t`; the item is the position `i`, so every
/// interaction is recognisable after a split.
fn ix(i: usize, user: usize, t: i64) -> Interaction {
    Interaction { user, item: i, value: 1.0, timestamp: Some(t) }
}

/// `n` interactions of 17 users at pseudo-random times in 0..50 (many ties), from a
/// fixed linear congruential sequence.
fn generated(n: usize) -> Vec<Interaction> {
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        state >> 33
    };
    (0..n).map(|i| ix(i, (next() % 17) as usize, (next() % 50) as i64)).collect()
}

fn positions(part: &[Interaction]) -> Vec<usize> {
    part.iter().map(|x| x.item).collect()
}

/// Both parts are increasing subsequences of the input that together cover it once.
fn assert_partition(input: &[Interaction], s: &SplitData) {
    assert_eq!(s.train.len() + s.test.len(), input.len());
    for part in [&s.train, &s.test] {
        let p = positions(part);
        assert!(p.windows(2).all(|w| w[0] < w[1]), "input order kept");
        assert!(part.iter().all(|x| *x == input[x.item]), "interactions unchanged");
    }
    let train: HashSet<usize> = positions(&s.train).into_iter().collect();
    assert!(s.test.iter().all(|x| !train.contains(&x.item)), "disjoint");
}

fn config_err(r: Result<SplitData, RecError>) -> String {
    match r {
        Err(RecError::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn parse_and_display() {
    let cases = [
        ("random", Split::Random { test_fraction: 0.2 }, "random:0.2"),
        ("random:0.1", Split::Random { test_fraction: 0.1 }, "random:0.1"),
        ("leave-last-out", Split::LeaveLastOut { per_user: 1 }, "leave-last-out:1"),
        ("leave-last-out:2", Split::LeaveLastOut { per_user: 2 }, "leave-last-out:2"),
        ("time", Split::TimeCut { test_fraction: 0.2 }, "time:0.2"),
        ("time:0.1", Split::TimeCut { test_fraction: 0.1 }, "time:0.1"),
    ];
    for (text, split, shown) in cases {
        assert_eq!(text.parse::<Split>().unwrap(), split, "{text}");
        assert_eq!(split.to_string(), shown);
        assert_eq!(shown.parse::<Split>().unwrap(), split);
    }
    let json = serde_json::to_string(&Split::TimeCut { test_fraction: 0.25 }).unwrap();
    assert_eq!(serde_json::from_str::<Split>(&json).unwrap(), Split::TimeCut { test_fraction: 0.25 });
    for bad in [
        "shuffle",
        "random:",
        "random:x",
        "random:0",
        "random:1",
        "time:-0.1",
        "time:nan",
        "leave-last-out:0",
        "leave-last-out:1.5",
        "",
    ] {
        let e = bad.parse::<Split>().unwrap_err().to_string();
        assert!(e.contains(&format!("split \"{bad}\"")), "{e}");
        assert!(e.contains("accepted: random, random:F, leave-last-out, leave-last-out:K, time, time:F"), "{e}");
    }
}

#[test]
fn random_counts_seeds_and_errors() {
    let data = generated(100);
    let a = split(&data, Split::Random { test_fraction: 0.2 }, 7).unwrap();
    assert_eq!((a.train.len(), a.test.len()), (80, 20));
    assert_partition(&data, &a);
    assert_eq!(split(&data, Split::Random { test_fraction: 0.2 }, 7).unwrap(), a);
    let b = split(&data, Split::Random { test_fraction: 0.2 }, 8).unwrap();
    assert_eq!(b.test.len(), 20);
    assert_ne!(positions(&a.test), positions(&b.test));
    // round(n·f), half away from zero: 2.5 → 3.
    let five = &data[..5];
    assert_eq!(split(five, Split::Random { test_fraction: 0.5 }, 0).unwrap().test.len(), 3);
    // Timestamps are not needed.
    let untimed: Vec<Interaction> = data.iter().map(|x| Interaction { timestamp: None, ..*x }).collect();
    assert_eq!(split(&untimed, Split::Random { test_fraction: 0.3 }, 1).unwrap().test.len(), 30);

    let two = &data[..2];
    assert!(config_err(split(two, Split::Random { test_fraction: 0.2 }, 0)).contains("the test part would be empty"));
    assert!(
        config_err(split(two, Split::Random { test_fraction: 0.9 }, 0)).contains("the training part would be empty")
    );
    assert!(config_err(split(&[], Split::Random { test_fraction: 0.5 }, 0)).contains("would be empty"));
    // A split built in code is validated too.
    assert!(config_err(split(&data, Split::Random { test_fraction: 1.0 }, 0)).contains("between 0 and 1"));
}

#[test]
fn leave_last_out_hand_worked() {
    // User 0 at times 5, 1, 9, 9 (positions 0, 2, 3, 5); user 1 once; user 2 twice.
    let data = [ix(0, 0, 5), ix(1, 1, 3), ix(2, 0, 1), ix(3, 0, 9), ix(4, 2, 2), ix(5, 0, 9), ix(6, 2, 8)];
    let s = split(&data, Split::LeaveLastOut { per_user: 1 }, 0).unwrap();
    // The tie at 9 goes to the later position; user 1 (one interaction) stays in training.
    assert_eq!(positions(&s.test), [5, 6]);
    assert_eq!(positions(&s.train), [0, 1, 2, 3, 4]);
    let s = split(&data, Split::LeaveLastOut { per_user: 2 }, 0).unwrap();
    assert_eq!(positions(&s.test), [3, 5]);
    // The seed plays no part.
    assert_eq!(split(&data, Split::LeaveLastOut { per_user: 2 }, 99).unwrap(), s);

    let m = config_err(split(&data, Split::LeaveLastOut { per_user: 4 }, 0));
    assert!(m.contains("no user has more than 4"), "{m}");
    let mut untimed = data.to_vec();
    untimed[4].timestamp = None;
    let m = config_err(split(&untimed, Split::LeaveLastOut { per_user: 1 }, 0));
    assert!(m.contains("needs timestamps") && m.contains("interaction 4"), "{m}");
}

#[test]
fn leave_last_out_holds_exactly_each_users_latest() {
    let data = generated(500);
    for k in [1, 3] {
        let s = split(&data, Split::LeaveLastOut { per_user: k }, 0).unwrap();
        assert_partition(&data, &s);
        for user in 0..17 {
            let all: Vec<&Interaction> = data.iter().filter(|x| x.user == user).collect();
            let test: Vec<&Interaction> = s.test.iter().filter(|x| x.user == user).collect();
            if all.len() <= k {
                assert!(test.is_empty());
                continue;
            }
            assert_eq!(test.len(), k, "user {user}");
            // Every training interaction of the user is before every test one in
            // (timestamp, position) order.
            let key = |x: &Interaction| (x.timestamp, x.item);
            let first_test = test.iter().map(|x| key(x)).min().unwrap();
            assert!(s.train.iter().filter(|x| x.user == user).all(|x| key(x) < first_test), "user {user}");
        }
    }
}

#[test]
fn time_cut_hand_worked() {
    // Times in shuffled order; sorted: 1 2 3 4 5 5 6 7 8 9.
    let times = [5, 9, 1, 7, 3, 5, 8, 2, 6, 4];
    let data: Vec<Interaction> = times.iter().enumerate().map(|(i, &t)| ix(i, i % 3, t)).collect();
    // 30 % of 10 = 3: the cut is the 8th time, 7, and 7, 8, 9 are the test part.
    let s = split(&data, Split::TimeCut { test_fraction: 0.3 }, 0).unwrap();
    assert_eq!(positions(&s.test), [1, 3, 6]);
    assert_eq!(s.train.len(), 7);
    // Half: the cut is the 6th time, 5, which two interactions share: both go to test.
    let s = split(&data, Split::TimeCut { test_fraction: 0.5 }, 0).unwrap();
    assert_eq!(positions(&s.test), [0, 1, 3, 5, 6, 8]);
    assert_eq!(positions(&s.train), [2, 4, 7, 9]);

    let same: Vec<Interaction> = (0..10).map(|i| ix(i, 0, 42)).collect();
    let m = config_err(split(&same, Split::TimeCut { test_fraction: 0.2 }, 0));
    assert!(m.contains("training part would be empty"), "{m}");
    let m = config_err(split(&data, Split::TimeCut { test_fraction: 0.01 }, 0));
    assert!(m.contains("test part would be empty"), "{m}");
    let mut untimed = data.clone();
    untimed[0].timestamp = None;
    assert!(config_err(split(&untimed, Split::TimeCut { test_fraction: 0.2 }, 0)).contains("needs timestamps"));
}

#[test]
fn time_cut_has_no_future_in_training() {
    let data = generated(1000);
    for f in [0.1, 0.2, 0.5] {
        let s = split(&data, Split::TimeCut { test_fraction: f }, 0).unwrap();
        assert_partition(&data, &s);
        let last_train = s.train.iter().filter_map(|x| x.timestamp).max().unwrap();
        let first_test = s.test.iter().filter_map(|x| x.timestamp).min().unwrap();
        assert!(last_train < first_test, "f {f}: train up to {last_train}, test from {first_test}");
        // At least the target count, and only ties at the cut above it.
        let target = (1000.0 * f).round() as usize;
        let at_cut = data.iter().filter(|x| x.timestamp == Some(first_test)).count();
        assert!(s.test.len() >= target && s.test.len() < target + at_cut, "f {f}: {} test", s.test.len());
    }
}

#[test]
#[ignore = "needs MovieLens: set NN_DATA_DIR"]
fn movielens_splits() {
    let dir = std::path::PathBuf::from(std::env::var_os("NN_DATA_DIR").expect("NN_DATA_DIR is not set"));
    let path = dir.join("movielens/ratings.csv.gz");
    let r = nn_recommend::data::read_ratings(&path, &Default::default()).unwrap();
    let x = &r.interactions;
    // Every one of the 671 users rated at least 20 movies: one test rating each.
    let s = split(x, Split::LeaveLastOut { per_user: 1 }, 0).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (100_004 - 671, 671));
    let s = split(x, Split::TimeCut { test_fraction: 0.2 }, 0).unwrap();
    let last_train = s.train.iter().filter_map(|x| x.timestamp).max().unwrap();
    let first_test = s.test.iter().filter_map(|x| x.timestamp).min().unwrap();
    assert!(last_train < first_test);
    let at_cut = x.iter().filter(|x| x.timestamp == Some(first_test)).count();
    assert!(s.test.len() >= 20_001 && s.test.len() < 20_001 + at_cut, "{}", s.test.len());
    println!("time:0.2 on MovieLens: {} train, {} test, cut at {first_test}", s.train.len(), s.test.len());
}
