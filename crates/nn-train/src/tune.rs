//! Hyperparameter search: grid search, seeded random search and successive halving
//! over a [`SearchSpace`], with a resumable record of every trial (`trials.csv`).
//!
//! The search owns the plan (which configurations, with which epoch budgets, in which
//! order) and the bookkeeping (records, ranking, resume, the best model's folder); a
//! [`TrialRunner`] owns the training of one configuration. nn-cli's `tune` command is
//! one runner; tests use a cheap deterministic one.
//!
//! # Strategies
//! - **Grid**: every combination of the listed values, in a fixed order (the
//!   [`SearchSpace`] keys in declaration order, the last key varying fastest).
//! - **Random** (Bergstra & Bengio 2012, "Random Search for Hyper-Parameter
//!   Optimization"): trial `i` draws each key independently from a ChaCha8 stream
//!   seeded with `(seed, i)`, so a trial's parameters depend on the seed and its index
//!   only. Lists are sampled uniformly; ranges uniformly, or log-uniformly with
//!   `"scale": "log"` (`exp(U(ln min, ln max))`).
//! - **Successive halving** (Jamieson & Talwalkar 2016; the inner loop of Hyperband,
//!   Li et al. 2017, "Hyperband: A Novel Bandit-Based Approach to Hyperparameter
//!   Optimization", Algorithm 1): `n` random configurations are trained for `r`
//!   epochs; rung `i` keeps the best `⌊n / ηⁱ⌋` and trains them for `r·ηⁱ` epochs (at
//!   most the space's epoch cap), until one configuration or the cap is left. A
//!   promoted configuration is retrained from scratch with the larger budget; training
//!   is deterministic, so its first epochs repeat the previous rung's exactly.
//!
//! # Resume
//! Every finished trial is appended to `OUT/trials.csv` (rewritten atomically) before
//! the next starts; `OUT/search.json` holds the search's settings. A rerun with the
//! same settings and `OUT` reads the records back, skips the trials they cover and
//! reaches the same records, ranking and best model as an uninterrupted run (seconds
//! aside), because the plan and every trial are deterministic.
//!
//! # Several ranks
//! [`search_parallel`] spreads the trials over the ranks of a
//! [`Collective`] (`mpirun -np N nn-cli tune …`) and gives the same records,
//! `trials.csv` (seconds aside) and `best/` as [`search`] with the same settings:
//! - The plan is cut into rounds whose trials need no result of each other: all of a
//!   grid or random search, or one halving rung. Every rank computes it alike. A
//!   round's trials that no earlier record covers are trained in consecutive chunks
//!   of `N`, in plan order: chunk `k` is those numbered `k·N .. (k+1)·N` (from 0),
//!   and its `j`-th trial goes to rank `j`. Each rank trains its trial alone, with
//!   its own threads; a chunk ends when its slowest trial does (the price of
//!   recording every `N` trials).
//! - After each chunk rank 0 gathers the outcomes and records them in plan order as
//!   one process would (the same new-best decisions, `report` calls and
//!   `trials.csv`, rewritten once per chunk), then sends the new records to every
//!   rank. Every rank so holds every record before the next chunk, and computes the
//!   next rung's survivors itself once a rung's last chunk is recorded: successive
//!   halving synchronises at each rung.
//! - A runner keeps only its last model, so a rank whose trial beats every record
//!   before the chunk (the only way it can be a new best) saves its model in a
//!   private temporary folder. When the chunk found a new best, its rank sends the
//!   folder's files to rank 0, which writes them to `best.new/` and swaps it in
//!   (`best/` → `best.old/`, `best.new/` → `best/`, `best.old/` removed; a swap a
//!   killed run cut short is finished or undone at the next start). The model is
//!   written before the records, as with one rank.
//! - Rank 0 alone reads and writes `OUT`; an earlier run's records are read by rank
//!   0 and sent to every rank. Results are written after every chunk, so a job
//!   killed mid-search loses at most the chunk in progress (up to `N` trials), which
//!   a resumed run retrains; a trial that fails ends the search on every rank after
//!   its chunk, the records before it (in plan order) kept.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::parallel::{Collective, Single};

/// The file of trial records in the output folder.
pub const TRIALS_FILE: &str = "trials.csv";
/// The file of the search's settings in the output folder.
pub const SEARCH_FILE: &str = "search.json";
/// The folder the best trial's model is saved in, inside the output folder.
pub const BEST_DIR: &str = "best";
/// The most configurations a grid may have (a guard against a mistyped space).
pub const MAX_GRID: usize = 1_000_000;

/// How a numeric range is sampled by random search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Uniform on `[min, max]`.
    #[default]
    Linear,
    /// Uniform in `ln x` on `[ln min, ln max]` (log-uniform); needs `min > 0`.
    Log,
}

/// A continuous range `[min, max]` (JSON `{"min": 1e-4, "max": 1e-1, "scale": "log"}`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// The lower end (inclusive).
    pub min: f64,
    /// The upper end (inclusive), at least `min`.
    pub max: f64,
    /// How random search samples it (default linear).
    #[serde(default)]
    pub scale: Scale,
}

/// The values a real-valued hyperparameter may take: a list (JSON array) or a range
/// (JSON object). Grid search needs lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, expecting = "a list of numbers, or a range {\"min\": X, \"max\": Y, \"scale\": \"linear\"|\"log\"}")]
pub enum FloatDomain {
    /// Explicit values, tried in this order by grid search.
    List(Vec<f64>),
    /// A continuous range, for random search and halving.
    Range(Range),
}

impl FloatDomain {
    fn check(&self, key: &str, ok: impl Fn(f64) -> bool, what: &str) -> std::result::Result<(), String> {
        match self {
            FloatDomain::List(v) => {
                if v.is_empty() {
                    return Err(format!("`{key}` is an empty list"));
                }
                if let Some(x) = v.iter().find(|&&x| !(x.is_finite() && ok(x))) {
                    return Err(format!("`{key}`: {x} is out of range ({what})"));
                }
            }
            FloatDomain::Range(r) => {
                for (end, x) in [("min", r.min), ("max", r.max)] {
                    if !(x.is_finite() && ok(x)) {
                        return Err(format!("`{key}`: {end} {x} is out of range ({what})"));
                    }
                }
                if r.min > r.max {
                    return Err(format!("`{key}`: min {} > max {}", r.min, r.max));
                }
                if r.scale == Scale::Log && r.min <= 0.0 {
                    return Err(format!("`{key}`: a log-scale range needs min > 0, got {}", r.min));
                }
            }
        }
        Ok(())
    }

    fn sample(&self, rng: &mut nn_tensor::random::Rng) -> f64 {
        match self {
            FloatDomain::List(v) => v[rng.random_range(0..v.len())],
            FloatDomain::Range(r) => {
                let u: f64 = rng.random();
                match r.scale {
                    Scale::Linear => (r.min + u * (r.max - r.min)).clamp(r.min, r.max),
                    Scale::Log => {
                        let (lo, hi) = (r.min.ln(), r.max.ln());
                        (lo + u * (hi - lo)).exp().clamp(r.min, r.max)
                    }
                }
            }
        }
    }
}

/// Whether the objective is minimised or maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

/// What a trial is scored by: the best value over its epochs of a validation metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// `val_loss` or `val_accuracy`.
    pub metric: String,
    /// `min` or `max`; default `max` for accuracies, `min` otherwise (Keras's `auto`).
    #[serde(default)]
    pub mode: Option<Direction>,
}

impl Default for Objective {
    fn default() -> Self {
        Objective { metric: "val_loss".into(), mode: None }
    }
}

