//! [`ModelSpec`]: a whole model as data (JSON), a chain (format version 1) or a graph
//! of named layers (format version 2).
//!
//! Version 2 is a superset of version 1: every layer may carry a `name` and an
//! `inputs` list; a layer without `inputs` takes the layer before it (the model's
//! input for the first layer), so every version-1 file reads as a version-2 chain.
//!
//! ```json
//! {"format_version": 2,
//!  "inputs": [{"name": "image", "shape": [28, 28, 1]}],
//!  "layers": [
//!    {"type": "Conv2D", "name": "stem", "filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"},
//!    {"type": "Conv2D", "name": "c1", "filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"},
//!    {"type": "Conv2D", "name": "c2", "filters": 16, "kernel_size": 3, "padding": "same"},
//!    {"type": "Add", "name": "sum", "inputs": ["stem", "c2"]},
//!    {"type": "ReLU"},
//!    {"type": "GlobalAveragePooling2D"},
//!    {"type": "Dense", "units": 10, "activation": "softmax"}],
//!  "outputs": ["dense_6"]}
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::activation::Activation;
use crate::error::{LayerError, Result};
use crate::spec::LayerSpec;

/// The newest version of the model description format this crate reads and writes
/// (in [`ModelSpec::format_version`] and in `model.json`). Files with a larger version
/// are refused with a clear message.
pub const FORMAT_VERSION: u32 = 2;

/// Longest layer or input name accepted (characters).
pub const MAX_NAME_LEN: usize = 128;

/// One named input of a model (format version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The name layers refer to in their `inputs`.
    pub name: String,
    /// Shape of one sample, without the batch axis (e.g. `[28, 28, 1]` NHWC).
    pub shape: Vec<usize>,
}

/// One layer of a [`ModelSpec`]: its settings ([`LayerSpec`]) with an optional name
/// and the names of the tensors it takes.
///
/// JSON: the layer's object (`{"type": "Dense", "units": 10}`) with two optional keys
/// beside its settings: `"name"` (default `{type in snake case}_{index}`, e.g.
/// `dense_3`, `conv2d_0`) and `"inputs"` (a list of earlier layer names or model input
/// names; default: the layer before, or the model's input for the first layer).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// The layer's name, when given.
    pub name: Option<String>,
    /// The names of its inputs, when given.
    pub inputs: Option<Vec<String>>,
    /// Its settings.
    pub layer: LayerSpec,
}

impl NodeSpec {
    /// `layer` named `name`.
    pub fn named(name: impl Into<String>, layer: LayerSpec) -> Self {
        NodeSpec { name: Some(name.into()), inputs: None, layer }
    }

    /// The same node taking `inputs`.
    pub fn with_inputs<S: Into<String>>(mut self, inputs: impl IntoIterator<Item = S>) -> Self {
        self.inputs = Some(inputs.into_iter().map(Into::into).collect());
        self
    }

    /// Whether it uses a version-2 key (`name` or `inputs`).
    fn is_v2(&self) -> bool {
        self.name.is_some() || self.inputs.is_some()
    }
}

impl From<LayerSpec> for NodeSpec {
    fn from(layer: LayerSpec) -> Self {
        NodeSpec { name: None, inputs: None, layer }
    }
}

impl Serialize for NodeSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut value = serde_json::to_value(self.layer).map_err(S::Error::custom)?;
        let map = value.as_object_mut().ok_or_else(|| S::Error::custom("a layer serialises to an object"))?;
        if let Some(name) = &self.name {
            map.insert("name".into(), name.clone().into());
        }
        if let Some(inputs) = &self.inputs {
            map.insert("inputs".into(), inputs.clone().into());
        }
        value.serialize(s)
    }
}

impl<'de> Deserialize<'de> for NodeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let name = match map.remove("name") {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(_) => return Err(D::Error::custom("a layer's \"name\" must be a string")),
        };
        let inputs = match map.remove("inputs") {
            None => None,
            Some(v) => Some(
                serde_json::from_value::<Vec<String>>(v)
                    .map_err(|_| D::Error::custom("a layer's \"inputs\" must be a list of names (strings)"))?,
            ),
        };
        let layer = serde_json::from_value::<LayerSpec>(serde_json::Value::Object(map)).map_err(|e| {
            let where_ = name.as_deref().map(|n| format!("layer {:?}: ", crate::error::clip(n))).unwrap_or_default();
            D::Error::custom(format!("{where_}{e}"))
        })?;
        Ok(NodeSpec { name, inputs, layer })
    }
}

