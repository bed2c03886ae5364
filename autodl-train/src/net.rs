//! A burn module that executes an `ArchitectureSpec`.

use autodl_artifacts::arch::{
    Activation, ArchitectureSpec, NORM_EPSILON, NodeId, Norm, Op, PoolKind, Shape, window,
};
use autodl_artifacts::model::{NetworkWeights, WeightTensor};
use autodl_artifacts::table::{Matrix, Task};
use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData, activation};

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{Result, TrainError};

/// What one step of the plan computes; indices point into the module's layer vectors.
#[derive(Debug, Clone)]
enum StepKind {
    /// Reshapes the flat input to the input grid when the input is spatial.
    Input(Shape),
    Linear(usize),
    Conv(usize),
    /// Kind, window, and whether it is a same-size pooling (stride 1, padded).
    Pool(PoolKind, [usize; 2], bool),
    GlobalPool(PoolKind),
    Flatten,
    LayerNorm(usize),
    BatchNorm(usize),
    Dropout(f64),
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

/// A tensor flowing through the plan: a batch of vectors or of channel × height × width grids.
#[derive(Debug, Clone)]
enum Value {
    Flat(Tensor<2>),
    Grid(Tensor<4>),
}

impl Value {
    fn flat(self) -> Tensor<2> {
        match self {
            Value::Flat(x) => x,
            Value::Grid(_) => unreachable!("validation puts vectors here"),
        }
    }

    fn grid(self) -> Tensor<4> {
        match self {
            Value::Grid(x) => x,
            Value::Flat(_) => unreachable!("validation puts grids here"),
        }
    }

    fn map(
        self,
        flat: impl FnOnce(Tensor<2>) -> Tensor<2>,
        grid: impl FnOnce(Tensor<4>) -> Tensor<4>,
    ) -> Value {
        match self {
            Value::Flat(x) => Value::Flat(flat(x)),
            Value::Grid(x) => Value::Grid(grid(x)),
        }
    }
}

fn activate<const D: usize>(f: Activation, x: Tensor<D>) -> Tensor<D> {
    match f {
        Activation::Relu => activation::relu(x),
        Activation::Gelu => activation::gelu(x),
        Activation::Silu => activation::silu(x),
        Activation::Tanh => activation::tanh(x),
    }
}

/// The height of a grid shape (1 for signals and vectors).
fn grid_height(shape: Shape) -> usize {
    match shape {
        Shape::Grid { height, .. } => height,
        Shape::Flat(_) => 1,
    }
}

/// The network: layers grouped by kind, and the plan that wires them.
#[derive(Module, Debug)]
pub(crate) struct DagNet {
    linears: Vec<Linear>,
    convs: Vec<Conv2d>,
    layer_norms: Vec<LayerNorm>,
    batch_norms: Vec<BatchNorm>,
    #[module(skip)]
    plan: Plan,
}

impl DagNet {
    /// Builds a network initialised from `seed` on `device` (see [`initial_weights`]).
    pub(crate) fn new(spec: &ArchitectureSpec, device: &Device, seed: u64) -> Result<Self> {
        let weights = initial_weights(spec, seed)?;
        Self::shaped(spec, device)?.load(&weights, device)
    }

