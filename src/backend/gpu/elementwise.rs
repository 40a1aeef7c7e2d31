//! The element-wise activation ops: [`Backend::activation_forward`] and
//! [`Backend::activation_backward`] on the GPU, one thread per element of the
//! view (`shaders/elementwise.wgsl`), on a 2-D grid of workgroups capped at
//! the adapter's per-dimension limit as every one-dimensional kernel. The
//! activation and the dropout mask are those of the linear ops' epilogue and
//! dz (the same WGSL helpers, the same mask index `r * cols + c`), so an
//! activation split off a product computes what the fused one does. Against
//! the CPU: the mask is the same bit for bit; identity, ReLU and LeakyReLU
//! are bit for bit too where the adapter divides as IEEE does (by `1 - p`;
//! WGSL allows 2.5 ulp), sigmoid and tanh within a few ulp (exp, tanh).
//!
//! Misuse (a view outside its tensor, shapes that disagree, a forward output
//! that overlaps its input, a backward output that shares a tensor with an
//! input) is checked on the host and becomes the pending error; the op then
//! records nothing.
//!
//! [`Backend::activation_forward`]: crate::backend::Backend::activation_forward
//! [`Backend::activation_backward`]: crate::backend::Backend::activation_backward

use super::kernels::Kernel;
use super::params::ElementwiseParams;
use super::record::Buf;
use super::GpuBackend;
use crate::backend::{Dropout, Mat};
use crate::model::Activation;

impl GpuBackend {
    /// y = dropout(act(x)), x and y R x C views of different tensors.
    pub(super) fn record_activation_forward(
        &mut self,
        x: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        y: Mat,
    ) {
        let op = "activation_forward";
        if !self.check_mat(x, op, "x")
            || !self.check_mat(y, op, "y")
            || !self.check(x.rows == y.rows && x.cols == y.cols, op, || {
                format!("x is {} x {}, y is {} x {}", x.rows, x.cols, y.rows, y.cols)
            })
            || !self.check(!y.overlaps(&x), op, || {
                "y overlaps x (views of one tensor must lie in disjoint element ranges)".into()
            })
        {
            return;
        }
        let p = ElementwiseParams {
            rows: y.rows,
            cols: y.cols,
            a_off: x.offset,
            a_stride: x.stride,
            b_off: y.offset,
            b_stride: y.stride,
            ..Self::elementwise_params(act, dropout)
        };
        let buffers = [
            Buf::Clock,
            Buf::Tensor(x.tensor),
            Buf::Tensor(y.tensor),
            Buf::Tensor(y.tensor),
        ];
        let threads = u64::from(p.rows) * u64::from(p.cols);
        self.dispatch_1d(Kernel::ActivationForward, &p, &buffers, threads);
    }

    /// dx = dy * dact(y), dy, y and dx R x C views, dx of a tensor of its own.
    pub(super) fn record_activation_backward(
        &mut self,
        dy: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        dx: Mat,
    ) {
        let op = "activation_backward";
        if !self.check_mat(dy, op, "dy")
            || !self.check_mat(y, op, "y")
            || !self.check_mat(dx, op, "dx")
            || !self.check(
                (dy.rows, dy.cols) == (y.rows, y.cols) && (dx.rows, dx.cols) == (y.rows, y.cols),
                op,
                || {
                    format!(
                        "dy is {} x {}, y is {} x {}, dx is {} x {}",
                        dy.rows, dy.cols, y.rows, y.cols, dx.rows, dx.cols
                    )
                },
            )
            || !self.check(
                dx.tensor.id != dy.tensor.id && dx.tensor.id != y.tensor.id,
                op,
                || "dx must be a tensor of its own (not dy's or y's)".into(),
            )
        {
            return;
        }
        let p = ElementwiseParams {
            rows: y.rows,
            cols: y.cols,
            a_off: dy.offset,
            a_stride: dy.stride,
            b_off: y.offset,
            b_stride: y.stride,
            d_off: dx.offset,
            d_stride: dx.stride,
            ..Self::elementwise_params(act, dropout)
        };
        let buffers = [
            Buf::Clock,
            Buf::Tensor(dy.tensor),
            Buf::Tensor(y.tensor),
            Buf::Tensor(dx.tensor),
        ];
        let threads = u64::from(p.rows) * u64::from(p.cols);
        self.dispatch_1d(Kernel::ActivationBackward, &p, &buffers, threads);
    }

    /// The activation and dropout fields, as the linear ops fill theirs.
    pub(super) fn elementwise_params(
        act: Activation,
        dropout: Option<Dropout>,
    ) -> ElementwiseParams {
        let mut p = ElementwiseParams {
            act: act.code(),
            slope: act.slope(),
            keep_prob: 1.0,
            ..Default::default()
        };
        if let Some(d) = dropout {
            p.dropout = 1;
            p.threshold = crate::rng::dropout_threshold(d.p);
            p.stream = d.stream;
            p.keep_prob = 1.0 - d.p;
        }
        p
    }
}
