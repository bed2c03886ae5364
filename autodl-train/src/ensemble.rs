//! Ensembles: the mean of several trained networks' outputs, and choosing how many to average.

use autodl_artifacts::arch::ArchitectureSpec;
use autodl_artifacts::model::NetworkWeights;
use autodl_artifacts::table::{Matrix, MetricValue, SplitData, Task};

use crate::net::predict;
use crate::trainer::{calibrated_log_loss, selection_score};
use crate::{Result, TrainError};

/// The mean of the members' outputs: probabilities for classification, values for regression.
pub fn predict_mean(
    members: &[(&ArchitectureSpec, &NetworkWeights)],
    task: Task,
    x: &Matrix,
) -> Result<Matrix> {
    let outputs = members
        .iter()
        .map(|(spec, weights)| predict(spec, weights, task, x))
        .collect::<Result<Vec<_>>>()?;
    mean(&outputs)
}

fn mean(outputs: &[Matrix]) -> Result<Matrix> {
    let Some(first) = outputs.first() else {
        return Err(TrainError::Shape(
            "an ensemble needs at least one member".into(),
        ));
    };
    if outputs
        .iter()
        .any(|m| (m.n_rows, m.n_cols) != (first.n_rows, first.n_cols))
    {
        return Err(TrainError::Shape(
            "ensemble members disagree in output shape".into(),
        ));
    }
    let k = outputs.len() as f32;
    let data = (0..first.data.len())
        .map(|i| outputs.iter().map(|m| m.data[i]).sum::<f32>() / k)
        .collect();
    Ok(Matrix::new(first.n_rows, first.n_cols, data))
}

/// The validation result of averaging the first k members, for every k.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleChoice {
    /// For k = 1, 2, …: the validation metric and selection score of the mean of the first k.
    pub sizes: Vec<(usize, MetricValue, f64)>,
    /// The k with the best validation metric; ties go to the larger ensemble (see
    /// [`choose_ensemble`]).
    pub chosen: usize,
}

/// Scores the mean of the first k of `members` (best first) on `valid` for every k and picks
/// the k with the best validation metric; where several tie, the largest of them.
///
/// The tie does not go to the lowest validation loss, as it does when trials are ranked: the
/// members were ranked on this same validation split, so the best network's loss on it is
/// the most optimistic of all, and where accuracy saturates (no validation errors at all) the
/// loss measures only confidence on rows every size gets right. Averaging networks lowers the
/// variance of the prediction (Lakshminarayanan et al. 2017), so without evidence against
/// the ensemble it is kept. Each k's selection score is still recorded, for the report.
pub fn choose_ensemble(
    members: &[(&ArchitectureSpec, &NetworkWeights)],
    task: Task,
    valid: &SplitData,
    target_scale: f64,
) -> Result<EnsembleChoice> {
    let metric = task.metric();
    let outputs = members
        .iter()
        .map(|(spec, weights)| predict(spec, weights, task, &valid.x))
        .collect::<Result<Vec<_>>>()?;
    let mut sizes = Vec::new();
    for k in 1..=outputs.len() {
        let p = mean(&outputs[..k])?;
        let value = metric.compute_scaled(&p, &valid.y, target_scale);
        let loss = task
            .is_classification()
            .then(|| calibrated_log_loss(&p, &valid.y));
        let score = selection_score(metric.score(value), loss, valid.y.len());
        sizes.push((k, MetricValue::new(metric, value), score));
    }
    let values: Vec<f64> = sizes
        .iter()
        .map(|(_, v, _)| metric.score(v.value))
        .collect();
    Ok(EnsembleChoice {
        chosen: largest_of_the_best(&values),
        sizes,
    })
}

/// For scores of k = 1, 2, … (larger is better; a non-finite one never wins): the largest k
/// whose score is the best, or 1 when none is finite.
fn largest_of_the_best(scores: &[f64]) -> usize {
    let best = scores
        .iter()
        .copied()
        .filter(|s| s.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    scores
        .iter()
        .rposition(|&s| s.is_finite() && s == best)
        .map_or(1, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::largest_of_the_best;

    #[test]
    fn the_best_metric_wins_and_ties_go_to_the_larger_ensemble() {
        // A better metric wins whatever the size.
        assert_eq!(largest_of_the_best(&[0.99, 0.98, 0.97]), 1);
        assert_eq!(largest_of_the_best(&[0.98, 0.99, 0.97]), 2);
        // Ties: the largest of the tied sizes, not the largest overall.
        assert_eq!(largest_of_the_best(&[1.0, 1.0, 1.0, 0.99]), 3);
        assert_eq!(largest_of_the_best(&[0.98, 0.99, 0.97, 0.99, 0.98]), 4);
        // Lower-is-better metrics arrive negated; NaN never wins.
        assert_eq!(largest_of_the_best(&[-0.5, f64::NAN, -0.4]), 3);
        assert_eq!(largest_of_the_best(&[f64::NAN, f64::NAN]), 1);
        assert_eq!(largest_of_the_best(&[]), 1);
    }
}
