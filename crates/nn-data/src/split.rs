//! Splitting sample indices into training, validation and test parts.
//!
//! Every function returns index sets into `0..n` that are disjoint and together
//! cover every index exactly once; [`Dataset`](crate::Dataset) has a method for each
//! that returns sub-datasets.
//!
//! # Counts
//! [`split_counts`] turns fractions into exact counts that sum to `n` by the
//! largest-remainder (Hamilton) method: part `i` gets `floor(n·fᵢ)`, then the samples
//! left over go one each to the parts with the largest fractional parts `n·fᵢ −
//! floor(n·fᵢ)`, ties to the earlier part. `n·fᵢ` within `1e-9·max(n, 1)` of an
//! integer counts as that integer, so `0.7/0.2/0.1` of 10 gives exactly 7/2/1.
//!
//! # Randomness
//! Shuffles use ChaCha8 seeded with `seed` on stream [`SPLIT_STREAM`] and a
//! Fisher–Yates shuffle of our own (see [`crate::batch`]), so a split depends only
//! on `(n, fractions, seed)` (and the labels, for a stratified split) on every
//! platform and rand version.

use crate::batch::{shuffle_in_place, stream_rng};
use crate::error::{invalid, Result};

/// The ChaCha8 stream used by the split shuffles. Epoch `k` of
/// [`Batcher`](crate::Batcher) uses stream `k`, so a split and an epoch never share a
/// random sequence even under the same seed.
pub const SPLIT_STREAM: u64 = u64::MAX;

/// Exact part sizes for `fractions` of `n` samples (largest-remainder rounding, see
/// the [module docs](self)); they sum to `n`.
///
/// # Errors
/// [`DataError::InvalidArgument`](crate::DataError::InvalidArgument) for an empty
/// list, a negative or non-finite fraction, or fractions whose sum differs from 1 by
/// more than `1e-6`.
pub fn split_counts(n: usize, fractions: &[f64]) -> Result<Vec<usize>> {
    if fractions.is_empty() {
        return Err(invalid("split", "no fractions given"));
    }
    if let Some(f) = fractions.iter().find(|f| !f.is_finite() || **f < 0.0) {
        return Err(invalid("split", format!("fraction {f} must be finite and non-negative")));
    }
    let sum: f64 = fractions.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(invalid("split", format!("fractions {fractions:?} sum to {sum}, not 1")));
    }
    let tolerance = 1e-9 * (n.max(1) as f64);
    let quotas: Vec<f64> = fractions
        .iter()
        .map(|f| {
            let q = f * n as f64;
            if (q - q.round()).abs() <= tolerance {
                q.round()
            } else {
                q
            }
        })
        .collect();
    let mut counts: Vec<usize> = quotas.iter().map(|q| (q.floor() as usize).min(n)).collect();
    let assigned: usize = counts.iter().sum();
    if assigned > n {
        // Only possible through the tolerance snapping of a sum just above 1: take the
        // excess back from the largest parts, last first.
        let mut excess = assigned - n;
        while excess > 0 {
            let i = (0..counts.len()).rev().max_by_key(|&i| counts[i]).expect("non-empty");
            counts[i] -= 1;
            excess -= 1;
        }
        return Ok(counts);
    }
    let mut order: Vec<usize> = (0..fractions.len()).collect();
    // Largest fractional part first; the sort is stable, so ties keep the earlier part.
    order.sort_by(|&a, &b| {
        let ra = quotas[a] - quotas[a].floor();
        let rb = quotas[b] - quotas[b].floor();
        rb.partial_cmp(&ra).unwrap_or(std::cmp::Ordering::Equal)
    });
    for &i in order.iter().cycle().take(n - assigned) {
        counts[i] += 1;
    }
    Ok(counts)
}

/// Keras's `validation_split`: the last `fraction` of the samples, taken before any
/// shuffling, is the validation set. Returns `(train, validation)` with
/// `train = 0..s` and `validation = s..n`, where `s = floor(n · (1 − fraction))` in
/// `f64`, exactly as Keras 3 computes it (`train_validation_split` in
/// `keras/src/trainers/data_adapters/array_slicing.py`), so 60,000 samples at 0.2
/// give 48,000 and 12,000.
///
/// # Errors
/// [`DataError::InvalidArgument`](crate::DataError::InvalidArgument) unless
/// `0 < fraction < 1` and both parts are non-empty (Keras raises the same).
pub fn validation_split(n: usize, fraction: f64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(invalid("validation_split", format!("fraction {fraction} must lie strictly between 0 and 1")));
    }
    let split_at = (n as f64 * (1.0 - fraction)).floor() as usize;
    if split_at == 0 || split_at >= n {
        return Err(invalid(
            "validation_split",
            format!("{n} samples at fraction {fraction} leave a part empty (training {split_at})"),
        ));
    }
    Ok(((0..split_at).collect(), (split_at..n).collect()))
}

/// A seeded shuffled split: a random permutation of `0..n` cut into parts of
/// [`split_counts`] sizes. Each part lists its indices in that random order.
///
/// # Errors
/// As [`split_counts`].
pub fn shuffled_split(n: usize, fractions: &[f64], seed: u64) -> Result<Vec<Vec<usize>>> {
    let counts = split_counts(n, fractions)?;
    let mut order: Vec<usize> = (0..n).collect();
    shuffle_in_place(&mut order, &mut stream_rng(seed, SPLIT_STREAM));
    let mut parts = Vec::with_capacity(counts.len());
    let mut start = 0;
    for c in counts {
        parts.push(order[start..start + c].to_vec());
        start += c;
    }
    Ok(parts)
}

