//! The backend trait: the ops a GAN training step needs, forward and backward,
//! named alike on the CPU reference ([`cpu`]) and the GPU backend.
//!
//! A training step (`crate::train::step`) is written once against this trait.
//! Ops take handles ([`Tensor`], [`Mat`]) to buffers the backend owns; a GPU
//! backend only *records* them, and nothing comes back to the host until
//! [`Backend::read`]. Everything that changes from step to step (the step
//! number that keys the random generator, the batch cursor, Adam's `t`) lives
//! in the backend's [`Clock`], advanced by [`Backend::end_step`], so a step
//! uploads nothing.

pub mod conv_params;
pub mod cpu;
pub mod fault;
pub mod gpu;

use crate::error::Result;
use crate::model::{Activation, AdamSettings, LayerSlot};
use conv_params::{BatchNormParams, Conv2dParams, ConvTranspose2dParams};

/// A handle to an f32 buffer owned by a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tensor {
    pub(crate) id: u32,
    /// Number of f32 elements.
    pub len: u32,
}

impl Tensor {
    /// A handle to the first `len` elements of the same buffer: what lets a
    /// network whose buffers are sized for its largest batch run a pass with
    /// fewer rows (`buf.prefix(rows * per_row)`). Every op and transfer acts
    /// on a handle's first `len` elements only; the rest of the buffer is
    /// left alone. Panics if `len` exceeds this handle's length.
    pub fn prefix(self, len: usize) -> Tensor {
        assert!(
            len <= self.len as usize,
            "Tensor::prefix: {len} elements of a tensor of {}",
            self.len
        );
        Tensor {
            len: len as u32,
            ..self
        }
    }
}

/// A row-major matrix view into a tensor: element (r, c) is
/// `tensor[offset + r * stride + c]`. Views let a layer write straight into a
/// column range of a wider buffer (the conditional models' `[x ; one-hot]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mat {
    pub tensor: Tensor,
    pub offset: u32,
    pub rows: u32,
    pub cols: u32,
    pub stride: u32,
}

impl Mat {
    /// The whole tensor as a dense `rows x cols` matrix.
    pub fn dense(tensor: Tensor, rows: usize, cols: usize) -> Mat {
        Mat {
            tensor,
            offset: 0,
            rows: rows as u32,
            cols: cols as u32,
            stride: cols as u32,
        }
    }

    /// Rows `start..start + count` of this view.
    pub fn rows(self, start: usize, count: usize) -> Mat {
        Mat {
            offset: self.offset + start as u32 * self.stride,
            rows: count as u32,
            ..self
        }
    }

    /// Columns `start..start + count` of this view.
    pub fn cols(self, start: usize, count: usize) -> Mat {
        Mat {
            offset: self.offset + start as u32,
            cols: count as u32,
            ..self
        }
    }

    /// Flat index of element (r, c).
    #[inline]
    pub fn at(&self, r: usize, c: usize) -> usize {
        self.offset as usize + r * self.stride as usize + c
    }

    /// Whether the two views may share an element: the same buffer, and
    /// element ranges (first to last element) that intersect. Conservative
    /// for interleaved views (two column ranges of the same rows count as
    /// overlapping); empty views overlap nothing.
    pub fn overlaps(&self, other: &Mat) -> bool {
        let span = |m: &Mat| {
            (m.rows > 0 && m.cols > 0).then(|| {
                let first = u64::from(m.offset);
                let last = first + u64::from(m.rows - 1) * u64::from(m.stride) + u64::from(m.cols);
                (first, last)
            })
        };
        match (span(self), span(other)) {
            (Some(a), Some(b)) => self.tensor.id == other.tensor.id && a.0 < b.1 && b.0 < a.1,
            _ => false,
        }
    }
}

/// Dropout after a layer's activation, in training only. Element (r, c) of the
/// layer output is kept when
/// `rng::dropout_keep(clock.seed, stream, clock.step, r * cols + c, rng::dropout_threshold(p))`,
/// and kept elements are scaled by `1 / (1 - p)` (inverted dropout).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub p: f32,
    pub stream: u32,
}

/// The tensors of one batch-norm layer: gamma, beta and the running
/// statistics `[channels]`, the saved statistics `[groups, channels]`
/// (group-major; `[channels]` for `groups` 1) of its [`BatchNormParams`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormTensors {
    pub gamma: Tensor,
    pub beta: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    /// `[groups, channels]`: each group's batch mean, written by the
    /// training forward, read by the backward.
    pub saved_mean: Tensor,
    /// `[groups, channels]`: each group's 1 / sqrt(biased var + eps).
    pub saved_inv_std: Tensor,
}

