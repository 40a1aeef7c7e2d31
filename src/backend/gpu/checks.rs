//! Host-side checks of an op's arguments: a handle of another backend, a view
//! outside its tensor, shapes that disagree. A failed check records the first
//! misuse as the pending error (returned by the next flush, read or clock) and
//! the op records nothing.

use super::GpuBackend;
use crate::backend::{Mat, Tensor};
use crate::error::{Error, Result};
use crate::model::LayerSlot;

/// An op's argument as the checks see it: its name, the tensor, and the
/// length its shape needs (None where that length overflows).
pub(super) type Arg = (&'static str, Tensor, Option<usize>);

impl GpuBackend {
    /// Checks, for the ops that return their errors at once (convolutions,
    /// batch norm), that every tensor belongs to this backend and has the
    /// length its shape needs (None: a length that overflowed), and that no
    /// output is also another argument.
    pub(super) fn check_args(&self, op: &str, inputs: &[Arg], outputs: &[Arg]) -> Result<()> {
        for &(name, t, len) in inputs.iter().chain(outputs) {
            self.tensor_error(t, op, name)?;
            if len != Some(t.len as usize) {
                let needed = len.map_or("more than any tensor holds".into(), |l| l.to_string());
                return Err(Error::Gpu(format!(
                    "{op}: {name} has {} elements, its shape needs {needed}",
                    t.len
                )));
            }
        }
        for (i, &(name, t, _)) in outputs.iter().enumerate() {
            let others = inputs.iter().chain(outputs.iter().take(i));
            if let Some((other, _, _)) = others.into_iter().find(|a| a.1.id == t.id) {
                return Err(Error::Gpu(format!(
                    "{op}: {name} is also {other}: an output must be a tensor of its own"
                )));
            }
        }
        Ok(())
    }

    /// An error unless `t` is a tensor of this backend whose handle length
    /// is within its buffer (a [`Tensor::prefix`] names fewer elements, a
    /// forged handle may name more).
    pub(super) fn tensor_error(&self, t: Tensor, op: &str, what: &str) -> Result<()> {
        match self.tensors.get(t.id as usize) {
            None => Err(Error::Gpu(format!(
                "{op}: {what} is not a tensor of this backend"
            ))),
            Some(b) if u64::from(t.len) > b.elements => Err(Error::Gpu(format!(
                "{op}: {what} is a handle of {} elements to a tensor of {}",
                t.len, b.elements
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Records the first misuse; the op that found it records nothing.
    pub(super) fn fail(&mut self, message: String) {
        self.fail_with(Error::Gpu(message));
    }

    /// Records `e` as the pending error unless one is pending already.
    pub(super) fn fail_with(&mut self, e: Error) {
        if self.pending_error.is_none() {
            self.pending_error = Some(e);
        }
    }

    /// Turns the error of an op that returns one (the `try_*` convolution
    /// and batch-norm methods) into the pending error.
    pub(super) fn pend(&mut self, r: Result<()>) {
        if let Err(e) = r {
            self.fail_with(e);
        }
    }

    /// Checks that a tensor handle belongs to this backend and lies within
    /// its buffer.
    pub(super) fn check_tensor(&mut self, t: Tensor, op: &str, what: &str) -> bool {
        match self.tensor_error(t, op, what) {
            Ok(()) => true,
            Err(e) => {
                self.fail_with(e);
                false
            }
        }
    }

    /// Checks that every element of the view lies inside its tensor.
    pub(super) fn check_mat(&mut self, m: Mat, op: &str, what: &str) -> bool {
        if !self.check_tensor(m.tensor, op, what) {
            return false;
        }
        if m.rows == 0 || m.cols == 0 {
            return true;
        }
        let last =
            u64::from(m.offset) + u64::from(m.rows - 1) * u64::from(m.stride) + u64::from(m.cols);
        if (m.rows > 1 && m.cols > m.stride) || last > u64::from(m.tensor.len) {
            self.fail(format!(
                "{op}: {what} ({} x {} at offset {}, stride {}) does not fit its tensor of {} elements",
                m.rows, m.cols, m.offset, m.stride, m.tensor.len
            ));
            return false;
        }
        true
    }

    /// Checks a shape condition of an op.
    pub(super) fn check(&mut self, ok: bool, op: &str, message: impl FnOnce() -> String) -> bool {
        if !ok {
            self.fail(format!("{op}: {}", message()));
        }
        ok
    }

    /// Checks a layer slot against its parameter tensor.
    pub(super) fn check_layer(&mut self, params: Tensor, layer: LayerSlot, op: &str) -> bool {
        if !self.check_tensor(params, op, "the parameter tensor") {
            return false;
        }
        let end_w = layer.weight + layer.in_dim * layer.out_dim;
        let end_b = layer.bias + layer.out_dim;
        self.check(
            end_w <= params.len as usize && end_b <= params.len as usize,
            op,
            || {
                format!(
                    "layer ({} -> {}, weight at {}, bias at {}) does not fit the {} parameters",
                    layer.in_dim, layer.out_dim, layer.weight, layer.bias, params.len
                )
            },
        )
    }

    /// Checks the (dy, y) pair of a backward op.
    pub(super) fn check_backward(&mut self, dy: Mat, y: Mat, layer: LayerSlot, op: &str) -> bool {
        self.check_mat(dy, op, "dy")
            && self.check_mat(y, op, "y")
            && self.check(
                dy.rows == y.rows && dy.cols == y.cols && y.cols as usize == layer.out_dim,
                op,
                || {
                    format!(
                        "dy is {} x {} and y is {} x {}, the layer has {} outputs",
                        dy.rows, dy.cols, y.rows, y.cols, layer.out_dim
                    )
                },
            )
    }

    /// Whether `out` is a tensor of its own, not one of `inputs`' (else the
    /// pending error).
    pub(super) fn check_own(&mut self, op: &str, out: Tensor, inputs: &[Tensor]) -> bool {
        let own = inputs.iter().all(|t| t.id != out.id);
        self.check(own, op, || {
            "the output must be a tensor of its own (not an input's)".into()
        })
    }

    /// Whether every view has `shape` (rows, cols) (else the pending error).
    pub(super) fn check_shapes(
        &mut self,
        op: &str,
        shape: (u32, u32),
        views: &[(&str, Mat)],
    ) -> bool {
        for (name, m) in views {
            if !self.check_mat(*m, op, name) {
                return false;
            }
        }
        let bad = views.iter().find(|(_, m)| (m.rows, m.cols) != shape);
        self.check(bad.is_none(), op, || {
            let (name, m) = bad.expect("checked above");
            format!(
                "{name} is {} x {}, not {} x {}",
                m.rows, m.cols, shape.0, shape.1
            )
        })
    }
}
