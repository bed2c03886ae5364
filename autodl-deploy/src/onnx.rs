//! Writing an `ArchitectureSpec` and its weights as an ONNX `ModelProto`.

use std::collections::HashMap;

use autodl_artifacts::arch::{
    Activation, ArchitectureSpec, NORM_EPSILON, NodeId, Norm, Op, PoolKind, Shape, window,
};
use autodl_artifacts::export::{ElementType, GraphInput, OutputKind};
use autodl_artifacts::model::{NetworkWeights, WeightTensor};
use autodl_artifacts::transform::{FeatureStep, FeatureTransform};
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
/// Name of the network's input: the graph input when the graph holds the network alone, else
/// the value the preprocessing hands the network.
pub const INPUT_NAME: &str = "features";
/// Name of the raw numeric input of a graph that preprocesses (f64, NaN for missing).
pub const NUMERIC_INPUT: &str = "numeric";
/// Name of the input holding the other columns' encodings in a graph that preprocesses.
pub const ENCODED_INPUT: &str = "encoded";
/// Name of the graph output.
pub const OUTPUT_NAME: &str = "output";
/// Name of the regression output in the target's units.
pub const VALUE_OUTPUT: &str = "value";

/// What the export records besides the network.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// Input feature names, in column order (stored in `metadata_props`).
    pub feature_names: Vec<String>,
    /// The output's meaning: probabilities (a softmax is appended) or a standardised value
    /// (a second output, [`VALUE_OUTPUT`], then holds the value in the target's units).
    pub output: OutputKind,
    /// When given, the graph applies this transform's numeric steps itself: it takes the raw
    /// numeric columns ([`NUMERIC_INPUT`]) and the other steps' features ([`ENCODED_INPUT`],
    /// described in `metadata_props` under `encodings`) instead of [`INPUT_NAME`].
    pub preprocess: Option<FeatureTransform>,
}

/// The inputs of the graph [`to_onnx_ensemble`] writes with `opts`, in order.
pub fn graph_inputs(opts: &ExportOptions) -> Vec<GraphInput> {
    let Some(t) = &opts.preprocess else {
        return vec![GraphInput {
            name: INPUT_NAME.into(),
            element_type: ElementType::Float,
            columns: opts.feature_names.clone(),
            description: "the transformed features (data/transform.json applied)".into(),
        }];
    };
    let mut inputs = Vec::new();
    let numeric = t.numeric_columns();
    if !numeric.is_empty() {
        inputs.push(GraphInput {
            name: NUMERIC_INPUT.into(),
            element_type: ElementType::Double,
            columns: numeric,
            description: "the numeric columns as they are, NaN where a value is missing; the graph imputes the training median, clips to the training bounds, standardises and adds the missing indicators".into(),
        });
    }
    let encoded = t.non_numeric_feature_names();
    if !encoded.is_empty() {
        inputs.push(GraphInput {
            name: ENCODED_INPUT.into(),
            element_type: ElementType::Float,
            columns: encoded,
            description: "the categorical, date and text columns encoded as the metadata's 'encodings' say (one-hot, frequency, date parts, hashed n-grams); autodl's predict and serve do this".into(),
        });
    }
    inputs
}

