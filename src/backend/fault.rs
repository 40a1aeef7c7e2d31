//! Fault injection, for testing what a run does when its device fails.
//!
//! [`FaultyBackend`] wraps any backend and passes every op through until its
//! [`Fault`] fires; from then on it behaves like a lost GPU device: recorded
//! ops do nothing and every call that reports errors returns
//! [`Error::DeviceLost`]. Without a fault it is a plain pass-through.
//!
//! The binary reads the fault from the environment (a test hook, not a user
//! feature): `GAN_GPU_INJECT_FAULT=device-lost@step:N` loses the device once
//! the run has recorded step N (counted from the run's first step, as the
//! checkpoint's `step`). The loss surfaces at the next sync, as a real one
//! would. See `gan-gpu train` in the README ("Reliability").

use super::conv_params::{BatchNormParams, Conv2dParams, ConvTranspose2dParams};
use super::{
    Backend, BatchNormTensors, CeSlots, Clock, Dropout, LossSlots, Mat, Tensor, WorkCounts,
};
use crate::error::{Error, Result};
use crate::model::{Activation, AdamSettings, LayerSlot};

/// The environment variable the binary reads a [`Fault`] from.
pub const ENV_VAR: &str = "GAN_GPU_INJECT_FAULT";

/// A fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The device is lost once the clock has reached this step.
    DeviceLostAtStep(u32),
}

impl Fault {
    /// Parses `device-lost@step:N`; the error names [`ENV_VAR`].
    pub fn parse(text: &str) -> Result<Fault> {
        let bad = || {
            Error::config(
                ENV_VAR,
                format!("{text:?} is not a fault (expected device-lost@step:N)"),
            )
        };
        let step = text
            .trim()
            .strip_prefix("device-lost@step:")
            .ok_or_else(bad)?;
        step.parse().map(Fault::DeviceLostAtStep).map_err(|_| bad())
    }

    /// The fault named by [`ENV_VAR`], if it is set and not empty.
    pub fn from_env() -> Result<Option<Fault>> {
        match std::env::var(ENV_VAR) {
            Ok(v) if !v.trim().is_empty() => Fault::parse(&v).map(Some),
            _ => Ok(None),
        }
    }
}

/// A backend that fails on cue (see the module docs).
pub struct FaultyBackend<B> {
    inner: B,
    fault: Option<Fault>,
    /// The clock's step, tracked on the host from `set_clock` and `end_step`.
    step: u32,
    lost: bool,
}

impl<B: Backend> FaultyBackend<B> {
    /// Wraps `inner`; `fault: None` passes everything through.
    pub fn new(inner: B, fault: Option<Fault>) -> Self {
        FaultyBackend {
            inner,
            fault,
            step: 0,
            lost: false,
        }
    }

    fn check(&self, doing: &str) -> Result<()> {
        if self.lost {
            return Err(Error::DeviceLost {
                adapter: self.inner.describe(),
                doing: doing.to_string(),
                reason: format!("injected fault ({ENV_VAR})"),
            });
        }
        Ok(())
    }

    /// Whether recorded ops still reach the device.
    fn alive(&self) -> bool {
        !self.lost
    }
}

