//! Running an ONNX model with tract.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

/// A runnable plan and the run states of its finished calls, which later calls reuse instead
/// of building their own (calls may come from several threads, so the states are a pool).
struct Plan {
    runnable: Runnable,
    idle: Mutex<Vec<TypedSimpleState>>,
}

impl Plan {
    fn new(runnable: Runnable) -> Arc<Self> {
        Arc::new(Plan {
            runnable,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut state = match idle {
            Some(state) => state,
            None => self.runnable.spawn()?,
        };
        let outputs = state.run(inputs)?;
        // A state whose run failed is dropped rather than reused.
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(state);
        Ok(outputs)
    }
}

/// Most batch sizes given a way of their own (besides the single row, which has its plan).
const MAX_SIZED_PLANS: usize = 8;

/// Most batch sizes remembered as seen once.
const MAX_SEEN_SIZES: usize = 4096;

/// How a batch of some size is run.
#[derive(Clone)]
enum Way {
    /// By a plan (the size's own, or the general one).
    Plan(Arc<Plan>),
    /// Row by row, through the single-row plan: chosen for sizes where that measured faster.
    RowByRow,
    /// By this new plan for the size, after which the call also times the batch both ways
    /// (graphs with convolutions only) and keeps the faster.
    Measure(Arc<Plan>),
}

/// How a batch of a given size is run, as chosen for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchWay {
    /// By a tract plan optimised for that batch size.
    SizedPlan,
    /// Row by row through the single-row plan, which measured faster for that size.
    RowByRow,
}

/// Ways kept for one batch size each, and the sizes seen once so far.
#[derive(Default)]
struct SizedPlans {
    ways: HashMap<usize, Way>,
    seen: HashSet<usize>,
}

/// An ONNX model loaded and optimised by tract, ready to run on any batch size.
///
/// tract plans convolutions and matrix products better when every shape is known: a plan
/// optimised for one batch size runs a small CNN's single row about three times faster, and an
/// MLP's 1,024-row batch about 1.4 times faster, than the plan for any batch size. So besides
/// that general plan, a runner keeps one plan for a single row (made on load) and makes one for
/// any other batch size the second time that size is run (up to eight sizes: a stream of
/// equal chunks, or a benchmark, repeats its size; the general plan takes the rest). Each plan
/// keeps the run states of finished calls for the next ones.
///
/// A graph with convolutions may also run a batch faster row by row: tract lowers a single
/// image's convolution without materialising its patches, but a batch's with. Which way is
/// faster depends on the network (twice as fast row by row for a small CNN on 8×8 images,
/// 1.7 times slower for one on signals of length 40), so the call that makes a size's plan
/// times both and the faster is kept for that size ([`OnnxRunner::batch_ways`]).
pub struct OnnxRunner {
    /// The loaded graph, before optimisation: what a sized plan is made from.
    source: InferenceModel,
    general: Arc<Plan>,
    single: Arc<Plan>,
    sized: Mutex<SizedPlans>,
    inputs: Vec<InputInfo>,
    /// Whether the graph has convolutions, whose batches may run faster row by row.
    has_conv: bool,
    /// The way every batch size takes, when the caller chose it instead of the measurement.
    pinned: Option<BatchWay>,
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
        let source = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(runtime)?;
        let typed = optimized(source.clone())?;
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
            inputs.push(InputInfo {
                name,
                double,
                width,
            });
        }
        let has_conv = source
            .nodes()
            .iter()
            .any(|n| n.op.name().starts_with("Conv"));
        let general = runnable(typed)?;
        let single = plan_for_rows(&source, &inputs, 1)?;
        Ok(OnnxRunner {
            source,
            general,
            single,
            sized: Mutex::new(SizedPlans::default()),
            inputs,
            has_conv,
            pinned: None,
        })
    }

    fn sized_plans(&self) -> std::sync::MutexGuard<'_, SizedPlans> {
        self.sized.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How to run `n_rows` rows: the size's kept way when there is one, else the general plan;
    /// the second call with a new size makes that size's plan while there is room.
    fn way(&self, n_rows: usize) -> Result<Way> {
        if n_rows == 1 {
            return Ok(Way::Plan(self.single.clone()));
        }
        {
            let mut sized = self.sized_plans();
            if let Some(way) = sized.ways.get(&n_rows) {
                return Ok(way.clone());
            }
            if sized.ways.len() >= MAX_SIZED_PLANS
                || sized.seen.len() >= MAX_SEEN_SIZES
                || sized.seen.insert(n_rows)
            {
                return Ok(Way::Plan(self.general.clone()));
            }
        }
        if self.pinned == Some(BatchWay::RowByRow) {
            self.sized_plans().ways.insert(n_rows, Way::RowByRow);
            return Ok(Way::RowByRow);
        }
        // Made outside the lock, so other sizes' calls are not held up; two threads may both
        // make it, and the first one kept wins.
        let plan = plan_for_rows(&self.source, &self.inputs, n_rows)?;
        let mut sized = self.sized_plans();
        if let Some(way) = sized.ways.get(&n_rows) {
            return Ok(way.clone());
        }
        if self.has_conv && self.pinned.is_none() {
            return Ok(Way::Measure(plan));
        }
        sized.ways.insert(n_rows, Way::Plan(plan.clone()));
        Ok(Way::Plan(plan))
    }

    /// Runs every batch size seen twice `way`, instead of timing both ways on graphs with
    /// convolutions (which makes that second call slower, once per size).
    pub fn with_batch_way(mut self, way: BatchWay) -> Self {
        self.pinned = Some(way);
        self
    }

    /// How batches of each size seen twice are run, by size (a single row always runs its
    /// own plan).
    pub fn batch_ways(&self) -> Vec<(usize, BatchWay)> {
        let mut ways: Vec<(usize, BatchWay)> = self
            .sized_plans()
            .ways
            .iter()
            .map(|(&n, way)| {
                let way = match way {
                    Way::RowByRow => BatchWay::RowByRow,
                    Way::Plan(_) | Way::Measure(_) => BatchWay::SizedPlan,
                };
                (n, way)
            })
            .collect();
        ways.sort_by_key(|&(n, _)| n);
        ways
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
        match self.way(n_rows)? {
            Way::Plan(plan) => run_plan(&plan, tensors),
            Way::RowByRow => self.run_row_by_row(tensors),
            Way::Measure(plan) => {
                // The first run warms the new plan (its states, its packed weights' caches);
                // the next two time the two ways.
                let output = run_plan(&plan, tensors.clone())?;
                let t = Instant::now();
                run_plan(&plan, tensors.clone())?;
                let batch = t.elapsed();
                let t = Instant::now();
                self.run_row_by_row(tensors)?;
                let rows = t.elapsed();
                let way = if rows < batch {
                    Way::RowByRow
                } else {
                    Way::Plan(plan)
                };
                self.sized_plans().ways.insert(n_rows, way);
                Ok(output)
            }
        }
    }

    /// Runs each row alone through the single-row plan.
    fn run_row_by_row(&self, tensors: TVec<TValue>) -> Result<Matrix> {
        let single = &self.single;
        let n_rows = tensors.first().map_or(0, |t| t.shape()[0]);
        let mut data = Vec::new();
        let mut n_cols = 0;
        for i in 0..n_rows {
            let row = tensors
                .iter()
                .map(|t| t.slice(0, i, i + 1).map(TValue::from))
                .collect::<TractResult<TVec<TValue>>>()
                .map_err(runtime)?;
            let out = run_plan(single, row)?;
            n_cols = out.n_cols;
            data.extend(out.data);
        }
        Ok(Matrix::new(n_rows, n_cols, data))
    }
}

