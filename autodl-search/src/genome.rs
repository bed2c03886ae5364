//! The search space: genomes of convolutional blocks, stacked cells and dense blocks plus
//! training options, their sampling, mutation and rendering to a DAG.

use autodl_artifacts::SCHEMA_VERSION;
use autodl_artifacts::arch::{
    Activation, ArchitectureSpec, Edge, InputShape, Node, NodeId, Norm, Op, PoolKind, Shape,
    window_output,
};
use autodl_artifacts::trial::{Hyperparams, LrSchedule, Optimizer, RegressionLoss};
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::cell::{Cell, CellOp};

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
    /// A skip connection from an earlier stage: `(source, merge)`, where source 0 is the first
    /// dense block's input and source `k` is the output of block `k - 1`; always earlier than
    /// this block.
    pub skip: Option<(usize, Skip)>,
}

/// One convolutional block: conv → [batch norm] → activation → [residual add of the block's
/// input, where shapes agree] → [2× pooling].
#[derive(Debug, Clone, PartialEq)]
pub struct ConvBlock {
    /// Output channels.
    pub filters: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Stride (1 or 2).
    pub stride: usize,
    /// Activation.
    pub activation: Activation,
    /// Batch normalisation after the convolution.
    pub batch_norm: bool,
    /// Add the block's input to its output when the shapes agree (stride 1, same channels).
    pub residual: bool,
    /// Pooling with window 2 after the block (skipped where the grid is too small).
    pub pool: Option<PoolKind>,
}

/// How the convolutional part hands over to the dense part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// Keep every position: flatten channel-major.
    Flatten,
    /// One value per channel.
    Global(PoolKind),
}

/// A candidate in genome form.
#[derive(Debug, Clone, PartialEq)]
pub struct Genome {
    /// Convolutional blocks (empty for vector inputs).
    pub convs: Vec<ConvBlock>,
    /// A cell stacked [`SearchSpace::cells_per_stage`] times after every convolutional block
    /// (the NAS-Bench-201 pattern: the blocks set channels and resolution, the cells compute);
    /// always connected.
    pub cell: Option<Cell>,
    /// How the last grid becomes a vector (ignored without convolutional blocks, where a
    /// spatial input is flattened).
    pub reduce: Reduce,
    /// Dense blocks after the convolutional part (at least one when there is none).
    pub blocks: Vec<Block>,
    /// Training hyper-parameters.
    pub hyperparams: Hyperparams,
}

/// The ranges the search draws from.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    /// Width of the input.
    pub input_features: usize,
    /// Layout of the input; convolutional blocks are proposed only for signals and images.
    pub input_shape: InputShape,
    /// Number of outputs (1 means regression).
    pub outputs: usize,
    /// At most this many dense blocks.
    pub max_blocks: usize,
    /// At most this many convolutional blocks (0 for vector inputs).
    pub max_conv_blocks: usize,
    /// Whether genomes with convolutional blocks may carry a cell.
    pub offer_cells: bool,
    /// How many copies of the cell follow each convolutional block.
    pub cells_per_stage: usize,
    /// When set, only the cell is searched: every candidate is this genome with a connected
    /// cell of its own (the space of the NAS table, `cargo xtask bench nas-table`).
    pub only_cells: Option<Box<Genome>>,
    /// Block widths.
    pub widths: Vec<usize>,
    /// Convolution filter counts.
    pub filters: Vec<usize>,
    /// Convolution kernel sizes.
    pub kernels: Vec<usize>,
    /// Convolution strides.
    pub strides: Vec<usize>,
    /// Activations.
    pub activations: Vec<Activation>,
    /// Normalisations (`None` for none).
    pub norms: Vec<Option<Norm>>,
    /// Dropout rates.
    pub dropout_rates: Vec<f64>,
    /// Learning rate range for Adam and AdamW, sampled log-uniformly.
    pub learning_rate: (f64, f64),
    /// Learning rate range for SGD with momentum, sampled log-uniformly.
    pub sgd_learning_rate: (f64, f64),
    /// Optimisers.
    pub optimizers: Vec<Optimizer>,
    /// Learning-rate schedules.
    pub schedules: Vec<LrSchedule>,
    /// Warm-up epochs.
    pub warmup_epochs: Vec<usize>,
    /// Gradient-clipping norms (`None` for none).
    pub grad_clip_norms: Vec<Option<f64>>,
    /// Label smoothing values (classification).
    pub label_smoothing: Vec<f64>,
    /// Whether classes are weighted (offer `true` for imbalanced targets).
    pub balanced_class_weights: Vec<bool>,
    /// Regression losses.
    pub regression_losses: Vec<RegressionLoss>,
    /// Shift-augmentation ranges (signals and images only).
    pub augment_shifts: Vec<usize>,
    /// Gaussian-noise augmentation levels (vector inputs only).
    pub augment_noises: Vec<f64>,
    /// Mixup α values (vector inputs only; 0 is off).
    pub mixup_alphas: Vec<f64>,
    /// Rotation-augmentation ranges in degrees (images only).
    pub augment_rotations: Vec<f64>,
    /// Batch sizes.
    pub batch_sizes: Vec<usize>,
    /// Weight decay range, sampled log-uniformly.
    pub weight_decay: (f64, f64),
    /// Epoch caps.
    pub max_epochs: Vec<usize>,
    /// Early-stopping patience, where early stopping is on.
    pub patience: usize,
    /// Whether early stopping is on: `false` trains the whole schedule (a decaying schedule's
    /// last epochs, at small learning rates, are often its best, after more than `patience`
    /// epochs without improvement).
    pub early_stopping: Vec<bool>,
}