impl<B: Backend> Backend for FaultyBackend<B> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn alloc(&mut self, len: usize) -> Result<Tensor> {
        self.check("allocating a tensor")?;
        self.inner.alloc(len)
    }

    fn write(&mut self, t: Tensor, data: &[f32]) -> Result<()> {
        self.check("writing a tensor")?;
        self.inner.write(t, data)
    }

    fn read(&mut self, t: Tensor) -> Result<Vec<f32>> {
        self.check("reading back a tensor")?;
        self.inner.read(t)
    }

    fn upload_dataset(&mut self, images: &[u8], labels: &[u8], pixels: usize) -> Result<()> {
        self.check("uploading the training set")?;
        self.inner.upload_dataset(images, labels, pixels)
    }

    fn set_epoch_order(&mut self, order: &[u32]) -> Result<()> {
        self.check("setting the epoch order")?;
        self.inner.set_epoch_order(order)
    }

    fn set_clock(&mut self, clock: Clock) -> Result<()> {
        self.check("setting the clock")?;
        self.step = clock.step;
        self.inner.set_clock(clock)
    }

    fn clock(&mut self) -> Result<Clock> {
        self.check("reading the clock")?;
        self.inner.clock()
    }

    fn gather_batch(&mut self, x: Mat, onehot: Option<Mat>, scale: f32, shift: f32) {
        if self.alive() {
            self.inner.gather_batch(x, onehot, scale, shift);
        }
    }

    fn normal_noise(&mut self, out: Mat, stream: u32) {
        if self.alive() {
            self.inner.normal_noise(out, stream);
        }
    }

    fn random_onehot(&mut self, out: Mat, also: Option<Mat>, stream: u32) {
        if self.alive() {
            self.inner.random_onehot(out, also, stream);
        }
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
        if self.alive() {
            self.inner.linear_forward(x, params, layer, act, dropout, y);
        }
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
        if self.alive() {
            self.inner
                .linear_backward_input(dy, y, act, dropout, params, layer, dx);
        }
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
        if self.alive() {
            self.inner
                .linear_backward_params(dy, y, act, dropout, x, grads, layer);
        }
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
        if self.alive() {
            self.inner.bce_with_logits(
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
    }

    fn critic_loss(
        &mut self,
        p: &crate::model::critic_loss::CriticLossParams,
        logits: Mat,
        dlogits: Mat,
        stats: Tensor,
        slots: LossSlots,
    ) {
        if self.alive() {
            self.inner.critic_loss(p, logits, dlogits, stats, slots);
        }
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
        if self.alive() {
            self.inner
                .softmax_cross_entropy(logits, targets, dlogits, weight, stats, slots);
        }
    }

    fn adam_update(
        &mut self,
        params: Tensor,
        grads: Tensor,
        m: Tensor,
        v: Tensor,
        adam: AdamSettings,
    ) {
        if self.alive() {
            self.inner.adam_update(params, grads, m, v, adam);
        }
    }

    fn rmsprop_update(
        &mut self,
        params: Tensor,
        grads: Tensor,
        sq: Tensor,
        settings: crate::model::RmsPropSettings,
    ) {
        if self.alive() {
            self.inner.rmsprop_update(params, grads, sq, settings);
        }
    }

    fn clamp_values(&mut self, t: Tensor, limit: f32) {
        if self.alive() {
            self.inner.clamp_values(t, limit);
        }
    }

    fn ema_update(&mut self, avg: Tensor, values: Tensor, decay: f32) {
        if self.alive() {
            self.inner.ema_update(avg, values, decay);
        }
    }

    fn add_scaled(&mut self, dst: Tensor, src: Tensor, alpha: f32) {
        if self.alive() {
            self.inner.add_scaled(dst, src, alpha);
        }
    }

    fn interpolate_rows(&mut self, real: Mat, fake: Mat, stream: u32, out: Mat) {
        if self.alive() {
            self.inner.interpolate_rows(real, fake, stream, out);
        }
    }

    fn gradient_penalty(&mut self, grad: Mat, weight: f32, v: Mat, stats: Tensor, slot: u32) {
        if self.alive() {
            self.inner.gradient_penalty(grad, weight, v, stats, slot);
        }
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
        if self.alive() {
            self.inner.activation_curvature(u, t, y, act, dropout, out);
        }
    }

    fn conv2d_forward(
        &mut self,
        p: &Conv2dParams,
        x: Tensor,
        w: Tensor,
        bias: Option<Tensor>,
        y: Tensor,
    ) {
        if self.alive() {
            self.inner.conv2d_forward(p, x, w, bias, y);
        }
    }

    fn conv2d_backward_input(&mut self, p: &Conv2dParams, dy: Tensor, w: Tensor, dx: Tensor) {
        if self.alive() {
            self.inner.conv2d_backward_input(p, dy, w, dx);
        }
    }

    fn conv2d_backward_params(
        &mut self,
        p: &Conv2dParams,
        x: Tensor,
        dy: Tensor,
        dw: Tensor,
        dbias: Option<Tensor>,
    ) {
        if self.alive() {
            self.inner.conv2d_backward_params(p, x, dy, dw, dbias);
        }
    }

    fn conv_transpose2d_forward(
        &mut self,
        p: &ConvTranspose2dParams,
        x: Tensor,
        w: Tensor,
        bias: Option<Tensor>,
        y: Tensor,
    ) {
        if self.alive() {
            self.inner.conv_transpose2d_forward(p, x, w, bias, y);
        }
    }

    fn conv_transpose2d_backward_input(
        &mut self,
        p: &ConvTranspose2dParams,
        dy: Tensor,
        w: Tensor,
        dx: Tensor,
    ) {
        if self.alive() {
            self.inner.conv_transpose2d_backward_input(p, dy, w, dx);
        }
    }

    fn conv_transpose2d_backward_params(
        &mut self,
        p: &ConvTranspose2dParams,
        x: Tensor,
        dy: Tensor,
        dw: Tensor,
        dbias: Option<Tensor>,
    ) {
        if self.alive() {
            self.inner
                .conv_transpose2d_backward_params(p, x, dy, dw, dbias);
        }
    }

    fn batch_norm_forward_train(
        &mut self,
        p: &BatchNormParams,
        act: Activation,
        x: Tensor,
        bn: &BatchNormTensors,
        y: Tensor,
    ) {
        if self.alive() {
            self.inner.batch_norm_forward_train(p, act, x, bn, y);
        }
    }

    fn batch_norm_forward_eval(
        &mut self,
        p: &BatchNormParams,
        act: Activation,
        x: Tensor,
        bn: &BatchNormTensors,
        y: Tensor,
    ) {
        if self.alive() {
            self.inner.batch_norm_forward_eval(p, act, x, bn, y);
        }
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
        if self.alive() {
            self.inner
                .batch_norm_backward(p, x, dy, bn, dx, dgamma, dbeta);
        }
    }

    fn activation_forward(&mut self, x: Mat, act: Activation, dropout: Option<Dropout>, y: Mat) {
        if self.alive() {
            self.inner.activation_forward(x, act, dropout, y);
        }
    }

    fn activation_backward(
        &mut self,
        dy: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        dx: Mat,
    ) {
        if self.alive() {
            self.inner.activation_backward(dy, y, act, dropout, dx);
        }
    }

    fn finite_check(&mut self, t: Tensor, stats: Tensor, slot: u32) {
        if self.alive() {
            self.inner.finite_check(t, stats, slot);
        }
    }

    fn end_step(&mut self) {
        if !self.alive() {
            return;
        }
        self.inner.end_step();
        self.step = self.step.wrapping_add(1);
        if let Some(Fault::DeviceLostAtStep(at)) = self.fault {
            if self.step >= at {
                self.lost = true;
            }
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.check("running the recorded training steps")?;
        self.inner.flush()
    }

    fn sync(&mut self) -> Result<()> {
        self.check("running the recorded training steps")?;
        self.inner.sync()
    }

    fn sync_behind(&mut self) -> Result<()> {
        self.check("running the recorded training steps")?;
        self.inner.sync_behind()
    }

    fn work_counts(&self) -> Option<WorkCounts> {
        self.inner.work_counts()
    }
}
