//! The [`Recommender`]: a sparse part (embedding tables, [`crate::sparse`]) feeding a
//! dense part (a graph [`nn_layers::Model`], JSON [`ModelSpec`] of format version 2
//! with several named inputs), plus a global, a user and an item bias.
//!
//! A [`RecSpec`] says which tables exist (rows per user or per item, width), what
//! each input of the dense part receives (a table row looked up by the pair's user
//! or item, the mean of a table's rows over the user's training items, or the item's
//! features), which biases are used, and whether the output is a rating (clipped to
//! the training range) or a ranking score. Three presets ([`Preset`]):
//!
//! - `mf`: `r̂ = μ + b_u + b_i + p_uᵀq_i` (Koren, Bell & Volinsky 2009, eq. 3);
//! - `ncf`: NeuMF (He et al. 2017, section 3.4): a GMF branch (`p_u ⊙ q_i`) and an MLP
//!   branch (`[p'_u, q'_i]` through Dense/ReLU layers) joined, then `Dense(1)`; plus
//!   the biases;
//! - `two-tower`: a user tower over `[p_u, |N(u)|⁻¹ Σ_{j∈N(u)} y_j]` (the user's
//!   embedding and the mean embedding of the items rated in training: SVD++'s implicit
//!   feedback, Koren 2008, and YouTube DNN's watch history, Covington et al. 2016) and
//!   an item tower over `[q_i, features_i]`, each a Dense stack, joined by `Dot`; plus
//!   the biases.
//!
//! # Unknown users, unseen items
//! A pair with user `None` (a user the model does not know) gets, in a spec without
//! a history input (`mf`, `ncf`), `μ + b_i`: the dense part is skipped. In a spec with
//! a history input (`two-tower`) the user tower runs on a zero user embedding and an
//! empty history (zeros). An item never seen in training has a zero embedding in
//! every item table and a zero bias; its features (two-tower) still reach the item
//! tower, which is how a cold item gets a score.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use nn_layers::{
    Activation, ConcatenateConfig, ForwardCtx, Graph, InputSpec, LayerSpec, Mode, Model, ModelSpec, NodeSpec, Source,
};
use nn_tensor::random::seeded_rng;
use nn_tensor::{Element, Tensor};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::data::{IdMap, ItemFeatureSpec, ItemTable};
use crate::error::{RecError, Result};
use crate::sparse::EmbeddingTable;

/// The JSON file of a saved recommender.
pub const SPEC_FILE: &str = "recommender.json";
/// The safetensors file of a saved recommender.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// The `format` written in [`SPEC_FILE`].
pub const FORMAT: &str = "nn-recommend/1";
/// Pairs per forward pass of the dense part in prediction.
const PREDICT_BATCH: usize = 4096;
/// Standard deviation of the initial embedding entries.
pub const DEFAULT_INIT_STD: f64 = 0.05;

/// A built-in model (`--model mf|ncf|two-tower`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Biased matrix factorisation (Koren, Bell & Volinsky 2009).
    Mf,
    /// Neural matrix factorisation, NeuMF (He et al. 2017).
    Ncf,
    /// A user tower with watch history and an item tower with features, joined by a
    /// dot product.
    TwoTower,
}

impl FromStr for Preset {
    type Err = RecError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mf" => Ok(Preset::Mf),
            "ncf" => Ok(Preset::Ncf),
            "two-tower" => Ok(Preset::TwoTower),
            other => Err(RecError::Config(format!("unknown model \"{other}\": expected mf, ncf or two-tower"))),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Preset::Mf => "mf",
            Preset::Ncf => "ncf",
            Preset::TwoTower => "two-tower",
        })
    }
}

/// What a table's rows belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// One row per user.
    Users,
    /// One row per item.
    Items,
}

fn default_std() -> f64 {
    DEFAULT_INIT_STD
}

/// One embedding table: `{"name": "user", "rows": "users", "dim": 32}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// Its name (an [`InputBinding::table`] refers to it; saved as `table.{name}`).
    pub name: String,
    /// One row per user or per item.
    pub rows: RowKind,
    /// The width of a row.
    pub dim: usize,
    /// Standard deviation of the initial entries (default [`DEFAULT_INIT_STD`]).
    #[serde(default = "default_std")]
    pub init_std: f64,
}

/// What a dense input receives for a pair `(user, item)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lookup {
    /// The user's row of a `users` table (zeros for an unknown user).
    User,
    /// The item's row of an `items` table (zeros for an item not seen in training).
    Item,
    /// The mean of an `items` table's rows over the items the user had in training
    /// (zeros for an unknown user or an empty history).
    History,
    /// The item's feature row (the items file; `[width]`).
    ItemFeatures,
}

/// Binds one input of the dense part: `{"input": "user", "lookup": "user", "table":
/// "user"}`; `table` is left out for `item_features`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputBinding {
    /// The dense input's name (one of the [`ModelSpec`]'s `inputs`).
    pub input: String,
    /// What it receives.
    pub lookup: Lookup,
    /// The table looked up (not for `item_features`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// Which biases are added to the dense part's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BiasSpec {
    /// `μ`: the training ratings' mean (explicit feedback), fixed, not learned.
    pub global: bool,
    /// `b_u`, learned.
    pub user: bool,
    /// `b_i`, learned.
    pub item: bool,
    /// `b_{u,t}`, learned: a bias per user and day of the rating (UTC days of the
    /// timestamp, [`day_of`]), the day-specific user bias of timeSVD++ (Koren 2010,
    /// "Collaborative filtering with temporal dynamics", CACM 53(4), eq. 9): it absorbs
    /// a user's mood on one day. It is 0 for a day on which the user had no training
    /// rating and wherever the time is unknown ([`Recommender::predict`], `recommend`,
    /// `serve`): it never changes a user's ranking, only predicted ratings of a known
    /// day ([`Recommender::predict_at`]). Explicit ratings with timestamps only.
    /// Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user_day: bool,
}

/// Seconds per day of [`BiasSpec::user_day`].
pub const SECONDS_PER_DAY: i64 = 86_400;

