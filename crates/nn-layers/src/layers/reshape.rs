//! Flatten, Reshape and Identity.
//!
//! The serde settings ([`ReshapeConfig`], [`TargetShape`]) live here too; `crate::spec`
//! re-exports them.

use nn_autograd::{Graph, Var};
use nn_tensor::Element;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{layer_accessors, Meta};
use crate::error::{LayerError, Result};
use crate::module::{check_param_count, ForwardCtx, Layer};

/// The most axes a [`TargetShape`] holds.
pub const MAX_TARGET_AXES: usize = 8;

/// A per-sample shape of up to [`MAX_TARGET_AXES`] axes, each at least 1; JSON: an
/// array of integers, e.g. `[28, 28]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TargetShape {
    dims: [usize; MAX_TARGET_AXES],
    len: usize,
}

impl TargetShape {
    /// The shape `dims`.
    ///
    /// # Errors
    /// [`LayerError::Spec`] for no axis, more than [`MAX_TARGET_AXES`] axes or a zero
    /// axis.
    pub fn new(dims: &[usize]) -> Result<Self> {
        if dims.is_empty() || dims.len() > MAX_TARGET_AXES || dims.contains(&0) {
            return Err(LayerError::Spec {
                message: format!("target_shape {dims:?} must have 1 to {MAX_TARGET_AXES} axes, each at least 1"),
            });
        }
        let mut d = [0; MAX_TARGET_AXES];
        d[..dims.len()].copy_from_slice(dims);
        Ok(TargetShape { dims: d, len: dims.len() })
    }

    /// The axes.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.len]
    }
}

impl Serialize for TargetShape {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.dims().serialize(s)
    }
}

impl<'de> Deserialize<'de> for TargetShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let dims = Vec::<usize>::deserialize(d)?;
        TargetShape::new(&dims).map_err(serde::de::Error::custom)
    }
}

/// Settings of Reshape (Keras's `Reshape`, without `-1`).
///
/// # Shapes
/// `[batch, ...]` → `[batch, ...target_shape]`, the same number of elements per sample,
/// row-major order kept (e.g. `[batch, 28, 28, 1]` → `[batch, 28, 28]` for a recurrent
/// layer reading images row by row).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReshapeConfig {
    /// The per-sample output shape.
    pub target_shape: TargetShape,
}

/// The number of elements of the per-sample `shape`, checked by
/// [`nn_tensor::shape::checked_numel`]: no overflow, and a sample of that shape fits
/// in memory (`isize::MAX` bytes) as `f64`, the widest element type, so a spec
/// builds alike for `f32` and `f64`. `None` when it does not.
fn sample_numel(shape: &[usize]) -> Option<usize> {
    nn_tensor::shape::checked_numel("model build", shape).ok()
}

/// The most elements a per-sample shape may hold (`isize::MAX` bytes of `f64`), for
/// error messages.
const MAX_SAMPLE_ELEMENTS: usize = isize::MAX as usize / nn_tensor::shape::MAX_ELEMENT_SIZE;

/// Flattens each sample in row-major order (for images, NHWC order: channel
/// fastest, as Keras with `channels_last`, so a Keras-trained Dense kernel after
/// Flatten maps 1:1). No parameters.
///
/// # Shapes
/// `[batch, d1, d2, ...]` → `[batch, d1·d2·…]`; a `[batch, d]` input passes unchanged.
///
/// # Errors (when built)
/// `LayerError::BuildShape` for a 0-d input or one whose element count overflows or
/// exceeds what one sample can hold (`isize::MAX` bytes of `f64`).
#[derive(Debug, Clone, PartialEq)]
pub struct Flatten {
    meta: Meta,
}

impl Flatten {
    pub(crate) fn new(mut meta: Meta) -> Result<Self> {
        if meta.input_shape.is_empty() {
            return Err(meta.shape_error("[d1, ...] (at least 1 axis)"));
        }
        let Some(features) = sample_numel(&meta.input_shape) else {
            return Err(meta.shape_error(format!("a shape of at most {MAX_SAMPLE_ELEMENTS} elements")));
        };
        meta.output_shape = vec![features];
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

/// Reshapes each sample to `target_shape`, keeping the row-major order of its
/// elements (Keras's `Reshape`; `-1` is not supported). No parameters; no copy when
/// the input is contiguous.
///
/// # Shapes
/// `[batch, d1, d2, ...]` → `[batch, ...target_shape]`, with `d1·d2·… =
/// Π target_shape` (checked when the model is built).
///
/// # Errors (when built)
/// `LayerError::BuildShape` when the input holds another number of elements than
/// `target_shape`, or too many (as for [`Flatten`]); `LayerError::InvalidConfig`
/// when `target_shape` itself holds too many elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Reshape {
    meta: Meta,
}

impl Reshape {
    pub(crate) fn new(mut meta: Meta, config: ReshapeConfig) -> Result<Self> {
        let target = config.target_shape.dims();
        let Some(have) = sample_numel(&meta.input_shape) else {
            return Err(meta.shape_error(format!("a shape of at most {MAX_SAMPLE_ELEMENTS} elements")));
        };
        let Some(want) = sample_numel(target) else {
            return Err(meta.config_error(format!(
                "target_shape {target:?} has too many elements (at most {MAX_SAMPLE_ELEMENTS} per sample)"
            )));
        };
        if have != want {
            return Err(meta.shape_error(format!("a shape of {want} elements per sample, to reshape to {target:?}")));
        }
        meta.output_shape = target.to_vec();
        Ok(Reshape { meta })
    }
}

impl<T: Element> Layer<T> for Reshape {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        let batch = g.try_value(x)?.shape().first().copied().unwrap_or(0);
        let mut shape = vec![batch];
        shape.extend_from_slice(&self.meta.output_shape);
        Ok(g.try_reshape(x, &shape)?)
    }
}

