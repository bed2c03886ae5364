//! `ArchitectureSpec`: the network as our own DAG of typed nodes.
//!
//! One spec, three readers: search converts it to a petgraph graph for its algorithms, train
//! builds a burn module from it, deploy writes ONNX from it. [`ArchitectureSpec::validate`] is
//! the contract all three rely on: exactly one input and one output, no cycles, every node on a
//! path from input to output, the right number of inputs per op, and agreeing widths.

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
    /// Element-wise sum of two or more inputs of equal width.
    Add,
    /// Concatenation of two or more inputs along the feature axis, in edge order.
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
    /// Width of the input feature vector.
    pub input_features: usize,
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
    /// For each node index, the width of its output.
    pub widths: Vec<usize>,
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
        let mut nodes = vec![Node {
            id: NodeId(0),
            op: Op::Input,
        }];
        for &units in hidden {
            nodes.push(Node {
                id: NodeId(nodes.len() as u32),
                op: Op::Dense { units },
            });
            nodes.push(Node {
                id: NodeId(nodes.len() as u32),
                op: Op::Activation {
                    function: activation,
                },
            });
        }
        nodes.push(Node {
            id: NodeId(nodes.len() as u32),
            op: Op::Output { units: outputs },
        });
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

        let mut widths = vec![0usize; n];
        for &i in &order {
            let node = &self.nodes[i];
            let ins: Vec<usize> = inputs[i].iter().map(|&j| widths[j]).collect();
            let single = || -> Result<usize> {
                match ins.as_slice() {
                    [w] => Ok(*w),
                    _ => Err(bad(format!(
                        "node {} ({}) takes exactly one input, has {}",
                        node.id,
                        node.op.label(),
                        ins.len()
                    ))),
                }
            };
            widths[i] = match &node.op {
                Op::Input => self.input_features,
                Op::Dense { units } | Op::Output { units } => {
                    single()?;
                    if *units == 0 {
                        return Err(bad(format!("node {} has zero units", node.id)));
                    }
                    *units
                }
                Op::Activation { .. } | Op::Norm { .. } => single()?,
                Op::Dropout { rate } => {
                    if !(0.0..1.0).contains(rate) {
                        return Err(bad(format!(
                            "node {} has dropout rate {rate}, outside [0, 1)",
                            node.id
                        )));
                    }
                    single()?
                }
                Op::Add => {
                    if ins.len() < 2 || ins.iter().any(|&w| w != ins[0]) {
                        return Err(bad(format!(
                            "add node {} needs two or more inputs of equal width, has {:?}",
                            node.id, ins
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
                    ins.iter().sum()
                }
            };
        }
        Ok(ValidatedGraph {
            output_width: widths[output],
            order,
            inputs,
            widths,
            input,
            output,
        })
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
                    Op::Norm { .. } => 2 * g.widths[i],
                    _ => 0,
                }
            })
            .sum())
    }

    /// Multiply–accumulate operations for one sample at inference (dense layers only).
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
                _ => 0,
            })
            .sum())
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
                .contains("equal width")
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
    fn round_trips() {
        let spec = ArchitectureSpec::mlp(4, &[8], Activation::Gelu, 2);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            serde_json::from_str::<ArchitectureSpec>(&json).unwrap(),
            spec
        );
    }
}
