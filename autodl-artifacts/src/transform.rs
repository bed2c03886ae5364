//! The fitted feature transform, and the one implementation of applying it.
//!
//! The data stage fits a [`FeatureTransform`] on the training split only; training, prediction,
//! serving and monitoring all call [`FeatureTransform::transform`] on raw rows, so preprocessing
//! exists once.
//!
//! Policy for data seen at inference time (documented here, tested below):
//! - a missing value in a numeric column is imputed with the training median (and flagged in
//!   the column's missing-indicator feature when training had missing values);
//! - a number given as text is parsed, and so are booleans spelled `true`/`false`, `yes`/`no`,
//!   `y`/`n`, `t`/`f` (any case); other text in a numeric column is an error naming the row;
//! - numbers beyond the clip bounds fitted in training are clipped to them;
//! - a missing categorical value is imputed with the training split's most frequent category;
//! - a category never seen in training (or merged as rare) encodes as the `(other)` feature of
//!   its one-hot block where the block has one, else as all zeros; under frequency encoding it
//!   encodes as 0;
//! - a date that does not parse counts as missing;
//! - a required column that is absent is an error naming it ([`AbsentColumns::Error`], what
//!   [`FeatureTransform::transform`] does) or, by request, treated as entirely missing
//!   ([`AbsentColumns::Impute`]); extra columns are ignored.

use serde::{Deserialize, Serialize};

use crate::table::{ColumnValues, MISSING_CODE, Matrix, RawColumn, RawTable, Task};
use crate::{ArtifactError, Result};

/// How one input column becomes one or more features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureStep {
    /// Impute with the median, clip, then standardise: `(x - mean) / std`; optionally followed
    /// by a 0/1 feature that says the value was missing.
    Numeric {
        /// Source column.
        column: String,
        /// Value used for missing entries (training median).
        impute: f64,
        /// Training mean (after imputation and clipping).
        mean: f64,
        /// Training standard deviation (after imputation and clipping; 1 if it was 0).
        std: f64,
        /// Bounds values are clipped to before standardising (extreme outliers).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clip: Option<[f64; 2]>,
        /// Whether a missing-indicator feature follows.
        #[serde(default)]
        missing_indicator: bool,
    },
    /// Impute with the most frequent category, then one-hot encode.
    OneHot {
        /// Source column.
        column: String,
        /// Known categories, one output feature each, in this order.
        categories: Vec<String>,
        /// Value used for missing entries (most frequent training category).
        impute: String,
        /// Whether a last feature, `(other)`, collects rare and unseen categories.
        #[serde(default)]
        other: bool,
    },
    /// A high-cardinality category as its share of the training rows (0 when unseen).
    Frequency {
        /// Source column.
        column: String,
        /// Each training category and its share of the training rows.
        frequencies: Vec<(String, f64)>,
        /// Value used for missing entries (most frequent training category).
        impute: String,
    },
    /// A date or date-time: days since 1970-01-01 (imputed with the median, standardised),
    /// then month and day of the week as points on the unit circle (sine, cosine), then, when
    /// the column has times of day, the hour likewise; optionally a missing indicator last.
    Date {
        /// Source column.
        column: String,
        /// Days since 1970-01-01 used for missing or unparseable entries (training median).
        impute: f64,
        /// Training mean of the days.
        mean: f64,
        /// Training standard deviation of the days (1 if it was 0).
        std: f64,
        /// Whether the hour-of-day features are produced.
        time: bool,
        /// Whether a missing-indicator feature follows.
        #[serde(default)]
        missing_indicator: bool,
    },
    /// Free text as hashed word unigrams and bigrams (lower-cased, FNV-1a into `buckets`
    /// counts, scaled to unit length); missing text is all zeros.
    Text {
        /// Source column.
        column: String,
        /// Number of hash buckets (features).
        buckets: usize,
    },
}

