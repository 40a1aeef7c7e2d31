//! Every matmul variant (`shaders/linear.wgsl`, `shaders/linear_blocked.wgsl`)
//! against the CPU reference, each forced on the adapter under test: the
//! automatic choice runs only some of them per adapter (direct on CPU
//! adapters such as lavapipe; tiled and, for large products, blocked on
//! GPUs), and the others must not go untested. Awkward shapes (none a
//! multiple of any tile; one spanning 2 x 2 tiles of 128), strided views,
//! dropout; the tolerance is `tests/gpu_ops.rs`'s.

mod common;

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::gpu::{GpuApi, GpuBackend, GpuOptions, MatmulKernel, MatmulVariant};
use gan_gpu::backend::{Backend, Clock, Dropout, Mat, Tensor};
use gan_gpu::model::{Activation, LayerSlot};
use gan_gpu::rng;

const RTOL: f32 = 1e-5;

fn sum_atol(k: usize) -> f32 {
    2e-6 * k.max(1) as f32
}

fn data(len: usize, key: u32, scale: f32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| (rng::uniform01(78, 2000 + key, len as u32, i) * 2.0 - 1.0) * scale)
        .collect()
}

/// The adapter under test with `variant` forced, or None (skipped) without one.
fn gpu(variant: MatmulVariant) -> Option<GpuBackend> {
    let api = std::env::var("GAN_GPU_TEST_API")
        .ok()
        .and_then(|l| l.split(',').next().map(str::to_string))
        .map_or(GpuApi::Vulkan, |a| GpuApi::parse(&a).unwrap());
    let options = GpuOptions {
        matmul: Some(variant),
        ..GpuOptions::with_api(api)
    };
    match GpuBackend::new(&options) {
        Ok(g) => Some(g),
        Err(e) if !common::in_ci() => {
            eprintln!("skipped: no GPU adapter ({e})");
            None
        }
        Err(e) => panic!("{e} (CI=true: GPU tests must run)"),
    }
}

struct Pair {
    cpu: CpuBackend,
    gpu: GpuBackend,
}

impl Pair {
    fn alloc(&mut self, v: &[f32]) -> Tensor {
        let c = self.cpu.alloc(v.len()).unwrap();
        assert_eq!(c, self.gpu.alloc(v.len()).unwrap());
        self.cpu.write(c, v).unwrap();
        self.gpu.write(c, v).unwrap();
        c
    }

    fn check(&mut self, name: &str, t: Tensor, atol: f32) {
        let (g, c) = (self.gpu.read(t).unwrap(), self.cpu.read(t).unwrap());
        let worst = g
            .iter()
            .zip(&c)
            .map(|(g, c)| (g - c).abs() - RTOL * c.abs())
            .fold(0.0f32, f32::max);
        println!("{name}: largest excess over rtol {worst:.3e}, atol {atol:.1e}");
        assert!(worst <= atol, "{name}: out of tolerance");
    }
}

/// (batch, in, out), none a multiple of the 32-wide tile but one; the sixth
/// spans several tiles of every size in each product. Several have few
/// output tiles and a long K, so the split kernel chunks K over workgroups
/// (`MatmulKernel::split_chunks`): forward and backward-input with a short
/// last chunk (7 x 257 x 100: 3 chunks), backward-params with its bias sums
/// (300 x 20 x 9: 3 chunks), many chunks (12 x 700 x 20: 6).
const SHAPES: [(usize, usize, usize); 8] = [
    (1, 1, 1),
    (7, 257, 100),
    (100, 7, 257),
    (33, 65, 31),
    (64, 32, 96),
    (150, 133, 139),
    (12, 700, 20),
    (300, 20, 9),
];

