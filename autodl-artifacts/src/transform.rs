//! The fitted feature transform, and the one implementation of applying it.
//!
//! The data stage fits a [`FeatureTransform`] on the training split only; training, prediction,
//! serving and monitoring all call [`FeatureTransform::transform`] on raw rows, so preprocessing
//! exists once.
//!
//! Policy for data seen at inference time (documented here, tested below):
//! - a missing value in a numeric column is imputed with the training median;
//! - a number given as text is parsed; text that is not a number is an error naming the row;
//! - a missing categorical value is imputed with the training split's most frequent category;
//! - a category never seen in training encodes as all zeros in that column's one-hot block;
//! - a required column that is absent is an error naming it; extra columns are ignored.

use serde::{Deserialize, Serialize};

use crate::table::{ColumnValues, Matrix, RawColumn, RawTable, Task};
use crate::{ArtifactError, Result};

/// How one input column becomes one or more features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureStep {
    /// Impute with the median, then standardise: `(x - mean) / std`.
    Numeric {
        /// Source column.
        column: String,
        /// Value used for missing entries (training median).
        impute: f64,
        /// Training mean (after imputation).
        mean: f64,
        /// Training standard deviation (after imputation; 1 if it was 0).
        std: f64,
    },
    /// Impute with the most frequent category, then one-hot encode.
    OneHot {
        /// Source column.
        column: String,
        /// Known categories, one output feature each, in this order.
        categories: Vec<String>,
        /// Value used for missing entries (most frequent training category).
        impute: String,
    },
}

impl FeatureStep {
    /// The source column.
    pub fn column(&self) -> &str {
        match self {
            FeatureStep::Numeric { column, .. } | FeatureStep::OneHot { column, .. } => column,
        }
    }

    /// Names of the features this step produces.
    pub fn output_names(&self) -> Vec<String> {
        match self {
            FeatureStep::Numeric { column, .. } => vec![column.clone()],
            FeatureStep::OneHot {
                column, categories, ..
            } => categories.iter().map(|c| format!("{column}={c}")).collect(),
        }
    }
}

/// How the target is encoded for the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetEncoding {
    /// Class labels; the network predicts the index into `labels`.
    Classes {
        /// Labels in index order.
        labels: Vec<String>,
    },
    /// Standardised real value: the network predicts `(y - mean) / std`.
    Standardized {
        /// Training mean of the target.
        mean: f64,
        /// Training standard deviation of the target (1 if it was 0).
        std: f64,
    },
}

/// A decision the data stage took about a column, with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleaningDecision {
    /// The column concerned.
    pub column: String,
    /// What was done, e.g. `drop`, `impute_median`, `one_hot`.
    pub action: String,
    /// Why.
    pub reason: String,
}

/// The fitted transform from raw columns to the network's input matrix and targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureTransform {
    /// Schema version of this artifact.
    pub schema_version: u32,
    /// SHA-256 of the data file it was fitted on.
    pub fitted_on_sha256: String,
    /// Rows of the training split it was fitted on.
    pub fitted_rows: usize,
    /// The target column.
    pub target: String,
    /// The task.
    pub task: Task,
    /// Target encoding.
    pub target_encoding: TargetEncoding,
    /// One step per kept input column, in output order.
    pub steps: Vec<FeatureStep>,
    /// Every decision taken while fitting, dropped columns included.
    pub decisions: Vec<CleaningDecision>,
}

crate::versioned!(FeatureTransform);

impl FeatureTransform {
    /// Names of the output features, in matrix column order.
    pub fn feature_names(&self) -> Vec<String> {
        self.steps
            .iter()
            .flat_map(FeatureStep::output_names)
            .collect()
    }

