//! The three GANs of the classic MNIST tutorials, as data. `ModelSpec::preset`
//! gives each tutorial's exact settings (layer sizes, activations, dropout,
//! initialisation, label smoothing, pixel scaling, batch size and Adam
//! settings); flags override them via [`Overrides`] and
//! [`ModelSpec::validate`] rejects impossible values.

use super::activation::Activation;
use super::game::{
    GameFlags, GameSettings, LossKind, OptimizerKind, RmsPropSettings, GP_BETAS, RMSPROP_ALPHA,
};
use super::layers::Init;
use super::layers::{Layer, LayerStack, Shape};
use super::zoo::{
    dcgan64_discriminator, dcgan64_discriminator_channels, dcgan64_generator,
    dcgan64_generator_channels, dcgan_discriminator, dcgan_generator, DCGAN64_NOISE, DCGAN64_WIDTH,
    DCGAN_DISCRIMINATOR_CHANNELS, DCGAN_GENERATOR_CHANNELS,
};
use crate::data::MNIST_SIDE;
use crate::error::{Error, Result};

pub use super::plan::{MemoryEstimate, StepPlan};
pub use super::validate::MAX_MODEL_BYTES;

/// Which tutorial GAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// The vanilla MLP GAN: z(128) -> 256 ReLU -> 784 sigmoid.
    Vanilla,
    /// The deeper Keras-style GAN with LeakyReLU, dropout and label smoothing.
    Deep,
    /// The conditional GAN: generator and discriminator see a one-hot label.
    Conditional,
    /// The TensorFlow DCGAN tutorial's convolutional GAN with batch norm.
    Dcgan,
    /// `pytorch/examples`' 64x64 DCGAN.
    Dcgan64,
}

impl ModelKind {
    /// Every model, in the order the command line lists them.
    pub const ALL: [ModelKind; 5] = [
        ModelKind::Vanilla,
        ModelKind::Deep,
        ModelKind::Conditional,
        ModelKind::Dcgan,
        ModelKind::Dcgan64,
    ];

    /// The name used on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Vanilla => "vanilla",
            ModelKind::Deep => "deep",
            ModelKind::Conditional => "conditional",
            ModelKind::Dcgan => "dcgan",
            ModelKind::Dcgan64 => "dcgan64",
        }
    }

    /// One line about the model, for `--help`.
    pub fn about(self) -> &'static str {
        match self {
            ModelKind::Vanilla => "The vanilla MLP GAN: z(128) -> 256 ReLU -> 784 sigmoid",
            ModelKind::Deep => {
                "The deeper Keras-style GAN with LeakyReLU, dropout and label smoothing"
            }
            ModelKind::Conditional => {
                "The conditional GAN: generator and discriminator see a one-hot label"
            }
            ModelKind::Dcgan => {
                "The TensorFlow DCGAN tutorial: transposed convolutions with batch norm, a convolutional D"
            }
            ModelKind::Dcgan64 => {
                "pytorch/examples' 64x64 DCGAN: 4x4 transposed convolutions from 1x1, batch norm in both nets"
            }
        }
    }

    /// Whether the model's networks are layer lists of convolutions rather
    /// than the MLP tutorials' fused linear layers.
    pub fn is_convolutional(self) -> bool {
        matches!(self, ModelKind::Dcgan | ModelKind::Dcgan64)
    }
}

impl std::str::FromStr for ModelKind {
    type Err = Error;

    /// The model of a [`name`](ModelKind::name), exactly as written there.
    fn from_str(name: &str) -> Result<Self> {
        ModelKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| {
                Error::config(
                    "--model",
                    format!(
                        "{name:?} is not a model (expected vanilla, deep, conditional, dcgan or dcgan64)"
                    ),
                )
            })
    }
}

/// One fully connected layer: `y = dropout(act(x W^T + b))`, W is [out, in].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerSpec {
    pub in_dim: usize,
    pub out_dim: usize,
    pub activation: Activation,
    /// Dropout probability after the activation (0 = none). Only applied in training.
    pub dropout: f32,
}

/// A multilayer perceptron.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkSpec {
    pub layers: Vec<LayerSpec>,
    pub init: Init,
}

