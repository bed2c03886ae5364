//! The run manifest: the index of a run directory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::table::{MetricValue, Task};

/// Run-relative paths of the artifacts every run writes.
pub mod paths {
    /// The run manifest.
    pub const MANIFEST: &str = "manifest.json";
    /// The data profile.
    pub const PROFILE: &str = "data/profile.json";
    /// The fitted feature transform.
    pub const TRANSFORM: &str = "data/transform.json";
    /// Transformed training split (Parquet).
    pub const TRAIN: &str = "data/train.parquet";
    /// Transformed validation split (Parquet).
    pub const VALID: &str = "data/valid.parquet";
    /// Transformed test split (Parquet).
    pub const TEST: &str = "data/test.parquet";
    /// The raw (untransformed) test rows, target included (Parquet).
    pub const TEST_RAW: &str = "data/test_raw.parquet";
    /// Every search trial.
    pub const TRIALS: &str = "search/trials.json";
    /// The trained-model manifest.
    pub const MODEL: &str = "model/model.json";
    /// The trained weights.
    pub const WEIGHTS: &str = "model/weights.safetensors";
    /// The exported ONNX graph.
    pub const ONNX: &str = "model.onnx";
    /// The exported graph with int8 weights.
    pub const ONNX_INT8: &str = "model-int8.onnx";
    /// The exported-model manifest.
    pub const EXPORT: &str = "export.json";
    /// The drift reference.
    pub const DRIFT_REFERENCE: &str = "monitor/reference.json";
    /// The criteria scorecard.
    pub const CRITERIA: &str = "criteria.json";
    /// The human-readable report.
    pub const REPORT: &str = "report.md";
}

/// One artifact of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactEntry {
    /// What it is (e.g. `profile`, `onnx`).
    pub kind: String,
    /// Run-relative path.
    pub path: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The input data of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    /// The file as given (or `embedded:<name>` for the built-in default).
    pub path: String,
    /// SHA-256 of its contents.
    pub sha256: String,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub columns: usize,
    /// The target column.
    pub target: String,
}

/// The index of a run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// Schema version of this artifact.
    pub schema_version: u32,
    /// Run identifier.
    pub run_id: String,
    /// Unix time the run started.
    pub started_unix: u64,
    /// The seed everything was derived from.
    pub seed: u64,
    /// The input.
    pub data: DataSource,
    /// The task.
    pub task: Task,
    /// The final model's test metric.
    pub test_metric: MetricValue,
    /// The linfa baseline's test metric.
    pub baseline_test_metric: Option<MetricValue>,
    /// Versions: autodl, rustc, the main dependencies and the lock file's hash; and `threads`,
    /// the worker threads the stages could use.
    pub versions: BTreeMap<String, String>,
    /// Wall seconds per stage.
    pub stage_seconds: BTreeMap<String, f64>,
    /// Every artifact written, with its hash.
    pub artifacts: Vec<ArtifactEntry>,
}

crate::versioned!(RunManifest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = RunManifest {
            schema_version: crate::SCHEMA_VERSION,
            run_id: "r".into(),
            started_unix: 1,
            seed: 7,
            data: DataSource {
                path: "x.csv".into(),
                sha256: "00".into(),
                rows: 1,
                columns: 2,
                target: "y".into(),
            },
            task: Task::Regression,
            test_metric: MetricValue {
                name: "rmse".into(),
                value: 1.5,
            },
            baseline_test_metric: None,
            versions: [("autodl".to_string(), "0.1.0".to_string())].into(),
            stage_seconds: [("data".to_string(), 0.1)].into(),
            artifacts: vec![ArtifactEntry {
                kind: "onnx".into(),
                path: "model.onnx".into(),
                sha256: "00".into(),
                bytes: 3,
            }],
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""test_metric":{"name":"rmse","value":1.5}"#));
        assert_eq!(serde_json::from_str::<RunManifest>(&json).unwrap(), m);
    }
}
