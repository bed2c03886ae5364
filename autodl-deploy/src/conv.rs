//! A direct convolution for small images and signals, put in place of tract's in the
//! runner's plans on CPUs with AVX-512 or AVX2.
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
//! 2×2 map with padding 2 has 16 such of 25) are dropped when the op is built. Beyond that,
//! output positions are grouped by the taps that read the input for them, and each group
//! runs with its own taps: a 5×5 kernel over a 4×4 map with padding 2 does 196 of its 400
//! multiplications per channel that way (it is chosen where each group still has enough
//! rows for the kernel's tiles, which on small batches it may not). A ReLU that alone reads
//! the convolution is applied as the results are stored, and a pool that alone reads those
//! pools the result rows, all channels at once, before they are put in NC(H)W order.
//!
//! The arithmetic is the same sum in a different order: results agree with tract's
//! convolution to float rounding (the tests hold them to 1e-5 of an f64 reference).

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::conv::KernelFormat;
use tract_onnx::tract_core::ops::cnn::{Conv, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

use crate::gemm::{LANES, Tap, Taps, Weights, gemm, replace_run, sole_reader};
use crate::pool::{WindowPool, Windows};

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
    /// The kept (channel, tap)s' weights, the bias, and whether a ReLU follows.
    weights: Weights,
    /// The pool folded in after the convolution (and its ReLU), if any: it reads the
    /// results as rows of channels, all channels at once.
    pool: Option<Arc<Windows>>,
    /// The output positions grouped three ways, finest first: by the taps that read the
    /// input on both axes, on the height axis only, and not at all (every kept tap for every
    /// position). A finer grouping skips more multiplications by padding but gives the
    /// kernel fewer rows at a time; [`Packed::grouping`] picks one per batch size.
    groupings: Vec<Vec<Class>>,
}

/// Output positions that read the input through the same taps.
#[derive(Debug, PartialEq)]
struct Class {
    positions: Vec<usize>,
    taps: Taps,
}

/// The op put in place of a [`Conv`]; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct DirectConv {
    packed: Arc<Packed>,
}

equal_when_shared!(DirectConv, packed);

