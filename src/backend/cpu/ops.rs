//! The reference ops as pure functions on slices and [`Mat`] views, shapes in
//! comments. [`super::CpuBackend`] wires them to its tensor table.

use rayon::prelude::*;

use crate::backend::{Clock, Dropout, Mat};
use crate::model::{Activation, AdamSettings, LayerSlot};
use crate::rng;

/// The operand extents of one strided product: m x k times k x n into
/// m x n, each operand by its base offset and (row, column) strides.
type Strides = (usize, usize, usize);

/// Panics unless every element the product reads or writes lies inside its
/// slice; true when there is anything to compute (m, n > 0).
fn check_product(
    (m, k, n): (usize, usize, usize),
    a: (&[f32], Strides),
    b: (&[f32], Strides),
    c: (&[f32], Strides),
) -> bool {
    if m == 0 || n == 0 {
        return false;
    }
    // Bounds: the last element each operand touches must be inside its slice.
    let last = |(off, rs, cs): Strides, rows: usize, cols: usize| {
        off + (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs
    };
    assert!(
        k == 0 || last(a.1, m, k) < a.0.len(),
        "gemm: A out of bounds"
    );
    assert!(
        k == 0 || last(b.1, k, n) < b.0.len(),
        "gemm: B out of bounds"
    );
    assert!(last(c.1, m, n) < c.0.len(), "gemm: C out of bounds");
    true
}

/// `c (+)= op(a) op(b)` through `matrixmultiply::sgemm`, where each operand is
/// given by its base slice offset and its row and column strides. m x k times
/// k x n into m x n. `beta` is 0 (overwrite) or 1 (accumulate). The MLP
/// tutorials' products: their numbers are pinned bit for bit to this
/// library's blocking (`tests/pinned_mlp.rs`).
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    a_at: Strides,
    b: &[f32],
    b_at: Strides,
    beta: f32,
    c: &mut [f32],
    c_at: Strides,
) {
    if !check_product((m, k, n), (a, a_at), (b, b_at), (c, c_at)) {
        return;
    }
    let ((a_off, a_rs, a_cs), (b_off, b_rs, b_cs), (c_off, c_rs, c_cs)) = (a_at, b_at, c_at);
    // SAFETY: check_product keeps every index sgemm forms inside the slices,
    // and `c` is borrowed mutably, so it aliases neither `a` nor `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr().add(a_off),
            a_rs as isize,
            a_cs as isize,
            b.as_ptr().add(b_off),
            b_rs as isize,
            b_cs as isize,
            beta,
            c.as_mut_ptr().add(c_off),
            c_rs as isize,
            c_cs as isize,
        );
    }
}

