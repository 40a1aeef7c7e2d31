//! Command-line interface: flags -> validated configuration -> a subcommand.
//! Parsing and dispatch only; the work is in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::fault::{Fault, FaultyBackend};
use gan_gpu::backend::gpu::{list_adapters, GpuApi, GpuBackend, GpuOptions};
use gan_gpu::backend::Backend;
use gan_gpu::checkpoint::{Checkpoint, ResumeFlags};
use gan_gpu::data;
use gan_gpu::eval::{ClassifierConfig, TrainingEvaluator};
use gan_gpu::model::spec::StepPlan;
use gan_gpu::model::{ModelKind, ModelSpec, Overrides};
use gan_gpu::output::{Console, ConsoleMode, OutputLock, RunRecord};
use gan_gpu::sample::{self, SampleRequest};
use gan_gpu::stop::StopSignals;
use gan_gpu::train::{EvalSchedule, TrainConfig, Trainer};
use gan_gpu::{errln, outln};

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
    /// Generate images from a checkpoint's generator (.png grid, .idx or .npy).
    Sample(SampleArgs),
    /// Measure generated images: FID, classifier score, class coverage, label accuracy.
    Eval(EvalArgs),
    /// List every GPU adapter wgpu can see, with the limits that matter.
    Info,
    /// Time training steps: ms/step, steps/s, matmul GFLOP/s, GPU dispatches and submits per step.
    Bench(crate::bench_cmd::BenchArgs),
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
    /// Which tutorial GAN to train [default: vanilla; on --resume: the checkpoint's].
    #[arg(long, value_enum)]
    model: Option<ModelKind>,
    /// Continue the run saved in this checkpoint (flags that shape the model must agree with it).
    #[arg(long, value_name = "PATH")]
    resume: Option<PathBuf>,
    /// Where the tensor ops run.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Directory with the four MNIST-format IDX files (raw or .gz) [default: the bundled MNIST].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
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
}

#[derive(Args, Debug)]
struct SampleArgs {
    /// The checkpoint whose generator draws the images.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Number of images.
    #[arg(long, value_name = "N", default_value_t = sample::DEFAULT_COUNT)]
    n: usize,
    /// Digit (0-9) of every image, for conditional models [default: rows of ten cycle through 0-9].
    #[arg(long, value_name = "D")]
    label: Option<usize>,
    /// Noise seed [default: the checkpoint's training seed, so 100 samples are its final.png].
    #[arg(long, value_name = "S")]
    seed: Option<u32>,
    /// Where the generator runs.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Output file: .png (grid), .idx or .idx3-ubyte (IDX [N, 28, 28]) or .npy (uint8 (N, 28, 28)).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["checkpoint", "images"])))]
struct EvalArgs {
    /// A generator checkpoint: --n images (default 10000) from its generator are measured.
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Images to evaluate: IDX (.idx, .idx3-ubyte, raw or .gz) or .npy uint8, N x 28 x 28.
    #[arg(long, value_name = "FILE")]
    images: Option<PathBuf>,
    /// The digit requested for each image (IDX labels or .npy uint8 of length N), for label accuracy.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// Evaluate the first N images [default: all].
    #[arg(long, value_name = "N")]
    n: Option<usize>,
    /// Where the classifier runs [default: auto = a hardware GPU, else the CPU].
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// The classifier cache file [default: ~/.cache/gan-gpu/mnist-classifier-784-512-256-10-seed1.bin].
    #[arg(long, value_name = "PATH")]
    classifier: Option<PathBuf>,
    /// Directory with the four MNIST IDX files [default: the bundled MNIST].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

/// Parses the command line and runs the subcommand; the exit code is
/// 128 + the signal's number when a signal stopped a training run (after
/// its checkpoint is saved).
pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(args) => train(args),
        Command::Sample(args) => sample_command(args).map(|()| ExitCode::SUCCESS),
        Command::Eval(args) => crate::eval_cmd::eval(args.into()).map(|()| ExitCode::SUCCESS),
        Command::Info => info().map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => crate::bench_cmd::bench(args).map(|()| ExitCode::SUCCESS),
    }
}

