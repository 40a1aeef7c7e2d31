//! GPU timestamps around every dispatch, for `gan-gpu bench --profile`: where
//! a step's device time goes, kernel by kernel, and how much of it is spent
//! between kernels (barriers, launch). Needs the adapter's
//! `TIMESTAMP_QUERY_INSIDE_PASSES` feature; the backend asks for it only
//! when profiling is requested, so normal runs never depend on it.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// The features a profiling backend needs from its device.
pub const FEATURES: wgpu::Features =
    wgpu::Features::TIMESTAMP_QUERY.union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);

/// Timestamps a dispatch is bracketed with, at most this many in one profile.
pub const MAX_QUERIES: u32 = 4096;

/// One profiled dispatch: what ran, and its start and end on the GPU clock.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchTime {
    /// Entry point and workgroup grid, e.g. `linear_forward 8x7x1`.
    pub label: String,
    pub start_ns: f64,
    pub end_ns: f64,
}

/// The query set and the labels of the dispatches recorded into it.
pub struct Profiler {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    labels: Vec<String>,
}

impl Profiler {
    pub fn new(device: &wgpu::Device) -> Self {
        let bytes = u64::from(MAX_QUERIES) * 8;
        Profiler {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("gan-gpu profile"),
                ty: wgpu::QueryType::Timestamp,
                count: MAX_QUERIES,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            labels: Vec::new(),
        }
    }

    /// The query indices to write before and after the next dispatch, or
    /// None once the set is full (later dispatches go unprofiled).
    pub fn bracket(&mut self, label: impl FnOnce() -> String) -> Option<(&wgpu::QuerySet, u32)> {
        let first = 2 * self.labels.len() as u32;
        if first + 2 > MAX_QUERIES {
            return None;
        }
        self.labels.push(label());
        Some((&self.queries, first))
    }

    /// Resolves the recorded timestamps (into `encoder`, which the caller
    /// submits), then maps them back and returns one entry per dispatch.
    pub fn finish(
        self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        mut encoder: wgpu::CommandEncoder,
    ) -> Result<Vec<DispatchTime>> {
        let count = 2 * self.labels.len() as u32;
        if count == 0 {
            return Ok(Vec::new());
        }
        let bytes = u64::from(count) * 8;
        encoder.resolve_query_set(&self.queries, 0..count, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, bytes);
        queue.submit(Some(encoder.finish()));
        let mapped: Arc<Mutex<Option<std::result::Result<(), wgpu::BufferAsyncError>>>> =
            Arc::new(Mutex::new(None));
        let slot = mapped.clone();
        self.readback
            .map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
                if let Ok(mut s) = slot.lock() {
                    *s = Some(r);
                }
            });
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the profile's timestamps: {e}")))?;
        match mapped.lock().ok().and_then(|m| m.clone()) {
            Some(Ok(())) => {}
            other => {
                return Err(Error::Gpu(format!(
                    "the profile's timestamps could not be read back: {other:?}"
                )))
            }
        }
        let period = f64::from(queue.get_timestamp_period());
        let ticks: Vec<u64> = {
            let view = self
                .readback
                .get_mapped_range(0..bytes)
                .map_err(|e| Error::Gpu(format!("profile read-back mapping failed: {e}")))?;
            bytemuck::pod_collect_to_vec(&view[..])
        };
        self.readback.unmap();
        Ok(self
            .labels
            .into_iter()
            .enumerate()
            .map(|(i, label)| DispatchTime {
                label,
                start_ns: ticks[2 * i] as f64 * period,
                end_ns: ticks[2 * i + 1] as f64 * period,
            })
            .collect())
    }
}
