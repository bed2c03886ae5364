//! The search space: genomes of dense blocks, their sampling, mutation and rendering to a DAG.

use autodl_artifacts::SCHEMA_VERSION;
use autodl_artifacts::arch::{Activation, ArchitectureSpec, Edge, Node, NodeId, Norm, Op};
use autodl_artifacts::trial::Hyperparams;
use rand::Rng;
use rand::seq::IndexedRandom;

/// How a block's skip connection merges with the block's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Element-wise addition (only where widths agree; otherwise rendered as concatenation).
    Add,
    /// Concatenation along the feature axis.
    Concat,
}

/// One dense block: dense → [norm] → activation → [dropout], then an optional skip merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Units of the dense layer.
    pub width: usize,
    /// Activation.
    pub activation: Activation,
    /// Normalisation after the dense layer.
    pub norm: Option<Norm>,
    /// Dropout rate after the activation (0 for none).
    pub dropout: f64,
    /// A skip connection from an earlier stage: `(source, merge)`, where source 0 is the input
    /// and source `k` is the output of block `k - 1`; always earlier than this block.
    pub skip: Option<(usize, Skip)>,
}

/// A candidate in genome form.
#[derive(Debug, Clone, PartialEq)]
pub struct Genome {
    /// The blocks, input to output.
    pub blocks: Vec<Block>,
    /// Training hyper-parameters.
    pub hyperparams: Hyperparams,
}

/// The ranges the search draws from.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    /// Width of the input.
    pub input_features: usize,
    /// Number of outputs.
    pub outputs: usize,
    /// At most this many blocks (at least 1).
    pub max_blocks: usize,
    /// Block widths.
    pub widths: Vec<usize>,
    /// Activations.
    pub activations: Vec<Activation>,
    /// Normalisations (`None` for none).
    pub norms: Vec<Option<Norm>>,
    /// Dropout rates.
    pub dropout_rates: Vec<f64>,
    /// Learning rate range, sampled log-uniformly.
    pub learning_rate: (f64, f64),
    /// Batch sizes.
    pub batch_sizes: Vec<usize>,
    /// Weight decay range, sampled log-uniformly.
    pub weight_decay: (f64, f64),
    /// Epoch caps.
    pub max_epochs: Vec<usize>,
    /// Early-stopping patience.
    pub patience: usize,
}

impl SearchSpace {
    /// The default space for `input_features` inputs and `outputs` outputs.
    pub fn for_data(input_features: usize, outputs: usize) -> Self {
        SearchSpace {
            input_features,
            outputs,
            max_blocks: 4,
            widths: vec![32, 64, 128, 256, 512],
            activations: Activation::ALL.to_vec(),
            norms: vec![None, Some(Norm::Layer), Some(Norm::Batch)],
            dropout_rates: vec![0.0, 0.1, 0.2, 0.3],
            learning_rate: (3e-4, 1e-2),
            batch_sizes: vec![32, 64, 128],
            weight_decay: (1e-6, 1e-2),
            max_epochs: vec![30, 60, 100],
            patience: 10,
        }
    }

    fn log_uniform(rng: &mut impl Rng, (lo, hi): (f64, f64)) -> f64 {
        (rng.random_range(lo.ln()..=hi.ln())).exp()
    }

    fn random_block(&self, rng: &mut impl Rng, position: usize) -> Block {
        Block {
            width: *self.widths.choose(rng).unwrap(),
            activation: *self.activations.choose(rng).unwrap(),
            norm: *self.norms.choose(rng).unwrap(),
            dropout: *self.dropout_rates.choose(rng).unwrap(),
            skip: self.random_skip(rng, position),
        }
    }

    fn random_skip(&self, rng: &mut impl Rng, position: usize) -> Option<(usize, Skip)> {
        // A skip from the block's own input is no skip; sources run from 0 to position - 1.
        (position > 0 && rng.random_bool(0.4)).then(|| {
            let merge = if rng.random_bool(0.5) {
                Skip::Add
            } else {
                Skip::Concat
            };
            (rng.random_range(0..position), merge)
        })
    }

