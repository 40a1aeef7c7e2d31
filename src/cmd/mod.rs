//! The command line: flags -> library settings -> [`gan_gpu::run`]. Each
//! command's file reads its flags once into the library's settings; the
//! work, and every check of a flag's value, is in the library.

mod bench;
mod eval;
mod info;
mod sample;
mod train;

use std::process::ExitCode;

use anyhow::Result;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};

use gan_gpu::model::{LossKind, ModelKind, OptimizerKind};
use gan_gpu::run::BackendChoice;

/// Train the GANs of the classic MNIST tutorials on any GPU through wgpu.
#[derive(Parser, Debug)]
#[command(name = "gan-gpu", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a GAN and write sample grids.
    Train(Box<train::TrainArgs>),
    /// Generate images from a checkpoint's generator (.png grid, .idx, .npy or a folder of PNGs).
    Sample(sample::SampleArgs),
    /// Measure generated images: FID, classifier score, class coverage, label accuracy.
    Eval(eval::EvalArgs),
    /// List every GPU adapter wgpu can see, with the limits that matter.
    Info,
    /// Time training steps: ms/step, steps/s, matmul GFLOP/s, GPU dispatches and submits per step.
    Bench(bench::BenchArgs),
}

/// Parses the command line and runs the subcommand; the exit code is
/// 128 + the signal's number when a signal stopped a training run (after
/// its checkpoint is saved).
pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(args) => train::train(*args),
        Command::Sample(args) => sample::sample(args).map(|()| ExitCode::SUCCESS),
        Command::Eval(args) => eval::eval(args).map(|()| ExitCode::SUCCESS),
        Command::Info => info::info().map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench::bench(args).map(|()| ExitCode::SUCCESS),
    }
}

/// The values of `--model`: [`ModelKind::ALL`] by name, each with its help line.
fn model_parser() -> impl TypedValueParser<Value = ModelKind> {
    let values = ModelKind::ALL.map(|kind| PossibleValue::new(kind.name()).help(kind.about()));
    PossibleValuesParser::new(values).try_map(|name| name.parse::<ModelKind>())
}

/// The values of `--loss`: [`LossKind::ALL`] by name with their help lines,
/// and `wgan-gp`, which is refused with a reason.
fn loss_parser() -> impl TypedValueParser<Value = LossKind> {
    let values = LossKind::ALL.map(|loss| PossibleValue::new(loss.name()).help(loss.about()));
    PossibleValuesParser::new(values).try_map(|name| name.parse::<LossKind>())
}

/// The values of `--optimizer`.
fn optimizer_parser() -> impl TypedValueParser<Value = OptimizerKind> {
    let values = [
        PossibleValue::new("adam").help("Adam (PyTorch's, bias-corrected)"),
        PossibleValue::new("rmsprop").help("RMSprop (PyTorch's: alpha 0.99, no momentum)"),
    ];
    PossibleValuesParser::new(values).try_map(|name| name.parse::<OptimizerKind>())
}

/// The values of `--backend`: [`BackendChoice::ALL`] by name, with help lines.
fn backend_parser() -> impl TypedValueParser<Value = BackendChoice> {
    let values = BackendChoice::ALL.map(|choice| {
        let value = PossibleValue::new(choice.name());
        match choice.about() {
            Some(about) => value.help(about),
            None => value,
        }
    });
    PossibleValuesParser::new(values).try_map(|name| name.parse::<BackendChoice>())
}
