//! Recommenders from the command line: `nn-cli fit --data ratings:FILE[,items=FILE]`
//! trains one (nn-recommend), `nn-cli recommend` ranks items for a user, `nn-cli
//! similar` finds an item's neighbours.
//!
//! A recommender's folder (`fit --out DIR`) holds what
//! [`nn_recommend::model::Recommender::save`] writes (`recommender.json`,
//! `weights.safetensors`) and `run.json`: the settings of the run and its test
//! metrics.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use nn_recommend::model::{OutputKind, Preset, RecSpec, Recommender};
use nn_recommend::rank::{
    cosine_similarities, evaluate_ranking, popularity_scores, top_n, RankingConfig, RankingReport,
};
use nn_recommend::split::split;
use nn_recommend::train::{fit as train, rmse_mae, RecLoss, TrainConfig};
use nn_recommend::{
    item_counts, items_by_user, read_items, read_ratings, Duplicates, Feedback, Interaction, ItemsOptions,
    RatingsOptions, Split,
};
use serde::Serialize;

use crate::args::{DataSource, FitArgs};
use crate::error::{CliError, Result};

/// The file beside the model with the run's settings and test metrics.
pub const RUN_FILE: &str = "run.json";

/// `nn-cli recommend` flags.
#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// A folder written by `nn-cli fit --data ratings:… --out DIR`.
    #[arg(long)]
    pub model: PathBuf,
    /// The user's id as in the ratings file. An id the model does not know gets the
    /// fallback ranking (global and item biases: the items rated best on average,
    /// popularity-corrected by the L2 penalty), with a note on stderr.
    #[arg(long)]
    pub user: String,
    /// How many items.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Leave out the items the user interacted with in training.
    #[arg(long)]
    pub exclude_seen: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `nn-cli similar` flags.
#[derive(Debug, Args)]
pub struct SimilarArgs {
    /// A folder written by `nn-cli fit --data ratings:… --out DIR`.
    #[arg(long)]
    pub model: PathBuf,
    /// The item's id as in the ratings or items file.
    #[arg(long)]
    pub item: String,
    /// How many items.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The flags of `fit` that a recommender does not use: given on the command line
/// with `--data ratings:…`, each is an error rather than silently ignored.
const NOT_FOR_RATINGS: &[&str] = &[
    "target",
    "task",
    "drop",
    "categorical",
    "delimiter",
    "missing",
    "test_split",
    "scale",
    "classes",
    "per_class",
    "augment",
    "dropout",
    "init_from",
    "load",
    "num_classes",
    "freeze",
    "lora_rank",
    "lora_alpha",
    "optimizer",
    "lr_schedule",
    "l1",
    "l2",
    "clip_norm",
    "lr_loaded",
    "class_weight",
    "label_smoothing",
    "sync_batchnorm",
    "tensorboard",
    "test",
    "no_test",
    "config",
    "resume",
    "text_column",
    "context",
    "tokenizer",
    "holdout_groups",
    "layers",
    "heads",
    "d_model",
];

/// The flags only a recommender uses.
pub const ONLY_FOR_RATINGS: &[&str] = &[
    "split",
    "feedback",
    "implicit_threshold",
    "loss",
    "negatives",
    "embedding_dim",
    "embedding_l2",
    "user_day_bias",
    "duplicates",
];

fn given(matches: Option<&ArgMatches>, id: &str) -> bool {
    matches.is_some_and(|m| m.value_source(id) == Some(ValueSource::CommandLine))
}

/// `--flag` spelling of a clap id.
fn flag(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// Errors unless every recommendation-only flag is at its default (for data that is
/// not ratings).
///
/// # Errors
/// [`CliError::Usage`] naming the first such flag.
pub fn check_not_given(matches: Option<&ArgMatches>, data: &DataSource) -> Result<()> {
    match ONLY_FOR_RATINGS.iter().find(|id| given(matches, id)) {
        Some(id) => Err(CliError::Usage(format!(
            "{} applies to --data ratings:FILE (a recommender), not to --data {data}",
            flag(id)
        ))),
        None => Ok(()),
    }
}

/// The run's settings and results, saved as `run.json`.
#[derive(Debug, Serialize)]
struct RunRecord<'a> {
    data: String,
    model: &'a str,
    split: String,
    feedback: Feedback,
    loss: String,
    embedding_dim: usize,
    hidden: Vec<usize>,
    epochs_run: usize,
    batch_size: usize,
    learning_rate: f64,
    embedding_l2: f64,
    user_day_bias: bool,
    seed: u64,
    split_seed: u64,
    train_interactions: usize,
    test_interactions: usize,
    seconds_per_epoch: f64,
    test: TestMetrics,
}

#[derive(Debug, Default, Serialize)]
struct TestMetrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    rmse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mae: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mean_baseline_rmse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ranking: Option<RankingReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    popularity: Option<RankingReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cold_items: Option<ColdItems>,
}

