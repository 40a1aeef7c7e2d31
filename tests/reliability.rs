//! Faults lose nothing and a diverging run is caught: the `finite_check` op
//! on both backends, a huge learning rate stopping the run with its last good
//! checkpoint intact, an injected device loss recovered from the last
//! checkpoint bit-exactly, and write errors naming the file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::Backend;
use gan_gpu::checkpoint::Checkpoint;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gan-gpu-rel-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A data directory of 40 28x28 images (10 steps of batch 4 per epoch).
fn data_dir(root: &Path) -> PathBuf {
    common::idx_data_dir(root, 40, 10)
}

fn gan_gpu(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gan-gpu"));
    cmd.args(args).env_remove("GAN_GPU_INJECT_FAULT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run gan-gpu")
}

fn train_args<'a>(backend: &'a str, data: &'a str, out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--backend",
        backend,
        "--data",
        data,
        "--out",
        out,
        "--batch-size",
        "4",
        "--g-hidden",
        "8",
        "--d-hidden",
        "8",
        "--noise-dim",
        "8",
        "--epochs",
        epochs,
        "--checkpoint-every",
        "1",
        "--sample-every",
        "100",
        "--quiet",
    ]
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn finite_check_matches_the_cpu_on_the_gpu() {
    let _lock = common::gpu_test_lock();
    let Some(mut gpu) = common::gpu_backend() else {
        return;
    };
    let mut cpu = CpuBackend::new();
    for (values, expect) in [
        (vec![1.0f32; 257], 0.0),
        (
            {
                let mut v = vec![0.5f32; 300];
                v[299] = f32::NAN;
                v
            },
            1.0,
        ),
        (
            {
                let mut v = vec![-2.0f32; 7];
                v[0] = f32::NEG_INFINITY;
                v
            },
            1.0,
        ),
        (vec![f32::MAX, f32::MIN_POSITIVE, -0.0], 0.0),
    ] {
        let got = [cpu.run(&values), gpu.run(&values)];
        assert_eq!(got[0], got[1], "{values:?}");
        assert_eq!(got[0][3], expect, "{values:?}");
        assert_eq!(got[0][2], 0.0);
    }
}

/// Runs finite_check into slot 3 of a 5-slot stats tensor (slot 2 preset to 0).
trait BackendRun {
    fn run(&mut self, values: &[f32]) -> Vec<f32>;
}

impl<B: Backend> BackendRun for B {
    fn run(&mut self, values: &[f32]) -> Vec<f32> {
        let t = self.alloc(values.len()).unwrap();
        self.write(t, values).unwrap();
        let stats = self.alloc(5).unwrap();
        self.finite_check(t, stats, 3);
        self.read(stats).unwrap()
    }
}