impl Objective {
    /// The metrics an objective may name.
    pub const METRICS: [&'static str; 2] = ["val_loss", "val_accuracy"];

    /// The direction, resolving the default from the metric name.
    pub fn direction(&self) -> Direction {
        self.mode.unwrap_or(if self.metric.contains("acc") { Direction::Max } else { Direction::Min })
    }

    /// Whether objective value `a` is strictly better than `b`. NaN (a diverged or
    /// failed trial) is never better, and anything finite beats it.
    pub fn better(&self, a: f64, b: f64) -> bool {
        match (a.is_nan(), b.is_nan()) {
            (true, _) => false,
            (false, true) => true,
            _ => match self.direction() {
                Direction::Min => a < b,
                Direction::Max => a > b,
            },
        }
    }

    /// The 0-based index of the best value of `series` (the first of ties), or `None`
    /// when every value is NaN or the series is empty.
    pub fn best_index(&self, series: &[f64]) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, &v) in series.iter().enumerate() {
            if v.is_nan() {
                continue;
            }
            if best.is_none_or(|b| self.better(v, series[b])) {
                best = Some(i);
            }
        }
        best
    }
}

fn default_epochs() -> usize {
    20
}

fn default_patience() -> usize {
    3
}

/// The hyperparameters to search and the objective (the search-space file, JSON).
///
/// Every hyperparameter key is optional; an absent key keeps the value of
/// [`TrialParams::default`] (`nn-cli fit`'s defaults). At least one must be given.
///
/// ```json
/// {
///   "learning_rate": {"min": 1e-4, "max": 1e-1, "scale": "log"},
///   "batch_size": [32, 64, 128],
///   "optimizer": ["adam", "momentum"],
///   "l2": [0, 1e-4],
///   "dropout": {"min": 0.0, "max": 0.5},
///   "hidden": [64, 128, 256],
///   "epochs": 30,
///   "patience": 3,
///   "objective": {"metric": "val_accuracy", "mode": "max"}
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpace {
    /// The learning rate η (> 0): a list or a range (usually `"scale": "log"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<FloatDomain>,
    /// Samples per batch (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<Vec<usize>>,
    /// Optimizer names (the runner says which it knows, see [`SearchSpace::validate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<Vec<String>>,
    /// The L2 penalty λ of `λ·Σw²` on kernels (≥ 0): a list or a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2: Option<FloatDomain>,
    /// The dropout rate after the hidden Dense layer, in `[0, 1)`: a list or a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<FloatDomain>,
    /// Units of the preset's hidden Dense layer (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Vec<usize>>,
    /// Filters of the `cnn` preset's convolution (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<usize>>,
    /// The most epochs a trial trains (early stopping may end it sooner); ≥ 1, default 20.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Early-stopping patience inside each trial, in epochs; ≥ 1, default 3.
    #[serde(default = "default_patience")]
    pub patience: usize,
    /// What trials are ranked by (default `val_loss`, minimised).
    #[serde(default)]
    pub objective: Objective,
}

impl SearchSpace {
    /// The hyperparameter keys, in grid order (the last varies fastest).
    pub const KEYS: [&'static str; 7] =
        ["learning_rate", "batch_size", "optimizer", "l2", "dropout", "hidden", "filters"];

    /// Parses and validates a JSON search space.
    ///
    /// # Errors
    /// [`TrainError::Config`] with serde's message (unknown key, wrong type, with line
    /// and column) or the first failed check of [`SearchSpace::validate`].
    pub fn from_json(text: &str, optimizers: &[&str]) -> Result<SearchSpace> {
        let space: SearchSpace = serde_json::from_str(text).map_err(|e| TrainError::Config(e.to_string()))?;
        space.validate(optimizers).map_err(TrainError::Config)?;
        Ok(space)
    }

    /// Reads, parses and validates the search-space file at `path`.
    ///
    /// # Errors
    /// [`TrainError::Io`] when the file cannot be read; [`TrainError::Config`] with the
    /// path and the problem as in [`SearchSpace::from_json`].
    pub fn read(path: &Path, optimizers: &[&str]) -> Result<SearchSpace> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        SearchSpace::from_json(&text, optimizers).map_err(|e| match e {
            TrainError::Config(m) => TrainError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Checks the space: at least one hyperparameter; no empty list; positive
    /// learning rates, L2 ≥ 0, dropout in `[0, 1)`; ranges with `min ≤ max` (and
    /// `min > 0` on a log scale); batch sizes, hidden units, filters, `epochs` and
    /// `patience` at least 1; optimizers among `optimizers` (unless that is empty);
    /// an objective metric in [`Objective::METRICS`].
    ///
    /// # Errors
    /// The first problem found, as one line naming the key.
    pub fn validate(&self, optimizers: &[&str]) -> std::result::Result<(), String> {
        let given = self.num_keys();
        if given == 0 {
            return Err(format!("the search space is empty: give at least one of {}", Self::KEYS.join(", ")));
        }
        if let Some(d) = &self.learning_rate {
            d.check("learning_rate", |x| x > 0.0, "must be > 0")?;
        }
        if let Some(d) = &self.l2 {
            d.check("l2", |x| x >= 0.0, "must be >= 0")?;
        }
        if let Some(d) = &self.dropout {
            d.check("dropout", |x| (0.0..1.0).contains(&x), "must be in [0, 1)")?;
        }
        for (key, list) in [("batch_size", &self.batch_size), ("hidden", &self.hidden), ("filters", &self.filters)] {
            if let Some(v) = list {
                if v.is_empty() {
                    return Err(format!("`{key}` is an empty list"));
                }
                if v.contains(&0) {
                    return Err(format!("`{key}`: values must be at least 1, got 0"));
                }
            }
        }
        if let Some(v) = &self.optimizer {
            if v.is_empty() {
                return Err("`optimizer` is an empty list".into());
            }
            if let Some(bad) = v.iter().find(|o| !optimizers.is_empty() && !optimizers.contains(&o.as_str())) {
                return Err(format!(
                    "`optimizer`: unknown optimizer `{bad}`, expected one of {}",
                    optimizers.join(", ")
                ));
            }
        }
        if self.epochs == 0 {
            return Err("`epochs` (the per-trial budget) must be at least 1".into());
        }
        if self.patience == 0 {
            return Err("`patience` must be at least 1".into());
        }
        if !Objective::METRICS.contains(&self.objective.metric.as_str()) {
            return Err(format!(
                "`objective.metric`: unknown metric `{}`, expected {}",
                self.objective.metric,
                Objective::METRICS.join(" or ")
            ));
        }
        Ok(())
    }

    /// How many hyperparameter keys the space gives.
    pub fn num_keys(&self) -> usize {
        [
            self.learning_rate.is_some(),
            self.batch_size.is_some(),
            self.optimizer.is_some(),
            self.l2.is_some(),
            self.dropout.is_some(),
            self.hidden.is_some(),
            self.filters.is_some(),
        ]
        .iter()
        .filter(|&&b| b)
        .count()
    }

    /// Every combination of the listed values, in grid order: keys as in
    /// [`SearchSpace::KEYS`], the last varying fastest (row-major, like nested loops).
    /// The count is the product of the list lengths.
    ///
    /// # Errors
    /// [`TrainError::Config`] when a key is a range (grid search needs lists) or the
    /// grid has more than [`MAX_GRID`] configurations.
    pub fn grid(&self) -> Result<Vec<TrialParams>> {
        let float_list = |key: &str, d: &Option<FloatDomain>| -> Result<Option<Vec<f64>>> {
            match d {
                None => Ok(None),
                Some(FloatDomain::List(v)) => Ok(Some(v.clone())),
                Some(FloatDomain::Range(_)) => Err(TrainError::Config(format!(
                    "grid search needs lists: `{key}` is a range (give a list, or use random search or halving)"
                ))),
            }
        };
        let lr = float_list("learning_rate", &self.learning_rate)?;
        let l2 = float_list("l2", &self.l2)?;
        let dropout = float_list("dropout", &self.dropout)?;
        let lens = [
            lr.as_ref().map_or(1, Vec::len),
            self.batch_size.as_ref().map_or(1, Vec::len),
            self.optimizer.as_ref().map_or(1, Vec::len),
            l2.as_ref().map_or(1, Vec::len),
            dropout.as_ref().map_or(1, Vec::len),
            self.hidden.as_ref().map_or(1, Vec::len),
            self.filters.as_ref().map_or(1, Vec::len),
        ];
        let total = lens
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
            .filter(|&n| n <= MAX_GRID)
            .ok_or_else(|| TrainError::Config(format!("the grid has more than {MAX_GRID} configurations")))?;
        let base = TrialParams::default();
        let mut out = Vec::with_capacity(total);
        for flat in 0..total {
            // Mixed-radix digits of `flat`, the last key the least significant.
            let mut idx = [0usize; 7];
            let mut rest = flat;
            for k in (0..7).rev() {
                idx[k] = rest % lens[k];
                rest /= lens[k];
            }
            out.push(TrialParams {
                learning_rate: lr.as_ref().map_or(base.learning_rate, |v| v[idx[0]]),
                batch_size: self.batch_size.as_ref().map_or(base.batch_size, |v| v[idx[1]]),
                optimizer: self.optimizer.as_ref().map_or(base.optimizer.clone(), |v| v[idx[2]].clone()),
                l2: l2.as_ref().map_or(base.l2, |v| v[idx[3]]),
                dropout: dropout.as_ref().map_or(base.dropout, |v| v[idx[4]]),
                hidden: self.hidden.as_ref().map_or(base.hidden, |v| v[idx[5]]),
                filters: self.filters.as_ref().map_or(base.filters, |v| v[idx[6]]),
            });
        }
        Ok(out)
    }

    /// Random search's configuration `index` for `seed`: each given key drawn in
    /// [`SearchSpace::KEYS`] order from ChaCha8 seeded with `seed`, stream `index`
    /// (so it depends on nothing else). Lists: uniform choice; ranges: uniform or
    /// log-uniform as their scale says. Call after [`SearchSpace::validate`].
    pub fn sample(&self, seed: u64, index: usize) -> TrialParams {
        let mut rng = nn_tensor::random::seeded_rng(seed);
        rng.set_stream(index as u64);
        let base = TrialParams::default();
        let learning_rate = self.learning_rate.as_ref().map_or(base.learning_rate, |d| d.sample(&mut rng));
        let batch_size = self.batch_size.as_ref().map_or(base.batch_size, |v| v[rng.random_range(0..v.len())]);
        let optimizer =
            self.optimizer.as_ref().map_or(base.optimizer.clone(), |v| v[rng.random_range(0..v.len())].clone());
        let l2 = self.l2.as_ref().map_or(base.l2, |d| d.sample(&mut rng));
        let dropout = self.dropout.as_ref().map_or(base.dropout, |d| d.sample(&mut rng));
        let hidden = self.hidden.as_ref().map_or(base.hidden, |v| v[rng.random_range(0..v.len())]);
        let filters = self.filters.as_ref().map_or(base.filters, |v| v[rng.random_range(0..v.len())]);
        TrialParams { learning_rate, batch_size, optimizer, l2, dropout, hidden, filters }
    }
}

/// One configuration's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialParams {
    /// Learning rate η.
    pub learning_rate: f64,
    /// Samples per batch.
    pub batch_size: usize,
    /// Optimizer name.
    pub optimizer: String,
    /// L2 penalty λ.
    pub l2: f64,
    /// Dropout rate after the hidden Dense layer.
    pub dropout: f64,
    /// Hidden Dense units of the preset.
    pub hidden: usize,
    /// Convolution filters of the `cnn` preset.
    pub filters: usize,
}

impl Default for TrialParams {
    /// `nn-cli fit`'s defaults: learning rate 1e-3, batch 32, adam, no L2, no dropout,
    /// 128 hidden units, 32 filters (the seed CNN's).
    fn default() -> Self {
        TrialParams {
            learning_rate: 1e-3,
            batch_size: 32,
            optimizer: "adam".into(),
            l2: 0.0,
            dropout: 0.0,
            hidden: 128,
            filters: 32,
        }
    }
}

impl fmt::Display for TrialParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lr {:.3e}, batch {}, {}, l2 {}, dropout {:.3}, hidden {}",
            self.learning_rate, self.batch_size, self.optimizer, self.l2, self.dropout, self.hidden
        )
    }
}

