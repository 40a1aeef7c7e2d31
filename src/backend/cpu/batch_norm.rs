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

use crate::backend::conv_params::BatchNormParams;

/// The index ranges holding channel `c` of the rows `rows`: one run of
/// `spatial` values per image.
fn channel_ranges(
    p: &BatchNormParams,
    rows: Range<usize>,
    c: usize,
) -> impl Iterator<Item = Range<usize>> + '_ {
    rows.map(move |n| {
        let start = (n * p.channels + c) * p.spatial;
        start..start + p.spatial
    })
}

/// The rows of group `g`.
fn group_rows(p: &BatchNormParams, g: usize) -> Range<usize> {
    let rows = p.group_rows();
    g * rows..(g + 1) * rows
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
        for c in 0..p.channels {
            let ranges = || channel_ranges(p, group_rows(p, g), c);
            // Two passes: the mean, then the mean squared deviation from it.
            let sum: f64 = ranges().flat_map(|r| x[r].iter()).map(|v| *v as f64).sum();
            let mean = sum / n as f64;
            let squares: f64 = ranges()
                .flat_map(|r| x[r].iter())
                .map(|v| (*v as f64 - mean).powi(2))
                .sum();
            let var = squares / n as f64;
            let inv_std = 1.0 / (var + p.eps as f64).sqrt();
            for i in ranges().flatten() {
                let x_hat = (x[i] as f64 - mean) * inv_std;
                y[i] = gamma[c] * x_hat as f32 + beta[c];
            }
            saved_mean[g * p.channels + c] = mean as f32;
            saved_inv_std[g * p.channels + c] = inv_std as f32;
            let m = p.momentum;
            let unbiased = var * n as f64 / (n - 1) as f64;
            running_mean[c] = (1.0 - m) * running_mean[c] + m * mean as f32;
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
    for c in 0..p.channels {
        let inv_std = 1.0 / (running_var[c] + p.eps).sqrt();
        for i in channel_ranges(p, 0..p.batch, c).flatten() {
            y[i] = gamma[c] * (x[i] - running_mean[c]) * inv_std + beta[c];
        }
    }
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
    for c in 0..p.channels {
        let (mut total_dy, mut total_dy_x_hat) = (0.0f64, 0.0f64);
        for g in 0..p.groups {
            let s = g * p.channels + c;
            let (mean, inv_std) = (saved_mean[s] as f64, saved_inv_std[s] as f64);
            let x_hat = |i: usize| (x[i] as f64 - mean) * inv_std;
            let ranges = || channel_ranges(p, group_rows(p, g), c);
            let (mut sum_dy, mut sum_dy_x_hat) = (0.0f64, 0.0f64);
            for i in ranges().flatten() {
                sum_dy += dy[i] as f64;
                sum_dy_x_hat += dy[i] as f64 * x_hat(i);
            }
            let scale = gamma[c] as f64 * inv_std;
            for i in ranges().flatten() {
                let g = dy[i] as f64 - sum_dy / n - x_hat(i) * sum_dy_x_hat / n;
                dx[i] = (scale * g) as f32;
            }
            total_dy += sum_dy;
            total_dy_x_hat += sum_dy_x_hat;
        }
        dbeta[c] = total_dy as f32;
        dgamma[c] = total_dy_x_hat as f32;
    }
}
