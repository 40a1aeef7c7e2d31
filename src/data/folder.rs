//! Training data from a folder of images, as torchvision's `ImageFolder`
//! reads one: every file under the folder (recursively, symbolic links
//! followed, in sorted path order) that the `image` crate decodes (PNG,
//! JPEG, BMP, GIF, WebP; the format is read from the content, not the name).
//!
//! - **Labels.** A folder whose every subfolder holds at least one usable
//!   image, with none directly inside it, is a labelled set: the subfolder
//!   names, sorted, are the classes (at most 256), and each image's label is
//!   its top subfolder's index. Anything else is one unlabelled set (every
//!   label 0, no class names).
//! - **Preprocessing** ([`FolderOptions`]), as torchvision's `Resize(N)` then
//!   `CenterCrop(N)`: with `image_size` N the shorter side is scaled to N
//!   (bilinear, antialiased when shrinking; the longer side to
//!   floor(N * long / short)) and the centre N x N kept, its corner at
//!   round((side - N) / 2). Without it every image must have one size.
//!   Every image is first made 8-bit RGBA (16-bit, palette, grey and
//!   grey-alpha images included), its alpha composited over black
//!   (c * a / 255, rounded); grey is then PIL's `L`, (299 R + 587 G +
//!   114 B) / 1000 rounded. Without `channels` the set is grey when every
//!   image is stored grey (grey or grey-alpha, any depth), else RGB, as a
//!   user who points the tool at colour pictures expects.
//! - **Bad files.** A file that is not an image, or does not decode, is
//!   skipped and listed in [`FolderSet::skipped`] with the reason; a folder
//!   with no usable image is an error.
//!
//! - **Held-back share** ([`hold_out`]). A labelled folder has no test
//!   files, so `gan-gpu eval` and `train --eval-every` hold back every
//!   [`HOLD_OUT_EVERY`]th image of each class (the 10th, 20th, ... in sorted
//!   path order: 10%, spread over the class rather than its last files) as
//!   the test set: the classifier trains on the other 90% and is measured on
//!   the share, which is also the FID's reference. The GAN itself trains on
//!   the whole folder.
//!
//! Images are stored as [`Dataset`] stores them: one after another, each
//! channel-planar (`[channels, rows, cols]`, the NCHW of the models). Files
//! are decoded in parallel on rayon's pool; `progress` is told how many are
//! done.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::imageops::FilterType;
use image::{ImageReader, RgbImage};
use rayon::prelude::*;

use super::{Dataset, MnistSplit};
use crate::error::{Error, Result};

/// Every this many images of a class, one is held back as the test set
/// ([`hold_out`]).
pub const HOLD_OUT_EVERY: usize = 10;

/// A labelled folder's images as a training set and a test set of every
/// [`HOLD_OUT_EVERY`]th image of each class (see the module docs); an
/// error for an unlabelled one, which the built-in metrics cannot score,
/// and for one too small to hold back two images.
pub fn hold_out(set: &Dataset) -> Result<MnistSplit> {
    if set.classes.is_empty() {
        return Err(Error::data(
            &set.images_path,
            "has no class subfolders, and the built-in metrics need labels to train their classifier: put each class's images in a subfolder named after it, or write the images with `gan-gpu sample --out DIR/` and score the folder with clean-fid or torch-fidelity for an Inception FID",
        ));
    }
    let len = set.image_len();
    let mut seen = vec![0usize; set.classes.len()];
    let empty = || Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        classes: set.classes.clone(),
        count: 0,
        rows: set.rows,
        cols: set.cols,
        channels: set.channels,
        images_path: set.images_path.clone(),
        labels_path: set.labels_path.clone(),
    };
    let (mut train, mut test) = (empty(), empty());
    for i in 0..set.count {
        let label = set.labels[i];
        let counter = &mut seen[usize::from(label)];
        *counter += 1;
        let half = if (*counter).is_multiple_of(HOLD_OUT_EVERY) {
            &mut test
        } else {
            &mut train
        };
        half.images
            .extend_from_slice(&set.images[i * len..(i + 1) * len]);
        half.labels.push(label);
        half.count += 1;
    }
    if test.count < 2 {
        return Err(Error::data(
            &set.images_path,
            format!(
                "holds {} images, of which every {HOLD_OUT_EVERY}th of each class is held back as the test set: {} image(s), and the FID needs at least 2",
                set.count, test.count
            ),
        ));
    }
    Ok(MnistSplit { train, test })
}

/// The most classes a labelled folder may have (labels are bytes).
pub const MAX_CLASSES: usize = 256;

/// How a folder's images are turned into training images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderOptions {
    /// `Resize(N)` + `CenterCrop(N)`; None: keep the (common) size.
    pub image_size: Option<usize>,
    /// 1 (grey) or 3 (RGB); None: grey if every image is stored grey,
    /// else RGB.
    pub channels: Option<usize>,
}

