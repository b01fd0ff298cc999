//! Reductions over one or several axes: sum, mean, max, min, variance, argmax.

use ndarray::{ArrayD, Axis};

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::shape::check_axes;
use crate::tensor::{unwrap, Tensor};

/// Folds `axes` (sorted descending so indices stay valid) with `f` over each lane.
fn reduce_axes<T: Element>(
    t: &Tensor<T>,
    op: &'static str,
    axes: &[usize],
    keepdims: bool,
    f: impl Fn(ndarray::ArrayViewD<'_, T>, Axis) -> ArrayD<T>,
) -> Result<Tensor<T>> {
    check_axes(op, axes, t.shape())?;
    let mut sorted = axes.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut data = t.data.clone();
    for &a in &sorted {
        data = f(data.view(), Axis(a));
        if keepdims {
            data.insert_axis_inplace(Axis(a));
        }
    }
    Ok(Tensor { data })
}

fn nan_max<T: Element>(a: T, b: T) -> T {
    if a.is_nan() || b > a {
        if a.is_nan() {
            a
        } else {
            b
        }
    } else if b.is_nan() {
        b
    } else {
        a
    }
}

fn nan_min<T: Element>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else if b < a {
        b
    } else {
        a
    }
}

impl<T: Element> Tensor<T> {
    /// Sum over `axes`; with `keepdims` the reduced axes stay with length 1.
    /// An empty axis list returns the tensor unchanged. Summation runs in index order
    /// along each axis, so results are reproducible.
    ///
    /// # Errors
    /// [`TensorError::Axis`] for an axis `>= ndim` or a repeated axis.
    pub fn try_sum_axes(&self, axes: &[usize], keepdims: bool) -> Result<Self> {
        reduce_axes(self, "sum", axes, keepdims, |v, a| v.sum_axis(a))
    }

    /// Panicking twin of [`Tensor::try_sum_axes`].
    #[track_caller]
    pub fn sum_axes(&self, axes: &[usize], keepdims: bool) -> Self {
        unwrap(self.try_sum_axes(axes, keepdims))
    }

    /// Arithmetic mean over `axes` (sum divided by the product of their lengths;
    /// NaN for an empty axis).
    pub fn try_mean_axes(&self, axes: &[usize], keepdims: bool) -> Result<Self> {
        let count: usize = axes.iter().filter_map(|&a| self.shape().get(a)).product();
        let sum = self.try_sum_axes(axes, keepdims)?;
        let n = T::of_f64(count as f64);
        Ok(sum.map(|s| s / n))
    }

    /// Panicking twin of [`Tensor::try_mean_axes`].
    #[track_caller]
    pub fn mean_axes(&self, axes: &[usize], keepdims: bool) -> Self {
        unwrap(self.try_mean_axes(axes, keepdims))
    }

    /// Maximum over `axes`; NaN propagates. An empty axis gives −inf.
    pub fn try_max_axes(&self, axes: &[usize], keepdims: bool) -> Result<Self> {
        reduce_axes(self, "max", axes, keepdims, |v, a| v.fold_axis(a, T::neg_infinity(), |&m, &x| nan_max(m, x)))
    }

    /// Minimum over `axes`; NaN propagates. An empty axis gives +inf.
    pub fn try_min_axes(&self, axes: &[usize], keepdims: bool) -> Result<Self> {
        reduce_axes(self, "min", axes, keepdims, |v, a| v.fold_axis(a, T::infinity(), |&m, &x| nan_min(m, x)))
    }

    /// Population variance over `axes` (divides by the count, `ddof = 0`, as Keras
    /// and batch normalization use): `mean((x − mean(x))²)`, computed in two passes.
    pub fn try_var_axes(&self, axes: &[usize], keepdims: bool) -> Result<Self> {
        let mean = self.try_mean_axes(axes, true)?;
        let centered = self.try_sub(&mean)?;
        let sq = centered.map(|d| d * d);
        sq.try_mean_axes(axes, keepdims)
    }

    /// Sum of all elements (in row-major order).
    pub fn sum(&self) -> T {
        self.data.iter().fold(T::zero(), |a, &x| a + x)
    }

