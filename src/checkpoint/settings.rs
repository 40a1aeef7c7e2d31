//! Every flag of a run as the checkpoint stores it ([`RunSettings`], the
//! `settings` metadata), and the rules for `--resume`: which flags may
//! change and which must agree with the checkpoint ([`ResumeFlags`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{
    GameFlags, ImageShape, LossKind, ModelKind, ModelSpec, OptimizerKind, Overrides,
};

/// Every flag of a run, as stored in the checkpoint (`settings` metadata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// `vanilla`, `deep`, `conditional`, `dcgan` or `dcgan64`.
    pub model: String,
    pub noise_dim: usize,
    pub g_hidden: Vec<usize>,
    pub d_hidden: Vec<usize>,
    pub batch_size: usize,
    pub epochs: usize,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub seed: u32,
    pub sample_every: usize,
    pub checkpoint_every: usize,
    /// Images in the training set (the epoch order depends on it).
    pub train_images: usize,
    /// The training images' channels, rows and columns (checkpoints from
    /// before folders of images hold none: MNIST's grey 28x28).
    #[serde(default = "mnist_channels")]
    pub image_channels: usize,
    #[serde(default = "mnist_side")]
    pub image_rows: usize,
    #[serde(default = "mnist_side")]
    pub image_cols: usize,
    /// The conditional model's class names (empty: the digits 0 to 9).
    #[serde(default)]
    pub class_names: Vec<String>,
    /// The training data's directory as `--data` named it, made absolute
    /// (None: the bundled MNIST, or a checkpoint from before it was kept):
    /// where `eval` finds the test set and the classifier's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// `--loss`, `--n-critic`, `--optimizer`, `--lr-d` and `--clip`
    /// (checkpoints from before them: BCE, 1, Adam, `lr`, none). `lr` is
    /// the generator's rate.
    #[serde(default = "bce")]
    pub loss: String,
    #[serde(default = "one")]
    pub n_critic: usize,
    #[serde(default = "adam")]
    pub optimizer: String,
    #[serde(default)]
    pub lr_d: Option<f32>,
    #[serde(default)]
    pub clip: Option<f32>,
    /// `--ema`: the generator average's decay (None: no average; also
    /// checkpoints from before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<f32>,
    /// `--gp-weight`: the gradient penalty's lambda (`wgan-gp` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gp_weight: Option<f32>,
}

fn bce() -> String {
    LossKind::Bce.name().to_string()
}

fn one() -> usize {
    1
}

fn adam() -> String {
    OptimizerKind::Adam.name().to_string()
}

fn mnist_channels() -> usize {
    ImageShape::MNIST.channels
}

fn mnist_side() -> usize {
    ImageShape::MNIST.rows
}

impl RunSettings {
    /// The settings of a run of `spec`.
    pub fn new(
        spec: &ModelSpec,
        seed: u32,
        sample_every: usize,
        checkpoint_every: usize,
        train_images: usize,
    ) -> Self {
        RunSettings {
            model: spec.kind.name().to_string(),
            noise_dim: spec.noise_dim,
            g_hidden: spec.generator.hidden(),
            d_hidden: spec.discriminator.hidden(),
            batch_size: spec.batch_size,
            epochs: spec.epochs,
            lr: spec.adam.lr,
            beta1: spec.adam.beta1,
            beta2: spec.adam.beta2,
            seed,
            sample_every,
            checkpoint_every,
            train_images,
            image_channels: spec.image_channels,
            image_rows: spec.image_rows,
            image_cols: spec.image_cols,
            class_names: spec.class_names.clone(),
            data: None,
            loss: spec.game.loss.name().to_string(),
            n_critic: spec.game.n_critic,
            optimizer: spec.game.optimizer.name().to_string(),
            lr_d: Some(spec.game.lr_d),
            clip: spec.game.clip,
            ema: spec.game.ema,
            gp_weight: spec.game.gp_weight,
        }
    }

    /// The shape of the images the run trained on.
    pub fn image_shape(&self) -> ImageShape {
        ImageShape {
            channels: self.image_channels,
            rows: self.image_rows,
            cols: self.image_cols,
        }
    }

    /// The model kind named by `model`.
    pub fn kind(&self) -> Option<ModelKind> {
        self.model.parse().ok()
    }