/// Ranking of items that had no training interaction, against each other.
#[derive(Debug, Serialize)]
struct ColdItems {
    /// Test interactions whose item had no training interaction.
    interactions: usize,
    /// Items with no training interaction.
    items: usize,
    /// Mean AUC: the fraction of other cold items scored below the user's test item
    /// (0.5 is chance).
    auc: f64,
}

fn rec_err(e: nn_recommend::RecError) -> CliError {
    CliError::Usage(e.to_string())
}

fn parse<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| CliError::Usage(format!("{flag} {text:?}: {e}")))
}

/// `nn-cli fit --data ratings:FILE[,items=FILE]`: reads, splits, trains, reports
/// on the test part, and saves to `--out`.
///
/// # Errors
/// [`CliError::Usage`] for flags a recommender does not take or cannot use, and for
/// any data, training or saving error (one line with its context).
pub fn fit(args: &FitArgs, matches: Option<&ArgMatches>) -> Result<()> {
    let DataSource::Ratings { ratings, items } = &args.run.data.data else {
        return Err(CliError::Usage("fit: not ratings data".into()));
    };
    if let Some(id) = NOT_FOR_RATINGS.iter().find(|id| given(matches, id)) {
        return Err(CliError::Usage(format!(
            "{} does not apply to --data ratings:… (a recommender); its flags are --model, --hidden, --epochs, \
             --batch-size, --lr, --weight-decay, --seed, --split-seed, --early-stopping, --validation-split, --out, \
             --split, --feedback, --implicit-threshold, --loss, --negatives, --embedding-dim, --embedding-l2, \
             --user-day-bias, --duplicates",
            flag(id)
        )));
    }
    let rec = &args.recommend;
    let run = &args.run;
    let feedback: Feedback = parse("--feedback", &rec.feedback)?;
    // Split's own error names the value.
    let how: Split = rec.split.parse().map_err(|e| CliError::Usage(format!("--split: {e}")))?;
    let duplicates: Duplicates = parse("--duplicates", &rec.duplicates)?;
    let loss = match (rec.loss.as_deref(), feedback) {
        (None, Feedback::Explicit) | (Some("mse"), Feedback::Explicit) => RecLoss::Mse,
        (Some("bpr"), Feedback::Implicit) => RecLoss::Bpr { negatives: rec.negatives },
        (None, Feedback::Implicit) | (Some("sampled-softmax"), Feedback::Implicit) => {
            RecLoss::SampledSoftmax { negatives: rec.negatives }
        }
        (Some(l @ ("bpr" | "sampled-softmax")), Feedback::Explicit) => {
            return Err(CliError::Usage(format!(
                "--loss {l} ranks implicit feedback: add --feedback implicit (or use --loss mse for ratings)"
            )))
        }
        (Some("mse"), Feedback::Implicit) => {
            return Err(CliError::Usage(
                "--loss mse needs ratings to predict: implicit feedback trains with --loss bpr or sampled-softmax"
                    .into(),
            ))
        }
        (Some(other), _) => {
            return Err(CliError::Usage(format!("--loss {other:?}: expected mse, bpr or sampled-softmax")))
        }
    };
    if rec.implicit_threshold.is_some() && feedback == Feedback::Explicit {
        return Err(CliError::Usage("--implicit-threshold needs --feedback implicit".into()));
    }
    if rec.user_day_bias && feedback == Feedback::Implicit {
        return Err(CliError::Usage(
            "--user-day-bias predicts ratings (it shifts all of a user's items alike, so it cannot change a \
             ranking): use it with --feedback explicit"
                .into(),
        ));
    }
    let options = RatingsOptions {
        feedback,
        implicit_threshold: rec.implicit_threshold,
        duplicates,
        rating_column: if feedback == Feedback::Implicit && rec.implicit_threshold.is_none() {
            None
        } else {
            RatingsOptions::default().rating_column
        },
        ..RatingsOptions::default()
    };
    let mut data = read_ratings(ratings, &options).map_err(rec_err)?;
    if data.duplicates > 0 {
        eprintln!(
            "warning: {}: {} duplicate user–item rows ({}; --duplicates last|mean|error)",
            ratings.display(),
            data.duplicates,
            match duplicates {
                Duplicates::KeepLast => "kept the latest of each pair",
                Duplicates::Mean => "averaged each pair",
                Duplicates::Error => unreachable!("an error was returned"),
            }
        );
    }
    let item_table = match items {
        Some(path) => Some(read_items(path, &mut data.items, &ItemsOptions::default()).map_err(rec_err)?),
        None => None,
    };
    println!(
        "{}: {} interactions ({}) by {} users of {} items{}",
        ratings.display(),
        data.interactions.len(),
        rec.feedback,
        data.users.len(),
        data.items.len(),
        item_table.as_ref().map_or(String::new(), |t| format!("; {} item features", t.width()))
    );
    if rec.user_day_bias && data.interactions.iter().all(|x| x.timestamp.is_none()) {
        return Err(CliError::Usage(format!(
            "--user-day-bias needs the day of each rating: {} has no timestamp column",
            ratings.display()
        )));
    }
    // The split's own seed (--split-seed), so that runs of several model seeds can
    // share one test part.
    let split_seed = run.data.text.split_seed.unwrap_or(run.training.seed);
    let parts = split(&data.interactions, how, split_seed).map_err(rec_err)?;
    let validation = run.data.validation_split;
    if !(0.0..1.0).contains(&validation) {
        return Err(CliError::Usage(format!("--validation-split must be in [0, 1), got {validation}")));
    }
    let (fit_part, valid_part) = if validation > 0.0 {
        let inner = match how {
            Split::Random { .. } => Split::Random { test_fraction: validation },
            Split::TimeCut { .. } => Split::TimeCut { test_fraction: validation },
            Split::LeaveLastOut { per_user } => Split::LeaveLastOut { per_user },
        };
        let v = split(&parts.train, inner, split_seed.wrapping_add(1)).map_err(rec_err)?;
        (v.train, Some(v.test))
    } else {
        (parts.train.clone(), None)
    };
    println!(
        "split {how}: {} training ({} for fitting, {} for validation), {} test",
        parts.train.len(),
        fit_part.len(),
        valid_part.as_ref().map_or(0, Vec::len),
        parts.test.len()
    );
    let hidden: Vec<usize> = if run.model.hidden == 0 { Vec::new() } else { vec![run.model.hidden] };
    // `fit`'s defaults are for images and tables: a recommender defaults to mf,
    // batches of 256 and nn-recommend's learning rate unless the flags are given.
    let model_name = if given(matches, "model") { run.model.model.as_str() } else { "mf" };
    let batch_size = if given(matches, "batch_size") { run.training.batch_size } else { 256 };
    let mut spec = match model_name {
        name @ ("mf" | "ncf" | "two-tower") => {
            let preset: Preset = parse("--model", name)?;
            let width = item_table.as_ref().map(|t| t.width());
            let mut spec = RecSpec::preset(preset, rec.embedding_dim, &hidden, width).map_err(rec_err)?;
            if feedback == Feedback::Implicit {
                spec.output = OutputKind::Score;
            }
            spec
        }
        path if path.ends_with(".json") => {
            let text = std::fs::read_to_string(path).map_err(|e| CliError::io(Path::new(path), e))?;
            RecSpec::from_json(&text).map_err(|e| CliError::Usage(format!("{path}: {e}")))?
        }
        other => {
            return Err(CliError::Usage(format!(
                "--model {other:?} with ratings data: expected mf, ncf, two-tower or a RecSpec JSON file"
            )))
        }
    };
    if rec.user_day_bias {
        spec.biases.user_day = true;
    }
    let mut model = Recommender::new(spec, data.users.clone(), data.items.clone(), item_table, run.training.seed)
        .map_err(rec_err)?;
    let cfg = TrainConfig {
        epochs: run.training.epochs,
        batch_size,
        learning_rate: if given(matches, "lr") { run.optimizer.lr } else { TrainConfig::default().learning_rate },
        l2: rec.embedding_l2,
        dense_weight_decay: run.optimizer.weight_decay.unwrap_or(0.0),
        loss,
        seed: run.training.seed,
        patience: run.training.early_stopping,
        ..TrainConfig::default()
    };
    let verbose = run.output.verbose > 0;
    // The ratings are read and split: keep freed memory for the steps' buffers.
    crate::return_kept_memory();
    let start = Instant::now();
    let history = train(&mut model, &fit_part, valid_part.as_deref(), &cfg, |r| {
        if verbose {
            let mut line = format!("epoch {}/{} - loss {:.4}", r.epoch, cfg.epochs, r.loss);
            if let Some(v) = r.val_rmse {
                line += &format!(" - val_rmse {v:.4}");
            } else if let Some(v) = r.val_loss {
                line += &format!(" - val_loss {v:.4}");
            }
            line += &format!(" - {:.2} s", r.seconds);
            println!("{line}");
        }
        crate::signals::received().is_none()
    })
    .map_err(rec_err)?;
    let seconds_per_epoch = start.elapsed().as_secs_f64() / history.len().max(1) as f64;
    let mut test = TestMetrics::default();
    if feedback == Feedback::Explicit {
        let (rmse, mae) = rmse_mae(&model, &parts.test).map_err(rec_err)?;
        let mean = parts.train.iter().map(|r| r.value as f64).sum::<f64>() / parts.train.len() as f64;
        let base = (parts.test.iter().map(|r| (r.value as f64 - mean).powi(2)).sum::<f64>()
            / parts.test.len().max(1) as f64)
            .sqrt();
        println!("test: rmse {rmse:.4} - mae {mae:.4} (predicting the training mean: rmse {base:.4})");
        if rmse >= base {
            eprintln!("warning: the model does no better than predicting the training mean");
        }
        test.rmse = Some(rmse);
        test.mae = Some(mae);
        test.mean_baseline_rmse = Some(base);
    } else {
        let n_users = data.users.len();
        let n_items = data.items.len();
        let seen = items_by_user(&parts.train, n_users);
        let wanted = items_by_user(&parts.test, n_users);
        let config = RankingConfig::default();
        let report =
            evaluate_ranking(|u| model.score_all_items(Some(u)), &seen, &wanted, n_items, config).map_err(rec_err)?;
        let popular = popularity_scores(&item_counts(&parts.train, n_items));
        let baseline = evaluate_ranking(|_| Ok(popular.clone()), &seen, &wanted, n_items, config).map_err(rec_err)?;
        for (name, r) in [("model", &report), ("popularity", &baseline)] {
            println!(
                "test ({name}): HR@{} {:.4} - NDCG@{} {:.4} - recall@{} {:.4} - coverage@{} {:.4} ({} users)",
                r.config.hr_k,
                r.hit_rate,
                r.config.ndcg_k,
                r.ndcg,
                r.config.recall_k,
                r.recall,
                r.config.coverage_k,
                r.coverage,
                r.users
            );
        }
        test.ranking = Some(report);
        test.popularity = Some(baseline);
    }
    test.cold_items = cold_item_auc(&model, &parts.train, &parts.test)?;
    if let Some(c) = &test.cold_items {
        println!(
            "items without training interactions: {} test interactions on {} such items; AUC among them {:.4} (chance 0.5)",
            c.interactions, c.items, c.auc
        );
    }
    if let Some(out) = &run.output.out {
        model.save(out).map_err(rec_err)?;
        let record = RunRecord {
            data: run.data.data.to_string(),
            model: model_name,
            split: how.to_string(),
            feedback,
            loss: format!("{loss:?}"),
            embedding_dim: rec.embedding_dim,
            hidden,
            epochs_run: history.len(),
            batch_size: cfg.batch_size,
            learning_rate: cfg.learning_rate,
            embedding_l2: cfg.l2,
            user_day_bias: model.spec().biases.user_day,
            seed: cfg.seed,
            split_seed,
            train_interactions: parts.train.len(),
            test_interactions: parts.test.len(),
            seconds_per_epoch,
            test,
        };
        let text = serde_json::to_string_pretty(&record).map_err(|e| CliError::Usage(e.to_string()))?;
        nn_tensor::io::write_atomic(&out.join(RUN_FILE), |w| w.write_all(text.as_bytes()))
            .map_err(|e| CliError::io(&out.join(RUN_FILE), e))?;
        println!("saved to {}", out.display());
    }
    Ok(())
}

