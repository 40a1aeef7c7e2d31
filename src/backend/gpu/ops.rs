//! The ops of [`Backend`] for [`GpuBackend`]: each checks its views on the
//! host (recording the misuse for the next flush instead of panicking), fills
//! its kernel's uniform struct and records one dispatch. Host transfers
//! (`write`, `read`, the data set, the epoch order, the clock) submit the
//! recorded work first, so they are ordered after it.

use super::kernels::Kernel;
use super::params::*;
use super::{tensor_bytes, Buf, GpuBackend};
use crate::backend::{Backend, CeSlots, Clock, Dropout, LossSlots, Mat, Tensor, WorkCounts};
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
        let buffer = self.new_buffer(
            bytes,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            "tensor",
        );
        self.tensors.push(buffer);
        Ok(Tensor {
            id: (self.tensors.len() - 1) as u32,
            len: len32,
        })
    }

    fn write(&mut self, t: Tensor, data: &[f32]) -> Result<()> {
        if self.tensors.get(t.id as usize).is_none() {
            return Err(Error::Gpu("write: not a tensor of this backend".into()));
        }
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
        if self.tensors.get(t.id as usize).is_none() {
            return Err(Error::Gpu("read: not a tensor of this backend".into()));
        }
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
        let bytes = images.len().next_multiple_of(4) as u64;
        let max = self.ctx.limits.max_storage_buffer_binding_size;
        if bytes > max {
            return Err(Error::Gpu(format!(
                "the training set ({bytes} bytes) exceeds max_storage_buffer_binding_size \
                 ({max} bytes) of adapter {} ({})",
                self.ctx.info.name, self.ctx.info.backend
            )));
        }
        self.submit();
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let packed = Self::pack_bytes(images);
        let new_images = self.new_buffer_init(
            bytemuck::cast_slice(if packed.is_empty() { &[0u32] } else { &packed }),
            usage,
            "images",
        );
        let packed = Self::pack_bytes(labels);
        let new_labels = self.new_buffer_init(
            bytemuck::cast_slice(if packed.is_empty() { &[0u32] } else { &packed }),
            usage,
            "labels",
        );
        let (old_i, old_l) = (self.images.uid, self.labels.uid);
        self.images = new_images;
        self.labels = new_labels;
        self.forget_bindings_of(old_i);
        self.forget_bindings_of(old_l);
        self.pixels = pixels as u32;
        self.images_count = labels.len();
        self.take_errors_while("uploading the training set")
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
        let p = GatherParams {
            rows: x.rows,
            cols: x.cols,
            x_off: x.offset,
            x_stride: x.stride,
            scale,
            shift,
            pixels: self.pixels,
            has_onehot: u32::from(onehot.is_some()),
            h_off: h.offset,
            h_stride: h.stride,
            classes: h.cols,
            pad: 0,
        };
        let threads = u64::from(x.rows) * u64::from(x.cols) + u64::from(x.rows) * u64::from(h.cols);
        self.dispatch_1d(
            Kernel::GatherBatch,
            &p,
            &[
                Buf::Clock,
                Buf::Images,
                Buf::Labels,
                Buf::Order,
                Buf::Tensor(x.tensor),
                Buf::Tensor(h.tensor),
            ],
            threads,
        );
    }

    fn normal_noise(&mut self, out: Mat, stream: u32) {
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

    fn random_onehot(&mut self, out: Mat, also: Option<Mat>, stream: u32) {
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

    fn linear_forward(
        &mut self,
        x: Mat,
        params: Tensor,
        layer: LayerSlot,
        act: Activation,
        dropout: Option<Dropout>,
        y: Mat,
    ) {
        let op = "linear_forward";
        if !self.check_layer(params, layer, op)
            || !self.check_mat(x, op, "x")
            || !self.check_mat(y, op, "y")
            || !self.check(
                x.cols as usize == layer.in_dim
                    && y.rows == x.rows
                    && y.cols as usize == layer.out_dim,
                op,
                || {
                    format!(
                        "x is {} x {}, y is {} x {}, the layer is {} -> {}",
                        x.rows, x.cols, y.rows, y.cols, layer.in_dim, layer.out_dim
                    )
                },
            )
        {
            return;
        }
        let p = LinearParams {
            m: x.rows,
            n: layer.out_dim as u32,
            k: layer.in_dim as u32,
            a_off: x.offset,
            a_stride: x.stride,
            b_off: layer.weight as u32,
            b_stride: layer.in_dim as u32,
            c_off: y.offset,
            c_stride: y.stride,
            bias_off: layer.bias as u32,
            out_cols: layer.out_dim as u32,
            ..Self::linear_params(act, dropout)
        };
        self.dispatch_linear(
            Kernel::LinearForward,
            &p,
            &[
                Buf::Clock,
                Buf::Tensor(x.tensor),
                Buf::Tensor(params),
                Buf::Tensor(y.tensor),
                Buf::Tensor(y.tensor),
            ],
        );
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
        let op = "linear_backward_input";
        if !self.check_layer(params, layer, op)
            || !self.check_backward(dy, y, layer, op)
            || !self.check_mat(dx, op, "dx")
            || !self.check(
                dx.rows == dy.rows && dx.cols as usize <= layer.in_dim,
                op,
                || {
                    format!(
                        "dx is {} x {}, dy has {} rows, the layer has {} inputs",
                        dx.rows, dx.cols, dy.rows, layer.in_dim
                    )
                },
            )
        {
            return;
        }
        let p = LinearParams {
            m: dy.rows,
            n: dx.cols,
            k: layer.out_dim as u32,
            a_off: dy.offset,
            a_stride: dy.stride,
            b_off: layer.weight as u32,
            b_stride: layer.in_dim as u32,
            c_off: dx.offset,
            c_stride: dx.stride,
            y_off: y.offset,
            y_stride: y.stride,
            out_cols: layer.out_dim as u32,
            ..Self::linear_params(act, dropout)
        };
        self.dispatch_linear(
            Kernel::LinearBackwardInput,
            &p,
            &[
                Buf::Clock,
                Buf::Tensor(dy.tensor),
                Buf::Tensor(params),
                Buf::Tensor(y.tensor),
                Buf::Tensor(dx.tensor),
            ],
        );
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
        let op = "linear_backward_params";
        if !self.check_layer(grads, layer, op)
            || !self.check_backward(dy, y, layer, op)
            || !self.check_mat(x, op, "x")
            || !self.check(
                x.rows == dy.rows && x.cols as usize == layer.in_dim,
                op,
                || {
                    format!(
                        "x is {} x {}, dy has {} rows, the layer has {} inputs",
                        x.rows, x.cols, dy.rows, layer.in_dim
                    )
                },
            )
        {
            return;
        }
        let p = LinearParams {
            m: layer.out_dim as u32,
            n: layer.in_dim as u32,
            k: dy.rows,
            a_off: dy.offset,
            a_stride: dy.stride,
            b_off: x.offset,
            b_stride: x.stride,
            c_off: layer.weight as u32,
            c_stride: layer.in_dim as u32,
            bias_off: layer.bias as u32,
            y_off: y.offset,
            y_stride: y.stride,
            out_cols: layer.out_dim as u32,
            ..Self::linear_params(act, dropout)
        };
        self.dispatch_linear(
            Kernel::LinearBackwardParams,
            &p,
            &[
                Buf::Clock,
                Buf::Tensor(dy.tensor),
                Buf::Tensor(x.tensor),
                Buf::Tensor(y.tensor),
                Buf::Tensor(grads),
            ],
        );
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
        let op = "bce_with_logits";
        let slot_ok = |s: Option<u32>| s.is_none_or(|s| s < stats.len);
        if !self.check_mat(logits, op, "logits")
            || !self.check_mat(dlogits, op, "dlogits")
            || !self.check_tensor(stats, op, "stats")
            || !self.check(
                dlogits.rows == logits.rows && logits.cols >= 1 && dlogits.cols >= 1,
                op,
                || {
                    format!(
                        "logits are {} x {}, dlogits {} x {}",
                        logits.rows, logits.cols, dlogits.rows, dlogits.cols
                    )
                },
            )
            || !self.check(
                slot_ok(Some(slots.loss))
                    && slot_ok(slots.prob_first)
                    && slot_ok(slots.prob_second)
                    && split <= logits.rows,
                op,
                || format!("stats slots {slots:?} or split {split} out of range"),
            )
        {
            return;
        }
        let p = BceParams {
            n: logits.rows,
            split,
            target_first,
            target_second,
            weight,
            l_off: logits.offset,
            l_stride: logits.stride,
            d_off: dlogits.offset,
            d_stride: dlogits.stride,
            loss_slot: slots.loss,
            first_slot: slots.prob_first.unwrap_or(NONE),
            second_slot: slots.prob_second.unwrap_or(NONE),
        };
        self.dispatch(
            Kernel::BceWithLogits,
            Some(&p),
            &[
                Buf::Tensor(logits.tensor),
                Buf::Tensor(dlogits.tensor),
                Buf::Tensor(stats),
            ],
            (1, 1, 1),
        );
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
        let op = "softmax_cross_entropy";
        let slot_ok = |s: Option<u32>| s.is_none_or(|s| s < stats.len);
        if !self.check_mat(logits, op, "logits")
            || !self.check_mat(targets, op, "targets")
            || !self.check_mat(dlogits, op, "dlogits")
            || !self.check_tensor(stats, op, "stats")
            || !self.check(
                (targets.rows, targets.cols) == (logits.rows, logits.cols)
                    && (dlogits.rows, dlogits.cols) == (logits.rows, logits.cols),
                op,
                || {
                    format!(
                        "logits are {} x {}, targets {} x {}, dlogits {} x {}",
                        logits.rows,
                        logits.cols,
                        targets.rows,
                        targets.cols,
                        dlogits.rows,
                        dlogits.cols
                    )
                },
            )
            || !self.check(
                slot_ok(Some(slots.loss)) && slot_ok(slots.correct),
                op,
                || format!("stats slots {slots:?} out of range"),
            )
        {
            return;
        }
        let p = CeParams {
            n: logits.rows,
            classes: logits.cols,
            l_off: logits.offset,
            l_stride: logits.stride,
            t_off: targets.offset,
            t_stride: targets.stride,
            d_off: dlogits.offset,
            d_stride: dlogits.stride,
            weight,
            loss_slot: slots.loss,
            correct_slot: slots.correct.unwrap_or(NONE),
            pad: 0,
        };
        self.dispatch(
            Kernel::SoftmaxCrossEntropy,
            Some(&p),
            &[
                Buf::Tensor(logits.tensor),
                Buf::Tensor(targets.tensor),
                Buf::Tensor(dlogits.tensor),
                Buf::Tensor(stats),
            ],
            (1, 1, 1),
        );
    }

    fn adam_update(
        &mut self,
        params: Tensor,
        grads: Tensor,
        m: Tensor,
        v: Tensor,
        adam: AdamSettings,
    ) {
        let op = "adam_update";
        if !self.check_tensor(params, op, "params")
            || !self.check_tensor(grads, op, "grads")
            || !self.check_tensor(m, op, "m")
            || !self.check_tensor(v, op, "v")
            || !self.check(
                grads.len == params.len && m.len == params.len && v.len == params.len,
                op,
                || {
                    format!(
                        "lengths differ: params {}, grads {}, m {}, v {}",
                        params.len, grads.len, m.len, v.len
                    )
                },
            )
        {
            return;
        }
        let p = AdamParams {
            len: params.len,
            lr: adam.lr,
            beta1: adam.beta1,
            beta2: adam.beta2,
            eps: adam.eps,
            pad: [0; 3],
        };
        self.dispatch_1d(
            Kernel::AdamUpdate,
            &p,
            &[
                Buf::Clock,
                Buf::Tensor(params),
                Buf::Tensor(grads),
                Buf::Tensor(m),
                Buf::Tensor(v),
            ],
            u64::from(params.len),
        );
    }

    fn finite_check(&mut self, t: Tensor, stats: Tensor, slot: u32) {
        let op = "finite_check";
        if !self.check_tensor(t, op, "values")
            || !self.check_tensor(stats, op, "stats")
            || !self.check(slot < stats.len, op, || {
                format!("slot {slot} is outside the stats tensor of {}", stats.len)
            })
        {
            return;
        }
        let p = FiniteParams {
            len: t.len,
            slot,
            pad: [0; 2],
        };
        self.dispatch_1d(
            Kernel::FiniteCheck,
            &p,
            &[Buf::Tensor(t), Buf::Tensor(stats)],
            u64::from(t.len),
        );
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
