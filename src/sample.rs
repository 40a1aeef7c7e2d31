//! Images from a checkpoint's generator (the `sample` command): noise from a
//! seed, labels for conditional models (by class name or index), and the
//! output chosen by the path: a `.png` grid, `.idx`/`.idx3-ubyte` IDX
//! (grey), a `.npy` NumPy array, or a directory (a path ending in `/`, or
//! one that exists) of numbered PNGs, one per image, as clean-fid and
//! torch-fidelity read them.
//!
//! The noise of image i is `rng::normal(seed, SAMPLE_NOISE, .., i * noise_dim + c)`,
//! the same draws as the training run's sample grids, so 100 samples with
//! the run's seed are exactly the run's `final.png`.

use std::path::Path;

use rayon::prelude::*;

use crate::backend::{Backend, Mat};
use crate::checkpoint::{Checkpoint, NetworkState};
use crate::error::{Error, Result};
use crate::model::{self, ModelSpec};
use crate::nn::{Net, Pass};
use crate::output::{export, grid};

/// Images generated when `--n` is not given.
pub const DEFAULT_COUNT: usize = 100;
/// The most images one `sample` call makes.
pub const MAX_COUNT: usize = 1_000_000;
/// Rows the generator runs at once.
const CHUNK_ROWS: usize = 256;

/// The output file formats, chosen by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A near-square PNG grid.
    Png,
    /// An IDX3 ubyte file [N, rows, cols] (grey images only).
    Idx,
    /// A NumPy uint8 array of shape (N, rows, cols), or (N, rows, cols, 3)
    /// for RGB.
    Npy,
    /// A directory of PNGs `000000.png`, `000001.png`, ..., one per image.
    Dir,
}

