//! The built-in classifier the metrics read: an MLP trained by gan-gpu
//! itself, with its own kernels, on the backend it is given, on the run's
//! own labelled data (MNIST by default, Fashion-MNIST, a labelled folder).
//!
//! The standard one is pixels -> 512 -> 256 -> classes (ReLU, ReLU, logits;
//! 784-512-256-10 for MNIST), He-normal weights from the counter generator,
//! Adam (lr 1e-3 decayed by 0.7 per epoch) on batches of 100 from the
//! training set scaled to [0, 1], in the epoch orders
//! `rng::epoch_order(seed, epoch)`: the same seed and backend give the same
//! weights. Its features are the 256-wide penultimate layer (after the
//! ReLU). [`super::cache`] keeps a trained one in a file.

use crate::backend::{Backend, CeSlots, Clock, Mat};
use crate::data::{Dataset, MNIST_SIDE, NUM_CLASSES};
use crate::error::{Error, Result};
use crate::model::{Activation, AdamSettings, Init, LayerSpec, NetworkSpec};
use crate::nn::Network;
use crate::rng;

/// Pixels per MNIST image (28 x 28), the standard classifier's input.
pub const PIXELS: usize = MNIST_SIDE * MNIST_SIDE;

/// Rows per forward pass when classifying.
const EVAL_BATCH: usize = 500;

/// How a classifier is built and trained. Everything here is recorded in the
/// cache file, and a cached classifier is used only when all of it matches.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifierConfig {
    /// Bytes per image: channels x rows x cols (784 for MNIST).
    pub input: usize,
    /// Classes (the output's width).
    pub classes: usize,
    /// Hidden widths; the last is the feature width.
    pub hidden: Vec<usize>,
    pub epochs: u32,
    pub batch_size: u32,
    /// Adam's learning rate in the first epoch...
    pub lr: f32,
    /// ...multiplied by this after each epoch.
    pub lr_decay: f32,
    pub seed: u32,
    /// Train on the first this many training images (None: all).
    pub train_limit: Option<u32>,
}

impl ClassifierConfig {
    /// The standard classifier of `gan-gpu eval` for MNIST-shaped data
    /// (28 x 28 grey, 10 classes).
    pub fn standard() -> Self {
        ClassifierConfig {
            input: PIXELS,
            classes: NUM_CLASSES,
            hidden: vec![512, 256],
            epochs: 8,
            batch_size: 100,
            lr: 1e-3,
            lr_decay: 0.7,
            seed: 1,
            train_limit: None,
        }
    }

    /// The standard classifier for `data`'s image shape and classes, in
    /// batches of at most the set's size (a small folder's training share
    /// may hold fewer than 100 images).
    pub fn for_data(data: &Dataset) -> Self {
        let standard = Self::standard();
        ClassifierConfig {
            input: data.image_len(),
            classes: data.classes.len(),
            batch_size: standard.batch_size.min(data.count.max(1) as u32),
            ..standard
        }
    }

    /// The network: ReLU hidden layers, an identity output of one logit a class.
    pub fn spec(&self) -> NetworkSpec {
        let mut layers = Vec::new();
        let mut input = self.input;
        for &h in &self.hidden {
            layers.push(LayerSpec {
                in_dim: input,
                out_dim: h,
                activation: Activation::Relu,
                dropout: 0.0,
            });
            input = h;
        }
        layers.push(LayerSpec {
            in_dim: input,
            out_dim: self.classes,
            activation: Activation::Identity,
            dropout: 0.0,
        });
        NetworkSpec {
            layers,
            init: Init::XavierNormal,
        }
    }

