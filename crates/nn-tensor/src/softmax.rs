//! Numerically stable `log_sum_exp`, `softmax` and `log_softmax` along an axis.
//!
//! All three subtract the lane maximum `m` first (the standard shift; e.g. Goodfellow,
//! Bengio & Courville, *Deep Learning*, §4.1): `lse(x) = m + ln Σ exp(x − m)`, so no
//! `exp` overflows and the largest term is exactly 1. Logits of ±1e4 give exact, finite
//! results, and a lane of equal values (however negative) gives a uniform softmax.
//! A lane containing +inf, or only −inf, gives NaN (as PyTorch does).

use ndarray::Axis;

use crate::element::Element;
use crate::error::Result;
use crate::tensor::{unwrap, Tensor};

fn check_axis<T: Element>(t: &Tensor<T>, op: &'static str, axis: usize) -> Result<()> {
    crate::shape::check_axes(op, &[axis], t.shape())
}

/// `(max, ln Σ exp(x − max))` of one lane; the max of an all-(−inf) lane is taken as 0
/// so that lane's log-sum-exp is −inf rather than NaN.
#[inline]
fn lane_stats<'a, T: Element>(lane: impl Iterator<Item = &'a T> + Clone) -> (T, T) {
    let m = lane.clone().fold(T::neg_infinity(), |m, &x| if x > m || x.is_nan() { x } else { m });
    let m = if m == T::neg_infinity() { T::zero() } else { m };
    let s = lane.fold(T::zero(), |s, &x| s + (x - m).exp());
    (m, s.ln())
}

/// Elements per block of whole rows handed to one thread of nn's pool.
const ROW_BLOCK: usize = 1 << 15;

/// Runs `f` on each row of `data` (row-major, rows of `n`), spread over nn's pool in
/// blocks of whole rows (sequential for small data). Each row is computed the same
/// way wherever it runs, so results are bit-identical at any thread count.
fn for_each_row<T: Element>(data: &mut [T], n: usize, f: impl Fn(&mut [T]) + Send + Sync) {
    if n == 0 {
        return;
    }
    let rows = (ROW_BLOCK / n).max(1);
    crate::for_each_chunk_mut(data, rows * n, || (), |_, _, block| block.chunks_mut(n).for_each(&f));
}

/// `softmax` of one row, in place: `exp(x − m) / Σ exp(x − m)` (`f32`: vectorized,
/// [`crate::fastmath::softmax_f32`]). Returns the shift `m` and the sum `Σ exp(x − m)`.
fn softmax_row<T: Element>(row: &mut [T]) -> (T, T) {
    if let Some(r) = crate::fastmath::as_f32(row) {
        let (m, sum) = crate::fastmath::softmax_f32(r);
        return (T::of_f64(m as f64), T::of_f64(sum as f64));
    }
    let (m, _) = lane_stats(row.iter());
    let mut sum = T::zero();
    for x in row.iter_mut() {
        let e = (*x - m).exp();
        sum += e;
        *x = e;
    }
    row.iter_mut().for_each(|e| *e /= sum);
    (m, sum)
}

/// `log_softmax` of one row, in place: `x − m − ln Σ exp(x − m)` (`f32`:
/// vectorized, [`crate::fastmath::log_softmax_f32`]).
fn log_softmax_row<T: Element>(row: &mut [T]) {
    if let Some(r) = crate::fastmath::as_f32(row) {
        return crate::fastmath::log_softmax_f32(r);
    }
    let (m, l) = lane_stats(row.iter());
    row.iter_mut().for_each(|x| *x = *x - m - l);
}

/// `softmax` of one row in place, returning `−ln softmax(x)_t = −((x_t − m) − ln Σ
/// e^{x − m})`, the negative log-likelihood of class `t` (`t < row.len()`).
fn softmax_nll_row<T: Element>(row: &mut [T], t: usize) -> T {
    let x_t = row[t];
    let (m, sum) = softmax_row(row);
    -((x_t - m) - sum.ln())
}

