//! `gan-gpu eval`: the flags, read into [`gan_gpu::run::eval::EvalSettings`].

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use gan_gpu::run::eval::EvalSettings;
use gan_gpu::run::BackendChoice;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["checkpoint", "images"])))]
pub struct EvalArgs {
    /// A generator checkpoint: --n images (default 10000) from its generator are measured.
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Images to evaluate: IDX (.idx, .idx3-ubyte, raw or .gz) or .npy uint8, (N, H, W) grey or
    /// (N, H, W, 3) RGB, in the shape of the IDX test set (a folder is decoded in the images'
    /// shape: square ones scaled and centre-cropped to their size, in their channels).
    #[arg(long, value_name = "FILE")]
    images: Option<PathBuf>,
    /// The class requested for each image (IDX labels or .npy uint8 of length N), for label
    /// accuracy.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// Evaluate the first N images [default: all].
    #[arg(long, value_name = "N")]
    n: Option<usize>,
    /// Where the classifier runs [default: auto = a hardware GPU, else the CPU].
    #[arg(long, value_parser = super::backend_parser(), default_value = "auto")]
    backend: BackendChoice,
    /// The classifier cache file [default: one per training set under ~/.cache/gan-gpu/].
    #[arg(long, value_name = "PATH")]
    classifier: Option<PathBuf>,
    /// Directory with the four MNIST-format IDX files (MNIST, Fashion-MNIST, ...), or a labelled
    /// folder of images (one subfolder per class): the classifier trains on its training set (a
    /// folder's every image but each class's every 10th), the images are measured against its test
    /// set (the IDX test files, or a folder's held-back every 10th image) [default: the
    /// checkpoint's training data, else the bundled MNIST].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Measure a checkpoint's generator by its own weights, not the moving average that a run
    /// trained with --ema keeps (and that eval uses by default).
    #[arg(long)]
    no_ema: bool,
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let settings = EvalSettings {
        checkpoint: args.checkpoint,
        images: args.images,
        labels: args.labels,
        n: args.n,
        backend: args.backend,
        classifier: args.classifier,
        data: args.data,
        raw_generator: args.no_ema,
    };
    Ok(gan_gpu::run::eval::eval(&settings)?)
}
