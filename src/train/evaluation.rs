//! Measuring the generator while it trains (`--eval-every N`): every N epochs
//! the trainer generates images from fresh noise and hands them to an
//! [`ImageEvaluator`] (the MNIST classifier's FID, score, coverage and label
//! accuracy, `crate::eval`); the figures join that epoch's report, and so its
//! line and its `metrics.csv` row.

use super::Trainer;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::report::{EvalFigures, ImageEvaluator};

/// When and how much to evaluate.
pub struct EvalSchedule {
    /// Every this many epochs (and after the last).
    pub every: usize,
    /// Images per evaluation.
    pub count: usize,
    pub evaluator: Box<dyn ImageEvaluator>,
}

impl EvalSchedule {
    /// Rejects an interval or image count no evaluation can use, naming the flag.
    pub fn validate(every: usize, count: usize) -> Result<()> {
        if every == 0 {
            return Err(Error::config("--eval-every", "must be at least 1"));
        }
        if count < 2 {
            return Err(Error::config(
                "--eval-count",
                "must be at least 2 (the FID fits a covariance)",
            ));
        }
        if count > MAX_EVAL_IMAGES {
            return Err(Error::config(
                "--eval-count",
                format!("{count} is above the limit of {MAX_EVAL_IMAGES}"),
            ));
        }
        Ok(())
    }
}

/// The most images one evaluation generates (their bytes are held in memory).
pub const MAX_EVAL_IMAGES: usize = 1_000_000;

impl<B: Backend> Trainer<'_, B> {
    /// Evaluates the generator every `schedule.every` epochs.
    pub fn set_evaluation(&mut self, schedule: EvalSchedule) -> Result<()> {
        EvalSchedule::validate(schedule.every, schedule.count)?;
        self.evaluation = Some(schedule);
        Ok(())
    }

    /// Takes the evaluation schedule back (to hand it to another trainer,
    /// e.g. after the backend was recreated).
    pub fn take_evaluation(&mut self) -> Option<EvalSchedule> {
        self.evaluation.take()
    }

    /// The figures for the generator after `epochs_done` epochs, if an
    /// evaluation is due then (`last`: the run's final epoch).
    pub(super) fn evaluate_if_due(
        &mut self,
        epochs_done: usize,
        last: bool,
    ) -> Result<Option<EvalFigures>> {
        let Some(schedule) = &mut self.evaluation else {
            return Ok(None);
        };
        if !last && !epochs_done.is_multiple_of(schedule.every) {
            return Ok(None);
        }
        let (images, labels) = super::generate_images(
            self.backend,
            &self.state,
            self.sample_output,
            schedule.count,
            self.config.seed,
        )?;
        schedule
            .evaluator
            .evaluate(&images, labels.as_deref())
            .map(Some)
    }
}
