//! Raw tables, dense matrices, the task and the metric.

use serde::{Deserialize, Serialize};

/// The values of one raw column, as read from a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ColumnValues {
    /// Numbers (integers, floats and booleans are read as numbers); `None` is missing.
    Numeric(Vec<Option<f64>>),
    /// Strings; `None` is missing.
    Text(Vec<Option<String>>),
    /// Strings stored once per distinct value (what the file readers produce): row `i` is
    /// `levels[codes[i]]`, or missing where `codes[i]` is [`MISSING_CODE`].
    Dict {
        /// The distinct strings (shared by the row subsets [`ColumnValues::take`] makes).
        #[serde(with = "shared_levels")]
        levels: std::sync::Arc<Vec<String>>,
        /// One index into `levels` per row.
        codes: Vec<u32>,
    },
}

/// Serialises a dictionary's shared levels as a plain list.
mod shared_levels {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(v: &Arc<Vec<String>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Vec<String>>, D::Error> {
        Vec::<String>::deserialize(d).map(Arc::new)
    }
}

/// FNV-1a with a final multiply-xorshift: a quick hash for dictionary-encoding strings that
/// come from files (not attacker-chosen keys).
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        let z = self.0.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A `HashMap`/`HashSet` hasher builder for [`FastHasher`].
pub type FastHash = std::hash::BuildHasherDefault<FastHasher>;

/// The code of a missing value in [`ColumnValues::Dict`].
pub const MISSING_CODE: u32 = u32::MAX;

impl ColumnValues {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Numeric(v) => v.len(),
            ColumnValues::Text(v) => v.len(),
            ColumnValues::Dict { codes, .. } => codes.len(),
        }
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of missing values.
    pub fn missing(&self) -> usize {
        match self {
            ColumnValues::Numeric(v) => v.iter().filter(|x| x.is_none()).count(),
            ColumnValues::Text(v) => v.iter().filter(|x| x.is_none()).count(),
            ColumnValues::Dict { codes, .. } => {
                codes.iter().filter(|&&c| c == MISSING_CODE).count()
            }
        }
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> ColumnValues {
        match self {
            ColumnValues::Numeric(v) => {
                ColumnValues::Numeric(indices.iter().map(|&i| v[i]).collect())
            }
            ColumnValues::Text(v) => {
                ColumnValues::Text(indices.iter().map(|&i| v[i].clone()).collect())
            }
            ColumnValues::Dict { levels, codes } => ColumnValues::Dict {
                levels: levels.clone(),
                codes: indices.iter().map(|&i| codes[i]).collect(),
            },
        }
    }

    /// `f` of every row's text (`None` where missing; numbers rendered as labels), computed
    /// once per distinct value of a dictionary column.
    /// Only rows `rows` are produced.
    pub fn map_text<T: Clone>(
        &self,
        rows: std::ops::Range<usize>,
        f: impl Fn(Option<&str>) -> T,
    ) -> Vec<T> {
        match self {
            // Once per distinct value, unless most rows have their own.
            ColumnValues::Dict { levels, codes } if levels.len() <= rows.len() / 2 => {
                let by_level: Vec<T> = levels.iter().map(|l| f(Some(l))).collect();
                let missing = f(None);
                codes[rows]
                    .iter()
                    .map(|&c| match c {
                        MISSING_CODE => missing.clone(),
                        c => by_level[c as usize].clone(),
                    })
                    .collect()
            }
            _ => rows.map(|row| f(self.label_ref(row).as_deref())).collect(),
        }
    }

    /// Whether row `row` is missing.
    pub fn is_missing(&self, row: usize) -> bool {
        match self {
            ColumnValues::Numeric(v) => v[row].is_none(),
            ColumnValues::Text(v) => v[row].is_none(),
            ColumnValues::Dict { codes, .. } => codes[row] == MISSING_CODE,
        }
    }

    /// Every distinct label (see [`ColumnValues::label`]) with its count, in no particular
    /// order; numbers are rendered once per distinct value.
    pub fn label_counts(&self) -> Vec<(String, usize)> {
        let mut counts: std::collections::HashMap<std::borrow::Cow<'_, str>, usize, FastHash> =
            std::collections::HashMap::default();
        match self {
            ColumnValues::Numeric(v) => {
                let mut by_bits: std::collections::HashMap<u64, usize, FastHash> =
                    std::collections::HashMap::default();
                for x in v.iter().flatten() {
                    // -0.0 and 0.0 print alike; merged through the labels below.
                    *by_bits.entry(x.to_bits()).or_default() += 1;
                }
                for (bits, k) in by_bits {
                    let label = format_number(f64::from_bits(bits));
                    *counts.entry(std::borrow::Cow::Owned(label)).or_default() += k;
                }
            }
            ColumnValues::Dict { levels, codes } => {
                let mut per_level = vec![0usize; levels.len()];
                for &c in codes.iter().filter(|&&c| c != MISSING_CODE) {
                    per_level[c as usize] += 1;
                }
                for (l, k) in levels.iter().zip(per_level).filter(|(_, k)| *k > 0) {
                    *counts
                        .entry(std::borrow::Cow::Borrowed(l.as_str()))
                        .or_default() += k;
                }
            }
            ColumnValues::Text(v) => {
                for l in v.iter().flatten() {
                    *counts
                        .entry(std::borrow::Cow::Borrowed(l.as_str()))
                        .or_default() += 1;
                }
            }
        }
        counts
            .into_iter()
            .map(|(l, k)| (l.into_owned(), k))
            .collect()
    }

    /// Each row's index into `labels`: `Ok(None)` where missing, `Err(row)` for the first row
    /// whose label is not among them. Numbers are rendered once per distinct value.
    pub fn label_indices(&self, labels: &[String]) -> Result<Vec<Option<u32>>, usize> {
        let index: std::collections::HashMap<&str, u32, FastHash> = labels
            .iter()
            .enumerate()
            .map(|(k, l)| (l.as_str(), k as u32))
            .collect();
        const UNKNOWN: u32 = u32::MAX;
        let found: Vec<Option<u32>> = match self {
            ColumnValues::Numeric(v) => {
                let mut seen: std::collections::HashMap<u64, u32, FastHash> =
                    std::collections::HashMap::default();
                v.iter()
                    .map(|x| {
                        x.map(|x| {
                            *seen.entry(x.to_bits()).or_insert_with(|| {
                                index
                                    .get(format_number(x).as_str())
                                    .copied()
                                    .unwrap_or(UNKNOWN)
                            })
                        })
                    })
                    .collect()
            }
            values => values.map_text(0..values.len(), |l| {
                l.map(|l| index.get(l).copied().unwrap_or(UNKNOWN))
            }),
        };
        match found.iter().position(|&i| i == Some(UNKNOWN)) {
            Some(row) => Err(row),
            None => Ok(found),
        }
    }

    /// Dictionary-encodes text: each distinct string once, in order of first appearance.
    pub fn dict_from<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ColumnValues {
        let mut index: std::collections::HashMap<&'a str, u32, FastHash> =
            std::collections::HashMap::default();
        let mut levels: Vec<String> = Vec::new();
        let codes = values
            .map(|v| match v {
                None => MISSING_CODE,
                Some(s) => *index.entry(s).or_insert_with(|| {
                    levels.push(s.to_string());
                    (levels.len() - 1) as u32
                }),
            })
            .collect();
        ColumnValues::Dict {
            levels: std::sync::Arc::new(levels),
            codes,
        }
    }

    /// The value at `row` rendered as a category label (numbers print without a trailing `.0`).
    pub fn label(&self, row: usize) -> Option<String> {
        self.label_ref(row).map(std::borrow::Cow::into_owned)
    }

    /// Like [`ColumnValues::label`], borrowing text instead of copying it.
    pub fn label_ref(&self, row: usize) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            ColumnValues::Numeric(v) => v[row].map(|x| std::borrow::Cow::Owned(format_number(x))),
            ColumnValues::Text(v) => v[row].as_deref().map(std::borrow::Cow::Borrowed),
            ColumnValues::Dict { levels, codes } => (codes[row] != MISSING_CODE)
                .then(|| std::borrow::Cow::Borrowed(levels[codes[row] as usize].as_str())),
        }
    }
}

