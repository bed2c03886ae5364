//! Running an ONNX model with tract.

use std::path::Path;
use std::sync::Arc;

use autodl_artifacts::table::Matrix;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;

use crate::{DeployError, Result};

type Runnable = Arc<TypedRunnableModel>;

/// One input of a loaded model: `[batch, width]` of f32 or f64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputInfo {
    /// Name in the graph.
    pub name: String,
    /// Whether the input is f64 (else f32).
    pub double: bool,
    /// Columns per row.
    pub width: usize,
}

/// Rows for one graph input, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum InputRows {
    /// f32 values.
    Float(Matrix),
    /// f64 values.
    Double {
        /// Rows.
        n_rows: usize,
        /// Columns per row.
        n_cols: usize,
        /// `n_rows × n_cols` values.
        data: Vec<f64>,
    },
}

impl InputRows {
    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        match self {
            InputRows::Float(m) => m.n_rows,
            InputRows::Double { n_rows, .. } => *n_rows,
        }
    }

    /// Columns per row.
    pub fn n_cols(&self) -> usize {
        match self {
            InputRows::Float(m) => m.n_cols,
            InputRows::Double { n_cols, .. } => *n_cols,
        }
    }

    /// Rows `rows` as a new block.
    pub fn rows(&self, rows: std::ops::Range<usize>) -> InputRows {
        let w = self.n_cols();
        match self {
            InputRows::Float(m) => InputRows::Float(Matrix::new(
                rows.len(),
                w,
                m.data[rows.start * w..rows.end * w].to_vec(),
            )),
            InputRows::Double { data, .. } => InputRows::Double {
                n_rows: rows.len(),
                n_cols: w,
                data: data[rows.start * w..rows.end * w].to_vec(),
            },
        }
    }

    /// Appends the rows of `other` (same kind and width; checked by the caller's model run).
    pub fn extend(&mut self, other: &InputRows) {
        match (self, other) {
            (InputRows::Float(m), InputRows::Float(o)) => {
                m.data.extend_from_slice(&o.data);
                m.n_rows += o.n_rows;
            }
            (
                InputRows::Double { n_rows, data, .. },
                InputRows::Double {
                    n_rows: k, data: d, ..
                },
            ) => {
                data.extend_from_slice(d);
                *n_rows += k;
            }
            _ => panic!("InputRows::extend with a block of another element type"),
        }
    }

    fn tensor(&self) -> Result<Tensor> {
        match self {
            InputRows::Float(m) => Tensor::from_shape(&[m.n_rows, m.n_cols], &m.data),
            InputRows::Double {
                n_rows,
                n_cols,
                data,
            } => Tensor::from_shape(&[*n_rows, *n_cols], data),
        }
        .map_err(runtime)
    }
}

/// An ONNX model loaded and optimised by tract, ready to run on any batch size.
///
/// Two plans are kept: one for any batch size (the batch dimension symbolic), and one
/// optimised for a single row, whose shapes are all known; tract plans the latter's
/// convolutions and matrix products for them, which makes single-row calls (a served request)
/// about three times faster for a small CNN.
pub struct OnnxRunner {
    model: Runnable,
    single: Runnable,
    inputs: Vec<InputInfo>,
}

impl std::fmt::Debug for OnnxRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxRunner")
            .field("inputs", &self.inputs)
            .finish_non_exhaustive()
    }
}

fn runtime(e: impl std::fmt::Display) -> DeployError {
    DeployError::Runtime(format!("{e:#}"))
}

