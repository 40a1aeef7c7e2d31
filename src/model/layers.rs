//! A network as a list of layers over a shape (channels, height, width), the
//! description the layer-based models are built from: each layer kind knows
//! its output shape and the tensors it holds, named and shaped as the same
//! module in PyTorch's `nn.Sequential` (conv weights `[out, in, k, k]`,
//! transposed-conv weights `[in, out, k, k]`, batch norm `weight`, `bias`,
//! `running_mean`, `running_var`, `num_batches_tracked`). A flat vector is
//! the shape (n, 1, 1).
//!
//! The MLP models' [`NetworkSpec`] maps onto such a list
//! ([`LayerStack::from_mlp`]) with the same tensor names their checkpoints
//! use today.

use super::spec::{Activation, NetworkSpec};
use crate::error::{Error, Result};

/// The shape of one example: channels x height x width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Shape {
    /// A feature vector of `n` values: (n, 1, 1).
    pub const fn flat(n: usize) -> Shape {
        Shape {
            channels: n,
            height: 1,
            width: 1,
        }
    }

    /// (channels, height, width).
    pub const fn image(channels: usize, height: usize, width: usize) -> Shape {
        Shape {
            channels,
            height,
            width,
        }
    }

    /// Values per example.
    pub fn len(self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether the shape holds no value.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Whether this is a feature vector (height and width 1).
    pub fn is_flat(self) -> bool {
        self.height == 1 && self.width == 1
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {}, {})", self.channels, self.height, self.width)
    }
}

/// One layer of a network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layer {
    /// `nn.Linear(in, out, bias)` over a flat input.
    Linear { out: usize, bias: bool },
    /// `nn.Conv2d(in, out_channels, kernel, stride, padding, bias)`.
    Conv2d {
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    },
    /// `nn.ConvTranspose2d(in, out_channels, kernel, stride, padding,
    /// output_padding, bias)`.
    ConvTranspose2d {
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
        bias: bool,
    },
    /// `nn.BatchNorm1d` over the features of a flat input, `nn.BatchNorm2d`
    /// over the channels of an image; PyTorch's `momentum` and `eps`.
    BatchNorm { momentum: f32, eps: f32 },
    /// An activation module (none for the identity).
    Activation(Activation),
    /// `nn.Dropout(p)`, in training only.
    Dropout(f32),
    /// `nn.Unflatten(1, shape)`: a flat input viewed as `shape`.
    Reshape(Shape),
    /// `nn.Flatten()`.
    Flatten,
}

/// A tensor a layer holds: its name inside the module (`weight`, ...) and
/// its shape; `trainable` is false for batch norm's running statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerTensor {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub trainable: bool,
}

/// The spatial size of a convolution's output, PyTorch's formula
/// floor((size + 2p - k) / s) + 1; None where the kernel does not fit.
pub fn conv_out(size: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = size + 2 * padding;
    (stride > 0 && kernel > 0 && padded >= kernel).then(|| (padded - kernel) / stride + 1)
}

