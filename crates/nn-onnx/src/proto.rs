//! The subset of ONNX's protobuf messages the exporter writes, declared by hand with
//! `prost`'s derive (no `protoc`, no build script, no generated file to keep in step).
//!
//! Source: `onnx/onnx.proto` of the ONNX project (<https://github.com/onnx/onnx>,
//! read from the `onnx` 1.23 Python package), namespace `onnx`. Every field below has
//! the number and the wire type of that file; fields the exporter never writes are
//! left out (a protobuf reader skips what it does not know, and ONNX Runtime and
//! `onnx.checker` read these messages as the full ones). `optional` scalars of the
//! proto2-style file are plain fields here: prost leaves a field out when it holds
//! its default (0, empty), which protobuf readers treat as "not set" with the same
//! default value.

use prost::Message;

/// `TensorProto.DataType.FLOAT`: 32-bit IEEE float.
pub const DATA_TYPE_FLOAT: i32 = 1;
/// `TensorProto.DataType.INT64`.
pub const DATA_TYPE_INT64: i32 = 7;

/// `AttributeProto.AttributeType.FLOAT`.
pub const ATTRIBUTE_FLOAT: i32 = 1;
/// `AttributeProto.AttributeType.INT`.
pub const ATTRIBUTE_INT: i32 = 2;
/// `AttributeProto.AttributeType.STRING`.
pub const ATTRIBUTE_STRING: i32 = 3;
/// `AttributeProto.AttributeType.FLOATS`.
pub const ATTRIBUTE_FLOATS: i32 = 6;
/// `AttributeProto.AttributeType.INTS`.
pub const ATTRIBUTE_INTS: i32 = 7;
/// `AttributeProto.AttributeType.STRINGS`.
pub const ATTRIBUTE_STRINGS: i32 = 8;

/// `onnx.ModelProto`: the top-level message of an `.onnx` file.
#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    /// The IR version of the file format (field 1), e.g. 8 for opsets up to 17.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// The program that wrote the file (field 2).
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// Its version (field 3).
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// Reverse-DNS namespace of the model (field 4).
    #[prost(string, tag = "4")]
    pub domain: String,
    /// The model's own version (field 5).
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    /// Free text (field 6).
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// The computation (field 7).
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// The operator sets the graph uses (field 8): here the default domain `""`.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Named strings about the model (field 14), e.g. the class names.
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `onnx.OperatorSetIdProto`: an operator set and its version.
#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    /// The domain (field 1); empty for the default `ai.onnx` operators.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// The opset version (field 2).
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// `onnx.StringStringEntryProto`: one key-value pair.
#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    /// Field 1.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Field 2.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `onnx.GraphProto`: nodes in topological order, their constant inputs, and the
/// graph's inputs and outputs.
#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    /// The nodes, each after the producers of its inputs (field 1).
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// The graph's name (field 2).
    #[prost(string, tag = "2")]
    pub name: String,
    /// Named constant tensors: the weights (field 5).
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Free text (field 10).
    #[prost(string, tag = "10")]
    pub doc_string: String,
    /// The graph's inputs (field 11).
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// The graph's outputs (field 12).
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    /// Types of intermediate values (field 13); optional, not written.
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

/// `onnx.NodeProto`: one operator call.
#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    /// Names of the input values; `""` for a left-out optional input (field 1).
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Names of the output values (field 2).
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// The node's name (field 3).
    #[prost(string, tag = "3")]
    pub name: String,
    /// The operator, e.g. `Conv` (field 4).
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// The operator's attributes (field 5).
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// Free text: here, the nn layer the node comes from (field 6).
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// The operator's domain (field 7); empty for `ai.onnx`.
    #[prost(string, tag = "7")]
    pub domain: String,
}

