//! Inverted dropout with a caller-supplied mask.

use nn_tensor::{Element, Tensor};

use crate::error::{AutogradError, Result};
use crate::graph::{bytes_of, Graph, Var};
use crate::ops::twin;

impl<T: Element> Graph<T> {
    /// Inverted dropout (Srivastava et al., 2014, as Keras and PyTorch implement it):
    /// `y = x ⊙ mask / (1 − rate)`, so the expected value of `y` is `x` and evaluation
    /// needs no rescaling (in evaluation, do not call this at all).
    ///
    /// The caller draws the mask, e.g. `Tensor::random_bernoulli(shape, 1 − rate, rng)`
    /// from its own seeded generator, which keeps runs reproducible. The mask may
    /// broadcast (e.g. `[batch, 1, 1, channels]` drops whole feature maps).
    ///
    /// # Shapes
    /// `x: any`, `mask`: broadcastable to `x`'s shape with entries 0 or 1 → `x`'s shape.
    ///
    /// # Gradient
    /// `g ⊙ mask / (1 − rate)` (the scaled mask is kept for backward).
    ///
    /// # Errors
    /// [`AutogradError::InvalidArgument`] for a rate outside `[0, 1)` or a mask entry
    /// other than 0 and 1; [`AutogradError::ShapeMismatch`] when the mask does not
    /// broadcast to `x`'s shape.
    pub fn try_dropout(&mut self, x: Var, mask: Tensor<T>, rate: f64) -> Result<Var> {
        let op = "dropout";
        let i = self.idx(op, x)?;
        if !(0.0..1.0).contains(&rate) {
            return Err(AutogradError::InvalidArgument { op, message: format!("rate {rate} is outside [0, 1)") });
        }
        let xv = self.val(i);
        if mask.array().broadcast(xv.shape()).is_none() {
            return Err(AutogradError::ShapeMismatch {
                op,
                lhs: xv.shape().to_vec(),
                rhs: mask.shape().to_vec(),
                expected: "a mask that broadcasts to the input's shape",
            });
        }
        let bad = |v: &T| *v != T::zero() && *v != T::one();
        // A plain pass over the contiguous values first (indexed iteration computed
        // every index, 7% of a training step of a small CNN with dropout, and even
        // the plain iterator over a dynamic-rank array steps a multi-index); the
        // index only for the error.
        let any_bad = match mask.as_slice() {
            // Blocks without an early exit inside, so the comparisons vectorize.
            Some(values) => values.chunks(4096).any(|c| c.iter().fold(false, |acc, v| acc | bad(v))),
            None => mask.array().iter().any(bad),
        };
        if any_bad {
            if let Some((at, &v)) = mask.array().indexed_iter().find(|(_, v)| bad(v)) {
                return Err(AutogradError::InvalidArgument {
                    op,
                    message: format!("mask entry {v} at {:?} is neither 0 nor 1", ndarray::Dimension::slice(&at)),
                });
            }
        }
        let scale = T::of_f64(1.0 / (1.0 - rate));
        let mut scaled = mask;
        let value = match (xv.as_slice(), scaled.as_slice_mut()) {
            // The common case (a mask of the input's shape): the scaled mask and the
            // output in one vectorized pass, `y = x · (m · scale)` as below.
            (Some(xs), Some(ms)) if xs.len() == ms.len() => {
                let mut ys = Vec::with_capacity(xs.len());
                nn_tensor::simd::vectorized(
                    #[inline(always)]
                    || {
                        ys.extend(ms.iter_mut().zip(xs).map(|(m, &x)| {
                            *m *= scale;
                            x * *m
                        }))
                    },
                );
                Tensor::from_vec(xv.shape(), ys)
            }
            _ => {
                scaled.map_inplace(|m| m * scale);
                let mut value = xv.clone();
                value.array_mut().zip_mut_with(scaled.array(), |y, &m| *y *= m);
                value
            }
        };
        let saved = bytes_of::<T>(scaled.len());
        Ok(self.push_op(op, &[i], value, saved, move |_, mut g, sink| {
            g.array_mut().zip_mut_with(scaled.array(), |g, &m| *g *= m);
            sink.add(0, g)
        }))
    }
    twin!(dropout => try_dropout(x: Var, mask: Tensor<T>, rate: f64) -> Var);
}
