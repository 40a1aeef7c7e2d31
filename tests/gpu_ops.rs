//! Every GPU kernel against its CPU twin, on awkward shapes (1, 7, 100, 257,
//! sizes that do not divide the 32-wide tiles), strided views, every
//! activation, with and without dropout. Each case runs on every API under
//! test (see `common`), prints its largest difference, and compares with
//! `|gpu - cpu| <= atol + rtol * |cpu|`. Integer-exact results (dropout masks,
//! one-hot labels, gathered pixels, the clock) must match exactly.

mod common;

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::gpu::{GpuApi, GpuBackend};
use gan_gpu::backend::{stat, Backend, CeSlots, Clock, Dropout, LossSlots, Mat, Tensor};
use gan_gpu::model::{Activation, AdamSettings, LayerSlot};
use gan_gpu::rng;

/// Relative part of every tolerance: 1e-5 is about 84 ulps of f32, room for
/// the few-ulp error of the GPU's exp/tanh/log/sqrt/division (WGSL allows
/// 2.5-3 ulp and more) and for a fused multiply-add where the CPU rounds twice.
const RTOL: f32 = 1e-5;

/// Absolute tolerance of a sum of `k` products of values in [-1.5, 1.5],
/// summed in different orders on the two backends (tiles of 32 on the GPU,
/// matrixmultiply's blocking on the CPU). Each rounding is at most
/// eps/2 times the running partial sum, which for random signs stays near
/// sqrt(k) / 2; over k additions that is about k * eps * sqrt(k) / 4 in the
/// worst alignment, i.e. 1.2e-4 for k = 257. We allow k * 2e-6 (5e-4 at
/// k = 257, 2e-6 at k = 1): still far below what any indexing bug gives (an
/// element off by a whole product, ~0.1 or more).
fn sum_atol(k: usize) -> f32 {
    2e-6 * k.max(1) as f32
}

/// Backends under test, side by side: the CPU reference and one GPU backend.
/// Tensors are allocated on both in the same order, so handles coincide.
struct Pair {
    cpu: CpuBackend,
    gpu: GpuBackend,
    api: GpuApi,
}

impl Pair {
    fn alloc(&mut self, data: &[f32]) -> Tensor {
        let c = self.cpu.alloc(data.len()).unwrap();
        let g = self.gpu.alloc(data.len()).unwrap();
        assert_eq!(c, g, "tensor handles diverged");
        self.cpu.write(c, data).unwrap();
        self.gpu.write(g, data).unwrap();
        c
    }

    fn set_clock(&mut self, clock: Clock) {
        self.cpu.set_clock(clock).unwrap();
        self.gpu.set_clock(clock).unwrap();
    }

    fn read(&mut self, t: Tensor) -> (Vec<f32>, Vec<f32>) {
        let g = self.gpu.read(t).unwrap();
        let c = self.cpu.read(t).unwrap();
        (g, c)
    }

    /// Runs the same op on both backends.
    fn both(&mut self, op: impl Fn(&mut dyn Backend)) {
        op(&mut self.cpu);
        op(&mut self.gpu);
    }

    /// Reads `t` from both and compares within tolerance.
    fn check(&mut self, name: &str, t: Tensor, atol: f32, rtol: f32) {
        let (g, c) = self.read(t);
        compare(&format!("[{}] {name}", self.api), &g, &c, atol, rtol);
    }

    /// Reads `t` from both and requires bit-identical contents.
    fn check_exact(&mut self, name: &str, t: Tensor) {
        let (g, c) = self.read(t);
        let name = format!("[{}] {name}", self.api);
        assert_eq!(g.len(), c.len(), "{name}: lengths");
        let bad = g
            .iter()
            .zip(&c)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        if let Some(i) = bad {
            panic!("{name}: element {i}: gpu {} != cpu {}", g[i], c[i]);
        }
        println!("{name}: {} values, exact", g.len());
    }
}

/// `|gpu - cpu| <= atol + rtol * |cpu|` everywhere; prints the largest difference.
fn compare(name: &str, gpu: &[f32], cpu: &[f32], atol: f32, rtol: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{name}: lengths differ");
    let mut worst = (0.0f32, 0usize);
    let mut failures = Vec::new();
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let diff = (g - c).abs();
        if diff.is_nan() || g.is_nan() != c.is_nan() {
            failures.push(i);
            continue;
        }
        if diff > worst.0 {
            worst = (diff, i);
        }
        if diff > atol + rtol * c.abs() {
            failures.push(i);
        }
    }
    println!(
        "{name}: {} values, largest |gpu - cpu| = {:.3e} (at {}, cpu {}), atol {atol:.1e}, rtol {rtol:.0e}",
        gpu.len(),
        worst.0,
        worst.1,
        cpu.get(worst.1).copied().unwrap_or(0.0)
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
}

/// Deterministic test data in [-scale, scale].
fn data(len: usize, key: u32, scale: f32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| (rng::uniform01(77, 1000 + key, len as u32, i) * 2.0 - 1.0) * scale)
        .collect()
}

/// Runs `body` on a fresh pair for every API under test.
fn on_every_api(body: impl Fn(&mut Pair)) {
    let _serial = common::gpu_test_lock();
    for (api, gpu) in common::gpu_backends() {
        let mut pair = Pair {
            cpu: CpuBackend::new(),
            gpu,
            api,
        };
        pair.set_clock(Clock {
            seed: 1234,
            step: 5,
            cursor: 0,
        });
        body(&mut pair);
        pair.gpu.flush().unwrap();
    }
}

