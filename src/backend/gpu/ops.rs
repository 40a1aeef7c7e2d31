//! The [`Backend`] trait for [`GpuBackend`]. The host transfers (`write`,
//! `read`, the data set, the epoch order, the clock) and the submits are here
//! in full; they submit the recorded work first, so they are ordered after
//! it. Each kernel op hands its arguments to its family's recorder in
//! [`inputs`](super::inputs), [`linear`](super::linear) or [`loss`](super::loss),
//! which checks its views on the host (recording the misuse for the next
//! flush instead of panicking), fills its kernel's uniform struct and records
//! its dispatches. The convolution and batch-norm ops call the inherent
//! `try_*` methods of [`conv`](super::conv) and
//! [`batch_norm`](super::batch_norm), which return their errors at once; here
//! an error becomes the pending error like any other misuse. The element-wise
//! activation ops are recorded by [`elementwise`](super::elementwise).

use super::kernels::Kernel;
use super::params::AdamParams;
use super::record::Buf;
use super::{tensor_bytes, GpuBackend};
use crate::backend::conv_params::{BatchNormParams, Conv2dParams, ConvTranspose2dParams};
use crate::backend::{
    Backend, BatchNormTensors, CeSlots, Clock, Dropout, LossSlots, Mat, Tensor, WorkCounts,
};
use crate::error::{Error, Result};
use crate::model::{Activation, AdamSettings, LayerSlot};

impl Backend for GpuBackend {
    fn describe(&self) -> String {
        let info = &self.ctx.info;
        format!(
            "{} ({}, {:?})",
            info.name,
            info.backend.to_str(),
            info.device_type
        )
    }

    fn alloc(&mut self, len: usize) -> Result<Tensor> {
        let len32 = u32::try_from(len)
            .map_err(|_| Error::config("tensor size", format!("{len} elements is too many")))?;
        let bytes = tensor_bytes(len32);
        let max = self
            .ctx
            .limits
            .max_storage_buffer_binding_size
            .min(self.ctx.limits.max_buffer_size);
        if bytes > max {
            return Err(Error::Gpu(format!(
                "a tensor of {len} elements ({bytes} bytes) exceeds the adapter's {max}-byte limit \
                 on storage buffers ({})",
                self.ctx.info.name
            )));
        }
        let mut buffer = self.new_buffer(
            bytes,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            "tensor",
        );
        buffer.elements = u64::from(len32);
        self.tensors.push(buffer);
        Ok(Tensor {
            id: (self.tensors.len() - 1) as u32,
            len: len32,
        })
    }

    fn write(&mut self, t: Tensor, data: &[f32]) -> Result<()> {
        self.tensor_error(t, "write", "the tensor")?;
        if data.len() != t.len as usize {
            return Err(Error::Gpu(format!(
                "write: {} values for a tensor of {}",
                data.len(),
                t.len
            )));
        }
        // Work recorded before this write must see the old contents.
        self.submit();
        if !data.is_empty() {
            self.ctx.queue.write_buffer(
                &self.tensors[t.id as usize].buffer,
                0,
                bytemuck::cast_slice(data),
            );
        }
        self.take_errors_while("writing a tensor")
    }

