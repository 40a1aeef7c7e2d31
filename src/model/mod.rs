//! A model is data: the three tutorial GANs as layer lists plus loss, optimiser
//! and data settings ([`spec`]), and the flat parameter layout of a network
//! ([`layout`]) that both backends index into, the step plan of every
//! buffer's size ([`plan`]), and the generator's inputs and outputs
//! ([`inputs`]).

pub mod inputs;
pub mod layers;
pub mod layout;
pub mod plan;
pub mod spec;
mod validate;

pub use inputs::{
    generator_inputs, generator_inputs_from, images_from_outputs, EVAL_NOISE_STEP,
    SAMPLE_NOISE_STEP,
};
pub use layers::{Layer, LayerStack, Shape};
pub use layout::{LayerSlot, NetworkLayout};
pub use plan::{MemoryEstimate, StepPlan};
pub use spec::{
    Activation, AdamSettings, Init, LayerSpec, ModelKind, ModelSpec, NetSpec, NetworkSpec,
    Overrides, PixelScaling,
};
