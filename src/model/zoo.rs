//! The layer lists of the convolutional models, each module for module as
//! its tutorial builds it: the TensorFlow DCGAN tutorial's 28x28 networks
//! and `pytorch/examples`' 64x64 DCGAN. [`super::spec`] turns them into
//! models.

use super::activation::Activation;
use super::layers::{Init, Layer, LayerStack, Shape};

/// Batch norm as Keras's defaults give it (momentum 0.99 in Keras terms is
/// PyTorch's 0.01; epsilon 1e-3).
const KERAS_BATCH_NORM: Layer = Layer::BatchNorm {
    momentum: 0.01,
    eps: 1e-3,
};

/// The TensorFlow DCGAN tutorial's generator's feature-map channels.
pub const DCGAN_GENERATOR_CHANNELS: [usize; 3] = [256, 128, 64];
/// The TensorFlow DCGAN tutorial's discriminator's feature-map channels.
pub const DCGAN_DISCRIMINATOR_CHANNELS: [usize; 2] = [64, 128];

/// The TensorFlow DCGAN tutorial's generator, with `channels` [c0, c1, c2]
/// ([`DCGAN_GENERATOR_CHANNELS`] in the tutorial): z(noise) ->
/// Linear(7*7*c0, no bias) -> BN -> LeakyReLU(0.3) -> (c0, 7, 7) -> ConvT
/// 5x5 to c1 (stride 1), c2 (stride 2), `image_channels` (stride 2, 1 in
/// the tutorial), "same" padding, no biases, BN and LeakyReLU(0.3) after the
/// first two, tanh last: (image_channels, 28, 28).
pub fn dcgan_generator(noise: usize, channels: [usize; 3], image_channels: usize) -> LayerStack {
    let [c0, c1, c2] = channels;
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
                out: 7 * 7 * c0,
                bias: false,
            },
            KERAS_BATCH_NORM,
            lrelu,
            Layer::Reshape(Shape::image(c0, 7, 7)),
            convt(c1, 1),
            KERAS_BATCH_NORM,
            lrelu,
            convt(c2, 2),
            KERAS_BATCH_NORM,
            lrelu,
            convt(image_channels, 2),
            Layer::Activation(Activation::Tanh),
        ],
        init: Init::GlorotUniform,
    }
}

/// The TensorFlow DCGAN tutorial's discriminator, with `channels` [c0, c1]
/// ([`DCGAN_DISCRIMINATOR_CHANNELS`] in the tutorial): Conv 5x5 stride 2
/// "same" to c0 and c1 channels, each with LeakyReLU(0.3) and dropout 0.3,
/// then Flatten and Linear(c1 * 7 * 7 -> 1), a logit.
pub fn dcgan_discriminator(input: Shape, channels: [usize; 2]) -> LayerStack {
    let [c0, c1] = channels;
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
            conv(c0),
            lrelu,
            Layer::Dropout(0.3),
            conv(c1),
            lrelu,
            Layer::Dropout(0.3),
            Layer::Flatten,
            Layer::Linear { out: 1, bias: true },
            Layer::Activation(Activation::Identity),
        ],
        init: Init::GlorotUniform,
    }
}

/// `pytorch/examples`' DCGAN widths: nz, ngf and ndf.
pub const DCGAN64_NOISE: usize = 100;
pub const DCGAN64_WIDTH: usize = 64;

/// The generator's feature-map channels for `ngf`: 8, 4, 2 and 1 ngf.
pub fn dcgan64_generator_channels(ngf: usize) -> [usize; 4] {
    [8 * ngf, 4 * ngf, 2 * ngf, ngf]
}

/// The discriminator's feature-map channels for `ndf`: 1, 2, 4 and 8 ndf.
pub fn dcgan64_discriminator_channels(ndf: usize) -> [usize; 4] {
    [ndf, 2 * ndf, 4 * ndf, 8 * ndf]
}

/// PyTorch's batch norm defaults (momentum 0.1, eps 1e-5), as
/// `pytorch/examples`' DCGAN uses them.
const PYTORCH_BATCH_NORM: Layer = Layer::BatchNorm {
    momentum: 0.1,
    eps: 1e-5,
};

/// `pytorch/examples`' 64x64 DCGAN generator, as its `nn.Sequential` (module
/// numbers alike), with `widths` [w0, w1, w2, w3]
/// ([`dcgan64_generator_channels`] of ngf in the original): z (noise, 1, 1)
/// -> ConvTranspose2d(noise -> w0, 4, 1, 0), BN, ReLU; three
/// ConvTranspose2d(4, 2, 1) to w1, w2 and w3, each with BN and ReLU;
/// ConvTranspose2d(w3 -> channels, 4, 2, 1), tanh: (channels, 64, 64). No
/// biases; weights N(0, 0.02), batch norm scales N(1, 0.02).
pub fn dcgan64_generator(noise: usize, widths: [usize; 4], channels: usize) -> LayerStack {
    let convt = |out_channels, stride, padding| Layer::ConvTranspose2d {
        out_channels,
        kernel: 4,
        stride,
        padding,
        output_padding: 0,
        bias: false,
    };
    let relu = Layer::Activation(Activation::Relu);
    let [w0, rest @ ..] = widths;
    let mut layers = vec![convt(w0, 1, 0), PYTORCH_BATCH_NORM, relu];
    for width in rest {
        layers.extend([convt(width, 2, 1), PYTORCH_BATCH_NORM, relu]);
    }
    layers.extend([convt(channels, 2, 1), Layer::Activation(Activation::Tanh)]);
    LayerStack {
        input: Shape::flat(noise),
        layers,
        init: Init::NormalWithBatchNorm { std: 0.02 },
    }
}

