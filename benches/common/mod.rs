#![allow(dead_code)] // each bench uses part of it
//! Shared set-up of the criterion benches: which GPU to open and how long to
//! sample. Environment variables (all optional):
//!
//! - `GAN_GPU_BENCH_API`: `vulkan`, `gl`, `metal`, `dx12` or `best` (default).
//! - `GAN_GPU_BENCH_MATMUL`: `tiled` or `direct` forces the matmul kernels
//!   (default: chosen from the adapter, direct on CPU adapters).
//! - `GAN_GPU_BENCH_NO_GPU=1`: CPU cases only.
//! - `GAN_GPU_BENCH_NO_CPU=1`: GPU cases only (the CPU cases build their
//!   operands and run each once even when a filter skips them, which at
//!   4096^3 takes long).
//! - `GAN_GPU_BENCH_LARGE=1`: add the 4096 x 4096 x 4096 matmul (about 137
//!   GFLOP per call: seconds on a GPU, many minutes on lavapipe or the CPU),
//!   and the deep model's training step on a software adapter.
//! - `GAN_GPU_BENCH_QUICK=1`: the fewest samples criterion allows, for a
//!   smoke run on a software driver.

use std::time::Duration;

use criterion::{BenchmarkGroup, SamplingMode};
use gan_gpu::backend::gpu::{GpuApi, GpuBackend, GpuOptions, MatmulVariant};

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether the CPU cases run (`GAN_GPU_BENCH_NO_CPU` unset).
pub fn cpu_enabled() -> bool {
    !flag("GAN_GPU_BENCH_NO_CPU")
}

pub fn large_enabled() -> bool {
    flag("GAN_GPU_BENCH_LARGE")
}

/// A GPU backend's name in benchmark ids: `gpu-<api>-<matmul variant>`.
pub fn gpu_name(gpu: &GpuBackend) -> String {
    format!(
        "gpu-{}-{}",
        gpu.adapter_info().backend.to_str(),
        gpu.matmul_variant().name()
    )
}

/// The GPU backend to bench, or None (with a notice) when there is none.
pub fn gpu() -> Option<GpuBackend> {
    if flag("GAN_GPU_BENCH_NO_GPU") {
        return None;
    }
    let api = std::env::var("GAN_GPU_BENCH_API").unwrap_or_else(|_| "best".into());
    let api = match GpuApi::parse(&api) {
        Ok(api) => api,
        Err(e) => panic!("GAN_GPU_BENCH_API: {e}"),
    };
    let matmul = std::env::var("GAN_GPU_BENCH_MATMUL")
        .ok()
        .map(|v| MatmulVariant::parse(&v).unwrap_or_else(|e| panic!("GAN_GPU_BENCH_MATMUL: {e}")));
    let options = GpuOptions {
        matmul,
        ..GpuOptions::with_api(api)
    };
    match GpuBackend::new(&options) {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            eprintln!("notice: no GPU adapter ({e}); GPU cases skipped");
            None
        }
    }
}

/// Whether the GPU is a software rasteriser (lavapipe/llvmpipe): sample less.
pub fn is_software(gpu: &GpuBackend) -> bool {
    gpu.adapter_info().device_type == wgpu::DeviceType::Cpu
}

/// Sampling for a group: flat sampling, few samples when `slow`
/// (a software GPU, or `GAN_GPU_BENCH_QUICK`).
pub fn configure<M: criterion::measurement::Measurement>(
    group: &mut BenchmarkGroup<'_, M>,
    slow: bool,
) {
    group.sampling_mode(SamplingMode::Flat);
    if slow || flag("GAN_GPU_BENCH_QUICK") {
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
    } else {
        group
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
    }
}
