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
//! [`params`] (the uniform structs), [`profile`] (GPU timestamps per dispatch).

mod blocked;
pub mod context;
pub mod kernels;
pub mod matmul;
mod ops;
pub mod params;
pub mod profile;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytemuck::Pod;
use wgpu::util::DeviceExt;

#[cfg(doc)]
use super::{Backend, Clock};
use super::{Dropout, Mat, Tensor};
use crate::error::{Error, Result};
use crate::model::{Activation, LayerSlot};
pub use context::{list_adapters, AdapterSummary, GpuApi, GpuContext, GpuOptions, KeyLimits};
use kernels::{Kernel, Kernels};
pub use kernels::{MatmulKernel, MatmulVariant};
use params::*;

/// Threads per workgroup of the one-dimensional kernels (`WG_1D`).
const WG_1D: u32 = 256;

/// A buffer the backend owns, with an id unique over the backend's life
/// (the bind group cache keys on it; wgpu buffers have no stable id).
struct GpuBuffer {
    buffer: wgpu::Buffer,
    uid: u64,
}

/// A buffer an op binds.
#[derive(Clone, Copy, Debug)]
enum Buf {
    Tensor(Tensor),
    Clock,
    Images,
    Labels,
    Order,
    /// The split matmul kernel's partial sums (grown on demand).
    Scratch,
}

/// Which pipeline of a kernel a dispatch runs.
#[derive(Clone, Copy, Debug)]
enum Entry {
    /// The kernel's own (non-linear kernels).
    Plain,
    /// A linear op on this matmul kernel.
    Matmul(MatmulKernel),
    /// A linear op's reducing second dispatch after the split kernel chunked K.
    SplitReduce,
    /// A backward linear op's dz pass before a blocked product.
    Dz,
}

/// The cache key of a bind group: the kernel, the buffers bound (by uid) and
/// the uniform parameters (as bytes).
type BindKey = (Kernel, Vec<u64>, Vec<u8>);

/// A cached bind group and the uniform buffer it binds.
struct CachedBinding {
    bind_group: wgpu::BindGroup,
    _uniform: Option<wgpu::Buffer>,
}

