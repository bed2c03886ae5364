//! Trained weights (safetensors) and the trained-model manifest.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::arch::ArchitectureSpec;
use crate::table::MetricValue;
use crate::trial::Hyperparams;
use crate::{ArtifactError, Result};

/// One named weight tensor in `f32`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightTensor {
    /// Shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<f32>,
}

/// All weights of a network, keyed `"<node id>.<name>"`.
///
/// Names per op: dense and output layers have `weight` (shape `[in, out]`, burn's layout) and
/// `bias`; layer norm has `gamma`, `beta`; batch norm has `gamma`, `beta`, `running_mean`,
/// `running_var`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkWeights {
    /// The tensors.
    pub tensors: BTreeMap<String, WeightTensor>,
}

impl NetworkWeights {
    /// The key of tensor `name` of node `node`.
    pub fn key(node: crate::arch::NodeId, name: &str) -> String {
        format!("{node}.{name}")
    }

    /// Looks a tensor up, with an error naming it if absent or of the wrong shape.
    pub fn get(&self, key: &str, shape: &[usize]) -> Result<&WeightTensor> {
        let t = self
            .tensors
            .get(key)
            .ok_or_else(|| ArtifactError::Weights(format!("tensor '{key}' is missing")))?;
        if t.shape != shape {
            return Err(ArtifactError::Weights(format!(
                "tensor '{key}' has shape {:?}, expected {shape:?}",
                t.shape
            )));
        }
        Ok(t)
    }

    /// Encodes as a safetensors file (little-endian `F32` tensors).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let buffers: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(k, t)| {
                let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (k.clone(), bytes, t.shape.clone())
            })
            .collect();
        let views = buffers
            .iter()
            .map(|(k, bytes, shape)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (k.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ArtifactError::Weights(e.to_string()))?;
        safetensors::serialize(views, None).map_err(|e| ArtifactError::Weights(e.to_string()))
    }

    /// Decodes a safetensors file written by [`NetworkWeights::to_safetensors`].
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| ArtifactError::Weights(e.to_string()))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(ArtifactError::Weights(format!(
                    "tensor '{name}' has dtype {:?}, expected F32",
                    view.dtype()
                )));
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.insert(
                name,
                WeightTensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(NetworkWeights { tensors })
    }

    /// Writes the weights atomically to `path` as safetensors.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, &self.to_safetensors()?)
    }

    /// Reads weights from a safetensors file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| ArtifactError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_safetensors(&bytes)
    }
}

/// Per-epoch training record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Validation metric after the epoch.
    pub valid_metric: f64,
    /// Validation cross-entropy after the epoch (classification only).
    pub valid_loss: Option<f64>,
}

/// A baseline model trained on the same split, for comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineResult {
    /// What it is, e.g. `linfa logistic regression`.
    pub name: String,
    /// Its validation metric.
    pub valid_metric: MetricValue,
    /// Its test metric.
    pub test_metric: MetricValue,
}

/// The trained network: where its weights are, how it was trained, and how it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    /// Schema version of this artifact.
    pub schema_version: u32,
    /// The search trial it came from.
    pub trial: u32,
    /// The architecture.
    pub architecture: ArchitectureSpec,
    /// The hyper-parameters.
    pub hyperparams: Hyperparams,
    /// Run-relative path of the safetensors weights.
    pub weights_path: String,
    /// SHA-256 of the weights file.
    pub weights_sha256: String,
    /// Trainable parameters.
    pub parameters: usize,
    /// Learning curve of the kept run.
    pub history: Vec<EpochRecord>,
    /// Validation metric of the kept weights.
    pub valid_metric: MetricValue,
    /// Test metric of the kept weights (computed once, after model selection).
    pub test_metric: MetricValue,
    /// The linfa baseline on the same split.
    pub baseline: Option<BaselineResult>,
    /// The ensemble comparison, when the search completed two or more trials.
    #[serde(default)]
    pub ensemble: Option<EnsembleRecord>,
    /// The cross-validation of the best candidates, on small data.
    #[serde(default)]
    pub cross_validation: Option<CrossValidation>,
}

crate::versioned!(TrainedModel);

/// The best search candidates retrained on each cross-validation fold (small data), and the
/// one whose mean held-out score was best: the final model's architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidation {
    /// Folds.
    pub folds: usize,
    /// The metric of the fold scores.
    pub metric: crate::table::Metric,
    /// Each candidate that was cross-validated on every fold, in the search's order.
    pub candidates: Vec<CvCandidate>,
    /// The trial chosen: the best mean.
    pub chosen_trial: u32,
}

/// One candidate's cross-validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvCandidate {
    /// Its search trial.
    pub trial: u32,
    /// Its validation metric in the search.
    pub search_valid: f64,
    /// The held-out metric of each fold.
    pub fold_metrics: Vec<f64>,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation.
    pub std: f64,
}

/// One network of an ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleMember {
    /// The search trial it came from.
    pub trial: u32,
    /// Its architecture.
    pub architecture: ArchitectureSpec,
    /// Run-relative path of its safetensors weights.
    pub weights_path: String,
    /// SHA-256 of the weights file.
    pub weights_sha256: String,
    /// Its own validation metric.
    pub valid_metric: MetricValue,
}

/// How averaging the top networks compared with the best one on validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleRecord {
    /// For each size k tried (the mean of the k best trials' outputs): k, its validation metric
    /// and its selection score.
    pub sizes: Vec<(usize, MetricValue, f64)>,
    /// The size with the best validation metric, the largest where several tie (1: the best
    /// single network).
    pub chosen_size: usize,
    /// True when an ensemble of two or more is the deployed model.
    pub kept: bool,
    /// The members of the deployed ensemble (empty when the single network was kept).
    pub members: Vec<EnsembleMember>,
}

impl EnsembleRecord {
    /// The members' trial numbers, comma-separated (`3, 0, 7`).
    pub fn member_trials(&self) -> String {
        self.members
            .iter()
            .map(|m| m.trial.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_round_trip() {
        let mut w = NetworkWeights::default();
        w.tensors.insert(
            "n1.weight".into(),
            WeightTensor {
                shape: vec![2, 3],
                data: vec![1.0, -2.5, 3.25, f32::MIN_POSITIVE, 0.0, 7.0],
            },
        );
        w.tensors.insert(
            "n1.bias".into(),
            WeightTensor {
                shape: vec![3],
                data: vec![0.1, 0.2, 0.3],
            },
        );
        let bytes = w.to_safetensors().unwrap();
        assert_eq!(NetworkWeights::from_safetensors(&bytes).unwrap(), w);
        assert!(w.get("n1.weight", &[3, 2]).is_err());
        assert!(w.get("n9.weight", &[2, 3]).is_err());
        assert!(NetworkWeights::from_safetensors(b"not a file").is_err());
    }
}
