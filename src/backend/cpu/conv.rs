//! The reference convolution and transposed convolution: readable im2row and
//! row2im loops around the `gemm` crate's product, one `_forward` and the
//! `_backward_input` / `_backward_params` pair per op, shapes in the doc
//! comments. Layouts at the API are PyTorch's (see
//! [`crate::backend::conv_params`]); inside, each op works channels-last.
//!
//! The input is first laid out channels-last (xt `[B, in_h, in_w, in]`; a
//! 1-channel or 1x1 tensor already is) and the weight tap-major
//! (wt `[out, k, k, in]`, wt[o, ki, kj, c] = w[o, c, ki, kj]). The output
//! positions are then split into tap classes (`tap_classes`): a run of
//! output rows and a run of output columns whose kernel taps inside the
//! input are the same, taps ki in a run and kj in a run. A class with P_c
//! positions and taps of K_c = |ki| |kj| in values is one product over its
//! own rows, and the taps that fall in the padding, zeros in a plain im2col,
//! are never multiplied: for the 7x7 maps of a DCGAN with a 5x5 kernel, 31%
//! of the products. For g images of a class, im2row writes one row per
//! position (rows `[g P_c, K_c]`), tap by tap, the `in` channel values of
//! the input pixel under that tap, each kernel row's taps one contiguous
//! copy; with wt_c `[out, K_c]` the class's weight columns (one block of
//! columns of the weight's kernel columns kj, copied once for all the
//! classes of a column segment):
//!
//! - forward:         yt_c `[g P_c, out]` = rows wt_c^T, put at the class's positions of yt
//! - backward input:  drows `[g P_c, K_c]` = dyt_c wt_c, dxt += row2im(drows)
//! - backward params: dwt_c `[out, K_c]` += dyt_c^T rows, added into dwt
//!
//! and the channels-last results are laid back out as NCHW. row2im is the
//! adjoint of im2row (each row's taps added back onto their pixels). A group
//! is as many images as keep a class's rows within `GROUP_VALUES`: one
//! product of g P_c rows packs the weight once per group, and the small
//! classes of a DCGAN (a corner is one position) make a product of one image
//! too narrow to be fast. Rows shorter than `MIN_SPLIT_ROW` (a 1-channel
//! image's 25 taps) run as one whole class that keeps the padding's zeros
//! and reads and writes the output in place.
//!
//! A transposed convolution is the adjoint of the convolution
//! [`ConvTranspose2dParams::as_conv`] describes: its forward is that
//! convolution's backward-input and its backward-input is that
//! convolution's forward, so both ops run on the same three functions.
//!
//! Every function overwrites its outputs and sums each element in an order
//! fixed by the shapes alone, whatever the thread count: classes in order,
//! then images, positions and taps in order. Parameters must pass their
//! `validate`; slices of the wrong length panic.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use crate::backend::conv_params::{Conv2dParams, ConvTranspose2dParams};

/// c `[m, n]` (+)= a `[m, k]` b `[k, n]`, with `c` row-major at row stride
/// `c_rs`: the layer ops' strided product ([`super::ops::layer_gemm`]); `a`
/// and `b` are given with their (row, column) strides, so a transposed
/// operand is read in place by swapping them. `beta` is 0 (overwrite) or 1
/// (accumulate).
#[allow(clippy::too_many_arguments)]
fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    beta: f32,
    c: &mut [f32],
    c_rs: usize,
) {
    super::ops::layer_gemm(
        (m, k, n),
        a,
        (0, a_rs, a_cs),
        b,
        (0, b_rs, b_cs),
        beta,
        c,
        (0, c_rs, 1),
    );
}

/// The input coordinate under output coordinate `o` and kernel offset `kk`,
/// o * stride + kk - padding, or None where that falls in the padding: the
/// definition [`tap_runs`] is tested against.
#[cfg(test)]
fn input_at(o: usize, kk: usize, p: &Conv2dParams, size: usize) -> Option<usize> {
    (o * p.stride + kk)
        .checked_sub(p.padding)
        .filter(|i| *i < size)
}

/// For output coordinate `o` along an axis of `size` inputs, the kernel
/// offsets kk whose input coordinate o * stride + kk - padding lies inside
/// `0..size` (where [`input_at`] is Some): a run, since the input coordinate
/// grows with kk, and empty where the kernel covers only padding.
fn tap_run(p: &Conv2dParams, size: usize, o: usize) -> Range<usize> {
    let at = o * p.stride;
    let hi = (size + p.padding).saturating_sub(at).min(p.kernel);
    let lo = p.padding.saturating_sub(at).min(hi);
    lo..hi
}

/// [`tap_run`] for each output coordinate in `0..out`.
fn tap_runs(p: &Conv2dParams, size: usize, out: usize) -> Vec<Range<usize>> {
    (0..out).map(|o| tap_run(p, size, o)).collect()
}

/// The maximal runs of output coordinates that share their tap run, with
/// that run, in order: they cover `0..runs.len()` exactly.
fn segments(runs: &[Range<usize>]) -> Vec<(Range<usize>, Range<usize>)> {
    let mut found = Vec::new();
    let mut start = 0;
    for o in 1..=runs.len() {
        if o == runs.len() || runs[o] != runs[start] {
            found.push((start..o, runs[start].clone()));
            start = o;
        }
    }
    found
}

/// Output positions whose taps inside the input are the same: rows `oh` by
/// columns `ow`, reading kernel rows `ki` and kernel columns `kj`.
#[derive(Clone, Debug, PartialEq)]
struct TapClass {
    oh: Range<usize>,
    ow: Range<usize>,
    ki: Range<usize>,
    kj: Range<usize>,
}

impl TapClass {
    /// P_c, the class's output positions per image.
    fn positions(&self) -> usize {
        self.oh.len() * self.ow.len()
    }

    /// |kj| channels: the values one kernel row of a position reads, adjacent in xt.
    fn run(&self, channels: usize) -> usize {
        self.kj.len() * channels
    }

    /// K_c, the length of the class's rows: |ki| |kj| channels.
    fn row_len(&self, channels: usize) -> usize {
        self.ki.len() * self.run(channels)
    }

