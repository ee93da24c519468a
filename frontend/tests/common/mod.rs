//! Helpers for building ONNX `ModelProto`s by hand in the frontend's integration tests.
#![allow(dead_code)]

use prost::Message;
use whittle_frontend::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use whittle_frontend::{load_model_bytes, tensor_to_proto, Model};
use whittle_ir::{Graph, Node, NodeId, Op, Tensor};

pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

/// A tensor value info; a dim of -1 is left anonymous, `Err(name)` dims are symbolic.
pub fn vi(name: &str, dt: DataType, dims: &[i64]) -> ValueInfoProto {
    use tensor_shape_proto::dimension::Value as V;
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dt as i32),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| tensor_shape_proto::Dimension {
                            denotation: None,
                            value: if d >= 0 { Some(V::DimValue(d)) } else { None },
                        })
                        .collect(),
                }),
            })),
        }),
        ..Default::default()
    }
}

/// A value info with named symbolic dims.
pub fn vi_sym(name: &str, dt: DataType, dims: &[&str]) -> ValueInfoProto {
    let mut v = vi(name, dt, &vec![0; dims.len()]);
    if let Some(TypeProto {
        value: Some(type_proto::Value::TensorType(t)),
        ..
    }) = &mut v.r#type
    {
        for (d, s) in t.shape.as_mut().unwrap().dim.iter_mut().zip(dims) {
            d.value = Some(tensor_shape_proto::dimension::Value::DimParam(
                s.to_string(),
            ));
        }
    }
    v
}

pub fn init(name: &str, t: &Tensor) -> TensorProto {
    tensor_to_proto(name, t)
}

pub fn model(opset: i64, graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        producer_name: Some("test".into()),
        graph: Some(graph),
        ..Default::default()
    }
}

pub fn graph(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: &[&str],
    inits: Vec<TensorProto>,
) -> GraphProto {
    GraphProto {
        name: Some("g".into()),
        node: nodes,
        input: inputs,
        output: outputs
            .iter()
            .map(|o| ValueInfoProto {
                name: Some(o.to_string()),
                ..Default::default()
            })
            .collect(),
        initializer: inits,
        ..Default::default()
    }
}

pub fn load(m: &ModelProto) -> Result<Model, whittle_frontend::FrontendError> {
    load_model_bytes(&m.encode_to_vec(), None)
}

pub fn a_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}
pub fn a_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}
pub fn a_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}
pub fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}
pub fn a_floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Floats as i32),
        floats: v.to_vec(),
        ..Default::default()
    }
}
pub fn a_t(name: &str, t: &Tensor) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(tensor_to_proto("", t)),
        ..Default::default()
    }
}

/// The node called `name`.
pub fn find<'a>(g: &'a Graph, name: &str) -> (NodeId, &'a Node) {
    let id = g
        .node_ids()
        .find(|&id| g.node(id).name == name)
        .unwrap_or_else(|| panic!("no node '{name}'"));
    (id, g.node(id))
}

/// The constant feeding input `port` of node `id`.
pub fn const_input(g: &Graph, id: NodeId, port: usize) -> Option<Tensor> {
    let v = g.input(id, port)?;
    match &g.node(v.node).op {
        Op::Constant(t) => Some((**t).clone()),
        _ => None,
    }
}