/// One unit of work: a configuration trained for a number of epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// The configuration's 0-based index (the same at every halving rung).
    pub id: usize,
    /// The halving rung, 0-based (always 0 for grid and random search).
    pub rung: usize,
    /// The epoch budget (early stopping may end the trial sooner).
    pub epochs: usize,
    /// The hyperparameters.
    pub params: TrialParams,
}

/// What training one trial gave.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialOutcome {
    /// The 1-based epoch with the best objective (0 when none was finite).
    pub best_epoch: usize,
    /// Epochs trained (fewer than the budget when early stopping ended the trial).
    pub epochs_run: usize,
    /// The objective's best value over the epochs; NaN for a diverged trial.
    pub objective: f64,
    /// `val_loss` at the best epoch (NaN when unknown).
    pub val_loss: f64,
    /// `val_accuracy` at the best epoch (NaN for regression or when unknown).
    pub val_accuracy: f64,
    /// Wall-clock seconds of the trial.
    pub seconds: f64,
}

/// A finished trial, as one row of `trials.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    /// The trial.
    pub trial: Trial,
    /// Its result.
    pub outcome: TrialOutcome,
}

/// Trains trials for [`search`] (for [`search_parallel`], each rank has its own).
pub trait TrialRunner {
    /// Trains `trial.params` for at most `trial.epochs` epochs with early stopping on
    /// `objective` and returns the figures of its best epoch. The runner keeps the
    /// trained model (best epoch's weights) until the next call, for
    /// [`TrialRunner::save_model`].
    ///
    /// # Errors
    /// Whatever training reports; the search stops and the records so far stay.
    fn run_trial(&mut self, trial: &Trial, objective: &Objective, patience: usize) -> Result<TrialOutcome>;

    /// Saves the model of the last [`TrialRunner::run_trial`] into `dir`.
    ///
    /// # Errors
    /// I/O errors with the path.
    fn save_model(&mut self, dir: &Path) -> Result<()>;
}

/// The search strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Every combination of the listed values.
    Grid,
    /// Independent seeded draws.
    Random,
    /// Successive halving over random configurations.
    Halving,
}

/// One rung of successive halving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    /// Configurations trained at this rung.
    pub configs: usize,
    /// Their epoch budget.
    pub epochs: usize,
}

/// The rungs of successive halving (Li et al. 2017, Algorithm 1, inner loop) for `n`
/// configurations, a first budget of `min_epochs`, reduction factor `eta` and a cap of
/// `max_epochs`: rung `i` has `⌊n / ηⁱ⌋` configurations and `min(r·ηⁱ, max_epochs)`
/// epochs; the rungs end after the first with one configuration or with the capped
/// budget.
///
/// # Errors
/// [`TrainError::Config`] when `n`, `min_epochs` or `max_epochs` is 0, `eta < 2`, or
/// `min_epochs > max_epochs`.
pub fn halving_rungs(n: usize, min_epochs: usize, max_epochs: usize, eta: usize) -> Result<Vec<Rung>> {
    if n == 0 {
        return Err(TrainError::Config("successive halving needs at least 1 configuration".into()));
    }
    if eta < 2 {
        return Err(TrainError::Config(format!("the halving factor eta must be at least 2, got {eta}")));
    }
    if min_epochs == 0 || min_epochs > max_epochs {
        return Err(TrainError::Config(format!(
            "the first rung's budget must be in [1, epochs = {max_epochs}], got {min_epochs}"
        )));
    }
    let mut rungs = Vec::new();
    let (mut configs, mut epochs) = (n, min_epochs);
    loop {
        rungs.push(Rung { configs, epochs });
        if configs <= 1 || epochs >= max_epochs {
            break;
        }
        configs /= eta;
        if configs == 0 {
            break;
        }
        epochs = epochs.saturating_mul(eta).min(max_epochs);
    }
    Ok(rungs)
}

