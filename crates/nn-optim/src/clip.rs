//! Gradient clipping by global norm (PyTorch's `clip_grad_norm_`) and by value
//! (`clip_grad_value_`).

use nn_tensor::Element;

use crate::error::{check, OptimError, Result};
use crate::param::{check_params, ParamMut};

/// The global L2 norm of all gradients, `√(Σ_params Σ_i g_i²)`, accumulated in `f64`
/// (so `f32` gradients cannot overflow it). Every gradient counts, frozen or not.
pub fn global_norm<T: Element>(params: &[ParamMut<'_, T>]) -> f64 {
    params.iter().flat_map(|p| p.grad.array().iter()).map(|&g| g.as_f64() * g.as_f64()).sum::<f64>().sqrt()
}

/// Rescales all gradients together so that their global norm is at most `max_norm`,
/// with PyTorch's `torch.nn.utils.clip_grad_norm_` semantics, and returns the norm
/// before clipping (to log it):
///
/// ```text
/// n = √(Σ g²)                    over every gradient given
/// c = max_norm / (n + 1e-6)
/// if c < 1:  g ← c·g              (all gradients, same factor: direction kept)
/// ```
///
/// Non-finite norm: when any gradient holds an infinity or NaN, the gradients are left
/// unchanged and [`OptimError::NonFiniteNorm`] is returned with the norm and the first
/// parameter at fault, so the caller can skip the step or stop the run (PyTorch's
/// default instead multiplies everything by 0 or NaN).
///
/// # Errors
/// [`OptimError::NonFiniteNorm`] as above; [`OptimError::InvalidHyperparameter`] unless
/// `max_norm` is finite and `>= 0`; [`OptimError::GradShape`] /
/// [`OptimError::DuplicateParam`] as for a step.
pub fn clip_grad_norm<T: Element>(params: &mut [ParamMut<'_, T>], max_norm: f64) -> Result<f64> {
    check("clip_grad_norm", "max_norm", max_norm, max_norm.is_finite() && max_norm >= 0.0, "a finite value >= 0")?;
    check_params(params)?;
    let norm = global_norm(params);
    if !norm.is_finite() {
        let name = params
            .iter()
            .find(|p| p.grad.array().iter().any(|g| !g.is_finite()))
            .map_or_else(String::new, |p| p.name.to_string());
        return Err(OptimError::NonFiniteNorm { norm, name });
    }
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        let c = T::of_f64(coef);
        for p in params.iter_mut() {
            p.grad.array_mut().mapv_inplace(|g| g * c);
        }
    }
    Ok(norm)
}

/// Clamps every gradient element to `[-clip_value, clip_value]` (PyTorch's
/// `clip_grad_value_`, Keras's `clipvalue`). NaN elements stay NaN.
///
/// # Errors
/// [`OptimError::InvalidHyperparameter`] unless `clip_value` is `>= 0` (infinity
/// allowed: no clipping); [`OptimError::GradShape`] / [`OptimError::DuplicateParam`]
/// as for a step.
pub fn clip_grad_value<T: Element>(params: &mut [ParamMut<'_, T>], clip_value: f64) -> Result<()> {
    check("clip_grad_value", "clip_value", clip_value, clip_value >= 0.0, "a value >= 0")?;
    check_params(params)?;
    let (hi, lo) = (T::of_f64(clip_value), T::of_f64(-clip_value));
    for p in params.iter_mut() {
        p.grad.array_mut().mapv_inplace(|g| {
            if g > hi {
                hi
            } else if g < lo {
                lo
            } else {
                g
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nn_tensor::Tensor;

    fn two_grads(a: Vec<f64>, b: Vec<f64>) -> (Vec<Tensor<f64>>, Vec<Tensor<f64>>) {
        let values = vec![Tensor::zeros(&[a.len()]), Tensor::zeros(&[b.len()])];
        let grads = vec![Tensor::from_vec(&[a.len()], a), Tensor::from_vec(&[b.len()], b)];
        (values, grads)
    }

    #[test]
    fn norm_clipping_scales_all_gradients_by_one_factor() {
        // g = [3, 4] and [12]: n = √(9 + 16 + 144) = 13; max_norm 6.5 → c = 6.5 / (13 + 1e-6).
        let (mut v, mut g) = two_grads(vec![3.0, 4.0], vec![12.0]);
        let (v0, v1) = v.split_at_mut(1);
        let (g0, g1) = g.split_at_mut(1);
        let mut ps = [ParamMut::new("a", &mut v0[0], &mut g0[0]), ParamMut::new("b", &mut v1[0], &mut g1[0])];
        let n = clip_grad_norm(&mut ps, 6.5).unwrap();
        assert_eq!(n, 13.0);
        let c = 6.5 / (13.0 + 1e-6);
        assert_eq!(g[0].to_vec(), vec![3.0 * c, 4.0 * c]);
        assert_eq!(g[1].to_vec(), vec![12.0 * c]);
    }

    #[test]
    fn norm_clipping_leaves_small_gradients_alone() {
        let (mut v, mut g) = two_grads(vec![0.3, 0.4], vec![0.0]);
        let (v0, v1) = v.split_at_mut(1);
        let (g0, g1) = g.split_at_mut(1);
        let mut ps = [ParamMut::new("a", &mut v0[0], &mut g0[0]), ParamMut::new("b", &mut v1[0], &mut g1[0])];
        assert!((clip_grad_norm(&mut ps, 1.0).unwrap() - 0.5).abs() < 1e-16);
        assert_eq!(g[0].to_vec(), vec![0.3, 0.4]);
    }

    #[test]
    fn non_finite_norm_is_an_error_and_changes_nothing() {
        let (mut v, mut g) = two_grads(vec![1.0, 2.0], vec![f64::INFINITY]);
        let (v0, v1) = v.split_at_mut(1);
        let (g0, g1) = g.split_at_mut(1);
        let mut ps = [ParamMut::new("a", &mut v0[0], &mut g0[0]), ParamMut::new("b", &mut v1[0], &mut g1[0])];
        let err = clip_grad_norm(&mut ps, 1.0).unwrap_err();
        assert!(matches!(err, OptimError::NonFiniteNorm { norm, ref name } if norm == f64::INFINITY && name == "b"));
        assert_eq!(g[0].to_vec(), vec![1.0, 2.0]);
        assert!(clip_grad_norm::<f64>(&mut [], -1.0).is_err());
    }

    #[test]
    fn value_clipping_clamps_each_element() {
        let mut v = Tensor::<f32>::zeros(&[4]);
        let mut g = Tensor::<f32>::from_vec(&[4], vec![-3.0, -0.5, 0.25, f32::NAN]);
        clip_grad_value(&mut [ParamMut::new("a", &mut v, &mut g)], 1.0).unwrap();
        let out = g.to_vec();
        assert_eq!(&out[..3], &[-1.0, -0.5, 0.25]);
        assert!(out[3].is_nan());
        assert!(clip_grad_value(&mut [ParamMut::new("a", &mut v, &mut g)], -1.0).is_err());
    }
}
