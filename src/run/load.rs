//! Loading a run's data: the training set of `--data` (MNIST-format IDX
//! files or a folder of images, through the decode cache, with its
//! notices), and the labelled sets the built-in metrics read
//! ([`EvalData`]): a data directory's IDX training and test files, or a
//! labelled folder's training share and held-back share
//! (`data::folder::hold_out`).

use std::path::Path;

use crate::data::folder::{self, FolderOptions};
use crate::data::{self, cache, Dataset, MnistSplit};
use crate::errln;
use crate::error::Result;

/// The labelled data the built-in classifier trains on and the images are
/// measured against.
pub struct EvalData {
    /// The classifier's training set and the test set (the FID's reference).
    pub split: MnistSplit,
    /// What the test set is, for the report: `test set: PATH`, or the
    /// held-back share of a folder.
    pub test_description: String,
}

impl EvalData {
    /// The IDX files of a data directory, or the held-back share of a
    /// labelled folder (decoded with `options`, as the run that trained on it
    /// did); an error for an unlabelled folder.
    pub fn load(dir: &Path, options: &FolderOptions, quiet: bool) -> Result<EvalData> {
        if folder::is_image_folder(dir) {
            let set = load_training_set(dir, options, quiet)?;
            return EvalData::of_folder(&set);
        }
        let split = data::load_mnist(dir)?;
        let test_description = format!("test set: {}", split.test.images_path.display());
        Ok(EvalData {
            split,
            test_description,
        })
    }

    /// A folder's images, already loaded, split into a training share and
    /// the held-back share.
    pub fn of_folder(set: &Dataset) -> Result<EvalData> {
        let split = folder::hold_out(set)?;
        let test_description = format!(
            "test set: the held-back share of {}, {} of its {} images (every {}th image of each class)",
            set.images_path.display(),
            split.test.count,
            set.count,
            folder::HOLD_OUT_EVERY
        );
        Ok(EvalData {
            split,
            test_description,
        })
    }
}

/// The training set of `--data` (see [`data::load_training_data`]), with a
/// decoding progress bar (none when `quiet`) and a notice of the files it
/// skipped.
pub fn load_training_set(dir: &Path, options: &FolderOptions, quiet: bool) -> Result<Dataset> {
    let bar = std::sync::OnceLock::new();
    let started = std::time::Instant::now();
    let cache = cache::default_dir();
    let (set, used) = data::load_training_data(dir, options, cache.as_deref(), |done, total| {
        bar.get_or_init(|| crate::output::console::decode_bar(total, quiet))
            .set_position(done as u64);
    })?;
    if let Some(bar) = bar.get() {
        bar.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    let count = set.dataset.count;
    match used {
        Some(cache::CacheUse::Hit(path)) if !quiet => {
            errln!(
                "notice: {count} images of {} from the decode cache {} ({seconds:.1} s)",
                dir.display(),
                path.display()
            );
        }
        Some(cache::CacheUse::Built(path)) if !quiet => {
            errln!(
                "notice: decoded {count} images of {} in {seconds:.1} s; cached in {}",
                dir.display(),
                path.display()
            );
        }
        Some(cache::CacheUse::Rebuilt(path, why)) => {
            errln!("notice: rebuilt the decode cache of {} ({why}): {count} images in {seconds:.1} s, cached in {}", dir.display(), path.display());
        }
        Some(cache::CacheUse::NotWritten(path, why)) => {
            errln!("notice: decoded {count} images of {} in {seconds:.1} s, but the decode cache {} could not be written: {why}", dir.display(), path.display());
        }
        _ => {}
    }
    if !set.skipped.is_empty() {
        let first: Vec<String> = set
            .skipped
            .iter()
            .take(3)
            .map(|(path, why)| format!("{} ({why})", path.display()))
            .collect();
        errln!(
            "notice: skipped {} of the files under {}: {}{}",
            set.skipped.len(),
            dir.display(),
            first.join(", "),
            if set.skipped.len() > 3 { ", ..." } else { "" }
        );
    }
    Ok(set.dataset)
}
