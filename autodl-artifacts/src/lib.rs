//! The file formats of autodl: plain, versioned serde types that the stage crates exchange.
//!
//! Every stage of the pipeline reads and writes these types and nothing else, so that the stage
//! crates never depend on one another. The crate is cheap to compile on purpose: it depends on
//! serde, serde_json, thiserror, sha2 and safetensors, never on polars, burn, tract or petgraph.
//!
//! What is here:
//! - [`table`]: raw tables as plain columns, the dense matrices the networks consume, the task
//!   and metric;
//! - [`profile`]: the data profile;
//! - [`transform`]: the fitted feature transform, and the one implementation of applying it, so
//!   that data, deploy and monitor cannot drift apart (no train–serve skew);
//! - [`arch`]: [`ArchitectureSpec`](arch::ArchitectureSpec), our own DAG of typed nodes, read by
//!   search, train and deploy;
//! - [`trial`], [`model`], [`export`], [`drift`], [`criteria`], [`run`]: the records each stage
//!   leaves in the run directory;
//! - [`io`]: atomic writes and content hashes;
//! - [`context`]: [`RunContext`](context::RunContext), the ambient things passed explicitly.
//!
//! Invariant: every type that is written to disk carries `schema_version` and round-trips
//! through its serialisation unchanged.
//!
//! ```
//! use autodl_artifacts::arch::{ArchitectureSpec, Activation};
//! let spec = ArchitectureSpec::mlp(4, &[8], Activation::Relu, 3);
//! assert_eq!(spec.validate().unwrap().output_width, 3);
//! ```

pub mod arch;
pub mod context;
pub mod criteria;
pub mod drift;
pub mod export;
pub mod io;
pub mod model;
pub mod profile;
pub mod run;
pub mod table;
pub mod transform;
pub mod trial;

/// The schema version written into every artifact by this build.
pub const SCHEMA_VERSION: u32 = 1;

/// Errors from reading, writing or checking artifacts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON artifact could not be parsed or produced.
    #[error("invalid JSON in {path}: {source}")]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The artifact was written by an incompatible version of autodl.
    #[error("{path} has schema version {found}, this build reads version {expected}")]
    SchemaVersion {
        /// The file.
        path: std::path::PathBuf,
        /// Version found in the file.
        found: u32,
        /// Version this build understands.
        expected: u32,
    },
    /// A safetensors payload was malformed.
    #[error("invalid weights file: {0}")]
    Weights(String),
    /// An architecture violates the DAG rules.
    #[error("invalid architecture: {0}")]
    Architecture(String),
    /// Raw data does not fit the fitted transform.
    #[error("{0}")]
    Transform(String),
}

/// Result alias for this crate.
pub type Result<T, E = ArtifactError> = std::result::Result<T, E>;
