//! Element-wise arithmetic with NumPy broadcasting, scalar operations, unary maths
//! and comparison masks.

use ndarray::{ArrayD, IxDyn, Zip};

use crate::element::Element;
use crate::error::Result;
use crate::shape::broadcast_shape;
use crate::tensor::{unwrap, Tensor};

/// Elements per work chunk of the threaded element-wise maps ([`Tensor::map_par`]):
/// 128 KiB of `f32`, enough to amortise scheduling, small enough to balance.
const PAR_CHUNK: usize = 1 << 15;

impl<T: Element> Tensor<T> {
    /// Applies `f` to each pair of elements of `self` and `rhs` broadcast together
    /// (NumPy rules, see [`broadcast_shape`](crate::shape::broadcast_shape)).
    /// The result is contiguous with the broadcast shape.
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`](crate::TensorError::ShapeMismatch) naming `op`
    /// when the shapes do not broadcast.
    pub fn try_zip_map(&self, rhs: &Tensor<T>, op: &'static str, f: impl Fn(T, T) -> T) -> Result<Self> {
        let out_shape = broadcast_shape(op, self.shape(), rhs.shape())?;
        crate::shape::checked_numel(op, &out_shape)?;
        let shape = IxDyn(&out_shape);
        let a = self.data.broadcast(shape.clone()).expect("shape checked");
        let b = rhs.data.broadcast(shape.clone()).expect("shape checked");
        let mut out = ArrayD::<T>::zeros(shape);
        Zip::from(&mut out).and(&a).and(&b).for_each(|o, &x, &y| *o = f(x, y));
        Ok(Tensor { data: out })
    }

    /// Applies `f` to every element, keeping the shape (result contiguous).
    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        Tensor { data: self.data.map(|&x| f(x)) }
    }

    /// Two results of `f` for every element, as two tensors of this shape: `(a, b)`
    /// with `a[i] = f(x[i]).0`, `b[i] = f(x[i]).1` (an activation and its slope in
    /// one pass). Spread over nn's pool as [`Tensor::map_par`] (same chunks, so the
    /// same bits at any thread count); mark `f` `#[inline(always)]` so it is
    /// compiled into the vectorized loop.
    pub fn map2_par(&self, f: impl Fn(T) -> (T, T) + Send + Sync) -> (Self, Self) {
        let (a, b) = match self.data.as_slice() {
            Some(src) if src.len() >= 2 * PAR_CHUNK => crate::map2_by_chunks(src, PAR_CHUNK, f),
            _ => self.data.iter().map(|&x| f(x)).unzip(),
        };
        let shape = self.data.raw_dim();
        (
            Tensor { data: ArrayD::from_shape_vec(shape.clone(), a).expect("same element count") },
            Tensor { data: ArrayD::from_shape_vec(shape, b).expect("same element count") },
        )
    }

    /// Applies `f` to every element in place.
    pub fn map_inplace(&mut self, f: impl Fn(T) -> T) {
        self.data.mapv_inplace(f);
    }

    /// [`Tensor::map`] spread over nn's thread pool ([`crate::set_num_threads`]) for
    /// large contiguous tensors: fixed chunks of 32,768 elements, so the
    /// result is the same as [`Tensor::map`]'s, bit for bit, at any thread count.
    /// Small or strided tensors are mapped on the calling thread.
    #[allow(clippy::needless_range_loop)]
    pub fn map_par(&self, f: impl Fn(T) -> T + Send + Sync) -> Self {
        match self.data.as_slice() {
            Some(src) if src.len() >= 2 * PAR_CHUNK => {
                let out = crate::map_by_chunks(src, PAR_CHUNK, f);
                Tensor { data: ArrayD::from_shape_vec(self.data.raw_dim(), out).expect("same element count") }
            }
            _ => self.map(f),
        }
    }

