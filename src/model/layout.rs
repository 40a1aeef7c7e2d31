//! The flat parameter layout of one network: every layer's weight [out, in]
//! (row-major, as PyTorch's `nn.Linear` holds it) followed by its bias \[out\],
//! layer after layer, in one buffer. Gradients and Adam moments share it.

use super::layers::init_weights;
use super::spec::NetworkSpec;

/// Where one layer's tensors sit in its network's flat buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSlot {
    pub in_dim: usize,
    pub out_dim: usize,
    /// Offset of W [out_dim, in_dim].
    pub weight: usize,
    /// Offset of b \[out_dim\].
    pub bias: usize,
}

/// The offsets of every layer of a network, and the total length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkLayout {
    pub layers: Vec<LayerSlot>,
    pub len: usize,
}

impl NetworkLayout {
    /// Lays the network's layers out one after another.
    pub fn new(spec: &NetworkSpec) -> Self {
        let mut offset = 0;
        let layers = spec
            .layers
            .iter()
            .map(|l| {
                let weight = offset;
                let bias = weight + l.in_dim * l.out_dim;
                offset = bias + l.out_dim;
                LayerSlot {
                    in_dim: l.in_dim,
                    out_dim: l.out_dim,
                    weight,
                    bias,
                }
            })
            .collect();
        NetworkLayout {
            layers,
            len: offset,
        }
    }

    /// Initial parameters: weights drawn per `spec.init` from the counter
    /// generator (stream INIT, step = `network_id * 64 + layer`), biases 0.
    pub fn initial_params(&self, spec: &NetworkSpec, seed: u32, network_id: u32) -> Vec<f32> {
        let mut params = vec![0.0f32; self.len];
        for (i, slot) in self.layers.iter().enumerate() {
            let step = network_id * 64 + i as u32;
            let len = slot.bias - slot.weight;
            let weights = init_weights(spec.init, seed, step, slot.in_dim, slot.out_dim, len);
            params[slot.weight..slot.bias].copy_from_slice(&weights);
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelKind, ModelSpec};

    #[test]
    fn layout_is_contiguous() {
        let spec = ModelSpec::preset(ModelKind::Vanilla);
        let l = NetworkLayout::new(spec.generator.mlp().unwrap());
        assert_eq!(l.layers[0].weight, 0);
        assert_eq!(l.layers[0].bias, 128 * 256);
        assert_eq!(l.layers[1].weight, 128 * 256 + 256);
        assert_eq!(l.len, 128 * 256 + 256 + 256 * 784 + 784);
    }
}
