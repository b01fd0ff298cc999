//! Layer normalization, with its fused graph operation.

use nn_autograd::{AutogradError, Graph, Var};
use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Serialize};

use super::{layer_accessors, Meta};
use crate::error::Result;
use crate::init::{Fans, Initializer};
use crate::module::{check_param_count, ForwardCtx, Layer, ParamKind, ParamSpec};

fn yes() -> bool {
    true
}
fn ln_epsilon() -> f64 {
    1e-3
}
fn zeros() -> Initializer {
    Initializer::Zeros
}
fn ones() -> Initializer {
    Initializer::Ones
}

/// Settings of LayerNormalization (Keras's `keras.layers.LayerNormalization` names
/// and defaults; normalises over the last axis only, Keras's default `axis=-1`).
///
/// JSON: `{"type": "LayerNormalization", "epsilon": 1e-5}` (every key optional).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerNormConfig {
    /// Added to the variance before the square root; positive and finite. Default
    /// 1e-3 (Keras; PyTorch's `nn.LayerNorm` uses 1e-5).
    #[serde(default = "ln_epsilon")]
    pub epsilon: f64,
    /// Whether to add the learned offset β. Default true.
    #[serde(default = "yes")]
    pub center: bool,
    /// Whether to multiply by the learned scale γ. Default true.
    #[serde(default = "yes")]
    pub scale: bool,
    /// Default `zeros`.
    #[serde(default = "zeros")]
    pub beta_initializer: Initializer,
    /// Default `ones`.
    #[serde(default = "ones")]
    pub gamma_initializer: Initializer,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        LayerNormConfig {
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_initializer: Initializer::Zeros,
            gamma_initializer: Initializer::Ones,
        }
    }
}

impl LayerNormConfig {
    /// Sets epsilon.
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    /// Sets whether β is used.
    pub fn with_center(mut self, center: bool) -> Self {
        self.center = center;
        self
    }
    /// Sets whether γ is used.
    pub fn with_scale(mut self, scale: bool) -> Self {
        self.scale = scale;
        self
    }
}

/// Layer normalization (J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer Normalization",
/// 2016, arXiv:1607.06450, eq. 4) over the last axis: each sample's (and each
/// position's) feature vector `x` of length `H` is normalised with its own statistics,
/// the same in training and evaluation (no moving statistics, no batch dependence):
///
/// `y = γ ⊙ (x − μ) / √(σ² + ε) + β`, `μ = (1/H) Σᵢ xᵢ`, `σ² = (1/H) Σᵢ (xᵢ − μ)²`
///
/// with the **biased** variance (divided by `H`), as Keras and PyTorch. Defaults are
/// Keras's: `ε = 1e-3`, γ initialised to ones, β to zeros. PyTorch's `nn.LayerNorm`
/// uses `ε = 1e-5`: set `"epsilon": 1e-5` to match a PyTorch-trained model.
///
/// Runs as one fused graph operation ([`layer_norm`]).
///
/// # Shapes
/// - input: `[batch, ..., features]` (at least 1 axis per sample)
/// - parameters, in this order: `gamma: [features]` (if `scale`), `beta: [features]`
///   (if `center`)
/// - output: the input's shape
///
/// # Errors
/// When built: [`LayerError::BuildShape`](crate::LayerError::BuildShape) for a
/// per-sample shape without axes or with 0 features;
/// [`LayerError::InvalidConfig`](crate::LayerError::InvalidConfig) for an epsilon that
/// is not positive and finite.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormalization {
    meta: Meta,
    config: LayerNormConfig,
}

impl LayerNormalization {
    pub(crate) fn new(mut meta: Meta, config: LayerNormConfig) -> Result<Self> {
        if !(config.epsilon.is_finite() && config.epsilon > 0.0) {
            return Err(meta.config_error(format!("epsilon must be positive and finite, got {}", config.epsilon)));
        }
        let features = match meta.input_shape.last() {
            Some(&c) if c > 0 => c,
            _ => return Err(meta.shape_error("[..., features ≥ 1] (at least 1 axis)")),
        };
        let vector = |kind: ParamKind, initializer| ParamSpec {
            kind,
            shape: vec![features],
            trainable: true,
            initializer,
            fans: Fans::of_shape(&[features]),
        };
        if config.scale {
            meta.params.push(vector(ParamKind::Gamma, config.gamma_initializer));
        }
        if config.center {
            meta.params.push(vector(ParamKind::Beta, config.beta_initializer));
        }
        Ok(LayerNormalization { meta, config })
    }

