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

use std::fmt;
use std::path::{Path, PathBuf};

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

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

/// Trains trials for [`search`].
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
    let write = |file: &mut dyn std::io::Write| -> std::io::Result<()> {
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
    };
    nn_tensor::io::write_atomic(path, write).map_err(|e| TrainError::io(path, e))
}

/// Reads the records of `trials.csv` written by [`write_trials`].
///
/// # Errors
/// [`TrainError::Io`] with the path and row for an unreadable file, a different
/// header, or a field that does not parse.
pub fn read_trials(path: &Path) -> Result<Vec<TrialRecord>> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| TrainError::io(path, e))?;
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

/// What [`search`] reports as it goes.
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

    fn run(
        &mut self,
        trial: Trial,
        patience: usize,
        runner: &mut dyn TrialRunner,
        report: &mut dyn FnMut(&TrialRecord, Event),
    ) -> Result<()> {
        if let Some(pos) = self.previous.iter().position(|r| r.trial.id == trial.id && r.trial.rung == trial.rung) {
            let old = self.previous.remove(pos);
            if old.trial != trial {
                return Err(TrainError::Config(format!(
                    "{}: trial {} (rung {}) was run with other settings than this search plans; use a new output folder",
                    self.dir.join(TRIALS_FILE).display(),
                    trial.id,
                    trial.rung
                )));
            }
            self.records.push(old);
            report(self.records.last().expect("just pushed"), Event::Resumed);
            return Ok(());
        }
        let outcome = runner.run_trial(&trial, self.objective, patience)?;
        let new_best = self.best().is_none_or(|b| self.objective.better(outcome.objective, b.outcome.objective));
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
/// as an uninterrupted run's. `report` is called after every trial.
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
    config.validate()?;
    let space = &config.space;
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
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
    let mut book = Book { dir: out, objective: &space.objective, records: Vec::new(), previous };
    let patience = space.patience;
    match config.strategy {
        Strategy::Grid => {
            let grid = space.grid()?;
            let n = config.trials.unwrap_or(grid.len()).min(grid.len());
            for (id, params) in grid.into_iter().take(n).enumerate() {
                book.run(Trial { id, rung: 0, epochs: space.epochs, params }, patience, runner, report)?;
            }
        }
        Strategy::Random => {
            for id in 0..config.trials.unwrap_or(10) {
                let params = space.sample(config.seed, id);
                book.run(Trial { id, rung: 0, epochs: space.epochs, params }, patience, runner, report)?;
            }
        }
        Strategy::Halving => {
            let n = config.trials.unwrap_or(27);
            let rungs = halving_rungs(n, config.min_epochs, space.epochs, config.eta)?;
            let mut ids: Vec<usize> = (0..n).collect();
            for (k, rung) in rungs.iter().enumerate() {
                if k > 0 {
                    let last: Vec<&TrialRecord> = book.records.iter().filter(|r| r.trial.rung == k - 1).collect();
                    ids = top_ids(&last, &space.objective, rung.configs);
                    // The survivors run in id order (a fixed order, whatever the ranking).
                    ids.sort_unstable();
                }
                for &id in &ids {
                    let params = space.sample(config.seed, id);
                    book.run(Trial { id, rung: k, epochs: rung.epochs, params }, patience, runner, report)?;
                }
            }
        }
    }
    Ok(book.records)
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
