//! Training hyper-parameters and the record of every search trial.

use serde::{Deserialize, Serialize};

use crate::arch::ArchitectureSpec;
use crate::table::MetricValue;

/// Hyper-parameters of one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hyperparams {
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// Samples per gradient step.
    pub batch_size: usize,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Upper bound on epochs (early stopping may end sooner).
    pub max_epochs: usize,
    /// Epochs without validation improvement before stopping.
    pub patience: usize,
}

/// How a trial ended. Divergence is an outcome, not an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TrialOutcome {
    /// Trained to completion (or early stopping); the validation result of the best epoch.
    Completed {
        /// Validation metric of the best epoch.
        valid_metric: MetricValue,
        /// What selection maximises: the metric as a score where larger is better, with ties
        /// broken by validation loss (see autodl-train).
        score: f64,
        /// Epochs trained.
        epochs: usize,
        /// Epoch (1-based) whose weights were kept.
        best_epoch: usize,
    },
    /// The loss became NaN or infinite.
    Diverged {
        /// Epoch (1-based) in which it happened.
        epoch: usize,
        /// The offending loss value, as text (`NaN`, `inf`).
        loss: String,
    },
    /// The trial could not run (for example, the time budget ran out first).
    Failed {
        /// Why.
        reason: String,
    },
}

impl TrialOutcome {
    /// The score of a completed trial.
    pub fn score(&self) -> Option<f64> {
        match self {
            TrialOutcome::Completed { score, .. } => Some(*score),
            _ => None,
        }
    }
}

/// One evaluated candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// Trial number, from 0.
    pub trial: u32,
    /// Strategy step that proposed it (`random`, `mutation`, …).
    pub proposed_by: String,
    /// The parent trial for a mutation.
    pub parent: Option<u32>,
    /// What was changed relative to the parent, for mutations.
    pub mutation: Option<String>,
    /// The architecture.
    pub architecture: ArchitectureSpec,
    /// The hyper-parameters.
    pub hyperparams: Hyperparams,
    /// Trainable parameters.
    pub parameters: usize,
    /// How it ended.
    pub outcome: TrialOutcome,
    /// Wall seconds spent on it.
    pub seconds: f64,
    /// Seconds since the start of the search when it finished.
    pub finished_at_secs: f64,
}

/// The whole search: every trial, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHistory {
    /// Schema version of this artifact.
    pub schema_version: u32,
    /// Strategy name.
    pub strategy: String,
    /// The seed the search used.
    pub seed: u64,
    /// Budget in seconds, if any.
    pub budget_secs: Option<f64>,
    /// Trial cap, if any.
    pub max_trials: Option<u32>,
    /// The trials.
    pub trials: Vec<TrialRecord>,
    /// Index of the best completed trial.
    pub best_trial: Option<u32>,
    /// Why the search stopped.
    pub stopped_because: String,
}

crate::versioned!(SearchHistory);

impl SearchHistory {
    /// The best completed trial.
    pub fn best(&self) -> Option<&TrialRecord> {
        self.best_trial
            .and_then(|t| self.trials.iter().find(|r| r.trial == t))
    }

    /// Counts of completed, diverged and failed trials.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for t in &self.trials {
            match t.outcome {
                TrialOutcome::Completed { .. } => c.0 += 1,
                TrialOutcome::Diverged { .. } => c.1 += 1,
                TrialOutcome::Failed { .. } => c.2 += 1,
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Activation;

    #[test]
    fn history_round_trips() {
        let record = TrialRecord {
            trial: 0,
            proposed_by: "random".into(),
            parent: None,
            mutation: None,
            architecture: ArchitectureSpec::mlp(3, &[4], Activation::Relu, 2),
            hyperparams: Hyperparams {
                learning_rate: 1e-3,
                batch_size: 32,
                weight_decay: 1e-4,
                max_epochs: 10,
                patience: 3,
            },
            parameters: 26,
            outcome: TrialOutcome::Diverged {
                epoch: 2,
                loss: "NaN".into(),
            },
            seconds: 0.5,
            finished_at_secs: 0.5,
        };
        let h = SearchHistory {
            schema_version: crate::SCHEMA_VERSION,
            strategy: "random".into(),
            seed: 1,
            budget_secs: Some(1.0),
            max_trials: None,
            trials: vec![record],
            best_trial: None,
            stopped_because: "budget".into(),
        };
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<SearchHistory>(&json).unwrap(), h);
        assert_eq!(h.counts(), (0, 1, 0));
    }
}
