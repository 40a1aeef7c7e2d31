//! The CPU reference convolution, transposed convolution and batch norm
//! proven: every backward function against central finite differences of
//! L = sum(y * r) for a fixed random r, each forward against a direct loop
//! over its definition, the transposed convolution as the adjoint of the
//! convolution, and batch norm's running statistics and eval mode against
//! hand-computed numbers; batch norm with groups of rows against finite
//! differences and against separate calls, one a group.
//!
//! Tolerance. Forwards run in f32; L is summed in f64. A central difference
//! with step h has truncation error h^2/6 * f''' and rounding error about
//! eps_f32 * sqrt(m) * |y r| / h, where m is the number of outputs the
//! perturbed element moves. The convolutions are linear in each argument, so
//! their truncation error is zero and they take h = 1 (rounding ~1e-6). Batch
//! norm takes h = 1e-2: with channels of std >= 0.5 (see
//! `batch_norm_inputs`) the truncation term is ~1e-4 and the rounding of up
//! to 98 outputs of O(1) about the same. So we accept
//! |analytic - numeric| <= 1e-3 + 1e-2 * |numeric|, as `tests/gradients.rs`
//! does; the largest differences seen are ~1e-5 (convolutions) and ~9e-5
//! (batch norm), printed by each check. Inputs are drawn with unit scale and
//! weights with std 0.3, so the gradients are O(0.1..10) and a wrong one (a
//! factor 1.2, a dropped term) is far outside that band;
//! `a_wrong_gradient_is_caught` shows the check fails. Every element of every
//! gradient tensor of every case is checked (about 2 s in all).

use gan_gpu::backend::conv_params::{BatchNormParams, Conv2dParams, ConvTranspose2dParams};
use gan_gpu::backend::cpu::batch_norm::{
    batch_norm_backward, batch_norm_forward_eval, batch_norm_forward_train,
};
use gan_gpu::backend::cpu::conv::{
    conv2d_backward_input, conv2d_backward_params, conv2d_forward, conv_transpose2d_backward_input,
    conv_transpose2d_backward_params, conv_transpose2d_forward,
};
use gan_gpu::rng;

/// Batch norm's step (see the tolerance above).
const H: f32 = 1e-2;
/// The convolutions are linear in each argument: any step is exact but for rounding.
const H_LINEAR: f32 = 1.0;
const ATOL: f64 = 1e-3;
const RTOL: f64 = 1e-2;
const CHANNELS: [usize; 3] = [1, 3, 7];
/// (in_h, in_w): the sizes 1, 5 and 7, square and not.
const SPATIAL: [(usize, usize); 4] = [(1, 1), (5, 7), (7, 5), (1, 7)];

fn random(n: usize, std: f32, stream: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| std * rng::normal(123, stream, 0, i))
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(a, b)| *a as f64 * *b as f64).sum()
}

/// The worst case of one check: its absolute difference, and the pair.
#[derive(Clone, Copy, Debug)]
struct Worst {
    diff: f64,
    analytic: f64,
    numeric: f64,
}

/// Compares analytic against numeric gradients (pairs), printing the worst
/// case; Err names the disagreeing ones.
fn check(what: &str, pairs: &[(f64, f64)]) -> Result<Worst, String> {
    assert!(!pairs.is_empty(), "{what}: nothing checked");
    let (analytic, numeric) = pairs
        .iter()
        .copied()
        .max_by(|p, q| (p.0 - p.1).abs().total_cmp(&(q.0 - q.1).abs()))
        .unwrap();
    let worst = Worst {
        diff: (analytic - numeric).abs(),
        analytic,
        numeric,
    };
    println!(
        "{what}: {} checked, worst |diff| {:.2e} (analytic {:.5}, numeric {:.5})",
        pairs.len(),
        worst.diff,
        worst.analytic,
        worst.numeric
    );
    let bad: Vec<_> = pairs
        .iter()
        .filter(|(a, n)| (a - n).abs() > ATOL + RTOL * n.abs())
        .collect();
    if bad.is_empty() {
        Ok(worst)
    } else {
        Err(format!(
            "{what}: {} of {} gradients disagree, e.g. {:?}",
            bad.len(),
            pairs.len(),
            &bad[..bad.len().min(5)]
        ))
    }
}

/// (analytic, numeric) at every element of `v`, the numeric one the
/// central difference of `loss` as element i of `v` moves by +-h.
fn fd_pairs(
    h: f32,
    v: &mut [f32],
    analytic: &[f32],
    mut loss: impl FnMut(&[f32]) -> f64,
) -> Vec<(f64, f64)> {
    assert_eq!(v.len(), analytic.len());
    (0..v.len())
        .map(|i| {
            let orig = v[i];
            v[i] = orig + h;
            let plus = loss(v);
            v[i] = orig - h;
            let minus = loss(v);
            v[i] = orig;
            // The step as stored in f32, not h itself.
            let step = (orig + h) as f64 - (orig - h) as f64;
            (analytic[i] as f64, (plus - minus) / step)
        })
        .collect()
}

/// Runs each check, panicking on the first failure; returns the worst case.
fn all_pass(checks: Vec<Result<Worst, String>>) -> Worst {
    let mut worst = Worst {
        diff: 0.0,
        analytic: 0.0,
        numeric: 0.0,
    };
    for c in checks {
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        if c.diff > worst.diff {
            worst = c;
        }
    }
    worst
}