/// A seeded stratified split: every part keeps the class proportions of `labels`
/// as closely as whole samples allow, and the part sizes are exactly
/// [`split_counts`]`(labels.len(), fractions)`.
///
/// Method: class `c` with `n_c` samples gets `floor(n_c · T_j / N)` samples in part
/// `j` (where `T_j` is part `j`'s total); the samples left over are handed out one at
/// a time to the (class, part) cells with the largest remainders, ties to the lower
/// class then the earlier part, while both the class and the part still lack samples
/// (then to any cell where both still do). Within each class the samples are
/// shuffled before being cut, and each part is shuffled at the end, so classes are
/// interleaved.
///
/// # Errors
/// As [`split_counts`], and
/// [`DataError::InvalidArgument`](crate::DataError::InvalidArgument) for a label
/// `>= num_classes`.
pub fn stratified_split(labels: &[usize], num_classes: usize, fractions: &[f64], seed: u64) -> Result<Vec<Vec<usize>>> {
    let n = labels.len();
    let totals = split_counts(n, fractions)?;
    let parts = totals.len();
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        let Some(list) = by_class.get_mut(l) else {
            return Err(invalid(
                "stratified_split",
                format!("label {l} of sample {i} is not below {num_classes} classes"),
            ));
        };
        list.push(i);
    }

    // cells[c][j]: how many samples of class c go to part j.
    let mut cells = vec![vec![0usize; parts]; num_classes];
    let mut remainders = Vec::new();
    let mut class_left = vec![0usize; num_classes];
    let mut part_left = totals.clone();
    for (c, members) in by_class.iter().enumerate() {
        let nc = members.len();
        for j in 0..parts {
            // Exact integer arithmetic: floor(nc · T_j / n) and its remainder.
            let num = nc as u128 * totals[j] as u128;
            let q = if n == 0 { 0 } else { (num / n as u128) as usize };
            let r = if n == 0 { 0 } else { num % n as u128 };
            cells[c][j] = q;
            part_left[j] -= q;
            remainders.push((r, c, j));
        }
        class_left[c] = nc - cells[c].iter().sum::<usize>();
    }
    // Hand out the leftovers: each fractional cell may get one more sample. Largest
    // remainders first; then augmenting paths (as in bipartite matching) move
    // earlier choices where that lets every class and part reach its total, which is
    // always possible (controlled rounding; Bacharach 1966, by flow integrality).
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut extra = vec![vec![false; parts]; num_classes];
    for &(r, c, j) in &remainders {
        if r > 0 && class_left[c] > 0 && part_left[j] > 0 {
            extra[c][j] = true;
            class_left[c] -= 1;
            part_left[j] -= 1;
        }
    }
    let mut fractional = vec![vec![false; parts]; num_classes];
    for &(r, c, j) in &remainders {
        fractional[c][j] = r > 0;
    }
    while class_left.iter().any(|&l| l > 0) {
        if !augment(&fractional, &mut extra, &mut class_left, &mut part_left) {
            break;
        }
    }
    for c in 0..num_classes {
        for j in 0..parts {
            cells[c][j] += usize::from(extra[c][j]);
        }
    }
    // Unreachable in theory; keeps the totals exact should rounding ever fail.
    for c in 0..num_classes {
        for j in 0..parts {
            let k = class_left[c].min(part_left[j]);
            cells[c][j] += k;
            class_left[c] -= k;
            part_left[j] -= k;
        }
    }

    let mut rng = stream_rng(seed, SPLIT_STREAM);
    let mut out = vec![Vec::new(); parts];
    for (c, members) in by_class.iter_mut().enumerate() {
        shuffle_in_place(members, &mut rng);
        let mut start = 0;
        for j in 0..parts {
            out[j].extend_from_slice(&members[start..start + cells[c][j]]);
            start += cells[c][j];
        }
    }
    for part in &mut out {
        shuffle_in_place(part, &mut rng);
    }
    Ok(out)
}

/// One augmenting path for the leftover assignment of [`stratified_split`]: from a
/// class still short of samples, over an unused fractional cell to a part, and back
/// from that part over a used cell to another class, until a part still short of
/// samples is reached; flips the cells on the path. Returns whether one was found.
fn augment(
    fractional: &[Vec<bool>],
    extra: &mut [Vec<bool>],
    class_left: &mut [usize],
    part_left: &mut [usize],
) -> bool {
    let classes = class_left.len();
    let parts = part_left.len();
    // Breadth-first search over class nodes; `via[j]` is the class that reached part j.
    let mut class_seen = vec![false; classes];
    let mut parent_part: Vec<Option<usize>> = vec![None; classes];
    let mut via: Vec<Option<usize>> = vec![None; parts];
    let mut queue: std::collections::VecDeque<usize> = (0..classes).filter(|&c| class_left[c] > 0).collect();
    queue.iter().for_each(|&c| class_seen[c] = true);
    while let Some(c) = queue.pop_front() {
        for j in 0..parts {
            if !fractional[c][j] || extra[c][j] || via[j].is_some() {
                continue;
            }
            via[j] = Some(c);
            if part_left[j] > 0 {
                // Walk back, flipping cells.
                let mut part = j;
                loop {
                    let cls = via[part].expect("set on the path");
                    extra[cls][part] = true;
                    match parent_part[cls] {
                        Some(prev) => {
                            extra[cls][prev] = false;
                            part = prev;
                        }
                        None => {
                            class_left[cls] -= 1;
                            part_left[j] -= 1;
                            return true;
                        }
                    }
                }
            }
            for c2 in 0..classes {
                if extra[c2][j] && !class_seen[c2] {
                    class_seen[c2] = true;
                    parent_part[c2] = Some(j);
                    queue.push_back(c2);
                }
            }
        }
    }
    false
}
