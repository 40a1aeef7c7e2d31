//! A network of layers of any kind ([`LayerStack`]) on a backend: every
//! tensor of its state_dict, the per-op activation buffers, and the forward
//! and backward passes written once against the primitive ops of
//! [`Backend`] (`conv2d_*`, `conv_transpose2d_*`, `batch_norm_*`,
//! `activation_*`).
//!
//! The layer list is compiled into ops once:
//!
//! - `Linear` runs as a 1x1 convolution of a 1x1 image: its weight
//!   `[out, in]` is the same memory as `[out, in, 1, 1]`, and the product is
//!   the same implicit GEMM (M = rows, N = out, K = in).
//! - `BatchNorm` takes the activation that follows it into its normalise
//!   kernel; a dropout after that stays an op of its own.
//! - An activation takes the dropout that follows it (one element-wise op).
//! - `Reshape` and `Flatten` are no ops at all: NCHW memory already is the
//!   flat vector PyTorch's `Flatten` and `Unflatten` see.
//!
//! Batch norm runs per [`Pass`]: batch statistics and a running update in
//! training, the running statistics in [`Pass::Eval`], and the batch's own
//! statistics without touching the running ones in [`Pass::BatchStats`].

mod penalty;

pub use penalty::PenaltyBuffers;

use super::{Pass, MAX_TRAIN_BATCHES};
use crate::backend::conv_params::{BatchNormParams, Conv2dParams, ConvTranspose2dParams};
use crate::backend::{Backend, BatchNormTensors, Dropout, Mat, Tensor};
use crate::checkpoint::NetworkState;
use crate::error::{Error, Result};
use crate::model::{Activation, AdamSettings, Layer, LayerStack, Shape};
use crate::rng;

/// Dropout layers a network may have per pass before the mask streams of
/// two passes would meet.
const STREAMS_PER_PASS: u32 = 64;

/// One tensor of the state_dict on the backend.
struct StateTensor {
    value: Tensor,
    /// Gradient and Adam's moments, for a trainable tensor.
    trained: Option<Trained>,
}

#[derive(Clone, Copy)]
struct Trained {
    grad: Tensor,
    adam_m: Tensor,
    adam_v: Tensor,
}

/// One recorded op of the compiled network. Weights are indices into the
/// state tensors; parameter structs hold batch 1 and get the pass's rows.
enum Op {
    Conv {
        params: Conv2dParams,
        weight: usize,
        bias: Option<usize>,
    },
    ConvTranspose {
        params: ConvTranspose2dParams,
        weight: usize,
        bias: Option<usize>,
    },
    BatchNorm {
        params: BatchNormParams,
        act: Activation,
        /// gamma, beta, running_mean, running_var.
        state: [usize; 4],
        saved_mean: Tensor,
        saved_inv_std: Tensor,
        /// Running statistics [`Pass::BatchStats`] updates instead of the real ones.
        scratch_mean: Tensor,
        scratch_var: Tensor,
        /// dz = dy * act'(y) before the normalisation's backward.
        dz: Tensor,
        /// Where dx, dgamma and dbeta go when they are not wanted.
        spare_dx: Tensor,
        spare_dgamma: Tensor,
        spare_dbeta: Tensor,
    },
    Activation {
        act: Activation,
        /// Dropout probability and the dropout layer's index.
        dropout: Option<(f32, u32)>,
    },
}

/// A layer list resident on a backend.
pub struct LayerNetwork {
    pub stack: LayerStack,
    max_rows: usize,
    input_len: usize,
    output_len: usize,
    tensors: Vec<StateTensor>,
    ops: Vec<Op>,
    /// Values per row of each op's output.
    op_lens: Vec<usize>,
    /// Each op's output and the gradient with respect to it: [max_rows, len].
    outputs: Vec<Tensor>,
    output_grads: Vec<Tensor>,
}

