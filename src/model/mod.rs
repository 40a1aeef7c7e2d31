//! A model is data: the three tutorial GANs as layer lists plus loss, optimiser
//! and data settings ([`spec`]), and the flat parameter layout of a network
//! ([`layout`]) that both backends index into.

pub mod layout;
pub mod spec;

pub use layout::{LayerSlot, NetworkLayout};
pub use spec::{
    Activation, AdamSettings, Init, LayerSpec, ModelKind, ModelSpec, NetworkSpec, Overrides,
    PixelScaling,
};