/// How a training run is set up besides its [`TrainConfig`].
struct RunPlan {
    checkpoint_every: usize,
    /// The checkpoint to continue, and where it was read from.
    resume: Option<(Checkpoint, PathBuf)>,
    /// Raised by SIGINT, SIGTERM or SIGHUP.
    stop: StopSignals,
    /// No progress bar and no start line.
    quiet: bool,
    /// Measuring the generator every few epochs (`--eval-every`).
    eval: Option<EvalSchedule>,
}

/// The classifier-based evaluator of `--eval-every`: the cached MNIST
/// classifier (trained on the CPU on first use, as `gan-gpu eval` does) and
/// the test set's feature statistics.
fn training_evaluator(
    data_dir: &Path,
    train: &data::Dataset,
    cache: Option<&Path>,
) -> Result<TrainingEvaluator> {
    let test = data::load_split(data_dir, data::Split::Test)?;
    let config = ClassifierConfig::standard();
    let cache_path = match cache {
        Some(path) => path.to_path_buf(),
        None => gan_gpu::eval::cache::default_path(&config)?,
    };
    let classifier = gan_gpu::eval::load_or_train(
        &mut CpuBackend::new(),
        &cache_path,
        &config,
        train,
        &test,
        |line| errln!("notice: {line}"),
        |r| {
            errln!(
                "classifier epoch {}/{}: train accuracy {:.2}%",
                r.epoch,
                r.epochs,
                100.0 * r.train_accuracy
            )
        },
    )?;
    Ok(TrainingEvaluator::new(classifier, &test)?)
}

fn train(args: TrainArgs) -> Result<ExitCode> {
    let mut overrides = Overrides {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        beta1: args.beta1,
        beta2: args.beta2,
        noise_dim: args.noise_dim,
        g_hidden: args.g_hidden.clone(),
        d_hidden: args.d_hidden.clone(),
    };
    let mut kind = args.model.unwrap_or(ModelKind::Vanilla);
    let mut seed = args.seed.unwrap_or(1);
    let mut sample_every = args.sample_every.unwrap_or(10);
    let mut checkpoint_every = args.checkpoint_every.unwrap_or(10);
    let mut default_out = PathBuf::from("samples").join(kind.name());
    let mut resume = None;
    if let Some(path) = &args.resume {
        let saved = Checkpoint::load(path)?;
        let settings = saved.settings.resume_with(&ResumeFlags {
            model: args.model,
            seed: args.seed,
            overrides: overrides.clone(),
            sample_every: args.sample_every,
            checkpoint_every: args.checkpoint_every,
        })?;
        kind = settings
            .kind()
            .with_context(|| format!("{}: unknown model", path.display()))?;
        overrides = settings.overrides();
        (seed, sample_every, checkpoint_every) = (
            settings.seed,
            settings.sample_every,
            settings.checkpoint_every,
        );
        default_out = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        resume = Some((saved, path.clone()));
    }
    let spec = ModelSpec::build(kind, &overrides);
    let data_dir = args.data.clone().unwrap_or_else(data::bundled_dir);
    let dataset = data::load_split(&data_dir, data::Split::Train)?;
    let config = TrainConfig {
        out_dir: args.out.clone().unwrap_or(default_out),
        spec,
        seed,
        sample_every,
        max_steps: args.max_steps,
    };
    // Reject impossible flags before any work starts.
    config.validate(dataset.count)?;
    if checkpoint_every == 0 {
        anyhow::bail!("invalid --checkpoint-every: must be at least 1");
    }
    if let Some(every) = args.eval_every {
        EvalSchedule::validate(every, args.eval_count)?;
    }
    let eval = match args.eval_every {
        Some(every) => Some(EvalSchedule {
            every,
            count: args.eval_count,
            evaluator: Box::new(training_evaluator(
                &data_dir,
                &dataset,
                args.classifier.as_deref(),
            )?),
        }),
        None => None,
    };
    // One run per output folder, held until the process ends.
    let _lock = OutputLock::acquire(&config.out_dir)?;
    let stop = StopSignals::install()?;
    let plan = RunPlan {
        checkpoint_every,
        resume,
        stop,
        quiet: args.quiet,
        eval,
    };
    let gpu_options = |api| GpuOptions {
        storage_binding_bytes: dataset.images.len() as u64,
        ..GpuOptions::with_api(api)
    };
    let fault = Fault::from_env()?;
    let cpu = || Ok(CpuBackend::new());
    match args.backend {
        BackendChoice::Cpu => train_on(cpu, fault, config, &dataset, plan),
        BackendChoice::Auto => match auto_gpu(&gpu_options(GpuApi::Best), "training") {
            Some(gpu) => {
                check_gpu_fit(&gpu, &config.spec)?;
                let options = gpu_options(GpuApi::Best);
                train_on(reusing(gpu, options), fault, config, &dataset, plan)
            }
            None => train_on(cpu, fault, config, &dataset, plan),
        },
        choice => {
            let api = gpu_api(choice).context("a GPU backend")?;
            let options = gpu_options(api);
            let gpu = new_gpu(&options)?;
            check_gpu_fit(&gpu, &config.spec)?;
            train_on(reusing(gpu, options), fault, config, &dataset, plan)
        }
    }
}