impl NetworkSpec {
    /// Builds the layer list `input -> hidden... -> output`.
    fn mlp(
        input: usize,
        hidden: &[usize],
        output: usize,
        hidden_act: Activation,
        hidden_dropout: &[f32],
        output_act: Activation,
        init: Init,
    ) -> Self {
        let mut dims = vec![input];
        dims.extend_from_slice(hidden);
        dims.push(output);
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let last = i + 2 == dims.len();
                LayerSpec {
                    in_dim: w[0],
                    out_dim: w[1],
                    activation: if last { output_act } else { hidden_act },
                    dropout: if last {
                        0.0
                    } else {
                        hidden_dropout.get(i).copied().unwrap_or(0.0)
                    },
                }
            })
            .collect();
        NetworkSpec { layers, init }
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.layers[0].in_dim
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].out_dim
    }

    /// Widths of the hidden layers.
    pub fn hidden(&self) -> Vec<usize> {
        self.layers[..self.layers.len() - 1]
            .iter()
            .map(|l| l.out_dim)
            .collect()
    }
}

/// One network of a model: a multilayer perceptron (the three MLP
/// tutorials, run by `nn::Network` on the fused linear ops) or a list of
/// layers of any kind (run by `nn::LayerNetwork` on the primitive ops).
#[derive(Clone, Debug, PartialEq)]
pub enum NetSpec {
    Mlp(NetworkSpec),
    Layers(LayerStack),
}

impl NetSpec {
    /// The network as a list of layers ([`LayerStack::from_mlp`] for an MLP).
    pub fn stack(&self) -> LayerStack {
        match self {
            NetSpec::Mlp(mlp) => LayerStack::from_mlp(mlp),
            NetSpec::Layers(stack) => stack.clone(),
        }
    }

    /// The MLP, if this network is one.
    pub fn mlp(&self) -> Option<&NetworkSpec> {
        match self {
            NetSpec::Mlp(mlp) => Some(mlp),
            NetSpec::Layers(_) => None,
        }
    }

    /// The MLP, mutable, if this network is one.
    pub fn mlp_mut(&mut self) -> Option<&mut NetworkSpec> {
        match self {
            NetSpec::Mlp(mlp) => Some(mlp),
            NetSpec::Layers(_) => None,
        }
    }

    /// What `--g-hidden` / `--d-hidden` set: an MLP's hidden widths, a
    /// layer list's feature-map channels ([`LayerStack::hidden_channels`]).
    pub fn hidden(&self) -> Vec<usize> {
        match self {
            NetSpec::Mlp(mlp) => mlp.hidden(),
            NetSpec::Layers(stack) => stack.hidden_channels().unwrap_or_default(),
        }
    }
}

impl LayerStack {
    /// An MLP of `spec` as layers: each Linear (with bias), then its
    /// activation, then a dropout where p > 0.
    pub fn from_mlp(spec: &NetworkSpec) -> LayerStack {
        let mut layers = Vec::new();
        for l in &spec.layers {
            layers.push(Layer::Linear {
                out: l.out_dim,
                bias: true,
            });
            layers.push(Layer::Activation(l.activation));
            if l.dropout > 0.0 {
                layers.push(Layer::Dropout(l.dropout));
            }
        }
        LayerStack {
            input: Shape::flat(spec.in_dim()),
            layers,
            init: spec.init,
        }
    }
}

/// Adam's settings (PyTorch's formulation, bias-corrected).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamSettings {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

/// How raw pixels (0..=255) become network inputs: `pixel * scale + shift`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelScaling {
    pub scale: f32,
    pub shift: f32,
}

impl PixelScaling {
    /// pixels / 255 in [0, 1].
    pub const UNIT: PixelScaling = PixelScaling {
        scale: 1.0 / 255.0,
        shift: 0.0,
    };
    /// (pixels - 127.5) / 127.5 in [-1, 1].
    pub const SYMMETRIC: PixelScaling = PixelScaling {
        scale: 1.0 / 127.5,
        shift: -1.0,
    };

    /// Maps a network output back to a 0..=255 pixel (MNIST polarity: 0 is background).
    pub fn to_pixel(self, value: f32) -> u8 {
        let p = (value - self.shift) / self.scale;
        if p.is_nan() {
            0
        } else {
            p.round().clamp(0.0, 255.0) as u8
        }
    }
}

