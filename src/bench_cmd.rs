//! `gan-gpu bench`: times training steps of one model on one backend and
//! prints ms/step, steps/s, matmul GFLOP/s and GPU work per step, ending with
//! one `bench key=value ...` line for scripts. The work is in
//! [`gan_gpu::bench`].

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::gpu::{GpuBackend, GpuOptions, MatmulVariant};
use gan_gpu::backend::Backend;
use gan_gpu::bench::{self, BenchReport};
use gan_gpu::data;
use gan_gpu::model::{ModelKind, ModelSpec, Overrides};

use crate::cli::{gpu_api, BackendChoice};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Where the tensor ops run (auto: the best GPU adapter, else the CPU).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Which tutorial GAN.
    #[arg(long, value_enum, default_value_t = ModelKind::Vanilla)]
    model: ModelKind,
    /// Images per batch [model default].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Timed training steps.
    #[arg(long, value_name = "N", default_value_t = 200)]
    steps: usize,
    /// Untimed steps first (pipeline warm-up, bind group creation, caches).
    #[arg(long, value_name = "N", default_value_t = 20)]
    warmup: usize,
    /// Directory with the MNIST IDX files [default: the bundled MNIST].
    #[arg(long, value_name = "DIR", conflicts_with = "synthetic")]
    data: Option<PathBuf>,
    /// Use 6000 made-up images instead of MNIST (no data loading; same work per step).
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
    /// GPU only: the matmul kernels: auto, tiled, blocked64, blocked128 or
    /// direct [default: direct on CPU adapters, else auto (per product)]
    #[arg(long, value_name = "VARIANT", value_parser = MatmulVariant::parse)]
    matmul: Option<MatmulVariant>,
}

pub fn bench(args: BenchArgs) -> Result<()> {
    if args.steps == 0 {
        anyhow::bail!("invalid --steps: must be at least 1");
    }
    if args.sync_every == Some(0) {
        anyhow::bail!("invalid --sync-every: must be at least 1");
    }
    if args.profile == Some(0) {
        anyhow::bail!("invalid --profile: must be at least 1 step");
    }
    if args.profile.is_some() && gpu_api(args.backend).is_none() {
        anyhow::bail!("invalid --profile: it times GPU dispatches, and --backend cpu has none");
    }
    if args.steps_per_submit == Some(0) {
        anyhow::bail!("invalid --steps-per-submit: must be at least 1");
    }
    let spec = ModelSpec::build(
        args.model,
        &Overrides {
            batch_size: args.batch_size,
            ..Default::default()
        },
    );
    let dataset = if args.synthetic {
        bench::synthetic_dataset(6000, 10)
    } else {
        let dir = args.data.clone().unwrap_or_else(data::bundled_dir);
        data::load_split(&dir, data::Split::Train)?
    };
    spec.validate(dataset.count)?;
    let report = match gpu_api(args.backend) {
        None => run(&mut CpuBackend::new(), "cpu", &spec, &dataset, &args)?,
        Some(api) => {
            let mut options = GpuOptions {
                storage_binding_bytes: dataset.images.len() as u64,
                ..GpuOptions::with_api(api)
            };
            if let Some(n) = args.steps_per_submit {
                options.steps_per_submit = n;
            }
            options.matmul = args.matmul;
            options.profile = args.profile.is_some();
            match GpuBackend::new(&options) {
                Ok(mut gpu) => {
                    let name = gpu.adapter_info().backend.to_str().to_string();
                    gan_gpu::outln!("matmul kernels: {}", gpu.matmul_variant().name())?;
                    let report = run(&mut gpu, &name, &spec, &dataset, &args)?;
                    print_report(&report)?;
                    if let Some(steps) = args.profile {
                        let profile = bench::profile_steps(&mut gpu, &spec, &dataset, 5, steps)?;
                        print_profile(&profile)?;
                    }
                    return Ok(());
                }
                Err(error) if args.backend == BackendChoice::Auto && args.profile.is_none() => {
                    gan_gpu::errln!("notice: no usable GPU adapter ({error}); timing the CPU path");
                    run(&mut CpuBackend::new(), "cpu", &spec, &dataset, &args)?
                }
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("--backend {}", api.name().to_lowercase()))
                }
            }
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
    args: &BenchArgs,
) -> Result<BenchReport> {
    gan_gpu::outln!(
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
    Ok(bench::time_steps(backend, spec, dataset, plan, name)?)
}

fn print_report(r: &BenchReport) -> std::io::Result<()> {
    gan_gpu::outln!(
        "{:.3} ms/step  {:.1} steps/s  {:.2} GFLOP/s (matmul)",
        r.ms_per_step(),
        r.steps_per_sec(),
        r.gflops()
    )?;
    if let (Some(d), Some(s)) = (r.dispatches_per_step, r.submits_per_step) {
        gan_gpu::outln!("GPU work per step: {d:.1} dispatches, {s:.4} submits")?;
        gan_gpu::outln!(
            "host: {:.3} ms/step recording and submitting ({:.0}% of the time; near 100%: \
             the host, not the GPU, sets the pace)",
            r.host_ms_per_step(),
            100.0 * r.host_seconds / r.seconds.max(1e-12)
        )?;
    }
    gan_gpu::outln!("{}", r.summary_line())
}

fn print_profile(p: &bench::StepProfile) -> std::io::Result<()> {
    gan_gpu::outln!(
        "profile: {} steps, GPU timestamps around each dispatch (medians per position)",
        p.steps
    )?;
    gan_gpu::outln!(
        "{:>4}  {:<48} {:>10} {:>10}",
        "#",
        "dispatch",
        "kernel us",
        "gap us"
    )?;
    for (i, row) in p.rows.iter().enumerate() {
        gan_gpu::outln!(
            "{i:>4}  {:<48} {:>10.2} {:>10.2}",
            row.label,
            row.kernel_us,
            row.gap_us
        )?;
    }
    let kernels: f64 = p.rows.iter().map(|r| r.kernel_us).sum();
    let gaps: f64 = p.rows.iter().map(|r| r.gap_us).sum();
    gan_gpu::outln!(
        "profile summary: step {:.1} us on the GPU = kernels {kernels:.1} us + gaps {gaps:.1} us \
         ({} dispatches)",
        p.step_us,
        p.rows.len()
    )
}
