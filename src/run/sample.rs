//! `gan-gpu sample`: images from a checkpoint's generator, written as a
//! `.png` grid, IDX, `.npy` or a directory of PNGs.

use std::path::PathBuf;

use crate::error::{Error, Result};

use super::choice::{self, BackendChoice, Chosen};
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::GpuOptions;
use crate::checkpoint::Checkpoint;
use crate::outln;
use crate::sample::{self, SampleRequest};

/// The settings of `gan-gpu sample`.
#[derive(Clone, Debug)]
pub struct SampleSettings {
    /// The checkpoint whose generator draws the images.
    pub checkpoint: PathBuf,
    /// Number of images (None: all rows of `noise`, else [`sample::DEFAULT_COUNT`]).
    pub count: Option<usize>,
    /// A float32 `.npy` of shape (N, noise dim): the generator's noise, row
    /// by row, instead of the seeded generator's.
    pub noise: Option<PathBuf>,
    /// The class of every image, by name or index (conditional models;
    /// None: rows of ten cycle through the classes).
    pub label: Option<String>,
    /// Noise seed (None: the checkpoint's training seed).
    pub seed: Option<u32>,
    /// Batch norm uses each chunk of up to 256 images' own statistics
    /// instead of the running ones (`--batch-stats`).
    pub batch_stats: bool,
    /// Draw from the generator's own weights even where the checkpoint
    /// holds their moving average (`--no-ema`).
    pub raw_generator: bool,
    pub backend: BackendChoice,
    /// The output file (its extension picks the format) or directory.
    pub out: PathBuf,
}

/// Generates the images and writes them, checking every setting before a
/// backend is created. `auto` takes any GPU adapter, else the CPU path.
pub fn sample(settings: &SampleSettings) -> Result<()> {
    let path = &settings.checkpoint;
    let saved = Checkpoint::load(path)?;
    let spec = saved.spec(path)?;
    let noise = match &settings.noise {
        Some(file) => Some((file, sample::read_noise(file, &spec)?)),
        None => None,
    };
    let count = match (&noise, settings.count) {
        (Some((file, (rows, _))), Some(n)) if n > *rows => {
            return Err(Error::config(
                "--n",
                format!(
                    "{n} images asked for, {} holds {rows} noise rows",
                    file.display()
                ),
            ))
        }
        (_, Some(n)) => n,
        (Some((_, (rows, _))), None) => *rows,
        (None, None) => sample::DEFAULT_COUNT,
    };
    let label = match &settings.label {
        Some(text) => Some(sample::parse_label(&spec, text)?),
        None => None,
    };
    let request = SampleRequest {
        count,
        label,
        seed: settings.seed.unwrap_or(saved.settings.seed),
        batch_stats: settings.batch_stats,
        raw_generator: settings.raw_generator,
    };
    let noise = noise.as_ref().map(|(_, (_, values))| values.as_slice());
    // Reject bad flags before creating a backend.
    request.validate(&spec)?;
    sample::check_format(sample::Format::from_path(&settings.out)?, &spec)?;
    let chosen = choice::open_any(
        settings.backend,
        &GpuOptions::default(),
        Some("sampling on the CPU path"),
    )?;
    let images = match chosen {
        Chosen::Gpu(mut gpu, _) => {
            sample::generate_with_noise(&mut *gpu, &saved, path, &request, noise)?
        }
        Chosen::Cpu => {
            sample::generate_with_noise(&mut CpuBackend::new(), &saved, path, &request, noise)?
        }
    };
    sample::write(&settings.out, &images, &spec, &request)?;
    outln!(
        "{} images from {} -> {}",
        request.count,
        sample::weights_description(&saved, &request),
        settings.out.display()
    )?;
    Ok(())
}
