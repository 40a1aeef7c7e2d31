//! `gan-gpu sample`: images from a checkpoint's generator, written as a
//! `.png` grid, IDX or `.npy`.

use std::path::PathBuf;

use crate::error::Result;

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
    /// Number of images.
    pub count: usize,
    /// The digit of every image (conditional models; None: rows of ten cycle through 0-9).
    pub label: Option<usize>,
    /// Noise seed (None: the checkpoint's training seed).
    pub seed: Option<u32>,
    pub backend: BackendChoice,
    /// The output file; its extension picks the format.
    pub out: PathBuf,
}

/// Generates the images and writes them, checking every setting before a
/// backend is created. `auto` takes any GPU adapter, else the CPU path.
pub fn sample(settings: &SampleSettings) -> Result<()> {
    let path = &settings.checkpoint;
    let saved = Checkpoint::load(path)?;
    let spec = saved.spec(path)?;
    let request = SampleRequest {
        count: settings.count,
        label: settings.label,
        seed: settings.seed.unwrap_or(saved.settings.seed),
    };
    // Reject bad flags before creating a backend.
    request.validate(&spec)?;
    sample::Format::from_path(&settings.out)?;
    let chosen = choice::open_any(
        settings.backend,
        &GpuOptions::default(),
        Some("sampling on the CPU path"),
    )?;
    let images = match chosen {
        Chosen::Gpu(mut gpu, _) => sample::generate(&mut *gpu, &saved, path, &request)?,
        Chosen::Cpu => sample::generate(&mut CpuBackend::new(), &saved, path, &request)?,
    };
    sample::write(&settings.out, &images, &spec, &request)?;
    outln!("{} images -> {}", request.count, settings.out.display())?;
    Ok(())
}
