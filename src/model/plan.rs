//! The step plan: how many rows each buffer of a training step holds and
//! what that costs. It is the one account of a step's sizes that the step
//! itself (`train::GanState`), the memory limit of
//! [`ModelSpec::validate`](super::ModelSpec::validate), the GPU fit check of
//! `gan-gpu train` and the bench's FLOP count all read.

use super::{ModelSpec, NetSpec, NetworkSpec};

/// The most generator rows run at once between steps when no other number is
/// given: the sample grid's images.
pub const SAMPLE_GRID_ROWS: usize = crate::report::GRID_SIDE * crate::report::GRID_SIDE;

/// FLOPs of one matrix product `[m, k] x [k, n]`: a multiply and an add each.
pub fn matmul_flops(m: usize, k: usize, n: usize) -> u64 {
    2 * m as u64 * k as u64 * n as u64
}

/// The rows, sizes and matrix-product work of one training step of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepPlan {
    /// Images per batch.
    pub batch: usize,
    /// Rows of the generator's buffers (its input and every layer's output):
    /// a batch, or the most rows generated at once between steps if more.
    pub generator_rows: usize,
    /// Rows of the discriminator's buffers: the real rows, then the fake ones.
    pub discriminator_rows: usize,
    /// Parameters of each network: its flat buffer's length.
    pub generator_params: usize,
    pub discriminator_params: usize,
    /// Units of one row through each network: its input and every layer's output.
    pub generator_units: usize,
    pub discriminator_units: usize,
    /// The widest activation of each network: its input or a layer's output.
    pub generator_widest: usize,
    pub discriminator_widest: usize,
    /// The matrix-product FLOPs of one step (see [`StepPlan::new`]).
    pub matmul_flops: u64,
    /// Whether the run keeps the generator's moving average (`--ema`): a
    /// second generator, buffers and all.
    pub generator_average: bool,
    /// Whether each critic step adds the gradient penalty (`wgan-gp`): a
    /// pass over the interpolated rows, its double backward, and their
    /// buffers.
    pub gradient_penalty: bool,
    /// Values per row of the discriminator's input.
    pub discriminator_input: usize,
}

/// Which passes a network makes over `rows` rows.
struct Pass {
    rows: usize,
    /// Parameter gradients (`linear_backward_params` on every layer).
    param_grads: bool,
    /// Columns of the input gradient the first layer writes (0: none).
    first_input_grad_cols: usize,
}

/// FLOPs of a forward pass and the chosen backward passes of `net`. A layer
/// list whose layers cannot take their inputs (which `ModelSpec::validate`
/// rejects) counts 0 here and in the sizes below.
fn network_flops(net: &NetSpec, pass: Pass, backward: bool) -> u64 {
    match net {
        NetSpec::Mlp(mlp) => mlp_flops(mlp, pass, backward),
        NetSpec::Layers(stack) => stack
            .flops(
                pass.rows,
                backward,
                pass.param_grads,
                pass.first_input_grad_cols > 0,
            )
            .unwrap_or(0),
    }
}

fn mlp_flops(net: &NetworkSpec, pass: Pass, backward: bool) -> u64 {
    let mut flops = 0;
    for (i, l) in net.layers.iter().enumerate() {
        // Forward: y [rows, out] = x [rows, in] W^T.
        flops += matmul_flops(pass.rows, l.in_dim, l.out_dim);
        if !backward {
            continue;
        }
        // Backward params: dW [out, in] = dz^T [out, rows] x [rows, in].
        if pass.param_grads {
            flops += matmul_flops(l.out_dim, pass.rows, l.in_dim);
        }
        // Backward input: dx [rows, cols] = dz [rows, out] W[:, ..cols].
        let cols = if i == 0 {
            pass.first_input_grad_cols
        } else {
            l.in_dim
        };
        flops += matmul_flops(pass.rows, l.out_dim, cols);
    }
    flops
}