    /// Builds the layers with burn's default (device-random) values, to be overwritten by
    /// [`DagNet::load`].
    fn shaped(spec: &ArchitectureSpec, device: &Device) -> Result<Self> {
        let g = spec.validate()?;
        let mut net = DagNet {
            linears: Vec::new(),
            convs: Vec::new(),
            layer_norms: Vec::new(),
            batch_norms: Vec::new(),
            plan: Plan { steps: Vec::new() },
        };
        let mut step_of = vec![usize::MAX; spec.nodes.len()];
        for &i in &g.order {
            let node = &spec.nodes[i];
            let fan_in = g.inputs[i].first().map_or(0, |&j| g.widths[j]);
            let kind = match &node.op {
                Op::Input => StepKind::Input(g.shapes[i]),
                Op::Conv {
                    filters,
                    kernel,
                    stride,
                } => {
                    let [_, c, kh, kw] =
                        ArchitectureSpec::conv_kernel_shape(&g, i, *filters, *kernel);
                    let height = grid_height(g.shapes[g.inputs[i][0]]);
                    let (ph, pw) = (kh / 2, kw / 2);
                    net.convs.push(
                        Conv2dConfig::new([c, *filters], [kh, kw])
                            .with_stride(window(height, *stride))
                            .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
                            .init(device),
                    );
                    StepKind::Conv(net.convs.len() - 1)
                }
                Op::Pool { kind, size, same } => StepKind::Pool(
                    *kind,
                    window(grid_height(g.shapes[g.inputs[i][0]]), *size),
                    *same,
                ),
                Op::GlobalPool { kind } => StepKind::GlobalPool(*kind),
                Op::Flatten => StepKind::Flatten,
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
                        BatchNormConfig::new(g.shapes[i].channels())
                            .with_epsilon(NORM_EPSILON)
                            .init(device),
                    );
                    StepKind::BatchNorm(net.batch_norms.len() - 1)
                }
                Op::Dropout { rate } => StepKind::Dropout(*rate),
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
    /// With `noise`, dropout is active and draws its masks from it; without, it is the identity.
    pub(crate) fn forward(
        &self,
        input: Tensor<2>,
        mut noise: Option<&mut ChaCha8Rng>,
    ) -> Tensor<2> {
        let mut values: Vec<Option<Value>> = Vec::with_capacity(self.plan.steps.len());
        let mut input = Some(input);
        for step in &self.plan.steps {
            let arg = |k: usize| {
                values[step.inputs[k]]
                    .clone()
                    .expect("plan order puts inputs first")
            };
            let out = match &step.kind {
                StepKind::Input(shape) => {
                    let x = input.take().expect("one input node");
                    match *shape {
                        Shape::Flat(_) => Value::Flat(x),
                        Shape::Grid {
                            channels,
                            height,
                            width,
                        } => {
                            let batch = x.dims()[0];
                            Value::Grid(x.reshape([batch, channels, height, width]))
                        }
                    }
                }
                StepKind::Linear(l) => Value::Flat(self.linears[*l].forward(arg(0).flat())),
                StepKind::Conv(l) => Value::Grid(self.convs[*l].forward(arg(0).grid())),
                StepKind::Pool(kind, size, false) => Value::Grid(match kind {
                    PoolKind::Max => max_pool2d(arg(0).grid(), MaxPoolOptions::new(*size)),
                    PoolKind::Average => avg_pool2d(arg(0).grid(), AvgPoolOptions::new(*size)),
                }),
                StepKind::Pool(kind, size, true) => {
                    let padding = size.map(|k| k / 2);
                    Value::Grid(match kind {
                        PoolKind::Max => max_pool2d(
                            arg(0).grid(),
                            MaxPoolOptions::new(*size)
                                .with_stride([1, 1])
                                .with_padding(padding),
                        ),
                        PoolKind::Average => avg_pool2d(
                            arg(0).grid(),
                            AvgPoolOptions::new(*size)
                                .with_stride([1, 1])
                                .with_padding(padding)
                                .with_count_include_pad(false),
                        ),
                    })
                }
                StepKind::GlobalPool(kind) => {
                    let x = arg(0).grid();
                    let [batch, channels, height, width] = x.dims();
                    let x = x.reshape([batch, channels, height * width]);
                    let pooled = match kind {
                        PoolKind::Max => x.max_dim(2),
                        PoolKind::Average => x.mean_dim(2),
                    };
                    Value::Flat(pooled.reshape([batch, channels]))
                }
                StepKind::Flatten => {
                    let x = arg(0).grid();
                    let [batch, c, h, w] = x.dims();
                    Value::Flat(x.reshape([batch, c * h * w]))
                }
                StepKind::LayerNorm(l) => Value::Flat(self.layer_norms[*l].forward(arg(0).flat())),
                StepKind::BatchNorm(l) => match arg(0) {
                    Value::Flat(x) => Value::Flat(self.batch_norms[*l].forward(x)),
                    Value::Grid(x) => Value::Grid(self.batch_norms[*l].forward(x)),
                },
                StepKind::Dropout(rate) => match noise.as_deref_mut() {
                    Some(rng) if *rate > 0.0 => {
                        let value = arg(0);
                        let mask = |dims: &[usize], rng: &mut ChaCha8Rng| {
                            let keep = 1.0 - *rate as f32;
                            let n: usize = dims.iter().product();
                            (0..n)
                                .map(|_| {
                                    if rng.random::<f32>() < keep {
                                        1.0 / keep
                                    } else {
                                        0.0
                                    }
                                })
                                .collect::<Vec<f32>>()
                        };
                        match value {
                            Value::Flat(x) => {
                                let dims = x.dims();
                                let m = TensorData::new(mask(&dims, rng), dims);
                                let device = x.device();
                                Value::Flat(x * Tensor::from_data(m, &device))
                            }
                            Value::Grid(x) => {
                                let dims = x.dims();
                                let m = TensorData::new(mask(&dims, rng), dims);
                                let device = x.device();
                                Value::Grid(x * Tensor::from_data(m, &device))
                            }
                        }
                    }
                    _ => arg(0),
                },
                StepKind::Activation(f) => {
                    let f = *f;
                    arg(0).map(|x| activate(f, x), |x| activate(f, x))
                }
                StepKind::Add => {
                    (1..step.inputs.len()).fold(arg(0), |acc, k| match (acc, arg(k)) {
                        (Value::Flat(a), Value::Flat(b)) => Value::Flat(a + b),
                        (Value::Grid(a), Value::Grid(b)) => Value::Grid(a + b),
                        _ => unreachable!("validation checks that added shapes agree"),
                    })
                }
                StepKind::Concat => match arg(0) {
                    Value::Flat(_) => Value::Flat(Tensor::cat(
                        (0..step.inputs.len()).map(|k| arg(k).flat()).collect(),
                        1,
                    )),
                    Value::Grid(_) => Value::Grid(Tensor::cat(
                        (0..step.inputs.len()).map(|k| arg(k).grid()).collect(),
                        1,
                    )),
                },
            };
            values.push(Some(out));
        }
        values
            .pop()
            .flatten()
            .expect("the plan ends with the output")
            .flat()
    }

    /// A copy that shares no state with `self`. burn's `RunningState` (batch-norm statistics)
    /// keeps its value behind an `Arc` that a derived clone shares, so a kept "best epoch" would
    /// otherwise go on following the training that continues after it.
    pub(crate) fn snapshot(&self) -> DagNet {
        let mut copy = self.clone();
        for bn in &mut copy.batch_norms {
            bn.running_mean = RunningState::new(bn.running_mean.value_sync());
            bn.running_var = RunningState::new(bn.running_var.value_sync());
        }
        copy
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
                StepKind::Conv(l) => {
                    let layer = &self.convs[l];
                    let weight = layer.weight.val();
                    if let Some(b) = &layer.bias {
                        put_vec("bias", b.val());
                    }
                    put(step.node, "weight", weight.dims().to_vec(), values(weight));
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
                    put_vec("running_mean", layer.running_mean.value_sync());
                    put_vec("running_var", layer.running_var.value_sync());
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
                StepKind::Conv(l) => {
                    let shape = self.convs[l].weight.val().dims();
                    let t = weights.get(&NetworkWeights::key(step.node, "weight"), &shape)?;
                    let layer = &mut self.convs[l];
                    layer.weight = Param::from_tensor(Tensor::from_data(
                        TensorData::new(t.data.clone(), shape),
                        device,
                    ));
                    layer.bias = Some(Param::from_tensor(tensor1(step.node, "bias", shape[0])?));
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

/// Initial weights drawn from our own seeded generator, not the device's (which is global and
/// shared by concurrent trials): dense and convolution weights and biases uniform in
/// `±1/√fan_in` (burn's and PyTorch's default), normalisation scales 1 and shifts 0, running
/// statistics 0 and 1.
pub(crate) fn initial_weights(spec: &ArchitectureSpec, seed: u64) -> Result<NetworkWeights> {
    let g = spec.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = NetworkWeights::default();
    let mut put = |node: NodeId, name: &str, shape: Vec<usize>, data: Vec<f32>| {
        w.tensors.insert(
            NetworkWeights::key(node, name),
            WeightTensor { shape, data },
        );
    };
    for &i in &g.order {
        let node = &spec.nodes[i];
        let (weight_shape, fan_in, outputs) = match node.op {
            Op::Dense { units } | Op::Output { units } => {
                let fan_in = g.widths[g.inputs[i][0]];
                (vec![fan_in, units], fan_in, units)
            }
            Op::Conv {
                filters, kernel, ..
            } => {
                let shape = ArchitectureSpec::conv_kernel_shape(&g, i, filters, kernel);
                (shape.to_vec(), shape[1..].iter().product(), filters)
            }
            Op::Norm { kind } => {
                let n = g.shapes[i].channels();
                put(node.id, "gamma", vec![n], vec![1.0; n]);
                put(node.id, "beta", vec![n], vec![0.0; n]);
                if kind == Norm::Batch {
                    put(node.id, "running_mean", vec![n], vec![0.0; n]);
                    put(node.id, "running_var", vec![n], vec![1.0; n]);
                }
                continue;
            }
            _ => continue,
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        let mut uniform =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
        let weight = uniform(weight_shape.iter().product());
        let bias = uniform(outputs);
        put(node.id, "weight", weight_shape, weight);
        put(node.id, "bias", vec![outputs], bias);
    }
    Ok(w)
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
        let mut y = net.forward(input, None);
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
    let net = DagNet::shaped(spec, &device)?.load(weights, &device)?;
    Ok(infer(&net.valid(), task, x, &device))
}
