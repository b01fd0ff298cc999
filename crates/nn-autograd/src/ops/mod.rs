//! The differentiable operations, one module per family. Each op's backward rule is a
//! closure written right after its forward computation; the doc comment of every op
//! states its shapes, its gradient formula, and its conventions at kinks.

use ndarray::Zip;
use nn_tensor::{Element, Tensor};

use crate::error::Result;
use crate::graph::{Graph, Var};
use activation::Epilogue;

pub mod activation;
pub mod arith;
pub mod conv;
pub mod conv_pool;
pub mod dropout;
pub mod loss;
pub mod matmul;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod softmax;
pub mod transformer;
pub mod unary;

/// Defines the panicking twin `$name` of `try_$name`-style method `$try`.
macro_rules! twin {
    ($(#[$attr:meta])* $name:ident => $try:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {
        #[doc = concat!("Panicking twin of [`Graph::", stringify!($try), "`]: same result, panics with the same message where it returns an error.")]
        #[track_caller]
        $(#[$attr])*
        pub fn $name(&mut self, $($arg: $ty),*) -> $ret {
            crate::error::unwrap(self.$try($($arg),*))
        }
    };
}
pub(crate) use twin;

/// Sums the rows of a row-major `[rows, width]` matrix stored in `data`: the bias
/// gradient of a dense or convolution layer (`Σ_batch g`), in one pass over memory in
/// row order (so the result does not depend on anything but the data).
pub(crate) fn column_sums<T: Element>(data: &[T], width: usize) -> Vec<T> {
    /// Columns per piece of nn's pool: wide outputs only (a language model's vocabulary).
    const COLUMNS: usize = 512;
    let mut acc = vec![T::zero(); width];
    if width > 0 {
        // Split by columns, so every column is still summed row by row in order: the
        // same bits at any thread count, and as the one-thread loop.
        nn_tensor::par_chunks_mut(&mut acc, COLUMNS, |piece, acc| {
            let (start, n) = (piece * COLUMNS, acc.len());
            for row in data.chunks_exact(width) {
                acc.iter_mut().zip(&row[start..start + n]).for_each(|(a, &v)| *a += v);
            }
        });
    }
    acc
}

/// The operands of an affine op with an optional epilogue (`linear_act`,
/// `conv2d_act`, `conv2d_max_pool`): their tape positions, the op's parents (`x`,
/// `kernel`, then the bias when given), and their values.
pub(crate) struct AffineOperands<'g, T: Element> {
    pub(crate) parents: Vec<usize>,
    pub(crate) x: &'g Tensor<T>,
    pub(crate) kernel: &'g Tensor<T>,
    pub(crate) bias: Option<&'g Tensor<T>>,
}

impl<T: Element> Graph<T> {
    /// The operands `x`, `kernel` and `bias` of affine op `op`, after checking that
    /// the epilogue's derivative can be read from the output ([`Epilogue`]).
    ///
    /// # Errors
    /// [`AutogradError::InvalidArgument`](crate::AutogradError::InvalidArgument) for
    /// such an epilogue, [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub(crate) fn affine_operands(
        &self,
        op: &'static str,
        x: Var,
        kernel: Var,
        bias: Option<Var>,
        epilogue: Option<Epilogue>,
    ) -> Result<AffineOperands<'_, T>> {
        if let Some(e) = epilogue {
            e.check(op)?;
        }
        let parents =
            [Some(x), Some(kernel), bias].into_iter().flatten().map(|v| self.idx(op, v)).collect::<Result<Vec<_>>>()?;
        Ok(AffineOperands {
            x: self.val(parents[0]),
            kernel: self.val(parents[1]),
            bias: parents.get(2).map(|&i| self.val(i)),
            parents,
        })
    }

    /// Records an element-wise op `y = f(x)` whose backward rule maps each upstream
    /// gradient `g` to `dg(g, x, y)` in place (`x` the input, `y` the output element).
    pub(crate) fn unary_op(
        &mut self,
        op: &'static str,
        x: Var,
        f: impl Fn(T) -> T + Send + Sync,
        dg: impl Fn(T, T, T) -> T + Send + Sync + 'static,
    ) -> Result<Var> {
        let i = self.idx(op, x)?;
        let value = self.val(i).map_par(f);
        Ok(self.push_op(op, &[i], value, 0, move |ctx, mut g, sink| {
            Zip::from(g.array_mut())
                .and(ctx.input(0).array())
                .and(ctx.output().array())
                .for_each(|g, &x, &y| *g = dg(*g, x, y));
            sink.add(0, g)
        }))
    }
}
