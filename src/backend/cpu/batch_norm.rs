//! The reference batch norm, with PyTorch's semantics: training normalises
//! each channel by its batch statistics (the biased variance) and moves the
//! running estimates towards them (the unbiased variance, n / (n - 1));
//! evaluation normalises by the running estimates. One `_forward` per mode
//! and the training `_backward`, the full gradient through the batch
//! statistics. Shapes as in [`BatchNormParams`]: x and y
//! `[batch, channels, spatial]` (NCHW with spatial = h * w, or `[batch,
//! features]` with spatial 1), the saved statistics `[groups, channels]`,
//! everything else `[channels]`.
//!
//! With `groups` G > 1 the training functions treat the batch as G equal
//! consecutive groups of rows and do exactly what G separate calls with
//! `groups` 1 would do, one a group in order: each group is normalised by
//! its own statistics (saved at `[g, c]`), the running estimates are
//! updated once a group (group 0 first), and the backward is the
//! concatenation of the groups' dx and the sum of their dgamma and dbeta.
//!
//! Sums over a channel are accumulated in f64, so the reference's own
//! rounding stays far below any tolerance a GPU twin is held to. Every
//! function overwrites its outputs (the running estimates are updated in
//! place). Parameters must pass their `validate` (`validate_train` for the
//! training functions); slices of the wrong length panic.

use std::ops::Range;

use rayon::prelude::*;

use crate::backend::conv_params::BatchNormParams;

/// The rows of group `g`.
fn group_rows(p: &BatchNormParams, g: usize) -> Range<usize> {
    let rows = p.group_rows();
    g * rows..(g + 1) * rows
}

/// Sums over each channel of group `g`: entry c holds, for every k, the sum
/// of `term(c, i)[k]` over the indices i of channel c in the group's rows,
/// added in row then position order from zero (image n of channel c is the
/// run of `spatial` values at (n * channels + c) * spatial). Blocks of channels run in parallel, each
/// walking the rows once, so a `[batch, features]` input is read row by row
/// rather than a strided column at a time.
fn channel_sums<const K: usize>(
    p: &BatchNormParams,
    g: usize,
    term: impl Fn(usize, usize) -> [f64; K] + Sync,
) -> Vec<[f64; K]> {
    let mut sums = vec![[0.0f64; K]; p.channels];
    let block = (p.channels / 8).clamp(1, 64);
    sums.par_chunks_mut(block).enumerate().for_each(|(b, acc)| {
        for n in group_rows(p, g) {
            for (j, a) in acc.iter_mut().enumerate() {
                let c = b * block + j;
                let start = (n * p.channels + c) * p.spatial;
                for i in start..start + p.spatial {
                    let t = term(c, i);
                    for k in 0..K {
                        a[k] += t[k];
                    }
                }
            }
        }
    });
    sums
}

/// Calls `f(n, row)` for every row n of `out` `[rows, C, S]`, rows in
/// parallel; `f` fills the row plane by plane, so that its loops run over
/// slices (and vectorise) rather than index the tensors one element at a
/// time.
fn per_row(p: &BatchNormParams, out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    let row_len = p.channels * p.spatial;
    out.par_chunks_mut(row_len)
        .with_min_len(((1 << 14) / row_len.max(1)).max(1))
        .enumerate()
        .for_each(|(n, row)| f(n, row));
}

/// Panics unless x, y (or dx, dy) hold `p.len()` values, the per-channel
/// slices `p.channels` and the saved statistics `p.stats_len()`.
fn check_lengths(
    what: &str,
    p: &BatchNormParams,
    full: &[usize],
    per_channel: &[usize],
    saved: &[usize],
) {
    assert!(
        p.groups >= 1 && p.batch.is_multiple_of(p.groups),
        "{what}: batch {} in {} groups",
        p.batch,
        p.groups
    );
    for len in full {
        assert_eq!(*len, p.len(), "{what}: a [batch, channels, spatial] slice");
    }
    for len in per_channel {
        assert_eq!(*len, p.channels, "{what}: a [channels] slice");
    }
    for len in saved {
        assert_eq!(*len, p.stats_len(), "{what}: a [groups, channels] slice");
    }
}

