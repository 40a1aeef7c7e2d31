//! `gan-gpu info`: every GPU adapter wgpu can see, with the limits that matter.

use anyhow::Result;

use gan_gpu::backend::gpu::list_adapters;
use gan_gpu::outln;

pub fn info() -> Result<()> {
    let adapters = list_adapters();
    if adapters.is_empty() {
        outln!(
            "no GPU adapter found; `--backend cpu` (and `auto`) train on the CPU. \
             Install a driver for one of wgpu's APIs, e.g. `apt-get install mesa-vulkan-drivers` \
             for Vulkan (lavapipe runs it on the CPU where there is no GPU)."
        )?;
    }
    for (i, adapter) in adapters.iter().enumerate() {
        outln!("adapter {i}: {adapter}")?;
    }
    Ok(())
}