/// The same product as [`gemm`] through the `gemm` crate: the products of
/// the layer ops (convolutions, and the layer models' Linear as a 1x1
/// convolution). `gemm` picks its kernel at run time (AVX-512 where the CPU
/// has it, which `matrixmultiply` lacks, else AVX2 and FMA, else SSE) and
/// splits large products over rayon's thread pool (`RAYON_NUM_THREADS` sets
/// its size). It splits the output, never the inner dimension, so each
/// element is summed in the same order whatever the thread count: a run is
/// bit for bit repeatable on one machine.
#[allow(clippy::too_many_arguments)]
pub(super) fn layer_gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    a_at: Strides,
    b: &[f32],
    b_at: Strides,
    beta: f32,
    c: &mut [f32],
    c_at: Strides,
) {
    if !check_product((m, k, n), (a, a_at), (b, b_at), (c, c_at)) {
        return;
    }
    let ((a_off, a_rs, a_cs), (b_off, b_rs, b_cs), (c_off, c_rs, c_cs)) = (a_at, b_at, c_at);
    if k == 0 {
        // An empty sum: the product is zero (`gemm` would leave c as it is).
        if beta == 0.0 {
            for i in 0..m {
                for j in 0..n {
                    c[c_off + i * c_rs + j * c_cs] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: check_product keeps every index the product forms inside the
    // slices, and `c` is borrowed mutably, so it aliases neither `a` nor `b`.
    // `gemm` takes (column, row) strides and computes
    // dst = alpha dst + beta lhs rhs, reading dst only when asked to.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr().add(c_off),
            c_cs as isize,
            c_rs as isize,
            beta != 0.0,
            a.as_ptr().add(a_off),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr().add(b_off),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// y [B, out] = dropout(act(x [B, in] W^T [in, out] + b [out])).
#[allow(clippy::too_many_arguments)]
pub fn linear_forward(
    xd: &[f32],
    x: Mat,
    params: &[f32],
    layer: LayerSlot,
    act: Activation,
    dropout: Option<Dropout>,
    clock: Clock,
    yd: &mut [f32],
    y: Mat,
) {
    let (batch, n_in, n_out) = (x.rows as usize, layer.in_dim, layer.out_dim);
    debug_assert_eq!(
        (x.cols as usize, y.rows as usize, y.cols as usize),
        (n_in, batch, n_out)
    );
    // z = x W^T: W^T[i, o] = W[o, i] sits at weight + o * in + i (row stride 1, col stride in).
    gemm(
        (batch, n_in, n_out),
        xd,
        (x.offset as usize, x.stride as usize, 1),
        params,
        (layer.weight, 1, n_in),
        0.0,
        yd,
        (y.offset as usize, y.stride as usize, 1),
    );
    // Epilogue, row by row: + bias, activation, then the dropout mask.
    let bias = &params[layer.bias..layer.bias + n_out];
    for r in 0..batch {
        let row = &mut yd[y.at(r, 0)..y.at(r, 0) + n_out];
        for (v, b) in row.iter_mut().zip(bias) {
            *v = act.apply(*v + b);
        }
        if let Some(d) = dropout {
            let mask = rng::DropoutMask::new(clock.seed, d.stream, clock.step, d.p);
            for (c, v) in row.iter_mut().enumerate() {
                let keep = mask.keeps((r * n_out + c) as u32);
                *v = if keep { *v / (1.0 - d.p) } else { 0.0 };
            }
        }
    }
}

/// y [R, C] = dropout(act(x [R, C])): element by element, the activation
/// and then the dropout mask and scale exactly as the epilogue of
/// [`linear_forward`] applies them (the mask index is r * C + c).
pub fn activation_forward(
    xd: &[f32],
    x: Mat,
    act: Activation,
    dropout: Option<Dropout>,
    clock: Clock,
    yd: &mut [f32],
    y: Mat,
) {
    let (rows, cols) = (y.rows as usize, y.cols as usize);
    assert_eq!(
        (x.rows as usize, x.cols as usize),
        (rows, cols),
        "activation_forward: x and y must have the same shape"
    );
    if rows == 0 || cols == 0 {
        return;
    }
    let mask = dropout.map(|d| {
        (
            rng::DropoutMask::new(clock.seed, d.stream, clock.step, d.p),
            d.p,
        )
    });
    for_each_row(yd, y, |r, row| {
        let xrow = &xd[x.at(r, 0)..x.at(r, 0) + cols];
        let first = (r * cols) as u32;
        for_activation(act, |act| match mask {
            // One pass: the activation, then the mask and scale, per element.
            Some((mask, p)) => {
                for ((v, &z), c) in row.iter_mut().zip(xrow).zip(0u32..) {
                    let a = act.apply(z);
                    *v = if mask.keeps(first.wrapping_add(c)) {
                        a / (1.0 - p)
                    } else {
                        0.0
                    };
                }
            }
            None => {
                for (v, &z) in row.iter_mut().zip(xrow) {
                    *v = act.apply(z);
                }
            }
        });
    });
}

/// Calls `f(act)` from a `match` arm per kind, so that each arm's copy of
/// `f` sees a constant kind and its loops need no branch on it per element.
#[inline(always)]
fn for_activation(act: Activation, f: impl FnOnce(Activation)) {
    match act {
        Activation::Identity => f(Activation::Identity),
        Activation::Relu => f(Activation::Relu),
        Activation::LeakyRelu(slope) => f(Activation::LeakyRelu(slope)),
        Activation::Sigmoid => f(Activation::Sigmoid),
        Activation::Tanh => f(Activation::Tanh),
    }
}

/// Views smaller than this run their rows on the calling thread: handing
/// them to rayon's pool costs more than the work (the MLP tutorials' layers).
const PARALLEL_VALUES: usize = 1 << 18;

/// Calls `f(r, row)` for each row r of the view `m` of `data`, each row its
/// `m.cols`-long slice: on rayon's pool (at least about 16k values a task)
/// for views of at least [`PARALLEL_VALUES`], else in order on this thread.
fn for_each_row(data: &mut [f32], m: Mat, f: impl Fn(usize, &mut [f32]) + Sync) {
    let (rows, cols) = (m.rows as usize, m.cols as usize);
    if rows == 0 || cols == 0 {
        return;
    }
    let stride = (m.stride as usize).max(cols);
    let view = &mut data[m.offset as usize..m.at(rows - 1, 0) + cols];
    if rows * cols < PARALLEL_VALUES {
        view.chunks_mut(stride)
            .enumerate()
            .for_each(|(r, chunk)| f(r, &mut chunk[..cols]));
    } else {
        view.par_chunks_mut(stride)
            .with_min_len(((1 << 14) / stride).max(1))
            .enumerate()
            .for_each(|(r, chunk)| f(r, &mut chunk[..cols]));
    }
}

/// dz [B, out] = dy * act'(y) with the dropout mask and scale folded in (see
/// `Backend::linear_backward_input`), written into the view `dz` of `dzd`.
#[allow(clippy::too_many_arguments)]
pub fn activation_backward(
    dyd: &[f32],
    dy: Mat,
    yd: &[f32],
    y: Mat,
    act: Activation,
    dropout: Option<Dropout>,
    clock: Clock,
    dzd: &mut [f32],
    dz: Mat,
) {
    let n_out = y.cols as usize;
    let mask = dropout.map(|d| {
        (
            rng::DropoutMask::new(clock.seed, d.stream, clock.step, d.p),
            d.p,
        )
    });
    for_each_row(dzd, dz, |r, row| {
        let y_row = &yd[y.at(r, 0)..][..n_out];
        let dy_row = &dyd[dy.at(r, 0)..][..n_out];
        let first = (r * n_out) as u32;
        for_activation(act, |act| match mask {
            Some((mask, p)) => {
                for (((dz, &out), &g), c) in row.iter_mut().zip(y_row).zip(dy_row).zip(0u32..) {
                    // Computed for every element and then selected, so
                    // that the loop needs no branch on the mask.
                    let kept = act.derivative_from_output(out * (1.0 - p)) / (1.0 - p);
                    let dact = if mask.keeps(first.wrapping_add(c)) {
                        kept
                    } else {
                        0.0
                    };
                    *dz = g * dact;
                }
            }
            None => {
                for ((dz, &out), &g) in row.iter_mut().zip(y_row).zip(dy_row) {
                    *dz = g * act.derivative_from_output(out);
                }
            }
        });
    });
}

/// dx [B, dx.cols] = dz [B, out] W [out, in][:, ..dx.cols].
pub fn linear_backward_input(
    dz: &[f32],
    params: &[f32],
    layer: LayerSlot,
    dxd: &mut [f32],
    dx: Mat,
) {
    let (batch, n_out) = (dx.rows as usize, layer.out_dim);
    gemm(
        (batch, n_out, dx.cols as usize),
        dz,
        (0, n_out, 1),
        params,
        (layer.weight, layer.in_dim, 1),
        0.0,
        dxd,
        (dx.offset as usize, dx.stride as usize, 1),
    );
}

/// dW [out, in] = dz^T [out, B] x [B, in]; db [out] = sum over rows of dz.
pub fn linear_backward_params(dz: &[f32], xd: &[f32], x: Mat, layer: LayerSlot, grads: &mut [f32]) {
    let (batch, n_in, n_out) = (x.rows as usize, layer.in_dim, layer.out_dim);
    // dz^T[o, b] = dz[b, o]: row stride 1, column stride out.
    gemm(
        (n_out, batch, n_in),
        dz,
        (0, 1, n_out),
        xd,
        (x.offset as usize, x.stride as usize, 1),
        0.0,
        grads,
        (layer.weight, n_in, 1),
    );
    let db = &mut grads[layer.bias..layer.bias + n_out];
    db.fill(0.0);
    for r in 0..batch {
        for (o, g) in db.iter_mut().enumerate() {
            *g += dz[r * n_out + o];
        }
    }
}

/// What a BCE call adds to the statistics.
pub struct BceSums {
    pub loss: f32,
    pub mean_prob_first: f32,
    pub mean_prob_second: f32,
}

impl BceSums {
    /// The loss and each part's mean from the sums over rows `..split` and
    /// `split..n` (0 for an empty part).
    fn of_parts(loss: f32, (first, second): (f32, f32), split: u32, n: u32) -> BceSums {
        BceSums {
            loss,
            mean_prob_first: if split > 0 { first / split as f32 } else { 0.0 },
            mean_prob_second: if n > split {
                second / (n - split) as f32
            } else {
                0.0
            },
        }
    }
}

/// Stable BCE from logits: writes dlogits [N, 1] and returns the weighted loss
/// sum and the mean probability of each part (rows `..split` and `split..`).
#[allow(clippy::too_many_arguments)]
pub fn bce_with_logits(
    ld: &[f32],
    logits: Mat,
    dd: &mut [f32],
    dlogits: Mat,
    split: u32,
    target_first: f32,
    target_second: f32,
    weight: f32,
) -> BceSums {
    let (mut loss, mut prob_first, mut prob_second) = (0.0f32, 0.0f32, 0.0f32);
    let n = logits.rows;
    for r in 0..n {
        let l = ld[logits.at(r as usize, 0)];
        let t = if r < split {
            target_first
        } else {
            target_second
        };
        let p = Activation::Sigmoid.apply(l);
        loss += weight * (l.max(0.0) - l * t + (-l.abs()).exp().ln_1p());
        dd[dlogits.at(r as usize, 0)] = weight * (p - t);
        if r < split {
            prob_first += p;
        } else {
            prob_second += p;
        }
    }
    BceSums::of_parts(loss, (prob_first, prob_second), split, n)
}

/// A critic loss of raw outputs (see [`crate::model::critic_loss`]):
/// writes dlogits [N, 1] and returns the weighted loss sum and the mean raw
/// output of each part (rows `..split` and `split..`) in the
/// `mean_prob_*` fields.
pub fn critic_loss(
    p: &crate::model::critic_loss::CriticLossParams,
    ld: &[f32],
    logits: Mat,
    dd: &mut [f32],
    dlogits: Mat,
) -> BceSums {
    let (mut loss, mut sum_first, mut sum_second) = (0.0f32, 0.0f32, 0.0f32);
    let (n, split) = (logits.rows, p.split);
    for r in 0..n {
        let l = ld[logits.at(r as usize, 0)];
        let term = if r < split { p.first } else { p.second };
        let (value, grad) = term.loss_and_grad(l);
        loss += p.weight * value;
        dd[dlogits.at(r as usize, 0)] = p.weight * grad;
        if r < split {
            sum_first += l;
        } else {
            sum_second += l;
        }
    }
    BceSums::of_parts(loss, (sum_first, sum_second), split, n)
}

/// What a softmax cross-entropy call adds to the statistics.
pub struct CeSums {
    pub loss: f32,
    pub correct: f32,
}

/// Index of the first largest value.
fn argmax(values: impl Iterator<Item = f32>) -> usize {
    let mut best = (0usize, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 || i == 0 {
            best = (i, v);
        }
    }
    best.0
}

/// Softmax cross-entropy: writes dlogits [N, C] = weight * (softmax(l) - t)
/// and returns the weighted loss sum and the number of correct argmaxes.
pub fn softmax_cross_entropy(
    (ld, logits): (&[f32], Mat),
    (td, targets): (&[f32], Mat),
    (dd, dlogits): (&mut [f32], Mat),
    weight: f32,
) -> CeSums {
    let (n, classes) = (logits.rows as usize, logits.cols as usize);
    let (mut loss, mut correct) = (0.0f32, 0.0f32);
    for r in 0..n {
        let l = |c: usize| ld[logits.at(r, c)];
        let t = |c: usize| td[targets.at(r, c)];
        let max = (0..classes).map(l).fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = (0..classes).map(|c| (l(c) - max).exp()).sum();
        let lse = max + sum.ln();
        let mut row_loss = 0.0f32;
        for c in 0..classes {
            let s = (l(c) - max).exp() / sum;
            dd[dlogits.at(r, c)] = weight * (s - t(c));
            row_loss += t(c) * (lse - l(c));
        }
        loss += weight * row_loss;
        if argmax((0..classes).map(l)) == argmax((0..classes).map(t)) {
            correct += 1.0;
        }
    }
    CeSums { loss, correct }
}

/// One bias-corrected Adam step at time `t` (1-based) over flat buffers.
pub fn adam_update(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    adam: AdamSettings,
    t: u32,
) {
    let AdamSettings {
        lr,
        beta1,
        beta2,
        eps,
    } = adam;
    let correction1 = 1.0 - beta1.powi(t as i32);
    let correction2 = 1.0 - beta2.powi(t as i32);
    for i in 0..params.len() {
        let g = grads[i];
        m[i] = beta1 * m[i] + (1.0 - beta1) * g;
        v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
        let m_hat = m[i] / correction1;
        let v_hat = v[i] / correction2;
        params[i] -= lr * m_hat / (v_hat.sqrt() + eps);
    }
}

/// One RMSprop step (PyTorch's, no momentum): `sq = alpha sq + (1 -
/// alpha) g^2; p -= lr g / (sqrt(sq) + eps)`, in that order.
pub fn rmsprop_update(
    params: &mut [f32],
    grads: &[f32],
    sq: &mut [f32],
    s: crate::model::RmsPropSettings,
) {
    for i in 0..params.len() {
        let g = grads[i];
        sq[i] = s.alpha * sq[i] + (1.0 - s.alpha) * g * g;
        params[i] -= s.lr * g / (sq[i].sqrt() + s.eps);
    }
}

/// An exponential moving average step: `avg = decay avg + (1 - decay)
/// values`, in that order.
pub fn ema_update(avg: &mut [f32], values: &[f32], decay: f32) {
    for (a, &v) in avg.iter_mut().zip(values) {
        *a = decay * *a + (1.0 - decay) * v;
    }
}

/// `dst += alpha src`, element by element.
pub fn add_scaled(dst: &mut [f32], src: &[f32], alpha: f32) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += alpha * s;
    }
}

/// Whether every element is a finite number (no NaN, no infinity).
pub fn all_finite(values: &[f32]) -> bool {
    values.iter().all(|v| v.is_finite())
}