impl FeatureStep {
    /// The source column.
    pub fn column(&self) -> &str {
        match self {
            FeatureStep::Numeric { column, .. }
            | FeatureStep::OneHot { column, .. }
            | FeatureStep::Frequency { column, .. }
            | FeatureStep::Date { column, .. }
            | FeatureStep::Text { column, .. } => column,
        }
    }

    /// Names of the features this step produces.
    pub fn output_names(&self) -> Vec<String> {
        let missing = |column: &str, yes: bool| yes.then(|| format!("{column}:missing"));
        match self {
            FeatureStep::Numeric {
                column,
                missing_indicator,
                ..
            } => std::iter::once(column.clone())
                .chain(missing(column, *missing_indicator))
                .collect(),
            FeatureStep::OneHot {
                column,
                categories,
                other,
                ..
            } => categories
                .iter()
                .map(|c| format!("{column}={c}"))
                .chain(other.then(|| format!("{column}=(other)")))
                .collect(),
            FeatureStep::Frequency { column, .. } => vec![format!("{column}:frequency")],
            FeatureStep::Date {
                column,
                time,
                missing_indicator,
                ..
            } => {
                let mut parts = vec![
                    "days",
                    "month_sin",
                    "month_cos",
                    "weekday_sin",
                    "weekday_cos",
                ];
                if *time {
                    parts.extend(["hour_sin", "hour_cos"]);
                }
                parts
                    .into_iter()
                    .map(|p| format!("{column}:{p}"))
                    .chain(missing(column, *missing_indicator))
                    .collect()
            }
            FeatureStep::Text { column, buckets } => {
                (0..*buckets).map(|b| format!("{column}:hash{b}")).collect()
            }
        }
    }

    /// Whether this is a numeric step (the kind an exported graph can apply itself).
    pub fn is_numeric(&self) -> bool {
        matches!(self, FeatureStep::Numeric { .. })
    }

    /// Number of features this step produces.
    pub fn width(&self) -> usize {
        match self {
            FeatureStep::Numeric {
                missing_indicator, ..
            } => 1 + usize::from(*missing_indicator),
            FeatureStep::OneHot {
                categories, other, ..
            } => categories.len() + usize::from(*other),
            FeatureStep::Frequency { .. } => 1,
            FeatureStep::Date {
                time,
                missing_indicator,
                ..
            } => 5 + 2 * usize::from(*time) + usize::from(*missing_indicator),
            FeatureStep::Text { buckets, .. } => *buckets,
        }
    }
}

/// Rows below which a transform stays on one thread.
const ROWS_PER_THREAD: usize = 20_000;
/// Rows transformed together, step after step (a few hundred kilobytes of output).
const ROWS_PER_BLOCK: usize = 1024;

