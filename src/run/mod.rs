//! Running the commands: what `gan-gpu train`, `sample`, `eval` and `bench`
//! do once their flags are read, so the binary only parses flags and tests
//! can call the same policy. A training run ([`train`]) checks every flag
//! before any work starts, picks its backend ([`choice`]), checks that the
//! model fits the GPU ([`fit`]) and recovers from a lost device
//! ([`recover`]).
//!
//! Messages go to stdout and stderr through [`crate::outln`] and
//! [`crate::errln`], as the command line prints them.

pub mod bench;
pub mod choice;
pub mod eval;
pub mod fit;
pub mod load;
pub mod recover;
pub mod sample;

use std::path::{Path, PathBuf};

use crate::backend::cpu::CpuBackend;
use crate::backend::fault::Fault;
use crate::backend::gpu::GpuOptions;
use crate::checkpoint::{Checkpoint, ResumeFlags};
use crate::data;
use crate::errln;
use crate::error::{Error, Result};
use crate::eval::{ClassifierConfig, TrainingEvaluator};
use crate::model::{ImageShape, ModelKind, ModelSpec, Overrides, Widths};
use crate::output::OutputLock;
use crate::stop::StopSignals;
use crate::train::{CheckpointOptions, EvalSchedule, TrainConfig};
pub use choice::{auto_gpu, gpu_api, new_gpu, BackendChoice, Chosen};
pub use fit::check_gpu_fit;
pub use load::EvalData;
pub use recover::{is_device_lost, run_training, train_on, RunPlan};

/// How a training run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// It ran all its epochs (or its `--max-steps`).
    Finished,
    /// A stop signal ended it once its checkpoint was saved.
    Stopped {
        /// 128 + the signal's number, as a shell reports a process ended by it.
        exit_code: u8,
    },
}

/// The settings of `gan-gpu train`, one per flag; None where a flag was not
/// given (the model's or the checkpoint's value is used).
#[derive(Clone, Debug)]
pub struct TrainSettings {
    pub model: Option<ModelKind>,
    /// The checkpoint to continue.
    pub resume: Option<PathBuf>,
    pub backend: BackendChoice,
    /// The MNIST directory or folder of images (None: the bundled MNIST).
    pub data: Option<PathBuf>,
    /// `--image-size` (folders of images only).
    pub image_size: Option<usize>,
    /// `--channels` (folders of images only; None: grey if every image is
    /// stored grey, else RGB).
    pub channels: Option<usize>,
    pub out: Option<PathBuf>,
    pub sample_every: Option<usize>,
    pub checkpoint_every: Option<usize>,
    pub max_steps: Option<usize>,
    /// `--epochs`, `--batch-size`, `--lr`, ...
    pub overrides: Overrides,
    /// `--ngf` and `--ndf` (dcgan64).
    pub widths: Widths,
    pub seed: Option<u32>,
    pub quiet: bool,
    pub eval_every: Option<usize>,
    pub eval_count: usize,
    /// The classifier cache file of `--eval-every`.
    pub classifier: Option<PathBuf>,
    /// Draw the sample grids with each batch's own batch-norm statistics
    /// (`--batch-stats`).
    pub batch_stats: bool,
}