impl FolderOptions {
    /// Errors unless the options can be carried out.
    pub fn validate(&self) -> Result<()> {
        if let Some(c) = self.channels.filter(|c| *c != 1 && *c != 3) {
            return Err(Error::config(
                "--channels",
                format!("must be 1 (grey) or 3 (RGB), not {c}"),
            ));
        }
        if self.image_size == Some(0) {
            return Err(Error::config("--image-size", "must be at least 1"));
        }
        Ok(())
    }
}

/// A decoded folder.
#[derive(Clone, Debug)]
pub struct FolderSet {
    /// The images, and the class names of a labelled folder (none for an
    /// unlabelled one).
    pub dataset: Dataset,
    /// The files that were not usable images, with why, in path order.
    pub skipped: Vec<(PathBuf, String)>,
}

/// One usable image: its path, its original size, its planar pixels, and
/// whether the file stores it grey.
struct Decoded {
    path: PathBuf,
    size: (u32, u32),
    pixels: Vec<u8>,
    grey: bool,
}

/// Whether `dir` is a folder of images rather than of IDX files: a
/// directory with no IDX-named file (`*-ubyte` or `*-ubyte.gz`, such as
/// `train-labels-idx1-ubyte`) directly in it. A folder with only some of
/// the IDX files is read as IDX, so its error names the missing one.
pub fn is_image_folder(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    !entries.filter_map(|e| e.ok()).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.ends_with("-ubyte") || name.ends_with("-ubyte.gz")
    })
}

/// Every file under `dir`, recursively, in sorted path order. Symbolic
/// links are followed; a directory reached twice (a link loop) is walked
/// once.
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    walk(dir, &mut seen, &mut files)?;
    files.sort();
    Ok(files)
}

fn walk(dir: &Path, seen: &mut HashSet<PathBuf>, files: &mut Vec<PathBuf>) -> Result<()> {
    let canonical = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    if !seen.insert(canonical) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_>>()?;
    entries.sort();
    for path in entries {
        // metadata follows links; a dangling link is a file that won't open.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, seen, files)?,
            _ => files.push(path),
        }
    }
    Ok(())
}