/// Renders a number the way a person wrote it in a CSV: `3` rather than `3.0`.
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// One named raw column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawColumn {
    /// Column name as in the file's header.
    pub name: String,
    /// The values.
    pub values: ColumnValues,
}

/// A table as read from a file: named columns of equal length, no types beyond number/string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RawTable {
    /// The columns, in file order.
    pub columns: Vec<RawColumn>,
}

impl RawTable {
    /// Number of rows (0 for a table without columns).
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&RawColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Column names in file order.
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The rows at `indices`, every column.
    pub fn take(&self, indices: &[usize]) -> RawTable {
        RawTable {
            columns: self
                .columns
                .iter()
                .map(|c| RawColumn {
                    name: c.name.clone(),
                    values: c.values.take(indices),
                })
                .collect(),
        }
    }
}

/// A dense row-major `f32` matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Matrix {
    /// Number of rows.
    pub n_rows: usize,
    /// Number of columns.
    pub n_cols: usize,
    /// `n_rows * n_cols` values, row after row.
    pub data: Vec<f32>,
}

impl Matrix {
    /// Builds a matrix, checking that the data has `n_rows * n_cols` values.
    pub fn new(n_rows: usize, n_cols: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            n_rows * n_cols,
            "matrix data has the wrong length"
        );
        Matrix {
            n_rows,
            n_cols,
            data,
        }
    }

    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.n_cols..(i + 1) * self.n_cols]
    }
}