    /// `self[i] = f(self[i], other[i])` for tensors of equal shape, in place, spread
    /// over nn's thread pool like [`Tensor::map_par`] when both are contiguous and
    /// large (bit-identical at any thread count). The backward rule of an element-wise
    /// op: `g = f(g, y)`.
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`](crate::TensorError::ShapeMismatch) when the
    /// shapes differ.
    #[allow(clippy::needless_range_loop)]
    pub fn try_zip_apply_par(&mut self, other: &Tensor<T>, f: impl Fn(T, T) -> T + Send + Sync) -> Result<()> {
        if self.shape() != other.shape() {
            return Err(crate::TensorError::ShapeMismatch {
                op: "zip_apply",
                lhs: self.shape().to_vec(),
                rhs: other.shape().to_vec(),
            });
        }
        let len = self.len();
        match (self.data.as_slice_mut(), other.data.as_slice()) {
            (Some(dst), Some(src)) if len >= 2 * PAR_CHUNK => {
                crate::for_each_chunk_mut(
                    dst,
                    PAR_CHUNK,
                    || (),
                    |_, i, chunk| {
                        let src = &src[i * PAR_CHUNK..][..chunk.len()];
                        crate::simd::vectorized(
                            #[inline(always)]
                            || {
                                for j in 0..chunk.len() {
                                    chunk[j] = f(chunk[j], src[j]);
                                }
                            },
                        );
                    },
                );
            }
            _ => self.data.zip_mut_with(&other.data, |d, &y| *d = f(*d, y)),
        }
        Ok(())
    }

    /// `self + rhs` with broadcasting.
    pub fn try_add(&self, rhs: &Tensor<T>) -> Result<Self> {
        self.try_zip_map(rhs, "add", |a, b| a + b)
    }
    /// `self − rhs` with broadcasting.
    pub fn try_sub(&self, rhs: &Tensor<T>) -> Result<Self> {
        self.try_zip_map(rhs, "sub", |a, b| a - b)
    }
    /// `self · rhs` (element-wise, Hadamard) with broadcasting.
    pub fn try_mul(&self, rhs: &Tensor<T>) -> Result<Self> {
        self.try_zip_map(rhs, "mul", |a, b| a * b)
    }
    /// `self / rhs` with broadcasting (IEEE division: x/0 is ±inf or NaN).
    pub fn try_div(&self, rhs: &Tensor<T>) -> Result<Self> {
        self.try_zip_map(rhs, "div", |a, b| a / b)
    }
    /// Element-wise maximum with broadcasting; NaN in either operand gives NaN.
    pub fn try_maximum(&self, rhs: &Tensor<T>) -> Result<Self> {
        self.try_zip_map(rhs, "maximum", |a, b| if a.is_nan() || b.is_nan() { T::nan() } else { a.max(b) })
    }
    /// Element-wise minimum with broadcasting; NaN in either operand gives NaN.
    pub fn try_minimum(&self, rhs: &Tensor<T>) -> Result<Self> {
        self.try_zip_map(rhs, "minimum", |a, b| if a.is_nan() || b.is_nan() { T::nan() } else { a.min(b) })
    }
    /// Panicking twin of [`Tensor::try_maximum`].
    #[track_caller]
    pub fn maximum(&self, rhs: &Tensor<T>) -> Self {
        unwrap(self.try_maximum(rhs))
    }
    /// Panicking twin of [`Tensor::try_minimum`].
    #[track_caller]
    pub fn minimum(&self, rhs: &Tensor<T>) -> Self {
        unwrap(self.try_minimum(rhs))
    }

    /// Mask of `self > rhs` with broadcasting: 1 where true, 0 elsewhere (NaN compares false).
    pub fn try_gt(&self, rhs: &Tensor<T>) -> Result<Self> {
        self.try_zip_map(rhs, "gt", |a, b| mask(a > b))
    }
    /// Mask of `self >= rhs` with broadcasting.
    pub fn try_ge(&self, rhs: &Tensor<T>) -> Result<Self> {
        self.try_zip_map(rhs, "ge", |a, b| mask(a >= b))
    }
    /// Mask of `self < rhs` with broadcasting.
    pub fn try_lt(&self, rhs: &Tensor<T>) -> Result<Self> {
        self.try_zip_map(rhs, "lt", |a, b| mask(a < b))
    }
    /// Mask of `self <= rhs` with broadcasting.
    pub fn try_le(&self, rhs: &Tensor<T>) -> Result<Self> {
        self.try_zip_map(rhs, "le", |a, b| mask(a <= b))
    }
    /// Mask of `self == rhs` with broadcasting.
    pub fn try_eq_mask(&self, rhs: &Tensor<T>) -> Result<Self> {
        self.try_zip_map(rhs, "eq", |a, b| mask(a == b))
    }

    /// `self + c` for every element.
    pub fn add_scalar(&self, c: T) -> Self {
        self.map(|x| x + c)
    }
    /// `self · c` for every element.
    pub fn mul_scalar(&self, c: T) -> Self {
        self.map(|x| x * c)
    }
    /// `e^x` for every element.
    pub fn exp(&self) -> Self {
        self.map(T::exp)
    }
    /// Natural logarithm; `ln 0 = −inf`, negative inputs give NaN.
    pub fn ln(&self) -> Self {
        self.map(T::ln)
    }
    /// Square root; negative inputs give NaN.
    pub fn sqrt(&self) -> Self {
        self.map(T::sqrt)
    }
    /// `x^p` for every element.
    pub fn powf(&self, p: T) -> Self {
        self.map(|x| x.powf(p))
    }
    /// `|x|` for every element.
    pub fn abs(&self) -> Self {
        self.map(T::abs)
    }
    /// `−x` for every element.
    pub fn neg(&self) -> Self {
        self.map(|x| -x)
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Self {
        self.map(T::tanh)
    }
    /// Logistic sigmoid `1 / (1 + e^−x)`, computed without overflow: for x < 0 as
    /// `e^x / (1 + e^x)`, so ±1000 give exactly 1 and 0.
    pub fn sigmoid(&self) -> Self {
        self.map(sigmoid)
    }
    /// Clamps every element to `[min, max]`; NaN stays NaN.
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`](crate::TensorError::InvalidArgument) when
    /// `min > max` or either bound is NaN.
    pub fn try_clamp(&self, min: T, max: T) -> Result<Self> {
        if min.is_nan() || max.is_nan() || min > max {
            return Err(crate::TensorError::InvalidArgument {
                op: "clamp",
                message: format!("bounds [{min}, {max}] are not an interval"),
            });
        }
        Ok(self.map(|x| {
            if x < min {
                min
            } else if x > max {
                max
            } else {
                x
            }
        }))
    }
    /// Panicking twin of [`Tensor::try_clamp`].
    #[track_caller]
    pub fn clamp(&self, min: T, max: T) -> Self {
        unwrap(self.try_clamp(min, max))
    }
}