fn variant_matches_cpu(variant: MatmulVariant) {
    let _serial = common::gpu_test_lock();
    let Some(gpu) = gpu(variant) else { return };
    assert_eq!(gpu.matmul_variant(), variant);
    let mut pair = Pair {
        cpu: CpuBackend::new(),
        gpu,
    };
    let clock = Clock {
        seed: 99,
        step: 3,
        cursor: 0,
    };
    pair.cpu.set_clock(clock).unwrap();
    pair.gpu.set_clock(clock).unwrap();
    for (i, &(batch, n_in, n_out)) in SHAPES.iter().enumerate() {
        let act = [Activation::LeakyRelu(0.2), Activation::Sigmoid][i % 2];
        let dropout = (i % 2 == 1).then_some(Dropout {
            p: 0.3,
            stream: rng::stream::DROPOUT + i as u32,
        });
        let slot = LayerSlot {
            in_dim: n_in,
            out_dim: n_out,
            weight: 5,
            bias: 5 + n_in * n_out,
        };
        let params = pair.alloc(&data(slot.bias + n_out + 3, 1, 1.0));
        let xbuf = pair.alloc(&data(batch * (n_in + 3), 2, 1.0));
        let x = Mat::dense(xbuf, batch, n_in + 3).cols(2, n_in);
        let ybuf = pair.alloc(&data(batch * n_out, 3, 1.0));
        let y = Mat::dense(ybuf, batch, n_out);
        let dy = Mat::dense(pair.alloc(&data(batch * n_out, 4, 1.0)), batch, n_out);
        let dxbuf = pair.alloc(&data(batch * (n_in + 1), 5, 1.0));
        let dx = Mat::dense(dxbuf, batch, n_in + 1).cols(1, n_in);
        let grads = pair.alloc(&data(slot.bias + n_out + 3, 6, 1.0));
        let name = |op: &str| format!("{} {op} B={batch} in={n_in} out={n_out}", variant.name());
        // The split kernel adds a reducing dispatch where it chunks K; a
        // backward op on a blocked kernel adds its dz pass before it.
        let dispatches = |m: usize, n: usize, k: usize, backward: bool| {
            let (m, n, k) = (m as u32, n as u32, k as u32);
            let kernel = variant.kernel_for(m, n, k);
            let reduce = kernel == MatmulKernel::Split && MatmulKernel::split_chunks(m, n, k).0 > 1;
            let dz = backward && kernel.is_blocked();
            1 + u64::from(reduce) + u64::from(dz)
        };
        let before = pair.gpu.dispatches();
        for b in [&mut pair.cpu as &mut dyn Backend, &mut pair.gpu] {
            b.linear_forward(x, params, slot, act, dropout, y);
        }
        assert_eq!(
            pair.gpu.dispatches() - before,
            dispatches(batch, n_out, n_in, false)
        );
        pair.check(&name("forward"), ybuf, sum_atol(n_in + 1) * 1.5);
        let before = pair.gpu.dispatches();
        for b in [&mut pair.cpu as &mut dyn Backend, &mut pair.gpu] {
            b.linear_backward_input(dy, y, act, dropout, params, slot, dx);
            b.linear_backward_params(dy, y, act, dropout, x, grads, slot);
        }
        assert_eq!(
            pair.gpu.dispatches() - before,
            dispatches(batch, n_in, n_out, true) + dispatches(n_out, n_in, batch, true)
        );
        pair.check(&name("backward_input"), dxbuf, sum_atol(n_out) * 1.5);
        pair.check(&name("backward_params"), grads, sum_atol(batch) * 1.5);
    }
}

#[test]
fn tiled_matmul_matches_cpu() {
    variant_matches_cpu(MatmulVariant::Tiled);
}

#[test]
fn split_matmul_matches_cpu() {
    variant_matches_cpu(MatmulVariant::Split);
}

#[test]
fn blocked64_matmul_matches_cpu() {
    variant_matches_cpu(MatmulVariant::Blocked64);
}

#[test]
fn blocked128_matmul_matches_cpu() {
    variant_matches_cpu(MatmulVariant::Blocked128);
}

#[test]
fn auto_matmul_matches_cpu() {
    variant_matches_cpu(MatmulVariant::Auto);
}

#[test]
fn direct_matmul_matches_cpu() {
    variant_matches_cpu(MatmulVariant::Direct);
}
