//! linfa baselines: multinomial logistic regression or ordinary least squares.

use autodl_artifacts::model::BaselineResult;
use autodl_artifacts::table::{Matrix, MetricValue, PreparedData, SplitData};
use linfa::prelude::{Fit, Predict};
use ndarray16::{Array1, Array2};

use crate::{Result, TrainError};

fn features(x: &Matrix) -> Array2<f64> {
    Array2::from_shape_vec(
        (x.n_rows, x.n_cols),
        x.data.iter().map(|&v| v as f64).collect(),
    )
    .expect("matrix has n_rows * n_cols values")
}

/// Fits the baseline on the training split and scores it on the validation and test splits.
/// `target_scale` converts regression errors from standardised units to the target's units.
pub fn baseline(data: &PreparedData, target_scale: f64) -> Result<BaselineResult> {
    let metric = data.task.metric();
    let x = features(&data.train.x);
    if data.task.is_classification() {
        let y: Array1<usize> = data.train.y.iter().map(|&c| c as usize).collect();
        let model = linfa_logistic::MultiLogisticRegression::default()
            .max_iterations(200)
            .fit(&linfa::Dataset::new(x, y))
            .map_err(|e| TrainError::Baseline(e.to_string()))?;
        let score = |split: &SplitData| {
            let predicted: Array1<usize> = model.predict(&features(&split.x));
            let correct = predicted
                .iter()
                .zip(&split.y)
                .filter(|(p, y)| **p == **y as usize)
                .count();
            MetricValue::new(metric, correct as f64 / split.y.len().max(1) as f64)
        };
        Ok(BaselineResult {
            name: "linfa multinomial logistic regression".into(),
            valid_metric: score(&data.valid),
            test_metric: score(&data.test),
        })
    } else {
        let y: Array1<f64> = data.train.y.iter().map(|&v| v as f64).collect();
        let model = linfa_linear::LinearRegression::default()
            .fit(&linfa::Dataset::new(x, y))
            .map_err(|e| TrainError::Baseline(e.to_string()))?;
        let score = |split: &SplitData| {
            let predicted: Array1<f64> = model.predict(&features(&split.x));
            let outputs = Matrix::new(
                split.x.n_rows,
                1,
                predicted.iter().map(|&p| p as f32).collect(),
            );
            MetricValue::new(
                metric,
                metric.compute_scaled(&outputs, &split.y, target_scale),
            )
        };
        Ok(BaselineResult {
            name: "linfa linear regression (least squares)".into(),
            valid_metric: score(&data.valid),
            test_metric: score(&data.test),
        })
    }
}