/// Logistic sigmoid `σ(x) = 1 / (1 + e^−x)` computed without overflow.
#[inline]
pub fn sigmoid<T: Element>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

#[inline]
fn mask<T: Element>(b: bool) -> T {
    if b {
        T::one()
    } else {
        T::zero()
    }
}

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $try:ident) => {
        impl<T: Element> std::ops::$trait<&Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            /// Broadcasting element-wise operator; panics when the shapes do not broadcast.
            #[track_caller]
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                unwrap(self.$try(rhs))
            }
        }
        impl<T: Element> std::ops::$trait<Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            /// Broadcasting element-wise operator; panics when the shapes do not broadcast.
            #[track_caller]
            fn $method(self, rhs: Tensor<T>) -> Tensor<T> {
                unwrap(self.$try(&rhs))
            }
        }
        impl<T: Element> std::ops::$trait<T> for &Tensor<T> {
            type Output = Tensor<T>;
            /// Applies the operator with a scalar to every element.
            fn $method(self, rhs: T) -> Tensor<T> {
                self.map(|x| std::ops::$trait::$method(x, rhs))
            }
        }
    };
}
binary_operator!(Add, add, try_add);
binary_operator!(Sub, sub, try_sub);
binary_operator!(Mul, mul, try_mul);
binary_operator!(Div, div, try_div);

