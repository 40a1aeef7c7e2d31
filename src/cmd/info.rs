//! `gan-gpu info`: every GPU adapter wgpu can see, with the limits that
//! matter, and every model at its default settings: the shapes its
//! networks pass through, their parameters, a step's work and memory.

use anyhow::Result;

use gan_gpu::backend::gpu::list_adapters;
use gan_gpu::model::{Layer, ModelKind, ModelSpec, NetSpec, StepPlan};
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
    outln!("models (default settings; `--model NAME`):")?;
    for kind in ModelKind::ALL {
        let spec = ModelSpec::preset(kind);
        let plan = StepPlan::new(&spec);
        let mib = |bytes: u128| bytes as f64 / f64::from(1 << 20);
        outln!(
            "  {:<12} G {} parameters, D {}; batch {}; a step {:.2} GFLOP of products; \
             memory {:.1} MiB (largest buffer {:.1} MiB)",
            kind.name(),
            thousands(plan.generator_params),
            thousands(plan.discriminator_params),
            plan.batch,
            plan.matmul_flops as f64 / 1e9,
            mib(plan.memory().total()),
            mib(u128::from(plan.largest_activation_bytes())),
        )?;
        for (name, net) in [("G", &spec.generator), ("D", &spec.discriminator)] {
            outln!("  {:<12} {name} {}", "", shapes(net))?;
        }
    }
    Ok(())
}

/// The shapes a network passes through: its input, then the output of each
/// weighted layer (and of the reshape that follows one), with the other
/// layers named between them.
fn shapes(net: &NetSpec) -> String {
    let stack = net.stack();
    let Ok(outputs) = stack.shapes() else {
        return "(layers that do not fit)".into();
    };
    let mut text = format!("{}", stack.input);
    for (layer, shape) in stack.layers.iter().zip(outputs) {
        let word = match layer {
            Layer::Linear { .. } => "Linear",
            Layer::Conv2d { .. } => "Conv",
            Layer::ConvTranspose2d { .. } => "ConvT",
            Layer::BatchNorm { .. } => "BN",
            Layer::Activation(act) if layer.is_module() => {
                text.push_str(&format!(" {act:?}"));
                continue;
            }
            Layer::Dropout(p) => {
                text.push_str(&format!(" Dropout({p})"));
                continue;
            }
            Layer::Reshape(_) | Layer::Flatten => "->",
            Layer::Activation(_) => continue,
        };
        match layer {
            Layer::BatchNorm { .. } => text.push_str(" BN"),
            _ => text.push_str(&format!(" {word} {shape}")),
        }
    }
    text
}

/// `n` with thousands separated by commas.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
