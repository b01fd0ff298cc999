//! The [`Tensor`] type: construction, conversion to and from ndarray, and shape operations.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn, Slice};

use crate::element::{DType, Element};
use crate::error::{Result, TensorError};
use crate::shape::checked_numel_of;

/// An n-dimensional array of `f32` (training) or `f64` (gradient checks).
///
/// A thin owner of an [`ndarray::ArrayD`]: converting either way with
/// [`From`]/[`Tensor::into_array`] moves the buffer without copying, so ndarray code
/// keeps working on a tensor's data. Shapes are checked at run time; every
/// operation has a `try_` form returning [`TensorError`] and a plain form that panics
/// with the same message.
///
/// Layout: logically row-major (C order). Most results are contiguous; views
/// produced by [`Tensor::permute`] keep permuted strides until
/// [`Tensor::to_contiguous`] is called, and every operation accepts them.
#[derive(Clone, PartialEq)]
pub struct Tensor<T: Element = f32> {
    pub(crate) data: ArrayD<T>,
}

impl<T: Element> std::fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor<{}>{:?} {:?}", T::DTYPE, self.shape(), self.data)
    }
}

impl<T: Element, D: ndarray::Dimension> From<ndarray::Array<T, D>> for Tensor<T> {
    /// Wraps an ndarray array without copying its buffer.
    fn from(array: ndarray::Array<T, D>) -> Self {
        Tensor { data: array.into_dyn() }
    }
}

impl<T: Element> From<Tensor<T>> for ArrayD<T> {
    /// Unwraps the ndarray array without copying.
    fn from(t: Tensor<T>) -> Self {
        t.data
    }
}