    fn read(&mut self, t: Tensor) -> Result<Vec<f32>> {
        self.tensor_error(t, "read", "the tensor")?;
        let bytes = self.read_bytes(Buf::Tensor(t), u64::from(t.len) * 4)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn upload_dataset(&mut self, images: &[u8], labels: &[u8], pixels: usize) -> Result<()> {
        if pixels == 0
            || !images.len().is_multiple_of(pixels)
            || images.len() / pixels != labels.len()
        {
            return Err(Error::Gpu(format!(
                "upload_dataset: {} image bytes and {} labels do not make whole images of {pixels} pixels",
                images.len(),
                labels.len()
            )));
        }
        // Whole images per chunk, packed 4 bytes a u32 within the limit.
        let per_chunk = ((self.chunk_limit / 4 * 4) / pixels as u64).min(u64::from(u32::MAX));
        if per_chunk == 0 {
            return Err(Error::Gpu(format!(
                "one training image ({pixels} bytes) exceeds the {} bytes that one storage binding \
                 holds on adapter {} ({})",
                self.chunk_limit, self.ctx.info.name, self.ctx.info.backend
            )));
        }
        if labels.len() > u32::MAX as usize
            || labels.len().next_multiple_of(4) as u64 > self.chunk_limit
        {
            return Err(Error::Gpu(format!(
                "the training set's {} labels do not fit one storage binding of adapter {} ({})",
                labels.len(),
                self.ctx.info.name,
                self.ctx.info.backend
            )));
        }
        self.submit();
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let mut chunks = Vec::new();
        let per_chunk = per_chunk as usize;
        let count = labels.len();
        for first in (0..count.max(1)).step_by(per_chunk) {
            let n = per_chunk.min(count - first.min(count));
            let packed = Self::pack_bytes(&images[first * pixels..(first + n) * pixels]);
            let buffer = self.new_buffer_init(
                bytemuck::cast_slice(if packed.is_empty() { &[0u32] } else { &packed }),
                usage,
                "images",
            );
            chunks.push(super::ImageChunk {
                buffer,
                first: first as u32,
                count: n as u32,
            });
        }
        let packed = Self::pack_bytes(labels);
        let new_labels = self.new_buffer_init(
            bytemuck::cast_slice(if packed.is_empty() { &[0u32] } else { &packed }),
            usage,
            "labels",
        );
        let old = std::mem::replace(&mut self.image_chunks, chunks);
        for chunk in old {
            self.forget_bindings_of(chunk.buffer.uid);
        }
        let old_labels = std::mem::replace(&mut self.labels, new_labels);
        self.forget_bindings_of(old_labels.uid);
        self.pixels = pixels as u32;
        self.images_count = labels.len();
        let bytes = images.len();
        let chunks = self.image_chunks.len();
        self.take_errors_while("uploading the training set").map_err(|e| {
            Error::Gpu(format!(
                "the training set ({bytes} bytes in {chunks} buffers of at most {} bytes) could not be made resident on adapter {} ({}): {e}",
                self.chunk_limit, self.ctx.info.name, self.ctx.info.backend
            ))
        })
    }

    fn set_epoch_order(&mut self, order: &[u32]) -> Result<()> {
        if let Some(bad) = order.iter().find(|&&i| i as usize >= self.images_count) {
            return Err(Error::Gpu(format!(
                "set_epoch_order: image {bad} does not exist ({} images uploaded)",
                self.images_count
            )));
        }
        // Work recorded before this write must see the old order.
        self.submit();
        if order.len() > self.order_capacity {
            let buffer = self.new_buffer(
                order.len() as u64 * 4,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                "epoch order",
            );
            let old = std::mem::replace(&mut self.order, buffer);
            self.forget_bindings_of(old.uid);
            self.order_capacity = order.len();
        }
        if !order.is_empty() {
            self.ctx
                .queue
                .write_buffer(&self.order.buffer, 0, bytemuck::cast_slice(order));
        }
        self.order_len = order.len();
        self.take_errors()
    }

    fn set_clock(&mut self, clock: Clock) -> Result<()> {
        self.submit();
        let words = [clock.seed, clock.step, clock.cursor, 0];
        self.ctx
            .queue
            .write_buffer(&self.clock.buffer, 0, bytemuck::cast_slice(&words));
        self.take_errors()
    }

    fn clock(&mut self) -> Result<Clock> {
        let bytes = self.read_bytes(Buf::Clock, 12)?;
        let w: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(Clock {
            seed: w[0],
            step: w[1],
            cursor: w[2],
        })
    }

    fn gather_batch(&mut self, x: Mat, onehot: Option<Mat>, scale: f32, shift: f32) {
        self.record_gather_batch(x, onehot, scale, shift);
    }

    fn normal_noise(&mut self, out: Mat, stream: u32) {
        self.record_normal_noise(out, stream);
    }

    fn random_onehot(&mut self, out: Mat, also: Option<Mat>, stream: u32) {
        self.record_random_onehot(out, also, stream);
    }

    fn linear_forward(
        &mut self,
        x: Mat,
        params: Tensor,
        layer: LayerSlot,
        act: Activation,
        dropout: Option<Dropout>,
        y: Mat,
    ) {
        self.record_linear_forward(x, params, layer, act, dropout, y);
    }

    fn linear_backward_input(
        &mut self,
        dy: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        params: Tensor,
        layer: LayerSlot,
        dx: Mat,
    ) {
        self.record_linear_backward_input(dy, y, act, dropout, params, layer, dx);
    }

    fn linear_backward_params(
        &mut self,
        dy: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        x: Mat,
        grads: Tensor,
        layer: LayerSlot,
    ) {
        self.record_linear_backward_params(dy, y, act, dropout, x, grads, layer);
    }

    fn bce_with_logits(
        &mut self,
        logits: Mat,
        dlogits: Mat,
        split: u32,
        target_first: f32,
        target_second: f32,
        weight: f32,
        stats: Tensor,
        slots: LossSlots,
    ) {
        self.record_bce_with_logits(
            logits,
            dlogits,
            split,
            target_first,
            target_second,
            weight,
            stats,
            slots,
        );
    }

    fn critic_loss(
        &mut self,
        p: &crate::model::critic_loss::CriticLossParams,
        logits: Mat,
        dlogits: Mat,
        stats: Tensor,
        slots: LossSlots,
    ) {
        self.record_critic_loss(p, logits, dlogits, stats, slots);
    }

    fn softmax_cross_entropy(
        &mut self,
        logits: Mat,
        targets: Mat,
        dlogits: Mat,
        weight: f32,
        stats: Tensor,
        slots: CeSlots,
    ) {
        self.record_softmax_cross_entropy(logits, targets, dlogits, weight, stats, slots);
    }

    fn adam_update(
        &mut self,
        params: Tensor,
        grads: Tensor,
        m: Tensor,
        v: Tensor,
        adam: AdamSettings,
    ) {
        self.record_adam_update(params, grads, m, v, adam);
    }

    fn rmsprop_update(
        &mut self,
        params: Tensor,
        grads: Tensor,
        sq: Tensor,
        settings: crate::model::RmsPropSettings,
    ) {
        self.record_rmsprop_update(params, grads, sq, settings);
    }

    fn clamp_values(&mut self, t: Tensor, limit: f32) {
        self.record_clamp_values(t, limit);
    }

    fn ema_update(&mut self, avg: Tensor, values: Tensor, decay: f32) {
        self.record_ema_update(avg, values, decay);
    }

    fn add_scaled(&mut self, dst: Tensor, src: Tensor, alpha: f32) {
        self.record_add_scaled(dst, src, alpha);
    }

    fn interpolate_rows(&mut self, real: Mat, fake: Mat, stream: u32, out: Mat) {
        self.record_interpolate_rows(real, fake, stream, out);
    }

    fn gradient_penalty(&mut self, grad: Mat, weight: f32, v: Mat, stats: Tensor, slot: u32) {
        self.record_gradient_penalty(grad, weight, v, stats, slot);
    }

    fn activation_curvature(
        &mut self,
        u: Mat,
        t: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        out: Mat,
    ) {
        self.record_activation_curvature(u, t, y, act, dropout, out);
    }

    fn conv2d_forward(
        &mut self,
        p: &Conv2dParams,
        x: Tensor,
        w: Tensor,
        bias: Option<Tensor>,
        y: Tensor,
    ) {
        let r = self.try_conv2d_forward(p, x, w, bias, y);
        self.pend(r);
    }

    fn conv2d_backward_input(&mut self, p: &Conv2dParams, dy: Tensor, w: Tensor, dx: Tensor) {
        let r = self.try_conv2d_backward_input(p, dy, w, dx);
        self.pend(r);
    }

    fn conv2d_backward_params(
        &mut self,
        p: &Conv2dParams,
        x: Tensor,
        dy: Tensor,
        dw: Tensor,
        dbias: Option<Tensor>,
    ) {
        let r = self.try_conv2d_backward_params(p, x, dy, dw, dbias);
        self.pend(r);
    }

    fn conv_transpose2d_forward(
        &mut self,
        p: &ConvTranspose2dParams,
        x: Tensor,
        w: Tensor,
        bias: Option<Tensor>,
        y: Tensor,
    ) {
        let r = self.try_conv_transpose2d_forward(p, x, w, bias, y);
        self.pend(r);
    }

    fn conv_transpose2d_backward_input(
        &mut self,
        p: &ConvTranspose2dParams,
        dy: Tensor,
        w: Tensor,
        dx: Tensor,
    ) {
        let r = self.try_conv_transpose2d_backward_input(p, dy, w, dx);
        self.pend(r);
    }

    fn conv_transpose2d_backward_params(
        &mut self,
        p: &ConvTranspose2dParams,
        x: Tensor,
        dy: Tensor,
        dw: Tensor,
        dbias: Option<Tensor>,
    ) {
        let r = self.try_conv_transpose2d_backward_params(p, x, dy, dw, dbias);
        self.pend(r);
    }

    fn batch_norm_forward_train(
        &mut self,
        p: &BatchNormParams,
        act: Activation,
        x: Tensor,
        bn: &BatchNormTensors,
        y: Tensor,
    ) {
        let r = self.try_batch_norm_forward_train(
            p,
            act,
            x,
            bn.gamma,
            bn.beta,
            y,
            bn.saved_mean,
            bn.saved_inv_std,
            bn.running_mean,
            bn.running_var,
        );
        self.pend(r);
    }

    fn batch_norm_forward_eval(
        &mut self,
        p: &BatchNormParams,
        act: Activation,
        x: Tensor,
        bn: &BatchNormTensors,
        y: Tensor,
    ) {
        let r = self.try_batch_norm_forward_eval(
            p,
            act,
            x,
            bn.gamma,
            bn.beta,
            bn.running_mean,
            bn.running_var,
            y,
        );
        self.pend(r);
    }

    fn batch_norm_backward(
        &mut self,
        p: &BatchNormParams,
        x: Tensor,
        dy: Tensor,
        bn: &BatchNormTensors,
        dx: Tensor,
        dgamma: Tensor,
        dbeta: Tensor,
    ) {
        let r = self.try_batch_norm_backward(
            p,
            x,
            dy,
            bn.gamma,
            bn.saved_mean,
            bn.saved_inv_std,
            dx,
            dgamma,
            dbeta,
        );
        self.pend(r);
    }

    fn activation_forward(&mut self, x: Mat, act: Activation, dropout: Option<Dropout>, y: Mat) {
        self.record_activation_forward(x, act, dropout, y);
    }

    fn activation_backward(
        &mut self,
        dy: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        dx: Mat,
    ) {
        self.record_activation_backward(dy, y, act, dropout, dx);
    }

    fn finite_check(&mut self, t: Tensor, stats: Tensor, slot: u32) {
        self.record_finite_check(t, stats, slot);
    }

    fn end_step(&mut self) {
        self.dispatch::<AdamParams>(Kernel::EndStep, None, &[Buf::Clock], (1, 1, 1));
        self.steps_since_submit += 1;
        if self.steps_since_submit >= self.steps_per_submit {
            self.submit();
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.submit();
        self.take_errors()
    }

    fn sync(&mut self) -> Result<()> {
        self.submit();
        self.wait_idle()?;
        self.behind = None;
        self.take_errors_while("running the recorded training steps")
    }

    fn sync_behind(&mut self) -> Result<()> {
        self.submit();
        let previous = std::mem::replace(&mut self.behind, self.last_submission.clone());
        if let Some(index) = previous {
            self.wait_for(index)?;
        }
        self.take_errors_while("running the recorded training steps")
    }

    fn work_counts(&self) -> Option<WorkCounts> {
        Some(WorkCounts {
            dispatches: self.dispatches(),
            submits: self.submits(),
        })
    }
}