const ACTIVATIONS: [Activation; 5] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu(0.2),
    Activation::Sigmoid,
    Activation::Tanh,
];

/// (batch, in, out): 1, 7, 100, 257 and tile-straddling sizes.
const SHAPES: [(usize, usize, usize); 8] = [
    (1, 1, 1),
    (1, 7, 257),
    (7, 257, 100),
    (100, 7, 257),
    (257, 100, 7),
    (100, 257, 1),
    (33, 65, 31),
    (7, 1, 100),
];

/// A layer placed after 13 other parameters, followed by 5 more.
fn layer(n_in: usize, n_out: usize) -> (LayerSlot, usize) {
    let weight = 13;
    let bias = weight + n_in * n_out;
    (
        LayerSlot {
            in_dim: n_in,
            out_dim: n_out,
            weight,
            bias,
        },
        bias + n_out + 5,
    )
}

/// The dropout of case `i`: none for even cases, p = 0.3 for odd ones.
fn dropout_for(i: usize) -> Option<Dropout> {
    (i % 2 == 1).then_some(Dropout {
        p: 0.3,
        stream: rng::stream::DROPOUT + i as u32,
    })
}

#[test]
fn linear_forward_matches_cpu() {
    on_every_api(|pair| {
        for (s, &(batch, n_in, n_out)) in SHAPES.iter().enumerate() {
            for (a, &act) in ACTIVATIONS.iter().enumerate() {
                let case = s * ACTIVATIONS.len() + a;
                let dropout = dropout_for(case);
                let (slot, plen) = layer(n_in, n_out);
                let params = pair.alloc(&data(plen, 1, 1.0));
                // x: columns 3.. of a [batch, in + 5] buffer; y: columns 2.. of [batch, out + 3].
                let xbuf = pair.alloc(&data(batch * (n_in + 5), 2, 1.0));
                let x = Mat::dense(xbuf, batch, n_in + 5).cols(3, n_in);
                let ybuf = pair.alloc(&data(batch * (n_out + 3), 3, 1.0));
                let y = Mat::dense(ybuf, batch, n_out + 3).cols(2, n_out);
                pair.both(|b| b.linear_forward(x, params, slot, act, dropout, y));
                let name = format!(
                    "linear_forward B={batch} in={n_in} out={n_out} {act:?} dropout={}",
                    dropout.is_some()
                );
                // The bias adds one more term; dropout scales by 1/0.7.
                pair.check(&name, ybuf, sum_atol(n_in + 1) * 1.5, RTOL);
            }
        }
    });
}

#[test]
fn dropout_mask_is_identical() {
    on_every_api(|pair| {
        let (batch, n_in, n_out) = (37, 19, 45);
        let (slot, plen) = layer(n_in, n_out);
        let params = pair.alloc(&data(plen, 4, 1.0));
        let x = Mat::dense(pair.alloc(&data(batch * n_in, 5, 1.0)), batch, n_in);
        let ybuf = pair.alloc(&vec![0.0; batch * n_out]);
        let y = Mat::dense(ybuf, batch, n_out);
        let d = Dropout {
            p: 0.3,
            stream: rng::stream::DROPOUT + 17,
        };
        pair.both(|b| b.linear_forward(x, params, slot, Activation::Identity, Some(d), y));
        let (g, _) = pair.read(ybuf);
        let threshold = rng::dropout_threshold(d.p);
        let mut kept = 0;
        for (i, v) in g.iter().enumerate() {
            let keep = rng::dropout_keep(1234, d.stream, 5, i as u32, threshold);
            kept += keep as usize;
            // With the identity activation a kept value is nonzero (almost surely).
            assert_eq!(
                *v != 0.0,
                keep,
                "[{}] dropout mask differs at {i}",
                pair.api
            );
        }
        println!(
            "[{}] dropout mask: {kept} of {} kept, identical to the CPU's",
            pair.api,
            g.len()
        );
    });
}

#[test]
fn linear_backward_input_matches_cpu() {
    on_every_api(|pair| {
        for (s, &(batch, n_in, n_out)) in SHAPES.iter().enumerate() {
            for (a, &act) in ACTIVATIONS.iter().enumerate() {
                let case = s * ACTIVATIONS.len() + a;
                let dropout = dropout_for(case);
                let (slot, plen) = layer(n_in, n_out);
                let params = pair.alloc(&data(plen, 6, 1.0));
                // y must be a plausible output of the activation for act'(y).
                let yvals: Vec<f32> = data(batch * n_out, 7, 2.0)
                    .iter()
                    .map(|&z| act.apply(z))
                    .collect();
                let y = Mat::dense(pair.alloc(&yvals), batch, n_out);
                // dy: rows of a wider buffer, at an offset.
                let dybuf = pair.alloc(&data(batch * (n_out + 4) + 6, 8, 1.0));
                let dy = Mat {
                    tensor: dybuf,
                    offset: 6,
                    rows: batch as u32,
                    cols: n_out as u32,
                    stride: (n_out + 4) as u32,
                };
                // dx: the leading input columns (all of them in even cases).
                let dx_cols = if case.is_multiple_of(2) {
                    n_in
                } else {
                    n_in.div_ceil(2)
                };
                let dxbuf = pair.alloc(&data(batch * (n_in + 2), 9, 1.0));
                let dx = Mat::dense(dxbuf, batch, n_in + 2).cols(1, dx_cols);
                pair.both(|b| b.linear_backward_input(dy, y, act, dropout, params, slot, dx));
                let name = format!(
                    "linear_backward_input B={batch} in={n_in} out={n_out} dx.cols={dx_cols} {act:?} dropout={}",
                    dropout.is_some()
                );
                pair.check(&name, dxbuf, sum_atol(n_out) * 1.5, RTOL);
            }
        }
    });
}

