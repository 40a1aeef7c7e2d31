//! Checkpointing a [`Trainer`]: capturing the complete run state from the
//! backend into a [`Checkpoint`], writing it, resuming from one
//! ([`Trainer::resume`]) and stopping cleanly when a stop flag is raised.
//! The epoch loop (`super::Trainer::run`) calls in here; the file format is
//! [`crate::checkpoint`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::step::{discriminator_passes_per_step, generator_passes_per_step};
use super::{TrainConfig, Trainer};
use crate::backend::{stat, Backend, Clock};
use crate::checkpoint::{self, Checkpoint, RunSettings};
use crate::data::Dataset;
use crate::error::{Error, Result};

/// Where a run starts: epoch `epoch` (0-based) after `cursor` of its
/// batches, `step` steps into the run, with the epoch's partial stats.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Start {
    pub epoch: usize,
    pub cursor: usize,
    pub step: usize,
    /// The partial epoch's stats (None: zeros).
    pub stats: Option<Vec<f32>>,
}

impl Start {
    /// Whether this is a fresh run.
    pub fn is_beginning(&self) -> bool {
        self.epoch == 0 && self.cursor == 0 && self.step == 0
    }

    /// The clock cursor and stats that epoch `epoch` starts with.
    pub fn position_in(&self, epoch: usize) -> (usize, Vec<f32>) {
        match &self.stats {
            Some(stats) if epoch == self.epoch => (self.cursor, stats.clone()),
            _ if epoch == self.epoch => (self.cursor, vec![0.0; stat::COUNT]),
            _ => (0, vec![0.0; stat::COUNT]),
        }
    }
}

/// When the epoch loop writes checkpoints, and the flag that stops it.
#[derive(Clone, Debug)]
pub struct CheckpointOptions {
    /// Write `checkpoint.safetensors` every this many epochs (and always at
    /// the end of a run and when stopped).
    pub every: usize,
    /// Raised (e.g. by a Ctrl-C handler) to stop between two steps.
    pub stop: Option<Arc<AtomicBool>>,
    /// The last checkpoint of this run known to be good: the one resumed
    /// from, then each one saved. Named when the run diverges or fails.
    pub last_good: Option<PathBuf>,
    /// The training data's directory, saved in the checkpoint's settings.
    pub data_dir: Option<PathBuf>,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        CheckpointOptions {
            every: 10,
            stop: None,
            last_good: None,
            data_dir: None,
        }
    }
}

impl CheckpointOptions {
    /// Rejects a checkpoint interval no run can use (`--checkpoint-every 0`).
    pub fn check_every(every: usize) -> Result<()> {
        if every == 0 {
            return Err(Error::config("--checkpoint-every", "must be at least 1"));
        }
        Ok(())
    }

    /// Whether the stop flag has been raised.
    pub fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }
}

impl<'a, B: Backend> Trainer<'a, B> {
    /// Writes a checkpoint every `every` epochs (at least 1; default 10).
    pub fn set_checkpoint_every(&mut self, every: usize) -> Result<()> {
        CheckpointOptions::check_every(every)?;
        self.checkpoints.every = every;
        Ok(())
    }

    /// The run stops between two steps once `flag` is raised, writing a
    /// checkpoint at that step ([`TrainSummary::interrupted`](super::TrainSummary)).
    pub fn set_stop_flag(&mut self, flag: Arc<AtomicBool>) {
        self.checkpoints.stop = Some(flag);
    }

    /// Saves `dir` in the checkpoints as the training data's directory
    /// (where `eval` looks for its test set).
    pub fn set_data_dir(&mut self, dir: Option<PathBuf>) {
        self.checkpoints.data_dir = dir;
    }

