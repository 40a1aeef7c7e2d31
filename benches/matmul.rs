//! The matmul kernels (`linear_forward`, `linear_backward_input`,
//! `linear_backward_params`) through the backend at the models' sizes, on the
//! GPU and on the CPU reference. Throughput is in FLOPs: criterion's
//! "elem/s" reads as FLOP/s (2 M K N per call). The GPU is synced before the
//! timer stops: `iters` calls are recorded, then `Backend::sync` waits for
//! them. Environment switches: see `benches/common.rs`.

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::{Backend, Mat};
use gan_gpu::bench::matmul_flops;
use gan_gpu::model::{Activation, LayerSlot};

/// (rows M, inputs K, outputs N) of `y [M, N] = x [M, K] W^T`, with where they occur.
const SIZES: &[(usize, usize, usize, &str)] = &[
    (100, 128, 256, "vanilla G layer 1"),
    (100, 256, 784, "vanilla G layer 2"),
    (200, 784, 256, "vanilla D layer 1, D step"),
    (128, 1024, 784, "deep G layer 4"),
    (256, 784, 1024, "deep D layer 1, D step"),
];
const LARGE: (usize, usize, usize, &str) = (4096, 4096, 4096, "large");

#[derive(Clone, Copy)]
enum Op {
    Forward,
    BackwardInput,
    BackwardParams,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Forward => "linear_forward",
            Op::BackwardInput => "linear_backward_input",
            Op::BackwardParams => "linear_backward_params",
        }
    }
}

/// The buffers of one layer of `m` rows, `k` inputs, `n` outputs.
struct Layer {
    x: Mat,
    y: Mat,
    dy: Mat,
    dx: Mat,
    params: gan_gpu::backend::Tensor,
    grads: gan_gpu::backend::Tensor,
    slot: LayerSlot,
}

fn layer<B: Backend>(b: &mut B, m: usize, k: usize, n: usize) -> Layer {
    let fill = |len: usize, salt: u32| -> Vec<f32> {
        (0..len)
            .map(|i| gan_gpu::rng::normal(3, salt, 0, i as u32) * 0.1)
            .collect()
    };
    let mut tensor = |len: usize, salt: u32| {
        let t = b.alloc(len).unwrap();
        b.write(t, &fill(len, salt)).unwrap();
        t
    };
    let slot = LayerSlot {
        in_dim: k,
        out_dim: n,
        weight: 0,
        bias: n * k,
    };
    Layer {
        x: Mat::dense(tensor(m * k, 1), m, k),
        y: Mat::dense(tensor(m * n, 2), m, n),
        dy: Mat::dense(tensor(m * n, 3), m, n),
        dx: Mat::dense(tensor(m * k, 4), m, k),
        params: tensor(n * k + n, 5),
        grads: tensor(n * k + n, 6),
        slot,
    }
}

fn record<B: Backend>(b: &mut B, l: &Layer, op: Op) {
    let act = Activation::Relu;
    match op {
        Op::Forward => b.linear_forward(l.x, l.params, l.slot, act, None, l.y),
        Op::BackwardInput => b.linear_backward_input(l.dy, l.y, act, None, l.params, l.slot, l.dx),
        Op::BackwardParams => b.linear_backward_params(l.dy, l.y, act, None, l.x, l.grads, l.slot),
    }
}

/// Records `iters` calls, syncs, and returns the time.
fn timed<B: Backend>(b: &mut B, l: &Layer, op: Op, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        record(b, l, op);
    }
    b.sync().unwrap();
    start.elapsed()
}

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, b: &mut B, slow: bool) {
    let mut sizes: Vec<_> = SIZES.to_vec();
    if common::large_enabled() {
        sizes.push(LARGE);
    }
    for op in [Op::Forward, Op::BackwardInput, Op::BackwardParams] {
        let mut group = c.benchmark_group(format!("{}/{name}", op.name()));
        common::configure(&mut group, slow);
        for &(m, k, n, _) in &sizes {
            let l = layer(b, m, k, n);
            // Warm: pipelines, bind groups.
            record(b, &l, op);
            b.sync().unwrap();
            group.throughput(Throughput::Elements(matmul_flops(m, k, n)));
            if m * k * n >= 1 << 30 {
                group.sample_size(10);
            }
            group.bench_function(
                BenchmarkId::from_parameter(format!("{m}x{k}x{n}")),
                |bench| bench.iter_custom(|iters| timed(b, &l, op, iters)),
            );
        }
        group.finish();
    }
}

fn matmul(c: &mut Criterion) {
    if let Some(mut gpu) = common::gpu() {
        let slow = common::is_software(&gpu);
        let name = common::gpu_name(&gpu);
        bench_backend(c, &name, &mut gpu, slow);
    }
    if common::cpu_enabled() {
        bench_backend(c, "cpu", &mut CpuBackend::new(), false);
    }
}

criterion_group!(benches, matmul);
criterion_main!(benches);
