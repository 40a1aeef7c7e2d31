//! Recording: the buffers an op can bind, the bind group cache, and the
//! dispatches recorded into the one open compute pass of the open command
//! encoder, which [`submit`](GpuBackend::submit) hands to the queue.

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::kernels::{Kernel, MatmulKernel};
use super::{grid_1d, GpuBackend, GpuBuffer};
use crate::backend::Tensor;
use crate::error::{Error, Result};

/// A buffer an op binds.
#[derive(Clone, Copy, Debug)]
pub(super) enum Buf {
    Tensor(Tensor),
    Clock,
    /// The training images' chunk k.
    ImageChunk(usize),
    Labels,
    Order,
    /// The split matmul kernel's partial sums (grown on demand).
    Scratch,
}

/// Which pipeline of a kernel a dispatch runs.
#[derive(Clone, Copy, Debug)]
pub(super) enum Entry {
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
pub(super) type BindKey = (Kernel, Vec<u64>, Vec<u8>);

/// A cached bind group and the uniform buffer it binds.
pub(super) struct CachedBinding {
    bind_group: wgpu::BindGroup,
    _uniform: Option<wgpu::Buffer>,
}

impl GpuBackend {
    /// Forgets cached bind groups that bind the buffer `uid` (being replaced).
    pub(super) fn forget_bindings_of(&mut self, uid: u64) {
        self.cache.retain(|key, _| !key.1.contains(&uid));
    }

    pub(super) fn resolve(&self, b: Buf) -> &GpuBuffer {
        match b {
            Buf::Tensor(t) => &self.tensors[t.id as usize],
            Buf::Clock => &self.clock,
            Buf::ImageChunk(k) => &self.image_chunks[k].buffer,
            Buf::Labels => &self.labels,
            Buf::Order => &self.order,
            Buf::Scratch => &self.scratch,
        }
    }

    /// Records one dispatch of `kernel` with its uniform parameters and
    /// storage buffers (bindings 1..), creating and caching its bind group on
    /// first use.
    pub(super) fn dispatch<P: Pod>(
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
    pub(super) fn dispatch_on<P: Pod>(
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
    pub(super) fn try_dispatch_on<P: Pod>(
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

    pub(super) fn dispatch_1d<P: Pod>(
        &mut self,
        kernel: Kernel,
        uniform: &P,
        buffers: &[Buf],
        threads: u64,
    ) {
        let (x, y) = grid_1d(
            threads,
            self.ctx.limits.max_compute_workgroups_per_dimension,
        );
        self.dispatch(kernel, Some(uniform), buffers, (x, y, 1));
    }

    /// Ends the open compute pass (before copies and submits).
    pub(super) fn end_pass(&mut self) {
        self.pass = None;
    }

    /// Submits everything recorded, without waiting.
    pub(super) fn submit(&mut self) {
        self.end_pass();
        if let Some(encoder) = self.encoder.take() {
            self.last_submission = Some(self.ctx.queue.submit(Some(encoder.finish())));
            self.submits += 1;
        }
        self.steps_since_submit = 0;
    }
}