/// The ids of the best `keep` records by `objective` (ties: the earlier record),
/// in rank order.
pub fn top_ids(records: &[&TrialRecord], objective: &Objective, keep: usize) -> Vec<usize> {
    rank(records, objective).into_iter().take(keep).map(|r| r.trial.id).collect()
}

/// `records` best first by `objective`; ties and NaNs keep their order, NaNs last.
pub fn rank<'a>(records: &[&'a TrialRecord], objective: &Objective) -> Vec<&'a TrialRecord> {
    let mut out: Vec<&TrialRecord> = records.to_vec();
    out.sort_by(|a, b| {
        let (x, y) = (a.outcome.objective, b.outcome.objective);
        if objective.better(x, y) {
            std::cmp::Ordering::Less
        } else if objective.better(y, x) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    out
}

/// Everything that decides a search's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// The space.
    pub space: SearchSpace,
    /// The strategy.
    pub strategy: Strategy,
    /// Grid: at most this many configurations (default all); random: the number of
    /// trials (default 10); halving: the configurations of the first rung (default 27).
    pub trials: Option<usize>,
    /// Seed of random sampling (and, by the runner, of training).
    pub seed: u64,
    /// Halving's reduction factor η (default 3).
    pub eta: usize,
    /// Halving's first-rung budget in epochs (default 1).
    pub min_epochs: usize,
    /// What else decides the results (data, model, splits), as the runner describes
    /// it; saved in `search.json` so a rerun with other settings is refused.
    pub context: serde_json::Value,
}

impl SearchConfig {
    /// `space` with `strategy`, no trial limit, seed 42, η 3, first rung 1 epoch.
    pub fn new(space: SearchSpace, strategy: Strategy) -> Self {
        SearchConfig {
            space,
            strategy,
            trials: None,
            seed: 42,
            eta: 3,
            min_epochs: 1,
            context: serde_json::Value::Null,
        }
    }

    /// Checks the space and the budget before any training.
    ///
    /// # Errors
    /// [`TrainError::Config`] for a space that fails [`SearchSpace::validate`] (with
    /// no optimizer list), `trials` of 0, grid search over a range, or halving
    /// settings [`halving_rungs`] rejects.
    pub fn validate(&self) -> Result<()> {
        self.space.validate(&[]).map_err(TrainError::Config)?;
        if self.trials == Some(0) {
            return Err(TrainError::Config("the number of trials must be at least 1".into()));
        }
        match self.strategy {
            Strategy::Grid => {
                self.space.grid()?;
            }
            Strategy::Random => {}
            Strategy::Halving => {
                halving_rungs(self.trials.unwrap_or(27), self.min_epochs, self.space.epochs, self.eta)?;
            }
        }
        Ok(())
    }
}

fn config_err(path: &Path, row: usize, m: impl fmt::Display) -> TrainError {
    TrainError::io(path, format!("row {row}: {m}"))
}

const HEADER: [&str; 16] = [
    "trial",
    "rung",
    "epochs",
    "learning_rate",
    "batch_size",
    "optimizer",
    "l2",
    "dropout",
    "hidden",
    "filters",
    "best_epoch",
    "epochs_run",
    "objective",
    "val_loss",
    "val_accuracy",
    "seconds",
];

/// Writes `records` as `trials.csv` (header: trial, rung, epochs,
/// the parameters, best_epoch, epochs_run, objective, val_loss, val_accuracy,
/// seconds), atomically. Reals use Rust's shortest round-trip form, so
/// [`read_trials`] gives back the same values bit for bit.
///
/// # Errors
/// I/O errors with the path.
pub fn write_trials(path: &Path, records: &[TrialRecord]) -> Result<()> {
    nn_tensor::io::write_atomic(path, |w| write_trials_to(w, records)).map_err(|e| TrainError::io(path, e))
}

/// The text of [`write_trials`], written to `file`.
fn write_trials_to(file: &mut dyn Write, records: &[TrialRecord]) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(file);
    w.write_record(HEADER)?;
    for r in records {
        let (t, p, o) = (&r.trial, &r.trial.params, &r.outcome);
        w.write_record([
            t.id.to_string(),
            t.rung.to_string(),
            t.epochs.to_string(),
            p.learning_rate.to_string(),
            p.batch_size.to_string(),
            p.optimizer.clone(),
            p.l2.to_string(),
            p.dropout.to_string(),
            p.hidden.to_string(),
            p.filters.to_string(),
            o.best_epoch.to_string(),
            o.epochs_run.to_string(),
            o.objective.to_string(),
            o.val_loss.to_string(),
            o.val_accuracy.to_string(),
            format!("{:.3}", o.seconds),
        ])?;
    }
    w.flush()
}

/// `records` as the bytes of a `trials.csv` (how ranks send records to each other).
fn trials_bytes(records: &[TrialRecord]) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    write_trials_to(&mut buf, records).map_err(|e| TrainError::Parallel(format!("encoding trial records: {e}")))?;
    Ok(buf)
}

/// Reads the records of `trials.csv` written by [`write_trials`].
///
/// # Errors
/// [`TrainError::Io`] with the path and row for an unreadable file, a different
/// header, or a field that does not parse.
pub fn read_trials(path: &Path) -> Result<Vec<TrialRecord>> {
    let reader = csv::Reader::from_path(path).map_err(|e| TrainError::io(path, e))?;
    read_trials_from(reader, path)
}

/// The records of `bytes` written by [`trials_bytes`]; errors name `from` as the path.
fn trials_from_bytes(bytes: &[u8], from: &str) -> Result<Vec<TrialRecord>> {
    read_trials_from(csv::Reader::from_reader(bytes), Path::new(from))
}

/// [`read_trials`] from any reader; errors name `path`.
fn read_trials_from<R: std::io::Read>(mut reader: csv::Reader<R>, path: &Path) -> Result<Vec<TrialRecord>> {
    let header = reader.headers().map_err(|e| TrainError::io(path, e))?.clone();
    if header.iter().ne(HEADER.iter().copied()) {
        return Err(TrainError::io(path, format!("not a trials file: expected the header {}", HEADER.join(","))));
    }
    let mut out = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let row = i + 2;
        let rec = rec.map_err(|e| config_err(path, row, e))?;
        let field = |j: usize| rec.get(j).unwrap_or("");
        let int = |j: usize| -> Result<usize> {
            field(j).parse().map_err(|_| config_err(path, row, format!("{}: `{}` is not a count", HEADER[j], field(j))))
        };
        let real = |j: usize| -> Result<f64> {
            field(j)
                .parse()
                .map_err(|_| config_err(path, row, format!("{}: `{}` is not a number", HEADER[j], field(j))))
        };
        out.push(TrialRecord {
            trial: Trial {
                id: int(0)?,
                rung: int(1)?,
                epochs: int(2)?,
                params: TrialParams {
                    learning_rate: real(3)?,
                    batch_size: int(4)?,
                    optimizer: field(5).to_string(),
                    l2: real(6)?,
                    dropout: real(7)?,
                    hidden: int(8)?,
                    filters: int(9)?,
                },
            },
            outcome: TrialOutcome {
                best_epoch: int(10)?,
                epochs_run: int(11)?,
                objective: real(12)?,
                val_loss: real(13)?,
                val_accuracy: real(14)?,
                seconds: real(15)?,
            },
        });
    }
    Ok(out)
}

/// What [`search`] reports as it goes (and rank 0 of [`search_parallel`], after each
/// chunk of trials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A trial was trained (`new_best`: it beat every earlier record and its model
    /// was saved).
    Trained {
        /// Whether it is the best so far.
        new_best: bool,
    },
    /// A trial's record was read back from `trials.csv` (resume) instead of trained.
    Resumed,
}

/// The trials of a search, as rounds: a round's trials depend on the records of the
/// rounds before it only, never on each other's. Grid and random search are one
/// round; successive halving has one per rung.
struct Plan<'a> {
    config: &'a SearchConfig,
    /// Grid search's configurations (empty for the other strategies).
    grid: Vec<TrialParams>,
    /// Halving's rungs (empty for the other strategies).
    rungs: Vec<Rung>,
}

