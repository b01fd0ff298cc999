//! Broadcasting arithmetic (`add`, `sub`, `mul`, `div`), negation and scalar ops.
//!
//! Binary ops follow NumPy broadcasting ([`nn_tensor::shape::broadcast_shape`]); their
//! backward rules compute the gradient at the broadcast shape and hand it to
//! [`GradSink::add_unbroadcast`](crate::GradSink::add_unbroadcast), which sums it back to
//! each operand's shape in one place ([`sum_to_shape`](crate::sum_to_shape)).

use nn_tensor::{Element, Tensor};

use crate::error::{tensor_err, Result};
use crate::graph::{Graph, Var};
use crate::ops::twin;

/// `g ⊙ other` in place (`other` broadcast to `g`'s shape).
fn scale_by<T: Element>(mut g: Tensor<T>, other: &Tensor<T>) -> Tensor<T> {
    g.array_mut().zip_mut_with(other.array(), |a, &b| *a *= b);
    g
}

impl<T: Element> Graph<T> {
    fn binary(&mut self, op: &'static str, a: Var, b: Var) -> Result<(usize, usize)> {
        Ok((self.idx(op, a)?, self.idx(op, b)?))
    }

    /// `a + b`, element-wise with broadcasting.
    ///
    /// # Shapes
    /// `a` and `b` broadcast together (NumPy rules), e.g. `[batch, n] + [n]` (a bias).
    ///
    /// # Gradient
    /// `∂/∂a = g`, `∂/∂b = g`, each summed over the axes along which it was broadcast.
    ///
    /// # Errors
    /// [`AutogradError::Tensor`](crate::AutogradError::Tensor) when the shapes do not
    /// broadcast; [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_add(&mut self, a: Var, b: Var) -> Result<Var> {
        let op = "add";
        let (ia, ib) = self.binary(op, a, b)?;
        let value = self.val(ia).try_add(self.val(ib)).map_err(tensor_err(op))?;
        Ok(self.push_op(op, &[ia, ib], value, 0, |_, g, sink| {
            if sink.wants(0) && sink.wants(1) {
                sink.add_unbroadcast(0, g.clone())?;
                sink.add_unbroadcast(1, g)
            } else if sink.wants(0) {
                sink.add_unbroadcast(0, g)
            } else {
                sink.add_unbroadcast(1, g)
            }
        }))
    }
    twin!(add => try_add(a: Var, b: Var) -> Var);

    /// `a − b`, element-wise with broadcasting.
    ///
    /// # Gradient
    /// `∂/∂a = g`, `∂/∂b = −g`, each summed back to its operand's shape.
    ///
    /// # Errors
    /// As [`Graph::try_add`].
    pub fn try_sub(&mut self, a: Var, b: Var) -> Result<Var> {
        let op = "sub";
        let (ia, ib) = self.binary(op, a, b)?;
        let value = self.val(ia).try_sub(self.val(ib)).map_err(tensor_err(op))?;
        Ok(self.push_op(op, &[ia, ib], value, 0, |_, g, sink| {
            if sink.wants(1) {
                let neg = g.neg();
                sink.add_unbroadcast(1, neg)?;
            }
            sink.add_unbroadcast(0, g)
        }))
    }
    twin!(sub => try_sub(a: Var, b: Var) -> Var);

    /// `a ⊙ b` (element-wise product) with broadcasting.
    ///
    /// # Gradient
    /// `∂/∂a = g ⊙ b`, `∂/∂b = g ⊙ a` (needs both inputs), summed back to each shape.
    ///
    /// # Errors
    /// As [`Graph::try_add`].
    pub fn try_mul(&mut self, a: Var, b: Var) -> Result<Var> {
        let op = "mul";
        let (ia, ib) = self.binary(op, a, b)?;
        let value = self.val(ia).try_mul(self.val(ib)).map_err(tensor_err(op))?;
        Ok(self.push_op(op, &[ia, ib], value, 0, |ctx, g, sink| match (sink.wants(0), sink.wants(1)) {
            (true, true) => {
                sink.add_unbroadcast(1, scale_by(g.clone(), ctx.input(0)))?;
                sink.add_unbroadcast(0, scale_by(g, ctx.input(1)))
            }
            (true, false) => sink.add_unbroadcast(0, scale_by(g, ctx.input(1))),
            (false, true) => sink.add_unbroadcast(1, scale_by(g, ctx.input(0))),
            (false, false) => Ok(()),
        }))
    }
    twin!(mul => try_mul(a: Var, b: Var) -> Var);

    /// `a / b` with broadcasting (IEEE: division by zero gives ±inf or NaN).
    ///
    /// # Gradient
    /// `∂/∂a = g / b`, `∂/∂b = −g ⊙ a / b² = −g ⊙ y / b` (uses the output `y`),
    /// summed back to each shape.
    ///
    /// # Errors
    /// As [`Graph::try_add`].
    pub fn try_div(&mut self, a: Var, b: Var) -> Result<Var> {
        let op = "div";
        let (ia, ib) = self.binary(op, a, b)?;
        let value = self.val(ia).try_div(self.val(ib)).map_err(tensor_err(op))?;
        Ok(self.push_op(op, &[ia, ib], value, 0, |ctx, g, sink| {
            let b = ctx.input(1);
            if sink.wants(1) {
                let mut gb = g.clone();
                ndarray::Zip::from(gb.array_mut())
                    .and(ctx.output().array())
                    .and_broadcast(b.array())
                    .for_each(|g, &y, &b| *g = -*g * y / b);
                sink.add_unbroadcast(1, gb)?;
            }
            if sink.wants(0) {
                let mut ga = g;
                ga.array_mut().zip_mut_with(b.array(), |g, &b| *g /= b);
                sink.add_unbroadcast(0, ga)?;
            }
            Ok(())
        }))
    }
    twin!(div => try_div(a: Var, b: Var) -> Var);

    /// `−x`.
    ///
    /// # Gradient
    /// `−g`.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_neg(&mut self, x: Var) -> Result<Var> {
        self.unary_op("neg", x, |v| -v, |g, _, _| -g)
    }
    twin!(neg => try_neg(x: Var) -> Var);

    /// `x + c` for a scalar `c`.
    ///
    /// # Gradient
    /// `g`.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_add_scalar(&mut self, x: Var, c: T) -> Result<Var> {
        self.unary_op("add_scalar", x, move |v| v + c, |g, _, _| g)
    }
    twin!(add_scalar => try_add_scalar(x: Var, c: T) -> Var);

    /// `x − c` for a scalar `c`.
    ///
    /// # Gradient
    /// `g`.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_sub_scalar(&mut self, x: Var, c: T) -> Result<Var> {
        self.unary_op("sub_scalar", x, move |v| v - c, |g, _, _| g)
    }
    twin!(sub_scalar => try_sub_scalar(x: Var, c: T) -> Var);

    /// `c − x` for a scalar `c` (e.g. `1 − p`).
    ///
    /// # Gradient
    /// `−g`.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_scalar_sub(&mut self, c: T, x: Var) -> Result<Var> {
        self.unary_op("scalar_sub", x, move |v| c - v, |g, _, _| -g)
    }
    twin!(scalar_sub => try_scalar_sub(c: T, x: Var) -> Var);

    /// `c · x` for a scalar `c`.
    ///
    /// # Gradient
    /// `c · g`.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_mul_scalar(&mut self, x: Var, c: T) -> Result<Var> {
        self.unary_op("mul_scalar", x, move |v| v * c, move |g, _, _| g * c)
    }
    twin!(mul_scalar => try_mul_scalar(x: Var, c: T) -> Var);

    /// `x / c` for a scalar `c` (IEEE division).
    ///
    /// # Gradient
    /// `g / c`.
    ///
    /// # Errors
    /// [`AutogradError::ForeignVar`](crate::AutogradError::ForeignVar).
    pub fn try_div_scalar(&mut self, x: Var, c: T) -> Result<Var> {
        self.unary_op("div_scalar", x, move |v| v / c, move |g, _, _| g / c)
    }
    twin!(div_scalar => try_div_scalar(x: Var, c: T) -> Var);
}
