//! What a run prints while it trains. On a terminal: a progress bar (epoch,
//! step, the last finished epoch's D and G losses, steps/s, ETA) with each
//! finished epoch's line printed above it. Otherwise (stdout piped or
//! redirected, or `--quiet`): one plain line per epoch and nothing else.
//! The bar moves on executed steps (the trainer syncs the backend before each
//! progress report), so on a GPU it does not run ahead of the device.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::error::Result;
use crate::report::{EpochReport, Observer, Progress};

/// How the console shows a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleMode {
    /// A live progress bar, epoch lines above it.
    Bar,
    /// One plain line per epoch.
    Lines,
}

impl ConsoleMode {
    /// A bar when stdout is a terminal and `quiet` is off, else lines.
    pub fn detect(quiet: bool) -> ConsoleMode {
        if !quiet && std::io::stdout().is_terminal() {
            ConsoleMode::Bar
        } else {
            ConsoleMode::Lines
        }
    }
}

/// The console observer.
pub struct Console {
    mode: ConsoleMode,
    bar: Option<ProgressBar>,
    last: Option<(f32, f32)>,
}

impl Console {
    pub fn new(mode: ConsoleMode) -> Console {
        Console {
            mode,
            bar: None,
            last: None,
        }
    }

    /// Removes the bar (call before printing the run's summary).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn bar(&mut self, total: u64) -> &ProgressBar {
        self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:25.cyan/blue}] {pos}/{len} steps  {rate}  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1} steps/s", state.per_sec());
                },
            )
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        })
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        // On an error the bar stays where it was; leave the cursor below it.
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

impl Observer for Console {
    fn on_progress(&mut self, p: &Progress) {
        if self.mode != ConsoleMode::Bar {
            return;
        }
        let losses = match self.last {
            Some((d, g)) => format!("D {d:.4}  G {g:.4}"),
            None => "D -  G -".to_string(),
        };
        let bar = self.bar(p.run_steps as u64);
        bar.set_position(p.run_step as u64);
        bar.set_prefix(format!(
            "epoch {}/{} step {}/{}",
            p.epoch, p.epochs, p.step, p.steps
        ));
        bar.set_message(losses);
    }

    fn on_epoch(&mut self, report: &EpochReport) -> Result<()> {
        self.last = Some((report.d_loss, report.g_loss));
        match &self.bar {
            Some(bar) => bar.println(report.to_string()),
            // A closed stdout does not stop training: the line is dropped.
            None => {
                let _ = crate::outln!("{report}");
            }
        }
        Ok(())
    }
}

/// A progress bar for decoding `total` files, on stderr when it is a
/// terminal and `quiet` is off (hidden otherwise); `inc` it per file.
pub fn decode_bar(total: usize, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() || total == 0 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("decoding {pos}/{len} images {wide_bar} {eta}")
    {
        bar.set_style(style);
    }
    bar
}