/// The spatial size of a transposed convolution's output, PyTorch's
/// formula (size - 1) s - 2p + k + output_padding; None where there is
/// none or `output_padding >= stride`.
pub fn conv_transpose_out(
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Option<usize> {
    let full =
        (size.checked_sub(1)? * stride + kernel + output_padding).checked_sub(2 * padding)?;
    (stride > 0 && kernel > 0 && output_padding < stride && full > 0).then_some(full)
}

impl Layer {
    /// The output shape for `input`, or an error naming the layer and why it
    /// cannot take that input.
    pub fn output_shape(&self, input: Shape) -> Result<Shape> {
        let bad = |problem: String| Error::config("layers", format!("{self:?}: {problem}"));
        match *self {
            Layer::Linear { out, .. } => {
                if !input.is_flat() {
                    return Err(bad(format!("needs a flat input, got {input}")));
                }
                Ok(Shape::flat(out))
            }
            Layer::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                ..
            } => {
                let h = conv_out(input.height, kernel, stride, padding);
                let w = conv_out(input.width, kernel, stride, padding);
                match (h, w) {
                    (Some(h), Some(w)) => Ok(Shape::image(out_channels, h, w)),
                    _ => Err(bad(format!("does not fit the input {input}"))),
                }
            }
            Layer::ConvTranspose2d {
                out_channels,
                kernel,
                stride,
                padding,
                output_padding,
                ..
            } => {
                let size = |s| conv_transpose_out(s, kernel, stride, padding, output_padding);
                match (size(input.height), size(input.width)) {
                    (Some(h), Some(w)) => Ok(Shape::image(out_channels, h, w)),
                    _ => Err(bad(format!("does not fit the input {input}"))),
                }
            }
            Layer::Reshape(shape) => {
                if !input.is_flat() || shape.len() != input.len() {
                    return Err(bad(format!("cannot view {input} as {shape}")));
                }
                Ok(shape)
            }
            Layer::Flatten => Ok(Shape::flat(input.len())),
            Layer::BatchNorm { .. } | Layer::Activation(_) | Layer::Dropout(_) => Ok(input),
        }
    }

    /// The tensors the layer holds for `input`, in PyTorch's state_dict order.
    pub fn tensors(&self, input: Shape) -> Vec<LayerTensor> {
        let t = |name, shape: Vec<usize>, trainable| LayerTensor {
            name,
            shape,
            trainable,
        };
        let bias = |on: bool, n: usize| on.then(|| t("bias", vec![n], true));
        match *self {
            Layer::Linear { out, bias: b } => [
                Some(t("weight", vec![out, input.len()], true)),
                bias(b, out),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Layer::Conv2d {
                out_channels,
                kernel,
                bias: b,
                ..
            } => [
                Some(t(
                    "weight",
                    vec![out_channels, input.channels, kernel, kernel],
                    true,
                )),
                bias(b, out_channels),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Layer::ConvTranspose2d {
                out_channels,
                kernel,
                bias: b,
                ..
            } => [
                Some(t(
                    "weight",
                    vec![input.channels, out_channels, kernel, kernel],
                    true,
                )),
                bias(b, out_channels),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Layer::BatchNorm { .. } => {
                let c = input.channels;
                vec![
                    t("weight", vec![c], true),
                    t("bias", vec![c], true),
                    t("running_mean", vec![c], false),
                    t("running_var", vec![c], false),
                    t("num_batches_tracked", vec![], false),
                ]
            }
            Layer::Activation(_) | Layer::Dropout(_) | Layer::Reshape(_) | Layer::Flatten => {
                Vec::new()
            }
        }
    }

    /// Whether the layer is a module of PyTorch's `nn.Sequential` (the
    /// identity activation is not written as one).
    pub fn is_module(&self) -> bool {
        !matches!(self, Layer::Activation(Activation::Identity))
    }
}

/// A network: its input shape and its layers.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerStack {
    pub input: Shape,
    pub layers: Vec<Layer>,
}

impl LayerStack {
    /// The shape after each layer (the last is the network's output), or
    /// the first layer that cannot take its input.
    pub fn shapes(&self) -> Result<Vec<Shape>> {
        let mut shape = self.input;
        self.layers
            .iter()
            .map(|layer| {
                shape = layer.output_shape(shape)?;
                Ok(shape)
            })
            .collect()
    }

    /// The network's output shape.
    pub fn output(&self) -> Result<Shape> {
        Ok(self.shapes()?.last().copied().unwrap_or(self.input))
    }

    /// Every tensor as PyTorch's `nn.Sequential` names it under `prefix`
    /// (`generator.0.weight`, ...), with its shape and whether it trains.
    pub fn state_dict(&self, prefix: &str) -> Result<Vec<(String, LayerTensor)>> {
        let shapes = self.shapes()?;
        let mut names = Vec::new();
        let mut module = 0;
        for (i, layer) in self.layers.iter().enumerate() {
            if !layer.is_module() {
                continue;
            }
            let input = if i == 0 { self.input } else { shapes[i - 1] };
            for tensor in layer.tensors(input) {
                names.push((format!("{prefix}.{module}.{}", tensor.name), tensor));
            }
            module += 1;
        }
        Ok(names)
    }

    /// Trainable values in all (weights, biases, batch norm's scale and shift).
    pub fn trainable_len(&self) -> Result<usize> {
        Ok(self
            .state_dict("")?
            .iter()
            .filter(|(_, t)| t.trainable)
            .map(|(_, t)| t.shape.iter().product::<usize>())
            .sum())
    }

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
        }
    }
}

