//! Networks on a backend, below everything that trains or runs one: the GAN
//! step (`crate::train`), the evaluation's classifier (`crate::eval`) and
//! `gan-gpu sample`. An MLP (`model::NetworkSpec`) runs as a [`Network`]
//! on the fused linear ops; a layer list (`model::LayerStack`) as a
//! [`LayerNetwork`] on the primitive ops; [`Net`] is either, built from a
//! `model::NetSpec`.

pub mod layered;
pub mod network;

pub use layered::{LayerNetwork, PenaltyBuffers};
pub use network::Network;

use crate::backend::{Backend, Mat, Tensor};
use crate::checkpoint::NetworkState;
use crate::error::Result;
use crate::model::{AdamSettings, NetSpec};

/// What a forward pass is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Training: batch norm uses and tracks the batch's statistics; dropout
    /// draws the masks of pass number `dropout` (None: no dropout). The rows
    /// are `batches` equal consecutive batches (1 to [`MAX_TRAIN_BATCHES`]),
    /// each of which batch norm normalises by its own statistics, updating
    /// the running ones once a batch in order, as that many separate
    /// PyTorch passes would: the D step's real and generated rows are 2.
    Train {
        dropout: Option<u32>,
        batches: usize,
    },
    /// Sampling and evaluating: batch norm uses its running statistics
    /// (PyTorch's `eval()`, Keras's `training=False`); no dropout.
    Eval,
    /// Sampling with each batch's own statistics and the running ones left
    /// alone (how `pytorch/examples` draws its grids); no dropout.
    BatchStats,
}

/// The most batches one training pass may hold ([`Pass::Train`]).
pub const MAX_TRAIN_BATCHES: usize = 2;

impl Pass {
    /// A training pass over one batch.
    pub fn train(dropout: Option<u32>) -> Pass {
        Pass::Train {
            dropout,
            batches: 1,
        }
    }

    /// The separate batches batch norm sees in this pass (1 outside training).
    pub fn batches(self) -> usize {
        match self {
            Pass::Train { batches, .. } => batches,
            Pass::Eval | Pass::BatchStats => 1,
        }
    }

    /// The dropout pass number of an MLP's forward.
    fn mlp_dropout(self) -> Option<u32> {
        match self {
            Pass::Train { dropout, .. } => dropout,
            Pass::Eval | Pass::BatchStats => None,
        }
    }
}

/// Either kind of network.
pub enum Net {
    Mlp(Network),
    Layers(LayerNetwork),
}

/// The tensor of a dense view that starts at its tensor's first element,
/// cut to the view's length: what a [`LayerNetwork`] takes.
fn dense_prefix(m: Mat) -> Tensor {
    assert!(
        m.offset == 0 && m.stride == m.cols,
        "a layer network reads and writes dense views from their tensor's start"
    );
    m.tensor.prefix(m.rows as usize * m.cols as usize)
}

impl Net {
    /// Allocates `spec` on `backend` with room for `max_rows` rows.
    pub fn new<B: Backend>(
        backend: &mut B,
        spec: &NetSpec,
        max_rows: usize,
        seed: u32,
        network_id: u32,
    ) -> Result<Self> {
        Ok(match spec {
            NetSpec::Mlp(mlp) => Net::Mlp(Network::new(backend, mlp, max_rows, seed, network_id)?),
            NetSpec::Layers(stack) => Net::Layers(LayerNetwork::new(
                backend, stack, max_rows, seed, network_id,
            )?),
        })
    }

    /// Allocates `spec` as a [`LayerNetwork`] whatever its kind (what the
    /// gradient penalty's double backward runs on), starting from the
    /// weights [`new`](Self::new) would give it: an MLP's own initial
    /// weights (its Linear layers are numbered one by one, a layer list's
    /// by module), in the same state_dict layout.
    pub fn new_as_layers<B: Backend>(
        backend: &mut B,
        spec: &NetSpec,
        max_rows: usize,
        seed: u32,
        network_id: u32,
    ) -> Result<Self> {
        let net = LayerNetwork::new(backend, &spec.stack(), max_rows, seed, network_id)?;
        if let NetSpec::Mlp(mlp) = spec {
            let params =
                crate::model::NetworkLayout::new(mlp).initial_params(mlp, seed, network_id);
            let zeros = vec![0.0; params.len()];
            net.restore(
                backend,
                &NetworkState {
                    params,
                    adam_m: zeros.clone(),
                    adam_v: zeros,
                    ..NetworkState::default()
                },
            )?;
        }
        Ok(Net::Layers(net))
    }

    /// The MLP, if this network is one.
    pub fn mlp(&self) -> Option<&Network> {
        match self {
            Net::Mlp(n) => Some(n),
            Net::Layers(_) => None,
        }
    }

    /// The layer network, if this network is one.
    pub fn layers(&self) -> Option<&LayerNetwork> {
        match self {
            Net::Mlp(_) => None,
            Net::Layers(n) => Some(n),
        }
    }

    /// The network's own output buffer for `rows` rows.
    pub fn output(&self, rows: usize) -> Mat {
        match self {
            Net::Mlp(n) => n.output(rows),
            Net::Layers(n) => Mat::dense(n.output(rows), rows, n.output_len()),
        }
    }

    /// Forward pass of `input` [rows, in] into `output` [rows, out]. A layer
    /// network needs both dense from their tensor's start.
    pub fn forward<B: Backend>(&self, backend: &mut B, input: Mat, pass: Pass, output: Mat) {
        match self {
            Net::Mlp(n) => n.forward(backend, input, pass.mlp_dropout(), output),
            Net::Layers(n) => n.forward(
                backend,
                input.rows as usize,
                dense_prefix(input),
                pass,
                dense_prefix(output),
            ),
        }
    }

