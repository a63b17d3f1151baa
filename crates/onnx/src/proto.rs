//! The few ONNX protobuf messages an export needs, written with
//! `recurrent_protobuf`; the field numbers are those of onnx/onnx.proto
//! (IR version 8).

pub use recurrent_protobuf::Message;

/// The ONNX IR version written (ONNX 1.10+; onnxruntime reads it).
pub const IR_VERSION: i64 = 8;

/// Element types of `TensorProto.DataType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    /// 32-bit float.
    Float = 1,
    /// 64-bit signed integer.
    Int64 = 7,
}

/// `TensorProto` with its data as little-endian `raw_data`.
pub fn tensor(name: &str, dims: &[usize], data_type: DataType, raw: &[u8]) -> Message {
    let mut t = Message::new();
    for &d in dims {
        t.int(1, d as i64);
    }
    t.int(2, data_type as i64).string(8, name).bytes(9, raw);
    t
}

/// A float tensor.
pub fn float_tensor(name: &str, dims: &[usize], values: &[f32]) -> Message {
    debug_assert_eq!(dims.iter().product::<usize>(), values.len());
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims, DataType::Float, &raw)
}

/// An int64 tensor.
pub fn int_tensor(name: &str, dims: &[usize], values: &[i64]) -> Message {
    debug_assert_eq!(dims.iter().product::<usize>(), values.len());
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims, DataType::Int64, &raw)
}

/// One dimension of a graph input or output: fixed or named (dynamic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim<'a> {
    /// A fixed size.
    Fixed(usize),
    /// A size given at run time, named (`batch`, `time`).
    Named(&'a str),
}

/// `ValueInfoProto` of a tensor: name, element type, shape.
pub fn value_info(name: &str, data_type: DataType, shape: &[Dim]) -> Message {
    let mut dims = Message::new();
    for d in shape {
        let mut dim = Message::new();
        match d {
            Dim::Fixed(n) => dim.int(1, *n as i64),
            Dim::Named(s) => dim.string(2, s),
        };
        dims.message(1, &dim);
    }
    let mut tensor_type = Message::new();
    tensor_type.int(1, data_type as i64).message(2, &dims);
    let mut type_proto = Message::new();
    type_proto.message(1, &tensor_type);
    let mut info = Message::new();
    info.string(1, name).message(2, &type_proto);
    info
}

/// A node attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attribute<'a> {
    /// `INT`.
    Int(i64),
    /// `STRINGS`.
    Strings(&'a [&'a str]),
    /// `TENSOR`.
    Tensor(Message),
}

/// `NodeProto`: `op_type` reading `inputs` (an empty name skips an optional
/// input) and writing `outputs`.
pub fn node(
    op_type: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: &[(&str, Attribute)],
) -> Message {
    let mut n = Message::new();
    for i in inputs {
        n.string(1, i);
    }
    for o in outputs {
        n.string(2, o);
    }
    n.string(3, name).string(4, op_type);
    for (attr_name, value) in attributes {
        let mut a = Message::new();
        a.string(1, attr_name);
        match value {
            Attribute::Int(v) => a.int(3, *v).int(20, 2),
            Attribute::Strings(list) => {
                for s in *list {
                    a.string(9, s);
                }
                a.int(20, 8)
            }
            Attribute::Tensor(t) => a.message(5, t).int(20, 4),
        };
        n.message(5, &a);
    }
    n
}

/// `GraphProto`.
pub fn graph(
    name: &str,
    nodes: &[Message],
    initializers: &[Message],
    inputs: &[Message],
    outputs: &[Message],
) -> Message {
    let mut g = Message::new();
    for n in nodes {
        g.message(1, n);
    }
    g.string(2, name);
    for t in initializers {
        g.message(5, t);
    }
    for i in inputs {
        g.message(11, i);
    }
    for o in outputs {
        g.message(12, o);
    }
    g
}

/// `ModelProto` of `graph` for the default domain at `opset`, with
/// `metadata` as `metadata_props`.
pub fn model(graph: &Message, opset: i64, doc: &str, metadata: &[(&str, String)]) -> Message {
    let mut opset_id = Message::new();
    opset_id.string(1, "").int(2, opset);
    let mut m = Message::new();
    m.int(1, IR_VERSION)
        .string(2, "recurrent")
        .string(3, env!("CARGO_PKG_VERSION"))
        .string(6, doc)
        .message(7, graph)
        .message(8, &opset_id);
    for (key, value) in metadata {
        let mut entry = Message::new();
        entry.string(1, key).string(2, value);
        m.message(14, &entry);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_float_tensor_carries_its_dims_type_name_and_bytes() {
        let t = float_tensor("w", &[1, 2], &[1.0, -2.0]).into_bytes();
        let mut want = vec![
            0x08, 0x01, 0x08, 0x02, 0x10, 0x01, 0x42, 0x01, b'w', 0x4a, 0x08,
        ];
        want.extend_from_slice(&1.0f32.to_le_bytes());
        want.extend_from_slice(&(-2.0f32).to_le_bytes());
        assert_eq!(t, want);
    }
}