// ---------------------------------------------------------------- shapes

/// Every valid convolution over kernels 3-5, strides 1-2, paddings 0-2 and
/// the `SPATIAL` sizes, with in and out channels and batch (1, 2) cycling
/// so every channel pair appears.
fn conv_cases() -> Vec<Conv2dParams> {
    let mut cases = Vec::new();
    for kernel in [3, 4, 5] {
        for stride in [1, 2] {
            for padding in [0, 1, 2] {
                for (in_h, in_w) in SPATIAL {
                    let i = cases.len();
                    let p = Conv2dParams {
                        batch: 1 + i % 2,
                        in_channels: CHANNELS[i % 3],
                        out_channels: CHANNELS[(i / 3) % 3],
                        in_h,
                        in_w,
                        kernel,
                        stride,
                        padding,
                    };
                    if p.validate().is_ok() {
                        cases.push(p);
                    }
                }
            }
        }
    }
    cases
}

/// Every valid transposed convolution over the same grid and output
/// paddings 0 and 1 (below the stride).
fn conv_transpose_cases() -> Vec<ConvTranspose2dParams> {
    let mut cases = Vec::new();
    for kernel in [3, 4, 5] {
        for stride in [1, 2] {
            for padding in [0, 1, 2] {
                for output_padding in [0, 1] {
                    for (in_h, in_w) in SPATIAL {
                        let i = cases.len();
                        let p = ConvTranspose2dParams {
                            batch: 1 + i % 2,
                            in_channels: CHANNELS[i % 3],
                            out_channels: CHANNELS[(i / 3) % 3],
                            in_h,
                            in_w,
                            kernel,
                            stride,
                            padding,
                            output_padding,
                        };
                        if p.validate().is_ok() {
                            cases.push(p);
                        }
                    }
                }
            }
        }
    }
    cases
}

/// Batch norm over channels 1, 3, 7, spatial 1 (1d) and 5x5, 7x7 (2d),
/// batch 1 and 2, where training is defined (more than one value a channel).
fn batch_norm_cases() -> Vec<BatchNormParams> {
    let mut cases = Vec::new();
    for channels in CHANNELS {
        for spatial in [1, 25, 49] {
            for batch in [1, 2] {
                let p = BatchNormParams {
                    batch,
                    channels,
                    spatial,
                    momentum: 0.1,
                    eps: 1e-5,
                    groups: 1,
                };
                if p.validate_train().is_ok() {
                    cases.push(p);
                }
            }
        }
    }
    cases
}

#[test]
fn the_grids_cover_every_size() {
    let convs = conv_cases();
    let ts = conv_transpose_cases();
    println!("{} conv cases, {} transposed", convs.len(), ts.len());
    for c in CHANNELS {
        assert!(convs.iter().any(|p| p.in_channels == c));
        assert!(convs.iter().any(|p| p.out_channels == c));
        assert!(ts.iter().any(|p| p.in_channels == c));
        assert!(ts.iter().any(|p| p.out_channels == c));
    }
    for s in [1, 5, 7] {
        assert!(convs.iter().any(|p| p.in_h == s) && convs.iter().any(|p| p.in_w == s));
        assert!(ts.iter().any(|p| p.in_h == s) && ts.iter().any(|p| p.in_w == s));
    }
    for k in [3, 4, 5] {
        for s in [1, 2] {
            for pad in [0, 1, 2] {
                assert!(convs
                    .iter()
                    .any(|p| (p.kernel, p.stride, p.padding) == (k, s, pad)));
                assert!(ts
                    .iter()
                    .any(|p| (p.kernel, p.stride, p.padding) == (k, s, pad)));
            }
        }
    }
    assert!(ts.iter().any(|p| p.output_padding == 1));
    assert!(convs.iter().any(|p| p.batch == 2) && ts.iter().any(|p| p.batch == 2));
}

