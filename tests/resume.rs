//! Exact resume: a run interrupted after k steps (mid-epoch, at an epoch
//! boundary, or by the stop flag), checkpointed to disk, loaded into a new
//! backend and resumed to N steps ends with the same bits (every parameter,
//! both Adam moments, the clock and the partial epoch's stats) as a run of N
//! steps straight, for all four models on the CPU and vanilla, deep and
//! dcgan on the GPU (dcgan's batch-norm running statistics and
//! `num_batches_tracked` included, and its generator's moving average). And sampling a checkpoint on the GPU
//! matches the CPU.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::Backend;
use gan_gpu::checkpoint::{Checkpoint, NetworkState};
use gan_gpu::data::{self, Dataset, Split};
use gan_gpu::model::{GameFlags, ModelKind, ModelSpec, Overrides};
use gan_gpu::train::{TrainConfig, Trainer};

/// The first `n` images of the bundled MNIST training set.
fn small_mnist(n: usize) -> Dataset {
    data::load_split(&data::bundled_dir(), Split::Train)
        .expect("bundled MNIST")
        .head(n)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gan-gpu-resume-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

/// A narrow version of `kind` (batch 8, 3 epochs) that stops after `max_steps`.
fn config(kind: ModelKind, max_steps: usize, out: &Path) -> TrainConfig {
    let (g_hidden, d_hidden) = match kind {
        ModelKind::Deep => (vec![16, 24, 32], vec![32, 24, 16]),
        // Feature-map channels: the tutorial's layers, narrow.
        ModelKind::Dcgan => (vec![16, 8, 8], vec![8, 16]),
        _ => (vec![32], vec![32]),
    };
    let overrides = Overrides {
        batch_size: Some(8),
        epochs: Some(3),
        g_hidden: Some(g_hidden),
        d_hidden: Some(d_hidden),
        // dcgan keeps the generator's moving average too (`--ema`).
        game: GameFlags {
            ema: (kind == ModelKind::Dcgan).then_some(0.95),
            ..Default::default()
        },
        ..Default::default()
    };
    TrainConfig {
        spec: ModelSpec::build(kind, &overrides),
        seed: 11,
        out_dir: out.to_path_buf(),
        sample_every: 1000,
        max_steps: Some(max_steps),
        grid_batch_stats: false,
    }
}

/// Trains from scratch to `max_steps` (or until `stop_after_epoch` raises
/// the stop flag) and returns the checkpoint written at the end, read back
/// from disk.
fn fresh<B: Backend>(
    backend: &mut B,
    kind: ModelKind,
    max_steps: usize,
    stop_after_epoch: Option<usize>,
    data: &Dataset,
    out: &Path,
) -> Checkpoint {
    let mut trainer = Trainer::new(backend, config(kind, max_steps, out), data).unwrap();
    trainer.set_checkpoint_every(1).unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    trainer.set_stop_flag(flag.clone());
    let summary = trainer
        .run(|report| {
            if Some(report.epoch) == stop_after_epoch {
                flag.store(true, Ordering::SeqCst);
            }
        })
        .unwrap();
    assert_eq!(summary.interrupted, stop_after_epoch.is_some());
    let path = summary.checkpoint.expect("a checkpoint at the end");
    assert_eq!(path, out.join("checkpoint.safetensors"));
    Checkpoint::load(&path).unwrap()
}

/// Resumes `saved` on `backend` and trains to `max_steps`.
fn resumed<B: Backend>(
    backend: &mut B,
    kind: ModelKind,
    max_steps: usize,
    saved: &Path,
    data: &Dataset,
    out: &Path,
) -> Checkpoint {
    let checkpoint = Checkpoint::load(saved).unwrap();
    let mut trainer = Trainer::resume(
        backend,
        config(kind, max_steps, out),
        data,
        &checkpoint,
        saved,
    )
    .unwrap();
    let summary = trainer.run(|_| {}).unwrap();
    assert_eq!(summary.steps, max_steps);
    Checkpoint::load(&summary.checkpoint.unwrap()).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn assert_same_bits(what: &str, a: &Checkpoint, b: &Checkpoint) {
    assert_eq!(a.clock, b.clock, "{what}: clock");
    assert_eq!(a.epoch, b.epoch, "{what}: epoch");
    assert_eq!(bits(&a.stats), bits(&b.stats), "{what}: epoch stats");
    assert_eq!(
        a.generator_ema.is_some(),
        b.generator_ema.is_some(),
        "{what}: the generator's average"
    );
    let nets = |c: &Checkpoint| -> Vec<(String, NetworkState)> {
        let mut nets = vec![
            ("generator".into(), c.generator.clone()),
            ("discriminator".into(), c.discriminator.clone()),
        ];
        nets.extend(c.generator_ema.clone().map(|s| ("generator_ema".into(), s)));
        nets
    };
    for ((name, x), (_, y)) in nets(a).iter().zip(nets(b).iter()) {
        assert_eq!(bits(&x.params), bits(&y.params), "{what}: {name} params");
        assert_eq!(bits(&x.adam_m), bits(&y.adam_m), "{what}: {name} exp_avg");
        assert_eq!(
            bits(&x.adam_v),
            bits(&y.adam_v),
            "{what}: {name} exp_avg_sq"
        );
        assert_eq!(
            bits(&x.buffers),
            bits(&y.buffers),
            "{what}: {name} running statistics"
        );
        assert_eq!(
            x.batches_tracked, y.batches_tracked,
            "{what}: {name} num_batches_tracked"
        );
    }
}

/// Straight to `total` steps vs. interrupted at each k in `ks` (and, if
/// `stop`, by the stop flag after epoch 1) and resumed, each run on a fresh
/// backend. 64 images in batches of 8: 8 steps an epoch; a k in the same
/// epoch as `total` checks that the partial epoch's stats survive.
fn check_resume<B: Backend>(
    label: &str,
    mut new_backend: impl FnMut() -> B,
    kinds: &[ModelKind],
    total: usize,
    ks: &[usize],
    stop: bool,
) {
    let data = small_mnist(64);
    for &kind in kinds {
        let straight_dir = temp_dir(&format!("{label}-{kind:?}-straight"));
        let straight = fresh(&mut new_backend(), kind, total, None, &data, &straight_dir);
        assert_eq!(straight.clock.step as usize, total);
        assert_eq!(
            (straight.epoch, straight.clock.cursor as usize),
            (total / 8, total % 8)
        );
        for &k in ks {
            let dir = temp_dir(&format!("{label}-{kind:?}-{k}"));
            let first = fresh(&mut new_backend(), kind, k, None, &data, &dir);
            assert_eq!(first.clock.step as usize, k);
            assert_eq!(
                (first.epoch, first.clock.cursor as usize),
                (k / 8, k % 8),
                "{label} {kind:?}: position after {k} steps"
            );
            let path = dir.join("checkpoint.safetensors");
            let end = resumed(&mut new_backend(), kind, total, &path, &data, &dir);
            assert_same_bits(
                &format!("{label} {kind:?} interrupted at {k}"),
                &straight,
                &end,
            );
            std::fs::remove_dir_all(dir).ok();
        }
        if !stop {
            std::fs::remove_dir_all(straight_dir).ok();
            continue;
        }
        // The stop flag, raised after epoch 1, stops the run at step 8.
        let dir = temp_dir(&format!("{label}-{kind:?}-stop"));
        let stopped = fresh(&mut new_backend(), kind, total, Some(1), &data, &dir);
        assert_eq!((stopped.clock.step, stopped.epoch), (8, 1));
        let end = resumed(
            &mut new_backend(),
            kind,
            total,
            &dir.join("checkpoint.safetensors"),
            &data,
            &dir,
        );
        assert_same_bits(
            &format!("{label} {kind:?} stopped by the flag"),
            &straight,
            &end,
        );
        std::fs::remove_dir_all(dir).ok();
        std::fs::remove_dir_all(straight_dir).ok();
    }
}

#[test]
fn cpu_resume_is_bit_exact_for_all_models() {
    check_resume(
        "cpu",
        CpuBackend::new,
        &[ModelKind::Vanilla, ModelKind::Deep, ModelKind::Conditional],
        20,
        &[3, 8, 13, 17],
        true,
    );
}

#[test]
fn gpu_resume_is_bit_exact() {
    let _lock = common::gpu_test_lock();
    if common::gpu_backend().is_none() {
        return;
    }
    check_resume(
        "gpu",
        || common::gpu_backend().expect("a GPU backend"),
        &[ModelKind::Vanilla, ModelKind::Deep],
        12,
        &[9],
        false,
    );
}

/// The DCGAN (batch 8, narrow channels) on the CPU: its batch norms'
/// running statistics and `num_batches_tracked` resume too, mid-epoch.
#[test]
fn cpu_resume_is_bit_exact_for_the_dcgan() {
    check_resume("cpu", CpuBackend::new, &[ModelKind::Dcgan], 5, &[3], false);
}

#[test]
fn gpu_resume_is_bit_exact_for_the_dcgan() {
    let _lock = common::gpu_test_lock();
    if common::gpu_backend().is_none() {
        return;
    }
    check_resume(
        "gpu",
        || common::gpu_backend().expect("a GPU backend"),
        &[ModelKind::Dcgan],
        4,
        &[2],
        false,
    );
}

#[test]
fn resume_refuses_a_finished_run_and_other_data() {
    let data = small_mnist(64);
    let dir = temp_dir("finished");
    let mut cfg = config(ModelKind::Vanilla, 1000, &dir);
    cfg.spec.epochs = 1;
    let mut backend = CpuBackend::new();
    let summary = Trainer::new(&mut backend, cfg.clone(), &data)
        .unwrap()
        .run(|_| {})
        .unwrap();
    let path = summary.checkpoint.unwrap();
    let saved = Checkpoint::load(&path).unwrap();
    assert_eq!((saved.epoch, saved.clock.cursor), (1, 0));
    let err = Trainer::resume(&mut CpuBackend::new(), cfg.clone(), &data, &saved, &path)
        .err()
        .expect("a finished run cannot resume")
        .to_string();
    assert!(err.contains("--epochs"), "{err}");
    // Extending the run with --epochs works.
    let mut longer = cfg.clone();
    longer.spec.epochs = 2;
    let summary = Trainer::resume(&mut CpuBackend::new(), longer, &data, &saved, &path)
        .unwrap()
        .run(|_| {})
        .unwrap();
    assert_eq!(summary.steps, 16);
    // Another data set size changes the epoch order: refused, naming --data.
    let other = small_mnist(72);
    let mut longer = cfg.clone();
    longer.spec.epochs = 2;
    let err = Trainer::resume(&mut CpuBackend::new(), longer, &other, &saved, &path)
        .err()
        .expect("other data")
        .to_string();
    assert!(
        err.contains("--data") && err.contains("64") && err.contains("72"),
        "{err}"
    );
    // Another model spec is refused.
    let mut wider = cfg;
    wider.spec = ModelSpec::build(
        ModelKind::Vanilla,
        &Overrides {
            batch_size: Some(8),
            epochs: Some(2),
            g_hidden: Some(vec![64]),
            d_hidden: Some(vec![32]),
            ..Default::default()
        },
    );
    assert!(Trainer::resume(&mut CpuBackend::new(), wider, &data, &saved, &path).is_err());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn gpu_sampling_matches_the_cpu() {
    use gan_gpu::sample::{self, SampleRequest};
    let _lock = common::gpu_test_lock();
    let Some(mut gpu) = common::gpu_backend() else {
        return;
    };
    let data = small_mnist(64);
    let dir = temp_dir("gpu-sample");
    let path = Path::new("in-memory.safetensors");
    for kind in [ModelKind::Deep, ModelKind::Conditional] {
        let saved = fresh(&mut CpuBackend::new(), kind, 6, None, &data, &dir);
        let request = SampleRequest {
            count: 12,
            label: None,
            seed: 4,
            batch_stats: false,
            raw_generator: false,
        };
        let on_cpu = sample::generate(&mut CpuBackend::new(), &saved, path, &request).unwrap();
        let on_gpu = sample::generate(&mut gpu, &saved, path, &request).unwrap();
        assert_eq!(on_cpu.len(), 12 * 784);
        assert!(on_cpu.iter().any(|&p| p > 0), "{kind:?}: blank images");
        // Same math, other summation order: pixels may round the other way.
        let worst = on_cpu
            .iter()
            .zip(&on_gpu)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 1, "{kind:?}: GPU samples differ by {worst} levels");
    }
    std::fs::remove_dir_all(dir).ok();
}
