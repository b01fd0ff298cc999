//! Splitting interactions into a training and a test part.
//!
//! Three ways ([`Split`]), written on the command line as `random`, `random:0.1`,
//! `leave-last-out`, `leave-last-out:2`, `time`, `time:0.1`:
//!
//! - **Random** (`random:f`, default `f = 0.2`): a seeded shuffle of all
//!   interactions; the first `round(n·f)` of the permutation are the test part. It
//!   estimates how well a model fills in missing ratings of users and items it knows
//!   (the MovieLens reference points, RMSE 1.056 for the training mean, use it). It
//!   lets the model train on a user's later ratings and test on earlier ones.
//! - **Leave-last-out** (`leave-last-out:k`, default `k = 1`): per user, the `k`
//!   latest interactions (by timestamp, ties broken by position in the input: the
//!   later one is later) are the test part; users with `k` or fewer interactions keep
//!   them all in training. The usual protocol for top-N ranking (HR@K, NDCG@K): predict
//!   each user's next items from their past.
//! - **Time cut** (`time:f`, default `f = 0.2`): one global cut; the test part is the
//!   latest about `f` of the interactions. The cut timestamp is the one of the
//!   `(n − round(n·f) + 1)`-th interaction in time order, and every interaction at or
//!   after it is a test interaction, so every training timestamp is strictly before
//!   every test timestamp: no future leaks into training, as when a deployed model
//!   is trained on yesterday and serves today. Users and items first seen after the
//!   cut are cold in the test part.
//!
//! Leave-last-out and the time cut need timestamps ([`Interaction::timestamp`]).
//! Both parts keep the input order, so a split is a pair of subsequences of the
//! input, and the same input, split and seed give the same parts on every platform.
//!
//! # Randomness
//! The random split draws from ChaCha8 (`rand_chacha`) seeded with `seed` through
//! `seed_from_u64`, and shuffles with a Fisher–Yates of our own (each index drawn
//! without bias by Lemire's multiply-and-reject), so the split depends only on
//! `(n, f, seed)`, not on the `rand` version.

use std::fmt;
use std::str::FromStr;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::Interaction;
use crate::error::{RecError, Result};

/// How to split interactions into training and test (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Split {
    /// A seeded random `test_fraction` of the interactions is the test part.
    Random {
        /// The fraction of interactions in the test part, in `(0, 1)`.
        test_fraction: f64,
    },
    /// Per user, the `per_user` latest interactions are the test part.
    LeaveLastOut {
        /// How many interactions per user are held out, at least 1.
        per_user: usize,
    },
    /// The latest `test_fraction` of interactions (by timestamp) is the test part.
    TimeCut {
        /// The target fraction of interactions in the test part, in `(0, 1)`; ties at
        /// the cut all go to the test part, so it may be larger.
        test_fraction: f64,
    },
}

const ACCEPTED: &str = "random, random:F, leave-last-out, leave-last-out:K, time, time:F \
                        (F a fraction between 0 and 1, exclusive; K a whole number at least 1)";

impl Split {
    /// Checks the parameters: fractions in `(0, 1)`, `per_user >= 1`.
    ///
    /// # Errors
    /// [`RecError::Config`] naming the bad value.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Split::Random { test_fraction: f } | Split::TimeCut { test_fraction: f } => {
                if !(f > 0.0 && f < 1.0) {
                    return Err(RecError::Config(format!(
                        "the test fraction must be between 0 and 1 (exclusive), got {f}"
                    )));
                }
            }
            Split::LeaveLastOut { per_user } => {
                if per_user == 0 {
                    return Err(RecError::Config(
                        "leave-last-out:0 holds nothing out: at least one interaction per user must be held out".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl FromStr for Split {
    type Err = RecError;

    /// `random` (test fraction 0.2), `random:0.1`, `leave-last-out` (1 per user),
    /// `leave-last-out:2`, `time` (0.2), `time:0.1`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: String| RecError::Config(format!("split \"{s}\": {why}; accepted: {ACCEPTED}"));
        let (name, arg) = match s.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (s, None),
        };
        let fraction = |arg: Option<&str>| -> Result<f64> {
            match arg {
                None => Ok(0.2),
                Some(a) => a.parse::<f64>().map_err(|_| bad(format!("\"{a}\" is not a number"))),
            }
        };
        let split = match name {
            "random" => Split::Random { test_fraction: fraction(arg)? },
            "time" => Split::TimeCut { test_fraction: fraction(arg)? },
            "leave-last-out" => Split::LeaveLastOut {
                per_user: match arg {
                    None => 1,
                    Some(a) => a.parse::<usize>().map_err(|_| bad(format!("\"{a}\" is not a whole number")))?,
                },
            },
            _ => return Err(bad(format!("unknown split \"{name}\""))),
        };
        split.validate().map_err(|e| match e {
            RecError::Config(why) => bad(why),
            other => other,
        })?;
        Ok(split)
    }
}

impl fmt::Display for Split {
    /// The syntax [`FromStr`] reads, with the parameter always written:
    /// `random:0.2`, `leave-last-out:1`, `time:0.2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Split::Random { test_fraction } => write!(f, "random:{test_fraction}"),
            Split::LeaveLastOut { per_user } => write!(f, "leave-last-out:{per_user}"),
            Split::TimeCut { test_fraction } => write!(f, "time:{test_fraction}"),
        }
    }
}

