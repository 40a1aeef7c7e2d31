//! The GPU backend: every op of [`Backend`] as a WGSL compute kernel run
//! through wgpu, on Vulkan, Metal, DX12 or GL.
//!
//! Everything stays on the GPU: tensors are storage buffers of f32, the
//! training set is resident as bytes packed 4 per u32, the epoch order is a
//! u32 buffer, and the [`Clock`] (seed, step, cursor) is a small storage buffer
//! that kernels read and the `end_step` kernel advances, so a step uploads
//! nothing. Ops are *recorded* as dispatches into one open compute pass of one
//! open command encoder; [`Backend::flush`] submits, and so does every
//! `steps_per_submit`-th [`Backend::end_step`]. [`Backend::read`] submits and
//! reads back through a staging buffer.
//!
//! A training step calls the same ops with the same arguments every step, so
//! each `(kernel, buffers, uniform bytes)` gets its bind group and its own
//! small uniform buffer once, cached; from the second step on nothing is
//! created. Ops cannot return errors (the trait records them); misuse found
//! while recording (a view outside its tensor, a gather before the data set is
//! uploaded) and asynchronous GPU errors are returned by the next `flush`,
//! `read` or `clock` as [`Error::Gpu`].
//!
//! Modules: [`context`] (adapter, device, limits), [`kernels`] (the pipeline
//! registry), [`matmul`] (the matmul variants and which kernel runs a
//! product), `blocked` (the generated body of the register-blocked kernel),
//! [`params`] (the uniform structs), [`profile`] (GPU timestamps per dispatch);
//! inside the backend, `record` (bind groups, dispatches, submits), `checks`
//! (an op's arguments checked on the host), `transfer` (buffers, waits,
//! errors, read-back), `ops` (the [`Backend`] trait) and the op families
//! `inputs`, `linear`, `loss`, `conv`, `batch_norm` and `elementwise`.

mod batch_norm;
mod blocked;
mod checks;
pub mod context;
mod conv;
mod elementwise;
mod inputs;
pub mod kernels;
mod linear;
mod loss;
pub mod matmul;
mod ops;
pub mod params;
mod penalty;
pub mod profile;
mod record;
mod transfer;

use std::collections::HashMap;

#[cfg(doc)]
use super::{Backend, Clock};
use crate::error::{Error, Result};
pub use context::{list_adapters, AdapterSummary, GpuApi, GpuContext, GpuOptions, KeyLimits};
use kernels::Kernels;
pub use kernels::{MatmulKernel, MatmulVariant};
use record::{BindKey, CachedBinding};

/// Threads per workgroup of the one-dimensional kernels (`WG_1D`).
const WG_1D: u32 = 256;

/// A buffer the backend owns, with an id unique over the backend's life
/// (the bind group cache keys on it; wgpu buffers have no stable id).
struct GpuBuffer {
    buffer: wgpu::Buffer,
    uid: u64,
    /// The f32 elements the buffer holds (a tensor's allocated length; a
    /// handle, [`Tensor::prefix`](crate::backend::Tensor::prefix), may name
    /// fewer, never more).
    elements: u64,
}

/// The GPU backend. Create it with [`GpuBackend::new`].
pub struct GpuBackend {
    ctx: GpuContext,
    kernels: Kernels,
    tensors: Vec<GpuBuffer>,
    clock: GpuBuffer,
    /// The training images, split into buffers of whole images that each
    /// fit one storage binding ([`ImageChunk`]); one empty buffer before
    /// any upload.
    image_chunks: Vec<ImageChunk>,
    /// The most bytes of images one chunk may hold (the adapter's binding
    /// and buffer limits, or less where [`GpuOptions::data_chunk_bytes`]
    /// says).
    chunk_limit: u64,
    labels: GpuBuffer,
    order: GpuBuffer,
    scratch: GpuBuffer,
    /// Capacity of `order` in u32s, and how many entries are valid.
    order_capacity: usize,
    order_len: usize,
    /// Pixels per image and image count of the uploaded data set (0 before).
    pixels: u32,
    images_count: usize,
    staging: Option<(wgpu::Buffer, u64)>,
    /// The newest submission, and the one `sync_behind` waits for next.
    last_submission: Option<wgpu::SubmissionIndex>,
    behind: Option<wgpu::SubmissionIndex>,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    cache: HashMap<BindKey, CachedBinding>,
    next_uid: u64,
    steps_per_submit: u32,
    steps_since_submit: u32,
    dispatches: u64,
    submits: u64,
    bind_groups_created: u64,
    /// The first misuse found while recording, returned by the next flush/read.
    pending_error: Option<Error>,
    /// Timestamps around each dispatch while a profile is running.
    profiler: Option<profile::Profiler>,
    profiling_enabled: bool,
}

/// Images `first .. first + count` of the training set, in one buffer.
struct ImageChunk {
    buffer: GpuBuffer,
    first: u32,
    count: u32,
}

fn tensor_bytes(len: u32) -> u64 {
    // A binding may not be empty: even a 0-element tensor gets one element.
    u64::from(len.max(1)) * 4
}

/// Workgroups for `threads` threads of a one-dimensional kernel: (x, y) with
/// x at most `max_x` (the per-dimension limit).
fn grid_1d(threads: u64, max_x: u32) -> (u32, u32) {
    let groups = threads.div_ceil(u64::from(WG_1D));
    let x = groups.min(u64::from(max_x.max(1)));
    let y = if x == 0 { 0 } else { groups.div_ceil(x) };
    (x as u32, y as u32)
}