    /// The settings.
    pub fn config(&self) -> &LayerNormConfig {
        &self.config
    }
}

impl<T: Element> Layer<T> for LayerNormalization {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let mut it = params.iter().copied();
        let gamma = if self.config.scale { it.next() } else { None };
        let beta = if self.config.center { it.next() } else { None };
        layer_norm(g, x, gamma, beta, self.config.epsilon)
    }
}

/// A per-feature vector of a graph value, checked to be `[features]`.
fn feature_vector<T: Element>(g: &Graph<T>, v: Option<Var>, c: usize, x_shape: &[usize]) -> Result<Option<Vec<T>>> {
    let Some(v) = v else { return Ok(None) };
    let t = g.try_value(v)?;
    if t.shape() != [c] {
        return Err(AutogradError::ShapeMismatch {
            op: "layer_norm",
            lhs: x_shape.to_vec(),
            rhs: t.shape().to_vec(),
            expected: "gamma and beta of shape [features]",
        }
        .into());
    }
    Ok(Some(t.to_vec()))
}

/// Layer normalization as one graph operation: every row of `x` (its last axis, of
/// `H` features) normalised with its own mean and biased variance, then scaled by
/// `gamma` and shifted by `beta` (each optional). Formula of Ba, Kiros & Hinton,
/// "Layer Normalization", 2016, eq. 4:
///
/// `y = γ · x̂ + β`, `x̂ = (x − μ) / √(σ² + ε)`, `μ = (1/H) Σ x`,
/// `σ² = (1/H) Σ (x − μ)²` (two passes over the row, for accuracy).
///
/// # Shapes
/// `x: [..., features]` (rank ≥ 1), `gamma`, `beta: [features]` → `x`'s shape.
///
/// # Gradient
/// Per row, with `ĝ = g ⊙ γ` and `s = 1/√(σ² + ε)` (the row's own statistics, so the
/// same algebra as batch normalization's with the sums taken along the row):
/// `∂/∂x = s · (ĝ − (1/H) Σ ĝ − x̂ · (1/H) Σ ĝ ⊙ x̂)`;
/// over all rows `∂/∂γ = Σ g ⊙ x̂`, `∂/∂β = Σ g`.
/// Saves each row's mean and `s` (two numbers per row); `x̂` is recomputed from the
/// input.
///
/// # Errors
/// [`LayerError::Autograd`](crate::LayerError::Autograd) for a 0-d input or one with
/// no feature, or a `gamma`/`beta` that is not `[features]`.
pub fn layer_norm<T: Element>(
    g: &mut Graph<T>,
    x: Var,
    gamma: Option<Var>,
    beta: Option<Var>,
    epsilon: f64,
) -> Result<Var> {
    let op = "layer_norm";
    let shape = g.try_value(x)?.shape().to_vec();
    let c = match shape.last() {
        Some(&c) if c > 0 => c,
        _ => {
            return Err(AutogradError::InvalidArgument {
                op,
                message: format!("expected an input [..., features ≥ 1], got shape {shape:?}"),
            }
            .into())
        }
    };
    let gamma_v = feature_vector(g, gamma, c, &shape)?;
    let beta_v = feature_vector(g, beta, c, &shape)?;
    let xv = g.try_value(x)?;
    let x_std = xv.array().as_standard_layout();
    let xs = x_std.as_slice().expect("standard layout");
    let (hf, eps) = (T::of_f64(c as f64), T::of_f64(epsilon));
    let rows = xs.len() / c;
    // Whole rows per chunk of nn's pool; every row (and every chunk's partial sums for
    // γ and β) is computed the same way wherever it runs: bit-identical at any thread
    // count.
    let per_chunk = (LN_CHUNK / c).max(1);
    // (mean, 1/√(σ² + ε)) of each row.
    let mut stats = vec![T::zero(); 2 * rows];
    nn_tensor::par_chunks_mut(&mut stats, 2 * per_chunk, |ci, st| {
        for (r, st) in st.chunks_exact_mut(2).enumerate() {
            let row = &xs[(ci * per_chunk + r) * c..][..c];
            let mean = row.iter().copied().sum::<T>() / hf;
            let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() / hf;
            st[0] = mean;
            st[1] = T::one() / (var + eps).sqrt();
        }
    });
    let out = nn_tensor::par_build(xs.len(), per_chunk * c, |ci, chunk: &mut [T]| {
        for (r, yr) in chunk.chunks_exact_mut(c).enumerate() {
            let row = ci * per_chunk + r;
            let (mean, inv) = (stats[2 * row], stats[2 * row + 1]);
            for (k, (y, &v)) in yr.iter_mut().zip(&xs[row * c..][..c]).enumerate() {
                let mut v = (v - mean) * inv;
                if let Some(gm) = &gamma_v {
                    v *= gm[k];
                }
                if let Some(b) = &beta_v {
                    v += b[k];
                }
                *y = v;
            }
        }
    });
    drop(x_std);
    let value = Tensor::from_vec(&shape, out);

    let inputs: Vec<Var> = [Some(x), gamma, beta].into_iter().flatten().collect();
    let (gamma_at, beta_at) = (gamma.map(|_| 1), beta.map(|_| 1 + usize::from(gamma.is_some())));
    Ok(g.try_custom(op, &inputs, value, move |ctx, grad, sink| {
        let x_std = ctx.input(0).array().as_standard_layout();
        let xs = x_std.as_slice().expect("standard layout");
        let g_std = grad.array().as_standard_layout();
        let gs = g_std.as_slice().expect("standard layout");
        let gm: Option<Vec<T>> = gamma_at.map(|at| ctx.input(at).to_vec());
        let want_x = sink.wants(0);
        let want_gamma = gamma_at.is_some_and(|at| sink.wants(at));
        let want_beta = beta_at.is_some_and(|at| sink.wants(at));
        let x_hat = |row: usize, k: usize| (xs[row * c + k] - stats[2 * row]) * stats[2 * row + 1];
        if want_gamma || want_beta {
            // Per chunk of rows: Σ g·x̂ then Σ g for each feature; the chunks' partials
            // are added in chunk order.
            let chunks = rows.div_ceil(per_chunk);
            let mut partial = vec![T::zero(); chunks * 2 * c];
            nn_tensor::par_chunks_mut(&mut partial, 2 * c, |ci, p| {
                let (pg, pb) = p.split_at_mut(c);
                for row in ci * per_chunk..((ci + 1) * per_chunk).min(rows) {
                    let gr = &gs[row * c..][..c];
                    for k in 0..c {
                        pg[k] += gr[k] * x_hat(row, k);
                        pb[k] += gr[k];
                    }
                }
            });
            let mut sums = vec![T::zero(); 2 * c];
            for p in partial.chunks_exact(2 * c) {
                sums.iter_mut().zip(p).for_each(|(s, &v)| *s += v);
            }
            let (d_gamma, d_beta) = sums.split_at(c);
            if let (Some(at), true) = (gamma_at, want_gamma) {
                sink.add(at, Tensor::from_vec(&[c], d_gamma.to_vec()))?;
            }
            if let (Some(at), true) = (beta_at, want_beta) {
                sink.add(at, Tensor::from_vec(&[c], d_beta.to_vec()))?;
            }
        }
        if want_x {
            let dx = nn_tensor::par_build(xs.len(), per_chunk * c, |ci, chunk: &mut [T]| {
                let mut g_hat = vec![T::zero(); c];
                for (r, dr) in chunk.chunks_exact_mut(c).enumerate() {
                    let row = ci * per_chunk + r;
                    let gr = &gs[row * c..][..c];
                    let (mut sum_g, mut sum_gx) = (T::zero(), T::zero());
                    for k in 0..c {
                        let gh = match &gm {
                            Some(gm) => gr[k] * gm[k],
                            None => gr[k],
                        };
                        g_hat[k] = gh;
                        sum_g += gh;
                        sum_gx += gh * x_hat(row, k);
                    }
                    let (mean_g, mean_gx) = (sum_g / hf, sum_gx / hf);
                    let inv = stats[2 * row + 1];
                    for k in 0..c {
                        dr[k] = inv * (g_hat[k] - mean_g - x_hat(row, k) * mean_gx);
                    }
                }
            });
            sink.add(0, Tensor::from_vec(ctx.input(0).shape(), dx))?;
        }
        Ok(())
    })?)
}

