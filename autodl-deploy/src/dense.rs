//! Dense layers through the [`gemm`] kernel, put in place of tract's matrix products in the
//! runner's plans on CPUs with AVX-512 or AVX2.
//!
//! tract 0.23 runs a dense layer as a packing op (the rows of the input copied into
//! panels) and a matrix product, then its bias and ReLU as separate ops unless its optimiser
//! fuses them. On the default MLP for 1,024 rows (64 → 256 → 128 → 10) its products ran at
//! 52 and 72 GMAC/s and its packing took 140 of a call's 1,078 µs; onnxruntime does the
//! whole call in 580 µs. This op reads the input rows where they are, holds 64 output
//! columns of 6 rows in registers, and adds the bias and applies a ReLU that follow the
//! product as the results are stored. Layers that each alone read the one before become one
//! op, which takes a block of rows through all of them while the block is in cache, and a
//! softmax over the last layer's columns is taken on each block as it leaves (instead of a
//! separate op over the whole output).

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::Softmax;

use crate::gemm::{
    LANES, Tap, Taps, Weights, constant_after, gemm, relu_after, replace_run, sole_reader,
};
use crate::softmax::{over_last_axis, softmax_rows};

/// A dense layer: `out[r, o] = relu?(bias[o] + Σ_k x[r, k] · w[k, o])`.
#[derive(Debug, Clone)]
struct Layer {
    /// Inputs per row and outputs per row (before padding to [`LANES`]).
    inputs: usize,
    outputs: usize,
    /// The output's axes.
    shape: TVec<Axis>,
    /// `(k, k)` for every input `k`: a row's taps, in [`gemm`]'s terms.
    taps: Taps,
    weights: Weights,
    /// Whether each row of the output is then replaced by its softmax (the last layer only).
    softmax: bool,
}

/// An axis of a [`Layer`]'s output.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Axis {
    /// The input's first axis.
    Rows,
    /// The output column.
    Column,
    /// Of length 1.
    One,
}

/// The op put in place of an [`EinSum`] that is a matrix product with a constant (and of
/// the bias and ReLU after it), or of a chain of them where each alone reads the one
/// before; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct DirectDense {
    layers: Arc<[Layer]>,
}

equal_when_shared!(DirectDense, layers);

impl Op for DirectDense {
    fn name(&self) -> StaticName {
        "DirectDense".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(self
            .layers
            .iter()
            .map(|l| {
                let relu = if l.weights.relu { ", relu" } else { "" };
                let softmax = if l.softmax { ", softmax" } else { "" };
                format!("{} -> {}{relu}{softmax}", l.inputs, l.outputs)
            })
            .collect())
    }

    op_as_typed_op!();
}

