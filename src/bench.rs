//! Timing training steps: what `gan-gpu bench` and `benches/` measure.
//!
//! [`matmul_flops_per_step`] counts the real matrix-product work of one
//! training step (`train::step`), so a measured time becomes GFLOP/s;
//! [`time_steps`] runs warm-up steps and then timed steps on any backend,
//! syncing the device before the clock stops, and reports ms/step together
//! with the dispatches and submits the GPU backend issued.

use std::time::Instant;

use crate::backend::{Backend, Clock};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::StepPlan;
use crate::model::{ImageShape, ModelSpec};
use crate::rng;
use crate::train::GanState;

pub use crate::model::plan::matmul_flops;

/// The matrix-product FLOPs of one training step as
/// [`GanState::train_step`] records it: [`StepPlan::matmul_flops`].
pub fn matmul_flops_per_step(spec: &ModelSpec) -> u64 {
    StepPlan::new(spec).matmul_flops
}

/// A made-up training set of `count` images of `shape` for benches that
/// need no real data: pixel bytes and labels from the counter-based
/// generator.
pub fn synthetic_dataset(count: usize, classes: u8, shape: ImageShape) -> Dataset {
    let pixels = shape.len();
    let images = (0..count * pixels)
        .map(|i| rng::random_u32(7, 0, 0, i as u32) as u8)
        .collect();
    let labels = (0..count)
        .map(|i| (rng::random_u32(7, 1, 0, i as u32) % u32::from(classes.max(1))) as u8)
        .collect();
    Dataset {
        images,
        labels,
        classes: (0..classes).map(|c| c.to_string()).collect(),
        count,
        rows: shape.rows,
        cols: shape.cols,
        channels: shape.channels,
        images_path: "synthetic".into(),
        labels_path: "synthetic".into(),
    }
}

/// What a timed run of training steps measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    pub model: String,
    pub backend: String,
    pub batch: usize,
    pub steps: usize,
    pub seconds: f64,
    /// Of `seconds`, the time the host spent recording and submitting steps
    /// (the rest it waited for the device). Near `seconds` means the host is
    /// the bottleneck, not the device.
    pub host_seconds: f64,
    /// Matrix-product FLOPs per step ([`matmul_flops_per_step`]).
    pub flops_per_step: u64,
    /// Dispatches and submits per timed step (None on the CPU).
    pub dispatches_per_step: Option<f64>,
    pub submits_per_step: Option<f64>,
}

impl BenchReport {
    pub fn ms_per_step(&self) -> f64 {
        1e3 * self.seconds / self.steps.max(1) as f64
    }

    pub fn steps_per_sec(&self) -> f64 {
        self.steps as f64 / self.seconds.max(1e-12)
    }

    /// Host recording time per step, in milliseconds.
    pub fn host_ms_per_step(&self) -> f64 {
        1e3 * self.host_seconds / self.steps.max(1) as f64
    }

    /// Achieved matrix-product GFLOP/s.
    pub fn gflops(&self) -> f64 {
        self.flops_per_step as f64 * self.steps_per_sec() / 1e9
    }

    /// One `key=value` line for scripts; GPU counts are `na` on the CPU.
    pub fn summary_line(&self) -> String {
        let count = |v: Option<f64>| v.map_or("na".to_string(), |v| format!("{v:.2}"));
        format!(
            "bench model={} backend={} batch={} steps={} ms_per_step={:.4} steps_per_s={:.2} \
             gflops={:.3} host_ms_per_step={:.4} dispatches_per_step={} submits_per_step={}",
            self.model,
            self.backend,
            self.batch,
            self.steps,
            self.ms_per_step(),
            self.steps_per_sec(),
            self.gflops(),
            self.host_ms_per_step(),
            count(self.dispatches_per_step),
            count(self.submits_per_step),
        )
    }
}

/// A model resident on a backend with its data, ready to run training steps
/// back to back: the building block of [`time_steps`] and `benches/`.
pub struct StepRunner {
    pub state: GanState,
    seed: u32,
    per_epoch: usize,
    step: u32,
}

impl StepRunner {
    /// Builds the model on `backend` and makes `data` resident.
    pub fn new<B: Backend>(backend: &mut B, spec: &ModelSpec, data: &Dataset) -> Result<Self> {
        spec.validate(data.count)?;
        let seed = 1;
        let state = GanState::new(backend, spec, seed, spec.batch_size)?;
        backend.upload_dataset(&data.images, &data.labels, spec.image_pixels)?;
        backend.set_epoch_order(&rng::epoch_order(seed, 0, data.count))?;
        Ok(StepRunner {
            state,
            seed,
            per_epoch: data.count / (spec.batch_size * spec.game.n_critic),
            step: 0,
        })
    }