/// Elements of `x` per chunk of nn's pool in [`layer_norm`] (whole rows).
const LN_CHUNK: usize = 1 << 13;

#[cfg(test)]
mod tests {
    use nn_autograd::gradcheck;
    use nn_tensor::random::seeded_rng;

    use super::*;
    use crate::error::LayerError;
    use crate::module::Mode;
    use crate::spec::LayerSpec;

    #[test]
    fn hand_computed_values() {
        // Row [1, 2, 3, 6]: μ = 3, σ² = (4 + 1 + 0 + 9)/4 = 3.5; with ε = 0.5 the scale
        // is 1/√4 = 0.5, so x̂ = [−1, −0.5, 0, 1.5]; γ = [1, 2, 1, 1], β = [0, 0, 1, −1].
        // Row [4, 4, 4, 4]: x̂ = 0 (variance 0), y = β.
        let layer =
            LayerSpec::LayerNormalization(LayerNormConfig::default().with_epsilon(0.5)).build::<f64>(0, &[4]).unwrap();
        assert_eq!(layer.param_specs().len(), 2);
        let mut g = Graph::<f64>::no_grad();
        let x = g.input(Tensor::from_vec(&[2, 4], vec![1., 2., 3., 6., 4., 4., 4., 4.]));
        let gamma = g.constant(Tensor::from_vec(&[4], vec![1., 2., 1., 1.]));
        let beta = g.constant(Tensor::from_vec(&[4], vec![0., 0., 1., -1.]));
        let mut rng = seeded_rng(0);
        let y = layer.forward(&mut g, x, &[gamma, beta], &mut ForwardCtx::new(Mode::Train, &mut rng)).unwrap();
        assert_eq!(g.value(y).to_vec(), [-1., -1., 1., 0.5, 0., 0., 1., -1.]);
    }

