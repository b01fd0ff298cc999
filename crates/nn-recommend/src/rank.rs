//! Ranking: exact top-N over a catalogue, and the ranking metrics computed per user
//! over every item the user did not interact with in training.
//!
//! # Top-N
//! [`top_n`] picks the `n` best of `m` scores with a partial sort: the candidates'
//! indices are partitioned around the `n`-th best (`select_nth_unstable_by`, expected
//! O(m)), then only those `n` are sorted (O(n log n)). For a catalogue of 10⁶ items
//! that is one pass over 4 MB of scores plus a 4 MB index buffer; scoring the items is
//! the larger cost (a matrix–vector product of `[items, d]` item vectors for the
//! dot-product models). Ties are broken by the lower item index, so the result is
//! deterministic; a NaN score ranks below every number.
//!
//! # Metrics
//! For each user with at least one test interaction, the candidates are all items of
//! the catalogue except those the user interacted with in training; the test items
//! are the relevant ones. With `T` the user's test items and `R_K` the top `K`
//! candidates:
//! - **HR@K** (hit rate): 1 when `R_K ∩ T ≠ ∅`, else 0;
//! - **NDCG@K**: `DCG / IDCG` with `DCG = Σ_{i ≤ K, R_i ∈ T} 1 / log₂(i + 1)` and
//!   `IDCG = Σ_{i ≤ min(|T|, K)} 1 / log₂(i + 1)` (binary relevance; Järvelin and
//!   Kekäläinen 2002);
//! - **recall@K**: `|R_K ∩ T| / |T|`;
//!
//! each averaged over users, and **catalogue coverage@K**: the fraction of the
//! catalogue that appears in at least one user's top `K`.
//!
//! Ranking against all items, not against 100 sampled negatives: sampled metrics
//! change the ordering of models and overstate every score (Krichene and Rendle,
//! "On Sampled Metrics for Item Recommendation", KDD 2020), and a catalogue of 10⁴
//! items is cheap to score in full.
//!
//! The baseline every model must beat is [`popularity_scores`]: each item scored by
//! its number of training interactions.

use serde::{Deserialize, Serialize};

use crate::error::{RecError, Result};

/// The `n` highest scores among the items not in `exclude`, best first, as
/// `(item index, score)`. `exclude` must be sorted ascending (as
/// [`crate::data::items_by_user`] gives); duplicates in it are harmless.
///
/// Fewer than `n` pairs come back when fewer items remain. Ties go to the lower item
/// index; NaN scores rank last.
///
/// # Shapes
/// `scores: [items]` → at most `n` pairs.
///
/// # Cost
/// O(m + n log n) time for `m = scores.len()`, `4m` bytes of index buffer.
pub fn top_n(scores: &[f32], n: usize, exclude: &[usize]) -> Vec<(usize, f32)> {
    if n == 0 {
        return Vec::new();
    }
    let mut candidates: Vec<u32> = Vec::with_capacity(scores.len().saturating_sub(exclude.len()));
    let mut skip = exclude.iter().copied().peekable();
    for i in 0..scores.len() {
        while skip.peek().is_some_and(|&e| e < i) {
            skip.next();
        }
        if skip.peek() == Some(&i) {
            continue;
        }
        candidates.push(i as u32);
    }
    let better = |a: &u32, b: &u32| {
        let (sa, sb) = (scores[*a as usize], scores[*b as usize]);
        // Descending score, NaN last, then ascending index.
        match (sa.is_nan(), sb.is_nan()) {
            (true, true) => a.cmp(b),
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (false, false) => sb.partial_cmp(&sa).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(b)),
        }
    };
    if candidates.len() > n {
        candidates.select_nth_unstable_by(n - 1, better);
        candidates.truncate(n);
    }
    candidates.sort_unstable_by(better);
    candidates.into_iter().map(|i| (i as usize, scores[i as usize])).collect()
}

/// The cut-offs of a ranking evaluation (defaults: HR@10, NDCG@10, recall@20,
/// coverage@10, as the recommendation issue asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankingConfig {
    /// `K` of the hit rate.
    pub hr_k: usize,
    /// `K` of NDCG.
    pub ndcg_k: usize,
    /// `K` of recall.
    pub recall_k: usize,
    /// `K` of the top lists whose union gives the catalogue coverage.
    pub coverage_k: usize,
}

impl Default for RankingConfig {
    fn default() -> Self {
        RankingConfig { hr_k: 10, ndcg_k: 10, recall_k: 20, coverage_k: 10 }
    }
}

/// The ranking metrics of one model over one test set (see the [module docs](self)
/// for the formulas).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankingReport {
    /// Users evaluated: those with at least one test item.
    pub users: usize,
    /// Mean HR@`hr_k`.
    pub hit_rate: f64,
    /// Mean NDCG@`ndcg_k`.
    pub ndcg: f64,
    /// Mean recall@`recall_k`.
    pub recall: f64,
    /// Fraction of the catalogue in at least one user's top `coverage_k`.
    pub coverage: f64,
    /// The cut-offs used.
    pub config: RankingConfig,
}

