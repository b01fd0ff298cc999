//! `nn-cli tune`: hyperparameter search over a search-space file. The plan, the
//! records (`trials.csv`), resume and ranking live in [`nn_train::tune`]; this file
//! trains one trial the way `nn-cli fit` would and prints.
//!
//! Under MPI (`mpirun -np N nn-cli tune …`, feature `mpi`) the trials are spread
//! over the ranks ([`nn_train::tune::search_parallel`]): every rank checks the
//! input, prepares the data and trains its own trials alone, with its own
//! `--threads`; rank 0 alone prints, locks and writes `--out`, which ends as a
//! single-process search's with the same flags.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use nn_layers::{LayerSpec, Sequential};
use nn_optim::{ParamRules, Regularizer};
use nn_train::tune::{
    self, Direction, Event, Objective, SearchConfig, SearchSpace, Strategy, Trial, TrialOutcome, TrialRecord,
    TrialRunner,
};
use nn_train::{Callback, EarlyStopping, FitConfig, History, TerminateOnNaN, Verbosity};

use super::fit::{build_optimizer_config, model_metadata, preset};
use super::loss_for;
use crate::args::{DataArgs, ModelArgs, OptimizerKind};
use crate::cluster::Cluster;
use crate::data::{self, Prepared};
use crate::error::{CliError, Result};

/// The search strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyKind {
    /// Every combination of the listed values, in order.
    Grid,
    /// Seeded random draws (log-uniform ranges where the space says `"scale": "log"`).
    Random,
    /// Successive halving: many configurations for few epochs, the best 1/eta continued
    /// with eta times the epochs (Hyperband's inner loop, Li et al. 2017).
    Halving,
}

/// `nn-cli tune` flags.
#[derive(Debug, Clone, Args)]
pub struct TuneArgs {
    /// The data group, as `fit`'s (the same split and scaling for every trial).
    #[command(flatten)]
    pub data: DataArgs,
    /// The model group, as `fit`'s: the mlp, cnn or resnet preset, or a model spec FILE.json (tuned by learning_rate, batch_size, optimizer and l2); --hidden and --dropout are used where the space does not list them.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The search-space file (JSON): hyperparameter lists or ranges, epochs cap, patience, objective.
    #[arg(long)]
    pub space: PathBuf,
    /// grid | random | halving.
    #[arg(long, value_enum, default_value_t = StrategyKind::Random)]
    pub strategy: StrategyKind,
    /// Grid: at most N configurations (default all); random: N trials (default 10); halving: N configurations in the first rung (default 27).
    #[arg(long)]
    pub trials: Option<usize>,
    /// Seed of the sampling, the data split, initialisation and shuffles (the same for every trial).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output folder: search.json, trials.csv (written as trials finish) and best/ (the best model). Rerun with the same folder to resume.
    #[arg(long)]
    pub out: PathBuf,
    /// Halving: keep the best 1/ETA of each rung and give them ETA times the epochs.
    #[arg(long, default_value_t = 3)]
    pub eta: usize,
    /// Halving: the epochs of the first rung.
    #[arg(long, default_value_t = 1)]
    pub min_epochs: usize,
    /// (testing) abort the process after this many trained trials, as a kill would.
    #[arg(long, hide = true)]
    pub abort_after_trials: Option<usize>,
}

/// The optimizer names a space may list (`--optimizer`'s values).
fn optimizer_names() -> Vec<String> {
    OptimizerKind::value_variants()
        .iter()
        .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
        .collect()
}

/// Trains one trial as `nn-cli fit` would: the preset with the trial's hidden units,
/// filters and dropout, the optimizer at its learning rate, its L2 penalty, early
/// stopping on the objective (best weights restored), silent progress.
struct FitRunner<'a> {
    prepared: &'a Prepared,
    model: &'a str,
    /// `--hidden`, when the space does not tune it.
    hidden: Option<usize>,
    /// `--dropout`, when the space does not tune it.
    dropout: Option<f64>,
    outputs: usize,
    regression: bool,
    seed: u64,
    metadata: serde_json::Value,
    last: Option<(Sequential, History)>,
}