#[test]
fn output_shapes_follow_pytorch() {
    // DCGAN's discriminator block: 28 -> 14 with k 4, s 2, p 1.
    let conv = Conv2dParams {
        batch: 1,
        in_channels: 1,
        out_channels: 8,
        in_h: 28,
        in_w: 27,
        kernel: 4,
        stride: 2,
        padding: 1,
    };
    assert_eq!((conv.out_h(), conv.out_w()), (14, 13));
    // ... and its generator block back: 7 -> 14; k 3, s 2, p 1, op 1: 7 -> 14.
    let mut t = ConvTranspose2dParams {
        batch: 1,
        in_channels: 8,
        out_channels: 1,
        in_h: 7,
        in_w: 7,
        kernel: 4,
        stride: 2,
        padding: 1,
        output_padding: 0,
    };
    assert_eq!((t.out_h(), t.out_w()), (14, 14));
    t.validate().unwrap();
    t.kernel = 3;
    t.output_padding = 1;
    assert_eq!(t.out_h(), 14);
    t.validate().unwrap();
    // The transposed conv's convolution maps its output back onto its input.
    let c = t.as_conv();
    assert_eq!(
        (c.in_channels, c.out_channels, c.out_h(), c.out_w()),
        (1, 8, 7, 7)
    );

    let err = |e: gan_gpu::error::Result<()>| e.unwrap_err().to_string();
    let small = Conv2dParams {
        in_h: 2,
        kernel: 5,
        padding: 1,
        ..conv
    };
    assert!(err(small.validate()).contains("smaller than the kernel"));
    let no_stride = Conv2dParams { stride: 0, ..conv };
    assert!(err(no_stride.validate()).contains("stride must be at least 1"));
    let op = ConvTranspose2dParams {
        output_padding: 2,
        ..t
    };
    assert!(err(op.validate()).contains("output_padding 2 must be smaller than the stride 2"));
    let none = ConvTranspose2dParams {
        in_h: 1,
        in_w: 1,
        kernel: 3,
        stride: 1,
        padding: 2,
        output_padding: 0,
        ..t
    };
    assert!(err(none.validate()).contains("gives no output"));
    let bn = BatchNormParams {
        batch: 1,
        channels: 4,
        spatial: 1,
        momentum: 0.1,
        eps: 1e-5,
        groups: 1,
    };
    bn.validate().unwrap();
    assert!(err(bn.validate_train()).contains("more than 1 value per channel"));
    let bad_momentum = BatchNormParams {
        momentum: 1.5,
        ..bn
    };
    assert!(err(bad_momentum.validate()).contains("momentum"));
    let no_groups = BatchNormParams { groups: 0, ..bn };
    assert!(err(no_groups.validate()).contains("groups must be at least 1"));
    let uneven = BatchNormParams {
        batch: 5,
        groups: 2,
        ..bn
    };
    assert!(err(uneven.validate()).contains("not a multiple of groups"));
    let one_a_group = BatchNormParams {
        batch: 4,
        groups: 4,
        ..bn
    };
    one_a_group.validate().unwrap();
    assert!(err(one_a_group.validate_train()).contains("more than 1 value per channel"));
    BatchNormParams {
        groups: 2,
        ..one_a_group
    }
    .validate_train()
    .unwrap();
}

// ---------------------------------------------------------------- forwards

/// y = conv(x, w) + b by its definition, in f64:
/// y[n, o, i, j] = b[o] + sum over c, ki, kj of
/// x[n, c, i * s + ki - p, j * s + kj - p] * w[o, c, ki, kj].
fn conv2d_direct(p: &Conv2dParams, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
    let (oh, ow, k) = (p.out_h(), p.out_w(), p.kernel);
    let mut y = vec![0.0; p.y_len()];
    for n in 0..p.batch {
        for o in 0..p.out_channels {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = b[o] as f64;
                    for c in 0..p.in_channels {
                        for ki in 0..k {
                            for kj in 0..k {
                                let (r, q) = (
                                    (i * p.stride + ki) as isize - p.padding as isize,
                                    (j * p.stride + kj) as isize - p.padding as isize,
                                );
                                if r < 0 || q < 0 || r >= p.in_h as isize || q >= p.in_w as isize {
                                    continue;
                                }
                                let xi = ((n * p.in_channels + c) * p.in_h + r as usize) * p.in_w
                                    + q as usize;
                                let wi = ((o * p.in_channels + c) * k + ki) * k + kj;
                                acc += x[xi] as f64 * w[wi] as f64;
                            }
                        }
                    }
                    y[((n * p.out_channels + o) * oh + i) * ow + j] = acc;
                }
            }
        }
    }
    y
}