// ---- Reliability: GPU limits, device loss and recovery (issue 6) ----

/// Opens a GPU backend, naming the `--backend` flag in errors.
fn new_gpu(options: &GpuOptions) -> Result<GpuBackend> {
    GpuBackend::new(options)
        .with_context(|| format!("--backend {}", options.api.name().to_lowercase()))
}

/// A backend factory that hands out `first`, then opens new devices.
fn reusing(first: GpuBackend, options: GpuOptions) -> impl FnMut() -> Result<GpuBackend> {
    let mut first = Some(first);
    move || match first.take() {
        Some(gpu) => Ok(gpu),
        None => new_gpu(&options),
    }
}

/// Rejects a model whose buffers the adapter cannot hold, naming the flag:
/// each network's flat parameter buffer and the largest activation buffer
/// ([`StepPlan`]) must fit max_storage_buffer_binding_size and max_buffer_size.
fn check_gpu_fit(gpu: &GpuBackend, spec: &ModelSpec) -> Result<()> {
    let limits = gpu.limits();
    let max = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    let info = gpu.adapter_info();
    let plan = StepPlan::new(spec);
    let needs = [
        (
            "--g-hidden",
            "the generator's parameters",
            plan.generator_param_bytes(),
        ),
        (
            "--d-hidden",
            "the discriminator's parameters",
            plan.discriminator_param_bytes(),
        ),
        (
            "--batch-size",
            "the largest activation buffer",
            plan.largest_activation_bytes(),
        ),
    ];
    for (flag, what, bytes) in needs {
        if bytes > max {
            anyhow::bail!(
                "invalid {flag}: {what} need {bytes} bytes, over the {max}-byte buffer limit of \
                 adapter {} ({}; max_storage_buffer_binding_size {}, max_buffer_size {}); \
                 use smaller widths or --backend cpu",
                info.name,
                info.backend.to_str(),
                limits.max_storage_buffer_binding_size,
                limits.max_buffer_size
            );
        }
    }
    Ok(())
}

/// Whether the GPU device was lost (the run may continue on a new one).
fn is_device_lost(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        matches!(
            e.downcast_ref::<gan_gpu::Error>(),
            Some(gan_gpu::Error::DeviceLost { .. })
        )
    })
}

