//! Classification and regression metrics.
//!
//! Every epoch figure is an exact average over samples: a partial last batch counts
//! by its size ([`MeanAccumulator`]), never as a whole batch.

use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Serialize};

/// Regression figures in the target's own units, for `k` outputs per sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegressionReport {
    /// Root mean squared error `√(Σ(p − y)² / (N·k))`.
    pub rmse: f64,
    /// Mean absolute error `Σ|p − y| / (N·k)`.
    pub mae: f64,
    /// Coefficient of determination `1 − Σ(p − y)² / Σ(y − ȳ)²`, with `ȳ` the mean of
    /// each output over these samples (scikit-learn `r2_score`, outputs averaged
    /// uniformly); `NaN` when an output is constant over the samples.
    pub r2: f64,
    /// The RMSE of the constant baseline that predicts each output's training mean
    /// (scikit-learn `DummyRegressor(strategy="mean")` fitted on the training part).
    pub baseline_rmse: f64,
}

impl RegressionReport {
    /// Computes the report from predictions and targets (row-major `[N, k]`, the same
    /// length, a multiple of `k = baseline.len()`) and the training mean of each
    /// output (`baseline`). Sums are accumulated in `f64`.
    ///
    /// Returns `None` when the lengths do not fit or there is no sample.
    pub fn new(predicted: &[f32], targets: &[f32], baseline: &[f64]) -> Option<RegressionReport> {
        let k = baseline.len();
        if k == 0 || predicted.len() != targets.len() || targets.is_empty() || !targets.len().is_multiple_of(k) {
            return None;
        }
        let n = targets.len() / k;
        let mut mean = vec![0.0f64; k];
        for row in targets.chunks_exact(k) {
            for (m, &y) in mean.iter_mut().zip(row) {
                *m += y as f64 / n as f64;
            }
        }
        let (mut sse, mut sae, mut base) = (vec![0.0f64; k], 0.0f64, 0.0f64);
        let mut sst = vec![0.0f64; k];
        for (i, (&p, &y)) in predicted.iter().zip(targets).enumerate() {
            let j = i % k;
            let e = p as f64 - y as f64;
            sse[j] += e * e;
            sae += e.abs();
            let b = baseline[j] - y as f64;
            base += b * b;
            sst[j] += (y as f64 - mean[j]).powi(2);
        }
        let total = targets.len() as f64;
        let r2 =
            sse.iter().zip(&sst).map(|(e, t)| if *t > 0.0 { 1.0 - e / t } else { f64::NAN }).sum::<f64>() / k as f64;
        Some(RegressionReport {
            rmse: (sse.iter().sum::<f64>() / total).sqrt(),
            mae: sae / total,
            r2,
            baseline_rmse: (base / total).sqrt(),
        })
    }

    /// Whether the model does worse than predicting the training mean.
    pub fn worse_than_baseline(&self) -> bool {
        self.rmse.is_nan() || self.rmse >= self.baseline_rmse
    }
}

/// A sample-weighted running mean: `Σ value·count / Σ count`, accumulated in f64.
/// Serialisable, so that a checkpoint taken in the middle of an epoch resumes its
/// running means exactly (JSON keeps every bit of an f64).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeanAccumulator {
    sum: f64,
    count: f64,
}

impl MeanAccumulator {
    /// An empty accumulator (its mean is NaN until something is added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value`, the mean over `count` samples (e.g. a batch's mean loss and the
    /// batch size).
    pub fn add(&mut self, value: f64, count: usize) {
        self.sum += value * count as f64;
        self.count += count as f64;
    }

    /// The mean over every sample added; NaN when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0.0 {
            f64::NAN
        } else {
            self.sum / self.count
        }
    }

    /// Samples added so far.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// `Σ value·count` so far (what data-parallel ranks add up).
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The accumulator holding `sum` over `count` samples (the sums of several
    /// accumulators, e.g. of several ranks, added up).
    pub fn from_sum(sum: f64, count: usize) -> Self {
        MeanAccumulator { sum, count: count as f64 }
    }
}