    /// The architecture as text, e.g. `784-512-256-10`.
    pub fn architecture(&self) -> String {
        std::iter::once(self.input)
            .chain(self.hidden.iter().copied())
            .chain(std::iter::once(self.classes))
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Width of the feature layer (the last hidden layer).
    pub fn feature_dim(&self) -> usize {
        self.hidden.last().copied().unwrap_or(self.input)
    }

    /// Rejects impossible settings.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::config("classifier", what.to_string()));
        if self.input == 0 {
            return bad("needs images of at least one pixel");
        }
        if !(2..=256).contains(&self.classes) {
            return bad("needs 2 to 256 classes");
        }
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return bad("needs at least one hidden layer, none of width 0");
        }
        if self.epochs == 0 || self.batch_size == 0 {
            return bad("epochs and batch size must be positive");
        }
        if !(self.lr.is_finite()
            && self.lr > 0.0
            && self.lr_decay.is_finite()
            && self.lr_decay > 0.0)
        {
            return bad("learning rate and decay must be positive");
        }
        Ok(())
    }
}

/// A trained classifier: its configuration and flat parameters (laid out per
/// `NetworkLayout::new(&config.spec())`).
#[derive(Clone, Debug, PartialEq)]
pub struct Classifier {
    pub config: ClassifierConfig,
    pub params: Vec<f32>,
    /// Accuracy on the test set measured after training.
    pub test_accuracy: f32,
}

/// One epoch of classifier training.
#[derive(Clone, Copy, Debug)]
pub struct ClassifierEpoch {
    pub epoch: u32,
    pub epochs: u32,
    pub mean_loss: f32,
    pub train_accuracy: f32,
    pub seconds: f64,
}

/// What the classifier says about a set of images.
#[derive(Clone, Debug, PartialEq)]
pub struct Outputs {
    pub count: usize,
    /// `count x feature_dim` penultimate-layer activations.
    pub features: Vec<f32>,
    /// `count x classes` softmax probabilities (in f64 from the f32 logits).
    pub probs: Vec<f64>,
    pub classes: usize,
}

impl Outputs {
    /// The predicted class of each image.
    pub fn predictions(&self) -> Vec<usize> {
        super::scores::argmax_rows(&self.probs, self.classes)
    }
}

