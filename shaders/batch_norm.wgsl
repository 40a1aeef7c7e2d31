// batch_norm.wgsl: batch norm with PyTorch's semantics, the twins of
// src/backend/cpu/batch_norm.rs. x, y, dy and dx are [batch, channels,
// spatial] (NCHW with spatial = h * w, or [batch, features] with spatial 1);
// the saved statistics are [groups, channels] (group-major); every other
// tensor is [channels]. In training the rows form `groups` equal
// consecutive groups of rows = batch / groups, each with its own
// statistics: channel c of group g holds n = rows * spatial values, the run
// of `spatial` values at (b * channels + c) * spatial for each row b of the
// group. The entry points:
//
//   batch_norm_forward_train   the statistics: mean and biased variance of
//                              each channel of each group (two passes: the
//                              mean, then the sum of squared deviations
//                              from it, so no large sum of x^2 cancels),
//                              written as saved_mean and saved_inv_std =
//                              1 / sqrt(var + eps) at [g, c], and the
//                              running update running = (1 - momentum) *
//                              running + momentum * group statistic
//                              (unbiased variance var * n / (n - 1)), once a
//                              group, group 0 first. One workgroup per
//                              channel looping over the groups in order,
//                              tree sums in workgroup memory.
//   batch_norm_normalize       y = act(gamma * (x - mean) * inv_std + beta)
//                              from the saved statistics of the element's
//                              group (the training forward's second
//                              dispatch); one thread per element.
//   batch_norm_forward_eval    the same from running_mean and running_var,
//                              inv_std = 1 / sqrt(running_var + eps)
//                              (groups play no part).
//   batch_norm_backward        dbeta = sum of dy, dgamma = sum of dy * x_hat
//                              (x_hat = (x - mean_g) * inv_std_g), each the
//                              sum of the groups' sums; one workgroup per
//                              channel.
//   batch_norm_backward_dx     dx = gamma * inv_std_g * (dy - dbeta_g / n -
//                              x_hat * dgamma_g / n) with group g's own
//                              sums; one workgroup per channel that
//                              computes each group's two sums (in the same
//                              order) itself: with dgamma and dbeta as
//                              inputs the kernel would need 8 storage
//                              buffers, and the backend asks adapters for 6
//                              (and those hold totals over the groups).
//
// The activation of the normalising kernels uses activation.wgsl's codes
// (0 identity, 1 relu, 2 leaky relu (slope), 3 sigmoid, 4 tanh).
// Workgroup x of a per-channel kernel handles channels x,
// x + num_workgroups.x, ... (the host caps the grid at the per-dimension
// limit).

struct BatchNormUniform {
    batch: u32,
    channels: u32,
    spatial: u32,
    momentum: f32,
    eps: f32,
    act: u32,
    slope: f32,
    groups: u32,
}

@group(0) @binding(0) var<uniform> p: BatchNormUniform;
// The bindings' roles per entry point (w: written):
//              forward_train       normalize / forward_eval   backward        backward_dx
// 1 buf_x      x                   x                          x               x
// 2 buf_b      running_mean (rw)   gamma                      dy              dy
// 3 buf_c      running_var (rw)    beta                       dgamma (w)      gamma
// 4 buf_mean   saved_mean (w)      saved mean / running_mean  saved_mean      saved_mean
// 5 buf_std    saved_inv_std (w)   saved inv_std / running_var saved_inv_std  saved_inv_std
// 6 buf_out    - (x again)         y (w)                      dbeta (w)       dx (w)
@group(0) @binding(1) var<storage, read_write> buf_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> buf_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf_c: array<f32>;
@group(0) @binding(4) var<storage, read_write> buf_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> buf_std: array<f32>;
@group(0) @binding(6) var<storage, read_write> buf_out: array<f32>;

const BN_THREADS: u32 = 256u;

var<workgroup> part0: array<f32, 256>;
var<workgroup> part1: array<f32, 256>;

// Values of a channel in a group: (batch / groups) * spatial.
fn bn_group_count() -> u32 {
    return (p.batch / p.groups) * p.spatial;
}

// The index of the i-th value (0 <= i < bn_group_count()) of channel c in
// group g.
fn bn_index(c: u32, g: u32, i: u32) -> u32 {
    let b = g * (p.batch / p.groups) + i / p.spatial;
    return (b * p.channels + c) * p.spatial + i % p.spatial;
}