/// A whole model as data.
///
/// Version 1 (a chain): `{"format_version": 1, "input_shape": [28, 28, 1], "layers": [...]}`,
/// parameters named `layers.{i}.{kernel|bias|…}`.
///
/// Version 2 (a graph): layers may have a `name` and `inputs` ([`NodeSpec`]), the model
/// may declare several named `inputs` (each with its shape; `input_shape` alone means
/// one input named `input`) and several `outputs` (layer names; default the last
/// layer); parameters are named `{layer name}.{kernel|bias|…}`.
///
/// `format_version` may be left out: a file that uses no version-2 key is read as
/// version 1 (so its parameter names are the version-1 ones), any other as version 2.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ModelSpecRepr")]
pub struct ModelSpec {
    /// The description format's version: 1 or 2 ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Shape of one sample of the first input, without the batch axis:
    /// `[height, width, channels]` for images (NHWC), `[features]` for vectors,
    /// `[sequence]` for Embedding indices. With several [`ModelSpec::inputs`], the
    /// first one's shape.
    pub input_shape: Vec<usize>,
    /// The named inputs (version 2); empty for a model with one input named `input`
    /// of shape [`ModelSpec::input_shape`].
    pub inputs: Vec<InputSpec>,
    /// The layers, each after its inputs in a chain (a graph may list them in any
    /// order without cycles; they run in a topological order).
    pub layers: Vec<NodeSpec>,
    /// The names of the layers whose results the model returns (version 2); empty
    /// for the last layer.
    pub outputs: Vec<String>,
}

/// Writes `format_version`, then `input_shape` (or `inputs` when declared), `layers`,
/// and `outputs` when declared.
impl Serialize for ModelSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("ModelSpec", 4)?;
        out.serialize_field("format_version", &self.format_version)?;
        if self.inputs.is_empty() {
            out.serialize_field("input_shape", &self.input_shape)?;
        } else {
            out.serialize_field("inputs", &self.inputs)?;
        }
        out.serialize_field("layers", &self.layers)?;
        if !self.outputs.is_empty() {
            out.serialize_field("outputs", &self.outputs)?;
        }
        out.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSpecRepr {
    format_version: Option<u32>,
    #[serde(default)]
    input_shape: Option<Vec<usize>>,
    #[serde(default)]
    inputs: Option<Vec<InputSpec>>,
    layers: Vec<NodeSpec>,
    #[serde(default)]
    outputs: Option<Vec<String>>,
}

impl TryFrom<ModelSpecRepr> for ModelSpec {
    type Error = String;

    fn try_from(r: ModelSpecRepr) -> std::result::Result<Self, String> {
        let uses_v2 = r.inputs.is_some() || r.outputs.is_some() || r.layers.iter().any(NodeSpec::is_v2);
        let format_version = r.format_version.unwrap_or(if uses_v2 { 2 } else { 1 });
        if format_version == 1 && uses_v2 {
            return Err(
                "format_version 1 is a plain chain: \"name\", \"inputs\" and \"outputs\" need format_version 2".into(),
            );
        }
        let inputs = r.inputs.unwrap_or_default();
        let input_shape = match (r.input_shape, inputs.first()) {
            (Some(_), Some(_)) => return Err("give either \"input_shape\" or \"inputs\", not both".into()),
            (Some(shape), None) => shape,
            (None, Some(first)) => first.shape.clone(),
            (None, None) => return Err("missing field `input_shape` (or `inputs` with format_version 2)".into()),
        };
        Ok(ModelSpec { format_version, input_shape, inputs, layers: r.layers, outputs: r.outputs.unwrap_or_default() })
    }
}

impl ModelSpec {
    /// A chain of `layers` over samples of `input_shape`, at format version 1 (so its
    /// parameters are named `layers.{i}.*`).
    pub fn new(input_shape: &[usize], layers: Vec<LayerSpec>) -> Self {
        ModelSpec {
            format_version: 1,
            input_shape: input_shape.to_vec(),
            inputs: Vec::new(),
            layers: layers.into_iter().map(NodeSpec::from).collect(),
            outputs: Vec::new(),
        }
    }

    /// A graph (format version 2) with named `inputs`, `layers` and `outputs` (layer
    /// names; empty for the last layer).
    pub fn graph(inputs: Vec<InputSpec>, layers: Vec<NodeSpec>, outputs: Vec<String>) -> Self {
        let input_shape = inputs.first().map(|i| i.shape.clone()).unwrap_or_default();
        ModelSpec { format_version: 2, input_shape, inputs, layers, outputs }
    }