    /// Number of output features.
    pub fn n_features(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match s {
                FeatureStep::Numeric { .. } => 1,
                FeatureStep::OneHot { categories, .. } => categories.len(),
            })
            .sum()
    }

    /// Number of network outputs: classes, or 1 for regression.
    pub fn n_outputs(&self) -> usize {
        match &self.target_encoding {
            TargetEncoding::Classes { labels } => labels.len(),
            TargetEncoding::Standardized { .. } => 1,
        }
    }

    /// Applies the transform to raw rows. See the module documentation for the policy on
    /// missing values, unseen categories and absent or extra columns.
    pub fn transform(&self, table: &RawTable) -> Result<Matrix> {
        let n_rows = table.n_rows();
        let n_cols = self.n_features();
        let mut data = vec![0.0f32; n_rows * n_cols];
        let mut offset = 0;
        for step in &self.steps {
            let column = table.column(step.column()).ok_or_else(|| {
                ArtifactError::Transform(format!(
                    "column '{}' is required by the model but absent from the data (columns present: {})",
                    step.column(),
                    table.names().join(", ")
                ))
            })?;
            match step {
                FeatureStep::Numeric {
                    impute, mean, std, ..
                } => {
                    for row in 0..n_rows {
                        let x = numeric_value(column, row)?.unwrap_or(*impute);
                        data[row * n_cols + offset] = ((x - mean) / std) as f32;
                    }
                    offset += 1;
                }
                FeatureStep::OneHot {
                    categories, impute, ..
                } => {
                    for row in 0..n_rows {
                        let label = column.values.label(row);
                        let label = label.as_deref().unwrap_or(impute);
                        if let Some(k) = categories.iter().position(|c| c == label) {
                            data[row * n_cols + offset + k] = 1.0;
                        }
                    }
                    offset += categories.len();
                }
            }
        }
        Ok(Matrix::new(n_rows, n_cols, data))
    }

    /// Encodes the target column for training: class index or standardised value.
    /// Rows with a missing target are an error; the data stage removes them before fitting.
    pub fn encode_target(&self, column: &RawColumn) -> Result<Vec<f32>> {
        (0..column.values.len())
            .map(|row| match &self.target_encoding {
                TargetEncoding::Classes { labels } => {
                    let label = column.values.label(row).ok_or_else(|| {
                        ArtifactError::Transform(format!(
                            "target '{}' is missing in row {}",
                            column.name,
                            row + 1
                        ))
                    })?;
                    labels
                        .iter()
                        .position(|l| *l == label)
                        .map(|i| i as f32)
                        .ok_or_else(|| {
                            ArtifactError::Transform(format!(
                                "target label '{label}' in row {} was not seen in training (known: {})",
                                row + 1,
                                labels.join(", ")
                            ))
                        })
                }
                TargetEncoding::Standardized { mean, std } => {
                    let y = numeric_value(column, row)?.ok_or_else(|| {
                        ArtifactError::Transform(format!(
                            "target '{}' is missing in row {}",
                            column.name,
                            row + 1
                        ))
                    })?;
                    Ok(((y - mean) / std) as f32)
                }
            })
            .collect()
    }

    /// Maps a network output for regression back to the target's units.
    pub fn decode_regression(&self, value: f32) -> f64 {
        match &self.target_encoding {
            TargetEncoding::Standardized { mean, std } => value as f64 * std + mean,
            TargetEncoding::Classes { .. } => value as f64,
        }
    }

    /// The scale of the target (its standard deviation) for regression, 1 otherwise.
    pub fn target_scale(&self) -> f64 {
        match &self.target_encoding {
            TargetEncoding::Standardized { std, .. } => *std,
            TargetEncoding::Classes { .. } => 1.0,
        }
    }
}