/// Decodes and preprocesses every image under `dir` (see the module docs).
/// `progress(done, total)` is called as files finish, from any thread.
pub fn load_folder(
    dir: &Path,
    options: &FolderOptions,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<FolderSet> {
    options.validate()?;
    check_folder(dir)?;
    load_folder_files(dir, list_files(dir)?, options, progress)
}

/// Errors unless `dir` is a directory.
pub fn check_folder(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::data(dir, "is not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::data(dir, "data directory not found"))
        }
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// [`load_folder`] of the given `files` of `dir` (as [`list_files`] gives
/// them), whose options have passed their `validate`.
pub fn load_folder_files(
    dir: &Path,
    files: Vec<PathBuf>,
    options: &FolderOptions,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<FolderSet> {
    let done = AtomicUsize::new(0);
    let results: Vec<std::result::Result<Decoded, (PathBuf, String)>> = files
        .par_iter()
        .map(|path| {
            let result = decode(path, options).map_err(|why| (path.clone(), why));
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, files.len());
            result
        })
        .collect();
    let mut images = Vec::new();
    let mut skipped = Vec::new();
    for result in results {
        match result {
            Ok(decoded) => images.push(decoded),
            Err(bad) => skipped.push(bad),
        }
    }
    if images.is_empty() {
        let why = match skipped.first() {
            None => "holds no files".to_string(),
            Some((path, why)) => format!(
                "holds no usable image ({} files skipped; {}: {why})",
                skipped.len(),
                path.display()
            ),
        };
        return Err(Error::data(dir, why));
    }
    let (rows, cols) = common_size(dir, &images, options)?;
    let (labels, classes) = labels(dir, &images)?;
    let count = images.len();
    let channels = options
        .channels
        .unwrap_or(if images.iter().all(|i| i.grey) { 1 } else { 3 });
    // Decoded as RGB where channels was not given: a grey image's three
    // planes are equal, and its first is PIL's L of them.
    let len = channels * rows * cols;
    let mut pixels = Vec::with_capacity(count * len);
    for image in &images {
        pixels.extend_from_slice(&image.pixels[..len]);
    }
    Ok(FolderSet {
        dataset: Dataset::of_folder(dir, (pixels, labels), classes, (channels, rows, cols)),
        skipped,
    })
}

/// The one (rows, cols) of every image: N x N with `image_size`, else the
/// size they all share.
fn common_size(dir: &Path, images: &[Decoded], options: &FolderOptions) -> Result<(usize, usize)> {
    if let Some(n) = options.image_size {
        return Ok((n, n));
    }
    let first = &images[0];
    if let Some(other) = images.iter().find(|i| i.size != first.size) {
        return Err(Error::data(
            dir,
            format!(
                "holds images of different sizes ({} is {}x{}, {} is {}x{}): pass --image-size N to scale and crop them to N x N",
                first.path.display(),
                first.size.0,
                first.size.1,
                other.path.display(),
                other.size.0,
                other.size.1
            ),
        ));
    }
    Ok((first.size.1 as usize, first.size.0 as usize))
}

/// Labels and class names: by top subfolder when every subfolder holds an
/// image and the folder itself holds none; else all 0 and no classes.
fn labels(dir: &Path, images: &[Decoded]) -> Result<(Vec<u8>, Vec<String>)> {
    let top = |image: &Decoded| -> Option<String> {
        let relative = image.path.strip_prefix(dir).ok()?;
        let mut parts = relative.components();
        let first = parts.next()?;
        // An image directly in the folder has no subfolder.
        parts.next()?;
        Some(first.as_os_str().to_string_lossy().into_owned())
    };
    let subfolders: Vec<String> = {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok())
            .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let tops: Vec<Option<String>> = images.iter().map(top).collect();
    let labelled = !subfolders.is_empty()
        && tops.iter().all(Option::is_some)
        && subfolders
            .iter()
            .all(|name| tops.iter().any(|t| t.as_deref() == Some(name.as_str())));
    if !labelled {
        return Ok((vec![0; images.len()], Vec::new()));
    }
    if subfolders.len() > MAX_CLASSES {
        return Err(Error::data(
            dir,
            format!(
                "has {} class folders; at most {MAX_CLASSES} are supported",
                subfolders.len()
            ),
        ));
    }
    let labels = tops
        .iter()
        .map(|t| {
            let name = t.as_deref().unwrap_or_default();
            subfolders
                .binary_search_by(|s| s.as_str().cmp(name))
                .unwrap_or(0) as u8
        })
        .collect();
    Ok((labels, subfolders))
}

/// One file as a training image, or why it is not one.
fn decode(path: &Path, options: &FolderOptions) -> std::result::Result<Decoded, String> {
    let reader = ImageReader::open(path)
        .map_err(|e| crate::error::describe_io(&e))?
        .with_guessed_format()
        .map_err(|e| crate::error::describe_io(&e))?;
    if reader.format().is_none() {
        return Err("not an image".to_string());
    }
    let image = reader
        .decode()
        .map_err(|e| format!("does not decode: {e}"))?;
    let size = (image.width(), image.height());
    let grey = !image.color().has_color();
    let mut rgb = over_black(&image.to_rgba8());
    if let Some(n) = options.image_size {
        rgb = resize_and_crop(&rgb, n as u32);
    }
    Ok(Decoded {
        path: path.to_path_buf(),
        size,
        pixels: planar(&rgb, options.channels.unwrap_or(3)),
        grey,
    })
}

/// RGB with the alpha channel composited over black: c * a / 255, rounded.
pub fn over_black(rgba: &image::RgbaImage) -> RgbImage {
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over = |c: u8| ((u32::from(c) * u32::from(a) + 127) / 255) as u8;
        image::Rgb([over(r), over(g), over(b)])
    })
}

/// torchvision's `Resize(n)` then `CenterCrop(n)` (see the module docs).
pub fn resize_and_crop(rgb: &RgbImage, n: u32) -> RgbImage {
    let (w, h) = rgb.dimensions();
    let (short, long) = (w.min(h), w.max(h));
    let scaled_long = ((u64::from(n) * u64::from(long)) / u64::from(short)).max(1) as u32;
    let (nw, nh) = if w <= h {
        (n, scaled_long)
    } else {
        (scaled_long, n)
    };
    let scaled = if (nw, nh) == (w, h) {
        rgb.clone()
    } else {
        image::imageops::resize(rgb, nw, nh, FilterType::Triangle)
    };
    let left = ((f64::from(nw) - f64::from(n)) / 2.0).round() as u32;
    let top = ((f64::from(nh) - f64::from(n)) / 2.0).round() as u32;
    image::imageops::crop_imm(&scaled, left, top, n, n).to_image()
}

/// The image as `[channels, rows, cols]` bytes: RGB planes, or PIL's grey.
pub fn planar(rgb: &RgbImage, channels: usize) -> Vec<u8> {
    let pixels = rgb.pixels();
    if channels == 1 {
        return pixels
            .map(|p| {
                let [r, g, b] = p.0.map(u32::from);
                ((r * 299 + g * 587 + b * 114 + 500) / 1000) as u8
            })
            .collect();
    }
    let plane = (rgb.width() * rgb.height()) as usize;
    let mut out = vec![0; 3 * plane];
    for (i, p) in pixels.enumerate() {
        for c in 0..3 {
            out[c * plane + i] = p.0[c];
        }
    }
    out
}
