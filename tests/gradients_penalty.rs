//! The gradient penalty's parameter gradient (WGAN-GP's double backward,
//! `LayerNetwork::penalty_backward`) on the CPU reference, against central
//! finite differences of the penalty itself,
//! P(theta) = w sum_r (|grad_x D(x_r)| - 1)^2, computed the way a training
//! step computes it (forward, backward of ones into the input gradient,
//! `gradient_penalty`), through small critics of every layer kind a critic
//! may hold: Linear with and without bias, convolution, transposed
//! convolution, LeakyReLU, ReLU, sigmoid and tanh (whose second derivative
//! the curvature part carries), dropout, reshape and flatten.
//!
//! Tolerance, as `tests/gradients_layers.rs` argues: a central difference
//! with h = 1e-3 in f32 of a P of O(1) summed over 4 rows has rounding error
//! ~4 eps_f32 |P| / h ~ 5e-4 and truncation ~h^2; we accept |analytic -
//! numeric| <= 1e-3 + 1e-2 |numeric| and print the worst. A critic whose
//! curvature part is left out misses O(0.1) of its sigmoid and tanh
//! gradients and fails, as `a_wrong_gradient_is_caught` shows for a scaled
//! one. Batch norm is refused (`a_critic_with_batch_norm_is_refused`).

mod common;

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::{Backend, Clock, Mat, Tensor};
use gan_gpu::model::{Activation, Init, Layer, LayerStack, Shape};
use gan_gpu::nn::{LayerNetwork, Pass, PenaltyBuffers};
use gan_gpu::rng;

const H: f32 = 1e-3;
const ATOL: f64 = 1e-3;
const RTOL: f64 = 1e-2;
const ROWS: usize = 4;
/// The penalty's weight lambda / B, as a training step gives it.
const WEIGHT: f32 = 10.0 / ROWS as f32;

const PASS: Pass = Pass::Train {
    dropout: Some(3),
    batches: 1,
};

fn linear(out: usize, bias: bool) -> Layer {
    Layer::Linear { out, bias }
}

/// The critics: (name, layer list), each ending in one raw output.
fn critics() -> Vec<(&'static str, LayerStack)> {
    let stack = |input: Shape, layers: Vec<Layer>| LayerStack {
        input,
        layers,
        init: Init::GlorotUniform,
    };
    vec![
        (
            "mlp leaky dropout",
            stack(
                Shape::flat(6),
                vec![
                    linear(8, true),
                    Layer::Activation(Activation::LeakyRelu(0.2)),
                    Layer::Dropout(0.3),
                    linear(5, false),
                    Layer::Activation(Activation::Relu),
                    linear(1, true),
                ],
            ),
        ),
        (
            "mlp sigmoid tanh",
            stack(
                Shape::flat(5),
                vec![
                    linear(7, true),
                    Layer::Activation(Activation::Sigmoid),
                    Layer::Dropout(0.25),
                    linear(6, true),
                    Layer::Activation(Activation::Tanh),
                    linear(1, true),
                ],
            ),
        ),
        (
            "conv tanh",
            stack(
                Shape::image(2, 5, 5),
                vec![
                    Layer::Conv2d {
                        out_channels: 3,
                        kernel: 3,
                        stride: 2,
                        padding: 1,
                        bias: true,
                    },
                    Layer::Activation(Activation::Tanh),
                    Layer::Conv2d {
                        out_channels: 2,
                        kernel: 3,
                        stride: 1,
                        padding: 1,
                        bias: false,
                    },
                    Layer::Activation(Activation::LeakyRelu(0.3)),
                    Layer::Dropout(0.3),
                    Layer::Flatten,
                    linear(1, true),
                ],
            ),
        ),
        (
            "transposed conv sigmoid",
            stack(
                Shape::flat(4),
                vec![
                    linear(12, true),
                    Layer::Activation(Activation::Tanh),
                    Layer::Reshape(Shape::image(3, 2, 2)),
                    Layer::ConvTranspose2d {
                        out_channels: 2,
                        kernel: 3,
                        stride: 2,
                        padding: 1,
                        output_padding: 1,
                        bias: true,
                    },
                    Layer::Activation(Activation::Sigmoid),
                    Layer::Conv2d {
                        out_channels: 2,
                        kernel: 3,
                        stride: 2,
                        padding: 1,
                        bias: true,
                    },
                    Layer::Activation(Activation::LeakyRelu(0.2)),
                    Layer::Flatten,
                    linear(1, false),
                ],
            ),
        ),
    ]
}

fn random(n: usize, std: f32, stream: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| std * rng::normal(321, stream, 0, i))
        .collect()
}

struct Setup {
    backend: CpuBackend,
    net: LayerNetwork,
    buffers: PenaltyBuffers,
    input: Tensor,
    output: Tensor,
    ones: Tensor,
    grad: Tensor,
    v: Tensor,
    stats: Tensor,
}

