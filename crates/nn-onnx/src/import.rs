//! The importer: an ONNX inference graph made of operators nn has, as an nn
//! [`Model`] (a format-version-2 graph spec with its weights) and the
//! [`ModelMetadata`] `nn-cli` saves beside it.
//!
//! # Layout
//! nn keeps images NHWC, ONNX's `Conv` and pooling operators read NCHW. Every value
//! of the ONNX graph is tracked with the layout its nn tensor has:
//!
//! - *plain*: the nn tensor holds the ONNX tensor's elements in the same order (the
//!   shapes may differ only by axes of size 1, as after a global pool);
//! - *NCHW*: the ONNX tensor is `[N, C, H, W]`, the nn tensor `[N, H, W, C]`. A 4-d
//!   graph input is NCHW (nn's input is then `[H, W, C]`) unless every node that
//!   reads it is a `Transpose` to NCHW (the graphs nn itself exports). A `Transpose`
//!   between the two layouts changes only the label, no layer is written;
//! - *flattened NCHW*: a `Flatten` (or `Reshape` to `[N, -1]`) of an NCHW value,
//!   ONNX's elements in `C, H, W` order, nn's in `H, W, C` order. The `Gemm` or
//!   `MatMul` reading it gets its weight rows permuted, so no transpose is run;
//!   element-wise operators pass it on (their constants permuted the same way);
//! - *time-major*: a sequence after a `Transpose` with perm `[1, 0, 2]`, ONNX's
//!   `[time, N, features]` for the recurrent operators, nn's `[N, time, features]`.
//!
//! # Operators
//! `Gemm` and `MatMul` with constant weights become Dense (a following `Add` of a
//! constant becomes its bias, a following `Relu`, `Sigmoid`, `Tanh` or last-axis
//! `Softmax` its activation); `Conv` becomes Conv2D (kernel `[f, c, kh, kw]` →
//! `[kh, kw, c, f]`; explicit pads that are not nn's `same` become ZeroPadding2D
//! and `valid`); `MaxPool` / `AveragePool` MaxPool2D / AvgPool2D; the global pools
//! and `ReduceMean` / `ReduceMax` over the image axes the global pooling layers;
//! `BatchNormalization` BatchNormalization; `Add`, `Sub`, `Mul` and `Div` of a
//! per-feature constant (a scalar, a vector over the last axis, `[C, 1, 1]` over
//! channels) a BatchNormalization in inference form with unit variance (its
//! statistics hold the constant: `(x − mean) · γ + β`); `Add`, `Sub`, `Mul`, `Max`
//! and `Concat` of two computed values the merge layers; `Relu`, `Sigmoid`, `Tanh`,
//! `Softplus`, `Softmax`, `LeakyRelu`, `Elu` the activations; `Flatten` and
//! `Reshape` Flatten and Reshape; `Pad` (zeros over the image axes) ZeroPadding2D;
//! `RNN`, `LSTM` and `GRU` (one forward direction, zero initial state; after a
//! `Transpose` to time-major, before a `Squeeze` of the direction axis) SimpleRNN,
//! LSTM and GRU; `Cast` to int64 of a computed value then `Gather` of a constant
//! table by it Embedding (the exporter's form); `Dropout`, `Identity` and `Constant`
//! no layer. `Shape` of a computed value, and `Gather`, `Unsqueeze`, `Concat` and
//! `Cast` of constants are folded (PyTorch's `x.view(x.size(0), -1)` chain before
//! a `Reshape`; the batch size kept as a marker `Reshape` reads as "keep the batch
//! axis"). A layer normalization decomposed below opset 17 (`ReduceMean`, `Sub`,
//! `Mul` or `Pow`, `ReduceMean`, `Add` ε, `Sqrt`, `Div`, then a scale and a shift) is
//! put back as one `LayerNormalization` first: in files nn wrote only the exporter's
//! exact pattern, in others also PyTorch's. The input scaling and target scaling
//! nodes `nn-cli export` writes come back as the metadata's scalers and target
//! scaling.
//!
//! Every check on sizes happens before anything is allocated from them: a
//! tensor's element count is checked with [`nn_tensor::shape::checked_numel`] and
//! against the bytes the file holds for it.

use std::collections::{HashMap, HashSet, VecDeque};

use nn_layers::{
    Activation, ActivationConfig, BatchNormConfig, ConcatenateConfig, Conv2DConfig, DenseConfig, EluConfig, InputSpec,
    LayerSpec, LeakyReluConfig, Model, ModelSpec, NodeSpec, Padding2D, PaddingMode, Pool2DConfig, ReshapeConfig,
    TargetShape, ZeroPadding2DConfig,
};
use nn_tensor::Tensor;
use nn_train::ModelMetadata;
use prost::Message;

