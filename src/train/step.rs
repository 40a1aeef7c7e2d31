//! One GAN training step, written once against [`Backend`]: the discriminator
//! learns from a real batch and a generated batch (`n_critic` times, each on
//! a fresh real batch), then the generator learns from a fresh noise batch
//! through the discriminator. The loss is BCE from logits or a critic loss
//! of D's raw output ([`crate::model::LossKind`]); each network takes one
//! Adam or RMSprop step per update, and a WGAN critic's weights are clipped
//! after each of its updates, or (WGAN-GP) each critic step adds the
//! gradient penalty; with `--ema` the generator's moving average
//! follows each generator update. Every buffer a step
//! touches is allocated here once; a step records ops and uploads nothing.
//!
//! In the D step the discriminator sees the real and the generated batch in
//! one pass of twice the rows, real rows first, as two batches to batch norm
//! ([`Pass::Train`]'s `batches`): each is normalised by its own statistics
//! and the running ones are updated for the real batch, then the generated
//! one, exactly as `pytorch/examples`' two separate D passes do. An MLP generator writes its images
//! straight into the fake rows of the D input; a layer network writes into
//! its own output buffer (it takes dense buffers from their start), from
//! which the D step copies them (one element-wise op) and the G step's D
//! pass reads them in place.
//!
//! The gradient penalty (Gulrajani et al. 2017) of critic step k: after the
//! loss's backward, the rows x_hat = e x + (1 - e) G(z) (one uniform e per
//! row, stream [`stream::PENALTY`] + k; a conditional model's one-hot
//! columns are interpolated alike), D's pass over them (dropout pass
//! `PASS_PENALTY` + k), its backward from ones to the input gradient
//! g, the penalty `lambda / B sum_r (|g_r| - 1)^2` of g's image columns
//! (added to the D loss) with its gradient v, and D's double backward
//! ([`crate::nn::LayerNetwork::penalty_backward`]), which adds the
//! penalty's parameter gradient into the loss's before the update. Such a
//! critic always runs as a layer network (an MLP one starts from its MLP's
//! weights).

use crate::backend::{stat, Backend, LossSlots, Mat, Tensor};
use crate::error::Result;
use crate::model::critic_loss::CriticLossParams;
use crate::model::LossKind;
use crate::model::{Activation, ModelSpec, NetSpec, StepPlan};
use crate::nn::{Net, Pass, PenaltyBuffers};
use crate::rng::stream;

/// Dropout pass numbers (they select the mask streams).
const PASS_D_STEP: u32 = 0;
const PASS_G_STEP: u32 = 1;
/// The gradient penalty's pass of critic step k is `PASS_PENALTY + k`: its
/// dropout streams lie past every other stream.
const PASS_PENALTY: u32 = 1 << 16;

/// Training passes of the generator per step (each critic step's fakes and
/// the G step's): what each of its batch norms' `num_batches_tracked`
/// counts; 2 with one critic step.
pub fn generator_passes_per_step(spec: &ModelSpec) -> i64 {
    spec.game.n_critic as i64 + 1
}

/// Training batches the discriminator sees per step (each critic step's
/// real and generated batch, the G step's generated one); 3 with one.
pub fn discriminator_passes_per_step(spec: &ModelSpec) -> i64 {
    2 * spec.game.n_critic as i64 + 1
}

/// The dropout pass number of critic step `k` (0, then after the G step's).
fn critic_pass(k: usize) -> u32 {
    if k == 0 {
        PASS_D_STEP
    } else {
        PASS_G_STEP + k as u32
    }
}

/// The noise and label streams of critic step `k`: the D step's for the
/// first, new ones (past the dropout streams) for the others.
fn critic_streams(k: usize) -> (u32, u32) {
    if k == 0 {
        (stream::NOISE_D, stream::LABELS_D)
    } else {
        let base = stream::CRITIC + 2 * k as u32;
        (base, base + 1)
    }
}