    /// Whether the class is every position of the output: its rows, in
    /// class order, are then the output's own rows channels-last, and the
    /// products read and write those in place.
    fn is_whole(&self, p: &Conv2dParams) -> bool {
        self.oh == (0..p.out_h()) && self.ow == (0..p.out_w())
    }

    /// Images per group: as many as keep the class's rows, and its slice of
    /// the output where that is gathered, within [`GROUP_VALUES`] (at least
    /// one).
    fn group(&self, p: &Conv2dParams) -> usize {
        let row_len = self.row_len(p.in_channels);
        let width = if self.is_whole(p) {
            row_len
        } else {
            row_len.max(p.out_channels)
        };
        (GROUP_VALUES / (self.positions() * width).max(1)).clamp(1, p.batch.max(1))
    }

    /// The groups of images, in order.
    fn groups(&self, p: &Conv2dParams) -> impl Iterator<Item = Range<usize>> {
        let (group, batch) = (self.group(p), p.batch);
        (0..batch)
            .step_by(group)
            .map(move |start| start..(start + group).min(batch))
    }
}

/// The length k * k * in of a whole row below which an op runs as one class
/// of every position and every tap, zeros where a tap falls in the padding:
/// with so few taps (a 1-channel image's 25) a position's product costs
/// less than moving its outputs into a class's place, and the padding's
/// share of the products is small there.
const MIN_SPLIT_ROW: usize = 256;

/// The tap classes of `p`, column segments outer (the classes of one
/// column segment share its kernel columns, so one copy of the weight's
/// columns serves them all): a partition of the output positions, each with
/// exactly the taps that read inside the input; or, for rows shorter than
/// [`MIN_SPLIT_ROW`], one whole class of every tap.
fn tap_classes(p: &Conv2dParams) -> Vec<TapClass> {
    if p.kernel * p.kernel * p.in_channels < MIN_SPLIT_ROW {
        return vec![TapClass {
            oh: 0..p.out_h(),
            ow: 0..p.out_w(),
            ki: 0..p.kernel,
            kj: 0..p.kernel,
        }];
    }
    let rows = segments(&tap_runs(p, p.in_h, p.out_h()));
    let columns = segments(&tap_runs(p, p.in_w, p.out_w()));
    columns
        .iter()
        .flat_map(|(ow, kj)| {
            rows.iter().map(|(oh, ki)| TapClass {
                oh: oh.clone(),
                ow: ow.clone(),
                ki: ki.clone(),
                kj: kj.clone(),
            })
        })
        .collect()
}

/// The taps of `taps` that also lie in `inside`, as offsets into `taps`.
fn offsets_inside(taps: &Range<usize>, inside: &Range<usize>) -> Range<usize> {
    let hi = inside.end.min(taps.end).saturating_sub(taps.start);
    let lo = inside.start.max(taps.start).saturating_sub(taps.start);
    lo.min(hi)..hi
}

/// Items of `len` values each that one rayon task takes at least: enough
/// that a task is worth handing to another thread (about 16k values).
fn min_items(len: usize) -> usize {
    ((1 << 14) / len.max(1)).max(1)
}

/// rows `[g P_c, K_c]` for the images `images` of xt `[B, in_h, in_w, in]`:
/// row (n, oh, ow), in class order, holds for each tap (ki, kj) of the class
/// the `in` channel values of xt[n, oh s + ki - p, ow s + kj - p], or zeros
/// where that pixel lies in the padding (never, in a class of
/// [`tap_classes`] that is not whole). A kernel row's taps inside the input
/// read adjacent pixels: one copy. The rows of each line of positions
/// (n, oh) are filled in parallel.
fn im2row(p: &Conv2dParams, class: &TapClass, xt: &[f32], images: Range<usize>, rows: &mut [f32]) {
    let c = p.in_channels;
    let (run, row_len) = (class.run(c), class.row_len(c));
    let line_len = class.ow.len() * row_len;
    let image_len = p.in_h * p.in_w * c;
    debug_assert_eq!(rows.len(), images.len() * class.positions() * row_len);
    if row_len == 0 {
        return;
    }
    rows.par_chunks_mut(line_len)
        .with_min_len(min_items(line_len))
        .enumerate()
        .for_each(|(line, dest)| {
            let n = images.start + line / class.oh.len();
            let oh = class.oh.start + line % class.oh.len();
            let in_rows = tap_run(p, p.in_h, oh);
            let image = &xt[n * image_len..][..image_len];
            for (ow, row) in class.ow.clone().zip(dest.chunks_mut(row_len)) {
                let inside = offsets_inside(&class.kj, &tap_run(p, p.in_w, ow));
                let iw = (ow * p.stride + class.kj.start + inside.start).wrapping_sub(p.padding);
                for (ki, taps) in class.ki.clone().zip(row.chunks_mut(run)) {
                    if inside.is_empty() || !in_rows.contains(&ki) {
                        taps.fill(0.0);
                        continue;
                    }
                    let ih = oh * p.stride + ki - p.padding;
                    let (lo, hi) = (inside.start * c, inside.end * c);
                    taps[..lo].fill(0.0);
                    taps[hi..].fill(0.0);
                    taps[lo..hi].copy_from_slice(&image[(ih * p.in_w + iw) * c..][..hi - lo]);
                }
            }
        });
}

