//! A network as a list of layers over a shape (channels, height, width), the
//! description the layer-based models are built from: each layer kind knows
//! its output shape and the tensors it holds, named and shaped as the same
//! module in PyTorch's `nn.Sequential` (conv weights `[out, in, k, k]`,
//! transposed-conv weights `[in, out, k, k]`, batch norm `weight`, `bias`,
//! `running_mean`, `running_var`, `num_batches_tracked`). A flat vector is
//! the shape (n, 1, 1).
//!
//! The MLP models' `NetworkSpec` maps onto such a list
//! ([`LayerStack::from_mlp`], in `model::spec`) with the same tensor names
//! their checkpoints have always had.

use super::activation::Activation;
use crate::error::{Error, Result};
use crate::rng;

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

/// How a network's weights are initialised (biases always start at 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// N(0, std^2).
    Normal { std: f32 },
    /// Glorot/Xavier uniform, Keras' default: U(-a, a), a = sqrt(6 / (in + out)).
    GlorotUniform,
    /// The TensorFlow tutorials' `xavier_init`: N(0, (1 / sqrt(in / 2))^2).
    XavierNormal,
    /// `pytorch/examples`' DCGAN `weights_init`: convolution (and linear)
    /// weights N(0, std^2), batch norm scales N(1, std^2), biases 0.
    NormalWithBatchNorm { std: f32 },
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

/// A network: its input shape, its layers, and how its weights start.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerStack {
    pub input: Shape,
    pub layers: Vec<Layer>,
    /// The weights' initialisation (biases start at 0, batch norm's scale at
    /// 1 and its shift at 0, the running statistics at mean 0 and variance 1).
    pub init: Init,
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

    /// The input shape of each layer.
    pub fn inputs(&self) -> Result<Vec<Shape>> {
        let shapes = self.shapes()?;
        Ok(std::iter::once(self.input)
            .chain(shapes.iter().copied())
            .take(self.layers.len())
            .collect())
    }

    /// The channels of the feature maps between the weighted layers (what
    /// `--g-hidden` and `--d-hidden` set for a convolutional model): at each
    /// weighted layer but the first, the channels of the last image-shaped
    /// activation before it (before a flatten, for a Linear after one).
    pub fn hidden_channels(&self) -> Result<Vec<usize>> {
        let mut channels = Vec::new();
        let mut last_image = None;
        let mut weighted = 0;
        for (layer, input) in self.layers.iter().zip(self.inputs()?) {
            if !input.is_flat() {
                last_image = Some(input.channels);
            }
            if matches!(
                layer,
                Layer::Linear { .. } | Layer::Conv2d { .. } | Layer::ConvTranspose2d { .. }
            ) {
                if weighted > 0 {
                    channels.push(last_image.unwrap_or(input.channels));
                }
                weighted += 1;
            }
        }
        Ok(channels)
    }

    /// Values of one example through the network: its input and every
    /// layer's output.
    pub fn units(&self) -> Result<usize> {
        Ok(self.input.len() + self.shapes()?.iter().map(|s| s.len()).sum::<usize>())
    }

    /// The widest activation of one example: the input or a layer's output.
    pub fn widest(&self) -> Result<usize> {
        Ok(self
            .shapes()?
            .iter()
            .map(|s| s.len())
            .chain([self.input.len()])
            .max()
            .unwrap_or(0))
    }

    /// The product FLOPs (a multiply and an add each) of a forward pass over
    /// `rows` examples, and of the backward passes asked for: the parameter
    /// gradients of every layer when `param_grads`, the input gradient of
    /// every layer but the first, and the first's when `first_input_grad`.
    /// Batch norm, activations and dropout are not counted.
    pub fn flops(
        &self,
        rows: usize,
        backward: bool,
        param_grads: bool,
        first_input_grad: bool,
    ) -> Result<u64> {
        let mut flops = 0u64;
        let shapes = self.shapes()?;
        for (i, (layer, input)) in self.layers.iter().zip(self.inputs()?).enumerate() {
            let output = shapes[i];
            // One product's FLOPs: [m, k] x [k, n] over all rows.
            let product = match *layer {
                Layer::Linear { out, .. } => 2 * (rows * input.len() * out) as u64,
                Layer::Conv2d { kernel, .. } => {
                    2 * (rows * output.len() * input.channels * kernel * kernel) as u64
                }
                Layer::ConvTranspose2d { kernel, .. } => {
                    2 * (rows * input.len() * output.channels * kernel * kernel) as u64
                }
                _ => 0,
            };
            flops += product;
            if backward {
                if param_grads {
                    flops += product;
                }
                if i > 0 || first_input_grad {
                    flops += product;
                }
            }
        }
        Ok(flops)
    }

    /// Initial values of every tensor of [`state_dict`](Self::state_dict),
    /// in its order: weights per [`init`](Self::init) from the counter
    /// generator (stream INIT, step `network_id * 64 + module`), with fan-in
    /// and fan-out counting the kernel's positions as Keras does; biases and
    /// batch norm's shift and running mean 0; its scale and running
    /// variance 1; `num_batches_tracked` 0.
    pub fn initial_values(&self, seed: u32, network_id: u32) -> Result<Vec<Vec<f32>>> {
        let mut values = Vec::new();
        for (name, tensor) in self.state_dict("")? {
            let module: u32 = name
                .trim_start_matches('.')
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            let len: usize = tensor.shape.iter().product();
            let v = match tensor.name {
                "weight" if tensor.shape.len() >= 2 => {
                    let receptive: usize = tensor.shape[2..].iter().product();
                    let (fan_out, fan_in) =
                        (tensor.shape[0] * receptive, tensor.shape[1] * receptive);
                    init_weights(
                        self.init,
                        seed,
                        network_id * 64 + module,
                        fan_in,
                        fan_out,
                        len,
                    )
                }
                // Batch norm's scale.
                "weight" => match self.init {
                    Init::NormalWithBatchNorm { std } => (0..len as u32)
                        .map(|k| {
                            1.0 + std
                                * rng::normal(seed, rng::stream::INIT, network_id * 64 + module, k)
                        })
                        .collect(),
                    _ => vec![1.0; len],
                },
                "running_var" => vec![1.0; len],
                _ => vec![0.0; len],
            };
            values.push(v);
        }
        Ok(values)
    }
}

/// `len` weights drawn per `init` from the counter generator (stream INIT,
/// `step`, index k for the k-th weight) for a layer of `fan_in` inputs and
/// `fan_out` outputs: the layer lists' and the MLPs' (`model::layout`).
pub(super) fn init_weights(
    init: Init,
    seed: u32,
    step: u32,
    fan_in: usize,
    fan_out: usize,
    len: usize,
) -> Vec<f32> {
    let (fan_in, fan_out) = (fan_in as f32, fan_out as f32);
    (0..len as u32)
        .map(|k| match init {
            Init::Normal { std } | Init::NormalWithBatchNorm { std } => {
                std * rng::normal(seed, rng::stream::INIT, step, k)
            }
            Init::XavierNormal => {
                let std = 1.0 / (fan_in / 2.0).sqrt();
                std * rng::normal(seed, rng::stream::INIT, step, k)
            }
            Init::GlorotUniform => {
                let a = (6.0 / (fan_in + fan_out)).sqrt();
                let u = rng::uniform01(seed, rng::stream::INIT, step, k);
                (2.0 * u - 1.0) * a
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_that_cannot_take_their_input_are_named() {
        let stack = LayerStack {
            input: Shape::image(3, 4, 4),
            layers: vec![Layer::Linear { out: 2, bias: true }],
            init: Init::GlorotUniform,
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
