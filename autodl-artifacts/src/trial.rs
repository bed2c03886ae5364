//! Training hyper-parameters and the record of every search trial.

use serde::{Deserialize, Serialize};

use crate::arch::ArchitectureSpec;
use crate::table::MetricValue;

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    /// Stochastic gradient descent with (heavy-ball or Nesterov) momentum; weight decay is an L2
    /// penalty added to the gradient.
    Sgd {
        /// Momentum coefficient in `[0, 1)`.
        momentum: f64,
        /// Nesterov's look-ahead form.
        nesterov: bool,
    },
    /// Adam; weight decay is an L2 penalty added to the gradient.
    Adam,
    /// AdamW: Adam with decoupled weight decay.
    #[default]
    AdamW,
}

/// How the learning rate changes over training (after any warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Cosine decay from the base rate to zero over the planned steps.
    Cosine,
    /// One-cycle: linear rise from a tenth of the base rate to the base rate over the first
    /// 30 % of the steps, then cosine decay to a thousandth of it.
    OneCycle,
}

/// The regression loss (classification always uses cross-entropy).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RegressionLoss {
    /// Mean squared error.
    #[default]
    Mse,
    /// Huber loss: quadratic within `delta` (in standardised target units), linear beyond.
    Huber {
        /// The transition point, > 0.
        delta: f64,
    },
}

/// Hyper-parameters of one training run. Every field is typed so that the search can tune it;
/// fields added after the first release default to the behaviour before them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hyperparams {
    /// Base learning rate.
    pub learning_rate: f64,
    /// Samples per gradient step.
    pub batch_size: usize,
    /// Weight decay: decoupled for AdamW, an L2 penalty for SGD and Adam.
    pub weight_decay: f64,
    /// Upper bound on epochs (early stopping may end sooner); schedules span this many epochs.
    pub max_epochs: usize,
    /// Epochs without validation improvement before stopping; `max_epochs` or more turns early
    /// stopping off (the schedule runs to its end).
    pub patience: usize,
    /// The optimiser.
    #[serde(default)]
    pub optimizer: Optimizer,
    /// The learning-rate schedule.
    #[serde(default)]
    pub schedule: LrSchedule,
    /// Epochs of linear warm-up from zero to the scheduled rate (0 for none).
    #[serde(default)]
    pub warmup_epochs: usize,
    /// Rescale the gradient when its global L2 norm exceeds this.
    #[serde(default)]
    pub grad_clip_norm: Option<f64>,
    /// Label smoothing for cross-entropy, in `[0, 1)`.
    #[serde(default)]
    pub label_smoothing: f64,
    /// Weight each class's loss by `n / (classes · count)` (for imbalanced targets).
    #[serde(default)]
    pub balanced_class_weights: bool,
    /// The regression loss.
    #[serde(default)]
    pub regression_loss: RegressionLoss,
    /// Data augmentation for signals and images: each training sample is shifted by a random
    /// whole number of positions in `[-shift, shift]` along every spatial axis (zero-filled,
    /// zero being the standardised mean), drawn afresh every epoch. 0 turns it off; ignored for
    /// vector inputs.
    #[serde(default)]
    pub augment_shift: usize,
    /// Data augmentation for vector (tabular) inputs: Gaussian noise of this standard
    /// deviation, in standardised units, is added to every training sample afresh each step.
    /// 0 turns it off; ignored for signals and images.
    #[serde(default)]
    pub augment_noise: f64,
    /// Mixup for vector inputs: each training batch is blended with a shuffled copy of
    /// itself by λ ~ Beta(α, α), and the loss is λ·loss(y) + (1 − λ)·loss(y shuffled). This is
    /// α; 0 turns it off; ignored for signals and images.
    #[serde(default)]
    pub mixup_alpha: f64,
    /// Data augmentation for images: each training sample is rotated about its centre by a
    /// random angle in `[-degrees, degrees]` (bilinear, zero-filled), after any shift. 0 turns
    /// it off; ignored for vectors and signals.
    #[serde(default)]
    pub augment_rotate: f64,
}

impl Hyperparams {
    /// Whether training may stop before `max_epochs` for lack of validation improvement.
    pub fn early_stopping(&self) -> bool {
        self.patience < self.max_epochs
    }
}

impl Default for Hyperparams {
    /// AdamW at 1e-3, batch 64, weight decay 1e-4, 100 epochs with patience 10, no extras.
    fn default() -> Self {
        Hyperparams {
            learning_rate: 1e-3,
            batch_size: 64,
            weight_decay: 1e-4,
            max_epochs: 100,
            patience: 10,
            optimizer: Optimizer::AdamW,
            schedule: LrSchedule::Constant,
            warmup_epochs: 0,
            grad_clip_norm: None,
            label_smoothing: 0.0,
            balanced_class_weights: false,
            regression_loss: RegressionLoss::Mse,
            augment_shift: 0,
            augment_noise: 0.0,
            mixup_alpha: 0.0,
            augment_rotate: 0.0,
        }
    }
}