#[test]
fn linear_backward_params_matches_cpu() {
    on_every_api(|pair| {
        for (s, &(batch, n_in, n_out)) in SHAPES.iter().enumerate() {
            for (a, &act) in ACTIVATIONS.iter().enumerate() {
                let case = s * ACTIVATIONS.len() + a;
                let dropout = dropout_for(case);
                let (slot, plen) = layer(n_in, n_out);
                // Gradients outside the layer must survive.
                let grads = pair.alloc(&data(plen, 10, 1.0));
                let yvals: Vec<f32> = data(batch * n_out, 11, 2.0)
                    .iter()
                    .map(|&z| act.apply(z))
                    .collect();
                let y = Mat::dense(pair.alloc(&yvals), batch, n_out);
                let dy = Mat::dense(pair.alloc(&data(batch * n_out, 12, 1.0)), batch, n_out);
                let xbuf = pair.alloc(&data(batch * (n_in + 3), 13, 1.0));
                let x = Mat::dense(xbuf, batch, n_in + 3).cols(2, n_in);
                pair.both(|b| b.linear_backward_params(dy, y, act, dropout, x, grads, slot));
                let name = format!(
                    "linear_backward_params B={batch} in={n_in} out={n_out} {act:?} dropout={}",
                    dropout.is_some()
                );
                pair.check(&name, grads, sum_atol(batch) * 1.5, RTOL);
            }
        }
    });
}

#[test]
fn critic_loss_matches_cpu() {
    use gan_gpu::model::critic_loss::{CriticLossParams, ScoreTerm};
    on_every_api(|pair| {
        let terms = [
            (
                ScoreTerm::Square { target: 1.0 },
                ScoreTerm::Square { target: 0.0 },
            ),
            (ScoreTerm::HingeReal, ScoreTerm::HingeFake),
            (
                ScoreTerm::Linear { sign: -1.0 },
                ScoreTerm::Linear { sign: 1.0 },
            ),
            (
                ScoreTerm::Square { target: 0.9 },
                ScoreTerm::Linear { sign: -1.0 },
            ),
        ];
        let sizes: [(usize, u32); 4] = [(1, 1), (7, 3), (257, 128), (300, 0)];
        for (i, (&(first, second), &(n, split))) in terms.iter().zip(&sizes).enumerate() {
            // Raw outputs in [-3, 3]: both sides of each hinge's kink.
            let l = data(n * 3, 30 + i as u32, 3.0);
            let lbuf = pair.alloc(&l);
            let logits = Mat::dense(lbuf, n, 3).cols(1, 1);
            let dbuf = pair.alloc(&data(n * 2, 40, 1.0));
            let dlogits = Mat::dense(dbuf, n, 2).cols(0, 1);
            let stats = pair.alloc(&[0.5, 1.5, 2.5, 3.5]);
            let slots = LossSlots {
                loss: stat::D_LOSS,
                prob_first: Some(stat::D_REAL),
                prob_second: Some(stat::D_FAKE),
            };
            let p = CriticLossParams {
                split,
                first,
                second,
                weight: 1.0 / n as f32,
            };
            pair.both(|b| b.critic_loss(&p, logits, dlogits, stats, slots));
            let name = format!("critic_loss N={n} split={split} {first:?} / {second:?}");
            // dlogits: one subtraction or select and one multiply per row.
            pair.check(&format!("{name} dlogits"), dbuf, 1e-7, RTOL);
            // Sums of N terms of at most 8 / N in another order.
            pair.check(
                &format!("{name} stats"),
                stats,
                8.0 * n as f32 * f32::EPSILON,
                RTOL,
            );
        }
    });
}

