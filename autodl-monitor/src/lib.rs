//! Monitoring: per-feature drift of new data against the training data.
//!
//! In: the fitted [`FeatureTransform`] (which says which columns the model reads and whether
//! each is numeric or categorical) and raw tables. Out: a [`DriftReference`] built from the
//! training rows, and a [`DriftReport`] for any later batch.
//!
//! Method (the documented default): numeric columns get the two-sample Kolmogorov–Smirnov test
//! on non-missing values (exact p-value up to 10,000 values a side, asymptotic beyond);
//! categorical columns get the chi-square test of homogeneity on category counts (missing
//! counted as a category; Yates' correction for two categories). Every column also gets the
//! population stability index (PSI) and the Jensen–Shannon distance over reference deciles or
//! categories, and numeric columns the Wasserstein distance. The p-values are
//! adjusted with Benjamini–Hochberg across columns, and a column is flagged when its adjusted
//! p-value is below `alpha` (0.05 by default), so the false-alarm rate of the overall flag stays
//! near `alpha` however many columns there are.
//!
//! Invariant: a sample compared with itself drifts nowhere (every statistic is 0, every p is 1).
//!
//! ```no_run
//! # let (transform, train, current): (autodl_artifacts::transform::FeatureTransform, autodl_artifacts::table::RawTable, autodl_artifacts::table::RawTable) = todo!();
//! let reference = autodl_monitor::build_reference(&transform, &train, "training split").unwrap();
//! let report = autodl_monitor::detect(&reference, &current, &autodl_monitor::DriftConfig::default()).unwrap();
//! println!("drift: {:?}", report.drifted_columns);
//! ```

pub mod kstwo;
pub mod multivariate;
pub mod performance;
pub mod stats;
pub mod streaming;

use std::collections::BTreeMap;

use autodl_artifacts::SCHEMA_VERSION;
use autodl_artifacts::drift::{DriftReference, DriftReport, FeatureDrift, FeatureReference};
use autodl_artifacts::table::{ColumnValues, RawColumn, RawTable};
use autodl_artifacts::transform::{FeatureStep, FeatureTransform};

/// Errors of the monitor stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// A monitored column is absent from the data.
    #[error("column '{column}' is monitored but absent from the data (columns present: {})", present.join(", "))]
    MissingColumn {
        /// The column.
        column: String,
        /// The columns the data has.
        present: Vec<String>,
    },
    /// A numeric column holds text that is not a number.
    #[error("column '{column}' row {row}: expected a number, found '{value}'")]
    NotNumeric {
        /// The column.
        column: String,
        /// Row, from 1.
        row: usize,
        /// The offending text.
        value: String,
    },
    /// The data has no rows.
    #[error("the data has no rows to compare")]
    Empty,
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Result alias for this crate.
pub type Result<T, E = MonitorError> = std::result::Result<T, E>;

/// Settings of drift detection.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftConfig {
    /// Significance level for the Benjamini–Hochberg adjusted p-values.
    pub alpha: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig { alpha: 0.05 }
    }
}

/// Reference values kept per numeric column at most (a deterministic evenly spaced subsample
/// of the sorted values beyond that).
pub const MAX_REFERENCE_VALUES: usize = 100_000;

/// The label under which missing categorical values are counted.
const MISSING: &str = "<missing>";

fn column<'a>(table: &'a RawTable, name: &str) -> Result<&'a RawColumn> {
    table
        .column(name)
        .ok_or_else(|| MonitorError::MissingColumn {
            column: name.to_string(),
            present: table.names().iter().map(|s| s.to_string()).collect(),
        })
}

/// Non-missing numbers of a column (text is parsed), sorted, and the missing count.
fn sorted_numbers(column: &RawColumn) -> Result<(Vec<f64>, usize)> {
    let mut values = Vec::with_capacity(column.values.len());
    let mut missing = 0;
    match &column.values {
        ColumnValues::Numeric(v) => {
            for x in v {
                match x {
                    Some(x) => values.push(*x),
                    None => missing += 1,
                }
            }
        }
        text => {
            for row in 0..text.len() {
                match text.label_ref(row) {
                    None => missing += 1,
                    Some(s) => values.push(s.trim().parse::<f64>().map_err(|_| {
                        MonitorError::NotNumeric {
                            column: column.name.clone(),
                            row: row + 1,
                            value: s.to_string(),
                        }
                    })?),
                }
            }
        }
    }
    values.sort_by(f64::total_cmp);
    Ok((values, missing))
}

fn category_counts(column: &RawColumn) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for row in 0..column.values.len() {
        let label = column
            .values
            .label(row)
            .unwrap_or_else(|| MISSING.to_string());
        *counts.entry(label).or_insert(0) += 1;
    }
    counts
}

