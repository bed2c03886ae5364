//! Max and average pooling over small maps, put in place of tract's in the runner's plans.
//!
//! tract 0.23 pools through a generic loop that, per output position, builds a window view
//! and hands chunks of channels to its thread pool: on the default CNN for 8×8 images its two
//! 2×2 max pools took 6.4 of a call's 52 µs, then 23 % of the call once the convolutions were
//! [`DirectConv`](crate::conv::DirectConv)s. This op lists, when it is built, the in-map
//! offsets each output position reads (padding left out), and pools every map of the batch
//! through that list.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// What a window becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reduce {
    Max,
    /// The sum, divided by the window's size (`include_pad`) or by its inputs (not).
    Mean {
        include_pad: bool,
    },
    Sum,
}

#[derive(Debug)]
pub(crate) struct Windows {
    reduce: Reduce,
    /// Positions of one input map and of one output map.
    pub(crate) in_len: usize,
    pub(crate) out_len: usize,
    /// Output spatial dims (the last one or two of the output's shape).
    pub(crate) out_dims: TVec<usize>,
    /// `offsets[starts[p]..starts[p + 1]]`: the input positions output position `p` reads.
    starts: Vec<usize>,
    offsets: Vec<usize>,
    /// What each output position's sum is multiplied by.
    scale: Vec<f32>,
}

/// The op put in place of a [`MaxPool`] or [`SumPool`]; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct WindowPool {
    pub(crate) windows: Arc<Windows>,
}

equal_when_shared!(WindowPool, windows);