impl<'a> Plan<'a> {
    /// The plan of a validated `config`.
    fn new(config: &'a SearchConfig) -> Result<Self> {
        let grid = if config.strategy == Strategy::Grid { config.space.grid()? } else { Vec::new() };
        let rungs = if config.strategy == Strategy::Halving {
            halving_rungs(config.trials.unwrap_or(27), config.min_epochs, config.space.epochs, config.eta)?
        } else {
            Vec::new()
        };
        Ok(Plan { config, grid, rungs })
    }

    fn rounds(&self) -> usize {
        if self.config.strategy == Strategy::Halving {
            self.rungs.len()
        } else {
            1
        }
    }

    /// Round `k`'s trials in run order; `records` are those of the rounds before.
    fn round(&self, k: usize, records: &[TrialRecord]) -> Vec<Trial> {
        let (config, space) = (self.config, &self.config.space);
        match config.strategy {
            Strategy::Grid => {
                let n = config.trials.unwrap_or(self.grid.len()).min(self.grid.len());
                let grid = self.grid.iter().take(n).cloned().enumerate();
                grid.map(|(id, params)| Trial { id, rung: 0, epochs: space.epochs, params }).collect()
            }
            Strategy::Random => (0..config.trials.unwrap_or(10))
                .map(|id| Trial { id, rung: 0, epochs: space.epochs, params: space.sample(config.seed, id) })
                .collect(),
            Strategy::Halving => {
                let rung = self.rungs[k];
                let ids: Vec<usize> = if k == 0 {
                    (0..rung.configs).collect()
                } else {
                    let last: Vec<&TrialRecord> = records.iter().filter(|r| r.trial.rung == k - 1).collect();
                    let mut ids = top_ids(&last, &space.objective, rung.configs);
                    // The survivors run in id order (a fixed order, whatever the ranking).
                    ids.sort_unstable();
                    ids
                };
                ids.into_iter()
                    .map(|id| Trial { id, rung: k, epochs: rung.epochs, params: space.sample(config.seed, id) })
                    .collect()
            }
        }
    }
}

/// The state of a search in its output folder.
struct Book<'a> {
    dir: &'a Path,
    objective: &'a Objective,
    records: Vec<TrialRecord>,
    /// Records from an earlier run not yet matched to a planned trial.
    previous: Vec<TrialRecord>,
}

impl Book<'_> {
    fn best(&self) -> Option<&TrialRecord> {
        let refs: Vec<&TrialRecord> = self.records.iter().collect();
        rank(&refs, self.objective).first().copied()
    }

    /// Whether an outcome of objective value `x` beats every record so far (and so
    /// is the new best, its model saved).
    fn is_new_best(&self, x: f64) -> bool {
        self.best().is_none_or(|b| self.objective.better(x, b.outcome.objective))
    }

    /// The record an earlier run left for `trial` (the same id and rung), taken out
    /// of `previous`.
    ///
    /// # Errors
    /// [`TrainError::Config`] when that record's trial has other settings.
    fn take_previous(&mut self, trial: &Trial) -> Result<Option<TrialRecord>> {
        let Some(pos) = self.previous.iter().position(|r| r.trial.id == trial.id && r.trial.rung == trial.rung) else {
            return Ok(None);
        };
        let old = self.previous.remove(pos);
        if old.trial != *trial {
            return Err(TrainError::Config(format!(
                "{}: trial {} (rung {}) was run with other settings than this search plans; use a new output folder",
                self.dir.join(TRIALS_FILE).display(),
                trial.id,
                trial.rung
            )));
        }
        Ok(Some(old))
    }

    fn run(
        &mut self,
        trial: Trial,
        patience: usize,
        runner: &mut dyn TrialRunner,
        report: &mut dyn FnMut(&TrialRecord, Event),
    ) -> Result<()> {
        if let Some(old) = self.take_previous(&trial)? {
            self.records.push(old);
            report(self.records.last().expect("just pushed"), Event::Resumed);
            return Ok(());
        }
        let outcome = runner.run_trial(&trial, self.objective, patience)?;
        let new_best = self.is_new_best(outcome.objective);
        if new_best {
            // The model first, then the record: a crash in between reruns the trial,
            // which (deterministic) saves the same model again.
            runner.save_model(&self.dir.join(BEST_DIR))?;
        }
        self.records.push(TrialRecord { trial, outcome });
        write_trials(&self.dir.join(TRIALS_FILE), &self.records)?;
        report(self.records.last().expect("just pushed"), Event::Trained { new_best });
        Ok(())
    }
}

/// Runs the search `config` with `runner`, keeping its records in `out`
/// (`search.json`, `trials.csv`, `best/`), and returns every record in run order.
///
/// When `out` holds an earlier run of the same search, its finished trials are read
/// back instead of trained (reported as [`Event::Resumed`]); the result is the same
/// as an uninterrupted run's. `report` is called after every trial. This is
/// [`search_parallel`] on one rank ([`Single`]).
///
/// # Errors
/// [`TrainError::Config`] for an invalid config (before any training) or when `out`
/// holds a different search; I/O errors with the path; the runner's errors.
pub fn search(
    config: &SearchConfig,
    out: &Path,
    runner: &mut dyn TrialRunner,
    report: &mut dyn FnMut(&TrialRecord, Event),
) -> Result<Vec<TrialRecord>> {
    search_parallel(config, out, runner, report, &Single)
}

/// [`search`] with its trials spread over the ranks of `group` (module docs,
/// "Several ranks"): every rank calls it with the same `config` and a runner of its
/// own, and gets every record in run order; rank 0 keeps `out` (`search.json`,
/// `trials.csv`, `best/`) as [`search`] would, with the same records (seconds
/// aside), `report` calls and best model. With one rank it is [`search`] exactly.
///
/// With several ranks:
/// - rank 0 alone reads and writes `out` and calls `report`; the other ranks ignore
///   both;
/// - the plan is cut into rounds (all of a grid or random search, or one halving
///   rung), and a round's trials that no earlier record covers into consecutive
///   chunks of `size` in plan order: the `j`-th trial (from 0) of a chunk is trained
///   by rank `j`, so the `i`-th of the round by rank `i mod size`, in chunk `i / size`;
/// - after each chunk rank 0 records the outcomes in plan order, saves the new best
///   model that one of the ranks sends, rewrites `trials.csv` and calls `report`
///   for each of the chunk's records in plan order; then every rank gets the new
///   records, from which each computes the next rung's survivors at the end of a
///   rung. Records travel as `trials.csv` bytes, so their seconds are rounded to
///   milliseconds, as the file holds them; every other field is exact.
///
/// So `trials.csv` and `best/` are brought up to date every `size` trials, and a job
/// killed mid-search loses at most the chunk in progress.
///
/// # Errors
/// As [`search`], on the rank where the error happened. With several ranks, also
/// [`TrainError::Parallel`]: when the ranks' configs differ (`"rank R does not have
/// rank 0's search settings"`, before any training); on every other rank
/// when a trial failed (`"trial I (rung K) failed on rank R: …"`) or rank 0 could
/// not read or write `out` (`"rank 0: …"`); when the transport fails. A failed
/// trial ends the search after its chunk, with the records before it (in plan
/// order) kept in `trials.csv`.
pub fn search_parallel(
    config: &SearchConfig,
    out: &Path,
    runner: &mut dyn TrialRunner,
    report: &mut dyn FnMut(&TrialRecord, Event),
    group: &dyn Collective,
) -> Result<Vec<TrialRecord>> {
    config.validate()?;
    let plan = Plan::new(config)?;
    let patience = config.space.patience;
    let objective = &config.space.objective;
    if group.size() == 1 {
        let previous = open_out(config, out)?;
        let mut book = Book { dir: out, objective, records: Vec::new(), previous };
        for k in 0..plan.rounds() {
            for trial in plan.round(k, &book.records) {
                book.run(trial, patience, runner, report)?;
            }
        }
        return Ok(book.records);
    }
    let settings = serde_json::to_vec(config).map_err(|e| TrainError::Parallel(format!("the search settings: {e}")))?;
    group.check_same("search settings", &settings)?;
    let previous = share_previous(config, out, group)?;
    let mut book = Book { dir: out, objective, records: Vec::new(), previous };
    let mut worker = Worker { patience, runner, report, group, scratch: Scratch::new(group.rank()) };
    for k in 0..plan.rounds() {
        let trials = plan.round(k, &book.records);
        run_round(&mut book, trials, &mut worker)?;
    }
    Ok(book.records)
}

