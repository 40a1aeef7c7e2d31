//! `gan-gpu bench`: the flags, read into [`gan_gpu::run::bench::BenchSettings`].

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use gan_gpu::backend::gpu::MatmulVariant;
use gan_gpu::model::{GameFlags, LossKind, ModelKind, Widths};
use gan_gpu::run::bench::BenchSettings;
use gan_gpu::run::BackendChoice;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Where the tensor ops run (auto: the best GPU adapter, else the CPU).
    #[arg(long, value_parser = super::backend_parser(), default_value = "auto")]
    backend: BackendChoice,
    /// Which tutorial GAN.
    #[arg(long, value_parser = super::model_parser(), default_value = "vanilla")]
    model: ModelKind,
    /// Images per batch [model default].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// The GAN loss (its usual optimizer and critic steps) [bce].
    #[arg(long, value_parser = super::loss_parser())]
    loss: Option<LossKind>,
    /// Discriminator (critic) steps per generator step [the loss's].
    #[arg(long, value_name = "N")]
    n_critic: Option<usize>,
    /// dcgan64: pytorch/examples' generator width ngf [64].
    #[arg(long, value_name = "N")]
    ngf: Option<usize>,
    /// dcgan64: pytorch/examples' discriminator width ndf [64].
    #[arg(long, value_name = "N")]
    ndf: Option<usize>,
    /// Timed training steps.
    #[arg(long, value_name = "N", default_value_t = 200)]
    steps: usize,
    /// Untimed steps first (pipeline warm-up, bind group creation, caches).
    #[arg(long, value_name = "N", default_value_t = 20)]
    warmup: usize,
    /// Directory with the MNIST IDX files, or a folder of images [default: the bundled MNIST;
    /// made-up images for dcgan64].
    #[arg(long, value_name = "DIR", conflicts_with = "synthetic")]
    data: Option<PathBuf>,
    /// Use 6000 made-up images of the model's shape instead of MNIST (no data loading; same work
    /// per step).
    #[arg(long)]
    synthetic: bool,
    /// Wait for the device every N timed steps, as training does every 128
    /// for its progress display [default: only at the end].
    #[arg(long, value_name = "N")]
    sync_every: Option<usize>,
    /// GPU only: submit the recorded work every N steps [default: 32].
    #[arg(long, value_name = "N")]
    steps_per_submit: Option<u32>,
    /// GPU only: after the timed steps, time every dispatch of N more steps
    /// on the GPU (timestamp queries) and print where a step's time goes
    #[arg(long, value_name = "N")]
    profile: Option<usize>,
    /// Also keep the generator's moving average with this decay (what --ema costs a step).
    #[arg(long, value_name = "DECAY")]
    ema: Option<f32>,
    /// GPU only: the matmul kernels: auto, tiled, blocked64, blocked128 or
    /// direct [default: direct on CPU adapters, else auto (per product)]
    #[arg(long, value_name = "VARIANT", value_parser = MatmulVariant::parse)]
    matmul: Option<MatmulVariant>,
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let settings = BenchSettings {
        backend: args.backend,
        model: args.model,
        batch_size: args.batch_size,
        steps: args.steps,
        warmup: args.warmup,
        widths: Widths {
            ngf: args.ngf,
            ndf: args.ndf,
        },
        game: GameFlags {
            loss: args.loss,
            n_critic: args.n_critic,
            ema: args.ema,
            ..Default::default()
        },
        data: args.data,
        synthetic: args.synthetic,
        sync_every: args.sync_every,
        steps_per_submit: args.steps_per_submit,
        profile: args.profile,
        matmul: args.matmul,
    };
    Ok(gan_gpu::run::bench::bench(&settings)?)
}
