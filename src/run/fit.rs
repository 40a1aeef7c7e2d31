//! Whether a model's buffers fit a GPU adapter's limits.

use crate::error::{Error, Result};

use crate::backend::gpu::GpuBackend;
use crate::model::ModelSpec;
use crate::model::StepPlan;

/// Rejects a model whose buffers the adapter cannot hold, naming the flag:
/// each network's flat parameter buffer and the largest activation buffer
/// ([`StepPlan`]) must fit max_storage_buffer_binding_size and max_buffer_size.
pub fn check_gpu_fit(gpu: &GpuBackend, spec: &ModelSpec) -> Result<()> {
    let limits = gpu.limits();
    let max = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    let info = gpu.adapter_info();
    let plan = StepPlan::new(spec);
    // A layer model's sizes follow from the model itself (and its batch).
    let (g_flag, d_flag) = match spec.generator.mlp() {
        Some(_) => ("--g-hidden", "--d-hidden"),
        None => ("--model", "--model"),
    };
    let needs = [
        (
            g_flag,
            "the generator's parameters",
            plan.generator_param_bytes(),
        ),
        (
            d_flag,
            "the discriminator's parameters",
            plan.discriminator_param_bytes(),
        ),
        (
            "--batch-size",
            "the largest activation buffer",
            plan.largest_activation_bytes(),
        ),
    ];
    for (flag, what, bytes) in needs {
        if bytes > max {
            return Err(Error::config(
                flag,
                format!(
                    "{what} need {bytes} bytes, over the {max}-byte buffer limit of \
                     adapter {} ({}; max_storage_buffer_binding_size {}, max_buffer_size {}); \
                     use smaller widths or --backend cpu",
                    info.name,
                    info.backend.to_str(),
                    limits.max_storage_buffer_binding_size,
                    limits.max_buffer_size
                ),
            ));
        }
    }
    Ok(())
}
