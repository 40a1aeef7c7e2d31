//! The checkpoint's tensor names, as PyTorch's `nn.Sequential` of the same
//! modules would name them: module indices, the parameter slots of each
//! Linear layer, the shapes, and the architecture summary in the metadata.

use super::STATS_TENSOR;
use crate::backend::stat;
use crate::model::{Activation, ModelSpec, NetworkLayout, NetworkSpec};

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

/// A named tensor inside a network's flat buffer.
pub(super) struct Slot {
    /// `<index>.weight` or `<index>.bias`.
    pub(super) suffix: String,
    pub(super) shape: Vec<usize>,
    pub(super) start: usize,
    pub(super) len: usize,
}

pub(super) fn slots(net: &NetworkSpec) -> Vec<Slot> {
    let layout = NetworkLayout::new(net);
    let mut out = Vec::new();
    for (slot, index) in layout.layers.iter().zip(module_indices(net)) {
        out.push(Slot {
            suffix: format!("{index}.weight"),
            shape: vec![slot.out_dim, slot.in_dim],
            start: slot.weight,
            len: slot.out_dim * slot.in_dim,
        });
        out.push(Slot {
            suffix: format!("{index}.bias"),
            shape: vec![slot.out_dim],
            start: slot.bias,
            len: slot.out_dim,
        });
    }
    out
}

/// Every tensor name and shape a checkpoint of `spec` holds, in file order.
pub fn tensor_shapes(spec: &ModelSpec) -> Vec<(String, Vec<usize>)> {
    let mut names = Vec::new();
    for (net_name, net) in [
        ("generator", &spec.generator),
        ("discriminator", &spec.discriminator),
    ] {
        for (prefix, _) in groups(net_name) {
            for s in slots(net) {
                names.push((format!("{prefix}{}", s.suffix), s.shape));
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
    let layers = |net: &NetworkSpec| {
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
    };
    serde_json::json!({
        "generator": layers(&spec.generator),
        "discriminator": layers(&spec.discriminator),
        "classes": spec.classes,
        "pixel_scale": spec.scaling.scale,
        "pixel_shift": spec.scaling.shift,
    })
}