impl FitRunner<'_> {
    fn train(&mut self, trial: &Trial, objective: &Objective, patience: usize) -> Result<TrialOutcome> {
        let mut params = trial.params.clone();
        if let Some(h) = self.hidden {
            params.hidden = h;
        }
        if let Some(d) = self.dropout {
            params.dropout = d;
        }
        let p = &params;
        let train = &self.prepared.train;
        let mut spec = if super::fit::PRESETS.contains(&self.model) {
            preset(self.model, train.sample_shape(), self.outputs, p.hidden, p.dropout, self.regression)?
        } else {
            super::fit::read_spec(Path::new(self.model))?
        };
        if self.model == "cnn" {
            // The seed CNN: Conv2D(filters) → pool → flatten → Dense(hidden) → output.
            if let Some(LayerSpec::Conv2D(c)) =
                spec.layers.iter_mut().map(|n| &mut n.layer).find(|l| matches!(l, LayerSpec::Conv2D(_)))
            {
                c.filters = p.filters;
            }
            let last = spec.layers.len() - 1;
            if let Some(LayerSpec::Dense(d)) =
                spec.layers[..last].iter_mut().rev().map(|n| &mut n.layer).find(|l| matches!(l, LayerSpec::Dense(_)))
            {
                d.units = p.hidden;
            }
        }
        let kind = OptimizerKind::from_str(&p.optimizer, true).map_err(CliError::Usage)?;
        super::check_training(&spec, p.batch_size.min(train.len().max(1)), super::optimizer_slots(kind))?;
        let mut model = Sequential::new(spec, self.seed)?;
        let mut optimizer = build_optimizer_config(kind, p.learning_rate, None)?.build::<f32>(ParamRules::new())?;
        let loss = loss_for(train.targets(), &model);
        let regularizer = if p.l2 > 0.0 { Some(Regularizer::try_new(0.0, p.l2)?) } else { None };
        let mode = match objective.direction() {
            Direction::Min => nn_train::callbacks::Mode::Min,
            Direction::Max => nn_train::callbacks::Mode::Max,
        };
        let mut early = EarlyStopping::new(objective.metric.clone(), patience).with_mode(mode);
        let mut nan_stop = TerminateOnNaN;
        let mut callbacks: Vec<&mut dyn Callback> = vec![&mut nan_stop, &mut early];
        let config = FitConfig {
            seed: self.seed,
            verbosity: Verbosity::Silent,
            regularizer,
            metadata: self.metadata.clone(),
            ..FitConfig::new(trial.epochs, p.batch_size)
        };
        // The data are read and split by now: keep freed memory for the steps' buffers.
        crate::return_kept_memory();
        let started = Instant::now();
        let history = nn_train::fit(
            &mut model,
            optimizer.as_mut(),
            &loss,
            train,
            self.prepared.validation.as_ref(),
            &config,
            &mut callbacks,
        )?;
        let seconds = started.elapsed().as_secs_f64();
        let series = history.series(&objective.metric);
        let at = |name: &str, i: Option<usize>| i.and_then(|i| history.epochs[i].get(name)).unwrap_or(f64::NAN);
        let best = objective.best_index(&series);
        let outcome = TrialOutcome {
            best_epoch: best.map_or(0, |i| history.epochs[i].epoch),
            epochs_run: history.epochs.len(),
            objective: best.map_or(f64::NAN, |i| series[i]),
            val_loss: at("val_loss", best),
            val_accuracy: at("val_accuracy", best),
            seconds,
        };
        self.last = Some((model, history));
        Ok(outcome)
    }
}

impl TrialRunner for FitRunner<'_> {
    fn run_trial(&mut self, trial: &Trial, objective: &Objective, patience: usize) -> nn_train::Result<TrialOutcome> {
        self.train(trial, objective, patience).map_err(|e| match e {
            CliError::Train(t) => t,
            other => nn_train::TrainError::Config(other.to_string()),
        })
    }

    fn save_model(&mut self, dir: &Path) -> nn_train::Result<()> {
        if let Some((model, history)) = &self.last {
            model.save_with_metadata(dir, &self.metadata)?;
            history.write_csv(&dir.join("history.csv"))?;
        }
        Ok(())
    }
}

fn describe(r: &TrialRecord, metric: &str) -> String {
    let t = &r.trial;
    let o = &r.outcome;
    format!(
        "trial {} [rung {}, <= {} epochs] {}: {metric} {:.4} (best epoch {} of {}, {:.1} s)",
        t.id, t.rung, t.epochs, t.params, o.objective, o.best_epoch, o.epochs_run, o.seconds
    )
}