/// The predicted class of each row of `scores` `[batch, classes]` (logits or
/// probabilities): the index of the row maximum, first index on ties.
///
/// # Panics
/// If `scores` is not 2-d with at least one class (shapes are checked by the model
/// before this is reached).
pub fn argmax_rows<T: Element>(scores: &Tensor<T>) -> Vec<usize> {
    scores.argmax(1).into_raw_vec_and_offset().0
}

/// Fraction of `predicted` equal to `targets`: `#{i : pᵢ = tᵢ} / n` (NaN for n = 0).
pub fn accuracy(predicted: &[usize], targets: &[usize]) -> f64 {
    let hits = predicted.iter().zip(targets).filter(|(p, t)| p == t).count();
    hits as f64 / targets.len() as f64
}

/// Top-k accuracy: the fraction of rows of `scores` `[batch, classes]` whose target's
/// score is among the `k` largest (Keras `top_k_categorical_accuracy`; a tie at the
/// k-th place counts in the target's favour, i.e. fewer than `k` scores are strictly
/// larger than the target's).
pub fn top_k_accuracy<T: Element>(scores: &Tensor<T>, targets: &[usize], k: usize) -> f64 {
    let view = scores.array();
    let classes = scores.shape().get(1).copied().unwrap_or(0);
    let mut hits = 0;
    for (i, &t) in targets.iter().enumerate() {
        if t >= classes {
            continue;
        }
        let target_score = view[[i, t]];
        let larger = (0..classes).filter(|&c| view[[i, c]] > target_score).count();
        if larger < k {
            hits += 1;
        }
    }
    hits as f64 / targets.len() as f64
}

/// Mean squared error `Σ (p − y)² / n` over all elements.
pub fn mse(predicted: &[f64], targets: &[f64]) -> f64 {
    predicted.iter().zip(targets).map(|(p, y)| (p - y) * (p - y)).sum::<f64>() / targets.len() as f64
}

/// Mean absolute error `Σ |p − y| / n` over all elements.
pub fn mae(predicted: &[f64], targets: &[f64]) -> f64 {
    predicted.iter().zip(targets).map(|(p, y)| (p - y).abs()).sum::<f64>() / targets.len() as f64
}

/// A confusion matrix: `counts[target][predicted]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    counts: Vec<Vec<u64>>,
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// `TP / (TP + FP)`; 0 when the class was never predicted (scikit-learn's convention).
    pub precision: f64,
    /// `TP / (TP + FN)`; 0 when the class never occurs.
    pub recall: f64,
    /// Harmonic mean `2·P·R / (P + R)`; 0 when both are 0.
    pub f1: f64,
    /// Samples whose target is this class.
    pub support: u64,
}

impl ConfusionMatrix {
    /// The most characters of a class name [`render`](Self::render) shows in the
    /// header of a column.
    pub const MAX_COLUMN: usize = 12;