    /// The model's inputs as (name, per-sample shape): the declared ones, or one named
    /// `input` of shape [`ModelSpec::input_shape`].
    pub fn input_specs(&self) -> Vec<InputSpec> {
        if self.inputs.is_empty() {
            vec![InputSpec { name: "input".into(), shape: self.input_shape.clone() }]
        } else {
            self.inputs.clone()
        }
    }

    /// The seed CNN: Conv2D(32, 3×3, relu) → MaxPool2D(2×2) → Flatten →
    /// Dense(128, relu) → Dense(`classes`, softmax). For MNIST use `input_shape`
    /// `[28, 28, 1]` and 10 classes (693,962 parameters).
    pub fn seed_cnn(input_shape: &[usize], classes: usize) -> ModelSpec {
        ModelSpec::new(
            input_shape,
            vec![
                LayerSpec::conv2d(32, 3, Activation::Relu),
                LayerSpec::max_pool(2),
                LayerSpec::Flatten,
                LayerSpec::dense(128, Activation::Relu),
                LayerSpec::dense(classes, Activation::Softmax),
            ],
        )
    }

    /// A recurrent classifier: LSTM(`units`) → Dense(`classes`, softmax), reading each
    /// sample as a sequence. Samples `[time, features]` go in as they are; images
    /// `[height, width, channels]` are read row by row (a Reshape to
    /// `[height, width·channels]` first: sequential MNIST is 28 steps of 28 features);
    /// vectors `[n]` as `n` steps of one feature. LSTM(128) on MNIST has 80,384 + 1,290
    /// parameters.
    ///
    /// # Errors
    /// [`LayerError::Spec`] for an input shape of more than 3 axes or with a zero axis.
    pub fn lstm_classifier(input_shape: &[usize], units: usize, classes: usize) -> Result<ModelSpec> {
        let mut layers = Vec::new();
        match input_shape {
            [_, _] => {}
            [h, w, c] => layers.push(LayerSpec::reshape(&[*h, w * c])?),
            [n] => layers.push(LayerSpec::reshape(&[*n, 1])?),
            other => {
                return Err(LayerError::Spec {
                    message: format!(
                        "an LSTM classifier reads [time, features], [h, w, c] or [n] samples, got {other:?}"
                    ),
                })
            }
        }
        layers.push(LayerSpec::lstm(units));
        layers.push(LayerSpec::dense(classes, Activation::Softmax));
        Ok(ModelSpec::new(input_shape, layers))
    }

    /// A multilayer perceptron: Flatten → Dense(`hidden`, relu) → Dropout(`dropout`)
    /// when `dropout > 0` → Dense(`classes`, softmax).
    pub fn mlp(input_shape: &[usize], hidden: usize, classes: usize, dropout: f64) -> ModelSpec {
        let mut layers = vec![LayerSpec::Flatten, LayerSpec::dense(hidden, Activation::Relu)];
        if dropout > 0.0 {
            layers.push(LayerSpec::dropout(dropout));
        }
        layers.push(LayerSpec::dense(classes, Activation::Softmax));
        ModelSpec::new(input_shape, layers)
    }