/// Reads row `row` of `column` as a number; text is parsed, and text that is not a number is an
/// error that names the column and the row.
fn numeric_value(column: &RawColumn, row: usize) -> Result<Option<f64>> {
    match &column.values {
        ColumnValues::Numeric(v) => Ok(v[row]),
        ColumnValues::Text(v) => match &v[row] {
            None => Ok(None),
            Some(s) => s.trim().parse::<f64>().map(Some).map_err(|_| {
                ArtifactError::Transform(format!(
                    "column '{}' row {}: expected a number, found '{}'",
                    column.name,
                    row + 1,
                    s
                ))
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transform() -> FeatureTransform {
        FeatureTransform {
            schema_version: crate::SCHEMA_VERSION,
            fitted_on_sha256: "x".into(),
            fitted_rows: 10,
            target: "y".into(),
            task: Task::Binary,
            target_encoding: TargetEncoding::Classes {
                labels: vec!["no".into(), "yes".into()],
            },
            steps: vec![
                FeatureStep::Numeric {
                    column: "a".into(),
                    impute: 2.0,
                    mean: 1.0,
                    std: 2.0,
                },
                FeatureStep::OneHot {
                    column: "c".into(),
                    categories: vec!["red".into(), "blue".into()],
                    impute: "blue".into(),
                },
            ],
            decisions: vec![],
        }
    }

    fn table(a: ColumnValues, c: Vec<Option<&str>>) -> RawTable {
        RawTable {
            columns: vec![
                RawColumn {
                    name: "extra".into(),
                    values: ColumnValues::Numeric(vec![Some(0.0); a.len()]),
                },
                RawColumn {
                    name: "a".into(),
                    values: a,
                },
                RawColumn {
                    name: "c".into(),
                    values: ColumnValues::Text(
                        c.into_iter().map(|s| s.map(String::from)).collect(),
                    ),
                },
            ],
        }
    }

    #[test]
    fn applies_documented_policy() {
        let t = transform();
        let m = t
            .transform(&table(
                ColumnValues::Numeric(vec![Some(3.0), None, Some(1.0)]),
                vec![Some("red"), None, Some("green")],
            ))
            .unwrap();
        assert_eq!(m.n_cols, 3);
        // 3 -> (3-1)/2 = 1; missing -> impute 2 -> 0.5; unseen 'green' -> zeros.
        assert_eq!(m.row(0), &[1.0, 1.0, 0.0]);
        assert_eq!(m.row(1), &[0.5, 0.0, 1.0]);
        assert_eq!(m.row(2), &[0.0, 0.0, 0.0]);
        assert_eq!(t.feature_names(), vec!["a", "c=red", "c=blue"]);
    }

    #[test]
    fn numbers_as_text_are_parsed_and_garbage_is_reported() {
        let t = transform();
        let m = t
            .transform(&table(
                ColumnValues::Text(vec![Some(" 5 ".into())]),
                vec![Some("red")],
            ))
            .unwrap();
        assert_eq!(m.row(0)[0], 2.0);
        let err = t
            .transform(&table(
                ColumnValues::Text(vec![Some("five".into())]),
                vec![Some("red")],
            ))
            .unwrap_err();
        assert!(err.to_string().contains("column 'a' row 1"), "{err}");
    }

    #[test]
    fn absent_column_is_named() {
        let t = transform();
        let err = t
            .transform(&RawTable {
                columns: vec![RawColumn {
                    name: "a".into(),
                    values: ColumnValues::Numeric(vec![Some(1.0)]),
                }],
            })
            .unwrap_err();
        assert!(err.to_string().contains("column 'c' is required"), "{err}");
    }

    #[test]
    fn target_encoding() {
        let t = transform();
        let y = RawColumn {
            name: "y".into(),
            values: ColumnValues::Text(vec![Some("yes".into()), Some("no".into())]),
        };
        assert_eq!(t.encode_target(&y).unwrap(), vec![1.0, 0.0]);
        let bad = RawColumn {
            name: "y".into(),
            values: ColumnValues::Text(vec![Some("maybe".into())]),
        };
        assert!(t.encode_target(&bad).is_err());
    }

    #[test]
    fn round_trips() {
        let t = transform();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<FeatureTransform>(&json).unwrap(), t);
    }
}
