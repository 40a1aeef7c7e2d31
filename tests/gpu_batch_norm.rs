//! The GPU batch norm (`GpuBackend::batch_norm_*`, `shaders/batch_norm.wgsl`)
//! against its CPU twin in `backend::cpu::batch_norm`, on Vulkan and GL
//! (see `common`): channels 1, 2, 3 and 7, spatial 1 (1-D), 5 x 5, 7 x 7
//! and 10 x 10 / 8 x 8 (300 and 320 values per channel, more than the 256
//! threads of a per-channel workgroup, so its strided loops run twice),
//! batches 2, 3 and 5. Every case checks the training forward (y,
//! saved_mean, saved_inv_std, the updated running_mean and running_var),
//! the evaluation forward and the backward (dx, dgamma, dbeta); two cases
//! also run every fused activation. Rows in 2 and 3 groups with their own
//! statistics run every op too. Each comparison prints its largest
//! difference; outputs start as a sentinel, so an element a kernel never
//! writes fails.

mod common;

use gan_gpu::backend::conv_params::BatchNormParams;
use gan_gpu::backend::cpu::batch_norm as cpu;
use gan_gpu::backend::gpu::{GpuApi, GpuBackend};
use gan_gpu::backend::{Backend, Tensor};
use gan_gpu::error::Error;
use gan_gpu::model::Activation;
use gan_gpu::rng;

/// Relative part of every tolerance: 1e-5 is about 84 ulps of f32.
const RTOL: f32 = 1e-5;

/// Absolute tolerance of a value computed from per-channel sums of `n`
/// terms of magnitude about 1 (x in [-0.5, 1.5], dy in [-1, 1], |x_hat|
/// below 3 here). The GPU sums in f32 (each thread a strided run of at most
/// 2 terms here, then an 8-level tree), the CPU in f64: the f32 sums err by
/// about (2 + 8) / 2 roundings of eps = 1.2e-7 relative to the sum of |terms|,
/// so a mean or variance is good to ~1e-6 relative, and y = gamma * x_hat +
/// beta, dx (through the two means of the sums) and the running estimates
/// to a few 1e-6 absolute; dgamma and dbeta are the sums themselves, whose
/// error grows with n. We allow 1e-5 plus 2e-6 per term of the sum: 2e-5
/// for the normalised values, 6e-4 for a 300-term dgamma; far below what an
/// indexing bug gives (a value of another channel or position, ~0.1 or more).
fn atol(n: usize) -> f32 {
    1e-5 + 2e-6 * n as f32
}

/// Written into every output before an op: an unwritten element fails.
const SENTINEL: f32 = 1.0e6;

/// Deterministic test data in [-1, 1].
fn data(len: usize, key: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| rng::uniform01(97, 3000 + key, len as u32, i) * 2.0 - 1.0)
        .collect()
}

/// One GPU backend and the worst difference seen on it.
struct Gpu {
    gpu: GpuBackend,
    api: GpuApi,
    worst: f32,
}

impl Gpu {
    fn tensor(&mut self, data: &[f32]) -> Tensor {
        let t = self.gpu.alloc(data.len()).unwrap();
        self.gpu.write(t, data).unwrap();
        t
    }

    fn output(&mut self, len: usize) -> Tensor {
        self.tensor(&vec![SENTINEL; len])
    }

    /// Reads `t` and compares it with the CPU's `cpu` within
    /// `atol(n) + RTOL * |cpu|`.
    fn check(&mut self, name: &str, t: Tensor, cpu: &[f32], n: usize) {
        let gpu = self.gpu.read(t).unwrap();
        let name = format!("[{}] {name}", self.api);
        let diff = compare(&name, &gpu, cpu, atol(n));
        self.worst = self.worst.max(diff);
    }
}

/// `|gpu - cpu| <= atol + RTOL * |cpu|` everywhere; prints and returns the
/// largest difference.
fn compare(name: &str, gpu: &[f32], cpu: &[f32], atol: f32) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "{name}: lengths differ");
    let mut worst = (0.0f32, 0usize);
    let mut failures = Vec::new();
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let diff = (g - c).abs();
        if !diff.is_finite() || diff > atol + RTOL * c.abs() {
            failures.push(i);
        } else if diff > worst.0 {
            worst = (diff, i);
        }
    }
    println!(
        "{name}: {} values, largest |gpu - cpu| = {:.3e} (at {}), atol {atol:.1e}, rtol {RTOL:.0e}",
        gpu.len(),
        worst.0,
        worst.1
    );
    if let Some(&i) = failures.first() {
        panic!(
            "{name}: {} of {} values out of tolerance; first at {i}: gpu {} cpu {}",
            failures.len(),
            gpu.len(),
            gpu[i],
            cpu[i]
        );
    }
    worst.0
}