    /// A small residual network (He et al., "Deep Residual Learning for Image
    /// Recognition", 2016, with the basic two-convolution block) for images such as
    /// MNIST's `[28, 28, 1]`, as a version-2 graph:
    ///
    /// - stem: Conv2D(32, 3×3, same, no bias) → BatchNormalization → ReLU;
    /// - three stages of one basic block each, 32, 64 and 128 filters, each halving
    ///   the height and width: Conv2D(3×3, same, stride 2, no bias) →
    ///   BatchNormalization → ReLU → Conv2D(3×3, same, no bias) → BatchNormalization,
    ///   added to the shortcut, a Conv2D(1×1, stride 2, no bias) →
    ///   BatchNormalization projection of the block's input; then ReLU;
    /// - GlobalAveragePooling2D → Dense(`classes`, softmax).
    ///
    /// On `[28, 28, 1]` with 10 classes: 309,162 trainable and 1,408 non-trainable
    /// parameters (the BatchNormalization moving statistics); the feature maps are
    /// 28×28 (stem), 14×14, 7×7 and 4×4, about 21 MFLOP per image forward.
    ///
    /// # Errors
    /// [`LayerError::Spec`] for an input shape that is not `[height, width, channels]`.
    pub fn resnet(input_shape: &[usize], classes: usize) -> Result<ModelSpec> {
        use crate::spec::{BatchNormConfig, Conv2DConfig, PaddingMode};
        if input_shape.len() != 3 {
            return Err(LayerError::Spec {
                message: format!(
                    "the resnet preset needs image data [height, width, channels], but samples have shape {input_shape:?}"
                ),
            });
        }
        let conv = |filters: usize, kernel: usize, stride: usize| {
            LayerSpec::Conv2D(
                Conv2DConfig::new(filters, kernel)
                    .with_strides(stride)
                    .with_padding(PaddingMode::Same)
                    .with_bias(false),
            )
        };
        let bn = || LayerSpec::BatchNormalization(BatchNormConfig::default());
        let mut layers = vec![
            NodeSpec::named("stem_conv", conv(32, 3, 1)),
            NodeSpec::named("stem_bn", bn()),
            NodeSpec::named("stem_relu", LayerSpec::ReLU),
        ];
        let mut last = "stem_relu".to_string();
        for (stage, (filters, stride)) in [(32, 2), (64, 2), (128, 2)].into_iter().enumerate() {
            let p = format!("stage{}", stage + 1);
            layers.push(NodeSpec::named(format!("{p}_conv1"), conv(filters, 3, stride)).with_inputs([last.clone()]));
            layers.push(NodeSpec::named(format!("{p}_bn1"), bn()));
            layers.push(NodeSpec::named(format!("{p}_relu1"), LayerSpec::ReLU));
            layers.push(NodeSpec::named(format!("{p}_conv2"), conv(filters, 3, 1)));
            layers.push(NodeSpec::named(format!("{p}_bn2"), bn()));
            let shortcut = if stride == 1 {
                last.clone()
            } else {
                layers.push(NodeSpec::named(format!("{p}_proj"), conv(filters, 1, stride)).with_inputs([last.clone()]));
                layers.push(NodeSpec::named(format!("{p}_proj_bn"), bn()));
                format!("{p}_proj_bn")
            };
            layers
                .push(NodeSpec::named(format!("{p}_add"), LayerSpec::Add).with_inputs([format!("{p}_bn2"), shortcut]));
            layers.push(NodeSpec::named(format!("{p}_out"), LayerSpec::ReLU));
            last = format!("{p}_out");
        }
        layers.push(NodeSpec::named("pool", LayerSpec::GlobalAveragePooling2D));
        layers.push(NodeSpec::named("head", LayerSpec::dense(classes, Activation::Softmax)));
        Ok(ModelSpec::graph(vec![InputSpec { name: "image".into(), shape: input_shape.to_vec() }], layers, Vec::new()))
    }

    /// Parses a JSON description (version 1 or 2).
    ///
    /// # Errors
    /// [`LayerError::Spec`] for malformed JSON, an unknown key or layer type, a
    /// missing required field (serde's message, with line and column), or a
    /// `format_version` newer than [`FORMAT_VERSION`]. The graph itself (names,
    /// references, shapes) is checked when the model is built.
    pub fn from_json(text: &str) -> Result<ModelSpec> {
        let spec: ModelSpec = serde_json::from_str(text)
            .map_err(|e| LayerError::Spec { message: readable_serde_error(&e.to_string()) })?;
        spec.check_version()?;
        Ok(spec)
    }

    /// Pretty-printed JSON (two-space indent), which [`ModelSpec::from_json`] reads
    /// back to an equal spec.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a ModelSpec always serialises (plain data, finite keys)")
    }

    /// Refuses descriptions written by a newer version of this crate.
    pub(crate) fn check_version(&self) -> Result<()> {
        if self.format_version == 0 || self.format_version > FORMAT_VERSION {
            return Err(LayerError::Spec {
                message: format!(
                    "format_version {} is not supported (this version of nn-layers reads 1 to {FORMAT_VERSION})",
                    self.format_version
                ),
            });
        }
        Ok(())
    }
}

/// serde's message in words a user of the JSON format knows (`expected usize` →
/// `expected a whole number ≥ 0`), cut to a sensible length (it may quote a long
/// user string).
fn readable_serde_error(message: &str) -> String {
    let message = message
        .replace("expected usize", "expected a whole number ≥ 0 (in range)")
        .replace("expected u32", "expected a whole number ≥ 0 (in range)")
        .replace("expected i64", "expected a whole number (in range)")
        .replace("expected f64", "expected a number");
    // Quoted user text (between backquotes: a type, a key, a value) is cut on its own,
    // so that the rest of the message (what was expected) stays readable.
    let message: String = message
        .split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { crate::error::clip(part) } else { part.to_string() })
        .collect::<Vec<_>>()
        .join("`");
    crate::error::clip_to(&message, 1200)
}