/// The images a model draws and judges: channels x rows x cols, channel
/// after channel, row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageShape {
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub rows: usize,
    pub cols: usize,
}

impl ImageShape {
    /// MNIST's 28x28 grey digits.
    pub const MNIST: ImageShape = ImageShape {
        channels: 1,
        rows: MNIST_SIDE,
        cols: MNIST_SIDE,
    };

    /// Values in one image.
    pub fn len(self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// Whether an image holds no values.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for ImageShape {
    /// "grey 28x28" or "RGB 64x64".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let colour = match self.channels {
            1 => "grey".to_string(),
            3 => "RGB".to_string(),
            c => format!("{c}-channel"),
        };
        write!(f, "{colour} {}x{}", self.rows, self.cols)
    }
}

/// The names of MNIST's classes: the digits "0" to "9".
pub fn digit_class_names() -> Vec<String> {
    (0..DIGIT_CLASSES).map(|d| d.to_string()).collect()
}

/// A whole GAN: both networks, the loss targets, the optimiser and the data scaling.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub kind: ModelKind,
    /// Width of the noise vector z.
    pub noise_dim: usize,
    /// Number of classes fed as a one-hot label (0 for unconditional models).
    pub classes: usize,
    /// The name of each class (`classes` of them; the digits for MNIST).
    pub class_names: Vec<String>,
    /// The images' channels, rows and columns (the data's: 28 x 28 grey
    /// MNIST digits by default).
    pub image_channels: usize,
    pub image_rows: usize,
    pub image_cols: usize,
    /// Values per image: `image_channels * image_rows * image_cols`.
    pub image_pixels: usize,
    pub generator: NetSpec,
    pub discriminator: NetSpec,
    /// The discriminator's target for real images (0.9 = one-sided label smoothing).
    pub real_target: f32,
    /// The discriminator's target for generated images.
    pub fake_target: f32,
    /// The generator's target for its images as judged by D (non-saturating loss).
    pub generator_target: f32,
    /// The generator's Adam settings (its learning rate is `game.lr_g`);
    /// the discriminator's are these with `game.lr_d`.
    pub adam: AdamSettings,
    /// The loss, critic steps, optimizer, learning rates and clipping.
    pub game: GameSettings,
    pub batch_size: usize,
    pub epochs: usize,
    pub scaling: PixelScaling,
}

/// Flag values that override a preset; `None` keeps the preset's value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub lr: Option<f32>,
    pub beta1: Option<f32>,
    pub beta2: Option<f32>,
    pub noise_dim: Option<usize>,
    pub g_hidden: Option<Vec<usize>>,
    pub d_hidden: Option<Vec<usize>>,
    /// The data's image shape (the preset's: MNIST, or RGB 64x64 for dcgan64).
    pub image: Option<ImageShape>,
    /// The data's class names, for the conditional model (the digits).
    pub class_names: Option<Vec<String>>,
    /// `--loss`, `--n-critic`, `--optimizer`, `--lr-g`, `--lr-d`, `--clip`
    /// (its `lr` is ignored: `lr` above sets both networks' rates).
    pub game: GameFlags,
}

const DIGIT_CLASSES: usize = 10;

/// `--ngf` and `--ndf`: `pytorch/examples`' width multipliers, which set
/// dcgan64's `--g-hidden` and `--d-hidden` ([`Widths::apply`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Widths {
    pub ngf: Option<usize>,
    pub ndf: Option<usize>,
}

impl Widths {
    /// `overrides` with the channel lists that `ngf` and `ndf` give for
    /// `kind`: an error naming the flag for a model other than dcgan64, for
    /// 0, or beside the list it would set.
    pub fn apply(self, kind: ModelKind, overrides: &mut Overrides) -> Result<()> {
        for (flag, width, list, list_flag, channels) in [
            (
                "--ngf",
                self.ngf,
                &mut overrides.g_hidden,
                "--g-hidden",
                dcgan64_generator_channels as fn(usize) -> [usize; 4],
            ),
            (
                "--ndf",
                self.ndf,
                &mut overrides.d_hidden,
                "--d-hidden",
                dcgan64_discriminator_channels,
            ),
        ] {
            let Some(width) = width else { continue };
            if kind != ModelKind::Dcgan64 {
                return Err(Error::config(
                    flag,
                    format!(
                        "is pytorch/examples' width of the dcgan64 model; the {} model takes {list_flag}",
                        kind.name()
                    ),
                ));
            }
            if width == 0 {
                return Err(Error::config(flag, "must be at least 1"));
            }
            if list.is_some() {
                return Err(Error::config(
                    flag,
                    format!("sets {list_flag}; give one of the two"),
                ));
            }
            *list = Some(channels(width).to_vec());
        }
        Ok(())
    }
}

