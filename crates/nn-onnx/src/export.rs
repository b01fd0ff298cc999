//! The exporter: an nn [`Model`] (with the metadata `nn-cli fit` saved beside it) as
//! one ONNX inference graph.
//!
//! The graph keeps nn's NHWC layout: every value between nodes has the shape nn's
//! own tensor has there, so Flatten, Reshape, Concatenate and the last-axis
//! operations (Dense, softmax, BatchNormalization, LayerNormalization) map without
//! any change of axes. ONNX's `Conv` and pooling operators read NCHW, so each
//! Conv2D, MaxPool2D and AvgPool2D sits between two `Transpose` nodes (NHWC → NCHW,
//! perm `[0, 3, 1, 2]`, and back, perm `[0, 2, 3, 1]`), and its kernel is written as
//! ONNX's `[filters, channels, kh, kw]` from nn's `[kh, kw, channels, filters]`.
//! The recurrent layers read `[batch, time, features]` and ONNX's RNN/LSTM/GRU
//! `[time, batch, features]`, so they are wrapped the same way.

use std::collections::HashSet;

use nn_data::Scaler;
use nn_layers::{Activation, LEAKY_RELU_SLOPE};
use nn_layers::{LayerSpec, Model, PaddingMode, ParamKind, Parameter, Source};
use nn_train::ModelMetadata;

use crate::proto::{
    dimension, AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto, DATA_TYPE_FLOAT,
};
use crate::OnnxError;

/// The opsets [`export`] writes: 13 (the first with `Softmax` over one axis and
/// `Squeeze`'s axes as an input) to 17 (the first with `LayerNormalization`).
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=17;

/// The opset `nn-cli export` writes unless told otherwise.
pub const DEFAULT_OPSET: i64 = 17;

/// The IR version written: 8, the one ONNX 1.12 pairs with opset 17 (and accepted
/// with every opset from 13 on).
pub const IR_VERSION: i64 = 8;

/// The name of the symbolic batch axis of every graph input and output.
pub const BATCH_DIM: &str = "batch";

/// The model-level metadata key holding the class names, as a JSON array of strings
/// (class `k` is element `k`).
pub const CLASS_NAMES_KEY: &str = "class_names";

/// The model-level metadata key holding nn's own metadata as JSON (a
/// [`ModelMetadata`] with the feature columns, target, task, class names and CSV
/// delimiter; without the scalers and target scaling, which are nodes of the graph,
/// without the run configuration, and with the data's path cut to its file name), so
/// that [`crate::import()`] restores the column names a CSV-trained model reads.
pub const NN_METADATA_KEY: &str = "nn_metadata";

/// `data` as `nn-cli fit --data` took it, with a path cut to its last component
/// (`csv:/home/me/iris.csv` → `csv:iris.csv`), so exported files do not carry local
/// paths.
pub fn portable_data_name(data: &str) -> String {
    let file = |p: &str| {
        std::path::Path::new(p).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| p.to_string())
    };
    match data.split_once(':') {
        Some((kind, path)) if !path.is_empty() => format!("{kind}:{}", file(path)),
        Some(_) => data.to_string(),
        None if data.contains(['/', '\\']) => file(data),
        None => data.to_string(),
    }
}

/// The encoded ONNX model (`.onnx` file content) of `model` for opset `opset`; see
/// [`export_proto`].
///
/// # Errors
/// As [`export_proto`].
pub fn export(model: &Model, metadata: &ModelMetadata, opset: i64) -> Result<Vec<u8>, OnnxError> {
    Ok(export_proto(model, metadata, opset)?.to_bytes())
}