/// Builds the reference from the training rows, for every column the transform reads.
pub fn build_reference(
    transform: &FeatureTransform,
    train: &RawTable,
    built_from: &str,
) -> Result<DriftReference> {
    // Dates move by construction and free text has no distribution to compare, so neither is
    // monitored; every other step's column is.
    let columns: Vec<(&str, bool)> = transform
        .steps
        .iter()
        .filter(|step| !matches!(step, FeatureStep::Date { .. } | FeatureStep::Text { .. }))
        .map(|step| (step.column(), matches!(step, FeatureStep::Numeric { .. })))
        .collect();
    reference_of(train, &columns, built_from)
}

/// Builds a reference without a fitted transform, for monitoring a table on its own: every
/// column but those in `skip`, numeric where the table stores numbers, categorical otherwise.
pub fn build_reference_from_table(
    train: &RawTable,
    skip: &[&str],
    built_from: &str,
) -> Result<DriftReference> {
    let columns: Vec<(&str, bool)> = train
        .columns
        .iter()
        .filter(|c| !skip.contains(&c.name.as_str()))
        .map(|c| {
            (
                c.name.as_str(),
                matches!(c.values, ColumnValues::Numeric(_)),
            )
        })
        .collect();
    reference_of(train, &columns, built_from)
}

