//! Training data: MNIST-format data sets loaded from a directory of IDX files
//! (the bundled copy under `data/mnist` by default, or `--data DIR`), or any
//! folder of images ([`folder`]), checked for consistency before any
//! training starts.
//!
//! A data directory holds the four standard files, each raw or gzipped
//! (`.gz`), with either the usual `-idx3-ubyte` name or the common
//! `.idx3-ubyte` variant: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`.

pub mod cache;
pub mod folder;
pub mod idx;
pub mod npy;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The number of MNIST classes; every label must be below it.
pub const NUM_CLASSES: usize = 10;

/// The image side MNIST models are built for (28x28 = 784 inputs).
pub const MNIST_SIDE: usize = 28;

/// Which half of a data directory to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training set (`train-*`, 60000 images for MNIST).
    Train,
    /// The test set (`t10k-*`, 10000 images for MNIST).
    Test,
}

impl Split {
    /// The file-name prefix: `train` or `t10k`.
    pub fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// A labelled set of images: grey (IDX files: MNIST polarity, 0 = background,
/// 255 = ink; a folder: 0 = black) or RGB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// `count * channels * rows * cols` bytes, image after image, each
    /// channel-planar and row-major.
    pub images: Vec<u8>,
    /// `count` labels, each below `classes.len()` (all 0 when unlabelled).
    pub labels: Vec<u8>,
    /// The name of each class (label i is `classes[i]`): the digits for IDX
    /// files, the class folders' names for a labelled folder, none for an
    /// unlabelled one.
    pub classes: Vec<String>,
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// The image file (or folder) it came from, for messages.
    pub images_path: PathBuf,
    /// The label file it came from, for messages.
    pub labels_path: PathBuf,
}

/// Both halves of a data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MnistSplit {
    pub train: Dataset,
    pub test: Dataset,
}

/// The bundled MNIST copy: `data/mnist` under the crate root.
pub fn bundled_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("mnist")
}

/// Loads and checks one split (`train` or `t10k`) from a data directory.
pub fn load_split(dir: &Path, split: Split) -> Result<Dataset> {
    check_dir(dir)?;
    let images_path = find_file(dir, split.prefix(), "images", 3)?;
    let labels_path = find_file(dir, split.prefix(), "labels", 1)?;
    let images = idx::read_images(&images_path)?;
    let labels = idx::read_labels(&labels_path)?;
    if images.count != labels.len() {
        return Err(Error::data(
            &images_path,
            format!(
                "holds {} images but {} holds {} labels; the counts must match",
                images.count,
                labels_path.display(),
                labels.len()
            ),
        ));
    }
    check_labels(&labels_path, &labels)?;
    Ok(Dataset {
        images: images.pixels,
        labels,
        classes: (0..NUM_CLASSES).map(|d| d.to_string()).collect(),
        count: images.count,
        rows: images.rows,
        cols: images.cols,
        channels: 1,
        images_path,
        labels_path,
    })
}

/// Loads both splits and checks that their images have the same size.
pub fn load_mnist(dir: &Path) -> Result<MnistSplit> {
    let train = load_split(dir, Split::Train)?;
    let test = load_split(dir, Split::Test)?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(Error::data(
            &test.images_path,
            format!(
                "images are {}x{} but the training images ({}) are {}x{}",
                test.rows,
                test.cols,
                train.images_path.display(),
                train.rows,
                train.cols
            ),
        ));
    }
    Ok(MnistSplit { train, test })
}

impl Dataset {
    /// A set decoded from the folder `dir` (which both paths name):
    /// `labels.len()` images of `channels x rows x cols` bytes in `images`.
    pub fn of_folder(
        dir: &Path,
        (images, labels): (Vec<u8>, Vec<u8>),
        classes: Vec<String>,
        (channels, rows, cols): (usize, usize, usize),
    ) -> Dataset {
        Dataset {
            count: labels.len(),
            images,
            labels,
            classes,
            rows,
            cols,
            channels,
            images_path: dir.to_path_buf(),
            labels_path: dir.to_path_buf(),
        }
    }

