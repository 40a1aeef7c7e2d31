//! The run record: an [`Observer`] of a training run that leaves behind, in
//! the output directory, `metrics.csv` (a row per epoch, flushed as it goes),
//! `losses.png`, `progress.gif` and `real.png`. The pictures are redrawn
//! after every epoch and written atomically, so a run that stops early (an
//! error, Ctrl-C, a crash) still leaves valid pictures up to its last
//! finished epoch.

use std::path::{Path, PathBuf};

use super::animation::Animation;
use super::compare::{write_real_vs_generated, RealSamples};
use super::metrics::MetricsCsv;
use super::plot::write_losses;
use crate::data::{Dataset, MNIST_SIDE};
use crate::error::{Error, Result};
use crate::model::ModelSpec;
use crate::train::{EpochReport, Observer, GRID_SIDE};

pub const METRICS_FILE: &str = "metrics.csv";
pub const LOSSES_FILE: &str = "losses.png";
pub const PROGRESS_FILE: &str = "progress.gif";
pub const REAL_FILE: &str = "real.png";

/// What a run leaves besides its sample grids; see the module doc.
pub struct RunRecord {
    out_dir: PathBuf,
    metrics: MetricsCsv,
    reports: Vec<EpochReport>,
    animation: Animation,
    real: RealSamples,
}

impl RunRecord {
    /// Creates the output directory and `metrics.csv` (header only), and
    /// picks the real images for `real.png` from `data` with `seed`.
    pub fn new(out_dir: &Path, spec: &ModelSpec, data: &Dataset, seed: u32) -> Result<RunRecord> {
        std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
        Ok(RunRecord {
            out_dir: out_dir.to_path_buf(),
            metrics: MetricsCsv::create(&out_dir.join(METRICS_FILE))?,
            reports: Vec::new(),
            animation: Animation::new(MNIST_SIDE, GRID_SIDE),
            real: RealSamples::pick(data, spec.classes, seed),
        })
    }

    /// The record of a resumed run whose checkpoint had finished `completed`
    /// epochs: keeps those epochs' rows of the existing `metrics.csv` (so
    /// `losses.png` shows the whole run; rows of a partial epoch that is now
    /// being redone are dropped) and appends from there. The animation holds
    /// frames from the resume point on.
    pub fn resume(
        out_dir: &Path,
        spec: &ModelSpec,
        data: &Dataset,
        seed: u32,
        completed: usize,
    ) -> Result<RunRecord> {
        std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
        let path = out_dir.join(METRICS_FILE);
        let mut reports = MetricsCsv::read_reports(&path)?;
        reports.retain(|r| r.epoch <= completed);
        let mut text = format!("{}\n", super::metrics::HEADER);
        for r in &reports {
            text.push_str(&super::metrics::row(r));
            text.push('\n');
        }
        super::write_atomic(&path, text.as_bytes())?;
        Ok(RunRecord {
            out_dir: out_dir.to_path_buf(),
            metrics: MetricsCsv::append(&path)?,
            reports,
            animation: Animation::new(MNIST_SIDE, GRID_SIDE),
            real: RealSamples::pick(data, spec.classes, seed),
        })
    }

    /// The files this record writes (the pictures exist once the first
    /// samples, and for `losses.png` the first epoch, have been seen).
    pub fn files(&self) -> Vec<PathBuf> {
        [METRICS_FILE, LOSSES_FILE, PROGRESS_FILE, REAL_FILE]
            .iter()
            .map(|name| self.out_dir.join(name))
            .collect()
    }

    /// The reports seen so far.
    pub fn reports(&self) -> &[EpochReport] {
        &self.reports
    }
}

impl Observer for RunRecord {
    fn on_epoch(&mut self, report: &EpochReport) -> Result<()> {
        self.metrics.write(report)?;
        self.reports.push(report.clone());
        write_losses(&self.out_dir.join(LOSSES_FILE), &self.reports)
    }

    fn on_samples(&mut self, epoch: usize, images: &[u8]) -> Result<()> {
        self.animation.push(epoch, images);
        self.animation
            .write_gif(&self.out_dir.join(PROGRESS_FILE))?;
        write_real_vs_generated(&self.out_dir.join(REAL_FILE), &self.real, images, epoch)
    }
}
