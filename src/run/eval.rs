//! `gan-gpu eval`: loads (or trains and caches) the MNIST classifier, reads
//! the images to measure, and prints FID, classifier score, class coverage
//! and label accuracy beside the real-data floor.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::choice::{self, BackendChoice, Chosen};
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::GpuOptions;
use crate::backend::Backend;
use crate::checkpoint::Checkpoint;
use crate::data::{self, idx, npy, NUM_CLASSES};
use crate::eval::{self, cache, ClassifierConfig, Evaluator, SetMetrics, COVERAGE_MIN_SHARE};
use crate::sample::{self, SampleRequest};

/// The settings of `gan-gpu eval`.
#[derive(Clone, Debug)]
pub struct EvalSettings {
    /// A generator checkpoint whose images are measured.
    pub checkpoint: Option<PathBuf>,
    /// Images to measure (IDX or `.npy`), when no checkpoint is given.
    pub images: Option<PathBuf>,
    /// The digit requested for each of `images`, for label accuracy.
    pub labels: Option<PathBuf>,
    /// Measure the first N images.
    pub n: Option<usize>,
    /// Where the classifier runs.
    pub backend: BackendChoice,
    /// The classifier cache file (None: the default cache path).
    pub classifier: Option<PathBuf>,
    /// The MNIST-format directory whose test set (and training set, for
    /// the classifier) the images are measured against (None: the
    /// checkpoint's training data, else the bundled MNIST).
    pub data: Option<PathBuf>,
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
    // Read and check the inputs before any classifier work.
    let EvalInput {
        mut count,
        mut images,
        mut labels,
        source,
    } = match (&saved, &opts.images) {
        (Some((path, saved)), _) => {
            checkpoint_images(path, saved, opts.n.unwrap_or(DEFAULT_GENERATED))?
        }
        (None, Some(images_path)) => {
            let (count, images) = read_images(images_path)?;
            let labels = opts.labels.as_deref().map(read_labels).transpose()?;
            if let (Some(l), Some(path)) = (&labels, &opts.labels) {
                if l.len() != count {
                    return Err(Error::data(
                        path,
                        format!(
                            "{} labels for the {count} images of {}",
                            l.len(),
                            images_path.display()
                        ),
                    ));
                }
            }
            EvalInput {
                count,
                images,
                labels,
                source: images_path.display().to_string(),
            }
        }
        (None, None) => {
            return Err(Error::Usage(
                "pass --images FILE or --checkpoint PATH".into(),
            ))
        }
    };
    if let Some(n) = opts.n {
        if n > count {
            return Err(Error::config(
                "--n",
                format!("{n} images asked for, {source} holds {count}"),
            ));
        }
        count = n;
        images.truncate(n * eval::classifier::PIXELS);
        if let Some(l) = &mut labels {
            l.truncate(n);
        }
    }
    if count < 2 {
        return Err(Error::Usage(format!(
            "{source}: {count} image(s); the FID needs at least 2"
        )));
    }
    let split = data::load_mnist(&data_dir)?;
    let config = ClassifierConfig::standard();
    let cache_path = match &opts.classifier {
        Some(p) => p.clone(),
        None => cache::default_path(&config, &split.train)?,
    };
    let job = Job {
        config,
        cache_path,
        split,
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
/// MNIST for a checkpoint that names none); an error where it is gone or is
/// a folder of images, which has no IDX test set.
fn trained_on(path: &Path, saved: &Checkpoint) -> Result<PathBuf> {
    let Some(dir) = saved.settings.data.as_ref().map(PathBuf::from) else {
        return Ok(data::bundled_dir());
    };
    if !dir.is_dir() {
        return Err(Error::data(
            path,
            format!(
                "was trained on {}, which is not there any more: pass --data DIR with its IDX files",
                dir.display()
            ),
        ));
    }
    if data::folder::is_image_folder(&dir) {
        return Err(Error::data(
            path,
            format!(
                "was trained on the folder of images {}: the built-in metrics need MNIST-format IDX files with a test set (pass --data DIR), or write the images with `gan-gpu sample --out DIR/` for clean-fid",
                dir.display()
            ),
        ));
    }
    Ok(dir)
}

/// Images generated from a checkpoint when `--n` is not given: enough for a
/// stable FID (the real-data floor uses as many).
const DEFAULT_GENERATED: usize = 10_000;

/// `count` images from a checkpoint's generator (on the CPU backend: one
/// forward pass per 1000 images), with the requested digit of each for a
/// conditional model (rows of ten cycle through 0..9, so the digits are balanced).
fn checkpoint_images(path: &Path, saved: &Checkpoint, count: usize) -> Result<EvalInput> {
    let spec = saved.spec(path)?;
    if spec.image_shape() != crate::model::ImageShape::MNIST {
        return Err(Error::data(
            path,
            format!(
                "draws {} images, and the built-in metrics score 28x28 grey digits with their MNIST classifier: for an Inception FID, write the images with `gan-gpu sample --out DIR/` and score the folder with clean-fid or torch-fidelity",
                spec.image_shape()
            ),
        ));
    }
    // Noise from another seed than the training samples, so eval does not
    // reuse the grids' noise.
    let request = SampleRequest {
        count,
        label: None,
        seed: saved.settings.seed.wrapping_add(1),
        batch_stats: false,
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
        source: path.display().to_string(),
    })
}

/// The images to measure, the digit asked of each (conditional), and where
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

/// Images from `.npy` or IDX (by extension: `.npy`, else IDX).
fn read_images(path: &Path) -> Result<(usize, Vec<u8>)> {
    if is_npy(path) {
        return npy::read_images(path);
    }
    let images = idx::read_images(path)?;
    let side = crate::data::MNIST_SIDE;
    if (images.rows, images.cols) != (side, side) {
        return Err(Error::data(
            path,
            format!(
                "images are {}x{}; the classifier reads {side}x{side}",
                images.rows, images.cols
            ),
        ));
    }
    Ok((images.count, images.pixels))
}

/// Requested digits from `.npy` or IDX labels, each below 10.
fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let labels = if is_npy(path) {
        npy::read_labels(path)?
    } else {
        idx::read_labels(path)?
    };
    if let Some(i) = labels.iter().position(|&l| usize::from(l) >= NUM_CLASSES) {
        return Err(Error::data(
            path,
            format!("label {} at index {i} is not a digit 0 to 9", labels[i]),
        ));
    }
    Ok(labels)
}

