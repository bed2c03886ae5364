//! `ArchitectureSpec`: the network as our own DAG of typed nodes.
//!
//! One spec, three readers: search converts it to a petgraph graph for its algorithms, train
//! builds a burn module from it, deploy writes ONNX from it. [`ArchitectureSpec::validate`] is
//! the contract all three rely on: exactly one input and one output, no cycles, every node on a
//! path from input to output, the right number of inputs per op, and agreeing shapes.
//!
//! Tensors flowing through the graph are either flat feature vectors or channel × height × width
//! grids. A 1-D signal is a grid of height 1: its convolutions and pools slide along the width
//! only (a `1 × k` kernel), so one code path serves signals and images in burn and in ONNX.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ArtifactError, Result};

/// A node's identifier, unique within one spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// Element-wise activation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// x·Φ(x), the exact (erf) form.
    Gelu,
    /// x·sigmoid(x).
    Silu,
    /// tanh(x).
    Tanh,
}

impl Activation {
    /// Every activation.
    pub const ALL: [Activation; 4] = [
        Activation::Relu,
        Activation::Gelu,
        Activation::Silu,
        Activation::Tanh,
    ];
}

/// Normalisation layers over the feature axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// Layer normalisation (per sample), with learned scale and shift.
    Layer,
    /// Batch normalisation (running statistics at inference), with learned scale and shift.
    Batch,
}

/// Epsilon used by both normalisations (the same value in burn and in the ONNX export).
pub const NORM_EPSILON: f64 = 1e-5;

/// How a pooling window is reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// The largest value in the window.
    Max,
    /// The mean of the window.
    Average,
}

impl PoolKind {
    /// Short name for reports.
    pub fn label(&self) -> &'static str {
        match self {
            PoolKind::Max => "max",
            PoolKind::Average => "avg",
        }
    }
}

/// How the flat input feature vector is laid out, as recorded by the data stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputShape {
    /// Independent tabular features.
    #[default]
    Vector,
    /// A 1-D signal of `length` samples per channel, channel-major.
    Signal {
        /// Channels.
        channels: usize,
        /// Samples per channel.
        length: usize,
    },
    /// An image, channel-major then row-major.
    Image {
        /// Channels.
        channels: usize,
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
}

impl InputShape {
    /// Number of flat features this layout covers.
    pub fn features(&self, flat: usize) -> usize {
        match *self {
            InputShape::Vector => flat,
            InputShape::Signal { channels, length } => channels * length,
            InputShape::Image {
                channels,
                height,
                width,
            } => channels * height * width,
        }
    }

    /// The tensor shape of the input node for `flat` features.
    pub fn tensor_shape(&self, flat: usize) -> Shape {
        match *self {
            InputShape::Vector => Shape::Flat(flat),
            InputShape::Signal { channels, length } => Shape::Grid {
                channels,
                height: 1,
                width: length,
            },
            InputShape::Image {
                channels,
                height,
                width,
            } => Shape::Grid {
                channels,
                height,
                width,
            },
        }
    }

    /// True for signals and images.
    pub fn is_spatial(&self) -> bool {
        !matches!(self, InputShape::Vector)
    }
}

/// The shape of one sample's tensor at a node (the batch axis is implicit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A feature vector.
    Flat(usize),
    /// Channels × height × width; height is 1 for signals.
    Grid {
        /// Channels.
        channels: usize,
        /// Rows (1 for a signal).
        height: usize,
        /// Columns.
        width: usize,
    },
}

impl Shape {
    /// Number of elements.
    pub fn size(&self) -> usize {
        match *self {
            Shape::Flat(n) => n,
            Shape::Grid {
                channels,
                height,
                width,
            } => channels * height * width,
        }
    }

    /// The channel count of a grid, or the width of a vector.
    pub fn channels(&self) -> usize {
        match *self {
            Shape::Flat(n) => n,
            Shape::Grid { channels, .. } => channels,
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Flat(n) => write!(f, "[{n}]"),
            Shape::Grid {
                channels,
                height,
                width,
            } => write!(f, "[{channels}×{height}×{width}]"),
        }
    }
}

/// A spatial window: `1 × size` on a signal (height 1), `size × size` on an image.
pub fn window(height: usize, size: usize) -> [usize; 2] {
    if height == 1 { [1, size] } else { [size, size] }
}

