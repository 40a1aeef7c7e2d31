//! Where a command's tensor ops run: the `--backend` choice, and the policy of
//! `auto` (a hardware GPU adapter, else the CPU path, with a notice saying why).

use crate::error::{Error, Result, ResultExt};

use crate::backend::gpu::{GpuApi, GpuBackend, GpuOptions};
use crate::errln;

/// Where the tensor ops run (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// The best GPU adapter; the CPU path if there is none.
    Auto,
    Vulkan,
    Metal,
    Dx12,
    Gl,
    /// The plain-Rust CPU reference.
    Cpu,
}

impl BackendChoice {
    /// Every choice, in the order the command line lists them.
    pub const ALL: [BackendChoice; 6] = [
        BackendChoice::Auto,
        BackendChoice::Vulkan,
        BackendChoice::Metal,
        BackendChoice::Dx12,
        BackendChoice::Gl,
        BackendChoice::Cpu,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Vulkan => "vulkan",
            BackendChoice::Metal => "metal",
            BackendChoice::Dx12 => "dx12",
            BackendChoice::Gl => "gl",
            BackendChoice::Cpu => "cpu",
        }
    }

    /// One line about the choice, for `--help` (None: the name says it).
    pub fn about(self) -> Option<&'static str> {
        match self {
            BackendChoice::Auto => Some("The best GPU adapter; the CPU path if there is none"),
            BackendChoice::Cpu => Some("The plain-Rust CPU reference"),
            _ => None,
        }
    }

    /// The GPU API of the choice, None for `cpu`.
    pub fn gpu_api(self) -> Option<GpuApi> {
        gpu_api(self)
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = crate::Error;

    /// The choice of a [`name`](BackendChoice::name), exactly as written there.
    fn from_str(name: &str) -> crate::Result<Self> {
        BackendChoice::ALL
            .into_iter()
            .find(|choice| choice.name() == name)
            .ok_or_else(|| {
                crate::Error::config(
                    "--backend",
                    format!(
                        "{name:?} is not a backend (expected auto, vulkan, metal, dx12, gl or cpu)"
                    ),
                )
            })
    }
}

/// The GPU API of a `--backend` choice, None for `cpu`.
pub fn gpu_api(choice: BackendChoice) -> Option<GpuApi> {
    match choice {
        BackendChoice::Auto => Some(GpuApi::Best),
        BackendChoice::Vulkan => Some(GpuApi::Vulkan),
        BackendChoice::Metal => Some(GpuApi::Metal),
        BackendChoice::Dx12 => Some(GpuApi::Dx12),
        BackendChoice::Gl => Some(GpuApi::Gl),
        BackendChoice::Cpu => None,
    }
}

/// What `--backend auto` runs `purpose` on: a hardware GPU adapter, or None
/// (the CPU path) after a one-line notice saying why. A software rasteriser
/// (lavapipe, llvmpipe) runs the kernels about 170 times slower than the CPU
/// path, so `auto` does not pick it.
pub fn auto_gpu(options: &GpuOptions, purpose: &str) -> Option<GpuBackend> {
    match GpuBackend::new(options) {
        Ok(gpu) if gpu.adapter_info().device_type != wgpu::DeviceType::Cpu => Some(gpu),
        Ok(gpu) => {
            errln!(
                "notice: the only GPU adapter, {}, is a software renderer; {purpose} on the CPU \
                 path, which is much faster (pass --backend vulkan or gl to use it anyway)",
                gpu.adapter_info().name
            );
            None
        }
        Err(error) => {
            errln!(
                "notice: no usable GPU adapter ({error}); {purpose} on the CPU path. \
                 Install a GPU driver to use the GPU, e.g. `apt-get install mesa-vulkan-drivers` \
                 for Vulkan on Debian/Ubuntu, and check with `gan-gpu info`."
            );
            None
        }
    }
}

/// Opens a GPU backend, naming the `--backend` flag in errors.
pub fn new_gpu(options: &GpuOptions) -> Result<GpuBackend> {
    GpuBackend::new(options)
        .with_context(|| format!("--backend {}", options.api.name().to_lowercase()))
}

/// A backend factory that hands out `first`, then opens new devices with
/// `options` (after the first was lost).
pub fn reusing(first: GpuBackend, options: GpuOptions) -> impl FnMut() -> Result<GpuBackend> {
    let mut first = Some(first);
    move || match first.take() {
        Some(gpu) => Ok(gpu),
        None => new_gpu(&options),
    }
}

/// The backend a command runs on.
pub enum Chosen {
    /// The CPU reference.
    Cpu,
    /// A GPU backend, and the options it was opened with.
    Gpu(Box<GpuBackend>, GpuOptions),
}

/// Opens the backend of `choice` for `purpose` ("training", "running the
/// classifier"): `cpu` is the CPU path, `auto` a hardware GPU adapter or the
/// CPU path ([`auto_gpu`]), any other a GPU of that API or the error naming
/// the flag. `options` gives the GPU options for an API.
pub fn open(
    choice: BackendChoice,
    options: impl Fn(GpuApi) -> GpuOptions,
    purpose: &str,
) -> Result<Chosen> {
    Ok(match choice {
        BackendChoice::Cpu => Chosen::Cpu,
        BackendChoice::Auto => {
            let options = options(GpuApi::Best);
            match auto_gpu(&options, purpose) {
                Some(gpu) => Chosen::Gpu(Box::new(gpu), options),
                None => Chosen::Cpu,
            }
        }
        choice => {
            let api = gpu_api(choice)
                .ok_or_else(|| Error::Usage(format!("{}: not a GPU backend", choice.name())))?;
            let options = options(api);
            Chosen::Gpu(Box::new(new_gpu(&options)?), options)
        }
    })
}

/// Opens the backend of `choice` where any adapter will do (a software
/// renderer too): `cpu` is the CPU path, another choice a GPU of its API
/// with `options`. Where `auto` finds no usable adapter and `fallback` says
/// what then happens ("sampling on the CPU path"), a notice says so and the
/// CPU path is chosen; otherwise the error names the flag.
pub fn open_any(
    choice: BackendChoice,
    options: &GpuOptions,
    fallback: Option<&str>,
) -> Result<Chosen> {
    let Some(api) = gpu_api(choice) else {
        return Ok(Chosen::Cpu);
    };
    let options = GpuOptions { api, ..*options };
    match GpuBackend::new(&options) {
        Ok(gpu) => Ok(Chosen::Gpu(Box::new(gpu), options)),
        Err(error) => match fallback {
            Some(what) if choice == BackendChoice::Auto => {
                errln!("notice: no usable GPU adapter ({error}); {what}");
                Ok(Chosen::Cpu)
            }
            _ => Err(error).with_context(|| format!("--backend {}", api.name().to_lowercase())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelKind;

    #[test]
    fn names_parse_back_exactly() {
        for choice in BackendChoice::ALL {
            assert_eq!(choice.name().parse::<BackendChoice>().unwrap(), choice);
        }
        for kind in ModelKind::ALL {
            assert_eq!(kind.name().parse::<ModelKind>().unwrap(), kind);
        }
        assert!("Vulkan".parse::<BackendChoice>().is_err());
        assert!("Deep".parse::<ModelKind>().is_err());
        assert_eq!(gpu_api(BackendChoice::Cpu), None);
        assert_eq!(gpu_api(BackendChoice::Auto), Some(GpuApi::Best));
    }
}
