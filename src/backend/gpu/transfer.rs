//! Buffers and transfers between host and GPU: creating buffers, waiting for
//! submissions, collecting recorded misuse and asynchronous GPU errors, and
//! reading a buffer back through the staging buffer.

use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::record::Buf;
use super::{GpuBackend, GpuBuffer};
use crate::error::{Error, Result};

impl GpuBackend {
    pub(super) fn new_buffer(
        &mut self,
        size: u64,
        usage: wgpu::BufferUsages,
        label: &str,
    ) -> GpuBuffer {
        self.next_uid += 1;
        GpuBuffer {
            elements: size / 4,
            buffer: self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            }),
            uid: self.next_uid,
        }
    }

    pub(super) fn new_buffer_init(
        &mut self,
        data: &[u8],
        usage: wgpu::BufferUsages,
        label: &str,
    ) -> GpuBuffer {
        self.next_uid += 1;
        GpuBuffer {
            elements: data.len() as u64 / 4,
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

    /// Blocks until the device has executed everything submitted so far.
    pub(super) fn wait_idle(&mut self) -> Result<()> {
        self.wait(None)
    }

    /// Blocks until the device has executed submission `index` (and
    /// everything before it).
    pub(super) fn wait_for(&mut self, index: wgpu::SubmissionIndex) -> Result<()> {
        self.wait(Some(index))
    }

    pub(super) fn wait(&mut self, submission_index: Option<wgpu::SubmissionIndex>) -> Result<()> {
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
    pub(super) fn take_errors(&mut self) -> Result<()> {
        self.take_errors_while("running the recorded GPU work")
    }

    /// [`take_errors`](Self::take_errors), saying what the host was doing
    /// (a lost device or an out-of-memory error names the adapter and this).
    pub(super) fn take_errors_while(&mut self, doing: &str) -> Result<()> {
        if let Some(e) = self.pending_error.take() {
            // Drop GPU errors it may have caused; the misuse is the cause.
            let _ = self.ctx.take_error_while(doing);
            return Err(e);
        }
        self.ctx.take_error_while(doing)
    }

    /// Submits recorded work and returns the first `bytes` bytes of a buffer.
    pub(super) fn read_bytes(&mut self, source: Buf, bytes: u64) -> Result<Vec<u8>> {
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
    pub(super) fn pack_bytes(bytes: &[u8]) -> Vec<u32> {
        bytes
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect()
    }
}