/// A run whose learning rate is huge diverges: the error names the epoch and
/// steps, and the checkpoint it resumed from stays intact and loadable.
fn divergence_keeps_the_last_good_checkpoint(backend: &str) {
    let root = temp_dir(&format!("diverge-{backend}"));
    let data = data_dir(&root);
    let out = root.join("run");
    let (data_s, out_s) = (data.to_str().unwrap(), out.to_str().unwrap());
    let o = gan_gpu(&train_args(backend, data_s, out_s, "1"), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let path = out.join("checkpoint.safetensors");
    // The same run, with a learning rate of 1e30 from here on: a legitimate
    // user mistake (validation accepts any finite rate) that must be caught.
    let mut saved = Checkpoint::load(&path).unwrap();
    saved.settings.lr = 1e30;
    saved.settings.lr_d = Some(1e30);
    saved.save(&path).unwrap();
    let before = std::fs::read(&path).unwrap();
    let mut args = train_args(backend, data_s, out_s, "3");
    args.retain(|a| {
        ![
            "--g-hidden",
            "--d-hidden",
            "--noise-dim",
            "--batch-size",
            "8",
            "4",
        ]
        .contains(a)
    });
    args.extend(["--resume", path.to_str().unwrap()]);
    let o = gan_gpu(&args, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        line.starts_with("error: training diverged in epoch 2 (steps 11-20): "),
        "{stderr}"
    );
    assert!(
        line.contains(&format!("the last good checkpoint is {}", path.display())),
        "{line}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the good checkpoint was overwritten"
    );
    let kept = Checkpoint::load(&path).unwrap();
    assert_eq!((kept.epoch, kept.clock.step), (1, 10));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn divergence_is_caught_on_the_cpu() {
    divergence_keeps_the_last_good_checkpoint("cpu");
}

#[test]
fn divergence_is_caught_on_the_gpu() {
    let _lock = common::gpu_test_lock();
    if common::gpu_backend().is_none() {
        return;
    }
    divergence_keeps_the_last_good_checkpoint("vulkan");
}

/// A device lost mid-run (injected at step 25, in epoch 3): the run recreates
/// the backend, resumes from the epoch-2 checkpoint and ends with the same
/// bits as an uninterrupted run.
fn a_lost_device_loses_nothing(backend: &str) {
    let root = temp_dir(&format!("fault-{backend}"));
    let data = data_dir(&root);
    let data_s = data.to_str().unwrap();
    let (clean, faulty) = (root.join("clean"), root.join("faulty"));
    let o = gan_gpu(
        &train_args(backend, data_s, clean.to_str().unwrap(), "4"),
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = gan_gpu(
        &train_args(backend, data_s, faulty.to_str().unwrap(), "4"),
        &[("GAN_GPU_INJECT_FAULT", "device-lost@step:25")],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("notice: GPU device lost on")
            && stderr.contains("recreating the backend and resuming from")
            && stderr.contains("checkpoint.safetensors"),
        "{stderr}"
    );
    let a = Checkpoint::load(&clean.join("checkpoint.safetensors")).unwrap();
    let b = Checkpoint::load(&faulty.join("checkpoint.safetensors")).unwrap();
    assert_eq!((a.epoch, a.clock), (b.epoch, b.clock));
    for (x, y) in [
        (&a.generator, &b.generator),
        (&a.discriminator, &b.discriminator),
    ] {
        assert_eq!(bits(&x.params), bits(&y.params));
        assert_eq!(bits(&x.adam_m), bits(&y.adam_m));
        assert_eq!(bits(&x.adam_v), bits(&y.adam_v));
    }
    let rows = |dir: &Path| {
        std::fs::read_to_string(dir.join("metrics.csv"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(rows(&clean), rows(&faulty), "metrics rows");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_lost_device_loses_nothing_on_the_cpu() {
    a_lost_device_loses_nothing("cpu");
}

#[test]
fn a_lost_device_loses_nothing_on_the_gpu() {
    let _lock = common::gpu_test_lock();
    if common::gpu_backend().is_none() {
        return;
    }
    a_lost_device_loses_nothing("vulkan");
}

#[test]
fn write_errors_name_the_file_and_keep_the_good_checkpoint() {
    let root = temp_dir("write-errors");
    let data = data_dir(&root);
    let out = root.join("run");
    let (data_s, out_s) = (data.to_str().unwrap(), out.to_str().unwrap());
    let o = gan_gpu(&train_args("cpu", data_s, out_s, "1"), &[]);
    assert!(o.status.success());
    let path = out.join("checkpoint.safetensors");
    let good = std::fs::read(&path).unwrap();
    // A directory where the checkpoint's temporary file goes.
    std::fs::create_dir_all(out.join("checkpoint.safetensors.tmp/x")).unwrap();
    let mut args = train_args("cpu", data_s, out_s, "2");
    args.retain(|a| {
        ![
            "--g-hidden",
            "--d-hidden",
            "--noise-dim",
            "--batch-size",
            "8",
            "4",
        ]
        .contains(a)
    });
    args.extend(["--resume", path.to_str().unwrap()]);
    let o = gan_gpu(&args, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.lines().next().unwrap_or("").starts_with("error: "),
        "{stderr}"
    );
    assert!(stderr.contains("checkpoint.safetensors.tmp"), "{stderr}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        good,
        "the good checkpoint changed"
    );
    Checkpoint::load(&path).unwrap();
    // A directory in place of metrics.csv's temporary file / a sample grid.
    std::fs::remove_dir_all(out.join("checkpoint.safetensors.tmp")).unwrap();
    std::fs::remove_file(out.join("final.png")).unwrap();
    std::fs::create_dir_all(out.join("final.png")).unwrap();
    std::fs::create_dir_all(out.join("final.png.tmp")).unwrap();
    let o = gan_gpu(&args, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains("final.png"), "{stderr}");
    std::fs::remove_dir_all(&root).ok();
}