/// Runs the training on backends from `make`; `fault` (a test hook, see
/// [`gan_gpu::backend::fault`]) is injected into the first. When the device
/// is lost, a new backend is made once and the run continues from its last
/// good checkpoint (from the start if there is none yet), with a notice; a
/// second failure is the error.
fn train_on<B: Backend>(
    mut make: impl FnMut() -> Result<B>,
    fault: Option<Fault>,
    config: TrainConfig,
    dataset: &data::Dataset,
    mut plan: RunPlan,
) -> Result<ExitCode> {
    let (checkpoint_every, stop, quiet) = (plan.checkpoint_every, plan.stop.clone(), plan.quiet);
    let mut last_good = plan.resume.as_ref().map(|(_, path)| path.clone());
    let mut eval = plan.eval.take();
    let backend = FaultyBackend::new(make()?, fault);
    let error = match run_training(
        backend,
        config.clone(),
        dataset,
        plan,
        &mut last_good,
        &mut eval,
    ) {
        Err(error) if is_device_lost(&error) => error,
        other => return other,
    };
    let resume = match &last_good {
        Some(path) => {
            errln!(
                "notice: {error:#}; recreating the backend and resuming from {}",
                path.display()
            );
            Some((Checkpoint::load(path)?, path.clone()))
        }
        None => {
            errln!(
                "notice: {error:#}; recreating the backend and starting again (no checkpoint yet)"
            );
            None
        }
    };
    let backend = make().context("recreating the backend after the device was lost")?;
    let plan = RunPlan {
        checkpoint_every,
        resume,
        stop,
        quiet,
        eval: None,
    };
    run_training(
        FaultyBackend::new(backend, None),
        config,
        dataset,
        plan,
        &mut last_good,
        &mut eval,
    )
}

/// One training run on `backend`; `last_good` is kept up to date with the
/// run's last good checkpoint, also when it fails.
fn run_training<B: Backend>(
    mut backend: B,
    config: TrainConfig,
    dataset: &data::Dataset,
    plan: RunPlan,
    last_good: &mut Option<PathBuf>,
    eval: &mut Option<EvalSchedule>,
) -> Result<ExitCode> {
    // A reader of stdout that goes away does not end the run: what is
    // printed to it is dropped and training goes on.
    if !plan.quiet {
        let _ = outln!(
            "training {} on {} ({} images, batch {}, {} epochs) -> {}",
            config.spec.kind.name(),
            backend.describe(),
            dataset.count,
            config.spec.batch_size,
            config.spec.epochs,
            config.out_dir.display()
        );
    }
    let mut record = match &plan.resume {
        Some((saved, _)) => RunRecord::resume(
            &config.out_dir,
            &config.spec,
            dataset,
            config.seed,
            saved.epoch,
        )?,
        None => RunRecord::new(&config.out_dir, &config.spec, dataset, config.seed)?,
    };
    let mut console = Console::new(ConsoleMode::detect(plan.quiet));
    let mut trainer = match &plan.resume {
        Some((saved, path)) => {
            let _ = outln!(
                "resuming from {} (epoch {}, step {})",
                path.display(),
                saved.epoch + 1,
                saved.clock.step
            );
            Trainer::resume(&mut backend, config, dataset, saved, path)?
        }
        None => Trainer::new(&mut backend, config, dataset)?,
    };
    trainer.set_checkpoint_every(plan.checkpoint_every)?;
    trainer.set_stop_flag(plan.stop.flag());
    if let Some(schedule) = eval.take() {
        trainer.set_evaluation(schedule)?;
    }
    let result = trainer.run_observed(&mut (&mut console, &mut record));
    // Kept for a retry on a recreated backend.
    *eval = trainer.take_evaluation();
    console.finish();
    if let Some(path) = trainer.last_good_checkpoint() {
        *last_good = Some(path.to_path_buf());
    }
    // The pictures of every finished epoch are written even if the run failed.
    let pictures = record.finish();
    let summary = result?;
    pictures?;
    let last = summary.samples.last().context("no samples written")?;
    let _ = outln!("{} steps; samples in {}", summary.steps, last.display());
    let files: Vec<String> = record
        .files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let _ = outln!("metrics and pictures: {}", files.join(", "));
    if let Some((dispatches, submits)) = summary.work_per_step() {
        let _ = outln!("GPU work per step: {dispatches:.1} dispatches, {submits:.3} submits");
    }
    let checkpoint = summary.checkpoint.context("no checkpoint written")?;
    if summary.interrupted {
        let signal = plan.stop.received();
        errln!(
            "{}: stopped at step {}; checkpoint saved to {}\nresume with: gan-gpu train --resume {}",
            signal.map_or_else(|| "stopped".to_string(), |s| s.name()),
            summary.steps,
            checkpoint.display(),
            checkpoint.display()
        );
        // 128 + the signal's number, as a shell reports a process ended by it.
        return Ok(ExitCode::from(signal.map_or(130, |s| s.exit_code())));
    }
    let _ = outln!("checkpoint: {}", checkpoint.display());
    Ok(ExitCode::SUCCESS)
}

