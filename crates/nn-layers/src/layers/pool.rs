//! Pooling over NHWC images: MaxPool2D, AvgPool2D, GlobalAveragePooling2D.

use nn_autograd::{Graph, Var};
use nn_tensor::conv::{Conv2dGeometry, Padding};
use nn_tensor::Element;

use super::{layer_accessors, Meta};
use crate::error::Result;
use crate::module::{check_param_count, ForwardCtx, Layer, PoolWindow};
use crate::spec::{PaddingMode, Pool2DConfig};

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

    fn max_pool_window(&self) -> Option<PoolWindow> {
        self.max.then(|| PoolWindow {
            pool_size: self.config.pool_size.pair(),
            strides: self.config.effective_strides().pair(),
            padding: self.config.padding.into(),
        })
    }

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