/// Runs `nn-cli tune` as one rank of `cluster` (one process: the whole search).
///
/// # Errors
/// Bad input (before any data is read), data and training errors, I/O errors; under
/// several ranks also the search's errors of another rank (see
/// [`nn_train::tune::search_parallel`]).
pub fn run(args: TuneArgs, cluster: &Cluster) -> Result<()> {
    // 1. Everything that can be wrong with the input, before any data or training.
    let is_preset = super::fit::PRESETS.contains(&args.model.model.as_str());
    if !is_preset && !args.model.model.ends_with(".json") && !Path::new(&args.model.model).exists() {
        return Err(CliError::Usage(format!(
            "--model {}: not a preset (mlp, cnn, resnet) and no such model file",
            args.model.model
        )));
    }
    if !is_preset && !Path::new(&args.model.model).is_file() {
        return Err(CliError::Usage(format!("--model {}: no such model spec file", args.model.model)));
    }
    if args.model.model == "lstm" {
        return Err(CliError::Usage(format!(
            "--model `{}`: tune searches the mlp, cnn and resnet presets or a model spec FILE.json",
            args.model.model
        )));
    }
    let names = optimizer_names();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let bare = |e: nn_train::TrainError| match e {
        nn_train::TrainError::Config(m) => CliError::Usage(m),
        other => CliError::Train(other),
    };
    let space = SearchSpace::read(&args.space, &name_refs).map_err(bare)?;
    if space.filters.is_some() && args.model.model != "cnn" {
        return Err(CliError::Usage(format!(
            "{}: `filters` applies to --model cnn only (--model {} is not the seed CNN)",
            args.space.display(),
            args.model.model
        )));
    }
    if !matches!(args.model.model.as_str(), "mlp" | "cnn") && (space.hidden.is_some() || space.dropout.is_some()) {
        return Err(CliError::Usage(format!(
            "{}: `hidden` and `dropout` apply to the mlp and cnn presets only; --model {} is tuned by learning_rate, batch_size, optimizer and l2",
            args.space.display(),
            args.model.model
        )));
    }
    if !is_preset {
        // Read and build once now, so a bad spec fails before any data is loaded.
        super::fit::read_spec(Path::new(&args.model.model))?;
    }
    if args.trials == Some(0) {
        return Err(CliError::Usage("--trials must be at least 1".into()));
    }
    let strategy = match args.strategy {
        StrategyKind::Grid => Strategy::Grid,
        StrategyKind::Random => Strategy::Random,
        StrategyKind::Halving => Strategy::Halving,
    };
    let m = &args.model;
    if m.init_from.is_some() || !m.freeze.is_empty() || m.lora_rank.is_some() {
        return Err(CliError::Usage(
            "tune trains each trial from scratch: --init-from, --freeze and --lora-rank belong to `nn-cli fit`".into(),
        ));
    }
    if args.data.augment.is_some() {
        return Err(CliError::Usage("tune does not augment images: --augment belongs to `nn-cli fit`".into()));
    }
    let mut context = serde_json::json!({
        "data": args.data.data.to_string(),
        "target": args.data.target,
        "model": args.model.model,
        "validation_split": args.data.validation_split,
        "test_split": args.data.test_split,
        "scale": format!("{:?}", args.data.scale).to_lowercase(),
    });
    // Settings added later are recorded only when they differ from their defaults,
    // so folders of earlier searches still resume.
    let defaults = DataArgs::defaults_for(args.data.data.clone());
    let extra = [
        ("task", serde_json::to_value(args.data.task).ok(), args.data.task != defaults.task),
        ("drop", serde_json::to_value(&args.data.drop).ok(), args.data.drop != defaults.drop),
        (
            "categorical",
            serde_json::to_value(&args.data.categorical).ok(),
            args.data.categorical != defaults.categorical,
        ),
        ("delimiter", serde_json::to_value(&args.data.delimiter).ok(), args.data.delimiter != defaults.delimiter),
        ("missing", serde_json::to_value(args.data.missing).ok(), args.data.missing != defaults.missing),
        ("classes", serde_json::to_value(&args.data.classes).ok(), args.data.classes.is_some()),
        ("per_class", serde_json::to_value(args.data.per_class).ok(), args.data.per_class.is_some()),
        ("hidden", serde_json::to_value(m.hidden).ok(), m.hidden != 128),
        ("dropout", serde_json::to_value(m.dropout).ok(), m.dropout != 0.0),
    ];
    for (key, value, differs) in extra {
        if let (true, Some(v)) = (differs, value) {
            context[key] = v;
        }
    }
    let config = SearchConfig {
        trials: args.trials,
        seed: args.seed,
        eta: args.eta,
        min_epochs: args.min_epochs,
        context,
        ..SearchConfig::new(space.clone(), strategy)
    };
    config.validate().map_err(|e| match bare(e) {
        CliError::Usage(m) => CliError::Usage(format!("{}: {m}", args.space.display())),
        other => other,
    })?;

    // 2. Data, split and scaled once for every trial.
    let prepared = data::prepare(&args.data, args.seed, true)?;
    let prepared = data::restrict(prepared, args.data.classes.as_deref(), args.data.per_class, args.seed)?;
    let train = &prepared.train;
    let regression = prepared.task == nn_data::Task::Regression;
    if regression && space.objective.metric == "val_accuracy" {
        return Err(CliError::Usage(format!(
            "{}: objective val_accuracy needs class targets; {} has real values (use val_loss)",
            args.space.display(),
            args.data.data
        )));
    }
    let outputs = super::fit::outputs_for(train);
    let root = cluster.is_root();
    if root && cluster.size() > 1 {
        println!("{} ranks: each trains its share of the trials, rank 0 writes {}", cluster.size(), args.out.display());
    }
    if root {
        println!(
            "data {}: {} training, {} validation, {} test samples; {} search, objective {} ({})",
            args.data.data,
            train.len(),
            prepared.validation.as_ref().map_or(0, |d| d.len()),
            prepared.test.as_ref().map_or(0, |d| d.len()),
            format!("{:?}", args.strategy).to_lowercase(),
            space.objective.metric,
            match space.objective.direction() {
                Direction::Min => "min",
                Direction::Max => "max",
            }
        );
    }
    if root && strategy == Strategy::Halving {
        let rungs = tune::halving_rungs(args.trials.unwrap_or(27), args.min_epochs, space.epochs, args.eta)?;
        let plan: Vec<String> = rungs.iter().map(|r| format!("{}x{}", r.configs, r.epochs)).collect();
        println!("rungs (configurations x epochs): {}", plan.join(", "));
    }

    // 3. Search.
    let metadata = model_metadata(
        &args.data,
        prepared.target_name.clone().or(args.data.target.clone()),
        &prepared,
        args.seed,
        None,
    )?;
    let mut runner = FitRunner {
        prepared: &prepared,
        model: &args.model.model,
        hidden: (space.hidden.is_none()).then_some(args.model.hidden),
        dropout: (space.dropout.is_none()).then_some(args.model.dropout),
        outputs,
        regression,
        seed: args.seed,
        metadata,
        last: None,
    };
    let started = Instant::now();
    let mut trained = 0usize;
    let mut report = |r: &TrialRecord, e: Event| {
        let line = describe(r, &space.objective.metric);
        match e {
            Event::Resumed => println!("{line} (from trials.csv)"),
            Event::Trained { new_best } => {
                println!("{line}{}", if new_best { " *best so far*" } else { "" });
                trained += 1;
                if args.abort_after_trials == Some(trained) {
                    std::process::abort();
                }
            }
        }
    };
    // One run at a time per folder; what an interrupted one left is cleaned up first.
    // Rank 0 alone touches the folder.
    let best = tune::best_dir(&args.out);
    let _lock = if root { Some(crate::lock::take(&args.out, &[&best])?) } else { None };
    let records = tune::search_parallel(&config, &args.out, &mut runner, &mut report, cluster.group.as_ref())?;
    if !root {
        return Ok(());
    }
    println!(
        "\n{} trials ({} trained now) in {:.1} s; ranked by {}:\n",
        records.len(),
        trained,
        started.elapsed().as_secs_f64(),
        space.objective.metric
    );
    print!("{}", tune::ranked_table(&records, &space, 20));
    if records.len() > 20 {
        println!("... {} more in {}", records.len() - 20, args.out.join(tune::TRIALS_FILE).display());
    }

    // 4. The best model, on the test part.
    let best = tune::best(&records, &space.objective).ok_or_else(|| CliError::Usage("no trial finished".into()))?;
    let best_dir = tune::best_dir(&args.out);
    println!(
        "\nbest: trial {} (rung {}): {}; {} {:.4}; model in {}",
        best.trial.id,
        best.trial.rung,
        best.trial.params,
        space.objective.metric,
        best.outcome.objective,
        best_dir.display()
    );
    if let Some(test) = &prepared.test {
        let (model, _) = super::load_model(&best_dir)?;
        super::print_test(&model, test, prepared.target_scaler.as_ref(), 1000, "best model: ")?;
    }
    Ok(())
}
