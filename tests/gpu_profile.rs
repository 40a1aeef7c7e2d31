//! `gan-gpu bench --profile`: GPU timestamps around every dispatch of a
//! training step, on the adapter under test (lavapipe in CI).

mod common;

use gan_gpu::backend::gpu::{GpuApi, GpuBackend, GpuOptions};
use gan_gpu::bench;
use gan_gpu::model::{ModelKind, ModelSpec, Overrides};

fn small_vanilla() -> ModelSpec {
    ModelSpec::build(
        ModelKind::Vanilla,
        &Overrides {
            batch_size: Some(8),
            g_hidden: Some(vec![16]),
            d_hidden: Some(vec![16]),
            ..Default::default()
        },
    )
}

#[test]
fn a_profile_times_every_dispatch_of_a_step() {
    let _lock = common::gpu_test_lock();
    let options = GpuOptions {
        profile: true,
        ..GpuOptions::with_api(GpuApi::Vulkan)
    };
    let mut gpu = match GpuBackend::new(&options) {
        Ok(gpu) => gpu,
        Err(e) if !common::in_ci() => {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e} (CI=true: GPU tests must run)"),
    };
    let data = bench::synthetic_dataset(64, 10, gan_gpu::model::ImageShape::MNIST);
    let spec = small_vanilla();
    let profile = bench::profile_steps(&mut gpu, &spec, &data, 1, 3).unwrap();
    assert_eq!(profile.steps, 3);
    // The vanilla step's dispatches (BENCHMARKS.md): gather, noise, forward,
    // loss, backward, Adam, end of step; plus, on adapters where the split
    // matmul kernel chunks K (hardware GPUs), a reducing dispatch right
    // after each chunked product.
    let reduces: Vec<usize> = (0..profile.rows.len())
        .filter(|&i| profile.rows[i].label.contains("/split_reduce "))
        .collect();
    for &i in &reduces {
        let op = profile.rows[i].label.split('/').next().unwrap();
        assert!(
            i > 0
                && profile.rows[i - 1]
                    .label
                    .starts_with(&format!("{op}/split ")),
            "{:?}",
            profile.rows
        );
    }
    assert_eq!(profile.rows.len(), 24 + reduces.len(), "{:?}", profile.rows);
    assert!(profile.rows[0].label.starts_with("gather_batch"));
    assert!(profile.rows.last().unwrap().label.starts_with("end_step"));
    let linear = profile
        .rows
        .iter()
        .filter(|r| r.label.starts_with("linear_") && !r.label.contains("/split_reduce "))
        .count();
    assert_eq!(linear, 16);
    for row in &profile.rows {
        assert!(row.kernel_us > 0.0, "{row:?}");
        assert!(row.gap_us >= 0.0, "{row:?}");
    }
    let kernels: f64 = profile.rows.iter().map(|r| r.kernel_us).sum();
    assert!(
        profile.step_us >= 0.5 * kernels,
        "{} vs {kernels}",
        profile.step_us
    );
}

#[test]
fn a_profile_needs_a_backend_opened_for_it() {
    let _lock = common::gpu_test_lock();
    let Some(mut gpu) = common::gpu_backend() else {
        return;
    };
    let err = gpu.start_profile().unwrap_err().to_string();
    assert!(err.contains("GpuOptions::profile"), "{err}");
}
