//! A burn module that executes an `ArchitectureSpec`.

use autodl_artifacts::arch::{Activation, ArchitectureSpec, NORM_EPSILON, NodeId, Norm, Op};
use autodl_artifacts::model::{NetworkWeights, WeightTensor};
use autodl_artifacts::table::{Matrix, Task};
use burn::module::{Module, Param, RunningState};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::activation;
use burn::tensor::{Device, Tensor, TensorData};

use crate::{Result, TrainError};

/// What one step of the plan computes; indices point into the module's layer vectors.
#[derive(Debug, Clone)]
enum StepKind {
    Input,
    Linear(usize),
    LayerNorm(usize),
    BatchNorm(usize),
    Dropout(usize),
    Activation(Activation),
    Add,
    Concat,
}

#[derive(Debug, Clone)]
struct Step {
    node: NodeId,
    kind: StepKind,
    /// Indices of earlier steps whose outputs feed this one, in edge order.
    inputs: Vec<usize>,
}

/// The execution plan: steps in topological order; the last one is the output.
#[derive(Debug, Clone)]
struct Plan {
    steps: Vec<Step>,
}

/// The network: layers grouped by kind, and the plan that wires them.
#[derive(Module, Debug)]
pub(crate) struct DagNet {
    linears: Vec<Linear>,
    layer_norms: Vec<LayerNorm>,
    batch_norms: Vec<BatchNorm>,
    dropouts: Vec<Dropout>,
    #[module(skip)]
    plan: Plan,
}

impl DagNet {
    /// Builds a freshly initialised network on `device` (seed the device first for
    /// reproducible initialisation).
    pub(crate) fn new(spec: &ArchitectureSpec, device: &Device) -> Result<Self> {
        let g = spec.validate()?;
        let mut net = DagNet {
            linears: Vec::new(),
            layer_norms: Vec::new(),
            batch_norms: Vec::new(),
            dropouts: Vec::new(),
            plan: Plan { steps: Vec::new() },
        };
        let mut step_of = vec![usize::MAX; spec.nodes.len()];
        for &i in &g.order {
            let node = &spec.nodes[i];
            let fan_in = g.inputs[i].first().map_or(0, |&j| g.widths[j]);
            let kind = match &node.op {
                Op::Input => StepKind::Input,
                Op::Dense { units } | Op::Output { units } => {
                    net.linears
                        .push(LinearConfig::new(fan_in, *units).init(device));
                    StepKind::Linear(net.linears.len() - 1)
                }
                Op::Norm { kind: Norm::Layer } => {
                    net.layer_norms.push(
                        LayerNormConfig::new(g.widths[i])
                            .with_epsilon(NORM_EPSILON)
                            .init(device),
                    );
                    StepKind::LayerNorm(net.layer_norms.len() - 1)
                }
                Op::Norm { kind: Norm::Batch } => {
                    net.batch_norms.push(
                        BatchNormConfig::new(g.widths[i])
                            .with_epsilon(NORM_EPSILON)
                            .init(device),
                    );
                    StepKind::BatchNorm(net.batch_norms.len() - 1)
                }
                Op::Dropout { rate } => {
                    net.dropouts.push(DropoutConfig::new(*rate).init());
                    StepKind::Dropout(net.dropouts.len() - 1)
                }
                Op::Activation { function } => StepKind::Activation(*function),
                Op::Add => StepKind::Add,
                Op::Concat => StepKind::Concat,
            };
            step_of[i] = net.plan.steps.len();
            net.plan.steps.push(Step {
                node: node.id,
                kind,
                inputs: g.inputs[i].iter().map(|&j| step_of[j]).collect(),
            });
        }
        Ok(net)
    }