/// Returns its input unchanged (Keras's `Identity`): a named pass-through, e.g. a
/// placeholder for a layer to be swapped in, or a model output that is also an
/// input. No parameters; no copy on a graph (the same variable comes out).
///
/// # Shapes
/// `[batch, ...]` → the same.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    meta: Meta,
}

impl Identity {
    pub(crate) fn new(meta: Meta) -> Result<Self> {
        Ok(Identity { meta })
    }
}

impl<T: Element> Layer<T> for Identity {
    layer_accessors!();

    fn forward(&self, _g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        Ok(x)
    }

    fn infer(
        &self,
        x: ndarray::ArrayViewD<'_, T>,
        _params: &[crate::module::Parameter<T>],
        _logits: bool,
    ) -> Option<Result<nn_tensor::Tensor<T>>> {
        Some(Ok(nn_tensor::Tensor::from(x.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use nn_tensor::random::seeded_rng;
    use nn_tensor::Tensor;

    use crate::module::{ForwardCtx, Mode};
    use crate::spec::LayerSpec;
    use nn_autograd::Graph;

    #[test]
    fn flatten_and_reshape_refuse_overflowing_shapes() {
        use crate::error::LayerError;
        use crate::layers::reshape::{ReshapeConfig, TargetShape};
        let big = 1usize << 62;
        let max = super::MAX_SAMPLE_ELEMENTS;
        assert_eq!(max, 1152921504606846975);
        // [5, 2^62]: the product overflows usize.
        let err = LayerSpec::Flatten.build::<f32>(3, &[5, big]).err().unwrap();
        assert_eq!(
            err,
            LayerError::BuildShape {
                index: 3,
                name: None,
                kind: "Flatten",
                expected: format!("a shape of at most {max} elements"),
                got: vec![5, big],
            }
        );
        assert_eq!(
            err.to_string(),
            "layer 3 (Flatten): expected input shape a shape of at most 1152921504606846975 elements, got \
             [5, 4611686018427387904] (per sample, batch axis left out)"
        );
        // [2^32, 2^32] wraps to 0 features with an unchecked product.
        let err = LayerSpec::Flatten.build::<f64>(0, &[1 << 32, 1 << 32]).err().unwrap();
        assert!(err.to_string().contains("got [4294967296, 4294967296]"), "{err}");
        // [2^62, 1]: fits usize, but not memory.
        let err = LayerSpec::Flatten.build::<f32>(0, &[big, 1]).err().unwrap();
        assert!(matches!(err, LayerError::BuildShape { .. }), "{err}");
        // The largest sample still builds; one element more does not.
        assert_eq!(LayerSpec::Flatten.build::<f32>(0, &[max, 1]).unwrap().output_shape(), [max]);
        assert!(LayerSpec::Flatten.build::<f32>(0, &[max + 1, 1]).is_err());

        let reshape =
            |dims: &[usize]| LayerSpec::Reshape(ReshapeConfig { target_shape: TargetShape::new(dims).unwrap() });
        // An input too large.
        let err = reshape(&[4]).build::<f32>(1, &[1 << 32, 1 << 32]).err().unwrap();
        assert!(matches!(err, LayerError::BuildShape { index: 1, kind: "Reshape", .. }), "{err}");
        assert!(err.to_string().contains("got [4294967296, 4294967296]"), "{err}");
        // A target too large: its wrapped product (0) must not match anything.
        let err = reshape(&[1 << 32, 1 << 32]).build::<f32>(2, &[4]).err().unwrap();
        assert_eq!(
            err.to_string(),
            "layer 2 (Reshape): target_shape [4294967296, 4294967296] has too many elements (at most \
             1152921504606846975 per sample)"
        );
        let err = reshape(&[big, 2]).build::<f32>(0, &[big, 2]).err().unwrap();
        assert!(matches!(err, LayerError::BuildShape { .. }), "{err}");
        // Still fine: equal counts.
        assert_eq!(reshape(&[4, 3]).build::<f32>(0, &[2, 6]).unwrap().output_shape(), [4, 3]);
        let err = reshape(&[5]).build::<f32>(0, &[2, 3]).err().unwrap();
        assert!(err.to_string().contains("a shape of 5 elements per sample"), "{err}");
    }

    #[test]
    fn identity_passes_its_input_and_gradient() {
        let layer = LayerSpec::Identity.build::<f64>(0, &[2, 3]).unwrap();
        assert_eq!(layer.output_shape(), [2, 3]);
        assert!(layer.param_specs().is_empty());
        let x = Tensor::from_vec(&[1, 2, 3], vec![1., -2., 3., 4., 5., -6.]);
        let mut g = Graph::<f64>::new();
        let xv = g.variable(x.clone());
        let mut rng = seeded_rng(0);
        let y = layer.forward(&mut g, xv, &[], &mut ForwardCtx::new(Mode::Train, &mut rng)).unwrap();
        assert_eq!(g.value(y), &x);
        let w = g.constant(Tensor::from_vec(&[1, 2, 3], vec![1., 2., 3., 4., 5., 6.]));
        let wy = g.mul(y, w);
        let s = g.sum(wy);
        let grads = g.backward(s).unwrap();
        assert_eq!(grads.wrt(xv).unwrap().to_vec(), [1., 2., 3., 4., 5., 6.]);
        assert_eq!(layer.infer(x.view(), &[], false).unwrap().unwrap(), x);
    }
}