/// The day of a Unix timestamp in seconds: `⌊t / 86400⌋` (UTC days since 1970-01-01;
/// negative before it).
pub fn day_of(timestamp: i64) -> i64 {
    timestamp.div_euclid(SECONDS_PER_DAY)
}

/// What the output means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A rating: predictions are clipped to the training ratings' `[min, max]`.
    Rating,
    /// A ranking score, not clipped.
    Score,
}

/// A recommender as data (JSON): the sparse tables, the dense part and how they are
/// wired.
///
/// ```json
/// {"tables": [{"name": "user", "rows": "users", "dim": 32},
///             {"name": "item", "rows": "items", "dim": 32}],
///  "inputs": [{"input": "user", "lookup": "user", "table": "user"},
///             {"input": "item", "lookup": "item", "table": "item"}],
///  "biases": {"global": true, "user": true, "item": true},
///  "dense": {"format_version": 2, "inputs": [{"name": "user", "shape": [32]},
///            {"name": "item", "shape": [32]}],
///            "layers": [{"type": "Dot", "name": "dot", "inputs": ["user", "item"]}]},
///  "output": "rating"}
/// ```
///
/// The dense part's output must be `[batch, 1]`; its inputs must be exactly the bound
/// ones, each of the width of what it receives (checked by [`Recommender::new`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecSpec {
    /// The embedding tables.
    pub tables: Vec<TableSpec>,
    /// One binding per dense input.
    pub inputs: Vec<InputBinding>,
    /// The biases.
    pub biases: BiasSpec,
    /// The dense part.
    pub dense: ModelSpec,
    /// Rating or score.
    pub output: OutputKind,
}

fn table(name: &str, rows: RowKind, dim: usize) -> TableSpec {
    TableSpec { name: name.into(), rows, dim, init_std: DEFAULT_INIT_STD }
}

fn bind(input: &str, lookup: Lookup, table: Option<&str>) -> InputBinding {
    InputBinding { input: input.into(), lookup, table: table.map(str::to_string) }
}

fn input(name: &str, width: usize) -> InputSpec {
    InputSpec { name: name.into(), shape: vec![width] }
}

/// Dense/ReLU layers named `{prefix}_{k}` after `from`, then (with `out`) a linear
/// Dense(`out`); returns the nodes and the last name.
fn stack(prefix: &str, from: &str, hidden: &[usize], out: Option<usize>) -> (Vec<NodeSpec>, String) {
    let mut nodes = Vec::new();
    let mut last = from.to_string();
    for (k, &h) in hidden.iter().enumerate() {
        let name = format!("{prefix}_{k}");
        nodes.push(NodeSpec::named(&name, LayerSpec::dense(h, Activation::Relu)).with_inputs([last.as_str()]));
        last = name;
    }
    if let Some(units) = out {
        let name = format!("{prefix}_out");
        nodes.push(NodeSpec::named(&name, LayerSpec::dense(units, Activation::Linear)).with_inputs([last.as_str()]));
        last = name;
    }
    (nodes, last)
}

impl RecSpec {
    /// The spec of a preset with embeddings of width `embedding_dim`:
    ///
    /// - `mf`: tables `user`, `item`; `Dot(user, item)`; `hidden` is not used;
    /// - `ncf`: tables `user_gmf`, `item_gmf`, `user_mlp`, `item_mlp`; `gmf =
    ///   Multiply(user_gmf, item_gmf)`, `mlp = Concatenate(user_mlp, item_mlp)` then
    ///   `Dense(h, relu)` for each `h` in `hidden` (`mlp_0`, …), `neumf =
    ///   Concatenate(gmf, mlp)`, `out = Dense(1)`;
    /// - `two-tower`: tables `user`, `history` (items), `item`; the user tower
    ///   `Concatenate(user, history)` and the item tower `item` (joined with
    ///   `item_features` when `item_feature_width` is given), each through
    ///   `Dense(h, relu)` for `h` in `hidden` then a linear `Dense(embedding_dim)`;
    ///   `Dot(user_tower, item_tower)`.
    ///
    /// Every preset has all three biases and a `rating` output (set
    /// [`RecSpec::output`] to `score` for implicit feedback).
    ///
    /// # Errors
    /// [`RecError::Config`] for `embedding_dim = 0`, a zero hidden width, or a zero
    /// `item_feature_width`.
    pub fn preset(
        preset: Preset,
        embedding_dim: usize,
        hidden: &[usize],
        item_feature_width: Option<usize>,
    ) -> Result<RecSpec> {
        let d = embedding_dim;
        if d == 0 || hidden.contains(&0) || item_feature_width == Some(0) {
            return Err(RecError::Config(format!(
                "model {preset}: embedding_dim {d}, hidden {hidden:?} and item feature width \
                 {item_feature_width:?} must all be at least 1"
            )));
        }
        let biases = BiasSpec { global: true, user: true, item: true, user_day: false };
        let (tables, inputs, dense) = match preset {
            Preset::Mf => (
                vec![table("user", RowKind::Users, d), table("item", RowKind::Items, d)],
                vec![bind("user", Lookup::User, Some("user")), bind("item", Lookup::Item, Some("item"))],
                ModelSpec::graph(
                    vec![input("user", d), input("item", d)],
                    vec![NodeSpec::named("dot", LayerSpec::Dot).with_inputs(["user", "item"])],
                    vec!["dot".into()],
                ),
            ),
            Preset::Ncf => {
                let names = ["user_gmf", "item_gmf", "user_mlp", "item_mlp"];
                let kinds = [RowKind::Users, RowKind::Items, RowKind::Users, RowKind::Items];
                let lookups = [Lookup::User, Lookup::Item, Lookup::User, Lookup::Item];
                let mut nodes = vec![
                    NodeSpec::named("gmf", LayerSpec::Multiply).with_inputs(["user_gmf", "item_gmf"]),
                    NodeSpec::named("mlp_concat", LayerSpec::Concatenate(ConcatenateConfig::default()))
                        .with_inputs(["user_mlp", "item_mlp"]),
                ];
                let (mlp, last) = stack("mlp", "mlp_concat", hidden, None);
                nodes.extend(mlp);
                nodes.push(
                    NodeSpec::named("neumf", LayerSpec::Concatenate(ConcatenateConfig::default()))
                        .with_inputs(["gmf", last.as_str()]),
                );
                nodes.push(NodeSpec::named("out", LayerSpec::dense(1, Activation::Linear)).with_inputs(["neumf"]));
                (
                    names.iter().zip(kinds).map(|(n, k)| table(n, k, d)).collect(),
                    names.iter().zip(lookups).map(|(n, l)| bind(n, l, Some(n))).collect(),
                    ModelSpec::graph(names.iter().map(|n| input(n, d)).collect(), nodes, vec!["out".into()]),
                )
            }
            Preset::TwoTower => {
                let mut tables = vec![
                    table("user", RowKind::Users, d),
                    table("history", RowKind::Items, d),
                    table("item", RowKind::Items, d),
                ];
                // The history table starts at zero (as SVD++'s y_j start small), so
                // the first epochs are those of a plain two-tower model.
                tables[1].init_std = 0.0;
                let mut inputs = vec![
                    bind("user", Lookup::User, Some("user")),
                    bind("history", Lookup::History, Some("history")),
                    bind("item", Lookup::Item, Some("item")),
                ];
                let mut dense_inputs = vec![input("user", d), input("history", d), input("item", d)];
                let mut nodes =
                    vec![NodeSpec::named("user_concat", LayerSpec::Concatenate(ConcatenateConfig::default()))
                        .with_inputs(["user", "history"])];
                let (user_tower, user_last) = stack("user_tower", "user_concat", hidden, Some(d));
                nodes.extend(user_tower);
                let item_from = match item_feature_width {
                    Some(w) => {
                        inputs.push(bind("item_features", Lookup::ItemFeatures, None));
                        dense_inputs.push(input("item_features", w));
                        nodes.push(
                            NodeSpec::named("item_concat", LayerSpec::Concatenate(ConcatenateConfig::default()))
                                .with_inputs(["item", "item_features"]),
                        );
                        "item_concat"
                    }
                    None => "item",
                };
                let (item_tower, item_last) = stack("item_tower", item_from, hidden, Some(d));
                nodes.extend(item_tower);
                nodes.push(NodeSpec::named("dot", LayerSpec::Dot).with_inputs([user_last, item_last]));
                (tables, inputs, ModelSpec::graph(dense_inputs, nodes, vec!["dot".into()]))
            }
        };
        Ok(RecSpec { tables, inputs, biases, dense, output: OutputKind::Rating })
    }

