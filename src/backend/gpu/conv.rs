//! The convolutions on the GPU: the twins of [`crate::backend::cpu::conv`],
//! as inherent methods of [`GpuBackend`] named like them with a `try_`
//! prefix (`try_conv2d_forward`), taking the same parameter structs
//! ([`Conv2dParams`], [`ConvTranspose2dParams`]) and returning their errors.
//! The [`Backend`](crate::backend::Backend) ops of the same names call them
//! and turn an error into the pending error. Each op is recorded, like
//! every other op, into the open compute pass; nothing is submitted.
//!
//! The three products are implicit GEMMs on the tiled kernels of
//! `shaders/conv.wgsl` (32 x 32 output tiles in workgroup memory), whose
//! operand loads compute the im2col index; there is no im2col buffer. On
//! CPU adapters, where the backend's matmul variant is `direct`, the registry
//! builds the `*_direct` entry points instead (the same tiles and loads
//! without workgroup memory or barriers, as the linear ops do there):
//!
//! - `conv2d_forward`: M = batch * out_h * out_w, N = out channels,
//!   K = in channels * k * k; the bias is added in the epilogue.
//! - `conv2d_backward_input`: M = batch * in_h * in_w, N = in channels,
//!   K = out channels * k * k (dy gathered through the stride and padding).
//! - `conv2d_backward_params`: M = out channels, N = in channels * k * k,
//!   K = batch * out_h * out_w; dbias is one extra small dispatch
//!   (`conv2d_bias_grad`, a sum per channel over batch and positions).
//!
//! A transposed convolution is the adjoint of the convolution
//! [`ConvTranspose2dParams::as_conv`] describes, and runs on the same
//! kernels: its forward is that convolution's backward-input (with the bias
//! in the epilogue), its backward-input is that convolution's forward, and
//! its backward-params is that convolution's backward-params with x and dy
//! swapped (the weight layouts `[in, out, k, k]` and `[out, in, k, k]` are
//! then the same memory).
//!
//! Every op checks its arguments on the host and returns a typed error
//! instead of recording: parameters that fail `validate`, a tensor of
//! another backend or of the wrong length, an output that is also an
//! input, or an adapter below what the kernels need.

use super::checks::Arg;
use super::kernels::Kernel;
use super::params::ConvParams;
use super::record::{Buf, Entry};
use super::GpuBackend;
use crate::backend::conv_params::{Conv2dParams, ConvTranspose2dParams};
use crate::backend::Tensor;
use crate::error::{Error, Result};

/// Side of the square output tile of one workgroup (`TILE` in conv.wgsl).
const TILE: u32 = 32;
/// Threads per workgroup: 16 x 16 for the products, 256 x 1 for the bias
/// gradient.
const THREADS: u32 = 256;
/// Workgroup memory of the products: two 32 x 32 f32 tiles.
const WORKGROUP_BYTES: u32 = 2 * 32 * 32 * 4;
/// Storage buffers per dispatch: a, b, bias, c.
const STORAGE_BUFFERS: u32 = 4;
/// The largest size any field of the parameters may have: far above any
/// tensor a device holds, and small enough that the output-size formulas
/// cannot overflow.
const MAX_FIELD: usize = (u32::MAX / 4) as usize;

/// Elements of an NCHW tensor or a weight: the product of `sizes`, or None
/// when it overflows.
fn elements(sizes: [usize; 4]) -> Option<usize> {
    sizes.iter().try_fold(1usize, |a, &s| a.checked_mul(s))
}

/// The element counts of a convolution's x, y and weight.
struct Lengths {
    x: Option<usize>,
    y: Option<usize>,
    w: Option<usize>,
}

fn lengths(c: &Conv2dParams) -> Lengths {
    Lengths {
        x: elements([c.batch, c.in_channels, c.in_h, c.in_w]),
        y: elements([c.batch, c.out_channels, c.out_h(), c.out_w()]),
        w: elements([c.out_channels, c.in_channels, c.kernel, c.kernel]),
    }
}

