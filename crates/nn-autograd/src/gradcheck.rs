//! Numerical gradient checking: every analytic gradient against central finite
//! differences in `f64`.

use std::fmt;

use nn_tensor::random::seeded_rng;
use nn_tensor::Tensor;

use crate::error::Result;
use crate::graph::{Graph, Var};

/// The finite-difference formula of [`gradcheck_with`] (both central differences;
/// e.g. Fornberg, "Generation of finite difference formulas on arbitrarily spaced
/// grids", *Math. Comp.* 51, 1988, table 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stencil {
    /// `(L(x+h) − L(x−h)) / 2h`: truncation error `O(h²)`, 2 evaluations per element.
    Central2,
    /// `(−L(x+2h) + 8L(x+h) − 8L(x−h) + L(x−2h)) / 12h`: truncation error `O(h⁴)`,
    /// 4 evaluations per element. Lets `h` be large enough (1e-3) that rounding in
    /// `L` hardly matters, so agreement to 1e-9 is typical. The default.
    Central4,
}

/// Settings of [`gradcheck_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckOptions {
    /// Finite-difference step `h`, applied as `h · max(1, |x|)` to each element `x`.
    /// Default `1e-3` (with [`Stencil::Central4`]: truncation error ≈ `h⁴/30·|L⁽⁵⁾|`
    /// ≈ 3e-14·|L⁽⁵⁾|, rounding error ≈ `1.5·ε·|L|/h` ≈ 2e-13·|L|). Inputs must be
    /// more than `2h` away from kinks.
    pub eps: f64,
    /// The finite-difference formula. Default [`Stencil::Central4`].
    pub stencil: Stencil,
    /// The smallest magnitude the relative error is divided by:
    /// `rel = |analytic − numeric| / max(|analytic|, |numeric|, rel_floor)`, so that
    /// gradients that are (nearly) zero are judged by their absolute error instead of
    /// an unstable ratio. Default `1e-3`.
    pub rel_floor: f64,
    /// Seed of the random projection used for a non-scalar output.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions { eps: 1e-3, stencil: Stencil::Central4, rel_floor: 1e-3, seed: 0 }
    }
}

/// One compared gradient element.
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckEntry {
    /// Which input (position in the `inputs` slice).
    pub input: usize,
    /// The element's index within that input.
    pub index: Vec<usize>,
    /// The gradient from backward.
    pub analytic: f64,
    /// The central finite difference (see [`Stencil`]).
    pub numeric: f64,
    /// `|analytic − numeric|` (infinite when either is NaN).
    pub abs_error: f64,
    /// `abs_error / max(|analytic|, |numeric|, rel_floor)`.
    pub rel_error: f64,
}

/// The outcome of a gradient check: the worst absolute and relative errors and where
/// they occurred.
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckReport {
    /// The largest absolute error over all elements (0 when nothing was checked).
    pub max_abs_error: f64,
    /// The largest relative error over all elements.
    pub max_rel_error: f64,
    /// The element with the largest absolute error.
    pub worst_abs: Option<GradcheckEntry>,
    /// The element with the largest relative error.
    pub worst_rel: Option<GradcheckEntry>,
    /// How many gradient elements were compared.
    pub checked: usize,
}

impl GradcheckReport {
    /// Whether the worst relative error is at most `max_rel` (NaN never passes).
    pub fn passes(&self, max_rel: f64) -> bool {
        self.max_rel_error <= max_rel
    }
}

impl fmt::Display for GradcheckEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "input {} at {:?}: analytic {:e}, numeric {:e} (abs {:e}, rel {:e})",
            self.input, self.index, self.analytic, self.numeric, self.abs_error, self.rel_error
        )
    }
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gradcheck over {} elements: max abs error {:e}", self.checked, self.max_abs_error)?;
        if let Some(e) = &self.worst_abs {
            write!(f, " [{e}]")?;
        }
        write!(f, ", max rel error {:e}", self.max_rel_error)?;
        if let Some(e) = &self.worst_rel {
            write!(f, " [{e}]")?;
        }
        Ok(())
    }
}

/// [`gradcheck_with`] with the default [`GradcheckOptions`].
///
/// # Errors
/// Whatever `f` returns, and the errors of [`Graph::backward_with_seed`].
pub fn gradcheck<F>(inputs: &[Tensor<f64>], f: F) -> Result<GradcheckReport>
where
    F: Fn(&mut Graph<f64>, &[Var]) -> Result<Var>,
{
    gradcheck_with(inputs, GradcheckOptions::default(), f)
}

