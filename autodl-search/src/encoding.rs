//! Genomes as flat TPE configurations: one parameter per choice, conditional on the block
//! counts (a block's parameters are active only when the genome has that block) and on the
//! optimiser (SGD and Adam-family learning rates have their own ranges).

use autodl_artifacts::arch::PoolKind;

use crate::cell::{Cell, CellOp};
use crate::genome::{Block, ConvBlock, Genome, Reduce, SearchSpace, Skip};
use crate::tpe::{Config, Param, ParamKind, TpeSpace};

const POOLS: [Option<PoolKind>; 3] = [None, Some(PoolKind::Max), Some(PoolKind::Average)];
const REDUCES: [Reduce; 3] = [
    Reduce::Flatten,
    Reduce::Global(PoolKind::Average),
    Reduce::Global(PoolKind::Max),
];

/// Walks the parameters in order, either declaring them, reading a config, or writing one.
enum Walk<'a> {
    Declare(&'a mut TpeSpace),
    Read(&'a Config, usize),
    Write(&'a mut Config),
}

impl Walk<'_> {
    /// A categorical choice among `n`; `value` is the genome's index (for writing); returns the
    /// index (for reading), or `None` when inactive.
    fn cat(
        &mut self,
        name: String,
        n: usize,
        when: Option<(usize, Vec<usize>)>,
        value: Option<usize>,
    ) -> Option<usize> {
        self.param(
            name,
            ParamKind::Categorical { choices: n },
            when,
            value.map(|v| v as f64),
        )
        .map(|v| v as usize)
    }

    fn param(
        &mut self,
        name: String,
        kind: ParamKind,
        when: Option<(usize, Vec<usize>)>,
        value: Option<f64>,
    ) -> Option<f64> {
        match self {
            Walk::Declare(space) => {
                space.params.push(Param {
                    name,
                    kind,
                    active_when: when,
                });
                None
            }
            Walk::Read(config, at) => {
                *at += 1;
                config.get(*at - 1).copied().flatten()
            }
            Walk::Write(config) => {
                config.push(value);
                None
            }
        }
    }

    /// Index of the next parameter (for conditions).
    fn next_index(&self) -> usize {
        match self {
            Walk::Declare(space) => space.params.len(),
            Walk::Read(_, at) => *at,
            Walk::Write(config) => config.len(),
        }
    }
}

impl SearchSpace {
    /// The six edge choices of a cell, active `when` given; reads back a connected cell (see
    /// [`Cell::repaired`]), with `current`'s edges or convolutions where a value is absent.
    fn walk_cell(
        w: &mut Walk<'_>,
        when: Option<(usize, Vec<usize>)>,
        current: Option<Cell>,
    ) -> Cell {
        let mut edges = [CellOp::Conv; 6];
        for (k, &(from, to)) in Cell::EDGES.iter().enumerate() {
            let now = current.map(|c| position(&CellOp::ALL, &c.edges[k]));
            let read = w.cat(format!("cell.edge{from}{to}"), 4, when.clone(), now);
            edges[k] = read.or(now).map_or(CellOp::Conv, |i| CellOp::ALL[i.min(3)]);
        }
        Cell { edges }.repaired()
    }
}

fn position<T: PartialEq>(list: &[T], value: &T) -> usize {
    list.iter().position(|v| v == value).unwrap_or(0)
}

impl SearchSpace {
    /// The TPE parameter space equivalent to this search space.
    pub fn tpe_space(&self) -> TpeSpace {
        let mut space = TpeSpace::default();
        self.walk(&mut Walk::Declare(&mut space), None);
        space
    }

    /// `genome` as a TPE configuration (choices outside the space's lists map to the first).
    pub fn encode(&self, genome: &Genome) -> Config {
        let mut config = Config::new();
        self.walk(&mut Walk::Write(&mut config), Some(genome));
        config
    }

    /// The genome a TPE configuration describes; always well formed.
    pub fn decode(&self, config: &Config) -> Genome {
        self.walk(&mut Walk::Read(config, 0), None)
    }

    /// One pass over the parameters. With `genome`, writes its values; otherwise builds the
    /// genome from what the walk reads (defaults where a value is absent).
    fn walk(&self, w: &mut Walk<'_>, genome: Option<&Genome>) -> Genome {
        if let Some(skeleton) = &self.only_cells {
            let mut g = genome.cloned().unwrap_or_else(|| (**skeleton).clone());
            let cell = Self::walk_cell(w, None, g.cell);
            if genome.is_none() {
                g.cell = Some(cell);
            }
            return g;
        }
        let mut g = genome.cloned().unwrap_or_else(|| self.default_mlp());
        let get = |v: Option<usize>, default: usize| v.unwrap_or(default);

        let max_conv = self.max_conv_blocks;
        if max_conv > 0 {
            let at = w.next_index();
            let n_conv = get(
                w.cat(
                    "conv_blocks".into(),
                    max_conv + 1,
                    None,
                    Some(g.convs.len()),
                ),
                g.convs.len(),
            );
            let mut convs = Vec::new();
            for i in 0..max_conv {
                let when = Some((at, (i + 1..=max_conv).collect()));
                let cur = g.convs.get(i).cloned();
                let c = |f: &dyn Fn(&ConvBlock) -> usize| cur.as_ref().map(f);
                let filters = w.cat(
                    format!("conv{i}.filters"),
                    self.filters.len(),
                    when.clone(),
                    c(&|b| position(&self.filters, &b.filters)),
                );
                let kernel = w.cat(
                    format!("conv{i}.kernel"),
                    self.kernels.len(),
                    when.clone(),
                    c(&|b| position(&self.kernels, &b.kernel)),
                );
                let stride = w.cat(
                    format!("conv{i}.stride"),
                    self.strides.len(),
                    when.clone(),
                    c(&|b| position(&self.strides, &b.stride)),
                );
                let activation = w.cat(
                    format!("conv{i}.activation"),
                    self.activations.len(),
                    when.clone(),
                    c(&|b| position(&self.activations, &b.activation)),
                );
                let bn = w.cat(
                    format!("conv{i}.batch_norm"),
                    2,
                    when.clone(),
                    c(&|b| usize::from(b.batch_norm)),
                );
                let residual = w.cat(
                    format!("conv{i}.residual"),
                    2,
                    when.clone(),
                    c(&|b| usize::from(b.residual)),
                );
                let pool = w.cat(
                    format!("conv{i}.pool"),
                    3,
                    when,
                    c(&|b| position(&POOLS, &b.pool)),
                );
                if i < n_conv && genome.is_none() {
                    convs.push(ConvBlock {
                        filters: self.filters[get(filters, 0)],
                        kernel: self.kernels[get(kernel, 0)],
                        stride: self.strides[get(stride, 0)],
                        activation: self.activations[get(activation, 0)],
                        batch_norm: get(bn, 0) == 1,
                        residual: get(residual, 0) == 1,
                        pool: POOLS[get(pool, 0)],
                    });
                }
            }
            let reduce = w.cat(
                "reduce".into(),
                3,
                None,
                Some(position(&REDUCES, &g.reduce)),
            );
            let cell = if self.offer_cells {
                // A cell needs at least one convolutional block; its edges need the cell.
                let cell_at = w.next_index();
                let has = w.cat(
                    "cell".into(),
                    2,
                    Some((at, (1..=max_conv).collect())),
                    (!g.convs.is_empty()).then_some(usize::from(g.cell.is_some())),
                );
                let cell = Self::walk_cell(w, Some((cell_at, vec![1])), g.cell);
                (has == Some(1) && !convs.is_empty()).then_some(cell)
            } else {
                None
            };
            if genome.is_none() {
                g.convs = convs;
                g.cell = cell;
                g.reduce = REDUCES[get(reduce, 0)];
            }
        }

        let max_dense = self.max_blocks;
        let at = w.next_index();
        let n_dense = get(
            w.cat(
                "dense_blocks".into(),
                max_dense + 1,
                None,
                Some(g.blocks.len()),
            ),
            g.blocks.len(),
        );
        let mut blocks = Vec::new();
        for i in 0..max_dense {
            let when = Some((at, (i + 1..=max_dense).collect()));
            let cur = g.blocks.get(i).cloned();
            let c = |f: &dyn Fn(&Block) -> usize| cur.as_ref().map(f);
            let width = w.cat(
                format!("dense{i}.width"),
                self.widths.len(),
                when.clone(),
                c(&|b| position(&self.widths, &b.width)),
            );
            let activation = w.cat(
                format!("dense{i}.activation"),
                self.activations.len(),
                when.clone(),
                c(&|b| position(&self.activations, &b.activation)),
            );
            let norm = w.cat(
                format!("dense{i}.norm"),
                self.norms.len(),
                when.clone(),
                c(&|b| position(&self.norms, &b.norm)),
            );
            let dropout = w.cat(
                format!("dense{i}.dropout"),
                self.dropout_rates.len(),
                when.clone(),
                c(&|b| position(&self.dropout_rates, &b.dropout)),
            );
            // Skip source: 0 for none, k for stage k − 1 (earlier than this block).
            let (skip, merge) = if i > 0 {
                let skip_at = w.next_index();
                let skip = w.cat(
                    format!("dense{i}.skip"),
                    i + 1,
                    when,
                    c(&|b| b.skip.map_or(0, |(src, _)| src + 1)),
                );
                let merge = w.cat(
                    format!("dense{i}.merge"),
                    2,
                    Some((skip_at, (1..=i).collect())),
                    cur.as_ref()
                        .and_then(|b| b.skip)
                        .map(|(_, m)| usize::from(m == Skip::Concat)),
                );
                (skip, merge)
            } else {
                (None, None)
            };
            if i < n_dense && genome.is_none() {
                blocks.push(Block {
                    width: self.widths[get(width, 0)],
                    activation: self.activations[get(activation, 0)],
                    norm: self.norms[get(norm, 0)],
                    dropout: self.dropout_rates[get(dropout, 0)],
                    skip: match get(skip, 0) {
                        0 => None,
                        k => Some((
                            k - 1,
                            if get(merge, 0) == 1 {
                                Skip::Concat
                            } else {
                                Skip::Add
                            },
                        )),
                    },
                });
            }
        }
        if genome.is_none() {
            g.blocks = blocks;
            if g.convs.is_empty() && g.blocks.is_empty() {
                g.blocks.push(Self::default_dense(256));
            }
        }

        let h = g.hyperparams.clone();
        let opt_at = w.next_index();
        let optimizer = get(
            w.cat(
                "optimizer".into(),
                self.optimizers.len(),
                None,
                Some(position(&self.optimizers, &h.optimizer)),
            ),
            0,
        );
        let (sgd, adam): (Vec<usize>, Vec<usize>) = (0..self.optimizers.len()).partition(|&k| {
            matches!(
                self.optimizers[k],
                autodl_artifacts::trial::Optimizer::Sgd { .. }
            )
        });
        let is_sgd = matches!(h.optimizer, autodl_artifacts::trial::Optimizer::Sgd { .. });
        let lr_adam = w.param(
            "learning_rate".into(),
            ParamKind::Float {
                low: self.learning_rate.0,
                high: self.learning_rate.1,
                log: true,
            },
            Some((opt_at, adam)),
            (!is_sgd).then_some(h.learning_rate),
        );
        let lr_sgd = w.param(
            "sgd_learning_rate".into(),
            ParamKind::Float {
                low: self.sgd_learning_rate.0,
                high: self.sgd_learning_rate.1,
                log: true,
            },
            Some((opt_at, sgd)),
            is_sgd.then_some(h.learning_rate),
        );
        let batch = w.cat(
            "batch_size".into(),
            self.batch_sizes.len(),
            None,
            Some(position(&self.batch_sizes, &h.batch_size)),
        );
        let decay = w.param(
            "weight_decay".into(),
            ParamKind::Float {
                low: self.weight_decay.0,
                high: self.weight_decay.1,
                log: true,
            },
            None,
            Some(h.weight_decay),
        );
        let epochs = w.cat(
            "max_epochs".into(),
            self.max_epochs.len(),
            None,
            Some(position(&self.max_epochs, &h.max_epochs)),
        );
        let early = w.cat(
            "early_stopping".into(),
            self.early_stopping.len(),
            None,
            Some(position(&self.early_stopping, &h.early_stopping())),
        );
        let schedule = w.cat(
            "schedule".into(),
            self.schedules.len(),
            None,
            Some(position(&self.schedules, &h.schedule)),
        );
        let warmup = w.cat(
            "warmup_epochs".into(),
            self.warmup_epochs.len(),
            None,
            Some(position(&self.warmup_epochs, &h.warmup_epochs)),
        );
        let clip = w.cat(
            "grad_clip_norm".into(),
            self.grad_clip_norms.len(),
            None,
            Some(position(&self.grad_clip_norms, &h.grad_clip_norm)),
        );
        let smoothing = w.cat(
            "label_smoothing".into(),
            self.label_smoothing.len(),
            None,
            Some(position(&self.label_smoothing, &h.label_smoothing)),
        );
        let balanced = w.cat(
            "balanced_class_weights".into(),
            self.balanced_class_weights.len(),
            None,
            Some(position(
                &self.balanced_class_weights,
                &h.balanced_class_weights,
            )),
        );
        let loss = w.cat(
            "regression_loss".into(),
            self.regression_losses.len(),
            None,
            Some(position(&self.regression_losses, &h.regression_loss)),
        );
        let shift = w.cat(
            "augment_shift".into(),
            self.augment_shifts.len(),
            None,
            Some(position(&self.augment_shifts, &h.augment_shift)),
        );
        let noise = w.cat(
            "augment_noise".into(),
            self.augment_noises.len(),
            None,
            Some(position(&self.augment_noises, &h.augment_noise)),
        );
        let mixup = w.cat(
            "mixup_alpha".into(),
            self.mixup_alphas.len(),
            None,
            Some(position(&self.mixup_alphas, &h.mixup_alpha)),
        );
        let rotate = w.cat(
            "augment_rotate".into(),
            self.augment_rotations.len(),
            None,
            Some(position(&self.augment_rotations, &h.augment_rotate)),
        );
        if genome.is_none() {
            let optimizer = self.optimizers[optimizer];
            let h = &mut g.hyperparams;
            h.optimizer = optimizer;
            h.learning_rate = if matches!(optimizer, autodl_artifacts::trial::Optimizer::Sgd { .. })
            {
                lr_sgd.unwrap_or(self.sgd_learning_rate.0)
            } else {
                lr_adam.unwrap_or(self.learning_rate.0)
            };
            h.batch_size = self.batch_sizes[get(batch, 0)];
            h.weight_decay = decay.unwrap_or(self.weight_decay.0);
            h.max_epochs = self.max_epochs[get(epochs, 0)];
            h.patience = self.patience_for(self.early_stopping[get(early, 0)], h.max_epochs);
            h.schedule = self.schedules[get(schedule, 0)];
            h.warmup_epochs = self.warmup_epochs[get(warmup, 0)];
            h.grad_clip_norm = self.grad_clip_norms[get(clip, 0)];
            h.label_smoothing = self.label_smoothing[get(smoothing, 0)];
            h.balanced_class_weights = self.balanced_class_weights[get(balanced, 0)];
            h.regression_loss = self.regression_losses[get(loss, 0)];
            h.augment_shift = self.augment_shifts[get(shift, 0)];
            h.augment_noise = self.augment_noises[get(noise, 0)];
            h.mixup_alpha = self.mixup_alphas[get(mixup, 0)];
            h.augment_rotate = self.augment_rotations[get(rotate, 0)];
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodl_artifacts::arch::InputShape;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn genomes_round_trip_through_tpe_configs() {
        for shape in [
            InputShape::Vector,
            InputShape::Image {
                channels: 1,
                height: 8,
                width: 8,
            },
        ] {
            let space = SearchSpace::for_input(64, shape, 10);
            check_round_trips(&space);
        }
        let cells = SearchSpace::cell_benchmark(
            64,
            InputShape::Signal {
                channels: 1,
                length: 64,
            },
            10,
            8,
            5,
        );
        assert_eq!(cells.tpe_space().params.len(), 6);
        check_round_trips(&cells);
    }

    fn check_round_trips(space: &SearchSpace) {
        {
            let tpe = space.tpe_space();
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            for _ in 0..50 {
                let g = space.sample(&mut rng);
                let c = space.encode(&g);
                assert_eq!(c.len(), tpe.params.len());
                assert_eq!(space.decode(&c), g);
                // Random TPE configurations decode to well-formed genomes.
                let r = space.decode(&tpe.sample_random(&mut rng));
                assert!(space.is_well_formed(&r), "{r:?}");
                assert!(r.hyperparams.problem().is_none());
            }
        }
    }
}