/// The per-step state a backend keeps itself, so steps upload nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// The run's seed: the key of every random draw.
    pub seed: u32,
    /// Steps completed so far in the whole run. Random draws of a step use it;
    /// Adam's bias correction uses `t = step + 1`.
    pub step: u32,
    /// Batches completed so far in the current epoch: the batch gathered next
    /// is `epoch_order[cursor * batch .. (cursor + 1) * batch]`.
    pub cursor: u32,
}

/// Statistic slots of the stats tensor that [`Backend::bce_with_logits`] adds into.
pub mod stat {
    /// Sum over D steps of the discriminator loss.
    pub const D_LOSS: u32 = 0;
    /// Sum over G steps of the generator loss.
    pub const G_LOSS: u32 = 1;
    /// Sum over D steps of mean D(x) on real images.
    pub const D_REAL: u32 = 2;
    /// Sum over D steps of mean D(G(z)).
    pub const D_FAKE: u32 = 3;
    /// Number of loss and probability sums (slots `0..COUNT`): what a
    /// checkpoint saves as `train.epoch_stats`.
    pub const COUNT: usize = 4;
    /// Set to 1 by [`Backend::finite_check`](super::Backend::finite_check)
    /// when a generator parameter is NaN or infinite.
    pub const G_NON_FINITE: u32 = 4;
    /// The same for the discriminator's parameters.
    pub const D_NON_FINITE: u32 = 5;
    /// Length of the stats tensor: the sums, then the health flags.
    pub const SLOTS: usize = 6;
}

/// Where the binary cross-entropy adds its loss and mean probabilities.
/// The loss added is `sum_rows weight * bce(row)`; each mean probability is
/// that part's `sigmoid(logit)` summed and divided by its row count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossSlots {
    pub loss: u32,
    /// Slot for the mean probability of rows `0..split`, if any.
    pub prob_first: Option<u32>,
    /// Slot for the mean probability of rows `split..`, if any.
    pub prob_second: Option<u32>,
}

/// Where [`Backend::softmax_cross_entropy`] adds its loss and its count of
/// correct predictions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CeSlots {
    pub loss: u32,
    /// Slot for the number of rows whose logits' argmax equals the target's, if any.
    pub correct: Option<u32>,
}

/// The ops of a GAN training step. Every op is defined by the CPU reference
/// in [`cpu`]; the GPU backend must compute the same thing.
pub trait Backend {
    /// A short description ("cpu", or the adapter's name and API).
    fn describe(&self) -> String;

    /// A new tensor of `len` zeros.
    fn alloc(&mut self, len: usize) -> Result<Tensor>;
    /// Overwrites the handle's `t.len` elements with `data` (`data.len() ==
    /// t.len`); the rest of a buffer a [`Tensor::prefix`] leaves out is kept.
    fn write(&mut self, t: Tensor, data: &[f32]) -> Result<()>;
    /// Finishes all recorded work and returns the tensor's contents (the
    /// handle's `t.len` elements).
    fn read(&mut self, t: Tensor) -> Result<Vec<f32>>;

    /// Makes the training set resident: `images` is `count * pixels` bytes,
    /// `labels` is `count` bytes (values below `classes` when conditional).
    fn upload_dataset(&mut self, images: &[u8], labels: &[u8], pixels: usize) -> Result<()>;
    /// Sets the current epoch's visiting order (a permutation of the images).
    fn set_epoch_order(&mut self, order: &[u32]) -> Result<()>;
    /// Sets the clock (at the start of a run, each epoch, or on resume).
    fn set_clock(&mut self, clock: Clock) -> Result<()>;
    /// Finishes all recorded work and returns the clock.
    fn clock(&mut self) -> Result<Clock>;

    /// Real batch: for `r < x.rows`, image `i = order[cursor * x.rows + r]`,
    /// `x[r, c] = pixel(i, c) * scale + shift` for `c < x.cols` (x.cols equals
    /// the pixel count). If `onehot` is given (rows equal to x.rows, `classes`
    /// columns), row r is the one-hot encoding of `label(i)`.
    fn gather_batch(&mut self, x: Mat, onehot: Option<Mat>, scale: f32, shift: f32);

    /// `out[r, c] = rng::normal(seed, stream, step, r * out.cols + c)`.
    fn normal_noise(&mut self, out: Mat, stream: u32);

    /// Random labels `label(r) = rng::random_u32(seed, stream, step, r) % classes`
    /// written one-hot into `out` (`classes = out.cols`) and, if given, into
    /// `also` (same shape).
    fn random_onehot(&mut self, out: Mat, also: Option<Mat>, stream: u32);