/// Both networks and every buffer a training step needs, resident on a backend.
pub struct GanState {
    pub spec: ModelSpec,
    pub generator: Net,
    pub discriminator: Net,
    /// The generator's exponential moving average (`--ema`): a second copy
    /// of the generator, started from the same weights and averaged after
    /// each generator step; what [`generate`](Self::generate) draws from.
    pub generator_ema: Option<Net>,
    /// Whether the generator writes into the D input itself (an MLP) or
    /// into its own output buffer (a layer network).
    generator_writes_d_input: bool,
    /// Generator input [batch, noise + classes]: noise, then the one-hot label.
    noise: Tensor,
    /// Discriminator input [2 * batch, pixels + classes]: the real and the
    /// generated rows (see the module docs for their order).
    d_input: Tensor,
    /// Loss gradient with respect to D's logits [2 * batch, 1].
    d_logits_grad: Tensor,
    /// Loss gradient with respect to the generated images [batch, pixels].
    fake_grad: Tensor,
    /// Loss and D-output sums since the last reset ([`stat`] slots).
    pub stats: Tensor,
    /// With more than one critic step: the step's real batches [n_critic *
    /// batch, pixels + classes], gathered at once, one copied into the D
    /// input per critic step.
    real_pool: Option<Tensor>,
    /// The gradient penalty's buffers (`wgan-gp`).
    penalty: Option<Penalty>,
}

/// The buffers of the gradient penalty (`wgan-gp`), for one batch of rows.
struct Penalty {
    /// The interpolated rows x_hat [batch, D input].
    points: Tensor,
    /// A 1 per row: where D's backward to its input starts.
    ones: Tensor,
    /// The input gradient g = grad D(x_hat) [batch, D input].
    input_grad: Tensor,
    /// The penalty's gradient with respect to g, v [batch, D input]; its
    /// one-hot columns stay 0.
    input_grad_grad: Tensor,
    buffers: PenaltyBuffers,
}

impl GanState {
    /// Allocates both networks (initialised from `seed`) and the step buffers.
    /// `sample_rows` is the largest batch [`generate`](Self::generate) will see.
    pub fn new<B: Backend>(
        backend: &mut B,
        spec: &ModelSpec,
        seed: u32,
        sample_rows: usize,
    ) -> Result<Self> {
        let plan = StepPlan::with_sample_rows(spec, sample_rows);
        let (g_rows, d_rows) = (plan.generator_rows, plan.discriminator_rows);
        let generator = Net::new(backend, &spec.generator, g_rows, seed, 0)?;
        let gradient_penalty = spec.game.loss == LossKind::WganGp;
        let discriminator = if gradient_penalty {
            Net::new_as_layers(backend, &spec.discriminator, d_rows, seed, 1)?
        } else {
            Net::new(backend, &spec.discriminator, d_rows, seed, 1)?
        };
        let penalty = match discriminator.layers() {
            Some(critic) if gradient_penalty => {
                let width = plan.batch * spec.discriminator_input();
                let ones = backend.alloc(plan.batch)?;
                backend.write(ones, &vec![1.0; plan.batch])?;
                Some(Penalty {
                    points: backend.alloc(width)?,
                    ones,
                    input_grad: backend.alloc(width)?,
                    input_grad_grad: backend.alloc(width)?,
                    buffers: critic.penalty_buffers(backend, plan.batch)?,
                })
            }
            _ => None,
        };
        // The same seed and network id: the average starts as the generator.
        let generator_ema = match spec.game.ema {
            Some(_) => Some(Net::new(backend, &spec.generator, g_rows, seed, 0)?),
            None => None,
        };
        let generator_writes_d_input = matches!(spec.generator, NetSpec::Mlp(_));
        if !generator_writes_d_input && spec.classes > 0 {
            return Err(crate::error::Error::config(
                "--model",
                "a conditional model needs an MLP generator",
            ));
        }
        Ok(GanState {
            spec: spec.clone(),
            generator,
            discriminator,
            generator_ema,
            generator_writes_d_input,
            noise: backend.alloc(g_rows * spec.generator_input())?,
            d_input: backend.alloc(d_rows * spec.discriminator_input())?,
            d_logits_grad: backend.alloc(d_rows)?,
            fake_grad: backend.alloc(plan.batch * spec.image_pixels)?,
            stats: backend.alloc(stat::SLOTS)?,
            real_pool: if spec.game.n_critic > 1 {
                Some(backend.alloc(spec.game.n_critic * plan.batch * spec.discriminator_input())?)
            } else {
                None
            },
            penalty,
        })
    }

