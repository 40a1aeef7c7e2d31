//! The small types that training, the run record, the console and the
//! evaluation exchange: an epoch's report, executed-step progress, the
//! observer that hears of both (and of each epoch's sample images), and the
//! evaluation figures with the evaluator that makes them. They stand below
//! `train`, `output` and `eval`, so none of those imports another for them.

use crate::error::Result;

/// Sample grids are 10 x 10; the conditional model's rows are digits 0..9.
pub const GRID_SIDE: usize = 10;

/// What one epoch did: averages over its steps.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    pub epochs: usize,
    pub steps: usize,
    pub d_loss: f32,
    pub g_loss: f32,
    /// Mean D(x) over real images.
    pub d_real: f32,
    /// Mean D(G(z)) over generated images.
    pub d_fake: f32,
    pub seconds: f64,
    /// The generator's figures, on epochs with an evaluation (`--eval-every`).
    pub eval: Option<EvalFigures>,
}

impl std::fmt::Display for EpochReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {:>3}/{}  D loss {:.4}  G loss {:.4}  D(x) {:.3}  D(G(z)) {:.3}  {:.1} s ({:.1} steps/s)",
            self.epoch,
            self.epochs,
            self.d_loss,
            self.g_loss,
            self.d_real,
            self.d_fake,
            self.seconds,
            self.steps as f64 / self.seconds.max(1e-9)
        )?;
        if let Some(eval) = &self.eval {
            write!(f, "  {eval}")?;
        }
        Ok(())
    }
}

/// The figures of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalFigures {
    /// Images measured.
    pub count: usize,
    pub fid: f64,
    /// The classifier score (Inception Score with the MNIST classifier).
    pub score: f64,
    /// Classes holding at least 2% of the images.
    pub covered: usize,
    /// Conditional models: the share drawn as the digit asked for.
    pub label_accuracy: Option<f64>,
}

impl std::fmt::Display for EvalFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FID {:.2}  score {:.2}  classes {}/10",
            self.fid, self.score, self.covered
        )?;
        if let Some(accuracy) = self.label_accuracy {
            write!(f, "  labels {:.1}%", 100.0 * accuracy)?;
        }
        Ok(())
    }
}

/// Measures a set of images (28 x 28 bytes each, MNIST polarity), with the
/// digit asked of each for conditional models.
pub trait ImageEvaluator {
    fn evaluate(&mut self, images: &[u8], labels: Option<&[u8]>) -> Result<EvalFigures>;
}

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

    /// A sample grid is due (the run record writes it as `epoch_NNN.png`,
    /// and the last one also as `final.png`).
    fn on_grid(&mut self, _grid: &SampleGrid) -> Result<()> {
        Ok(())
    }
}

/// A sample grid that is due: at epoch 0 of a fresh run, every
/// `sample_every` epochs, and the run's last (which is also its final grid).
#[derive(Clone, Copy, Debug)]
pub struct SampleGrid<'a> {
    /// Epochs done (0: before training).
    pub epoch: usize,
    /// The grid's images, as in [`Observer::on_samples`].
    pub images: &'a [u8],
    /// Whether this is the run's last grid.
    pub last: bool,
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
    fn on_grid(&mut self, grid: &SampleGrid) -> Result<()> {
        (**self).on_grid(grid)
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
    fn on_grid(&mut self, grid: &SampleGrid) -> Result<()> {
        self.0.on_grid(grid)?;
        self.1.on_grid(grid)
    }
}
