//! The CPU reference backend: plain loops over row-major buffers, shapes in
//! comments. It defines what every op means; the GPU backend is tested against
//! it, and it is itself tested against finite differences (`tests/gradients.rs`).
//! Matrix products go through `matrixmultiply::sgemm`, which reads strided
//! (and so transposed) operands in place.

pub mod batch_norm;
pub mod conv;
mod ops;

use std::borrow::Cow;

use super::{Backend, CeSlots, Clock, Dropout, LossSlots, Mat, Tensor};
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

impl CpuBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the output tensor out of the table so inputs can be borrowed
    /// beside it; [`put`](Self::put) returns it.
    fn take(&mut self, t: Tensor) -> Vec<f32> {
        std::mem::take(&mut self.tensors[t.id as usize])
    }

    fn put(&mut self, t: Tensor, data: Vec<f32>) {
        self.tensors[t.id as usize] = data;
    }

    /// A tensor's contents, borrowed in place; copied only when it is also
    /// the output being written (then taken out of the table).
    fn input<'a>(&'a self, t: Tensor, out: Tensor, out_data: &[f32]) -> Cow<'a, [f32]> {
        if t == out {
            Cow::Owned(out_data.to_vec())
        } else {
            Cow::Borrowed(&self.tensors[t.id as usize])
        }
    }

    fn get(&self, t: Tensor) -> &[f32] {
        &self.tensors[t.id as usize]
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
        ops::activation_backward(
            self.get(dy.tensor),
            dy,
            self.get(y.tensor),
            y,
            act,
            dropout,
            self.clock,
            &mut dz,
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
        self.tensors[t.id as usize].copy_from_slice(data);
        Ok(())
    }

    fn read(&mut self, t: Tensor) -> Result<Vec<f32>> {
        Ok(self.tensors[t.id as usize].clone())
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
        let s = &mut self.tensors[stats.id as usize];
        s[slots.loss as usize] += sums.loss;
        if let Some(slot) = slots.prob_first {
            s[slot as usize] += sums.mean_prob_first;
        }
        if let Some(slot) = slots.prob_second {
            s[slot as usize] += sums.mean_prob_second;
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
