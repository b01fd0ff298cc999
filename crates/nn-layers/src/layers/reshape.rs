//! Flatten.

use nn_autograd::{Graph, Var};
use nn_tensor::Element;

use super::{layer_accessors, Meta};
use crate::error::Result;
use crate::module::{check_param_count, ForwardCtx, Layer};

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

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        if g.try_value(x)?.ndim() == 2 {
            return Ok(x);
        }
        Ok(g.try_flatten(x)?)
    }
}