use crate::export::{portable_data_name, resolve_pads, CLASS_NAMES_KEY, NN_METADATA_KEY};
use crate::proto::{dimension, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use crate::OnnxError;

/// The opsets [`import`] reads (of the default `ai.onnx` domain). The operators it
/// maps have the same meaning from 13 to 21; `ReduceMean` / `ReduceMax` take their
/// axes as an attribute up to 17 and as an input from 18, both are read.
pub const IMPORT_OPSETS: std::ops::RangeInclusive<i64> = 13..=21;

/// The ONNX operators [`import`] maps onto nn layers (see the module docs), in
/// alphabetical order.
pub const SUPPORTED_OPERATORS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Concat",
    "Constant",
    "Conv",
    "Div",
    "Dropout",
    "Elu",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "GRU",
    "Identity",
    "LayerNormalization",
    "LeakyRelu",
    "LSTM",
    "MatMul",
    "Max",
    "MaxPool",
    "Mul",
    "Pad",
    "ReduceMax",
    "ReduceMean",
    "Relu",
    "Reshape",
    "RNN",
    "Shape",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// The data name of a model imported from a file nn did not write (or that does not
/// name its data): what messages about the model call it.
pub const FOREIGN_DATA: &str = "imported ONNX model";

/// The batch size in a folded shape constant (`Shape` of a computed value): not
/// known when importing, kept as this marker, which `Reshape` reads as "keep the
/// batch axis" and every other use refuses.
const BATCH: i64 = i64::MIN;

/// The ε of the BatchNormalization layers that hold an element-wise constant: so
/// small that `1 + ε` is 1 in `f32` and `f64`, so the layer computes
/// `(x − mean) · γ + β` exactly.
const AFFINE_EPSILON: f64 = 1e-300;

/// The most parameter values the importer makes up from shapes rather than reading
/// them from the file (a scalar constant broadcast over the features, the unit
/// variances of a constant's BatchNormalization): 2^22 (16 MiB of `f32`), so a
/// small hostile file cannot make it allocate much.
const SYNTHESIZED_LIMIT: usize = 1 << 22;

/// An imported model: the nn model (spec and weights) and the metadata to save
/// beside it.
#[derive(Debug)]
pub struct Imported {
    /// The model, every parameter set from the ONNX file.
    pub model: Model,
    /// Class names (`metadata_props["class_names"]`, a JSON array, when it has one
    /// name per output), the task and the target column when the file names them.
    pub metadata: ModelMetadata,
    /// What a user should know about the conversion, one sentence each (e.g. that a
    /// 4-d NCHW input now takes NHWC images).
    pub notes: Vec<String>,
}

/// Reads an ONNX model (the bytes of an `.onnx` file) into an nn model.
///
/// ```
/// use nn_layers::{ModelSpec, Sequential};
/// use nn_train::ModelMetadata;
///
/// let model = Sequential::new(ModelSpec::mlp(&[4], 8, 3, 0.0), 7)?;
/// let bytes = nn_onnx::export(&model, &ModelMetadata::default(), 17)?;
/// let back = nn_onnx::import(&bytes)?;
/// let x = nn_tensor::Tensor::from_vec(&[2, 4], vec![0.5, -1.0, 2.0, 0.0, 1.0, 1.0, -3.0, 0.25]);
/// let (a, b) = (model.predict(&x)?.to_vec(), back.model.predict(&x)?.to_vec());
/// assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-6));
/// assert!(nn_onnx::import(b"not an onnx file").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`OnnxError::Decode`] for bytes that are not an ONNX model;
/// [`OnnxError::UnsupportedOperators`] naming every operator of the graph nn has no
/// layer for; [`OnnxError::Invalid`] for a graph that is not well formed (a cycle, a
/// value read before any node writes it, a tensor whose data does not fill its
/// shape, an opset outside [`IMPORT_OPSETS`]); [`OnnxError::Node`] naming the node
/// whose settings nn cannot express (e.g. `group` > 1); [`OnnxError::Model`] when the
/// resulting spec does not build.
pub fn import(bytes: &[u8]) -> Result<Imported, OnnxError> {
    if bytes.is_empty() {
        return Err(OnnxError::Decode("the file is empty".into()));
    }
    let proto = ModelProto::decode(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
    import_proto(&proto)
}

/// As [`import`], from a decoded [`ModelProto`].
///
/// # Errors
/// As [`import`].
pub fn import_proto(proto: &ModelProto) -> Result<Imported, OnnxError> {
    let graph = proto.graph.as_ref().ok_or_else(|| OnnxError::Decode("the model has no graph".into()))?;
    let nn = proto.producer_name == "nn";
    let mut g = graph.clone();
    let scaling = if nn { strip_nn_scaling(&mut g) } else { NnScaling::default() };
    fuse_layer_norms(&mut g, nn);
    let graph = &g;
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| invalid("the model imports no opset of the default domain (ai.onnx)"))?;
    if !IMPORT_OPSETS.contains(&opset) {
        return Err(invalid(format!(
            "opset {opset} is not supported: nn imports opsets {} to {}",
            IMPORT_OPSETS.start(),
            IMPORT_OPSETS.end()
        )));
    }
    let mut unsupported: Vec<String> = graph
        .node
        .iter()
        .filter(|n| {
            !(n.domain.is_empty() || n.domain == "ai.onnx") || !SUPPORTED_OPERATORS.contains(&n.op_type.as_str())
        })
        .map(|n| if n.domain.is_empty() { n.op_type.clone() } else { format!("{}:{}", n.domain, n.op_type) })
        .collect();
    if !unsupported.is_empty() {
        unsupported.sort();
        unsupported.dedup();
        return Err(OnnxError::UnsupportedOperators(unsupported));
    }
    let order = topological_order(graph)?;
    let mut im = Importer::new(graph, proto.producer_name == "nn")?;
    for &k in &order {
        let node = &graph.node[k];
        im.node(node).map_err(|reason| OnnxError::Node {
            node: if node.name.is_empty() { format!("#{k}") } else { clip(&node.name) },
            op: node.op_type.clone(),
            reason,
        })?;
    }
    let mut imported = im.finish(proto)?;
    imported.metadata.scalers = scaling.scalers;
    imported.metadata.target_scaler = scaling.target;
    if let Some(ts) = &imported.metadata.target_scaler {
        if ts.mean.len() != imported.model.output_shape().iter().product::<usize>() {
            return Err(invalid("the target scaling does not fit the model's outputs"));
        }
    }
    for (i, sc) in imported.metadata.scalers.iter().enumerate() {
        sc.check(imported.model.input_shape()).map_err(|e| invalid(format!("input scaling {i}: {e}")))?;
    }
    Ok(imported)
}

/// The input scaling and target scaling `nn-cli export` writes as nodes, read back.
#[derive(Default)]
struct NnScaling {
    scalers: Vec<nn_data::Scaler>,
    target: Option<nn_data::TargetScaler>,
}

/// Removes from a graph nn exported the nodes of its input scaling (at the first
/// input) and target scaling (before the first output), returned as nn's scalers,
/// so the imported model takes the same scaled features as the exported one and
/// its metadata scales raw features again. Nodes that do not match exactly what
/// the exporter writes are left in place (and imported as layers).
fn strip_nn_scaling(g: &mut GraphProto) -> NnScaling {
    let mut out = NnScaling::default();
    let inits: HashMap<String, usize> = g.initializer.iter().enumerate().map(|(k, t)| (t.name.clone(), k)).collect();
    let stats = |name: &str| -> Option<Vec<f64>> {
        let c = read_tensor(&g.initializer[*inits.get(name)?]).ok()?;
        c.floats().ok().map(|v| v.iter().map(|&x| x as f64).collect())
    };
    let readers = |g: &GraphProto, v: &str| -> Vec<usize> {
        (0..g.node.len()).filter(|&k| g.node[k].input.iter().any(|i| i == v)).collect()
    };
    let is_output = |g: &GraphProto, v: &str| g.output.iter().any(|o| o.name == v);
    let const_of = |n: &NodeProto, k: usize, suffix: &str| -> Option<Vec<f64>> {
        let name = n.input.get(k)?;
        if !name.starts_with("input_scaling/") && !name.starts_with("output/") {
            return None;
        }
        let base = name.rsplit('/').next()?;
        let base = base.split('_').next()?;
        if base != suffix {
            return None;
        }
        stats(name)
    };
    let mut remove: HashSet<usize> = HashSet::new();
    // Input side.
    if let Some(x) = g.input.iter().find(|i| !inits.contains_key(&i.name)).map(|i| i.name.clone()) {
        let mut v = x.clone();
        loop {
            if is_output(g, &v) {
                break;
            }
            let rs = readers(g, &v);
            let single = |k: usize, g: &GraphProto| -> Option<String> {
                let n = &g.node[k];
                if n.output.len() == 1 && !is_output(g, &n.output[0]) {
                    Some(n.output[0].clone())
                } else {
                    None
                }
            };
            let chain = |start: usize, ops: &[&str], g: &GraphProto| -> Option<(Vec<usize>, String)> {
                let mut ks = vec![start];
                let mut cur = start;
                if g.node[cur].op_type != ops[0] {
                    return None;
                }
                for op in &ops[1..] {
                    let o = single(cur, g)?;
                    let r = readers(g, &o);
                    if r.len() != 1 || g.node[r[0]].op_type != *op || g.node[r[0]].input.first() != Some(&o) {
                        return None;
                    }
                    cur = r[0];
                    ks.push(cur);
                }
                Some((ks, g.node[cur].output.first()?.clone()))
            };
            let found: Option<(Vec<usize>, String, nn_data::Scaler)> = (|| {
                if rs.len() == 2 {
                    let (a, b) = (&g.node[rs[0]], &g.node[rs[1]]);
                    if a.op_type == "IsNaN" && b.op_type == "Where" && b.input.len() == 3 {
                        let m = single(rs[0], g)?;
                        if b.input[0] == m && b.input[2] == v && readers(g, &m).len() == 1 {
                            let values = const_of(b, 1, "impute")?;
                            return Some((
                                vec![rs[0], rs[1]],
                                b.output.first()?.clone(),
                                nn_data::Scaler::Impute { values },
                            ));
                        }
                    }
                    return None;
                }
                if rs.len() != 1 || g.node[rs[0]].input.first() != Some(&v) {
                    return None;
                }
                let n = &g.node[rs[0]];
                match n.op_type.as_str() {
                    "Mul" => {
                        let (ks, end) = chain(rs[0], &["Mul", "Add"], g)?;
                        let scale = *const_of(&g.node[ks[0]], 1, "scale")?.first()?;
                        let offset = *const_of(&g.node[ks[1]], 1, "offset")?.first()?;
                        Some((ks, end, nn_data::Scaler::Constant { scale, offset }))
                    }
                    "Sub" if const_of(n, 1, "mean").is_some() => {
                        let (ks, end) = chain(rs[0], &["Sub", "Div"], g)?;
                        let mean = const_of(&g.node[ks[0]], 1, "mean")?;
                        let std = const_of(&g.node[ks[1]], 1, "std")?;
                        Some((ks, end, nn_data::Scaler::Standard { mean, std }))
                    }
                    "Sub" => {
                        let (ks, end) = chain(rs[0], &["Sub", "Div", "Mul", "Add"], g)?;
                        let min = const_of(&g.node[ks[0]], 1, "min")?;
                        let range = const_of(&g.node[ks[1]], 1, "range")?;
                        let span = *const_of(&g.node[ks[2]], 1, "span")?.first()?;
                        let low = *const_of(&g.node[ks[3]], 1, "low")?.first()?;
                        if range.len() != min.len() {
                            return None;
                        }
                        let max = min.iter().zip(&range).map(|(a, r)| a + r).collect();
                        Some((ks, end, nn_data::Scaler::MinMax { min, max, low, high: low + span }))
                    }
                    _ => None,
                }
            })();
            let Some((ks, end, scaler)) = found else { break };
            if ks.iter().any(|k| remove.contains(k)) || remove.len() > g.node.len() {
                break; // a chain that comes back on itself: left to the cycle check
            }
            remove.extend(ks);
            out.scalers.push(scaler);
            v = end;
        }
        if v != x {
            for n in &mut g.node {
                for i in &mut n.input {
                    if *i == v {
                        *i = x.clone();
                    }
                }
            }
        }
    }
    // Output side: Identity(Add(Mul(y, std), mean)).
    if let Some(o) = g.output.first().map(|o| o.name.clone()) {
        let producer = |g: &GraphProto, v: &str| g.node.iter().position(|n| n.output.iter().any(|x| x == v));
        let found = (|| {
            let id = producer(g, &o)?;
            if g.node[id].op_type != "Identity" {
                return None;
            }
            let add = producer(g, g.node[id].input.first()?)?;
            let mul = producer(g, g.node[add].input.first()?)?;
            let (a, m) = (&g.node[add], &g.node[mul]);
            if a.op_type != "Add" || m.op_type != "Mul" || readers(g, &a.output[0]).len() != 1 {
                return None;
            }
            if readers(g, &m.output[0]).len() != 1 {
                return None;
            }
            let mean = const_of(a, 1, "target")?;
            let std = const_of(m, 1, "target")?;
            Some((id, add, mul, m.input.first()?.clone(), mean, std))
        })();
        if let Some((id, add, mul, y, mean, std)) = found {
            if g.node[add].input.get(1).is_some_and(|s| s.ends_with("target_mean"))
                && g.node[mul].input.get(1).is_some_and(|s| s.ends_with("target_std"))
            {
                g.node[id].input[0] = y;
                remove.extend([add, mul]);
                out.target = Some(nn_data::TargetScaler { mean, std });
            }
        }
    }
    let mut k = 0;
    g.node.retain(|_| {
        k += 1;
        !remove.contains(&(k - 1))
    });
    out
}

/// Puts back the layer normalizations that exporters decompose below opset 17 as
/// one `LayerNormalization` node each. With `nn` (files nn exported) only the
/// exporter's exact pattern: `ReduceMean` over axis −1, `Sub`, `Mul` of the
/// difference by itself, `ReduceMean`, `Add` of `{layer}/epsilon`, `Sqrt`, `Div`,
/// then `Mul` by `{layer}/gamma` and `Add` of `{layer}/beta` when the layer has
/// them. Otherwise also PyTorch's (`Pow` by 2 for the square, the constants as
/// `Constant` nodes or initializers of any name; a scale and shift a scalar or a
/// vector). Anything else is left as it is (and refused later: `Sqrt` has no
/// layer).
fn fuse_layer_norms(g: &mut GraphProto, nn: bool) {
    let inits: HashMap<&str, &TensorProto> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let constant_nodes: HashMap<&str, &NodeProto> = g
        .node
        .iter()
        .filter(|n| n.op_type == "Constant" && n.output.len() == 1)
        .map(|n| (n.output[0].as_str(), n))
        .collect();
    // The value of a constant (an initializer, or with !nn a `Constant` node's).
    let constant = |name: &str| -> Option<Const> {
        if let Some(t) = inits.get(name) {
            return read_tensor(t).ok();
        }
        let a = constant_nodes.get(name).filter(|_| !nn)?.attribute.first()?;
        match a.name.as_str() {
            "value" => read_tensor(a.t.as_ref()?).ok(),
            "value_float" => Some(Const { dims: vec![], data: ConstData::F32(vec![a.f]) }),
            _ => None,
        }
    };
    let scalar = |name: &str| -> Option<f32> {
        match constant(name)?.floats().ok()? {
            &[v] => Some(v),
            _ => None,
        }
    };
    let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (k, n) in g.node.iter().enumerate() {
        for i in &n.input {
            let r = readers.entry(i.as_str()).or_default();
            if r.last() != Some(&k) {
                r.push(k);
            }
        }
    }
    // The one node reading `v` (which is no graph output), if it is an `op`.
    let sole = |v: &str, op: &str| -> Option<usize> {
        match readers.get(v).map(Vec::as_slice) {
            Some(&[k]) if g.node[k].op_type == op && !outputs.contains(v) && g.node[k].output.len() == 1 => Some(k),
            _ => None,
        }
    };
    let last_axis_mean = |n: &NodeProto| {
        n.op_type == "ReduceMean"
            && n.input.len() == 1
            && attr_ints(n, "axes") == Some(&[-1])
            && attr_i(n, "keepdims", 1) == 1
    };
    let mut fused: Vec<(Vec<usize>, NodeProto)> = Vec::new();
    for (k, mu) in g.node.iter().enumerate() {
        let found = (|| {
            if !last_axis_mean(mu) || mu.output.len() != 1 {
                return None;
            }
            let x = mu.input[0].as_str();
            let sub = sole(&mu.output[0], "Sub")?;
            if g.node[sub].input != [x, mu.output[0].as_str()] {
                return None;
            }
            let d = g.node[sub].output.first()?.as_str();
            let rs = readers.get(d)?;
            if rs.len() != 2 || outputs.contains(d) {
                return None;
            }
            let (sq, div) = if g.node[rs[0]].op_type == "Div" { (rs[1], rs[0]) } else { (rs[0], rs[1]) };
            let square = match g.node[sq].op_type.as_str() {
                "Mul" => g.node[sq].input == [d, d],
                "Pow" => {
                    !nn && g.node[sq].input.len() == 2
                        && g.node[sq].input[0] == d
                        && scalar(&g.node[sq].input[1]) == Some(2.0)
                }
                _ => false,
            };
            if !square || g.node[div].op_type != "Div" {
                return None;
            }
            let var = sole(g.node[sq].output.first()?, "ReduceMean")?;
            if !last_axis_mean(&g.node[var]) {
                return None;
            }
            let add = sole(g.node[var].output.first()?, "Add")?;
            let (v_in, eps_name) = (g.node[add].input.first()?, g.node[add].input.get(1)?);
            if v_in != &g.node[var].output[0] {
                return None;
            }
            let scope = if nn { eps_name.strip_suffix("/epsilon")? } else { "" };
            let eps = scalar(eps_name).filter(|e| *e > 0.0 && e.is_finite())?;
            let sqrt = sole(g.node[add].output.first()?, "Sqrt")?;
            if sole(g.node[sqrt].output.first()?, "Div") != Some(div)
                || g.node[div].input != [d, g.node[sqrt].output[0].as_str()]
            {
                return None;
            }
            let mut nodes = vec![k, sub, sq, var, add, sqrt, div];
            let mut y = g.node[div].output.first()?.clone();
            let mut affine = |op: &str, param: &str| -> Option<String> {
                let next = sole(&y, op)?;
                let c = g.node[next].input.get(1)?;
                if g.node[next].input[0] != y {
                    return None;
                }
                if nn && (*c != format!("{scope}/{param}") || !inits.contains_key(c.as_str())) {
                    return None;
                }
                // A scalar or a vector over the last axis.
                if constant(c).is_none_or(|v| v.dims.iter().skip_while(|&&x| x == 1).count() > 1) {
                    return None;
                }
                nodes.push(next);
                y = g.node[next].output[0].clone();
                Some(c.clone())
            };
            let gamma = affine("Mul", "gamma").unwrap_or_default();
            let beta = affine("Add", "beta").unwrap_or_default();
            let node = NodeProto {
                input: vec![x.to_string(), gamma, beta],
                output: vec![y],
                name: format!("{}/LayerNormalization", if nn { scope } else { &mu.name }),
                op_type: "LayerNormalization".into(),
                attribute: vec![AttributeProto::int("axis", -1), AttributeProto::float("epsilon", eps)],
                ..Default::default()
            };
            Some((nodes, node))
        })();
        fused.extend(found);
    }
    let mut remove: HashSet<usize> = HashSet::new();
    let mut add = Vec::new();
    for (nodes, node) in fused {
        if nodes.iter().all(|k| !remove.contains(k)) {
            remove.extend(nodes);
            add.push(node);
        }
    }
    let mut k = 0;
    g.node.retain(|_| {
        k += 1;
        !remove.contains(&(k - 1))
    });
    g.node.extend(add);
}

fn invalid(msg: impl Into<String>) -> OnnxError {
    OnnxError::Invalid(msg.into())
}

/// At most 60 characters of a name from the file, for messages.
fn clip(s: &str) -> String {
    nn_layers::clip_to(s, 60)
}

/// The nodes in an order where each runs after the producers of its inputs
/// (Kahn's algorithm, the file's order among ready nodes).
fn topological_order(graph: &GraphProto) -> Result<Vec<usize>, OnnxError> {
    let mut available: HashSet<&str> = HashSet::new();
    available.insert("");
    for i in &graph.input {
        available.insert(&i.name);
    }
    for t in &graph.initializer {
        available.insert(&t.name);
    }
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (k, n) in graph.node.iter().enumerate() {
        for o in &n.output {
            if o.is_empty() {
                continue;
            }
            if available.contains(o.as_str()) || producer.insert(o, k).is_some() {
                return Err(invalid(format!("value {:?} is written twice", clip(o))));
            }
        }
    }
    let mut pending = vec![0usize; graph.node.len()];
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (k, n) in graph.node.iter().enumerate() {
        for i in &n.input {
            if available.contains(i.as_str()) {
                continue;
            }
            if !producer.contains_key(i.as_str()) {
                return Err(invalid(format!(
                    "node {:?} ({}) reads {:?}, which no node, input or initializer provides",
                    clip(&n.name),
                    clip(&n.op_type),
                    clip(i)
                )));
            }
            pending[k] += 1;
            consumers.entry(i).or_default().push(k);
        }
    }
    let mut ready: VecDeque<usize> = (0..graph.node.len()).filter(|&k| pending[k] == 0).collect();
    let mut order = Vec::with_capacity(graph.node.len());
    while let Some(k) = ready.pop_front() {
        order.push(k);
        for o in &graph.node[k].output {
            if let Some(cs) = consumers.get(o.as_str()) {
                for &c in cs {
                    pending[c] -= 1;
                    if pending[c] == 0 {
                        ready.push_back(c);
                    }
                }
            }
        }
    }
    if order.len() < graph.node.len() {
        let k = (0..graph.node.len()).find(|&k| pending[k] > 0).unwrap_or(0);
        let n = &graph.node[k];
        return Err(invalid(format!(
            "the graph has a cycle: node {:?} ({}) depends on its own output",
            clip(&n.name),
            clip(&n.op_type)
        )));
    }
    Ok(order)
}

/// A constant: an initializer or a `Constant` node's value.
#[derive(Debug, Clone)]
struct Const {
    dims: Vec<usize>,
    data: ConstData,
}

#[derive(Debug, Clone)]
enum ConstData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Const {
    fn floats(&self) -> Result<&[f32], String> {
        match &self.data {
            ConstData::F32(v) => Ok(v),
            ConstData::I64(_) => Err("expects a float constant, got int64".into()),
        }
    }
    fn ints(&self) -> Result<&[i64], String> {
        match &self.data {
            ConstData::I64(v) => Ok(v),
            ConstData::F32(_) => Err("expects an int64 constant, got float".into()),
        }
    }
}

/// `TensorProto.DataType.DOUBLE`.
const DATA_TYPE_DOUBLE: i32 = 11;

/// Reads a tensor's values, checking its shape against the bytes it holds before
/// allocating anything from the shape.
fn read_tensor(t: &TensorProto) -> Result<Const, String> {
    let name = clip(&t.name);
    let mut dims = Vec::with_capacity(t.dims.len().min(16));
    for &d in &t.dims {
        if d < 0 {
            return Err(format!("tensor {name:?} has a negative dimension {d}"));
        }
        dims.push(usize::try_from(d).map_err(|_| format!("tensor {name:?}: dimension {d} is too large"))?);
    }
    let n = nn_tensor::shape::checked_numel("onnx tensor", &dims)
        .map_err(|_| format!("tensor {name:?} of shape {:?} is too large", t.dims))?;
    let (elem, stored) = match t.data_type {
        crate::proto::DATA_TYPE_FLOAT => (4usize, t.float_data.len()),
        crate::proto::DATA_TYPE_INT64 => (8, t.int64_data.len()),
        DATA_TYPE_DOUBLE => (8, 0),
        other => return Err(format!("tensor {name:?} has data type {other}; nn reads float32 and int64")),
    };
    if !t.raw_data.is_empty() || stored == 0 {
        if t.raw_data.len() / elem != n || !t.raw_data.len().is_multiple_of(elem) {
            return Err(format!(
                "tensor {name:?} of shape {:?} needs {n} values, its data holds {} bytes (external data is not read)",
                t.dims,
                t.raw_data.len()
            ));
        }
        let raw = &t.raw_data;
        let data = match t.data_type {
            crate::proto::DATA_TYPE_FLOAT => {
                ConstData::F32(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
            }
            DATA_TYPE_DOUBLE => ConstData::F32(
                raw.chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
                    .collect(),
            ),
            _ => ConstData::I64(
                raw.chunks_exact(8)
                    .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect(),
            ),
        };
        return Ok(Const { dims, data });
    }
    if stored != n {
        return Err(format!("tensor {name:?} of shape {:?} needs {n} values, it holds {stored}", t.dims));
    }
    let data = match t.data_type {
        crate::proto::DATA_TYPE_FLOAT => ConstData::F32(t.float_data.clone()),
        _ => ConstData::I64(t.int64_data.clone()),
    };
    Ok(Const { dims, data })
}

/// How an nn tensor holds the elements of an ONNX value (see the module docs).
#[derive(Debug, Clone, PartialEq)]
enum Layout {
    Plain,
    Nchw,
    /// A flattened NCHW tensor of `c` channels over `h × w`.
    FlatNchw {
        c: usize,
        h: usize,
        w: usize,
    },
    /// A sequence with the time axis first in ONNX (`[time, N, features]`), batch
    /// first in nn (`[N, time, features]`).
    TimeMajor,
    /// The `Y` output of a recurrent operator, `[time, 1, N, units]` in ONNX, nn's
    /// `[N, time, units]`.
    RecurrentY,
    /// The `Y_h` output of a recurrent operator, `[1, N, units]` in ONNX, nn's
    /// `[N, units]`.
    RecurrentH,
    /// Indices (`Cast` to an integer type): ONNX's int64 values, nn's floats holding
    /// whole numbers, read only by a `Gather` from a constant table (Embedding).
    Indices,
}

impl Layout {
    /// The nn position of ONNX element `i` of a flattened sample.
    fn nn_index(&self, i: usize) -> usize {
        match *self {
            Layout::FlatNchw { c, h, w } => {
                let hw = (h * w).max(1);
                let (ci, rest) = (i / hw, i % hw);
                rest * c + ci
            }
            _ => i,
        }
    }
}

/// A value computed at run time: the nn layer (or model input) holding it.
#[derive(Debug, Clone)]
struct Dyn {
    /// The nn layer or input name.
    src: String,
    /// The nn per-sample shape.
    shape: Vec<usize>,
    /// The ONNX per-sample shape (without the batch axis).
    onnx: Vec<usize>,
    layout: Layout,
    /// Whether this value is the only use of its layer's output (so the layer may
    /// take on a bias or an activation).
    sole: bool,
}

#[derive(Debug, Clone)]
enum Val {
    Const(Const),
    Dyn(Dyn),
}

/// A BatchNormalization holding an element-wise constant, still open to folding.
#[derive(Debug, Clone, Default)]
struct Affine {
    mean: Option<Vec<f32>>,
    gamma: Option<Vec<f32>>,
    beta: Option<Vec<f32>>,
}

/// A layer being built.
struct Pending {
    name: String,
    spec: LayerSpec,
    inputs: Vec<String>,
    /// `(parameter suffix, shape, values)`.
    params: Vec<(&'static str, Vec<usize>, Vec<f32>)>,
    affine: Option<Affine>,
}

struct Importer<'g> {
    graph: &'g GraphProto,
    values: HashMap<String, Val>,
    /// How many nodes (and graph outputs) read each value.
    uses: HashMap<String, usize>,
    inputs: Vec<InputSpec>,
    layers: Vec<Pending>,
    by_name: HashMap<String, usize>,
    names: HashSet<String>,
    notes: Vec<String>,
    /// What is left of [`SYNTHESIZED_LIMIT`].
    budget: usize,
}

type R<T> = Result<T, String>;

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}
fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}
fn attr_f(n: &NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map_or(default, |a| a.f)
}
fn attr_ints<'a>(n: &'a NodeProto, name: &str) -> Option<&'a [i64]> {
    attr(n, name).map(|a| a.ints.as_slice())
}
fn attr_s(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// A size read from the file as `usize`, refusing negatives and absurd values.
fn size(v: i64, what: &str) -> R<usize> {
    if (0..=(1i64 << 31)).contains(&v) {
        Ok(v as usize)
    } else {
        Err(format!("{what} {v} is out of range"))
    }
}

/// A pair of positive sizes (kernel, strides) from a 2-element attribute.
fn pair(v: Option<&[i64]>, default: (usize, usize), what: &str) -> R<(usize, usize)> {
    match v {
        None => Ok(default),
        Some([a, b]) if *a >= 1 && *b >= 1 => Ok((size(*a, what)?, size(*b, what)?)),
        Some(other) => Err(format!("{what} {other:?}: nn takes two positive values (2-d images)")),
    }
}

fn numel(shape: &[usize]) -> R<usize> {
    nn_tensor::shape::checked_numel("onnx import", shape).map_err(|_| format!("shape {shape:?} is too large"))
}

/// An output size of a window `k`, stride `s` over `n` padded by `p`.
fn window_out(n: usize, p: usize, k: usize, s: usize) -> R<usize> {
    let padded = n.checked_add(p).ok_or("padding is too large")?;
    if padded < k {
        return Err(format!("a window of {k} does not fit {n} (padded {padded})"));
    }
    Ok((padded - k) / s + 1)
}

impl<'g> Importer<'g> {
    /// `nhwc`: the graph's 4-d inputs are NHWC (files nn exported).
    fn new(graph: &'g GraphProto, nhwc: bool) -> Result<Self, OnnxError> {
        let mut uses: HashMap<String, usize> = HashMap::new();
        for n in &graph.node {
            for i in &n.input {
                *uses.entry(i.clone()).or_default() += 1;
            }
        }
        for o in &graph.output {
            *uses.entry(o.name.clone()).or_default() += 1;
        }
        let mut im = Importer {
            graph,
            values: HashMap::new(),
            uses,
            inputs: Vec::new(),
            layers: Vec::new(),
            by_name: HashMap::new(),
            names: HashSet::new(),
            notes: Vec::new(),
            budget: SYNTHESIZED_LIMIT,
        };
        for t in &graph.initializer {
            let c = read_tensor(t).map_err(invalid)?;
            im.values.insert(t.name.clone(), Val::Const(c));
        }
        for input in &graph.input {
            if im.values.contains_key(&input.name) {
                continue; // an initializer listed as an input (IR < 4)
            }
            im.input(input, nhwc)?;
        }
        if im.inputs.is_empty() {
            return Err(invalid("the graph has no input that is not an initializer"));
        }
        Ok(im)
    }

    /// A graph input: float32, the first axis the batch, the others fixed.
    fn input(&mut self, v: &ValueInfoProto, nhwc: bool) -> Result<(), OnnxError> {
        let name = clip(&v.name);
        let t = v
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .ok_or_else(|| invalid(format!("input {name:?} is not a tensor")))?;
        if t.elem_type != crate::proto::DATA_TYPE_FLOAT {
            return Err(invalid(format!("input {name:?} has element type {}; nn reads float32 inputs", t.elem_type)));
        }
        let dims = t.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or_default();
        if dims.len() < 2 {
            return Err(invalid(format!("input {name:?} needs a batch axis and at least one more axis")));
        }
        let mut shape = Vec::new();
        for (k, d) in dims[1..].iter().enumerate() {
            match d.value {
                Some(dimension::Value::DimValue(v)) if v >= 1 => {
                    shape.push(size(v, "input dimension").map_err(|e| invalid(format!("input {name:?}: {e}")))?)
                }
                _ => {
                    return Err(invalid(format!(
                        "input {name:?}: axis {} has no fixed positive size; nn needs every axis but the batch fixed",
                        k + 1
                    )))
                }
            }
        }
        numel(&shape).map_err(|e| invalid(format!("input {name:?}: {e}")))?;
        let readers: Vec<&NodeProto> =
            self.graph.node.iter().filter(|n| n.input.iter().any(|i| i == &v.name)).collect();
        let nhwc = nhwc
            || !readers.is_empty()
                && readers.iter().all(|n| n.op_type == "Transpose" && attr_ints(n, "perm") == Some(&[0, 3, 1, 2]));
        let nn_name = self.unique(&sanitize(&v.name));
        let (nn_shape, layout) = if shape.len() == 3 && !nhwc {
            self.notes.push(format!(
                "input {:?}: ONNX's NCHW [batch, {}, {}, {}] is read as NHWC [batch, {}, {}, {}]: give nn images as height, width, channels",
                nn_name, shape[0], shape[1], shape[2], shape[1], shape[2], shape[0]
            ));
            (vec![shape[1], shape[2], shape[0]], Layout::Nchw)
        } else {
            (shape.clone(), Layout::Plain)
        };
        self.inputs.push(InputSpec { name: nn_name.clone(), shape: nn_shape.clone() });
        let sole = false;
        self.values.insert(v.name.clone(), Val::Dyn(Dyn { src: nn_name, shape: nn_shape, onnx: shape, layout, sole }));
        Ok(())
    }

    /// Takes `n` values from the budget of made-up parameters.
    fn charge(&mut self, n: usize) -> R<()> {
        self.budget = self.budget.checked_sub(n).ok_or_else(|| {
            format!("the model would need more than {SYNTHESIZED_LIMIT} parameter values the file does not hold")
        })?;
        Ok(())
    }

    /// Appends a layer named after its kind and position (made unique), indexed by
    /// name; returns the name.
    fn push_layer(
        &mut self,
        spec: LayerSpec,
        inputs: Vec<String>,
        params: Vec<(&'static str, Vec<usize>, Vec<f32>)>,
    ) -> String {
        let base = format!("{}_{}", spec.kind().to_lowercase(), self.layers.len());
        let name = self.unique(&base);
        self.by_name.insert(name.clone(), self.layers.len());
        self.layers.push(Pending { name: name.clone(), spec, inputs, params, affine: None });
        name
    }

    fn unique(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn value(&self, name: &str) -> R<&Val> {
        self.values.get(name).ok_or_else(|| format!("reads {:?}, which has no value", clip(name)))
    }

    fn dyn_in(&self, n: &NodeProto, k: usize) -> R<Dyn> {
        match n.input.get(k).map(|s| self.value(s)).transpose()? {
            Some(Val::Dyn(d)) => Ok(d.clone()),
            Some(Val::Const(_)) => Err(format!("input {k} is a constant; nn needs a computed value there")),
            None => Err(format!("has no input {k}")),
        }
    }

    fn const_in(&self, n: &NodeProto, k: usize) -> R<Option<Const>> {
        match n.input.get(k).filter(|s| !s.is_empty()).map(|s| self.value(s)).transpose()? {
            Some(Val::Const(c)) => Ok(Some(c.clone())),
            Some(Val::Dyn(_)) => Err(format!("input {k} is computed; nn needs a constant (initializer) there")),
            None => Ok(None),
        }
    }

    fn need_const(&self, n: &NodeProto, k: usize) -> R<Const> {
        self.const_in(n, k)?.ok_or_else(|| format!("has no input {k}"))
    }

    /// Whether `value` is read once and is not a graph output.
    fn sole_use(&self, value: &str) -> bool {
        self.uses.get(value).copied().unwrap_or(0) == 1
    }

    /// Records node output 0 as `d` (a relabelled or passed-on value).
    fn pass(&mut self, n: &NodeProto, mut d: Dyn) -> R<()> {
        let out = n.output.first().ok_or("has no output")?;
        d.sole = d.sole && self.sole_use(out);
        self.values.insert(out.clone(), Val::Dyn(d));
        Ok(())
    }

    /// Adds a layer reading `inputs`, its output node output 0, of nn shape `shape`,
    /// ONNX shape `onnx` and `layout`.
    #[allow(clippy::too_many_arguments)] // the output's three descriptions side by side
    fn layer(
        &mut self,
        n: &NodeProto,
        spec: LayerSpec,
        inputs: &[&Dyn],
        params: Vec<(&'static str, Vec<usize>, Vec<f32>)>,
        shape: Vec<usize>,
        onnx: Vec<usize>,
        layout: Layout,
    ) -> R<()> {
        let name = self.push_layer(spec, inputs.iter().map(|d| d.src.clone()).collect(), params);
        let out = n.output.first().ok_or("has no output")?;
        let sole = self.sole_use(out);
        self.values.insert(out.clone(), Val::Dyn(Dyn { src: name, shape, onnx, layout, sole }));
        Ok(())
    }

    /// The layer that computed `d`, when `d` is its only use.
    fn foldable(&mut self, d: &Dyn) -> Option<&mut Pending> {
        if !d.sole {
            return None;
        }
        let i = *self.by_name.get(&d.src)?;
        self.layers.get_mut(i)
    }

    fn node(&mut self, n: &NodeProto) -> R<()> {
        match n.op_type.as_str() {
            "Constant" => self.constant(n),
            "Identity" | "Dropout" => {
                match self.value(n.input.first().ok_or("has no input")?)?.clone() {
                    Val::Dyn(d) => self.pass(n, d)?,
                    Val::Const(c) => {
                        self.values.insert(n.output.first().ok_or("has no output")?.clone(), Val::Const(c));
                    }
                }
                Ok(())
            }
            "Transpose" => self.transpose(n),
            "Cast" => self.cast(n),
            "Shape" => self.shape(n),
            "Unsqueeze" => self.unsqueeze(n),
            "Gather" => self.gather(n),
            "Relu" => self.activation(n, Activation::Relu),
            "Sigmoid" => self.activation(n, Activation::Sigmoid),
            "Tanh" => self.activation(n, Activation::Tanh),
            "Softplus" => self.activation(n, Activation::Softplus),
            "Softmax" => self.softmax(n),
            "LeakyRelu" => {
                let d = self.dyn_in(n, 0)?;
                let slope = attr_f(n, "alpha", 0.01) as f64;
                let spec = LayerSpec::LeakyReLU(LeakyReluConfig { negative_slope: slope });
                self.layer(n, spec, &[&d], vec![], d.shape.clone(), d.onnx.clone(), d.layout.clone())
            }
            "Elu" => {
                let d = self.dyn_in(n, 0)?;
                let spec = LayerSpec::ELU(EluConfig { alpha: attr_f(n, "alpha", 1.0) as f64 });
                self.layer(n, spec, &[&d], vec![], d.shape.clone(), d.onnx.clone(), d.layout.clone())
            }
            "Flatten" => {
                let d = self.dyn_in(n, 0)?;
                let axis = attr_i(n, "axis", 1);
                if axis != 1 && axis != -(d.onnx.len() as i64) {
                    return Err(format!("axis {axis}: nn flattens every axis but the batch (axis 1)"));
                }
                self.flatten(n, d)
            }
            "Reshape" => self.reshape(n),
            "Gemm" => self.gemm(n),
            "MatMul" => self.matmul(n),
            "Add" | "Sub" | "Mul" | "Div" => self.arithmetic(n),
            "Max" => {
                let ds = (0..n.input.len()).map(|k| self.dyn_in(n, k)).collect::<R<Vec<_>>>()?;
                if ds.len() == 1 {
                    return self.pass(n, ds[0].clone());
                }
                self.merge(n, LayerSpec::Maximum, ds)
            }
            "Concat" => self.concat(n),
            "Conv" => self.conv(n),
            "MaxPool" | "AveragePool" => self.pool(n),
            "GlobalAveragePool" | "GlobalMaxPool" => {
                let d = self.dyn_in(n, 0)?;
                if d.layout != Layout::Nchw {
                    return Err("expects an NCHW image".into());
                }
                let c = d.onnx[0];
                self.global_pool(n, &d, n.op_type == "GlobalMaxPool", vec![c, 1, 1])
            }
            "ReduceMean" | "ReduceMax" => self.reduce(n),
            "BatchNormalization" => self.batch_norm(n),
            "LayerNormalization" => self.layer_norm(n),
            "Pad" => self.pad(n),
            "RNN" | "LSTM" | "GRU" => self.recurrent(n),
            "Squeeze" => self.squeeze(n),
            other => Err(format!("operator {other} is not supported")),
        }
    }

    fn constant(&mut self, n: &NodeProto) -> R<()> {
        let a = n.attribute.first().ok_or("has no value attribute")?;
        let c = match a.name.as_str() {
            "value" => read_tensor(a.t.as_ref().ok_or("its value holds no tensor")?)?,
            "value_float" => Const { dims: vec![], data: ConstData::F32(vec![a.f]) },
            "value_floats" => Const { dims: vec![a.floats.len()], data: ConstData::F32(a.floats.clone()) },
            "value_int" => Const { dims: vec![], data: ConstData::I64(vec![a.i]) },
            "value_ints" => Const { dims: vec![a.ints.len()], data: ConstData::I64(a.ints.clone()) },
            other => return Err(format!("attribute {other:?} is not supported")),
        };
        self.values.insert(n.output.first().ok_or("has no output")?.clone(), Val::Const(c));
        Ok(())
    }

    /// `Cast` of a computed value to int64 / int32 (indices for a `Gather`) or to
    /// float (no layer); of a constant, folded.
    fn cast(&mut self, n: &NodeProto) -> R<()> {
        let to = attr(n, "to").ok_or("has no `to` attribute")?.i as i32;
        const INT32: i32 = 6;
        let int = to == crate::proto::DATA_TYPE_INT64 || to == INT32;
        if !int && to != crate::proto::DATA_TYPE_FLOAT {
            return Err(format!("to = {to}: nn casts only to float32, int32 and int64"));
        }
        match self.value(n.input.first().ok_or("has no input")?)?.clone() {
            Val::Const(c) => {
                let data = match (c.data, int) {
                    (ConstData::F32(v), true) => ConstData::I64(v.iter().map(|&x| x as i64).collect()),
                    (ConstData::I64(v), false) => ConstData::F32(v.iter().map(|&x| x as f32).collect()),
                    (data, _) => data,
                };
                let out = n.output.first().ok_or("has no output")?.clone();
                self.values.insert(out, Val::Const(Const { dims: c.dims, data }));
                Ok(())
            }
            Val::Dyn(mut d) => {
                match (&d.layout, int) {
                    (Layout::Plain, false) | (Layout::Indices, true) => {}
                    (Layout::Plain, true) if d.onnx == d.shape => d.layout = Layout::Indices,
                    (Layout::Indices, false) => {
                        return Err("casting indices back to float (rounding toward zero) has no nn layer".into())
                    }
                    _ => return Err(format!("casting a value of shape {:?} in this layout is not supported", d.onnx)),
                }
                self.pass(n, d)
            }
        }
    }

    /// `Shape` of a computed value: a constant (the batch size as [`BATCH`]), for
    /// the `Gather` / `Unsqueeze` / `Concat` chains PyTorch writes before `Reshape`.
    fn shape(&mut self, n: &NodeProto) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        if !matches!(d.layout, Layout::Plain | Layout::Nchw | Layout::FlatNchw { .. } | Layout::Indices) {
            return Err("the shape of a recurrent value in ONNX's time-major layout is not supported".into());
        }
        let full: Vec<i64> = std::iter::once(BATCH).chain(d.onnx.iter().map(|&x| x as i64)).collect();
        let rank = full.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
        let start = clamp(attr_i(n, "start", 0));
        let end = clamp(attr_i(n, "end", rank)).max(start);
        let v = full[start..end].to_vec();
        let out = n.output.first().ok_or("has no output")?.clone();
        self.values.insert(out, Val::Const(Const { dims: vec![v.len()], data: ConstData::I64(v) }));
        Ok(())
    }

    /// `Unsqueeze` of a constant (folded).
    fn unsqueeze(&mut self, n: &NodeProto) -> R<()> {
        let c = match self.value(n.input.first().ok_or("has no input")?)? {
            Val::Const(c) => c.clone(),
            Val::Dyn(_) => return Err("unsqueezing a computed value has no nn layer".into()),
        };
        let axes: Vec<i64> = match attr_ints(n, "axes") {
            Some(a) => a.to_vec(),
            None => self.need_const(n, 1)?.ints()?.to_vec(),
        };
        let rank = (c.dims.len() + axes.len()) as i64;
        let mut axes: Vec<usize> = axes
            .iter()
            .map(|&a| if a < 0 { a + rank } else { a })
            .map(|a| if (0..rank).contains(&a) { Ok(a as usize) } else { Err(format!("axis {a} is out of range")) })
            .collect::<R<_>>()?;
        axes.sort_unstable();
        axes.dedup();
        let mut dims = c.dims.clone();
        for a in axes {
            if a > dims.len() {
                return Err("axes out of range".into());
            }
            dims.insert(a, 1);
        }
        let out = n.output.first().ok_or("has no output")?.clone();
        self.values.insert(out, Val::Const(Const { dims, data: c.data }));
        Ok(())
    }

    /// `Gather` of constants on axis 0 (folded: the shape chains PyTorch writes).
    fn gather_const(&mut self, n: &NodeProto, data: Const, idx: Const) -> R<()> {
        if attr_i(n, "axis", 0) != 0 || data.dims.len() != 1 {
            return Err("folds only a Gather on axis 0 of a 1-d constant".into());
        }
        let len = data.dims[0] as i64;
        let at = idx
            .ints()?
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + len } else { i };
                if (0..len).contains(&j) {
                    Ok(j as usize)
                } else {
                    Err(format!("index {i} is out of range"))
                }
            })
            .collect::<R<Vec<_>>>()?;
        let values = match &data.data {
            ConstData::I64(v) => ConstData::I64(at.iter().map(|&j| v[j]).collect()),
            ConstData::F32(v) => ConstData::F32(at.iter().map(|&j| v[j]).collect()),
        };
        let out = n.output.first().ok_or("has no output")?.clone();
        self.values.insert(out, Val::Const(Const { dims: idx.dims, data: values }));
        Ok(())
    }

    /// `Gather` on axis 0 of a constant `[input_dim, output_dim]` table by computed
    /// indices: an Embedding. nn's Embedding refuses indices that are not whole
    /// numbers, where ONNX's `Cast` rounds them toward zero.
    fn gather(&mut self, n: &NodeProto) -> R<()> {
        let table = self.need_const(n, 0)?;
        if let Some(Val::Const(idx)) = n.input.get(1).map(|s| self.value(s)).transpose()? {
            let idx = idx.clone();
            return self.gather_const(n, table, idx);
        }
        let d = self.dyn_in(n, 1)?;
        if attr_i(n, "axis", 0) != 0 {
            return Err(format!("axis {}: nn gathers rows of a table (axis 0)", attr_i(n, "axis", 0)));
        }
        if d.layout != Layout::Indices {
            return Err("expects indices cast from a model input (Cast to int64)".into());
        }
        let (input_dim, output_dim) = match table.dims.as_slice() {
            &[v, e] if v > 0 && e > 0 => (v, e),
            other => return Err(format!("a table of shape {other:?}: nn's Embedding takes [input_dim, output_dim]")),
        };
        let values = table.floats()?.to_vec();
        let mut shape = d.shape.clone();
        shape.push(output_dim);
        numel(&shape)?;
        let spec = LayerSpec::Embedding(nn_layers::EmbeddingConfig::new(input_dim, output_dim));
        let params = vec![("embeddings", vec![input_dim, output_dim], values)];
        if !self.notes.iter().any(|s| s.starts_with("Embedding")) {
            self.notes.push(
                "Embedding: indices must be whole numbers in [0, input_dim); ONNX's Cast would round others toward zero"
                    .into(),
            );
        }
        self.layer(n, spec, &[&d], params, shape.clone(), shape, Layout::Plain)
    }

    fn transpose(&mut self, n: &NodeProto) -> R<()> {
        let mut d = self.dyn_in(n, 0)?;
        let perm = attr_ints(n, "perm").ok_or("a Transpose without perm is not supported")?;
        let identity: Vec<i64> = (0..=d.onnx.len() as i64).collect();
        if perm == identity.as_slice() {
            return self.pass(n, d);
        }
        match (&d.layout, perm) {
            (Layout::Plain, [0, 3, 1, 2]) if d.onnx.len() == 3 && d.onnx == d.shape => {
                d.layout = Layout::Nchw;
                d.onnx = vec![d.shape[2], d.shape[0], d.shape[1]];
            }
            (Layout::Nchw, [0, 2, 3, 1]) => {
                d.layout = Layout::Plain;
                d.onnx = d.shape.clone();
            }
            (Layout::Plain, [1, 0, 2]) if d.onnx.len() == 2 && d.onnx == d.shape => d.layout = Layout::TimeMajor,
            (Layout::TimeMajor, [1, 0, 2]) => d.layout = Layout::Plain,
            _ => {
                return Err(format!(
                    "perm {perm:?} on a value of shape {:?}: nn imports only the NHWC ↔ NCHW transposes around images",
                    d.onnx
                ))
            }
        }
        self.pass(n, d)
    }

    fn activation(&mut self, n: &NodeProto, act: Activation) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        if act != Activation::Softplus {
            if let Some(p) = self.foldable(&d) {
                match &mut p.spec {
                    LayerSpec::Dense(c) if c.activation == Activation::Linear && p.affine.is_none() => {
                        c.activation = act;
                        return self.pass(n, d);
                    }
                    LayerSpec::Conv2D(c) if c.activation == Activation::Linear && act != Activation::Softmax => {
                        c.activation = act;
                        return self.pass(n, d);
                    }
                    _ => {}
                }
            }
        }
        let spec = LayerSpec::Activation(ActivationConfig { activation: act });
        self.layer(n, spec, &[&d], vec![], d.shape.clone(), d.onnx.clone(), d.layout.clone())
    }

    fn softmax(&mut self, n: &NodeProto) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        let rank = d.onnx.len() as i64 + 1;
        let mut axis = attr_i(n, "axis", -1);
        if axis < 0 {
            axis += rank;
        }
        let last_axis = match d.layout {
            Layout::Plain => d.onnx == d.shape && axis == rank - 1,
            Layout::Nchw => axis == 1,
            Layout::FlatNchw { .. } => axis == 1,
            _ => false,
        };
        if !last_axis {
            return Err(format!("axis {axis} of a value of shape {:?}: nn's softmax runs over the features", d.onnx));
        }
        self.activation(n, Activation::Softmax)
    }

    /// `d` flattened to `[batch, n]` in ONNX's order.
    fn flatten(&mut self, n: &NodeProto, d: Dyn) -> R<()> {
        let total = numel(&d.shape)?;
        match d.layout {
            Layout::Plain if d.shape.len() == 1 => {
                let mut d = d;
                d.onnx = d.shape.clone();
                self.pass(n, d)
            }
            Layout::Plain => self.layer(n, LayerSpec::Flatten, &[&d], vec![], vec![total], vec![total], Layout::Plain),
            Layout::FlatNchw { .. } => self.pass(n, d),
            Layout::TimeMajor | Layout::RecurrentY | Layout::RecurrentH => {
                Err("flattening a time-major sequence has no nn equivalent".into())
            }
            Layout::Indices => Err("flattening indices is not supported".into()),
            Layout::Nchw => {
                let (h, w, c) = (d.shape[0], d.shape[1], d.shape[2]);
                let layout = if c == 1 || h * w == 1 { Layout::Plain } else { Layout::FlatNchw { c, h, w } };
                self.layer(n, LayerSpec::Flatten, &[&d], vec![], vec![total], vec![total], layout)
            }
        }
    }

    fn reshape(&mut self, n: &NodeProto) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        let shape = self.need_const(n, 1)?;
        let mut t = shape.ints()?.to_vec();
        if t.first() == Some(&BATCH) {
            t[0] = 0; // the batch size read by `Shape`: kept
        }
        if t.contains(&BATCH) {
            return Err("the batch size on an axis other than the first: nn keeps the batch axis first".into());
        }
        let t = t.as_slice();
        let allowzero = attr_i(n, "allowzero", 0) != 0;
        let full: Vec<usize> = std::iter::once(1).chain(d.onnx.iter().copied()).collect();
        let count = numel(&d.onnx)?;
        let first = *t.first().ok_or("an empty target shape")?;
        if !(first == 0 && !allowzero || first == -1) {
            return Err(format!("target shape {t:?}: nn keeps the batch axis first (0 or -1 there)"));
        }
        let mut target = Vec::with_capacity(t.len().min(16));
        let mut infer = None;
        for (k, &v) in t.iter().enumerate().skip(1) {
            match v {
                0 if !allowzero => target.push(*full.get(k).ok_or("a 0 past the input's axes")?),
                -1 if infer.is_none() && first != -1 => {
                    infer = Some(target.len());
                    target.push(1);
                }
                v if v >= 1 => target.push(size(v, "target dimension")?),
                v => return Err(format!("target shape {t:?}: dimension {v} is not supported")),
            }
        }
        if target.is_empty() {
            return Err(format!("target shape {t:?}: nn keeps at least one axis besides the batch"));
        }
        let known = numel(&target)?;
        if let Some(k) = infer {
            if known == 0 || count % known != 0 {
                return Err(format!("target shape {t:?} does not fit {count} values per sample"));
            }
            target[k] = count / known;
        }
        if numel(&target)? != count {
            return Err(format!("target shape {t:?} does not hold the {count} values of shape {:?}", d.onnx));
        }
        match d.layout {
            Layout::Nchw | Layout::FlatNchw { .. } if target.len() == 1 => self.flatten(n, d),
            Layout::FlatNchw { c, h, w } if target == [c, h, w] => {
                let spec = reshape_spec(&[h, w, c])?;
                self.layer(n, spec, &[&d], vec![], vec![h, w, c], target, Layout::Nchw)
            }
            Layout::Plain if target == d.shape => {
                let mut d = d;
                d.onnx = target;
                self.pass(n, d)
            }
            Layout::Plain => {
                let spec = reshape_spec(&target)?;
                self.layer(n, spec, &[&d], vec![], target.clone(), target, Layout::Plain)
            }
            _ => Err(format!("reshaping an NCHW image of shape {:?} to {target:?} has no NHWC equivalent", d.onnx)),
        }
    }

    /// A Dense layer from a `[k, m]` kernel (ONNX's row order) reading `d`.
    fn dense(&mut self, n: &NodeProto, d: &Dyn, k: usize, m: usize, kernel: Vec<f32>, bias: Option<Vec<f32>>) -> R<()> {
        let last = *d.shape.last().ok_or("an input without features")?;
        let flat_ok = matches!(d.layout, Layout::FlatNchw { .. }) || d.layout == Layout::Plain && d.onnx == d.shape;
        if last != k || !flat_ok {
            return Err(format!("weights of {k} rows do not fit an input of shape {:?}", d.onnx));
        }
        let kernel = if let Layout::FlatNchw { .. } = d.layout {
            let mut out = vec![0f32; kernel.len()];
            for i in 0..k {
                let j = d.layout.nn_index(i);
                out[j * m..(j + 1) * m].copy_from_slice(&kernel[i * m..(i + 1) * m]);
            }
            out
        } else {
            kernel
        };
        let mut shape = d.shape.clone();
        *shape.last_mut().expect("checked") = m;
        let mut params = vec![("kernel", vec![k, m], kernel)];
        let spec = LayerSpec::Dense(DenseConfig::new(m).with_bias(bias.is_some()));
        if let Some(b) = bias {
            params.push(("bias", vec![m], b));
        }
        self.layer(n, spec, &[d], params, shape.clone(), shape, Layout::Plain)
    }

    fn gemm(&mut self, n: &NodeProto) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        if attr_i(n, "transA", 0) != 0 {
            return Err("transA = 1 is not supported".into());
        }
        if d.shape.len() != 1 {
            return Err(format!("expects [batch, features] input, got per-sample shape {:?}", d.onnx));
        }
        let b = self.need_const(n, 1)?;
        let (alpha, beta) = (attr_f(n, "alpha", 1.0), attr_f(n, "beta", 1.0));
        let trans = attr_i(n, "transB", 0) != 0;
        let (k, m) = match b.dims.as_slice() {
            &[r, c] if trans => (c, r),
            &[r, c] => (r, c),
            other => return Err(format!("B of shape {other:?}: expects a matrix")),
        };
        let bv = b.floats()?;
        let mut kernel = vec![0f32; bv.len()];
        for i in 0..k {
            for j in 0..m {
                let v = if trans { bv[j * k + i] } else { bv[i * m + j] };
                kernel[i * m + j] = if alpha == 1.0 { v } else { alpha * v };
            }
        }
        let bias = match self.const_in(n, 2)? {
            None => None,
            Some(c) => {
                let v =
                    broadcast_vector(&c, m).ok_or_else(|| format!("C of shape {:?} is not a [{m}] bias", c.dims))?;
                Some(if beta == 1.0 { v } else { v.into_iter().map(|x| beta * x).collect() })
            }
        };
        self.dense(n, &d, k, m, kernel, bias)
    }

    fn matmul(&mut self, n: &NodeProto) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        let b = self.need_const(n, 1)?;
        let (k, m) = match b.dims.as_slice() {
            &[r, c] => (r, c),
            other => return Err(format!("B of shape {other:?}: nn takes a constant matrix")),
        };
        self.dense(n, &d, k, m, b.floats()?.to_vec(), None)
    }

    fn arithmetic(&mut self, n: &NodeProto) -> R<()> {
        if n.input.len() != 2 {
            return Err("expects two inputs".into());
        }
        let a = self.value(&n.input[0])?.clone();
        let b = self.value(&n.input[1])?.clone();
        let op = n.op_type.as_str();
        match (a, b) {
            (Val::Dyn(x), Val::Dyn(y)) => {
                let spec = match op {
                    "Add" => LayerSpec::Add,
                    "Sub" => LayerSpec::Subtract,
                    "Mul" => LayerSpec::Multiply,
                    _ => return Err("division of two computed values has no nn layer".into()),
                };
                self.merge(n, spec, vec![x, y])
            }
            (Val::Dyn(x), Val::Const(c)) => {
                let v = self.feature_vector(&x, &c)?;
                match op {
                    "Add" => self.affine(n, x, None, None, Some(v)),
                    "Sub" => self.affine(n, x, Some(v), None, None),
                    "Mul" => self.affine(n, x, None, Some(v), None),
                    _ => {
                        let inv = v.iter().map(|&s| 1.0 / s).collect();
                        self.affine(n, x, None, Some(inv), None)
                    }
                }
            }
            (Val::Const(c), Val::Dyn(x)) => {
                let v = self.feature_vector(&x, &c)?;
                match op {
                    "Add" => self.affine(n, x, None, None, Some(v)),
                    "Mul" => self.affine(n, x, None, Some(v), None),
                    "Sub" => {
                        let m = x.shape.last().copied().unwrap_or(1);
                        self.affine(n, x, None, Some(vec![-1.0; m]), Some(v))
                    }
                    _ => Err("dividing a constant by a computed value has no nn layer".into()),
                }
            }
            (Val::Const(_), Val::Const(_)) => {
                Err("arithmetic on two constants is not folded; fold it before export".into())
            }
        }
    }

    /// The constant `c` as one value per nn feature (the last axis) of `d`.
    fn feature_vector(&mut self, d: &Dyn, c: &Const) -> R<Vec<f32>> {
        let v = c.floats()?;
        let features = *d.shape.last().ok_or("an input without features")?;
        let dims: Vec<usize> = c.dims.iter().copied().skip_while(|&x| x == 1).collect();
        if c.dims.len() > d.onnx.len() + 1 {
            return Err(format!("constant of shape {:?} has more axes than the value", c.dims));
        }
        if v.len() == 1 {
            self.charge(features)?;
            return Ok(vec![v[0]; features]);
        }
        let ok = match d.layout {
            Layout::Plain => d.onnx == d.shape && dims == [features],
            Layout::Nchw => dims == [features, 1, 1],
            Layout::FlatNchw { .. } => dims == [features],
            _ => false,
        };
        if !ok {
            return Err(format!(
                "constant of shape {:?} on a value of shape {:?}: nn applies constants per feature (a scalar, [features], or [C, 1, 1] over an NCHW image)",
                c.dims, d.onnx
            ));
        }
        let mut out = vec![0f32; features];
        for (i, &x) in v.iter().enumerate() {
            out[d.layout.nn_index(i)] = x;
        }
        Ok(out)
    }

    /// `(x − mean) · gamma + beta`, folded into `d`'s layer when it can be: a bias of
    /// a Dense or Conv2D without one, or an open slot of an earlier constant's layer.
    fn affine(
        &mut self,
        n: &NodeProto,
        d: Dyn,
        mean: Option<Vec<f32>>,
        gamma: Option<Vec<f32>>,
        beta: Option<Vec<f32>>,
    ) -> R<()> {
        if let Some(p) = self.foldable(&d) {
            if let (None, None, Some(b)) = (&mean, &gamma, &beta) {
                let takes_bias = match &mut p.spec {
                    LayerSpec::Dense(c) if !c.use_bias && c.activation == Activation::Linear => {
                        c.use_bias = true;
                        true
                    }
                    LayerSpec::Conv2D(c) if !c.use_bias && c.activation == Activation::Linear => {
                        c.use_bias = true;
                        true
                    }
                    _ => false,
                };
                if takes_bias {
                    p.params.push(("bias", vec![b.len()], b.clone()));
                    return self.pass(n, d);
                }
                if let LayerSpec::Dense(c) = &p.spec {
                    if c.use_bias && c.activation == Activation::Linear {
                        if let Some((_, _, bias)) = p.params.iter_mut().find(|q| q.0 == "bias") {
                            // A second bias: ONNX adds it after the first.
                            bias.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                            return self.pass(n, d);
                        }
                    }
                }
            }
            if let Some(a) = &mut p.affine {
                let fits = match (&mean, &gamma, &beta) {
                    (Some(_), None, None) => a.mean.is_none() && a.gamma.is_none() && a.beta.is_none(),
                    (None, Some(_), None) => a.gamma.is_none() && a.beta.is_none(),
                    (None, None, Some(_)) => a.beta.is_none(),
                    _ => false,
                };
                if fits {
                    a.mean = a.mean.take().or(mean);
                    a.gamma = a.gamma.take().or(gamma);
                    a.beta = a.beta.take().or(beta);
                    return self.pass(n, d);
                }
            }
        }
        self.charge(d.shape.last().copied().unwrap_or(0).saturating_mul(4))?;
        let spec = LayerSpec::BatchNormalization(BatchNormConfig::default());
        self.layer(n, spec, &[&d], vec![], d.shape.clone(), d.onnx.clone(), d.layout.clone())?;
        self.layers.last_mut().expect("just added").affine = Some(Affine { mean, gamma, beta });
        Ok(())
    }

    fn merge(&mut self, n: &NodeProto, spec: LayerSpec, ds: Vec<Dyn>) -> R<()> {
        let first = ds.first().ok_or("has no input")?;
        if ds.iter().any(|d| d.shape != first.shape || d.layout != first.layout || d.onnx != first.onnx) {
            let shapes: Vec<_> = ds.iter().map(|d| d.onnx.clone()).collect();
            return Err(format!("inputs of shapes {shapes:?}: nn merges values of one shape (no broadcasting)"));
        }
        let refs: Vec<&Dyn> = ds.iter().collect();
        self.layer(n, spec, &refs, vec![], first.shape.clone(), first.onnx.clone(), first.layout.clone())
    }

    fn concat(&mut self, n: &NodeProto) -> R<()> {
        let consts: Vec<Const> = n
            .input
            .iter()
            .filter_map(|s| match self.values.get(s) {
                Some(Val::Const(c)) => Some(c.clone()),
                _ => None,
            })
            .collect();
        if !consts.is_empty() && consts.len() == n.input.len() {
            // A shape being put together (folded): 1-d int64 constants.
            if consts.iter().any(|c| c.dims.len() != 1) || attr_i(n, "axis", 0) != 0 && attr_i(n, "axis", 0) != -1 {
                return Err("folds only the concatenation of 1-d constants".into());
            }
            // Charged before allocating: a chain of Concats could double a shape each time.
            let total = consts.iter().try_fold(0usize, |t, c| t.checked_add(c.ints().map_or(0, <[i64]>::len)));
            self.charge(total.ok_or("too large")?)?;
            let mut v = Vec::new();
            for c in &consts {
                v.extend_from_slice(c.ints()?);
            }
            let out = n.output.first().ok_or("has no output")?.clone();
            self.values.insert(out, Val::Const(Const { dims: vec![v.len()], data: ConstData::I64(v) }));
            return Ok(());
        }
        let ds = (0..n.input.len()).map(|k| self.dyn_in(n, k)).collect::<R<Vec<_>>>()?;
        if ds.len() < 2 {
            return self.pass(n, ds.into_iter().next().ok_or("has no input")?);
        }
        let first = ds[0].clone();
        let rank = first.onnx.len() as i64 + 1;
        let mut axis = attr_i(n, "axis", 1);
        if axis < 0 {
            axis += rank;
        }
        if axis <= 0 || axis >= rank {
            return Err(format!("axis {axis} of rank-{rank} values: nn joins along an axis after the batch"));
        }
        let nn_axis = match first.layout {
            Layout::Plain => axis,
            Layout::Nchw => [0, 3, 1, 2][axis as usize],
            Layout::FlatNchw { .. } => return Err("joining flattened NCHW images is not supported".into()),
            _ => return Err("joining recurrent outputs in ONNX's time-major layout is not supported".into()),
        };
        if ds.iter().any(|d| d.layout != first.layout || (d.layout == Layout::Plain && d.onnx != d.shape)) {
            return Err("inputs of different layouts".into());
        }
        let a = nn_axis as usize - 1;
        let mut shape = first.shape.clone();
        for d in &ds[1..] {
            if d.shape.len() != shape.len()
                || d.shape.iter().zip(&shape).enumerate().any(|(k, (x, y))| k != a && x != y)
            {
                return Err("inputs differ on an axis other than the joined one".into());
            }
            shape[a] = shape[a].checked_add(d.shape[a]).ok_or("too large")?;
        }
        let oa = axis as usize - 1;
        let mut onnx = first.onnx.clone();
        onnx[oa] = ds.iter().map(|d| d.onnx[oa]).sum();
        let refs: Vec<&Dyn> = ds.iter().collect();
        let spec = LayerSpec::Concatenate(ConcatenateConfig { axis: nn_axis });
        self.layer(n, spec, &refs, vec![], shape, onnx, first.layout.clone())
    }

    /// `[top, left, bottom, right]` of an ONNX `pads` / `auto_pad` pair.
    fn pads(&self, n: &NodeProto, hw: (usize, usize), k: (usize, usize), s: (usize, usize)) -> R<[usize; 4]> {
        let auto = attr_s(n, "auto_pad").unwrap_or_default();
        match auto.as_str() {
            "" | "NOTSET" => match attr_ints(n, "pads") {
                None => Ok([0; 4]),
                Some(&[t, l, b, r]) => Ok([size(t, "pad")?, size(l, "pad")?, size(b, "pad")?, size(r, "pad")?]),
                Some(other) => Err(format!("pads {other:?}: expects four values")),
            },
            "VALID" => Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let p = resolve_pads(PaddingMode::Same, hw, k, s);
                let p = p.map(|v| v as usize);
                Ok(if auto == "SAME_UPPER" { p } else { [p[2], p[3], p[0], p[1]] })
            }
            other => Err(format!("auto_pad {other:?} is not supported")),
        }
    }

    fn conv(&mut self, n: &NodeProto) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        if d.layout != Layout::Nchw {
            return Err(format!("expects an NCHW image, got a value of shape {:?}", d.onnx));
        }
        if attr_i(n, "group", 1) != 1 {
            return Err(format!("group = {}: nn has no grouped convolution", attr_i(n, "group", 1)));
        }
        if attr_ints(n, "dilations").is_some_and(|v| v.iter().any(|&x| x != 1)) {
            return Err("dilations other than 1 are not supported".into());
        }
        let w = self.need_const(n, 1)?;
        let (f, c, kh, kw) = match w.dims.as_slice() {
            &[f, c, kh, kw] => (f, c, kh, kw),
            other => return Err(format!("W of shape {other:?}: nn convolves 2-d images ([f, c, kh, kw])")),
        };
        let (h, wd, ch) = (d.shape[0], d.shape[1], d.shape[2]);
        if c != ch || kh == 0 || kw == 0 || f == 0 {
            return Err(format!("W of shape {:?} does not fit an image of {ch} channels", w.dims));
        }
        if let Some(ks) = attr_ints(n, "kernel_shape") {
            if ks != [kh as i64, kw as i64] {
                return Err(format!("kernel_shape {ks:?} disagrees with W of shape {:?}", w.dims));
            }
        }
        let s = pair(attr_ints(n, "strides"), (1, 1), "strides")?;
        let pads = self.pads(n, (h, wd), (kh, kw), s)?;
        let wv = w.floats()?;
        let mut kernel = vec![0f32; wv.len()];
        for fo in 0..f {
            for ci in 0..c {
                for i in 0..kh {
                    for j in 0..kw {
                        kernel[((i * kw + j) * c + ci) * f + fo] = wv[((fo * c + ci) * kh + i) * kw + j];
                    }
                }
            }
        }
        let mut params = vec![("kernel", vec![kh, kw, c, f], kernel)];
        let bias = match self.const_in(n, 2)? {
            Some(b) => Some(broadcast_vector(&b, f).ok_or_else(|| format!("B of shape {:?} is not [{f}]", b.dims))?),
            None => None,
        };
        let (d, padding) = self.padding_for(d, pads, (kh, kw), s, true, false)?;
        let oh = window_out(d.shape[0], padding_total(padding, &d, (kh, kw), s, 0), kh, s.0)?;
        let ow = window_out(d.shape[1], padding_total(padding, &d, (kh, kw), s, 1), kw, s.1)?;
        let mut cfg = Conv2DConfig::new(f, (kh, kw)).with_strides(s).with_padding(padding).with_bias(bias.is_some());
        cfg.activation = Activation::Linear;
        if let Some(b) = bias {
            params.push(("bias", vec![f], b));
        }
        self.layer(n, LayerSpec::Conv2D(cfg), &[&d], params, vec![oh, ow, f], vec![f, oh, ow], Layout::Nchw)
    }

    /// nn's padding mode for ONNX pads: `valid`, `same` (when they are nn's `same`),
    /// or (with `zero_ok`) a ZeroPadding2D layer before a `valid` window.
    fn padding_for(
        &mut self,
        d: Dyn,
        pads: [usize; 4],
        k: (usize, usize),
        s: (usize, usize),
        zero_ok: bool,
        never_same: bool,
    ) -> R<(Dyn, PaddingMode)> {
        let (h, w) = (d.shape[0], d.shape[1]);
        if pads == [0; 4] {
            return Ok((d, PaddingMode::Valid));
        }
        if !never_same && resolve_pads(PaddingMode::Same, (h, w), k, s).map(|v| v as usize) == pads {
            return Ok((d, PaddingMode::Same));
        }
        if !zero_ok {
            return Err(format!(
                "pads {pads:?} are neither none nor nn's `same`; nn cannot pad with −∞ or leave pads out of averages"
            ));
        }
        let [t, l, b, r] = pads;
        let ph = h.checked_add(t + b).ok_or("pads too large")?;
        let pw = w.checked_add(l + r).ok_or("pads too large")?;
        let c = d.shape[2];
        numel(&[ph, pw, c])?;
        let spec = LayerSpec::ZeroPadding2D(ZeroPadding2DConfig {
            padding: Padding2D { top: t, bottom: b, left: l, right: r },
        });
        let name = self.push_layer(spec, vec![d.src.clone()], vec![]);
        let padded =
            Dyn { src: name, shape: vec![ph, pw, c], onnx: vec![c, ph, pw], layout: Layout::Nchw, sole: false };
        Ok((padded, PaddingMode::Valid))
    }

    fn pool(&mut self, n: &NodeProto) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        if d.layout != Layout::Nchw {
            return Err(format!("expects an NCHW image, got a value of shape {:?}", d.onnx));
        }
        let max = n.op_type == "MaxPool";
        if attr_i(n, "ceil_mode", 0) != 0 {
            return Err("ceil_mode = 1 is not supported".into());
        }
        if attr_ints(n, "dilations").is_some_and(|v| v.iter().any(|&x| x != 1)) {
            return Err("dilations other than 1 are not supported".into());
        }
        if n.output.len() > 1 && n.output[1..].iter().any(|o| !o.is_empty()) {
            return Err("the Indices output is not supported".into());
        }
        let k = pair(attr_ints(n, "kernel_shape"), (0, 0), "kernel_shape")?;
        if k.0 == 0 {
            return Err("has no kernel_shape".into());
        }
        let s = pair(attr_ints(n, "strides"), (1, 1), "strides")?;
        let pads = self.pads(n, (d.shape[0], d.shape[1]), k, s)?;
        let include_pad = !max && attr_i(n, "count_include_pad", 0) != 0;
        // nn's `same` averages leave the padding out: with count_include_pad the
        // zeros are a ZeroPadding2D layer before a `valid` window.
        let (d, padding) = self.padding_for(d, pads, k, s, include_pad, include_pad)?;
        self.pool_layer(n, d, max, k, s, padding)
    }

    fn pool_layer(
        &mut self,
        n: &NodeProto,
        d: Dyn,
        max: bool,
        k: (usize, usize),
        s: (usize, usize),
        padding: PaddingMode,
    ) -> R<()> {
        let oh = window_out(d.shape[0], padding_total(padding, &d, k, s, 0), k.0, s.0)?;
        let ow = window_out(d.shape[1], padding_total(padding, &d, k, s, 1), k.1, s.1)?;
        let cfg = Pool2DConfig::new(k).with_strides(s).with_padding(padding);
        let spec = if max { LayerSpec::MaxPool2D(cfg) } else { LayerSpec::AvgPool2D(cfg) };
        let c = d.shape[2];
        self.layer(n, spec, &[&d], vec![], vec![oh, ow, c], vec![c, oh, ow], Layout::Nchw)
    }

    fn global_pool(&mut self, n: &NodeProto, d: &Dyn, max: bool, onnx: Vec<usize>) -> R<()> {
        let spec = if max { LayerSpec::GlobalMaxPooling2D } else { LayerSpec::GlobalAveragePooling2D };
        let c = d.shape[2];
        self.layer(n, spec, &[d], vec![], vec![c], onnx, Layout::Plain)
    }

    fn reduce(&mut self, n: &NodeProto) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        let axes: Vec<i64> = match attr_ints(n, "axes") {
            Some(a) => a.to_vec(),
            None => self.const_in(n, 1)?.map(|c| c.ints().map(<[i64]>::to_vec)).transpose()?.unwrap_or_default(),
        };
        let rank = d.onnx.len() as i64 + 1;
        let mut axes: Vec<i64> = axes.iter().map(|&a| if a < 0 { a + rank } else { a }).collect();
        axes.sort_unstable();
        let keep = attr_i(n, "keepdims", 1) != 0;
        let max = n.op_type == "ReduceMax";
        if rank != 4 {
            return Err(format!("axes {axes:?} of a value of shape {:?}: nn reduces only the image axes", d.onnx));
        }
        match (&d.layout, axes.as_slice()) {
            (Layout::Plain, [1, 2]) if d.onnx == d.shape => {
                let c = d.shape[2];
                self.global_pool(n, &d, max, if keep { vec![1, 1, c] } else { vec![c] })
            }
            (Layout::Nchw, [2, 3]) => {
                let c = d.shape[2];
                self.global_pool(n, &d, max, if keep { vec![c, 1, 1] } else { vec![c] })
            }
            _ => Err(format!("axes {axes:?} of a value of shape {:?}: nn reduces only the image axes", d.onnx)),
        }
    }

    fn batch_norm(&mut self, n: &NodeProto) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        if attr_i(n, "training_mode", 0) != 0 || n.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err("training mode is not supported: nn imports inference graphs".into());
        }
        let per_channel = d.layout == Layout::Nchw || (d.layout == Layout::Plain && d.shape.len() == 1);
        if !per_channel {
            return Err(format!(
                "a value of shape {:?}: nn normalises the channel axis of NCHW images or features",
                d.onnx
            ));
        }
        let c = *d.shape.last().ok_or("an input without features")?;
        let mut params = Vec::new();
        for (k, name) in [(1, "gamma"), (2, "beta"), (3, "moving_mean"), (4, "moving_variance")] {
            let t = self.need_const(n, k)?;
            let v = t.floats()?;
            if v.len() != c {
                return Err(format!("{name} has {} values for {c} channels", v.len()));
            }
            params.push((name, vec![c], v.to_vec()));
        }
        let eps = attr_f(n, "epsilon", 1e-5) as f64;
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(format!("epsilon {eps} must be positive"));
        }
        let spec = LayerSpec::BatchNormalization(BatchNormConfig::default().with_epsilon(eps));
        self.layer(n, spec, &[&d], params, d.shape.clone(), d.onnx.clone(), d.layout.clone())
    }

    fn layer_norm(&mut self, n: &NodeProto) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        let rank = d.onnx.len() as i64 + 1;
        let axis = attr_i(n, "axis", -1);
        if !(axis == -1 || axis == rank - 1) || d.layout != Layout::Plain || d.onnx != d.shape {
            return Err(format!("axis {axis} of a value of shape {:?}: nn normalises the last axis", d.onnx));
        }
        if n.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err("the Mean and InvStdDev outputs are not supported".into());
        }
        let c = *d.shape.last().ok_or("an input without features")?;
        self.charge(c.saturating_mul(2))?;
        let mut params = Vec::new();
        for (k, name) in [(1, "gamma"), (2, "beta")] {
            if let Some(t) = self.const_in(n, k)? {
                let v = broadcast_vector(&t, c).ok_or_else(|| format!("{name} of shape {:?} is not [{c}]", t.dims))?;
                params.push((name, vec![c], v));
            }
        }
        let eps = attr_f(n, "epsilon", 1e-5) as f64;
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(format!("epsilon {eps} must be positive"));
        }
        let has = |k: &str| params.iter().any(|p: &(&str, Vec<usize>, Vec<f32>)| p.0 == k);
        let cfg =
            nn_layers::LayerNormConfig::default().with_epsilon(eps).with_scale(has("gamma")).with_center(has("beta"));
        let spec = LayerSpec::LayerNormalization(cfg);
        self.layer(n, spec, &[&d], params, d.shape.clone(), d.onnx.clone(), d.layout.clone())
    }

    /// ONNX's `RNN`, `LSTM` or `GRU` (one forward direction, zero initial state, the
    /// default activations; GRU with `linear_before_reset = 1`) as SimpleRNN, LSTM or
    /// GRU: the inverse of the exporter's mapping (ONNX's gate blocks `i, o, f, c`
    /// back to Keras's `i, f, c̃, o`, each block transposed; the input and recurrent
    /// biases summed, GRU's kept as its two rows).
    fn recurrent(&mut self, n: &NodeProto) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        if d.layout != Layout::TimeMajor {
            return Err(format!("expects a [time, batch, features] sequence, got a value of shape {:?}", d.onnx));
        }
        for k in 4..n.input.len() {
            if !n.input[k].is_empty() {
                return Err("sequence lengths, initial states and peepholes are not supported".into());
            }
        }
        let dir = attr_s(n, "direction").unwrap_or_else(|| "forward".into());
        if dir != "forward"
            || attr(n, "clip").is_some()
            || attr_i(n, "layout", 0) != 0
            || attr_i(n, "input_forget", 0) != 0
        {
            return Err("only one forward direction without clip, layout 0, is supported".into());
        }
        let (gates, order, defaults): (usize, &[usize], &[&str]) = match n.op_type.as_str() {
            "RNN" => (1, &[0], &["Tanh"]),
            "LSTM" => (4, &[0, 3, 1, 2], &["Sigmoid", "Tanh", "Tanh"]),
            _ => (3, &[0, 1, 2], &["Sigmoid", "Tanh"]),
        };
        if let Some(a) = attr(n, "activations") {
            let acts: Vec<String> = a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect();
            if acts != defaults {
                return Err(format!("activations {acts:?}: nn uses {defaults:?}"));
            }
        }
        if n.op_type == "GRU" && attr_i(n, "linear_before_reset", 0) != 1 {
            return Err("linear_before_reset = 0: nn's GRU applies the reset gate after the matrix product (1)".into());
        }
        let (time, features) = (d.shape[0], d.shape[1]);
        let w = self.need_const(n, 1)?;
        let r = self.need_const(n, 2)?;
        let units = match (w.dims.as_slice(), r.dims.as_slice()) {
            (&[1, gw, f], &[1, gr, u]) if f == features && gw == gates * u && gr == gw && u > 0 => u,
            _ => return Err(format!("W {:?} and R {:?} do not fit {features} features", w.dims, r.dims)),
        };
        if attr(n, "hidden_size").is_some_and(|a| a.i != units as i64) {
            return Err("hidden_size disagrees with W".into());
        }
        let width = gates * units;
        // ONNX `[width, rows]` (its block order) → nn `[rows, width]` (Keras blocks).
        let nn_matrix = |m: &[f32], rows: usize| {
            let mut out = vec![0f32; m.len()];
            for (dst, &src) in order.iter().enumerate() {
                for u in 0..units {
                    for q in 0..rows {
                        out[q * width + src * units + u] = m[(dst * units + u) * rows + q];
                    }
                }
            }
            out
        };
        let unorder = |v: &[f32]| -> Vec<f32> {
            let mut out = vec![0f32; v.len()];
            for (dst, &src) in order.iter().enumerate() {
                out[src * units..(src + 1) * units].copy_from_slice(&v[dst * units..(dst + 1) * units]);
            }
            out
        };
        let mut params = vec![
            ("kernel", vec![features, width], nn_matrix(w.floats()?, features)),
            ("recurrent_kernel", vec![units, width], nn_matrix(r.floats()?, units)),
        ];
        let bias = self.const_in(n, 3)?;
        if let Some(b) = &bias {
            let v = b.floats()?;
            if v.len() != 2 * width {
                return Err(format!("B of shape {:?} is not [1, {}]", b.dims, 2 * width));
            }
            let (wb, rb) = (unorder(&v[..width]), unorder(&v[width..]));
            if n.op_type == "GRU" {
                params.push(("bias", vec![2, width], [wb, rb].concat()));
            } else {
                params.push(("bias", vec![width], wb.iter().zip(&rb).map(|(a, b)| a + b).collect()));
            }
        }
        let used =
            |k: usize| n.output.get(k).is_some_and(|o| !o.is_empty() && self.uses.get(o).copied().unwrap_or(0) > 0);
        let (y, y_h) = (used(0), used(1));
        if y && y_h || used(2) {
            return Err("nn's layer gives either the sequence (Y) or the last state (Y_h), not both".into());
        }
        let use_bias = bias.is_some();
        let spec = match n.op_type.as_str() {
            "RNN" => LayerSpec::SimpleRNN(
                nn_layers::SimpleRnnConfig::new(units).with_return_sequences(y).with_bias(use_bias),
            ),
            "LSTM" => LayerSpec::LSTM(
                nn_layers::LstmConfig::new(units)
                    .with_return_sequences(y)
                    .with_bias(use_bias)
                    .with_unit_forget_bias(false),
            ),
            _ => LayerSpec::GRU(nn_layers::GruConfig::new(units).with_return_sequences(y).with_bias(use_bias)),
        };
        let (shape, layout) =
            if y { (vec![time, units], Layout::RecurrentY) } else { (vec![units], Layout::RecurrentH) };
        self.layer(n, spec, &[&d], params, shape.clone(), shape, layout)?;
        // The layer's value is the output that is read.
        if !y {
            let v = self.values.remove(&n.output[0]).ok_or("has no output")?;
            let out = n.output.get(1).ok_or("has no Y_h output")?.clone();
            self.values.insert(out, v);
        }
        Ok(())
    }

    /// `Squeeze` of the direction axis of a recurrent operator's output.
    fn squeeze(&mut self, n: &NodeProto) -> R<()> {
        let mut d = self.dyn_in(n, 0)?;
        let axes: Vec<i64> = match attr_ints(n, "axes") {
            Some(a) => a.to_vec(),
            None => self.const_in(n, 1)?.map(|c| c.ints().map(<[i64]>::to_vec)).transpose()?.unwrap_or_default(),
        };
        match (&d.layout, axes.as_slice()) {
            (Layout::RecurrentH, [0]) => d.layout = Layout::Plain,
            (Layout::RecurrentY, [1]) => d.layout = Layout::TimeMajor,
            _ => return Err(format!("axes {axes:?}: nn squeezes only the direction axis of a recurrent output")),
        }
        self.pass(n, d)
    }

    fn pad(&mut self, n: &NodeProto) -> R<()> {
        let d = self.dyn_in(n, 0)?;
        let mode = attr_s(n, "mode").unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(format!("mode {mode:?}: nn pads with zeros"));
        }
        if let Some(v) = self.const_in(n, 2)? {
            if v.floats()?.iter().any(|&x| x != 0.0) {
                return Err("a nonzero constant_value is not supported".into());
            }
        }
        if n.input.get(3).is_some_and(|s| !s.is_empty()) {
            return Err("the axes input is not supported".into());
        }
        let p = self.need_const(n, 1)?;
        let p = p.ints()?;
        let (t, l, b, r) = match (&d.layout, p) {
            (Layout::Plain, &[0, t, l, 0, 0, b, r, 0]) if d.onnx == d.shape && d.shape.len() == 3 => (t, l, b, r),
            (Layout::Nchw, &[0, 0, t, l, 0, 0, b, r]) => (t, l, b, r),
            _ => return Err(format!("pads {p:?} on a value of shape {:?}: nn pads only the image axes", d.onnx)),
        };
        let (t, l, b, r) = (size(t, "pad")?, size(l, "pad")?, size(b, "pad")?, size(r, "pad")?);
        let ph = d.shape[0].checked_add(t + b).ok_or("pads too large")?;
        let pw = d.shape[1].checked_add(l + r).ok_or("pads too large")?;
        let c = d.shape[2];
        numel(&[ph, pw, c])?;
        let spec = LayerSpec::ZeroPadding2D(ZeroPadding2DConfig {
            padding: Padding2D { top: t, bottom: b, left: l, right: r },
        });
        let onnx = if d.layout == Layout::Nchw { vec![c, ph, pw] } else { vec![ph, pw, c] };
        self.layer(n, spec, &[&d], vec![], vec![ph, pw, c], onnx, d.layout.clone())
    }

    /// The spec, the weights and the metadata.
    fn finish(mut self, proto: &ModelProto) -> Result<Imported, OnnxError> {
        let mut outputs = Vec::new();
        let mut output_size = 0usize;
        for o in &self.graph.output {
            let d = match self.values.get(&o.name) {
                Some(Val::Dyn(d)) => d.clone(),
                Some(Val::Const(_)) => return Err(invalid(format!("output {:?} is a constant", clip(&o.name)))),
                None => return Err(invalid(format!("output {:?} is never computed", clip(&o.name)))),
            };
            let src = match d.layout {
                Layout::FlatNchw { .. } => {
                    return Err(invalid(format!(
                        "output {:?} is a flattened NCHW image: nn holds it in NHWC order and cannot reorder it",
                        clip(&o.name)
                    )))
                }
                Layout::Nchw => {
                    self.notes.push(format!("output {:?} is an image: nn gives it NHWC", clip(&o.name)));
                    d.src.clone()
                }
                Layout::Plain if d.onnx != d.shape => {
                    let spec = reshape_spec(&d.onnx).map_err(invalid)?;
                    let name = self.unique(&format!("reshape_{}", self.layers.len()));
                    self.layers.push(Pending {
                        name: name.clone(),
                        spec,
                        inputs: vec![d.src.clone()],
                        params: vec![],
                        affine: None,
                    });
                    name
                }
                Layout::Plain => d.src.clone(),
                _ => {
                    return Err(invalid(format!(
                        "output {:?} is a recurrent value in ONNX's time-major layout: nn cannot reorder it",
                        clip(&o.name)
                    )))
                }
            };
            if outputs.is_empty() {
                output_size = numel(&d.shape).map_err(invalid)?;
            }
            outputs.push(src);
        }
        if outputs.is_empty() {
            return Err(invalid("the graph has no output"));
        }
        let mut nodes = Vec::with_capacity(self.layers.len());
        let mut weights: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
        for p in &mut self.layers {
            if let Some(a) = p.affine.take() {
                let c = match p.params.first() {
                    Some((_, s, _)) => s[0],
                    None => a.mean.as_ref().or(a.gamma.as_ref()).or(a.beta.as_ref()).map_or(0, Vec::len),
                };
                let cfg = BatchNormConfig::default()
                    .with_epsilon(AFFINE_EPSILON)
                    .with_scale(a.gamma.is_some())
                    .with_center(a.beta.is_some());
                p.spec = LayerSpec::BatchNormalization(cfg);
                if let Some(g) = a.gamma {
                    p.params.push(("gamma", vec![c], g));
                }
                if let Some(b) = a.beta {
                    p.params.push(("beta", vec![c], b));
                }
                p.params.push(("moving_mean", vec![c], a.mean.unwrap_or_else(|| vec![0.0; c])));
                p.params.push(("moving_variance", vec![c], vec![1.0; c]));
            }
            nodes.push(NodeSpec::named(p.name.clone(), p.spec).with_inputs(p.inputs.clone()));
            for (suffix, shape, values) in p.params.drain(..) {
                weights.push((format!("{}.{suffix}", p.name), shape, values));
            }
        }
        let spec = ModelSpec::graph(self.inputs.clone(), nodes, outputs);
        let mut model = Model::new(spec, 0).map_err(|e| OnnxError::Model(e.to_string()))?;
        for (name, shape, values) in weights {
            model
                .set_parameter(&name, Tensor::from_vec(&shape, values))
                .map_err(|e| OnnxError::Model(e.to_string()))?;
        }
        let mut metadata = ModelMetadata { data: FOREIGN_DATA.into(), ..Default::default() };
        let input_size: usize = model.input_shape().iter().product();
        for prop in &proto.metadata_props {
            match prop.key.as_str() {
                CLASS_NAMES_KEY => {
                    if let Ok(names) = serde_json::from_str::<Vec<String>>(&prop.value) {
                        if names.len() == output_size {
                            metadata.class_names = Some(names);
                        } else {
                            self.notes.push(format!(
                                "metadata_props[\"class_names\"] has {} names for {output_size} outputs: left out",
                                names.len()
                            ));
                        }
                    }
                }
                "task" => metadata.task = serde_json::from_value(serde_json::Value::String(prop.value.clone())).ok(),
                "target" => metadata.target = Some(prop.value.clone()),
                "data" if !prop.value.is_empty() => metadata.data = portable_data_name(&prop.value),
                _ => {}
            }
        }
        if proto.producer_name == "nn" {
            if let Some(prop) = proto.metadata_props.iter().find(|p| p.key == NN_METADATA_KEY) {
                match serde_json::from_str::<ModelMetadata>(&prop.value) {
                    Ok(saved) => {
                        if let Some(schema) = saved.features {
                            match schema.check() {
                                Ok(()) if schema.width() == input_size => metadata.features = Some(schema),
                                Ok(()) => self.notes.push(format!(
                                    "metadata_props[\"{NN_METADATA_KEY}\"] names columns encoding to {} inputs, the model takes {input_size}: left out",
                                    schema.width()
                                )),
                                Err(e) => self.notes.push(format!(
                                    "metadata_props[\"{NN_METADATA_KEY}\"]: {e}: the column names are left out"
                                )),
                            }
                        }
                        if let Some(names) = saved.class_names {
                            if names.len() == output_size || saved.task == Some(nn_data::Task::Regression) {
                                metadata.class_names = Some(names);
                            }
                        }
                        metadata.target = saved.target.or(metadata.target);
                        metadata.task = saved.task.or(metadata.task);
                        metadata.delimiter = saved.delimiter;
                        metadata.seed = saved.seed;
                        if !saved.data.is_empty() {
                            metadata.data = portable_data_name(&saved.data);
                        }
                    }
                    Err(e) => self
                        .notes
                        .push(format!("metadata_props[\"{NN_METADATA_KEY}\"] is not nn's metadata ({e}): left out")),
                }
            }
        }
        if metadata.task.is_none() && (metadata.class_names.is_some() || model.ends_with_softmax()) {
            metadata.task = Some(nn_data::Task::Classification);
        }
        if metadata.task == Some(nn_data::Task::Regression) {
            metadata.class_names = None;
        }
        Ok(Imported { model, metadata, notes: self.notes })
    }
}

