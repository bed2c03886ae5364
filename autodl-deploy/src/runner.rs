//! Running an ONNX model with tract.

use std::path::Path;
use std::sync::Arc;

use autodl_artifacts::table::Matrix;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;

use crate::{DeployError, Result};

type Runnable = Arc<TypedRunnableModel>;

/// An ONNX model loaded and optimised by tract, ready to run on any batch size.
///
/// Two plans are kept: one for any batch size (the batch dimension symbolic), and one
/// optimised for a single row, whose shapes are all known; tract plans the latter's
/// convolutions and matrix products for them, which makes single-row calls (a served request)
/// about three times faster for a small CNN.
pub struct OnnxRunner {
    model: Runnable,
    single: Runnable,
    n_features: usize,
}

impl std::fmt::Debug for OnnxRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxRunner")
            .field("n_features", &self.n_features)
            .finish_non_exhaustive()
    }
}

fn runtime(e: impl std::fmt::Display) -> DeployError {
    DeployError::Runtime(e.to_string())
}

impl OnnxRunner {
    /// Loads a model from ONNX bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let inference = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(runtime)?;
        let typed = inference.clone().into_optimized().map_err(runtime)?;
        let fact = typed.input_fact(0).map_err(runtime)?;
        let n_features = (fact.shape.len() == 2)
            .then(|| fact.shape[1].to_usize().ok())
            .flatten()
            .ok_or_else(|| {
                DeployError::Runtime("the input is not [batch, fixed features]".into())
            })?;
        let model = typed.into_runnable().map_err(runtime)?;
        let single = inference
            .with_input_fact(0, f32::fact([1, n_features]).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(runtime)?;
        Ok(OnnxRunner {
            model,
            single,
            n_features,
        })
    }

    /// Loads a model from an `.onnx` file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| DeployError::Runtime(format!("{}: {e}", path.display())))?;
        Self::from_bytes(&bytes)
    }

    /// Features the model takes.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Runs the model on every row of `x`.
    pub fn run(&self, x: &Matrix) -> Result<Matrix> {
        if x.n_cols != self.n_features {
            return Err(DeployError::Shape {
                expected: self.n_features,
                found: x.n_cols,
            });
        }
        let input = Tensor::from_shape(&[x.n_rows, x.n_cols], &x.data).map_err(runtime)?;
        let plan = if x.n_rows == 1 {
            &self.single
        } else {
            &self.model
        };
        let outputs = plan.run(tvec!(input.into())).map_err(runtime)?;
        let view = outputs[0].to_plain_array_view::<f32>().map_err(runtime)?;
        let shape = view.shape().to_vec();
        let n_cols = shape.get(1).copied().unwrap_or(1);
        Ok(Matrix::new(
            x.n_rows,
            n_cols,
            view.iter().copied().collect(),
        ))
    }
}

/// Largest absolute element-wise difference of two equally shaped matrices (infinite if the
/// shapes differ or any value is NaN).
pub fn max_abs_diff(a: &Matrix, b: &Matrix) -> f64 {
    if (a.n_rows, a.n_cols) != (b.n_rows, b.n_cols) {
        return f64::INFINITY;
    }
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| {
            let d = (*x as f64 - *y as f64).abs();
            if d.is_nan() { f64::INFINITY } else { d }
        })
        .fold(0.0, f64::max)
}
