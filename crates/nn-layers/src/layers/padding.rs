//! ZeroPadding2D: zero rows and columns around NHWC images.

use ndarray::{Ix4, Slice};
use nn_autograd::{AutogradError, Graph, Var};
use nn_tensor::{Element, Tensor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{layer_accessors, Meta};
use crate::error::Result;
use crate::module::{check_param_count, ForwardCtx, Layer};

/// Zero rows and columns added on each side of an image: `top`, `bottom` rows,
/// `left`, `right` columns.
///
/// JSON takes Keras's three forms of `padding`: one integer `n` (`n` on every side),
/// a pair `[h, w]` (`h` rows above and below, `w` columns left and right), or
/// `[[top, bottom], [left, right]]`; it is written in the last form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Padding2D {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
}

impl Padding2D {
    /// `n` on every side.
    pub fn uniform(n: usize) -> Self {
        Padding2D { top: n, bottom: n, left: n, right: n }
    }

    /// `h` rows above and below, `w` columns left and right.
    pub fn symmetric(h: usize, w: usize) -> Self {
        Padding2D { top: h, bottom: h, left: w, right: w }
    }
}

impl Default for Padding2D {
    /// Keras's default: one on every side.
    fn default() -> Self {
        Padding2D::uniform(1)
    }
}

impl Serialize for Padding2D {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        [[self.top, self.bottom], [self.left, self.right]].serialize(s)
    }
}

impl<'de> Deserialize<'de> for Padding2D {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(usize),
            Pair([usize; 2]),
            Full([[usize; 2]; 2]),
        }
        match Form::deserialize(d) {
            Ok(Form::One(n)) => Ok(Padding2D::uniform(n)),
            Ok(Form::Pair([h, w])) => Ok(Padding2D::symmetric(h, w)),
            Ok(Form::Full([[top, bottom], [left, right]])) => Ok(Padding2D { top, bottom, left, right }),
            Err(_) => Err(serde::de::Error::custom(
                "expected padding as a non-negative integer, a pair [h, w], or [[top, bottom], [left, right]]",
            )),
        }
    }
}

/// Settings of ZeroPadding2D (Keras's `keras.layers.ZeroPadding2D`, `channels_last`).
///
/// JSON: `{"type": "ZeroPadding2D", "padding": [[1, 2], [0, 1]]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroPadding2DConfig {
    /// The zeros added on each side. Default 1 everywhere, as Keras.
    #[serde(default)]
    pub padding: Padding2D,
}

/// Adds zero rows and columns around each image (Keras's `ZeroPadding2D`). No
/// parameters.
///
/// # Shapes
/// `[batch, h, w, c]` → `[batch, top + h + bottom, left + w + right, c]` (NHWC).
///
/// # Gradient
/// The upstream gradient's interior (the window where the input was copied); the
/// padding receives nothing.
///
/// # Errors
/// When built: [`LayerError::BuildShape`](crate::LayerError::BuildShape) for a
/// per-sample shape that is not `[height, width, channels]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroPadding2D {
    meta: Meta,
    config: ZeroPadding2DConfig,
}

impl ZeroPadding2D {
    pub(crate) fn new(mut meta: Meta, config: ZeroPadding2DConfig) -> Result<Self> {
        let &[h, w, c] = meta.input_shape.as_slice() else {
            return Err(meta.shape_error("[height, width, channels] (3 axes, NHWC without the batch axis)"));
        };
        let p = config.padding;
        let grow = |n: usize, a: usize, b: usize| n.checked_add(a).and_then(|n| n.checked_add(b));
        let (Some(oh), Some(ow)) = (grow(h, p.top, p.bottom), grow(w, p.left, p.right)) else {
            return Err(meta.config_error(format!("padding {p:?} overflows the image size")));
        };
        meta.output_shape = vec![oh, ow, c];
        Ok(ZeroPadding2D { meta, config })
    }

    /// The settings.
    pub fn config(&self) -> &ZeroPadding2DConfig {
        &self.config
    }
}

impl<T: Element> Layer<T> for ZeroPadding2D {
    layer_accessors!();

    fn forward(&self, g: &mut Graph<T>, x: Var, params: &[Var], _ctx: &mut ForwardCtx<'_, T>) -> Result<Var> {
        check_param_count::<T>(self, params)?;
        zero_pad2d(g, x, self.config.padding)
    }
}

