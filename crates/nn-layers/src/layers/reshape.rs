//! Flatten and Reshape.

use nn_autograd::{Graph, Var};
use nn_tensor::Element;

use super::{layer_accessors, Meta};
use crate::error::Result;
use crate::module::{check_param_count, ForwardCtx, Layer};
use crate::spec::ReshapeConfig;

/// Flattens each sample in row-major order (for images, NHWC order: channel
/// fastest, as Keras with `channels_last`, so a Keras-trained Dense kernel after
/// Flatten maps 1:1). No parameters.
///
/// # Shapes
/// `[batch, d1, d2, ...]` → `[batch, d1·d2·…]`; a `[batch, d]` input passes unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Flatten {
    meta: Meta,
}

impl Flatten {
    pub(crate) fn new(mut meta: Meta) -> Result<Self> {
        if meta.input_shape.is_empty() {
            return Err(meta.shape_error("[d1, ...] (at least 1 axis)"));
        }
        meta.output_shape = vec![meta.input_shape.iter().product()];
        Ok(Flatten { meta })
    }
}

impl<T: Element> Layer<T> for Flatten {
    layer_accessors!();

    fn reshapes_in_eval(&self) -> bool {
        true
    }

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        if g.try_value(x)?.ndim() == 2 {
            return Ok(x);
        }
        Ok(g.try_flatten(x)?)
    }
}

/// Reshapes each sample to `target_shape`, keeping the row-major order of its
/// elements (Keras's `Reshape`; `-1` is not supported). No parameters; no copy when
/// the input is contiguous.
///
/// # Shapes
/// `[batch, d1, d2, ...]` → `[batch, ...target_shape]`, with `d1·d2·… =
/// Π target_shape` (checked when the model is built).
#[derive(Debug, Clone, PartialEq)]
pub struct Reshape {
    meta: Meta,
}

impl Reshape {
    pub(crate) fn new(mut meta: Meta, config: ReshapeConfig) -> Result<Self> {
        let target = config.target_shape.dims();
        let have: usize = meta.input_shape.iter().product();
        let want: usize = target.iter().product();
        if have != want {
            return Err(meta.shape_error(format!("a shape of {want} elements per sample, to reshape to {target:?}")));
        }
        meta.output_shape = target.to_vec();
        Ok(Reshape { meta })
    }
}

impl<T: Element> Layer<T> for Reshape {
    layer_accessors!();

    fn reshapes_in_eval(&self) -> bool {
        true
    }

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let batch = g.try_value(x)?.shape().first().copied().unwrap_or(0);
        let mut shape = vec![batch];
        shape.extend_from_slice(&self.meta.output_shape);
        Ok(g.try_reshape(x, &shape)?)
    }
}
