//! The three MLP models, pinned: each model at its tutorial settings (full
//! widths, its own batch size), trained 5 steps on the CPU reference from the
//! first 1,280 bundled MNIST images, must give the losses and the parameters
//! recorded here before the layers redesign. A change to how a model is
//! built or stepped that moves any bit of them fails this test.
//!
//! Bit for bit where the pins were recorded: x86_64 with AVX2 and FMA, where
//! `matrixmultiply` runs its FMA kernel. Elsewhere its other kernels sum in
//! another order, so the losses and the parameter sums are compared within
//! 1e-4 relative and the bit checksums are not. That is far below what a
//! wrong layer or a missed step moves: measured from step 4 to step 5 of
//! these runs, each loss moved by at least 0.75% and each network's
//! parameter sum by at least 9.7% (the sums of squares move less, down to
//! 8e-5 relative, so they are compared but not relied on).

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::Backend;
use gan_gpu::data::{self, Split};
use gan_gpu::model::{ModelKind, ModelSpec, Overrides};
use gan_gpu::train::{TrainConfig, Trainer};
use gan_gpu::util::{fnv1a, FNV_OFFSET};

const STEPS: usize = 5;

/// What a run leaves: per-step-mean D and G losses of the (partial) epoch,
/// and per network the FNV-1a of its parameters' bits, their sum and their
/// sum of squares.
#[derive(Debug, PartialEq)]
struct Pin {
    d_loss: f32,
    g_loss: f32,
    generator: (u64, f64, f64),
    discriminator: (u64, f64, f64),
}

fn summary(params: &[f32]) -> (u64, f64, f64) {
    let bits: Vec<u8> = params
        .iter()
        .flat_map(|v| v.to_bits().to_le_bytes())
        .collect();
    let sum = params.iter().map(|&v| f64::from(v)).sum();
    let squares = params.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    (fnv1a(FNV_OFFSET, &bits), sum, squares)
}

fn run(kind: ModelKind) -> Pin {
    let data = data::load_split(&data::bundled_dir(), Split::Train)
        .expect("bundled MNIST")
        .head(1280);
    let config = TrainConfig {
        spec: ModelSpec::build(kind, &Overrides::default()),
        seed: 1,
        out_dir: std::env::temp_dir().join(format!(
            "gan-gpu-pinned-{}-{}",
            std::process::id(),
            kind.name()
        )),
        sample_every: 1_000,
        max_steps: Some(STEPS),
        grid_batch_stats: false,
    };
    let dir = config.out_dir.clone();
    let mut backend = CpuBackend::new();
    let mut trainer = Trainer::new(&mut backend, config, &data).unwrap();
    let report = trainer.run(|_| {}).unwrap().reports.pop().unwrap();
    let (g, d) = (
        trainer.state.generator.mlp().unwrap().params,
        trainer.state.discriminator.mlp().unwrap().params,
    );
    drop(trainer);
    std::fs::remove_dir_all(dir).ok();
    Pin {
        d_loss: report.d_loss,
        g_loss: report.g_loss,
        generator: summary(&backend.read(g).unwrap()),
        discriminator: summary(&backend.read(d).unwrap()),
    }
}

fn recorded_here() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn check(kind: ModelKind, pinned: Pin) {
    let got = run(kind);
    eprintln!("{kind:?}: {got:?}");
    if recorded_here() {
        assert_eq!(got, pinned, "{kind:?} moved from its pinned numbers");
        return;
    }
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * b.abs().max(1e-3);
    assert!(
        close(got.d_loss.into(), pinned.d_loss.into()),
        "{kind:?}: D loss"
    );
    assert!(
        close(got.g_loss.into(), pinned.g_loss.into()),
        "{kind:?}: G loss"
    );
    for (name, a, b) in [
        ("generator", got.generator, pinned.generator),
        ("discriminator", got.discriminator, pinned.discriminator),
    ] {
        assert!(close(a.1, b.1), "{kind:?}: {name} parameter sum");
        assert!(close(a.2, b.2), "{kind:?}: {name} sum of squares");
    }
}

#[test]
fn vanilla_is_pinned() {
    check(ModelKind::Vanilla, PIN_VANILLA);
}

#[test]
fn deep_is_pinned() {
    check(ModelKind::Deep, PIN_DEEP);
}

#[test]
fn conditional_is_pinned() {
    check(ModelKind::Conditional, PIN_CONDITIONAL);
}

// Recorded at commit 7e63585 (after the restructuring, before the layers redesign;
// the same bits as 4300f01: checkpoints of all three models compared tensor by tensor) on the 2-core
// x86_64 development machine (AVX2, FMA).
const PIN_VANILLA: Pin = Pin {
    d_loss: 1.3295597,
    g_loss: 0.78503597,
    generator: (9237523030167009647, -53.838731220742375, 23.461949784104853),
    discriminator: (7057954551129960511, -0.561415632667682, 20.343147820123093),
};
const PIN_DEEP: Pin = Pin {
    d_loss: 1.2859339,
    g_loss: 0.65906686,
    generator: (
        11548975258513216172,
        -42.584597585055235,
        2054.0893124640334,
    ),
    discriminator: (7885082410361645969, -13.72343644786838, 1915.3810523160903),
};
const PIN_CONDITIONAL: Pin = Pin {
    d_loss: 1.2764374,
    g_loss: 1.0508977,
    generator: (8242854428530878893, -56.23335230034354, 2075.3108338551083),
    discriminator: (7724113005788115603, 14.063985286681145, 517.2444558331745),
};
