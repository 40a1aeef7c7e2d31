//! `pytorch/examples`' 64x64 DCGAN (`model::dcgan64_generator` and
//! `dcgan64_discriminator`) at narrow widths (ngf = ndf = 4) on 3-channel
//! images, one training pass on Vulkan and GL against the CPU reference: the
//! generator's images from noise, the discriminator on [real; generated] as
//! two batches to its batch norms, the backward of both (D's parameter and
//! input gradients, then G's parameter gradients from D's gradient on the
//! generated half), and every running statistic.
//!
//! Tolerance: every compared value is a sum of at most 4,096 products (the
//! widest reduction: a weight gradient over 4 images of 32x32 positions),
//! which f32 rounds differently in another order by at most about
//! 4096 * 6e-8 = 2.5e-4 of the terms' magnitude; we take 2.5e-4 of the
//! tensor's largest magnitude, plus 1e-6. A wrong index or a missed term
//! moves values by O(1) of that scale.

mod common;

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::{Backend, Tensor};
use gan_gpu::model::{
    dcgan64_discriminator, dcgan64_discriminator_channels, dcgan64_generator,
    dcgan64_generator_channels, Shape,
};
use gan_gpu::nn::{LayerNetwork, Pass};
use gan_gpu::rng;

const BATCH: usize = 2;
const NOISE: usize = 100;
const IMAGE: usize = 3 * 64 * 64;

/// Everything one pass leaves, by name.
fn step<B: Backend>(backend: &mut B) -> Vec<(&'static str, Vec<f32>)> {
    let g_stack = dcgan64_generator(NOISE, dcgan64_generator_channels(4), 3);
    let d_stack = dcgan64_discriminator(3, dcgan64_discriminator_channels(4));
    assert_eq!(g_stack.output().unwrap(), Shape::image(3, 64, 64));
    let g = LayerNetwork::new(backend, &g_stack, BATCH, 3, 0).unwrap();
    let d = LayerNetwork::new(backend, &d_stack, 2 * BATCH, 3, 1).unwrap();
    let tensor = |backend: &mut B, values: &[f32]| -> Tensor {
        let t = backend.alloc(values.len()).unwrap();
        backend.write(t, values).unwrap();
        t
    };
    let values = |n: usize, stream: u32| -> Vec<f32> {
        (0..n as u32)
            .map(|i| rng::normal(5, stream, 0, i))
            .collect()
    };
    let z = tensor(backend, &values(BATCH * NOISE, 1));
    let fake = backend.alloc(BATCH * IMAGE).unwrap();
    g.forward(backend, BATCH, z, Pass::train(None), fake);
    // [real; fake]: real pixels in [-1, 1], then G's images.
    let mut both: Vec<f32> = values(BATCH * IMAGE, 2).iter().map(|v| v.tanh()).collect();
    let fake_values = backend.read(fake).unwrap();
    both.extend_from_slice(&fake_values);
    let d_input = tensor(backend, &both);
    let logits = backend.alloc(2 * BATCH).unwrap();
    let two = Pass::Train {
        dropout: None,
        batches: 2,
    };
    d.forward(backend, 2 * BATCH, d_input, two, logits);
    let d_logits = tensor(backend, &values(2 * BATCH, 3));
    let d_grad_input = backend.alloc(2 * BATCH * IMAGE).unwrap();
    d.backward(
        backend,
        2 * BATCH,
        d_input,
        two,
        logits,
        d_logits,
        true,
        Some(d_grad_input),
    );
    // G learns from D's gradient on its (second) half.
    let all = backend.read(d_grad_input).unwrap();
    let fake_grad = tensor(backend, &all[BATCH * IMAGE..]);
    g.backward(
        backend,
        BATCH,
        z,
        Pass::train(None),
        fake,
        fake_grad,
        true,
        None,
    );
    vec![
        ("generated images", fake_values),
        ("logits", backend.read(logits).unwrap()),
        ("D input gradient", all),
        ("D parameter gradients", d.gradients(backend).unwrap()),
        ("G parameter gradients", g.gradients(backend).unwrap()),
        ("D running statistics", d.state(backend).unwrap().buffers),
        ("G running statistics", g.state(backend).unwrap().buffers),
    ]
}

#[test]
fn a_narrow_dcgan64_pass_on_the_gpu_matches_the_cpu() {
    let _lock = common::gpu_test_lock();
    let cpu = step(&mut CpuBackend::new());
    for (api, mut gpu) in common::gpu_backends() {
        let got = step(&mut gpu);
        for ((name, a), (_, b)) in got.iter().zip(&cpu) {
            assert_eq!(a.len(), b.len(), "{api:?} {name}: lengths");
            let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            eprintln!("{api:?} {name}: worst difference {worst:e} of scale {scale:e}");
            assert!(scale > 0.0, "{name}: all zero");
            assert!(
                worst <= 2.5e-4 * scale + 1e-6,
                "{api:?} {name}: {worst} of {scale}"
            );
        }
    }
}