/// The mean AUC of each test interaction whose item had no training interaction,
/// ranked against the other such items (those the user has no test interaction
/// with); `None` when there are fewer than two such items or no such interaction.
fn cold_item_auc(model: &Recommender, train: &[Interaction], test: &[Interaction]) -> Result<Option<ColdItems>> {
    let n_items = model.items().len();
    let counts = item_counts(train, n_items);
    let cold: Vec<usize> = (0..n_items).filter(|&i| counts[i] == 0).collect();
    let cold_tests: Vec<&Interaction> = test.iter().filter(|r| counts[r.item] == 0).collect();
    if cold.len() < 2 || cold_tests.is_empty() {
        return Ok(None);
    }
    let wanted = items_by_user(test, model.users().len());
    let mut total = 0.0;
    let mut scores_of: Option<(usize, Vec<f32>)> = None;
    for r in &cold_tests {
        if scores_of.as_ref().is_none_or(|(u, _)| *u != r.user) {
            scores_of = Some((r.user, model.score_all_items(Some(r.user)).map_err(rec_err)?));
        }
        let scores = &scores_of.as_ref().expect("just set").1;
        let s = scores[r.item];
        let (mut below, mut others) = (0.0, 0usize);
        for &j in &cold {
            if j == r.item || wanted[r.user].binary_search(&j).is_ok() {
                continue;
            }
            others += 1;
            if scores[j] < s {
                below += 1.0;
            } else if scores[j] == s {
                below += 0.5;
            }
        }
        total += if others == 0 { 0.5 } else { below / others as f64 };
    }
    Ok(Some(ColdItems { interactions: cold_tests.len(), items: cold.len(), auc: total / cold_tests.len() as f64 }))
}

