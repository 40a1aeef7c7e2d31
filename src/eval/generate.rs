//! Images from a generator for evaluation: `count` images from fresh noise
//! (the counter generator, stream `SAMPLE_NOISE`, step 1; the sample grids
//! use step 0), and for conditional models the digit asked of each image
//! (`i % 10`), which [`super::Evaluator::evaluate_images`] takes as labels.

use crate::backend::{Backend, Tensor};
use crate::error::{Error, Result};
use crate::output::grid::images_from_outputs;
use crate::rng;
use crate::train::step::GanState;

/// The noise step of evaluation images (the sample grids use step 0).
const EVAL_NOISE_STEP: u32 = 1;

/// `count` generated images (MNIST-polarity bytes) and, for conditional
/// models, the digit requested of each.
/// `output` is a tensor the caller keeps (so repeated evaluations allocate
/// nothing); the images are generated as many rows at a time as it holds.
pub fn generate_images<B: Backend>(
    backend: &mut B,
    state: &GanState,
    output: Tensor,
    count: usize,
    seed: u32,
) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    let spec = &state.spec;
    let (width, noise) = (spec.generator_input(), spec.noise_dim);
    if u32::try_from(count.saturating_mul(noise.max(1))).is_err() {
        return Err(Error::config("--n", format!("{count} images is too many")));
    }
    let chunk = (output.len as usize / spec.image_pixels).min(state.generate_rows());
    if chunk == 0 {
        return Err(Error::Eval(format!(
            "the output tensor holds {} values, less than one image",
            output.len
        )));
    }
    let mut images = Vec::with_capacity(count * spec.image_pixels);
    let mut labels = (spec.classes > 0).then(|| Vec::with_capacity(count));
    let mut start = 0;
    while start < count {
        let rows = chunk.min(count - start);
        let mut inputs = vec![0.0f32; rows * width];
        for (r, row) in inputs.chunks_mut(width).enumerate() {
            let i = start + r;
            for (c, v) in row[..noise].iter_mut().enumerate() {
                *v = rng::normal(
                    seed,
                    rng::stream::SAMPLE_NOISE,
                    EVAL_NOISE_STEP,
                    (i * noise + c) as u32,
                );
            }
            if let Some(labels) = &mut labels {
                let digit = i % spec.classes;
                row[noise + digit] = 1.0;
                labels.push(digit as u8);
            }
        }
        let values = state.generate(backend, &inputs, output)?;
        images.extend(images_from_outputs(&values, spec.scaling));
        start += rows;
    }
    Ok((images, labels))
}