/// y `[B, C, S]` = gamma * (x - mean) * inv_std + beta, with the mean and
/// the biased variance of each channel of each group over its n =
/// (B / groups) * S values and inv_std = 1 / sqrt(var + eps). Writes
/// saved_mean and saved_inv_std `[groups, C]` for the backward, and updates
/// running_mean and running_var `[C]` once a group, group 0 first, as
/// running = (1 - momentum) * running + momentum * group statistic, with
/// the unbiased variance var * n / (n - 1).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_train(
    p: &BatchNormParams,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    saved_mean: &mut [f32],
    saved_inv_std: &mut [f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
) {
    check_lengths(
        "batch_norm_forward_train",
        p,
        &[x.len(), y.len()],
        &[
            gamma.len(),
            beta.len(),
            running_mean.len(),
            running_var.len(),
        ],
        &[saved_mean.len(), saved_inv_std.len()],
    );
    let n = p.group_count();
    assert!(n > 1, "batch_norm_forward_train: one value per channel");
    // Group-major, so the running estimates see group 0's statistics first.
    for g in 0..p.groups {
        // Two passes: the mean, then the mean squared deviation from it.
        let means: Vec<f64> = channel_sums(p, g, |_, i| [x[i] as f64])
            .iter()
            .map(|[sum]| sum / n as f64)
            .collect();
        let vars: Vec<f64> = channel_sums(p, g, |c, i| [(x[i] as f64 - means[c]).powi(2)])
            .iter()
            .map(|[squares]| squares / n as f64)
            .collect();
        let inv_stds: Vec<f64> = vars
            .iter()
            .map(|var| 1.0 / (var + p.eps as f64).sqrt())
            .collect();
        let rows = group_rows(p, g);
        let y_g = &mut y[rows.start * p.channels * p.spatial..rows.end * p.channels * p.spatial];
        let first = rows.start * p.channels * p.spatial;
        let row_len = p.channels * p.spatial;
        per_row(p, y_g, |n, row| {
            let x_row = &x[first + n * row_len..][..row_len];
            let normalise = |xv: f32, mean: f64, inv_std: f64, gamma: f32, beta: f32| {
                let x_hat = (xv as f64 - mean) * inv_std;
                gamma * x_hat as f32 + beta
            };
            if p.spatial == 1 {
                // [batch, features]: one value a channel, so run along the row.
                let stats = means.iter().zip(&inv_stds).zip(gamma.iter().zip(beta));
                for ((v, &xv), ((&m, &s), (&g, &b))) in row.iter_mut().zip(x_row).zip(stats) {
                    *v = normalise(xv, m, s, g, b);
                }
                return;
            }
            let planes = row.chunks_mut(p.spatial).zip(x_row.chunks(p.spatial));
            for (c, (out, xs)) in planes.enumerate() {
                let (mean, inv_std, gamma, beta) = (means[c], inv_stds[c], gamma[c], beta[c]);
                for (v, &xv) in out.iter_mut().zip(xs) {
                    *v = normalise(xv, mean, inv_std, gamma, beta);
                }
            }
        });
        for c in 0..p.channels {
            saved_mean[g * p.channels + c] = means[c] as f32;
            saved_inv_std[g * p.channels + c] = inv_stds[c] as f32;
            let m = p.momentum;
            let unbiased = vars[c] * n as f64 / (n - 1) as f64;
            running_mean[c] = (1.0 - m) * running_mean[c] + m * means[c] as f32;
            running_var[c] = (1.0 - m) * running_var[c] + m * unbiased as f32;
        }
    }
}

/// y `[B, C, S]` = gamma * (x - running_mean) / sqrt(running_var + eps) + beta:
/// evaluation and sampling, where the batch's own statistics (and `groups`)
/// play no part.
pub fn batch_norm_forward_eval(
    p: &BatchNormParams,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) {
    check_lengths(
        "batch_norm_forward_eval",
        p,
        &[x.len(), y.len()],
        &[
            gamma.len(),
            beta.len(),
            running_mean.len(),
            running_var.len(),
        ],
        &[],
    );
    let inv_stds: Vec<f32> = running_var
        .iter()
        .map(|var| 1.0 / (var + p.eps).sqrt())
        .collect();
    let row_len = p.channels * p.spatial;
    per_row(p, y, |n, row| {
        let x_row = &x[n * row_len..][..row_len];
        let planes = row.chunks_mut(p.spatial).zip(x_row.chunks(p.spatial));
        for (c, (out, xs)) in planes.enumerate() {
            let (gamma, mean, inv_std, beta) = (gamma[c], running_mean[c], inv_stds[c], beta[c]);
            for (v, &xv) in out.iter_mut().zip(xs) {
                *v = gamma * (xv - mean) * inv_std + beta;
            }
        }
    });
}