impl SearchSpace {
    /// The default space for `input_features` vector inputs and `outputs` outputs.
    pub fn for_data(input_features: usize, outputs: usize) -> Self {
        Self::for_input(input_features, InputShape::Vector, outputs)
    }

    /// The default space for inputs laid out as `input_shape`: convolutional blocks (kernels up
    /// to 7 on signals, 3 or 5 on images) are proposed for signals and images.
    pub fn for_input(input_features: usize, input_shape: InputShape, outputs: usize) -> Self {
        let regression = outputs == 1;
        let spatial = input_shape.is_spatial();
        SearchSpace {
            input_features,
            input_shape,
            outputs,
            max_blocks: 4,
            max_conv_blocks: if spatial { 4 } else { 0 },
            offer_cells: spatial,
            cells_per_stage: 1,
            only_cells: None,
            widths: vec![32, 64, 128, 256, 512],
            filters: vec![16, 32, 64],
            kernels: match input_shape {
                InputShape::Signal { .. } => vec![3, 5, 7],
                _ => vec![3, 5],
            },
            strides: vec![1, 2],
            activations: Activation::ALL.to_vec(),
            norms: vec![None, Some(Norm::Layer), Some(Norm::Batch)],
            dropout_rates: vec![0.0, 0.1, 0.2, 0.3],
            learning_rate: (3e-4, 1e-2),
            sgd_learning_rate: (3e-3, 1e-1),
            optimizers: vec![
                Optimizer::AdamW,
                Optimizer::Adam,
                Optimizer::Sgd {
                    momentum: 0.9,
                    nesterov: true,
                },
            ],
            schedules: vec![
                LrSchedule::Constant,
                LrSchedule::Cosine,
                LrSchedule::OneCycle,
            ],
            warmup_epochs: vec![0, 3],
            grad_clip_norms: vec![None, Some(1.0)],
            label_smoothing: if regression {
                vec![0.0]
            } else {
                vec![0.0, 0.1]
            },
            balanced_class_weights: vec![false],
            regression_losses: if regression {
                vec![RegressionLoss::Mse, RegressionLoss::Huber { delta: 1.0 }]
            } else {
                vec![RegressionLoss::Mse]
            },
            augment_shifts: match input_shape {
                InputShape::Vector => vec![0],
                InputShape::Signal { length, .. } => {
                    vec![0, (length / 16).max(1), (length / 8).max(1)]
                }
                InputShape::Image { .. } => vec![0, 1],
            },
            augment_noises: match input_shape {
                InputShape::Vector => vec![0.0, 0.05, 0.1],
                _ => vec![0.0],
            },
            mixup_alphas: match input_shape {
                InputShape::Vector => vec![0.0, 0.2],
                _ => vec![0.0],
            },
            augment_rotations: match input_shape {
                InputShape::Image { .. } => vec![0.0, 10.0],
                _ => vec![0.0],
            },
            batch_sizes: vec![32, 64, 128],
            weight_decay: (1e-6, 1e-2),
            max_epochs: vec![30, 60, 100],
            patience: 10,
            early_stopping: vec![true, false],
        }
    }

    fn log_uniform(rng: &mut impl Rng, (lo, hi): (f64, f64)) -> f64 {
        (rng.random_range(lo.ln()..=hi.ln())).exp()
    }

    fn pick<T: Clone>(rng: &mut impl Rng, options: &[T]) -> T {
        options
            .choose(rng)
            .expect("every option list is non-empty")
            .clone()
    }

    fn random_block(&self, rng: &mut impl Rng, position: usize) -> Block {
        Block {
            width: Self::pick(rng, &self.widths),
            activation: Self::pick(rng, &self.activations),
            norm: Self::pick(rng, &self.norms),
            dropout: Self::pick(rng, &self.dropout_rates),
            skip: self.random_skip(rng, position),
        }
    }