/// Output length of a sliding window along one axis (floor mode, symmetric padding).
pub fn window_output(input: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = input + 2 * padding;
    (padded >= kernel && stride > 0).then(|| (padded - kernel) / stride + 1)
}

/// What a node computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The feature vector; no inputs.
    Input,
    /// Fully connected layer `x·W + b` with `units` outputs.
    Dense {
        /// Output width.
        units: usize,
    },
    /// An activation function.
    Activation {
        /// Which one.
        function: Activation,
    },
    /// A normalisation layer.
    Norm {
        /// Which one.
        kind: Norm,
    },
    /// Dropout during training; the identity at inference.
    Dropout {
        /// Probability of zeroing an element, in `[0, 1)`.
        rate: f64,
    },
    /// Convolution over a grid, with `kernel / 2` zero padding on each side of every slid axis
    /// (so stride 1 with an odd kernel keeps the size).
    Conv {
        /// Output channels.
        filters: usize,
        /// Kernel size along each slid axis.
        kernel: usize,
        /// Step along each slid axis.
        stride: usize,
    },
    /// Pooling over a grid. By default non-overlapping (window and stride `size`, no padding,
    /// floor); with `same`, stride 1 and `size / 2` padding so that an odd window keeps the
    /// grid's size (the pooling edge of a cell), where padding never enters a maximum and an
    /// average counts only positions inside the grid.
    Pool {
        /// Max or average.
        kind: PoolKind,
        /// Window size along each slid axis.
        size: usize,
        /// Stride 1 with `size / 2` padding instead of non-overlapping windows.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        same: bool,
    },
    /// Pooling over all positions of a grid, giving one value per channel (a vector).
    GlobalPool {
        /// Max or average.
        kind: PoolKind,
    },
    /// A grid flattened to a vector, channel-major.
    Flatten,
    /// Element-wise sum of two or more inputs of equal shape.
    Add,
    /// Concatenation of two or more inputs along the feature (vector) or channel (grid) axis, in
    /// edge order; grids must agree in height and width.
    Concat,
    /// The final fully connected layer producing the network's outputs (logits or values).
    Output {
        /// Number of outputs.
        units: usize,
    },
}

impl Op {
    /// Short name for reports.
    pub fn label(&self) -> String {
        match self {
            Op::Input => "input".into(),
            Op::Dense { units } => format!("dense({units})"),
            Op::Activation { function } => format!("{function:?}").to_lowercase(),
            Op::Norm { kind: Norm::Layer } => "layer_norm".into(),
            Op::Norm { kind: Norm::Batch } => "batch_norm".into(),
            Op::Dropout { rate } => format!("dropout({rate:.2})"),
            Op::Conv {
                filters,
                kernel,
                stride,
            } => format!("conv({filters},k{kernel},s{stride})"),
            Op::Pool { kind, size, same } => format!(
                "{}_pool({size}{})",
                kind.label(),
                if *same { ",same" } else { "" }
            ),
            Op::GlobalPool { kind } => format!("global_{}_pool", kind.label()),
            Op::Flatten => "flatten".into(),
            Op::Add => "add".into(),
            Op::Concat => "concat".into(),
            Op::Output { units } => format!("output({units})"),
        }
    }
}

/// A node of the DAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Identifier, unique in the spec.
    pub id: NodeId,
    /// Operation.
    #[serde(flatten)]
    pub op: Op,
}

/// A directed edge: the output of `from` is an input of `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// Producer.
    pub from: NodeId,
    /// Consumer.
    pub to: NodeId,
}

/// A network as a DAG. Edge order matters for `Concat` (inputs are concatenated in edge order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchitectureSpec {
    /// Schema version of this artifact.
    pub schema_version: u32,
    /// Width of the flat input feature vector.
    pub input_features: usize,
    /// How those features are laid out (vector, signal or image).
    #[serde(default)]
    pub input_shape: InputShape,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Edges.
    pub edges: Vec<Edge>,
}

crate::versioned!(ArchitectureSpec);

