//! A model is data: the three MLP tutorial GANs and the TensorFlow DCGAN as
//! networks (an MLP or a list of layers, [`spec`] and [`layers`]) plus loss,
//! optimiser and data settings; the activations ([`activation`]); the flat
//! parameter layout of an MLP ([`layout`]) that both backends index into;
//! the step plan of every buffer's size and a step's FLOPs ([`plan`]); and
//! the generator's inputs and outputs ([`inputs`]).

pub mod activation;
pub mod critic_loss;
pub mod game;
pub mod inputs;
pub mod layers;
pub mod layout;
pub mod plan;
pub mod spec;
mod validate;
pub mod zoo;

pub use activation::Activation;
pub use game::{GameFlags, GameSettings, LossKind, OptimizerKind, RmsPropSettings};
pub use inputs::{
    generator_inputs, generator_inputs_from, images_from_outputs, EVAL_NOISE_STEP,
    SAMPLE_NOISE_STEP,
};
pub use layers::Init;
pub use layers::{Layer, LayerStack, Shape};
pub use layout::{LayerSlot, NetworkLayout};
pub use plan::{MemoryEstimate, StepPlan};
pub use spec::{
    digit_class_names, AdamSettings, ImageShape, LayerSpec, ModelKind, ModelSpec, NetSpec,
    NetworkSpec, Overrides, PixelScaling, Widths,
};
pub use zoo::{
    dcgan64_discriminator, dcgan64_discriminator_channels, dcgan64_generator,
    dcgan64_generator_channels, DCGAN64_NOISE, DCGAN64_WIDTH,
};
