//! A softmax over short rows, put in place of tract's in the runner's plans.
//!
//! tract 0.23 runs a softmax over the last axis with one vector kernel per row when the row
//! length is a multiple of 4; other lengths (two classes, three, ten) take three kernel calls
//! per row, each copying the row's tail into a scratch buffer. On the default MLP's 1,024-row
//! batch (ten classes) that was 36 % of the call. This op subtracts each row's maximum, takes
//! the exponentials of the whole buffer in one vectorised loop (a polynomial, not libm's
//! `expf`, whose call per value was slower still than tract's kernels), and divides each row
//! by its sum: the MLP's batch went from 1.55 to 0.94 ms.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};

/// Softmax of f32 values over the last axis of a contiguous tensor.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub(crate) struct RowSoftmax;

impl Op for RowSoftmax {
    fn name(&self) -> StaticName {
        "RowSoftmax".into()
    }

    op_as_typed_op!();
}

impl EvalOp for RowSoftmax {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let mut output = input.into_tensor();
        let row_len = output.shape().last().copied().unwrap_or(1);
        let mut plain = output.try_as_plain_ram_mut()?;
        softmax_rows(plain.as_slice_mut::<f32>()?, row_len);
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for RowSoftmax {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// The softmax of each row of `row_len` values of `data`, in place. The exponentials are taken
/// over the whole buffer in one loop, which the compiler vectorises. A row with a NaN (or
/// +∞) comes out all NaN, as from onnxruntime.
pub(crate) fn softmax_rows(data: &mut [f32], row_len: usize) {
    if row_len == 0 {
        return;
    }
    for row in data.chunks_mut(row_len) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for x in row.iter_mut() {
            *x -= max;
        }
    }
    for x in data.iter_mut() {
        *x = exp_nonpositive(*x);
    }
    for row in data.chunks_mut(row_len) {
        let scale = row.iter().sum::<f32>().recip();
        for x in row.iter_mut() {
            *x *= scale;
        }
    }
}

/// exp(x) for x ≤ 0 (a value less its row's maximum): Cephes' `expf`, a degree-5 polynomial
/// in x − n·ln 2 times 2^n built in the exponent bits; relative error below 1e-6, and
/// exp(−87.3) ≈ 1.2e-38 for anything smaller. NaN stays NaN. Branch-free, so a loop of it
/// is vectorised.
fn exp_nonpositive(x: f32) -> f32 {
    let x = if x < -87.3 { -87.3 } else { x };
    // Rounded to nearest by adding and taking away 1.5·2^23 (|x·log2 e| < 2^22 here):
    // `round` would be a call per value on the baseline x86-64 target, and not vectorised.
    const SHIFT: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + SHIFT;
    let n = shifted - SHIFT;
    // ln 2 in two parts, so x − n·ln 2 is exact enough.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    // n is in −126..=0 here, so the exponent is normal. It is read as an integer from the
    // rounding's bits (SHIFT + n is exact, n in its low mantissa bits) rather than cast with
    // `as i32`, whose saturating, NaN-to-zero semantics kept the loop from being vectorised;
    // for a NaN, y is NaN whatever the power.
    let n_int = (shifted.to_bits() as i32).wrapping_sub(SHIFT.to_bits() as i32);
    y * f32::from_bits((n_int.wrapping_add(127) as u32) << 23)
}

/// Whether `op`, on an input of `rank` axes, is a plain (not log, not quantised) softmax over
/// the last axis: what [`softmax_rows`] computes.
pub(crate) fn over_last_axis(op: &Softmax, rank: usize) -> bool {
    op.kind == SoftmaxKind::Softmax
        && op.quant_output_dt.is_none()
        && rank > 0
        && *op.axes == [rank - 1]
}

/// Puts [`RowSoftmax`] in place of each f32 softmax over the last axis whose rows are not a
/// multiple of 4 long (those tract runs with its row kernel). Returns how many it replaced.
pub(crate) fn replace_short_row_softmax(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(op) = node.op_as::<Softmax>() else {
            continue;
        };
        let Some(&input) = node.inputs.first() else {
            continue;
        };
        let fact = model.outlet_fact(input)?;
        let rank = fact.rank();
        let row_len = fact.shape.last().and_then(|d| d.to_usize().ok());
        let short_rows = row_len.is_some_and(|n| !n.is_multiple_of(4));
        if over_last_axis(op, rank) && fact.datum_type == f32::datum_type() && short_rows {
            model.node_mut(id).op = Box::new(RowSoftmax);
            replaced += 1;
        }
    }
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exponential_is_within_a_millionth_of_f64s() {
        let mut worst = 0.0f64;
        for k in 0..=200_000 {
            let x = -87.0 * k as f64 / 200_000.0;
            let got = exp_nonpositive(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 1e-6, "largest relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1000.0) < 1.3e-38);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    #[test]
    fn rows_match_an_f64_softmax_and_a_nan_spoils_only_its_row() {
        let rows: [[f32; 3]; 4] = [
            [1000.0, 1001.0, 999.0],
            [-3.0, 0.5, 2.25],
            [-80.0, 0.0, 80.0],
            [0.1, f32::NAN, 0.3],
        ];
        let mut data: Vec<f32> = rows.iter().flatten().copied().collect();
        softmax_rows(&mut data, 3);
        for (row, got) in rows.iter().zip(data.chunks(3)).take(3) {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let e: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
            let total: f64 = e.iter().sum();
            for (g, w) in got.iter().zip(e.iter().map(|v| v / total)) {
                assert!((*g as f64 - w).abs() < 1e-6, "{row:?}: {g} vs {w}");
            }
        }
        assert!(data[9..].iter().all(|v| v.is_nan()));
        let mut one = [-3.5f32];
        softmax_rows(&mut one, 1);
        assert_eq!(one, [1.0]);
    }
}