    #[test]
    fn gradcheck_every_combination() {
        let to_ag = |e: LayerError| match e {
            LayerError::Autograd(e) => e,
            e => AutogradError::InvalidArgument { op: "layer_norm", message: e.to_string() },
        };
        let x = Tensor::<f64>::random_uniform(&[3, 2, 5], -2.0, 2.0, &mut seeded_rng(1)).unwrap();
        let gamma = Tensor::<f64>::random_uniform(&[5], 0.5, 1.5, &mut seeded_rng(2)).unwrap();
        let beta = Tensor::<f64>::random_uniform(&[5], -1.0, 1.0, &mut seeded_rng(3)).unwrap();
        for (scale, center) in [(true, true), (true, false), (false, true), (false, false)] {
            let mut inputs = vec![x.clone()];
            if scale {
                inputs.push(gamma.clone());
            }
            if center {
                inputs.push(beta.clone());
            }
            let report = gradcheck(&inputs, |g, v| {
                let gm = scale.then(|| v[1]);
                let bt = center.then(|| v[1 + usize::from(scale)]);
                layer_norm(g, v[0], gm, bt, 1e-3).map_err(to_ag)
            })
            .unwrap();
            assert!(report.passes(1e-6), "scale {scale}, center {center}: {report}");
        }
    }

    #[test]
    fn build_errors_and_parameters() {
        let spec = LayerSpec::LayerNormalization(LayerNormConfig::default());
        let e = spec.build::<f32>(2, &[]).unwrap_err();
        assert!(matches!(e, LayerError::BuildShape { .. }), "{e}");
        let bad = LayerSpec::LayerNormalization(LayerNormConfig::default().with_epsilon(0.0));
        assert!(bad.build::<f32>(0, &[3]).unwrap_err().to_string().contains("epsilon"));
        let layer = LayerSpec::LayerNormalization(LayerNormConfig::default().with_center(false))
            .build::<f32>(0, &[7, 3])
            .unwrap();
        assert_eq!(layer.output_shape(), [7, 3]);
        let kinds: Vec<_> = layer.param_specs().iter().map(|p| (p.kind, p.shape.clone())).collect();
        assert_eq!(kinds, [(ParamKind::Gamma, vec![3])]);
    }
}