    /// Reads a spec from JSON.
    ///
    /// # Errors
    /// [`RecError::Config`] naming what serde refused.
    pub fn from_json(text: &str) -> Result<RecSpec> {
        serde_json::from_str(text).map_err(|e| RecError::Config(format!("recommender spec: {e}")))
    }

    /// The spec as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a RecSpec serialises")
    }

    /// Whether some input is the user's training history.
    pub fn uses_history(&self) -> bool {
        self.inputs.iter().any(|b| b.lookup == Lookup::History)
    }
}

/// One dense input, resolved: what it receives and from which table (index into
/// [`Recommender::tables`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// What it receives.
    pub lookup: Lookup,
    /// The table, for every lookup but `item_features`.
    pub table: Option<usize>,
}

/// A side of a dot-product model: the dense inputs it reads, and the sub-model that
/// computes its vector (`None` when the side is one of the inputs itself).
#[derive(Debug, Clone)]
struct Tower {
    inputs: Vec<usize>,
    model: Option<Model<f32>>,
}

/// Cached item side of a dot-product model.
#[derive(Debug, Clone)]
struct DotCache {
    user: Tower,
    /// `[items, dim]`.
    item_vectors: Vec<f32>,
    dim: usize,
}

/// A trained (or freshly initialised) recommender; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Recommender {
    pub(crate) spec: RecSpec,
    pub(crate) users: IdMap,
    pub(crate) items: IdMap,
    pub(crate) item_table: Option<ItemTable>,
    /// One per [`RecSpec::tables`], in order.
    pub(crate) tables: Vec<EmbeddingTable>,
    /// `[users, 1]` (zeros and never trained when the spec has no user bias).
    pub(crate) user_bias: EmbeddingTable,
    /// `[items, 1]`.
    pub(crate) item_bias: EmbeddingTable,
    /// The `(user, day)` pairs of the training ratings, sorted and unique: row `k` of
    /// `user_day_bias` belongs to `user_days[k]` (empty without
    /// [`BiasSpec::user_day`] or before training).
    pub(crate) user_days: Vec<(usize, i64)>,
    /// `[user_days.len(), 1]`: `b_{u,t}`.
    pub(crate) user_day_bias: EmbeddingTable,
    pub(crate) dense: Model<f32>,
    /// One per dense input, in the dense model's input order.
    pub(crate) resolved: Vec<Resolved>,
    pub(crate) global_bias: f32,
    pub(crate) rating_range: Option<(f32, f32)>,
    pub(crate) seen_users: Vec<bool>,
    pub(crate) seen_items: Vec<bool>,
    /// Per user, the training items (sorted, unique); empty before training.
    pub(crate) histories: Vec<Vec<usize>>,
    cache: OnceLock<Option<Arc<DotCache>>>,
}

