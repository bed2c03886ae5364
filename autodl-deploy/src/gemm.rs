//! The kernel shared by [`DirectConv`](crate::conv::DirectConv) and
//! [`DirectDense`](crate::dense::DirectDense): rows of input values, each read at its own
//! base plus a list of offsets, times a matrix of weights held in registers 16 columns at a
//! time, plus a bias, then an optional ReLU. Three kernels: AVX-512, AVX2 with FMA, and a
//! portable loop, the fastest the CPU runs chosen per call.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;

/// Output channels per AVX-512 register.
pub(crate) const LANES: usize = 16;

/// One input value of a [`gemm`] row, and the row of weights it is multiplied by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tap {
    /// From the row's base, in the input.
    pub(crate) offset: usize,
    /// In [`Weights::rows`].
    pub(crate) row: usize,
}

/// The taps of a [`gemm`]'s rows, with how far they reach, found once when they are made
/// (a [`gemm`] checks its bounds against these instead of reading every tap).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Taps {
    list: Vec<Tap>,
    /// One past the largest offset, and one past the largest weight row (0 for no taps).
    reach: usize,
    rows: usize,
}

impl FromIterator<Tap> for Taps {
    fn from_iter<I: IntoIterator<Item = Tap>>(iter: I) -> Self {
        let list: Vec<Tap> = iter.into_iter().collect();
        let past = |f: fn(&Tap) -> usize| list.iter().map(f).max().map_or(0, |v| v + 1);
        let (reach, rows) = (past(|t| t.offset), past(|t| t.row));
        Taps { list, reach, rows }
    }
}

impl Taps {
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}

/// The right-hand side of a [`gemm`].
#[derive(Debug, Clone)]
pub(crate) struct Weights {
    /// The matrix of `K` rows of `m = bias.len()` columns (a multiple of [`LANES`]) in the
    /// kernel's column [`blocks`]: the block of columns `first..first + width` holds its `K`
    /// rows of `width` one after another from `first * K`, so a tile reads its weights as one
    /// stream rather than a piece of every `m`-long row (which, 1 KiB apart for 256 columns,
    /// fall into a quarter of the L1 cache's sets).
    packed: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    /// Whether results below zero are stored as zero.
    pub(crate) relu: bool,
}

impl Weights {
    /// The matrix `rows[k * m + o]`, with `m = bias.len()`, a multiple of [`LANES`]; no ReLU.
    pub(crate) fn new(rows: &[f32], bias: Vec<f32>) -> Self {
        let m = bias.len();
        assert!(m.is_multiple_of(LANES) && rows.len().is_multiple_of(m.max(1)));
        let k = rows.len() / m.max(1);
        let mut packed = Vec::with_capacity(rows.len());
        for (first, width) in blocks(m) {
            for row in rows.chunks_exact(m).take(k) {
                packed.extend_from_slice(&row[first..first + width]);
            }
        }
        Weights {
            packed,
            bias,
            relu: false,
        }
    }

    /// Rows of the matrix.
    fn k(&self) -> usize {
        self.packed.len() / self.bias.len().max(1)
    }

    /// The block of columns from `first`, `width` wide, as [`Weights::packed`] holds it.
    fn block(&self, first: usize, width: usize) -> &[f32] {
        let k = self.k();
        &self.packed[first * k..(first + width) * k]
    }
}

/// The kernel's column blocks of `m` columns, as `(first, width)`: widths of [`tiling`]'s
/// registers per row.
fn blocks(m: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut first = 0;
    std::iter::from_fn(move || {
        (first < m).then(|| {
            let width = tiling(m - first)[0] * LANES;
            first += width;
            (first - width, width)
        })
    })
}

/// Node `id`'s only reader, where `id`'s output is not a model output (so that the reader
/// can be folded into what replaces `id`).
pub(crate) fn sole_reader(model: &TypedModel, id: usize) -> TractResult<Option<&TypedNode>> {
    if model.outputs.contains(&OutletId::new(id, 0)) {
        return Ok(None);
    }
    model.single_succ(id)
}