/// The training-mode gradients of <y, dy> for y = batch_norm_forward_train(x),
/// given x and dy `[B, C, S]`, gamma `[C]` and the saved statistics
/// `[groups, C]`. With x_hat = (x - mean_g) * inv_std_g and n =
/// (B / groups) * S values a channel of a group, for group g:
///
/// - dbeta_g `[C]` = sum over the group of dy
/// - dgamma_g `[C]` = sum over the group of dy * x_hat
/// - dx `[B, C, S]` = gamma * inv_std_g * (dy - dbeta_g / n - x_hat * dgamma_g / n)
///
/// the last because the group's mean and variance depend on every x of the
/// group's channel. dgamma and dbeta are the sums over the groups (summed in
/// f64, rounded once).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    p: &BatchNormParams,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    saved_mean: &[f32],
    saved_inv_std: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    check_lengths(
        "batch_norm_backward",
        p,
        &[x.len(), dy.len(), dx.len()],
        &[gamma.len(), dgamma.len(), dbeta.len()],
        &[saved_mean.len(), saved_inv_std.len()],
    );
    let n = p.group_count() as f64;
    let (mut total_dy, mut total_dy_x_hat) = (vec![0.0f64; p.channels], vec![0.0f64; p.channels]);
    for g in 0..p.groups {
        let stats = &saved_mean[g * p.channels..(g + 1) * p.channels];
        let inv_stds = &saved_inv_std[g * p.channels..(g + 1) * p.channels];
        let x_hat = |c: usize, i: usize| (x[i] as f64 - stats[c] as f64) * inv_stds[c] as f64;
        let sums = channel_sums(p, g, |c, i| [dy[i] as f64, dy[i] as f64 * x_hat(c, i)]);
        let rows = group_rows(p, g);
        let first = rows.start * p.channels * p.spatial;
        let dx_g = &mut dx[first..rows.end * p.channels * p.spatial];
        let row_len = p.channels * p.spatial;
        per_row(p, dx_g, |r, row| {
            let start = first + r * row_len;
            let (x_row, dy_row) = (&x[start..][..row_len], &dy[start..][..row_len]);
            // Channel c's terms: mean, inv_std, gamma * inv_std, the mean of
            // dy and the sum of dy * x_hat.
            let terms = |c: usize| {
                let [sum_dy, sum_dy_x_hat] = sums[c];
                let inv_std = inv_stds[c] as f64;
                let scale = gamma[c] as f64 * inv_std;
                (stats[c] as f64, inv_std, scale, sum_dy / n, sum_dy_x_hat)
            };
            // dx for x and dy of a channel with those terms.
            let gradient =
                |(mean, inv_std, scale, mean_dy, sum_dy_x_hat): (f64, f64, f64, f64, f64),
                 xv: f32,
                 g: f32| {
                    let x_hat = (xv as f64 - mean) * inv_std;
                    let d = g as f64 - mean_dy - x_hat * sum_dy_x_hat / n;
                    (scale * d) as f32
                };
            if p.spatial == 1 {
                // [batch, features]: one value a channel, so run along the row.
                for (c, ((v, &xv), &g)) in row.iter_mut().zip(x_row).zip(dy_row).enumerate() {
                    *v = gradient(terms(c), xv, g);
                }
                return;
            }
            let planes = row
                .chunks_mut(p.spatial)
                .zip(x_row.chunks(p.spatial))
                .zip(dy_row.chunks(p.spatial));
            for (c, ((out, xs), dys)) in planes.enumerate() {
                let channel = terms(c);
                for ((v, &xv), &g) in out.iter_mut().zip(xs).zip(dys) {
                    *v = gradient(channel, xv, g);
                }
            }
        });
        for (c, [sum_dy, sum_dy_x_hat]) in sums.iter().enumerate() {
            total_dy[c] += sum_dy;
            total_dy_x_hat[c] += sum_dy_x_hat;
        }
    }
    for c in 0..p.channels {
        dbeta[c] = total_dy[c] as f32;
        dgamma[c] = total_dy_x_hat[c] as f32;
    }
}