    fn random_conv(&self, rng: &mut impl Rng) -> ConvBlock {
        ConvBlock {
            filters: Self::pick(rng, &self.filters),
            kernel: Self::pick(rng, &self.kernels),
            stride: Self::pick(rng, &self.strides),
            activation: Self::pick(rng, &self.activations),
            batch_norm: rng.random_bool(0.5),
            residual: rng.random_bool(0.5),
            pool: Self::pick(rng, &[None, Some(PoolKind::Max), Some(PoolKind::Average)]),
        }
    }

    fn random_reduce(rng: &mut impl Rng) -> Reduce {
        Self::pick(
            rng,
            &[
                Reduce::Flatten,
                Reduce::Global(PoolKind::Average),
                Reduce::Global(PoolKind::Max),
            ],
        )
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

    /// A learning rate suited to `optimizer`.
    fn random_learning_rate(&self, rng: &mut impl Rng, optimizer: Optimizer) -> f64 {
        match optimizer {
            Optimizer::Sgd { .. } => Self::log_uniform(rng, self.sgd_learning_rate),
            _ => Self::log_uniform(rng, self.learning_rate),
        }
    }

    fn learning_rate_range(&self, optimizer: Optimizer) -> (f64, f64) {
        match optimizer {
            Optimizer::Sgd { .. } => self.sgd_learning_rate,
            _ => self.learning_rate,
        }
    }

    /// The patience that turns early stopping on or off for `max_epochs` epochs.
    pub(crate) fn patience_for(&self, early_stopping: bool, max_epochs: usize) -> usize {
        if early_stopping {
            self.patience
        } else {
            max_epochs
        }
    }

    fn random_hyperparams(&self, rng: &mut impl Rng) -> Hyperparams {
        let optimizer = Self::pick(rng, &self.optimizers);
        let max_epochs = Self::pick(rng, &self.max_epochs);
        Hyperparams {
            learning_rate: self.random_learning_rate(rng, optimizer),
            batch_size: Self::pick(rng, &self.batch_sizes),
            weight_decay: Self::log_uniform(rng, self.weight_decay),
            max_epochs,
            patience: self.patience_for(Self::pick(rng, &self.early_stopping), max_epochs),
            optimizer,
            schedule: Self::pick(rng, &self.schedules),
            warmup_epochs: Self::pick(rng, &self.warmup_epochs),
            grad_clip_norm: Self::pick(rng, &self.grad_clip_norms),
            label_smoothing: Self::pick(rng, &self.label_smoothing),
            balanced_class_weights: Self::pick(rng, &self.balanced_class_weights),
            regression_loss: Self::pick(rng, &self.regression_losses),
            augment_shift: Self::pick(rng, &self.augment_shifts),
            augment_noise: Self::pick(rng, &self.augment_noises),
            mixup_alpha: Self::pick(rng, &self.mixup_alphas),
            augment_rotate: Self::pick(rng, &self.augment_rotations),
        }
    }

    /// The cell space of the NAS table (`cargo xtask bench nas-table`), after NAS-Bench-201's
    /// macro skeleton scaled down: a stem of 3-wide convolution to `channels` with batch norm
    /// and ReLU, a cell, a 3-wide convolution to twice the channels with batch norm, ReLU and 2×
    /// max pooling, a cell, global average pooling, the output layer. Trained with AdamW at 3e-3
    /// on a cosine schedule, batch 32, weight decay 1e-4, for exactly `epochs` epochs (no early
    /// stopping). Only the cell varies: 3,927 connected cells.
    pub fn cell_benchmark(
        input_features: usize,
        input_shape: InputShape,
        outputs: usize,
        channels: usize,
        epochs: usize,
    ) -> Self {
        let block = |filters, pool| ConvBlock {
            filters,
            kernel: 3,
            stride: 1,
            activation: Activation::Relu,
            batch_norm: true,
            residual: false,
            pool,
        };
        let skeleton = Genome {
            convs: vec![
                block(channels, None),
                block(2 * channels, Some(PoolKind::Max)),
            ],
            cell: Some(Cell {
                edges: [CellOp::Conv; 6],
            }),
            reduce: Reduce::Global(PoolKind::Average),
            blocks: Vec::new(),
            hyperparams: Hyperparams {
                learning_rate: 3e-3,
                batch_size: 32,
                weight_decay: 1e-4,
                max_epochs: epochs,
                patience: epochs,
                schedule: LrSchedule::Cosine,
                ..Hyperparams::default()
            },
        };
        Self::for_input(input_features, input_shape, outputs).cells_of(skeleton)
    }

    /// A space that searches only the cell of `skeleton` (its other choices stay fixed).
    pub fn cells_of(mut self, skeleton: Genome) -> Self {
        self.offer_cells = true;
        self.max_conv_blocks = self.max_conv_blocks.max(skeleton.convs.len());
        self.only_cells = Some(Box::new(skeleton));
        self
    }

    /// Draws a genome uniformly from the space. Spatial inputs get one or more convolutional
    /// blocks, a cell half of the time (where offered) and zero to two dense blocks; vector
    /// inputs one or more dense blocks.
    pub fn sample(&self, rng: &mut impl Rng) -> Genome {
        if let Some(skeleton) = &self.only_cells {
            return Genome {
                cell: Some(Cell::random(rng)),
                ..(**skeleton).clone()
            };
        }
        let n_conv = if self.max_conv_blocks > 0 {
            rng.random_range(1..=self.max_conv_blocks)
        } else {
            0
        };
        let n_dense = if n_conv > 0 {
            rng.random_range(0..=self.max_blocks.min(2))
        } else {
            rng.random_range(1..=self.max_blocks.max(1))
        };
        let cell =
            (n_conv > 0 && self.offer_cells && rng.random_bool(0.5)).then(|| Cell::random(rng));
        Genome {
            convs: (0..n_conv).map(|_| self.random_conv(rng)).collect(),
            cell,
            // Without convolutions the reduction is unused: one canonical value.
            reduce: if n_conv > 0 {
                Self::random_reduce(rng)
            } else {
                Reduce::Flatten
            },
            blocks: (0..n_dense).map(|i| self.random_block(rng, i)).collect(),
            hyperparams: self.random_hyperparams(rng),
        }
    }

    /// Conventional starting points, evaluated before random samples. For spatial inputs (where
    /// the space's samples are all convolutional): three ReLU convolution blocks of 32, 64 and 64
    /// filters (the first two with batch norm and 2× max pooling where the grid allows) with
    /// global average pooling, a dense layer of 128 and the largest shift augmentation; for
    /// vectors, [`SearchSpace::default_mlp`]. Both use AdamW at 3e-3 with a 60-epoch cosine
    /// schedule, batch 64, trained to the schedule's end where the space offers early stopping
    /// off (the conventional recipe; with patience 10 on 269 validation rows the default CNN
    /// stopped after 24–35 epochs, at a mean test accuracy of 0.984 on digits against 0.991
    /// when trained to the end, seeds 1–3). A space that searches only cells has no defaults.
    ///
    /// Spatial inputs get no MLP default: on MNIST-1D it reached 0.66–0.68 validation accuracy
    /// (against the CNN's 0.98) in 6–8 s of a 120 s budget, and on digits, where it tied the CNN
    /// on 269 validation rows, regularized evolution spent mutations on it (20 of them in one
    /// run); ARCHITECTURE.md has the runs.
    pub fn defaults(&self) -> Vec<Genome> {
        if self.only_cells.is_some() {
            return Vec::new();
        }
        let mlp = self.default_mlp();
        if self.max_conv_blocks < 3 {
            return vec![mlp];
        }
        let hyperparams = Hyperparams {
            augment_shift: self.augment_shifts.iter().copied().max().unwrap_or(0),
            ..mlp.hyperparams
        };
        let conv = |filters, pool| ConvBlock {
            filters,
            kernel: *self
                .kernels
                .iter()
                .find(|&&k| k >= 5)
                .unwrap_or(&self.kernels[0]),
            stride: 1,
            activation: Activation::Relu,
            batch_norm: true,
            residual: false,
            pool,
        };
        vec![Genome {
            convs: vec![
                conv(32, Some(PoolKind::Max)),
                conv(64, Some(PoolKind::Max)),
                conv(64, None),
            ],
            cell: None,
            reduce: Reduce::Global(PoolKind::Average),
            blocks: vec![Self::default_dense(128)],
            hyperparams,
        }]
    }

    /// The conventional MLP: two ReLU layers of 256 and 128 with dropout 0.1, AdamW at 3e-3
    /// with a 60-epoch cosine schedule, batch 64, weight decay 1e-4, trained to the end where
    /// the space offers early stopping off. The default for vectors; TPE decodes onto it.
    pub fn default_mlp(&self) -> Genome {
        Genome {
            convs: Vec::new(),
            cell: None,
            reduce: Reduce::Flatten,
            blocks: vec![Self::default_dense(256), Self::default_dense(128)],
            hyperparams: Hyperparams {
                learning_rate: 3e-3,
                batch_size: 64,
                weight_decay: 1e-4,
                max_epochs: 60,
                // Early stopping off unless the space only offers it on.
                patience: self.patience_for(!self.early_stopping.contains(&false), 60),
                schedule: LrSchedule::Cosine,
                ..Hyperparams::default()
            },
        }
    }

    /// The defaults' dense layer: `width` ReLU units, no normalisation, dropout 0.1, no skip.
    pub(crate) fn default_dense(width: usize) -> Block {
        Block {
            width,
            activation: Activation::Relu,
            norm: None,
            dropout: 0.1,
            skip: None,
        }
    }

    /// Returns a mutated copy of `parent` and a description of the change. Every mutation
    /// changes the genome (a redraw that lands on the same value is retried).
    pub fn mutate(&self, parent: &Genome, rng: &mut impl Rng) -> (Genome, String) {
        for _ in 0..32 {
            let (child, what) = self.mutate_once(parent, rng);
            if child != *parent && self.is_well_formed(&child) {
                return (child, what);
            }
        }
        // The space is degenerate (every choice has one value); resample instead.
        (self.sample(rng), "resampled".into())
    }

    /// The structural rules a genome keeps: block counts within bounds, something to train, a
    /// connected cell only where there are convolutional blocks (and only the cell differing
    /// from the skeleton in a cells-only space).
    pub fn is_well_formed(&self, g: &Genome) -> bool {
        if let Some(skeleton) = &self.only_cells {
            let same_rest = Genome {
                cell: skeleton.cell,
                ..g.clone()
            } == **skeleton;
            return same_rest && g.cell.is_some_and(|c| c.is_connected());
        }
        g.cell
            .is_none_or(|c| c.is_connected() && !g.convs.is_empty() && self.offer_cells)
            && g.convs.len() <= self.max_conv_blocks
            && g.blocks.len() <= self.max_blocks
            && !(g.convs.is_empty() && g.blocks.is_empty())
            && g.blocks
                .iter()
                .enumerate()
                .all(|(i, b)| b.skip.is_none_or(|(src, _)| src < i))
    }

    fn mutate_once(&self, parent: &Genome, rng: &mut impl Rng) -> (Genome, String) {
        let mut g = parent.clone();
        if self.only_cells.is_some() {
            let what = Self::mutate_cell_edge(&mut g, rng);
            return (g, what);
        }
        let n = g.blocks.len();
        let c = g.convs.len();
        let kind = if self.max_conv_blocks > 0 && rng.random_bool(0.4) {
            "conv"
        } else if rng.random_bool(0.5) {
            "dense"
        } else {
            "train"
        };
        match kind {
            "conv" => self.mutate_conv(&mut g, c, rng),
            "dense" => self.mutate_dense(&mut g, n, rng),
            _ => self.mutate_training(&mut g, rng),
        }
        .map(|what| (g, what))
        .unwrap_or_else(|| (parent.clone(), String::new()))
    }

    /// Changes one edge of the cell to another operation (adding the edge when it was `none`,
    /// removing it when it becomes `none`); an empty description (and no change) for a genome
    /// without a cell.
    fn mutate_cell_edge(g: &mut Genome, rng: &mut impl Rng) -> String {
        let Some(cell) = g.cell.as_mut() else {
            return String::new();
        };
        let e = rng.random_range(0..6);
        let before = cell.edges[e];
        let others: Vec<CellOp> = CellOp::ALL.into_iter().filter(|&o| o != before).collect();
        cell.edges[e] = *others.choose(rng).expect("three other operations");
        let (from, to) = Cell::EDGES[e];
        format!(
            "cell edge {from}→{to}: {} → {}",
            before.label(),
            cell.edges[e].label()
        )
    }

    fn mutate_conv(&self, g: &mut Genome, c: usize, rng: &mut impl Rng) -> Option<String> {
        let b = rng.random_range(0..c.max(1));
        Some(match rng.random_range(0..11) {
            9 if c > 0 && g.cell.is_some() => Self::mutate_cell_edge(g, rng),
            10 if c > 0 && self.offer_cells => {
                g.cell = match g.cell {
                    Some(_) => None,
                    None => Some(Cell::random(rng)),
                };
                match g.cell {
                    Some(cell) => format!("add cell {}", cell.code()),
                    None => "remove the cell".into(),
                }
            }
            0 if c < self.max_conv_blocks => {
                let at = rng.random_range(0..=c);
                g.convs.insert(at, self.random_conv(rng));
                format!("insert conv block at {at}")
            }
            1 if c > 0 => {
                g.convs.remove(b);
                format!("remove conv block {b}")
            }
            2 if c > 0 => {
                g.convs[b].filters = Self::pick(rng, &self.filters);
                format!("conv {b} filters → {}", g.convs[b].filters)
            }
            3 if c > 0 => {
                g.convs[b].kernel = Self::pick(rng, &self.kernels);
                format!("conv {b} kernel → {}", g.convs[b].kernel)
            }
            4 if c > 0 => {
                g.convs[b].stride = Self::pick(rng, &self.strides);
                format!("conv {b} stride → {}", g.convs[b].stride)
            }
            5 if c > 0 => {
                g.convs[b].pool =
                    Self::pick(rng, &[None, Some(PoolKind::Max), Some(PoolKind::Average)]);
                format!("conv {b} pool → {:?}", g.convs[b].pool)
            }
            6 if c > 0 => {
                g.convs[b].batch_norm = !g.convs[b].batch_norm;
                g.convs[b].residual = rng.random_bool(0.5);
                format!(
                    "conv {b} batch norm → {}, residual → {}",
                    g.convs[b].batch_norm, g.convs[b].residual
                )
            }
            7 if c > 0 => {
                g.convs[b].activation = Self::pick(rng, &self.activations);
                format!("conv {b} activation → {:?}", g.convs[b].activation)
            }
            _ => {
                g.reduce = Self::random_reduce(rng);
                format!("reduce → {:?}", g.reduce)
            }
        })
    }

    fn mutate_dense(&self, g: &mut Genome, n: usize, rng: &mut impl Rng) -> Option<String> {
        let b = rng.random_range(0..n.max(1));
        Some(match rng.random_range(0..7) {
            0 if n > 0 => {
                g.blocks[b].width = Self::pick(rng, &self.widths);
                format!("block {b} width → {}", g.blocks[b].width)
            }
            1 if n > 0 => {
                g.blocks[b].activation = Self::pick(rng, &self.activations);
                format!("block {b} activation → {:?}", g.blocks[b].activation)
            }
            2 if n > 0 => {
                g.blocks[b].norm = Self::pick(rng, &self.norms);
                format!("block {b} norm → {:?}", g.blocks[b].norm)
            }
            3 if n > 0 => {
                g.blocks[b].dropout = Self::pick(rng, &self.dropout_rates);
                format!("block {b} dropout → {}", g.blocks[b].dropout)
            }
            4 if n > 0 => {
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
            6 if n > 0 => {
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
            _ => return None,
        })
    }

    fn mutate_training(&self, g: &mut Genome, rng: &mut impl Rng) -> Option<String> {
        let h = &mut g.hyperparams;
        Some(match rng.random_range(0..10) {
            0 | 1 => {
                let factor = (rng.random_range(-1.0f64..1.0)).exp();
                let (lo, hi) = self.learning_rate_range(h.optimizer);
                h.learning_rate = (h.learning_rate * factor).clamp(lo, hi);
                format!("learning rate → {:.2e}", h.learning_rate)
            }
            2 => {
                h.batch_size = Self::pick(rng, &self.batch_sizes);
                format!("batch size → {}", h.batch_size)
            }
            3 => {
                h.weight_decay = Self::log_uniform(rng, self.weight_decay);
                format!("weight decay → {:.2e}", h.weight_decay)
            }
            4 => {
                h.max_epochs = Self::pick(rng, &self.max_epochs);
                let early_stopping = Self::pick(rng, &self.early_stopping);
                h.patience = self.patience_for(early_stopping, h.max_epochs);
                format!(
                    "max epochs → {}, early stopping {}",
                    h.max_epochs,
                    if early_stopping { "on" } else { "off" }
                )
            }
            5 => {
                h.optimizer = Self::pick(rng, &self.optimizers);
                h.learning_rate = self.random_learning_rate(rng, h.optimizer);
                format!("optimizer → {:?} at {:.2e}", h.optimizer, h.learning_rate)
            }
            6 => {
                h.schedule = Self::pick(rng, &self.schedules);
                h.warmup_epochs = Self::pick(rng, &self.warmup_epochs);
                format!("schedule → {:?}, warm-up {}", h.schedule, h.warmup_epochs)
            }
            7 => {
                h.grad_clip_norm = Self::pick(rng, &self.grad_clip_norms);
                format!("gradient clipping → {:?}", h.grad_clip_norm)
            }
            8 if rng.random_bool(0.5) => {
                h.augment_shift = Self::pick(rng, &self.augment_shifts);
                h.augment_noise = Self::pick(rng, &self.augment_noises);
                h.mixup_alpha = Self::pick(rng, &self.mixup_alphas);
                h.augment_rotate = Self::pick(rng, &self.augment_rotations);
                format!(
                    "augmentation → shift ±{}, rotation ±{}°, noise {}, mixup α {}",
                    h.augment_shift, h.augment_rotate, h.augment_noise, h.mixup_alpha
                )
            }
            8 => {
                h.label_smoothing = Self::pick(rng, &self.label_smoothing);
                h.balanced_class_weights = Self::pick(rng, &self.balanced_class_weights);
                format!(
                    "label smoothing → {}, balanced classes → {}",
                    h.label_smoothing, h.balanced_class_weights
                )
            }
            _ => {
                h.regression_loss = Self::pick(rng, &self.regression_losses);
                format!("regression loss → {:?}", h.regression_loss)
            }
        })
    }

    /// Renders a genome to an architecture: input, convolutional blocks, the reduction, dense
    /// blocks, the output layer.
    pub fn render(&self, genome: &Genome) -> ArchitectureSpec {
        let mut nodes = vec![Node {
            id: NodeId(0),
            op: Op::Input,
        }];
        let mut edges = Vec::new();
        let push = |nodes: &mut Vec<Node>, edges: &mut Vec<Edge>, op: Op, from: &[NodeId]| {
            let id = NodeId(nodes.len() as u32);
            nodes.push(Node { id, op });
            edges.extend(from.iter().map(|&f| Edge { from: f, to: id }));
            id
        };
        let mut cur = NodeId(0);
        let mut shape = self.input_shape.tensor_shape(self.input_features);
        if let Shape::Grid {
            mut channels,
            mut height,
            mut width,
        } = shape
        {
            for block in &genome.convs {
                let block_input = cur;
                let input_channels = channels;
                cur = push(
                    &mut nodes,
                    &mut edges,
                    Op::Conv {
                        filters: block.filters,
                        kernel: block.kernel,
                        stride: block.stride,
                    },
                    &[cur],
                );
                let slide = |n: usize, k: usize, s: usize, p: usize| {
                    window_output(n, k, s, p).expect("padded windows fit")
                };
                if height > 1 {
                    height = slide(height, block.kernel, block.stride, block.kernel / 2);
                }
                let same = block.stride == 1 && input_channels == block.filters;
                width = slide(width, block.kernel, block.stride, block.kernel / 2);
                channels = block.filters;
                if block.batch_norm {
                    let op = Op::Norm { kind: Norm::Batch };
                    cur = push(&mut nodes, &mut edges, op, &[cur]);
                }
                let op = Op::Activation {
                    function: block.activation,
                };
                cur = push(&mut nodes, &mut edges, op, &[cur]);
                if block.residual && same {
                    cur = push(&mut nodes, &mut edges, Op::Add, &[cur, block_input]);
                }
                let fits = width >= 2 && (height == 1 || height >= 2);
                if let Some(kind) = block.pool.filter(|_| fits) {
                    cur = push(
                        &mut nodes,
                        &mut edges,
                        Op::Pool {
                            kind,
                            size: 2,
                            same: false,
                        },
                        &[cur],
                    );
                    width /= 2;
                    if height > 1 {
                        height /= 2;
                    }
                }
                if let Some(cell) = &genome.cell {
                    for _ in 0..self.cells_per_stage {
                        let mut add =
                            |op: Op, from: &[NodeId]| push(&mut nodes, &mut edges, op, from);
                        cur = cell.build(cur, channels, &mut add);
                    }
                }
            }
            let reduce = if genome.convs.is_empty() {
                Reduce::Flatten
            } else {
                genome.reduce
            };
            let (op, flat) = match reduce {
                Reduce::Flatten => (Op::Flatten, channels * height * width),
                Reduce::Global(kind) => (Op::GlobalPool { kind }, channels),
            };
            cur = push(&mut nodes, &mut edges, op, &[cur]);
            shape = Shape::Flat(flat);
        }
        // (node id, width) of the dense part's input and of each dense block's output.
        let mut stages: Vec<(NodeId, usize)> = vec![(cur, shape.size())];
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
            input_shape: self.input_shape,
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
        fn sampled_and_mutated_genomes_render_valid_dags(
            seed in any::<u64>(),
            inputs in 1usize..50,
            outputs in 1usize..12,
            layout in 0usize..3,
        ) {
            // Vector inputs; signals of `inputs` samples; square images of side 1 + inputs / 8.
            let (features, shape) = match layout {
                0 => (inputs, InputShape::Vector),
                1 => (inputs, InputShape::Signal { channels: 1, length: inputs }),
                _ => {
                    let side = 1 + inputs / 8;
                    (side * side, InputShape::Image { channels: 1, height: side, width: side })
                }
            };
            let space = SearchSpace::for_input(features, shape, outputs);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut g = space.sample(&mut rng);
            for start in space.defaults() {
                prop_assert!(space.is_well_formed(&start));
                prop_assert!(space.render(&start).validate().is_ok());
            }
            for _ in 0..20 {
                let spec = space.render(&g);
                prop_assert!(check_dag(&spec).is_ok(), "{:?}", check_dag(&spec));
                prop_assert_eq!(spec.validate().unwrap().output_width, outputs);
                prop_assert!(space.is_well_formed(&g));
                if !shape.is_spatial() {
                    prop_assert!(g.convs.is_empty());
                }
                prop_assert!(g.hyperparams.problem().is_none(), "{:?}", g.hyperparams);
                // Early stopping is on (the space's patience) or off (patience = max epochs).
                let h = &g.hyperparams;
                prop_assert!(h.patience == space.patience || h.patience == h.max_epochs, "{:?}", h);
                let (child, _) = space.mutate(&g, &mut rng);
                prop_assert_ne!(&child, &g);
                g = child;
            }
        }
    }

    /// Vectors start from the MLP; signals and images, whose samples are all convolutional, from
    /// the CNN alone. Every default is well formed and renders to a valid DAG.
    #[test]
    fn the_defaults_follow_the_input() {
        let vector = SearchSpace::for_data(8, 3);
        assert_eq!(vector.defaults(), vec![vector.default_mlp()]);
        let signal = SearchSpace::for_input(
            40,
            InputShape::Signal {
                channels: 1,
                length: 40,
            },
            10,
        );
        let image = SearchSpace::for_input(
            64,
            InputShape::Image {
                channels: 1,
                height: 8,
                width: 8,
            },
            10,
        );
        for space in [&vector, &signal, &image] {
            for g in space.defaults() {
                assert!(space.is_well_formed(&g));
                space.render(&g).validate().unwrap();
            }
        }
        for space in [&signal, &image] {
            let d = space.defaults();
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].convs.len(), 3);
            assert!(d[0].hyperparams.augment_shift > 0);
            // The MLP stays what TPE decodes onto.
            assert!(space.default_mlp().convs.is_empty());
        }
    }

    /// Early stopping is a choice of the space: samples draw both, the defaults train to the
    /// schedule's end unless the space offers only early stopping.
    #[test]
    fn early_stopping_is_searched_and_off_in_the_defaults() {
        let mut space = SearchSpace::for_data(8, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let on: Vec<bool> = (0..100)
            .map(|_| space.sample(&mut rng).hyperparams.early_stopping())
            .collect();
        assert!(on.contains(&true) && on.contains(&false));
        assert!(
            space
                .defaults()
                .iter()
                .all(|g| !g.hyperparams.early_stopping())
        );
        space.early_stopping = vec![true];
        for g in space.defaults() {
            assert_eq!(g.hyperparams.patience, space.patience);
        }
    }

    /// The 3,927 connected cells compute 1,065 different functions (counted independently by
    /// symbolic expressions: a node is the sorted sum of its edges' op(source)); the rendered
    /// graphs' canonical keys tell exactly those apart.
    #[test]
    fn connected_cells_render_to_1065_distinct_networks() {
        fn expression(cell: &Cell) -> Option<String> {
            let mut ex: [Option<String>; 4] = [Some("x".into()), None, None, None];
            for j in 1..4 {
                let mut terms: Vec<String> = Cell::EDGES
                    .iter()
                    .enumerate()
                    .filter(|&(_, &(_, to))| to == j)
                    .filter_map(|(k, &(i, _))| {
                        let src = ex[i].clone()?;
                        match cell.edges[k] {
                            CellOp::None => None,
                            CellOp::Skip => Some(src),
                            op => Some(format!("{}({src})", op.label())),
                        }
                    })
                    .collect();
                terms.sort();
                ex[j] = match terms.len() {
                    0 => None,
                    1 => terms.pop(),
                    _ => Some(format!("({})", terms.join("+"))),
                };
            }
            ex[3].clone()
        }
        let shape = InputShape::Signal {
            channels: 1,
            length: 12,
        };
        let space = SearchSpace::cell_benchmark(12, shape, 3, 4, 2);
        let skeleton = space.only_cells.clone().unwrap();
        let mut keys = std::collections::HashMap::new();
        let mut expressions = std::collections::HashMap::new();
        for cell in Cell::all() {
            let Some(e) = expression(&cell) else {
                assert!(!cell.is_connected());
                continue;
            };
            let g = Genome {
                cell: Some(cell),
                ..(*skeleton).clone()
            };
            assert!(space.is_well_formed(&g));
            let key = space.render(&g).canonical_key().unwrap();
            keys.entry(key.clone()).or_insert_with(|| e.clone());
            // Same function ⇔ same key.
            assert_eq!(expressions.entry(e).or_insert(key.clone()), &key);
        }
        assert_eq!(keys.len(), 1065);
        assert_eq!(expressions.len(), 1065);
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
            convs: Vec::new(),
            cell: None,
            reduce: Reduce::Flatten,
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
