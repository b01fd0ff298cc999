//! Pooling over NHWC images: MaxPool2D, AvgPool2D, GlobalAveragePooling2D,
//! GlobalMaxPooling2D.
//!
//! The serde settings ([`Pool2DConfig`]) live here too; `crate::spec` re-exports it.

use nn_autograd::{Graph, Var};
use nn_tensor::conv::{Conv2dGeometry, Padding};
use nn_tensor::Element;
use serde::{Deserialize, Serialize};

use super::{layer_accessors, Meta};
use crate::error::Result;
use crate::module::{check_param_count, ForwardCtx, Layer};
use crate::spec::{PaddingMode, Size2};

fn two_by_two() -> Size2 {
    Size2(2, 2)
}

/// Settings of MaxPool2D and AvgPool2D.
///
/// # Shapes
/// `[batch, height, width, channels]` → `[batch, out_h, out_w, channels]`, sizes as
/// for Conv2D with the pool as kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool2DConfig {
    /// Window `(height, width)`. Default `(2, 2)`.
    #[serde(default = "two_by_two")]
    pub pool_size: Size2,
    /// Default: the pool size (non-overlapping windows), as Keras.
    #[serde(default)]
    pub strides: Option<Size2>,
    /// Default `valid`.
    #[serde(default)]
    pub padding: PaddingMode,
}

impl Default for Pool2DConfig {
    fn default() -> Self {
        Pool2DConfig { pool_size: Size2(2, 2), strides: None, padding: PaddingMode::Valid }
    }
}

impl Pool2DConfig {
    /// A `pool_size` window with stride equal to it, `valid` padding.
    pub fn new(pool_size: impl Into<Size2>) -> Self {
        Pool2DConfig { pool_size: pool_size.into(), ..Self::default() }
    }
    /// Sets the strides.
    pub fn with_strides(mut self, strides: impl Into<Size2>) -> Self {
        self.strides = Some(strides.into());
        self
    }
    /// Sets the padding.
    pub fn with_padding(mut self, padding: PaddingMode) -> Self {
        self.padding = padding;
        self
    }
    /// The strides in use: the given ones or the pool size.
    pub fn effective_strides(&self) -> Size2 {
        self.strides.unwrap_or(self.pool_size)
    }
}

/// MaxPool2D (each output the maximum of its window, per channel) or AvgPool2D (the
/// mean of the window positions inside the image; padding is not counted, as Keras).
/// No parameters.
///
/// Max-pool ties send the gradient to the first maximal element in row-major window
/// order (see [`Graph::try_max_pool2d`]).
///
/// # Shapes
/// `[batch, height, width, channels]` → `[batch, out_h, out_w, channels]`, per axis
/// `valid`: `out = floor((in − pool) / stride) + 1`, `same`: `out = ceil(in / stride)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool2D {
    meta: Meta,
    config: Pool2DConfig,
    max: bool,
}

impl Pool2D {
    pub(crate) fn new(mut meta: Meta, config: Pool2DConfig, max: bool) -> Result<Self> {
        let (ph, pw) = config.pool_size.pair();
        let (sh, sw) = config.effective_strides().pair();
        if ph == 0 || pw == 0 || sh == 0 || sw == 0 {
            return Err(
                meta.config_error(format!("pool_size ({ph}, {pw}) and strides ({sh}, {sw}) must all be at least 1"))
            );
        }
        let &[h, w, c] = meta.input_shape.as_slice() else {
            return Err(meta.shape_error("[height, width, channels] (3 axes, NHWC without the batch axis)"));
        };
        let geometry = Conv2dGeometry::new((h, w, c), (ph, pw), (sh, sw), Padding::from(config.padding))
            .ok()
            .filter(|g| g.out_h > 0 && g.out_w > 0 && c > 0)
            .ok_or_else(|| {
                meta.shape_error(match config.padding {
                    PaddingMode::Valid => {
                        format!("[height ≥ {ph}, width ≥ {pw}, channels ≥ 1] for a {ph}×{pw} pool with valid padding")
                    }
                    PaddingMode::Same => "[height ≥ 1, width ≥ 1, channels ≥ 1]".to_string(),
                })
            })?;
        meta.output_shape = vec![geometry.out_h, geometry.out_w, c];
        Ok(Pool2D { meta, config, max })
    }

    /// The settings.
    pub fn config(&self) -> &Pool2DConfig {
        &self.config
    }
}

impl<T: Element> Layer<T> for Pool2D {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let (pool, stride) = (self.config.pool_size.pair(), self.config.effective_strides().pair());
        let padding = self.config.padding.into();
        Ok(if self.max {
            g.try_max_pool2d(x, pool, stride, padding)?
        } else {
            g.try_avg_pool2d(x, pool, stride, padding)?
        })
    }
}

