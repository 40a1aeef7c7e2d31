//! The run record: an [`Observer`] of a training run that leaves behind, in
//! the output directory, the sample grids the trainer says are due
//! (`epoch_NNN.png`, `final.png`), `metrics.csv` (a row per epoch, flushed as
//! it goes), `losses.png`, `progress.gif` and `real.png`. The pictures are redrawn
//! after every epoch and written atomically, so a run that stops early (an
//! error, Ctrl-C, a crash) still leaves valid pictures up to its last
//! finished epoch.
//!
//! The metrics row is written at once; the pictures are drawn and encoded on
//! a background thread, so the training loop goes back to the GPU instead of
//! waiting for PNG and GIF encoders. When epochs come faster than pictures,
//! the thread adds every pending frame and epoch and then writes each file
//! once. A failed picture write is returned by the record's next call (or by
//! [`RunRecord::finish`]); [`RunRecord::finish`], or dropping the record,
//! waits for the pictures in flight.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::animation::Animation;
use super::compare::{write_real_vs_generated, RealSamples};
use super::grid::{grid_scale, write_grid};
use super::metrics::MetricsCsv;
use super::plot::write_losses;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{ImageShape, ModelSpec};
use crate::report::{EpochReport, Observer, SampleGrid, GRID_SIDE};

pub const METRICS_FILE: &str = "metrics.csv";
pub const LOSSES_FILE: &str = "losses.png";
pub const PROGRESS_FILE: &str = "progress.gif";
pub const REAL_FILE: &str = "real.png";
/// The run's last sample grid.
pub const FINAL_FILE: &str = "final.png";

/// What a run leaves besides its sample grids; see the module doc.
pub struct RunRecord {
    out_dir: PathBuf,
    /// The images' shape, from the model.
    image_shape: ImageShape,
    /// The sample grids written, in order.
    grids: Vec<PathBuf>,
    metrics: MetricsCsv,
    reports: Vec<EpochReport>,
    pictures: PictureWriter,
}