/// The adjoint of [`im2row`]: adds onto dxt `[B, in_h, in_w, in]`, for the
/// images `images`, the taps of every row of drows `[g P_c, K_c]` at the
/// pixels they were copied from (taps over the padding are dropped). Images
/// are summed in parallel, each by one thread in the order (oh, ow, ki, kj).
fn row2im(
    p: &Conv2dParams,
    class: &TapClass,
    drows: &[f32],
    images: Range<usize>,
    dxt: &mut [f32],
) {
    let c = p.in_channels;
    let (run, row_len) = (class.run(c), class.row_len(c));
    let image_rows = class.positions() * row_len;
    let image_len = p.in_h * p.in_w * c;
    debug_assert_eq!(drows.len(), images.len() * image_rows);
    if row_len == 0 {
        return;
    }
    dxt[images.start * image_len..images.end * image_len]
        .par_chunks_mut(image_len)
        .with_min_len(min_items(image_rows))
        .zip(drows.par_chunks(image_rows))
        .for_each(|(image, source)| {
            for (q, row) in source.chunks(row_len).enumerate() {
                let oh = class.oh.start + q / class.ow.len();
                let ow = class.ow.start + q % class.ow.len();
                let inside = offsets_inside(&class.kj, &tap_run(p, p.in_w, ow));
                let in_rows = tap_run(p, p.in_h, oh);
                if inside.is_empty() {
                    continue;
                }
                let iw = ow * p.stride + class.kj.start + inside.start - p.padding;
                for (ki, taps) in class.ki.clone().zip(row.chunks(run)) {
                    if !in_rows.contains(&ki) {
                        continue;
                    }
                    let ih = oh * p.stride + ki - p.padding;
                    let taps = &taps[inside.start * c..inside.end * c];
                    let pixels = &mut image[(ih * p.in_w + iw) * c..][..taps.len()];
                    pixels.iter_mut().zip(taps).for_each(|(t, v)| *t += v);
                }
            }
        });
}

/// t_c `[g P_c, channels]`: the values of the class's positions, in class
/// order, of the images `images` of t `[B, out_h, out_w, channels]`.
fn gather(
    p: &Conv2dParams,
    class: &TapClass,
    channels: usize,
    t: &[f32],
    images: Range<usize>,
    t_c: &mut [f32],
) {
    let (run, image_len) = (class.ow.len() * channels, p.out_h() * p.out_w() * channels);
    t_c.par_chunks_mut(class.oh.len() * run)
        .with_min_len(min_items(class.oh.len() * run))
        .zip(t[images.start * image_len..images.end * image_len].par_chunks(image_len))
        .for_each(|(dest, image)| {
            for (oh, line) in class.oh.clone().zip(dest.chunks_mut(run)) {
                line.copy_from_slice(&image[(oh * p.out_w() + class.ow.start) * channels..][..run]);
            }
        });
}

/// The class's values of the images `images` of t `[B, out_h, out_w,
/// channels]`, `[g P_c, channels]` in class order: t's own rows for a whole
/// class, else gathered into `buffer`.
fn class_values<'a>(
    p: &Conv2dParams,
    class: &TapClass,
    channels: usize,
    t: &'a [f32],
    images: Range<usize>,
    buffer: &'a mut [f32],
) -> &'a [f32] {
    let len = images.len() * class.positions() * channels;
    if class.is_whole(p) {
        return &t[images.start * class.positions() * channels..][..len];
    }
    let t_c = &mut buffer[..len];
    gather(p, class, channels, t, images, t_c);
    t_c
}

/// The inverse of [`gather`]: writes t_c `[g P_c, channels]` at the class's
/// positions of the images `images` of t `[B, out_h, out_w, channels]`.
fn scatter(
    p: &Conv2dParams,
    class: &TapClass,
    channels: usize,
    t_c: &[f32],
    images: Range<usize>,
    t: &mut [f32],
) {
    let (run, image_len) = (class.ow.len() * channels, p.out_h() * p.out_w() * channels);
    t[images.start * image_len..images.end * image_len]
        .par_chunks_mut(image_len)
        .with_min_len(min_items(class.oh.len() * run))
        .zip(t_c.par_chunks(class.oh.len() * run))
        .for_each(|(image, source)| {
            for (oh, line) in class.oh.clone().zip(source.chunks(run)) {
                image[(oh * p.out_w() + class.ow.start) * channels..][..run].copy_from_slice(line);
            }
        });
}

/// wt_j `[out, k, |kj|, in]`: the taps of wt `[out, k, k, in]` in the
/// kernel columns `kj`, every kernel row. A class with those columns takes
/// its kernel rows ki from this as one block of columns.
fn column_weight(p: &Conv2dParams, kj: &Range<usize>, wt: &[f32], wt_j: &mut [f32]) {
    let c = p.in_channels;
    let run = kj.len() * c;
    if run == 0 {
        return;
    }
    for (src, dest) in wt
        .chunks(p.kernel * p.kernel * c)
        .zip(wt_j.chunks_mut(p.kernel * run))
    {
        for (ki, taps) in dest.chunks_mut(run).enumerate() {
            taps.copy_from_slice(&src[(ki * p.kernel + kj.start) * c..][..run]);
        }
    }
}

/// The adjoint of [`column_weight`]: dwt `[out, k, k, in]` += dwt_j
/// `[out, k, |kj|, in]` at the kernel columns `kj`.
fn add_column_weight(p: &Conv2dParams, kj: &Range<usize>, dwt_j: &[f32], dwt: &mut [f32]) {
    let c = p.in_channels;
    let run = kj.len() * c;
    if run == 0 {
        return;
    }
    for (src, dest) in dwt_j
        .chunks(p.kernel * run)
        .zip(dwt.chunks_mut(p.kernel * p.kernel * c))
    {
        for (ki, taps) in src.chunks(run).enumerate() {
            let target = &mut dest[(ki * p.kernel + kj.start) * c..][..run];
            target.iter_mut().zip(taps).for_each(|(t, v)| *t += v);
        }
    }
}

/// A class's weight columns wt_c `[out, K_c]` inside a tap-major weight
/// laid out `[out, k, |kj|, in]` (wt itself when kj is every kernel
/// column): the slice from its first column and the row stride.
fn class_columns<'a>(p: &Conv2dParams, class: &TapClass, weight: &'a [f32]) -> (&'a [f32], usize) {
    let run = class.run(p.in_channels);
    (&weight[class.ki.start * run..], p.kernel * run)
}

/// Channels-last images `[g, positions, channels]` from NCHW images
/// `[g, channels, positions]`; images are transposed in parallel.
fn to_channels_last(channels: usize, positions: usize, images: &[f32], out: &mut [f32]) {
    let len = channels * positions;
    out.par_chunks_mut(len)
        .with_min_len(min_items(len))
        .zip(images.par_chunks(len))
        .for_each(|(dest, image)| {
            for (c, plane) in image.chunks(positions).enumerate() {
                for (q, v) in plane.iter().enumerate() {
                    dest[q * channels + c] = *v;
                }
            }
        });
}