    /// Runs the network on `[batch, features]`, returning `[batch, outputs]` (logits or values).
    pub(crate) fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let mut values: Vec<Option<Tensor<2>>> = Vec::with_capacity(self.plan.steps.len());
        let mut input = Some(input);
        for step in &self.plan.steps {
            let arg = |k: usize| {
                values[step.inputs[k]]
                    .clone()
                    .expect("plan order puts inputs first")
            };
            let out = match &step.kind {
                StepKind::Input => input.take().expect("one input node"),
                StepKind::Linear(l) => self.linears[*l].forward(arg(0)),
                StepKind::LayerNorm(l) => self.layer_norms[*l].forward(arg(0)),
                StepKind::BatchNorm(l) => self.batch_norms[*l].forward(arg(0)),
                StepKind::Dropout(l) => self.dropouts[*l].forward(arg(0)),
                StepKind::Activation(f) => match f {
                    Activation::Relu => activation::relu(arg(0)),
                    Activation::Gelu => activation::gelu(arg(0)),
                    Activation::Silu => activation::silu(arg(0)),
                    Activation::Tanh => activation::tanh(arg(0)),
                },
                StepKind::Add => (1..step.inputs.len()).fold(arg(0), |acc, k| acc + arg(k)),
                StepKind::Concat => Tensor::cat((0..step.inputs.len()).map(arg).collect(), 1),
            };
            values.push(Some(out));
        }
        values
            .pop()
            .flatten()
            .expect("the plan ends with the output")
    }

    /// Copies every parameter out as plain tensors, keyed as [`NetworkWeights`] documents.
    pub(crate) fn weights(&self) -> NetworkWeights {
        fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
            t.into_data().try_into_vec().expect("f32 parameters")
        }
        let mut w = NetworkWeights::default();
        let mut put = |node: NodeId, name: &str, shape: Vec<usize>, data: Vec<f32>| {
            w.tensors.insert(
                NetworkWeights::key(node, name),
                WeightTensor { shape, data },
            );
        };
        let vector = |t: Tensor<1>| {
            let v = values(t);
            (vec![v.len()], v)
        };
        for step in &self.plan.steps {
            let mut put_vec = |name: &str, t: Tensor<1>| {
                let (shape, data) = vector(t);
                put(step.node, name, shape, data);
            };
            match step.kind {
                StepKind::Linear(l) => {
                    let layer = &self.linears[l];
                    let weight = layer.weight.val();
                    let [rows, cols] = weight.dims();
                    if let Some(b) = &layer.bias {
                        put_vec("bias", b.val());
                    }
                    put(step.node, "weight", vec![rows, cols], values(weight));
                }
                StepKind::LayerNorm(l) => {
                    let layer = &self.layer_norms[l];
                    put_vec("gamma", layer.gamma.val());
                    if let Some(b) = &layer.beta {
                        put_vec("beta", b.val());
                    }
                }
                StepKind::BatchNorm(l) => {
                    let layer = &self.batch_norms[l];
                    put_vec("gamma", layer.gamma.val());
                    put_vec("beta", layer.beta.val());
                    put_vec("running_mean", layer.running_mean.value());
                    put_vec("running_var", layer.running_var.value());
                }
                _ => {}
            }
        }
        w
    }

    /// Replaces every parameter with the values in `weights`, checking names and shapes.
    pub(crate) fn load(mut self, weights: &NetworkWeights, device: &Device) -> Result<Self> {
        let tensor1 = |node: NodeId, name: &str, len: usize| -> Result<Tensor<1>> {
            let t = weights.get(&NetworkWeights::key(node, name), &[len])?;
            Ok(Tensor::from_data(
                TensorData::new(t.data.clone(), [len]),
                device,
            ))
        };
        for step in &self.plan.steps {
            match step.kind {
                StepKind::Linear(l) => {
                    let [rows, cols] = self.linears[l].weight.val().dims();
                    let t =
                        weights.get(&NetworkWeights::key(step.node, "weight"), &[rows, cols])?;
                    let layer = &mut self.linears[l];
                    layer.weight = Param::from_tensor(Tensor::from_data(
                        TensorData::new(t.data.clone(), [rows, cols]),
                        device,
                    ));
                    layer.bias = Some(Param::from_tensor(tensor1(step.node, "bias", cols)?));
                }
                StepKind::LayerNorm(l) => {
                    let [n] = self.layer_norms[l].gamma.val().dims();
                    let layer = &mut self.layer_norms[l];
                    layer.gamma = Param::from_tensor(tensor1(step.node, "gamma", n)?);
                    layer.beta = Some(Param::from_tensor(tensor1(step.node, "beta", n)?));
                }
                StepKind::BatchNorm(l) => {
                    let [n] = self.batch_norms[l].gamma.val().dims();
                    let layer = &mut self.batch_norms[l];
                    layer.gamma = Param::from_tensor(tensor1(step.node, "gamma", n)?);
                    layer.beta = Param::from_tensor(tensor1(step.node, "beta", n)?);
                    layer.running_mean = RunningState::new(tensor1(step.node, "running_mean", n)?);
                    layer.running_var = RunningState::new(tensor1(step.node, "running_var", n)?);
                }
                _ => {}
            }
        }
        Ok(self)
    }
}

/// Rows per forward pass at inference.
const INFERENCE_CHUNK: usize = 2048;

/// Runs `net` (in inference mode) on `x`: class probabilities for classification, the network's
/// (standardised) value for regression.
pub(crate) fn infer(net: &DagNet, task: Task, x: &Matrix, device: &Device) -> Matrix {
    let mut out = Vec::new();
    let mut n_out = 0;
    for start in (0..x.n_rows).step_by(INFERENCE_CHUNK) {
        let rows = INFERENCE_CHUNK.min(x.n_rows - start);
        let chunk = x.data[start * x.n_cols..(start + rows) * x.n_cols].to_vec();
        let input = Tensor::<2>::from_data(TensorData::new(chunk, [rows, x.n_cols]), device);
        let mut y = net.forward(input);
        if task.is_classification() {
            y = activation::softmax(y, 1);
        }
        n_out = y.dims()[1];
        out.extend(y.into_data().try_into_vec::<f32>().expect("f32 outputs"));
    }
    Matrix::new(x.n_rows, n_out, out)
}

/// Predicts with saved weights: class probabilities (softmax of the logits) for classification,
/// the standardised value for regression. This is the reference that exports are checked against.
pub fn predict(
    spec: &ArchitectureSpec,
    weights: &NetworkWeights,
    task: Task,
    x: &Matrix,
) -> Result<Matrix> {
    if x.n_cols != spec.input_features {
        return Err(TrainError::Shape(format!(
            "the network takes {} features, the data has {}",
            spec.input_features, x.n_cols
        )));
    }
    let device = Device::flex();
    let net = DagNet::new(spec, &device)?.load(weights, &device)?;
    Ok(infer(&net.valid(), task, x, &device))
}