/// `onnx.AttributeProto`: a named attribute of a node; `type` says which value
/// field holds it.
#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    /// The attribute's name (field 1).
    #[prost(string, tag = "1")]
    pub name: String,
    /// A float value (field 2).
    #[prost(float, tag = "2")]
    pub f: f32,
    /// An integer value (field 3).
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// A string value, UTF-8 bytes (field 4).
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    /// A tensor value (field 5).
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// A list of floats (field 7, packed).
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// A list of integers (field 8, packed).
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// A list of strings (field 9).
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    /// Free text (field 13).
    #[prost(string, tag = "13")]
    pub doc_string: String,
    /// Which field holds the value: an `AttributeProto.AttributeType` (field 20),
    /// e.g. [`ATTRIBUTE_INTS`].
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// `onnx.TensorProto`: a constant tensor, row-major, its values little-endian in
/// `raw_data`.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// The shape (field 1).
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// The element type, a `TensorProto.DataType` (field 2), e.g. [`DATA_TYPE_FLOAT`].
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Float values, when not in `raw_data` (field 4, packed).
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// Int64 values, when not in `raw_data` (field 7, packed).
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// The tensor's name (field 8).
    #[prost(string, tag = "8")]
    pub name: String,
    /// The values as little-endian bytes, row-major (field 9).
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// Free text (field 12).
    #[prost(string, tag = "12")]
    pub doc_string: String,
}

/// `onnx.ValueInfoProto`: a named value with its type (graph inputs and outputs).
#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    /// The value's name (field 1).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its type (field 2).
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    /// Free text (field 3).
    #[prost(string, tag = "3")]
    pub doc_string: String,
}

/// `onnx.TypeProto`: here only its `tensor_type` member of `oneof value`.
#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    /// The type of a tensor (field 1 of `oneof value`).
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
    /// A standard semantic description (field 6).
    #[prost(string, tag = "6")]
    pub denotation: String,
}

/// `onnx.TypeProto.Tensor`: element type and shape.
#[derive(Clone, PartialEq, Message)]
pub struct TypeProtoTensor {
    /// A `TensorProto.DataType` (field 1).
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    /// The shape (field 2).
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `onnx.TensorShapeProto`: one entry per axis.
#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    /// The axes (field 1).
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `onnx.TensorShapeProto.Dimension`: a fixed size or a named symbolic one.
#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    /// `oneof value` (fields 1 and 2); a member of a oneof is written even when 0.
    #[prost(oneof = "dimension::Value", tags = "1, 2")]
    pub value: Option<dimension::Value>,
    /// A standard semantic description (field 3), e.g. `DATA_BATCH`.
    #[prost(string, tag = "3")]
    pub denotation: String,
}

/// The `oneof value` of [`Dimension`].
pub mod dimension {
    /// A fixed size or a symbol.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A fixed size (field 1).
        #[prost(int64, tag = "1")]
        DimValue(i64),
        /// A named size, the same wherever the name appears (field 2), e.g. `batch`.
        #[prost(string, tag = "2")]
        DimParam(String),
    }
}

impl ModelProto {
    /// The encoded bytes of the model (the content of an `.onnx` file).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }
}