    /// `y = dropout(act(x W^T + b))` with W [out, in] at `layer.weight` and b
    /// at `layer.bias` of `params`. x is [B, in], y is [B, out].
    fn linear_forward(
        &mut self,
        x: Mat,
        params: Tensor,
        layer: LayerSlot,
        act: Activation,
        dropout: Option<Dropout>,
        y: Mat,
    );

    /// Input gradient: `dx = dz W` where `dz = dy * dact` and `dact` is
    /// `act'` computed from the layer's output `y` and the dropout mask:
    /// `dact = keep ? act.derivative_from_output(y * (1 - p)) / (1 - p) : 0`
    /// (`dact = act.derivative_from_output(y)` without dropout). dy and y are
    /// [B, out]; dx is [B, dx.cols] with dx.cols <= in (the leading input columns).
    #[allow(clippy::too_many_arguments)]
    fn linear_backward_input(
        &mut self,
        dy: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        params: Tensor,
        layer: LayerSlot,
        dx: Mat,
    );

    /// Parameter gradients, overwriting: `dW = dz^T x` at `layer.weight` and
    /// `db = sum_rows dz` at `layer.bias` of `grads`, with dz as in
    /// [`linear_backward_input`](Self::linear_backward_input). x is [B, in].
    #[allow(clippy::too_many_arguments)]
    fn linear_backward_params(
        &mut self,
        dy: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        x: Mat,
        grads: Tensor,
        layer: LayerSlot,
    );

