//! A direct convolution for small images and signals, put in place of tract's in the
//! runner's plans on CPUs with AVX-512.
//!
//! tract 0.23 lowers a convolution to a padding op, a lazy im2col and a matrix product whose
//! packing reads the im2col through a callback per panel. On the search space's default CNN
//! for 8×8 images (three 5×5 convolutions over 8×8, 4×4 and 2×2 maps) the three convolutions
//! and their padding took 45 of a call's 52 µs: the first, 51 k multiply-adds, took 8 µs.
//!
//! This op computes `out[n, o, p] = bias[o] + Σ_k w[o, k] · x_pad[n, base(p) + offset(k)]`:
//! the input is copied once into a zero-padded buffer, and the kernel broadcasts each input
//! value straight from it (no im2col) against 64, 32 or 16 output channels held in AVX-512
//! registers, for 6 or 12 output positions at a time, over the positions of every image of
//! the batch. Taps that read only padding for every output position (a 5×5 kernel over a
//! 2×2 map with padding 2 has 16 such of 25) are dropped when the op is built.
//!
//! The arithmetic is the same sum in a different order: results agree with tract's
//! convolution to float rounding (the tests hold them to 1e-5 of an f64 reference).

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::conv::KernelFormat;
use tract_onnx::tract_core::ops::cnn::{Conv, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Output channels per AVX-512 register.
const LANES: usize = 16;

/// A convolution's geometry, with its weights packed for [`gemm`].
#[derive(Debug)]
struct Packed {
    /// Input channels and (height, width) of one image; a signal has height 1.
    channels: usize,
    size: [usize; 2],
    /// Leading padding and padded (height, width).
    pad_before: [usize; 2],
    padded: [usize; 2],
    /// Output channels, rounded up to a multiple of [`LANES`] in `weights` and `bias`.
    outputs: usize,
    outputs_padded: usize,
    /// Output (height, width).
    out_size: [usize; 2],
    /// Offset in one padded image of each output position's first tap.
    bases: Vec<usize>,
    /// Offset from a position's first tap of each kept (channel, tap), in `weights`' order.
    offsets: Vec<usize>,
    /// `weights[k * outputs_padded + o]`: the weight of kept (channel, tap) `k` for output `o`.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

/// The op put in place of a [`Conv`]; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct DirectConv {
    packed: Arc<Packed>,
}

impl PartialEq for DirectConv {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.packed, &other.packed)
    }
}

impl Eq for DirectConv {}

