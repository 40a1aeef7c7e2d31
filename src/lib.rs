//! gan-gpu: train the GANs of the classic MNIST tutorials with every tensor op
//! in a WGSL compute shader, checked against a plain-Rust CPU reference.
//!
//! Layers, top to bottom; a module imports only ones below it:
//! - [`run`]: what each command does with its settings (the backend choice,
//!   the GPU fit check, training with device-lost recovery, eval, sample,
//!   bench);
//! - [`train`] (the epoch loop and the step, written once against
//!   [`backend::Backend`]), [`bench`](mod@bench), [`sample`], [`eval`] (the classifier
//!   and its figures);
//! - [`checkpoint`] (complete run state in safetensors), [`nn`] (a network on
//!   a backend), [`output`] (the run record, grids, exports, the console);
//! - [`backend`] (the CPU reference and the GPU backend), [`model`] (a GAN as
//!   data, the step plan), [`stop`] (stop signals);
//! - [`report`] (what train, output and eval exchange), [`data`], [`util`]
//!   (checksum, atomic writes), [`rng`], [`error`], [`print`](mod@print).

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