impl Op for DirectConv {
    fn name(&self) -> StaticName {
        "DirectConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let p = &self.packed;
        Ok(vec![format!(
            "{} -> {} channels, {:?} -> {:?}, {} weight rows kept, {} position classes{}",
            p.channels,
            p.outputs,
            p.size,
            p.out_size,
            p.offsets.len(),
            p.groupings[0].len(),
            if p.weights.relu { ", relu" } else { "" },
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
        let size = p.final_size();
        out_shape[rank - 1] = size[1];
        if rank == 4 {
            out_shape[2] = size[0];
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
        let size = self.packed.final_size();
        shape[rank - 1] = size[1].into();
        if rank == 4 {
            shape[2] = size[0].into();
        }
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

impl Packed {
    /// The output's (height, width), after the pool if one is folded in.
    fn final_size(&self) -> [usize; 2] {
        match &self.pool {
            Some(w) if w.out_dims.len() == 2 => [w.out_dims[0], w.out_dims[1]],
            Some(w) => [1, w.out_dims[0]],
            None => self.out_size,
        }
    }

    /// Floats of one padded image.
    fn image_len(&self) -> usize {
        self.channels * self.padded[0] * self.padded[1]
    }

    /// Images per pass: enough positions to fill the kernel's tiles, few enough that the
    /// padded images (256 KiB) and the results (256 KiB) stay in the core's caches.
    fn per_pass(&self, n_images: usize) -> usize {
        let results = self.bases.len() * self.outputs_padded;
        (65_536 / self.image_len().max(results).max(1)).clamp(1, n_images.max(1))
    }

    /// Convolves `n_images` NC(H)W images of `x` into `out` (N, outputs, out positions).
    fn run(&self, x: &[f32], n_images: usize, out: &mut [f32]) {
        let classes = self.grouping(self.per_pass(n_images));
        self.run_grouped(x, n_images, out, classes);
    }

    /// [`run`](Self::run) through the given grouping of output positions.
    fn run_grouped(&self, x: &[f32], n_images: usize, out: &mut [f32], classes: &[Class]) {
        let in_len = self.channels * self.size[0] * self.size[1];
        let positions = self.bases.len();
        let final_positions = self.pool.as_ref().map_or(positions, |w| w.out_len);
        let out_len = self.outputs * final_positions;
        let mut row_of = vec![0; positions];
        let mut pooled = vec![0f32; self.outputs_padded];
        let per_pass = self.per_pass(n_images);
        let mut padded = vec![0f32; per_pass * self.image_len()];
        let mut bases = Vec::with_capacity(per_pass * positions);
        let mut result = vec![0f32; per_pass * positions * self.outputs_padded];
        let m = self.outputs_padded;
        for first in (0..n_images).step_by(per_pass) {
            let count = per_pass.min(n_images - first);
            for (i, image) in x[first * in_len..(first + count) * in_len]
                .chunks_exact(in_len)
                .enumerate()
            {
                self.pad_into(image, &mut padded[i * self.image_len()..]);
            }
            let out = &mut out[first * out_len..(first + count) * out_len];
            // Each class's rows (image-major) in turn; then, image by image (so that its
            // output stays in cache), into the images' NC(H)W maps.
            let mut start = 0;
            for class in classes {
                bases.clear();
                for i in 0..count {
                    let image = i * self.image_len();
                    bases.extend(class.positions.iter().map(|&p| image + self.bases[p]));
                }
                let rows = &mut result[start * m..(start + bases.len()) * m];
                gemm(&padded, &bases, &class.taps, &self.weights, rows);
                start += bases.len();
            }
            for (i, image_out) in out.chunks_exact_mut(out_len).enumerate() {
                // Where this image's row of each output position is in `result`.
                let mut start = 0;
                for class in classes {
                    let n = class.positions.len();
                    for (j, &p) in class.positions.iter().enumerate() {
                        row_of[p] = start + i * n + j;
                    }
                    start += count * n;
                }
                let row = |p: usize| &result[row_of[p] * m..(row_of[p] + 1) * m];
                for q in 0..final_positions {
                    let values = match &self.pool {
                        Some(windows) => {
                            windows.pool_rows(q, row, &mut pooled);
                            &pooled
                        }
                        None => row(q),
                    };
                    let column = image_out[q..].iter_mut().step_by(final_positions);
                    for (slot, value) in column.zip(&values[..self.outputs]) {
                        *slot = *value;
                    }
                }
            }
        }
    }

    /// The grouping of output positions with the least estimated kernel time for `images`
    /// images at a time.
    fn grouping(&self, images: usize) -> &[Class] {
        let m = self.outputs_padded;
        let cost = |classes: &[Class]| -> usize {
            classes
                .iter()
                .map(|c| crate::gemm::cost(images * c.positions.len(), c.taps.len(), m))
                .sum()
        };
        self.groupings
            .iter()
            .min_by_key(|classes| cost(classes))
            .map_or(&[], |classes| classes.as_slice())
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
/// bias, explicit or no padding. A ReLU (`max` with a constant zero) that alone reads the
/// convolution, and a [`WindowPool`] that alone reads that, are folded into it. Returns how
/// many it replaced.
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
        let Some(mut packed) = packed else {
            continue;
        };
        replaced += 1;
        let inputs = node.inputs.clone();
        let mut last = id;
        if let Some(relu) = crate::gemm::relu_after(model, last)? {
            packed.weights.relu = true;
            last = relu;
        }
        if let Some((pool, windows)) = pool_after(model, last)?
            && windows.in_len == packed.bases.len()
        {
            packed.pool = Some(windows);
            last = pool;
        }
        let op = DirectConv {
            packed: Arc::new(packed),
        };
        replace_run(model, id, last, &inputs, op)?;
    }
    Ok(replaced)
}

/// Node `id`'s [`sole_reader`], where that is a [`WindowPool`]: its id and windows.
fn pool_after(model: &TypedModel, id: usize) -> TractResult<Option<(usize, Arc<Windows>)>> {
    Ok(sole_reader(model, id)?.and_then(|next| {
        let pool = next.op_as::<WindowPool>()?;
        Some((next.id, pool.windows.clone()))
    }))
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
    // The (tap row, tap column) of each kept weight row.
    let mut kept = Vec::new();
    for c in 0..channels {
        for ty in (0..taps[0]).filter(|&t| useful[0][t]) {
            for tx in (0..taps[1]).filter(|&t| useful[1][t]) {
                kept.push([ty, tx]);
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
    // Whether tap `t` of axis `a` reads the input at output position `o` of that axis.
    let reads = |a: usize, o: usize, t: usize| {
        let at = o * strides[a] + t * dilations[a];
        at >= before[a] && at < before[a] + size[a]
    };
    let mut groupings: Vec<Vec<Class>> = Vec::new();
    for fineness in 0..3 {
        // A position's class: the (tap row, tap column) pairs it reads, as far as this
        // grouping tells them apart.
        let key = |y: usize, x: usize| -> Vec<bool> {
            kept.iter()
                .map(|&[ty, tx]| {
                    fineness == 2 || (reads(0, y, ty) && (fineness == 1 || reads(1, x, tx)))
                })
                .collect()
        };
        let mut keys: Vec<Vec<bool>> = Vec::new();
        let mut classes: Vec<Class> = Vec::new();
        for y in 0..out_size[0] {
            for x in 0..out_size[1] {
                let k = key(y, x);
                let position = y * out_size[1] + x;
                if let Some(i) = keys.iter().position(|known| *known == k) {
                    classes[i].positions.push(position);
                    continue;
                }
                let taps = (0..offsets.len())
                    .filter(|&row| k[row])
                    .map(|row| Tap {
                        offset: offsets[row],
                        row,
                    })
                    .collect();
                keys.push(k);
                classes.push(Class {
                    positions: vec![position],
                    taps,
                });
            }
        }
        if groupings.last() != Some(&classes) {
            groupings.push(classes);
        }
    }
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
        weights: Weights::new(&weights, bias),
        pool: None,
        groupings,
    })
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
        let mut most_groupings = 0;
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
            let want = g.reference(&x, n, &kernel, &bias);
            // Every grouping of the output positions, and the one `run` picks.
            let groupings = packed.groupings.iter().map(|c| c.as_slice());
            for (grouping, classes) in groupings.chain([packed.grouping(n)]).enumerate() {
                let mut got = vec![f32::NAN; out_shape.iter().product()];
                packed.run_grouped(&x, n, &mut got, classes);
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*a as f64 - b).abs() < 1e-5,
                        "case {case}, grouping {grouping}, element {i}: {a} vs {b}"
                    );
                }
            }
            most_groupings = most_groupings.max(packed.groupings.len());
        }
        // Some cases had taps that read only padding, and they were left out; some had
        // three distinct groupings of their positions.
        assert!(dropped > 0);
        assert_eq!(most_groupings, 3);
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

    /// A model of a 2D convolution (5×5 kernel, padding 2) over `shape`, then a ReLU if
    /// `relu`, then a 2×2 max pool, a padded 3×3 average pool or no pool.
    fn conv_model(
        seed: u64,
        shape: [usize; 4],
        outputs: usize,
        relu: bool,
        pool: usize,
    ) -> TypedModel {
        use tract_onnx::tract_core::ops::cnn::{MaxPool, SumPool};
        use tract_onnx::tract_core::ops::math;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).unwrap();
        let k_shape = [outputs, shape[1], 5, 5];
        let kernel =
            Tensor::from_shape(&k_shape, &random(&mut rng, k_shape.iter().product())).unwrap();
        let k = model.add_const("k", kernel).unwrap();
        let bias = Tensor::from_shape(&[outputs], &random(&mut rng, outputs)).unwrap();
        let b = model.add_const("b", bias).unwrap();
        let spec = |kernel: usize, stride: usize, pad: usize, channels: usize| PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![kernel, kernel],
            padding: PaddingSpec::Explicit(tvec![pad, pad], tvec![pad, pad]),
            dilations: None,
            strides: Some(tvec![stride, stride]),
            input_channels: channels,
            output_channels: channels,
        };
        let conv = Conv {
            pool_spec: PoolSpec {
                output_channels: outputs,
                ..spec(5, 1, 2, shape[1])
            },
            kernel_fmt: KernelFormat::OIHW,
            group: 1,
            q_params: None,
        };
        let mut y = model.wire_node("conv", conv, &[x, k, b]).unwrap();
        if relu {
            let zero = model
                .add_const("zero", Tensor::zero::<f32>(&[1, 1, 1, 1]).unwrap())
                .unwrap();
            y = model.wire_node("relu", math::max(), &[y[0], zero]).unwrap();
        }
        if pool == 1 {
            let op = MaxPool {
                pool_spec: spec(2, 2, 0, outputs),
                with_index_outputs: None,
            };
            y = model.wire_node("pool", op, &y).unwrap();
        } else if pool == 2 {
            let op = SumPool {
                pool_spec: spec(3, 1, 1, outputs),
                count_include_pad: false,
                normalize: true,
            };
            y = model.wire_node("pool", op, &y).unwrap();
        }
        model.select_output_outlets(&y).unwrap();
        model
    }

    #[test]
    fn a_relu_and_a_pool_after_a_convolution_are_folded_into_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(19);
        for case in 0..12 {
            let (relu, pool) = (case % 2 == 1, case / 2 % 3);
            let shape = [
                1 + case % 3 * 7,
                rng.random_range(1..=4),
                6,
                rng.random_range(4..=9),
            ];
            let outputs = [8, 16, 40, 64, 70][case % 5];
            let x = Tensor::from_shape(&shape, &random(&mut rng, shape.iter().product())).unwrap();
            let run = |model: TypedModel| {
                let out = model
                    .into_runnable()
                    .unwrap()
                    .run(tvec![x.clone().into_tvalue()])
                    .unwrap();
                let plain = out[0].try_as_plain_ram().unwrap();
                (
                    out[0].shape().to_vec(),
                    plain.as_slice::<f32>().unwrap().to_vec(),
                )
            };
            let (want_shape, want) = run(conv_model(case as u64, shape, outputs, relu, pool));
            let mut model = conv_model(case as u64, shape, outputs, relu, pool);
            crate::pool::replace_pools(&mut model).unwrap();
            assert_eq!(replace_convs(&mut model).unwrap(), 1);
            let model = model.into_decluttered().unwrap();
            let ops: Vec<_> = model
                .nodes()
                .iter()
                .map(|n| n.op().name().to_string())
                .collect();
            let direct = ops.iter().filter(|o| *o == "DirectConv").count();
            assert_eq!(direct, 1, "{ops:?}");
            assert!(
                ops.iter()
                    .all(|o| o == "DirectConv" || o == "Source" || o == "Const"),
                "{ops:?}"
            );
            let (shape, got) = run(model);
            assert_eq!(shape, want_shape, "case {case}");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() < 1e-5,
                    "case {case} (relu {relu}, pool {pool}), {i}: {g} vs {w}"
                );
            }
        }
    }
}