/// Replaces nodes `first` to `last` (a run in which each node's [`sole_reader`] is the next)
/// by `op`, wired to `inputs` (outlets of nodes before the run) under `first`'s name.
pub(crate) fn replace_run(
    model: &mut TypedModel,
    first: usize,
    last: usize,
    inputs: &[OutletId],
    op: impl TypedOp,
) -> TractResult<()> {
    let mut patch = TypedModelPatch::default();
    let taps = patch.taps(model, inputs)?;
    let wire = patch.wire_node(model.node(first).name.clone(), op, &taps)?;
    patch.shunt_outside(model, OutletId::new(last, 0), wire[0])?;
    patch.apply(model)
}

/// Node `id`'s [`sole_reader`], where that is a binary op named `op` (tract's `"Add"`,
/// `"Max"`) of `id`'s output and a constant, whose output has `id`'s output's shape: the
/// reader's id and the constant.
pub(crate) fn constant_after(
    model: &TypedModel,
    id: usize,
    op: &str,
) -> TractResult<Option<(usize, Arc<Tensor>)>> {
    let Some(next) = sole_reader(model, id)? else {
        return Ok(None);
    };
    let named = next
        .op_as::<TypedBinOp>()
        .is_some_and(|bin| bin.0.name() == op);
    if !named
        || next.inputs.len() != 2
        || next.outputs[0].fact.shape != model.node(id).outputs[0].fact.shape
    {
        return Ok(None);
    }
    let Some(other) = next.inputs.iter().find(|i| i.node != id) else {
        return Ok(None);
    };
    let konst = model.outlet_fact(*other)?.konst.clone();
    Ok(konst.map(|k| (next.id, k)))
}

/// Node `id`'s only reader, where that is a ReLU (`max` with a constant zero of one element)
/// that [`constant_after`] accepts.
pub(crate) fn relu_after(model: &TypedModel, id: usize) -> TractResult<Option<usize>> {
    Ok(constant_after(model, id, "Max")?
        .filter(|(_, k)| k.len() == 1 && k.is_all_zero().unwrap_or(false))
        .map(|(next, _)| next))
}

/// `result[r * m + o] = bias[o] + Σ_t x[bases[r] + t.offset] · rows[t.row * m + o]` over the
/// `taps` `t`, for every row `r` of `bases`, with `m = bias.len()`, a multiple of [`LANES`];
/// then `max(0, ·)` if `weights.relu`.
pub(crate) fn gemm(x: &[f32], bases: &[usize], taps: &Taps, weights: &Weights, result: &mut [f32]) {
    gemm_on(Kernel::best(), x, bases, taps, weights, result);
}

/// The kernels of [`gemm`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kernel {
    /// 16-lane registers, 64, 32 or 16 columns of 6 to 12 rows.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// 8-lane registers with fused multiply-add, 16 columns of 6 rows.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Kernel {
    /// The fastest this CPU runs.
    fn best() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if vector::avx512::available() {
            return Kernel::Avx512;
        } else if vector::avx2::available() {
            return Kernel::Avx2;
        }
        Kernel::Portable
    }

    /// Every kernel this CPU runs.
    #[cfg(test)]
    fn all() -> Vec<Kernel> {
        let mut all = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if vector::avx2::available() {
                all.push(Kernel::Avx2);
            }
            if vector::avx512::available() {
                all.push(Kernel::Avx512);
            }
        }
        all
    }
}

/// [`gemm`] on `kernel`, which the CPU must run.
fn gemm_on(
    kernel: Kernel,
    x: &[f32],
    bases: &[usize],
    taps: &Taps,
    weights: &Weights,
    result: &mut [f32],
) {
    let m = weights.bias.len();
    assert!(m.is_multiple_of(LANES) && weights.packed.len().is_multiple_of(m.max(1)));
    assert!(result.len() == bases.len() * m);
    if bases.is_empty() {
        return;
    }
    if !taps.list.is_empty() {
        assert!(bases.iter().max().copied().unwrap_or(0) + taps.reach <= x.len());
        assert!(taps.rows * m <= weights.packed.len());
    }
    let taps = taps.list.as_slice();
    match kernel {
        Kernel::Portable => gemm_portable(x, bases, taps, weights, result),
        #[cfg(target_arch = "x86_64")]
        simd => vector::gemm(simd, x, bases, taps, weights, result),
    }
}