/// Batch norm as Keras's defaults give it (momentum 0.99 in Keras terms is
/// PyTorch's 0.01; epsilon 1e-3).
const KERAS_BATCH_NORM: Layer = Layer::BatchNorm {
    momentum: 0.01,
    eps: 1e-3,
};

/// The TensorFlow DCGAN tutorial's generator: z(noise) -> Linear(7*7*256, no
/// bias) -> BN -> LeakyReLU(0.3) -> (256, 7, 7) -> ConvT 5x5 to 128 (stride
/// 1), 64 (stride 2), 1 (stride 2), "same" padding, no biases, BN and
/// LeakyReLU(0.3) after the first two, tanh last: (1, 28, 28).
pub fn dcgan_generator(noise: usize) -> LayerStack {
    let lrelu = Layer::Activation(Activation::LeakyRelu(0.3));
    let convt = |out_channels, stride| Layer::ConvTranspose2d {
        out_channels,
        kernel: 5,
        stride,
        padding: 2,
        output_padding: stride - 1,
        bias: false,
    };
    LayerStack {
        input: Shape::flat(noise),
        layers: vec![
            Layer::Linear {
                out: 7 * 7 * 256,
                bias: false,
            },
            KERAS_BATCH_NORM,
            lrelu,
            Layer::Reshape(Shape::image(256, 7, 7)),
            convt(128, 1),
            KERAS_BATCH_NORM,
            lrelu,
            convt(64, 2),
            KERAS_BATCH_NORM,
            lrelu,
            convt(1, 2),
            Layer::Activation(Activation::Tanh),
        ],
    }
}