impl Recommender {
    /// A recommender for `users` × `items` with fresh weights: table `k` drawn from a
    /// ChaCha8 seeded with `seed + 1 + k`, the dense part from `seed`, biases zero.
    /// Until [`crate::train::fit`] runs, no user or item counts as seen (every lookup
    /// is zeros), the global bias is 0 and nothing is clipped.
    ///
    /// # Errors
    /// [`RecError::Config`] when the spec is inconsistent: a duplicate or unknown
    /// table, a lookup on a table of the wrong row kind, `item_features` without an
    /// `item_table` (or one whose row count differs from `items.len()`), a dense
    /// input without a binding (or the reverse), a width that differs from what the
    /// input receives, an output that is not `[1]`, empty `users` or `items`;
    /// [`RecError::Layer`] when the dense part cannot be built.
    pub fn new(spec: RecSpec, users: IdMap, items: IdMap, item_table: Option<ItemTable>, seed: u64) -> Result<Self> {
        let cfg = |m: String| RecError::Config(m);
        if users.is_empty() || items.is_empty() {
            return Err(cfg(format!("a recommender needs users and items, got {} and {}", users.len(), items.len())));
        }
        if let Some(t) = &item_table {
            if t.num_items() != items.len() || t.features.len() != t.num_items() * t.width() {
                return Err(cfg(format!(
                    "the item table has {} rows of width {} ({} values), the model {} items",
                    t.num_items(),
                    t.width(),
                    t.features.len(),
                    items.len()
                )));
            }
        }
        let mut tables = Vec::with_capacity(spec.tables.len());
        for (k, t) in spec.tables.iter().enumerate() {
            if spec.tables[..k].iter().any(|o| o.name == t.name) {
                return Err(cfg(format!("table \"{}\" is declared twice", t.name)));
            }
            let rows = match t.rows {
                RowKind::Users => users.len(),
                RowKind::Items => items.len(),
            };
            tables.push(EmbeddingTable::new(&t.name, rows, t.dim, t.init_std, seed.wrapping_add(1 + k as u64))?);
        }
        let dense = Model::<f32>::new(spec.dense.clone(), seed)?;
        if dense.output_shapes().len() != 1 || dense.output_shapes()[0] != [1] {
            return Err(cfg(format!(
                "the dense part must have one output of shape [1] per pair, got {:?}",
                dense.output_shapes()
            )));
        }
        let mut resolved = Vec::new();
        for inp in dense.inputs() {
            let b = spec.inputs.iter().find(|b| b.input == inp.name).ok_or_else(|| {
                cfg(format!("dense input \"{}\" has no binding in \"inputs\" (which table or item_features)", inp.name))
            })?;
            let (table, width, want_kind) = match b.lookup {
                Lookup::ItemFeatures => {
                    let t = item_table.as_ref().ok_or_else(|| {
                        cfg(format!("dense input \"{}\" takes item_features, but no items file was given", inp.name))
                    })?;
                    (None, t.width(), None)
                }
                l => {
                    let name = b
                        .table
                        .as_deref()
                        .ok_or_else(|| cfg(format!("dense input \"{}\": lookup {l:?} needs a \"table\"", inp.name)))?;
                    let k = spec
                        .tables
                        .iter()
                        .position(|t| t.name == name)
                        .ok_or_else(|| cfg(format!("dense input \"{}\": unknown table \"{name}\"", inp.name)))?;
                    let kind = if l == Lookup::User { RowKind::Users } else { RowKind::Items };
                    (Some(k), spec.tables[k].dim, Some(kind))
                }
            };
            if let (Some(k), Some(kind)) = (table, want_kind) {
                if spec.tables[k].rows != kind {
                    return Err(cfg(format!(
                        "dense input \"{}\": lookup {:?} needs a table of {kind:?}, \"{}\" has {:?}",
                        inp.name, b.lookup, spec.tables[k].name, spec.tables[k].rows
                    )));
                }
            }
            if inp.shape != [width] {
                return Err(cfg(format!(
                    "dense input \"{}\" has shape {:?}, but receives rows of width {width}",
                    inp.name, inp.shape
                )));
            }
            resolved.push(Resolved { lookup: b.lookup, table });
        }
        if let Some(b) = spec.inputs.iter().find(|b| !dense.inputs().iter().any(|i| i.name == b.input)) {
            return Err(cfg(format!("binding for \"{}\", which is not an input of the dense part", b.input)));
        }
        Ok(Recommender {
            user_bias: EmbeddingTable::new("user_bias", users.len(), 1, 0.0, 0)?,
            item_bias: EmbeddingTable::new("item_bias", items.len(), 1, 0.0, 0)?,
            user_days: Vec::new(),
            user_day_bias: EmbeddingTable::new("user_day_bias", 0, 1, 0.0, 0)?,
            seen_users: vec![false; users.len()],
            seen_items: vec![false; items.len()],
            histories: Vec::new(),
            spec,
            users,
            items,
            item_table,
            tables,
            dense,
            resolved,
            global_bias: 0.0,
            rating_range: None,
            cache: OnceLock::new(),
        })
    }

    /// The spec.
    pub fn spec(&self) -> &RecSpec {
        &self.spec
    }

    /// The users' ids.
    pub fn users(&self) -> &IdMap {
        &self.users
    }

    /// The items' ids.
    pub fn items(&self) -> &IdMap {
        &self.items
    }

    /// The item features, when the model has them.
    pub fn item_table(&self) -> Option<&ItemTable> {
        self.item_table.as_ref()
    }

    /// The embedding tables, in [`RecSpec::tables`] order.
    pub fn tables(&self) -> &[EmbeddingTable] {
        &self.tables
    }

    /// The dense part.
    pub fn dense(&self) -> &Model<f32> {
        &self.dense
    }

    /// The dense inputs, resolved (in the dense model's input order).
    pub fn resolved_inputs(&self) -> &[Resolved] {
        &self.resolved
    }

    /// `μ`: the training mean for ratings (0 before training, and for scores).
    pub fn global_bias(&self) -> f32 {
        self.global_bias
    }

    /// The user bias `b_u` (0 when the spec has none).
    pub fn user_bias(&self, user: usize) -> f32 {
        if self.spec.biases.user {
            self.user_bias.values.get(user).copied().unwrap_or(0.0)
        } else {
            0.0
        }
    }

    /// The item bias `b_i` (0 when the spec has none or the item was not seen).
    pub fn item_bias(&self, item: usize) -> f32 {
        if self.spec.biases.item && self.seen_items.get(item).copied().unwrap_or(false) {
            self.item_bias.values[item]
        } else {
            0.0
        }
    }