    /// Draws a genome uniformly from the space.
    pub fn sample(&self, rng: &mut impl Rng) -> Genome {
        let n = rng.random_range(1..=self.max_blocks.max(1));
        Genome {
            blocks: (0..n).map(|i| self.random_block(rng, i)).collect(),
            hyperparams: Hyperparams {
                learning_rate: Self::log_uniform(rng, self.learning_rate),
                batch_size: *self.batch_sizes.choose(rng).unwrap(),
                weight_decay: Self::log_uniform(rng, self.weight_decay),
                max_epochs: *self.max_epochs.choose(rng).unwrap(),
                patience: self.patience,
            },
        }
    }

    /// Returns a mutated copy of `parent` and a description of the change. Every mutation
    /// changes the genome (a redraw that lands on the same value is retried).
    pub fn mutate(&self, parent: &Genome, rng: &mut impl Rng) -> (Genome, String) {
        for _ in 0..32 {
            let (child, what) = self.mutate_once(parent, rng);
            if child != *parent {
                return (child, what);
            }
        }
        // The space is degenerate (every choice has one value); resample instead.
        (self.sample(rng), "resampled".into())
    }

    fn mutate_once(&self, parent: &Genome, rng: &mut impl Rng) -> (Genome, String) {
        let mut g = parent.clone();
        let n = g.blocks.len();
        let b = rng.random_range(0..n);
        let what = match rng.random_range(0..11) {
            0 => {
                g.blocks[b].width = *self.widths.choose(rng).unwrap();
                format!("block {b} width → {}", g.blocks[b].width)
            }
            1 => {
                g.blocks[b].activation = *self.activations.choose(rng).unwrap();
                format!("block {b} activation → {:?}", g.blocks[b].activation)
            }
            2 => {
                g.blocks[b].norm = *self.norms.choose(rng).unwrap();
                format!("block {b} norm → {:?}", g.blocks[b].norm)
            }
            3 => {
                g.blocks[b].dropout = *self.dropout_rates.choose(rng).unwrap();
                format!("block {b} dropout → {}", g.blocks[b].dropout)
            }
            4 => {
                g.blocks[b].skip = self.random_skip(rng, b);
                format!("block {b} skip → {:?}", g.blocks[b].skip)
            }
            5 if n < self.max_blocks => {
                let at = rng.random_range(0..=n);
                let mut block = self.random_block(rng, at);
                block.skip = None;
                // Sources after the insertion point move one along.
                for later in &mut g.blocks[at..] {
                    if let Some((src, _)) = &mut later.skip
                        && *src > at
                    {
                        *src += 1;
                    }
                }
                g.blocks.insert(at, block);
                format!("insert block at {at}")
            }
            6 if n > 1 => {
                g.blocks.remove(b);
                for later in &mut g.blocks[b..] {
                    if let Some((src, _)) = &mut later.skip
                        && *src > b
                    {
                        // A skip from the removed block now starts at the removed block's input.
                        *src -= 1;
                    }
                }
                // A skip whose source became the block's own input is no longer a skip.
                for (i, block) in g.blocks.iter_mut().enumerate() {
                    if block.skip.is_some_and(|(src, _)| src >= i) {
                        block.skip = None;
                    }
                }
                format!("remove block {b}")
            }
            7 => {
                let h = &mut g.hyperparams;
                let factor = (rng.random_range(-1.0f64..1.0)).exp();
                h.learning_rate =
                    (h.learning_rate * factor).clamp(self.learning_rate.0, self.learning_rate.1);
                format!("learning rate → {:.2e}", h.learning_rate)
            }
            8 => {
                g.hyperparams.batch_size = *self.batch_sizes.choose(rng).unwrap();
                format!("batch size → {}", g.hyperparams.batch_size)
            }
            9 => {
                let h = &mut g.hyperparams;
                h.weight_decay = Self::log_uniform(rng, self.weight_decay);
                format!("weight decay → {:.2e}", h.weight_decay)
            }
            _ => {
                g.hyperparams.max_epochs = *self.max_epochs.choose(rng).unwrap();
                format!("max epochs → {}", g.hyperparams.max_epochs)
            }
        };
        (g, what)
    }