impl RunRecord {
    /// Creates the output directory and `metrics.csv` (header only), and
    /// picks the real images for `real.png` from `data` with `seed`.
    pub fn new(out_dir: &Path, spec: &ModelSpec, data: &Dataset, seed: u32) -> Result<RunRecord> {
        std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
        let real = RealSamples::pick(data, &spec.class_names, seed);
        Ok(RunRecord {
            out_dir: out_dir.to_path_buf(),
            image_shape: spec.image_shape(),
            grids: Vec::new(),
            metrics: MetricsCsv::create(&out_dir.join(METRICS_FILE))?,
            reports: Vec::new(),
            pictures: PictureWriter::start(out_dir, spec, real, Vec::new())?,
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
        crate::util::write_atomic(&path, text.as_bytes())?;
        let real = RealSamples::pick(data, &spec.class_names, seed);
        Ok(RunRecord {
            out_dir: out_dir.to_path_buf(),
            image_shape: spec.image_shape(),
            grids: Vec::new(),
            metrics: MetricsCsv::append(&path)?,
            pictures: PictureWriter::start(out_dir, spec, real, reports.clone())?,
            reports,
        })
    }

    /// The files this record writes (the pictures exist once the first
    /// samples, and for `losses.png` the first epoch, have been seen, and
    /// [`finish`](Self::finish) has returned).
    pub fn files(&self) -> Vec<PathBuf> {
        [METRICS_FILE, LOSSES_FILE, PROGRESS_FILE, REAL_FILE]
            .iter()
            .map(|name| self.out_dir.join(name))
            .collect()
    }

    /// The sample grids written so far (`epoch_NNN.png`, and `final.png` last).
    pub fn grids(&self) -> &[PathBuf] {
        &self.grids
    }

    /// The reports seen so far.
    pub fn reports(&self) -> &[EpochReport] {
        &self.reports
    }

    /// Waits until every picture asked for so far is written; the first
    /// picture that could not be written is the error. Later epochs may
    /// still be recorded (the writer restarts).
    pub fn finish(&mut self) -> Result<()> {
        self.pictures.finish()
    }
}

impl Observer for RunRecord {
    fn on_epoch(&mut self, report: &EpochReport) -> Result<()> {
        self.metrics.write(report)?;
        self.reports.push(report.clone());
        self.pictures.send(Picture::Epoch(report.clone()))
    }

    fn on_samples(&mut self, epoch: usize, images: &[u8]) -> Result<()> {
        self.pictures.send(Picture::Samples(epoch, images.to_vec()))
    }

    /// Writes the grid at once (a failure ends the run there), 10 x 10
    /// images at [`grid_scale`] (2 for digits).
    fn on_grid(&mut self, grid: &SampleGrid) -> Result<()> {
        let mut names = vec![format!("epoch_{:03}.png", grid.epoch)];
        if grid.last {
            names.push(FINAL_FILE.to_string());
        }
        for name in names {
            let path = self.out_dir.join(name);
            let shape = self.image_shape;
            write_grid(
                &path,
                grid.images,
                shape,
                (GRID_SIDE, GRID_SIDE),
                grid_scale(shape),
            )?;
            self.grids.push(path);
        }
        Ok(())
    }
}

/// A request to the picture thread.
enum Picture {
    /// An epoch's report, for `losses.png`.
    Epoch(EpochReport),
    /// The generator's sample images after an epoch, for `progress.gif` and
    /// `real.png`.
    Samples(usize, Vec<u8>),
}

/// What the picture thread keeps between requests.
struct Pictures {
    out_dir: PathBuf,
    reports: Vec<EpochReport>,
    animation: Animation,
    real: RealSamples,
}

impl Pictures {
    /// Takes in `first` and every request already waiting, then writes each
    /// picture they changed once.
    fn handle(&mut self, first: Picture, queue: &Receiver<Picture>) -> Result<()> {
        let mut losses = false;
        let mut latest = None;
        for picture in std::iter::once(first).chain(queue.try_iter()) {
            match picture {
                Picture::Epoch(report) => {
                    self.reports.push(report);
                    losses = true;
                }
                Picture::Samples(epoch, images) => {
                    self.animation.push(epoch, &images);
                    latest = Some((epoch, images));
                }
            }
        }
        if losses {
            write_losses(&self.out_dir.join(LOSSES_FILE), &self.reports)?;
        }
        if let Some((epoch, images)) = latest {
            self.animation
                .write_gif(&self.out_dir.join(PROGRESS_FILE))?;
            write_real_vs_generated(&self.out_dir.join(REAL_FILE), &self.real, &images, epoch)?;
        }
        Ok(())
    }
}

/// The picture thread: its queue, the thread, and the first error it met.
struct PictureWriter {
    queue: Option<Sender<Picture>>,
    thread: Option<JoinHandle<Pictures>>,
    state: Option<Pictures>,
    error: Arc<Mutex<Option<Error>>>,
}

impl PictureWriter {
    fn start(
        out_dir: &Path,
        spec: &ModelSpec,
        real: RealSamples,
        reports: Vec<EpochReport>,
    ) -> Result<Self> {
        let mut writer = PictureWriter {
            queue: None,
            thread: None,
            state: Some(Pictures {
                out_dir: out_dir.to_path_buf(),
                reports,
                animation: Animation::new(spec.image_shape(), GRID_SIDE),
                real,
            }),
            error: Arc::new(Mutex::new(None)),
        };
        writer.spawn()?;
        Ok(writer)
    }

    /// Starts the thread on the kept state.
    fn spawn(&mut self) -> Result<()> {
        let Some(mut pictures) = self.state.take() else {
            return Ok(());
        };
        let (sender, queue) = channel::<Picture>();
        let error = self.error.clone();
        let thread = std::thread::Builder::new()
            .name("gan-gpu pictures".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    if let Err(e) = pictures.handle(first, &queue) {
                        if let Ok(mut slot) = error.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                }
                pictures
            })
            .map_err(|e| Error::io(Path::new("picture writer thread"), e))?;
        self.queue = Some(sender);
        self.thread = Some(thread);
        Ok(())
    }

    /// The first error the thread met, taken.
    fn take_error(&self) -> Result<()> {
        match self.error.lock().ok().and_then(|mut slot| slot.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Queues a picture request; an earlier request's failure comes back here.
    fn send(&mut self, picture: Picture) -> Result<()> {
        self.take_error()?;
        if self.queue.is_none() {
            self.spawn()?;
        }
        match &self.queue {
            Some(queue) if queue.send(picture).is_ok() => Ok(()),
            _ => Err(Error::io(
                Path::new("picture writer thread"),
                std::io::Error::other("stopped"),
            )),
        }
    }

    /// Lets the thread write everything queued, stops it, keeps its state.
    fn finish(&mut self) -> Result<()> {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(pictures) => self.state = Some(pictures),
                Err(_) => {
                    return Err(Error::io(
                        Path::new("picture writer thread"),
                        std::io::Error::other("panicked"),
                    ))
                }
            }
        }
        self.take_error()
    }
}

impl Drop for PictureWriter {
    fn drop(&mut self) {
        // Pictures in flight are finished; an error here has no one to go to.
        let _ = self.finish();
    }
}