struct Job {
    config: ClassifierConfig,
    cache_path: PathBuf,
    split: data::MnistSplit,
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
            &self.split.train,
            &self.split.test,
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
        let evaluator = Evaluator::new(&mut backend, &classifier, &self.split.test)?;
        let generated =
            evaluator.evaluate_images(&mut backend, &self.images, self.labels.as_deref())?;
        // The FID is biased upwards at small sample sizes: the floor uses as
        // many training images as there are images, up to FLOOR_IMAGES.
        let floor_count = generated.count.min(eval::FLOOR_IMAGES);
        let floor = evaluator.real_floor(&mut backend, &self.split.train, floor_count)?;
        crate::outln!("test set: {}", self.split.test.images_path.display())?;
        print_report(&self.source, &generated, &floor)?;
        crate::errln!("evaluated in {:.1} s", started.elapsed().as_secs_f64());
        Ok(())
    }
}

fn print_report(source: &str, g: &SetMetrics, floor: &SetMetrics) -> Result<()> {
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
        format!("coverage (>= {:.0}%)", 100.0 * COVERAGE_MIN_SHARE),
        format!("{}/{NUM_CLASSES}", g.coverage.covered),
        format!("{}/{NUM_CLASSES}", floor.coverage.covered)
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
            .enumerate()
            .map(|(d, s)| format!("{d}:{:.1}", 100.0 * s))
            .collect::<Vec<_>>()
            .join(" ")
    };
    crate::outln!("histogram % ({source}): {}", hist(g))?;
    crate::outln!("histogram % (real floor): {}", hist(floor))?;
    Ok(())
}
