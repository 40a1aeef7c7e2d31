//! Images from a generator for evaluation: `count` images from fresh noise
//! ([`model::generator_inputs`] at [`model::EVAL_NOISE_STEP`]; the sample
//! grids use step 0), and for conditional models the digit asked of each image
//! (`i % 10`), which `crate::eval::Evaluator::evaluate_images` takes as labels.

use super::step::GanState;
use crate::backend::{Backend, Tensor};
use crate::error::{Error, Result};
use crate::model;
use crate::nn::Pass;

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
    let noise = spec.noise_dim;
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
        let inputs =
            model::generator_inputs(spec, seed, model::EVAL_NOISE_STEP, start, rows, |i| {
                i % spec.classes
            });
        if let Some(labels) = &mut labels {
            labels.extend((start..start + rows).map(|i| (i % spec.classes) as u8));
        }
        let values = state.generate(backend, &inputs, Pass::Eval, output)?;
        images.extend(model::images_from_outputs(&values, spec.scaling));
        start += rows;
    }
    Ok((images, labels))
}