/// The two parts of a split, each in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitData {
    /// The interactions to train on.
    pub train: Vec<Interaction>,
    /// The held-out interactions.
    pub test: Vec<Interaction>,
}

/// Splits `interactions` (see the [module docs](self)). `seed` drives the random
/// split; the others do not use it.
///
/// # Errors
/// [`RecError::Config`]: a fraction outside `(0, 1)` or `per_user` 0; an empty
/// training or test part (too few interactions for the fraction, every timestamp
/// equal for a time cut, no user with more than `per_user` interactions); a missing
/// timestamp for leave-last-out or a time cut.
pub fn split(interactions: &[Interaction], how: Split, seed: u64) -> Result<SplitData> {
    how.validate()?;
    let n = interactions.len();
    let mut is_test = vec![false; n];
    match how {
        Split::Random { test_fraction } => {
            let test = (n as f64 * test_fraction).round() as usize;
            if test == 0 || test >= n {
                return Err(empty_part(how, n, if test == 0 { "test" } else { "training" }));
            }
            let mut order: Vec<usize> = (0..n).collect();
            shuffle(&mut order, &mut ChaCha8Rng::seed_from_u64(seed));
            for &i in &order[..test] {
                is_test[i] = true;
            }
        }
        Split::LeaveLastOut { per_user } => {
            let times = timestamps(interactions, how)?;
            let num_users = interactions.iter().map(|x| x.user + 1).max().unwrap_or(0);
            let mut by_user: Vec<Vec<usize>> = vec![Vec::new(); num_users];
            for (i, x) in interactions.iter().enumerate() {
                by_user[x.user].push(i);
            }
            for positions in &mut by_user {
                if positions.len() <= per_user {
                    continue;
                }
                // Positions are ascending, so a stable sort by time breaks ties by position.
                positions.sort_by_key(|&i| times[i]);
                for &i in &positions[positions.len() - per_user..] {
                    is_test[i] = true;
                }
            }
            if !is_test.contains(&true) {
                return Err(RecError::Config(format!(
                    "split {how}: no user has more than {per_user} interaction(s), so the test part would be empty"
                )));
            }
        }
        Split::TimeCut { test_fraction } => {
            let times = timestamps(interactions, how)?;
            let test = (n as f64 * test_fraction).round() as usize;
            if test == 0 {
                return Err(empty_part(how, n, "test"));
            }
            let mut sorted = times.clone();
            sorted.sort_unstable();
            let cut = sorted[n - test.min(n)];
            if cut == sorted[0] {
                return Err(RecError::Config(format!(
                    "split {how}: every interaction is at or after the cut timestamp {cut} (the earliest), so the \
                     training part would be empty"
                )));
            }
            for (flag, &t) in is_test.iter_mut().zip(&times) {
                *flag = t >= cut;
            }
        }
    }
    let mut out = SplitData { train: Vec::new(), test: Vec::new() };
    for (x, &t) in interactions.iter().zip(&is_test) {
        if t {
            out.test.push(*x);
        } else {
            out.train.push(*x);
        }
    }
    Ok(out)
}

fn empty_part(how: Split, n: usize, part: &str) -> RecError {
    RecError::Config(format!("split {how} of {n} interaction(s): the {part} part would be empty"))
}

/// Every interaction's timestamp, or an error naming the first without one.
fn timestamps(interactions: &[Interaction], how: Split) -> Result<Vec<i64>> {
    interactions
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.timestamp.ok_or_else(|| {
                RecError::Config(format!(
                    "split {how} needs timestamps, but interaction {i} has none (read the ratings with a timestamp \
                     column, or use a random split)"
                ))
            })
        })
        .collect()
}

/// A uniform integer in `0..bound` (`bound > 0`), unbiased (Lemire, "Fast Random
/// Integer Generation in an Interval", 2019).
fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(bound);
    if (m as u64) < bound {
        let threshold = bound.wrapping_neg() % bound;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(bound);
        }
    }
    (m >> 64) as u64
}

/// Durstenfeld's Fisher–Yates: for `i` from `len − 1` down to 1, swap `i` with a
/// uniform `j` in `0..=i`.
fn shuffle(items: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}
