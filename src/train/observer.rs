//! What a training run tells the outside while it goes: executed-step
//! progress, each epoch's report and each epoch's sample images. The
//! [`Trainer`](super::Trainer) calls an [`Observer`]; the console display and
//! the run record (`crate::output::record`) are observers, and `(A, B)` feeds
//! two at once.

use super::EpochReport;
use crate::error::Result;

/// Where a run stands, counted in steps the backend has *executed* (the
/// trainer syncs the backend before reporting, so a GPU's queued work does
/// not count as done).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// 1-based epoch in progress.
    pub epoch: usize,
    pub epochs: usize,
    /// Steps of this epoch executed so far, and the epoch's step count.
    pub step: usize,
    pub steps: usize,
    /// Steps of the whole run executed so far, and the run's step count
    /// (`epochs` epochs, or fewer with a step limit).
    pub run_step: usize,
    pub run_steps: usize,
}

/// Receives a run's progress, reports and samples. Every method has a
/// default that does nothing; an error from `on_epoch` or `on_samples`
/// stops the run and is returned by it.
pub trait Observer {
    /// Some steps have executed (called every few dozen steps).
    fn on_progress(&mut self, _progress: &Progress) {}

    /// An epoch has ended.
    fn on_epoch(&mut self, _report: &EpochReport) -> Result<()> {
        Ok(())
    }

    /// The generator's images for the run's fixed sample inputs after
    /// `epoch` epochs (0: before training), as bytes (MNIST polarity), 100
    /// images of 28x28, row by row of the 10x10 grid.
    fn on_samples(&mut self, _epoch: usize, _images: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// An observer that only wants the epoch reports, as a closure.
pub struct OnEpoch<F>(pub F);

impl<F: FnMut(&EpochReport)> Observer for OnEpoch<F> {
    fn on_epoch(&mut self, report: &EpochReport) -> Result<()> {
        (self.0)(report);
        Ok(())
    }
}

impl<T: Observer + ?Sized> Observer for &mut T {
    fn on_progress(&mut self, progress: &Progress) {
        (**self).on_progress(progress)
    }
    fn on_epoch(&mut self, report: &EpochReport) -> Result<()> {
        (**self).on_epoch(report)
    }
    fn on_samples(&mut self, epoch: usize, images: &[u8]) -> Result<()> {
        (**self).on_samples(epoch, images)
    }
}

/// Both observers, the first one first.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn on_progress(&mut self, progress: &Progress) {
        self.0.on_progress(progress);
        self.1.on_progress(progress);
    }
    fn on_epoch(&mut self, report: &EpochReport) -> Result<()> {
        self.0.on_epoch(report)?;
        self.1.on_epoch(report)
    }
    fn on_samples(&mut self, epoch: usize, images: &[u8]) -> Result<()> {
        self.0.on_samples(epoch, images)?;
        self.1.on_samples(epoch, images)
    }
}