/// Trainable parameters (a layer list's batch-norm running statistics are
/// counted with its units' buffers, not here).
fn params(net: &NetSpec) -> usize {
    match net {
        NetSpec::Mlp(mlp) => mlp
            .layers
            .iter()
            .map(|l| l.in_dim * l.out_dim + l.out_dim)
            .sum(),
        NetSpec::Layers(stack) => stack.trainable_len().unwrap_or(0),
    }
}

fn units(net: &NetSpec) -> usize {
    match net {
        NetSpec::Mlp(mlp) => mlp.in_dim() + mlp.layers.iter().map(|l| l.out_dim).sum::<usize>(),
        NetSpec::Layers(stack) => stack.units().unwrap_or(0),
    }
}

fn widest(net: &NetSpec) -> usize {
    match net {
        NetSpec::Mlp(mlp) => mlp
            .layers
            .iter()
            .map(|l| l.out_dim)
            .chain([mlp.in_dim()])
            .max()
            .unwrap_or(0),
        NetSpec::Layers(stack) => stack.widest().unwrap_or(0),
    }
}

impl StepPlan {
    /// The plan of a training run: the generator also draws the sample grid
    /// ([`SAMPLE_GRID_ROWS`] rows) between steps.
    ///
    /// The matrix-product FLOPs count one step as `train::GanState::train_step`
    /// records it (bias, activation, loss and Adam work are not counted).
    /// With batch B:
    ///
    /// - D step: G forward on B rows (the fakes); D forward, backward-params
    ///   and backward-input (all layers but the first) on 2B rows.
    /// - G step: G forward on B rows; D forward and backward-input on B rows,
    ///   the first layer included (down to the image columns), no D
    ///   gradients; G backward-params and backward-input (all layers but the
    ///   first).
    pub fn new(spec: &ModelSpec) -> Self {
        Self::with_sample_rows(spec, SAMPLE_GRID_ROWS)
    }

    /// The plan where the generator runs at most `sample_rows` rows at once
    /// between steps.
    pub fn with_sample_rows(spec: &ModelSpec, sample_rows: usize) -> Self {
        let b = spec.batch_size;
        let (g, d) = (&spec.generator, &spec.discriminator);
        let forward_only = |rows| Pass {
            rows,
            param_grads: false,
            first_input_grad_cols: 0,
        };
        let d_step = network_flops(g, forward_only(b), false)
            + network_flops(
                d,
                Pass {
                    rows: 2 * b,
                    param_grads: true,
                    first_input_grad_cols: 0,
                },
                true,
            );
        let g_step = network_flops(
            d,
            Pass {
                rows: b,
                param_grads: false,
                first_input_grad_cols: spec.image_pixels,
            },
            true,
        ) + network_flops(
            g,
            Pass {
                rows: b,
                param_grads: true,
                first_input_grad_cols: 0,
            },
            true,
        );
        // The penalty: D's forward, backward to its input and (through the
        // double backward) to its weights over the interpolated rows, and
        // the tangent's forward. A sigmoid or tanh critic's curvature part
        // is left out of the count.
        let gradient_penalty = spec.game.loss == super::LossKind::WganGp;
        let penalty_step = if gradient_penalty {
            network_flops(
                d,
                Pass {
                    rows: b,
                    param_grads: true,
                    first_input_grad_cols: spec.discriminator_input(),
                },
                true,
            ) + network_flops(d, forward_only(b), false)
        } else {
            0
        };
        StepPlan {
            batch: b,
            generator_rows: b.max(sample_rows),
            discriminator_rows: 2 * b,
            generator_params: params(g),
            discriminator_params: params(d),
            generator_units: units(g),
            discriminator_units: units(d),
            generator_widest: widest(g),
            discriminator_widest: widest(d),
            // Each critic step repeats the D step's work.
            matmul_flops: (d_step + penalty_step) * spec.game.n_critic as u64 + g_step,
            generator_average: spec.game.ema.is_some(),
            gradient_penalty,
            discriminator_input: spec.discriminator_input(),
        }
    }