impl<T: Element> Tensor<T> {
    /// The softmax along the last axis together with the cross-entropy of each row
    /// against an integer class: for logits `[..., classes]` (every leading axis a
    /// row, row-major) and one target per row, returns the probabilities (same shape)
    /// and `ℓ_r = −ln softmax(x_r)[t_r] = −((x_{r,t} − m_r) − ln Σ_j e^{x_{r,j} − m_r})`,
    /// `m_r` the row max (the stable form; Goodfellow, Bengio & Courville, *Deep
    /// Learning*, §6.2.2.3). One pass of `exp` serves both the loss and its gradient
    /// `softmax − onehot`. Rows are spread over nn's pool (bit-identical at any thread
    /// count); `f32` rows use the vectorized kernels of [`crate::fastmath`].
    ///
    /// # Errors
    /// [`TensorError::Rank`](crate::TensorError::Rank) for a 0-d tensor;
    /// [`TensorError::ShapeMismatch`](crate::TensorError::ShapeMismatch) unless there
    /// is one target per row; [`TensorError::IndexOutOfBounds`](crate::TensorError::IndexOutOfBounds)
    /// for a target `>= classes`.
    pub fn try_softmax_nll(&self, targets: &[usize]) -> Result<(Self, Vec<T>)> {
        let op = "softmax_nll";
        let Some(&classes) = self.shape().last() else {
            return Err(crate::TensorError::Rank { op, expected: "at least 1", shape: vec![] });
        };
        let rows = self.len().checked_div(classes).unwrap_or(0);
        if targets.len() != rows {
            return Err(crate::TensorError::ShapeMismatch { op, lhs: self.shape().to_vec(), rhs: vec![targets.len()] });
        }
        if let Some(&t) = targets.iter().find(|&&t| t >= classes) {
            let axis = self.ndim() - 1;
            return Err(crate::TensorError::IndexOutOfBounds { op, index: t, axis, len: classes });
        }
        if rows == 0 || classes == 0 {
            return Ok((self.to_contiguous(), vec![T::zero(); rows]));
        }
        let src = self.data.as_standard_layout();
        let src = src.as_slice().expect("standard layout");
        // Each block of rows is copied and transformed by the worker that owns it (no
        // single-threaded copy of the whole logits first).
        let per_block = (ROW_BLOCK / classes).max(1);
        let (probs, nll) = crate::vec_pair_by_chunks(
            (src.len(), per_block * classes, T::zero()),
            (rows, per_block, T::zero()),
            || (),
            |_, block, p, l| {
                p.copy_from_slice(&src[block * per_block * classes..][..p.len()]);
                for (k, (row, l)) in p.chunks_exact_mut(classes).zip(l.iter_mut()).enumerate() {
                    *l = softmax_nll_row(row, targets[block * per_block + k]);
                }
            },
        );
        let probs = ndarray::ArrayD::from_shape_vec(self.data.raw_dim(), probs).expect("same element count");
        Ok((Tensor { data: probs }, nll))
    }

    /// `ln Σ_axis exp(x)`, stably; with `keepdims` the axis stays with length 1.
    ///
    /// # Errors
    /// [`TensorError::Axis`](crate::TensorError::Axis) for an axis `>= ndim`.
    pub fn try_log_sum_exp(&self, axis: usize, keepdims: bool) -> Result<Self> {
        check_axis(self, "log_sum_exp", axis)?;
        let mut data = self.data.map_axis(Axis(axis), |lane| {
            let (m, l) = lane_stats(lane.iter());
            m + l
        });
        if keepdims {
            data.insert_axis_inplace(Axis(axis));
        }
        Ok(Tensor { data })
    }

    /// Panicking twin of [`Tensor::try_log_sum_exp`].
    #[track_caller]
    pub fn log_sum_exp(&self, axis: usize, keepdims: bool) -> Self {
        unwrap(self.try_log_sum_exp(axis, keepdims))
    }

