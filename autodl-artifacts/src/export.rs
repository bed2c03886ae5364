//! The exported-model manifest.

use serde::{Deserialize, Serialize};

/// What the exported graph's output holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutputKind {
    /// Class probabilities (softmax is part of the graph), one column per label.
    Probabilities {
        /// Labels in column order.
        labels: Vec<String>,
    },
    /// A standardised value; the target is `value * std + mean`.
    StandardizedValue {
        /// Target mean.
        mean: f64,
        /// Target standard deviation.
        std: f64,
    },
}

/// The element type of a graph input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElementType {
    /// 32-bit float.
    Float,
    /// 64-bit float.
    Double,
}

/// One input of the exported graph: `[batch, columns.len()]` of `element_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphInput {
    /// Name in the graph.
    pub name: String,
    /// Element type.
    pub element_type: ElementType,
    /// What each column holds, in order.
    pub columns: Vec<String>,
    /// What a caller puts there.
    pub description: String,
}

/// The result of comparing two runtimes on the same inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParityCheck {
    /// The runtime checked (e.g. `tract`).
    pub runtime: String,
    /// The reference it was compared with (e.g. `burn`).
    pub reference: String,
    /// Which rows were used (e.g. `test split`).
    pub rows_from: String,
    /// Number of rows compared.
    pub rows: usize,
    /// Largest absolute difference over all outputs.
    pub max_abs_diff: f64,
    /// Allowed difference.
    pub tolerance: f64,
    /// `max_abs_diff <= tolerance`.
    pub passed: bool,
}

/// The exported ONNX model and the checks it passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedModel {
    /// Schema version of this artifact.
    pub schema_version: u32,
    /// Run-relative path of the `.onnx` file.
    pub onnx_path: String,
    /// SHA-256 of the `.onnx` file.
    pub onnx_sha256: String,
    /// ONNX IR version.
    pub ir_version: i64,
    /// Default-domain opset.
    pub opset: i64,
    /// The graph's inputs, in order.
    pub inputs: Vec<GraphInput>,
    /// Name of the graph output (`[batch, outputs]`, `f32`): see `output`.
    pub output_name: String,
    /// For regression, the name of a second output holding the prediction in the target's
    /// units (`[batch, 1]`, `f32`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_output_name: Option<String>,
    /// The network's feature names, in column order (after the transform).
    pub feature_names: Vec<String>,
    /// What the output holds.
    pub output: OutputKind,
    /// Parity of the exported graph with the trained network.
    pub parity: ParityCheck,
    /// The compressed variant, for the user to choose (absent in runs made before it existed).
    #[serde(default)]
    pub compressed: Option<CompressedModel>,
}

/// A compressed copy of the exported model, and what compression changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompressedModel {
    /// How it was compressed.
    pub method: String,
    /// Run-relative path of its `.onnx` file.
    pub onnx_path: String,
    /// SHA-256 of that file.
    pub onnx_sha256: String,
    /// Its size in bytes, and the float model's.
    pub bytes: u64,
    /// Size of the float model in bytes.
    pub float_bytes: u64,
    /// Median single-row latency with tract, in microseconds: compressed, then float.
    pub latency_us: [f64; 2],
    /// Test metric of the compressed model (the float model's is the run's).
    pub test_metric: crate::table::MetricValue,
    /// Largest output difference from the float model on the test split.
    pub max_abs_diff: f64,
}

crate::versioned!(ExportedModel);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let e = ExportedModel {
            schema_version: crate::SCHEMA_VERSION,
            onnx_path: "model.onnx".into(),
            onnx_sha256: "00".into(),
            ir_version: 8,
            opset: 17,
            inputs: vec![GraphInput {
                name: "numeric".into(),
                element_type: ElementType::Double,
                columns: vec!["a".into()],
                description: "raw numbers".into(),
            }],
            output_name: "output".into(),
            value_output_name: Some("value".into()),
            feature_names: vec!["a".into()],
            output: OutputKind::StandardizedValue {
                mean: 1.0,
                std: 2.0,
            },
            parity: ParityCheck {
                runtime: "tract".into(),
                reference: "burn".into(),
                rows_from: "test split".into(),
                rows: 3,
                max_abs_diff: 1e-7,
                tolerance: 1e-4,
                passed: true,
            },
            compressed: Some(CompressedModel {
                method: "int8".into(),
                onnx_path: "model-int8.onnx".into(),
                onnx_sha256: "11".into(),
                bytes: 10,
                float_bytes: 40,
                latency_us: [12.0, 12.5],
                test_metric: crate::table::MetricValue::new(crate::table::Metric::Rmse, 0.5),
                max_abs_diff: 1e-3,
            }),
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<ExportedModel>(&json).unwrap(), e);
    }
}
