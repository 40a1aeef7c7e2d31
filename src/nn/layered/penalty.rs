//! The gradient penalty's double backward through a [`LayerNetwork`] critic
//! (WGAN-GP): the gradient with respect to the critic's parameters of
//! `P = <v, grad_x D(x)>` with `v = dP/d(grad_x D)` held fixed, which is the
//! penalty's parameter gradient (the chain rule through `grad_x D`).
//!
//! `<v, grad_x D(x)>` is the directional derivative of D at x along v, so
//! it is computed in forward mode: a tangent `t` runs through the network
//! beside the values, `t' = W t` through a (transposed) convolution or a
//! Linear (no bias), `t' = act'(z) m t` through an activation with its
//! dropout mask m (the op's `activation_backward` applied to `t`). Its
//! reverse pass has two parts:
//!
//! - the tangent part: each product's weight gradient `sum_rows u t^T`,
//!   where `u` is the critic's ordinary gradient with respect to the
//!   product's output (the backward pass of `D` with ones, which the caller
//!   has just run, leaves it in the network's output gradients);
//! - the curvature part: an adjoint `a` of the values, zero until a curved
//!   activation (sigmoid, tanh) adds `u t act''(z) m`
//!   ([`Backend::activation_curvature`]), then run down by the ordinary
//!   backward of each op, its weights' and biases' gradients with it.
//!   ReLU and LeakyReLU critics (every built-in model) have none.
//!
//! Both are added into the parameter gradients the loss's backward wrote.
//! Batch norm is refused: a penalty is computed per example, and batch
//! statistics tie the examples together (Gulrajani et al. 2017, 4).

use super::{LayerNetwork, Op};
use crate::backend::conv_params::{Conv2dParams, ConvTranspose2dParams};
use crate::backend::{Backend, Mat, Tensor};
use crate::error::{Error, Result};
use crate::nn::Pass;

/// The buffers of a critic's double backward for up to `rows` rows.
pub struct PenaltyBuffers {
    rows: usize,
    /// The tangent of each op's output but the last's: [rows, len].
    tangents: Vec<Tensor>,
    /// The curvature adjoint of each op's output but the last's (none when
    /// no activation is curved).
    adjoints: Vec<Tensor>,
    /// A curvature term to add to an adjoint: [rows, the longest op output].
    curvature: Tensor,
    /// A second gradient of each state tensor (trainable ones only).
    grads: Vec<Option<Tensor>>,
}

impl LayerNetwork {
    /// Whether an activation of the network has a second derivative
    /// (sigmoid, tanh), so the double backward has a curvature part.
    fn has_curved_activation(&self) -> bool {
        self.ops
            .iter()
            .any(|op| matches!(op, Op::Activation { act, .. } if act.is_curved()))
    }

