//! The linear layers: forward, input gradient and parameter gradients, each
//! recorded as the matmul kernel the variant picks for its product (with the
//! split kernel's reduce, or a blocked kernel's dz pass, where needed).

use super::kernels::{Kernel, MatmulKernel};
use super::params::*;
use super::record::{Buf, Entry};
use super::{grid_1d, GpuBackend, WG_1D};
use crate::backend::{Dropout, Mat, Tensor};
use crate::model::{Activation, LayerSlot};

impl GpuBackend {
    pub(super) fn record_linear_forward(
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

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_linear_backward_input(
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

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_linear_backward_params(
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

    /// Records a linear op: the matmul kernel the variant picks for its M x N
    /// output, one workgroup per output tile (and per K chunk when the split
    /// kernel chunks K over workgroups, followed by the second dispatch that
    /// adds the chunks' partial sums and runs the epilogue).
    /// `buffers` are the op's bindings 1..=5 (A second); the scratch buffer
    /// is binding 6. A backward op on a blocked kernel first writes dz into
    /// the scratch buffer (one element-wise dispatch) and the product reads
    /// A from there.
    fn dispatch_linear(&mut self, kernel: Kernel, p: &LinearParams, buffers: &[Buf]) {
        let mk = self.kernels.matmul_kernel(p.m, p.n, p.k);
        let tile = mk.tile();
        let mut p = *p;
        (p.chunks, p.chunk_len) = if mk == MatmulKernel::Split {
            MatmulKernel::split_chunks(p.m, p.n, p.k)
        } else {
            (1, 0)
        };
        if p.chunks > 1 {
            // Every chunk's M x N partial tile, then its M bias-gradient sums.
            let partials = u64::from(p.chunks) * (u64::from(p.m) * u64::from(p.n) + u64::from(p.m));
            self.ensure_scratch(partials * 4);
        }
        let mut bindings = buffers.to_vec();
        bindings.push(Buf::Scratch);
        if kernel != Kernel::LinearForward && mk.is_blocked() {
            // A large backward product: dz once into the scratch buffer, then
            // the product reads it as A instead of recomputing it per tile.
            let rows = if kernel == Kernel::LinearBackwardInput {
                p.m
            } else {
                p.k
            };
            let elements = u64::from(rows) * u64::from(p.out_cols);
            self.ensure_scratch(elements * 4);
            let (x, y) = grid_1d(
                elements,
                self.ctx.limits.max_compute_workgroups_per_dimension,
            );
            self.dispatch_on(kernel, Entry::Dz, Some(&p), &bindings, (x, y, 1));
            p.a_off = 0;
            p.a_stride = p.out_cols;
            bindings[1] = Buf::Scratch;
        }
        let groups = (p.n.div_ceil(tile), p.m.div_ceil(tile), p.chunks);
        self.dispatch_on(kernel, Entry::Matmul(mk), Some(&p), &bindings, groups);
        if p.chunks > 1 {
            let outputs = p.m * p.n;
            let groups = (outputs.div_ceil(WG_1D), 1, 1);
            self.dispatch_on(kernel, Entry::SplitReduce, Some(&p), &bindings, groups);
        }
    }

    /// Grows the split kernel's partial-sum buffer to at least `bytes`
    /// (doubling, so a run settles after its largest product). Work already
    /// recorded keeps the old buffer alive; its bind groups are forgotten.
    fn ensure_scratch(&mut self, bytes: u64) {
        if self.scratch.buffer.size() >= bytes {
            return;
        }
        let max = self.ctx.limits.max_storage_buffer_binding_size;
        let size = bytes.next_power_of_two().min(max).max(bytes);
        let old = self.scratch.uid;
        self.scratch = self.new_buffer(size, wgpu::BufferUsages::STORAGE, "split-K partial sums");
        self.forget_bindings_of(old);
    }

    fn linear_params(act: Activation, dropout: Option<Dropout>) -> LinearParams {
        let mut p = LinearParams {
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