impl EvalOp for DirectDense {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let (first, last) = (&self.layers[0], &self.layers[self.layers.len() - 1]);
        let n = input.len() / first.inputs;
        ensure!(input.len() == n * first.inputs);
        let shape: TVec<usize> = last
            .shape
            .iter()
            .map(|axis| match axis {
                Axis::Rows => n,
                Axis::Column => last.outputs,
                Axis::One => 1,
            })
            .collect();
        let mut output = Tensor::zero::<f32>(&shape)?;
        {
            let x = input.try_as_plain_ram()?;
            let mut out = output.try_as_plain_ram_mut()?;
            self.run(x.as_slice::<f32>()?, n, out.as_slice_mut::<f32>()?);
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for DirectDense {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        let last = &self.layers[self.layers.len() - 1];
        let shape: TVec<TDim> = last
            .shape
            .iter()
            .map(|axis| match axis {
                Axis::Rows => inputs[0].shape[0].clone(),
                Axis::Column => last.outputs.into(),
                Axis::One => 1.into(),
            })
            .collect();
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

thread_local! {
    /// [`DirectDense::run`]'s buffers, kept from one call to the next on each thread.
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 2]> =
        const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
}

impl DirectDense {
    /// `n` rows of `x` through every layer into `out`, a pass of rows at a time so that a
    /// pass's inputs and results (128 KiB each) stay in the core's cache from one layer to
    /// the next.
    fn run(&self, x: &[f32], n: usize, out: &mut [f32]) {
        let widest = self
            .layers
            .iter()
            .map(|l| l.inputs.max(l.weights.bias.len()));
        let widest = widest.max().unwrap_or(1).max(1);
        let per_pass = ((32_768 / widest).max(12) / 12 * 12).min(n.max(1));
        let scratch_len = per_pass * widest;
        SCRATCH.with_borrow_mut(|[even, odd]| {
            // Every value a layer reads was written before in the same pass, so the buffers
            // are only grown, never cleared.
            for buffer in [&mut *even, &mut *odd] {
                if buffer.len() < scratch_len {
                    buffer.resize(scratch_len, 0.0);
                }
            }
            let scratch = [&mut even[..scratch_len], &mut odd[..scratch_len]];
            self.passes(x, n, per_pass, scratch, out);
        });
    }

    /// [`DirectDense::run`]'s passes of `per_pass` rows, through `scratch`'s two buffers of
    /// `per_pass` rows of the widest layer.
    fn passes(
        &self,
        x: &[f32],
        n: usize,
        per_pass: usize,
        scratch: [&mut [f32]; 2],
        out: &mut [f32],
    ) {
        let [even, odd] = scratch;
        let mut bases = Vec::with_capacity(per_pass);
        let last = self.layers.len() - 1;
        for first in (0..n).step_by(per_pass) {
            let count = per_pass.min(n - first);
            for (i, layer) in self.layers.iter().enumerate() {
                let m = layer.weights.bias.len();
                // Layer i reads the rows layer i - 1 wrote (of its padded width), the first
                // reads `x`, and each writes the buffer the one before did not.
                let (read, write) = if i % 2 == 0 {
                    (&*odd, &mut *even)
                } else {
                    (&*even, &mut *odd)
                };
                let (rows, stride) = match i.checked_sub(1).map(|p| &self.layers[p]) {
                    None => (
                        &x[first * layer.inputs..(first + count) * layer.inputs],
                        layer.inputs,
                    ),
                    Some(before) => {
                        let width = before.weights.bias.len();
                        (&read[..count * width], width)
                    }
                };
                bases.clear();
                bases.extend((0..count).map(|r| r * stride));
                let span = first * layer.outputs..(first + count) * layer.outputs;
                if i == last && m == layer.outputs {
                    gemm(
                        rows,
                        &bases,
                        &layer.taps,
                        &layer.weights,
                        &mut out[span.clone()],
                    );
                } else {
                    let result = &mut write[..count * m];
                    gemm(rows, &bases, &layer.taps, &layer.weights, result);
                    if i == last {
                        let out = &mut out[span.clone()];
                        for (o, r) in out
                            .chunks_exact_mut(layer.outputs)
                            .zip(result.chunks_exact(m))
                        {
                            o.copy_from_slice(&r[..layer.outputs]);
                        }
                    }
                }
                if i == last && layer.softmax {
                    softmax_rows(&mut out[span], layer.outputs);
                }
            }
        }
    }
}

/// Puts a [`DirectDense`] in place of every f32 matrix product of `model` of a row of
/// known length (the first axis is the batch, the others are summed over) with a constant
/// matrix, folding in the constant bias added to it and the ReLU after that where they
/// alone read it. Returns how many it replaced.
pub(crate) fn replace_dense(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(einsum) = node.op_as::<EinSum>() else {
            continue;
        };
        if node.inputs.len() != 2 {
            continue;
        }
        let inputs = model.node_input_facts(id)?;
        let layer = layer(einsum, inputs[0], inputs[1]);
        drop(inputs);
        let Some(mut layer) = layer else {
            continue;
        };
        let x = node.inputs[0];
        let mut last = id;
        if let Some((add, bias)) = constant_after(model, last, "Add")? {
            let fits = bias.rank() <= 2
                && bias.shape().iter().rev().skip(1).all(|&d| d == 1)
                && (bias.len() == 1 || bias.len() == layer.outputs);
            if fits && let Ok(bias) = bias.cast_to::<f32>() {
                let bias = bias.try_as_plain_ram()?;
                let bias = bias.as_slice::<f32>()?;
                for (o, b) in layer.weights.bias[..layer.outputs].iter_mut().enumerate() {
                    *b = bias[if bias.len() == 1 { 0 } else { o }];
                }
                last = add;
            }
        }
        if let Some(relu) = relu_after(model, last)? {
            layer.weights.relu = true;
            last = relu;
        }
        let op = DirectDense {
            layers: Arc::new([layer]),
        };
        replace_run(model, id, last, &[x], op)?;
        replaced += 1;
    }
    chain(model)?;
    fold_softmax(model)?;
    Ok(replaced)
}

/// Folds into each [`DirectDense`] the softmax over its output's columns (the last axis)
/// that alone reads it, so that each pass of rows leaves the op as probabilities while it
/// is in cache.
fn fold_softmax(model: &mut TypedModel) -> TractResult<()> {
    // Replacements are added at the end, past the nodes this loop visits.
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(op) = node.op_as::<DirectDense>() else {
            continue;
        };
        let Some(next) = sole_reader(model, id)? else {
            continue;
        };
        let rank = node.outputs[0].fact.rank();
        let over_columns = next
            .op_as::<Softmax>()
            .is_some_and(|s| over_last_axis(s, rank));
        if !over_columns {
            continue;
        }
        let mut layers = op.layers.to_vec();
        if let Some(last) = layers.last_mut() {
            last.softmax = true;
        }
        let (input, next_id) = (node.inputs[0], next.id);
        let op = DirectDense {
            layers: layers.into(),
        };
        replace_run(model, id, next_id, &[input], op)?;
    }
    Ok(())
}

