//! Architecture and hyper-parameter search over DAGs of convolutional blocks, cells and dense
//! blocks.
//!
//! In: a [`SearchSpace`] (sized from the data), a [`SearchConfig`] (strategy and budget), and an
//! [`Evaluator`] that trains a candidate and returns its [`TrialOutcome`]. Out: a
//! [`SearchHistory`] with every trial.
//!
//! The search does not train anything itself: it depends on no training crate. The caller (the
//! `xtask` orchestrator) implements [`Evaluator`] with autodl-train.
//!
//! Candidates are [`Genome`]s: for signals and images, convolutional blocks (filters, kernel,
//! stride, batch norm, activation, residual add, max/average pooling), optionally a
//! NAS-Bench-201-style [`Cell`] stacked after each of them, and a reduction (flatten or global
//! pooling); then a stack of dense blocks (width, activation, normalisation, dropout, an optional
//! skip connection from any earlier block by addition or concatenation); plus the training
//! options (optimiser and learning rate, schedule and warm-up, batch size, weight decay, epochs,
//! gradient clipping, label smoothing, class weights, regression loss). Each genome renders to
//! an [`ArchitectureSpec`], which is validated with petgraph (acyclic, one input, one output,
//! every node on an input-to-output path) and by the spec's own shape rules before it is
//! evaluated; every trial records its parameter count and multiply-adds.
//!
//! [`study`] shares one search among many worker processes, on one machine or many, through
//! Optuna's journal format (a file, or a Redis server): Python Optuna reads these studies and
//! autodl workers continue Optuna's.
//!
//! Strategies ([`Strategy`]): random search, regularized evolution (the default), TPE,
//! successive halving, Hyperband and BOHB, the last three with epochs as the fidelity. All first
//! evaluate the space's conventional [`SearchSpace::defaults`] (an MLP, and a small CNN for
//! spatial inputs), so that a short budget starts from a sensible point. [`Objective`] adds
//! parameters or multiply-adds as a second objective (Pareto ranks).
//!
//! ```
//! use autodl_artifacts::context::RunContext;
//! use autodl_artifacts::trial::TrialOutcome;
//! use autodl_artifacts::table::MetricValue;
//! use autodl_search::{Budget, Candidate, SearchConfig, SearchSpace, Strategy, search};
//!
//! // Any evaluator works; this one prefers small learning rates.
//! let mut evaluator = |_: u32, c: &Candidate| TrialOutcome::Completed {
//!     valid_metric: MetricValue { name: "score".into(), value: -c.hyperparams.learning_rate },
//!     score: -c.hyperparams.learning_rate,
//!     epochs: 1,
//!     best_epoch: 1,
//! };
//! let cfg = SearchConfig { strategy: Strategy::Random, budget: Budget::trials(5), objective: Default::default() };
//! let history = search(&cfg, &SearchSpace::for_data(4, 2), &mut evaluator, &RunContext::new(1, ".")).unwrap();
//! assert_eq!(history.trials.len(), 5);
//! ```

pub mod analysis;
mod cell;
mod encoding;
mod genome;
mod graph;
mod strategy;
pub mod study;
pub mod tpe;

pub use cell::{Cell, CellOp};
pub use genome::{Block, ConvBlock, Genome, Reduce, SearchSpace, Skip};
pub use graph::check_dag;
pub use strategy::{Budget, Objective, SearchConfig, Strategy, pareto_ranks, search};

use autodl_artifacts::arch::ArchitectureSpec;
use autodl_artifacts::trial::{Hyperparams, TrialOutcome};

/// One candidate to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The network.
    pub architecture: ArchitectureSpec,
    /// How to train it.
    pub hyperparams: Hyperparams,
}

/// Trains (or otherwise scores) candidates. Implemented by the orchestrator with autodl-train.
pub trait Evaluator {
    /// Evaluates candidate number `trial`. Divergence and failure are outcomes, not errors.
    fn evaluate(&mut self, trial: u32, candidate: &Candidate) -> TrialOutcome;

    /// Trains candidate `trial` until it has `epochs` epochs in all, continuing from where an
    /// earlier call for the same trial stopped (successive halving's promotions). Returns the
    /// outcome so far and whether training has ended for good (early stopping, its own
    /// `max_epochs`, a deadline). The default has no fidelity: a full evaluation, ended.
    fn evaluate_partial(
        &mut self,
        trial: u32,
        candidate: &Candidate,
        epochs: usize,
    ) -> (TrialOutcome, bool) {
        let _ = epochs;
        (self.evaluate(trial, candidate), true)
    }

    /// Drops whatever state `evaluate_partial` kept for `trial` (it will not be continued).
    fn discard(&mut self, trial: u32) {
        let _ = trial;
    }
}

impl<F: FnMut(u32, &Candidate) -> TrialOutcome> Evaluator for F {
    fn evaluate(&mut self, trial: u32, candidate: &Candidate) -> TrialOutcome {
        self(trial, candidate)
    }
}

/// Errors of the search stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// A candidate graph broke the DAG rules (a bug in a mutation, never user input).
    #[error("invalid candidate: {0}")]
    InvalidCandidate(String),
    /// The configuration is unusable.
    #[error("invalid search configuration: {0}")]
    Config(String),
    /// A study's journal could not be read or written.
    #[error("study storage: {0}")]
    Storage(String),
}

/// Result alias for this crate.
pub type Result<T, E = SearchError> = std::result::Result<T, E>;
