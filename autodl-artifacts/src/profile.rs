//! The data profile: what each column holds, and what the target asks for.

use serde::{Deserialize, Serialize};

use crate::table::Task;

/// How a column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Numbers (including numbers stored as text).
    Numeric,
    /// Two values spelled as booleans (`true`/`false`, `yes`/`no`, `y`/`n`, `t`/`f`), read as 1/0.
    Boolean,
    /// Strings that name categories.
    Categorical,
    /// Dates or date-times (`YYYY-MM-DD`, optionally with a time of day).
    Datetime,
    /// Free text: mostly distinct values of several words.
    Text,
}

impl std::fmt::Display for ColumnKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ColumnKind::Numeric => "numeric",
            ColumnKind::Boolean => "boolean",
            ColumnKind::Categorical => "categorical",
            ColumnKind::Datetime => "datetime",
            ColumnKind::Text => "text",
        })
    }
}

/// Summary statistics of a numeric column (missing values excluded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSummary {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator; 0 for one value).
    pub std: f64,
}

impl NumericSummary {
    /// The scale to standardise by: the standard deviation, or 1 for a constant column.
    pub fn scale(&self) -> f64 {
        if self.std > 0.0 { self.std } else { 1.0 }
    }

    /// Summarises the non-missing values; `None` if there are none.
    ///
    /// Blocks of 256 values get an exact two-pass mean and sum of squared deviations, merged
    /// into the running totals by Chan et al.'s pairwise update: as stable as Welford's
    /// per-value update, without its division per value (which bound the data stage's
    /// profiling on million-row columns).
    pub fn of(values: impl Iterator<Item = f64>) -> Option<NumericSummary> {
        const BLOCK: usize = 256;
        let mut n = 0usize;
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut mean, mut m2) = (0.0f64, 0.0f64);
        let mut block = [0.0f64; BLOCK];
        let mut len = 0;
        let merge = |block: &[f64], n: &mut usize, mean: &mut f64, m2: &mut f64| {
            let k = block.len() as f64;
            let block_mean = block.iter().sum::<f64>() / k;
            let block_m2: f64 = block.iter().map(|x| (x - block_mean).powi(2)).sum();
            let total = *n as f64 + k;
            let delta = block_mean - *mean;
            *m2 += block_m2 + delta * delta * (*n as f64) * k / total;
            *mean += delta * k / total;
            *n += block.len();
        };
        for x in values {
            min = min.min(x);
            max = max.max(x);
            block[len] = x;
            len += 1;
            if len == BLOCK {
                merge(&block, &mut n, &mut mean, &mut m2);
                len = 0;
            }
        }
        if len > 0 {
            merge(&block[..len], &mut n, &mut mean, &mut m2);
        }
        (n > 0).then(|| NumericSummary {
            min,
            max,
            mean,
            std: if n > 1 {
                (m2 / (n - 1) as f64).sqrt()
            } else {
                0.0
            },
        })
    }
}

/// Profile of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    /// Column name.
    pub name: String,
    /// The storage type the file declared (e.g. `f64`, `i64`, `str`).
    pub source_type: String,
    /// How autodl reads it.
    pub kind: ColumnKind,
    /// Missing values.
    pub missing: usize,
    /// Missing values as a share of rows.
    pub missing_share: f64,
    /// Distinct non-missing values.
    pub distinct: usize,
    /// Numeric summary, for numeric columns with at least one value.
    pub numeric: Option<NumericSummary>,
    /// The most frequent categories with their counts (categorical columns, at most 10).
    pub top_categories: Vec<(String, usize)>,
    /// Share of the non-missing values taken by the most frequent one.
    #[serde(default)]
    pub top_share: f64,
    /// A single distinct value (or none).
    #[serde(default)]
    pub constant: bool,
    /// One value covers at least 99% of the non-missing values.
    #[serde(default)]
    pub near_constant: bool,
    /// Identifier-like: a distinct value in every row (integers or text), so it names rows
    /// rather than describing them.
    #[serde(default)]
    pub id_like: bool,
    /// Numeric values beyond three interquartile ranges outside the quartiles.
    #[serde(default)]
    pub outliers: usize,
    /// How well this column alone predicts the target on rows it was not fitted on: accuracy
    /// for classification, R² for regression (see the data stage's leakage check). `None` for
    /// the target and for columns not checked.
    #[serde(default)]
    pub alone_predicts_target: Option<f64>,
}

