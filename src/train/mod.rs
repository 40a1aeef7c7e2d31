//! The epoch loop: shuffle, record steps, read the statistics once per epoch,
//! report, and hand the observer the sample grids when they are due (the run
//! record writes them). Written once against [`Backend`].

pub mod checkpoint;
pub mod evaluation;
pub mod generate;
pub mod health;
pub mod step;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::backend::{stat, Backend, Clock, Tensor, WorkCounts};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{self, ModelSpec};
use crate::nn::Pass;
pub use crate::report::{
    EpochReport, EvalFigures, ImageEvaluator, Observer, OnEpoch, Progress, SampleGrid, GRID_SIDE,
};
use crate::rng;
pub use checkpoint::{CheckpointOptions, Start};
pub use evaluation::EvalSchedule;
pub use generate::generate_images;
pub use step::GanState;

const SAMPLE_COUNT: usize = GRID_SIDE * GRID_SIDE;

/// Steps recorded between progress reports; the backend is synced (no
/// read-back) before each, so progress counts executed steps. Four of the GPU
/// backend's 32-step submits, so the GPU idles only briefly at each sync.
pub const PROGRESS_CHUNK: usize = 128;

/// Everything a training run needs besides the data and the backend.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub spec: ModelSpec,
    pub seed: u32,
    /// The run's output folder (the checkpoint goes here).
    pub out_dir: PathBuf,
    /// A sample grid is due every this many epochs (and at epoch 0 and the end).
    pub sample_every: usize,
    /// Stop after this many steps in total (for smoke tests).
    pub max_steps: Option<usize>,
    /// Draw the sample grids with each batch's own batch-norm statistics
    /// ([`Pass::BatchStats`], as `pytorch/examples` does) instead of the
    /// running ones ([`Pass::Eval`], the TensorFlow tutorial's
    /// `training=False`). Models without batch norm draw the same either way.
    pub grid_batch_stats: bool,
}

impl TrainConfig {
    /// Rejects settings no run can use, naming the flag; `dataset_len` is the
    /// number of training images.
    pub fn validate(&self, dataset_len: usize) -> Result<()> {
        self.spec.validate(dataset_len)?;
        if self.sample_every == 0 {
            return Err(Error::config("--sample-every", "must be at least 1"));
        }
        if self.max_steps == Some(0) {
            return Err(Error::config("--max-steps", "must be at least 1"));
        }
        Ok(())
    }
}

/// What a finished run leaves: the reports and the sample files written.
#[derive(Clone, Debug, Default)]
pub struct TrainSummary {
    pub reports: Vec<EpochReport>,
    pub steps: usize,
    /// GPU work issued by the training steps and the once-per-epoch stats
    /// read (not the sample grids); None on the CPU.
    pub work: Option<WorkCounts>,
    /// The last checkpoint written (at the end of the run or on a stop).
    pub checkpoint: Option<PathBuf>,
    /// Whether the stop flag ended the run early (Ctrl-C).
    pub interrupted: bool,
}

impl TrainSummary {
    /// Dispatches and submits per training step, if on a GPU.
    pub fn work_per_step(&self) -> Option<(f64, f64)> {
        let w = self.work?;
        let steps = self.steps.max(1) as f64;
        Some((w.dispatches as f64 / steps, w.submits as f64 / steps))
    }
}

/// The fixed generator inputs of the sample grids: one noise set for the
/// whole run, and for conditional models row r of the grid asks for digit r.
pub fn sample_inputs(spec: &ModelSpec, seed: u32) -> Vec<f32> {
    let classes = spec.classes.max(1);
    model::generator_inputs(spec, seed, model::SAMPLE_NOISE_STEP, 0, SAMPLE_COUNT, |i| {
        (i / GRID_SIDE) % classes
    })
}