/// Runs `body` on every API under test, one at a time, then checks that no
/// error was left pending; prints the worst difference per API.
fn on_every_api(what: &str, body: impl Fn(&mut Gpu)) {
    let _serial = common::gpu_test_lock();
    for (api, gpu) in common::gpu_backends() {
        let start = std::time::Instant::now();
        let mut g = Gpu {
            gpu,
            api,
            worst: 0.0,
        };
        body(&mut g);
        g.gpu.flush().unwrap();
        println!(
            "[{api}] {what} on {}: largest difference {:.3e}, {:.1} s",
            g.gpu.adapter_info().name,
            g.worst,
            start.elapsed().as_secs_f64()
        );
    }
}

/// (batch, channels, spatial, momentum).
const CASES: [(usize, usize, usize, f32); 10] = [
    (2, 1, 1, 0.1),
    (3, 3, 1, 0.1),
    (5, 7, 1, 0.3),
    (2, 3, 25, 0.1),
    (3, 7, 25, 0.1),
    (5, 1, 49, 0.1),
    (2, 7, 49, 1.0),
    (3, 3, 49, 0.0),
    (3, 2, 100, 0.1),
    (5, 3, 64, 0.1),
];

/// (batch, channels, spatial, momentum, groups): rows in groups with their
/// own statistics (the D of a GAN over [real; fake]); 144 x 2 = 288 values
/// a channel of a group runs the strided loops twice.
const GROUP_CASES: [(usize, usize, usize, f32, usize); 4] = [
    (4, 3, 1, 0.1, 2),
    (2, 3, 25, 0.3, 2),
    (4, 2, 144, 0.1, 2),
    (6, 3, 5, 0.3, 3),
];

fn params(case: usize) -> BatchNormParams {
    let (batch, channels, spatial, momentum) = CASES[case];
    make_params(batch, channels, spatial, momentum, 1)
}

fn make_params(
    batch: usize,
    channels: usize,
    spatial: usize,
    momentum: f32,
    groups: usize,
) -> BatchNormParams {
    let p = BatchNormParams {
        batch,
        channels,
        spatial,
        momentum,
        eps: 1e-5,
        groups,
    };
    p.validate_train().unwrap();
    p
}

const ACTIVATIONS: [Activation; 5] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu(0.2),
    Activation::Sigmoid,
    Activation::Tanh,
];

/// Every op on case `case`, with activation `act` in the forward ops.
fn run_case(g: &mut Gpu, case: usize, act: Activation) {
    run_params(g, params(case), 10 * case as u32, act);
}

