//! The CPU reference backend: plain loops over row-major buffers, shapes in
//! comments. It defines what every op means; the GPU backend is tested against
//! it, and it is itself tested against finite differences (`tests/gradients.rs`).
//! Matrix products read strided (and so transposed) operands in place: the
//! MLP ops through `matrixmultiply::sgemm` (their numbers are pinned to it),
//! the layer ops through the `gemm` crate, whose AVX-512 kernels are about
//! 1.5 times faster on this project's machines. Large elementwise ops,
//! im2row, row2im and batch norm split their rows over rayon's pool.

pub mod batch_norm;
pub mod conv;
mod ops;
pub mod penalty;

use std::borrow::Cow;

use super::conv_params::{BatchNormParams, Conv2dParams, ConvTranspose2dParams};
use super::{Backend, BatchNormTensors, CeSlots, Clock, Dropout, LossSlots, Mat, Tensor};
use crate::error::{Error, Result};
use crate::model::{Activation, AdamSettings, LayerSlot};

/// The CPU reference backend. Tensors are plain vectors.
#[derive(Default)]
pub struct CpuBackend {
    tensors: Vec<Vec<f32>>,
    images: Vec<u8>,
    labels: Vec<u8>,
    pixels: usize,
    order: Vec<u32>,
    clock: Clock,
    /// Scratch for dz of the backward ops, reused from call to call.
    dz: Vec<f32>,
}

/// A tensor taken out of [`CpuBackend`]'s table for writing: the whole
/// buffer, seen as its handle's first `len` elements.
struct Taken {
    data: Vec<f32>,
    len: usize,
}

impl std::ops::Deref for Taken {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.data[..self.len]
    }
}

impl std::ops::DerefMut for Taken {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.data[..self.len]
    }
}