/// The inverse of [`to_channels_last`]: NCHW images `[g, channels,
/// positions]` from channels-last ones `[g, positions, channels]`.
fn from_channels_last(channels: usize, positions: usize, images: &[f32], out: &mut [f32]) {
    let len = channels * positions;
    out.par_chunks_mut(len)
        .with_min_len(min_items(len))
        .zip(images.par_chunks(len))
        .for_each(|(dest, image)| {
            for (c, plane) in dest.chunks_mut(positions).enumerate() {
                for (q, v) in plane.iter_mut().enumerate() {
                    *v = image[q * channels + c];
                }
            }
        });
}

/// The tap-major weight wt `[out, k, k, in]` from w `[out, in, k, k]`:
/// each output channel's `[in, k k]` laid out channels-last.
fn weight_to_taps(p: &Conv2dParams, w: &[f32], wt: &mut [f32]) {
    to_channels_last(p.in_channels, p.kernel * p.kernel, w, wt);
}

/// The inverse of [`weight_to_taps`]: w `[out, in, k, k]` from wt.
fn weight_from_taps(p: &Conv2dParams, wt: &[f32], w: &mut [f32]) {
    from_channels_last(p.in_channels, p.kernel * p.kernel, wt, w);
}

/// NCHW images `[g, channels, positions]` seen channels-last,
/// `[g, positions, channels]`: the images themselves where channels or
/// positions is 1 (the two layouts then agree: a 1-channel image, or a
/// Linear layer's 1x1 one), else transposed into `buffer`.
fn channels_last_view<'a>(
    channels: usize,
    positions: usize,
    images: &'a [f32],
    buffer: &'a mut [f32],
) -> &'a [f32] {
    if channels == 1 || positions == 1 {
        return images;
    }
    to_channels_last(channels, positions, images, buffer);
    buffer
}

/// y `[batch, channels, spatial]` += bias `[channels]`.
fn add_bias(channels: usize, spatial: usize, bias: &[f32], y: &mut [f32]) {
    assert_eq!(bias.len(), channels, "bias length");
    for (i, plane) in y.chunks_mut(spatial).enumerate() {
        let b = bias[i % channels];
        plane.iter_mut().for_each(|v| *v += b);
    }
}

/// dbias `[channels]` = the sum of dy `[batch, channels, spatial]` over batch
/// and spatial positions. Overwrites `dbias`.
fn bias_grad(channels: usize, spatial: usize, dy: &[f32], dbias: &mut [f32]) {
    assert_eq!(dbias.len(), channels, "dbias length");
    dbias.fill(0.0);
    for (i, plane) in dy.chunks(spatial).enumerate() {
        dbias[i % channels] += plane.iter().sum::<f32>();
    }
}

/// Values of the row buffer of one group of images of a class: the products
/// run over the rows of several images at once (one `[g P_c, K_c]`
/// operand), so a group is as many images as fit this many values (at least
/// one).
const GROUP_VALUES: usize = 1 << 22;

/// The scratch buffers of one call: a group's rows `[g P_c, K_c]`, its
/// slice of the output channels-last `[g P_c, out]`, a column segment's
/// weight (or weight gradient) columns `[out, k, |kj|, in]`, the whole input
/// and output channels-last, and the tap-major weight (or its gradient).
struct Scratch<'a> {
    rows: &'a mut [f32],
    class_out: &'a mut [f32],
    class_weight: &'a mut [f32],
    input: &'a mut [f32],
    output: &'a mut [f32],
    weight: &'a mut [f32],
}

thread_local! {
    /// The scratch buffers of the last call on this thread, kept so that a
    /// step does not allocate (and fault in) tens of megabytes per call.
    static SCRATCH: RefCell<[Vec<f32>; 6]> = const {
        RefCell::new([Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()])
    };
}

/// Runs `f` on scratch buffers sized for `p` and its `classes`. Their
/// contents are whatever the last call left: every user overwrites them.
fn with_scratch<R>(p: &Conv2dParams, classes: &[TapClass], f: impl FnOnce(Scratch) -> R) -> R {
    let (mut rows, mut class_out, mut class_weight) = (0, 0, 0);
    for class in classes {
        let (m, k_c) = (
            class.group(p) * class.positions(),
            class.row_len(p.in_channels),
        );
        rows = rows.max(m * k_c);
        if !class.is_whole(p) {
            class_out = class_out.max(m * p.out_channels);
        }
        class_weight = class_weight.max(p.out_channels * p.kernel * class.run(p.in_channels));
    }
    let lens = [
        rows,
        class_out,
        class_weight,
        p.x_len(),
        p.y_len(),
        p.w_len(),
    ];
    SCRATCH.with(|cell| {
        let mut buffers = cell.borrow_mut();
        for (buffer, len) in buffers.iter_mut().zip(lens) {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
        }
        let [rows, class_out, class_weight, input, output, weight] = &mut *buffers;
        f(Scratch {
            rows: &mut rows[..lens[0]],
            class_out: &mut class_out[..lens[1]],
            class_weight: &mut class_weight[..lens[2]],
            input: &mut input[..lens[3]],
            output: &mut output[..lens[4]],
            weight: &mut weight[..lens[5]],
        })
    })
}

/// The weight columns of the classes of one column segment: wt itself
/// when they read every kernel column, else those columns copied into
/// `buffer` ([`column_weight`]).
fn segment_weight<'a>(
    p: &Conv2dParams,
    kj: &Range<usize>,
    wt: &'a [f32],
    buffer: &'a mut [f32],
) -> &'a [f32] {
    if *kj == (0..p.kernel) {
        return wt;
    }
    let wt_j = &mut buffer[..p.out_channels * p.kernel * kj.len() * p.in_channels];
    column_weight(p, kj, wt, wt_j);
    wt_j
}

