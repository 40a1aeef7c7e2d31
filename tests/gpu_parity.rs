//! Whole training steps on the GPU against the CPU reference, for all three
//! models: after 1 step and after 10, the losses and every named parameter of
//! both networks agree. And determinism: the same seed twice gives the same
//! bits on the GPU. The automatic matmul choice runs the direct kernels on a
//! software adapter, so the GPU matmul variants (split, blocked) are also run
//! forced through whole steps of the deep model.
//!
//! Tolerance. Each kernel matches its CPU twin to a few ulps (tests/gpu_ops.rs);
//! what differs is only the order of f32 summation, so after one step the
//! parameters differ by rounding of the Adam update, |dp| <~ lr * 1e-3. Over
//! steps the differences feed back through the networks and Adam's
//! normalisation m / sqrt(v) amplifies them where a gradient is close to zero,
//! so the bound grows with the step count: we accept
//! |gpu - cpu| <= ATOL_PER_STEP * steps + RTOL * |cpu|, where ATOL_PER_STEP =
//! 2e-3 * lr is 0.2% of the largest move Adam makes in a step (lr), and
//! RTOL = 1e-4. A wrong kernel (a missing term, a wrong mask, a wrong index)
//! moves parameters by O(lr) in the first step and fails this at once.

mod common;

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::gpu::{GpuApi, GpuBackend, GpuOptions, MatmulVariant};
use gan_gpu::backend::{stat, Backend};
use gan_gpu::data::{self, Dataset, Split};
use gan_gpu::model::{ModelKind, ModelSpec, Overrides};
use gan_gpu::train::{Observer, Progress, TrainConfig, Trainer};

const RTOL: f32 = 1e-4;

/// The first `n` images of the bundled MNIST training set.
fn small_mnist(n: usize) -> Dataset {
    data::load_split(&data::bundled_dir(), Split::Train)
        .expect("bundled MNIST")
        .head(n)
}

/// A small version of each model: the model's structure, activations,
/// dropout, targets, scaling and optimiser, with narrow layers and batch 8.
fn small_config(kind: ModelKind, steps: usize) -> TrainConfig {
    let (g_hidden, d_hidden) = match kind {
        ModelKind::Deep => (vec![16, 24, 32], vec![32, 24, 16]),
        _ => (vec![32], vec![32]),
    };
    let overrides = Overrides {
        batch_size: Some(8),
        epochs: Some(100),
        g_hidden: Some(g_hidden),
        d_hidden: Some(d_hidden),
        ..Default::default()
    };
    TrainConfig {
        spec: ModelSpec::build(kind, &overrides),
        seed: 3,
        out_dir: std::env::temp_dir().join(format!("gan-gpu-parity-{}", std::process::id())),
        sample_every: 1000,
        max_steps: Some(steps),
        grid_batch_stats: false,
    }
}

/// Every named tensor after training: (name, values), plus the stats.
struct Snapshot {
    tensors: Vec<(String, Vec<f32>)>,
    stats: Vec<f32>,
}

/// Trains `steps` steps (the epoch loop resets the stats each epoch, so
/// `steps` stays within the first epoch) and snapshots both networks.
fn run<B: Backend>(backend: &mut B, kind: ModelKind, steps: usize, data: &Dataset) -> Snapshot {
    run_observed(backend, kind, steps, data, &mut Steps::default())
}

/// [`run`], telling `observer` of the run's progress.
fn run_observed<B: Backend>(
    backend: &mut B,
    kind: ModelKind,
    steps: usize,
    data: &Dataset,
    observer: &mut dyn Observer,
) -> Snapshot {
    let config = small_config(kind, steps);
    let out = config.out_dir.clone();
    let mut trainer = Trainer::new(backend, config, data).unwrap();
    trainer.run_observed(observer).unwrap();
    let state = &trainer.state;
    let mut named = Vec::new();
    for (net_name, net) in [
        ("generator", &state.generator),
        ("discriminator", &state.discriminator),
    ] {
        let net = net.mlp().expect("an MLP model");
        named.push((net_name, net.params, net.layout.clone()));
    }
    let stats_tensor = state.stats;
    drop(trainer);
    let mut tensors = Vec::new();
    for (net_name, params, layout) in named {
        let values = backend.read(params).unwrap();
        for (i, slot) in layout.layers.iter().enumerate() {
            tensors.push((
                format!("{net_name}.{i}.weight"),
                values[slot.weight..slot.bias].to_vec(),
            ));
            tensors.push((
                format!("{net_name}.{i}.bias"),
                values[slot.bias..slot.bias + slot.out_dim].to_vec(),
            ));
        }
    }
    let stats = backend.read(stats_tensor).unwrap();
    std::fs::remove_dir_all(out).ok();
    Snapshot { tensors, stats }
}