impl GpuBackend {
    /// y `[B, out, out_h, out_w]` = conv(x `[B, in, in_h, in_w]`,
    /// w `[out, in, k, k]`) + bias `[out]` (when given).
    pub fn try_conv2d_forward(
        &mut self,
        p: &Conv2dParams,
        x: Tensor,
        w: Tensor,
        bias: Option<Tensor>,
        y: Tensor,
    ) -> Result<()> {
        let op = "conv2d_forward";
        self.check_conv_params(op, p)?;
        let len = lengths(p);
        let bias_arg = bias.map(|b| ("bias", b, Some(p.out_channels)));
        let inputs: Vec<Arg> = [Some(("x", x, len.x)), Some(("w", w, len.w)), bias_arg]
            .into_iter()
            .flatten()
            .collect();
        self.check_args(op, &inputs, &[("y", y, len.y)])?;
        self.record_conv_gemm(Kernel::Conv2dForward, p, x, w, bias, y)
    }

    /// dx `[B, in, in_h, in_w]` = the gradient of <y, dy> with respect to x,
    /// for dy `[B, out, out_h, out_w]` and w `[out, in, k, k]`.
    pub fn try_conv2d_backward_input(
        &mut self,
        p: &Conv2dParams,
        dy: Tensor,
        w: Tensor,
        dx: Tensor,
    ) -> Result<()> {
        let op = "conv2d_backward_input";
        self.check_conv_params(op, p)?;
        let len = lengths(p);
        self.check_args(
            op,
            &[("dy", dy, len.y), ("w", w, len.w)],
            &[("dx", dx, len.x)],
        )?;
        self.record_conv_gemm(Kernel::Conv2dBackwardInput, p, dy, w, None, dx)
    }

    /// dw `[out, in, k, k]` and dbias `[out]` (when given) for x
    /// `[B, in, in_h, in_w]` and dy `[B, out, out_h, out_w]`.
    pub fn try_conv2d_backward_params(
        &mut self,
        p: &Conv2dParams,
        x: Tensor,
        dy: Tensor,
        dw: Tensor,
        dbias: Option<Tensor>,
    ) -> Result<()> {
        let op = "conv2d_backward_params";
        self.check_conv_params(op, p)?;
        let len = lengths(p);
        let dbias_arg = dbias.map(|b| ("dbias", b, Some(p.out_channels)));
        let outputs: Vec<Arg> = [Some(("dw", dw, len.w)), dbias_arg]
            .into_iter()
            .flatten()
            .collect();
        self.check_args(op, &[("x", x, len.x), ("dy", dy, len.y)], &outputs)?;
        self.record_conv_gemm(Kernel::Conv2dBackwardParams, p, dy, x, None, dw)?;
        match dbias {
            Some(db) => {
                self.record_bias_grad(p.batch, p.out_channels, p.out_h() * p.out_w(), dy, db)
            }
            None => Ok(()),
        }
    }

    /// y `[B, out, out_h, out_w]` = conv_transpose(x `[B, in, in_h, in_w]`,
    /// w `[in, out, k, k]`) + bias `[out]` (when given): the backward-input
    /// kernel of `p.as_conv()`, with the bias in its epilogue.
    pub fn try_conv_transpose2d_forward(
        &mut self,
        p: &ConvTranspose2dParams,
        x: Tensor,
        w: Tensor,
        bias: Option<Tensor>,
        y: Tensor,
    ) -> Result<()> {
        let op = "conv_transpose2d_forward";
        let c = self.check_transpose_params(op, p)?;
        let len = lengths(&c);
        let bias_arg = bias.map(|b| ("bias", b, Some(p.out_channels)));
        let inputs: Vec<Arg> = [Some(("x", x, len.y)), Some(("w", w, len.w)), bias_arg]
            .into_iter()
            .flatten()
            .collect();
        self.check_args(op, &inputs, &[("y", y, len.x)])?;
        self.record_conv_gemm(Kernel::Conv2dBackwardInput, &c, x, w, bias, y)
    }

    /// dx `[B, in, in_h, in_w]` = the gradient of <y, dy> with respect to x,
    /// for dy `[B, out, out_h, out_w]` and w `[in, out, k, k]`: the forward
    /// kernel of `p.as_conv()` applied to dy.
    pub fn try_conv_transpose2d_backward_input(
        &mut self,
        p: &ConvTranspose2dParams,
        dy: Tensor,
        w: Tensor,
        dx: Tensor,
    ) -> Result<()> {
        let op = "conv_transpose2d_backward_input";
        let c = self.check_transpose_params(op, p)?;
        let len = lengths(&c);
        self.check_args(
            op,
            &[("dy", dy, len.x), ("w", w, len.w)],
            &[("dx", dx, len.y)],
        )?;
        self.record_conv_gemm(Kernel::Conv2dForward, &c, dy, w, None, dx)
    }