    /// The row of `b_{u,t}` for `user` on the day of `timestamp`, if the model has a
    /// user-day bias and that user had a training rating that day.
    pub(crate) fn user_day_row(&self, user: Option<usize>, timestamp: Option<i64>) -> Option<usize> {
        if !self.spec.biases.user_day {
            return None;
        }
        let key = (user?, day_of(timestamp?));
        self.user_days.binary_search(&key).ok()
    }

    /// The day-specific user bias `b_{u,t}` of `user` at `timestamp` (Unix seconds):
    /// 0 when the spec has none, or the user had no training rating on that day.
    pub fn user_day_bias(&self, user: usize, timestamp: i64) -> f32 {
        self.user_day_row(Some(user), Some(timestamp)).map_or(0.0, |k| self.user_day_bias.values[k])
    }

    /// The `[min, max]` predictions are clipped to (rating output after training).
    pub fn rating_range(&self) -> Option<(f32, f32)> {
        self.rating_range
    }

    /// Whether user `u` had interactions in training.
    pub fn is_seen_user(&self, u: usize) -> bool {
        self.seen_users.get(u).copied().unwrap_or(false)
    }

    /// Whether item `i` had interactions in training.
    pub fn is_seen_item(&self, i: usize) -> bool {
        self.seen_items.get(i).copied().unwrap_or(false)
    }

    /// User `u`'s training items, sorted and unique (empty before training and for
    /// an index out of range): what `recommend --exclude-seen` leaves out.
    pub fn training_items(&self, u: usize) -> &[usize] {
        self.histories.get(u).map_or(&[], Vec::as_slice)
    }

    /// Drops the cached item vectors (after the weights change).
    pub(crate) fn invalidate(&mut self) {
        self.cache = OnceLock::new();
    }

    /// Checks the indices of `pairs`.
    fn check_pairs(&self, pairs: &[(Option<usize>, usize)]) -> Result<()> {
        for &(u, i) in pairs {
            if let Some(u) = u.filter(|&u| u >= self.users.len()) {
                return Err(RecError::UnknownId { kind: "user", id: format!("#{u}"), known: self.users.len() });
            }
            if i >= self.items.len() {
                return Err(RecError::UnknownId { kind: "item", id: format!("#{i}"), known: self.items.len() });
            }
        }
        Ok(())
    }

    /// The dense inputs of `pairs`, one tensor `[pairs.len(), width]` per dense input
    /// in the dense model's order: table rows (zeros for unknown users and unseen
    /// items), history means, item features.
    ///
    /// # Errors
    /// [`RecError::UnknownId`] for an index out of range.
    pub fn batch_inputs(&self, pairs: &[(Option<usize>, usize)]) -> Result<Vec<Tensor<f32>>> {
        self.check_pairs(pairs)?;
        let users: Vec<Option<usize>> = pairs.iter().map(|&(u, _)| u.filter(|&u| self.seen_users[u])).collect();
        let items: Vec<Option<usize>> = pairs.iter().map(|&(_, i)| Some(i).filter(|&i| self.seen_items[i])).collect();
        let n = pairs.len();
        self.resolved
            .iter()
            .map(|r| match (r.lookup, r.table) {
                (Lookup::User, Some(t)) => self.tables[t].lookup(&users),
                (Lookup::Item, Some(t)) => self.tables[t].lookup(&items),
                (Lookup::History, Some(t)) => {
                    let table = &self.tables[t];
                    let d = table.dim;
                    let mut out = vec![0f32; n * d];
                    for (k, u) in users.iter().enumerate() {
                        let Some(h) = u.and_then(|u| self.histories.get(u)).filter(|h| !h.is_empty()) else {
                            continue;
                        };
                        let row = &mut out[k * d..(k + 1) * d];
                        for &j in h {
                            row.iter_mut().zip(table.row(j)).for_each(|(o, &v)| *o += v);
                        }
                        let inv = 1.0 / h.len() as f32;
                        row.iter_mut().for_each(|o| *o *= inv);
                    }
                    Ok(Tensor::from_vec(&[n, d], out))
                }
                (Lookup::ItemFeatures, _) => {
                    let t = self.item_table.as_ref().expect("checked in new");
                    let mut out = Vec::with_capacity(n * t.width());
                    for &(_, i) in pairs {
                        out.extend_from_slice(t.row(i));
                    }
                    Ok(Tensor::from_vec(&[n, t.width()], out))
                }
                (l, None) => unreachable!("{l:?} has a table (checked in new)"),
            })
            .collect()
    }

    /// `μ + b_u + b_i (+ b_{u,t})` of each pair (the part outside the dense model);
    /// `timestamps`, when given, has one entry per pair.
    pub(crate) fn offsets(&self, pairs: &[(Option<usize>, usize)], timestamps: Option<&[Option<i64>]>) -> Vec<f32> {
        pairs
            .iter()
            .enumerate()
            .map(|(k, &(u, i))| {
                let mut o = if self.spec.biases.global { self.global_bias } else { 0.0 };
                if let Some(u) = u {
                    o += self.user_bias(u);
                }
                if let Some(r) = self.user_day_row(u, timestamps.and_then(|t| t[k])) {
                    o += self.user_day_bias.values[r];
                }
                o + self.item_bias(i)
            })
            .collect()
    }

    /// The dense part's output for `pairs` (no graph recorded), `[pairs.len()]`.
    fn dense_scores(&self, pairs: &[(Option<usize>, usize)]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(PREDICT_BATCH) {
            let inputs = self.batch_inputs(chunk)?;
            out.extend(run_model(&self.dense, inputs)?);
        }
        Ok(out)
    }

    /// Whether a pair with an unknown user skips the dense part (no history input).
    fn falls_back(&self) -> bool {
        !self.spec.uses_history()
    }

    /// Predicts `pairs` of `(user, item)` indices: `μ + b_u + b_i + dense(...)`,
    /// clipped to the training ratings' `[min, max]` for a rating output. A user
    /// `None` is unknown: `μ + b_i` for a spec without a history input, the user tower
    /// on zeros otherwise (see the [module docs](self)).
    ///
    /// # Shapes
    /// `pairs: [n]` → `[n]`.
    ///
    /// # Errors
    /// [`RecError::UnknownId`] for an index out of range; [`RecError::Layer`] if the
    /// dense part fails.
    pub fn predict(&self, pairs: &[(Option<usize>, usize)]) -> Result<Vec<f32>> {
        self.predict_inner(pairs, None)
    }

