//! A training pass of two batches (`Pass::Train { batches: 2 }`, the D
//! step's real and generated rows in one pass) through a network with batch
//! norm: it must be exactly two separate PyTorch-style passes, each batch
//! normalised by its own statistics and the running statistics updated for
//! the first batch, then the second.
//!
//! On the CPU reference, against two separate one-batch passes of a twin
//! network: the outputs and the input gradients of each batch, and the
//! running statistics, bit for bit (the reference's grouped batch norm is
//! documented to do exactly what separate calls do, and every other op works
//! row by row); the parameter gradients equal the sum of the two passes'
//! within 1e-5 relative plus 1e-6 (two f32 sums of O(1) terms in another
//! order). A batch's outputs do not depend on the other batch at all.
//! On Vulkan and GL, the two-batch pass against the CPU's within the layer
//! parity bound of `tests/gpu_layer_ops.rs` (1e-4 relative plus 1e-5).

mod common;

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::{Backend, Tensor};
use gan_gpu::model::{Activation, Init, Layer, LayerStack, Shape};
use gan_gpu::nn::{LayerNetwork, Pass};
use gan_gpu::rng;

const BATCH: usize = 3;
const INPUT: usize = 2 * 5 * 5;

/// A small D with batch norm over channels: (2, 5, 5) -> 1 logit.
fn stack() -> LayerStack {
    LayerStack {
        input: Shape::image(2, 5, 5),
        layers: vec![
            Layer::Conv2d {
                out_channels: 3,
                kernel: 3,
                stride: 2,
                padding: 1,
                bias: false,
            },
            Layer::BatchNorm {
                momentum: 0.1,
                eps: 1e-5,
            },
            Layer::Activation(Activation::LeakyRelu(0.2)),
            Layer::Flatten,
            Layer::Linear { out: 1, bias: true },
        ],
        init: Init::GlorotUniform,
    }
}

fn random(n: usize, stream: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| rng::normal(77, stream, 0, i))
        .collect()
}

/// What one pass leaves: outputs, input gradients, parameter gradients and
/// the running statistics.
#[derive(Debug)]
struct Pass2 {
    output: Vec<f32>,
    d_input: Vec<f32>,
    grads: Vec<f32>,
    running: Vec<f32>,
}

/// Runs one training pass of `batches` batches over `input` (rows of
/// [`INPUT`]) with loss gradient `d_output`, on a fresh network.
fn pass<B: Backend>(backend: &mut B, input: &[f32], d_output: &[f32], batches: usize) -> Pass2 {
    let rows = input.len() / INPUT;
    let net = LayerNetwork::new(backend, &stack(), 2 * BATCH, 5, 1).unwrap();
    let tensor = |backend: &mut B, values: &[f32]| -> Tensor {
        let t = backend.alloc(values.len()).unwrap();
        backend.write(t, values).unwrap();
        t
    };
    let x = tensor(backend, input);
    let dy = tensor(backend, d_output);
    let y = backend.alloc(rows).unwrap();
    let dx = backend.alloc(rows * INPUT).unwrap();
    let pass = Pass::Train {
        dropout: None,
        batches,
    };
    net.forward(backend, rows, x, pass, y);
    net.backward(backend, rows, x, pass, y, dy, true, Some(dx));
    Pass2 {
        output: backend.read(y).unwrap(),
        d_input: backend.read(dx).unwrap(),
        grads: net.gradients(backend).unwrap(),
        running: net.state(backend).unwrap().buffers,
    }
}

/// The same network trained on the two batches as two separate passes, in
/// order, on one network: outputs and input gradients of both, the summed
/// parameter gradients, the running statistics after both.
fn separately(input: &[f32], d_output: &[f32]) -> Pass2 {
    let mut backend = CpuBackend::new();
    let net = LayerNetwork::new(&mut backend, &stack(), 2 * BATCH, 5, 1).unwrap();
    let mut whole = Pass2 {
        output: Vec::new(),
        d_input: Vec::new(),
        grads: Vec::new(),
        running: Vec::new(),
    };
    for half in 0..2 {
        let x = backend.alloc(BATCH * INPUT).unwrap();
        backend
            .write(x, &input[half * BATCH * INPUT..][..BATCH * INPUT])
            .unwrap();
        let dy = backend.alloc(BATCH).unwrap();
        backend
            .write(dy, &d_output[half * BATCH..][..BATCH])
            .unwrap();
        let y = backend.alloc(BATCH).unwrap();
        let dx = backend.alloc(BATCH * INPUT).unwrap();
        net.forward(&mut backend, BATCH, x, Pass::train(None), y);
        net.backward(
            &mut backend,
            BATCH,
            x,
            Pass::train(None),
            y,
            dy,
            true,
            Some(dx),
        );
        whole.output.extend(backend.read(y).unwrap());
        whole.d_input.extend(backend.read(dx).unwrap());
        let grads = net.gradients(&mut backend).unwrap();
        if whole.grads.is_empty() {
            whole.grads = grads;
        } else {
            whole
                .grads
                .iter_mut()
                .zip(&grads)
                .for_each(|(a, b)| *a += b);
        }
    }
    whole.running = net.state(&mut backend).unwrap().buffers;
    whole
}

fn close(label: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{label}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{label}[{i}]: {a} vs {b}"
        );
    }
}

fn inputs() -> (Vec<f32>, Vec<f32>) {
    (random(2 * BATCH * INPUT, 1), random(2 * BATCH, 2))
}

#[test]
fn two_batches_in_one_pass_are_two_passes_on_the_cpu() {
    let (input, d_output) = inputs();
    let one = pass(&mut CpuBackend::new(), &input, &d_output, 2);
    let two = separately(&input, &d_output);
    assert_eq!(one.output, two.output, "outputs");
    assert_eq!(one.d_input, two.d_input, "input gradients");
    assert_eq!(one.running, two.running, "running statistics");
    close("parameter gradients", &one.grads, &two.grads, 1e-6, 1e-5);

    // The real rows' outputs do not see the generated rows.
    let mut other = input.clone();
    other[BATCH * INPUT..]
        .iter_mut()
        .for_each(|v| *v = 3.0 * *v + 1.0);
    let moved = pass(&mut CpuBackend::new(), &other, &d_output, 2);
    assert_eq!(moved.output[..BATCH], one.output[..BATCH], "first batch");
    assert_ne!(moved.output[BATCH..], one.output[BATCH..], "second batch");

    // One batch of six rows is a different pass: the check can fail.
    let joined = pass(&mut CpuBackend::new(), &input, &d_output, 1);
    assert_ne!(joined.output, one.output, "one batch of six");
    assert_ne!(joined.running, one.running, "one batch of six");
}

#[test]
fn two_batches_in_one_pass_on_the_gpu_match_the_cpu() {
    let _lock = common::gpu_test_lock();
    let (input, d_output) = inputs();
    let cpu = pass(&mut CpuBackend::new(), &input, &d_output, 2);
    for (api, mut gpu) in common::gpu_backends() {
        let got = pass(&mut gpu, &input, &d_output, 2);
        let label = |what: &str| format!("{api:?} {what}");
        close(&label("outputs"), &got.output, &cpu.output, 1e-5, 1e-4);
        close(
            &label("input gradients"),
            &got.d_input,
            &cpu.d_input,
            1e-5,
            1e-4,
        );
        close(
            &label("parameter gradients"),
            &got.grads,
            &cpu.grads,
            1e-5,
            1e-4,
        );
        close(
            &label("running statistics"),
            &got.running,
            &cpu.running,
            1e-5,
            1e-4,
        );
    }
}