/// A training run in progress on one backend.
pub struct Trainer<'a, B: Backend> {
    backend: &'a mut B,
    config: TrainConfig,
    pub state: GanState,
    sample_inputs: Vec<f32>,
    sample_output: Tensor,
    examples: usize,
    /// Where the run starts (a checkpoint's position on resume).
    start: Start,
    /// How often to checkpoint, and the stop flag.
    checkpoints: CheckpointOptions,
    /// Measuring the generator every few epochs, if asked.
    evaluation: Option<EvalSchedule>,
}

impl<'a, B: Backend> Trainer<'a, B> {
    /// Checks the configuration against the data, builds both networks on the
    /// backend and makes the training set resident.
    pub fn new(backend: &'a mut B, config: TrainConfig, data: &Dataset) -> Result<Self> {
        let spec = &config.spec;
        config.validate(data.count)?;
        data.require_shape(spec.image_channels, spec.image_rows, spec.image_cols)?;
        let state = GanState::new(backend, spec, config.seed, SAMPLE_COUNT)?;
        backend.upload_dataset(&data.images, &data.labels, spec.image_pixels)?;
        let sample_output = backend.alloc(SAMPLE_COUNT * spec.image_pixels)?;
        Ok(Trainer {
            sample_inputs: sample_inputs(spec, config.seed),
            backend,
            state,
            sample_output,
            examples: data.count,
            config,
            start: Start::default(),
            checkpoints: CheckpointOptions::default(),
            evaluation: None,
        })
    }

    /// Steps in one epoch: every image once, the last partial batch dropped.
    pub fn steps_per_epoch(&self) -> usize {
        self.examples / (self.config.spec.batch_size * self.config.spec.game.n_critic)
    }

    /// The generator's current images for the fixed sample inputs, as bytes.
    pub fn sample_images(&mut self) -> Result<Vec<u8>> {
        let pass = if self.config.grid_batch_stats {
            Pass::BatchStats
        } else {
            Pass::Eval
        };
        let values =
            self.state
                .generate(self.backend, &self.sample_inputs, pass, self.sample_output)?;
        Ok(model::images_from_outputs(
            &values,
            self.config.spec.scaling,
        ))
    }

    /// Trains epoch after epoch, calling `on_epoch` after each (no files but
    /// the checkpoint: [`run_observed`](Self::run_observed) with a
    /// [`crate::output::RunRecord`] writes the grids and pictures).
    pub fn run(&mut self, on_epoch: impl FnMut(&EpochReport)) -> Result<TrainSummary> {
        self.run_observed(&mut OnEpoch(on_epoch))
    }

