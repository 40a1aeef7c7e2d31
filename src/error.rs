//! Typed errors for the library. The binary turns them into one-line messages
//! (through `anyhow` at the edge); nothing in the library panics on bad input.

use std::path::PathBuf;

/// Everything that can go wrong inside the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file is missing, unreadable or malformed.
    #[error("{path}: {problem}")]
    Data { path: PathBuf, problem: String },

    /// A flag or configuration value is out of range.
    #[error("invalid {name}: {problem}")]
    Config { name: String, problem: String },

    /// Reading or writing a file failed. A full disk says so in words.
    #[error("{path}: {}", describe_io(error))]
    Io {
        path: PathBuf,
        /// Not a `#[source]`: the message already holds it, and `{:#}` at the
        /// edge would print it twice.
        error: std::io::Error,
    },

    /// The GPU backend could not be created or failed while running.
    #[error("GPU: {0}")]
    Gpu(String),

    /// A checkpoint is missing, unreadable, malformed, of a newer format, or
    /// does not fit the run it should resume.
    #[error("{path}: {problem}")]
    Checkpoint { path: PathBuf, problem: String },
    /// An evaluation could not be computed (see `crate::eval`).
    #[error("evaluation: {0}")]
    Eval(String),

    /// The GPU device was lost (driver reset, removal, or an injected fault:
    /// see [`crate::backend::fault`]). The run can continue on a new backend
    /// from its last checkpoint.
    #[error("GPU device lost on {adapter} while {doing}: {reason}")]
    DeviceLost {
        adapter: String,
        doing: String,
        reason: String,
    },

    /// A loss or a parameter turned NaN or infinite (see
    /// [`crate::train::Trainer::run`]). Nothing of the diverged state is saved.
    #[error("training diverged in epoch {epoch} (steps {first_step}-{last_step}): {what}; {}", match .checkpoint {
        Some(path) => format!("the last good checkpoint is {}", path.display()),
        None => "no checkpoint was saved before it".to_string(),
    })]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based first and last step of the epoch's steps run.
        first_step: usize,
        last_step: usize,
        /// "the D loss is NaN", ...
        what: String,
        checkpoint: Option<PathBuf>,
    },

    /// An image could not be encoded or written.
    #[error("{path}: {problem}")]
    Image { path: PathBuf, problem: String },

    /// Another live run holds the output folder's lock (see
    /// [`crate::output::lock`]).
    #[error("--out {}: another gan-gpu run ({}) is writing into this folder; wait for it to end, or pass another --out", .dir.display(), match .pid {
        Some(pid) => format!("process {pid}"),
        None => "process id unknown".to_string(),
    })]
    OutputInUse { dir: PathBuf, pid: Option<u32> },

    /// The stop-signal handlers could not be installed (see [`crate::stop`]).
    #[error("installing the SIGINT/SIGTERM/SIGHUP handlers: {0}")]
    Signal(String),

    /// Writing to stdout failed: a reader that went away is a broken pipe
    /// (see [`crate::print`]).
    #[error("writing to stdout: {0}")]
    Stdout(#[source] std::io::Error),

    /// A command was given what it cannot run with, in a message of its own.
    #[error("{0}")]
    Usage(String),

    /// `source`, with what was being done or the flag it concerns in front:
    /// `--backend vulkan: GPU: no Vulkan adapter found ...`.
    #[error("{context}: {source}")]
    Context { context: String, source: Box<Error> },
}

impl Error {
    /// Whether the GPU device was lost (the run may continue on a new one),
    /// under any context.
    pub fn is_device_lost(&self) -> bool {
        match self {
            Error::DeviceLost { .. } => true,
            Error::Context { source, .. } => source.is_device_lost(),
            _ => false,
        }
    }
}

/// Puts what was being done in front of an error, as `anyhow`'s `context`
/// does at the edge.
pub trait ResultExt<T> {
    /// The error, with `context` in front.
    fn context(self, context: impl Into<String>) -> Result<T>;
    /// The error, with `context()` in front (built only on an error).
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::Context {
            context: context.into(),
            source: Box::new(source),
        })
    }

    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|source| Error::Context {
            context: context().into(),
            source: Box::new(source),
        })
    }
}

/// An I/O error in words; a full disk (or quota) is named as such, so the
/// one-line message says what to do about it.
pub fn describe_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::StorageFull => format!("the disk is full ({error})"),
        std::io::ErrorKind::QuotaExceeded => format!("the disk quota is used up ({error})"),
        _ => error.to_string(),
    }
}

impl Error {
    /// A data-file error naming the file and the problem.
    pub fn data(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// A configuration error naming the flag and the problem.
    pub fn config(name: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Config {
            name: name.into(),
            problem: problem.into(),
        }
    }

    /// An I/O error naming the file.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
