//! Measuring what the GANs generate, with a built-in classifier trained on
//! the run's labelled data ([`classifier`], cached by [`cache`]): MNIST's by
//! default, Fashion-MNIST's, or a labelled folder's:
//!
//! - FID ([`fid`]): the Fréchet distance between Gaussian fits of the
//!   classifier's penultimate features of the images and of the test set
//!   (the IDX test files, or a folder's held-back share,
//!   `crate::data::folder::hold_out`);
//! - the classifier score ([`scores`]): the Inception Score with the
//!   classifier's softmax, between 1 and the number of classes;
//! - class coverage: the classes holding at least a fifth of an even share
//!   of the samples (2% of them for 10 classes), and the histogram of
//!   predicted classes;
//! - label accuracy, for conditional samples: the share the classifier
//!   assigns the requested class.
//!
//! [`Evaluator::evaluate_images`] takes images as bytes, so the images can come
//! from a file or straight from a generator (`crate::train::generate_images` samples a
//! [`crate::train::GanState`]); [`Evaluator::real_floor`] gives
//! the same figures for training images against the test set, the best a
//! generator can hope for at that sample size.

pub mod cache;
pub mod classifier;
pub mod fid;
pub mod linalg;
pub mod scores;

use std::path::Path;

use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::report::{EvalFigures, ImageEvaluator};
pub use cache::Cached;
pub use classifier::{train_classifier, Classifier, ClassifierConfig, ClassifierEpoch, Outputs};
pub use fid::{frechet_distance, Gaussian};
pub use scores::{classifier_score, coverage_min_share, label_accuracy, Coverage};

/// The classifier's figures as a training run's [`ImageEvaluator`]
/// (`--eval-every`): it owns the classifier, the test set's feature Gaussian
/// and a CPU backend to run on, so the training backend is left to training.
pub struct TrainingEvaluator {
    classifier: Classifier,
    reference: Gaussian,
    backend: CpuBackend,
}

impl TrainingEvaluator {
    /// Fits the test set's features once; each evaluation reuses them.
    pub fn new(classifier: Classifier, test: &Dataset) -> Result<Self> {
        let mut backend = CpuBackend::new();
        let reference = Evaluator::new(&mut backend, &classifier, test)?.reference;
        Ok(TrainingEvaluator {
            classifier,
            reference,
            backend,
        })
    }
}

impl ImageEvaluator for TrainingEvaluator {
    fn evaluate(&mut self, images: &[u8], labels: Option<&[u8]>) -> Result<EvalFigures> {
        let evaluator = Evaluator {
            classifier: &self.classifier,
            reference: self.reference.clone(),
        };
        let m = evaluator.evaluate_images(&mut self.backend, images, labels)?;
        Ok(EvalFigures {
            count: m.count,
            fid: m.fid,
            score: m.score,
            covered: m.coverage.covered,
            label_accuracy: m.label_accuracy,
        })
    }
}

/// Training images in the real-data floor.
pub const FLOOR_IMAGES: usize = 10_000;

/// Loads the classifier cached at `path` for `config`, or trains it on
/// `backend` and writes it there. A file that is broken, truncated or made
/// for another configuration or training set is reported through `notice`
/// (one line) and rebuilt; `progress` sees each training epoch.
pub fn load_or_train<B: Backend>(
    backend: &mut B,
    path: &Path,
    config: &ClassifierConfig,
    train: &Dataset,
    test: &Dataset,
    mut notice: impl FnMut(&str),
    progress: impl FnMut(&ClassifierEpoch),
) -> Result<Classifier> {
    let data = cache::data_checksum(train, config);
    match cache::load(path, config, data)? {
        Cached::Loaded(c) => return Ok(c),
        Cached::Missing => notice(&format!(
            "no cached classifier at {}; training {} ({} epochs) on {}",
            path.display(),
            config.architecture(),
            config.epochs,
            backend.describe()
        )),
        Cached::Unusable(problem) => notice(&format!(
            "cached classifier {} is unusable ({problem}); retraining it on {}",
            path.display(),
            backend.describe()
        )),
    }
    let classifier = train_classifier(backend, config, train, test, progress)?;
    cache::save(path, &classifier, data)?;
    Ok(classifier)
}

