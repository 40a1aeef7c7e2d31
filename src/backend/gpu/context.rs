//! The GPU context: which graphics API to use, the adapter (a physical device
//! behind that API), and the logical device and queue the backend records
//! into. Also lists every adapter on the machine for `gan-gpu info`, and turns
//! "no adapter" and "limit too small" into errors that say what exists and
//! what to install.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// Which graphics API to run the kernels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GpuApi {
    /// The best adapter of any API: a real GPU before a software one, and
    /// Vulkan/Metal/DX12 before GL.
    Best,
    Vulkan,
    Metal,
    Dx12,
    /// OpenGL (ES) through EGL/WGL; compute needs GL 4.3 or GLES 3.1.
    Gl,
}

impl GpuApi {
    /// All the concrete APIs, in order of preference.
    pub const CONCRETE: [GpuApi; 4] = [GpuApi::Vulkan, GpuApi::Metal, GpuApi::Dx12, GpuApi::Gl];

    /// The wgpu backend set this choice enables.
    pub fn backends(self) -> wgpu::Backends {
        match self {
            GpuApi::Best => wgpu::Backends::all(),
            GpuApi::Vulkan => wgpu::Backends::VULKAN,
            GpuApi::Metal => wgpu::Backends::METAL,
            GpuApi::Dx12 => wgpu::Backends::DX12,
            GpuApi::Gl => wgpu::Backends::GL,
        }
    }

    /// The name used in messages and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            GpuApi::Best => "best",
            GpuApi::Vulkan => "Vulkan",
            GpuApi::Metal => "Metal",
            GpuApi::Dx12 => "DX12",
            GpuApi::Gl => "GL",
        }
    }

    /// Parses a GPU API name as `--backend` spells it, any case: "auto" (or
    /// "best"), "vulkan", "metal", "dx12" or "gl", plus the aliases below.
    pub fn parse(s: &str) -> Result<GpuApi> {
        match s.trim().to_ascii_lowercase().as_str() {
            "best" | "auto" => Ok(GpuApi::Best),
            "vulkan" | "vk" => Ok(GpuApi::Vulkan),
            "metal" | "mtl" => Ok(GpuApi::Metal),
            "dx12" | "d3d12" => Ok(GpuApi::Dx12),
            "gl" | "gles" | "opengl" => Ok(GpuApi::Gl),
            other => Err(Error::config(
                "--backend",
                format!(
                    "unknown GPU API {other:?} (expected auto, vulkan, metal, dx12 or gl; \
                     `--backend cpu` is the CPU path, not a GPU API)"
                ),
            )),
        }
    }

    /// How to get an adapter for this API when there is none.
    fn install_hint(self) -> &'static str {
        match self {
            GpuApi::Vulkan => {
                "install a Vulkan driver, e.g. `apt-get install mesa-vulkan-drivers` \
                 (Mesa, includes the lavapipe software driver) or your GPU vendor's driver"
            }
            GpuApi::Gl => {
                "install an OpenGL driver with EGL, e.g. `apt-get install libegl1 libgl1-mesa-dri`"
            }
            GpuApi::Metal => "Metal is only available on macOS and iOS",
            GpuApi::Dx12 => "DX12 is only available on Windows 10 and later",
            GpuApi::Best => {
                "install a GPU driver, e.g. `apt-get install mesa-vulkan-drivers` for \
                 Mesa's Vulkan drivers (including the lavapipe software driver)"
            }
        }
    }
}

impl fmt::Display for GpuApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The limits that matter for this program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyLimits {
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_size_x: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_storage_buffers_per_shader_stage: u32,
}

impl From<&wgpu::Limits> for KeyLimits {
    fn from(l: &wgpu::Limits) -> Self {
        KeyLimits {
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_buffer_size: l.max_buffer_size,
            max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
        }
    }
}