#[derive(Serialize)]
struct Ranked<'a> {
    rank: usize,
    item: &'a str,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
}

/// Loads the recommender in `dir`.
///
/// # Errors
/// [`CliError::Usage`] naming the folder when it holds no recommender (a model
/// folder of `fit` on other data, or no folder), or the loader's error.
fn load(dir: &Path) -> Result<Recommender> {
    if !dir.join(nn_recommend::model::SPEC_FILE).is_file() {
        let what = if dir.join("model.json").is_file() {
            "a model folder, not a recommender"
        } else if dir.is_dir() {
            "not a recommender folder"
        } else {
            "no such folder"
        };
        return Err(CliError::Usage(format!(
            "{}: {what} (no {}; `nn-cli fit --data ratings:FILE --out DIR` makes one)",
            dir.display(),
            nn_recommend::model::SPEC_FILE
        )));
    }
    Recommender::load(dir).map_err(rec_err)
}

fn title(model: &Recommender, item: usize) -> Option<&str> {
    model.item_table().and_then(|t| t.titles.get(item)).and_then(|t| t.as_deref())
}

fn print_ranked(model: &Recommender, header: &str, ranked: &[(usize, f32)], json: bool) -> Result<()> {
    let rows: Vec<Ranked<'_>> = ranked
        .iter()
        .enumerate()
        .map(|(k, &(i, score))| Ranked {
            rank: k + 1,
            item: model.items().id(i).unwrap_or("?"),
            score,
            title: title(model, i),
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string(&rows).map_err(|e| CliError::Usage(e.to_string()))?);
    } else {
        println!("{header}");
        let width = rows.iter().map(|r| r.item.len()).max().unwrap_or(4).max(4);
        println!("{:>4}  {:<width$}  {:>8}  title", "rank", "item", "score");
        for r in &rows {
            println!("{:>4}  {:<width$}  {:>8.4}  {}", r.rank, r.item, r.score, r.title.unwrap_or("-"));
        }
    }
    Ok(())
}