// Tree sums of part0 and part1 over the workgroup; every thread returns the
// totals. Starts and ends with a barrier, so the arrays may be reused.
fn bn_sum2(lid: u32, a: f32, b: f32) -> vec2<f32> {
    workgroupBarrier();
    part0[lid] = a;
    part1[lid] = b;
    workgroupBarrier();
    for (var half = BN_THREADS / 2u; half > 0u; half /= 2u) {
        if lid < half {
            part0[lid] += part0[lid + half];
            part1[lid] += part1[lid + half];
        }
        workgroupBarrier();
    }
    let total = vec2<f32>(part0[0], part1[0]);
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256, 1, 1)
fn batch_norm_forward_train(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = bn_group_count();
    let nf = f32(n);
    for (var c = wg.x; c < p.channels; c += nwg.x) {
        // In order: thread 0 alone updates the running estimates, group 0
        // first, as consecutive PyTorch calls would.
        for (var g = 0u; g < p.groups; g++) {
            var s = 0.0;
            for (var i = lid; i < n; i += BN_THREADS) {
                s += buf_x[bn_index(c, g, i)];
            }
            let mean = bn_sum2(lid, s, 0.0).x / nf;
            var q = 0.0;
            for (var i = lid; i < n; i += BN_THREADS) {
                let d = buf_x[bn_index(c, g, i)] - mean;
                q += d * d;
            }
            let variance = bn_sum2(lid, q, 0.0).x / nf;
            if lid == 0u {
                let k = g * p.channels + c;
                buf_mean[k] = mean;
                buf_std[k] = 1.0 / sqrt(variance + p.eps);
                let m = p.momentum;
                let unbiased = variance * nf / f32(n - 1u);
                buf_b[c] = (1.0 - m) * buf_b[c] + m * mean;
                buf_c[c] = (1.0 - m) * buf_c[c] + m * unbiased;
            }
        }
    }
}

// y = act(gamma * (x - mean) * inv_std + beta) at element e of a
// one-dimensional launch: with the saved statistics of the element's group
// at [g, c], or (inv_std_from_var, evaluation) the running ones at [c].
fn bn_normalize(e: u32, inv_std_from_var: bool) {
    let len = p.batch * p.channels * p.spatial;
    if e >= len {
        return;
    }
    let c = (e / p.spatial) % p.channels;
    var k = c;
    var inv_std = 0.0;
    if inv_std_from_var {
        inv_std = 1.0 / sqrt(buf_std[c] + p.eps);
    } else {
        let g = (e / (p.spatial * p.channels)) / (p.batch / p.groups);
        k = g * p.channels + c;
        inv_std = buf_std[k];
    }
    let z = buf_b[c] * (buf_x[e] - buf_mean[k]) * inv_std + buf_c[c];
    buf_out[e] = act_apply(p.act, p.slope, z);
}

@compute @workgroup_size(256, 1, 1)
fn batch_norm_normalize(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    bn_normalize(global_index(wg, nwg, lid), false);
}

@compute @workgroup_size(256, 1, 1)
fn batch_norm_forward_eval(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    bn_normalize(global_index(wg, nwg, lid), true);
}

// (sum of dy, sum of dy * x_hat) over channel c of group g, dy in buf_b;
// every thread gets the totals.
fn bn_grad_sums(c: u32, g: u32, lid: u32) -> vec2<f32> {
    let n = bn_group_count();
    let k = g * p.channels + c;
    let mean = buf_mean[k];
    let inv_std = buf_std[k];
    var s_dy = 0.0;
    var s_dyx = 0.0;
    for (var i = lid; i < n; i += BN_THREADS) {
        let j = bn_index(c, g, i);
        let dy = buf_b[j];
        s_dy += dy;
        s_dyx += dy * ((buf_x[j] - mean) * inv_std);
    }
    return bn_sum2(lid, s_dy, s_dyx);
}

@compute @workgroup_size(256, 1, 1)
fn batch_norm_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var c = wg.x; c < p.channels; c += nwg.x) {
        var sums = vec2<f32>(0.0, 0.0);
        for (var g = 0u; g < p.groups; g++) {
            sums += bn_grad_sums(c, g, lid);
        }
        if lid == 0u {
            buf_out[c] = sums.x;
            buf_c[c] = sums.y;
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn batch_norm_backward_dx(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = bn_group_count();
    let nf = f32(n);
    for (var c = wg.x; c < p.channels; c += nwg.x) {
        for (var g = 0u; g < p.groups; g++) {
            let sums = bn_grad_sums(c, g, lid);
            let k = g * p.channels + c;
            let mean = buf_mean[k];
            let inv_std = buf_std[k];
            let scale = buf_c[c] * inv_std;
            let mean_dy = sums.x / nf;
            let mean_dyx = sums.y / nf;
            for (var i = lid; i < n; i += BN_THREADS) {
                let j = bn_index(c, g, i);
                let x_hat = (buf_x[j] - mean) * inv_std;
                buf_out[j] = scale * (buf_b[j] - mean_dy - x_hat * mean_dyx);
            }
        }
    }
}