/// Unwraps a `try_` result, panicking with the error's message.
#[track_caller]
pub(crate) fn unwrap<U>(r: Result<U>) -> U {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

impl<T: Element> Tensor<T> {
    // ---------------------------------------------------------------- constructors

    /// The element count of `shape` for a buffer of `T`, checked by
    /// [`checked_numel_of`] (no overflow, at most `isize::MAX` bytes).
    fn checked_len(op: &'static str, shape: &[usize]) -> Result<usize> {
        checked_numel_of(op, shape, std::mem::size_of::<T>())
    }

    /// A tensor of `shape` filled with `value`.
    ///
    /// # Errors
    /// [`TensorError::Overflow`] if the element count of `shape` overflows `usize`
    /// or the tensor would take more than `isize::MAX` bytes (checked by
    /// [`checked_numel_of`](crate::shape::checked_numel_of) before anything is
    /// allocated). A shape with a zero dimension gives an empty tensor.
    pub fn try_full(shape: &[usize], value: T) -> Result<Self> {
        Self::checked_len("full", shape)?;
        Ok(Tensor { data: ArrayD::from_elem(IxDyn(shape), value) })
    }

    /// A tensor of zeros.
    ///
    /// # Errors
    /// As [`Tensor::try_full`] (the operation is named `zeros`).
    pub fn try_zeros(shape: &[usize]) -> Result<Self> {
        Self::checked_len("zeros", shape)?;
        Ok(Tensor { data: ArrayD::from_elem(IxDyn(shape), T::zero()) })
    }

    /// A tensor of ones.
    ///
    /// # Errors
    /// As [`Tensor::try_full`] (the operation is named `ones`).
    pub fn try_ones(shape: &[usize]) -> Result<Self> {
        Self::checked_len("ones", shape)?;
        Ok(Tensor { data: ArrayD::from_elem(IxDyn(shape), T::one()) })
    }

    /// A tensor of `shape` filled with `value`. Panics where [`Tensor::try_full`] errs.
    #[track_caller]
    pub fn full(shape: &[usize], value: T) -> Self {
        unwrap(Self::try_full(shape, value))
    }

    /// A tensor of zeros. Panics where [`Tensor::try_zeros`] errs.
    #[track_caller]
    pub fn zeros(shape: &[usize]) -> Self {
        unwrap(Self::try_zeros(shape))
    }

    /// A tensor of ones. Panics where [`Tensor::try_ones`] errs.
    #[track_caller]
    pub fn ones(shape: &[usize]) -> Self {
        unwrap(Self::try_ones(shape))
    }

    /// A 0-d tensor (shape `[]`) holding `value`.
    pub fn scalar(value: T) -> Self {
        Tensor { data: ArrayD::from_elem(IxDyn(&[]), value) }
    }

    /// A tensor of `shape` taking ownership of `values` in row-major order (no copy).
    ///
    /// # Errors
    /// [`TensorError::Overflow`] for a shape too large to exist (see
    /// [`Tensor::try_full`]); [`TensorError::ElementCount`] if `values.len()` differs
    /// from the shape's count.
    pub fn try_from_vec(shape: &[usize], values: Vec<T>) -> Result<Self> {
        let expected = Self::checked_len("from_vec", shape)?;
        if expected != values.len() {
            return Err(TensorError::ElementCount {
                op: "from_vec",
                shape: shape.to_vec(),
                expected,
                got: values.len(),
            });
        }
        let data = ArrayD::from_shape_vec(IxDyn(shape), values).expect("element count was checked above");
        Ok(Tensor { data })
    }

    /// Panicking twin of [`Tensor::try_from_vec`].
    #[track_caller]
    pub fn from_vec(shape: &[usize], values: Vec<T>) -> Self {
        unwrap(Self::try_from_vec(shape, values))
    }

    /// Converts every element from `f64` (rounding to nearest for `f32`).
    ///
    /// # Errors
    /// As [`Tensor::try_from_vec`] (checked before the values are converted).
    pub fn from_f64_slice(shape: &[usize], values: &[f64]) -> Result<Self> {
        Self::checked_len("from_vec", shape)?;
        Self::try_from_vec(shape, values.iter().map(|&v| T::of_f64(v)).collect())
    }

    // ---------------------------------------------------------------- ndarray access

    /// The underlying ndarray array.
    pub fn array(&self) -> &ArrayD<T> {
        &self.data
    }

    /// The underlying ndarray array, mutably.
    pub fn array_mut(&mut self) -> &mut ArrayD<T> {
        &mut self.data
    }

    /// Unwraps into the ndarray array without copying.
    pub fn into_array(self) -> ArrayD<T> {
        self.data
    }

    /// A read-only ndarray view.
    pub fn view(&self) -> ArrayViewD<'_, T> {
        self.data.view()
    }

    /// A mutable ndarray view.
    pub fn view_mut(&mut self) -> ArrayViewMutD<'_, T> {
        self.data.view_mut()
    }

    /// The elements in logical row-major order (copied).
    pub fn to_vec(&self) -> Vec<T> {
        match self.data.as_slice() {
            Some(s) => s.to_vec(),
            None => standard_copy(self.data.view()).into_raw_vec_and_offset().0,
        }
    }

    /// The elements in row-major order, moved out without a copy when the tensor is
    /// already contiguous (else copied as [`Tensor::to_vec`]).
    pub fn into_vec(self) -> Vec<T> {
        let len = self.len();
        if self.data.is_standard_layout() {
            let (v, offset) = self.data.into_raw_vec_and_offset();
            let start = offset.unwrap_or(0);
            if start == 0 && v.len() == len {
                return v;
            }
            // Part of a larger buffer (sliced in place): copy that part.
            return v[start..start + len].to_vec();
        }
        standard_copy(self.data.view()).into_raw_vec_and_offset().0
    }

    /// The elements as a contiguous row-major slice, if the layout is standard.
    pub fn as_slice(&self) -> Option<&[T]> {
        self.data.as_slice()
    }

    /// The elements as a mutable contiguous row-major slice, if the layout is standard.
    pub fn as_slice_mut(&mut self) -> Option<&mut [T]> {
        self.data.as_slice_mut()
    }

    /// Converts to another element type (`f32` ↔ `f64`), rounding to nearest.
    pub fn cast<U: Element>(&self) -> Tensor<U> {
        Tensor { data: self.data.mapv(|v| U::of_f64(v.as_f64())) }
    }

    // ---------------------------------------------------------------- metadata

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    /// The number of dimensions (rank).
    pub fn ndim(&self) -> usize {
        self.data.ndim()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// Whether the data is contiguous in row-major order.
    pub fn is_contiguous(&self) -> bool {
        self.data.is_standard_layout()
    }

    /// The element at `index` (one coordinate per axis), or `None` when out of bounds.
    pub fn get(&self, index: &[usize]) -> Option<T> {
        self.data.get(IxDyn(index)).copied()
    }

    /// The value of a one-element tensor of any rank.
    ///
    /// # Errors
    /// [`TensorError::ElementCount`] when the tensor does not hold exactly one element.
    pub fn try_item(&self) -> Result<T> {
        if self.len() != 1 {
            return Err(TensorError::ElementCount {
                op: "item",
                shape: self.shape().to_vec(),
                expected: 1,
                got: self.len(),
            });
        }
        Ok(*self.data.iter().next().expect("one element"))
    }

    /// Panicking twin of [`Tensor::try_item`].
    #[track_caller]
    pub fn item(&self) -> T {
        unwrap(self.try_item())
    }

    // ---------------------------------------------------------------- shape operations

    /// The same elements (in row-major order) under a new shape; copies only when the
    /// layout is not contiguous.
    ///
    /// # Errors
    /// [`TensorError::ElementCount`] when the shapes hold different numbers of
    /// elements; [`TensorError::Overflow`] for an overflowing shape.
    pub fn try_into_reshape(self, shape: &[usize]) -> Result<Self> {
        let expected = Self::checked_len("reshape", shape)?;
        if expected != self.len() {
            return Err(TensorError::ElementCount { op: "reshape", shape: shape.to_vec(), expected, got: self.len() });
        }
        let data = if self.data.is_standard_layout() { self.data } else { standard_copy(self.data.view()) };
        let data = data.into_shape_with_order(IxDyn(shape)).expect("standard layout and equal element count");
        Ok(Tensor { data })
    }

    /// Copying form of [`Tensor::try_into_reshape`].
    pub fn try_reshape(&self, shape: &[usize]) -> Result<Self> {
        self.clone().try_into_reshape(shape)
    }

    /// Panicking twin of [`Tensor::try_reshape`].
    #[track_caller]
    pub fn reshape(&self, shape: &[usize]) -> Self {
        unwrap(self.try_reshape(shape))
    }

    /// Reorders the axes: result axis `i` is input axis `axes[i]` (like NumPy
    /// `transpose(axes)`). Moves no data: only the strides change, so the result
    /// is not contiguous in general.
    ///
    /// # Errors
    /// [`TensorError::Axis`] unless `axes` is a permutation of `0..ndim`.
    pub fn try_into_permute(self, axes: &[usize]) -> Result<Self> {
        if axes.len() != self.ndim() {
            return Err(TensorError::InvalidArgument {
                op: "permute",
                message: format!("{} axes given for shape {:?}", axes.len(), self.shape()),
            });
        }
        crate::shape::check_axes("permute", axes, self.shape())?;
        Ok(Tensor { data: self.data.permuted_axes(IxDyn(axes)) })
    }

    /// Copying form of [`Tensor::try_into_permute`].
    pub fn try_permute(&self, axes: &[usize]) -> Result<Self> {
        self.clone().try_into_permute(axes)
    }

    /// Panicking twin of [`Tensor::try_permute`].
    #[track_caller]
    pub fn permute(&self, axes: &[usize]) -> Self {
        unwrap(self.try_permute(axes))
    }

    /// The transpose of a 2-d tensor `[m, n] → [n, m]`, or the reversal of all axes
    /// for other ranks (NumPy `.T`).
    pub fn t(&self) -> Self {
        Tensor { data: self.data.clone().reversed_axes() }
    }

    /// The same tensor in contiguous row-major layout (a copy only if needed).
    pub fn to_contiguous(&self) -> Self {
        Tensor { data: standard_copy(self.data.view()) }
    }

    /// Elements `start..end` along `axis` (copied, contiguous).
    ///
    /// # Errors
    /// [`TensorError::Axis`] for a bad axis; [`TensorError::IndexOutOfBounds`] when
    /// `end` exceeds the axis length or `start > end`.
    pub fn try_slice_axis(&self, axis: usize, start: usize, end: usize) -> Result<Self> {
        if axis >= self.ndim() {
            return Err(TensorError::Axis { op: "slice", axis, shape: self.shape().to_vec() });
        }
        let len = self.shape()[axis];
        if end > len || start > end {
            return Err(TensorError::IndexOutOfBounds {
                op: "slice",
                index: if start > end { start } else { end },
                axis,
                len,
            });
        }
        let view = self.data.slice_axis(Axis(axis), Slice::from(start..end));
        Ok(Tensor { data: view.as_standard_layout().into_owned() })
    }

    /// The heads of multi-head attention split out of the feature axis:
    /// `[batch, seq, heads·dim] → [batch·heads, seq, dim]`, `y[n·heads + h, t, e] =
    /// x[n, t, h·dim + e]` (what a reshape to `[batch, seq, heads, dim]`, a permute
    /// `(0, 2, 1, 3)` and a reshape give, in one copy spread over nn's pool).
    ///
    /// # Errors
    /// [`TensorError::Rank`] for a tensor that is not 3-d;
    /// [`TensorError::InvalidArgument`] when `heads` is 0 or does not divide the last
    /// axis.
    pub fn try_split_heads(&self, heads: usize) -> Result<Self> {
        let (batch, seq, width) = heads_shape("split_heads", self.shape(), heads)?;
        let dim = width / heads;
        let src = self.contiguous_values();
        let block = seq * dim;
        let blocks_per_chunk = (HEAD_CHUNK / block.max(1)).max(1);
        let out = crate::par_build(batch * width * seq, block * blocks_per_chunk, |c, chunk: &mut [T]| {
            for (k, out) in chunk.chunks_mut(block.max(1)).enumerate() {
                let (n, h) = ((c * blocks_per_chunk + k) / heads, (c * blocks_per_chunk + k) % heads);
                for (t, row) in out.chunks_mut(dim.max(1)).enumerate() {
                    let at = (n * seq + t) * width + h * dim;
                    row.copy_from_slice(&src[at..at + dim]);
                }
            }
        });
        Ok(Tensor::from_vec(&[batch * heads, seq, dim], out))
    }

    /// The inverse of [`Tensor::try_split_heads`]: `[batch·heads, seq, dim] →
    /// [batch, seq, heads·dim]`, `y[n, t, h·dim + e] = x[n·heads + h, t, e]`.
    ///
    /// # Errors
    /// [`TensorError::Rank`] for a tensor that is not 3-d;
    /// [`TensorError::InvalidArgument`] when `heads` is 0 or does not divide the first
    /// axis.
    pub fn try_merge_heads(&self, heads: usize) -> Result<Self> {
        let shape = self.shape();
        if shape.len() != 3 {
            return Err(TensorError::Rank { op: "merge_heads", expected: "3", shape: shape.to_vec() });
        }
        if heads == 0 || !shape[0].is_multiple_of(heads) {
            return Err(TensorError::InvalidArgument {
                op: "merge_heads",
                message: format!("{heads} heads do not divide axis 0 of {shape:?}"),
            });
        }
        let (batch, seq, dim) = (shape[0] / heads, shape[1], shape[2]);
        let width = heads * dim;
        let src = self.contiguous_values();
        let rows_per_chunk = (HEAD_CHUNK / width.max(1)).max(1);
        let out = crate::par_build(batch * seq * width, width * rows_per_chunk, |c, chunk: &mut [T]| {
            for (k, row) in chunk.chunks_mut(width.max(1)).enumerate() {
                let (n, t) = ((c * rows_per_chunk + k) / seq.max(1), (c * rows_per_chunk + k) % seq.max(1));
                for (h, part) in row.chunks_mut(dim.max(1)).enumerate() {
                    let at = ((n * heads + h) * seq + t) * dim;
                    part.copy_from_slice(&src[at..at + dim]);
                }
            }
        });
        Ok(Tensor::from_vec(&[batch, seq, width], out))
    }

    /// The elements in row-major order: borrowed when contiguous, else copied.
    fn contiguous_values(&self) -> std::borrow::Cow<'_, [T]> {
        match self.data.as_slice() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(self.to_vec()),
        }
    }

    /// Rows `start..end` of axis 0: a batch taken from a dataset `[N, ...]`.
    pub fn try_slice_batch(&self, start: usize, end: usize) -> Result<Self> {
        if self.ndim() == 0 {
            return Err(TensorError::Rank { op: "slice_batch", expected: "at least 1", shape: vec![] });
        }
        self.try_slice_axis(0, start, end)
    }

    /// Panicking twin of [`Tensor::try_slice_batch`].
    #[track_caller]
    pub fn slice_batch(&self, start: usize, end: usize) -> Self {
        unwrap(self.try_slice_batch(start, end))
    }

    /// Rows of axis 0 picked by `indices` (repeats allowed), in that order:
    /// `[N, ...] → [indices.len(), ...]`.
    ///
    /// # Errors
    /// [`TensorError::Rank`] for a 0-d tensor; [`TensorError::IndexOutOfBounds`] for
    /// an index `>= N`.
    pub fn try_gather_rows(&self, indices: &[usize]) -> Result<Self> {
        if self.ndim() == 0 {
            return Err(TensorError::Rank { op: "gather_rows", expected: "at least 1", shape: vec![] });
        }
        let n = self.shape()[0];
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(TensorError::IndexOutOfBounds { op: "gather_rows", index: bad, axis: 0, len: n });
        }
        let mut out_shape = self.shape().to_vec();
        out_shape[0] = indices.len();
        Self::checked_len("gather_rows", &out_shape)?;
        Ok(Tensor { data: self.data.select(Axis(0), indices) })
    }

    /// Panicking twin of [`Tensor::try_gather_rows`].
    #[track_caller]
    pub fn gather_rows(&self, indices: &[usize]) -> Self {
        unwrap(self.try_gather_rows(indices))
    }

    /// Joins tensors along an existing `axis`; all other dimensions must agree.
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] for an empty list; [`TensorError::Axis`];
    /// [`TensorError::ShapeMismatch`] naming the first tensor and the first that differs;
    /// [`TensorError::Overflow`] when the result would be too large to exist.
    pub fn try_concat(axis: usize, tensors: &[&Tensor<T>]) -> Result<Self> {
        let first = check_joinable("concat", tensors)?;
        if axis >= first.ndim() {
            return Err(TensorError::Axis { op: "concat", axis, shape: first.shape().to_vec() });
        }
        for t in tensors {
            let same = t.ndim() == first.ndim()
                && t.shape().iter().zip(first.shape()).enumerate().all(|(i, (a, b))| i == axis || a == b);
            if !same {
                return Err(TensorError::ShapeMismatch {
                    op: "concat",
                    lhs: first.shape().to_vec(),
                    rhs: t.shape().to_vec(),
                });
            }
        }
        let mut out_shape = first.shape().to_vec();
        out_shape[axis] =
            tensors.iter().try_fold(0usize, |acc, t| acc.checked_add(t.shape()[axis])).unwrap_or(usize::MAX);
        Self::checked_len("concat", &out_shape)?;
        let views: Vec<_> = tensors.iter().map(|t| t.data.view()).collect();
        let data = ndarray::concatenate(Axis(axis), &views)
            .map_err(|_| TensorError::Overflow { op: "concat", shape: first.shape().to_vec() })?;
        Ok(Tensor { data })
    }

    /// Panicking twin of [`Tensor::try_concat`].
    #[track_caller]
    pub fn concat(axis: usize, tensors: &[&Tensor<T>]) -> Self {
        unwrap(Self::try_concat(axis, tensors))
    }

    /// Joins equally shaped tensors along a new `axis` (`0..=ndim`).
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] for an empty list; [`TensorError::Axis`];
    /// [`TensorError::ShapeMismatch`] when shapes differ; [`TensorError::Overflow`]
    /// when the result would be too large to exist.
    pub fn try_stack(axis: usize, tensors: &[&Tensor<T>]) -> Result<Self> {
        let first = check_joinable("stack", tensors)?;
        if axis > first.ndim() {
            return Err(TensorError::Axis { op: "stack", axis, shape: first.shape().to_vec() });
        }
        if let Some(t) = tensors.iter().find(|t| t.shape() != first.shape()) {
            return Err(TensorError::ShapeMismatch {
                op: "stack",
                lhs: first.shape().to_vec(),
                rhs: t.shape().to_vec(),
            });
        }
        let mut out_shape = first.shape().to_vec();
        out_shape.insert(axis, tensors.len());
        Self::checked_len("stack", &out_shape)?;
        let views: Vec<_> = tensors.iter().map(|t| t.data.view()).collect();
        let data = ndarray::stack(Axis(axis), &views)
            .map_err(|_| TensorError::Overflow { op: "stack", shape: first.shape().to_vec() })?;
        Ok(Tensor { data })
    }

    /// Panicking twin of [`Tensor::try_stack`].
    #[track_caller]
    pub fn stack(axis: usize, tensors: &[&Tensor<T>]) -> Self {
        unwrap(Self::try_stack(axis, tensors))
    }

    /// Whether every element differs from `other`'s by at most `atol + rtol·|other|`
    /// (NumPy `allclose`); false when shapes differ. NaNs never compare close.
    pub fn all_close(&self, other: &Tensor<T>, rtol: f64, atol: f64) -> bool {
        self.shape() == other.shape()
            && self.data.iter().zip(other.data.iter()).all(|(&a, &b)| {
                let (a, b) = (a.as_f64(), b.as_f64());
                (a - b).abs() <= atol + rtol * b.abs() || a == b
            })
    }
}

