//! The ops that make a step's inputs on the GPU: a batch gathered from the
//! resident data set in epoch order, normal noise, and random one-hot labels,
//! all drawn from the [`Clock`](crate::backend::Clock) buffer.

use super::kernels::Kernel;
use super::params::*;
use super::record::Buf;
use super::GpuBackend;
use crate::backend::Mat;

impl GpuBackend {
    pub(super) fn record_gather_batch(
        &mut self,
        x: Mat,
        onehot: Option<Mat>,
        scale: f32,
        shift: f32,
    ) {
        let op = "gather_batch";
        let pixels = self.pixels;
        if !self.check(self.pixels > 0, op, || {
            "no data set uploaded (call upload_dataset first)".into()
        }) || !self.check(self.order_len > 0, op, || {
            "no epoch order set (call set_epoch_order first)".into()
        }) || !self.check_mat(x, op, "x")
            || !self.check(x.cols == pixels, op, || {
                format!("x has {} columns, images have {pixels} pixels", x.cols)
            })
        {
            return;
        }
        if let Some(h) = onehot {
            if !self.check_mat(h, op, "onehot")
                || !self.check(h.rows == x.rows, op, || {
                    format!("onehot has {} rows, x has {}", h.rows, x.rows)
                })
            {
                return;
            }
        }
        let h = onehot.unwrap_or(Mat { cols: 0, ..x });
        // One dispatch per image chunk; the first also writes the labels.
        for k in 0..self.image_chunks.len() {
            let chunk = &self.image_chunks[k];
            let labels = k == 0 && onehot.is_some();
            let p = GatherParams {
                rows: x.rows,
                cols: x.cols,
                x_off: x.offset,
                x_stride: x.stride,
                scale,
                shift,
                pixels: self.pixels,
                has_onehot: u32::from(labels),
                h_off: h.offset,
                h_stride: h.stride,
                classes: h.cols,
                chunk_first: chunk.first,
                chunk_count: chunk.count,
                pad: [0; 3],
            };
            let label_threads = if labels {
                u64::from(x.rows) * u64::from(h.cols)
            } else {
                0
            };
            let threads = u64::from(x.rows) * u64::from(x.cols) + label_threads;
            self.dispatch_1d(
                Kernel::GatherBatch,
                &p,
                &[
                    Buf::Clock,
                    Buf::ImageChunk(k),
                    Buf::Labels,
                    Buf::Order,
                    Buf::Tensor(x.tensor),
                    Buf::Tensor(h.tensor),
                ],
                threads,
            );
        }
    }

    pub(super) fn record_normal_noise(&mut self, out: Mat, stream: u32) {
        if !self.check_mat(out, "normal_noise", "out") {
            return;
        }
        let p = NoiseParams {
            rows: out.rows,
            cols: out.cols,
            off: out.offset,
            stride: out.stride,
            stream,
            pad: [0; 3],
        };
        let threads = u64::from(out.rows) * u64::from(out.cols);
        self.dispatch_1d(
            Kernel::NormalNoise,
            &p,
            &[Buf::Clock, Buf::Tensor(out.tensor)],
            threads,
        );
    }

    pub(super) fn record_random_onehot(&mut self, out: Mat, also: Option<Mat>, stream: u32) {
        let op = "random_onehot";
        if !self.check_mat(out, op, "out") {
            return;
        }
        if let Some(a) = also {
            if !self.check_mat(a, op, "also")
                || !self.check(a.rows == out.rows && a.cols == out.cols, op, || {
                    format!(
                        "also is {} x {}, out is {} x {}",
                        a.rows, a.cols, out.rows, out.cols
                    )
                })
            {
                return;
            }
        }
        let a = also.unwrap_or(out);
        let p = OnehotParams {
            rows: out.rows,
            cols: out.cols,
            off: out.offset,
            stride: out.stride,
            also_off: a.offset,
            also_stride: a.stride,
            has_also: u32::from(also.is_some()),
            stream,
        };
        let threads = u64::from(out.rows) * u64::from(out.cols);
        self.dispatch_1d(
            Kernel::RandomOnehot,
            &p,
            &[Buf::Clock, Buf::Tensor(out.tensor), Buf::Tensor(a.tensor)],
            threads,
        );
    }
}