/// Every op on `p`, with activation `act` in the forward ops.
fn run_params(g: &mut Gpu, p: BatchNormParams, key: u32, act: Activation) {
    let (len, c, n, saved) = (p.len(), p.channels, p.count(), p.stats_len());
    // x off centre, so the mean matters; each group of rows 0.5 further.
    let row_len = p.channels * p.spatial;
    let x: Vec<f32> = data(len, key)
        .iter()
        .enumerate()
        .map(|(i, v)| 0.5 + v + 0.5 * (i / row_len / p.group_rows()) as f32)
        .collect();
    let gamma: Vec<f32> = data(c, key + 1).iter().map(|v| 1.0 + 0.5 * v).collect();
    let beta = data(c, key + 2);
    let running_mean0 = data(c, key + 3);
    let running_var0: Vec<f32> = data(c, key + 4).iter().map(|v| 1.0 + 0.5 * v).collect();
    let dy = data(len, key + 5);
    let name = format!(
        "B={} C={} S={} momentum={} groups={} {act:?}",
        p.batch, p.channels, p.spatial, p.momentum, p.groups
    );

    // Training forward.
    let mut y = vec![0.0; len];
    let (mut mean, mut inv_std) = (vec![0.0; saved], vec![0.0; saved]);
    let (mut rm, mut rv) = (running_mean0.clone(), running_var0.clone());
    cpu::batch_norm_forward_train(
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
    let y_act: Vec<f32> = y.iter().map(|&v| act.apply(v)).collect();
    let (gx, ggamma, gbeta) = (g.tensor(&x), g.tensor(&gamma), g.tensor(&beta));
    let (grm, grv) = (g.tensor(&running_mean0), g.tensor(&running_var0));
    let gy = g.output(len);
    let (gmean, ginv) = (g.output(saved), g.output(saved));
    g.gpu
        .try_batch_norm_forward_train(&p, act, gx, ggamma, gbeta, gy, gmean, ginv, grm, grv)
        .unwrap();
    let train = format!("batch_norm_forward_train {name}");
    g.check(&format!("{train} y"), gy, &y_act, 0);
    g.check(&format!("{train} saved_mean"), gmean, &mean, 0);
    g.check(&format!("{train} saved_inv_std"), ginv, &inv_std, 0);
    g.check(&format!("{train} running_mean"), grm, &rm, 0);
    g.check(&format!("{train} running_var"), grv, &rv, 0);

    // Evaluation forward, from the updated running estimates.
    let mut y_eval = vec![0.0; len];
    cpu::batch_norm_forward_eval(&p, &x, &gamma, &beta, &rm, &rv, &mut y_eval);
    let y_eval: Vec<f32> = y_eval.iter().map(|&v| act.apply(v)).collect();
    let (crm, crv) = (g.tensor(&rm), g.tensor(&rv));
    let gy_eval = g.output(len);
    g.gpu
        .try_batch_norm_forward_eval(&p, act, gx, ggamma, gbeta, crm, crv, gy_eval)
        .unwrap();
    g.check(
        &format!("batch_norm_forward_eval {name} y"),
        gy_eval,
        &y_eval,
        0,
    );

    if act != Activation::Identity {
        return;
    }
    // Backward, from the CPU's saved statistics.
    let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; len], vec![0.0; c], vec![0.0; c]);
    cpu::batch_norm_backward(
        &p,
        &x,
        &dy,
        &gamma,
        &mean,
        &inv_std,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
    );
    let (gdy, cmean, cinv) = (g.tensor(&dy), g.tensor(&mean), g.tensor(&inv_std));
    let gdx = g.output(len);
    let (gdgamma, gdbeta) = (g.output(c), g.output(c));
    g.gpu
        .try_batch_norm_backward(&p, gx, gdy, ggamma, cmean, cinv, gdx, gdgamma, gdbeta)
        .unwrap();
    let backward = format!("batch_norm_backward {name}");
    g.check(&format!("{backward} dx"), gdx, &dx, 0);
    g.check(&format!("{backward} dgamma"), gdgamma, &dgamma, n);
    g.check(&format!("{backward} dbeta"), gdbeta, &dbeta, n);
}

#[test]
fn batch_norm_matches_cpu() {
    on_every_api("batch_norm", |g| {
        for case in 0..CASES.len() {
            run_case(g, case, Activation::Identity);
        }
    });
}

#[test]
fn grouped_batch_norm_matches_cpu() {
    on_every_api("grouped batch_norm", |g| {
        for (i, (batch, channels, spatial, momentum, groups)) in GROUP_CASES.into_iter().enumerate()
        {
            let p = make_params(batch, channels, spatial, momentum, groups);
            run_params(g, p, 200 + 10 * i as u32, Activation::Identity);
        }
        let (batch, channels, spatial, momentum, groups) = GROUP_CASES[1];
        let p = make_params(batch, channels, spatial, momentum, groups);
        run_params(g, p, 300, Activation::LeakyRelu(0.2));
    });
}

#[test]
fn batch_norm_fused_activations_match_cpu() {
    on_every_api("batch_norm activations", |g| {
        for case in [2, 9] {
            for act in &ACTIVATIONS[1..] {
                run_case(g, case, *act);
            }
        }
    });
}