impl LayerNetwork {
    /// Allocates the network on `backend` with room for `max_rows` rows and
    /// uploads its initial values ([`LayerStack::initial_values`]; zero
    /// moments).
    pub fn new<B: Backend>(
        backend: &mut B,
        stack: &LayerStack,
        max_rows: usize,
        seed: u32,
        network_id: u32,
    ) -> Result<Self> {
        let shapes = stack.shapes()?;
        let inputs = stack.inputs()?;
        if stack.layers.len() > STREAMS_PER_PASS as usize {
            return Err(Error::config(
                "layers",
                format!(
                    "{} layers are more than {STREAMS_PER_PASS}",
                    stack.layers.len()
                ),
            ));
        }
        let state = stack.state_dict("")?;
        let initial = stack.initial_values(seed, network_id)?;
        let mut tensors = Vec::with_capacity(state.len());
        for ((_, t), values) in state.iter().zip(&initial) {
            if t.shape.is_empty() {
                // num_batches_tracked: a count the trainer derives from the clock.
                tensors.push(StateTensor {
                    value: backend.alloc(0)?,
                    trained: None,
                });
                continue;
            }
            let value = backend.alloc(values.len())?;
            backend.write(value, values)?;
            let trained = if t.trainable {
                Some(Trained {
                    grad: backend.alloc(values.len())?,
                    adam_m: backend.alloc(values.len())?,
                    adam_v: backend.alloc(values.len())?,
                })
            } else {
                None
            };
            tensors.push(StateTensor { value, trained });
        }

        // The state tensors of each layer, in state_dict order.
        let mut next = 0;
        let layer_tensors: Vec<Vec<usize>> = stack
            .layers
            .iter()
            .zip(&inputs)
            .map(|(layer, input)| {
                let n = if layer.is_module() {
                    layer.tensors(*input).len()
                } else {
                    0
                };
                next += n;
                (next - n..next).collect()
            })
            .collect();

        let mut ops = Vec::new();
        let mut op_lens = Vec::new();
        let mut i = 0;
        while i < stack.layers.len() {
            let (input, t) = (inputs[i], &layer_tensors[i]);
            let mut out_shape = shapes[i];
            let op = match stack.layers[i] {
                Layer::Linear { out, bias } => Some(Op::Conv {
                    params: Conv2dParams {
                        batch: 1,
                        in_channels: input.len(),
                        out_channels: out,
                        in_h: 1,
                        in_w: 1,
                        kernel: 1,
                        stride: 1,
                        padding: 0,
                    },
                    weight: t[0],
                    bias: bias.then(|| t[1]),
                }),
                Layer::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    bias,
                } => Some(Op::Conv {
                    params: Conv2dParams {
                        batch: 1,
                        in_channels: input.channels,
                        out_channels,
                        in_h: input.height,
                        in_w: input.width,
                        kernel,
                        stride,
                        padding,
                    },
                    weight: t[0],
                    bias: bias.then(|| t[1]),
                }),
                Layer::ConvTranspose2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    output_padding,
                    bias,
                } => Some(Op::ConvTranspose {
                    params: ConvTranspose2dParams {
                        batch: 1,
                        in_channels: input.channels,
                        out_channels,
                        in_h: input.height,
                        in_w: input.width,
                        kernel,
                        stride,
                        padding,
                        output_padding,
                    },
                    weight: t[0],
                    bias: bias.then(|| t[1]),
                }),
                Layer::BatchNorm { momentum, eps } => {
                    let act = match stack.layers.get(i + 1) {
                        Some(Layer::Activation(act)) => {
                            i += 1;
                            out_shape = shapes[i];
                            *act
                        }
                        _ => Activation::Identity,
                    };
                    let c = input.channels;
                    let len = max_rows * input.len();
                    Some(Op::BatchNorm {
                        params: BatchNormParams {
                            batch: 1,
                            channels: c,
                            spatial: input.height * input.width,
                            momentum,
                            eps,
                            groups: 1,
                        },
                        act,
                        state: [t[0], t[1], t[2], t[3]],
                        saved_mean: backend.alloc(MAX_TRAIN_BATCHES * c)?,
                        saved_inv_std: backend.alloc(MAX_TRAIN_BATCHES * c)?,
                        scratch_mean: backend.alloc(c)?,
                        scratch_var: backend.alloc(c)?,
                        dz: backend.alloc(len)?,
                        spare_dx: backend.alloc(len)?,
                        spare_dgamma: backend.alloc(c)?,
                        spare_dbeta: backend.alloc(c)?,
                    })
                }
                Layer::Activation(act) => {
                    let dropout = match stack.layers.get(i + 1) {
                        Some(Layer::Dropout(p)) if *p > 0.0 => {
                            i += 1;
                            out_shape = shapes[i];
                            Some((*p, i as u32))
                        }
                        _ => None,
                    };
                    (act != Activation::Identity || dropout.is_some())
                        .then_some(Op::Activation { act, dropout })
                }
                Layer::Dropout(p) => (p > 0.0).then_some(Op::Activation {
                    act: Activation::Identity,
                    dropout: Some((p, i as u32)),
                }),
                Layer::Reshape(_) | Layer::Flatten => None,
            };
            if let Some(op) = op {
                ops.push(op);
                op_lens.push(out_shape.len());
            }
            i += 1;
        }
        if ops.is_empty() {
            return Err(Error::config("layers", "the network computes nothing"));
        }
        let mut outputs = Vec::with_capacity(ops.len());
        let mut output_grads = Vec::with_capacity(ops.len());
        for len in &op_lens {
            outputs.push(backend.alloc(max_rows * len)?);
            output_grads.push(backend.alloc(max_rows * len)?);
        }
        let output: Shape = stack.output()?;
        Ok(LayerNetwork {
            stack: stack.clone(),
            max_rows,
            input_len: stack.input.len(),
            output_len: output.len(),
            tensors,
            ops,
            op_lens,
            outputs,
            output_grads,
        })
    }

    /// Values per row of the network's input.
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// Values per row of the network's output.
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// The most rows a pass takes.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }

    /// The network's own output buffer (the last op's) for `rows` rows.
    pub fn output(&self, rows: usize) -> Tensor {
        self.outputs[self.ops.len() - 1].prefix(rows * self.output_len)
    }

    fn value(&self, i: usize) -> Tensor {
        self.tensors[i].value
    }

    fn grad(&self, i: usize) -> Tensor {
        self.trained(i).grad
    }

    fn trained(&self, i: usize) -> Trained {
        self.tensors[i]
            .trained
            .expect("the layer compiler indexes trainable tensors only")
    }

    /// The input and output of op `k` for `rows` rows.
    fn views(&self, k: usize, rows: usize, input: Tensor, output: Tensor) -> (Tensor, Tensor) {
        let x = if k == 0 {
            input
        } else {
            self.outputs[k - 1].prefix(rows * self.op_lens[k - 1])
        };
        let y = if k + 1 == self.ops.len() {
            output
        } else {
            self.outputs[k].prefix(rows * self.op_lens[k])
        };
        (x, y)
    }

    /// The dropout of an activation op in `pass` (None outside training).
    fn dropout(&self, dropout: Option<(f32, u32)>, pass: Pass) -> Option<Dropout> {
        match (dropout, pass) {
            (
                Some((p, layer)),
                Pass::Train {
                    dropout: Some(pass),
                    ..
                },
            ) => Some(Dropout {
                p,
                stream: rng::stream::DROPOUT + STREAMS_PER_PASS * pass + layer,
            }),
            _ => None,
        }
    }

    /// The batch-norm tensors of an op.
    fn bn_tensors(&self, op: &Op, pass: Pass) -> BatchNormTensors {
        let Op::BatchNorm {
            state,
            saved_mean,
            saved_inv_std,
            scratch_mean,
            scratch_var,
            ..
        } = op
        else {
            unreachable!("bn_tensors of a batch-norm op only")
        };
        let (running_mean, running_var) = match pass {
            Pass::BatchStats => (*scratch_mean, *scratch_var),
            _ => (self.value(state[2]), self.value(state[3])),
        };
        // One [channels] row of saved statistics a batch of the pass.
        let saved = pass.batches() * (saved_mean.len as usize / MAX_TRAIN_BATCHES);
        BatchNormTensors {
            gamma: self.value(state[0]),
            beta: self.value(state[1]),
            running_mean,
            running_var,
            saved_mean: saved_mean.prefix(saved),
            saved_inv_std: saved_inv_std.prefix(saved),
        }
    }

    /// Forward pass over `rows` rows: `input` holds `rows * input_len()`
    /// values and `output` takes `rows * output_len()` (handles of exactly
    /// that length, e.g. [`Tensor::prefix`]).
    pub fn forward<B: Backend>(
        &self,
        backend: &mut B,
        rows: usize,
        input: Tensor,
        pass: Pass,
        output: Tensor,
    ) {
        for (k, op) in self.ops.iter().enumerate() {
            let (x, y) = self.views(k, rows, input, output);
            match op {
                Op::Conv {
                    params,
                    weight,
                    bias,
                } => {
                    let p = Conv2dParams {
                        batch: rows,
                        ..*params
                    };
                    let b = bias.map(|b| self.value(b));
                    backend.conv2d_forward(&p, x, self.value(*weight), b, y);
                }
                Op::ConvTranspose {
                    params,
                    weight,
                    bias,
                } => {
                    let p = ConvTranspose2dParams {
                        batch: rows,
                        ..*params
                    };
                    let b = bias.map(|b| self.value(b));
                    backend.conv_transpose2d_forward(&p, x, self.value(*weight), b, y);
                }
                Op::BatchNorm { params, act, .. } => {
                    let p = BatchNormParams {
                        batch: rows,
                        groups: pass.batches(),
                        ..*params
                    };
                    let bn = self.bn_tensors(op, pass);
                    match pass {
                        Pass::Eval => backend.batch_norm_forward_eval(&p, *act, x, &bn, y),
                        _ => backend.batch_norm_forward_train(&p, *act, x, &bn, y),
                    }
                }
                Op::Activation { act, dropout } => {
                    let len = self.op_lens[k];
                    backend.activation_forward(
                        Mat::dense(x, rows, len),
                        *act,
                        self.dropout(*dropout, pass),
                        Mat::dense(y, rows, len),
                    );
                }
            }
        }
    }

    /// Backward pass after [`forward`](Self::forward) with the same `rows`,
    /// `input`, `pass` and `output`; `d_output` is the loss gradient with
    /// respect to `output`. Writes the parameter gradients when
    /// `param_grads`, and the gradient with respect to the input into
    /// `d_input` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<B: Backend>(
        &self,
        backend: &mut B,
        rows: usize,
        input: Tensor,
        pass: Pass,
        output: Tensor,
        d_output: Tensor,
        param_grads: bool,
        d_input: Option<Tensor>,
    ) {
        let last = self.ops.len() - 1;
        for (k, op) in self.ops.iter().enumerate().rev() {
            let (x, y) = self.views(k, rows, input, output);
            let dy = if k == last {
                d_output
            } else {
                self.output_grads[k].prefix(rows * self.op_lens[k])
            };
            let dx = if k == 0 {
                d_input
            } else {
                Some(self.output_grads[k - 1].prefix(rows * self.op_lens[k - 1]))
            };
            match op {
                Op::Conv {
                    params,
                    weight,
                    bias,
                } => {
                    let p = Conv2dParams {
                        batch: rows,
                        ..*params
                    };
                    if param_grads {
                        let db = bias.map(|b| self.grad(b));
                        backend.conv2d_backward_params(&p, x, dy, self.grad(*weight), db);
                    }
                    if let Some(dx) = dx {
                        backend.conv2d_backward_input(&p, dy, self.value(*weight), dx);
                    }
                }
                Op::ConvTranspose {
                    params,
                    weight,
                    bias,
                } => {
                    let p = ConvTranspose2dParams {
                        batch: rows,
                        ..*params
                    };
                    if param_grads {
                        let db = bias.map(|b| self.grad(b));
                        backend.conv_transpose2d_backward_params(&p, x, dy, self.grad(*weight), db);
                    }
                    if let Some(dx) = dx {
                        backend.conv_transpose2d_backward_input(&p, dy, self.value(*weight), dx);
                    }
                }
                Op::BatchNorm {
                    params,
                    act,
                    state,
                    dz,
                    spare_dx,
                    spare_dgamma,
                    spare_dbeta,
                    ..
                } => {
                    let p = BatchNormParams {
                        batch: rows,
                        groups: pass.batches(),
                        ..*params
                    };
                    let len = rows * params.channels * params.spatial;
                    let dz = if *act == Activation::Identity {
                        dy
                    } else {
                        let dz = dz.prefix(len);
                        let per_row = self.op_lens[k];
                        backend.activation_backward(
                            Mat::dense(dy, rows, per_row),
                            Mat::dense(y, rows, per_row),
                            *act,
                            None,
                            Mat::dense(dz, rows, per_row),
                        );
                        dz
                    };
                    let (dgamma, dbeta) = if param_grads {
                        (self.grad(state[0]), self.grad(state[1]))
                    } else {
                        (*spare_dgamma, *spare_dbeta)
                    };
                    let dx = dx.unwrap_or_else(|| spare_dx.prefix(len));
                    let bn = self.bn_tensors(op, pass);
                    backend.batch_norm_backward(&p, x, dz, &bn, dx, dgamma, dbeta);
                }
                Op::Activation { act, dropout } => {
                    if let Some(dx) = dx {
                        let len = self.op_lens[k];
                        backend.activation_backward(
                            Mat::dense(dy, rows, len),
                            Mat::dense(y, rows, len),
                            *act,
                            self.dropout(*dropout, pass),
                            Mat::dense(dx, rows, len),
                        );
                    }
                }
            }
        }
    }

    /// One Adam step on every trainable tensor.
    pub fn adam_update<B: Backend>(&self, backend: &mut B, adam: AdamSettings) {
        for t in &self.tensors {
            if let Some(tr) = t.trained {
                backend.adam_update(t.value, tr.grad, tr.adam_m, tr.adam_v, adam);
            }
        }
    }

    /// One RMSprop step on every trainable tensor (square averages in the
    /// Adam second-moment buffers).
    pub fn rmsprop_update<B: Backend>(
        &self,
        backend: &mut B,
        settings: crate::model::RmsPropSettings,
    ) {
        for t in &self.tensors {
            if let Some(tr) = t.trained {
                backend.rmsprop_update(t.value, tr.grad, tr.adam_v, settings);
            }
        }
    }

    /// `self = decay * self + (1 - decay) * source` over every float state
    /// tensor (parameters and running statistics; see
    /// [`Net::ema_update_from`](super::Net::ema_update_from)). `source` has
    /// the same layer list.
    pub fn ema_update_from<B: Backend>(&self, backend: &mut B, source: &LayerNetwork, decay: f32) {
        assert_eq!(
            self.stack, source.stack,
            "LayerNetwork::ema_update_from: another layer list"
        );
        for (avg, src) in self.tensors.iter().zip(&source.tensors) {
            if avg.value.len > 0 {
                backend.ema_update(avg.value, src.value, decay);
            }
        }
    }

    /// Every trainable tensor clamped to [-limit, limit].
    pub fn clamp_params<B: Backend>(&self, backend: &mut B, limit: f32) {
        for t in &self.tensors {
            if t.trained.is_some() {
                backend.clamp_values(t.value, limit);
            }
        }
    }

    /// Sets `stats[slot]` if any trainable value is NaN or infinite.
    pub fn finite_check<B: Backend>(&self, backend: &mut B, stats: Tensor, slot: u32) {
        for t in &self.tensors {
            if t.trained.is_some() {
                backend.finite_check(t.value, stats, slot);
            }
        }
    }

    /// The network's state in the checkpoint's layout (`batches_tracked`
    /// left at 0 for the caller, which counts passes).
    pub fn state<B: Backend>(&self, backend: &mut B) -> Result<NetworkState> {
        let mut state = NetworkState::default();
        for t in &self.tensors {
            match t.trained {
                Some(tr) => {
                    state.params.extend(backend.read(t.value)?);
                    state.adam_m.extend(backend.read(tr.adam_m)?);
                    state.adam_v.extend(backend.read(tr.adam_v)?);
                }
                None if t.value.len > 0 => state.buffers.extend(backend.read(t.value)?),
                None => {}
            }
        }
        Ok(state)
    }

    /// The parameter gradients of the last backward pass, in the layout of
    /// [`state`](Self::state)'s `params`.
    pub fn gradients<B: Backend>(&self, backend: &mut B) -> Result<Vec<f32>> {
        let mut grads = Vec::new();
        for t in &self.tensors {
            if let Some(tr) = t.trained {
                grads.extend(backend.read(tr.grad)?);
            }
        }
        Ok(grads)
    }

    /// Restores a [`state`](Self::state); an error if its lengths differ.
    pub fn restore<B: Backend>(&self, backend: &mut B, state: &NetworkState) -> Result<()> {
        let (mut p, mut b) = (0, 0);
        let mismatch = || Error::config("checkpoint", "the network state does not fit the model");
        for t in &self.tensors {
            let len = t.value.len as usize;
            match t.trained {
                Some(tr) => {
                    let range = p..p + len;
                    let part = |v: &[f32]| v.get(range.clone()).map(<[f32]>::to_vec);
                    backend.write(t.value, &part(&state.params).ok_or_else(mismatch)?)?;
                    backend.write(tr.adam_m, &part(&state.adam_m).ok_or_else(mismatch)?)?;
                    backend.write(tr.adam_v, &part(&state.adam_v).ok_or_else(mismatch)?)?;
                    p += len;
                }
                None if len > 0 => {
                    let values = state.buffers.get(b..b + len).ok_or_else(mismatch)?;
                    backend.write(t.value, values)?;
                    b += len;
                }
                None => {}
            }
        }
        if p != state.params.len()
            || p != state.adam_m.len()
            || p != state.adam_v.len()
            || b != state.buffers.len()
        {
            return Err(mismatch());
        }
        Ok(())
    }

    /// Whether any layer is a batch norm.
    pub fn has_batch_norm(&self) -> bool {
        self.ops.iter().any(|op| matches!(op, Op::BatchNorm { .. }))
    }
}
