//! `gan-gpu bench`: times training steps of one model on one backend and
//! prints ms/step, steps/s, matmul GFLOP/s and GPU work per step, ending with
//! one `bench key=value ...` line for scripts. The timing is in
//! [`crate::bench`].

use std::path::PathBuf;

use crate::error::{Error, Result};

use super::choice::{self, gpu_api, BackendChoice, Chosen};
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::{GpuOptions, MatmulVariant};
use crate::backend::Backend;
use crate::bench::{self, BenchReport};
use crate::data;
use crate::model::{GameFlags, ModelKind, ModelSpec, Overrides, Widths};

/// The settings of `gan-gpu bench`.
#[derive(Clone, Debug)]
pub struct BenchSettings {
    /// Where the tensor ops run.
    pub backend: BackendChoice,
    pub model: ModelKind,
    /// Images per batch (None: the model's).
    pub batch_size: Option<usize>,
    /// `--ngf` and `--ndf` (dcgan64).
    pub widths: Widths,
    /// `--loss` and `--n-critic`.
    pub game: GameFlags,
    /// Timed training steps.
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// The MNIST directory or folder of images (None: the bundled MNIST,
    /// or made-up images for a model that does not draw MNIST's shape).
    pub data: Option<PathBuf>,
    /// 6000 made-up images of the model's shape instead of MNIST.
    pub synthetic: bool,
    /// Wait for the device every N timed steps (None: only at the end).
    pub sync_every: Option<usize>,
    /// GPU only: submit the recorded work every N steps.
    pub steps_per_submit: Option<u32>,
    /// GPU only: time every dispatch of N more steps.
    pub profile: Option<usize>,
    /// GPU only: the matmul kernels.
    pub matmul: Option<MatmulVariant>,
}

/// Times the steps of `args` and prints the report; every setting is
/// checked before a backend is created. `auto` takes any GPU adapter, else
/// (without `--profile`) the CPU path.
pub fn bench(args: &BenchSettings) -> Result<()> {
    if args.steps == 0 {
        return Err(Error::config("--steps", "must be at least 1"));
    }
    if args.sync_every == Some(0) {
        return Err(Error::config("--sync-every", "must be at least 1"));
    }
    if args.profile == Some(0) {
        return Err(Error::config("--profile", "must be at least 1 step"));
    }
    if args.profile.is_some() && gpu_api(args.backend).is_none() {
        return Err(Error::config(
            "--profile",
            "it times GPU dispatches, and --backend cpu has none",
        ));
    }
    if args.steps_per_submit == Some(0) {
        return Err(Error::config("--steps-per-submit", "must be at least 1"));
    }
    let mut overrides = Overrides {
        batch_size: args.batch_size,
        game: args.game,
        ..Default::default()
    };
    args.widths.apply(args.model, &mut overrides)?;
    ModelSpec::check_overrides(args.model, &overrides)?;
    let preset = ModelSpec::build(args.model, &overrides);
    // Made-up images where asked, or where the model's preset does not
    // draw MNIST's 28x28 grey digits and no data was given.
    let made_up = args.synthetic
        || (args.data.is_none() && preset.image_shape() != crate::model::ImageShape::MNIST);
    let dataset = if made_up {
        bench::synthetic_dataset(6000, 10, preset.image_shape())
    } else {
        let dir = args.data.clone().unwrap_or_else(data::bundled_dir);
        let options = data::folder::FolderOptions {
            image_size: None,
            channels: None,
        };
        let cache = data::cache::default_dir();
        data::load_training_data(&dir, &options, cache.as_deref(), |_, _| {})?
            .0
            .dataset
    };
    overrides.image = Some(super::image_shape(&dataset));
    let spec = ModelSpec::build(args.model, &overrides);
    spec.validate(dataset.count)?;
    let mut options = GpuOptions {
        storage_binding_bytes: dataset.image_len() as u64,
        ..GpuOptions::default()
    };
    if let Some(n) = args.steps_per_submit {
        options.steps_per_submit = n;
    }
    options.matmul = args.matmul;
    options.profile = args.profile.is_some();
    let fallback = args.profile.is_none().then_some("timing the CPU path");
    let report = match choice::open_any(args.backend, &options, fallback)? {
        Chosen::Cpu => run(&mut CpuBackend::new(), "cpu", &spec, &dataset, args)?,
        Chosen::Gpu(gpu, _) => {
            let mut gpu = *gpu;
            let name = gpu.adapter_info().backend.to_str().to_string();
            crate::outln!("matmul kernels: {}", gpu.matmul_variant().name())?;
            let report = run(&mut gpu, &name, &spec, &dataset, args)?;
            print_report(&report)?;
            if let Some(steps) = args.profile {
                let profile = bench::profile_steps(&mut gpu, &spec, &dataset, 5, steps)?;
                print_profile(&profile)?;
            }
            return Ok(());
        }
    };
    print_report(&report)?;
    Ok(())
}

fn run<B: Backend>(
    backend: &mut B,
    name: &str,
    spec: &ModelSpec,
    dataset: &data::Dataset,
    args: &BenchSettings,
) -> Result<BenchReport> {
    crate::outln!(
        "bench {} on {} (batch {}, {} warm-up + {} timed steps, {:.3} GFLOP of matmuls per step)",
        spec.kind.name(),
        backend.describe(),
        spec.batch_size,
        args.warmup,
        args.steps,
        bench::matmul_flops_per_step(spec) as f64 / 1e9
    )?;
    let plan = bench::BenchPlan {
        warmup: args.warmup,
        steps: args.steps,
        sync_every: args.sync_every,
    };
    bench::time_steps(backend, spec, dataset, plan, name)
}

fn print_report(r: &BenchReport) -> Result<()> {
    crate::outln!(
        "{:.3} ms/step  {:.1} steps/s  {:.2} GFLOP/s (matmul)",
        r.ms_per_step(),
        r.steps_per_sec(),
        r.gflops()
    )?;
    if let (Some(d), Some(s)) = (r.dispatches_per_step, r.submits_per_step) {
        crate::outln!("GPU work per step: {d:.1} dispatches, {s:.4} submits")?;
        crate::outln!(
            "host: {:.3} ms/step recording and submitting ({:.0}% of the time; near 100%: \
             the host, not the GPU, sets the pace)",
            r.host_ms_per_step(),
            100.0 * r.host_seconds / r.seconds.max(1e-12)
        )?;
    }
    crate::outln!("{}", r.summary_line())
}

fn print_profile(p: &bench::StepProfile) -> Result<()> {
    crate::outln!(
        "profile: {} steps, GPU timestamps around each dispatch (medians per position)",
        p.steps
    )?;
    crate::outln!(
        "{:>4}  {:<48} {:>10} {:>10}",
        "#",
        "dispatch",
        "kernel us",
        "gap us"
    )?;
    for (i, row) in p.rows.iter().enumerate() {
        crate::outln!(
            "{i:>4}  {:<48} {:>10.2} {:>10.2}",
            row.label,
            row.kernel_us,
            row.gap_us
        )?;
    }
    let kernels: f64 = p.rows.iter().map(|r| r.kernel_us).sum();
    let gaps: f64 = p.rows.iter().map(|r| r.gap_us).sum();
    crate::outln!(
        "profile summary: step {:.1} us on the GPU = kernels {kernels:.1} us + gaps {gaps:.1} us \
         ({} dispatches)",
        p.step_us,
        p.rows.len()
    )
}
