//! Shared helpers of the tests: a small MNIST-format data folder
//! ([`idx_data_dir`]), the finite-difference check of the gradient tests
//! ([`check_gradients`]), and opening a GPU backend on the APIs under test,
//! skipping when there is no adapter, and failing instead when `CI=true`
//! (a GPU test that silently skips in CI is a test that does not exist).
//!
//! `GAN_GPU_TEST_API` picks the APIs: a comma list of `vulkan`, `gl`, `metal`,
//! `dx12`, `best`. Unset, [`gpu_backend`] uses Vulkan if present (else any
//! adapter), and [`gpu_backends`] runs on Vulkan and GL, each if present.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use gan_gpu::backend::gpu::{GpuApi, GpuBackend};

/// Whether the tests run in CI, where a missing adapter is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
        .unwrap_or(false)
}

/// The APIs named by `GAN_GPU_TEST_API`, or None when it is unset.
fn requested_apis() -> Option<Vec<GpuApi>> {
    let list = std::env::var("GAN_GPU_TEST_API").ok()?;
    let apis = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| GpuApi::parse(s).unwrap_or_else(|e| panic!("GAN_GPU_TEST_API: {e}")))
        .collect();
    Some(apis)
}

fn skip_or_fail(message: &str) {
    if in_ci() {
        panic!("{message} (CI=true: GPU tests must run)");
    }
    eprintln!("skipped: no GPU adapter ({message})");
}

/// One GPU backend: the first API of `GAN_GPU_TEST_API` (default: Vulkan if
/// present, else the best adapter). None, after printing "skipped: no GPU
/// adapter", when there is none; panics instead when `CI=true`.
pub fn gpu_backend() -> Option<GpuBackend> {
    let apis = requested_apis().unwrap_or_else(|| vec![GpuApi::Vulkan, GpuApi::Best]);
    let mut errors = Vec::new();
    for api in apis {
        match GpuBackend::with_api(api) {
            Ok(b) => return Some(b),
            Err(e) => errors.push(e.to_string()),
        }
    }
    skip_or_fail(&errors.join("; "));
    None
}

/// A backend for every API under test that has an adapter: those of
/// `GAN_GPU_TEST_API` (each must exist when `CI=true`), else Vulkan and GL
/// (at least one must exist when `CI=true`).
pub fn gpu_backends() -> Vec<(GpuApi, GpuBackend)> {
    let (apis, all_required) = match requested_apis() {
        Some(apis) => (apis, true),
        None => (vec![GpuApi::Vulkan, GpuApi::Gl], false),
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for api in apis {
        match GpuBackend::with_api(api) {
            Ok(b) => found.push((api, b)),
            Err(e) => {
                if all_required {
                    skip_or_fail(&format!("{api}: {e}"));
                } else {
                    eprintln!("not testing {api}: {e}");
                }
                errors.push(e.to_string());
            }
        }
    }
    if found.is_empty() && !all_required {
        skip_or_fail(&errors.join("; "));
    }
    found
}

/// Serialises the GPU tests of one test binary. Run side by side, Vulkan and
/// GL devices on Mesa's llvmpipe slow each other down dramatically (12 small
/// tests: 6 s one at a time, over 200 s in parallel on 2 cores).
pub fn gpu_test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `root/data`: an MNIST-format folder of `train` training and `test` test
/// images (28x28, a fixed byte pattern) with labels cycling through 0-9.
pub fn idx_data_dir(root: &Path, train: u32, test: u32) -> PathBuf {
    let dir = root.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let mut images = vec![0, 0, 8, 3];
        for d in [n, 28, 28] {
            images.extend_from_slice(&d.to_be_bytes());
        }
        images.extend((0..n * 784).map(|i| (i * 37 % 251) as u8));
        let mut labels = vec![0, 0, 8, 1];
        labels.extend_from_slice(&n.to_be_bytes());
        labels.extend((0..n).map(|i| (i % 10) as u8));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
    dir
}

/// A gradient check of finite differences: Err naming the first element
/// where `|analytic - numeric| > atol + rtol |numeric|`; Ok(the worst
/// difference), printed.
pub fn check_gradients(
    what: &str,
    analytic: &[f32],
    numeric: &[f64],
    (atol, rtol): (f64, f64),
) -> Result<f64, String> {
    assert_eq!(analytic.len(), numeric.len(), "{what}");
    assert!(!analytic.is_empty(), "{what}: nothing checked");
    let mut worst = 0.0f64;
    for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
        let diff = (*a as f64 - n).abs();
        worst = worst.max(diff);
        if diff > atol + rtol * n.abs() {
            return Err(format!(
                "{what}[{i}]: analytic {a}, numeric {n} (|diff| {diff:.2e})"
            ));
        }
    }
    println!(
        "{what}: {} checked, worst |diff| {worst:.2e}",
        analytic.len()
    );
    Ok(worst)
}
