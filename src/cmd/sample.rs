//! `gan-gpu sample`: the flags, read into [`gan_gpu::run::sample::SampleSettings`].

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use gan_gpu::run::sample::SampleSettings;
use gan_gpu::run::BackendChoice;

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// The checkpoint whose generator draws the images.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Number of images [default: 100, or every row of --noise].
    #[arg(long, value_name = "N")]
    n: Option<usize>,
    /// The generator's noise, from a float32 .npy of shape (N, noise dim), instead of --seed's:
    /// feed the same z to gan-gpu and PyTorch, or walk the latent space.
    #[arg(long, value_name = "FILE.npy", conflicts_with = "seed")]
    noise: Option<PathBuf>,
    /// Class of every image, for conditional models: a class name (a folder's name; the digits
    /// for MNIST) or an index [default: rows of ten cycle through the classes].
    #[arg(long, value_name = "CLASS")]
    label: Option<String>,
    /// Noise seed [default: the checkpoint's training seed, so 100 samples are its final.png].
    #[arg(long, value_name = "S")]
    seed: Option<u32>,
    /// Batch norm uses the statistics of each batch of up to 256 images drawn, as pytorch/examples
    /// draws its grids, instead of the running statistics (TensorFlow's training=False). Only
    /// models with batch norm (dcgan) draw differently.
    #[arg(long)]
    batch_stats: bool,
    /// Draw from the generator's own weights, not the moving average that a run trained with
    /// --ema keeps (and that sample uses by default).
    #[arg(long)]
    no_ema: bool,
    /// Where the generator runs.
    #[arg(long, value_parser = super::backend_parser(), default_value = "auto")]
    backend: BackendChoice,
    /// Output: .png (grid), .idx or .idx3-ubyte (IDX [N, rows, cols], grey only), .npy (uint8
    /// (N, rows, cols), or (N, rows, cols, 3) for RGB), or a directory ending in / (one PNG per
    /// image: what clean-fid and torch-fidelity read).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn sample(args: SampleArgs) -> Result<()> {
    let settings = SampleSettings {
        checkpoint: args.checkpoint,
        count: args.n,
        noise: args.noise,
        label: args.label,
        seed: args.seed,
        batch_stats: args.batch_stats,
        raw_generator: args.no_ema,
        backend: args.backend,
        out: args.out,
    };
    Ok(gan_gpu::run::sample::sample(&settings)?)
}