/// Prepares the output folder `out` for `config`: creates it, finishes or undoes a
/// `best/` swap a killed run cut short, checks an earlier run's `search.json`
/// against `config`, writes `search.json`, and returns the earlier run's records.
fn open_out(config: &SearchConfig, out: &Path) -> Result<Vec<TrialRecord>> {
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    recover_best_swap(out)?;
    let settings = serde_json::to_value(config).map_err(|e| TrainError::io(&out.join(SEARCH_FILE), e))?;
    let search_path = out.join(SEARCH_FILE);
    let trials_path = out.join(TRIALS_FILE);
    let mut previous = Vec::new();
    if search_path.exists() {
        let text = std::fs::read_to_string(&search_path).map_err(|e| TrainError::io(&search_path, e))?;
        let mut old: serde_json::Value = serde_json::from_str(&text).map_err(|e| TrainError::io(&search_path, e))?;
        // Through text, as `old` went: the comparison does not hang on float parsing.
        let mut now: serde_json::Value = serde_json::to_string(&settings)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| settings.clone());
        if config.strategy != Strategy::Halving {
            // Grid and random plans are prefixes of longer ones: more trials extend a run.
            for v in [&mut old, &mut now] {
                if let Some(m) = v.as_object_mut() {
                    m.remove("trials");
                }
            }
        }
        if old != now {
            return Err(TrainError::Config(format!(
                "{} holds a different search (its {SEARCH_FILE} differs from these settings); use a new output folder or the same settings",
                out.display()
            )));
        }
        if trials_path.exists() {
            previous = read_trials(&trials_path)?;
        }
    }
    let json = serde_json::to_vec_pretty(&settings).map_err(|e| TrainError::io(&search_path, e))?;
    nn_tensor::io::write_atomic(&search_path, |w| w.write_all(&json)).map_err(|e| TrainError::io(&search_path, e))?;
    Ok(previous)
}

/// The folder a new best model is written to before it replaces `best/`.
const BEST_NEW_DIR: &str = "best.new";
/// The folder `best/` is moved to while the new one replaces it.
const BEST_OLD_DIR: &str = "best.old";

fn remove_dir_if_any(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(TrainError::io(dir, e)),
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| TrainError::io(from, format!("renaming to {}: {e}", to.display())))
}

/// Finishes or undoes a swap of `best/` ([`install_best`]) a killed run left in
/// `out`. With `best/` in place, `best.new/` (half written) and `best.old/` (the
/// model replaced) are stale. Without it, the swap stopped between its renames:
/// `best.old/` is the model the records name, so it comes back, and `best.new/` (a
/// trial not yet recorded, retrained on resume) goes. Touches nothing when neither
/// folder exists (every single-rank run).
fn recover_best_swap(out: &Path) -> Result<()> {
    let (best, new, old) = (out.join(BEST_DIR), out.join(BEST_NEW_DIR), out.join(BEST_OLD_DIR));
    if !best.exists() && old.is_dir() {
        rename(&old, &best)?;
    }
    remove_dir_if_any(&new)?;
    remove_dir_if_any(&old)
}

/// Writes the model files `packed` ([`pack_dir`]) as the new `out/best/`: into
/// `best.new/` (each file with `write_atomic`), then `best/` → `best.old/`,
/// `best.new/` → `best/`, and `best.old/` removed.
fn install_best(out: &Path, packed: &[u8]) -> Result<()> {
    let mut files = Vec::new();
    let mut parts = Parts::new(packed, "the best model's files");
    while !parts.is_empty() {
        let name = std::str::from_utf8(parts.next()?)
            .ok()
            .filter(|n| !n.is_empty() && *n != "." && *n != ".." && !n.contains(['/', '\\', '\0']))
            .ok_or_else(|| TrainError::Parallel("the best model's files: a file name that is not plain".into()))?;
        files.push((name, parts.next()?));
    }
    let (best, new, old) = (out.join(BEST_DIR), out.join(BEST_NEW_DIR), out.join(BEST_OLD_DIR));
    remove_dir_if_any(&new)?;
    std::fs::create_dir_all(&new).map_err(|e| TrainError::io(&new, e))?;
    for (name, data) in files {
        let path = new.join(name);
        nn_tensor::io::write_atomic(&path, |w| w.write_all(data)).map_err(|e| TrainError::io(&path, e))?;
    }
    if best.exists() {
        remove_dir_if_any(&old)?;
        rename(&best, &old)?;
    }
    rename(&new, &best)?;
    nn_tensor::io::sync_dir(out).map_err(|e| TrainError::io(out, e))?;
    remove_dir_if_any(&old)
}

/// The regular files of the model folder `dir` as (name, bytes) pairs, by name, each
/// framed by [`put`]: how the rank that trained the best model sends it to rank 0.
///
/// # Errors
/// I/O errors with the path; a sub-folder or other non-file entry.
fn pack_dir(dir: &Path) -> Result<Vec<u8>> {
    let mut entries = std::fs::read_dir(dir)
        .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| TrainError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    let mut buf = Vec::new();
    for entry in entries {
        let path = entry.path();
        if !entry.file_type().map_err(|e| TrainError::io(&path, e))?.is_file() {
            return Err(TrainError::io(&path, "a model folder sent to rank 0 may hold plain files only"));
        }
        let name = entry.file_name().into_string().map_err(|_| TrainError::io(&path, "the name is not UTF-8"))?;
        let data = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
        put(&mut buf, name.as_bytes());
        put(&mut buf, &data);
    }
    Ok(buf)
}

/// Appends `part` to `buf` behind its length (u64, little-endian): the framing of the
/// messages ranks exchange.
fn put(buf: &mut Vec<u8>, part: &[u8]) {
    buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
    buf.extend_from_slice(part);
}

/// Reads back, in order, the parts [`put`] wrote.
struct Parts<'a> {
    rest: &'a [u8],
    /// What the message is, for errors.
    what: &'a str,
}

impl<'a> Parts<'a> {
    fn new(buf: &'a [u8], what: &'a str) -> Self {
        Parts { rest: buf, what }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn next(&mut self) -> Result<&'a [u8]> {
        let malformed = || TrainError::Parallel(format!("{}: a malformed message", self.what));
        let (len, rest) = self.rest.split_first_chunk::<8>().ok_or_else(malformed)?;
        let len = usize::try_from(u64::from_le_bytes(*len)).ok().filter(|&n| n <= rest.len()).ok_or_else(malformed)?;
        let (part, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(part)
    }

    fn u64(&mut self) -> Result<u64> {
        let part = self.next()?;
        part.try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| TrainError::Parallel(format!("{}: a malformed message", self.what)))
    }
}

/// A message that says whether something succeeded: `0` then `payload`, or `1` then
/// the error's text.
fn status(result: std::result::Result<&[u8], &str>) -> Vec<u8> {
    match result {
        Ok(payload) => [&[0u8][..], payload].concat(),
        Err(message) => [&[1u8][..], message.as_bytes()].concat(),
    }
}

/// The payload or the error text of a [`status`] message.
fn read_status<'a>(msg: &'a [u8], what: &str) -> Result<std::result::Result<&'a [u8], String>> {
    match msg.split_first() {
        Some((0, payload)) => Ok(Ok(payload)),
        Some((1, text)) => Ok(Err(String::from_utf8_lossy(text).into_owned())),
        _ => Err(TrainError::Parallel(format!("{what}: a malformed message"))),
    }
}