/// Profile of a whole table and of its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataProfile {
    /// Schema version of this artifact.
    pub schema_version: u32,
    /// SHA-256 of the source file.
    pub source_sha256: String,
    /// Rows in the file.
    pub n_rows: usize,
    /// Every column, in file order (the target included).
    pub columns: Vec<ColumnProfile>,
    /// The target column.
    pub target: String,
    /// The inferred (or requested) task.
    pub task: Task,
    /// Why that task was chosen.
    pub task_reason: String,
    /// Class labels and counts for classification (sorted by label).
    pub class_counts: Vec<(String, usize)>,
    /// Rows that repeat an earlier row exactly (all columns).
    #[serde(default)]
    pub duplicate_rows: usize,
    /// Test rows whose features (all columns but the target) equal a training row's; filled in
    /// once the data is split.
    #[serde(default)]
    pub test_rows_also_in_train: Option<usize>,
    /// How the problem was formulated when the user left it open: the target chosen and
    /// why, a labels file joined to its table. Empty when everything was given.
    #[serde(default)]
    pub formulation: Vec<String>,
    /// Set when the profile was computed by streaming over the file: the rows of the uniform
    /// sample that the sample-based fields describe (column kinds, top categories, duplicate
    /// rows, the leak check; outliers are the sample's count scaled to the file). Row counts,
    /// missing counts, numeric summaries, class counts and distinct counts (exact up to 131,072
    /// per column, then estimated within about 1%) cover every row.
    #[serde(default)]
    pub sampled_rows: Option<usize>,
}

crate::versioned!(DataProfile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_textbook_values() {
        let s = NumericSummary::of([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0].into_iter()).unwrap();
        assert_eq!(s.mean, 5.0);
        assert!((s.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (2.0, 9.0));
        assert!(NumericSummary::of(std::iter::empty()).is_none());
    }

    #[test]
    fn profile_round_trips() {
        let p = DataProfile {
            schema_version: crate::SCHEMA_VERSION,
            source_sha256: "ab".into(),
            n_rows: 3,
            columns: vec![ColumnProfile {
                name: "x".into(),
                source_type: "f64".into(),
                kind: ColumnKind::Numeric,
                missing: 1,
                missing_share: 1.0 / 3.0,
                distinct: 2,
                numeric: NumericSummary::of([1.0, 2.0].into_iter()),
                top_categories: vec![],
                top_share: 0.5,
                constant: false,
                near_constant: false,
                id_like: false,
                outliers: 0,
                alone_predicts_target: Some(0.5),
            }],
            target: "y".into(),
            task: Task::Binary,
            task_reason: "two labels".into(),
            class_counts: vec![("a".into(), 2), ("b".into(), 1)],
            duplicate_rows: 0,
            test_rows_also_in_train: Some(0),
            formulation: vec!["the last column".into()],
            sampled_rows: Some(2),
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<DataProfile>(&json).unwrap(), p);
    }

    #[test]
    fn numeric_summary_matches_a_two_pass_computation_even_far_from_zero() {
        for n in [1usize, 2, 255, 256, 257, 1000, 5003] {
            // Values around 1e9 with a spread of a few units: the naive sum-of-squares formula
            // loses every digit here; two passes do not.
            let values: Vec<f64> = (0..n)
                .map(|i| 1e9 + ((i * 7919) % 1000) as f64 / 100.0)
                .collect();
            let mean = values.iter().sum::<f64>() / n as f64;
            let var = if n > 1 {
                values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
            } else {
                0.0
            };
            let s = NumericSummary::of(values.iter().copied()).unwrap();
            assert!(
                (s.mean - mean).abs() <= 1e-15 * mean.abs(),
                "n {n}: {} vs {mean}",
                s.mean
            );
            assert!(
                (s.std - var.sqrt()).abs() <= 1e-9 * var.sqrt().max(1e-300),
                "n {n}"
            );
            assert_eq!(s.min, values.iter().copied().fold(f64::INFINITY, f64::min));
            assert_eq!(
                s.max,
                values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            );
        }
        assert!(NumericSummary::of(std::iter::empty()).is_none());
    }
}