    /// [`Recommender::predict`] of ratings given at known times (`timestamps[k]`, Unix
    /// seconds, for pair `k`; `None`: unknown): with a [`BiasSpec::user_day`] bias, a
    /// pair whose user had a training rating on that day gets `b_{u,t}` too.
    ///
    /// # Shapes
    /// `pairs: [n]`, `timestamps: [n]` → `[n]`.
    ///
    /// # Errors
    /// As [`Recommender::predict`]; [`RecError::Config`] when the lengths differ.
    pub fn predict_at(&self, pairs: &[(Option<usize>, usize)], timestamps: &[Option<i64>]) -> Result<Vec<f32>> {
        if timestamps.len() != pairs.len() {
            return Err(RecError::Config(format!("{} timestamps for {} pairs", timestamps.len(), pairs.len())));
        }
        self.predict_inner(pairs, Some(timestamps))
    }

    fn predict_inner(&self, pairs: &[(Option<usize>, usize)], timestamps: Option<&[Option<i64>]>) -> Result<Vec<f32>> {
        self.check_pairs(pairs)?;
        let offsets = self.offsets(pairs, timestamps);
        let mut out = offsets.clone();
        let run: Vec<usize> = (0..pairs.len()).filter(|&k| pairs[k].0.is_some() || !self.falls_back()).collect();
        if !run.is_empty() {
            let sub: Vec<_> = run.iter().map(|&k| pairs[k]).collect();
            let s = self.dense_scores(&sub)?;
            for (&k, s) in run.iter().zip(s) {
                out[k] += s;
            }
        }
        Ok(self.clip(out))
    }

    fn clip(&self, mut v: Vec<f32>) -> Vec<f32> {
        if let (OutputKind::Rating, Some((lo, hi))) = (self.spec.output, self.rating_range) {
            v.iter_mut().for_each(|x| *x = x.clamp(lo, hi));
        }
        v
    }

    /// The score of every item for `user` (`[items]`, index order), unclipped (for
    /// ranking: clipping would tie the best items at the maximum rating). For a
    /// dot-product model (the dense output a `Dot` whose two sides read only user
    /// inputs and only item inputs: `mf`, `two-tower`) the item vectors are computed
    /// once and cached, and a user's scores are one matrix–vector product; other
    /// models run the dense part over all items in batches.
    ///
    /// # Errors
    /// As [`Recommender::predict`].
    pub fn score_all_items(&self, user: Option<usize>) -> Result<Vec<f32>> {
        let n = self.items.len();
        let pairs: Vec<(Option<usize>, usize)> = (0..n).map(|i| (user, i)).collect();
        self.check_pairs(&pairs[..1])?;
        let mut out = self.offsets(&pairs, None);
        if user.is_none() && self.falls_back() {
            return Ok(out);
        }
        match self.dot_cache()? {
            Some(c) => {
                let inputs = self.batch_inputs(&pairs[..1])?;
                let u = eval_tower(&c.user, inputs)?;
                for (i, o) in out.iter_mut().enumerate() {
                    let v = &c.item_vectors[i * c.dim..(i + 1) * c.dim];
                    *o += v.iter().zip(&u).map(|(a, b)| a * b).sum::<f32>();
                }
            }
            None => {
                let s = self.dense_scores(&pairs)?;
                out.iter_mut().zip(s).for_each(|(o, s)| *o += s);
            }
        }
        Ok(out)
    }

    /// Item vectors for similarity, `[items, d]` row-major: the item tower's output
    /// of a dot-product model (the item table's row for `mf`), otherwise the item
    /// tables' rows side by side (`ncf`: `[q_gmf, q_mlp]`). Items never seen in
    /// training have zero embeddings (a two-tower item tower still sees their
    /// features). Returns `(vectors, d)`.
    ///
    /// # Errors
    /// [`RecError::Layer`] if the item tower fails.
    pub fn item_vectors(&self) -> Result<(Vec<f32>, usize)> {
        if let Some(c) = self.dot_cache()? {
            return Ok((c.item_vectors.clone(), c.dim));
        }
        let item_tables: Vec<&EmbeddingTable> = self
            .tables
            .iter()
            .zip(&self.spec.tables)
            .filter(|(_, s)| s.rows == RowKind::Items)
            .map(|(t, _)| t)
            .collect();
        let d: usize = item_tables.iter().map(|t| t.dim).sum();
        let mut out = Vec::with_capacity(self.items.len() * d);
        for i in 0..self.items.len() {
            for t in &item_tables {
                if self.seen_items[i] {
                    out.extend_from_slice(t.row(i));
                } else {
                    out.extend(std::iter::repeat_n(0.0, t.dim));
                }
            }
        }
        Ok((out, d))
    }

    /// The cached towers of a dot-product model (`None` for other models).
    fn dot_cache(&self) -> Result<Option<Arc<DotCache>>> {
        if let Some(c) = self.cache.get() {
            return Ok(c.clone());
        }
        let built = self.build_dot_cache()?.map(Arc::new);
        Ok(self.cache.get_or_init(|| built).clone())
    }

    fn build_dot_cache(&self) -> Result<Option<DotCache>> {
        let Some((user_side, item_side)) = self.dot_sides() else {
            return Ok(None);
        };
        let user = self.tower(user_side)?;
        let item = self.tower(item_side)?;
        let n = self.items.len();
        let mut vectors = Vec::new();
        let pairs: Vec<(Option<usize>, usize)> = (0..n).map(|i| (None, i)).collect();
        for chunk in pairs.chunks(PREDICT_BATCH) {
            vectors.extend(eval_tower(&item, self.batch_inputs(chunk)?)?);
        }
        let dim = vectors.len() / n;
        Ok(Some(DotCache { user, item_vectors: vectors, dim }))
    }