/// What kind of prediction the data asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Two classes.
    Binary,
    /// Three or more classes.
    Multiclass,
    /// A real-valued target.
    Regression,
}

impl Task {
    /// True for binary and multiclass tasks.
    pub fn is_classification(self) -> bool {
        !matches!(self, Task::Regression)
    }

    /// The metric reported for this task.
    pub fn metric(self) -> Metric {
        match self {
            Task::Binary | Task::Multiclass => Metric::Accuracy,
            Task::Regression => Metric::Rmse,
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Binary => "binary classification",
            Task::Multiclass => "multiclass classification",
            Task::Regression => "regression",
        })
    }
}

/// The quality measure of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Share of correctly classified rows (higher is better).
    Accuracy,
    /// Root mean squared error in the target's own units (lower is better).
    Rmse,
}

impl Metric {
    /// The metric's name as written into artifacts.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Rmse => "rmse",
        }
    }

    /// True when larger values are better.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Accuracy)
    }

    /// Maps a metric value to a score where larger is always better (search maximises it).
    pub fn score(self, value: f64) -> f64 {
        if self.higher_is_better() {
            value
        } else {
            -value
        }
    }

    /// Computes the metric. `outputs` holds one row per sample: class probabilities for
    /// classification, one predicted value for regression. `targets` holds class indices or
    /// values in the same units as the outputs.
    pub fn compute(self, outputs: &Matrix, targets: &[f32]) -> f64 {
        assert_eq!(outputs.n_rows, targets.len(), "one target per output row");
        if targets.is_empty() {
            return f64::NAN;
        }
        match self {
            Metric::Accuracy => {
                let correct = (0..outputs.n_rows)
                    .filter(|&i| argmax(outputs.row(i)) == targets[i] as usize)
                    .count();
                correct as f64 / targets.len() as f64
            }
            Metric::Rmse => {
                let sse: f64 = (0..outputs.n_rows)
                    .map(|i| (outputs.row(i)[0] as f64 - targets[i] as f64).powi(2))
                    .sum();
                (sse / targets.len() as f64).sqrt()
            }
        }
    }
}