impl Op for WindowPool {
    fn name(&self) -> StaticName {
        "WindowPool".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let w = &self.windows;
        Ok(vec![format!(
            "{:?}, {} -> {} positions",
            w.reduce, w.in_len, w.out_len
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for WindowPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let w = &*self.windows;
        let mut shape: TVec<usize> = input.shape().into();
        let rank = shape.len();
        shape[rank - w.out_dims.len()..].copy_from_slice(&w.out_dims);
        let mut output = Tensor::zero::<f32>(&shape)?;
        {
            let x = input.try_as_plain_ram()?;
            let x = x.as_slice::<f32>()?;
            let mut out = output.try_as_plain_ram_mut()?;
            let out = out.as_slice_mut::<f32>()?;
            for (map, pooled) in x
                .chunks_exact(w.in_len)
                .zip(out.chunks_exact_mut(w.out_len))
            {
                w.pool(map, pooled);
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for WindowPool {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        let mut shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        let rank = shape.len();
        let dims = &self.windows.out_dims;
        for (slot, d) in shape[rank - dims.len()..].iter_mut().zip(dims) {
            *slot = (*d).into();
        }
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

impl Windows {
    /// Output position `q` of every channel at once, where `row(p)` holds input position
    /// `p` of every channel: the same reduction, in the same order, as [`Windows::pool`].
    pub(crate) fn pool_rows<'a>(
        &self,
        q: usize,
        row: impl Fn(usize) -> &'a [f32],
        pooled: &mut [f32],
    ) {
        let taps = &self.offsets[self.starts[q]..self.starts[q + 1]];
        match self.reduce {
            Reduce::Max => {
                pooled.fill(f32::NEG_INFINITY);
                for &p in taps {
                    for (m, &v) in pooled.iter_mut().zip(row(p)) {
                        *m = if v > *m { v } else { *m };
                    }
                }
            }
            Reduce::Mean { .. } | Reduce::Sum => {
                pooled.fill(0.0);
                for &p in taps {
                    for (sum, &v) in pooled.iter_mut().zip(row(p)) {
                        *sum += v;
                    }
                }
                for sum in pooled.iter_mut() {
                    *sum *= self.scale[q];
                }
            }
        }
    }

    fn pool(&self, map: &[f32], pooled: &mut [f32]) {
        for (p, out) in pooled.iter_mut().enumerate() {
            let taps = &self.offsets[self.starts[p]..self.starts[p + 1]];
            *out = match self.reduce {
                Reduce::Max => {
                    taps.iter().fold(
                        f32::NEG_INFINITY,
                        |m, &k| if map[k] > m { map[k] } else { m },
                    )
                }
                Reduce::Mean { .. } | Reduce::Sum => {
                    taps.iter().map(|&k| map[k]).sum::<f32>() * self.scale[p]
                }
            };
        }
    }
}

/// Puts a [`WindowPool`] in place of every max or average pool of `model` that it can run:
/// f32 NC(H)W data of known height and width, explicit or no padding, no index output.
/// Returns how many it replaced.
pub(crate) fn replace_pools(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let (spec, reduce) = if let Some(op) = node.op_as::<MaxPool>() {
            if op.with_index_outputs.is_some() {
                continue;
            }
            (&op.pool_spec, Reduce::Max)
        } else if let Some(op) = node.op_as::<SumPool>() {
            let reduce = if op.normalize {
                Reduce::Mean {
                    include_pad: op.count_include_pad,
                }
            } else {
                Reduce::Sum
            };
            (&op.pool_spec, reduce)
        } else {
            continue;
        };
        if node.inputs.len() != 1 || node.outputs.len() != 1 {
            continue;
        }
        let input = model.outlet_fact(node.inputs[0])?;
        if let Some(windows) = windows(spec, reduce, input, &node.outputs[0].fact) {
            model.node_mut(id).op = Box::new(WindowPool {
                windows: Arc::new(windows),
            });
            replaced += 1;
        }
    }
    Ok(replaced)
}

/// The windows of a pool, or `None` where [`WindowPool`] cannot run it.
fn windows(
    spec: &PoolSpec,
    reduce: Reduce,
    input: &TypedFact,
    output: &TypedFact,
) -> Option<Windows> {
    let f32_type = f32::datum_type();
    if spec.data_format != DataFormat::NCHW
        || input.datum_type != f32_type
        || output.datum_type != f32_type
    {
        return None;
    }
    let n_spatial = spec.kernel_shape.len();
    let dims = |shape: &ShapeFact| -> Option<TVec<usize>> {
        let rank = shape.rank();
        (rank == n_spatial + 2).then_some(())?;
        shape.iter().skip(2).map(|d| d.to_usize().ok()).collect()
    };
    let (size, out_dims) = (dims(&input.shape)?, dims(&output.shape)?);
    if !(1..=2).contains(&n_spatial) {
        return None;
    }
    let before = match &spec.padding {
        PaddingSpec::Valid => tvec![0; n_spatial],
        PaddingSpec::Explicit(b, _) | PaddingSpec::ExplicitOnnxPool(b, _, false) => b.clone(),
        _ => return None,
    };
    let ones = tvec![1; n_spatial];
    let strides = spec.strides.clone().unwrap_or_else(|| ones.clone());
    let dilations = spec.dilations.clone().unwrap_or(ones);
    if [&before, &strides, &dilations]
        .iter()
        .any(|v| v.len() != n_spatial)
    {
        return None;
    }
    // Height and width; a signal is a map of height 1.
    let two = |v: &[usize], fill: usize| -> [usize; 2] {
        if v.len() == 2 {
            [v[0], v[1]]
        } else {
            [fill, v[0]]
        }
    };
    let (size2, out2, taps) = (two(&size, 1), two(&out_dims, 1), two(&spec.kernel_shape, 1));
    let (before, strides, dilations) = (two(&before, 0), two(&strides, 1), two(&dilations, 1));
    let window: usize = taps[0] * taps[1];
    let mut starts = vec![0];
    let mut offsets = Vec::new();
    let mut scale = Vec::new();
    for oy in 0..out2[0] {
        for ox in 0..out2[1] {
            for ty in 0..taps[0] {
                for tx in 0..taps[1] {
                    let y = (oy * strides[0] + ty * dilations[0]).checked_sub(before[0]);
                    let x = (ox * strides[1] + tx * dilations[1]).checked_sub(before[1]);
                    if let (Some(y), Some(x)) = (y, x)
                        && y < size2[0]
                        && x < size2[1]
                    {
                        offsets.push(y * size2[1] + x);
                    }
                }
            }
            let count = offsets.len() - starts.last().copied().unwrap_or(0);
            // A window of padding only: onnxruntime gives -inf for max; leave such pools to
            // tract rather than guess for the others.
            if count == 0 {
                return None;
            }
            scale.push(match reduce {
                Reduce::Max | Reduce::Sum => 1.0,
                Reduce::Mean { include_pad: true } => 1.0 / window as f32,
                Reduce::Mean { include_pad: false } => 1.0 / count as f32,
            });
            starts.push(offsets.len());
        }
    }
    Some(Windows {
        reduce,
        in_len: size2[0] * size2[1],
        out_len: out2[0] * out2[1],
        out_dims,
        starts,
        offsets,
        scale,
    })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn pool_spec(
        channels: usize,
        taps: &[usize],
        strides: &[usize],
        before: &[usize],
        after: &[usize],
    ) -> PoolSpec {
        PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: taps.into(),
            padding: PaddingSpec::Explicit(before.into(), after.into()),
            dilations: None,
            strides: Some(strides.into()),
            input_channels: channels,
            output_channels: channels,
        }
    }

    /// A model of the one pool `op` over an input of `shape`.
    fn model_of(op: Box<dyn TypedOp>, shape: &[usize]) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).unwrap();
        let y = model.wire_node("pool", op, &[x]).unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    fn run(model: TypedModel, x: &Tensor) -> Vec<f32> {
        let plan = model.into_runnable().unwrap();
        let out = plan.run(tvec![x.clone().into_tvalue()]).unwrap();
        let plain = out[0].try_as_plain_ram().unwrap();
        plain.as_slice::<f32>().unwrap().to_vec()
    }

    #[test]
    fn window_pools_compute_what_tracts_pools_compute() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut compared = [0; 4];
        for case in 0..120 {
            let rank = 1 + case % 2;
            let pick = |rng: &mut ChaCha8Rng, lo: usize, hi: usize| -> Vec<usize> {
                (0..rank).map(|_| rng.random_range(lo..=hi)).collect()
            };
            let taps = pick(&mut rng, 1, 4);
            // Padding below the window, so that no window reads padding only.
            let before: Vec<usize> = taps.iter().map(|&t| rng.random_range(0..t)).collect();
            let after: Vec<usize> = taps.iter().map(|&t| rng.random_range(0..t)).collect();
            let strides = pick(&mut rng, 1, 3);
            let size: Vec<usize> = taps.iter().map(|&t| t + rng.random_range(0..6)).collect();
            let mut shape = vec![rng.random_range(1..=3), rng.random_range(1..=4)];
            shape.extend(&size);
            let spec = pool_spec(shape[1], &taps, &strides, &before, &after);
            let kind = case % 4;
            let op = |spec: PoolSpec| -> Box<dyn TypedOp> {
                match kind {
                    0 => Box::new(MaxPool {
                        pool_spec: spec,
                        with_index_outputs: None,
                    }),
                    1 => Box::new(SumPool {
                        pool_spec: spec,
                        count_include_pad: true,
                        normalize: true,
                    }),
                    2 => Box::new(SumPool {
                        pool_spec: spec,
                        count_include_pad: false,
                        normalize: true,
                    }),
                    _ => Box::new(SumPool {
                        pool_spec: spec,
                        count_include_pad: false,
                        normalize: false,
                    }),
                }
            };
            let values: Vec<f32> = (0..shape.iter().product())
                .map(|_| rng.random_range(-3.0f32..3.0))
                .collect();
            let x = Tensor::from_shape(&shape, &values).unwrap();
            let want = run(model_of(op(spec.clone()), &shape), &x);
            let mut replaced = model_of(op(spec), &shape);
            assert_eq!(replace_pools(&mut replaced).unwrap(), 1, "case {case}");
            assert_eq!(replaced.node(1).op().name(), "WindowPool");
            let got = run(replaced, &x);
            assert_eq!(got.len(), want.len(), "case {case}");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() < 1e-5,
                    "case {case} (kind {kind}), element {i}: {g} vs {w}"
                );
            }
            compared[kind] += 1;
        }
        assert!(compared.iter().all(|&n| n >= 20), "{compared:?}");
    }

    #[test]
    fn a_window_of_padding_only_is_left_to_tract() {
        // With 2 before and a window of 2, the first window reads padding only.
        let spec = pool_spec(1, &[2], &[1], &[2], &[0]);
        let mut model = model_of(
            Box::new(MaxPool {
                pool_spec: spec,
                with_index_outputs: None,
            }),
            &[1, 1, 5],
        );
        assert_eq!(replace_pools(&mut model).unwrap(), 0);
        assert_eq!(model.node(1).op().name(), "MaxPool");
    }
}