    /// dw `[in, out, k, k]` and dbias `[out]` (when given) for x
    /// `[B, in, in_h, in_w]` and dy `[B, out, out_h, out_w]`: the
    /// backward-params kernel of `p.as_conv()` with dy as its input and x as
    /// its output gradient; dbias sums dy over batch and positions.
    pub fn try_conv_transpose2d_backward_params(
        &mut self,
        p: &ConvTranspose2dParams,
        x: Tensor,
        dy: Tensor,
        dw: Tensor,
        dbias: Option<Tensor>,
    ) -> Result<()> {
        let op = "conv_transpose2d_backward_params";
        let c = self.check_transpose_params(op, p)?;
        let len = lengths(&c);
        let dbias_arg = dbias.map(|b| ("dbias", b, Some(p.out_channels)));
        let outputs: Vec<Arg> = [Some(("dw", dw, len.w)), dbias_arg]
            .into_iter()
            .flatten()
            .collect();
        self.check_args(op, &[("x", x, len.y), ("dy", dy, len.x)], &outputs)?;
        // The convolution's dy is this op's x, its x this op's dy.
        self.record_conv_gemm(Kernel::Conv2dBackwardParams, &c, x, dy, None, dw)?;
        match dbias {
            Some(db) => {
                self.record_bias_grad(p.batch, p.out_channels, p.out_h() * p.out_w(), dy, db)
            }
            None => Ok(()),
        }
    }

    /// Checks the adapter against what the conv kernels need, then the
    /// parameters (every field bounded, then `validate`).
    fn check_conv_params(&self, op: &str, p: &Conv2dParams) -> Result<()> {
        self.check_conv_limits(op)?;
        let fields = [
            p.batch,
            p.in_channels,
            p.out_channels,
            p.in_h,
            p.in_w,
            p.kernel,
            p.stride,
            p.padding,
        ];
        if fields.iter().any(|&f| f > MAX_FIELD) {
            return Err(Error::config(
                op,
                format!("{p:?} has a size beyond any tensor"),
            ));
        }
        p.validate()
    }

    /// [`check_conv_params`](Self::check_conv_params) for a transposed
    /// convolution; returns the convolution it is the adjoint of.
    fn check_transpose_params(&self, op: &str, p: &ConvTranspose2dParams) -> Result<Conv2dParams> {
        self.check_conv_limits(op)?;
        let fields = [
            p.batch,
            p.in_channels,
            p.out_channels,
            p.in_h,
            p.in_w,
            p.kernel,
            p.stride,
            p.padding,
            p.output_padding,
        ];
        if fields.iter().any(|&f| f > MAX_FIELD) {
            return Err(Error::config(
                op,
                format!("{p:?} has a size beyond any tensor"),
            ));
        }
        p.validate()?;
        let c = p.as_conv();
        // as_conv maps the output shape back onto the input shape; check it
        // rather than trust it, as the kernels index by it.
        if c.out_h() != p.in_h || c.out_w() != p.in_w {
            return Err(Error::Gpu(format!(
                "{op}: {p:?} is not the adjoint of a convolution (it maps back to {} x {})",
                c.out_h(),
                c.out_w()
            )));
        }
        Ok(c)
    }

    /// An error unless the adapter gives the conv kernels their workgroup
    /// size, workgroup memory and storage buffers (the backend's context
    /// checks the same minimums when it opens the device).
    fn check_conv_limits(&self, op: &str) -> Result<()> {
        let l = &self.ctx.limits;
        if l.max_compute_invocations_per_workgroup < THREADS
            || l.max_compute_workgroup_size_x < THREADS
            || l.max_compute_workgroup_size_y < 16
            || l.max_compute_workgroup_storage_size < WORKGROUP_BYTES
            || l.max_storage_buffers_per_shader_stage < STORAGE_BUFFERS
        {
            return Err(Error::Gpu(format!(
                "{op}: adapter {} is too small for the conv kernels: {} invocations per \
                 workgroup, workgroup size {} x {}, {} bytes of workgroup memory and {} storage \
                 buffers per stage ({THREADS}, {THREADS} x 16, {WORKGROUP_BYTES} and \
                 {STORAGE_BUFFERS} needed)",
                self.ctx.adapter_name(),
                l.max_compute_invocations_per_workgroup,
                l.max_compute_workgroup_size_x,
                l.max_compute_workgroup_size_y,
                l.max_compute_workgroup_storage_size,
                l.max_storage_buffers_per_shader_stage,
            )));
        }
        Ok(())
    }