impl Metric {
    /// [`Metric::compute`] with error metrics converted from standardised units back to the
    /// target's units (multiplied by the target's standard deviation, `target_scale`);
    /// accuracy is unitless and left as it is.
    pub fn compute_scaled(self, outputs: &Matrix, targets: &[f32], target_scale: f64) -> f64 {
        let value = self.compute(outputs, targets);
        if self.higher_is_better() {
            value
        } else {
            value * target_scale
        }
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// A metric and its value, as written into the run manifest: `{"name": …, "value": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    /// Metric name, e.g. `accuracy` or `rmse`.
    pub name: String,
    /// Its value.
    pub value: f64,
}

impl MetricValue {
    /// A value of `metric`.
    pub fn new(metric: Metric, value: f64) -> Self {
        MetricValue {
            name: metric.name().to_string(),
            value,
        }
    }
}

/// Features and targets of one split, ready for a network.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SplitData {
    /// Transformed features, one row per sample.
    pub x: Matrix,
    /// Class index (as `f32`) for classification, standardised target for regression.
    pub y: Vec<f32>,
}

/// One cross-validation fold: its training rows and the rows it holds out, transformed with
/// the transform refitted on the training rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    /// The fold's training rows.
    pub train: SplitData,
    /// The rows it holds out (validation).
    pub valid: SplitData,
}

/// The three splits and what is needed to interpret them.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedData {
    /// The task.
    pub task: Task,
    /// Number of classes (0 for regression).
    pub n_classes: usize,
    /// Names of the transformed feature columns.
    pub feature_names: Vec<String>,
    /// How the transformed features are laid out (a signal or image when detected).
    pub input_shape: crate::arch::InputShape,
    /// Training split.
    pub train: SplitData,
    /// Validation split (early stopping, model selection).
    pub valid: SplitData,
    /// Test split (reported once, at the end).
    pub test: SplitData,
}

impl PreparedData {
    /// Number of network outputs: classes, or 1 for regression.
    pub fn n_outputs(&self) -> usize {
        if self.task.is_classification() {
            self.n_classes
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_rmse() {
        let out = Matrix::new(3, 2, vec![0.9, 0.1, 0.2, 0.8, 0.6, 0.4]);
        assert_eq!(Metric::Accuracy.compute(&out, &[0.0, 1.0, 1.0]), 2.0 / 3.0);
        let out = Matrix::new(2, 1, vec![1.0, 3.0]);
        assert_eq!(Metric::Rmse.compute(&out, &[2.0, 3.0]), (0.5f64).sqrt());
        assert_eq!(
            Metric::Rmse.compute_scaled(&out, &[2.0, 3.0], 10.0),
            10.0 * (0.5f64).sqrt()
        );
        let probs = Matrix::new(1, 2, vec![0.2, 0.8]);
        assert_eq!(Metric::Accuracy.compute_scaled(&probs, &[1.0], 10.0), 1.0);
        assert!(Metric::Accuracy.score(0.5) > Metric::Accuracy.score(0.4));
        assert!(Metric::Rmse.score(0.4) > Metric::Rmse.score(0.5));
    }

    #[test]
    fn labels_print_like_a_person_wrote_them() {
        let c = ColumnValues::Numeric(vec![Some(3.0), Some(2.5), None]);
        assert_eq!(c.label(0).as_deref(), Some("3"));
        assert_eq!(c.label(1).as_deref(), Some("2.5"));
        assert_eq!(c.label(2), None);
    }

    #[test]
    fn raw_table_round_trips() {
        let t = RawTable {
            columns: vec![
                RawColumn {
                    name: "a".into(),
                    values: ColumnValues::Numeric(vec![Some(1.0), None]),
                },
                RawColumn {
                    name: "b".into(),
                    values: ColumnValues::Text(vec![None, Some("x".into())]),
                },
            ],
        };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<RawTable>(&json).unwrap(), t);
        assert_eq!(t.take(&[1]).n_rows(), 1);
    }
}
