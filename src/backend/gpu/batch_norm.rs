//! Batch norm on the GPU: the twins of [`crate::backend::cpu::batch_norm`],
//! as inherent methods of [`GpuBackend`] named like them with a `try_`
//! prefix (the [`Backend`](crate::backend::Backend) ops of the same names,
//! which take a [`BatchNormTensors`](crate::backend::BatchNormTensors),
//! call them and turn an error into the pending error), the same
//! [`BatchNormParams`] and PyTorch's semantics (biased variance to
//! normalise, the unbiased one in the running estimate). Each op is
//! recorded into the open compute pass; nothing is submitted. The kernels
//! are in `shaders/batch_norm.wgsl`:
//!
//! - `batch_norm_forward_train`: two dispatches. `batch_norm_forward_train`
//!   (one workgroup per channel, tree sums in workgroup memory, the mean
//!   first and then the centred sum of squares; the groups of rows one
//!   after another, so the running update sees group 0 first) writes
//!   saved_mean and saved_inv_std `[groups, C]` and updates running_mean
//!   and running_var; then `batch_norm_normalize` (one thread per element)
//!   writes y = act(gamma * (x - mean) * inv_std + beta) with the
//!   statistics of the element's group.
//! - `batch_norm_forward_eval`: one element-wise dispatch from the running
//!   estimates, with the same optional activation (groups play no part).
//! - `batch_norm_backward`: `batch_norm_backward` (per channel) writes
//!   dbeta = sum dy and dgamma = sum dy * x_hat (the groups' sums added);
//!   `batch_norm_backward_dx` (per channel) computes each group's sums
//!   again and writes the group's dx. The sums are recomputed rather than
//!   read from dgamma and dbeta so that no kernel binds more than the 6
//!   storage buffers the backend asks adapters for (and dgamma and dbeta
//!   are totals over the groups, not the per-group sums dx needs).
//!
//! The activation fused into the forward ops' epilogue is the models'
//! [`Activation`] (identity, ReLU, LeakyReLU(slope), sigmoid, tanh), by the
//! codes of `shaders/activation.wgsl`; the CPU twin has none, so
//! `Activation::Identity` is the exact twin, and any other equals the CPU's
//! output passed through `Activation::apply`.
//!
//! Every op checks its arguments on the host and returns a typed error
//! instead of recording: parameters that fail `validate` (`validate_train`
//! for the training ops), a tensor of another backend or of the wrong
//! length, an output that is also another argument, or an adapter below
//! what the kernels need.

use super::kernels::Kernel;
use super::params::BatchNormUniform;
use super::record::{Buf, Entry};
use super::{grid_1d, GpuBackend};
use crate::backend::conv_params::BatchNormParams;
use crate::backend::Tensor;
use crate::error::{Error, Result};
use crate::model::Activation;

/// Threads per workgroup of every batch-norm kernel.
const THREADS: u32 = 256;
/// Workgroup memory of the per-channel kernels: two 256-long f32 arrays.
const WORKGROUP_BYTES: u32 = 2 * 256 * 4;
/// Storage buffers per dispatch.
const STORAGE_BUFFERS: u32 = 6;

impl GpuBackend {
    /// The training forward: y `[B, C, S]` = act(gamma * (x - mean) *
    /// inv_std + beta) with the batch mean and biased variance of each
    /// channel of each of `p.groups` groups of rows; writes saved_mean and
    /// saved_inv_std `[groups, C]` and moves running_mean and running_var
    /// `[C]` towards each group's statistics in turn (unbiased variance), as
    /// `cpu::batch_norm::batch_norm_forward_train` followed by `act`.
    #[allow(clippy::too_many_arguments)]
    pub fn try_batch_norm_forward_train(
        &mut self,
        p: &BatchNormParams,
        act: Activation,
        x: Tensor,
        gamma: Tensor,
        beta: Tensor,
        y: Tensor,
        saved_mean: Tensor,
        saved_inv_std: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
    ) -> Result<()> {
        let op = "batch_norm_forward_train";
        let u = self.check_bn_params(op, p, act, true)?;
        let (full, c, saved) = (Some(p.len()), Some(p.channels), Some(p.stats_len()));
        self.check_args(
            op,
            &[("x", x, full), ("gamma", gamma, c), ("beta", beta, c)],
            &[
                ("y", y, full),
                ("saved_mean", saved_mean, saved),
                ("saved_inv_std", saved_inv_std, saved),
                ("running_mean", running_mean, c),
                ("running_var", running_var, c),
            ],
        )?;
        let stats = [x, running_mean, running_var, saved_mean, saved_inv_std, x];
        self.record_bn_per_channel(Kernel::BatchNormForwardTrain, &u, stats)?;
        let normalize = [x, gamma, beta, saved_mean, saved_inv_std, y];
        self.record_bn_elementwise(Kernel::BatchNormNormalize, &u, normalize)
    }

    /// The evaluation forward: y `[B, C, S]` = act(gamma * (x -
    /// running_mean) / sqrt(running_var + eps) + beta), as
    /// `cpu::batch_norm::batch_norm_forward_eval` followed by `act`.
    #[allow(clippy::too_many_arguments)]
    pub fn try_batch_norm_forward_eval(
        &mut self,
        p: &BatchNormParams,
        act: Activation,
        x: Tensor,
        gamma: Tensor,
        beta: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
        y: Tensor,
    ) -> Result<()> {
        let op = "batch_norm_forward_eval";
        let u = self.check_bn_params(op, p, act, false)?;
        let (full, c) = (Some(p.len()), Some(p.channels));
        self.check_args(
            op,
            &[
                ("x", x, full),
                ("gamma", gamma, c),
                ("beta", beta, c),
                ("running_mean", running_mean, c),
                ("running_var", running_var, c),
            ],
            &[("y", y, full)],
        )?;
        let buffers = [x, gamma, beta, running_mean, running_var, y];
        self.record_bn_elementwise(Kernel::BatchNormForwardEval, &u, buffers)
    }