/// The TensorFlow DCGAN tutorial's discriminator: Conv 5x5 stride 2 "same"
/// to 64 and 128 channels, each with LeakyReLU(0.3) and dropout 0.3, then
/// Flatten and Linear(6272 -> 1), a logit.
pub fn dcgan_discriminator(input: Shape) -> LayerStack {
    let conv = |out_channels| Layer::Conv2d {
        out_channels,
        kernel: 5,
        stride: 2,
        padding: 2,
        bias: true,
    };
    let lrelu = Layer::Activation(Activation::LeakyRelu(0.3));
    LayerStack {
        input,
        layers: vec![
            conv(64),
            lrelu,
            Layer::Dropout(0.3),
            conv(128),
            lrelu,
            Layer::Dropout(0.3),
            Layer::Flatten,
            Layer::Linear { out: 1, bias: true },
            Layer::Activation(Activation::Identity),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(stack: &LayerStack, prefix: &str) -> Vec<(String, Vec<usize>)> {
        stack
            .state_dict(prefix)
            .unwrap()
            .into_iter()
            .map(|(name, t)| (name, t.shape))
            .collect()
    }

    #[test]
    fn the_dcgan_generator_draws_28_by_28_and_is_named_as_pytorch_names_it() {
        let g = dcgan_generator(100);
        let shapes = g.shapes().unwrap();
        assert_eq!(shapes[3], Shape::image(256, 7, 7));
        assert_eq!(shapes[4], Shape::image(128, 7, 7));
        assert_eq!(shapes[7], Shape::image(64, 14, 14));
        assert_eq!(g.output().unwrap(), Shape::image(1, 28, 28));
        let bn = |i: usize, c: usize| {
            [
                (format!("generator.{i}.weight"), vec![c]),
                (format!("generator.{i}.bias"), vec![c]),
                (format!("generator.{i}.running_mean"), vec![c]),
                (format!("generator.{i}.running_var"), vec![c]),
                (format!("generator.{i}.num_batches_tracked"), vec![]),
            ]
        };
        let mut expected = vec![("generator.0.weight".to_string(), vec![12544, 100])];
        expected.extend(bn(1, 12544));
        expected.push(("generator.4.weight".into(), vec![256, 128, 5, 5]));
        expected.extend(bn(5, 128));
        expected.push(("generator.7.weight".into(), vec![128, 64, 5, 5]));
        expected.extend(bn(8, 64));
        expected.push(("generator.10.weight".into(), vec![64, 1, 5, 5]));
        assert_eq!(names(&g, "generator"), expected);
    }

    #[test]
    fn the_dcgan_discriminator_flattens_6272_features_into_one_logit() {
        let d = dcgan_discriminator(Shape::image(1, 28, 28));
        let shapes = d.shapes().unwrap();
        assert_eq!(shapes[0], Shape::image(64, 14, 14));
        assert_eq!(shapes[3], Shape::image(128, 7, 7));
        assert_eq!(shapes[6], Shape::flat(6272));
        assert_eq!(d.output().unwrap(), Shape::flat(1));
        assert_eq!(
            names(&d, "discriminator"),
            [
                ("discriminator.0.weight".to_string(), vec![64, 1, 5, 5]),
                ("discriminator.0.bias".into(), vec![64]),
                ("discriminator.3.weight".into(), vec![128, 64, 5, 5]),
                ("discriminator.3.bias".into(), vec![128]),
                ("discriminator.7.weight".into(), vec![1, 6272]),
                ("discriminator.7.bias".into(), vec![1]),
            ]
        );
    }

    #[test]
    fn the_mlp_models_keep_their_checkpoint_names() {
        use crate::model::{ModelKind, ModelSpec, NetworkLayout, Overrides};
        for kind in ModelKind::ALL {
            let spec = ModelSpec::build(kind, &Overrides::default());
            for (prefix, net) in [
                ("generator", &spec.generator),
                ("discriminator", &spec.discriminator),
            ] {
                let stack = LayerStack::from_mlp(net);
                let today: Vec<(String, Vec<usize>)> = crate::checkpoint::tensor_shapes(&spec)
                    .into_iter()
                    .filter(|(name, _)| name.starts_with(&format!("{prefix}.")))
                    .collect();
                assert_eq!(names(&stack, prefix), today, "{kind:?} {prefix}");
                assert_eq!(
                    stack.trainable_len().unwrap(),
                    NetworkLayout::new(net).len,
                    "{kind:?} {prefix}"
                );
                assert_eq!(stack.output().unwrap(), Shape::flat(net.out_dim()));
            }
        }
    }

    #[test]
    fn layers_that_cannot_take_their_input_are_named() {
        let stack = LayerStack {
            input: Shape::image(3, 4, 4),
            layers: vec![Layer::Linear { out: 2, bias: true }],
        };
        let err = stack.shapes().unwrap_err().to_string();
        assert!(err.contains("Linear") && err.contains("(3, 4, 4)"), "{err}");
        let too_small = Layer::Conv2d {
            out_channels: 1,
            kernel: 5,
            stride: 1,
            padding: 0,
            bias: false,
        };
        assert!(too_small.output_shape(Shape::image(1, 3, 3)).is_err());
        assert!(Layer::Reshape(Shape::image(2, 2, 2))
            .output_shape(Shape::flat(7))
            .is_err());
        let bad_output_padding = Layer::ConvTranspose2d {
            out_channels: 1,
            kernel: 3,
            stride: 1,
            padding: 0,
            output_padding: 1,
            bias: false,
        };
        assert!(bad_output_padding
            .output_shape(Shape::image(1, 3, 3))
            .is_err());
    }

    #[test]
    fn convolution_sizes_follow_pytorch() {
        // Conv: floor((in + 2p - k) / s) + 1.
        assert_eq!(conv_out(28, 5, 2, 2), Some(14));
        assert_eq!(conv_out(7, 3, 2, 0), Some(3));
        assert_eq!(conv_out(1, 3, 1, 1), Some(1));
        // Transposed: (in - 1) s - 2p + k + output_padding.
        assert_eq!(conv_transpose_out(7, 5, 2, 2, 1), Some(14));
        assert_eq!(conv_transpose_out(1, 4, 1, 0, 0), Some(4));
        assert_eq!(conv_transpose_out(32, 4, 2, 1, 0), Some(64));
    }
}