struct GraphBuilder {
    /// Prepended to node and initializer names (one prefix per ensemble member).
    prefix: String,
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

fn attr_ints(name: &str, ints: &[usize]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: ints.iter().map(|&v| v as i64).collect(),
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

fn int64_tensor_proto(name: &str, data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: DataType::Int64 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A `[1, n]` f64 tensor: one value per column, broadcast over the batch.
fn double_row_proto(name: &str, data: &[f64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![1, data.len() as i64],
        data_type: DataType::Double as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn value_info(name: &str, width: usize, element: ElementType) -> pb::ValueInfoProto {
    let dim = |value| Dimension {
        denotation: String::new(),
        value: Some(value),
    };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: match element {
                    ElementType::Float => DataType::Float,
                    ElementType::Double => DataType::Double,
                } as i32,
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
        let output = if name == OUTPUT_NAME {
            name.to_string()
        } else {
            format!("{}{name}", self.prefix)
        };
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: output.clone(),
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
        let name = format!("{}{key}", self.prefix);
        self.initializers.push(tensor_proto(&name, shape, data));
        Ok(name)
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
    to_onnx_ensemble(&[(spec, weights)], opts)
}

/// Encodes the mean of several networks' outputs (probabilities for classification, values
/// for regression) as one ONNX model; one member exports as that network alone.
pub fn to_onnx_ensemble(
    members: &[(&ArchitectureSpec, &NetworkWeights)],
    opts: &ExportOptions,
) -> Result<Vec<u8>> {
    let Some(&(first, _)) = members.first() else {
        return Err(crate::DeployError::Export(
            "an ensemble needs at least one member".into(),
        ));
    };
    let mut b = GraphBuilder {
        prefix: String::new(),
        nodes: Vec::new(),
        initializers: Vec::new(),
        constants: HashMap::new(),
    };
    if let Some(t) = &opts.preprocess {
        if t.n_features() != first.input_features {
            return Err(crate::DeployError::Export(format!(
                "the transform makes {} features, the network takes {}",
                t.n_features(),
                first.input_features
            )));
        }
        emit_preprocessing(&mut b, t);
    }
    let mut outputs = Vec::new();
    for (k, &(spec, weights)) in members.iter().enumerate() {
        if spec.input_features != first.input_features {
            return Err(crate::DeployError::Export(format!(
                "ensemble member {k} takes {} features, member 0 takes {}",
                spec.input_features, first.input_features
            )));
        }
        b.prefix = if members.len() == 1 {
            String::new()
        } else {
            format!("m{k}_")
        };
        let last = emit_network(&mut b, spec, weights)?;
        outputs.push(match &opts.output {
            OutputKind::Probabilities { .. } if members.len() > 1 => b.node(
                "Softmax",
                "probabilities",
                &[&last],
                vec![attr_int("axis", -1)],
            ),
            _ => last,
        });
    }
    b.prefix.clear();
    let output_width = first.validate()?.output_width;
    match (&opts.output, outputs.as_slice()) {
        (OutputKind::Probabilities { .. }, [last]) => {
            b.node("Softmax", OUTPUT_NAME, &[last], vec![attr_int("axis", -1)]);
        }
        (OutputKind::StandardizedValue { .. }, [last]) => {
            b.node("Identity", OUTPUT_NAME, &[last], vec![]);
        }
        (_, many) => {
            let refs: Vec<&str> = many.iter().map(String::as_str).collect();
            b.node("Mean", OUTPUT_NAME, &refs, vec![]);
        }
    }
    if let OutputKind::StandardizedValue { mean, std } = opts.output {
        let std = b.constant(std as f32);
        let mean = b.constant(mean as f32);
        let scaled = b.node("Mul", "value_scaled", &[OUTPUT_NAME, &std], vec![]);
        b.node("Add", VALUE_OUTPUT, &[&scaled, &mean], vec![]);
    }
    let doc = members
        .iter()
        .map(|(spec, _)| spec.describe())
        .collect::<Vec<_>>()
        .join(" | ");
    finish(b, output_width, doc, opts)
}

/// Adds the nodes that turn the raw numeric columns and the other steps' features into the
/// network's features ([`INPUT_NAME`]), in the transform's order: missing (NaN) → training
/// median, clip, `(x - mean) / std` in f64 as the transform computes it, then f32; missing
/// indicators from the same NaN test; the parts concatenated and put in order by a `Gather`.
fn emit_preprocessing(b: &mut GraphBuilder, t: &FeatureTransform) {
    // Where each step's first feature sits among the network's features.
    let mut at = 0;
    let starts: Vec<usize> = t
        .steps
        .iter()
        .map(|s| {
            at += s.width();
            at - s.width()
        })
        .collect();
    // The values concatenated, and for each of their columns its network feature index.
    let mut parts: Vec<String> = Vec::new();
    let mut order: Vec<usize> = Vec::new();
    let numeric: Vec<(usize, &FeatureStep)> = t
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_numeric())
        .collect();
    if !numeric.is_empty() {
        let (mut impute, mut lo, mut hi, mut mean, mut std) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut indicators: Vec<i64> = Vec::new();
        for (j, &(_, step)) in numeric.iter().enumerate() {
            if let FeatureStep::Numeric {
                impute: m,
                mean: mu,
                std: sd,
                clip,
                missing_indicator,
                ..
            } = step
            {
                impute.push(*m);
                let [l, h] = clip.unwrap_or([f64::NEG_INFINITY, f64::INFINITY]);
                lo.push(l);
                hi.push(h);
                mean.push(*mu);
                std.push(*sd);
                if *missing_indicator {
                    indicators.push(j as i64);
                }
            }
        }
        let mut constant = |name: &str, data: &[f64]| {
            b.initializers.push(double_row_proto(name, data));
            name.to_string()
        };
        let (impute, mean, std) = (
            constant("pre_impute", &impute),
            constant("pre_mean", &mean),
            constant("pre_std", &std),
        );
        let clip = lo.iter().chain(&hi).any(|v| v.is_finite()).then(|| {
            (
                constant("pre_clip_low", &lo),
                constant("pre_clip_high", &hi),
            )
        });
        // NaN is the one value unequal to itself (tract infers IsNaN's output type wrongly).
        let present = b.node(
            "Equal",
            "pre_present",
            &[NUMERIC_INPUT, NUMERIC_INPUT],
            vec![],
        );
        let missing = b.node("Not", "pre_missing", &[&present], vec![]);
        let mut x = b.node(
            "Where",
            "pre_imputed",
            &[&missing, &impute, NUMERIC_INPUT],
            vec![],
        );
        if let Some((lo, hi)) = clip {
            x = b.node("Max", "pre_clip_above", &[&x, &lo], vec![]);
            x = b.node("Min", "pre_clipped", &[&x, &hi], vec![]);
        }
        let centred = b.node("Sub", "pre_centred", &[&x, &mean], vec![]);
        let z = b.node("Div", "pre_standardised", &[&centred, &std], vec![]);
        let float = DataType::Float as i64;
        parts.push(b.node("Cast", "pre_numeric", &[&z], vec![attr_int("to", float)]));
        order.extend(numeric.iter().map(|&(i, _)| starts[i]));
        if !indicators.is_empty() {
            let flags = b.node(
                "Cast",
                "pre_missing_f32",
                &[&missing],
                vec![attr_int("to", float)],
            );
            b.initializers
                .push(int64_tensor_proto("pre_indicator_columns", &indicators));
            parts.push(b.node(
                "Gather",
                "pre_indicators",
                &[&flags, "pre_indicator_columns"],
                vec![attr_int("axis", 1)],
            ));
            order.extend(
                indicators
                    .iter()
                    .map(|&j| starts[numeric[j as usize].0] + 1),
            );
        }
    }
    let encoded: Vec<usize> = t
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.is_numeric())
        .flat_map(|(i, s)| starts[i]..starts[i] + s.width())
        .collect();
    if !encoded.is_empty() {
        parts.push(ENCODED_INPUT.into());
        order.extend(encoded);
    }
    let joined = match parts.as_slice() {
        [one] => one.clone(),
        many => {
            let refs: Vec<&str> = many.iter().map(String::as_str).collect();
            b.node("Concat", "pre_joined", &refs, vec![attr_int("axis", 1)])
        }
    };
    // Network feature k is column `take[k]` of the concatenation.
    let mut take = vec![0i64; order.len()];
    for (column, &feature) in order.iter().enumerate() {
        take[feature] = column as i64;
    }
    if take.iter().enumerate().all(|(k, &c)| c == k as i64) {
        b.node("Identity", INPUT_NAME, &[&joined], vec![]);
    } else {
        b.initializers
            .push(int64_tensor_proto("pre_feature_order", &take));
        b.node(
            "Gather",
            INPUT_NAME,
            &[&joined, "pre_feature_order"],
            vec![attr_int("axis", 1)],
        );
    }
}

/// Adds one network's nodes; returns the name of its output value (logits or values).
fn emit_network(
    b: &mut GraphBuilder,
    spec: &ArchitectureSpec,
    weights: &NetworkWeights,
) -> Result<String> {
    let g = spec.validate()?;
    // The ONNX value name holding each spec node's output.
    let mut value: Vec<String> = vec![String::new(); spec.nodes.len()];
    for &i in &g.order {
        let node = &spec.nodes[i];
        let name = node.id.to_string();
        let ins: Vec<String> = g.inputs[i].iter().map(|&j| value[j].clone()).collect();
        let x = ins.first().map(String::as_str).unwrap_or("");
        // The height of this node's input grid (1 for signals): windows slide along rows too
        // only when it is above 1.
        let in_height = match g.inputs[i].first().map(|&j| g.shapes[j]) {
            Some(Shape::Grid { height, .. }) => height,
            _ => 1,
        };
        value[i] = match &node.op {
            Op::Input => match g.shapes[i] {
                Shape::Flat(_) => INPUT_NAME.to_string(),
                Shape::Grid {
                    channels,
                    height,
                    width,
                } => {
                    let shape = format!("{}{name}_shape", b.prefix);
                    let dims = [-1, channels as i64, height as i64, width as i64];
                    b.initializers.push(int64_tensor_proto(&shape, &dims));
                    b.node("Reshape", &name, &[INPUT_NAME, &shape], vec![])
                }
            },
            Op::Conv {
                filters,
                kernel,
                stride,
            } => {
                let shape = ArchitectureSpec::conv_kernel_shape(&g, i, *filters, *kernel);
                let w = b.weight(weights, node.id, "weight", &shape)?;
                let bias = b.weight(weights, node.id, "bias", &[*filters])?;
                let (kh, kw) = (shape[2], shape[3]);
                b.node(
                    "Conv",
                    &name,
                    &[x, &w, &bias],
                    vec![
                        attr_ints("kernel_shape", &[kh, kw]),
                        attr_ints("strides", &window(in_height, *stride)),
                        attr_ints("pads", &[kh / 2, kw / 2, kh / 2, kw / 2]),
                    ],
                )
            }
            Op::Pool { kind, size, same } => {
                let op = match kind {
                    PoolKind::Max => "MaxPool",
                    PoolKind::Average => "AveragePool",
                };
                let k = window(in_height, *size);
                let attrs = if *same {
                    let [ph, pw] = [k[0] / 2, k[1] / 2];
                    // AveragePool's count_include_pad defaults to 0: padding is not averaged.
                    vec![
                        attr_ints("kernel_shape", &k),
                        attr_ints("strides", &[1, 1]),
                        attr_ints("pads", &[ph, pw, ph, pw]),
                    ]
                } else {
                    vec![attr_ints("kernel_shape", &k), attr_ints("strides", &k)]
                };
                b.node(op, &name, &[x], attrs)
            }
            Op::GlobalPool { kind } => {
                let op = match kind {
                    PoolKind::Max => "GlobalMaxPool",
                    PoolKind::Average => "GlobalAveragePool",
                };
                let pooled = b.node(op, &format!("{name}_pool"), &[x], vec![]);
                b.node("Flatten", &name, &[&pooled], vec![attr_int("axis", 1)])
            }
            Op::Flatten => b.node("Flatten", &name, &[x], vec![attr_int("axis", 1)]),
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
                let n = g.shapes[i].channels();
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
    Ok(value[g.output].clone())
}

/// Wraps the graph in a model with its input, output and metadata, and encodes it.
fn finish(
    b: GraphBuilder,
    output_width: usize,
    doc: String,
    opts: &ExportOptions,
) -> Result<Vec<u8>> {
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
        doc_string: doc,
        graph: Some(pb::GraphProto {
            node: b.nodes,
            name: "autodl".into(),
            initializer: b.initializers,
            input: graph_inputs(opts)
                .iter()
                .map(|i| value_info(&i.name, i.columns.len(), i.element_type))
                .collect(),
            output: std::iter::once(value_info(OUTPUT_NAME, output_width, ElementType::Float))
                .chain(
                    matches!(opts.output, OutputKind::StandardizedValue { .. })
                        .then(|| value_info(VALUE_OUTPUT, 1, ElementType::Float)),
                )
                .collect(),
            ..Default::default()
        }),
        metadata_props: vec![
            meta(
                "inputs",
                serde_json::to_string(&graph_inputs(opts)).expect("plain data serialises"),
            ),
            meta("output_name", OUTPUT_NAME.into()),
            meta(
                "encodings",
                serde_json::to_string(
                    &opts
                        .preprocess
                        .iter()
                        .flat_map(|t| t.steps.iter().filter(|s| !s.is_numeric()))
                        .collect::<Vec<_>>(),
                )
                .expect("plain data serialises"),
            ),
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