    fn batch(&self) -> usize {
        self.spec.batch_size
    }

    /// The generator input for `rows` rows.
    fn noise_input(&self, rows: usize) -> Mat {
        Mat::dense(self.noise, rows, self.spec.generator_input())
    }

    /// The discriminator input, real rows first then fake rows.
    fn d_input(&self) -> Mat {
        Mat::dense(
            self.d_input,
            2 * self.batch(),
            self.spec.discriminator_input(),
        )
    }

    /// The image columns of D-input rows `start..start + batch`.
    fn images_at(&self, start: usize) -> Mat {
        self.d_input()
            .rows(start, self.batch())
            .cols(0, self.spec.image_pixels)
    }

    /// The label columns of D-input rows `start..start + batch`.
    fn labels_at(&self, start: usize) -> Mat {
        self.d_input()
            .rows(start, self.batch())
            .cols(self.spec.image_pixels, self.spec.classes)
    }

    /// Where the generator writes a batch of images in training.
    fn generated(&self) -> Mat {
        if self.generator_writes_d_input {
            self.images_at(self.batch())
        } else {
            self.generator.output(self.batch())
        }
    }

    /// The G step's discriminator input: the generated batch (with its
    /// labels, for a conditional model).
    fn d_fakes(&self) -> Mat {
        if self.generator_writes_d_input {
            self.d_input().rows(self.batch(), self.batch())
        } else {
            self.generator.output(self.batch())
        }
    }

    /// Fresh noise (and, if conditional, random labels for both networks'
    /// inputs), then the generator's images (in training) into
    /// [`generated`](Self::generated); `into_d_input` also puts them in the
    /// fake rows of the D input.
    fn generate_fakes<B: Backend>(
        &self,
        backend: &mut B,
        noise_stream: u32,
        label_stream: u32,
        into_d_input: bool,
    ) {
        let batch = self.batch();
        let z = self.noise_input(batch);
        backend.normal_noise(z.cols(0, self.spec.noise_dim), noise_stream);
        if self.spec.classes > 0 {
            let g_labels = z.cols(self.spec.noise_dim, self.spec.classes);
            backend.random_onehot(g_labels, Some(self.labels_at(batch)), label_stream);
        }
        let generated = self.generated();
        self.generator
            .forward(backend, z, Pass::train(None), generated);
        if into_d_input && !self.generator_writes_d_input {
            backend.activation_forward(
                generated,
                Activation::Identity,
                None,
                self.images_at(batch),
            );
        }
    }