    /// Allocates the double backward's buffers for `rows` rows; an error for
    /// a network with batch norm.
    pub fn penalty_buffers<B: Backend>(
        &self,
        backend: &mut B,
        rows: usize,
    ) -> Result<PenaltyBuffers> {
        if self.has_batch_norm() {
            return Err(Error::config(
                "--loss",
                "wgan-gp penalises each example's gradient, and batch norm in the critic ties the examples of a batch together; use a critic without batch norm",
            ));
        }
        let last = self.ops.len() - 1;
        let mut tangents = Vec::with_capacity(last);
        let mut adjoints = Vec::new();
        for &len in &self.op_lens[..last] {
            tangents.push(backend.alloc(rows * len)?);
        }
        let curved = self.has_curved_activation();
        if curved {
            for &len in &self.op_lens[..last] {
                adjoints.push(backend.alloc(rows * len)?);
            }
        }
        let longest = self.op_lens.iter().copied().max().unwrap_or(1);
        let curvature = backend.alloc(if curved { rows * longest } else { 1 })?;
        let mut grads = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            grads.push(match t.trained {
                Some(_) => Some(backend.alloc(t.value.len as usize)?),
                None => None,
            });
        }
        Ok(PenaltyBuffers {
            rows,
            tangents,
            adjoints,
            curvature,
            grads,
        })
    }

    /// Adds the gradient of `<v, grad_x D(x)>` with respect to every
    /// parameter into the parameter gradients. Call it right after
    /// [`forward`](Self::forward) of `input` (x, `rows` rows) into `output`
    /// with `pass`, and [`backward`](Self::backward) of `ones` (a 1 per row)
    /// with the same arguments; `tangent` is v, `rows * input_len()` values.
    #[allow(clippy::too_many_arguments)]
    pub fn penalty_backward<B: Backend>(
        &self,
        backend: &mut B,
        rows: usize,
        input: Tensor,
        pass: Pass,
        output: Tensor,
        ones: Tensor,
        tangent: Tensor,
        buffers: &PenaltyBuffers,
    ) {
        assert!(
            rows <= buffers.rows,
            "LayerNetwork::penalty_backward: {rows} rows, buffers for {}",
            buffers.rows
        );
        let last = self.ops.len() - 1;
        let len = |k: usize| rows * self.op_lens[k];
        // The gradient of D with respect to op k's output.
        let u = |k: usize| {
            if k == last {
                ones
            } else {
                self.output_grads[k].prefix(len(k))
            }
        };
        // The tangent of op k's input.
        let t_in = |k: usize| {
            if k == 0 {
                tangent
            } else {
                buffers.tangents[k - 1].prefix(len(k - 1))
            }
        };

        // The tangent forward (the last op's output tangent is not needed).
        for (k, op) in self.ops.iter().enumerate().take(last) {
            let t_out = buffers.tangents[k].prefix(len(k));
            let (_, y) = self.views(k, rows, input, output);
            match op {
                Op::Conv { params, weight, .. } => {
                    let p = Conv2dParams {
                        batch: rows,
                        ..*params
                    };
                    backend.conv2d_forward(&p, t_in(k), self.value(*weight), None, t_out);
                }
                Op::ConvTranspose { params, weight, .. } => {
                    let p = ConvTranspose2dParams {
                        batch: rows,
                        ..*params
                    };
                    backend.conv_transpose2d_forward(&p, t_in(k), self.value(*weight), None, t_out);
                }
                Op::Activation { act, dropout } => {
                    let cols = self.op_lens[k];
                    backend.activation_backward(
                        Mat::dense(t_in(k), rows, cols),
                        Mat::dense(y, rows, cols),
                        *act,
                        self.dropout(*dropout, pass),
                        Mat::dense(t_out, rows, cols),
                    );
                }
                Op::BatchNorm { .. } => unreachable!("penalty_buffers refuses batch norm"),
            }
        }

        // The tangent part: sum_rows u t^T into each weight's gradient.
        let scratch = |i: usize| buffers.grads[i].expect("a scratch gradient per trainable tensor");
        for (k, op) in self.ops.iter().enumerate() {
            match op {
                Op::Conv { params, weight, .. } => {
                    let p = Conv2dParams {
                        batch: rows,
                        ..*params
                    };
                    backend.conv2d_backward_params(&p, t_in(k), u(k), scratch(*weight), None);
                    backend.add_scaled(self.grad(*weight), scratch(*weight), 1.0);
                }
                Op::ConvTranspose { params, weight, .. } => {
                    let p = ConvTranspose2dParams {
                        batch: rows,
                        ..*params
                    };
                    backend.conv_transpose2d_backward_params(
                        &p,
                        t_in(k),
                        u(k),
                        scratch(*weight),
                        None,
                    );
                    backend.add_scaled(self.grad(*weight), scratch(*weight), 1.0);
                }
                Op::Activation { .. } | Op::BatchNorm { .. } => {}
            }
        }

        if buffers.adjoints.is_empty() {
            return;
        }
        // The curvature part: the adjoint of op k's output, from the top.
        let mut adjoint: Option<Tensor> = None;
        for (k, op) in self.ops.iter().enumerate().rev() {
            let (x, y) = self.views(k, rows, input, output);
            let below = (k > 0).then(|| buffers.adjoints[k - 1].prefix(len(k - 1)));
            match op {
                Op::Activation { act, dropout } => {
                    let Some(below) = below else { break };
                    let cols = self.op_lens[k];
                    let view = |t: Tensor| Mat::dense(t, rows, cols);
                    let dropout = self.dropout(*dropout, pass);
                    if let Some(above) = adjoint {
                        backend.activation_backward(
                            view(above),
                            view(y),
                            *act,
                            dropout,
                            view(below),
                        );
                    }
                    if act.is_curved() {
                        let term = match adjoint {
                            Some(_) => buffers.curvature.prefix(len(k)),
                            None => below,
                        };
                        backend.activation_curvature(
                            view(u(k)),
                            view(t_in(k)),
                            view(y),
                            *act,
                            dropout,
                            view(term),
                        );
                        if adjoint.is_some() {
                            backend.add_scaled(below, term, 1.0);
                        }
                        adjoint = Some(below);
                    } else if adjoint.is_some() {
                        adjoint = Some(below);
                    }
                }
                Op::Conv {
                    params,
                    weight,
                    bias,
                } => {
                    let Some(above) = adjoint else { continue };
                    let p = Conv2dParams {
                        batch: rows,
                        ..*params
                    };
                    let db = bias.map(scratch);
                    backend.conv2d_backward_params(&p, x, above, scratch(*weight), db);
                    self.add_into_grads(backend, *weight, *bias, buffers);
                    if let Some(below) = below {
                        backend.conv2d_backward_input(&p, above, self.value(*weight), below);
                    }
                    adjoint = below;
                }
                Op::ConvTranspose {
                    params,
                    weight,
                    bias,
                } => {
                    let Some(above) = adjoint else { continue };
                    let p = ConvTranspose2dParams {
                        batch: rows,
                        ..*params
                    };
                    let db = bias.map(scratch);
                    backend.conv_transpose2d_backward_params(&p, x, above, scratch(*weight), db);
                    self.add_into_grads(backend, *weight, *bias, buffers);
                    if let Some(below) = below {
                        backend.conv_transpose2d_backward_input(
                            &p,
                            above,
                            self.value(*weight),
                            below,
                        );
                    }
                    adjoint = below;
                }
                Op::BatchNorm { .. } => unreachable!("penalty_buffers refuses batch norm"),
            }
        }
    }

    /// Adds the scratch gradients of a product's weight (and bias) into
    /// their gradients.
    fn add_into_grads<B: Backend>(
        &self,
        backend: &mut B,
        weight: usize,
        bias: Option<usize>,
        buffers: &PenaltyBuffers,
    ) {
        for i in std::iter::once(weight).chain(bias) {
            let scratch = buffers.grads[i].expect("a scratch gradient per trainable tensor");
            backend.add_scaled(self.grad(i), scratch, 1.0);
        }
    }
}