impl ModelSpec {
    /// The tutorial's exact settings for `kind`:
    ///
    /// - vanilla: z(128) -> 256 ReLU -> 784 sigmoid, D 784 -> 256 ReLU -> 1 logit,
    ///   N(0, 0.01) weights, pixels in [0, 1], batch 100, Adam lr 2e-4,
    ///   beta1 0.9;
    /// - deep: z(100) -> 256 -> 512 -> 1024 LeakyReLU(0.2) -> 784 tanh,
    ///   D 784 -> 1024 -> 512 -> 256 LeakyReLU(0.2) with dropout 0.3 after
    ///   the first two, Glorot-uniform weights, real target 0.9 (label
    ///   smoothing), pixels in [-1, 1], batch 128, Adam lr 2e-4, beta1 0.5;
    /// - conditional: the vanilla layout with a one-hot digit label (10)
    ///   appended to the inputs of both nets, Xavier-normal weights, batch
    ///   100, Adam lr 2e-4, beta1 0.5.
    ///
    /// All use beta2 0.999, eps 1e-8 and 100 epochs.
    pub fn preset(kind: ModelKind) -> Self {
        Self::build(kind, &Overrides::default())
    }

    /// Rejects overrides `kind` cannot take, naming the flag: for dcgan,
    /// `--g-hidden` must list 3 channel counts and `--d-hidden` 2; for
    /// dcgan64, 4 each (which [`build`](Self::build) otherwise replaces by
    /// the tutorial's).
    pub fn check_overrides(kind: ModelKind, o: &Overrides) -> Result<()> {
        let (g_default, d_default) = match kind {
            ModelKind::Dcgan => (
                DCGAN_GENERATOR_CHANNELS.to_vec(),
                DCGAN_DISCRIMINATOR_CHANNELS.to_vec(),
            ),
            ModelKind::Dcgan64 => (
                dcgan64_generator_channels(DCGAN64_WIDTH).to_vec(),
                dcgan64_discriminator_channels(DCGAN64_WIDTH).to_vec(),
            ),
            _ => return Ok(()),
        };
        for (flag, given, default) in [
            ("--g-hidden", &o.g_hidden, &g_default),
            ("--d-hidden", &o.d_hidden, &d_default),
        ] {
            let needed = default.len();
            match given {
                Some(list) if list.len() != needed => {
                    return Err(Error::config(
                        flag,
                        format!(
                        "the {} model takes {needed} channel counts (the tutorial's: {}), not {}",
                        kind.name(),
                        default
                            .iter()
                            .map(usize::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                        list.len()
                    ),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The preset for `kind` with `overrides` applied. Call
    /// [`check_overrides`](Self::check_overrides) before and
    /// [`validate`](Self::validate) after.
    pub fn build(kind: ModelKind, o: &Overrides) -> Self {
        let leaky = Activation::LeakyRelu(0.2);
        let (noise_dim, g_hidden, d_hidden, batch, lr, beta1) = match kind {
            ModelKind::Vanilla => (128, vec![256], vec![256], 100, 2e-4, 0.9),
            ModelKind::Deep => (
                100,
                vec![256, 512, 1024],
                vec![1024, 512, 256],
                128,
                2e-4,
                0.5,
            ),
            ModelKind::Conditional => (128, vec![256], vec![256], 100, 2e-4, 0.5),
            ModelKind::Dcgan => (
                100,
                DCGAN_GENERATOR_CHANNELS.to_vec(),
                DCGAN_DISCRIMINATOR_CHANNELS.to_vec(),
                256,
                1e-4,
                0.9,
            ),
            ModelKind::Dcgan64 => (
                DCGAN64_NOISE,
                dcgan64_generator_channels(DCGAN64_WIDTH).to_vec(),
                dcgan64_discriminator_channels(DCGAN64_WIDTH).to_vec(),
                128,
                2e-4,
                0.5,
            ),
        };
        let default_image = match kind {
            ModelKind::Dcgan64 => ImageShape {
                channels: 3,
                rows: 64,
                cols: 64,
            },
            _ => ImageShape::MNIST,
        };
        let image = o.image.unwrap_or(default_image);
        let image_pixels = image.len();
        let noise_dim = o.noise_dim.unwrap_or(noise_dim);
        let g_hidden = o.g_hidden.clone().unwrap_or(g_hidden);
        let d_hidden = o.d_hidden.clone().unwrap_or(d_hidden);
        let class_names = if kind == ModelKind::Conditional {
            o.class_names.clone().unwrap_or_else(digit_class_names)
        } else {
            Vec::new()
        };
        let classes = class_names.len();
        let (generator, discriminator, real_target, scaling) = match kind {
            ModelKind::Vanilla => (
                NetworkSpec::mlp(
                    noise_dim,
                    &g_hidden,
                    image_pixels,
                    Activation::Relu,
                    &[],
                    Activation::Sigmoid,
                    Init::Normal { std: 0.01 },
                ),
                NetworkSpec::mlp(
                    image_pixels,
                    &d_hidden,
                    1,
                    Activation::Relu,
                    &[],
                    Activation::Identity,
                    Init::Normal { std: 0.01 },
                ),
                1.0,
                PixelScaling::UNIT,
            ),
            ModelKind::Deep => (
                NetworkSpec::mlp(
                    noise_dim,
                    &g_hidden,
                    image_pixels,
                    leaky,
                    &[],
                    Activation::Tanh,
                    Init::GlorotUniform,
                ),
                NetworkSpec::mlp(
                    image_pixels,
                    &d_hidden,
                    1,
                    leaky,
                    &[0.3, 0.3],
                    Activation::Identity,
                    Init::GlorotUniform,
                ),
                0.9,
                PixelScaling::SYMMETRIC,
            ),
            ModelKind::Conditional => (
                NetworkSpec::mlp(
                    noise_dim + classes,
                    &g_hidden,
                    image_pixels,
                    Activation::Relu,
                    &[],
                    Activation::Sigmoid,
                    Init::XavierNormal,
                ),
                NetworkSpec::mlp(
                    image_pixels + classes,
                    &d_hidden,
                    1,
                    Activation::Relu,
                    &[],
                    Activation::Identity,
                    Init::XavierNormal,
                ),
                1.0,
                PixelScaling::UNIT,
            ),
            ModelKind::Dcgan => {
                let g =
                    <[usize; 3]>::try_from(g_hidden.as_slice()).unwrap_or(DCGAN_GENERATOR_CHANNELS);
                let d = <[usize; 2]>::try_from(d_hidden.as_slice())
                    .unwrap_or(DCGAN_DISCRIMINATOR_CHANNELS);
                let generator = dcgan_generator(noise_dim, g, image.channels);
                let discriminator =
                    dcgan_discriminator(Shape::image(image.channels, image.rows, image.cols), d);
                return Self::convolutional(
                    kind,
                    (noise_dim, image),
                    (generator, discriminator),
                    o,
                    (batch, lr, beta1, 50),
                );
            }
            ModelKind::Dcgan64 => {
                let g = <[usize; 4]>::try_from(g_hidden.as_slice())
                    .unwrap_or(dcgan64_generator_channels(DCGAN64_WIDTH));
                let d = <[usize; 4]>::try_from(d_hidden.as_slice())
                    .unwrap_or(dcgan64_discriminator_channels(DCGAN64_WIDTH));
                let generator = dcgan64_generator(noise_dim, g, image.channels);
                let discriminator = dcgan64_discriminator(image.channels, d);
                return Self::convolutional(
                    kind,
                    (noise_dim, image),
                    (generator, discriminator),
                    o,
                    (batch, lr, beta1, 25),
                );
            }
        };
        let (adam, game) = Self::optimizer(o, lr, beta1);
        let mlp = |(g, d): (NetworkSpec, NetworkSpec)| (NetSpec::Mlp(g), NetSpec::Mlp(d));
        let (generator, discriminator) = mlp((generator, discriminator));
        ModelSpec {
            kind,
            noise_dim,
            classes,
            class_names,
            image_channels: image.channels,
            image_rows: image.rows,
            image_cols: image.cols,
            image_pixels,
            generator,
            discriminator,
            real_target,
            fake_target: 0.0,
            generator_target: 1.0,
            adam,
            game,
            batch_size: o.batch_size.unwrap_or(batch),
            epochs: o.epochs.unwrap_or(100),
            scaling,
        }
    }

    /// A convolutional model (the TensorFlow DCGAN tutorial's, see
    /// [`dcgan_generator`], or `pytorch/examples`' 64x64 one, see
    /// [`dcgan64_generator`]): BCE from logits with targets 1 and 0, pixels
    /// in [-1, 1], Adam with `lr` and betas (`beta1`, 0.999) for both
    /// networks, `batch` images a step, `epochs` epochs, unless overridden.
    fn convolutional(
        kind: ModelKind,
        (noise_dim, image): (usize, ImageShape),
        (generator, discriminator): (LayerStack, LayerStack),
        o: &Overrides,
        (batch, lr, beta1, epochs): (usize, f32, f32, usize),
    ) -> Self {
        let (adam, game) = Self::optimizer(o, lr, beta1);
        ModelSpec {
            kind,
            noise_dim,
            classes: 0,
            class_names: Vec::new(),
            image_channels: image.channels,
            image_rows: image.rows,
            image_cols: image.cols,
            image_pixels: image.len(),
            generator: NetSpec::Layers(generator),
            discriminator: NetSpec::Layers(discriminator),
            real_target: 1.0,
            fake_target: 0.0,
            generator_target: 1.0,
            adam,
            game,
            batch_size: o.batch_size.unwrap_or(batch),
            epochs: o.epochs.unwrap_or(epochs),
            scaling: PixelScaling::SYMMETRIC,
        }
    }

    /// The generator's Adam settings and the game's, for a model whose own
    /// learning rate and beta1 are `lr` and `beta1`, with `o` applied.
    fn optimizer(o: &Overrides, lr: f32, beta1: f32) -> (AdamSettings, GameSettings) {
        let game = GameSettings::for_loss(&GameFlags { lr: o.lr, ..o.game }, lr);
        // WGAN-GP's paper betas, unless given.
        let (beta1, beta2) = match game.loss {
            LossKind::WganGp => GP_BETAS,
            _ => (beta1, 0.999),
        };
        let adam = AdamSettings {
            lr: game.lr_g,
            beta1: o.beta1.unwrap_or(beta1),
            beta2: o.beta2.unwrap_or(beta2),
            eps: 1e-8,
        };
        (adam, game)
    }

    /// The discriminator's Adam settings: the generator's with `game.lr_d`.
    pub fn adam_d(&self) -> AdamSettings {
        AdamSettings {
            lr: self.game.lr_d,
            ..self.adam
        }
    }

    /// The RMSprop settings of a network with learning rate `lr`.
    pub fn rmsprop(&self, lr: f32) -> RmsPropSettings {
        RmsPropSettings {
            lr,
            alpha: RMSPROP_ALPHA,
            eps: self.adam.eps,
        }
    }

    /// Whether both networks train with RMSprop instead of Adam.
    pub fn uses_rmsprop(&self) -> bool {
        self.game.optimizer == OptimizerKind::RmsProp
    }

    /// The shape of the images the model draws and judges.
    pub fn image_shape(&self) -> ImageShape {
        ImageShape {
            channels: self.image_channels,
            rows: self.image_rows,
            cols: self.image_cols,
        }
    }

    /// Width of the generator's input (noise plus one-hot label).
    pub fn generator_input(&self) -> usize {
        self.noise_dim + self.classes
    }

    /// Width of the discriminator's input (pixels plus one-hot label).
    pub fn discriminator_input(&self) -> usize {
        self.image_pixels + self.classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_design() {
        let v = ModelSpec::preset(ModelKind::Vanilla);
        let mlp = |n: &NetSpec| n.mlp().unwrap().clone();
        let (vg, dd, cc) = (
            mlp(&v.generator),
            ModelSpec::preset(ModelKind::Deep),
            ModelSpec::preset(ModelKind::Conditional),
        );
        assert_eq!(vg.layers.len(), 2);
        assert_eq!((vg.in_dim(), vg.out_dim()), (128, 784));
        assert_eq!(vg.layers[1].activation, Activation::Sigmoid);
        assert_eq!((v.batch_size, v.adam.beta1), (100, 0.9));

        let d = dd;
        assert_eq!(d.generator.hidden(), vec![256, 512, 1024]);
        assert_eq!(d.discriminator.hidden(), vec![1024, 512, 256]);
        let drops: Vec<f32> = mlp(&d.discriminator)
            .layers
            .iter()
            .map(|l| l.dropout)
            .collect();
        assert_eq!(drops, vec![0.3, 0.3, 0.0, 0.0]);
        assert_eq!((d.real_target, d.batch_size, d.adam.beta1), (0.9, 128, 0.5));

        assert_eq!(mlp(&cc.generator).in_dim(), 138);
        assert_eq!(mlp(&cc.discriminator).in_dim(), 794);

        let g = ModelSpec::preset(ModelKind::Dcgan);
        assert_eq!((g.batch_size, g.epochs, g.noise_dim), (256, 50, 100));
        assert_eq!((g.adam.lr, g.adam.beta1, g.adam.beta2), (1e-4, 0.9, 0.999));
        assert_eq!(g.scaling, PixelScaling::SYMMETRIC);
        assert_eq!(g.real_target, 1.0);
        assert_eq!(
            g.generator.stack().output().unwrap(),
            Shape::image(1, 28, 28)
        );
        assert_eq!(g.discriminator.stack().output().unwrap(), Shape::flat(1));
        // --g-hidden / --d-hidden name the feature-map channels, and rebuild the model.
        assert_eq!(g.generator.hidden(), DCGAN_GENERATOR_CHANNELS);
        assert_eq!(g.discriminator.hidden(), DCGAN_DISCRIMINATOR_CHANNELS);
        let narrow = Overrides {
            g_hidden: Some(vec![16, 8, 4]),
            d_hidden: Some(vec![4, 8]),
            ..Default::default()
        };
        let n = ModelSpec::build(ModelKind::Dcgan, &narrow);
        assert_eq!(
            (n.generator.hidden(), n.discriminator.hidden()),
            (vec![16, 8, 4], vec![4, 8])
        );
        assert!(ModelSpec::check_overrides(ModelKind::Dcgan, &narrow).is_ok());
        let wrong = Overrides {
            d_hidden: Some(vec![4, 8, 16]),
            ..Default::default()
        };
        let err = ModelSpec::check_overrides(ModelKind::Dcgan, &wrong).unwrap_err();
        assert!(err.to_string().contains("--d-hidden"), "{err}");
    }

    #[test]
    fn the_mlp_models_keep_their_checkpoint_names() {
        use crate::checkpoint::{flat_lengths, module_indices};
        use crate::model::{ModelKind, ModelSpec, NetworkLayout, Overrides};
        for kind in ModelKind::ALL {
            let spec = ModelSpec::build(kind, &Overrides::default());
            for (prefix, net) in [
                ("generator", &spec.generator),
                ("discriminator", &spec.discriminator),
            ] {
                let Some(mlp) = net.mlp() else { continue };
                let stack = LayerStack::from_mlp(mlp);
                // The names the MLP checkpoints have always had: each
                // Linear's `nn.Sequential` index by `module_indices`.
                let always: Vec<(String, Vec<usize>)> = mlp
                    .layers
                    .iter()
                    .zip(module_indices(mlp))
                    .flat_map(|(l, i)| {
                        [
                            (format!("{prefix}.{i}.weight"), vec![l.out_dim, l.in_dim]),
                            (format!("{prefix}.{i}.bias"), vec![l.out_dim]),
                        ]
                    })
                    .collect();
                let names: Vec<(String, Vec<usize>)> = stack
                    .state_dict(prefix)
                    .unwrap()
                    .into_iter()
                    .map(|(name, t)| (name, t.shape))
                    .collect();
                assert_eq!(names, always, "{kind:?} {prefix}");
                let len = NetworkLayout::new(mlp).len;
                assert_eq!(stack.trainable_len().unwrap(), len, "{kind:?} {prefix}");
                assert_eq!(flat_lengths(net), (len, 0), "{kind:?} {prefix}");
                assert_eq!(stack.output().unwrap(), Shape::flat(mlp.out_dim()));
            }
        }
    }
}