    /// For a dense part whose output is a `Dot` of a user-only side and an item-only
    /// side: `(user side, item side)`.
    fn dot_sides(&self) -> Option<(Source, Source)> {
        let Source::Layer(out) = *self.dense.outputs().first()? else {
            return None;
        };
        if self.dense.spec().layers[out].layer != LayerSpec::Dot {
            return None;
        }
        let sides = self.dense.layer_inputs(out);
        let kind = |s: Source| {
            let inputs = self.ancestor_inputs(s);
            let user = inputs.iter().all(|&k| matches!(self.resolved[k].lookup, Lookup::User | Lookup::History));
            let item = inputs.iter().all(|&k| matches!(self.resolved[k].lookup, Lookup::Item | Lookup::ItemFeatures));
            (user && !inputs.is_empty(), item && !inputs.is_empty())
        };
        match (kind(sides[0]), kind(sides[1])) {
            ((true, _), (_, true)) => Some((sides[0], sides[1])),
            ((_, true), (true, _)) => Some((sides[1], sides[0])),
            _ => None,
        }
    }

    /// The dense inputs `s` depends on, ascending.
    fn ancestor_inputs(&self, s: Source) -> Vec<usize> {
        let (_, inputs) = self.ancestors(s);
        inputs
    }

    /// The layers (ascending) and inputs (ascending) that `s` depends on.
    fn ancestors(&self, s: Source) -> (Vec<usize>, Vec<usize>) {
        let mut layers = std::collections::BTreeSet::new();
        let mut inputs = std::collections::BTreeSet::new();
        let mut stack = vec![s];
        while let Some(s) = stack.pop() {
            match s {
                Source::Input(k) => {
                    inputs.insert(k);
                }
                Source::Layer(j) => {
                    if layers.insert(j) {
                        stack.extend(self.dense.layer_inputs(j).iter().copied());
                    }
                }
            }
        }
        (layers.into_iter().collect(), inputs.into_iter().collect())
    }

    /// The sub-model computing `s` from its inputs, its parameters copied by name.
    fn tower(&self, s: Source) -> Result<Tower> {
        let (layers, inputs) = self.ancestors(s);
        let Source::Layer(out) = s else {
            return Ok(Tower { inputs, model: None });
        };
        let name_of = |s: Source| match s {
            Source::Input(k) => self.dense.inputs()[k].name.clone(),
            Source::Layer(j) => self.dense.layer_name(j).to_string(),
        };
        let nodes = layers
            .iter()
            .map(|&j| NodeSpec {
                name: Some(self.dense.layer_name(j).to_string()),
                inputs: Some(self.dense.layer_inputs(j).iter().map(|&s| name_of(s)).collect()),
                layer: self.dense.spec().layers[j].layer,
            })
            .collect();
        let specs = inputs.iter().map(|&k| self.dense.inputs()[k].clone()).collect();
        let mut model = Model::<f32>::new(ModelSpec::graph(specs, nodes, vec![self.dense.layer_name(out).into()]), 0)?;
        let names: Vec<String> = model.parameters().iter().map(|p| p.name.clone()).collect();
        for name in names {
            let p = self.dense.parameter(&name).expect("a tower's parameters are the dense part's");
            model.set_parameter(&name, (*p.value).clone())?;
        }
        Ok(Tower { inputs, model: Some(model) })
    }

