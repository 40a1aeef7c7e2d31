//! The reference convolution and transposed convolution: readable im2col and
//! col2im loops around the `gemm` crate's product, one `_forward` and the
//! `_backward_input` / `_backward_params` pair per op, shapes in the doc
//! comments. Layouts are PyTorch's (see [`crate::backend::conv_params`]).
//!
//! For one image, with K = in_channels * k * k and P = out_h * out_w, im2col
//! lays the input out as col `[K, P]` (column p holds the input patch under
//! output position p, zero where the kernel hangs over the padding), so that
//!
//! - forward:         y `[out, P]` = W `[out, K]` col `[K, P]`
//! - backward input:  dcol `[K, P]` = W^T dy `[out, P]`, dx = col2im(dcol)
//! - backward params: dW `[out, K]` = sum over images of dy col^T
//!
//! The products run over a group of g images at once, their columns side by
//! side (col `[K, g P]`, dy regrouped to `[out, g P]`): one product of g P
//! columns instead of g of P packs W once per group, and the small feature
//! maps of a DCGAN (P = 49) make a product of one image too narrow to be fast.
//!
//! col2im is the adjoint of im2col (a scatter-add of each column back onto
//! its patch). A transposed convolution is the adjoint of the convolution
//! [`ConvTranspose2dParams::as_conv`] describes: its forward is that
//! convolution's backward-input and its backward-input is that
//! convolution's forward, so both ops run on the same three functions.
//!
//! Every function overwrites its outputs. Parameters must pass their
//! `validate`; slices of the wrong length panic.

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

/// col `[K, g P]` from a group of g images x `[g, in_channels, in_h, in_w]`:
/// row (c * k + ki) * k + kj, column n * P + oh * out_w + ow holds
/// x[n, c, oh * s + ki - p, ow * s + kj - p], or 0 in the padding. Each row
/// of an image's output grid is the run of valid columns (a plain copy at
/// stride 1) between zeros. Rows are filled in parallel.
fn im2col(p: &Conv2dParams, x: &[f32], g: usize, col: &mut [f32]) {
    let (k, out_h, out_w) = (p.kernel, p.out_h(), p.out_w());
    let (plane_len, image_len) = (p.in_h * p.in_w, p.in_channels * p.in_h * p.in_w);
    let positions = out_h * out_w;
    col.par_chunks_mut(g * positions)
        .with_min_len(min_items(g * positions))
        .enumerate()
        .for_each(|(row, dest)| {
            let (c, ki, kj) = (row / (k * k), row / k % k, row % k);
            let (oh_lo, oh_hi) = valid_outputs(ki, p, p.in_h, out_h);
            let (ow_lo, ow_hi) = valid_outputs(kj, p, p.in_w, out_w);
            for (n, image) in dest.chunks_mut(positions).enumerate() {
                let plane = &x[n * image_len + c * plane_len..][..plane_len];
                for (oh, line) in image.chunks_mut(out_w).enumerate() {
                    if oh < oh_lo || oh >= oh_hi || ow_lo >= ow_hi {
                        line.fill(0.0);
                        continue;
                    }
                    let ih = oh * p.stride + ki - p.padding;
                    let start = ih * p.in_w + ow_lo * p.stride + kj - p.padding;
                    line[..ow_lo].fill(0.0);
                    line[ow_hi..].fill(0.0);
                    let run = &mut line[ow_lo..ow_hi];
                    if p.stride == 1 {
                        run.copy_from_slice(&plane[start..start + run.len()]);
                    } else {
                        for (j, v) in run.iter_mut().enumerate() {
                            *v = plane[start + j * p.stride];
                        }
                    }
                }
            }
        });
}

