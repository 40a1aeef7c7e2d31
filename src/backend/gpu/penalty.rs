//! The gradient penalty's ops on the GPU (`shaders/penalty.wgsl`), and
//! `add_scaled` (`shaders/adam.wgsl`), which adds the penalty's parameter
//! gradient into the loss's: [`Backend::interpolate_rows`] and
//! [`Backend::activation_curvature`] take one thread an element on the 2-D
//! grid of the one-dimensional kernels, [`Backend::gradient_penalty`] one
//! workgroup for all rows (a fixed order of sums, as the CPU's). Against the
//! CPU: the row draws and dropout masks are bit for bit; the sums and
//! `sqrt` within a few ulp.
//!
//! Misuse (a view outside its tensor, shapes that disagree, an output that
//! shares a tensor with an input, a stats slot outside its tensor) is
//! checked on the host and becomes the pending error; the op then records
//! nothing.
//!
//! [`Backend::interpolate_rows`]: crate::backend::Backend::interpolate_rows
//! [`Backend::activation_curvature`]: crate::backend::Backend::activation_curvature
//! [`Backend::gradient_penalty`]: crate::backend::Backend::gradient_penalty

use super::kernels::Kernel;
use super::params::{AddScaledParams, CurvatureParams, InterpolateParams, PenaltyParams};
use super::record::Buf;
use super::GpuBackend;
use crate::backend::{Dropout, Mat, Tensor};
use crate::model::Activation;

impl GpuBackend {
    pub(super) fn record_add_scaled(&mut self, dst: Tensor, src: Tensor, alpha: f32) {
        let op = "add_scaled";
        if !self.check_tensor(dst, op, "dst")
            || !self.check_tensor(src, op, "src")
            || !self.check(dst.len == src.len, op, || {
                format!("lengths differ: dst {}, src {}", dst.len, src.len)
            })
            || !self.check_own(op, dst, &[src])
        {
            return;
        }
        let p = AddScaledParams {
            len: dst.len,
            alpha,
            pad: [0; 2],
        };
        self.dispatch_1d(
            Kernel::AddScaled,
            &p,
            &[Buf::Tensor(dst), Buf::Tensor(src)],
            u64::from(dst.len),
        );
    }

    pub(super) fn record_interpolate_rows(&mut self, real: Mat, fake: Mat, stream: u32, out: Mat) {
        let op = "interpolate_rows";
        let shape = (out.rows, out.cols);
        if !self.check_shapes(op, shape, &[("real", real), ("fake", fake), ("out", out)])
            || !self.check_own(op, out.tensor, &[real.tensor, fake.tensor])
        {
            return;
        }
        let p = InterpolateParams {
            rows: out.rows,
            cols: out.cols,
            real_off: real.offset,
            real_stride: real.stride,
            fake_off: fake.offset,
            fake_stride: fake.stride,
            out_off: out.offset,
            out_stride: out.stride,
            stream,
            pad: [0; 3],
        };
        let buffers = [
            Buf::Clock,
            Buf::Tensor(real.tensor),
            Buf::Tensor(fake.tensor),
            Buf::Tensor(out.tensor),
        ];
        let threads = u64::from(p.rows) * u64::from(p.cols);
        self.dispatch_1d(Kernel::InterpolateRows, &p, &buffers, threads);
    }

    pub(super) fn record_gradient_penalty(
        &mut self,
        grad: Mat,
        weight: f32,
        v: Mat,
        stats: Tensor,
        slot: u32,
    ) {
        let op = "gradient_penalty";
        if !self.check_shapes(op, (grad.rows, grad.cols), &[("grad", grad), ("v", v)])
            || !self.check_tensor(stats, op, "stats")
            || !self.check(slot < stats.len, op, || {
                format!("slot {slot} is outside the stats tensor of {}", stats.len)
            })
            || !self.check_own(op, v.tensor, &[grad.tensor, stats])
        {
            return;
        }
        let p = PenaltyParams {
            rows: grad.rows,
            cols: grad.cols,
            g_off: grad.offset,
            g_stride: grad.stride,
            v_off: v.offset,
            v_stride: v.stride,
            weight,
            slot,
        };
        let buffers = [
            Buf::Clock,
            Buf::Tensor(grad.tensor),
            Buf::Tensor(v.tensor),
            Buf::Tensor(stats),
        ];
        self.dispatch(Kernel::GradientPenalty, Some(&p), &buffers, (1, 1, 1));
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_activation_curvature(
        &mut self,
        u: Mat,
        t: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        out: Mat,
    ) {
        let op = "activation_curvature";
        let shape = (y.rows, y.cols);
        if !self.check_shapes(op, shape, &[("u", u), ("t", t), ("y", y), ("out", out)])
            || !self.check_own(op, out.tensor, &[u.tensor, t.tensor, y.tensor])
        {
            return;
        }
        // The activation and dropout fields, as the element-wise ops fill theirs.
        let e = Self::elementwise_params(act, dropout);
        let p = CurvatureParams {
            rows: y.rows,
            cols: y.cols,
            u_off: u.offset,
            u_stride: u.stride,
            t_off: t.offset,
            t_stride: t.stride,
            y_off: y.offset,
            y_stride: y.stride,
            o_off: out.offset,
            o_stride: out.stride,
            act: e.act,
            slope: e.slope,
            dropout: e.dropout,
            threshold: e.threshold,
            stream: e.stream,
            keep_prob: e.keep_prob,
        };
        let buffers = [
            Buf::Clock,
            Buf::Tensor(u.tensor),
            Buf::Tensor(t.tensor),
            Buf::Tensor(y.tensor),
            Buf::Tensor(out.tensor),
        ];
        let threads = u64::from(p.rows) * u64::from(p.cols);
        self.dispatch_1d(Kernel::ActivationCurvature, &p, &buffers, threads);
    }
}
