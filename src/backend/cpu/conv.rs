//! The reference convolution and transposed convolution: readable im2row and
//! row2im loops around the `gemm` crate's product, one `_forward` and the
//! `_backward_input` / `_backward_params` pair per op, shapes in the doc
//! comments. Layouts at the API are PyTorch's (see
//! [`crate::backend::conv_params`]); inside, each op works channels-last.
//!
//! For a group of g images, with P = out_h * out_w positions and
//! K = k * k * in_channels, the input is first laid out channels-last
//! (xt `[g, in_h, in_w, in]`), and im2row writes one row per output position
//! (rows `[g P, K]`): row (n, oh, ow) holds, tap by tap (ki, kj), the `in`
//! channel values of the input pixel under that tap, zero where the kernel
//! hangs over the padding. Each tap is then one contiguous copy of `in`
//! values. With the weight reordered to tap-major wt `[out, K]`
//! (wt[o, (ki k + kj) in + c] = w[o, c, ki, kj]):
//!
//! - forward:         yt `[g P, out]` = rows `[g P, K]` wt^T `[K, out]`
//! - backward input:  drows `[g P, K]` = dyt `[g P, out]` wt `[out, K]`, dxt = row2im(drows)
//! - backward params: dwt `[out, K]` = sum over groups of dyt^T rows
//!
//! and the channels-last results are laid back out as NCHW. row2im is the
//! adjoint of im2row (each row's taps added back onto their pixels, again
//! `in` values at a time). A group is as many images as keep rows within
//! [`GROUP_VALUES`]: one product of g P rows packs the weight once per group,
//! and the small feature maps of a DCGAN (P = 49) make a product of one image
//! too narrow to be fast.
//!
//! A transposed convolution is the adjoint of the convolution
//! [`ConvTranspose2dParams::as_conv`] describes: its forward is that
//! convolution's backward-input and its backward-input is that
//! convolution's forward, so both ops run on the same three functions.
//!
//! Every function overwrites its outputs and sums each element in an order
//! fixed by the shapes alone, whatever the thread count. Parameters must pass
//! their `validate`; slices of the wrong length panic.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::backend::conv_params::{Conv2dParams, ConvTranspose2dParams};

/// c `[m, n]` (+)= a `[m, k]` b `[k, n]`, with `c` dense row-major: the
/// layer ops' strided product ([`super::ops::layer_gemm`]); `a` and `b` are
/// given with their (row, column) strides, so a transposed operand is read
/// in place by swapping them. `beta` is 0 (overwrite) or 1 (accumulate).
fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    beta: f32,
    c: &mut [f32],
) {
    super::ops::layer_gemm(
        (m, k, n),
        a,
        (0, a_rs, a_cs),
        b,
        (0, b_rs, b_cs),
        beta,
        c,
        (0, n, 1),
    );
}

/// The input coordinate under output coordinate `o` and kernel offset `kk`,
/// o * stride + kk - padding, or None where that falls in the padding: the
/// definition [`valid_outputs`] is tested against.
#[cfg(test)]
fn input_at(o: usize, kk: usize, p: &Conv2dParams, size: usize) -> Option<usize> {
    (o * p.stride + kk)
        .checked_sub(p.padding)
        .filter(|i| *i < size)
}

