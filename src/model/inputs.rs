//! What goes into a generator and what comes out, built in one place for
//! the sample grids, `gan-gpu sample` and the evaluation: noise from the
//! counter generator (stream `SAMPLE_NOISE`; the value of input `c` of image
//! `i` is counter `i * noise_dim + c`, its high 32 bits added to the noise
//! step) and, for conditional models, the one-hot digit asked of each image;
//! and the network's outputs back as pixel bytes.

use super::spec::{ModelSpec, PixelScaling};
use crate::rng;

/// The noise step of the sample grids and of `gan-gpu sample`.
pub const SAMPLE_NOISE_STEP: u32 = 0;
/// The noise step of the evaluation's images, so they are not the grid's.
pub const EVAL_NOISE_STEP: u32 = 1;

/// The generator inputs of images `first .. first + rows`, a row of
/// `spec.generator_input()` values each; `label_of(i)` is the digit asked of
/// image `i` (used by conditional models only).
pub fn generator_inputs(
    spec: &ModelSpec,
    seed: u32,
    noise_step: u32,
    first: usize,
    rows: usize,
    label_of: impl Fn(usize) -> usize,
) -> Vec<f32> {
    inputs(spec, first, rows, label_of, |i, c| {
        let index = (i as u64) * spec.noise_dim as u64 + c as u64;
        rng::normal(
            seed,
            rng::stream::SAMPLE_NOISE,
            noise_step + (index >> 32) as u32,
            index as u32,
        )
    })
}

/// The generator inputs of images `first .. first + rows` with their noise
/// taken from `noise` (image `i`'s z is row `i` of `spec.noise_dim` values,
/// as `gan-gpu sample --noise` reads them); labels as [`generator_inputs`].
pub fn generator_inputs_from(
    spec: &ModelSpec,
    noise: &[f32],
    first: usize,
    rows: usize,
    label_of: impl Fn(usize) -> usize,
) -> Vec<f32> {
    inputs(spec, first, rows, label_of, |i, c| {
        noise[i * spec.noise_dim + c]
    })
}

/// Rows of `[z ; one-hot label]`, with `z(i, c)` the noise of image `i`.
fn inputs(
    spec: &ModelSpec,
    first: usize,
    rows: usize,
    label_of: impl Fn(usize) -> usize,
    z: impl Fn(usize, usize) -> f32,
) -> Vec<f32> {
    let width = spec.generator_input();
    let mut inputs = vec![0.0f32; rows * width];
    for (r, row) in inputs.chunks_mut(width).enumerate() {
        let i = first + r;
        for (c, v) in row[..spec.noise_dim].iter_mut().enumerate() {
            *v = z(i, c);
        }
        if spec.classes > 0 {
            row[spec.noise_dim + label_of(i)] = 1.0;
        }
    }
    inputs
}

/// Converts network outputs back to pixels (MNIST polarity) through the
/// model's data scaling.
pub fn images_from_outputs(values: &[f32], scaling: PixelScaling) -> Vec<u8> {
    values.iter().map(|&v| scaling.to_pixel(v)).collect()
}