#[test]
fn bce_with_logits_matches_cpu() {
    on_every_api(|pair| {
        let cases: [(usize, u32, f32, f32, f32); 6] = [
            (1, 1, 1.0, 0.0, 1.0),
            (1, 0, 0.9, 0.0, 1.0),
            (7, 3, 0.9, 0.0, 0.5),
            (100, 100, 1.0, 0.0, 1.0),
            (257, 128, 0.9, 0.0, 0.5),
            (257, 0, 1.0, 1.0, 2.0),
        ];
        for (i, &(n, split, t1, t2, weight)) in cases.iter().enumerate() {
            // Logits in [-8, 8], with a few far out where exp over/underflows.
            let mut l = data(n * 3, 14 + i as u32, 8.0);
            for (j, v) in l.iter_mut().enumerate() {
                if j % 11 == 0 {
                    *v *= 12.0;
                }
            }
            // logits: column 1 of [n, 3]; dlogits: column 0 of [n, 2].
            let lbuf = pair.alloc(&l);
            let logits = Mat::dense(lbuf, n, 3).cols(1, 1);
            let dbuf = pair.alloc(&data(n * 2, 20, 1.0));
            let dlogits = Mat::dense(dbuf, n, 2).cols(0, 1);
            let stats = pair.alloc(&[0.5, 1.5, 2.5, 3.5]);
            let slots = if i % 2 == 0 {
                LossSlots {
                    loss: stat::D_LOSS,
                    prob_first: Some(stat::D_REAL),
                    prob_second: Some(stat::D_FAKE),
                }
            } else {
                LossSlots {
                    loss: stat::G_LOSS,
                    prob_first: None,
                    prob_second: Some(stat::D_FAKE),
                }
            };
            pair.both(|b| b.bce_with_logits(logits, dlogits, split, t1, t2, weight, stats, slots));
            let name =
                format!("bce_with_logits N={n} split={split} targets=({t1}, {t2}) weight={weight}");
            // dlogits: one sigmoid and one multiply per row.
            pair.check(&format!("{name} dlogits"), dbuf, 1e-6, RTOL);
            // The loss is a sum of N terms up to ~100 * weight, in a different
            // order (tree vs sequential): eps * N * max term.
            pair.check(
                &format!("{name} stats"),
                stats,
                n as f32 * 100.0 * weight * f32::EPSILON,
                RTOL,
            );
        }
    });
}

#[test]
fn softmax_cross_entropy_matches_cpu() {
    on_every_api(|pair| {
        // (rows, classes): 1, 7, 100 and 257 rows (more than the 256 threads).
        let cases: [(usize, usize); 5] = [(1, 1), (1, 10), (7, 3), (100, 10), (257, 10)];
        for (i, &(n, c)) in cases.iter().enumerate() {
            // Logits in [-8, 8] with some far out, as columns 1..=c of [n, c + 2].
            let mut l = data(n * (c + 2), 40 + i as u32, 8.0);
            for (j, v) in l.iter_mut().enumerate() {
                if j % 13 == 0 {
                    *v *= 10.0;
                }
            }
            let lbuf = pair.alloc(&l);
            let logits = Mat::dense(lbuf, n, c + 2).cols(1, c);
            let mut t = vec![0.0f32; n * c];
            for r in 0..n {
                t[r * c + rng::random_u32(3, 9, i as u32, r as u32) as usize % c] = 1.0;
            }
            let tbuf = pair.alloc(&t);
            let targets = Mat::dense(tbuf, n, c);
            // dlogits: a strided view after 3 other values.
            let dbuf = pair.alloc(&data(3 + n * (c + 1), 50, 1.0));
            let dlogits = Mat {
                tensor: dbuf,
                offset: 3,
                rows: n as u32,
                cols: c as u32,
                stride: c as u32 + 1,
            };
            let stats = pair.alloc(&[0.5, 1.5, 2.5, 3.5]);
            let slots = CeSlots {
                loss: 1,
                correct: if i % 2 == 0 { Some(3) } else { None },
            };
            let weight = 1.0 / n as f32;
            pair.both(|b| b.softmax_cross_entropy(logits, targets, dlogits, weight, stats, slots));
            let name = format!("softmax_cross_entropy N={n} C={c}");
            // dlogits: an exp, a sum of C terms and a division per element.
            pair.check(&format!("{name} dlogits"), dbuf, 1e-6, RTOL);
            // The loss: a sum of N * C terms up to ~160 * weight in a different
            // order; the count of correct rows is an exact small integer.
            pair.check(
                &format!("{name} stats"),
                stats,
                (n * c) as f32 * 160.0 * weight * f32::EPSILON,
                RTOL,
            );
        }
    });
}

#[test]
fn ema_update_matches_cpu_and_the_formula() {
    on_every_api(|pair| {
        for &len in &[1usize, 7, 257, 1000] {
            let start = data(len, 60, 0.5);
            let avg = pair.alloc(&start);
            let values = pair.alloc(&vec![0.0; len]);
            let mut expected: Vec<f64> = start.iter().map(|&v| f64::from(v)).collect();
            for step in 0..5u32 {
                let v = data(len, 61 + step, 1.0);
                pair.cpu.write(values, &v).unwrap();
                pair.gpu.write(values, &v).unwrap();
                pair.both(|b| b.ema_update(avg, values, 0.9));
                for (e, &x) in expected.iter_mut().zip(&v) {
                    *e = 0.9 * *e + 0.1 * f64::from(x);
                }
            }
            // Two products and a sum a step, |values| <= 1: a fused
            // multiply-add on the GPU differs by an ulp or so per step.
            pair.check(&format!("ema len={len}"), avg, 1e-7, RTOL);
            // And the CPU is the formula: 5 steps of f32 rounding (~2 ulp of
            // values below 1 each, 6e-8 an ulp) against the f64 recurrence.
            let cpu = pair.cpu.read(avg).unwrap();
            for (i, (&c, &e)) in cpu.iter().zip(&expected).enumerate() {
                assert!(
                    (f64::from(c) - e).abs() <= 1e-6,
                    "ema len={len} [{i}]: {c} against {e}"
                );
            }
        }
    });
}