/// The result of validating a spec: everything a reader needs to execute it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedGraph {
    /// Indices into `nodes`, in an order where every node comes after its inputs.
    pub order: Vec<usize>,
    /// For each node index, the indices of its inputs in edge order.
    pub inputs: Vec<Vec<usize>>,
    /// For each node index, the number of elements of its output (per sample).
    pub widths: Vec<usize>,
    /// For each node index, the shape of its output.
    pub shapes: Vec<Shape>,
    /// Index of the input node.
    pub input: usize,
    /// Index of the output node.
    pub output: usize,
    /// Width of the output.
    pub output_width: usize,
}

impl ArchitectureSpec {
    /// A plain multilayer perceptron: dense → activation per hidden width, then the output layer.
    pub fn mlp(
        input_features: usize,
        hidden: &[usize],
        activation: Activation,
        outputs: usize,
    ) -> Self {
        let mut ops = Vec::new();
        for &units in hidden {
            ops.push(Op::Dense { units });
            ops.push(Op::Activation {
                function: activation,
            });
        }
        ops.push(Op::Output { units: outputs });
        Self::chain(input_features, InputShape::Vector, ops)
    }

    /// A sequential network: the input followed by `ops` in order (the last should be `Output`).
    pub fn chain(input_features: usize, input_shape: InputShape, ops: Vec<Op>) -> Self {
        let nodes: Vec<Node> = std::iter::once(Op::Input)
            .chain(ops)
            .enumerate()
            .map(|(i, op)| Node {
                id: NodeId(i as u32),
                op,
            })
            .collect();
        let edges = nodes
            .windows(2)
            .map(|w| Edge {
                from: w[0].id,
                to: w[1].id,
            })
            .collect();
        ArchitectureSpec {
            schema_version: crate::SCHEMA_VERSION,
            input_features,
            input_shape,
            nodes,
            edges,
        }
    }

    /// The index of node `id` in `nodes`.
    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Checks the DAG rules and computes an execution order and every node's width.
    pub fn validate(&self) -> Result<ValidatedGraph> {
        let bad = |msg: String| ArtifactError::Architecture(msg);
        let n = self.nodes.len();
        let mut index = BTreeMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if index.insert(node.id, i).is_some() {
                return Err(bad(format!("node id {} appears twice", node.id)));
            }
        }
        let mut inputs = vec![Vec::new(); n];
        let mut outputs = vec![Vec::new(); n];
        for e in &self.edges {
            let (Some(&a), Some(&b)) = (index.get(&e.from), index.get(&e.to)) else {
                return Err(bad(format!(
                    "edge {} -> {} names a missing node",
                    e.from, e.to
                )));
            };
            inputs[b].push(a);
            outputs[a].push(b);
        }
        let find = |pred: fn(&Op) -> bool, what: &str| -> Result<usize> {
            let found: Vec<usize> = (0..n).filter(|&i| pred(&self.nodes[i].op)).collect();
            match found.as_slice() {
                [one] => Ok(*one),
                _ => Err(bad(format!(
                    "expected exactly one {what} node, found {}",
                    found.len()
                ))),
            }
        };
        let input = find(|op| matches!(op, Op::Input), "input")?;
        let output = find(|op| matches!(op, Op::Output { .. }), "output")?;
        if !outputs[output].is_empty() {
            return Err(bad("the output node must have no successors".into()));
        }
        if self.input_features == 0 {
            return Err(bad("the input has zero features".into()));
        }