impl Format {
    /// The format named by `path`: a directory if it ends in a path
    /// separator or is one, else by its extension.
    pub fn from_path(path: &Path) -> Result<Format> {
        let text = path.as_os_str().to_string_lossy();
        if text.ends_with('/') || text.ends_with(std::path::MAIN_SEPARATOR) || path.is_dir() {
            return Ok(Format::Dir);
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if name.ends_with(".png") {
            Ok(Format::Png)
        } else if name.ends_with(".idx") || name.ends_with("-ubyte") {
            Ok(Format::Idx)
        } else if name.ends_with(".npy") {
            Ok(Format::Npy)
        } else {
            Err(Error::config(
                "--out",
                format!(
                    "{}: unknown extension; use .png (grid), .idx or .idx3-ubyte (IDX), .npy (NumPy), or a directory ending in / (one PNG per image)",
                    path.display()
                ),
            ))
        }
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleRequest {
    pub count: usize,
    /// For conditional models: the class of every image (None: rows of ten
    /// images cycle through the classes).
    pub label: Option<usize>,
    pub seed: u32,
    /// Batch norm uses each chunk's own statistics (`--batch-stats`,
    /// [`Pass::BatchStats`]) instead of the running ones ([`Pass::Eval`]).
    pub batch_stats: bool,
    /// Draw from the generator's own weights even where the checkpoint
    /// holds their moving average (`--no-ema`).
    pub raw_generator: bool,
}

impl SampleRequest {
    /// Rejects impossible requests for `spec`, naming the flag.
    pub fn validate(&self, spec: &ModelSpec) -> Result<()> {
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(Error::config(
                "--n",
                format!("{} must be between 1 and {MAX_COUNT}", self.count),
            ));
        }
        match self.label {
            Some(_) if spec.classes == 0 => Err(Error::config(
                "--label",
                format!(
                    "the {} model is not conditional; --label needs a conditional checkpoint",
                    spec.kind.name()
                ),
            )),
            Some(l) if l >= spec.classes => Err(Error::config(
                "--label",
                format!("{l} is out of range 0..={}", spec.classes - 1),
            )),
            _ => Ok(()),
        }
    }

    /// The label of image `i`, for conditional models.
    pub fn label_of(&self, i: usize, classes: usize) -> usize {
        self.label.unwrap_or((i / 10) % classes.max(1))
    }

    /// Grid (rows, columns) for the PNG: rows of ten for a conditional model
    /// without `--label` (row r is digit r), else near-square.
    pub fn grid_shape(&self, spec: &ModelSpec) -> (usize, usize) {
        let n = self.count.max(1);
        let cols = if spec.classes > 0 && self.label.is_none() {
            n.min(10)
        } else {
            (1..=n).find(|c| c * c >= n).unwrap_or(n)
        };
        (n.div_ceil(cols), cols)
    }
}

/// The class `text` names for `spec`'s conditional model: a class name
/// exactly as the data's folders spell it, else an index. An error names
/// `--label` and the classes.
pub fn parse_label(spec: &ModelSpec, text: &str) -> Result<usize> {
    if spec.classes == 0 {
        return Err(Error::config(
            "--label",
            format!(
                "the {} model is not conditional; --label needs a conditional checkpoint",
                spec.kind.name()
            ),
        ));
    }
    if let Some(i) = spec.class_names.iter().position(|name| name == text) {
        return Ok(i);
    }
    match text.parse::<usize>() {
        Ok(i) if i < spec.classes => Ok(i),
        _ => {
            let shown: Vec<&str> = spec
                .class_names
                .iter()
                .take(12)
                .map(String::as_str)
                .collect();
            Err(Error::config(
                "--label",
                format!(
                    "{text:?} is neither a class name nor an index 0..={}; the classes are {}{}",
                    spec.classes - 1,
                    shown.join(", "),
                    if spec.classes > shown.len() {
                        ", ..."
                    } else {
                        ""
                    }
                ),
            ))
        }
    }
}

/// The generator inputs of images `first .. first + rows` of `request`.
pub fn generator_inputs(
    spec: &ModelSpec,
    request: &SampleRequest,
    first: usize,
    rows: usize,
) -> Vec<f32> {
    model::generator_inputs(
        spec,
        request.seed,
        model::SAMPLE_NOISE_STEP,
        first,
        rows,
        |i| request.label_of(i, spec.classes),
    )
}

/// The generator noise of `--noise`: a float32 `.npy` of shape
/// (N, noise dim), every value finite; returns N and the values row by row.
pub fn read_noise(path: &Path, spec: &ModelSpec) -> Result<(usize, Vec<f32>)> {
    let array = crate::data::npy::read_f32(path)?;
    let bad = |problem: String| Error::data(path, problem);
    let rows = match array.shape.as_slice() {
        [n, d] if *d == spec.noise_dim => *n,
        shape => {
            return Err(bad(format!(
                "shape {shape:?}: expected (N, {}), the {} model's noise width",
                spec.noise_dim,
                spec.kind.name()
            )))
        }
    };
    if rows == 0 || rows > MAX_COUNT {
        return Err(bad(format!(
            "{rows} rows: between 1 and {MAX_COUNT} are read"
        )));
    }
    if let Some(i) = array.data.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!(
            "value {} at row {}, column {} is not finite",
            array.data[i],
            i / spec.noise_dim,
            i % spec.noise_dim
        )));
    }
    Ok((rows, array.data))
}

/// The generator state a request draws from: the moving average where the
/// checkpoint has one (unless `raw_generator`), else the generator's own.
fn drawn_weights<'a>(saved: &'a Checkpoint, request: &SampleRequest) -> &'a NetworkState {
    match &saved.generator_ema {
        Some(average) if !request.raw_generator => average,
        _ => &saved.generator,
    }
}

/// Which weights a request draws from, for messages: "the generator's
/// moving average (decay D)" or "the generator".
pub fn weights_description(saved: &Checkpoint, request: &SampleRequest) -> String {
    match (saved.settings.ema, &saved.generator_ema) {
        (Some(decay), Some(_)) if !request.raw_generator => {
            format!("the generator's moving average (decay {decay})")
        }
        _ => "the generator".to_string(),
    }
}

/// Runs the checkpoint's generator (its moving average where it has one
/// and `request.raw_generator` is not set) on `backend` and returns `count` images
/// of the model's shape, channel-planar bytes (grey in MNIST polarity).
/// `path` names the checkpoint in errors.
pub fn generate<B: Backend>(
    backend: &mut B,
    saved: &Checkpoint,
    path: &Path,
    request: &SampleRequest,
) -> Result<Vec<u8>> {
    generate_with_noise(backend, saved, path, request, None)
}