/// y `[B, out, out_h, out_w]` = conv(x `[B, in, in_h, in_w]`,
/// w `[out, in, k, k]`) + bias `[out]` (when given).
pub fn conv2d_forward(p: &Conv2dParams, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    assert_eq!(x.len(), p.x_len(), "conv2d_forward: x length");
    assert_eq!(w.len(), p.w_len(), "conv2d_forward: w length");
    assert_eq!(y.len(), p.y_len(), "conv2d_forward: y length");
    let (out, positions) = (p.out_channels, p.out_h() * p.out_w());
    let classes = tap_classes(p);
    with_scratch(p, &classes, |scratch| {
        let xt = channels_last_view(p.in_channels, p.in_h * p.in_w, x, scratch.input);
        weight_to_taps(p, w, scratch.weight);
        // yt [B, out_h, out_w, out]: y itself where the layouts agree.
        let in_place = out == 1 || positions == 1;
        let (yt, y_nchw): (&mut [f32], Option<&mut [f32]>) = if in_place {
            (&mut *y, None)
        } else {
            (scratch.output, Some(&mut *y))
        };
        for segment in classes.chunk_by(|a, b| a.ow == b.ow) {
            let weight = segment_weight(p, &segment[0].kj, scratch.weight, scratch.class_weight);
            for class in segment {
                let k_c = class.row_len(p.in_channels);
                let (wt_c, stride) = class_columns(p, class, weight);
                for images in class.groups(p) {
                    let m = images.len() * class.positions();
                    let rows = &mut scratch.rows[..m * k_c];
                    im2row(p, class, xt, images.clone(), rows);
                    // yt_c [m, out] = rows [m, K_c] wt_c^T [K_c, out]; wt_c^T[k, o]
                    // = wt_c[o, k] sits at o * stride + k (row stride 1,
                    // column stride `stride`). A class with no taps gets zeros.
                    let product = |yt_c: &mut [f32]| {
                        gemm(
                            (m, k_c, out),
                            rows,
                            (k_c, 1),
                            wt_c,
                            (1, stride),
                            0.0,
                            yt_c,
                            out,
                        )
                    };
                    if class.is_whole(p) {
                        product(&mut yt[images.start * positions * out..][..m * out]);
                    } else {
                        let yt_c = &mut scratch.class_out[..m * out];
                        product(yt_c);
                        scatter(p, class, out, yt_c, images, yt);
                    }
                }
            }
        }
        if let Some(y) = y_nchw {
            from_channels_last(out, positions, yt, y);
        }
    });
    if let Some(bias) = bias {
        add_bias(out, positions, bias, y);
    }
}

/// dx `[B, in, in_h, in_w]` = the gradient of <y, dy> with respect to x, for
/// dy `[B, out, out_h, out_w]` and w `[out, in, k, k]`: row2im(dy W) per
/// class of positions.
pub fn conv2d_backward_input(p: &Conv2dParams, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    assert_eq!(dy.len(), p.y_len(), "conv2d_backward_input: dy length");
    assert_eq!(w.len(), p.w_len(), "conv2d_backward_input: w length");
    assert_eq!(dx.len(), p.x_len(), "conv2d_backward_input: dx length");
    let (out, in_positions) = (p.out_channels, p.in_h * p.in_w);
    let classes = tap_classes(p);
    with_scratch(p, &classes, |scratch| {
        let dyt = channels_last_view(out, p.out_h() * p.out_w(), dy, scratch.output);
        weight_to_taps(p, w, scratch.weight);
        // dxt [B, in_h, in_w, in]: dx itself where the layouts agree.
        let in_place = p.in_channels == 1 || in_positions == 1;
        let (dxt, dx_nchw): (&mut [f32], Option<&mut [f32]>) = if in_place {
            (dx, None)
        } else {
            (scratch.input, Some(dx))
        };
        dxt.fill(0.0);
        for segment in classes.chunk_by(|a, b| a.ow == b.ow) {
            let weight = segment_weight(p, &segment[0].kj, scratch.weight, scratch.class_weight);
            for class in segment {
                let k_c = class.row_len(p.in_channels);
                if k_c == 0 {
                    continue;
                }
                let (wt_c, stride) = class_columns(p, class, weight);
                for images in class.groups(p) {
                    let m = images.len() * class.positions();
                    let dyt_c = class_values(p, class, out, dyt, images.clone(), scratch.class_out);
                    // drows [m, K_c] = dyt_c [m, out] wt_c [out, K_c].
                    let drows = &mut scratch.rows[..m * k_c];
                    gemm(
                        (m, out, k_c),
                        dyt_c,
                        (out, 1),
                        wt_c,
                        (stride, 1),
                        0.0,
                        drows,
                        k_c,
                    );
                    row2im(p, class, drows, images, dxt);
                }
            }
        }
        if let Some(dx) = dx_nchw {
            from_channels_last(p.in_channels, in_positions, dxt, dx);
        }
    });
}

/// The number of values of a weight gradient `[out, K_c]` below which the
/// product cannot share its work between threads (it splits the output, and
/// a 1-channel layer's is 64 x 25): its sum over rows is then cut into
/// pieces of [`PIECE_ROWS`] rows, summed in parallel and added in order.
const SMALL_PRODUCT: usize = 1 << 14;

/// Rows of one piece of a small weight gradient's sum ([`SMALL_PRODUCT`]).
const PIECE_ROWS: usize = 1 << 14;

