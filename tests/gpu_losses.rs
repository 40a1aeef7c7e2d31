//! The losses since 2017 through whole training steps, on the GPU (Vulkan and
//! GL) against the CPU: least squares with Adam, hinge with two critic steps
//! and two learning rates, Wasserstein with its usual settings (RMSprop
//! at 5e-5, five critic steps, clipping at 0.01), and Wasserstein with the
//! gradient penalty and its usual settings (Adam at 1e-4 with betas (0.5,
//! 0.9), five critic steps, lambda 10), each after 1 and 10 steps
//! of a narrow vanilla model: every parameter of both networks, and the
//! loss and D-output sums; the hinge and Wasserstein runs keep the
//! generator's moving average (`--ema`), compared like the networks;
//! WGAN-GP also through the DCGAN's convolutional critic and the
//! conditional MLP's. And: the average follows its formula, and
//! checkpoints saved mid-run with five critic steps and an average (WGAN,
//! WGAN-GP on the CPU; the DCGAN's WGAN-GP on the GPU) resume to the
//! uninterrupted run's bits.
//!
//! Tolerance, as `tests/gpu_parity.rs` argues: the kernels match their CPU
//! twins to a few ulps and only the order of summation differs, so the
//! parameters differ by the rounding of the optimizer's moves. We accept
//! |gpu - cpu| <= 2e-3 * largest move * updates + 1e-4 |cpu|, where the
//! largest move is Adam's lr, or RMSprop's first-step lr / sqrt(1 - 0.99) =
//! 10 lr, and `updates` is the step count times the critic steps (D's
//! updates; G's are fewer). A wrong term or a wrong sign moves parameters by
//! a whole move at the first step and fails this at once.
//!
//! One allowance, as `tests/gpu_dcgan.rs` makes: where a gradient is within
//! rounding of Adam's eps, `g / (|g| + eps)` turns the backends' rounding
//! into a different move. The hinge run's second critic update, after 1
//! step, moved one bias of D's hidden layer (of 25,153 parameters) to
//! 2.3e-6 on the CPU and 6.9e-6 on Vulkan: its gradient was of the order of
//! eps. Each critic update is another chance for such a gradient: in the
//! wgan-gp run's first step (five critic updates) three biases of D's
//! hidden layer were outside, by up to 0.08 of a move; they are the same
//! three with the penalty at lambda 1e-9, so the loss's gradient, not the
//! penalty's, and in a one-critic-step run two of their gradients read
//! 3.5e-10 and 2.3e-10 on the CPU and exactly 0 on Vulkan (terms that
//! cancel, summed in different orders). So at most 1 element in 10,000 of a network per critic update
//! of a step may be outside the bound, each still within one largest move
//! per update of the CPU's.

mod common;

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::{stat, Backend};
use gan_gpu::checkpoint::Checkpoint;
use gan_gpu::data::{self, Dataset, Split};
use gan_gpu::model::{GameFlags, LossKind, ModelKind, ModelSpec, OptimizerKind, Overrides};
use gan_gpu::train::{TrainConfig, Trainer};

const RTOL: f32 = 1e-4;

fn data() -> Dataset {
    data::load_split(&data::bundled_dir(), Split::Train)
        .expect("bundled MNIST")
        .head(512)
}

fn spec(game: GameFlags) -> ModelSpec {
    let overrides = Overrides {
        batch_size: Some(8),
        g_hidden: Some(vec![32]),
        d_hidden: Some(vec![32]),
        game,
        ..Default::default()
    };
    ModelSpec::build(ModelKind::Vanilla, &overrides)
}

/// The tutorial's DCGAN with narrow feature maps (as tests/gpu_dcgan.rs
/// runs it) and `game`.
fn dcgan_spec(game: GameFlags) -> ModelSpec {
    let overrides = Overrides {
        batch_size: Some(8),
        g_hidden: Some(vec![16, 8, 8]),
        d_hidden: Some(vec![8, 16]),
        game,
        ..Default::default()
    };
    ModelSpec::build(ModelKind::Dcgan, &overrides)
}

