//! `gan-gpu train`: the flags of a training run, read into
//! [`gan_gpu::run::TrainSettings`]; the run is [`gan_gpu::run::train`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use gan_gpu::model::{GameFlags, LossKind, ModelKind, OptimizerKind, Overrides, Widths};
use gan_gpu::run::{self, BackendChoice, RunEnd, TrainSettings};

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Which GAN to train [default: vanilla; on --resume: the checkpoint's].
    #[arg(long, value_parser = super::model_parser())]
    model: Option<ModelKind>,
    /// Continue the run saved in this checkpoint (flags that shape the model must agree with it).
    #[arg(long, value_name = "PATH")]
    resume: Option<PathBuf>,
    /// Where the tensor ops run.
    #[arg(long, value_parser = super::backend_parser(), default_value = "auto")]
    backend: BackendChoice,
    /// Directory with the four MNIST-format IDX files (raw or .gz), or any folder of images (PNG,
    /// JPEG, BMP, GIF, WebP; subfolders of images are classes) [default: the bundled MNIST].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// For a folder of images: scale each image's shorter side to N and crop the centre N x N
    /// (torchvision's Resize + CenterCrop) [default: the images' own size, which must be shared].
    #[arg(long, value_name = "N")]
    image_size: Option<usize>,
    /// For a folder of images: 1 (grey) or 3 (RGB); alpha is composited over black [default: 1
    /// if every image is stored grey, else 3].
    #[arg(long, value_name = "C")]
    channels: Option<usize>,
    /// Output directory [default: samples/<model>; on --resume: the checkpoint's directory].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write a sample grid every N epochs [default: 10; on --resume: the checkpoint's].
    #[arg(long, value_name = "N")]
    sample_every: Option<usize>,
    /// Write checkpoint.safetensors every N epochs (and at the end, and on Ctrl-C, SIGTERM or SIGHUP)
    /// [default: 10; on --resume: the checkpoint's].
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Stop after N training steps in total (smoke tests).
    #[arg(long, value_name = "N")]
    max_steps: Option<usize>,
    /// Epochs to train [model default: 100; dcgan 50].
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Images per batch [model default].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Learning rate of both networks [model default: 2e-4; dcgan 1e-4; --loss wgan 5e-5;
    /// wgan-gp 1e-4].
    #[arg(long, value_name = "F")]
    lr: Option<f32>,
    /// The generator's learning rate [--lr].
    #[arg(long, value_name = "F")]
    lr_g: Option<f32>,
    /// The discriminator's learning rate [--lr] (two time-scale updates, TTUR).
    #[arg(long, value_name = "F")]
    lr_d: Option<f32>,
    /// The GAN loss, computed from D's raw output [default: bce].
    #[arg(long, value_parser = super::loss_parser())]
    loss: Option<LossKind>,
    /// Discriminator (critic) steps per generator step, each on a fresh real batch [1; --loss
    /// wgan and wgan-gp 5].
    #[arg(long, value_name = "N")]
    n_critic: Option<usize>,
    /// The optimizer of both networks [adam; --loss wgan rmsprop].
    #[arg(long, value_parser = super::optimizer_parser())]
    optimizer: Option<OptimizerKind>,
    /// --loss wgan: clip every critic weight to [-C, C] after each critic update [0.01].
    #[arg(long, value_name = "C")]
    clip: Option<f32>,
    /// --loss wgan-gp: the gradient penalty's weight lambda [10].
    #[arg(long, value_name = "F")]
    gp_weight: Option<f32>,
    /// Keep an exponential moving average of the generator's weights with this decay (e.g.
    /// 0.999), updated after each generator step; grids, `sample` and `eval` draw from it.
    #[arg(long, value_name = "DECAY")]
    ema: Option<f32>,
    /// Adam beta1 [model default; --loss wgan-gp 0.5].
    #[arg(long, value_name = "F")]
    beta1: Option<f32>,
    /// Adam beta2 [default: 0.999; --loss wgan-gp 0.9].
    #[arg(long, value_name = "F")]
    beta2: Option<f32>,
    /// Width of the noise vector z [model default].
    #[arg(long, value_name = "N")]
    noise_dim: Option<usize>,
    /// Generator hidden widths, comma-separated, e.g. 256,512,1024; for dcgan and dcgan64 the
    /// feature maps' channels (3 and 4 of them) [model default].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    g_hidden: Option<Vec<usize>>,
    /// Discriminator hidden widths, comma-separated; for dcgan and dcgan64 the feature maps'
    /// channels (2 and 4 of them) [model default].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    d_hidden: Option<Vec<usize>>,
    /// dcgan64: pytorch/examples' ngf, the generator's width (channels 8, 4, 2, 1 x N) [64].
    #[arg(long, value_name = "N", conflicts_with = "g_hidden")]
    ngf: Option<usize>,
    /// dcgan64: pytorch/examples' ndf, the discriminator's width (channels 1, 2, 4, 8 x N) [64].
    #[arg(long, value_name = "N", conflicts_with = "d_hidden")]
    ndf: Option<usize>,
    /// Random seed: the same seed gives the same images [default: 1; on --resume: the checkpoint's].
    #[arg(long, value_name = "N")]
    seed: Option<u32>,
    /// No progress bar and no start line: only one line per epoch and the summary.
    #[arg(long, short)]
    quiet: bool,
    /// Measure the generator (FID, classifier score, coverage, label accuracy) every N epochs and after the last.
    #[arg(long, value_name = "N")]
    eval_every: Option<usize>,
    /// Images generated for each measurement.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    eval_count: usize,
    /// The classifier cache file for --eval-every [default: as `gan-gpu eval`].
    #[arg(long, value_name = "PATH")]
    classifier: Option<PathBuf>,
    /// Draw the sample grids with each batch's own batch-norm statistics, as pytorch/examples
    /// does, instead of the running statistics (TensorFlow's training=False). Only models with
    /// batch norm (dcgan) draw differently; measurements always use the running statistics.
    #[arg(long)]
    batch_stats: bool,
}

pub fn train(args: TrainArgs) -> Result<ExitCode> {
    let settings = TrainSettings {
        model: args.model,
        resume: args.resume,
        backend: args.backend,
        data: args.data,
        image_size: args.image_size,
        channels: args.channels,
        out: args.out,
        sample_every: args.sample_every,
        checkpoint_every: args.checkpoint_every,
        max_steps: args.max_steps,
        overrides: Overrides {
            epochs: args.epochs,
            batch_size: args.batch_size,
            lr: args.lr,
            beta1: args.beta1,
            beta2: args.beta2,
            noise_dim: args.noise_dim,
            g_hidden: args.g_hidden,
            d_hidden: args.d_hidden,
            image: None,
            class_names: None,
            game: GameFlags {
                loss: args.loss,
                n_critic: args.n_critic,
                optimizer: args.optimizer,
                lr: None,
                lr_g: args.lr_g,
                lr_d: args.lr_d,
                clip: args.clip,
                ema: args.ema,
                gp_weight: args.gp_weight,
            },
        },
        widths: Widths {
            ngf: args.ngf,
            ndf: args.ndf,
        },
        seed: args.seed,
        quiet: args.quiet,
        eval_every: args.eval_every,
        eval_count: args.eval_count,
        classifier: args.classifier,
        batch_stats: args.batch_stats,
    };
    Ok(match run::train(settings)? {
        RunEnd::Finished => ExitCode::SUCCESS,
        RunEnd::Stopped { exit_code } => ExitCode::from(exit_code),
    })
}