/// dw `[out, in, k, k]` = the sum over classes and images of dy_c
/// `[out, P_c]` rows `[P_c, K_c]` (the im2row rows of x, the sum taken
/// tap-major and reordered), and dbias `[out]` (when given) = dy summed over
/// batch and positions, for x `[B, in, in_h, in_w]` and
/// dy `[B, out, out_h, out_w]`.
pub fn conv2d_backward_params(
    p: &Conv2dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    dbias: Option<&mut [f32]>,
) {
    assert_eq!(x.len(), p.x_len(), "conv2d_backward_params: x length");
    assert_eq!(dy.len(), p.y_len(), "conv2d_backward_params: dy length");
    assert_eq!(dw.len(), p.w_len(), "conv2d_backward_params: dw length");
    let (out, positions) = (p.out_channels, p.out_h() * p.out_w());
    let classes = tap_classes(p);
    with_scratch(p, &classes, |scratch| {
        let xt = channels_last_view(p.in_channels, p.in_h * p.in_w, x, scratch.input);
        let dyt = channels_last_view(out, positions, dy, scratch.output);
        scratch.weight.fill(0.0);
        for segment in classes.chunk_by(|a, b| a.ow == b.ow) {
            // The segment's kernel columns of dwt, summed over its classes:
            // dwt itself when they are every column, else a zeroed copy
            // added in at the end.
            let kj = &segment[0].kj;
            let every_column = *kj == (0..p.kernel);
            let dwt_j: &mut [f32] = if every_column {
                &mut *scratch.weight
            } else {
                let dwt_j = &mut scratch.class_weight[..out * p.kernel * kj.len() * p.in_channels];
                dwt_j.fill(0.0);
                dwt_j
            };
            for class in segment {
                let k_c = class.row_len(p.in_channels);
                if k_c == 0 {
                    continue;
                }
                let run = class.run(p.in_channels);
                let (dwt_c, stride) = (&mut dwt_j[class.ki.start * run..], p.kernel * run);
                for images in class.groups(p) {
                    let m = images.len() * class.positions();
                    let rows = &mut scratch.rows[..m * k_c];
                    if class.is_whole(p) && out * k_c < SMALL_PRODUCT {
                        whole_params_in_pieces(p, class, xt, dyt, images, rows, dwt_c, stride);
                        continue;
                    }
                    im2row(p, class, xt, images.clone(), rows);
                    let dyt_c = class_values(p, class, out, dyt, images, scratch.class_out);
                    // dwt_c [out, K_c] += dyt_c^T [out, m] rows [m, K_c];
                    // dyt_c^T[o, q] = dyt_c[q, o] sits at q * out + o (row
                    // stride 1, column stride out).
                    gemm(
                        (out, m, k_c),
                        dyt_c,
                        (1, out),
                        rows,
                        (k_c, 1),
                        1.0,
                        dwt_c,
                        stride,
                    );
                }
            }
            if !every_column {
                add_column_weight(
                    p,
                    kj,
                    &scratch.class_weight[..out * p.kernel * kj.len() * p.in_channels],
                    scratch.weight,
                );
            }
        }
        weight_from_taps(p, scratch.weight, dw);
    });
    if let Some(dbias) = dbias {
        bias_grad(out, positions, dy, dbias);
    }
}

/// dwt_c `[out, K_c]` (row stride `stride`) += the whole class's sum over
/// the images `images` of dyt^T rows, for a gradient too small to split
/// across threads ([`SMALL_PRODUCT`]): the images are cut into pieces of
/// about [`PIECE_ROWS`] rows, fixed by the shapes, each piece's rows and sum
/// are made in parallel, and the sums are added in piece order. `rows` is
/// the group's row buffer.
#[allow(clippy::too_many_arguments)]
fn whole_params_in_pieces(
    p: &Conv2dParams,
    class: &TapClass,
    xt: &[f32],
    dyt: &[f32],
    images: Range<usize>,
    rows: &mut [f32],
    dwt_c: &mut [f32],
    stride: usize,
) {
    let (out, k_c, positions) = (
        p.out_channels,
        class.row_len(p.in_channels),
        class.positions(),
    );
    let piece = (PIECE_ROWS / positions).max(1);
    let starts: Vec<usize> = images.clone().step_by(piece).collect();
    let mut sums = vec![0.0f32; starts.len() * out * k_c];
    sums.par_chunks_mut(out * k_c)
        .zip(rows.par_chunks_mut(piece * positions * k_c))
        .zip(starts.par_iter())
        .for_each(|((sum, rows), &start)| {
            let piece_images = start..(start + piece).min(images.end);
            let m = piece_images.len() * positions;
            im2row(p, class, xt, piece_images, rows);
            let dyt_piece = &dyt[start * positions * out..][..m * out];
            gemm(
                (out, m, k_c),
                dyt_piece,
                (1, out),
                rows,
                (k_c, 1),
                0.0,
                sum,
                k_c,
            );
        });
    for sum in sums.chunks(out * k_c) {
        for (target, values) in dwt_c.chunks_mut(stride).zip(sum.chunks(k_c)) {
            target[..k_c]
                .iter_mut()
                .zip(values)
                .for_each(|(t, v)| *t += v);
        }
    }
}

/// y `[B, out, out_h, out_w]` = conv_transpose(x `[B, in, in_h, in_w]`,
/// w `[in, out, k, k]`) + bias `[out]` (when given): the backward-input of
/// the convolution `p.as_conv()`, which maps y's shape back onto x's.
pub fn conv_transpose2d_forward(
    p: &ConvTranspose2dParams,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    assert_eq!(x.len(), p.x_len(), "conv_transpose2d_forward: x length");
    assert_eq!(y.len(), p.y_len(), "conv_transpose2d_forward: y length");
    conv2d_backward_input(&p.as_conv(), x, w, y);
    if let Some(bias) = bias {
        add_bias(p.out_channels, p.out_h() * p.out_w(), bias, y);
    }
}

/// dx `[B, in, in_h, in_w]` = the gradient of <y, dy> with respect to x, for
/// dy `[B, out, out_h, out_w]` and w `[in, out, k, k]`: the forward of the
/// convolution `p.as_conv()` applied to dy.
pub fn conv_transpose2d_backward_input(
    p: &ConvTranspose2dParams,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) {
    assert_eq!(
        dy.len(),
        p.y_len(),
        "conv_transpose2d_backward_input: dy length"
    );
    assert_eq!(
        dx.len(),
        p.x_len(),
        "conv_transpose2d_backward_input: dx length"
    );
    conv2d_forward(&p.as_conv(), dy, w, None, dx);
}