    /// Binary cross-entropy from logits, in the stable form
    /// `bce(l, t) = max(l, 0) - l * t + ln(1 + exp(-|l|))`.
    /// `logits` is [N, 1]; rows `0..split` have target `target_first`, rows
    /// `split..N` have `target_second`. Writes `dlogits[r] = weight * (sigmoid(l) - t)`
    /// and adds the loss and mean probabilities into `stats` per `slots`.
    #[allow(clippy::too_many_arguments)]
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
    );

    /// A critic loss of D's raw outputs `logits` [N, 1] ([`CriticLossParams`]:
    /// rows `..split` scored by `p.first`, rows `split..` by `p.second`).
    /// Writes `dlogits[r] = p.weight * grad(row)`, adds `p.weight * sum_rows
    /// loss(row)` into `stats[slots.loss]` and each part's mean raw output
    /// into `slots.prob_first` / `slots.prob_second`.
    ///
    /// [`CriticLossParams`]: crate::model::critic_loss::CriticLossParams
    fn critic_loss(
        &mut self,
        p: &crate::model::critic_loss::CriticLossParams,
        logits: Mat,
        dlogits: Mat,
        stats: Tensor,
        slots: LossSlots,
    );

    /// Softmax cross-entropy (the classifier's loss). `logits`, `targets` and
    /// `dlogits` are [N, C]; each target row is a distribution (one-hot for
    /// labels, as [`gather_batch`](Self::gather_batch) writes them). With
    /// `lse = max(l) + ln(sum_c exp(l_c - max(l)))` and `s = softmax(l)`:
    /// writes `dlogits[r, c] = weight * (s_c - t_c)`, adds
    /// `weight * sum_rows sum_c t_c (lse - l_c)` into `stats[slots.loss]` and,
    /// if `slots.correct` is given, the number of rows whose argmax of the
    /// logits equals the argmax of the targets (first index on ties) into
    /// that slot.
    #[allow(clippy::too_many_arguments)]
    fn softmax_cross_entropy(
        &mut self,
        logits: Mat,
        targets: Mat,
        dlogits: Mat,
        weight: f32,
        stats: Tensor,
        slots: CeSlots,
    );

    /// One Adam step (PyTorch's formulation) over the whole flat buffers, with
    /// `t = clock.step + 1`:
    /// `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;`
    /// `p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
    fn adam_update(
        &mut self,
        params: Tensor,
        grads: Tensor,
        m: Tensor,
        v: Tensor,
        adam: AdamSettings,
    );

    /// One RMSprop step (PyTorch's, no momentum) over the whole flat
    /// buffers: `sq = alpha sq + (1 - alpha) g^2; p -= lr g / (sqrt(sq) + eps)`.
    fn rmsprop_update(
        &mut self,
        params: Tensor,
        grads: Tensor,
        sq: Tensor,
        settings: crate::model::RmsPropSettings,
    );

    /// Every value of `t` clamped to `[-limit, limit]` (the Wasserstein
    /// critic's weight clipping).
    fn clamp_values(&mut self, t: Tensor, limit: f32);

    /// An exponential moving average step over whole flat buffers:
    /// `avg = decay avg + (1 - decay) values` (the generator's average,
    /// `--ema`). `avg` and `values` have the same length.
    fn ema_update(&mut self, avg: Tensor, values: Tensor, decay: f32);

    /// `dst += alpha src` over whole flat buffers of the same length (a
    /// second gradient added into a parameter's: the gradient penalty's).
    fn add_scaled(&mut self, dst: Tensor, src: Tensor, alpha: f32);

    /// out[r, c] = e_r real[r, c] + (1 - e_r) fake[r, c], with one uniform
    /// `e_r = rng::uniform01(clock.seed, stream, clock.step, r)` per row: the
    /// gradient penalty's random points between real and generated rows.
    /// The four views have the same rows and cols; out is a tensor of its own.
    fn interpolate_rows(&mut self, real: Mat, fake: Mat, stream: u32, out: Mat);

    /// The gradient penalty of critic input gradients `grad` [B, n]: with
    /// n_r = |grad_r| (the Euclidean norm of row r), adds
    /// `weight * sum_r (n_r - 1)^2` into `stats[slot]` and writes its
    /// gradient with respect to `grad`, `v_r = 2 weight (n_r - 1) / n_r grad_r`
    /// (0 for a zero row), into `v`. Deterministic, as
    /// [`cpu::penalty::gradient_penalty`] sums: each row in 256 strided lanes
    /// and a fixed tree, the rows in order. `v` is a tensor of its own.
    fn gradient_penalty(&mut self, grad: Mat, weight: f32, v: Mat, stats: Tensor, slot: u32);

    /// The second-order term of an activation in a double backward: out[r, c]
    /// = u[r, c] t[r, c] act''(z) m / (1 - p), where y = m act(z) / (1 - p)
    /// is the op's output (m the dropout mask of
    /// [`activation_backward`](Self::activation_backward); act(z) = y (1 - p)
    /// where kept, and out 0 where dropped), u the gradient with respect to y
    /// and t the tangent of z. act'' is 0 for identity, ReLU and LeakyReLU.
    /// All views have the same rows and cols; out is a tensor of its own.
    #[allow(clippy::too_many_arguments)]
    fn activation_curvature(
        &mut self,
        u: Mat,
        t: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        out: Mat,
    );

    /// y `[B, out, out_h, out_w]` = conv(x `[B, in, in_h, in_w]`, w
    /// `[out, in, k, k]`) + bias `[out]` (when given), as
    /// [`cpu::conv::conv2d_forward`]. Every tensor's handle length must be
    /// what its shape needs (pass `buf.prefix(len)` for a larger buffer),
    /// and the output must be a tensor of its own.
    fn conv2d_forward(
        &mut self,
        p: &Conv2dParams,
        x: Tensor,
        w: Tensor,
        bias: Option<Tensor>,
        y: Tensor,
    );

    /// dx `[B, in, in_h, in_w]` for dy `[B, out, out_h, out_w]` and w
    /// `[out, in, k, k]`, as [`cpu::conv::conv2d_backward_input`].
    fn conv2d_backward_input(&mut self, p: &Conv2dParams, dy: Tensor, w: Tensor, dx: Tensor);

    /// dw `[out, in, k, k]` and dbias `[out]` (when given), overwriting, for
    /// x `[B, in, in_h, in_w]` and dy `[B, out, out_h, out_w]`, as
    /// [`cpu::conv::conv2d_backward_params`].
    fn conv2d_backward_params(
        &mut self,
        p: &Conv2dParams,
        x: Tensor,
        dy: Tensor,
        dw: Tensor,
        dbias: Option<Tensor>,
    );

    /// y `[B, out, out_h, out_w]` = conv_transpose(x `[B, in, in_h, in_w]`,
    /// w `[in, out, k, k]`) + bias `[out]` (when given), as
    /// [`cpu::conv::conv_transpose2d_forward`].
    fn conv_transpose2d_forward(
        &mut self,
        p: &ConvTranspose2dParams,
        x: Tensor,
        w: Tensor,
        bias: Option<Tensor>,
        y: Tensor,
    );

    /// dx `[B, in, in_h, in_w]` for dy `[B, out, out_h, out_w]` and w
    /// `[in, out, k, k]`, as [`cpu::conv::conv_transpose2d_backward_input`].
    fn conv_transpose2d_backward_input(
        &mut self,
        p: &ConvTranspose2dParams,
        dy: Tensor,
        w: Tensor,
        dx: Tensor,
    );

    /// dw `[in, out, k, k]` and dbias `[out]` (when given), overwriting, as
    /// [`cpu::conv::conv_transpose2d_backward_params`].
    fn conv_transpose2d_backward_params(
        &mut self,
        p: &ConvTranspose2dParams,
        x: Tensor,
        dy: Tensor,
        dw: Tensor,
        dbias: Option<Tensor>,
    );

    /// y = act(batch_norm_train(x)); updates running stats, writes saved stats.
    /// x and y are `[batch, channels, spatial]`; each of `p.groups`
    /// consecutive groups of rows is normalised by its own statistics,
    /// saved at `[group, channel]` (saved_* `[groups, channels]`), and the
    /// running stats are updated once a group, group 0 first, as
    /// [`cpu::batch_norm::batch_norm_forward_train`] followed by `act`.
    fn batch_norm_forward_train(
        &mut self,
        p: &BatchNormParams,
        act: Activation,
        x: Tensor,
        bn: &BatchNormTensors,
        y: Tensor,
    );

    /// y = act(batch_norm_eval(x)) from the running stats (saved_* and
    /// `p.groups` unused), as [`cpu::batch_norm::batch_norm_forward_eval`]
    /// followed by `act`.
    fn batch_norm_forward_eval(
        &mut self,
        p: &BatchNormParams,
        act: Activation,
        x: Tensor,
        bn: &BatchNormTensors,
        y: Tensor,
    );

    /// Training backward with no activation (the caller applies activation_backward first):
    /// dx, dgamma, dbeta from x, dy, gamma and the saved stats
    /// `[groups, channels]` of the training forward, as
    /// [`cpu::batch_norm::batch_norm_backward`] (beta and the running stats
    /// unused): each group's dx from its own stats, dgamma and dbeta
    /// `[channels]` summed over the groups.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward(
        &mut self,
        p: &BatchNormParams,
        x: Tensor,
        dy: Tensor,
        bn: &BatchNormTensors,
        dx: Tensor,
        dgamma: Tensor,
        dbeta: Tensor,
    );

    /// y[r, c] = dropout(act(x[r, c])): with dropout, element (r, c) is kept when
    /// `rng::dropout_keep(clock.seed, d.stream, clock.step, r * cols + c, rng::dropout_threshold(d.p))`
    /// and kept values are scaled by 1 / (1 - p) -- exactly the epilogue
    /// [`linear_forward`](Self::linear_forward) applies. x and y have the same
    /// rows and cols; y must not overlap x ([`Mat::overlaps`]: views of one
    /// tensor must lie in disjoint element ranges).
    fn activation_forward(&mut self, x: Mat, act: Activation, dropout: Option<Dropout>, y: Mat);

    /// dx[r, c] = dy[r, c] * dact(r, c), dact computed from the output y and
    /// the dropout mask by the formula documented on
    /// [`linear_backward_input`](Self::linear_backward_input). dy, y, dx have
    /// the same rows and cols; dx is a tensor of its own.
    fn activation_backward(
        &mut self,
        dy: Mat,
        y: Mat,
        act: Activation,
        dropout: Option<Dropout>,
        dx: Mat,
    );

    /// Health check: if any element of `t` is NaN or infinite, sets
    /// `stats[slot] = 1.0` (and leaves it alone otherwise). Recorded like the
    /// other ops; the flag is read back with the stats, so checking costs no
    /// read-back of its own.
    fn finite_check(&mut self, t: Tensor, stats: Tensor, slot: u32);

    /// Ends a training step: `clock.step += 1; clock.cursor += 1`.
    fn end_step(&mut self);

    /// Sends recorded work on its way (a GPU submit); a no-op on the CPU.
    fn flush(&mut self) -> Result<()>;

    /// Sends recorded work on its way and blocks until the device has
    /// executed everything submitted, reading nothing back: what a progress
    /// display waits on so that it counts executed steps, not recorded ones.
    /// A no-op on the CPU, where every op has run by the time it returns.
    fn sync(&mut self) -> Result<()> {
        self.flush()
    }

    /// Like [`sync`](Self::sync), one call behind: sends recorded work on
    /// its way and blocks until the device has executed everything that had
    /// been submitted when this was last called (nothing the first time, or
    /// after a `sync`). The work since then keeps the device busy while the
    /// caller records more; the training loop's progress display uses it.
    fn sync_behind(&mut self) -> Result<()> {
        self.sync()
    }

    /// GPU work issued so far, for reporting; None on the CPU.
    fn work_counts(&self) -> Option<WorkCounts> {
        None
    }
}

/// How much GPU work a backend has issued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkCounts {
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Queue submits.
    pub submits: u64,
}
