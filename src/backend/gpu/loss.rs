//! The ops at the end of a step's math: the losses (binary cross-entropy from
//! logits, softmax cross-entropy), the Adam update, and the finite check that
//! flags NaN or infinite values in a stats slot.

use super::kernels::Kernel;
use super::params::*;
use super::record::Buf;
use super::GpuBackend;
use crate::backend::{CeSlots, LossSlots, Mat, Tensor};
use crate::model::AdamSettings;

impl GpuBackend {
    /// The checks both row losses make: [N, 1] views of logits and
    /// dlogits, stats slots inside `stats`, and `split` at most N.
    fn check_loss_operands(
        &mut self,
        op: &str,
        logits: Mat,
        dlogits: Mat,
        split: u32,
        stats: Tensor,
        slots: LossSlots,
    ) -> bool {
        let slot_ok = |s: Option<u32>| s.is_none_or(|s| s < stats.len);
        self.check_mat(logits, op, "logits")
            && self.check_mat(dlogits, op, "dlogits")
            && self.check_tensor(stats, op, "stats")
            && self.check(
                dlogits.rows == logits.rows && logits.cols >= 1 && dlogits.cols >= 1,
                op,
                || {
                    format!(
                        "logits are {} x {}, dlogits {} x {}",
                        logits.rows, logits.cols, dlogits.rows, dlogits.cols
                    )
                },
            )
            && self.check(
                slot_ok(Some(slots.loss))
                    && slot_ok(slots.prob_first)
                    && slot_ok(slots.prob_second)
                    && split <= logits.rows,
                op,
                || format!("stats slots {slots:?} or split {split} out of range"),
            )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_bce_with_logits(
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
        if !self.check_loss_operands("bce_with_logits", logits, dlogits, split, stats, slots) {
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

    pub(super) fn record_critic_loss(
        &mut self,
        p: &crate::model::critic_loss::CriticLossParams,
        logits: Mat,
        dlogits: Mat,
        stats: Tensor,
        slots: LossSlots,
    ) {
        if !self.check_loss_operands("critic_loss", logits, dlogits, p.split, stats, slots) {
            return;
        }
        let ((first_kind, first_param), (second_kind, second_param)) =
            (p.first.code(), p.second.code());
        let params = CriticParams {
            n: logits.rows,
            split: p.split,
            first_kind,
            second_kind,
            first_param,
            second_param,
            weight: p.weight,
            l_off: logits.offset,
            l_stride: logits.stride,
            d_off: dlogits.offset,
            d_stride: dlogits.stride,
            loss_slot: slots.loss,
            first_slot: slots.prob_first.unwrap_or(NONE),
            second_slot: slots.prob_second.unwrap_or(NONE),
            pad: [0; 2],
        };
        self.dispatch(
            Kernel::CriticLoss,
            Some(&params),
            &[
                Buf::Tensor(logits.tensor),
                Buf::Tensor(dlogits.tensor),
                Buf::Tensor(stats),
            ],
            (1, 1, 1),
        );
    }

    pub(super) fn record_softmax_cross_entropy(
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

    pub(super) fn record_adam_update(
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

    pub(super) fn record_rmsprop_update(
        &mut self,
        params: Tensor,
        grads: Tensor,
        sq: Tensor,
        s: crate::model::RmsPropSettings,
    ) {
        let op = "rmsprop_update";
        if !self.check_tensor(params, op, "params")
            || !self.check_tensor(grads, op, "grads")
            || !self.check_tensor(sq, op, "sq")
            || !self.check(grads.len == params.len && sq.len == params.len, op, || {
                format!(
                    "lengths differ: params {}, grads {}, sq {}",
                    params.len, grads.len, sq.len
                )
            })
        {
            return;
        }
        let p = RmsParams {
            len: params.len,
            lr: s.lr,
            alpha: s.alpha,
            eps: s.eps,
        };
        self.dispatch_1d(
            Kernel::RmspropUpdate,
            &p,
            &[Buf::Tensor(params), Buf::Tensor(grads), Buf::Tensor(sq)],
            u64::from(params.len),
        );
    }

    pub(super) fn record_clamp_values(&mut self, t: Tensor, limit: f32) {
        if !self.check_tensor(t, "clamp_values", "values") {
            return;
        }
        let p = ClampParams {
            len: t.len,
            limit,
            pad: [0; 2],
        };
        self.dispatch_1d(Kernel::ClampValues, &p, &[Buf::Tensor(t)], u64::from(t.len));
    }

    pub(super) fn record_ema_update(&mut self, avg: Tensor, values: Tensor, decay: f32) {
        let op = "ema_update";
        if !self.check_tensor(avg, op, "avg")
            || !self.check_tensor(values, op, "values")
            || !self.check(avg.len == values.len, op, || {
                format!("lengths differ: avg {}, values {}", avg.len, values.len)
            })
        {
            return;
        }
        let p = EmaParams {
            len: avg.len,
            decay,
            pad: [0; 2],
        };
        self.dispatch_1d(
            Kernel::EmaUpdate,
            &p,
            &[Buf::Tensor(avg), Buf::Tensor(values)],
            u64::from(avg.len),
        );
    }

    pub(super) fn record_finite_check(&mut self, t: Tensor, stats: Tensor, slot: u32) {
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
}