    /// Where this run's checkpoint goes: `checkpoint.safetensors` in the output directory.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.config.out_dir.join(checkpoint::FILE_NAME)
    }

    /// The complete state now, between steps; `epoch` is the 0-based epoch
    /// the last step belonged to. At an epoch's end the checkpoint points at
    /// the start of the next one.
    pub fn capture(&mut self, epoch: usize) -> Result<Checkpoint> {
        let mut clock = self.backend.clock()?;
        let mut stats = self.backend.read(self.state.stats)?;
        let mut epoch = epoch;
        if clock.cursor as usize >= self.steps_per_epoch() {
            epoch += 1;
            clock.cursor = 0;
            stats = vec![0.0; stat::COUNT];
        }
        // The health flags are not part of the saved state.
        stats.truncate(stat::COUNT);
        let mut settings = RunSettings::new(
            &self.config.spec,
            self.config.seed,
            self.config.sample_every,
            self.checkpoints.every,
            self.examples,
        );
        settings.data = self
            .checkpoints
            .data_dir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned());
        let generator_passes = i64::from(clock.step) * generator_passes_per_step(&self.config.spec);
        let generator_ema = match &self.state.generator_ema {
            Some(average) => Some(average.state(self.backend, generator_passes)?),
            None => None,
        };
        Ok(Checkpoint {
            settings,
            clock,
            epoch,
            stats,
            generator: self.state.generator.state(self.backend, generator_passes)?,
            discriminator: self.state.discriminator.state(
                self.backend,
                i64::from(clock.step) * discriminator_passes_per_step(&self.config.spec),
            )?,
            generator_ema,
        })
    }

    /// Captures the state (see [`capture`](Self::capture)) and writes it
    /// atomically to [`checkpoint_path`](Self::checkpoint_path).
    pub fn save_checkpoint(&mut self, epoch: usize) -> Result<PathBuf> {
        let path = self.checkpoint_path();
        self.capture(epoch)?.save(&path)?;
        self.checkpoints.last_good = Some(path.clone());
        Ok(path)
    }

    /// The last checkpoint of this run known to be good (resumed from or
    /// saved), if any: where a failed run can continue from.
    pub fn last_good_checkpoint(&self) -> Option<&Path> {
        self.checkpoints.last_good.as_deref()
    }

    /// A trainer that continues the run saved in `saved` (read from `path`,
    /// named in errors). `config` must describe the same run; it may differ
    /// only in the epochs (more, to extend the run), the output directory,
    /// the sample interval and `max_steps` (a total, counted from the run's
    /// first step). [`RunSettings::resume_with`] builds such a config from flags.
    pub fn resume(
        backend: &'a mut B,
        config: TrainConfig,
        data: &Dataset,
        saved: &Checkpoint,
        path: &Path,
    ) -> Result<Self> {
        let bad = |problem: String| Error::Checkpoint {
            path: path.to_path_buf(),
            problem,
        };
        let mut saved_spec = saved.spec(path)?;
        saved_spec.epochs = config.spec.epochs;
        if saved_spec != config.spec || saved.settings.seed != config.seed {
            return Err(bad(
                "the run to resume has other model settings than the checkpoint".into(),
            ));
        }
        if saved.settings.train_images != data.count {
            return Err(bad(format!(
                "the checkpoint was trained on {} images, but the data set has {} (--data)",
                saved.settings.train_images, data.count
            )));
        }
        let mut trainer = Trainer::new(backend, config, data)?;
        let steps_per_epoch = trainer.steps_per_epoch();
        let Clock { step, cursor, .. } = saved.clock;
        let (step, cursor) = (step as usize, cursor as usize);
        if cursor >= steps_per_epoch
            || saved.epoch.checked_mul(steps_per_epoch).map(|s| s + cursor) != Some(step)
        {
            return Err(bad(format!(
                "inconsistent position: epoch {}, batch {cursor}, step {step} with {steps_per_epoch} steps per epoch",
                saved.epoch
            )));
        }
        let epochs = trainer.config.spec.epochs;
        if saved.epoch >= epochs {
            return Err(Error::config(
                "--epochs",
                format!(
                    "the checkpoint has finished all {epochs} epochs; pass --epochs N with N above {} to continue",
                    saved.epoch
                ),
            ));
        }
        if let Some(max) = trainer.config.max_steps {
            if max <= step {
                return Err(Error::config(
                    "--max-steps",
                    format!("{max} counts from the run's start, and the checkpoint is already at step {step}"),
                ));
            }
        }
        for (name, net, state) in [
            (
                "generator",
                &trainer.config.spec.generator,
                &saved.generator,
            ),
            (
                "discriminator",
                &trainer.config.spec.discriminator,
                &saved.discriminator,
            ),
        ] {
            if !state.fits(net) {
                let (len, buffers) = checkpoint::flat_lengths(net);
                return Err(bad(format!(
                    "the {name} state does not have {len} values and {buffers} statistics"
                )));
            }
        }
        match (&trainer.state.generator_ema, &saved.generator_ema) {
            (Some(average), Some(state)) if state.fits(&trainer.config.spec.generator) => {
                average.restore(trainer.backend, state)?;
            }
            (None, None) => {}
            _ => {
                return Err(bad(
                    "the generator's moving average does not fit the run's --ema".into(),
                ))
            }
        }
        if saved.stats.len() != stat::COUNT {
            return Err(bad("the epoch stats do not have 4 values".into()));
        }
        let stats = trainer.state.stats;
        trainer
            .state
            .generator
            .restore(trainer.backend, &saved.generator)?;
        trainer
            .state
            .discriminator
            .restore(trainer.backend, &saved.discriminator)?;
        trainer
            .backend
            .write(stats, &super::health::with_flags(saved.stats.clone()))?;
        trainer.checkpoints.last_good = Some(path.to_path_buf());
        trainer.start = Start {
            epoch: saved.epoch,
            cursor,
            step,
            stats: Some(saved.stats.clone()),
        };
        Ok(trainer)
    }
}