/// The mean over height and width of each channel (Keras's
/// `GlobalAveragePooling2D`). No parameters.
///
/// # Shapes
/// `[batch, height, width, channels]` → `[batch, channels]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalAveragePooling2D {
    meta: Meta,
}

impl GlobalAveragePooling2D {
    pub(crate) fn new(mut meta: Meta) -> Result<Self> {
        match meta.input_shape.as_slice() {
            &[h, w, c] if h > 0 && w > 0 => meta.output_shape = vec![c],
            _ => {
                return Err(meta.shape_error("[height ≥ 1, width ≥ 1, channels] (3 axes, NHWC without the batch axis)"))
            }
        }
        Ok(GlobalAveragePooling2D { meta })
    }
}

impl<T: Element> Layer<T> for GlobalAveragePooling2D {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        Ok(g.try_mean_axes(x, &[1, 2], false)?)
    }
}

/// The maximum over height and width of each channel (Keras's
/// `GlobalMaxPooling2D`). No parameters.
///
/// Runs as a reshape to `[batch, height·width, channels]` and a maximum along the
/// middle axis ([`Graph::try_max_axis`]). **Ties:** the whole gradient goes to the
/// first maximal position in row-major (height, then width) order; the others get 0
/// (a subgradient, as PyTorch's `max(dim)`).
///
/// # Shapes
/// `[batch, height, width, channels]` → `[batch, channels]`.
///
/// # Errors
/// When built: [`LayerError::BuildShape`](crate::LayerError::BuildShape) for a
/// per-sample shape that is not `[height ≥ 1, width ≥ 1, channels]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalMaxPooling2D {
    meta: Meta,
}

impl GlobalMaxPooling2D {
    pub(crate) fn new(mut meta: Meta) -> Result<Self> {
        match meta.input_shape.as_slice() {
            &[h, w, c] if h > 0 && w > 0 => meta.output_shape = vec![c],
            _ => {
                return Err(meta.shape_error("[height ≥ 1, width ≥ 1, channels] (3 axes, NHWC without the batch axis)"))
            }
        }
        Ok(GlobalMaxPooling2D { meta })
    }
}

impl<T: Element> Layer<T> for GlobalMaxPooling2D {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let shape = g.try_value(x)?.shape().to_vec();
        let rows = match shape.as_slice() {
            &[n, h, w, c] => g.try_reshape(x, &[n, h * w, c])?,
            // Not an image batch: let max_axis name the shape it refuses.
            _ => x,
        };
        Ok(g.try_max_axis(rows, 1, false)?)
    }
}

#[cfg(test)]
mod tests {
    use nn_autograd::gradcheck;
    use nn_tensor::random::seeded_rng;
    use nn_tensor::Tensor;

    use crate::error::LayerError;
    use crate::module::{ForwardCtx, Mode};
    use crate::spec::LayerSpec;
    use nn_autograd::{AutogradError, Graph};

    #[test]
    fn global_max_pooling_values_ties_and_gradcheck() {
        let layer = LayerSpec::GlobalMaxPooling2D.build::<f64>(0, &[2, 2, 2]).unwrap();
        assert_eq!(layer.output_shape(), [2]);
        // Channel 0: [1, 4, 4, 2] (a tie at positions 1 and 2); channel 1: [−1, −3, 0, −2].
        let x = Tensor::from_vec(&[1, 2, 2, 2], vec![1., -1., 4., -3., 4., 0., 2., -2.]);
        let mut g = Graph::<f64>::new();
        let xv = g.variable(x);
        let mut rng = seeded_rng(0);
        let y = layer.forward(&mut g, xv, &[], &mut ForwardCtx::new(Mode::Eval, &mut rng)).unwrap();
        assert_eq!(g.value(y).to_vec(), [4., 0.]);
        let s = g.sum(y);
        let grads = g.backward(s).unwrap();
        assert_eq!(grads.wrt(xv).unwrap().to_vec(), [0., 0., 1., 0., 0., 1., 0., 0.], "ties: the first maximum");

        let x = Tensor::<f64>::random_uniform(&[2, 3, 2, 3], -1.0, 1.0, &mut seeded_rng(7)).unwrap();
        let layer = LayerSpec::GlobalMaxPooling2D.build::<f64>(0, &[3, 2, 3]).unwrap();
        let report = gradcheck(&[x], |g, v| {
            let mut rng = seeded_rng(0);
            layer.forward(g, v[0], &[], &mut ForwardCtx::new(Mode::Train, &mut rng)).map_err(|e| match e {
                LayerError::Autograd(e) => e,
                e => AutogradError::InvalidArgument { op: "layer", message: e.to_string() },
            })
        })
        .unwrap();
        assert!(report.passes(1e-6), "{report}");
        assert!(LayerSpec::GlobalMaxPooling2D.build::<f32>(0, &[4, 4]).is_err());
    }
}