fn compare(label: &str, kind: ModelKind, steps: usize, cpu: &Snapshot, gpu: &Snapshot) {
    let lr = ModelSpec::preset(kind).adam.lr;
    let atol = 2e-3 * lr * steps as f32;
    let mut failures = Vec::new();
    for ((name, c), (_, g)) in cpu.tensors.iter().zip(&gpu.tensors) {
        let (mut worst, mut at) = (0.0f32, 0);
        for (i, (a, b)) in c.iter().zip(g).enumerate() {
            let d = (a - b).abs();
            if d > worst {
                (worst, at) = (d, i);
            }
            // NaN counts as a failure.
            if d.is_nan() || d > atol + RTOL * a.abs() {
                failures.push(format!("{name}[{i}]: cpu {a} gpu {b}"));
            }
        }
        println!("{label} {kind:?} after {steps} steps: {name:<24} worst |diff| {worst:.2e} at {at} (tolerance {atol:.1e} + {RTOL:.0e}|cpu|)");
    }
    // The losses and mean D outputs summed over the steps.
    for slot in [stat::D_LOSS, stat::G_LOSS, stat::D_REAL, stat::D_FAKE] {
        let (a, b) = (cpu.stats[slot as usize], gpu.stats[slot as usize]);
        let tol = 1e-4 * steps as f32 + 1e-4 * a.abs();
        println!("{label} {kind:?} after {steps} steps: stat {slot}: cpu {a:.6} gpu {b:.6}");
        if (a - b).is_nan() || (a - b).abs() > tol {
            failures.push(format!("stat {slot}: cpu {a} gpu {b}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{label} {kind:?} after {steps} steps: {} values disagree: {:?}",
        failures.len(),
        &failures[..failures.len().min(8)]
    );
}

fn parity(kind: ModelKind) {
    let _lock = common::gpu_test_lock();
    let data = small_mnist(256);
    for (api, mut gpu) in common::gpu_backends() {
        for steps in [1, 10] {
            let cpu_snapshot = run(&mut CpuBackend::new(), kind, steps, &data);
            let gpu_snapshot = run(&mut gpu, kind, steps, &data);
            compare(&api.to_string(), kind, steps, &cpu_snapshot, &gpu_snapshot);
        }
    }
}

/// Whole steps with each GPU matmul variant forced (on a hardware GPU `auto`
/// already mixes them; on a software adapter it runs only `direct`). The
/// deep model: LeakyReLU, dropout, tanh and four layers per network.
#[test]
fn forced_matmul_variants_match_the_cpu() {
    let _lock = common::gpu_test_lock();
    let data = small_mnist(256);
    let kind = ModelKind::Deep;
    let steps = 10;
    let cpu_snapshot = run(&mut CpuBackend::new(), kind, steps, &data);
    for variant in [
        MatmulVariant::Auto,
        MatmulVariant::Split,
        MatmulVariant::Blocked64,
        MatmulVariant::Blocked128,
    ] {
        let options = GpuOptions {
            matmul: Some(variant),
            ..GpuOptions::with_api(GpuApi::Vulkan)
        };
        let mut gpu = match GpuBackend::new(&options) {
            Ok(gpu) => gpu,
            Err(e) if !common::in_ci() => {
                eprintln!("skipped: no Vulkan adapter ({e})");
                return;
            }
            Err(e) => panic!("{e} (CI=true: GPU tests must run)"),
        };
        let gpu_snapshot = run(&mut gpu, kind, steps, &data);
        compare(variant.name(), kind, steps, &cpu_snapshot, &gpu_snapshot);
    }
}

/// Every progress report of a run.
#[derive(Default)]
struct Steps(Vec<Progress>);

impl Observer for Steps {
    fn on_progress(&mut self, progress: &Progress) {
        self.0.push(*progress);
    }
}

/// Epochs of several progress chunks (256 steps of batch 8; chunks of
/// `train::PROGRESS_CHUNK` = 128), where the GPU runs one chunk while the
/// next is recorded and progress reports a chunk once it has executed: the
/// reports still come in order, at every chunk's end, and the run matches
/// the CPU's across the epoch boundary.
#[test]
fn multi_chunk_epochs_report_executed_progress_and_match_the_cpu() {
    let _lock = common::gpu_test_lock();
    let data = small_mnist(2048);
    let (kind, steps) = (ModelKind::Vanilla, 300);
    let cpu_snapshot = run(&mut CpuBackend::new(), kind, steps, &data);
    for (api, mut gpu) in common::gpu_backends() {
        let mut progress = Steps::default();
        let gpu_snapshot = run_observed(&mut gpu, kind, steps, &data, &mut progress);
        compare(&api.to_string(), kind, steps, &cpu_snapshot, &gpu_snapshot);
        let seen: Vec<(usize, usize, usize)> = progress
            .0
            .iter()
            .map(|p| (p.epoch, p.step, p.run_step))
            .collect();
        assert_eq!(
            seen,
            [(1, 0, 0), (1, 128, 128), (1, 256, 256), (2, 44, 300)],
            "{api}"
        );
    }
}

#[test]
fn vanilla_steps_match_the_cpu() {
    parity(ModelKind::Vanilla);
}

#[test]
fn deep_steps_match_the_cpu() {
    parity(ModelKind::Deep);
}

#[test]
fn conditional_steps_match_the_cpu() {
    parity(ModelKind::Conditional);
}

#[test]
fn same_seed_gives_the_same_bits_on_the_gpu() {
    let _lock = common::gpu_test_lock();
    let data = small_mnist(256);
    let Some(mut first) = common::gpu_backend() else {
        return;
    };
    let mut second: GpuBackend =
        common::gpu_backend().expect("a second backend on the same adapter");
    for kind in [ModelKind::Vanilla, ModelKind::Deep, ModelKind::Conditional] {
        let a = run(&mut first, kind, 12, &data);
        let b = run(&mut second, kind, 12, &data);
        for ((name, x), (_, y)) in a.tensors.iter().zip(&b.tensors) {
            let same = x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(
                same,
                "{kind:?}: {name} differs between two runs with the same seed"
            );
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&a.stats),
            bits(&b.stats),
            "{kind:?}: losses differ between identical runs"
        );
    }
}