    /// Records `n` training steps. Steps walk the epoch order from the
    /// start, wrapping around at its end. Does not wait for the device.
    pub fn run<B: Backend>(&mut self, backend: &mut B, n: usize) -> Result<()> {
        for _ in 0..n {
            if (self.step as usize).is_multiple_of(self.per_epoch) {
                backend.set_clock(Clock {
                    seed: self.seed,
                    step: self.step,
                    cursor: 0,
                })?;
            }
            self.state.train_step(backend);
            self.step += 1;
        }
        Ok(())
    }
}

/// How [`time_steps`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchPlan {
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// Sync the device every this many timed steps, as the training loop's
    /// progress display does (`train::PROGRESS_CHUNK`); None: only at the end.
    pub sync_every: Option<usize>,
}

/// Builds the model on `backend`, makes `data` resident, runs the warm-up
/// steps untimed, then times the plan's steps. The device is synced (all
/// submitted work executed) before the clock starts and before it stops.
/// `backend_name` labels the report.
pub fn time_steps<B: Backend>(
    backend: &mut B,
    spec: &ModelSpec,
    data: &Dataset,
    plan: BenchPlan,
    backend_name: &str,
) -> Result<BenchReport> {
    let BenchPlan {
        warmup,
        steps,
        sync_every,
    } = plan;
    if steps == 0 {
        return Err(Error::config("--steps", "must be at least 1"));
    }
    if sync_every == Some(0) {
        return Err(Error::config("--sync-every", "must be at least 1"));
    }
    let mut runner = StepRunner::new(backend, spec, data)?;
    runner.run(backend, warmup)?;
    backend.sync()?;
    let before = backend.work_counts();
    let started = Instant::now();
    let chunk = sync_every.unwrap_or(steps);
    let mut done = 0;
    let mut host_seconds = 0.0;
    while done < steps {
        let n = chunk.min(steps - done);
        let recording = Instant::now();
        runner.run(backend, n)?;
        backend.flush()?;
        host_seconds += recording.elapsed().as_secs_f64();
        backend.sync()?;
        done += n;
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = backend.work_counts();
    let per_step = |f: fn(&crate::backend::WorkCounts) -> u64| match (before, after) {
        (Some(b), Some(a)) => Some((f(&a) - f(&b)) as f64 / steps as f64),
        _ => None,
    };
    Ok(BenchReport {
        model: spec.kind.name().to_string(),
        backend: backend_name.to_string(),
        batch: spec.batch_size,
        steps,
        seconds,
        host_seconds,
        flops_per_step: matmul_flops_per_step(spec),
        dispatches_per_step: per_step(|w| w.dispatches),
        submits_per_step: per_step(|w| w.submits),
    })
}

/// One dispatch position of a training step, over the profiled steps.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRow {
    /// Entry point, matmul kernel and grid, as the backend labels it.
    pub label: String,
    /// Median GPU time from the dispatch's start to its end, microseconds.
    pub kernel_us: f64,
    /// Median GPU time from its end to the next dispatch's start
    /// (barrier and launch), microseconds; 0 for a step's last dispatch.
    pub gap_us: f64,
}