        // Kahn's algorithm; ties broken by node index so the order is deterministic.
        let mut indegree: Vec<usize> = inputs.iter().map(Vec::len).collect();
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &j in &outputs[i] {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.insert(j);
                }
            }
        }
        if order.len() != n {
            return Err(bad("the graph has a cycle".into()));
        }
        if order.first() != Some(&input)
            || inputs
                .iter()
                .enumerate()
                .any(|(i, v)| i != input && v.is_empty())
        {
            return Err(bad("every node except the input needs an input".into()));
        }
        // Every node must reach the output.
        let mut reaches = vec![false; n];
        reaches[output] = true;
        for &i in order.iter().rev() {
            if outputs[i].iter().any(|&j| reaches[j]) {
                reaches[i] = true;
            }
        }
        if let Some(i) = (0..n).find(|&i| !reaches[i]) {
            return Err(bad(format!(
                "node {} does not lead to the output",
                self.nodes[i].id
            )));
        }

        if self.input_shape.features(self.input_features) != self.input_features {
            return Err(bad(format!(
                "the input shape {:?} does not cover {} features",
                self.input_shape, self.input_features
            )));
        }
        let mut shapes = vec![Shape::Flat(0); n];
        for &i in &order {
            let node = &self.nodes[i];
            let ins: Vec<Shape> = inputs[i].iter().map(|&j| shapes[j]).collect();
            let here = || format!("node {} ({})", node.id, node.op.label());
            let single = || -> Result<Shape> {
                match ins.as_slice() {
                    [s] => Ok(*s),
                    _ => Err(bad(format!(
                        "{} takes exactly one input, has {}",
                        here(),
                        ins.len()
                    ))),
                }
            };
            let vector = || -> Result<usize> {
                match single()? {
                    Shape::Flat(w) => Ok(w),
                    grid => Err(bad(format!(
                        "{} needs a vector, gets a {grid} grid (flatten or pool it first)",
                        here()
                    ))),
                }
            };
            let grid = || -> Result<(usize, usize, usize)> {
                match single()? {
                    Shape::Grid {
                        channels,
                        height,
                        width,
                    } => Ok((channels, height, width)),
                    flat => Err(bad(format!(
                        "{} needs a grid, gets a {flat} vector",
                        here()
                    ))),
                }
            };
            let positive = |v: usize, what: &str| -> Result<()> {
                if v == 0 {
                    return Err(bad(format!("{} has zero {what}", here())));
                }
                Ok(())
            };
            // Output of a window sliding over (height, width); height 1 is never slid.
            let slide = |h: usize, w: usize, kernel: usize, stride: usize, pad: usize| {
                let [kh, kw] = window(h, kernel);
                let ph = if h == 1 { 0 } else { pad };
                match (
                    window_output(h, kh, stride, ph),
                    window_output(w, kw, stride, pad),
                ) {
                    (Some(oh), Some(ow)) => Ok((oh, ow)),
                    _ => Err(bad(format!(
                        "{} has a window of {kernel} larger than its {h}×{w} input",
                        here()
                    ))),
                }
            };
            shapes[i] = match &node.op {
                Op::Input => self.input_shape.tensor_shape(self.input_features),
                Op::Dense { units } | Op::Output { units } => {
                    vector()?;
                    positive(*units, "units")?;
                    Shape::Flat(*units)
                }
                Op::Activation { .. } | Op::Norm { kind: Norm::Batch } => single()?,
                Op::Norm { kind: Norm::Layer } => Shape::Flat(vector()?),
                Op::Dropout { rate } => {
                    if !(0.0..1.0).contains(rate) {
                        return Err(bad(format!(
                            "node {} has dropout rate {rate}, outside [0, 1)",
                            node.id
                        )));
                    }
                    single()?
                }
                Op::Conv {
                    filters,
                    kernel,
                    stride,
                } => {
                    let (_, h, w) = grid()?;
                    positive(*filters, "filters")?;
                    positive(*kernel, "kernel size")?;
                    positive(*stride, "stride")?;
                    let (height, width) = slide(h, w, *kernel, *stride, kernel / 2)?;
                    Shape::Grid {
                        channels: *filters,
                        height,
                        width,
                    }
                }
                Op::Pool { size, same, .. } => {
                    let (channels, h, w) = grid()?;
                    positive(*size, "pool size")?;
                    let (height, width) = if *same {
                        slide(h, w, *size, 1, size / 2)?
                    } else {
                        slide(h, w, *size, *size, 0)?
                    };
                    Shape::Grid {
                        channels,
                        height,
                        width,
                    }
                }
                Op::GlobalPool { .. } => Shape::Flat(grid()?.0),
                Op::Flatten => {
                    let (c, h, w) = grid()?;
                    Shape::Flat(c * h * w)
                }
                Op::Add => {
                    if ins.len() < 2 || ins.iter().any(|s| *s != ins[0]) {
                        let listed: Vec<String> = ins.iter().map(Shape::to_string).collect();
                        return Err(bad(format!(
                            "add node {} needs two or more inputs of equal shape, has {}",
                            node.id,
                            listed.join(", ")
                        )));
                    }
                    ins[0]
                }
                Op::Concat => {
                    if ins.len() < 2 {
                        return Err(bad(format!(
                            "concat node {} needs two or more inputs",
                            node.id
                        )));
                    }
                    match ins[0] {
                        Shape::Flat(_) if ins.iter().all(|s| matches!(s, Shape::Flat(_))) => {
                            Shape::Flat(ins.iter().map(Shape::size).sum())
                        }
                        Shape::Grid { height, width, .. }
                            if ins.iter().all(|s| {
                                matches!(s, Shape::Grid { height: h, width: w, .. }
                                    if *h == height && *w == width)
                            }) =>
                        {
                            Shape::Grid {
                                channels: ins.iter().map(Shape::channels).sum(),
                                height,
                                width,
                            }
                        }
                        _ => {
                            let listed: Vec<String> = ins.iter().map(Shape::to_string).collect();
                            return Err(bad(format!(
                                "concat node {} joins vectors with vectors or grids of equal \
                                 height and width, has {}",
                                node.id,
                                listed.join(", ")
                            )));
                        }
                    }
                }
            };
        }
        let Shape::Flat(output_width) = shapes[output] else {
            unreachable!("the output is a dense layer")
        };
        Ok(ValidatedGraph {
            output_width,
            widths: shapes.iter().map(Shape::size).collect(),
            shapes,
            order,
            inputs,
            input,
            output,
        })
    }

    /// Kernel shape `[out, in, kh, kw]` of convolution node `i` (as burn and ONNX store it).
    pub fn conv_kernel_shape(
        g: &ValidatedGraph,
        i: usize,
        filters: usize,
        kernel: usize,
    ) -> [usize; 4] {
        let input = g.shapes[g.inputs[i][0]];
        let (c, h) = match input {
            Shape::Grid {
                channels, height, ..
            } => (channels, height),
            Shape::Flat(w) => (w, 1),
        };
        let [kh, kw] = window(h, kernel);
        [filters, c, kh, kw]
    }

    /// Number of trainable parameters (weights, biases, normalisation scales and shifts).
    pub fn parameter_count(&self) -> Result<usize> {
        let g = self.validate()?;
        Ok(self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let fan_in = g.inputs[i].first().map_or(0, |&j| g.widths[j]);
                match node.op {
                    Op::Dense { units } | Op::Output { units } => fan_in * units + units,
                    Op::Conv {
                        filters, kernel, ..
                    } => {
                        Self::conv_kernel_shape(&g, i, filters, kernel)
                            .iter()
                            .product::<usize>()
                            + filters
                    }
                    Op::Norm { .. } => 2 * g.shapes[i].channels(),
                    _ => 0,
                }
            })
            .sum())
    }

    /// Multiply–accumulate operations for one sample at inference (dense and convolution layers).
    pub fn inference_macs(&self) -> Result<usize> {
        let g = self.validate()?;
        Ok(self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| match node.op {
                Op::Dense { units } | Op::Output { units } => {
                    g.inputs[i].first().map_or(0, |&j| g.widths[j]) * units
                }
                Op::Conv {
                    filters, kernel, ..
                } => {
                    let [_, c, kh, kw] = Self::conv_kernel_shape(&g, i, filters, kernel);
                    g.widths[i] * c * kh * kw
                }
                _ => 0,
            })
            .sum())
    }

    /// A fingerprint of what the network computes, the same for graphs that differ only in
    /// node ids or node order: each node hashes its op with its inputs' hashes (in edge order,
    /// except for `Add`, whose inputs commute); the output node's hash, with the input's
    /// layout, is the key (16 hex digits, FNV-1a, stable across platforms and versions).
    pub fn canonical_key(&self) -> Result<String> {
        fn fnv(bytes: &[u8], mut h: u64) -> u64 {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h
        }
        let g = self.validate()?;
        let mut hashes = vec![0u64; self.nodes.len()];
        let mut last = 0;
        for &i in &g.order {
            let mut inputs: Vec<u64> = g.inputs[i].iter().map(|&j| hashes[j]).collect();
            if matches!(self.nodes[i].op, Op::Add) {
                inputs.sort_unstable();
            }
            let mut h = fnv(self.nodes[i].op.label().as_bytes(), 0xcbf2_9ce4_8422_2325);
            for x in inputs {
                h = fnv(&x.to_le_bytes(), h);
            }
            hashes[i] = h;
            last = i;
        }
        let layout = format!("{}|{:?}", self.input_features, self.input_shape);
        Ok(format!("{:016x}", fnv(layout.as_bytes(), hashes[last])))
    }

    /// A one-line description: the ops in execution order, with skip edges marked.
    pub fn describe(&self) -> String {
        match self.validate() {
            Err(e) => format!("<invalid: {e}>"),
            Ok(g) => g
                .order
                .iter()
                .filter(|&&i| !matches!(self.nodes[i].op, Op::Input))
                .map(|&i| self.nodes[i].op.label())
                .collect::<Vec<_>>()
                .join(" → "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_validates_and_counts_parameters() {
        let spec = ArchitectureSpec::mlp(4, &[8, 6], Activation::Relu, 3);
        let g = spec.validate().unwrap();
        assert_eq!(g.output_width, 3);
        assert_eq!(
            spec.parameter_count().unwrap(),
            (4 * 8 + 8) + (8 * 6 + 6) + (6 * 3 + 3)
        );
        assert_eq!(spec.inference_macs().unwrap(), 4 * 8 + 8 * 6 + 6 * 3);
        assert_eq!(
            spec.describe(),
            "dense(8) → relu → dense(6) → relu → output(3)"
        );
    }

    #[test]
    fn rejects_cycles_width_mismatch_and_dangling_nodes() {
        let mut spec = ArchitectureSpec::mlp(4, &[8], Activation::Relu, 2);
        spec.edges.push(Edge {
            from: NodeId(2),
            to: NodeId(1),
        });
        assert!(spec.validate().unwrap_err().to_string().contains("cycle"));

        let mut spec = ArchitectureSpec::mlp(4, &[8], Activation::Relu, 2);
        // An add of the input (width 4) and the activation (width 8).
        spec.nodes.push(Node {
            id: NodeId(10),
            op: Op::Add,
        });
        spec.edges.retain(|e| e.to != NodeId(3));
        spec.edges.extend([
            Edge {
                from: NodeId(0),
                to: NodeId(10),
            },
            Edge {
                from: NodeId(2),
                to: NodeId(10),
            },
            Edge {
                from: NodeId(10),
                to: NodeId(3),
            },
        ]);
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("equal shape")
        );

        let mut spec = ArchitectureSpec::mlp(4, &[8], Activation::Relu, 2);
        spec.nodes.push(Node {
            id: NodeId(11),
            op: Op::Dense { units: 3 },
        });
        spec.edges.push(Edge {
            from: NodeId(0),
            to: NodeId(11),
        });
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("does not lead")
        );
    }

    #[test]
    fn concat_sums_widths_in_edge_order() {
        let mut spec = ArchitectureSpec::mlp(4, &[8], Activation::Relu, 2);
        spec.nodes.push(Node {
            id: NodeId(10),
            op: Op::Concat,
        });
        spec.edges.retain(|e| e.to != NodeId(3));
        spec.edges.extend([
            Edge {
                from: NodeId(2),
                to: NodeId(10),
            },
            Edge {
                from: NodeId(0),
                to: NodeId(10),
            },
            Edge {
                from: NodeId(10),
                to: NodeId(3),
            },
        ]);
        let g = spec.validate().unwrap();
        let concat = spec.index_of(NodeId(10)).unwrap();
        assert_eq!(g.widths[concat], 12);
        assert_eq!(g.inputs[concat], vec![2, 0]);
        assert_eq!(spec.parameter_count().unwrap(), (4 * 8 + 8) + (12 * 2 + 2));
    }

    #[test]
    fn convolutions_pools_and_flatten_shape_signals_and_images() {
        let signal = ArchitectureSpec::chain(
            40,
            InputShape::Signal {
                channels: 1,
                length: 40,
            },
            vec![
                Op::Conv {
                    filters: 8,
                    kernel: 5,
                    stride: 2,
                },
                Op::Activation {
                    function: Activation::Relu,
                },
                Op::Pool {
                    kind: PoolKind::Max,
                    size: 2,
                    same: false,
                },
                Op::Flatten,
                Op::Output { units: 10 },
            ],
        );
        let g = signal.validate().unwrap();
        let grid = |channels, height, width| Shape::Grid {
            channels,
            height,
            width,
        };
        // (40 + 2·2 − 5) / 2 + 1 = 20 along the signal; the height of 1 is never slid.
        assert_eq!(g.shapes[1], grid(8, 1, 20));
        assert_eq!(g.shapes[3], grid(8, 1, 10));
        assert_eq!(g.shapes[4], Shape::Flat(80));
        assert_eq!(
            signal.parameter_count().unwrap(),
            (8 * 5 + 8) + (80 * 10 + 10)
        );
        assert_eq!(signal.inference_macs().unwrap(), 8 * 20 * 5 + 80 * 10);

        let image = ArchitectureSpec::chain(
            64,
            InputShape::Image {
                channels: 1,
                height: 8,
                width: 8,
            },
            vec![
                Op::Conv {
                    filters: 4,
                    kernel: 3,
                    stride: 1,
                },
                Op::Norm { kind: Norm::Batch },
                Op::GlobalPool {
                    kind: PoolKind::Average,
                },
                Op::Output { units: 3 },
            ],
        );
        let g = image.validate().unwrap();
        assert_eq!(g.shapes[1], grid(4, 8, 8));
        assert_eq!(g.shapes[3], Shape::Flat(4));
        assert_eq!(
            image.parameter_count().unwrap(),
            (4 * 9 + 4) + 2 * 4 + (4 * 3 + 3)
        );
    }

    #[test]
    fn rejects_ops_on_the_wrong_shape() {
        let image = InputShape::Image {
            channels: 1,
            height: 4,
            width: 4,
        };
        let dense_on_grid = ArchitectureSpec::chain(
            16,
            image,
            vec![Op::Dense { units: 3 }, Op::Output { units: 2 }],
        );
        let err = dense_on_grid.validate().unwrap_err().to_string();
        assert!(err.contains("needs a vector"), "{err}");

        let conv_on_vector = ArchitectureSpec::chain(
            16,
            InputShape::Vector,
            vec![
                Op::Conv {
                    filters: 2,
                    kernel: 3,
                    stride: 1,
                },
                Op::Output { units: 2 },
            ],
        );
        let err = conv_on_vector.validate().unwrap_err().to_string();
        assert!(err.contains("needs a grid"), "{err}");

        let oversized_pool = ArchitectureSpec::chain(
            16,
            image,
            vec![
                Op::Pool {
                    kind: PoolKind::Max,
                    size: 5,
                    same: false,
                },
                Op::Flatten,
                Op::Output { units: 2 },
            ],
        );
        let err = oversized_pool.validate().unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");

        let wrong_cover =
            ArchitectureSpec::chain(15, image, vec![Op::Flatten, Op::Output { units: 2 }]);
        assert!(
            wrong_cover
                .validate()
                .unwrap_err()
                .to_string()
                .contains("cover")
        );
    }

    #[test]
    fn canonical_keys_ignore_ids_and_order_but_not_structure() {
        let spec = ArchitectureSpec::mlp(4, &[8], Activation::Relu, 3);
        let mut renumbered = spec.clone();
        for n in &mut renumbered.nodes {
            n.id = NodeId(n.id.0 + 10);
        }
        for e in &mut renumbered.edges {
            e.from = NodeId(e.from.0 + 10);
            e.to = NodeId(e.to.0 + 10);
        }
        renumbered.nodes.reverse();
        renumbered.edges.reverse();
        assert_eq!(
            spec.canonical_key().unwrap(),
            renumbered.canonical_key().unwrap()
        );
        let wider = ArchitectureSpec::mlp(4, &[16], Activation::Relu, 3);
        assert_ne!(
            spec.canonical_key().unwrap(),
            wider.canonical_key().unwrap()
        );
        let tanh = ArchitectureSpec::mlp(4, &[8], Activation::Tanh, 3);
        assert_ne!(spec.canonical_key().unwrap(), tanh.canonical_key().unwrap());
    }

    #[test]
    fn round_trips() {
        let spec = ArchitectureSpec::mlp(4, &[8], Activation::Gelu, 2);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            serde_json::from_str::<ArchitectureSpec>(&json).unwrap(),
            spec
        );
    }
}