/// A plan optimised for batches of exactly `n_rows` rows of `inputs`.
fn plan_for_rows(
    source: &InferenceModel,
    inputs: &[InputInfo],
    n_rows: usize,
) -> Result<Arc<Plan>> {
    let mut model = source.clone();
    for (k, info) in inputs.iter().enumerate() {
        let fact = if info.double {
            f64::fact([n_rows, info.width])
        } else {
            f32::fact([n_rows, info.width])
        };
        model = model.with_input_fact(k, fact.into()).map_err(runtime)?;
    }
    runnable(optimized(model)?)
}

/// `model` typed, decluttered and optimised, with its pools replaced by
/// [`WindowPool`](crate::pool::WindowPool)s and, where a vector kernel of `gemm.rs` runs
/// (AVX-512, or AVX2 with FMA), its
/// convolutions by [`DirectConv`](crate::conv::DirectConv)s (which fold in a ReLU and a pool
/// after them) and its matrix products by [`DirectDense`](crate::dense::DirectDense)s (which
/// fold in a bias and a ReLU).
fn optimized(model: InferenceModel) -> Result<TypedModel> {
    let mut typed = model.into_typed().map_err(runtime)?;
    typed.declutter().map_err(runtime)?;
    crate::pool::replace_pools(&mut typed).map_err(runtime)?;
    if crate::gemm::worthwhile() {
        crate::conv::replace_convs(&mut typed).map_err(runtime)?;
        crate::dense::replace_dense(&mut typed).map_err(runtime)?;
    }
    typed.optimize().map_err(runtime)?;
    Ok(typed)
}

/// The plan of an optimised model, with tract's softmax over short rows replaced by
/// [`RowSoftmax`](crate::softmax::RowSoftmax).
fn runnable(mut optimized: TypedModel) -> Result<Arc<Plan>> {
    crate::softmax::replace_short_row_softmax(&mut optimized).map_err(runtime)?;
    Ok(Plan::new(optimized.into_runnable().map_err(runtime)?))
}

/// Runs `plan` and returns its first output as a matrix of rows.
fn run_plan(plan: &Plan, tensors: TVec<TValue>) -> Result<Matrix> {
    let outputs = plan.run(tensors).map_err(runtime)?;
    let output = &outputs[0];
    let n_rows = output.shape().first().copied().unwrap_or(1);
    let n_cols = output.shape().get(1).copied().unwrap_or(1);
    let values = output
        .try_as_plain_ram()
        .and_then(|view| view.as_slice::<f32>())
        .map_err(runtime)?;
    Ok(Matrix::new(n_rows, n_cols, values.to_vec()))
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