/// The reference of `columns` (name, numeric) of `train`.
fn reference_of(
    train: &RawTable,
    columns: &[(&str, bool)],
    built_from: &str,
) -> Result<DriftReference> {
    let rows = train.n_rows();
    if rows == 0 {
        return Err(MonitorError::Empty);
    }
    let features = columns
        .iter()
        .map(|&(name, numeric)| {
            let col = column(train, name)?;
            Ok(if numeric {
                let (mut values, missing) = sorted_numbers(col)?;
                if values.len() > MAX_REFERENCE_VALUES {
                    let n = values.len();
                    values = (0..MAX_REFERENCE_VALUES)
                        .map(|i| values[i * (n - 1) / (MAX_REFERENCE_VALUES - 1)])
                        .collect();
                }
                let mut edges: Vec<f64> = (1..10)
                    .filter_map(|k| values.get(k * values.len() / 10).copied())
                    .collect();
                edges.dedup();
                FeatureReference::Numeric {
                    column: col.name.clone(),
                    sorted_values: values,
                    bin_edges: edges,
                    missing_share: missing as f64 / rows as f64,
                }
            } else {
                FeatureReference::Categorical {
                    column: col.name.clone(),
                    missing_share: col.values.missing() as f64 / rows as f64,
                    counts: category_counts(col),
                }
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DriftReference {
        schema_version: SCHEMA_VERSION,
        built_from: built_from.to_string(),
        rows,
        features,
    })
}

/// Compares `current` with the reference, column by column; see the crate documentation for
/// the method. Drift is a finding in the report, never an error.
pub fn detect(
    reference: &DriftReference,
    current: &RawTable,
    cfg: &DriftConfig,
) -> Result<DriftReport> {
    if !(cfg.alpha > 0.0 && cfg.alpha < 1.0) {
        return Err(MonitorError::Config(format!(
            "alpha must be in (0, 1), got {}",
            cfg.alpha
        )));
    }
    let rows = current.n_rows();
    if rows == 0 {
        return Err(MonitorError::Empty);
    }
    let mut findings = Vec::with_capacity(reference.features.len());
    for feature in &reference.features {
        let col = column(current, feature.column())?;
        let missing_share = col.values.missing() as f64 / rows as f64;
        let (test, statistic, p_value, psi, jensen_shannon, wasserstein) = match feature {
            FeatureReference::Numeric {
                sorted_values,
                bin_edges,
                ..
            } => {
                let (values, _) = sorted_numbers(col)?;
                let (d, p) = stats::ks_2samp(sorted_values, &values);
                let (r, c) = (
                    stats::bin_counts(sorted_values, bin_edges),
                    stats::bin_counts(&values, bin_edges),
                );
                (
                    "ks",
                    d,
                    p,
                    stats::psi(&r, &c),
                    stats::jensen_shannon(&r, &c, Some(2.0)),
                    Some(stats::wasserstein(sorted_values, &values)),
                )
            }
            FeatureReference::Categorical { counts, .. } => {
                let now = category_counts(col);
                let mut labels: Vec<&String> = counts.keys().collect();
                labels.extend(now.keys().filter(|k| !counts.contains_key(*k)));
                let r: Vec<f64> = labels
                    .iter()
                    .map(|l| counts.get(*l).copied().unwrap_or(0) as f64)
                    .collect();
                let c: Vec<f64> = labels
                    .iter()
                    .map(|l| now.get(*l).copied().unwrap_or(0) as f64)
                    .collect();
                let (stat, p, _) = stats::chi2_homogeneity(&r, &c);
                (
                    "chi2",
                    stat,
                    p,
                    stats::psi(&r, &c),
                    stats::jensen_shannon(&r, &c, Some(2.0)),
                    None,
                )
            }
        };
        findings.push(FeatureDrift {
            column: feature.column().to_string(),
            test: test.into(),
            statistic,
            p_value,
            p_adjusted: p_value,
            psi,
            jensen_shannon,
            wasserstein,
            missing_share,
            drifted: false,
        });
    }
    let adjusted =
        stats::benjamini_hochberg(&findings.iter().map(|f| f.p_value).collect::<Vec<_>>());
    for (f, p) in findings.iter_mut().zip(adjusted) {
        f.p_adjusted = p;
        f.drifted = p < cfg.alpha;
    }
    let drifted_columns: Vec<String> = findings
        .iter()
        .filter(|f| f.drifted)
        .map(|f| f.column.clone())
        .collect();
    Ok(DriftReport {
        schema_version: SCHEMA_VERSION,
        reference_rows: reference.rows,
        current_rows: rows,
        alpha: cfg.alpha,
        drift_detected: !drifted_columns.is_empty(),
        drifted_columns,
        features: findings,
        method: format!(
            "two-sample Kolmogorov–Smirnov (numeric; exact p up to 10,000 values a side, finite-n Kolmogorov \
             distribution beyond) or chi-square homogeneity (categorical); \
             Benjamini–Hochberg adjusted p < {} flags a column; PSI over reference deciles or categories is reported",
            cfg.alpha
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodl_artifacts::table::Task;
    use autodl_artifacts::transform::TargetEncoding;

    fn transform() -> FeatureTransform {
        FeatureTransform {
            schema_version: SCHEMA_VERSION,
            fitted_on_sha256: String::new(),
            fitted_rows: 0,
            target: "y".into(),
            task: Task::Binary,
            target_encoding: TargetEncoding::Classes {
                labels: vec!["a".into(), "b".into()],
            },
            steps: (0..5)
                .map(|k| FeatureStep::Numeric {
                    column: format!("x{k}"),
                    impute: 0.0,
                    mean: 0.0,
                    std: 1.0,
                    clip: None,
                    missing_indicator: false,
                })
                .chain([FeatureStep::OneHot {
                    column: "c".into(),
                    categories: vec!["p".into(), "q".into(), "r".into()],
                    impute: "p".into(),
                    other: false,
                }])
                .collect(),
            decisions: vec![],
        }
    }

    /// A deterministic pseudo-random table (SplitMix64 uniforms); `shift` is added to x0 and x3,
    /// and `skew` moves category shares.
    fn table(n: usize, seed: u64, shift: f64, skew: bool) -> RawTable {
        let mut state = seed;
        let mut uniform = || {
            state = autodl_artifacts::context::splitmix64(state);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut columns: Vec<RawColumn> = (0..5)
            .map(|k| RawColumn {
                name: format!("x{k}"),
                values: ColumnValues::Numeric(
                    (0..n)
                        .map(|_| {
                            let s = if k == 0 || k == 3 { shift } else { 0.0 };
                            Some(uniform() + uniform() + uniform() + s)
                        })
                        .collect(),
                ),
            })
            .collect();
        columns.push(RawColumn {
            name: "c".into(),
            values: ColumnValues::Text(
                (0..n)
                    .map(|_| {
                        let u = uniform();
                        let cut = if skew { 0.6 } else { 0.33 };
                        Some(
                            if u < cut {
                                "p"
                            } else if u < 0.66 {
                                "q"
                            } else {
                                "r"
                            }
                            .to_string(),
                        )
                    })
                    .collect(),
            ),
        });
        RawTable { columns }
    }

    #[test]
    fn a_sample_against_itself_drifts_nowhere() {
        let train = table(500, 1, 0.0, false);
        let reference = build_reference(&transform(), &train, "train").unwrap();
        let report = detect(&reference, &train, &DriftConfig::default()).unwrap();
        assert!(!report.drift_detected);
        for f in &report.features {
            assert_eq!((f.statistic, f.p_value), (0.0, 1.0), "{f:?}");
            assert!(f.psi.abs() < 1e-12);
        }
    }

    #[test]
    fn flags_exactly_the_shifted_columns() {
        let reference =
            build_reference(&transform(), &table(1000, 1, 0.0, false), "train").unwrap();
        let same = detect(
            &reference,
            &table(300, 2, 0.0, false),
            &DriftConfig::default(),
        )
        .unwrap();
        assert!(!same.drift_detected, "{:?}", same.drifted_columns);
        let shifted = detect(
            &reference,
            &table(300, 3, 0.5, true),
            &DriftConfig::default(),
        )
        .unwrap();
        assert_eq!(shifted.drifted_columns, vec!["x0", "x3", "c"]);
    }

    #[test]
    fn missing_column_and_bad_numbers_are_errors() {
        let reference = build_reference(&transform(), &table(50, 1, 0.0, false), "train").unwrap();
        let mut t = table(10, 2, 0.0, false);
        t.columns.remove(2);
        assert!(matches!(
            detect(&reference, &t, &DriftConfig::default()),
            Err(MonitorError::MissingColumn { .. })
        ));
        let mut t = table(10, 2, 0.0, false);
        t.columns[0].values = ColumnValues::Text(vec![Some("abc".into()); 10]);
        assert!(matches!(
            detect(&reference, &t, &DriftConfig::default()),
            Err(MonitorError::NotNumeric { row: 1, .. })
        ));
    }
}
