//! The reference convolution and transposed convolution: readable im2col and
//! col2im loops around `matrixmultiply::sgemm`, one `_forward` and the
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
//! col2im is the adjoint of im2col (a scatter-add of each column back onto
//! its patch). A transposed convolution is the adjoint of the convolution
//! [`ConvTranspose2dParams::as_conv`] describes: its forward is that
//! convolution's backward-input and its backward-input is that
//! convolution's forward, so both ops run on the same three functions.
//!
//! Every function overwrites its outputs. Parameters must pass their
//! `validate`; slices of the wrong length panic.

use crate::backend::conv_params::{Conv2dParams, ConvTranspose2dParams};

/// c `[m, n]` (+)= a `[m, k]` b `[k, n]`, with `c` dense row-major: the
/// CPU backend's one strided product ([`super::ops::gemm`]); `a` and `b` are
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
    super::ops::gemm(
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
/// o * stride + kk - padding, or None where that falls in the padding.
fn input_at(o: usize, kk: usize, p: &Conv2dParams, size: usize) -> Option<usize> {
    (o * p.stride + kk)
        .checked_sub(p.padding)
        .filter(|i| *i < size)
}

/// col `[K, P]` from one image x `[in_channels, in_h, in_w]`: row
/// (c * k + ki) * k + kj, column oh * out_w + ow holds
/// x[c, oh * s + ki - p, ow * s + kj - p], or 0 in the padding.
fn im2col(p: &Conv2dParams, x: &[f32], col: &mut [f32]) {
    let (k, out_h, out_w) = (p.kernel, p.out_h(), p.out_w());
    for c in 0..p.in_channels {
        let plane = &x[c * p.in_h * p.in_w..(c + 1) * p.in_h * p.in_w];
        for ki in 0..k {
            for kj in 0..k {
                let row = ((c * k + ki) * k + kj) * out_h * out_w;
                for oh in 0..out_h {
                    for ow in 0..out_w {
                        col[row + oh * out_w + ow] =
                            match (input_at(oh, ki, p, p.in_h), input_at(ow, kj, p, p.in_w)) {
                                (Some(ih), Some(iw)) => plane[ih * p.in_w + iw],
                                _ => 0.0,
                            };
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: dx `[in_channels, in_h, in_w]` = the sum, over
/// every column of dcol `[K, P]`, of that column scattered back onto its
/// patch (entries over the padding are dropped). Overwrites `dx`.
fn col2im(p: &Conv2dParams, dcol: &[f32], dx: &mut [f32]) {
    let (k, out_h, out_w) = (p.kernel, p.out_h(), p.out_w());
    dx.fill(0.0);
    for c in 0..p.in_channels {
        let plane = &mut dx[c * p.in_h * p.in_w..(c + 1) * p.in_h * p.in_w];
        for ki in 0..k {
            for kj in 0..k {
                let row = ((c * k + ki) * k + kj) * out_h * out_w;
                for oh in 0..out_h {
                    for ow in 0..out_w {
                        if let (Some(ih), Some(iw)) =
                            (input_at(oh, ki, p, p.in_h), input_at(ow, kj, p, p.in_w))
                        {
                            plane[ih * p.in_w + iw] += dcol[row + oh * out_w + ow];
                        }
                    }
                }
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

/// y `[B, out, out_h, out_w]` = conv(x `[B, in, in_h, in_w]`,
/// w `[out, in, k, k]`) + bias `[out]` (when given).
pub fn conv2d_forward(p: &Conv2dParams, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    assert_eq!(x.len(), p.x_len(), "conv2d_forward: x length");
    assert_eq!(w.len(), p.w_len(), "conv2d_forward: w length");
    assert_eq!(y.len(), p.y_len(), "conv2d_forward: y length");
    let s = sizes(p);
    let mut col = vec![0.0; s.k * s.p];
    for (x_n, y_n) in x.chunks(s.x_image).zip(y.chunks_mut(s.y_image)) {
        im2col(p, x_n, &mut col);
        // y_n [out, P] = W [out, K] col [K, P].
        gemm(
            (p.out_channels, s.k, s.p),
            w,
            (s.k, 1),
            &col,
            (s.p, 1),
            0.0,
            y_n,
        );
    }
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
    let mut dcol = vec![0.0; s.k * s.p];
    for (dy_n, dx_n) in dy.chunks(s.y_image).zip(dx.chunks_mut(s.x_image)) {
        // dcol [K, P] = W^T [K, out] dy_n [out, P]; W^T[k, o] = W[o, k] sits
        // at o * K + k (row stride 1, column stride K).
        gemm(
            (s.k, p.out_channels, s.p),
            w,
            (1, s.k),
            dy_n,
            (s.p, 1),
            0.0,
            &mut dcol,
        );
        col2im(p, &dcol, dx_n);
    }
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
    let mut col = vec![0.0; s.k * s.p];
    dw.fill(0.0);
    for (x_n, dy_n) in x.chunks(s.x_image).zip(dy.chunks(s.y_image)) {
        im2col(p, x_n, &mut col);
        // dW [out, K] += dy_n [out, P] col^T [P, K]; col^T[q, k] = col[k, q]
        // sits at k * P + q (row stride 1, column stride P).
        gemm(
            (p.out_channels, s.p, s.k),
            dy_n,
            (s.p, 1),
            &col,
            (1, s.p),
            1.0,
            dw,
        );
    }
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
