//! A whole training step (D on a real and a generated batch, then G) per
//! model, on the GPU and on the CPU reference, on made-up data (the same work
//! per step as MNIST). Throughput is matmul FLOPs per step
//! (`gan_gpu::bench::matmul_flops_per_step`): criterion's "elem/s" reads as
//! FLOP/s. `iters` steps are recorded, then the device is synced before the
//! timer stops. Environment switches: see `benches/common.rs`.

mod common;

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::Backend;
use gan_gpu::bench::{matmul_flops_per_step, synthetic_dataset, StepRunner};
use gan_gpu::model::{ModelKind, ModelSpec};

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, b: &mut B, slow: bool) {
    let data = synthetic_dataset(2560, 10, gan_gpu::model::ImageShape::MNIST);
    let mut group = c.benchmark_group(format!("train_step/{name}"));
    common::configure(&mut group, slow);
    for kind in [ModelKind::Vanilla, ModelKind::Deep, ModelKind::Conditional] {
        if slow && kind == ModelKind::Deep && !common::large_enabled() {
            // About 14 s per step on lavapipe: minutes for ten samples.
            eprintln!("notice: train_step/{name}/deep skipped on a software adapter (GAN_GPU_BENCH_LARGE=1 runs it)");
            continue;
        }
        let spec = ModelSpec::preset(kind);
        let mut runner = StepRunner::new(b, &spec, &data).unwrap();
        runner.run(b, 2).unwrap();
        b.sync().unwrap();
        group.throughput(Throughput::Elements(matmul_flops_per_step(&spec)));
        group.bench_function(kind.name(), |bench| {
            bench.iter_custom(|iters| {
                let start = Instant::now();
                runner.run(b, iters as usize).unwrap();
                b.sync().unwrap();
                start.elapsed()
            })
        });
    }
    group.finish();
}

fn train_step(c: &mut Criterion) {
    if let Some(mut gpu) = common::gpu() {
        let slow = common::is_software(&gpu);
        let name = common::gpu_name(&gpu);
        bench_backend(c, &name, &mut gpu, slow);
    }
    if common::cpu_enabled() {
        bench_backend(c, "cpu", &mut CpuBackend::new(), false);
    }
}

criterion_group!(benches, train_step);
criterion_main!(benches);