/// A run's config; each gets its own output folder (the tests run in
/// parallel).
fn config(spec: &ModelSpec, steps: usize, tag: &str) -> TrainConfig {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    TrainConfig {
        spec: spec.clone(),
        seed: 4,
        out_dir: std::env::temp_dir()
            .join(format!("gan-gpu-losses-{tag}-{n}-{}", std::process::id())),
        sample_every: 1000,
        max_steps: Some(steps),
        grid_batch_stats: false,
    }
}

/// The state after `steps` steps.
fn run<B: Backend>(backend: &mut B, spec: &ModelSpec, steps: usize, data: &Dataset) -> Checkpoint {
    let config = config(spec, steps, "run");
    let out = config.out_dir.clone();
    let mut trainer = Trainer::new(backend, config, data).unwrap();
    let summary = trainer.run(|_| {}).unwrap();
    assert_eq!(summary.steps, steps);
    let state = trainer.capture(0).unwrap();
    drop(trainer);
    std::fs::remove_dir_all(out).ok();
    state
}

fn compare(label: &str, spec: &ModelSpec, steps: usize, cpu: &Checkpoint, gpu: &Checkpoint) {
    let largest_move = match spec.game.optimizer {
        OptimizerKind::Adam => spec.game.lr_g.max(spec.game.lr_d),
        OptimizerKind::RmsProp => 10.0 * spec.game.lr_g.max(spec.game.lr_d),
    };
    let atol = 2e-3 * largest_move * (steps * spec.game.n_critic) as f32;
    let mut failures = Vec::new();
    assert_eq!(cpu.generator_ema.is_some(), spec.game.ema.is_some());
    assert_eq!(gpu.generator_ema.is_some(), spec.game.ema.is_some());
    let averages = cpu.generator_ema.iter().zip(&gpu.generator_ema);
    // The average moves by (1 - decay) of the generator's differences, so
    // the generator's bound holds for it.
    for (net, c, g) in [
        ("generator", &cpu.generator, &gpu.generator),
        ("discriminator", &cpu.discriminator, &gpu.discriminator),
    ]
    .into_iter()
    .chain(averages.map(|(c, g)| ("generator average", c, g)))
    {
        let excess: Vec<(usize, f32)> = c
            .params
            .iter()
            .zip(&g.params)
            .map(|(a, b)| (a - b).abs() - (atol + RTOL * a.abs()))
            .enumerate()
            .filter(|(_, e)| e.is_nan() || *e > 0.0)
            .collect();
        let updates = (steps * spec.game.n_critic) as f32;
        let far = excess.iter().any(|&(i, _)| {
            let d = (c.params[i] - g.params[i]).abs();
            d.is_nan() || d > largest_move * updates
        });
        if excess.len() > c.params.len() * spec.game.n_critic / 10_000 || far {
            let (i, e) = excess[0];
            failures.push(format!("{net}: {} of {} outside, first [{i}] cpu {} gpu {} excess {e:e} over {atol:e} + {RTOL} |cpu|", excess.len(), c.params.len(), c.params[i], g.params[i]));
        }
    }
    for slot in [stat::D_LOSS, stat::G_LOSS, stat::D_REAL, stat::D_FAKE] {
        let (a, b) = (cpu.stats[slot as usize], gpu.stats[slot as usize]);
        if (a - b).is_nan() || (a - b).abs() > 1e-4 * steps as f32 + 1e-4 * a.abs() {
            failures.push(format!("stat {slot}: cpu {a} gpu {b}"));
        }
    }
    assert!(failures.is_empty(), "{label}:\n{}", failures.join("\n"));
    println!("{label}: within {atol:.1e} + {RTOL} |cpu|");
}

