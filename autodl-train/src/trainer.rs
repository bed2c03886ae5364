//! The training loop: AdamW, mini-batches, early stopping, divergence detection.

use autodl_artifacts::arch::ArchitectureSpec;
use autodl_artifacts::context::RunContext;
use autodl_artifacts::model::{EpochRecord, NetworkWeights};
use autodl_artifacts::table::{MetricValue, SplitData, Task};
use autodl_artifacts::trial::{Hyperparams, TrialOutcome};
use burn::module::Module;
use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::net::{DagNet, infer};
use crate::{Result, TrainError};

/// The data a training run sees.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// The task.
    pub task: Task,
    /// Network outputs: classes, or 1 for regression.
    pub n_outputs: usize,
    /// Standard deviation of the target for regression (validation RMSE is reported in the
    /// target's units); 1 for classification.
    pub target_scale: f64,
    /// Training split.
    pub train: &'a SplitData,
    /// Validation split (early stopping).
    pub valid: &'a SplitData,
}

/// What a training run produced.
#[derive(Debug, Clone)]
pub struct TrainResult {
    /// How it ended.
    pub outcome: TrialOutcome,
    /// Weights of the best epoch (completed runs only).
    pub weights: Option<NetworkWeights>,
    /// Per-epoch losses and validation metrics.
    pub history: Vec<EpochRecord>,
}

fn check(arch: &ArchitectureSpec, hp: &Hyperparams, data: &TrainData<'_>) -> Result<()> {
    let g = arch.validate()?;
    for (name, split) in [("training", data.train), ("validation", data.valid)] {
        if split.x.n_cols != arch.input_features {
            return Err(TrainError::Shape(format!(
                "the {name} split has {} features, the network takes {}",
                split.x.n_cols, arch.input_features
            )));
        }
        if split.y.len() != split.x.n_rows || split.y.is_empty() {
            return Err(TrainError::Shape(format!(
                "the {name} split has {} rows and {} targets",
                split.x.n_rows,
                split.y.len()
            )));
        }
    }
    if g.output_width != data.n_outputs {
        return Err(TrainError::Shape(format!(
            "the network has {} outputs, the task needs {}",
            g.output_width, data.n_outputs
        )));
    }
    let lr_ok = hp.learning_rate.is_finite() && hp.learning_rate > 0.0;
    if !lr_ok
        || hp.batch_size == 0
        || hp.max_epochs == 0
        || hp.weight_decay.is_nan()
        || hp.weight_decay < 0.0
    {
        return Err(TrainError::Hyperparams(format!("{hp:?}")));
    }
    Ok(())
}

/// The score that early stopping and model selection maximise: the metric's score, with ties
/// broken by validation cross-entropy for classification. The tie-breaker is capped at a tenth
/// of one validation sample's worth of accuracy, so it never outranks a better accuracy (which
/// saturates at 1.0 on easy data, where it alone cannot tell models apart).
pub(crate) fn selection_score(metric_score: f64, valid_loss: Option<f64>, n_valid: usize) -> f64 {
    let tie = valid_loss.map_or(0.0, |l| if l.is_finite() { l.min(1.0) } else { 1.0 });
    let score = metric_score - tie * 0.1 / n_valid.max(1) as f64;
    if score.is_finite() {
        score
    } else {
        f64::NEG_INFINITY
    }
}

/// Mean cross-entropy of predicted probabilities against class indices.
fn log_loss(probabilities: &autodl_artifacts::table::Matrix, y: &[f32]) -> f64 {
    let total: f64 = (0..probabilities.n_rows)
        .map(|i| -(probabilities.row(i)[y[i] as usize].max(1e-12) as f64).ln())
        .sum();
    total / y.len().max(1) as f64
}

