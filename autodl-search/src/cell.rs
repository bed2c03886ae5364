//! Cells in the manner of NAS-Bench-201 (Dong & Yang 2020): a small DAG of four nodes whose six
//! edges (every earlier node to every later one) each choose an operation. Node 0 is the cell's
//! input, node 3 its output, and every other node sums what its incoming edges compute.

use autodl_artifacts::arch::{Activation, NodeId, Norm, Op, PoolKind};
use rand::Rng;
use rand::seq::IndexedRandom;

/// What one edge of a cell computes from its source node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellOp {
    /// No edge.
    None,
    /// The identity.
    Skip,
    /// A 3-wide convolution keeping the channels, batch norm, ReLU.
    Conv,
    /// 3-wide average pooling with stride 1 (the grid keeps its size).
    Pool,
}

impl CellOp {
    /// Every operation, in the order TPE indexes them.
    pub const ALL: [CellOp; 4] = [CellOp::None, CellOp::Skip, CellOp::Conv, CellOp::Pool];

    /// Short name, as in NAS-Bench-201's architecture strings.
    pub fn label(self) -> &'static str {
        match self {
            CellOp::None => "none",
            CellOp::Skip => "skip",
            CellOp::Conv => "conv",
            CellOp::Pool => "pool",
        }
    }

    fn from_label(label: &str) -> Option<CellOp> {
        CellOp::ALL.into_iter().find(|op| op.label() == label)
    }
}

/// A cell: one operation per edge of [`Cell::EDGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Cell {
    /// The operation on each edge, in [`Cell::EDGES`] order.
    pub edges: [CellOp; 6],
}

impl Cell {
    /// `(from, to)` of each edge: 0→1, 0→2, 1→2, 0→3, 1→3, 2→3.
    pub const EDGES: [(usize, usize); 6] = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)];

    /// Every cell, connected or not (4⁶ = 4096), in a fixed order.
    pub fn all() -> impl Iterator<Item = Cell> {
        (0..4usize.pow(6)).map(|mut k| {
            let mut edges = [CellOp::None; 6];
            for e in edges.iter_mut().rev() {
                *e = CellOp::ALL[k % 4];
                k /= 4;
            }
            Cell { edges }
        })
    }

    /// A uniformly drawn connected cell.
    pub fn random(rng: &mut impl Rng) -> Cell {
        loop {
            let mut edges = [CellOp::None; 6];
            for e in &mut edges {
                *e = *CellOp::ALL.choose(rng).expect("four operations");
            }
            let cell = Cell { edges };
            if cell.is_connected() {
                return cell;
            }
        }
    }

    /// Whether the output node is reachable from the input through edges other than `none`.
    pub fn is_connected(&self) -> bool {
        self.live()[3]
    }

    /// Which nodes lie on a path from the input to the output.
    fn live(&self) -> [bool; 4] {
        let mut from_input = [true, false, false, false];
        for (k, &(i, j)) in Self::EDGES.iter().enumerate() {
            if self.edges[k] != CellOp::None && from_input[i] {
                from_input[j] = true;
            }
        }
        let mut to_output = [false, false, false, true];
        for (k, &(i, j)) in Self::EDGES.iter().enumerate().rev() {
            if self.edges[k] != CellOp::None && to_output[j] {
                to_output[i] = true;
            }
        }
        std::array::from_fn(|n| from_input[n] && to_output[n])
    }

    /// The cell made connected: unchanged when it is; otherwise the edge 0→3 becomes a
    /// convolution (how a TPE proposal that cuts the output off is mapped into the space).
    pub fn repaired(mut self) -> Cell {
        if !self.is_connected() {
            self.edges[3] = CellOp::Conv;
        }
        self
    }

    /// NAS-Bench-201's string form, `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.
    pub fn code(&self) -> String {
        let e = |k: usize| self.edges[k].label();
        format!(
            "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|",
            e(0),
            e(1),
            e(2),
            e(3),
            e(4),
            e(5)
        )
    }

    /// Reads [`Cell::code`]'s form.
    pub fn parse(code: &str) -> Option<Cell> {
        let ops: Vec<CellOp> = code
            .split(['|', '+'])
            .filter(|s| !s.is_empty())
            .map(|s| s.split_once('~').and_then(|(op, _)| CellOp::from_label(op)))
            .collect::<Option<_>>()?;
        Some(Cell {
            edges: ops.try_into().ok()?,
        })
    }

    /// Adds the cell's nodes after `input` (a grid of `channels` channels) through `push`, which
    /// appends a node with the given op and inputs and returns its id; returns the cell's
    /// output. Only edges on an input-to-output path are built; a `skip` edge passes its source
    /// on, and a node with several incoming edges sums them. The cell must be connected.
    pub(crate) fn build(
        &self,
        input: NodeId,
        channels: usize,
        push: &mut dyn FnMut(Op, &[NodeId]) -> NodeId,
    ) -> NodeId {
        let live = self.live();
        let mut ids: [Option<NodeId>; 4] = [Some(input), None, None, None];
        for j in 1..4 {
            if !live[j] {
                continue;
            }
            let mut terms = Vec::new();
            for (k, &(i, to)) in Self::EDGES.iter().enumerate() {
                let (true, true, Some(src)) = (to == j, live[i], ids[i]) else {
                    continue;
                };
                match self.edges[k] {
                    CellOp::None => {}
                    CellOp::Skip => terms.push(src),
                    CellOp::Conv => {
                        let conv = Op::Conv {
                            filters: channels,
                            kernel: 3,
                            stride: 1,
                        };
                        let c = push(conv, &[src]);
                        let n = push(Op::Norm { kind: Norm::Batch }, &[c]);
                        let relu = Op::Activation {
                            function: Activation::Relu,
                        };
                        terms.push(push(relu, &[n]));
                    }
                    CellOp::Pool => terms.push(push(
                        Op::Pool {
                            kind: PoolKind::Average,
                            size: 3,
                            same: true,
                        },
                        &[src],
                    )),
                }
            }
            ids[j] = Some(match terms.as_slice() {
                [one] => *one,
                _ => push(Op::Add, &terms),
            });
        }
        ids[3].expect("a connected cell reaches its output")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn enumerates_4096_cells_of_which_3927_are_connected() {
        let cells: Vec<Cell> = Cell::all().collect();
        assert_eq!(cells.len(), 4096);
        assert_eq!(cells.iter().filter(|c| c.is_connected()).count(), 3927);
        let distinct: std::collections::HashSet<Cell> = cells.iter().copied().collect();
        assert_eq!(distinct.len(), 4096);
    }

    #[test]
    fn codes_round_trip_and_repair_connects() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let cell = Cell::random(&mut rng);
            assert!(cell.is_connected());
            assert_eq!(Cell::parse(&cell.code()), Some(cell));
        }
        let cut = Cell::parse("|conv~0|+|skip~0|none~1|+|none~0|none~1|none~2|").unwrap();
        assert!(!cut.is_connected());
        assert_eq!(
            cut.repaired().code(),
            "|conv~0|+|skip~0|none~1|+|conv~0|none~1|none~2|"
        );
        assert_eq!(Cell::parse("|conv~0|+|bogus~0|"), None);
    }
}