fn games() -> [(&'static str, GameFlags); 4] {
    [
        (
            "lsgan",
            GameFlags {
                loss: Some(LossKind::Lsgan),
                ..Default::default()
            },
        ),
        (
            "hinge, 2 critic steps, lr_d 4e-4, EMA 0.9",
            GameFlags {
                loss: Some(LossKind::Hinge),
                n_critic: Some(2),
                lr_d: Some(4e-4),
                ema: Some(0.9),
                ..Default::default()
            },
        ),
        (
            "wgan (RMSprop 5e-5, 5 critic steps, clip 0.01), EMA 0.99",
            GameFlags {
                loss: Some(LossKind::Wgan),
                ema: Some(0.99),
                ..Default::default()
            },
        ),
        (
            "wgan-gp (Adam 1e-4, betas (0.5, 0.9), 5 critic steps, lambda 10)",
            GameFlags {
                loss: Some(LossKind::WganGp),
                ..Default::default()
            },
        ),
    ]
}

#[test]
fn every_loss_trains_alike_on_the_gpu_and_the_cpu() {
    let _lock = common::gpu_test_lock();
    let data = data();
    for (name, game) in games() {
        let spec = spec(game);
        let cpu: Vec<Checkpoint> = [1, 10]
            .map(|steps| run(&mut CpuBackend::new(), &spec, steps, &data))
            .into();
        // The critic's clipping holds every weight at 0.01 or below.
        if let Some(limit) = spec.game.clip {
            assert!(cpu[1].discriminator.params.iter().all(|v| v.abs() <= limit));
        }
        for (api, _) in common::gpu_backends() {
            for (i, steps) in [1, 10].into_iter().enumerate() {
                let mut gpu = gan_gpu::backend::gpu::GpuBackend::with_api(api).unwrap();
                let on_gpu = run(&mut gpu, &spec, steps, &data);
                compare(
                    &format!("{name} on {api:?} after {steps} steps"),
                    &spec,
                    steps,
                    &cpu[i],
                    &on_gpu,
                );
            }
        }
    }
}

/// WGAN-GP through a convolutional critic with dropout (the DCGAN's:
/// convolutions, LeakyReLU, dropout, a Linear), its generator's batch norm
/// and a generator average; and through the conditional MLP critic, whose
/// one-hot columns are interpolated with the images and whose G step
/// copies the generated rows for the layer-network critic. The same bounds
/// as the MLP games. Two critic steps, not the usual five, keep it short
/// on lavapipe and llvmpipe (the penalty's streams of a second critic step
/// are still exercised).
#[test]
fn wgan_gp_dcgan_and_conditional_train_alike_on_the_gpu_and_the_cpu() {
    let _lock = common::gpu_test_lock();
    let data = data();
    let game = GameFlags {
        loss: Some(LossKind::WganGp),
        n_critic: Some(2),
        ema: Some(0.9),
        ..Default::default()
    };
    let conditional = ModelSpec::build(
        ModelKind::Conditional,
        &Overrides {
            batch_size: Some(8),
            g_hidden: Some(vec![32]),
            d_hidden: Some(vec![32]),
            game,
            ..Default::default()
        },
    );
    for (name, spec) in [("dcgan", dcgan_spec(game)), ("conditional", conditional)] {
        let cpu: Vec<Checkpoint> = [1, 10]
            .map(|steps| run(&mut CpuBackend::new(), &spec, steps, &data))
            .into();
        for (api, _) in common::gpu_backends() {
            for (i, steps) in [1, 10].into_iter().enumerate() {
                let mut gpu = gan_gpu::backend::gpu::GpuBackend::with_api(api).unwrap();
                let on_gpu = run(&mut gpu, &spec, steps, &data);
                compare(
                    &format!("{name} wgan-gp on {api:?} after {steps} steps"),
                    &spec,
                    steps,
                    &cpu[i],
                    &on_gpu,
                );
            }
        }
    }
}

/// The average after one step is `decay * initial + (1 - decay) * trained`
/// for every generator weight, computed here in f64 from the generator
/// before and after the step; and it is not the generator itself.
#[test]
fn the_generator_average_follows_its_formula() {
    let data = data();
    let spec = spec(games()[1].1);
    let decay = f64::from(spec.game.ema.unwrap());
    let mut backend = CpuBackend::new();
    let trainer = Trainer::new(&mut backend, config(&spec, 1, "ema0"), &data).unwrap();
    let mut trainer = trainer;
    let before = trainer.capture(0).unwrap();
    drop(trainer);
    assert_eq!(
        before.generator_ema.as_ref().unwrap().params,
        before.generator.params,
        "the average starts as the generator"
    );
    let after = run(&mut CpuBackend::new(), &spec, 1, &data);
    let average = &after.generator_ema.as_ref().unwrap().params;
    let mut moved = 0;
    for ((&a, &w0), &w1) in average
        .iter()
        .zip(&before.generator.params)
        .zip(&after.generator.params)
    {
        let expected = decay * f64::from(w0) + (1.0 - decay) * f64::from(w1);
        // Two f32 roundings of terms at most |w|: a few ulps of the weight.
        let ulps = 4.0 * f64::from(f32::EPSILON) * f64::from(w0.abs().max(w1.abs()));
        assert!((f64::from(a) - expected).abs() <= ulps, "{a} vs {expected}");
        moved += usize::from(w0 != w1 && a != w1);
    }
    assert!(
        moved > average.len() / 2,
        "the average is not the generator"
    );
}

/// A run of `spec` saved after 3 steps and resumed to 6 ends at the bits of
/// an uninterrupted 6-step run on the same backend: both networks, the
/// average and the optimizer's moments, and the clock.
fn resumes_to_the_same_bits<B: Backend>(mut new_backend: impl FnMut() -> B, spec: &ModelSpec) {
    let data = data();
    let straight = run(&mut new_backend(), spec, 6, &data);
    // 3 steps, a checkpoint, then 3 more from it.
    let mut backend = new_backend();
    let first_half = config(spec, 3, "first");
    let out = first_half.out_dir.clone();
    let mut first = Trainer::new(&mut backend, first_half, &data).unwrap();
    first.run(|_| {}).unwrap();
    let saved = first.capture(0).unwrap();
    let path = out.join("checkpoint.safetensors");
    std::fs::create_dir_all(&out).unwrap();
    saved.save(&path).unwrap();
    drop(first);
    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(loaded.settings.n_critic, spec.game.n_critic);
    assert_eq!(loaded.settings.loss, spec.game.loss.name());
    assert_eq!(loaded.settings.ema, spec.game.ema);
    assert_eq!(loaded.settings.gp_weight, spec.game.gp_weight);
    let mut backend = new_backend();
    let mut resumed = Trainer::resume(
        &mut backend,
        config(spec, 6, "second"),
        &data,
        &loaded,
        &path,
    )
    .unwrap();
    resumed.run(|_| {}).unwrap();
    let end = resumed.capture(0).unwrap();
    let (Some(straight_average), Some(end_average)) = (&straight.generator_ema, &end.generator_ema)
    else {
        panic!("the run keeps the generator's average")
    };
    for (a, b) in [
        (&straight.generator, &end.generator),
        (&straight.discriminator, &end.discriminator),
        (straight_average, end_average),
    ] {
        for (x, y) in [
            (&a.params, &b.params),
            (&a.adam_m, &b.adam_m),
            (&a.adam_v, &b.adam_v),
            (&a.buffers, &b.buffers),
        ] {
            assert!(x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }
    assert_eq!(straight.clock, end.clock);
    assert_eq!(straight.stats, end.stats);
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn wgan_and_wgan_gp_runs_resume_mid_epoch_to_the_same_bits() {
    resumes_to_the_same_bits(CpuBackend::new, &spec(games()[2].1));
    let gp = GameFlags {
        ema: Some(0.99),
        ..games()[3].1
    };
    resumes_to_the_same_bits(CpuBackend::new, &spec(gp));
}

/// The DCGAN's WGAN-GP on the GPU: the penalty's interpolation shares and
/// dropout masks are drawn from the clock, so a resumed run draws them again.
#[test]
fn a_gpu_wgan_gp_dcgan_run_resumes_mid_epoch_to_the_same_bits() {
    let _lock = common::gpu_test_lock();
    let spec = dcgan_spec(GameFlags {
        loss: Some(LossKind::WganGp),
        n_critic: Some(2),
        ema: Some(0.95),
        ..Default::default()
    });
    resumes_to_the_same_bits(|| common::gpu_backend().expect("a GPU backend"), &spec);
}