/// What [`FeatureTransform::transform_with`] does when a column the transform reads is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbsentColumns {
    /// An error naming the column (the default).
    #[default]
    Error,
    /// Treat the column as missing in every row (imputed as in training).
    Impute,
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
        self.steps.iter().map(FeatureStep::width).sum()
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
        self.transform_with(table, AbsentColumns::Error)
    }

    /// [`FeatureTransform::transform`] with a choice of what an absent column means. Large
    /// tables are transformed in row blocks on all available cores.
    pub fn transform_with(&self, table: &RawTable, absent: AbsentColumns) -> Result<Matrix> {
        self.transform_steps(table, absent, |_| true)
    }

    /// Source columns of the numeric steps, in step order: the columns of the `numeric` input
    /// of a graph that applies the numeric steps itself (see [`FeatureTransform::raw_numeric`]).
    pub fn numeric_columns(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.is_numeric())
            .map(|s| s.column().to_string())
            .collect()
    }

    /// Names of the features of the other steps (categorical, date and text encodings), in
    /// step order: the columns of [`FeatureTransform::encode_non_numeric`]'s matrix.
    pub fn non_numeric_feature_names(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| !s.is_numeric())
            .flat_map(FeatureStep::output_names)
            .collect()
    }

    /// The numeric steps' columns as raw numbers, row-major (`rows × numeric_columns`), with
    /// NaN for a missing value: what a graph that imputes, clips and standardises by itself
    /// takes. Text is parsed as in [`FeatureTransform::transform`]; an absent column follows
    /// `absent`.
    pub fn raw_numeric(&self, table: &RawTable, absent: AbsentColumns) -> Result<Vec<f64>> {
        let n_rows = table.n_rows();
        let selected = self.select(table, absent, FeatureStep::is_numeric)?;
        let n_cols = selected.len();
        let mut data = vec![f64::NAN; n_rows * n_cols];
        for (j, (_, column)) in selected.iter().enumerate() {
            for (row, value) in numeric_values(column, 0..n_rows)?.iter().enumerate() {
                if let Some(v) = value {
                    data[row * n_cols + j] = *v;
                }
            }
        }
        Ok(data)
    }

    /// The features of the steps that are not numeric, in step order (the numeric steps
    /// left out): with [`FeatureTransform::raw_numeric`], the inputs of a graph that applies
    /// the numeric steps itself.
    pub fn encode_non_numeric(&self, table: &RawTable, absent: AbsentColumns) -> Result<Matrix> {
        self.transform_steps(table, absent, |s| !s.is_numeric())
    }

    /// The steps `keep` selects, each with its column of `table` (or, under
    /// [`AbsentColumns::Impute`], a column missing in every row).
    fn select<'a>(
        &'a self,
        table: &'a RawTable,
        absent: AbsentColumns,
        keep: impl Fn(&FeatureStep) -> bool,
    ) -> Result<Vec<(&'a FeatureStep, std::borrow::Cow<'a, RawColumn>)>> {
        self.steps
            .iter()
            .filter(|s| keep(s))
            .map(|step| match (table.column(step.column()), absent) {
                (Some(c), _) => Ok((step, std::borrow::Cow::Borrowed(c))),
                // Missing in every row.
                (None, AbsentColumns::Impute) => Ok((
                    step,
                    std::borrow::Cow::Owned(RawColumn {
                        name: step.column().to_string(),
                        values: ColumnValues::Numeric(vec![None; table.n_rows()]),
                    }),
                )),
                (None, AbsentColumns::Error) => Err(ArtifactError::Transform(format!(
                    "column '{}' is required by the model but absent from the data (columns present: {})",
                    step.column(),
                    table.names().join(", ")
                ))),
            })
            .collect()
    }

    /// The features of the steps `keep` selects, in step order.
    fn transform_steps(
        &self,
        table: &RawTable,
        absent: AbsentColumns,
        keep: impl Fn(&FeatureStep) -> bool,
    ) -> Result<Matrix> {
        let n_rows = table.n_rows();
        let selected = self.select(table, absent, keep)?;
        let selected: Vec<(&FeatureStep, &RawColumn)> =
            selected.iter().map(|(s, c)| (*s, c.as_ref())).collect();
        let n_cols: usize = selected.iter().map(|(s, _)| s.width()).sum();
        let mut data = vec![0.0f32; n_rows * n_cols];
        if n_rows == 0 || n_cols == 0 {
            return Ok(Matrix::new(n_rows, n_cols, data));
        }
        // Each distinct text's features computed once, where text repeats.
        let tables: Vec<Option<Vec<f32>>> = selected
            .iter()
            .map(|(step, column)| level_table(step, column))
            .collect::<Result<_>>()?;
        let selected: Vec<(&FeatureStep, &RawColumn, Option<&[f32]>)> = selected
            .iter()
            .zip(&tables)
            .map(|((s, c), t)| (*s, *c, t.as_deref()))
            .collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(n_rows.div_ceil(ROWS_PER_THREAD))
            .max(1);
        if threads == 1 {
            // A few rows (a served request): no thread to start.
            data.chunks_mut(ROWS_PER_BLOCK * n_cols)
                .enumerate()
                .try_for_each(|(b, rows)| fill(&selected, b * ROWS_PER_BLOCK, rows, n_cols))?;
            return Ok(Matrix::new(n_rows, n_cols, data));
        }
        let per_thread = n_rows.div_ceil(threads);
        std::thread::scope(|scope| {
            let blocks: Vec<_> = data
                .chunks_mut(per_thread * n_cols)
                .enumerate()
                .map(|(t, block)| {
                    let selected = &selected;
                    // Blocks of rows that stay in cache while every step writes its columns.
                    scope.spawn(move || {
                        block
                            .chunks_mut(ROWS_PER_BLOCK * n_cols)
                            .enumerate()
                            .try_for_each(|(b, rows)| {
                                let start = t * per_thread + b * ROWS_PER_BLOCK;
                                fill(selected, start, rows, n_cols)
                            })
                    })
                })
                .collect();
            blocks
                .into_iter()
                .try_for_each(|b| b.join().expect("a transform thread panicked"))
        })?;
        Ok(Matrix::new(n_rows, n_cols, data))
    }

    /// Encodes the target column for training: class index or standardised value.
    /// Rows with a missing target are an error; the data stage removes them before fitting.
    pub fn encode_target(&self, column: &RawColumn) -> Result<Vec<f32>> {
        let missing = |row: usize| {
            ArtifactError::Transform(format!(
                "target '{}' is missing in row {}",
                column.name,
                row + 1
            ))
        };
        if let TargetEncoding::Classes { labels } = &self.target_encoding {
            let indices = column.values.label_indices(labels).map_err(|row| {
                ArtifactError::Transform(format!(
                    "target label '{}' in row {} was not seen in training (known: {})",
                    column.values.label(row).unwrap_or_default(),
                    row + 1,
                    labels.join(", ")
                ))
            })?;
            return indices
                .into_iter()
                .enumerate()
                .map(|(row, i)| i.map(|i| i as f32).ok_or_else(|| missing(row)))
                .collect();
        }
        (0..column.values.len())
            .map(|row| match &self.target_encoding {
                TargetEncoding::Classes { .. } => unreachable!("handled above"),
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

/// For a step over a dictionary-coded column whose rows repeat their texts (at most one
/// distinct text per two rows), the step's features of every distinct text and, last, of a
/// missing value: `(levels + 1) × width` values, made by [`fill`] itself so that they equal
/// what it writes row by row. Numeric steps are left out (their errors name rows).
fn level_table(step: &FeatureStep, column: &RawColumn) -> Result<Option<Vec<f32>>> {
    let ColumnValues::Dict { levels, codes } = &column.values else {
        return Ok(None);
    };
    if matches!(step, FeatureStep::Numeric { .. }) || levels.len() > codes.len() / 2 {
        return Ok(None);
    }
    let texts = RawColumn {
        name: column.name.clone(),
        values: ColumnValues::Text(
            levels
                .iter()
                .map(|l| Some(l.clone()))
                .chain(std::iter::once(None))
                .collect(),
        ),
    };
    let width = step.width();
    let mut table = vec![0.0f32; (levels.len() + 1) * width];
    fill(&[(step, &texts, None)], 0, &mut table, width)?;
    Ok(Some(table))
}

/// Writes the features of rows `start..` (as many as `out` holds) into `out`, row-major. A
/// step with a [`level_table`] copies its rows from it.
fn fill(
    steps: &[(&FeatureStep, &RawColumn, Option<&[f32]>)],
    start: usize,
    out: &mut [f32],
    n_cols: usize,
) -> Result<()> {
    let rows = start..start + out.len() / n_cols;
    let mut offset = 0;
    for &(step, column, table) in steps {
        if let (Some(table), ColumnValues::Dict { levels, codes }) = (table, &column.values) {
            let width = step.width();
            for (row, &code) in codes[rows.clone()].iter().enumerate() {
                let level = if code == MISSING_CODE {
                    levels.len()
                } else {
                    code as usize
                };
                let at = row * n_cols + offset;
                out[at..at + width].copy_from_slice(&table[level * width..(level + 1) * width]);
            }
            offset += width;
            continue;
        }
        let mut put = |row: usize, k: usize, v: f64| out[row * n_cols + offset + k] = v as f32;
        match step {
            FeatureStep::Numeric {
                impute,
                mean,
                std,
                clip,
                missing_indicator,
                ..
            } => {
                let values = numeric_values(column, rows.clone())?;
                for (row, &value) in values.iter().enumerate() {
                    let mut x = value.unwrap_or(*impute);
                    if let Some([lo, hi]) = clip {
                        x = x.clamp(*lo, *hi);
                    }
                    put(row, 0, (x - mean) / std);
                    if *missing_indicator {
                        put(row, 1, f64::from(u8::from(value.is_none())));
                    }
                }
            }
            FeatureStep::OneHot {
                categories,
                impute,
                other,
                ..
            } => {
                let index: std::collections::HashMap<&str, usize> = categories
                    .iter()
                    .enumerate()
                    .map(|(k, c)| (c.as_str(), k))
                    .collect();
                let hot = column.values.map_text(rows.clone(), |label| {
                    match index.get(label.unwrap_or(impute)) {
                        Some(&k) => Some(k),
                        None if *other => Some(categories.len()),
                        None => None,
                    }
                });
                for (row, k) in hot.into_iter().enumerate() {
                    if let Some(k) = k {
                        put(row, k, 1.0);
                    }
                }
            }
            FeatureStep::Frequency {
                frequencies,
                impute,
                ..
            } => {
                let index: std::collections::HashMap<&str, f64> =
                    frequencies.iter().map(|(c, f)| (c.as_str(), *f)).collect();
                let shares = column.values.map_text(rows.clone(), |label| {
                    index.get(label.unwrap_or(impute)).copied().unwrap_or(0.0)
                });
                for (row, share) in shares.into_iter().enumerate() {
                    put(row, 0, share);
                }
            }
            FeatureStep::Date {
                impute,
                mean,
                std,
                time,
                missing_indicator,
                ..
            } => {
                let dates = column
                    .values
                    .map_text(rows.clone(), |s| s.and_then(parse_datetime));
                for (row, parsed) in dates.into_iter().enumerate() {
                    let days = parsed.unwrap_or(*impute);
                    let parts = date_parts(days);
                    put(row, 0, (days - mean) / std);
                    for (k, v) in parts.iter().take(if *time { 6 } else { 4 }).enumerate() {
                        put(row, 1 + k, *v);
                    }
                    if *missing_indicator {
                        let k = 5 + 2 * usize::from(*time);
                        put(row, k, f64::from(u8::from(parsed.is_none())));
                    }
                }
            }
            FeatureStep::Text { buckets, .. } => {
                for (row, global) in rows.clone().enumerate() {
                    if let Some(text) = column.values.label_ref(global) {
                        for (k, v) in hashed_ngrams(&text, *buckets).into_iter().enumerate() {
                            if v != 0.0 {
                                put(row, k, v);
                            }
                        }
                    }
                }
            }
        }
        offset += step.width();
    }
    Ok(())
}

/// Rows `rows` of `column` as numbers; text is parsed ([`parse_number`]), and text that is
/// not a number is an error that names the column and the first row holding it.
fn numeric_values(
    column: &RawColumn,
    rows: std::ops::Range<usize>,
) -> Result<std::borrow::Cow<'_, [Option<f64>]>> {
    if let ColumnValues::Numeric(v) = &column.values {
        return Ok(std::borrow::Cow::Borrowed(&v[rows]));
    }
    let first = rows.start;
    // Ok(None): missing; Err(()): not a number.
    let parsed = column.values.map_text(rows, |s| match s {
        None => Ok(None),
        Some(s) => parse_number(s).map(Some).ok_or(()),
    });
    parsed
        .into_iter()
        .enumerate()
        .map(|(k, v)| {
            v.map_err(|()| {
                ArtifactError::Transform(format!(
                    "column '{}' row {}: expected a number, found '{}'",
                    column.name,
                    first + k + 1,
                    column.values.label_ref(first + k).unwrap_or_default()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(std::borrow::Cow::Owned)
}

/// Row `row` of `column` as a number (see [`numeric_values`]).
fn numeric_value(column: &RawColumn, row: usize) -> Result<Option<f64>> {
    match &column.values {
        ColumnValues::Numeric(v) => Ok(v[row]),
        values => match values.label_ref(row) {
            None => Ok(None),
            Some(s) => parse_number(&s).map(Some).ok_or_else(|| {
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

/// A number written as text (surrounding spaces allowed), or a boolean in a common spelling
/// (`true`/`false`, `yes`/`no`, `y`/`n`, `t`/`f`, any case) as 1 or 0.
pub fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(x) = s.parse::<f64>() {
        return x.is_finite().then_some(x);
    }
    parse_bool(s).map(|b| f64::from(u8::from(b)))
}

/// A boolean in a common spelling: `true`/`false`, `yes`/`no`, `y`/`n`, `t`/`f`, any case.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "t" => Some(true),
        "false" | "no" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// Days (fractional: the time of day is the fraction) since 1970-01-01 of a date
/// `YYYY-MM-DD` (or with `/`), optionally followed by ` ` or `T` and `HH:MM[:SS[.fff]]`, and an
/// optional `Z`. `None` for anything else, including impossible dates.
pub fn parse_datetime(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim())),
        None => (s, None),
    };
    let mut parts = date.split(['-', '/']);
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1000..=9999).contains(&year) {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day == 0 || day > month_days[month as usize - 1] {
        return None;
    }
    let mut seconds = 0.0;
    if let Some(t) = time.filter(|t| !t.is_empty()) {
        let mut hms = t.split(':');
        let h: f64 = hms.next()?.parse().ok()?;
        let m: f64 = hms.next()?.parse().ok()?;
        let sec: f64 = hms.next().map_or(Some(0.0), |x| x.parse().ok())?;
        if hms.next().is_some() || !(0.0..24.0).contains(&h) || !(0.0..60.0).contains(&m) {
            return None;
        }
        seconds = h * 3600.0 + m * 60.0 + sec;
    }
    Some(days_from_civil(year, month, day) as f64 + seconds / 86_400.0)
}

/// Whether the text has a time of day after its date.
pub fn has_time_of_day(s: &str) -> bool {
    s.trim().contains([' ', 'T']) && s.contains(':')
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of `days` since 1970-01-01, proleptic Gregorian (Howard Hinnant's
/// civil_from_days, the inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Month, weekday and hour of `days` since 1970-01-01 as (sin, cos) pairs, in that order.
fn date_parts(days: f64) -> [f64; 6] {
    let whole = days.floor() as i64;
    let (_, month, _) = civil_from_days(whole); // 1..=12
    let weekday = (whole + 3).rem_euclid(7); // 1970-01-01 was a Thursday; Monday = 0
    let hour = (days - days.floor()) * 24.0;
    let tau = std::f64::consts::TAU;
    let circle = |x: f64, period: f64| [(tau * x / period).sin(), (tau * x / period).cos()];
    let [ms, mc] = circle((month - 1) as f64, 12.0);
    let [ws, wc] = circle(weekday as f64, 7.0);
    let [hs, hc] = circle(hour, 24.0);
    [ms, mc, ws, wc, hs, hc]
}

/// Word unigrams and bigrams of lower-cased `text` (words: runs of letters and digits), hashed
/// with FNV-1a into `buckets` counts, scaled to unit Euclidean length.
pub fn hashed_ngrams(text: &str, buckets: usize) -> Vec<f64> {
    let mut counts = vec![0.0; buckets.max(1)];
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let fnv = |parts: &[&str]| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                h = (h ^ u64::from(b' ')).wrapping_mul(0x0100_0000_01b3);
            }
            for b in p.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        (h % counts.len() as u64) as usize
    };
    let mut hits = Vec::new();
    for (i, w) in words.iter().enumerate() {
        hits.push(fnv(&[w]));
        if i + 1 < words.len() {
            hits.push(fnv(&[w, words[i + 1]]));
        }
    }
    for h in hits {
        counts[h] += 1.0;
    }
    let norm = counts.iter().map(|c| c * c).sum::<f64>().sqrt();
    if norm > 0.0 {
        counts.iter_mut().for_each(|c| *c /= norm);
    }
    counts
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
                    clip: None,
                    missing_indicator: false,
                },
                FeatureStep::OneHot {
                    column: "c".into(),
                    categories: vec!["red".into(), "blue".into()],
                    impute: "blue".into(),
                    other: false,
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
    fn raw_numeric_and_the_other_encodings_split_the_inputs() {
        let t = transform();
        let rows = table(
            ColumnValues::Text(vec![Some("3".into()), None, Some(" 1 ".into())]),
            vec![Some("red"), None, Some("green")],
        );
        assert_eq!(t.numeric_columns(), vec!["a"]);
        assert_eq!(t.non_numeric_feature_names(), vec!["c=red", "c=blue"]);
        let raw = t.raw_numeric(&rows, AbsentColumns::Error).unwrap();
        assert_eq!(raw[0], 3.0);
        assert!(raw[1].is_nan());
        assert_eq!(raw[2], 1.0);
        let encoded = t.encode_non_numeric(&rows, AbsentColumns::Error).unwrap();
        assert_eq!((encoded.n_rows, encoded.n_cols), (3, 2));
        // The other steps' columns of the full transform, unchanged.
        let full = t.transform(&rows).unwrap();
        for r in 0..3 {
            assert_eq!(encoded.row(r), &full.row(r)[1..]);
        }
        // An absent numeric column is all missing under Impute, an error otherwise.
        let no_a = RawTable {
            columns: vec![rows.columns[2].clone()],
        };
        assert!(t.raw_numeric(&no_a, AbsentColumns::Error).is_err());
        let raw = t.raw_numeric(&no_a, AbsentColumns::Impute).unwrap();
        assert!(raw.len() == 3 && raw.iter().all(|v| v.is_nan()));
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
    fn dates_parse_to_days_since_the_epoch() {
        // Reference values from Python: (date(y, m, d) - date(1970, 1, 1)).days.
        assert_eq!(parse_datetime("1970-01-01"), Some(0.0));
        assert_eq!(parse_datetime("2000-03-01"), Some(11_017.0));
        assert_eq!(parse_datetime("2024/02/29"), Some(19_782.0));
        assert_eq!(parse_datetime("1969-12-31"), Some(-1.0));
        assert_eq!(parse_datetime("2014-05-09 18:00:00"), Some(16_199.75));
        assert_eq!(parse_datetime("2014-05-09T06:00Z"), Some(16_199.25));
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "2023-00-10",
            "12/05/2023",
            "soon",
            "2014-05-09 25:00",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        assert!(has_time_of_day("2014-05-09 18:00") && !has_time_of_day("2014-05-09"));
    }

    #[test]
    fn date_parts_are_month_weekday_and_hour_on_the_circle() {
        // 2026-12-01 (a Tuesday) at 06:00: month 12 → angle 11/12 of a turn, weekday Tuesday
        // (Monday = 0) → 1/7, hour 6 → 1/4.
        let days = parse_datetime("2026-12-01 06:00:00").unwrap();
        let p = date_parts(days);
        let tau = std::f64::consts::TAU;
        let expect = [
            (tau * 11.0 / 12.0).sin(),
            (tau * 11.0 / 12.0).cos(),
            (tau / 7.0).sin(),
            (tau / 7.0).cos(),
            1.0,
            0.0,
        ];
        for (got, want) in p.iter().zip(expect) {
            assert!((got - want).abs() < 1e-9, "{p:?}");
        }
    }

    #[test]
    fn text_hashing_is_unit_length_and_order_sensitive_through_bigrams() {
        let a = hashed_ngrams("Late payments, previous loan", 64);
        let b = hashed_ngrams("previous loan late PAYMENTS", 64);
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm(&a) - 1.0).abs() < 1e-12);
        assert_ne!(a, b, "bigrams differ");
        assert_eq!(
            hashed_ngrams("late payments", 64),
            hashed_ngrams("LATE  payments!", 64)
        );
        assert!(hashed_ngrams("", 8).iter().all(|&x| x == 0.0));
    }

    #[test]
    fn booleans_in_common_spellings_are_numbers() {
        for (s, v) in [
            ("yes", 1.0),
            ("No", 0.0),
            ("TRUE", 1.0),
            ("f", 0.0),
            (" 2.5 ", 2.5),
        ] {
            assert_eq!(parse_number(s), Some(v), "{s}");
        }
        assert_eq!(parse_number("maybe"), None);
        assert_eq!(parse_number("inf"), None);
    }

    #[test]
    fn new_steps_apply_their_policy() {
        let t = FeatureTransform {
            steps: vec![
                FeatureStep::Numeric {
                    column: "a".into(),
                    impute: 2.0,
                    mean: 0.0,
                    std: 1.0,
                    clip: Some([0.0, 10.0]),
                    missing_indicator: true,
                },
                FeatureStep::OneHot {
                    column: "c".into(),
                    categories: vec!["red".into()],
                    impute: "red".into(),
                    other: true,
                },
                FeatureStep::Frequency {
                    column: "z".into(),
                    frequencies: vec![("p".into(), 0.75), ("q".into(), 0.25)],
                    impute: "p".into(),
                },
                FeatureStep::Date {
                    column: "d".into(),
                    impute: 0.0,
                    mean: 0.0,
                    std: 10.0,
                    time: false,
                    missing_indicator: true,
                },
            ],
            ..transform()
        };
        let text = |v: Vec<Option<&str>>| {
            ColumnValues::Text(v.into_iter().map(|s| s.map(String::from)).collect())
        };
        let table = RawTable {
            columns: vec![
                RawColumn {
                    name: "a".into(),
                    values: ColumnValues::Numeric(vec![Some(50.0), None]),
                },
                RawColumn {
                    name: "c".into(),
                    values: text(vec![Some("green"), None]),
                },
                RawColumn {
                    name: "z".into(),
                    values: text(vec![Some("q"), Some("never seen")]),
                },
                RawColumn {
                    name: "d".into(),
                    values: text(vec![Some("1970-01-21"), Some("not a date")]),
                },
            ],
        };
        let m = t.transform(&table).unwrap();
        assert_eq!(m.n_cols, t.feature_names().len());
        assert_eq!(m.n_cols, 2 + 2 + 1 + 6);
        // a: 50 clipped to 10, present; missing → 2, flagged. c: unseen → (other); missing →
        // the imputed 'red'. z: q → 0.25; unseen → 0. d: day 20 → 2.0; unparseable → day 0,
        // flagged.
        assert_eq!(&m.row(0)[..5], &[10.0, 0.0, 0.0, 1.0, 0.25]);
        assert_eq!(&m.row(1)[..5], &[2.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!((m.row(0)[5], m.row(0)[10]), (2.0, 0.0));
        assert_eq!((m.row(1)[5], m.row(1)[10]), (0.0, 1.0));

        // An absent column: an error by default, all-missing on request.
        let without_d = RawTable {
            columns: table.columns[..3].to_vec(),
        };
        assert!(t.transform(&without_d).is_err());
        let m = t.transform_with(&without_d, AbsentColumns::Impute).unwrap();
        assert_eq!((m.row(0)[5], m.row(0)[10]), (0.0, 1.0));
    }

    #[test]
    fn round_trips() {
        let t = transform();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<FeatureTransform>(&json).unwrap(), t);
    }
}
