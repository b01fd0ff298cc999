//! Matrix products on tensors: 2-d and batched 3-d, with either operand transposed
//! without a copy. All of them run through [`crate::gemm::gemm`].

use ndarray::{Array3, ArrayView2, ArrayViewD, Axis, Ix2, Ix3};

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::tensor::{unwrap, Tensor};

fn as_matrix<'a, T: Element>(v: ArrayViewD<'a, T>, transpose: bool) -> ArrayView2<'a, T> {
    let m = v.into_dimensionality::<Ix2>().expect("rank checked");
    if transpose {
        m.reversed_axes()
    } else {
        m
    }
}

impl<T: Element> Tensor<T> {
    /// Matrix product `self · rhs`.
    ///
    /// # Shapes
    /// - `[m, k] · [k, n] → [m, n]`
    /// - batched: `[b, m, k] · [b, k, n] → [b, m, n]`; a batch of 1 on either side
    ///   broadcasts, and `[b, m, k] · [k, n]` shares the right matrix across the batch.
    ///
    /// # Errors
    /// [`TensorError::Rank`] for other ranks; [`TensorError::ShapeMismatch`] when the
    /// inner dimensions or batch sizes disagree.
    pub fn try_matmul(&self, rhs: &Tensor<T>) -> Result<Self> {
        self.try_matmul_t(rhs, false, false)
    }

    /// Panicking twin of [`Tensor::try_matmul`].
    #[track_caller]
    pub fn matmul(&self, rhs: &Tensor<T>) -> Self {
        unwrap(self.try_matmul(rhs))
    }

    /// `op(self) · op(rhs)` where `op` transposes the last two axes when its flag is
    /// set. The transpose is a stride change handed to GEMM: nothing is copied.
    ///
    /// # Shapes
    /// As [`Tensor::try_matmul`] after applying the transposes, e.g.
    /// `transpose_lhs`: `[k, m]ᵀ · [k, n] → [m, n]` (a weight gradient `xᵀ·δ`).
    ///
    /// # Errors
    /// As [`Tensor::try_matmul`].
    pub fn try_matmul_t(&self, rhs: &Tensor<T>, transpose_lhs: bool, transpose_rhs: bool) -> Result<Self> {
        let op = "matmul";
        let mismatch = || TensorError::ShapeMismatch { op, lhs: self.shape().to_vec(), rhs: rhs.shape().to_vec() };
        let last2 = |s: &[usize], t: bool| {
            let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
            if t {
                (c, r)
            } else {
                (r, c)
            }
        };
        match (self.ndim(), rhs.ndim()) {
            (2, 2) => {
                let a = as_matrix(self.view(), transpose_lhs);
                let b = as_matrix(rhs.view(), transpose_rhs);
                if a.ncols() != b.nrows() {
                    return Err(mismatch());
                }
                // Zeroed on nn's pool, chunk by chunk (β = 0 overwrites it anyway).
                let (m, n) = (a.nrows(), b.ncols());
                crate::shape::checked_numel(op, &[m, n])?;
                let zeros = crate::zeros_par(m * n);
                let mut out = ndarray::Array2::from_shape_vec((m, n), zeros).expect("m · n elements");
                crate::gemm::gemm(T::one(), a, b, T::zero(), &mut out.view_mut())?;
                Ok(out.into())
            }
            (3, 3) | (3, 2) => {
                let (m, k) = last2(self.shape(), transpose_lhs);
                let (k2, n) = last2(rhs.shape(), transpose_rhs);
                let (ba, bb) = (self.shape()[0], if rhs.ndim() == 3 { rhs.shape()[0] } else { 1 });
                if k != k2 || (ba != bb && ba != 1 && bb != 1) {
                    return Err(mismatch());
                }
                let batch = ba.max(bb);
                crate::shape::checked_numel(op, &[batch, m, n])?;
                let a3 = self.view().into_dimensionality::<Ix3>().expect("rank checked");
                let b3 = if rhs.ndim() == 3 {
                    rhs.view().into_dimensionality::<Ix3>().expect("rank checked")
                } else {
                    rhs.view().insert_axis(Axis(0)).into_dimensionality::<Ix3>().expect("rank 3")
                };
                let zeros = crate::zeros_par(batch * m * n);
                let mut out = Array3::from_shape_vec((batch, m, n), zeros).expect("batch · m · n elements");
                let operands = |i: usize| {
                    let a = a3.index_axis(Axis(0), if ba == 1 { 0 } else { i });
                    let b = b3.index_axis(Axis(0), if bb == 1 { 0 } else { i });
                    let a = if transpose_lhs { a.reversed_axes() } else { a };
                    let b = if transpose_rhs { b.reversed_axes() } else { b };
                    (a, b)
                };
                let per_item = m * n * k;
                if batch > 1 && per_item < crate::gemm::SERIAL_BELOW && m * n > 0 {
                    // Many small products (attention's [batch·heads, seq, seq]): whole
                    // products spread over nn's pool, each on one thread. A GEMM gives
                    // the same bits on any thread count, so the result does too.
                    let items = (crate::gemm::SERIAL_BELOW / per_item.max(1)).clamp(1, batch);
                    let failed = std::sync::Mutex::new(None);
                    let data = out.as_slice_mut().expect("fresh array");
                    crate::for_each_chunk_mut(
                        data,
                        items * m * n,
                        || (),
                        |_, chunk_index, chunk| {
                            for (j, c) in chunk.chunks_exact_mut(m * n).enumerate() {
                                let (a, b) = operands(chunk_index * items + j);
                                let mut c = ndarray::ArrayViewMut2::from_shape((m, n), c).expect("m · n elements");
                                if let Err(e) = crate::gemm::gemm_serial(T::one(), a, b, T::zero(), &mut c) {
                                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                                }
                            }
                        },
                    );
                    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
                        return Err(e);
                    }
                } else {
                    for (i, mut c) in out.outer_iter_mut().enumerate() {
                        let (a, b) = operands(i);
                        crate::gemm::gemm(T::one(), a, b, T::zero(), &mut c)?;
                    }
                }
                Ok(out.into())
            }
            _ => Err(TensorError::Rank {
                op,
                expected: "2 or 3",
                shape: if self.ndim() == 2 || self.ndim() == 3 { rhs.shape().to_vec() } else { self.shape().to_vec() },
            }),
        }
    }

    /// Panicking twin of [`Tensor::try_matmul_t`].
    #[track_caller]
    pub fn matmul_t(&self, rhs: &Tensor<T>, transpose_lhs: bool, transpose_rhs: bool) -> Self {
        unwrap(self.try_matmul_t(rhs, transpose_lhs, transpose_rhs))
    }
}