    /// The overrides that rebuild this run's spec from its model's preset.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            epochs: Some(self.epochs),
            batch_size: Some(self.batch_size),
            lr: Some(self.lr),
            beta1: Some(self.beta1),
            beta2: Some(self.beta2),
            noise_dim: Some(self.noise_dim),
            g_hidden: Some(self.g_hidden.clone()),
            d_hidden: Some(self.d_hidden.clone()),
            image: Some(self.image_shape()),
            class_names: (!self.class_names.is_empty()).then(|| self.class_names.clone()),
            game: GameFlags {
                loss: self.loss.parse().ok(),
                n_critic: Some(self.n_critic),
                optimizer: self.optimizer.parse().ok(),
                lr: None,
                lr_g: Some(self.lr),
                lr_d: Some(self.lr_d.unwrap_or(self.lr)),
                clip: self.clip,
                ema: self.ema,
                gp_weight: self.gp_weight,
            },
        }
    }

    /// The model spec of the run, or None if `model` names no model.
    pub fn spec(&self) -> Option<ModelSpec> {
        Some(ModelSpec::build(self.kind()?, &self.overrides()))
    }
}

/// The flags given to `train --resume`: None where not given. Flags that
/// shape the model or its optimiser must agree with the checkpoint; the
/// others may change (see [`RunSettings::resume_with`]).
#[derive(Clone, Debug, Default)]
pub struct ResumeFlags {
    pub model: Option<ModelKind>,
    pub seed: Option<u32>,
    pub overrides: Overrides,
    pub sample_every: Option<usize>,
    pub checkpoint_every: Option<usize>,
}

impl RunSettings {
    /// The settings of the resumed run: the checkpoint's, with the flags that
    /// may change on resume (`--epochs`, `--sample-every`, `--checkpoint-every`)
    /// taken from `given`. A given flag that contradicts the checkpoint
    /// (`--model`, `--seed`, `--noise-dim`, `--g-hidden`, `--d-hidden`,
    /// `--batch-size`, `--lr`, `--beta1`, `--beta2`, and the game's `--loss`,
    /// `--n-critic`, `--optimizer`, `--lr-g`, `--lr-d`, `--clip`, `--ema`,
    /// `--gp-weight`) is
    /// an error naming the flag and both values.
    pub fn resume_with(&self, given: &ResumeFlags) -> Result<RunSettings> {
        fn same<T: PartialEq + std::fmt::Debug>(
            flag: &str,
            saved: &T,
            given: &Option<T>,
        ) -> Result<()> {
            match given {
                Some(g) if g != saved => Err(Error::config(
                    flag,
                    format!("the checkpoint has {saved:?}, but {g:?} was given (this flag cannot change on resume)"),
                )),
                _ => Ok(()),
            }
        }
        let o = &given.overrides;
        same(
            "--model",
            &self.model,
            &given.model.map(|k| k.name().to_string()),
        )?;
        same("--seed", &self.seed, &given.seed)?;
        same("--noise-dim", &self.noise_dim, &o.noise_dim)?;
        same("--g-hidden", &self.g_hidden, &o.g_hidden)?;
        same("--d-hidden", &self.d_hidden, &o.d_hidden)?;
        same("--batch-size", &self.batch_size, &o.batch_size)?;
        same("--lr", &self.lr, &o.lr)?;
        same("--beta1", &self.beta1, &o.beta1)?;
        same("--beta2", &self.beta2, &o.beta2)?;
        let g = &o.game;
        same("--loss", &self.loss, &g.loss.map(|l| l.name().to_string()))?;
        same("--n-critic", &self.n_critic, &g.n_critic)?;
        same(
            "--optimizer",
            &self.optimizer,
            &g.optimizer.map(|o| o.name().to_string()),
        )?;
        same("--lr-g", &self.lr, &g.lr_g)?;
        same("--lr-d", &self.lr_d.unwrap_or(self.lr), &g.lr_d)?;
        if g.clip.is_some() {
            same("--clip", &self.clip, &Some(g.clip))?;
        }
        if g.ema.is_some() {
            same("--ema", &self.ema, &Some(g.ema))?;
        }
        if g.gp_weight.is_some() {
            same("--gp-weight", &self.gp_weight, &Some(g.gp_weight))?;
        }
        Ok(RunSettings {
            epochs: o.epochs.unwrap_or(self.epochs),
            sample_every: given.sample_every.unwrap_or(self.sample_every),
            checkpoint_every: given.checkpoint_every.unwrap_or(self.checkpoint_every),
            ..self.clone()
        })
    }
}