/// Trains a classifier on `backend` from `train`, then measures it on `test`.
pub fn train_classifier<B: Backend>(
    backend: &mut B,
    config: &ClassifierConfig,
    train: &Dataset,
    test: &Dataset,
    mut progress: impl FnMut(&ClassifierEpoch),
) -> Result<Classifier> {
    config.validate()?;
    let pixels = config.input;
    for set in [train, test] {
        if set.image_len() != pixels || set.classes.len() != config.classes {
            return Err(Error::data(
                &set.images_path,
                format!(
                    "holds {}x{}x{} images in {} classes; the classifier {} reads {pixels} bytes an image and {} classes",
                    set.channels,
                    set.rows,
                    set.cols,
                    set.classes.len(),
                    config.architecture(),
                    config.classes
                ),
            ));
        }
    }
    let count = config
        .train_limit
        .map_or(train.count, |l| (l as usize).min(train.count));
    let batch = config.batch_size as usize;
    let steps_per_epoch = count / batch;
    if steps_per_epoch == 0 {
        return Err(Error::config(
            "classifier",
            format!("{count} training images make no batch of {batch}"),
        ));
    }
    backend.upload_dataset(
        &train.images[..count * pixels],
        &train.labels[..count],
        pixels,
    )?;
    let classes = config.classes;
    let spec = config.spec();
    let net = Network::new(backend, &spec, batch, config.seed, 0)?;
    let x = Mat::dense(backend.alloc(batch * pixels)?, batch, pixels);
    let onehot = Mat::dense(backend.alloc(batch * classes)?, batch, classes);
    let dlogits = Mat::dense(backend.alloc(batch * classes)?, batch, classes);
    let stats = backend.alloc(2)?;
    let slots = CeSlots {
        loss: 0,
        correct: Some(1),
    };
    let logits = net.output(batch);
    let mut step = 0u32;
    for epoch in 0..config.epochs {
        let started = std::time::Instant::now();
        backend.set_epoch_order(&rng::epoch_order(config.seed, epoch, count))?;
        backend.set_clock(Clock {
            seed: config.seed,
            step,
            cursor: 0,
        })?;
        backend.write(stats, &[0.0, 0.0])?;
        let adam = AdamSettings {
            lr: config.lr * config.lr_decay.powi(epoch as i32),
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        for _ in 0..steps_per_epoch {
            backend.gather_batch(x, Some(onehot), 1.0 / 255.0, 0.0);
            net.forward(backend, x, None, logits);
            backend.softmax_cross_entropy(
                logits,
                onehot,
                dlogits,
                1.0 / batch as f32,
                stats,
                slots,
            );
            net.backward(backend, x, None, logits, dlogits, true, None);
            backend.adam_update(net.params, net.grads, net.adam_m, net.adam_v, adam);
            backend.end_step();
            step += 1;
        }
        let s = backend.read(stats)?;
        let report = ClassifierEpoch {
            epoch: epoch + 1,
            epochs: config.epochs,
            mean_loss: s[0] / steps_per_epoch as f32,
            train_accuracy: s[1] / (steps_per_epoch * batch) as f32,
            seconds: started.elapsed().as_secs_f64(),
        };
        if !report.mean_loss.is_finite() {
            return Err(Error::Eval(format!(
                "classifier training diverged in epoch {} (loss {})",
                report.epoch, report.mean_loss
            )));
        }
        progress(&report);
    }
    let params = backend.read(net.params)?;
    let mut classifier = Classifier {
        config: config.clone(),
        params,
        test_accuracy: 0.0,
    };
    classifier.test_accuracy = classifier.accuracy(backend, &test.images, &test.labels)?;
    Ok(classifier)
}

impl Classifier {
    /// Features and class probabilities of `images` (`config.input` bytes
    /// each, channel-planar as [`Dataset`] holds them).
    pub fn run<B: Backend>(&self, backend: &mut B, images: &[u8]) -> Result<Outputs> {
        let pixels = self.config.input;
        let classes = self.config.classes;
        if !images.len().is_multiple_of(pixels) {
            return Err(Error::Eval(format!(
                "{} bytes do not make whole images of {pixels} bytes",
                images.len()
            )));
        }
        let count = images.len() / pixels;
        let spec = self.config.spec();
        let net = Network::new(backend, &spec, EVAL_BATCH, self.config.seed, 0)?;
        if net.layout.len != self.params.len() {
            return Err(Error::Eval(format!(
                "the classifier has {} parameters, its architecture {} needs {}",
                self.params.len(),
                self.config.architecture(),
                net.layout.len
            )));
        }
        backend.write(net.params, &self.params)?;
        let x_tensor = backend.alloc(EVAL_BATCH * pixels)?;
        let feature_layer = spec.layers.len() - 2;
        let dim = self.config.feature_dim();
        let mut features = Vec::with_capacity(count * dim);
        let mut probs = Vec::with_capacity(count * classes);
        let mut x = vec![0.0f32; EVAL_BATCH * pixels];
        for chunk in images.chunks(EVAL_BATCH * pixels) {
            let rows = chunk.len() / pixels;
            for (v, &p) in x.iter_mut().zip(chunk) {
                *v = p as f32 / 255.0;
            }
            backend.write(x_tensor, &x)?;
            let input = Mat::dense(x_tensor, rows, pixels);
            net.forward(backend, input, None, net.output(rows));
            let logits = backend.read(net.output(rows).tensor)?;
            let feats = backend.read(net.layer_output(feature_layer, rows).tensor)?;
            features.extend_from_slice(&feats[..rows * dim]);
            for row in logits[..rows * classes].chunks_exact(classes) {
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &l| m.max(l as f64));
                let exps: Vec<f64> = row.iter().map(|&l| (l as f64 - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                probs.extend(exps.iter().map(|e| e / sum));
            }
        }
        Ok(Outputs {
            count,
            features,
            probs,
            classes,
        })
    }

    /// The share of `images` classified as their `labels`.
    pub fn accuracy<B: Backend>(
        &self,
        backend: &mut B,
        images: &[u8],
        labels: &[u8],
    ) -> Result<f32> {
        let outputs = self.run(backend, images)?;
        Ok(super::scores::label_accuracy(&outputs.predictions(), labels)? as f32)
    }
}