impl Hyperparams {
    /// Why these values cannot train, if they cannot.
    pub fn problem(&self) -> Option<String> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let unit = |v: f64| (0.0..1.0).contains(&v);
        if !positive(self.learning_rate) {
            return Some(format!(
                "learning rate {} is not positive",
                self.learning_rate
            ));
        }
        if self.batch_size == 0 || self.max_epochs == 0 {
            return Some("batch size and epochs must be at least 1".into());
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Some(format!("weight decay {} is negative", self.weight_decay));
        }
        if let Optimizer::Sgd { momentum, .. } = self.optimizer
            && !unit(momentum)
        {
            return Some(format!("momentum {momentum} is outside [0, 1)"));
        }
        if self.grad_clip_norm.is_some_and(|c| !positive(c)) {
            return Some("the gradient-clipping norm must be positive".into());
        }
        if !unit(self.label_smoothing) {
            return Some(format!(
                "label smoothing {} is outside [0, 1)",
                self.label_smoothing
            ));
        }
        if let RegressionLoss::Huber { delta } = self.regression_loss
            && !positive(delta)
        {
            return Some(format!("Huber delta {delta} is not positive"));
        }
        None
    }

    /// A compact description for tables: optimiser, schedule and the non-default extras.
    pub fn describe(&self) -> String {
        let mut parts = vec![match self.optimizer {
            Optimizer::Sgd { momentum, nesterov } => {
                format!(
                    "sgd(m={momentum}{})",
                    if nesterov { ",nesterov" } else { "" }
                )
            }
            Optimizer::Adam => "adam".into(),
            Optimizer::AdamW => "adamw".into(),
        }];
        parts.push(format!("lr={:.1e}", self.learning_rate));
        parts.push(format!("{:?}", self.schedule).to_lowercase());
        if self.warmup_epochs > 0 {
            parts.push(format!("warmup={}", self.warmup_epochs));
        }
        parts.push(format!("batch={}", self.batch_size));
        if let Some(c) = self.grad_clip_norm {
            parts.push(format!("clip={c}"));
        }
        if self.label_smoothing > 0.0 {
            parts.push(format!("smooth={}", self.label_smoothing));
        }
        if self.balanced_class_weights {
            parts.push("balanced".into());
        }
        if let RegressionLoss::Huber { delta } = self.regression_loss {
            parts.push(format!("huber({delta})"));
        }
        if self.augment_shift > 0 {
            parts.push(format!("shift±{}", self.augment_shift));
        }
        if self.augment_noise > 0.0 {
            parts.push(format!("noise={}", self.augment_noise));
        }
        if self.mixup_alpha > 0.0 {
            parts.push(format!("mixup={}", self.mixup_alpha));
        }
        if self.augment_rotate > 0.0 {
            parts.push(format!("rotate±{}°", self.augment_rotate));
        }
        parts.join(" ")
    }
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
    /// Multiply-adds per prediction: the estimate of inference cost.
    #[serde(default)]
    pub macs: usize,
    /// How it ended.
    pub outcome: TrialOutcome,
    /// Wall seconds spent on it.
    pub seconds: f64,
    /// Successive halving: the epochs it was trained to at each rung, and why it was promoted
    /// or stopped. Absent for strategies without fidelities.
    #[serde(default)]
    pub rungs: Option<RungLog>,
    /// Seconds since the start of the search when it finished.
    pub finished_at_secs: f64,
}

/// A trial's path through successive halving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RungLog {
    /// Total epochs reached at each rung it was evaluated at.
    pub epochs: Vec<usize>,
    /// The selection score at each of those rungs (`None` where it was not finite).
    #[serde(default)]
    pub scores: Vec<Option<f64>>,
    /// Why it stopped where it did (eliminated at a rung, finished, or out of budget), with
    /// its rank at its last rung.
    pub why: String,
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
                batch_size: 32,
                max_epochs: 10,
                patience: 3,
                ..Hyperparams::default()
            },
            parameters: 26,
            macs: 12,
            outcome: TrialOutcome::Diverged {
                epoch: 2,
                loss: "NaN".into(),
            },
            seconds: 0.5,
            rungs: None,
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

    #[test]
    fn old_hyperparams_files_read_with_the_earlier_defaults() {
        let old = r#"{"learning_rate":0.01,"batch_size":32,"weight_decay":0.0,"max_epochs":5,"patience":2}"#;
        let hp: Hyperparams = serde_json::from_str(old).unwrap();
        assert_eq!(hp.optimizer, Optimizer::AdamW);
        assert_eq!(hp.schedule, LrSchedule::Constant);
        assert_eq!(hp.problem(), None);
        let bad = Hyperparams {
            optimizer: Optimizer::Sgd {
                momentum: 1.5,
                nesterov: false,
            },
            ..hp
        };
        assert!(bad.problem().unwrap().contains("momentum"));
    }
}