/// `"Conv2D"` → `"conv2d"`, `"MaxPool2D"` → `"max_pool2d"`, `"ReLU"` → `"re_lu"`,
/// `"LSTM"` → `"lstm"` (Keras's rule for default layer names).
pub(crate) fn snake_case(kind: &str) -> String {
    let chars: Vec<char> = kind.chars().collect();
    let mut out = String::with_capacity(kind.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase() || (prev.is_ascii_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_defaults() {
        let spec = ModelSpec::seed_cnn(&[28, 28, 1], 10);
        let text = spec.to_json();
        assert_eq!(ModelSpec::from_json(&text).unwrap(), spec);
        let short = r#"{"input_shape": [28, 28, 1], "layers": [
            {"type": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"},
            {"type": "MaxPooling2D"},
            {"type": "Flatten"},
            {"type": "Dense", "units": 128, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"}]}"#;
        let read = ModelSpec::from_json(short).unwrap();
        assert_eq!(read.format_version, 1, "no version-2 key: read as version 1");
        assert_eq!(read, spec);
    }

    #[test]
    fn version_2_keys_round_trip() {
        let text = r#"{"inputs": [{"name": "a", "shape": [4]}, {"name": "b", "shape": [4]}],
            "layers": [
              {"type": "Dense", "units": 3, "name": "d", "inputs": ["a"]},
              {"type": "Dense", "units": 3, "inputs": ["b"]},
              {"type": "Add", "inputs": ["d", "dense_1"]}],
            "outputs": ["add_2"]}"#;
        let spec = ModelSpec::from_json(text).unwrap();
        assert_eq!(spec.format_version, 2);
        assert_eq!(spec.input_shape, [4]);
        assert_eq!(spec.layers[0].name.as_deref(), Some("d"));
        assert_eq!(spec.layers[2].inputs.as_deref(), Some(&["d".to_string(), "dense_1".to_string()][..]));
        assert_eq!(ModelSpec::from_json(&spec.to_json()).unwrap(), spec);
    }

    #[test]
    fn default_names_are_keras_snake_case() {
        for (kind, want) in [
            ("Conv2D", "conv2d"),
            ("MaxPool2D", "max_pool2d"),
            ("ReLU", "re_lu"),
            ("LSTM", "lstm"),
            ("GlobalAveragePooling2D", "global_average_pooling2d"),
            ("BatchNormalization", "batch_normalization"),
            ("Dense", "dense"),
        ] {
            assert_eq!(snake_case(kind), want);
        }
    }

    #[test]
    fn unknown_keys_and_types_are_errors() {
        let bad_key = r#"{"input_shape": [4], "layers": [{"type": "Dense", "units": 3, "unit": 4}]}"#;
        let e = ModelSpec::from_json(bad_key).unwrap_err().to_string();
        assert!(e.contains("unknown field `unit`"), "{e}");
        let bad_type = r#"{"input_shape": [4], "layers": [{"type": "Conv3D", "filters": 3}]}"#;
        let e = ModelSpec::from_json(bad_type).unwrap_err().to_string();
        assert!(e.contains("unknown variant `Conv3D`"), "{e}");
        let bad_unit = r#"{"input_shape": [4], "layers": [{"type": "Flatten", "data_format": "channels_first"}]}"#;
        let e = ModelSpec::from_json(bad_unit).unwrap_err().to_string();
        assert!(e.contains("unknown field `data_format`"), "{e}");
        let bad_top = r#"{"input_shape": [4], "layers": [], "optimizer": "adam"}"#;
        assert!(ModelSpec::from_json(bad_top).unwrap_err().to_string().contains("unknown field `optimizer`"));
        let bad_act = r#"{"input_shape": [4], "layers": [{"type": "Dense", "units": 3, "activation": "swish"}]}"#;
        assert!(ModelSpec::from_json(bad_act).unwrap_err().to_string().contains("unknown variant `swish`"));
        let newer = r#"{"format_version": 99, "input_shape": [4], "layers": []}"#;
        assert!(ModelSpec::from_json(newer).unwrap_err().to_string().contains("format_version 99"));
        let v1_named =
            r#"{"format_version": 1, "input_shape": [4], "layers": [{"type": "Dense", "units": 3, "name": "x"}]}"#;
        assert!(ModelSpec::from_json(v1_named).unwrap_err().to_string().contains("need format_version 2"));
        let both = r#"{"input_shape": [4], "inputs": [{"name": "a", "shape": [4]}], "layers": []}"#;
        assert!(ModelSpec::from_json(both).unwrap_err().to_string().contains("not both"));
        let bad_inputs = r#"{"input_shape": [4], "layers": [{"type": "Dense", "units": 3, "inputs": "x"}]}"#;
        assert!(ModelSpec::from_json(bad_inputs).unwrap_err().to_string().contains("list of names"));
    }
}