impl<T: Element> std::ops::Neg for &Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        self.map(|x| -x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn broadcast_bias_over_batch() {
        let x = Tensor::<f32>::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]);
        let b = Tensor::<f32>::from_vec(&[3], vec![10., 20., 30.]);
        assert_eq!((&x + &b).to_vec(), vec![11., 22., 33., 14., 25., 36.]);
        let col = Tensor::<f32>::from_vec(&[2, 1], vec![2., 4.]);
        assert_eq!((&x / &col).to_vec(), vec![0.5, 1., 1.5, 1., 1.25, 1.5]);
        let err = x.try_add(&Tensor::zeros(&[2])).unwrap_err();
        assert_eq!(err.to_string(), "add: incompatible shapes [2, 3] and [2]");
    }

    #[test]
    fn unary_and_masks() {
        let x = Tensor::<f64>::from_vec(&[4], vec![-2., -0.5, 0., 3.]);
        assert_eq!(x.abs().to_vec(), vec![2., 0.5, 0., 3.]);
        assert_eq!(x.clamp(-1., 1.).to_vec(), vec![-1., -0.5, 0., 1.]);
        assert!(x.try_clamp(1., -1.).is_err());
        assert_eq!(x.try_gt(&Tensor::scalar(0.)).unwrap().to_vec(), vec![0., 0., 0., 1.]);
        assert_eq!(x.try_le(&Tensor::scalar(-0.5)).unwrap().to_vec(), vec![1., 1., 0., 0.]);
        assert_eq!(x.maximum(&Tensor::scalar(0.)).to_vec(), vec![0., 0., 0., 3.]);
        assert_eq!(Tensor::<f64>::from_vec(&[2], vec![4., 9.]).sqrt().to_vec(), vec![2., 3.]);
        assert_eq!(Tensor::<f64>::from_vec(&[2], vec![2., 3.]).powf(3.).to_vec(), vec![8., 27.]);
        assert_eq!((&x * 2.0).to_vec(), vec![-4., -1., 0., 6.]);
    }

    #[test]
    fn sigmoid_does_not_overflow() {
        let x = Tensor::<f32>::from_vec(&[3], vec![-1000., 0., 1000.]);
        assert_eq!(x.sigmoid().to_vec(), vec![0., 0.5, 1.]);
        // σ(−2) = 1 / (1 + e²)
        let s = sigmoid(-2.0f64);
        assert!((s - 1.0 / (1.0 + 2f64.exp())).abs() < 1e-16);
    }

    fn shape_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        // Build a target shape, then knock dimensions down to 1 or drop leading axes.
        prop::collection::vec(1usize..4, 0..4)
            .prop_flat_map(|target| {
                let n = target.len();
                (Just(target), prop::collection::vec(any::<bool>(), n), prop::collection::vec(any::<bool>(), n), 0..=n)
            })
            .prop_map(|(target, ones_a, ones_b, drop)| {
                let a: Vec<usize> = target.iter().zip(&ones_a).map(|(&d, &o)| if o { 1 } else { d }).collect();
                let b: Vec<usize> =
                    target.iter().zip(&ones_b).map(|(&d, &o)| if o { 1 } else { d }).skip(drop).collect();
                (a, b)
            })
    }

    proptest! {
        /// Broadcasting equals explicit expansion: every output index reads each operand
        /// at that index with broadcast axes pinned to 0.
        #[test]
        fn broadcasting_matches_explicit_expansion((sa, sb) in shape_pair(), seed in 0u64..1000) {
            let na: usize = sa.iter().product();
            let nb: usize = sb.iter().product();
            let a = Tensor::<f64>::from_vec(&sa, (0..na).map(|i| (i as f64 + seed as f64) * 0.5).collect());
            let b = Tensor::<f64>::from_vec(&sb, (0..nb).map(|i| i as f64 * 1.5 - 2.0).collect());
            let out = a.try_sub(&b).unwrap();
            let ndim = sa.len().max(sb.len());
            prop_assert_eq!(out.ndim(), ndim);
            for (idx, &v) in out.array().indexed_iter() {
                let pick = |s: &[usize]| -> Vec<usize> {
                    let lead = ndim - s.len();
                    (0..s.len()).map(|i| if s[i] == 1 { 0 } else { idx[i + lead] }).collect()
                };
                let want = a.get(&pick(&sa)).unwrap() - b.get(&pick(&sb)).unwrap();
                prop_assert_eq!(v, want);
            }
        }
    }

    #[test]
    fn threaded_maps_equal_the_plain_ones_at_any_thread_count() {
        // Long enough for several chunks (the last one partial), then small and strided.
        let n = 5 * super::PAR_CHUNK + 123;
        let x = Tensor::<f32>::from_vec(&[n], (0..n).map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0).collect());
        let y = x.map(|v| v * 0.5 - 1.0);
        let f = |v: f32| (v * 1.5).exp().min(3.0);
        let g = |a: f32, b: f32| if b > 0.0 { a * b } else { -a };
        let mut want = x.clone();
        want.array_mut().zip_mut_with(y.array(), |a, &b| *a = g(*a, b));
        for threads in [1, 2, 3] {
            crate::set_num_threads(threads);
            assert_eq!(x.map_par(f), x.map(f));
            let (a, b) = x.map2_par(|v| (f(v), -v));
            assert_eq!((a, b), (x.map(f), x.map(|v| -v)));
            let mut got = x.clone();
            got.try_zip_apply_par(&y, g).unwrap();
            assert_eq!(got, want);
        }
        crate::set_num_threads(0);
        let small = Tensor::<f64>::from_vec(&[2, 3], vec![1., -2., 3., -4., 5., -6.]);
        let strided = small.permute(&[1, 0]);
        assert_eq!(strided.map_par(|v| v * 2.0).to_vec(), vec![2., -8., -4., 10., 6., -12.]);
        let (a, b) = strided.map2_par(|v| (v * 2.0, v + 1.0));
        assert_eq!((a.shape(), a.to_vec()), (&[3, 2][..], vec![2., -8., -4., 10., 6., -12.]));
        assert_eq!(b.to_vec(), vec![2., -3., -1., 6., 4., -5.]);
        let mut s = small.clone();
        s.try_zip_apply_par(&small, |a, b| a * b).unwrap();
        assert_eq!(s.to_vec(), vec![1., 4., 9., 16., 25., 36.]);
        assert!(s.try_zip_apply_par(&strided, |a, _| a).is_err());
    }
}