    /// Records one whole training step: D on a real and a generated batch
    /// (`n_critic` times, each on the next real batch of the epoch), then G
    /// on a fresh noise batch; each network takes one optimizer step per
    /// update, and a WGAN critic is clipped after each of its updates.
    pub fn train_step<B: Backend>(&self, backend: &mut B) {
        let batch = self.batch();
        let spec = &self.spec;
        let n_critic = spec.game.n_critic;
        let d = &self.discriminator;
        let g = &self.generator;
        let terms = spec.game.loss.terms(spec.real_target, spec.fake_target);
        let bce = spec.game.loss == crate::model::LossKind::Bce;

        // The step's real batches: straight into the D input for one critic
        // step, else all of them into the pool, one copied in per step.
        let (x_real, onehot_real) = (
            self.images_at(0),
            (spec.classes > 0).then(|| self.labels_at(0)),
        );
        if let Some(pool) = self.real_pool {
            let width = spec.discriminator_input();
            let all = Mat::dense(pool, n_critic * batch, width);
            let onehot = (spec.classes > 0).then(|| all.cols(spec.image_pixels, spec.classes));
            backend.gather_batch(
                all.cols(0, spec.image_pixels),
                onehot,
                spec.scaling.scale,
                spec.scaling.shift,
            );
        } else {
            backend.gather_batch(x_real, onehot_real, spec.scaling.scale, spec.scaling.shift);
        }
        for k in 0..n_critic {
            if let Some(pool) = self.real_pool {
                let width = spec.discriminator_input();
                let rows = Mat::dense(pool, n_critic * batch, width).rows(k * batch, batch);
                let real = self.d_input().rows(0, batch);
                backend.activation_forward(rows, Activation::Identity, None, real);
            }
            self.critic_update(backend, k, terms, bce);
        }

        // Generator: BCE of D(G(z)) against its target (non-saturating), or
        // the critic loss's generator term.
        self.generate_fakes(backend, stream::NOISE_G, stream::LABELS_G, false);
        let (fakes, fake_grad) = self.g_step_critic_rows(backend);
        let logits = d.output(batch);
        let d_logits_grad = Mat::dense(self.d_logits_grad, 2 * batch, 1).rows(0, batch);
        let g_pass = Pass::train(Some(PASS_G_STEP));
        d.forward(backend, fakes, g_pass, logits);
        let slots = LossSlots {
            loss: stat::G_LOSS,
            prob_first: None,
            prob_second: None,
        };
        if bce {
            backend.bce_with_logits(
                logits,
                d_logits_grad,
                batch as u32,
                spec.generator_target,
                0.0,
                1.0 / batch as f32,
                self.stats,
                slots,
            );
        } else {
            let p = CriticLossParams {
                split: batch as u32,
                first: terms[2],
                second: terms[2],
                weight: 1.0 / batch as f32,
            };
            backend.critic_loss(&p, logits, d_logits_grad, self.stats, slots);
        }
        d.backward(
            backend,
            fakes,
            g_pass,
            logits,
            d_logits_grad,
            false,
            Some(fake_grad),
        );
        g.backward(
            backend,
            self.noise_input(batch),
            Pass::train(None),
            self.generated(),
            fake_grad.cols(0, spec.image_pixels),
            true,
            None,
        );
        if spec.uses_rmsprop() {
            g.rmsprop_update(backend, spec.rmsprop(spec.game.lr_g));
        } else {
            g.adam_update(backend, spec.adam);
        }
        if let (Some(average), Some(decay)) = (&self.generator_ema, spec.game.ema) {
            average.ema_update_from(backend, g, decay);
        }
        backend.end_step();
    }

    /// The G step's discriminator input and where D's backward writes its
    /// gradient (the generated images' gradient in its first columns): the
    /// generated rows in place and the image gradient buffer, or, for a
    /// layer-network critic (WGAN-GP's) behind an MLP generator, which
    /// writes into the D input, the rows copied to the start of a buffer of
    /// their own (a layer network reads dense rows from its buffer's start)
    /// and a gradient as wide as D's input.
    fn g_step_critic_rows<B: Backend>(&self, backend: &mut B) -> (Mat, Mat) {
        let batch = self.batch();
        let fakes = self.d_fakes();
        match &self.penalty {
            Some(penalty) if self.generator_writes_d_input => {
                let width = self.spec.discriminator_input();
                let staged = Mat::dense(penalty.points, batch, width);
                backend.activation_forward(fakes, Activation::Identity, None, staged);
                (staged, Mat::dense(penalty.input_grad, batch, width))
            }
            _ => (
                fakes,
                Mat::dense(self.fake_grad, batch, self.spec.image_pixels),
            ),
        }
    }

    /// Critic step `k` of a training step: its real rows are in place; fresh
    /// fakes, D's pass over both, the loss (BCE, or the critic loss's
    /// `terms`), D's backward and update, and WGAN's clipping.
    fn critic_update<B: Backend>(
        &self,
        backend: &mut B,
        k: usize,
        terms: [crate::model::critic_loss::ScoreTerm; 3],
        bce: bool,
    ) {
        let batch = self.batch();
        let spec = &self.spec;
        let d = &self.discriminator;
        let weight = 1.0 / batch as f32;
        let (noise, labels) = critic_streams(k);
        self.generate_fakes(backend, noise, labels, true);
        let both = self.d_input();
        let logits = d.output(2 * batch);
        let d_logits_grad = Mat::dense(self.d_logits_grad, 2 * batch, 1);
        // Two batches to batch norm: the real rows, then the generated ones.
        let d_pass = Pass::Train {
            dropout: Some(critic_pass(k)),
            batches: 2,
        };
        d.forward(backend, both, d_pass, logits);
        let slots = LossSlots {
            loss: stat::D_LOSS,
            prob_first: Some(stat::D_REAL),
            prob_second: Some(stat::D_FAKE),
        };
        if bce {
            // D loss = mean BCE over real rows + mean BCE over fake rows.
            backend.bce_with_logits(
                logits,
                d_logits_grad,
                batch as u32,
                spec.real_target,
                spec.fake_target,
                weight,
                self.stats,
                slots,
            );
        } else {
            let p = CriticLossParams {
                split: batch as u32,
                first: terms[0],
                second: terms[1],
                weight,
            };
            backend.critic_loss(&p, logits, d_logits_grad, self.stats, slots);
        }
        d.backward(backend, both, d_pass, logits, d_logits_grad, true, None);
        if let Some(penalty) = &self.penalty {
            self.add_gradient_penalty(backend, k, penalty);
        }
        if spec.uses_rmsprop() {
            d.rmsprop_update(backend, spec.rmsprop(spec.game.lr_d));
        } else {
            d.adam_update(backend, spec.adam_d());
        }
        if let Some(limit) = spec.game.clip {
            d.clamp_params(backend, limit);
        }
    }