fn check_joinable<'a, T: Element>(op: &'static str, tensors: &[&'a Tensor<T>]) -> Result<&'a Tensor<T>> {
    tensors.first().copied().ok_or_else(|| TensorError::InvalidArgument { op, message: "no tensors given".into() })
}

/// A row-major copy of `view`. A strided view of rank 2 to 5 (a permuted tensor,
/// say) is copied through ndarray's fixed-rank `assign`, whose inner loop runs along
/// the last axis with its stride; the generic path steps a dynamic-rank index per
/// element, several times slower (measured on attention's head permutes).
/// Elements per chunk of the head copies (see [`Tensor::try_split_heads`]).
const HEAD_CHUNK: usize = 1 << 15;

/// `(batch, seq, width)` of a `[batch, seq, heads·dim]` tensor to split into heads.
fn heads_shape(op: &'static str, shape: &[usize], heads: usize) -> Result<(usize, usize, usize)> {
    let &[batch, seq, width] = shape else {
        return Err(TensorError::Rank { op, expected: "3", shape: shape.to_vec() });
    };
    if heads == 0 || !width.is_multiple_of(heads) {
        return Err(TensorError::InvalidArgument {
            op,
            message: format!("{heads} heads do not divide the last axis of {shape:?}"),
        });
    }
    Ok((batch, seq, width))
}

pub(crate) fn standard_copy<T: Element>(view: ndarray::ArrayViewD<'_, T>) -> ArrayD<T> {
    fn fixed<T: Element, D: ndarray::Dimension>(view: ndarray::ArrayViewD<'_, T>) -> ArrayD<T> {
        let view = view.into_dimensionality::<D>().expect("rank matched by the caller");
        let mut out = ndarray::Array::<T, D>::uninit(view.raw_dim());
        view.assign_to(&mut out);
        // SAFETY: `assign_to` wrote every element of `out` (same shape as `view`).
        unsafe { out.assume_init() }.into_dyn()
    }
    if view.is_standard_layout() {
        return view.to_owned();
    }
    match view.ndim() {
        2 => fixed::<T, ndarray::Ix2>(view),
        3 => fixed::<T, ndarray::Ix3>(view),
        4 => fixed::<T, ndarray::Ix4>(view),
        5 => fixed::<T, ndarray::Ix5>(view),
        _ => view.as_standard_layout().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_heads_is_reshape_permute_reshape_and_merge_undoes_it() {
        // By the index formula on a [2, 3, 6] tensor of 0..36 with 3 heads of 2:
        // y[n·3 + h, t, e] = x[n, t, 2h + e].
        let x = Tensor::<f32>::from_vec(&[2, 3, 6], (0..36).map(|v| v as f32).collect());
        let y = x.try_split_heads(3).unwrap();
        assert_eq!(y.shape(), [6, 3, 2]);
        let v = y.to_vec();
        for n in 0..2 {
            for h in 0..3 {
                for t in 0..3 {
                    for e in 0..2 {
                        assert_eq!(v[((n * 3 + h) * 3 + t) * 2 + e], (n * 18 + t * 6 + 2 * h + e) as f32);
                    }
                }
            }
        }
        let by_views = x.try_reshape(&[2, 3, 3, 2]).unwrap().try_into_permute(&[0, 2, 1, 3]).unwrap().to_vec();
        assert_eq!(v, by_views);
        assert_eq!(y.try_merge_heads(3).unwrap(), x);
        // A strided input, and sizes above one chunk of the pool.
        let big = Tensor::<f32>::from_vec(&[64, 40, 96], (0..64 * 40 * 96).map(|v| v as f32).collect());
        let strided = big.try_permute(&[1, 0, 2]).unwrap();
        let split = strided.try_split_heads(4).unwrap();
        let want =
            strided.to_contiguous().try_reshape(&[40, 64, 4, 24]).unwrap().try_into_permute(&[0, 2, 1, 3]).unwrap();
        assert_eq!(split.to_vec(), want.to_vec());
        assert_eq!(split.try_merge_heads(4).unwrap().to_vec(), strided.to_vec());
        assert!(x.try_split_heads(4).is_err());
        assert!(x.try_split_heads(0).is_err());
        assert!(y.try_merge_heads(4).is_err());
        assert!(Tensor::<f32>::zeros(&[6, 2]).try_split_heads(2).is_err());
    }

    #[test]
    fn copies_of_strided_tensors_are_row_major() {
        // A [2, 3, 4] permuted to [4, 2, 3] and [3, 4, 2]: element (i, j, k) of the
        // permuted tensor is x[j][k][i] (resp. x[k][i][j]); x = 0..24 row-major.
        let x = Tensor::<f32>::from_vec(&[2, 3, 4], (0..24).map(|v| v as f32).collect());
        let p = x.try_permute(&[2, 0, 1]).unwrap();
        let want: Vec<f32> =
            (0..4).flat_map(|i| (0..2).flat_map(move |j| (0..3).map(move |k| (j * 12 + k * 4 + i) as f32))).collect();
        assert_eq!(p.to_vec(), want);
        assert_eq!(p.to_contiguous().as_slice().unwrap(), &want[..]);
        assert_eq!(p.clone().into_vec(), want);
        assert_eq!(p.try_into_reshape(&[24]).unwrap().to_vec(), want);
        let q = x.try_permute(&[1, 2, 0]).unwrap();
        let want: Vec<f32> =
            (0..3).flat_map(|i| (0..4).flat_map(move |j| (0..2).map(move |k| (k * 12 + i * 4 + j) as f32))).collect();
        assert_eq!(q.to_vec(), want);
        assert_eq!(x.clone().into_vec(), x.to_vec());
        // Rank 6 takes the generic path.
        let y = Tensor::<f64>::from_vec(&[1, 2, 1, 3, 1, 2], (0..12).map(|v| v as f64).collect());
        let t = y.try_permute(&[5, 4, 3, 2, 1, 0]).unwrap();
        let want: Vec<f64> =
            (0..2).flat_map(|a| (0..3).flat_map(move |b| (0..2).map(move |c| (c * 6 + b * 2 + a) as f64))).collect();
        assert_eq!(t.to_vec(), want);
    }

    #[test]
    fn construction_and_errors() {
        let t = Tensor::<f32>::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]);
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.get(&[1, 2]), Some(6.0));
        let err = Tensor::<f32>::try_from_vec(&[2, 2], vec![1.0; 3]).unwrap_err();
        assert_eq!(err.to_string(), "from_vec: shape [2, 2] holds 4 elements, got 3");
        assert!(matches!(Tensor::<f32>::try_full(&[usize::MAX, 3], 0.0), Err(TensorError::Overflow { .. })));
        assert_eq!(Tensor::<f64>::scalar(2.5).item(), 2.5);
    }

    #[test]
    fn ndarray_round_trip_keeps_the_buffer() {
        let a = ndarray::Array2::<f32>::from_shape_vec((2, 2), vec![1., 2., 3., 4.]).unwrap();
        let ptr = a.as_ptr();
        let t: Tensor<f32> = a.into();
        let back: ArrayD<f32> = t.into();
        assert_eq!(back.as_ptr(), ptr);
    }

    #[test]
    fn reshape_permute_slice_gather() {
        let t = Tensor::<f64>::from_vec(&[2, 3], (0..6).map(f64::from).collect());
        assert_eq!(t.reshape(&[3, 2]).to_vec(), vec![0., 1., 2., 3., 4., 5.]);
        assert!(t.try_reshape(&[4, 2]).is_err());
        let p = t.permute(&[1, 0]);
        assert_eq!(p.shape(), &[3, 2]);
        assert_eq!(p.to_vec(), vec![0., 3., 1., 4., 2., 5.]);
        assert!(!p.is_contiguous());
        assert_eq!(p.reshape(&[6]).to_vec(), vec![0., 3., 1., 4., 2., 5.]);
        assert!(t.try_permute(&[0, 0]).is_err());
        assert_eq!(t.slice_batch(1, 2).to_vec(), vec![3., 4., 5.]);
        assert!(matches!(t.try_slice_batch(1, 3), Err(TensorError::IndexOutOfBounds { index: 3, .. })));
        assert_eq!(t.gather_rows(&[1, 1, 0]).to_vec(), vec![3., 4., 5., 3., 4., 5., 0., 1., 2.]);
        assert!(t.try_gather_rows(&[2]).is_err());
    }

    #[test]
    fn concat_and_stack() {
        let a = Tensor::<f32>::from_vec(&[1, 2], vec![1., 2.]);
        let b = Tensor::<f32>::from_vec(&[2, 2], vec![3., 4., 5., 6.]);
        let c = Tensor::concat(0, &[&a, &b]);
        assert_eq!(c.shape(), &[3, 2]);
        assert_eq!(c.to_vec(), vec![1., 2., 3., 4., 5., 6.]);
        assert!(Tensor::try_concat(1, &[&a, &b]).is_err());
        let s = Tensor::stack(1, &[&a, &a]);
        assert_eq!(s.shape(), &[1, 2, 2]);
        assert!(Tensor::try_stack(0, &[&a, &b]).is_err());
        assert!(Tensor::<f32>::try_stack(0, &[]).is_err());
    }
}