fn setup(stack: &LayerStack) -> Setup {
    let mut backend = CpuBackend::new();
    backend
        .set_clock(Clock {
            seed: 9,
            step: 4,
            cursor: 0,
        })
        .unwrap();
    assert_eq!(stack.output().unwrap(), Shape::flat(1));
    let net = LayerNetwork::new(&mut backend, stack, ROWS, 5, 1).unwrap();
    let buffers = net.penalty_buffers(&mut backend, ROWS).unwrap();
    let width = net.input_len();
    let input = backend.alloc(ROWS * width).unwrap();
    backend.write(input, &random(ROWS * width, 1.0, 1)).unwrap();
    let output = backend.alloc(ROWS).unwrap();
    let ones = backend.alloc(ROWS).unwrap();
    backend.write(ones, &[1.0; ROWS]).unwrap();
    let grad = backend.alloc(ROWS * width).unwrap();
    let v = backend.alloc(ROWS * width).unwrap();
    let stats = backend.alloc(1).unwrap();
    Setup {
        backend,
        net,
        buffers,
        input,
        output,
        ones,
        grad,
        v,
        stats,
    }
}

impl Setup {
    /// The penalty, as a training step computes it; leaves v in place.
    fn penalty(&mut self) -> f64 {
        let b = &mut self.backend;
        self.net.forward(b, ROWS, self.input, PASS, self.output);
        self.net.backward(
            b,
            ROWS,
            self.input,
            PASS,
            self.output,
            self.ones,
            false,
            Some(self.grad),
        );
        b.write(self.stats, &[0.0]).unwrap();
        let width = self.net.input_len();
        b.gradient_penalty(
            Mat::dense(self.grad, ROWS, width),
            WEIGHT,
            Mat::dense(self.v, ROWS, width),
            self.stats,
            0,
        );
        f64::from(b.read(self.stats).unwrap()[0])
    }

    /// What `penalty_backward` adds into the parameter gradients.
    fn analytic(&mut self) -> Vec<f32> {
        self.penalty();
        let before = self.net.gradients(&mut self.backend).unwrap();
        self.net.penalty_backward(
            &mut self.backend,
            ROWS,
            self.input,
            PASS,
            self.output,
            self.ones,
            self.v,
            &self.buffers,
        );
        let after = self.net.gradients(&mut self.backend).unwrap();
        after.iter().zip(&before).map(|(a, b)| a - b).collect()
    }

    /// Central differences of the penalty in every parameter.
    fn numeric(&mut self) -> Vec<f64> {
        let state = self.net.state(&mut self.backend).unwrap();
        let mut grads = Vec::new();
        for i in 0..state.params.len() {
            let at = |delta: f32, s: &mut Self| {
                let mut moved = state.clone();
                moved.params[i] += delta;
                s.net.restore(&mut s.backend, &moved).unwrap();
                s.penalty()
            };
            let (up, down) = (at(H, self), at(-H, self));
            grads.push((up - down) / (2.0 * H as f64));
        }
        self.net.restore(&mut self.backend, &state).unwrap();
        grads
    }
}

/// Err naming the first disagreeing element; Ok(worst difference).
fn check(what: &str, analytic: &[f32], numeric: &[f64]) -> Result<f64, String> {
    common::check_gradients(what, analytic, numeric, (ATOL, RTOL))
}

#[test]
fn the_penalty_gradient_of_every_critic_kind_matches_finite_differences() {
    for (name, stack) in critics() {
        let mut s = setup(&stack);
        let penalty = s.penalty();
        // A penalty well away from 0, so that its gradient is not trivially small.
        assert!(penalty > 0.1, "{name}: penalty {penalty}");
        let analytic = s.analytic();
        let numeric = s.numeric();
        assert!(
            analytic.iter().filter(|g| g.abs() > 1e-3).count() > analytic.len() / 2,
            "{name}: most gradients should be live"
        );
        check(name, &analytic, &numeric).unwrap();
    }
}

#[test]
fn a_wrong_gradient_is_caught() {
    let (_, stack) = &critics()[1];
    let mut s = setup(stack);
    let mut analytic = s.analytic();
    let numeric = s.numeric();
    let i = analytic
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap()
        .0;
    analytic[i] *= 1.2;
    assert!(check("scaled gradient", &analytic, &numeric).is_err());
}

#[test]
fn a_critic_with_batch_norm_is_refused() {
    let mut backend = CpuBackend::new();
    let stack = LayerStack {
        input: Shape::flat(4),
        layers: vec![
            linear(4, false),
            Layer::BatchNorm {
                momentum: 0.1,
                eps: 1e-5,
            },
            Layer::Activation(Activation::LeakyRelu(0.2)),
            linear(1, true),
        ],
        init: Init::GlorotUniform,
    };
    let net = LayerNetwork::new(&mut backend, &stack, ROWS, 5, 1).unwrap();
    let err = net.penalty_buffers(&mut backend, ROWS).err().unwrap();
    assert!(err.to_string().contains("batch norm"), "{err}");
}