/// [`generate`], the noise of image `i` taken from row `i` of `noise`
/// ([`read_noise`], at least `request.count` rows) where it is given, else
/// from the counter generator with `request.seed`.
pub fn generate_with_noise<B: Backend>(
    backend: &mut B,
    saved: &Checkpoint,
    path: &Path,
    request: &SampleRequest,
    noise: Option<&[f32]>,
) -> Result<Vec<u8>> {
    let spec = saved.spec(path)?;
    request.validate(&spec)?;
    if let Some(noise) = noise {
        if noise.len() < request.count * spec.noise_dim {
            return Err(Error::config(
                "--noise",
                format!(
                    "{} values are fewer than {} images of {}",
                    noise.len(),
                    request.count,
                    spec.noise_dim
                ),
            ));
        }
    }
    let rows = request.count.min(CHUNK_ROWS);
    let generator = Net::new(backend, &spec.generator, rows, request.seed, 0)?;
    let g = drawn_weights(saved, request);
    if !g.fits(&spec.generator) {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            problem: "the generator's parameters do not fit its layout".into(),
        });
    }
    generator.restore(backend, g)?;
    let pass = if request.batch_stats {
        Pass::BatchStats
    } else {
        Pass::Eval
    };
    let width = spec.generator_input();
    let input = backend.alloc(rows * width)?;
    let output = backend.alloc(rows * spec.image_pixels)?;
    let mut images = Vec::with_capacity(request.count * spec.image_pixels);
    let mut first = 0;
    while first < request.count {
        let n = rows.min(request.count - first);
        let mut values = match noise {
            Some(noise) => model::generator_inputs_from(&spec, noise, first, n, |i| {
                request.label_of(i, spec.classes)
            }),
            None => generator_inputs(&spec, request, first, n),
        };
        values.resize(rows * width, 0.0);
        backend.write(input, &values)?;
        generator.forward(
            backend,
            Mat::dense(input, n, width),
            pass,
            Mat::dense(output, n, spec.image_pixels),
        );
        let out = backend.read(output)?;
        images.extend(model::images_from_outputs(
            &out[..n * spec.image_pixels],
            spec.scaling,
        ));
        first += n;
    }
    Ok(images)
}

/// Writes `images` (from [`generate`]) to `out` in the format its path
/// names ([`Format::from_path`]).
pub fn write(
    out: &Path,
    images: &[u8],
    spec: &ModelSpec,
    request: &SampleRequest,
) -> Result<Format> {
    let format = Format::from_path(out)?;
    check_format(format, spec)?;
    let n = request.count;
    let shape = spec.image_shape();
    match format {
        Format::Png => {
            let (rows, cols) = request.grid_shape(spec);
            grid::write_grid(out, images, shape, (rows, cols), grid::grid_scale(shape))?
        }
        Format::Idx => export::write_idx(out, images, n, shape.rows, shape.cols)?,
        Format::Npy => export::write_npy(out, images, n, shape)?,
        Format::Dir => write_dir(out, images, shape)?,
    }
    Ok(format)
}

/// Errors unless `format` can hold `spec`'s images (IDX holds grey ones).
pub fn check_format(format: Format, spec: &ModelSpec) -> Result<()> {
    if format == Format::Idx && spec.image_channels != 1 {
        return Err(Error::config(
            "--out",
            format!(
                "IDX files hold grey images, and this model draws {} ones: write .npy, .png or a directory",
                spec.image_shape()
            ),
        ));
    }
    Ok(())
}

/// One PNG per image under `dir` (created if missing): `000000.png`,
/// `000001.png`, ..., each the image at its own size, grey or RGB.
fn write_dir(dir: &Path, images: &[u8], shape: crate::model::ImageShape) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let len = shape.len().max(1);
    let digits = (images.len() / len).max(1).to_string().len().max(6);
    images
        .par_chunks(len)
        .enumerate()
        .try_for_each(|(i, image)| {
            let path = dir.join(format!("{i:0digits$}.png"));
            grid::write_grid(&path, image, shape, (1, 1), 1)
        })
}