/// The figures for one set of images.
#[derive(Clone, Debug, PartialEq)]
pub struct SetMetrics {
    pub count: usize,
    pub fid: f64,
    pub score: f64,
    pub coverage: Coverage,
    /// When requested labels were given.
    pub label_accuracy: Option<f64>,
}

/// Evaluates image sets against the test set's feature statistics.
pub struct Evaluator<'a> {
    classifier: &'a Classifier,
    reference: Gaussian,
}

impl<'a> Evaluator<'a> {
    /// Fits the test set's features (the FID's reference).
    pub fn new<B: Backend>(
        backend: &mut B,
        classifier: &'a Classifier,
        test: &Dataset,
    ) -> Result<Self> {
        if test.image_len() != classifier.config.input {
            return Err(Error::data(
                &test.images_path,
                format!(
                    "holds {}x{}x{} images; the classifier {} reads {} bytes an image",
                    test.channels,
                    test.rows,
                    test.cols,
                    classifier.config.architecture(),
                    classifier.config.input
                ),
            ));
        }
        let outputs = classifier.run(backend, &test.images)?;
        let reference = Gaussian::fit(&outputs.features, classifier.config.feature_dim())?;
        Ok(Evaluator {
            classifier,
            reference,
        })
    }

    /// The test set's feature Gaussian.
    pub fn reference(&self) -> &Gaussian {
        &self.reference
    }

    /// FID, score, coverage and (with `labels`, one requested class per
    /// image) label accuracy of `images` (the test set's shape, channel-planar).
    pub fn evaluate_images<B: Backend>(
        &self,
        backend: &mut B,
        images: &[u8],
        labels: Option<&[u8]>,
    ) -> Result<SetMetrics> {
        let outputs = self.classifier.run(backend, images)?;
        self.metrics(&outputs, labels)
    }

    /// The figures from the classifier's outputs for a set.
    pub fn metrics(&self, outputs: &Outputs, labels: Option<&[u8]>) -> Result<SetMetrics> {
        if let Some(l) = labels {
            if l.len() != outputs.count {
                return Err(Error::Eval(format!(
                    "{} labels for {} images",
                    l.len(),
                    outputs.count
                )));
            }
        }
        let predictions = outputs.predictions();
        let fit = Gaussian::fit(&outputs.features, self.classifier.config.feature_dim())?;
        Ok(SetMetrics {
            count: outputs.count,
            fid: frechet_distance(&fit, &self.reference)?,
            score: classifier_score(&outputs.probs, outputs.classes)?,
            coverage: Coverage::of(&predictions, outputs.classes),
            label_accuracy: labels
                .map(|l| label_accuracy(&predictions, l))
                .transpose()?,
        })
    }

    /// The real-data floor: `count` training images (at most
    /// [`FLOOR_IMAGES`] by default) spread evenly over the training set
    /// (image `i * train.count / count` for i below `count`, so a folder
    /// sorted by class gives every class its share) against the test set,
    /// with their true labels as the requested classes.
    pub fn real_floor<B: Backend>(
        &self,
        backend: &mut B,
        train: &Dataset,
        count: usize,
    ) -> Result<SetMetrics> {
        let count = count.min(train.count);
        let len = train.image_len();
        let picked: Vec<usize> = (0..count).map(|i| i * train.count / count).collect();
        let images: Vec<u8> = picked
            .iter()
            .flat_map(|&i| &train.images[i * len..(i + 1) * len])
            .copied()
            .collect();
        let labels: Vec<u8> = picked.iter().map(|&i| train.labels[i]).collect();
        self.evaluate_images(backend, &images, Some(&labels))
    }
}