#[test]
fn rmsprop_and_clipping_match_cpu_over_steps() {
    on_every_api(|pair| {
        for &len in &[1usize, 7, 257, 1000] {
            let settings = gan_gpu::model::RmsPropSettings {
                lr: 5e-3,
                alpha: 0.99,
                eps: 1e-8,
            };
            let params = pair.alloc(&data(len, 50, 0.05));
            let grads = pair.alloc(&vec![0.0; len]);
            let sq = pair.alloc(&vec![0.0; len]);
            for step in 0..4u32 {
                let g = data(len, 51 + step, 0.1 + step as f32);
                pair.cpu.write(grads, &g).unwrap();
                pair.gpu.write(grads, &g).unwrap();
                pair.both(|b| {
                    b.rmsprop_update(params, grads, sq, settings);
                    // WGAN's clip: some values move past 0.05 and are held there.
                    b.clamp_values(params, 0.05);
                });
            }
            // Elementwise, same order: the GPU's division and square root
            // (a few ulp) differ; the first step moves by lr / sqrt(0.01) =
            // 10 lr, so parameters move by ~0.05 per step.
            pair.check(&format!("rmsprop len={len} params"), params, 1e-7, RTOL);
            pair.check(&format!("rmsprop len={len} square_avg"), sq, 1e-7, RTOL);
            let clipped = pair.cpu.read(params).unwrap();
            assert!(
                clipped.iter().all(|v| v.abs() <= 0.05),
                "clamped to the limit"
            );
            assert!(
                len < 7 || clipped.iter().any(|v| v.abs() == 0.05),
                "some at the limit"
            );
        }
    });
}

#[test]
fn adam_update_matches_cpu_over_steps() {
    on_every_api(|pair| {
        for &len in &[1usize, 7, 257, 1000] {
            let adam = AdamSettings {
                lr: 1e-3,
                beta1: 0.5,
                beta2: 0.999,
                eps: 1e-8,
            };
            let params = pair.alloc(&data(len, 30, 1.0));
            let grads = pair.alloc(&vec![0.0; len]);
            let m = pair.alloc(&vec![0.0; len]);
            let v = pair.alloc(&vec![0.0; len]);
            pair.set_clock(Clock {
                seed: 9,
                step: 0,
                cursor: 0,
            });
            for step in 0..4u32 {
                let g = data(len, 31 + step, 0.1 + step as f32);
                pair.cpu.write(grads, &g).unwrap();
                pair.gpu.write(grads, &g).unwrap();
                pair.both(|b| {
                    b.adam_update(params, grads, m, v, adam);
                    b.end_step();
                });
            }
            // Elementwise, same operation order: only the GPU's division and
            // square root (a few ulp) differ. Parameters of size ~1 move by
            // ~lr per step.
            pair.check(
                &format!("adam len={len} params after 4 steps"),
                params,
                1e-6,
                RTOL,
            );
            pair.check(&format!("adam len={len} m"), m, 1e-7, RTOL);
            pair.check(&format!("adam len={len} v"), v, 1e-7, RTOL);
            let clock = pair.gpu.clock().unwrap();
            assert_eq!(clock, pair.cpu.clock().unwrap(), "clock after end_step");
        }
    });
}

#[test]
fn normal_noise_matches_cpu() {
    on_every_api(|pair| {
        for &(rows, cols) in &[(1usize, 1usize), (7, 100), (100, 7), (257, 3)] {
            let buf = pair.alloc(&data(rows * (cols + 2), 40, 1.0));
            let out = Mat::dense(buf, rows, cols + 2).cols(1, cols);
            pair.both(|b| b.normal_noise(out, rng::stream::NOISE_D));
            // Box-Muller through log, sqrt and cos: the GPU's versions are
            // within a few ulp on llvmpipe (WGSL allows more for cos); values
            // are at most ~5.6 in magnitude.
            pair.check(&format!("normal_noise {rows}x{cols}"), buf, 1e-5, RTOL);
        }
    });
}

#[test]
fn random_onehot_matches_cpu_exactly() {
    on_every_api(|pair| {
        for &(rows, classes) in &[(1usize, 1usize), (7, 10), (100, 10), (257, 3)] {
            let a = pair.alloc(&data(rows * (classes + 3), 41, 1.0));
            let out = Mat::dense(a, rows, classes + 3).cols(2, classes);
            let b = pair.alloc(&data(rows * (classes + 1), 42, 1.0));
            let also = Mat::dense(b, rows, classes + 1).cols(1, classes);
            pair.both(|be| be.random_onehot(out, Some(also), rng::stream::LABELS_D));
            pair.check_exact(&format!("random_onehot {rows}x{classes} out"), a);
            pair.check_exact(&format!("random_onehot {rows}x{classes} also"), b);
            pair.both(|be| be.random_onehot(out, None, rng::stream::LABELS_G));
            pair.check_exact(&format!("random_onehot {rows}x{classes} alone"), a);
        }
    });
}

