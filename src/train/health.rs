//! Divergence detection: a run whose losses or parameters turn NaN or
//! infinite stops with a one-line error naming the epoch and its steps, and
//! keeps its last good checkpoint (nothing of the diverged state is saved).
//!
//! The check runs on the device: after each chunk of steps the epoch loop
//! records [`Backend::finite_check`] over both networks' parameters into the
//! stats tensor's health slots ([`stat::G_NON_FINITE`], [`stat::D_NON_FINITE`]).
//! The flags come back with the loss sums in the one read per epoch, so the
//! check costs two dispatches per chunk and no read-back of its own.

use std::path::PathBuf;

use super::GanState;
use crate::backend::{stat, Backend};
use crate::error::Error;

/// The stats tensor's contents from the `stat::COUNT` sums: health flags cleared.
pub fn with_flags(mut sums: Vec<f32>) -> Vec<f32> {
    sums.resize(stat::SLOTS, 0.0);
    sums
}

/// Records the parameter checks of both networks (flags into the stats).
pub fn check_parameters<B: Backend>(backend: &mut B, state: &GanState) {
    state
        .generator
        .finite_check(backend, state.stats, stat::G_NON_FINITE);
    state
        .discriminator
        .finite_check(backend, state.stats, stat::D_NON_FINITE);
}

/// What went wrong in a diverged epoch (see [`check_stats`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// 0-based epoch.
    pub epoch: usize,
    /// Steps of the run before the epoch's first step checked, and after its last.
    pub steps_before: usize,
    pub steps_after: usize,
    pub what: String,
}

impl Divergence {
    /// The error to report, naming `checkpoint` (the last good one) if any.
    pub fn into_error(self, checkpoint: Option<PathBuf>) -> Error {
        Error::Diverged {
            epoch: self.epoch + 1,
            first_step: self.steps_before + 1,
            last_step: self.steps_after.max(self.steps_before + 1),
            what: self.what,
            checkpoint,
        }
    }
}

fn describe(value: f32) -> &'static str {
    if value.is_nan() {
        "NaN"
    } else {
        "infinite"
    }
}

/// Checks the stats read at the end of (a part of) epoch `epoch`, which ran
/// steps `steps_before + 1 ..= steps_after` of the run.
pub fn check_stats(
    stats: &[f32],
    epoch: usize,
    steps_before: usize,
    steps_after: usize,
) -> Result<(), Divergence> {
    let get = |slot: u32| stats.get(slot as usize).copied().unwrap_or(0.0);
    let mut problems = Vec::new();
    for (slot, name) in [(stat::D_LOSS, "D loss"), (stat::G_LOSS, "G loss")] {
        let v = get(slot);
        if !v.is_finite() {
            problems.push(format!("the {name} is {}", describe(v)));
        }
    }
    for (slot, name) in [
        (stat::G_NON_FINITE, "generator"),
        (stat::D_NON_FINITE, "discriminator"),
    ] {
        if get(slot) != 0.0 {
            problems.push(format!("a {name} parameter is NaN or infinite"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Divergence {
        epoch,
        steps_before,
        steps_after,
        what: problems.join(", "),
    })
}
