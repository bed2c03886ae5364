//! The drift reference (a profile of the training data) and the drift report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the monitor keeps of one training column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureReference {
    /// A numeric column: its sorted non-missing values and quantile bin edges for PSI.
    Numeric {
        /// Column name.
        column: String,
        /// Non-missing training values, sorted ascending.
        sorted_values: Vec<f64>,
        /// Inner bin edges (deciles, deduplicated) for PSI.
        bin_edges: Vec<f64>,
        /// Missing share in training.
        missing_share: f64,
    },
    /// A categorical column: category counts.
    Categorical {
        /// Column name.
        column: String,
        /// Count per category (missing counted under no key).
        counts: BTreeMap<String, u64>,
        /// Missing share in training.
        missing_share: f64,
    },
}

impl FeatureReference {
    /// The column name.
    pub fn column(&self) -> &str {
        match self {
            FeatureReference::Numeric { column, .. }
            | FeatureReference::Categorical { column, .. } => column,
        }
    }
}

/// The reference the monitor compares new data against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReference {
    /// Schema version of this artifact.
    pub schema_version: u32,
    /// Which data it was built from (e.g. `training split of <sha256>`).
    pub built_from: String,
    /// Rows in the reference.
    pub rows: usize,
    /// One entry per monitored column.
    pub features: Vec<FeatureReference>,
}

crate::versioned!(DriftReference);

/// The drift finding for one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// Column name.
    pub column: String,
    /// Test used: `ks` (two-sample Kolmogorov–Smirnov) or `chi2` (chi-square homogeneity).
    pub test: String,
    /// The test statistic.
    pub statistic: f64,
    /// The test's p-value.
    pub p_value: f64,
    /// Benjamini–Hochberg adjusted p-value across all monitored columns.
    pub p_adjusted: f64,
    /// Population stability index over the reference bins or categories.
    pub psi: f64,
    /// Jensen–Shannon distance (base 2, 0 to 1) over the same bins or categories.
    #[serde(default)]
    pub jensen_shannon: f64,
    /// First Wasserstein distance between the reference and current values, in the column's
    /// units (numeric columns only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasserstein: Option<f64>,
    /// Missing share in the current data.
    pub missing_share: f64,
    /// True when the adjusted p-value is below the significance level.
    pub drifted: bool,
}

/// The drift report for one batch of data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Schema version of this artifact.
    pub schema_version: u32,
    /// Rows in the reference.
    pub reference_rows: usize,
    /// Rows in the current data.
    pub current_rows: usize,
    /// Significance level applied to the adjusted p-values.
    pub alpha: f64,
    /// Per-column findings.
    pub features: Vec<FeatureDrift>,
    /// Columns flagged as drifted.
    pub drifted_columns: Vec<String>,
    /// True when any column drifted.
    pub drift_detected: bool,
    /// How the flags were decided, in words.
    pub method: String,
}

crate::versioned!(DriftReport);

/// Model performance in one chunk: estimated without labels, and realised where labels came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkPerformance {
    /// The metric (`accuracy`).
    pub metric: String,
    /// Confidence-based estimate from the model's calibrated probabilities (no labels used).
    pub estimated: f64,
    /// The metric on the rows whose labels are known, when any are.
    pub realised: Option<f64>,
    /// Rows with a known label.
    pub labelled_rows: usize,
}

/// One chunk of consecutive rows and its drift against the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkDrift {
    /// Chunk number, from 0.
    pub index: usize,
    /// Index of the chunk's first row in the data (from 0).
    pub first_row: usize,
    /// Rows in the chunk.
    pub rows: usize,
    /// First and last value of the timestamp column in the chunk, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<[String; 2]>,
    /// The chunk against the reference.
    pub report: DriftReport,
    /// Performance in the chunk, when the model's probabilities were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<ChunkPerformance>,
    /// Drift of the model's output (its probability) against the reference's, on its own
    /// (not part of the columns' multiple-testing adjustment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_drift: Option<FeatureDrift>,
    /// Maximum mean discrepancy and the domain classifier, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multivariate: Option<MultivariateDrift>,
}

/// Drift of a table analysed in chunks against one reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkedDriftReport {
    /// Schema version of this artifact.
    pub schema_version: u32,
    /// How the rows were chunked, in words.
    pub chunking: String,
    /// The reference, in words.
    pub reference: String,
    /// Each chunk, in order.
    pub chunks: Vec<ChunkDrift>,
    /// Performance in the reference (realised, and estimated as for a chunk), when the model's
    /// probabilities were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_performance: Option<ChunkPerformance>,
    /// Streaming detectors run over the data's rows in order.
    #[serde(default)]
    pub stream_detections: Vec<StreamDetection>,
}

/// What the multivariate tests found for one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultivariateDrift {
    /// Rows of each side used.
    pub rows: [usize; 2],
    /// Unbiased MMD² estimate.
    pub mmd2: f64,
    /// Its permutation p-value.
    pub mmd_p_value: f64,
    /// Permutations run.
    pub permutations: usize,
    /// Cross-validated AUC of the domain classifier.
    pub domain_auc: f64,
    /// The encoded columns with the largest absolute weights, largest first.
    pub drivers: Vec<(String, f64)>,
}

/// Where a streaming detector reported changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamDetection {
    /// The stream, e.g. `model output` or `errors`.
    pub stream: String,
    /// The detector and its settings.
    pub detector: String,
    /// Data rows (from 0) at which it reported a change.
    pub rows: Vec<usize>,
}

crate::versioned!(ChunkedDriftReport);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let r = DriftReference {
            schema_version: crate::SCHEMA_VERSION,
            built_from: "train".into(),
            rows: 2,
            features: vec![
                FeatureReference::Numeric {
                    column: "a".into(),
                    sorted_values: vec![1.0, 2.0],
                    bin_edges: vec![1.5],
                    missing_share: 0.0,
                },
                FeatureReference::Categorical {
                    column: "b".into(),
                    counts: [("x".to_string(), 2u64)].into_iter().collect(),
                    missing_share: 0.0,
                },
            ],
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<DriftReference>(&json).unwrap(), r);
        let rep = DriftReport {
            schema_version: crate::SCHEMA_VERSION,
            reference_rows: 2,
            current_rows: 2,
            alpha: 0.05,
            features: vec![FeatureDrift {
                column: "a".into(),
                test: "ks".into(),
                statistic: 0.5,
                p_value: 0.9,
                p_adjusted: 0.9,
                psi: 0.0,
                jensen_shannon: 0.1,
                wasserstein: Some(0.2),
                missing_share: 0.0,
                drifted: false,
            }],
            drifted_columns: vec![],
            drift_detected: false,
            method: "m".into(),
        };
        let json = serde_json::to_string(&rep).unwrap();
        assert_eq!(serde_json::from_str::<DriftReport>(&json).unwrap(), rep);
    }
}