/// dw `[in, out, k, k]` and dbias `[out]` (when given) for x
/// `[B, in, in_h, in_w]` and dy `[B, out, out_h, out_w]`. Since
/// <conv_t(x; w), dy> = <x, conv(dy; w)>, dw is the weight gradient of the
/// convolution `p.as_conv()` with dy as its input and x as its output
/// gradient; dbias is dy summed over batch and positions.
pub fn conv_transpose2d_backward_params(
    p: &ConvTranspose2dParams,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    dbias: Option<&mut [f32]>,
) {
    assert_eq!(
        x.len(),
        p.x_len(),
        "conv_transpose2d_backward_params: x length"
    );
    assert_eq!(
        dy.len(),
        p.y_len(),
        "conv_transpose2d_backward_params: dy length"
    );
    conv2d_backward_params(&p.as_conv(), dy, x, dw, None);
    if let Some(dbias) = dbias {
        bias_grad(p.out_channels, p.out_h() * p.out_w(), dy, dbias);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shape whose interior class (24 x 24 positions, 25 taps of 64
    /// channels) holds 4 images a group, so a batch of 7 runs as groups of 4
    /// and 3 there, while the small border classes take all 7 at once.
    fn wide() -> Conv2dParams {
        Conv2dParams {
            batch: 7,
            in_channels: 64,
            out_channels: 2,
            in_h: 28,
            in_w: 28,
            kernel: 5,
            stride: 1,
            padding: 2,
        }
    }

    fn values(n: usize, salt: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32) * 0.37 + salt).sin()).collect()
    }

    /// One-channel convolutions over an input of `size` rows by `size + 1`
    /// columns, one per (size, kernel, stride, padding): padding wider and
    /// narrower than the kernel's overhang, strides that skip input, a 1x1
    /// map, and padding so wide that border outputs see no input at all.
    fn padding_cases() -> Vec<Conv2dParams> {
        [
            (1, 1, 1, 0),
            (5, 3, 1, 1),
            (7, 5, 1, 2),
            (7, 5, 2, 2),
            (14, 5, 2, 2),
            (28, 5, 2, 2),
            (4, 4, 2, 1),
            (3, 5, 1, 3),
            (6, 3, 3, 0),
            (1, 1, 1, 1),
            (2, 3, 1, 4),
        ]
        .into_iter()
        .map(|(size, kernel, stride, padding)| Conv2dParams {
            batch: 1,
            in_channels: 1,
            out_channels: 1,
            in_h: size,
            in_w: size + 1,
            kernel,
            stride,
            padding,
        })
        .collect()
    }

    #[test]
    fn tap_runs_are_exactly_the_taps_inside_the_input() {
        for p in padding_cases() {
            for (size, out) in [(p.in_h, p.out_h()), (p.in_w, p.out_w())] {
                for (o, run) in tap_runs(&p, size, out).into_iter().enumerate() {
                    let inside: Vec<usize> = (0..p.kernel)
                        .filter(|&kk| input_at(o, kk, &p, size).is_some())
                        .collect();
                    assert_eq!(inside, run.collect::<Vec<_>>(), "{p:?} size {size} o {o}");
                }
            }
        }
    }

    #[test]
    fn tap_classes_cover_every_position_once_with_its_own_taps() {
        for q in padding_cases() {
            // Rows of at least MIN_SPLIT_ROW values split into classes.
            let p = Conv2dParams {
                in_channels: MIN_SPLIT_ROW,
                ..q
            };
            let mut seen = vec![0; p.out_h() * p.out_w()];
            for class in tap_classes(&p) {
                for oh in class.oh.clone() {
                    for ow in class.ow.clone() {
                        seen[oh * p.out_w() + ow] += 1;
                        let rows: Vec<usize> = (0..p.kernel)
                            .filter(|&ki| input_at(oh, ki, &p, p.in_h).is_some())
                            .collect();
                        let columns: Vec<usize> = (0..p.kernel)
                            .filter(|&kj| input_at(ow, kj, &p, p.in_w).is_some())
                            .collect();
                        assert_eq!(
                            rows,
                            class.ki.clone().collect::<Vec<_>>(),
                            "{p:?} {class:?}"
                        );
                        assert_eq!(
                            columns,
                            class.kj.clone().collect::<Vec<_>>(),
                            "{p:?} {class:?}"
                        );
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{p:?}: {seen:?}");
            // Shorter rows run as one whole class of every tap.
            let short = Conv2dParams {
                in_channels: (MIN_SPLIT_ROW - 1) / (q.kernel * q.kernel),
                ..q
            };
            let classes = tap_classes(&short);
            assert_eq!(classes.len(), 1, "{short:?}");
            assert!(classes[0].is_whole(&short), "{short:?}");
            assert_eq!(
                (classes[0].ki.clone(), classes[0].kj.clone()),
                (0..q.kernel, 0..q.kernel)
            );
        }
    }

    /// The three ops over a batch against the same ops one image at a
    /// time: y and dx image by image, dw against the sum of the images' dw.
    fn batch_matches_images(p: &Conv2dParams) {
        let one = Conv2dParams { batch: 1, ..*p };
        // A value of y or dx is the same f32 sum of at most 25 * 64 products
        // of O(1) terms either way, but the product may order it otherwise
        // for a one-image class of one position (a corner) than for a group
        // of seven: rounding of ~sqrt(1600) * 6e-8 ~ 3e-6 each. 1e-4 leaves
        // room, while a position or image taken from the wrong group is off
        // by O(0.1).
        let close = |grouped: &[f32], alone: &[f32], op: &str, n: usize| {
            for (i, (a, b)) in grouped.iter().zip(alone).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4,
                    "{p:?} {op}, image {n}, [{i}]: {a} vs {b}"
                );
            }
        };
        let (x_image, y_image) = (p.x_len() / p.batch, p.y_len() / p.batch);
        let (x, w, dy) = (
            values(p.x_len(), 0.1),
            values(p.w_len(), 0.2),
            values(p.y_len(), 0.3),
        );
        let mut y = vec![0.0; p.y_len()];
        conv2d_forward(p, &x, &w, None, &mut y);
        let mut dx = vec![0.0; p.x_len()];
        conv2d_backward_input(p, &dy, &w, &mut dx);
        let mut dw = vec![0.0; p.w_len()];
        conv2d_backward_params(p, &x, &dy, &mut dw, None);
        let mut dw_sum = vec![0.0f64; p.w_len()];
        for n in 0..p.batch {
            let (x_n, dy_n) = (&x[n * x_image..][..x_image], &dy[n * y_image..][..y_image]);
            let mut y_n = vec![0.0; y_image];
            conv2d_forward(&one, x_n, &w, None, &mut y_n);
            close(&y[n * y_image..][..y_image], &y_n, "forward", n);
            let mut dx_n = vec![0.0; x_image];
            conv2d_backward_input(&one, dy_n, &w, &mut dx_n);
            close(&dx[n * x_image..][..x_image], &dx_n, "backward input", n);
            let mut dw_n = vec![0.0; p.w_len()];
            conv2d_backward_params(&one, x_n, dy_n, &mut dw_n, None);
            dw_sum
                .iter_mut()
                .zip(&dw_n)
                .for_each(|(a, b)| *a += *b as f64);
        }
        // dw sums N = batch * positions products of terms under 1 in another
        // order: f32 rounding of about N * 6e-8 (partial sums of ~sqrt(N),
        // sqrt(N) roundings); 1e-6 N leaves 16 times that, and an image
        // missed or counted twice moves dw by O(sqrt(positions)).
        let bound = 1e-6 * (p.batch * p.out_h() * p.out_w()) as f64;
        for (i, (a, b)) in dw.iter().zip(&dw_sum).enumerate() {
            assert!((*a as f64 - b).abs() <= bound, "{p:?} dw[{i}]: {a} vs {b}");
        }
    }

    #[test]
    fn groups_of_images_give_what_one_image_at_a_time_gives() {
        let p = wide();
        let classes = tap_classes(&p);
        let interior = classes.iter().find(|c| c.positions() == 24 * 24).unwrap();
        assert_eq!(interior.groups(&p).collect::<Vec<_>>(), [0..4, 4..7]);
        assert!(classes.iter().any(|c| c.group(&p) == p.batch));
        batch_matches_images(&p);
    }

    /// A 1-channel layer (one whole class, x and dx used in place) whose
    /// 8 x 25 weight gradient is summed in pieces of 83 images: 83, 83, 34.
    #[test]
    fn pieces_of_a_small_weight_gradient_give_what_one_image_at_a_time_gives() {
        let p = Conv2dParams {
            batch: 200,
            in_channels: 1,
            out_channels: 8,
            in_h: 28,
            in_w: 28,
            kernel: 5,
            stride: 2,
            padding: 2,
        };
        let classes = tap_classes(&p);
        assert!(classes.len() == 1 && classes[0].is_whole(&p));
        assert!(p.out_channels * classes[0].row_len(1) < SMALL_PRODUCT);
        assert_eq!(PIECE_ROWS / classes[0].positions(), 83);
        batch_matches_images(&p);
    }

    /// The direct sums of the definition, in f64: y[n, o, oh, ow] =
    /// sum over c, ki, kj of x[n, c, ih, iw] w[o, c, ki, kj] where the input
    /// pixel is inside.
    fn direct_forward(p: &Conv2dParams, x: &[f32], w: &[f32]) -> Vec<f64> {
        let (k, c_in) = (p.kernel, p.in_channels);
        let mut y = vec![0.0; p.y_len()];
        for n in 0..p.batch {
            for o in 0..p.out_channels {
                for oh in 0..p.out_h() {
                    for ow in 0..p.out_w() {
                        let mut sum = 0.0f64;
                        for c in 0..c_in {
                            for ki in 0..k {
                                for kj in 0..k {
                                    let (Some(ih), Some(iw)) =
                                        (input_at(oh, ki, p, p.in_h), input_at(ow, kj, p, p.in_w))
                                    else {
                                        continue;
                                    };
                                    sum += x[((n * c_in + c) * p.in_h + ih) * p.in_w + iw] as f64
                                        * w[((o * c_in + c) * k + ki) * k + kj] as f64;
                                }
                            }
                        }
                        y[((n * p.out_channels + o) * p.out_h() + oh) * p.out_w() + ow] = sum;
                    }
                }
            }
        }
        y
    }

    /// The three ops against the definition on every padding case, with 1
    /// channel in and out (x, dx, y and dy used in place), 3 in and 2 out
    /// (one whole class, zeros in the padding), and 32 in and 2 out (split
    /// into tap classes but for the 1x1 kernels): the forward directly, and the two backward ops through the
    /// adjoint identities <conv(x), dy> = <x, dx> and <conv(x; w), dy> =
    /// <w, dw> on the same sums, in f64. A value sums K = in k k products of
    /// terms under 1, its f32 rounding about K * 6e-8 at most in practice
    /// (partial sums of ~sqrt(K), sqrt(K) roundings); 1e-6 K leaves 16 times
    /// that and still fails on a missing or misplaced tap (an O(0.1)
    /// change).
    #[test]
    fn each_op_matches_the_definition_on_awkward_padding() {
        let channels = |q| [(q, 1, 1), (q, 3, 2), (q, 32, 2)];
        for (q, in_channels, out_channels) in padding_cases().into_iter().flat_map(channels) {
            let p = Conv2dParams {
                batch: 2,
                in_channels,
                out_channels,
                ..q
            };
            let tolerance = 1e-6 * (in_channels * p.kernel * p.kernel) as f64;
            let (x, w, dy) = (
                values(p.x_len(), 0.4),
                values(p.w_len(), 0.5),
                values(p.y_len(), 0.6),
            );
            let want = direct_forward(&p, &x, &w);
            let mut y = vec![f32::NAN; p.y_len()];
            conv2d_forward(&p, &x, &w, None, &mut y);
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                assert!(
                    (*a as f64 - b).abs() <= tolerance,
                    "{p:?} y[{i}]: {a} vs {b}"
                );
            }
            let dot =
                |a: &[f32], b: &[f64]| a.iter().zip(b).map(|(u, v)| *u as f64 * v).sum::<f64>();
            let dy64: Vec<f64> = dy.iter().map(|v| *v as f64).collect();
            let (x64, w64): (Vec<f64>, Vec<f64>) = (
                x.iter().map(|v| *v as f64).collect(),
                w.iter().map(|v| *v as f64).collect(),
            );
            let y_dot_dy = dot(&y, &dy64);
            let mut dx = vec![f32::NAN; p.x_len()];
            conv2d_backward_input(&p, &dy, &w, &mut dx);
            let mut dw = vec![f32::NAN; p.w_len()];
            conv2d_backward_params(&p, &x, &dy, &mut dw, None);
            let bound = tolerance * (p.y_len() as f64);
            assert!((dot(&dx, &x64) - y_dot_dy).abs() <= bound, "{p:?} <x, dx>");
            assert!((dot(&dw, &w64) - y_dot_dy).abs() <= bound, "{p:?} <w, dw>");
        }
    }
}
