//! Compression of an exported model: weight-only int8 quantization.
//!
//! Every dense (`Gemm`) and convolution (`Conv`) weight of at least [`MIN_ELEMENTS`] values
//! is stored as int8 with one symmetric scale per output channel (`scale = max |w| / 127`, zero
//! point 0) and turned back into floats by a `DequantizeLinear` node (per-axis, opset 13+).
//! Biases, normalisations and small tensors stay float. The file shrinks to about a quarter;
//! runtimes that fold constants (tract, onnxruntime) dequantize once at load, so inference
//! runs in float at the same speed, with weights rounded to 8 bits.

use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;

use crate::{DeployError, Result};

/// Weights with fewer values than this stay float (their bytes do not matter).
pub const MIN_ELEMENTS: usize = 256;

/// What quantization did.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    /// The quantized model.
    pub bytes: Vec<u8>,
    /// Weight tensors stored as int8.
    pub tensors: usize,
    /// Values in them.
    pub values: usize,
    /// Largest difference between a weight and its int8 value times the scale.
    pub max_weight_error: f32,
}

fn export_error(e: impl std::fmt::Display) -> DeployError {
    DeployError::Export(format!("quantization: {e}"))
}

/// Quantizes the weights of the ONNX model `onnx` (see the module documentation).
pub fn quantize_weights(onnx: &[u8]) -> Result<Quantized> {
    let mut model = pb::ModelProto::decode(onnx).map_err(export_error)?;
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| export_error("the model has no graph"))?;
    // The weight input of each Gemm (B, [in, out], transB = 0: channels on axis 1) and Conv
    // (W, [out, in, kh, kw]: channels on axis 0).
    let targets: Vec<(String, i64)> = graph
        .node
        .iter()
        .filter_map(|n| match n.op_type.as_str() {
            "Gemm" => Some((n.input.get(1)?.clone(), 1)),
            "Conv" => Some((n.input.get(1)?.clone(), 0)),
            _ => None,
        })
        .collect();
    let mut dequantize = Vec::new();
    let (mut tensors, mut values, mut max_error) = (0, 0, 0.0f32);
    for (name, axis) in targets {
        let Some(at) = graph.initializer.iter().position(|t| t.name == name) else {
            continue;
        };
        let t = &graph.initializer[at];
        let n: usize = t.dims.iter().product::<i64>() as usize;
        if t.data_type != DataType::Float as i32 || n < MIN_ELEMENTS || t.raw_data.len() != 4 * n {
            continue;
        }
        let w: Vec<f32> = t
            .raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        let channels = dims[axis as usize];
        // The stride between consecutive channels along `axis`, and the block they repeat in.
        let inner: usize = dims[axis as usize + 1..].iter().product();
        let channel_of = |i: usize| (i / inner) % channels;
        let mut scale = vec![0.0f32; channels];
        for (i, v) in w.iter().enumerate() {
            let c = channel_of(i);
            scale[c] = scale[c].max(v.abs() / 127.0);
        }
        for s in &mut scale {
            if *s == 0.0 || !s.is_finite() {
                *s = 1.0;
            }
        }
        let q: Vec<i8> = w
            .iter()
            .enumerate()
            .map(|(i, v)| (v / scale[channel_of(i)]).round().clamp(-127.0, 127.0) as i8)
            .collect();
        for (i, (&v, &k)) in w.iter().zip(&q).enumerate() {
            max_error = max_error.max((v - f32::from(k) * scale[channel_of(i)]).abs());
        }
        let dims_i64 = t.dims.clone();
        graph.initializer.remove(at);
        let (q_name, s_name, z_name) = (
            format!("{name}_int8"),
            format!("{name}_scale"),
            format!("{name}_zero_point"),
        );
        graph.initializer.push(pb::TensorProto {
            name: q_name.clone(),
            dims: dims_i64,
            data_type: DataType::Int8 as i32,
            raw_data: q.iter().map(|&k| k as u8).collect(),
            ..Default::default()
        });
        graph.initializer.push(pb::TensorProto {
            name: s_name.clone(),
            dims: vec![channels as i64],
            data_type: DataType::Float as i32,
            raw_data: scale.iter().flat_map(|s| s.to_le_bytes()).collect(),
            ..Default::default()
        });
        graph.initializer.push(pb::TensorProto {
            name: z_name.clone(),
            dims: vec![channels as i64],
            data_type: DataType::Int8 as i32,
            raw_data: vec![0u8; channels],
            ..Default::default()
        });
        dequantize.push(pb::NodeProto {
            input: vec![q_name, s_name, z_name],
            output: vec![name.clone()],
            name: format!("{name}_dequantize"),
            op_type: "DequantizeLinear".into(),
            attribute: vec![pb::AttributeProto {
                name: "axis".into(),
                r#type: AttributeType::Int as i32,
                i: axis,
                ..Default::default()
            }],
            ..Default::default()
        });
        tensors += 1;
        values += n;
    }
    // The dequantizing nodes read only initializers: first in topological order.
    dequantize.append(&mut graph.node);
    graph.node = dequantize;
    model.metadata_props.push(pb::StringStringEntryProto {
        key: "weights".into(),
        value: format!(
            "int8, symmetric, one scale per output channel, for {tensors} dense and convolution weights of {MIN_ELEMENTS} or more values"
        ),
    });
    Ok(Quantized {
        bytes: model.encode_to_vec(),
        tensors,
        values,
        max_weight_error: max_error,
    })
}
