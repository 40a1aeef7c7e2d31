//! `gan-gpu eval`: loads (or trains and caches) the classifier of the run's
//! labelled data (IDX files, or a labelled folder's training share), reads
//! the images to measure, and prints FID, classifier score, class coverage
//! and label accuracy against the test set (the IDX test files, or the
//! folder's held-back share) beside the real-data floor.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::choice::{self, BackendChoice, Chosen};
use super::load::EvalData;
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::GpuOptions;
use crate::backend::Backend;
use crate::checkpoint::Checkpoint;
use crate::data::folder::FolderOptions;
use crate::data::{self, idx, npy};
use crate::eval::{self, cache, coverage_min_share, ClassifierConfig, Evaluator, SetMetrics};
use crate::model::ImageShape;
use crate::sample::{self, SampleRequest};

/// The settings of `gan-gpu eval`.
#[derive(Clone, Debug)]
pub struct EvalSettings {
    /// A generator checkpoint whose images are measured.
    pub checkpoint: Option<PathBuf>,
    /// Images to measure (IDX or `.npy`), when no checkpoint is given.
    pub images: Option<PathBuf>,
    /// The class requested for each of `images`, for label accuracy.
    pub labels: Option<PathBuf>,
    /// Measure the first N images.
    pub n: Option<usize>,
    /// Where the classifier runs.
    pub backend: BackendChoice,
    /// The classifier cache file (None: the default cache path).
    pub classifier: Option<PathBuf>,
    /// The MNIST-format directory or labelled folder whose test set (and
    /// training set, for the classifier) the images are measured against
    /// ([`EvalData`]; None: the checkpoint's training data, else the
    /// bundled MNIST).
    pub data: Option<PathBuf>,
    /// Draw a checkpoint's images from the generator's own weights even
    /// where it holds their moving average (`--no-ema`).
    pub raw_generator: bool,
}

/// Measures the images of `opts`: every input is read and checked before
/// any classifier work.
pub fn eval(opts: &EvalSettings) -> Result<()> {
    if opts.n == Some(0) {
        return Err(Error::config(
            "--n",
            "must be at least 2 (a covariance needs two images)",
        ));
    }
    // The checkpoint, read once: its images and, by default, its data.
    let saved = match &opts.checkpoint {
        Some(path) => Some((path, Checkpoint::load(path)?)),
        None => None,
    };
    let data_dir = match (&opts.data, &saved) {
        (Some(dir), _) => dir.clone(),
        (None, Some((path, saved))) => trained_on(path, saved)?,
        (None, None) => data::bundled_dir(),
    };
    // Images given as a file are read first: a folder is decoded in their shape.
    let given = match (&saved, &opts.images) {
        (None, Some(images_path)) => Some(read_images(images_path)?),
        _ => None,
    };
    let shape = match (&saved, &given) {
        (Some((path, saved)), _) => saved.spec(path)?.image_shape(),
        (None, Some(images)) => images.shape,
        (None, None) => {
            return Err(Error::Usage(
                "pass --images FILE or --checkpoint PATH".into(),
            ))
        }
    };
    // A folder is decoded as a run on it decodes it: square images at
    // their size (Resize + CenterCrop to the size they have changes nothing),
    // in the images' channels.
    let folder_options = FolderOptions {
        image_size: (shape.rows == shape.cols).then_some(shape.rows),
        channels: Some(shape.channels),
    };
    let reference = EvalData::load(&data_dir, &folder_options, false)?;
    let test = &reference.split.test;
    let test_shape = super::image_shape(test);
    let EvalInput {
        mut count,
        mut images,
        mut labels,
        source,
    } = match (&saved, given) {
        (Some((path, saved)), _) => {
            if shape != test_shape {
                return Err(Error::data(
                    path,
                    format!(
                        "draws {shape} images, but the test set ({}) holds {test_shape} images: pass --data with the run's own data",
                        test.images_path.display()
                    ),
                ));
            }
            same_classes(path, saved, &test.classes)?;
            checkpoint_images(
                path,
                saved,
                opts.n.unwrap_or(DEFAULT_GENERATED),
                opts.raw_generator,
            )?
        }
        (None, Some(given)) => {
            let images_path = opts.images.as_deref().unwrap_or(Path::new(""));
            if shape != test_shape {
                return Err(Error::data(
                    images_path,
                    format!(
                        "holds {shape} images, but the test set ({}) holds {test_shape} images",
                        test.images_path.display()
                    ),
                ));
            }
            let labels = opts
                .labels
                .as_deref()
                .map(|path| read_labels(path, &test.classes))
                .transpose()?;
            if let (Some(l), Some(path)) = (&labels, &opts.labels) {
                if l.len() != given.count {
                    return Err(Error::data(
                        path,
                        format!(
                            "{} labels for the {} images of {}",
                            l.len(),
                            given.count,
                            images_path.display()
                        ),
                    ));
                }
            }
            EvalInput {
                count: given.count,
                images: given.pixels,
                labels,
                source: images_path.display().to_string(),
            }
        }
        (None, None) => unreachable!("no images is refused above"),
    };
    if let Some(n) = opts.n {
        if n > count {
            return Err(Error::config(
                "--n",
                format!("{n} images asked for, {source} holds {count}"),
            ));
        }
        count = n;
        images.truncate(n * shape.len());
        if let Some(l) = &mut labels {
            l.truncate(n);
        }
    }
    if count < 2 {
        return Err(Error::Usage(format!(
            "{source}: {count} image(s); the FID needs at least 2"
        )));
    }
    let config = ClassifierConfig::for_data(&reference.split.train);
    let cache_path = match &opts.classifier {
        Some(p) => p.clone(),
        None => cache::default_path(&config, &reference.split.train)?,
    };
    let job = Job {
        config,
        cache_path,
        reference,
        images,
        labels,
        source,
    };
    let options = GpuOptions::with_api;
    match choice::open(opts.backend, options, "running the classifier")? {
        Chosen::Cpu => job.run(CpuBackend::new()),
        Chosen::Gpu(gpu, _) => job.run(*gpu),
    }
}