/// The output coordinates `lo..hi` whose input coordinate
/// o * stride + kk - padding lies inside `0..size` (the others fall in the
/// padding), for `out` outputs: where [`input_at`] is Some.
fn valid_outputs(kk: usize, p: &Conv2dParams, size: usize, out: usize) -> (usize, usize) {
    let s = p.stride;
    let lo = p.padding.saturating_sub(kk).div_ceil(s);
    let hi = if size + p.padding > kk {
        ((size + p.padding - kk - 1) / s + 1).min(out)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Items of `len` values each that one rayon task takes at least: enough
/// that a task is worth handing to another thread (about 16k values).
fn min_items(len: usize) -> usize {
    ((1 << 14) / len.max(1)).max(1)
}

/// rows `[g P, K]` from a group of g images laid out channels-last,
/// xt `[g, in_h, in_w, in]`: row (n, oh, ow), columns
/// (ki k + kj) in .. + in, hold xt[n, oh s + ki - p, ow s + kj - p, ..], or
/// zeros where that pixel lies in the padding. The rows of each line of
/// output positions (n, oh) are filled in parallel.
fn im2row(p: &Conv2dParams, xt: &[f32], g: usize, rows: &mut [f32]) {
    let (k, c, out_h, out_w) = (p.kernel, p.in_channels, p.out_h(), p.out_w());
    let row_len = k * k * c;
    let image_len = p.in_h * p.in_w * c;
    let line_len = out_w * row_len;
    debug_assert_eq!(rows.len(), g * out_h * line_len);
    let runs = tap_runs(p);
    rows.par_chunks_mut(line_len)
        .with_min_len(min_items(line_len))
        .enumerate()
        .for_each(|(line, dest)| {
            let (n, oh) = (line / out_h, line % out_h);
            let image = &xt[n * image_len..][..image_len];
            for (ow, row) in dest.chunks_mut(row_len).enumerate() {
                let (kj_lo, kj_hi) = runs[ow];
                for (ki, taps) in row.chunks_mut(k * c).enumerate() {
                    let (oh_lo, oh_hi) = valid_outputs(ki, p, p.in_h, out_h);
                    if oh < oh_lo || oh >= oh_hi || kj_lo >= kj_hi {
                        taps.fill(0.0);
                        continue;
                    }
                    // Taps kj_lo..kj_hi read adjacent pixels of input line
                    // ih: one copy of their channels, zeros either side.
                    let ih = oh * p.stride + ki - p.padding;
                    let iw = ow * p.stride + kj_lo - p.padding;
                    taps[..kj_lo * c].fill(0.0);
                    taps[kj_hi * c..].fill(0.0);
                    taps[kj_lo * c..kj_hi * c]
                        .copy_from_slice(&image[(ih * p.in_w + iw) * c..][..(kj_hi - kj_lo) * c]);
                }
            }
        });
}

/// For each output column ow, the taps kj_lo..kj_hi whose input column
/// ow * stride + kj - padding lies inside the input (where [`valid_outputs`]
/// holds ow): a run, since the input column grows with kj.
fn tap_runs(p: &Conv2dParams) -> Vec<(usize, usize)> {
    let out_w = p.out_w();
    let columns: Vec<(usize, usize)> = (0..p.kernel)
        .map(|kj| valid_outputs(kj, p, p.in_w, out_w))
        .collect();
    (0..out_w)
        .map(|ow| {
            let valid = |kj: &usize| columns[*kj].0 <= ow && ow < columns[*kj].1;
            let lo = (0..p.kernel).find(valid).unwrap_or(p.kernel);
            let hi = (lo..p.kernel).find(|kj| !valid(kj)).unwrap_or(p.kernel);
            debug_assert!((hi..p.kernel).all(|kj| !valid(&kj)), "taps form a run");
            (lo, hi.max(lo))
        })
        .collect()
}

/// The adjoint of [`im2row`]: dxt `[g, in_h, in_w, in]` = the sum, over
/// every row of drows `[g P, K]`, of its taps added back onto the pixels
/// they were copied from (taps over the padding are dropped). Overwrites
/// `dxt`. Images are summed in parallel, each by one thread in the order
/// (oh, ow, ki, kj).
fn row2im(p: &Conv2dParams, drows: &[f32], g: usize, dxt: &mut [f32]) {
    let (k, c, out_h, out_w) = (p.kernel, p.in_channels, p.out_h(), p.out_w());
    let row_len = k * k * c;
    let image_rows = out_h * out_w * row_len;
    let image_len = p.in_h * p.in_w * c;
    debug_assert_eq!(dxt.len(), g * image_len);
    let runs = tap_runs(p);
    dxt.par_chunks_mut(image_len)
        .with_min_len(min_items(image_rows))
        .enumerate()
        .for_each(|(n, image)| {
            image.fill(0.0);
            let source = &drows[n * image_rows..][..image_rows];
            for (q, row) in source.chunks(row_len).enumerate() {
                let (oh, ow) = (q / out_w, q % out_w);
                let (kj_lo, kj_hi) = runs[ow];
                if kj_lo >= kj_hi {
                    continue;
                }
                for (ki, taps) in row.chunks(k * c).enumerate() {
                    let (oh_lo, oh_hi) = valid_outputs(ki, p, p.in_h, out_h);
                    if oh < oh_lo || oh >= oh_hi {
                        continue;
                    }
                    let ih = oh * p.stride + ki - p.padding;
                    let iw = ow * p.stride + kj_lo - p.padding;
                    let run = &taps[kj_lo * c..kj_hi * c];
                    let pixels = &mut image[(ih * p.in_w + iw) * c..][..run.len()];
                    pixels.iter_mut().zip(run).for_each(|(t, v)| *t += v);
                }
            }
        });
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

/// The tap-major weight wt `[out, k, k, in]` from w `[out, in, k, k]`.
fn weight_to_taps(p: &Conv2dParams, w: &[f32], wt: &mut [f32]) {
    let (taps, c) = (p.kernel * p.kernel, p.in_channels);
    for (src, dest) in w.chunks(c * taps).zip(wt.chunks_mut(c * taps)) {
        for (ch, kernel) in src.chunks(taps).enumerate() {
            for (tap, v) in kernel.iter().enumerate() {
                dest[tap * c + ch] = *v;
            }
        }
    }
}

/// The inverse of [`weight_to_taps`]: w `[out, in, k, k]` from wt.
fn weight_from_taps(p: &Conv2dParams, wt: &[f32], w: &mut [f32]) {
    let (taps, c) = (p.kernel * p.kernel, p.in_channels);
    for (src, dest) in wt.chunks(c * taps).zip(w.chunks_mut(c * taps)) {
        for (ch, kernel) in dest.chunks_mut(taps).enumerate() {
            for (tap, v) in kernel.iter_mut().enumerate() {
                *v = src[tap * c + ch];
            }
        }
    }
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

/// The per-call sizes: K = k * k * in_channels, P = out_h * out_w, and the
/// per-image lengths of x and y.
struct Sizes {
    k: usize,
    p: usize,
    x_image: usize,
    y_image: usize,
}

fn sizes(p: &Conv2dParams) -> Sizes {
    Sizes {
        k: p.in_channels * p.kernel * p.kernel,
        p: p.out_h() * p.out_w(),
        x_image: p.in_channels * p.in_h * p.in_w,
        y_image: p.out_channels * p.out_h() * p.out_w(),
    }
}

/// Values of the row buffer of one group of images: the products run over
/// the rows of several images at once (one `[g P, K]` operand), so a group
/// is as many images as fit this many values (at least one).
const GROUP_VALUES: usize = 1 << 22;

impl Sizes {
    /// Images per group.
    fn group(&self, batch: usize) -> usize {
        (GROUP_VALUES / (self.k * self.p).max(1)).clamp(1, batch.max(1))
    }
}

/// The scratch buffers of one call: the rows `[g P, K]`, the group's input
/// and output channels-last, and the tap-major weight.
struct Scratch<'a> {
    rows: &'a mut [f32],
    input: &'a mut [f32],
    output: &'a mut [f32],
    weight: &'a mut [f32],
}

thread_local! {
    /// The scratch buffers of the last call on this thread, kept so that a
    /// step does not allocate (and fault in) tens of megabytes per call.
    static SCRATCH: RefCell<[Vec<f32>; 4]> = const {
        RefCell::new([Vec::new(), Vec::new(), Vec::new(), Vec::new()])
    };
}

/// Runs `f` on scratch buffers for a group of `group` images of `p`. Their
/// contents are whatever the last call left: every user overwrites them.
fn with_scratch<R>(p: &Conv2dParams, group: usize, f: impl FnOnce(Scratch) -> R) -> R {
    let s = sizes(p);
    let lens = [
        group * s.p * s.k,
        group * s.x_image,
        group * s.y_image,
        p.w_len(),
    ];
    SCRATCH.with(|cell| {
        let mut buffers = cell.borrow_mut();
        for (buffer, len) in buffers.iter_mut().zip(lens) {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
        }
        let [rows, input, output, weight] = &mut *buffers;
        f(Scratch {
            rows: &mut rows[..lens[0]],
            input: &mut input[..lens[1]],
            output: &mut output[..lens[2]],
            weight: &mut weight[..lens[3]],
        })
    })
}

/// y `[B, out, out_h, out_w]` = conv(x `[B, in, in_h, in_w]`,
/// w `[out, in, k, k]`) + bias `[out]` (when given).
pub fn conv2d_forward(p: &Conv2dParams, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    assert_eq!(x.len(), p.x_len(), "conv2d_forward: x length");
    assert_eq!(w.len(), p.w_len(), "conv2d_forward: w length");
    assert_eq!(y.len(), p.y_len(), "conv2d_forward: y length");
    let s = sizes(p);
    let group = s.group(p.batch);
    with_scratch(p, group, |scratch| {
        weight_to_taps(p, w, scratch.weight);
        for (x_g, y_g) in x
            .chunks(group * s.x_image)
            .zip(y.chunks_mut(group * s.y_image))
        {
            let g = x_g.len() / s.x_image;
            let rows = &mut scratch.rows[..g * s.p * s.k];
            let xt = &mut scratch.input[..x_g.len()];
            let yt = &mut scratch.output[..y_g.len()];
            to_channels_last(p.in_channels, p.in_h * p.in_w, x_g, xt);
            im2row(p, xt, g, rows);
            // yt [g P, out] = rows [g P, K] wt^T [K, out]; wt^T[k, o] = wt[o, k]
            // sits at o * K + k (row stride 1, column stride K).
            gemm(
                (g * s.p, s.k, p.out_channels),
                rows,
                (s.k, 1),
                scratch.weight,
                (1, s.k),
                0.0,
                yt,
            );
            from_channels_last(p.out_channels, s.p, yt, y_g);
        }
    });
    if let Some(bias) = bias {
        add_bias(p.out_channels, s.p, bias, y);
    }
}

/// dx `[B, in, in_h, in_w]` = the gradient of <y, dy> with respect to x, for
/// dy `[B, out, out_h, out_w]` and w `[out, in, k, k]`: row2im(dy W) per image.
pub fn conv2d_backward_input(p: &Conv2dParams, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    assert_eq!(dy.len(), p.y_len(), "conv2d_backward_input: dy length");
    assert_eq!(w.len(), p.w_len(), "conv2d_backward_input: w length");
    assert_eq!(dx.len(), p.x_len(), "conv2d_backward_input: dx length");
    let s = sizes(p);
    let group = s.group(p.batch);
    with_scratch(p, group, |scratch| {
        weight_to_taps(p, w, scratch.weight);
        for (dy_g, dx_g) in dy
            .chunks(group * s.y_image)
            .zip(dx.chunks_mut(group * s.x_image))
        {
            let g = dy_g.len() / s.y_image;
            let drows = &mut scratch.rows[..g * s.p * s.k];
            let dyt = &mut scratch.output[..dy_g.len()];
            let dxt = &mut scratch.input[..dx_g.len()];
            to_channels_last(p.out_channels, s.p, dy_g, dyt);
            // drows [g P, K] = dyt [g P, out] wt [out, K].
            gemm(
                (g * s.p, p.out_channels, s.k),
                dyt,
                (p.out_channels, 1),
                scratch.weight,
                (s.k, 1),
                0.0,
                drows,
            );
            row2im(p, drows, g, dxt);
            from_channels_last(p.in_channels, p.in_h * p.in_w, dxt, dx_g);
        }
    });
}

/// dw `[out, in, k, k]` = the sum over images of dy `[out, P]` rows `[P, K]`
/// (the im2row rows of x, the sum taken tap-major and reordered),
/// and dbias `[out]` (when given) = dy summed over batch and positions, for
/// x `[B, in, in_h, in_w]` and dy `[B, out, out_h, out_w]`.
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
    let s = sizes(p);
    let group = s.group(p.batch);
    with_scratch(p, group, |scratch| {
        let dwt = scratch.weight;
        dwt.fill(0.0);
        for (x_g, dy_g) in x
            .chunks(group * s.x_image)
            .zip(dy.chunks(group * s.y_image))
        {
            let g = x_g.len() / s.x_image;
            let rows = &mut scratch.rows[..g * s.p * s.k];
            let xt = &mut scratch.input[..x_g.len()];
            let dyt = &mut scratch.output[..dy_g.len()];
            to_channels_last(p.in_channels, p.in_h * p.in_w, x_g, xt);
            im2row(p, xt, g, rows);
            to_channels_last(p.out_channels, s.p, dy_g, dyt);
            // dwt [out, K] += dyt^T [out, g P] rows [g P, K]; dyt^T[o, q] =
            // dyt[q, o] sits at q * out + o (row stride 1, column stride out).
            gemm(
                (p.out_channels, g * s.p, s.k),
                dyt,
                (1, p.out_channels),
                rows,
                (s.k, 1),
                1.0,
                dwt,
            );
        }
        weight_from_taps(p, dwt, dw);
    });
    if let Some(dbias) = dbias {
        bias_grad(p.out_channels, s.p, dy, dbias);
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

    /// A shape whose row buffer holds 3 images a group, so a batch of 7
    /// runs as groups of 3, 3 and 1.
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

    /// One-channel convolutions over a square input of `size`, one per
    /// (size, kernel, stride, padding): padding wider and narrower than the
    /// kernel's overhang, strides that skip input, a 1x1 map.
    fn padding_cases() -> Vec<(usize, Conv2dParams)> {
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
        ]
        .into_iter()
        .map(|(size, kernel, stride, padding)| {
            let p = Conv2dParams {
                batch: 1,
                in_channels: 1,
                out_channels: 1,
                in_h: size,
                in_w: size,
                kernel,
                stride,
                padding,
            };
            (size, p)
        })
        .collect()
    }

    #[test]
    fn valid_outputs_are_exactly_those_inside_the_input() {
        for (size, p) in padding_cases() {
            let out = p.out_h();
            for kk in 0..p.kernel {
                let (lo, hi) = valid_outputs(kk, &p, size, out);
                let inside: Vec<usize> = (0..out)
                    .filter(|&o| input_at(o, kk, &p, size).is_some())
                    .collect();
                assert_eq!(inside, (lo..hi).collect::<Vec<_>>(), "{p:?} kk {kk}");
            }
        }
    }

    #[test]
    fn tap_runs_are_exactly_the_taps_inside_the_input() {
        for (size, p) in padding_cases() {
            for (ow, (lo, hi)) in tap_runs(&p).into_iter().enumerate() {
                let inside: Vec<usize> = (0..p.kernel)
                    .filter(|&kj| input_at(ow, kj, &p, size).is_some())
                    .collect();
                assert_eq!(inside, (lo..hi).collect::<Vec<_>>(), "{p:?} ow {ow}");
            }
        }
    }

    #[test]
    fn groups_of_images_give_what_one_image_at_a_time_gives() {
        let p = wide();
        assert_eq!(sizes(&p).group(p.batch), 3);
        let one = Conv2dParams { batch: 1, ..p };
        let s = sizes(&p);
        let (x, w, dy) = (
            values(p.x_len(), 0.1),
            values(p.w_len(), 0.2),
            values(p.y_len(), 0.3),
        );
        let mut y = vec![0.0; p.y_len()];
        conv2d_forward(&p, &x, &w, None, &mut y);
        let mut dx = vec![0.0; p.x_len()];
        conv2d_backward_input(&p, &dy, &w, &mut dx);
        let mut dw = vec![0.0; p.w_len()];
        conv2d_backward_params(&p, &x, &dy, &mut dw, None);
        let mut dw_sum = vec![0.0f64; p.w_len()];
        for n in 0..p.batch {
            let (x_n, dy_n) = (
                &x[n * s.x_image..][..s.x_image],
                &dy[n * s.y_image..][..s.y_image],
            );
            let mut y_n = vec![0.0; s.y_image];
            conv2d_forward(&one, x_n, &w, None, &mut y_n);
            assert_eq!(
                &y[n * s.y_image..][..s.y_image],
                &y_n[..],
                "forward, image {n}"
            );
            let mut dx_n = vec![0.0; s.x_image];
            conv2d_backward_input(&one, dy_n, &w, &mut dx_n);
            assert_eq!(
                &dx[n * s.x_image..][..s.x_image],
                &dx_n[..],
                "backward input, image {n}"
            );
            let mut dw_n = vec![0.0; p.w_len()];
            conv2d_backward_params(&one, x_n, dy_n, &mut dw_n, None);
            dw_sum
                .iter_mut()
                .zip(&dw_n)
                .for_each(|(a, b)| *a += *b as f64);
        }
        // The weight gradient sums 7 * 784 products in another order: f32
        // rounding of a sum of ~5,000 terms of O(1) is ~1e-3 at most.
        for (i, (a, b)) in dw.iter().zip(&dw_sum).enumerate() {
            assert!(
                (*a as f64 - b).abs() <= 1e-3 + 1e-5 * b.abs(),
                "dw[{i}]: {a} vs {b}"
            );
        }
    }
}