/// A training run from its settings: reads the checkpoint to resume and the
/// data, rejects impossible flags before any work starts, takes the output
/// folder's lock and the stop signals, picks the backend and trains
/// ([`train_on`]).
pub fn train(settings: TrainSettings) -> Result<RunEnd> {
    let mut overrides = settings.overrides.clone();
    let mut kind = settings.model.unwrap_or(ModelKind::Vanilla);
    let mut seed = settings.seed.unwrap_or(1);
    let mut sample_every = settings.sample_every.unwrap_or(10);
    let mut checkpoint_every = settings.checkpoint_every.unwrap_or(10);
    let mut default_out = PathBuf::from("samples").join(kind.name());
    let mut resume = None;
    let saved = match &settings.resume {
        Some(path) => Some(Checkpoint::load(path)?),
        None => None,
    };
    if let (Some(saved), Some(path)) = (&saved, &settings.resume) {
        // A loaded checkpoint names a known model; --model, if given, must
        // agree with it (resume_with below).
        kind = settings.model.unwrap_or(saved.spec(path)?.kind);
    }
    settings.widths.apply(kind, &mut overrides)?;
    let data_dir = settings.data.clone().unwrap_or_else(data::bundled_dir);
    let folder_options = data::folder::FolderOptions {
        image_size: settings.image_size,
        channels: settings.channels,
    };
    let dataset = load::load_training_set(&data_dir, &folder_options, settings.quiet)?;
    if let Some((saved, path)) = saved.zip(settings.resume.as_ref()) {
        let resumed = saved.settings.resume_with(&ResumeFlags {
            model: settings.model,
            seed: settings.seed,
            overrides: overrides.clone(),
            sample_every: settings.sample_every,
            checkpoint_every: settings.checkpoint_every,
        })?;
        kind = saved.spec(path)?.kind;
        same_data(&resumed.image_shape(), &resumed.class_names, kind, &dataset)?;
        overrides = resumed.overrides();
        (seed, sample_every, checkpoint_every) =
            (resumed.seed, resumed.sample_every, resumed.checkpoint_every);
        default_out = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        resume = Some((saved, path.clone()));
    }
    overrides.image = Some(image_shape(&dataset));
    if kind == ModelKind::Conditional {
        overrides.class_names = Some(class_names(&dataset)?);
    }
    ModelSpec::check_overrides(kind, &overrides)?;
    let spec = ModelSpec::build(kind, &overrides);
    let config = TrainConfig {
        out_dir: settings.out.clone().unwrap_or(default_out),
        spec,
        seed,
        sample_every,
        max_steps: settings.max_steps,
        grid_batch_stats: settings.batch_stats,
    };
    // Reject impossible flags before any work starts, with the trainer's
    // own checks (it runs them again for library callers that come without
    // this).
    config.validate(dataset.count)?;
    CheckpointOptions::check_every(checkpoint_every)?;
    let eval = match settings.eval_every {
        Some(every) => {
            EvalSchedule::validate(every, settings.eval_count)?;
            // A folder's classifier trains on its training share and is
            // measured on the held-back one; IDX data has its test files.
            let cache = settings.classifier.as_deref();
            let evaluator = if data::folder::is_image_folder(&data_dir) {
                let split = EvalData::of_folder(&dataset)
                    .map_err(|e| Error::config("--eval-every", e.to_string()))?
                    .split;
                training_evaluator(&split.train, &split.test, cache)?
            } else {
                let test = data::load_split(&data_dir, data::Split::Test)?;
                training_evaluator(&dataset, &test, cache)?
            };
            Some(EvalSchedule {
                every,
                count: settings.eval_count,
                evaluator: Box::new(evaluator),
            })
        }
        None => None,
    };
    // One run per output folder, held until the process ends.
    let _lock = OutputLock::acquire(&config.out_dir)?;
    let stop = StopSignals::install()?;
    let plan = RunPlan {
        checkpoint_every,
        resume,
        stop,
        quiet: settings.quiet,
        eval,
        data_dir: settings
            .data
            .as_ref()
            .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())),
    };
    let fault = Fault::from_env()?;
    let gpu_options = |api| GpuOptions {
        storage_binding_bytes: dataset.image_len() as u64,
        ..GpuOptions::with_api(api)
    };
    match choice::open(settings.backend, gpu_options, "training")? {
        Chosen::Cpu => train_on(|| Ok(CpuBackend::new()), fault, config, &dataset, plan),
        Chosen::Gpu(gpu, options) => {
            check_gpu_fit(&gpu, &config.spec)?;
            train_on(
                choice::reusing(*gpu, options),
                fault,
                config,
                &dataset,
                plan,
            )
        }
    }
}

/// The shape of the data set's images.
pub fn image_shape(data: &data::Dataset) -> ImageShape {
    ImageShape {
        channels: data.channels,
        rows: data.rows,
        cols: data.cols,
    }
}

/// The class names the conditional model learns from `data`: its folder's
/// class names, or the digits of IDX data; an error for unlabelled data.
fn class_names(data: &data::Dataset) -> Result<Vec<String>> {
    if data.classes.is_empty() {
        return Err(Error::data(
            &data.images_path,
            "has no class folders, and the conditional model needs labels: put each class's images in a subfolder named after it",
        ));
    }
    Ok(data.classes.clone())
}

/// Errors unless `data` has the images (and, for the conditional model,
/// the classes) the checkpoint was trained on.
fn same_data(
    shape: &ImageShape,
    classes: &[String],
    kind: ModelKind,
    data: &data::Dataset,
) -> Result<()> {
    let given = image_shape(data);
    if given != *shape {
        return Err(Error::config(
            "--data",
            format!(
                "the checkpoint was trained on {shape} images, but {} holds {given} images",
                data.images_path.display()
            ),
        ));
    }
    if kind == ModelKind::Conditional {
        let given = class_names(data)?;
        let saved = if classes.is_empty() {
            crate::model::digit_class_names()
        } else {
            classes.to_vec()
        };
        if given != saved {
            return Err(Error::config(
                "--data",
                format!(
                    "the checkpoint was trained on the classes {}, but {} holds {}",
                    saved.join(", "),
                    data.images_path.display(),
                    given.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The classifier-based evaluator of `--eval-every`: the data's cached
/// classifier (trained on the CPU on first use, as `gan-gpu eval` does) and
/// the test set's feature statistics.
pub fn training_evaluator(
    train: &data::Dataset,
    test: &data::Dataset,
    cache: Option<&Path>,
) -> Result<TrainingEvaluator> {
    let config = ClassifierConfig::for_data(train);
    let cache_path = match cache {
        Some(path) => path.to_path_buf(),
        None => crate::eval::cache::default_path(&config, train)?,
    };
    let classifier = crate::eval::load_or_train(
        &mut CpuBackend::new(),
        &cache_path,
        &config,
        train,
        test,
        |line| errln!("notice: {line}"),
        |r| {
            errln!(
                "classifier epoch {}/{}: train accuracy {:.2}%",
                r.epoch,
                r.epochs,
                100.0 * r.train_accuracy
            )
        },
    )?;
    TrainingEvaluator::new(classifier, test)
}