/// [`gemm`] in plain Rust: one output row and column block at a time, a multiply-add of a
/// block's weight row per tap.
fn gemm_portable(x: &[f32], bases: &[usize], taps: &[Tap], weights: &Weights, result: &mut [f32]) {
    let m = weights.bias.len();
    for (row, &base) in result.chunks_exact_mut(m).zip(bases) {
        row.copy_from_slice(&weights.bias);
        for (first, width) in blocks(m) {
            let block = weights.block(first, width);
            let row = &mut row[first..first + width];
            for tap in taps {
                let value = x[base + tap.offset];
                let w = &block[tap.row * width..(tap.row + 1) * width];
                for (r, w) in row.iter_mut().zip(w) {
                    *r += value * w;
                }
            }
        }
        if weights.relu {
            // As `max(0, NaN)` in onnxruntime: NaN stays.
            for r in row.iter_mut().filter(|r| **r < 0.0) {
                *r = 0.0;
            }
        }
    }
}

/// The kernel's tiles for the output columns from `first` of `m`: registers per row `V`, and
/// rows per tile `R`, then `R2` and `R4` for the last rows (`R` where more than `R2` rows are
/// left, `R2` where more than `R4`, else `R4`).
const fn tiling(left: usize) -> [usize; 4] {
    if left >= 4 * LANES {
        [4, 6, 4, 2]
    } else if left >= 2 * LANES {
        [2, 12, 6, 3]
    } else {
        [1, 12, 6, 3]
    }
}

/// The multiply-add slots a [`gemm`] of `rows` rows, `taps` taps and `m` columns takes on
/// the AVX-512 kernel: rows repeated to fill a tile count, and a tile of fewer than eight
/// registers counts as eight (its multiply-adds wait on each other's results).
pub(crate) fn cost(rows: usize, taps: usize, m: usize) -> usize {
    let mut slots = 0;
    for (first, _) in blocks(m) {
        let [v, r, r2, r4] = tiling(m - first);
        let mut left = rows;
        while left > 0 {
            let tile = if left > r2 {
                r
            } else if left > r4 {
                r2
            } else {
                r4
            };
            slots += (v * tile).max(8);
            left -= tile.min(left);
        }
    }
    slots * taps
}