    /// Mean of all elements; NaN for an empty tensor.
    pub fn mean(&self) -> T {
        self.sum() / T::of_f64(self.len() as f64)
    }

    /// Maximum of all elements; NaN propagates; −inf for an empty tensor.
    pub fn max(&self) -> T {
        self.data.iter().fold(T::neg_infinity(), |m, &x| nan_max(m, x))
    }

    /// Minimum of all elements; NaN propagates; +inf for an empty tensor.
    pub fn min(&self) -> T {
        self.data.iter().fold(T::infinity(), |m, &x| nan_min(m, x))
    }

    /// Index of the largest element along `axis` (the axis removed from the shape).
    /// Ties go to the first index; a NaN counts as the largest value (as NumPy).
    ///
    /// # Errors
    /// [`TensorError::Axis`] for a bad axis; [`TensorError::InvalidArgument`] when
    /// the axis has length 0.
    pub fn try_argmax(&self, axis: usize) -> Result<ArrayD<usize>> {
        check_axes("argmax", &[axis], self.shape())?;
        if self.shape()[axis] == 0 {
            return Err(TensorError::InvalidArgument {
                op: "argmax",
                message: format!("axis {axis} of shape {:?} is empty", self.shape()),
            });
        }
        Ok(self.data.map_axis(Axis(axis), |lane| {
            let mut best = 0;
            let mut best_v = lane[0];
            for (i, &v) in lane.iter().enumerate().skip(1) {
                if best_v.is_nan() {
                    break;
                }
                if v > best_v || v.is_nan() {
                    best = i;
                    best_v = v;
                }
            }
            best
        }))
    }

    /// Panicking twin of [`Tensor::try_argmax`].
    #[track_caller]
    pub fn argmax(&self, axis: usize) -> ArrayD<usize> {
        unwrap(self.try_argmax(axis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t234() -> Tensor<f64> {
        Tensor::from_vec(&[2, 3, 4], (0..24).map(f64::from).collect())
    }

    #[test]
    fn sums_and_means_by_hand() {
        let t = t234();
        // Σ over axis 1 of element (i, j, k) = 12i + 4j + k: 3·(12i + k) + 12.
        let s = t.sum_axes(&[1], false);
        assert_eq!(s.shape(), &[2, 4]);
        assert_eq!(s.to_vec(), vec![12., 15., 18., 21., 48., 51., 54., 57.]);
        let s = t.sum_axes(&[0, 2], true);
        assert_eq!(s.shape(), &[1, 3, 1]);
        // Σ_{i,k} 12i + 4j + k = 4·12 + 8·4j + 2·6 = 60 + 32j
        assert_eq!(s.to_vec(), vec![60., 92., 124.]);
        assert_eq!(t.mean_axes(&[0, 1, 2], false).item(), 11.5);
        assert_eq!(t.sum(), 276.);
        assert!(t.try_sum_axes(&[3], false).is_err());
        assert!(t.try_sum_axes(&[1, 1], false).is_err());
    }

    #[test]
    fn max_min_var_argmax() {
        let t = Tensor::<f32>::from_vec(&[2, 3], vec![1., 5., 5., -2., -7., 0.]);
        assert_eq!(t.try_max_axes(&[1], false).unwrap().to_vec(), vec![5., 0.]);
        assert_eq!(t.try_min_axes(&[0], true).unwrap().to_vec(), vec![-2., -7., 0.]);
        assert_eq!(t.argmax(1).into_raw_vec_and_offset().0, vec![1, 2]);
        // var of [1, 5, 5] = mean([-8/3, 4/3, 4/3]²) = (64 + 16 + 16)/27 = 32/9
        let v = t.try_var_axes(&[1], false).unwrap().to_vec();
        assert!((v[0] - 32. / 9.).abs() < 1e-6);
        let nan = Tensor::<f32>::from_vec(&[3], vec![1., f32::NAN, 3.]);
        assert!(nan.max().is_nan());
        assert_eq!(nan.argmax(0)[[]], 1);
        assert!(Tensor::<f32>::zeros(&[0, 2]).try_argmax(0).is_err());
    }
}
