//! Training on the CPU reference: the same seed gives the same bits, another
//! seed gives other numbers, and a short run writes its sample grids.

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::Backend;
use gan_gpu::data::{self, Dataset, Split};
use gan_gpu::model::{ModelKind, ModelSpec, Overrides};
use gan_gpu::output::RunRecord;
use gan_gpu::train::{EpochReport, OnEpoch, TrainConfig, Trainer};

/// The first `n` images of the bundled MNIST training set.
fn small_mnist(n: usize) -> Dataset {
    data::load_split(&data::bundled_dir(), Split::Train)
        .expect("bundled MNIST")
        .head(n)
}

fn config(kind: ModelKind, seed: u32, out: &str) -> TrainConfig {
    let overrides = Overrides {
        batch_size: Some(8),
        epochs: Some(2),
        g_hidden: Some(vec![32]),
        d_hidden: Some(vec![32]),
        ..Default::default()
    };
    TrainConfig {
        spec: ModelSpec::build(kind, &overrides),
        seed,
        out_dir: std::env::temp_dir().join(format!("gan-gpu-test-{}-{out}", std::process::id())),
        sample_every: 1,
        max_steps: None,
        grid_batch_stats: false,
    }
}

/// Trains and returns (generator params, discriminator params, sample bytes).
fn train(kind: ModelKind, seed: u32, out: &str, data: &Dataset) -> (Vec<f32>, Vec<f32>, Vec<u8>) {
    let mut backend = CpuBackend::new();
    let cfg = config(kind, seed, out);
    let dir = cfg.out_dir.clone();
    let mut trainer = Trainer::new(&mut backend, cfg, data).unwrap();
    let summary = trainer.run(|_| {}).unwrap();
    assert_eq!(summary.steps, 2 * (data.count / 8));
    assert!(summary
        .reports
        .iter()
        .all(|r| r.d_loss.is_finite() && r.g_loss.is_finite()));
    let images = trainer.sample_images().unwrap();
    let (g, d) = (
        trainer.state.generator.mlp().unwrap().params,
        trainer.state.discriminator.mlp().unwrap().params,
    );
    let (g, d) = (backend.read(g).unwrap(), backend.read(d).unwrap());
    std::fs::remove_dir_all(dir).ok();
    (g, d, images)
}

#[test]
fn same_seed_same_bits_other_seed_other_numbers() {
    let data = small_mnist(64);
    for kind in [ModelKind::Vanilla, ModelKind::Deep, ModelKind::Conditional] {
        let a = train(kind, 7, &format!("{kind:?}-a"), &data);
        let b = train(kind, 7, &format!("{kind:?}-b"), &data);
        let c = train(kind, 8, &format!("{kind:?}-c"), &data);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&a.0),
            bits(&b.0),
            "{kind:?}: generator differs between identical runs"
        );
        assert_eq!(
            bits(&a.1),
            bits(&b.1),
            "{kind:?}: discriminator differs between identical runs"
        );
        assert_eq!(
            a.2, b.2,
            "{kind:?}: sample images differ between identical runs"
        );
        assert_ne!(a.0, c.0, "{kind:?}: another seed gave the same generator");
    }
}

#[test]
fn a_short_run_writes_sample_grids() {
    let data = small_mnist(32);
    let mut backend = CpuBackend::new();
    let mut cfg = config(ModelKind::Conditional, 1, "grids");
    cfg.spec.epochs = 3;
    cfg.sample_every = 2;
    let dir = cfg.out_dir.clone();
    // The trainer says when a grid is due; the run record writes it.
    let mut record = RunRecord::new(&dir, &cfg.spec, &data, cfg.seed).unwrap();
    let mut reports = Vec::new();
    Trainer::new(&mut backend, cfg, &data)
        .unwrap()
        .run_observed(&mut (
            &mut OnEpoch(|r: &EpochReport| reports.push(r.clone())),
            &mut record,
        ))
        .unwrap();
    record.finish().unwrap();
    assert_eq!(reports.len(), 3);
    let names: Vec<String> = record
        .grids()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "epoch_000.png",
            "epoch_002.png",
            "epoch_003.png",
            "final.png"
        ]
    );
    let grid = image::open(dir.join("final.png")).unwrap();
    // 10 cells of 28 px at scale 2, with 2 px gutters between cells.
    assert_eq!(
        (grid.width(), grid.height()),
        (10 * 56 + 9 * 2, 10 * 56 + 9 * 2)
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn max_steps_ends_the_run_early() {
    let data = small_mnist(64);
    let mut backend = CpuBackend::new();
    let mut cfg = config(ModelKind::Vanilla, 1, "max-steps");
    cfg.max_steps = Some(11);
    let dir = cfg.out_dir.clone();
    let summary = Trainer::new(&mut backend, cfg, &data)
        .unwrap()
        .run(|_| {})
        .unwrap();
    assert_eq!(summary.steps, 11);
    assert_eq!(
        summary.reports.iter().map(|r| r.steps).collect::<Vec<_>>(),
        [8, 3]
    );
    std::fs::remove_dir_all(dir).ok();
}