/// Whether the runner should put [`DirectConv`](crate::conv::DirectConv) and
/// [`DirectDense`](crate::dense::DirectDense) in place of tract's convolutions and matrix
/// products: only where a vector kernel runs (elsewhere tract's own kernels were not
/// measured against the portable one).
pub(crate) fn worthwhile() -> bool {
    Kernel::best() != Kernel::Portable
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod vector {
    //! The intrinsics kernels of [`gemm`](super::gemm), AVX-512 and AVX2: the only unsafe
    //! code of the crate, raw vector loads and stores whose bounds `gemm_on` asserts before
    //! calling [`gemm`].
    use super::{Kernel, Tap, Weights};

    /// [`gemm`](super::gemm) on `kernel`, a vector kernel the CPU runs; the caller has
    /// checked the bounds.
    pub(super) fn gemm(
        kernel: Kernel,
        x: &[f32],
        bases: &[usize],
        taps: &[Tap],
        weights: &Weights,
        result: &mut [f32],
    ) {
        // SAFETY: `Kernel::best` and `Kernel::all` offer a kernel only where its
        // `available()` said the CPU has its features; `super::gemm_on` asserted that every
        // `bases[r] + taps[k].offset` is inside `x`, that every `taps[k].row` is a row of the
        // weights (rows of `m = weights.bias.len()`), and that `result` has `bases.len()`
        // rows of `m`.
        unsafe {
            match kernel {
                Kernel::Avx512 => avx512::gemm(x, bases, taps, weights, result),
                Kernel::Avx2 => avx2::gemm(x, bases, taps, weights, result),
                Kernel::Portable => unreachable!("the portable loop is not a vector kernel"),
            }
        }
    }

    pub(super) mod avx512 {
        //! 16-lane registers: 64, 32 or 16 columns of 6 to 12 rows.
        use std::arch::x86_64::*;

        use crate::gemm::{LANES, Tap, Weights, blocks};

        pub(in crate::gemm) fn available() -> bool {
            std::arch::is_x86_feature_detected!("avx512f")
        }

        /// See [`gemm`](crate::gemm::gemm); the CPU has AVX-512F and the bounds hold.
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn gemm(
            x: &[f32],
            bases: &[usize],
            taps: &[Tap],
            weights: &Weights,
            result: &mut [f32],
        ) {
            for (first, width) in blocks(weights.bias.len()) {
                let block = weights.block(first, width);
                // The tiles of `tiling`, whose widths `blocks` gave. SAFETY (for the three
                // calls): as in `gemm`; `block` holds the weight rows of columns
                // `first..first + width`, `width` each.
                unsafe {
                    match width / LANES {
                        4 => columns::<4, 6, 4, 2>(x, bases, taps, block, weights, result, first),
                        2 => columns::<2, 12, 6, 3>(x, bases, taps, block, weights, result, first),
                        _ => columns::<1, 12, 6, 3>(x, bases, taps, block, weights, result, first),
                    }
                }
            }
        }

        /// Output columns `first..first + V * LANES` of every row (whose weights `block` holds,
        /// `V * LANES` per weight row), `R` rows at a time; the last rows take a tile of `R2` or
        /// `R4` rows (about a half and a quarter of `R`) where that is enough.
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn columns<const V: usize, const R: usize, const R2: usize, const R4: usize>(
            x: &[f32],
            bases: &[usize],
            taps: &[Tap],
            block: &[f32],
            weights: &Weights,
            result: &mut [f32],
            first: usize,
        ) {
            let mut row = 0;
            while row < bases.len() {
                let rows = &bases[row..];
                let out = &mut result[row * weights.bias.len()..];
                // SAFETY: as in `gemm`; `tile` writes only the first rows of `out`.
                unsafe {
                    row += if rows.len() > R2 {
                        tile::<V, R>(x, rows, taps, block, weights, out, first)
                    } else if rows.len() > R4 {
                        tile::<V, R2>(x, rows, taps, block, weights, out, first)
                    } else {
                        tile::<V, R4>(x, rows, taps, block, weights, out, first)
                    };
                }
            }
        }

        /// Up to `R` rows (the first `R` of `rows`, repeating the last where fewer are left) times
        /// columns `first..first + V * LANES` (their weights in `block`), into the first rows of
        /// `out`; returns how many rows it wrote.
        #[inline(always)]
        unsafe fn tile<const V: usize, const R: usize>(
            x: &[f32],
            rows: &[usize],
            taps: &[Tap],
            block: &[f32],
            weights: &Weights,
            out: &mut [f32],
            first: usize,
        ) -> usize {
            let m = weights.bias.len();
            let valid = rows.len().min(R);
            let x = x.as_ptr();
            // SAFETY: every pointer below stays inside its slice, as `gemm` asserted.
            unsafe {
                let starts: [*const f32; R] =
                    std::array::from_fn(|r| x.add(rows[r.min(valid - 1)]));
                let mut acc = [[_mm512_setzero_ps(); V]; R];
                for v in 0..V {
                    let b = _mm512_loadu_ps(weights.bias.as_ptr().add(first + v * LANES));
                    for a in acc.iter_mut() {
                        a[v] = b;
                    }
                }
                let w = block.as_ptr();
                for tap in taps {
                    let w = w.add(tap.row * V * LANES);
                    let mut wv = [_mm512_setzero_ps(); V];
                    for (v, slot) in wv.iter_mut().enumerate() {
                        *slot = _mm512_loadu_ps(w.add(v * LANES));
                    }
                    for (a, start) in acc.iter_mut().zip(starts) {
                        let value = _mm512_set1_ps(*start.add(tap.offset));
                        for v in 0..V {
                            a[v] = _mm512_fmadd_ps(value, wv[v], a[v]);
                        }
                    }
                }
                if weights.relu {
                    // `max(0, NaN)` is NaN: the second operand is returned where either is NaN.
                    let zero = _mm512_setzero_ps();
                    for a in acc.iter_mut() {
                        for value in a.iter_mut() {
                            *value = _mm512_max_ps(zero, *value);
                        }
                    }
                }
                let out = out.as_mut_ptr().add(first);
                for (r, a) in acc.iter().enumerate().take(valid) {
                    for (v, value) in a.iter().enumerate() {
                        _mm512_storeu_ps(out.add(r * m + v * LANES), *value);
                    }
                }
            }
            valid
        }
    }

    pub(super) mod avx2 {
        //! For x86-64 CPUs without AVX-512: each column block 16 columns (two 8-lane registers)
        //! at a time for 6 rows, whose 12 accumulators, two weight registers and one broadcast
        //! fill the 16 registers.
        use std::arch::x86_64::*;

        use crate::gemm::{LANES, Tap, Weights, blocks};

        pub(in crate::gemm) fn available() -> bool {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        }

        /// See [`gemm`](crate::gemm::gemm); the CPU has AVX2 and FMA and the bounds hold.
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn gemm(
            x: &[f32],
            bases: &[usize],
            taps: &[Tap],
            weights: &Weights,
            result: &mut [f32],
        ) {
            let m = weights.bias.len();
            for (first, width) in blocks(m) {
                let block = weights.block(first, width);
                for sub in (0..width).step_by(LANES) {
                    let mut row = 0;
                    while row < bases.len() {
                        let rows = &bases[row..];
                        let out = &mut result[row * m..];
                        // A matrix of no rows (a convolution whose every tap reads only
                        // padding) has empty blocks; it has no taps, so `tile` reads no weights.
                        let w = block.get(sub..).unwrap_or_default();
                        let at = first + sub;
                        // SAFETY: as in `gemm`; `w` holds this block's weight rows from column
                        // `sub`, `width` apart, and `tile` writes only the first rows of `out`.
                        unsafe {
                            row += if rows.len() > 3 {
                                tile::<6>(x, rows, taps, w, width, weights, out, at)
                            } else if rows.len() > 1 {
                                tile::<3>(x, rows, taps, w, width, weights, out, at)
                            } else {
                                tile::<1>(x, rows, taps, w, width, weights, out, at)
                            };
                        }
                    }
                }
            }
        }

        /// Up to `R` rows (the first `R` of `rows`, repeating the last where fewer are left) times
        /// columns `first..first + LANES`, whose weight rows start `stride` apart in `w`, into the
        /// first rows of `out`; returns how many rows it wrote.
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn tile<const R: usize>(
            x: &[f32],
            rows: &[usize],
            taps: &[Tap],
            w: &[f32],
            stride: usize,
            weights: &Weights,
            out: &mut [f32],
            first: usize,
        ) -> usize {
            let m = weights.bias.len();
            let valid = rows.len().min(R);
            let x = x.as_ptr();
            // SAFETY: every pointer below stays inside its slice, as `gemm` asserted.
            unsafe {
                let starts: [*const f32; R] =
                    std::array::from_fn(|r| x.add(rows[r.min(valid - 1)]));
                let bias = weights.bias.as_ptr().add(first);
                let mut acc = [[_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8))]; R];
                let w = w.as_ptr();
                for tap in taps {
                    let w = w.add(tap.row * stride);
                    let (low, high) = (_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(8)));
                    for (a, start) in acc.iter_mut().zip(starts) {
                        let value = _mm256_broadcast_ss(&*start.add(tap.offset));
                        a[0] = _mm256_fmadd_ps(value, low, a[0]);
                        a[1] = _mm256_fmadd_ps(value, high, a[1]);
                    }
                }
                if weights.relu {
                    // `max(0, NaN)` is NaN: the second operand is returned where either is NaN.
                    let zero = _mm256_setzero_ps();
                    for a in acc.iter_mut() {
                        a[0] = _mm256_max_ps(zero, a[0]);
                        a[1] = _mm256_max_ps(zero, a[1]);
                    }
                }
                let out = out.as_mut_ptr().add(first);
                for (r, a) in acc.iter().enumerate().take(valid) {
                    _mm256_storeu_ps(out.add(r * m), a[0]);
                    _mm256_storeu_ps(out.add(r * m + 8), a[1]);
                }
            }
            valid
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// `gemm`'s definition, in f64, with the sum of the terms' magnitudes (what f32
    /// rounding error scales with), for `weights` made from `rows`.
    fn gemm_reference(
        x: &[f32],
        bases: &[usize],
        taps: &[Tap],
        rows: &[f32],
        weights: &Weights,
    ) -> Vec<(f64, f64)> {
        let m = weights.bias.len();
        let mut out = Vec::new();
        for &base in bases {
            for o in 0..m {
                let terms = taps
                    .iter()
                    .map(|t| x[base + t.offset] as f64 * rows[t.row * m + o] as f64);
                let sum = terms.clone().sum::<f64>() + weights.bias[o] as f64;
                let magnitude = terms.map(f64::abs).sum::<f64>() + weights.bias[o].abs() as f64;
                out.push((if weights.relu { sum.max(0.0) } else { sum }, magnitude));
            }
        }
        out
    }

    #[test]
    fn every_kernel_computes_the_definition_for_every_tile_shape() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // Every column block (64, 32, 16 and their sums) and row counts on both sides of
        // each tile size, so every tail is taken.
        for m in [16, 32, 48, 64, 80, 96, 112, 128] {
            for rows in [1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 25, 40] {
                // Short tap lists, and long ones (a 5×5 kernel over 32 channels has 800).
                let k = if rows % 2 == 0 {
                    rng.random_range(1..60)
                } else {
                    rng.random_range(90..900)
                };
                let weight_rows = rng.random_range(1..60);
                let x = random(&mut rng, 300);
                let bases: Vec<usize> = (0..rows).map(|_| rng.random_range(0..150)).collect();
                let taps: Taps = (0..k)
                    .map(|_| Tap {
                        offset: rng.random_range(0..150),
                        row: rng.random_range(0..weight_rows),
                    })
                    .collect();
                let matrix = random(&mut rng, weight_rows * m);
                let bias = random(&mut rng, m);
                let weights = Weights {
                    relu: rng.random(),
                    ..Weights::new(&matrix, bias)
                };
                let want = gemm_reference(&x, &bases, &taps.list, &matrix, &weights);
                for kernel in Kernel::all() {
                    let mut got = vec![f32::NAN; rows * m];
                    gemm_on(kernel, &x, &bases, &taps, &weights, &mut got);
                    for (i, (g, (w, magnitude))) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (*g as f64 - w).abs() < 4e-7 * magnitude.max(1.0),
                            "{kernel:?}, m {m}, rows {rows}, k {k}, element {i}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_fused_relu_keeps_nan() {
        let weights = Weights {
            relu: true,
            ..Weights::new(&[1.0; 16], vec![-1.0; 16])
        };
        let taps: Taps = [Tap { offset: 0, row: 0 }].into_iter().collect();
        for (x, want) in [(f32::NAN, f32::NAN), (0.5, 0.0), (3.0, 2.0)] {
            for kernel in Kernel::all() {
                let mut out = vec![0.0; 16];
                gemm_on(kernel, &[x], &[0], &taps, &weights, &mut out);
                let got = out[3];
                assert!(
                    got == want || (got.is_nan() && want.is_nan()),
                    "{kernel:?}, {x}: {got}"
                );
            }
        }
    }

    #[test]
    fn a_matrix_of_no_rows_gives_the_bias_on_every_kernel() {
        // A convolution whose taps all read padding keeps no weight rows; its output is the
        // bias. Blocks wider than one register group took the AVX2 kernel past its empty block.
        for m in [16, 32, 48, 64, 128] {
            let bias: Vec<f32> = (0..m).map(|o| o as f32 - 8.0).collect();
            let want: Vec<f32> = bias.iter().map(|b| b.max(0.0)).collect();
            let weights = Weights {
                relu: true,
                ..Weights::new(&[], bias.clone())
            };
            let taps: Taps = std::iter::empty().collect();
            for kernel in Kernel::all() {
                let mut out = vec![f32::NAN; 7 * m];
                gemm_on(
                    kernel,
                    &[0.0; 4],
                    &[0, 1, 2, 3, 0, 1, 2],
                    &taps,
                    &weights,
                    &mut out,
                );
                for row in out.chunks_exact(m) {
                    assert_eq!(row, want.as_slice(), "{kernel:?}, m {m}");
                }
            }
        }
    }

    /// A [`gemm`] of one row at base 5 of 10 inputs, through `tap`, with one weight row, on
    /// every kernel.
    fn gemm_one_row_through(tap: Tap) {
        let weights = Weights::new(&[0.0; 16], vec![0.0; 16]);
        let taps = [tap].into_iter().collect();
        for kernel in Kernel::all() {
            let mut out = vec![0.0; 16];
            gemm_on(kernel, &[0.0; 10], &[5], &taps, &weights, &mut out);
        }
    }

    #[test]
    fn gemm_reads_up_to_the_last_input_and_weight_row() {
        gemm_one_row_through(Tap { offset: 4, row: 0 });
    }

    #[test]
    #[should_panic]
    fn gemm_refuses_offsets_beyond_the_input() {
        gemm_one_row_through(Tap { offset: 5, row: 0 });
    }

    #[test]
    #[should_panic]
    fn gemm_refuses_weight_rows_beyond_the_weights() {
        gemm_one_row_through(Tap { offset: 0, row: 1 });
    }
}