/// `pytorch/examples`' 64x64 DCGAN discriminator, as its `nn.Sequential`
/// less the final Sigmoid (the loss takes the logit), with `widths` [w0, w1,
/// w2, w3] ([`dcgan64_discriminator_channels`] of ndf in the original):
/// Conv2d(channels -> w0, 4, 2, 1), LeakyReLU(0.2); three Conv2d(4, 2, 1)
/// to w1, w2 and w3, each with BN and LeakyReLU(0.2); Conv2d(w3 -> 1, 4, 1,
/// 0): one logit. No biases; initialised as the generator.
pub fn dcgan64_discriminator(channels: usize, widths: [usize; 4]) -> LayerStack {
    let conv = |out_channels, stride, padding| Layer::Conv2d {
        out_channels,
        kernel: 4,
        stride,
        padding,
        bias: false,
    };
    let lrelu = Layer::Activation(Activation::LeakyRelu(0.2));
    let [w0, rest @ ..] = widths;
    let mut layers = vec![conv(w0, 2, 1), lrelu];
    for width in rest {
        layers.extend([conv(width, 2, 1), PYTORCH_BATCH_NORM, lrelu]);
    }
    layers.push(conv(1, 1, 0));
    LayerStack {
        input: Shape::image(channels, 64, 64),
        layers,
        init: Init::NormalWithBatchNorm { std: 0.02 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameters(stack: &LayerStack) -> usize {
        stack
            .state_dict("")
            .unwrap()
            .iter()
            .filter(|(_, t)| t.trainable)
            .map(|(_, t)| t.shape.iter().product::<usize>())
            .sum()
    }

    #[test]
    fn the_dcgan64_networks_are_pytorch_examples_module_for_module() {
        let g = dcgan64_generator(DCGAN64_NOISE, dcgan64_generator_channels(DCGAN64_WIDTH), 3);
        assert_eq!(g.output().unwrap(), Shape::image(3, 64, 64));
        let sizes: Vec<Shape> = g.shapes().unwrap();
        assert_eq!(sizes[0], Shape::image(512, 4, 4));
        assert_eq!(sizes[9], Shape::image(64, 32, 32));
        // The parameter counts PyTorch's DCGAN tutorial prints for nc = 3.
        assert_eq!(parameters(&g), 3_576_704);
        let d = dcgan64_discriminator(3, dcgan64_discriminator_channels(DCGAN64_WIDTH));
        assert_eq!(d.output().unwrap(), Shape::image(1, 1, 1));
        assert_eq!(parameters(&d), 2_765_568);
        let g_names: Vec<(String, Vec<usize>)> = names(&g, "main")
            .into_iter()
            .filter(|(n, _)| n.ends_with(".weight"))
            .collect();
        assert_eq!(
            g_names,
            [
                ("main.0.weight".to_string(), vec![100, 512, 4, 4]),
                ("main.1.weight".into(), vec![512]),
                ("main.3.weight".into(), vec![512, 256, 4, 4]),
                ("main.4.weight".into(), vec![256]),
                ("main.6.weight".into(), vec![256, 128, 4, 4]),
                ("main.7.weight".into(), vec![128]),
                ("main.9.weight".into(), vec![128, 64, 4, 4]),
                ("main.10.weight".into(), vec![64]),
                ("main.12.weight".into(), vec![64, 3, 4, 4]),
            ]
        );
        let d_names: Vec<String> = names(&d, "main").into_iter().map(|(n, _)| n).collect();
        assert_eq!(d_names[0], "main.0.weight");
        assert_eq!(d_names[1], "main.2.weight");
        assert_eq!(
            d_names[2..7],
            [
                "main.3.weight",
                "main.3.bias",
                "main.3.running_mean",
                "main.3.running_var",
                "main.3.num_batches_tracked"
            ]
        );
        assert_eq!(d_names.last().unwrap(), "main.11.weight");
    }

    #[test]
    fn the_dcgan64_init_is_pytorch_examples_weights_init() {
        let g = dcgan64_generator(DCGAN64_NOISE, dcgan64_generator_channels(16), 3);
        let values = g.initial_values(1, 0).unwrap();
        let state = g.state_dict("").unwrap();
        let moments = |v: &[f32]| {
            let n = v.len() as f64;
            let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
            let var = v
                .iter()
                .map(|&x| (f64::from(x) - mean).powi(2))
                .sum::<f64>()
                / n;
            (mean, var.sqrt())
        };
        for ((name, t), v) in state.iter().zip(&values) {
            let (mean, std) = moments(v);
            match (t.name, t.shape.len()) {
                // Conv weights: N(0, 0.02); 1,600 to 102,400 draws, so the
                // mean within 5 standard errors and the std within 10%.
                ("weight", 4) => {
                    let se = 0.02 / (v.len() as f64).sqrt();
                    assert!(
                        mean.abs() < 5.0 * se && (std - 0.02).abs() < 0.002,
                        "{name}: {mean} {std}"
                    );
                }
                // Batch norm scales: N(1, 0.02) over 16 to 128 channels.
                ("weight", 1) => {
                    assert!(
                        (mean - 1.0).abs() < 0.02 && std > 0.01 && std < 0.03,
                        "{name}: {mean} {std}"
                    );
                }
                ("bias" | "running_mean", _) => assert!(v.iter().all(|&x| x == 0.0), "{name}"),
                ("running_var", _) => assert!(v.iter().all(|&x| x == 1.0), "{name}"),
                _ => {}
            }
        }
    }

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
        let g = dcgan_generator(100, DCGAN_GENERATOR_CHANNELS, 1);
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
        let d = dcgan_discriminator(Shape::image(1, 28, 28), DCGAN_DISCRIMINATOR_CHANNELS);
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
}