/// One adapter as `gan-gpu info` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// "vulkan", "gl", "metal", "dx12".
    pub backend: String,
    pub name: String,
    /// "DiscreteGpu", "Cpu", ...
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub limits: KeyLimits,
    /// Whether it has timestamp queries inside compute passes (`bench --profile`).
    pub timestamps: bool,
}

impl AdapterSummary {
    fn new(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        AdapterSummary {
            backend: info.backend.to_str().to_string(),
            name: info.name,
            device_type: format!("{:?}", info.device_type),
            driver: info.driver,
            driver_info: info.driver_info,
            limits: KeyLimits::from(&adapter.limits()),
            timestamps: adapter.features().contains(super::profile::FEATURES),
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.limits;
        writeln!(f, "{} ({}, {})", self.name, self.backend, self.device_type)?;
        writeln!(f, "  driver: {} {}", self.driver, self.driver_info)?;
        writeln!(
            f,
            "  timestamps inside compute passes (bench --profile): {}",
            if self.timestamps { "yes" } else { "no" }
        )?;
        writeln!(
            f,
            "  max_storage_buffer_binding_size: {} ({})",
            l.max_storage_buffer_binding_size,
            mib(l.max_storage_buffer_binding_size)
        )?;
        writeln!(
            f,
            "  max_buffer_size: {} ({})",
            l.max_buffer_size,
            mib(l.max_buffer_size)
        )?;
        writeln!(
            f,
            "  max_compute_workgroup_size_x: {}",
            l.max_compute_workgroup_size_x
        )?;
        writeln!(
            f,
            "  max_compute_invocations_per_workgroup: {}",
            l.max_compute_invocations_per_workgroup
        )?;
        writeln!(
            f,
            "  max_compute_workgroup_storage_size: {}",
            l.max_compute_workgroup_storage_size
        )?;
        write!(
            f,
            "  max_storage_buffers_per_shader_stage: {}",
            l.max_storage_buffers_per_shader_stage
        )
    }
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    // No validation layers unless asked for through WGPU_DEBUG / WGPU_VALIDATION.
    desc.flags = wgpu::InstanceFlags::empty().with_env();
    wgpu::Instance::new(desc)
}

/// Test hook: with `GAN_GPU_NO_GPU=1` (any value but empty or `0`) wgpu is
/// not asked at all and no adapter is found, as on a machine without a driver.
pub const NO_GPU_ENV: &str = "GAN_GPU_NO_GPU";

/// Whether [`NO_GPU_ENV`] hides every adapter.
pub fn gpu_hidden() -> bool {
    std::env::var(NO_GPU_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn enumerate(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    if gpu_hidden() {
        return Vec::new();
    }
    pollster::block_on(instance(backends).enumerate_adapters(backends))
}

/// Every adapter wgpu can find, on every API compiled in.
pub fn list_adapters() -> Vec<AdapterSummary> {
    enumerate(wgpu::Backends::all())
        .iter()
        .map(AdapterSummary::new)
        .collect()
}

/// How strongly [`GpuApi::Best`] prefers an adapter.
fn preference(info: &wgpu::AdapterInfo) -> u32 {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 40,
        wgpu::DeviceType::IntegratedGpu => 30,
        wgpu::DeviceType::VirtualGpu => 20,
        wgpu::DeviceType::Other => 10,
        wgpu::DeviceType::Cpu => 0,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 1,
        _ => 0,
    };
    kind + api
}

/// What the run needs from the device, checked against the adapter's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuOptions {
    pub api: GpuApi,
    /// The largest storage buffer binding the run cannot split, in bytes:
    /// one training image (the training set itself is split over as many
    /// bindings as it needs, [`data_chunk_bytes`](Self::data_chunk_bytes)).
    pub storage_binding_bytes: u64,
    /// The most bytes of training images one binding holds; None: as many
    /// as the adapter's `max_storage_buffer_binding_size` and
    /// `max_buffer_size` allow. Tests force small values to run the split.
    pub data_chunk_bytes: Option<u64>,
    /// Submit the recorded work after this many training steps ([`end_step`]
    /// calls), to bound the size of one command buffer.
    ///
    /// [`end_step`]: crate::backend::Backend::end_step
    pub steps_per_submit: u32,
    /// The matmul kernels; None: chosen from the adapter's device type
    /// ([`MatmulVariant::for_device`]).
    ///
    /// [`MatmulVariant::for_device`]: super::kernels::MatmulVariant::for_device
    pub matmul: Option<super::kernels::MatmulVariant>,
    /// Open the device with timestamp queries inside compute passes, for
    /// [`GpuBackend::start_profile`](super::GpuBackend::start_profile); an
    /// adapter without them is an error.
    pub profile: bool,
}

/// One MNIST image: 784 bytes.
pub const MNIST_IMAGE_BYTES: u64 = 784;

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            api: GpuApi::Best,
            storage_binding_bytes: MNIST_IMAGE_BYTES,
            data_chunk_bytes: None,
            steps_per_submit: 32,
            matmul: None,
            profile: false,
        }
    }
}