/// `nn-cli recommend`: the user's top N items.
///
/// # Errors
/// [`CliError::Usage`] when the folder is not a recommender or `--top` is 0.
pub fn recommend(args: RecommendArgs) -> Result<()> {
    if args.top == 0 {
        return Err(CliError::Usage("--top must be at least 1".into()));
    }
    let model = load(&args.model)?;
    let user = model.users().get(&args.user);
    if user.is_none() {
        eprintln!(
            "note: user {:?} is not in the model ({} users); ranking by the fallback for unknown users (global and item biases)",
            args.user,
            model.users().len()
        );
    }
    let scores = model.score_all_items(user).map_err(rec_err)?;
    let seen: &[usize] = match (args.exclude_seen, user) {
        (true, Some(u)) => model.training_items(u),
        _ => &[],
    };
    let ranked = top_n(&scores, args.top, seen);
    print_ranked(&model, &format!("top {} for user {}", ranked.len(), args.user), &ranked, args.json)
}

/// `nn-cli similar`: the items whose vectors have the highest cosine with the item's.
///
/// # Errors
/// [`CliError::Usage`] for an unknown item, a folder that is not a recommender, or
/// `--top` 0.
pub fn similar(args: SimilarArgs) -> Result<()> {
    if args.top == 0 {
        return Err(CliError::Usage("--top must be at least 1".into()));
    }
    let model = load(&args.model)?;
    let item = model.items().get(&args.item).ok_or_else(|| {
        CliError::Usage(format!("item {:?} is not in the model ({} items)", args.item, model.items().len()))
    })?;
    let (vectors, dim) = model.item_vectors().map_err(rec_err)?;
    let scores = cosine_similarities(&vectors, dim, item);
    let ranked = top_n(&scores, args.top, &[item]);
    let name = title(&model, item).map_or(String::new(), |t| format!(" ({t})"));
    print_ranked(&model, &format!("most similar to item {}{name}", args.item), &ranked, args.json)
}
