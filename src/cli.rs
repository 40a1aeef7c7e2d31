//! Command-line interface: flags -> validated configuration -> a subcommand.
//! Parsing and dispatch only; the work is in the library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::gpu::{list_adapters, GpuApi, GpuBackend, GpuOptions};
use gan_gpu::backend::Backend;
use gan_gpu::data;
use gan_gpu::model::{ModelKind, ModelSpec, Overrides};
use gan_gpu::output::{Console, ConsoleMode, RunRecord};
use gan_gpu::train::{TrainConfig, Trainer};

/// Train the GANs of the classic MNIST tutorials on any GPU through wgpu.
#[derive(Parser, Debug)]
#[command(name = "gan-gpu", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a GAN and write sample grids.
    Train(TrainArgs),
    /// List every GPU adapter wgpu can see, with the limits that matter.
    Info,
}

/// Where the tensor ops run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// The best GPU adapter; the CPU path if there is none.
    Auto,
    Vulkan,
    Metal,
    Dx12,
    Gl,
    /// The plain-Rust CPU reference.
    Cpu,
}

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
struct TrainArgs {
    /// Which tutorial GAN to train.
    #[arg(long, value_enum, default_value_t = ModelKind::Vanilla)]
    model: ModelKind,
    /// Where the tensor ops run.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Directory with the four MNIST-format IDX files (raw or .gz) [default: the bundled MNIST].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Output directory [default: samples/<model>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write a sample grid every N epochs.
    #[arg(long, value_name = "N", default_value_t = 10)]
    sample_every: usize,
    /// Stop after N training steps in total (smoke tests).
    #[arg(long, value_name = "N")]
    max_steps: Option<usize>,
    /// Epochs to train [model default: 100].
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Images per batch [model default].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Adam learning rate [model default: 2e-4].
    #[arg(long, value_name = "F")]
    lr: Option<f32>,
    /// Adam beta1 [model default].
    #[arg(long, value_name = "F")]
    beta1: Option<f32>,
    /// Adam beta2 [default: 0.999].
    #[arg(long, value_name = "F")]
    beta2: Option<f32>,
    /// Width of the noise vector z [model default].
    #[arg(long, value_name = "N")]
    noise_dim: Option<usize>,
    /// Generator hidden widths, comma-separated, e.g. 256,512,1024 [model default].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    g_hidden: Option<Vec<usize>>,
    /// Discriminator hidden widths, comma-separated [model default].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    d_hidden: Option<Vec<usize>>,
    /// Random seed: the same seed gives the same images.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u32,
    /// No progress bar and no start line: only one line per epoch and the summary.
    #[arg(long, short)]
    quiet: bool,
}

/// Parses the command line and runs the subcommand.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(args) => train(args),
        Command::Info => info(),
    }
}

fn train(args: TrainArgs) -> Result<()> {
    let overrides = Overrides {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        beta1: args.beta1,
        beta2: args.beta2,
        noise_dim: args.noise_dim,
        g_hidden: args.g_hidden.clone(),
        d_hidden: args.d_hidden.clone(),
    };
    let spec = ModelSpec::build(args.model, &overrides);
    let data_dir = args.data.clone().unwrap_or_else(data::bundled_dir);
    let dataset = data::load_split(&data_dir, data::Split::Train)?;
    let config = TrainConfig {
        out_dir: args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("samples").join(args.model.name())),
        spec,
        seed: args.seed,
        sample_every: args.sample_every,
        max_steps: args.max_steps,
    };
    // Reject impossible flags before any work starts.
    config.validate(dataset.count)?;
    let quiet = args.quiet;
    let gpu_options = |api| GpuOptions {
        storage_binding_bytes: dataset.images.len() as u64,
        ..GpuOptions::with_api(api)
    };
    match args.backend {
        BackendChoice::Cpu => run_training(CpuBackend::new(), config, &dataset, quiet),
        BackendChoice::Auto => match GpuBackend::new(&gpu_options(GpuApi::Best)) {
            Ok(gpu) => run_training(gpu, config, &dataset, quiet),
            Err(error) => {
                eprintln!(
                    "notice: no usable GPU adapter ({error}); training on the CPU path. \
                     Install a GPU driver to use the GPU, e.g. `apt-get install mesa-vulkan-drivers` \
                     for Vulkan on Debian/Ubuntu, and check with `gan-gpu info`."
                );
                run_training(CpuBackend::new(), config, &dataset, quiet)
            }
        },
        BackendChoice::Vulkan => gpu_training(gpu_options(GpuApi::Vulkan), config, &dataset, quiet),
        BackendChoice::Metal => gpu_training(gpu_options(GpuApi::Metal), config, &dataset, quiet),
        BackendChoice::Dx12 => gpu_training(gpu_options(GpuApi::Dx12), config, &dataset, quiet),
        BackendChoice::Gl => gpu_training(gpu_options(GpuApi::Gl), config, &dataset, quiet),
    }
}

fn gpu_training(
    options: GpuOptions,
    config: TrainConfig,
    dataset: &data::Dataset,
    quiet: bool,
) -> Result<()> {
    let gpu = GpuBackend::new(&options)
        .with_context(|| format!("--backend {}", options.api.name().to_lowercase()))?;
    run_training(gpu, config, dataset, quiet)
}

fn run_training<B: Backend>(
    mut backend: B,
    config: TrainConfig,
    dataset: &data::Dataset,
    quiet: bool,
) -> Result<()> {
    if !quiet {
        println!(
            "training {} on {} ({} images, batch {}, {} epochs) -> {}",
            config.spec.kind.name(),
            backend.describe(),
            dataset.count,
            config.spec.batch_size,
            config.spec.epochs,
            config.out_dir.display()
        );
    }
    let mut record = RunRecord::new(&config.out_dir, &config.spec, dataset, config.seed)?;
    let mut console = Console::new(ConsoleMode::detect(quiet));
    let mut trainer = Trainer::new(&mut backend, config, dataset)?;
    let summary = trainer.run_observed(&mut (&mut console, &mut record))?;
    console.finish();
    let last = summary.samples.last().context("no samples written")?;
    println!("{} steps; samples in {}", summary.steps, last.display());
    let files: Vec<String> = record
        .files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!("metrics and pictures: {}", files.join(", "));
    if let Some((dispatches, submits)) = summary.work_per_step() {
        println!("GPU work per step: {dispatches:.1} dispatches, {submits:.3} submits");
    }
    Ok(())
}

fn info() -> Result<()> {
    let adapters = list_adapters();
    if adapters.is_empty() {
        println!(
            "no GPU adapter found; `--backend cpu` (and `auto`) train on the CPU. \
             Install a driver for one of wgpu's APIs, e.g. `apt-get install mesa-vulkan-drivers` \
             for Vulkan (lavapipe runs it on the CPU where there is no GPU)."
        );
    }
    for (i, adapter) in adapters.iter().enumerate() {
        println!("adapter {i}: {adapter}");
    }
    Ok(())
}