impl TensorProto {
    /// A float tensor named `name` of shape `dims`, its `values` (row-major) in
    /// `raw_data` as little-endian `f32`.
    ///
    /// # Panics
    /// If `values.len()` is not the product of `dims` (an internal error).
    pub fn float(name: impl Into<String>, dims: &[usize], values: &[f32]) -> TensorProto {
        assert_eq!(values.len(), dims.iter().product::<usize>(), "tensor values and shape disagree");
        TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DATA_TYPE_FLOAT,
            name: name.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    /// A 1-d int64 tensor named `name` holding `values` (shapes, axes, pads).
    pub fn int64s(name: impl Into<String>, values: &[i64]) -> TensorProto {
        TensorProto {
            dims: vec![values.len() as i64],
            data_type: DATA_TYPE_INT64,
            name: name.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    }
}

impl AttributeProto {
    /// An `INT` attribute.
    pub fn int(name: &str, i: i64) -> AttributeProto {
        AttributeProto { name: name.into(), i, r#type: ATTRIBUTE_INT, ..Default::default() }
    }
    /// A `FLOAT` attribute.
    pub fn float(name: &str, f: f32) -> AttributeProto {
        AttributeProto { name: name.into(), f, r#type: ATTRIBUTE_FLOAT, ..Default::default() }
    }
    /// An `INTS` attribute.
    pub fn ints(name: &str, ints: &[i64]) -> AttributeProto {
        AttributeProto { name: name.into(), ints: ints.to_vec(), r#type: ATTRIBUTE_INTS, ..Default::default() }
    }
    /// A `STRING` attribute.
    pub fn string(name: &str, s: &str) -> AttributeProto {
        AttributeProto { name: name.into(), s: s.as_bytes().to_vec(), r#type: ATTRIBUTE_STRING, ..Default::default() }
    }
    /// A `STRINGS` attribute.
    pub fn strings(name: &str, strings: &[&str]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            strings: strings.iter().map(|s| s.as_bytes().to_vec()).collect(),
            r#type: ATTRIBUTE_STRINGS,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model with every message kind survives encode → decode unchanged, and the
    /// bytes of a small message are those the field numbers of onnx.proto give.
    #[test]
    fn encode_decode_round_trip() {
        let dim = |v: dimension::Value| Dimension { value: Some(v), denotation: String::new() };
        let info = ValueInfoProto {
            name: "x".into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TypeProtoTensor {
                    elem_type: DATA_TYPE_FLOAT,
                    shape: Some(TensorShapeProto {
                        dim: vec![dim(dimension::Value::DimParam("batch".into())), dim(dimension::Value::DimValue(0))],
                    }),
                }),
                denotation: String::new(),
            }),
            doc_string: String::new(),
        };
        let model = ModelProto {
            ir_version: 8,
            producer_name: "nn".into(),
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
            metadata_props: vec![StringStringEntryProto { key: "k".into(), value: "v".into() }],
            graph: Some(GraphProto {
                name: "g".into(),
                node: vec![NodeProto {
                    input: vec!["x".into(), "w".into()],
                    output: vec!["y".into()],
                    op_type: "Conv".into(),
                    attribute: vec![
                        AttributeProto::ints("pads", &[0, 1, 1, 0]),
                        AttributeProto::float("alpha", 0.2),
                        AttributeProto::int("axis", -1),
                        AttributeProto::string("auto_pad", "NOTSET"),
                        AttributeProto::strings("activations", &["Tanh"]),
                    ],
                    ..Default::default()
                }],
                initializer: vec![TensorProto::float("w", &[1, 2], &[1.5, -2.0]), TensorProto::int64s("s", &[-1, 3])],
                input: vec![info.clone()],
                output: vec![info],
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = model.to_bytes();
        let back = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(back, model);
        let g = back.graph.unwrap();
        assert_eq!(g.initializer[0].raw_data, [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat());
        // A zero dim_value is a oneof member, so it is written (and read back as Some).
        let d = &g.input[0].r#type.as_ref().unwrap().tensor_type.as_ref().unwrap().shape.as_ref().unwrap().dim;
        assert_eq!(d[1].value, Some(dimension::Value::DimValue(0)));

        // OperatorSetIdProto { domain: "", version: 17 }: field 2 varint → 0x10 0x11.
        assert_eq!(OperatorSetIdProto { domain: String::new(), version: 17 }.encode_to_vec(), [0x10, 17]);
        // ModelProto.ir_version = 8 is field 1 varint: 0x08 0x08.
        assert_eq!(ModelProto { ir_version: 8, ..Default::default() }.encode_to_vec(), [0x08, 8]);
        // AttributeProto INT: name (1, bytes) "a", i (3, varint) 5, type (20, varint) 2:
        // tag of field 20 varint is (20 << 3) = 160 → 0xa0 0x01.
        assert_eq!(AttributeProto::int("a", 5).encode_to_vec(), [0x0a, 1, b'a', 0x18, 5, 0xa0, 0x01, 2]);
    }
}