#[test]
fn gather_batch_matches_cpu() {
    on_every_api(|pair| {
        // 37 images of 13 pixels (not a multiple of 4: packed words straddle images).
        let (count, pixels, classes, batch) = (37usize, 13usize, 10usize, 7usize);
        let images: Vec<u8> = (0..count * pixels)
            .map(|i| (rng::random_u32(5, 50, 0, i as u32) % 256) as u8)
            .collect();
        let labels: Vec<u8> = (0..count)
            .map(|i| (rng::random_u32(5, 51, 0, i as u32) % classes as u32) as u8)
            .collect();
        let order = rng::epoch_order(5, 0, count);
        for b in [&mut pair.cpu as &mut dyn Backend, &mut pair.gpu] {
            b.upload_dataset(&images, &labels, pixels).unwrap();
            b.set_epoch_order(&order).unwrap();
        }
        for cursor in [0u32, 2, 4] {
            pair.set_clock(Clock {
                seed: 3,
                step: 11,
                cursor,
            });
            // [x ; one-hot ; pad] in one buffer: both views written by one dispatch.
            let width = pixels + classes + 1;
            let buf = pair.alloc(&data(batch * width, 52, 1.0));
            let x = Mat::dense(buf, batch, width).cols(0, pixels);
            let h = Mat::dense(buf, batch, width).cols(pixels, classes);
            pair.both(|b| b.gather_batch(x, Some(h), 1.0, 0.0));
            pair.check_exact(
                &format!("gather_batch cursor={cursor} raw pixels + one-hot"),
                buf,
            );
            // Scaled to [-1, 1]: one multiply and one add (maybe fused on the GPU).
            pair.both(|b| b.gather_batch(x, None, 1.0 / 127.5, -1.0));
            pair.check(
                &format!("gather_batch cursor={cursor} scaled"),
                buf,
                1e-7,
                RTOL,
            );
        }
        // end_step advances the cursor on the GPU itself.
        pair.set_clock(Clock {
            seed: 3,
            step: 11,
            cursor: 0,
        });
        pair.both(|b| {
            b.end_step();
            b.end_step();
        });
        let buf = pair.alloc(&vec![0.0; batch * pixels]);
        pair.both(|b| b.gather_batch(Mat::dense(buf, batch, pixels), None, 1.0, 0.0));
        pair.check_exact("gather_batch after two end_steps", buf);
        assert_eq!(
            pair.gpu.clock().unwrap(),
            Clock {
                seed: 3,
                step: 13,
                cursor: 2
            }
        );
    });
}

/// One op of each kind: one dispatch each, and a repeated step creates no
/// new bind group (or buffer).
#[test]
fn a_repeated_step_creates_nothing_and_counts_dispatches() {
    let _serial = common::gpu_test_lock();
    for (api, mut gpu) in common::gpu_backends() {
        let (slot, plen) = layer(20, 30);
        let params = gpu.alloc(plen).unwrap();
        let grads = gpu.alloc(plen).unwrap();
        let m = gpu.alloc(plen).unwrap();
        let v = gpu.alloc(plen).unwrap();
        let x = Mat::dense(gpu.alloc(8 * 20).unwrap(), 8, 20);
        let y = Mat::dense(gpu.alloc(8 * 30).unwrap(), 8, 30);
        let dx = Mat::dense(gpu.alloc(8 * 20).unwrap(), 8, 20);
        let logits = Mat::dense(gpu.alloc(8).unwrap(), 8, 1);
        let stats = gpu.alloc(stat::COUNT).unwrap();
        let adam = AdamSettings {
            lr: 1e-3,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        };
        let d = Some(Dropout { p: 0.3, stream: 64 });
        let step = |g: &mut GpuBackend| -> Vec<u64> {
            let mut counts = Vec::new();
            let mut last = g.dispatches();
            let mut mark = |g: &GpuBackend, counts: &mut Vec<u64>| {
                counts.push(g.dispatches() - last);
                last = g.dispatches();
            };
            g.normal_noise(x, 1);
            mark(g, &mut counts);
            g.linear_forward(x, params, slot, Activation::LeakyRelu(0.2), d, y);
            mark(g, &mut counts);
            g.bce_with_logits(
                logits,
                logits,
                4,
                0.9,
                0.0,
                1.0,
                stats,
                LossSlots {
                    loss: 0,
                    prob_first: Some(2),
                    prob_second: Some(3),
                },
            );
            mark(g, &mut counts);
            g.linear_backward_input(y, y, Activation::LeakyRelu(0.2), d, params, slot, dx);
            mark(g, &mut counts);
            g.linear_backward_params(y, y, Activation::LeakyRelu(0.2), d, x, grads, slot);
            mark(g, &mut counts);
            g.adam_update(params, grads, m, v, adam);
            mark(g, &mut counts);
            g.end_step();
            mark(g, &mut counts);
            counts
        };
        let first = step(&mut gpu);
        gpu.flush().unwrap();
        let created = gpu.bind_groups_created();
        let (dispatches, submits) = (gpu.dispatches(), gpu.submits());
        let second = step(&mut gpu);
        gpu.flush().unwrap();
        println!(
            "[{api}] dispatches per op (noise, forward, bce, backward_input, backward_params, adam, end_step): {second:?}; \
             per step {}, submits per flushed step {}; bind groups: {created} after step 1, {} after step 2; {} pipelines",
            gpu.dispatches() - dispatches,
            gpu.submits() - submits,
            gpu.bind_groups_created(),
            gpu.pipelines()
        );
        assert_eq!(first, vec![1; 7]);
        assert_eq!(second, vec![1; 7]);
        assert_eq!(
            gpu.bind_groups_created(),
            created,
            "step 2 created bind groups"
        );
        assert_eq!(gpu.submits() - submits, 1);
        // Recorded steps are submitted every `steps_per_submit` end_steps.
        gpu.set_steps_per_submit(3);
        let before = gpu.submits();
        for _ in 0..7 {
            step(&mut gpu);
        }
        assert_eq!(gpu.submits() - before, 2, "[{api}] automatic submits");
        gpu.flush().unwrap();
        assert_eq!(gpu.clock().unwrap().step, 9);
    }
}