    /// The first `n` images and labels (all of them if there are fewer).
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.count);
        Dataset {
            images: self.images[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            classes: self.classes.clone(),
            count: n,
            rows: self.rows,
            cols: self.cols,
            channels: self.channels,
            images_path: self.images_path.clone(),
            labels_path: self.labels_path.clone(),
        }
    }

    /// Values in one image (`channels * rows * cols`).
    pub fn image_len(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// The `index`-th image's pixels, or `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let len = self.image_len();
        let start = index.checked_mul(len)?;
        self.images.get(start..start.checked_add(len)?)
    }

    /// Errors unless the images have `channels` of `rows` x `cols` values
    /// (a model's input shape).
    pub fn require_shape(&self, channels: usize, rows: usize, cols: usize) -> Result<()> {
        if (self.channels, self.rows, self.cols) == (channels, rows, cols) {
            return Ok(());
        }
        let colour = |channels: usize| match channels {
            1 => "grey".to_string(),
            3 => "RGB".to_string(),
            c => format!("{c}-channel"),
        };
        let hint = match (self.channels, channels) {
            (3, 1) => " (--channels 1 makes them grey)",
            (1, 3) => " (--channels 3 reads a folder in colour)",
            _ => "",
        };
        Err(Error::data(
            &self.images_path,
            format!(
                "images are {} {}x{} ({} values) but the model needs {} {rows}x{cols} ({} inputs){hint}",
                colour(self.channels),
                self.rows,
                self.cols,
                self.image_len(),
                colour(channels),
                channels.saturating_mul(rows).saturating_mul(cols),
            ),
        ))
    }
}

/// The training images under `dir`: its IDX training split, or, for any
/// other folder ([`folder::is_image_folder`]), its images as `options`
/// says, with the files skipped: from the decoded-folder cache under
/// `cache_dir` where it is current ([`cache::load_cached`], whose use comes
/// back), else decoded. `progress(done, total)` follows decoding.
pub fn load_training_data(
    dir: &Path,
    options: &folder::FolderOptions,
    cache_dir: Option<&Path>,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<(folder::FolderSet, Option<cache::CacheUse>)> {
    if folder::is_image_folder(dir) {
        return match cache_dir {
            Some(cache_dir) => {
                let (set, used) = cache::load_cached(dir, options, cache_dir, progress)?;
                Ok((set, Some(used)))
            }
            None => Ok((folder::load_folder(dir, options, progress)?, None)),
        };
    }
    let custom = options.image_size.is_some() || options.channels.is_some_and(|c| c != 1);
    if custom {
        return Err(Error::data(
            dir,
            "holds IDX files, which are 28x28 grey: --image-size and --channels are for folders of images",
        ));
    }
    let set = folder::FolderSet {
        dataset: load_split(dir, Split::Train)?,
        skipped: Vec::new(),
    };
    Ok((set, None))
}

/// Errors unless `dir` exists and is a directory.
fn check_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::data(
            dir,
            "is not a directory (--data wants a directory of IDX files)",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::data(dir, "data directory not found"))
        }
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// The file names accepted for one IDX file, in order of preference.
fn candidate_names(prefix: &str, what: &str, ndims: u8) -> Vec<String> {
    let dash = format!("{prefix}-{what}-idx{ndims}-ubyte");
    let dot = format!("{prefix}-{what}.idx{ndims}-ubyte");
    vec![format!("{dash}.gz"), dash, format!("{dot}.gz"), dot]
}

/// Finds the first existing candidate file, or names them all in the error.
fn find_file(dir: &Path, prefix: &str, what: &str, ndims: u8) -> Result<PathBuf> {
    let names = candidate_names(prefix, what, ndims);
    for name in &names {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(Error::data(
        dir,
        format!("no {prefix} {what} file: looked for {}", names.join(", ")),
    ))
}

/// Errors at the first label that is not a class (0..=9).
fn check_labels(path: &Path, labels: &[u8]) -> Result<()> {
    match labels.iter().position(|&l| usize::from(l) >= NUM_CLASSES) {
        None => Ok(()),
        Some(i) => Err(Error::data(
            path,
            format!(
                "label {} at index {i} is out of range: labels must be 0 to {}",
                labels[i],
                NUM_CLASSES - 1
            ),
        )),
    }
}