    /// `exp(x − lse(x))` along `axis`: each lane sums to 1.
    ///
    /// # Errors
    /// [`TensorError::Axis`](crate::TensorError::Axis) for an axis `>= ndim`.
    ///
    /// Along the last axis the rows are spread over nn's pool (bit-identical at any
    /// thread count).
    pub fn try_softmax(&self, axis: usize) -> Result<Self> {
        check_axis(self, "softmax", axis)?;
        let mut out = self.data.as_standard_layout().into_owned();
        let n = out.shape()[axis];
        match out.as_slice_mut() {
            Some(data) if axis + 1 == self.ndim() => for_each_row(data, n, |r| {
                softmax_row(r);
            }),
            _ => {
                for mut lane in out.lanes_mut(Axis(axis)) {
                    let mut row = lane.to_vec();
                    softmax_row(&mut row);
                    lane.iter_mut().zip(row).for_each(|(o, v)| *o = v);
                }
            }
        }
        Ok(Tensor { data: out })
    }

    /// Panicking twin of [`Tensor::try_softmax`].
    #[track_caller]
    pub fn softmax(&self, axis: usize) -> Self {
        unwrap(self.try_softmax(axis))
    }

    /// `x − lse(x)` along `axis`: log-probabilities, exact for extreme logits.
    ///
    /// # Errors
    /// [`TensorError::Axis`](crate::TensorError::Axis) for an axis `>= ndim`.
    ///
    /// Along the last axis the rows are spread over nn's pool (bit-identical at any
    /// thread count).
    pub fn try_log_softmax(&self, axis: usize) -> Result<Self> {
        check_axis(self, "log_softmax", axis)?;
        let mut out = self.data.as_standard_layout().into_owned();
        let n = out.shape()[axis];
        match out.as_slice_mut() {
            Some(data) if axis + 1 == self.ndim() => for_each_row(data, n, log_softmax_row),
            _ => {
                for mut lane in out.lanes_mut(Axis(axis)) {
                    let (m, l) = lane_stats(lane.iter());
                    lane.mapv_inplace(|x| x - m - l);
                }
            }
        }
        Ok(Tensor { data: out })
    }

