//! One training run on a backend, and its recovery from a lost GPU device:
//! a new backend is made once and the run continues from its last good
//! checkpoint.

use std::path::PathBuf;

use crate::error::{Error, Result, ResultExt};

use super::RunEnd;
use crate::backend::fault::{Fault, FaultyBackend};
use crate::backend::Backend;
use crate::checkpoint::Checkpoint;
use crate::data;
use crate::output::{Console, ConsoleMode, RunRecord};
use crate::stop::StopSignals;
use crate::train::{EvalSchedule, TrainConfig, Trainer};
use crate::{errln, outln};

/// How a training run is set up besides its [`TrainConfig`].
pub struct RunPlan {
    pub checkpoint_every: usize,
    /// The checkpoint to continue, and where it was read from.
    pub resume: Option<(Checkpoint, PathBuf)>,
    /// Raised by SIGINT, SIGTERM or SIGHUP.
    pub stop: StopSignals,
    /// No progress bar and no start line.
    pub quiet: bool,
    /// Measuring the generator every few epochs (`--eval-every`).
    pub eval: Option<EvalSchedule>,
    /// The training data's directory (None: the bundled MNIST), saved in
    /// the checkpoints.
    pub data_dir: Option<PathBuf>,
}

/// Whether the GPU device was lost (the run may continue on a new one).
pub fn is_device_lost(error: &Error) -> bool {
    error.is_device_lost()
}

/// Runs the training on backends from `make`; `fault` (a test hook, see
/// [`crate::backend::fault`]) is injected into the first, which then runs
/// wrapped in a [`FaultyBackend`] (without a fault, the backend runs as it
/// is). When the device is lost, a new backend is made once and the run
/// continues from its last good checkpoint (from the start if there is none
/// yet), with a notice; a second failure is the error.
pub fn train_on<B: Backend>(
    mut make: impl FnMut() -> Result<B>,
    fault: Option<Fault>,
    config: TrainConfig,
    dataset: &data::Dataset,
    mut plan: RunPlan,
) -> Result<RunEnd> {
    let (checkpoint_every, stop, quiet) = (plan.checkpoint_every, plan.stop.clone(), plan.quiet);
    let data_dir = plan.data_dir.clone();
    let mut last_good = plan.resume.as_ref().map(|(_, path)| path.clone());
    let mut eval = plan.eval.take();
    let backend = make()?;
    let first = match fault {
        Some(fault) => run_training(
            FaultyBackend::new(backend, Some(fault)),
            config.clone(),
            dataset,
            plan,
            &mut last_good,
            &mut eval,
        ),
        None => run_training(
            backend,
            config.clone(),
            dataset,
            plan,
            &mut last_good,
            &mut eval,
        ),
    };
    let error = match first {
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
        data_dir,
    };
    run_training(backend, config, dataset, plan, &mut last_good, &mut eval)
}

/// One training run on `backend`; `last_good` is kept up to date with the
/// run's last good checkpoint, also when it fails.
pub fn run_training<B: Backend>(
    mut backend: B,
    config: TrainConfig,
    dataset: &data::Dataset,
    plan: RunPlan,
    last_good: &mut Option<PathBuf>,
    eval: &mut Option<EvalSchedule>,
) -> Result<RunEnd> {
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
        if let Some(decay) = config.spec.game.ema {
            let _ = outln!(
                "the grids and measurements draw from the generator's moving average (decay {decay})"
            );
        }
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
    trainer.set_data_dir(plan.data_dir.clone());
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
    let last = record
        .grids()
        .last()
        .ok_or_else(|| Error::Usage("no samples written".into()))?;
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
    let checkpoint = summary
        .checkpoint
        .ok_or_else(|| Error::Usage("no checkpoint written".into()))?;
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
        return Ok(RunEnd::Stopped {
            exit_code: signal.map_or(130, |s| s.exit_code()),
        });
    }
    let _ = outln!("checkpoint: {}", checkpoint.display());
    Ok(RunEnd::Finished)
}