    /// Critic step `k`'s gradient penalty (see the module docs): its value
    /// into the D loss, its parameter gradient into D's gradients.
    fn add_gradient_penalty<B: Backend>(&self, backend: &mut B, k: usize, penalty: &Penalty) {
        let batch = self.batch();
        let spec = &self.spec;
        let width = spec.discriminator_input();
        let critic = self
            .discriminator
            .layers()
            .expect("a wgan-gp critic runs as a layer network");
        let lambda = spec
            .game
            .gp_weight
            .expect("wgan-gp settings have a penalty weight");
        let points = Mat::dense(penalty.points, batch, width);
        let d_input = self.d_input();
        backend.interpolate_rows(
            d_input.rows(0, batch),
            d_input.rows(batch, batch),
            stream::PENALTY + k as u32,
            points,
        );
        let pass = Pass::train(Some(PASS_PENALTY + k as u32));
        let output = critic.output(batch);
        let (points, ones) = (points.tensor.prefix(batch * width), penalty.ones);
        let input_grad = penalty.input_grad.prefix(batch * width);
        critic.forward(backend, batch, points, pass, output);
        critic.backward(
            backend,
            batch,
            points,
            pass,
            output,
            ones,
            false,
            Some(input_grad),
        );
        let image_cols = |t: Tensor| Mat::dense(t, batch, width).cols(0, spec.image_pixels);
        backend.gradient_penalty(
            image_cols(input_grad),
            lambda / batch as f32,
            image_cols(penalty.input_grad_grad),
            self.stats,
            stat::D_LOSS,
        );
        critic.penalty_backward(
            backend,
            batch,
            points,
            pass,
            output,
            ones,
            penalty.input_grad_grad.prefix(batch * width),
            &penalty.buffers,
        );
    }

    /// The most rows [`generate`](Self::generate) takes at once.
    pub fn generate_rows(&self) -> usize {
        self.noise.len as usize / self.spec.generator_input()
    }

    /// The generator that sampling draws from: the moving average when the
    /// run keeps one, else the generator itself.
    pub fn sampling_generator(&self) -> &Net {
        self.generator_ema.as_ref().unwrap_or(&self.generator)
    }

    /// Runs the [`sampling_generator`](Self::sampling_generator) (no
    /// training; `pass` is [`Pass::Eval`] or
    /// [`Pass::BatchStats`]) on host-given inputs `[rows, noise + classes]`
    /// and returns its outputs `[rows, pixels]`. Uses the step buffers, so
    /// call it between steps.
    pub fn generate<B: Backend>(
        &self,
        backend: &mut B,
        inputs: &[f32],
        pass: Pass,
        output: Tensor,
    ) -> Result<Vec<f32>> {
        let width = self.spec.generator_input();
        let rows = inputs.len() / width;
        let z = self.noise_input(rows);
        let mut padded = vec![0.0; self.noise.len as usize];
        padded[..inputs.len()].copy_from_slice(inputs);
        backend.write(self.noise, &padded)?;
        self.sampling_generator().forward(
            backend,
            z,
            pass,
            Mat::dense(output, rows, self.spec.image_pixels),
        );
        let mut values = backend.read(output)?;
        values.truncate(rows * self.spec.image_pixels);
        Ok(values)
    }
}