    /// Renders a genome to an architecture: input, the blocks, the output layer.
    pub fn render(&self, genome: &Genome) -> ArchitectureSpec {
        let mut nodes = vec![Node {
            id: NodeId(0),
            op: Op::Input,
        }];
        let mut edges = Vec::new();
        // (node id, width) of the input and of each block's output.
        let mut stages: Vec<(NodeId, usize)> = vec![(NodeId(0), self.input_features)];
        let push = |nodes: &mut Vec<Node>, edges: &mut Vec<Edge>, op: Op, from: &[NodeId]| {
            let id = NodeId(nodes.len() as u32);
            nodes.push(Node { id, op });
            edges.extend(from.iter().map(|&f| Edge { from: f, to: id }));
            id
        };
        for block in &genome.blocks {
            let (mut cur, _) = *stages.last().unwrap();
            cur = push(
                &mut nodes,
                &mut edges,
                Op::Dense { units: block.width },
                &[cur],
            );
            if let Some(kind) = block.norm {
                cur = push(&mut nodes, &mut edges, Op::Norm { kind }, &[cur]);
            }
            cur = push(
                &mut nodes,
                &mut edges,
                Op::Activation {
                    function: block.activation,
                },
                &[cur],
            );
            if block.dropout > 0.0 {
                cur = push(
                    &mut nodes,
                    &mut edges,
                    Op::Dropout {
                        rate: block.dropout,
                    },
                    &[cur],
                );
            }
            let mut width = block.width;
            if let Some((src, merge)) = block.skip {
                let (src_id, src_width) = stages[src];
                let op = if merge == Skip::Add && src_width == width {
                    Op::Add
                } else {
                    width += src_width;
                    Op::Concat
                };
                cur = push(&mut nodes, &mut edges, op, &[cur, src_id]);
            }
            stages.push((cur, width));
        }
        let (last, _) = *stages.last().unwrap();
        push(
            &mut nodes,
            &mut edges,
            Op::Output {
                units: self.outputs,
            },
            &[last],
        );
        ArchitectureSpec {
            schema_version: SCHEMA_VERSION,
            input_features: self.input_features,
            nodes,
            edges,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_dag;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Sampled and repeatedly mutated genomes always render to valid DAGs whose output has
        /// the right width.
        #[test]
        fn sampled_and_mutated_genomes_render_valid_dags(seed in any::<u64>(), inputs in 1usize..50, outputs in 1usize..12) {
            let space = SearchSpace::for_data(inputs, outputs);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut g = space.sample(&mut rng);
            for _ in 0..20 {
                let spec = space.render(&g);
                prop_assert!(check_dag(&spec).is_ok(), "{:?}", check_dag(&spec));
                prop_assert_eq!(spec.validate().unwrap().output_width, outputs);
                prop_assert!(g.blocks.len() <= space.max_blocks && !g.blocks.is_empty());
                let (child, _) = space.mutate(&g, &mut rng);
                prop_assert_ne!(&child, &g);
                g = child;
            }
        }
    }

    #[test]
    fn skips_render_as_add_or_concat() {
        let space = SearchSpace::for_data(8, 2);
        let block = |width, skip| Block {
            width,
            activation: Activation::Relu,
            norm: None,
            dropout: 0.0,
            skip,
        };
        let g = Genome {
            blocks: vec![
                block(8, Some((0, Skip::Add))),
                block(16, Some((1, Skip::Add))),
            ],
            hyperparams: space.sample(&mut ChaCha8Rng::seed_from_u64(0)).hyperparams,
        };
        let spec = space.render(&g);
        let ops: Vec<String> = spec.nodes.iter().map(|n| n.op.label()).collect();
        // Block 0 (width 8) adds the input (width 8); block 1 (16) concatenates block 0's 8.
        assert!(
            ops.contains(&"add".to_string()) && ops.contains(&"concat".to_string()),
            "{ops:?}"
        );
        assert_eq!(spec.validate().unwrap().widths[spec.nodes.len() - 2], 24);
    }
}