/// How much padding a pooling or convolution of mode `padding` adds on axis `axis`
/// (0: height, 1: width) of `d`.
fn padding_total(padding: PaddingMode, d: &Dyn, k: (usize, usize), s: (usize, usize), axis: usize) -> usize {
    let p = resolve_pads(padding, (d.shape[0], d.shape[1]), k, s);
    (p[axis] + p[axis + 2]) as usize
}

/// A constant of `m` values, or one broadcast to `m` (`[m]`, `[1, m]`, a scalar).
fn broadcast_vector(c: &Const, m: usize) -> Option<Vec<f32>> {
    let v = c.floats().ok()?;
    let dims: Vec<usize> = c.dims.iter().copied().skip_while(|&x| x == 1).collect();
    if v.len() == 1 {
        Some(vec![v[0]; m])
    } else if dims == [m] {
        Some(v.to_vec())
    } else {
        None
    }
}

fn reshape_spec(target: &[usize]) -> R<LayerSpec> {
    let t = TargetShape::new(target).map_err(|e| e.to_string())?;
    Ok(LayerSpec::Reshape(ReshapeConfig { target_shape: t }))
}

/// A name nn accepts: no `.`, no control characters, at most 64 characters.
fn sanitize(name: &str) -> String {
    let s: String =
        name.chars().take(64).map(|c| if c == '.' || c.is_control() || c == '/' { '_' } else { c }).collect();
    if s.is_empty() {
        "input".into()
    } else {
        s
    }
}