impl OnnxRunner {
    /// Loads a model from ONNX bytes. Every input must be `[batch, fixed width]` of f32 or f64.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut inference = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(runtime)?;
        let typed = inference.clone().into_optimized().map_err(runtime)?;
        let mut inputs = Vec::new();
        for (k, outlet) in typed.input_outlets().map_err(runtime)?.iter().enumerate() {
            let fact = typed.input_fact(k).map_err(runtime)?;
            let name = typed.node(outlet.node).name.clone();
            let width = (fact.shape.len() == 2)
                .then(|| fact.shape[1].to_usize().ok())
                .flatten();
            let double = match fact.datum_type {
                DatumType::F32 => false,
                DatumType::F64 => true,
                _ => None.ok_or_else(|| {
                    DeployError::Runtime(format!("input '{name}' is neither f32 nor f64"))
                })?,
            };
            let width = width.ok_or_else(|| {
                DeployError::Runtime(format!("input '{name}' is not [batch, fixed width]"))
            })?;
            let fact = if double {
                f64::fact([1, width])
            } else {
                f32::fact([1, width])
            };
            inference = inference.with_input_fact(k, fact.into()).map_err(runtime)?;
            inputs.push(InputInfo {
                name,
                double,
                width,
            });
        }
        let model = typed.into_runnable().map_err(runtime)?;
        let single = inference
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(runtime)?;
        Ok(OnnxRunner {
            model,
            single,
            inputs,
        })
    }

    /// Loads a model from an `.onnx` file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| DeployError::Runtime(format!("{}: {e}", path.display())))?;
        Self::from_bytes(&bytes)
    }

    /// The model's inputs, in order.
    pub fn inputs(&self) -> &[InputInfo] {
        &self.inputs
    }

    /// Runs a model with one f32 input on every row of `x`.
    pub fn run(&self, x: &Matrix) -> Result<Matrix> {
        if self.inputs.len() != 1 || self.inputs[0].double {
            return Err(DeployError::Runtime(format!(
                "the model takes {} inputs ({}); give each its rows",
                self.inputs.len(),
                self.input_names()
            )));
        }
        self.run_tensors(
            x.n_rows,
            &[(x.n_cols, || {
                Tensor::from_shape(&[x.n_rows, x.n_cols], &x.data).map_err(runtime)
            })],
        )
    }

    /// Runs the model on one block of rows per input, in [`OnnxRunner::inputs`] order.
    pub fn run_inputs(&self, inputs: &[InputRows]) -> Result<Matrix> {
        if inputs.len() != self.inputs.len() {
            return Err(DeployError::Runtime(format!(
                "the model takes {} inputs ({}), {} given",
                self.inputs.len(),
                self.input_names(),
                inputs.len()
            )));
        }
        let n_rows = inputs.first().map_or(0, InputRows::n_rows);
        for (given, info) in inputs.iter().zip(&self.inputs) {
            if matches!(given, InputRows::Double { .. }) != info.double {
                return Err(DeployError::Runtime(format!(
                    "input '{}' takes {}",
                    info.name,
                    if info.double { "f64" } else { "f32" }
                )));
            }
            if given.n_rows() != n_rows {
                return Err(DeployError::Runtime(format!(
                    "input '{}' has {} rows, the first input {n_rows}",
                    info.name,
                    given.n_rows()
                )));
            }
        }
        let blocks: Vec<_> = inputs.iter().map(|i| (i.n_cols(), || i.tensor())).collect();
        self.run_tensors(n_rows, &blocks)
    }

    fn input_names(&self) -> String {
        self.inputs
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks each block's width, makes its tensor and runs the plan for `n_rows` rows.
    fn run_tensors(
        &self,
        n_rows: usize,
        blocks: &[(usize, impl Fn() -> Result<Tensor>)],
    ) -> Result<Matrix> {
        let mut tensors = TVec::new();
        for ((width, tensor), info) in blocks.iter().zip(&self.inputs) {
            if *width != info.width {
                return Err(DeployError::Shape {
                    expected: info.width,
                    found: *width,
                });
            }
            tensors.push(tensor()?.into());
        }
        let plan = if n_rows == 1 {
            &self.single
        } else {
            &self.model
        };
        let outputs = plan.run(tensors).map_err(runtime)?;
        let view = outputs[0].to_plain_array_view::<f32>().map_err(runtime)?;
        let shape = view.shape().to_vec();
        let n_cols = shape.get(1).copied().unwrap_or(1);
        Ok(Matrix::new(n_rows, n_cols, view.iter().copied().collect()))
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
