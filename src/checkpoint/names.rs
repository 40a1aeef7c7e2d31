//! The checkpoint's tensor names, as PyTorch's `nn.Sequential` of the same
//! modules would name them: module indices, the parameter slots of each
//! Linear layer, the shapes, and the architecture summary in the metadata.

use super::STATS_TENSOR;
use crate::backend::stat;
#[cfg(doc)]
use crate::model::NetworkLayout;
use crate::model::{Activation, ModelSpec, NetSpec, NetworkSpec};

/// The `nn.Sequential` index of each Linear layer of `net`: a Linear, then
/// its activation module unless the identity, then a Dropout if p > 0.
pub fn module_indices(net: &NetworkSpec) -> Vec<usize> {
    let mut next = 0;
    net.layers
        .iter()
        .map(|l| {
            let index = next;
            next += 1;
            if l.activation != Activation::Identity {
                next += 1;
            }
            if l.dropout > 0.0 {
                next += 1;
            }
            index
        })
        .collect()
}

/// What a named tensor of a network holds, and so where its values live in
/// a [`NetworkState`](super::NetworkState).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SlotKind {
    /// A trained tensor: a range of `params` (and of Adam's moments).
    Trainable,
    /// Batch norm's running statistics: a range of `buffers`.
    Buffer,
    /// Batch norm's `num_batches_tracked`, an I64 scalar: `batches_tracked`.
    Counter,
}

/// A named tensor inside a network's flat buffers.
pub(super) struct Slot {
    /// `<index>.weight`, `<index>.running_mean`, ...
    pub(super) suffix: String,
    pub(super) shape: Vec<usize>,
    pub(super) kind: SlotKind,
    /// Offset in the flat buffer of its kind.
    pub(super) start: usize,
    pub(super) len: usize,
}

/// Every tensor of `net` as PyTorch's `nn.Sequential` names it, in
/// state_dict order. The trainable tensors lie one after another in that
/// order in `params` (for an MLP, exactly its [`NetworkLayout`]), the
/// running statistics likewise in `buffers`.
pub(super) fn slots(net: &NetSpec) -> Vec<Slot> {
    let Ok(entries) = net.stack().state_dict("") else {
        return Vec::new();
    };
    let (mut trained, mut buffered) = (0, 0);
    entries
        .into_iter()
        .map(|(name, tensor)| {
            let len = tensor.shape.iter().product::<usize>();
            let (kind, start) = if tensor.trainable {
                trained += len;
                (SlotKind::Trainable, trained - len)
            } else if tensor.shape.is_empty() {
                (SlotKind::Counter, 0)
            } else {
                buffered += len;
                (SlotKind::Buffer, buffered - len)
            };
            Slot {
                suffix: name.trim_start_matches('.').to_string(),
                shape: tensor.shape,
                kind,
                start,
                len,
            }
        })
        .collect()
}

/// Lengths of `net`'s flat `params` and `buffers`.
pub fn flat_lengths(net: &NetSpec) -> (usize, usize) {
    slots(net).iter().fold((0, 0), |(p, b), s| match s.kind {
        SlotKind::Trainable => (p + s.len, b),
        SlotKind::Buffer => (p, b + s.len),
        SlotKind::Counter => (p, b),
    })
}

/// Every tensor name and shape a checkpoint of `spec` holds, in file order.
pub fn tensor_shapes(spec: &ModelSpec) -> Vec<(String, Vec<usize>)> {
    let mut names = Vec::new();
    let ema = spec.game.ema.map(|_| ());
    for stored in super::stored(spec, [Some(()), Some(()), ema]) {
        for (prefix, which) in stored.groups {
            for s in slots(stored.net) {
                if which == 0 || s.kind == SlotKind::Trainable {
                    names.push((format!("{prefix}{}", s.suffix), s.shape));
                }
            }
        }
    }
    names.push((STATS_TENSOR.to_string(), vec![stat::COUNT]));
    names
}

/// The tensor-name prefixes of a network: parameters, then Adam's moments.
pub(super) fn groups(net_name: &str) -> [(String, usize); 3] {
    [
        (format!("{net_name}."), 0),
        (format!("optimizer.{net_name}.exp_avg."), 1),
        (format!("optimizer.{net_name}.exp_avg_sq."), 2),
    ]
}

pub(super) fn architecture(spec: &ModelSpec) -> serde_json::Value {
    let layers = |net: &NetSpec| match net {
        NetSpec::Mlp(mlp) => mlp_layers(mlp),
        NetSpec::Layers(stack) => {
            let mut module = 0;
            stack
                .layers
                .iter()
                .filter(|l| l.is_module())
                .map(|l| {
                    module += 1;
                    serde_json::json!({ "module": module - 1, "layer": format!("{l:?}") })
                })
                .collect()
        }
    };
    serde_json::json!({
        "generator": layers(&spec.generator),
        "discriminator": layers(&spec.discriminator),
        "classes": spec.classes,
        "pixel_scale": spec.scaling.scale,
        "pixel_shift": spec.scaling.shift,
    })
}

fn mlp_layers(net: &NetworkSpec) -> Vec<serde_json::Value> {
    {
        net.layers
            .iter()
            .zip(module_indices(net))
            .map(|(l, index)| {
                serde_json::json!({
                    "module": index,
                    "in": l.in_dim,
                    "out": l.out_dim,
                    "activation": format!("{:?}", l.activation),
                    "dropout": l.dropout,
                })
            })
            .collect::<Vec<_>>()
    }
}
