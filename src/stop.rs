//! Stopping a training run on a signal without losing it. SIGINT (Ctrl-C),
//! SIGTERM (what `timeout`, systemd, Docker, Kubernetes and SLURM send before
//! they kill) and SIGHUP (a closed terminal or a dropped ssh session) raise
//! one stop flag; the epoch loop checks it between two steps, saves a
//! checkpoint at that step and writes the last grid, and the binary exits
//! with 128 + the signal's number. A second signal quits at once, without
//! saving: whatever the last finished save wrote stays on disk.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A signal that asks the process to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopSignal(i32);

impl StopSignal {
    /// The signal's number (2 for SIGINT, 15 for SIGTERM, 1 for SIGHUP).
    pub fn number(self) -> i32 {
        self.0
    }

    /// The shell's exit status for a process ended by this signal: 128 + its number.
    pub fn exit_code(self) -> u8 {
        u8::try_from(128 + self.0).unwrap_or(u8::MAX)
    }

    /// "Ctrl-C", "SIGTERM" or "SIGHUP".
    pub fn name(self) -> String {
        match self.0 {
            signal_hook::consts::SIGINT => "Ctrl-C".to_string(),
            signal_hook::consts::SIGTERM => "SIGTERM".to_string(),
            #[cfg(unix)]
            signal_hook::consts::SIGHUP => "SIGHUP".to_string(),
            n => format!("signal {n}"),
        }
    }
}

/// The stop flag and the signal that raised it, shared with the handler.
#[derive(Clone, Debug)]
pub struct StopSignals {
    flag: Arc<AtomicBool>,
    /// The first signal's number; 0 while none has come.
    first: Arc<AtomicI32>,
}

impl StopSignals {
    /// Routes SIGINT, SIGTERM and SIGHUP to the stop flag (see the module
    /// doc). Each first signal prints one line on stderr saying what happens.
    pub fn install() -> Result<StopSignals> {
        let signals = StopSignals {
            flag: Arc::new(AtomicBool::new(false)),
            first: Arc::new(AtomicI32::new(0)),
        };
        signals.listen()?;
        Ok(signals)
    }

    /// The flag the trainer checks between steps ([`crate::train::Trainer::set_stop_flag`]).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// The first signal received, if any.
    pub fn received(&self) -> Option<StopSignal> {
        match self.first.load(Ordering::SeqCst) {
            0 => None,
            n => Some(StopSignal(n)),
        }
    }

    /// Handles one delivered signal: the first raises the flag, a second quits.
    fn deliver(&self, number: i32) {
        let signal = StopSignal(number);
        if self.flag.swap(true, Ordering::SeqCst) {
            crate::errln!(
                "\n{}: quitting at once without saving (the last checkpoint saved stays)",
                signal.name()
            );
            std::process::exit(i32::from(signal.exit_code()));
        }
        self.first.store(number, Ordering::SeqCst);
        crate::errln!(
            "\n{}: stopping after this step and saving a checkpoint (send it again to quit at once)",
            signal.name()
        );
    }

    #[cfg(unix)]
    fn listen(&self) -> Result<()> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut incoming = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| Error::Signal(e.to_string()))?;
        let this = self.clone();
        std::thread::Builder::new()
            .name("stop-signals".into())
            .spawn(move || {
                for number in incoming.forever() {
                    this.deliver(number);
                }
            })
            .map_err(|e| Error::Signal(e.to_string()))?;
        Ok(())
    }

    /// Outside Unix only Ctrl-C and SIGTERM exist; a second one does not
    /// quit early there.
    #[cfg(not(unix))]
    fn listen(&self) -> Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        for number in [SIGINT, SIGTERM] {
            let first = self.first.clone();
            let flag = self.flag.clone();
            // SAFETY: the action only stores to atomics, which is
            // async-signal-safe.
            unsafe {
                signal_hook::low_level::register(number, move || {
                    let _ = first.compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst);
                    flag.store(true, Ordering::SeqCst);
                })
            }
            .map_err(|e| Error::Signal(e.to_string()))?;
        }
        Ok(())
    }
}