/// y = conv_transpose(x, w) + b by PyTorch's definition, in f64: each input
/// value scatters x[n, c, i, j] * w[c, o, ki, kj] onto
/// y[n, o, i * s + ki - p, j * s + kj - p] where that lies inside y.
fn conv_transpose2d_direct(p: &ConvTranspose2dParams, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
    let (oh, ow, k) = (p.out_h(), p.out_w(), p.kernel);
    let mut y = vec![0.0; p.y_len()];
    for n in 0..p.batch {
        for o in 0..p.out_channels {
            for v in &mut y[(n * p.out_channels + o) * oh * ow..][..oh * ow] {
                *v = b[o] as f64;
            }
        }
        for c in 0..p.in_channels {
            for i in 0..p.in_h {
                for j in 0..p.in_w {
                    let xv = x[((n * p.in_channels + c) * p.in_h + i) * p.in_w + j] as f64;
                    for o in 0..p.out_channels {
                        for ki in 0..k {
                            for kj in 0..k {
                                let (r, q) = (
                                    (i * p.stride + ki) as isize - p.padding as isize,
                                    (j * p.stride + kj) as isize - p.padding as isize,
                                );
                                if r < 0 || q < 0 || r >= oh as isize || q >= ow as isize {
                                    continue;
                                }
                                let wi = ((c * p.out_channels + o) * k + ki) * k + kj;
                                y[((n * p.out_channels + o) * oh + r as usize) * ow
                                    + q as usize] += xv * w[wi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

/// f32 sums of at most 7 * 25 products of O(0.3): 1e-4 absolute plus
/// relative is ~100x their rounding.
fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (i, diff) = got
        .iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert!(
        diff <= 1e-4 + 1e-4 * want[i].abs(),
        "{what}: element {i} is {} instead of {} (|diff| {diff:.2e})",
        got[i],
        want[i]
    );
}

#[test]
fn conv2d_forward_is_the_direct_convolution() {
    for (n, p) in conv_cases().iter().enumerate() {
        let s = n as u32 * 10;
        let (x, w, b) = (
            random(p.x_len(), 1.0, s),
            random(p.w_len(), 0.3, s + 1),
            random(p.out_channels, 0.3, s + 2),
        );
        let mut y = vec![f32::NAN; p.y_len()];
        conv2d_forward(p, &x, &w, Some(&b), &mut y);
        assert_close(&format!("{p:?}"), &y, &conv2d_direct(p, &x, &w, &b));
        conv2d_forward(p, &x, &w, None, &mut y);
        let zero = vec![0.0; p.out_channels];
        assert_close(
            &format!("{p:?} no bias"),
            &y,
            &conv2d_direct(p, &x, &w, &zero),
        );
    }
}

#[test]
fn conv_transpose2d_forward_is_the_direct_scatter() {
    for (n, p) in conv_transpose_cases().iter().enumerate() {
        let s = n as u32 * 10;
        let (x, w, b) = (
            random(p.x_len(), 1.0, s),
            random(p.w_len(), 0.3, s + 1),
            random(p.out_channels, 0.3, s + 2),
        );
        let mut y = vec![f32::NAN; p.y_len()];
        conv_transpose2d_forward(p, &x, &w, Some(&b), &mut y);
        assert_close(
            &format!("{p:?}"),
            &y,
            &conv_transpose2d_direct(p, &x, &w, &b),
        );
    }
}

#[test]
fn conv_transpose2d_is_the_adjoint_of_conv2d() {
    let mut checked = 0;
    for (n, p) in conv_cases().iter().enumerate() {
        // The transposed conv from conv's output shape back onto its input
        // shape; the output padding recovers the rows a stride-2 conv drops.
        let output_padding = (p.in_h + 2 * p.padding - p.kernel) % p.stride;
        let t = ConvTranspose2dParams {
            batch: p.batch,
            in_channels: p.out_channels,
            out_channels: p.in_channels,
            in_h: p.out_h(),
            in_w: p.out_w(),
            kernel: p.kernel,
            stride: p.stride,
            padding: p.padding,
            output_padding,
        };
        // One output padding for both sides: skip shapes needing two.
        if t.validate().is_err() || (t.out_h(), t.out_w()) != (p.in_h, p.in_w) {
            continue;
        }
        let s = n as u32 * 10;
        let (x, w, y) = (
            random(p.x_len(), 1.0, s),
            random(p.w_len(), 0.3, s + 1),
            random(p.y_len(), 1.0, s + 2),
        );
        let mut conv_x = vec![0.0; p.y_len()];
        conv2d_forward(p, &x, &w, None, &mut conv_x);
        let mut conv_t_y = vec![0.0; p.x_len()];
        conv_transpose2d_forward(&t, &y, &w, None, &mut conv_t_y);
        let (lhs, rhs) = (dot(&conv_x, &y), dot(&x, &conv_t_y));
        // Relative to the sum of |terms|, so a near-zero product is no problem.
        let scale: f64 = conv_x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a * b).abs() as f64)
            .sum();
        assert!(
            (lhs - rhs).abs() <= 1e-4 * scale.max(1e-6),
            "{p:?}: <conv(x), y> = {lhs} but <x, conv_t(y)> = {rhs}"
        );
        checked += 1;
    }
    assert!(checked > 20, "only {checked} adjoint pairs checked");
}

// ---------------------------------------------------------------- gradients

/// The analytic conv2d gradients of L = <conv(x, w) + b, r>: (dx, dw, dbias).
fn conv2d_analytic(p: &Conv2dParams, x: &[f32], w: &[f32], r: &[f32]) -> [Vec<f32>; 3] {
    let mut dx = vec![f32::NAN; p.x_len()];
    let mut dw = vec![f32::NAN; p.w_len()];
    let mut db = vec![f32::NAN; p.out_channels];
    conv2d_backward_input(p, r, w, &mut dx);
    conv2d_backward_params(p, x, r, &mut dw, Some(&mut db));
    [dx, dw, db]
}

/// The finite-difference checks of one conv2d case, given its analytic
/// gradients (dx, dw, dbias).
fn conv2d_checks(
    p: &Conv2dParams,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    r: &[f32],
    grads: &[Vec<f32>; 3],
) -> Vec<Result<Worst, String>> {
    let mut y = vec![0.0; p.y_len()];
    let mut loss = |x: &[f32], w: &[f32], b: &[f32]| {
        conv2d_forward(p, x, w, Some(b), &mut y);
        dot(&y, r)
    };
    let (mut xv, mut wv, mut bv) = (x.to_vec(), w.to_vec(), b.to_vec());
    let dx = fd_pairs(H_LINEAR, &mut xv, &grads[0], |v| loss(v, w, b));
    let dw = fd_pairs(H_LINEAR, &mut wv, &grads[1], |v| loss(x, v, b));
    let db = fd_pairs(H_LINEAR, &mut bv, &grads[2], |v| loss(x, w, v));
    vec![
        check(&format!("conv2d dx {p:?}"), &dx),
        check(&format!("conv2d dw {p:?}"), &dw),
        check(&format!("conv2d dbias {p:?}"), &db),
    ]
}

/// Random x, w, b and r for a case.
fn conv2d_inputs(p: &Conv2dParams, seed: u32) -> [Vec<f32>; 4] {
    [
        random(p.x_len(), 1.0, seed),
        random(p.w_len(), 0.3, seed + 1),
        random(p.out_channels, 0.3, seed + 2),
        random(p.y_len(), 1.0, seed + 3),
    ]
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    let mut checks = Vec::new();
    for (n, p) in conv_cases().iter().enumerate() {
        let [x, w, b, r] = conv2d_inputs(p, n as u32 * 10);
        let grads = conv2d_analytic(p, &x, &w, &r);
        checks.extend(conv2d_checks(p, &x, &w, &b, &r, &grads));
    }
    let worst = all_pass(checks);
    println!("conv2d: worst |diff| over all cases {worst:?}");
}

#[test]
fn conv_transpose2d_gradients_match_finite_differences() {
    let mut checks = Vec::new();
    for (n, p) in conv_transpose_cases().iter().enumerate() {
        let s = n as u32 * 10;
        let (x, w, b, r) = (
            random(p.x_len(), 1.0, s),
            random(p.w_len(), 0.3, s + 1),
            random(p.out_channels, 0.3, s + 2),
            random(p.y_len(), 1.0, s + 3),
        );
        let mut dx = vec![f32::NAN; p.x_len()];
        let mut dw = vec![f32::NAN; p.w_len()];
        let mut db = vec![f32::NAN; p.out_channels];
        conv_transpose2d_backward_input(p, &r, &w, &mut dx);
        conv_transpose2d_backward_params(p, &x, &r, &mut dw, Some(&mut db));

        let mut y = vec![0.0; p.y_len()];
        let mut loss = |x: &[f32], w: &[f32], b: &[f32]| {
            conv_transpose2d_forward(p, x, w, Some(b), &mut y);
            dot(&y, &r)
        };
        let (mut xv, mut wv, mut bv) = (x.clone(), w.clone(), b.clone());
        let fd_dx = fd_pairs(H_LINEAR, &mut xv, &dx, |v| loss(v, &w, &b));
        let fd_dw = fd_pairs(H_LINEAR, &mut wv, &dw, |v| loss(&x, v, &b));
        let fd_db = fd_pairs(H_LINEAR, &mut bv, &db, |v| loss(&x, &w, v));
        checks.push(check(&format!("conv_transpose2d dx {p:?}"), &fd_dx));
        checks.push(check(&format!("conv_transpose2d dw {p:?}"), &fd_dw));
        checks.push(check(&format!("conv_transpose2d dbias {p:?}"), &fd_db));
    }
    let worst = all_pass(checks);
    println!("conv_transpose2d: worst |diff| over all cases {worst:?}");
}

/// Random x, gamma near 1, beta and r for a batch-norm case. Each channel
/// of x is standardised and then given mean 0.5 * c and std 0.5 + 0.25 * c,
/// so the statistics differ from channel to channel and none is near
/// constant: in a channel of std s the third derivative grows as 1/s^3, and
/// a near-constant one (two draws 0.07 apart, say) would need a step far
/// below what the f32 rounding of y allows.
fn batch_norm_inputs(p: &BatchNormParams, seed: u32) -> [Vec<f32>; 4] {
    let mut x = random(p.len(), 1.0, seed);
    let channel = |i: usize| (i / p.spatial) % p.channels;
    let group = |i: usize| i / (p.spatial * p.channels) / p.group_rows();
    let n = p.group_count() as f64;
    // Each channel of each group gets its own mean and a std >= 0.5, so
    // groups that shared statistics would not pass.
    for g in 0..p.groups {
        for c in 0..p.channels {
            let values = || (0..x.len()).filter(move |i| channel(*i) == c && group(*i) == g);
            let mean = values().map(|i| x[i] as f64).sum::<f64>() / n;
            let var = values().map(|i| (x[i] as f64 - mean).powi(2)).sum::<f64>() / n;
            let to_mean = 0.5 * c as f64 + 0.7 * g as f64;
            let to_std = 0.5 + 0.25 * c as f64 + 0.5 * g as f64;
            for i in values() {
                x[i] = (to_mean + (x[i] as f64 - mean) / var.sqrt() * to_std) as f32;
            }
        }
    }
    let gamma = random(p.channels, 0.3, seed + 1)
        .into_iter()
        .map(|g| 1.0 + g)
        .collect();
    [
        x,
        gamma,
        random(p.channels, 0.3, seed + 2),
        random(p.len(), 1.0, seed + 3),
    ]
}

/// L = <batch_norm_forward_train(x), r>; the running estimates it moves are
/// scratch copies.
fn batch_norm_loss(p: &BatchNormParams, x: &[f32], gamma: &[f32], beta: &[f32], r: &[f32]) -> f64 {
    let (c, saved) = (p.channels, p.stats_len());
    let mut y = vec![0.0; p.len()];
    let (mut mean, mut inv_std) = (vec![0.0; saved], vec![0.0; saved]);
    let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
    batch_norm_forward_train(
        p,
        x,
        gamma,
        beta,
        &mut y,
        &mut mean,
        &mut inv_std,
        &mut rm,
        &mut rv,
    );
    dot(&y, r)
}

/// The analytic batch-norm gradients (dx, dgamma, dbeta) of L for dy = r.
fn batch_norm_analytic(
    p: &BatchNormParams,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    r: &[f32],
) -> [Vec<f32>; 3] {
    let (c, saved) = (p.channels, p.stats_len());
    let mut y = vec![0.0; p.len()];
    let (mut mean, mut inv_std) = (vec![0.0; saved], vec![0.0; saved]);
    let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
    batch_norm_forward_train(
        p,
        x,
        gamma,
        beta,
        &mut y,
        &mut mean,
        &mut inv_std,
        &mut rm,
        &mut rv,
    );
    let mut dx = vec![f32::NAN; p.len()];
    let (mut dgamma, mut dbeta) = (vec![f32::NAN; c], vec![f32::NAN; c]);
    batch_norm_backward(
        p,
        x,
        r,
        gamma,
        &mean,
        &inv_std,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
    );
    [dx, dgamma, dbeta]
}

fn batch_norm_checks(
    p: &BatchNormParams,
    [x, gamma, beta, r]: &[Vec<f32>; 4],
    grads: &[Vec<f32>; 3],
) -> Vec<Result<Worst, String>> {
    let (mut xv, mut gv, mut bv) = (x.clone(), gamma.clone(), beta.clone());
    let dx = fd_pairs(H, &mut xv, &grads[0], |v| {
        batch_norm_loss(p, v, gamma, beta, r)
    });
    let dg = fd_pairs(H, &mut gv, &grads[1], |v| batch_norm_loss(p, x, v, beta, r));
    let db = fd_pairs(H, &mut bv, &grads[2], |v| {
        batch_norm_loss(p, x, gamma, v, r)
    });
    vec![
        check(&format!("batch_norm dx {p:?}"), &dx),
        check(&format!("batch_norm dgamma {p:?}"), &dg),
        check(&format!("batch_norm dbeta {p:?}"), &db),
    ]
}

#[test]
fn batch_norm_gradients_match_finite_differences() {
    let mut checks = Vec::new();
    for (n, p) in batch_norm_cases().iter().enumerate() {
        let inputs = batch_norm_inputs(p, n as u32 * 10);
        let [x, gamma, beta, r] = &inputs;
        let grads = batch_norm_analytic(p, x, gamma, beta, r);
        checks.extend(batch_norm_checks(p, &inputs, &grads));
    }
    let worst = all_pass(checks);
    println!("batch_norm: worst |diff| over all cases {worst:?}");
}

/// Groups of rows with their own statistics (the D of a GAN over [real;
/// fake]): 2 groups, 1-d and 2-d, and 3 groups; the same step and
/// tolerance as above (each group's channels have std >= 0.5).
fn batch_norm_group_cases() -> Vec<BatchNormParams> {
    [
        (4, 3, 1, 2),
        (2, 1, 25, 2),
        (4, 3, 25, 2),
        (6, 2, 1, 3),
        (3, 2, 9, 3),
    ]
    .into_iter()
    .map(|(batch, channels, spatial, groups)| {
        let p = BatchNormParams {
            batch,
            channels,
            spatial,
            momentum: 0.1,
            eps: 1e-5,
            groups,
        };
        p.validate_train().unwrap();
        p
    })
    .collect()
}

#[test]
fn grouped_batch_norm_gradients_match_finite_differences() {
    let mut checks = Vec::new();
    for (n, p) in batch_norm_group_cases().iter().enumerate() {
        let inputs = batch_norm_inputs(p, 500 + n as u32 * 10);
        let [x, gamma, beta, r] = &inputs;
        let grads = batch_norm_analytic(p, x, gamma, beta, r);
        checks.extend(batch_norm_checks(p, &inputs, &grads));
    }
    let worst = all_pass(checks);
    println!("grouped batch_norm: worst |diff| over all cases {worst:?}");

    // The gradient of one batch statistic over all rows fails the grouped check.
    let p = batch_norm_group_cases()[2];
    let inputs = batch_norm_inputs(&p, 520);
    let [x, gamma, beta, r] = &inputs;
    let joint = BatchNormParams { groups: 1, ..p };
    let grads = batch_norm_analytic(&joint, x, gamma, beta, r);
    let checks = batch_norm_checks(&p, &inputs, &grads);
    assert!(checks[0].is_err(), "dx of the joint statistics passed");
}

#[test]
fn a_wrong_gradient_is_caught() {
    // conv2d's dw scaled by 1.2.
    let p = conv_cases()[7];
    let [x, w, b, r] = conv2d_inputs(&p, 70);
    let mut grads = conv2d_analytic(&p, &x, &w, &r);
    grads[1].iter_mut().for_each(|g| *g *= 1.2);
    let checks = conv2d_checks(&p, &x, &w, &b, &r, &grads);
    assert!(checks[0].is_ok() && checks[2].is_ok(), "{checks:?}");
    assert!(checks[1].is_err(), "a dw scaled by 1.2 passed: {checks:?}");

    // Batch norm's dx without the terms through the batch statistics
    // (dx = gamma * inv_std * dy, the eval-mode gradient).
    let p = BatchNormParams {
        batch: 2,
        channels: 3,
        spatial: 25,
        momentum: 0.1,
        eps: 1e-5,
        groups: 1,
    };
    let inputs = batch_norm_inputs(&p, 80);
    let [x, gamma, beta, r] = &inputs;
    let mut grads = batch_norm_analytic(&p, x, gamma, beta, r);
    for (i, g) in grads[0].iter_mut().enumerate() {
        let c = (i / p.spatial) % p.channels;
        let mean: f32 = (0..p.batch)
            .flat_map(|n| &x[(n * p.channels + c) * p.spatial..][..p.spatial])
            .sum::<f32>()
            / p.count() as f32;
        let var: f32 = (0..p.batch)
            .flat_map(|n| &x[(n * p.channels + c) * p.spatial..][..p.spatial])
            .map(|v| (v - mean).powi(2))
            .sum::<f32>()
            / p.count() as f32;
        *g = gamma[c] * r[i] / (var + p.eps).sqrt();
    }
    let checks = batch_norm_checks(&p, &inputs, &grads);
    assert!(checks[1].is_ok() && checks[2].is_ok(), "{checks:?}");
    assert!(
        checks[0].is_err(),
        "a dx without the statistics' terms passed"
    );
}

// ---------------------------------------------------------------- batch norm by hand

#[test]
fn batch_norm_running_statistics_use_the_unbiased_variance() {
    // Two images, two channels, 2 values each (a 1x2 "image").
    // Channel 0 holds 1, 2, 3, 4: mean 2.5, biased variance 1.25, unbiased 5/3.
    // Channel 1 holds 0, 0, 2, 6: mean 2, biased variance 6, unbiased 8.
    let p = BatchNormParams {
        batch: 2,
        channels: 2,
        spatial: 2,
        momentum: 0.1,
        eps: 1e-5,
        groups: 1,
    };
    let x = [1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 2.0, 6.0];
    let (gamma, beta) = ([1.0, 2.0], [0.0, 0.5]);
    let mut y = [0.0; 8];
    let (mut mean, mut inv_std) = ([0.0; 2], [0.0; 2]);
    let (mut rm, mut rv) = ([0.5, -1.0], [1.0, 2.0]);
    batch_norm_forward_train(
        &p,
        &x,
        &gamma,
        &beta,
        &mut y,
        &mut mean,
        &mut inv_std,
        &mut rm,
        &mut rv,
    );
    let near = |a: f32, b: f32| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
    assert!(near(mean[0], 2.5) && near(mean[1], 2.0), "{mean:?}");
    assert!(
        near(inv_std[0], 1.0 / (1.25f32 + 1e-5).sqrt())
            && near(inv_std[1], 1.0 / (6.0f32 + 1e-5).sqrt()),
        "{inv_std:?}"
    );
    // running_mean = 0.9 * [0.5, -1] + 0.1 * [2.5, 2] = [0.7, -0.7];
    // running_var = 0.9 * [1, 2] + 0.1 * [5/3, 8] = [1.0666667, 2.6].
    assert!(near(rm[0], 0.7) && near(rm[1], -0.7), "{rm:?}");
    assert!(near(rv[0], 1.0666667) && near(rv[1], 2.6), "{rv:?}");
    // y normalises with the biased variance: x = 1 in channel 0 is
    // (1 - 2.5) / sqrt(1.25) = -1.3416408; x = 6 in channel 1 is
    // 2 * (6 - 2) / sqrt(6) + 0.5 = 3.7659863.
    assert!(near(y[0], -1.3416408), "{y:?}");
    assert!(near(y[7], 3.7659863), "{y:?}");
}

#[test]
fn batch_norm_eval_uses_the_running_statistics() {
    let p = BatchNormParams {
        batch: 2,
        channels: 2,
        spatial: 1,
        momentum: 0.1,
        eps: 1e-5,
        groups: 1,
    };
    let (gamma, beta) = ([2.0, 0.5], [0.1, -0.3]);
    let (rm, rv) = ([1.0, -2.0], [4.0, 0.25]);
    // Image 0: [3, -1]; image 1: [1, -2] (exactly the running means).
    let x = [3.0, -1.0, 1.0, -2.0];
    let mut y = [0.0; 4];
    batch_norm_forward_eval(&p, &x, &gamma, &beta, &rm, &rv, &mut y);
    // 2 * (3 - 1) / 2 + 0.1 = 2.1; 0.5 * (-1 + 2) / 0.5 - 0.3 = 0.7; then beta.
    let want = [2.1, 0.7, 0.1, -0.3];
    for (g, w) in y.iter().zip(want) {
        assert!((g - w).abs() <= 1e-4, "{y:?} instead of {want:?}");
    }
    // Each image alone gives the same: the batch's own statistics play no part
    // (in training, image 1 would normalise to the opposite of image 0).
    let one = BatchNormParams { batch: 1, ..p };
    let mut alone = [0.0; 2];
    batch_norm_forward_eval(&one, &x[2..], &gamma, &beta, &rm, &rv, &mut alone);
    assert_eq!(alone, [y[2], y[3]]);
    let mut train_y = [0.0; 4];
    let (mut mean, mut inv_std) = ([0.0; 2], [0.0; 2]);
    let (mut rm2, mut rv2) = (rm, rv);
    batch_norm_forward_train(
        &p,
        &x,
        &gamma,
        &beta,
        &mut train_y,
        &mut mean,
        &mut inv_std,
        &mut rm2,
        &mut rv2,
    );
    assert!(
        (train_y[2] - y[2]).abs() > 0.5,
        "train {train_y:?} vs eval {y:?}"
    );
}

/// The training forward and the backward over [a; b] with `groups` 2 and
/// the returned values, against two `groups` 1 calls (a, then b).
struct Pass {
    y: Vec<f32>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    rm: Vec<f32>,
    rv: Vec<f32>,
    dx: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
}

/// Forward (running estimates from rm, rv) and backward with dy on p.
fn bn_pass(
    p: &BatchNormParams,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    dy: &[f32],
    rm: &[f32],
    rv: &[f32],
) -> Pass {
    let (c, saved) = (p.channels, p.stats_len());
    let mut out = Pass {
        y: vec![f32::NAN; p.len()],
        mean: vec![f32::NAN; saved],
        inv_std: vec![f32::NAN; saved],
        rm: rm.to_vec(),
        rv: rv.to_vec(),
        dx: vec![f32::NAN; p.len()],
        dgamma: vec![f32::NAN; c],
        dbeta: vec![f32::NAN; c],
    };
    batch_norm_forward_train(
        p,
        x,
        gamma,
        beta,
        &mut out.y,
        &mut out.mean,
        &mut out.inv_std,
        &mut out.rm,
        &mut out.rv,
    );
    batch_norm_backward(
        p,
        x,
        dy,
        gamma,
        &out.mean,
        &out.inv_std,
        &mut out.dx,
        &mut out.dgamma,
        &mut out.dbeta,
    );
    out
}

/// Groups 2 over [a; b] is exactly PyTorch's two training calls, a then b:
/// y, the saved statistics ([2, C]: a's, then b's) and the running
/// estimates after both are bit for bit those of two `groups` 1 calls (the
/// same f64 sums in the same order). The backward's dx is the two dx
/// concatenated, exactly; dgamma and dbeta are the sums of the two calls'
/// to f32 rounding: the grouped op rounds its f64 total once (eps/2
/// relative), the separate ones round each part (eps/2 of each) and their
/// f32 sum once more, so they differ by at most 2 * eps * (|da| + |db|).
/// Swapping the order of the two running updates is detected.
#[test]
fn two_groups_equal_two_separate_calls() {
    for (batch, channels, spatial) in [(8, 3, 1), (4, 2, 25)] {
        let p = BatchNormParams {
            batch,
            channels,
            spatial,
            momentum: 0.3,
            eps: 1e-5,
            groups: 2,
        };
        let half = BatchNormParams {
            batch: batch / 2,
            groups: 1,
            ..p
        };
        let [x, gamma, beta, dy] = batch_norm_inputs(&p, 900 + batch as u32);
        let rm = random(channels, 0.5, 950);
        let rv: Vec<f32> = random(channels, 0.2, 951).iter().map(|v| 1.0 + v).collect();
        let (xa, xb) = x.split_at(half.len());
        let (dya, dyb) = dy.split_at(half.len());

        let both = bn_pass(&p, &x, &gamma, &beta, &dy, &rm, &rv);
        let a = bn_pass(&half, xa, &gamma, &beta, dya, &rm, &rv);
        let b = bn_pass(&half, xb, &gamma, &beta, dyb, &a.rm, &a.rv);
        let cat = |u: &[f32], v: &[f32]| [u, v].concat();
        assert_eq!(both.y, cat(&a.y, &b.y), "y");
        assert_eq!(both.mean, cat(&a.mean, &b.mean), "saved_mean");
        assert_eq!(both.inv_std, cat(&a.inv_std, &b.inv_std), "saved_inv_std");
        assert_eq!(both.rm, b.rm, "running_mean");
        assert_eq!(both.rv, b.rv, "running_var");
        assert_eq!(both.dx, cat(&a.dx, &b.dx), "dx");
        let mut worst = 0.0f32;
        for (name, g, u, v) in [
            ("dgamma", &both.dgamma, &a.dgamma, &b.dgamma),
            ("dbeta", &both.dbeta, &a.dbeta, &b.dbeta),
        ] {
            for c in 0..channels {
                let diff = (g[c] - (u[c] + v[c])).abs();
                let tol = 2.0 * f32::EPSILON * (u[c].abs() + v[c].abs());
                assert!(diff <= tol, "{name}[{c}]: {} vs {} + {}", g[c], u[c], v[c]);
                worst = worst.max(diff);
            }
        }
        println!("{p:?}: forward and dx exact, dgamma/dbeta worst |diff| {worst:.2e}");

        // The groups' statistics differ, so the order of the running
        // updates shows: b then a gives other running estimates.
        let b_first = bn_pass(&half, xb, &gamma, &beta, dyb, &rm, &rv);
        let a_second = bn_pass(&half, xa, &gamma, &beta, dya, &b_first.rm, &b_first.rv);
        assert!(
            both.rm
                .iter()
                .zip(&a_second.rm)
                .all(|(u, v)| (u - v).abs() > 1e-3),
            "{:?} {:?}",
            both.rm,
            a_second.rm
        );
        assert!(both
            .rv
            .iter()
            .zip(&a_second.rv)
            .any(|(u, v)| (u - v).abs() > 1e-3));
        // And one set of statistics over all rows is not the same thing.
        let joint = bn_pass(
            &BatchNormParams { groups: 1, ..p },
            &x,
            &gamma,
            &beta,
            &dy,
            &rm,
            &rv,
        );
        assert!(joint.y != both.y && joint.rm != both.rm);
    }
}