/// Where a step's GPU time goes: [`profile_rows`] of a profiled run.
#[derive(Clone, Debug, PartialEq)]
pub struct StepProfile {
    pub rows: Vec<ProfileRow>,
    /// Steps profiled.
    pub steps: usize,
    /// Median GPU time from a step's first start to its last end, microseconds.
    pub step_us: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Groups profiled dispatches into steps of `per_step` dispatches and takes
/// the median of each position (steps whose labels differ from the first
/// one's, e.g. around an epoch boundary, are left out).
pub fn profile_rows(
    times: &[crate::backend::gpu::profile::DispatchTime],
    per_step: usize,
) -> StepProfile {
    let steps: Vec<_> = times
        .chunks_exact(per_step.max(1))
        .filter(|s| {
            s.iter()
                .zip(&times[..per_step.min(times.len())])
                .all(|(a, b)| a.label == b.label)
        })
        .collect();
    let rows = (0..per_step.min(times.len()))
        .map(|i| ProfileRow {
            label: times[i].label.clone(),
            kernel_us: median(
                steps
                    .iter()
                    .map(|s| (s[i].end_ns - s[i].start_ns) / 1e3)
                    .collect(),
            ),
            gap_us: if i + 1 < per_step {
                median(
                    steps
                        .iter()
                        .map(|s| (s[i + 1].start_ns - s[i].end_ns) / 1e3)
                        .collect(),
                )
            } else {
                0.0
            },
        })
        .collect();
    StepProfile {
        rows,
        steps: steps.len(),
        step_us: median(
            steps
                .iter()
                .map(|s| (s[s.len() - 1].end_ns - s[0].start_ns) / 1e3)
                .collect(),
        ),
    }
}

/// Runs `warmup` steps, then records `steps` steps with a GPU timestamp
/// around every dispatch (the backend must be opened with
/// `GpuOptions::profile`), and returns the per-position medians.
pub fn profile_steps(
    backend: &mut crate::backend::gpu::GpuBackend,
    spec: &ModelSpec,
    data: &Dataset,
    warmup: usize,
    steps: usize,
) -> Result<StepProfile> {
    let mut runner = StepRunner::new(backend, spec, data)?;
    runner.run(backend, warmup.max(1))?;
    backend.sync()?;
    let before = backend.dispatches();
    runner.run(backend, 1)?;
    let per_step = (backend.dispatches() - before) as usize;
    backend.sync()?;
    let fit = (crate::backend::gpu::profile::MAX_QUERIES as usize / 2) / per_step.max(1);
    backend.start_profile()?;
    runner.run(backend, steps.clamp(1, fit.max(1)))?;
    let times = backend.finish_profile()?;
    Ok(profile_rows(&times, per_step))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::model::{ModelKind, Overrides};

    #[test]
    fn vanilla_flops_by_hand() {
        let spec = ModelSpec::preset(ModelKind::Vanilla);
        let b = 100u64;
        let g = 128 * 256 + 256 * 784; // in * out, summed over G's layers
        let d = 784 * 256 + 256; // D's layers
        let d_step = 2 * b * g // G forward
            + 2 * (2 * b) * d // D forward
            + 2 * (2 * b) * d // D backward params
            + 2 * (2 * b) * 256; // D backward input, second layer only
        let g_step = 2 * b * g // G forward
            + 2 * b * d // D forward
            + 2 * b * d // D backward input, both layers
            + 2 * b * g // G backward params
            + 2 * b * 256 * 784; // G backward input, second layer only
        assert_eq!(matmul_flops_per_step(&spec), d_step + g_step);
    }

    #[test]
    fn conditional_input_grad_stops_at_the_image_columns() {
        let spec = ModelSpec::preset(ModelKind::Conditional);
        let b = spec.batch_size as u64;
        let g = 138 * 256 + 256 * 784;
        let d = 794 * 256 + 256;
        let d_step = 2 * b * g + 2 * (2 * b) * d + 2 * (2 * b) * d + 2 * (2 * b) * 256;
        // D's first layer is 794 -> 256; its input gradient covers the 784 image columns.
        let g_step =
            2 * b * g + 2 * b * d + 2 * b * (256 * 784 + 256) + 2 * b * g + 2 * b * 256 * 784;
        assert_eq!(matmul_flops_per_step(&spec), d_step + g_step);
    }

    #[test]
    fn flops_grow_with_the_batch() {
        let small = ModelSpec::preset(ModelKind::Deep);
        let big = ModelSpec::build(
            ModelKind::Deep,
            &Overrides {
                batch_size: Some(2 * small.batch_size),
                ..Default::default()
            },
        );
        assert_eq!(
            matmul_flops_per_step(&big),
            2 * matmul_flops_per_step(&small)
        );
    }

    #[test]
    fn profile_rows_take_medians_per_position_and_skip_odd_steps() {
        use crate::backend::gpu::profile::DispatchTime;
        let at = |label: &str, start: f64, end: f64| DispatchTime {
            label: label.into(),
            start_ns: start * 1e3,
            end_ns: end * 1e3,
        };
        // Three steps of two dispatches (kernel a then b), in microseconds,
        // and a fourth whose labels differ (an epoch boundary, say).
        let times = vec![
            at("a", 0.0, 10.0),
            at("b", 12.0, 20.0),
            at("a", 30.0, 41.0),
            at("b", 44.0, 50.0),
            at("a", 60.0, 69.0),
            at("b", 70.0, 80.0),
            at("x", 90.0, 99.0),
            at("b", 100.0, 200.0),
        ];
        let p = profile_rows(&times, 2);
        assert_eq!(p.steps, 3);
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[0].label, "a");
        assert!((p.rows[0].kernel_us - 10.0).abs() < 1e-9);
        assert!((p.rows[0].gap_us - 2.0).abs() < 1e-9);
        assert!((p.rows[1].kernel_us - 8.0).abs() < 1e-9);
        assert_eq!(p.rows[1].gap_us, 0.0);
        assert!((p.step_us - 20.0).abs() < 1e-9);
    }

    #[test]
    fn timing_runs_on_the_cpu() {
        let spec = ModelSpec::build(
            ModelKind::Vanilla,
            &Overrides {
                batch_size: Some(8),
                ..Default::default()
            },
        );
        let data = synthetic_dataset(20, 10, ImageShape::MNIST);
        let plan = BenchPlan {
            warmup: 1,
            steps: 5,
            sync_every: Some(2),
        };
        let report = time_steps(&mut CpuBackend::new(), &spec, &data, plan, "cpu").unwrap();
        assert_eq!(report.steps, 5);
        assert!(report.seconds > 0.0);
        assert_eq!(report.dispatches_per_step, None);
        let line = report.summary_line();
        assert!(line.starts_with("bench model=vanilla backend=cpu batch=8 steps=5 "));
        assert!(line.ends_with("dispatches_per_step=na submits_per_step=na"));
    }
}