    /// Bytes of the generator's flat parameter buffer (f32).
    pub fn generator_param_bytes(&self) -> u64 {
        self.generator_params as u64 * 4
    }

    /// Bytes of the discriminator's flat parameter buffer (f32).
    pub fn discriminator_param_bytes(&self) -> u64 {
        self.discriminator_params as u64 * 4
    }

    /// Bytes of the largest activation buffer (f32): the widest layer of
    /// either network over that network's rows.
    pub fn largest_activation_bytes(&self) -> u64 {
        let g = self.generator_rows as u64 * self.generator_widest as u64;
        let d = self.discriminator_rows as u64 * self.discriminator_widest as u64;
        g.max(d) * 4
    }

    /// Bytes a training run holds: each network's parameters, gradients and
    /// two Adam moments (4 f32 per parameter), and the step's activations and
    /// their gradients (2 f32 per unit per row); with `--ema`, the
    /// generator's average as much again as the generator and its
    /// activations (it is allocated as a second generator); with `wgan-gp`,
    /// the penalty's buffers: a second gradient of every critic parameter,
    /// a tangent and an adjoint per unit of a batch of rows, and the
    /// interpolated rows, their input gradients and the penalty's gradient.
    pub fn memory(&self) -> MemoryEstimate {
        let rows_units = |rows: usize, units: usize| rows as u128 * units as u128;
        let generator_activations = 8 * rows_units(self.generator_rows, self.generator_units);
        let generator = 16 * self.generator_params as u128;
        MemoryEstimate {
            generator,
            discriminator: 16 * self.discriminator_params as u128,
            activations: generator_activations
                + 8 * rows_units(self.discriminator_rows, self.discriminator_units),
            generator_average: if self.generator_average {
                generator + generator_activations
            } else {
                0
            },
            gradient_penalty: if self.gradient_penalty {
                4 * self.discriminator_params as u128
                    + 8 * rows_units(self.batch, self.discriminator_units)
                    + 12 * rows_units(self.batch, self.discriminator_input)
            } else {
                0
            },
        }
    }
}

/// What a model needs, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Parameters, gradients and Adam moments of the generator.
    pub generator: u128,
    pub discriminator: u128,
    /// Both networks' activations and activation gradients for one step.
    pub activations: u128,
    /// The generator's moving average (`--ema`; 0 without).
    pub generator_average: u128,
    /// The gradient penalty's buffers (`wgan-gp`; 0 without).
    pub gradient_penalty: u128,
}

impl MemoryEstimate {
    pub fn total(&self) -> u128 {
        self.generator
            + self.discriminator
            + self.activations
            + self.generator_average
            + self.gradient_penalty
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelKind, NetworkLayout, Overrides};