    /// Panicking twin of [`Tensor::try_log_softmax`].
    #[track_caller]
    pub fn log_softmax(&self, axis: usize) -> Self {
        unwrap(self.try_log_softmax(axis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn large_logits_are_shift_invariant_and_exact() {
        let a = Tensor::<f64>::from_vec(&[3], vec![1000., 1001., 1002.]).softmax(0);
        let b = Tensor::<f64>::from_vec(&[3], vec![0., 1., 2.]).softmax(0);
        assert_eq!(a.to_vec(), b.to_vec());
        // softmax([0,1,2]) = e^i / (1 + e + e²)
        let z = 1.0 + 1f64.exp() + 2f64.exp();
        for (i, v) in b.to_vec().into_iter().enumerate() {
            assert!((v - (i as f64).exp() / z).abs() < 4.0 * f64::EPSILON);
        }
        // lse([1e4, -1e4]) = 1e4 + ln(1 + e^-2e4) = 1e4 exactly in floating point.
        let x = Tensor::<f32>::from_vec(&[1, 2], vec![1e4, -1e4]);
        assert_eq!(x.log_sum_exp(1, false).to_vec(), vec![1e4]);
        assert_eq!(x.log_softmax(1).to_vec(), vec![0.0, -2e4]);
        assert_eq!(x.softmax(1).to_vec(), vec![1.0, 0.0]);
    }

    #[test]
    fn equal_very_negative_row_is_uniform() {
        let x = Tensor::<f32>::from_vec(&[2, 4], vec![-1e30; 8]);
        assert_eq!(x.softmax(1).to_vec(), vec![0.25; 8]);
        let l = x.log_softmax(1).to_vec();
        assert!(l.iter().all(|&v| (v - (0.25f32).ln()).abs() < 1e-6));
        let neg_inf = Tensor::<f64>::from_vec(&[2], vec![f64::NEG_INFINITY; 2]);
        assert_eq!(neg_inf.log_sum_exp(0, false).item(), f64::NEG_INFINITY);
        assert!(Tensor::<f64>::zeros(&[2]).try_softmax(1).is_err());
    }

    #[test]
    fn lse_by_hand() {
        // ln(e^1 + e^2 + e^3) = 3 + ln(1 + e^-1 + e^-2)
        let x = Tensor::<f64>::from_vec(&[3, 1], vec![1., 2., 3.]);
        let want = 3.0 + (1.0 + (-1f64).exp() + (-2f64).exp()).ln();
        let got = x.log_sum_exp(0, true);
        assert_eq!(got.shape(), &[1, 1]);
        assert!((got.item() - want).abs() < 1e-15);
    }

    #[test]
    fn softmax_nll_by_formula_in_f64_and_f32() {
        // Rows [1, 2, 3] target 2 and [0, 0, 0] target 0 (and the same as a [1, 2, 3]
        // tensor): ℓ = ln(e¹ + e² + e³) − 3 = ln(1 + e⁻¹ + e⁻²), and ln 3.
        let z = 1.0 + (-1f64).exp() + (-2f64).exp();
        for shape in [vec![2, 3], vec![1, 2, 3]] {
            let x = Tensor::<f64>::from_vec(&shape, vec![1., 2., 3., 0., 0., 0.]);
            let (p, nll) = x.try_softmax_nll(&[2, 0]).unwrap();
            assert_eq!(p.shape(), &shape[..]);
            assert!((nll[0] - z.ln()).abs() < 1e-15 && (nll[1] - 3f64.ln()).abs() < 1e-15);
            let want = [(-2f64).exp() / z, (-1f64).exp() / z, 1.0 / z, 1. / 3., 1. / 3., 1. / 3.];
            for (a, b) in p.to_vec().iter().zip(want) {
                assert!((a - b).abs() < 1e-15, "{a} vs {b}");
            }
            assert_eq!(p.to_vec(), x.softmax(x.ndim() - 1).to_vec());
        }
        // f32 over 2,048 classes and many rows (the pool path) against f64.
        let (rows, classes) = (40, 2048);
        let vals: Vec<f32> = (0..rows * classes).map(|i| ((i * 7919) % 1000) as f32 * 0.01 - 5.0).collect();
        let targets: Vec<usize> = (0..rows).map(|r| (r * 37) % classes).collect();
        let (p, nll) = Tensor::<f32>::from_vec(&[rows, classes], vals.clone()).try_softmax_nll(&targets).unwrap();
        let p = p.to_vec();
        for r in 0..rows {
            let row = &vals[r * classes..][..classes];
            let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            assert!((nll[r] as f64 - (lse - row[targets[r]] as f64)).abs() < 2e-6, "row {r}");
            let sum: f64 = p[r * classes..][..classes].iter().map(|&v| v as f64).sum();
            assert!((sum - 1.0).abs() < 1e-5);
        }
        // Errors: a target per row, each in range.
        let x = Tensor::<f32>::zeros(&[2, 3]);
        assert!(matches!(x.try_softmax_nll(&[0]), Err(crate::TensorError::ShapeMismatch { .. })));
        assert!(matches!(x.try_softmax_nll(&[0, 3]), Err(crate::TensorError::IndexOutOfBounds { index: 3, .. })));
    }

    proptest! {
        #[test]
        fn softmax_rows_sum_to_one_and_ignore_shifts(
            rows in 1usize..5, cols in 1usize..7, shift in -1e3f64..1e3,
            vals in prop::collection::vec(-50f64..50., 36),
        ) {
            let x = Tensor::<f64>::from_vec(&[rows, cols], vals[..rows * cols].to_vec());
            let s = x.softmax(1);
            for r in 0..rows {
                let sum: f64 = (0..cols).map(|c| s.get(&[r, c]).unwrap()).sum();
                prop_assert!((sum - 1.0).abs() < 1e-12);
            }
            let shifted = x.add_scalar(shift).softmax(1);
            prop_assert!(s.all_close(&shifted, 1e-9, 1e-12));
            let ls = x.log_softmax(1);
            prop_assert!(ls.exp().all_close(&s, 1e-12, 1e-14));
        }
    }
}