/// `model` as an ONNX [`ModelProto`] of opset `opset` (the default domain only):
///
/// - one graph input per model input, `float32 [batch, ...input_shape]` (NHWC for
///   images) with the symbolic batch axis [`BATCH_DIM`], named as the model's input
///   (`input` for chains);
/// - the saved input scaling (`metadata.scalers`, in order) as nodes right after the
///   first input, so the file takes the raw features `nn-cli predict` reads: a
///   constant scaler as `Mul`, `Add`; standardisation as `Sub`, `Div`; min-max as
///   `Sub`, `Div`, `Mul`, `Add`; mean imputation as `Where(IsNaN(x), means, x)`;
///   each statistic broadcast over the trailing axes it was fitted on;
/// - every layer in execution order (see the crate docs for the table), the Dropout
///   layers as `Identity`;
/// - the graph outputs `output` (one output) or `output_{k}`, `float32
///   [batch, ...output_shape]`: probabilities for a softmax classifier, and for a
///   regression model with a saved target scaling the values mapped back to the
///   target's units (`Mul` by the standard deviations, `Add` the means), as
///   `nn-cli predict` prints them;
/// - metadata: [`CLASS_NAMES_KEY`] (JSON array), `task`, `target` and `data` (cut
///   to its file name, [`portable_data_name`]) when the metadata has them, and
///   [`NN_METADATA_KEY`]: the metadata as JSON (feature columns, target, task, class
///   names, delimiter, seed), which [`crate::import()`] restores.
///
/// # Errors
/// [`OnnxError::Opset`] for an opset outside [`OPSETS`]; [`OnnxError::Unsupported`]
/// naming the layer (its name, index and kind) that has no ONNX form;
/// [`OnnxError::Metadata`] for scalers on a model with several inputs, or scalers
/// or a target scaling that do not fit the model's shapes.
pub fn export_proto(model: &Model, metadata: &ModelMetadata, opset: i64) -> Result<ModelProto, OnnxError> {
    if !OPSETS.contains(&opset) {
        return Err(OnnxError::Opset { opset });
    }
    let mut b = Builder::new(opset);
    let mut inputs = Vec::new();
    let mut input_values = Vec::new();
    for (k, input) in model.inputs().iter().enumerate() {
        inputs.push(value_info(&input.name, &input.shape));
        b.taken.insert(input.name.clone());
        let mut v = input.name.clone();
        if k == 0 {
            v = scale_input(&mut b, &v, &input.shape, &metadata.scalers)?;
        }
        input_values.push(v);
    }
    if model.inputs().len() > 1 && !metadata.scalers.is_empty() {
        return Err(OnnxError::Metadata(format!(
            "the metadata's {} input scalers cannot be placed: the model has {} inputs",
            metadata.scalers.len(),
            model.inputs().len()
        )));
    }
    let mut values: Vec<Option<String>> = vec![None; model.layers().len()];
    for &i in model.execution_order() {
        let srcs: Vec<String> = model
            .layer_inputs(i)
            .iter()
            .map(|s| match *s {
                Source::Input(k) => input_values[k].clone(),
                Source::Layer(j) => values[j].clone().expect("execution order runs producers first"),
            })
            .collect();
        let layer = LayerCtx {
            name: model.layer_name(i).to_string(),
            index: i,
            spec: model.spec().layers[i].layer,
            input_shape: model.layers()[i].input_shape().to_vec(),
            output_shape: model.layers()[i].output_shape().to_vec(),
            params: model.layer_parameters(i),
        };
        b.scope = layer.name.clone();
        values[i] = Some(layer.export(&mut b, &srcs)?);
    }
    b.scope = "output".into();
    let mut outputs = Vec::new();
    for (k, source) in model.outputs().iter().enumerate() {
        let mut v = match *source {
            Source::Input(j) => input_values[j].clone(),
            Source::Layer(i) => values[i].clone().expect("every layer ran"),
        };
        let shape = &model.output_shapes()[k];
        if k == 0 {
            if let Some(ts) = &metadata.target_scaler {
                let n: usize = shape.iter().product();
                if ts.mean.len() != n || ts.std.len() != n {
                    return Err(OnnxError::Metadata(format!(
                        "the target scaling has statistics for {} outputs, the model has {n}",
                        ts.mean.len()
                    )));
                }
                let std = b.init_f64("target_std", shape, &ts.std);
                let mean = b.init_f64("target_mean", shape, &ts.mean);
                let y = b.op("Mul", &[&v, &std], vec![]);
                v = b.op("Add", &[&y, &mean], vec![]);
            }
        }
        let name = if model.outputs().len() == 1 { "output".to_string() } else { format!("output_{k}") };
        b.push("Identity", &[&v], std::slice::from_ref(&name), vec![]);
        outputs.push(value_info(&name, shape));
    }
    let mut props = Vec::new();
    let mut prop = |key: &str, value: String| props.push(StringStringEntryProto { key: key.into(), value });
    if let Some(names) = &metadata.class_names {
        prop(CLASS_NAMES_KEY, serde_json::to_string(names).expect("strings serialise"));
    }
    if let Some(task) = metadata.task {
        if let Ok(serde_json::Value::String(s)) = serde_json::to_value(task) {
            prop("task", s);
        }
    }
    if let Some(target) = &metadata.target {
        prop("target", target.clone());
    }
    let data = portable_data_name(&metadata.data);
    if !data.is_empty() {
        prop("data", data.clone());
    }
    let portable = ModelMetadata { data, scalers: Vec::new(), target_scaler: None, run: None, ..metadata.clone() };
    prop(NN_METADATA_KEY, serde_json::to_string(&portable).map_err(|e| OnnxError::Metadata(e.to_string()))?);
    Ok(ModelProto {
        ir_version: IR_VERSION,
        producer_name: "nn".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: "exported by nn-cli export: NHWC tensors, input scaling included".into(),
        graph: Some(GraphProto {
            node: b.nodes,
            name: "nn".into(),
            initializer: b.inits,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        metadata_props: props,
        ..Default::default()
    })
}

/// A graph input or output: `float32 [batch, ...shape]`.
fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let mut dim =
        vec![Dimension { value: Some(dimension::Value::DimParam(BATCH_DIM.into())), denotation: String::new() }];
    dim.extend(
        shape
            .iter()
            .map(|&d| Dimension { value: Some(dimension::Value::DimValue(d as i64)), denotation: String::new() }),
    );
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor { elem_type: DATA_TYPE_FLOAT, shape: Some(TensorShapeProto { dim }) }),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

/// The trailing axes of `sample_shape` whose product is `stats` (where a scaler's
/// statistics broadcast, as `Scaler::check` finds them); `None` when no run of
/// trailing axes has that size.
fn trailing_axes(sample_shape: &[usize], stats: usize) -> Option<Vec<usize>> {
    let mut product = 1usize;
    for (k, &d) in sample_shape.iter().enumerate().rev() {
        product = product.saturating_mul(d);
        if product == stats {
            return Some(sample_shape[k..].to_vec());
        }
    }
    None
}

/// The nodes of `scalers` applied in order to the raw input `x` of per-sample shape
/// `shape`; returns the scaled value's name.
fn scale_input(b: &mut Builder, x: &str, shape: &[usize], scalers: &[Scaler]) -> Result<String, OnnxError> {
    b.scope = "input_scaling".into();
    let mut v = x.to_string();
    for (i, s) in scalers.iter().enumerate() {
        let n = s.num_stats();
        let dims = if n == 0 {
            Vec::new()
        } else {
            trailing_axes(shape, n).ok_or_else(|| {
                OnnxError::Metadata(format!(
                    "scaler {i}: {n} statistics do not match the trailing axes of samples of shape {shape:?}"
                ))
            })?
        };
        v = match s {
            Scaler::Constant { scale, offset } => {
                let a = b.init_f64("scale", &[], &[*scale]);
                let c = b.init_f64("offset", &[], &[*offset]);
                let y = b.op("Mul", &[&v, &a], vec![]);
                b.op("Add", &[&y, &c], vec![])
            }
            Scaler::Standard { mean, std } => {
                let m = b.init_f64("mean", &dims, mean);
                let sd = b.init_f64("std", &dims, std);
                let y = b.op("Sub", &[&v, &m], vec![]);
                b.op("Div", &[&y, &sd], vec![])
            }
            Scaler::MinMax { min, max, low, high } => {
                let range: Vec<f64> =
                    min.iter().zip(max).map(|(a, b)| if b - a == 0.0 { 1.0 } else { b - a }).collect();
                let lo = b.init_f64("min", &dims, min);
                let r = b.init_f64("range", &dims, &range);
                let span = b.init_f64("span", &[], &[high - low]);
                let low = b.init_f64("low", &[], &[*low]);
                let y = b.op("Sub", &[&v, &lo], vec![]);
                let y = b.op("Div", &[&y, &r], vec![]);
                let y = b.op("Mul", &[&y, &span], vec![]);
                b.op("Add", &[&y, &low], vec![])
            }
            Scaler::Impute { values } => {
                let fill = b.init_f64("impute", &dims, values);
                let missing = b.op("IsNaN", &[&v], vec![]);
                b.op("Where", &[&missing, &fill, &v], vec![])
            }
        };
    }
    Ok(v)
}

/// The nodes and constants of the graph being written, with unique names.
struct Builder {
    opset: i64,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    /// Every value, constant and node name used so far.
    taken: HashSet<String>,
    /// The prefix of new names: the current layer's name.
    scope: String,
}

impl Builder {
    fn new(opset: i64) -> Self {
        Builder { opset, nodes: Vec::new(), inits: Vec::new(), taken: HashSet::new(), scope: String::new() }
    }

    /// A new name `{scope}/{base}`, with a counter when taken.
    fn fresh(&mut self, base: &str) -> String {
        let stem = format!("{}/{base}", self.scope);
        let mut name = stem.clone();
        let mut k = 1;
        while self.taken.contains(&name) {
            name = format!("{stem}_{k}");
            k += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    /// A float constant of shape `dims` (row-major `values`).
    fn init(&mut self, base: &str, dims: &[usize], values: &[f32]) -> String {
        let name = self.fresh(base);
        self.inits.push(TensorProto::float(name.clone(), dims, values));
        name
    }

    /// A float constant from `f64` statistics (rounded to `f32`, as nn rounds them).
    fn init_f64(&mut self, base: &str, dims: &[usize], values: &[f64]) -> String {
        let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
        self.init(base, dims, &v)
    }

    /// A 1-d int64 constant (shapes, pads, axes).
    fn init_i64(&mut self, base: &str, values: &[i64]) -> String {
        let name = self.fresh(base);
        self.inits.push(TensorProto::int64s(name.clone(), values));
        name
    }

    /// Appends a node of `op` with named `outputs`.
    fn push(&mut self, op: &str, inputs: &[&str], outputs: &[String], attribute: Vec<AttributeProto>) {
        let name = self.fresh(op);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.to_vec(),
            name,
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
    }

    /// Appends a node of `op` with one output; returns its name.
    fn op(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let out = self.fresh(&format!("{op}_out"));
        self.push(op, inputs, std::slice::from_ref(&out), attribute);
        out
    }

    fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.op("Transpose", &[x], vec![AttributeProto::ints("perm", perm)])
    }

    /// `x` after `act` (Keras's activations; softmax over the last axis).
    fn activation(&mut self, x: &str, act: Activation) -> String {
        match act {
            Activation::Linear => x.to_string(),
            Activation::Relu => self.op("Relu", &[x], vec![]),
            Activation::LeakyRelu => {
                self.op("LeakyRelu", &[x], vec![AttributeProto::float("alpha", LEAKY_RELU_SLOPE as f32)])
            }
            Activation::Elu => self.op("Elu", &[x], vec![AttributeProto::float("alpha", 1.0)]),
            Activation::Sigmoid => self.op("Sigmoid", &[x], vec![]),
            Activation::Tanh => self.op("Tanh", &[x], vec![]),
            Activation::Softmax => self.op("Softmax", &[x], vec![AttributeProto::int("axis", -1)]),
            Activation::Softplus => self.op("Softplus", &[x], vec![]),
            Activation::Gelu => {
                // ½x(1 + erf(x/√2)) from opset-9 operators (ONNX's Gelu needs opset 20).
                let r = self.init("inv_sqrt2", &[], &[std::f32::consts::FRAC_1_SQRT_2]);
                let (one, half) = (self.init("one", &[], &[1.0]), self.init("half", &[], &[0.5]));
                let u = self.op("Mul", &[x, &r], vec![]);
                let e = self.op("Erf", &[&u], vec![]);
                let e1 = self.op("Add", &[&e, &one], vec![]);
                let xe = self.op("Mul", &[x, &e1], vec![]);
                self.op("Mul", &[&xe, &half], vec![])
            }
            Activation::GeluApproximate => {
                // ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
                let c = self.init("gelu_cubic", &[], &[0.044_715]);
                let k = self.init("sqrt_2_over_pi", &[], &[(2.0 / std::f32::consts::PI).sqrt()]);
                let (one, half) = (self.init("one", &[], &[1.0]), self.init("half", &[], &[0.5]));
                let x2 = self.op("Mul", &[x, x], vec![]);
                let x3 = self.op("Mul", &[&x2, x], vec![]);
                let cx3 = self.op("Mul", &[&x3, &c], vec![]);
                let inner = self.op("Add", &[x, &cx3], vec![]);
                let u = self.op("Mul", &[&inner, &k], vec![]);
                let t = self.op("Tanh", &[&u], vec![]);
                let t1 = self.op("Add", &[&t, &one], vec![]);
                let xt = self.op("Mul", &[x, &t1], vec![]);
                self.op("Mul", &[&xt, &half], vec![])
            }
        }
    }
}

/// One layer as the exporter sees it.
struct LayerCtx<'a> {
    name: String,
    index: usize,
    spec: LayerSpec,
    /// The first input's per-sample shape.
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    params: &'a [Parameter<f32>],
}

/// `[top, left, bottom, right]` padding of a window `k` with stride `s` over
/// `[h, w]` as nn resolves it (`nn_tensor::conv::Conv2dGeometry::new`): none for
/// `valid`; for `same`, `out = ceil(in / s)`, total `max((out − 1)·s + k − in, 0)`,
/// half of it (rounded down) before, the rest after: TensorFlow's rule, asymmetric
/// when the total is odd (e.g. stride 2 on an even size).
pub fn resolve_pads(
    padding: PaddingMode,
    (h, w): (usize, usize),
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
) -> [i64; 4] {
    let same = |input: usize, k: usize, s: usize| {
        let out = input.div_ceil(s);
        let total = ((out.max(1) - 1) * s + k).saturating_sub(input);
        (total / 2, total - total / 2)
    };
    match padding {
        PaddingMode::Valid => [0; 4],
        PaddingMode::Same => {
            let (t, b) = same(h, kh, sh);
            let (l, r) = same(w, kw, sw);
            [t as i64, l as i64, b as i64, r as i64]
        }
    }
}

impl LayerCtx<'_> {
    fn unsupported(&self, reason: impl Into<String>) -> OnnxError {
        OnnxError::Unsupported {
            layer: self.name.clone(),
            index: self.index,
            kind: self.spec.kind(),
            reason: reason.into(),
        }
    }

    /// The parameter of `kind`, if the layer has one.
    fn param(&self, kind: ParamKind) -> Option<&Parameter<f32>> {
        self.params.iter().find(|p| p.kind == kind)
    }

    /// The parameter of `kind`, which the layer must have.
    fn need(&self, kind: ParamKind) -> Result<&Parameter<f32>, OnnxError> {
        self.param(kind).ok_or_else(|| self.unsupported(format!("has no {} parameter", kind.keras_name())))
    }

    /// A constant holding parameter `p` as it is.
    fn constant(&self, b: &mut Builder, p: &Parameter<f32>) -> String {
        b.init(p.kind.keras_name(), p.shape(), &p.value.to_vec())
    }

    /// The image axes `(h, w)` of the input, for the 2-d layers.
    fn hw(&self) -> Result<(usize, usize), OnnxError> {
        match self.input_shape.as_slice() {
            &[h, w, _] => Ok((h, w)),
            other => Err(self.unsupported(format!("expects [height, width, channels] samples, got {other:?}"))),
        }
    }

    /// Writes the layer's nodes reading `x` (one name per input); returns the name
    /// of its output value.
    fn export(&self, b: &mut Builder, x: &[String]) -> Result<String, OnnxError> {
        let x0 = x[0].as_str();
        #[allow(unreachable_patterns)] // layer kinds added later are refused by name
        Ok(match self.spec {
            LayerSpec::Dense(c) => {
                let w = self.need(ParamKind::Kernel)?;
                let w = self.constant(b, w);
                let mut y = b.op("MatMul", &[x0, &w], vec![]);
                if let Some(bias) = self.param(ParamKind::Bias) {
                    let bias = self.constant(b, bias);
                    y = b.op("Add", &[&y, &bias], vec![]);
                }
                if let Some(lora) = c.lora {
                    let a = self.constant(b, self.need(ParamKind::LoraA)?);
                    let bb = self.constant(b, self.need(ParamKind::LoraB)?);
                    let s = b.init("lora_scaling", &[], &[lora.scaling() as f32]);
                    let xa = b.op("MatMul", &[x0, &a], vec![]);
                    let xab = b.op("MatMul", &[&xa, &bb], vec![]);
                    let u = b.op("Mul", &[&xab, &s], vec![]);
                    y = b.op("Add", &[&y, &u], vec![]);
                }
                b.activation(&y, c.activation)
            }
            LayerSpec::Activation(c) => b.activation(x0, c.activation),
            LayerSpec::ReLU => b.activation(x0, Activation::Relu),
            LayerSpec::Softmax => b.activation(x0, Activation::Softmax),
            LayerSpec::LeakyReLU(c) => {
                b.op("LeakyRelu", &[x0], vec![AttributeProto::float("alpha", c.negative_slope as f32)])
            }
            LayerSpec::ELU(c) => b.op("Elu", &[x0], vec![AttributeProto::float("alpha", c.alpha as f32)]),
            LayerSpec::Dropout(_) | LayerSpec::Identity => b.op("Identity", &[x0], vec![]),
            LayerSpec::Flatten => b.op("Flatten", &[x0], vec![AttributeProto::int("axis", 1)]),
            LayerSpec::Reshape(_) => {
                // 0 copies the batch axis from the input (allowzero = 0, the default).
                let mut shape = vec![0i64];
                shape.extend(self.output_shape.iter().map(|&d| d as i64));
                let s = b.init_i64("shape", &shape);
                b.op("Reshape", &[x0, &s], vec![])
            }
            LayerSpec::Conv2D(c) => {
                let hw = self.hw()?;
                let (kh, kw) = c.kernel_size.pair();
                let (sh, sw) = c.strides.pair();
                let kernel = self.need(ParamKind::Kernel)?;
                let (ch, f) = (kernel.shape()[2], kernel.shape()[3]);
                // nn: [kh, kw, c, f] row-major → ONNX: [f, c, kh, kw].
                let k = kernel.value.to_vec();
                let mut w = vec![0f32; k.len()];
                for i in 0..kh {
                    for j in 0..kw {
                        for ci in 0..ch {
                            for fo in 0..f {
                                w[((fo * ch + ci) * kh + i) * kw + j] = k[((i * kw + j) * ch + ci) * f + fo];
                            }
                        }
                    }
                }
                let wn = b.init("kernel", &[f, ch, kh, kw], &w);
                let mut inputs = vec![wn];
                if let Some(bias) = self.param(ParamKind::Bias) {
                    inputs.push(self.constant(b, bias));
                }
                let xt = b.transpose(x0, &[0, 3, 1, 2]);
                let mut args: Vec<&str> = vec![&xt];
                args.extend(inputs.iter().map(String::as_str));
                let pads = resolve_pads(c.padding, hw, (kh, kw), (sh, sw));
                let y = b.op(
                    "Conv",
                    &args,
                    vec![
                        AttributeProto::ints("kernel_shape", &[kh as i64, kw as i64]),
                        AttributeProto::ints("strides", &[sh as i64, sw as i64]),
                        AttributeProto::ints("pads", &pads),
                        AttributeProto::ints("dilations", &[1, 1]),
                        AttributeProto::int("group", 1),
                    ],
                );
                let y = b.transpose(&y, &[0, 2, 3, 1]);
                b.activation(&y, c.activation)
            }
            LayerSpec::MaxPool2D(c) | LayerSpec::AvgPool2D(c) => {
                let hw = self.hw()?;
                let (ph, pw) = c.pool_size.pair();
                let (sh, sw) = c.effective_strides().pair();
                let pads = resolve_pads(c.padding, hw, (ph, pw), (sh, sw));
                let max = matches!(self.spec, LayerSpec::MaxPool2D(_));
                let mut attrs = vec![
                    AttributeProto::ints("kernel_shape", &[ph as i64, pw as i64]),
                    AttributeProto::ints("strides", &[sh as i64, sw as i64]),
                    AttributeProto::ints("pads", &pads),
                ];
                if !max {
                    // The mean of the window positions inside the image, as nn and Keras.
                    attrs.push(AttributeProto::int("count_include_pad", 0));
                }
                let xt = b.transpose(x0, &[0, 3, 1, 2]);
                let y = b.op(if max { "MaxPool" } else { "AveragePool" }, &[&xt], attrs);
                b.transpose(&y, &[0, 2, 3, 1])
            }
            LayerSpec::GlobalAveragePooling2D | LayerSpec::GlobalMaxPooling2D => {
                self.hw()?;
                let op = if matches!(self.spec, LayerSpec::GlobalMaxPooling2D) { "ReduceMax" } else { "ReduceMean" };
                b.op(op, &[x0], vec![AttributeProto::ints("axes", &[1, 2]), AttributeProto::int("keepdims", 0)])
            }
            LayerSpec::BatchNormalization(c) => {
                // nn's inference form (nn_layers::batch_norm_eval), in f32 as nn:
                // y = (x − μ) · (γ / √(σ² + ε)) + β over the last axis.
                let mean = self.need(ParamKind::MovingMean)?;
                let var = self.need(ParamKind::MovingVariance)?.value.to_vec();
                let eps = c.epsilon as f32;
                let gamma = self.param(ParamKind::Gamma).map(|p| p.value.to_vec());
                let scale: Vec<f32> = var
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| {
                        let inv = 1.0 / (v + eps).sqrt();
                        gamma.as_ref().map_or(inv, |g| g[k] * inv)
                    })
                    .collect();
                let m = self.constant(b, mean);
                let s = b.init("scale", &[scale.len()], &scale);
                let y = b.op("Sub", &[x0, &m], vec![]);
                let y = b.op("Mul", &[&y, &s], vec![]);
                match self.param(ParamKind::Beta) {
                    Some(beta) => {
                        let beta = self.constant(b, beta);
                        b.op("Add", &[&y, &beta], vec![])
                    }
                    None => y,
                }
            }
            LayerSpec::LayerNormalization(c) => {
                let features = *self.input_shape.last().unwrap_or(&1);
                let gamma = self.param(ParamKind::Gamma).map(|p| self.constant(b, p));
                let beta = self.param(ParamKind::Beta).map(|p| self.constant(b, p));
                if b.opset >= 17 {
                    let gamma = gamma.unwrap_or_else(|| b.init("ones", &[features], &vec![1.0; features]));
                    let mut args = vec![x0, gamma.as_str()];
                    if let Some(beta) = &beta {
                        args.push(beta);
                    }
                    b.op(
                        "LayerNormalization",
                        &args,
                        vec![AttributeProto::int("axis", -1), AttributeProto::float("epsilon", c.epsilon as f32)],
                    )
                } else {
                    // Ba et al. 2016, eq. 4, biased variance: ReduceMean, Sub, Mul,
                    // ReduceMean, Add ε, Sqrt, Div, then γ and β.
                    let axes = vec![AttributeProto::ints("axes", &[-1]), AttributeProto::int("keepdims", 1)];
                    let mu = b.op("ReduceMean", &[x0], axes.clone());
                    let d = b.op("Sub", &[x0, &mu], vec![]);
                    let sq = b.op("Mul", &[&d, &d], vec![]);
                    let var = b.op("ReduceMean", &[&sq], axes);
                    let eps = b.init("epsilon", &[], &[c.epsilon as f32]);
                    let ve = b.op("Add", &[&var, &eps], vec![]);
                    let sd = b.op("Sqrt", &[&ve], vec![]);
                    let mut y = b.op("Div", &[&d, &sd], vec![]);
                    if let Some(g) = &gamma {
                        y = b.op("Mul", &[&y, g], vec![]);
                    }
                    if let Some(be) = &beta {
                        y = b.op("Add", &[&y, be], vec![]);
                    }
                    y
                }
            }
            LayerSpec::ZeroPadding2D(c) => {
                self.hw()?;
                let p = c.padding;
                let pads = [0, p.top as i64, p.left as i64, 0, 0, p.bottom as i64, p.right as i64, 0];
                let pads = b.init_i64("pads", &pads);
                b.op("Pad", &[x0, &pads], vec![AttributeProto::string("mode", "constant")])
            }
            LayerSpec::Embedding(_) => {
                let table = self.constant(b, self.need(ParamKind::Embeddings)?);
                let idx = b.op("Cast", &[x0], vec![AttributeProto::int("to", crate::proto::DATA_TYPE_INT64 as i64)]);
                b.op("Gather", &[&table, &idx], vec![AttributeProto::int("axis", 0)])
            }
            LayerSpec::Add | LayerSpec::Multiply | LayerSpec::Average => {
                let op = if matches!(self.spec, LayerSpec::Multiply) { "Mul" } else { "Add" };
                // Left to right, as nn accumulates.
                let mut y = x0.to_string();
                for xi in &x[1..] {
                    y = b.op(op, &[&y, xi], vec![]);
                }
                if matches!(self.spec, LayerSpec::Average) {
                    let s = b.init("inverse_count", &[], &[1.0 / x.len() as f32]);
                    y = b.op("Mul", &[&y, &s], vec![]);
                }
                y
            }
            LayerSpec::Subtract => b.op("Sub", &[x0, &x[1]], vec![]),
            LayerSpec::Maximum => {
                let args: Vec<&str> = x.iter().map(String::as_str).collect();
                b.op("Max", &args, vec![])
            }
            LayerSpec::Dot => {
                // Σⱼ aⱼ·cⱼ per sample: Mul, then MatMul with a column of ones [d, 1]
                // (no ReduceSum, whose axes moved from attribute to input in opset 13).
                let d = *self.input_shape.last().unwrap_or(&1);
                let prod = b.op("Mul", &[x0, &x[1]], vec![]);
                let ones = b.init("ones", &[d, 1], &vec![1.0; d]);
                b.op("MatMul", &[&prod, &ones], vec![])
            }
            LayerSpec::Concatenate(c) => {
                // nn counts the axis with the batch as axis 0, as ONNX; negative from the end.
                let args: Vec<&str> = x.iter().map(String::as_str).collect();
                b.op("Concat", &args, vec![AttributeProto::int("axis", c.axis)])
            }
            LayerSpec::SimpleRNN(c) => self.recurrent(b, x0, Recurrent::Rnn, c.units, c.return_sequences)?,
            LayerSpec::LSTM(c) => self.recurrent(b, x0, Recurrent::Lstm, c.units, c.return_sequences)?,
            LayerSpec::GRU(c) => {
                if !c.reset_after {
                    return Err(self.unsupported("reset_after: false has no nn implementation to export"));
                }
                self.recurrent(b, x0, Recurrent::Gru, c.units, c.return_sequences)?
            }
            _ => return Err(self.unsupported("this layer kind has no ONNX mapping yet")),
        })
    }

    /// SimpleRNN, LSTM or GRU as ONNX's `RNN`, `LSTM` or `GRU` (one forward
    /// direction, zero initial state). nn's kernels `[features, gates·units]` and
    /// `[units, gates·units]` hold the gate blocks side by side in Keras's order; ONNX
    /// wants `W: [1, gates·units, features]`, `R: [1, gates·units, units]` (each
    /// gate's block transposed) in its own order, and `B: [1, 2·gates·units]` (the
    /// input biases `Wb`, then the recurrent biases `Rb`):
    ///
    /// - LSTM: Keras `i, f, c̃, o` → ONNX `i, o, f, c`; nn has one bias, written as
    ///   `Wb` with `Rb = 0`.
    /// - GRU: `z, r, h̃` in both; nn's `reset_after` form is ONNX's
    ///   `linear_before_reset = 1`; nn's bias rows (input, recurrent) are `Wb`, `Rb`.
    /// - SimpleRNN: one block, `tanh`.
    ///
    /// Input `[batch, time, features]` is transposed to ONNX's `[time, batch,
    /// features]`; the output is `Y_h: [1, batch, units]` squeezed to `[batch, units]`,
    /// or with `return_sequences` `Y: [time, 1, batch, units]` squeezed and
    /// transposed back to `[batch, time, units]`.
    fn recurrent(
        &self,
        b: &mut Builder,
        x: &str,
        kind: Recurrent,
        units: usize,
        return_sequences: bool,
    ) -> Result<String, OnnxError> {
        let features = match self.input_shape.as_slice() {
            &[_, f] => f,
            other => return Err(self.unsupported(format!("expects [time, features] samples, got {other:?}"))),
        };
        let (gates, order, op): (usize, &[usize], &str) = match kind {
            Recurrent::Rnn => (1, &[0], "RNN"),
            Recurrent::Lstm => (4, &[0, 3, 1, 2], "LSTM"),
            Recurrent::Gru => (3, &[0, 1, 2], "GRU"),
        };
        let width = gates * units;
        // `m: [rows, width]` (Keras blocks) → `[width, rows]` with ONNX's block order.
        let onnx_matrix = |m: &[f32], rows: usize| {
            let mut out = vec![0f32; m.len()];
            for (dst, &src) in order.iter().enumerate() {
                for u in 0..units {
                    for r in 0..rows {
                        out[(dst * units + u) * rows + r] = m[r * width + src * units + u];
                    }
                }
            }
            out
        };
        let reorder = |v: &[f32]| -> Vec<f32> {
            order.iter().flat_map(|&src| v[src * units..(src + 1) * units].iter().copied()).collect()
        };
        let w = onnx_matrix(&self.need(ParamKind::Kernel)?.value.to_vec(), features);
        let r = onnx_matrix(&self.need(ParamKind::RecurrentKernel)?.value.to_vec(), units);
        let wn = b.init("W", &[1, width, features], &w);
        let rn = b.init("R", &[1, width, units], &r);
        let mut inputs = vec![wn, rn];
        if let Some(bias) = self.param(ParamKind::Bias) {
            let v = bias.value.to_vec();
            let bias_all: Vec<f32> = match kind {
                Recurrent::Gru => [reorder(&v[..width]), reorder(&v[width..])].concat(),
                _ => [reorder(&v), vec![0.0; width]].concat(),
            };
            inputs.push(b.init("B", &[1, 2 * width], &bias_all));
        }
        let mut attrs = vec![AttributeProto::int("hidden_size", units as i64)];
        match kind {
            Recurrent::Rnn => attrs.push(AttributeProto::strings("activations", &["Tanh"])),
            Recurrent::Lstm => attrs.push(AttributeProto::strings("activations", &["Sigmoid", "Tanh", "Tanh"])),
            Recurrent::Gru => {
                attrs.push(AttributeProto::strings("activations", &["Sigmoid", "Tanh"]));
                attrs.push(AttributeProto::int("linear_before_reset", 1));
            }
        }
        let xt = b.transpose(x, &[1, 0, 2]);
        let mut args: Vec<&str> = vec![&xt];
        args.extend(inputs.iter().map(String::as_str));
        let y = b.fresh(&format!("{op}_Y"));
        let y_h = b.fresh(&format!("{op}_Y_h"));
        b.push(op, &args, &[y.clone(), y_h.clone()], attrs);
        Ok(if return_sequences {
            let axes = b.init_i64("axes", &[1]);
            let s = b.op("Squeeze", &[&y, &axes], vec![]);
            b.transpose(&s, &[1, 0, 2])
        } else {
            let axes = b.init_i64("axes", &[0]);
            b.op("Squeeze", &[&y_h, &axes], vec![])
        })
    }
}

/// The three recurrent kinds.
#[derive(Clone, Copy)]
enum Recurrent {
    Rnn,
    Lstm,
    Gru,
}