    /// Saves to directory `dir` (created if missing): [`SPEC_FILE`] (the spec, the id
    /// maps, the item feature spec with titles, μ, the rating range, which users and
    /// items were seen, the histories) and [`WEIGHTS_FILE`] (`table.{name}`,
    /// `bias.user`, `bias.item`, `bias.user_day` (with that bias; its `(user, day)` keys go in the JSON), `dense.{parameter}`, `item_features`), each written to
    /// a temporary file then renamed.
    ///
    /// # Errors
    /// [`RecError::Io`] when a file cannot be written; [`RecError::Format`] if
    /// safetensors refuses the header.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| RecError::Io { path: dir.to_path_buf(), source: e })?;
        let saved = Saved {
            format: FORMAT.to_string(),
            spec: self.spec.clone(),
            users: self.users.clone(),
            items: self.items.clone(),
            item_features: self.item_table.as_ref().map(|t| SavedItems {
                spec: t.spec.clone(),
                has_features: t.has_features.clone(),
                titles: t.titles.clone(),
            }),
            global_bias: self.global_bias,
            rating_range: self.rating_range,
            seen_users: self.seen_users.clone(),
            seen_items: self.seen_items.clone(),
            histories: self.histories.clone(),
            user_days: self.user_days.clone(),
        };
        let json = serde_json::to_string(&saved).expect("a recommender serialises");
        let spec_path = dir.join(SPEC_FILE);
        nn_tensor::io::write_atomic(&spec_path, |w| w.write_all(json.as_bytes()))
            .map_err(|e| RecError::Io { path: spec_path.clone(), source: e })?;
        let mut named: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
        for t in &self.tables {
            named.push((format!("table.{}", t.name), vec![t.rows, t.dim], &t.values));
        }
        named.push(("bias.user".into(), vec![self.users.len(), 1], &self.user_bias.values));
        named.push(("bias.item".into(), vec![self.items.len(), 1], &self.item_bias.values));
        if self.spec.biases.user_day {
            named.push(("bias.user_day".into(), vec![self.user_days.len(), 1], &self.user_day_bias.values));
        }
        for p in self.dense.parameters() {
            let s = p.value.as_slice().expect("parameters are contiguous");
            named.push((format!("dense.{}", p.name), p.shape().to_vec(), s));
        }
        if let Some(t) = &self.item_table {
            named.push(("item_features".into(), vec![t.num_items(), t.width()], &t.features));
        }
        let path = dir.join(WEIGHTS_FILE);
        let bytes: Vec<Vec<u8>> =
            named.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
        let views = named
            .iter()
            .zip(&bytes)
            .map(|((name, shape, _), b)| {
                TensorView::new(Dtype::F32, shape.clone(), b)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| RecError::Format { path: path.clone(), message: e.to_string() })
            })
            .collect::<Result<Vec<_>>>()?;
        let info = HashMap::from([("format".to_string(), FORMAT.to_string())]);
        let data = safetensors::serialize(views, Some(info))
            .map_err(|e| RecError::Format { path: path.clone(), message: e.to_string() })?;
        nn_tensor::io::write_atomic(&path, |w| w.write_all(&data)).map_err(|e| RecError::Io { path, source: e })
    }

    /// Loads a recommender saved by [`Recommender::save`]; every name and shape is
    /// checked before it is used.
    ///
    /// # Errors
    /// [`RecError::Io`] when a file cannot be read; [`RecError::Format`] naming the
    /// file for a wrong format, malformed JSON or safetensors, a missing or extra
    /// tensor, a wrong dtype or shape, or lists whose lengths disagree with the id
    /// maps; [`RecError::Config`] as [`Recommender::new`] for an inconsistent spec.
    pub fn load(dir: &Path) -> Result<Self> {
        let spec_path = dir.join(SPEC_FILE);
        let text =
            std::fs::read_to_string(&spec_path).map_err(|e| RecError::Io { path: spec_path.clone(), source: e })?;
        let fmt_err = |path: &Path, message: String| RecError::Format { path: path.to_path_buf(), message };
        let saved: Saved = serde_json::from_str(&text).map_err(|e| fmt_err(&spec_path, e.to_string()))?;
        if saved.format != FORMAT {
            return Err(fmt_err(&spec_path, format!("format \"{}\", expected \"{FORMAT}\"", saved.format)));
        }
        let (nu, ni) = (saved.users.len(), saved.items.len());
        if saved.seen_users.len() != nu
            || saved.seen_items.len() != ni
            || !(saved.histories.is_empty() || saved.histories.len() == nu)
            || saved.histories.iter().flatten().any(|&j| j >= ni)
            || saved.user_days.iter().any(|&(u, _)| u >= nu)
            || saved.user_days.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(fmt_err(&spec_path, format!("seen/history lists do not match {nu} users and {ni} items")));
        }
        let path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| RecError::Io { path: path.clone(), source: e })?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| fmt_err(&path, e.to_string()))?;
        let mut tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(fmt_err(&path, format!("tensor \"{name}\" is {:?}, expected F32", view.dtype())));
            }
            let v = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            tensors.insert(name, (view.shape().to_vec(), v));
        }
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let (s, v) = tensors.remove(name).ok_or_else(|| fmt_err(&path, format!("missing tensor \"{name}\"")))?;
            if s != shape {
                return Err(fmt_err(&path, format!("tensor \"{name}\" has shape {s:?}, expected {shape:?}")));
            }
            Ok(v)
        };
        let item_table = match saved.item_features {
            Some(it) => {
                let w = it.spec.width();
                if it.has_features.len() != ni || it.titles.len() != ni {
                    return Err(fmt_err(&spec_path, format!("item feature lists do not match {ni} items")));
                }
                let features = take("item_features", &[ni, w])?;
                Some(ItemTable { spec: it.spec, features, has_features: it.has_features, titles: it.titles })
            }
            None => None,
        };
        let mut rec = Recommender::new(saved.spec, saved.users, saved.items, item_table, 0)?;
        for t in &mut rec.tables {
            t.values = take(&format!("table.{}", t.name), &[t.rows, t.dim])?;
        }
        rec.user_bias.values = take("bias.user", &[nu, 1])?;
        rec.item_bias.values = take("bias.item", &[ni, 1])?;
        if rec.spec.biases.user_day {
            let n = saved.user_days.len();
            rec.user_day_bias = EmbeddingTable::from_values("user_day_bias", n, 1, take("bias.user_day", &[n, 1])?)?;
            rec.user_days = saved.user_days;
        } else if !saved.user_days.is_empty() {
            return Err(fmt_err(&spec_path, "user_days without a user_day bias in the spec".into()));
        }
        let params: Vec<(String, Vec<usize>)> =
            rec.dense.parameters().iter().map(|p| (p.name.clone(), p.shape().to_vec())).collect();
        for (name, shape) in params {
            let v = take(&format!("dense.{name}"), &shape)?;
            rec.dense.set_parameter(&name, Tensor::from_vec(&shape, v))?;
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(fmt_err(&path, format!("unexpected tensor \"{extra}\"")));
        }
        rec.global_bias = saved.global_bias;
        rec.rating_range = saved.rating_range;
        rec.seen_users = saved.seen_users;
        rec.seen_items = saved.seen_items;
        rec.histories = saved.histories;
        Ok(rec)
    }
}

/// Runs `model` (one output `[n, 1]`) on `inputs` without recording a graph.
fn run_model<T: Element>(model: &Model<T>, inputs: Vec<Tensor<T>>) -> Result<Vec<T>> {
    let mut g = Graph::<T>::no_grad();
    let vars: Vec<_> = inputs.into_iter().map(|x| g.input(x)).collect();
    let mut rng = seeded_rng(0);
    let ys = model.forward_all(&mut g, &vars, &mut ForwardCtx::new(Mode::Eval, &mut rng), false)?;
    Ok(g.value(ys[0]).to_vec())
}

/// A tower's vectors (`[n, d]` row-major) from the full dense inputs of `n` pairs.
fn eval_tower(t: &Tower, mut inputs: Vec<Tensor<f32>>) -> Result<Vec<f32>> {
    let mut mine: Vec<Tensor<f32>> = Vec::with_capacity(t.inputs.len());
    for &k in &t.inputs {
        mine.push(std::mem::replace(&mut inputs[k], Tensor::zeros(&[0])));
    }
    match &t.model {
        Some(m) => run_model(m, mine),
        None => Ok(mine.pop().expect("a side reads one input").to_vec()),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedItems {
    spec: ItemFeatureSpec,
    has_features: Vec<bool>,
    titles: Vec<Option<String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    format: String,
    spec: RecSpec,
    users: IdMap,
    items: IdMap,
    item_features: Option<SavedItems>,
    global_bias: f32,
    rating_range: Option<(f32, f32)>,
    seen_users: Vec<bool>,
    seen_items: Vec<bool>,
    histories: Vec<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    user_days: Vec<(usize, i64)>,
}