/// Misuse does not panic: the op records nothing and the next flush says why.
#[test]
fn misuse_is_an_error_not_a_panic() {
    let _serial = common::gpu_test_lock();
    for (api, mut gpu) in common::gpu_backends() {
        let t = gpu.alloc(10).unwrap();
        gpu.normal_noise(Mat::dense(t, 3, 4), 1);
        let e = gpu.flush().unwrap_err().to_string();
        assert!(
            e.contains("normal_noise") && e.contains("does not fit"),
            "[{api}] {e}"
        );
        gpu.gather_batch(Mat::dense(t, 1, 10), None, 1.0, 0.0);
        let e = gpu.flush().unwrap_err().to_string();
        assert!(e.contains("upload_dataset"), "[{api}] {e}");
        assert!(gpu.write(t, &[1.0; 3]).is_err());
        assert!(gpu.upload_dataset(&[1, 2, 3], &[0], 2).is_err());
        // And the backend still works afterwards.
        gpu.normal_noise(Mat::dense(t, 2, 5), 1);
        gpu.flush().unwrap();
        assert_eq!(gpu.read(t).unwrap().len(), 10);
        println!("[{api}] misuse reported as errors");
    }
}

#[test]
fn a_missing_api_names_the_available_adapters() {
    if cfg!(any(target_os = "macos", target_os = "ios")) {
        return;
    }
    let Err(e) = GpuBackend::with_api(GpuApi::Metal) else {
        panic!("a Metal adapter outside Apple platforms");
    };
    let e = e.to_string();
    println!("{e}");
    assert!(e.contains("no Metal adapter found (available:"), "{e}");
}

/// A view of `rows x cols` at column `col` of every row of a wider tensor
/// (stride `cols + 3`), for the ops that take views.
fn strided(pair: &mut Pair, rows: usize, cols: usize, col: usize, key: u32, scale: f32) -> Mat {
    let stride = cols + 3;
    let t = pair.alloc(&data(rows * stride + 2, key, scale));
    Mat {
        tensor: t,
        offset: (2 + col) as u32,
        rows: rows as u32,
        cols: cols as u32,
        stride: stride as u32,
    }
}

#[test]
fn add_scaled_matches_cpu_and_the_formula() {
    on_every_api(|pair| {
        for &len in &[1usize, 7, 257, 1000] {
            let start = data(len, 70, 1.0);
            let addend = data(len, 71, 1.0);
            let dst = pair.alloc(&start);
            let src = pair.alloc(&addend);
            pair.both(|b| b.add_scaled(dst, src, -0.75));
            // One product and a sum: a fused multiply-add differs by an ulp.
            pair.check(&format!("add_scaled len={len}"), dst, 1e-7, RTOL);
            let cpu = pair.cpu.read(dst).unwrap();
            for (i, ((&c, &s), &a)) in cpu.iter().zip(&start).zip(&addend).enumerate() {
                let expected = f64::from(s) - 0.75 * f64::from(a);
                assert!(
                    (f64::from(c) - expected).abs() <= 2.5e-7,
                    "[{i}] {c} {expected}"
                );
            }
        }
    });
}

#[test]
fn interpolate_rows_matches_cpu_and_draws_one_share_a_row() {
    on_every_api(|pair| {
        for &(rows, cols) in &[(1usize, 1usize), (7, 5), (100, 257)] {
            let real = strided(pair, rows, cols, 1, 72, 1.0);
            let fake = strided(pair, rows, cols, 0, 73, 1.0);
            let out = strided(pair, rows, cols, 2, 74, 1.0);
            pair.both(|b| b.interpolate_rows(real, fake, 8192 + 3, out));
            let name = format!("interpolate {rows}x{cols}");
            // Two products and a sum of values in [-1, 1].
            pair.check(&name, out.tensor, 2e-7, RTOL);
            let o = pair.cpu.read(out.tensor).unwrap();
            let (r, f) = (
                pair.cpu.read(real.tensor).unwrap(),
                pair.cpu.read(fake.tensor).unwrap(),
            );
            for row in 0..rows {
                let e = f64::from(rng::uniform01(1234, 8192 + 3, 5, row as u32));
                for c in 0..cols {
                    let expected = e * f64::from(r[real.at(row, c)])
                        + (1.0 - e) * f64::from(f[fake.at(row, c)]);
                    let got = f64::from(o[out.at(row, c)]);
                    assert!(
                        (got - expected).abs() <= 3e-7,
                        "{name} ({row}, {c}): {got} {expected}"
                    );
                }
            }
            // The columns beside the view are left alone.
            assert_eq!(o[0..2], data(rows * (cols + 3) + 2, 74, 1.0)[0..2]);
        }
    });
}