    /// Records one implicit-GEMM dispatch of `kernel` for convolution `c`:
    /// operand buffers `a` and `b`, output `out`, and a bias added in the
    /// epilogue when given (forward and backward-input only). One workgroup
    /// per 32 x 32 output tile; row tiles beyond the per-dimension limit
    /// continue along z.
    fn record_conv_gemm(
        &mut self,
        kernel: Kernel,
        c: &Conv2dParams,
        a: Tensor,
        b: Tensor,
        bias: Option<Tensor>,
        out: Tensor,
    ) -> Result<()> {
        let to_u32 = |v: usize| {
            u32::try_from(v)
                .map_err(|_| Error::Gpu(format!("{}: {c:?} is too large", kernel.entry_point())))
        };
        let positions = c.out_h() * c.out_w();
        let kk = c.kernel * c.kernel;
        // The sizes below are at most a checked tensor length.
        let (m, n, k) = match kernel {
            Kernel::Conv2dForward => (c.batch * positions, c.out_channels, c.in_channels * kk),
            Kernel::Conv2dBackwardInput => (
                c.batch * c.in_h * c.in_w,
                c.in_channels,
                c.out_channels * kk,
            ),
            _ => (c.out_channels, c.in_channels * kk, c.batch * positions),
        };
        let u = ConvParams {
            batch: to_u32(c.batch)?,
            in_c: to_u32(c.in_channels)?,
            out_c: to_u32(c.out_channels)?,
            in_h: to_u32(c.in_h)?,
            in_w: to_u32(c.in_w)?,
            out_h: to_u32(c.out_h())?,
            out_w: to_u32(c.out_w())?,
            ksize: to_u32(c.kernel)?,
            stride: to_u32(c.stride)?,
            padding: to_u32(c.padding)?,
            m: to_u32(m)?,
            n: to_u32(n)?,
            k: to_u32(k)?,
            has_bias: u32::from(bias.is_some()),
            pad: [0; 2],
        };
        let max = self.ctx.limits.max_compute_workgroups_per_dimension.max(1);
        let row_tiles = u.m.div_ceil(TILE);
        let y = row_tiles.min(max);
        let z = row_tiles.div_ceil(y.max(1));
        let buffers = [
            Buf::Tensor(a),
            Buf::Tensor(b),
            Buf::Tensor(bias.unwrap_or(b)),
            Buf::Tensor(out),
        ];
        let groups = (u.n.div_ceil(TILE), y, z);
        self.try_dispatch_on(kernel, Entry::Plain, Some(&u), &buffers, groups)
    }

    /// Records dbias `[channels]` = the sum of dy `[batch, channels,
    /// spatial]` over batch and positions: one workgroup per channel (each
    /// takes every `max`-th channel past the per-dimension limit).
    fn record_bias_grad(
        &mut self,
        batch: usize,
        channels: usize,
        spatial: usize,
        dy: Tensor,
        dbias: Tensor,
    ) -> Result<()> {
        let to_u32 = |v: usize| {
            u32::try_from(v).map_err(|_| Error::Gpu("conv2d_bias_grad: too large".into()))
        };
        let u = ConvParams {
            batch: to_u32(batch)?,
            n: to_u32(channels)?,
            k: to_u32(spatial)?,
            ..Default::default()
        };
        let max = self.ctx.limits.max_compute_workgroups_per_dimension.max(1);
        let buffers = [
            Buf::Tensor(dy),
            Buf::Tensor(dy),
            Buf::Tensor(dy),
            Buf::Tensor(dbias),
        ];
        let groups = (u.n.min(max), 1, 1);
        self.try_dispatch_on(
            Kernel::Conv2dBiasGrad,
            Entry::Plain,
            Some(&u),
            &buffers,
            groups,
        )
    }
}