impl GpuOptions {
    /// The defaults with the given API.
    pub fn with_api(api: GpuApi) -> Self {
        GpuOptions {
            api,
            ..Default::default()
        }
    }
}

/// GPU errors reported asynchronously (validation errors, device loss),
/// collected so the next `flush` or `read` can return them as [`Error::Gpu`].
pub type ErrorSink = Arc<Mutex<Vec<String>>>;

/// An adapter with its device and queue.
pub struct GpuContext {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub errors: ErrorSink,
    /// Set (with the reason) by wgpu's device-lost callback.
    pub lost: LostFlag,
}

/// Why the device was lost, once it has been.
pub type LostFlag = Arc<Mutex<Option<String>>>;

impl GpuContext {
    /// Picks an adapter for `options.api`, checks its limits and opens a device.
    pub fn new(options: &GpuOptions) -> Result<Self> {
        let api = options.api;
        let mut adapters = enumerate(api.backends());
        // Noop and other non-APIs never count.
        adapters.retain(|a| {
            matches!(
                a.get_info().backend,
                wgpu::Backend::Vulkan
                    | wgpu::Backend::Metal
                    | wgpu::Backend::Dx12
                    | wgpu::Backend::Gl
            )
        });
        adapters.sort_by_key(|a| std::cmp::Reverse(preference(&a.get_info())));
        // An adapter without compute shaders (an OpenGL context below 4.3 /
        // GLES 3.1, as NVIDIA's EGL gives wgpu) cannot run any kernel.
        let (usable, no_compute): (Vec<_>, Vec<_>) = adapters.into_iter().partition(|a| {
            a.get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        });
        if usable.is_empty() {
            if let Some(a) = no_compute.first() {
                let info = a.get_info();
                return Err(Error::Gpu(format!(
                    "adapter {} ({}, driver {}) cannot run compute shaders (OpenGL needs 4.3 or \
                     GLES 3.1 for them); use another backend, e.g. --backend vulkan",
                    info.name,
                    info.backend.to_str(),
                    info.driver_info.trim()
                )));
            }
        }
        let Some(adapter) = usable.into_iter().next() else {
            let available: Vec<String> = list_adapters()
                .iter()
                .map(|a| format!("{} {}", a.backend, a.name))
                .collect();
            let available = if gpu_hidden() {
                format!("none: {NO_GPU_ENV} is set")
            } else if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            };
            let what = match api {
                GpuApi::Best => "no GPU adapter found".to_string(),
                other => format!("no {other} adapter found"),
            };
            return Err(Error::Gpu(format!(
                "{what} (available: {available}); {}",
                api.install_hint()
            )));
        };
        let info = adapter.get_info();
        let limits = adapter.limits();
        let need = options.storage_binding_bytes;
        for (limit, have) in [
            (
                "max_storage_buffer_binding_size",
                limits.max_storage_buffer_binding_size,
            ),
            ("max_buffer_size", limits.max_buffer_size),
        ] {
            if have < need {
                return Err(Error::Gpu(format!(
                    "adapter {} ({}) cannot bind one training image: {limit} is {have} bytes, \
                     {need} bytes needed",
                    info.name, info.backend
                )));
            }
        }
        // Tiles of the matmul kernels: 256 invocations and 8 KiB of workgroup memory.
        if limits.max_compute_invocations_per_workgroup < 256
            || limits.max_compute_workgroup_size_x < 256
            || limits.max_compute_workgroup_storage_size < 8192
            || limits.max_storage_buffers_per_shader_stage < 6
        {
            return Err(Error::Gpu(format!(
                "adapter {} ({}) is too small for the kernels: it allows {} invocations per \
                 workgroup (256 needed), workgroup size x {} (256 needed), {} bytes of \
                 workgroup memory (8192 needed) and {} storage buffers per stage (6 needed)",
                info.name,
                info.backend,
                limits.max_compute_invocations_per_workgroup,
                limits.max_compute_workgroup_size_x,
                limits.max_compute_workgroup_storage_size,
                limits.max_storage_buffers_per_shader_stage
            )));
        }
        let mut required_features = wgpu::Features::empty();
        if options.profile {
            let need = super::profile::FEATURES;
            if !adapter.features().contains(need) {
                return Err(Error::Gpu(format!(
                    "adapter {} ({}) has no timestamp queries inside compute passes, which \
                     --profile needs",
                    info.name,
                    info.backend.to_str()
                )));
            }
            required_features = need;
        }
        let desc = wgpu::DeviceDescriptor {
            label: Some("gan-gpu"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            Error::Gpu(format!(
                "could not open a device on {} ({}): {e}",
                info.name, info.backend
            ))
        })?;
        let errors: ErrorSink = Arc::new(Mutex::new(Vec::new()));
        let lost: LostFlag = Arc::new(Mutex::new(None));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut list) = sink.lock() {
                // One line: wgpu's messages span several.
                let kind = match e {
                    wgpu::Error::OutOfMemory { .. } => "out of GPU memory",
                    wgpu::Error::Validation { .. } => "validation error",
                    wgpu::Error::Internal { .. } => "internal error",
                };
                let text = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                list.push(format!("{kind}: {text}"));
            }
        }));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut l) = flag.lock() {
                l.get_or_insert_with(|| format!("{reason:?}: {message}"));
            }
        });
        Ok(GpuContext {
            adapter,
            device,
            queue,
            info,
            limits,
            errors,
            lost,
        })
    }

    /// "llvmpipe (LLVM 15.0.6, 256 bits) (vulkan)": the adapter, for messages.
    pub fn adapter_name(&self) -> String {
        format!("{} ({})", self.info.name, self.info.backend.to_str())
    }

    /// Returns the first asynchronous GPU error since the last call, if any,
    /// naming the adapter and `doing` (what the host was doing when it
    /// surfaced). A lost device is [`Error::DeviceLost`].
    pub fn take_error_while(&self, doing: &str) -> Result<()> {
        if let Some(reason) = self.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(Error::DeviceLost {
                adapter: self.adapter_name(),
                doing: doing.to_string(),
                reason,
            });
        }
        let mut list = self
            .errors
            .lock()
            .map_err(|_| Error::Gpu("error list poisoned".into()))?;
        if list.is_empty() {
            return Ok(());
        }
        let first = list.remove(0);
        let more = list.len();
        list.clear();
        let more = if more == 0 {
            String::new()
        } else {
            format!(" (and {more} more errors)")
        };
        Err(Error::Gpu(format!(
            "on adapter {} while {doing}: {first}{more}",
            self.adapter_name()
        )))
    }

    /// [`take_error_while`](Self::take_error_while) running recorded work.
    pub fn take_error(&self) -> Result<()> {
        self.take_error_while("running the recorded GPU work")
    }
}
