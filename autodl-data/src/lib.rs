//! Data engineering: from a CSV or Parquet file to prepared, leak-free training data.
//!
//! In: a table file and the name of its target column. Out ([`Prepared`]):
//! - a [`DataProfile`] of every column and the inferred task and metric;
//! - a fitted [`FeatureTransform`] (median imputation and standardisation of numbers, most
//!   frequent imputation and one-hot encoding of categories), fitted on the training split only;
//! - seeded, stratified (for classification) train / validation / test splits, transformed.
//!
//! Invariants: the splits are disjoint and cover every row with a target; every statistic of
//! the transform comes from the training split; the same seed gives the same splits.
//!
//! ```no_run
//! use autodl_artifacts::context::RunContext;
//! use autodl_data::{PrepareConfig, prepare, read_table};
//! let table = read_table("penguins.csv".as_ref()).unwrap();
//! let cfg = PrepareConfig::new("species");
//! let prepared = prepare(&cfg, &table, "sha", &RunContext::new(0, "run")).unwrap();
//! println!("{} features, task {}", prepared.data.feature_names.len(), prepared.profile.task);
//! ```

mod formulate;
mod io;
mod prepare;
mod stream;

pub use formulate::{
    JoinReport, TargetChoice, find_labelled_table, find_labels_for, infer_target, join_labels,
    labels_only,
};
pub use io::{CsvShape, read_table, sniff_csv, write_matrix, write_table};
pub use prepare::{
    IMBALANCE_RATIO, PrepareConfig, Prepared, prepare, prepare_with_test, profile_table,
};
pub use stream::{
    EXACT_DISTINCT, StreamOptions, StreamProgress, profile_streaming, read_table_pieces,
};

/// Errors of the data stage. Each says what was wrong and, where it can, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file does not exist.
    #[error("file not found: {path}")]
    NotFound {
        /// The path given.
        path: String,
    },
    /// The file's extension is not a supported format.
    #[error(
        "{path}: unsupported format '{extension}'; give a .csv/.tsv, .parquet, .arrow/.ipc/.feather or .jsonl/.ndjson file"
    )]
    UnsupportedFormat {
        /// The path given.
        path: String,
        /// Its extension.
        extension: String,
    },
    /// The file holds no rows.
    #[error("{path} is empty: it has no data rows")]
    Empty {
        /// The path given.
        path: String,
    },
    /// The reader failed (malformed file).
    #[error("cannot read {path}: {message}")]
    Read {
        /// The path given.
        path: String,
        /// The reader's message.
        message: String,
    },
    /// Writing a file failed.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The path.
        path: String,
        /// The cause.
        message: String,
    },
    /// Rows of a CSV file have a different number of fields than its first row.
    #[error(
        "{path}: {rows} rows do not have the {expected} fields of the first row ({}); fix or remove them",
        examples.join("; ")
    )]
    Ragged {
        /// The path given.
        path: String,
        /// Fields in the first row.
        expected: usize,
        /// How many rows are ragged.
        rows: usize,
        /// The first few, with line numbers.
        examples: Vec<String>,
    },
    /// The target column is not in the table.
    #[error("target column '{name}' not found; available columns: {}", available.join(", "))]
    MissingTarget {
        /// The requested name.
        name: String,
        /// The columns the table has.
        available: Vec<String>,
    },
    /// The target has one distinct value: nothing to learn.
    #[error(
        "target column '{target}' has a single value ('{value}'); a model needs at least two classes or values"
    )]
    SingleClass {
        /// The target column.
        target: String,
        /// Its one value.
        value: String,
    },
    /// Regression was requested but the target is not numeric.
    #[error(
        "target column '{target}' is not numeric (found '{example}' in row {row}), so it cannot be a regression target; omit --task to classify it"
    )]
    NonNumericTarget {
        /// The target column.
        target: String,
        /// A value that is not a number.
        example: String,
        /// Its row (1-based, data rows).
        row: usize,
    },
    /// Too few rows to split.
    #[error(
        "only {rows} rows have a target, too few for every split to get rows; at least {needed} are needed (or more rows per class)"
    )]
    TooFewRows {
        /// Rows with a target.
        rows: usize,
        /// Rows needed.
        needed: usize,
    },
    /// Every feature column was dropped.
    #[error("no usable feature columns remain after cleaning: {reasons}")]
    NoFeatures {
        /// Why each column was dropped.
        reasons: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An artifact could not be written or applied.
    #[error(transparent)]
    Artifact(#[from] autodl_artifacts::ArtifactError),
}

/// Result alias for this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