impl Op for DirectConv {
    fn name(&self) -> StaticName {
        "DirectConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let p = &self.packed;
        Ok(vec![format!(
            "{} -> {} channels, {:?} -> {:?}, {} of {} weights kept",
            p.channels,
            p.outputs,
            p.size,
            p.out_size,
            p.offsets.len(),
            p.channels * p.bases.len().max(1),
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for DirectConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let p = &*self.packed;
        let n_images = input.shape()[0];
        let mut out_shape: TVec<usize> = input.shape().into();
        out_shape[1] = p.outputs;
        let rank = out_shape.len();
        out_shape[rank - 1] = p.out_size[1];
        if rank == 4 {
            out_shape[2] = p.out_size[0];
        }
        let mut output = Tensor::zero::<f32>(&out_shape)?;
        {
            let x = input.try_as_plain_ram()?;
            let x = x.as_slice::<f32>()?;
            let mut out = output.try_as_plain_ram_mut()?;
            p.run(x, n_images, out.as_slice_mut::<f32>()?);
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for DirectConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let fact = inputs[0];
        ensure!(fact.datum_type == f32::datum_type());
        let mut shape: TVec<TDim> = fact.shape.iter().cloned().collect();
        let rank = shape.len();
        shape[1] = self.packed.outputs.into();
        shape[rank - 1] = self.packed.out_size[1].into();
        if rank == 4 {
            shape[2] = self.packed.out_size[0].into();
        }
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

impl Packed {
    /// Floats of one padded image.
    fn image_len(&self) -> usize {
        self.channels * self.padded[0] * self.padded[1]
    }

    /// Convolves `n_images` NC(H)W images of `x` into `out` (N, outputs, out positions).
    fn run(&self, x: &[f32], n_images: usize, out: &mut [f32]) {
        let in_len = self.channels * self.size[0] * self.size[1];
        let positions = self.bases.len();
        let out_len = self.outputs * positions;
        // Images per pass: enough positions to fill the kernel's tiles, few enough that the
        // padded images and results stay in the core's caches.
        let per_pass = (65_536 / self.image_len().max(1)).clamp(1, n_images.max(1));
        let mut padded = vec![0f32; per_pass * self.image_len()];
        let mut bases = Vec::with_capacity(per_pass * positions);
        let mut result = vec![0f32; per_pass * positions * self.outputs_padded];
        for first in (0..n_images).step_by(per_pass) {
            let count = per_pass.min(n_images - first);
            for (i, image) in x[first * in_len..(first + count) * in_len]
                .chunks_exact(in_len)
                .enumerate()
            {
                self.pad_into(image, &mut padded[i * self.image_len()..]);
            }
            bases.clear();
            for i in 0..count {
                bases.extend(self.bases.iter().map(|b| i * self.image_len() + b));
            }
            let result = &mut result[..count * positions * self.outputs_padded];
            gemm(
                &padded,
                &bases,
                &self.offsets,
                &self.weights,
                &self.bias,
                result,
            );
            let out = &mut out[first * out_len..(first + count) * out_len];
            for (i, image_out) in out.chunks_exact_mut(out_len).enumerate() {
                let rows = &result[i * positions * self.outputs_padded..];
                for (o, channel) in image_out.chunks_exact_mut(positions).enumerate() {
                    for (pos, value) in channel.iter_mut().enumerate() {
                        *value = rows[pos * self.outputs_padded + o];
                    }
                }
            }
        }
    }

    /// Copies one image into the inside of a padded image (whose border stays zero).
    fn pad_into(&self, image: &[f32], padded: &mut [f32]) {
        let [h, w] = self.size;
        let [hp, wp] = self.padded;
        for (c, channel) in image.chunks_exact(h * w).enumerate() {
            for (y, row) in channel.chunks_exact(w).enumerate() {
                let start = c * hp * wp + (y + self.pad_before[0]) * wp + self.pad_before[1];
                padded[start..start + w].copy_from_slice(row);
            }
        }
    }
}

/// Puts a [`DirectConv`] in place of every convolution of `model` that it can run: f32, one
/// group, NC(H)W data of known height and width, an OI(H)W constant kernel and a constant
/// bias, explicit or no padding. Returns how many it replaced.
pub(crate) fn replace_convs(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>() else {
            continue;
        };
        if node.inputs.len() != 3 {
            continue;
        }
        let inputs = model.node_input_facts(id)?;
        let packed = pack(conv, &inputs, &node.outputs[0].fact);
        drop(inputs);
        if let Some(packed) = packed {
            model.node_mut(id).op = Box::new(DirectConv {
                packed: Arc::new(packed),
            });
            replaced += 1;
        }
    }
    Ok(replaced)
}

/// The geometry and packed weights of `conv`, or `None` where [`DirectConv`] cannot run it.
fn pack(conv: &Conv, inputs: &[&TypedFact], output: &TypedFact) -> Option<Packed> {
    let data = inputs[0];
    let kernel = inputs[1].konst.as_ref()?;
    let bias = inputs[2].konst.as_ref()?;
    let spec = &conv.pool_spec;
    let f32_type = f32::datum_type();
    if conv.group != 1
        || conv.q_params.is_some()
        || conv.kernel_fmt != KernelFormat::OIHW
        || spec.data_format != DataFormat::NCHW
        || [
            data.datum_type,
            kernel.datum_type(),
            bias.datum_type(),
            output.datum_type,
        ]
        .iter()
        .any(|t| *t != f32_type)
    {
        return None;
    }
    let dims = |shape: &ShapeFact| -> Option<TVec<usize>> {
        shape.iter().skip(1).map(|d| d.to_usize().ok()).collect()
    };
    let (input_dims, output_dims) = (dims(&data.shape)?, dims(&output.shape)?);
    let n_spatial = input_dims.len().checked_sub(1)?;
    if !(1..=2).contains(&n_spatial) || output_dims.len() != input_dims.len() {
        return None;
    }
    let (before, after) = match &spec.padding {
        PaddingSpec::Valid => (tvec![0; n_spatial], tvec![0; n_spatial]),
        PaddingSpec::Explicit(b, a) | PaddingSpec::ExplicitOnnxPool(b, a, false) => {
            (b.clone(), a.clone())
        }
        _ => return None,
    };
    let ones = tvec![1; n_spatial];
    let strides = spec.strides.clone().unwrap_or_else(|| ones.clone());
    let dilations = spec.dilations.clone().unwrap_or(ones);
    let channels = input_dims[0];
    let outputs = output_dims[0];
    let mut kernel_dims: TVec<usize> = tvec![outputs, channels];
    kernel_dims.extend(spec.kernel_shape.iter().copied());
    if kernel.shape() != &*kernel_dims
        || [&before, &after, &strides, &dilations, &spec.kernel_shape]
            .iter()
            .any(|v| v.len() != n_spatial)
        || !(bias.len() == outputs || bias.len() == 1)
    {
        return None;
    }
    // Height and width; a signal is an image of height 1.
    let two = |v: &[usize], fill: usize| -> [usize; 2] {
        if v.len() == 2 {
            [v[0], v[1]]
        } else {
            [fill, v[0]]
        }
    };
    let size = two(&input_dims[1..], 1);
    let out_size = two(&output_dims[1..], 1);
    let (before, after) = (two(&before, 0), two(&after, 0));
    let (strides, dilations) = (two(&strides, 1), two(&dilations, 1));
    let taps = two(&spec.kernel_shape, 1);
    let padded = [
        size[0] + before[0] + after[0],
        size[1] + before[1] + after[1],
    ];
    // Which taps of each axis read the input (not only padding) for some output position.
    let mut useful = [vec![false; taps[0]], vec![false; taps[1]]];
    for a in 0..2 {
        let extent = dilations[a] * (taps[a] - 1) + 1;
        if padded[a] < extent || (padded[a] - extent) / strides[a] + 1 != out_size[a] {
            return None;
        }
        for (t, useful) in useful[a].iter_mut().enumerate() {
            *useful = (0..out_size[a]).any(|o| {
                let at = o * strides[a] + t * dilations[a];
                at >= before[a] && at < before[a] + size[a]
            });
        }
    }
    let outputs_padded = outputs.div_ceil(LANES) * LANES;
    let kernel = kernel.try_as_plain_ram().ok()?;
    let kernel = kernel.as_slice::<f32>().ok()?;
    let mut offsets = Vec::new();
    let mut weights = Vec::new();
    for c in 0..channels {
        for ty in (0..taps[0]).filter(|&t| useful[0][t]) {
            for tx in (0..taps[1]).filter(|&t| useful[1][t]) {
                offsets.push(
                    c * padded[0] * padded[1] + ty * dilations[0] * padded[1] + tx * dilations[1],
                );
                let tap = (c * taps[0] + ty) * taps[1] + tx;
                let row = (0..outputs_padded).map(|o| {
                    if o < outputs {
                        kernel[o * channels * taps[0] * taps[1] + tap]
                    } else {
                        0.0
                    }
                });
                weights.extend(row);
            }
        }
    }
    let bias = bias.try_as_plain_ram().ok()?;
    let bias = bias.as_slice::<f32>().ok()?;
    let bias = (0..outputs_padded)
        .map(|o| match (o < outputs, bias.len()) {
            (false, _) => 0.0,
            (true, 1) => bias[0],
            (true, _) => bias[o],
        })
        .collect();
    let bases = (0..out_size[0])
        .flat_map(|y| (0..out_size[1]).map(move |x| (y, x)))
        .map(|(y, x)| y * strides[0] * padded[1] + x * strides[1])
        .collect();
    Some(Packed {
        channels,
        size,
        pad_before: before,
        padded,
        outputs,
        outputs_padded,
        out_size,
        bases,
        offsets,
        weights,
        bias,
    })
}

/// `result[r * m + o] = bias[o] + Σ_k x[bases[r] + offsets[k]] · weights[k * m + o]` for every
/// row `r` of `bases`, with `m = bias.len()`, a multiple of [`LANES`].
fn gemm(
    x: &[f32],
    bases: &[usize],
    offsets: &[usize],
    weights: &[f32],
    bias: &[f32],
    result: &mut [f32],
) {
    let m = bias.len();
    assert!(m.is_multiple_of(LANES) && weights.len() == offsets.len() * m);
    assert!(result.len() == bases.len() * m);
    let reach =
        bases.iter().max().copied().unwrap_or(0) + offsets.iter().max().copied().unwrap_or(0);
    assert!(bases.is_empty() || offsets.is_empty() || reach < x.len());
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        avx512::gemm(x, bases, offsets, weights, bias, result);
        return;
    }
    gemm_portable(x, bases, offsets, weights, bias, result);
}

/// [`gemm`] in plain Rust: one output row at a time, a multiply-add of a weight row per tap.
fn gemm_portable(
    x: &[f32],
    bases: &[usize],
    offsets: &[usize],
    weights: &[f32],
    bias: &[f32],
    result: &mut [f32],
) {
    let m = bias.len();
    for (row, &base) in result.chunks_exact_mut(m).zip(bases) {
        row.copy_from_slice(bias);
        for (w, &offset) in weights.chunks_exact(m).zip(offsets) {
            let value = x[base + offset];
            for (r, w) in row.iter_mut().zip(w) {
                *r += value * w;
            }
        }
    }
}

/// Whether the runner should put [`DirectConv`] in place of tract's convolutions: only where
/// its AVX-512 kernel runs (elsewhere tract's own kernels were not measured against it).
pub(crate) fn worthwhile() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx512::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    //! The AVX-512 kernel of [`gemm`](super::gemm). The only unsafe code of the crate: raw
    //! vector loads and stores, whose bounds `gemm` asserts before calling.
    use std::arch::x86_64::*;

    use super::LANES;

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// See [`gemm`](super::gemm); callers have checked [`available`] and the bounds.
    pub(super) fn gemm(
        x: &[f32],
        bases: &[usize],
        offsets: &[usize],
        weights: &[f32],
        bias: &[f32],
        result: &mut [f32],
    ) {
        // SAFETY: `available()` said the CPU has AVX-512F; `super::gemm` asserted that every
        // `bases[r] + offsets[k]` is inside `x`, that `weights` has `offsets.len()` rows of
        // `bias.len()` and `result` `bases.len()` rows of `bias.len()`.
        unsafe { gemm_avx512(x, bases, offsets, weights, bias, result) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn gemm_avx512(
        x: &[f32],
        bases: &[usize],
        offsets: &[usize],
        weights: &[f32],
        bias: &[f32],
        result: &mut [f32],
    ) {
        let m = bias.len();
        let mut first = 0;
        while first < m {
            let left = m - first;
            // SAFETY (for the three calls): as in `gemm`; `first + V * LANES <= m`.
            unsafe {
                if left >= 4 * LANES {
                    columns::<4, 6, 3, 1>(x, bases, offsets, weights, bias, result, first);
                    first += 4 * LANES;
                } else if left >= 2 * LANES {
                    columns::<2, 12, 6, 3>(x, bases, offsets, weights, bias, result, first);
                    first += 2 * LANES;
                } else {
                    columns::<1, 12, 6, 3>(x, bases, offsets, weights, bias, result, first);
                    first += LANES;
                }
            }
        }
    }

    /// Output columns `first..first + V * LANES` of every row, `R` rows at a time; the last
    /// rows take a tile of `R2` or `R4` rows (about a half and a quarter of `R`) where that is
    /// enough.
    #[inline(always)]
    unsafe fn columns<const V: usize, const R: usize, const R2: usize, const R4: usize>(
        x: &[f32],
        bases: &[usize],
        offsets: &[usize],
        weights: &[f32],
        bias: &[f32],
        result: &mut [f32],
        first: usize,
    ) {
        let mut row = 0;
        while row < bases.len() {
            let rows = &bases[row..];
            // SAFETY: as in `gemm`; `tile` reads and writes only rows `row..row + rows.len()`.
            unsafe {
                let done = if rows.len() > R2 {
                    tile::<V, R>(x, rows, offsets, weights, bias, result, row, first)
                } else if rows.len() > R4 {
                    tile::<V, R2>(x, rows, offsets, weights, bias, result, row, first)
                } else {
                    tile::<V, R4>(x, rows, offsets, weights, bias, result, row, first)
                };
                row += done;
            }
        }
    }

    /// Up to `R` rows from `row` (the first `R` of `rows`, repeating the last where fewer are
    /// left) times columns `first..first + V * LANES`; returns how many rows it wrote.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const V: usize, const R: usize>(
        x: &[f32],
        rows: &[usize],
        offsets: &[usize],
        weights: &[f32],
        bias: &[f32],
        result: &mut [f32],
        row: usize,
        first: usize,
    ) -> usize {
        let m = bias.len();
        let valid = rows.len().min(R);
        let x = x.as_ptr();
        // SAFETY: every pointer below stays inside its slice, as `gemm` asserted.
        unsafe {
            let starts: [*const f32; R] = std::array::from_fn(|r| x.add(rows[r.min(valid - 1)]));
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            for v in 0..V {
                let b = _mm512_loadu_ps(bias.as_ptr().add(first + v * LANES));
                for a in acc.iter_mut() {
                    a[v] = b;
                }
            }
            let mut w = weights.as_ptr().add(first);
            for &offset in offsets {
                let mut wv = [_mm512_setzero_ps(); V];
                for (v, slot) in wv.iter_mut().enumerate() {
                    *slot = _mm512_loadu_ps(w.add(v * LANES));
                }
                for (a, start) in acc.iter_mut().zip(starts) {
                    let value = _mm512_set1_ps(*start.add(offset));
                    for v in 0..V {
                        a[v] = _mm512_fmadd_ps(value, wv[v], a[v]);
                    }
                }
                w = w.add(m);
            }
            let out = result.as_mut_ptr().add(row * m + first);
            for (r, a) in acc.iter().enumerate().take(valid) {
                for (v, value) in a.iter().enumerate() {
                    _mm512_storeu_ps(out.add(r * m + v * LANES), *value);
                }
            }
        }
        valid
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tract_onnx::tract_core::ops::cnn::PoolSpec;

    use super::*;

    fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// `gemm`'s definition, in f64.
    fn gemm_reference(
        x: &[f32],
        bases: &[usize],
        offsets: &[usize],
        weights: &[f32],
        bias: &[f32],
    ) -> Vec<f64> {
        let m = bias.len();
        let mut out = Vec::new();
        for &base in bases {
            for o in 0..m {
                let sum: f64 = offsets
                    .iter()
                    .enumerate()
                    .map(|(k, &off)| x[base + off] as f64 * weights[k * m + o] as f64)
                    .sum();
                out.push(sum + bias[o] as f64);
            }
        }
        out
    }

    #[test]
    fn both_kernels_compute_the_definition_for_every_tile_shape() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // Every column block (64, 32, 16 and their sums) and row counts on both sides of
        // each tile size, so every tail is taken.
        for m in [16, 32, 48, 64, 80, 96, 112, 128] {
            for rows in [1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 25, 40] {
                let k = rng.random_range(1..60);
                let x = random(&mut rng, 300);
                let bases: Vec<usize> = (0..rows).map(|_| rng.random_range(0..150)).collect();
                let offsets: Vec<usize> = (0..k).map(|_| rng.random_range(0..150)).collect();
                let weights = random(&mut rng, k * m);
                let bias = random(&mut rng, m);
                let want = gemm_reference(&x, &bases, &offsets, &weights, &bias);
                let mut fast = vec![f32::NAN; rows * m];
                gemm(&x, &bases, &offsets, &weights, &bias, &mut fast);
                let mut portable = vec![f32::NAN; rows * m];
                gemm_portable(&x, &bases, &offsets, &weights, &bias, &mut portable);
                for (name, got) in [("gemm", &fast), ("portable", &portable)] {
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (*g as f64 - w).abs() < 1e-5,
                            "{name}, m {m}, rows {rows}, k {k}, element {i}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic]
    fn gemm_refuses_offsets_beyond_the_input() {
        let mut out = vec![0.0; 16];
        gemm(&[0.0; 10], &[5], &[5], &[0.0; 16], &[0.0; 16], &mut out);
    }

    struct Geometry {
        channels: usize,
        outputs: usize,
        size: Vec<usize>,
        taps: Vec<usize>,
        strides: Vec<usize>,
        dilations: Vec<usize>,
        before: Vec<usize>,
        after: Vec<usize>,
    }

    impl Geometry {
        fn out_size(&self) -> Vec<usize> {
            (0..self.size.len())
                .map(|a| {
                    let extent = self.dilations[a] * (self.taps[a] - 1) + 1;
                    (self.size[a] + self.before[a] + self.after[a] - extent) / self.strides[a] + 1
                })
                .collect()
        }

        /// The convolution by its definition, in f64, one image at a time.
        fn reference(&self, x: &[f32], n: usize, kernel: &[f32], bias: &[f32]) -> Vec<f64> {
            let two = |v: &[usize], fill| {
                if v.len() == 2 {
                    [v[0], v[1]]
                } else {
                    [fill, v[0]]
                }
            };
            let (size, taps, out) = (two(&self.size, 1), two(&self.taps, 1), self.out_size());
            let out = two(&out, 1);
            let (s, d) = (two(&self.strides, 1), two(&self.dilations, 1));
            let pad = two(&self.before, 0);
            let mut result = Vec::new();
            for image in 0..n {
                for (o, &b) in bias.iter().enumerate() {
                    for oy in 0..out[0] {
                        for ox in 0..out[1] {
                            let mut sum = b as f64;
                            for c in 0..self.channels {
                                for ty in 0..taps[0] {
                                    for tx in 0..taps[1] {
                                        let iy = (oy * s[0] + ty * d[0]) as isize - pad[0] as isize;
                                        let ix = (ox * s[1] + tx * d[1]) as isize - pad[1] as isize;
                                        if iy < 0
                                            || ix < 0
                                            || iy as usize >= size[0]
                                            || ix as usize >= size[1]
                                        {
                                            continue;
                                        }
                                        let xi = ((image * self.channels + c) * size[0]
                                            + iy as usize)
                                            * size[1]
                                            + ix as usize;
                                        let wi =
                                            ((o * self.channels + c) * taps[0] + ty) * taps[1] + tx;
                                        sum += x[xi] as f64 * kernel[wi] as f64;
                                    }
                                }
                            }
                            result.push(sum);
                        }
                    }
                }
            }
            result
        }
    }

    #[test]
    fn packed_convolutions_match_the_definition() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut dropped = 0;
        for case in 0..80 {
            let rank = 1 + case % 2;
            let pick = |rng: &mut ChaCha8Rng, lo: usize, hi: usize| -> Vec<usize> {
                (0..rank).map(|_| rng.random_range(lo..=hi)).collect()
            };
            let g = Geometry {
                channels: rng.random_range(1..=9),
                outputs: rng.random_range(1..=70),
                size: pick(&mut rng, 1, 9),
                taps: pick(&mut rng, 1, 5),
                strides: pick(&mut rng, 1, 3),
                dilations: pick(&mut rng, 1, 2),
                before: pick(&mut rng, 0, 3),
                after: pick(&mut rng, 0, 3),
            };
            let fits = (0..rank)
                .all(|a| g.size[a] + g.before[a] + g.after[a] > g.dilations[a] * (g.taps[a] - 1));
            if !fits {
                continue;
            }
            let n = rng.random_range(1..=5);
            let mut kernel_shape = vec![g.outputs, g.channels];
            kernel_shape.extend(&g.taps);
            let kernel = random(&mut rng, kernel_shape.iter().product());
            let bias = random(&mut rng, g.outputs);
            let conv = Conv {
                pool_spec: PoolSpec {
                    data_format: DataFormat::NCHW,
                    kernel_shape: g.taps.iter().copied().collect(),
                    padding: PaddingSpec::Explicit(
                        g.before.iter().copied().collect(),
                        g.after.iter().copied().collect(),
                    ),
                    dilations: Some(g.dilations.iter().copied().collect()),
                    strides: Some(g.strides.iter().copied().collect()),
                    input_channels: g.channels,
                    output_channels: g.outputs,
                },
                kernel_fmt: KernelFormat::OIHW,
                group: 1,
                q_params: None,
            };
            let mut in_shape = vec![n, g.channels];
            in_shape.extend(&g.size);
            let mut out_shape = vec![n, g.outputs];
            out_shape.extend(g.out_size());
            let kernel_fact =
                TypedFact::try_from(Tensor::from_shape(&kernel_shape, &kernel).unwrap()).unwrap();
            let bias_fact =
                TypedFact::try_from(Tensor::from_shape(&[g.outputs], &bias).unwrap()).unwrap();
            let packed = pack(
                &conv,
                &[&f32::fact(&in_shape), &kernel_fact, &bias_fact],
                &f32::fact(&out_shape),
            )
            .expect("packs");
            let all_taps: usize = g.taps.iter().product::<usize>() * g.channels;
            dropped += all_taps - packed.offsets.len();
            let x = random(&mut rng, in_shape.iter().product());
            let mut got = vec![f32::NAN; out_shape.iter().product()];
            packed.run(&x, n, &mut got);
            let want = g.reference(&x, n, &kernel, &bias);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*a as f64 - b).abs() < 1e-5,
                    "case {case}, element {i}: {a} vs {b}"
                );
            }
        }
        // Some cases had taps that read only padding, and they were left out.
        assert!(dropped > 0);
    }

    #[test]
    fn grouped_or_symbolic_convolutions_are_left_to_tract() {
        let conv = |group| Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![3],
                padding: PaddingSpec::Valid,
                dilations: None,
                strides: None,
                input_channels: 2,
                output_channels: 2,
            },
            kernel_fmt: KernelFormat::OIHW,
            group,
            q_params: None,
        };
        let kernel =
            TypedFact::try_from(Tensor::from_shape(&[2, 2, 3], &[0.5f32; 12]).unwrap()).unwrap();
        let bias = TypedFact::try_from(Tensor::from_shape(&[2], &[0.0f32; 2]).unwrap()).unwrap();
        let input = f32::fact([1, 2, 8]);
        let output = f32::fact([1, 2, 6]);
        assert!(pack(&conv(1), &[&input, &kernel, &bias], &output).is_some());
        assert!(pack(&conv(2), &[&input, &kernel, &bias], &output).is_none());
        let length = TDim::Sym(SymbolScope::default().sym("L"));
        let symbolic = f32::fact(&[1.into(), 2.into(), length.clone()]);
        let symbolic_out = f32::fact(&[1.into(), 2.into(), length - 2]);
        assert!(pack(&conv(1), &[&symbolic, &kernel, &bias], &symbolic_out).is_none());
    }
}