/// Compares the gradient backward computes for every element of every input with a
/// central finite difference, in `f64`.
///
/// `f` builds the function under test on a graph from one `Var` per input (each a
/// [`Graph::variable`] leaf) and returns its output. A non-scalar output `y` is
/// reduced to the scalar `L = Σ w ⊙ y` with fixed random weights `w ~ U(−1, 1)`
/// (seeded by [`GradcheckOptions::seed`]); backward is seeded with `w`. Then for each
/// element `x` the numeric derivative of `L` (a central difference, see [`Stencil`],
/// with step `h = eps · max(1, |x|)`) is evaluated on [`Graph::no_grad`] graphs and
/// compared with the analytic one. `f` is called `1 + 4·(total input elements)` times
/// (`1 + 2·…` with [`Stencil::Central2`]) and must be deterministic.
///
/// Keep inputs away from kinks (relu at 0, ties of a max, clamp bounds) by more than
/// the stencil's reach (`2h` by default), where the one-sided derivatives differ and
/// no finite difference can agree.
///
/// # Errors
/// Whatever `f` returns, and the errors of [`Graph::backward_with_seed`].
pub fn gradcheck_with<F>(inputs: &[Tensor<f64>], options: GradcheckOptions, f: F) -> Result<GradcheckReport>
where
    F: Fn(&mut Graph<f64>, &[Var]) -> Result<Var>,
{
    // Analytic gradients.
    let mut graph = Graph::<f64>::new();
    let vars: Vec<Var> = inputs.iter().map(|t| graph.variable(t)).collect();
    let out = f(&mut graph, &vars)?;
    let out_shape = graph.try_value(out)?.shape().to_vec();
    let weights = if graph.value(out).len() == 1 {
        Tensor::ones(&out_shape)
    } else {
        Tensor::<f64>::random_uniform(&out_shape, -1.0, 1.0, &mut seeded_rng(options.seed))
            .expect("a valid range and a shape that already holds a tensor")
    };
    let grads = graph.backward_with_seed(out, weights.clone())?;
    let analytic: Vec<Tensor<f64>> =
        vars.iter().map(|&v| grads.wrt(v).expect("every input is a variable").clone()).collect();
    drop(grads);
    drop(graph);

    // The projected objective L = Σ w ⊙ f(inputs), on a no-grad graph.
    let objective = |xs: &[Tensor<f64>]| -> Result<f64> {
        let mut g = Graph::<f64>::no_grad();
        let vars: Vec<Var> = xs.iter().map(|t| g.variable(t)).collect();
        let out = f(&mut g, &vars)?;
        let y = g.try_value(out)?;
        Ok(y.array().iter().zip(weights.array().iter()).map(|(a, b)| a * b).sum())
    };

    let mut report =
        GradcheckReport { max_abs_error: 0.0, max_rel_error: 0.0, worst_abs: None, worst_rel: None, checked: 0 };
    let mut xs: Vec<Tensor<f64>> = inputs.iter().map(Tensor::to_contiguous).collect();
    for k in 0..xs.len() {
        let shape = xs[k].shape().to_vec();
        for flat in 0..xs[k].len() {
            let x0 = xs[k].as_slice().expect("contiguous")[flat];
            let h = options.eps * x0.abs().max(1.0);
            let mut at = |offset: f64| -> Result<f64> {
                xs[k].as_slice_mut().expect("contiguous")[flat] = x0 + offset;
                let l = objective(&xs);
                xs[k].as_slice_mut().expect("contiguous")[flat] = x0;
                l
            };
            let numeric = match options.stencil {
                Stencil::Central2 => (at(h)? - at(-h)?) / (2.0 * h),
                Stencil::Central4 => (8.0 * (at(h)? - at(-h)?) - (at(2.0 * h)? - at(-2.0 * h)?)) / (12.0 * h),
            };

            let index = unravel(flat, &shape);
            let a = analytic[k].get(&index).expect("gradient has the input's shape");
            let mut abs_error = (a - numeric).abs();
            if abs_error.is_nan() {
                abs_error = f64::INFINITY;
            }
            let rel_error = abs_error / a.abs().max(numeric.abs()).max(options.rel_floor);
            let entry =
                || GradcheckEntry { input: k, index: index.clone(), analytic: a, numeric, abs_error, rel_error };
            if report.worst_abs.is_none() || abs_error > report.max_abs_error {
                report.max_abs_error = abs_error;
                report.worst_abs = Some(entry());
            }
            if report.worst_rel.is_none() || rel_error > report.max_rel_error {
                report.max_rel_error = rel_error;
                report.worst_rel = Some(entry());
            }
            report.checked += 1;
        }
    }
    Ok(report)
}

/// The multi-index of row-major position `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        index[i] = flat % d;
        flat /= d;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_correct_gradient_passes_and_a_wrong_one_is_located() {
        let x = Tensor::<f64>::from_vec(&[2, 2], vec![0.5, -1.0, 2.0, 1.5]);
        let report = gradcheck(std::slice::from_ref(&x), |g, v| g.try_mul(v[0], v[0])).unwrap();
        assert_eq!(report.checked, 4);
        assert!(report.passes(1e-8), "{report}");

        // A custom op claiming d(x²)/dx = 3x: wrong everywhere, worst where |x| is largest.
        let report = gradcheck(&[x], |g, v| {
            let value = g.value(v[0]).map(|a| a * a);
            g.try_custom("bad_square", &[v[0]], value, |ctx, mut grad, sink| {
                grad.array_mut().zip_mut_with(ctx.input(0).array(), |g, &x| *g *= 3.0 * x);
                sink.add(0, grad)
            })
        })
        .unwrap();
        let worst = report.worst_abs.clone().unwrap();
        // |3x − 2x|·|w| is largest at x = 2 unless the projection weight there is small;
        // the analytic/numeric pair reported must show the ratio 3/2 whatever w is.
        assert!((worst.analytic / worst.numeric - 1.5).abs() < 1e-6, "{report}");
        assert!(!report.passes(1e-3));
        assert!((report.max_rel_error - 1.0 / 3.0).abs() < 1e-6, "{report}");
    }

    #[test]
    fn unravel_is_row_major() {
        assert_eq!(unravel(5, &[2, 3]), vec![1, 2]);
        assert_eq!(unravel(0, &[]), Vec::<usize>::new());
    }
}
