//! Training: networks built from an [`ArchitectureSpec`] with burn, and linfa baselines.
//!
//! In: an architecture, hyper-parameters and prepared splits. Out: a [`TrainResult`] whose
//! outcome is completed (with the best epoch's weights as plain [`NetworkWeights`]), diverged
//! (NaN or infinite loss) or failed. [`predict`] runs saved weights; [`baseline`] fits a linfa
//! logistic or linear regression on the same split.
//!
//! Networks are dense, convolutional (signals as height-1 grids, images), pooled, normalised,
//! with residual adds and concatenations: whatever the spec says. The backend is burn's
//! pure-Rust CPU backend, Flex, with autodiff. Training offers SGD with momentum, Adam and AdamW,
//! constant/cosine/one-cycle schedules with warm-up, gradient clipping, label smoothing, class
//! weights, MSE or Huber, and early stopping on the validation metric; the weights of the best
//! epoch are kept. [`train_with`] trains at a lower fidelity (fewer epochs, fewer rows) and
//! continues from a [`Checkpoint`] exactly where an uninterrupted run would be.
//!
//! Determinism: every random draw (initial weights, shuffling, dropout masks) comes from our own
//! generators seeded by the run seed and the epoch, never from burn's global device generator,
//! so the same seed and inputs give bit-identical weights even with trials running concurrently.
//!
//! ```no_run
//! use autodl_artifacts::arch::{Activation, ArchitectureSpec};
//! use autodl_artifacts::context::RunContext;
//! use autodl_artifacts::table::{Matrix, SplitData, Task};
//! use autodl_artifacts::trial::Hyperparams;
//! use autodl_train::{TrainData, train};
//! let split = SplitData { x: Matrix::new(2, 1, vec![0.0, 1.0]), y: vec![0.0, 1.0] };
//! let data = TrainData { task: Task::Binary, n_outputs: 2, target_scale: 1.0, train: &split, valid: &split };
//! let hp = Hyperparams { learning_rate: 1e-2, batch_size: 2, max_epochs: 5, ..Hyperparams::default() };
//! let arch = ArchitectureSpec::mlp(1, &[4], Activation::Relu, 2);
//! let result = train(&arch, &hp, &data, &RunContext::new(0, ".")).unwrap();
//! println!("{:?}", result.outcome);
//! ```

mod baseline;
mod ensemble;
mod net;
mod trainer;

pub use baseline::baseline;
pub use ensemble::{EnsembleChoice, choose_ensemble, predict_mean};
pub use net::predict;
pub use trainer::{
    Checkpoint, Fidelity, TrainData, TrainResult, balanced_class_weights, learning_rate_at,
    selection_score, train, train_with,
};

/// Errors of the training stage (divergence is not one: it is a [`TrialOutcome`]).
///
/// [`TrialOutcome`]: autodl_artifacts::trial::TrialOutcome
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The architecture is invalid.
    #[error(transparent)]
    Artifact(#[from] autodl_artifacts::ArtifactError),
    /// Data and architecture do not fit together.
    #[error("data does not fit the network: {0}")]
    Shape(String),
    /// Hyper-parameters out of range.
    #[error("invalid hyper-parameters: {0}")]
    Hyperparams(String),
    /// The baseline could not be fitted.
    #[error("baseline failed: {0}")]
    Baseline(String),
}

/// Result alias for this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