    #[test]
    fn vanilla_rows_and_sizes_by_hand() {
        let spec = ModelSpec::preset(ModelKind::Vanilla);
        let plan = StepPlan::new(&spec);
        assert_eq!((plan.batch, plan.generator_rows), (100, 100));
        assert_eq!(plan.discriminator_rows, 200);
        assert_eq!(
            plan.generator_params,
            NetworkLayout::new(spec.generator.mlp().unwrap()).len
        );
        assert_eq!(
            plan.discriminator_params,
            NetworkLayout::new(spec.discriminator.mlp().unwrap()).len
        );
        assert_eq!(
            (plan.generator_widest, plan.discriminator_widest),
            (784, 784)
        );
        // D's 200 rows of 784 pixels outweigh G's 100 rows of 784.
        assert_eq!(plan.largest_activation_bytes(), 200 * 784 * 4);
        let m = plan.memory();
        assert_eq!(m.generator, 16 * (128 * 256 + 256 + 256 * 784 + 784));
        assert_eq!(
            m.activations,
            8 * (100 * (128 + 256 + 784) + 200 * (784 + 256 + 1))
        );
        assert_eq!(m.generator_average, 0);
        // --ema: a second generator and its activations.
        let with_average = ModelSpec::build(
            ModelKind::Vanilla,
            &Overrides {
                game: crate::model::GameFlags {
                    ema: Some(0.999),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        let a = StepPlan::new(&with_average).memory();
        assert_eq!(
            a.generator_average,
            m.generator + 8 * 100 * (128 + 256 + 784)
        );
        assert_eq!(a.total(), m.total() + a.generator_average);
    }

    #[test]
    fn dcgan_flops_by_hand() {
        let spec = ModelSpec::preset(ModelKind::Dcgan);
        let b = 256u64;
        // Per row: each product's 2 * (output positions) * (input channels) * k * k.
        let g_linear = 2 * 100 * 12544;
        let g = [
            g_linear,
            2 * 256 * 49 * 128 * 25,
            2 * 128 * 49 * 64 * 25,
            2 * 64 * 196 * 25,
        ];
        let d_conv1 = 2 * 64 * 196 * 25;
        let d = [d_conv1, 2 * 128 * 49 * 64 * 25, 2 * 6272];
        let (gf, df): (u64, u64) = (g.iter().sum(), d.iter().sum());
        // D step: G forward on B; D forward, params and input (but the
        // first layer's) on 2B. G step: D forward and every input gradient
        // on B; G forward, params and input (but the first's) on B.
        let expected = gf * b + (3 * df - d_conv1) * 2 * b + 2 * df * b + (3 * gf - g_linear) * b;
        let plan = StepPlan::new(&spec);
        assert_eq!(plan.matmul_flops, expected);
        assert_eq!((plan.generator_rows, plan.discriminator_rows), (256, 512));
        // Trainable: G's Linear, three BN scale/shift pairs, three ConvT
        // kernels; D's two conv kernels with biases and the Linear.
        assert_eq!(
            plan.generator_params,
            100 * 12544 + 2 * (12544 + 128 + 64) + 256 * 128 * 25 + 128 * 64 * 25 + 64 * 25
        );
        assert_eq!(
            plan.discriminator_params,
            64 * 25 + 64 + 128 * 64 * 25 + 128 + 6272 + 1
        );
        assert_eq!(plan.generator_widest, 12544);

        // wgan-gp: five critic steps, each with the penalty's D forward,
        // parameter and input gradients (the first layer's too) over B
        // rows, and the tangent's forward.
        let gp = ModelSpec::build(
            ModelKind::Dcgan,
            &Overrides {
                game: crate::model::GameFlags {
                    loss: Some(crate::model::LossKind::WganGp),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        let d_step = gf * b + (3 * df - d_conv1) * 2 * b;
        let g_step = 2 * df * b + (3 * gf - g_linear) * b;
        let gp_plan = StepPlan::new(&gp);
        assert_eq!(gp_plan.matmul_flops, 5 * (d_step + 4 * df * b) + g_step);
        let (m, gm) = (plan.memory(), gp_plan.memory());
        assert_eq!(m.gradient_penalty, 0);
        assert_eq!(
            gm.gradient_penalty,
            4 * plan.discriminator_params as u128
                + 8 * 256 * plan.discriminator_units as u128
                + 12 * 256 * 784
        );
        assert_eq!(gm.total(), m.total() + gm.gradient_penalty);
    }

    #[test]
    fn small_batches_still_hold_the_sample_grid() {
        let spec = ModelSpec::build(
            ModelKind::Deep,
            &Overrides {
                batch_size: Some(8),
                ..Default::default()
            },
        );
        assert_eq!(StepPlan::new(&spec).generator_rows, SAMPLE_GRID_ROWS);
        let plan = StepPlan::with_sample_rows(&spec, 3);
        assert_eq!((plan.generator_rows, plan.discriminator_rows), (8, 16));
    }
}