/// Wrong lengths, an output that is also an input and impossible
/// parameters come back as errors at the call, record nothing, and leave
/// the backend usable (the next flush is clean).
#[test]
fn batch_norm_rejects_bad_arguments() {
    on_every_api("bad arguments", |g| {
        let p = params(3);
        let (len, c) = (p.len(), p.channels);
        let id = Activation::Identity;
        let x = g.tensor(&data(len, 1));
        let gamma = g.tensor(&vec![1.0; c]);
        let beta = g.tensor(&vec![0.0; c]);
        let y = g.output(len);
        let short = g.output(len - 1);
        let long_c = g.output(c + 1);
        let (mean, inv) = (g.output(c), g.output(c));
        let (rm, rv) = (g.tensor(&vec![0.0; c]), g.tensor(&vec![1.0; c]));
        let (dx, dg, db) = (g.output(len), g.output(c), g.output(c));
        let dispatches = g.gpu.dispatches();
        let api = g.api;
        let expect = |r: Result<(), Error>, what: &str| {
            let e = r.expect_err(what).to_string();
            println!("[{api}] {what}: {e}");
        };
        expect(
            g.gpu
                .try_batch_norm_forward_train(&p, id, x, gamma, beta, short, mean, inv, rm, rv),
            "short y",
        );
        expect(
            g.gpu
                .try_batch_norm_forward_train(&p, id, x, long_c, beta, y, mean, inv, rm, rv),
            "long gamma",
        );
        expect(
            g.gpu
                .try_batch_norm_forward_train(&p, id, x, gamma, beta, y, mean, mean, rm, rv),
            "saved_inv_std is saved_mean",
        );
        expect(
            g.gpu
                .try_batch_norm_forward_train(&p, id, x, gamma, beta, x, mean, inv, rm, rv),
            "y is x",
        );
        expect(
            g.gpu
                .try_batch_norm_forward_eval(&p, id, x, gamma, beta, rm, rv, x),
            "eval y is x",
        );
        expect(
            g.gpu
                .try_batch_norm_backward(&p, x, y, gamma, mean, inv, dx, db, db),
            "dbeta is dgamma",
        );
        expect(
            g.gpu
                .try_batch_norm_backward(&p, x, y, gamma, mean, inv, short, dg, db),
            "short dx",
        );
        let one_value = BatchNormParams {
            batch: 1,
            spatial: 1,
            ..p
        };
        let one = g.tensor(&vec![0.0; c]);
        let y_one = g.output(c);
        expect(
            g.gpu.try_batch_norm_forward_train(
                &one_value, id, one, gamma, beta, y_one, mean, inv, rm, rv,
            ),
            "training on one value per channel",
        );
        // Groups 2: the saved statistics are [2, C]; and the batch must be
        // a multiple of the groups.
        let two = make_params(4, 1, 1, 0.1, 2);
        let (x2, y2) = (g.tensor(&data(two.len(), 2)), g.output(two.len()));
        let (g1, b1) = (g.tensor(&[1.0]), g.tensor(&[0.0]));
        let (m1, i1, rm1, rv1) = (g.output(1), g.output(1), g.output(1), g.output(1));
        expect(
            g.gpu
                .try_batch_norm_forward_train(&two, id, x2, g1, b1, y2, m1, i1, rm1, rv1),
            "groups 2 with [C] saved statistics",
        );
        let uneven = BatchNormParams { groups: 3, ..p };
        expect(
            g.gpu
                .try_batch_norm_forward_eval(&uneven, id, x, gamma, beta, rm, rv, y),
            "batch 2 in 3 groups",
        );
        let no_eps = BatchNormParams { eps: 0.0, ..p };
        expect(
            g.gpu
                .try_batch_norm_forward_eval(&no_eps, id, x, gamma, beta, rm, rv, y),
            "eps 0",
        );
        let bad_momentum = BatchNormParams { momentum: 1.5, ..p };
        expect(
            g.gpu.try_batch_norm_forward_train(
                &bad_momentum,
                id,
                x,
                gamma,
                beta,
                y,
                mean,
                inv,
                rm,
                rv,
            ),
            "momentum 1.5",
        );
        assert_eq!(
            g.gpu.dispatches(),
            dispatches,
            "a rejected op recorded work"
        );
        g.gpu.flush().unwrap();
        g.gpu
            .try_batch_norm_forward_train(&p, id, x, gamma, beta, y, mean, inv, rm, rv)
            .unwrap();
        g.gpu.flush().unwrap();
    });
}