/// `x: [batch, h, w, c]` with `padding` zeros around each image, as one graph
/// operation (see [`ZeroPadding2D`]).
fn zero_pad2d<T: Element>(g: &mut Graph<T>, x: Var, p: Padding2D) -> Result<Var> {
    let op = "zero_pad2d";
    let xv = g.try_value(x)?;
    let x4 = xv.array().view().into_dimensionality::<Ix4>().map_err(|_| AutogradError::InvalidArgument {
        op,
        message: format!("expected an input [batch, height, width, channels], got shape {:?}", xv.shape()),
    })?;
    let (n, h, w, c) = x4.dim();
    let (oh, ow) = (h + p.top + p.bottom, w + p.left + p.right);
    // The window of the output where the input goes.
    let interior = move |axis: ndarray::AxisDescription| match axis.axis.index() {
        1 => Slice::from(p.top..p.top + h),
        2 => Slice::from(p.left..p.left + w),
        _ => Slice::from(..),
    };
    let mut out = ndarray::Array4::<T>::zeros((n, oh, ow, c));
    out.slice_each_axis_mut(interior).assign(&x4);
    let value = Tensor::from(out.into_dyn());
    Ok(g.try_custom(op, &[x], value, move |_, grad, sink| {
        if sink.wants(0) {
            let inner = grad.array().slice_each_axis(interior).to_owned();
            sink.add(0, Tensor::from(inner))?;
        }
        Ok(())
    })?)
}

#[cfg(test)]
mod tests {
    use nn_autograd::gradcheck;
    use nn_tensor::random::seeded_rng;

    use super::*;
    use crate::error::LayerError;
    use crate::spec::LayerSpec;

    #[test]
    fn keras_forms_of_padding() {
        let read = |json: &str| serde_json::from_str::<ZeroPadding2DConfig>(json).unwrap().padding;
        assert_eq!(read("{}"), Padding2D::uniform(1));
        assert_eq!(read(r#"{"padding": 2}"#), Padding2D::uniform(2));
        assert_eq!(read(r#"{"padding": [1, 3]}"#), Padding2D { top: 1, bottom: 1, left: 3, right: 3 });
        assert_eq!(read(r#"{"padding": [[0, 1], [2, 3]]}"#), Padding2D { top: 0, bottom: 1, left: 2, right: 3 });
        let text = serde_json::to_string(&ZeroPadding2DConfig { padding: Padding2D::symmetric(1, 2) }).unwrap();
        assert_eq!(text, r#"{"padding":[[1,1],[2,2]]}"#);
        assert!(serde_json::from_str::<ZeroPadding2DConfig>(r#"{"padding": [1, 2, 3]}"#).is_err());
        assert!(serde_json::from_str::<ZeroPadding2DConfig>(r#"{"padding": 1, "data_format": "x"}"#).is_err());
    }

    #[test]
    fn hand_computed_values_and_gradcheck() {
        let p = Padding2D { top: 1, bottom: 0, left: 0, right: 2 };
        let layer = LayerSpec::ZeroPadding2D(ZeroPadding2DConfig { padding: p }).build::<f64>(0, &[2, 1, 1]).unwrap();
        assert_eq!(layer.output_shape(), [3, 3, 1]);
        let mut g = Graph::<f64>::no_grad();
        let x = g.input(Tensor::from_vec(&[1, 2, 1, 1], vec![5., 7.]));
        let mut rng = seeded_rng(0);
        let mut ctx = ForwardCtx::new(crate::module::Mode::Eval, &mut rng);
        let y = layer.forward(&mut g, x, &[], &mut ctx).unwrap();
        assert_eq!(g.value(y).shape(), [1, 3, 3, 1]);
        assert_eq!(g.value(y).to_vec(), [0., 0., 0., 5., 0., 0., 7., 0., 0.]);

        let x = Tensor::<f64>::random_uniform(&[2, 3, 2, 2], -1.0, 1.0, &mut seeded_rng(4)).unwrap();
        let report = gradcheck(&[x], |g, v| {
            zero_pad2d(g, v[0], Padding2D { top: 2, bottom: 1, left: 1, right: 0 }).map_err(|e| match e {
                LayerError::Autograd(e) => e,
                e => AutogradError::InvalidArgument { op: "zero_pad2d", message: e.to_string() },
            })
        })
        .unwrap();
        assert!(report.passes(1e-6), "{report}");
    }

    #[test]
    fn refuses_non_images() {
        let e = LayerSpec::ZeroPadding2D(ZeroPadding2DConfig::default()).build::<f32>(1, &[4, 4]).unwrap_err();
        assert!(matches!(e, LayerError::BuildShape { .. }), "{e}");
    }
}