fn sample_command(args: SampleArgs) -> Result<()> {
    let saved = Checkpoint::load(&args.checkpoint)?;
    let spec = saved.spec(&args.checkpoint)?;
    let request = SampleRequest {
        count: args.n,
        label: args.label,
        seed: args.seed.unwrap_or(saved.settings.seed),
    };
    // Reject bad flags before creating a backend.
    request.validate(&spec)?;
    sample::Format::from_path(&args.out)?;
    let gpu = match gpu_api(args.backend) {
        None => None,
        Some(api) => match GpuBackend::new(&GpuOptions::with_api(api)) {
            Ok(gpu) => Some(gpu),
            Err(error) if args.backend == BackendChoice::Auto => {
                errln!("notice: no usable GPU adapter ({error}); sampling on the CPU path");
                None
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("--backend {}", api.name().to_lowercase()))
            }
        },
    };
    let path = &args.checkpoint;
    let images = match gpu {
        Some(mut gpu) => sample::generate(&mut gpu, &saved, path, &request)?,
        None => sample::generate(&mut CpuBackend::new(), &saved, path, &request)?,
    };
    sample::write(&args.out, &images, &spec, &request)?;
    outln!("{} images -> {}", request.count, args.out.display())?;
    Ok(())
}

impl From<EvalArgs> for crate::eval_cmd::EvalOptions {
    fn from(a: EvalArgs) -> Self {
        crate::eval_cmd::EvalOptions {
            checkpoint: a.checkpoint,
            images: a.images,
            labels: a.labels,
            n: a.n,
            backend: a.backend,
            classifier: a.classifier,
            data: a.data,
        }
    }
}

/// What `--backend auto` runs `purpose` on: a hardware GPU adapter, or None
/// (the CPU path) after a one-line notice saying why. A software rasteriser
/// (lavapipe, llvmpipe) runs the kernels about 170 times slower than the CPU
/// path, so `auto` does not pick it.
pub fn auto_gpu(options: &GpuOptions, purpose: &str) -> Option<GpuBackend> {
    match GpuBackend::new(options) {
        Ok(gpu) if gpu.adapter_info().device_type != wgpu::DeviceType::Cpu => Some(gpu),
        Ok(gpu) => {
            errln!(
                "notice: the only GPU adapter, {}, is a software renderer; {purpose} on the CPU \
                 path, which is much faster (pass --backend vulkan or gl to use it anyway)",
                gpu.adapter_info().name
            );
            None
        }
        Err(error) => {
            errln!(
                "notice: no usable GPU adapter ({error}); {purpose} on the CPU path. \
                 Install a GPU driver to use the GPU, e.g. `apt-get install mesa-vulkan-drivers` \
                 for Vulkan on Debian/Ubuntu, and check with `gan-gpu info`."
            );
            None
        }
    }
}

/// The GPU API of a `--backend` choice, None for `cpu`.
pub fn gpu_api(choice: BackendChoice) -> Option<GpuApi> {
    match choice {
        BackendChoice::Auto => Some(GpuApi::Best),
        BackendChoice::Vulkan => Some(GpuApi::Vulkan),
        BackendChoice::Metal => Some(GpuApi::Metal),
        BackendChoice::Dx12 => Some(GpuApi::Dx12),
        BackendChoice::Gl => Some(GpuApi::Gl),
        BackendChoice::Cpu => None,
    }
}

fn info() -> Result<()> {
    let adapters = list_adapters();
    if adapters.is_empty() {
        outln!(
            "no GPU adapter found; `--backend cpu` (and `auto`) train on the CPU. \
             Install a driver for one of wgpu's APIs, e.g. `apt-get install mesa-vulkan-drivers` \
             for Vulkan (lavapipe runs it on the CPU where there is no GPU)."
        )?;
    }
    for (i, adapter) in adapters.iter().enumerate() {
        outln!("adapter {i}: {adapter}")?;
    }
    Ok(())
}