/// The data directory the checkpoint at `path` was trained on (the bundled
/// MNIST for a checkpoint that names none); an error where it is gone.
fn trained_on(path: &Path, saved: &Checkpoint) -> Result<PathBuf> {
    let Some(dir) = saved.settings.data.as_ref().map(PathBuf::from) else {
        return Ok(data::bundled_dir());
    };
    if !dir.is_dir() {
        return Err(Error::data(
            path,
            format!(
                "was trained on {}, which is not there any more: pass --data with its data",
                dir.display()
            ),
        ));
    }
    Ok(dir)
}

/// Errors unless a conditional checkpoint's classes are the test set's, so
/// that the class it asks for is the class the classifier names.
fn same_classes(path: &Path, saved: &Checkpoint, classes: &[String]) -> Result<()> {
    let spec = saved.spec(path)?;
    if spec.classes > 0 && spec.class_names != classes {
        return Err(Error::data(
            path,
            format!(
                "draws the classes {}, but the test set's classes are {}: pass --data with the run's own data",
                spec.class_names.join(", "),
                classes.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Images generated from a checkpoint when `--n` is not given: enough for a
/// stable FID (the real-data floor uses as many).
const DEFAULT_GENERATED: usize = 10_000;

/// `count` images from a checkpoint's generator (on the CPU backend: one
/// forward pass per 1000 images), with the requested class of each for a
/// conditional model (runs of ten images per class, cycling through the
/// classes, so they are balanced).
fn checkpoint_images(
    path: &Path,
    saved: &Checkpoint,
    count: usize,
    raw_generator: bool,
) -> Result<EvalInput> {
    let spec = saved.spec(path)?;
    // Noise from another seed than the training samples, so eval does not
    // reuse the grids' noise.
    let request = SampleRequest {
        count,
        label: None,
        seed: saved.settings.seed.wrapping_add(1),
        batch_stats: false,
        raw_generator,
    };
    let images = sample::generate(&mut CpuBackend::new(), saved, path, &request)?;
    let labels = (spec.classes > 0).then(|| {
        (0..count)
            .map(|i| request.label_of(i, spec.classes) as u8)
            .collect()
    });
    Ok(EvalInput {
        count,
        images,
        labels,
        source: format!(
            "{} ({})",
            path.display(),
            sample::weights_description(saved, &request)
        ),
    })
}

/// The images to measure, the class asked of each (conditional), and where
/// they came from (for messages).
struct EvalInput {
    count: usize,
    images: Vec<u8>,
    labels: Option<Vec<u8>>,
    source: String,
}

/// Whether a path names an `.npy` file.
fn is_npy(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// Images read from a file, with their shape.
struct GivenImages {
    count: usize,
    shape: ImageShape,
    pixels: Vec<u8>,
}

/// Images from `.npy` or IDX (by extension: `.npy`, else IDX).
fn read_images(path: &Path) -> Result<GivenImages> {
    if is_npy(path) {
        let images = npy::read_images(path)?;
        return Ok(GivenImages {
            count: images.count,
            shape: ImageShape {
                channels: images.channels,
                rows: images.rows,
                cols: images.cols,
            },
            pixels: images.pixels,
        });
    }
    let images = idx::read_images(path)?;
    Ok(GivenImages {
        count: images.count,
        shape: ImageShape {
            channels: 1,
            rows: images.rows,
            cols: images.cols,
        },
        pixels: images.pixels,
    })
}

/// Requested classes from `.npy` or IDX labels, each below the number of `classes`.
fn read_labels(path: &Path, classes: &[String]) -> Result<Vec<u8>> {
    let labels = if is_npy(path) {
        npy::read_labels(path)?
    } else {
        idx::read_labels(path)?
    };
    if let Some(i) = labels.iter().position(|&l| usize::from(l) >= classes.len()) {
        return Err(Error::data(
            path,
            format!(
                "label {} at index {i} is not a class of the test set (0 to {})",
                labels[i],
                classes.len() - 1
            ),
        ));
    }
    Ok(labels)
}

struct Job {
    config: ClassifierConfig,
    cache_path: PathBuf,
    reference: EvalData,
    images: Vec<u8>,
    labels: Option<Vec<u8>>,
    source: String,
}

impl Job {
    fn run<B: Backend>(self, mut backend: B) -> Result<()> {
        let started = std::time::Instant::now();
        let classifier = eval::load_or_train(
            &mut backend,
            &self.cache_path,
            &self.config,
            &self.reference.split.train,
            &self.reference.split.test,
            |line| crate::errln!("notice: {line}"),
            |r| {
                crate::errln!(
                    "classifier epoch {}/{}: loss {:.4}, train accuracy {:.2}%, {:.1} s",
                    r.epoch,
                    r.epochs,
                    r.mean_loss,
                    100.0 * r.train_accuracy,
                    r.seconds
                )
            },
        )?;
        crate::outln!(
            "classifier {} (test accuracy {:.2}%) from {}; running on {}",
            classifier.config.architecture(),
            100.0 * classifier.test_accuracy,
            self.cache_path.display(),
            backend.describe()
        )?;
        let split = &self.reference.split;
        let evaluator = Evaluator::new(&mut backend, &classifier, &split.test)?;
        let generated =
            evaluator.evaluate_images(&mut backend, &self.images, self.labels.as_deref())?;
        // The FID is biased upwards at small sample sizes: the floor uses as
        // many training images as there are images, up to FLOOR_IMAGES.
        let floor_count = generated.count.min(eval::FLOOR_IMAGES);
        let floor = evaluator.real_floor(&mut backend, &split.train, floor_count)?;
        crate::outln!("{}", self.reference.test_description)?;
        print_report(&self.source, &split.test.classes, &generated, &floor)?;
        crate::errln!("evaluated in {:.1} s", started.elapsed().as_secs_f64());
        Ok(())
    }
}

fn print_report(
    source: &str,
    classes: &[String],
    g: &SetMetrics,
    floor: &SetMetrics,
) -> Result<()> {
    let k = classes.len();
    crate::outln!("{:<22} {:>14} {:>14}", "", "images", "real floor")?;
    crate::outln!(
        "{:<22} {:>14} {:>14}",
        "(vs the test set)",
        "",
        format!("({} train)", floor.count)
    )?;
    crate::outln!("{:<22} {:>14} {:>14}", "count", g.count, floor.count)?;
    crate::outln!("{:<22} {:>14.3} {:>14.3}", "FID", g.fid, floor.fid)?;
    crate::outln!(
        "{:<22} {:>14.3} {:>14.3}",
        "classifier score",
        g.score,
        floor.score
    )?;
    crate::outln!(
        "{:<22} {:>14} {:>14}",
        format!("coverage (>= {:.1}%)", 100.0 * coverage_min_share(k)),
        format!("{}/{k}", g.coverage.covered),
        format!("{}/{k}", floor.coverage.covered)
    )?;
    let pct = |a: Option<f64>| a.map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
    crate::outln!(
        "{:<22} {:>14} {:>14}",
        "label accuracy",
        pct(g.label_accuracy),
        pct(floor.label_accuracy)
    )?;
    let hist = |m: &SetMetrics| {
        m.coverage
            .shares()
            .iter()
            .zip(classes)
            .map(|(s, name)| format!("{name}:{:.1}", 100.0 * s))
            .collect::<Vec<_>>()
            .join(" ")
    };
    crate::outln!("histogram % ({source}): {}", hist(g))?;
    crate::outln!("histogram % (real floor): {}", hist(floor))?;
    Ok(())
}
