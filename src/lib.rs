//! gan-gpu: train the GANs of the classic MNIST tutorials with every tensor op
//! in a WGSL compute shader, checked against a plain-Rust CPU reference.
//!
//! Layers, top to bottom: [`train`] (the epoch loop and the step, written once
//! against [`backend::Backend`]), [`model`] (a GAN as data), [`backend`] (the
//! CPU reference and the GPU backend), [`data`] (IDX files), [`output`],
//! [`checkpoint`] (complete run state in safetensors) and [`sample`]
//! (images from a trained generator).

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod eval;
pub mod model;
pub mod nn;
pub mod output;
pub mod print;
pub mod report;
pub mod rng;
pub mod run;
pub mod sample;
pub mod stop;
pub mod train;
pub mod util;

pub use error::{Error, Result};