    /// The training backward (no activation): dx `[B, C, S]`, dgamma and
    /// dbeta `[C]` for x and dy `[B, C, S]`, gamma `[C]` and the saved
    /// statistics `[groups, C]` of the forward, as
    /// `cpu::batch_norm::batch_norm_backward`.
    #[allow(clippy::too_many_arguments)]
    pub fn try_batch_norm_backward(
        &mut self,
        p: &BatchNormParams,
        x: Tensor,
        dy: Tensor,
        gamma: Tensor,
        saved_mean: Tensor,
        saved_inv_std: Tensor,
        dx: Tensor,
        dgamma: Tensor,
        dbeta: Tensor,
    ) -> Result<()> {
        let op = "batch_norm_backward";
        let u = self.check_bn_params(op, p, Activation::Identity, true)?;
        let (full, c, saved) = (Some(p.len()), Some(p.channels), Some(p.stats_len()));
        self.check_args(
            op,
            &[
                ("x", x, full),
                ("dy", dy, full),
                ("gamma", gamma, c),
                ("saved_mean", saved_mean, saved),
                ("saved_inv_std", saved_inv_std, saved),
            ],
            &[("dx", dx, full), ("dgamma", dgamma, c), ("dbeta", dbeta, c)],
        )?;
        let sums = [x, dy, dgamma, saved_mean, saved_inv_std, dbeta];
        self.record_bn_per_channel(Kernel::BatchNormBackward, &u, sums)?;
        let dx_buffers = [x, dy, gamma, saved_mean, saved_inv_std, dx];
        self.record_bn_per_channel(Kernel::BatchNormBackwardDx, &u, dx_buffers)
    }

    /// Checks the adapter, then the parameters (`validate_train` when
    /// `train`, else `validate`), and returns the kernels' uniform (groups
    /// 1 unless `train`: evaluation ignores them).
    fn check_bn_params(
        &self,
        op: &str,
        p: &BatchNormParams,
        act: Activation,
        train: bool,
    ) -> Result<BatchNormUniform> {
        self.check_bn_limits(op)?;
        if train {
            p.validate_train()?;
        } else {
            p.validate()?;
        }
        let too_large = || Error::Gpu(format!("{op}: {p:?} is too large"));
        let len = p
            .batch
            .checked_mul(p.channels)
            .and_then(|v| v.checked_mul(p.spatial))
            .ok_or_else(too_large)?;
        // The kernels index in u32.
        u32::try_from(len).map_err(|_| too_large())?;
        Ok(BatchNormUniform {
            batch: p.batch as u32,
            channels: p.channels as u32,
            spatial: p.spatial as u32,
            momentum: p.momentum,
            eps: p.eps,
            act: act.code(),
            slope: act.slope(),
            groups: if train { p.groups as u32 } else { 1 },
        })
    }

    /// An error unless the adapter gives the batch-norm kernels their
    /// workgroup size, workgroup memory and storage buffers.
    fn check_bn_limits(&self, op: &str) -> Result<()> {
        let l = &self.ctx.limits;
        if l.max_compute_invocations_per_workgroup < THREADS
            || l.max_compute_workgroup_size_x < THREADS
            || l.max_compute_workgroup_storage_size < WORKGROUP_BYTES
            || l.max_storage_buffers_per_shader_stage < STORAGE_BUFFERS
        {
            return Err(Error::Gpu(format!(
                "{op}: adapter {} is too small for the batch-norm kernels: {} invocations per \
                 workgroup, workgroup size x {}, {} bytes of workgroup memory and {} storage \
                 buffers per stage ({THREADS}, {THREADS}, {WORKGROUP_BYTES} and \
                 {STORAGE_BUFFERS} needed)",
                self.ctx.adapter_name(),
                l.max_compute_invocations_per_workgroup,
                l.max_compute_workgroup_size_x,
                l.max_compute_workgroup_storage_size,
                l.max_storage_buffers_per_shader_stage,
            )));
        }
        Ok(())
    }

    /// Records a per-channel kernel: one workgroup per channel, capped at
    /// the per-dimension limit (a workgroup then takes every `max`-th
    /// channel).
    fn record_bn_per_channel(
        &mut self,
        kernel: Kernel,
        u: &BatchNormUniform,
        buffers: [Tensor; 6],
    ) -> Result<()> {
        let max = self.ctx.limits.max_compute_workgroups_per_dimension.max(1);
        let buffers = buffers.map(Buf::Tensor);
        let groups = (u.channels.min(max), 1, 1);
        self.try_dispatch_on(kernel, Entry::Plain, Some(u), &buffers, groups)
    }

    /// Records an element-wise kernel: one thread per element of x.
    fn record_bn_elementwise(
        &mut self,
        kernel: Kernel,
        u: &BatchNormUniform,
        buffers: [Tensor; 6],
    ) -> Result<()> {
        let len = u64::from(u.batch) * u64::from(u.channels) * u64::from(u.spatial);
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        let (x, y) = grid_1d(len, max);
        let buffers = buffers.map(Buf::Tensor);
        self.try_dispatch_on(kernel, Entry::Plain, Some(u), &buffers, (x, y, 1))
    }
}