    /// Backward pass after [`forward`](Self::forward) with the same `input`,
    /// `pass` and `output` (see [`Network::backward`]).
    #[allow(clippy::too_many_arguments)]
    pub fn backward<B: Backend>(
        &self,
        backend: &mut B,
        input: Mat,
        pass: Pass,
        output: Mat,
        d_output: Mat,
        param_grads: bool,
        d_input: Option<Mat>,
    ) {
        match self {
            Net::Mlp(n) => n.backward(
                backend,
                input,
                pass.mlp_dropout(),
                output,
                d_output,
                param_grads,
                d_input,
            ),
            Net::Layers(n) => n.backward(
                backend,
                input.rows as usize,
                dense_prefix(input),
                pass,
                dense_prefix(output),
                dense_prefix(d_output),
                param_grads,
                d_input.map(dense_prefix),
            ),
        }
    }

    /// One Adam step on every parameter.
    pub fn adam_update<B: Backend>(&self, backend: &mut B, adam: AdamSettings) {
        match self {
            Net::Mlp(n) => backend.adam_update(n.params, n.grads, n.adam_m, n.adam_v, adam),
            Net::Layers(n) => n.adam_update(backend, adam),
        }
    }

    /// One RMSprop step on every parameter; its square averages live where
    /// Adam keeps its second moment (the first stays zero).
    pub fn rmsprop_update<B: Backend>(
        &self,
        backend: &mut B,
        settings: crate::model::RmsPropSettings,
    ) {
        match self {
            Net::Mlp(n) => backend.rmsprop_update(n.params, n.grads, n.adam_v, settings),
            Net::Layers(n) => n.rmsprop_update(backend, settings),
        }
    }

    /// Every trainable parameter clamped to [-limit, limit] (the
    /// Wasserstein critic's clipping: weights, biases and batch norm scales
    /// alike, as `p.data.clamp_(-c, c)` over `parameters()` does).
    pub fn clamp_params<B: Backend>(&self, backend: &mut B, limit: f32) {
        match self {
            Net::Mlp(n) => backend.clamp_values(n.params, limit),
            Net::Layers(n) => n.clamp_params(backend, limit),
        }
    }

    /// One step of an exponential moving average of `source` (the same
    /// spec) into this network: every float tensor of the state_dict,
    /// running statistics included, becomes `decay * self + (1 - decay) *
    /// source`, as timm's `ModelEma` averages a model's whole state. The
    /// moments and gradients of this network are left alone.
    pub fn ema_update_from<B: Backend>(&self, backend: &mut B, source: &Net, decay: f32) {
        match (self, source) {
            (Net::Mlp(avg), Net::Mlp(src)) => backend.ema_update(avg.params, src.params, decay),
            (Net::Layers(avg), Net::Layers(src)) => avg.ema_update_from(backend, src, decay),
            _ => panic!("Net::ema_update_from: an average of another kind of network"),
        }
    }

    /// Sets `stats[slot]` if any parameter is NaN or infinite.
    pub fn finite_check<B: Backend>(&self, backend: &mut B, stats: Tensor, slot: u32) {
        match self {
            Net::Mlp(n) => backend.finite_check(n.params, stats, slot),
            Net::Layers(n) => n.finite_check(backend, stats, slot),
        }
    }

    /// The network's state in the checkpoint's layout; `batches_tracked` is
    /// the number of training passes the caller has made.
    pub fn state<B: Backend>(&self, backend: &mut B, batches_tracked: i64) -> Result<NetworkState> {
        match self {
            Net::Mlp(n) => Ok(NetworkState {
                params: backend.read(n.params)?,
                adam_m: backend.read(n.adam_m)?,
                adam_v: backend.read(n.adam_v)?,
                ..NetworkState::default()
            }),
            Net::Layers(n) => Ok(NetworkState {
                batches_tracked: if n.has_batch_norm() {
                    batches_tracked
                } else {
                    0
                },
                ..n.state(backend)?
            }),
        }
    }

    /// Restores a [`state`](Self::state) (its lengths checked by the caller).
    pub fn restore<B: Backend>(&self, backend: &mut B, state: &NetworkState) -> Result<()> {
        match self {
            Net::Mlp(n) => {
                backend.write(n.params, &state.params)?;
                backend.write(n.adam_m, &state.adam_m)?;
                backend.write(n.adam_v, &state.adam_v)
            }
            Net::Layers(n) => n.restore(backend, state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::model::{ModelKind, ModelSpec};

    /// A critic that must run as layers (the gradient penalty's) starts
    /// from the weights its MLP would have: the same state, tensor by tensor.
    #[test]
    fn an_mlp_as_layers_starts_from_the_same_weights() {
        for kind in [ModelKind::Vanilla, ModelKind::Deep, ModelKind::Conditional] {
            let spec = ModelSpec::preset(kind);
            let mut backend = CpuBackend::new();
            let mlp = Net::new(&mut backend, &spec.discriminator, 2, 7, 1).unwrap();
            let layers = Net::new_as_layers(&mut backend, &spec.discriminator, 2, 7, 1).unwrap();
            assert!(layers.layers().is_some());
            let (a, b) = (
                mlp.state(&mut backend, 0).unwrap(),
                layers.state(&mut backend, 0).unwrap(),
            );
            assert_eq!(a, b, "{kind:?}");
        }
    }
}
