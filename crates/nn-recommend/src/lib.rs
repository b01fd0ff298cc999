//! Recommendation for nn (the seed's section 6.1): learn users' tastes from ratings or
//! implicit feedback and from the items' features, then rank items for each user.
//!
//! - [`data`]: ratings and item files (`userId,movieId,rating,timestamp`;
//!   `movieId,title,genres`), ids mapped to contiguous indices ([`IdMap`]), item
//!   features (multi-valued categories split on `|`, words of a title, numbers scaled).
//! - [`split`]: random, per-user leave-last-out by time, and a global time cut.
//! - [`sparse`]: embedding tables kept outside the autograd tape, looked up per batch
//!   and updated only on the rows the batch used (lazy Adam, L2 on those rows).
//! - [`model`]: the [`Recommender`]: sparse tables (the "sparse part") feeding a graph
//!   [`nn_layers::Model`] (the "dense part"); presets `mf`, `ncf`, `two-tower`.
//! - [`train`]: the training loop: MSE on explicit ratings, BPR or sampled softmax with
//!   seeded negative sampling on implicit feedback.
//! - [`rank`]: exact top-N with a partial sort, HR@K, NDCG@K, recall@K, catalogue
//!   coverage, the popularity baseline.

pub mod data;
pub mod error;
pub mod model;
pub mod rank;
pub mod sparse;
pub mod split;
pub mod train;

pub use data::{
    item_counts, items_by_user, read_items, read_ratings, Duplicates, Feedback, IdMap, Interaction, ItemFeature,
    ItemFeatureSpec, ItemTable, ItemsOptions, Ratings, RatingsOptions,
};
pub use error::{RecError, Result};
pub use split::{Split, SplitData};