impl GpuBackend {
    /// Opens a device per `options` and builds every pipeline.
    pub fn new(options: &GpuOptions) -> Result<Self> {
        let ctx = GpuContext::new(options)?;
        let workgroup_bytes = ctx.limits.max_compute_workgroup_storage_size;
        let matmul = match options.matmul {
            Some(forced) => {
                if let Some(mk) = forced
                    .kernels()
                    .iter()
                    .find(|mk| mk.workgroup_bytes() > workgroup_bytes)
                {
                    return Err(Error::Gpu(format!(
                        "adapter {} cannot run --matmul {}: its kernel needs {} bytes of \
                         workgroup memory, the adapter allows {workgroup_bytes}",
                        ctx.adapter_name(),
                        forced.name(),
                        mk.workgroup_bytes()
                    )));
                }
                forced
            }
            None => {
                let auto = MatmulVariant::for_device(ctx.info.device_type);
                let fits = auto
                    .kernels()
                    .iter()
                    .all(|mk| mk.workgroup_bytes() <= workgroup_bytes);
                if fits {
                    auto
                } else {
                    MatmulVariant::Tiled
                }
            }
        };
        let kernels = Kernels::new(&ctx.device, matmul).map_err(|e| {
            let hint = if ctx.info.backend == wgpu::Backend::Gl {
                "; compute on OpenGL needs 4.3 or GLES 3.1, try --backend vulkan"
            } else {
                ""
            };
            let problem = match e {
                Error::Gpu(problem) => problem,
                other => other.to_string(),
            };
            Error::Gpu(format!(
                "adapter {} (driver {}) cannot build the kernels: {problem}{hint}",
                ctx.adapter_name(),
                ctx.info.driver_info.trim()
            ))
        })?;
        let mut next_uid = 0;
        let mut make = |size: u64, label: &str| {
            next_uid += 1;
            GpuBuffer {
                buffer: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_DST
                        | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                uid: next_uid,
                elements: size / 4,
            }
        };
        let clock = make(16, "clock");
        let images = make(4, "images (none uploaded)");
        let limits = &ctx.limits;
        let chunk_limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            .min(options.data_chunk_bytes.unwrap_or(u64::MAX));
        let labels = make(4, "labels (none uploaded)");
        let order = make(4, "epoch order (none set)");
        let scratch = make(4, "split-K partial sums");
        let backend = GpuBackend {
            ctx,
            kernels,
            tensors: Vec::new(),
            clock,
            image_chunks: vec![ImageChunk {
                buffer: images,
                first: 0,
                count: 0,
            }],
            chunk_limit,
            labels,
            order,
            scratch,
            order_capacity: 1,
            order_len: 0,
            pixels: 0,
            images_count: 0,
            staging: None,
            last_submission: None,
            behind: None,
            encoder: None,
            pass: None,
            cache: HashMap::new(),
            next_uid,
            steps_per_submit: options.steps_per_submit.max(1),
            steps_since_submit: 0,
            dispatches: 0,
            submits: 0,
            bind_groups_created: 0,
            pending_error: None,
            profiler: None,
            profiling_enabled: options.profile,
        };
        backend.ctx.take_error()?;
        Ok(backend)
    }

    /// A backend on `api` with the default options.
    pub fn with_api(api: GpuApi) -> Result<Self> {
        Self::new(&GpuOptions::with_api(api))
    }

    /// The adapter in use.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.ctx.info
    }

    /// The device's limits (the adapter's, as requested).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.ctx.limits
    }

    /// Dispatches recorded so far.
    pub fn dispatches(&self) -> u64 {
        self.dispatches
    }

    /// Queue submits so far (flushes, read-backs and automatic submits).
    pub fn submits(&self) -> u64 {
        self.submits
    }

    /// Bind groups (each with its uniform buffer) created so far.
    pub fn bind_groups_created(&self) -> u64 {
        self.bind_groups_created
    }

    /// The matmul kernels in use.
    pub fn matmul_variant(&self) -> MatmulVariant {
        self.kernels.matmul()
    }

    /// Pipelines built at creation.
    pub fn pipelines(&self) -> usize {
        self.kernels.len()
    }

    /// Submit automatically after this many `end_step` calls.
    pub fn set_steps_per_submit(&mut self, steps: u32) {
        self.steps_per_submit = steps.max(1);
    }

    /// Starts timing every dispatch on the GPU (the backend must have been
    /// opened with [`GpuOptions::profile`]); work recorded so far is
    /// submitted first. At most [`profile::MAX_QUERIES`] / 2 dispatches are
    /// timed.
    pub fn start_profile(&mut self) -> Result<()> {
        if !self.profiling_enabled {
            return Err(Error::Gpu(
                "profiling needs a backend opened with GpuOptions::profile".into(),
            ));
        }
        self.submit();
        self.profiler = Some(profile::Profiler::new(&self.ctx.device));
        Ok(())
    }

    /// Ends the profile: submits the recorded work, waits, and returns each
    /// timed dispatch with its start and end on the GPU clock.
    pub fn finish_profile(&mut self) -> Result<Vec<profile::DispatchTime>> {
        self.end_pass();
        let Some(profiler) = self.profiler.take() else {
            return Err(Error::Gpu("no profile was started".into()));
        };
        let encoder = self.encoder.take().unwrap_or_else(|| {
            self.ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("gan-gpu profile"),
                })
        });
        self.submits += 1;
        self.steps_since_submit = 0;
        let times = profiler.finish(&self.ctx.device, &self.ctx.queue, encoder);
        self.take_errors()?;
        times
    }
}