/// Merges each [`DirectDense`] into the one before it where it alone reads that one's
/// output (not a model output) as its rows.
fn chain(model: &mut TypedModel) -> TractResult<()> {
    // Merged nodes are added at the end, where this loop still reaches them.
    let mut id = 0;
    while id < model.nodes().len() {
        let node = model.node(id);
        let Some(op) = node.op_as::<DirectDense>() else {
            id += 1;
            continue;
        };
        let next = sole_reader(model, id)?;
        let next_op = next.and_then(|n| n.op_as::<DirectDense>());
        let joins = next_op.is_some_and(|next_op| {
            let width = op.layers[op.layers.len() - 1].outputs;
            next_op.layers[0].inputs == width
        });
        let (Some(next), Some(next_op), true) = (next, next_op, joins) else {
            id += 1;
            continue;
        };
        // Layers are built once and shared by plans; a merged op holds copies.
        let layers: Vec<Layer> = op
            .layers
            .iter()
            .chain(next_op.layers.iter())
            .cloned()
            .collect();
        let (input, next_id) = (node.inputs[0], next.id);
        let op = DirectDense {
            layers: layers.into(),
        };
        replace_run(model, id, next_id, &[input], op)?;
        id += 1;
    }
    Ok(())
}

/// The layer of `einsum` (of `x` by the constant `w`, with a zero bias), or `None` where
/// [`DirectDense`] cannot run it. The product must read `x` as rows: its first axis may be
/// kept (the rows), every other axis is summed over or has length 1, and `w` has the summed
/// axes in `x`'s order then the output column, or the column then those axes. The output's
/// last axis is the column; its others are the rows or of length 1.
fn layer(einsum: &EinSum, x: &TypedFact, w: &TypedFact) -> Option<Layer> {
    let f32_type = f32::datum_type();
    let w = w.konst.as_ref()?;
    if einsum.q_params.is_some()
        || einsum.operating_dt != f32_type
        || x.datum_type != f32_type
        || w.datum_type() != f32_type
    {
        return None;
    }
    let (ins, outs) = einsum.axes.to_strs();
    if ins.len() != 2 || outs.len() != 1 {
        return None;
    }
    let chars = |s: &str| s.chars().collect::<Vec<_>>();
    let (a, b, c) = (chars(&ins[0]), chars(&ins[1]), chars(&outs[0]));
    let column = *c.last()?;
    if a.contains(&column) || x.rank() != a.len() {
        return None;
    }
    // The rows: `x`'s first axis, where the output keeps it.
    let row = a.first().filter(|r| c.contains(r)).copied();
    let mut summed = Vec::new();
    for (axis, dim) in a
        .iter()
        .zip(x.shape.iter())
        .skip(usize::from(row.is_some()))
    {
        if b.contains(axis) {
            summed.push(*axis);
        } else if dim.to_usize().ok() != Some(1) || c.contains(axis) {
            return None;
        }
    }
    let others_are_rows = c[..c.len() - 1]
        .iter()
        .all(|axis| Some(*axis) == row || !a.contains(axis) && !b.contains(axis));
    if !others_are_rows || b.len() != summed.len() + 1 {
        return None;
    }
    let column_last = b[..summed.len()] == *summed && b[summed.len()] == column;
    let column_first = b[0] == column && b[1..] == *summed;
    if !(column_last || column_first) {
        return None;
    }
    let skip = usize::from(row.is_some());
    let inputs = x
        .shape
        .iter()
        .skip(skip)
        .map(|d| d.to_usize().ok())
        .product::<Option<usize>>()?;
    let outputs = if column_last {
        w.shape()[summed.len()]
    } else {
        w.shape()[0]
    };
    if inputs == 0 || outputs == 0 || w.len() != inputs * outputs {
        return None;
    }
    let w = w.try_as_plain_ram().ok()?;
    let w = w.as_slice::<f32>().ok()?;
    let m = outputs.div_ceil(LANES) * LANES;
    let mut rows = vec![0f32; inputs * m];
    for k in 0..inputs {
        for o in 0..outputs {
            rows[k * m + o] = if column_last {
                w[k * outputs + o]
            } else {
                w[o * inputs + k]
            };
        }
    }
    let shape = c
        .iter()
        .map(|axis| {
            if *axis == column {
                Axis::Column
            } else if Some(*axis) == row {
                Axis::Rows
            } else {
                Axis::One
            }
        })
        .collect();
    Some(Layer {
        inputs,
        outputs,
        shape,
        taps: (0..inputs).map(|k| Tap { offset: k, row: k }).collect(),
        weights: Weights::new(&rows, vec![0.0; m]),
        softmax: false,
    })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tract_onnx::tract_core::ops::math;
    use tract_onnx::tract_core::ops::nn::SoftmaxKind;

    use super::*;

    fn tensor(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
        let values: Vec<f32> = (0..shape.iter().product())
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Tensor::from_shape(shape, &values).unwrap()
    }

    /// `x` (of `x_shape`) by a random `w` through the einsum `expr`, then optionally a bias
    /// and a ReLU.
    fn model(
        rng: &mut ChaCha8Rng,
        expr: &str,
        x_shape: &[usize],
        w_shape: &[usize],
        bias: Option<usize>,
        relu: bool,
    ) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(x_shape)).unwrap();
        let w = model.add_const("w", tensor(rng, w_shape)).unwrap();
        let op = EinSum::new(expr.parse().unwrap(), f32::datum_type());
        let mut y = model.wire_node("product", op, &[x, w]).unwrap();
        if let Some(len) = bias {
            let rank = model.outlet_fact(y[0]).unwrap().rank();
            let mut shape = vec![1; rank - 1];
            shape.push(len);
            let b = model.add_const("b", tensor(rng, &shape)).unwrap();
            y = model.wire_node("bias", math::add(), &[y[0], b]).unwrap();
        }
        if relu {
            let rank = model.outlet_fact(y[0]).unwrap().rank();
            let zero = Tensor::zero::<f32>(&vec![1; rank]).unwrap();
            let z = model.add_const("zero", zero).unwrap();
            y = model.wire_node("relu", math::max(), &[y[0], z]).unwrap();
        }
        model.select_output_outlets(&y).unwrap();
        model
    }

    fn run(model: TypedModel, x: &Tensor) -> (Vec<usize>, Vec<f32>) {
        let plan = model.into_runnable().unwrap();
        let out = plan.run(tvec![x.clone().into_tvalue()]).unwrap();
        let plain = out[0].try_as_plain_ram().unwrap();
        (
            out[0].shape().to_vec(),
            plain.as_slice::<f32>().unwrap().to_vec(),
        )
    }

    #[test]
    fn dense_layers_compute_what_tracts_products_compute() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // (einsum, x's shape, w's shape, output columns): rows by a matrix, with the column
        // last or first in the matrix, summed axes of two, length-1 axes, one row without a
        // row axis, and output widths around the kernel's 16, 32 and 64 columns.
        let cases: &[(&str, &[usize], &[usize], usize)] = &[
            ("mk,kn->mn", &[37, 20], &[20, 70], 70),
            ("mk,kn->mn", &[1, 64], &[64, 10], 10),
            ("mk,nk->mn", &[13, 9], &[33, 9], 33),
            ("mak,akn->mn", &[25, 3, 5], &[3, 5, 128], 128),
            ("mkba,kn->mn", &[7, 12, 1, 1], &[12, 16], 16),
            ("mak,akn->n", &[1, 4, 4], &[4, 4, 48], 48),
            ("k,kn->mn", &[30], &[30, 5], 5),
        ];
        for (case, &(expr, x_shape, w_shape, columns)) in cases.iter().enumerate() {
            for (bias, relu) in [
                (None, false),
                (Some(columns), false),
                (Some(1), true),
                (None, true),
            ] {
                let seed = rng.random();
                let build = || {
                    model(
                        &mut ChaCha8Rng::seed_from_u64(seed),
                        expr,
                        x_shape,
                        w_shape,
                        bias,
                        relu,
                    )
                };
                let x = tensor(&mut rng, x_shape);
                let (want_shape, want) = run(build(), &x);
                let mut replaced = build();
                assert_eq!(replace_dense(&mut replaced).unwrap(), 1, "{expr}");
                let replaced = replaced.into_decluttered().unwrap();
                // The bias and ReLU went into the layer.
                let ops: Vec<_> = replaced.nodes().iter().map(|n| n.op().name()).collect();
                assert!(
                    ops.iter()
                        .all(|o| o != "Add" && o != "Max" && o != "EinSum"),
                    "{ops:?}"
                );
                let (shape, got) = run(replaced, &x);
                assert_eq!(shape, want_shape, "case {case}");
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() < 1e-5,
                        "case {case} {bias:?} {relu}, {i}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_softmax_over_the_columns_is_folded_in_and_one_over_rows_is_not() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // Ten columns (padded to 16 in the kernel), rows across several passes, and a row
        // with a NaN input, which spoils that row's probabilities only, as in tract.
        for (axis, folded) in [(1, true), (0, false)] {
            let seed = rng.random();
            let build = || {
                let mut model = model(
                    &mut ChaCha8Rng::seed_from_u64(seed),
                    "mk,kn->mn",
                    &[300, 20],
                    &[20, 10],
                    Some(10),
                    false,
                );
                let y = model.output_outlets().unwrap()[0];
                let op = Softmax {
                    axes: tvec![axis],
                    quant_output_dt: None,
                    kind: SoftmaxKind::Softmax,
                };
                let y = model.wire_node("softmax", op, &[y]).unwrap();
                model.select_output_outlets(&y).unwrap();
                model
            };
            let mut x = tensor(&mut rng, &[300, 20]);
            x.try_as_plain_ram_mut()
                .unwrap()
                .as_slice_mut::<f32>()
                .unwrap()[7 * 20 + 3] = f32::NAN;
            let (_, want) = run(build(), &x);
            let mut replaced = build();
            assert_eq!(replace_dense(&mut replaced).unwrap(), 1);
            let replaced = replaced.into_decluttered().unwrap();
            let ops: Vec<_> = replaced.nodes().iter().map(|n| n.op().name()).collect();
            assert_eq!(ops.iter().all(|o| o != "Softmax"), folded, "{ops:?}");
            let (_, got) = run(replaced, &x);
            // Over columns, only row 7's outputs are NaN (in tract's result too).
            let nans = want.iter().filter(|w| w.is_nan()).count();
            assert_eq!(nans, if axis == 1 { 10 } else { want.len() });
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() < 1e-6 || g.is_nan() && w.is_nan(),
                    "axis {axis}, {i}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn other_products_are_left_to_tract() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        // Summing over the first axis; a matrix that is not constant; rows on a later axis.
        let mut first_axis = model(&mut rng, "km,kn->mn", &[6, 4], &[6, 8], None, false);
        assert_eq!(replace_dense(&mut first_axis).unwrap(), 0);
        let mut later_rows = model(&mut rng, "km,kn->mn", &[1, 4], &[1, 8], None, false);
        assert_eq!(replace_dense(&mut later_rows).unwrap(), 0);
        let mut variable = TypedModel::default();
        let x = variable.add_source("x", f32::fact([3, 4])).unwrap();
        let w = variable.add_source("w", f32::fact([4, 5])).unwrap();
        let op = EinSum::new("mk,kn->mn".parse().unwrap(), f32::datum_type());
        let y = variable.wire_node("product", op, &[x, w]).unwrap();
        variable.select_output_outlets(&y).unwrap();
        assert_eq!(replace_dense(&mut variable).unwrap(), 0);
    }

    #[test]
    fn a_chain_of_layers_becomes_one_op_and_computes_the_same() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        // Widths across the kernel's column blocks; 600 rows take several passes.
        let widths = [20, 70, 16, 33, 5];
        for rows in [1, 7, 600] {
            let build = |rng: &mut ChaCha8Rng| {
                let mut model = TypedModel::default();
                let mut y = model.add_source("x", f32::fact([rows, widths[0]])).unwrap();
                for (i, pair) in widths.windows(2).enumerate() {
                    let w = model.add_const(format!("w{i}"), tensor(rng, pair)).unwrap();
                    let op = EinSum::new("mk,kn->mn".parse().unwrap(), f32::datum_type());
                    y = model.wire_node(format!("product{i}"), op, &[y, w]).unwrap()[0];
                    let b = model
                        .add_const(format!("b{i}"), tensor(rng, &[1, pair[1]]))
                        .unwrap();
                    y = model
                        .wire_node(format!("bias{i}"), math::add(), &[y, b])
                        .unwrap()[0];
                    if i % 2 == 0 {
                        let zero = Tensor::zero::<f32>(&[1, 1]).unwrap();
                        let z = model.add_const(format!("zero{i}"), zero).unwrap();
                        y = model
                            .wire_node(format!("relu{i}"), math::max(), &[y, z])
                            .unwrap()[0];
                    }
                }
                model.select_output_outlets(&[y]).unwrap();
                model
            };
            let seed = rng.random();
            let x = tensor(&mut rng, &[rows, widths[0]]);
            let (want_shape, want) = run(build(&mut ChaCha8Rng::seed_from_u64(seed)), &x);
            let mut model = build(&mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(replace_dense(&mut model).unwrap(), 4);
            let model = model.into_decluttered().unwrap();
            let ops: Vec<_> = model
                .nodes()
                .iter()
                .map(|n| n.op().name().to_string())
                .collect();
            assert_eq!(ops, ["Source", "DirectDense"], "{rows} rows");
            let (shape, got) = run(model, &x);
            assert_eq!(shape, want_shape);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-4, "{rows} rows, {i}: {g} vs {w}");
            }
        }
    }
}