#[test]
fn gradient_penalty_matches_cpu_and_the_formula() {
    on_every_api(|pair| {
        for &(rows, cols) in &[(1usize, 1usize), (7, 5), (33, 257), (4, 784)] {
            // Scaled so that the norms lie on both sides of 1.
            let scale = 2.0 / (cols as f32).sqrt();
            let grad = strided(pair, rows, cols, 1, 75, scale);
            if rows > 1 {
                // A zero row: its gradient is 0, its penalty 1.
                let zeros = vec![0.0; cols];
                for b in [&mut pair.cpu as &mut dyn Backend, &mut pair.gpu] {
                    let mut all = b.read(grad.tensor).unwrap();
                    all[grad.at(1, 0)..][..cols].copy_from_slice(&zeros);
                    b.write(grad.tensor, &all).unwrap();
                }
            }
            let v = strided(pair, rows, cols, 0, 76, 1.0);
            let stats = pair.alloc(&[0.5, 0.25, 0.125, 2.0]);
            let weight = 10.0 / rows as f32;
            pair.both(|b| b.gradient_penalty(grad, weight, v, stats, 2));
            let name = format!("gradient_penalty {rows}x{cols}");
            // A sum of `cols` squares in the same lane order (an FMA apart),
            // a sqrt within 3 ulp, then products: a few ulp of values near
            // 2 weight |g| <= 20 / sqrt(cols) per element; the penalty is
            // rows terms of size ~weight.
            pair.check(&format!("{name} v"), v.tensor, 2e-6, RTOL);
            pair.check(&format!("{name} stats"), stats, 1e-6, RTOL);
            // The CPU is the formula, in f64.
            let g = pair.cpu.read(grad.tensor).unwrap();
            let vd = pair.cpu.read(v.tensor).unwrap();
            let mut penalty = 0.0f64;
            for r in 0..rows {
                let norm = (0..cols)
                    .map(|c| f64::from(g[grad.at(r, c)]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                penalty += f64::from(weight) * (norm - 1.0).powi(2);
                for c in 0..cols {
                    let expected = if norm > 0.0 {
                        2.0 * f64::from(weight) * (norm - 1.0) / norm * f64::from(g[grad.at(r, c)])
                    } else {
                        0.0
                    };
                    let got = f64::from(vd[v.at(r, c)]);
                    assert!(
                        (got - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                        "{name} v ({r}, {c}): {got} {expected}"
                    );
                }
            }
            let s = pair.cpu.read(stats).unwrap();
            assert_eq!(&s[..2], &[0.5, 0.25]);
            assert!(
                (f64::from(s[2]) - 0.125 - penalty).abs() <= 1e-5 * (1.0 + penalty),
                "{name}: {} {penalty}",
                s[2]
            );
        }
    });
}

#[test]
fn activation_curvature_matches_cpu_and_the_second_derivative() {
    // act''(z) in f64 from z.
    fn second(act: Activation, z: f64) -> f64 {
        match act {
            Activation::Sigmoid => {
                let s = 1.0 / (1.0 + (-z).exp());
                s * (1.0 - s) * (1.0 - 2.0 * s)
            }
            Activation::Tanh => {
                let t = z.tanh();
                -2.0 * t * (1.0 - t * t)
            }
            _ => 0.0,
        }
    }
    on_every_api(|pair| {
        for &(rows, cols) in &[(1usize, 1usize), (7, 33), (100, 257)] {
            for act in ACTIVATIONS {
                for p in [None, Some(0.3f32)] {
                    let dropout = p.map(|p| Dropout { p, stream: 64 + 5 });
                    let z = strided(pair, rows, cols, 1, 77, 3.0);
                    let y = strided(pair, rows, cols, 0, 78, 1.0);
                    let u = strided(pair, rows, cols, 2, 79, 1.0);
                    let t = strided(pair, rows, cols, 1, 80, 1.0);
                    let out = strided(pair, rows, cols, 0, 81, 1.0);
                    pair.both(|b| {
                        b.activation_forward(z, act, dropout, y);
                        b.activation_curvature(u, t, y, act, dropout, out);
                    });
                    let name = format!("curvature {rows}x{cols} {act:?} p={p:?}");
                    // y differs by the GPU's few ulp of exp or tanh (up to
                    // about 5e-7 near |y| = 1); act'' moves with y by at most
                    // |d act''/dy| <= 4 (tanh's -2 + 6 y^2), times |u t| <= 1
                    // and 1 / (1 - p) = 1.43: at most about 3e-6.
                    pair.check(&name, out.tensor, 3e-6, RTOL);
                    let (zd, ud, td, od) = (
                        pair.cpu.read(z.tensor).unwrap(),
                        pair.cpu.read(u.tensor).unwrap(),
                        pair.cpu.read(t.tensor).unwrap(),
                        pair.cpu.read(out.tensor).unwrap(),
                    );
                    let yd = pair.cpu.read(y.tensor).unwrap();
                    for r in 0..rows {
                        for c in 0..cols {
                            let kept = yd[y.at(r, c)] != 0.0 || p.is_none();
                            let scale = match p {
                                Some(p) if kept => 1.0 / (1.0 - f64::from(p)),
                                Some(_) => 0.0,
                                None => 1.0,
                            };
                            let expected = f64::from(ud[u.at(r, c)])
                                * f64::from(td[t.at(r, c)])
                                * second(act, f64::from(zd[z.at(r, c)]))
                                * scale;
                            let got = f64::from(od[out.at(r, c)]);
                            assert!(
                                (got - expected).abs() <= 1e-5,
                                "{name} ({r}, {c}): {got} {expected}"
                            );
                        }
                    }
                }
            }
        }
    });
}
