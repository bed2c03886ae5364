//! Writing an `ArchitectureSpec` and its weights as an ONNX `ModelProto`.

use std::collections::HashMap;

use autodl_artifacts::arch::{Activation, ArchitectureSpec, NORM_EPSILON, NodeId, Norm, Op};
use autodl_artifacts::export::OutputKind;
use autodl_artifacts::model::{NetworkWeights, WeightTensor};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};

use crate::Result;

/// ONNX IR version written.
pub const IR_VERSION: i64 = 8;
/// Default-domain opset written.
pub const OPSET: i64 = 17;
/// Name of the graph input.
pub const INPUT_NAME: &str = "features";
/// Name of the graph output.
pub const OUTPUT_NAME: &str = "output";

/// What the export records besides the network.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// Input feature names, in column order (stored in `metadata_props`).
    pub feature_names: Vec<String>,
    /// The output's meaning: probabilities (a softmax is appended) or a standardised value.
    pub output: OutputKind,
}

struct GraphBuilder {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    constants: HashMap<String, String>,
}

fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

fn tensor_proto(name: &str, shape: &[usize], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn value_info(name: &str, width: usize) -> pb::ValueInfoProto {
    let dim = |value| Dimension {
        denotation: String::new(),
        value: Some(value),
    };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![
                        dim(dimension::Value::DimParam("batch".into())),
                        dim(dimension::Value::DimValue(width as i64)),
                    ],
                }),
            })),
        }),
        doc_string: String::new(),
    }
}

impl GraphBuilder {
    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<pb::AttributeProto>,
    ) -> String {
        let output = name.to_string();
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: name.into(),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
        output
    }

    fn weight(
        &mut self,
        weights: &NetworkWeights,
        node: NodeId,
        name: &str,
        shape: &[usize],
    ) -> Result<String> {
        let key = NetworkWeights::key(node, name);
        let WeightTensor { data, .. } = weights.get(&key, shape)?;
        self.initializers.push(tensor_proto(&key, shape, data));
        Ok(key)
    }

    /// A scalar constant, shared between nodes.
    fn constant(&mut self, value: f32) -> String {
        let name = format!("const_{value:e}");
        if !self.constants.contains_key(&name) {
            self.initializers.push(tensor_proto(&name, &[], &[value]));
            self.constants.insert(name.clone(), name.clone());
        }
        name
    }
}

/// Encodes the network as an ONNX model. Fails if a weight is missing or mis-shaped.
pub fn to_onnx(
    spec: &ArchitectureSpec,
    weights: &NetworkWeights,
    opts: &ExportOptions,
) -> Result<Vec<u8>> {
    let g = spec.validate()?;
    let mut b = GraphBuilder {
        nodes: Vec::new(),
        initializers: Vec::new(),
        constants: HashMap::new(),
    };
    // The ONNX value name holding each spec node's output.
    let mut value: Vec<String> = vec![String::new(); spec.nodes.len()];
    for &i in &g.order {
        let node = &spec.nodes[i];
        let name = node.id.to_string();
        let ins: Vec<String> = g.inputs[i].iter().map(|&j| value[j].clone()).collect();
        let x = ins.first().map(String::as_str).unwrap_or("");
        value[i] = match &node.op {
            Op::Input => INPUT_NAME.to_string(),
            Op::Dense { units } | Op::Output { units } => {
                let fan_in = g.widths[g.inputs[i][0]];
                let w = b.weight(weights, node.id, "weight", &[fan_in, *units])?;
                let bias = b.weight(weights, node.id, "bias", &[*units])?;
                // burn stores linear weights as [in, out]: Y = X·W + b, so transB = 0.
                b.node("Gemm", &name, &[x, &w, &bias], vec![attr_int("transB", 0)])
            }
            Op::Activation { function } => match function {
                Activation::Relu => b.node("Relu", &name, &[x], vec![]),
                Activation::Tanh => b.node("Tanh", &name, &[x], vec![]),
                Activation::Silu => {
                    let s = b.node("Sigmoid", &format!("{name}_sigmoid"), &[x], vec![]);
                    b.node("Mul", &name, &[x, &s], vec![])
                }
                Activation::Gelu => {
                    // Exact GELU: 0.5 · x · (1 + erf(x / √2)); opset 17 has no Gelu op.
                    let sqrt2 = b.constant(std::f32::consts::SQRT_2);
                    let one = b.constant(1.0);
                    let half = b.constant(0.5);
                    let d = b.node("Div", &format!("{name}_div"), &[x, &sqrt2], vec![]);
                    let e = b.node("Erf", &format!("{name}_erf"), &[&d], vec![]);
                    let a = b.node("Add", &format!("{name}_add"), &[&e, &one], vec![]);
                    let m = b.node("Mul", &format!("{name}_mul"), &[x, &a], vec![]);
                    b.node("Mul", &name, &[&m, &half], vec![])
                }
            },
            Op::Norm { kind } => {
                let n = g.widths[i];
                let gamma = b.weight(weights, node.id, "gamma", &[n])?;
                let beta = b.weight(weights, node.id, "beta", &[n])?;
                match kind {
                    Norm::Layer => b.node(
                        "LayerNormalization",
                        &name,
                        &[x, &gamma, &beta],
                        vec![
                            attr_int("axis", -1),
                            attr_float("epsilon", NORM_EPSILON as f32),
                        ],
                    ),
                    Norm::Batch => {
                        let mean = b.weight(weights, node.id, "running_mean", &[n])?;
                        let var = b.weight(weights, node.id, "running_var", &[n])?;
                        b.node(
                            "BatchNormalization",
                            &name,
                            &[x, &gamma, &beta, &mean, &var],
                            vec![attr_float("epsilon", NORM_EPSILON as f32)],
                        )
                    }
                }
            }
            // Dropout is the identity at inference: its consumers read its input directly.
            Op::Dropout { .. } => x.to_string(),
            Op::Add => {
                let mut acc = ins[0].clone();
                for (k, other) in ins.iter().enumerate().skip(1) {
                    let out = if k + 1 == ins.len() {
                        name.clone()
                    } else {
                        format!("{name}_{k}")
                    };
                    acc = b.node("Add", &out, &[&acc, other], vec![]);
                }
                acc
            }
            Op::Concat => {
                let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
                b.node("Concat", &name, &refs, vec![attr_int("axis", 1)])
            }
        };
    }
    let last = value[g.output].clone();
    match &opts.output {
        OutputKind::Probabilities { .. } => {
            b.node("Softmax", OUTPUT_NAME, &[&last], vec![attr_int("axis", -1)]);
        }
        OutputKind::StandardizedValue { .. } => {
            b.node("Identity", OUTPUT_NAME, &[&last], vec![]);
        }
    }
    let meta = |key: &str, value: String| pb::StringStringEntryProto {
        key: key.into(),
        value,
    };
    let model = pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "autodl".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: spec.describe(),
        graph: Some(pb::GraphProto {
            node: b.nodes,
            name: "autodl".into(),
            initializer: b.initializers,
            input: vec![value_info(INPUT_NAME, spec.input_features)],
            output: vec![value_info(OUTPUT_NAME, g.output_width)],
            ..Default::default()
        }),
        metadata_props: vec![
            meta(
                "feature_names",
                serde_json::to_string(&opts.feature_names).expect("strings serialise"),
            ),
            meta(
                "output",
                serde_json::to_string(&opts.output).expect("plain data serialises"),
            ),
        ],
        ..Default::default()
    };
    Ok(model.encode_to_vec())
}