/// The GPU backend. Create it with [`GpuBackend::new`].
pub struct GpuBackend {
    ctx: GpuContext,
    kernels: Kernels,
    tensors: Vec<GpuBuffer>,
    clock: GpuBuffer,
    images: GpuBuffer,
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
            }
        };
        let clock = make(16, "clock");
        let images = make(4, "images (none uploaded)");
        let labels = make(4, "labels (none uploaded)");
        let order = make(4, "epoch order (none set)");
        let scratch = make(4, "split-K partial sums");
        let backend = GpuBackend {
            ctx,
            kernels,
            tensors: Vec::new(),
            clock,
            images,
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

    fn new_buffer(&mut self, size: u64, usage: wgpu::BufferUsages, label: &str) -> GpuBuffer {
        self.next_uid += 1;
        GpuBuffer {
            buffer: self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            }),
            uid: self.next_uid,
        }
    }

    fn new_buffer_init(
        &mut self,
        data: &[u8],
        usage: wgpu::BufferUsages,
        label: &str,
    ) -> GpuBuffer {
        self.next_uid += 1;
        GpuBuffer {
            buffer: self
                .ctx
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: data,
                    usage,
                }),
            uid: self.next_uid,
        }
    }

    /// Forgets cached bind groups that bind the buffer `uid` (being replaced).
    fn forget_bindings_of(&mut self, uid: u64) {
        self.cache.retain(|key, _| !key.1.contains(&uid));
    }

    /// Records the first misuse; the op that found it records nothing.
    fn fail(&mut self, message: String) {
        if self.pending_error.is_none() {
            self.pending_error = Some(Error::Gpu(message));
        }
    }

    /// Checks that a tensor handle belongs to this backend.
    fn check_tensor(&mut self, t: Tensor, op: &str, what: &str) -> bool {
        match self.tensors.get(t.id as usize) {
            Some(_) => true,
            None => {
                self.fail(format!("{op}: {what} is not a tensor of this backend"));
                false
            }
        }
    }

    /// Checks that every element of the view lies inside its tensor.
    fn check_mat(&mut self, m: Mat, op: &str, what: &str) -> bool {
        if !self.check_tensor(m.tensor, op, what) {
            return false;
        }
        if m.rows == 0 || m.cols == 0 {
            return true;
        }
        let last =
            u64::from(m.offset) + u64::from(m.rows - 1) * u64::from(m.stride) + u64::from(m.cols);
        if (m.rows > 1 && m.cols > m.stride) || last > u64::from(m.tensor.len) {
            self.fail(format!(
                "{op}: {what} ({} x {} at offset {}, stride {}) does not fit its tensor of {} elements",
                m.rows, m.cols, m.offset, m.stride, m.tensor.len
            ));
            return false;
        }
        true
    }

    /// Checks a shape condition of an op.
    fn check(&mut self, ok: bool, op: &str, message: impl FnOnce() -> String) -> bool {
        if !ok {
            self.fail(format!("{op}: {}", message()));
        }
        ok
    }

    fn resolve(&self, b: Buf) -> &GpuBuffer {
        match b {
            Buf::Tensor(t) => &self.tensors[t.id as usize],
            Buf::Clock => &self.clock,
            Buf::Images => &self.images,
            Buf::Labels => &self.labels,
            Buf::Order => &self.order,
            Buf::Scratch => &self.scratch,
        }
    }

    /// Records one dispatch of `kernel` with its uniform parameters and
    /// storage buffers (bindings 1..), creating and caching its bind group on
    /// first use.
    fn dispatch<P: Pod>(
        &mut self,
        kernel: Kernel,
        uniform: Option<&P>,
        buffers: &[Buf],
        groups: (u32, u32, u32),
    ) {
        self.dispatch_on(kernel, Entry::Plain, uniform, buffers, groups);
    }

    /// [`dispatch`](Self::dispatch) of one of the kernel's pipelines: for a
    /// linear op, a matmul kernel or the split kernel's reduce (they share
    /// the op's bind group layout). An error (a pipeline that was not
    /// built, too many workgroups) becomes the backend's pending error.
    fn dispatch_on<P: Pod>(
        &mut self,
        kernel: Kernel,
        entry: Entry,
        uniform: Option<&P>,
        buffers: &[Buf],
        groups: (u32, u32, u32),
    ) {
        if let Err(e) = self.try_dispatch_on(kernel, entry, uniform, buffers, groups) {
            if self.pending_error.is_none() {
                self.pending_error = Some(e);
            }
        }
    }

    /// The body of [`dispatch_on`](Self::dispatch_on).
    fn try_dispatch_on<P: Pod>(
        &mut self,
        kernel: Kernel,
        entry: Entry,
        uniform: Option<&P>,
        buffers: &[Buf],
        groups: (u32, u32, u32),
    ) -> Result<()> {
        let pipeline = match entry {
            Entry::Plain => Some(self.kernels.get(kernel)?.pipeline.clone()),
            Entry::Matmul(mk) => self.kernels.linear(kernel, mk).cloned(),
            Entry::SplitReduce => self.kernels.split_reduce(kernel).cloned(),
            Entry::Dz => self.kernels.dz(kernel).cloned(),
        };
        let Some(pipeline) = pipeline else {
            return Err(Error::Gpu(format!(
                "{}: pipeline {entry:?} was not built",
                kernel.entry_point(),
            )));
        };
        if groups.0 == 0 || groups.1 == 0 || groups.2 == 0 {
            return Ok(());
        }
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        if groups.0 > max || groups.1 > max || groups.2 > max {
            return Err(Error::Gpu(format!(
                "{}: {groups:?} workgroups exceed the adapter's limit of {max} per dimension",
                kernel.entry_point()
            )));
        }
        let bytes: Vec<u8> = uniform
            .map(|u| bytemuck::bytes_of(u).to_vec())
            .unwrap_or_default();
        let uids: Vec<u64> = buffers.iter().map(|b| self.resolve(*b).uid).collect();
        let key: BindKey = (kernel, uids, bytes);
        if !self.cache.contains_key(&key) {
            let uniform_buffer = uniform.map(|_| {
                self.ctx
                    .device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(kernel.entry_point()),
                        contents: &key.2,
                        usage: wgpu::BufferUsages::UNIFORM,
                    })
            });
            let mut entries = Vec::new();
            if let Some(u) = &uniform_buffer {
                entries.push(wgpu::BindGroupEntry {
                    binding: 0,
                    resource: u.as_entire_binding(),
                });
            }
            for (i, b) in buffers.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: self.resolve(*b).buffer.as_entire_binding(),
                });
            }
            let bind_group = self
                .ctx
                .device
                .create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(kernel.entry_point()),
                    layout: &self.kernels.get(kernel)?.layout,
                    entries: &entries,
                });
            self.bind_groups_created += 1;
            self.cache.insert(
                key.clone(),
                CachedBinding {
                    bind_group,
                    _uniform: uniform_buffer,
                },
            );
        }
        if self.pass.is_none() {
            let encoder = self.encoder.get_or_insert_with(|| {
                self.ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("gan-gpu steps"),
                    })
            });
            let pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("gan-gpu ops"),
                    timestamp_writes: None,
                })
                .forget_lifetime();
            self.pass = Some(pass);
        }
        let (Some(pass), Some(cached)) = (self.pass.as_mut(), self.cache.get(&key)) else {
            return Ok(());
        };
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &cached.bind_group, &[]);
        let bracket = self.profiler.as_mut().and_then(|p| {
            p.bracket(|| {
                let suffix = match entry {
                    Entry::Plain => "",
                    Entry::Matmul(mk) => mk.name(),
                    Entry::SplitReduce => "split_reduce",
                    Entry::Dz => "dz",
                };
                format!(
                    "{}{}{suffix} {}x{}x{}",
                    kernel.entry_point(),
                    if suffix.is_empty() { "" } else { "/" },
                    groups.0,
                    groups.1,
                    groups.2
                )
            })
        });
        match bracket {
            Some((queries, first)) => {
                pass.write_timestamp(queries, first);
                pass.dispatch_workgroups(groups.0, groups.1, groups.2);
                pass.write_timestamp(queries, first + 1);
            }
            None => pass.dispatch_workgroups(groups.0, groups.1, groups.2),
        }
        self.dispatches += 1;
        Ok(())
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

    fn dispatch_1d<P: Pod>(&mut self, kernel: Kernel, uniform: &P, buffers: &[Buf], threads: u64) {
        let (x, y) = grid_1d(
            threads,
            self.ctx.limits.max_compute_workgroups_per_dimension,
        );
        self.dispatch(kernel, Some(uniform), buffers, (x, y, 1));
    }

    /// Ends the open compute pass (before copies and submits).
    fn end_pass(&mut self) {
        self.pass = None;
    }

    /// Submits everything recorded, without waiting.
    fn submit(&mut self) {
        self.end_pass();
        if let Some(encoder) = self.encoder.take() {
            self.last_submission = Some(self.ctx.queue.submit(Some(encoder.finish())));
            self.submits += 1;
        }
        self.steps_since_submit = 0;
    }

    /// Blocks until the device has executed everything submitted so far.
    fn wait_idle(&mut self) -> Result<()> {
        self.wait(None)
    }

    /// Blocks until the device has executed submission `index` (and
    /// everything before it).
    fn wait_for(&mut self, index: wgpu::SubmissionIndex) -> Result<()> {
        self.wait(Some(index))
    }

    fn wait(&mut self, submission_index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let wait = wgpu::PollType::Wait {
            submission_index,
            timeout: None,
        };
        self.ctx.device.poll(wait).map(|_| ()).map_err(|e| {
            self.ctx
                .take_error_while("waiting for the GPU")
                .err()
                .unwrap_or_else(|| {
                    Error::Gpu(format!(
                        "waiting for the GPU on adapter {} failed: {e}",
                        self.ctx.adapter_name()
                    ))
                })
        })
    }

    /// Returns (and clears) the first recorded misuse or asynchronous GPU error.
    fn take_errors(&mut self) -> Result<()> {
        self.take_errors_while("running the recorded GPU work")
    }

    /// [`take_errors`](Self::take_errors), saying what the host was doing
    /// (a lost device or an out-of-memory error names the adapter and this).
    fn take_errors_while(&mut self, doing: &str) -> Result<()> {
        if let Some(e) = self.pending_error.take() {
            // Drop GPU errors it may have caused; the misuse is the cause.
            let _ = self.ctx.take_error_while(doing);
            return Err(e);
        }
        self.ctx.take_error_while(doing)
    }

    /// Submits recorded work and returns the first `bytes` bytes of a buffer.
    fn read_bytes(&mut self, source: Buf, bytes: u64) -> Result<Vec<u8>> {
        self.end_pass();
        let size = bytes.max(4).next_multiple_of(4);
        let staging_ok = matches!(&self.staging, Some((_, cap)) if *cap >= size);
        if !staging_ok {
            let buffer = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.staging = Some((buffer, size));
        }
        let mut encoder = self.encoder.take().unwrap_or_else(|| {
            self.ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("gan-gpu read"),
                })
        });
        let Some((staging, _)) = &self.staging else {
            return Err(Error::Gpu("no staging buffer".into()));
        };
        encoder.copy_buffer_to_buffer(&self.resolve(source).buffer, 0, staging, 0, size);
        self.ctx.queue.submit(Some(encoder.finish()));
        self.submits += 1;
        self.steps_since_submit = 0;
        let result: Arc<Mutex<Option<std::result::Result<(), wgpu::BufferAsyncError>>>> =
            Arc::new(Mutex::new(None));
        let slot = result.clone();
        staging.map_async(wgpu::MapMode::Read, 0..size, move |r| {
            if let Ok(mut s) = slot.lock() {
                *s = Some(r);
            }
        });
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| {
                self.ctx
                    .take_error_while("reading back from the GPU")
                    .err()
                    .unwrap_or_else(|| {
                        Error::Gpu(format!(
                            "waiting for the GPU on adapter {} failed: {e}",
                            self.ctx.adapter_name()
                        ))
                    })
            })?;
        let mapped = result.lock().ok().and_then(|mut s| s.take());
        match mapped {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                self.take_errors_while("reading back from the GPU")?;
                return Err(Error::Gpu(format!("read-back failed: {e}")));
            }
            None => {
                self.take_errors_while("reading back from the GPU")?;
                return Err(Error::Gpu("read-back did not complete".into()));
            }
        }
        let data = {
            let view = staging
                .get_mapped_range(0..size)
                .map_err(|e| Error::Gpu(format!("read-back mapping failed: {e}")))?;
            view[..bytes as usize].to_vec()
        };
        staging.unmap();
        self.take_errors_while("reading back from the GPU")?;
        Ok(data)
    }

    /// Packs bytes 4 per u32, little-endian (byte i is bits 8 (i % 4) of word i / 4).
    fn pack_bytes(bytes: &[u8]) -> Vec<u32> {
        bytes
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect()
    }

    /// Records a linear op: the matmul kernel the variant picks for its M x N
    /// output, one workgroup per output tile (and per K chunk when the split
    /// kernel chunks K over workgroups, followed by the second dispatch that
    /// adds the chunks' partial sums and runs the epilogue).
    /// `buffers` are the op's bindings 1..=5 (A second); the scratch buffer
    /// is binding 6. A backward op on a blocked kernel first writes dz into
    /// the scratch buffer (one element-wise dispatch) and the product reads
    /// A from there.
    fn dispatch_linear(&mut self, kernel: Kernel, p: &LinearParams, buffers: &[Buf]) {
        let mk = self.kernels.matmul_kernel(p.m, p.n, p.k);
        let tile = mk.tile();
        let mut p = *p;
        (p.chunks, p.chunk_len) = if mk == MatmulKernel::Split {
            MatmulKernel::split_chunks(p.m, p.n, p.k)
        } else {
            (1, 0)
        };
        if p.chunks > 1 {
            // Every chunk's M x N partial tile, then its M bias-gradient sums.
            let partials = u64::from(p.chunks) * (u64::from(p.m) * u64::from(p.n) + u64::from(p.m));
            self.ensure_scratch(partials * 4);
        }
        let mut bindings = buffers.to_vec();
        bindings.push(Buf::Scratch);
        if kernel != Kernel::LinearForward && mk.is_blocked() {
            // A large backward product: dz once into the scratch buffer, then
            // the product reads it as A instead of recomputing it per tile.
            let rows = if kernel == Kernel::LinearBackwardInput {
                p.m
            } else {
                p.k
            };
            let elements = u64::from(rows) * u64::from(p.out_cols);
            self.ensure_scratch(elements * 4);
            let (x, y) = grid_1d(
                elements,
                self.ctx.limits.max_compute_workgroups_per_dimension,
            );
            self.dispatch_on(kernel, Entry::Dz, Some(&p), &bindings, (x, y, 1));
            p.a_off = 0;
            p.a_stride = p.out_cols;
            bindings[1] = Buf::Scratch;
        }
        let groups = (p.n.div_ceil(tile), p.m.div_ceil(tile), p.chunks);
        self.dispatch_on(kernel, Entry::Matmul(mk), Some(&p), &bindings, groups);
        if p.chunks > 1 {
            let outputs = p.m * p.n;
            let groups = (outputs.div_ceil(WG_1D), 1, 1);
            self.dispatch_on(kernel, Entry::SplitReduce, Some(&p), &bindings, groups);
        }
    }

    /// Grows the split kernel's partial-sum buffer to at least `bytes`
    /// (doubling, so a run settles after its largest product). Work already
    /// recorded keeps the old buffer alive; its bind groups are forgotten.
    fn ensure_scratch(&mut self, bytes: u64) {
        if self.scratch.buffer.size() >= bytes {
            return;
        }
        let max = self.ctx.limits.max_storage_buffer_binding_size;
        let size = bytes.next_power_of_two().min(max).max(bytes);
        let old = self.scratch.uid;
        self.scratch = self.new_buffer(size, wgpu::BufferUsages::STORAGE, "split-K partial sums");
        self.forget_bindings_of(old);
    }

    fn linear_params(act: Activation, dropout: Option<Dropout>) -> LinearParams {
        let mut p = LinearParams {
            act: act.code(),
            slope: act.slope(),
            keep_prob: 1.0,
            ..Default::default()
        };
        if let Some(d) = dropout {
            p.dropout = 1;
            p.threshold = crate::rng::dropout_threshold(d.p);
            p.stream = d.stream;
            p.keep_prob = 1.0 - d.p;
        }
        p
    }

    /// Checks a layer slot against its parameter tensor.
    fn check_layer(&mut self, params: Tensor, layer: LayerSlot, op: &str) -> bool {
        if !self.check_tensor(params, op, "the parameter tensor") {
            return false;
        }
        let end_w = layer.weight + layer.in_dim * layer.out_dim;
        let end_b = layer.bias + layer.out_dim;
        self.check(
            end_w <= params.len as usize && end_b <= params.len as usize,
            op,
            || {
                format!(
                    "layer ({} -> {}, weight at {}, bias at {}) does not fit the {} parameters",
                    layer.in_dim, layer.out_dim, layer.weight, layer.bias, params.len
                )
            },
        )
    }

    /// Checks the (dy, y) pair of a backward op.
    fn check_backward(&mut self, dy: Mat, y: Mat, layer: LayerSlot, op: &str) -> bool {
        self.check_mat(dy, op, "dy")
            && self.check_mat(y, op, "y")
            && self.check(
                dy.rows == y.rows && dy.cols == y.cols && y.cols as usize == layer.out_dim,
                op,
                || {
                    format!(
                        "dy is {} x {} and y is {} x {}, the layer has {} outputs",
                        dy.rows, dy.cols, y.rows, y.cols, layer.out_dim
                    )
                },
            )
    }
}