/// Trains `arch` on `data.train` with AdamW, evaluating on `data.valid` after every epoch and
/// stopping after `patience` epochs without improvement; keeps the best epoch's weights.
///
/// A NaN or infinite loss ends the run with [`TrialOutcome::Diverged`]. Past `ctx`'s deadline
/// the run stops after the current epoch and reports what it has. Seeded by `ctx.seed`.
pub fn train(
    arch: &ArchitectureSpec,
    hp: &Hyperparams,
    data: &TrainData<'_>,
    ctx: &RunContext,
) -> Result<TrainResult> {
    check(arch, hp, data)?;
    let metric = data.task.metric();
    let device = Device::flex().autodiff();
    device.seed(ctx.seed);
    let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
    let mut model = DagNet::new(arch, &device)?;
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(hp.weight_decay as f32)
        .init();
    let cross_entropy = CrossEntropyLossConfig::new().init(&device);
    let mse = MseLoss::new();

    let train = data.train;
    let (n, d) = (train.x.n_rows, train.x.n_cols);
    let batch_size = hp.batch_size.min(n);
    let mut order: Vec<usize> = (0..n).collect();
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, DagNet)> = None;
    let mut since_best = 0;

    for epoch in 1..=hp.max_epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0f64;
        let mut batches = 0usize;
        for chunk in order.chunks(batch_size) {
            // A lone trailing sample would break batch normalisation's statistics.
            if chunk.len() < 2 && batches > 0 {
                continue;
            }
            let mut xb = Vec::with_capacity(chunk.len() * d);
            for &i in chunk {
                xb.extend_from_slice(train.x.row(i));
            }
            let x = Tensor::<2>::from_data(TensorData::new(xb, [chunk.len(), d]), &device);
            let output = model.forward(x);
            let loss = if data.task.is_classification() {
                let yb: Vec<i64> = chunk.iter().map(|&i| train.y[i] as i64).collect();
                let y = Tensor::<1, Int>::from_data(TensorData::new(yb, [chunk.len()]), &device);
                cross_entropy.forward(output, y)
            } else {
                let yb: Vec<f32> = chunk.iter().map(|&i| train.y[i]).collect();
                let y = Tensor::<2>::from_data(TensorData::new(yb, [chunk.len(), 1]), &device);
                mse.forward(output, y, Reduction::Mean)
            };
            let value: f32 = loss.clone().into_scalar();
            if !value.is_finite() {
                return Ok(TrainResult {
                    outcome: TrialOutcome::Diverged {
                        epoch,
                        loss: value.to_string(),
                    },
                    weights: None,
                    history,
                });
            }
            loss_sum += value as f64;
            batches += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(hp.learning_rate, model, grads);
        }

        let plain = Device::flex();
        let outputs = infer(&model.valid(), data.task, &data.valid.x, &plain);
        let value = metric.compute_scaled(&outputs, &data.valid.y, data.target_scale);
        let valid_loss = data
            .task
            .is_classification()
            .then(|| log_loss(&outputs, &data.valid.y));
        history.push(EpochRecord {
            epoch,
            train_loss: loss_sum / batches.max(1) as f64,
            valid_metric: value,
            valid_loss,
        });
        let score = selection_score(metric.score(value), valid_loss, data.valid.y.len());
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, epoch, model.clone()));
            since_best = 0;
        } else {
            since_best += 1;
        }
        if since_best >= hp.patience || ctx.should_stop() {
            break;
        }
    }

    let (score, best_epoch, best_model) = best.expect("at least one epoch ran");
    if !score.is_finite() {
        return Ok(TrainResult {
            outcome: TrialOutcome::Diverged {
                epoch: best_epoch,
                loss: "non-finite validation outputs".into(),
            },
            weights: None,
            history,
        });
    }
    let valid_value = history[best_epoch - 1].valid_metric;
    Ok(TrainResult {
        outcome: TrialOutcome::Completed {
            valid_metric: MetricValue::new(metric, valid_value),
            score,
            epochs: history.len(),
            best_epoch,
        },
        weights: Some(best_model.valid().weights()),
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::selection_score;

    #[test]
    fn loss_breaks_ties_but_never_outranks_accuracy() {
        let n = 269;
        let one_sample = 1.0 / n as f64;
        // Same accuracy: lower loss wins.
        assert!(selection_score(1.0, Some(0.05), n) > selection_score(1.0, Some(0.2), n));
        // One more correct sample beats any loss difference.
        assert!(
            selection_score(1.0 - one_sample, Some(0.0), n)
                < selection_score(1.0, Some(50.0), n) + one_sample
        );
        assert!(
            selection_score(1.0 - one_sample, Some(0.0), n)
                < selection_score(1.0, Some(f64::INFINITY), n)
        );
        // Regression scores are left alone; NaN becomes the worst score.
        assert_eq!(selection_score(-3.0, None, n), -3.0);
        assert_eq!(selection_score(f64::NAN, None, n), f64::NEG_INFINITY);
    }
}