/// Rank 0 prepares `out` ([`open_out`]) and sends every rank the earlier run's
/// records, or its error.
fn share_previous(config: &SearchConfig, out: &Path, group: &dyn Collective) -> Result<Vec<TrialRecord>> {
    let mut msg = Vec::new();
    let mut mine = None;
    if group.rank() == 0 {
        match open_out(config, out).and_then(|p| trials_bytes(&p)) {
            Ok(bytes) => msg = status(Ok(&bytes)),
            Err(e) => {
                msg = status(Err(&format!("rank 0: {e}")));
                mine = Some(e);
            }
        }
    }
    group.broadcast_bytes(0, &mut msg)?;
    if let Some(e) = mine {
        return Err(e);
    }
    match read_status(&msg, "the earlier records")? {
        Ok(bytes) => trials_from_bytes(bytes, "trials.csv (from rank 0)"),
        Err(m) => Err(TrainError::Parallel(m)),
    }
}

/// A rank's private folder for the models of its own trials: `nn-tune-PID-rRANK-N`
/// in the system's temporary folder (`N` tells apart searches of one process),
/// created when first used and removed when dropped.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(rank: usize) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Scratch { dir: std::env::temp_dir().join(format!("nn-tune-{}-r{rank}-{n}", std::process::id())) }
    }

    /// Saves the runner's last model into a fresh `dir` (inside the scratch folder).
    fn save(&self, runner: &mut dyn TrialRunner, dir: &Path) -> Result<()> {
        remove_dir_if_any(dir)?;
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        runner.save_model(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A round's entry in plan order.
enum Slot {
    /// An earlier run's record.
    Resumed(TrialRecord),
    /// A trial to train: its index in the round's list of trials to train.
    Train(usize),
}

/// What rank 0 made of a chunk's outcomes.
struct Decision {
    /// The event of each record pushed onto the book this chunk, in plan order.
    events: Vec<Event>,
    /// The rank that trained this chunk's new best model, if the chunk found one.
    transfer: Option<usize>,
    /// The first failed trial in plan order, as a message for every rank.
    failed: Option<String>,
}

/// What one rank brings to every round and chunk of a search over several ranks:
/// each trial's patience, its runner, the report callback (called on rank 0 only),
/// the group and the rank's scratch folder.
struct Worker<'a> {
    patience: usize,
    runner: &'a mut dyn TrialRunner,
    report: &'a mut dyn FnMut(&TrialRecord, Event),
    group: &'a dyn Collective,
    scratch: Scratch,
}

/// One round of a search over several ranks (see [`search_parallel`]): the trials
/// that `book`'s earlier records do not cover are trained in chunks of one trial per
/// rank ([`run_chunk`]), each chunk recorded before the next starts, and every rank
/// ends with the same records.
fn run_round(book: &mut Book, trials: Vec<Trial>, worker: &mut Worker) -> Result<()> {
    let size = worker.group.size();
    // The same on every rank: which trials earlier records cover, which to train.
    let mut slots = Vec::with_capacity(trials.len());
    let mut to_run = Vec::new();
    for trial in trials {
        match book.take_previous(&trial)? {
            Some(old) => slots.push(Slot::Resumed(old)),
            None => {
                slots.push(Slot::Train(to_run.len()));
                to_run.push(trial);
            }
        }
    }
    // Chunk `c` trains `to_run[c·size .. (c+1)·size]` and records the slots up to the
    // next chunk's first trial (the last chunk: all that are left). A round with
    // nothing to train is one chunk that records its earlier records.
    let chunks = to_run.len().div_ceil(size).max(1);
    let mut slots = slots.into_iter().peekable();
    for c in 0..chunks {
        let end = ((c + 1) * size).min(to_run.len());
        let mut segment = Vec::new();
        while let Some(slot) = slots.next_if(|s| !matches!(s, Slot::Train(pos) if *pos >= end)) {
            segment.push(slot);
        }
        run_chunk(book, segment, &to_run, c * size, worker)?;
    }
    Ok(())
}

/// One chunk of [`run_round`]: rank `r` trains `to_run[first + r]` (when there is
/// one), rank 0 records the outcomes of `slots` in plan order as [`Book::run`] would
/// and the new best model, writes `trials.csv` and calls `report`, and every rank
/// gets the new records (or the error that ends the search).
fn run_chunk(book: &mut Book, slots: Vec<Slot>, to_run: &[Trial], first: usize, worker: &mut Worker) -> Result<()> {
    let (patience, group, scratch) = (worker.patience, worker.group, &worker.scratch);
    let (runner, report) = (&mut *worker.runner, &mut *worker.report);
    let rank = group.rank();
    // This rank's trial. Its model is kept when it beats every record before the
    // chunk: the only way it can be a new best in plan order.
    let mut mine = Vec::new();
    let mut kept: Option<PathBuf> = None;
    let mut failure: Option<TrainError> = None;
    if let Some(trial) = to_run.get(first + rank) {
        match runner.run_trial(trial, book.objective, patience) {
            Ok(outcome) => {
                if book.is_new_best(outcome.objective) {
                    let dir = scratch.dir.join(format!("trial-{}", first + rank));
                    match scratch.save(runner, &dir) {
                        Ok(()) => kept = Some(dir),
                        Err(e) => failure = Some(e),
                    }
                }
                if failure.is_none() {
                    mine.push(TrialRecord { trial: trial.clone(), outcome });
                }
            }
            Err(e) => failure = Some(e),
        }
    }
    let encoded = trials_bytes(&mine).unwrap_or_else(|e| {
        failure.get_or_insert(e);
        Vec::new()
    });
    let mut msg = Vec::new();
    put(&mut msg, &encoded);
    put(&mut msg, &u64::from(kept.is_some()).to_le_bytes());
    let failure_text = failure.as_ref().map(|e| e.to_string());
    let empty: &[u8] = &[];
    put(&mut msg, &status(failure_text.as_deref().map_or(Ok(empty), Err)));
    let gathered = group.gather_bytes(0, &msg)?;

    // Rank 0 records the outcomes; an error of its own here is sent to all below.
    let start = book.records.len();
    let mut root_error: Option<TrainError> = None;
    let decision = match gathered {
        Some(parts) => match decide(book, slots, to_run, first, &parts) {
            Ok(d) => Some(d),
            Err(e) => {
                root_error = Some(e);
                None
            }
        },
        None => None,
    };

    // The new best model, from the rank that kept it.
    let mut msg = Vec::new();
    if rank == 0 {
        let owner = decision.as_ref().and_then(|d| d.transfer).map_or(0, |o| o as u64 + 1);
        put(&mut msg, &owner.to_le_bytes());
    }
    group.broadcast_bytes(0, &mut msg)?;
    let owner = Parts::new(&msg, "the best model's rank").u64()?;
    if owner > 0 {
        let owner = (owner - 1) as usize;
        let send = if rank == owner {
            match &kept {
                Some(dir) => match pack_dir(dir) {
                    Ok(packed) => status(Ok(&packed)),
                    Err(e) => status(Err(&e.to_string())),
                },
                None => status(Err(&format!("rank {rank} did not keep the model of trial {}", first + rank))),
            }
        } else {
            Vec::new()
        };
        if let Some(got) = group.gather_bytes(0, &send)? {
            if root_error.is_none() {
                let installed = match read_status(&got[owner], "the best model") {
                    Ok(Ok(packed)) => install_best(book.dir, packed),
                    Ok(Err(m)) => Err(TrainError::Parallel(format!("rank {owner} could not send the best model: {m}"))),
                    Err(e) => Err(e),
                };
                root_error = installed.err();
            }
        }
    }
    if let Some(dir) = kept.take() {
        let _ = std::fs::remove_dir_all(dir);
    }

    // Rank 0 writes the records (after their model) and sends the new ones, or the
    // error, to all.
    let mut msg = Vec::new();
    if let Some(d) = decision.as_ref().filter(|_| root_error.is_none()) {
        if d.events.iter().any(|e| matches!(e, Event::Trained { .. })) {
            root_error = write_trials(&book.dir.join(TRIALS_FILE), &book.records).err();
        }
        if root_error.is_none() {
            match (&d.failed, trials_bytes(&book.records[start..])) {
                (Some(m), _) => msg = status(Err(m)),
                (None, Ok(bytes)) => msg = status(Ok(&bytes)),
                (None, Err(e)) => root_error = Some(e),
            }
        }
    }
    if let Some(e) = &root_error {
        msg = status(Err(&format!("rank 0: {e}")));
    }
    group.broadcast_bytes(0, &mut msg)?;
    if let Some(e) = root_error {
        return Err(e);
    }
    if let Some(d) = &decision {
        for (record, &event) in book.records[start..].iter().zip(&d.events) {
            report(record, event);
        }
    }
    match read_status(&msg, "the records from rank 0")? {
        Ok(bytes) => {
            if rank != 0 {
                book.records.extend(trials_from_bytes(bytes, "trials.csv (from rank 0)")?);
            }
            Ok(())
        }
        Err(m) => Err(failure.unwrap_or(TrainError::Parallel(m))),
    }
}

/// Rank 0's share of [`run_chunk`]: reads every rank's outcome (`parts[r]` from rank
/// `r`, of trial `to_run[first + r]`), pushes the records of `slots` onto `book` in
/// plan order as [`Book::run`] would (up to the first failed trial), and finds the
/// rank that keeps the new best model.
fn decide(book: &mut Book, slots: Vec<Slot>, to_run: &[Trial], first: usize, parts: &[Vec<u8>]) -> Result<Decision> {
    let size = parts.len();
    let mut outcomes: Vec<Option<TrialOutcome>> = vec![None; size];
    let mut kept = vec![false; size];
    let mut failed: Option<(usize, String)> = None;
    for (r, part) in parts.iter().enumerate() {
        let what = format!("the trials of rank {r}");
        let mut p = Parts::new(part, &what);
        let records = trials_from_bytes(p.next()?, &what)?;
        kept[r] = p.u64()? != 0;
        let failure = read_status(p.next()?, &what)?;
        let pos = first + r;
        for (i, rec) in records.into_iter().enumerate() {
            if i > 0 || to_run.get(pos) != Some(&rec.trial) {
                return Err(TrainError::Parallel(format!(
                    "rank {r} sent the result of trial {} (rung {}), which it was not given",
                    rec.trial.id, rec.trial.rung
                )));
            }
            outcomes[r] = Some(rec.outcome);
        }
        // Ranks in order: the first failure is the earliest in plan order.
        if let (Err(m), None) = (failure, &failed) {
            let name = to_run.get(pos).map_or(String::new(), |t| format!("trial {} (rung {}) ", t.id, t.rung));
            failed = Some((pos, format!("{name}failed on rank {r}: {m}")));
        }
    }
    let limit = failed.as_ref().map_or(usize::MAX, |(pos, _)| *pos);
    // Each record's event, and the rank that trained the trained ones.
    let mut events: Vec<(Event, usize)> = Vec::new();
    for slot in slots {
        match slot {
            Slot::Resumed(old) => {
                book.records.push(old);
                events.push((Event::Resumed, usize::MAX));
            }
            Slot::Train(pos) => {
                if pos >= limit {
                    break;
                }
                let r = pos.wrapping_sub(first);
                let outcome = outcomes.get_mut(r).and_then(Option::take).ok_or_else(|| {
                    TrainError::Parallel(format!("no rank sent the result of trial {}", to_run[pos].id))
                })?;
                let new_best = book.is_new_best(outcome.objective);
                book.records.push(TrialRecord { trial: to_run[pos].clone(), outcome });
                events.push((Event::Trained { new_best }, r));
            }
        }
    }
    // The last new best is the best overall. It beat every record before the chunk,
    // so its rank kept its model.
    let transfer = events.iter().rev().find(|(e, _)| *e == Event::Trained { new_best: true }).map(|&(_, r)| r);
    if let Some(r) = transfer.filter(|&r| !kept[r]) {
        return Err(TrainError::Parallel(format!(
            "rank {r} did not keep the model of its trial {}, the best so far",
            to_run[first + r].id
        )));
    }
    Ok(Decision { events: events.into_iter().map(|(e, _)| e).collect(), transfer, failed: failed.map(|(_, m)| m) })
}

/// The best record (see [`rank`]), if any.
pub fn best<'a>(records: &'a [TrialRecord], objective: &Objective) -> Option<&'a TrialRecord> {
    let refs: Vec<&TrialRecord> = records.iter().collect();
    rank(&refs, objective).first().copied()
}