/// The ranking metrics of a scorer.
///
/// `score(user)` returns one score per catalogue item (`[num_items]`, higher is
/// better); it is called once per user that has test items. `train_by_user[u]` and
/// `test_by_user[u]` are user `u`'s items, sorted ascending and unique (as
/// [`crate::data::items_by_user`] gives); test items the user also had in training
/// are not candidates and are dropped from `T`.
///
/// # Errors
/// [`RecError::Config`] when a cut-off is 0, the two lists differ in length, an item
/// index is `≥ num_items`, a score vector has the wrong length, or no user has a test
/// item; any error `score` returns.
pub fn evaluate_ranking(
    score: impl Fn(usize) -> Result<Vec<f32>>,
    train_by_user: &[Vec<usize>],
    test_by_user: &[Vec<usize>],
    num_items: usize,
    config: RankingConfig,
) -> Result<RankingReport> {
    let RankingConfig { hr_k, ndcg_k, recall_k, coverage_k } = config;
    if [hr_k, ndcg_k, recall_k, coverage_k].contains(&0) {
        return Err(RecError::Config(format!("ranking cut-offs must be at least 1, got {config:?}")));
    }
    if train_by_user.len() != test_by_user.len() {
        return Err(RecError::Config(format!(
            "training lists for {} users but test lists for {}",
            train_by_user.len(),
            test_by_user.len()
        )));
    }
    if let Some(&bad) = train_by_user.iter().chain(test_by_user).flatten().find(|&&i| i >= num_items) {
        return Err(RecError::Config(format!("item index {bad} is outside the catalogue of {num_items} items")));
    }
    let depth = hr_k.max(ndcg_k).max(recall_k).max(coverage_k);
    let mut covered = vec![false; num_items];
    let (mut users, mut hits, mut ndcg, mut recall) = (0usize, 0.0f64, 0.0f64, 0.0f64);
    for (user, (seen, test)) in train_by_user.iter().zip(test_by_user).enumerate() {
        let relevant: Vec<usize> = test.iter().copied().filter(|i| seen.binary_search(i).is_err()).collect();
        if relevant.is_empty() {
            continue;
        }
        let scores = score(user)?;
        if scores.len() != num_items {
            return Err(RecError::Config(format!(
                "the scorer gave {} scores for user {user}, the catalogue has {num_items} items",
                scores.len()
            )));
        }
        let ranked = top_n(&scores, depth, seen);
        let is_hit = |item: usize| relevant.binary_search(&item).is_ok();
        users += 1;
        if ranked.iter().take(hr_k).any(|&(i, _)| is_hit(i)) {
            hits += 1.0;
        }
        let dcg: f64 = ranked
            .iter()
            .take(ndcg_k)
            .enumerate()
            .filter(|(_, &(i, _))| is_hit(i))
            .map(|(r, _)| 1.0 / ((r + 2) as f64).log2())
            .sum();
        let idcg: f64 = (0..relevant.len().min(ndcg_k)).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
        ndcg += dcg / idcg;
        recall += ranked.iter().take(recall_k).filter(|&&(i, _)| is_hit(i)).count() as f64 / relevant.len() as f64;
        for &(i, _) in ranked.iter().take(coverage_k) {
            covered[i] = true;
        }
    }
    if users == 0 {
        return Err(RecError::Config("no user has a test item that was not in their training items".into()));
    }
    let n = users as f64;
    Ok(RankingReport {
        users,
        hit_rate: hits / n,
        ndcg: ndcg / n,
        recall: recall / n,
        coverage: covered.iter().filter(|&&c| c).count() as f64 / num_items as f64,
        config,
    })
}

/// The popularity baseline: item `i` scored by its number of training interactions
/// (`[num_items]`, from [`crate::data::item_counts`]).
pub fn popularity_scores(item_counts: &[u32]) -> Vec<f32> {
    item_counts.iter().map(|&c| c as f32).collect()
}

/// The cosine similarity of item `item`'s vector with every item's, `[items]`:
/// `cos(a, b) = a·b / (‖a‖‖b‖)`, 0 where either vector is zero (an item never seen
/// in training, for a model without item features) instead of NaN.
///
/// # Shapes
/// `vectors: [items, dim]` row-major → `[items]`.
///
/// # Panics
/// Never for `item < vectors.len() / dim`; an out-of-range `item` or a `dim` of 0
/// gives all zeros.
pub fn cosine_similarities(vectors: &[f32], dim: usize, item: usize) -> Vec<f32> {
    if dim == 0 {
        return Vec::new();
    }
    let n = vectors.len() / dim;
    if item >= n {
        return vec![0.0; n];
    }
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let a = &vectors[item * dim..(item + 1) * dim];
    let na = norm(a);
    vectors
        .chunks_exact(dim)
        .map(|b| {
            let d = na * norm(b);
            if d > 0.0 {
                a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / d
            } else {
                0.0
            }
        })
        .collect()
}