    /// [`run`](Self::run), telling `observer` of executed-step progress, each
    /// epoch's report and each epoch's sample images (epoch 0 included).
    pub fn run_observed(&mut self, observer: &mut dyn Observer) -> Result<TrainSummary> {
        let out_dir = self.config.out_dir.clone();
        create_dir(&out_dir)?;
        let (seed, epochs) = (self.config.seed, self.config.spec.epochs);
        let steps_per_epoch = self.steps_per_epoch();
        let max_steps = self.config.max_steps.unwrap_or(usize::MAX);
        let mut summary = TrainSummary::default();
        let start = self.start.clone();
        let mut images = self.sample_images()?;
        observer.on_samples(start.epoch, &images)?;
        if start.is_beginning() {
            observer.on_grid(&SampleGrid {
                epoch: 0,
                images: &images,
                last: false,
            })?;
        }
        let mut global_step = start.step;
        let mut current_epoch = start.epoch;
        let run_steps = (epochs * steps_per_epoch).min(max_steps);
        let (first_cursor, _) = start.position_in(start.epoch);
        observer.on_progress(&Progress {
            epoch: start.epoch + 1,
            epochs,
            step: first_cursor,
            steps: steps_per_epoch.min(max_steps),
            run_step: global_step,
            run_steps,
        });
        for epoch in start.epoch..epochs {
            current_epoch = epoch;
            let started = Instant::now();
            self.backend
                .set_epoch_order(&rng::epoch_order(seed, epoch as u32, self.examples))?;
            // A resumed run starts its first epoch mid-way, with its partial stats.
            let (cursor, stats) = start.position_in(epoch);
            self.backend.set_clock(Clock {
                seed,
                step: global_step as u32,
                cursor: cursor as u32,
            })?;
            self.backend
                .write(self.state.stats, &health::with_flags(stats))?;
            let steps = (steps_per_epoch - cursor).min(max_steps - global_step);
            let work_before = self.backend.work_counts();
            // Steps go in chunks; after each, wait for the GPU to finish the
            // chunk before it (no read-back), so the progress shown is work
            // done, not work recorded, while the newest chunk keeps the GPU
            // busy as the next one is recorded. The stop flag (Ctrl-C) is
            // checked between steps.
            let progress = |done: usize| Progress {
                epoch: epoch + 1,
                epochs,
                step: cursor + done,
                steps: steps_per_epoch,
                run_step: global_step + done,
                run_steps,
            };
            let mut done = 0;
            let mut executed = None;
            while done < steps && !self.checkpoints.stop_requested() {
                let chunk_end = (done + PROGRESS_CHUNK).min(steps);
                while done < chunk_end && !self.checkpoints.stop_requested() {
                    self.state.train_step(self.backend);
                    done += 1;
                }
                // On the device, read back with the epoch's stats below.
                health::check_parameters(self.backend, &self.state);
                self.backend.sync_behind()?;
                if let Some(executed) = executed {
                    observer.on_progress(&progress(executed));
                }
                executed = Some(done);
            }
            summary.interrupted = done < steps;
            // Reading the stats waits for every step recorded.
            let stats = self.backend.read(self.state.stats)?;
            if executed.is_some() {
                observer.on_progress(&progress(done));
            }
            let steps = done;
            global_step += steps;
            // A diverged run stops here, before anything of it is saved.
            health::check_stats(&stats, epoch, global_step - steps, global_step)
                .map_err(|d| d.into_error(self.checkpoints.last_good.clone()))?;
            if let (Some(before), Some(after)) = (work_before, self.backend.work_counts()) {
                let total = summary.work.get_or_insert_with(WorkCounts::default);
                total.dispatches += after.dispatches - before.dispatches;
                total.submits += after.submits - before.submits;
            }
            let per_step = |slot: u32| stats[slot as usize] / (cursor + steps).max(1) as f32;
            let seconds = started.elapsed().as_secs_f64();
            let finished = epoch + 1 == epochs || global_step >= max_steps || summary.interrupted;
            // An interrupted run stops quickly: no evaluation.
            let eval = if summary.interrupted {
                None
            } else {
                self.evaluate_if_due(epoch + 1, finished)?
            };
            let report = EpochReport {
                epoch: epoch + 1,
                epochs,
                steps,
                d_loss: per_step(stat::D_LOSS),
                g_loss: per_step(stat::G_LOSS),
                d_real: per_step(stat::D_REAL),
                d_fake: per_step(stat::D_FAKE),
                seconds,
                eval,
            };
            observer.on_epoch(&report)?;
            summary.reports.push(report);
            images = self.sample_images()?;
            observer.on_samples(epoch + 1, &images)?;
            if !finished && (epoch + 1) % self.config.sample_every == 0 {
                observer.on_grid(&SampleGrid {
                    epoch: epoch + 1,
                    images: &images,
                    last: false,
                })?;
            }
            if !finished && (epoch + 1) % self.checkpoints.every == 0 {
                self.save_checkpoint(epoch)?;
            }
            if finished {
                break;
            }
        }
        summary.checkpoint = Some(self.save_checkpoint(current_epoch)?);
        // The last epoch's grid, also kept as final.png.
        let last = summary.reports.last().map_or(0, |r| r.epoch);
        observer.on_grid(&SampleGrid {
            epoch: last,
            images: &images,
            last: true,
        })?;
        summary.steps = global_step;
        Ok(summary)
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}