/// The adjoint of [`im2col`]: dx `[g, in_channels, in_h, in_w]` = the sum,
/// over every column of dcol `[K, g P]`, of that column scattered back onto
/// its image's patch (entries over the padding are dropped). Overwrites
/// `dx`; the planes (image, channel) are summed in parallel, each in the
/// same order as one thread would.
fn col2im(p: &Conv2dParams, dcol: &[f32], g: usize, dx: &mut [f32]) {
    let (k, out_h, out_w) = (p.kernel, p.out_h(), p.out_w());
    let columns = g * out_h * out_w;
    let plane_len = p.in_h * p.in_w;
    dx.par_chunks_mut(plane_len)
        .with_min_len(min_items(plane_len * k * k))
        .enumerate()
        .for_each(|(i, plane)| {
            let (n, c) = (i / p.in_channels, i % p.in_channels);
            plane.fill(0.0);
            for ki in 0..k {
                let (oh_lo, oh_hi) = valid_outputs(ki, p, p.in_h, out_h);
                for kj in 0..k {
                    let (ow_lo, ow_hi) = valid_outputs(kj, p, p.in_w, out_w);
                    if ow_lo >= ow_hi {
                        continue;
                    }
                    let row = ((c * k + ki) * k + kj) * columns + n * out_h * out_w;
                    for oh in oh_lo..oh_hi {
                        let ih = oh * p.stride + ki - p.padding;
                        let start = ih * p.in_w + ow_lo * p.stride + kj - p.padding;
                        let line = &dcol[row + oh * out_w + ow_lo..row + oh * out_w + ow_hi];
                        if p.stride == 1 {
                            let target = &mut plane[start..start + line.len()];
                            target.iter_mut().zip(line).for_each(|(t, v)| *t += v);
                        } else {
                            for (j, v) in line.iter().enumerate() {
                                plane[start + j * p.stride] += v;
                            }
                        }
                    }
                }
            }
        });
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

/// The per-call sizes: K = in * k * k, P = out_h * out_w, and the per-image
/// lengths of x and y.
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

/// Values of the column buffer of one group of images: the products run
/// over the columns of several images at once (one `[K, g P]` operand), so
/// a group is as many images as fit this many values (at least one).
const GROUP_VALUES: usize = 1 << 22;

impl Sizes {
    /// Images per group.
    fn group(&self, batch: usize) -> usize {
        (GROUP_VALUES / (self.k * self.p).max(1)).clamp(1, batch.max(1))
    }
}

/// cols `[out, g P]` from the images `[g, out, P]`: row o holds the planes
/// o of every image side by side. Rows of planes are copied in parallel.
fn images_to_cols(out: usize, p: usize, images: &[f32], cols: &mut [f32]) {
    let g = images.len() / (out * p).max(1);
    cols.par_chunks_mut(p)
        .with_min_len(min_items(p))
        .enumerate()
        .for_each(|(i, col)| {
            let (o, n) = (i / g, i % g);
            col.copy_from_slice(&images[(n * out + o) * p..][..p]);
        });
}

/// The inverse of [`images_to_cols`]: the images `[g, out, P]` from cols
/// `[out, g P]`.
fn cols_to_images(out: usize, p: usize, cols: &[f32], images: &mut [f32]) {
    let g = images.len() / (out * p).max(1);
    images
        .par_chunks_mut(p)
        .with_min_len(min_items(p))
        .enumerate()
        .for_each(|(i, image)| {
            let (n, o) = (i / out, i % out);
            image.copy_from_slice(&cols[o * g * p + n * p..][..p]);
        });
}

thread_local! {
    /// The column buffers of the last call on this thread, kept so that a
    /// step does not allocate (and fault in) tens of megabytes per call.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` on two scratch buffers of `a` and `b` values. Their contents are
/// whatever the last call left: every user overwrites all of them.
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buffers = cell.borrow_mut();
        let (first, second) = &mut *buffers;
        if first.len() < a {
            first.resize(a, 0.0);
        }
        if second.len() < b {
            second.resize(b, 0.0);
        }
        f(&mut first[..a], &mut second[..b])
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
    with_scratch(
        s.k * group * s.p,
        p.out_channels * group * s.p,
        |col, y_cols| {
            for (x_g, y_g) in x
                .chunks(group * s.x_image)
                .zip(y.chunks_mut(group * s.y_image))
            {
                let g = x_g.len() / s.x_image;
                let (col, y_cols) = (
                    &mut col[..s.k * g * s.p],
                    &mut y_cols[..p.out_channels * g * s.p],
                );
                im2col(p, x_g, g, col);
                // The group's y [out, g P] = W [out, K] col [K, g P].
                gemm(
                    (p.out_channels, s.k, g * s.p),
                    w,
                    (s.k, 1),
                    col,
                    (g * s.p, 1),
                    0.0,
                    y_cols,
                );
                cols_to_images(p.out_channels, s.p, y_cols, y_g);
            }
        },
    );
    if let Some(bias) = bias {
        add_bias(p.out_channels, s.p, bias, y);
    }
}

/// dx `[B, in, in_h, in_w]` = the gradient of <y, dy> with respect to x, for
/// dy `[B, out, out_h, out_w]` and w `[out, in, k, k]`: col2im(W^T dy) per image.
pub fn conv2d_backward_input(p: &Conv2dParams, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    assert_eq!(dy.len(), p.y_len(), "conv2d_backward_input: dy length");
    assert_eq!(w.len(), p.w_len(), "conv2d_backward_input: w length");
    assert_eq!(dx.len(), p.x_len(), "conv2d_backward_input: dx length");
    let s = sizes(p);
    let group = s.group(p.batch);
    with_scratch(
        s.k * group * s.p,
        p.out_channels * group * s.p,
        |dcol, dy_cols| {
            for (dy_g, dx_g) in dy
                .chunks(group * s.y_image)
                .zip(dx.chunks_mut(group * s.x_image))
            {
                let g = dy_g.len() / s.y_image;
                let (dcol, dy_cols) = (
                    &mut dcol[..s.k * g * s.p],
                    &mut dy_cols[..p.out_channels * g * s.p],
                );
                images_to_cols(p.out_channels, s.p, dy_g, dy_cols);
                // dcol [K, g P] = W^T [K, out] dy [out, g P]; W^T[k, o] = W[o, k]
                // sits at o * K + k (row stride 1, column stride K).
                gemm(
                    (s.k, p.out_channels, g * s.p),
                    w,
                    (1, s.k),
                    dy_cols,
                    (g * s.p, 1),
                    0.0,
                    dcol,
                );
                col2im(p, dcol, g, dx_g);
            }
        },
    );
}

/// dw `[out, in, k, k]` = the sum over images of dy `[out, P]` col^T `[P, K]`,
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
    dw.fill(0.0);
    with_scratch(
        s.k * group * s.p,
        p.out_channels * group * s.p,
        |col, dy_cols| {
            for (x_g, dy_g) in x
                .chunks(group * s.x_image)
                .zip(dy.chunks(group * s.y_image))
            {
                let g = x_g.len() / s.x_image;
                let (col, dy_cols) = (
                    &mut col[..s.k * g * s.p],
                    &mut dy_cols[..p.out_channels * g * s.p],
                );
                im2col(p, x_g, g, col);
                images_to_cols(p.out_channels, s.p, dy_g, dy_cols);
                // dW [out, K] += dy [out, g P] col^T [g P, K]; col^T[q, k] = col[k, q]
                // sits at k * g P + q (row stride 1, column stride g P).
                gemm(
                    (p.out_channels, g * s.p, s.k),
                    dy_cols,
                    (g * s.p, 1),
                    col,
                    (1, g * s.p),
                    1.0,
                    dw,
                );
            }
        },
    );
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

    /// A shape whose column buffer holds 3 images a group, so a batch of 7
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

    #[test]
    fn valid_outputs_are_exactly_those_inside_the_input() {
        for (size, kernel, stride, padding) in [
            (1, 1, 1, 0),
            (5, 3, 1, 1),
            (7, 5, 2, 2),
            (28, 5, 2, 2),
            (4, 4, 2, 1),
            (3, 5, 1, 3),
            (6, 3, 3, 0),
        ] {
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
            let out = p.out_h();
            for kk in 0..kernel {
                let (lo, hi) = valid_outputs(kk, &p, size, out);
                let inside: Vec<usize> = (0..out)
                    .filter(|&o| input_at(o, kk, &p, size).is_some())
                    .collect();
                assert_eq!(inside, (lo..hi).collect::<Vec<_>>(), "{p:?} kk {kk}");
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