    /// An all-zero matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix { counts: vec![vec![0; classes]; classes] }
    }

    /// Counts each (target, prediction) pair; pairs naming a class `>= classes` are ignored.
    pub fn add(&mut self, predicted: &[usize], targets: &[usize]) {
        let n = self.counts.len();
        for (&p, &t) in predicted.iter().zip(targets) {
            if p < n && t < n {
                self.counts[t][p] += 1;
            }
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    /// The counts, to overwrite with the sums of several ranks' matrices.
    pub(crate) fn counts_mut(&mut self) -> &mut [Vec<u64>] {
        &mut self.counts
    }

    /// `counts[target][predicted]`.
    pub fn counts(&self) -> &[Vec<u64>] {
        &self.counts
    }

    /// Samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Diagonal over total.
    pub fn accuracy(&self) -> f64 {
        let diag: u64 = (0..self.classes()).map(|c| self.counts[c][c]).sum();
        diag as f64 / self.total() as f64
    }

    /// Precision, recall, F1 and support of class `c`.
    pub fn class_scores(&self, c: usize) -> ClassScores {
        let tp = self.counts[c][c] as f64;
        let predicted: u64 = self.counts.iter().map(|row| row[c]).sum();
        let support: u64 = self.counts[c].iter().sum();
        let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
        let precision = ratio(tp, predicted);
        let recall = ratio(tp, support);
        let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
        ClassScores { precision, recall, f1, support }
    }

    /// Unweighted mean of the per-class F1 scores (macro F1).
    pub fn macro_f1(&self) -> f64 {
        (0..self.classes()).map(|c| self.class_scores(c).f1).sum::<f64>() / self.classes() as f64
    }

    /// A text table: one row per target class, one column per predicted class,
    /// followed by precision, recall, F1 and support per class. `names` labels the
    /// classes (indices are used when it is shorter). The columns are as wide as the
    /// longest name, up to [`Self::MAX_COLUMN`] characters (longer names are cut in
    /// the header), and at least 5 and the widest count.
    pub fn render(&self, names: &[String]) -> String {
        let label = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
        let width = (0..self.classes()).map(|c| label(c).chars().count()).max().unwrap_or(1).max(6);
        let longest = (0..self.classes()).map(|c| label(c).chars().count()).max().unwrap_or(1);
        let counts = self.counts.iter().flatten().map(|v| v.to_string().len()).max().unwrap_or(1);
        let cell = counts.max(longest.min(Self::MAX_COLUMN)).max(5);
        let mut out = format!("{:>width$} | predicted\n{:>width$} |", "target", "");
        for c in 0..self.classes() {
            out += &format!(" {:>cell$}", label(c).chars().take(cell).collect::<String>());
        }
        out += " | precision recall     f1 support\n";
        for t in 0..self.classes() {
            out += &format!("{:>width$} |", label(t));
            for p in 0..self.classes() {
                out += &format!(" {:>cell$}", self.counts[t][p]);
            }
            let s = self.class_scores(t);
            out += &format!(" | {:>9.4} {:>6.4} {:>6.4} {:>7}\n", s.precision, s.recall, s.f1, s.support);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn regression_report_by_hand() {
        // y = [1, 2, 3, 6], p = [1, 3, 3, 4]: errors 0, 1, 0, -2.
        // SSE 5, RMSE sqrt(5/4), MAE 3/4; ȳ = 3, SST 4+1+0+9 = 14, R² = 1 − 5/14.
        // Baseline 2 (the training mean): errors 1, 0, -1, -4, RMSE sqrt(18/4).
        let r = RegressionReport::new(&[1.0, 3.0, 3.0, 4.0], &[1.0, 2.0, 3.0, 6.0], &[2.0]).unwrap();
        assert!((r.rmse - 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(r.mae, 0.75);
        assert!((r.r2 - (1.0 - 5.0 / 14.0)).abs() < 1e-12);
        assert!((r.baseline_rmse - 4.5f64.sqrt()).abs() < 1e-12);
        assert!(!r.worse_than_baseline());
        assert!(RegressionReport::new(&[1.0], &[1.0, 2.0], &[0.0]).is_none());
        // A constant target: R² undefined.
        assert!(RegressionReport::new(&[1.0, 2.0], &[2.0, 2.0], &[2.0]).unwrap().r2.is_nan());
    }

    use super::*;

    #[test]
    fn partial_batch_counts_by_its_size() {
        // 1,000 samples at batch 128: 7 full batches with loss 1.0, one of 104 with loss 2.0.
        let mut m = MeanAccumulator::new();
        for _ in 0..7 {
            m.add(1.0, 128);
        }
        m.add(2.0, 104);
        // (7·128·1 + 104·2) / 1000 = 1.104, not the batch mean (7 + 2)/8 = 1.125.
        assert!((m.mean() - 1.104).abs() < 1e-12);
        assert_eq!(m.count(), 1000);
        assert!(MeanAccumulator::new().mean().is_nan());
    }

    #[test]
    fn accuracy_topk_and_regression_by_hand() {
        assert_eq!(accuracy(&[0, 1, 2, 2], &[0, 1, 1, 2]), 0.75);
        let scores = Tensor::<f32>::from_vec(&[3, 3], vec![0.1, 0.7, 0.2, 0.5, 0.3, 0.2, 0.3, 0.3, 0.4]);
        assert_eq!(argmax_rows(&scores), vec![1, 0, 2]);
        // Targets 2, 1, 0: ranks of the target score are 2nd, 2nd, tied 2nd.
        assert_eq!(top_k_accuracy(&scores, &[2, 1, 0], 1), 0.0);
        assert_eq!(top_k_accuracy(&scores, &[2, 1, 0], 2), 1.0);
        // errors 1, −2, 0.5: MSE (1 + 4 + 0.25)/3 = 1.75, MAE 3.5/3
        assert!((mse(&[2., 0., 1.5], &[1., 2., 1.]) - 1.75).abs() < 1e-15);
        assert!((mae(&[2., 0., 1.5], &[1., 2., 1.]) - 3.5 / 3.).abs() < 1e-15);
    }

    #[test]
    fn confusion_matrix_scores_by_hand() {
        let mut cm = ConfusionMatrix::new(3);
        // targets:   0 0 0 1 1 2
        // predicted: 0 0 1 1 2 2
        cm.add(&[0, 0, 1, 1, 2, 2], &[0, 0, 0, 1, 1, 2]);
        assert_eq!(cm.counts(), &[vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]);
        assert!((cm.accuracy() - 4. / 6.).abs() < 1e-15);
        // class 0: TP 2, predicted 2, support 3 → P 1, R 2/3, F1 0.8
        let s = cm.class_scores(0);
        assert_eq!((s.precision, s.support), (1.0, 3));
        assert!((s.recall - 2. / 3.).abs() < 1e-15 && (s.f1 - 0.8).abs() < 1e-15);
        // class 1: TP 1, predicted 2, support 2 → P ½, R ½, F1 ½; class 2: P ½, R 1, F1 2/3
        assert_eq!(cm.class_scores(1).f1, 0.5);
        assert!((cm.class_scores(2).f1 - 2. / 3.).abs() < 1e-15);
        assert!((cm.macro_f1() - (0.8 + 0.5 + 2. / 3.) / 3.).abs() < 1e-15);
        let text = cm.render(&["zero".into(), "one".into(), "two".into()]);
        assert!(text.contains("zero |     2     1     0 |    1.0000 0.6667 0.8000       3"), "{text}");
        // A class never predicted has precision 0, not NaN.
        let mut cm = ConfusionMatrix::new(2);
        cm.add(&[0, 0], &[0, 1]);
        assert_eq!(cm.class_scores(1).precision, 0.0);
    }

    #[test]
    fn confusion_matrix_columns_fit_the_class_names() {
        let mut cm = ConfusionMatrix::new(3);
        cm.add(&[0, 1, 2], &[0, 1, 1]);
        let names = ["common".to_string(), "rare".to_string(), "a_much_longer_class_name".to_string()];
        let text = cm.render(&names);
        let header = text.lines().nth(1).unwrap();
        // Columns 12 wide (the cap): names whole up to 12 characters, longer ones cut.
        assert_eq!(
            header,
            format!(
                "{:>24} | {:>12} {:>12} {:>12} | precision recall     f1 support",
                "", "common", "rare", "a_much_longe"
            )
        );
        assert!(text.contains(&format!("{:>24} | {:>12} {:>12} {:>12} |", "rare", 0, 1, 1)), "{text}");
        // Short names: columns 5 wide, as before.
        let text = cm.render(&["a".into(), "b".into(), "c".into()]);
        assert_eq!(text.lines().nth(1).unwrap(), "       |     a     b     c | precision recall     f1 support");
    }
}