impl CpuBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a row loss's sums into `stats` per `slots`.
    fn add_loss_sums(&mut self, stats: Tensor, slots: LossSlots, sums: &ops::BceSums) {
        let s = &mut self.tensors[stats.id as usize];
        s[slots.loss as usize] += sums.loss;
        if let Some(slot) = slots.prob_first {
            s[slot as usize] += sums.mean_prob_first;
        }
        if let Some(slot) = slots.prob_second {
            s[slot as usize] += sums.mean_prob_second;
        }
    }

    /// Takes the output tensor out of the table so inputs can be borrowed
    /// beside it; [`put`](Self::put) returns it. The [`Taken`] derefs to the
    /// handle's first `t.len` elements (a [`Tensor::prefix`] leaves the rest
    /// of the buffer untouched, and uncopied).
    fn take(&mut self, t: Tensor) -> Taken {
        let data = std::mem::take(&mut self.tensors[t.id as usize]);
        assert!(
            t.len as usize <= data.len(),
            "a handle of {} elements to a tensor of {} (or one taken twice)",
            t.len,
            data.len()
        );
        Taken {
            data,
            len: t.len as usize,
        }
    }

    fn put(&mut self, t: Tensor, taken: Taken) {
        self.tensors[t.id as usize] = taken.data;
    }

    /// A tensor's contents, borrowed in place; copied only when it is also
    /// the output being written (then taken out of the table, as `out_data`).
    fn input<'a>(&'a self, t: Tensor, out: Tensor, out_data: &Taken) -> Cow<'a, [f32]> {
        if t.id == out.id {
            Cow::Owned(out_data.data[..t.len as usize].to_vec())
        } else {
            Cow::Borrowed(self.get(t))
        }
    }

    /// The handle's `t.len` elements.
    fn get(&self, t: Tensor) -> &[f32] {
        &self.tensors[t.id as usize][..t.len as usize]
    }

    /// Panics unless every output is a tensor of its own (no other argument
    /// shares its buffer), as the GPU backend requires.
    fn assert_own(op: &str, inputs: &[Tensor], outputs: &[Tensor]) {
        for (i, o) in outputs.iter().enumerate() {
            let others = inputs.iter().chain(&outputs[..i]);
            assert!(
                others.into_iter().all(|t| t.id != o.id),
                "{op}: an output must be a tensor of its own"
            );
        }
    }

    /// dz [B, out] = dy * act'(y) (and the dropout mask), as a dense matrix
    /// in the reused scratch buffer; give it back with `self.dz = dz`.
    fn activation_grad(
        &mut self,
        dy: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
    ) -> Vec<f32> {
        let mut dz = std::mem::take(&mut self.dz);
        dz.resize(y.rows as usize * y.cols as usize, 0.0);
        let dense = Mat {
            offset: 0,
            stride: y.cols,
            ..y
        };
        ops::activation_backward(
            self.get(dy.tensor),
            dy,
            self.get(y.tensor),
            y,
            act,
            dropout,
            self.clock,
            &mut dz,
            dense,
        );
        dz
    }
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        "cpu (reference)".to_string()
    }

    fn alloc(&mut self, len: usize) -> Result<Tensor> {
        let len32 = u32::try_from(len)
            .map_err(|_| Error::config("tensor size", format!("{len} elements is too many")))?;
        self.tensors.push(vec![0.0; len]);
        Ok(Tensor {
            id: (self.tensors.len() - 1) as u32,
            len: len32,
        })
    }

    fn write(&mut self, t: Tensor, data: &[f32]) -> Result<()> {
        assert_eq!(data.len(), t.len as usize, "write: length mismatch");
        self.tensors[t.id as usize][..t.len as usize].copy_from_slice(data);
        Ok(())
    }

    fn read(&mut self, t: Tensor) -> Result<Vec<f32>> {
        Ok(self.get(t).to_vec())
    }

    fn upload_dataset(&mut self, images: &[u8], labels: &[u8], pixels: usize) -> Result<()> {
        self.images = images.to_vec();
        self.labels = labels.to_vec();
        self.pixels = pixels;
        Ok(())
    }

    fn set_epoch_order(&mut self, order: &[u32]) -> Result<()> {
        self.order = order.to_vec();
        Ok(())
    }

    fn set_clock(&mut self, clock: Clock) -> Result<()> {
        self.clock = clock;
        Ok(())
    }

    fn clock(&mut self) -> Result<Clock> {
        Ok(self.clock)
    }

    fn gather_batch(&mut self, x: Mat, onehot: Option<Mat>, scale: f32, shift: f32) {
        let batch = x.rows as usize;
        let first = self.clock.cursor as usize * batch;
        let mut xd = self.take(x.tensor);
        for r in 0..batch {
            let image = self.order[first + r] as usize;
            let pixels = &self.images[image * self.pixels..(image + 1) * self.pixels];
            for c in 0..x.cols as usize {
                xd[x.at(r, c)] = pixels[c] as f32 * scale + shift;
            }
        }
        self.put(x.tensor, xd);
        if let Some(h) = onehot {
            let mut hd = self.take(h.tensor);
            for r in 0..batch {
                let label = self.labels[self.order[first + r] as usize] as usize;
                for c in 0..h.cols as usize {
                    hd[h.at(r, c)] = if c == label { 1.0 } else { 0.0 };
                }
            }
            self.put(h.tensor, hd);
        }
    }

    fn normal_noise(&mut self, out: Mat, stream: u32) {
        let Clock { seed, step, .. } = self.clock;
        let mut d = self.take(out.tensor);
        for r in 0..out.rows as usize {
            for c in 0..out.cols as usize {
                let index = (r * out.cols as usize + c) as u32;
                d[out.at(r, c)] = crate::rng::normal(seed, stream, step, index);
            }
        }
        self.put(out.tensor, d);
    }

    fn random_onehot(&mut self, out: Mat, also: Option<Mat>, stream: u32) {
        let Clock { seed, step, .. } = self.clock;
        for m in std::iter::once(out).chain(also) {
            let mut d = self.take(m.tensor);
            for r in 0..m.rows as usize {
                let label = crate::rng::random_u32(seed, stream, step, r as u32) % m.cols;
                for c in 0..m.cols as usize {
                    d[m.at(r, c)] = if c as u32 == label { 1.0 } else { 0.0 };
                }
            }
            self.put(m.tensor, d);
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
        let mut yd = self.take(y.tensor);
        let xd = self.input(x.tensor, y.tensor, &yd);
        let pd = self.input(params, y.tensor, &yd);
        ops::linear_forward(&xd, x, &pd, layer, act, dropout, self.clock, &mut yd, y);
        self.put(y.tensor, yd);
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
        let dz = self.activation_grad(dy, y, act, dropout);
        let mut dxd = self.take(dx.tensor);
        let pd = self.input(params, dx.tensor, &dxd);
        ops::linear_backward_input(&dz, &pd, layer, &mut dxd, dx);
        self.put(dx.tensor, dxd);
        self.dz = dz;
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
        let dz = self.activation_grad(dy, y, act, dropout);
        let mut gd = self.take(grads);
        let xd = self.input(x.tensor, grads, &gd);
        ops::linear_backward_params(&dz, &xd, x, layer, &mut gd);
        self.put(grads, gd);
        self.dz = dz;
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
        let mut dd = self.take(dlogits.tensor);
        let ld = self.input(logits.tensor, dlogits.tensor, &dd);
        let sums = ops::bce_with_logits(
            &ld,
            logits,
            &mut dd,
            dlogits,
            split,
            target_first,
            target_second,
            weight,
        );
        self.put(dlogits.tensor, dd);
        self.add_loss_sums(stats, slots, &sums);
    }

    fn critic_loss(
        &mut self,
        p: &crate::model::critic_loss::CriticLossParams,
        logits: Mat,
        dlogits: Mat,
        stats: Tensor,
        slots: LossSlots,
    ) {
        let mut dd = self.take(dlogits.tensor);
        let ld = self.input(logits.tensor, dlogits.tensor, &dd);
        let sums = ops::critic_loss(p, &ld, logits, &mut dd, dlogits);
        self.put(dlogits.tensor, dd);
        self.add_loss_sums(stats, slots, &sums);
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
        let mut dd = self.take(dlogits.tensor);
        let ld = self.input(logits.tensor, dlogits.tensor, &dd);
        let td = self.input(targets.tensor, dlogits.tensor, &dd);
        let sums =
            ops::softmax_cross_entropy((&ld, logits), (&td, targets), (&mut dd, dlogits), weight);
        self.put(dlogits.tensor, dd);
        let s = &mut self.tensors[stats.id as usize];
        s[slots.loss as usize] += sums.loss;
        if let Some(slot) = slots.correct {
            s[slot as usize] += sums.correct;
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
        let t = self.clock.step + 1;
        let mut p = self.take(params);
        let mut md = self.take(m);
        let mut vd = self.take(v);
        ops::adam_update(&mut p, self.get(grads), &mut md, &mut vd, adam, t);
        self.put(params, p);
        self.put(m, md);
        self.put(v, vd);
    }

    fn rmsprop_update(
        &mut self,
        params: Tensor,
        grads: Tensor,
        sq: Tensor,
        settings: crate::model::RmsPropSettings,
    ) {
        let mut p = self.take(params);
        let mut sd = self.take(sq);
        ops::rmsprop_update(&mut p, self.get(grads), &mut sd, settings);
        self.put(params, p);
        self.put(sq, sd);
    }

    fn clamp_values(&mut self, t: Tensor, limit: f32) {
        let mut d = self.take(t);
        d.iter_mut().for_each(|v| *v = v.clamp(-limit, limit));
        self.put(t, d);
    }

    fn ema_update(&mut self, avg: Tensor, values: Tensor, decay: f32) {
        let mut a = self.take(avg);
        ops::ema_update(&mut a, self.get(values), decay);
        self.put(avg, a);
    }

    fn add_scaled(&mut self, dst: Tensor, src: Tensor, alpha: f32) {
        assert_eq!(dst.len, src.len, "add_scaled: lengths differ");
        let mut d = self.take(dst);
        let sd = self.input(src, dst, &d);
        ops::add_scaled(&mut d, &sd, alpha);
        self.put(dst, d);
    }

    fn interpolate_rows(&mut self, real: Mat, fake: Mat, stream: u32, out: Mat) {
        Self::assert_own(
            "interpolate_rows",
            &[real.tensor, fake.tensor],
            &[out.tensor],
        );
        assert!(
            (real.rows, real.cols) == (out.rows, out.cols)
                && (fake.rows, fake.cols) == (out.rows, out.cols),
            "interpolate_rows: real, fake and out must have the same shape"
        );
        let mut od = self.take(out.tensor);
        penalty::interpolate_rows(
            (self.get(real.tensor), real),
            (self.get(fake.tensor), fake),
            stream,
            self.clock,
            &mut od,
            out,
        );
        self.put(out.tensor, od);
    }

    fn gradient_penalty(&mut self, grad: Mat, weight: f32, v: Mat, stats: Tensor, slot: u32) {
        Self::assert_own("gradient_penalty", &[grad.tensor, stats], &[v.tensor]);
        assert!(
            (grad.rows, grad.cols) == (v.rows, v.cols),
            "gradient_penalty: grad and v must have the same shape"
        );
        let mut vd = self.take(v.tensor);
        let penalty = penalty::gradient_penalty((self.get(grad.tensor), grad), weight, &mut vd, v);
        self.put(v.tensor, vd);
        self.tensors[stats.id as usize][slot as usize] += penalty;
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
        Self::assert_own(
            "activation_curvature",
            &[u.tensor, t.tensor, y.tensor],
            &[out.tensor],
        );
        let shape = (y.rows, y.cols);
        assert!(
            (u.rows, u.cols) == shape && (t.rows, t.cols) == shape && (out.rows, out.cols) == shape,
            "activation_curvature: u, t, y and out must have the same shape"
        );
        let mut od = self.take(out.tensor);
        penalty::activation_curvature(
            (self.get(u.tensor), u),
            (self.get(t.tensor), t),
            (self.get(y.tensor), y),
            act,
            dropout,
            self.clock,
            &mut od,
            out,
        );
        self.put(out.tensor, od);
    }

    fn conv2d_forward(
        &mut self,
        p: &Conv2dParams,
        x: Tensor,
        w: Tensor,
        bias: Option<Tensor>,
        y: Tensor,
    ) {
        let inputs: Vec<Tensor> = [x, w].into_iter().chain(bias).collect();
        Self::assert_own("conv2d_forward", &inputs, &[y]);
        let mut yd = self.take(y);
        let b = bias.map(|b| self.get(b));
        conv::conv2d_forward(p, self.get(x), self.get(w), b, &mut yd);
        self.put(y, yd);
    }

    fn conv2d_backward_input(&mut self, p: &Conv2dParams, dy: Tensor, w: Tensor, dx: Tensor) {
        Self::assert_own("conv2d_backward_input", &[dy, w], &[dx]);
        let mut dxd = self.take(dx);
        conv::conv2d_backward_input(p, self.get(dy), self.get(w), &mut dxd);
        self.put(dx, dxd);
    }

    fn conv2d_backward_params(
        &mut self,
        p: &Conv2dParams,
        x: Tensor,
        dy: Tensor,
        dw: Tensor,
        dbias: Option<Tensor>,
    ) {
        let outputs: Vec<Tensor> = [dw].into_iter().chain(dbias).collect();
        Self::assert_own("conv2d_backward_params", &[x, dy], &outputs);
        let mut dwd = self.take(dw);
        let mut dbd = dbias.map(|b| self.take(b));
        conv::conv2d_backward_params(p, self.get(x), self.get(dy), &mut dwd, dbd.as_deref_mut());
        self.put(dw, dwd);
        if let (Some(b), Some(d)) = (dbias, dbd) {
            self.put(b, d);
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
        let inputs: Vec<Tensor> = [x, w].into_iter().chain(bias).collect();
        Self::assert_own("conv_transpose2d_forward", &inputs, &[y]);
        let mut yd = self.take(y);
        let b = bias.map(|b| self.get(b));
        conv::conv_transpose2d_forward(p, self.get(x), self.get(w), b, &mut yd);
        self.put(y, yd);
    }

    fn conv_transpose2d_backward_input(
        &mut self,
        p: &ConvTranspose2dParams,
        dy: Tensor,
        w: Tensor,
        dx: Tensor,
    ) {
        Self::assert_own("conv_transpose2d_backward_input", &[dy, w], &[dx]);
        let mut dxd = self.take(dx);
        conv::conv_transpose2d_backward_input(p, self.get(dy), self.get(w), &mut dxd);
        self.put(dx, dxd);
    }

    fn conv_transpose2d_backward_params(
        &mut self,
        p: &ConvTranspose2dParams,
        x: Tensor,
        dy: Tensor,
        dw: Tensor,
        dbias: Option<Tensor>,
    ) {
        let outputs: Vec<Tensor> = [dw].into_iter().chain(dbias).collect();
        Self::assert_own("conv_transpose2d_backward_params", &[x, dy], &outputs);
        let mut dwd = self.take(dw);
        let mut dbd = dbias.map(|b| self.take(b));
        conv::conv_transpose2d_backward_params(
            p,
            self.get(x),
            self.get(dy),
            &mut dwd,
            dbd.as_deref_mut(),
        );
        self.put(dw, dwd);
        if let (Some(b), Some(d)) = (dbias, dbd) {
            self.put(b, d);
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
        let outputs = [
            y,
            bn.saved_mean,
            bn.saved_inv_std,
            bn.running_mean,
            bn.running_var,
        ];
        Self::assert_own(
            "batch_norm_forward_train",
            &[x, bn.gamma, bn.beta],
            &outputs,
        );
        let mut yd = self.take(y);
        let mut mean = self.take(bn.saved_mean);
        let mut inv_std = self.take(bn.saved_inv_std);
        let mut rm = self.take(bn.running_mean);
        let mut rv = self.take(bn.running_var);
        batch_norm::batch_norm_forward_train(
            p,
            self.get(x),
            self.get(bn.gamma),
            self.get(bn.beta),
            &mut yd,
            &mut mean,
            &mut inv_std,
            &mut rm,
            &mut rv,
        );
        for v in yd.iter_mut() {
            *v = act.apply(*v);
        }
        self.put(y, yd);
        self.put(bn.saved_mean, mean);
        self.put(bn.saved_inv_std, inv_std);
        self.put(bn.running_mean, rm);
        self.put(bn.running_var, rv);
    }

    fn batch_norm_forward_eval(
        &mut self,
        p: &BatchNormParams,
        act: Activation,
        x: Tensor,
        bn: &BatchNormTensors,
        y: Tensor,
    ) {
        let inputs = [x, bn.gamma, bn.beta, bn.running_mean, bn.running_var];
        Self::assert_own("batch_norm_forward_eval", &inputs, &[y]);
        let mut yd = self.take(y);
        batch_norm::batch_norm_forward_eval(
            p,
            self.get(x),
            self.get(bn.gamma),
            self.get(bn.beta),
            self.get(bn.running_mean),
            self.get(bn.running_var),
            &mut yd,
        );
        for v in yd.iter_mut() {
            *v = act.apply(*v);
        }
        self.put(y, yd);
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
        let inputs = [x, dy, bn.gamma, bn.saved_mean, bn.saved_inv_std];
        Self::assert_own("batch_norm_backward", &inputs, &[dx, dgamma, dbeta]);
        let mut dxd = self.take(dx);
        let mut dg = self.take(dgamma);
        let mut db = self.take(dbeta);
        batch_norm::batch_norm_backward(
            p,
            self.get(x),
            self.get(dy),
            self.get(bn.gamma),
            self.get(bn.saved_mean),
            self.get(bn.saved_inv_std),
            &mut dxd,
            &mut dg,
            &mut db,
        );
        self.put(dx, dxd);
        self.put(dgamma, dg);
        self.put(dbeta, db);
    }

    fn activation_forward(&mut self, x: Mat, act: Activation, dropout: Option<Dropout>, y: Mat) {
        assert!(!y.overlaps(&x), "activation_forward: y overlaps x");
        let mut yd = self.take(y.tensor);
        let xd = self.input(x.tensor, y.tensor, &yd);
        ops::activation_forward(&xd, x, act, dropout, self.clock, &mut yd, y);
        self.put(y.tensor, yd);
    }

    fn activation_backward(
        &mut self,
        dy: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        dx: Mat,
    ) {
        Self::assert_own("activation_backward", &[dy.tensor, y.tensor], &[dx.tensor]);
        assert!(
            (dy.rows, dy.cols) == (y.rows, y.cols) && (dx.rows, dx.cols) == (y.rows, y.cols),
            "activation_backward: dy, y and dx must have the same shape"
        );
        let mut dxd = self.take(dx.tensor);
        ops::activation_backward(
            self.get(dy.tensor),
            dy,
            self.get(y.tensor),
            y,
            act,
            dropout,
            self.clock,
            &mut dxd,
            dx,
        );
        self.put(dx.tensor, dxd);
    }

    fn finite_check(&mut self, t: Tensor, stats: Tensor, slot: u32) {
        if !ops::all_finite(self.get(t)) {
            self.tensors[stats.id as usize][slot as usize] = 1.0;
        }
    }

    fn end_step(&mut self) {
        self.clock.step += 1;
        self.clock.cursor += 1;
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}
