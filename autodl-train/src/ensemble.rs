//! Ensembles: the mean of several trained networks' outputs, and choosing how many to average.

use autodl_artifacts::arch::ArchitectureSpec;
use autodl_artifacts::model::NetworkWeights;
use autodl_artifacts::table::{Matrix, MetricValue, SplitData, Task};

use crate::net::predict;
use crate::trainer::{log_loss, selection_score};
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
    /// The k with the best score; ties go to the smaller ensemble.
    pub chosen: usize,
}

/// Scores the mean of the first k of `members` (best first) on `valid` for every k, with the
/// same selection score as early stopping, and picks the best k.
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
        let loss = task.is_classification().then(|| log_loss(&p, &valid.y));
        let score = selection_score(metric.score(value), loss, valid.y.len());
        sizes.push((k, MetricValue::new(metric, value), score));
    }
    let chosen = sizes
        .iter()
        .fold((1, f64::NEG_INFINITY), |best, (k, _, s)| {
            if *s > best.1 { (*k, *s) } else { best }
        })
        .0;
    Ok(EnsembleChoice { sizes, chosen })
}