/// The ranked table `search` printed at the end: rank, trial, rung, epochs run of the
/// budget, the parameters the space varies, the objective, val_loss, val_accuracy and
/// seconds, best first; at most `limit` rows.
pub fn ranked_table(records: &[TrialRecord], space: &SearchSpace, limit: usize) -> String {
    let refs: Vec<&TrialRecord> = records.iter().collect();
    let ranked = rank(&refs, &space.objective);
    type Column<'f> = (&'f str, Box<dyn Fn(&TrialRecord) -> String>);
    let mut cols: Vec<Column> = vec![
        ("rank", Box::new(|_| String::new())),
        ("trial", Box::new(|r| r.trial.id.to_string())),
        ("rung", Box::new(|r| r.trial.rung.to_string())),
        ("epochs", Box::new(|r| format!("{}/{}", r.outcome.epochs_run, r.trial.epochs))),
    ];
    if space.learning_rate.is_some() {
        cols.push(("learning_rate", Box::new(|r| format!("{:.3e}", r.trial.params.learning_rate))));
    }
    if space.batch_size.is_some() {
        cols.push(("batch", Box::new(|r| r.trial.params.batch_size.to_string())));
    }
    if space.optimizer.is_some() {
        cols.push(("optimizer", Box::new(|r| r.trial.params.optimizer.clone())));
    }
    if space.l2.is_some() {
        cols.push((
            "l2",
            Box::new(|r| match r.trial.params.l2 {
                0.0 => "0".to_string(),
                l2 => format!("{l2:.1e}"),
            }),
        ));
    }
    if space.dropout.is_some() {
        cols.push(("dropout", Box::new(|r| format!("{:.3}", r.trial.params.dropout))));
    }
    if space.hidden.is_some() {
        cols.push(("hidden", Box::new(|r| r.trial.params.hidden.to_string())));
    }
    if space.filters.is_some() {
        cols.push(("filters", Box::new(|r| r.trial.params.filters.to_string())));
    }
    cols.push(("best_epoch", Box::new(|r| r.outcome.best_epoch.to_string())));
    cols.push(("val_loss", Box::new(|r| format!("{:.4}", r.outcome.val_loss))));
    cols.push(("val_accuracy", Box::new(|r| format!("{:.4}", r.outcome.val_accuracy))));
    cols.push(("seconds", Box::new(|r| format!("{:.1}", r.outcome.seconds))));
    let mut rows: Vec<Vec<String>> = vec![cols.iter().map(|(h, _)| h.to_string()).collect()];
    for (i, r) in ranked.iter().take(limit).enumerate() {
        let mut row: Vec<String> = cols.iter().map(|(_, f)| f(r)).collect();
        row[0] = (i + 1).to_string();
        rows.push(row);
    }
    let widths: Vec<usize> =
        (0..cols.len()).map(|j| rows.iter().map(|r| r[j].chars().count()).max().unwrap_or(0)).collect();
    let mut text = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, &w)| format!("{c:>w$}")).collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// The path of the best model's folder in `out`.
pub fn best_dir(out: &Path) -> PathBuf {
    out.join(BEST_DIR)
}
